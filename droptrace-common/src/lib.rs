//! Wire types shared by the droptrace kernel program and user space.
//!
//! Everything here is `#[repr(C)]`, made of integers only, with explicit padding, so both
//! sides agree byte for byte. The sizes are checked at compile time.
#![no_std]

use core::mem::size_of;

/// An offset that the loader could not find in the running kernel's BTF.
pub const OFFSET_UNKNOWN: u32 = u32::MAX;

/// Where the kernel program finds what it reads, and which drops it keeps.
///
/// User space fills this in at load time from the running kernel (BTF and the tracefs
/// format), so one object works across kernel versions.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `CONFIG_*` bits below.
    pub flags: u32,
    /// `FILTER_*` bits below: which of the filter fields are in force.
    pub filters: u32,

    // Offsets inside `struct sk_buff`.
    pub skb_len: u32,
    pub skb_head: u32,
    pub skb_network_header: u32,
    pub skb_protocol: u32,
    pub skb_dev: u32,
    pub skb_sk: u32,
    /// `data` (a pointer) and `data_len` (bytes outside the linear part): with `head`,
    /// `len` and `network_header` they say how many header bytes can be copied.
    pub skb_data: u32,
    pub skb_data_len: u32,
    /// `struct net_device` -> `ifindex`.
    pub dev_ifindex: u32,
    /// `struct net_device` -> `nd_net.net` (a `struct net *`).
    pub dev_net: u32,
    /// `struct sock` -> `__sk_common.skc_net.net` (a `struct net *`).
    pub sk_net: u32,
    /// `struct net` -> `ns.inum`.
    pub net_inum: u32,
    /// `struct net` -> `net_cookie` (a u64 the kernel never hands out twice), with
    /// `CONFIG_HAS_NET_COOKIE`.
    pub net_cookie: u32,

    // Offsets inside the classic tracepoint record (fallback when tp_btf is unavailable).
    pub tp_skbaddr: u32,
    pub tp_location: u32,
    pub tp_protocol: u32,
    pub tp_reason: u32,

    // Filters (host byte order).
    pub ifindex: u32,
    pub netns: u32,
    pub port: u16,
    pub sport: u16,
    pub dport: u16,
    pub l4_proto: u8,
    pub addr_family: u8,
    /// IPv4 in the first 4 bytes, or IPv6.
    pub addr: [u8; 16],
    /// Wake user space at every this-many-th matched drop of a CPU (a power of two; 0 lets
    /// the kernel decide). User space also polls, so a quiet ring is read all the same.
    pub wakeup_events: u32,
    /// Packet bytes to copy after each event, from the IP header (0: none; at most
    /// `SNAPLEN_MAX`).
    pub snaplen: u32,
    /// With `CONFIG_COUNT_GROUPS`: events sent per group and epoch (per CPU for a group in
    /// a CPU's slot cache; for all CPUs together, give or take a race, in `GROUPS`).
    pub samples_per_group: u32,
    /// With `CONFIG_COUNT_GROUPS`: events sent per CPU and per epoch, all groups together.
    pub samples_per_cpu: u32,
    /// With `CONFIG_XDP_OWNED`: the reason a drop that ends an XDP program's XDP_DROP
    /// carries (`NOT_SPECIFIED` of the running kernel); only drops of this reason are
    /// looked up in `XDP_OWNED`.
    pub xdp_reason: u32,
    /// With `FILTER_NETNS` and `CONFIG_HAS_NET_COOKIE`: the namespace's cookie too (0:
    /// the inode alone), so a namespace that later gets its inode is not let in.
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<Config>() == 136);

