//! `oomguard drill` on the real kernel against a daemon the test starts: it passes when the
//! deployment works, and fails naming the step when the daemon is stopped, runs in dry run, or
//! a hook is broken. Each test guards only `<its own throwaway cgroup>/oomguard-drill-*` (below
//! the test's memcg, limited to 512 MiB), so its daemon can see no other test's hog and no other
//! process at all: the system-wide thresholds are 1 MiB / 512 KiB, inert.
//!
//! Without root or a v1 memory controller the tests skip, and fail instead when
//! `OOMGUARD_REQUIRE_KERNEL=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_timeout, TestCgroup};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("oomguard")
}

/// The parent cgroup for one test, or `None` where real-kernel tests cannot run (skipped, or a
/// failure with `OOMGUARD_REQUIRE_KERNEL=1`, by the one skip rule inside `TestCgroup::new`).
fn parent(name: &str) -> Option<TestCgroup> {
    TestCgroup::new(name, 512 << 20)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup(cg: &TestCgroup, hook: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("oomguard.toml");
    let hook = hook
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config,
        format!(
            r#"[memory]
term_below = "1M"
kill_below = "512K"
[kill]
term_grace = "500ms"
[[cgroups]]
path = "{}/oomguard-drill-*"
headroom = "24M"
[events]
log = "{}"
journal = false
[metrics]
listen = "127.0.0.1:{}"
[[hooks]]
on = "post_kill"
command = [{hook}]
timeout = "2s"
"#,
            cg.rel,
            dir.path().join("events.jsonl").display(),
            free_port()
        ),
    )
    .unwrap();
    Setup { dir, config }
}

/// The daemon, in its own process group, stderr to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(s: &Setup, extra: &[&str]) -> Daemon {
        let log = s.dir.path().join("watch.log");
        let child = Command::new(bin())
            .arg("watch")
            .arg("--config")
            .arg(&s.config)
            .args(extra)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon { child, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.text().contains("serving metrics") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(d.text().contains("serving metrics"), "{}", d.text());
        d
    }
    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn stop(&mut self) {
        // SAFETY: the daemon is this test's own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        wait_timeout(&mut self.child, Duration::from_secs(10)).expect("daemon did not stop");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use std::os::unix::process::CommandExt;

/// Runs the drill; (exit code, stdout).
fn drill(s: &Setup, extra: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .arg("drill")
        .arg("--config")
        .arg(&s.config)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Every `oomguard-drill-*` cgroup left below `cg`.
fn leftovers(cg: &TestCgroup) -> Vec<String> {
    std::fs::read_dir(&cg.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("oomguard-drill-"))
        .collect()
}

#[test]
fn drill_passes_against_a_running_daemon() {
    let Some(cg) = parent("drill-pass") else {
        return;
    };
    let s = setup(&cg, &["/usr/bin/touch", "HOOKFILE"]);
    // The hook touches a file the test can see.
    let hook_file = s.dir.path().join("hook-ran");
    let cfg = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace("HOOKFILE", &hook_file.display().to_string());
    std::fs::write(&s.config, cfg).unwrap();
    let mut d = Daemon::start(&s, &[]);
    let (code, out) = drill(&s, &[]);
    d.stop();
    assert_eq!(code, Some(0), "{out}\n{}", d.text());
    for step in [
        "config",
        "daemon",
        "cgroup",
        "hog",
        "kill",
        "event log",
        "hooks",
        "metrics",
        "cleanup",
    ] {
        assert!(out.contains(&format!("pass {step}: ")), "{step}:\n{out}");
    }
    assert!(out.contains("the cgroup's oom_kill stayed 0"), "{out}");
    if Path::new("/run/systemd/journal/socket").exists() {
        assert!(out.contains("journal: "), "{out}");
    } else {
        assert!(out.contains("skip journal: skipped: no journald"), "{out}");
    }
    assert!(out.trim_end().ends_with("drill passed"), "{out}");
    assert!(hook_file.exists(), "the post_kill hook did not run");
    assert!(
        leftovers(&cg).is_empty(),
        "cgroup left behind: {:?}",
        leftovers(&cg)
    );
    assert_eq!(cg.oom_kills(), 0, "the kernel killed in the test's cgroup");
}

#[test]
fn drill_fails_at_the_daemon_step_when_the_daemon_is_stopped() {
    let Some(cg) = parent("drill-stopped") else {
        return;
    };
    let s = setup(&cg, &["/usr/bin/true"]);
    let mut d = Daemon::start(&s, &[]);
    d.stop();
    let (code, out) = drill(&s, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL daemon: no `oomguard watch` is running"),
        "{out}"
    );
    assert!(out.contains("drill FAILED: daemon"), "{out}");
    // Nothing was started or created.
    assert!(!out.contains("hog:"), "{out}");
    assert!(leftovers(&cg).is_empty());
}

#[test]
fn drill_fails_at_the_kill_step_in_dry_run() {
    let Some(cg) = parent("drill-dry") else {
        return;
    };
    let s = setup(&cg, &["/usr/bin/true"]);
    let mut d = Daemon::start(&s, &["--dry-run"]);
    let (code, out) = drill(&s, &["--timeout", "15s"]);
    d.stop();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("(started with --dry-run: it will not kill)"),
        "{out}"
    );
    assert!(out.contains("FAIL kill: "), "{out}");
    assert!(
        out.contains("FAIL event log: ") && out.contains("dry run"),
        "{out}"
    );
    assert!(out.contains("drill FAILED: kill"), "{out}");
    assert!(out.contains("pass cleanup: "), "{out}");
    assert!(
        leftovers(&cg).is_empty(),
        "cgroup left behind: {:?}",
        leftovers(&cg)
    );
}

#[test]
fn drill_fails_at_the_hooks_step_when_the_hook_is_broken() {
    let Some(cg) = parent("drill-hook") else {
        return;
    };
    let s = setup(&cg, &["/bin/false"]);
    let mut d = Daemon::start(&s, &[]);
    let (code, out) = drill(&s, &[]);
    d.stop();
    assert_eq!(code, Some(1), "{out}\n{}", d.text());
    assert!(out.contains("pass kill: "), "{out}");
    assert!(out.contains("FAIL hooks: post_kill: 1 failed"), "{out}");
    assert!(out.contains("drill FAILED: hooks"), "{out}");
    assert!(leftovers(&cg).is_empty());
}

#[test]
fn drill_refuses_a_cgroup_it_cannot_confine() {
    let Some(cg) = parent("drill-refuse") else {
        return;
    };
    let s = setup(&cg, &["/usr/bin/true"]);
    let mut d = Daemon::start(&s, &[]);
    // The parent has a 512 MiB limit: above the hog's 256 MiB cap, and not guarded.
    let (code, out) = drill(&s, &["--cgroup", &cg.rel]);
    d.stop();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL cgroup: refused: "), "{out}");
    assert!(!out.contains("hog:"), "{out}");
}
