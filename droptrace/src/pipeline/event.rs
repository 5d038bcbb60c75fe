//! Drops as owned domain types, decoded in exactly one place from the kernel's bytes.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use droptrace_common as wire;
use thiserror::Error;

/// A network namespace as a drop names it: its inode and, where the kernel has one, its
/// cookie (`net_cookie`, 0 when unknown). The kernel hands the inode of a deleted namespace
/// to a new one but never a cookie twice, so two namespaces that shared an inode stay
/// apart; without cookies (kernels before 5.14, no BTF) the inode alone tells them apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Netns {
    pub inode: u32,
    pub cookie: u64,
}

impl Netns {
    /// No namespace known.
    pub const NONE: Netns = Netns {
        inode: 0,
        cookie: 0,
    };

    pub fn new(inode: u32, cookie: u64) -> Netns {
        Netns { inode, cookie }
    }

    /// A namespace known by its inode only.
    pub fn inode(inode: u32) -> Netns {
        Netns { inode, cookie: 0 }
    }

    pub fn is_none(&self) -> bool {
        self.inode == 0
    }
}

// XDP verdicts as drops: the program as the location, the verdict as the reason. Kernel
// text addresses all lie in the top half of the address space and kernel reasons below
// `VERDICT_REASONS`' subsystem, so neither is mistaken for the kernel's.

/// Locations of XDP programs: this plus the program's id.
pub const PROGRAM_LOCATIONS: u64 = 1 << 40;
/// Reasons of XDP verdicts: this plus the verdict (a subsystem number no kernel uses).
pub const VERDICT_REASONS: u32 = 0xfffe << crate::kernel::reasons::SUBSYS_SHIFT;

/// The location that stands for XDP program `prog_id`.
pub fn program_location(prog_id: u32) -> u64 {
    PROGRAM_LOCATIONS | u64::from(prog_id)
}

/// The XDP program a location stands for, if it stands for one.
pub fn program_of(location: u64) -> Option<u32> {
    (location >> 32 == PROGRAM_LOCATIONS >> 32).then_some(location as u32)
}

pub fn verdict_reason(verdict: u32) -> u32 {
    VERDICT_REASONS | verdict
}

/// The verdict a reason stands for, if it stands for one.
pub fn verdict_of(reason: u32) -> Option<u32> {
    (reason & !0xffff == VERDICT_REASONS).then_some(reason & 0xffff)
}

/// The verdict's name (`XDP_DROP`).
pub fn verdict_name(verdict: u32) -> String {
    match verdict {
        crate::kernel::xdp::XDP_ABORTED => "XDP_ABORTED".into(),
        crate::kernel::xdp::XDP_DROP => "XDP_DROP".into(),
        v => format!("XDP verdict {v}"),
    }
}

/// Reasons of XDP exceptions: this, the tracepoint (`XDP_TP_*`) at bit 14 and the action
/// or the error's magnitude below (another subsystem number no kernel uses).
pub const EXCEPTION_REASONS: u32 = 0xfffd << crate::kernel::reasons::SUBSYS_SHIFT;

/// The reason of an XDP exception: its tracepoint and its action (`xdp_exception`) or
/// error (the redirect errors, a negative errno).
pub fn exception_reason(tracepoint: u8, value: u32) -> u32 {
    let magnitude = if tracepoint == wire::XDP_TP_EXCEPTION {
        value
    } else {
        (value as i32).unsigned_abs()
    };
    EXCEPTION_REASONS | (u32::from(tracepoint & 3) << 14) | magnitude.min(0x3fff)
}

/// The tracepoint and action (or error, negative) an exception's reason stands for.
pub fn exception_of(reason: u32) -> Option<(u8, i64)> {
    if reason & !0xffff != EXCEPTION_REASONS {
        return None;
    }
    let tracepoint = ((reason >> 14) & 3) as u8;
    let v = i64::from(reason & 0x3fff);
    Some((
        tracepoint,
        if tracepoint == wire::XDP_TP_EXCEPTION {
            v
        } else {
            -v
        },
    ))
}

