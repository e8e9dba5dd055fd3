//! Log transport prefixes: what dmesg, syslog, journald and /dev/kmsg put in front of a kernel
//! message, and how several records end up on one line when people paste them.
//!
//! `strip` peels prefixes off one record, layer by layer (mail quote → kmsg header → level →
//! syslog/journal header → dmesg timestamp → printk caller id), keeping what they say about the
//! record (time as printed, host, seconds since boot). `split_joined` cuts a physical line into
//! records where a new record visibly starts mid-line.
//!
//! Hand-written matchers instead of regexes: the same code runs in the daemon's /dev/kmsg path,
//! where regex tables would cost resident memory, and these matchers are simple to fuzz.

/// What a record's prefixes said about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta<'a> {
    /// Wall-clock time as printed (syslog, journal, `dmesg -T`, ISO); `None` for raw dmesg.
    pub time: Option<&'a str>,
    /// The host that logged the record (syslog/journal prefixes only).
    pub host: Option<&'a str>,
    /// Seconds since boot (`[  123.456789]`, /dev/kmsg usec, journal monotonic stamp).
    pub kernel_time_s: Option<f64>,
    /// True when the record had any recognised transport prefix (used to tell a wrapped
    /// continuation line, which has none, from a new record).
    pub prefixed: bool,
}

/// Why a record is not a kernel message at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotKernel {
    /// A syslog/journal line from another program (`systemd[1]:`, `earlyoom[…]:`): userspace can
    /// write anything there, so it is never read as kernel text.
    OtherProgram,
    /// A /dev/kmsg record from a non-kernel facility (written by userspace into /dev/kmsg).
    UserFacility,
    /// A /dev/kmsg continuation line (` KEY=value` dictionary entry).
    KmsgDict,
}

/// The outcome of stripping one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Stripped<'a> {
    Kernel(Meta<'a>, &'a str),
    NotKernel(NotKernel),
}

/// Strips transport prefixes from one record.
pub fn strip(record: &str) -> Stripped<'_> {
    let mut meta = Meta::default();
    let mut s = record.trim_end_matches(['\r', '\n']);
    s = strip_quotes(s);
    s = strip_markup(s);
    // `[W] `, `[INFO] `: a level letter or word some router and appliance logs put first.
    if let Some(rest) = level_word(s) {
        meta.prefixed = true;
        s = rest;
    }
    // /dev/kmsg: "prio,seq,usec,flags[,...];text" or a " KEY=value" continuation line.
    if let Some((prio, usec, rest)) = kmsg_header(s) {
        if prio >> 3 != 0 {
            return Stripped::NotKernel(NotKernel::UserFacility);
        }
        meta.kernel_time_s = Some(usec as f64 / 1e6);
        meta.prefixed = true;
        return Stripped::Kernel(meta, strip_caller(rest));
    }
    if is_kmsg_dict(s) {
        return Stripped::NotKernel(NotKernel::KmsgDict);
    }
    // `dmesg -x`: "kern  :info  : [...] text".
    if let Some((facility, rest)) = dmesg_decoded_facility(s) {
        if facility != "kern" {
            return Stripped::NotKernel(NotKernel::UserFacility);
        }
        meta.prefixed = true;
        s = rest;
    }
    // `logread` without its date, as some routers print it: `kern.warn kernel: [...]` or
    // `kern.warn: [...]`. Another facility is another program.
    if let Some((tok, rest)) = s.split_once([' ', ':']) {
        if is_facility_level(tok) {
            let rest = rest.trim_start_matches([' ', ':']);
            if !tok.starts_with("kern.") {
                return Stripped::NotKernel(NotKernel::OtherProgram);
            }
            meta.prefixed = true;
            s = rest.strip_prefix("kernel: ").unwrap_or(rest);
        }
    }
    // A receiver's or tool's label in front of a record as it came over the wire
    // (`Received message  <6>Jun  8 11:15:26 host kernel: ...`).
    if let Some(rest) = labelled_record(s) {
        meta.prefixed = true;
        s = rest;
    }
    // "<6>" console level.
    if let Some(rest) = level(s) {
        meta.prefixed = true;
        s = rest;
    }
    // `grep -H` output puts "FILE:" in front of a syslog line ("messages-20150510:May  9 ...").
    if syslog_header(s).is_none() {
        if let Some(colon) = s.find(':') {
            let file = &s[..colon];
            if !file.is_empty() && !file.contains(' ') && syslog_header(&s[colon + 1..]).is_some() {
                s = &s[colon + 1..];
            }
        }
    }
    // Syslog / journal short forms, with a month name or an ISO date in front.
    match syslog_header(s) {
        Some(Ok((time, host, rest))) => {
            meta.time = Some(time);
            meta.host = host;
            meta.prefixed = true;
            s = rest;
        }
        Some(Err(not_kernel)) => return Stripped::NotKernel(not_kernel),
        None => {
            if let Some((time, rest)) = iso_time_only(s) {
                // `dmesg --time-format=iso`: a timestamp and then the message.
                meta.time = Some(time);
                meta.prefixed = true;
                s = rest;
                // A hypervisor's or console server's log of a guest's console: its own columns
                // and a tag between the time and the kernel's line (`In(05) vcpu-5 - Guest: `).
                if let Some(rest) = console_tag(s) {
                    s = level(rest).unwrap_or(rest);
                }
            }
        }
    }
    // Bracketed stamps: `[  123.456789]`, `[Thu Dec  7 00:05:14 2017]`, `[  +0.000067]`, caller
    // ids `[ T1234]`; `journalctl -o short-monotonic` adds "host kernel: " after the stamp.
    loop {
        if let Some((secs, rest)) = bracket_seconds(s) {
            meta.kernel_time_s = secs.or(meta.kernel_time_s);
            meta.prefixed = true;
            s = rest;
            if let Some(Ok((host, rest))) = host_tag(s) {
                meta.host = meta.host.or(host);
                s = rest;
            }
            continue;
        }
        if let Some((time, rest)) = bracket_wallclock(s) {
            meta.time = Some(time);
            meta.prefixed = true;
            s = rest;
            continue;
        }
        if let Some(rest) = caller_id(s) {
            s = rest;
            continue;
        }
        break;
    }
    if let Some(rest) = s.strip_prefix("kernel: ") {
        meta.prefixed = true;
        s = rest;
    } else if !meta.prefixed {
        // `host kernel: ` with the time cut off by the person who pasted it.
        if let Some((host, rest)) = find!(s, " kernel: ").map(|i| (&s[..i], &s[i + 9..])) {
            if !host.is_empty() && !host.contains([' ', '[', ':']) {
                meta.host = Some(host);
                meta.prefixed = true;
                s = rest;
            }
        }
    }
    Stripped::Kernel(meta, s)
}

