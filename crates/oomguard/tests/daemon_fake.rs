//! The daemon end to end on a fake /proc and cgroupfs (real 6.18 kernel text, see
//! `common::FakeHost`) with the recording actuator: a decision and its event, the recovery wait
//! after a kill, and a reload (a good one applied, a broken one rejected). Nothing is signalled:
//! the one real process in the tree is a `sleep` this test started, so that the daemon can pin
//! it by pidfd as it pins a real victim, and it is still alive at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use common::{FakeHost, FakeProc};
use oomguard::act::actuator::{Call, RecordingActuator, Simulated};
use oomguard::host::{CgroupFs, ProcFs};
use oomguard::rank::Roots;
use oomguard::watch::{self, Daemon, Setup, WatchArgs};
use serde_json::Value;

/// A `sleep` child, killed and reaped on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct World {
    host: FakeHost,
    sleeper: Sleeper,
    config: std::path::PathBuf,
    events: std::path::PathBuf,
    calls: Arc<Mutex<Vec<Call>>>,
    daemon: Daemon,
}

fn config_text(events: &std::path::Path, term: &str, kill: &str) -> String {
    config_text_kill(events, term, kill, "")
}

/// [`config_text`] with `kill_extra` lines in the `[kill]` section.
fn config_text_kill(events: &std::path::Path, term: &str, kill: &str, kill_extra: &str) -> String {
    format!(
        "[memory]\nterm_below = \"{term}\"\nkill_below = \"{kill}\"\n\n[kill]\nterm_grace = \"100ms\"\n{kill_extra}\n[events]\nlog = \"{}\"\n",
        events.display()
    )
}

/// A machine with 800 MiB available, a small fake process and the largest one, which is a real
/// `sleep` (its `stat` is the real one, so that its start time matches when the daemon pins it).
fn world(term: &str, kill: &str) -> World {
    world_with(term, kill, "", |_, _| {})
}

/// [`world`] with `extra` config text, and `prepare` run on the tree (given the sleeper's pid)
/// before the daemon starts.
fn world_with(term: &str, kill: &str, extra: &str, prepare: impl FnOnce(&FakeHost, i32)) -> World {
    world_with_kill(term, kill, "", extra, prepare)
}

/// [`world_with`] with `kill_extra` lines in the `[kill]` section.
fn world_with_kill(
    term: &str,
    kill: &str,
    kill_extra: &str,
    extra: &str,
    prepare: impl FnOnce(&FakeHost, i32),
) -> World {
    let host = FakeHost::new();
    host.meminfo_kb("MemAvailable", 800 << 10);
    let child = Command::new("sleep").arg("60").spawn().expect("sleep");
    let pid = child.id() as i32;
    let sleeper = Sleeper(child);
    host.add_proc(&FakeProc::new(4_194_000, "small").rss(10_000));
    host.add_proc(&FakeProc::new(pid, "sleep").rss(2 << 20));
    let real_stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    host.write(&format!("proc/{pid}/stat"), &real_stat);
    let dir = host.root().to_path_buf();
    let events = dir.join("events.jsonl");
    let config = dir.join("oomguard.toml");
    prepare(&host, pid);
    std::fs::write(
        &config,
        config_text_kill(&events, term, kill, kill_extra) + extra,
    )
    .unwrap();
    let args = WatchArgs {
        config: Some(config.clone()),
        ..Default::default()
    };
    let (cfg, origin) = watch::effective_config(&args).unwrap();
    let (rec, calls) = RecordingActuator::shared(Simulated::ExitsOnTerm);
    let setup = Setup {
        roots: Roots {
            proc: ProcFs::new(host.proc_root()),
            cgroup: CgroupFs::new(host.cgroup_root()),
            passwd: dir.join("passwd"),
        },
        actuator: Box::new(rec),
        protect_self: false,
        kmsg: None,
    };
    let daemon = Daemon::new(cfg, origin, args, None, setup).unwrap();
    World {
        host,
        sleeper,
        config,
        events,
        calls,
        daemon,
    }
}

fn events(w: &World) -> Vec<Value> {
    std::fs::read_to_string(&w.events)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_decision_reaches_the_actuator_and_its_event_then_waits_for_recovery() {
    let mut w = world("1G", "256M");
    let pid = w.sleeper.0.id() as i32;
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 15 }),
        "the largest process gets SIGTERM first"
    );
    let ev = events(&w);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = &ev[0];
    assert_eq!(e["kind"], "kill");
    assert_eq!(e["source"], "oomguard");
    assert_eq!(e["pid"], pid);
    assert_eq!(e["victim"]["pid"], pid);
    assert_eq!(e["victim"]["rss_bytes"], (2u64 << 30) + (2000 << 10));
    assert_eq!(e["trigger"]["reason"], "memory");
    assert_eq!(e["trigger"]["mem_available_bytes"], 800u64 << 20);
    assert!(e["trigger"]["detail"]
        .as_str()
        .unwrap()
        .starts_with("MemAvailable 800 MiB (SIGTERM below 1 GiB, SIGKILL below 256 MiB)"));
    assert_eq!(e["action"]["signal"], "SIGTERM");
    assert_eq!(e["action"]["unit"], "process");
    assert_eq!(e["action"]["outcome"], "exited");
    assert_eq!(e["action"]["dry_run"], false);
    assert!(e["id"].is_string());
    // Memory is not back: the next readings choose nobody.
    for _ in 0..3 {
        w.daemon.step();
    }
    assert_eq!(w.daemon.counts(), (1, 1));
    // Memory back above the threshold plus the margin ends the wait; a new fall acts again.
    w.host.meminfo_kb("MemAvailable", 2 << 20);
    w.daemon.step();
    w.host.meminfo_kb("MemAvailable", 800 << 10);
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (2, 2));
    assert_eq!(events(&w).len(), 2);
    // Nothing was signalled for real.
    assert!(w.sleeper.0.try_wait().unwrap().is_none());
}

