//! The droptrace kernel program: runs on every `skb:kfree_skb`, reads the dropped packet,
//! applies the user's filters, counts every match exactly and streams it to user space.
//!
//! Offsets of kernel structs come from user space (the running kernel's BTF) through the
//! read-only `CONFIG`, so one object serves many kernel versions.
#![no_std]
#![no_main]
// `atomic_xadd`: the BPF target has atomic adds but no compare-and-swap, so core leaves
// `AtomicU64::fetch_add` out; the intrinsic is the kernel's `lock xadd`.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::mem::size_of;

use aya_ebpf::cty::c_void;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_NOEXIST, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, bpf_probe_read_kernel, generated},
    macros::{btf_tracepoint, map, tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::warn;
use droptrace_common::*;

mod tcp;
mod xdp;

/// Filled in by the loader before the program is verified (a frozen `.rodata` global, so
/// the verifier prunes the filters that are off).
// SAFETY: no other symbol is named `CONFIG`; the loader finds the global by this name.
#[unsafe(no_mangle)]
static CONFIG: Config = Config::ZERO;

/// Resized by the loader (`--ring-buffer-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(4 << 20, 0);

#[map]
static COUNTERS: PerCpuArray<[u64; COUNTER_COUNT as usize]> = PerCpuArray::with_max_entries(1, 0);

/// Drops whose event could not be delivered, counted by group so group counts stay exact:
/// one value for all CPUs (atomic adds), allocated as groups come. (Made one entry small by
/// the loader when groups are counted in `GROUPS`.)
#[map]
static LOST_GROUPS: HashMap<GroupKey, u64> =
    HashMap::with_max_entries(LOST_GROUPS_MAX, BPF_F_NO_PREALLOC);

/// Every matched drop by group, with `CONFIG_COUNT_GROUPS` (sized by the loader): one
/// value for all CPUs, counted with atomic adds, its elements allocated as groups come, so
/// its memory follows the groups and not the CPUs.
#[map]
static GROUPS: HashMap<GroupKey, GroupCount> =
    HashMap::with_max_entries(GROUPS_MAX, BPF_F_NO_PREALLOC);

/// Each CPU's group cache (`CONFIG_GROUP_SLOTS`), at the CPU's number: a group found in
/// its slot is counted with a few plain loads and stores instead of a hash map lookup.
/// Not a per-CPU map, so user space reads only the CPUs whose counters moved (the loader
/// gives it one entry per possible CPU).
#[map]
static GROUP_SLOTS: Array<[Slot; SLOTS]> = Array::with_max_entries(1, 0);

/// The sampling epoch, advanced by user space as it reads: each group may send
/// `samples_per_group` events per epoch (per CPU while in a CPU's slot), each CPU
/// `samples_per_cpu`.
#[map]
static EPOCH: Array<u32> = Array::with_max_entries(1, 0);

const EVENT_SIZE: usize = size_of::<DropEvent>();

/// Where an event with packet bytes is put together (`--snaplen`); per CPU, like the
/// counters, as the program never runs twice at once on one CPU.
#[map]
static SCRATCH: PerCpuArray<[u8; EVENT_SIZE + SNAPLEN_MAX as usize + 1]> =
    PerCpuArray::with_max_entries(1, 0);

/// Each CPU's last XDP verdict, written by droptrace's fexit programs on the XDP programs
/// (built by user space, `probe/xdp.rs`): the dropped frame's `data_hard_start`, 0 after
/// any other verdict. On a veth and in generic mode the frame is an skb whose `head` that
/// is, freed through kfree_skb right after the program returns, on the same CPU.
#[map]
static XDP_OWNED: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Reason -> `REASON_INCLUDE` / `REASON_EXCLUDE`.
#[map]
static REASON_FILTER: HashMap<u32, u8> = HashMap::with_max_entries(MAX_REASON_FILTERS, 0);

#[inline(always)]
fn config() -> &'static Config {
    // The pointer is read volatile so the compiler cannot fold the all-zero initial value;
    // the loads through it then come from the frozen map the loader filled in.
    // SAFETY: reads a pointer to a `'static` of plain integers, so the reference is valid
    // and aligned for the program's whole run.
    unsafe { &*core::ptr::read_volatile(&(&raw const CONFIG)) }
}

