//! Tests of `diagnosis`.

use super::*;

fn kill() -> OomEvent {
    let mut e = OomEvent::new(EventKind::Kill);
    e.pid = Some(10);
    e.comm = Some("java".into());
    e.anon_rss_kb = Some(1_000_000);
    e.file_rss_kb = Some(0);
    e
}

fn has(f: &[Finding], needle: &str) -> bool {
    f.iter().any(|x| x.text.contains(needle))
}

#[test]
fn memcg_limit_and_heap() {
    let mut e = kill();
    e.constraint = Some("CONSTRAINT_MEMCG".into());
    e.oom_memcg = Some("/svc".into());
    e.memcg_usage_kb = Some(1_048_576);
    e.memcg_limit_kb = Some(1_048_576);
    let f = findings(&e);
    assert!(has(
        &f,
        "Memory cgroup /svc reached its limit: 1024.0 MiB used of 1024.0 MiB"
    ));
    assert!(has(&f, "95% of the limit"));
    assert!(!has(&f, "whole machine"));
    e.anon_rss_kb = Some(10);
    assert!(!has(&findings(&e), "of the limit)"));
}

#[test]
fn global_and_order_and_child() {
    let mut e = kill();
    e.message = Some("Out of memory".into());
    e.order = Some(3);
    e.selected_pid = Some(9);
    e.selected_comm = Some("parent".into());
    let f = findings(&e);
    assert!(has(&f, "whole machine ran out"));
    assert!(has(&f, "order 3"));
    assert!(has(&f, "selected parent (pid 9)"));
    e.order = Some(0);
    e.selected_pid = Some(10);
    let f = findings(&e);
    assert!(!has(&f, "contiguous"));
    assert!(!has(&f, "sacrifice"));
}

#[test]
fn victim_not_largest_names_the_consumer() {
    let mut e = kill();
    e.anon_rss_kb = Some(4);
    e.oom_score_adj = Some(900);
    e.tasks = vec![
        TaskRow {
            pid: 10,
            rss_pages: Some(1),
            oom_score_adj: Some(900),
            name: "java".into(),
            ..Default::default()
        },
        TaskRow {
            pid: 11,
            rss_pages: Some(262_144),
            oom_score_adj: Some(-500),
            name: "db".into(),
            ..Default::default()
        },
    ];
    let f = findings(&e);
    assert!(has(&f, "db (pid 11) held 1024.0 MiB"), "{f:?}");
    assert!(has(&f, "preferred victim"));
    e.tasks.swap(0, 1);
    e.tasks[0].rss_pages = Some(0);
    assert!(!has(&findings(&e), "was not the largest"));
}

#[test]
fn page_size_inferred_from_the_victim_row() {
    let mut e = kill();
    e.anon_rss_kb = Some(64 * 1000);
    e.tasks = vec![TaskRow {
        pid: 10,
        rss_pages: Some(1000),
        ..Default::default()
    }];
    assert_eq!(page_bytes(&e), 65536);
    e.tasks[0].rss_pages = Some(16000);
    assert_eq!(page_bytes(&e), 4096);
}

use crate::event::{
    FreeBlocks, HugePages, MemInfo, MemcgStat, MemcgStatFormat, Memory, PageSizeSource, Zone,
};

const G: u64 = 1 << 30;
const M: u64 = 1 << 20;

