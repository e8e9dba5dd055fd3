//! zram devices: `/sys/block/zram<N>/mm_stat` and `disksize`, and the one judgement oomguard
//! makes from them, "is this device nearly full". Pure: the `oomguard` crate's
//! `host::zram` reader lists the devices and hands the text in.
//!
//! Why it matters: a zram swap device can be full while `/proc/meminfo` still shows free swap.
//! Its `disksize` is the logical size swap sees, but its RAM use is capped by `mem_limit`
//! (writes fail once `mem_used_total` reaches it), and incompressible data fills the logical
//! size at a 1:1 ratio. Users of every peer report machines that froze for many minutes with
//! zram "not full" (nohang 138, 142; earlyoom's zram threads), so a nearly full device counts as
//! swap exhausted.

use super::{lines, parse_u64, ParseError, ParseErrorKind};
use serde::Serialize;

/// `/sys/block/zramN/mm_stat`, one line of space-separated columns
/// (Documentation/admin-guide/blockdev/zram.rst). The first five columns are bytes, the rest pages;
/// the columns after the fifth (`same_pages`, `pages_compacted`, `huge_pages`,
/// `huge_pages_since`) were added over kernel releases, so they are optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ZramMmStat {
    /// Uncompressed size of the data stored (what swap thinks it used).
    pub orig_data_bytes: u64,
    /// Compressed size of the data stored.
    pub compr_data_bytes: u64,
    /// RAM the device uses, allocator overhead included.
    pub mem_used_total_bytes: u64,
    /// The RAM cap (`mem_limit`); `0` means none.
    pub mem_limit_bytes: u64,
    /// The highest `mem_used_total` seen.
    pub mem_used_max_bytes: u64,
    pub same_pages: Option<u64>,
    pub pages_compacted: Option<u64>,
    pub huge_pages: Option<u64>,
}

/// Parses `mm_stat`. Fewer than five columns, or a column that is not a number, is an error.
pub fn parse_mm_stat(text: &[u8]) -> Result<ZramMmStat, ParseError> {
    const FILE: &str = "mm_stat";
    super::require_final_newline(FILE, text)?;
    let mut it = lines(text);
    let (n, line) =
        it.next()
            .ok_or(ParseError::new(FILE, 1, ParseErrorKind::Malformed("empty")))?;
    if it.next().is_some() {
        return Err(ParseError::new(
            FILE,
            2,
            ParseErrorKind::Malformed("more than one line"),
        ));
    }
    const NAMES: [&str; 8] = [
        "orig_data_size",
        "compr_data_size",
        "mem_used_total",
        "mem_limit",
        "mem_used_max",
        "same_pages",
        "pages_compacted",
        "huge_pages",
    ];
    let mut v = [None::<u64>; 8];
    for (i, col) in line
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|c| !c.is_empty())
        .enumerate()
        .take(NAMES.len())
    {
        v[i] =
            Some(parse_u64(col).ok_or_else(|| ParseError::nan(FILE, n, NAMES[i].as_bytes(), col))?);
    }
    let need = |i: usize| {
        v[i].ok_or(ParseError::new(
            FILE,
            n,
            ParseErrorKind::Malformed("expected at least 5 columns"),
        ))
    };
    Ok(ZramMmStat {
        orig_data_bytes: need(0)?,
        compr_data_bytes: need(1)?,
        mem_used_total_bytes: need(2)?,
        mem_limit_bytes: need(3)?,
        mem_used_max_bytes: need(4)?,
        same_pages: v[5],
        pages_compacted: v[6],
        huge_pages: v[7],
    })
}

/// Parses `disksize` (bytes; `0` until the device is configured).
pub fn parse_disksize(text: &[u8]) -> Result<u64, ParseError> {
    super::parse_single_u64("disksize", text)
}

/// One zram device as read: its name and both files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZramDevice {
    /// `zram0`, ...
    pub name: String,
    pub disksize_bytes: u64,
    pub mm: ZramMmStat,
}

/// Why a device counts as full.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum ZramFull {
    /// The stored data fills `full_pct` or more of the logical size (`disksize`).
    Disksize { used_pct: f64 },
    /// The RAM used reaches `full_pct` or more of `mem_limit`: the next write fails.
    MemLimit { used_pct: f64 },
}

