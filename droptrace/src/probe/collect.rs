//! Sampling one network namespace for diagnose: the tools of `diagnose::raw::COMMANDS` run
//! inside it, and its /proc/net files and sysctls read from a thread inside it.
use std::{
    collections::BTreeMap,
    fs::File,
    os::{fd::AsRawFd, unix::fs::PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use thiserror::Error;

use crate::diagnose::raw::{
    attached_prog_ids, clsact_devices, link_names, link_netnsids, route_get_args, PeerNamespace,
    RawSnapshot, COMMANDS, LINK_SYSCTLS, PROC_NET_FILES, SYSCTLS,
};

use super::netns::{in_netns, own_inode, Namespaces, NetnsError};

/// Namespaces sampled at once.
const PARALLEL: usize = 4;

/// Why one piece of evidence could not be collected.
#[derive(Debug, Error)]
pub enum CollectError {
    #[error("not installed")]
    NotInstalled,
    #[error("{0}")]
    Start(std::io::Error),
    /// The tool ran and failed: the first line it printed on stderr.
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// The state of the namespace at `netns` (`None`: droptrace's own) now.
pub fn snapshot(netns: Option<&Path>) -> RawSnapshot {
    let mut snap = RawSnapshot::default();
    for (key, program, args) in COMMANDS {
        match run_in(netns, program, args) {
            Ok((out, err)) => {
                snap.commands.insert((*key).to_owned(), out);
                if !err.trim().is_empty() {
                    snap.stderr.insert((*key).to_owned(), err);
                }
            }
            Err(why) => snap.missing.push(format!("{program}: {why}")),
        }
    }
    for (dev, dir) in clsact_devices(snap.commands.get("qdiscs").map(String::as_str)) {
        let args = ["-j", "filter", "show", "dev", dev.as_str(), dir.as_str()];
        match run_in(netns, "tc", &args) {
            Ok((out, _)) => {
                snap.tc_filters.insert((dev, dir), out);
            }
            Err(why) => snap
                .missing
                .push(format!("tc filter show dev {dev} {dir}: {why}")),
        }
    }
    for id in attached_prog_ids(snap.commands.get("bpf-net").map(String::as_str)) {
        let id_text = id.to_string();
        if let Ok((out, _)) = run_in(None, "bpftool", &["-j", "prog", "show", "id", &id_text]) {
            snap.bpf_progs.insert(id, out);
        }
    }
    let links = snap.commands.get("links").cloned().unwrap_or_default();
    let mut sysctls: Vec<String> = SYSCTLS.iter().map(|s| (*s).to_owned()).collect();
    for name in link_names(&links) {
        sysctls.extend(LINK_SYSCTLS.iter().map(|s| s.replace("{}", &name)));
    }
    let read = move || {
        let mut files = BTreeMap::new();
        for name in PROC_NET_FILES {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{name}")) {
                files.insert((*name).to_owned(), text);
            }
        }
        let values: Vec<(String, Option<Sysctl>)> = sysctls
            .iter()
            .map(|p| (p.clone(), read_sysctl(p)))
            .collect();
        (files, values)
    };
    match in_netns(netns, read) {
        Ok((files, values)) => {
            snap.proc_net = files;
            for (path, value) in values {
                match value {
                    Some(v) if v.writable => {
                        snap.sysctls.insert(path, v.value);
                    }
                    // Read-only here: the namespace shows a value it cannot change.
                    Some(v) => {
                        snap.sysctls.insert(path.clone(), v.value);
                        snap.global_sysctls.insert(path);
                    }
                    // Absent in another namespace: the global one, from our own.
                    None if netns.is_some() && !is_per_link(&path) => {
                        if let Some(v) = read_sysctl(&path) {
                            snap.sysctls.insert(path.clone(), v.value);
                            snap.global_sysctls.insert(path);
                        }
                    }
                    None => {}
                }
            }
        }
        Err(why) => snap.missing.push(format!("/proc/net and sysctls: {why}")),
    }
    snap
}

/// Namespaces opened once, to be sampled before and after a window: each is entered
/// through the descriptor held here, so a process that exits (and a reused PID) cannot
/// swap a namespace under the diagnosis.
#[derive(Debug, Default)]
pub struct HeldNamespaces {
    _files: Vec<File>,
    /// (inode, path to enter it by; `None` for droptrace's own).
    targets: Vec<(u32, Option<PathBuf>)>,
}

impl HeldNamespaces {
    /// Opens the namespaces `inodes` that `names` knows; returns those it could not
    /// (gone, or never known) apart.
    pub fn open(names: &Namespaces, inodes: &[u32]) -> (HeldNamespaces, Vec<u32>) {
        let own = own_inode();
        let mut held = HeldNamespaces::default();
        let mut gone = Vec::new();
        for &inode in inodes {
            if inode == own {
                held.targets.push((inode, None));
                continue;
            }
            match names.path(inode).and_then(|p| File::open(p).ok()) {
                Some(file) => {
                    let fd_path = PathBuf::from(format!(
                        "/proc/{}/fd/{}",
                        std::process::id(),
                        file.as_raw_fd()
                    ));
                    held._files.push(file);
                    held.targets.push((inode, Some(fd_path)));
                }
                None => gone.push(inode),
            }
        }
        (held, gone)
    }

    /// (inode, path to enter it by while this is held; `None` for droptrace's own).
    pub fn targets(&self) -> &[(u32, Option<PathBuf>)] {
        &self.targets
    }

    pub fn inodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.targets.iter().map(|t| t.0)
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The state of every held namespace now, a few at a time.
    pub fn snapshot(&self) -> BTreeMap<u32, RawSnapshot> {
        let mut out = BTreeMap::new();
        for chunk in self.targets.chunks(PARALLEL) {
            std::thread::scope(|s| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|(inode, path)| (*inode, s.spawn(move || snapshot(path.as_deref()))))
                    .collect();
                for (inode, h) in handles {
                    if let Ok(snap) = h.join() {
                        out.insert(inode, snap);
                    }
                }
            });
        }
        out
    }
}

