//! Parser tests on literal kernel text; the fixture corpus is tested in `tests/`.

use super::*;
use crate::event::EventKind;

fn parse(text: &str) -> Vec<OomEvent> {
    let mut p = Parser::new();
    for (i, l) in text.lines().enumerate() {
        p.push(l.as_bytes(), i as u64 + 1);
    }
    let mut out = Vec::new();
    p.finish(&mut out);
    out
}

#[test]
fn seed_incident_one_line() {
    let seed = "Jun 4 07:41:59 plumbr kernel: [70667120.897649] Out of memory: Kill process 29957 \
                (java) score 366 or sacrifice child Jun 4 07:41:59 plumbr kernel: \
                [70667120.897701] Killed process 29957 (java) total-vm:2532680kB, \
                anon-rss:1416508kB, file-rss:0kB";
    let ev = parse(seed);
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(e.kind, EventKind::Kill);
    assert_eq!(e.message.as_deref(), Some("Out of memory"));
    assert_eq!((e.pid, e.comm.as_deref()), (Some(29957), Some("java")));
    assert_eq!((e.selected_pid, e.score), (Some(29957), Some(366)));
    assert_eq!(
        (e.total_vm_kb, e.anon_rss_kb, e.file_rss_kb),
        (Some(2532680), Some(1416508), Some(0))
    );
    assert_eq!(e.shmem_rss_kb, None);
    assert_eq!(e.host.as_deref(), Some("plumbr"));
    assert_eq!(e.time.as_deref(), Some("Jun 4 07:41:59"));
    assert_eq!(e.kernel_time_s, Some(70667120.897701));
    assert_eq!(e.constraint, None);
    assert_eq!(e.line, Some(1));
}

#[test]
fn header_belongs_to_the_following_kill() {
    let log = "\
[  10.000000] a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[  10.100000] Out of memory: Killed process 1 (one) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
[  10.200000] b invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO), order=2, oom_score_adj=5
[  10.300000] oom_reaper: reaped process 1 (one), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[  10.400000] Out of memory: Killed process 2 (two) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
";
    let ev = parse(log);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].trigger_comm.as_deref(), Some("a"));
    assert_eq!(ev[0].reaped.as_ref().map(|r| r.pid), Some(1));
    assert_eq!(ev[1].trigger_comm.as_deref(), Some("b"));
    assert_eq!(ev[1].order, Some(2));
    assert_eq!(ev[1].reaped, None);
}

