//! The live view driven by fixed synthetic pipeline data: key handling, grouping, sorting,
//! and snapshots of what it draws (ratatui's TestBackend, compared with insta).
use std::{collections::HashMap, sync::Arc};

use ratatui::{backend::TestBackend, Terminal};

use super::{
    state::{Action, Key, Mode, State},
    update::update,
    view,
};
use crate::{
    kernel::reasons::DropReasonTable,
    live::{
        grouping::{Grouping, Sort},
        snapshot::{Detail, DetailRequest, Snapshot, SourceInfo},
    },
    pipeline::{
        aggregate::{GroupStats, KernelCounters},
        event::{Drop, Group, Netns, Packet},
        fixtures::location,
        interfaces::{InterfaceRow, Layer, Watched},
        names::Names,
    },
};

const S: u64 = 1_000_000_000;
const T0: u64 = 5_000 * S;
const NFT: u64 = 0xffff_ffff_8100_0000;
const TCP: u64 = 0xffff_ffff_8200_0000;
const QDISC: u64 = 0xffff_ffff_8300_0000;
const IP6: u64 = 0xffff_ffff_8400_0000;
const NS_A: Netns = Netns {
    inode: 4026532246,
    cookie: 4097,
};
const NS_HOST: Netns = Netns {
    inode: 4026531840,
    cookie: 1,
};

fn names() -> Arc<Names> {
    let mut n = Names::with_reasons(Some(DropReasonTable::from_entries([
        (12, "NETFILTER_DROP"),
        (3, "NO_SOCKET"),
        (39, "QDISC_DROP"),
        (2, "NOT_SPECIFIED"),
    ])));
    n.locations.insert(NFT, location("nft_do_chain", 0x3e8));
    n.locations.insert(TCP, location("tcp_v4_rcv", 0x91));
    n.locations
        .insert(QDISC, location("__dev_queue_xmit", 0xd01));
    n.locations.insert(IP6, location("ip6_mc_input", 0x15e));
    n.interfaces.insert((NS_A, 2), "veth-b".into());
    n.interfaces.insert((NS_HOST, 3), "eth0".into());
    n.namespaces.insert(NS_A, "dt-a".into());
    n.namespaces.insert(NS_HOST, "host".into());
    Arc::new(n)
}

fn group(
    location: u64,
    reason: u32,
    proto: Option<u8>,
    dport: Option<u16>,
    netns: Netns,
    ifindex: u32,
) -> Group {
    Group {
        location,
        reason,
        ethertype: if proto == Some(58) { 0x86dd } else { 0x0800 },
        ip_proto: proto,
        dport,
        netns,
        ifindex,
    }
}

/// The groups of the fixture and how many drops each makes per second.
fn fixture_groups() -> Vec<(Group, u64)> {
    vec![
        (group(NFT, 12, Some(6), Some(1678), NS_A, 2), 40),
        (group(TCP, 3, Some(6), Some(9), NS_A, 2), 12),
        (group(QDISC, 39, Some(17), Some(6001), NS_HOST, 3), 250),
        (group(IP6, 2, Some(58), None, NS_HOST, 3), 1),
    ]
}

