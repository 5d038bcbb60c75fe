//! What droptrace knows about why the kernel drops packets, as data.
//!
//! Four tables, all plain statics, and one entry point:
//!
//! - [`REASONS`]: every `enum skb_drop_reason` name of Linux 6.18 (plus older spellings),
//!   written as the kernel spells it without `SKB_DROP_REASON_` (`NETFILTER_DROP`).
//! - [`LOCATIONS`]: kernel functions whose name says more than the reason, for kernels
//!   without reasons (before 5.17) and for the many drops still tagged `NOT_SPECIFIED`.
//! - [`REASON_FAMILIES`]: name prefixes of subsystem reasons (Open vSwitch, mac80211),
//!   which live in their own enums and are not listed one by one.
//! - [`COUNTERS`]: kernel counters that go up on drops that never reach `kfree_skb`
//!   (or that say which of several causes it was).
//! - [`classify`]: turns a (reason, function) pair into a [`Classification`].
//!
//! Explanations are one line of plain English; fixes name the first thing to check. Fixes
//! may contain the placeholders listed in [`PLACEHOLDERS`]; fill them with
//! [`fill_placeholders`].

use serde::{Serialize, Serializer};

/// Broad cause of a drop. The ids returned by [`Cause::id`] are stable: they appear in
/// JSON output and scripts may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    /// A firewall rule (nftables, iptables, ebtables) or another netfilter hook said drop.
    NetfilterRule,
    /// The connection tracking table had no room for a new flow.
    ConntrackFull,
    /// A queueing discipline (qdisc) refused the packet on transmit.
    Qdisc,
    /// A tc filter or action (often a BPF program attached with tc) dropped it.
    TcBpf,
    /// An XDP program returned XDP_DROP (or failed).
    Xdp,
    /// The packet was bigger than an MTU on its way.
    Mtu,
    /// Reverse path filtering (rp_filter) rejected the source address.
    RpFilter,
    /// Nothing listens on the destination port.
    NoListener,
    /// A socket's receive buffer (or protocol memory) was full.
    SocketRcvbuf,
    /// A listening socket's SYN or accept queue was full.
    ListenOverflow,
    /// TCP timestamp checks (PAWS, RFC 7323) rejected the segment.
    Paws,
    /// The per-CPU input backlog (netdev_max_backlog) was full.
    NetdevBacklog,
    /// The network device or its driver: rings, hardware errors, corruption on the wire.
    Nic,
    /// Anything else; the explanation says what.
    Other,
}

impl Cause {
    /// Every cause, in declaration order.
    pub const ALL: [Cause; 14] = [
        Cause::NetfilterRule,
        Cause::ConntrackFull,
        Cause::Qdisc,
        Cause::TcBpf,
        Cause::Xdp,
        Cause::Mtu,
        Cause::RpFilter,
        Cause::NoListener,
        Cause::SocketRcvbuf,
        Cause::ListenOverflow,
        Cause::Paws,
        Cause::NetdevBacklog,
        Cause::Nic,
        Cause::Other,
    ];

    /// The stable snake_case id, e.g. `netfilter_rule`.
    pub fn id(&self) -> &'static str {
        match self {
            Cause::NetfilterRule => "netfilter_rule",
            Cause::ConntrackFull => "conntrack_full",
            Cause::Qdisc => "qdisc",
            Cause::TcBpf => "tc_bpf",
            Cause::Xdp => "xdp",
            Cause::Mtu => "mtu",
            Cause::RpFilter => "rp_filter",
            Cause::NoListener => "no_listener",
            Cause::SocketRcvbuf => "socket_rcvbuf",
            Cause::ListenOverflow => "listen_overflow",
            Cause::Paws => "paws",
            Cause::NetdevBacklog => "netdev_backlog",
            Cause::Nic => "nic",
            Cause::Other => "other",
        }
    }

    /// The cause with this id, if any.
    pub fn from_id(id: &str) -> Option<Cause> {
        Cause::ALL.into_iter().find(|cause| cause.id() == id)
    }

    /// A few words for humans, e.g. `firewall rule`.
    pub fn label(&self) -> &'static str {
        match self {
            Cause::NetfilterRule => "firewall rule",
            Cause::ConntrackFull => "conntrack table full",
            Cause::Qdisc => "qdisc",
            Cause::TcBpf => "tc filter or BPF program",
            Cause::Xdp => "XDP program",
            Cause::Mtu => "MTU",
            Cause::RpFilter => "reverse path filter",
            Cause::NoListener => "no listener",
            Cause::SocketRcvbuf => "socket receive buffer",
            Cause::ListenOverflow => "listen queue overflow",
            Cause::Paws => "TCP timestamp (PAWS) check",
            Cause::NetdevBacklog => "CPU input backlog",
            Cause::Nic => "network device",
            Cause::Other => "other",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

/// Placeholders that a `fix` may contain, and what to put in their place.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "{iface}",
        "the network interface the drop was seen on (e.g. eth0)",
    ),
    (
        "{port}",
        "the local port of the dropped packet (destination port on receive)",
    ),
];

/// Replaces [`PLACEHOLDERS`] in `text`; an unknown value becomes `<iface>` / `<port>` so
/// that the operator sees what to fill in.
pub fn fill_placeholders(text: &str, iface: Option<&str>, port: Option<u16>) -> String {
    let port = port.map(|p| p.to_string());
    text.replace("{iface}", iface.unwrap_or("<iface>"))
        .replace("{port}", port.as_deref().unwrap_or("<port>"))
}

/// What droptrace knows about one drop reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReasonInfo {
    /// Kernel spelling without `SKB_DROP_REASON_`, e.g. `NETFILTER_DROP`.
    pub name: &'static str,
    pub cause: Cause,
    /// What the kernel means, in one line.
    pub explanation: &'static str,
    /// The first thing to check or run.
    pub fix: &'static str,
    /// Normal housekeeping (closed sockets, duplicates, purged queues): rank it low.
    pub benign: bool,
}

// Fixes shared by many reasons.
const FIX_BENIGN: &str =
    "Nothing to fix: this is normal housekeeping; look at it only if the application reports errors at the same time";
const FIX_TCP_BENIGN: &str =
    "Nothing to fix on its own: TCP handles it; worry only if retransmissions (`nstat -az TcpRetransSegs`) climb too";
const FIX_TCP_WINDOW: &str =
    "Capture the flow (`tcpdump -ni {iface} port {port}`) and compare sequence numbers; a middlebox rewriting sequences or a misbehaving peer is the usual suspect";
const FIX_TCP_AUTH: &str =
    "Check that both peers configure the same TCP-MD5/TCP-AO keys for this address (often a BGP session's password)";
const FIX_CAPTURE: &str =
    "Capture it (`tcpdump -ni {iface} -e -vv`) to see who sends malformed packets; a broken sender, tunnel or middlebox is the usual cause";
const FIX_CSUM: &str =
    "Look for corruption on the path: `ethtool -S {iface}` error counters, cabling, and checksum offload (`ethtool -k {iface}`, try turning rx/tx checksumming off)";
const FIX_QDISC: &str =
    "Run `tc -s qdisc show dev {iface}`: the qdisc with growing drops is full; raise its limit, shape less, or find who sends faster than the link";
const FIX_TC: &str =
    "List tc filters and actions: `tc filter show dev {iface} ingress`, `tc filter show dev {iface} egress`, and `bpftool net show`";
const FIX_ROUTE_IN: &str =
    "Check the route for the packet as it arrives: `ip route get <dst> from <src> iif {iface}`";
const FIX_NEIGH: &str =
    "Check neighbour resolution on {iface}: `ip neigh show dev {iface}`; FAILED entries mean the next hop does not answer ARP/ND";
const FIX_FRAG: &str =
    "Avoid IP fragmentation (lower the sender's MTU or clamp TCP MSS); `nstat -az IpReasmFails IpReasmTimeout` shows reassembly trouble";
const FIX_NDISC: &str =
    "Capture the ICMPv6 traffic (`tcpdump -ni {iface} icmp6`) to find the sender of malformed neighbour discovery";
const FIX_VXLAN: &str =
    "Check the VXLAN device and its forwarding table: `ip -d link show`, `bridge fdb show dev <vxlan-dev>`";
const FIX_CAN: &str =
    "Check the CAN interface configuration and the sending node (`ip -d -s link show {iface}`)";
const FIX_PAWS: &str =
    "Check clients behind one NAT sharing a TCP timestamp clock and `sysctl net.ipv4.tcp_timestamps`; `nstat -az TcpExtPAWSEstab TcpExtPAWSActive` shows the trend";
const FIX_RCVBUF: &str =
    "The application reads too slowly: see `ss -tumpn` Recv-Q and `ss -m` drops, then read faster or raise SO_RCVBUF / net.core.rmem_max";
const FIX_NOT_SPECIFIED: &str =
    "The function that dropped it is the best clue: read its source, or see who called it with `perf record -e skb:kfree_skb -g -a -- sleep 10; perf script`";

