//! The live resolve step for places: names of the interfaces and namespaces drops happen
//! in. An interface index means something only inside its namespace, so each namespace is
//! entered (from a short-lived thread) to list its interfaces. Runs on the source's side,
//! never while drawing; what cannot be named is tried again after a while.
use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use crate::pipeline::{aggregate::Aggregator, event::Netns, names::Names};

use super::netns::{self, Namespaces};

/// How long before a namespace or interface that could not be named is tried again.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Places {
    namespaces: Option<Namespaces>,
    scanned: Option<Instant>,
    tried: HashMap<Netns, Instant>,
    /// (netns, ifindex) pairs seen on drops (looked up per drop: a fast hash).
    seen: rustc_hash::FxHashSet<(Netns, u32)>,
}

impl Places {
    /// Enters the namespace the last scan found on `ns`'s inode: `None` when there is none,
    /// it cannot be entered, or it is another one (its cookie differs); else its
    /// interfaces (when `interfaces`, or none).
    fn enter(&self, ns: Netns, interfaces: bool) -> Option<Vec<(u32, String)>> {
        let path = self.namespaces.as_ref()?.path(ns.inode)?;
        netns::in_netns(Some(path), || {
            (netns::own_cookie() == ns.cookie).then(|| {
                if interfaces {
                    netns::interfaces()
                } else {
                    Vec::new()
                }
            })
        })
        .ok()
        .flatten()
    }

    /// Names the place of a drop the first time it is seen; true when something was added.
    pub fn name_drop(&mut self, names: &mut Names, netns: Netns, ifindex: u32) -> bool {
        self.seen.insert((netns, ifindex)) && self.name(names, [(netns, ifindex)])
    }

    /// Tries again for the places of `agg` that have no name yet.
    pub fn retry(&mut self, names: &mut Names, agg: &Aggregator) -> bool {
        self.name(names, agg.groups().map(|(g, _)| (g.netns, g.ifindex)))
    }

    /// Adds names for the namespaces and interfaces of `places` that have none yet.
    fn name(&mut self, names: &mut Names, places: impl IntoIterator<Item = (Netns, u32)>) -> bool {
        let mut unknown_ns = HashSet::new();
        let mut unknown_if: HashSet<Netns> = HashSet::new();
        for (netns, ifindex) in places {
            if !netns.is_none() && !names.namespaces.contains_key(&netns) {
                unknown_ns.insert(netns);
            }
            if ifindex != 0 && !names.interfaces.contains_key(&(netns, ifindex)) {
                unknown_if.insert(netns);
            }
        }
        let now = Instant::now();
        let due = |tried: &HashMap<Netns, Instant>, ns: &Netns| {
            tried
                .get(ns)
                .is_none_or(|t| now.duration_since(*t) >= RETRY)
        };
        let wanted: Vec<Netns> = unknown_ns
            .union(&unknown_if)
            .copied()
            .filter(|ns| due(&self.tried, ns))
            .collect();
        if wanted.is_empty() {
            return false;
        }
        let stale = self.scanned.is_none_or(|t| now.duration_since(t) >= RETRY);
        let missing = |n: &Option<Namespaces>| {
            wanted
                .iter()
                .any(|i| n.as_ref().and_then(|n| n.path(i.inode)).is_none())
        };
        if stale && missing(&self.namespaces) {
            self.namespaces = Some(Namespaces::scan());
            self.scanned = Some(now);
        }
        let mut rescanned = false;
        let mut added = false;
        for ns in wanted {
            self.tried.insert(ns, now);
            let mut found = self.enter(ns, unknown_if.contains(&ns));
            if found.is_none() && !rescanned {
                // The scan's path for this inode opens another namespace (the kernel gave
                // a deleted one's inode to a new one) or none: the scan is out of date.
                self.namespaces = Some(Namespaces::scan());
                self.scanned = Some(now);
                rescanned = true;
                found = self.enter(ns, unknown_if.contains(&ns));
            }
            let (Some(interfaces), Some(known)) = (found, &self.namespaces) else {
                continue;
            };
            if unknown_ns.contains(&ns) {
                names.namespaces.insert(ns, known.label(ns.inode));
                added = true;
            }
            for (index, name) in interfaces {
                names.interfaces.insert((ns, index), name);
                added = true;
            }
        }
        added
    }
}
