//! Path tables from real kernel reports and `/proc/PID/cgroup` text people posted; each row
//! names where its path was printed. Ids are as posted (some were cut by the poster's paste and
//! are shorter than 64 digits: the parser takes 12 and more).

use super::*;
use crate::event::{EventKind, TaskRow};
use crate::oomlog::Parser;

struct Row {
    source: &'static str,
    path: &'static str,
    unit: Option<&'static str>,
    runtime: Option<Runtime>,
    id: Option<&'static str>,
    name: Option<&'static str>,
    pod_uid: Option<&'static str>,
    qos: Option<Qos>,
}

const NONE: Row = Row {
    source: "",
    path: "",
    unit: None,
    runtime: None,
    id: None,
    name: None,
    pod_uid: None,
    qos: None,
};

fn table() -> Vec<Row> {
    vec![
        // Kubernetes, systemd driver, containerd (v2, nested in an LXC container), from an
        // `oom-kill:` summary line.
        Row {
            source: "https://github.com/leptonai/gpud/pull/70",
            path: "/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice/cri-containerd-ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95.scope",
            unit: Some("cri-containerd-ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95.scope"),
            runtime: Some(Runtime::Containerd),
            id: Some("ec9ee26695deb4cc72bc665efff1cf3a03fdfb12f1303e02fe9252985e084a95"),
            pod_uid: Some("eded8c65-6e8e-4c6e-a889-3e427565c740"),
            qos: Some(Qos::Burstable),
            ..NONE
        },
        // The same report's oom_memcg: the pod, no container.
        Row {
            source: "https://github.com/leptonai/gpud/pull/70",
            path: "/lxc.payload.ny2g2r5hh3-lxc/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice",
            unit: Some("kubepods-burstable-podeded8c65_6e8e_4c6e_a889_3e427565c740.slice"),
            pod_uid: Some("eded8c65-6e8e-4c6e-a889-3e427565c740"),
            qos: Some(Qos::Burstable),
            ..NONE
        },
        // Kubernetes, systemd driver, dockershim (v1, `Task in ... killed as a result of`).
        Row {
            source: "https://github.com/istio/istio/issues/42734",
            path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0330b2c1_a15b_4cdd_b5e5_72d4a90bee82.slice/docker-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope",
            unit: Some("docker-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope"),
            runtime: Some(Runtime::Docker),
            id: Some("b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a"),
            pod_uid: Some("0330b2c1-a15b-4cdd-b5e5-72d4a90bee82"),
            qos: Some(Qos::Burstable),
            ..NONE
        },
        // Kubernetes, cgroupfs driver, v1, a Guaranteed pod (no QoS level), 3.10 kernel.
        Row {
            source: "https://github.com/kubernetes/kubernetes/issues/56891",
            path: "/kubepods/pod95387fa4-da9c-11e7-9d36-5254b24cbf5e/6895a3e13439535852d3184ac2aadd26d7363cc035f171545ec7d4ce74073b0b",
            id: Some("6895a3e13439535852d3184ac2aadd26d7363cc035f171545ec7d4ce74073b0b"),
            pod_uid: Some("95387fa4-da9c-11e7-9d36-5254b24cbf5e"),
            qos: Some(Qos::Guaranteed),
            ..NONE
        },
        Row {
            source: "https://github.com/bluek8s/kubedirector/issues/356",
            path: "/kubepods/pod951f6bc5-c5a5-11ea-8707-80e455f266a2/024952d653ef1cd852f875a61bd27cf45cb1fd6cab3659ca7e5f12f037d99aa9",
            id: Some("024952d653ef1cd852f875a61bd27cf45cb1fd6cab3659ca7e5f12f037d99aa9"),
            pod_uid: Some("951f6bc5-c5a5-11ea-8707-80e455f266a2"),
            qos: Some(Qos::Guaranteed),
            ..NONE
        },
        // Kubernetes, cgroupfs driver, a Burstable pod's directory (v1).
        Row {
            source: "https://github.com/kubernetes/kubernetes/issues/114142",
            path: "/kubepods/burstable/pod22697648-cc63-47d6-ba97-fe420988dfc1",
            pod_uid: Some("22697648-cc63-47d6-ba97-fe420988dfc1"),
            qos: Some(Qos::Burstable),
            ..NONE
        },
        // Kubernetes, systemd driver, cri-o, nested in a docker container (minikube's node).
        Row {
            source: "https://github.com/kubernetes/minikube/issues/11280",
            path: "/docker/d6701ec289c56e4391acb11d07474b3139466857a305490575508a8b7a9fcf22/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2ca4a155_3599_498d_bb9d_4446693fa3ea.slice/crio-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c.scope",
            unit: Some("crio-358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c.scope"),
            runtime: Some(Runtime::CriO),
            id: Some("358607a37e7ada357032e7f5729c9ae6a3efdb7962acbcbe47ff6a3c5506cb1c"),
            pod_uid: Some("2ca4a155-3599-498d-bb9d-4446693fa3ea"),
            qos: Some(Qos::BestEffort),
            ..NONE
        },
        // Kubernetes, containerd with the systemd driver on v1: `/proc/self/cgroup`'s
        // `slice:prefix:id` form.
        Row {
            source: "https://github.com/open-telemetry/opentelemetry-java/issues/4507",
            path: "/system.slice/containerd.service/kubepods-besteffort-pod0125ec2f_b64a_4868_8f5b_94b56cbab864.slice:cri-containerd:ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459",
            unit: Some("cri-containerd-ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459.scope"),
            runtime: Some(Runtime::Containerd),
            id: Some("ee4b20e90ac7f42a10bd004d05646b13d8ab5e2c5e7cbc01abf8006bac016459"),
            pod_uid: Some("0125ec2f-b64a-4868-8f5b-94b56cbab864"),
            qos: Some(Qos::BestEffort),
            ..NONE
        },
        // docker, systemd driver (v2), a global OOM's `task_memcg=`.
        Row {
            source: "https://github.com/dyrnq/install-docker/issues/14",
            path: "/system.slice/docker-00748bf4e957f82c239a1db8a88579059b7d40c7b5fbd3f43617d31d3f646f12.scope",
            unit: Some("docker-00748bf4e957f82c239a1db8a88579059b7d40c7b5fbd3f43617d31d3f646f12.scope"),
            runtime: Some(Runtime::Docker),
            id: Some("00748bf4e957f82c239a1db8a88579059b7d40c7b5fbd3f43617d31d3f646f12"),
            ..NONE
        },
        // docker, cgroupfs driver (v1). The poster's paste cut the id.
        Row {
            source: "https://github.com/moby/moby/issues/47418",
            path: "/docker/e9d912458f1530f0d9f586ab3bdca1015f45cbb5cd59cddde",
            runtime: Some(Runtime::Docker),
            id: Some("e9d912458f1530f0d9f586ab3bdca1015f45cbb5cd59cddde"),
            ..NONE
        },
        // docker in kata (the guest kernel's memcg stat line).
        Row {
            source: "https://github.com/kata-containers/runtime/issues/1310",
            path: "/docker/609e7ec068ac9642229a994438d5a1f68ab5fe9ef81748e367d35b997bd65ae8",
            runtime: Some(Runtime::Docker),
            id: Some("609e7ec068ac9642229a994438d5a1f68ab5fe9ef81748e367d35b997bd65ae8"),
            ..NONE
        },
        // podman, root, systemd driver (v1 `/proc/PID/cgroup` memory line).
        Row {
            source: "https://github.com/podman-container-tools/podman/issues/10602",
            path: "/machine.slice/libpod-2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24.scope",
            unit: Some("libpod-2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24.scope"),
            runtime: Some(Runtime::Podman),
            id: Some("2521e906f0a0c758c3a7dc4fd68c197e32e96abb4b36807d0b0ede6d014a7c24"),
            ..NONE
        },
        // podman 4.7+, v2: the payload in a `container` child of the scope.
        Row {
            source: "https://github.com/podman-container-tools/podman/issues/20423",
            path: "/user.slice/user-0.slice/user@0.service/machine.slice/libpod-cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb.scope/container",
            unit: Some("libpod-cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb.scope"),
            runtime: Some(Runtime::Podman),
            id: Some("cf21d19260ace8544fe8b769fc2638bf2c0873dfbfff0b6253f0569b26a1d5eb"),
            ..NONE
        },
        // podman, cgroupfs driver.
        Row {
            source: "https://github.com/podman-container-tools/podman/issues/8330",
            path: "/libpod_parent/libpod-4dd787bb99b99a48d5ce8cf4920515bf783bfd4377249e1dade7145ad625ddf9",
            runtime: Some(Runtime::Podman),
            id: Some("4dd787bb99b99a48d5ce8cf4920515bf783bfd4377249e1dade7145ad625ddf9"),
            ..NONE
        },
        // podman `--cgroups=split` under a systemd service.
        Row {
            source: "https://github.com/podman-container-tools/podman/issues/13673",
            path: "/srv.slice/container-homeassistant.service/libpod-payload-c4e8e0d642078c90dde4a8a65883a7c0bee26f751d7c6a3096dc322519c658d3",
            unit: Some("container-homeassistant.service"),
            runtime: Some(Runtime::Podman),
            id: Some("c4e8e0d642078c90dde4a8a65883a7c0bee26f751d7c6a3096dc322519c658d3"),
            ..NONE
        },
        // LXD 3.x/4.x on v1: `/lxc.payload/NAME`, a service inside the container.
        Row {
            source: "https://github.com/canonical/lxd/issues/6576",
            path: "/lxc.payload/tryit-select/system.slice/lxd.service",
            unit: Some("lxd.service"),
            runtime: Some(Runtime::Lxc),
            name: Some("tryit-select"),
            ..NONE
        },
        Row {
            source: "https://github.com/canonical/lxd/issues/6576",
            path: "/lxc.payload/tryit-select",
            runtime: Some(Runtime::Lxc),
            name: Some("tryit-select"),
            ..NONE
        },
        // LXC 4.0+: `/lxc.payload.NAME` (the gpud report's host container).
        Row {
            source: "https://github.com/leptonai/gpud/pull/70",
            path: "/lxc.payload.ny2g2r5hh3-lxc",
            runtime: Some(Runtime::Lxc),
            name: Some("ny2g2r5hh3-lxc"),
            ..NONE
        },
        // LXC ≤3.x on v1: `/lxc/NAME` (the memcg directory LXD 2.x used).
        Row {
            source: "https://github.com/canonical/lxd/issues/3337",
            path: "/lxc/BXXXXXXXXXX",
            runtime: Some(Runtime::Lxc),
            name: Some("BXXXXXXXXXX"),
            ..NONE
        },
        // systemd-nspawn registered with machined, a service inside it (the pids controller
        // message prints the same path).
        Row {
            source: "https://github.com/systemd/systemd/issues/32783",
            path: "/machine.slice/machine-puppet001.scope/payload/system.slice/system-puppetserver.slice/puppetserver@003.service",
            unit: Some("puppetserver@003.service"),
            runtime: Some(Runtime::Nspawn),
            name: Some("puppet001"),
            ..NONE
        },
        // `machinectl start`'s unit, with systemd's escape of `-` in the name.
        Row {
            source: "https://github.com/systemd/systemd/issues/32783",
            path: "/machine.slice/systemd-nspawn@puppet001.service/payload",
            unit: Some("systemd-nspawn@puppet001.service"),
            runtime: Some(Runtime::Nspawn),
            name: Some("puppet001"),
            ..NONE
        },
        // A plain systemd service and a user session: a unit, no container.
        Row {
            source: "https://github.com/systemd/systemd/issues/23606",
            path: "/user.slice/user-1001.slice/user@1001.service/app.slice/app-org.gnome.Terminal.slice/vte-spawn-dbb4a75e-031f-480d-924b-5de5af7579d2.scope",
            unit: Some("vte-spawn-dbb4a75e-031f-480d-924b-5de5af7579d2.scope"),
            ..NONE
        },
        // A VM registered with machined is not an nspawn container; a podman pod's slice
        // neither (its containers are the libpod scopes below it).
        Row {
            source: "https://github.com/podman-container-tools/podman/issues/13673",
            path: "/machine.slice/machine-libpod_pod_ddf44d54b520f0b4469fcd01c3155ca49e6911dc2175471eb3a7b789187a7a89.slice/libpod-1dadda571b14eefb3158a15d0fff7e0089f9dd92f922679ed0116cccdfe8bb0f.scope/container",
            unit: Some("libpod-1dadda571b14eefb3158a15d0fff7e0089f9dd92f922679ed0116cccdfe8bb0f.scope"),
            runtime: Some(Runtime::Podman),
            id: Some("1dadda571b14eefb3158a15d0fff7e0089f9dd92f922679ed0116cccdfe8bb0f"),
            ..NONE
        },
    ]
}