impl ZramDevice {
    /// `Some` when the device is configured and `full_pct` (0-100) or more full by either
    /// measure; an unconfigured device (`disksize` 0) is never full.
    pub fn full(&self, full_pct: f64) -> Option<ZramFull> {
        if self.disksize_bytes == 0 {
            return None;
        }
        let pct = |a: u64, b: u64| a as f64 * 100.0 / b as f64;
        let logical = pct(self.mm.orig_data_bytes, self.disksize_bytes);
        if self.mm.mem_limit_bytes > 0 {
            let ram = pct(self.mm.mem_used_total_bytes, self.mm.mem_limit_bytes);
            if ram >= full_pct && ram >= logical {
                return Some(ZramFull::MemLimit { used_pct: ram });
            }
        }
        (logical >= full_pct).then_some(ZramFull::Disksize { used_pct: logical })
    }
}

/// The default "nearly full" mark (`swap.zram_full_pct`): 95 % leaves a last margin for the
/// kernel while oomguard acts; operators with bursty swap-out lower it.
pub const DEFAULT_ZRAM_FULL_PCT: f64 = 95.0;

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fx {
        ($n:literal) => {
            include_bytes!(concat!("../../tests/fixtures/host/", $n))
        };
    }

    fn dev(disksize: &[u8], mm: &[u8]) -> ZramDevice {
        ZramDevice {
            name: "zram1".into(),
            disksize_bytes: parse_disksize(disksize).unwrap(),
            mm: parse_mm_stat(mm).unwrap(),
        }
    }

    // Fixtures: a zram device hot-added on this 6.18 host, 64 MiB disksize, written with dd
    // (not swapped to): 16 MiB of text, 64 MiB of random bytes, and 32 MiB of random bytes with
    // mem_limit 4 MiB (dd failed with EIO at 4 MiB).
    #[test]
    fn real_6_18_files() {
        let unset = dev(
            fx!("zram-disksize-unset-6.18.txt"),
            fx!("zram-mm_stat-unset-6.18.txt"),
        );
        assert_eq!(unset.disksize_bytes, 0);
        assert_eq!(unset.full(0.0), None);

        let text = dev(
            fx!("zram-disksize-64M-6.18.txt"),
            fx!("zram-mm_stat-16M-text-6.18.txt"),
        );
        assert_eq!(text.mm.orig_data_bytes, 16 << 20);
        assert_eq!(text.mm.compr_data_bytes, 294_912);
        assert_eq!(text.mm.huge_pages, Some(0));
        assert_eq!(text.full(DEFAULT_ZRAM_FULL_PCT), None);
        assert_eq!(text.full(25.0), Some(ZramFull::Disksize { used_pct: 25.0 }));

        let random = dev(
            fx!("zram-disksize-64M-6.18.txt"),
            fx!("zram-mm_stat-full-random-6.18.txt"),
        );
        assert_eq!(random.mm.huge_pages, Some(16_384));
        assert_eq!(
            random.full(DEFAULT_ZRAM_FULL_PCT),
            Some(ZramFull::Disksize { used_pct: 100.0 })
        );

        let capped = dev(
            fx!("zram-disksize-64M-6.18.txt"),
            fx!("zram-mm_stat-mem_limit-6.18.txt"),
        );
        assert_eq!(capped.mm.mem_limit_bytes, 4 << 20);
        // Logically 1/16 full, but out of RAM: full by mem_limit.
        assert_eq!(
            capped.full(DEFAULT_ZRAM_FULL_PCT),
            Some(ZramFull::MemLimit { used_pct: 100.0 })
        );
    }

    #[test]
    fn older_and_broken_mm_stat() {
        // 4.4-era mm_stat: 7 columns (no huge_pages).
        let m = parse_mm_stat(b"  4096  64  12288  0  12288  0  0\n").unwrap();
        assert_eq!(m.mem_used_total_bytes, 12_288);
        assert_eq!(m.huge_pages, None);
        let e = parse_mm_stat(b"1 2 3 4\n").unwrap_err();
        assert!(e.to_string().contains("at least 5 columns"), "{e}");
        let e = parse_mm_stat(b"1 2 x 4 5\n").unwrap_err();
        assert!(e.to_string().contains("mem_used_total"), "{e}");
        assert!(parse_mm_stat(b"1 2 3 4 5").is_err(), "truncated");
        assert!(parse_mm_stat(b"").is_err());
        assert!(parse_mm_stat(b"1 2 3 4 5\n1 2 3 4 5\n").is_err());
        assert!(parse_disksize(b"64M\n").is_err());
    }
}