/// BTF-enabled tracepoint: arguments (skb, location, reason[, rx_sk]) as the kernel passes
/// them, without the cost of building a perf record.
#[btf_tracepoint(function = "kfree_skb")]
pub fn droptrace_kfree_skb(ctx: BtfTracePointContext) -> i32 {
    let cfg = config();
    let skb: *const u8 = ctx.arg(0);
    let location: u64 = ctx.arg(1);
    let reason: u64 = if cfg.flags & CONFIG_HAS_REASON != 0 {
        ctx.arg(2)
    } else {
        0
    };
    let rx_sk: u64 = if cfg.flags & CONFIG_HAS_RX_SK != 0 {
        ctx.arg(3)
    } else {
        0
    };
    tcp::mark_drop(cfg, skb as u64, location, reason as u32);
    on_drop::<Direct, _>(&ctx, cfg, skb as u64, rx_sk, location, reason as u32, None);
    0
}

/// Classic tracepoint, for kernels without BTF: field offsets from the tracefs format.
#[tracepoint(category = "skb", name = "kfree_skb")]
pub fn droptrace_kfree_skb_tp(ctx: TracePointContext) -> u32 {
    let cfg = config();
    // Each read_at copies plain integers from the tracepoint record with
    // bpf_probe_read_kernel; an offset the loader got wrong (or `OFFSET_UNKNOWN`) only
    // fails the read, which is handled.
    let (Ok(skb), Ok(location)) = (
        // SAFETY: a read of the record, checked (above).
        unsafe { ctx.read_at::<u64>(cfg.tp_skbaddr as usize) },
        // SAFETY: a read of the record, checked (above).
        unsafe { ctx.read_at::<u64>(cfg.tp_location as usize) },
    ) else {
        return 0;
    };
    let reason = if cfg.flags & CONFIG_HAS_REASON != 0 {
        // SAFETY: a read of the record, checked (above).
        unsafe { ctx.read_at::<u32>(cfg.tp_reason as usize) }.unwrap_or(0)
    } else {
        0
    };
    // SAFETY: a read of the record, checked (above).
    let protocol = unsafe { ctx.read_at::<u16>(cfg.tp_protocol as usize) }.ok();
    on_drop::<Probe, _>(&ctx, cfg, skb, 0, location, reason, protocol);
    0
}

/// How kernel struct fields are read.
trait Fields {
    fn load<T>(addr: u64) -> Option<T>;
}

/// Plain loads: in a tp_btf program the skb is a typed kernel pointer, so the verifier
/// checks each load against BTF (offsets are constants from the frozen CONFIG) and the
/// JIT turns a faulting one into 0. Much cheaper than a helper call per field.
struct Direct;

impl Fields for Direct {
    #[inline(always)]
    fn load<T>(addr: u64) -> Option<T> {
        // SAFETY: `addr` is the BTF-typed skb, or a pointer loaded from it, plus a constant
        // offset of a plain integer or pointer field; the verifier checks the load against
        // the kernel's BTF and a faulting load (stale or NULL pointer) reads 0.
        Some(unsafe { core::ptr::read_volatile(addr as *const T) })
    }
}

/// bpf_probe_read_kernel, for the classic tracepoint where the skb is a plain number.
struct Probe;

impl Fields for Probe {
    #[inline(always)]
    fn load<T>(addr: u64) -> Option<T> {
        read(addr)
    }
}

