//! The fleet files shipped in `deploy/`: Prometheus alert rules (checked and unit-tested with
//! Debian's `promtool`), the Grafana dashboard (valid JSON), and both naming only series the
//! daemon really exports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use oomguard::tell::metrics::Metrics;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every series name the registry exports, with every optional gauge set.
fn exported() -> BTreeSet<String> {
    let mut m = Metrics::new("test", &["/a".to_owned()]);
    m.memory_total_bytes = Some(1.0);
    m.memory_available_bytes = Some(1.0);
    m.swap_total_bytes = Some(1.0);
    m.swap_free_bytes = Some(1.0);
    m.psi_some_avg10_ratio = Some(0.0);
    m.psi_full_avg10_ratio = Some(0.0);
    m.cgroups[0].usage_bytes = Some(1.0);
    m.cgroups[0].limit_bytes = Some(1.0);
    m.render()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("oomguard_") {
        let start = i + off;
        // Only whole identifiers (not e.g. `DS_oomguard_x`).
        let prev_ok = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start + "oomguard_".len();
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end].is_ascii_digit() || b[end] == b'_')
        {
            end += 1;
        }
        if prev_ok {
            out.insert(text[start..end].to_owned());
        }
        i = end;
    }
    out
}

#[test]
fn rules_and_dashboard_name_only_exported_series() {
    let have = exported();
    for f in [
        "prometheus/oomguard-rules.yml",
        "prometheus/oomguard-rules.test.yml",
        "grafana/oomguard.json",
    ] {
        let text = std::fs::read_to_string(deploy().join(f)).unwrap();
        let names = referenced(&text);
        assert!(!names.is_empty(), "{f}");
        let missing: Vec<_> = names.difference(&have).collect();
        assert!(
            missing.is_empty(),
            "{f} names series the daemon does not export: {missing:?}"
        );
    }
}

#[test]
fn dashboard_is_valid_json_with_unique_panel_ids() {
    let text = std::fs::read_to_string(deploy().join("grafana/oomguard.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = v["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let ids: BTreeSet<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len());
    for p in panels {
        for t in p["targets"].as_array().unwrap() {
            assert!(!t["expr"].as_str().unwrap().is_empty());
        }
    }
}

fn promtool() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/promtool");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: promtool not installed (apt-get install prometheus; scripts/test.sh does)"
        );
        None
    }
}

#[test]
fn promtool_check_and_test_rules() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = deploy().join("prometheus");
    for args in [
        ["check", "rules", "oomguard-rules.yml"],
        ["test", "rules", "oomguard-rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