fn sample(g: &Group, t: u64, sport: u16) -> Drop {
    Drop {
        timestamp_ns: t,
        location: g.location,
        reason: g.reason,
        netns: g.netns,
        ifindex: g.ifindex,
        len: 60,
        l2_len: 0,
        cpu: 1,
        packet: Packet {
            ethertype: g.ethertype,
            addrs: Some(("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap())),
            ip_proto: g.ip_proto,
            ports: g.dport.map(|d| (sport, d)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

/// The snapshot at `secs` after the start (4 per second), with `lost` lost events of the
/// qdisc group and the samples of `request`.
fn snapshot_at(quarter: u64, request: Option<DetailRequest>) -> Snapshot {
    snapshot_named(quarter, request, names())
}

/// The names of [`names`], with `dt-a` the namespace of a pod's container.
fn names_with_pod() -> Arc<Names> {
    let mut n = (*names()).clone();
    n.workloads.insert(
        NS_A,
        crate::pipeline::fixtures::workload(
            "9b2e7d4a1c6f3e8b0d5a2c7f4e9b1d6a3c8f5e2b7d0a4c9f6e1b8d3a5c2f7e4b",
            Some("0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10"),
        ),
    );
    Arc::new(n)
}

fn snapshot_named(quarter: u64, request: Option<DetailRequest>, names: Arc<Names>) -> Snapshot {
    let now = T0 + quarter * S / 4;
    let secs_f = quarter as f64 / 4.0;
    let mut groups = Vec::new();
    let mut matched = 0;
    for (i, (g, per_sec)) in fixture_groups().into_iter().enumerate() {
        // The SYN drops start after 60 s: a new row near the end of the fixture.
        let start = if i == 1 { 60.0 } else { 0.0 };
        let n = ((secs_f - start).max(0.0) * per_sec as f64) as u64;
        if n == 0 {
            continue;
        }
        matched += n;
        let lost = if i == 2 { n / 10 } else { 0 };
        groups.push((
            g,
            GroupStats {
                delivered: n - lost,
                lost,
                counted: 0,
                first_ns: T0 + (start * S as f64) as u64 + S / 8,
                last_ns: now - S / 10,
                max_len: 60,
                ..GroupStats::default()
            },
        ));
    }
    let detail = request.map(|r| {
        let members: Vec<Group> = fixture_groups()
            .into_iter()
            .map(|(g, _)| g)
            .filter(|g| r.grouping.key(g) == r.key)
            .collect();
        let samples = members
            .iter()
            .flat_map(|g| {
                (0..3).map(move |i| sample(g, now - S / 2 + i * S / 10, 40000 + i as u16))
            })
            .collect();
        let mut source_lines = HashMap::new();
        source_lines.insert(NFT, "net/netfilter/nf_tables_core.c:285".to_owned());
        (
            r,
            Detail {
                samples,
                source_lines,
                source_pending: false,
            },
        )
    });
    Snapshot {
        now_ns: now,
        started_ns: T0,
        counters: KernelCounters {
            seen: matched + 100,
            matched,
            lost: groups.iter().map(|(_, s)| s.lost).sum(),
            lost_ungrouped: 0,
            missed: 0,
            ..Default::default()
        },
        overflow: 0,
        groups,
        names,
        detail,
        diagnosis: None,
        finished: false,
        interfaces: Vec::new(),
        watched: Watched::default(),
        tcp: None,
        tcp_flows: Vec::new(),
    }
}

fn info() -> SourceInfo {
    SourceInfo {
        source: "live".into(),
        kernel: "6.18.0".into(),
        filters: "none".into(),
        debuginfo: Ok("/usr/lib/debug/boot/vmlinux-6.18.0".into()),
        diagnosis: Ok(()),
    }
}

/// A view fed 62 seconds of the fixture, four snapshots a second.
fn fed_state() -> State {
    let mut state = State::new(info(), false);
    for q in 0..=248 {
        let request = state.detail_request();
        update(
            &mut state,
            Action::Snapshot(Box::new(snapshot_at(q, request))),
        );
    }
    state
}

fn keys(state: &mut State, keys: &[Key]) {
    for k in keys {
        update(state, Action::Key(*k));
    }
}

fn draw(state: &State, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| view::render(state, f)).unwrap();
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..height {
        let line: String = (0..width)
            .map(|x| buffer[(x, y)].symbol().to_owned())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn row_names(state: &State) -> Vec<String> {
    let names = &state.shown().0.names;
    state
        .rows()
        .iter()
        .map(|r| state.grouping.row_name(&r.key, names))
        .collect()
}

#[test]
fn rows_fold_by_grouping_and_counts_add_up() {
    let mut state = fed_state();
    let total = state.totals().0;
    for (i, grouping) in Grouping::ALL.into_iter().enumerate() {
        keys(&mut state, &[Key::Char(char::from(b'1' + i as u8))]);
        assert_eq!(state.grouping, grouping);
        let rows = state.rows();
        assert_eq!(
            rows.iter().map(|r| r.stats.count()).sum::<u64>(),
            total,
            "{grouping:?}"
        );
    }
    keys(&mut state, &[Key::Char('5')]);
    assert_eq!(row_names(&state), ["eth0 host", "veth-b dt-a"]);
    keys(&mut state, &[Key::Char('6')]);
    assert_eq!(row_names(&state), ["host", "dt-a"]);
    keys(&mut state, &[Key::Char('3')]);
    assert_eq!(
        row_names(&state),
        ["QDISC_DROP", "NETFILTER_DROP", "NOT_SPECIFIED", "NO_SOCKET"]
    );
}

#[test]
fn the_header_says_what_happened_to_tcp_once_something_did() {
    use crate::live::snapshot::TcpTotals;
    let mut state = State::new(info(), false);
    let mut snap = snapshot_at(8, None);
    snap.tcp = Some(TcpTotals::default());
    update(&mut state, Action::Snapshot(Box::new(snap.clone())));
    assert!(!draw(&state, 160, 12).contains("tcp:"));
    snap.tcp = Some(TcpTotals {
        retransmits: 120,
        after_drops: 118,
        beyond_host: 2,
        resets_sent: 3,
        resets_received: 1,
        missed: 0,
        off: false,
    });
    update(&mut state, Action::Snapshot(Box::new(snap.clone())));
    let screen = draw(&state, 160, 12);
    assert!(
        screen.contains(
            "tcp: 120 retransmits (118 after drops here, 2 beyond)  3 resets sent  1 received"
        ),
        "{screen}"
    );
    assert!(!screen.contains("missed"), "{screen}");
    // Runs the kernel skipped are said beside the figures they are missing from.
    snap.tcp = snap.tcp.map(|t| TcpTotals { missed: 2, ..t });
    update(&mut state, Action::Snapshot(Box::new(snap)));
    let screen = draw(&state, 200, 12);
    assert!(
        screen.contains("1 received  2 TCP events missed by the kernel"),
        "{screen}"
    );
}

#[test]
fn sorts_by_every_key() {
    let mut state = fed_state();
    assert_eq!(state.sort, Sort::Count);
    let first = |s: &State| row_names(s)[0].clone();
    assert!(first(&state).starts_with("__dev_queue_xmit"));
    keys(&mut state, &[Key::Char('s')]);
    assert_eq!(state.sort, Sort::Rate);
    assert!(first(&state).starts_with("__dev_queue_xmit"));
    keys(&mut state, &[Key::Char('s')]);
    assert_eq!(state.sort, Sort::Name);
    assert_eq!(
        row_names(&state)
            .iter()
            .map(|n| n.split('+').next().unwrap().to_owned())
            .collect::<Vec<_>>(),
        [
            "__dev_queue_xmit",
            "ip6_mc_input",
            "nft_do_chain",
            "tcp_v4_rcv"
        ]
    );
    keys(&mut state, &[Key::Char('s')]);
    assert_eq!(state.sort, Sort::Port);
    let ports: Vec<Option<u16>> = state.rows().iter().map(|r| r.key.dport).collect();
    assert_eq!(ports, [Some(9), Some(1678), Some(6001), None]);
    keys(&mut state, &[Key::Char('s')]);
    assert_eq!(state.sort, Sort::Recency);
    keys(
        &mut state,
        &[
            Key::Char('S'),
            Key::Char('S'),
            Key::Char('S'),
            Key::Char('S'),
        ],
    );
    assert_eq!(state.sort, Sort::Count);
}

#[test]
fn new_rows_are_marked_and_rates_follow_the_last_seconds() {
    let state = fed_state();
    let rows = state.rows();
    let syn = rows.iter().find(|r| r.key.location == TCP).unwrap();
    assert!(syn.new, "the SYN drops began 2 s before the end");
    let nft = rows.iter().find(|r| r.key.location == NFT).unwrap();
    assert!(!nft.new);
    assert!((nft.rate - 40.0).abs() < 2.0, "{}", nft.rate);
}

#[test]
fn selection_moves_and_stays_in_range() {
    let mut state = fed_state();
    keys(
        &mut state,
        &[Key::Down, Key::Down, Key::Down, Key::Down, Key::Down],
    );
    assert_eq!(state.selected, 3);
    keys(&mut state, &[Key::Up, Key::Char('k')]);
    assert_eq!(state.selected, 1);
    keys(&mut state, &[Key::End]);
    assert_eq!(state.selected, 3);
    keys(&mut state, &[Key::Home]);
    assert_eq!(state.selected, 0);
    update(&mut state, Action::PageSize(2));
    keys(&mut state, &[Key::PageDown]);
    assert_eq!(state.selected, 2);
}

#[test]
fn enter_opens_details_and_asks_the_source_for_samples() {
    let mut state = fed_state();
    assert_eq!(state.detail_request(), None);
    keys(&mut state, &[Key::Down, Key::Enter]);
    let request = state.detail_request().expect("a detail request");
    assert_eq!(request.key.location, NFT);
    assert_eq!(request.grouping, Grouping::Site);
    keys(&mut state, &[Key::Esc]);
    assert_eq!(state.mode, Mode::Table);
    assert_eq!(state.detail_request(), None);
}

#[test]
fn pause_freezes_the_screen_while_counting_goes_on() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('p')]);
    assert!(state.paused());
    let shown = state.totals().0;
    update(
        &mut state,
        Action::Snapshot(Box::new(snapshot_at(300, None))),
    );
    assert_eq!(state.totals().0, shown, "the screen stays");
    assert!(state.latest.counters.matched > shown, "counting goes on");
    keys(&mut state, &[Key::Char('p')]);
    assert!(state.totals().0 > shown);
}

#[test]
fn reset_counts_from_now_on() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('r')]);
    assert_eq!(state.totals(), (0, 0));
    assert!(state.rows().is_empty());
    update(
        &mut state,
        Action::Snapshot(Box::new(snapshot_at(252, None))),
    );
    let after: u64 = state.rows().iter().map(|r| r.stats.count()).sum();
    assert_eq!(after, state.totals().0);
    assert!(after > 0 && after < 400, "{after}");
    assert!(state.message.as_deref().unwrap().contains("reset"));
}

#[test]
fn filter_is_typed_applied_and_cleared() {
    let mut state = fed_state();
    let typed: Vec<Key> = "--port 1678".chars().map(Key::Char).collect();
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &typed);
    assert_eq!(state.mode, Mode::Filter("--port 1678".into()));
    keys(&mut state, &[Key::Enter]);
    assert_eq!(state.mode, Mode::Table);
    assert_eq!(
        row_names(&state),
        ["nft_do_chain+0x3e8 NETFILTER_DROP tcp 1678"]
    );

    // A bad filter keeps the input open with the error; Esc leaves the old filter.
    keys(&mut state, &[Key::Char('/'), Key::Char('x'), Key::Enter]);
    assert!(matches!(state.mode, Mode::Filter(_)));
    assert!(state.message.as_deref().unwrap().contains("not a port"));
    keys(&mut state, &[Key::Esc]);
    assert_eq!(state.filter.text(), "--port 1678");

    // Emptying it shows everything again.
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &[Key::Backspace; 20]);
    keys(&mut state, &[Key::Enter]);
    assert_eq!(state.rows().len(), 4);
}

