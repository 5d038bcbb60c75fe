//! Names of the interfaces and namespaces drops happen in: an interface index means
//! something only inside its namespace, so each namespace is entered (from a short-lived
//! thread) to list its interfaces. Runs on the source side, never while drawing.
use std::{
    collections::{HashMap, HashSet},
    ffi::CStr,
    fs::File,
    os::fd::AsRawFd,
    path::Path,
    time::{Duration, Instant},
};

use crate::{aggregate::Aggregator, diagnose::netns::Namespaces, tui::snapshot::Names};

/// How long before a namespace or interface that could not be named is tried again.
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
pub struct Places {
    namespaces: Option<Namespaces>,
    scanned: Option<Instant>,
    tried: HashMap<u32, Instant>,
}

impl Places {
    /// Adds names for the namespaces and interfaces of `agg` that have none yet; true when
    /// something was added.
    pub fn learn(&mut self, names: &mut Names, agg: &Aggregator) -> bool {
        self.learn_places(names, agg.groups().map(|(g, _)| (g.netns, g.ifindex)))
    }

    /// As `learn`, for (netns, ifindex) pairs.
    pub fn learn_places(
        &mut self,
        names: &mut Names,
        places: impl IntoIterator<Item = (u32, u32)>,
    ) -> bool {
        let mut unknown_ns = HashSet::new();
        let mut unknown_if: HashSet<u32> = HashSet::new();
        for (netns, ifindex) in places {
            if netns != 0 && !names.namespaces.contains_key(&netns) {
                unknown_ns.insert(netns);
            }
            if ifindex != 0 && !names.interfaces.contains_key(&(netns, ifindex)) {
                unknown_if.insert(netns);
            }
        }
        let now = Instant::now();
        let due = |tried: &HashMap<u32, Instant>, ns: &u32| {
            tried
                .get(ns)
                .is_none_or(|t| now.duration_since(*t) >= RETRY)
        };
        let wanted: Vec<u32> = unknown_ns
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
                .any(|i| n.as_ref().and_then(|n| n.path(*i)).is_none())
        };
        if stale && missing(&self.namespaces) {
            self.namespaces = Some(Namespaces::scan());
            self.scanned = Some(now);
        }
        let Some(known) = &self.namespaces else {
            return false;
        };
        let mut added = false;
        for ns in wanted {
            self.tried.insert(ns, now);
            let Some(path) = known.path(ns) else { continue };
            if unknown_ns.contains(&ns) {
                names.namespaces.insert(ns, known.label(ns));
                added = true;
            }
            if unknown_if.contains(&ns) {
                for (index, name) in interfaces_in(path) {
                    names.interfaces.insert((ns, index), name);
                    added = true;
                }
            }
        }
        added
    }
}

/// Every interface of the namespace at `path`: (ifindex, name).
fn interfaces_in(path: &Path) -> Vec<(u32, String)> {
    let Ok(ns) = File::open(path) else {
        return Vec::new();
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a namespace fd we hold; it changes only this thread, which
            // ends right after.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Vec::new();
            }
            list_interfaces()
        })
        .join()
        .unwrap_or_default()
    })
}

fn list_interfaces() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    // SAFETY: if_nameindex returns an array ended by a zero entry, freed below.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return out;
        }
        let mut p = list;
        while (*p).if_index != 0 && !(*p).if_name.is_null() && out.len() < 65_536 {
            let name = CStr::from_ptr((*p).if_name).to_string_lossy().into_owned();
            out.push(((*p).if_index, name));
            p = p.add(1);
        }
        libc::if_freenameindex(list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_this_namespaces_interfaces() {
        let here = list_interfaces();
        // Every namespace has a loopback, and it is index 1.
        assert!(here.iter().any(|(i, n)| *i == 1 && n == "lo"), "{here:?}");
    }
}