#[test]
fn interleaved_hosts_do_not_mix() {
    let log = "\
May  1 10:00:00 alpha kernel: java invoked oom-killer: gfp_mask=0x0(), order=0, oom_score_adj=0
May  1 10:00:00 beta kernel: node invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=3, oom_score_adj=0
May  1 10:00:00 beta systemd[1]: Killed process 1 (init) by a liar
May  1 10:00:01 alpha kernel: Out of memory: Killed process 10 (java) total-vm:1kB, anon-rss:1kB, file-rss:0kB
May  1 10:00:01 beta kernel: Memory cgroup out of memory: Killed process 20 (node) total-vm:1kB, anon-rss:1kB, file-rss:0kB
";
    let ev = parse(log);
    assert_eq!(ev.len(), 2);
    let a = ev
        .iter()
        .find(|e| e.host.as_deref() == Some("alpha"))
        .unwrap();
    let b = ev
        .iter()
        .find(|e| e.host.as_deref() == Some("beta"))
        .unwrap();
    assert_eq!(
        (a.pid, a.trigger_comm.as_deref(), a.order),
        (Some(10), Some("java"), Some(0))
    );
    assert_eq!(
        (b.pid, b.trigger_comm.as_deref(), b.order),
        (Some(20), Some("node"), Some(3))
    );
    assert_eq!(b.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
}

#[test]
fn wrapped_kill_line_is_rejoined() {
    let log = "\
[  818.356297] Out of memory: Killed process 1234 (java) total-vm:2532680kB, anon-rss:14165
08kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:3000kB oom_score_adj:0
[  818.400000] something else
";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].anon_rss_kb, Some(1416508));
    assert_eq!(ev[0].oom_score_adj, Some(0));
}

#[test]
fn truncated_report_is_incomplete_not_invented() {
    let log =
        "[ 5.000000] x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Incomplete);
    assert_eq!(ev[0].pid, None);
    assert_eq!(ev[0].trigger_comm.as_deref(), Some("x"));
}

#[test]
fn no_killable_then_panic_is_one_event() {
    let log = "\
[ 5.0] x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 5.1] Out of memory and no killable processes...
[ 5.2] Kernel panic - not syncing: System is deadlocked on memory
";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Panic);
}

#[test]
fn group_kill_gives_one_event_per_member() {
    let log = "\
[ 5.0] x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
[ 5.1] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/g,task_memcg=/g,task=x,pid=5,uid=0
[ 5.2] Memory cgroup out of memory: Killed process 5 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
[ 5.3] Tasks in /g are going to be killed due to memory.oom.group set
[ 5.4] Memory cgroup out of memory: Killed process 6 (y) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
[ 5.5] Memory cgroup out of memory: Killed process 7 (z) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0
";
    let ev = parse(log);
    let pids: Vec<_> = ev.iter().map(|e| e.pid).collect();
    assert_eq!(pids, vec![Some(5), Some(6), Some(7)]);
    assert_eq!(ev[1].oom_group.as_deref(), Some("/g"));
    assert_eq!(ev[2].oom_memcg.as_deref(), Some("/g"));
}

#[test]
fn kmsg_escapes_are_undone() {
    let ev = parse("3,9,5000000,-;Memory cgroup out of memory: Killed process 5 (a\\x5cb) total-vm:1kB, anon-rss:1kB, file-rss:0kB");
    assert_eq!(ev[0].comm.as_deref(), Some("a\\b"));
    assert_eq!(ev[0].kernel_time_s, Some(5.0));
}

#[test]
fn journal_json_kernel_only() {
    let log = r#"{"_TRANSPORT":"kernel","MESSAGE":"Out of memory: Killed process 9 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB","_HOSTNAME":"h","__REALTIME_TIMESTAMP":"1700000000000000","_SOURCE_MONOTONIC_TIMESTAMP":"12500000"}
{"_TRANSPORT":"syslog","MESSAGE":"Out of memory: Killed process 1 (init) total-vm:1kB","_HOSTNAME":"h"}
{"_TRANSPORT":"kernel","SYSLOG_FACILITY":"1","MESSAGE":"Out of memory: Killed process 1 (init) total-vm:1kB","_HOSTNAME":"h"}"#;
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].pid, Some(9));
    assert_eq!(ev[0].host.as_deref(), Some("h"));
    assert_eq!(
        ev[0].time.as_deref(),
        Some("2023-11-14T22:13:20.000000+00:00")
    );
    assert_eq!(ev[0].kernel_time_s, Some(12.5));
}

#[test]
fn garbage_never_panics() {
    for s in [
        "",
        "[",
        "[]",
        "[ ]",
        "Killed process",
        "Killed process 1 (",
        "oom-kill:",
        ",,,;",
        "\u{0}\u{1}",
        "[ pid ] name",
        "Jun  4 07:41:59 h kernel:",
        "> > >",
        "{",
        "{\"MESSAGE\":1}",
        "Killed process 99999999999999999999999 (x)",
        "x invoked oom-killer:",
        "\\x",
        "1,2,3,;\\x0",
    ] {
        let _ = parse(s);
    }
}

#[test]
fn bare_killed_line() {
    let ev = parse("[ 1.0] Killed process 7 (abad) total-vm:1kB");
    assert_eq!(ev.len(), 1, "{ev:?}");
}

#[test]
fn prefilter_finds_every_trigger() {
    let pf = Prefilter::new();
    for t in TRIGGERS {
        let hay = format!("[ 1.0] xx {t} yy");
        assert_eq!(pf.find(hay.as_bytes()), Some(10), "{t}");
    }
    // Every line that can open or close a report, in every era's form, is found.
    for line in [
        "Killed process 7 (abad) total-vm:1kB",
        "Killed process 4860 (xfs).",
        "Killed process 12, UID 48, (a) total-vm:10kB",
        "Out of memory: Kill process 29957 (java) score 366 or sacrifice child",
        "Out of memory: kill process 1 (a) score 9 or a child",
        "Out of Memory: Kill process 2 (x) score 9 and children.",
        "Memory cgroup out of memory: Killed process 7231 (python3)",
        "No available memory (MPOL_BIND): Killed process 1 (a)",
        "bash invoked oom-killer: gfp_mask=0x84d0, order=0, oomkilladj=0",
        "oom-killer: gfp_mask=0x200d2, order=0",
        "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null)",
        "oom_reaper: reaped process 1 (one), now anon-rss:0kB",
        "Tasks in /g are going to be killed due to memory.oom.group set",
        "Out of memory and no killable processes...",
        "Kernel panic - not syncing: Out of memory: compulsory panic_on_oom is enabled",
    ] {
        assert!(
            pf.find(line.as_bytes()).is_some(),
            "prefilter misses {line:?}"
        );
    }
}

