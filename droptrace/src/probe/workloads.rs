//! The live resolve step for workloads: which container and pod a network namespace
//! belongs to, from nothing but what the node keeps (no Kubernetes API, no CRI socket).
//!
//! network namespace inode -> the processes in it (`/proc/*/ns/net`) -> their cgroup
//! (`/proc/PID/cgroup`: the container's ID, the runtime, the pod's UID) -> the runtime's
//! state for that ID: the OCI bundle's `config.json` (found beside the shim's working
//! directory, which is its bundle, or under the runtimes' state directories) or docker's
//! `config.v2.json`. The parsing is in `crate::containers`; this module only reads.
//!
//! Every existing namespace is named once at the start; namespaces that appear later are
//! named on a thread of their own when their first drop asks, so a lookup never blocks
//! the event path. Everything is read under `--host-root` (`/host` in a DaemonSet pod).
use std::{
    collections::{HashMap, HashSet},
    io::Read,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError},
    time::Duration,
};

use crate::{
    containers::{self, bundle, cgroup, Member},
    pipeline::{
        event::Netns,
        names::{Names, Workload},
    },
};

/// Processes of one namespace whose cgroups are read, at most (a pod's containers are
/// found among its first processes; a namespace of thousands must not cost thousands).
const MAX_PIDS: usize = 64;
/// Ancestors of a container's process whose working directory may be its shim's bundle.
const MAX_ANCESTORS: usize = 3;
/// Runtime state files are small; a larger one is not read.
const MAX_FILE: u64 = 1 << 20;
/// How long a namespace that named no container is looked at again, and how often.
const RETRY: Duration = Duration::from_secs(2);
const TRIES: u8 = 3;
/// Namespaces waiting to be named, at most (drops of more wait for a later try).
const QUEUE: usize = 4096;

/// Where the host's files are: `/` normally, the mount of the host's root in a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    root: PathBuf,
    proc: PathBuf,
}

impl HostPaths {
    /// The host's files under `root`; its processes under `root/proc`, or droptrace's own
    /// `/proc` when that is not mounted there (a pod with `hostPID: true`).
    pub fn new(root: &Path) -> HostPaths {
        let proc = root.join("proc");
        let proc = if proc.join("self").exists() || root == Path::new("/") {
            proc
        } else {
            PathBuf::from("/proc")
        };
        HostPaths {
            root: root.to_path_buf(),
            proc,
        }
    }

    fn under(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    fn pid(&self, pid: u32) -> PathBuf {
        self.proc.join(pid.to_string())
    }

    /// Namespaces no single container owns: the host's (pid 1's) and droptrace's own.
    fn shared(&self) -> HashSet<u32> {
        [
            self.pid(1).join("ns/net"),
            PathBuf::from("/proc/self/ns/net"),
        ]
        .iter()
        .filter_map(|p| inode(p))
        .collect()
    }
}

fn inode(path: &Path) -> Option<u32> {
    u32::try_from(std::fs::metadata(path).ok()?.ino()).ok()
}

/// The processes of every network namespace (at most `MAX_PIDS` each, lowest first).
pub fn processes(host: &HostPaths) -> HashMap<u32, Vec<u32>> {
    let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(dir) = std::fs::read_dir(&host.proc) else {
        return out;
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        if let Some(ns) = inode(&host.pid(pid).join("ns/net")) {
            let list = out.entry(ns).or_default();
            if list.len() < MAX_PIDS {
                list.push(pid);
            }
        }
    }
    out
}

/// The containers among `pids` (the processes of one namespace).
pub fn members(host: &HostPaths, pids: &[u32]) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for &pid in pids {
        let Some(text) = read_small(&host.pid(pid).join("cgroup")) else {
            continue;
        };
        let Some(cg) = cgroup::container_of(&text) else {
            continue;
        };
        if out.iter().any(|m| m.cgroup.id == cg.id) {
            continue;
        }
        let bundle = find_bundle(host, pid, &cg);
        if bundle.is_none() && !runtime_knows(host, &cg) {
            // A cgroup named like containerd's `/<namespace>/<id>` that no runtime keeps
            // (a sandbox manager's own cgroup, say): not a container.
            continue;
        }
        out.push(Member { cgroup: cg, bundle });
    }
    out
}

