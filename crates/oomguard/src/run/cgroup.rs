//! The supervised command's memory cgroup: where it goes (v2 when the memory controller is on
//! v2, else v1; `oomguard/NAME` below oomguard's own cgroup or below a given parent), creating
//! it with its limits, reading its usage and OOM counter, emptying it and removing it (and the
//! `oomguard` group above it when this run created it and it is then empty). One type for both
//! versions.
//!
//! Counters are read through [`CgroupFs`]'s single-file readers. Read and written here:
//! `/proc/self/mounts`, `/proc/self/cgroup`; v2: `cgroup.controllers`, `cgroup.subtree_control`,
//! `memory.max`, `memory.high`; v1: `memory.limit_in_bytes`; both: `cgroup.procs` (and
//! `cgroup.kill` via the actuator).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oomguard_core::run::{
    choose_hierarchy, lists_memory, parse_cgroup_mounts, CgroupMounts, CgroupVersion,
};

use crate::act::actuator::{kill_cgroup, CgroupTarget, KillPlan, RealActuator};
use crate::host::{CgroupFs, ReadError};

/// The group every service of `oomguard run` goes in: `<parent>/oomguard/<NAME>`. One place to
/// find them (`systemd-cgls`, `ls`), and one cgroup an operator may put a limit on for all of
/// them (cgroup v1 memory cgroups are hierarchical: `memory.use_hierarchy` is always 1 since
/// Linux 5.11, so a limit on the group covers every service in it).
pub const GROUP: &str = "oomguard";

