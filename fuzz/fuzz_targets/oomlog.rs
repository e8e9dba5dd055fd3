//! Fuzzes the OOM log parser end to end: arbitrary bytes, split into lines as `explain` does,
//! through prefix stripping, record splitting, classification and event assembly. Properties
//! checked beyond "no panic": every event's kill line number is one of the input's lines, and a
//! kill event always names its victim.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomguard_core::event::EventKind;
use oomguard_core::oomlog::{prefix, Parser};

fuzz_target!(|data: &[u8]| {
    let mut p = Parser::new();
    let mut n = 0u64;
    for line in data.split(|b| *b == b'\n') {
        n += 1;
        p.push(line, n);
        if let Ok(s) = std::str::from_utf8(line) {
            let _ = prefix::strip(s);
            for pt in prefix::split_points(s) {
                assert!(s.is_char_boundary(pt));
            }
        }
    }
    let mut out = Vec::new();
    p.finish(&mut out);
    for ev in &out {
        if let Some(l) = ev.line {
            assert!(l >= 1 && l <= n);
        }
        if ev.kind == EventKind::Kill {
            assert!(ev.pid.is_some() && ev.comm.is_some());
        }
    }
});
