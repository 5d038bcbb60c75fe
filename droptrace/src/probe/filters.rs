//! Turning the user's filter flags into what the kernel program compares against.
use std::path::Path;

use droptrace_common::{self as wire, Config};

use crate::{kernel::reasons::DropReasonTable, pipeline::event, probe::Error};

use super::{
    netns::{self, NetnsError},
    workloads::Scan,
};

/// What the user asked to keep, as given (the command line's filter flags, without the
/// parser that read them): names still to be found on the host, reasons still to be
/// looked up.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec {
    /// Source or destination port.
    pub port: Option<u16>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// A protocol's name or number.
    pub proto: Option<String>,
    /// Source or destination address.
    pub addr: Option<std::net::IpAddr>,
    /// Drop reasons to keep, and to leave out, as the kernel spells them.
    pub reasons: Vec<String>,
    pub exclude_reasons: Vec<String>,
    /// An interface's name, in droptrace's namespace or `netns`.
    pub iface: Option<String>,
    /// A network namespace's path.
    pub netns: Option<std::path::PathBuf>,
    /// A pod as NAMESPACE/NAME, a container by name or ID.
    pub pod: Option<String>,
    pub container: Option<String>,
}

/// Filters resolved against the running system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub port: Option<u16>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub ip_proto: Option<u8>,
    pub addr: Option<std::net::IpAddr>,
    pub include: Vec<u32>,
    pub exclude: Vec<u32>,
    pub ifindex: Option<u32>,
    /// The interface's name, as given.
    pub iface: Option<String>,
    /// Network namespace inode.
    pub netns: Option<u32>,
    /// The namespace's name (`ux-srv` for /run/netns/ux-srv), for the header.
    pub netns_label: Option<String>,
    /// With `netns`: the namespace's cookie (0 when drops carry none), so that a namespace
    /// given the inode after this one is deleted is not let in.
    pub netns_cookie: u64,
    /// The pod or container `--pod`/`--container` chose (its namespace is `netns`).
    pub workload: Option<String>,
}

impl Filters {
    /// Resolves names (reasons, protocol, interface, namespace, pod, container) on this
    /// system; `--pod` and `--container` are looked up in `scan`, taken at the start.
    pub fn resolve(
        args: &FilterSpec,
        reasons: Option<&DropReasonTable>,
        scan: Option<&Scan>,
        host_root: &Path,
    ) -> Result<Filters, Error> {
        let mut filters = Filters::parse(args, reasons)?;
        let mut ns_path = args.netns.clone();
        if let Some(path) = &args.netns {
            filters.netns = Some(inode_of(path)?);
            filters.netns_label = Some(netns_label(path));
            filters.netns_cookie = cookie_at(path);
        }
        let chosen = match (&args.pod, &args.container) {
            (Some(pod), _) => {
                let (namespace, name) =
                    crate::containers::parse_pod_arg(pod).map_err(|_| Error::NoWorkload {
                        what: format!("pod {pod}"),
                        host_root: host_root.into(),
                    })?;
                let found = scan.map(|s| s.pod(&namespace, &name)).unwrap_or_default();
                Some((format!("pod {pod}"), found))
            }
            (None, Some(c)) => {
                let found = scan.map(|s| s.container(c)).unwrap_or_default();
                Some((format!("container {c}"), found))
            }
            (None, None) => None,
        };
        if let Some((what, found)) = chosen {
            let inode = match found.as_slice() {
                [one] => *one,
                [] => {
                    return Err(Error::NoWorkload {
                        what,
                        host_root: host_root.into(),
                    })
                }
                many => {
                    let label = |ns: &u32| {
                        scan.and_then(|s| s.workloads.get(ns)).map_or_else(
                            || format!("netns {ns}"),
                            |w| format!("{} ({})", w.label(), w.container.id),
                        )
                    };
                    return Err(Error::AmbiguousWorkload {
                        what,
                        matches: many.iter().map(label).collect(),
                    });
                }
            };
            filters.netns = Some(inode);
            filters.workload = Some(what);
            ns_path = scan.and_then(|s| s.paths.get(&inode)).cloned();
            filters.netns_cookie = ns_path.as_deref().map_or(0, cookie_at);
        }
        if let Some(name) = &args.iface {
            filters.ifindex = Some(ifindex_of(name, ns_path.as_deref())?);
            filters.iface = Some(name.clone());
            // An ifindex means something only inside its namespace.
            if filters.netns.is_none() {
                let own = Path::new("/proc/self/ns/net");
                filters.netns = Some(inode_of(own)?);
                filters.netns_label = Some(netns_label(own));
                filters.netns_cookie = netns::own_cookie();
            }
        }
        Ok(filters)
    }

