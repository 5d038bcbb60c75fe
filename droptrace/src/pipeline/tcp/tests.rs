use std::mem::offset_of;

use droptrace_common::{self as wire, TcpDropMark};

use super::*;

/// The bytes of a wire event, field by field as the kernel lays them out.
pub(crate) fn bytes_of(ev: &wire::TcpEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(TCP_EVENT_SIZE);
    out.extend(ev.timestamp_ns.to_ne_bytes());
    out.extend([ev.kind, ev.family, ev.flags, 0]);
    out.extend(ev.reason.to_ne_bytes());
    out.extend(ev.netns.to_ne_bytes());
    out.extend(ev.segs.to_ne_bytes());
    out.extend([0, 0]);
    out.extend(ev.local);
    out.extend(ev.remote);
    out.extend(ev.lport.to_ne_bytes());
    out.extend(ev.rport.to_ne_bytes());
    out.extend([0; 4]);
    out.extend(ev.netns_cookie.to_ne_bytes());
    let d = &ev.drop;
    out.extend(d.timestamp_ns.to_ne_bytes());
    out.extend(d.location.to_ne_bytes());
    for v in [d.reason, d.netns, d.ifindex, 0] {
        out.extend(v.to_ne_bytes());
    }
    out.extend(d.netns_cookie.to_ne_bytes());
    out
}

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[..4].copy_from_slice(&a);
    out
}

const QDISC_DROP: u32 = 5;
const TBF_DROP_AT: u64 = 0xffff_ffff_81d4_1a2b;

/// A retransmit from 10.1.0.1:40000 to 10.1.0.2:5201 at `at`, with the socket's last
/// drop at `drop_at` (none when 0).
pub(crate) fn retransmit(at: u64, lport: u16, drop_at: u64) -> wire::TcpEvent {
    wire::TcpEvent {
        timestamp_ns: at,
        kind: wire::TCP_RETRANSMIT,
        family: wire::AF_INET,
        flags: if drop_at != 0 {
            wire::TCP_EVENT_DROP
        } else {
            0
        },
        _pad: 0,
        reason: 0,
        netns: 4_026_532_100,
        segs: 1,
        _pad2: 0,
        local: v4([10, 1, 0, 1]),
        remote: v4([10, 1, 0, 2]),
        lport,
        rport: 5201,
        _pad3: 0,
        netns_cookie: 77,
        drop: if drop_at != 0 {
            TcpDropMark {
                timestamp_ns: drop_at,
                location: TBF_DROP_AT,
                reason: QDISC_DROP,
                netns: 4_026_532_100,
                ifindex: 2,
                _pad: 0,
                netns_cookie: 77,
            }
        } else {
            TcpDropMark::default()
        },
    }
}

#[test]
fn the_decoder_reads_the_wire_layout() {
    assert_eq!(offset_of!(wire::TcpEvent, kind), 8);
    assert_eq!(offset_of!(wire::TcpEvent, flags), 10);
    assert_eq!(offset_of!(wire::TcpEvent, reason), 12);
    assert_eq!(offset_of!(wire::TcpEvent, netns), 16);
    assert_eq!(offset_of!(wire::TcpEvent, segs), 20);
    assert_eq!(offset_of!(wire::TcpEvent, local), 24);
    assert_eq!(offset_of!(wire::TcpEvent, remote), 40);
    assert_eq!(offset_of!(wire::TcpEvent, lport), 56);
    assert_eq!(offset_of!(wire::TcpEvent, rport), 58);
    assert_eq!(offset_of!(wire::TcpEvent, netns_cookie), 64);
    assert_eq!(offset_of!(wire::TcpEvent, drop), 72);
    assert_eq!(offset_of!(TcpDropMark, location), 8);
    assert_eq!(offset_of!(TcpDropMark, netns_cookie), 32);

    let ev = decode(&bytes_of(&retransmit(5_000, 40000, 4_000))).unwrap();
    assert_eq!(ev.kind, TcpKind::Retransmit);
    assert_eq!(ev.flow.local, IpAddr::from([10, 1, 0, 1]));
    assert_eq!(ev.flow.remote, IpAddr::from([10, 1, 0, 2]));
    assert_eq!((ev.flow.lport, ev.rport), (40000, 5201));
    assert_eq!(ev.flow.netns, Netns::new(4_026_532_100, 77));
    assert_eq!(ev.segs, 1);
    assert_eq!(ev.failed, None);
    let drop = ev.drop.unwrap();
    assert_eq!(drop.timestamp_ns, 4_000);
    assert_eq!(
        drop.cause,
        DropCause {
            location: TBF_DROP_AT,
            reason: QDISC_DROP,
            netns: Netns::new(4_026_532_100, 77),
            ifindex: 2,
        }
    );
}

