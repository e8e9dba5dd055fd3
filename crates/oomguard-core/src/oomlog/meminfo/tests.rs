//! The memory dump's line grammar and accumulation, on literal kernel text of each era.

use super::*;

fn acc(lines: &str) -> MemAcc {
    let mut a = MemAcc::default();
    for l in lines.lines() {
        if let Some(m) = classify(l) {
            a.apply(m);
        } else {
            a.end_stat_dump();
        }
    }
    a
}

#[test]
fn modern_block_every_field() {
    // 6.12 (Raspberry Pi), from eras/6.12-rpi-rss_anon-raw-truncated.log.
    let a = acc("active_anon:27124 inactive_anon:18649 isolated_anon:0
 active_file:176 inactive_file:40 isolated_file:0
 unevictable:0 dirty:3 writeback:0
 slab_reclaimable:4871 slab_unreclaimable:6491
 mapped:5 shmem:1 pagetables:1214
 sec_pagetables:0 bounce:0
 kernel_misc_reclaimable:0
 free:4345 free_pcp:142 free_cma:0
Node 0 active_anon:108496kB inactive_anon:74596kB active_file:780kB inactive_file:160kB unevictable:0kB isolated(anon):0kB isolated(file):0kB mapped:20kB dirty:12kB writeback:0kB shmem:4kB writeback_tmp:0kB kernel_stack:3024kB pagetables:4856kB
Node 0 DMA free:17380kB boost:0kB min:16384kB low:20480kB high:24576kB reserved_highatomic:0KB active_anon:46592kB present:458752kB managed:426072kB mlocked:0kB
lowmem_reserve[]: 0 0 0 0
Node 0 DMA: 45*4kB (U) 40*8kB (UE) 131*16kB (U) 123*32kB (UE) 45*64kB (UE) 21*128kB (UE) 9*256kB (UE) 6*512kB (U) 0*1024kB 0*2048kB 0*4096kB = 17476kB
Node 0 hugepages_total=2 hugepages_free=1 hugepages_surp=0 hugepages_size=2048kB
572 total pagecache pages
292 pages in swap cache
Free swap  = 0kB
Total swap = 425980kB
114688 pages RAM
0 pages HighMem/MovableOnly
8170 pages reserved
65536 pages cma reserved");
    let m = a.finish(None).unwrap();
    assert_eq!(m.page_size_bytes, 4096);
    assert_eq!(m.page_size_source, PageSizeSource::MemInfo);
    let i = m.mem_info.unwrap();
    let p = |n: u64| Some(n * 4096);
    assert_eq!(i.active_anon_bytes, p(27124));
    assert_eq!(i.inactive_anon_bytes, p(18649));
    assert_eq!(i.isolated_anon_bytes, p(0));
    assert_eq!(i.active_file_bytes, p(176));
    assert_eq!(i.inactive_file_bytes, p(40));
    assert_eq!(i.isolated_file_bytes, p(0));
    assert_eq!(i.unevictable_bytes, p(0));
    assert_eq!(i.dirty_bytes, p(3));
    assert_eq!(i.writeback_bytes, p(0));
    assert_eq!(i.unstable_bytes, None);
    assert_eq!(i.slab_reclaimable_bytes, p(4871));
    assert_eq!(i.slab_unreclaimable_bytes, p(6491));
    assert_eq!(i.slab_bytes, None);
    assert_eq!(i.mapped_bytes, p(5));
    assert_eq!(i.shmem_bytes, p(1));
    assert_eq!(i.pagetables_bytes, p(1214));
    assert_eq!(i.sec_pagetables_bytes, p(0));
    assert_eq!(i.bounce_bytes, p(0));
    assert_eq!(i.kernel_misc_reclaimable_bytes, p(0));
    assert_eq!(i.free_bytes, p(4345));
    assert_eq!(i.free_pcp_bytes, p(142));
    assert_eq!(i.free_cma_bytes, p(0));
    assert_eq!(i.kernel_stack_bytes, Some(3024 * 1024));
    assert_eq!(i.zones.len(), 1);
    let z = &i.zones[0];
    assert_eq!((z.node, z.name.as_str()), (Some(0), "DMA"));
    assert_eq!(z.free_bytes, Some(17380 * 1024));
    assert_eq!(z.min_bytes, Some(16384 * 1024));
    assert_eq!(z.low_bytes, Some(20480 * 1024));
    assert_eq!(z.high_bytes, Some(24576 * 1024));
    assert_eq!(z.present_bytes, Some(458752 * 1024));
    assert_eq!(z.managed_bytes, Some(426072 * 1024));
    assert_eq!(z.free_blocks.len(), 11);
    assert_eq!(
        z.free_blocks[3],
        FreeBlocks {
            block_bytes: 32 * 1024,
            count: 123
        }
    );
    assert_eq!(
        i.hugepages,
        vec![HugePages {
            node: Some(0),
            size_bytes: 2 << 20,
            total: 2,
            free: 1,
            surplus: 0
        }]
    );
    assert_eq!(i.pagecache_bytes, p(572));
    assert_eq!(i.swap_cache_bytes, p(292));
    assert_eq!(i.swap_free_bytes, Some(0));
    assert_eq!(i.swap_total_bytes, Some(425980 * 1024));
    assert_eq!(i.ram_bytes, p(114688));
    assert_eq!(i.highmem_bytes, p(0));
    assert_eq!(i.reserved_bytes, p(8170));
    assert_eq!(i.cma_reserved_bytes, p(65536));
    assert_eq!(m.memcg_stat, None);
}

#[test]
fn rsyslog_012_and_old_eras() {
    let a = acc("active_anon:7355653 inactive_anon:660960 isolated_anon:0#012 active_file:1263 inactive_file:1167 isolated_file:32#012 unevictable:0 dirty:4 writeback:0 unstable:0#012 slab_reclaimable:27412 slab_unreclaimable:13708#012 mapped:4818 shmem:87896 pagetables:25222 bounce:0#012 free:39513 free_pcp:2958 free_cma:0");
    let i = a.finish(None).unwrap().mem_info.unwrap();
    assert_eq!(i.isolated_file_bytes, Some(32 * 4096));
    assert_eq!(i.unstable_bytes, Some(0));
    assert_eq!(i.shmem_bytes, Some(87896 * 4096));
    assert_eq!(i.free_cma_bytes, Some(0));
    // 2.6.28: capitalised first key, lumped slab, "pages shared".
    let a = acc("Active_anon:198411 active_file:112 inactive_anon:50212
 inactive_file:180 unevictable:0 dirty:0 writeback:0 unstable:0
 free:1893 slab:3102 mapped:221 pagetables:1130 bounce:0
DMA free:3516kB min:64kB low:80kB high:96kB active_anon:5120kB present:15868kB pages_scanned:14712 all_unreclaimable? yes
DMA: 1*4kB 1*8kB 1*16kB 1*32kB 0*64kB 1*128kB 1*256kB 0*512kB 1*1024kB 1*2048kB 0*4096kB = 3516kB
1290 pages shared
253112 pages non-shared
4861 pages reserved");
    let i = a.finish(None).unwrap().mem_info.unwrap();
    assert_eq!(i.active_anon_bytes, Some(198411 * 4096));
    assert_eq!(i.slab_bytes, Some(3102 * 4096));
    assert_eq!(i.shared_bytes, Some(1290 * 4096));
    assert_eq!(i.non_shared_bytes, Some(253112 * 4096));
    assert_eq!(i.zones[0].node, None);
    assert_eq!(i.zones[0].free_blocks[9].count, 1);
}

#[test]
fn memcg_stat_formats() {
    // 6.18 cgroup v1 (this project's real fixture): local then total_ figures.
    let a = acc("Memory cgroup stats for /a/b:
cache 0
rss 66969600
shmem 0
mapped_file 0
hierarchical_memory_limit 67108864
total_cache 4096
total_rss 66969601
total_shmem 0
Tasks state (memory values in pages):");
    let s = a.finish(None).unwrap().memcg_stat.unwrap();
    assert_eq!(s.format, MemcgStatFormat::V1);
    assert_eq!((s.cgroup.as_str(), s.cgroups), ("/a/b", 1));
    assert_eq!(s.anon_bytes, Some(66969601));
    assert_eq!(s.file_bytes, Some(4096));
    assert_eq!(s.hierarchical_memory_limit_bytes, Some(67108864));
    // ≤4.19 one line per cgroup, summed.
    let a = acc("Memory cgroup stats for /k: cache:4KB rss:8KB shmem:0KB
Memory cgroup stats for /k/c: cache:0KB rss:19800KB rss_huge:0KB");
    let s = a.finish(None).unwrap().memcg_stat.unwrap();
    assert_eq!(s.format, MemcgStatFormat::V1Line);
    assert_eq!((s.cgroups, s.anon_bytes), (2, Some(19808 * 1024)));
    // v2; a `key value` line outside a dump is ignored.
    let a = acc("anon 5
Memory cgroup stats for /x:
anon 98742272
file 2469888
slab_unreclaimable 443144");
    let s = a.finish(None).unwrap().memcg_stat.unwrap();
    assert_eq!(s.format, MemcgStatFormat::V2);
    assert_eq!(s.anon_bytes, Some(98742272));
    assert_eq!(s.slab_unreclaimable_bytes, Some(443144));
}

#[test]
fn not_memory_lines() {
    for l in [
        "anon-rss:0kB, file-rss:0kB",
        "Call Trace:",
        "free something",
        "Node 0 DMA per-cpu:",
        "CPU    0: hi:    0, btch:   1 usd:   0",
        "lowmem_reserve[]: 0 1234 7890 7890",
    ] {
        assert_eq!(classify(l), None, "{l}");
    }
}
