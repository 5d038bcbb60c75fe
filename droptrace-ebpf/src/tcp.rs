//! What drops do to TCP: the kernel's retransmits and resets (tcp:* tracepoints, tp_btf),
//! each sent to user space with its connection, and, for a retransmit, the last drop of a
//! packet of the same socket (remembered by the drop program, `mark_drop`).
//!
//! Rare events next to drops: every one is sent; what cannot be is counted.
use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::bpf_ktime_get_boot_ns,
    macros::{btf_tracepoint, map},
    maps::{LruHashMap, PerCpuArray, RingBuf},
    programs::BtfTracePointContext,
};
use droptrace_common::*;

use crate::{config, in_place, matches, read_packet, read_place, Direct, Fields};

/// Filled in by the loader from the running kernel's BTF.
// SAFETY: no other symbol is named `TCP_CONFIG`; the loader finds the global by this name.
#[unsafe(no_mangle)]
static TCP_CONFIG: TcpConfig = TcpConfig::ZERO;

#[map]
static TCP_EVENTS: RingBuf = RingBuf::with_byte_size(256 << 10, 0);

#[map]
static TCP_COUNTERS: PerCpuArray<[u64; TCP_COUNTER_COUNT as usize]> =
    PerCpuArray::with_max_entries(1, 0);

/// Socket address -> the last drop of one of its packets.
#[map]
static TCP_DROPS: LruHashMap<u64, TcpDropMark> = LruHashMap::with_max_entries(TCP_DROPS_MAX, 0);

#[inline(always)]
fn tcp_config() -> &'static TcpConfig {
    // SAFETY: as `config()`: a pointer to a `'static` of plain integers, read volatile so
    // the zero initial value is not folded in.
    unsafe { &*core::ptr::read_volatile(&(&raw const TCP_CONFIG)) }
}

#[inline(always)]
fn count(index: u32) {
    count_by(index, 1);
}

#[inline(always)]
fn count_by(index: u32, n: u64) {
    if let Some(counters) = TCP_COUNTERS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot of the per-CPU array (no nesting on one CPU).
        unsafe { (*counters)[index as usize] += n };
    }
}

/// `-EBUSY`: a retransmit put off (the queue below was still full), neither sent nor
/// counted by the kernel (`TcpRetransSegs`); it comes again later.
const EBUSY: i32 = -16;

/// On every drop, called by the drop program (a program of its own cost a trampoline's
/// entry and exit more a drop): a packet that belongs to a TCP socket (skb->sk, as on the
/// way out) is remembered for that socket's next retransmit. Everything else returns at
/// once.
#[inline(always)]
pub fn mark_drop(cfg: &Config, skb: u64, location: u64, reason: u32) {
    let tcfg = tcp_config();
    if tcfg.flags & TCP_CONFIG_MARK_DROPS == 0 || cfg.flags & CONFIG_HAS_SKB_LAYOUT == 0 {
        return;
    }
    let sk: u64 = Direct::load(skb + cfg.skb_sk as u64).unwrap_or(0);
    if sk == 0 {
        return;
    }
    let protocol: u16 = Direct::load(sk + tcfg.sk_protocol as u64).unwrap_or(0);
    if protocol != 6 {
        return;
    }
    let mut place = empty_drop();
    read_place::<Direct>(cfg, skb, 0, &mut place);
    // Only a drop droptrace watches explains a retransmit: one in a namespace or on an
    // interface the filters leave out is as far away as the network.
    if !in_place(cfg, &place) {
        return;
    }
    let mark = TcpDropMark {
        // SAFETY: a helper without arguments or preconditions.
        timestamp_ns: unsafe { bpf_ktime_get_boot_ns() },
        location,
        reason,
        netns: place.netns,
        ifindex: place.ifindex,
        _pad: 0,
        netns_cookie: place.netns_cookie,
    };
    if TCP_DROPS.insert(&sk, &mark, 0).is_ok() {
        count(TCP_COUNTER_DROPS_MARKED);
    }
}

