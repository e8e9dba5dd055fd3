//! Kubernetes names (namespace, pod, container) for a workload whose cgroup path showed a pod
//! uid and a container id, read from the kubelet's log directories on this node: the pod's
//! directory `<root>/pods/<namespace>_<name>_<uid>/<container>/` and the links
//! `<root>/containers/<pod>_<namespace>_<container>-<id>.log` (root: `/var/log`). Optional by
//! design: on a machine without them (not a node, logs elsewhere, a log read from another
//! machine) nothing is filled in and nothing fails; parsing the names is
//! `oomguard_core::workload`'s job. The CRI socket is not asked (it would need a gRPC client).

use std::fs;
use std::path::{Path, PathBuf};

use oomguard_core::event::OomEvent;
use oomguard_core::workload::{parse_container_log, parse_pod_dir, Workload};

/// The kubelet's log directories under one root.
#[derive(Debug, Clone)]
pub struct PodLogs {
    root: PathBuf,
}

impl Default for PodLogs {
    fn default() -> Self {
        PodLogs::new("/var/log")
    }
}

impl PodLogs {
    /// `root` holds `pods/` and `containers/` (`/var/log` on a node).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        PodLogs { root: root.into() }
    }

    /// Derives the event's workload from its cgroup path (when not done yet) and names it.
    pub fn fill_event(&self, ev: &mut OomEvent) {
        ev.identify();
        if let Some(w) = &mut ev.workload {
            self.fill(w);
        }
    }

    /// Fills `pod_namespace`, `pod_name` and `container_name` when the directories show them;
    /// leaves the workload as it is otherwise (unreadable or missing directories included).
    pub fn fill(&self, w: &mut Workload) {
        let Some(uid) = w.pod_uid.clone() else {
            return;
        };
        if w.pod_name.is_some() {
            return;
        }
        let Some((ns, name, dir)) = self.pod_dir(&uid) else {
            return;
        };
        w.pod_namespace = Some(ns.clone());
        w.pod_name = Some(name.clone());
        let Some(id) = w.container_id.clone() else {
            return;
        };
        if let Some(c) = self.container_by_id(&ns, &name, &id) {
            w.container_name = Some(c);
            return;
        }
        // Without the link: a pod with one container can only mean that one (the sandbox's
        // pause container has no log directory).
        let mut containers = list(&dir).filter(|(_, is_dir)| *is_dir).map(|(n, _)| n);
        if let (Some(only), None) = (containers.next(), containers.next()) {
            w.container_name = Some(only);
        }
    }

    fn pod_dir(&self, uid: &str) -> Option<(String, String, PathBuf)> {
        let pods = self.root.join("pods");
        list(&pods).find_map(|(n, _)| {
            let (ns, name, u) = parse_pod_dir(&n)?;
            (u == uid).then(|| (ns.to_owned(), name.to_owned(), pods.join(&n)))
        })
    }

    fn container_by_id(&self, ns: &str, pod: &str, id: &str) -> Option<String> {
        list(&self.root.join("containers")).find_map(|(n, _)| {
            let (p, s, c, i) = parse_container_log(&n)?;
            (p == pod && s == ns && i == id).then(|| c.to_owned())
        })
    }
}

/// Entries of `dir` (name, is a directory); nothing when it cannot be read.
fn list(dir: &Path) -> impl Iterator<Item = (String, bool)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            e.file_name().into_string().ok().map(|n| (n, is_dir))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oomguard_core::workload::parse_cgroup;

    const UID: &str = "0330b2c1-a15b-4cdd-b5e5-72d4a90bee82";
    const ID: &str = "b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a";

    fn workload() -> Workload {
        parse_cgroup(&format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{ID}.scope",
            UID.replace('-', "_")
        ))
        .unwrap_or_default()
    }

    #[test]
    fn names_from_the_link_then_from_a_lone_container() {
        let t = tempfile::tempdir().unwrap();
        let pod = t.path().join(format!("pods/shop_web-7d9f_{UID}"));
        fs::create_dir_all(pod.join("web")).unwrap();
        fs::create_dir_all(pod.join("sidecar")).unwrap();
        fs::create_dir_all(
            t.path()
                .join("pods/other_x_11111111-2222-3333-4444-555555555555/a"),
        )
        .unwrap();
        let logs = PodLogs::new(t.path());
        // Two containers, no link: the pod is named, the container is not guessed.
        let mut w = workload();
        logs.fill(&mut w);
        assert_eq!(w.pod_namespace.as_deref(), Some("shop"));
        assert_eq!(w.pod_name.as_deref(), Some("web-7d9f"));
        assert_eq!(w.container_name, None);
        // The link names it.
        fs::create_dir_all(t.path().join("containers")).unwrap();
        fs::write(
            t.path()
                .join(format!("containers/web-7d9f_shop_web-{ID}.log")),
            "",
        )
        .unwrap();
        let mut w = workload();
        logs.fill(&mut w);
        assert_eq!(w.container_name.as_deref(), Some("web"));
        assert_eq!(
            w.describe().as_deref(),
            Some(&*format!(
                "container web of pod shop/web-7d9f (uid {UID}), containerd, QoS burstable"
            ))
        );
        // One container and no link: that one.
        fs::remove_dir(pod.join("sidecar")).unwrap();
        fs::remove_dir_all(t.path().join("containers")).unwrap();
        let mut w = workload();
        logs.fill(&mut w);
        assert_eq!(w.container_name.as_deref(), Some("web"));
    }

    #[test]
    fn missing_directories_change_nothing() {
        let logs = PodLogs::new("/nonexistent/oomguard-test");
        let mut w = workload();
        let before = w.clone();
        logs.fill(&mut w);
        assert_eq!(w, before);
    }
}
