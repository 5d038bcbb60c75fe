//! The interfaces' own drop counters, read through rtnetlink (an RTM_GETLINK dump, the
//! same `rtnl_link_stats64` that `ip -s -s link` prints), the driver's own statistics
//! (`ethtool -S`, through the SIOCETHTOOL ioctl) and the queue statistics of the netdev
//! generic-netlink family (qstats, a QSTATS_GET dump) in every namespace watched. The
//! readings run on a thread of their own; the live source takes them on its tick and
//! reads once more, itself, at the end.
use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{mpsc, Arc, OnceLock},
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    kernel::{
        ethtool,
        netdev::{self, QueueStats},
        netlink::{self, Link, NetlinkError},
    },
    pipeline::{
        event::Netns,
        interfaces::{driver_counters, qstats_counters, HostReading, InterfaceReading, COUNTERS},
    },
};

use super::{
    clock::boottime_ns,
    netns::{self, Namespaces},
    nlsock::NetlinkSocket,
};

/// Namespaces read at most (a container host can have thousands).
pub const MAX_NAMESPACES: usize = 512;
/// `struct ifreq` with its data pointer (what SIOCETHTOOL takes).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _rest: [u8; 16],
}

/// One SIOCETHTOOL call on `fd` for the interface `name`, with `buf` in and out.
fn ethtool_call(fd: &OwnedFd, name: &str, buf: &mut [u8]) -> Option<()> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: buf.as_mut_ptr().cast(),
        _rest: [0; 16],
    };
    let bytes = name.as_bytes();
    if bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    req.name[..bytes.len()].copy_from_slice(bytes);
    // SAFETY: an ifreq whose data points at `buf`, sized for the command it holds.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), ethtool::SIOCETHTOOL as _, &raw mut req) };
    (rc == 0).then_some(())
}

/// A driver's name and its own statistics, names and values side by side.
struct DriverStats {
    driver: String,
    names: Vec<String>,
    values: Vec<u64>,
}

/// The driver's name and its own statistics (names, values) of the interface `name`, in
/// the namespace the calling thread is in; `None` when it has none (lo) or they change
/// between the calls.
fn driver_stats(fd: &OwnedFd, name: &str) -> Option<DriverStats> {
    let mut drv = ethtool::drvinfo_request();
    ethtool_call(fd, name, &mut drv)?;
    let driver = ethtool::parse_drvinfo(&drv)?;
    let mut info = ethtool::sset_info_request();
    ethtool_call(fd, name, &mut info)?;
    let n = ethtool::parse_sset_info(&info)?;
    if n == 0 || n > ethtool::MAX_STATS {
        return None;
    }
    let mut strings = ethtool::strings_request(n);
    ethtool_call(fd, name, &mut strings)?;
    let names = ethtool::parse_strings(&strings)?;
    let mut stats = ethtool::stats_request(n);
    ethtool_call(fd, name, &mut stats)?;
    let values = ethtool::parse_stats(&stats)?;
    (names.len() == values.len()).then_some(DriverStats {
        driver,
        names,
        values,
    })
}

/// What the kernel's netdev family offers, learnt once (ids and commands are the
/// kernel's, the same in every namespace).
#[derive(Default)]
struct Family {
    /// The family's id, asked of the generic-netlink controller: `None` inside when the
    /// kernel has no such family (before 6.3). Left unset while the question cannot be
    /// asked or its answer read.
    id: OnceLock<Option<u16>>,
    /// The family refused QSTATS_GET as a command it does not know (EOPNOTSUPP: 6.3 to
    /// 6.8, before queue statistics came in 6.9).
    no_qstats: std::sync::atomic::AtomicBool,
}

/// The queue statistics of every interface of the namespace the calling thread is in,
/// through one generic-netlink socket; `None` when the kernel has no netdev family or no
/// QSTATS_GET, or when they could not be read. A driver that gives none, or an interface
/// that is down, is left out of the dump: no queues, not an error.
fn qstats_here(family: &Family) -> Option<Vec<QueueStats>> {
    use std::sync::atomic::Ordering;
    if family.no_qstats.load(Ordering::Relaxed) {
        return None;
    }
    let mut socket = NetlinkSocket::open(libc::NETLINK_GENERIC).ok()?;
    let id = match family.id.get() {
        Some(id) => *id,
        None => {
            let answer = socket.ask(&netdev::family_request(netdev::FAMILY)).ok()?;
            // An answer that cannot be read is not a kernel without the family.
            let found = netdev::parse_family(&answer).ok()?;
            *family.id.get_or_init(|| found)
        }
    }?;
    match socket.dump(&netdev::qstats_request(id)) {
        Ok(reply) => netdev::parse_qstats(&reply).ok(),
        Err(e) => {
            let errno = e
                .get_ref()
                .and_then(|e| e.downcast_ref::<NetlinkError>())
                .map(|e| match e {
                    NetlinkError::Kernel(errno) => *errno,
                    NetlinkError::Short(_) => 0,
                });
            if errno == Some(libc::EOPNOTSUPP) {
                family.no_qstats.store(true, Ordering::Relaxed);
            }
            None
        }
    }
}

