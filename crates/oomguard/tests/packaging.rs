//! The shipped configuration files and their documentation, checked against the daemon's own
//! config parser (`oomguard_core::config::parse`), so a key added to `config.rs` that the default
//! config, `docs/configuration.md` or `oomguard.toml(5)` forgets fails here.
//!
//! The `watch --check` tests below switch themselves on when the binary has a `watch`
//! subcommand: then the daemon's own check must accept both shipped files, with the exact flags
//! the systemd unit and the DaemonSet pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use oomguard_core::config::{self, Config, RuleAction};

fn repo_file(rel: &str) -> (PathBuf, String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    (path, text)
}

/// The keys of one config table, as the parser itself names them: every table denies unknown
/// fields, and serde's error for an unknown one lists all the expected ones.
fn keys_of(table_header: &str) -> Vec<String> {
    let text = format!("{table_header}\noomguard_no_such_key = 1\n");
    let err = config::parse(&text, "probe")
        .expect_err("unknown key accepted")
        .0;
    // "expected one of `a`, `b`, `c`", "expected `a` or `b`", "expected `a`": the keys are the
    // back-quoted words after "expected", before config::parse's " (at `LINE`)" suffix.
    let list = err
        .split_once("expected")
        .map(|(_, l)| l.split(" (at `").next().unwrap_or(l))
        .unwrap_or_else(|| panic!("cannot read the key list from: {err}"));
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every (table, key) the parser accepts, tables by their TOML header.
fn all_keys() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for k in keys_of("") {
        out.push((String::new(), k));
    }
    for table in [
        "[memory]",
        "[swap]",
        "[psi]",
        "[kill]",
        "[poll]",
        "[[cgroups]]\npath = \"/x\"",
        "[[rules]]\naction = \"avoid\"\nname = \"x\"",
        "[events]",
        "[metrics]",
        "[[hooks]]\non = \"warn\"\ncommand = [\"/bin/true\"]",
        "[notify]",
        "[thrash]",
        "[recorder]",
    ] {
        let header = table.lines().next().unwrap_or_default().to_owned();
        for k in keys_of(table) {
            out.push((header.clone(), k));
        }
    }
    out
}

#[test]
fn key_enumeration_sees_every_table() {
    let keys = all_keys();
    assert!(keys.len() > 30, "{keys:?}");
    assert!(keys.contains(&("[kill]".into(), "term_grace".into())));
    assert!(keys.contains(&("[[rules]]".into(), "adjust".into())));
    assert!(keys.contains(&(String::new(), "candidates_cgroup".into())));
    // Two-key tables read "expected `a` or `b`".
    assert!(keys.contains(&("[memory]".into(), "term_below".into())));
    assert!(keys.contains(&("[memory]".into(), "kill_below".into())));
    assert!(keys.contains(&("[notify]".into(), "notify_send".into())));
}

#[test]
fn shipped_config_parses_and_shows_the_defaults() {
    let (path, text) = repo_file("packaging/oomguard.toml");
    let cfg = config::parse(&text, &path.display().to_string()).unwrap();
    // Apart from its protect rules, the shipped file says exactly what an empty file says: every
    // value written in it is the real default, not a second opinion.
    let rules = cfg.rules.clone();
    assert_eq!(
        Config {
            rules: Vec::new(),
            ..cfg
        },
        Config::default()
    );
    assert!(rules.iter().all(|r| r.action == RuleAction::Protect));
    assert!(rules.len() >= 4);
}

#[test]
fn shipped_config_protects_what_a_server_needs() {
    let (_, text) = repo_file("packaging/oomguard.toml");
    let cfg = config::parse(&text, "oomguard.toml").unwrap();
    let name_rule = |comm: &str| {
        cfg.rules.iter().any(|r| {
            r.name
                .as_deref()
                .is_some_and(|re| regex_lite::Regex::new(re).unwrap().is_match(comm))
        })
    };
    // comm is at most 15 bytes: journald's is "systemd-journal".
    for comm in ["systemd", "init", "systemd-journal", "oomguard"] {
        assert!(comm.len() <= 15);
        assert!(name_rule(comm), "{comm} is not protected");
    }
    for bystander in ["java", "sshd", "systemd-journald-x", "oomguard2"] {
        assert!(!name_rule(bystander), "{bystander} is protected by name");
    }
    let exe_rule = |exe: &str| {
        cfg.rules.iter().any(|r| {
            r.exe
                .as_deref()
                .is_some_and(|re| regex_lite::Regex::new(re).unwrap().is_match(exe))
        })
    };
    for exe in [
        "/usr/sbin/sshd",
        "/usr/lib/openssh/sshd-session",
        "/usr/libexec/openssh/sshd-session",
        "/usr/sbin/sshd (deleted)",
    ] {
        assert!(exe_rule(exe), "{exe} is not protected");
    }
    for exe in [
        "/home/mallory/sshd",
        "/tmp/usr/sbin/sshd",
        "/usr/sbin/sshd-hog",
    ] {
        assert!(!exe_rule(exe), "{exe} is protected");
    }
}