/// Errors of the run cgroup. Each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No memory controller anywhere usable.
    #[error("{0}")]
    NoController(String),
    /// `--cgroup-parent` does not exist.
    #[error("cgroup parent {} does not exist", path.display())]
    ParentMissing { path: PathBuf },
    /// `--cgroup-parent` is not in a memory cgroup hierarchy.
    #[error("{} is not in the cgroup v2 hierarchy ({}) nor in the cgroup v1 memory hierarchy ({})", path.display(), unified.as_deref().unwrap_or("not mounted"), v1.as_deref().unwrap_or("not mounted"))]
    NotACgroup {
        path: PathBuf,
        unified: Option<String>,
        v1: Option<String>,
    },
    /// The v2 parent does not offer the memory controller.
    #[error("the memory controller is not available in {} (cgroup.controllers: {controllers:?}); cgroup v2 needs it enabled in every ancestor's cgroup.subtree_control", path.display())]
    NoMemoryInParent { path: PathBuf, controllers: String },
    /// The v2 parent refused to enable the memory controller for its children.
    #[error("cannot enable the memory controller in {}: {source}{hint}", path.display())]
    EnableMemory {
        path: PathBuf,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Creating the directory was refused.
    #[error("no permission to create a cgroup in {} ({source}); run as root or give a --cgroup-parent delegated to this user", parent.display())]
    Permission {
        parent: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The cgroup exists already (another `oomguard run --name` of the same name?).
    #[error("cgroup {} already exists (another oomguard run with the same --name?); choose another --name", path.display())]
    Exists { path: PathBuf },
    /// Reading a counter or limit (the error names the file).
    #[error("{0}")]
    Read(#[from] ReadError),
    /// `--memory-high` on v1.
    #[error("--memory-high needs cgroup v2 (memory.high); the memory controller here is on cgroup v1, which has no equivalent (memory.soft_limit_in_bytes acts only under global pressure)")]
    HighOnV1,
    /// Any other I/O error.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The texts `run` decides placement from: `/proc/self/mounts` and `/proc/self/cgroup`.
#[derive(Debug, Clone)]
pub struct CgroupEnv {
    pub mounts: String,
    pub self_cgroup: String,
}

impl CgroupEnv {
    /// Reads this process's own.
    pub fn read_live() -> Result<Self, CgroupError> {
        let m = Path::new("/proc/self/mounts");
        let c = Path::new("/proc/self/cgroup");
        Ok(Self {
            mounts: std::fs::read_to_string(m).map_err(io("read", m))?,
            self_cgroup: std::fs::read_to_string(c).map_err(io("read", c))?,
        })
    }
}

/// Limits to apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: Option<u64>,
    pub high_bytes: Option<u64>,
}

/// The memory cgroup `run` created. Dropping it empties (SIGKILL) and removes it.
#[derive(Debug)]
pub struct RunCgroup {
    pub version: CgroupVersion,
    /// The directory: `<parent>/oomguard/<NAME>`.
    pub dir: PathBuf,
    /// The path as the kernel prints it (`/proc/PID/cgroup`, OOM reports): relative to the
    /// hierarchy's mount, `/…/oomguard/<NAME>`.
    pub rel_path: String,
    /// Why v2 was not used, when v1 was chosen on a host that has a unified hierarchy.
    pub v2_skipped: Option<String>,
    /// `<parent>/oomguard` when this run created it: removed after the service's cgroup when
    /// then empty. One that existed before (made by the operator, with settings of its own, or
    /// by another run) is left alone.
    group_created: Option<PathBuf>,
    fs: CgroupFs,
    removed: bool,
}

/// Where to create: the version, the mount and the parent directory.
struct Placement {
    version: CgroupVersion,
    mount: PathBuf,
    parent: PathBuf,
    v2_skipped: Option<String>,
}

fn place(env: &CgroupEnv, parent: Option<&Path>) -> Result<Placement, CgroupError> {
    let mounts = parse_cgroup_mounts(&env.mounts);
    match parent {
        None => place_own(&mounts, env),
        Some(p) => place_under(&mounts, p),
    }
}

fn place_own(mounts: &CgroupMounts, env: &CgroupEnv) -> Result<Placement, CgroupError> {
    // The v2 controllers of our own cgroup, when there is a unified hierarchy.
    let own_v2 = mounts.unified.as_ref().and_then(|u| {
        let own = oomguard_core::killpath::cgroup_path(
            &env.self_cgroup,
            oomguard_core::killpath::Hierarchy::Unified,
        )?;
        std::fs::read_to_string(
            Path::new(u)
                .join(own.trim_start_matches('/'))
                .join("cgroup.controllers"),
        )
        .ok()
    });
    let choice = choose_hierarchy(mounts, &env.self_cgroup, own_v2.as_deref())
        .map_err(CgroupError::NoController)?;
    let mount = PathBuf::from(&choice.mount);
    let parent = mount.join(choice.own_path.trim_start_matches('/'));
    Ok(Placement {
        version: choice.version,
        mount,
        parent,
        v2_skipped: choice.v2_skipped,
    })
}

fn place_under(mounts: &CgroupMounts, parent: &Path) -> Result<Placement, CgroupError> {
    if !parent.is_dir() {
        return Err(CgroupError::ParentMissing {
            path: parent.to_path_buf(),
        });
    }
    let under = |m: &Option<String>| {
        m.as_deref()
            .filter(|m| parent.starts_with(m))
            .map(PathBuf::from)
    };
    if let Some(mount) = under(&mounts.unified) {
        return Ok(Placement {
            version: CgroupVersion::V2,
            mount,
            parent: parent.to_path_buf(),
            v2_skipped: None,
        });
    }
    if let Some(mount) = under(&mounts.memory_v1) {
        return Ok(Placement {
            version: CgroupVersion::V1,
            mount,
            parent: parent.to_path_buf(),
            v2_skipped: None,
        });
    }
    Err(CgroupError::NotACgroup {
        path: parent.to_path_buf(),
        unified: mounts.unified.clone(),
        v1: mounts.memory_v1.clone(),
    })
}

/// Makes sure a v2 parent hands the memory controller to its children.
fn enable_memory_v2(parent: &Path) -> Result<(), CgroupError> {
    let controllers_path = parent.join("cgroup.controllers");
    let controllers =
        std::fs::read_to_string(&controllers_path).map_err(io("read", &controllers_path))?;
    if !lists_memory(&controllers) {
        return Err(CgroupError::NoMemoryInParent {
            path: parent.to_path_buf(),
            controllers: controllers.trim().to_owned(),
        });
    }
    let subtree = parent.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&subtree).map_err(io("read", &subtree))?;
    if lists_memory(&enabled) {
        return Ok(());
    }
    std::fs::write(&subtree, "+memory").map_err(|source| CgroupError::EnableMemory {
        path: subtree.clone(),
        hint: if source.raw_os_error() == Some(libc::EBUSY) {
            " (it has processes of its own: cgroup v2's no-internal-process rule; give a \
             --cgroup-parent that holds no processes)"
        } else {
            ""
        },
        source,
    })
}

/// How a mkdir in the cgroup tree failed, for the caller to word.
fn mkdir_error(source: std::io::Error, parent: &Path, dir: &Path) -> CgroupError {
    match source.kind() {
        ErrorKind::PermissionDenied => CgroupError::Permission {
            parent: parent.to_path_buf(),
            source,
        },
        _ if source.raw_os_error() == Some(libc::EROFS) => CgroupError::Permission {
            parent: parent.to_path_buf(),
            source,
        },
        _ => CgroupError::Io {
            op: "mkdir",
            path: dir.to_path_buf(),
            source,
        },
    }
}

/// Removes the `oomguard` group if it is empty. Another run's service still in it (EBUSY,
/// ENOTEMPTY) or a group already gone is fine: the last one out cannot be known without a lock.
fn remove_group(group: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(group) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => Ok(()),
        Err(source) => Err(CgroupError::Io {
            op: "rmdir",
            path: group.to_path_buf(),
            source,
        }),
    }
}

