//! Containers and pods from what the node keeps, without the Kubernetes API: pure parsers
//! of a process's cgroup path ([`cgroup`]) and of the runtimes' own state ([`bundle`]),
//! and the rule that names the workload of a network namespace from the containers in it
//! ([`workload`]). Tested on captured and documented fixtures in
//! `droptrace/fixtures/containers`; `probe::workloads` reads the files.
pub mod bundle;
pub mod cgroup;

use crate::pipeline::names::{Container, Pod, Workload};

use bundle::BundleInfo;
use cgroup::CgroupContainer;

/// One container found in a network namespace: where its cgroup put it and, when its
/// bundle was found, what the runtime says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub cgroup: CgroupContainer,
    pub bundle: Option<BundleInfo>,
}

impl Member {
    fn is_sandbox(&self) -> bool {
        self.bundle.as_ref().is_some_and(|b| b.sandbox)
    }

    /// The container's name: the runtime's, or its ID (what `ctr run` was given, or the
    /// first 12 hex digits as docker shows them).
    pub fn name(&self) -> String {
        self.bundle
            .as_ref()
            .and_then(|b| b.name.clone())
            .unwrap_or_else(|| short_id(&self.cgroup.id).to_owned())
    }

    fn runtime(&self) -> &'static str {
        self.bundle
            .as_ref()
            .and_then(|b| b.runtime)
            .or(self.cgroup.runtime)
            .map_or("unknown", cgroup::Runtime::name)
    }
}

/// The workload a network namespace belongs to, from the containers found in it; `None`
/// when there are none.
///
/// The pod is the one the bundles name (the sandbox's first). The container is the one
/// container of the pod when there is one (the sandbox, which only holds the
/// namespaces, does not count); the containers of a pod share its namespace, so with
/// several it is the pod's sandbox ID and their names joined by commas (`web,sidecar`),
/// and with none but the sandbox, the sandbox.
pub fn workload(members: &[Member]) -> Option<Workload> {
    let mut members: Vec<&Member> = members.iter().collect();
    members.sort_by(|a, b| a.cgroup.id.cmp(&b.cgroup.id));
    members.dedup_by(|a, b| a.cgroup.id == b.cgroup.id);
    let first = *members.first()?;
    let pod = members
        .iter()
        .filter(|m| m.is_sandbox())
        .chain(members.iter().filter(|m| !m.is_sandbox()))
        .find_map(|m| m.bundle.as_ref()?.pod.clone())
        .map(|p| Pod {
            name: p.name,
            namespace: p.namespace,
            uid: p
                .uid
                .or_else(|| members.iter().find_map(|m| m.cgroup.pod_uid.clone())),
        });
    let apps: Vec<&Member> = members
        .iter()
        .copied()
        .filter(|m| !m.is_sandbox())
        .collect();
    let sandbox = members.iter().copied().find(|m| m.is_sandbox());
    let container = match apps.as_slice() {
        [one] => Container {
            id: one.cgroup.id.clone(),
            name: one.name(),
            runtime: one.runtime().to_owned(),
        },
        [] => {
            let s = sandbox.unwrap_or(first);
            Container {
                id: s.cgroup.id.clone(),
                name: s.name(),
                runtime: s.runtime().to_owned(),
            }
        }
        several => {
            let mut names: Vec<String> = several.iter().map(|m| m.name()).collect();
            names.sort();
            let id = sandbox
                .map(|s| s.cgroup.id.clone())
                .or_else(|| {
                    several
                        .iter()
                        .find_map(|m| m.bundle.as_ref()?.sandbox_id.clone())
                })
                .unwrap_or_else(|| several[0].cgroup.id.clone());
            Container {
                id,
                name: names.join(","),
                runtime: several[0].runtime().to_owned(),
            }
        }
    };
    Some(Workload { container, pod })
}

/// Whether `query` (`--container`) names this member: its name, its full ID, or a
/// prefix of the ID of at least 12 characters (as docker shows IDs).
pub fn names_member(member: &Member, query: &str) -> bool {
    let id = &member.cgroup.id;
    member.name() == query || *id == query || (query.len() >= 12 && id.starts_with(query))
}

/// `--pod NAMESPACE/NAME`.
pub fn parse_pod_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "`{text}`: give the pod as NAMESPACE/NAME (e.g. shop/web-7d9f)"
        )),
    }
}