#[inline(always)]
fn on_drop<F: Fields, C: EbpfContext>(
    ctx: &C,
    cfg: &Config,
    skb: u64,
    rx_sk: u64,
    location: u64,
    reason: u32,
    tp_protocol: Option<u16>,
) {
    let Some(counters) = COUNTERS.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a non-NULL pointer to this CPU's slot of the per-CPU array; the kernel skips
    // a nested run of the program on one CPU, so this is the only reference to it.
    let counters = unsafe { &mut *counters };
    // Only drops of the one reason an XDP verdict's kfree_skb carries pay for the lookup.
    if cfg.flags & CONFIG_XDP_OWNED != 0 && reason == cfg.xdp_reason && xdp_owned::<F>(cfg, skb) {
        counters[COUNTER_XDP_OWNED as usize] += 1;
        return;
    }
    counters[COUNTER_SEEN as usize] += 1;

    if cfg.filters & (FILTER_REASON_INCLUDE | FILTER_REASON_EXCLUDE) != 0 {
        // SAFETY: user space fills this map before attaching and never changes it, so the
        // entry cannot be removed or aliased under us; the u8 is copied at once.
        let mark = unsafe { REASON_FILTER.get(&reason) }.copied().unwrap_or(0);
        if cfg.filters & FILTER_REASON_INCLUDE != 0 && mark != REASON_INCLUDE {
            return;
        }
        if mark == REASON_EXCLUDE {
            return;
        }
    }

    let mut ev = DropEvent {
        timestamp_ns: 0,
        location,
        reason,
        netns: 0,
        ifindex: 0,
        skb_len: 0,
        cpu: 0,
        l3_proto: 0,
        l4_proto: 0,
        flags: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        sport: 0,
        dport: 0,
        icmp_type: 0,
        icmp_code: 0,
        tcp_flags: 0,
        _pad: 0,
        netns_cookie: 0,
    };
    let mut capture = Capture { from: 0, len: 0 };
    if cfg.flags & CONFIG_HAS_SKB_LAYOUT != 0 {
        // Interface and namespace come from struct fields alone: with a filter on them,
        // decide before the packet's headers are read; without, read them only for a
        // drop that the header filters keep.
        let place_first = cfg.filters & (FILTER_IFINDEX | FILTER_NETNS) != 0;
        if place_first {
            read_place::<F>(cfg, skb, rx_sk, &mut ev);
            if !in_place(cfg, &ev) {
                return;
            }
        }
        let anomaly;
        (capture, anomaly) = read_packet::<F>(cfg, skb, &mut ev);
        if anomaly != Anomaly::None {
            report(ctx, counters, anomaly, &ev);
        }
        if !matches(cfg, &ev) {
            return;
        }
        if !place_first {
            read_place::<F>(cfg, skb, rx_sk, &mut ev);
        }
    } else {
        if let Some(protocol) = tp_protocol {
            ev.l3_proto = protocol;
        }
        if !matches(cfg, &ev) {
            return;
        }
    }
    counters[COUNTER_MATCHED as usize] += 1;

    if cfg.flags & CONFIG_COUNT_GROUPS != 0 {
        if count_group(cfg, counters, &ev) {
            send(cfg, counters, &mut ev, capture, 0);
        }
        return;
    }

    let flags = if cfg.wakeup_events == 0 {
        0
    } else if counters[COUNTER_MATCHED as usize] & (cfg.wakeup_events as u64 - 1) == 0 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    if send(cfg, counters, &mut ev, capture, flags as u64) {
        return;
    }
    let key = GroupKey::of(&ev);
    if let Some(count) = LOST_GROUPS.get_ptr_mut(&key) {
        add_one(count);
    } else if LOST_GROUPS.insert(&key, &1, BPF_NOEXIST as u64).is_err() {
        // Another CPU may have inserted the key meanwhile: count in it.
        match LOST_GROUPS.get_ptr_mut(&key) {
            Some(count) => add_one(count),
            None => counters[COUNTER_LOST_UNGROUPED as usize] += 1,
        }
    }
}

/// Whether `skb` is the frame an XDP program just dropped on this CPU; if so, the mark is
/// taken so no later skb can match it.
#[inline(always)]
fn xdp_owned<F: Fields>(cfg: &Config, skb: u64) -> bool {
    let Some(mark) = XDP_OWNED.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: a non-NULL pointer to this CPU's slot of the per-CPU array; a plain u64 that
    // only programs running on this CPU read and write.
    let frame = unsafe { *mark };
    if frame == 0 {
        return false;
    }
    let head: u64 = F::load(skb + cfg.skb_head as u64).unwrap_or(0);
    if head != frame {
        return false;
    }
    // SAFETY: as above.
    unsafe { *mark = 0 };
    true
}

