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

/// Substrings of which every trigger contains one: each is searched on its own with memchr's
/// single-needle SIMD search (a rare-byte-pair scan), and a line where one is found is then
/// checked for a whole trigger. Over the 1 GiB bench log one needle takes 0.03-0.07 s, the four
/// together about half of what one multi-needle search (aho-corasick's Teddy) took for the ten
/// triggers (0.30-0.35 s; no better with 2-5 needles).
const NEEDLES: [&str; 4] = ["oom", "process", "emory", "limit of"];

/// Finds the lines worth pushing while no report is open.
#[derive(Debug)]
pub struct Prefilter {
    needles: [memchr::memmem::Finder<'static>; NEEDLES.len()],
    /// The whole check of a candidate line. Leftmost-first, not the default standard semantics:
    /// with standard semantics aho-corasick falls back to a scan 14x slower. Building from a few
    /// literals cannot fail; if it ever did, every candidate line is taken.
    triggers: Option<aho_corasick::AhoCorasick>,
}

impl Prefilter {
    pub fn new() -> Self {
        Prefilter {
            needles: NEEDLES.map(memchr::memmem::Finder::new),
            triggers: aho_corasick::AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostFirst)
                .build(TRIGGERS)
                .ok(),
        }
    }

    /// Offset of the first trigger in `hay`, if any.
    pub fn find(&self, hay: &[u8]) -> Option<usize> {
        self.search(hay).find_from(0)
    }

    /// A search of `hay` from offsets that only grow: each needle's next place is remembered,
    /// so every byte is scanned once per needle however many candidates there are.
    pub fn search<'a>(&'a self, hay: &'a [u8]) -> Search<'a> {
        Search {
            pf: self,
            hay,
            next: [None; NEEDLES.len()],
            from: 0,
        }
    }

    /// Where a trigger starts in `line` (a line of the haystack holding a needle).
    fn check(&self, line: &[u8]) -> Option<usize> {
        match &self.triggers {
            Some(ac) => ac.find(line).map(|m| m.start()),
            None => Some(0),
        }
    }
}

impl Default for Prefilter {
    fn default() -> Self {
        Self::new()
    }
}

/// A [`Prefilter`] search over one haystack. See [`Prefilter::search`].
#[derive(Debug)]
pub struct Search<'a> {
    pf: &'a Prefilter,
    hay: &'a [u8],
    /// Per needle: not searched yet (`None`), its first place at or after the last search's
    /// start (`Some(i)`), or nowhere after it (`Some(usize::MAX)`).
    next: [Option<usize>; NEEDLES.len()],
    /// The last call's start: a call starting before it forgets what was remembered.
    from: usize,
}

impl Search<'_> {
    /// Offset in the haystack of the first trigger at or after `from`, which must be the start
    /// of a line (0 or just past a `\n`). Fast when `from` only grows from call to call.
    pub fn find_from(&mut self, mut from: usize) -> Option<usize> {
        if from < self.from {
            self.next = [None; NEEDLES.len()];
        }
        self.from = from;
        let hay = self.hay;
        loop {
            let mut cand = usize::MAX;
            for (next, finder) in self.next.iter_mut().zip(&self.pf.needles) {
                let at = match *next {
                    Some(at) if at >= from => at,
                    _ => {
                        let at = hay
                            .get(from..)
                            .and_then(|h| finder.find(h))
                            .map_or(usize::MAX, |i| from + i);
                        *next = Some(at);
                        at
                    }
                };
                cand = cand.min(at);
            }
            if cand == usize::MAX {
                return None;
            }
            let start = memchr::memrchr(b'\n', &hay[from..cand]).map_or(from, |i| from + i + 1);
            let end = memchr::memchr(b'\n', &hay[cand..]).map_or(hay.len(), |i| cand + i);
            if let Some(i) = self.pf.check(&hay[start..end]) {
                return Some(start + i);
            }
            from = end + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every needle is in every trigger it stands for: no trigger can be missed.
    #[test]
    fn every_trigger_holds_a_needle() {
        for t in TRIGGERS {
            assert!(NEEDLES.iter().any(|n| t.contains(n)), "{t}");
        }
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
