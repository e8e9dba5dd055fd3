//! Workload identity: which systemd unit, container and Kubernetes pod a memory cgroup path
//! belongs to, read from the path alone (no I/O), and whether a kill hit the container's first
//! process.
//!
//! The kernel prints every memcg path from the root of its hierarchy (`oom_memcg=`,
//! `task_memcg=`, `Task in X killed as a result of limit of Y`); container runtimes and the
//! kubelet name their cgroups after the container id and the pod uid, so the path says who died.
//! The shapes read here, each with a real report or `/proc/PID/cgroup` in the tests:
//!
//! | runtime | cgroupfs driver (v1, v2) | systemd driver |
//! |---|---|---|
//! | Kubernetes (any CRI) | `/kubepods[/burstable\|/besteffort]/pod<uid>/<id>` | `/kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope` |
//! | docker | `/docker/<id>` | `/system.slice/docker-<id>.scope` |
//! | containerd (CRI) | (bare id under the pod) | `cri-containerd-<id>.scope`, v1 `…pod<uid_>.slice:cri-containerd:<id>` |
//! | cri-o | `crio-<id>` | `crio-<id>.scope` |
//! | podman | `/libpod_parent/libpod-<id>` | `/machine.slice/libpod-<id>.scope[/container]`, `libpod-payload-<id>` |
//! | lxc / lxd | `/lxc/<name>`, `/lxc.payload/<name>`, `/lxc.payload.<name>` | |
//! | systemd-nspawn | | `/machine.slice/machine-<name>.scope[/payload]`, `systemd-nspawn@<name>.service` |
//!
//! Containers nest (a kind node is a docker container; a Kubernetes node can be an LXC
//! container): the innermost container wins, and a `kubepods` component starts the Kubernetes
//! fields afresh. Anything above (the memcg of a test, a host container) is ignored, so the
//! shapes are found at any depth. Under the cgroupfs driver the kubelet names the container's
//! cgroup by its bare id whatever the runtime (docker or containerd), so `container_runtime` is
//! then `None`: the path does not say. Names (namespace, pod, container) are not in the path;
//! the `oomguard` crate reads them from the kubelet's log directories on a live node.

use serde::{Deserialize, Serialize};

use crate::event::OomEvent;

/// The container runtime a cgroup path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Runtime {
    #[serde(rename = "docker")]
    Docker,
    #[serde(rename = "containerd")]
    Containerd,
    #[serde(rename = "cri-o")]
    CriO,
    #[serde(rename = "podman")]
    Podman,
    #[serde(rename = "lxc")]
    Lxc,
    #[serde(rename = "systemd-nspawn")]
    Nspawn,
}

impl Runtime {
    /// The name in JSON, journal fields and text.
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Podman => "podman",
            Runtime::Lxc => "lxc",
            Runtime::Nspawn => "systemd-nspawn",
        }
    }
}

/// A Kubernetes pod's QoS class, as the kubelet's cgroup tree shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qos {
    /// The pod's cgroup sits right under `kubepods` (requests equal limits).
    Guaranteed,
    Burstable,
    #[serde(rename = "besteffort")]
    BestEffort,
}

impl Qos {
    pub fn as_str(self) -> &'static str {
        match self {
            Qos::Guaranteed => "guaranteed",
            Qos::Burstable => "burstable",
            Qos::BestEffort => "besteffort",
        }
    }
}

/// Who a memory cgroup belongs to. Every field is `None` when the path does not show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    /// The innermost systemd unit of the path (`docker-<id>.scope`, `nginx.service`), else its
    /// innermost slice.
    pub unit: Option<String>,
    pub container_runtime: Option<Runtime>,
    /// The container id as the path spells it (64 hex digits for OCI runtimes).
    pub container_id: Option<String>,
    /// The container's name: from the path for lxc and systemd-nspawn (their cgroups are
    /// named after it), from the kubelet's log directories for Kubernetes.
    pub container_name: Option<String>,
    /// The pod uid with dashes (`0330b2c1-a15b-4cdd-b5e5-72d4a90bee82`), whichever driver.
    pub pod_uid: Option<String>,
    pub pod_namespace: Option<String>,
    pub pod_name: Option<String>,
    pub qos: Option<Qos>,
    /// Whether the killed process was its container's first process. `Some(false)`: it was
    /// not, so the container kept running and Kubernetes will not report the kill (it reports
    /// only a container whose first process died). `None`: the report cannot tell (see
    /// [`first_process`]).
    pub first_process: Option<bool>,
}