/// Adds one to a count in a map that every CPU writes.
#[inline(always)]
fn add_one(count: *mut u64) {
    // SAFETY: a non-NULL pointer to a map value, valid for the whole run of the program
    // (user space never deletes from these maps); every writer adds atomically.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            count, 1,
        )
    };
}

/// Sends the event (and the packet bytes of `capture`); counts it as sent or lost.
#[inline(always)]
fn send(
    cfg: &Config,
    counters: &mut [u64; COUNTER_COUNT as usize],
    ev: &mut DropEvent,
    capture: Capture,
    flags: u64,
) -> bool {
    // Only now: a drop that is not sent needs no clock and no CPU number.
    // SAFETY: helpers without arguments or preconditions.
    ev.timestamp_ns = unsafe { bpf_ktime_get_boot_ns() };
    ev.cpu = unsafe { bpf_get_smp_processor_id() };
    let sent = if cfg.snaplen != 0 {
        output_with_packet(ev, capture, flags)
    } else {
        match EVENTS.reserve::<DropEvent>(0) {
            Some(mut entry) => {
                entry.write(*ev);
                entry.submit(flags);
                true
            }
            None => false,
        }
    };
    if sent {
        counters[COUNTER_SENT as usize] += 1;
    } else {
        counters[COUNTER_LOST as usize] += 1;
    }
    sent
}

/// Counts the drop in its group (`GROUPS`); says whether to send it as a sample: while
/// its group and this CPU have samples left in the epoch.
#[inline(always)]
fn count_group(cfg: &Config, counters: &mut [u64; COUNTER_COUNT as usize], ev: &DropEvent) -> bool {
    let key = GroupKey::of(ev);
    let epoch = EPOCH.get(0).copied().unwrap_or(0);
    let in_slot = if cfg.flags & CONFIG_GROUP_SLOTS != 0 {
        count_in_slot(cfg, &key, epoch)
    } else {
        None
    };
    let wants = match in_slot {
        Some(wants) => wants,
        None => count_in_map(cfg, counters, &key, epoch),
    };
    if !wants {
        return false;
    }
    if counters[COUNTER_BUDGET_EPOCH as usize] != epoch as u64 {
        counters[COUNTER_BUDGET_EPOCH as usize] = epoch as u64;
        counters[COUNTER_BUDGET_USED as usize] = 0;
    }
    if counters[COUNTER_BUDGET_USED as usize] >= cfg.samples_per_cpu as u64 {
        counters[COUNTER_OVER_BUDGET as usize] += 1;
        return false;
    }
    counters[COUNTER_BUDGET_USED as usize] += 1;
    true
}

/// Counts the drop in this CPU's slot for its group, when the slot is free or already
/// the group's; `None` when another group holds it. Says whether to send a sample.
#[inline(always)]
fn count_in_slot(cfg: &Config, key: &GroupKey, epoch: u32) -> Option<bool> {
    // SAFETY: a helper without arguments or preconditions.
    let slots = GROUP_SLOTS.get_ptr_mut(unsafe { bpf_get_smp_processor_id() })?;
    // SAFETY: this CPU's slots (only this CPU writes them, and never twice at once: no
    // nesting on one CPU); user space only reads them. The
    // index is below SLOTS by construction (the mask is the bound the verifier checks).
    let slot = unsafe { &mut (*slots)[slot_index(key) & (SLOTS - 1)] };
    if slot.count.count == 0 {
        // A free slot: the key first, then the count that says the slot is taken (user
        // space trusts a slot's key once two readings agree on it).
        slot.key = *key;
        slot.count = GroupCount {
            count: 1,
            epoch,
            samples: 1,
        };
        return Some(cfg.samples_per_group != 0);
    }
    if slot.key.words() != key.words() {
        return None;
    }
    Some(take_sample(&mut slot.count, cfg, epoch))
}

