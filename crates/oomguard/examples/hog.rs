//! A capped memory hog for the real-kernel tests that run where no python exists (the VM lab's
//! busybox guest). It joins a cgroup first (so every page it touches is charged there), sets
//! its own oom_score_adj (1000 by default: it is the one the kernel and oomguard should take),
//! says `ready PID` on stdout, then takes fresh memory 1 MiB at a time at a given rate up to a
//! cap, writing one byte per 4 KiB page, and holds it.
//!
//! Usage: hog [--join CGROUP_DIR] [--adj N] [--mib CAP] [--rate MIB_PER_S (0: as fast as it
//! can)] [--hold SECONDS] [--ignore-term]

// A test tool: a failed set-up should stop it loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    let mut join = None;
    let mut adj = "1000".to_owned();
    let mut cap_mib = 64u64;
    let mut rate = 0f64;
    let mut hold = 600f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--join" => join = Some(v()),
            "--adj" => adj = v(),
            "--mib" => cap_mib = v().parse().expect("--mib N"),
            "--rate" => rate = v().parse().expect("--rate MIB_PER_S"),
            "--hold" => hold = v().parse().expect("--hold SECONDS"),
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
    println!("ready {pid}");
    std::io::stdout().flush().ok();
    let start = Instant::now();
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(cap_mib as usize);
    for i in 0..cap_mib {
        let mut c = vec![0u8; 1 << 20];
        for p in (0..c.len()).step_by(4096) {
            c[p] = 1;
        }
        chunks.push(c);
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64((i + 1) as f64 / rate);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }
    println!("full {cap_mib}");
    std::io::stdout().flush().ok();
    // Hold, and keep the pages in use (a read of each chunk twice a second).
    let end = Instant::now() + Duration::from_secs_f64(hold);
    let mut sink = 0u8;
    while Instant::now() < end {
        for c in &chunks {
            sink = sink.wrapping_add(c[0]);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::process::exit(i32::from(sink == 255));
}
