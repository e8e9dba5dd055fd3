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

/// Finds the lines worth pushing while no report is open.
#[derive(Debug)]
pub struct Prefilter {
    needles: [memchr::memmem::Finder<'static>; NEEDLES.len()],
}

impl Prefilter {
    pub fn new() -> Self {
        Prefilter {
            needles: NEEDLES.map(|(n, _)| memchr::memmem::Finder::new(n)),
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
    pub fn find_from(&mut self, mut from: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
