//! Small helpers for sizes: kernel text speaks kB and pages, oomguard speaks bytes. This is the
//! one place byte counts become text, in four styles: [`format_bytes`] (`1.5 GiB`, messages and
//! `--check`), [`mib_1`] / [`format_mib`] (`1383.3 MiB`, the unit OOM figures are read in),
//! [`format_mib_whole`] with [`format_mib_delta`] and [`format_mib_per_s`] (`64 MiB`, one-line
//! summaries: notification titles, `events` lines, `drill` steps) and [`format_bytes_compact`]
//! (`1.5K`, `rank`'s narrow columns).

/// Bytes in one KiB, the unit the kernel calls "kB".
pub const KIB: u64 = 1024;
/// Bytes in one MiB.
pub const MIB: u64 = 1024 * 1024;

/// Converts a kernel "kB" figure to bytes, saturating instead of overflowing on garbage.
pub fn kib_to_bytes(kib: u64) -> u64 {
    kib.saturating_mul(KIB)
}

/// Formats a byte count as MiB with one decimal, the unit people read OOM figures in.
pub fn mib_1(bytes: u64) -> String {
    let tenths = bytes.saturating_mul(10).saturating_add(MIB / 2) / MIB;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// `1.5 GiB`-style text for a byte count, for messages and `--check` output.
pub fn format_bytes(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if b >= size {
            let v = b as f64 / size as f64;
            return if (v - v.round()).abs() < 0.005 {
                format!("{} {name}", v.round() as u64)
            } else {
                format!("{v:.2} {name}")
            };
        }
    }
    format!("{b} B")
}

/// `mib_1` with its unit: `1383.3 MiB`.
pub fn format_mib(bytes: u64) -> String {
    format!("{} MiB", mib_1(bytes))
}

/// Whole MiB, rounded down, with the unit: `64 MiB`. For one-line summaries, where a decimal
/// is noise.
pub fn format_mib_whole(bytes: u64) -> String {
    format!("{} MiB", bytes / MIB)
}

/// A signed change in whole MiB, rounded towards minus infinity: `+12 MiB`, `-3 MiB`.
pub fn format_mib_delta(bytes: i64) -> String {
    format!("{:+} MiB", bytes.div_euclid(MIB as i64))
}

/// A rate in whole MiB per second: `256 MiB/s`.
pub fn format_mib_per_s(bytes_per_s: f64) -> String {
    format!("{:.0} MiB/s", bytes_per_s / MIB as f64)
}

/// Compact text for narrow table columns: `512K`, `12.3M`, `1.2G` (`ps`/`top` style).
pub fn format_bytes_compact(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else if v >= 100.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mib_rounding() {
        assert_eq!(mib_1(0), "0.0");
        assert_eq!(mib_1(MIB), "1.0");
        assert_eq!(mib_1(1_416_508 * KIB), "1383.3");
        assert_eq!(kib_to_bytes(u64::MAX), u64::MAX);
    }

    #[test]
    fn whole_mib_rounds_down() {
        assert_eq!(format_mib_whole(64 * MIB + MIB - 1), "64 MiB");
        assert_eq!(format_mib_whole(MIB - 1), "0 MiB");
        // The delta rounds towards minus infinity, as the `>> 20` it replaced did.
        assert_eq!(format_mib_delta(12 * MIB as i64 + 5), "+12 MiB");
        assert_eq!(format_mib_delta(-1), "-1 MiB");
        assert_eq!(format_mib_delta(-3 * MIB as i64), "-3 MiB");
        assert_eq!(format_mib_delta(0), "+0 MiB");
        assert_eq!(format_mib_per_s(64.0 * MIB as f64), "64 MiB/s");
    }
}