/// Every drop reason of Linux 6.18 (`/sys/kernel/tracing/events/skb/kfree_skb/format`),
/// in the kernel's order, then names that only older kernels used.
///
/// `benign` is decided per reason; the comment before an entry says why when it is true.
pub static REASONS: &[ReasonInfo] = &[
    ReasonInfo {
        name: "NOT_SPECIFIED",
        cause: Cause::Other,
        explanation: "The code that freed the packet did not say why; the function name has to tell the story",
        fix: FIX_NOT_SPECIFIED,
        benign: false,
    },
    ReasonInfo {
        name: "NO_SOCKET",
        cause: Cause::NoListener,
        explanation: "No socket wanted the packet: nothing listens on the port, or the connection it belongs to is gone",
        fix: "Check that a program listens on the port: `ss -ltnup 'sport = :{port}'`; if it should not, the sender is misconfigured or late",
        benign: false,
    },
    // The application closed the socket with data still queued; the kernel throws it away.
    ReasonInfo {
        name: "SOCKET_CLOSE",
        cause: Cause::Other,
        explanation: "The socket was closed while packets still waited in it, so they were thrown away",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "SOCKET_FILTER",
        cause: Cause::Other,
        explanation: "A filter program attached to the socket (SO_ATTACH_FILTER / SO_ATTACH_BPF) rejected the packet",
        fix: "Find the socket's filter: `ss -tuap` for the owner, `bpftool prog show` for attached programs; a filter of the application itself is the usual source",
        benign: false,
    },
    ReasonInfo {
        name: "SOCKET_RCVBUFF",
        cause: Cause::SocketRcvbuf,
        explanation: "The socket's receive buffer was full because the application did not read fast enough",
        fix: FIX_RCVBUF,
        benign: false,
    },
    // The peer of a unix socket went away; its queued messages are discarded.
    ReasonInfo {
        name: "UNIX_DISCONNECT",
        cause: Cause::Other,
        explanation: "A unix-domain socket's peer closed, so the messages between them were discarded",
        fix: FIX_BENIGN,
        benign: true,
    },
    // recv() without MSG_OOB skips out-of-band data by design.
    ReasonInfo {
        name: "UNIX_SKIP_OOB",
        cause: Cause::Other,
        explanation: "Out-of-band data on a unix stream socket was skipped by a normal read and thrown away",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "PKT_TOO_SMALL",
        cause: Cause::Other,
        explanation: "The packet was shorter than its headers claim, so it could not be parsed",
        fix: FIX_CAPTURE,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_CSUM",
        cause: Cause::Nic,
        explanation: "The TCP checksum did not match: the segment was corrupted on the way or by checksum offload",
        fix: FIX_CSUM,
        benign: false,
    },
    ReasonInfo {
        name: "UDP_CSUM",
        cause: Cause::Nic,
        explanation: "The UDP checksum did not match: the datagram was corrupted on the way or by checksum offload",
        fix: FIX_CSUM,
        benign: false,
    },
    ReasonInfo {
        name: "NETFILTER_DROP",
        cause: Cause::NetfilterRule,
        explanation: "A firewall rule or another netfilter hook decided to drop the packet",
        fix: "Find the rule whose counter grows: `nft list ruleset` (add counters if missing) or `iptables-save -c` / `ip6tables-save -c`",
        benign: false,
    },
    // The interface is promiscuous (tcpdump, bridge) and sees frames for other hosts.
    ReasonInfo {
        name: "OTHERHOST",
        cause: Cause::Other,
        explanation: "The frame was addressed to another host's MAC and only seen because the interface is promiscuous",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "IP_CSUM",
        cause: Cause::Nic,
        explanation: "The IPv4 header checksum was wrong: the packet was corrupted on the way",
        fix: FIX_CSUM,
        benign: false,
    },
    ReasonInfo {
        name: "IP_INHDR",
        cause: Cause::Other,
        explanation: "The IP header was invalid (bad version or length), or the TTL ran out while forwarding",
        fix: "Check `nstat -az IpInHdrErrors`; when forwarding, a routing loop or a sender with a very low TTL is typical (`tcpdump -ni {iface} -v`)",
        benign: false,
    },
    ReasonInfo {
        name: "IP_RPFILTER",
        cause: Cause::RpFilter,
        explanation: "Reverse path filtering rejected the source: replies to it would leave by another interface",
        fix: "Check `sysctl net.ipv4.conf.{iface}.rp_filter net.ipv4.conf.all.rp_filter` (the higher wins); use 2 (loose) for asymmetric routing or fix the routes",
        benign: false,
    },
    ReasonInfo {
        name: "UNICAST_IN_L2_MULTICAST",
        cause: Cause::Other,
        explanation: "An IP unicast packet arrived in a link-layer multicast or broadcast frame, which the interface is set to refuse",
        fix: "Check `sysctl net.ipv4.conf.{iface}.drop_unicast_in_l2_multicast` (and the ipv6 one); the sender or an access point rewrites frames",
        benign: false,
    },
    ReasonInfo {
        name: "XFRM_POLICY",
        cause: Cause::Other,
        explanation: "An IPsec (xfrm) policy check failed: the packet was not protected the way a policy demands",
        fix: "Compare `ip xfrm policy` with `ip xfrm state`: a missing or expired security association is the usual cause",
        benign: false,
    },
    ReasonInfo {
        name: "IP_NOPROTO",
        cause: Cause::Other,
        explanation: "The IP protocol number has no handler in this kernel (e.g. GRE or SCTP without its module)",
        fix: "See which protocol it is (`tcpdump -ni {iface} -v`); load the module for it or stop the sender",
        benign: false,
    },
    ReasonInfo {
        name: "PROTO_MEM",
        cause: Cause::SocketRcvbuf,
        explanation: "The protocol's global memory limit (udp_mem / tcp_mem) was reached, so the packet could not be queued",
        fix: "Compare `cat /proc/net/sockstat` with `sysctl net.ipv4.udp_mem net.ipv4.tcp_mem`; find sockets with big Recv-Q (`ss -tumpn`)",
        benign: false,
    },
    ReasonInfo {
        name: "TCP_AUTH_HDR",
        cause: Cause::Other,
        explanation: "The TCP-MD5 or TCP-AO option was duplicated or malformed",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_MD5NOTFOUND",
        cause: Cause::Other,
        explanation: "A TCP-MD5 signature was required for this peer but the segment carried none",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_MD5UNEXPECTED",
        cause: Cause::Other,
        explanation: "The segment carried a TCP-MD5 signature although none is configured for this peer",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_MD5FAILURE",
        cause: Cause::Other,
        explanation: "The TCP-MD5 signature did not verify: the two peers use different keys",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_AONOTFOUND",
        cause: Cause::Other,
        explanation: "TCP-AO authentication was required for this peer but the segment had no TCP-AO option",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_AOUNEXPECTED",
        cause: Cause::Other,
        explanation: "The segment carried a TCP-AO option although none is configured for this peer",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_AOKEYNOTFOUND",
        cause: Cause::Other,
        explanation: "The segment named a TCP-AO key id that this host does not have",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_AOFAILURE",
        cause: Cause::Other,
        explanation: "The TCP-AO signature did not verify: the keys differ or the segment was altered",
        fix: FIX_TCP_AUTH,
        benign: false,
    },
    ReasonInfo {
        name: "SOCKET_BACKLOG",
        cause: Cause::SocketRcvbuf,
        explanation: "The socket was busy in the application and its backlog queue, bounded by the buffer sizes, overflowed",
        fix: "See `nstat -az TcpExtTCPBacklogDrop`; the application holds the socket too long or its buffers are small (raise SO_RCVBUF / net.ipv4.tcp_rmem)",
        benign: false,
    },
    ReasonInfo {
        name: "TCP_FLAGS",
        cause: Cause::Other,
        explanation: "The TCP flags made no sense for the connection's state (e.g. no ACK on an established connection)",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    // Data arrived after the application closed; the kernel answers with a reset.
    ReasonInfo {
        name: "TCP_ABORT_ON_DATA",
        cause: Cause::Other,
        explanation: "Data arrived for a connection the application had already closed, so the kernel reset it",
        fix: "Usually harmless; if the peer complains about resets, the application closes before reading everything (`nstat -az TcpExtTCPAbortOnData`)",
        benign: true,
    },
    ReasonInfo {
        name: "TCP_ZEROWINDOW",
        cause: Cause::SocketRcvbuf,
        explanation: "The receive window was zero because the application stopped reading, yet the peer sent data",
        fix: FIX_RCVBUF,
        benign: false,
    },
    // A retransmission of data already received: the original arrived after all.
    ReasonInfo {
        name: "TCP_OLD_DATA",
        cause: Cause::Other,
        explanation: "The segment only repeated data already received (a spurious retransmission)",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_OVERWINDOW",
        cause: Cause::Other,
        explanation: "The segment started beyond the right edge of the receive window",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    // Duplicate of data already waiting in the out-of-order queue.
    ReasonInfo {
        name: "TCP_OFOMERGE",
        cause: Cause::Other,
        explanation: "The segment duplicated data already held in the out-of-order queue",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_RFC7323_PAWS",
        cause: Cause::Paws,
        explanation: "The segment's TCP timestamp was older than the connection's latest one, so PAWS treated it as a stale duplicate",
        fix: FIX_PAWS,
        benign: false,
    },
    // Old ACKs failing PAWS are mostly reordering after a timestamp update (PAWSOldAck).
    ReasonInfo {
        name: "TCP_RFC7323_PAWS_ACK",
        cause: Cause::Paws,
        explanation: "A pure ACK with an out-of-date TCP timestamp was ignored; reordered old ACKs cause this",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_RFC7323_TW_PAWS",
        cause: Cause::Paws,
        explanation: "A segment for a connection in TIME_WAIT carried a stale TCP timestamp; typical when a client reuses a port too soon",
        fix: FIX_PAWS,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_RFC7323_TSECR",
        cause: Cause::Paws,
        explanation: "The timestamp the peer echoed back (TSecr) was not one this host had sent",
        fix: FIX_PAWS,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_LISTEN_OVERFLOW",
        cause: Cause::ListenOverflow,
        explanation: "A listening socket's queue of pending connections was full, so the handshake packet was dropped",
        fix: "Run `ss -ltn 'sport = :{port}'`: Recv-Q at Send-Q means the accept queue is full; accept faster or raise the listen() backlog and net.core.somaxconn",
        benign: false,
    },
    // A duplicate of something already processed.
    ReasonInfo {
        name: "TCP_OLD_SEQUENCE",
        cause: Cause::Other,
        explanation: "The segment lay entirely before the expected sequence number: a duplicate",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_INVALID_SEQUENCE",
        cause: Cause::Other,
        explanation: "The segment's sequence number was outside the window the receiver accepts",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_INVALID_END_SEQUENCE",
        cause: Cause::Other,
        explanation: "The segment's last byte reached past the window the receiver advertised",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_INVALID_ACK_SEQUENCE",
        cause: Cause::Other,
        explanation: "The segment acknowledged data outside the range this host has sent and not yet seen acknowledged",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    // The reset was processed (or refused); the RST packet itself is then freed.
    ReasonInfo {
        name: "TCP_RESET",
        cause: Cause::Other,
        explanation: "A TCP reset was handled or refused as out of window, and the RST packet itself was then freed",
        fix: "Harmless by itself; if connections die unexpectedly, find who sends resets (`tcpdump -ni {iface} 'tcp[tcpflags] & tcp-rst != 0'`)",
        benign: true,
    },
    ReasonInfo {
        name: "TCP_INVALID_SYN",
        cause: Cause::Other,
        explanation: "A SYN arrived for a connection that already exists; the kernel answered with a challenge ACK",
        fix: "Often a client behind NAT reusing a port; check `nstat -az TcpExtTCPSYNChallenge` and the NAT's port allocation",
        benign: false,
    },
    // Segments for a socket that already reached CLOSE: leftovers of a finished connection.
    ReasonInfo {
        name: "TCP_CLOSE",
        cause: Cause::Other,
        explanation: "The segment arrived for a socket that was already fully closed",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_FASTOPEN",
        cause: Cause::Other,
        explanation: "A segment for a TCP Fast Open connection still in its handshake failed the request socket's checks",
        fix: "Check TCP Fast Open (`sysctl net.ipv4.tcp_fastopen`, `nstat -az TcpExtTCPFastOpen*`); turn it off if a middlebox mangles it",
        benign: false,
    },
    // An ACK below what was already acknowledged but still in window: simply ignored.
    ReasonInfo {
        name: "TCP_OLD_ACK",
        cause: Cause::Other,
        explanation: "The ACK acknowledged less than an earlier ACK had; reordering makes this happen",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    // Same as TCP_OLD_ACK, only older: reordered or delayed ACKs.
    ReasonInfo {
        name: "TCP_TOO_OLD_ACK",
        cause: Cause::Other,
        explanation: "The ACK was far older than anything still outstanding, so it was ignored",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TCP_ACK_UNSENT_DATA",
        cause: Cause::Other,
        explanation: "The peer acknowledged data this host never sent",
        fix: FIX_TCP_WINDOW,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_OFO_QUEUE_PRUNE",
        cause: Cause::SocketRcvbuf,
        explanation: "Out-of-order data was thrown out of the queue to free receive memory",
        fix: FIX_RCVBUF,
        benign: false,
    },
    // Out-of-order data that in-order data covered meanwhile: a duplicate.
    ReasonInfo {
        name: "TCP_OFO_DROP",
        cause: Cause::Other,
        explanation: "Out-of-order data turned out to be already received in order, so it was not needed",
        fix: FIX_TCP_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "IP_OUTNOROUTES",
        cause: Cause::Other,
        explanation: "No route to the destination was found while sending",
        fix: "Run `ip route get <dst>` (and `ip rule` for policy routing); a missing default route or down interface is typical",
        benign: false,
    },
    ReasonInfo {
        name: "BPF_CGROUP_EGRESS",
        cause: Cause::Other,
        explanation: "A BPF program attached to the sender's cgroup refused the outgoing packet",
        fix: "List cgroup BPF programs: `bpftool cgroup tree`; container runtimes and service meshes attach them",
        benign: false,
    },
    // IPv6 was switched off on purpose; stray IPv6 traffic (RA, mDNS) is expected.
    ReasonInfo {
        name: "IPV6DISABLED",
        cause: Cause::Other,
        explanation: "An IPv6 packet arrived on an interface where IPv6 is turned off",
        fix: "Expected if IPv6 is disabled on purpose; otherwise `sysctl net.ipv6.conf.{iface}.disable_ipv6=0`",
        benign: true,
    },
    ReasonInfo {
        name: "NEIGH_CREATEFAIL",
        cause: Cause::Other,
        explanation: "No neighbour (ARP/ND) entry could be created for the next hop, often because the table is full",
        fix: "Compare `ip neigh show | wc -l` with `sysctl net.ipv4.neigh.default.gc_thresh3` (and ipv6); raise the thresholds on big L2 segments",
        benign: false,
    },
    ReasonInfo {
        name: "NEIGH_FAILED",
        cause: Cause::Other,
        explanation: "The next hop did not answer ARP or neighbour discovery, so its link address is unknown",
        fix: FIX_NEIGH,
        benign: false,
    },
    ReasonInfo {
        name: "NEIGH_QUEUEFULL",
        cause: Cause::Other,
        explanation: "Too many packets waited for the next hop's address to be resolved",
        fix: "Check `ip neigh show dev {iface}` and raise `sysctl net.ipv4.neigh.{iface}.unres_qlen_bytes` if resolution is just slow",
        benign: false,
    },
    ReasonInfo {
        name: "NEIGH_DEAD",
        cause: Cause::Other,
        explanation: "The neighbour entry was being removed (e.g. its interface went down) while the packet used it",
        fix: FIX_NEIGH,
        benign: false,
    },
    ReasonInfo {
        name: "NEIGH_HH_FILLFAIL",
        cause: Cause::Other,
        explanation: "The link-layer header could not be built from the neighbour entry",
        fix: FIX_NEIGH,
        benign: false,
    },
    ReasonInfo {
        name: "TC_EGRESS",
        cause: Cause::TcBpf,
        explanation: "A tc filter or BPF program on the egress hook dropped the outgoing packet",
        fix: FIX_TC,
        benign: false,
    },
    ReasonInfo {
        name: "SECURITY_HOOK",
        cause: Cause::Other,
        explanation: "A security module (SELinux, AppArmor, Smack, a BPF LSM) refused the packet",
        fix: "Look for denials: `journalctl -k | grep -i -e avc -e apparmor`, `ausearch -m avc`; check BPF LSM programs with `bpftool prog show`",
        benign: false,
    },
    ReasonInfo {
        name: "QDISC_DROP",
        cause: Cause::Qdisc,
        explanation: "The transmit queueing discipline refused the packet, usually because its queue was full",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "QDISC_OVERLIMIT",
        cause: Cause::Qdisc,
        explanation: "A qdisc was holding as much data as its configured limit allows",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "QDISC_CONGESTED",
        cause: Cause::Qdisc,
        explanation: "A qdisc's queue-management algorithm (CoDel, PIE, RED...) dropped it to keep latency down",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "CAKE_FLOOD",
        cause: Cause::Qdisc,
        explanation: "The CAKE qdisc's flood protection dropped it: a flow kept sending into a full queue",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "FQ_BAND_LIMIT",
        cause: Cause::Qdisc,
        explanation: "The fq qdisc's per-priority-band packet limit was reached",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "FQ_HORIZON_LIMIT",
        cause: Cause::Qdisc,
        explanation: "The fq qdisc refused a packet whose departure time was set too far in the future",
        fix: "Run `tc -s qdisc show dev {iface}`; an application setting SO_TXTIME/EDT far ahead, or a small fq `horizon`, causes this",
        benign: false,
    },
    ReasonInfo {
        name: "FQ_FLOW_LIMIT",
        cause: Cause::Qdisc,
        explanation: "One flow filled its share of the fq qdisc (flow_limit)",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "CPU_BACKLOG",
        cause: Cause::NetdevBacklog,
        explanation: "The per-CPU queue of received packets waiting for the stack was full (or RPS flow limit hit)",
        fix: "Watch the second column of /proc/net/softnet_stat; raise `sysctl net.core.netdev_max_backlog` or spread load with RPS/RSS",
        benign: false,
    },
    ReasonInfo {
        name: "XDP",
        cause: Cause::Xdp,
        explanation: "An XDP program on the receiving interface dropped the packet",
        fix: "See which XDP program is attached: `ip link show {iface}` (prog/xdp id) and `bpftool net show dev {iface}`",
        benign: false,
    },
    ReasonInfo {
        name: "TC_INGRESS",
        cause: Cause::TcBpf,
        explanation: "A tc filter or BPF program on the ingress hook dropped the incoming packet",
        fix: FIX_TC,
        benign: false,
    },
    // Frames nobody registered for (LLDP, STP, vendor protocols) on most hosts.
    ReasonInfo {
        name: "UNHANDLED_PROTO",
        cause: Cause::Other,
        explanation: "No protocol handler wanted the frame's ethertype (LLDP, STP and similar link chatter)",
        fix: "Usually harmless link chatter; see what it is with `tcpdump -ni {iface} -e not ip and not ip6 and not arp`",
        benign: true,
    },
    ReasonInfo {
        name: "SKB_CSUM",
        cause: Cause::Other,
        explanation: "Computing the packet's checksum in software failed",
        fix: "Check offload settings of the egress device (`ethtool -k {iface}`) and the kernel log for warnings",
        benign: false,
    },
    ReasonInfo {
        name: "SKB_GSO_SEG",
        cause: Cause::Other,
        explanation: "Splitting a large (GSO) packet into wire-sized segments failed",
        fix: "Check offloads on the egress device (`ethtool -k {iface}`; try `ethtool -K {iface} gso off tso off`) and tunnels in the path",
        benign: false,
    },
    ReasonInfo {
        name: "SKB_UCOPY_FAULT",
        cause: Cause::Other,
        explanation: "Copying the packet's data from the application's memory failed (a bad buffer or zerocopy failure)",
        fix: "Look at the sending application: it passed memory the kernel could not read (bad pointer, unmapped zerocopy buffer)",
        benign: false,
    },
    ReasonInfo {
        name: "DEV_HDR",
        cause: Cause::Other,
        explanation: "A driver-specific header or metadata (e.g. a virtio-net or tun header) was invalid",
        fix: "Check the program feeding the device (qemu, a tun/tap user) and the driver version; `dmesg` may say more",
        benign: false,
    },
    ReasonInfo {
        name: "DEV_READY",
        cause: Cause::Other,
        explanation: "The device was not ready: it is down, or its peer or queue is not set up",
        fix: "Run `ip link show {iface}` (and its peer for veth): is it UP and is the other end attached?",
        benign: false,
    },
    ReasonInfo {
        name: "FULL_RING",
        cause: Cause::Nic,
        explanation: "A device ring was full: the reader of a tun/tap or veth queue did not keep up",
        fix: "Check the consumer of {iface} (qemu/vhost, the veth peer's XDP) and `ip -s link show {iface}`; more queues or a faster reader help",
        benign: false,
    },
    ReasonInfo {
        name: "NOMEM",
        cause: Cause::Other,
        explanation: "The kernel could not allocate memory to handle the packet",
        fix: "Check memory pressure: `free -m`, `grep -i -e Slab -e MemAvailable /proc/meminfo`, `dmesg` for allocation failures",
        benign: false,
    },
    ReasonInfo {
        name: "HDR_TRUNC",
        cause: Cause::Other,
        explanation: "The headers the stack needed were not all present in the packet",
        fix: FIX_CAPTURE,
        benign: false,
    },
    ReasonInfo {
        name: "TAP_FILTER",
        cause: Cause::Other,
        explanation: "A BPF filter attached to the tun/tap device (TUNSETFILTEREBPF) rejected the packet",
        fix: "Look at the program owning the tap device (VM manager, VPN) and its filter; `bpftool prog show` lists programs",
        benign: false,
    },
    // The tap's own MAC/multicast filter, set by the guest: frames not meant for it.
    ReasonInfo {
        name: "TAP_TXFILTER",
        cause: Cause::Other,
        explanation: "The tun/tap address filter set by its user refused a frame not meant for it",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "ICMP_CSUM",
        cause: Cause::Nic,
        explanation: "The ICMP checksum did not match: the message was corrupted on the way",
        fix: FIX_CSUM,
        benign: false,
    },
    // Broadcast pings and the like, ignored on purpose (icmp_echo_ignore_broadcasts).
    ReasonInfo {
        name: "INVALID_PROTO",
        cause: Cause::Other,
        explanation: "An ICMP message sent to a broadcast or multicast address was ignored by rule (e.g. a broadcast ping)",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "IP_INADDRERRORS",
        cause: Cause::Other,
        explanation: "The destination address is not usable here: routing says the host is unreachable or the address is invalid",
        fix: FIX_ROUTE_IN,
        benign: false,
    },
    ReasonInfo {
        name: "IP_INNOROUTES",
        cause: Cause::Other,
        explanation: "There is no route for the incoming packet's destination (network unreachable)",
        fix: FIX_ROUTE_IN,
        benign: false,
    },
    ReasonInfo {
        name: "IP_LOCAL_SOURCE",
        cause: Cause::Other,
        explanation: "A packet arrived from outside claiming one of this host's own addresses as its source",
        fix: "Look for loops or spoofing; `sysctl net.ipv4.conf.{iface}.log_martians=1` logs them, `accept_local` allows them if intended",
        benign: false,
    },
    ReasonInfo {
        name: "IP_INVALID_SOURCE",
        cause: Cause::Other,
        explanation: "The source address can never be a sender (multicast, broadcast, or zero outside of IGMP)",
        fix: "Find the sender with `tcpdump -ni {iface} -e`; `sysctl net.ipv4.conf.{iface}.log_martians=1` logs such martians",
        benign: false,
    },
    ReasonInfo {
        name: "IP_LOCALNET",
        cause: Cause::Other,
        explanation: "A loopback address (127.0.0.0/8) appeared on a non-loopback interface",
        fix: "Expected only with `net.ipv4.conf.{iface}.route_localnet=1`; otherwise find who sends 127.x packets over the wire",
        benign: false,
    },
    ReasonInfo {
        name: "IP_INVALID_DEST",
        cause: Cause::Other,
        explanation: "The destination address is invalid for an incoming packet (e.g. 0.0.0.0)",
        fix: FIX_CAPTURE,
        benign: false,
    },
    ReasonInfo {
        name: "PKT_TOO_BIG",
        cause: Cause::Mtu,
        explanation: "The packet was larger than the MTU on its way out and could not be fragmented",
        fix: "Compare MTUs along the path (`ip link show {iface}`, `ip route get <dst>`); make sure ICMP 'fragmentation needed' is not filtered, or clamp TCP MSS",
        benign: false,
    },
    // A fragment received twice; reassembly keeps the first copy.
    ReasonInfo {
        name: "DUP_FRAG",
        cause: Cause::Other,
        explanation: "An IP fragment arrived a second time, so the copy was discarded",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "FRAG_REASM_TIMEOUT",
        cause: Cause::Other,
        explanation: "Not all fragments of a packet arrived in time, so the ones held were discarded",
        fix: FIX_FRAG,
        benign: false,
    },
    ReasonInfo {
        name: "FRAG_TOO_FAR",
        cause: Cause::Other,
        explanation: "Fragments from one sender arrived too far out of order (net.ipv4.ipfrag_max_dist)",
        fix: FIX_FRAG,
        benign: false,
    },
    ReasonInfo {
        name: "TCP_MINTTL",
        cause: Cause::Other,
        explanation: "The packet's TTL or hop limit was below the minimum the socket demands (IP_MINTTL, GTSM)",
        fix: "Check the application's TTL security setting (often BGP GTSM) against the real hop count to the peer",
        benign: false,
    },
    ReasonInfo {
        name: "IPV6_BAD_EXTHDR",
        cause: Cause::Other,
        explanation: "An IPv6 extension header was malformed or not allowed",
        fix: FIX_CAPTURE,
        benign: false,
    },
    ReasonInfo {
        name: "IPV6_NDISC_FRAG",
        cause: Cause::Other,
        explanation: "A neighbour discovery message came in fragments, which is not allowed",
        fix: FIX_NDISC,
        benign: false,
    },
    ReasonInfo {
        name: "IPV6_NDISC_HOP_LIMIT",
        cause: Cause::Other,
        explanation: "A neighbour discovery message did not have hop limit 255, so it may come from off-link",
        fix: FIX_NDISC,
        benign: false,
    },
    ReasonInfo {
        name: "IPV6_NDISC_BAD_CODE",
        cause: Cause::Other,
        explanation: "A neighbour discovery message had a non-zero ICMPv6 code",
        fix: FIX_NDISC,
        benign: false,
    },
    ReasonInfo {
        name: "IPV6_NDISC_BAD_OPTIONS",
        cause: Cause::Other,
        explanation: "A neighbour discovery message had malformed options",
        fix: FIX_NDISC,
        benign: false,
    },
    // On a shared segment hosts hear solicitations for their neighbours' addresses.
    ReasonInfo {
        name: "IPV6_NDISC_NS_OTHERHOST",
        cause: Cause::Other,
        explanation: "A neighbour solicitation asked for an address that belongs to another host",
        fix: FIX_BENIGN,
        benign: true,
    },
    // A whole queue freed at once (socket or device teardown).
    ReasonInfo {
        name: "QUEUE_PURGE",
        cause: Cause::Other,
        explanation: "A whole packet queue was emptied at once, typically when a socket or device was torn down",
        fix: FIX_BENIGN,
        benign: true,
    },
    ReasonInfo {
        name: "TC_COOKIE_ERROR",
        cause: Cause::TcBpf,
        explanation: "tc could not handle the extension cookie attached to the packet",
        fix: FIX_TC,
        benign: false,
    },
    // Only the packet socket's (tcpdump, DHCP client) copy is lost; the original goes on.
    ReasonInfo {
        name: "PACKET_SOCK_ERROR",
        cause: Cause::Other,
        explanation: "A packet socket (tcpdump, a DHCP client) matched the packet but could not take its copy",
        fix: "Only the capturing program lost its copy; if that matters, give it a bigger buffer (`tcpdump -B`) or read faster",
        benign: true,
    },
    ReasonInfo {
        name: "TC_CHAIN_NOTFOUND",
        cause: Cause::TcBpf,
        explanation: "A tc action jumped to a filter chain that does not exist",
        fix: FIX_TC,
        benign: false,
    },
    ReasonInfo {
        name: "TC_RECLASSIFY_LOOP",
        cause: Cause::TcBpf,
        explanation: "tc reclassified the packet too many times, which points to a loop in the rules",
        fix: FIX_TC,
        benign: false,
    },
    ReasonInfo {
        name: "VXLAN_INVALID_HDR",
        cause: Cause::Other,
        explanation: "The VXLAN header was malformed (reserved bits set or the VNI flag missing)",
        fix: FIX_VXLAN,
        benign: false,
    },
    ReasonInfo {
        name: "VXLAN_VNI_NOT_FOUND",
        cause: Cause::Other,
        explanation: "No VXLAN device here is configured for the packet's VNI",
        fix: FIX_VXLAN,
        benign: false,
    },
    ReasonInfo {
        name: "MAC_INVALID_SOURCE",
        cause: Cause::Other,
        explanation: "The source MAC address was not a valid unicast address",
        fix: FIX_CAPTURE,
        benign: false,
    },
    ReasonInfo {
        name: "VXLAN_ENTRY_EXISTS",
        cause: Cause::Other,
        explanation: "VXLAN refused to move a static forwarding entry (or one using a nexthop) to a new remote",
        fix: FIX_VXLAN,
        benign: false,
    },
    ReasonInfo {
        name: "NO_TX_TARGET",
        cause: Cause::Other,
        explanation: "A tunnel device (e.g. VXLAN) had no remote or target to send the packet to",
        fix: FIX_VXLAN,
        benign: false,
    },
    ReasonInfo {
        name: "IP_TUNNEL_ECN",
        cause: Cause::Other,
        explanation: "Decapsulation found inner and outer ECN bits that cannot be combined (RFC 6040)",
        fix: "Check what rewrites ECN bits between the tunnel ends; `ip -s -d link show` shows the tunnel's error counters",
        benign: false,
    },
    ReasonInfo {
        name: "TUNNEL_TXINFO",
        cause: Cause::Other,
        explanation: "A tunnel in external (metadata) mode got a packet without tunnel metadata telling where to send it",
        fix: "The program that should set the tunnel key (a BPF program, OVS, tc tunnel_key) did not; check its configuration",
        benign: false,
    },
    ReasonInfo {
        name: "LOCAL_MAC",
        cause: Cause::Other,
        explanation: "A frame arrived carrying this device's own MAC address as its source, which suggests a loop",
        fix: "Look for a layer-2 loop or a duplicate MAC address (`bridge fdb show`, `ip link` on the other hosts)",
        benign: false,
    },
    // ARP for a host on the same link: this host is simply not meant to proxy it.
    ReasonInfo {
        name: "ARP_PVLAN_DISABLE",
        cause: Cause::Other,
        explanation: "An ARP packet would have to be answered out of the interface it came in on, which needs proxy_arp_pvlan, and that is off",
        fix: "Expected unless this host should proxy ARP inside a private VLAN; then `sysctl net.ipv4.conf.{iface}.proxy_arp_pvlan=1`",
        benign: true,
    },
    // Pause and other MAC Control frames end at the link; a bridge never forwards them.
    ReasonInfo {
        name: "MAC_IEEE_MAC_CONTROL",
        cause: Cause::Other,
        explanation: "The frame was sent to an IEEE MAC Control address (e.g. a pause frame), which a bridge does not pass on",
        fix: FIX_BENIGN,
        benign: true,
    },
    // Spanning tree blocks ports on purpose to break loops.
    ReasonInfo {
        name: "BRIDGE_INGRESS_STP_STATE",
        cause: Cause::Other,
        explanation: "The bridge port the frame came in on is not forwarding in its spanning-tree state",
        fix: "Expected on blocked ports; check `bridge link show` if the port should be forwarding",
        benign: true,
    },
    ReasonInfo {
        name: "CAN_RX_INVALID_FRAME",
        cause: Cause::Other,
        explanation: "A received Classical CAN frame was malformed, or the device cannot take CAN frames",
        fix: FIX_CAN,
        benign: false,
    },
    ReasonInfo {
        name: "CANFD_RX_INVALID_FRAME",
        cause: Cause::Other,
        explanation: "A received CAN FD frame was malformed, or the device cannot take CAN FD frames",
        fix: FIX_CAN,
        benign: false,
    },
    ReasonInfo {
        name: "CANXL_RX_INVALID_FRAME",
        cause: Cause::Other,
        explanation: "A received CAN XL frame was malformed, or the device cannot take CAN XL frames",
        fix: FIX_CAN,
        benign: false,
    },
    ReasonInfo {
        name: "PFMEMALLOC",
        cause: Cause::Other,
        explanation: "The packet came from emergency memory reserves and reached a socket or path not allowed to use them",
        fix: "The system is short of memory (`free -m`, `nstat -az TcpExtPFMemallocDrop`); reserves are meant for swap over network",
        benign: false,
    },
    ReasonInfo {
        name: "DUALPI2_STEP_DROP",
        cause: Cause::Qdisc,
        explanation: "The DualPI2 qdisc dropped it because its queue delay passed the step threshold",
        fix: FIX_QDISC,
        benign: false,
    },
    ReasonInfo {
        name: "PSP_INPUT",
        cause: Cause::Other,
        explanation: "An incoming packet failed the PSP encryption policy checks of its socket",
        fix: "Check the PSP (encryption offload) association of the connection and that both ends agree on it",
        benign: false,
    },
    ReasonInfo {
        name: "PSP_OUTPUT",
        cause: Cause::Other,
        explanation: "An outgoing packet failed the PSP encryption checks",
        fix: "Check the PSP (encryption offload) association of the connection and the device's PSP support",
        benign: false,
    },
    ReasonInfo {
        name: "RECURSION_LIMIT",
        cause: Cause::Other,
        explanation: "Sending looped through virtual devices (tunnels inside tunnels) too deeply, so the kernel cut the loop",
        fix: "Look for a routing loop through tunnel devices: `ip route get` the tunnel's remote and check it does not route into the tunnel itself",
        benign: false,
    },
    // Older spellings, not in 6.18.
    // 6.12-6.13: renamed NO_TX_TARGET in 6.14.
    ReasonInfo {
        name: "VXLAN_NO_REMOTE",
        cause: Cause::Other,
        explanation: "A VXLAN device had no remote to send the packet to",
        fix: FIX_VXLAN,
        benign: false,
    },
];

/// What droptrace knows about a kernel function that drops packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LocationInfo {
    /// Function name as in /proc/kallsyms, without offset, module or `.isra.0`-style suffix.
    pub function: &'static str,
    /// `function` is a prefix (`unix_`), not an exact name.
    pub prefix: bool,
    /// Reasons this entry is about. Empty: it applies when the kernel gave no specific
    /// reason (none at all, `NOT_SPECIFIED`, or a name droptrace does not know).
    /// Non-empty: it applies only with one of these reasons and then outranks the
    /// reason's own entry (see [`classify`]).
    pub reasons: &'static [&'static str],
    pub cause: Cause,
    pub explanation: &'static str,
    pub fix: &'static str,
    pub benign: bool,
}

const FIX_NETFILTER: &str =
    "Find the rule whose counter grows: `nft list ruleset` (add counters if missing) or `iptables-save -c` / `ip6tables-save -c`";

/// Kernel functions that tell the cause better than a missing or generic reason.
pub static LOCATIONS: &[LocationInfo] = &[
    // Multicast the host has not joined (MLD reports, router solicitations seen by every
    // IPv6 interface): filtered out by design, seen on any fresh interface.
    LocationInfo {
        function: "ip6_mc_input",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "An IPv6 multicast packet for a group this host has not joined was discarded",
        fix: "Nothing to fix: the host is not a member of that multicast group",
        benign: true,
    },
    // Netfilter.
    LocationInfo {
        function: "nft_do_chain",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "An nftables rule (or iptables-nft rule) returned a drop verdict",
        fix: FIX_NETFILTER,
        benign: false,
    },
    LocationInfo {
        function: "ipt_do_table",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "A legacy iptables rule dropped the packet",
        fix: "Find the rule whose counter grows: `iptables-legacy-save -c`",
        benign: false,
    },
    LocationInfo {
        function: "ip6t_do_table",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "A legacy ip6tables rule dropped the packet",
        fix: "Find the rule whose counter grows: `ip6tables-legacy-save -c`",
        benign: false,
    },
    LocationInfo {
        function: "arpt_do_table",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "An arptables rule dropped the ARP packet",
        fix: "List the ARP rules with counters: `arptables -L -v -n`",
        benign: false,
    },
    LocationInfo {
        function: "ebt_do_table",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "An ebtables (bridge firewall) rule dropped the frame",
        fix: "List the bridge rules with counters: `ebtables -L --Lc` (or `nft list ruleset` for the bridge family)",
        benign: false,
    },
    // nf_hook_slow frees what any hook drops: xtables rules and conntrack alike.
    LocationInfo {
        function: "nf_hook_slow",
        prefix: false,
        reasons: &["NETFILTER_DROP"],
        cause: Cause::NetfilterRule,
        explanation: "A netfilter hook said drop: an iptables rule, or conntrack refusing the packet (invalid state, or no room for a new flow)",
        fix: "Check rule counters (`iptables-save -c`, `nft list ruleset`), then conntrack: `conntrack -S` drop/insert_failed and `sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max`",
        benign: false,
    },
    LocationInfo {
        function: "nf_hook_slow",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "A netfilter hook said drop: an iptables rule, or conntrack refusing the packet (invalid state, or no room for a new flow)",
        fix: "Check rule counters (`iptables-save -c`, `nft list ruleset`), then conntrack: `conntrack -S` drop/insert_failed and `sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max`",
        benign: false,
    },
    LocationInfo {
        function: "nf_queue",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "A rule sent the packet to an NFQUEUE that no program listens on (and bypass is off)",
        fix: "Start the program that should read the queue (an IPS, a userspace firewall) or add `queue-bypass` / `bypass` to the rule",
        benign: false,
    },
    LocationInfo {
        function: "nf_reinject",
        prefix: false,
        reasons: &[],
        cause: Cause::NetfilterRule,
        explanation: "A userspace program reading an NFQUEUE gave the verdict drop",
        fix: "Look at the program bound to the queue (`cat /proc/net/netfilter/nfnetlink_queue`) and its logs",
        benign: false,
    },
    // Traffic control and qdiscs.
    LocationInfo {
        function: "__dev_queue_xmit",
        prefix: false,
        reasons: &[],
        cause: Cause::Qdisc,
        explanation: "Dropped on transmit, most often because the qdisc's queue was full (also: device down, xmit recursion)",
        fix: FIX_QDISC,
        benign: false,
    },
    LocationInfo {
        function: "__dev_xmit_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::Qdisc,
        explanation: "The qdisc refused the packet on transmit, usually because its queue was full",
        fix: FIX_QDISC,
        benign: false,
    },
    LocationInfo {
        function: "__qdisc_run",
        prefix: false,
        reasons: &[],
        cause: Cause::Qdisc,
        explanation: "Dropped while the qdisc was dequeuing packets for the device",
        fix: FIX_QDISC,
        benign: false,
    },
    LocationInfo {
        function: "qdisc_",
        prefix: true,
        reasons: &[],
        cause: Cause::Qdisc,
        explanation: "Dropped inside the queueing discipline (qdisc) layer",
        fix: FIX_QDISC,
        benign: false,
    },
    LocationInfo {
        function: "sch_direct_xmit",
        prefix: false,
        reasons: &[],
        cause: Cause::Qdisc,
        explanation: "Dropped while the qdisc handed packets to the driver (packet failed validation)",
        fix: FIX_QDISC,
        benign: false,
    },
    LocationInfo {
        function: "sch_handle_ingress",
        prefix: false,
        reasons: &[],
        cause: Cause::TcBpf,
        explanation: "A tc filter or BPF program on the ingress hook dropped the packet",
        fix: FIX_TC,
        benign: false,
    },
    LocationInfo {
        function: "sch_handle_egress",
        prefix: false,
        reasons: &[],
        cause: Cause::TcBpf,
        explanation: "A tc filter or BPF program on the egress hook dropped the packet",
        fix: FIX_TC,
        benign: false,
    },
    LocationInfo {
        function: "tcf_",
        prefix: true,
        reasons: &[],
        cause: Cause::TcBpf,
        explanation: "A tc classifier or action dropped the packet",
        fix: FIX_TC,
        benign: false,
    },
    LocationInfo {
        function: "tcx_",
        prefix: true,
        reasons: &[],
        cause: Cause::TcBpf,
        explanation: "A BPF program attached with tcx dropped the packet",
        fix: FIX_TC,
        benign: false,
    },
    LocationInfo {
        function: "cls_bpf_classify",
        prefix: false,
        reasons: &[],
        cause: Cause::TcBpf,
        explanation: "A tc BPF classifier dropped the packet",
        fix: FIX_TC,
        benign: false,
    },
    // XDP.
    LocationInfo {
        function: "do_xdp_generic",
        prefix: false,
        reasons: &[],
        cause: Cause::Xdp,
        explanation: "A generic-mode XDP program returned drop (or its verdict could not be carried out)",
        fix: "See which XDP program is attached: `ip link show {iface}` and `bpftool net show dev {iface}`",
        benign: false,
    },
    LocationInfo {
        function: "netif_receive_generic_xdp",
        prefix: false,
        reasons: &[],
        cause: Cause::Xdp,
        explanation: "A generic-mode XDP program returned drop",
        fix: "See which XDP program is attached: `ip link show {iface}` and `bpftool net show dev {iface}`",
        benign: false,
    },
    LocationInfo {
        function: "veth_xdp_rcv",
        prefix: true,
        reasons: &[],
        cause: Cause::Xdp,
        explanation: "An XDP program on a veth device dropped the packet (or its verdict failed)",
        fix: "See which XDP program is attached: `ip link show {iface}` and `bpftool net show dev {iface}`",
        benign: false,
    },
    // MTU and device readiness.
    LocationInfo {
        function: "ip_fragment",
        prefix: false,
        reasons: &[],
        cause: Cause::Mtu,
        explanation: "An IPv4 packet larger than the MTU had Don't Fragment set, so it could not be split",
        fix: "Compare MTUs along the path (`ip link show {iface}`, `ip route get <dst>`); let ICMP 'fragmentation needed' through or clamp TCP MSS",
        benign: false,
    },
    LocationInfo {
        function: "ip_do_fragment",
        prefix: false,
        reasons: &[],
        cause: Cause::Mtu,
        explanation: "Splitting an IPv4 packet that exceeds the MTU failed",
        fix: "Compare MTUs along the path (`ip link show {iface}`, `ip route get <dst>`); avoid fragmentation by lowering the sender's MTU or clamping TCP MSS",
        benign: false,
    },
    LocationInfo {
        function: "ip6_fragment",
        prefix: false,
        reasons: &[],
        cause: Cause::Mtu,
        explanation: "An IPv6 packet was larger than the path MTU and could not be fragmented here",
        fix: "Compare MTUs along the path (`ip link show {iface}`, `ip -6 route get <dst>`); let ICMPv6 'packet too big' through",
        benign: false,
    },
    LocationInfo {
        function: "ip_forward",
        prefix: false,
        reasons: &["PKT_TOO_BIG"],
        cause: Cause::Mtu,
        explanation: "A forwarded IPv4 packet was larger than the outgoing interface's MTU and had Don't Fragment set",
        fix: "Compare the MTUs of the incoming and outgoing interfaces (`ip link`); let ICMP 'fragmentation needed' through or clamp TCP MSS on this router",
        benign: false,
    },
    LocationInfo {
        function: "ip6_forward",
        prefix: false,
        reasons: &["PKT_TOO_BIG"],
        cause: Cause::Mtu,
        explanation: "A forwarded IPv6 packet was larger than the outgoing interface's MTU",
        fix: "Compare the MTUs of the incoming and outgoing interfaces (`ip link`); let ICMPv6 'packet too big' through or clamp TCP MSS on this router",
        benign: false,
    },
    LocationInfo {
        function: "ip_forward",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Dropped while forwarding: TTL ran out, an IPsec policy refused it, or it was too big for the next hop",
        fix: "Check `sysctl net.ipv4.ip_forward`, `nstat -az IpInHdrErrors IpFragFails` and the route: `ip route get <dst> from <src> iif {iface}`",
        benign: false,
    },
    LocationInfo {
        function: "ip6_forward",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Dropped while forwarding IPv6: hop limit ran out, a policy refused it, or it was too big for the next hop",
        fix: "Check `sysctl net.ipv6.conf.all.forwarding` and the route: `ip -6 route get <dst> from <src> iif {iface}`",
        benign: false,
    },
    LocationInfo {
        function: "is_skb_forwardable",
        prefix: false,
        reasons: &[],
        cause: Cause::Mtu,
        explanation: "The packet could not be passed to the other device: larger than its MTU, or that device is down",
        fix: "Compare the MTUs of both ends (`ip link show`; veth peers, bridge ports and containers must agree) and check both are UP",
        benign: false,
    },
    LocationInfo {
        function: "__dev_forward_skb",
        prefix: true,
        reasons: &[],
        cause: Cause::Mtu,
        explanation: "The packet could not be passed to the other device: larger than its MTU, or that device is down",
        fix: "Compare the MTUs of both ends (`ip link show`; veth peers, bridge ports and containers must agree) and check both are UP",
        benign: false,
    },
    LocationInfo {
        function: "veth_xmit",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "The veth peer could not take the packet: the peer is missing or down, the packet exceeds its MTU, or its XDP ring is full",
        fix: "Check the veth pair: `ip link show {iface}` and its peer (`ip -d link`), both UP, same MTU; `ip -s link` shows drops",
        benign: false,
    },
    LocationInfo {
        function: "tun_net_xmit",
        prefix: false,
        reasons: &[],
        cause: Cause::Nic,
        explanation: "The tun/tap device could not queue the packet for its reader (queue full, not attached, or filtered)",
        fix: "Check the program reading {iface} (qemu/vhost, a VPN) keeps up and is attached; `ip -s link show {iface}` shows TX drops",
        benign: false,
    },
    // Receive path, backlog and sockets.
    LocationInfo {
        function: "enqueue_to_backlog",
        prefix: false,
        reasons: &[],
        cause: Cause::NetdevBacklog,
        explanation: "The per-CPU queue of received packets was full (netdev_max_backlog) or the RPS flow limit hit",
        fix: "Watch the second column of /proc/net/softnet_stat; raise `sysctl net.core.netdev_max_backlog` or spread load with RPS/RSS",
        benign: false,
    },
    LocationInfo {
        function: "__netif_receive_skb_core",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Dropped on receive before IP: no handler for the frame's protocol (LLDP, STP chatter), or a tc ingress filter",
        fix: "Check `tc filter show dev {iface} ingress`; otherwise see what the frames are: `tcpdump -ni {iface} -e not ip and not ip6 and not arp`",
        benign: false,
    },
    LocationInfo {
        function: "validate_xmit_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Preparing the packet for the driver failed: segmentation (GSO) or checksum computation",
        fix: "Check offloads on the egress device (`ethtool -k {iface}`) and the kernel log",
        benign: false,
    },
    LocationInfo {
        function: "sk_filter",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A filter program attached to the receiving socket rejected the packet (or memory was short)",
        fix: "Find the socket's filter: `ss -tuap` for the owner, `bpftool prog show` for attached programs",
        benign: false,
    },
    LocationInfo {
        function: "sock_queue_rcv_skb",
        prefix: true,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "The socket could not queue the packet, most often because its receive buffer was full",
        fix: FIX_RCVBUF,
        benign: false,
    },
    LocationInfo {
        function: "__sock_queue_rcv_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "The socket could not queue the packet, most often because its receive buffer was full",
        fix: FIX_RCVBUF,
        benign: false,
    },
    LocationInfo {
        function: "__udp_enqueue_schedule_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "The UDP socket's receive buffer (or UDP memory) was full",
        fix: "See `nstat -az UdpRcvbufErrors Udp6RcvbufErrors UdpMemErrors` and `ss -ulpnm`; read faster or raise SO_RCVBUF / net.core.rmem_max",
        benign: false,
    },
    LocationInfo {
        function: "udp_queue_rcv_one_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "A UDP socket could not take the datagram: mostly a full receive buffer, sometimes a filter or bad checksum",
        fix: "See `nstat -az UdpRcvbufErrors UdpInErrors UdpInCsumErrors` and `ss -ulpnm`; read faster or raise SO_RCVBUF / net.core.rmem_max",
        benign: false,
    },
    LocationInfo {
        function: "udpv6_queue_rcv_one_skb",
        prefix: false,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "A UDP socket could not take the datagram: mostly a full receive buffer, sometimes a filter or bad checksum",
        fix: "See `nstat -az Udp6RcvbufErrors Udp6InErrors Udp6InCsumErrors` and `ss -ulpnm`; read faster or raise SO_RCVBUF / net.core.rmem_max",
        benign: false,
    },
    LocationInfo {
        function: "__udp4_lib_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::NoListener,
        explanation: "Mostly UDP to a port with no socket (the kernel answers port unreachable); sometimes a short or corrupt datagram",
        fix: "Check `ss -ulnp 'sport = :{port}'` and `nstat -az UdpNoPorts UdpInErrors`",
        benign: false,
    },
    LocationInfo {
        function: "__udp6_lib_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::NoListener,
        explanation: "Mostly UDP to a port with no socket (the kernel answers port unreachable); sometimes a short or corrupt datagram",
        fix: "Check `ss -ulnp 'sport = :{port}'` and `nstat -az Udp6NoPorts Udp6InErrors`",
        benign: false,
    },
    LocationInfo {
        function: "tcp_v4_syn_recv_sock",
        prefix: false,
        reasons: &[],
        cause: Cause::ListenOverflow,
        explanation: "A handshake completed but the listener's accept queue was full, so no connection was created",
        fix: "Run `ss -ltn 'sport = :{port}'`: Recv-Q at Send-Q means the accept queue is full; accept faster or raise the listen() backlog and net.core.somaxconn",
        benign: false,
    },
    LocationInfo {
        function: "tcp_v6_syn_recv_sock",
        prefix: false,
        reasons: &[],
        cause: Cause::ListenOverflow,
        explanation: "A handshake completed but the listener's accept queue was full, so no connection was created",
        fix: "Run `ss -ltn 'sport = :{port}'`: Recv-Q at Send-Q means the accept queue is full; accept faster or raise the listen() backlog and net.core.somaxconn",
        benign: false,
    },
    LocationInfo {
        function: "tcp_conn_request",
        prefix: false,
        reasons: &[],
        cause: Cause::ListenOverflow,
        explanation: "A SYN was refused because the listener's SYN or accept queue was full",
        fix: "Run `ss -ltn 'sport = :{port}'` and `nstat -az TcpExtListenDrops TcpExtTCPReqQFullDrop`; raise the backlog, somaxconn and tcp_max_syn_backlog, or enable syncookies",
        benign: false,
    },
    LocationInfo {
        function: "tcp_add_backlog",
        prefix: false,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "The socket was busy in the application and its backlog queue overflowed",
        fix: "See `nstat -az TcpExtTCPBacklogDrop`; the application holds the socket too long or its buffers are small (raise net.ipv4.tcp_rmem)",
        benign: false,
    },
    LocationInfo {
        function: "tcp_prune_",
        prefix: true,
        reasons: &[],
        cause: Cause::SocketRcvbuf,
        explanation: "TCP threw queued data away to get back under the socket's receive memory limit",
        fix: FIX_RCVBUF,
        benign: false,
    },
    LocationInfo {
        function: "tcp_v4_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Dropped on TCP receive: no socket, a bad checksum, or a state check failed",
        fix: "Compare `nstat -az TcpInErrs TcpInCsumErrors TcpExtListenDrops`; `ss -ltn 'sport = :{port}'` shows whether something listens",
        benign: false,
    },
    LocationInfo {
        function: "tcp_v6_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Dropped on TCP receive: no socket, a bad checksum, or a state check failed",
        fix: "Compare `nstat -az TcpInErrs TcpInCsumErrors TcpExtListenDrops`; `ss -ltn 'sport = :{port}'` shows whether something listens",
        benign: false,
    },
    // Routing.
    LocationInfo {
        function: "ip_rcv_finish",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "The route check of an incoming packet failed: reverse path filter, a martian address, or no route",
        fix: "If `nstat -az TcpExtIPReversePathFilter` grows it is rp_filter (`sysctl net.ipv4.conf.{iface}.rp_filter`); otherwise `ip route get <dst> from <src> iif {iface}`",
        benign: false,
    },
    LocationInfo {
        function: "ip_error",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Routing said the destination is unreachable or prohibited",
        fix: FIX_ROUTE_IN,
        benign: false,
    },
    LocationInfo {
        function: "dst_discard",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "The route in use discards everything: a blackhole route, or a cached route that went stale",
        fix: "Run `ip route get <dst>` and `ip route show type blackhole` (and `ip -6 route show type blackhole`)",
        benign: false,
    },
    LocationInfo {
        function: "ip6_pkt_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "An IPv6 route of type unreachable, prohibit or blackhole matched the packet",
        fix: "Run `ip -6 route get <dst>` and `ip -6 route show type unreachable`",
        benign: false,
    },
    LocationInfo {
        function: "neigh_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Neighbour resolution (ARP/ND) failed, was too slow, or its queue was full",
        fix: FIX_NEIGH,
        benign: false,
    },
    LocationInfo {
        function: "__neigh_event_send",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Packets waiting for the next hop's link address overflowed the queue or the resolution failed",
        fix: FIX_NEIGH,
        benign: false,
    },
    LocationInfo {
        function: "xfrm",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "IPsec (xfrm) processing dropped the packet: a policy, a missing state, or a replay check",
        fix: "Compare `ip xfrm policy` with `ip xfrm state` and read `cat /proc/net/xfrm_stat`",
        benign: false,
    },
    LocationInfo {
        function: "inet_frag_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "IP fragment reassembly discarded fragments (timeout, overlap or duplicates)",
        fix: FIX_FRAG,
        benign: false,
    },
    LocationInfo {
        function: "ip_expire",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "Not all fragments of an IPv4 packet arrived in time",
        fix: FIX_FRAG,
        benign: false,
    },
    LocationInfo {
        function: "br_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "The Linux bridge dropped the frame (port state, VLAN filtering, or no port to send to)",
        fix: "Check `bridge link show`, `bridge vlan show` and `bridge fdb show`",
        benign: false,
    },
    // Housekeeping that is not network traffic loss.
    // vsock packets between a VM and its host; dropped on reset and close.
    LocationInfo {
        function: "virtio_transport_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A vsock (VM-to-host socket) packet was discarded during connection setup, reset or close",
        fix: FIX_BENIGN,
        benign: true,
    },
    // The vsock core: the same housekeeping.
    LocationInfo {
        function: "vsock_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A vsock (VM-to-host socket) packet was discarded during connection setup, reset or close",
        fix: FIX_BENIGN,
        benign: true,
    },
    // Local unix-domain sockets: messages freed when peers close.
    LocationInfo {
        function: "unix_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A unix-domain socket message was discarded, normally because one end closed",
        fix: FIX_BENIGN,
        benign: true,
    },
    // Netlink messages are not network packets; slow listeners miss broadcasts.
    LocationInfo {
        function: "netlink_",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A netlink message (kernel-to-program control traffic, not a network packet) was discarded",
        fix: FIX_BENIGN,
        benign: true,
    },
    // Bulk free at socket or device teardown.
    LocationInfo {
        function: "skb_queue_purge",
        prefix: true,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A whole packet queue was emptied at once, typically when a socket or device was torn down",
        fix: FIX_BENIGN,
        benign: true,
    },
    // Packet sockets get a copy; losing it does not lose the packet.
    LocationInfo {
        function: "packet_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A packet socket (tcpdump, a DHCP client) did not keep its copy; the original packet went on",
        fix: "Only the capturing program lost its copy; if that matters, give it a bigger buffer (`tcpdump -B`) or read faster",
        benign: true,
    },
    // The mapped-ring flavour of packet_rcv.
    LocationInfo {
        function: "tpacket_rcv",
        prefix: false,
        reasons: &[],
        cause: Cause::Other,
        explanation: "A packet socket with a mapped ring (tcpdump, a capture tool) did not keep its copy; the original went on",
        fix: "Only the capturing program lost its copy; if that matters, give it a bigger ring (`tcpdump -B`) or read faster",
        benign: true,
    },
];

/// Subsystem drop reasons are named by their own enums (`OVS_DROP_*` of openvswitch,
/// `RX_DROP_*` of mac80211); droptrace knows them by prefix. A name the kernel did not
/// resolve looks like `OPENVSWITCH reason 5`, matched by its subsystem word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReasonFamily {
    /// Upper-case prefix of the reason name.
    pub prefix: &'static str,
    pub cause: Cause,
    pub explanation: &'static str,
    pub fix: &'static str,
    pub benign: bool,
}

const FIX_OVS: &str =
    "Dump the datapath flows and look for drop actions: `ovs-appctl dpctl/dump-flows -m | grep drop`; `ovs-appctl coverage/show` counts drop causes";
const FIX_WIFI: &str =
    "Check the Wi-Fi link and keys: `iw dev {iface} station dump`, `journalctl -u wpa_supplicant`; the mac80211 debugfs counters say more";

pub static REASON_FAMILIES: &[ReasonFamily] = &[
    ReasonFamily {
        prefix: "OVS_DROP_",
        cause: Cause::Other,
        explanation: "Open vSwitch dropped the packet: a flow's drop action, or an error running its actions",
        fix: FIX_OVS,
        benign: false,
    },
    ReasonFamily {
        prefix: "OPENVSWITCH",
        cause: Cause::Other,
        explanation: "Open vSwitch dropped the packet: a flow's drop action, or an error running its actions",
        fix: FIX_OVS,
        benign: false,
    },
    ReasonFamily {
        prefix: "RX_DROP_",
        cause: Cause::Other,
        explanation: "The Wi-Fi stack (mac80211) discarded a received frame: bad keys, replays, or frames not for this station",
        fix: FIX_WIFI,
        benign: false,
    },
    ReasonFamily {
        prefix: "MAC80211",
        cause: Cause::Other,
        explanation: "The Wi-Fi stack (mac80211) discarded a received frame: bad keys, replays, or frames not for this station",
        fix: FIX_WIFI,
        benign: false,
    },
];

/// A kernel counter that rises on drops, or tells apart causes of drops.
///
/// `file` is one of [`COUNTER_FILES`]. `group` and `name` locate the counter:
/// - `snmp`, `netstat`: the line prefix (`TcpExt`, `Udp`) and the column header.
/// - `snmp6`: one `GroupName value` pair a line, e.g. `Udp6RcvbufErrors`: group `Udp6`.
/// - `dev`: group `dev` (one row per interface; sum them or key them `dev:<iface>`),
///   name `rx_` or `tx_` and the column of the header's Receive or Transmit half
///   (`rx_drop`, `tx_drop`).
/// - `nf_conntrack_stat`: group `nf_conntrack` (one row of hex numbers per CPU, to be
///   summed), name the header column.
/// - `softnet_stat`: group `softnet` (one row per CPU, hex, no header); by position:
///   `dropped` is column 2, `time_squeeze` column 3, `flow_limit_count` column 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CounterInfo {
    pub file: &'static str,
    pub group: &'static str,
    pub name: &'static str,
    pub cause: Cause,
    pub explanation: &'static str,
    pub fix: &'static str,
}

