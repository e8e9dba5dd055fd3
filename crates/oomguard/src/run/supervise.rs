//! One start of the supervised command: wait on the child's pidfd, the signals, the kernel log,
//! the cgroup's threshold eventfds and the guard, until the main process exits; and the
//! warning when usage crosses `--warn-at`.

use super::*;

impl Supervisor<'_> {
    /// Supervises one start until the main process exits.
    pub(super) fn supervise(
        &mut self,
        start: u32,
        mut child: Child,
        pinned: &Pinned,
        comm: Option<String>,
    ) -> anyhow::Result<Death> {
        let started = Instant::now();
        let pid = pinned.pid();
        let oom_before = self.cg.read_oom_kills().ok().flatten();
        // libc, not rustix: in a private PID namespace whose group leader is outside it,
        // getpgrp() is 0, which rustix's wrapper asserts against (a panic under `unshare`).
        // SAFETY: getpgrp has no preconditions.
        let own_pgrp = unsafe { libc::getpgrp() };
        let shares_pgrp = pinned
            .read_proc_file("stat")
            .ok()
            .and_then(|s| parse_stat_identity(&s).ok())
            .is_some_and(|id| id.pgrp == own_pgrp);
        let mut parser = Parser::new();
        let mut line_no = 0u64;
        let mut warn = self
            .cfg
            .warn_at
            .zip(self.limit_bytes)
            .map(|(p, l)| WarnTracker::new(l, p));
        let guard_at = self
            .cfg
            .guard_headroom
            .zip(self.limit_bytes)
            .map(|(h, l)| guard_level(l, h));
        // v1: the kernel wakes us at the crossing instead of the next tick.
        let mut wakeups = Vec::new();
        if self.cg.version == CgroupVersion::V1 {
            for level in [warn.map(|w| w.level_bytes), guard_at]
                .into_iter()
                .flatten()
            {
                match MemcgEvent::usage_threshold(&self.cg.dir, level) {
                    Ok(e) => wakeups.push(e),
                    Err(e) => eprintln!("oomguard run: {}: warning: {e}", self.cfg.name),
                }
            }
        }
        let mut guard_kills: Vec<OomEvent> = Vec::new();
        let mut guard_quiet_until = started;
        let mut last_usage = None;
        let mut next_tick = started;
        let status = loop {
            if let Some(s) = child.try_wait().context("waitpid on the command")? {
                break s;
            }
            self.drain_kmsg(&mut parser, &mut line_no, pid);
            while let Some(r) = self.sigs.read().context("read signalfd")? {
                self.on_signal(r, pinned, shares_pgrp);
            }
            let now = Instant::now();
            if let Some(stop) = &mut self.stop {
                if !stop.killed && now >= stop.kill_at {
                    stop.killed = true;
                    eprintln!(
                        "oomguard run: {}: still running {} after {}; killing the cgroup",
                        self.cfg.name,
                        secs(self.args.stop_timeout),
                        signal_name(stop.signal)
                    );
                    if let Err(e) = self.cg.empty() {
                        eprintln!("oomguard run: {}: warning: {e}", self.cfg.name);
                    }
                }
            }
            for w in &wakeups {
                let _ = w.read_count();
            }
            if now >= next_tick || !wakeups.is_empty() {
                next_tick = now + TICK;
                if let Ok(usage) = self.cg.read_usage_bytes() {
                    last_usage = Some(usage);
                    if let Some(w) = &mut warn {
                        if w.observe(usage) {
                            self.warn(start, pid, usage, w.level_bytes);
                        }
                    }
                    if let (Some(level), Some(limit)) = (guard_at, self.limit_bytes) {
                        if usage >= level && now >= guard_quiet_until {
                            if let Some(k) =
                                guard::kill_worst(&mut RealActuator, self.cg, usage, limit)
                            {
                                eprintln!(
                                    "oomguard run: {}: --guard: usage {} MiB within {} MiB of \
                                     the {} MiB limit: killed pid {} ({}){}",
                                    self.cfg.name,
                                    mib_1(usage),
                                    mib_1(limit - level),
                                    mib_1(limit),
                                    k.event.pid.unwrap_or_default(),
                                    k.event.comm.as_deref().unwrap_or("?"),
                                    if k.gone { "" } else { " (not yet gone)" }
                                );
                                guard_kills.push(k.event);
                                guard_quiet_until = Instant::now() + GUARD_COOLDOWN;
                            }
                        }
                    }
                }
            }
            let mut timeout = next_tick.saturating_duration_since(Instant::now());
            if let Some(stop) = &self.stop {
                if !stop.killed {
                    timeout = timeout.min(stop.kill_at.saturating_duration_since(Instant::now()));
                }
            }
            let mut fds = Vec::with_capacity(3 + wakeups.len());
            fds.push(PollFd::from_borrowed_fd(pinned.pidfd(), PollFlags::IN));
            fds.push(PollFd::from_borrowed_fd(self.sigs.fd(), PollFlags::IN));
            if let Some(k) = &self.kmsg {
                fds.push(PollFd::from_borrowed_fd(k.fd(), PollFlags::IN));
            }
            for w in &wakeups {
                fds.push(PollFd::from_borrowed_fd(w.fd(), PollFlags::IN));
            }
            let timeout = add_tell_fds(&self.tell, &mut fds, Instant::now(), timeout);
            match rustix::event::poll(&mut fds, Some(&poll_timeout(timeout))) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(anyhow::anyhow!("poll: {e}")),
            }
            drop(fds);
            self.tell_tick();
        };
        let ran_for = started.elapsed();
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => WaitStatus::Exited(c),
            (None, Some(s)) => WaitStatus::Signaled {
                signal: s,
                core_dumped: status.core_dumped(),
            },
            (None, None) => WaitStatus::Exited(-1),
        };
        let oom_after = self.cg.read_oom_kills().ok().flatten();
        let delta = oom_before.zip(oom_after).map(|(b, a)| a.saturating_sub(b));
        // The kernel prints its report while killing; give it a moment to be readable.
        let sigkill = matches!(status, WaitStatus::Signaled { signal: 9, .. });
        if self.kmsg.is_some() && (sigkill || delta.is_some_and(|d| d > 0)) {
            let until = Instant::now() + REPORT_WAIT;
            loop {
                if self.drain_kmsg(&mut parser, &mut line_no, pid) {
                    break;
                }
                let now = Instant::now();
                if now >= until || (!sigkill && delta.is_some()) {
                    break;
                }
                if let Some(k) = &self.kmsg {
                    let mut fds = [PollFd::from_borrowed_fd(k.fd(), PollFlags::IN)];
                    let _ = rustix::event::poll(
                        &mut fds,
                        Some(&poll_timeout((until - now).min(Duration::from_millis(50)))),
                    );
                }
            }
        }
        let mut events = Vec::new();
        parser.finish(&mut events);
        let ours: Vec<OomEvent> = events
            .into_iter()
            .filter(|e| {
                e.kind == EventKind::Kill
                    && [e.task_memcg.as_deref(), e.oom_memcg.as_deref()]
                        .into_iter()
                        .flatten()
                        .any(|p| cgroup_is_within(p, &self.cg.rel_path))
            })
            .collect();
        let evidence = DeathEvidence {
            pid: i64::from(pid),
            status,
            oom_kills_delta: delta,
            kernel_reports: &ours,
            guard_kills: &guard_kills,
            kmsg_followed: self.kmsg.is_some(),
        };
        let cause = classify(&evidence);
        let mut all_kills = ours.clone();
        all_kills.extend(guard_kills.iter().cloned());
        let facts = CgroupFacts {
            path: &self.cg.rel_path,
            limit_bytes: self.limit_bytes,
        };
        let why = explain(&cause, &facts, &all_kills);
        let main = Some(i64::from(pid));
        let other_kills = all_kills.into_iter().filter(|k| k.pid != main).collect();
        Ok(Death {
            pid,
            comm,
            status,
            ran_for,
            cause,
            why,
            other_kills,
            usage_bytes: last_usage,
        })
    }

    pub(super) fn warn(&mut self, start: u32, pid: i32, usage: u64, level: u64) {
        let limit = self.limit_bytes.unwrap_or_default();
        let why = format!(
            "memory usage {} MiB passed {}% of the {} MiB limit ({} MiB)",
            mib_1(usage),
            self.cfg.warn_at.unwrap_or_default(),
            mib_1(limit),
            mib_1(level)
        );
        eprintln!("oomguard run: {}: warning: {why}", self.cfg.name);
        let mut ev = OomEvent::new(EventKind::Warning);
        ev.source = Source::Oomguard;
        ev.pid = Some(i64::from(pid));
        ev.task_memcg = Some(self.cg.rel_path.clone());
        ev.memcg_usage_kb = Some(usage / KIB);
        ev.memcg_limit_kb = self.limit_bytes.map(|l| l / KIB);
        let mut info = self.run_info(start, pid, "warn_at", why);
        info.last_usage_bytes = Some(usage);
        ev.run = Some(info);
        self.emit(ev);
    }
}
