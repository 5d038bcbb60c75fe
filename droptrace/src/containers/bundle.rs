//! What a runtime keeps on the node about a container: the OCI bundle's `config.json`
//! (containerd, CRI-O, docker through containerd) and docker's own `config.v2.json`.
//!
//! Kubernetes' runtimes write the pod into the annotations of every container of it:
//! containerd's CRI plugin `io.kubernetes.cri.sandbox-name`, `-namespace`, `-uid` and
//! `io.kubernetes.cri.container-name`; CRI-O `io.kubernetes.pod.name`, `.namespace`,
//! `.uid` and `io.kubernetes.container.name` (and the same again inside the JSON of
//! `io.kubernetes.cri-o.Labels`); docker under cri-dockerd keeps them as labels.
use serde_json::{Map, Value};

use super::cgroup::Runtime;

/// A pod as the runtime's state names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodRef {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
}

/// What a container's bundle says about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleInfo {
    /// The container's own name (`web`), when the runtime gives one.
    pub name: Option<String>,
    /// A pod's sandbox (the `pause` container that holds the pod's namespaces) rather
    /// than one of its containers.
    pub sandbox: bool,
    /// The ID of the pod's sandbox.
    pub sandbox_id: Option<String>,
    pub pod: Option<PodRef>,
    /// The runtime the annotations show (CRI-O's are its own).
    pub runtime: Option<Runtime>,
}

/// Why a file could not be read as a bundle's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("no annotations object")]
    NoAnnotations,
}

/// The annotations of an OCI runtime `config.json`.
pub fn parse_oci_config(text: &str) -> Result<BundleInfo, BundleError> {
    let v: Value = serde_json::from_str(text).map_err(|e| BundleError::Json(e.to_string()))?;
    let Some(annotations) = v.get("annotations").and_then(Value::as_object) else {
        // A container without annotations (`ctr run`, plain runc) is still a container.
        return if v.get("ociVersion").is_some() {
            Ok(BundleInfo::default())
        } else {
            Err(BundleError::NoAnnotations)
        };
    };
    Ok(from_annotations(annotations))
}

