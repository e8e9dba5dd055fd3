//! The one helper module of the integration tests (`mod common;` in each test file): a fake
//! /proc + cgroupfs tree builder made of real kernel text, and, for the real-kernel tests, skip
//! rules, throwaway v1 memory cgroups below the test's own and memory hogs that obey the safety
//! rules (oom_score_adj 1000 first, a hard cap on what they allocate, a cgroup limit around them).
// Test-only helpers: a failed setup step should panic loudly, as in a #[test].
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The one skip rule of the real-kernel tests: `kernel::skip(test, why)`,
/// `kernel::require(test, reason)`; `OOMGUARD_REQUIRE_KERNEL=1` turns a skip into a failure.
#[path = "../../src/kernel_skip.rs"]
pub mod kernel;

pub const STATUS_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/pid-status-6.18.txt");
pub const STAT_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/pid-stat-6.18.txt");
pub const KTHREAD_STAT_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/kthread-stat-6.18.txt");
pub const KTHREAD_STATUS_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/kthread-status-6.18.txt");
pub const MEMINFO_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/meminfo-6.18.txt");
pub const PRESSURE_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/pressure-memory-6.18.txt");
pub const VMSTAT_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/vmstat-6.18.txt");
pub const V1_STAT_6_18: &str =
    include_str!("../../../oomguard-core/tests/fixtures/host/v1-memory.stat-6.18.txt");

/// A fake host: `<tmp>/proc` and `<tmp>/cgroup`, filled from real 6.18 text.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
}

/// A process for the fake tree.
#[derive(Clone)]
pub struct FakeProc {
    pub pid: i32,
    pub comm: String,
    pub rss_anon_kib: u64,
    pub rss_file_kib: u64,
    pub swap_kib: u64,
    pub pte_kib: u64,
    pub adj: i16,
    pub cgroup: String,
    pub kthread: bool,
}

impl FakeProc {
    pub fn new(pid: i32, comm: &str) -> Self {
        FakeProc {
            pid,
            comm: comm.to_owned(),
            rss_anon_kib: 1000,
            rss_file_kib: 2000,
            swap_kib: 0,
            pte_kib: 48,
            adj: 0,
            cgroup: "/".to_owned(),
            kthread: false,
        }
    }
    pub fn rss(mut self, anon_kib: u64) -> Self {
        self.rss_anon_kib = anon_kib;
        self
    }
    pub fn adj(mut self, adj: i16) -> Self {
        self.adj = adj;
        self
    }
    pub fn swap(mut self, kib: u64) -> Self {
        self.swap_kib = kib;
        self
    }
    pub fn cgroup(mut self, p: &str) -> Self {
        self.cgroup = p.to_owned();
        self
    }
}