#[test]
fn reload_applies_a_good_config_and_keeps_the_running_one_on_a_bad_one() {
    let mut w = world("512M", "256M");
    w.daemon.step();
    assert_eq!(
        w.daemon.counts(),
        (0, 0),
        "800 MiB available is above 512 MiB"
    );
    std::fs::write(&w.config, config_text(&w.events, "1G", "256M")).unwrap();
    w.daemon.reload();
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1), "the reloaded threshold applies");
    std::fs::write(&w.config, "[memory]\nterm_below = \"12 parsecs\"\n").unwrap();
    w.daemon.reload();
    // Rejected: still the 1 GiB threshold (and the recovery wait of the kill above).
    w.host.meminfo_kb("MemAvailable", 2 << 20);
    w.daemon.step();
    w.host.meminfo_kb("MemAvailable", 900 << 10);
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (2, 2));
    let ev = events(&w);
    assert!(ev[1]["trigger"]["detail"]
        .as_str()
        .unwrap()
        .contains("SIGTERM below 1 GiB"));
}

/// A guarded cgroup near its limit on a cgroup v2 tree (the host runs v1; v2 is exercised here
/// on the fake tree): the decision is the cgroup's, its candidates the cgroup's members, and
/// the event carries the cgroup's figures.
#[test]
fn a_v2_cgroup_near_its_limit_is_guarded_on_its_own() {
    let mut w = world_with(
        "100M",
        "50M",
        "\n[[cgroups]]\npath = \"/app\"\nheadroom = \"20M\"\n",
        |host, pid| {
            host.write(&format!("proc/{pid}/cgroup"), "0::/app\n");
            host.add_memcg_v2("/app", 95 << 20, Some(100 << 20), 0, &[pid]);
        },
    );
    let pid = w.sleeper.0.id() as i32;
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 9 }),
        "within a quarter of the headroom: SIGKILL at once"
    );
    let e = &events(&w)[0];
    assert_eq!(e["trigger"]["reason"], "cgroup");
    assert_eq!(e["trigger"]["cgroup"], "/app");
    assert_eq!(e["trigger"]["cgroup_limit_bytes"], 100u64 << 20);
    assert_eq!(e["victim"]["cgroup"], "/app");
    assert_eq!(e["action"]["signal"], "SIGKILL");
    // Held back until the cgroup's memory comes back.
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
}

/// Thrash rule config for the fake-tree tests: short windows so the test runs in about a
/// second of real time (the detector reads the monotonic clock through the daemon).
const THRASH_FAST: &str = "\n[thrash]\nenable = true\nwindow = \"100ms\"\nduration = \"300ms\"\nstep_window = \"100ms\"\nactions = [\"notify\", \"kill\"]\n";

/// Steps the daemon `n` times, 120 ms apart, with `advance(i)` run on the tree before each.
fn step_slowly(w: &mut World, n: u64, mut advance: impl FnMut(&FakeHost, u64)) {
    for i in 0..n {
        advance(&w.host, i);
        w.daemon.step();
        std::thread::sleep(std::time::Duration::from_millis(120));
    }
}

#[test]
fn machine_thrash_notifies_then_kills_while_memory_is_plentiful() {
    let mut w = world_with("1M", "512K", THRASH_FAST, |_, _| {});
    let pid = w.sleeper.0.id() as i32;
    // 240,000 pages of file LRU; 100,000 pages refaulted per step (every 120 ms): ~350 %/s.
    let vmstat = |refault: u64| {
        format!(
            "nr_inactive_file 160000\nnr_active_file 80000\nnr_inactive_anon 1000\nnr_active_anon 1000\nworkingset_refault_anon 0\nworkingset_refault_file {refault}\npgmajfault 0\npswpin 0\npswpout 0\n"
        )
    };
    // Calm first: no refaults, no decision.
    step_slowly(&mut w, 6, |h, _| h.write("proc/vmstat", &vmstat(1000)));
    assert_eq!(w.daemon.counts(), (0, 0));
    step_slowly(&mut w, 12, |h, i| {
        h.write("proc/vmstat", &vmstat(1000 + (i + 1) * 100_000))
    });
    let (decisions, kills) = w.daemon.counts();
    assert!(
        decisions >= 2 && kills >= 1,
        "{decisions} decisions, {kills} kills"
    );
    let ev = events(&w);
    let warn = ev
        .iter()
        .find(|e| e["kind"] == "warning")
        .expect("notify event");
    assert_eq!(warn["trigger"]["reason"], "thrash-refault");
    assert!(warn["trigger"]["cgroup"].is_null());
    let kill = ev.iter().find(|e| e["kind"] == "kill").expect("kill event");
    assert_eq!(kill["trigger"]["reason"], "thrash-refault");
    assert_eq!(kill["victim"]["pid"], pid);
    assert_eq!(kill["trigger"]["mem_available_bytes"], 800u64 << 20);
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 15 }),
        "thrashing is slow: SIGTERM first"
    );
    // The notify step came before the kill.
    let wi = ev.iter().position(|e| e["kind"] == "warning").unwrap();
    let ki = ev.iter().position(|e| e["kind"] == "kill").unwrap();
    assert!(wi < ki);
}

