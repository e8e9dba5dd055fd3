//! Workload identity on the real kernel: real memcg OOM kills in v1 memory cgroups named as
//! each container runtime and the kubelet name theirs, below the test's own memcg (so the
//! kernel prints `<own memcg>/oomguard-test-…/<runtime shape>`: the full path from the
//! hierarchy root, which is why the parser finds the shapes at any depth). For each, the
//! kernel's own report, read back from /dev/kmsg by `oomguard explain --json`, and the daemon's
//! kernel-OOM event, read back by `oomguard events --json`, carry the identity fields; names
//! come from a fake kubelet log tree (`--kubelet-logs`, `events.kubelet_logs`).
//!
//! Safety: every hog sets oom_score_adj 1000, caps itself at 200 MiB and runs in a leaf with a
//! 48 MiB limit below a 256 MiB test cgroup; the daemon runs `--dry-run`, restricted to the test
//! cgroup. With `OOMGUARD_REQUIRE_KERNEL=1` a missing prerequisite fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kernel::skip;
use common::{real_kernel_skip_reason, wait_timeout, TestCgroup};
use serde_json::Value;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("oomguard")
}

const UID_BURSTABLE: &str = "0b4a7c2e-1f3d-4e5a-9b6c-7d8e9f0a1b2c";
const UID_BESTEFFORT: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b";
const UID_GUARANTEED: &str = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d";

fn cid(n: u8) -> String {
    format!("{:02x}", n).repeat(32)
}

/// One runtime-shaped leaf: its path below the test cgroup and what the event must say.
struct Shape {
    rel: String,
    runtime: Option<&'static str>,
    id: Option<String>,
    name: Option<&'static str>,
    pod_uid: Option<&'static str>,
    qos: Option<&'static str>,
    unit: Option<String>,
    /// Names the fake kubelet tree gives (namespace, pod, container).
    k8s_names: Option<(&'static str, &'static str, &'static str)>,
    /// A first process (a sleeper) joins before the hog: the kill is of a later process.
    sleeper_first: bool,
}

fn shapes() -> Vec<Shape> {
    let none = || Shape {
        rel: String::new(),
        runtime: None,
        id: None,
        name: None,
        pod_uid: None,
        qos: None,
        unit: None,
        k8s_names: None,
        sleeper_first: false,
    };
    vec![
        // docker, cgroupfs driver.
        Shape {
            rel: format!("docker/{}", cid(1)),
            runtime: Some("docker"),
            id: Some(cid(1)),
            ..none()
        },
        // docker, systemd driver.
        Shape {
            rel: format!("system.slice/docker-{}.scope", cid(2)),
            runtime: Some("docker"),
            id: Some(cid(2)),
            unit: Some(format!("docker-{}.scope", cid(2))),
            ..none()
        },
        // Kubernetes, cgroupfs driver, Burstable; a sidecar-style first process, then the hog:
        // the kill is not of the container's first process.
        Shape {
            rel: format!("kubepods/burstable/pod{UID_BURSTABLE}/{}", cid(3)),
            id: Some(cid(3)),
            pod_uid: Some(UID_BURSTABLE),
            qos: Some("burstable"),
            k8s_names: Some(("shop", "web-7d9f", "web")),
            sleeper_first: true,
            ..none()
        },
        // Kubernetes, systemd driver, containerd, BestEffort.
        Shape {
            rel: format!(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{}.slice/cri-containerd-{}.scope",
                UID_BESTEFFORT.replace('-', "_"),
                cid(4)
            ),
            runtime: Some("containerd"),
            id: Some(cid(4)),
            pod_uid: Some(UID_BESTEFFORT),
            qos: Some("besteffort"),
            unit: Some(format!("cri-containerd-{}.scope", cid(4))),
            k8s_names: Some(("batch", "etl-5c6b", "worker")),
            ..none()
        },
        // Kubernetes, systemd driver, cri-o, Guaranteed (the pod slice right under kubepods).
        Shape {
            rel: format!(
                "kubepods.slice/kubepods-pod{}.slice/crio-{}.scope",
                UID_GUARANTEED.replace('-', "_"),
                cid(5)
            ),
            runtime: Some("cri-o"),
            id: Some(cid(5)),
            pod_uid: Some(UID_GUARANTEED),
            qos: Some("guaranteed"),
            unit: Some(format!("crio-{}.scope", cid(5))),
            ..none()
        },
        // podman (systemd driver, the 4.7+ `container` child).
        Shape {
            rel: format!("machine.slice/libpod-{}.scope/container", cid(6)),
            runtime: Some("podman"),
            id: Some(cid(6)),
            unit: Some(format!("libpod-{}.scope", cid(6))),
            ..none()
        },
        // LXC 4.0+.
        Shape {
            rel: "lxc.payload.web01".to_owned(),
            runtime: Some("lxc"),
            name: Some("web01"),
            ..none()
        },
        // systemd-nspawn registered with machined, a service inside it.
        Shape {
            rel: "machine.slice/machine-build01.scope/payload/system.slice/app.service".to_owned(),
            runtime: Some("systemd-nspawn"),
            name: Some("build01"),
            unit: Some("app.service".to_owned()),
            ..none()
        },
    ]
}

/// The fake kubelet log tree for the shapes that have names.
fn kubelet_tree(root: &Path, shapes: &[Shape]) {
    for s in shapes {
        let (Some((ns, pod, c)), Some(uid), Some(id)) = (s.k8s_names, s.pod_uid, &s.id) else {
            continue;
        };
        std::fs::create_dir_all(root.join(format!("pods/{ns}_{pod}_{uid}/{c}"))).unwrap();
        // A second container in the pod, so only the link can name ours.
        std::fs::create_dir_all(root.join(format!("pods/{ns}_{pod}_{uid}/istio-proxy"))).unwrap();
        std::fs::create_dir_all(root.join("containers")).unwrap();
        std::fs::write(root.join(format!("containers/{pod}_{ns}_{c}-{id}.log")), "").unwrap();
    }
}

/// A process that joins `dir` and sleeps (the container's first process).
fn sleeper(dir: &Path) -> Child {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > '{}' && exec sleep 120",
            dir.join("cgroup.procs").display()
        ))
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sleeper")
}