/// An exception's name: `XDP_ABORTED (xdp_exception)`, `XDP_REDIRECT failed (err -6)`.
pub fn exception_name(tracepoint: u8, value: i64) -> String {
    match (tracepoint, value) {
        (wire::XDP_TP_EXCEPTION, 0) => "XDP_ABORTED (xdp_exception)".into(),
        (wire::XDP_TP_EXCEPTION, 3) => "XDP_TX failed (xdp_exception)".into(),
        (wire::XDP_TP_EXCEPTION, 4) => "XDP_REDIRECT failed (xdp_exception)".into(),
        (wire::XDP_TP_EXCEPTION, v) => format!("XDP action {v} (xdp_exception)"),
        (wire::XDP_TP_REDIRECT_MAP_ERR, e) => format!("XDP_REDIRECT to a map failed (err {e})"),
        (wire::XDP_TP_OVERFLOW, _) => format!(
            "XDP exceptions not told apart (droptrace's map of {} keys was full)",
            wire::XDP_EXC_MAX
        ),
        (_, e) => format!("XDP_REDIRECT failed (err {e})"),
    }
}

/// The name of a reason that stands for an XDP verdict or exception.
pub fn xdp_reason_name(reason: u32) -> Option<String> {
    if let Some(v) = verdict_of(reason) {
        return Some(verdict_name(v));
    }
    exception_of(reason).map(|(tp, v)| exception_name(tp, v))
}

#[cfg(test)]
impl From<u32> for Netns {
    /// A namespace known by its inode only (tests).
    fn from(inode: u32) -> Netns {
        Netns::inode(inode)
    }
}

/// The inode, as people and tools (`ls -i`, `lsns`) know a namespace.
impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inode.fmt(f)
    }
}

/// One dropped packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drop {
    /// `CLOCK_BOOTTIME` nanoseconds.
    pub timestamp_ns: u64,
    pub location: u64,
    /// Raw kernel reason; 0 when the kernel gives none.
    pub reason: u32,
    /// The network namespace (inode 0 when unknown).
    pub netns: Netns,
    pub ifindex: u32,
    /// The network packet's length (from its IP header on), wherever it was dropped; the
    /// skb's length where the IP header does not say (not IP, or not captured).
    pub len: u32,
    /// Bytes of a layer-2 header the skb still held where it was dropped (14 for
    /// Ethernet on transmit), beyond `len`; 0 where there was none.
    pub l2_len: u8,
    pub cpu: u32,
    pub packet: Packet,
}

/// What droptrace could read of the packet's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Packet {
    /// Ethertype (0 when unknown).
    pub ethertype: u16,
    /// Source and destination, for IPv4 and IPv6.
    pub addrs: Option<(IpAddr, IpAddr)>,
    /// IP protocol number, for IPv4 and IPv6.
    pub ip_proto: Option<u8>,
    pub ports: Option<(u16, u16)>,
    /// ICMP or ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
    /// A TCP segment's flags (its header's byte 13); not kept in recordings.
    pub tcp_flags: Option<u8>,
}

/// How drops are counted: by drop site, reason, protocol, destination port, and the
/// interface and namespace they were dropped on (0 when unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    pub location: u64,
    pub reason: u32,
    pub ethertype: u16,
    pub ip_proto: Option<u8>,
    pub dport: Option<u16>,
    pub netns: Netns,
    pub ifindex: u32,
}

impl Group {
    /// The group without its interface and namespace: a drop site (the live view's
    /// folded rows, the diagnosis of a row).
    pub fn site(&self) -> Group {
        Group {
            netns: Netns::NONE,
            ifindex: 0,
            ..*self
        }
    }
}

impl Drop {
    pub fn group(&self) -> Group {
        Group {
            location: self.location,
            reason: self.reason,
            ethertype: self.packet.ethertype,
            ip_proto: self.packet.ip_proto,
            dport: self.packet.ports.map(|(_, d)| d),
            netns: self.netns,
            ifindex: self.ifindex,
        }
    }
}

