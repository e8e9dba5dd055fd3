//! The trigger search that lets a reader skip ordinary log lines without splitting them.

/// Substrings of which a line must contain one to open or close a report. Any other line matters
/// only while a report is open ([`super::Parser::wants_every_line`]). Checked against every
/// format in `kernel-oom-formats.md`.
pub const TRIGGERS: [&str; 10] = [
    "oom-",
    "oom_",
    "oom.",
    // "Kill process"/"kill process" (≤5.0 selection) and "Killed process": the latter does not
    // contain the former ("Kill-ed process").
    "ill process",
    "illed process",
    "ut of memory",
    "ut of Memory",
    "No available memory",
    // memcg report lines that may stand alone in an excerpt (no header, no kill line).
    "s a result of limit of",
    "emory cgroup stats for",
];

/// Substrings of which every trigger contains one, each with the triggers it stands for as the
/// text just before and just after it. Each is searched on its own with memchr's single-needle
/// SIMD search (a rare-byte-pair scan); where one is found, the bytes around it are compared
/// with its triggers. Over the 1 GiB bench log one needle takes 0.03-0.07 s, the four together
/// about half of what one multi-needle search (aho-corasick's Teddy) took for the ten triggers
/// (0.30-0.35 s; no better with 2-5 needles).
const NEEDLES: [(&str, &[(&str, &str)]); 4] = [
    ("oom", &[("", "-"), ("", "_"), ("", ".")]),
    ("process", &[("ill ", ""), ("illed ", "")]),
    (
        "emory",
        &[
            ("ut of m", ""),
            ("ut of M", ""),
            ("No available m", ""),
            ("", " cgroup stats for"),
        ],
    ),
    ("limit of", &[("s a result of ", "")]),
];

/// Three bytes of each needle (in the order of [`NEEDLES`]) and where they sit in it: the one
/// pass over the haystack ([`wide`]) looks for all four at once and checks a needle only where
/// its three bytes are. Picked among each needle's byte triples as the rarest in ordinary
/// syslog text ("oce" rather than "pro", "ory" rather than "mem", "mit" rather than "lim").
const TRIPLES: [(usize, [u8; 3]); NEEDLES.len()] =
    [(0, *b"oom"), (2, *b"oce"), (2, *b"ory"), (2, *b"mit")];

/// Finds the lines worth pushing while no report is open.
#[derive(Debug)]
pub struct Prefilter {
    needles: [memchr::memmem::Finder<'static>; NEEDLES.len()],
    /// The one-pass AVX2 search can run on this CPU.
    wide: bool,
}

impl Prefilter {
    pub fn new() -> Self {
        Prefilter {
            needles: NEEDLES.map(|(n, _)| memchr::memmem::Finder::new(n)),
            wide: wide::available(),
        }
    }

    /// The same search without the one-pass scan: one memchr search per needle (for tests and
    /// the fuzz target, which check that both find the same lines).
    pub fn without_wide_scan() -> Self {
        Prefilter {
            wide: false,
            ..Self::new()
        }
    }

    /// Offset of the first trigger in `hay`, if any.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        self.search(hay).find_from(0)
    }

    /// A search of `hay` from offsets that grow: each needle's next place is remembered, so
    /// every byte is scanned once per needle however many places there are.
    pub fn search<'a>(&'a self, hay: &'a [u8]) -> Search<'a> {
        Search {
            pf: self,
            hay,
            next: [None; NEEDLES.len()],
            from: 0,
        }
    }
}

impl Default for Prefilter {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a trigger holding needle `k` at `at` starts, if one does.
fn trigger_at(hay: &[u8], at: usize, k: usize) -> Option<usize> {
    let (needle, triggers) = NEEDLES[k];
    let rest = hay.get(at + needle.len()..)?;
    triggers.iter().find_map(|(before, after)| {
        let start = at.checked_sub(before.len())?;
        (hay.get(start..at) == Some(before.as_bytes()) && rest.starts_with(after.as_bytes()))
            .then_some(start)
    })
}

/// A [`Prefilter`] search over one haystack. See [`Prefilter::search`].
#[derive(Debug)]
pub struct Search<'a> {
    pf: &'a Prefilter,
    hay: &'a [u8],
    /// Per needle: not searched yet (`None`), its first place at or after the start of the
    /// search that set it (`Some(i)`), or nowhere after it (`Some(usize::MAX)`).
    next: [Option<usize>; NEEDLES.len()],
    /// The last call's start: a call starting before it forgets what was remembered.
    from: usize,
}

