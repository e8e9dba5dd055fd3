//! End to end with a real Prometheus (Debian's 2.42) on loopback: it scrapes a running target
//! (`oomguard watch`; or `examples/tell_target.rs`, built from the `tell` components alone), with
//! the shipped alert rules evaluated every second. The test triggers a real memory-cgroup OOM
//! kill by the kernel and a kill by the target's stand-in policy, then asserts through
//! Prometheus's HTTP API (`/api/v1/query`, `/api/v1/alerts`) that both counters rose and both
//! alerts fired, and that the event log has both events.
//!
//! The target is `target/<profile>/examples/tell_target` (cargo test builds examples), or
//! `OOMGUARD_E2E_TARGET` (a binary) plus `OOMGUARD_E2E_TARGET_ARGS` (e.g. `watch`): it is
//! started as `TARGET [ARGS...] --config FILE`. Everything is started here and stopped by pid;
//! the cgroups are removed. Skips (with the reason) unless root with a v1 memory controller
//! and `/usr/bin/prometheus`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn skip(why: &str) {
    common::kernel::skip("prometheus_e2e", why);
}

/// A child we started: SIGTERM, then SIGKILL after 5 s, reaped, on drop.
struct Proc(Child, &'static str);

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own unreaped child: the pid is still ours.
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        eprintln!("{} needed SIGKILL", self.1);
    }
}

/// A v1 memory cgroup below our own; removed on drop.
struct Cg {
    dir: PathBuf,
    rel: String,
}

impl Cg {
    fn new(name: &str, limit: u64) -> Option<Cg> {
        assert!(limit <= 128 << 20);
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let rel = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            ctl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })?;
        let mount = PathBuf::from("/sys/fs/cgroup/memory");
        let rel = format!(
            "{}/oomguard-e2e-{name}-{}",
            rel.trim_end_matches('/'),
            std::process::id()
        );
        let dir = mount.join(rel.trim_start_matches('/'));
        std::fs::create_dir(&dir).ok()?;
        let cg = Cg { dir, rel };
        std::fs::write(cg.dir.join("memory.limit_in_bytes"), limit.to_string()).ok()?;
        Some(cg)
    }
}

