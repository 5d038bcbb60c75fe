//! Writing a recording, one whole block at a time.
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions, Permissions};
use std::hash::Hash;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::pipeline::event::{Drop, Netns};
use crate::pipeline::names::{Location, Workload};
use crate::pipeline::tcp::TcpEvent;

use super::format::{self as f, Context};
use super::{Counters, Header, WriteError};

/// Events per block, at most. The caller's periodic `flush` bounds what a crash loses.
const EVENTS_PER_BLOCK: usize = 16_384;
/// A block is written once its payload reaches this size; far below `MAX_BLOCK` so that
/// one more event (at most `MAX_SNAPLEN` bytes of packet) always fits.
const BLOCK_BYTES: usize = 1 << 20;

/// Writes drops, counters and names to a recording.
///
/// Nothing reaches the file until a block is full or [`Writer::flush`] is called; the
/// file ends cleanly only with [`Writer::finish`].
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    snaplen: usize,
    /// Each block buffer starts with `FRAME_LEN` bytes reserved for its frame.
    events: Vec<u8>,
    names: Vec<u8>,
    /// TCP events waiting for their block.
    tcp: Vec<u8>,
    block: EventEncoder,
    total_events: u64,
    locations: HashSet<u64>,
    interfaces: HashMap<(Netns, u32), String>,
    namespaces: HashMap<Netns, String>,
    workloads: HashMap<Netns, Workload>,
}

impl Writer<File> {
    /// Creates (or replaces) the file at `path`, readable by its owner only: packet
    /// headers and bytes can be private.
    pub fn create(path: &Path, header: &Header) -> Result<Writer<File>, WriteError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // `mode` applies only to a new file; a replaced one keeps its mode otherwise.
        file.set_permissions(Permissions::from_mode(0o600))?;
        Writer::new(file, header)
    }
}

impl<W: Write> Writer<W> {
    /// Writes the preamble and header at once. The header's droptrace version is
    /// replaced by this droptrace's.
    pub fn new(mut out: W, header: &Header) -> Result<Writer<W>, WriteError> {
        if header.snaplen > f::MAX_SNAPLEN {
            return Err(WriteError::SnaplenTooLarge(header.snaplen));
        }
        let header = Header {
            droptrace_version: env!("CARGO_PKG_VERSION").to_owned(),
            ..header.clone()
        };
        let mut block = vec![0; f::PREAMBLE_LEN + f::FRAME_LEN];
        block[..8].copy_from_slice(&f::MAGIC);
        block[8..12].copy_from_slice(&f::FORMAT_VERSION.to_le_bytes());
        f::encode_header(&mut block, &header).map_err(WriteError::StringTooLong)?;
        f::seal(&mut block[f::PREAMBLE_LEN..], f::HEADER);
        out.write_all(&block)?;
        Ok(Writer {
            out,
            snaplen: header.snaplen as usize,
            events: empty_block(),
            names: empty_block(),
            tcp: empty_block(),
            block: EventEncoder::default(),
            total_events: 0,
            locations: HashSet::new(),
            interfaces: HashMap::new(),
            namespaces: HashMap::new(),
            workloads: HashMap::new(),
        })
    }

    /// Whether the symbol of `address` is already recorded (or waiting to be).
    pub fn has_location(&self, address: u64) -> bool {
        self.locations.contains(&address)
    }

    /// Records the symbol of a drop location; call it before the first drop there.
    /// Later calls for the same address are ignored.
    pub fn add_location(&mut self, address: u64, location: &Location) -> Result<(), WriteError> {
        if self.locations.contains(&address) {
            return Ok(());
        }
        self.add_name(|out| f::encode_location(out, address, location))?;
        self.locations.insert(address);
        Ok(())
    }

    /// Records an interface's name (again, if it changed).
    pub fn add_interface(
        &mut self,
        netns: Netns,
        ifindex: u32,
        name: &str,
    ) -> Result<(), WriteError> {
        if self.interfaces.get(&(netns, ifindex)).map(String::as_str) == Some(name) {
            return Ok(());
        }
        self.add_name(|out| {
            out.push(f::NAME_INTERFACE);
            f::put_netns(out, netns);
            f::put_varint(out, u64::from(ifindex));
            f::put_str(out, name)
        })?;
        self.interfaces.insert((netns, ifindex), name.to_owned());
        Ok(())
    }

    /// Records the container and pod of a network namespace (again, if they changed).
    pub fn add_workload(&mut self, netns: Netns, workload: &Workload) -> Result<(), WriteError> {
        if self.workloads.get(&netns) == Some(workload) {
            return Ok(());
        }
        self.add_name(|out| f::encode_workload(out, netns, workload))?;
        self.workloads.insert(netns, workload.clone());
        Ok(())
    }

