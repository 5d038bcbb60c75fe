//! The bytes of a recording: framing, varints, strings, and the encoding of each block.
//!
//! ```text
//! file   = MAGIC (8) | format version (u32 LE) | block*
//! block  = kind (u8) | payload length (u32 LE) | crc32 of payload (u32 LE)
//!          | frame check: low 16 bits of the crc32 of the 9 bytes before (u16 LE) | payload
//! ```
//! Integers are LEB128 varints unless said otherwise; strings are a varint length and
//! UTF-8 bytes. The frame check tells a damaged length (an error) from a file cut
//! within a block (a truncated recording). Both ends of the encoding live here, next to
//! each other, so they agree: the encoders in this file, the decoding `Cursor` in
//! `format/decode.rs` beside it.
use std::net::IpAddr;

use crate::pipeline::aggregate::KernelCounters;
use crate::pipeline::event::{Group, Netns};
use crate::pipeline::names::{Container, Location, Pod, Workload};
use crate::pipeline::tcp::{DropCause, DropMark, TcpCounters, TcpEvent, TcpFlow, TcpKind};

use super::{Counters, Header, XdpCounts};
use crate::pipeline::xdp::XdpProgram;

pub const MAGIC: [u8; 8] = *b"DROPTRC\n";
/// 2 added the `NAME_WORKLOAD` entry (containers and pods). A reader of version 1 would
/// call that entry corrupt, so the version says it is there. 3: an event's length is the
/// network packet's, with the layer-2 bytes the skb held beside it ([`pack_len`]) (before,
/// it was the skb's length, whatever the drop site); and every namespace's inode is
/// followed by its cookie (a varint, 0 when unknown): the kernel reuses inodes, so a
/// namespace is both. Files of 1 and 2 are read as cookie 0. 4: TCP retransmits and resets
/// (`TCP` blocks), the TCP programs' counters at the end of a `COUNTERS` block, and the
/// kernel's reset reasons at the end of the header; files before it have no TCP figures.
/// 5: the XDP programs' verdicts (programs and counted groups) at the end of a `COUNTERS`
/// block. This reader takes all five.
pub const FORMAT_VERSION: u32 = 5;
/// The first version whose namespaces carry a cookie.
pub const VERSION_COOKIES: u32 = 3;
/// The first version with TCP events and counters.
pub const VERSION_TCP: u32 = 4;
/// The first version with XDP verdicts.
pub const VERSION_XDP: u32 = 5;

/// An event's length as version 3 stores it: the packet's length and its layer-2 bytes.
pub fn pack_len(len: u32, l2_len: u8) -> u64 {
    u64::from(len) << 8 | u64::from(l2_len)
}

pub fn unpack_len(packed: u64) -> Option<(u32, u8)> {
    Some((u32::try_from(packed >> 8).ok()?, packed as u8))
}
pub const PREAMBLE_LEN: usize = 12;
pub const FRAME_LEN: usize = 11;
/// No block is larger; a reader refuses longer ones before reading them.
pub const MAX_BLOCK: usize = 16 << 20;
pub const MAX_STRING: usize = 16 << 10;
/// Packet bytes kept per event, at most.
pub const MAX_SNAPLEN: u32 = 65_535;
/// Entries a reader keeps in each name table, however many blocks define them.
pub const MAX_NAMES: usize = 1 << 20;

/// Kinds of block.
pub const HEADER: u8 = 1;
pub const NAMES: u8 = 2;
pub const EVENTS: u8 = 3;
pub const COUNTERS: u8 = 4;
pub const END: u8 = 5;
/// TCP retransmits and resets (format version 4).
pub const TCP: u8 = 6;

/// Entries of a `NAMES` block.
pub const NAME_LOCATION: u8 = 1;
pub const NAME_INTERFACE: u8 = 2;
pub const NAME_NAMESPACE: u8 = 3;
/// The container and pod of a namespace (format version 2).
pub const NAME_WORKLOAD: u8 = 4;

/// Fields of a `NAME_WORKLOAD` entry beyond the container.
const WORKLOAD_POD: u8 = 1;
const WORKLOAD_POD_UID: u8 = 2;

/// Flags of one event in an `EVENTS` block.
pub const EV_ADDRS: u8 = 1;
pub const EV_PORTS: u8 = 2;
pub const EV_ICMP: u8 = 4;
pub const EV_BYTES: u8 = 8;
pub const EV_SAME_CONTEXT: u8 = 16;
pub const EV_SAME_LEN: u8 = 32;
/// Same source and destination as the previous event (with `EV_ADDRS`).
pub const EV_SAME_ADDRS: u8 = 64;
/// Same destination port as the previous event (with `EV_PORTS`).
pub const EV_SAME_DPORT: u8 = 128;