impl Config {
    /// No layout known, no filters.
    pub const ZERO: Config = Config {
        flags: 0,
        filters: 0,
        skb_len: 0,
        skb_head: 0,
        skb_network_header: 0,
        skb_protocol: 0,
        skb_dev: 0,
        skb_sk: 0,
        skb_data: 0,
        skb_data_len: 0,
        dev_ifindex: 0,
        dev_net: 0,
        sk_net: 0,
        net_inum: 0,
        net_cookie: 0,
        tp_skbaddr: 0,
        tp_location: 0,
        tp_protocol: 0,
        tp_reason: 0,
        ifindex: 0,
        netns: 0,
        port: 0,
        sport: 0,
        dport: 0,
        l4_proto: 0,
        addr_family: 0,
        addr: [0; 16],
        wakeup_events: 0,
        snaplen: 0,
        samples_per_group: 0,
        samples_per_cpu: 0,
        xdp_reason: 0,
        netns_cookie: 0,
    };
}

/// The kernel passes a drop reason to the tracepoint.
pub const CONFIG_HAS_REASON: u32 = 1 << 0;
/// Packet fields can be read (the `skb_*` offsets are valid).
pub const CONFIG_HAS_SKB_LAYOUT: u32 = 1 << 1;
/// Count every matched drop by group in the kernel (`GROUPS`) and send only samples
/// (`samples_per_group`, `samples_per_cpu` per epoch); without it every matched drop is
/// sent and only the undelivered ones are counted by group (`LOST_GROUPS`).
pub const CONFIG_COUNT_GROUPS: u32 = 1 << 2;
/// With `CONFIG_COUNT_GROUPS`: count first in this CPU's slot cache (`SLOTS`), then in
/// `GROUPS` for a group whose slot another group has taken.
pub const CONFIG_GROUP_SLOTS: u32 = 1 << 3;
/// `net_cookie` is valid: namespaces are told apart by their cookie, not only by their
/// inode (which the kernel hands to a new namespace once the old one is gone).
pub const CONFIG_HAS_NET_COOKIE: u32 = 1 << 4;
/// XDP programs are traced: a drop whose skb is the frame an XDP program just dropped on
/// this CPU (`XDP_OWNED` holds its `data_hard_start`, the skb's `head`) is that program's
/// drop, counted by the XDP tracing, and skipped here so it is counted once.
pub const CONFIG_XDP_OWNED: u32 = 1 << 5;
/// The BTF tracepoint passes `rx_sk` (6.11 and later): the socket a received packet was
/// dropped at, whose namespace is the drop's where the skb has no device left (TCP
/// segments dropped at an established socket).
pub const CONFIG_HAS_RX_SK: u32 = 1 << 6;

pub const FILTER_PORT: u32 = 1 << 0;
pub const FILTER_SPORT: u32 = 1 << 1;
pub const FILTER_DPORT: u32 = 1 << 2;
pub const FILTER_L4_PROTO: u32 = 1 << 3;
pub const FILTER_ADDR: u32 = 1 << 4;
pub const FILTER_IFINDEX: u32 = 1 << 5;
pub const FILTER_NETNS: u32 = 1 << 6;
/// Keep only reasons marked `REASON_INCLUDE` in the reason map.
pub const FILTER_REASON_INCLUDE: u32 = 1 << 7;
/// Skip reasons marked `REASON_EXCLUDE` in the reason map.
pub const FILTER_REASON_EXCLUDE: u32 = 1 << 8;

/// Values of the reason filter map.
pub const REASON_INCLUDE: u8 = 1;
pub const REASON_EXCLUDE: u8 = 2;
pub const MAX_REASON_FILTERS: u32 = 256;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// Indexes of the per-CPU counter array.
pub const COUNTER_SEEN: u32 = 0;
/// Drops that passed the filters: the exact total.
pub const COUNTER_MATCHED: u32 = 1;
/// Events (every matched drop, or the samples) that found no room in the ring buffer.
pub const COUNTER_LOST: u32 = 2;
/// Drops counted in the total only: lost drops that found no room in the lost-group map
/// or, when counting groups in the kernel, drops that found no room in the group map.
pub const COUNTER_LOST_UNGROUPED: u32 = 3;
/// Counting groups in the kernel: drops not sent as samples because this CPU had spent
/// its budget of the epoch (the group's own share is not counted here).
pub const COUNTER_OVER_BUDGET: u32 = 4;
/// Per-CPU state, not a count: the epoch `COUNTER_BUDGET_USED` belongs to.
pub const COUNTER_BUDGET_EPOCH: u32 = 5;
/// Per-CPU state, not a count: samples sent in that epoch.
pub const COUNTER_BUDGET_USED: u32 = 6;
/// Events handed to the ring buffer (every matched drop when streaming; the samples when
/// counting groups in the kernel): user space has read them all once it has this many.
pub const COUNTER_SENT: u32 = 7;
/// Packets the program could not make sense of although the kernel's layout said it
/// should (warned about with `--verbose`).
pub const COUNTER_ANOMALIES: u32 = 8;
/// Drops skipped as an XDP program's own (`CONFIG_XDP_OWNED`): counted by the XDP
/// tracing, not here.
pub const COUNTER_XDP_OWNED: u32 = 9;
pub const COUNTER_COUNT: u32 = 10;

