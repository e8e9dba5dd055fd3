//! Memory-cgroup reader for both hierarchies, rooted at `/sys/fs/cgroup` by default. It finds the
//! layout (pure v2, hybrid with v2 at `unified/`, v1 memory controller at `memory/`), reads a
//! memcg's files into typed values and lists a memcg subtree's processes in the order the kernel's
//! memcg OOM scan visits them (as near as userspace can see it).

use super::{optional, ReadError};
use oomguard_core::host::cgroup::{self as cg, Limit, MemoryEventsV2, MemoryStat, OomControlV1};
use oomguard_core::host::process::CgroupVersion;
use oomguard_core::host::system::{self, Pressure};
use oomguard_core::host::ParseError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Reader of a cgroup filesystem tree rooted at `root`.
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
}

impl Default for CgroupFs {
    fn default() -> Self {
        CgroupFs::new("/sys/fs/cgroup")
    }
}

/// Where the memory controller lives on this host.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CgroupLayout {
    /// The v1 memory hierarchy's mount (`<root>/memory`), if mounted.
    pub v1_memory: Option<PathBuf>,
    /// The v2 hierarchy's mount (`<root>` or `<root>/unified`), if mounted.
    pub v2: Option<PathBuf>,
    /// The v2 hierarchy has the memory controller enabled at its root.
    pub v2_memory_controller: bool,
}

/// A v1 memcg's files.
#[derive(Debug, Clone, Serialize)]
pub struct MemcgV1 {
    pub usage_bytes: u64,
    pub limit: Limit,
    /// `None` when swap accounting is off (no `memory.memsw.*` files).
    pub memsw_usage_bytes: Option<u64>,
    pub memsw_limit: Option<Limit>,
    pub failcnt: u64,
    pub oom_control: OomControlV1,
    pub stat: MemoryStat,
    pub swappiness: Option<u64>,
}

/// A v2 memcg's files. Optional ones are absent at the root cgroup or on older kernels.
#[derive(Debug, Clone, Serialize)]
pub struct MemcgV2 {
    pub current_bytes: u64,
    pub max: Limit,
    pub high: Option<Limit>,
    pub low_bytes: Option<u64>,
    pub min_bytes: Option<u64>,
    pub swap_current_bytes: Option<u64>,
    pub swap_max: Option<Limit>,
    pub events: MemoryEventsV2,
    pub events_local: Option<MemoryEventsV2>,
    pub stat: MemoryStat,
    pub pressure: Option<Pressure>,
    pub oom_group: Option<bool>,
}

/// Either hierarchy's memcg.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "version", rename_all = "lowercase")]
// Read once per cgroup in an audit, never stored in bulk: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Memcg {
    V1(MemcgV1),
    V2(MemcgV2),
}

fn read(path: PathBuf) -> Result<(PathBuf, Vec<u8>), ReadError> {
    match std::fs::read(&path) {
        Ok(t) => Ok((path, t)),
        Err(e) => Err(ReadError::from_io(path, e, false)),
    }
}

fn parsed<T>(
    dir: &Path,
    file: &str,
    parse: impl FnOnce(&[u8]) -> Result<T, ParseError>,
) -> Result<T, ReadError> {
    let (path, text) = read(dir.join(file))?;
    parse(&text).map_err(|e| ReadError::malformed(path, e))
}