impl Drop for Cg {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A memory hog: oom_score_adj 1000, joins `cg` before exec, touches `bytes` (≤ 120 MiB),
/// then sleeps. Python, so that its pages are really written.
fn hog(cg: &Cg, bytes: u64) -> Proc {
    assert!(bytes <= 120 << 20);
    let procs = cg.dir.join("cgroup.procs");
    let script = format!(
        "echo 1000 > /proc/self/oom_score_adj && echo $$ > '{}' && exec python3 -c 'import time; b = b\"x\" * {bytes}; time.sleep(1000)'",
        procs.display()
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    Proc(child, "hog")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.get(9..12)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_owned();
    Some((code, body))
}

fn query(port: u16, q: &str) -> Option<f64> {
    let (_, body) = http_get(port, &format!("/api/v1/query?query={}", urlencode(q)))?;
    let v: Value = serde_json::from_str(&body).ok()?;
    let r = v["data"]["result"].as_array()?;
    r.first()?["value"][1].as_str()?.parse().ok()
}

fn firing(port: u16) -> Vec<String> {
    let Some((_, body)) = http_get(port, "/api/v1/alerts") else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["state"] == "firing")
                .filter_map(|x| x["labels"]["alertname"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            eprintln!("{what}: after {:?}", start.elapsed());
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn target() -> Option<(PathBuf, Vec<String>)> {
    if let Ok(t) = std::env::var("OOMGUARD_E2E_TARGET") {
        let args = std::env::var("OOMGUARD_E2E_TARGET_ARGS").unwrap_or_default();
        return Some((
            PathBuf::from(t),
            args.split_whitespace().map(str::to_owned).collect(),
        ));
    }
    // The real daemon: `oomguard watch --config FILE`. (`examples/tell_target`, the stand-in
    // built from the tell components alone, can still be selected with OOMGUARD_E2E_TARGET.)
    let p = assert_cmd::cargo::cargo_bin("oomguard");
    p.exists().then(|| (p, vec!["watch".to_owned()]))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn prometheus_scrapes_kills_and_fires_alerts() {
    if !rustix::process::geteuid().is_root() {
        return skip("needs root (memory cgroups, /dev/kmsg)");
    }
    let prometheus = Path::new("/usr/bin/prometheus");
    if !prometheus.exists() {
        return skip(
            "/usr/bin/prometheus missing (apt-get install prometheus; scripts/test.sh does)",
        );
    }
    if !Path::new("/sys/fs/cgroup/memory/memory.usage_in_bytes").exists() {
        return skip("no cgroup v1 memory controller");
    }
    let Some((target_bin, target_args)) = target() else {
        return skip(
            "examples/tell_target not built (cargo test builds it) and OOMGUARD_E2E_TARGET unset",
        );
    };
    let (Some(cg_kernel), Some(cg_guard)) =
        (Cg::new("kernel", 64 << 20), Cg::new("guard", 128 << 20))
    else {
        return skip("cannot create memory cgroups");
    };
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let prom_port = free_port();
    let events = dir.path().join("events.jsonl");
    let config = dir.path().join("oomguard.toml");
    std::fs::write(
        &config,
        format!(
            r#"
# Only the two test cgroups may lose a process: the system-wide rule is inert (1 MiB) and,
# belt and braces, system-wide candidates are confined to the guarded test cgroup.
candidates_cgroup = "{}"

[memory]
term_below = "1M"
kill_below = "512K"

[events]
log = "{}"
journal = false

[metrics]
listen = "127.0.0.1:{metrics_port}"

# The kernel kills here (no headroom: oomguard never acts first).
[[cgroups]]
path = "{}"
headroom = "0"

# oomguard kills here, when usage comes within 75% of the 128 MiB limit (above 32 MiB).
[[cgroups]]
path = "{}"
headroom = "75%"
"#,
            cg_guard.rel,
            events.display(),
            cg_kernel.rel,
            cg_guard.rel
        ),
    )
    .unwrap();
    let target_log = std::fs::File::create(dir.path().join("target.log")).unwrap();
    let target = Proc(
        Command::new(&target_bin)
            .args(&target_args)
            .arg("--config")
            .arg(&config)
            .stdout(target_log.try_clone().unwrap())
            .stderr(target_log)
            .spawn()
            .unwrap(),
        "target",
    );
    let target_pid = target.0.id();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {}
scrape_configs:
  - job_name: oomguard
    static_configs:
      - targets: ["127.0.0.1:{metrics_port}"]
"#,
            repo()
                .join("deploy/prometheus/oomguard-rules.yml")
                .display()
        ),
    )
    .unwrap();
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prom = Proc(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(prom_log.try_clone().unwrap())
            .stderr(prom_log)
            .spawn()
            .unwrap(),
        "prometheus",
    );
    let show_logs = || {
        for f in ["target.log", "prometheus.log"] {
            let t = std::fs::read_to_string(dir.path().join(f)).unwrap_or_default();
            let tail: Vec<&str> = t.lines().rev().take(15).collect();
            eprintln!("--- {f} (last lines, newest first)\n{}", tail.join("\n"));
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for("prometheus ready", Duration::from_secs(60), || {
            http_get(prom_port, "/-/ready").filter(|(c, _)| *c == 200)
        });
        wait_for("target up", Duration::from_secs(30), || {
            query(prom_port, r#"up{job="oomguard"}"#).filter(|v| *v == 1.0)
        });
        let before_kernel = query(prom_port, "sum(oomguard_kernel_oom_kills_total)").unwrap();
        let before_guard = query(prom_port, "sum(oomguard_kills_total)").unwrap();
        assert!(firing(prom_port).is_empty(), "{:?}", firing(prom_port));

        // A real kernel OOM kill: 120 MiB into a 64 MiB memcg.
        let mut k = hog(&cg_kernel, 120 << 20);
        let k_pid = k.0.id();
        let status = k.0.wait().unwrap();
        eprintln!("kernel hog {k_pid} ended: {status:?}");
        // An oomguard kill: 64 MiB into the guarded memcg (limit 128 MiB, act above 32 MiB).
        let mut g = hog(&cg_guard, 64 << 20);
        let g_pid = g.0.id();
        let status = wait_for("guarded hog killed", Duration::from_secs(20), || {
            g.0.try_wait().unwrap()
        });
        eprintln!("guarded hog {g_pid} ended: {status:?}");

        wait_for(
            "kernel OOM counter rose in Prometheus",
            Duration::from_secs(30),
            || {
                query(prom_port, "sum(oomguard_kernel_oom_kills_total)")
                    .filter(|v| *v > before_kernel)
            },
        );
        wait_for(
            "oomguard kill counter rose in Prometheus",
            Duration::from_secs(30),
            || query(prom_port, "sum(oomguard_kills_total)").filter(|v| *v > before_guard),
        );
        let memcg = query(
            prom_port,
            r#"sum(oomguard_kernel_oom_kills_total{constraint="memcg"})"#,
        )
        .unwrap();
        assert!(memcg >= 1.0, "{memcg}");
        let alerts = wait_for("both alerts firing", Duration::from_secs(45), || {
            let f = firing(prom_port);
            (f.iter().any(|a| a == "OomguardKernelOOMKill")
                && f.iter().any(|a| a == "OomguardKill"))
            .then_some(f)
        });
        eprintln!("firing: {alerts:?}");

        // The event log has both, with the right victims.
        let log = std::fs::read_to_string(&events).unwrap();
        let evs: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kernel = evs
            .iter()
            .find(|e| e["source"] == "kernel" && e["pid"] == i64::from(k_pid))
            .unwrap_or_else(|| panic!("no kernel event for {k_pid}: {log}"));
        assert_eq!(kernel["task_memcg"], cg_kernel.rel.as_str());
        assert_eq!(kernel["comm"], "python3");
        assert_eq!(kernel["memcg_limit_kb"], 65536);
        let guard = evs
            .iter()
            .find(|e| e["source"] == "oomguard" && e["victim"]["pid"] == i64::from(g_pid))
            .unwrap_or_else(|| panic!("no oomguard event for {g_pid}: {log}"));
        assert_eq!(guard["trigger"]["reason"], "cgroup");
        // `watch` sends SIGTERM first (SIGKILL when the victim outstays its grace or the cgroup
        // reaches the kill level); the stand-in target sends SIGKILL at once.
        assert!(
            guard["action"]["signal"] == "SIGTERM" || guard["action"]["signal"] == "SIGKILL",
            "{guard}"
        );
        assert_eq!(guard["action"]["outcome"], "exited");
        assert!(guard["id"].is_string() && kernel["id"].is_string());

        // The footprint rule (research/ecosystem.md §0): one thread, however many scrapes,
        // hooks and kernel events it served.
        let status = std::fs::read_to_string(format!("/proc/{target_pid}/status")).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        eprintln!(
            "target: Threads {} VmRSS {} VmHWM {}",
            field("Threads:"),
            field("VmRSS:"),
            field("VmHWM:")
        );
        assert_eq!(field("Threads:"), "1");
    }));
    if let Err(panic) = result {
        show_logs();
        std::panic::resume_unwind(panic);
    }
}