/// Markdown that people wrap pasted logs in: a code fence or bold/code markers glued to the
/// first record of a line (`` ```[Sun Mar 30 ...] ``, `**Fri Aug  7 ...`), and a fence glued to the
/// end of the last one. A record never starts with these characters.
fn strip_markup(s: &str) -> &str {
    let s = s.trim_start_matches(['`', '*', '"']);
    s.strip_suffix("```").unwrap_or(s)
}

/// `[W] ` or `[INFO] `: one to seven capital letters in brackets at the start of the line (the
/// level column of some router logs). printk caller ids (`[ T12]`) have digits, so never match.
fn level_word(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let n = inner.bytes().take_while(u8::is_ascii_uppercase).count();
    if n == 0 || n > 7 {
        return None;
    }
    inner[n..].strip_prefix("] ")
}

/// After a log's own timestamp: `words: ` (at most [`CONSOLE_TAG_MAX`] bytes, no bracket or
/// colon inside) followed by what only a kernel console line starts with, a `<N>` level glued to
/// a `[seconds]` stamp or a `[seconds]` stamp alone; returns the text from the level or stamp on.
/// A program's syslog tag (`name[pid]: `) has a bracket, so never matches.
fn console_tag(s: &str) -> Option<&str> {
    let colon = find!(s.get(..s.len().min(CONSOLE_TAG_MAX))?, ": ")?;
    let tag = &s[..colon];
    if tag.is_empty() || tag.contains(['[', ']', ':', '<']) {
        return None;
    }
    let rest = &s[colon + 2..];
    let stamp = level(rest).unwrap_or(rest);
    bracket_seconds(stamp).filter(|(secs, _)| secs.is_some())?;
    Some(rest)
}

/// `label <N>record`: words of at most [`CONSOLE_TAG_MAX`] bytes (no bracket or angle bracket
/// inside) before a console or syslog-wire level that is followed by a whole record prefix, a
/// syslog header or a `[seconds]` stamp; returns the text from the level on. A kernel message
/// never starts that way, and the level must be followed by a prefix, so message text with a
/// `<` in it is left alone.
fn labelled_record(s: &str) -> Option<&str> {
    let head = s.get(..s.len().min(CONSOLE_TAG_MAX))?;
    let lt = memchr::memchr(b'<', head.as_bytes())?;
    // A log's own time first is not a label: [`console_tag`] reads what follows it.
    if iso_len(s).is_some() || month_day_clock_len(s).is_some() {
        return None;
    }
    let label = s[..lt].trim_end_matches(' ');
    if label.len() == lt || label.is_empty() || label.contains(['[', ']', '>']) {
        return None;
    }
    let rest = &s[lt..];
    let after = level(rest)?;
    let prefix_follows = syslog_header(after).is_some()
        || bracket_seconds(after).is_some_and(|(secs, _)| secs.is_some());
    prefix_follows.then_some(rest)
}

