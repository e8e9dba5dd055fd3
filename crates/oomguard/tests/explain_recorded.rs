//! `oomguard explain` joins a kernel OOM report to the daemon's event for the same kill in
//! oomguard's event log and shows what led up to it (the flight recorder's minute): text, JSON
//! and HTML. The event log is built the way the daemon builds its kernel events: the report as
//! `explain --json` parses it (the daemon's parser reads the same text from /dev/kmsg), the
//! daemon's fields, and a `recorder` from the real `Recorder` fed a falling MemAvailable and a
//! rising cgroup, serialised by serde as the event log's writer does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use oomguard_core::event::Grower;
use oomguard_core::recorder::{Recorder, RecorderConfig};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/explain/real")
        .join(name)
}

fn oomguard() -> Command {
    Command::cargo_bin("oomguard").unwrap()
}

/// The fixture's events as `explain --json` gives them (no event log).
fn parsed(log: &Path) -> Vec<Value> {
    let out = oomguard()
        .args([
            "explain",
            "--json",
            "--events",
            "/nonexistent/oomguard-events.jsonl",
        ])
        .arg(log)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A real recording: 20 samples 100 ms apart, MemAvailable 900 → 330 MiB, cgroup /app usage
/// 100 → 290 MiB, a trigger 0.5 s before the event, `python3` the top grower.
fn recording() -> Value {
    let cfg = RecorderConfig {
        span: Duration::from_secs(2),
        interval: Duration::from_millis(100),
    };
    let mut r = Recorder::new(&cfg, 1).unwrap();
    assert!(r.assign(["/app"].into_iter()).is_empty());
    let slot = r.slot_of("/app").unwrap();
    let t0 = Instant::now();
    for i in 0..20u64 {
        let at = t0 + Duration::from_millis(100 * i);
        r.begin(at, (900 - 30 * i) << 20, 0, Some(i as f64), Some(0.0));
        r.cgroup(slot, (100 + 10 * i) << 20);
        r.end();
        if i == 15 {
            r.note_trigger(at);
        }
    }
    r.set_growers(&[Grower {
        pid: 13243,
        name: "python3".to_owned(),
        rss_bytes: 280 << 20,
        growth_bytes: Some(190 << 20),
    }]);
    serde_json::to_value(r.recording(t0 + Duration::from_millis(2000), None)).unwrap()
}

/// The daemon's kernel event for `ev` seen at `unix_time_s`, as one event-log line.
fn daemon_line(ev: &Value, unix_time_s: f64, id: &str, pid_shift: i64) -> String {
    let mut d = ev.clone();
    d["pid"] = Value::from(ev["pid"].as_i64().unwrap() + pid_shift);
    d["id"] = Value::from(id);
    d["unix_time_s"] = Value::from(unix_time_s);
    d["detection"] = serde_json::json!({"via": "kmsg", "confirmed_by": ["memory.oom_control"]});
    d["recorder"] = recording();
    serde_json::to_string(&d).unwrap()
}

#[test]
fn a_kernel_kill_is_joined_to_the_daemons_event_by_its_kernel_timestamp() {
    let log = fixture("memcg-allocating-task.dmesg.log");
    let evs = parsed(&log);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = &evs[0];
    assert!(
        ev["kernel_time_s"].is_number() && ev["time"].is_null(),
        "{ev}"
    );
    assert!(ev.get("recorder").is_none());
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    // Another kill (another pid) first, then this one; and an unrelated line.
    std::fs::write(
        &events,
        format!(
            "{}\n{{\"kind\":\"warning\",\"source\":\"oomguard\"}}\nnot json\n{}\n",
            daemon_line(ev, 1_796_000_000.0, "abc-1", 1),
            daemon_line(ev, 1_796_000_100.0, "abc-2", 0)
        ),
    )
    .unwrap();
    let out = oomguard()
        .args(["explain", "--color", "never", "--events"])
        .arg(&events)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Led up to it"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("event abc-2"), "{line}");
    assert!(line.contains("MemAvailable 900 MiB → 330 MiB"), "{line}");
    assert!(line.contains("cgroup /app 100 MiB → 290 MiB"), "{line}");
    assert!(line.contains("grew: python3 +190 MiB"), "{line}");
    assert!(line.contains("first trigger 0.5 s before"), "{line}");
    assert!(String::from_utf8(out.stderr).unwrap().is_empty());

    // --json carries the minute and the daemon's id.
    let out = oomguard()
        .args(["explain", "--json", "--events"])
        .arg(&events)
        .arg(&log)
        .output()
        .unwrap();
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["id"], "abc-2");
    assert_eq!(j["recorder"]["mem_available_bytes"][0], 900u64 << 20);
    assert_eq!(j["recorder"]["cgroups"]["/app"][19], 290u64 << 20);
    assert_eq!(j["recorder"]["t_s"].as_array().unwrap().len(), 20);

    // HTML: a sparkline per series, the growers and the first trigger.
    let html = dir.path().join("r.html");
    oomguard()
        .args(["explain", "--color", "never", "--events"])
        .arg(&events)
        .arg("--html")
        .arg(&html)
        .arg(&log)
        .assert()
        .code(0);
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(h.contains("<h3>What led up to it</h3>"), "{h}");
    assert_eq!(h.matches("<svg class=\"sparkline\"").count(), 2, "{h}");
    let spark = h.split("<svg class=\"sparkline\"").nth(1).unwrap();
    let pts = spark
        .split("points=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let ys: Vec<f64> = pts
        .split(' ')
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(ys.len(), 20);
    // MemAvailable falls: the line goes from the top (y 0) to the bottom (y 40).
    assert_eq!((ys[0], ys[19]), (0.0, 40.0), "{pts}");
    assert!(h.contains("MemAvailable</th>"), "{h}");
    assert!(h.contains("cgroup /app usage</th>"), "{h}");
    assert!(h.contains("python3 <span class=\"dim\">(pid 13243)</span> +190 MiB"));
    assert!(h.contains("fired 0.5 s before the kill"), "{h}");
}

#[test]
fn an_iso_time_joins_within_seconds_and_nothing_else_joins() {
    let log = fixture("memcg-allocating-task.dmesg-iso.log");
    let evs = parsed(&log);
    assert_eq!(evs.len(), 1, "{evs:?}");
    let ev = &evs[0];
    let t = ev["time"].as_str().unwrap().to_owned();
    assert!(t.starts_with("2026-11-29T"), "{t}");
    // 2026-11-29T00:00:00Z is 1795910400 (`date -u -d 2026-11-29 +%s`).
    let hms: Vec<f64> = t[11..19].split(':').map(|v| v.parse().unwrap()).collect();
    let wall = 1_795_910_400.0 + hms[0] * 3600.0 + hms[1] * 60.0 + hms[2];
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let run = |lines: &[String]| -> String {
        std::fs::write(&events, lines.join("\n")).unwrap();
        let out = oomguard()
            .args(["explain", "--color", "never", "--events"])
            .arg(&events)
            .arg(&log)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    // The daemon stamped it 1.5 s after the report's time: joined.
    let mut d: Value = serde_json::from_str(&daemon_line(ev, wall + 1.5, "iso-1", 0)).unwrap();
    d.as_object_mut().unwrap().remove("kernel_time_s");
    let text = run(&[d.to_string()]);
    assert!(
        text.contains("Led up to it (oomguard's event log, event iso-1)"),
        "{text}"
    );
    // 60 s later it is another kill of a reused pid: not joined.
    d["unix_time_s"] = Value::from(wall + 60.0);
    assert!(!run(&[d.to_string()]).contains("Led up to it"));
    // The same time but another name: not joined.
    d["unix_time_s"] = Value::from(wall);
    d["comm"] = Value::from("other");
    assert!(!run(&[d.to_string()]).contains("Led up to it"));
}

#[test]
fn a_missing_or_unreadable_event_log_is_one_note_and_never_an_error() {
    let log = fixture("memcg-allocating-task.dmesg.log");
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.jsonl");
    let out = oomguard()
        .args(["explain", "--color", "never", "--events"])
        .arg(&missing)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.lines().filter(|l| l.contains("event log")).count(),
        1,
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "cannot read oomguard's event log {}",
            missing.display()
        )),
        "{err}"
    );
    // A directory where the file should be.
    let out = oomguard()
        .args(["explain", "--color", "never", "--events"])
        .arg(dir.path())
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("cannot read oomguard's event log"));
    assert!(String::from_utf8(out.stdout).unwrap().contains("python3"));
}
