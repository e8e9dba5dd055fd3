//! Fuzzes the OOM log parser end to end: arbitrary bytes, split into lines as `explain` does,
//! through prefix stripping, record splitting, classification and event assembly. Properties
//! checked beyond "no panic": every event's kill line number is one of the input's lines, a
//! kill event always names its victim, and the reader's trigger search (`Prefilter`, which
//! lets `explain` skip ordinary lines unsplit) finds exactly the lines a naive check of every
//! trigger finds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomguard_core::event::EventKind;
use oomguard_core::oomlog::{prefix, Parser, Prefilter, TRIGGERS};

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
    // The trigger search, against a naive check of each line for each trigger.
    let contains = |l: &[u8], t: &str| l.windows(t.len()).any(|w| w == t.as_bytes());
    let mut want = Vec::new();
    let mut start = 0;
    for line in data.split(|b| *b == b'\n') {
        if TRIGGERS.iter().any(|t| contains(line, t)) {
            want.push(start);
        }
        start += line.len() + 1;
    }
    let pf = Prefilter::new();
    let mut search = pf.search(data);
    let mut got = Vec::new();
    let mut from = 0;
    while from <= data.len() {
        let Some(at) = search.find_from(from) else {
            break;
        };
        let line_start = data[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        got.push(line_start);
        from = data[at..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len() + 1, |i| at + i + 1);
    }
    assert_eq!(got, want);
});
