//! Civil time from Unix time, without a time-zone database: oomguard prints UTC when it has to
//! turn a number (journal `__REALTIME_TIMESTAMP`) into a time people read.

/// `2024-05-01T10:00:00.123456+00:00` for microseconds since the epoch.
pub fn format_utc_usec(usec: u64) -> String {
    let secs = usec / 1_000_000;
    let micros = usec % 1_000_000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_utc_usec(0), "1970-01-01T00:00:00.000000+00:00");
        // 2026-11-29T13:51:01Z (checked with `date -u -d @1795960261`).
        assert_eq!(
            format_utc_usec(1_795_960_261_000_042),
            "2026-11-29T13:51:01.000042+00:00"
        );
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
