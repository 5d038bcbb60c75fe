//! The interfaces' own drop counters, read through rtnetlink (an RTM_GETLINK dump, the
//! same `rtnl_link_stats64` that `ip -s -s link` prints) and the driver's own statistics
//! (`ethtool -S`, through the SIOCETHTOOL ioctl) in every namespace watched. The
//! readings run on a thread of their own; the live source takes them on its tick and
//! reads once more, itself, at the end.
use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    kernel::{
        ethtool,
        netlink::{self, Link},
    },
    pipeline::{
        event::Netns,
        interfaces::{driver_counters, HostReading, InterfaceReading, COUNTERS},
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

impl Reader {
    fn read(&self) -> HostReading {
        let mut found = Namespaces::scan();
        if let Some(path) = &self.scope.netns_path {
            let _ = found.add(path);
        }
        let own = netns::own_inode();
        let mut reading = HostReading {
            read_ns: boottime_ns(),
            ..HostReading::default()
        };
        let dump = || (netns::own_cookie(), read_here());
        for (inode, path) in found.all() {
            if self.scope.netns.is_some_and(|only| only != inode) {
                continue;
            }
            if reading.namespaces >= MAX_NAMESPACES {
                break;
            }
            let read = if inode == own {
                Ok(dump())
            } else {
                netns::in_netns(Some(path as &Path), dump)
            };
            // A namespace that went away just now, or that cannot be entered, is not read.
            let Ok((cookie, Ok(links))) = read else {
                continue;
            };
            reading.namespaces += 1;
            let (ns, label) = (Netns::new(inode, cookie), found.label(inode));
            for (link, stats) in links {
                let wanted = self
                    .scope
                    .interface
                    .as_ref()
                    .is_none_or(|only| *only == link.name);
                if wanted {
                    let one = interface(ns, &label, &link, stats.as_ref());
                    reading.interfaces.push(one);
                }
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
) -> InterfaceReading {
    let mut counters: Vec<_> = COUNTERS
        .iter()
        .filter_map(|k| Some((k.clone(), link.stat(&k.name)?)))
        .collect();
    if let Some(s) = stats {
        counters.extend(driver_counters(&s.driver, &s.names, &s.values));
    }
    InterfaceReading {
        netns,
        netns_label: label.to_owned(),
        ifindex: link.ifindex,
        name: link.name.clone(),
        counters,
        xdp_programs: link.xdp_programs.len(),
    }
}

/// Reads the interfaces every `every` on a thread of its own.
pub struct LinkWatch {
    reader: Arc<Reader>,
    latest: mpsc::Receiver<HostReading>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl LinkWatch {
    /// Opens the sockets and reads once before returning: the first reading is every
    /// counter's baseline, taken before droptrace says it is watching.
    pub fn start(scope: Scope, every: Duration) -> (LinkWatch, HostReading) {
        let reader = Arc::new(Reader { scope });
        let first = reader.read();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        // Room for a few readings: the source takes them all on its tick.
        let (tx, latest) = mpsc::sync_channel(4);
        let shared = Arc::clone(&reader);
        let thread = std::thread::Builder::new()
            .name("droptrace-links".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(every) {
                    let reading = shared.read();
                    if let Err(mpsc::TrySendError::Disconnected(_)) = tx.try_send(reading) {
                        return;
                    }
                }
            })
            .ok();
        (
            LinkWatch {
                reader,
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
        readings.push(self.reader.read());
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
