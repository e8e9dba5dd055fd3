//! `oomguard run` as a user runs it, on the real kernel: real memcg OOM kills with the kernel's
//! figures, restarts with backoff, exit statuses, signal forwarding, byte-exact stdio,
//! `--warn-at` hysteresis, `--guard`, and bad input.
//!
//! Safety: every test starts only its own processes (the oomguard binary, which starts the
//! command); every memory hog writes 1000 to its own oom_score_adj first, caps itself at
//! 512 MiB and runs in the `run` cgroup with a limit of at most 128 MiB. Each test has a
//! [`Leftovers`] guard that, even when the test fails, SIGKILLs what is left in its uniquely
//! named cgroup (only processes this test started can be there) and removes it.
//!
//! Tests skip with a printed reason when not root, when the cgroup v1 memory controller is not
//! mounted at /sys/fs/cgroup/memory, or (hog tests) when python3 is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{python, V1_MEMORY};
use predicates::prelude::*;

/// Every hog runs under a limit at most this large.
const LIMIT_CAP_MIB: u64 = 128;

/// A memory hog: oom_score_adj 1000 first, then `argv[1]` MiB (capped at 512) touched 1 MiB at a
/// time, `argv[2]` seconds apart; prints `survived` if nothing killed it.
const HOG: &str = r#"
import sys, time
open('/proc/self/oom_score_adj', 'w').write('1000')
mib = min(int(sys.argv[1]), 512)
pause = float(sys.argv[2])
chunks = []
for i in range(mib):
    chunks.append(b'x' * (1 << 20))
    if pause:
        time.sleep(pause)
print('survived', flush=True)
"#;

/// Up past `argv[1]` MiB, hold, down, hold, up again, hold, exit 0 (for `--warn-at`).
const SAWTOOTH: &str = r#"
import sys, time
open('/proc/self/oom_score_adj', 'w').write('1000')
mib = min(int(sys.argv[1]), 100)
for _ in range(2):
    block = b'x' * (mib << 20)
    time.sleep(0.7)
    del block
    time.sleep(0.7)
"#;

fn oomguard() -> Command {
    Command::cargo_bin("oomguard").unwrap()
}

/// A config that sends events nowhere (no event log, no journal, no hooks), so tests neither
/// write to the machine's /var/log nor depend on an /etc/oomguard/oomguard.toml there.
fn quiet_config() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("run_cli-quiet.toml");
        std::fs::write(&p, "[events]\nlog = \"\"\njournal = false\n").unwrap();
        p
    })
    .clone()
}

/// `oomguard run --config <quiet>`.
fn run_cmd() -> Command {
    let mut c = oomguard();
    c.arg("run").arg("--config").arg(quiet_config());
    c
}

/// Our own memory cgroup directory, or `None` (with the reason printed) when the tests cannot
/// run here.
fn own_memcg(test: &str) -> Option<PathBuf> {
    common::own_memcg(test).map(|(dir, _)| dir)
}

/// Removes the test's cgroup on drop if oomguard left it (which is itself a failure, asserted
/// by [`Leftovers::assert_gone`]): SIGKILLs its members, which only this test started. Then
/// removes the `oomguard` group if it is empty: tests run in parallel and share it, and a run
/// removes it only when it created it (another test's run may have).
struct Leftovers {
    dir: PathBuf,
}

impl Leftovers {
    fn new(own: &Path, name: &str) -> Self {
        Self {
            dir: own.join("oomguard").join(name),
        }
    }
    fn assert_gone(&self) {
        assert!(!self.dir.exists(), "{} was left behind", self.dir.display());
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        self.clean();
        if let Some(group) = self.dir.parent() {
            let _ = std::fs::remove_dir(group);
        }
    }
}

