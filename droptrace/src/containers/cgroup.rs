//! Which container a process belongs to, from its `/proc/PID/cgroup`.
//!
//! Every runtime puts a container's processes in a cgroup whose last components carry the
//! container's ID, and Kubernetes puts them under a cgroup carrying the pod's UID:
//!
//! | driver | path |
//! |---|---|
//! | systemd | `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope` (`crio-<id>.scope`, `docker-<id>.scope`) |
//! | cgroupfs | `/kubepods/burstable/pod<uid>/<id>` |
//! | containerd without Kubernetes | `/<containerd namespace>/<id>` (`ctr run`) |
//! | docker | `/system.slice/docker-<id>.scope`, or `/docker/<id>` |
//!
//! On cgroup v1 each hierarchy has its own line; the path is read from the unified line
//! (`0::`) first, then systemd's named hierarchy, then any other. A process in a cgroup
//! namespace sees paths relative to its root (`/../../kubepods-...`); only the components
//! matter, so they parse the same.

/// A container runtime, as its cgroups and state name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
}

impl Runtime {
    /// The name shown and stored (`containerd`, `cri-o`, `docker`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
        }
    }
}

/// What a cgroup path says about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupContainer {
    /// The container's ID (64 hex digits for every runtime here, or the name `ctr run`
    /// was given).
    pub id: String,
    /// The runtime, when the path names it (`cri-containerd-`, `crio-`, `docker-`,
    /// `/docker/`); `None` for a plain cgroupfs path under a pod.
    pub runtime: Option<Runtime>,
    /// The Kubernetes pod's UID (with dashes), when the path is under one.
    pub pod_uid: Option<String>,
    /// containerd's namespace (`k8s.io`, `default`, `moby`), when the path is the plain
    /// `/<namespace>/<id>` of containerd's cgroupfs driver.
    pub containerd_namespace: Option<String>,
}

/// The (hierarchy, path) pairs of a `/proc/PID/cgroup` file, best first: the unified
/// hierarchy, then systemd's named one, then the others in file order.
pub fn paths(text: &str) -> Vec<&str> {
    let mut lines: Vec<(u8, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rank = match (id, controllers) {
                ("0", "") => 0,
                (_, "name=systemd") => 1,
                _ => 2,
            };
            Some((rank, path))
        })
        .collect();
    lines.sort_by_key(|(rank, _)| *rank);
    let mut out: Vec<&str> = Vec::new();
    for (_, path) in lines {
        if !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// The container of a process, from the text of its `/proc/PID/cgroup`; `None` for a
/// process in no container (the host's services, a shell).
pub fn container_of(text: &str) -> Option<CgroupContainer> {
    paths(text).into_iter().find_map(parse_path)
}

/// The container a cgroup path belongs to.
pub fn parse_path(path: &str) -> Option<CgroupContainer> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != "..")
        .collect();
    let pod_uid = parts.iter().find_map(|c| pod_uid(c));
    // The container is the deepest component that names one (a runtime may nest a
    // sub-cgroup, such as systemd's `init.scope`, below it).
    for (depth, part) in parts.iter().enumerate().rev() {
        if let Some((runtime, id)) = scope(part) {
            return Some(CgroupContainer {
                id: id.to_owned(),
                runtime: Some(runtime),
                pod_uid,
                containerd_namespace: None,
            });
        }
        let parent = depth.checked_sub(1).map(|d| parts[d]);
        if is_container_id(part) {
            let under_pod = parent.is_some_and(|p| pod_uid_cgroupfs(p).is_some());
            return Some(CgroupContainer {
                id: (*part).to_owned(),
                runtime: match parent {
                    Some("docker") => Some(Runtime::Docker),
                    _ if under_pod => None,
                    Some(_) if depth == 1 => Some(Runtime::Containerd),
                    _ => None,
                },
                pod_uid,
                containerd_namespace: (depth == 1 && !under_pod && parent != Some("docker"))
                    .then(|| parent.map(str::to_owned))
                    .flatten(),
            });
        }
    }
    // containerd's plain `/<namespace>/<id>` where the ID is a name `ctr run` was given.
    match parts.as_slice() {
        [namespace, id] if is_containerd_namespace(namespace) && is_name(id) => {
            Some(CgroupContainer {
                id: (*id).to_owned(),
                runtime: Some(Runtime::Containerd),
                pod_uid: None,
                containerd_namespace: Some((*namespace).to_owned()),
            })
        }
        _ => None,
    }
}

