//! The thrash rule on the real kernel (issue 16): a process in a v1 memory cgroup with a
//! 96 MiB limit re-reads a 256 MiB file on a disk-backed filesystem (the target directory,
//! never tmpfs, whose pages cannot be evicted and re-read) and thrashes while the machine's
//! MemAvailable stays high; the daemon's thrash rule notices it from the cgroup's
//! `memory.stat`, takes its `notify` step, escalates to `kill`, and chooses the victim within
//! the cgroup. The negative cases run the same config against an idle cgroup and a one-pass
//! sequential reader of a file of the same size, and must never fire. Every daemon is a dry run
//! with the machine scope off, so nothing outside the test cgroup is ever a candidate and
//! nothing is signalled; the test's own processes are SIGKILLed by the cgroup's drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use common::{kernel, mem_available_kib, wait_timeout, TestCgroup};

const LIMIT: u64 = 96 << 20;
const FILE_MIB: usize = 256;

/// Reads `argv[1]` in 1 MiB `os.read`s, `argv[2]` passes (0: until `argv[3]` seconds have
/// passed), named `argv[4]`; oom_score_adj 1000; prints the bytes read when done.
const READER: &str = r#"
import os, sys, time, ctypes
open('/proc/self/oom_score_adj', 'w').write('1000')
ctypes.CDLL(None).prctl(15, sys.argv[4].encode()[:15], 0, 0, 0)
passes, limit_s = int(sys.argv[2]), float(sys.argv[3])
t0, done, total = time.time(), 0, 0
print('started', flush=True)
while (passes == 0 or done < passes) and time.time() - t0 < limit_s:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        total += len(b)
    os.close(fd)
    done += 1
print('read', total, 'passes', done, flush=True)
if passes:
    time.sleep(limit_s)
"#;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("oomguard")
}

/// A file of `FILE_MIB` MiB under the target directory, written, synced and dropped from the
/// page cache (so the first pass reads the disk and no shadow entries of an earlier test
/// count as refaults); `None` (skipped) when that filesystem is tmpfs.
fn big_file(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // SAFETY: statfs on a NUL-terminated path into a zeroed struct.
    let fs_type = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(libc::statfs(c.as_ptr(), &mut st), 0);
        st.f_type
    };
    if fs_type == libc::TMPFS_MAGIC {
        kernel::skip(
            test,
            "the target directory is on tmpfs (no disk to thrash against)",
        );
        return None;
    }
    let path = dir.path().join("big.bin");
    let mut f = std::fs::File::create(&path).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    for i in 0..FILE_MIB {
        chunk.fill((i % 251) as u8 + 1);
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
    // SAFETY: fadvise on an open fd.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    Some((dir, path))
}

struct Daemon {
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
    /// Held while the daemon runs, so no test's zram device is full meanwhile (see [`ZRAM`]).
    _zram: Option<RwLockReadGuard<'static, ()>>,
}

/// The zram test fills a real device, which every daemon on the machine sees (and counts as
/// swap exhausted): it takes this for writing, every other daemon here for reading.
static ZRAM: RwLock<()> = RwLock::new(());

impl Daemon {
    /// A dry-run daemon guarding `cg` (headroom 0: the headroom rule only watches) with the
    /// thrash rule on for cgroups only, notify then kill.
    fn start(cg: &TestCgroup, extra: &str) -> Daemon {
        Daemon::start_with(
            cg,
            true,
            &format!("step_window = \"2s\"\nactions = [\"notify\", \"kill\"]\n{extra}"),
        )
    }

    /// A daemon guarding `cg` with the thrash rule on for cgroups only and `thrash` lines
    /// (actions, step_window, ...) added to its section. Not a dry run only with `dry_run`
    /// false; candidates are limited to `cg` either way (`candidates_cgroup`), so even the
    /// machine-wide memory rule could only choose the test's own processes.
    fn start_with(cg: &TestCgroup, dry_run: bool, thrash: &str) -> Daemon {
        let guard = ZRAM.read().unwrap_or_else(|e| e.into_inner());
        Daemon::start_locked(cg, dry_run, thrash, Some(guard))
    }