impl Search<'_> {
    /// Offset in the haystack of the first trigger at or after `from`, which must be the start
    /// of a line (0 or just past a `\n`). Fast when `from` only grows from call to call.
    pub fn find_from(&mut self, from: usize) -> Option<usize> {
        if !self.pf.wide {
            return self.find_by_needles(from);
        }
        // One pass finds the first line holding a trigger; the needle search then runs on that
        // line alone, so the offset returned is the one it would have given from `from`.
        let hit = wide::first_trigger(self.hay, from)?;
        let hay = self.hay;
        let line_start = memchr::memrchr(b'\n', &hay[from..hit]).map_or(from, |i| from + i + 1);
        let line_end = memchr::memchr(b'\n', &hay[hit..]).map_or(hay.len(), |i| hit + i);
        let mut line = Search {
            pf: self.pf,
            hay: &hay[..line_end],
            next: [None; NEEDLES.len()],
            from: line_start,
        };
        Some(line.find_by_needles(line_start).unwrap_or(hit))
    }

    /// [`Self::find_from`] by one memchr search per needle, each place remembered.
    fn find_by_needles(&mut self, mut from: usize) -> Option<usize> {
        if from < self.from {
            self.next = [None; NEEDLES.len()];
        }
        self.from = from;
        let hay = self.hay;
        loop {
            // The nearest needle place at or after `from`.
            let (mut at, mut k) = (usize::MAX, 0);
            for (i, (next, finder)) in self.next.iter_mut().zip(&self.pf.needles).enumerate() {
                let place = match *next {
                    Some(place) if place >= from => place,
                    _ => {
                        let place = hay
                            .get(from..)
                            .and_then(|h| finder.find(h))
                            .map_or(usize::MAX, |i| from + i);
                        *next = Some(place);
                        place
                    }
                };
                if place < at {
                    (at, k) = (place, i);
                }
            }
            if at == usize::MAX {
                return None;
            }
            // A trigger holds its needle at a fixed offset and no newline, so the first place
            // that is part of a trigger is in the first line holding one.
            if let Some(start) = trigger_at(hay, at, k) {
                return Some(start);
            }
            self.next[k] = None;
            from = at + 1;
        }
    }
}

/// The one-pass trigger search: AVX2 compares 32 places at a time with the first, second and
/// third byte of each of the four [`TRIPLES`], and only where one matches is its needle and then
/// its triggers compared. The needle searches it replaces each pass over the whole buffer; this
/// is one pass (measured in docs/benchmarks.md).
mod wide {
    use super::{trigger_at, NEEDLES, TRIPLES};

    pub fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Is a trigger's needle at `pos` (for triple `k`) part of a trigger that starts at or
    /// after `from`? Returns where that trigger starts.
    fn check(hay: &[u8], from: usize, pos: usize, k: usize) -> Option<usize> {
        let (off, triple) = TRIPLES[k];
        if hay.get(pos..pos + 3)? != triple {
            return None;
        }
        let at = pos.checked_sub(off)?;
        if at < from || !hay[at..].starts_with(NEEDLES[k].0.as_bytes()) {
            return None;
        }
        trigger_at(hay, at, k).filter(|&start| start >= from)
    }

    fn check_any(hay: &[u8], from: usize, pos: usize) -> Option<usize> {
        (0..TRIPLES.len()).find_map(|k| check(hay, from, pos, k))
    }

