//! The TCP view (`t`): connection groups with their retransmits and resets, a group's
//! drill-down listing the drop groups that explain it, and from there the drop group's
//! own drill-down.
use super::*;
use crate::live::snapshot::TcpTotals;
use crate::pipeline::tcp::{
    self,
    tests::{bytes_of, retransmit},
    TcpTable,
};

/// Connection groups: 10.1.0.1:40000 in the host namespace, 3 retransmits after the
/// fixture's qdisc drops on eth0 and one beyond this host; 10.1.0.1:40001 with a reset
/// received only.
fn tcp_table() -> TcpTable {
    let mut table = TcpTable::default();
    let at = T0 + 60 * S;
    let in_host = |mut ev: droptrace_common::TcpEvent| {
        ev.netns = NS_HOST.inode;
        ev.netns_cookie = NS_HOST.cookie;
        ev.drop.location = QDISC;
        ev.drop.reason = 39;
        ev.drop.netns = NS_HOST.inode;
        ev.drop.netns_cookie = NS_HOST.cookie;
        ev.drop.ifindex = 3;
        ev
    };
    for i in 0..3 {
        let ev = in_host(retransmit(at + i, 40000, at - 1_000));
        table.add(&tcp::decode(&bytes_of(&ev)).unwrap());
    }
    table.add(&tcp::decode(&bytes_of(&in_host(retransmit(at + 9, 40000, 0)))).unwrap());
    let mut rst = in_host(retransmit(at + 10, 40001, 0));
    rst.kind = droptrace_common::TCP_RESET_RECEIVED;
    table.add(&tcp::decode(&bytes_of(&rst)).unwrap());
    table.attached = true;
    table.counters = tcp::TcpCounters {
        retransmits: 4,
        resets_sent: 0,
        resets_received: 1,
        lost: 0,
        missed: 0,
    };
    table
}

/// The fed view with the TCP figures in its latest snapshot.
fn tcp_state() -> State {
    let mut state = fed_state();
    let table = tcp_table();
    let mut snap = snapshot_at(249, None);
    snap.tcp = TcpTotals::of(&table);
    snap.tcp_flows = table
        .ranked()
        .into_iter()
        .map(|(f, s)| (*f, s.clone()))
        .collect();
    update(&mut state, Action::Snapshot(Box::new(snap)));
    state
}

#[test]
fn t_shows_connection_groups_and_enter_what_explains_one() {
    let mut state = tcp_state();
    keys(&mut state, &[Key::Char('t')]);
    assert_eq!(state.mode, Mode::Tcp);
    let flows: Vec<u16> = state.tcp_rows().iter().map(|(f, _)| f.lport).collect();
    assert_eq!(flows, [40000, 40001], "most retransmits first");
    let screen = draw(&state, 120, 12);
    assert!(screen.contains("10.1.0.1:40000"), "{screen}");
    keys(&mut state, &[Key::Down, Key::Down, Key::Up]);
    assert_eq!(state.tcp_selected, 0);
    keys(&mut state, &[Key::Enter]);
    let Mode::TcpDetail(flow) = state.mode else {
        panic!("not a connection's drill-down: {:?}", state.mode);
    };
    assert_eq!(flow.lport, 40000);
    // Its retransmits: 3 after the qdisc drops, each the drop table's eth0 qdisc group.
    let explaining = state.tcp_explaining(&flow);
    assert_eq!(explaining.len(), 1);
    assert_eq!(explaining[0].retransmits, 3);
    let qdisc = group(QDISC, 39, Some(17), Some(6001), NS_HOST, 3);
    assert_eq!(
        explaining[0]
            .groups
            .iter()
            .map(|(g, _)| *g)
            .collect::<Vec<_>>(),
        [qdisc]
    );
    // Enter opens that drop group's own drill-down, where d diagnoses it.
    keys(&mut state, &[Key::Enter]);
    assert_eq!(
        state.detail_request(),
        Some(DetailRequest {
            grouping: Grouping::Site,
            key: Grouping::Site.key(&qdisc),
        })
    );
    keys(&mut state, &[Key::Esc]);
    assert_eq!(state.mode, Mode::Table);
}

#[test]
fn a_connection_without_drops_here_says_its_loss_is_beyond_this_host() {
    let mut state = tcp_state();
    keys(&mut state, &[Key::Char('t'), Key::Down, Key::Enter]);
    let Mode::TcpDetail(flow) = state.mode else {
        panic!("not a connection's drill-down: {:?}", state.mode);
    };
    assert_eq!(flow.lport, 40001);
    assert!(state.tcp_explaining(&flow).is_empty());
    // Enter has nothing to open; Esc goes back to the connections, t to the drops.
    keys(&mut state, &[Key::Enter]);
    assert_eq!(state.mode, Mode::TcpDetail(flow));
    keys(&mut state, &[Key::Esc]);
    assert_eq!(state.mode, Mode::Tcp);
    assert_eq!(state.tcp_selected, 1);
    keys(&mut state, &[Key::Char('t')]);
    assert_eq!(state.mode, Mode::Table);
}

#[test]
fn snapshot_tcp_view_80x24() {
    let mut state = tcp_state();
    keys(&mut state, &[Key::Char('t')]);
    insta::assert_snapshot!(draw(&state, 80, 24));
}

#[test]
fn snapshot_tcp_detail_100x24() {
    let mut state = tcp_state();
    keys(&mut state, &[Key::Char('t'), Key::Enter]);
    insta::assert_snapshot!(draw(&state, 100, 24));
}

#[test]
fn the_tcp_view_says_why_it_is_empty() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('t')]);
    assert!(draw(&state, 100, 12).contains("TCP is not traced here"));
    let mut snap = snapshot_at(249, None);
    snap.tcp = Some(TcpTotals {
        off: true,
        ..TcpTotals::default()
    });
    update(&mut state, Action::Snapshot(Box::new(snap)));
    let screen = draw(&state, 100, 12);
    assert!(screen.contains("TCP is not traced (--no-tcp)"), "{screen}");
    assert!(screen.contains("tcp: off"), "{screen}");
}