/// Daemon in dry-run with inert thresholds: it only watches /dev/kmsg and the counters here.
fn daemon(dir: &Path, events: &Path, kubelet: &Path, candidates: &str) -> Child {
    let cfg = dir.join("oomguard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[events]\nlog = \"{}\"\njournal = false\nkubelet_logs = \"{}\"\n",
            events.display(),
            kubelet.display()
        ),
    )
    .unwrap();
    let err = std::fs::File::create(dir.join("watch.log")).unwrap();
    Command::new(bin())
        .args([
            "watch",
            "--dry-run",
            "--mem-min",
            "1M",
            "--mem-kill",
            "512K",
        ])
        .arg("--config")
        .arg(&cfg)
        .arg("--candidates-cgroup")
        .arg(candidates)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn daemon")
}

fn wait_text(p: &Path, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::read_to_string(p)
            .unwrap_or_default()
            .contains(needle)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

use common::json_lines;

fn check(ev: &Value, s: &Shape, full: &str, victim: i64, via: &str) {
    let w = &ev["workload"];
    let ctx = format!("{via} {full}: {ev}");
    assert_eq!(ev["task_memcg"], full, "{ctx}");
    assert_eq!(ev["pid"], victim, "{ctx}");
    assert_eq!(w["container_runtime"].as_str(), s.runtime, "{ctx}");
    assert_eq!(w["container_id"].as_str(), s.id.as_deref(), "{ctx}");
    assert_eq!(w["pod_uid"].as_str(), s.pod_uid, "{ctx}");
    assert_eq!(w["qos"].as_str(), s.qos, "{ctx}");
    if let Some(u) = &s.unit {
        assert_eq!(w["unit"].as_str(), Some(u.as_str()), "{ctx}");
    }
    match s.k8s_names {
        Some((ns, pod, c)) => {
            assert_eq!(w["pod_namespace"], ns, "{ctx}");
            assert_eq!(w["pod_name"], pod, "{ctx}");
            assert_eq!(w["container_name"], c, "{ctx}");
        }
        None => assert_eq!(w["container_name"].as_str(), s.name, "{ctx}"),
    }
    // The hog alone: it is the container's first process. After the sleeper: it is not.
    assert_eq!(w["first_process"], !s.sleeper_first, "{ctx}");
}

#[test]
fn real_memcg_ooms_in_runtime_shaped_cgroups_carry_identity() {
    let test = "real_memcg_ooms_in_runtime_shaped_cgroups_carry_identity";
    if let Some(why) = real_kernel_skip_reason() {
        return skip(test, &why);
    }
    if std::fs::File::open("/dev/kmsg").is_err() {
        return skip(test, "/dev/kmsg is not readable");
    }
    let Some(cg) = TestCgroup::new("workload", 256 << 20) else {
        return skip(test, "no test cgroup");
    };
    let tmp = tempfile::tempdir().unwrap();
    let kubelet = tmp.path().join("kubelet");
    let events = tmp.path().join("events.jsonl");
    let shapes = shapes();
    kubelet_tree(&kubelet, &shapes);
    let mut d = daemon(tmp.path(), &events, &kubelet, &cg.rel);
    let watch_log = tmp.path().join("watch.log");
    assert!(
        wait_text(&watch_log, "started on kernel", Duration::from_secs(10)),
        "{}",
        std::fs::read_to_string(&watch_log).unwrap_or_default()
    );

    let mut victims = Vec::new();
    for s in &shapes {
        let dir = cg.dir.join(&s.rel);
        std::fs::create_dir_all(&dir).unwrap();
        // The limit on the container's own cgroup (as runtimes set it), so the OOM memcg is the
        // container and the task dump lists only its processes.
        std::fs::write(dir.join("memory.limit_in_bytes"), (48u64 << 20).to_string()).unwrap();
        let mut first = s.sleeper_first.then(|| sleeper(&dir));
        if first.is_some() {
            // It must be in the cgroup before the hog joins.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .trim()
                .is_empty()
            {
                assert!(Instant::now() < deadline, "sleeper did not join {}", s.rel);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let leaf = TestCgroup {
            dir: dir.clone(),
            rel: format!("{}/{}", cg.rel, s.rel),
            children: Vec::new(),
        };
        let mut hog = leaf.spawn_hog(&["200", "0", "30", "idhog"]);
        let pid = i64::from(hog.id());
        let st = wait_timeout(&mut hog, Duration::from_secs(30)).expect("hog not OOM-killed");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(libc::SIGKILL), "{}: {st:?}", s.rel);
        if let Some(f) = &mut first {
            // The container kept running: its first process is alive after the kill.
            assert!(f.try_wait().unwrap().is_none(), "first process died too");
            let _ = f.kill();
            let _ = f.wait();
        }
        victims.push((leaf.rel.clone(), pid));
        // `leaf` is dropped here: it removes the (now empty) leaf; parents go with `cg`.
    }

    // The daemon's kernel-OOM events, through `oomguard events --json`.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let logged = json_lines(&std::fs::read_to_string(&events).unwrap_or_default());
        let seen = victims
            .iter()
            .filter(|(full, _)| logged.iter().any(|e| e["task_memcg"] == full.as_str()))
            .count();
        if seen == victims.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "daemon logged {seen} of {} kills\n{}",
            victims.len(),
            std::fs::read_to_string(&watch_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(bin())
        .args(["events", "--json", "--file"])
        .arg(&events)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let logged = json_lines(&String::from_utf8_lossy(&out.stdout));
    let text = Command::new(bin())
        .args(["events", "--file"])
        .arg(&events)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    // The journal line (no journald here: the daemon prints it on stderr).
    let stderr = std::fs::read_to_string(&watch_log).unwrap_or_default();
    for (s, (full, pid)) in shapes.iter().zip(&victims) {
        let ev = logged
            .iter()
            .find(|e| e["task_memcg"] == full.as_str() && e["source"] == "kernel")
            .unwrap_or_else(|| panic!("no event for {full}"));
        check(ev, s, full, *pid, "events --json");
        assert_eq!(ev["detection"]["via"], "kmsg");
        if let Some((ns, pod, c)) = s.k8s_names {
            let phrase = format!(
                "container {c} of pod {ns}/{pod} (uid {})",
                s.pod_uid.unwrap()
            );
            assert!(
                text.contains(&phrase),
                "events text lacks {phrase}:\n{text}"
            );
            assert!(
                stderr.contains(&phrase),
                "journal line lacks {phrase}:\n{stderr}"
            );
        }
    }
    assert!(
        text.contains("(not the container's first process: the container kept running; Kubernetes will not report this)"),
        "{text}"
    );
    // SAFETY: the daemon is this test's own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    let _ = wait_timeout(&mut d, Duration::from_secs(10));

    // The kernel's own reports, from /dev/kmsg, through `oomguard explain --json`.
    let out = Command::new(bin())
        .args(["explain", "--json", "--kubelet-logs"])
        .arg(&kubelet)
        .output()
        .unwrap();
    let explained = json_lines(&String::from_utf8_lossy(&out.stdout));
    let text = Command::new(bin())
        .args(["explain", "--color", "never", "--kubelet-logs"])
        .arg(&kubelet)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    for (s, (full, pid)) in shapes.iter().zip(&victims) {
        let ev = explained
            .iter()
            .rev()
            .find(|e| e["task_memcg"] == full.as_str() && e["pid"] == *pid)
            .unwrap_or_else(|| panic!("explain found no report for {full} pid {pid}"));
        check(ev, s, full, *pid, "explain --json");
        // The kernel printed the full path from the v1 hierarchy root, test prefix included.
        assert_eq!(ev["oom_memcg"], full.as_str());
    }
    assert!(
        text.contains(&format!(
            "Workload container web of pod shop/web-7d9f (uid {UID_BURSTABLE}), QoS burstable"
        )),
        "{text}"
    );
    assert!(text.contains(": not the container's first process: the container kept running"));
    drop(cg);
}

/// `oomguard run` inside a container-shaped cgroup (`--cgroup-parent` a podman scope): its
/// kernel-OOM death event names the container, and the kill of its main process is a kill of
/// the first process.
#[test]
fn run_death_in_a_container_shaped_cgroup_carries_identity() {
    let test = "run_death_in_a_container_shaped_cgroup_carries_identity";
    if let Some(why) = real_kernel_skip_reason() {
        return skip(test, &why);
    }
    let Some(cg) = TestCgroup::new("workload-run", 256 << 20) else {
        return skip(test, "no test cgroup");
    };
    let id = cid(7);
    let parent = cg.dir.join(format!("machine.slice/libpod-{id}.scope"));
    std::fs::create_dir_all(&parent).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("quiet.toml");
    std::fs::write(&cfg, "[events]\nlog = \"\"\njournal = false\n").unwrap();
    let events = tmp.path().join("run.jsonl");
    let py = common::python().unwrap();
    const HOG: &str = "import sys\nopen('/proc/self/oom_score_adj','w').write('1000')\n\
                       c=[]\nfor i in range(200): c.append(b'x' * (1 << 20))\nprint('survived')";
    let mut out = Command::new(bin())
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--memory-max", "48M", "--name", "wl", "--restart", "never"])
        .arg("--cgroup-parent")
        .arg(&parent)
        .arg("--json-events")
        .arg(&events)
        .args(["--", py, "-c", HOG])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("run.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    // Never left running: a hang is a failure, not a stuck test.
    let st = wait_timeout(&mut out, Duration::from_secs(60)).expect("oomguard run did not end");
    let err = std::fs::read_to_string(tmp.path().join("run.err")).unwrap_or_default();
    assert_eq!(st.code(), Some(137), "{st:?}\n{err}");
    let evs = json_lines(&std::fs::read_to_string(&events).unwrap());
    let ev = evs
        .iter()
        .find(|e| e["run"]["cause"] == "kernel_oom")
        .unwrap_or_else(|| panic!("no kernel_oom death: {evs:?}"));
    let w = &ev["workload"];
    assert_eq!(w["container_runtime"], "podman", "{ev}");
    assert_eq!(w["container_id"], id.as_str(), "{ev}");
    assert_eq!(w["unit"], format!("libpod-{id}.scope"), "{ev}");
    assert_eq!(w["first_process"], true, "{ev}");
    assert_eq!(ev["pid"], ev["run"]["main_pid"]);
    // `oomguard events` shows it.
    let text = Command::new(bin())
        .args(["events", "--file"])
        .arg(&events)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("podman container {}", &id[..12])),
        "{text}"
    );
    drop(cg);
}
