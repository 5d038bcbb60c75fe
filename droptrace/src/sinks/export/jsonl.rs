//! JSON Lines: one object per drop, in recording order, streamed.
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::ops::ControlFlow;

use serde::Serialize;

use crate::pipeline::Error;
use crate::pipeline::{
    event::Drop,
    names::{Container, Names, Pod},
    sink::{Moment, Sink},
    tcp::{self, TcpEvent, TcpKind},
    xdp,
};
use crate::record::Header;

use super::{push_location, wall_ns, Export, ExportError, ExportStats};

/// One drop as a line; the field names are a stable schema.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// `drop`; the last line of a live run, when lines are missing, is a `summary`.
    #[serde(rename = "type")]
    kind: &'static str,
    /// Wall clock, RFC 3339 with nanoseconds (UTC): `time_ns` exactly, as a string.
    time: String,
    /// Wall clock, nanoseconds since the Unix epoch (above 2^53: not exact as a double).
    time_ns: u64,
    /// `CLOCK_BOOTTIME` of the recording machine.
    boottime_ns: u64,
    /// `function+0xoff [module]`, or the address.
    location: &'a str,
    address: String,
    function: Option<&'a str>,
    offset: Option<u64>,
    module: Option<&'a str>,
    /// `None` when the recording has no reason names.
    reason: Option<String>,
    reason_code: u32,
    family: Option<&'static str>,
    protocol: Option<String>,
    saddr: Option<IpAddr>,
    daddr: Option<IpAddr>,
    sport: Option<u16>,
    dport: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    ifindex: u32,
    interface: Option<&'a str>,
    netns: u32,
    namespace: Option<&'a str>,
    /// The container of the namespace, `null` when none.
    container: Option<&'a Container>,
    /// Its Kubernetes pod, `null` when none.
    pod: Option<&'a Pod>,
    /// Length of the network packet (from its IP header on), wherever it was dropped.
    len: u32,
    /// Bytes of a layer-2 header the packet still had where it was dropped (14 for
    /// Ethernet on transmit); 0 where it had none.
    l2_len: u8,
    cpu: u32,
    /// Packet bytes the recording kept.
    packet_bytes: usize,
}

/// One TCP retransmit or reset as a line: `tcp_retransmit`, `tcp_reset_sent`,
/// `tcp_reset_received`. A retransmit says what explains it: the drop of the same socket
/// seen here shortly before (`drop_on_host`, with that drop's group), or none
/// (`beyond_host`: the network or the peer).
#[derive(Debug, Serialize)]
struct TcpLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    time_ns: u64,
    boottime_ns: u64,
    family: &'static str,
    /// This host's end of the connection, and the peer's.
    local: IpAddr,
    local_port: u16,
    remote: IpAddr,
    remote_port: u16,
    netns: u32,
    namespace: Option<&'a str>,
    container: Option<&'a Container>,
    pod: Option<&'a Pod>,
    /// Retransmit: segments it carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u32>,
    /// Retransmit: the error of a transmit that did not go out (`null`: it went out, or
    /// the kernel does not say).
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Option<i32>>,
    /// Retransmit: `drop_on_host` or `beyond_host`.
    #[serde(skip_serializing_if = "Option::is_none")]
    explained: Option<&'static str>,
    /// Retransmit after a drop here: that drop's group.
    #[serde(skip_serializing_if = "Option::is_none")]
    drop: Option<Option<TcpDropLine<'a>>>,
    /// Reset sent: the kernel's reason (`unknown` before 6.10) and its number.
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_reason_code: Option<Option<u32>>,
}

/// The XDP verdicts of one group, counted (not events): one line each at the end
/// (`xdp_verdicts`), with the program, the verdict and the exact count.
#[derive(Debug, Serialize)]
struct XdpLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// `xdp drop_udp_6001 (id 42)`.
    location: String,
    program_id: u32,
    program: Option<&'a str>,
    /// `XDP_DROP`, `XDP_ABORTED`.
    reason: String,
    count: u64,
    ifindex: u32,
    interface: Option<&'a str>,
    netns: u32,
    namespace: Option<&'a str>,
    /// Boot-time nanoseconds of the first and last readings that saw the count grow.
    first_boottime_ns: u64,
    last_boottime_ns: u64,
}

/// The drop that explains a retransmit: the fields of its group, and when it was.
#[derive(Debug, Serialize)]
struct TcpDropLine<'a> {
    boottime_ns: u64,
    location: String,
    address: String,
    reason: Option<String>,
    reason_code: u32,
    ifindex: u32,
    interface: Option<&'a str>,
    netns: u32,
    namespace: Option<&'a str>,
}

/// Writes one JSON object per drop, a line each; counters are left out.
pub struct JsonlSink<W: Write> {
    out: BufWriter<W>,
    header: Header,
    location: String,
    stats: ExportStats,
    failed: Option<ExportError>,
    /// Live: every line goes out as it is written (log shippers read as it comes).
    flush_lines: bool,
    budget: Option<Budget>,
}