#[test]
fn bad_events_are_errors_not_panics() {
    assert_eq!(decode(&[0; 10]), Err(TcpDecodeError::Size(10)));
    let mut bad = retransmit(1, 1, 0);
    bad.kind = 9;
    assert_eq!(decode(&bytes_of(&bad)), Err(TcpDecodeError::Kind(9)));
    let mut bad = retransmit(1, 1, 0);
    bad.family = 3;
    assert_eq!(decode(&bytes_of(&bad)), Err(TcpDecodeError::Family(3)));
}

#[test]
fn a_reset_sent_keeps_its_reason_only_where_the_kernel_gives_one() {
    let mut rst = retransmit(1, 5201, 0);
    rst.kind = wire::TCP_RESET_SENT;
    rst.reason = 2;
    assert_eq!(decode(&bytes_of(&rst)).unwrap().reset_reason, None);
    rst.flags = wire::TCP_EVENT_HAS_REASON;
    let ev = decode(&bytes_of(&rst)).unwrap();
    assert_eq!(ev.reset_reason, Some(2));
    assert_eq!(ev.failed, None);
}

#[test]
fn a_retransmit_is_explained_by_a_drop_shortly_before_only() {
    let mark = |at| DropMark {
        timestamp_ns: at,
        cause: DropCause {
            location: 1,
            reason: 2,
            netns: Netns::NONE,
            ifindex: 0,
        },
    };
    let s = 1_000_000_000;
    assert!(explain(10 * s, Some(&mark(10 * s - 200_000_000))).is_some());
    assert!(explain(10 * s, Some(&mark(10 * s - EXPLAIN_WINDOW_NS))).is_some());
    assert!(explain(10 * s, Some(&mark(10 * s - EXPLAIN_WINDOW_NS - 1))).is_none());
    // A drop after the retransmit (the retransmitted segment dropped in turn) explains
    // the next one, not this one.
    assert!(explain(10 * s, Some(&mark(10 * s + 1))).is_none());
    assert!(explain(10 * s, None).is_none());
}

/// A transfer through a dropping qdisc, then a lossy path beyond the host: the same
/// connection group (one peer, one port here), explained and not.
#[test]
fn retransmits_are_split_into_after_a_drop_here_and_beyond() {
    let s = 1_000_000_000;
    let mut table = TcpTable::default();
    for i in 0..5 {
        let at = 10 * s + i * 100_000_000;
        table.add(&decode(&bytes_of(&retransmit(at, 5201, at - 210_000_000))).unwrap());
    }
    // A long time after the last drop: beyond this host.
    table.add(&decode(&bytes_of(&retransmit(60 * s, 5201, 11 * s))).unwrap());
    table.add(&decode(&bytes_of(&retransmit(61 * s, 5201, 0))).unwrap());
    let ranked = table.ranked();
    assert_eq!(ranked.len(), 1);
    let (flow, stats) = ranked[0];
    assert_eq!(flow.lport, 5201);
    assert_eq!(stats.retransmits, 7);
    assert_eq!(stats.after_drops(), 5);
    assert_eq!(stats.beyond(), 2);
    let causes = stats.causes();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].0.reason, QDISC_DROP);
    assert_eq!(causes[0].1, 5);
    let total = table.total();
    assert_eq!(total.explained.get(&Explained::OtherDrop), Some(&5));
    assert_eq!(total.beyond(), 2);
}

#[test]
fn connection_groups_are_bounded_and_overflow_still_counts() {
    let mut table = TcpTable::default();
    for i in 0..(MAX_TCP_FLOWS + 10) {
        let mut ev = retransmit(1_000, 1, 0);
        ev.remote = v4((i as u32).to_be_bytes());
        table.add(&decode(&bytes_of(&ev)).unwrap());
    }
    assert_eq!(table.ranked().len(), MAX_TCP_FLOWS);
    assert_eq!(table.overflow().retransmits, 10);
    assert_eq!(table.total().retransmits, (MAX_TCP_FLOWS + 10) as u64);
}

#[test]
fn drop_groups_per_connection_are_bounded() {
    let mut table = TcpTable::default();
    for i in 0..(MAX_CAUSES_PER_FLOW as u64 + 3) {
        let mut ev = retransmit(5_000, 1, 4_000);
        ev.drop.location = 100 + i;
        table.add(&decode(&bytes_of(&ev)).unwrap());
    }
    let stats = table.ranked()[0].1;
    assert_eq!(stats.causes().len(), MAX_CAUSES_PER_FLOW);
    assert_eq!(stats.explained.get(&Explained::OtherDrop), Some(&3));
    assert_eq!(stats.after_drops(), MAX_CAUSES_PER_FLOW as u64 + 3);
}
