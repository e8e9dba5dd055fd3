//! A capped memory hog for the real-kernel tests that run where no python exists (the VM lab's
//! busybox guest). It joins a cgroup first (so every page it touches is charged there), sets
//! its own oom_score_adj (1000 by default: it is the one the kernel and oomguard should take),
//! says `ready PID` on stdout, then takes fresh memory 1 MiB at a time at a given rate up to a
//! cap, writing one byte per 4 KiB page, and holds it.
//!
//! How it takes memory (`--fill`); the times to take 1 GiB as fast as it can into a 2 GiB v1
//! memcg, three runs each on the 2-core development VM (2026-12-04, other builds running):
//! - `populate` (default): one anonymous mapping of the whole cap made at start (no pages yet),
//!   then each MiB faulted in by one `madvise(MADV_POPULATE_WRITE)` (Linux 5.14; where it fails,
//!   by touching as `page` does): 0.68-0.81 s (1260-1500 MiB/s), the fastest and steadiest.
//! - `page`: the same mapping, one byte written per 4 KiB page (a fault each): 0.84-0.96 s.
//! - `vec`: a fresh 1 MiB heap allocation per step (an mmap each), the old way: 0.84-2.33 s.
//! - `thp`: the mapping with `madvise(MADV_HUGEPAGE)` (THP is `madvise` here), a fault per
//!   2 MiB: 0.11 s for 400 MiB while the buddy allocator has free 2 MiB blocks, then direct
//!   compaction stalls (THP defrag is `madvise` too): 1.41-3.29 s for 1 GiB. Fast but erratic.
//!
//! With `--progress` it prints `at MIB SECONDS` (memory touched, seconds since `ready`) every
//! 16 MiB, so a caller can measure the rate it really reached rather than assume the one asked.
//!
//! Usage: hog [--join CGROUP_DIR] [--adj N] [--mib CAP] [--rate MIB_PER_S (0: as fast as it
//! can)] [--hold SECONDS] [--fill thp|populate|page|vec] [--progress] [--ignore-term]

// A test tool: a failed set-up should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// Where the memory lives: one up-front mapping or a heap chunk per MiB.
enum Store {
    Map {
        base: *mut u8,
        len: usize,
        populate: bool,
    },
    Chunks(Vec<Vec<u8>>),
}

impl Store {
    fn new(fill: &str, cap_mib: u64) -> Store {
        if fill == "vec" {
            return Store::Chunks(Vec::with_capacity(cap_mib as usize));
        }
        let len = (cap_mib as usize).max(1) * MIB;
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(base != libc::MAP_FAILED, "hog: mmap {len} bytes failed");
        if fill == "thp" {
            // SAFETY: advice on the mapping just made; failure (no THP) only loses speed.
            unsafe { libc::madvise(base, len, libc::MADV_HUGEPAGE) };
        }
        Store::Map {
            base: base.cast(),
            len,
            populate: fill == "populate",
        }
    }

    /// Takes MiB number `i`: one byte written per 4 KiB page.
    fn take(&mut self, i: usize) {
        match self {
            Store::Map {
                base,
                len,
                populate,
            } => {
                assert!((i + 1) * MIB <= *len);
                // SAFETY: the range is inside the mapping; MADV_POPULATE_WRITE (Linux 5.14)
                // faults it in writable in one call. Where it fails, the touches below do it.
                if *populate
                    && unsafe {
                        libc::madvise(base.add(i * MIB).cast(), MIB, libc::MADV_POPULATE_WRITE)
                    } == 0
                {
                    return;
                }
                for p in (i * MIB..(i + 1) * MIB).step_by(4096) {
                    // SAFETY: p is inside the mapping (asserted above); volatile so the
                    // write is not elided.
                    unsafe { base.add(p).write_volatile(1) };
                }
            }
            Store::Chunks(chunks) => {
                let mut c = vec![0u8; MIB];
                for p in (0..c.len()).step_by(4096) {
                    c[p] = 1;
                }
                chunks.push(c);
            }
        }
    }

    /// Reads one byte of each MiB taken (keeps the pages in use).
    fn touch(&self, taken: usize) -> u8 {
        let mut sink = 0u8;
        for i in 0..taken {
            sink = sink.wrapping_add(match self {
                // SAFETY: i < taken <= the mapping's MiB count.
                Store::Map { base, .. } => unsafe { base.add(i * MIB).read_volatile() },
                Store::Chunks(c) => c[i][0],
            });
        }
        sink
    }
}

fn main() {
    let mut join = None;
    let mut adj = "1000".to_owned();
    let mut cap_mib = 64u64;
    let mut rate = 0f64;
    let mut hold = 600f64;
    let mut fill = "populate".to_owned();
    let mut progress = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--join" => join = Some(v()),
            "--adj" => adj = v(),
            "--mib" => cap_mib = v().parse().expect("--mib N"),
            "--rate" => rate = v().parse().expect("--rate MIB_PER_S"),
            "--hold" => hold = v().parse().expect("--hold SECONDS"),
            "--fill" => {
                fill = v();
                assert!(
                    matches!(fill.as_str(), "thp" | "populate" | "page" | "vec"),
                    "--fill thp|populate|page|vec"
                );
            }
            "--progress" => progress = true,
            // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
            "--ignore-term" => unsafe {
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
            },
            other => panic!("hog: unknown argument {other}"),
        }
    }
    // Hard cap whatever the caller asks: the hog must never be able to hurt the machine.
    let cap_mib = cap_mib.min(3072);
    let pid = std::process::id();
    if let Some(dir) = &join {
        std::fs::write(format!("{dir}/cgroup.procs"), pid.to_string()).expect("join cgroup");
    }
    std::fs::write("/proc/self/oom_score_adj", &adj).expect("oom_score_adj");
    let mut store = Store::new(&fill, cap_mib);
    println!("ready {pid}");
    let mut out = std::io::stdout();
    out.flush().ok();
    let start = Instant::now();
    for i in 0..cap_mib {
        store.take(i as usize);
        if progress && (i + 1) % 16 == 0 {
            writeln!(out, "at {} {:.6}", i + 1, start.elapsed().as_secs_f64()).ok();
            out.flush().ok();
        }
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }
    println!("full {cap_mib} {:.6}", start.elapsed().as_secs_f64());
    out.flush().ok();
    // Hold, and keep the pages in use (a read of each MiB twice a second).
    let end = Instant::now() + Duration::from_secs_f64(hold);
    let mut sink = 0u8;
    while Instant::now() < end {
        sink = sink.wrapping_add(store.touch(cap_mib as usize));
        std::thread::sleep(Duration::from_millis(500));
    }
    std::process::exit(i32::from(sink == 255));
}