    /// [`Daemon::start_with`] for a caller that holds [`ZRAM`] itself.
    fn start_locked(
        cg: &TestCgroup,
        dry_run: bool,
        thrash: &str,
        zram: Option<RwLockReadGuard<'static, ()>>,
    ) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("oomguard.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"dry_run = {dry_run}
candidates_cgroup = "{}"
[memory]
term_below = "1M"
kill_below = "512K"
[events]
log = "{}"
journal = false
[[cgroups]]
path = "{}"
headroom = "0"
[thrash]
enable = true
machine = false
duration = "3s"
{thrash}
"#,
                cg.rel,
                dir.path().join("events.jsonl").display(),
                cg.rel
            ),
        )
        .unwrap();
        let log = dir.path().join("watch.log");
        let child = Command::new(bin())
            .arg("watch")
            .arg("--config")
            .arg(&cfg)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            log,
            dir,
            _zram: zram,
        };
        assert!(
            d.wait_for("guarding cgroup", Duration::from_secs(10)),
            "{}",
            d.text()
        );
        d
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The events once one of them matches `f` (common::wait_events), or all after `timeout`.
    fn wait_events(
        &self,
        f: impl Fn(&serde_json::Value) -> bool,
        timeout: Duration,
    ) -> Vec<serde_json::Value> {
        common::wait_events(&self.dir.path().join("events.jsonl"), f, timeout)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cgroup_stat(cg: &TestCgroup, key: &str) -> u64 {
    cg.read("memory.stat")
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn rereading_a_file_larger_than_the_limit_fires_within_the_cgroup() {
    let test = "rereading_a_file_larger_than_the_limit_fires_within_the_cgroup";
    let Some(cg) = TestCgroup::new("thrash", LIMIT) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let d = Daemon::start(&cg, "");
    let avail_before = mem_available_kib();
    let refaults_before = cgroup_stat(&cg, "workingset_refault_file");
    let mut reader = cg.spawn_py(READER, &[file.to_str().unwrap(), "0", "60", "thrasher"]);
    let fired = d.wait_for("kill #1 (dry run): thrash-refault", Duration::from_secs(40));
    let refaults = cgroup_stat(&cg, "workingset_refault_file") - refaults_before;
    let avail_during = mem_available_kib();
    let text = d.text();
    assert!(
        fired,
        "no thrash kill decision; cgroup refaulted {refaults} pages\n{text}"
    );
    // The notify step came first, then the escalation to kill.
    let notify = text
        .find("thrash-refault: cgroup")
        .expect("no thrash decision line");
    let kill = text.find("kill #1 (dry run): thrash-refault").unwrap();
    assert!(
        notify < kill && text.contains("step 1/2 notify") && text.contains("step 2/2 kill"),
        "{text}"
    );
    let evs = d.wait_events(
        |e| e["kind"] == "kill" && e["source"] == "oomguard",
        Duration::from_secs(10),
    );
    let warn = evs
        .iter()
        .find(|e| e["kind"] == "warning" && e["trigger"]["reason"] == "thrash-refault")
        .unwrap_or_else(|| panic!("no notify event: {evs:?}\n{text}"));
    assert_eq!(warn["trigger"]["cgroup"], cg.rel.as_str());
    let k = evs
        .iter()
        .find(|e| e["kind"] == "kill" && e["source"] == "oomguard")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}\n{text}"));
    assert_eq!(k["trigger"]["reason"], "thrash-refault", "{k}");
    assert_eq!(k["trigger"]["cgroup"], cg.rel.as_str(), "{k}");
    // The victim is the reader, in the cgroup, never anything outside it.
    assert_eq!(k["victim"]["name"], "thrasher", "{k}");
    assert!(
        cg.procs()
            .contains(&(k["victim"]["pid"].as_i64().unwrap() as i32)),
        "{k}"
    );
    assert_eq!(k["action"]["dry_run"], true);
    // While the machine had memory: the memory rule (1 MiB) never came near.
    assert!(
        avail_during > 1 << 20 && avail_before > 1 << 20,
        "MemAvailable {avail_before} -> {avail_during} KiB"
    );
    eprintln!(
        "thrash: fired with MemAvailable {} MiB -> {} MiB; cgroup refaulted {} MiB of file pages",
        avail_before >> 10,
        avail_during >> 10,
        (refaults * 4096) >> 20
    );
    // The dry run signalled nothing: the reader still runs.
    assert!(wait_timeout(&mut reader, Duration::from_millis(10)).is_none());
}

/// Runs the daemon against `cg` for `secs` and returns its log; no thrash line may appear.
fn never_fires(d: &Daemon, secs: u64) -> String {
    std::thread::sleep(Duration::from_secs(secs));
    let text = d.text();
    assert!(
        !text.contains("thrash-refault")
            && !text.contains("swap-full")
            && !text.contains("zram-full"),
        "the thrash rule fired:\n{text}"
    );
    text
}

#[test]
fn idle_cgroup_never_fires() {
    let Some(cg) = TestCgroup::new("thrash-idle", LIMIT) else {
        return;
    };
    let d = Daemon::start(&cg, "");
    let mut idle = cg.spawn_py("import time; time.sleep(30)", &[]);
    never_fires(&d, 12);
    assert!(wait_timeout(&mut idle, Duration::from_millis(10)).is_none());
}

#[test]
fn one_pass_sequential_reader_never_fires() {
    let test = "one_pass_sequential_reader_never_fires";
    let Some(cg) = TestCgroup::new("thrash-once", LIMIT) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let d = Daemon::start(&cg, "");
    let mut reader = cg.spawn_py(READER, &[file.to_str().unwrap(), "1", "8", "onepass"]);
    never_fires(&d, 12);
    let _ = reader.kill();
    let mut out = String::new();
    std::io::Read::read_to_string(reader.stdout.as_mut().unwrap(), &mut out).unwrap();
    let _ = reader.wait();
    // The negative is only worth something if the reader really read the whole file through
    // the cgroup's limit.
    assert!(
        out.contains(&format!("read {} passes 1", FILE_MIB << 20)),
        "reader output {out:?}"
    );
    let _ = Path::new(&file);
}

/// A zram device this test hot-added (`/sys/class/zram-control/hot_add`), reset and removed
/// (`hot_remove`) when dropped.
struct TestZram {
    id: u32,
    sys: PathBuf,
}

impl TestZram {
    /// A new device of `disksize_bytes`; `None` (skipped) where the kernel has no zram.
    fn new(test: &str, disksize_bytes: u64) -> Option<TestZram> {
        let ctl = Path::new("/sys/class/zram-control/hot_add");
        let id: u32 = match std::fs::read_to_string(ctl) {
            Ok(t) => t.trim().parse().unwrap(),
            Err(e) => {
                kernel::skip(test, &format!("no zram here: {}: {e}", ctl.display()));
                return None;
            }
        };
        let z = TestZram {
            id,
            sys: PathBuf::from(format!("/sys/block/zram{id}")),
        };
        std::fs::write(z.sys.join("disksize"), disksize_bytes.to_string()).unwrap();
        Some(z)
    }

    fn name(&self) -> String {
        format!("zram{}", self.id)
    }

    /// Writes `bytes` of incompressible data (xorshift) to the device and syncs it, so zram
    /// stores every page (`orig_data_size` grows by `bytes`, RAM by about as much).
    fn fill(&self, bytes: usize) {
        let node = PathBuf::from(format!("/dev/{}", self.name()));
        let deadline = Instant::now() + Duration::from_secs(2);
        while !node.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut f = std::fs::OpenOptions::new().write(true).open(&node).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(self.id);
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            for w in chunk.chunks_exact_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                w.copy_from_slice(&x.to_le_bytes());
            }
            let n = left.min(chunk.len());
            f.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
        f.sync_all().unwrap();
    }

    /// `mm_stat`'s first column: the data stored.
    fn orig_data_bytes(&self) -> u64 {
        std::fs::read_to_string(self.sys.join("mm_stat"))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// A sysfs root whose `block/` holds only this device (a symlink to the kernel's
    /// directory), so `doctor` judges this device and none of the machine's.
    fn sys_root(&self) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("block")).unwrap();
        std::os::unix::fs::symlink(&self.sys, t.path().join("block").join(self.name())).unwrap();
        t
    }
}

