//! Sampling one network namespace for diagnose: the tools of `diagnose::raw::COMMANDS` run
//! inside it, and its /proc/net files and sysctls read from a thread inside it.
use std::{
    collections::BTreeMap,
    fs::File,
    path::{Path, PathBuf},
    process::Command,
};

use thiserror::Error;

use crate::diagnose::raw::{
    attached_prog_ids, clsact_devices, link_names, link_netnsids, route_get_args, PeerNamespace,
    RawSnapshot, COMMANDS, LINK_SYSCTLS, PROC_NET_FILES, SYSCTLS,
};

use super::netns::{in_netns, NetnsError};

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
        let mut values = BTreeMap::new();
        for path in &sysctls {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/sys/{path}")) {
                values.insert(path.clone(), text.trim().to_owned());
            }
        }
        (files, values)
    };
    match in_netns(netns, read) {
        Ok((files, values)) => {
            snap.proc_net = files;
            snap.sysctls = values;
        }
        Err(why) => snap.missing.push(format!("/proc/net and sysctls: {why}")),
    }
    snap
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