/// A segment sent again: (sk, skb[, err]).
#[btf_tracepoint(function = "tcp_retransmit_skb")]
pub fn droptrace_tcp_retransmit(ctx: BtfTracePointContext) -> i32 {
    let tcfg = tcp_config();
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let mut ev = empty_event(TCP_RETRANSMIT);
    if tcfg.flags & TCP_CONFIG_RETRANSMIT_HAS_ERR != 0 {
        let err: u64 = ctx.arg(2);
        let err = err as i32;
        if err == EBUSY {
            return 0;
        }
        if err != 0 {
            ev.flags |= TCP_EVENT_FAILED;
            ev.reason = err as u32;
        }
    }
    if !from_sock(sk as u64, &mut ev) || !wanted(&ev, false) {
        return 0;
    }
    if tcfg.flags & TCP_CONFIG_HAS_GSO_SEGS != 0 && !skb.is_null() {
        let segs: u16 = Direct::load(skb as u64 + tcfg.skb_gso_segs as u64).unwrap_or(0);
        if segs != 0 {
            ev.segs = segs;
        }
    }
    let key = sk as u64;
    // SAFETY: the value is copied out at once; an LRU entry evicted meanwhile only makes
    // the copy stale, never invalid memory (map values stay allocated under RCU).
    if let Some(mark) = unsafe { TCP_DROPS.get(&key) } {
        ev.drop = *mark;
        ev.flags |= TCP_EVENT_DROP;
    }
    count_by(TCP_COUNTER_RETRANSMITS, ev.segs as u64);
    send(&mut ev);
    0
}

/// A reset sent: (sk, skb[, reason]). With no socket (a segment to a closed port) the
/// connection comes from the segment that is answered.
#[btf_tracepoint(function = "tcp_send_reset")]
pub fn droptrace_tcp_send_reset(ctx: BtfTracePointContext) -> i32 {
    let cfg = config();
    let tcfg = tcp_config();
    let sk: *const u8 = ctx.arg(0);
    let skb: *const u8 = ctx.arg(1);
    let mut ev = empty_event(TCP_RESET_SENT);
    if !sk.is_null() {
        if !from_sock(sk as u64, &mut ev) {
            return 0;
        }
    } else if !skb.is_null() && cfg.flags & CONFIG_HAS_SKB_LAYOUT != 0 {
        let mut seg = empty_drop();
        let _ = read_packet::<Direct>(cfg, skb as u64, &mut seg);
        read_place::<Direct>(cfg, skb as u64, 0, &mut seg);
        if seg.flags & EVENT_PORTS == 0 {
            return 0;
        }
        // The segment came from the peer: its destination is this host.
        ev.family = if seg.flags & EVENT_IPV6 != 0 {
            AF_INET6
        } else {
            AF_INET
        };
        ev.local = seg.daddr;
        ev.remote = seg.saddr;
        ev.lport = seg.dport;
        ev.rport = seg.sport;
        ev.netns = seg.netns;
        ev.netns_cookie = seg.netns_cookie;
    } else {
        return 0;
    }
    if !wanted(&ev, false) {
        return 0;
    }
    if tcfg.flags & TCP_CONFIG_HAS_RST_REASON != 0 {
        let reason: u64 = ctx.arg(2);
        ev.reason = reason as u32;
        ev.flags |= TCP_EVENT_HAS_REASON;
    }
    count(TCP_COUNTER_RESETS_SENT);
    send(&mut ev);
    0
}

/// A reset received: (sk).
#[btf_tracepoint(function = "tcp_receive_reset")]
pub fn droptrace_tcp_receive_reset(ctx: BtfTracePointContext) -> i32 {
    let sk: *const u8 = ctx.arg(0);
    let mut ev = empty_event(TCP_RESET_RECEIVED);
    if !from_sock(sk as u64, &mut ev) || !wanted(&ev, true) {
        return 0;
    }
    count(TCP_COUNTER_RESETS_RECEIVED);
    send(&mut ev);
    0
}

#[inline(always)]
fn send(ev: &mut TcpEvent) {
    // SAFETY: a helper without arguments or preconditions.
    ev.timestamp_ns = unsafe { bpf_ktime_get_boot_ns() };
    match TCP_EVENTS.reserve::<TcpEvent>(0) {
        Some(mut entry) => {
            entry.write(*ev);
            // Nobody waits on this ring: user space drains it as it polls (every 100 ms),
            // so a wake-up would be work for nothing.
            entry.submit(BPF_RB_NO_WAKEUP as u64);
        }
        None => count(TCP_COUNTER_LOST),
    }
}