#[test]
fn v2_cgroup_thrash_chooses_within_the_cgroup() {
    let mut w = world_with(
        "1M",
        "512K",
        &format!(
            "\n[[cgroups]]\npath = \"/app\"\nheadroom = \"0\"\n{THRASH_FAST}machine = false\n"
        ),
        |host, pid| {
            host.write(&format!("proc/{pid}/cgroup"), "0::/app\n");
            host.add_memcg_v2("/app", 60 << 20, Some(64 << 20), 0, &[pid]);
        },
    );
    let pid = w.sleeper.0.id() as i32;
    // 56 MiB of file LRU (14,336 pages); 20,000 pages refaulted every 120 ms: ~1,100 %/s.
    step_slowly(&mut w, 14, |h, i| {
        h.write(
            "cgroup/app/memory.stat",
            &format!(
                "anon 4194304\nfile 58720256\nshmem 0\ninactive_anon 4194304\nactive_anon 0\ninactive_file 50331648\nactive_file 8388608\nworkingset_refault_anon 0\nworkingset_refault_file {}\npgmajfault 0\n",
                (i + 1) * 20_000
            ),
        )
    });
    let ev = events(&w);
    let kill = ev
        .iter()
        .find(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill: {ev:?}"));
    assert_eq!(kill["trigger"]["reason"], "thrash-refault");
    assert_eq!(kill["trigger"]["cgroup"], "/app");
    assert_eq!(kill["victim"]["pid"], pid);
    assert_eq!(kill["victim"]["cgroup"], "/app");
    // The small process outside the cgroup was never a candidate (it is not in /app).
    assert!(w
        .calls
        .lock()
        .unwrap()
        .iter()
        .all(|c| !matches!(c, Call::Signal { pid: p, .. } if *p == 4_194_000)));
}

/// Sets the fake `sleep` victim's resident memory (its real `stat` stays, so the pin works).
fn set_rss_kib(w: &World, pid: i32, kib: u64) {
    let p = w.host.root().join(format!("proc/{pid}/status"));
    let t = std::fs::read_to_string(&p).unwrap();
    let t: String = t
        .lines()
        .map(|l| {
            if l.starts_with("RssAnon:") {
                format!("RssAnon:\t{kib} kB\n")
            } else if l.starts_with("VmRSS:") {
                format!("VmRSS:\t{kib} kB\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(p, t).unwrap();
}

/// The flight recorder: a kill event carries the readings before it (MemAvailable falling, the
/// guarded cgroup's usage rising), the victim as the top grower against the forecast's
/// baseline, and when the trigger fired.
#[test]
fn a_kill_event_carries_the_flight_recorders_minute() {
    let extra = "\n[recorder]\nspan = \"1s\"\ninterval = \"10ms\"\n\n[[cgroups]]\npath = \"/app\"\nheadroom = \"1M\"\n";
    let mut w = world_with("100M", "50M", extra, |h, _| {
        h.add_memcg_v2("/app", 10 << 20, Some(512 << 20), 0, &[]);
    });
    let pid = w.sleeper.0.id() as i32;
    // ~90 MiB/s: the forecast's estimate falls under twice its lead, so it notes every
    // process's size (the growers' baseline), and nothing is killed yet.
    for i in 0..30u64 {
        w.host.meminfo_kb("MemAvailable", (800 << 10) - i * 1024);
        w.host.write(
            "cgroup/app/memory.current",
            &format!("{}\n", (10 + i) << 20),
        );
        w.daemon.step();
        std::thread::sleep(std::time::Duration::from_millis(11));
    }
    assert_eq!(w.daemon.counts(), (0, 0));
    assert!(
        w.daemon.recorded_samples() >= 20,
        "{}",
        w.daemon.recorded_samples()
    );
    // The victim grew by 100 MiB, then MemAvailable falls below the SIGTERM threshold.
    set_rss_kib(&w, pid, (2 << 20) + (100 << 10));
    w.host.meminfo_kb("MemAvailable", 90 << 10);
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
    let evs = events(&w);
    let kill = evs
        .iter()
        .find(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}"));
    let r = &kill["recorder"];
    assert_eq!(r["interval_s"], 0.01);
    assert_eq!(r["span_s"], 1.0);
    let t: Vec<f64> = r["t_s"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(t.len() >= 20 && t.len() <= 100, "{t:?}");
    assert!(t.windows(2).all(|p| p[0] < p[1]), "oldest first: {t:?}");
    assert!(t.iter().all(|v| *v <= 0.0 && *v > -1.5), "{t:?}");
    let mem: Vec<u64> = r["mem_available_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(mem.len(), t.len());
    assert!(mem.windows(2).all(|p| p[0] >= p[1]), "falling: {mem:?}");
    // The kill's own reading is the last sample.
    assert_eq!(mem.last(), Some(&(90u64 << 20)));
    let cg: Vec<Option<u64>> = r["cgroups"]["/app"]
        .as_array()
        .unwrap_or_else(|| panic!("no /app series: {r}"))
        .iter()
        .map(Value::as_u64)
        .collect();
    assert_eq!(cg.len(), t.len());
    let seen: Vec<u64> = cg.iter().flatten().copied().collect();
    assert!(seen.len() >= 20, "{cg:?}");
    assert!(seen.windows(2).all(|p| p[0] <= p[1]), "rising: {seen:?}");
    assert!(seen.last() > seen.first(), "{seen:?}");
    // The fake PSI file is the same every time: read, not invented.
    assert!(r["psi_some_avg10"][0].is_number(), "{r}");
    let first = r["first_trigger_s"].as_f64().unwrap();
    assert!((-0.5..=0.0).contains(&first), "{first}");
    let g = &r["growers"][0];
    assert_eq!(g["pid"], pid, "{r}");
    assert_eq!(g["name"], "sleep");
    assert_eq!(g["growth_bytes"], 100u64 << 20);
    // The text of `oomguard events` shows the minute in one line below the event.
    let line = oomguard::events::render_line(kill);
    let second = line.lines().nth(1).unwrap_or_else(|| panic!("{line}"));
    assert!(
        second.starts_with("    last ") && second.contains("MemAvailable 800 MiB → 90 MiB"),
        "{line}"
    );
    assert!(second.contains("grew: sleep +100 MiB"), "{line}");
    assert!(second.contains("cgroup /app 10 MiB → "), "{line}");
}

/// `["freeze", "kill"]` on a fake v2 cgroup: the real restrainer writes `cgroup.freeze` in the
/// tree (recorded in the state file first), thaws it when the step's window is over, and the
/// scope, still thrashing after the thaw, gets the kill step; every step is an event.
#[test]
fn v2_cgroup_thrash_freezes_then_thaws_then_kills() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("restrain.json");
    let mut w = world_with(
        "1M",
        "512K",
        &format!(
            "\n[[cgroups]]\npath = \"/app\"\nheadroom = \"0\"\n{}machine = false\nstate_file = \"{}\"\n",
            THRASH_FAST.replace("[\"notify\", \"kill\"]", "[\"freeze\", \"kill\"]"),
            state_file.display()
        ),
        |host, pid| {
            host.write(&format!("proc/{pid}/cgroup"), "0::/app\n");
            host.add_memcg_v2("/app", 60 << 20, Some(64 << 20), 0, &[pid]);
            host.write("cgroup/app/cgroup.freeze", "0\n");
        },
    );
    let freeze = w.host.root().join("cgroup/app/cgroup.freeze");
    let mut seen = Vec::new();
    let mut listed = String::new();
    step_slowly(&mut w, 16, |h, i| {
        let f = std::fs::read_to_string(h.root().join("cgroup/app/cgroup.freeze")).unwrap();
        if seen.last() != Some(&f) {
            seen.push(f.clone());
        }
        if f == "1" && listed.is_empty() {
            listed = std::fs::read_to_string(&state_file).unwrap_or_default();
        }
        h.write(
            "cgroup/app/memory.stat",
            &format!(
                "anon 4194304\nfile 58720256\nshmem 0\ninactive_anon 4194304\nactive_anon 0\ninactive_file 50331648\nactive_file 8388608\nworkingset_refault_anon 0\nworkingset_refault_file {}\npgmajfault 0\n",
                (i + 1) * 20_000
            ),
        )
    });
    let ev = events(&w);
    // Frozen, then thawed (the writes are whole: "1", then "0").
    assert!(
        seen.windows(2).any(|p| p[0] == "1" && p[1] == "0"),
        "cgroup.freeze went {seen:?}; {ev:?}"
    );
    assert_eq!(std::fs::read_to_string(&freeze).unwrap(), "0");
    assert!(
        listed.contains(r#"{"change":"freeze_v2","cgroup":"/app"}"#),
        "state file while frozen: {listed:?}"
    );
    assert!(!state_file.exists(), "cleared after the thaw");
    let outcomes: Vec<&str> = ev
        .iter()
        .filter(|e| e["step"]["action"] == "freeze")
        .map(|e| e["step"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(&outcomes[..2], ["done", "ended"], "{ev:?}");
    let fi = ev
        .iter()
        .position(|e| e["step"]["outcome"] == "ended")
        .unwrap();
    let ki = ev
        .iter()
        .position(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill after the thaw: {ev:?}"));
    assert!(fi < ki);
    assert_eq!(ev[ki]["trigger"]["cgroup"], "/app");
}

/// A state file left by a crashed daemon: the change of a guarded cgroup is undone at the first
/// iteration; a garbled line and a cgroup not guarded now are warnings, never acted on, and the
/// latter stays listed.
#[test]
fn a_stale_state_file_is_undone_for_guarded_cgroups_only() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("restrain.json");
    std::fs::write(
        &state_file,
        "# left by a crash\n{\"change\":\"freeze_v2\",\"cgroup\":\"/app\"}\n{\"change\":\"freeze_v2\",\"cg\n{\"change\":\"freeze_v2\",\"cgroup\":\"/other\"}\n{\"change\":\"freeze_v2\",\"cgroup\":\"/app/../other\"}\n",
    )
    .unwrap();
    let mut w = world_with(
        "1M",
        "512K",
        &format!(
            "\n[[cgroups]]\npath = \"/app\"\nheadroom = \"0\"\n{}machine = false\nstate_file = \"{}\"\n",
            THRASH_FAST.replace("[\"notify\", \"kill\"]", "[\"freeze\", \"kill\"]"),
            state_file.display()
        ),
        |host, pid| {
            host.write(&format!("proc/{pid}/cgroup"), "0::/app\n");
            host.add_memcg_v2("/app", 60 << 20, Some(64 << 20), 0, &[pid]);
            host.write("cgroup/app/cgroup.freeze", "1\n");
            host.add_memcg_v2("/other", 1 << 20, Some(64 << 20), 0, &[]);
            host.write("cgroup/other/cgroup.freeze", "1\n");
        },
    );
    w.daemon.step();
    let root = w.host.root().to_path_buf();
    assert_eq!(
        std::fs::read_to_string(root.join("cgroup/app/cgroup.freeze")).unwrap(),
        "0"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("cgroup/other/cgroup.freeze")).unwrap(),
        "1\n",
        "a cgroup not guarded is never touched"
    );
    let left = std::fs::read_to_string(&state_file).unwrap();
    assert!(
        left.contains(r#"{"change":"freeze_v2","cgroup":"/other"}"#) && !left.contains("/app"),
        "{left}"
    );
}

/// An executable shell script in `dir`; returns its path.
fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// Diagnostics before a kill: the rule that matched the victim names a script; it runs with the
/// victim's pid as a whole argument before the signal (it sees the process alive), and the kill
/// event carries its output, exit status and time; `oomguard events` shows them.
#[test]
fn a_rules_diagnostic_runs_before_the_kill_and_its_output_is_on_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let diag = script(
        dir.path(),
        "diag.sh",
        &format!(
            "echo \"pid=$1 arg2=$2\"\ntr '\\0' ' ' < /proc/$1/cmdline; echo\necho to-stderr >&2\necho \"$1\" > {}\nexit 3\n",
            marker.display()
        ),
    );
    let extra = format!(
        "\n[[rules]]\naction = \"prefer\"\nname = \"^sleep$\"\nadjust = 0\ndiagnose = [\"{diag}\", \"{{pid}}\", \"x{{pid}}y\"]\n"
    );
    // `x{pid}y` is refused: {pid} only as a whole argument.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        config_text(&dir.path().join("ev"), "1G", "256M") + &extra,
    )
    .unwrap();
    let err = watch::effective_config(&WatchArgs {
        config: Some(bad),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("rules[0].diagnose[2]"),
        "{err:#}"
    );
    let extra = format!(
        "\n[[rules]]\naction = \"prefer\"\nname = \"^sleep$\"\nadjust = 0\ndiagnose = [\"{diag}\", \"{{pid}}\", \"$(touch /tmp/x)\"]\n"
    );
    let mut w = world_with("1G", "256M", &extra, |_, _| {});
    let pid = w.sleeper.0.id() as i32;
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 15 })
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        pid.to_string()
    );
    let evs = events(&w);
    let kill = evs.iter().find(|e| e["kind"] == "kill").unwrap();
    let d = &kill["diagnostics"];
    assert_eq!(d["argv"][0], diag.as_str(), "{d}");
    assert_eq!(d["argv"][1], pid.to_string());
    assert_eq!(d["argv"][2], "$(touch /tmp/x)", "passed literally");
    assert_eq!(d["status"], "exited");
    assert_eq!(d["exit_code"], 3);
    assert_eq!(d["output_truncated"], false);
    let out = d["output"].as_str().unwrap();
    // The victim was alive when it ran: its real command line.
    assert!(
        out.starts_with(&format!("pid={pid} arg2=$(touch /tmp/x)\nsleep 60 \n")),
        "{out:?}"
    );
    assert!(out.contains("to-stderr"), "{out:?}");
    let line = oomguard::events::render_line(kill);
    assert!(
        line.contains("\n    diagnostics: diag.sh exited 3 in "),
        "{line}"
    );
    assert!(
        line.contains(&format!("\n      | pid={pid} arg2=")),
        "{line}"
    );
}

/// A diagnostic that hangs is killed at `diagnose_timeout`, with what it started (its process
/// group), and the kill goes on; at the SIGKILL level the diagnostic is skipped.
#[test]
fn a_hanging_diagnostic_is_killed_at_its_timeout_and_skipped_when_memory_is_critical() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let diag = script(
        dir.path(),
        "hang.sh",
        &format!(
            "echo before-the-hang\nsleep 60 &\necho \"$$ $!\" > {}\nwait\n",
            pids.display()
        ),
    );
    let kill_extra =
        format!("diagnose = [\"{diag}\", \"{{pid}}\"]\ndiagnose_timeout = \"300ms\"\n");
    let mut w = world_with_kill("1G", "256M", &kill_extra, "", |_, _| {});
    let pid = w.sleeper.0.id() as i32;
    w.daemon.step();
    assert_eq!(w.daemon.counts(), (1, 1));
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 15 })
    );
    let evs = events(&w);
    let d = &evs.iter().find(|e| e["kind"] == "kill").unwrap()["diagnostics"];
    assert_eq!(d["status"], "timed_out", "{d}");
    assert!(
        d["note"]
            .as_str()
            .unwrap()
            .contains("diagnose_timeout 300ms"),
        "{d}"
    );
    assert_eq!(d["output"], "before-the-hang\n");
    assert!(d["runtime_ms"].as_f64().unwrap() >= 300.0, "{d}");
    // The script and the sleep it started are both gone (the group was killed).
    let text = std::fs::read_to_string(&pids).unwrap();
    for p in text.split_whitespace() {
        let stat = format!("/proc/{p}/stat");
        let gone = (0..250).any(|_| {
            let alive = std::fs::read_to_string(&stat)
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false);
            if alive {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            !alive
        });
        assert!(gone, "process {p} of the diagnostic still runs");
    }
    drop(w);

    // MemAvailable 800 MiB under a SIGKILL level of 900 MiB: no delay, nothing run.
    std::fs::remove_file(&pids).unwrap();
    let mut w = world_with_kill("1G", "900M", &kill_extra, "", |_, _| {});
    let pid = w.sleeper.0.id() as i32;
    w.daemon.step();
    assert_eq!(
        w.calls.lock().unwrap().first(),
        Some(&Call::Signal { pid, signo: 9 })
    );
    let evs = events(&w);
    let d = &evs.iter().find(|e| e["kind"] == "kill").unwrap()["diagnostics"];
    assert_eq!(d["status"], "skipped", "{d}");
    assert_eq!(d["argv"][1], pid.to_string());
    assert!(!pids.exists(), "the diagnostic ran");
}

/// A thrashing `memory.stat` for the fake v2 cgroup at `dir` (step `i`): 56 MiB of file LRU,
/// 20,000 pages refaulted every step (~1,100 %/s).
fn thrash_stat(h: &FakeHost, dir: &str, i: u64) {
    h.write(
        &format!("cgroup/{dir}/memory.stat"),
        &format!(
            "anon 4194304\nfile 58720256\nshmem 0\ninactive_anon 4194304\nactive_anon 0\ninactive_file 50331648\nactive_file 8388608\nworkingset_refault_anon 0\nworkingset_refault_file {}\npgmajfault 0\n",
            (i + 1) * 20_000
        ),
    )
}

/// A world guarding the fake v2 cgroup `path` (holding the sleeper) with the cgroup thrash
/// rule, `actions`, and a state file in `state`.
fn thrash_world(path: &str, actions: &str, state: &std::path::Path, extra: &str) -> World {
    let p = path.to_owned();
    world_with(
        "1M",
        "512K",
        &format!(
            "\n[[cgroups]]\npath = \"{path}\"\nheadroom = \"0\"\n{}machine = false\nstate_file = \"{}\"\n{extra}",
            THRASH_FAST.replace("[\"notify\", \"kill\"]", actions),
            state.display()
        ),
        move |host, pid| {
            host.write(&format!("proc/{pid}/cgroup"), &format!("0::{p}\n"));
            host.add_memcg_v2(&p, 60 << 20, Some(64 << 20), 0, &[pid]);
        },
    )
}

fn step_outcomes(ev: &[Value], action: &str) -> Vec<String> {
    ev.iter()
        .filter(|e| e["step"]["action"] == action)
        .map(|e| e["step"]["outcome"].as_str().unwrap().to_owned())
        .collect()
}

/// `["throttle", "kill"]`: `memory.high` goes from `max` to 80 % of the usage (60 MiB -> 48
/// MiB), recorded in the state file first, back to `max` when the step's window is over; the
/// scope, still thrashing, gets the kill, whose event carries `step` too.
#[test]
fn v2_cgroup_thrash_throttles_then_restores_then_kills() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("restrain.json");
    let mut w = thrash_world("/app", "[\"throttle\", \"kill\"]", &state_file, "");
    let high = w.host.root().join("cgroup/app/memory.high");
    let mut seen: Vec<String> = Vec::new();
    let mut listed = String::new();
    step_slowly(&mut w, 16, |h, i| {
        let v = std::fs::read_to_string(&high).unwrap();
        if seen.last() != Some(&v) {
            seen.push(v.clone());
        }
        if v == "50331648" && listed.is_empty() {
            listed = std::fs::read_to_string(&state_file).unwrap_or_default();
        }
        thrash_stat(h, "app", i)
    });
    let ev = events(&w);
    assert!(
        seen.windows(2).any(|p| p[0] == "50331648" && p[1] == "max"),
        "memory.high went {seen:?}; {ev:?}"
    );
    assert_eq!(seen[0], "max\n");
    assert!(
        listed.contains(r#"{"change":"memory_high","cgroup":"/app","previous":"max"}"#),
        "state file while throttled: {listed:?}"
    );
    assert!(!state_file.exists(), "cleared after the restore");
    let outcomes = step_outcomes(&ev, "throttle");
    assert_eq!(&outcomes[..2], ["done", "ended"], "{ev:?}");
    let done = ev
        .iter()
        .find(|e| e["step"]["action"] == "throttle")
        .unwrap();
    assert!(
        done["step"]["detail"]
            .as_str()
            .unwrap()
            .contains("to 50331648 bytes"),
        "{done}"
    );
    let kill = ev
        .iter()
        .find(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill after the restore: {ev:?}"));
    assert_eq!(kill["step"]["action"], "kill", "{kill}");
    assert_eq!(kill["step"]["index"], 2);
    assert_eq!(kill["step"]["of"], 2);
    assert_eq!(kill["step"]["outcome"], "done");
}

/// A `memory.high` lowered by a daemon killed with SIGKILL (its state file left behind) is
/// written back at the next start; a `previous` that is not bytes or max is never written.
#[test]
fn a_stale_throttle_is_restored_at_start() {
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("restrain.json");
    std::fs::write(
        &state_file,
        "{\"change\":\"memory_high\",\"cgroup\":\"/app\",\"previous\":\"268435456\"}\n{\"change\":\"memory_high\",\"cgroup\":\"/app\",\"previous\":\"0; rm\"}\n",
    )
    .unwrap();
    let mut w = thrash_world("/app", "[\"throttle\", \"kill\"]", &state_file, "");
    w.host.write("cgroup/app/memory.high", "50331648\n");
    w.daemon.step();
    assert_eq!(
        std::fs::read_to_string(w.host.root().join("cgroup/app/memory.high")).unwrap(),
        "268435456"
    );
    assert!(!state_file.exists());
}

/// `["reclaim", "kill"]`: the configured amount is written to `memory.reclaim` and the event
/// says how usage moved; without the file (a kernel before 5.19) the step is refused with that
/// reason and the kill follows at once.
#[test]
fn v2_cgroup_thrash_reclaims_or_is_refused_without_memory_reclaim() {
    let state = tempfile::tempdir().unwrap();
    let mut w = thrash_world(
        "/app",
        "[\"reclaim\", \"kill\"]",
        &state.path().join("r.json"),
        "reclaim = \"16M\"\n",
    );
    w.host.write("cgroup/app/memory.reclaim", "");
    step_slowly(&mut w, 6, |h, i| thrash_stat(h, "app", i));
    assert_eq!(
        std::fs::read_to_string(w.host.root().join("cgroup/app/memory.reclaim")).unwrap(),
        "16777216"
    );
    let ev = events(&w);
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "reclaim")
        .unwrap_or_else(|| panic!("no reclaim step: {ev:?}"));
    assert_eq!(r["step"]["outcome"], "done", "{r}");
    let detail = r["step"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("asked 16 MiB of cgroup /app") && detail.contains("usage 60 MiB -> 60 MiB"),
        "{detail}"
    );
    assert!(
        !state.path().join("r.json").exists(),
        "nothing to restore, nothing recorded"
    );

    let mut w = thrash_world(
        "/app",
        "[\"reclaim\", \"kill\"]",
        &state.path().join("r.json"),
        "",
    );
    step_slowly(&mut w, 6, |h, i| thrash_stat(h, "app", i));
    let ev = events(&w);
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "reclaim")
        .unwrap_or_else(|| panic!("no reclaim step: {ev:?}"));
    assert_eq!(r["step"]["outcome"], "refused", "{r}");
    assert!(
        r["step"]["detail"]
            .as_str()
            .unwrap()
            .contains("no memory.reclaim (kernel before 5.19)"),
        "{r}"
    );
    let ri = ev
        .iter()
        .position(|e| e["step"]["action"] == "reclaim")
        .unwrap();
    let ki = ev
        .iter()
        .position(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill after the refusal: {ev:?}"));
    assert!(ri < ki);
}

/// A fake `systemctl` (a script) that appends its argv, one per line, to `argv`.
fn fake_systemctl(dir: &std::path::Path, argv: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("systemctl");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\" >> {}; done\n",
            argv.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// `["restart", "kill"]` on a service's cgroup: the fake systemctl is run once with
/// `restart --no-block -- app.service` as its argv; a cgroup that is no unit's is refused with
/// the reason, and the kill follows at once.
#[test]
fn thrash_restart_runs_systemctl_with_the_units_name_or_is_refused() {
    use oomguard::act::restart::SystemctlRestarter;
    let t = tempfile::tempdir().unwrap();
    let argv = t.path().join("argv");
    let booted = t.path().join("run/systemd/system");
    std::fs::create_dir_all(&booted).unwrap();
    let restarter = || SystemctlRestarter {
        systemctl: Some(fake_systemctl(t.path(), &argv)),
        booted_marker: booted.clone(),
        timeout: std::time::Duration::from_secs(5),
    };
    let mut w = thrash_world(
        "/system.slice/app.service",
        "[\"restart\", \"kill\"]",
        &t.path().join("r.json"),
        "",
    );
    w.daemon.set_unit_restarter(Box::new(restarter()));
    step_slowly(&mut w, 5, |h, i| {
        thrash_stat(h, "system.slice/app.service", i)
    });
    assert_eq!(
        std::fs::read_to_string(&argv).unwrap_or_default(),
        "restart\n--no-block\n--\napp.service\n"
    );
    let ev = events(&w);
    assert_eq!(
        step_outcomes(&ev, "restart").first().map(String::as_str),
        Some("done"),
        "{ev:?}"
    );

    // No unit in the path: refused, systemctl never run, the kill at once.
    std::fs::remove_file(&argv).unwrap();
    let mut w = thrash_world(
        "/app",
        "[\"restart\", \"kill\"]",
        &t.path().join("r.json"),
        "",
    );
    w.daemon.set_unit_restarter(Box::new(restarter()));
    step_slowly(&mut w, 6, |h, i| thrash_stat(h, "app", i));
    assert!(
        !argv.exists(),
        "systemctl was run for a cgroup with no unit"
    );
    let ev = events(&w);
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "restart")
        .unwrap_or_else(|| panic!("no restart step: {ev:?}"));
    assert_eq!(r["step"]["outcome"], "refused");
    assert!(
        r["step"]["detail"]
            .as_str()
            .unwrap()
            .contains("not a systemd unit"),
        "{r}"
    );
    assert!(ev.iter().any(|e| e["kind"] == "kill"), "{ev:?}");

    // systemd not PID 1: refused with that reason.
    std::fs::remove_dir(&booted).unwrap();
    let mut w = thrash_world(
        "/system.slice/app.service",
        "[\"restart\"]",
        &t.path().join("r.json"),
        "",
    );
    w.daemon.set_unit_restarter(Box::new(restarter()));
    step_slowly(&mut w, 5, |h, i| {
        thrash_stat(h, "system.slice/app.service", i)
    });
    assert!(!argv.exists());
    let ev = events(&w);
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "restart")
        .unwrap_or_else(|| panic!("no restart step: {ev:?}"));
    assert!(
        r["step"]["detail"]
            .as_str()
            .unwrap()
            .contains("systemd is not PID 1"),
        "{r}"
    );
}

