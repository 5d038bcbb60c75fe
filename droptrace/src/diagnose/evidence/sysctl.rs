//! The sysctls a drop diagnosis reads, why each matters, and their values; plus counting
//! conntrack "table full" messages in the kernel log.
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sysctl {
    /// Dotted name, as `sysctl` prints it.
    pub name: &'static str,
    /// Path under /proc/sys.
    pub path: &'static str,
    pub why: &'static str,
}

/// Where `net.ipv4.conf.IFACE.rp_filter` lives; `{iface}` is the interface name.
pub const RP_FILTER_IFACE: &str = "net/ipv4/conf/{iface}/rp_filter";

/// The sysctls `droptrace diagnose` reads, with why each one explains drops. Whether a
/// network namespace has its own copy of one is not a property of the sysctl alone: it
/// changed between kernels (net.core.rmem_max is absent inside a child namespace on 6.1,
/// read-only there with the global value on 6.12 and 6.18), so `probe::collect` reads it
/// from the namespace (absent or read-only: global) and the diagnosis cites and sets the
/// global ones in the host namespace.
pub const SYSCTLS: &[Sysctl] = &[
    Sysctl {
        name: "net.ipv4.conf.all.rp_filter",
        path: "net/ipv4/conf/all/rp_filter",
        why: "reverse-path filtering drops packets whose source would not be routed back out \
              the interface they came in on; the kernel uses max(all, IFACE)",
    },
    Sysctl {
        name: "net.ipv4.conf.default.rp_filter",
        path: "net/ipv4/conf/default/rp_filter",
        why: "the rp_filter value interfaces created later start with",
    },
    Sysctl {
        name: "net.core.netdev_max_backlog",
        path: "net/core/netdev_max_backlog",
        why: "length of the per-CPU input backlog; softnet_stat's dropped column counts \
              packets that found it full",
    },
    Sysctl {
        name: "net.core.rmem_default",
        path: "net/core/rmem_default",
        why: "the receive buffer a socket gets without SO_RCVBUF; UDP drops (RcvbufErrors) \
              when it fills",
    },
    Sysctl {
        name: "net.core.rmem_max",
        path: "net/core/rmem_max",
        why: "the largest SO_RCVBUF an unprivileged program can ask for",
    },
    Sysctl {
        name: "net.ipv4.udp_mem",
        path: "net/ipv4/udp_mem",
        why: "pages all UDP sockets may use (min pressure max); above max every UDP \
              receive is dropped (UDP MemErrors)",
    },
    Sysctl {
        name: "net.core.somaxconn",
        path: "net/core/somaxconn",
        why: "caps every listen() backlog; a full accept queue drops SYNs and \
              handshake ACKs (TcpExt ListenOverflows)",
    },
    Sysctl {
        name: "net.ipv4.tcp_max_syn_backlog",
        path: "net/ipv4/tcp_max_syn_backlog",
        why: "half-open connections per listener before SYNs are dropped (without syncookies)",
    },
    Sysctl {
        name: "net.ipv4.tcp_syncookies",
        path: "net/ipv4/tcp_syncookies",
        why: "0 turns SYN-queue overflow into drops instead of cookies",
    },
    Sysctl {
        name: "net.ipv4.tcp_timestamps",
        path: "net/ipv4/tcp_timestamps",
        why: "timestamps decide PAWS drops (TcpExt PAWSEstabRejected) and whether \
              syncookies keep window scaling",
    },
    Sysctl {
        name: "net.netfilter.nf_conntrack_count",
        path: "net/netfilter/nf_conntrack_count",
        why: "conntrack entries now, in this namespace; at nf_conntrack_max new flows drop",
    },
    Sysctl {
        name: "net.netfilter.nf_conntrack_max",
        path: "net/netfilter/nf_conntrack_max",
        why: "conntrack table size; when full, new flows are dropped and the kernel logs \
              \"nf_conntrack: table full, dropping packet\"",
    },
    Sysctl {
        name: "net.ipv4.ip_forward",
        path: "net/ipv4/ip_forward",
        why: "0 makes the host drop packets it would have to route onward",
    },
];

/// The /proc/sys path (relative) of `net.ipv4.conf.IFACE.rp_filter`, or None for a name
/// that is not an interface name (empty, too long, `.`/`..`, '/' or whitespace in it).
pub fn rp_filter_path(iface: &str) -> Option<String> {
    let valid = !iface.is_empty()
        && iface.len() < 16
        && iface != "."
        && iface != ".."
        && !iface.contains(['/', ':'])
        && !iface.contains(char::is_whitespace);
    valid.then(|| RP_FILTER_IFACE.replace("{iface}", iface))
}