/// Most packet bytes an event carries (`--snaplen`); the kernel program's scratch buffer
/// holds an event and `SNAPLEN_MAX + 1` bytes.
pub const SNAPLEN_MAX: u32 = 4095;

/// Capacity of the map that counts undelivered drops by group.
pub const LOST_GROUPS_MAX: u32 = 16384;
/// Capacity of the map that counts every drop by group (`CONFIG_COUNT_GROUPS`): one value
/// for all CPUs, its elements allocated as groups come.
pub const GROUPS_MAX: u32 = 65536;

/// A group's figures in the kernel's group map (all CPUs together) or in a CPU's slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCount {
    /// Matched drops of the group (on the slot's CPU, for a slot).
    pub count: u64,
    /// The epoch `samples` belongs to.
    pub epoch: u32,
    /// Samples of the group sent in that epoch.
    pub samples: u32,
}
const _: () = assert!(size_of::<GroupCount>() == 16);

/// Slots in each CPU's group cache: a power of two. 128 slots of 56 bytes are 7 KiB a
/// CPU, 1.75 MiB on 256 CPUs.
pub const SLOTS: usize = 128;

/// One slot of a CPU's group cache (`SLOTS`): the group that took it first (a slot is
/// never given back) and its figures on this CPU. A count of 0 means the slot is free.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub count: GroupCount,
    pub key: GroupKey,
}
const _: () = assert!(size_of::<Slot>() == 56);

/// Where a group's slot is in a CPU's cache: a multiplicative hash of the key's words.
#[inline(always)]
pub fn slot_index(key: &GroupKey) -> usize {
    let [a, b, c, d, e] = key.words();
    let x = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ d.rotate_left(7) ^ e.rotate_left(35);
    (x.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - SLOTS.trailing_zeros())) as usize
}

/// `DropEvent::flags` bits.
pub const EVENT_IPV4: u8 = 1 << 0;
pub const EVENT_IPV6: u8 = 1 << 1;
/// `sport` and `dport` are valid.
pub const EVENT_PORTS: u8 = 1 << 2;
/// `icmp_type` and `icmp_code` are valid.
pub const EVENT_ICMP: u8 = 1 << 3;
/// `tcp_flags` is valid.
pub const EVENT_TCP_FLAGS: u8 = 1 << 4;

/// One dropped packet, as the kernel program sends it through the ring buffer; with a
/// snaplen, the record goes on with up to `snaplen` bytes of the packet from its IP header.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropEvent {
    /// `CLOCK_BOOTTIME`, nanoseconds.
    pub timestamp_ns: u64,
    /// Address of the instruction that freed the packet.
    pub location: u64,
    /// Raw `enum skb_drop_reason` value, subsystem in the high 16 bits; 0 when the kernel
    /// gives none.
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub skb_len: u32,
    pub cpu: u32,
    /// Ethertype, host byte order.
    pub l3_proto: u16,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, ...).
    pub l4_proto: u8,
    /// `EVENT_*` bits.
    pub flags: u8,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    /// A TCP segment's flags (byte 13 of its header: CWR ECE URG ACK PSH RST SYN FIN).
    pub tcp_flags: u8,
    pub _pad: u8,
    /// The namespace's `net_cookie`, 0 when unknown (`CONFIG_HAS_NET_COOKIE` unset).
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<DropEvent>() == 88);

