//! Sinks driven by the loop over recordings the tests write (the loop's own tests are in
//! `pipeline/tests.rs`, whose recordings these share).
use std::ops::ControlFlow;

use crate::{
    pipeline::{
        drive_blocking, event,
        event::ETH_P_IP,
        fixtures::location,
        resolve, tcp,
        tests::{counters, header, recording, NETNS, NFT, STARTED},
        xdp::{group, XdpProgram},
        Flow, Names, Sink,
    },
    record::Writer,
};

/// How many events one core takes in, as the live source handles them: decoded from the
/// kernel's wire bytes, their location named, counted in the flow and handed to the sinks
/// (none, or the recorder). Every 64th drop comes from a new port, so groups grow too.
/// `cargo test --release -p droptrace --lib sinks::tests::ingest_rate -- --ignored --nocapture`
#[test]
#[ignore = "prints timings"]
fn ingest_rate() {
    use droptrace_common as wire;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
    let syms = std::fs::read(format!("{dir}kallsyms.6.18")).unwrap();
    let symbols = resolve::SymbolNames::new(Some(
        crate::kernel::kallsyms::KernelSymbols::parse(&syms[..]).unwrap(),
    ));
    const N: usize = 2_000_000;
    let records: Vec<[u8; 88]> = (0..N)
        .map(|i| {
            let ev = wire::DropEvent {
                timestamp_ns: STARTED + i as u64 * 1000,
                location: 0xffff_ffff_81f6_3250 + 0x1c1,
                reason: 12,
                netns: NETNS.inode,
                netns_cookie: NETNS.cookie,
                ifindex: 2,
                skb_len: 60,
                cpu: (i % 2) as u32,
                l3_proto: ETH_P_IP,
                l4_proto: 6,
                flags: wire::EVENT_IPV4 | wire::EVENT_PORTS,
                saddr: [10, 77, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                daddr: [10, 77, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                sport: 40_000,
                dport: (i / 64) as u16,
                icmp_type: 0,
                icmp_code: 0,
                tcp_flags: 0,
                _pad: 0,
            };
            // SAFETY: a plain #[repr(C)] struct of integers, 88 bytes, read as bytes.
            unsafe { std::mem::transmute::<wire::DropEvent, [u8; 88]>(ev) }
        })
        .collect();
    let run = |sinks: &mut [&mut dyn Sink]| {
        let mut flow = Flow::new(Names::default(), sinks);
        let start = std::time::Instant::now();
        for bytes in &records {
            let drop = event::decode(bytes).unwrap();
            symbols.name(&mut flow.names, drop.location);
            flow.drop(&drop, event::packet_bytes(bytes));
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(flow.agg().delivered(), N as u64);
        N as f64 / secs
    };
    let bare = run(&mut []);
    let path = std::env::temp_dir().join(format!("droptrace-ingest-{}.dtr", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    let mut recorder = super::recorder::Recorder::new(
        Writer::new(file, &header()).unwrap(),
        path.clone(),
        None,
        false,
    );
    let recorded = run(&mut [&mut recorder]);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    eprintln!(
        "ingest, one core: {:.2} M events/s counted; {:.2} M events/s counted and recorded ({:.1} bytes an event)",
        bare / 1e6,
        recorded / 1e6,
        size as f64 / N as f64
    );
}

#[test]
fn a_captured_version_3_recording_reports_what_the_build_that_made_it_reported() {
    let mut source = recording(crate::record::tests::V3_RECORDING.to_vec());
    let outcome = drive_blocking(&mut source, &mut []).unwrap();
    let summary = super::summary::Summary::new(&outcome.agg, &outcome.names).to_line();
    let got: serde_json::Value = serde_json::from_str(&summary.unwrap()).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/recording.v3.report.json")).unwrap();
    assert_eq!(got, want);
    assert!(
        got.get("tcp").is_none(),
        "a version 3 file has no TCP figures"
    );
}

#[test]
fn a_captured_version_4_recording_reports_what_the_build_that_made_it_reported() {
    let mut source = recording(crate::record::tests::V4_RECORDING.to_vec());
    let outcome = drive_blocking(&mut source, &mut []).unwrap();
    let summary = super::summary::Summary::new(&outcome.agg, &outcome.names).to_line();
    let got: serde_json::Value = serde_json::from_str(&summary.unwrap()).unwrap();
    let want: serde_json::Value =
        serde_json::from_str(include_str!("../../fixtures/recording.v4.report.json")).unwrap();
    assert_eq!(got, want);
    assert!(
        got.get("xdp_programs").is_none(),
        "a version 4 file has no XDP figures"
    );
}

/// A recording's XDP verdicts (format version 5) come back as the program's groups, named
/// by it, in the total, with the programs listed.
#[test]
fn a_recordings_xdp_verdicts_are_groups_named_by_their_program() {
    use crate::record::XdpCounts;
    let mut w = Writer::new(Vec::new(), &header()).unwrap();
    w.add_interface(NETNS, 2, "veth-b").unwrap();
    w.add_namespace(NETNS, "dt-b").unwrap();
    let mut c = counters(2_000, 40, vec![]);
    c.xdp = Some(XdpCounts {
        programs: vec![
            XdpProgram {
                id: 42,
                name: "dt_xdp_udp".into(),
                untraced: None,
            },
            XdpProgram {
                id: 43,
                name: "dt_drop".into(),
                untraced: Some("it has no BTF".into()),
            },
        ],
        groups: vec![(group(42, 1, NETNS, 2), 40)],
    });
    w.write_counters(&c).unwrap();
    let outcome = drive_blocking(&mut recording(w.finish().unwrap()), &mut []).unwrap();
    let summary = super::summary::Summary::new(&outcome.agg, &outcome.names).to_line();
    let got: serde_json::Value = serde_json::from_str(&summary.unwrap()).unwrap();
    assert_eq!(got["total"], 40, "{got:#}");
    let groups = got["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{got:#}");
    assert_eq!(groups[0]["location"], "xdp dt_xdp_udp (id 42)");
    assert_eq!(groups[0]["reason"], "XDP_DROP");
    assert_eq!(groups[0]["count"], 40);
    assert_eq!(groups[0]["interface"], "veth-b");
    assert_eq!(groups[0]["namespace"], "dt-b");
    let programs = got["xdp_programs"].as_array().unwrap();
    assert_eq!(programs.len(), 2, "{got:#}");
    assert_eq!(programs[1]["traced"], false);
}

/// Keeps the TCP events it was handed, with the name of the drop that explains each.
#[derive(Default)]
struct TcpTape {
    events: Vec<(tcp::TcpKind, Option<String>)>,
}

impl Sink for TcpTape {
    fn tcp(&mut self, ev: &tcp::TcpEvent, names: &Names) -> ControlFlow<()> {
        let cause = ev.drop.map(|m| names.location_display(m.cause.location));
        self.events.push((ev.kind, cause));
        ControlFlow::Continue(())
    }
}

#[test]
fn a_recordings_tcp_events_reach_the_sinks_and_its_counters_the_tcp_section() {
    use crate::pipeline::tcp::tests::{bytes_of, retransmit};
    let s = 1_000_000_000;
    let mut h = header();
    h.reset_reasons = vec![(2, "NO_SOCKET".into())];
    let mut w = Writer::new(Vec::new(), &h).unwrap();
    let mut ev = retransmit(STARTED + s, 40000, STARTED + s - 1_000);
    ev.drop.location = NFT;
    w.add_location(NFT, &location("nft_do_chain", 0x1c1))
        .unwrap();
    w.write_tcp(&tcp::decode(&bytes_of(&ev)).unwrap()).unwrap();
    let mut rst = retransmit(STARTED + 2 * s, 40000, 0);
    rst.kind = droptrace_common::TCP_RESET_SENT;
    rst.flags = droptrace_common::TCP_EVENT_HAS_REASON;
    rst.reason = 2;
    w.write_tcp(&tcp::decode(&bytes_of(&rst)).unwrap()).unwrap();
    let mut c = counters(STARTED + 3 * s, 0, vec![]);
    c.tcp = Some(tcp::TcpCounters {
        retransmits: 2,
        resets_sent: 1,
        resets_received: 0,
        lost: 1,
        missed: 0,
    });
    w.write_counters(&c).unwrap();
    let mut source = recording(w.finish().unwrap());
    let mut tape = TcpTape::default();
    let outcome = drive_blocking(&mut source, &mut [&mut tape]).unwrap();
    assert_eq!(
        tape.events,
        [
            (
                tcp::TcpKind::Retransmit,
                Some("nft_do_chain+0x1c1".to_owned())
            ),
            (tcp::TcpKind::ResetSent, None)
        ]
    );
    let summary = super::tcp::TcpSummary::new(outcome.agg.tcp(), &outcome.names).unwrap();
    assert_eq!(
        (
            summary.retransmits,
            summary.after_drops,
            summary.beyond_host
        ),
        (2, 1, 0)
    );
    assert_eq!((summary.resets_sent, summary.lost_events), (1, 1));
    assert_eq!(summary.flows[0].resets_sent[0].reason, "NO_SOCKET");
    assert!(summary.reset_reasons);
}