/// Flags of one TCP event in a `TCP` block.
const TCP_FAILED: u8 = 1;
const TCP_RESET_REASON: u8 = 2;
const TCP_DROP: u8 = 4;

/// The TCP programs' counters follow in a `COUNTERS` block (they were attached): retransmits,
/// resets sent, resets received, lost events, missed runs (varints).
const COUNTERS_TCP: u8 = 1;
/// TCP tracing was turned off (`--no-tcp`): no counters follow.
const COUNTERS_TCP_OFF: u8 = 2;
/// The XDP programs' verdicts follow, after the TCP fields (format version 5): programs
/// (`id | name | untraced: 0, or 1 and why`), then groups ([`encode_group`] and count).
const COUNTERS_XDP: u8 = 1;

/// What a run of drops shares, stored once per block and then referred to by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Context {
    pub location: u64,
    pub reason: u32,
    pub netns: Netns,
    pub ifindex: u32,
    pub cpu: u32,
    pub ethertype: u16,
    pub ip_proto: Option<u8>,
}

/// A fault in a block's payload, at a byte offset within the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub at: usize,
    pub what: &'static str,
}

// ---- encoding ----

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Fails (rather than writing what no reader takes) on strings over `MAX_STRING`.
pub fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), usize> {
    if s.len() > MAX_STRING {
        return Err(s.len());
    }
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

pub fn put_addr(out: &mut Vec<u8>, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.octets());
        }
    }
}

/// A namespace: its inode, then its cookie; [`Cursor::netns`] is the inverse.
pub fn put_netns(out: &mut Vec<u8>, netns: Netns) {
    put_varint(out, u64::from(netns.inode));
    put_varint(out, netns.cookie);
}

pub fn put_context(out: &mut Vec<u8>, c: &Context) {
    out.extend_from_slice(&c.location.to_le_bytes());
    put_varint(out, u64::from(c.reason));
    put_netns(out, c.netns);
    for v in [c.ifindex, c.cpu, u32::from(c.ethertype)] {
        put_varint(out, u64::from(v));
    }
    put_varint(out, c.ip_proto.map_or(0, |p| u64::from(p) + 1));
}

/// The one place a [`Group`] becomes bytes; [`Cursor::group`] is its inverse.
pub fn encode_group(out: &mut Vec<u8>, g: &Group) {
    out.extend_from_slice(&g.location.to_le_bytes());
    for v in [g.reason, u32::from(g.ethertype)] {
        put_varint(out, u64::from(v));
    }
    put_netns(out, g.netns);
    put_varint(out, u64::from(g.ifindex));
    put_varint(out, g.ip_proto.map_or(0, |p| u64::from(p) + 1));
    put_varint(out, g.dport.map_or(0, |p| u64::from(p) + 1));
}

pub fn encode_header(out: &mut Vec<u8>, h: &Header) -> Result<(), usize> {
    for s in [&h.droptrace_version, &h.kernel_release, &h.hostname] {
        put_str(out, s)?;
    }
    put_varint(out, h.boot_time_ns);
    put_varint(out, h.started_ns);
    put_str(out, &h.filters)?;
    put_varint(out, u64::from(h.snaplen));
    put_varint(out, h.reasons.len() as u64);
    for (code, name) in &h.reasons {
        put_varint(out, u64::from(*code));
        put_str(out, name)?;
    }
    put_varint(out, h.reset_reasons.len() as u64);
    for (code, name) in &h.reset_reasons {
        put_varint(out, u64::from(*code));
        put_str(out, name)?;
    }
    Ok(())
}

/// Fails on a program name or reason longer than `MAX_STRING`.
pub fn encode_counters(out: &mut Vec<u8>, c: &Counters) -> Result<(), usize> {
    let k = &c.kernel;
    for v in [
        c.at_ns,
        k.seen,
        k.matched,
        k.lost,
        k.lost_ungrouped,
        k.missed,
    ] {
        put_varint(out, v);
    }
    put_varint(out, c.malformed);
    put_varint(out, c.overflow);
    put_varint(out, c.lost_groups.len() as u64);
    for (group, n) in &c.lost_groups {
        encode_group(out, group);
        put_varint(out, *n);
    }
    match &c.tcp {
        Some(t) => {
            out.push(COUNTERS_TCP);
            for v in [
                t.retransmits,
                t.resets_sent,
                t.resets_received,
                t.lost,
                t.missed,
            ] {
                put_varint(out, v);
            }
        }
        None if c.tcp_off => out.push(COUNTERS_TCP_OFF),
        None => out.push(0),
    }
    encode_xdp(out, c.xdp.as_ref())
}