/// Longest tag [`console_tag`] skips (with its `: `).
const CONSOLE_TAG_MAX: usize = 64;

/// `> ` and `> > ` mail quoting (also `>>`).
fn strip_quotes(mut s: &str) -> &str {
    loop {
        let t = s.trim_start_matches([' ', '\t']);
        match t.strip_prefix('>') {
            Some(rest) => s = rest.strip_prefix(' ').unwrap_or(rest),
            None => return s,
        }
    }
}

fn digits(s: &str) -> usize {
    s.bytes().take_while(u8::is_ascii_digit).count()
}

/// Parses leading ASCII digits as u64 (saturating is not wanted: overlong numbers fail).
pub(crate) fn lead_u64(s: &str) -> Option<(u64, &str)> {
    let n = digits(s);
    if n == 0 || n > 20 {
        return None;
    }
    let v = s[..n].parse().ok()?;
    Some((v, &s[n..]))
}

/// Parses a leading optionally negative decimal integer.
pub(crate) fn lead_i64(s: &str) -> Option<(i64, &str)> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let (v, rest) = lead_u64(t)?;
    let v = i64::try_from(v).ok()?;
    Some((if neg { -v } else { v }, rest))
}

fn kmsg_header(s: &str) -> Option<(u64, u64, &str)> {
    let (prio, rest) = lead_u64(s)?;
    let rest = rest.strip_prefix(',')?;
    let (_seq, rest) = lead_u64(rest)?;
    let rest = rest.strip_prefix(',')?;
    let (usec, rest) = lead_u64(rest)?;
    let rest = rest.strip_prefix(',')?;
    let semi = rest.find(';')?;
    // Flags are a few characters (`-`, `c`, `+`) optionally followed by more comma fields.
    if semi > 64 || rest[..semi].contains(' ') {
        return None;
    }
    Some((prio, usec, &rest[semi + 1..]))
}

fn is_kmsg_dict(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(' ') else {
        return false;
    };
    let key_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
        .count();
    key_len > 0 && rest[key_len..].starts_with('=')
}

fn dmesg_decoded_facility(s: &str) -> Option<(&str, &str)> {
    const FACILITIES: [&str; 12] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp",
    ];
    let word_len = s.bytes().take_while(u8::is_ascii_lowercase).count();
    let word = &s[..word_len];
    if !FACILITIES.contains(&word) {
        return None;
    }
    let rest = s[word_len..].trim_start_matches(' ').strip_prefix(':')?;
    let lvl_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if lvl_len == 0 {
        return None;
    }
    let rest = rest[lvl_len..].trim_start_matches(' ').strip_prefix(':')?;
    Some((word, rest.strip_prefix(' ').unwrap_or(rest)))
}

fn level(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('<')?;
    let n = digits(rest);
    if n == 0 || n > 3 {
        return None;
    }
    rest[n..].strip_prefix('>')
}

/// `hh:mm:ss` optionally followed by `.frac` / `,frac`; returns the length.
fn clock_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 8 {
        return None;
    }
    let ok = b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b':'
        && b[3].is_ascii_digit()
        && b[4].is_ascii_digit()
        && b[5] == b':'
        && b[6].is_ascii_digit()
        && b[7].is_ascii_digit();
    if !ok {
        return None;
    }
    let mut n = 8;
    if n < b.len() && (b[n] == b'.' || b[n] == b',') {
        let f = digits(&s[n + 1..]);
        if f > 0 {
            n += 1 + f;
        }
    }
    Some(n)
}

/// `2024-05-01T10:00:00[.123456][Z|+02:00|+0200]`; returns the length.
fn iso_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 19 {
        return None;
    }
    let date_ok = b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5].is_ascii_digit()
        && b[6].is_ascii_digit()
        && b[7] == b'-'
        && b[8].is_ascii_digit()
        && b[9].is_ascii_digit()
        && (b[10] == b'T' || b[10] == b' ');
    if !date_ok {
        return None;
    }
    let mut n = 11 + clock_len(&s[11..])?;
    let rest = &s[n..];
    if rest.starts_with('Z') {
        n += 1;
    } else if rest.starts_with('+') || rest.starts_with('-') {
        let d = digits(&rest[1..]);
        if d == 4 {
            n += 5;
        } else if d == 2 && rest[3..].starts_with(':') && digits(&rest[4..]) == 2 {
            n += 6;
        }
    }
    Some(n)
}