impl Leftovers {
    fn clean(&self) {
        if !self.dir.exists() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill(2) on a pid from our own test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("WARNING: could not remove {}", self.dir.display());
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn kernel_oom_is_reported_with_figures_and_restarted_with_backoff() {
    let test = "kernel_oom_restarts";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        if python().is_none() {
            common::kernel::skip(test, "no python3");
        }
        return;
    };
    let name = format!("t-oom-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let limit_mib = 64;
    assert!(limit_mib <= LIMIT_CAP_MIB);
    let out = run_cmd()
        .args(["--memory-max", "64M", "--restart", "on-oom"])
        .args([
            "--max-restarts",
            "2",
            "--backoff",
            "200ms..10s",
            "--name",
            &name,
        ])
        .arg("--json-events")
        .arg(&events)
        .args(["--", py, "-c", HOG, "300", "0"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
    let deaths: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("killed by the kernel OOM killer"))
        .collect();
    assert_eq!(deaths.len(), 3, "first start + 2 restarts");
    for d in &deaths {
        assert!(
            d.contains(&format!(
                "/oomguard/{name} reached its 64.0 MiB limit; RSS at death "
            )),
            "{d}"
        );
        assert!(d.contains("(anon "), "{d}");
    }
    assert!(
        deaths[0].ends_with("restarting in 200 ms (restart 1 of 2)"),
        "{}",
        deaths[0]
    );
    assert!(
        deaths[1].ends_with("restarting in 400 ms (restart 2 of 2)"),
        "{}",
        deaths[1]
    );
    assert!(deaths[2].ends_with("not restarting: --max-restarts 2 reached"));
    assert!(stderr.contains("exiting with status 137"));

    let evs = json_lines(&std::fs::read_to_string(&events).unwrap());
    assert_eq!(evs.len(), 3);
    let delays: Vec<&serde_json::Value> = evs.iter().map(|e| &e["run"]["restart_in_ms"]).collect();
    assert_eq!(
        delays,
        [
            &serde_json::json!(200),
            &serde_json::json!(400),
            &serde_json::Value::Null
        ]
    );
    for e in &evs {
        assert_eq!(e["kind"], "kill");
        assert_eq!(e["source"], "kernel");
        assert_eq!(e["constraint"], "CONSTRAINT_MEMCG");
        assert_eq!(e["memcg_limit_kb"], 65536);
        assert_eq!(e["oom_score_adj"], 1000);
        assert_eq!(e["pid"], e["run"]["main_pid"]);
        assert_eq!(e["run"]["cause"], "kernel_oom");
        assert_eq!(e["run"]["signal"], "SIGKILL");
        assert_eq!(e["run"]["status"], 137);
        // The kernel's own figures: the victim held most of the limit in anonymous memory.
        let anon = e["anon_rss_kb"].as_u64().unwrap();
        assert!((40_000..=70_000).contains(&anon), "anon_rss_kb {anon}");
        assert!(e["oom_memcg"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/oomguard/{name}")));
    }
    left.assert_gone();
}

#[test]
fn restart_never_exits_137_with_the_report() {
    let test = "restart_never_137";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        return;
    };
    let name = format!("t-never-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let out = run_cmd()
        .args(["--memory-max", "48M", "--restart", "never", "--name", &name])
        .args(["--json-events", "-", "--", py, "-c", HOG, "200", "0"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(137));
    assert!(
        stderr.contains("reached its 48.0 MiB limit; RSS at death"),
        "{stderr}"
    );
    assert!(stderr.contains("not restarting (--restart never)"));
    let evs = json_lines(&stderr);
    assert_eq!(
        evs.len(),
        1,
        "one JSON event on stderr with --json-events -"
    );
    assert_eq!(evs[0]["run"]["cause"], "kernel_oom");
    left.assert_gone();
}

#[test]
fn exit_3_is_an_exit_not_an_oom() {
    let Some(own) = own_memcg("exit_3") else {
        return;
    };
    let name = format!("t-exit3-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let out = run_cmd()
        .args(["--memory-max", "64M", "--restart", "never", "--name", &name])
        .args(["--json-events", "-", "--", "sh", "-c", "exit 3"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("exited with status 3; not restarting"),
        "{stderr}"
    );
    assert!(!stderr.contains("OOM"), "{stderr}");
    let evs = json_lines(&stderr);
    assert_eq!(evs[0]["kind"], "exit");
    assert_eq!(evs[0]["source"], "oomguard");
    assert_eq!(evs[0]["run"]["exit_code"], 3);
    assert_eq!(evs[0]["run"]["cause"], "exit");
    left.assert_gone();
}

#[test]
fn sigsegv_is_a_signal_death_not_an_oom_and_on_failure_restarts_it() {
    let Some(own) = own_memcg("sigsegv") else {
        return;
    };
    let name = format!("t-segv-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let cwd = tempfile::tempdir().unwrap(); // in case core dumps are enabled
    let out = run_cmd()
        .current_dir(cwd.path())
        .args(["--memory-max", "64M", "--max-restarts", "1"])
        .args(["--backoff", "50ms..50ms", "--name", &name])
        .args(["--", "sh", "-c", "kill -SEGV $$"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{stderr}");
    let deaths = stderr.matches("killed by SIGSEGV").count();
    assert_eq!(
        deaths, 2,
        "default --restart on-failure restarts a crash: {stderr}"
    );
    assert!(
        stderr.contains("restarting in 50 ms (restart 1 of 1)"),
        "{stderr}"
    );
    assert!(!stderr.contains("OOM"), "{stderr}");
    left.assert_gone();
}

/// Starts `oomguard run` with piped stdout/stderr, waits for the command to print `ready`.
fn start_and_wait_ready(
    args: &[&str],
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    assert_eq!(args[0], "run");
    let mut cmd = StdCommand::new(assert_cmd::cargo::cargo_bin("oomguard"));
    cmd.arg("run")
        .arg("--config")
        .arg(quiet_config())
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // `run` leaves a signal it inherited as ignored alone (SIGHUP under `nohup`, by design), so
    // these forwarding tests start it with the default dispositions, whatever the runner of the
    // tests ignores (found when the suite was started under `nohup`).
    // SAFETY: signal(2) only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (child, out)
}

fn wait_with_timeout(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "oomguard run did not exit within {limit:?}: {}",
                stderr_of(child)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

#[test]
fn sigterm_is_forwarded_and_run_exits_cleanly() {
    let Some(own) = own_memcg("sigterm") else {
        return;
    };
    // 1. A command that obeys SIGTERM's default action: 143, no restart, cgroup removed.
    let name = format!("t-term-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let (mut child, _out) = start_and_wait_ready(&[
        "run",
        "--memory-max",
        "64M",
        "--restart",
        "always",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "echo ready; exec sleep 100",
    ]);
    assert!(left.dir.exists());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("killed by SIGTERM; stopping on SIGTERM"),
        "{stderr}"
    );
    left.assert_gone();

    // 2. A command that handles SIGTERM and exits 0: run exits 0.
    let name = format!("t-term0-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let (mut child, _out) = start_and_wait_ready(&[
        "run",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap 'exit 0' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("exited with status 0; stopping on SIGTERM"),
        "{stderr}"
    );
    left.assert_gone();

    // 3. A command that ignores SIGTERM: after --stop-timeout the cgroup is killed.
    let name = format!("t-termign-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let (mut child, _out) = start_and_wait_ready(&[
        "run",
        "--stop-timeout",
        "500ms",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("after SIGTERM; killing the cgroup"),
        "{stderr}"
    );
    left.assert_gone();
}

#[test]
fn stdin_and_stdout_pass_through_byte_exact() {
    let Some(own) = own_memcg("stdio") else {
        return;
    };
    let name = format!("t-stdio-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    // Every byte value, NULs and invalid UTF-8 included, 1 MiB in all.
    let input: Vec<u8> = (0..(1 << 20))
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = run_cmd()
        .args(["--memory-max", "64M", "--name", &name, "--", "cat"])
        .write_stdin(input.clone())
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == input, "stdout differs from stdin");
    // The command's stderr is its own; oomguard only adds its lines.
    run_cmd()
        .args([
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "printf 'to-stderr\\n' >&2",
        ])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(0)
        .stdout("")
        .stderr(predicate::str::contains("\nto-stderr\n"));
    left.assert_gone();
}

#[test]
fn warn_at_fires_once_per_crossing() {
    let test = "warn_at";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        return;
    };
    let name = format!("t-warn-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    // 64 MiB limit, warn at 50% (32 MiB); the command goes to ~40 MiB + its own image twice,
    // holding each level for 0.7 s (7 polls), with a drop to its base size in between.
    let out = run_cmd()
        .args(["--memory-max", "64M", "--warn-at", "50", "--name", &name])
        .args(["--json-events", "-", "--", py, "-c", SAWTOOTH, "40"])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(": warning: memory usage"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per upward crossing: {stderr}");
    assert!(warnings[0].contains("passed 50% of the 64.0 MiB limit (32.0 MiB)"));
    let evs = json_lines(&stderr);
    let warn_events = evs.iter().filter(|e| e["kind"] == "warning").count();
    assert_eq!(warn_events, 2);
    left.assert_gone();
}

#[test]
fn guard_kills_before_the_kernel_does() {
    let test = "guard";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        return;
    };
    let name = format!("t-guard-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    // 1 MiB every 10 ms: the guard (threshold eventfd at 128 - 16 MiB) has ~160 ms to act.
    let out = run_cmd()
        .args(["--memory-max", "128M", "--guard", "--guard-headroom", "16M"])
        .args(["--restart", "never", "--name", &name, "--json-events", "-"])
        .args(["--", py, "-c", HOG, "400", "0.01"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("killed by oomguard (--guard): cgroup "),
        "{stderr}"
    );
    assert!(!stderr.contains("kernel OOM killer"), "{stderr}");
    let evs = json_lines(&stderr);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["source"], "oomguard");
    assert_eq!(evs[0]["run"]["cause"], "oomguard");
    let usage = evs[0]["memcg_usage_kb"].as_u64().unwrap();
    assert!(
        (112 * 1024..128 * 1024).contains(&usage),
        "acted inside the headroom: {usage}"
    );
    left.assert_gone();
}

#[test]
fn bad_input_is_exit_2_and_leaves_nothing() {
    // Usage errors need no root.
    run_cmd()
        .args(["--memory-max", "64M"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("<CMD>"));
    run_cmd()
        .args(["--memory-max", "12 parsecs", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "'12 parsecs' for '--memory-max <SIZE>'",
        ))
        .stderr(predicate::str::contains("unknown unit"));
    run_cmd()
        .args(["--memory-max", "0", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be above zero"));
    // A config that cannot be read or is wrong: named, with the line, before anything is made.
    oomguard()
        .args([
            "run",
            "--config",
            "/nonexistent/oomguard.toml",
            "--",
            "true",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read config /nonexistent/oomguard.toml",
        ));
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "[events]\nlog = \"\"\n\n[[hooks]]\non = \"sometimes\"\ncommand = [\"true\"]\n",
    )
    .unwrap();
    oomguard()
        .args(["run", "--config"])
        .arg(bad.path())
        .args(["--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{} line 5",
            bad.path().display()
        )));
    run_cmd()
        .args(["--warn-at", "80", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("give --memory-max too"));
    let Some(own) = own_memcg("bad_input") else {
        return;
    };
    let name = format!("t-bad-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let missing = format!("{V1_MEMORY}/oomguard-no-such-parent-{}", std::process::id());
    run_cmd()
        .args(["--name", &name, "--cgroup-parent", &missing, "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "cgroup parent {missing} does not exist"
        )));
    // cgroup v1 has no memory.high: refused, not silently mapped.
    run_cmd()
        .args(["--name", &name, "--memory-high", "32M", "--", "true"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--memory-high needs cgroup v2"));
    // The real unified hierarchy here has no memory controller: a clear message.
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists()
        && !std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .unwrap()
            .contains("memory")
    {
        run_cmd()
            .args(["--name", &name, "--cgroup-parent", "/sys/fs/cgroup/unified"])
            .args(["--", "true"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "the memory controller is not available in /sys/fs/cgroup/unified",
            ));
    }
    // A command that does not exist: 127, as a shell says it.
    run_cmd()
        .args(["--name", &name, "--", "/nonexistent/oomguard-test-cmd"])
        .assert()
        .code(127)
        .stderr(predicate::str::contains("cannot start the command"));
    // No permission to create cgroups: an unprivileged user.
    if Path::new("/usr/bin/setpriv").exists() {
        let out = StdCommand::new("/usr/bin/setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(assert_cmd::cargo::cargo_bin("oomguard"))
            .args(["run", "--name", &name, "--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("no permission to create a cgroup in"),
            "{stderr}"
        );
    } else {
        common::kernel::skip("bad_input (no permission case)", "no /usr/bin/setpriv");
    }
    left.assert_gone();
}

/// Regression: the command inherited oomguard's blocked SIGINT/SIGTERM/SIGHUP/SIGQUIT (std's
/// `Command` kept the mask), so a forwarded SIGTERM stayed pending in it for ever.
#[test]
fn command_does_not_inherit_the_blocked_signal_mask() {
    let Some(own) = own_memcg("sigmask") else {
        return;
    };
    let name = format!("t-mask-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    run_cmd()
        .args(["--name", &name, "--", "grep", "SigBlk", "/proc/self/status"])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(0)
        .stdout(predicate::str::contains("SigBlk:\t0000000000000000"));
    left.assert_gone();
}

/// A shell wrapper whose child is OOM-killed exits 137 by itself: that is an exit, not an OOM
/// of the main process, and the child's kill is named with the kernel's report as an event.
#[test]
fn oom_kill_of_a_child_is_named_but_the_exit_is_the_wrappers() {
    let test = "wrapper_oom";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        return;
    };
    let name = format!("t-wrap-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let script = format!("{py} -c \"$HOG\" 200 0; exit $?");
    let out = run_cmd()
        .env("HOG", HOG)
        .args(["--memory-max", "48M", "--restart", "never", "--name", &name])
        .args(["--json-events", "-", "--", "sh", "-c", &script])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains(
            "exited with status 137; also OOM-killed in its cgroup during this run: pid "
        ),
        "{stderr}"
    );
    let evs = json_lines(&stderr);
    assert_eq!(evs.len(), 2, "the child's kill, then the wrapper's exit");
    assert_eq!(evs[0]["kind"], "kill");
    assert_eq!(evs[0]["source"], "kernel");
    assert_ne!(evs[0]["pid"], evs[0]["run"]["main_pid"]);
    assert_eq!(evs[1]["kind"], "exit");
    assert_eq!(evs[1]["run"]["exit_code"], 137);
    left.assert_gone();
}

#[test]
fn sighup_is_forwarded_without_stopping() {
    let Some(own) = own_memcg("sighup") else {
        return;
    };
    let name = format!("t-hup-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let (mut child, mut out) = start_and_wait_ready(&[
        "run",
        "--name",
        &name,
        "--",
        "sh",
        "-c",
        "trap 'echo got-hup' HUP; trap 'exit 5' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "got-hup");
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop run"
    );
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("exited with status 5; stopping on SIGTERM"),
        "{stderr}"
    );
    left.assert_gone();
}

#[test]
fn sigterm_during_the_backoff_ends_run_at_once() {
    let Some(own) = own_memcg("backoff_stop") else {
        return;
    };
    let name = format!("t-bstop-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("oomguard"))
        .arg("run")
        .arg("--config")
        .arg(quiet_config())
        .args([
            "--restart",
            "always",
            "--backoff",
            "30s..30s",
            "--name",
            &name,
        ])
        .args(["--", "sh", "-c", "exit 4"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "stderr ended: {seen}"
        );
        seen.push_str(&line);
        if line.contains("exited with status 4; restarting in 30.0 s (restart 1)") {
            break;
        }
    }
    let t = Instant::now();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert!(t.elapsed() < Duration::from_secs(5));
    let mut rest = String::new();
    err.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(4), "{seen}{rest}");
    assert!(
        rest.contains("stopped during the backoff; exiting with status 4"),
        "{rest}"
    );
    left.assert_gone();
}

/// A memory cgroup of the test's own below its memcg, given to `--cgroup-parent` so that the
/// `oomguard` group inside it is this test's alone (the default one is shared by the tests
/// running in parallel). Removed on drop, after the [`Leftovers`] declared after it.
struct PrivateParent {
    dir: PathBuf,
}

impl PrivateParent {
    fn new(own: &Path, tag: &str) -> Self {
        let dir = own.join(format!("t-parent-{tag}-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        Self { dir }
    }
    fn group(&self) -> PathBuf {
        self.dir.join("oomguard")
    }
    fn arg(&self) -> String {
        self.dir.display().to_string()
    }
}

impl Drop for PrivateParent {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.group());
        if std::fs::remove_dir(&self.dir).is_err() {
            eprintln!("WARNING: could not remove {}", self.dir.display());
        }
    }
}

/// A hook that writes its `OOMGUARD_*` environment and its stdin to `<dir>/hook-<EVENT>.out`
/// (the event name is its first argument: no shell between oomguard and it, argv only).
fn hook_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("hook.sh");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\n{{ env | grep '^OOMGUARD_' | sort; echo '--- stdin'; cat; }} > '{}/hook-'\"$1\"'.tmp'\nmv '{}/hook-'\"$1\"'.tmp' '{}/hook-'\"$1\"'.out'\n",
            dir.display(),
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A config with an event log in `dir` and `hook_script` on every event run can fire.
fn config_with_log_and_hooks(dir: &Path) -> (PathBuf, PathBuf) {
    let hook = hook_script(dir);
    let log = dir.join("events.jsonl");
    let mut text = format!("[events]\nlog = \"{}\"\njournal = false\n", log.display());
    for on in ["warn", "kernel_oom", "post_kill", "exit"] {
        text.push_str(&format!(
            "\n[[hooks]]\non = \"{on}\"\ncommand = [\"{}\", \"{on}\"]\ntimeout = \"5s\"\n",
            hook.display()
        ));
    }
    let cfg = dir.join("oomguard.toml");
    std::fs::write(&cfg, text).unwrap();
    (cfg, log)
}

/// `OOMGUARD_*` variables and the JSON on stdin, from a hook's output file.
fn hook_output(
    path: &Path,
) -> (
    std::collections::BTreeMap<String, String>,
    serde_json::Value,
) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (the hook did not run?)", path.display()));
    let (env, stdin) = text.split_once("--- stdin\n").unwrap();
    let env = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (env, serde_json::from_str(stdin.trim()).unwrap())
}

/// Issue 6's "the full event goes to the event log and hooks, like the daemon's": an OOM death
/// under `--config` is in the configured event log (and `oomguard events` reads it back), the
/// `warn` and `kernel_oom` hooks ran with the event (environment and stdin) before `run`
/// exited, the cgroup is `<parent>/oomguard/NAME`, and the `oomguard` group `run` made is gone.
#[test]
fn oom_death_goes_to_the_event_log_and_hooks_under_config() {
    let test = "tell_oom";
    let (Some(own), Some(py)) = (own_memcg(test), python()) else {
        return;
    };
    let (_, own_rel) = common::own_memcg(test).unwrap();
    let parent = PrivateParent::new(&own, "tell");
    let name = format!("t-tell-{}", std::process::id());
    let left = Leftovers::new(&parent.dir, &name);
    let dir = tempfile::tempdir().unwrap();
    let (cfg, log) = config_with_log_and_hooks(dir.path());
    // 48 MiB limit, warn at 50%: the hog passes 24 MiB, then the kernel kills it at 48 MiB.
    let out = oomguard()
        .args(["run", "--config"])
        .arg(&cfg)
        .args([
            "--memory-max",
            "48M",
            "--warn-at",
            "50",
            "--restart",
            "never",
        ])
        .args(["--name", &name, "--cgroup-parent", &parent.arg()])
        .args(["--", py, "-c", HOG, "200", "0.005"])
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    let cg_rel = format!(
        "{}/t-parent-tell-{}/oomguard/{name}",
        own_rel.trim_end_matches('/'),
        std::process::id()
    );
    assert!(
        stderr.contains(&format!(
            "killed by the kernel OOM killer: cgroup {cg_rel} reached its 48.0 MiB limit"
        )),
        "{stderr}"
    );
    // The event log: the warning, then the kill, with the kernel's figures.
    let evs = json_lines(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(evs.len(), 2, "{evs:?}");
    let (warn, kill) = (&evs[0], &evs[1]);
    assert_eq!(warn["kind"], "warning");
    assert_eq!(warn["source"], "oomguard");
    assert_eq!(warn["run"]["cause"], "warn_at");
    assert_eq!(kill["kind"], "kill");
    assert_eq!(kill["source"], "kernel");
    assert_eq!(kill["constraint"], "CONSTRAINT_MEMCG");
    assert_eq!(kill["memcg_limit_kb"], 49152);
    assert_eq!(kill["oom_memcg"], cg_rel.as_str());
    assert_eq!(kill["task_memcg"], cg_rel.as_str());
    assert_eq!(kill["run"]["cgroup"], cg_rel.as_str());
    assert_eq!(kill["run"]["name"], name.as_str());
    assert_eq!(kill["run"]["cause"], "kernel_oom");
    assert_eq!(kill["run"]["status"], 137);
    assert_eq!(kill["pid"], kill["run"]["main_pid"]);
    let anon = kill["anon_rss_kb"].as_u64().unwrap();
    assert!((30_000..=50_000).contains(&anon), "anon_rss_kb {anon}");
    let kill_id = kill["id"].as_str().unwrap();
    assert_ne!(warn["id"], kill["id"]);
    // The hooks ran with the event, and had finished when run exited.
    let (env, stdin) = hook_output(&dir.path().join("hook-kernel_oom.out"));
    assert_eq!(env["OOMGUARD_HOOK"], "kernel_oom");
    assert_eq!(env["OOMGUARD_EVENT_ID"], kill_id);
    assert_eq!(env["OOMGUARD_KIND"], "kill");
    assert_eq!(env["OOMGUARD_SOURCE"], "kernel");
    assert_eq!(env["OOMGUARD_CGROUP"], cg_rel);
    assert_eq!(env["OOMGUARD_RUN_NAME"], name);
    assert_eq!(env["OOMGUARD_RUN_CAUSE"], "kernel_oom");
    assert_eq!(env["OOMGUARD_RUN_STATUS"], "137");
    assert!(env["OOMGUARD_RUN_WHY"].starts_with("killed by the kernel OOM killer: cgroup "));
    assert_eq!(stdin, *kill, "stdin is the logged event");
    let (env, stdin) = hook_output(&dir.path().join("hook-warn.out"));
    assert_eq!(env["OOMGUARD_HOOK"], "warn");
    assert_eq!(env["OOMGUARD_EVENT_ID"], warn["id"].as_str().unwrap());
    assert_eq!(stdin, *warn);
    assert!(
        !dir.path().join("hook-exit.out").exists(),
        "an OOM is not an exit"
    );
    // `oomguard events` reads them back through the same config.
    let listed = oomguard()
        .args(["events", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    let line = listed.lines().find(|l| l.contains(kill_id)).unwrap_or("");
    assert!(line.contains("kernel  kill  python3 (pid "), "{listed}");
    assert!(
        line.contains(&format!("run {name}: killed by the kernel OOM killer")),
        "{listed}"
    );
    // Nothing left: the service's cgroup and the `oomguard` group this run made.
    left.assert_gone();
    assert!(
        !parent.group().exists(),
        "the oomguard group run made is removed"
    );
}

/// An `oomguard` group that existed before (the operator's, or another run's) stays; a run
/// that made it but finishes while another service is in it leaves it quietly; an exit that is
/// not an OOM fires the `exit` hook.
#[test]
fn the_oomguard_group_stays_when_not_ours_or_not_empty() {
    let Some(own) = own_memcg("group_kept") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (cfg, log) = config_with_log_and_hooks(dir.path());

    // 1. The group exists already: used, kept.
    let parent = PrivateParent::new(&own, "kept");
    std::fs::create_dir(parent.group()).unwrap();
    let name = format!("t-kept-{}", std::process::id());
    let left = Leftovers::new(&parent.dir, &name);
    let out = oomguard()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--restart", "never", "--name", &name])
        .args(["--cgroup-parent", &parent.arg(), "--", "sh", "-c", "exit 3"])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    left.assert_gone();
    assert!(parent.group().exists(), "not made by this run: kept");
    let evs = json_lines(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["kind"], "exit");
    let (env, stdin) = hook_output(&dir.path().join("hook-exit.out"));
    assert_eq!(env["OOMGUARD_HOOK"], "exit");
    assert_eq!(env["OOMGUARD_KIND"], "exit");
    assert_eq!(env["OOMGUARD_RUN_EXIT_CODE"], "3");
    assert_eq!(env["OOMGUARD_RUN_CAUSE"], "exit");
    assert_eq!(stdin, evs[0]);
    drop(left);
    drop(parent);

    // 2. A makes the group, B joins it, A ends first: A's rmdir of the busy group is not an
    // error; B, not its maker, leaves it (documented), and the test removes it.
    let parent = PrivateParent::new(&own, "shared");
    let (a_name, b_name) = (
        format!("t-sha-{}", std::process::id()),
        format!("t-shb-{}", std::process::id()),
    );
    let (left_a, left_b) = (
        Leftovers::new(&parent.dir, &a_name),
        Leftovers::new(&parent.dir, &b_name),
    );
    let p = parent.arg();
    let start = |name: &str| {
        start_and_wait_ready(&[
            "run",
            "--name",
            name,
            "--cgroup-parent",
            &p,
            "--",
            "sh",
            "-c",
            "echo ready; exec sleep 100",
        ])
    };
    let (mut a, _a_out) = start(&a_name);
    let (mut b, _b_out) = start(&b_name);
    assert!(left_a.dir.exists() && left_b.dir.exists());
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(a.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut a, Duration::from_secs(10));
    let a_err = stderr_of(&mut a);
    assert_eq!(status.code(), Some(143), "{a_err}");
    assert!(!a_err.contains("warning"), "{a_err}");
    left_a.assert_gone();
    assert!(left_b.dir.exists());
    // SAFETY: as above.
    unsafe { libc::kill(b.id() as i32, libc::SIGTERM) };
    let status = wait_with_timeout(&mut b, Duration::from_secs(10));
    let b_err = stderr_of(&mut b);
    assert_eq!(status.code(), Some(143), "{b_err}");
    assert!(!b_err.contains("warning"), "{b_err}");
    left_b.assert_gone();
    assert!(parent.group().exists(), "B did not make it");
}

/// Hooks still running when `run` is done get their own timeout, not for ever: a hook that
/// sleeps is killed at its 1 s timeout, and `run` exits with the command's status.
#[test]
fn run_waits_for_hooks_only_until_their_timeout() {
    let Some(own) = own_memcg("hook_timeout") else {
        return;
    };
    let name = format!("t-hookto-{}", std::process::id());
    let left = Leftovers::new(&own, &name);
    let cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        cfg.path(),
        "[events]\nlog = \"\"\njournal = false\n\n[[hooks]]\non = \"exit\"\ncommand = [\"sleep\", \"100\"]\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let t = Instant::now();
    let out = oomguard()
        .args(["run", "--config"])
        .arg(cfg.path())
        .args([
            "--restart",
            "never",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "exit 4",
        ])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        stderr.contains("hook exit #0 (sleep) timed out and was killed"),
        "{stderr}"
    );
    left.assert_gone();
}
