//! The breakdown on every fixture that has a Mem-Info block or a memcg stat dump: its parts add
//! up to its total (RAM, or the cgroup's limit), the total is the report's own figure, and a few
//! parts checked by hand against the log text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use oomguard_core::breakdown::{breakdown, Basis, PartKind};
use oomguard_core::event::OomEvent;
use oomguard_core::oomlog::Parser;

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/explain");
    let mut out = Vec::new();
    for dir in ["real", "eras"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn events(path: &Path) -> Vec<OomEvent> {
    let text = std::fs::read(path).unwrap();
    let mut p = Parser::new();
    for (i, l) in text.split(|b| *b == b'\n').enumerate() {
        p.push(l, i as u64 + 1);
    }
    let mut out = Vec::new();
    p.finish(&mut out);
    out
}

#[test]
fn parts_add_up_to_the_total_on_every_fixture() {
    let mut checked = 0;
    for f in fixtures() {
        for ev in events(&f) {
            let Some(b) = breakdown(&ev) else { continue };
            checked += 1;
            let sum: u64 = b.parts.iter().map(|p| p.bytes).sum();
            assert_eq!(
                sum,
                b.total_bytes + b.overcounted_bytes,
                "{}: parts {:?}",
                f.display(),
                b.parts
            );
            match b.basis {
                Basis::Ram => assert_eq!(
                    Some(b.total_bytes),
                    ev.memory
                        .as_ref()
                        .unwrap()
                        .mem_info
                        .as_ref()
                        .unwrap()
                        .ram_bytes
                ),
                Basis::MemcgLimit => {
                    assert_eq!(Some(b.total_bytes / 1024), ev.memcg_limit_kb)
                }
                _ => {}
            }
        }
    }
    assert!(checked >= 100, "only {checked} breakdowns");
}

#[test]
fn hand_checked_parts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/explain");
    // 5.10 global OOM: active_anon:1840112 inactive_anon:118020 shmem:33150, in pages of 4 KiB
    // (the block has no zone lines: the page size is the victim's row, 1873210 pages, against
    // its kill line, 7354100+6340+132400 kB).
    let ev = &events(&root.join("eras/5.10-journalctl-short-iso-rebuilt.log"))[0];
    let b = breakdown(ev).unwrap();
    assert_eq!(b.total_bytes, 2_097_018 * 4096);
    assert_eq!(
        b.bytes(PartKind::Anon),
        (1_840_112 + 118_020 - 33_150) * 4096
    );
    assert_eq!(b.bytes(PartKind::Shmem), 33_150 * 4096);
    assert_eq!(b.bytes(PartKind::Free), 25_123 * 4096);
    assert_eq!(b.bytes(PartKind::Reserved), 48_962 * 4096);
    // 3.10: a pool of 1024 huge pages of 2048 kB, none free.
    let ev = &events(&root.join("eras/3.10-panic-on-oom-compulsory.log"))[0];
    let b = breakdown(ev).unwrap();
    assert_eq!(b.bytes(PartKind::HugeUsed), 1024 * 2048 * 1024);
    assert_eq!(b.bytes(PartKind::HugeFree), 0);
    // 6.18 memcg v1 (real, this machine): limit 65536 kB, usage 65536 kB, total_rss 66969600.
    let ev = &events(&root.join("real/memcg-single.dmesg.log"))[0];
    let b = breakdown(ev).unwrap();
    assert_eq!(b.basis, Basis::MemcgLimit);
    assert_eq!(b.total_bytes, 65_536 * 1024);
    assert_eq!(b.bytes(PartKind::Anon), 66_969_600);
    assert_eq!(b.bytes(PartKind::Free), 0);
    // 6.18 memcg v1, real, with a 48 MiB tmpfs file: shmem 50331648 of cache 50331648.
    let ev = &events(&root.join("real/memcg-shmem.dmesg.log"))[0];
    let b = breakdown(ev).unwrap();
    assert_eq!(b.bytes(PartKind::Shmem), 50_331_648);
    assert_eq!(b.bytes(PartKind::PageCache), 0);
    let f = oomguard_core::diagnosis::findings(ev);
    assert!(f.iter().any(|x| x
        .text
        .contains("shmem/tmpfs held 48.0 MiB, 50.0% of the cgroup's limit")));
    // 5.15 memcg v2: anon 98742272, file 2469888 of which shmem 2297856.
    let ev = &events(&root.join("eras/5.15-aks-syslog-memcg-v2-interleaved.log"))[0];
    let b = breakdown(ev).unwrap();
    assert_eq!(b.bytes(PartKind::Anon), 98_742_272);
    assert_eq!(b.bytes(PartKind::PageCache), 2_469_888 - 2_297_856);
    assert_eq!(b.bytes(PartKind::SlabUnreclaimable), 443_144);
}

#[test]
fn terminal_shows_the_bar_and_the_parts() {
    let log = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/explain/eras/5.10-journalctl-short-iso-rebuilt.log");
    let plain = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--color", "never"])
        .arg(&log)
        .output()
        .unwrap();
    let out = String::from_utf8(plain.stdout).unwrap();
    let bar = out
        .lines()
        .find(|l| l.contains("Memory   RAM 8191.5 MiB  ["))
        .unwrap_or_else(|| panic!("{out}"));
    // 50 cells, each a part's letter when colour is off.
    let cells = bar.split('[').nth(1).unwrap().trim_end_matches(']');
    assert_eq!(cells.chars().count(), 50, "{bar}");
    assert!(cells.starts_with("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    assert!(out.contains("a user anonymous 7519.5 MiB 91.8%"));
    assert!(out.contains("There was no swap"));
    let colour = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(["explain", "--color", "always"])
        .arg(&log)
        .output()
        .unwrap();
    let out = String::from_utf8(colour.stdout).unwrap();
    assert!(out.contains("\x1b[38;5;203m█"));
}