/// Every link of the namespace the calling thread is in, with its driver's statistics.
fn read_here() -> std::io::Result<Vec<(Link, Option<DriverStats>)>> {
    let reply = NetlinkSocket::open(libc::NETLINK_ROUTE)?.dump(&netlink::getlink_request(1))?;
    let links = netlink::parse_part(&reply)
        .map_err(std::io::Error::other)?
        .links;
    // SAFETY: plain socket(2); owned from here on. Any socket carries SIOCETHTOOL.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: a descriptor just made (or -1, checked first) and owned by nobody else.
    let fd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(links
        .into_iter()
        .map(|link| {
            let stats = fd.as_ref().and_then(|fd| driver_stats(fd, &link.name));
            (link, stats)
        })
        .collect())
}

/// Which namespaces and interfaces to read: every one, or those the filters keep.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only this namespace (inode).
    pub netns: Option<u32>,
    /// The path the user gave for it (`--netns`), which a scan may not find.
    pub netns_path: Option<PathBuf>,
    /// Only interfaces of this name.
    pub interface: Option<String>,
}

/// Reads every namespace in scope: a socket made inside each (entered for the moment),
/// dumped and closed. None is kept open: a socket holds its namespace alive, and a
/// namespace deleted must go (and free its inode) as it would without droptrace.
struct Reader {
    scope: Scope,
}

/// One namespace's links with their driver's statistics, and its cookie.
struct NamespaceLinks {
    cookie: u64,
    links: Vec<(Link, Option<DriverStats>)>,
    /// Its interfaces' queue statistics; `None`: not read (no netdev family).
    qstats: Option<Vec<QueueStats>>,
}

/// What the reader asks of the host: its namespaces (inode, path, label), and one's links
/// (`None`: gone just now, or it cannot be entered). [`System`] asks the kernel.
trait LinkHost {
    fn namespaces(&self, also: Option<&Path>) -> Vec<(u32, PathBuf, String)>;
    fn links(&self, inode: u32, path: &Path) -> Option<NamespaceLinks>;
}

/// The host's namespaces and an rtnetlink dump in each, with the queue statistics.
#[derive(Default)]
struct System {
    family: Family,
}

impl System {
    /// What droptrace says once, at the start, of the queue statistics (not an error:
    /// most drivers give none).
    fn qstats_note(&self, first: &HostReading) -> Option<String> {
        let no_qstats = self
            .family
            .no_qstats
            .load(std::sync::atomic::Ordering::Relaxed);
        match (self.family.id.get(), first.qstats_interfaces) {
            (Some(None), _) => Some(
                "queue statistics (qstats) not read: this kernel has no netdev \
                 generic-netlink family (Linux 6.9 and later have it with queue statistics)"
                    .to_owned(),
            ),
            (Some(Some(_)), _) if no_qstats => Some(
                "queue statistics (qstats) not read: this kernel's netdev family has no \
                 QSTATS_GET (Linux 6.9 and later have it)"
                    .to_owned(),
            ),
            (_, Some(0)) => Some(
                "queue statistics (qstats): none of the interfaces watched gives them \
                 (their drivers have none, or they are down)"
                    .to_owned(),
            ),
            (_, Some(n)) => Some(format!(
                "queue statistics (qstats) read on {n} interface{}",
                if n == 1 { "" } else { "s" }
            )),
            (_, None) => None,
        }
    }
}

impl LinkHost for System {
    fn namespaces(&self, also: Option<&Path>) -> Vec<(u32, PathBuf, String)> {
        let mut found = Namespaces::scan();
        if let Some(path) = also {
            let _ = found.add(path);
        }
        found
            .all()
            .map(|(inode, path)| (inode, path.clone(), found.label(inode)))
            .collect()
    }

    fn links(&self, inode: u32, path: &Path) -> Option<NamespaceLinks> {
        let dump = || (netns::own_cookie(), read_here(), qstats_here(&self.family));
        let read = if inode == netns::own_inode() {
            Ok(dump())
        } else {
            netns::in_netns(Some(path), dump)
        };
        match read {
            Ok((cookie, Ok(links), qstats)) => Some(NamespaceLinks {
                cookie,
                links,
                qstats,
            }),
            _ => None,
        }
    }
}

