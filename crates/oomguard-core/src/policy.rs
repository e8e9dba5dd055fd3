//! Who dies: the kernel's own badness, adjusted by the operator's rules. Pure: candidates in, a
//! ranked choice out, every exclusion with a one-line reason.
//!
//! Rules are tried in the order written; the first whose matchers all match decides (like a
//! firewall: predictable, and `protect` early in the list always wins). `avoid`/`prefer` shift the
//! kernel's badness by `adjust × totalpages / 1000` pages, exactly as an `oom_score_adj` of that
//! size would, so a rule means the same on a 1 GiB container and a 1 TiB host.
//!
//! Hard exclusions no rule can lift: pid 1, oomguard itself, kernel threads (never scanned),
//! `oom_score_adj` -1000 and the kernel's other unkillable cases, processes already exiting.

use regex_lite::Regex;

use crate::badness::Verdict;
use crate::config::{RuleAction, RuleConfig};

/// A process as the policy sees it. Optional fields are read only when a rule needs them.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub pid: i32,
    pub name: &'a str,
    pub cmdline: Option<&'a str>,
    pub exe: Option<&'a str>,
    pub cgroup: Option<&'a str>,
    pub uid: u32,
    pub user: Option<&'a str>,
    /// The kernel's badness for this scope.
    pub verdict: Verdict,
    pub exiting: bool,
}

/// The policy's judgement of one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Never chosen, and why.
    Excluded(String),
    /// May be chosen: the adjusted score (pages), and the rule that adjusted it.
    Eligible { score: i64, rule: Option<String> },
}

#[derive(Debug, Clone)]
enum UserMatch {
    Uid(u32),
    Name(String),
}

#[derive(Debug, Clone)]
struct Rule {
    action: RuleAction,
    name: Option<Regex>,
    cmdline: Option<Regex>,
    exe: Option<Regex>,
    cgroup: Option<Regex>,
    user: Option<UserMatch>,
    adjust: i64,
    label: String,
}

/// The rule index a judgement's label names (`rules[N] ...`, as [`Policy::compile`] writes it).
pub fn rule_index(label: &str) -> Option<usize> {
    label
        .strip_prefix("rules[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// Compiled rules.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    self_pid: i32,
}

/// Which optional candidate fields some rule looks at (so the scan reads only those files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub cmdline: bool,
    pub exe: bool,
    pub cgroup: bool,
}

fn compile_re(i: usize, key: &str, s: &Option<String>) -> Result<Option<Regex>, String> {
    s.as_deref()
        .map(|re| {
            Regex::new(re).map_err(|e| format!("rules[{i}].{key}: invalid regex {re:?}: {e}"))
        })
        .transpose()
}

