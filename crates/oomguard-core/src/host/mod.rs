//! The host model's parsers: kernel text from `/proc` and the memory-cgroup filesystems in, typed
//! values out (sizes in bytes, pages named as pages). No I/O here: the `oomguard` crate's
//! `host` readers open the files and hand the bytes in.
//!
//! Every parser returns `Result<_, ParseError>`; the error names the kernel file, the 1-based line
//! and what was wrong, so a reader can say "`/proc/1234/status` line 22: VmSwap: not a number"
//! instead of panicking or silently producing a wrong score. Fields that older kernels lack are
//! `Option`s; a field that is present but garbled is an error, never `None`.

pub mod cgroup;
pub mod process;
pub mod system;
pub mod zram;

use std::fmt;

/// What was wrong with a piece of kernel text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// A field the format requires was not there (truncated file, older kernel).
    MissingField(&'static str),
    /// A field was there but its value did not parse as a number.
    NotANumber {
        /// The field's name as the kernel prints it.
        field: String,
        /// The offending text, truncated to 40 bytes.
        value: String,
    },
    /// The line does not have the shape the format requires.
    Malformed(&'static str),
    /// A value was a number but outside the range the kernel can produce.
    OutOfRange(&'static str),
}

/// A malformed piece of kernel text: which file, which line (1-based; 0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The kernel file's name, e.g. `"meminfo"` or `"memory.events"`; readers add the full path.
    pub file: &'static str,
    /// 1-based line number, 0 when the error is about the file as a whole.
    pub line: usize,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(file: &'static str, line: usize, kind: ParseErrorKind) -> Self {
        ParseError { file, line, kind }
    }
    pub(crate) fn missing(file: &'static str, field: &'static str) -> Self {
        ParseError::new(file, 0, ParseErrorKind::MissingField(field))
    }
    pub(crate) fn nan(file: &'static str, line: usize, field: &[u8], value: &[u8]) -> Self {
        let cut = &value[..value.len().min(40)];
        ParseError::new(
            file,
            line,
            ParseErrorKind::NotANumber {
                field: String::from_utf8_lossy(field).into_owned(),
                value: String::from_utf8_lossy(cut).into_owned(),
            },
        )
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{} line {}: ", self.file, self.line)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        match &self.kind {
            ParseErrorKind::MissingField(name) => write!(f, "missing field {name}"),
            ParseErrorKind::NotANumber { field, value } => {
                write!(f, "{field}: not a number: {value:?}")
            }
            ParseErrorKind::Malformed(what) => write!(f, "malformed: {what}"),
            ParseErrorKind::OutOfRange(what) => write!(f, "out of range: {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses an unsigned decimal with no sign, no spaces; `None` on anything else or on overflow.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// Parses a signed decimal (`-` allowed); `None` on anything else or on overflow.
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    match bytes.split_first() {
        Some((b'-', rest)) => {
            let v = parse_u64(rest)?;
            if v == 1u64 << 63 {
                Some(i64::MIN)
            } else {
                i64::try_from(v).ok().map(|v| -v)
            }
        }
        _ => i64::try_from(parse_u64(bytes)?).ok(),
    }
}

/// Trims ASCII whitespace (spaces, tabs, newlines) from both ends.
pub fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// The kernel ends every line of these files with `\n`; text that does not was cut short (a
/// partial read, a truncated copy), and its last number may be missing digits.
pub(crate) fn require_final_newline(file: &'static str, text: &[u8]) -> Result<(), ParseError> {
    if !text.is_empty() && !text.ends_with(b"\n") {
        let line = text.iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(ParseError::new(
            file,
            line,
            ParseErrorKind::Malformed("truncated: last line has no newline"),
        ));
    }
    Ok(())
}

/// Iterates the lines of kernel text with 1-based numbers, skipping a final empty line.
pub(crate) fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty())
}

/// Parses a file holding a single unsigned number (`memory.current`, `limit_in_bytes`, ...).
pub fn parse_single_u64(file: &'static str, text: &[u8]) -> Result<u64, ParseError> {
    let t = trim(text);
    if t.is_empty() {
        return Err(ParseError::new(file, 1, ParseErrorKind::Malformed("empty")));
    }
    parse_u64(t).ok_or_else(|| ParseError::nan(file, 1, file.as_bytes(), t))
}

/// Parses a file holding a single signed number (`oom_score_adj`, most `/proc/sys/vm/*`).
pub fn parse_single_i64(file: &'static str, text: &[u8]) -> Result<i64, ParseError> {
    let t = trim(text);
    if t.is_empty() {
        return Err(ParseError::new(file, 1, ParseErrorKind::Malformed("empty")));
    }
    parse_i64(t).ok_or_else(|| ParseError::nan(file, 1, file.as_bytes(), t))
}

/// Splits `key value` (space separated, as in vmstat, memory.stat, memory.events, oom_control)
/// and calls `f(line, key, value)` for each line. Errors on a line without a value or with a
/// non-numeric value.
pub(crate) fn for_each_kv(
    file: &'static str,
    text: &[u8],
    mut f: impl FnMut(&[u8], u64),
) -> Result<(), ParseError> {
    for (n, line) in lines(text) {
        let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
        let key = parts.next().ok_or(ParseError::new(
            file,
            n,
            ParseErrorKind::Malformed("empty line"),
        ))?;
        let value = parts.next().ok_or(ParseError::new(
            file,
            n,
            ParseErrorKind::Malformed("key without a value"),
        ))?;
        let v = parse_u64(value).ok_or_else(|| ParseError::nan(file, n, key, value))?;
        f(key, v);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1a"), None);
        assert_eq!(parse_i64(b"-1000"), Some(-1000));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"-"), None);
        assert_eq!(parse_single_i64("oom_score_adj", b"-1000\n"), Ok(-1000));
        let e = parse_single_u64("memory.current", b"12x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "memory.current line 1: memory.current: not a number: \"12x\""
        );
    }
}