/// Counter file ids and their paths.
pub const COUNTER_FILES: &[(&str, &str)] = &[
    ("snmp", "/proc/net/snmp"),
    ("snmp6", "/proc/net/snmp6"),
    ("netstat", "/proc/net/netstat"),
    ("softnet_stat", "/proc/net/softnet_stat"),
    ("dev", "/proc/net/dev"),
    ("nf_conntrack_stat", "/proc/net/stat/nf_conntrack"),
];

/// The path of a counter file id, e.g. `netstat` -> `/proc/net/netstat`.
pub fn counter_path(file: &str) -> Option<&'static str> {
    COUNTER_FILES
        .iter()
        .find(|(id, _)| *id == file)
        .map(|(_, path)| *path)
}

const FIX_LISTEN: &str =
    "Run `ss -ltn`: a listener whose Recv-Q reaches Send-Q has a full accept queue; accept faster or raise the listen() backlog and net.core.somaxconn";
const FIX_UDP_RCVBUF: &str =
    "Find the UDP socket with a big Recv-Q (`ss -ulpnm`); read faster or raise SO_RCVBUF / net.core.rmem_max";
const FIX_CONNTRACK: &str =
    "Compare `sysctl net.netfilter.nf_conntrack_count net.netfilter.nf_conntrack_max`; raise the max (and the hash size) or shorten timeouts for short-lived flows";