#[test]
fn quit_keys_and_help() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('?')]);
    assert_eq!(state.mode, Mode::Help);
    keys(&mut state, &[Key::Char('x')]);
    assert_eq!(state.mode, Mode::Table);
    keys(&mut state, &[Key::Char('/'), Key::Char('q')]);
    assert!(!state.quit, "q is text while typing a filter");
    keys(&mut state, &[Key::CtrlC]);
    assert!(state.quit);
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('q')]);
    assert!(state.quit);
}

#[test]
fn an_empty_source_says_so() {
    let state = State::new(info(), false);
    let screen = draw(&state, 80, 24);
    assert!(screen.contains("No drops yet"), "{screen}");
}

/// What a live run with nothing dropped has watched: one XDP program on one of 7
/// interfaces in 3 namespaces, traced, and one elsewhere that cannot be.
fn watched() -> Watched {
    Watched {
        interfaces_read: true,
        namespaces: 3,
        interfaces: 7,
        xdp_programs: 1,
        qstats_interfaces: Some(1),
        xdp_traced: Some((1, 1)),
    }
}

#[test]
fn an_empty_live_view_says_what_it_watches() {
    let mut state = State::new(info(), false);
    let snapshot = Snapshot {
        now_ns: T0 + S,
        started_ns: T0,
        names: names(),
        watched: watched(),
        ..Snapshot::default()
    };
    update(&mut state, Action::Snapshot(Box::new(snapshot)));
    insta::assert_snapshot!(draw(&state, 120, 12));
}