impl From<wire::GroupKey> for Group {
    fn from(key: wire::GroupKey) -> Group {
        let ip = key.flags & (wire::EVENT_IPV4 | wire::EVENT_IPV6) != 0;
        Group {
            location: key.location,
            reason: key.reason,
            ethertype: key.l3_proto,
            ip_proto: ip.then_some(key.l4_proto),
            dport: (key.flags & wire::EVENT_PORTS != 0).then_some(key.dport),
            netns: Netns::new(key.netns, key.netns_cookie),
            ifindex: key.ifindex,
        }
    }
}

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("drop event of {0} bytes, expected at least {EVENT_SIZE}")]
    Size(usize),
    #[error("drop event with both IPv4 and IPv6 flags set")]
    Family,
}

pub const EVENT_SIZE: usize = size_of::<wire::DropEvent>();

/// The packet bytes after the event in a ring-buffer record (`--snaplen`; empty without).
pub fn packet_bytes(record: &[u8]) -> &[u8] {
    record.get(EVENT_SIZE..).unwrap_or_default()
}

/// Bytes from the IP header on that give the packet's own length: IPv4's total length
/// (bytes 2-3), IPv6's payload length (bytes 4-5). The live source asks the kernel for
/// at least these.
pub const NETWORK_LEN_BYTES: u32 = 8;

/// The most a layer-2 header takes (Ethernet with two VLAN tags, InfiniBand...): a
/// larger difference between the skb's length and the packet's is not a header.
const MAX_L2_LEN: u32 = 64;

/// The one place a drop's length is decided: the network packet's length, from its
/// IP header when `bytes` (which start at the IP header) hold it, and how many bytes of
/// a layer-2 header the skb (`skb_len` long) counted on top. Where the IP header does not
/// say, `skb_len` as it is.
///
/// The skb's length depends on the drop site: on transmit (`__dev_queue_xmit`) it counts
/// the Ethernet header, in netfilter it is the IP packet, and once the transport has
/// pulled the IP header (`__udp4_lib_rcv`) it is shorter than the packet.
pub fn network_len(skb_len: u32, family: Option<u16>, bytes: &[u8]) -> (u32, u8) {
    let be16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let len = match family {
        Some(ETH_P_IP) if bytes.first().is_some_and(|b| b >> 4 == 4) => {
            be16(2).filter(|&total| total >= 20)
        }
        // A payload length of 0 is a jumbogram's (its length is in an option).
        Some(ETH_P_IPV6) if bytes.first().is_some_and(|b| b >> 4 == 6) => {
            be16(4).filter(|&payload| payload > 0).map(|p| p + 40)
        }
        _ => None,
    };
    match len {
        Some(len) => {
            let extra = skb_len.saturating_sub(len);
            let l2 = if extra <= MAX_L2_LEN { extra as u8 } else { 0 };
            (len, l2)
        }
        None => (skb_len, 0),
    }
}

/// Decodes one ring-buffer record (`DropEvent`, native byte order, then packet bytes).
pub fn decode(bytes: &[u8]) -> Result<Drop, DecodeError> {
    let b: &[u8; EVENT_SIZE] = bytes
        .get(..EVENT_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Size(bytes.len()))?;
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u16_at = |o: usize| u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"));
    let addr16 = |o: usize| -> [u8; 16] { b[o..o + 16].try_into().expect("16 bytes") };

    // Offsets of `wire::DropEvent`; the layout test below keeps them honest.
    let flags = b[39];
    let (saddr, daddr) = (addr16(40), addr16(56));
    let addrs = match (flags & wire::EVENT_IPV4 != 0, flags & wire::EVENT_IPV6 != 0) {
        (true, true) => return Err(DecodeError::Family),
        (true, false) => Some((IpAddr::V4(v4(&saddr)), IpAddr::V4(v4(&daddr)))),
        (false, true) => Some((
            IpAddr::V6(Ipv6Addr::from(saddr)),
            IpAddr::V6(Ipv6Addr::from(daddr)),
        )),
        (false, false) => None,
    };
    let ethertype = u16_at(36);
    let (len, l2_len) = network_len(u32_at(28), addrs.map(|_| ethertype), packet_bytes(bytes));
    Ok(Drop {
        timestamp_ns: u64_at(0),
        location: u64_at(8),
        reason: u32_at(16),
        netns: Netns::new(u32_at(20), u64_at(80)),
        ifindex: u32_at(24),
        len,
        l2_len,
        cpu: u32_at(32),
        packet: Packet {
            ethertype,
            addrs,
            ip_proto: addrs.map(|_| b[38]),
            ports: (flags & wire::EVENT_PORTS != 0).then(|| (u16_at(72), u16_at(74))),
            icmp: (flags & wire::EVENT_ICMP != 0).then_some((b[76], b[77])),
            tcp_flags: (flags & wire::EVENT_TCP_FLAGS != 0).then_some(b[78]),
        },
    })
}