/// At most `per_second` lines a second of drop time; the rest are counted.
#[derive(Debug, Clone, Copy)]
struct Budget {
    per_second: u64,
    second: u64,
    used: u64,
    left_out: u64,
    /// Left out when last said on stderr.
    said: u64,
}

impl<W: Write> JsonlSink<W> {
    pub fn new(header: &Header, out: W) -> JsonlSink<W> {
        JsonlSink {
            out: BufWriter::with_capacity(1 << 16, out),
            header: header.clone(),
            location: String::new(),
            stats: ExportStats::none(),
            failed: None,
            flush_lines: false,
            budget: None,
        }
    }

    /// For a live run: each line flushed as written, at most `per_second` a second.
    pub fn live(header: &Header, out: W, per_second: Option<u64>) -> JsonlSink<W> {
        JsonlSink {
            flush_lines: true,
            budget: per_second.map(|per_second| Budget {
                per_second,
                second: 0,
                used: 0,
                left_out: 0,
                said: 0,
            }),
            ..JsonlSink::new(header, out)
        }
    }

    /// Whether the budget has room for a drop at `timestamp_ns`; counts it either way.
    fn within_budget(&mut self, timestamp_ns: u64) -> bool {
        let Some(b) = self.budget.as_mut() else {
            return true;
        };
        let second = timestamp_ns / 1_000_000_000;
        // Timestamps from different CPUs come a little out of order: only a later
        // second starts a new budget.
        if second > b.second {
            (b.second, b.used) = (second, 0);
        }
        if b.used < b.per_second {
            b.used += 1;
            true
        } else {
            b.left_out += 1;
            false
        }
    }

    fn write(&mut self, drop: &Drop, packet_bytes: usize, names: &Names) -> std::io::Result<()> {
        let group = drop.group();
        let loc = names.locations.get(&drop.location);
        self.location.clear();
        push_location(&mut self.location, names, drop.location);
        let p = &drop.packet;
        let time_ns = wall_ns(&self.header, drop.timestamp_ns);
        let line = Line {
            kind: "drop",
            time: crate::format::rfc3339_ns(time_ns),
            time_ns,
            boottime_ns: drop.timestamp_ns,
            location: &self.location,
            address: format!("{:#x}", drop.location),
            function: loc.and_then(|l| l.function.as_deref()),
            offset: loc.and_then(|l| l.offset),
            module: loc.and_then(|l| l.module.as_deref()),
            reason: names.reason(drop.reason),
            reason_code: drop.reason,
            family: group.family(),
            protocol: group.protocol(),
            saddr: p.addrs.map(|(s, _)| s),
            daddr: p.addrs.map(|(_, d)| d),
            sport: p.ports.map(|(s, _)| s),
            dport: p.ports.map(|(_, d)| d),
            icmp_type: p.icmp.map(|(t, _)| t),
            icmp_code: p.icmp.map(|(_, c)| c),
            ifindex: drop.ifindex,
            interface: names.interface_name(drop.netns, drop.ifindex),
            netns: drop.netns.inode,
            namespace: names.namespace_name(drop.netns),
            container: names.workload(drop.netns).map(|w| &w.container),
            pod: names.workload(drop.netns).and_then(|w| w.pod.as_ref()),
            len: drop.len,
            l2_len: drop.l2_len,
            cpu: drop.cpu,
            packet_bytes,
        };
        serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")
    }