/// `["restart", "kill"]` with a systemctl that hangs (systemd busy, as on a machine that
/// thrashes): the loop does not wait for it (each step returns at once while it runs), the
/// restart's outcome is `failed` ("no answer within") once its timeout passes and the child is
/// killed, and the chain escalates to the kill then. A systemctl that fails at once escalates
/// the same way.
#[test]
fn thrash_restart_never_blocks_the_loop_and_a_late_failure_escalates() {
    use oomguard::act::restart::SystemctlRestarter;
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let booted = t.path().join("run/systemd/system");
    std::fs::create_dir_all(&booted).unwrap();
    let script = |name: &str, body: &str| {
        let p = t.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let pidfile = t.path().join("hung.pid");
    let hung = script(
        "systemctl-hung",
        &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
    );
    // The restart's window (5 s) outlasts systemctl's timeout: the failure, not the window's
    // end, is what moves the chain on.
    let world = |state: &str| {
        let p = "/system.slice/app.service";
        world_with(
            "1M",
            "512K",
            &format!(
                "\n[[cgroups]]\npath = \"{p}\"\nheadroom = \"0\"\n{}machine = false\nstate_file = \"{}\"\n",
                THRASH_FAST
                    .replace("[\"notify\", \"kill\"]", "[\"restart\", \"kill\"]")
                    .replace("step_window = \"100ms\"", "step_window = \"5s\""),
                t.path().join(state).display()
            ),
            move |host, pid| {
                host.write(&format!("proc/{pid}/cgroup"), &format!("0::{p}\n"));
                host.add_memcg_v2(p, 60 << 20, Some(64 << 20), 0, &[pid]);
            },
        )
    };
    let mut w = world("r.json");
    w.daemon.set_unit_restarter(Box::new(SystemctlRestarter {
        systemctl: Some(hung),
        booted_marker: booted.clone(),
        timeout: std::time::Duration::from_millis(600),
    }));
    let mut slowest = std::time::Duration::ZERO;
    let mut waits = Vec::new();
    for i in 0..14 {
        thrash_stat(&w.host, "system.slice/app.service", i);
        let t0 = std::time::Instant::now();
        waits.push(w.daemon.step());
        slowest = slowest.max(t0.elapsed());
        std::thread::sleep(std::time::Duration::from_millis(120));
    }
    assert!(
        slowest < std::time::Duration::from_millis(300),
        "a step waited {slowest:?} for systemctl"
    );
    // While systemctl runs, the loop wakes often enough to hear its answer.
    assert!(
        waits
            .iter()
            .any(|w| *w <= std::time::Duration::from_millis(20)),
        "{waits:?}"
    );
    let ev = events(&w);
    assert_eq!(step_outcomes(&ev, "restart"), vec!["failed"], "{ev:?}");
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "restart")
        .unwrap();
    assert!(
        r["step"]["detail"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{r}"
    );
    let ri = ev
        .iter()
        .position(|e| e["step"]["action"] == "restart")
        .unwrap();
    let ki = ev
        .iter()
        .position(|e| e["kind"] == "kill")
        .unwrap_or_else(|| panic!("no kill after the late failure: {ev:?}"));
    assert!(ri < ki, "{ev:?}");
    // The hung systemctl was killed and reaped (the daemon's own child only).
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the hung systemctl {pid} is still there"
    );

    // A systemctl that fails at once: `failed` with its status and stderr, then the kill.
    let failing = script(
        "systemctl-fails",
        "echo 'Failed to restart app.service: Access denied' >&2; exit 4",
    );
    let mut w = world("r2.json");
    w.daemon.set_unit_restarter(Box::new(SystemctlRestarter {
        systemctl: Some(failing),
        booted_marker: booted,
        timeout: std::time::Duration::from_secs(5),
    }));
    step_slowly(&mut w, 10, |h, i| {
        thrash_stat(h, "system.slice/app.service", i)
    });
    let ev = events(&w);
    assert_eq!(step_outcomes(&ev, "restart"), vec!["failed"], "{ev:?}");
    let r = ev
        .iter()
        .find(|e| e["step"]["action"] == "restart")
        .unwrap();
    let detail = r["step"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("exit status: 4") && detail.contains("Access denied"),
        "{r}"
    );
    assert!(ev.iter().any(|e| e["kind"] == "kill"), "{ev:?}");
}
