//! `oomguard doctor`'s kernel-log finding, firing and not firing, on real reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use assert_cmd::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/explain")
        .join(name)
}

fn doctor_json(log: &std::path::Path) -> serde_json::Value {
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["doctor", "--json", "--kernel-log"])
        .arg(log)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn finding(v: &serde_json::Value) -> serde_json::Value {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "kernel_oom_kills")
        .cloned()
        .expect("no kernel_oom_kills finding")
}

#[test]
fn global_oom_in_the_log_is_critical() {
    let f = finding(&doctor_json(&fixture(
        "eras/3.x-seed-plumbr-two-records-one-line.log",
    )));
    assert_eq!(f["severity"], "critical");
    assert!(
        f["evidence"]
            .to_string()
            .contains("\\\"java\\\" (pid 29957) in whole machine"),
        "{f}"
    );
}

#[test]
fn memcg_oom_in_the_log_is_a_warning() {
    let f = finding(&doctor_json(&fixture("real/memcg-single.kmsg.log")));
    assert_eq!(f["severity"], "warning");
    assert!(
        f["title"]
            .as_str()
            .unwrap()
            .contains("memory cgroup limits"),
        "{f}"
    );
}

#[test]
fn a_quiet_log_is_ok_and_an_unreadable_one_is_listed_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("kern.log");
    std::fs::write(&quiet, "Jun  4 07:41:59 h kernel: eth0: link up\n").unwrap();
    assert_eq!(finding(&doctor_json(&quiet))["severity"], "ok");
    let v = doctor_json(&dir.path().join("absent.log"));
    assert!(v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["id"] != "kernel_oom_kills"));
    assert!(v["missing"].to_string().contains("absent.log"), "{v}");
}