/// Two interface counters that grew: a veth's tx_dropped (also kfree_skb's) and a NIC's
/// missed frames (never kfree_skb's).
fn interface_rows() -> Vec<InterfaceRow> {
    let row = |interface: &str, counter, layer, in_kfree_skb, drops| InterfaceRow {
        netns: NS_A,
        netns_label: "dt-a".into(),
        ifindex: 3,
        interface: interface.into(),
        counter: std::borrow::Cow::Borrowed(counter),
        layer,
        in_kfree_skb,
        counts_xdp_drops: false,
        drops,
        last_ns: T0,
    };
    vec![
        row("veth-b", "tx_dropped", Layer::Driver, true, 40),
        row("eth1", "rx_missed_errors", Layer::Nic, false, 7),
    ]
}

fn state_with_interfaces() -> State {
    let mut state = fed_state();
    let mut last = snapshot_at(249, None);
    last.interfaces = interface_rows();
    last.watched = watched();
    update(&mut state, Action::Snapshot(Box::new(last)));
    state
}

#[test]
fn snapshot_table_with_interface_counters_80x24() {
    insta::assert_snapshot!(draw(&state_with_interfaces(), 80, 24));
}

#[test]
fn snapshot_table_by_layer_120x40() {
    let mut state = state_with_interfaces();
    keys(&mut state, &[Key::Char('8')]);
    assert_eq!(state.grouping, Grouping::Layer);
    assert_eq!(row_names(&state), ["stack kfree_skb"]);
    insta::assert_snapshot!(draw(&state, 120, 40));
}

