//! What drops do to TCP: retransmits and resets by connection group, and whether each
//! retransmit follows a drop of the same socket seen on this host shortly before (which
//! drop group) or none ("lost beyond this host: the network or the peer").
//!
//! Decoding of the kernel's TCP events and the matching are here, pure: the kernel only
//! hands each retransmit the last drop of its socket; the window is decided here.
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use droptrace_common as wire;

use super::{event::Netns, names::Names};

/// A retransmit follows a drop of its socket when the drop came at most this long before:
/// a lost segment is sent again after an RTO (200 ms and more, doubling) or after
/// duplicate acknowledgements (one round trip).
pub const EXPLAIN_WINDOW_NS: u64 = 3_000_000_000;

/// Connection groups kept; events beyond count in the totals only.
pub const MAX_TCP_FLOWS: usize = 4096;

/// Drop groups kept per connection group; more count as explained by "other drops".
pub const MAX_CAUSES_PER_FLOW: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TcpKind {
    Retransmit,
    ResetSent,
    ResetReceived,
}

/// The drop group that explains retransmits: where and why the kernel freed a packet of
/// the socket, on which interface and in which namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropCause {
    pub location: u64,
    pub reason: u32,
    pub netns: Netns,
    pub ifindex: u32,
}

/// The last drop of a packet of the retransmitting socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropMark {
    pub timestamp_ns: u64,
    pub cause: DropCause,
}

/// One retransmit or reset, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpEvent {
    pub timestamp_ns: u64,
    pub kind: TcpKind,
    pub flow: TcpFlow,
    pub rport: u16,
    /// Retransmit: the segments it carried.
    pub segs: u32,
    /// Retransmit: the error of a transmit that did not go out (where the kernel says so: 6.18 does).
    pub failed: Option<i32>,
    /// Reset sent: the kernel's raw reason (`enum sk_rst_reason`), where it gives one.
    pub reset_reason: Option<u32>,
    pub drop: Option<DropMark>,
}

/// How connections are grouped: namespace, this host's address and port, the peer's
/// address (not its port: a client's ephemeral ports would make a group of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TcpFlow {
    pub netns: Netns,
    pub local: IpAddr,
    pub lport: u16,
    pub remote: IpAddr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TcpDecodeError {
    #[error("TCP event of {0} bytes, expected {TCP_EVENT_SIZE}")]
    Size(usize),
    #[error("TCP event of unknown kind {0}")]
    Kind(u8),
    #[error("TCP event of unknown address family {0}")]
    Family(u8),
}

pub const TCP_EVENT_SIZE: usize = size_of::<wire::TcpEvent>();

/// Bytes of a `wire::TcpEvent` to the event.
pub fn decode(bytes: &[u8]) -> Result<TcpEvent, TcpDecodeError> {
    let b: &[u8; TCP_EVENT_SIZE] = bytes
        .get(..TCP_EVENT_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or(TcpDecodeError::Size(bytes.len()))?;
    let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    let u16_at = |o: usize| u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"));
    let addr16 = |o: usize| -> [u8; 16] { b[o..o + 16].try_into().expect("16 bytes") };
    // Offsets of `wire::TcpEvent`; the layout test below keeps them honest.
    let kind = match b[8] {
        wire::TCP_RETRANSMIT => TcpKind::Retransmit,
        wire::TCP_RESET_SENT => TcpKind::ResetSent,
        wire::TCP_RESET_RECEIVED => TcpKind::ResetReceived,
        other => return Err(TcpDecodeError::Kind(other)),
    };
    let addr = |raw: [u8; 16]| match b[9] {
        wire::AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))),
        wire::AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(raw))),
        other => Err(TcpDecodeError::Family(other)),
    };
    let flags = b[10];
    let reason = u32_at(12);
    let drop = (flags & wire::TCP_EVENT_DROP != 0).then(|| DropMark {
        timestamp_ns: u64_at(72),
        cause: DropCause {
            location: u64_at(80),
            reason: u32_at(88),
            netns: Netns::new(u32_at(92), u64_at(104)),
            ifindex: u32_at(96),
        },
    });
    Ok(TcpEvent {
        timestamp_ns: u64_at(0),
        kind,
        flow: TcpFlow {
            netns: Netns::new(u32_at(16), u64_at(64)),
            local: addr(addr16(24))?,
            lport: u16_at(56),
            remote: addr(addr16(40))?,
        },
        rport: u16_at(58),
        segs: u32::from(u16_at(20)).max(1),
        failed: (kind == TcpKind::Retransmit && flags & wire::TCP_EVENT_FAILED != 0)
            .then_some(reason as i32),
        reset_reason: (kind == TcpKind::ResetSent && flags & wire::TCP_EVENT_HAS_REASON != 0)
            .then_some(reason),
        drop,
    })
}

