//! Network namespaces: finding them, naming them, and entering one from a short-lived
//! thread ([`in_netns`], the one place droptrace calls setns). Drops carry a namespace's
//! inode; interfaces, tools and /proc/net files mean something only inside it.
use std::{
    collections::BTreeMap,
    ffi::{CStr, CString},
    fs::File,
    os::{fd::AsRawFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use thiserror::Error;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::pipeline::event::Netns;

/// Why code could not run inside a namespace.
#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("opening {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("entering {}: {source}", path.display())]
    Enter {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the thread inside {} failed", path.display())]
    Thread { path: PathBuf },
}

/// Runs `f` inside the network namespace at `netns` (`None`: droptrace's own), on a
/// thread of its own: setns changes only the calling thread, which ends right after.
/// Programs started by `f` inherit the namespace.
pub fn in_netns<T: Send>(
    netns: Option<&Path>,
    f: impl FnOnce() -> T + Send,
) -> Result<T, NetnsError> {
    let Some(path) = netns else {
        return Ok(f());
    };
    let file = File::open(path).map_err(|source| NetnsError::Open {
        path: path.to_owned(),
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a namespace fd we hold open; it changes only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(NetnsError::Enter {
                    path: path.to_owned(),
                    source: std::io::Error::last_os_error(),
                });
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Thread {
                path: path.to_owned(),
            })
        })
    })
}

/// The inode that identifies a network namespace (what the kernel calls `ns.inum`), after
/// checking that the file is one (any other file would silently match nothing).
pub fn netns_inode(path: &Path) -> std::io::Result<u32> {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let file = File::open(path)?;
    // SAFETY: an ioctl without argument on a file we hold open.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind != libc::CLONE_NEWNET {
        return Err(std::io::Error::other(
            "not a network namespace (give /run/netns/NAME or /proc/PID/ns/net)",
        ));
    }
    u32::try_from(file.metadata()?.ino()).map_err(|_| std::io::Error::other("not a namespace file"))
}

/// The inode of droptrace's own namespace (0 if unknown).
pub fn own_inode() -> u32 {
    std::fs::metadata(OWN).map_or(0, |m| u32::try_from(m.ino()).unwrap_or(0))
}

/// Whether drops carry namespace cookies (the kernel program reads `net_cookie`): then
/// [`own_cookie`] reads them too, else it says 0 so that both sides key namespaces alike.
static COOKIES: AtomicBool = AtomicBool::new(false);

/// Says whether the kernel program reads namespace cookies (set once, at attach).
pub fn set_cookies(on: bool) {
    COOKIES.store(on, Ordering::Relaxed);
}

/// The cookie of the namespace the calling thread is in (call it through [`in_netns`]
/// for another): what the kernel program reads as `net_cookie`. 0 when drops carry no
/// cookies, or the kernel has none (before 5.14).
pub fn own_cookie() -> u64 {
    if !COOKIES.load(Ordering::Relaxed) {
        return 0;
    }
    // Not in the libc crate for every target; the value is the same on every arch.
    const SO_NETNS_COOKIE: libc::c_int = 71;
    // SAFETY: a socket we close below; getsockopt writes at most `len` bytes into `cookie`.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return 0;
        }
        let mut cookie: u64 = 0;
        let mut len = size_of::<u64>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        );
        libc::close(fd);
        if rc == 0 {
            cookie
        } else {
            0
        }
    }
}

/// Droptrace's own namespace as drops name it.
pub fn own() -> Netns {
    Netns::new(own_inode(), own_cookie())
}

/// The index of the interface `name` in droptrace's namespace; `None` when there is none.
pub fn ifindex(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(cname.as_ptr()) } {
        0 => None,
        index => Some(index),
    }
}

/// Every interface of droptrace's namespace (call it through [`in_netns`] for another):
/// (ifindex, name).
pub fn interfaces() -> Vec<(u32, String)> {
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

const OWN: &str = "/proc/self/ns/net";

/// How a namespace was found, which is how people know it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// droptrace's own.
    Own,
    /// `ip netns` (/run/netns/NAME).
    Named(String),
    /// A process's (/proc/PID/ns/net).
    Process { comm: String, pid: u32 },
    /// A path the user gave (`--netns`).
    Given(String),
}

