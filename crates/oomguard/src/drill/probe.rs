//! What `drill` looks at besides the cgroup: the running daemon's process, its `/metrics`, the
//! event log and the journal. Parsing is separate from reading so it can be tested on text.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// A running `oomguard watch` process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonProc {
    pub pid: i32,
    /// Its `--config`, when given on its command line.
    pub config: Option<PathBuf>,
    pub dry_run_flag: bool,
}

/// Whether `argv` is an `oomguard watch` command line, and what it says.
pub fn parse_cmdline(pid: i32, argv: &[String]) -> Option<DaemonProc> {
    let exe = argv.first()?;
    let base = Path::new(exe).file_name()?.to_string_lossy();
    if base != "oomguard" || !argv.iter().skip(1).any(|a| a == "watch") {
        return None;
    }
    let mut config = None;
    let mut it = argv.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--config" {
            config = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            config = Some(PathBuf::from(v));
        }
    }
    Some(DaemonProc {
        pid,
        config,
        dry_run_flag: argv.iter().any(|a| a == "--dry-run"),
    })
}

/// Every `oomguard watch` under `proc_root`; processes that vanish while read are skipped.
pub fn find_daemons(proc_root: &Path) -> Vec<DaemonProc> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if let Some(d) = parse_cmdline(pid, &argv) {
            out.push(d);
        }
    }
    out.sort_by_key(|d| d.pid);
    out
}

/// `metrics.listen` as an address to connect to (`:PORT` is loopback).
pub fn metrics_addr(listen: &str) -> Option<SocketAddr> {
    let l = listen.trim();
    if l.is_empty() {
        return None;
    }
    let full = if l.starts_with(':') {
        format!("127.0.0.1{l}")
    } else {
        l.to_owned()
    };
    full.to_socket_addrs().ok()?.next()
}

/// `GET /metrics`, the body as text.
pub fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(4 << 20).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200") => {
            Ok(body.to_owned())
        }
        _ => Err(std::io::Error::other("not a 200 response")),
    }
}

/// The sum of a metric's samples whose labels contain every `label="value"` in `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, lab) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            (n == name && labels.iter().all(|want| lab.split(',').any(|x| x == *want)))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// The daemon's event for a kill of `pid` in the event log text, if logged.
pub fn kill_event(log_text: &str, pid: u32) -> Option<Value> {
    log_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["source"] == "oomguard"
                && v["kind"] == "kill"
                && v["victim"]["pid"].as_u64() == Some(u64::from(pid))
        })
}

/// `journalctl` entries with `OOMGUARD_EVENT_ID=id`, counted.
pub fn journal_entries(id: &str) -> std::io::Result<usize> {
    let out = std::process::Command::new("journalctl")
        .args(["-o", "json", "--no-pager", "-q"])
        .arg(format!("OOMGUARD_EVENT_ID={id}"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .count())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn daemon_command_lines() {
        let d = parse_cmdline(
            7,
            &argv(&["/usr/bin/oomguard", "watch", "--config", "/e/o.toml"]),
        );
        assert_eq!(d.unwrap().config, Some(PathBuf::from("/e/o.toml")));
        let d =
            parse_cmdline(7, &argv(&["oomguard", "watch", "--config=/x", "--dry-run"])).unwrap();
        assert_eq!(d.config, Some(PathBuf::from("/x")));
        assert!(d.dry_run_flag);
        assert_eq!(parse_cmdline(7, &argv(&["oomguard", "explain"])), None);
        assert_eq!(parse_cmdline(7, &argv(&["/bin/watch", "oomguard"])), None);
    }

    #[test]
    fn metric_sums_and_addresses() {
        let text = "# HELP x\noomguard_kills_total{signal=\"SIGTERM\",trigger=\"cgroup\"} 2\n\
                    oomguard_kills_total{signal=\"SIGKILL\",trigger=\"memory\"} 1\n\
                    oomguard_hook_runs_total{event=\"post_kill\"} 3\n\
                    oomguard_notifications_total 4\n";
        assert_eq!(metric_sum(text, "oomguard_kills_total", &[]), 3.0);
        assert_eq!(
            metric_sum(text, "oomguard_kills_total", &["trigger=\"cgroup\""]),
            2.0
        );
        assert_eq!(
            metric_sum(text, "oomguard_hook_runs_total", &["event=\"post_kill\""]),
            3.0
        );
        assert_eq!(metric_sum(text, "oomguard_notifications_total", &[]), 4.0);
        assert_eq!(metric_sum(text, "oomguard_kills", &[]), 0.0);
        assert_eq!(
            metrics_addr(":9748"),
            Some("127.0.0.1:9748".parse().unwrap())
        );
        assert_eq!(metrics_addr(""), None);
    }

    #[test]
    fn kill_events_by_victim_pid() {
        let log = "{\"source\":\"oomguard\",\"kind\":\"warning\",\"victim\":{\"pid\":5}}\nnot json\n\
                   {\"source\":\"oomguard\",\"kind\":\"kill\",\"id\":\"a-1\",\"victim\":{\"pid\":5}}\n";
        assert_eq!(kill_event(log, 5).unwrap()["id"], "a-1");
        assert!(kill_event(log, 6).is_none());
    }
}
