//! The `/dev/kmsg` record format, parsed without I/O.
//!
//! One `read()` of `/dev/kmsg` returns exactly one record (Linux
//! `Documentation/ABI/testing/dev-kmsg`):
//!
//! ```text
//! <prio>,<seq>,<usec_monotonic>,<flags>[,<more fields>];<text>\n
//!  KEY=value\n            (zero or more continuation lines, each starting with a space)
//! ```
//!
//! `prio` is `facility << 3 | level`; `seq` is a 64-bit counter that increases by one per record,
//! so a gap between two records read in order is the number of records the ring buffer overwrote
//! before we read them. The kernel escapes every byte below 0x20 (except the `\n` separators it
//! adds itself) and every byte from 0x7f as `\xNN`, so the text is plain ASCII; [`unescape`]
//! turns it back into bytes. Fields after `flags` are reserved for future use and ignored here,
//! as the ABI document asks.
//!
//! The reader that owns the fd, the EAGAIN/EPIPE/EINVAL handling and the buffer lives in
//! `oomguard::sense::kmsg`.

use std::borrow::Cow;
use std::fmt;

/// Syslog facility of records userspace writes into `/dev/kmsg` (LOG_USER = 1).
pub const FACILITY_USER: u8 = 1;
/// Syslog facility of records the kernel itself emits (LOG_KERN = 0).
pub const FACILITY_KERN: u8 = 0;

/// How a record relates to its neighbours (the `flags` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsgFlag {
    /// `-`: a complete record.
    Complete,
    /// `c`: the first fragment of a continued line (kernels before 4.9 could emit these).
    ContinuationStart,
    /// `+`: a fragment continuing the previous record (kernels before 4.9).
    Continuation,
    /// Any other byte, kept for forward compatibility.
    Other(u8),
}

/// One parsed `/dev/kmsg` record, borrowing from the read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord<'a> {
    /// Syslog facility (`prio >> 3`): 0 for the kernel, 1 for userspace writes.
    pub facility: u8,
    /// Syslog level (`prio & 7`): 0 emerg … 7 debug.
    pub level: u8,
    /// The record's sequence number; consecutive records differ by one.
    pub seq: u64,
    /// CLOCK_MONOTONIC timestamp of the record, in microseconds.
    pub usec_monotonic: u64,
    /// The flags field.
    pub flag: KmsgFlag,
    /// The message text, still `\xNN`-escaped, without the trailing newline.
    pub text: &'a str,
    /// Continuation lines `KEY=value` (e.g. `SUBSYSTEM=`, `DEVICE=`), in order.
    pub dict: Vec<(&'a str, &'a str)>,
}

impl KmsgRecord<'_> {
    /// True for records the kernel emitted itself; userspace writes to `/dev/kmsg` always land
    /// in another facility (LOG_USER unless the writer asks otherwise), so they cannot pose as
    /// kernel OOM reports.
    pub fn is_kernel(&self) -> bool {
        self.facility == FACILITY_KERN
    }

    /// Looks up a continuation `KEY=value` by key.
    pub fn dict_value(&self, key: &str) -> Option<&str> {
        self.dict.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

/// Why a record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsgParseError {
    /// No `;` separates the prefix from the text.
    MissingSemicolon,
    /// The prefix has fewer than the four mandatory fields.
    MissingField(&'static str),
    /// A numeric prefix field is not a decimal number.
    BadNumber(&'static str),
    /// The record is not UTF-8; the kernel escapes non-ASCII bytes, so this means a corrupt read.
    NotUtf8,
}

impl fmt::Display for KmsgParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingSemicolon => write!(f, "kmsg record has no ';' after its prefix"),
            Self::MissingField(name) => write!(f, "kmsg record prefix lacks the {name} field"),
            Self::BadNumber(name) => write!(f, "kmsg record field {name} is not a decimal number"),
            Self::NotUtf8 => write!(f, "kmsg record is not UTF-8 (the kernel escapes non-ASCII)"),
        }
    }
}

impl std::error::Error for KmsgParseError {}

fn parse_field(field: Option<&str>, name: &'static str) -> Result<u64, KmsgParseError> {
    let field = field.ok_or(KmsgParseError::MissingField(name))?;
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KmsgParseError::BadNumber(name));
    }
    field.parse().map_err(|_| KmsgParseError::BadNumber(name))
}

/// Parses one record as returned by a single `read()` of `/dev/kmsg`.
pub fn parse_record(raw: &[u8]) -> Result<KmsgRecord<'_>, KmsgParseError> {
    let raw = std::str::from_utf8(raw).map_err(|_| KmsgParseError::NotUtf8)?;
    let (prefix, rest) = raw
        .split_once(';')
        .ok_or(KmsgParseError::MissingSemicolon)?;
    let mut fields = prefix.split(',');
    let prio = parse_field(fields.next(), "prio")?;
    let seq = parse_field(fields.next(), "seq")?;
    let usec_monotonic = parse_field(fields.next(), "usec")?;
    let flag = match fields.next().map(str::as_bytes) {
        None => return Err(KmsgParseError::MissingField("flags")),
        Some(b"-") | Some(b"") => KmsgFlag::Complete,
        Some(b"c") => KmsgFlag::ContinuationStart,
        Some(b"+") => KmsgFlag::Continuation,
        Some(other) => KmsgFlag::Other(other.first().copied().unwrap_or(b'-')),
    };
    // The text ends at the first newline; each further line starting with a space is a
    // continuation `KEY=value`.
    let mut lines = rest.split('\n');
    let text = lines.next().unwrap_or("");
    let mut dict = Vec::new();
    for line in lines {
        let Some(kv) = line.strip_prefix(' ') else {
            continue;
        };
        if let Some((k, v)) = kv.split_once('=') {
            dict.push((k, v));
        }
    }
    Ok(KmsgRecord {
        facility: u8::try_from(prio >> 3).unwrap_or(u8::MAX),
        level: (prio & 7) as u8,
        seq,
        usec_monotonic,
        flag,
        text,
        dict,
    })
}

