//! The time-to-OOM forecast on the real kernel: a capped hog (`examples/hog.rs`, oom_score_adj
//! 1000) fills a throwaway v1 memory cgroup of 256 MiB at a known rate (64, 256, 1024 MiB/s; the
//! 1024 MiB/s cell also into 1 GiB, so that its fill lasts about a second too)
//! while `oomguard watch` guards it in watch-only mode (headroom 0, so the kernel's memcg OOM
//! killer ends the hog at the limit); the daemon's `forecast` event must arrive with a finite,
//! positive estimate. Each run prints the estimate against the real time from the event to the
//! hog's death (`FORECAST rate=... estimate_s=... real_s=... error_s=...`) and the rate the hog
//! really reached (from its own `--progress` lines, not assumed); bench/forecast.sh
//! repeats the runs and summarises them (docs/triggers.md). Timing is printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{kernel, TestCgroup};

/// `OOMGUARD_HOG` (bench/forecast.sh points it at an optimised build), else the hog example
/// next to the test's `oomguard`.
fn hog_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OOMGUARD_HOG") {
        return Some(PathBuf::from(p));
    }
    let bin = assert_cmd::cargo::cargo_bin("oomguard");
    let p = bin.parent()?.join("examples/hog");
    p.exists().then_some(p)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One run at `rate_mib_s` into a cgroup of `limit_mib`; returns (estimate, real) seconds, or
/// `None` when skipped.
fn run(rate_mib_s: u32, limit_mib: u64, lead: &str) -> Option<(f64, f64)> {
    let name = format!("forecast{rate_mib_s}-{limit_mib}");
    let limit_bytes = limit_mib << 20;
    let hog = match hog_bin() {
        Some(h) => h,
        None => {
            kernel::skip(&name, "examples/hog is not built (`cargo test` builds it; alone: `cargo build -p oomguard --example hog`)");
            return None;
        }
    };
    let cg = TestCgroup::new(&name, limit_bytes)?;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("oomguard.toml");
    std::fs::write(
        &config,
        format!(
            "[memory]\nterm_below = \"1M\"\nkill_below = \"512K\"\n\n[events]\nlog = \"{}\"\njournal = false\n\n[forecast]\nlead = \"{lead}\"\n\n[[cgroups]]\npath = \"{}\"\nheadroom = \"0\"\n",
            events.display(),
            cg.rel
        ),
    )
    .unwrap();
    let log = dir.path().join("watch.log");
    let mut daemon = Command::new(assert_cmd::cargo::cargo_bin("oomguard"))
        .arg("watch")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("guarding cgroup")
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "daemon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the daemon take a few readings of the idle cgroup first (a fill from rest).
    std::thread::sleep(Duration::from_millis(500));
    let mut h = Command::new(hog)
        .arg("--join")
        .arg(&cg.dir)
        .arg("--adj")
        .arg("1000")
        .arg("--mib")
        .arg((limit_mib + limit_mib / 2).to_string())
        .arg("--progress")
        .arg("--rate")
        .arg(rate_mib_s.to_string())
        .arg("--hold")
        .arg("30")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(h.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready "), "hog said {line:?}");
    let ready_at = unix_now();
    // The hog's own progress (`at MIB SECONDS`, seconds since `ready`), read until it dies.
    let progress = std::thread::spawn(move || {
        let mut last = None;
        for l in out.lines().map_while(Result::ok) {
            let mut w = l.split_whitespace();
            if w.next() == Some("at") {
                let mib: f64 = w.next().unwrap().parse().unwrap();
                let s: f64 = w.next().unwrap().parse().unwrap();
                last = Some((mib, s));
            }
        }
        last
    });
    // Blocks until the kernel's memcg OOM killer ends it (capped at 1.5 times the limit).
    let st = common::wait_timeout(&mut h, Duration::from_secs(40)).expect("hog not killed");
    let (reached_mib, reached_s) = progress.join().unwrap().expect("hog progress lines");
    let died_at = unix_now();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: the daemon is this test's own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let _ = common::wait_timeout(&mut daemon, Duration::from_secs(10));
    let _ = daemon.kill();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL), "hog {st:?}\n{text}");
    let evs = common::read_events(&events);
    let fc: Vec<&serde_json::Value> = evs.iter().filter(|e| e["kind"] == "forecast").collect();
    assert_eq!(
        fc.len(),
        1,
        "one forecast event per episode\n{text}\n{evs:?}"
    );
    let f = &fc[0]["forecast"];
    assert_eq!(f["scope"], cg.rel.as_str(), "{f}");
    let est = f["seconds_to_oom"].as_f64().expect("finite estimate");
    assert!(est.is_finite() && est > 0.0, "{f}");
    assert!(f["fill_bytes_per_s"].as_f64().unwrap() > 0.0, "{f}");
    let at = fc[0]["unix_time_s"].as_f64().unwrap();
    assert!(
        at >= ready_at - 1.0 && at <= died_at,
        "{at} {ready_at} {died_at}"
    );
    // The hog is the only process there: it is the top grower.
    assert_eq!(f["growers"][0]["name"], "hog", "{f}");
    let real = died_at - at;
    // achieved: the hog's own clock over what it had touched at its last progress line (a
    // rate from rest, before the limit); to_death: the limit over ready-to-death, which also
    // counts the memcg's reclaim retries, the kill and the exit.
    println!(
        "FORECAST rate_mib_s={rate_mib_s} limit_mib={limit_mib} lead={lead} estimate_s={est:.3} real_s={real:.3} error_s={:+.3} fill_from_ready_s={:.3} achieved_mib_s={:.0} to_death_mib_s={:.0} smoothed_mib_s={:.0}",
        est - real,
        died_at - ready_at,
        reached_mib / reached_s,
        limit_mib as f64 / (died_at - ready_at),
        f["fill_bytes_per_s"].as_f64().unwrap() / f64::from(1u32 << 20)
    );
    Some((est, real))
}

#[test]
fn forecast_event_before_a_64_mib_per_s_fill_reaches_the_limit() {
    run(64, 256, "1s");
}

#[test]
fn forecast_event_before_a_256_mib_per_s_fill_reaches_the_limit() {
    run(256, 256, "1s");
}

#[test]
fn forecast_event_before_a_1024_mib_per_s_fill_reaches_the_limit() {
    run(1024, 256, "1s");
}

/// The same rate into 1 GiB: a fill of about a second, like the 256 MiB/s cell's.
#[test]
fn forecast_event_before_a_1024_mib_per_s_fill_reaches_a_1_gib_limit() {
    run(1024, 1024, "1s");
}
