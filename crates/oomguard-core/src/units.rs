//! Small helpers for sizes: kernel text speaks kB and pages, oomguard speaks bytes.

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
}