/// The XDP part of a `COUNTERS` block: `0`, or `COUNTERS_XDP | programs | groups`.
fn encode_xdp(out: &mut Vec<u8>, xdp: Option<&XdpCounts>) -> Result<(), usize> {
    let Some(x) = xdp else {
        out.push(0);
        return Ok(());
    };
    out.push(COUNTERS_XDP);
    put_varint(out, x.programs.len() as u64);
    for p in &x.programs {
        put_varint(out, u64::from(p.id));
        put_str(out, &p.name)?;
        match &p.untraced {
            None => out.push(0),
            Some(why) => {
                out.push(1);
                put_str(out, why)?;
            }
        }
    }
    put_varint(out, x.groups.len() as u64);
    for (group, n) in &x.groups {
        encode_group(out, group);
        put_varint(out, *n);
    }
    Ok(())
}

/// One TCP event: `kind (u8) | flags (u8) | timestamp | netns | local address | local
/// port (u16 LE) | remote address | remote port (u16 LE) | segments | [error (zigzag)] |
/// [reset reason] | [drop: timestamp | location (u64 LE) | reason | netns | ifindex]`.
/// Few next to drops: stored whole, without the events' deltas.
pub fn encode_tcp(out: &mut Vec<u8>, ev: &TcpEvent) {
    out.push(match ev.kind {
        TcpKind::Retransmit => 0,
        TcpKind::ResetSent => 1,
        TcpKind::ResetReceived => 2,
    });
    let flags = if ev.failed.is_some() { TCP_FAILED } else { 0 }
        | if ev.reset_reason.is_some() {
            TCP_RESET_REASON
        } else {
            0
        }
        | if ev.drop.is_some() { TCP_DROP } else { 0 };
    out.push(flags);
    put_varint(out, ev.timestamp_ns);
    put_netns(out, ev.flow.netns);
    put_addr(out, ev.flow.local);
    out.extend_from_slice(&ev.flow.lport.to_le_bytes());
    put_addr(out, ev.flow.remote);
    out.extend_from_slice(&ev.rport.to_le_bytes());
    put_varint(out, u64::from(ev.segs));
    if let Some(err) = ev.failed {
        put_varint(out, zigzag(i64::from(err)));
    }
    if let Some(reason) = ev.reset_reason {
        put_varint(out, u64::from(reason));
    }
    if let Some(mark) = &ev.drop {
        put_varint(out, mark.timestamp_ns);
        out.extend_from_slice(&mark.cause.location.to_le_bytes());
        put_varint(out, u64::from(mark.cause.reason));
        put_netns(out, mark.cause.netns);
        put_varint(out, u64::from(mark.cause.ifindex));
    }
}

pub fn encode_location(out: &mut Vec<u8>, address: u64, l: &Location) -> Result<(), usize> {
    out.push(NAME_LOCATION);
    out.extend_from_slice(&address.to_le_bytes());
    let present = u8::from(l.function.is_some())
        | u8::from(l.offset.is_some()) << 1
        | u8::from(l.module.is_some()) << 2;
    out.push(present);
    if let Some(f) = &l.function {
        put_str(out, f)?;
    }
    if let Some(o) = l.offset {
        put_varint(out, o);
    }
    if let Some(m) = &l.module {
        put_str(out, m)?;
    }
    put_str(out, &l.display)
}

/// `NAME_WORKLOAD | netns | container id, name, runtime | fields (u8) | [pod name,
/// namespace | [uid]]`.
pub fn encode_workload(out: &mut Vec<u8>, netns: Netns, w: &Workload) -> Result<(), usize> {
    out.push(NAME_WORKLOAD);
    put_netns(out, netns);
    let c = &w.container;
    for s in [&c.id, &c.name, &c.runtime] {
        put_str(out, s)?;
    }
    let fields = w.pod.as_ref().map_or(0, |p| {
        WORKLOAD_POD | if p.uid.is_some() { WORKLOAD_POD_UID } else { 0 }
    });
    out.push(fields);
    if let Some(p) = &w.pod {
        put_str(out, &p.name)?;
        put_str(out, &p.namespace)?;
        if let Some(uid) = &p.uid {
            put_str(out, uid)?;
        }
    }
    Ok(())
}

/// Fills in the frame reserved at the start of `block` (kind, length, checksums).
pub fn seal(block: &mut [u8], kind: u8) {
    let len = (block.len() - FRAME_LEN) as u32;
    block[0] = kind;
    block[1..5].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&block[FRAME_LEN..]);
    block[5..9].copy_from_slice(&crc.to_le_bytes());
    let check = frame_check(&block[..9]);
    block[9..11].copy_from_slice(&check.to_le_bytes());
}

pub fn frame_check(frame: &[u8]) -> u16 {
    crc32fast::hash(frame) as u16
}

mod decode;
pub use decode::Cursor;
