#![allow(clippy::unwrap_used)]
use super::*;

const MIB: u64 = 1 << 20;

fn cfg(span_ms: u64, interval_ms: u64) -> RecorderConfig {
    RecorderConfig {
        span: Duration::from_millis(span_ms),
        interval: Duration::from_millis(interval_ms),
    }
}

fn grower(pid: i64, name: &str, rss: u64, growth: Option<i64>) -> Grower {
    Grower {
        pid,
        name: name.to_owned(),
        rss_bytes: rss,
        growth_bytes: growth,
    }
}

#[test]
fn off_when_span_is_zero() {
    assert!(Recorder::new(&cfg(0, 1000), 4).is_none());
    assert_eq!(cfg(0, 1000).capacity(), 0);
    assert!(cfg(0, 0).validate().is_ok());
}

#[test]
fn capacity_is_span_over_interval_rounded_up() {
    assert_eq!(RecorderConfig::default().capacity(), 60);
    assert_eq!(cfg(2500, 1000).capacity(), 3);
    let r = Recorder::new(&cfg(2500, 1000), 0).unwrap();
    assert_eq!(r.capacity(), 3);
    assert!(r.is_empty());
}

#[test]
fn validate_names_the_key() {
    let e = cfg(60_000, 1).validate().unwrap_err();
    assert!(e.contains("recorder.interval"), "{e}");
    let e = cfg(1000, 2000).validate().unwrap_err();
    assert!(e.contains("longer than recorder.span"), "{e}");
    let e = cfg(7_200_000, 1000).validate().unwrap_err();
    assert!(e.contains("7200 samples"), "{e}");
    assert!(RecorderConfig::default().validate().is_ok());
}

#[test]
fn config_keys_parse_and_unknown_ones_are_refused() {
    let c =
        crate::config::parse("[recorder]\nspan = \"30s\"\ninterval = \"500ms\"\n", "t").unwrap();
    assert_eq!(c.recorder.capacity(), 60);
    let c = crate::config::parse("[recorder]\nspan = \"0s\"\n", "t").unwrap();
    assert_eq!(c.recorder.capacity(), 0);
    let e = crate::config::parse("[recorder]\nseconds = 60\n", "t").unwrap_err();
    assert!(e.to_string().contains("seconds"), "{e}");
    let e = crate::config::parse("[recorder]\ninterval = \"1ms\"\n", "t").unwrap_err();
    assert!(e.to_string().contains("recorder.interval"), "{e}");
}

#[test]
fn due_once_per_interval() {
    let mut r = Recorder::new(&cfg(10_000, 1000), 0).unwrap();
    let t0 = Instant::now();
    assert!(r.due(t0));
    r.begin(t0, 1, 2, None, None);
    r.end();
    assert!(!r.due(t0 + Duration::from_millis(999)));
    assert!(r.due(t0 + Duration::from_millis(1000)));
    // Late by 300 ms: the next one is still due on the cadence (t0 + 2 s).
    r.begin(t0 + Duration::from_millis(1300), 1, 2, None, None);
    assert!(!r.due(t0 + Duration::from_millis(1999)));
    assert!(r.due(t0 + Duration::from_millis(2000)));
}

#[test]
fn ring_wraps_keeping_the_newest_oldest_first() {
    let mut r = Recorder::new(&cfg(3000, 1000), 1).unwrap();
    r.assign(["/app"].into_iter());
    let t0 = Instant::now();
    for i in 0..5u64 {
        r.begin(
            t0 + Duration::from_secs(i),
            100 - i,
            7,
            Some(i as f64),
            None,
        );
        r.cgroup(0, i * MIB);
        r.end();
    }
    assert_eq!(r.len(), 3);
    let rec = r.recording(t0 + Duration::from_secs(4), None);
    assert_eq!(rec.t_s, vec![-2.0, -1.0, 0.0]);
    assert_eq!(rec.mem_available_bytes, vec![98, 97, 96]);
    assert_eq!(rec.swap_free_bytes, vec![7, 7, 7]);
    assert_eq!(rec.psi_some_avg10, vec![Some(2.0), Some(3.0), Some(4.0)]);
    assert_eq!(rec.psi_full_avg10, vec![None, None, None]);
    assert_eq!(
        rec.cgroups["/app"],
        vec![Some(2 * MIB), Some(3 * MIB), Some(4 * MIB)]
    );
    assert_eq!(rec.interval_s, 1.0);
    assert_eq!(rec.span_s, 3.0);
}

#[test]
fn cgroup_outside_an_open_sample_is_not_written() {
    let mut r = Recorder::new(&cfg(3000, 1000), 1).unwrap();
    r.assign(["/a"].into_iter());
    let t0 = Instant::now();
    r.cgroup(0, 5);
    r.begin(t0, 1, 1, None, None);
    r.end();
    r.cgroup(0, 6);
    // Out-of-range columns are ignored, not a panic.
    r.begin(t0 + Duration::from_secs(1), 1, 1, None, None);
    r.cgroup(99, 6);
    r.end();
    let rec = r.recording(t0 + Duration::from_secs(1), None);
    // No cell was ever written: the series is dropped.
    assert!(rec.cgroups.is_empty(), "{:?}", rec.cgroups);
}

