//! The drive loop, without root: driven by recordings these tests write, into sinks that
//! keep what they were handed.
use std::{ops::ControlFlow, path::PathBuf, sync::Arc, time::Duration};

use super::{
    event::{Drop, Packet, ETH_P_IP},
    fixtures::location,
    recording::{Pace, RecordingSource, Speed},
    *,
};
use crate::record::{Counters, Header, Reader, Writer};

pub(crate) const STARTED: u64 = 5_000_000_000;
pub(crate) const NFT: u64 = 0xffff_ffff_81f6_3411;
const TCP: u64 = 0xffff_ffff_8203_3a59;
pub(crate) const NETNS: event::Netns = event::Netns {
    inode: 4_026_532_000,
    cookie: 8193,
};

pub(crate) fn header() -> Header {
    Header {
        kernel_release: "6.18.0-test".into(),
        hostname: "web-1".into(),
        started_ns: STARTED,
        snaplen: 16,
        reasons: vec![(3, "NO_SOCKET".into()), (12, "NETFILTER_DROP".into())],
        ..Header::default()
    }
}

fn syn(at: u64, location: u64, reason: u32, dport: u16) -> Drop {
    Drop {
        timestamp_ns: at,
        location,
        reason,
        netns: NETNS,
        ifindex: 2,
        len: 60,
        l2_len: 0,
        cpu: 0,
        packet: Packet {
            ethertype: ETH_P_IP,
            addrs: Some(("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap())),
            ip_proto: Some(6),
            ports: Some((40_000, dport)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

pub(crate) fn counters(at_ns: u64, matched: u64, lost: Vec<(event::Group, u64)>) -> Counters {
    let lost_total = lost.iter().map(|(_, n)| n).sum();
    Counters {
        at_ns,
        kernel: KernelCounters {
            seen: matched + 10,
            matched,
            lost: lost_total,
            lost_ungrouped: 0,
            missed: 0,
            ..Default::default()
        },
        lost_groups: lost,
        malformed: 0,
        overflow: 0,
        tcp: None,
        tcp_off: false,
        xdp: None,
    }
}

/// Five SYNs dropped by nft on 1678 (two of them lost: counted by group only), one SYN to
/// a closed port 9, each with the names it needs written before it, the counters twice.
/// `end`: whether the recorder ended the file.
fn nft_recording(end: bool) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    w.add_location(NFT, &location("nft_do_chain", 0x1c1))
        .unwrap();
    w.add_interface(NETNS, 2, "veth-b").unwrap();
    w.add_namespace(NETNS, "dt-b").unwrap();
    for i in 0..3 {
        w.write_drop(
            &syn(STARTED + i * 1_000_000, NFT, 12, 1678),
            &[0x45, 0, 0, 60],
        )
        .unwrap();
    }
    let nft_group = syn(0, NFT, 12, 1678).group();
    w.write_counters(&counters(STARTED + 3_000_000, 5, vec![(nft_group, 2)]))
        .unwrap();
    w.flush().unwrap();
    w.add_location(TCP, &location("tcp_v4_rcv", 0x99)).unwrap();
    w.write_drop(&syn(STARTED + 400_000_000_000, TCP, 3, 9), &[])
        .unwrap();
    if end {
        w.write_counters(&counters(
            STARTED + 400_000_000_001,
            6,
            vec![(nft_group, 2)],
        ))
        .unwrap();
        w.finish().unwrap()
    } else {
        // Killed before the block with the last drop was flushed... and after: the drop's
        // block goes out, the end block never does.
        w.flush().unwrap();
        w.get_ref().clone()
    }
}

/// A sink that keeps what it was handed: per drop, the names it could see.
#[derive(Default)]
struct Tape {
    drops: Vec<(Drop, usize, String, String, Option<String>)>,
    ticks: Vec<(u64, bool, u64)>,
    finished: Vec<(u64, u64)>,
    /// Break after this many drops.
    stop_after: Option<usize>,
    /// Ask the control to stop once the source has ended.
    stop_at_end: Option<Arc<Control>>,
    /// Ask the control to stop after this many ticks.
    stop_after_ticks: Option<(usize, Arc<Control>)>,
}

impl Sink for Tape {
    fn drop(&mut self, drop: &Drop, packet: &[u8], names: &Names) -> ControlFlow<()> {
        self.drops.push((
            *drop,
            packet.len(),
            names.location_display(drop.location),
            names.interface(drop.netns, drop.ifindex),
            names.reason(drop.reason),
        ));
        match self.stop_after {
            Some(n) if self.drops.len() >= n => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    }

    fn tick(&mut self, at: &Moment<'_>) -> ControlFlow<()> {
        self.ticks.push((at.now_ns, at.ended, at.agg.delivered()));
        if at.ended {
            if let Some(control) = &self.stop_at_end {
                control.stop();
            }
        }
        if let Some((n, control)) = &self.stop_after_ticks {
            if self.ticks.len() == *n {
                control.stop();
            }
        }
        ControlFlow::Continue(())
    }

    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        self.finished
            .push((at.agg.counters().matched, at.agg.delivered()));
        Ok(())
    }
}

pub(crate) fn recording(bytes: Vec<u8>) -> RecordingSource<std::io::Cursor<Vec<u8>>> {
    RecordingSource::new(
        Reader::new(std::io::Cursor::new(bytes)).unwrap(),
        PathBuf::from("test.dtr"),
    )
}

#[test]
fn a_recording_reaches_every_sink_named_and_counted_exactly() {
    let mut source = recording(nft_recording(true));
    let (mut a, mut b) = (Tape::default(), Tape::default());
    let outcome = drive_blocking(&mut source, &mut [&mut a, &mut b]).unwrap();
    assert_eq!(outcome.stop, Stop::End);
    for tape in [&a, &b] {
        assert_eq!(tape.drops.len(), 4);
        // Every drop came with its names: none was handed over before them.
        for (drop, _, location, interface, reason) in &tape.drops {
            let expected = if drop.location == NFT {
                ("nft_do_chain+0x1c1", Some("NETFILTER_DROP"))
            } else {
                ("tcp_v4_rcv+0x99", Some("NO_SOCKET"))
            };
            assert_eq!((location.as_str(), reason.as_deref()), expected);
            assert_eq!(interface, "veth-b");
        }
        assert_eq!(tape.drops[0].1, 4, "packet bytes come with the drop");
        assert!(
            tape.ticks.is_empty(),
            "no ticks when read as fast as it goes"
        );
        assert_eq!(
            tape.finished,
            [(6, 4)],
            "finished once, with the final counters"
        );
    }
    let agg = &outcome.agg;
    assert_eq!(agg.counters().matched, 6);
    assert_eq!(agg.grouped_total(), 6, "3 delivered + 2 lost by group + 1");
    let nft = agg.get(&syn(0, NFT, 12, 1678).group()).unwrap();
    assert_eq!((nft.delivered, nft.lost, nft.count()), (3, 2, 5));
    assert_eq!(outcome.names.namespace(NETNS), "dt-b");
    assert_eq!(source.events(), 4);
    assert_eq!(source.status(), crate::record::Status::Complete);
}

#[test]
fn a_cut_recording_counts_the_drops_after_its_last_counters() {
    let mut source = recording(nft_recording(false));
    let outcome = drive_blocking(&mut source, &mut []).unwrap();
    assert_eq!(outcome.stop, Stop::End);
    assert!(matches!(
        source.status(),
        crate::record::Status::Truncated { .. }
    ));
    // The last counters said 5; the drop read after them counts too.
    assert_eq!(outcome.agg.counters().matched, 6);
    assert_eq!(outcome.agg.grouped_total(), 6);
}

#[test]
fn a_damaged_block_is_read_around_and_said() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    for i in 0..3 {
        w.write_drop(&syn(STARTED + i, NFT, 12, 1678), &[]).unwrap();
    }
    w.flush().unwrap();
    let damaged_at = w.get_ref().len();
    for i in 3..7 {
        w.write_drop(&syn(STARTED + i, NFT, 12, 1678), &[]).unwrap();
    }
    w.flush().unwrap();
    w.write_drop(&syn(STARTED + 7, NFT, 12, 1678), &[]).unwrap();
    let mut bytes = w.finish().unwrap();
    let frame = crate::record::format::FRAME_LEN;
    let payload = u32::from_le_bytes(bytes[damaged_at + 1..damaged_at + 5].try_into().unwrap());
    let block_len = frame + payload as usize;
    bytes[damaged_at + frame + 2] ^= 0x10;
    let mut source = recording(bytes);
    let mut tape = Tape::default();
    let outcome = drive_blocking(&mut source, &mut [&mut tape]).unwrap();
    assert_eq!(outcome.stop, Stop::End);
    assert_eq!(
        tape.drops.len(),
        4,
        "the 4 drops of the damaged block are skipped"
    );
    assert_eq!(source.status(), crate::record::Status::Complete);
    assert_eq!(
        source.damage_warning().unwrap(),
        format!(
            "test.dtr: 1 damaged block skipped ({block_len} bytes from byte {damaged_at}; 4 \
             events, by the end block's count); read around: the drops they held are missing \
             from the groups"
        )
    );
}

#[test]
fn a_recording_without_counters_counts_the_drops_it_holds() {
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    for i in 0..7 {
        w.write_drop(&syn(STARTED + i, NFT, 12, 1678), &[]).unwrap();
    }
    let mut source = recording(w.finish().unwrap());
    let outcome = drive_blocking(&mut source, &mut []).unwrap();
    assert_eq!(outcome.agg.counters().matched, 7);
    // Without names blocks, locations stay raw addresses.
    assert_eq!(outcome.names.location_display(NFT), "0xffffffff81f63411");
}

#[test]
fn a_sink_that_has_enough_stops_the_run_and_still_finishes() {
    let mut source = recording(nft_recording(true));
    let mut tape = Tape {
        stop_after: Some(2),
        ..Tape::default()
    };
    let mut other = Tape::default();
    let outcome = drive_blocking(&mut source, &mut [&mut tape, &mut other]).unwrap();
    assert_eq!(outcome.stop, Stop::Sink);
    // The drops of the step in flight still reach every sink: they count.
    assert_eq!(tape.drops.len(), other.drops.len());
    assert!(tape.drops.len() >= 2);
    assert_eq!(tape.finished.len(), 1);
    assert_eq!(outcome.agg.delivered(), tape.drops.len() as u64);
}

#[test]
fn a_paced_recording_follows_its_own_clock_then_holds_at_the_end() {
    let control = Arc::new(Control::default());
    let pace = Pace {
        speed: Speed::Factor(1.0),
        interval: Duration::from_millis(1),
    };
    let mut source = recording(nft_recording(true)).paced(pace, Arc::clone(&control));
    // Far behind the last drop (400 s in): a few ticks, then stop from outside.
    let mut tape = Tape {
        stop_after_ticks: Some((5, Arc::clone(&control))),
        ..Tape::default()
    };
    let outcome = drive_blocking(&mut source, &mut [&mut tape]).unwrap();
    assert_eq!(outcome.stop, Stop::Requested);
    assert_eq!(tape.ticks.len(), 5);
    let (first_now, first_ended, first_delivered) = tape.ticks[0];
    // One interval of recording time went by: the first drop is due, not the others.
    assert_eq!(
        (first_now, first_ended, first_delivered),
        (STARTED + 1_000_000, false, 2)
    );
    assert!(
        tape.ticks.iter().all(|t| !t.1 && t.2 < 4),
        "{:?}",
        tape.ticks
    );
    assert!(
        tape.ticks.windows(2).all(|w| w[0].0 <= w[1].0),
        "the clock never goes back"
    );

    // At full speed everything is due at the first tick, and the source holds at its end
    // (now = the last item) until asked to stop.
    let control = Arc::new(Control::default());
    let pace = Pace {
        speed: Speed::Max,
        interval: Duration::from_millis(1),
    };
    let mut source = recording(nft_recording(true)).paced(pace, Arc::clone(&control));
    let mut tape = Tape {
        stop_at_end: Some(control),
        ..Tape::default()
    };
    let outcome = drive_blocking(&mut source, &mut [&mut tape]).unwrap();
    assert_eq!(outcome.stop, Stop::Requested);
    assert_eq!(tape.ticks[0], (STARTED + 400_000_000_001, true, 4));
    assert_eq!(outcome.agg.counters().matched, 6);
}

#[test]
fn a_paused_recording_waits() {
    let control = Arc::new(Control::default());
    control.set_paused(true);
    let pace = Pace {
        speed: Speed::Max,
        interval: Duration::from_millis(1),
    };
    let mut source = recording(nft_recording(true)).paced(pace, Arc::clone(&control));
    let mut tape = Tape {
        stop_after_ticks: Some((5, Arc::clone(&control))),
        ..Tape::default()
    };
    drive_blocking(&mut source, &mut [&mut tape]).unwrap();
    let delivered: Vec<u64> = tape.ticks.iter().map(|t| t.2).collect();
    // Only what was due when playback started (the first drop, at the start).
    assert_eq!(delivered, [1, 1, 1, 1, 1], "the clock stands while paused");
}
