//! `--since TIME` for `oomguard events`: a point in time from what people type, pure (the
//! caller passes "now").
//!
//! Accepted: RFC 3339 / ISO 8601 in UTC or with an offset (`2026-11-29T14:00:00Z`,
//! `2026-11-29T14:00:00+01:00`, `2026-11-29 14:00`), a date (`2026-11-29`, midnight UTC),
//! Unix seconds (`@1795960261`), and a duration ago (`10m`, `2h`, `1d`, `90s`, optionally
//! followed by ` ago`).

/// Seconds since the epoch for `s`, or why it is not a time.
pub fn parse_since(s: &str, now_unix_s: f64) -> Result<f64, String> {
    let t = s.trim();
    if let Some(n) = t.strip_prefix('@') {
        return n
            .parse::<f64>()
            .map_err(|_| format!("{s:?}: expected @UNIX_SECONDS"));
    }
    let rel = t.strip_suffix("ago").map(str::trim).unwrap_or(t);
    if let Some(secs) = parse_relative(rel) {
        return Ok(now_unix_s - secs);
    }
    parse_datetime(t).ok_or_else(|| {
        format!(
            "{s:?}: expected a time like 2026-11-29T14:00:00Z, 2026-11-29 14:00, @UNIX_SECONDS, or a duration ago like 10m"
        )
    })
}

fn parse_relative(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 7.0 * 86400.0,
        _ => return None,
    };
    Some(n * mult)
}

/// Days from 1970-01-01 for a civil date (inverse of `time::civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH:MM|±HHMM]`.
pub fn parse_datetime(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo as u32, d as u32) as f64 * 86400.0;
    let mut rest = &s[10..];
    if rest.is_empty() {
        return Some(secs);
    }
    if !rest.starts_with(['T', ' ', 't']) {
        return None;
    }
    rest = &rest[1..];
    let rb = rest.as_bytes();
    if rb.len() < 5 || rb[2] != b':' {
        return None;
    }
    let h: f64 = rest.get(0..2)?.parse().ok()?;
    let mi: f64 = rest.get(3..5)?.parse().ok()?;
    secs += h * 3600.0 + mi * 60.0;
    rest = &rest[5..];
    if rest.starts_with(':') {
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map_or(rest.len(), |i| i + 1);
        let sec: f64 = rest[1..end].parse().ok()?;
        secs += sec;
        rest = &rest[end..];
    }
    match rest {
        "" | "Z" | "z" => Some(secs),
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1.0,
                b'-' => -1.0,
                _ => return None,
            };
            let off = rest[1..].replace(':', "");
            if off.len() != 4 || !off.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let oh: f64 = off[0..2].parse().ok()?;
            let om: f64 = off[2..4].parse().ok()?;
            Some(secs - sign * (oh * 3600.0 + om * 60.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        // 2026-11-29T13:51:01Z = 1795960261 (`date -u -d @1795960261`).
        let t = 1_795_960_261.0;
        assert_eq!(parse_since("2026-11-29T13:51:01Z", 0.0), Ok(t));
        assert_eq!(parse_since("2026-11-29 13:51:01", 0.0), Ok(t));
        assert_eq!(parse_since("2026-11-29T14:51:01+01:00", 0.0), Ok(t));
        assert_eq!(parse_since("2026-11-29T13:51:01.000000+00:00", 0.0), Ok(t));
        assert_eq!(parse_since("2026-11-29 13:51", 0.0), Ok(t - 1.0));
        assert_eq!(
            parse_since("2026-11-29", 0.0),
            Ok(t - 13.0 * 3600.0 - 51.0 * 60.0 - 1.0)
        );
        assert_eq!(parse_since("@1795960261", 0.0), Ok(t));
        assert_eq!(parse_since("10m", 1000.0), Ok(400.0));
        assert_eq!(parse_since("2h ago", 7200.0), Ok(0.0));
        assert!(parse_since("yesterday", 0.0).is_err());
        assert!(parse_since("2026-13-01", 0.0).is_err());
        assert!(parse_since("", 0.0).is_err());
    }
}