#[test]
fn snapshot_table_80x24() {
    insta::assert_snapshot!(draw(&fed_state(), 80, 24));
}

#[test]
fn snapshot_table_120x40() {
    insta::assert_snapshot!(draw(&fed_state(), 120, 40));
}

#[test]
fn snapshot_table_by_interface_paused_filtered_120x40() {
    let mut state = fed_state();
    let typed: Vec<Key> = "--proto tcp".chars().map(Key::Char).collect();
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &typed);
    keys(&mut state, &[Key::Enter, Key::Char('5'), Key::Char('p')]);
    insta::assert_snapshot!(draw(&state, 120, 40));
}

fn detail_state() -> State {
    let mut state = fed_state();
    keys(&mut state, &[Key::Down, Key::Enter]);
    let request = state.detail_request();
    update(
        &mut state,
        Action::Snapshot(Box::new(snapshot_at(249, request))),
    );
    state
}

#[test]
fn snapshot_detail_80x24() {
    insta::assert_snapshot!(draw(&detail_state(), 80, 24));
}

#[test]
fn snapshot_detail_120x40() {
    insta::assert_snapshot!(draw(&detail_state(), 120, 40));
}

/// Grouped by pod (key 7), then the drill-down of the pod's row.
fn pod_state(detail: bool) -> State {
    let mut state = State::new(info(), false);
    for q in 0..=248 {
        let request = state.detail_request();
        update(
            &mut state,
            Action::Snapshot(Box::new(snapshot_named(q, request, names_with_pod()))),
        );
        if q == 0 {
            keys(&mut state, &[Key::Char('7')]);
        }
    }
    if detail {
        let at = row_names(&state)
            .iter()
            .position(|n| n.starts_with("shop/web-7d9f"))
            .expect("the pod's row");
        for _ in 0..at {
            keys(&mut state, &[Key::Down]);
        }
        keys(&mut state, &[Key::Enter]);
        let request = state.detail_request();
        update(
            &mut state,
            Action::Snapshot(Box::new(snapshot_named(249, request, names_with_pod()))),
        );
    }
    state
}

