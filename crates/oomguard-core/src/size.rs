//! Sizes, percentages and durations as people write them in flags and config files:
//! `512M`, `1.5GiB`, `10%`, `250ms`, `2s`. One parser for every subcommand, with an error that
//! says what was expected (`12 parsecs` is refused, not read as 12 bytes).

use std::fmt;
use std::time::Duration;

/// A memory amount: absolute, or a percentage of a total (MemTotal, a cgroup's limit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Amount {
    /// The amount in bytes against `total_bytes` (percentages round down).
    pub fn resolve(self, total_bytes: u64) -> u64 {
        match self {
            Amount::Bytes(b) => b,
            Amount::Percent(p) => ((total_bytes as f64) * p / 100.0) as u64,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(b) => write!(f, "{}", format_bytes(*b)),
            Amount::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// Why a size, percentage or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {input:?}: {why}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    why: &'static str,
}

fn err(what: &'static str, input: &str, why: &'static str) -> ParseError {
    ParseError {
        what,
        input: input.to_owned(),
        why,
    }
}

/// Splits `"1.5 GiB"` into (1.5, "GiB").
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(s.len(), |(i, _)| i);
    let num: f64 = s[..end].parse().ok()?;
    if !num.is_finite() || num < 0.0 {
        return None;
    }
    Some((num, s[end..].trim()))
}

/// Splits `"12.5 MiB"` into the number text and the unit (whitespace allowed around and
/// between them).
fn split_number(s: &str) -> (&str, &str) {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// Multiplies a decimal text (`12`, `1.5`) by `unit`, exactly for integers and rounding down
/// for fractions (to the byte). `None` on garbage (`1..2`, `.`) or overflow.
fn scaled(number: &str, unit: u64) -> Option<u64> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut out = whole.checked_mul(unit)?;
    // Twelve digits resolve a unit up to 2^40 (< 10^12) to within a byte.
    let frac = &frac[..frac.len().min(12)];
    if !frac.is_empty() {
        let digits: u64 = frac.parse().ok()?;
        let denom = 10u64.pow(frac.len() as u32);
        let part = u128::from(digits) * u128::from(unit) / u128::from(denom);
        out = out.checked_add(u64::try_from(part).ok()?)?;
    }
    Some(out)
}

/// Parses a byte size: a number with an optional unit `B`, `K`/`KB`/`KiB`, `M`..., `G`..., `T`...
/// (all powers of 1024, as the kernel, systemd's `MemoryMax=` and earlyoom mean them;
/// case-insensitive). A bare number is bytes. Exact: `1.5G` is 1610612736, fractions of a
/// byte round down. `oomguard run --memory-max` and the config's sizes both read through here.
pub fn parse_bytes(s: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "size";
    let (number, unit) = split_number(s);
    if number.is_empty() {
        return Err(err(
            WHAT,
            s,
            "expected a number and a unit, like 512M or 1.5GiB",
        ));
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => {
            return Err(err(
                WHAT,
                s,
                "unknown unit (use B, K, M, G or T, powers of 1024; KiB etc. also work)",
            ))
        }
    };
    scaled(number, mult).ok_or_else(|| err(WHAT, s, "not a number, or too large"))
}

/// Parses `10%` as a percentage (0–100) or anything else as a byte size.
pub fn parse_amount(s: &str) -> Result<Amount, ParseError> {
    match s.trim().strip_suffix('%') {
        Some(p) => {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| err("percentage", s, "expected a number before %"))?;
            if !(0.0..=100.0).contains(&v) {
                return Err(err("percentage", s, "must be between 0 and 100"));
            }
            Ok(Amount::Percent(v))
        }
        None => parse_bytes(s).map(Amount::Bytes),
    }
}

/// Parses a duration: `250ms`, `2s`, `1.5s`, `3m`, `1h`, `500us`. A bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    const WHAT: &str = "duration";
    let (num, unit) =
        number_and_unit(s).ok_or_else(|| err(WHAT, s, "expected a number and a unit, like 2s"))?;
    let secs = match unit {
        "" | "s" | "sec" => num,
        "ms" => num / 1e3,
        "us" | "µs" => num / 1e6,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        _ => return Err(err(WHAT, s, "unknown unit (use us, ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| err(WHAT, s, "out of range"))
}

/// The byte formatter lives with the other size helpers in [`crate::units`].
pub use crate::units::format_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("1.5 GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64kb"), Ok(65536));
        let e = parse_bytes("12 parsecs").unwrap_err().to_string();
        assert!(
            e.contains("\"12 parsecs\"") && e.contains("unknown unit"),
            "{e}"
        );
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("-1M").is_err());
        assert!(parse_bytes("1e400").is_err());
        assert!(parse_bytes("99999999999T").is_err());
        // Exact, not through f64: 2^53 + 1 survives, fractions round down to the byte.
        assert_eq!(parse_bytes("9007199254740993"), Ok(9_007_199_254_740_993));
        assert_eq!(parse_bytes("0.5K"), Ok(512));
        assert_eq!(parse_bytes("1.0000001K"), Ok(1024));
        assert_eq!(parse_bytes(" 100B "), Ok(100));
        assert_eq!(parse_bytes("1T"), Ok(1 << 40));
        for bad in [
            "M",
            "1..2M",
            ".",
            "99999999999999999999",
            "20000000T",
            "1e3",
        ] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn amounts() {
        assert_eq!(parse_amount("10%"), Ok(Amount::Percent(10.0)));
        assert_eq!(parse_amount("2G"), Ok(Amount::Bytes(2 << 30)));
        assert!(parse_amount("101%").is_err());
        assert!(parse_amount("x%").is_err());
        assert_eq!(Amount::Percent(10.0).resolve(1000), 100);
        assert_eq!(Amount::Bytes(5).resolve(1000), 5);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("2 fortnights").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(512 << 20), "512 MiB");
        assert_eq!(format_bytes(3 << 29), "1.50 GiB");
        assert_eq!(format_bytes(100), "100 B");
    }
}