/// The first 12 characters of a 64-digit ID; other IDs (names) whole.
pub fn short_id(id: &str) -> &str {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        &id[..12]
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cgroup::Runtime;

    const SANDBOX: &str = "5f0c9a3e7b2d4c18a6e1f09b3d7c2a4e8b1f6d0c9e3a7b5d2f4c8e1a0b6d3f9c";
    const APP: &str = "9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b";
    const SIDE: &str = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b";

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/containers/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// The pod captured from containerd here: its sandbox and its one container.
    fn captured_pod() -> Vec<Member> {
        let member = |id: &str, config: &str| Member {
            cgroup: cgroup::parse_path(&format!("/k8s.io/{id}")).unwrap(),
            bundle: Some(bundle::parse_oci_config(&fixture(config)).unwrap()),
        };
        vec![
            member(APP, "containerd-1.6.20.container.config.json"),
            member(SANDBOX, "containerd-1.6.20.sandbox.config.json"),
        ]
    }

    #[test]
    fn a_pod_is_named_by_its_one_container() {
        let w = workload(&captured_pod()).unwrap();
        assert_eq!(
            w.container,
            Container {
                id: APP.into(),
                name: "web".into(),
                runtime: "containerd".into()
            }
        );
        assert_eq!(
            w.pod,
            Some(Pod {
                name: "web-7d9f".into(),
                namespace: "shop".into(),
                uid: Some("0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10".into()),
            })
        );
        assert_eq!(w.label(), "pod shop/web-7d9f");
        assert!(names_member(&captured_pod()[0], "web"));
        assert!(names_member(&captured_pod()[0], &APP[..12]));
        assert!(!names_member(&captured_pod()[0], &APP[..6]));
    }

    #[test]
    fn several_containers_share_the_pods_namespace() {
        let mut pod = captured_pod();
        let mut side = pod[0].clone();
        side.cgroup.id = SIDE.into();
        side.bundle.as_mut().unwrap().name = Some("istio-proxy".into());
        pod.push(side);
        let w = workload(&pod).unwrap();
        assert_eq!(
            (w.container.id.as_str(), w.container.name.as_str()),
            (SANDBOX, "istio-proxy,web")
        );
        // Only the sandbox left (its containers exited): the sandbox.
        let only = workload(&captured_pod()[1..]).unwrap();
        assert_eq!(only.container.id, SANDBOX);
        assert_eq!(only.container.name, &SANDBOX[..12]);
        assert!(only.pod.is_some());
    }

    #[test]
    fn plain_containers_have_no_pod() {
        let ctr = Member {
            cgroup: cgroup::parse_path("/default/redis-1").unwrap(),
            bundle: Some(BundleInfo::default()),
        };
        let w = workload(&[ctr]).unwrap();
        assert_eq!(
            (
                w.container.name.as_str(),
                w.container.runtime.as_str(),
                w.pod.clone()
            ),
            ("redis-1", "containerd", None)
        );
        assert_eq!(w.label(), "container redis-1");
        // A pod's container whose bundle was not found: the pod's UID alone names no pod.
        let lone = Member {
            cgroup: cgroup::container_of(&fixture("containerd.cgroupfs.v1.cgroup")).unwrap(),
            bundle: None,
        };
        let w = workload(&[lone]).unwrap();
        assert_eq!(
            (
                w.container.name.as_str(),
                w.container.runtime.as_str(),
                w.pod.clone()
            ),
            (&APP[..12], "unknown", None)
        );
        assert_eq!(workload(&[]), None);
        let docker = Member {
            cgroup: cgroup::container_of(&fixture("docker.systemd.v2.cgroup")).unwrap(),
            bundle: Some(
                bundle::parse_docker_config(&fixture("docker-24.config.v2.json")).unwrap(),
            ),
        };
        let w = workload(&[docker]).unwrap();
        assert_eq!(
            (w.container.name.as_str(), w.container.runtime.as_str()),
            ("redis", Runtime::Docker.name())
        );
    }

    #[test]
    fn pod_arguments() {
        assert_eq!(
            parse_pod_arg("shop/web-7d9f"),
            Ok(("shop".into(), "web-7d9f".into()))
        );
        for bad in ["web", "/web", "shop/", "a/b/c"] {
            assert!(parse_pod_arg(bad).is_err(), "{bad}");
        }
    }
}