impl Policy {
    /// Compiles the config's rules. `self_pid` is oomguard's own pid (never a victim).
    pub fn compile(rules: &[RuleConfig], self_pid: i32) -> Result<Policy, String> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let user = r.user.as_deref().map(|u| match u.parse::<u32>() {
                Ok(uid) => UserMatch::Uid(uid),
                Err(_) => UserMatch::Name(u.to_owned()),
            });
            let mut parts = Vec::new();
            for (k, v) in [
                ("name", &r.name),
                ("cmdline", &r.cmdline),
                ("exe", &r.exe),
                ("cgroup", &r.cgroup),
                ("user", &r.user),
            ] {
                if let Some(v) = v {
                    parts.push(format!("{k}={v:?}"));
                }
            }
            let action = match r.action {
                RuleAction::Protect => "protect",
                RuleAction::Avoid => "avoid",
                RuleAction::Prefer => "prefer",
            };
            out.push(Rule {
                action: r.action,
                name: compile_re(i, "name", &r.name)?,
                cmdline: compile_re(i, "cmdline", &r.cmdline)?,
                exe: compile_re(i, "exe", &r.exe)?,
                cgroup: compile_re(i, "cgroup", &r.cgroup)?,
                user,
                adjust: i64::from(r.adjust),
                label: format!("rules[{i}] {action} {}", parts.join(" ")),
            });
        }
        Ok(Policy {
            rules: out,
            self_pid,
        })
    }

    /// The optional fields rules look at.
    pub fn needs(&self) -> Needs {
        let mut n = Needs::default();
        for r in &self.rules {
            n.cmdline |= r.cmdline.is_some();
            n.exe |= r.exe.is_some();
            n.cgroup |= r.cgroup.is_some();
        }
        n
    }

    /// Whether some rule may raise a score (`prefer`).
    pub fn prefers(&self) -> bool {
        self.rules.iter().any(|r| r.action == RuleAction::Prefer)
    }

    /// For a ranking that knows a process's name but not its user, cmdline, exe or cgroup: an
    /// upper bound of the shift [`Policy::judge`] applies, in permille of `totalpages` (the
    /// unit of `adjust`), or `None` when it is protected whatever the unknown fields are. A
    /// rule that also looks at an unknown field may or may not match, so each such rule whose
    /// name part matches adds its outcome to the possible ones, until a rule that looks only at
    /// the name matches (then it decides, if none before it did); the bound is the best
    /// possible outcome.
    pub fn name_shift_bound(&self, name: &str) -> Option<i64> {
        let mut best: Option<i64> = None;
        let outcome = |r: &Rule| match r.action {
            RuleAction::Protect => None,
            RuleAction::Avoid => Some(-r.adjust),
            RuleAction::Prefer => Some(r.adjust),
        };
        for r in &self.rules {
            if !r.name.as_ref().is_none_or(|re| re.is_match(name)) {
                continue;
            }
            let name_only =
                r.user.is_none() && r.cmdline.is_none() && r.exe.is_none() && r.cgroup.is_none();
            best = best.max(outcome(r));
            if name_only {
                return best;
            }
        }
        // No rule surely matched: "no rule" (shift 0) is possible too.
        best.max(Some(0))
    }

    /// Judges one candidate for a scope of `totalpages`.
    pub fn judge(&self, c: &Candidate<'_>, totalpages: u64) -> Judgement {
        if c.pid == 1 {
            return Judgement::Excluded("pid 1 (init) is never killed".to_owned());
        }
        if c.pid == self.self_pid {
            return Judgement::Excluded("oomguard itself".to_owned());
        }
        let points = match c.verdict {
            Verdict::Unkillable(u) => {
                return Judgement::Excluded(format!("kernel: {}", u.reason()))
            }
            Verdict::Points(p) => p,
        };
        if c.exiting {
            return Judgement::Excluded(
                "already exiting (its memory is on its way back)".to_owned(),
            );
        }
        let Some(rule) = self.rules.iter().find(|r| matches(r, c)) else {
            return Judgement::Eligible {
                score: points,
                rule: None,
            };
        };
        let unit = i64::try_from(totalpages / 1000).unwrap_or(i64::MAX);
        let shift = rule.adjust.saturating_mul(unit);
        match rule.action {
            RuleAction::Protect => Judgement::Excluded(format!("protected by {}", rule.label)),
            RuleAction::Avoid => Judgement::Eligible {
                score: points.saturating_sub(shift),
                rule: Some(rule.label.clone()),
            },
            RuleAction::Prefer => Judgement::Eligible {
                score: points.saturating_add(shift),
                rule: Some(rule.label.clone()),
            },
        }
    }
}

fn matches(r: &Rule, c: &Candidate<'_>) -> bool {
    let re = |re: &Option<Regex>, v: Option<&str>| match re {
        None => true,
        Some(re) => v.is_some_and(|v| re.is_match(v)),
    };
    let user_ok = match &r.user {
        None => true,
        Some(UserMatch::Uid(u)) => *u == c.uid,
        Some(UserMatch::Name(n)) => c.user == Some(n.as_str()),
    };
    user_ok
        && re(&r.name, Some(c.name))
        && re(&r.cmdline, c.cmdline)
        && re(&r.exe, c.exe)
        && re(&r.cgroup, c.cgroup)
}