const FIX_BACKLOG: &str =
    "Raise `sysctl net.core.netdev_max_backlog` and spread receive work over CPUs (RSS queues, RPS: /sys/class/net/{iface}/queues/rx-*/rps_cpus)";
const FIX_NIC_RX: &str =
    "Look at the driver's own counters (`ethtool -S {iface}`); grow the RX ring (`ethtool -g/-G {iface}`) or spread interrupts over more CPUs";

/// Kernel counters of drops, most of which never show up as `kfree_skb` events.
pub static COUNTERS: &[CounterInfo] = &[
    // TCP listeners.
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "ListenOverflows",
        cause: Cause::ListenOverflow,
        explanation: "Handshakes completed while the listener's accept queue was full",
        fix: FIX_LISTEN,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "ListenDrops",
        cause: Cause::ListenOverflow,
        explanation: "Connection attempts a listener discarded for any reason, overflows included",
        fix: FIX_LISTEN,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPReqQFullDrop",
        cause: Cause::ListenOverflow,
        explanation: "SYNs dropped because the SYN queue was full and syncookies could not be used",
        fix: "Raise `sysctl net.ipv4.tcp_max_syn_backlog` and the listen() backlog, or keep net.ipv4.tcp_syncookies=1; a SYN flood shows here",
    },
    // TCP receive memory.
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPBacklogDrop",
        cause: Cause::SocketRcvbuf,
        explanation: "Segments dropped because a socket busy in the application had a full backlog",
        fix: "The application holds its sockets too long or the buffers are small: raise net.ipv4.tcp_rmem / SO_RCVBUF",
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPRcvQDrop",
        cause: Cause::SocketRcvbuf,
        explanation: "Segments dropped because the socket could not get receive memory",
        fix: FIX_RCVBUF,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPZeroWindowDrop",
        cause: Cause::SocketRcvbuf,
        explanation: "Data dropped because the receive window was zero: the application stopped reading",
        fix: FIX_RCVBUF,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPOFODrop",
        cause: Cause::SocketRcvbuf,
        explanation: "Out-of-order segments dropped for lack of receive memory",
        fix: FIX_RCVBUF,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "RcvPruned",
        cause: Cause::SocketRcvbuf,
        explanation: "Receive queues that had to be thrown away because pruning could not free enough memory",
        fix: FIX_RCVBUF,
    },
    // TCP timestamps.
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "PAWSActive",
        cause: Cause::Paws,
        explanation: "SYN-ACKs to outgoing connections refused by the timestamp (PAWS) check",
        fix: FIX_PAWS,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "PAWSEstab",
        cause: Cause::Paws,
        explanation: "Segments on established connections refused by the timestamp (PAWS) check",
        fix: FIX_PAWS,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "PAWSTimewait",
        cause: Cause::Paws,
        explanation: "Segments for TIME_WAIT connections refused by the timestamp (PAWS) check",
        fix: FIX_PAWS,
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TSEcrRejected",
        cause: Cause::Paws,
        explanation: "Segments whose echoed timestamp was never sent by this host",
        fix: FIX_PAWS,
    },
    // Other TCP/IP extensions.
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "IPReversePathFilter",
        cause: Cause::RpFilter,
        explanation: "Packets refused by reverse path filtering",
        fix: "Check `sysctl net.ipv4.conf.all.rp_filter` and per interface (the higher wins); 2 (loose) suits asymmetric routing",
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "TCPMinTTLDrop",
        cause: Cause::Other,
        explanation: "TCP segments below a socket's minimum TTL (IP_MINTTL, GTSM)",
        fix: "Check the application's TTL security setting (often BGP GTSM) against the real hop count",
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "LockDroppedIcmps",
        cause: Cause::Other,
        explanation: "ICMP errors for TCP sockets ignored because the socket was busy; lost 'fragmentation needed' can stall a connection",
        fix: "Usually rare; if it grows with MTU trouble, lower the MTU or clamp MSS so connections do not rely on those ICMPs",
    },
    CounterInfo {
        file: "netstat",
        group: "TcpExt",
        name: "PFMemallocDrop",
        cause: Cause::Other,
        explanation: "Packets from emergency memory reserves dropped at sockets not allowed to use them",
        fix: "The system is short of memory: check `free -m` and who uses it",
    },
    CounterInfo {
        file: "netstat",
        group: "IpExt",
        name: "InNoRoutes",
        cause: Cause::Other,
        explanation: "Incoming packets with no route to their destination",
        fix: FIX_ROUTE_IN,
    },
    CounterInfo {
        file: "netstat",
        group: "IpExt",
        name: "InCsumErrors",
        cause: Cause::Nic,
        explanation: "IPv4 packets with a wrong header checksum",
        fix: FIX_CSUM,
    },
    // IPv4.
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "InDiscards",
        cause: Cause::Other,
        explanation: "Incoming IPv4 packets discarded without a header error, usually for lack of memory",
        fix: "Check memory pressure and the kfree_skb events with reasons at the same time",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "InHdrErrors",
        cause: Cause::Other,
        explanation: "Incoming IPv4 packets with a bad header, or whose TTL ran out while forwarding",
        fix: "Capture them (`tcpdump -ni {iface} -v`); a routing loop shows as TTL running out",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "InAddrErrors",
        cause: Cause::Other,
        explanation: "Incoming IPv4 packets with a destination that is not valid here (and forwarding off or no route)",
        fix: "Check `sysctl net.ipv4.ip_forward` and `ip route get <dst> from <src> iif {iface}`",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "InUnknownProtos",
        cause: Cause::Other,
        explanation: "Incoming IPv4 packets for a protocol with no handler",
        fix: "See which protocol it is (`tcpdump -ni {iface} -v`) and load its module or stop the sender",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "OutDiscards",
        cause: Cause::Other,
        explanation: "Outgoing IPv4 packets discarded without an error of their own (memory, neighbour queue, policy)",
        fix: "Match it against kfree_skb events with reasons; `ip neigh show` and `tc -s qdisc` are the usual suspects",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "OutNoRoutes",
        cause: Cause::Other,
        explanation: "Outgoing IPv4 packets with no route to their destination",
        fix: "Run `ip route get <dst>`; a missing default route is typical",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "FragFails",
        cause: Cause::Mtu,
        explanation: "IPv4 packets that needed fragmenting but could not be (Don't Fragment set)",
        fix: "Compare MTUs along the path; let ICMP 'fragmentation needed' through or clamp TCP MSS",
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "ReasmFails",
        cause: Cause::Other,
        explanation: "IPv4 packets whose fragments could not be put back together",
        fix: FIX_FRAG,
    },
    CounterInfo {
        file: "snmp",
        group: "Ip",
        name: "ReasmTimeout",
        cause: Cause::Other,
        explanation: "IPv4 reassemblies abandoned because fragments stopped arriving",
        fix: FIX_FRAG,
    },
    CounterInfo {
        file: "snmp",
        group: "Icmp",
        name: "InErrors",
        cause: Cause::Other,
        explanation: "Incoming ICMP messages that were malformed or had a bad checksum",
        fix: "Capture them (`tcpdump -ni {iface} icmp -v`) to find the sender",
    },
    CounterInfo {
        file: "snmp",
        group: "Icmp",
        name: "InCsumErrors",
        cause: Cause::Nic,
        explanation: "Incoming ICMP messages with a wrong checksum",
        fix: FIX_CSUM,
    },
    CounterInfo {
        file: "snmp",
        group: "Tcp",
        name: "InErrs",
        cause: Cause::Other,
        explanation: "TCP segments received in error (bad checksum, bad header, failed socket checks)",
        fix: "Compare with TcpInCsumErrors and the TcpExt drop counters to narrow it down",
    },
    CounterInfo {
        file: "snmp",
        group: "Tcp",
        name: "InCsumErrors",
        cause: Cause::Nic,
        explanation: "TCP segments with a wrong checksum",
        fix: FIX_CSUM,
    },
    // UDP.
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "RcvbufErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams dropped because the socket's receive buffer was full",
        fix: FIX_UDP_RCVBUF,
    },
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "NoPorts",
        cause: Cause::NoListener,
        explanation: "UDP datagrams for a port no socket is bound to",
        fix: "Check `ss -ulnp`; if nothing should listen, find the sender (`tcpdump -ni {iface} udp`)",
    },
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "InErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams not delivered: full buffers and memory limits, plus bad checksums and filters",
        fix: FIX_UDP_RCVBUF,
    },
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "MemErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams dropped because UDP as a whole hit its memory limit (net.ipv4.udp_mem)",
        fix: "Compare `cat /proc/net/sockstat` with `sysctl net.ipv4.udp_mem`; find sockets with big Recv-Q (`ss -ulpnm`)",
    },
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "InCsumErrors",
        cause: Cause::Nic,
        explanation: "UDP datagrams with a wrong checksum",
        fix: FIX_CSUM,
    },
    CounterInfo {
        file: "snmp",
        group: "Udp",
        name: "SndbufErrors",
        cause: Cause::Other,
        explanation: "UDP sends that failed for lack of send buffer or memory (the application got ENOBUFS)",
        fix: "The sender outpaces the device or qdisc: check `tc -s qdisc show dev {iface}` and SO_SNDBUF",
    },
    // IPv6 and UDP over IPv6.
    CounterInfo {
        file: "snmp6",
        group: "Udp6",
        name: "RcvbufErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams over IPv6 dropped because the socket's receive buffer was full",
        fix: FIX_UDP_RCVBUF,
    },
    CounterInfo {
        file: "snmp6",
        group: "Udp6",
        name: "NoPorts",
        cause: Cause::NoListener,
        explanation: "UDP datagrams over IPv6 for a port no socket is bound to",
        fix: "Check `ss -ulnp`; if nothing should listen, find the sender (`tcpdump -ni {iface} ip6 and udp`)",
    },
    CounterInfo {
        file: "snmp6",
        group: "Udp6",
        name: "InErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams over IPv6 not delivered: full buffers and memory limits, plus bad checksums and filters",
        fix: FIX_UDP_RCVBUF,
    },
    CounterInfo {
        file: "snmp6",
        group: "Udp6",
        name: "MemErrors",
        cause: Cause::SocketRcvbuf,
        explanation: "UDP datagrams over IPv6 dropped because UDP hit its memory limit (net.ipv4.udp_mem)",
        fix: "Compare `cat /proc/net/sockstat6` and `/proc/net/sockstat` with `sysctl net.ipv4.udp_mem`",
    },
    CounterInfo {
        file: "snmp6",
        group: "Udp6",
        name: "InCsumErrors",
        cause: Cause::Nic,
        explanation: "UDP datagrams over IPv6 with a wrong checksum",
        fix: FIX_CSUM,
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "InDiscards",
        cause: Cause::Other,
        explanation: "Incoming IPv6 packets discarded without a header error (memory, disabled IPv6)",
        fix: "Match it against kfree_skb events with reasons; check `sysctl net.ipv6.conf.{iface}.disable_ipv6`",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "InHdrErrors",
        cause: Cause::Other,
        explanation: "Incoming IPv6 packets with a bad header, or whose hop limit ran out while forwarding",
        fix: "Capture them (`tcpdump -ni {iface} ip6 -v`); a routing loop shows as the hop limit running out",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "InAddrErrors",
        cause: Cause::Other,
        explanation: "Incoming IPv6 packets with a destination that is not valid here",
        fix: "Check `sysctl net.ipv6.conf.all.forwarding` and `ip -6 route get <dst>`",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "InNoRoutes",
        cause: Cause::Other,
        explanation: "Incoming IPv6 packets with no route to their destination",
        fix: "Run `ip -6 route get <dst> from <src> iif {iface}`",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "InTooBigErrors",
        cause: Cause::Mtu,
        explanation: "IPv6 packets too big for the MTU of the interface they were to be forwarded on",
        fix: "Compare the MTUs of the interfaces (`ip link`); let ICMPv6 'packet too big' through or clamp TCP MSS",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "FragFails",
        cause: Cause::Mtu,
        explanation: "Outgoing IPv6 packets too big for the path that could not be fragmented",
        fix: "Compare MTUs along the path and let ICMPv6 'packet too big' through",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "OutDiscards",
        cause: Cause::Other,
        explanation: "Outgoing IPv6 packets discarded without an error of their own",
        fix: "Match it against kfree_skb events with reasons; `ip -6 neigh show` and `tc -s qdisc` are the usual suspects",
    },
    CounterInfo {
        file: "snmp6",
        group: "Ip6",
        name: "ReasmFails",
        cause: Cause::Other,
        explanation: "IPv6 packets whose fragments could not be put back together",
        fix: FIX_FRAG,
    },
    // Per-CPU input queue.
    CounterInfo {
        file: "softnet_stat",
        group: "softnet",
        name: "dropped",
        cause: Cause::NetdevBacklog,
        explanation: "Received packets dropped because this CPU's input backlog was full",
        fix: FIX_BACKLOG,
    },
    CounterInfo {
        file: "softnet_stat",
        group: "softnet",
        name: "time_squeeze",
        cause: Cause::NetdevBacklog,
        explanation: "Times receive processing ran out of budget with packets left; not drops itself, but NIC rings overflow next",
        fix: "Raise `sysctl net.core.netdev_budget net.core.netdev_budget_usecs` and spread receive work over more CPUs",
    },
    CounterInfo {
        file: "softnet_stat",
        group: "softnet",
        name: "flow_limit_count",
        cause: Cause::NetdevBacklog,
        explanation: "Packets dropped by the RPS flow limit, which keeps one big flow from filling the backlog",
        fix: "Check `sysctl net.core.flow_limit_cpu_bitmap net.core.flow_limit_table_len`; one heavy flow is hogging a CPU",
    },
    // Devices.
    CounterInfo {
        file: "dev",
        group: "dev",
        name: "rx_drop",
        cause: Cause::Nic,
        explanation: "Received packets the device or its driver dropped before the stack saw them (no buffer, unknown VLAN, filtered)",
        fix: FIX_NIC_RX,
    },
    CounterInfo {
        file: "dev",
        group: "dev",
        name: "rx_fifo",
        cause: Cause::Nic,
        explanation: "Received packets lost because the device's receive ring or FIFO overflowed",
        fix: FIX_NIC_RX,
    },
    CounterInfo {
        file: "dev",
        group: "dev",
        name: "rx_errs",
        cause: Cause::Nic,
        explanation: "Received frames with errors (CRC, length, alignment): cabling, optics or a duplex mismatch",
        fix: "Check the link: `ethtool {iface}` (speed, duplex), `ethtool -S {iface}` CRC counters, cables and optics",
    },
    CounterInfo {
        file: "dev",
        group: "dev",
        name: "rx_frame",
        cause: Cause::Nic,
        explanation: "Received frames with framing or alignment errors: a physical-layer problem",
        fix: "Check the link: `ethtool {iface}` (speed, duplex), `ethtool -S {iface}`, cables and optics",
    },
    CounterInfo {
        file: "dev",
        group: "dev",
        name: "tx_drop",
        cause: Cause::Nic,
        explanation: "Packets the device or its driver dropped on transmit (for veth/tun: peer down or its queue full)",
        fix: "Check `ip -s link show {iface}` and `ethtool -S {iface}`; for veth and tun check the other end",
    },
    // Connection tracking.
    CounterInfo {
        file: "nf_conntrack_stat",
        group: "nf_conntrack",
        name: "drop",
        cause: Cause::ConntrackFull,
        explanation: "Packets dropped because conntrack could not create an entry for a new flow (table full)",
        fix: FIX_CONNTRACK,
    },
    CounterInfo {
        file: "nf_conntrack_stat",
        group: "nf_conntrack",
        name: "early_drop",
        cause: Cause::ConntrackFull,
        explanation: "Existing unconfirmed entries evicted to make room in a full conntrack table",
        fix: FIX_CONNTRACK,
    },
    CounterInfo {
        file: "nf_conntrack_stat",
        group: "nf_conntrack",
        name: "insert_failed",
        cause: Cause::ConntrackFull,
        explanation: "Entries that could not be inserted: often a race between packets of one new flow (UDP, NAT), not only a full table",
        fix: "Compare nf_conntrack_count with nf_conntrack_max; if the table has room, it is a race: see `conntrack -S` clash_resolve and the NAT rules",
    },
];

