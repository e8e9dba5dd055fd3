//! Helpers shared by the real-kernel integration tests: skip rules, throwaway memory cgroups
//! below the test's own, and memory hogs that obey the safety rules (oom_score_adj 1000 first,
//! a hard cap on what they allocate, and a cgroup limit around them).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const V1_MEMORY: &str = "/sys/fs/cgroup/memory";

/// A hog: oom_score_adj 1000, optional process name, optional SIGTERM-ignoring; allocates
/// `argv[1]` MiB (capped at 900) 1 MiB at a time with `argv[2]` seconds between MiB, then holds
/// for `argv[3]` seconds and exits 0.
pub const HOG: &str = r#"
import sys, time, signal, ctypes
open('/proc/self/oom_score_adj', 'w').write('1000')
mib = min(int(sys.argv[1]), 900)
pause = float(sys.argv[2])
hold = float(sys.argv[3])
name = sys.argv[4] if len(sys.argv) > 4 else ''
if name:
    ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)
if len(sys.argv) > 5 and sys.argv[5] == 'ignore-term':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
chunks = []
for i in range(mib):
    chunks.append(bytearray(1 << 20))
    for j in range(0, 1 << 20, 4096):
        chunks[-1][j] = 1
    if pause:
        time.sleep(pause)
print('allocated', flush=True)
time.sleep(hold)
print('survived', flush=True)
"#;

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The test process's own v1 memory cgroup directory, or `None` with the reason printed.
pub fn own_memcg(test: &str) -> Option<(PathBuf, String)> {
    if !is_root() {
        eprintln!("SKIP {test}: needs root (creating cgroups, signalling)");
        return None;
    }
    if !Path::new(V1_MEMORY).join("memory.limit_in_bytes").exists() {
        eprintln!("SKIP {test}: no cgroup v1 memory controller at {V1_MEMORY}");
        return None;
    }
    if python().is_none() {
        eprintln!("SKIP {test}: no python3 for the memory hog");
        return None;
    }
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let rel = text
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctl, path) = (p.next()?, p.next()?, p.next()?);
            ctl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .unwrap_or_else(|| "/".to_owned());
    Some((Path::new(V1_MEMORY).join(rel.trim_start_matches('/')), rel))
}

/// A throwaway memory cgroup with a limit; on drop, SIGKILLs what is left in it (only processes
/// this test put there) and removes it.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// The path as /proc/PID/cgroup shows it.
    pub rel: String,
}

impl TestCgroup {
    pub fn new(test: &str, limit_mib: u64) -> Option<TestCgroup> {
        let (base, base_rel) = own_memcg(test)?;
        let name = format!("oomguard-test-{test}-{}", std::process::id());
        let dir = base.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("memory.limit_in_bytes"),
            format!("{}", limit_mib << 20),
        )
        .unwrap();
        let rel = format!("{}/{name}", base_rel.trim_end_matches('/'));
        Some(TestCgroup { dir, rel })
    }

    pub fn oom_kills(&self) -> u64 {
        let t = std::fs::read_to_string(self.dir.join("memory.oom_control")).unwrap();
        t.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Starts the hog inside this cgroup (it joins before it allocates).
    pub fn spawn_hog(&self, args: &[&str]) -> Child {
        let procs = self.dir.join("cgroup.procs");
        let mut script = format!(
            "echo $$ > '{}' && exec {} -c \"$0\"",
            procs.display(),
            python().unwrap()
        );
        for (i, _) in args.iter().enumerate() {
            script.push_str(&format!(" \"${}\"", i + 1));
        }
        Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg(HOG)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: only pids listed in this test's own cgroup, which only this test fills.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Waits for a child to exit; returns its wait status (`None` on timeout, after killing it).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