/// Counts the drop in `GROUPS`; says whether to send a sample.
#[inline(always)]
fn count_in_map(
    cfg: &Config,
    counters: &mut [u64; COUNTER_COUNT as usize],
    key: &GroupKey,
    epoch: u32,
) -> bool {
    if let Some(group) = GROUPS.get_ptr_mut(key) {
        return add_shared(group, cfg, epoch);
    }
    let first = GroupCount {
        count: 1,
        epoch,
        samples: 1,
    };
    if GROUPS.insert(key, &first, BPF_NOEXIST as u64).is_ok() {
        return cfg.samples_per_group != 0;
    }
    // Another CPU may have inserted the key meanwhile: count in it; otherwise the map is
    // full and the drop is in the total only (and sends no sample: user space would have
    // no group to put it in).
    match GROUPS.get_ptr_mut(key) {
        Some(group) => add_shared(group, cfg, epoch),
        None => {
            counters[COUNTER_LOST_UNGROUPED as usize] += 1;
            false
        }
    }
}

/// One more drop of a group in the shared map: counted with an atomic add (every CPU
/// writes it); the sampling figures are plain loads and stores, as a race between CPUs
/// there only changes which drops are sent as samples, never a count.
#[inline(always)]
fn add_shared(group: *mut GroupCount, cfg: &Config, epoch: u32) -> bool {
    // SAFETY: a non-NULL pointer to the map's value, valid for the whole run of the
    // program (user space never deletes from this map); the count is only ever changed
    // with atomic adds, and the other fields are read and written volatile, so the
    // compiler neither tears nor caches them.
    unsafe {
        add_one(&raw mut (*group).count);
        let epoch_at = &raw mut (*group).epoch;
        let samples_at = &raw mut (*group).samples;
        let mut samples = core::ptr::read_volatile(samples_at);
        if core::ptr::read_volatile(epoch_at) != epoch {
            core::ptr::write_volatile(epoch_at, epoch);
            samples = 0;
        }
        if samples >= cfg.samples_per_group {
            return false;
        }
        core::ptr::write_volatile(samples_at, samples + 1);
    }
    true
}

/// One more drop of a group: counted, and whether the group has a sample left.
#[inline(always)]
fn take_sample(group: &mut GroupCount, cfg: &Config, epoch: u32) -> bool {
    group.count += 1;
    if group.epoch != epoch {
        group.epoch = epoch;
        group.samples = 0;
    }
    if group.samples >= cfg.samples_per_group {
        return false;
    }
    group.samples += 1;
    true
}

#[inline(always)]
fn read<T>(addr: u64) -> Option<T> {
    // SAFETY: the helper copies into a local and fails cleanly on a bad kernel address;
    // every `T` read here is an integer or byte array, valid for any bit pattern.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.ok()
}

/// Header bytes read into an 8-byte aligned buffer: the compiler then reads addresses and
/// ports out of it with word loads, not byte by byte.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Aligned<const N: usize>([u8; N]);

/// The packet bytes that can be copied: from the IP header to the end of the linear part,
/// at most the snaplen.
#[derive(Clone, Copy)]
struct Capture {
    from: u64,
    len: u32,
}

/// Sends the event followed by the packet's first bytes, put together in `SCRATCH`.
#[inline(always)]
fn output_with_packet(ev: &DropEvent, capture: Capture, flags: u64) -> bool {
    let Some(buf) = SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let buf = buf as *mut u8;
    // SAFETY: this CPU's scratch slot (no nesting on one CPU) holds EVENT_SIZE bytes and
    // more; the write does not need alignment.
    unsafe { core::ptr::write_unaligned(buf as *mut DropEvent, *ev) };
    // The mask is the bound the verifier checks the copy and the record against.
    let mut n = capture.len & SNAPLEN_MAX;
    if n != 0 {
        // SAFETY: n <= SNAPLEN_MAX, so the destination stays inside the scratch slot (the
        // verifier checks this bound); the helper checks the kernel source address and a
        // failed copy is dropped below.
        let rc = unsafe {
            generated::bpf_probe_read_kernel(
                buf.add(EVENT_SIZE) as *mut c_void,
                n,
                capture.from as *const c_void,
            )
        };
        if rc != 0 {
            n = 0;
        }
    }
    // SAFETY: EVENT_SIZE + n bytes inside the scratch slot, all initialised: map memory
    // starts zeroed, then the event and the n copied bytes were written.
    let record = unsafe { core::slice::from_raw_parts(buf, EVENT_SIZE + n as usize) };
    EVENTS.output::<[u8]>(record, flags).is_ok()
}