/// What explained a flow's retransmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Explained {
    /// A drop of the same socket, in this group, seen here shortly before.
    By(DropCause),
    /// A drop seen here, in a group beyond the flow's `MAX_CAUSES_PER_FLOW`.
    OtherDrop,
    /// No drop of the socket seen here shortly before: the network or the peer.
    Beyond,
}

impl Explained {
    /// The bounded label value of the exporter's `explained`.
    pub fn label(&self) -> &'static str {
        match self {
            Explained::By(_) | Explained::OtherDrop => "drop_on_host",
            Explained::Beyond => "beyond_host",
        }
    }
}

/// Which of the two a retransmit at `at_ns` with the socket's last drop `drop` is.
pub fn explain(at_ns: u64, drop: Option<&DropMark>) -> Option<DropCause> {
    let drop = drop?;
    (drop.timestamp_ns <= at_ns && at_ns - drop.timestamp_ns <= EXPLAIN_WINDOW_NS)
        .then_some(drop.cause)
}

/// One connection group's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Retransmitted segments, all together.
    pub retransmits: u64,
    /// Retransmitted segments by what explains them.
    pub explained: BTreeMap<Explained, u64>,
    /// Retransmits that did not go out (counted in `retransmits` too).
    pub failed: u64,
    /// Resets sent, by raw reason (`None`: the kernel gives none).
    pub resets_sent: BTreeMap<Option<u32>, u64>,
    pub resets_received: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