#[test]
fn desktop_profile_parses_when_uncommented() {
    let (_, text) = repo_file("packaging/oomguard.toml");
    let (server, desktop) = text
        .split_once("# Desktop profile")
        .expect("the desktop profile section");
    // Replace the server's [swap], [psi], [notify] as the comment says, add the desktop rules.
    let desktop: String = desktop
        .lines()
        .skip_while(|l| !l.starts_with("# ["))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut kept = String::new();
    let mut skipping = false;
    for line in server.lines() {
        if line.starts_with('[') {
            skipping = matches!(line, "[swap]" | "[psi]" | "[notify]");
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let cfg = config::parse(&format!("{kept}\n{desktop}\n"), "desktop").unwrap();
    assert!(cfg.notify.dbus && cfg.notify.notify_send);
    assert!(cfg.psi.full.is_some() && cfg.swap.term_below.is_some());
    assert!(cfg.rules.iter().any(|r| r.action == RuleAction::Prefer));
}

#[test]
fn every_key_is_in_the_shipped_config_and_the_docs() {
    let (_, shipped) = repo_file("packaging/oomguard.toml");
    let (_, docs) = repo_file("docs/configuration.md");
    let (_, man5) = repo_file("crates/xtask/man/oomguard.toml.5.roff");
    for (table, key) in all_keys() {
        // A top-level key may be a table: shown as its header, `[memory]` or `[[rules]]`.
        let headers = [format!("[{key}]"), format!("[[{key}]]")];
        let shown = |text: &str| {
            text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || headers.iter().any(|h| l.trim_end() == h.as_str())
            })
        };
        assert!(
            shown(&shipped),
            "{table} {key} is not in packaging/oomguard.toml"
        );
        let in_docs = std::iter::once(format!("`{key}`"))
            .chain(headers.iter().map(|h| format!("`{h}`")))
            .any(|k| docs.contains(&k));
        assert!(in_docs, "{table} {key} is not in docs/configuration.md");
        let in_man = std::iter::once(format!("\\fB{key}\\fR"))
            .chain(headers.iter().map(|h| format!(".SS \"{h}\"")))
            .any(|k| man5.contains(&k));
        assert!(in_man, "{table} {key} is not in oomguard.toml(5)");
    }
}

/// The Kubernetes ConfigMap's oomguard.toml (a YAML block scalar), dedented.
fn configmap_toml(yaml: &str) -> String {
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("oomguard.toml: |"));
    lines.next().expect("oomguard.toml: | in the ConfigMap");
    let body: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    body.iter()
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kubernetes_configmap_config_parses() {
    let (_, yaml) = repo_file("packaging/kubernetes/oomguard.yaml");
    let toml = configmap_toml(&yaml);
    let cfg = config::parse(&toml, "oomguard.yaml ConfigMap").unwrap();
    // The DaemonSet's probes and Service use port 9748.
    assert_eq!(cfg.metrics.listen, "0.0.0.0:9748");
    assert!(yaml.contains("containerPort: 9748") && yaml.contains("port: 9748"));
    assert!(cfg
        .rules
        .iter()
        .any(|r| r.name.as_deref().is_some_and(|n| n.contains("kubelet"))));
}

/// `oomguard watch` exists in this build (it is being written on another branch).
fn has_watch() -> bool {
    let out = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(["watch", "--help"])
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!("skipped: this build has no `oomguard watch` yet");
    }
    out.status.success()
}

/// The arguments after the binary in the unit's ExecStart, without `$OOMGUARD_ARGS`.
fn unit_exec_args() -> Vec<String> {
    let (_, unit) = repo_file("packaging/systemd/oomguard.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in the unit");
    line.split_whitespace()
        .skip(1)
        .filter(|a| !a.starts_with('$'))
        .map(str::to_owned)
        .collect()
}

/// The DaemonSet container's `args:` list.
fn daemonset_args() -> Vec<String> {
    let (_, yaml) = repo_file("packaging/kubernetes/oomguard.yaml");
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "args:");
    lines.next().expect("args: in the DaemonSet");
    lines
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .take_while(|l| l.starts_with("- "))
        .map(|l| l[2..].to_owned())
        .collect()
}

#[test]
fn exec_lines_are_read_from_the_manifests() {
    assert_eq!(
        unit_exec_args(),
        ["watch", "--config", "/etc/oomguard/oomguard.toml"]
    );
    let ds = daemonset_args();
    assert_eq!(ds.first().map(String::as_str), Some("watch"));
    assert!(ds.contains(&"--config=/etc/oomguard/oomguard.toml".to_owned()));
}

#[test]
fn watch_check_accepts_the_shipped_config_with_the_units_flags() {
    if !has_watch() {
        return;
    }
    let (path, _) = repo_file("packaging/oomguard.toml");
    // The unit's own flags, with the config path pointed at the file in this tree.
    let mut args = unit_exec_args();
    let at = args.iter().position(|a| a == "--config").unwrap();
    args[at + 1] = path.display().to_string();
    args.push("--check".into());
    let out = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oomguard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A broken file is refused, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[memory]\nterm_blow = \"1G\"\n").unwrap();
    let out = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(["watch", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("term_blow"));
}

#[test]
fn watch_check_accepts_the_daemonsets_config_and_args() {
    if !has_watch() {
        return;
    }
    let (_, yaml) = repo_file("packaging/kubernetes/oomguard.yaml");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("oomguard.toml");
    std::fs::write(&cfg, configmap_toml(&yaml)).unwrap();
    let args: Vec<String> = daemonset_args()
        .into_iter()
        .map(|a| a.replace("/etc/oomguard/oomguard.toml", &cfg.display().to_string()))
        .chain(["--check".to_owned()])
        .collect();
    let out = assert_cmd::Command::cargo_bin("oomguard")
        .unwrap()
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oomguard {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