    /// The filters that need nothing from the system but the reason table: ports,
    /// protocol, address, reasons.
    fn parse(args: &FilterSpec, reasons: Option<&DropReasonTable>) -> Result<Filters, Error> {
        let ip_proto = match &args.proto {
            Some(p) => {
                Some(event::ip_proto_by_name(p).ok_or_else(|| Error::UnknownProtocol(p.clone()))?)
            }
            None => None,
        };
        Ok(Filters {
            port: args.port,
            sport: args.sport,
            dport: args.dport,
            ip_proto,
            addr: args.addr,
            include: reason_codes(&args.reasons, reasons)?,
            exclude: reason_codes(&args.exclude_reasons, reasons)?,
            ifindex: None,
            iface: None,
            netns: None,
            netns_label: None,
            netns_cookie: 0,
            workload: None,
        })
    }

    /// Writes the filter part of the kernel program's configuration.
    pub fn apply(&self, c: &mut Config) {
        let mut set = |bit: u32, on: bool| {
            if on {
                c.filters |= bit;
            }
        };
        set(wire::FILTER_PORT, self.port.is_some());
        set(wire::FILTER_SPORT, self.sport.is_some());
        set(wire::FILTER_DPORT, self.dport.is_some());
        set(wire::FILTER_L4_PROTO, self.ip_proto.is_some());
        set(wire::FILTER_ADDR, self.addr.is_some());
        set(wire::FILTER_IFINDEX, self.ifindex.is_some());
        set(wire::FILTER_NETNS, self.netns.is_some());
        set(wire::FILTER_REASON_INCLUDE, !self.include.is_empty());
        set(wire::FILTER_REASON_EXCLUDE, !self.exclude.is_empty());
        c.port = self.port.unwrap_or(0);
        c.sport = self.sport.unwrap_or(0);
        c.dport = self.dport.unwrap_or(0);
        c.l4_proto = self.ip_proto.unwrap_or(0);
        c.ifindex = self.ifindex.unwrap_or(0);
        c.netns = self.netns.unwrap_or(0);
        c.netns_cookie = if self.netns.is_some() {
            self.netns_cookie
        } else {
            0
        };
        match self.addr {
            Some(std::net::IpAddr::V4(a)) => {
                c.addr_family = wire::AF_INET;
                c.addr = [0; 16];
                c.addr[..4].copy_from_slice(&a.octets());
            }
            Some(std::net::IpAddr::V6(a)) => {
                c.addr_family = wire::AF_INET6;
                c.addr = a.octets();
            }
            None => {}
        }
    }

    /// Entries of the kernel's reason filter map. A reason both kept and left out is left out.
    pub fn reason_marks(&self) -> Vec<(u32, u8)> {
        let mut marks: Vec<(u32, u8)> = self
            .include
            .iter()
            .map(|&r| (r, wire::REASON_INCLUDE))
            .collect();
        marks.retain(|(r, _)| !self.exclude.contains(r));
        marks.extend(self.exclude.iter().map(|&r| (r, wire::REASON_EXCLUDE)));
        marks
    }

    /// Whether a filter looks into the packet or its device (all but the reasons).
    /// Whether a filter looks at the packet's headers (what XDP verdicts do not carry).
    pub fn needs_headers(&self) -> bool {
        self.port.is_some()
            || self.sport.is_some()
            || self.dport.is_some()
            || self.ip_proto.is_some()
            || self.addr.is_some()
    }

    pub fn needs_packet(&self) -> bool {
        self.port.is_some()
            || self.sport.is_some()
            || self.dport.is_some()
            || self.ip_proto.is_some()
            || self.addr.is_some()
            || self.ifindex.is_some()
            || self.netns.is_some()
    }