/// Known namespaces: inode -> a path that opens it, and how it was found.
#[derive(Debug, Default, Clone)]
pub struct Namespaces {
    by_inode: BTreeMap<u32, (PathBuf, Found)>,
}

impl Namespaces {
    /// Scans droptrace's own, /run/netns (named namespaces) and /proc/*/ns/net (every
    /// process's).
    pub fn scan() -> Namespaces {
        let mut ns = Namespaces::default();
        if let Ok(me) = std::fs::metadata(OWN) {
            ns.insert(me.ino(), PathBuf::from(OWN), Found::Own);
        }
        if let Ok(dir) = std::fs::read_dir("/run/netns") {
            for e in dir.flatten() {
                if let Ok(meta) = std::fs::metadata(e.path()) {
                    let name = e.file_name().to_string_lossy().into_owned();
                    ns.insert(meta.ino(), e.path(), Found::Named(name));
                }
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let path = e.path().join("ns/net");
                if let Ok(meta) = std::fs::metadata(&path) {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    let comm = comm.trim().to_owned();
                    ns.insert(meta.ino(), path, Found::Process { comm, pid });
                }
            }
        }
        ns
    }

    fn insert(&mut self, inode: u64, path: PathBuf, found: Found) {
        if let Ok(inode) = u32::try_from(inode) {
            self.by_inode.entry(inode).or_insert((path, found));
        }
    }

    /// Adds a namespace the user named (any path, e.g. /var/run/docker/netns/x); it takes
    /// precedence for naming and entering, but for droptrace's own. Returns its inode.
    pub fn add(&mut self, path: &Path) -> std::io::Result<u32> {
        let inode = u32::try_from(std::fs::metadata(path)?.ino())
            .map_err(|_| std::io::Error::other("not a namespace file"))?;
        let pid = path
            .strip_prefix("/proc")
            .ok()
            .and_then(|rest| rest.components().next())
            .and_then(|c| c.as_os_str().to_str()?.parse::<u32>().ok());
        let found = match (path.strip_prefix("/run/netns"), pid) {
            (Ok(rest), _) => Found::Named(rest.display().to_string()),
            (_, Some(pid)) => {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                Found::Process {
                    comm: comm.trim().to_owned(),
                    pid,
                }
            }
            _ => Found::Given(path.display().to_string()),
        };
        if self
            .by_inode
            .get(&inode)
            .is_none_or(|(_, f)| *f != Found::Own)
        {
            self.by_inode.insert(inode, (path.to_path_buf(), found));
        }
        Ok(inode)
    }

    /// Adds the namespaces `other` found that this does not know (a scan made later).
    pub fn absorb(&mut self, other: Namespaces) {
        for (inode, entry) in other.by_inode {
            self.by_inode.entry(inode).or_insert(entry);
        }
    }

    /// Whether the name it was found by no longer leads to it: `ip netns delete` (or its
    /// process exited) since the scan. droptrace's own never vanishes.
    pub fn vanished(&self, inode: u32) -> bool {
        match self.by_inode.get(&inode) {
            None | Some((_, Found::Own)) => false,
            Some((path, _)) => {
                std::fs::metadata(path).map_or(true, |m| m.ino() != u64::from(inode))
            }
        }
    }

    /// Every namespace: inode and a path that opens it.
    pub fn all(&self) -> impl Iterator<Item = (u32, &PathBuf)> {
        self.by_inode.iter().map(|(i, (p, _))| (*i, p))
    }

    pub fn len(&self) -> usize {
        self.by_inode.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_inode.is_empty()
    }

    pub fn path(&self, inode: u32) -> Option<&PathBuf> {
        self.by_inode.get(&inode).map(|(p, _)| p)
    }

    /// A short label for tables: `web` (/run/netns/web), `host` (droptrace's own),
    /// `nginx:812` (a process's), the path given, or the inode.
    pub fn label(&self, inode: u32) -> String {
        match self.by_inode.get(&inode).map(|(_, f)| f) {
            Some(Found::Own) => "host".into(),
            Some(Found::Named(name) | Found::Given(name)) => name.clone(),
            Some(Found::Process { comm, pid }) => format!("{comm}:{pid}"),
            None => inode.to_string(),
        }
    }