#[test]
fn kmsg_comm_with_escaped_newline_stays_one_record() {
    let ev = parse(
        r"3,9,5000000,-;Out of memory: Killed process 67 (x\x0a#2 OOM kill\x1b[2J) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
    );
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].comm.as_deref(), Some("x\n#2 OOM kill\x1b[2J"));
}

// Issue 17: reports as people paste them. Each line below is from a public report in
// tests/fixtures/explain/pasted/ (its expected.json names the address).

#[test]
fn padded_pid_in_kill_line() {
    let ev = parse("Jul 22 19:16:26 kodi kernel: Out of memory: Killed process  532 (kodi.bin) total-vm:1561568kB, anon-rss:397140kB, file-rss:112348kB, shmem-rss:0kB, UID:972 pgtables:1724kB oom_score_adj:0");
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].pid, ev[0].uid), (Some(532), Some(972)));
}

#[test]
fn rhel7_uid_after_comm() {
    let ev = parse("May  8 14:05:27 doris-03 kernel: Killed process 18177 (palo_be), UID 0, total-vm:70347780kB, anon-rss:45563572kB, file-rss:0kB, shmem-rss:0kB");
    assert_eq!(ev[0].comm.as_deref(), Some("palo_be"));
    assert_eq!((ev[0].uid, ev[0].total_vm_kb), (Some(0), Some(70347780)));
}

#[test]
fn openwrt_logread_prefix_and_headerless_rows() {
    let log = "\
Sat Jan 25 09:40:15 2020 kern.info kernel: [22042.979908] [ 1039]     0  1039      420       38       4       0        0             0 netifd
Sat Jan 25 09:40:15 2020 kern.err kernel: [22043.040139] Out of memory: Kill process 1039 (netifd) score 2 or sacrifice child
Sat Jan 25 09:40:15 2020 kern.err kernel: [22043.048568] Killed process 1039 (netifd) total-vm:1680kB, anon-rss:148kB, file-rss:4kB, shmem-rss:0kB";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(e.message.as_deref(), Some("Out of memory"));
    assert_eq!(e.time.as_deref(), Some("Sat Jan 25 09:40:15 2020"));
    assert_eq!(e.host, None);
    // The dump header is not in the excerpt: 8 numbers are the 4.x columns.
    assert_eq!(
        (e.uid, e.oom_score_adj, e.tasks.len()),
        (Some(0), Some(0), 1)
    );
}

#[test]
fn selection_alone_is_an_incomplete_event() {
    let ev = parse("Out of memory: Kill process 7429 (java) score 259 or sacrifice child");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind, EventKind::Incomplete);
    assert_eq!(
        (ev[0].pid, ev[0].selected_pid, ev[0].score),
        (None, Some(7429), Some(259))
    );
}

#[test]
fn memcg_fragment_is_an_incomplete_event_with_its_facts() {
    let log = "\
[2016-02-02 07:09:26]  Task in /s/d.scope killed as a result of limit of /s/d.scope
[2016-02-02 07:09:26]  memory: usage 1048576kB, limit 1048576kB, failcnt 78
[2016-02-02 07:09:26]  Memory cgroup stats for /s/d.scope: cache:0KB rss:1048576KB rss_huge:38912KB";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(e.kind, EventKind::Incomplete);
    assert_eq!(e.oom_memcg.as_deref(), Some("/s/d.scope"));
    assert_eq!(
        (e.memcg_usage_kb, e.memcg_failcnt),
        (Some(1048576), Some(78))
    );
    assert_eq!(e.constraint.as_deref(), Some("CONSTRAINT_MEMCG"));
    assert!(e.memory.is_some());
}