/// Whether a container named only by the shape of its cgroup path is one a runtime has:
/// containerd's `/<namespace>/<id>` needs containerd's task state for it.
fn runtime_knows(host: &HostPaths, cg: &cgroup::CgroupContainer) -> bool {
    match &cg.containerd_namespace {
        Some(ns) => host
            .under(&format!(
                "/run/containerd/io.containerd.runtime.v2.task/{ns}/{}",
                cg.id
            ))
            .exists(),
        None => true,
    }
}

/// What the runtime keeps about the container `cg` of process `pid`.
fn find_bundle(
    host: &HostPaths,
    pid: u32,
    cg: &cgroup::CgroupContainer,
) -> Option<bundle::BundleInfo> {
    let id = &cg.id;
    if matches!(cg.runtime, Some(cgroup::Runtime::Docker) | None) {
        let path = host.under(&format!("/var/lib/docker/containers/{id}/config.v2.json"));
        if let Some(info) = read_small(&path).and_then(|t| bundle::parse_docker_config(&t).ok()) {
            return Some(info);
        }
    }
    let oci = |path: &Path| read_small(path).and_then(|t| bundle::parse_oci_config(&t).ok());
    // A containerd shim runs in its bundle; a pod's containers share the sandbox's shim,
    // whose bundle is a sibling of theirs.
    let mut at = pid;
    for _ in 0..MAX_ANCESTORS {
        let Some(parent) = parent_of(host, at) else {
            break;
        };
        let cwd = host.pid(parent).join("cwd");
        if let Ok(target) = std::fs::read_link(&cwd) {
            let candidate = if target.file_name().is_some_and(|n| n == id.as_str()) {
                cwd.join("config.json")
            } else {
                cwd.join("..").join(id).join("config.json")
            };
            if let Some(info) = oci(&candidate) {
                return Some(info);
            }
        }
        at = parent;
    }
    // The runtimes' usual state directories.
    for base in [
        "/run/containerd/io.containerd.runtime.v2.task",
        "/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
        "/run/containerd/io.containerd.runtime.v1.linux",
    ] {
        let base = host.under(base);
        let namespaces: Vec<PathBuf> = match &cg.containerd_namespace {
            Some(ns) => vec![base.join(ns)],
            None => std::fs::read_dir(&base)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default(),
        };
        for ns in namespaces {
            if let Some(info) = oci(&ns.join(id).join("config.json")) {
                return Some(info);
            }
        }
    }
    for base in ["/run/containers/storage", "/var/lib/containers/storage"] {
        let path = host.under(&format!(
            "{base}/overlay-containers/{id}/userdata/config.json"
        ));
        if let Some(info) = oci(&path) {
            return Some(info);
        }
    }
    None
}

/// The parent of `pid`, from `/proc/PID/stat` (the field after the parenthesised name).
fn parent_of(host: &HostPaths, pid: u32) -> Option<u32> {
    let stat = read_small(&host.pid(pid).join("stat"))?;
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace()
        .nth(1)?
        .parse()
        .ok()
        .filter(|&p| p > 1)
}

fn read_small(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Every container namespace of the host, named: what one full scan finds.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    pub workloads: HashMap<u32, Workload>,
    /// The containers of each namespace, for `--container`.
    pub members: HashMap<u32, Vec<Member>>,
    /// A path that opens each namespace (`/proc/PID/ns/net`).
    pub paths: HashMap<u32, PathBuf>,
}

impl Scan {
    /// Names every namespace that belongs to a container (the host's own is shared by
    /// host-network pods and belongs to none).
    pub fn run(host: &HostPaths) -> Scan {
        let shared = host.shared();
        let mut scan = Scan::default();
        for (ns, pids) in processes(host) {
            if shared.contains(&ns) {
                continue;
            }
            let found = members(host, &pids);
            if let Some(w) = containers::workload(&found) {
                scan.workloads.insert(ns, w);
                scan.members.insert(ns, found);
                scan.paths.insert(ns, host.pid(pids[0]).join("ns/net"));
            }
        }
        scan
    }

    /// The workloads keyed as drops key namespaces: each namespace's inode and cookie
    /// (entered once to read it; one that cannot be entered is gone, or keyed by inode).
    pub fn by_netns(&self) -> HashMap<Netns, Workload> {
        self.workloads
            .iter()
            .map(|(&inode, w)| {
                let cookie = self.paths.get(&inode).map_or(0, |p| cookie_at(p));
                (Netns::new(inode, cookie), w.clone())
            })
            .collect()
    }