/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` (systemd driver).
fn scope(part: &str) -> Option<(Runtime, &str)> {
    let stem = part.strip_suffix(".scope")?;
    let (runtime, id) = if let Some(id) = stem.strip_prefix("cri-containerd-") {
        (Runtime::Containerd, id)
    } else if let Some(id) = stem.strip_prefix("crio-") {
        // `crio-conmon-<id>.scope` holds CRI-O's monitor, not the container.
        (Runtime::CriO, id)
    } else if let Some(id) = stem.strip_prefix("docker-") {
        (Runtime::Docker, id)
    } else {
        return None;
    };
    is_container_id(id).then_some((runtime, id))
}

/// The pod UID in `kubepods-besteffort-pod<uid>.slice` (systemd: dashes became
/// underscores) or `pod<uid>` (cgroupfs).
fn pod_uid(part: &str) -> Option<String> {
    if let Some(stem) = part.strip_suffix(".slice") {
        let uid = stem.rsplit_once("-pod")?.1;
        return is_uid(uid, '_').then(|| uid.replace('_', "-"));
    }
    pod_uid_cgroupfs(part)
}

fn pod_uid_cgroupfs(part: &str) -> Option<String> {
    let uid = part.strip_prefix("pod")?;
    is_uid(uid, '-').then(|| uid.to_owned())
}

/// A UUID's 36 characters with `sep` where the dashes go.
fn is_uid(s: &str, sep: char) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == sep,
            _ => c.is_ascii_hexdigit(),
        })
}

/// Container IDs of containerd (CRI), CRI-O and docker: 64 lowercase hex digits.
fn is_container_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A first component that can be a containerd namespace: not a systemd unit or one of the
/// trees that systemd, Kubernetes or docker keep.
fn is_containerd_namespace(s: &str) -> bool {
    is_name(s)
        && !s.ends_with(".slice")
        && !s.ends_with(".scope")
        && !s.ends_with(".service")
        && !matches!(
            s,
            "kubepods" | "docker" | "system" | "user" | "init" | "lxc"
        )
}

/// What containerd takes as a namespace or an ID: letters, digits, `._-`, starting with a
/// letter or digit.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/containers/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const APP: &str = "9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b";
    const UID: &str = "0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10";

    #[test]
    fn containerd_cgroupfs_on_a_v1_hybrid_captured_here() {
        let text = fixture("containerd-1.6.20.cgroupfs.hybrid.cgroup");
        assert_eq!(paths(&text)[0], format!("/k8s.io/{APP}"));
        assert_eq!(
            container_of(&text),
            Some(CgroupContainer {
                id: APP.into(),
                runtime: Some(Runtime::Containerd),
                pod_uid: None,
                containerd_namespace: Some("k8s.io".into()),
            })
        );
    }

    #[test]
    fn each_runtime_and_driver() {
        let cases = [
            (
                "containerd.systemd.v2.cgroup",
                Some(Runtime::Containerd),
                Some(UID),
            ),
            ("containerd.cgroupfs.v1.cgroup", None, Some(UID)),
            ("crio.systemd.v2.cgroup", Some(Runtime::CriO), Some(UID)),
            ("docker.systemd.v2.cgroup", Some(Runtime::Docker), None),
            ("docker.cgroupfs.v1.cgroup", Some(Runtime::Docker), None),
            (
                "containerd.guaranteed.cgroupns.cgroup",
                Some(Runtime::Containerd),
                Some(UID),
            ),
        ];
        for (file, runtime, uid) in cases {
            let c = container_of(&fixture(file)).unwrap_or_else(|| panic!("{file}: none"));
            assert_eq!(c.id, APP, "{file}");
            assert_eq!(c.runtime, runtime, "{file}");
            assert_eq!(c.pod_uid.as_deref(), uid, "{file}");
            assert_eq!(c.containerd_namespace, None, "{file}");
        }
    }

    #[test]
    fn plain_containerd_names_and_hosts_processes() {
        let c = parse_path("/default/redis-1").unwrap();
        assert_eq!(
            (c.id.as_str(), c.runtime, c.containerd_namespace.as_deref()),
            ("redis-1", Some(Runtime::Containerd), Some("default"))
        );
        for host in [
            "/",
            "/system.slice/sshd.service",
            "/user.slice/user-0.slice/session-3.scope",
            "/init.scope",
            "/kubepods.slice/kubepods-besteffort.slice",
            "/system.slice/containerd.service",
            // CRI-O's monitor: a process next to the container, not in it.
            "/kubepods.slice/kubepods-pod0b6c4f0e_1111_4c2a_9d3e_5f2a7c1e9b10.slice/crio-conmon-9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b.scope",
        ] {
            assert_eq!(parse_path(host), None, "{host}");
        }
        assert_eq!(container_of("0::/\n1:name=systemd:/init.scope\n"), None);
    }
}
