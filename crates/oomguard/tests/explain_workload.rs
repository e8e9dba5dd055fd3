//! `oomguard explain` on a real memcg OOM report from a log file (the kernel's records as
//! /dev/kmsg shows them, kept as a fixture), in a cgroup named as the kubelet names one:
//! the workload in text, JSON and HTML, names from a kubelet log tree given with
//! `--kubelet-logs`, and the flag for a kill of a process that is not the container's first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use assert_cmd::Command;

/// A real 6.18 report (see `tests/fixtures/workload/README.md`): a Burstable pod's container
/// (cgroupfs driver shape) whose first process is a `sleep`; the kernel killed the hog.
fn report() -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/workload/kubepods-burstable-second-process.kmsg.log"),
    )
    .unwrap()
}

const UID: &str = "0b4a7c2e-1f3d-4e5a-9b6c-7d8e9f0a1b2c";
const ID: &str = "0303030303030303030303030303030303030303030303030303030303030303";

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("kern.log");
    std::fs::write(&log, report()).unwrap();
    let kl = dir.path().join("kubelet");
    std::fs::create_dir_all(kl.join(format!("pods/spark_app-0_{UID}/app"))).unwrap();
    std::fs::create_dir_all(kl.join("containers")).unwrap();
    std::fs::write(kl.join(format!("containers/app-0_spark_app-{ID}.log")), "").unwrap();
    (dir, log, kl)
}

#[test]
fn kubernetes_report_names_the_pod_in_json_text_and_html() {
    let (dir, log, kl) = setup();
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--json", "--kubelet-logs"])
        .arg(&kl)
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = &ev["workload"];
    assert_eq!(w["pod_uid"], UID);
    assert_eq!(w["container_id"], ID);
    assert_eq!(w["pod_namespace"], "spark");
    assert_eq!(w["pod_name"], "app-0");
    assert_eq!(w["container_name"], "app");
    assert_eq!(w["qos"], "burstable");
    assert_eq!(ev["pid"], 18718);
    assert_eq!(w["first_process"], false);

    let html = dir.path().join("r.html");
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--color", "never", "--kubelet-logs"])
        .arg(&kl)
        .arg("--html")
        .arg(&html)
        .arg(&log)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "Workload container app of pod spark/app-0 (uid {UID}), QoS burstable"
        )),
        "{text}"
    );
    assert!(text.contains(
        "pid 18718: not the container's first process: the container kept running; Kubernetes will not report this"
    ), "{text}");
    let h = std::fs::read_to_string(&html).unwrap();
    assert!(
        h.contains("<dt>Workload</dt><dd>container app of pod spark/app-0"),
        "{h}"
    );
    assert!(h.contains("the container kept running"));
    assert!(h.contains("<code>workload.pod_uid</code>"));
}

#[test]
fn without_the_kubelet_tree_only_the_path_is_known() {
    let (dir, log, _) = setup();
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--json", "--kubelet-logs"])
        .arg(dir.path().join("missing"))
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["workload"]["pod_uid"], UID);
    assert_eq!(ev["workload"]["pod_name"], serde_json::Value::Null);
    assert_eq!(ev["workload"]["container_name"], serde_json::Value::Null);
}
