//! The sampling of the live view's row diagnosis (`d`): the namespaces of a row opened and
//! held, sampled before and after the window, and named as `diagnose` names them.
use std::collections::HashMap;

use super::{
    collect::{self, HeldNamespaces},
    discover,
    netns::{own_inode, Namespaces},
    node_names::NodeNames,
};
use crate::{
    diagnose::session::{After, Before, RowSampler},
    pipeline::names::Workload,
};

/// This host's namespaces, sampled by the probe.
pub struct HostSampler;

/// Namespaces found, and the ones of the row held open between the samples.
pub struct Held {
    names: Namespaces,
    held: HeldNamespaces,
}

impl RowSampler for HostSampler {
    type Held = Held;

    fn own_inode(&self) -> u32 {
        own_inode()
    }

    fn has_btf(&self) -> bool {
        discover::has_btf()
    }

    fn before(&self, inodes: &[u32], places: &str) -> Result<Before<Held>, String> {
        let names = Namespaces::scan();
        let (held, _gone) = HeldNamespaces::open(&names, inodes);
        if held.is_empty() {
            return Err(format!(
                "the namespace of these drops is gone ({places}: no process or /run/netns entry holds it any more)"
            ));
        }
        let conntrack_log_lines = collect::conntrack_full_lines();
        let sampling = std::time::Instant::now();
        let snapshots = held.snapshot();
        Ok(Before {
            held: Held { names, held },
            snapshots,
            conntrack_log_lines,
            sampling,
        })
    }

    fn after(&self, before: Before<Held>, workloads: HashMap<u32, Workload>) -> After {
        let Held { names, held } = before.held;
        let after = held.snapshot();
        let samples_secs = before.sampling.elapsed().as_secs_f64();
        let conntrack_log_lines =
            collect::conntrack_full_lines().saturating_sub(before.conntrack_log_lines);
        let vanished = after
            .keys()
            .copied()
            .filter(|i| names.vanished(*i))
            .collect();
        After {
            before: before.snapshots,
            after,
            samples_secs,
            conntrack_log_lines,
            inodes: held.inodes().collect(),
            names: Box::new(NodeNames {
                namespaces: names,
                workloads,
                vanished,
            }),
        }
    }
}