impl Drop for TestZram {
    fn drop(&mut self) {
        let _ = std::fs::write(self.sys.join("reset"), "1");
        if let Err(e) = std::fs::write("/sys/class/zram-control/hot_remove", self.id.to_string()) {
            eprintln!("note: zram{} not removed: {e}", self.id);
        }
    }
}

/// The zram finding of `doctor --json` for `dev`, read through `sys_root`.
fn doctor_zram(sys_root: &Path, dev: &str) -> serde_json::Value {
    let out = Command::new(bin())
        .args(["doctor", "--json", "--kernel-log", "none", "--sys-root"])
        .arg(sys_root)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| {
            f["id"] == "zram"
                && f["title"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("{dev} "))
        })
        .unwrap_or_else(|| panic!("no zram finding for {dev}: {v}"))
        .clone()
}

/// A real zram device, nearly full of incompressible data, is swap exhausted: `doctor` says
/// so (critical, naming the device) where it said "has room" while the device was empty, and
/// the thrash rule, with its refault threshold out of reach, fires with reason `zram-full` on
/// a thrashing cgroup only once the device is full (the lowered bar of lmkd's `swap_is_low`).
/// The device holds at most 32 MiB of RAM and is removed at the end; every other daemon in this
/// file waits on [`ZRAM`] meanwhile.
#[test]
fn a_full_zram_device_is_swap_exhausted_for_doctor_and_the_thrash_rule() {
    let test = "a_full_zram_device_is_swap_exhausted_for_doctor_and_the_thrash_rule";
    let _only = ZRAM.write().unwrap_or_else(|e| e.into_inner());
    let Some(cg) = TestCgroup::new("thrash-zram", LIMIT) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let Some(z) = TestZram::new(test, 32 << 20) else {
        return;
    };
    let root = z.sys_root();
    let empty = doctor_zram(root.path(), &z.name());
    assert_eq!(empty["severity"], "ok", "{empty}");
    // Only the lowered bar can fire: refaults above 1e6 % of the working set per second never
    // happen.
    let cfg = "threshold = 1000000.0\nstep_window = \"2s\"\nactions = [\"notify\", \"kill\"]\n";
    let mut reader = cg.spawn_py(READER, &[file.to_str().unwrap(), "0", "90", "thrasher"]);
    {
        let d = Daemon::start_locked(&cg, true, cfg, None);
        never_fires(&d, 8);
    }
    z.fill(31 << 20);
    let stored = z.orig_data_bytes();
    assert!(stored >= 31 << 20, "mm_stat orig_data_size {stored}");
    let full = doctor_zram(root.path(), &z.name());
    assert_eq!(full["severity"], "critical", "{full}");
    assert!(
        full["title"]
            .as_str()
            .unwrap()
            .contains("% full (of its disksize): swap is exhausted"),
        "{full}"
    );
    let d = Daemon::start_locked(&cg, true, cfg, None);
    let fired = d.wait_for("kill #1 (dry run): zram-full", Duration::from_secs(40));
    let text = d.text();
    assert!(fired, "no zram-full decision\n{text}");
    let evs = d.wait_events(
        |e| e["kind"] == "kill" && e["source"] == "oomguard",
        Duration::from_secs(10),
    );
    let k = evs
        .iter()
        .find(|e| e["kind"] == "kill" && e["source"] == "oomguard")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}\n{text}"));
    assert_eq!(k["trigger"]["reason"], "zram-full", "{k}");
    assert_eq!(k["trigger"]["cgroup"], cg.rel.as_str(), "{k}");
    assert_eq!(k["victim"]["name"], "thrasher", "{k}");
    drop(d);
    let _ = reader.kill();
    let _ = reader.wait();
    eprintln!(
        "zram: {} stored {} MiB of {} MiB; doctor: {}",
        z.name(),
        stored >> 20,
        32,
        full["title"]
    );
}