impl Workload {
    /// True when the path showed nothing (no unit, no container, no pod).
    pub fn is_empty(&self) -> bool {
        self.unit.is_none()
            && self.container_runtime.is_none()
            && self.container_id.is_none()
            && self.container_name.is_none()
            && self.pod_uid.is_none()
    }

    /// True when the path names a container (a runtime, an id or a name).
    pub fn is_container(&self) -> bool {
        self.container_runtime.is_some()
            || self.container_id.is_some()
            || self.container_name.is_some()
    }

    /// One phrase for people: `container web of pod shop/web-7d9f (uid …)`, `docker container
    /// 3f2a…`, `unit nginx.service`.
    pub fn describe(&self) -> Option<String> {
        let short = |id: &str| id.get(..12).unwrap_or(id).to_owned();
        let container = match (&self.container_name, &self.container_id) {
            (Some(n), _) => format!("container {n}"),
            (None, Some(id)) => format!("container {}", short(id)),
            (None, None) => "a container".to_owned(),
        };
        let runtime = self.container_runtime.map(Runtime::as_str);
        if let Some(uid) = &self.pod_uid {
            let pod = match (&self.pod_namespace, &self.pod_name) {
                (Some(ns), Some(n)) => format!("pod {ns}/{n} (uid {uid})"),
                _ => format!("pod uid {uid}"),
            };
            let qos = self
                .qos
                .map(|q| format!(", QoS {}", q.as_str()))
                .unwrap_or_default();
            let rt = runtime.map(|r| format!(", {r}")).unwrap_or_default();
            let what = if self.is_container() {
                format!("{container} of {pod}")
            } else {
                pod
            };
            return Some(format!("{what}{rt}{qos}"));
        }
        if self.is_container() {
            return Some(match runtime {
                Some(r) => format!("{r} {container}"),
                None => container,
            });
        }
        self.unit.as_ref().map(|u| format!("unit {u}"))
    }
}

/// What a kill of a process that is not its container's first process means, for people.
pub const KEPT_RUNNING: &str =
    "not the container's first process: the container kept running; Kubernetes will not report this";