impl FlowStats {
    pub fn after_drops(&self) -> u64 {
        self.explained
            .iter()
            .filter(|(e, _)| **e != Explained::Beyond)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn beyond(&self) -> u64 {
        self.explained.get(&Explained::Beyond).copied().unwrap_or(0)
    }

    pub fn resets_sent_total(&self) -> u64 {
        self.resets_sent.values().sum()
    }

    /// The drop groups that explain retransmits, most first.
    pub fn causes(&self) -> Vec<(DropCause, u64)> {
        let mut v: Vec<(DropCause, u64)> = self
            .explained
            .iter()
            .filter_map(|(e, n)| match e {
                Explained::By(c) => Some((*c, *n)),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    fn add(&mut self, ev: &TcpEvent) {
        if self.first_ns == 0 {
            self.first_ns = ev.timestamp_ns;
        }
        self.last_ns = self.last_ns.max(ev.timestamp_ns);
        match ev.kind {
            TcpKind::Retransmit => {
                let segs = u64::from(ev.segs);
                self.retransmits += segs;
                if ev.failed.is_some() {
                    self.failed += segs;
                }
                let explained = match explain(ev.timestamp_ns, ev.drop.as_ref()) {
                    Some(cause) => {
                        let known = self.explained.contains_key(&Explained::By(cause));
                        let causes = self
                            .explained
                            .keys()
                            .filter(|e| matches!(e, Explained::By(_)))
                            .count();
                        if known || causes < MAX_CAUSES_PER_FLOW {
                            Explained::By(cause)
                        } else {
                            Explained::OtherDrop
                        }
                    }
                    None => Explained::Beyond,
                };
                *self.explained.entry(explained).or_default() += segs;
            }
            TcpKind::ResetSent => *self.resets_sent.entry(ev.reset_reason).or_default() += 1,
            TcpKind::ResetReceived => self.resets_received += 1,
        }
    }
}

/// The kernel's own TCP counters (exact, summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpCounters {
    /// Retransmitted segments.
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Events that found no room in the ring buffer (in the counters, not in a group).
    pub lost: u64,
    /// Runs of the TCP programs the kernel skipped (`recursion_misses`): a TCP event on a
    /// CPU where one was being counted (a softirq over process context); each is at
    /// least one retransmit or reset that no counter has.
    pub missed: u64,
}

/// Retransmits and resets by connection group, bounded.
#[derive(Debug, Clone, Default)]
pub struct TcpTable {
    flows: HashMap<TcpFlow, FlowStats>,
    /// Events of groups beyond `MAX_TCP_FLOWS`.
    overflow: FlowStats,
    /// Whether the TCP tracepoints are attached (a recording, or a kernel without them,
    /// has none).
    pub attached: bool,
    /// TCP tracing was turned off (`--no-tcp`): the outputs say so rather than nothing.
    pub off: bool,
    pub counters: TcpCounters,
}

impl TcpTable {
    pub fn add(&mut self, ev: &TcpEvent) {
        let full = self.flows.len() >= MAX_TCP_FLOWS;
        match self.flows.get_mut(&ev.flow) {
            Some(stats) => stats.add(ev),
            None if full => self.overflow.add(ev),
            None => self.flows.entry(ev.flow).or_default().add(ev),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty() && self.overflow == FlowStats::default()
    }

    pub fn get(&self, flow: &TcpFlow) -> Option<&FlowStats> {
        self.flows.get(flow)
    }

    /// Groups by retransmits, then resets, most first (ties in a fixed order).
    pub fn ranked(&self) -> Vec<(&TcpFlow, &FlowStats)> {
        let mut v: Vec<_> = self.flows.iter().collect();
        v.sort_by(|a, b| {
            let weight = |s: &FlowStats| s.retransmits + s.resets_sent_total() + s.resets_received;
            weight(b.1).cmp(&weight(a.1)).then(a.0.cmp(b.0))
        });
        v
    }

    /// All groups together, the overflow included.
    pub fn total(&self) -> FlowStats {
        let mut total = FlowStats::default();
        for stats in self.flows.values().chain(std::iter::once(&self.overflow)) {
            total.retransmits += stats.retransmits;
            total.failed += stats.failed;
            total.resets_received += stats.resets_received;
            for (e, n) in &stats.explained {
                // The total keeps the bounded labels only.
                let e = match e {
                    Explained::Beyond => Explained::Beyond,
                    _ => Explained::OtherDrop,
                };
                *total.explained.entry(e).or_default() += n;
            }
            for (r, n) in &stats.resets_sent {
                *total.resets_sent.entry(*r).or_default() += n;
            }
        }
        total
    }

    /// Events of groups beyond the bound.
    pub fn overflow(&self) -> &FlowStats {
        &self.overflow
    }
}

/// `10.1.0.2:443`, `[fd00::2]:443`.
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// `QDISC_DROP at __dev_queue_xmit+0x1c4 on veth-a in netns web`.
pub fn cause_words(cause: &DropCause, names: &Names) -> String {
    let mut s = String::new();
    if let Some(reason) = names.reason(cause.reason) {
        let _ = write!(s, "{reason} at ");
    } else {
        s.push_str("a drop at ");
    }
    s.push_str(&names.location_display(cause.location));
    s.push_str(&names.place(cause.netns, cause.ifindex));
    s
}

#[cfg(test)]
pub(crate) mod tests;