#[test]
fn path_table_from_real_reports() {
    for r in table() {
        let w = parse_cgroup(r.path).unwrap_or_default();
        let got = (
            w.unit.as_deref(),
            w.container_runtime,
            w.container_id.as_deref(),
            w.container_name.as_deref(),
            w.pod_uid.as_deref(),
            w.qos,
        );
        let want = (r.unit, r.runtime, r.id, r.name, r.pod_uid, r.qos);
        assert_eq!(got, want, "{} ({})", r.path, r.source);
    }
}

#[test]
fn nothing_to_say_is_none() {
    for p in [
        "/",
        "",
        "/oomguard-test-1234",
        "/user",
        "/kubepods/burstable",
    ] {
        assert_eq!(parse_cgroup(p), None, "{p}");
    }
    // A VM is a unit, not a container.
    let w = parse_cgroup("/machine.slice/machine-qemu\\x2d1\\x2dwin10.scope").unwrap_or_default();
    assert_eq!(w.container_runtime, None);
    assert_eq!(w.unit.as_deref(), Some("machine-qemu-1-win10.scope"));
    // Monitors are not the container.
    let w = parse_cgroup(
        "/machine.slice/libpod-conmon-196ca6f0abd234d8a716cb3d23cf59ee63c1b119d3f8055215f17d52c888df4a.scope",
    )
    .unwrap_or_default();
    assert_eq!(w.container_runtime, None);
}