/// The connection and namespace of a socket (`sock_common` fields).
#[inline(always)]
fn from_sock(sk: u64, ev: &mut TcpEvent) -> bool {
    if sk == 0 {
        return false;
    }
    let cfg = config();
    let tcfg = tcp_config();
    let family: u16 = Direct::load(sk + tcfg.skc_family as u64).unwrap_or(0);
    match family as u8 {
        AF_INET => {
            let local: [u8; 4] = Direct::load(sk + tcfg.skc_rcv_saddr as u64).unwrap_or([0; 4]);
            let remote: [u8; 4] = Direct::load(sk + tcfg.skc_daddr as u64).unwrap_or([0; 4]);
            ev.local[..4].copy_from_slice(&local);
            ev.remote[..4].copy_from_slice(&remote);
        }
        AF_INET6 if tcfg.flags & TCP_CONFIG_HAS_V6 != 0 => {
            ev.local = load16(sk + tcfg.skc_v6_rcv_saddr as u64);
            ev.remote = load16(sk + tcfg.skc_v6_daddr as u64);
        }
        _ => return false,
    }
    ev.family = family as u8;
    ev.lport = Direct::load::<u16>(sk + tcfg.skc_num as u64).unwrap_or(0);
    ev.rport = u16::from_be(Direct::load::<u16>(sk + tcfg.skc_dport as u64).unwrap_or(0));
    let net: u64 = Direct::load(sk + cfg.sk_net as u64).unwrap_or(0);
    if net != 0 {
        ev.netns = Direct::load::<u32>(net + cfg.net_inum as u64).unwrap_or(0);
        if cfg.flags & CONFIG_HAS_NET_COOKIE != 0 {
            ev.netns_cookie = Direct::load::<u64>(net + cfg.net_cookie as u64).unwrap_or(0);
        }
    }
    true
}

#[inline(always)]
fn load16(addr: u64) -> [u8; 16] {
    let a: u64 = Direct::load(addr).unwrap_or(0);
    let b: u64 = Direct::load(addr + 8).unwrap_or(0);
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a.to_ne_bytes());
    out[8..].copy_from_slice(&b.to_ne_bytes());
    out
}

/// The drop filters that make sense for a connection: namespace, protocol, ports and
/// address (the segment's direction: from this host, or `inbound` to it). An interface
/// or a reason filter does not apply to TCP events.
#[inline(always)]
fn wanted(ev: &TcpEvent, inbound: bool) -> bool {
    let cfg = config();
    if cfg.filters & FILTER_NETNS != 0
        && (ev.netns != cfg.netns || (cfg.netns_cookie != 0 && ev.netns_cookie != cfg.netns_cookie))
    {
        return false;
    }
    let mut seg = empty_drop();
    seg.l4_proto = 6;
    seg.flags = EVENT_PORTS
        | if ev.family == AF_INET6 {
            EVENT_IPV6
        } else {
            EVENT_IPV4
        };
    if inbound {
        seg.saddr = ev.remote;
        seg.daddr = ev.local;
        seg.sport = ev.rport;
        seg.dport = ev.lport;
    } else {
        seg.saddr = ev.local;
        seg.daddr = ev.remote;
        seg.sport = ev.lport;
        seg.dport = ev.rport;
    }
    matches(cfg, &seg)
}

#[inline(always)]
fn empty_event(kind: u8) -> TcpEvent {
    TcpEvent {
        timestamp_ns: 0,
        kind,
        family: 0,
        flags: 0,
        _pad: 0,
        reason: 0,
        netns: 0,
        segs: 1,
        _pad2: 0,
        local: [0; 16],
        remote: [0; 16],
        lport: 0,
        rport: 0,
        _pad3: 0,
        netns_cookie: 0,
        drop: TcpDropMark {
            timestamp_ns: 0,
            location: 0,
            reason: 0,
            netns: 0,
            ifindex: 0,
            _pad: 0,
            netns_cookie: 0,
        },
    }
}

#[inline(always)]
fn empty_drop() -> DropEvent {
    DropEvent {
        timestamp_ns: 0,
        location: 0,
        reason: 0,
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
    }
}