    /// Where some trigger starts in the first line at or after `from` that holds one (not
    /// always that line's first trigger). Only called where [`available`] said yes.
    pub fn first_trigger(hay: &[u8], from: usize) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: `Prefilter::new` enabled the wide search only where AVX2 was detected.
            unsafe { first_trigger_avx2(hay, from) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            (from..hay.len()).find_map(|pos| check_any(hay, from, pos))
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn first_trigger_avx2(hay: &[u8], from: usize) -> Option<usize> {
        use std::arch::x86_64::*;
        let splat = |i: usize| TRIPLES.map(|(_, t)| _mm256_set1_epi8(t[i] as i8));
        let (c0, c1, c2) = (splat(0), splat(1), splat(2));
        let mut pos = from;
        // Each block reads bytes pos..pos + 34.
        while pos + 34 <= hay.len() {
            // SAFETY: pos + 34 <= hay.len(), so the three unaligned 32-byte loads at pos, pos + 1
            // and pos + 2 are inside `hay`.
            let (b0, b1, b2) = unsafe {
                let p = hay.as_ptr().add(pos);
                (
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.add(1).cast()),
                    _mm256_loadu_si256(p.add(2).cast()),
                )
            };
            let mut any = _mm256_setzero_si256();
            for k in 0..TRIPLES.len() {
                let m = _mm256_and_si256(
                    _mm256_and_si256(_mm256_cmpeq_epi8(b0, c0[k]), _mm256_cmpeq_epi8(b1, c1[k])),
                    _mm256_cmpeq_epi8(b2, c2[k]),
                );
                any = _mm256_or_si256(any, m);
            }
            let mut mask = _mm256_movemask_epi8(any) as u32;
            while mask != 0 {
                let at = pos + mask.trailing_zeros() as usize;
                if let Some(start) = check_any(hay, from, at) {
                    return Some(start);
                }
                mask &= mask - 1;
            }
            pos += 32;
        }
        (pos..hay.len()).find_map(|at| check_any(hay, from, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_are_in_their_needles() {
        for ((needle, _), (off, triple)) in NEEDLES.iter().zip(TRIPLES) {
            assert_eq!(&needle.as_bytes()[off..off + 3], &triple, "{needle}");
        }
    }

    /// The one-pass search and the per-needle search find the same offsets, over haystacks of
    /// every length around the 32-byte blocks and with triggers across block edges.
    #[test]
    fn wide_and_needle_searches_agree() {
        let pieces = [
            "x",
            "oom-",
            "zoom",
            "ill process",
            "Killed process 7",
            "ut of memory",
            "process",
            "\n",
            "s a result of limit of",
            "limit",
            "emory cgroup stats for",
            "memory",
            "oce",
            "ory",
            "mit",
            "oom_",
            "oom.",
            "No available memory",
            "ut of Memory",
            "  ",
        ];
        let wide = Prefilter::new();
        let narrow = Prefilter::without_wide_scan();
        let mut state = 0x2545_f491_u32;
        for round in 0..3000 {
            let mut hay = String::new();
            for _ in 0..(round % 23) {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                hay.push_str(pieces[state as usize % pieces.len()]);
            }
            let hay = hay.as_bytes();
            let lines: Vec<usize> = std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', hay).map(|i| i + 1))
                .collect();
            let (mut a, mut b) = (wide.search(hay), narrow.search(hay));
            for &from in &lines {
                assert_eq!(
                    a.find_from(from),
                    b.find_from(from),
                    "{:?} from {from}",
                    String::from_utf8_lossy(hay)
                );
            }
        }
    }

    /// The needles with their context are exactly the triggers: none missed, none added.
    #[test]
    fn needles_spell_the_triggers() {
        let mut spelled: Vec<String> = NEEDLES
            .iter()
            .flat_map(|(n, ts)| ts.iter().map(move |(b, a)| format!("{b}{n}{a}")))
            .collect();
        let mut want: Vec<String> = TRIGGERS.iter().map(|t| t.to_string()).collect();
        spelled.sort();
        want.sort();
        assert_eq!(spelled, want);
    }

    /// Lines holding a needle but no trigger, many per haystack and mixed with trigger lines:
    /// a search finds exactly the lines a line-by-line check of the triggers finds, in order.
    #[test]
    fn search_finds_the_trigger_lines_and_only_them() {
        let lines = [
            "systemd[1]: Main process exited, code=exited",
            "kernel: Out of memory: Killed process 7 (x)",
            "a zoom room of bloom",
            "kernel: memory: usage 10kB, limit 20kB",
            "no limit of any kind",
            "kernel: x invoked oom-killer: gfp_mask=0x0",
            "processing process processes",
            "kernel: Task in /a killed as a result of limit of /a",
            "",
            "kernel: Memory cgroup stats for /a: cache:0KB",
            "plain line",
            "oom",
        ];
        let mut hay = String::new();
        let mut want = Vec::new();
        for i in 0..300 {
            let l = lines[(i * 7) % lines.len()];
            if TRIGGERS.iter().any(|t| l.contains(t)) {
                let t = TRIGGERS.iter().filter_map(|t| l.find(t)).min().unwrap_or(0);
                want.push(hay.len() + t);
            }
            hay.push_str(l);
            hay.push('\n');
        }
        let pf = Prefilter::new();
        let mut search = pf.search(hay.as_bytes());
        let mut got = Vec::new();
        let mut from = 0;
        while let Some(at) = search.find_from(from) {
            got.push(at);
            from = hay[at..].find('\n').map_or(hay.len(), |i| at + i + 1);
        }
        assert_eq!(got, want);
        assert!(!want.is_empty());
        // Going back to an earlier start finds the same first trigger again.
        assert_eq!(search.find_from(0), want.first().copied());
        assert_eq!(pf.find(b"zoom\nprocess\nmemory\n"), None);
    }
}