/// `Jun  4 07:41:59` with any month word (localised names like `июл`, `dim.`), optionally with
/// a weekday in front and a year after, as `date` and OpenWrt's `logread` print it
/// (`Sat Jan 25 09:40:15 2020`); returns the length.
fn month_day_clock_len(s: &str) -> Option<usize> {
    let n = match month_day_clock_core(s) {
        Some(n) => n,
        None => {
            let word = s.find(' ')?;
            let w = &s[..word];
            if word == 0 || word > 12 || !w.chars().all(char::is_alphabetic) {
                return None;
            }
            let sp = s[word..].len() - s[word..].trim_start_matches(' ').len();
            word + sp + month_day_clock_core(&s[word + sp..])?
        }
    };
    // A year: four digits, then a space (or the end).
    let rest = &s[n..];
    if let Some(y) = rest.strip_prefix(' ') {
        if digits(y) == 4 && (y.len() == 4 || y.as_bytes()[4] == b' ') {
            return Some(n + 5);
        }
    }
    Some(n)
}

fn month_day_clock_core(s: &str) -> Option<usize> {
    let word = s.find(' ')?;
    if word == 0 || word > 12 || s[..word].bytes().any(|c| c.is_ascii_digit() || c == b'[') {
        return None;
    }
    let rest = &s[word..];
    let sp = rest.len() - rest.trim_start_matches(' ').len();
    let rest = &rest[sp..];
    let d = digits(rest);
    if d == 0 || d > 2 {
        return None;
    }
    let after_day = &rest[d..];
    let sp2 = after_day.len() - after_day.trim_start_matches(' ').len();
    if sp2 == 0 {
        return None;
    }
    let clock = clock_len(&after_day[sp2..])?;
    Some(word + sp + d + sp2 + clock)
}

/// After a timestamp: `host kernel: ` (or `host kernel[0]: `). `Some(Ok((Some(host), rest)))`
/// for a kernel record, `Some(Err(..))` for another program's record, `None` if this is not a
/// `host tag:` shape at all.
fn host_tag(s: &str) -> Option<Result<(Option<&str>, &str), NotKernel>> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    // Bare "kernel: " (journalctl without hostname).
    if let Some(rest) = s.strip_prefix("kernel: ") {
        return Some(Ok((None, rest)));
    }
    let host_end = s.find(' ')?;
    let host = &s[..host_end];
    if host.is_empty() || host.ends_with(':') || host.starts_with('[') {
        return None;
    }
    // OpenWrt `logread` prints `facility.level` where syslog has the host.
    if is_facility_level(host) {
        let rest = &s[host_end + 1..];
        return match host_tag(rest) {
            Some(Ok((_, body))) => Some(Ok((None, body))),
            other => other,
        };
    }
    let rest = &s[host_end + 1..];
    // Log shippers put a level column between the host and the tag (`host  !WARNING | kernel:`).
    let lead = rest.trim_start_matches(' ');
    if let Some(k) = find!(lead, "kernel: ").filter(|&k| k > 0 && k <= 24) {
        if lead[..k].split_whitespace().all(is_level_token) {
            return Some(Ok((Some(host), &lead[k + "kernel: ".len()..])));
        }
    }
    let colon = find!(rest, ": ").or_else(|| rest.strip_suffix(':').map(|r| r.len()))?;
    let tag = &rest[..colon];
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    let name = tag.split('[').next().unwrap_or(tag);
    let body = rest.get(colon + 2..).unwrap_or("");
    if name == "kernel" {
        Some(Ok((Some(host), body)))
    } else {
        Some(Err(NotKernel::OtherProgram))
    }
}

/// `kern.err`, `daemon.info`: a syslog facility and level joined by a dot.
fn is_facility_level(t: &str) -> bool {
    const FACILITIES: [&str; 13] = [
        "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
        "authpriv", "ftp", "local0",
    ];
    match t.split_once('.') {
        Some((f, l)) => {
            (FACILITIES.contains(&f) || f.starts_with("local"))
                && !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase())
        }
        None => false,
    }
}

/// A level column word: `|`, `!WARNING`, `WARN`, `<4>`, `[W]`.
fn is_level_token(t: &str) -> bool {
    let t = t.trim_start_matches('!');
    t == "|"
        || (!t.is_empty() && t.len() <= 8 && t.bytes().all(|b| b.is_ascii_uppercase()))
        || level(t).is_some_and(str::is_empty)
        || t.strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_uppercase()))
}

type SyslogHeader<'a> = Result<(&'a str, Option<&'a str>, &'a str), NotKernel>;

/// `Jun  4 07:41:59 host kernel: ` or `2024-05-01T10:00:00+02:00 host kernel: `.
fn syslog_header(s: &str) -> Option<SyslogHeader<'_>> {
    let month_form = month_day_clock_len(s);
    let n = month_form.or_else(|| iso_len(s))?;
    let time = &s[..n];
    let rest = &s[n..];
    if !rest.starts_with(' ') {
        return None;
    }
    match host_tag(rest) {
        Some(Ok((host, body))) => Some(Ok((time, host, body))),
        Some(Err(e)) => Some(Err(e)),
        // Some old sysklogd setups log kernel lines with no tag: "Sep 13 15:31:25 host text".
        // Not for ISO stamps: `dmesg --time-format=iso` puts the message right after the time.
        None if month_form.is_some() => {
            let r = rest.trim_start_matches(' ');
            let host_end = r.find(' ')?;
            let host = &r[..host_end];
            if host.is_empty() || host.ends_with(':') || host.starts_with('[') {
                return None;
            }
            Some(Ok((time, Some(host), &r[host_end + 1..])))
        }
        None => None,
    }
}