    /// The namespaces of pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .workloads
            .iter()
            .filter(|(_, w)| {
                w.pod
                    .as_ref()
                    .is_some_and(|p| p.namespace == namespace && p.name == name)
            })
            .map(|(ns, _)| *ns)
            .collect();
        out.sort_unstable();
        out
    }

    /// The namespaces holding a container named or identified by `query`.
    pub fn container(&self, query: &str) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .members
            .iter()
            .filter(|(_, ms)| ms.iter().any(|m| containers::names_member(m, query)))
            .map(|(ns, _)| *ns)
            .collect();
        out.sort_unstable();
        out
    }
}

/// The cookie of the namespace at `path` (0 when it cannot be entered or has none).
fn cookie_at(path: &Path) -> u64 {
    super::netns::in_netns(Some(path), super::netns::own_cookie).unwrap_or(0)
}

/// Names namespaces that appear after the start, on a thread of its own: the event path
/// asks ([`WorkloadResolver::want`], a hash lookup) and takes the answers
/// ([`WorkloadResolver::take`]) without waiting.
pub struct WorkloadResolver {
    requests: SyncSender<Netns>,
    answers: Receiver<(Netns, Option<Workload>)>,
    asked: rustc_hash::FxHashSet<Netns>,
    /// Asked and not answered yet (a first answer may be "none yet").
    unanswered: HashSet<Netns>,
}

impl WorkloadResolver {
    /// Starts the thread; `known` are the namespaces named already (by a [`Scan`]).
    pub fn start(host: HostPaths, known: impl IntoIterator<Item = Netns>) -> WorkloadResolver {
        let (requests, inbox) = mpsc::sync_channel(QUEUE);
        let (outbox, answers) = mpsc::sync_channel(QUEUE);
        let mut asked: rustc_hash::FxHashSet<Netns> = known.into_iter().collect();
        // The shared namespaces (the host's) belong to no workload.
        let own = super::netns::own();
        asked.extend(
            host.shared()
                .into_iter()
                .map(|inode| Netns::new(inode, if inode == own.inode { own.cookie } else { 0 })),
        );
        asked.insert(Netns::NONE);
        let spawned = std::thread::Builder::new()
            .name("droptrace-workloads".into())
            .spawn(move || resolve_loop(&host, &inbox, &outbox));
        if spawned.is_err() {
            crate::format::warn("could not start the thread that names containers");
        }
        WorkloadResolver {
            requests,
            answers,
            asked,
            unanswered: HashSet::new(),
        }
    }

    /// Asks for the workload of a namespace seen on a drop (once per namespace).
    #[inline]
    pub fn want(&mut self, netns: Netns) {
        if !self.asked.contains(&netns) && self.requests.try_send(netns).is_ok() {
            self.asked.insert(netns);
            self.unanswered.insert(netns);
        }
    }