impl Reader {
    fn read(&self, host: &impl LinkHost) -> HostReading {
        let mut reading = HostReading {
            read_ns: boottime_ns(),
            ..HostReading::default()
        };
        for (inode, path, label) in host.namespaces(self.scope.netns_path.as_deref()) {
            if self.scope.netns.is_some_and(|only| only != inode) {
                continue;
            }
            if reading.namespaces >= MAX_NAMESPACES {
                break;
            }
            // A namespace that went away just now, or that cannot be entered, is not read.
            let Some(read) = host.links(inode, &path) else {
                continue;
            };
            reading.namespaces += 1;
            let ns = Netns::new(inode, read.cookie);
            for (link, stats) in read.links {
                let wanted = self
                    .scope
                    .interface
                    .as_ref()
                    .is_none_or(|only| *only == link.name);
                if !wanted {
                    continue;
                }
                let queues: Vec<&QueueStats> = read
                    .qstats
                    .iter()
                    .flatten()
                    .filter(|q| q.ifindex == link.ifindex)
                    .collect();
                if read.qstats.is_some() {
                    let with = reading.qstats_interfaces.get_or_insert(0);
                    *with += usize::from(!queues.is_empty());
                }
                let one = interface(ns, &label, &link, stats.as_ref(), &queues);
                reading.interfaces.push(one);
            }
        }
        reading
    }
}

fn interface(
    netns: Netns,
    label: &str,
    link: &Link,
    stats: Option<&DriverStats>,
    queues: &[&QueueStats],
) -> InterfaceReading {
    let mut counters: Vec<_> = COUNTERS
        .iter()
        .filter_map(|k| Some((k.clone(), link.stat(&k.name)?)))
        .collect();
    if let Some(s) = stats {
        counters.extend(driver_counters(&s.driver, &s.names, &s.values));
    }
    counters.extend(qstats_counters(queues));
    InterfaceReading {
        netns,
        netns_label: label.to_owned(),
        ifindex: link.ifindex,
        name: link.name.clone(),
        counters,
        xdp_programs: link.xdp_programs.clone(),
    }
}

/// Reads the interfaces every `every` on a thread of its own.
pub struct LinkWatch {
    reader: Arc<Reader>,
    host: Arc<System>,
    latest: mpsc::Receiver<HostReading>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatch {
    /// Opens the sockets and reads once before returning: the first reading is every
    /// counter's baseline, taken before droptrace says it is watching.
    pub fn start(scope: Scope, every: Duration) -> (LinkWatch, HostReading) {
        let reader = Arc::new(Reader { scope });
        let host = Arc::new(System::default());
        let first = reader.read(host.as_ref());
        if let Some(note) = host.qstats_note(&first) {
            eprintln!("droptrace: {note}");
        }
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // Room for a few readings: the source takes them all on its tick.
        let (tx, latest) = mpsc::sync_channel(4);
        let shared = Arc::clone(&reader);
        let system = Arc::clone(&host);
        let thread = std::thread::Builder::new()
            .name("droptrace-links".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                    let reading = shared.read(system.as_ref());
                    if let Err(mpsc::TrySendError::Disconnected(_)) = tx.try_send(reading) {
                        return;
                    }
                }
            })
            .ok();
        (
            LinkWatch {
                reader,
                host,
                latest,
                stop: Some(stop_tx),
                thread,
            },
            first,
        )
    }

    /// The readings made since the last call, oldest first.
    pub fn take(&self) -> Vec<HostReading> {
        self.latest.try_iter().collect()
    }

    /// Stops the thread and reads once more, now: the readings not yet taken, oldest
    /// first, then that last one.
    pub fn finish(&mut self) -> Vec<HostReading> {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut readings = self.take();
        readings.push(self.reader.read(self.host.as_ref()));
        readings
    }
}

impl Drop for LinkWatch {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::kernel::netlink_fixture;

    /// Three namespaces: two whose link dumps were captured, one gone before it is read;
    /// the host's with the queue statistics captured on the same machine (eth0's), the
    /// veths' with none read.
    struct Captured {
        asked_also: RefCell<Option<PathBuf>>,
    }

    impl LinkHost for Captured {
        fn namespaces(&self, also: Option<&Path>) -> Vec<(u32, PathBuf, String)> {
            *self.asked_also.borrow_mut() = also.map(Path::to_path_buf);
            [(100, "host"), (200, "veths"), (300, "gone")]
                .into_iter()
                .map(|(i, l)| (i, PathBuf::from(format!("/run/netns/{l}")), l.to_owned()))
                .collect()
        }