#[test]
fn assign_keeps_history_frees_gone_and_reports_overflow() {
    let mut r = Recorder::new(&cfg(3000, 1000), 0).unwrap();
    let t0 = Instant::now();
    assert!(r.assign(["/a", "/b"].into_iter()).is_empty());
    let (a, b) = (r.slot_of("/a").unwrap(), r.slot_of("/b").unwrap());
    r.begin(t0, 1, 1, None, None);
    r.cgroup(a, 10);
    r.cgroup(b, 20);
    r.end();
    // /b goes, /c comes: /a keeps its column and history, /c gets a cleared one.
    assert!(r.assign(["/a", "/c"].into_iter()).is_empty());
    assert_eq!(r.slot_of("/a"), Some(a));
    assert_eq!(r.slot_of("/b"), None);
    let rec = r.recording(t0, None);
    assert_eq!(rec.cgroups.get("/a"), Some(&vec![Some(10)]));
    assert!(!rec.cgroups.contains_key("/b"));
    assert!(!rec.cgroups.contains_key("/c"));
    // More labels than columns: the rest are named back.
    let many: Vec<String> = (0..MIN_CGROUP_SLOTS + 2)
        .map(|i| format!("/g{i}"))
        .collect();
    let left = r.assign(many.iter().map(String::as_str));
    assert_eq!(
        left,
        vec![
            format!("/g{}", MIN_CGROUP_SLOTS),
            format!("/g{}", MIN_CGROUP_SLOTS + 1)
        ]
    );
}

#[test]
fn first_trigger_is_the_episodes_first_within_the_span() {
    let mut r = Recorder::new(&cfg(10_000, 1000), 0).unwrap();
    let t0 = Instant::now();
    r.begin(t0, 1, 1, None, None);
    r.end();
    assert_eq!(r.recording(t0, None).first_trigger_s, None);
    r.note_trigger(t0 + Duration::from_secs(2));
    r.note_trigger(t0 + Duration::from_secs(3));
    let rec = r.recording(t0 + Duration::from_secs(5), None);
    assert_eq!(rec.first_trigger_s, Some(-3.0));
    // Older than the span: forgotten, and the next trigger starts a new episode.
    let late = t0 + Duration::from_secs(20);
    assert_eq!(r.recording(late, None).first_trigger_s, None);
    r.note_trigger(late);
    assert_eq!(r.recording(late, None).first_trigger_s, Some(0.0));
}

#[test]
fn growers_are_kept_in_fixed_slots_and_cut_on_a_char_boundary() {
    let mut r = Recorder::new(&cfg(3000, 1000), 0).unwrap();
    let t0 = Instant::now();
    let many: Vec<Grower> = (0..8)
        .map(|i| grower(i, "worker", (i as u64) * MIB, Some(i * 1000)))
        .collect();
    r.set_growers(&many);
    let rec = r.recording(t0, None);
    assert_eq!(rec.growers.len(), GROWERS);
    assert_eq!(rec.growers[4].pid, 4);
    // 15 ASCII bytes then a 2-byte character: cut before it, never inside.
    r.set_growers(&[grower(9, "abcdefghijklmnoé", 1, None)]);
    let rec = r.recording(t0, None);
    assert_eq!(rec.growers.len(), 1);
    assert_eq!(rec.growers[0].name, "abcdefghijklmno");
    // A kill's own growers win over the kept ones.
    let rec = r.recording(t0, Some(vec![grower(1, "java", 5, Some(4))]));
    assert_eq!(rec.growers[0].name, "java");
}

#[test]
fn summary_says_what_moved() {
    let mut r = Recorder::new(&cfg(60_000, 1000), 1).unwrap();
    r.assign(["/app"].into_iter());
    let t0 = Instant::now();
    for i in 0..60u64 {
        let avail = 3 * 1024 * MIB - i * 48 * MIB;
        r.begin(
            t0 + Duration::from_secs(i),
            avail,
            0,
            Some(i as f64 * 0.65),
            None,
        );
        r.cgroup(0, 10 * MIB + i * 4 * MIB);
        r.end();
    }
    r.note_trigger(t0 + Duration::from_secs(57));
    let now = t0 + Duration::from_secs(59);
    let rec = r.recording(
        now,
        Some(vec![grower(7, "java", 1300 * MIB, Some(1229 * MIB as i64))]),
    );
    let line = rec.summary().unwrap();
    assert_eq!(
        line,
        "last 59 s: MemAvailable 3 GiB → 240 MiB, PSI some 0 → 38 %, cgroup /app 10 MiB → 246 MiB, grew: java +1.20 GiB; first trigger 2.0 s before",
    );
    // Round trip through JSON (as `oomguard events` reads it back).
    let v = serde_json::to_value(&rec).unwrap();
    assert_eq!(v["t_s"].as_array().unwrap().len(), 60);
    assert_eq!(v["first_trigger_s"], -2.0);
    let back: Recording = serde_json::from_value(v).unwrap();
    assert_eq!(back, rec);
    assert_eq!(Recording::default().summary(), None);
}