#[test]
fn snapshot_table_by_pod_and_its_detail_120x40() {
    let table = pod_state(false);
    assert_eq!(row_names(&table), ["- - host", "shop/web-7d9f web dt-a"]);
    insta::assert_snapshot!(draw(&table, 120, 40));
    let detail = draw(&pod_state(true), 120, 40);
    assert!(
        detail.contains(
            "in pod shop/web-7d9f (uid 0b6c4f0e-1111-4c2a-9d3e-5f2a7c1e9b10)  container web (containerd 9b2e7d4a1c6f)"
        ),
        "{detail}"
    );
    assert!(detail.contains("  pod shop/web-7d9f"), "{detail}");
}

#[test]
fn snapshot_help_80x24() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('?')]);
    insta::assert_snapshot!(draw(&state, 80, 24));
}

#[test]
fn snapshot_help_120x40() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('?')]);
    insta::assert_snapshot!(draw(&state, 120, 40));
}

#[test]
fn tiny_terminals_do_not_panic() {
    let state = detail_state();
    for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (300, 100)] {
        draw(&state, w, h);
        draw(&fed_state(), w, h);
    }
}

#[test]
fn no_color_means_no_colors() {
    use ratatui::style::Color;
    for color in [false, true] {
        let mut state = fed_state();
        state.color = color;
        let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
        terminal.draw(|f| view::render(&state, f)).unwrap();
        let colored = terminal
            .backend()
            .buffer()
            .content()
            .iter()
            .any(|c| c.fg != Color::Reset || c.bg != Color::Reset);
        assert_eq!(colored, color);
    }
}

mod diagnosis;
mod tcp;

/// `r` starts the view over: counts, the First column, the sparklines, the rate window and
/// the percentiles of the header and of the drill-down all count from the reset.
#[test]
fn reset_starts_first_sparklines_and_percentiles_over() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('r')]);
    let at = state.history.now_ns;
    // Two more seconds of the fixture.
    for q in 249..=256 {
        update(&mut state, Action::Snapshot(Box::new(snapshot_at(q, None))));
    }
    let now = state.history.now_ns;
    let nft = state
        .rows()
        .iter()
        .find(|r| r.key.location == NFT)
        .unwrap()
        .clone();
    assert!(nft.stats.count() <= 80, "{}", nft.stats.count());
    assert!(nft.first_ns >= at, "First is before the reset");
    assert!(!nft.new, "a row seen before the reset is not new");
    let series = state
        .history
        .groups
        .get(&group(NFT, 12, Some(6), Some(1678), NS_A, 2))
        .unwrap();
    let per_second: u32 = series.per_second(now).iter().sum();
    assert_eq!(
        u64::from(per_second),
        nft.stats.count(),
        "the sparkline's drops"
    );
    assert!((nft.rate - 40.0).abs() < 3.0, "{}", nft.rate);
    assert!(
        state.history.total_per_second.len() <= 2,
        "{} seconds in the percentiles",
        state.history.total_per_second.len()
    );
    let screen = draw(&state, 120, 40);
    let row = screen.lines().find(|l| l.contains("nft_do_chain")).unwrap();
    assert!(!row.contains("1m0"), "{screen}");
    keys(&mut state, &[Key::Home]);
    let at_row = state
        .rows()
        .iter()
        .position(|r| r.key.location == NFT)
        .unwrap();
    keys(&mut state, &vec![Key::Down; at_row]);
    keys(&mut state, &[Key::Enter]);
    let request = state.detail_request();
    update(
        &mut state,
        Action::Snapshot(Box::new(snapshot_at(257, request))),
    );
    let detail = draw(&state, 120, 40);
    assert!(
        detail.contains("drops per second over the last 3 s"),
        "{detail}"
    );
    assert!(!detail.contains("first 1m0"), "{detail}");
    assert!(!detail.contains("2,5"), "{detail}");
}