/// A TCP segment that opens a connection: SYN without ACK.
pub fn is_connection_attempt(tcp_flags: u8) -> bool {
    const SYN: u8 = 0x02;
    const ACK: u8 = 0x10;
    tcp_flags & (SYN | ACK) == SYN
}

fn v4(a: &[u8; 16]) -> Ipv4Addr {
    Ipv4Addr::new(a[0], a[1], a[2], a[3])
}

/// `10.0.0.1:80` or `[fd00::1]:80`.
pub fn endpoint(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Name of an IP protocol number.
pub fn ip_proto_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        2 => "igmp",
        4 => "ipip",
        6 => "tcp",
        17 => "udp",
        33 => "dccp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "icmpv6",
        89 => "ospf",
        103 => "pim",
        112 => "vrrp",
        132 => "sctp",
        136 => "udplite",
        _ => return None,
    })
}

/// IP protocol number of a name (or a number), as `--proto` takes it.
pub fn ip_proto_by_name(name: &str) -> Option<u8> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let name = name.to_ascii_lowercase();
    (0..=255u8).find(|&p| ip_proto_name(p) == Some(name.as_str()))
}

/// Names `--proto` suggests, nearest first, for a misspelt one.
const PROTO_SUGGESTIONS: [&str; 10] = [
    "tcp", "udp", "icmp", "icmpv6", "sctp", "dccp", "udplite", "gre", "esp", "ah",
];

/// The protocol name nearest to a misspelt `name` (`tcpp` -> `tcp`).
pub fn closest_proto_name(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    let limit = 1 + name.len() / 3;
    PROTO_SUGGESTIONS
        .iter()
        .map(|&p| (crate::kernel::reasons::edit_distance(&name, p), p))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, p)| p)
}

/// Name of a non-IP ethertype worth naming.
pub fn ethertype_name(ethertype: u16) -> Option<&'static str> {
    Some(match ethertype {
        0x0806 => "arp",
        0x8035 => "rarp",
        0x88cc => "lldp",
        0x8100 => "vlan",
        0x88a8 => "qinq",
        0x8847 => "mpls",
        0x8863 | 0x8864 => "pppoe",
        0x88e5 => "macsec",
        0x88f7 => "ptp",
        0x0004 => "802.2",
        _ => return None,
    })
}

impl Group {
    /// Protocol as shown: the transport for IP packets, else the ethertype's name.
    pub fn protocol(&self) -> Option<String> {
        match self.ip_proto {
            Some(p) => {
                Some(ip_proto_name(p).map_or_else(|| format!("ip-proto-{p}"), str::to_owned))
            }
            None => ethertype_name(self.ethertype).map(str::to_owned),
        }
    }