/// How drops are grouped; the key of the lost-group map. Interface and namespace are part
/// of it so that counts per interface and per namespace stay exact when events are lost.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub location: u64,
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub l3_proto: u16,
    /// Destination port, 0 when `EVENT_PORTS` is not set.
    pub dport: u16,
    pub l4_proto: u8,
    /// `EVENT_PORTS` when `dport` is valid; `EVENT_IPV4`/`EVENT_IPV6` when `l4_proto` is.
    pub flags: u8,
    // Padding as aligned integers: the kernel program zeroes them with two stores (a byte
    // array would be a call to memset).
    pub _pad16: u16,
    pub _pad32: u32,
    /// The namespace's `net_cookie` (0 when unknown): a namespace that gets the inode of
    /// a deleted one is a group of its own.
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<GroupKey>() == 40);

impl GroupKey {
    /// The key as five words, to compare and hash it without a byte loop.
    #[inline(always)]
    pub fn words(&self) -> [u64; 5] {
        // SAFETY: GroupKey is 40 bytes of plain integers, aligned to 8 (its first field is
        // a u64), with no implicit padding; any bits are valid u64s.
        unsafe { core::mem::transmute_copy(self) }
    }

    #[inline(always)]
    pub fn of(event: &DropEvent) -> GroupKey {
        let ports = event.flags & EVENT_PORTS;
        GroupKey {
            location: event.location,
            reason: event.reason,
            netns: event.netns,
            ifindex: event.ifindex,
            l3_proto: event.l3_proto,
            dport: if ports != 0 { event.dport } else { 0 },
            l4_proto: event.l4_proto,
            flags: event.flags & (EVENT_PORTS | EVENT_IPV4 | EVENT_IPV6),
            _pad16: 0,
            _pad32: 0,
            netns_cookie: event.netns_cookie,
        }
    }
}

// ---------------------------------------------------------------------------------------
// TCP: retransmits and resets (the tcp:* tracepoints), with the drop of the same socket
// seen shortly before. Programs, maps and ring of their own (`droptrace-ebpf/src/tcp.rs`).
// ---------------------------------------------------------------------------------------

/// Where the TCP programs find what they read in `struct sock` and `struct sk_buff`
/// (offsets from the running kernel's BTF), beside the drop program's `Config` whose
/// namespace and filter fields they share.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// `TCP_CONFIG_*` bits.
    pub flags: u32,
    /// `sock.sk_protocol` (u16).
    pub sk_protocol: u32,
    /// `sock_common` fields (through `sock.__sk_common`).
    pub skc_family: u32,
    pub skc_num: u32,
    pub skc_dport: u32,
    pub skc_rcv_saddr: u32,
    pub skc_daddr: u32,
    /// With `TCP_CONFIG_HAS_V6`.
    pub skc_v6_rcv_saddr: u32,
    pub skc_v6_daddr: u32,
    /// `sk_buff.cb` plus `tcp_skb_cb.tcp_gso_segs` (u16): the segments a retransmitted
    /// skb carries.
    pub skb_gso_segs: u32,
}
const _: () = assert!(size_of::<TcpConfig>() == 40);

impl TcpConfig {
    pub const ZERO: TcpConfig = TcpConfig {
        flags: 0,
        sk_protocol: 0,
        skc_family: 0,
        skc_num: 0,
        skc_dport: 0,
        skc_rcv_saddr: 0,
        skc_daddr: 0,
        skc_v6_rcv_saddr: 0,
        skc_v6_daddr: 0,
        skb_gso_segs: 0,
    };
}

