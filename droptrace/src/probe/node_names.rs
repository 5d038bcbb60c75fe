//! Namespaces as a diagnosis names them, from what the probe found on the host.
use std::collections::BTreeSet;

use super::netns::Namespaces;
use crate::{diagnose::engine::NamespaceNames, pipeline::names::Workload};

/// Namespaces as the diagnosis names them: by their pod or container when they belong to
/// one ("in pod shop/web-7d9f"), else as they were found.
pub struct NodeNames {
    pub namespaces: Namespaces,
    pub workloads: std::collections::HashMap<u32, Workload>,
    /// Namespaces whose name no longer leads to them (deleted during the window).
    pub vanished: BTreeSet<u32>,
}

impl NamespaceNames for NodeNames {
    fn describe(&self, inode: u32) -> String {
        let name = match self.workloads.get(&inode) {
            Some(w) => w.label(),
            None => self.namespaces.describe(inode),
        };
        match (
            self.vanished.contains(&inode),
            self.namespaces.has_own_name(inode),
        ) {
            (false, _) => name,
            (true, true) => format!("{name} (gone: deleted during the window)"),
            (true, false) => format!("{name} (gone: its process exited during the window)"),
        }
    }

    fn command_prefix(&self, inode: u32) -> String {
        self.namespaces.command_prefix(inode)
    }

    fn label(&self, inode: u32) -> String {
        self.namespaces.label(inode)
    }

    fn workload(&self, inode: u32) -> Option<Workload> {
        self.workloads.get(&inode).cloned()
    }

    fn found_as(&self, inode: u32) -> String {
        self.namespaces.describe(inode)
    }

    /// The name a baseline knows the namespace by: its own name (`ip netns`) when it has
    /// one, else its pod or container, else the command of a process in it. Whether a
    /// workload is seen in it can change between runs; its own name does not.
    fn baseline_name(&self, inode: u32) -> String {
        if self.namespaces.has_own_name(inode) {
            return self.namespaces.describe(inode);
        }
        match self.workloads.get(&inode) {
            Some(w) => w.label(),
            None => self
                .namespaces
                .stable_name(inode)
                .unwrap_or_else(|| self.describe(inode)),
        }
    }
}

/// The workloads of the window's namespaces by inode: the sampled state is the host's now,
/// keyed by inode (a namespace gone and replaced on its inode has no state of its own).
pub fn by_inode(
    workloads: &std::collections::HashMap<crate::pipeline::event::Netns, Workload>,
) -> std::collections::HashMap<u32, Workload> {
    workloads
        .iter()
        .map(|(ns, w)| (ns.inode, w.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_namespace_is_named_by_its_pod() {
        let pod = crate::pipeline::fixtures::workload("9b2e7d4a1c6f", None);
        let names = NodeNames {
            namespaces: Namespaces::default(),
            workloads: [(7, pod)].into_iter().collect(),
            vanished: BTreeSet::from([8]),
        };
        assert_eq!(names.describe(7), "pod shop/web-7d9f");
        assert_eq!(
            names.describe(8),
            "netns inode 8 (gone: its process exited during the window)"
        );
    }
}