/// What [`classify`] concluded, and which knowledge it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub cause: Cause,
    pub explanation: &'static str,
    pub fix: &'static str,
    pub benign: bool,
    /// Which rule of [`classify`] decided.
    pub basis: Basis,
}

/// Which knowledge a [`Classification`] came from, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// A [`LOCATIONS`] entry made for this function and this reason.
    LocationAndReason,
    /// The reason's [`REASONS`] entry.
    Reason,
    /// A [`REASON_FAMILIES`] entry (subsystem reasons).
    ReasonFamily,
    /// A [`LOCATIONS`] entry, because the reason was absent, generic or unknown.
    Location,
    /// The `NOT_SPECIFIED` entry: a generic reason at an unknown function.
    GenericReason,
    /// Nothing matched.
    Unknown,
}

const UNKNOWN_REASON: &str =
    "droptrace has no notes on this reason (a newer kernel, or a subsystem's own reason) nor on the function";
const UNKNOWN_NO_REASON: &str =
    "This kernel gives no drop reasons and droptrace has no notes on the function that dropped it";
const UNKNOWN_FIX: &str =
    "Read the kernel source of the function that dropped it; `perf record -e skb:kfree_skb -g -a -- sleep 10; perf script` shows who called it";

/// Classifies a drop by its reason (as the kernel spells it; `None` before Linux 5.17)
/// and the function that dropped it (as in /proc/kallsyms; an offset such as `+0x3e8`,
/// a ` [module]` tail and compiler suffixes such as `.isra.0` are ignored).
///
/// Precedence, most specific first:
/// 1. A location made for this very reason (e.g. `ip_forward` with `PKT_TOO_BIG`):
///    both sources agree, and the function narrows the reason down.
/// 2. A known reason other than `NOT_SPECIFIED`: the kernel's explicit statement beats
///    a guess from the function.
/// 3. A subsystem reason family (`OVS_DROP_*`, mac80211 `RX_DROP_*`).
/// 4. A location without reasons, when the reason is absent, `NOT_SPECIFIED`, or a name
///    droptrace does not know (e.g. `nft_do_chain` with `NOT_SPECIFIED` is netfilter).
/// 5. The `NOT_SPECIFIED` entry itself.
/// 6. Otherwise cause `other`, not benign.
///
/// Among locations an exact name beats a prefix, and a longer prefix a shorter one.
pub fn classify(reason: Option<&str>, function: Option<&str>) -> Classification {
    let reason = reason.map(reason_key).filter(|r| !r.is_empty());
    let function = function.map(function_key).filter(|f| !f.is_empty());
    let known = reason.and_then(find_reason);
    let generic = known.is_some_and(|info| info.name == "NOT_SPECIFIED");

    if let (Some(reason), Some(function)) = (reason, function) {
        if let Some(location) = best_location(function, Some(reason)) {
            return from_location(location, Basis::LocationAndReason);
        }
    }
    if let Some(info) = known.filter(|_| !generic) {
        return from_reason(info, Basis::Reason);
    }
    if let Some(family) = reason.and_then(find_family) {
        return Classification {
            cause: family.cause,
            explanation: family.explanation,
            fix: family.fix,
            benign: family.benign,
            basis: Basis::ReasonFamily,
        };
    }
    if let Some(location) = function.and_then(|f| best_location(f, None)) {
        return from_location(location, Basis::Location);
    }
    if let Some(info) = known {
        return from_reason(info, Basis::GenericReason);
    }
    Classification {
        cause: Cause::Other,
        explanation: if reason.is_some() {
            UNKNOWN_REASON
        } else {
            UNKNOWN_NO_REASON
        },
        fix: UNKNOWN_FIX,
        benign: false,
        basis: Basis::Unknown,
    }
}