/// `watch --check` validates the `[thrash]` keys (no kernel needed): a good section is printed
/// on one line, a bad one is refused with exit 2 and the key named.
#[test]
fn check_prints_the_thrash_rule_and_names_a_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).unwrap();
        Command::new(bin())
            .args(["watch", "--check", "--config"])
            .arg(&p)
            .output()
            .unwrap()
    };
    let ok = run("[thrash]\nenable = true\nmachine = false\nactions = [\"notify\", \"kill\"]\n");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(
        out.contains(
            "thrash: each guarded cgroup: refaults above 100% of the working set per second"
        ) && out.contains("actions notify -> kill"),
        "{out}"
    );
    let frz = run("[thrash]\nenable = true\nactions = [\"notify\", \"freeze\", \"kill\"]\nstep_window = \"5s\"\n");
    let out = String::from_utf8_lossy(&frz.stdout);
    assert_eq!(frz.status.code(), Some(0), "{out}");
    assert!(
        out.contains("actions notify -> freeze -> kill (5s each); changes recorded in /run/oomguard/restrain.json"),
        "{out}"
    );
    // throttle and reclaim are accepted; on a host without a v2 memory controller (this one:
    // v1) --check warns that they will be refused at run time.
    let v2 = [
        "/sys/fs/cgroup/cgroup.controllers",
        "/sys/fs/cgroup/unified/cgroup.controllers",
    ]
    .iter()
    .any(|p| std::fs::read_to_string(p).is_ok_and(|c| c.split_whitespace().any(|w| w == "memory")));
    let thr = run(
        "[thrash]\nenable = true\nactions = [\"reclaim\", \"throttle\", \"restart\", \"kill\"]\n",
    );
    let out = String::from_utf8_lossy(&thr.stdout);
    assert_eq!(thr.status.code(), Some(0), "{out}");
    assert!(
        out.contains("actions reclaim -> throttle -> restart -> kill"),
        "{out}"
    );
    for step in [
        "\"throttle\" needs cgroup v2 (memory.high)",
        "\"reclaim\" needs cgroup v2 (memory.reclaim)",
    ] {
        assert_eq!(
            out.contains(step),
            !v2,
            "v2 memory controller {v2}: {step}: {out}"
        );
    }
    assert_eq!(
        out.contains("\"restart\" needs systemd as PID 1"),
        !Path::new("/run/systemd/system").is_dir(),
        "{out}"
    );
    let off = run("");
    assert!(String::from_utf8_lossy(&off.stdout).contains("thrash: off"));
    for (text, key) in [
        (
            "[thrash]\nactions = [\"kill\", \"notify\"]\n",
            "thrash.actions[0]",
        ),
        ("[thrash]\nthreshold = -5\n", "thrash.threshold"),
        ("[thrash]\nduration = \"soon\"\n", "line 2"),
        (
            "[thrash]\nactions = [\"reclaim\", \"kill\"]\nreclaim = \"0\"\n",
            "thrash.reclaim",
        ),
        (
            "[thrash]\nactions = [\"freeze\", \"kill\"]\nstate_file = \"rel.json\"\n",
            "thrash.state_file",
        ),
    ] {
        let bad = run(text);
        let err = String::from_utf8_lossy(&bad.stderr);
        assert_eq!(bad.status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(key), "{text}: {err}");
    }
}