/// How often creating `oomguard/NAME` is tried when a concurrent run removes the empty group
/// between our mkdir of the group and of NAME (ENOENT on the second).
const CREATE_ATTEMPTS: u32 = 3;

impl RunCgroup {
    /// Creates `<parent>/oomguard/<name>` (parent: `--cgroup-parent`, else oomguard's own
    /// cgroup; the `oomguard` group is created when missing) and applies `limits`. Nothing is
    /// left behind on error: neither NAME nor a group this call created.
    pub fn create(
        env: &CgroupEnv,
        parent: Option<&Path>,
        name: &str,
        limits: Limits,
    ) -> Result<Self, CgroupError> {
        let p = place(env, parent)?;
        if p.version == CgroupVersion::V1 && limits.high_bytes.is_some() {
            return Err(CgroupError::HighOnV1);
        }
        if p.version == CgroupVersion::V2 {
            enable_memory_v2(&p.parent)?;
        }
        let group = p.parent.join(GROUP);
        let dir = group.join(name);
        let mut attempt = 1;
        // True once this call made the group (kept across attempts: a retry finds it existing).
        let mut ours = false;
        let group_created = loop {
            match std::fs::create_dir(&group) {
                Ok(()) => ours = true,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(mkdir_error(e, &p.parent, &group)),
            }
            let undo = |e: CgroupError| {
                if ours {
                    let _ = remove_group(&group);
                }
                e
            };
            // v2: the group holds no processes, so it may hand the controller on (the
            // no-internal-process rule); v1 needs nothing (hierarchy is always on).
            if p.version == CgroupVersion::V2 {
                enable_memory_v2(&group).map_err(undo)?;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => break ours.then(|| group.clone()),
                Err(e) if e.kind() == ErrorKind::NotFound && attempt < CREATE_ATTEMPTS => {
                    attempt += 1;
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(undo(CgroupError::Exists { path: dir }))
                }
                Err(e) => return Err(undo(mkdir_error(e, &group, &dir))),
            }
        };
        let rel = dir
            .strip_prefix(&p.mount)
            .map(|r| format!("/{}", r.to_string_lossy()))
            .unwrap_or_else(|_| dir.to_string_lossy().into_owned());
        // From here on, Drop removes the directory (and a group it created) whatever happens.
        let cg = RunCgroup {
            version: p.version,
            dir,
            rel_path: rel,
            v2_skipped: p.v2_skipped,
            group_created,
            fs: CgroupFs::new(p.mount),
            removed: false,
        };
        cg.apply(limits)?;
        Ok(cg)
    }

    fn apply(&self, limits: Limits) -> Result<(), CgroupError> {
        let (max_file, high_file) = match self.version {
            CgroupVersion::V2 => ("memory.max", Some("memory.high")),
            CgroupVersion::V1 => ("memory.limit_in_bytes", None),
        };
        if let Some(max) = limits.max_bytes {
            let path = self.dir.join(max_file);
            std::fs::write(&path, max.to_string()).map_err(io("write", &path))?;
        }
        if let (Some(high), Some(file)) = (limits.high_bytes, high_file) {
            let path = self.dir.join(file);
            std::fs::write(&path, high.to_string()).map_err(io("write", &path))?;
        }
        Ok(())
    }

    /// `cgroup.procs`, for the child to write itself into before exec.
    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Current usage in bytes (`memory.current` / `memory.usage_in_bytes`).
    pub fn read_usage_bytes(&self) -> Result<u64, CgroupError> {
        Ok(self.fs.read_usage_bytes(self.version, &self.dir)?)
    }

    /// The hard limit as the kernel holds it (rounded to pages); `None` when unlimited.
    pub fn read_limit_bytes(&self) -> Result<Option<u64>, CgroupError> {
        Ok(self.fs.read_limit(self.version, &self.dir)?.bytes())
    }

    /// How many processes the kernel OOM-killed in this cgroup so far (`oom_kill` of
    /// `memory.events` / `memory.oom_control`; `None` on a v1 kernel before 4.13).
    pub fn read_oom_kills(&self) -> Result<Option<u64>, CgroupError> {
        Ok(self.fs.read_oom_kills(self.version, &self.dir)?)
    }