/// The entry for a reason name; `netfilter_drop` and `SKB_DROP_REASON_NETFILTER_DROP`
/// work too.
pub fn find_reason(name: &str) -> Option<&'static ReasonInfo> {
    let key = reason_key(name);
    REASONS
        .iter()
        .find(|info| info.name.eq_ignore_ascii_case(key))
}

/// The location entry for a function, as [`classify`] would pick it: `reason` selects
/// entries made for that reason; `None` selects the entries without reasons.
pub fn find_location(function: &str, reason: Option<&str>) -> Option<&'static LocationInfo> {
    best_location(function_key(function), reason.map(reason_key))
}

/// The entry for a counter, e.g. (`netstat`, `TcpExt`, `ListenOverflows`).
pub fn find_counter(file: &str, group: &str, name: &str) -> Option<&'static CounterInfo> {
    COUNTERS
        .iter()
        .find(|c| c.file == file && c.group == group && c.name == name)
}

fn from_reason(info: &ReasonInfo, basis: Basis) -> Classification {
    Classification {
        cause: info.cause,
        explanation: info.explanation,
        fix: info.fix,
        benign: info.benign,
        basis,
    }
}

fn from_location(info: &LocationInfo, basis: Basis) -> Classification {
    Classification {
        cause: info.cause,
        explanation: info.explanation,
        fix: info.fix,
        benign: info.benign,
        basis,
    }
}