/// The `/` prompt opens on the filter in force, to edit: Ctrl-U clears it, Ctrl-W takes
/// its last word.
#[test]
fn the_filter_prompt_edits_and_clears() {
    let mut state = fed_state();
    let typed: Vec<Key> = "--port 1678 --proto tcp".chars().map(Key::Char).collect();
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &typed);
    keys(&mut state, &[Key::Enter, Key::Char('/')]);
    assert_eq!(state.mode, Mode::Filter("--port 1678 --proto tcp".into()));
    keys(&mut state, &[Key::CtrlW]);
    assert_eq!(state.mode, Mode::Filter("--port 1678 --proto ".into()));
    keys(&mut state, &[Key::CtrlW, Key::CtrlW]);
    assert_eq!(state.mode, Mode::Filter("--port ".into()));
    keys(&mut state, &[Key::CtrlU]);
    assert_eq!(state.mode, Mode::Filter(String::new()));
    let screen = draw(&state, 80, 24);
    assert!(screen.contains("Ctrl-U clear"), "{screen}");
    keys(&mut state, &[Key::Enter]);
    assert!(state.filter.is_empty());
    assert_eq!(state.rows().len(), 4);
}

/// A misspelt reason is refused with the kernel's spelling, not taken to match nothing.
#[test]
fn the_filter_refuses_an_unknown_reason() {
    let mut state = fed_state();
    let typed: Vec<Key> = "--reason NETFILTER_DRP".chars().map(Key::Char).collect();
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &typed);
    keys(&mut state, &[Key::Enter]);
    assert!(matches!(state.mode, Mode::Filter(_)));
    let said = state.message.clone().unwrap_or_default();
    assert!(
        said.contains("unknown drop reason `NETFILTER_DRP`"),
        "{said}"
    );
    assert!(said.contains("did you mean NETFILTER_DROP?"), "{said}");
    assert!(state.filter.is_empty());
}

/// With a filter, the header's figures and the Share column are the filtered rows', and
/// the header says how many there are in all.
#[test]
fn header_and_share_follow_the_filter() {
    let mut state = fed_state();
    let all = state.totals().0;
    let typed: Vec<Key> = "--port 1678 --port 9".chars().map(Key::Char).collect();
    keys(&mut state, &[Key::Char('/')]);
    keys(&mut state, &typed);
    keys(&mut state, &[Key::Enter]);
    assert_eq!(state.rows().len(), 2);
    let shown: u64 = state.rows().iter().map(|r| r.stats.count()).sum();
    assert_eq!(state.totals(), (shown, 0));
    let screen = draw(&state, 120, 40);
    let header = screen.lines().nth(1).unwrap();
    assert!(
        header.contains(&format!(
            "total {} of {} in all",
            crate::format::count(shown),
            crate::format::count(all)
        )),
        "{screen}"
    );
    let shares: f64 = screen
        .lines()
        .filter(|l| l.contains("NETFILTER_DROP") || l.contains("NO_SOCKET"))
        .filter_map(|l| l.split_whitespace().find(|w| w.ends_with('%')))
        .map(|w| w.trim_end_matches('%').parse::<f64>().unwrap())
        .sum();
    assert!((shares - 100.0).abs() < 0.2, "{screen}");
    insta::assert_snapshot!(screen);
}