/// A global OOM on a 16 GiB machine, healthy apart from what each test changes: 12 GiB
/// anon, 1 GiB page cache, 1 GiB free, swap half used.
fn global(f: impl FnOnce(&mut MemInfo)) -> OomEvent {
    let mut e = kill();
    e.message = Some("Out of memory".into());
    e.constraint = Some("CONSTRAINT_NONE".into());
    e.anon_rss_kb = Some(4 * G / KIB);
    let mut i = MemInfo {
        ram_bytes: Some(16 * G),
        active_anon_bytes: Some(12 * G),
        active_file_bytes: Some(G),
        slab_unreclaimable_bytes: Some(200 * M),
        slab_reclaimable_bytes: Some(100 * M),
        shmem_bytes: Some(100 * M),
        free_bytes: Some(G),
        swap_total_bytes: Some(4 * G),
        swap_free_bytes: Some(2 * G),
        zones: vec![Zone {
            node: Some(0),
            name: "Normal".into(),
            high_bytes: Some(64 * M),
            free_blocks: vec![FreeBlocks {
                block_bytes: 4096,
                count: 100,
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    f(&mut i);
    e.memory = Some(Memory {
        page_size_bytes: 4096,
        page_size_source: PageSizeSource::MemInfo,
        mem_info: Some(i),
        memcg_stat: None,
    });
    e
}

#[test]
fn healthy_global_fires_no_memory_rule() {
    let f = memory_findings(&global(|_| {}));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn slab_leak_fires_and_not() {
    let e = global(|i| {
        i.slab_unreclaimable_bytes = Some(6 * G);
        i.active_anon_bytes = Some(6 * G);
        i.unreclaimable_slab = vec![crate::event::SlabCache {
            name: "kmalloc-2k".into(),
            used_bytes: 5 * G,
            total_bytes: 5 * G,
        }];
    });
    let f = memory_findings(&e);
    assert!(
        has(
            &f,
            "Unreclaimable kernel slab held 6144.0 MiB, 37.5% of RAM"
        ),
        "{f:?}"
    );
    assert!(has(&f, "Killing processes will not help"));
    assert!(has(&f, "kmalloc-2k 5120.0 MiB"));
    let e = global(|i| i.slab_unreclaimable_bytes = Some(3 * G));
    assert!(
        !has(&memory_findings(&e), "slab held"),
        "18.75% stays quiet"
    );
}

#[test]
fn shmem_fires_and_not() {
    let e = global(|i| i.shmem_bytes = Some(4 * G));
    let f = memory_findings(&e);
    assert!(
        has(&f, "shmem/tmpfs held 4096.0 MiB, 25.0% of RAM"),
        "{f:?}"
    );
    assert!(has(&f, "Killing a process does not free them"));
    assert!(!has(
        &memory_findings(&global(|i| i.shmem_bytes = Some(3 * G))),
        "shmem/tmpfs held"
    ));
}

#[test]
fn unused_huge_pages_fire_and_not() {
    let pool = |free| HugePages {
        node: Some(0),
        size_bytes: 2 * M,
        total: 2048,
        free,
        surplus: 0,
    };
    let f = memory_findings(&global(|i| i.hugepages = vec![pool(1024)]));
    assert!(has(&f, "4096.0 MiB is reserved as huge pages"), "{f:?}");
    assert!(
        has(&f, "2048.0 MiB of it (12.5% of RAM) sat unused"),
        "{f:?}"
    );
    // All in use: nothing wasted.
    assert!(!has(
        &memory_findings(&global(|i| i.hugepages = vec![pool(0)])),
        "huge pages"
    ));
}

#[test]
fn small_victim_names_the_consumer_and_not() {
    let mut e = global(|_| {});
    e.anon_rss_kb = Some(100 * M / KIB);
    e.tasks = vec![
        TaskRow {
            pid: 10,
            rss_pages: Some(25_600),
            name: "java".into(),
            ..Default::default()
        },
        TaskRow {
            pid: 77,
            rss_pages: Some(3_000_000),
            name: "postgres".into(),
            ..Default::default()
        },
    ];
    let f = memory_findings(&e);
    assert!(
        has(&f, "The victim java held only 100.0 MiB, 0.6% of RAM"),
        "{f:?}"
    );
    assert!(
        has(&f, "The memory was in user anonymous: 12188.0 MiB (74.4%)"),
        "{f:?}"
    );
    assert!(has(&f, "postgres (pid 77)"));
    e.anon_rss_kb = Some(4 * G / KIB);
    assert!(!has(&memory_findings(&e), "held only"));
}

#[test]
fn worker_pool_fires_and_not() {
    let mut e = global(|_| {});
    e.tasks = (0..10)
        .map(|n| TaskRow {
            pid: 100 + n,
            rss_pages: Some(10_000),
            name: "php-fpm".into(),
            ..Default::default()
        })
        .chain([TaskRow {
            pid: 9,
            rss_pages: Some(20_000),
            name: "nginx".into(),
            ..Default::default()
        }])
        .collect();
    let f = memory_findings(&e);
    assert!(
        has(
            &f,
            "10 processes named php-fpm together held 390.6 MiB, 83% of the task dump's RSS"
        ),
        "{f:?}"
    );
    e.tasks.truncate(7);
    assert!(!has(&memory_findings(&e), "processes named"));
}

#[test]
fn fragmentation_fires_and_not() {
    let mut e = global(|_| {});
    e.order = Some(3);
    let f = findings(&e);
    assert!(
        has(&f, "Memory was free but fragmented: 1024.0 MiB free"),
        "{f:?}"
    );
    assert!(has(
        &f,
        "needed 32 kB contiguous (order 3); the largest free block in any zone was 4 kB"
    ));
    assert!(!has(&f, "may have been fragmented rather than exhausted"));
    e.order = Some(0);
    assert!(!has(&findings(&e), "fragmented"));
    // Order 3 but hardly anything free: exhaustion, not fragmentation.
    let mut e = global(|i| i.free_bytes = Some(100 * M));
    e.order = Some(3);
    assert!(!has(&findings(&e), "fragmented"));
}

#[test]
fn swap_full_or_absent_and_not() {
    let f = memory_findings(&global(|i| i.swap_free_bytes = Some(100 * M)));
    assert!(
        has(&f, "Swap was full: 3996.0 MiB of 4096.0 MiB in use"),
        "{f:?}"
    );
    let f = memory_findings(&global(|i| {
        i.swap_total_bytes = Some(0);
        i.swap_free_bytes = Some(0);
    }));
    assert!(has(&f, "There was no swap"));
    assert!(!has(&memory_findings(&global(|_| {})), "swap"));
}

fn memcg(anon: u64, file: u64, failcnt: u64) -> OomEvent {
    let mut e = kill();
    e.constraint = Some("CONSTRAINT_MEMCG".into());
    e.oom_memcg = Some("/app".into());
    e.memcg_usage_kb = Some((anon + file) / KIB);
    e.memcg_limit_kb = Some((anon + file) / KIB);
    e.memcg_failcnt = Some(failcnt);
    e.memory = Some(Memory {
        page_size_bytes: 4096,
        page_size_source: PageSizeSource::Default,
        mem_info: None,
        memcg_stat: Some(MemcgStat {
            format: MemcgStatFormat::V2,
            cgroup: "/app".into(),
            cgroups: 1,
            anon_bytes: Some(anon),
            file_bytes: Some(file),
            shmem_bytes: Some(0),
            file_mapped_bytes: None,
            file_dirty_bytes: None,
            file_writeback_bytes: None,
            anon_thp_bytes: None,
            kernel_bytes: None,
            kernel_stack_bytes: None,
            pagetables_bytes: None,
            sec_pagetables_bytes: None,
            percpu_bytes: None,
            sock_bytes: None,
            vmalloc_bytes: None,
            slab_reclaimable_bytes: None,
            slab_unreclaimable_bytes: None,
            swapcached_bytes: None,
            swap_bytes: None,
            zswap_bytes: None,
            active_anon_bytes: None,
            inactive_anon_bytes: None,
            active_file_bytes: None,
            inactive_file_bytes: None,
            unevictable_bytes: None,
            hierarchical_memory_limit_bytes: None,
            hierarchical_memsw_limit_bytes: None,
        }),
    });
    e
}

#[test]
fn memcg_limit_too_small_fires_and_not() {
    let f = findings(&memcg(1000 * M, 24 * M, 6402));
    assert!(
        has(
            &f,
            "The limit of /app (1024.0 MiB) is far below what its workload uses: 1000.0 MiB"
        ),
        "{f:?}"
    );
    assert!(has(&f, "hit 6402 times"));
    // Mostly page cache: the cgroup could reclaim, the limit is not the problem.
    assert!(!has(&findings(&memcg(500 * M, 524 * M, 6402)), "far below"));
    // A single hit and no sign of a bigger workload: say nothing.
    assert!(!has(&findings(&memcg(1000 * M, 24 * M, 3)), "far below"));
}