    /// Records a network namespace's label (again, if it changed).
    pub fn add_namespace(&mut self, netns: Netns, label: &str) -> Result<(), WriteError> {
        if self.namespaces.get(&netns).map(String::as_str) == Some(label) {
            return Ok(());
        }
        self.add_name(|out| {
            out.push(f::NAME_NAMESPACE);
            f::put_netns(out, netns);
            f::put_str(out, label)
        })?;
        self.namespaces.insert(netns, label.to_owned());
        Ok(())
    }

    /// Adds a drop and the first bytes of its packet (cut to the header's snaplen).
    pub fn write_drop(&mut self, drop: &Drop, packet: &[u8]) -> Result<(), WriteError> {
        let packet = &packet[..packet.len().min(self.snaplen)];
        self.block.encode(&mut self.events, drop, packet);
        self.total_events += 1;
        if self.block.count >= EVENTS_PER_BLOCK || self.events.len() >= BLOCK_BYTES {
            self.write_events()?;
        }
        Ok(())
    }

    /// Adds a TCP retransmit or reset; the names of its drop's location and place go in
    /// before it, like a drop's.
    pub fn write_tcp(&mut self, event: &TcpEvent) -> Result<(), WriteError> {
        f::encode_tcp(&mut self.tcp, event);
        if self.tcp.len() >= BLOCK_BYTES {
            self.write_events()?;
        }
        Ok(())
    }

    /// Writes the drops added so far, then the counters.
    pub fn write_counters(&mut self, counters: &Counters) -> Result<(), WriteError> {
        self.write_events()?;
        let mut block = empty_block();
        f::encode_counters(&mut block, counters).map_err(WriteError::StringTooLong)?;
        if block.len() > f::MAX_BLOCK {
            return Err(WriteError::TooManyGroups(counters.lost_groups.len()));
        }
        self.write_block(&mut block, f::COUNTERS)
    }

    /// Writes everything added so far to the file.
    pub fn flush(&mut self) -> Result<(), WriteError> {
        self.write_events()?;
        self.out.flush()?;
        Ok(())
    }

    /// Writes everything and ends the recording cleanly; gives back the output.
    pub fn finish(mut self) -> Result<W, WriteError> {
        self.write_events()?;
        let mut block = empty_block();
        f::put_varint(&mut block, self.total_events);
        self.write_block(&mut block, f::END)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Drops added so far.
    pub fn events(&self) -> u64 {
        self.total_events
    }

    /// The output, as far as it was written.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Adds one entry to the pending names block; an entry that fails (a name too long)
    /// leaves nothing behind.
    fn add_name(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), usize>,
    ) -> Result<(), WriteError> {
        let mark = self.names.len();
        if let Err(len) = encode(&mut self.names) {
            self.names.truncate(mark);
            return Err(WriteError::StringTooLong(len));
        }
        if self.names.len() >= BLOCK_BYTES {
            self.write_names()?;
        }
        Ok(())
    }

    fn write_names(&mut self) -> Result<(), WriteError> {
        if self.names.len() > f::FRAME_LEN {
            let mut block = std::mem::replace(&mut self.names, empty_block());
            self.write_block(&mut block, f::NAMES)?;
        }
        Ok(())
    }

    /// Writes pending names, then pending TCP events and drops: names come before their
    /// first use.
    fn write_events(&mut self) -> Result<(), WriteError> {
        self.write_names()?;
        if self.tcp.len() > f::FRAME_LEN {
            let mut block = std::mem::replace(&mut self.tcp, empty_block());
            self.write_block(&mut block, f::TCP)?;
        }
        if self.block.count > 0 {
            let mut block = std::mem::take(&mut self.events);
            let result = self.write_block(&mut block, f::EVENTS);
            block.truncate(f::FRAME_LEN);
            self.events = block;
            self.block.reset();
            result?;
        }
        Ok(())
    }

    fn write_block(&mut self, block: &mut [u8], kind: u8) -> Result<(), WriteError> {
        f::seal(block, kind);
        self.out.write_all(block)?;
        Ok(())
    }
}

fn empty_block() -> Vec<u8> {
    vec![0; f::FRAME_LEN]
}

/// Encodes the events of one block against what the block has already said: contexts
/// and addresses by index, the timestamp as a delta, repeated fields as flags.
#[derive(Debug, Default)]
struct EventEncoder {
    count: usize,
    contexts: Table<Context>,
    addrs: Table<IpAddr>,
    prev_ts: u64,
    prev_context: Option<Context>,
    prev_len: Option<u64>,
    prev_addrs: Option<(IpAddr, IpAddr)>,
    prev_dport: Option<u16>,
}

impl EventEncoder {
    fn reset(&mut self) {
        self.count = 0;
        self.contexts.clear();
        self.addrs.clear();
        self.prev_ts = 0;
        self.prev_context = None;
        self.prev_len = None;
        self.prev_addrs = None;
        self.prev_dport = None;
    }