fn find_family(reason: &str) -> Option<&'static ReasonFamily> {
    REASON_FAMILIES.iter().find(|family| {
        reason
            .get(..family.prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(family.prefix))
    })
}

/// `reason = Some(r)`: entries listing `r`. `None`: entries without reasons.
fn best_location(function: &str, reason: Option<&str>) -> Option<&'static LocationInfo> {
    LOCATIONS
        .iter()
        .filter(|info| match reason {
            Some(reason) => info.reasons.iter().any(|r| r.eq_ignore_ascii_case(reason)),
            None => info.reasons.is_empty(),
        })
        .filter_map(|info| location_score(info, function).map(|score| (score, info)))
        .max_by_key(|(score, _)| *score)
        .map(|(_, info)| info)
}

/// How well `info` matches: exact beats any prefix, longer prefixes beat shorter.
fn location_score(info: &LocationInfo, function: &str) -> Option<usize> {
    if function == info.function {
        Some(usize::MAX)
    } else if info.prefix && function.starts_with(info.function) {
        Some(info.function.len())
    } else {
        None
    }
}

/// `SKB_DROP_REASON_NETFILTER_DROP ` -> `NETFILTER_DROP` (case is left alone).
fn reason_key(reason: &str) -> &str {
    let reason = reason.trim();
    const PREFIX: &str = "SKB_DROP_REASON_";
    match reason.get(..PREFIX.len()) {
        Some(head) if head.eq_ignore_ascii_case(PREFIX) => &reason[PREFIX.len()..],
        _ => reason,
    }
}

