//! Fix texts that more than one table uses (reasons, locations, counters).

pub(super) const FIX_BENIGN: &str =
    "Nothing to fix: this is normal housekeeping; look at it only if the application reports errors at the same time";
pub(super) const FIX_CSUM: &str =
    "Look for corruption on the path: `ethtool -S {iface}` error counters, cabling, and checksum offload (`ethtool -k {iface}`, try turning rx/tx checksumming off)";
pub(super) const FIX_QDISC: &str =
    "Run `tc -s qdisc show dev {iface}`: the qdisc with growing drops is full; raise its limit, shape less, or find who sends faster than the link";
pub(super) const FIX_TC: &str =
    "List tc filters and actions: `tc filter show dev {iface} ingress`, `tc filter show dev {iface} egress`, and `bpftool net show`";
pub(super) const FIX_ROUTE_IN: &str =
    "Check the route for the packet as it arrives: `ip route get <dst> from <src> iif {iface}`";
pub(super) const FIX_NEIGH: &str =
    "Check neighbour resolution on {iface}: `ip neigh show dev {iface}`; FAILED entries mean the next hop does not answer ARP/ND";
pub(super) const FIX_FRAG: &str =
    "Avoid IP fragmentation (lower the sender's MTU or clamp TCP MSS); `nstat -az IpReasmFails IpReasmTimeout` shows reassembly trouble";
pub(super) const FIX_PAWS: &str =
    "Check clients behind one NAT sharing a TCP timestamp clock and `sysctl net.ipv4.tcp_timestamps`; `nstat -az TcpExtPAWSEstab TcpExtPAWSActive` shows the trend";
pub(super) const FIX_RCVBUF: &str =
    "The application reads too slowly: see `ss -tumpn` Recv-Q and `ss -m` drops, then read faster or raise SO_RCVBUF / net.core.rmem_max";