/// Number of records lost between two records read in order: 0 when `next_seq` follows
/// `prev_seq` directly. A sequence that goes backwards (the reader seeked) counts as no loss.
pub fn lost_between(prev_seq: u64, next_seq: u64) -> u64 {
    next_seq.saturating_sub(prev_seq).saturating_sub(1)
}

/// Undoes the kernel's `\xNN` escaping of a record's text.
pub fn unescape(text: &str) -> Cow<'_, [u8]> {
    if !text.contains("\\x") {
        return Cow::Borrowed(text.as_bytes());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hex = bytes
                .get(i + 2..i + 4)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_oom_record_kernel_6_18() {
        // Real record shape from kernel 6.18 (research/samples, cgroup path rewritten).
        let raw = b"6,10824,86400123456,-;Memory cgroup out of memory: Killed process 7231 (python3) total-vm:78028kB, anon-rss:65152kB, file-rss:6612kB, shmem-rss:0kB, UID:0 pgtables:188kB oom_score_adj:0\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.facility, FACILITY_KERN);
        assert_eq!(r.level, 6);
        assert_eq!(r.seq, 10824);
        assert_eq!(r.usec_monotonic, 86_400_123_456);
        assert_eq!(r.flag, KmsgFlag::Complete);
        assert!(r.is_kernel());
        assert!(r
            .text
            .starts_with("Memory cgroup out of memory: Killed process 7231"));
        assert!(r.text.ends_with("oom_score_adj:0"));
        assert!(r.dict.is_empty());
    }

    #[test]
    fn continuation_dictionary() {
        let raw = b"6,339,5140900,-;NET: Registered protocol family 10\n SUBSYSTEM=net\n DEVICE=+net:lo\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.text, "NET: Registered protocol family 10");
        assert_eq!(r.dict, vec![("SUBSYSTEM", "net"), ("DEVICE", "+net:lo")]);
        assert_eq!(r.dict_value("DEVICE"), Some("+net:lo"));
    }

    #[test]
    fn user_write_and_extra_prefix_fields() {
        // Userspace writes land as LOG_USER; newer kernels may append fields (caller id).
        let raw = b"12,77,123,-,caller=T42;oomguard-marker hello\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.facility, FACILITY_USER);
        assert_eq!(r.level, 4);
        assert!(!r.is_kernel());
        assert_eq!(r.text, "oomguard-marker hello");
    }

    #[test]
    fn old_continuation_flags() {
        assert_eq!(
            parse_record(b"4,1,2,c;part").unwrap().flag,
            KmsgFlag::ContinuationStart
        );
        assert_eq!(
            parse_record(b"4,2,2,+;more").unwrap().flag,
            KmsgFlag::Continuation
        );
    }

    #[test]
    fn text_may_contain_semicolons_and_commas() {
        let r = parse_record(b"6,5,6,-;a;b,c=d\n").unwrap();
        assert_eq!(r.text, "a;b,c=d");
    }

    #[test]
    fn malformed() {
        assert_eq!(
            parse_record(b"no separator"),
            Err(KmsgParseError::MissingSemicolon)
        );
        assert_eq!(
            parse_record(b"6,5;x"),
            Err(KmsgParseError::MissingField("usec"))
        );
        assert_eq!(
            parse_record(b"6,5,7;x"),
            Err(KmsgParseError::MissingField("flags"))
        );
        assert_eq!(
            parse_record(b"6,-5,7,-;x"),
            Err(KmsgParseError::BadNumber("seq"))
        );
        assert_eq!(parse_record(b"6,5,7,-;\xff"), Err(KmsgParseError::NotUtf8));
    }

    #[test]
    fn gaps() {
        assert_eq!(lost_between(10, 11), 0);
        assert_eq!(lost_between(10, 2178), 2167);
        assert_eq!(lost_between(10, 3), 0);
        assert_eq!(lost_between(10, 10), 0);
    }

    /// Poor man's fuzzing until a cargo-fuzz target exists: random and mutated records must
    /// never panic, and valid ones must round-trip their numbers.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789,;-+c\\x \n=abcAZ\xff";
        for _ in 0..20_000 {
            let len = (next() % 48) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse_record(&raw);
            if let Ok(text) = std::str::from_utf8(&raw) {
                let _ = unescape(text);
            }
            let _ = crate::killpath::parse_stat_identity(&raw);
            let _ = crate::killpath::parse_pid_list(&raw);
        }
        for seq in [0u64, 1, u64::MAX] {
            let raw = format!("190,{seq},{},-;t\n K=v\n", u64::MAX);
            let r = parse_record(raw.as_bytes()).unwrap();
            assert_eq!((r.facility, r.level, r.seq), (23, 6, seq));
        }
    }

    #[test]
    fn unescaping() {
        assert_eq!(&*unescape("plain"), b"plain");
        assert_eq!(&*unescape("tab\\x09x\\xc3\\xa9"), b"tab\tx\xc3\xa9");
        assert_eq!(&*unescape("bad \\xZZ"), b"bad \\xZZ");
        assert_eq!(&*unescape("end \\x4"), b"end \\x4");
    }
}