#[test]
fn newest_first_report_is_reordered() {
    let log = "\
[44178.540183] oom_reaper: reaped process 1811 (stress-ng), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
[44178.537897] Out of memory: Killed process 1811 (stress-ng) total-vm:43240kB, anon-rss:0kB, file-rss:64kB, shmem-rss:0kB, UID:1000 pgtables:104kB oom_score_adj:1000
[44178.537749] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=stress-ng,pid=1811,uid=1000
[44178.537498] [   1811]  1000  1811     5405        8   106496      643          1000 stress-ng
[44178.537000] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[44178.536000] a invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0";
    let ev = parse(log);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = &ev[0];
    assert_eq!((e.kind, e.pid), (EventKind::Kill, Some(1811)));
    assert_eq!(e.trigger_comm.as_deref(), Some("a"));
    assert_eq!(e.task_memcg.as_deref(), Some("/user.slice"));
    assert_eq!(e.tasks.len(), 1);
    assert_eq!(e.reaped.as_ref().map(|r| r.pid), Some(1811));
}

#[test]
fn duplicated_stamped_records_are_one() {
    let k = "Aug 26 22:28:31 localhost kernel: [10811.575012] Out of memory: Killed process 17251 (maddy) total-vm:2388904kB, anon-rss:646624kB, file-rss:0kB, shmem-rss:0kB, UID:998 pgtables:2348kB oom_score_adj:0";
    assert_eq!(parse(&format!("{k}\n{k}")).len(), 1);
    // Without any stamp a repeated kill line may be a real second kill (2.6.2x).
    let bare = "Killed process 12475 (qemu)";
    assert_eq!(parse(&format!("{bare}\n{bare}")).len(), 2);
}

#[test]
fn terminal_padding_is_not_text() {
    let log = "[ 1.000000] Out of memory: Killed process 7 (x) total-vm:100kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:690      \n68kB oom_score_adj:0";
    let ev = parse(log);
    assert_eq!(ev[0].pgtables_kb, Some(69068));
    assert_eq!(ev[0].oom_score_adj, Some(0));
}

#[test]
fn quote_marker_left_mid_line_by_a_rejoined_wrap() {
    let ev = parse("> Dec 1 15:01:07 cluster1 kernel: Out of memory: Kill process 7963 > (sge_qmaster) score 948 or sacrifice child");
    assert_eq!(ev[0].selected_comm.as_deref(), Some("sge_qmaster"));
    assert_eq!(ev[0].host.as_deref(), Some("cluster1"));
}

/// `push_context` skips lines that `may_hold_task_row` rules out before stripping them: that
/// must never skip a line that is a task row once stripped. Checked on every line of every
/// fixture (rows of every era and transport among them) and on edge cases.
#[test]
fn row_prefilter_never_rejects_a_row() {
    fn is_row(line: &str) -> bool {
        matches!(prefix::strip(line), Stripped::Kernel(_, body)
            if matches!(lines::classify(body), Some(Line::TaskRow(_))))
    }
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/explain");
    let mut dirs = vec![root];
    let (mut rows, mut rejected) = (0, 0);
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            for line in String::from_utf8_lossy(&bytes).lines() {
                let row = is_row(line);
                rows += usize::from(row);
                if !may_hold_task_row(line) {
                    rejected += 1;
                    assert!(!row, "{}: row rejected: {line}", p.display());
                }
            }
        }
    }
    // The corpus has rows and has lines the filter drops, so the check above checked something.
    assert!(
        rows > 300 && rejected > 1000,
        "{rows} rows, {rejected} rejected"
    );
    for (line, want) in [
        ("[ 1234]     0  1234  100  20  0  0  0 x", true),
        ("[12.345678] eth0: link up", false),
        ("[a [12]", true),
        ("[[[[ ]", false),
        ("]]][7 ]", true),
        ("no brackets at all", false),
        ("[ T1234] Killed", false),
    ] {
        assert_eq!(may_hold_task_row(line), want, "{line}");
    }
}

