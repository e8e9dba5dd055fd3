//! Facts about the host every subcommand needs, read through the injectable roots: where to
//! read ([`Roots`]), the user names, the kernel's version and badness era, a memory cgroup's
//! directory from the path a user gives, and a memcg's `totalpages`. Shared by `rank`, `doctor`,
//! `watch` and `run`; parsing is `oomguard_core`'s job.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use oomguard_core::badness::{self, Era, KernelVersion};
use oomguard_core::host::cgroup::Limit;
use oomguard_core::host::process::CgroupVersion;

use super::cgroupfs::Memcg;
use super::{CgroupFs, ProcFs};

/// Where to read from (real roots by default; tests inject fake trees).
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc: ProcFs,
    pub cgroup: CgroupFs,
    pub passwd: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: ProcFs::default(),
            cgroup: CgroupFs::default(),
            passwd: PathBuf::from("/etc/passwd"),
        }
    }
}

/// uid → user name from a passwd file (missing or unreadable: empty).
pub fn users(passwd: &std::path::Path) -> HashMap<u32, String> {
    let text = std::fs::read_to_string(passwd).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

/// The kernel version and era of the scanned host.
pub fn kernel_era(procfs: &ProcFs) -> anyhow::Result<(String, Era)> {
    let release = procfs
        .read_osrelease()
        .context("reading the kernel version")?;
    let v = KernelVersion::parse(&release)
        .ok_or_else(|| anyhow!("cannot parse kernel release {release:?}"))?;
    let era = Era::for_version(v).ok_or_else(|| {
        anyhow!("kernel {v} predates 2.6.36: its badness heuristic cannot be reproduced from /proc")
    })?;
    Ok((release, era))
}

/// Finds a cgroup's directory: an absolute path under the cgroup root, or a hierarchy path as
/// `/proc/PID/cgroup` prints it (v1 memory hierarchy first, then v2).
pub fn resolve_cgroup(cgroupfs: &CgroupFs, path: &str) -> anyhow::Result<(CgroupVersion, PathBuf)> {
    let layout = cgroupfs.layout();
    let p = std::path::Path::new(path);
    if p.starts_with(cgroupfs.root()) && p.is_dir() {
        if let Some(v1) = &layout.v1_memory {
            if p.starts_with(v1) {
                return Ok((CgroupVersion::V1, p.to_path_buf()));
            }
        }
        return Ok((CgroupVersion::V2, p.to_path_buf()));
    }
    for (version, base) in [
        (CgroupVersion::V1, layout.v1_memory.clone()),
        (
            CgroupVersion::V2,
            layout.v2.clone().filter(|_| layout.v2_memory_controller),
        ),
    ] {
        if let Some(base) = base {
            let dir = base.join(path.trim_start_matches('/'));
            if dir.is_dir() {
                return Ok((version, dir));
            }
        }
    }
    bail!(
        "no memory cgroup {path:?} under {} (v1 memory: {}, v2 with memory controller: {})",
        cgroupfs.root().display(),
        layout.v1_memory.is_some(),
        layout.v2_memory_controller
    )
}

/// `mem_cgroup_get_max()` of a memcg, in pages, and its memory limit in bytes.
pub fn memcg_totalpages(
    memcg: &Memcg,
    page_size: u64,
    swappiness: u64,
    total_swap_pages: u64,
) -> (u64, Option<u64>) {
    let pcmax = badness::page_counter_max(page_size);
    let pages = |l: Limit| l.bytes().map_or(pcmax, |b| b / page_size);
    match memcg {
        Memcg::V1(m) => {
            let sw = m.swappiness.unwrap_or(swappiness);
            (
                badness::memcg_totalpages_v1(
                    pages(m.limit),
                    m.memsw_limit.map(pages),
                    sw,
                    total_swap_pages,
                ),
                m.limit.bytes(),
            )
        }
        Memcg::V2(m) => (
            badness::memcg_totalpages_v2(
                pages(m.max),
                m.swap_max.map_or(0, pages),
                swappiness,
                total_swap_pages,
            ),
            m.max.bytes(),
        ),
    }
}