    /// The name metrics give it: its name under /run/netns, `host` for droptrace's own,
    /// else `inode:N` (process ids come and go; series must not).
    pub fn metric_label(&self, inode: u32) -> String {
        match self.by_inode.get(&inode) {
            Some((_, Found::Own)) => "host".into(),
            Some((p, Found::Named(name))) if p.starts_with("/run/netns") => name.clone(),
            _ => format!("inode:{inode}"),
        }
    }

    /// "netns web", "the netns of nginx (pid 812)", or the inode.
    pub fn describe(&self, inode: u32) -> String {
        match self.by_inode.get(&inode).map(|(_, f)| f) {
            Some(Found::Own) => "the host namespace".into(),
            Some(Found::Named(name)) => format!("netns {name}"),
            Some(Found::Given(name)) => format!("the netns at {name}"),
            Some(Found::Process { comm, pid }) => format!("the netns of {comm} (pid {pid})"),
            None => format!("netns inode {inode}"),
        }
    }

    /// A name that stays the same across runs and hosts, to match namespaces with a
    /// baseline: like `describe`, but without a PID (None for a namespace not found).
    pub fn stable_name(&self, inode: u32) -> Option<String> {
        match self.by_inode.get(&inode).map(|(_, f)| f)? {
            Found::Process { comm, .. } => Some(format!("the netns of {comm}")),
            _ => Some(self.describe(inode)),
        }
    }

    /// Whether the namespace has a name of its own (`ip netns`, droptrace's, a given path).
    pub fn has_own_name(&self, inode: u32) -> bool {
        matches!(
            self.by_inode.get(&inode).map(|(_, f)| f),
            Some(Found::Own | Found::Named(_) | Found::Given(_))
        )
    }

    /// The prefix that runs a fix inside the namespace: none for droptrace's own,
    /// `ip netns exec NAME ` for a named one, `nsenter --net=PATH ` otherwise.
    pub fn command_prefix(&self, inode: u32) -> String {
        match self.by_inode.get(&inode) {
            None | Some((_, Found::Own)) => String::new(),
            Some((p, Found::Named(_))) if p.starts_with("/run/netns") => format!(
                "ip netns exec {} ",
                p.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            ),
            Some((p, _)) => format!("nsenter --net={} ", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Namespaces {
        let mut ns = Namespaces::default();
        ns.insert(1, PathBuf::from(OWN), Found::Own);
        ns.insert(
            2,
            PathBuf::from("/run/netns/web"),
            Found::Named("web".into()),
        );
        let nginx = Found::Process {
            comm: "nginx".into(),
            pid: 812,
        };
        ns.insert(3, PathBuf::from("/proc/812/ns/net"), nginx);
        let given = Found::Given("/var/run/docker/netns/x".into());
        ns.insert(4, PathBuf::from("/var/run/docker/netns/x"), given);
        // The first way a namespace was found names it.
        ns.insert(2, PathBuf::from("/proc/9/ns/net"), Found::Own);
        ns
    }

    #[test]
    fn names_namespaces_by_how_they_were_found() {
        let ns = known();
        let labels: Vec<String> = (1..=5).map(|i| ns.label(i)).collect();
        assert_eq!(
            labels,
            ["host", "web", "nginx:812", "/var/run/docker/netns/x", "5"]
        );
        let described: Vec<String> = (1..=5).map(|i| ns.describe(i)).collect();
        assert_eq!(
            described,
            [
                "the host namespace",
                "netns web",
                "the netns of nginx (pid 812)",
                "the netns at /var/run/docker/netns/x",
                "netns inode 5"
            ]
        );
        let prefixes: Vec<String> = (1..=5).map(|i| ns.command_prefix(i)).collect();
        assert_eq!(
            prefixes,
            [
                "",
                "ip netns exec web ",
                "nsenter --net=/proc/812/ns/net ",
                "nsenter --net=/var/run/docker/netns/x ",
                ""
            ]
        );
        assert_eq!(ns.len(), 4);
        let metric: Vec<String> = (1..=4).map(|i| ns.metric_label(i)).collect();
        assert_eq!(metric, ["host", "web", "inode:3", "inode:4"]);
    }
}