/// The v1 freezer cgroup with the memory cgroup's path (made here, with the parents that were
/// missing); on drop it is thawed, what the test put in it is SIGKILLed, and what was made is
/// removed.
struct FreezerCg {
    dir: PathBuf,
    made: Vec<PathBuf>,
}

impl FreezerCg {
    fn new(test: &str, rel: &str) -> Option<FreezerCg> {
        let root = Path::new("/sys/fs/cgroup/freezer");
        if !root.join("cgroup.procs").exists() {
            kernel::skip(test, "no cgroup v1 freezer at /sys/fs/cgroup/freezer");
            return None;
        }
        let mut dir = root.to_path_buf();
        let mut made = Vec::new();
        for c in rel.trim_start_matches('/').split('/') {
            dir.push(c);
            if !dir.exists() {
                std::fs::create_dir(&dir).expect("mkdir freezer cgroup");
                made.push(dir.clone());
            }
        }
        Some(FreezerCg { dir, made })
    }

    fn state(&self) -> String {
        std::fs::read_to_string(self.dir.join("freezer.state"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    fn wait_state(&self, want: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.state() == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Starts the reader in the memory cgroup and this freezer cgroup.
    fn spawn_reader(&self, cg: &TestCgroup, args: &[&str]) -> Child {
        let py = common::python().expect("python3");
        let mut inner = format!("{py} -c \"$0\"");
        for i in 1..=args.len() {
            inner.push_str(&format!(" \"${i}\""));
        }
        let sh = format!(
            "echo $$ > '{}' && {}",
            self.dir.join("cgroup.procs").display(),
            cg.join_then(&inner)
        );
        Command::new("/bin/sh")
            .arg("-c")
            .arg(sh)
            .arg(READER)
            .args(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

impl Drop for FreezerCg {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("freezer.state"), "THAWED");
        for _ in 0..100 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for p in pids {
                // SAFETY: only pids in the freezer cgroup this test made and filled.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn freeze_config(state: &Path, step_window: &str) -> String {
    format!(
        "step_window = \"{step_window}\"\nactions = [\"freeze\", \"kill\"]\nstate_file = \"{}\"\n",
        state.display()
    )
}

/// `actions = ["freeze", "kill"]` on the real v1 freezer: the thrashing reader's cgroup is
/// frozen (recorded in the state file first), thawed when the 3 s window is over, and, still
/// thrashing after the thaw, the reader is killed (really: SIGTERM, within the test cgroup
/// only). Every step is an event.
#[test]
fn freeze_then_kill_on_the_real_freezer() {
    let test = "freeze_then_kill_on_the_real_freezer";
    let Some(cg) = TestCgroup::new("thrash-freeze", LIMIT) else {
        return;
    };
    let Some(frz) = FreezerCg::new(test, &cg.rel) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("restrain.json");
    let d = Daemon::start_with(&cg, false, &freeze_config(&state, "3s"));
    let mut reader = frz.spawn_reader(&cg, &[file.to_str().unwrap(), "0", "90", "thrasher"]);
    assert!(
        frz.wait_state("FROZEN", Duration::from_secs(40)),
        "never frozen ({})\n{}",
        frz.state(),
        d.text()
    );
    let frozen_at = Instant::now();
    let listed = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        listed.contains(&format!(
            r#"{{"change":"freezer_v1","cgroup":"{}"}}"#,
            cg.rel
        )),
        "state file: {listed:?}"
    );
    // Thawed at the end of its window (3 s; the loop wakes for it), then killed.
    assert!(
        frz.wait_state("THAWED", Duration::from_secs(6)),
        "not thawed\n{}",
        d.text()
    );
    let thawed_after = frozen_at.elapsed();
    let status = wait_timeout(&mut reader, Duration::from_secs(30));
    let text = d.text();
    assert!(status.is_some(), "the reader was not killed\n{text}");
    assert!(
        d.wait_for("kill #1 (real): thrash-refault", Duration::from_secs(5)),
        "{text}"
    );
    let text = d.text();
    assert!(
        text.contains("step 1/2 freeze") && text.contains("step 2/2 kill"),
        "{text}"
    );
    let evs = d.wait_events(
        |e| e["kind"] == "kill" && e["source"] == "oomguard",
        Duration::from_secs(10),
    );
    let step = |outcome: &str| {
        evs.iter()
            .find(|e| e["step"]["action"] == "freeze" && e["step"]["outcome"] == outcome)
            .unwrap_or_else(|| panic!("no freeze {outcome} event: {evs:?}\n{text}"))
    };
    let done = step("done");
    assert_eq!(done["kind"], "warning");
    assert_eq!(done["trigger"]["cgroup"], cg.rel.as_str());
    assert_eq!(done["step"]["index"], 1);
    assert_eq!(done["step"]["of"], 2);
    step("ended");
    let k = evs
        .iter()
        .find(|e| e["kind"] == "kill" && e["source"] == "oomguard")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}\n{text}"));
    assert_eq!(k["trigger"]["reason"], "thrash-refault");
    assert_eq!(k["victim"]["name"], "thrasher");
    assert_eq!(k["action"]["dry_run"], false);
    // Nothing is left changed: the state file is gone.
    assert!(!state.exists(), "{:?}", std::fs::read_to_string(&state));
    eprintln!("freeze: thawed {thawed_after:?} after it was seen frozen; then killed");
}

/// A daemon SIGKILLed while the cgroup is frozen leaves it frozen (nothing can run at a
/// SIGKILL) but listed in the state file; the next daemon thaws it at start and clears it.
#[test]
fn a_daemon_killed_while_frozen_is_undone_by_the_next() {
    let test = "a_daemon_killed_while_frozen_is_undone_by_the_next";
    let Some(cg) = TestCgroup::new("thrash-sigkill", LIMIT) else {
        return;
    };
    let Some(frz) = FreezerCg::new(test, &cg.rel) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("restrain.json");
    let mut d = Daemon::start_with(&cg, false, &freeze_config(&state, "60s"));
    let mut reader = frz.spawn_reader(&cg, &[file.to_str().unwrap(), "0", "120", "thrasher"]);
    assert!(
        frz.wait_state("FROZEN", Duration::from_secs(40)),
        "never frozen\n{}",
        d.text()
    );
    // SIGKILL, by pid (our own child).
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(frz.state(), "FROZEN");
    assert!(std::fs::read_to_string(&state)
        .unwrap_or_default()
        .contains("freezer_v1"));
    let d2 = Daemon::start_with(&cg, false, &freeze_config(&state, "60s"));
    assert!(
        frz.wait_state("THAWED", Duration::from_secs(5)),
        "the next daemon did not thaw it\n{}",
        d2.text()
    );
    // Stop the reader before the new daemon's rule could fire again.
    let _ = reader.kill();
    let _ = reader.wait();
    assert!(
        d2.wait_for(
            "thrash: restored what an earlier daemon left: v1 freezer cgroup",
            Duration::from_secs(2)
        ),
        "{}",
        d2.text()
    );
    assert!(!state.exists(), "{:?}", std::fs::read_to_string(&state));
}

/// The process state letter of `pid` (`T` stopped), from `/proc/PID/stat`.
fn proc_state(pid: u32) -> char {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    s.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// No freezer cgroup of the memory cgroup's path, and the scope is one process: `freeze`
/// stops it with SIGSTOP (through a pidfd) for the window and continues it with SIGCONT, then
/// the kill follows.
#[test]
fn freeze_stops_a_one_process_scope_without_a_freezer_cgroup() {
    let test = "freeze_stops_a_one_process_scope_without_a_freezer_cgroup";
    let Some(cg) = TestCgroup::new("thrash-stop", LIMIT) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let state_dir = tempfile::tempdir().unwrap();
    let state = state_dir.path().join("restrain.json");
    let d = Daemon::start_with(&cg, false, &freeze_config(&state, "3s"));
    let mut reader = cg.spawn_py(READER, &[file.to_str().unwrap(), "0", "90", "thrasher"]);
    let pid = reader.id();
    let deadline = Instant::now() + Duration::from_secs(40);
    while proc_state(pid) != 'T' && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(proc_state(pid), 'T', "never stopped\n{}", d.text());
    let listed = std::fs::read_to_string(&state).unwrap_or_default();
    assert!(
        listed.contains(&format!(
            r#""change":"stop","cgroup":"{}","pid":{pid}"#,
            cg.rel
        )),
        "{listed:?}"
    );
    let status = wait_timeout(&mut reader, Duration::from_secs(30));
    let text = d.text();
    assert!(status.is_some(), "not killed\n{text}");
    assert!(
        text.contains("stopped (SIGSTOP)") && text.contains("step 1/2 freeze ended"),
        "{text}"
    );
    assert!(
        d.wait_for("kill #1 (real): thrash-refault", Duration::from_secs(5)),
        "{text}"
    );
    assert!(!state.exists());
}

/// On v1 (this machine) `throttle` and `reclaim` cannot work (no `memory.high`, no
/// `memory.reclaim`): each is refused at run time with the reason in its event and the chain
/// goes on at once, here to `notify` and then the kill step, whose event carries `step`.
#[test]
fn throttle_and_reclaim_are_refused_on_v1_and_the_chain_escalates() {
    let test = "throttle_and_reclaim_are_refused_on_v1_and_the_chain_escalates";
    let Some(cg) = TestCgroup::new("thrash-v1-refuse", LIMIT) else {
        return;
    };
    let Some((_keep, file)) = big_file(test) else {
        return;
    };
    let d = Daemon::start_with(
        &cg,
        true,
        "step_window = \"2s\"\nactions = [\"throttle\", \"reclaim\", \"notify\", \"kill\"]\n",
    );
    let mut reader = cg.spawn_py(READER, &[file.to_str().unwrap(), "0", "60", "thrasher"]);
    let fired = d.wait_for("kill #1 (dry run): thrash-refault", Duration::from_secs(40));
    // Ours: ended and reaped (the dry run signalled nothing).
    let _ = reader.kill();
    let _ = reader.wait();
    let text = d.text();
    assert!(fired, "no kill step\n{text}");
    let evs = d.wait_events(
        |e| e["kind"] == "kill" && e["source"] == "oomguard",
        Duration::from_secs(10),
    );
    let step = |action: &str| {
        evs.iter()
            .find(|e| e["step"]["action"] == action)
            .unwrap_or_else(|| panic!("no {action} step: {evs:?}\n{text}"))
            .clone()
    };
    let (thr, rec, not) = (step("throttle"), step("reclaim"), step("notify"));
    for (e, file) in [(&thr, "memory.high"), (&rec, "memory.reclaim")] {
        assert_eq!(e["step"]["outcome"], "refused", "{e}");
        let detail = e["step"]["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("needs cgroup v2 ({file})")) && detail.contains("is v1"),
            "{detail}"
        );
    }
    assert_eq!(not["step"]["outcome"], "done", "{not}");
    assert_eq!(
        (
            thr["step"]["index"].as_u64(),
            rec["step"]["index"].as_u64(),
            not["step"]["index"].as_u64()
        ),
        (Some(1), Some(2), Some(3))
    );
    let k = evs
        .iter()
        .find(|e| e["kind"] == "kill" && e["source"] == "oomguard")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}\n{text}"));
    assert_eq!(k["step"]["action"], "kill", "{k}");
    assert_eq!(k["step"]["index"], 4);
    assert_eq!(k["step"]["outcome"], "dry_run", "{k}");
    // The memory limit was never touched (v1 has no memory.high; the soft limit stays).
    assert!(
        cg.read("memory.soft_limit_in_bytes")
            .trim()
            .parse::<u64>()
            .unwrap()
            > LIMIT
    );
}