fn set_kb(text: &str, key: &str, kib: u64) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with(&format!("{key}:")) {
                format!("{key}:\t{kib:>8} kB\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

impl FakeHost {
    /// A healthy machine: 6.18, swap 4 GiB, overcommit 0, dump_tasks 1, PSI, cgroup v2 with memory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let h = FakeHost { dir };
        let meminfo = set_kb(
            &set_kb(MEMINFO_6_18, "SwapTotal", 4 << 20),
            "SwapFree",
            4 << 20,
        );
        h.write("proc/meminfo", &meminfo);
        h.write("proc/pressure/memory", PRESSURE_6_18);
        h.write("proc/vmstat", VMSTAT_6_18);
        h.write(
            "proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swapfile                               file\t\t4194300\t\t0\t\t-2\n",
        );
        h.write("proc/sys/kernel/osrelease", "6.18.44-fc-v657\n");
        for (k, v) in [
            ("overcommit_memory", "0"),
            ("panic_on_oom", "0"),
            ("oom_kill_allocating_task", "0"),
            ("oom_dump_tasks", "1"),
            ("swappiness", "60"),
        ] {
            h.sysctl(k, v);
        }
        h.write("cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
        h.write("cgroup/cgroup.procs", "");
        h
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }
    pub fn cgroup_root(&self) -> PathBuf {
        self.dir.path().join("cgroup")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        let p = self.dir.path().join(rel);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_dir_all(&p);
    }

    pub fn sysctl(&self, name: &str, value: &str) {
        self.write(&format!("proc/sys/vm/{name}"), &format!("{value}\n"));
    }

    /// Sets a meminfo field (kB).
    pub fn meminfo_kb(&self, key: &str, kib: u64) {
        let p = self.dir.path().join("proc/meminfo");
        let t = std::fs::read_to_string(&p).expect("meminfo");
        std::fs::write(p, set_kb(&t, key, kib)).expect("write");
    }

    /// Adds a process, its files built from real 6.18 `stat`/`status` text.
    pub fn add_proc(&self, p: &FakeProc) {
        let d = format!("proc/{}", p.pid);
        if p.kthread {
            let stat =
                KTHREAD_STAT_6_18.replacen("2 (kthreadd)", &format!("{} ({})", p.pid, p.comm), 1);
            self.write(&format!("{d}/stat"), &stat);
            self.write(&format!("{d}/status"), KTHREAD_STATUS_6_18);
            self.write(&format!("{d}/oom_score_adj"), "0\n");
            self.write(&format!("{d}/cgroup"), "0::/\n");
            self.write(&format!("{d}/cmdline"), "");
            return;
        }
        let rest = STAT_6_18.split_once(") ").expect("stat").1;
        self.write(
            &format!("{d}/stat"),
            &format!("{} ({}) {rest}", p.pid, p.comm),
        );
        let mut status = STATUS_6_18.to_owned();
        for (k, v) in [
            ("RssAnon", p.rss_anon_kib),
            ("RssFile", p.rss_file_kib),
            ("RssShmem", 0),
            ("VmRSS", p.rss_anon_kib + p.rss_file_kib),
            ("VmSwap", p.swap_kib),
            ("VmPTE", p.pte_kib),
        ] {
            status = set_kb(&status, k, v);
        }
        status = status
            .lines()
            .map(|l| {
                if l.starts_with("Tgid:") {
                    format!("Tgid:\t{}\n", p.pid)
                } else if l.starts_with("Name:") {
                    format!("Name:\t{}\n", p.comm)
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        self.write(&format!("{d}/status"), &status);
        self.write(&format!("{d}/oom_score_adj"), &format!("{}\n", p.adj));
        self.write(&format!("{d}/cgroup"), &format!("0::{}\n", p.cgroup));
        self.write(&format!("{d}/cmdline"), &format!("{}\0", p.comm));
    }

    /// Adds a v2 memcg with the given usage, limit and oom_kill count, and its member pids.
    pub fn add_memcg_v2(
        &self,
        path: &str,
        current: u64,
        max: Option<u64>,
        oom_kill: u64,
        pids: &[i32],
    ) {
        let d = format!("cgroup/{}", path.trim_start_matches('/'));
        self.write(&format!("{d}/memory.current"), &format!("{current}\n"));
        self.write(
            &format!("{d}/memory.max"),
            &max.map_or("max\n".to_owned(), |m| format!("{m}\n")),
        );
        self.write(&format!("{d}/memory.high"), "max\n");
        self.write(&format!("{d}/memory.low"), "0\n");
        self.write(&format!("{d}/memory.min"), "0\n");
        self.write(&format!("{d}/memory.swap.current"), "0\n");
        self.write(&format!("{d}/memory.swap.max"), "max\n");
        self.write(
            &format!("{d}/memory.events"),
            &format!(
                "low 0\nhigh 0\nmax 0\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"
            ),
        );
        self.write(
            &format!("{d}/memory.events.local"),
            &format!(
                "low 0\nhigh 0\nmax 0\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"
            ),
        );
        self.write(
            &format!("{d}/memory.stat"),
            "anon 1048576\nfile 0\nshmem 0\n",
        );
        self.write(&format!("{d}/memory.pressure"), PRESSURE_6_18);
        self.write(&format!("{d}/memory.oom.group"), "0\n");
        let procs: String = pids.iter().map(|p| format!("{p}\n")).collect();
        self.write(&format!("{d}/cgroup.procs"), &procs);
    }
}

// ---- real-kernel helpers -------------------------------------------------------------------

pub const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
/// Where the unified (v2) hierarchy is mounted when the host has only v2.
pub const V2_ROOT: &str = "/sys/fs/cgroup";

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

pub use kernel::is_root;

pub fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Why a real-kernel test cannot run here, if it cannot.
pub fn real_kernel_skip_reason() -> Option<String> {
    if !is_root() {
        return Some("needs root (creating cgroups, signalling)".into());
    }
    if !Path::new(V1_MEMORY).join("memory.usage_in_bytes").exists() {
        return Some(format!("no cgroup v1 memory controller at {V1_MEMORY}"));
    }
    if python().is_none() {
        return Some("no python3 for the test hogs".into());
    }
    None
}

/// This process's v1 memory cgroup path as /proc/self/cgroup shows it (`/process_api/<id>`).
pub fn own_memcg_rel() -> String {
    let t = std::fs::read_to_string("/proc/self/cgroup").expect("cgroup");
    t.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, c, p) = (f.next()?, f.next()?, f.next()?);
            c.split(',').any(|c| c == "memory").then(|| p.to_owned())
        })
        .unwrap_or_else(|| "/".to_owned())
}

/// The test process's own v1 memory cgroup (directory, path as /proc shows it), or `None` with
/// the reason printed.
pub fn own_memcg(test: &str) -> Option<(PathBuf, String)> {
    if !is_root() {
        kernel::skip(test, "needs root (creating cgroups, signalling)");
        return None;
    }
    if !Path::new(V1_MEMORY).join("memory.usage_in_bytes").exists() {
        kernel::skip(
            test,
            &format!("no cgroup v1 memory controller at {V1_MEMORY}"),
        );
        return None;
    }
    let rel = own_memcg_rel();
    Some((Path::new(V1_MEMORY).join(rel.trim_start_matches('/')), rel))
}

/// A throwaway memory cgroup with a limit, below the test's own; on drop, SIGKILLs what is left
/// in it (only processes this test put there), reaps its own children and removes it.
pub struct TestCgroup {
    pub dir: PathBuf,
    /// The path as /proc/PID/cgroup shows it.
    pub rel: String,
    /// Children started by [`TestCgroup::spawn_adj_hog`], reaped on drop.
    pub children: Vec<Child>,
}

impl TestCgroup {
    /// `oomguard-test-<name>-<pid>` below our own memcg, limited to `limit_bytes`; `None` (with
    /// the reason printed) where real-kernel tests cannot run.
    pub fn new(name: &str, limit_bytes: u64) -> Option<TestCgroup> {
        let (base, base_rel) = own_memcg(name)?;
        if python().is_none() {
            kernel::skip(name, "no python3 for the test hogs");
            return None;
        }
        let leaf = format!("oomguard-test-{name}-{}", std::process::id());
        let dir = base.join(&leaf);
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        std::fs::write(dir.join("memory.limit_in_bytes"), limit_bytes.to_string()).expect("limit");
        let rel = format!("{}/{leaf}", base_rel.trim_end_matches('/'));
        Some(TestCgroup {
            dir,
            rel,
            children: Vec::new(),
        })
    }

    /// Like [`TestCgroup::new`], and also on a host with cgroup v2 only (no v1 memory
    /// controller, as in the VM lab): there, `oomguard-test-<name>-<pid>` directly below the v2
    /// root (the root is exempt from the no-internal-process rule; its `cgroup.subtree_control`
    /// must list `memory`), limited by `memory.max`. The other methods read the v1 or v2 file as
    /// [`TestCgroup::is_v2`] says. (`kernel_v2.rs` keeps its own `Cg`: the VM lab's guest has
    /// no python for these hogs, and there a missing controller is a failure, not a skip.)
    pub fn new_any(name: &str, limit_bytes: u64) -> Option<TestCgroup> {
        if Path::new(V1_MEMORY).join("memory.usage_in_bytes").exists() || !is_root() {
            return Self::new(name, limit_bytes);
        }
        let ctl = std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.subtree_control"))
            .unwrap_or_default();
        if !ctl.split_whitespace().any(|c| c == "memory") {
            kernel::skip(
                name,
                &format!(
                    "no cgroup v1 memory controller at {V1_MEMORY} and no memory controller in \
                     {V2_ROOT}/cgroup.subtree_control"
                ),
            );
            return None;
        }
        if python().is_none() {
            kernel::skip(name, "no python3 for the test hogs");
            return None;
        }
        let leaf = format!("oomguard-test-{name}-{}", std::process::id());
        let dir = Path::new(V2_ROOT).join(&leaf);
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        std::fs::write(dir.join("memory.max"), limit_bytes.to_string()).expect("limit");
        Some(TestCgroup {
            dir,
            rel: format!("/{leaf}"),
            children: Vec::new(),
        })
    }

    /// A cgroup v2 directory (only v2 has `cgroup.controllers`).
    pub fn is_v2(&self) -> bool {
        self.dir.join("cgroup.controllers").exists()
    }

    /// A child cgroup (no limit of its own: the parent's applies), removed on drop. On v2 the
    /// memory controller is enabled below this one first (before any process joins it).
    pub fn child(&self, name: &str) -> TestCgroup {
        if self.is_v2() {
            let _ = std::fs::write(self.dir.join("cgroup.subtree_control"), "+memory");
        }
        let dir = self.dir.join(name);
        std::fs::create_dir(&dir).expect("mkdir child cgroup");
        TestCgroup {
            dir,
            rel: format!("{}/{name}", self.rel),
            children: Vec::new(),
        }
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    /// The `oom_kill` count of `memory.oom_control` (v2: `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let file = if self.is_v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        self.read(file)
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The pids in `cgroup.procs`.
    pub fn procs(&self) -> Vec<i32> {
        self.read("cgroup.procs")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// A shell command line that joins this cgroup and then execs `cmd` (so the process, and
    /// everything it allocates, is charged here from its first instruction).
    pub fn join_then(&self, cmd: &str) -> String {
        format!(
            "echo $$ > '{}' && exec {cmd}",
            self.dir.join("cgroup.procs").display()
        )
    }

    /// Starts [`HOG`] inside this cgroup (it joins before it allocates); stdout piped.
    pub fn spawn_hog(&self, args: &[&str]) -> Child {
        self.spawn_py(HOG, args)
    }

    /// Starts python `script` with `args` inside this cgroup (it joins before the interpreter
    /// starts), in a process group of its own (so a `pgroup` kill of it can never reach the test
    /// runner's group); stdout piped, stderr discarded.
    pub fn spawn_py(&self, script: &str, args: &[&str]) -> Child {
        let mut sh = self.join_then(&format!("{} -c \"$0\"", python().expect("python3")));
        for (i, _) in args.iter().enumerate() {
            sh.push_str(&format!(" \"${}\"", i + 1));
        }
        Command::new("/bin/sh")
            .arg("-c")
            .arg(sh)
            .arg(script)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python")
    }

    /// The working set as the daemon measures it: usage minus inactive page cache.
    pub fn working_set_bytes(&self) -> u64 {
        let (usage_file, inactive_key) = if self.is_v2() {
            ("memory.current", "inactive_file ")
        } else {
            ("memory.usage_in_bytes", "total_inactive_file ")
        };
        let usage: u64 = self.read(usage_file).trim().parse().unwrap_or(0);
        let inactive = self
            .read("memory.stat")
            .lines()
            .find_map(|l| l.strip_prefix(inactive_key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0u64);
        usage.saturating_sub(inactive)
    }

    /// Starts a python process that joins this cgroup, sets its own oom_score_adj to `adj`,
    /// touches `mib` MiB (in 1 MiB steps, `step_delay_s` apart) and then idles; kept in
    /// `children`. Waits for "ready" unless `wait_ready` is false. Returns its pid.
    pub fn spawn_adj_hog(
        &mut self,
        adj: i16,
        mib: u64,
        step_delay_s: f64,
        wait_ready: bool,
    ) -> i32 {
        const ADJ_HOG: &str = r#"
import os, sys, time
cg, adj, mib, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
open(cg + "/cgroup.procs", "w").write(str(os.getpid()))
open("/proc/self/oom_score_adj", "w").write(adj)
chunks = []
for _ in range(mib):
    chunks.append(b"\x01" * (1 << 20))
    if delay: time.sleep(delay)
sys.stdout.write("ready\n"); sys.stdout.flush()
time.sleep(600)
"#;
        let mut child = Command::new(python().expect("python3"))
            .args(["-c", ADJ_HOG])
            .arg(&self.dir)
            .arg(adj.to_string())
            .arg(mib.to_string())
            .arg(step_delay_s.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3");
        let pid = child.id() as i32;
        if wait_ready {
            let out = child.stdout.take().expect("stdout");
            let mut line = String::new();
            BufReader::new(out)
                .read_line(&mut line)
                .expect("ready line");
            assert_eq!(line.trim(), "ready", "hog {pid} did not get ready");
        }
        self.children.push(child);
        pid
    }
}

/// `dir` and every cgroup below it, deepest first.
fn cgroup_tree(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                cgroup_tree(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill(); // by pid, our own child
            let _ = c.wait();
        }
        // Child cgroups a test (or a process it started) made are removed too, so a failed
        // test leaves nothing behind.
        for _ in 0..100 {
            let mut tree = Vec::new();
            cgroup_tree(&self.dir, &mut tree);
            let mut busy = false;
            for d in &tree {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    busy = true;
                    // SAFETY: only pids in this test's own cgroups, which only it fills.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            if !busy {
                for d in &tree {
                    let _ = std::fs::remove_dir(d);
                }
                if !self.dir.exists() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// Waits for a child to exit; returns its wait status (`None` on timeout, after killing it).
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
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

/// The JSON lines of a text (an event log, `explain --json`'s output); lines that do not parse
/// (a line being written) are left out.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The events of a daemon's event log (`[events] log`), none while it does not exist yet.
pub fn read_events(path: &Path) -> Vec<serde_json::Value> {
    json_lines(&std::fs::read_to_string(path).unwrap_or_default())
}

/// The events of the log at `path` once one of them matches `f`, or whatever there is after
/// `timeout`. The daemon writes a kill's event after its log line and after the victim is
/// gone, so a test that saw either may be early.
pub fn wait_events(
    path: &Path,
    f: impl Fn(&serde_json::Value) -> bool,
    timeout: Duration,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let evs = read_events(path);
        if evs.iter().any(&f) || Instant::now() >= deadline {
            return evs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the first line of a child's piped stdout (a hog's "allocated", a family's pids).
pub fn first_line(child: &mut Child) -> String {
    let out = child.stdout.as_mut().expect("stdout piped");
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = out.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// MemAvailable now, in KiB.
pub fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .expect("meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("MemAvailable")
}

/// A process watched through a pidfd, so its exit is seen even when it is not our child (a
/// grandchild reparented to init) and a reused pid can never be mistaken for it.
pub struct PidWatch {
    pub pid: i32,
    fd: OwnedFd,
}

impl PidWatch {
    pub fn new(pid: i32) -> PidWatch {
        // SAFETY: pidfd_open(pid, 0) returns a new fd or -1; checked before it is owned.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        assert!(
            fd >= 0,
            "pidfd_open({pid}): {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        PidWatch { pid, fd }
    }

    /// Waits up to `timeout` for the exit; true once exited.
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, ms) > 0 }
    }

    pub fn exited(&self) -> bool {
        self.wait(Duration::ZERO)
    }
}

/// New `/dev/kmsg` records from the moment of [`Kmsg::follow`] on (the kernel's OOM reports).
pub struct Kmsg {
    f: std::fs::File,
}

impl Kmsg {
    /// `None` when /dev/kmsg cannot be read here.
    pub fn follow() -> Option<Kmsg> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()?;
        f.seek(SeekFrom::End(0)).ok()?;
        Some(Kmsg { f })
    }

    /// The message text of every record since the last call.
    pub fn read_new(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match self.f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    if let Some((_, msg)) = rec.split_once(';') {
                        out.push(msg.lines().next().unwrap_or("").to_owned());
                    }
                }
                // Records overwritten before we read them: go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}