/// Reads where the drop happened: the interface and the network namespace (struct fields
/// only, through `F`); the namespace of the skb's device, else of its socket, else of the
/// socket it was dropped at (`rx_sk`, 0 when unknown).
#[inline(always)]
fn read_place<F: Fields>(cfg: &Config, skb: u64, rx_sk: u64, ev: &mut DropEvent) {
    let mut net: u64 = 0;
    let dev: u64 = F::load(skb + cfg.skb_dev as u64).unwrap_or(0);
    if dev != 0 {
        ev.ifindex = F::load::<u32>(dev + cfg.dev_ifindex as u64).unwrap_or(0);
        net = F::load(dev + cfg.dev_net as u64).unwrap_or(0);
    }
    if net == 0 {
        let sk: u64 = F::load(skb + cfg.skb_sk as u64).unwrap_or(0);
        if sk != 0 {
            net = F::load(sk + cfg.sk_net as u64).unwrap_or(0);
        }
    }
    if net == 0 && rx_sk != 0 {
        net = F::load(rx_sk + cfg.sk_net as u64).unwrap_or(0);
    }
    if net != 0 {
        ev.netns = F::load::<u32>(net + cfg.net_inum as u64).unwrap_or(0);
        if cfg.flags & CONFIG_HAS_NET_COOKIE != 0 {
            ev.netns_cookie = F::load::<u64>(net + cfg.net_cookie as u64).unwrap_or(0);
        }
    }
}

/// Something a familiar kernel never shows: the sign of a layout read wrong.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anomaly {
    None,
    /// skb->protocol says IPv4 or IPv6 but the header cannot be read.
    HeaderUnreadable,
    /// The header's version is not the one skb->protocol says.
    WrongVersion,
}

/// Counts an anomaly and warns about it (aya-log, shown with `--verbose`) at the 1st, 2nd,
/// 4th, 8th... of a CPU: a flood of them costs a few lines. With logging off the loader
/// sets the log level to 0 and the verifier drops the warnings as dead code.
#[inline(always)]
fn report<C: EbpfContext>(
    ctx: &C,
    counters: &mut [u64; COUNTER_COUNT as usize],
    anomaly: Anomaly,
    ev: &DropEvent,
) {
    let n = counters[COUNTER_ANOMALIES as usize] + 1;
    counters[COUNTER_ANOMALIES as usize] = n;
    if n & (n - 1) != 0 {
        return;
    }
    let (proto, location) = (ev.l3_proto, ev.location);
    match anomaly {
        Anomaly::HeaderUnreadable => warn!(
            ctx,
            "the IP header of a packet with protocol {:x} dropped at {:x} could not be read ({} such on this CPU)",
            proto,
            location,
            n
        ),
        Anomaly::WrongVersion => warn!(
            ctx,
            "a packet with protocol {:x} dropped at {:x} has another IP version in its header: malformed, or a layout read wrong ({} such on this CPU)",
            proto,
            location,
            n
        ),
        Anomaly::None => {}
    }
}

