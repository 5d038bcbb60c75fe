//! The one table of names for raw kernel values: drop locations, drop reasons, interfaces,
//! network namespaces and the containers and pods they belong to. A live source fills it from the running kernel and the host, a
//! recording source from the names the recording carries; every sink reads it the same way.
use std::collections::HashMap;

use serde::Serialize;

use crate::kernel::reasons::DropReasonTable;
use crate::pipeline::event::Netns;

/// A drop location made readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub module: Option<String>,
    /// `function+0x1c1`, `function+0x1c1 [module]`, or the raw address.
    pub display: String,
}

impl Location {
    /// A location without a symbol: the raw address.
    pub fn unknown(address: u64) -> Location {
        Location {
            function: None,
            offset: None,
            module: None,
            display: format!("{address:#x}"),
        }
    }
}

/// The container a network namespace belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Container {
    /// The runtime's ID (64 hex digits, or the name `ctr run` was given).
    pub id: String,
    /// `web`; for a pod of several containers, their names joined (`istio-proxy,web`).
    pub name: String,
    /// `containerd`, `cri-o`, `docker` (`unknown` when only the cgroup was found).
    pub runtime: String,
}

/// The Kubernetes pod a network namespace belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
}

/// What runs in a network namespace: a container and, under Kubernetes, its pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub container: Container,
    pub pod: Option<Pod>,
}

impl Workload {
    /// `shop/web-7d9f` for a pod, the container's name otherwise.
    pub fn short(&self) -> String {
        match &self.pod {
            Some(p) => format!("{}/{}", p.namespace, p.name),
            None => self.container.name.clone(),
        }
    }

    /// `pod shop/web-7d9f` or `container redis`.
    pub fn label(&self) -> String {
        match &self.pod {
            Some(_) => format!("pod {}", self.short()),
            None => format!("container {}", self.container.name),
        }
    }
}

/// Names are only ever added, so [`Names::len`] tells whether a copy is out of date.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    pub locations: HashMap<u64, Location>,
    /// The drop reasons of the kernel the drops come from; `None` when it has none.
    pub reasons: Option<DropReasonTable>,
    /// (namespace, ifindex) -> interface name.
    pub interfaces: HashMap<(Netns, u32), String>,
    /// namespace -> a short label (`web`, `nginx:812`, `host`). Keyed by inode and cookie:
    /// a namespace that gets the inode of a deleted one is named on its own.
    pub namespaces: HashMap<Netns, String>,
    /// namespace -> the container (and pod) it belongs to.
    pub workloads: HashMap<Netns, Workload>,
    /// The kernel's TCP reset reasons (`enum sk_rst_reason`, 6.10+): raw -> name.
    pub reset_reasons: std::collections::BTreeMap<u32, String>,
    /// Drop site -> its `file:line` from the kernel's debug info (None: tried, none found).
    /// Live runs only, when debug info is there (`probe::lines`).
    pub source_lines: HashMap<u64, Option<String>>,
    /// The debug info is still being opened: lines may come.
    pub source_lines_pending: bool,
}

impl Names {
    /// A reset reason's name: the kernel's, its number when the kernel has no name for
    /// it, `unknown` when the kernel gives none.
    pub fn reset_reason(&self, raw: Option<u32>) -> String {
        match raw {
            Some(r) => self
                .reset_reasons
                .get(&r)
                .cloned()
                .unwrap_or_else(|| r.to_string()),
            None => "unknown".to_owned(),
        }
    }

    /// Names with a kernel's reason table.
    pub fn with_reasons(reasons: Option<DropReasonTable>) -> Names {
        Names {
            reasons,
            ..Names::default()
        }
    }

    /// Entries of the location, interface, namespace and workload maps (reasons are
    /// fixed).
    pub fn len(&self) -> usize {
        self.locations.len()
            + self.interfaces.len()
            + self.namespaces.len()
            + self.workloads.len()
            + self.source_lines.len()
    }