#[test]
fn a_prefix_above_the_runtime_is_ignored() {
    // The real-kernel tests build these shapes under their own memcg.
    let w = parse_cgroup("/oomguard-test-77/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope")
        .unwrap_or_default();
    assert_eq!(w.container_runtime, Some(Runtime::Docker));
    let w = parse_cgroup("/oomguard-test-77/kubepods/burstable/pod0b4a7c2e-1f3d-4e5a-9b6c-7d8e9f0a1b2c/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
        .unwrap_or_default();
    assert_eq!(
        w.pod_uid.as_deref(),
        Some("0b4a7c2e-1f3d-4e5a-9b6c-7d8e9f0a1b2c")
    );
    assert_eq!(w.qos, Some(Qos::Burstable));
    assert_eq!(w.container_runtime, None);
}

#[test]
fn describe_reads_like_the_issue() {
    let mut w = parse_cgroup("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0330b2c1_a15b_4cdd_b5e5_72d4a90bee82.slice/cri-containerd-b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a.scope").unwrap_or_default();
    assert_eq!(
        w.describe().as_deref(),
        Some("container b27201334a41 of pod uid 0330b2c1-a15b-4cdd-b5e5-72d4a90bee82, containerd, QoS burstable")
    );
    w.pod_namespace = Some("shop".into());
    w.pod_name = Some("web-7d9f".into());
    w.container_name = Some("web".into());
    assert_eq!(
        w.describe().as_deref(),
        Some("container web of pod shop/web-7d9f (uid 0330b2c1-a15b-4cdd-b5e5-72d4a90bee82), containerd, QoS burstable")
    );
    let w = parse_cgroup("/system.slice/nginx.service").unwrap_or_default();
    assert_eq!(w.describe().as_deref(), Some("unit nginx.service"));
}

/// The kubedirector report (4.x, cgroupfs driver): the container's own limit, two processes;
/// `Kill process 62685 (bash) ... or sacrifice child` then `Killed process 62769 (cp)`: the
/// kernel sacrificed a child, so the container's first process (bash) lived on. The post was
/// cut after `Killed process 62769 (cp)`; the `Task in` line, wrapped in the post, is rejoined.
const KUBEDIRECTOR_356: &str = "\
[5193605.506728] Task in /kubepods/pod951f6bc5-c5a5-11ea-8707-80e455f266a2/024952d653ef1cd852f875a61bd27cf45cb1fd6cab3659ca7e5f12f037d99aa9 killed as a result of limit of /kubepods/pod951f6bc5-c5a5-11ea-8707-80e455f266a2/024952d653ef1cd852f875a61bd27cf45cb1fd6cab3659ca7e5f12f037d99aa9
[5193605.506735] memory: usage 524288kB, limit 524288kB, failcnt 0
[5193605.506750] Tasks state (memory values in pages):
[5193605.506751] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
[5193605.506952] [  62685]     0 62685     2925      679    65536        0          -998 bash
[5193605.506955] [  62769]     0 62769     4382      411    77824        0          -998 cp
[5193605.506956] Memory cgroup out of memory: Kill process 62685 (bash) score 0 or sacrifice child
[5193605.508964] Killed process 62769 (cp)
";

fn parse(text: &str) -> Vec<OomEvent> {
    let mut p = Parser::new();
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        p.push(l.as_bytes(), i as u64 + 1);
        p.drain_ready(&mut out);
    }
    p.finish(&mut out);
    out
}

