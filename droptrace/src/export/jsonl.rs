//! JSON Lines: one object per drop, in recording order, streamed.
use std::io::{BufWriter, Read, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::record::{self, Item};

use super::{push_location, wall_ns, ExportError, ExportStats, Reasons};

/// One drop as a line; the field names are a stable schema.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// Wall clock, nanoseconds since the Unix epoch.
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
    /// Length of the packet (skb) when dropped.
    len: u32,
    cpu: u32,
    /// Packet bytes the recording kept.
    packet_bytes: usize,
}

/// Writes one JSON object per recorded drop, a line each; counters are left out.
pub fn write_jsonl<R: Read, W: Write>(
    reader: &mut record::Reader<R>,
    out: W,
) -> Result<ExportStats, ExportError> {
    let header = reader.header().clone();
    let reasons = Reasons::of(&header);
    let mut out = BufWriter::with_capacity(1 << 16, out);
    let mut location = String::new();
    let mut stats = ExportStats {
        packets: 0,
        without_bytes: 0,
        interfaces: 0,
        status: record::Status::Reading,
    };
    loop {
        let (drop, packet_bytes) = match reader.next_item()? {
            None => break,
            Some(Item::Counters(_)) => continue,
            Some(Item::Drop(drop, bytes)) => (drop, bytes.len()),
        };
        let names = reader.names();
        let group = drop.group();
        let loc = names.location(drop.location);
        location.clear();
        push_location(&mut location, names, drop.location);
        let p = &drop.packet;
        let line = Line {
            time_ns: wall_ns(&header, drop.timestamp_ns),
            boottime_ns: drop.timestamp_ns,
            location: &location,
            address: format!("{:#x}", drop.location),
            function: loc.and_then(|l| l.function.as_deref()),
            offset: loc.and_then(|l| l.offset),
            module: loc.and_then(|l| l.module.as_deref()),
            reason: reasons.name(drop.reason),
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
            interface: names.interface(drop.netns, drop.ifindex),
            netns: drop.netns,
            namespace: names.namespace(drop.netns),
            len: drop.len,
            cpu: drop.cpu,
            packet_bytes,
        };
        serde_json::to_writer(&mut out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        stats.packets += 1;
        if packet_bytes == 0 {
            stats.without_bytes += 1;
        }
    }
    out.flush()?;
    stats.status = reader.status();
    Ok(stats)
}