    /// The drop site's `file:line`, when the debug info gave one.
    pub fn source_line(&self, location: u64) -> Option<&str> {
        self.source_lines.get(&location)?.as_deref()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The location, or the raw address when it has no name.
    pub fn location(&self, address: u64) -> Location {
        self.locations
            .get(&address)
            .cloned()
            .unwrap_or_else(|| Location::unknown(address))
    }

    /// `function+0x1c1 [module]`, or the raw address.
    pub fn location_display(&self, address: u64) -> String {
        self.locations
            .get(&address)
            .map_or_else(|| format!("{address:#x}"), |l| l.display.clone())
    }

    pub fn function(&self, address: u64) -> Option<&str> {
        self.locations.get(&address)?.function.as_deref()
    }

    /// The reason's name (`reason N` for a value the table lacks); `None` when the kernel
    /// gives no reasons.
    pub fn reason(&self, raw: u32) -> Option<String> {
        if let Some(name) = super::event::xdp_reason_name(raw) {
            return Some(name);
        }
        self.reasons.as_ref().map(|t| t.display(raw))
    }

    pub fn reasons(&self) -> Option<&DropReasonTable> {
        self.reasons.as_ref()
    }

    /// The interface's name, `if7` when unknown, `-` when the drop had none.
    pub fn interface(&self, netns: Netns, ifindex: u32) -> String {
        match (ifindex, self.interfaces.get(&(netns, ifindex))) {
            (0, _) => "-".into(),
            (_, Some(name)) => name.clone(),
            (i, None) => format!("if{i}"),
        }
    }

    pub fn interface_name(&self, netns: Netns, ifindex: u32) -> Option<&str> {
        self.interfaces.get(&(netns, ifindex)).map(String::as_str)
    }

    /// The namespace's label, its inode when unknown, `-` when the drop had none.
    pub fn namespace(&self, netns: Netns) -> String {
        match self.namespaces.get(&netns) {
            _ if netns.is_none() => "-".into(),
            Some(label) => label.clone(),
            None => netns.inode.to_string(),
        }
    }

    pub fn namespace_name(&self, netns: Netns) -> Option<&str> {
        self.namespaces.get(&netns).map(String::as_str)
    }

    /// The container (and pod) of a namespace, when it belongs to one.
    pub fn workload(&self, netns: Netns) -> Option<&Workload> {
        self.workloads.get(&netns)
    }

    /// Where a group's drops were, in words: ` on veth-b in netns web`, ` on eth0 in pod
    /// shop/web-7d9f container web`, ` in container redis`; empty when neither is known
    /// (no packet details).
    pub fn place(&self, netns: Netns, ifindex: u32) -> String {
        let mut s = String::new();
        if ifindex != 0 {
            s.push_str(" on ");
            s.push_str(&self.interface(netns, ifindex));
        }
        if netns.inode != 0 {
            s.push_str(" in ");
            match self.workload(netns) {
                Some(w) if w.pod.is_some() => {
                    s.push_str(&format!("{} container {}", w.label(), w.container.name));
                }
                Some(w) => s.push_str(&w.label()),
                None => s.push_str(&format!("netns {}", self.namespace(netns))),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_values_fall_back_to_numbers() {
        let mut names = Names::with_reasons(Some(DropReasonTable::from_entries([(
            12,
            "NETFILTER_DROP",
        )])));
        assert_eq!(names.location_display(0xffff_0001), "0xffff0001");
        assert_eq!(names.reason(12).as_deref(), Some("NETFILTER_DROP"));
        assert_eq!(names.reason(500).as_deref(), Some("reason 500"));
        assert_eq!(Names::default().reason(12), None);
        let ns = Netns::new(7, 40);
        assert_eq!(names.interface(ns, 0), "-");
        assert_eq!(names.interface(ns, 3), "if3");
        assert_eq!(names.namespace(Netns::NONE), "-");
        assert_eq!(names.namespace(ns), "7");
        assert_eq!(names.place(ns, 3), " on if3 in netns 7");
        assert_eq!(names.place(Netns::NONE, 0), "");
        names.interfaces.insert((ns, 3), "veth-b".into());
        names.namespaces.insert(ns, "web".into());
        assert_eq!(names.len(), 2);
        assert_eq!(
            (names.interface(ns, 3), names.namespace(ns)),
            ("veth-b".into(), "web".into())
        );
        assert_eq!(names.place(ns, 3), " on veth-b in netns web");
        assert_eq!(names.place(ns, 0), " in netns web");
        names.workloads.insert(
            ns,
            crate::pipeline::fixtures::workload("9b2e7d4a1c6f", None),
        );
        assert_eq!(
            names.place(ns, 3),
            " on veth-b in pod shop/web-7d9f container web"
        );
    }

    #[test]
    fn a_namespace_on_a_reused_inode_is_not_named_after_the_old_one() {
        let mut names = Names::default();
        let (old, new) = (
            Netns::new(4_026_532_500, 8193),
            Netns::new(4_026_532_500, 12289),
        );
        names.namespaces.insert(old, "st-3".into());
        names.interfaces.insert((old, 2), "veth-old".into());
        assert_eq!(names.namespace(new), "4026532500");
        assert_eq!(names.namespace_name(new), None);
        assert_eq!(names.interface(new, 2), "if2");
        names.namespaces.insert(new, "st-new".into());
        assert_eq!(
            (names.namespace(old), names.namespace(new)),
            ("st-3".into(), "st-new".into())
        );
    }
}