fn is_hex_id(s: &str) -> bool {
    (12..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `foo\x2dbar` (systemd's escape of `-` in a unit name) → `foo-bar`.
fn unescape_unit(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            if let Some(c) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .filter(u8::is_ascii)
            {
                out.push(char::from(c));
                i += 4;
                continue;
            }
        }
        // Bytes of a multi-byte character are copied through the char boundary below.
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// A pod uid as the systemd driver writes it (`_` for `-`) or the cgroupfs one (dashes).
fn pod_uid(s: &str) -> Option<String> {
    let uid = s.replace('_', "-");
    let ok = uid.len() >= 32
        && uid.len() <= 40
        && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    ok.then_some(uid)
}

/// `docker-<id>.scope` style: `<prefix><id>[.scope]`, the id hex.
fn prefixed_id<'a>(c: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = c.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_hex_id(id).then_some(id)
}

/// Reads the workload from a memory cgroup path as the kernel prints it (a leading `/`, v1 or
/// v2). Returns `None` when the path shows nothing (`/`, a plain directory).
pub fn parse_cgroup(path: &str) -> Option<Workload> {
    let mut w = Workload::default();
    let mut unit: Option<String> = None;
    let mut slice: Option<String> = None;
    let mut in_kubepods = false;
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let mut i = 0;
    while i < comps.len() {
        let c = comps[i];
        let next = comps.get(i + 1).copied();
        i += 1;
        // systemd's v1 `cgroupsPath` form `slice:prefix:id`, as containerd writes it with the
        // systemd driver on cgroup v1 (`kubepods-besteffort-pod<uid_>.slice:cri-containerd:<id>`).
        if let [slice_part, prefix, id] = c.split(':').collect::<Vec<_>>()[..] {
            if is_hex_id(id) {
                if let Some(u) = slice_part
                    .strip_suffix(".slice")
                    .and_then(|s| s.rsplit_once("-pod"))
                    .and_then(|(_, u)| pod_uid(u))
                {
                    in_kubepods = true;
                    w.pod_uid = Some(u);
                    w.qos = Some(qos_of_slice(slice_part));
                }
                set_container(&mut w, runtime_of_prefix(prefix), id);
                unit = Some(format!("{prefix}-{id}.scope"));
                continue;
            }
        }
        if c.ends_with(".service") || c.ends_with(".scope") {
            unit = Some(unescape_unit(c));
        } else if c.ends_with(".slice") && c != "-.slice" {
            slice = Some(unescape_unit(c));
        }
        // Kubernetes: the kubelet's tree, both drivers.
        if c == "kubepods" || c == "kubepods.slice" {
            in_kubepods = true;
            w.pod_uid = None;
            w.pod_namespace = None;
            w.pod_name = None;
            w.qos = None;
            w.container_runtime = None;
            w.container_id = None;
            w.container_name = None;
            continue;
        }
        if in_kubepods {
            match c {
                "burstable" | "kubepods-burstable.slice" => {
                    w.qos = Some(Qos::Burstable);
                    continue;
                }
                "besteffort" | "kubepods-besteffort.slice" => {
                    w.qos = Some(Qos::BestEffort);
                    continue;
                }
                _ => {}
            }
            if let Some(u) = c.strip_prefix("pod").and_then(pod_uid) {
                w.pod_uid = Some(u);
                w.qos.get_or_insert(Qos::Guaranteed);
                continue;
            }
            if let Some(u) = c
                .strip_prefix("kubepods-")
                .and_then(|s| s.strip_suffix(".slice"))
                .and_then(|s| s.rsplit_once("pod").map(|(_, u)| u))
                .and_then(pod_uid)
            {
                w.pod_uid = Some(u);
                w.qos = Some(qos_of_slice(c));
                continue;
            }
            if w.pod_uid.is_some() && is_hex_id(c) {
                // cgroupfs driver: the bare id, whatever the runtime.
                w.container_id = Some(c.to_owned());
                w.container_runtime = None;
                continue;
            }
        }
        // Monitors next to a container are not the container.
        if c.starts_with("crio-conmon-") || c.starts_with("libpod-conmon-") {
            continue;
        }
        let typed = [
            ("docker-", Runtime::Docker),
            ("cri-containerd-", Runtime::Containerd),
            ("crio-", Runtime::CriO),
            ("libpod-payload-", Runtime::Podman),
            ("libpod-", Runtime::Podman),
        ];
        if let Some((rt, id)) = typed
            .iter()
            .find_map(|(p, rt)| prefixed_id(c, p).map(|id| (*rt, id)))
        {
            set_container(&mut w, Some(rt), id);
            continue;
        }
        if c == "docker" {
            if let Some(id) = next.filter(|n| is_hex_id(n)) {
                set_container(&mut w, Some(Runtime::Docker), id);
                i += 1;
                continue;
            }
        }
        // LXC: `/lxc/NAME` (≤3.x), `/lxc.payload/NAME` (LXD 3.x–4.x), `/lxc.payload.NAME` (4.0+).
        // `lxc.monitor.NAME` is the monitor process, not the container.
        if c == "lxc" || c == "lxc.payload" {
            if let Some(n) = next {
                set_named(&mut w, Runtime::Lxc, n);
                i += 1;
                continue;
            }
        }
        if let Some(n) = c.strip_prefix("lxc.payload.").filter(|n| !n.is_empty()) {
            set_named(&mut w, Runtime::Lxc, n);
            continue;
        }
        // systemd-nspawn: registered with machined as `machine-NAME.scope` (under
        // machine.slice), or started by `machinectl start` as `systemd-nspawn@NAME.service`.
        // machined also registers VMs (libvirt's `machine-qemu\x2d1\x2dvm.scope`) and podman
        // pods (`machine-libpod_pod_<id>.slice`, a slice): those are not nspawn containers.
        if let Some(n) = c
            .strip_prefix("systemd-nspawn@")
            .and_then(|s| s.strip_suffix(".service"))
        {
            set_named(&mut w, Runtime::Nspawn, &unescape_unit(n));
            continue;
        }
        if let Some(n) = c
            .strip_prefix("machine-")
            .and_then(|s| s.strip_suffix(".scope"))
            .map(unescape_unit)
        {
            let vm = ["qemu-", "lxc-", "libpod"].iter().any(|p| n.starts_with(p));
            if !vm && !n.is_empty() {
                set_named(&mut w, Runtime::Nspawn, &n);
            }
            continue;
        }
    }
    w.unit = unit.or(slice);
    (!w.is_empty()).then_some(w)
}

fn qos_of_slice(c: &str) -> Qos {
    if c.contains("-burstable") {
        Qos::Burstable
    } else if c.contains("-besteffort") {
        Qos::BestEffort
    } else {
        Qos::Guaranteed
    }
}

fn runtime_of_prefix(p: &str) -> Option<Runtime> {
    match p {
        "docker" => Some(Runtime::Docker),
        "cri-containerd" => Some(Runtime::Containerd),
        "crio" => Some(Runtime::CriO),
        "libpod" => Some(Runtime::Podman),
        _ => None,
    }
}

fn set_container(w: &mut Workload, rt: Option<Runtime>, id: &str) {
    w.container_runtime = rt;
    w.container_id = Some(id.to_owned());
    w.container_name = None;
}

fn set_named(w: &mut Workload, rt: Runtime, name: &str) {
    w.container_runtime = Some(rt);
    w.container_id = None;
    w.container_name = Some(name.to_owned());
    // A container outside Kubernetes: a pod seen above it was the host's, not this one's.
    w.pod_uid = None;
    w.qos = None;
}

/// Whether the kill hit its container's first process, as far as the report shows.
///
/// The rule (see `docs/event-schema.md`, "Workload"): a container runtime starts the
/// container's first process in the container's memory cgroup, and every later process is
/// forked inside it; the kernel appends a forked task to its cgroup's task list and the task
/// dump (`vm.oom_dump_tasks`, on by default) walks the OOM memcg's tasks in that order, one
/// row per process (`pid` = `tgid`). So when the OOM memcg *is* the victim's container
/// (`oom_memcg == task_memcg`: the container's own limit was hit), the dump holds only that
/// container's processes and its first row is the container's first process:
/// - victim = first row → `Some(true)`;
/// - victim ≠ first row, and the first row's pid is lower (pids are handed out in order, so
///   a wrap of `pid_max` would show as a first row with a higher pid) → `Some(false)`.
///
/// `None` (cannot tell) when: the kill was not in a container; the OOM memcg is a parent
/// (the pod, a global OOM: the dump mixes containers and rows carry no cgroup); there is no
/// dump; the victim is not in it; the pids disagree with the order (a pid wrap, or a process
/// moved in later by `docker exec`/`kubectl exec`, which is appended too and so is never
/// mistaken for the first); or `memory.oom.group` killed the whole cgroup (`oom_group` set:
/// the container died whole).
pub fn first_process(ev: &OomEvent, w: &Workload) -> Option<bool> {
    if !w.is_container() || ev.oom_group.is_some() {
        return None;
    }
    let task = ev.task_memcg.as_deref()?;
    if ev.oom_memcg.as_deref() != Some(task) {
        return None;
    }
    let victim = ev.pid?;
    let first = ev.tasks.first()?;
    if !ev.tasks.iter().any(|t| t.pid == victim) {
        return None;
    }
    if first.pid == victim {
        return Some(true);
    }
    (first.pid < victim).then_some(false)
}

impl OomEvent {
    /// Fills `workload` from the victim's cgroup (`task_memcg`, else the daemon's victim
    /// cgroup, else `oomguard run`'s cgroup) when the path shows one; keeps a workload already
    /// set (names read by the caller). For `oomguard run`, the container's first process is its
    /// main process. Pure: names need the `oomguard` crate's reader.
    pub fn identify(&mut self) {
        if self.workload.is_some() {
            return;
        }
        let path = self
            .task_memcg
            .as_deref()
            .or_else(|| self.victim.as_ref().and_then(|v| v.cgroup.as_deref()))
            .or_else(|| self.run.as_ref().map(|r| r.cgroup.as_str()));
        let Some(mut w) = path.and_then(parse_cgroup) else {
            return;
        };
        w.first_process = match (&self.run, self.pid) {
            (Some(r), Some(pid)) if self.kind == crate::event::EventKind::Kill => {
                Some(pid == r.main_pid)
            }
            _ => first_process(self, &w),
        };
        self.workload = Some(w);
    }
}

#[cfg(test)]
mod tests;

/// A pod's directory under the kubelet's `/var/log/pods`: `<namespace>_<name>_<uid>`.
/// Namespaces and pod names are DNS names (no `_`), so the split is unambiguous.
pub fn parse_pod_dir(dir: &str) -> Option<(&str, &str, &str)> {
    let (ns, rest) = dir.split_once('_')?;
    let (name, uid) = rest.rsplit_once('_')?;
    let ok = !ns.is_empty() && !name.is_empty() && !name.contains('_') && pod_uid(uid).is_some();
    ok.then_some((ns, name, uid))
}

/// A link in the kubelet's `/var/log/containers`: `<pod>_<namespace>_<container>-<id>.log`;
/// returns `(pod, namespace, container, id)`.
pub fn parse_container_log(file: &str) -> Option<(&str, &str, &str, &str)> {
    let stem = file.strip_suffix(".log")?;
    let (pod, rest) = stem.split_once('_')?;
    let (ns, rest) = rest.split_once('_')?;
    let (container, id) = rest.rsplit_once('-')?;
    let ok = !pod.is_empty() && !ns.is_empty() && !container.is_empty() && is_hex_id(id);
    ok.then_some((pod, ns, container, id))
}