/// Reads the packet: its length, protocol and headers (struct fields through `F`, header
/// bytes with bpf_probe_read_kernel); says which bytes could be copied, and what looked
/// wrong.
#[inline(always)]
fn read_packet<F: Fields>(cfg: &Config, skb: u64, ev: &mut DropEvent) -> (Capture, Anomaly) {
    let mut capture = Capture { from: 0, len: 0 };
    ev.skb_len = F::load::<u32>(skb + cfg.skb_len as u64).unwrap_or(0);
    ev.l3_proto = u16::from_be(F::load::<u16>(skb + cfg.skb_protocol as u64).unwrap_or(0));
    let head: u64 = F::load(skb + cfg.skb_head as u64).unwrap_or(0);
    let network: u16 = F::load(skb + cfg.skb_network_header as u64).unwrap_or(0);
    if head == 0 {
        return (capture, Anomaly::None);
    }
    let l3 = head + network as u64;
    let anomaly = match ev.l3_proto {
        0x0800 => read_ipv4(l3, ev),
        0x86dd => read_ipv6(l3, ev),
        _ => return (capture, Anomaly::None),
    };
    if cfg.snaplen != 0 {
        let data: u64 = F::load(skb + cfg.skb_data as u64).unwrap_or(0);
        let data_len: u32 = F::load(skb + cfg.skb_data_len as u64).unwrap_or(0);
        let end = data + ev.skb_len.saturating_sub(data_len) as u64;
        if data != 0 && l3 < end {
            let avail = end - l3;
            capture = Capture {
                from: l3,
                len: if avail < cfg.snaplen as u64 {
                    avail as u32
                } else {
                    cfg.snaplen
                },
            };
        }
    }
    (capture, anomaly)
}

#[inline(always)]
fn read_ipv4(l3: u64, ev: &mut DropEvent) -> Anomaly {
    // The header and, when it has no options, the first 4 transport bytes in one read.
    let h: Aligned<24> = match read::<Aligned<24>>(l3) {
        Some(h) => h,
        None => match read::<Aligned<20>>(l3) {
            Some(h20) => {
                let mut h = Aligned([0u8; 24]);
                h.0[..20].copy_from_slice(&h20.0);
                h
            }
            None => return Anomaly::HeaderUnreadable,
        },
    };
    let h = &h.0;
    let ihl = ((h[0] & 0x0f) as u64) * 4;
    if h[0] >> 4 != 4 {
        return Anomaly::WrongVersion;
    }
    if ihl < 20 {
        return Anomaly::None;
    }
    ev.flags |= EVENT_IPV4;
    ev.l4_proto = h[9];
    // The packet's end by its own header (0 for a BIG TCP packet over 64 KiB: none).
    let end = l3 + u16::from_be_bytes([h[2], h[3]]) as u64;
    ev.saddr[..4].copy_from_slice(&h[12..16]);
    ev.daddr[..4].copy_from_slice(&h[16..20]);
    let fragment_offset = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    if fragment_offset != 0 {
        return Anomaly::None;
    }
    if ihl == 20 {
        l4_fields([h[20], h[21], h[22], h[23]], l3 + 20, end, ev);
    } else {
        read_l4(l3 + ihl, end, ev);
    }
    Anomaly::None
}

#[inline(always)]
fn read_ipv6(l3: u64, ev: &mut DropEvent) -> Anomaly {
    // The header and the first 4 bytes after it in one read.
    let h: Aligned<44> = match read::<Aligned<44>>(l3) {
        Some(h) => h,
        None => match read::<Aligned<40>>(l3) {
            Some(h40) => {
                let mut h = Aligned([0u8; 44]);
                h.0[..40].copy_from_slice(&h40.0);
                h
            }
            None => return Anomaly::HeaderUnreadable,
        },
    };
    let h = &h.0;
    if h[0] >> 4 != 6 {
        return Anomaly::WrongVersion;
    }
    // The packet's end by its own header (a jumbogram says 0: none).
    let end = l3 + 40 + u16::from_be_bytes([h[4], h[5]]) as u64;
    ev.flags |= EVENT_IPV6;
    ev.saddr.copy_from_slice(&h[8..24]);
    ev.daddr.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    if !matches!(next, 0 | 43 | 60 | 51 | 44) {
        ev.l4_proto = next;
        l4_fields([h[40], h[41], h[42], h[43]], l3 + 40, end, ev);
        return Anomaly::None;
    }
    let mut offset = l3 + 40;
    // A bounded walk over the extension headers that may precede the transport header.
    for _ in 0..4 {
        match next {
            0 | 43 | 60 => {
                let Some([nh, len]) = read::<[u8; 2]>(offset) else {
                    return Anomaly::None;
                };
                next = nh;
                offset += (len as u64 + 1) * 8;
            }
            51 => {
                let Some([nh, len]) = read::<[u8; 2]>(offset) else {
                    return Anomaly::None;
                };
                next = nh;
                offset += (len as u64 + 2) * 4;
            }
            44 => {
                let Some([nh, _, hi, lo]) = read::<[u8; 4]>(offset) else {
                    return Anomaly::None;
                };
                if u16::from_be_bytes([hi, lo]) & 0xfff8 != 0 {
                    ev.l4_proto = nh;
                    return Anomaly::None;
                }
                next = nh;
                offset += 8;
            }
            _ => break,
        }
    }
    ev.l4_proto = next;
    read_l4(offset, end, ev);
    Anomaly::None
}