    fn encode(&mut self, out: &mut Vec<u8>, d: &Drop, packet: &[u8]) {
        let p = &d.packet;
        let context = Context {
            location: d.location,
            reason: d.reason,
            netns: d.netns,
            ifindex: d.ifindex,
            cpu: d.cpu,
            ethertype: p.ethertype,
            ip_proto: p.ip_proto,
        };
        let mut flags = 0;
        if p.addrs.is_some() {
            flags |= f::EV_ADDRS;
            if p.addrs == self.prev_addrs {
                flags |= f::EV_SAME_ADDRS;
            }
        }
        if let Some((_, dport)) = p.ports {
            flags |= f::EV_PORTS;
            if Some(dport) == self.prev_dport {
                flags |= f::EV_SAME_DPORT;
            }
        }
        if p.icmp.is_some() {
            flags |= f::EV_ICMP;
        }
        if !packet.is_empty() {
            flags |= f::EV_BYTES;
        }
        if self.prev_context == Some(context) {
            flags |= f::EV_SAME_CONTEXT;
        }
        let len = f::pack_len(d.len, d.l2_len);
        if self.prev_len == Some(len) {
            flags |= f::EV_SAME_LEN;
        }
        out.push(flags);
        let delta = d.timestamp_ns.wrapping_sub(self.prev_ts) as i64;
        f::put_varint(out, f::zigzag(delta));
        if flags & f::EV_SAME_CONTEXT == 0 {
            let quick = context.location
                ^ u64::from(context.reason) << 8
                ^ u64::from(context.cpu) << 24
                ^ u64::from(context.ifindex) << 40
                ^ u64::from(context.netns.inode) << 20
                ^ context.netns.cookie.rotate_left(32)
                ^ u64::from(context.ethertype)
                ^ u64::from(context.ip_proto.unwrap_or(0)) << 56;
            let (index, new) = self.contexts.index(context, quick);
            f::put_varint(out, u64::from(index));
            if new {
                f::put_context(out, &context);
            }
        }
        if flags & f::EV_SAME_LEN == 0 {
            f::put_varint(out, len);
        }
        if let Some((src, dst)) = p.addrs.filter(|_| flags & f::EV_SAME_ADDRS == 0) {
            self.put_addr(out, src);
            self.put_addr(out, dst);
        }
        if let Some((sport, dport)) = p.ports {
            out.extend_from_slice(&sport.to_le_bytes());
            if flags & f::EV_SAME_DPORT == 0 {
                out.extend_from_slice(&dport.to_le_bytes());
            }
        }
        if let Some((kind, code)) = p.icmp {
            out.extend_from_slice(&[kind, code]);
        }
        if !packet.is_empty() {
            f::put_varint(out, packet.len() as u64);
            out.extend_from_slice(packet);
        }
        self.count += 1;
        self.prev_ts = d.timestamp_ns;
        self.prev_context = Some(context);
        self.prev_len = Some(len);
        if p.addrs.is_some() {
            self.prev_addrs = p.addrs;
        }
        if let Some((_, dport)) = p.ports {
            self.prev_dport = Some(dport);
        }
    }

    fn put_addr(&mut self, out: &mut Vec<u8>, addr: IpAddr) {
        let quick = match addr {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let bits = a.to_bits();
                (bits >> 64) as u64 ^ bits as u64
            }
        };
        let (index, new) = self.addrs.index(addr, quick);
        f::put_varint(out, u64::from(index));
        if new {
            f::put_addr(out, addr);
        }
    }
}

/// Slots of a [`Table`]'s cache (a power of two).
const CACHE_SLOTS: usize = 256;

/// A block's values by index, first seen first. A small direct-mapped cache sits in
/// front of the map: streams repeat a few values, and the map's hashing (kept, as packet
/// fields are chosen by whoever sends the packets) is the slow part.
#[derive(Debug)]
struct Table<K> {
    map: HashMap<K, u32>,
    cache: Vec<Option<(K, u32)>>,
}

impl<K> Default for Table<K> {
    fn default() -> Table<K> {
        Table {
            map: HashMap::new(),
            cache: (0..CACHE_SLOTS).map(|_| None).collect(),
        }
    }
}

impl<K: Copy + Eq + Hash> Table<K> {
    fn clear(&mut self) {
        self.map.clear();
        self.cache.fill(None);
    }

    /// The index of `key`, and whether the block meets it for the first time; `quick`
    /// is any cheap mix of the key's bits, to pick a cache slot.
    fn index(&mut self, key: K, quick: u64) -> (u32, bool) {
        let slot = (quick.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % CACHE_SLOTS;
        if let Some((cached, index)) = self.cache[slot] {
            if cached == key {
                return (index, false);
            }
        }
        let next = self.map.len() as u32;
        let index = *self.map.entry(key).or_insert(next);
        self.cache[slot] = Some((key, index));
        (index, index == next)
    }
}
