//! Start-up's sequel: SIGHUP's reload of the config (a bad one is rejected and the running one
//! stays) and the rescan of guarded cgroups (every 10 s, and when inotify saw one appear), which
//! keeps the watches that still match, adds new ones and drops the removed ones. Moved out of
//! `daemon.rs` unchanged; the flight recorder's columns follow the guarded cgroups here.

use oomguard_core::policy::Policy;
use oomguard_core::trigger::{self, Level, PollPlan};

use super::{cgroups, log, thresholds, Daemon};

impl Daemon {
    /// SIGHUP: re-reads the config; a bad one is rejected and the running one stays.
    pub fn reload(&mut self) {
        self.notifier.reloading();
        let mut cfg = match crate::watch::effective_config(&self.args) {
            Ok((c, _)) => c,
            Err(e) => {
                log(format_args!(
                    "reload rejected, keeping the running config: {e:#}"
                ));
                self.notifier.ready("watching (reload rejected)");
                return;
            }
        };
        for note in cgroups::normalise_config(&self.cgfs, &mut cfg.cgroups) {
            log(format_args!("{note}"));
        }
        let policy = match Policy::compile(&cfg.rules, std::process::id() as i32) {
            Ok(p) => p,
            Err(e) => {
                log(format_args!(
                    "reload rejected, keeping the running config: {e}"
                ));
                self.notifier.ready("watching (reload rejected)");
                return;
            }
        };
        self.policy = policy;
        self.cfg = cfg;
        if let Ok(s) = self.sample() {
            self.th = thresholds(&self.cfg, &s);
        }
        self.poll_plan = PollPlan {
            min: self.cfg.poll.min,
            max: self.cfg.poll.max,
            floor_fill_bytes_per_s: self.cfg.poll.fill_rate as f64,
        };
        self.rescan_cgroups();
        self.open_thrash();
        self.open_recorder();
        log(format_args!(
            "reloaded {}",
            self.origin
                .as_ref()
                .map_or("flags".to_owned(), |p| p.display().to_string())
        ));
        // Parsing and compiling touched code the loop does not run: shed it again, but only
        // while memory is calm and not falling fast: the rehearsal is a ranking pass (tens of ms
        // with thousands of processes) during which the loop does not read memory.
        let calm = self.sample().is_ok_and(|s| {
            trigger::evaluate(&self.th, &s, &self.psi_state, self.started.elapsed()).level
                == Level::Calm
        });
        let msg = if !self.protect_self {
            "memory: self-protection off (embedded)".to_owned()
        } else if calm && !self.warm_wanted {
            self.settle_memory()
        } else {
            "memory: start-up pages of the reload kept (memory is not calm; shed at the next reload)"
                .to_owned()
        };
        log(format_args!("{msg}"));
        self.notifier.ready("watching");
    }

    pub(super) fn rescan_cgroups(&mut self) {
        let patterns: Vec<_> = self
            .cfg
            .cgroups
            .iter()
            .map(|c| (c.path.clone(), c.headroom))
            .collect();
        // Watch where they would be made before looking, so one made in between is not missed.
        if let Some((_, root)) = cgroups::memory_root(&self.cgfs) {
            let pats: Vec<&str> = patterns.iter().map(|(p, _)| p.as_str()).collect();
            let armed = match self.appear.as_mut() {
                Some(a) => a.rearm(&root, &pats),
                None => crate::watch::appear::Appear::new(&root, &pats).map(|a| {
                    self.appear = a;
                }),
            };
            if let Err(e) = armed {
                log(format_args!(
                    "cgroups: no inotify on their parent directories ({e}); looking every 10 s"
                ));
                self.appear = None;
            }
        }
        let Ok(found) = cgroups::resolve(&self.cgfs, &patterns) else {
            return;
        };
        // Keep existing watches (and their state); add new ones; drop removed ones.
        self.cgroups
            .retain(|w| w.exists() && found.iter().any(|f| f.dir == w.dir));
        for mut f in found {
            if self.cgroups.iter().any(|w| w.dir == f.dir) {
                continue;
            }
            if let Ok(r) = cgroups::read(&self.cgfs, &f) {
                if let Some(msg) = f.arm(&r) {
                    log(format_args!("{msg}"));
                }
            }
            log(format_args!(
                "guarding cgroup {} ({:?}), acting within {} of its limit",
                f.path, f.version, f.headroom
            ));
            self.cgroups.push(f);
        }
        for msg in cgroups::apply_rules(&mut self.cgroups, &self.cfg.cgroups, self.protect_self) {
            log(format_args!("{msg}"));
        }
        self.history.retain_cgroups(self.cgroups.len());
        self.thrash_retain();
        self.record_columns();
    }
}
