//! The scan's steady state allocates nothing: a second scan over the same processes reuses the
//! pid list, the read buffer and the output vector. Counted with a wrapping global allocator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{FakeHost, FakeProc};
use oomguard::host::scan::{ScanStats, Scanner};
use oomguard::host::ProcFs;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_scan_allocates_nothing() {
    let h = FakeHost::new();
    for pid in 1..200 {
        h.add_proc(
            &FakeProc::new(pid, "idle")
                .rss(pid as u64 * 100)
                .adj((pid % 7) as i16 * 100),
        );
    }
    let mut scanner = Scanner::new(&ProcFs::new(h.proc_root())).unwrap();
    let mut out = Vec::new();
    let mut stats = ScanStats::default();
    scanner.scan(&mut out, &mut stats).unwrap();
    assert_eq!(out.len(), 199);
    let before = ALLOCS.load(Ordering::Relaxed);
    scanner.scan(&mut out, &mut stats).unwrap();
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(out.len(), 199);
    assert_eq!(
        after - before,
        0,
        "steady-state scan allocated {} times",
        after - before
    );
}