    /// Adds the answers that came; true when something was added.
    pub fn take(&mut self, names: &mut Names) -> bool {
        let mut added = false;
        loop {
            match self.answers.try_recv() {
                Ok((ns, w)) => {
                    self.unanswered.remove(&ns);
                    if let Some(w) = w {
                        names.workloads.insert(ns, w);
                        added = true;
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return added,
            }
        }
    }

    /// At the end of a run: waits (at most `limit`) until every namespace asked about has
    /// had its first answer, so the final figures carry the names of late namespaces too.
    pub fn settle(&mut self, names: &mut Names, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            self.take(names);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.unanswered.is_empty() || left.is_zero() {
                return;
            }
            match self.answers.recv_timeout(left) {
                Ok((ns, w)) => {
                    self.unanswered.remove(&ns);
                    if let Some(w) = w {
                        names.workloads.insert(ns, w);
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// Answers requests until the source goes away: each wake-up scans the processes once
/// for every namespace waiting, and a namespace that named no container is tried again
/// a few times (its container may have been starting).
fn resolve_loop(
    host: &HostPaths,
    inbox: &Receiver<Netns>,
    outbox: &SyncSender<(Netns, Option<Workload>)>,
) {
    let mut waiting: HashMap<Netns, u8> = HashMap::new();
    loop {
        let next = if waiting.is_empty() {
            inbox.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            inbox.recv_timeout(RETRY)
        };
        match next {
            Ok(ns) => {
                waiting.entry(ns).or_insert(0);
                while let Ok(ns) = inbox.try_recv() {
                    waiting.entry(ns).or_insert(0);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let processes = processes(host);
        let mut done = Vec::new();
        for (ns, tries) in &mut waiting {
            // The processes in the namespace now at its inode: not the drops' namespace
            // when the kernel gave a deleted one's inode to a new one (cookies differ).
            let found = processes
                .get(&ns.inode)
                .filter(|pids| {
                    ns.cookie == 0 || cookie_at(&host.pid(pids[0]).join("ns/net")) == ns.cookie
                })
                .and_then(|pids| containers::workload(&members(host, pids)));
            *tries += 1;
            let finished = found.is_some() || *tries >= TRIES;
            // The first try always answers (perhaps "none yet"); later ones only with a name.
            if (found.is_some() || *tries == 1) && outbox.send((*ns, found)).is_err() {
                return;
            }
            if finished {
                done.push(*ns);
            }
        }
        for ns in done {
            waiting.remove(&ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's files as a runtime leaves them, in a directory of the test's own: two
    /// processes of a pod's container in one network namespace (a file both `ns/net` are
    /// hard links to, so they share its inode as a namespace's processes share its
    /// nsfs inode), one process of a namespace with no container, and the container's
    /// bundle in containerd's state.
    struct Node(PathBuf);

    impl Node {
        fn new(name: &str) -> Node {
            let root =
                std::env::temp_dir().join(format!("droptrace-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc/self")).unwrap();
            Node(root)
        }

        fn file(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn process(&self, pid: u32, netns: &str, cgroup: &str) {
            let ns = self.0.join(netns);
            if !ns.exists() {
                std::fs::write(&ns, "").unwrap();
            }
            std::fs::create_dir_all(self.0.join(format!("proc/{pid}/ns"))).unwrap();
            std::fs::hard_link(&ns, self.0.join(format!("proc/{pid}/ns/net"))).unwrap();
            self.file(&format!("proc/{pid}/cgroup"), cgroup);
            self.file(
                &format!("proc/{pid}/stat"),
                &format!("{pid} (sh) S 1 {pid} {pid} 0"),
            );
        }

        fn inode(&self, netns: &str) -> u32 {
            u32::try_from(std::fs::metadata(self.0.join(netns)).unwrap().ino()).unwrap()
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/containers/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn a_pods_namespace_is_named_from_what_the_node_keeps() {
        let node = Node::new("workloads");
        let cgroup = fixture("containerd.systemd.v2.cgroup");
        let id = "9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b";
        node.process(4242, "netns-pod", &cgroup);
        node.process(4243, "netns-pod", &cgroup);
        node.process(4300, "netns-plain", "0::/user.slice/session-1.scope\n");
        node.file(
            &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json"),
            &fixture("containerd-1.6.20.container.config.json"),
        );
        let scan = Scan::run(&HostPaths::new(&node.0));
        let pod = node.inode("netns-pod");
        assert_eq!(scan.workloads.len(), 1, "{:?}", scan.workloads);
        assert_eq!(scan.workloads[&pod].short(), "shop/web-7d9f");
        assert_eq!(scan.workloads[&pod].container.name, "web");
        assert_eq!(scan.members[&pod].len(), 1, "two processes, one container");
        assert_eq!(scan.pod("shop", "web-7d9f"), [pod]);
        assert_eq!(scan.container(&id[..12]), [pod]);
        assert!(scan.container("nginx").is_empty());
        assert_eq!(
            scan.paths[&pod],
            node.0.join("proc/4242/ns/net"),
            "opened through its first process"
        );
    }

    #[test]
    fn a_cgroup_shaped_like_containerds_that_no_runtime_keeps_is_no_container() {
        let node = Node::new("workloads-stray");
        let id = "4c1f9e2b7a3d5c8e0f6b2a9d4e7c1b3f5a8d0e2c6b9f4a7e1d3c5b8f0a2e6d9c";
        node.process(5000, "netns-stray", &format!("0::/k8s.io/{id}\n"));
        let scan = Scan::run(&HostPaths::new(&node.0));
        assert!(scan.workloads.is_empty(), "{:?}", scan.workloads);
        // The same cgroup once containerd keeps the task: a container.
        node.file(
            &format!("run/containerd/io.containerd.runtime.v2.task/k8s.io/{id}/config.json"),
            &fixture("containerd-1.6.20.container.config.json"),
        );
        let scan = Scan::run(&HostPaths::new(&node.0));
        assert_eq!(scan.workloads.len(), 1, "{:?}", scan.workloads);
    }
}