#[test]
fn kubedirector_sacrificed_child_is_not_the_first_process() {
    // Source: https://github.com/bluek8s/kubedirector/issues/356
    let evs = parse(KUBEDIRECTOR_356);
    assert_eq!(evs.len(), 1);
    let w = evs[0]
        .workload
        .as_ref()
        .expect("workload from the Task in line");
    assert_eq!(
        w.pod_uid.as_deref(),
        Some("951f6bc5-c5a5-11ea-8707-80e455f266a2")
    );
    assert_eq!(w.first_process, Some(false));
}

fn ev(oom: &str, task: &str, victim: i64, rows: &[i64]) -> OomEvent {
    let mut e = OomEvent::new(EventKind::Kill);
    e.oom_memcg = Some(oom.into());
    e.task_memcg = Some(task.into());
    e.pid = Some(victim);
    e.tasks = rows
        .iter()
        .map(|&pid| TaskRow {
            pid,
            tgid: Some(pid),
            name: "x".into(),
            ..TaskRow::default()
        })
        .collect();
    e
}

#[test]
fn first_process_rule_and_its_limits() {
    let c = "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let w = parse_cgroup(c).unwrap_or_default();
    // The first row is the container's first process.
    assert_eq!(first_process(&ev(c, c, 100, &[100, 120]), &w), Some(true));
    assert_eq!(first_process(&ev(c, c, 120, &[100, 120]), &w), Some(false));
    // A pid wrap (first row's pid higher than the victim's): cannot tell.
    assert_eq!(first_process(&ev(c, c, 50, &[32000, 50]), &w), None);
    // The OOM memcg is a parent (the pod): rows of several containers.
    assert_eq!(first_process(&ev("/docker", c, 120, &[100, 120]), &w), None);
    // No dump, or the victim not in it.
    assert_eq!(first_process(&ev(c, c, 120, &[]), &w), None);
    assert_eq!(first_process(&ev(c, c, 130, &[100, 120]), &w), None);
    // memory.oom.group: the container died whole.
    let mut g = ev(c, c, 120, &[100, 120]);
    g.oom_group = Some(c.into());
    assert_eq!(first_process(&g, &w), None);
    // Not a container.
    let s = "/system.slice/nginx.service";
    let w = parse_cgroup(s).unwrap_or_default();
    assert_eq!(first_process(&ev(s, s, 120, &[100, 120]), &w), None);
}