    /// Active filters in words, for status lines.
    pub fn describe(&self, reasons: Option<&DropReasonTable>) -> String {
        let name = |r: &u32| reasons.map_or_else(|| r.to_string(), |t| t.display(*r));
        let mut parts = Vec::new();
        if let Some(p) = self.port {
            parts.push(format!("port {p}"));
        }
        if let Some(p) = self.sport {
            parts.push(format!("sport {p}"));
        }
        if let Some(p) = self.dport {
            parts.push(format!("dport {p}"));
        }
        if let Some(p) = self.ip_proto {
            parts.push(format!(
                "proto {}",
                event::ip_proto_name(p).map_or_else(|| p.to_string(), str::to_owned)
            ));
        }
        if let Some(a) = self.addr {
            parts.push(format!("addr {a}"));
        }
        if !self.include.is_empty() {
            parts.push(format!(
                "reason {}",
                self.include.iter().map(name).collect::<Vec<_>>().join(",")
            ));
        }
        if !self.exclude.is_empty() {
            parts.push(format!(
                "not reason {}",
                self.exclude.iter().map(name).collect::<Vec<_>>().join(",")
            ));
        }
        match (&self.iface, self.ifindex) {
            (Some(name), _) => parts.push(format!("iface {name}")),
            (None, Some(i)) => parts.push(format!("ifindex {i}")),
            (None, None) => {}
        }
        match (&self.workload, &self.netns_label, self.netns) {
            (Some(w), _, _) => parts.push(w.clone()),
            (None, Some(name), _) => parts.push(format!("netns {name}")),
            (None, None, Some(n)) => parts.push(format!("netns {n}")),
            (None, None, None) => {}
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

fn reason_codes(names: &[String], table: Option<&DropReasonTable>) -> Result<Vec<u32>, Error> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let table = table.ok_or(Error::NoReasons)?;
    if names.len() > wire::MAX_REASON_FILTERS as usize {
        return Err(Error::UnknownReason {
            name: format!("({} reasons given)", names.len()),
            suggestion: None,
            known: format!(
                "at most {} reasons can be filtered",
                wire::MAX_REASON_FILTERS
            ),
        });
    }
    names
        .iter()
        .map(|name| {
            table.lookup(name).ok_or_else(|| Error::UnknownReason {
                name: name.clone(),
                suggestion: table.closest(name).map(str::to_owned),
                known: table.names().collect::<Vec<_>>().join(", "),
            })
        })
        .collect()
}

/// Looks an interface up by name in droptrace's namespace, or inside the one at `ns_path`.
fn ifindex_of(name: &str, ns_path: Option<&Path>) -> Result<u32, Error> {
    let index = netns::in_netns(ns_path, || netns::ifindex(name)).map_err(|e| match e {
        NetnsError::Open { path, source } | NetnsError::Enter { path, source } => {
            Error::Netns { path, source }
        }
        NetnsError::Thread { path } => Error::Netns {
            path,
            source: std::io::Error::other("lookup thread failed"),
        },
    })?;
    index.ok_or_else(|| Error::NoInterface {
        name: name.into(),
        where_: ns_path.map_or_else(
            || "droptrace's network namespace".into(),
            |p| format!("network namespace {}", p.display()),
        ),
    })
}

/// How a namespace given by path is known: its name under /run/netns, `host` for
/// droptrace's own, else the path.
fn netns_label(path: &Path) -> String {
    if path == Path::new("/proc/self/ns/net") {
        return "host".into();
    }
    ["/run/netns", "/var/run/netns"]
        .iter()
        .find_map(|dir| path.strip_prefix(dir).ok())
        .map_or_else(|| path.display().to_string(), |n| n.display().to_string())
}

/// The cookie of the namespace at `path` (0 when unknown: the inode alone then filters).
fn cookie_at(path: &Path) -> u64 {
    netns::in_netns(Some(path), netns::own_cookie).unwrap_or(0)
}

/// The namespace's inode, after checking the file is a network namespace.
fn inode_of(path: &Path) -> Result<u32, Error> {
    netns::netns_inode(path).map_err(|source| Error::Netns {
        path: path.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bits_follow_the_filters() {
        let f = Filters {
            port: Some(1678),
            ip_proto: Some(6),
            addr: Some("fd00::2".parse().unwrap()),
            include: vec![12],
            exclude: vec![2, 12],
            netns: Some(4026531840),
            netns_cookie: 4097,
            ..Filters::default()
        };
        let mut c = Config::ZERO;
        f.apply(&mut c);
        assert_eq!(
            c.filters,
            wire::FILTER_PORT
                | wire::FILTER_L4_PROTO
                | wire::FILTER_ADDR
                | wire::FILTER_NETNS
                | wire::FILTER_REASON_INCLUDE
                | wire::FILTER_REASON_EXCLUDE
        );
        assert_eq!(
            (c.port, c.l4_proto, c.addr_family, c.netns),
            (1678, 6, wire::AF_INET6, 4026531840)
        );
        assert_eq!(c.addr[15], 2);
        assert_eq!(c.netns_cookie, 4097);
        assert_eq!(
            f.reason_marks(),
            [(2, wire::REASON_EXCLUDE), (12, wire::REASON_EXCLUDE)]
        );

        let v4 = Filters {
            addr: Some("10.1.2.3".parse().unwrap()),
            ..Filters::default()
        };
        let mut c = Config::ZERO;
        v4.apply(&mut c);
        assert_eq!(
            (c.addr_family, &c.addr[..5]),
            (wire::AF_INET, &[10, 1, 2, 3, 0][..])
        );
        assert_eq!(Filters::default().describe(None), "none");
    }

    #[test]
    fn unknown_names_are_errors() {
        let args = FilterSpec {
            proto: Some("tcpp".into()),
            ..FilterSpec::default()
        };
        assert!(matches!(
            Filters::parse(&args, None),
            Err(Error::UnknownProtocol(_))
        ));
        let args = FilterSpec {
            reasons: vec!["NETFILTER_DROP".into()],
            ..FilterSpec::default()
        };
        assert!(matches!(Filters::parse(&args, None), Err(Error::NoReasons)));
        let table = DropReasonTable::from_entries([(12, "NETFILTER_DROP"), (3, "NO_SOCKET")]);
        let args = FilterSpec {
            reasons: vec!["netfilter_drop".into()],
            exclude_reasons: vec!["NETFILTER_DRO".into()],
            ..FilterSpec::default()
        };
        match Filters::parse(&args, Some(&table)) {
            Err(Error::UnknownReason {
                name, suggestion, ..
            }) => {
                assert_eq!(
                    (name.as_str(), suggestion.as_deref()),
                    ("NETFILTER_DRO", Some("NETFILTER_DROP"))
                );
            }
            other => panic!("{other:?}"),
        }
        let args = FilterSpec {
            reasons: vec!["SKB_DROP_REASON_NO_SOCKET".into()],
            proto: Some("udp".into()),
            port: Some(53),
            ..FilterSpec::default()
        };
        let f = Filters::parse(&args, Some(&table)).unwrap();
        assert_eq!(
            (f.include.as_slice(), f.ip_proto, f.port),
            (&[3][..], Some(17), Some(53))
        );
        assert_eq!(
            f.describe(Some(&table)),
            "port 53, proto udp, reason NO_SOCKET"
        );
    }

    #[test]
    fn the_header_names_the_namespace_and_the_interface() {
        let f = Filters {
            ifindex: Some(2),
            iface: Some("veth-b".into()),
            netns: Some(4026532239),
            netns_label: Some("ux-srv".into()),
            ..Filters::default()
        };
        assert_eq!(f.describe(None), "iface veth-b, netns ux-srv");
        // Numbers only where no name is known.
        let f = Filters {
            ifindex: Some(2),
            netns: Some(4026532239),
            ..Filters::default()
        };
        assert_eq!(f.describe(None), "ifindex 2, netns 4026532239");
        for (path, label) in [
            ("/run/netns/ux-srv", "ux-srv"),
            ("/var/run/netns/ux-srv", "ux-srv"),
            ("/proc/self/ns/net", "host"),
            ("/proc/812/ns/net", "/proc/812/ns/net"),
        ] {
            assert_eq!(netns_label(Path::new(path)), label, "{path}");
        }
    }

    #[test]
    fn a_missing_namespace_says_how_to_find_names() {
        let args = FilterSpec {
            netns: Some("/run/netns/dt-h2-no-such-namespace".into()),
            ..FilterSpec::default()
        };
        let err = Filters::resolve(&args, None, None, Path::new("/")).unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("/run/netns/dt-h2-no-such-namespace"),
            "{said}"
        );
        assert!(said.contains("ip netns list"), "{said}");
        assert!(said.contains("/proc/PID/ns/net"), "{said}");
    }
}