/// `nft_do_chain+0x3e8 [nf_tables]` -> `nft_do_chain`; `tcp_v4_rcv.cold` -> `tcp_v4_rcv`.
fn function_key(function: &str) -> &str {
    let function = function.trim();
    let end = function
        .find(|c: char| c == '+' || c == '.' || c.is_whitespace())
        .unwrap_or(function.len());
    &function[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    fn fixture(path: &str) -> String {
        let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(path);
        std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
    }

    /// The `{ N, "NAME" }` pairs of a kfree_skb format's `__print_symbolic`.
    fn symbolic_pairs(format: &str) -> Vec<(u32, String)> {
        let mut pairs = Vec::new();
        for chunk in format.split('{').skip(1) {
            let Some((body, _)) = chunk.split_once('}') else {
                continue;
            };
            let Some((number, name)) = body.split_once(',') else {
                continue;
            };
            if let Ok(number) = number.trim().parse() {
                pairs.push((number, name.trim().trim_matches('"').to_owned()));
            }
        }
        pairs
    }

    fn reasons_6_18() -> Vec<String> {
        symbolic_pairs(&fixture("kfree_skb.format.6.18"))
            .into_iter()
            .filter(|(_, name)| name != "MAX")
            .map(|(_, name)| name)
            .collect()
    }

    #[test]
    fn fixture_has_the_126_reasons_of_6_18() {
        let pairs = symbolic_pairs(&fixture("kfree_skb.format.6.18"));
        let reasons: Vec<_> = pairs.iter().filter(|(_, n)| n != "MAX").collect();
        assert_eq!(reasons.len(), 126);
        assert_eq!(
            reasons.first().map(|(v, n)| (*v, n.as_str())),
            Some((2, "NOT_SPECIFIED"))
        );
        assert_eq!(
            reasons.last().map(|(v, n)| (*v, n.as_str())),
            Some((127, "RECURSION_LIMIT"))
        );
    }

    #[test]
    fn every_reason_of_6_18_has_an_entry() {
        let missing: Vec<_> = reasons_6_18()
            .into_iter()
            .filter(|name| !REASONS.iter().any(|info| info.name == name))
            .collect();
        assert!(missing.is_empty(), "no entry for {missing:?}");
    }

    #[test]
    fn every_reason_of_older_fixtures_has_an_entry() {
        for file in ["kfree_skb.format.pre-6.11", "kfree_skb.format.5.18-era"] {
            for (_, name) in symbolic_pairs(&fixture(file)) {
                if name != "MAX" {
                    assert!(find_reason(&name).is_some(), "{file}: no entry for {name}");
                }
            }
        }
    }

    #[test]
    fn reasons_follow_the_kernel_order_then_older_names() {
        let names: Vec<_> = REASONS.iter().map(|info| info.name.to_owned()).collect();
        let kernel = reasons_6_18();
        assert_eq!(names[..kernel.len()], kernel[..]);
    }

    #[test]
    fn reason_names_are_unique_and_spelled_like_the_kernel() {
        let mut seen = BTreeSet::new();
        for info in REASONS {
            assert!(seen.insert(info.name), "duplicate {}", info.name);
            assert!(
                info.name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                "{}",
                info.name
            );
            assert!(!info.name.starts_with("SKB_DROP_REASON_"), "{}", info.name);
        }
    }

    fn is_snake_case(id: &str) -> bool {
        !id.is_empty()
            && id.starts_with(|c: char| c.is_ascii_lowercase())
            && !id.ends_with('_')
            && !id.contains("__")
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn cause_ids_are_unique_snake_case_and_round_trip() {
        let ids: BTreeSet<_> = Cause::ALL.iter().map(Cause::id).collect();
        assert_eq!(ids.len(), Cause::ALL.len());
        for cause in Cause::ALL {
            assert!(is_snake_case(cause.id()), "{}", cause.id());
            assert_eq!(Cause::from_id(cause.id()), Some(cause));
            assert_eq!(cause.to_string(), cause.id());
            assert!(!cause.label().is_empty());
        }
        assert_eq!(Cause::from_id("nope"), None);
    }

    #[test]
    fn cause_serializes_as_its_id() {
        assert_eq!(
            serde_json::to_string(&Cause::ListenOverflow)
                .ok()
                .as_deref(),
            Some("\"listen_overflow\"")
        );
        let json = serde_json::to_value(classify(Some("QDISC_DROP"), None)).ok();
        let json = json.unwrap_or_default();
        assert_eq!(json["cause"], "qdisc");
        assert_eq!(json["basis"], "reason");
        assert_eq!(json["benign"], false);
    }

    #[test]
    fn every_cause_has_a_reason_or_counter() {
        for cause in Cause::ALL {
            let used = REASONS.iter().any(|r| r.cause == cause)
                || COUNTERS.iter().any(|c| c.cause == cause);
            assert!(used, "nothing maps to {}", cause.id());
        }
    }

    #[test]
    fn texts_are_single_lines_with_documented_placeholders() {
        let mut texts: Vec<(&str, &str, &str)> = Vec::new();
        texts.extend(REASONS.iter().map(|r| (r.name, r.explanation, r.fix)));
        texts.extend(LOCATIONS.iter().map(|l| (l.function, l.explanation, l.fix)));
        texts.extend(
            REASON_FAMILIES
                .iter()
                .map(|f| (f.prefix, f.explanation, f.fix)),
        );
        texts.extend(COUNTERS.iter().map(|c| (c.name, c.explanation, c.fix)));
        for (what, explanation, fix) in texts {
            for text in [explanation, fix] {
                assert!(!text.trim().is_empty(), "{what}: empty text");
                assert!(!text.contains('\n'), "{what}: more than one line");
                assert_eq!(text, text.trim(), "{what}: stray whitespace");
                assert!(!text.ends_with('.'), "{what}: no full stop at the end");
            }
            assert!(
                !explanation.contains('{'),
                "{what}: placeholder in explanation"
            );
            let mut rest = fix;
            while let Some(start) = rest.find('{') {
                let Some(len) = rest[start..].find('}') else {
                    panic!("{what}: unclosed placeholder");
                };
                let placeholder = &rest[start..start + len + 1];
                assert!(
                    PLACEHOLDERS.iter().any(|(p, _)| *p == placeholder),
                    "{what}: undocumented placeholder {placeholder}"
                );
                rest = &rest[start + len + 1..];
            }
        }
    }

    #[test]
    fn fill_placeholders_fills_or_marks() {
        let fix = "tc -s qdisc show dev {iface}; ss -ltn 'sport = :{port}'";
        assert_eq!(
            fill_placeholders(fix, Some("eth0"), Some(80)),
            "tc -s qdisc show dev eth0; ss -ltn 'sport = :80'"
        );
        assert_eq!(
            fill_placeholders(fix, None, None),
            "tc -s qdisc show dev <iface>; ss -ltn 'sport = :<port>'"
        );
    }

    #[test]
    fn locations_are_well_formed() {
        let mut seen = BTreeSet::new();
        for info in LOCATIONS {
            assert!(
                info.function
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}",
                info.function
            );
            assert!(
                seen.insert((info.function, info.reasons)),
                "duplicate location {} {:?}",
                info.function,
                info.reasons
            );
            for reason in info.reasons {
                assert!(
                    find_reason(reason).is_some(),
                    "{}: unknown {reason}",
                    info.function
                );
            }
        }
        for family in REASON_FAMILIES {
            assert_eq!(family.prefix, family.prefix.to_ascii_uppercase());
        }
    }

    #[test]
    fn benign_reasons_are_the_housekeeping_ones() {
        for name in [
            "SOCKET_CLOSE",
            "UNIX_DISCONNECT",
            "TCP_CLOSE",
            "QUEUE_PURGE",
            "TCP_OLD_DATA",
        ] {
            assert!(find_reason(name).is_some_and(|r| r.benign), "{name}");
        }
        for name in ["NETFILTER_DROP", "NO_SOCKET", "QDISC_DROP", "NOT_SPECIFIED"] {
            assert!(find_reason(name).is_some_and(|r| !r.benign), "{name}");
        }
    }

    #[test]
    fn classify_precedence() {
        let c = classify(Some("NETFILTER_DROP"), Some("nft_do_chain"));
        assert_eq!((c.cause, c.benign), (Cause::NetfilterRule, false));

        let c = classify(Some("NOT_SPECIFIED"), Some("virtio_transport_recv_pkt"));
        assert_eq!(
            (c.cause, c.benign, c.basis),
            (Cause::Other, true, Basis::Location)
        );

        let c = classify(Some("QDISC_DROP"), Some("__dev_queue_xmit"));
        assert_eq!((c.cause, c.basis), (Cause::Qdisc, Basis::Reason));
        assert_eq!(classify(Some("QDISC_DROP"), None).cause, Cause::Qdisc);

        assert_eq!(classify(Some("PKT_TOO_BIG"), None).cause, Cause::Mtu);
        let c = classify(Some("PKT_TOO_BIG"), Some("ip_forward+0x1f0"));
        assert_eq!((c.cause, c.basis), (Cause::Mtu, Basis::LocationAndReason));

        assert_eq!(
            classify(Some("NO_SOCKET"), Some("tcp_v4_rcv")).cause,
            Cause::NoListener
        );

        let c = classify(None, Some("nft_do_chain"));
        assert_eq!((c.cause, c.basis), (Cause::NetfilterRule, Basis::Location));

        let c = classify(Some("SOME_REASON_FROM_2030"), Some("some_future_function"));
        assert_eq!(
            (c.cause, c.benign, c.basis),
            (Cause::Other, false, Basis::Unknown)
        );
        assert_eq!(c.explanation, UNKNOWN_REASON);
    }

    #[test]
    fn classify_more_cases() {
        // A specific reason beats a location guess.
        let c = classify(Some("TC_EGRESS"), Some("__dev_queue_xmit"));
        assert_eq!(c.cause, Cause::TcBpf);
        // A generic reason defers to the location.
        assert_eq!(
            classify(Some("NOT_SPECIFIED"), Some("__dev_queue_xmit")).cause,
            Cause::Qdisc
        );
        // An unknown reason defers to the location too.
        assert_eq!(
            classify(Some("reason 130"), Some("enqueue_to_backlog")).cause,
            Cause::NetdevBacklog
        );
        // ip_forward without PKT_TOO_BIG is not an MTU problem.
        assert_eq!(classify(None, Some("ip_forward")).cause, Cause::Other);
        assert_eq!(
            classify(Some("NOT_SPECIFIED"), Some("ip_fragment")).cause,
            Cause::Mtu
        );
        // Listen overflow by function on kernels without reasons.
        assert_eq!(
            classify(None, Some("tcp_v4_syn_recv_sock")).cause,
            Cause::ListenOverflow
        );
        assert_eq!(
            classify(None, Some("tcp_conn_request")).cause,
            Cause::ListenOverflow
        );
        // unix_* is benign housekeeping.
        assert!(classify(None, Some("unix_stream_connect")).benign);
        // Exact beats prefix, longer prefix beats shorter.
        assert_eq!(
            find_location("__neigh_event_send", None).map(|l| l.function),
            Some("__neigh_event_send")
        );
        assert_eq!(
            find_location("sk_filter_trim_cap", None).map(|l| l.function),
            Some("sk_filter")
        );
        // Spellings and decorations.
        assert_eq!(
            classify(Some("skb_drop_reason_netfilter_drop"), None).cause,
            Cause::NetfilterRule
        );
        assert_eq!(
            classify(None, Some("nft_do_chain+0x3e8 [nf_tables]")).cause,
            Cause::NetfilterRule
        );
        assert_eq!(
            classify(None, Some("enqueue_to_backlog.isra.0")).cause,
            Cause::NetdevBacklog
        );
        // Older names.
        assert!(find_reason("VXLAN_NO_REMOTE").is_some());
        // Subsystem reasons.
        let c = classify(Some("OVS_DROP_EXPLICIT"), Some("ovs_execute_actions"));
        assert_eq!(c.basis, Basis::ReasonFamily);
        assert_eq!(
            classify(Some("OPENVSWITCH reason 5"), None).basis,
            Basis::ReasonFamily
        );
        // Nothing at all.
        let c = classify(None, None);
        assert_eq!(
            (c.cause, c.benign, c.basis),
            (Cause::Other, false, Basis::Unknown)
        );
        assert_eq!(c.explanation, UNKNOWN_NO_REASON);
        let c = classify(Some("NOT_SPECIFIED"), Some("0xffffffff81f63638"));
        assert_eq!((c.cause, c.basis), (Cause::Other, Basis::GenericReason));
        // Odd input does not panic.
        for odd in ["", " ", "+", ".", "SKB_DROP_REASON_", "é+0x1", "\u{0}"] {
            let _ = classify(Some(odd), Some(odd));
        }
    }

    /// Counter names of a /proc/net/snmp or /proc/net/netstat: header lines come first
    /// in each pair, `Group: Name Name ...`.
    fn snmp_names(text: &str) -> BTreeSet<(String, String)> {
        let mut names = BTreeSet::new();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let Some((group, header)) = pair[0].split_once(':') else {
                continue;
            };
            for name in header.split_whitespace() {
                names.insert((group.to_owned(), name.to_owned()));
            }
        }
        names
    }

    #[test]
    fn counters_exist_in_this_machines_proc_files() {
        let snmp = snmp_names(&fixture("knowledge/snmp.6.18"));
        let netstat = snmp_names(&fixture("knowledge/netstat.6.18"));
        let snmp6: BTreeSet<String> = fixture("knowledge/snmp6.6.18")
            .lines()
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect();
        let dev = fixture("knowledge/dev.6.18");
        let dev_header = dev.lines().nth(1).unwrap_or_default();
        let dev_halves: Vec<Vec<&str>> = dev_header
            .split('|')
            .map(|half| half.split_whitespace().collect())
            .collect();
        let conntrack = fixture("knowledge/nf_conntrack.stat.header.6.18");
        let conntrack: BTreeSet<&str> = conntrack.split_whitespace().collect();

        let mut seen = BTreeSet::new();
        for c in COUNTERS {
            assert!(counter_path(c.file).is_some(), "{}: unknown file", c.name);
            assert!(
                seen.insert((c.file, c.group, c.name)),
                "duplicate {}",
                c.name
            );
            let key = (c.group.to_owned(), c.name.to_owned());
            let found = match c.file {
                "snmp" => snmp.contains(&key),
                "netstat" => netstat.contains(&key),
                "snmp6" => snmp6.contains(&format!("{}{}", c.group, c.name)),
                "dev" => {
                    let (half, column) = match c.name.split_once('_') {
                        Some(("rx", column)) => (1, column),
                        Some(("tx", column)) => (2, column),
                        _ => (0, ""),
                    };
                    c.group == "dev"
                        && half > 0
                        && dev_halves.get(half).is_some_and(|h| h.contains(&column))
                }
                "nf_conntrack_stat" => c.group == "nf_conntrack" && conntrack.contains(c.name),
                // No header to check against; the columns are documented on CounterInfo.
                "softnet_stat" => c.group == "softnet",
                _ => false,
            };
            assert!(
                found,
                "{} {} {} not in the captured files",
                c.file, c.group, c.name
            );
        }
    }

    #[test]
    fn required_counters_are_present() {
        let required = [
            ("netstat", "TcpExt", "ListenOverflows"),
            ("netstat", "TcpExt", "ListenDrops"),
            ("netstat", "TcpExt", "TCPBacklogDrop"),
            ("netstat", "TcpExt", "PAWSActive"),
            ("netstat", "TcpExt", "PAWSEstab"),
            ("netstat", "TcpExt", "TCPRcvQDrop"),
            ("netstat", "TcpExt", "TCPZeroWindowDrop"),
            ("netstat", "TcpExt", "IPReversePathFilter"),
            ("netstat", "TcpExt", "TCPMinTTLDrop"),
            ("netstat", "TcpExt", "LockDroppedIcmps"),
            ("snmp", "Udp", "RcvbufErrors"),
            ("snmp", "Udp", "NoPorts"),
            ("snmp", "Udp", "InErrors"),
            ("snmp", "Udp", "MemErrors"),
            ("snmp6", "Udp6", "RcvbufErrors"),
            ("snmp6", "Udp6", "NoPorts"),
            ("snmp6", "Udp6", "InErrors"),
            ("snmp6", "Udp6", "MemErrors"),
            ("snmp", "Ip", "InDiscards"),
            ("snmp", "Ip", "InHdrErrors"),
            ("snmp", "Ip", "InAddrErrors"),
            ("snmp", "Ip", "OutDiscards"),
            ("snmp", "Ip", "FragFails"),
            ("snmp", "Ip", "ReasmFails"),
            ("snmp", "Icmp", "InErrors"),
            ("softnet_stat", "softnet", "dropped"),
            ("softnet_stat", "softnet", "time_squeeze"),
            ("dev", "dev", "rx_drop"),
            ("dev", "dev", "rx_fifo"),
            ("dev", "dev", "rx_errs"),
            ("nf_conntrack_stat", "nf_conntrack", "drop"),
            ("nf_conntrack_stat", "nf_conntrack", "early_drop"),
            ("nf_conntrack_stat", "nf_conntrack", "insert_failed"),
        ];
        for (file, group, name) in required {
            assert!(
                find_counter(file, group, name).is_some(),
                "{file} {group} {name}"
            );
        }
        for c in COUNTERS.iter().filter(|c| c.file == "dev") {
            assert_eq!(c.cause, Cause::Nic, "{}", c.name);
        }
        for c in COUNTERS.iter().filter(|c| c.file == "nf_conntrack_stat") {
            assert_eq!(c.cause, Cause::ConntrackFull, "{}", c.name);
        }
    }
}