        fn links(&self, inode: u32, _path: &Path) -> Option<NamespaceLinks> {
            let file = match inode {
                100 => "rtm_getlink.host.bin",
                200 => "rtm_getlink.veth-peer-down.bin",
                _ => return None,
            };
            let links = netlink::parse_part(&netlink_fixture(file)).unwrap().links;
            let qstats = (inode == 100).then(|| {
                netdev::parse_qstats(&netlink_fixture("netdev_qstats_get.queue.bin")).unwrap()
            });
            Some(NamespaceLinks {
                cookie: u64::from(inode) + 7,
                links: links.into_iter().map(|l| (l, None)).collect(),
                qstats,
            })
        }
    }

    fn host() -> Captured {
        Captured {
            asked_also: RefCell::new(None),
        }
    }

    fn dumped(file: &str) -> Vec<Link> {
        netlink::parse_part(&netlink_fixture(file)).unwrap().links
    }

    #[test]
    fn every_namespace_that_can_be_read_is_read_with_its_cookie_and_label() {
        let reading = Reader {
            scope: Scope::default(),
        }
        .read(&host());
        assert_eq!(reading.namespaces, 2, "the gone one is not counted");
        let want =
            dumped("rtm_getlink.host.bin").len() + dumped("rtm_getlink.veth-peer-down.bin").len();
        assert_eq!(reading.interfaces.len(), want);
        let veths: Vec<&InterfaceReading> = reading
            .interfaces
            .iter()
            .filter(|i| i.netns_label == "veths")
            .collect();
        assert!(!veths.is_empty());
        assert!(veths.iter().all(|i| i.netns == Netns::new(200, 207)));
        // Each interface with the kernel's counters as the dump gave them.
        let first = &dumped("rtm_getlink.veth-peer-down.bin")[0];
        let got = veths.iter().find(|i| i.name == first.name).unwrap();
        assert!(!got.counters.is_empty());
        for (kind, value) in &got.counters {
            assert_eq!(Some(*value), first.stat(&kind.name), "{}", kind.name);
        }
    }

    #[test]
    fn queue_statistics_are_counted_on_the_interfaces_that_gave_them() {
        let reading = Reader {
            scope: Scope::default(),
        }
        .read(&host());
        // eth0 (virtio_net) gave its queues' statistics; lo and the ifbs gave none.
        assert_eq!(reading.qstats_interfaces, Some(1));
        // None of virtio_net's counts drops here: no qstats counter is followed.
        assert!(reading
            .interfaces
            .iter()
            .flat_map(|i| &i.counters)
            .all(|(k, _)| !k.name.starts_with("qstats:")));
        // Only the veths' namespace in scope: none read there.
        let reading = Reader {
            scope: Scope {
                netns: Some(200),
                ..Scope::default()
            },
        }
        .read(&host());
        assert_eq!(reading.qstats_interfaces, None);
    }

    #[test]
    fn what_is_said_of_queue_statistics_once_at_the_start() {
        let reading = |n| HostReading {
            qstats_interfaces: n,
            ..HostReading::default()
        };
        let system = System::default();
        system.family.id.set(None).unwrap();
        let note = system.qstats_note(&reading(None)).unwrap();
        assert!(note.contains("no netdev generic-netlink family"), "{note}");
        let system = System::default();
        system.family.id.set(Some(20)).unwrap();
        let note = system.qstats_note(&reading(Some(0))).unwrap();
        assert!(note.contains("none of the interfaces"), "{note}");
        let old = System::default();
        old.family.id.set(Some(20)).unwrap();
        old.family
            .no_qstats
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let note = old.qstats_note(&reading(None)).unwrap();
        assert!(note.contains("has no QSTATS_GET"), "{note}");
        let note = system.qstats_note(&reading(Some(1))).unwrap();
        assert_eq!(note, "queue statistics (qstats) read on 1 interface");
        // Never asked (no namespace could be read): nothing to say.
        assert_eq!(System::default().qstats_note(&reading(None)), None);
    }

    #[test]
    fn the_scope_keeps_one_namespace_and_one_interface() {
        let name = dumped("rtm_getlink.veth-peer-down.bin")[0].name.clone();
        let host = host();
        let reading = Reader {
            scope: Scope {
                netns: Some(200),
                netns_path: Some(PathBuf::from("/proc/4242/ns/net")),
                interface: Some(name.clone()),
            },
        }
        .read(&host);
        assert_eq!(reading.namespaces, 1);
        assert_eq!(reading.interfaces.len(), 1);
        assert_eq!(reading.interfaces[0].name, name);
        // The path the user gave is looked for even if no scan finds it.
        assert_eq!(
            host.asked_also.borrow().as_deref(),
            Some(Path::new("/proc/4242/ns/net"))
        );
    }
}