    /// After a line was written: flushed where lines are (live), or the first error kept
    /// and the run stopped.
    fn line_done(&mut self, written: std::io::Result<()>) -> ControlFlow<()> {
        let done = written.and_then(|()| {
            if self.flush_lines {
                self.out.flush()?;
            }
            Ok(())
        });
        match done {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.failed = Some(e.into());
                ControlFlow::Break(())
            }
        }
    }

    /// One `xdp_verdicts` line per group of XDP verdicts (they are counted, never events).
    fn write_xdp(&mut self, at: &Moment<'_>) -> std::io::Result<()> {
        let names = at.names;
        for (g, s) in at.agg.groups() {
            let Some(program_id) = xdp::program_of(g.location) else {
                continue;
            };
            let line = XdpLine {
                kind: "xdp_verdicts",
                location: names.location_display(g.location),
                program_id,
                program: names
                    .locations
                    .get(&g.location)
                    .and_then(|l| l.function.as_deref())
                    .and_then(|f| f.strip_prefix("xdp ")),
                reason: xdp::xdp_reason_name(g.reason)
                    .unwrap_or_else(|| xdp::verdict_name(g.reason)),
                count: s.count(),
                ifindex: g.ifindex,
                interface: names.interface_name(g.netns, g.ifindex),
                netns: g.netns.inode,
                namespace: names.namespace_name(g.netns),
                first_boottime_ns: s.first_ns,
                last_boottime_ns: s.last_ns,
            };
            serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::from)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_tcp(&mut self, ev: &TcpEvent, names: &Names) -> std::io::Result<()> {
        let time_ns = wall_ns(&self.header, ev.timestamp_ns);
        let f = &ev.flow;
        let retransmit = ev.kind == TcpKind::Retransmit;
        let cause = tcp::explain(ev.timestamp_ns, ev.drop.as_ref());
        let drop = cause.map(|c| TcpDropLine {
            boottime_ns: ev.drop.map_or(0, |m| m.timestamp_ns),
            location: names.location_display(c.location),
            address: format!("{:#x}", c.location),
            reason: names.reason(c.reason),
            reason_code: c.reason,
            ifindex: c.ifindex,
            interface: names.interface_name(c.netns, c.ifindex),
            netns: c.netns.inode,
            namespace: names.namespace_name(c.netns),
        });
        let sent = ev.kind == TcpKind::ResetSent;
        let line = TcpLine {
            kind: match ev.kind {
                TcpKind::Retransmit => "tcp_retransmit",
                TcpKind::ResetSent => "tcp_reset_sent",
                TcpKind::ResetReceived => "tcp_reset_received",
            },
            time: crate::format::rfc3339_ns(time_ns),
            time_ns,
            boottime_ns: ev.timestamp_ns,
            family: if f.local.is_ipv4() { "ipv4" } else { "ipv6" },
            local: f.local,
            local_port: f.lport,
            remote: f.remote,
            remote_port: ev.rport,
            netns: f.netns.inode,
            namespace: names.namespace_name(f.netns),
            container: names.workload(f.netns).map(|w| &w.container),
            pod: names.workload(f.netns).and_then(|w| w.pod.as_ref()),
            segments: retransmit.then_some(ev.segs),
            failed: retransmit.then_some(ev.failed),
            explained: retransmit.then(|| {
                if cause.is_some() {
                    "drop_on_host"
                } else {
                    "beyond_host"
                }
            }),
            drop: retransmit.then_some(drop),
            reset_reason: sent.then(|| names.reset_reason(ev.reset_reason)),
            reset_reason_code: sent.then_some(ev.reset_reason),
        };
        serde_json::to_writer(&mut self.out, &line).map_err(std::io::Error::from)?;
        self.out.write_all(b"\n")
    }
}

impl<W: Write> Sink for JsonlSink<W> {
    fn drop(&mut self, drop: &Drop, bytes: &[u8], names: &Names) -> ControlFlow<()> {
        if !self.within_budget(drop.timestamp_ns) {
            return ControlFlow::Continue(());
        }
        let written = self.write(drop, bytes.len(), names);
        if self.line_done(written).is_break() {
            return ControlFlow::Break(());
        }
        self.stats.packets += 1;
        if bytes.is_empty() {
            self.stats.without_bytes += 1;
        }
        ControlFlow::Continue(())
    }

    /// TCP events are few next to drops: every one is a line, outside the budget.
    fn tcp(&mut self, event: &TcpEvent, names: &Names) -> ControlFlow<()> {
        let written = self.write_tcp(event, names);
        self.line_done(written)
    }

    fn tick(&mut self, _at: &Moment<'_>) -> ControlFlow<()> {
        if let Some(b) = self.budget.as_mut() {
            if b.left_out > b.said {
                eprintln!(
                    "droptrace: {} drops left out of the lines (--max-events-per-second {}), {} in all; counts stay exact",
                    b.left_out - b.said,
                    b.per_second,
                    b.left_out
                );
                b.said = b.left_out;
            }
        }
        ControlFlow::Continue(())
    }

    /// The last line of a live run, when lines are missing (left out by the budget, lost
    /// in the ring buffer, TCP events lost or skipped by the kernel): how many, beside the
    /// exact total.
    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        if let Err(e) = self.write_xdp(at) {
            self.failed.get_or_insert(e.into());
        }
        let c = at.agg.counters();
        let tcp = at.agg.tcp().counters;
        let left_out = self.budget.map_or(0, |b| b.left_out);
        if self.flush_lines && left_out + c.lost + tcp.lost + tcp.missed > 0 {
            let last = serde_json::json!({
                "type": "summary",
                "left_out": left_out,
                "total": c.matched,
                "lost_events": c.lost,
                "tcp_lost_events": tcp.lost,
                "tcp_missed": tcp.missed,
            });
            if let Some(b) = self.budget.filter(|b| b.left_out > b.said) {
                eprintln!(
                    "droptrace: {} drops left out of the lines in all (--max-events-per-second {}); counts stay exact",
                    b.left_out, b.per_second
                );
            }
            if let Err(e) = writeln!(self.out, "{last}") {
                self.failed.get_or_insert(e.into());
            }
        }
        super::finish(self.failed.take(), &mut self.out)
    }
}

impl<W: Write> Export for JsonlSink<W> {
    fn stats(&self) -> ExportStats {
        self.stats
    }
}