#[inline(always)]
fn read_l4(l4: u64, end: u64, ev: &mut DropEvent) {
    if let Some(p) = read::<[u8; 4]>(l4) {
        l4_fields(p, l4, end, ev);
    }
}

/// Ports or ICMP type/code from the first 4 bytes of the transport header (at `l4`), and a
/// TCP segment's flags where the IP packet (ending at `end`, its header's length) holds
/// them: a truncated segment has none to read.
#[inline(always)]
fn l4_fields(p: [u8; 4], l4: u64, end: u64, ev: &mut DropEvent) {
    if ev.l4_proto == 6 && l4 + 14 <= end {
        if let Some(flags) = read::<u8>(l4 + 13) {
            ev.tcp_flags = flags;
            ev.flags |= EVENT_TCP_FLAGS;
        }
    }
    match ev.l4_proto {
        // tcp, udp, dccp, sctp, udplite: ports first.
        6 | 17 | 33 | 132 | 136 => {
            ev.sport = u16::from_be_bytes([p[0], p[1]]);
            ev.dport = u16::from_be_bytes([p[2], p[3]]);
            ev.flags |= EVENT_PORTS;
        }
        1 | 58 => {
            ev.icmp_type = p[0];
            ev.icmp_code = p[1];
            ev.flags |= EVENT_ICMP;
        }
        _ => {}
    }
}

#[inline(always)]
fn words(a: &[u8; 16]) -> [u64; 2] {
    // SAFETY: 16 readable bytes; read_unaligned needs no alignment, any bits are valid u64s.
    unsafe { core::ptr::read_unaligned(a.as_ptr() as *const [u64; 2]) }
}

/// The filters that need only the interface and the namespace.
#[inline(always)]
fn in_place(cfg: &Config, ev: &DropEvent) -> bool {
    let f = cfg.filters;
    if f & FILTER_IFINDEX != 0 && ev.ifindex != cfg.ifindex {
        return false;
    }
    if f & FILTER_NETNS != 0
        && (ev.netns != cfg.netns || (cfg.netns_cookie != 0 && ev.netns_cookie != cfg.netns_cookie))
    {
        return false;
    }
    true
}

/// The filters on the packet's headers (and, for the classic tracepoint without a packet
/// layout, on the protocol).
#[inline(always)]
fn matches(cfg: &Config, ev: &DropEvent) -> bool {
    let f = cfg.filters;
    let ports = ev.flags & EVENT_PORTS != 0;
    if f & FILTER_L4_PROTO != 0
        && (ev.flags & (EVENT_IPV4 | EVENT_IPV6) == 0 || ev.l4_proto != cfg.l4_proto)
    {
        return false;
    }
    if f & FILTER_PORT != 0 && !(ports && (ev.sport == cfg.port || ev.dport == cfg.port)) {
        return false;
    }
    if f & FILTER_SPORT != 0 && !(ports && ev.sport == cfg.sport) {
        return false;
    }
    if f & FILTER_DPORT != 0 && !(ports && ev.dport == cfg.dport) {
        return false;
    }
    if f & FILTER_ADDR != 0 {
        let family = if ev.flags & EVENT_IPV4 != 0 {
            AF_INET
        } else if ev.flags & EVENT_IPV6 != 0 {
            AF_INET6
        } else {
            0
        };
        let want = words(&cfg.addr);
        if family != cfg.addr_family || (words(&ev.saddr) != want && words(&ev.daddr) != want) {
            return false;
        }
    }
    true
}

// SAFETY: a unique symbol in the `license` section, where the loader looks for it.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