impl CgroupFs {
    /// A reader rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CgroupFs { root: root.into() }
    }

    /// The root this reader reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Detects the layout.
    pub fn layout(&self) -> CgroupLayout {
        let v1 = self.root.join("memory");
        let v1_memory = v1.join("memory.usage_in_bytes").exists().then_some(v1);
        let v2 = if self.root.join("cgroup.controllers").exists() {
            Some(self.root.clone())
        } else if self.root.join("unified/cgroup.controllers").exists() {
            Some(self.root.join("unified"))
        } else {
            None
        };
        let v2_memory_controller = v2
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("cgroup.controllers")).ok())
            .is_some_and(|c| c.split_whitespace().any(|w| w == "memory"));
        CgroupLayout {
            v1_memory,
            v2,
            v2_memory_controller,
        }
    }

    /// The directory of a memcg given its `/proc/PID/cgroup` path and hierarchy.
    pub fn memcg_dir(&self, version: CgroupVersion, path: &str) -> Option<PathBuf> {
        let layout = self.layout();
        let base = match version {
            CgroupVersion::V1 => layout.v1_memory?,
            CgroupVersion::V2 => layout.v2?,
        };
        Some(base.join(path.trim_start_matches('/')))
    }

    /// Reads a v1 memcg directory.
    pub fn read_memcg_v1(&self, dir: &Path) -> Result<MemcgV1, ReadError> {
        Ok(MemcgV1 {
            usage_bytes: parsed(dir, "memory.usage_in_bytes", |t| {
                cg::parse_counter("memory.usage_in_bytes", t)
            })?,
            limit: parsed(dir, "memory.limit_in_bytes", |t| {
                cg::parse_v1_limit("memory.limit_in_bytes", t)
            })?,
            memsw_usage_bytes: optional(parsed(dir, "memory.memsw.usage_in_bytes", |t| {
                cg::parse_counter("memory.memsw.usage_in_bytes", t)
            }))?,
            memsw_limit: optional(parsed(dir, "memory.memsw.limit_in_bytes", |t| {
                cg::parse_v1_limit("memory.memsw.limit_in_bytes", t)
            }))?,
            failcnt: parsed(dir, "memory.failcnt", |t| {
                cg::parse_counter("memory.failcnt", t)
            })?,
            oom_control: parsed(dir, "memory.oom_control", cg::parse_v1_oom_control)?,
            stat: parsed(dir, "memory.stat", cg::parse_memory_stat)?,
            swappiness: optional(parsed(dir, "memory.swappiness", |t| {
                cg::parse_counter("memory.swappiness", t)
            }))?,
        })
    }

    /// Reads a v2 memcg directory (not the root: the root has no `memory.max`).
    pub fn read_memcg_v2(&self, dir: &Path) -> Result<MemcgV2, ReadError> {
        let limit = |f: &'static str| optional(parsed(dir, f, |t| cg::parse_v2_limit(f, t)));
        let counter = |f: &'static str| optional(parsed(dir, f, |t| cg::parse_counter(f, t)));
        Ok(MemcgV2 {
            current_bytes: parsed(dir, "memory.current", |t| {
                cg::parse_counter("memory.current", t)
            })?,
            max: parsed(dir, "memory.max", |t| cg::parse_v2_limit("memory.max", t))?,
            high: limit("memory.high")?,
            low_bytes: counter("memory.low")?,
            min_bytes: counter("memory.min")?,
            swap_current_bytes: counter("memory.swap.current")?,
            swap_max: limit("memory.swap.max")?,
            events: parsed(dir, "memory.events", |t| {
                cg::parse_v2_events("memory.events", t)
            })?,
            events_local: optional(parsed(dir, "memory.events.local", |t| {
                cg::parse_v2_events("memory.events.local", t)
            }))?,
            stat: parsed(dir, "memory.stat", cg::parse_memory_stat)?,
            pressure: optional(parsed(dir, "memory.pressure", system::parse_pressure))?,
            oom_group: optional(parsed(dir, "memory.oom.group", cg::parse_v2_oom_group))?,
        })
    }

    /// The usage counter alone (`memory.current` / `memory.usage_in_bytes`): one read, for loops
    /// that poll a memcg every 100 ms, where [`CgroupFs::read_memcg`]'s eight files would be waste.
    pub fn read_usage_bytes(&self, version: CgroupVersion, dir: &Path) -> Result<u64, ReadError> {
        let file = match version {
            CgroupVersion::V1 => "memory.usage_in_bytes",
            CgroupVersion::V2 => "memory.current",
        };
        parsed(dir, file, |t| cg::parse_counter(file, t))
    }

    /// The hard limit alone (`memory.max` / `memory.limit_in_bytes`), as the kernel holds it
    /// (rounded down to pages).
    pub fn read_limit(&self, version: CgroupVersion, dir: &Path) -> Result<Limit, ReadError> {
        match version {
            CgroupVersion::V1 => parsed(dir, "memory.limit_in_bytes", |t| {
                cg::parse_v1_limit("memory.limit_in_bytes", t)
            }),
            CgroupVersion::V2 => parsed(dir, "memory.max", |t| cg::parse_v2_limit("memory.max", t)),
        }
    }

    /// How many processes the kernel OOM-killed in the memcg and below: `oom_kill` of
    /// `memory.events` (v2) or `memory.oom_control` (v1; `None` before 4.13).
    pub fn read_oom_kills(
        &self,
        version: CgroupVersion,
        dir: &Path,
    ) -> Result<Option<u64>, ReadError> {
        match version {
            CgroupVersion::V1 => {
                Ok(parsed(dir, "memory.oom_control", cg::parse_v1_oom_control)?.oom_kill)
            }
            CgroupVersion::V2 => Ok(parsed(dir, "memory.events", |t| {
                cg::parse_v2_events("memory.events", t)
            })?
            .oom_kill),
        }
    }

    /// Reads a memcg of either version.
    pub fn read_memcg(&self, version: CgroupVersion, dir: &Path) -> Result<Memcg, ReadError> {
        match version {
            CgroupVersion::V1 => self.read_memcg_v1(dir).map(Memcg::V1),
            CgroupVersion::V2 => self.read_memcg_v2(dir).map(Memcg::V2),
        }
    }

    /// The processes of a memcg subtree in `mem_cgroup_scan_tasks()` order as far as userspace
    /// can see it: the memcg itself first, then its descendants in pre-order (directory order for
    /// siblings; the kernel uses creation order, which a listing cannot recover), each memcg's
    /// `cgroup.procs` in file order.
    pub fn subtree_procs(&self, dir: &Path, out: &mut Vec<i32>) -> Result<(), ReadError> {
        let (path, text) = read(dir.join("cgroup.procs"))?;
        for (n, line) in text.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let pid = oomguard_core::host::parse_u64(line)
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| {
                    ReadError::malformed(
                        path.clone(),
                        ParseError {
                            file: "cgroup.procs",
                            line: n + 1,
                            kind: oomguard_core::host::ParseErrorKind::Malformed("not a pid"),
                        },
                    )
                })?;
            out.push(pid);
        }
        let entries =
            std::fs::read_dir(dir).map_err(|e| ReadError::from_io(dir.to_path_buf(), e, false))?;
        let mut children: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        children.sort();
        for child in children {
            match self.subtree_procs(&child, out) {
                Ok(()) | Err(ReadError::Vanished { .. }) | Err(ReadError::NotPresent { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// All memcg directories under `base` (pre-order, including `base`), for audits.
    pub fn walk(&self, base: &Path, max: usize, out: &mut Vec<PathBuf>) {
        if out.len() >= max {
            return;
        }
        out.push(base.to_path_buf());
        let Ok(entries) = std::fs::read_dir(base) else {
            return;
        };
        let mut children: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        children.sort();
        for c in children {
            self.walk(&c, max, out);
        }
    }
}
