//! The candidates of a decision and the policy's judgement of each: every process (or the
//! `candidates_cgroup` subtree's, or a guarded cgroup's), or the ahead-of-need pass's best plus
//! the processes started since; each judged by the kernel's badness of this era plus the
//! config's rules.

use std::collections::{HashMap, HashSet};

use oomguard_core::badness;
use oomguard_core::decision::Scope;
use oomguard_core::policy::{self, Judgement};

use super::{read_sample, Daemon};
use std::path::Path;

use crate::host::scan::{ProcSample, ScanStats, Scanner};

impl Daemon {
    fn scan_global(&mut self, stats: &mut ScanStats) -> anyhow::Result<()> {
        match &self.cfg.candidates_cgroup {
            Some(cg) => {
                let (_, dir) = crate::host::machine::resolve_cgroup(&self.cgfs, cg)?;
                self.cgfs.subtree_procs(&dir, &mut self.pids)?;
                self.scanner.scan_pids(&self.pids, &mut self.samples, stats);
            }
            None => self.scanner.scan(&mut self.samples, stats)?,
        }
        Ok(())
    }

    /// `candidates_parent`: keeps only that pid's descendants.
    fn retain_descendants(&mut self) {
        let Some(parent) = self.cfg.candidates_parent_pid else {
            return;
        };
        let keep = descendants(parent, self.samples.iter().map(|s| (s.pid, s.ppid)));
        self.samples.retain(|s| keep.contains(&s.pid));
    }
    /// The candidates for `scope`, in the kernel's walk order; returns totalpages.
    pub(super) fn candidates(&mut self, scope: Scope) -> anyhow::Result<u64> {
        self.candidates_note.clear();
        self.samples.clear();
        self.pids.clear();
        let mut stats = ScanStats::default();
        let ps = self.page_size;
        let totalpages = match scope {
            Scope::Global => {
                let warm = self.warm_candidates();
                match warm {
                    Some((at, new)) => {
                        self.candidates_note = format!(
                            " (ranked ahead from a scan begun {:.0} ms earlier over {} processes; best {} re-read, {new} new since)",
                            at.elapsed().as_secs_f64() * 1e3,
                            self.warm.done.len(),
                            self.samples.len() - new
                        );
                    }
                    None => {
                        self.samples.clear();
                        self.scan_global(&mut stats)?;
                        self.retain_descendants();
                    }
                }
                let s = read_sample(&mut self.meminfo, None, &mut self.buf)?;
                badness::global_totalpages(s.mem_total_bytes, s.swap_total_bytes, ps)
            }
            Scope::Cgroup(i) => {
                let w = &self.cgroups[i];
                self.cgfs.subtree_procs(&w.dir, &mut self.pids)?;
                self.scanner
                    .scan_pids(&self.pids, &mut self.samples, &mut stats);
                let memcg = self.cgfs.read_memcg(w.version, &w.dir)?;
                let swap = read_sample(&mut self.meminfo, None, &mut self.buf)
                    .map(|s| s.swap_total_bytes)
                    .unwrap_or(0);
                let swappiness = crate::host::optional(self.procfs.read_sysctl_vm("swappiness"))
                    .ok()
                    .flatten()
                    .unwrap_or(60)
                    .max(0) as u64;
                crate::host::machine::memcg_totalpages(&memcg, ps, swappiness, swap / ps).0
            }
        };
        // for_each_process() walks in creation order: start time, then pid.
        self.samples.sort_by_key(|s| (s.start_time_ticks, s.pid));
        Ok(totalpages)
    }

    /// The policy's judgement of one process, with the optional fields rules may look at
    /// (`[cmdline, exe, cgroup]`, `None` where not read).
    pub(super) fn judge(
        &self,
        s: &ProcSample,
        fields: [Option<&str>; 3],
        totalpages: u64,
    ) -> Judgement {
        let name = s.comm.as_str();
        let [cmdline, exe, cgroup] = fields;
        let c = policy::Candidate {
            pid: s.pid,
            name: &name,
            cmdline,
            exe,
            cgroup,
            uid: s.uid,
            user: self.users.get(&s.uid).map(String::as_str),
            verdict: badness::badness(self.era, &s.facts(true), totalpages),
            exiting: s.exiting,
        };
        self.policy.judge(&c, totalpages)
    }

    /// The policy's judgement of every candidate in `self.samples`, with the cmdline and cgroup
    /// read for rules that need them (kept for the decision's log line and event).
    #[allow(clippy::type_complexity)]
    pub(super) fn judge_candidates(
        &mut self,
        totalpages: u64,
    ) -> (Vec<Judgement>, Vec<(Option<String>, Option<String>)>) {
        let needs = self.policy.needs();
        let root = self.procfs.root().to_path_buf();
        let mut judged = Vec::with_capacity(self.samples.len());
        let mut extra: Vec<(Option<String>, Option<String>)> =
            Vec::with_capacity(self.samples.len());
        for s in &self.samples {
            let (cmdline, cgroup) =
                read_extras(&mut self.scanner, &root, s.pid, needs.cmdline, needs.cgroup);
            let exe = if needs.exe {
                std::fs::read_link(root.join(s.pid.to_string()).join("exe"))
                    .ok()
                    .map(|p| p.display().to_string())
            } else {
                None
            };
            let fields = [cmdline.as_deref(), exe.as_deref(), cgroup.as_deref()];
            judged.push(self.judge(s, fields, totalpages));
            extra.push((cmdline, cgroup));
        }
        (judged, extra)
    }
}

/// The pids among `(pid, ppid)` pairs that descend from `parent` (its children, their
/// children, ...); a chain is followed at most 4,096 steps (pid loops cannot occur, but a torn
/// read across a reparenting could look like one).
pub(super) fn descendants(parent: i32, pairs: impl Iterator<Item = (i32, i32)>) -> HashSet<i32> {
    let ppid: HashMap<i32, i32> = pairs.collect();
    let descends = |mut p: i32| {
        for _ in 0..4096 {
            match ppid.get(&p) {
                Some(&pp) if pp == parent => return true,
                Some(&pp) if pp > 0 => p = pp,
                _ => return false,
            }
        }
        false
    };
    ppid.keys().copied().filter(|&p| descends(p)).collect()
}

/// The cmdline and memory cgroup path of `pid`, each only when asked for (`None` where not
/// asked, or unreadable). Opening /proc/PID costs two syscalls per process: only when a rule
/// (or the event) reads from it.
pub(super) fn read_extras(
    scanner: &mut Scanner,
    root: &Path,
    pid: i32,
    cmdline: bool,
    cgroup: bool,
) -> (Option<String>, Option<String>) {
    if !cmdline && !cgroup {
        return (None, None);
    }
    let Ok(dir) = scanner.open_pid(pid) else {
        return (None, None);
    };
    let c = if cmdline {
        dir.read_cmdline(root, scanner.buf()).ok()
    } else {
        None
    };
    let g = if cgroup {
        dir.read_memory_cgroup(root, scanner.buf())
            .ok()
            .flatten()
            .map(|(_, p)| p)
    } else {
        None
    };
    (c, g)
}
