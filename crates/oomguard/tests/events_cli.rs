//! `oomguard events`: the event log read back by the real binary, rotated files in order,
//! `--since`, `--json`, a malformed line skipped with a warning naming it, `--follow`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;

fn line(id: &str, unix: f64, pid: i64, comm: &str) -> String {
    serde_json::json!({
        "kind": "kill", "source": "kernel", "pid": pid, "comm": comm,
        "anon_rss_kb": 65536, "file_rss_kb": 0, "shmem_rss_kb": 0,
        "task_memcg": "/ci/x", "constraint": "CONSTRAINT_MEMCG",
        "id": id, "unix_time_s": unix,
    })
    .to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("oomguard")
        .unwrap()
        .arg("events")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn reads_rotated_logs_in_order_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.jsonl");
    std::fs::write(
        dir.path().join("events.jsonl.1"),
        format!("{}\n", line("a-1", 1_795_960_000.0, 1, "old")),
    )
    .unwrap();
    std::fs::write(
        &p,
        format!(
            "{}\n{{not json at all\n[1,2]\n{}\n",
            line("a-2", 1_795_960_100.0, 2, "mid"),
            line("a-3", 1_795_960_200.0, 3, "new\u{1b}[31m")
        ),
    )
    .unwrap();
    let f = p.to_str().unwrap();
    let (code, out, err) = run(&["--file", f]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("old (pid 1)") && lines[0].contains("[a-1]"),
        "{out}"
    );
    assert!(
        lines[2].contains("new?[31m (pid 3)"),
        "control bytes escaped: {out}"
    );
    assert!(lines[1].starts_with("2026-11-29 13:4"), "{out}");
    assert!(
        lines[1].contains("cgroup /ci/x") && lines[1].contains("rss 64 MiB"),
        "{out}"
    );
    assert!(
        err.contains(&format!("{f} line 2: not a JSON event")),
        "warning names the line: {err}"
    );
    assert!(
        err.contains(&format!("{f} line 3: not a JSON object")),
        "{err}"
    );

    let (_, out, _) = run(&["--file", f, "--since", "@1795960100", "--json"]);
    let ids: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["a-2", "a-3"]);

    let (code, _, err) = run(&["--file", f, "--since", "yesterday"]);
    assert_eq!(code, 2);
    assert!(err.contains("--since"), "{err}");
    let (code, _, err) = run(&["--file", dir.path().join("absent").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("no event log"), "{err}");

    // Without --file: the config's events.log.
    let cfg = dir.path().join("oomguard.toml");
    std::fs::write(&cfg, format!("[events]\nlog = \"{f}\"\n")).unwrap();
    let (code, out, _) = run(&["--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn follow_prints_new_events_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("events.jsonl");
    std::fs::write(&p, format!("{}\n", line("f-1", 1.0, 1, "first"))).unwrap();
    let mut child = Command::cargo_bin("oomguard")
        .unwrap()
        .args(["events", "--follow", "--file", p.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    let mut read_one = |got: &mut Vec<String>| {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        got.push(l);
    };
    read_one(&mut got);
    // Appended, in two writes (a partial line is held until its newline).
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    let second = line("f-2", 2.0, 2, "second");
    f.write_all(&second.as_bytes()[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    f.write_all(format!("{}\n", &second[10..]).as_bytes())
        .unwrap();
    read_one(&mut got);
    // Rotated: the old file renamed, a new one created.
    std::fs::rename(&p, dir.path().join("events.jsonl.1")).unwrap();
    std::fs::write(&p, format!("{}\n", line("f-3", 3.0, 3, "third"))).unwrap();
    let t = Instant::now();
    read_one(&mut got);
    assert!(t.elapsed() < Duration::from_secs(3));
    let _ = child.kill();
    let _ = child.wait();
    assert!(got[0].contains("first"), "{got:?}");
    assert!(got[1].contains("second"), "{got:?}");
    assert!(got[2].contains("third"), "{got:?}");
}
