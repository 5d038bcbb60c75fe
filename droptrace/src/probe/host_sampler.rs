//! The sampling of `droptrace diagnose`: the namespaces to sample chosen and held open,
//! sampled before the window; after it, sampled again with the ones where drops happened
//! that were not sampled before, and what a diagnosis needs of the host beside them
//! (peer namespaces, the conntrack log, route lookups asked in a namespace).
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Instant,
};

use super::{
    collect::{self, HeldNamespaces},
    filters::FilterSpec,
    netns::{own_inode, Namespaces},
    node_names::NodeNames,
    workloads::{HostPaths, Scan},
    Error,
};
use crate::{diagnose::raw::RawSnapshot, format::warn, pipeline::names::Workload};

/// The namespaces held open and their state before the window.
pub struct Before {
    names: Namespaces,
    held: HeldNamespaces,
    /// The namespace the filters chose (`--netns`, `--pod`, `--container`).
    pub chosen: Option<u32>,
    known_before: usize,
    cap: usize,
    log_before: usize,
    /// When the sample began: counters grow from then to the end of the next one.
    sampling: Instant,
    pub snapshots: BTreeMap<u32, RawSnapshot>,
}

/// Everything sampled after the window.
pub struct After {
    pub before: BTreeMap<u32, RawSnapshot>,
    pub after: BTreeMap<u32, RawSnapshot>,
    pub samples_secs: f64,
    /// "conntrack table full" lines logged between the samples.
    pub conntrack_log_lines: usize,
    /// Namespaces the report names as not sampled before the window, and why.
    pub not_sampled: Vec<String>,
    /// The namespaces, named as a diagnosis names them.
    pub names: NodeNames,
    /// (inode, path to enter it by) of every namespace sampled after the window.
    targets: Vec<(u32, Option<PathBuf>)>,
    /// Held open until the route lookups are answered.
    _held: (HeldNamespaces, HeldNamespaces),
}

impl Before {
    /// Chooses the namespaces (the one the filters name, else at most `cap`), opens them
    /// and samples them.
    pub fn sample(filters: &FilterSpec, host_root: &Path, cap: usize) -> Result<Before, Error> {
        let mut names = Namespaces::scan();
        // A pod or container chosen by name: its namespace is the one sampled. (The live
        // source resolves the filter again, and says what is wrong when it finds none.)
        let workload_path = if filters.pod.is_some() || filters.container.is_some() {
            let scan = Scan::run(&HostPaths::new(host_root));
            let found = match (&filters.pod, &filters.container) {
                (Some(pod), _) => crate::containers::parse_pod_arg(pod)
                    .map(|(ns, name)| scan.pod(&ns, &name))
                    .unwrap_or_default(),
                (None, Some(c)) => scan.container(c),
                (None, None) => Vec::new(),
            };
            match found.as_slice() {
                [one] => scan.paths.get(one).cloned(),
                _ => None,
            }
        } else {
            None
        };
        let chosen = match filters.netns.as_ref().or(workload_path.as_ref()) {
            Some(path) => Some(names.add(path).map_err(|source| Error::Netns {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        // Each namespace is opened once and entered through that descriptor afterwards,
        // so a process that exits (and a reused PID) cannot swap the namespace under us.
        // Containers can make thousands: at most `cap` are sampled before the window;
        // those where drops happen are sampled after it in any case.
        let inodes: Vec<u32> = match chosen {
            Some(inode) => vec![inode],
            None => names.all().take(cap).map(|(i, _)| i).collect(),
        };
        let (held, _) = HeldNamespaces::open(&names, &inodes);
        let known_before = names.len();
        if chosen.is_none() && known_before > cap {
            warn(&format!(
                "{known_before} network namespaces; sampling the first {cap} before the window \
                 (--max-namespaces) and, after it, every one where drops happened"
            ));
        }
        let log_before = collect::conntrack_full_lines();
        let sampling = Instant::now();
        let snapshots = held.snapshot();
        Ok(Before {
            names,
            held,
            chosen,
            known_before,
            cap,
            log_before,
            sampling,
            snapshots,
        })
    }

    /// Samples again, with the namespaces where drops happened (`dropped_in`) that were
    /// not sampled before; names them with `workloads`.
    pub fn after(
        mut self,
        dropped_in: &BTreeSet<u32>,
        workloads: std::collections::HashMap<u32, Workload>,
    ) -> After {
        let mut after = self.held.snapshot();
        let samples_secs = self.sampling.elapsed().as_secs_f64();
        let sampled: BTreeSet<u32> = self.held.inodes().collect();
        let wanted: Vec<u32> = dropped_in
            .iter()
            .copied()
            .filter(|i| *i != 0 && !sampled.contains(i))
            .collect();
        let (late, gone) = if wanted.is_empty() {
            (HeldNamespaces::default(), Vec::new())
        } else {
            if wanted.iter().any(|i| self.names.path(*i).is_none()) {
                self.names.absorb(Namespaces::scan());
            }
            let (late, gone) = HeldNamespaces::open(&self.names, &wanted);
            after.extend(late.snapshot());
            (late, gone)
        };
        let (known_before, cap) = (self.known_before, self.cap);
        let names = &self.names;
        let mut not_sampled: Vec<String> = late
            .inodes()
            .map(|i| {
                format!(
                    "{} was sampled only after the window: {known_before} namespaces were more than \
                     --max-namespaces {cap} before it, so what grew there in the window is unknown \
                     (choose it with --netns, or raise --max-namespaces)",
                    names.describe(i)
                )
            })
            .collect();
        not_sampled.extend(gone.iter().map(|i| {
            format!(
                "{}: drops happened there, but it was gone before it could be sampled",
                names.describe(*i)
            )
        }));
        // Namespaces deleted during the window: still sampled (held open), but a fix
        // cannot be run in them by their name any more.
        let vanished: BTreeSet<u32> = after
            .keys()
            .chain(&gone)
            .copied()
            .filter(|i| names.vanished(*i))
            .collect();
        let mut targets = self.held.targets().to_vec();
        targets.extend_from_slice(late.targets());
        // The namespaces at the other end of their veths, sampled or not (an MTU there
        // decides what the sender can send).
        let known: Vec<(u32, PathBuf)> = names.all().map(|(i, p)| (i, p.clone())).collect();
        for (inode, path) in &targets {
            if let Some(raw) = after.get_mut(inode) {
                let links = raw.commands.get("links").cloned().unwrap_or_default();
                raw.peer_namespaces = collect::peer_namespaces(path.as_deref(), &links, &known);
            }
        }
        let conntrack_log_lines = collect::conntrack_full_lines().saturating_sub(self.log_before);
        After {
            before: self.snapshots,
            after,
            samples_secs,
            conntrack_log_lines,
            not_sampled,
            names: NodeNames {
                namespaces: self.names,
                workloads,
                vanished,
            },
            targets,
            _held: (self.held, late),
        }
    }
}

impl After {
    /// The kernel's answer to `ip route get QUERY` in namespace `inode` (if sampled).
    pub fn route_get(&self, inode: u32, query: &str) -> Option<Result<String, String>> {
        let (_, path) = self.targets.iter().find(|(i, _)| *i == inode)?;
        Some(collect::route_get(path.as_deref(), query))
    }

    /// droptrace's own namespace.
    pub fn own_inode(&self) -> u32 {
        own_inode()
    }
}
