//! Every fixture in tests/fixtures/explain/{real,eras,pasted,vm} through the real binary: the events
//! `oomguard explain --json` prints must match the `.expected.json` beside each log, field by
//! field. The expected files were written by reading the log text (and, for `real/`, checked
//! against what the producing script knew independently: pids, cgroups, limits), never by
//! running oomguard.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/explain")
}

fn expected_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["real", "eras", "pasted", "vm"] {
        let Ok(rd) = std::fs::read_dir(fixtures_root().join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.to_string_lossy().ends_with(".log.expected.json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn run_json(log: &Path) -> Vec<Value> {
    let out = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--json"])
        .arg(log)
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "{}: exit {code:?}: {}",
        log.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-6
        }
        _ => a == b,
    }
}

/// Compares one event; returns the differences as text.
fn compare(exp: &Value, got: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let exp = exp.as_object().unwrap();
    for (k, v) in exp {
        match k.as_str() {
            "notes" | "tasks" => {}
            "tasks_len" => {
                let n = got["tasks"].as_array().map_or(0, Vec::len) as u64
                    + got["tasks_dropped"].as_u64().unwrap_or(0);
                if Some(n) != v.as_u64() {
                    diffs.push(format!("tasks_len: expected {v}, got {n}"));
                }
            }
            "tasks_sample" => {
                for row in v.as_array().into_iter().flatten() {
                    let pid = &row["pid"];
                    let found = got["tasks"]
                        .as_array()
                        .and_then(|t| t.iter().find(|r| &r["pid"] == pid));
                    match found {
                        None => diffs.push(format!("task row pid {pid} missing")),
                        Some(g) => {
                            for (rk, rv) in row.as_object().unwrap() {
                                if !same(rv, &g[rk]) {
                                    diffs.push(format!(
                                        "task {pid} {rk}: expected {rv}, got {}",
                                        g[rk]
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            _ => {
                if !same(v, &got[k]) {
                    diffs.push(format!("{k}: expected {v}, got {}", got[k]));
                }
            }
        }
    }
    diffs
}

#[test]
fn every_fixture_matches_its_expected_events() {
    let files = expected_files();
    assert!(
        files.len() >= 50,
        "fixture corpus missing: found {}",
        files.len()
    );
    let mut failures = Vec::new();
    let mut events_checked = 0;
    for exp_path in &files {
        let log = PathBuf::from(
            exp_path
                .to_string_lossy()
                .trim_end_matches(".expected.json"),
        );
        let exp: Value = serde_json::from_str(&std::fs::read_to_string(exp_path).unwrap()).unwrap();
        let exp_events = exp["events"].as_array().unwrap();
        let got = run_json(&log);
        let name = log
            .strip_prefix(fixtures_root())
            .unwrap_or(&log)
            .display()
            .to_string();
        if got.len() != exp_events.len() {
            failures.push(format!(
                "{name}: expected {} events, got {}",
                exp_events.len(),
                got.len()
            ));
            continue;
        }
        for (i, (e, g)) in exp_events.iter().zip(&got).enumerate() {
            events_checked += 1;
            for d in compare(e, g) {
                failures.push(format!("{name} event {i}: {d}"));
            }
        }
    }
    eprintln!(
        "{} fixture files, {events_checked} events checked",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Newest-first logs (`journalctl -r`, log-search exports): every real 6.18 report in its
/// syslog forms, line order reversed, must give the same events as read oldest-first (their
/// `line` aside, which counts physical lines of the reversed file).
#[test]
fn newest_first_logs_give_the_same_events() {
    let dir = fixtures_root().join("real");
    let tmp = std::env::temp_dir().join(format!("oomguard-reversed-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".kern.log") || n.ends_with(".journal-short-precise.log")
        })
        .collect();
    logs.sort();
    for log in logs {
        let text = std::fs::read_to_string(&log).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.reverse();
        let rev = tmp.join(log.file_name().unwrap());
        std::fs::write(&rev, lines.join("\n") + "\n").unwrap();
        let fwd = run_json(&log);
        let back = run_json(&rev);
        let name = log.file_name().unwrap().to_string_lossy().to_string();
        if fwd.len() != back.len() {
            failures.push(format!(
                "{name}: {} events, reversed {}",
                fwd.len(),
                back.len()
            ));
            continue;
        }
        for (i, (a, b)) in fwd.iter().zip(&back).enumerate() {
            checked += 1;
            let mut a = a.clone();
            let mut b = b.clone();
            for v in [&mut a, &mut b] {
                v.as_object_mut().unwrap().remove("line");
            }
            if a != b {
                for (k, va) in a.as_object().unwrap() {
                    if !same(va, &b[k]) {
                        failures.push(format!("{name} event {i}: {k}: {va} vs reversed {}", b[k]));
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(checked >= 8, "too few events checked: {checked}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