/// The rp_filter mode the kernel applies on an interface: the larger of `all` and the
/// interface's own value.
pub fn effective_rp_filter(all: i64, iface: i64) -> i64 {
    all.max(iface)
}

/// Reads a one-number sysctl file ("262144\n").
pub fn parse_value(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

/// Reads a several-number sysctl file (udp_mem: "575802\t767736\t1151604\n").
pub fn parse_values(text: &str) -> Option<Vec<i64>> {
    let values = text
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    (!values.is_empty()).then_some(values)
}

/// Counts the kernel's conntrack-full messages in `dmesg` (or `journalctl -k`) text:
/// `nf_conntrack: table full, dropping packet`, printed as `nf_conntrack: nf_conntrack:
/// table full, dropping packet` by kernels that prefix the module name. Rate limiting
/// ("net_ratelimit: N callbacks suppressed") hides more drops than are counted here.
pub fn parse_dmesg_conntrack_full(text: &str) -> usize {
    text.lines()
        .filter(|line| line.contains("nf_conntrack: table full, dropping packet"))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_from_real_files() {
        assert_eq!(
            parse_value(fixture!("sysctl-nf_conntrack_count.txt")),
            Some(20)
        );
        assert_eq!(parse_value(fixture!("sysctl-somaxconn.txt")), Some(4096));
        assert_eq!(parse_value(fixture!("sysctl-rp_filter.txt")), Some(0));
        assert_eq!(parse_value(fixture!("sysctl-udp_mem.txt")), None);
        assert_eq!(
            parse_values(fixture!("sysctl-udp_mem.txt")),
            Some(vec![575802, 767736, 1151604])
        );
        assert_eq!(
            parse_values(fixture!("sysctl-somaxconn.txt")),
            Some(vec![4096])
        );
    }

    #[test]
    fn malformed_values() {
        assert_eq!(parse_value(""), None);
        assert_eq!(parse_value("12 13"), None);
        assert_eq!(parse_value("0x10"), None);
        assert_eq!(parse_value("99999999999999999999"), None);
        assert_eq!(parse_value("-1\n"), Some(-1));
        assert_eq!(parse_values(" \n"), None);
        assert_eq!(parse_values("1 two 3"), None);
    }

    #[test]
    fn table_is_consistent() {
        assert_eq!(SYSCTLS.len(), 13);
        for s in SYSCTLS {
            assert_eq!(s.name.replace('.', "/"), s.path);
            assert!(!s.why.is_empty());
        }
        assert_eq!(
            rp_filter_path("eth0").as_deref(),
            Some("net/ipv4/conf/eth0/rp_filter")
        );
        assert_eq!(
            rp_filter_path("eth0.100").as_deref(),
            Some("net/ipv4/conf/eth0.100/rp_filter")
        );
        for bad in ["", ".", "..", "a/b", "../../x", "a b", "sixteen-chars-xx"] {
            assert_eq!(rp_filter_path(bad), None, "{bad}");
        }
        assert_eq!(effective_rp_filter(2, 1), 2);
        assert_eq!(effective_rp_filter(0, 1), 1);
    }

    /// Not captured: nf_conntrack_max is read-only outside the initial namespace on this
    /// kernel, and changing the machine-wide value was out of bounds. The lines follow the
    /// kernel's format (net_warn_ratelimited in nf_conntrack_core.c) as dmesg, dmesg -T and
    /// journalctl -k print it.
    #[test]
    fn conntrack_full_lines() {
        let text = "[104235.156774] nf_conntrack: nf_conntrack: table full, dropping packet\n\
                    [104243.800401] net_ratelimit: 3939 callbacks suppressed\n\
                    [104243.800401] nf_conntrack: nf_conntrack: table full, dropping packet\n\
                    [Sun Nov 22 11:00:00 2026] nf_conntrack: table full, dropping packet\n\
                    Nov 22 11:00:01 vm kernel: nf_conntrack: table full, dropping packet\n\
                    [    1.234567] nf_conntrack version 0.5.0 (65536 buckets, 262144 max)\n";
        assert_eq!(parse_dmesg_conntrack_full(text), 4);
        assert_eq!(parse_dmesg_conntrack_full(""), 0);
        assert_eq!(parse_dmesg_conntrack_full("nf_conntrack: table full"), 0);
    }
}