/// A printed wall-clock time as a number that orders like the time: ISO dates, and `Mon dd
/// hh:mm:ss` with optional weekday and year (`dmesg -T`, syslog, `logread`). Not an epoch: a
/// missing year counts as 0 and time zones are ignored; only comparing two stamps of one log
/// is meant. `None` for forms it does not know (localised month names).
pub fn wall_seconds(t: &str) -> Option<f64> {
    let t = t.trim();
    let clock = |c: &str| -> Option<f64> {
        let n = clock_len(c)?;
        let h: f64 = c.get(0..2)?.parse().ok()?;
        let m: f64 = c.get(3..5)?.parse().ok()?;
        let sec: f64 = c.get(6..n)?.replace(',', ".").parse().ok()?;
        Some(h * 3600.0 + m * 60.0 + sec)
    };
    let day_s = |y: f64, mo: f64, d: f64| ((y * 12.0 + mo) * 31.0 + d) * 86400.0;
    if iso_len(t).is_some() {
        let y: f64 = t.get(0..4)?.parse().ok()?;
        let mo: f64 = t.get(5..7)?.parse().ok()?;
        let d: f64 = t.get(8..10)?.parse().ok()?;
        return Some(day_s(y, mo, d) + clock(t.get(11..)?)?);
    }
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let toks: Vec<&str> = t.split_whitespace().collect();
    let ci = toks.iter().position(|x| clock_len(x) == Some(x.len()))?;
    if ci < 2 {
        return None;
    }
    let d: f64 = toks[ci - 1].parse().ok()?;
    let word = toks[ci - 2].to_ascii_lowercase();
    let mo = MONTHS.iter().position(|m| word.starts_with(m))? as f64 + 1.0;
    let y: f64 = toks
        .get(ci + 1)
        .filter(|y| y.len() == 4)
        .and_then(|y| y.parse().ok())
        .unwrap_or(0.0);
    Some(day_s(y, mo, d) + clock(toks[ci])?)
}

/// `dmesg --time-format=iso`: `2026-11-29T13:51:01,123456+00:00 text`.
fn iso_time_only(s: &str) -> Option<(&str, &str)> {
    let n = iso_len(s)?;
    let rest = s[n..].strip_prefix(' ')?;
    Some((&s[..n], rest))
}

/// `[  123.456789] ` (also `[  +0.000067]` relative stamps, which carry no absolute time and
/// give `None` seconds).
fn bracket_seconds(s: &str) -> Option<(Option<f64>, &str)> {
    let inner_start = s.strip_prefix('[')?;
    let close = inner_start.find(']')?;
    let inner = inner_start[..close].trim_start_matches(' ');
    let relative = inner.starts_with('+');
    let num = inner.trim_start_matches('+');
    let int = digits(num);
    if int == 0 || !num[int..].starts_with('.') {
        return None;
    }
    let frac = digits(&num[int + 1..]);
    if frac == 0 || int + 1 + frac != num.len() {
        return None;
    }
    let secs: f64 = num.parse().ok()?;
    let rest = &inner_start[close + 1..];
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    Some((if relative { None } else { Some(secs) }, rest))
}

/// `[Thu Dec  7 00:05:14 2017] ` or localised `[dim. 19 avril 18:03:30 2026] `.
fn bracket_wallclock(s: &str) -> Option<(&str, &str)> {
    let inner_start = s.strip_prefix('[')?;
    let close = inner_start.find(']')?;
    let inner = &inner_start[..close];
    if inner.len() > 48 || inner.len() < 8 {
        return None;
    }
    let has_clock = inner
        .char_indices()
        .any(|(i, _)| inner.is_char_boundary(i) && clock_len(&inner[i..]).is_some());
    if !has_clock {
        return None;
    }
    let rest = &inner_start[close + 1..];
    Some((inner, rest.strip_prefix(' ').unwrap_or(rest)))
}

/// printk caller ids: `[ T1234] `, `[    C3] `.
fn caller_id(s: &str) -> Option<&str> {
    let inner_start = s.strip_prefix('[')?;
    let close = inner_start.find(']')?;
    let inner = inner_start[..close].trim_start_matches(' ');
    let rest = inner
        .strip_prefix('T')
        .or_else(|| inner.strip_prefix('C'))?;
    if rest.is_empty() || digits(rest) != rest.len() {
        return None;
    }
    let after = &inner_start[close + 1..];
    Some(after.strip_prefix(' ').unwrap_or(after))
}

fn strip_caller(s: &str) -> &str {
    caller_id(s).unwrap_or(s)
}

