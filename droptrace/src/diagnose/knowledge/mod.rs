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
//!
//! The tables live in files of their own (`reasons.rs` with the reason families,
//! `locations.rs`, `counters.rs`, and `fixes.rs` for fix texts they share); this file
//! holds their types and the lookups.

mod counters;
mod fixes;
mod locations;
mod reasons;
#[cfg(test)]
mod tests;

use serde::{Serialize, Serializer};

pub use counters::{COUNTERS, COUNTER_FILES};
pub use locations::LOCATIONS;
pub use reasons::{REASONS, REASON_FAMILIES};

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
    /// Routing refused the packet: no route, an `unreachable`, `blackhole` or `prohibit`
    /// route, or a policy-routing rule with such an action.
    NoRoute,
    /// A packet not for this host arrived where forwarding is disabled.
    ForwardingDisabled,
    /// The neighbour layer: frames addressed to another link-layer address arrived on an
    /// interface that is not promiscuous (a sender's neighbour entry points elsewhere), or
    /// a next hop did not answer ARP/NDP and the packets waiting for it were dropped.
    Neighbour,
    /// An IPsec (xfrm) policy refused the packet: it blocks such packets, or demands a
    /// transform (ESP, AH) the packet did not have.
    Xfrm,
    /// Anything else; the explanation says what.
    Other,
}

impl Cause {
    /// Every cause, in declaration order.
    pub const ALL: [Cause; 18] = [
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
        Cause::NoRoute,
        Cause::ForwardingDisabled,
        Cause::Neighbour,
        Cause::Xfrm,
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
            Cause::NoRoute => "no_route",
            Cause::ForwardingDisabled => "forwarding_disabled",
            Cause::Neighbour => "neighbour",
            Cause::Xfrm => "xfrm",
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
            Cause::NoRoute => "no route",
            Cause::ForwardingDisabled => "forwarding disabled",
            Cause::Neighbour => "neighbour (ARP/NDP) entry",
            Cause::Xfrm => "IPsec (xfrm) policy",
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

/// The path of a counter file id, e.g. `netstat` -> `/proc/net/netstat`.
pub fn counter_path(file: &str) -> Option<&'static str> {
    COUNTER_FILES
        .iter()
        .find(|(id, _)| *id == file)
        .map(|(_, path)| *path)
}

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