fn from_annotations(a: &Map<String, Value>) -> BundleInfo {
    let get = |key: &str| {
        a.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if let Some(kind) = get("io.kubernetes.cri.container-type") {
        return BundleInfo {
            name: get("io.kubernetes.cri.container-name"),
            sandbox: kind == "sandbox",
            sandbox_id: get("io.kubernetes.cri.sandbox-id"),
            pod: pod(
                get("io.kubernetes.cri.sandbox-name"),
                get("io.kubernetes.cri.sandbox-namespace"),
                get("io.kubernetes.cri.sandbox-uid"),
            ),
            runtime: Some(Runtime::Containerd),
        };
    }
    // CRI-O: its own keys, and kubelet's labels copied as annotations or kept as JSON.
    let labels: Map<String, Value> = get("io.kubernetes.cri-o.Labels")
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let label = |key: &str| {
        get(key).or_else(|| {
            labels
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        })
    };
    let crio = get("io.kubernetes.cri-o.ContainerType");
    let pod = pod(
        label("io.kubernetes.pod.name"),
        label("io.kubernetes.pod.namespace"),
        label("io.kubernetes.pod.uid"),
    );
    if crio.is_none() && pod.is_none() {
        // No runtime that names pods wrote this; a plain container (the name, if any, is
        // not in the bundle).
        return BundleInfo::default();
    }
    BundleInfo {
        name: label("io.kubernetes.container.name").filter(|n| n != "POD"),
        sandbox: crio.as_deref() == Some("sandbox"),
        sandbox_id: get("io.kubernetes.cri-o.SandboxID"),
        pod,
        runtime: crio.is_some().then_some(Runtime::CriO),
    }
}

fn pod(name: Option<String>, namespace: Option<String>, uid: Option<String>) -> Option<PodRef> {
    Some(PodRef {
        name: name?,
        namespace: namespace?,
        uid,
    })
}

/// docker's `/var/lib/docker/containers/<id>/config.v2.json`: the container's name and,
/// under cri-dockerd, the pod in its labels.
pub fn parse_docker_config(text: &str) -> Result<BundleInfo, BundleError> {
    let v: Value = serde_json::from_str(text).map_err(|e| BundleError::Json(e.to_string()))?;
    let name = v
        .get("Name")
        .and_then(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_owned())
        .filter(|n| !n.is_empty());
    let labels = v
        .pointer("/Config/Labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let label = |key: &str| {
        labels
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let pod = pod(
        label("io.kubernetes.pod.name"),
        label("io.kubernetes.pod.namespace"),
        label("io.kubernetes.pod.uid"),
    );
    let kube_name = label("io.kubernetes.container.name");
    Ok(BundleInfo {
        sandbox: label("io.kubernetes.docker.type").as_deref() == Some("podsandbox"),
        sandbox_id: label("io.kubernetes.sandbox.id"),
        name: kube_name.filter(|n| n != "POD").or(name),
        pod,
        runtime: Some(Runtime::Docker),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/containers/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const SANDBOX: &str = "5f0c9a3e7b2d4c18a6e1f09b3d7c2a4e8b1f6d0c9e3a7b5d2f4c8e1a0b6d3f9c";

    fn shop_web() -> Option<PodRef> {
        Some(PodRef {
            name: "web-7d9f".into(),
            namespace: "shop".into(),
            uid: Some("0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10".into()),
        })
    }

    #[test]
    fn containerd_cri_annotations_captured_here() {
        let app = parse_oci_config(&fixture("containerd-1.6.20.container.config.json")).unwrap();
        assert_eq!(
            app,
            BundleInfo {
                name: Some("web".into()),
                sandbox: false,
                sandbox_id: Some(SANDBOX.into()),
                pod: shop_web(),
                runtime: Some(Runtime::Containerd),
            }
        );
        let sandbox = parse_oci_config(&fixture("containerd-1.6.20.sandbox.config.json")).unwrap();
        assert!(sandbox.sandbox);
        assert_eq!(
            (sandbox.name, sandbox.pod),
            (None, shop_web()),
            "a sandbox has no container name"
        );
    }

    #[test]
    fn crio_and_docker() {
        let crio = parse_oci_config(&fixture("crio-1.28.container.config.json")).unwrap();
        assert_eq!(
            (crio.name.as_deref(), crio.sandbox, crio.runtime),
            (Some("web"), false, Some(Runtime::CriO))
        );
        assert_eq!(crio.pod, shop_web());
        assert_eq!(crio.sandbox_id.as_deref(), Some(SANDBOX));

        let plain = parse_docker_config(&fixture("docker-24.config.v2.json")).unwrap();
        assert_eq!(
            (plain.name.as_deref(), plain.pod, plain.runtime),
            (Some("redis"), None, Some(Runtime::Docker))
        );
        let kube = parse_docker_config(&fixture("cri-dockerd.config.v2.json")).unwrap();
        assert_eq!(
            (kube.name.as_deref(), kube.pod, kube.sandbox),
            (Some("web"), shop_web(), false)
        );
    }

    #[test]
    fn plain_and_broken_configs() {
        let plain = parse_oci_config(r#"{"ociVersion":"1.0.2","process":{}}"#).unwrap();
        assert_eq!(plain, BundleInfo::default());
        let other = parse_oci_config(r#"{"ociVersion":"1.0.2","annotations":{"a":"b"}}"#);
        assert_eq!(other, Ok(BundleInfo::default()));
        assert!(matches!(parse_oci_config("{"), Err(BundleError::Json(_))));
        assert_eq!(parse_oci_config("[]"), Err(BundleError::NoAnnotations));
        // A pod without its namespace is no pod.
        let half = r#"{"ociVersion":"1","annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.sandbox-name":"x"}}"#;
        assert_eq!(parse_oci_config(half).unwrap().pod, None);
    }
}