/// `tcp:tcp_send_reset` passes the kernel's reset reason (`enum sk_rst_reason`, 6.10+).
pub const TCP_CONFIG_HAS_RST_REASON: u32 = 1 << 0;
/// The IPv6 addresses of `sock_common` exist (`CONFIG_IPV6`).
pub const TCP_CONFIG_HAS_V6: u32 = 1 << 1;
/// `tcp:tcp_retransmit_skb` passes the transmit's error (6.18 does; before, it fired only
/// for a retransmit that went out).
pub const TCP_CONFIG_RETRANSMIT_HAS_ERR: u32 = 1 << 2;
/// `skb_gso_segs` is valid.
pub const TCP_CONFIG_HAS_GSO_SEGS: u32 = 1 << 3;
/// The drop program remembers each TCP socket's last drop (the TCP programs are on).
pub const TCP_CONFIG_MARK_DROPS: u32 = 1 << 4;

/// `TcpEvent::kind`.
pub const TCP_RETRANSMIT: u8 = 1;
pub const TCP_RESET_SENT: u8 = 2;
pub const TCP_RESET_RECEIVED: u8 = 3;

/// `TcpEvent::flags` bits.
/// `reason` is the kernel's reset reason.
pub const TCP_EVENT_HAS_REASON: u8 = 1 << 0;
/// `drop` holds the last drop of a packet of the same socket.
pub const TCP_EVENT_DROP: u8 = 1 << 1;
/// The retransmit did not go out (`err` is its error).
pub const TCP_EVENT_FAILED: u8 = 1 << 2;

/// Indexes of the TCP programs' per-CPU counters.
pub const TCP_COUNTER_RETRANSMITS: u32 = 0;
pub const TCP_COUNTER_RESETS_SENT: u32 = 1;
pub const TCP_COUNTER_RESETS_RECEIVED: u32 = 2;
/// TCP events that found no room in their ring buffer.
pub const TCP_COUNTER_LOST: u32 = 3;
/// Drops of a TCP socket's packets remembered for the socket's next retransmit.
pub const TCP_COUNTER_DROPS_MARKED: u32 = 4;
pub const TCP_COUNTER_COUNT: u32 = 5;

/// Sockets whose last drop the kernel remembers (an LRU map: the oldest go first).
pub const TCP_DROPS_MAX: u32 = 16384;

/// The last drop of a packet that belonged to a TCP socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpDropMark {
    /// `CLOCK_BOOTTIME`, nanoseconds.
    pub timestamp_ns: u64,
    pub location: u64,
    /// Raw `enum skb_drop_reason` (0 when the kernel gives none).
    pub reason: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub _pad: u32,
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<TcpDropMark>() == 40);

/// One retransmit or reset, as the TCP programs send it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpEvent {
    /// `CLOCK_BOOTTIME`, nanoseconds.
    pub timestamp_ns: u64,
    /// `TCP_RETRANSMIT`, `TCP_RESET_SENT` or `TCP_RESET_RECEIVED`.
    pub kind: u8,
    /// `AF_INET` or `AF_INET6` (0 when unknown).
    pub family: u8,
    /// `TCP_EVENT_*` bits.
    pub flags: u8,
    pub _pad: u8,
    /// Reset sent: raw `enum sk_rst_reason` (with `TCP_EVENT_HAS_REASON`). Retransmit:
    /// the transmit's error (with `TCP_EVENT_FAILED`).
    pub reason: u32,
    pub netns: u32,
    /// Retransmit: segments the skb carried (1 when unknown).
    pub segs: u16,
    pub _pad2: u16,
    /// This host's end of the connection, and the peer's (IPv4 in the first 4 bytes).
    pub local: [u8; 16],
    pub remote: [u8; 16],
    /// Host byte order.
    pub lport: u16,
    pub rport: u16,
    pub _pad3: u32,
    pub netns_cookie: u64,
    /// With `TCP_EVENT_DROP`.
    pub drop: TcpDropMark,
}
const _: () = assert!(size_of::<TcpEvent>() == 112);

// ---------------------------------------------------------------------------------------
// XDP exceptions: aborts and failed XDP_TX/redirects (`xdp:xdp_exception`,
// `xdp:xdp_redirect_err`, `xdp:xdp_redirect_map_err`), counted by key in the kernel
// (`droptrace-ebpf/src/xdp.rs`).
// ---------------------------------------------------------------------------------------