/// Picks the victim: the highest adjusted score; on a tie the one later in `judged` (the kernel's
/// walk order: it takes `points >= chosen`, so the later task wins). The chooser is the one in
/// [`crate::badness::pick_highest`].
pub fn choose(judged: &[Judgement]) -> Option<usize> {
    crate::badness::pick_highest(judged.iter().map(|j| match j {
        Judgement::Eligible { score, .. } => Some(*score),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::badness::Unkillable;
    use crate::config::RuleConfig;

    fn rule(action: RuleAction, name: &str, adjust: u16) -> RuleConfig {
        RuleConfig {
            action,
            name: Some(name.to_owned()),
            cmdline: None,
            exe: None,
            cgroup: None,
            user: None,
            adjust,
            diagnose: None,
        }
    }

    fn cand(pid: i32, name: &'static str, points: i64) -> Candidate<'static> {
        Candidate {
            pid,
            name,
            cmdline: None,
            exe: None,
            cgroup: None,
            uid: 1000,
            user: Some("app"),
            verdict: Verdict::Points(points),
            exiting: false,
        }
    }

    /// Ranks candidates and returns their names, most likely victim first.
    fn order(p: &Policy, cands: &[Candidate<'static>], totalpages: u64) -> Vec<&'static str> {
        let mut judged: Vec<(Judgement, usize)> = cands
            .iter()
            .enumerate()
            .map(|(i, c)| (p.judge(c, totalpages), i))
            .collect();
        let mut out = Vec::new();
        loop {
            let js: Vec<Judgement> = judged.iter().map(|(j, _)| j.clone()).collect();
            let Some(i) = choose(&js) else { break };
            out.push(cands[judged[i].1].name);
            judged.remove(i);
        }
        out
    }

    #[test]
    fn name_shift_bound_bounds_judge_from_above_for_every_user() {
        let with_user = |action, name: Option<&str>, user: &str, adjust| RuleConfig {
            action,
            name: name.map(str::to_owned),
            cmdline: None,
            exe: None,
            cgroup: None,
            user: Some(user.to_owned()),
            adjust,
            diagnose: None,
        };
        let p = Policy::compile(
            &[
                with_user(RuleAction::Protect, Some("^java$"), "root", 0),
                with_user(RuleAction::Avoid, None, "1000", 200),
                rule(RuleAction::Protect, "^sshd$", 0),
                rule(RuleAction::Prefer, "^(java|batch)", 300),
                rule(RuleAction::Avoid, "^db$", 100),
            ],
            99,
        )
        .unwrap();
        assert!(p.prefers());
        let tp = 1_000_000u64;
        for name in ["java", "batch-1", "sshd", "db", "other"] {
            for (uid, user) in [(0, Some("root")), (1000, Some("app")), (7, None)] {
                let c = Candidate {
                    uid,
                    user,
                    ..cand(10, "", 50_000)
                };
                let c = Candidate { name, ..c };
                match (p.name_shift_bound(name), p.judge(&c, tp)) {
                    (None, Judgement::Excluded(_)) => {}
                    (None, j) => panic!("{name}/{uid}: bound says protected, judge {j:?}"),
                    (Some(b), Judgement::Eligible { score, .. }) => {
                        assert!(
                            score <= 50_000 + b * 1000,
                            "{name}/{uid}: {score} > bound {b}"
                        )
                    }
                    (Some(_), Judgement::Excluded(_)) => {}
                }
            }
        }
        assert_eq!(p.name_shift_bound("batch-1"), Some(300));
        assert_eq!(p.name_shift_bound("db"), Some(-100));
        // An earlier rule on the user may match first: protected only if it does not.
        assert_eq!(p.name_shift_bound("sshd"), Some(-200));
        let only_protect = Policy::compile(&[rule(RuleAction::Protect, "^sshd$", 0)], 99);
        assert_eq!(only_protect.unwrap().name_shift_bound("sshd"), None);
        assert_eq!(p.name_shift_bound("other"), Some(0));
        let by_user = Policy::compile(&[with_user(RuleAction::Prefer, None, "app", 10)], 99);
        assert_eq!(by_user.unwrap().name_shift_bound("x"), Some(10));
    }

    #[test]
    fn every_pair_in_an_ordered_list() {
        // Expected order, with the reason each is where it is (totalpages 1_000_000: adjust 1 = 1000 pages).
        let p = Policy::compile(
            &[
                rule(RuleAction::Protect, "^sshd$", 0),
                rule(RuleAction::Prefer, "^batch", 300),
                rule(RuleAction::Avoid, "^db$", 300),
            ],
            4242,
        )
        .unwrap();
        let cands = [
            cand(10, "db", 500_000),       // 500k - 300k = 200k
            cand(11, "batch-job", 50_000), // 50k + 300k = 350k
            cand(12, "web", 300_000),      // 300k
            cand(13, "sshd", 900_000),     // protected
            cand(14, "cron", 1_000),       // 1k
        ];
        let got = order(&p, &cands, 1_000_000);
        let want = ["batch-job", "web", "db", "cron"];
        assert_eq!(got, want);
        // Every pair: each name ranks above every later one.
        for (i, a) in want.iter().enumerate() {
            for b in &want[i + 1..] {
                let pa = got.iter().position(|x| x == a).unwrap();
                let pb = got.iter().position(|x| x == b).unwrap();
                assert!(pa < pb, "{a} should die before {b}");
            }
        }
    }

    #[test]
    fn hard_exclusions_cannot_be_lifted() {
        let p = Policy::compile(&[rule(RuleAction::Prefer, ".", 1000)], 77).unwrap();
        let init = cand(1, "init", 10);
        let me = cand(77, "oomguard", 10);
        let mut never = cand(5, "x", 10);
        never.verdict = Verdict::Unkillable(Unkillable::OomScoreAdjMin);
        let mut dying = cand(6, "y", 10);
        dying.exiting = true;
        for c in [init, me, never, dying] {
            assert!(
                matches!(p.judge(&c, 1000), Judgement::Excluded(_)),
                "{}",
                c.name
            );
        }
        assert!(matches!(
            p.judge(&cand(7, "z", 10), 1000),
            Judgement::Eligible { .. }
        ));
    }

    #[test]
    fn first_matching_rule_decides_and_all_matchers_must_match() {
        let mut r0 = rule(RuleAction::Protect, "^java$", 0);
        r0.user = Some("root".into());
        let p = Policy::compile(&[r0, rule(RuleAction::Prefer, "^java$", 100)], 1).unwrap();
        // java as "app" is not protected (user differs), so the prefer rule applies.
        let j = p.judge(&cand(9, "java", 10), 10_000);
        assert_eq!(
            j,
            Judgement::Eligible {
                score: 10 + 100 * 10,
                rule: Some("rules[1] prefer name=\"^java$\"".into())
            }
        );
        let mut rootjava = cand(9, "java", 10);
        rootjava.user = Some("root");
        assert!(
            matches!(p.judge(&rootjava, 10_000), Judgement::Excluded(r) if r.contains("rules[0] protect"))
        );
    }

    #[test]
    fn cmdline_rules_need_the_cmdline() {
        let mut r = rule(RuleAction::Prefer, ".", 100);
        r.name = None;
        r.cmdline = Some("--type=renderer".into());
        let p = Policy::compile(&[r], 1).unwrap();
        assert!(p.needs().cmdline && !p.needs().exe);
        let mut c = cand(3, "chrome", 5);
        assert_eq!(
            p.judge(&c, 1000),
            Judgement::Eligible {
                score: 5,
                rule: None
            }
        );
        c.cmdline = Some("/opt/chrome --type=renderer");
        assert!(matches!(
            p.judge(&c, 1000),
            Judgement::Eligible { score: 105, .. }
        ));
    }

    #[test]
    fn ties_go_to_the_later_candidate_like_the_kernel() {
        let js = vec![
            Judgement::Eligible {
                score: 5,
                rule: None,
            },
            Judgement::Eligible {
                score: 5,
                rule: None,
            },
            Judgement::Excluded("x".into()),
        ];
        assert_eq!(choose(&js), Some(1));
        assert_eq!(choose(&[Judgement::Excluded("x".into())]), None);
    }

    /// The daemon's chain on a table of processes: the kernel's badness (5.9+) from rss and
    /// `oom_score_adj`, then the rules, then the choice, repeated as victims go. Covers what the
    /// real-kernel tests cannot set on the test machine: `oom_score_adj` -1000 (lowering it
    /// needs CAP_SYS_RESOURCE, which the test machine's root lacks). The largest processes are
    /// the adj -1000 one and the protected one; both outlive every smaller one.
    #[test]
    fn larger_adj_min_and_protected_processes_outlive_every_smaller_one() {
        use crate::badness::{badness, Era, TaskFacts, TaskMemPages};
        let totalpages = 1_000_000;
        let facts = |rss_pages: u64, adj: i16| TaskFacts {
            is_global_init: false,
            is_kernel_thread: false,
            mem: Some(TaskMemPages {
                rss_pages,
                swap_pages: 0,
                pgtables_pages: rss_pages / 512,
            }),
            oom_score_adj: adj,
            cap_sys_admin: false,
        };
        let p = Policy::compile(&[rule(RuleAction::Protect, "^bigsafe$", 0)], 4242).unwrap();
        // (name, rss pages, adj), listed in walk order; the expected kill order is below.
        let table: [(&'static str, u64, i16); 7] = [
            ("unkillable", 600_000, -1000),
            ("bigsafe", 500_000, 1000),
            ("hog", 200_000, 0),
            ("shy", 300_000, -500),  // 300k - 500k: below zero, still killable
            ("eager", 10_000, 1000), // 10k + 1000k
            ("small", 1_000, 0),
            ("tiny", 10, 0),
        ];
        let cands: Vec<Candidate<'static>> = table
            .iter()
            .enumerate()
            .map(|(i, &(name, rss, adj))| Candidate {
                verdict: badness(Era::Signed59, &facts(rss, adj), totalpages),
                ..cand(100 + i as i32, name, 0)
            })
            .collect();
        let got = order(&p, &cands, totalpages);
        let want = ["eager", "hog", "small", "tiny", "shy"];
        assert_eq!(got, want);
        for (i, a) in want.iter().enumerate() {
            for b in &want[i + 1..] {
                let pa = got.iter().position(|x| x == a).unwrap();
                let pb = got.iter().position(|x| x == b).unwrap();
                assert!(pa < pb, "{a} should die before {b}");
            }
        }
        // Never chosen, each with its reason.
        for (i, why) in [(0, "oom_score_adj"), (1, "protected by rules[0]")] {
            match p.judge(&cands[i], totalpages) {
                Judgement::Excluded(r) => assert!(r.contains(why), "{}: {r}", cands[i].name),
                j => panic!("{} judged {j:?}", cands[i].name),
            }
        }
    }
}
