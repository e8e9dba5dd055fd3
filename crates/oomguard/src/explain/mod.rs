//! `oomguard explain`: kernel OOM reports in logs → events, explained in plain words or as JSON
//! lines (`docs/event-schema.md`).
//!
//! Exit status: 0 events found, 1 none found, 2 usage or I/O error (see `ExitStatus`).

pub mod html;
pub mod input;
pub mod recorded;
pub mod render;
pub mod scan;

use std::io::{self, Write};
use std::path::Path;

use anyhow::Context as _;

use oomguard_core::event::OomEvent;
use oomguard_core::oomlog::{Parser, Prefilter};

use crate::cli::ExplainArgs;
use crate::term::Style;

/// `explain`'s documented exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Found = 0,
    NoneFound = 1,
    Error = 2,
}

/// Reads every event from one input (at most `max` kept, the newest ones), for other
/// subcommands (`doctor`) that want the kernel's OOM history without printing it.
pub fn collect(input: input::Input, max: usize) -> std::io::Result<(Vec<OomEvent>, u64)> {
    let mut parser = Parser::new();
    let mut events = std::collections::VecDeque::new();
    let mut total = 0u64;
    let mut sink = |ev: OomEvent| -> io::Result<()> {
        total += 1;
        if events.len() == max {
            events.pop_front();
        }
        events.push_back(ev);
        Ok(())
    };
    scan::scan(input.reader, &mut parser, &Prefilter::new(), &mut sink)?;
    Ok((events.into(), total))
}

/// Runs `explain`. Errors (unreadable input) are returned with the path in the message.
pub fn run(args: &ExplainArgs) -> anyhow::Result<ExitStatus> {
    let style = Style::for_stdout(args.color);
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let prefilter = Prefilter::new();
    let mut summary = render::Summary::default();
    let mut html = args.html.as_ref().map(|_| html::HtmlReport::new());
    let mut count = 0usize;
    let mut inputs = Vec::new();
    // The live log stamps records in seconds since boot; people want the wall-clock time.
    let mut boot_epoch_s = None;
    if args.files.is_empty() {
        let (input, note) = input::system_log(Path::new("/"))?;
        eprintln!("oomguard: {note}");
        boot_epoch_s = input::boot_epoch_s(Path::new("/"));
        summary.boot_epoch_s = boot_epoch_s;
        inputs.push(Ok(input));
    } else {
        for f in &args.files {
            inputs.push(input::open_arg(f));
        }
    }
    let mut failed = false;
    let mut none_in = Vec::new();
    let pod_logs = crate::host::pods::PodLogs::new(&args.kubelet_logs);
    // oomguard's own event log: what led up to each kill the daemon saw (never required).
    let default_log = oomguard_core::config::EventsConfig::default().log;
    let (daemon_log, note) = match &args.events {
        Some(p) => recorded::load(p, true),
        None => recorded::load(Path::new(&default_log), false),
    };
    if let Some(n) = note {
        eprintln!("oomguard: {n}");
    }
    for input in inputs {
        let input = match input {
            Ok(i) => i,
            Err(e) => {
                eprintln!("oomguard: {e:#}");
                failed = true;
                continue;
            }
        };
        let name = input.name.clone();
        if let Some(h) = &mut html {
            h.input(&name);
        }
        let before = count;
        let mut parser = Parser::new();
        let mut sink = |mut ev: OomEvent| -> io::Result<()> {
            pod_logs.fill_event(&mut ev);
            if let Some(r) = daemon_log
                .as_ref()
                .and_then(|l| l.find(&ev, recorded::wall_time_s(&ev, boot_epoch_s)))
            {
                ev.recorder = Some(r.recording.clone());
                ev.id = ev.id.take().or_else(|| r.id.clone());
            }
            count += 1;
            summary.add(&ev);
            if let Some(h) = &mut html {
                h.add(&ev, count, &name);
            }
            if args.json {
                serde_json::to_writer(&mut out, &ev).map_err(io::Error::other)?;
                out.write_all(b"\n")?;
                // Each event is flushed whole, so a reader of a pipe sees complete lines.
                out.flush()
            } else {
                let text = render::event_at(&ev, count, &name, &style, boot_epoch_s);
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")
            }
        };
        match scan::scan(input.reader, &mut parser, &prefilter, &mut sink) {
            Ok(stats) => {
                if count == before {
                    none_in.push(format!("{name} ({} lines read)", stats.lines));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(ExitStatus::Found),
            Err(e) => {
                eprintln!("oomguard: cannot read {name}: {e}");
                failed = true;
            }
        }
    }
    if !args.json && summary.total() > 1 {
        let _ = out.write_all(summary.render(&style).as_bytes());
    }
    if let Err(e) = out.flush() {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if let (Some(h), Some(path)) = (&html, &args.html) {
        std::fs::write(path, h.finish())
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("oomguard: wrote {}", path.display());
    }
    for n in &none_in {
        eprintln!("oomguard: no OOM events in {n}");
    }
    Ok(if failed {
        ExitStatus::Error
    } else if count > 0 {
        ExitStatus::Found
    } else {
        ExitStatus::NoneFound
    })
}