/// Where the exception programs find what they read (offsets from the running kernel's
/// BTF), beside the drop program's `Config` (interface and namespace offsets).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpExcConfig {
    /// `XDP_EXC_CONFIG_*` bits.
    pub flags: u32,
    /// `bpf_prog.aux` (a `struct bpf_prog_aux *`).
    pub prog_aux: u32,
    /// `bpf_prog_aux.id`.
    pub aux_id: u32,
    /// `net_device.xdp_prog`: the generic-mode (skb) program, the one `do_xdp_generic` runs.
    pub dev_xdp_prog: u32,
    /// `net_device.rtnl_link_ops` (a `struct rtnl_link_ops *`).
    pub dev_link_ops: u32,
    /// `rtnl_link_ops.kind` (a `const char *`: `"veth"`).
    pub link_ops_kind: u32,
}
const _: () = assert!(size_of::<XdpExcConfig>() == 24);

impl XdpExcConfig {
    pub const ZERO: XdpExcConfig = XdpExcConfig {
        flags: 0,
        prog_aux: 0,
        aux_id: 0,
        dev_xdp_prog: 0,
        dev_link_ops: 0,
        link_ops_kind: 0,
    };
}

/// The exception programs count (their programs are attached only with it).
pub const XDP_EXC_CONFIG_ON: u32 = 1 << 0;
/// `struct net` has `net_cookie`.
pub const XDP_EXC_CONFIG_HAS_NET_COOKIE: u32 = 1 << 1;

/// Which tracepoint counted an exception (`XdpExcKey::tracepoint`).
pub const XDP_TP_EXCEPTION: u8 = 0;
pub const XDP_TP_REDIRECT_ERR: u8 = 1;
pub const XDP_TP_REDIRECT_MAP_ERR: u8 = 2;
/// Not a tracepoint: the one key ([`XdpExcKey::OVERFLOW`]) that counts the exceptions
/// whose own key found no room in the map.
pub const XDP_TP_OVERFLOW: u8 = 3;

/// Where the program ran (`XdpExcKey::path`), read from the interface: a driver's own
/// (native) XDP, generic (skb) mode, or a veth's native XDP (which runs on skbs).
pub const XDP_PATH_DRIVER: u8 = 0;
pub const XDP_PATH_GENERIC: u8 = 1;
pub const XDP_PATH_VETH: u8 = 2;

/// What an exception is counted by.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct XdpExcKey {
    pub prog_id: u32,
    pub ifindex: u32,
    /// The namespace's inode.
    pub netns: u32,
    /// `xdp_exception`: the action (`enum xdp_action`); the redirect errors: the error
    /// (a negative errno, as its two's complement).
    pub value: u32,
    /// `XDP_TP_*`.
    pub tracepoint: u8,
    /// `XDP_PATH_*`.
    pub path: u8,
    pub _pad: [u8; 6],
    /// The namespace's cookie (0 when the kernel has none).
    pub netns_cookie: u64,
}
const _: () = assert!(size_of::<XdpExcKey>() == 32);

impl XdpExcKey {
    /// Put in the map by user space before the programs are attached, so that an
    /// exception whose key finds the map full is still counted, there.
    pub const OVERFLOW: XdpExcKey = XdpExcKey {
        prog_id: 0,
        ifindex: 0,
        netns: 0,
        value: 0,
        tracepoint: XDP_TP_OVERFLOW,
        path: 0,
        _pad: [0; 6],
        netns_cookie: 0,
    };
}

/// Exception keys the kernel's map holds.
pub const XDP_EXC_MAX: u32 = 1024;

#[cfg(feature = "user")]
mod user {
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::GroupKey {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::GroupCount {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::Slot {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::TcpConfig {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::TcpDropMark {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::XdpExcConfig {}
    // SAFETY: a #[repr(C)] struct of integers with explicit padding: every bit pattern
    // is a valid value.
    unsafe impl aya::Pod for super::XdpExcKey {}
}