#[test]
fn headerless_seven_number_rows_name_their_middle_columns_from_the_values() {
    // Rows of a 4.15+ dump pasted without its header (grafana/loki issue 196): the fifth number
    // is pgtables_bytes, a whole number of pages, so it is read as such, not left unnamed (which
    // made replay take the dump for a 2.6.36-3.6 one and cap every score at 1000).
    let log = "\
May 10 14:48:20 ip-172-25-4-213 kernel: [4219389.090346] [23324]  1000 23324  4383314  3919808 31670272        0             0 loki
May 10 14:48:20 ip-172-25-4-213 kernel: [4219389.090349] [  410]   999   410    55614     9873   245760        0          1000 netdata
May 10 14:48:20 ip-172-25-4-213 kernel: [4219389.090357] Out of memory: Kill process 410 (netdata) score 1002 or sacrifice child";
    let ev = parse(log);
    assert_eq!(ev.len(), 1);
    let t = &ev[0].tasks;
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[0].pgtables_bytes, t[0].swapents_pages, t[0].oom_score_adj),
        (Some(31670272), Some(0), Some(0))
    );
    assert_eq!(
        (t[1].pgtables_bytes, t[1].oom_score_adj),
        (Some(245760), Some(1000))
    );
    // A 3.x row whose sixth number cannot be an oom_adj (-17..=15) is nr_ptes swapents.
    let c = lines::infer_columns(
        "[ 1234]  1000  1234   500000   120000      230      512             0 java",
    );
    assert!(c.is_some_and(
        |c| c.contains(&lines::Column::NrPtes) && c.contains(&lines::Column::Swapents)
    ));
    // RHEL 6's `cpu oom_adj oom_score_adj` and an undecidable 3.x row stay unnamed.
    for row in [
        "[15947]     0 15947     2657       20   3     -17         -1000 init",
        "[ 1234]  1000  1234   500000   120000      230        0             0 java",
    ] {
        let c = lines::infer_columns(row).unwrap_or_default();
        assert!(
            !c.contains(&lines::Column::NrPtes) && !c.contains(&lines::Column::PgtablesBytes),
            "{row}"
        );
        assert_eq!(c.last(), Some(&lines::Column::OomScoreAdj));
    }
}

#[test]
fn guest_console_log_keeps_rows_time_and_kill() {
    // vmware.log lines of a guest's console (vmware/photon#1535): rows without their header
    // give the victim's uid and oom_score_adj; the log's own time is the record's time.
    let ev = parse(
        "2023-12-04T10:49:30.125Z In(05) vcpu-5 - Guest: <6>[39290745.072508] [   2625]  1000  2625  5588903   137935  8011776        0           999 node\n\
         2023-12-04T10:49:30.125Z In(05) vcpu-5 - Guest: <3>[39290745.072552] Memory cgroup out of memory: Kill process 2625 (node) score 1905 or sacrifice child\n\
         2023-12-04T10:49:30.125Z In(05) vcpu-5 - Guest: <3>[39290745.072599] Killed process 2625 (node) total-vm:22355612kB, anon-rss:517580kB, file-rss:34160kB, shmem-rss:0kB\n",
    );
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(
        (e.pid, e.uid, e.oom_score_adj),
        (Some(2625), Some(1000), Some(999))
    );
    assert_eq!(e.time.as_deref(), Some("2023-12-04T10:49:30.125Z"));
    assert_eq!(e.kernel_time_s, Some(39290745.072599));
    assert_eq!(e.tasks.len(), 1);
}

#[test]
fn a_record_from_a_syslog_file_and_again_from_dmesg_is_one_kill() {
    // `grep -r` over /var/log (the same line in kern.log and syslog), then `dmesg | grep`.
    let k = "Memory cgroup out of memory: Killed process 3985 (malloc) total-vm:1211812kB, anon-rss:205140kB, file-rss:872kB, shmem-rss:0kB, UID:1000 pgtables:524kB oom_score_adj:0";
    let log = format!(
        "/var/log/kern.log:Jan 10 01:27:05 vbox kernel: [ 1683.797227] {k}\n\
         /var/log/syslog:Jan 10 01:27:05 vbox kernel: [ 1683.797227] {k}\n\
         [ 1683.797227] {k}\n"
    );
    let ev = parse(&log);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].host.as_deref(), Some("vbox"));
    // Another stamp, or another host's copy with the same stamp, is another kill.
    let other = format!("[ 1683.797227] {k}\n[ 1690.000001] {k}\n");
    assert_eq!(parse(&other).len(), 2);
    let hosts = format!(
        "Jan 10 01:27:05 a kernel: [ 1683.797227] {k}\nJan 10 01:27:05 b kernel: [ 1683.797227] {k}\n"
    );
    assert_eq!(parse(&hosts).len(), 2);
}