/// Where new records start inside one physical line (byte offsets, ascending, excluding 0).
///
/// People paste several records onto one line (the project's seed incident is exactly that:
/// two syslog records joined). A record visibly starts at a syslog header (`Jun 4 07:41:59 host
/// kernel: `), at a dmesg stamp that does not follow such a header, and at a kill/report message
/// glued to the end of the previous one (`...or a childKilled process 12475 (qemu)`).
pub fn split_points(line: &str) -> Vec<usize> {
    let mut points = Vec::new();
    // Syslog headers after the first record.
    let mut from = 1;
    while let Some(off) = line.get(from..).and_then(|t| find!(t, " kernel: ")) {
        let kpos = from + off;
        if let Some(start) = header_start_before(line, kpos) {
            if start > 0 {
                points.push(start);
            }
        }
        from = kpos + 1;
    }
    // dmesg stamps mid-line that are not part of a syslog header we already cut at.
    let mut from = 1;
    while let Some(off) = line
        .get(from..)
        .and_then(|t| memchr::memchr(b'[', t.as_bytes()))
    {
        let pos = from + off;
        if bracket_seconds(&line[pos..]).is_some_and(|(s, _)| s.is_some()) {
            let before = line[..pos].trim_end_matches(' ');
            // A console level between a tag and the stamp (`Guest: <3>[...]`) is one record.
            let before_level = level_suffix(before).map(|b| b.trim_end_matches(' '));
            let follows_header = before.ends_with("kernel:")
                || before.ends_with(']')
                || before_level.is_some_and(|b| b.ends_with(':'));
            if !follows_header && !points.contains(&pos) {
                points.push(pos);
            }
        }
        from = pos + 1;
    }
    // Messages glued onto the previous record.
    for (pat, finder) in MESSAGE_STARTS.iter().zip(MESSAGE_FINDERS.iter()) {
        let mut from = 1;
        while let Some(off) = line.get(from..).and_then(|t| finder.find(t.as_bytes())) {
            let pos = from + off;
            from = pos + 1;
            if message_start_ok(line, pos, pat) {
                points.push(pos);
            }
        }
    }
    points.sort_unstable();
    points.dedup();
    points
}

/// `text<6>` → `text`: what is before a console level at the end.
fn level_suffix(s: &str) -> Option<&str> {
    let body = s.strip_suffix('>')?;
    let n = body.bytes().rev().take_while(u8::is_ascii_digit).count();
    if n == 0 || n > 3 {
        return None;
    }
    body[..body.len() - n].strip_suffix('<')
}

const MESSAGE_STARTS: [&str; 7] = [
    "Killed process ",
    "Out of memory",
    "Out of Memory",
    "Memory cgroup out of memory",
    "oom-kill:constraint=",
    "oom_reaper: ",
    "Kernel panic - not syncing",
];

/// [`MESSAGE_STARTS`]' searchers, built once (see `find!`).
static MESSAGE_FINDERS: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 7]> =
    std::sync::LazyLock::new(|| MESSAGE_STARTS.map(memchr::memmem::Finder::new));

fn message_start_ok(line: &str, pos: usize, pat: &str) -> bool {
    let before = line[..pos].trim_end_matches(' ');
    // `Out of memory: Killed process`, `not syncing: Out of memory`: same record.
    if before.is_empty() || before.ends_with(':') || before.ends_with("kernel:") {
        return false;
    }
    // Everything before is this record's own prefix (kmsg header, level, stamps).
    if matches!(strip(&line[..pos]), Stripped::Kernel(_, body) if body.trim().is_empty()) {
        return false;
    }
    // Inside the same record's prefix area (`... kernel: [ 1.2] Killed`), not a join.
    if before.ends_with(']') && bracket_ends_record_prefix(before) {
        return false;
    }
    if pat == "Killed process " {
        // Require a pid, so a comm like "Killed process " cannot split its own line.
        return line[pos + pat.len()..]
            .trim_start_matches(' ')
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit());
    }
    true
}

fn bracket_ends_record_prefix(before: &str) -> bool {
    match before.rfind('[') {
        Some(open) => {
            let tail = &before[open..];
            bracket_seconds(tail).is_some()
                || caller_id(tail).is_some()
                || bracket_wallclock(tail).is_some()
        }
        None => false,
    }
}

