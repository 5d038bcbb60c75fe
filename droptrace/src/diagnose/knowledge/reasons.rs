//! The drop reasons of the kernel, one entry each, and the subsystem reason families
//! known by prefix.

use super::{
    fixes::{
        FIX_BENIGN, FIX_CSUM, FIX_FRAG, FIX_NEIGH, FIX_PAWS, FIX_QDISC, FIX_RCVBUF, FIX_ROUTE_IN,
        FIX_TC,
    },
    Cause, ReasonFamily, ReasonInfo,
};

// Fixes shared by many reasons.
const FIX_TCP_BENIGN: &str =
    "Nothing to fix on its own: TCP handles it; worry only if retransmissions (`nstat -az TcpRetransSegs`) climb too";
const FIX_TCP_WINDOW: &str =
    "Capture the flow (`tcpdump -ni {iface} port {port}`) and compare sequence numbers; a middlebox rewriting sequences or a misbehaving peer is the usual suspect";
const FIX_TCP_AUTH: &str =
    "Check that both peers configure the same TCP-MD5/TCP-AO keys for this address (often a BGP session's password)";
const FIX_CAPTURE: &str =
    "Capture it (`tcpdump -ni {iface} -e -vv`) to see who sends malformed packets; a broken sender, tunnel or middlebox is the usual cause";
const FIX_NDISC: &str =
    "Capture the ICMPv6 traffic (`tcpdump -ni {iface} icmp6`) to find the sender of malformed neighbour discovery";
const FIX_VXLAN: &str =
    "Check the VXLAN device and its forwarding table: `ip -d link show`, `bridge fdb show dev <vxlan-dev>`";
const FIX_CAN: &str =
    "Check the CAN interface configuration and the sending node (`ip -d -s link show {iface}`)";
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
        cause: Cause::Xfrm,
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
        cause: Cause::NoRoute,
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
        cause: Cause::NoRoute,
        explanation: "The destination address is not usable here: routing says the host is unreachable or the address is invalid",
        fix: FIX_ROUTE_IN,
        benign: false,
    },
    ReasonInfo {
        name: "IP_INNOROUTES",
        cause: Cause::NoRoute,
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

const FIX_OVS: &str =
    "Dump the datapath flows and look for drop actions: `ovs-appctl dpctl/dump-flows -m | grep drop`; `ovs-appctl coverage/show` counts drop causes";
const FIX_WIFI: &str =
    "Check the Wi-Fi link and keys: `iw dev {iface} station dump`, `journalctl -u wpa_supplicant`; the mac80211 debugfs counters say more";

/// Subsystem reasons by prefix, for reasons not in [`REASONS`] (see [`ReasonFamily`]).
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