    pub fn family(&self) -> Option<&'static str> {
        match self.ethertype {
            ETH_P_IP if self.ip_proto.is_some() => Some("ipv4"),
            ETH_P_IPV6 if self.ip_proto.is_some() => Some("ipv6"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;
    use wire::DropEvent;

    #[test]
    fn offsets_match_the_wire_type() {
        assert_eq!(offset_of!(DropEvent, timestamp_ns), 0);
        assert_eq!(offset_of!(DropEvent, location), 8);
        assert_eq!(offset_of!(DropEvent, reason), 16);
        assert_eq!(offset_of!(DropEvent, netns), 20);
        assert_eq!(offset_of!(DropEvent, ifindex), 24);
        assert_eq!(offset_of!(DropEvent, skb_len), 28);
        assert_eq!(offset_of!(DropEvent, cpu), 32);
        assert_eq!(offset_of!(DropEvent, l3_proto), 36);
        assert_eq!(offset_of!(DropEvent, l4_proto), 38);
        assert_eq!(offset_of!(DropEvent, flags), 39);
        assert_eq!(offset_of!(DropEvent, saddr), 40);
        assert_eq!(offset_of!(DropEvent, daddr), 56);
        assert_eq!(offset_of!(DropEvent, sport), 72);
        assert_eq!(offset_of!(DropEvent, dport), 74);
        assert_eq!(offset_of!(DropEvent, icmp_type), 76);
        assert_eq!(offset_of!(DropEvent, icmp_code), 77);
        assert_eq!(offset_of!(DropEvent, tcp_flags), 78);
        assert_eq!(offset_of!(DropEvent, netns_cookie), 80);
    }

    pub(crate) fn bytes_of(ev: &DropEvent) -> Vec<u8> {
        let mut out = Vec::with_capacity(EVENT_SIZE);
        out.extend(ev.timestamp_ns.to_ne_bytes());
        out.extend(ev.location.to_ne_bytes());
        for v in [ev.reason, ev.netns, ev.ifindex, ev.skb_len, ev.cpu] {
            out.extend(v.to_ne_bytes());
        }
        out.extend(ev.l3_proto.to_ne_bytes());
        out.extend([ev.l4_proto, ev.flags]);
        out.extend(ev.saddr);
        out.extend(ev.daddr);
        out.extend(ev.sport.to_ne_bytes());
        out.extend(ev.dport.to_ne_bytes());
        out.extend([ev.icmp_type, ev.icmp_code, ev.tcp_flags, 0]);
        out.extend(ev.netns_cookie.to_ne_bytes());
        out
    }

    fn tcp_syn() -> DropEvent {
        let mut saddr = [0; 16];
        saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut daddr = [0; 16];
        daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        DropEvent {
            timestamp_ns: 123_456_789,
            location: 0xffff_ffff_8203_3a59,
            reason: 3,
            netns: 4_026_531_840,
            ifindex: 2,
            skb_len: 60,
            cpu: 1,
            l3_proto: ETH_P_IP,
            l4_proto: 6,
            flags: wire::EVENT_IPV4 | wire::EVENT_PORTS | wire::EVENT_TCP_FLAGS,
            saddr,
            daddr,
            sport: 40000,
            dport: 9,
            icmp_type: 0,
            icmp_code: 0,
            tcp_flags: 0x02,
            _pad: 0,
            netns_cookie: 4097,
        }
    }

    #[test]
    fn decodes_an_ipv4_tcp_drop() {
        let d = decode(&bytes_of(&tcp_syn())).unwrap();
        assert_eq!(d.reason, 3);
        assert_eq!(d.netns, Netns::new(4_026_531_840, 4097));
        assert_eq!(d.len, 60);
        assert_eq!(
            d.packet.addrs,
            Some(("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()))
        );
        assert_eq!(d.packet.ports, Some((40000, 9)));
        assert_eq!(d.packet.icmp, None);
        assert_eq!(d.packet.tcp_flags, Some(0x02));
        let g = d.group();
        assert_eq!(
            (g.protocol().as_deref(), g.dport, g.family()),
            (Some("tcp"), Some(9), Some("ipv4"))
        );
    }

    #[test]
    fn decodes_ipv6_icmp_and_non_ip() {
        let mut ev = tcp_syn();
        ev.l3_proto = ETH_P_IPV6;
        ev.l4_proto = 58;
        ev.flags = wire::EVENT_IPV6 | wire::EVENT_ICMP;
        ev.saddr = "fd00::1".parse::<Ipv6Addr>().unwrap().octets();
        ev.icmp_type = 128;
        let d = decode(&bytes_of(&ev)).unwrap();
        assert_eq!(
            d.packet.addrs.unwrap().0,
            "fd00::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!((d.packet.icmp, d.packet.ports), (Some((128, 0)), None));
        assert_eq!(d.group().protocol().as_deref(), Some("icmpv6"));
        assert_eq!(d.group().dport, None);

        ev.l3_proto = 0x0806;
        ev.flags = 0;
        let g = decode(&bytes_of(&ev)).unwrap().group();
        assert_eq!(
            (g.protocol().as_deref(), g.ip_proto, g.family()),
            (Some("arp"), None, None)
        );
        ev.l3_proto = 0;
        assert_eq!(decode(&bytes_of(&ev)).unwrap().group().protocol(), None);
    }

    #[test]
    fn rejects_bad_records() {
        let good = bytes_of(&tcp_syn());
        assert_eq!(decode(&good[..79]), Err(DecodeError::Size(79)));
        // With a snaplen the packet's bytes follow the event.
        let mut with_packet = good.clone();
        with_packet.extend_from_slice(&[0x45, 0, 0, 60]);
        assert_eq!(decode(&with_packet), decode(&good));
        assert_eq!(packet_bytes(&with_packet), [0x45, 0, 0, 60]);
        assert!(packet_bytes(&good).is_empty());
        assert_eq!(decode(&[]), Err(DecodeError::Size(0)));
        let mut both = tcp_syn();
        both.flags |= wire::EVENT_IPV6;
        assert_eq!(decode(&bytes_of(&both)), Err(DecodeError::Family));
    }

    /// The same 1028-byte IPv4 packet (a UDP datagram of 1000 bytes) as three drop sites
    /// see it: with its Ethernet header on transmit, whole in netfilter, and with its IP
    /// header pulled in UDP.
    #[test]
    fn a_packet_is_as_long_as_its_ip_header_says_wherever_it_was_dropped() {
        let mut ip = vec![0x45, 0, 0x04, 0x04, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip.extend([10, 0, 0, 1, 10, 0, 0, 2]);
        for (skb_len, l2) in [(1042, 14), (1028, 0), (1008, 0)] {
            let mut record = bytes_of(&DropEvent {
                skb_len,
                l4_proto: 17,
                ..tcp_syn()
            });
            record.extend_from_slice(&ip[..8]);
            let d = decode(&record).unwrap();
            assert_eq!((d.len, d.l2_len), (1028, l2), "skb_len {skb_len}");
        }
        // Without the header's bytes, or for a packet that is not IP: the skb's length.
        let d = decode(&bytes_of(&DropEvent {
            skb_len: 1042,
            ..tcp_syn()
        }))
        .unwrap();
        assert_eq!((d.len, d.l2_len), (1042, 0));
        assert_eq!(network_len(60, Some(0x0806), &ip), (60, 0));
        // IPv6: 40 bytes of header and the payload length.
        let six = [0x60, 0, 0, 0, 0x01, 0x00, 17, 64];
        assert_eq!(network_len(310, Some(ETH_P_IPV6), &six), (296, 14));
        assert_eq!(network_len(288, Some(ETH_P_IPV6), &six), (296, 0));
        // A jumbogram (payload length 0), a header of another version, a cut header,
        // a difference too large for a layer-2 header.
        assert_eq!(
            network_len(70_000, Some(ETH_P_IPV6), &[0x60, 0, 0, 0, 0, 0]),
            (70_000, 0)
        );
        assert_eq!(network_len(1042, Some(ETH_P_IP), &six), (1042, 0));
        assert_eq!(network_len(1042, Some(ETH_P_IP), &ip[..3]), (1042, 0));
        assert_eq!(network_len(9000, Some(ETH_P_IP), &ip), (1028, 0));
    }

    #[test]
    fn group_from_lost_key_equals_group_of_event() {
        let ev = tcp_syn();
        let from_key = Group::from(wire::GroupKey::of(&ev));
        assert_eq!(from_key, decode(&bytes_of(&ev)).unwrap().group());
        let mut arp = ev;
        arp.l3_proto = 0x0806;
        arp.flags = 0;
        arp.l4_proto = 0;
        assert_eq!(
            Group::from(wire::GroupKey::of(&arp)),
            decode(&bytes_of(&arp)).unwrap().group()
        );
    }

    #[test]
    fn protocol_names() {
        assert_eq!(ip_proto_by_name("TCP"), Some(6));
        assert_eq!(ip_proto_by_name("icmpv6"), Some(58));
        assert_eq!(ip_proto_by_name("47"), Some(47));
        assert_eq!(ip_proto_by_name("tcpx"), None);
        assert_eq!(closest_proto_name("tcpp"), Some("tcp"));
        assert_eq!(closest_proto_name("UPD"), Some("udp"));
        assert_eq!(closest_proto_name("bananas"), None);
    }
}