#[test]
fn identify_keeps_a_workload_already_named() {
    let c = "/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut e = ev(c, c, 100, &[100]);
    e.identify();
    let w = e.workload.clone().unwrap_or_default();
    assert_eq!(w.container_runtime, Some(Runtime::Docker));
    assert_eq!(w.first_process, Some(true));
    let mut named = w.clone();
    named.container_name = Some("web".into());
    e.workload = Some(named.clone());
    e.identify();
    assert_eq!(e.workload, Some(named));
}

#[test]
fn kubelet_log_names() {
    // Shapes as the kubelet writes them (pkg/kubelet/kuberuntime/kuberuntime_container.go:
    // BuildPodLogsDirectory, BuildContainerLogsDirectory; pkg/kubelet/kuberuntime/helpers.go
    // legacy `/var/log/containers` symlink names).
    assert_eq!(
        parse_pod_dir("shop_web-7d9f_0330b2c1-a15b-4cdd-b5e5-72d4a90bee82"),
        Some(("shop", "web-7d9f", "0330b2c1-a15b-4cdd-b5e5-72d4a90bee82"))
    );
    assert_eq!(parse_pod_dir("shop_web"), None);
    assert_eq!(parse_pod_dir("shop_web_notauid"), None);
    let id = "b27201334a41cd0749d053b18378d7ea65617b8e26277197ea25c974da1a5a8a";
    let f = format!("web-7d9f_shop_web-server-{id}.log");
    assert_eq!(
        parse_container_log(&f),
        Some(("web-7d9f", "shop", "web-server", id))
    );
    assert_eq!(parse_container_log("web-7d9f_shop_web.log"), None);
}