    /// The cgroup as the actuator's kill unit.
    pub fn target(&self) -> CgroupTarget {
        CgroupTarget {
            dir: self.dir.clone(),
            rel_path: self.rel_path.clone(),
            v1_controller: (self.version == CgroupVersion::V1).then(|| "memory".to_owned()),
        }
    }

    /// Pids left in the cgroup (and below).
    pub fn pids(&self) -> Vec<i32> {
        self.target().listed_pids().unwrap_or_default()
    }

    /// SIGKILLs whatever is left in the cgroup (daemonised leftovers of the command) and waits
    /// for them, so a restart starts in an empty cgroup. Returns how many were killed.
    pub fn empty(&self) -> Result<usize, CgroupError> {
        if self.pids().is_empty() {
            return Ok(0);
        }
        let plan = KillPlan {
            term_grace: None,
            kill_wait: Duration::from_secs(5),
            poll_interval: Duration::from_millis(20),
        };
        let outcome = kill_cgroup(&mut RealActuator, &self.target(), &plan, &mut || false)
            .map_err(|e| CgroupError::Io {
                op: "empty",
                path: self.dir.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        Ok(outcome.targets.len())
    }

    /// Empties and removes the cgroup, then the `oomguard` group if this run created it and it
    /// is empty. rmdir is retried for a moment: the kernel answers EBUSY while the last exiting
    /// tasks are being uncharged.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        self.empty()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(CgroupError::Io {
                        op: "rmdir",
                        path: self.dir.clone(),
                        source: e,
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        self.removed = true;
        match self.group_created.take() {
            Some(group) => remove_group(&group),
            None => Ok(()),
        }
    }
}

impl Drop for RunCgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("oomguard run: warning: could not remove the cgroup: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A fake cgroup v2 tree made of real kernel file text (6.x with the memory controller
    /// delegated to the caller's cgroup), and a fake v1 one.
    struct Fake {
        tmp: tempfile::TempDir,
    }

    impl Fake {
        fn v2(controllers: &str) -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let own = tmp.path().join("cg2/user.slice/app");
            std::fs::create_dir_all(&own).unwrap();
            std::fs::write(own.join("cgroup.controllers"), controllers).unwrap();
            std::fs::write(own.join("cgroup.subtree_control"), "\n").unwrap();
            Fake { tmp }
        }
        fn env(&self) -> CgroupEnv {
            let root = self.tmp.path().display();
            CgroupEnv {
                mounts: format!(
                    "proc /proc proc rw 0 0\ncgroup2 {root}/cg2 cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n"
                ),
                self_cgroup: "0::/user.slice/app\n".to_owned(),
            }
        }
        fn own(&self) -> PathBuf {
            self.tmp.path().join("cg2/user.slice/app")
        }
    }

    /// Removes what the kernel would have created in a real cgroup, so rmdir works on the fake.
    fn clear_files(dir: &Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }

    #[test]
    fn v2_fake_tree_creates_limits_and_reads_counters() {
        let fake = Fake::v2("cpuset cpu io memory hugetlb pids rdma misc\n");
        // The `oomguard` group as the kernel would show it once made: a plain mkdir in the fake
        // has no interface files, so it is made here with what its parent hands down.
        let group = fake.own().join("oomguard");
        std::fs::create_dir(&group).unwrap();
        std::fs::write(group.join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::write(group.join("cgroup.subtree_control"), "\n").unwrap();
        let limits = Limits {
            max_bytes: Some(64 << 20),
            high_bytes: Some(48 << 20),
        };
        let mut cg = RunCgroup::create(&fake.env(), None, "web", limits).unwrap();
        assert_eq!(cg.version, CgroupVersion::V2);
        assert_eq!(cg.rel_path, "/user.slice/app/oomguard/web");
        assert_eq!(cg.dir, group.join("web"));
        // The controller was enabled down to the service, and the limits written.
        for d in [fake.own(), group.clone()] {
            assert_eq!(
                std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
                "+memory",
                "{}",
                d.display()
            );
        }
        assert_eq!(
            std::fs::read_to_string(cg.dir.join("memory.max")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(cg.dir.join("memory.high")).unwrap(),
            "50331648"
        );
        // What the kernel would show after one OOM kill.
        std::fs::write(cg.dir.join("memory.current"), "67100672\n").unwrap();
        std::fs::write(
            cg.dir.join("memory.events"),
            "low 0\nhigh 210\nmax 388\noom 1\noom_kill 1\noom_group_kill 0\n",
        )
        .unwrap();
        std::fs::write(cg.dir.join("cgroup.procs"), "").unwrap();
        assert_eq!(cg.read_usage_bytes().unwrap(), 67100672);
        assert_eq!(cg.read_limit_bytes().unwrap(), Some(64 << 20));
        assert_eq!(cg.read_oom_kills().unwrap(), Some(1));
        // Same name again: refused, the first one untouched.
        let e = RunCgroup::create(&fake.env(), None, "web", limits).unwrap_err();
        assert!(matches!(e, CgroupError::Exists { .. }), "{e}");
        clear_files(&cg.dir);
        cg.remove().unwrap();
        assert!(!cg.dir.exists());
        assert!(group.exists(), "a group that existed before is left alone");
    }

    #[test]
    fn v2_without_memory_controller_degrades_with_a_clear_message() {
        // This project's VM: a unified hierarchy whose controllers lack memory, and no v1.
        let fake = Fake::v2("cpu io pids\n");
        let e = RunCgroup::create(&fake.env(), None, "web", Limits::default()).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("memory controller is not available in cgroup v2"),
            "{msg}"
        );
        assert!(msg.contains("no cgroup v1 memory hierarchy"), "{msg}");
        // An explicit v2 parent without memory: named, with what it offers.
        let e = RunCgroup::create(&fake.env(), Some(&fake.own()), "web", Limits::default())
            .unwrap_err();
        assert!(matches!(e, CgroupError::NoMemoryInParent { .. }), "{e}");
        assert!(e.to_string().contains("\"cpu io pids\""), "{e}");
        assert!(!fake.own().join("oomguard").exists(), "nothing left behind");
    }

    #[test]
    fn bad_parents() {
        let fake = Fake::v2("memory\n");
        let missing = fake.own().join("nope");
        let e = RunCgroup::create(&fake.env(), Some(&missing), "x", Limits::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cgroup parent {} does not exist", missing.display())
        );
        let elsewhere = fake.tmp.path().to_path_buf();
        let e =
            RunCgroup::create(&fake.env(), Some(&elsewhere), "x", Limits::default()).unwrap_err();
        assert!(matches!(e, CgroupError::NotACgroup { .. }), "{e}");
    }

    #[test]
    fn memory_high_is_refused_on_v1() {
        let tmp = tempfile::tempdir().unwrap();
        let own = tmp.path().join("memory/svc");
        std::fs::create_dir_all(&own).unwrap();
        let env = CgroupEnv {
            mounts: format!(
                "cgroup {}/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0\n",
                tmp.path().display()
            ),
            self_cgroup: "4:memory:/svc\n0::/\n".to_owned(),
        };
        let limits = Limits {
            max_bytes: Some(1 << 20),
            high_bytes: Some(1 << 19),
        };
        let e = RunCgroup::create(&env, None, "x", limits).unwrap_err();
        assert!(matches!(e, CgroupError::HighOnV1), "{e}");
        assert!(!own.join("oomguard").exists());
        // Without --memory-high: v1, limit_in_bytes written; the group is made and, being ours
        // and empty at the end, removed.
        let mut cg = RunCgroup::create(
            &env,
            None,
            "x",
            Limits {
                max_bytes: Some(1 << 20),
                high_bytes: None,
            },
        )
        .unwrap();
        assert_eq!(cg.version, CgroupVersion::V1);
        assert_eq!(cg.rel_path, "/svc/oomguard/x");
        assert_eq!(
            std::fs::read_to_string(cg.dir.join("memory.limit_in_bytes")).unwrap(),
            "1048576"
        );
        // A second service joins the group; the first one out leaves it (EBUSY/ENOTEMPTY is
        // fine), and the second, not its creator, leaves it too.
        let mut other = RunCgroup::create(&env, None, "y", Limits::default()).unwrap();
        clear_files(&cg.dir);
        cg.remove().unwrap();
        assert!(!cg.dir.exists());
        assert!(own.join("oomguard/y").exists());
        clear_files(&other.dir);
        other.remove().unwrap();
        assert!(
            own.join("oomguard").exists(),
            "not created by the second run"
        );
        std::fs::remove_dir(own.join("oomguard")).unwrap();
        // Alone: created and removed.
        let mut cg = RunCgroup::create(&env, None, "x", Limits::default()).unwrap();
        clear_files(&cg.dir);
        cg.remove().unwrap();
        assert!(
            !own.join("oomguard").exists(),
            "the group this run made is gone"
        );
        // A failure after the group was made takes the group with it.
        let e = RunCgroup::create(&env, None, "no/such", Limits::default()).unwrap_err();
        assert!(matches!(e, CgroupError::Io { op: "mkdir", .. }), "{e}");
        assert!(!own.join("oomguard").exists(), "nothing left behind: {e}");
    }
}
