//! The flight recorder on the real kernel: a capped hog (oom_score_adj 1000, at most 400 MiB)
//! fills a throwaway v1 memory cgroup of 128 MiB that `oomguard watch` guards, and the kill
//! event's `recorder` must show that cgroup's usage rising in the seconds before, with the hog
//! as the top grower; in watch-only mode (headroom 0) the kernel's memcg OOM killer ends the hog
//! and the kernel event the daemon sees live carries the series too. Only the test's hogs are in
//! the cgroup, so nothing else can be chosen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_timeout, TestCgroup};
use serde_json::Value;

const LIMIT_BYTES: u64 = 128 << 20;

struct Watch {
    child: Child,
    log: std::path::PathBuf,
    events: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Watch {
    /// `oomguard watch` guarding `cg` within `headroom`, the recorder sampling every 200 ms, the
    /// system-wide rule inert (1 MiB).
    fn start(cg: &TestCgroup, headroom: &str) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl");
        let config = dir.path().join("oomguard.toml");
        std::fs::write(
            &config,
            format!(
                "[memory]\nterm_below = \"1M\"\nkill_below = \"512K\"\n\n[kill]\nterm_grace = \"500ms\"\n\n[events]\nlog = \"{}\"\njournal = false\n\n[recorder]\nspan = \"60s\"\ninterval = \"200ms\"\n\n[[cgroups]]\npath = \"{}\"\nheadroom = \"{headroom}\"\n",
                events.display(),
                cg.rel
            ),
        )
        .unwrap();
        let log = dir.path().join("watch.log");
        let child = Command::new(assert_cmd::cargo::cargo_bin("oomguard"))
            .arg("watch")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let w = Watch {
            child,
            log,
            events,
            _dir: dir,
        };
        let t0 = Instant::now();
        while !w.text().contains("guarding cgroup") {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "daemon did not start: {}",
                w.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A few samples of the idle cgroup first.
        std::thread::sleep(Duration::from_millis(600));
        w
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until an event matching `f` is logged.
    fn wait_event(&self, f: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        common::wait_events(&self.events, &f, timeout)
            .into_iter()
            .find(&f)
    }

    fn stop(mut self) -> String {
        // SAFETY: the daemon is this test's own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = wait_timeout(&mut self.child, Duration::from_secs(10));
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.text()
    }
}

/// The cgroup's usage series of a recording, and the samples' times.
fn cgroup_series(rec: &Value, path: &str) -> (Vec<f64>, Vec<u64>) {
    let t: Vec<f64> = rec["t_s"]
        .as_array()
        .unwrap_or_else(|| panic!("no t_s: {rec}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let usage: Vec<u64> = rec["cgroups"][path]
        .as_array()
        .unwrap_or_else(|| panic!("no series for {path}: {rec}"))
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    (t, usage)
}

/// The series shows the fill: several samples, the usage rising by most of the limit.
fn assert_rising(rec: &Value, path: &str, text: &str) {
    let (t, usage) = cgroup_series(rec, path);
    eprintln!(
        "RECORDER t_s={t:?} usage_mib={:?}",
        usage.iter().map(|u| u >> 20).collect::<Vec<_>>()
    );
    assert!(usage.len() >= 3, "{rec}\n{text}");
    // The peak, not the last sample: a kernel kill is seen when its report is read, after the
    // kill, so the daemon may have read the emptied cgroup once before it built the event.
    let (first, peak) = (usage[0], usage.iter().copied().max().unwrap_or(0));
    assert!(
        peak >= first + (32 << 20),
        "usage {first} -> peak {peak}: {rec}\n{text}"
    );
    assert!(t.iter().all(|v| *v <= 0.0), "{t:?}");
    assert_eq!(
        rec["mem_available_bytes"].as_array().unwrap().len(),
        t.len(),
        "{rec}"
    );
}

#[test]
fn kill_event_recorder_shows_the_cgroup_filling() {
    let Some(cg) = TestCgroup::new("recorder", LIMIT_BYTES) else {
        return;
    };
    let w = Watch::start(&cg, "24M");
    // 1 MiB every 15 ms (about 65 MiB/s): the limit minus the headroom is reached in ~1.6 s,
    // 8 samples at 200 ms.
    let mut hog = cg.spawn_hog(&["400", "0.015", "30", "hogger"]);
    let st = wait_timeout(&mut hog, Duration::from_secs(30)).expect("hog not killed");
    let kill = w.wait_event(
        |e| e["source"] == "oomguard" && e["kind"] == "kill",
        Duration::from_secs(5),
    );
    let text = w.stop();
    assert!(
        matches!(st.signal(), Some(libc::SIGTERM | libc::SIGKILL)),
        "hog {st:?}\n{text}"
    );
    let kill = kill.unwrap_or_else(|| panic!("no kill event\n{text}"));
    assert_eq!(kill["victim"]["name"], "hogger", "{kill}");
    let rec = &kill["recorder"];
    assert_rising(rec, &cg.rel, &text);
    assert!(
        rec["first_trigger_s"].as_f64().is_some_and(|t| t <= 0.0),
        "{rec}"
    );
    // The only process there is the hog: it is the top grower.
    assert_eq!(rec["growers"][0]["name"], "hogger", "{rec}");
    assert_eq!(
        cg.oom_kills(),
        0,
        "the kernel's memcg OOM killer fired first\n{text}"
    );
}

#[test]
fn kernel_oom_event_seen_live_carries_the_recorder() {
    let Some(cg) = TestCgroup::new("recorderk", LIMIT_BYTES) else {
        return;
    };
    if !Path::new("/dev/kmsg").exists() {
        common::kernel::skip("recorderk", "no /dev/kmsg");
        return;
    }
    // Headroom 0: watch only; the kernel ends the hog at the limit.
    let w = Watch::start(&cg, "0");
    let mut hog = cg.spawn_hog(&["400", "0.015", "30", "hogger"]);
    let st = wait_timeout(&mut hog, Duration::from_secs(30)).expect("hog not killed");
    // Other tests' cgroups may OOM at the same time: only ours counts.
    let ours = |e: &Value| {
        e["source"] == "kernel"
            && e["kind"] == "kill"
            && (e["oom_memcg"] == cg.rel.as_str() || e["task_memcg"] == cg.rel.as_str())
    };
    let kev = w.wait_event(ours, Duration::from_secs(10));
    let text = w.stop();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "hog {st:?}\n{text}");
    let kev = kev.unwrap_or_else(|| panic!("no kernel kill event\n{text}"));
    assert_rising(&kev["recorder"], &cg.rel, &text);
}

/// `explain` on this machine's kernel log (the /dev/kmsg backlog), given the daemon's real event
/// log from a real memcg OOM: the report of our hog's kill is joined to the daemon's kernel
/// event for it, and `--json` and the text carry that event's recorded minute and id.
#[test]
fn explain_joins_the_kernel_report_to_the_daemons_recorded_minute() {
    let Some(cg) = TestCgroup::new("recorderx", LIMIT_BYTES) else {
        return;
    };
    if !Path::new("/dev/kmsg").exists() {
        common::kernel::skip("recorderx", "no /dev/kmsg");
        return;
    }
    let w = Watch::start(&cg, "0");
    let mut hog = cg.spawn_hog(&["400", "0.015", "30", "hogger"]);
    let st = wait_timeout(&mut hog, Duration::from_secs(30)).expect("hog not killed");
    let ours = |e: &Value| {
        e["source"] == "kernel"
            && e["kind"] == "kill"
            && (e["oom_memcg"] == cg.rel.as_str() || e["task_memcg"] == cg.rel.as_str())
    };
    let kev = w.wait_event(ours, Duration::from_secs(10));
    let events = std::fs::read(&w.events).unwrap();
    let text = w.stop();
    assert_eq!(st.signal(), Some(libc::SIGKILL), "hog {st:?}\n{text}");
    let kev = kev.unwrap_or_else(|| panic!("no kernel kill event\n{text}"));
    assert!(
        kev["recorder"]["t_s"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{kev}"
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    std::fs::write(&log, events).unwrap();
    let run = |json: bool| {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("oomguard"));
        c.args(["explain", "--color", "never", "--events"])
            .arg(&log);
        if json {
            c.arg("--json");
        }
        let out = c.stdin(Stdio::null()).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let joined: Vec<Value> = run(true)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["pid"] == kev["pid"] && e["comm"] == kev["comm"])
        .collect();
    let e = joined
        .iter()
        .find(|e| e.get("recorder").is_some())
        .unwrap_or_else(|| panic!("no joined report for pid {}: {joined:?}", kev["pid"]));
    assert_eq!(e["recorder"], kev["recorder"]);
    assert_eq!(e["id"], kev["id"]);
    let text = run(false);
    let id = kev["id"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "Led up to it (oomguard's event log, event {id}): last "
        )),
        "{text}"
    );
}
