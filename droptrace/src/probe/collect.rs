//! Sampling one network namespace for diagnose: the tools of `diagnose::raw::COMMANDS` run
//! inside it, and its sockets (NETLINK_SOCK_DIAG dumps), /proc/net files and sysctls read
//! from a thread inside it.
use std::{
    collections::BTreeMap,
    fs::File,
    ops::ControlFlow,
    os::{fd::AsRawFd, unix::fs::PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use thiserror::Error;

use crate::{
    diagnose::{
        evidence::{
            holders::parse_fdinfo,
            ss::{self, Owners, SsProcess},
        },
        raw::{
            attached_ids, clsact_devices, link_names, link_netnsids, map_ids, needless,
            route_get_args, split_batch, valid_json_text, PeerNamespace, RawSnapshot, COMMANDS,
            IP_BATCHES, LINK_SYSCTLS, MACHINE_WIDE, MAX_BPF_FDS, PRESENCE_FILES, PROC_NET_FILES,
            SOCKET_DUMPS, SYSCTLS,
        },
    },
    kernel::sockdiag::{self, DiagSocket},
};

use super::{
    netns::{in_netns, own_inode, Namespaces, NetnsError},
    nlsock::NetlinkSocket,
};

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

/// Outputs of the tools whose answer is the same in every namespace
/// (`raw::MACHINE_WIDE`), run once per round of samples: by key, (stdout, stderr) or why
/// the tool could not run.
pub type MachineWide = BTreeMap<String, Result<(String, String), String>>;

/// Runs the machine-wide tools once, in droptrace's own namespace.
pub fn machine_wide() -> MachineWide {
    COMMANDS
        .iter()
        .filter(|(key, _, _)| MACHINE_WIDE.contains(key))
        .map(|(key, program, args)| {
            let out = run_in(None, program, args).map_err(|why| format!("{program}: {why}"));
            ((*key).to_owned(), out)
        })
        .collect()
}

/// The state of the namespace at `netns` (`None`: droptrace's own) now. Tools that would
/// print nothing there (what /proc shows says so) are not run, and ip answers the routes
/// and rules of a family in one run: an idle namespace costs six tool runs, not fifteen.
/// `owners`: the sockets' processes, walked once for the round when a namespace first
/// has a socket to name.
pub fn snapshot(
    netns: Option<&Path>,
    machine: &MachineWide,
    owners: &OnceLock<Owners>,
) -> RawSnapshot {
    let mut snap = RawSnapshot::default();
    let presence = in_netns(netns, || {
        PRESENCE_FILES
            .iter()
            .filter_map(|name| {
                let text = std::fs::read_to_string(format!("/proc/thread-self/net/{name}"));
                text.ok().map(|t| ((*name).to_owned(), t))
            })
            .collect::<BTreeMap<String, String>>()
    })
    .unwrap_or_default();
    run_tools(&System, netns, machine, &presence, &mut snap);
    sockets(netns, &presence, owners, &mut snap);
    let links = snap.commands.get("links").cloned().unwrap_or_default();
    snap.tcx = tcx_programs(netns, &link_names(&links));
    bpf_identity(&mut snap);
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
        (files, values, xfrm_dumps())
    };
    match in_netns(netns, read) {
        Ok((files, values, xfrm)) => {
            snap.proc_net = files;
            match xfrm {
                Ok(Some((policies, states))) => {
                    snap.xfrm_policies = Some(policies);
                    snap.xfrm_states = Some(states);
                }
                Ok(None) => {}
                Err(why) => snap
                    .missing
                    .push(format!("xfrm policies and states: {why}")),
            }
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

/// How a tool runs in a namespace: [`System`] runs the program there; the tests' canned
/// answers stand in for it.
pub trait Tools {
    /// (stdout, stderr) of `program args` in `netns` (`None`: droptrace's own), with
    /// `input` on its standard input.
    fn run(
        &self,
        netns: Option<&Path>,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<(String, String), CollectError>;
}

/// The programs themselves, run inside the namespace.
pub struct System;

impl Tools for System {
    fn run(
        &self,
        netns: Option<&Path>,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> Result<(String, String), CollectError> {
        match input {
            Some(input) => run_with_input(netns, program, args, input),
            None => run_in(netns, program, args),
        }
    }
}

/// The tools' part of a sample: each tool of `COMMANDS` that would print something there
/// (`presence`: what /proc showed), the routes, rules and neighbours of a family in one
/// `ip -batch` run (each alone when the batch fails), and the filters of every clsact
/// qdisc with their statistics (their text too where a policer's rate is only there).
fn run_tools(
    tools: &impl Tools,
    netns: Option<&Path>,
    machine: &MachineWide,
    presence: &BTreeMap<String, String>,
    snap: &mut RawSnapshot,
) {
    let batched = |key: &str| IP_BATCHES.iter().any(|(_, keys, _)| keys.contains(&key));
    for (key, program, args) in COMMANDS {
        let result = if let Some(shared) = machine.get(*key) {
            shared.clone()
        } else if batched(key) {
            continue;
        } else if needless(key, presence, snap.commands.get("nft").map(String::as_str)) {
            Ok((String::new(), String::new()))
        } else {
            tools
                .run(netns, program, args, None)
                .map_err(|why| format!("{program}: {why}"))
        };
        record(snap, key, result);
    }
    for (family, keys, lines) in IP_BATCHES {
        let input = lines.join("\n") + "\n";
        let parts = tools
            .run(netns, "ip", &["-j", family, "-batch", "-"], Some(&input))
            .ok()
            .and_then(|(out, _)| split_batch(&out, keys.len()));
        match parts {
            Some(parts) => {
                for (key, out) in keys.iter().zip(parts) {
                    snap.commands.insert((*key).to_owned(), out);
                }
            }
            // A command of the batch failed: each alone, to keep what ip says of it.
            None => {
                for (key, program, args) in COMMANDS.iter().filter(|c| keys.contains(&c.0)) {
                    let result = tools
                        .run(netns, program, args, None)
                        .map_err(|why| format!("{program}: {why}"));
                    record(snap, key, result);
                }
            }
        }
    }
    for (dev, dir) in clsact_devices(snap.commands.get("qdiscs").map(String::as_str)) {
        // With statistics: every action's packets and drops (a gact drop, a police).
        let args = [
            "-s",
            "-j",
            "filter",
            "show",
            "dev",
            dev.as_str(),
            dir.as_str(),
        ];
        match tools.run(netns, "tc", &args, None) {
            Ok((out, _)) => {
                // iproute2's JSON gives no police rate: its text does.
                if out.contains("\"kind\":\"police\"") {
                    let text = ["-s", "filter", "show", "dev", dev.as_str(), dir.as_str()];
                    match tools.run(netns, "tc", &text, None) {
                        Ok((text, _)) => {
                            snap.tc_filters_text
                                .insert((dev.clone(), dir.clone()), text);
                        }
                        Err(why) => snap
                            .missing
                            .push(format!("tc filter show dev {dev} {dir} (text): {why}")),
                    }
                }
                snap.tc_filters.insert((dev, dir), out);
            }
            Err(why) => snap
                .missing
                .push(format!("tc filter show dev {dev} {dir}: {why}")),
        }
    }
}

/// The namespace's TCP listeners, UDP sockets and TCP connections from the kernel
/// (`SOCKET_DUMPS`), kept as ss prints them with their owners; none asked for where
/// /proc showed there is nothing to list.
fn sockets(
    netns: Option<&Path>,
    presence: &BTreeMap<String, String>,
    owners: &OnceLock<Owners>,
    snap: &mut RawSnapshot,
) {
    let mut wanted = Vec::new();
    for &(key, protocol, states) in SOCKET_DUMPS {
        if needless(key, presence, None) {
            snap.commands.insert(key.to_owned(), String::new());
        } else {
            wanted.push((key, protocol, states));
        }
    }
    if wanted.is_empty() {
        return;
    }
    let (dumps, devices) = match in_netns(netns, || socket_dumps(&wanted)) {
        Ok(found) => found,
        Err(why) => {
            snap.missing.push(format!("sockets: {why}"));
            return;
        }
    };
    let nobody = Owners::new();
    for (key, dump) in dumps {
        match dump {
            Ok(list) => {
                let named = if list.iter().any(|s| s.inode != 0) {
                    owners.get_or_init(socket_owners)
                } else {
                    &nobody
                };
                snap.commands
                    .insert(key.to_owned(), ss::render(&list, named, &devices));
            }
            Err(why) => snap.missing.push(format!("sockets ({key}): {why}")),
        }
    }
}

/// Socket dumps answered, by key, with the names of the devices sockets are bound to.
type SocketDumps = (
    Vec<(&'static str, std::io::Result<Vec<DiagSocket>>)>,
    BTreeMap<u32, String>,
);

/// Dumps the sockets of `wanted` (key, protocol, states) of both families in the
/// namespace the calling thread is in.
fn socket_dumps(wanted: &[(&'static str, u8, u32)]) -> SocketDumps {
    let mut devices = BTreeMap::new();
    let mut out = Vec::new();
    for &(key, protocol, states) in wanted {
        let dump = || -> std::io::Result<Vec<DiagSocket>> {
            let mut list = Vec::new();
            for family in [sockdiag::AF_INET, sockdiag::AF_INET6] {
                // A socket of its own for each dump: one that failed half read leaves no
                // answer behind for the next.
                let mut socket = NetlinkSocket::open(sockdiag::NETLINK_SOCK_DIAG)?;
                let reply = socket.dump(&sockdiag::dump_request(family, protocol, states))?;
                list.extend(sockdiag::parse_dump(&reply).map_err(std::io::Error::other)?);
            }
            Ok(list)
        };
        let dump = dump();
        if let Ok(list) = &dump {
            for s in list.iter().filter(|s| s.ifindex != 0) {
                devices
                    .entry(s.ifindex)
                    .or_insert_with(|| device_name(s.ifindex));
            }
        }
        out.push((key, dump));
    }
    (out, devices)
}

/// The name of interface `ifindex` in the calling thread's namespace (`if7` when it is
/// gone, as ss says).
fn device_name(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: a buffer of IF_NAMESIZE bytes, as if_indextoname wants.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return format!("if{ifindex}");
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Every open descriptor on the host, as `f(pid, fd, link target)`, process by process,
/// until `f` breaks: the one walk of /proc/*/fd the samplers share.
fn each_descriptor(mut f: impl FnMut(u32, u32, &str) -> ControlFlow<()>) {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Some(n) = fd.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if f(pid, n, &target.to_string_lossy()).is_break() {
                return;
            }
        }
    }
}

/// Every process's socket descriptors by the socket's inode: one walk of /proc/*/fd for
/// every namespace of a round (inodes are unique on the host). Each socket's processes
/// come in ss's order, the last found first.
fn socket_owners() -> Owners {
    let mut owners = Owners::new();
    // The process name, read once per process that holds a socket.
    let mut comm: Option<(u32, String)> = None;
    each_descriptor(|pid, fd, target| {
        if let Some(inode) = ss::socket_inode(target) {
            if comm.as_ref().is_none_or(|(p, _)| *p != pid) {
                let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim_end_matches('\n').to_owned())
                    .unwrap_or_default();
                comm = Some((pid, name));
            }
            let name = comm.as_ref().map(|(_, n)| n.clone()).unwrap_or_default();
            owners.entry(inode).or_default().push(SsProcess {
                name,
                pid,
                fd: Some(fd),
            });
        }
        ControlFlow::Continue(())
    });
    for procs in owners.values_mut() {
        procs.sort_by_key(|p| std::cmp::Reverse((p.pid, p.fd)));
    }
    owners
}

/// The xfrm policies and states of the namespace the calling thread is in, as the kernel
/// sends them; `None` when the kernel has no xfrm (no NETLINK_XFRM).
fn xfrm_dumps() -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    use crate::kernel::xfrm::{dump_request, XFRM_MSG_GETPOLICY, XFRM_MSG_GETSA};
    let mut socket = match NetlinkSocket::open(libc::NETLINK_XFRM) {
        Ok(s) => s,
        Err(e) if e.raw_os_error() == Some(libc::EPROTONOSUPPORT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let policies = socket.dump(&dump_request(XFRM_MSG_GETPOLICY))?;
    let states = socket.dump(&dump_request(XFRM_MSG_GETSA))?;
    Ok(Some((policies, states)))
}

/// Keeps one tool's output, or why it could not run, under its key.
fn record(snap: &mut RawSnapshot, key: &str, result: Result<(String, String), String>) {
    match result {
        Ok((out, err)) => {
            snap.commands.insert(key.to_owned(), out);
            if !err.trim().is_empty() {
                snap.stderr.insert(key.to_owned(), err);
            }
        }
        Err(why) => snap.missing.push(why),
    }
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

    /// The state of every held namespace now, `PARALLEL` at a time (each worker takes
    /// the next namespace when it is done with one).
    pub fn snapshot(&self) -> BTreeMap<u32, RawSnapshot> {
        let machine = machine_wide();
        let owners = OnceLock::new();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((inode, path)) = self.targets.get(i) else {
                    return done;
                };
                done.push((*inode, snapshot(path.as_deref(), &machine, &owners)));
            }
        };
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..PARALLEL.min(self.targets.len()))
                .map(|_| s.spawn(work))
                .collect();
            workers
                .into_iter()
                .filter_map(|w| w.join().ok())
                .flatten()
                .collect()
        })
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

/// The tcx programs on each device, asked of the kernel. Kernels before 6.6 have no tcx:
/// the query fails and there is nothing to list.
fn tcx_programs(netns: Option<&Path>, devs: &[String]) -> BTreeMap<(String, String), Vec<u32>> {
    use aya::programs::{SchedClassifier, TcAttachType};
    let query = || {
        let mut out = BTreeMap::new();
        for dev in devs {
            for (dir, kind) in [
                ("ingress", TcAttachType::Ingress),
                ("egress", TcAttachType::Egress),
            ] {
                if let Ok((_, progs)) = SchedClassifier::query_tcx(dev, kind) {
                    let ids: Vec<u32> = progs.iter().map(aya::programs::ProgramInfo::id).collect();
                    if !ids.is_empty() {
                        out.insert((dev.clone(), dir.to_owned()), ids);
                    }
                }
            }
        }
        out
    };
    in_netns(netns, query).unwrap_or_default()
}

/// What the kernel knows of the programs attached in the namespace: their info with pinned
/// paths, their maps, the links holding them, and the processes that hold them open.
fn bpf_identity(snap: &mut RawSnapshot) {
    let ids = attached_ids(
        snap.commands.get("bpf-net").map(String::as_str),
        snap.commands.get("bpf-cgroup").map(String::as_str),
        &snap.tcx,
    );
    if ids.is_empty() {
        return;
    }
    for id in &ids {
        let id_text = id.to_string();
        if let Ok((out, _)) = run_in(
            None,
            "bpftool",
            &["-j", "-f", "prog", "show", "id", &id_text],
        ) {
            snap.bpf_progs.insert(*id, out);
        }
    }
    for id in map_ids(&snap.bpf_progs) {
        let id_text = id.to_string();
        if let Ok((out, _)) = run_in(None, "bpftool", &["-j", "map", "show", "id", &id_text]) {
            snap.bpf_maps.insert(id, out);
        }
    }
    snap.bpf_links = run_in(None, "bpftool", &["-j", "-f", "link", "show"])
        .ok()
        .map(|(out, _)| out);
    snap.bpf_fds = bpf_descriptors(&ids);
    for (pid, _) in &snap.bpf_fds {
        if snap.processes.contains_key(pid) {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        snap.processes
            .insert(*pid, (comm.trim().to_owned(), cmdline));
    }
}

/// The fdinfo of every process's BPF program and link descriptors that refer to `ids`.
fn bpf_descriptors(ids: &[u32]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    each_descriptor(|pid, fd, target| {
        if target != "anon_inode:bpf-prog" && target != "anon_inode:bpf_link" {
            return ControlFlow::Continue(());
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")) else {
            return ControlFlow::Continue(());
        };
        if parse_fdinfo(&text).is_some_and(|f| ids.contains(&f.prog_id)) {
            out.push((pid, text));
            if out.len() >= MAX_BPF_FDS {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    out
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

/// Runs a program inside the namespace with `input` on its standard input: (stdout,
/// stderr).
fn run_with_input(
    netns: Option<&Path>,
    program: &str,
    args: &[&str],
    input: &str,
) -> Result<(String, String), CollectError> {
    use std::{io::Write, process::Stdio};
    let run = || -> std::io::Result<std::process::Output> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Small enough for the pipe: written whole before reading.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes())?;
        }
        child.wait_with_output()
    };
    json_valid(args, outputs(in_netns(netns, run)?))
}

/// Runs a program inside the namespace (it inherits the entered thread's namespace):
/// (stdout, stderr).
fn run_in(
    netns: Option<&Path>,
    program: &str,
    args: &[&str],
) -> Result<(String, String), CollectError> {
    json_valid(
        args,
        outputs(in_netns(netns, || {
            Command::new(program).args(args).output()
        })?),
    )
}

/// The output of a tool asked for JSON (`-j`), with the raw control characters of names
/// escaped so that it parses (see `raw::valid_json_text`).
fn json_valid(
    args: &[&str],
    out: Result<(String, String), CollectError>,
) -> Result<(String, String), CollectError> {
    if !args.contains(&"-j") {
        return out;
    }
    out.map(|(stdout, stderr)| (valid_json_text(stdout), stderr))
}

/// A finished tool's (stdout, stderr), or why it did not run or failed.
fn outputs(out: std::io::Result<std::process::Output>) -> Result<(String, String), CollectError> {
    let out = out.map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CollectError::NotInstalled,
        _ => CollectError::Start(e),
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Captured outputs by command line; anything else is not installed. Keeps every
    /// command line it was asked to run.
    struct Canned {
        answers: BTreeMap<String, String>,
        ran: RefCell<Vec<String>>,
    }

    fn evidence(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/fixtures/evidence/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    impl Tools for Canned {
        fn run(
            &self,
            _netns: Option<&Path>,
            program: &str,
            args: &[&str],
            _input: Option<&str>,
        ) -> Result<(String, String), CollectError> {
            let line = format!("{program} {}", args.join(" "));
            self.ran.borrow_mut().push(line.clone());
            self.answers
                .get(&line)
                .map(|out| (out.clone(), String::new()))
                .ok_or(CollectError::NotInstalled)
        }
    }

    fn canned() -> Canned {
        let answers = [
            ("nft -a list ruleset", "nft-ruleset.txt"),
            ("tc -s -j qdisc show", "tc-qdisc.clsact.json"),
            (
                "tc -s -j filter show dev dtv1 ingress",
                "tc-filter.s.gact-police.json",
            ),
            (
                "tc -s filter show dev dtv1 ingress",
                "tc-filter.s.gact-police.txt",
            ),
            (
                "tc -s -j filter show dev dtv1 egress",
                "tc-filter.clsact-egress.json",
            ),
            // Captured when the batch had two commands: with three it is short, and each
            // is asked alone.
            ("ip -j -4 -batch -", "ip-batch.route-rule.v4.json"),
            (
                "ip -j -4 route show table all",
                "ip-route-all.rule-table.v4.json",
            ),
        ]
        .into_iter()
        .map(|(line, file)| (line.to_owned(), evidence(file)))
        .collect();
        Canned {
            answers,
            ran: RefCell::new(Vec::new()),
        }
    }

    /// /proc/net as a namespace with one TCP listener shows it: no legacy iptables
    /// table, no UDP socket.
    fn presence() -> BTreeMap<String, String> {
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n";
        [
            ("ip_tables_names", String::new()),
            ("ip6_tables_names", String::new()),
            ("tcp", evidence("proc-net-tcp.listen")),
            ("tcp6", evidence("proc-net-tcp6.empty")),
            ("udp", udp.to_owned()),
            ("udp6", udp.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn sample(tools: &Canned) -> RawSnapshot {
        let machine = MachineWide::from([(
            "bpf-cgroup".to_owned(),
            Ok(("[]".to_owned(), String::new())),
        )]);
        let mut snap = RawSnapshot::default();
        run_tools(tools, None, &machine, &presence(), &mut snap);
        snap
    }

    #[test]
    fn tools_that_would_print_nothing_are_not_run() {
        let tools = canned();
        let snap = sample(&tools);
        let ran = tools.ran.borrow();
        for skipped in ["iptables-legacy-save -c", "iptables-nft-save -c"] {
            assert!(!ran.iter().any(|l| l == skipped), "{skipped} ran: {ran:?}");
        }
        assert!(!ran.iter().any(|l| l.starts_with("ss ")), "{ran:?}");
        assert_eq!(snap.commands["iptables-legacy"], "");
        // The machine-wide tool is taken from the round's one run.
        assert!(!ran.iter().any(|l| l.starts_with("bpftool -j cgroup")));
        assert_eq!(snap.commands["bpf-cgroup"], "[]");
    }

    #[test]
    fn sockets_are_not_asked_for_where_proc_shows_none() {
        let mut presence = presence();
        let listen = presence["tcp6"].clone();
        presence.insert("tcp".to_owned(), listen);
        let owners = OnceLock::new();
        let mut snap = RawSnapshot::default();
        // A namespace that cannot be entered: nothing there is asked for.
        let nowhere = Path::new("/nonexistent/netns");
        sockets(Some(nowhere), &presence, &owners, &mut snap);
        for key in ["tcp-listen", "tcp-connected", "udp"] {
            assert_eq!(snap.commands[key], "", "{key}");
        }
        assert!(snap.missing.is_empty(), "{:?}", snap.missing);
        assert!(owners.get().is_none(), "no walk of /proc for no socket");
        // With a listener there, the dumps are asked for: the namespace could not be
        // entered, and that is said.
        sockets(Some(nowhere), &self::presence(), &owners, &mut snap);
        assert!(
            snap.missing.iter().any(|m| m.starts_with("sockets: ")),
            "{:?}",
            snap.missing
        );
    }

    #[test]
    fn a_tool_that_is_not_there_is_said_missing_and_the_rest_still_sampled() {
        let snap = sample(&canned());
        assert!(
            snap.missing.iter().any(|m| m == "bpftool: not installed"),
            "{:?}",
            snap.missing
        );
        assert_eq!(snap.commands["nft"], evidence("nft-ruleset.txt"));
    }

    #[test]
    fn a_short_ip_batch_falls_back_to_each_command_alone() {
        let tools = canned();
        let snap = sample(&tools);
        assert!(tools
            .ran
            .borrow()
            .iter()
            .any(|l| l == "ip -j -4 route show table all"));
        assert_eq!(
            snap.commands["routes4"],
            evidence("ip-route-all.rule-table.v4.json")
        );
    }

    #[test]
    fn clsact_filters_are_read_with_their_policers_text() {
        let snap = sample(&canned());
        let ingress = ("dtv1".to_owned(), "ingress".to_owned());
        let egress = ("dtv1".to_owned(), "egress".to_owned());
        assert_eq!(
            snap.tc_filters[&ingress],
            evidence("tc-filter.s.gact-police.json")
        );
        assert_eq!(
            snap.tc_filters_text[&ingress],
            evidence("tc-filter.s.gact-police.txt")
        );
        assert!(snap.tc_filters.contains_key(&egress));
        assert!(
            !snap.tc_filters_text.contains_key(&egress),
            "no policer there"
        );
    }
}