/// Kernel-log lines saying conntrack's table was full (the log keeps old ones: compare
/// two counts).
pub fn conntrack_full_lines() -> usize {
    kernel_log().map_or(0, |log| {
        log.lines()
            .filter(|l| l.contains("nf_conntrack: table full, dropping packet"))
            .count()
    })
}

struct Sysctl {
    value: String,
    writable: bool,
}

/// A sysctl in the calling thread's network namespace; None when it has no such file.
fn read_sysctl(path: &str) -> Option<Sysctl> {
    let file = format!("/proc/sys/{path}");
    let value = std::fs::read_to_string(&file).ok()?.trim().to_owned();
    let writable = std::fs::metadata(&file).is_ok_and(|m| m.permissions().mode() & 0o200 != 0);
    Some(Sysctl { value, writable })
}

/// `net/ipv4/conf/IFACE/...`: an interface of that namespace only, never a global one.
fn is_per_link(path: &str) -> bool {
    path.strip_prefix("net/ipv4/conf/")
        .is_some_and(|rest| !rest.starts_with("all/") && !rest.starts_with("default/"))
}

/// The namespaces the pair devices of the namespace at `netns` lead to, found among
/// `candidates` by asking the kernel which id each has there (see `probe::nsid`), with
/// their interfaces.
pub fn peer_namespaces(
    netns: Option<&Path>,
    links_json: &str,
    candidates: &[(u32, PathBuf)],
) -> BTreeMap<i32, PeerNamespace> {
    let mut wanted = link_netnsids(links_json);
    let mut out = BTreeMap::new();
    for (inode, path) in candidates {
        if wanted.is_empty() {
            break;
        }
        let Ok(file) = File::open(path) else { continue };
        let Some(id) = super::nsid::nsid_of(netns, &file) else {
            continue;
        };
        let Some(at) = wanted.iter().position(|w| *w == id) else {
            continue;
        };
        wanted.remove(at);
        if let Ok((links, _)) = run_in(Some(path), "ip", &["-j", "-d", "link", "show"]) {
            out.insert(
                id,
                PeerNamespace {
                    inode: *inode,
                    links,
                },
            );
        }
    }
    out
}

/// The kernel's answer to one route lookup in the namespace (`ip -j route get QUERY`):
/// its JSON, or what ip said when the lookup failed ("RTNETLINK answers: No route to
/// host"), which is the answer too.
pub fn route_get(netns: Option<&Path>, query: &str) -> Result<String, String> {
    let args = route_get_args(query);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_in(netns, "ip", &args)
        .map(|(out, _)| out)
        .map_err(|e| e.to_string())
}

/// The kernel log, for conntrack's "table full" lines (global, not per namespace).
pub fn kernel_log() -> Option<String> {
    let out = Command::new("dmesg").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a program inside the namespace (it inherits the entered thread's namespace):
/// (stdout, stderr).
fn run_in(
    netns: Option<&Path>,
    program: &str,
    args: &[&str],
) -> Result<(String, String), CollectError> {
    let out =
        in_netns(netns, || Command::new(program).args(args).output())?.map_err(|e| {
            match e.kind() {
                std::io::ErrorKind::NotFound => CollectError::NotInstalled,
                _ => CollectError::Start(e),
            }
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("failed").trim();
        return Err(CollectError::Failed(first.to_owned()));
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}