/// Given the offset of " kernel: " in `line`, the offset where that record's syslog header
/// (`Mon dd hh:mm:ss host` or `ISO host`) begins.
fn header_start_before(line: &str, kpos: usize) -> Option<usize> {
    let before = &line[..kpos];
    let host_start = before.rfind(' ')? + 1;
    let before_host = before[..host_start].trim_end_matches(' ');
    // The time token: last whitespace-separated token.
    let tok_start = before_host.rfind(' ').map_or(0, |i| i + 1);
    let tok = &before_host[tok_start..];
    if iso_len(tok) == Some(tok.len()) {
        return Some(tok_start);
    }
    clock_len(tok).filter(|&n| n == tok.len())?;
    // Day, then month word.
    let before_clock = before_host[..tok_start].trim_end_matches(' ');
    let day_start = before_clock.rfind(' ').map_or(0, |i| i + 1);
    let day = &before_clock[day_start..];
    if day.is_empty() || day.len() > 2 || digits(day) != day.len() {
        return None;
    }
    let before_day = before_clock[..day_start].trim_end_matches(' ');
    let month_start = before_day.rfind(' ').map_or(0, |i| i + 1);
    let month = &before_day[month_start..];
    // A joined record's month word may be glued to the end of the previous text
    // ("...childJun 4 07:41:59"); take at most the trailing 3 letters when it is.
    if month.is_empty() || month.bytes().any(|c| c.is_ascii_digit()) {
        return None;
    }
    if month.chars().count() > 5 {
        let cut = month.char_indices().rev().nth(2).map(|(i, _)| i)?;
        return Some(month_start + cut);
    }
    Some(month_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(s: &str) -> (Meta<'_>, &str) {
        match strip(s) {
            Stripped::Kernel(m, t) => (m, t),
            other => panic!("not kernel: {other:?}"),
        }
    }

    #[test]
    fn raw_dmesg() {
        let (m, t) = kernel("[  818.356297] Out of memory: Killed process 1 (x)");
        assert_eq!(t, "Out of memory: Killed process 1 (x)");
        assert_eq!(m.kernel_time_s, Some(818.356297));
        assert_eq!(m.time, None);
    }

    #[test]
    fn syslog_with_and_without_stamp() {
        let (m, t) = kernel("Jun  4 07:41:59 plumbr kernel: [70667120.897649] Out of memory: x");
        assert_eq!(t, "Out of memory: x");
        assert_eq!(m.time, Some("Jun  4 07:41:59"));
        assert_eq!(m.host, Some("plumbr"));
        assert_eq!(m.kernel_time_s, Some(70667120.897649));
        let (m, t) = kernel("Jan 12 11:04:25 zeno kernel: Killed process 5 (a b)");
        assert_eq!(t, "Killed process 5 (a b)");
        assert_eq!(m.kernel_time_s, None);
        assert_eq!(m.host, Some("zeno"));
    }

    #[test]
    fn guest_console_tag_after_a_log_time() {
        // A hypervisor's log of a guest's serial console (VMware vmware.log).
        let line = "2023-12-04T10:49:30.125Z In(05) vcpu-5 - Guest: <3>[39290745.072599] Killed process 2625 (node) total-vm:1kB";
        assert!(split_points(line).is_empty());
        let (m, t) = kernel(line);
        assert_eq!(t, "Killed process 2625 (node) total-vm:1kB");
        assert_eq!(m.time, Some("2023-12-04T10:49:30.125Z"));
        assert_eq!(m.kernel_time_s, Some(39290745.072599));
        assert_eq!(m.host, None);
        // Without a level, and a stamp alone.
        let (_, t) = kernel("2023-12-04T10:49:30Z console: [  12.5] Out of memory: x");
        assert_eq!(t, "Out of memory: x");
        // Not a console tag: no stamp after it, a bracket in it, or too long.
        let (_, t) = kernel("2024-01-01T00:00:00Z note: Out of memory: x");
        assert_eq!(t, "note: Out of memory: x");
        let (_, t) = kernel("2024-01-01T00:00:00Z app[12]: [ 1.5] Out of memory: x");
        assert_eq!(t, "app[12]: [ 1.5] Out of memory: x");
        let long = format!("2024-01-01T00:00:00Z {}: [ 1.5] x", "w ".repeat(40));
        assert!(kernel(&long).1.ends_with(": [ 1.5] x"));
    }

    #[test]
    fn receiver_label_before_a_wire_record() {
        // A syslog receiver printing each datagram (PirateBox-Dev/openwrt-piratebox-feed#10).
        let line = "Received message  <3>Jun  8 11:15:26 LEDE kernel: [  350.072170] Killed process 2588 (opkg) total-vm:1620kB ";
        assert!(split_points(line).is_empty());
        let (m, t) = kernel(line);
        assert_eq!(t, "Killed process 2588 (opkg) total-vm:1620kB ");
        assert_eq!((m.time, m.host), (Some("Jun  8 11:15:26"), Some("LEDE")));
        assert_eq!(m.kernel_time_s, Some(350.072170));
        let (_, t) = kernel("got: <6>[  12.5] Out of memory: x");
        assert_eq!(t, "Out of memory: x");
        // Another program's record behind the label is still another program's.
        assert_eq!(
            strip("Received message  <30>Jun  8 11:15:26 LEDE dnsmasq[9]: Killed process 1 (x)"),
            Stripped::NotKernel(NotKernel::OtherProgram)
        );
        // Not a label: nothing record-shaped after the level, or a bracket in the label.
        for s in ["a <b> c", "size <6> [x]", "[x] y <6>[  1.5] z", "a, b <6>"] {
            assert_eq!(kernel(s).1, s);
        }
    }

    #[test]
    fn other_programs_are_not_kernel() {
        assert_eq!(
            strip("Jun  4 07:41:59 host systemd[1]: Killed process 1 (init)"),
            Stripped::NotKernel(NotKernel::OtherProgram)
        );
        assert_eq!(
            strip("12,345,678,-;Killed process 1 (init)"),
            Stripped::NotKernel(NotKernel::UserFacility)
        );
    }

    #[test]
    fn kmsg_and_dict() {
        let (m, t) = kernel("3,1234,5678901,-;Memory cgroup out of memory: Killed process 7");
        assert_eq!(t, "Memory cgroup out of memory: Killed process 7");
        assert_eq!(m.kernel_time_s, Some(5.678901));
        assert_eq!(
            strip(" SUBSYSTEM=memory"),
            Stripped::NotKernel(NotKernel::KmsgDict)
        );
    }

    #[test]
    fn journal_forms() {
        let (m, t) = kernel("Aug 30 06:58:55.050705 host kernel: oom-kill:constraint=X");
        assert_eq!(m.time, Some("Aug 30 06:58:55.050705"));
        assert_eq!(t, "oom-kill:constraint=X");
        let (m, t) = kernel("2024-05-01T10:00:00+0200 host kernel: Killed process 1 (a)");
        assert_eq!(m.time, Some("2024-05-01T10:00:00+0200"));
        assert_eq!(t, "Killed process 1 (a)");
        let (m, t) = kernel("[638074.104526] host kernel: Killed process 1 (a)");
        assert_eq!(m.kernel_time_s, Some(638074.104526));
        assert_eq!(m.host, Some("host"));
        assert_eq!(t, "Killed process 1 (a)");
        let (_, t) = kernel("июл 24 01:20:00 PC kernel: Killed process 1 (a)");
        assert_eq!(t, "Killed process 1 (a)");
        let (m, t) = kernel("Sep 13 15:31:25 escabot init invoked oom-killer: gfp_mask=0xd0,");
        assert_eq!(
            (m.host, t),
            (Some("escabot"), "init invoked oom-killer: gfp_mask=0xd0,")
        );
    }

    #[test]
    fn dmesg_t_caller_quote_level() {
        let (m, t) = kernel("[Thu Dec  7 00:05:14 2017] Killed process 1 (a)");
        assert_eq!(m.time, Some("Thu Dec  7 00:05:14 2017"));
        assert_eq!(t, "Killed process 1 (a)");
        let (m, t) = kernel("> > [   37.052923][ T9185] Killed process 1 (a)");
        assert_eq!(m.kernel_time_s, Some(37.052923));
        assert_eq!(t, "Killed process 1 (a)");
        let (_, t) = kernel("<6>[39291577.009363] Killed process 1 (a)");
        assert_eq!(t, "Killed process 1 (a)");
        let (m, t) = kernel("kern  :err   : [  5.000000] Killed process 1 (a)");
        assert_eq!(m.kernel_time_s, Some(5.0));
        assert_eq!(t, "Killed process 1 (a)");
    }

    #[test]
    fn task_row_pid_is_not_a_stamp() {
        let (m, t) = kernel("Jun  4 07:41:59 h kernel: [28600]   995 28600   100  20  0  0  0 x");
        assert_eq!(m.kernel_time_s, None);
        assert!(t.starts_with("[28600]"));
    }

    #[test]
    fn seed_line_splits_into_two_records() {
        let seed = "Jun 4 07:41:59 plumbr kernel: [70667120.897649] Out of memory: Kill process \
                    29957 (java) score 366 or sacrifice child Jun 4 07:41:59 plumbr kernel: \
                    [70667120.897701] Killed process 29957 (java) total-vm:2532680kB, \
                    anon-rss:1416508kB, file-rss:0kB";
        let pts = split_points(seed);
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert!(seed[pts[0]..].starts_with("Jun 4 07:41:59 plumbr kernel:"));
    }

    #[test]
    fn glued_messages_split() {
        let l = "[ 1.000000] Out of memory: kill process 1 (a) score 9 or a childKilled process 2 \
                 (b)Killed process 3 (c)";
        let pts = split_points(l);
        assert_eq!(pts.len(), 2, "{pts:?}");
        assert!(l[pts[0]..].starts_with("Killed process 2"));
        assert!(l[pts[1]..].starts_with("Killed process 3"));
        // Same-record forms are not split.
        assert!(split_points("Out of memory: Killed process 1 (a)").is_empty());
        assert!(split_points("[ 1.0] Kernel panic - not syncing: Out of memory: x").is_empty());
    }
}
