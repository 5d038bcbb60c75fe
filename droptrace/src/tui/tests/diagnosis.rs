//! `d` in the drill-down: the request to the source, its answers folded into the state by
//! row, and what the drill-down draws while it runs, when it is done, and in a replay.
use super::*;
use crate::live::snapshot::{DiagnoseRequest, Diagnosis, RowDiagnosis, RowFinding};

/// The drill-down of the nft row (the fixture's second by count).
fn nft_detail() -> State {
    let state = detail_state();
    assert_eq!(state.detail_request().expect("a detail").key.location, NFT);
    state
}

/// The next snapshot, carrying the source's answer to `request`.
fn answer(state: &mut State, request: DiagnoseRequest, status: Diagnosis) {
    let mut snap = snapshot_at(250, state.detail_request());
    snap.diagnosis = Some((request, status));
    update(state, Action::Snapshot(Box::new(snap)));
}

/// What the diagnosis of the fixture's nft row says, written as the engine writes it.
fn nft_diagnosis() -> Diagnosis {
    Diagnosis::Done(RowDiagnosis {
        window_secs: 2.2,
        drops: 88,
        namespaces: vec!["netns dt-a".into()],
        findings: vec![RowFinding {
            cause: "netfilter_rule".into(),
            drops: 88,
            rate: 40.0,
            summary: "the nftables rule `inet dtv input: tcp dport 1678 counter packets 2578 \
                      bytes 154680 drop comment \"dtv1678\"` dropped 88 packets in netns dt-a"
                .into(),
            evidence: vec![
                "kernel: 88 drops at nft_do_chain+0x3e8 (NETFILTER_DROP) of tcp to port 1678 \
                 on veth-b in netns dt-a; e.g. 10.77.0.1:40002 -> 10.77.0.2:1678, 60 bytes"
                    .into(),
                "nftables rule `inet dtv input: tcp dport 1678 counter packets 2578 bytes 154680 \
                 drop comment \"dtv1678\"` (handle 2): counter +88 in the window, now 2578"
                    .into(),
            ],
            fix: "ip netns exec dt-a nft delete rule inet dtv input handle 2".into(),
            benign: false,
        }],
        earlier: None,
    })
}

#[test]
fn d_in_the_details_asks_the_source_and_folds_its_answers() {
    let mut state = nft_detail();
    let row = state.detail_request().unwrap();
    assert_eq!(state.diagnose_request(), None);
    assert_eq!(state.diagnosis(&row), None);

    keys(&mut state, &[Key::Char('d')]);
    let first = state.diagnose_request().expect("a diagnose request");
    assert_eq!(first.row, row);
    assert!(matches!(state.diagnosis(&row), Some(Diagnosis::Running(_))));

    // The source's progress, then its result; the request ends with it.
    answer(&mut state, first, Diagnosis::Running("watching".into()));
    assert_eq!(
        state.diagnosis(&row),
        Some(&Diagnosis::Running("watching".into()))
    );
    answer(&mut state, first, nft_diagnosis());
    assert_eq!(state.diagnosis(&row), Some(&nft_diagnosis()));
    assert_eq!(state.diagnose_request(), None);

    // It stays with its row: back to the table and into the row again.
    keys(&mut state, &[Key::Esc]);
    assert_eq!(state.detail_request(), None);
    keys(&mut state, &[Key::Enter]);
    assert_eq!(state.detail_request(), Some(row));
    assert_eq!(state.diagnosis(&row), Some(&nft_diagnosis()));

    // A second `d` runs it again; a late answer of the first run changes nothing.
    keys(&mut state, &[Key::Char('d')]);
    let second = state.diagnose_request().expect("a second request");
    assert_eq!(second.row, row);
    assert_ne!(second.run, first.run);
    assert!(matches!(state.diagnosis(&row), Some(Diagnosis::Running(_))));
    answer(&mut state, first, nft_diagnosis());
    assert!(matches!(state.diagnosis(&row), Some(Diagnosis::Running(_))));
    answer(
        &mut state,
        second,
        Diagnosis::Failed("the namespace is gone".into()),
    );
    assert_eq!(
        state.diagnosis(&row),
        Some(&Diagnosis::Failed("the namespace is gone".into()))
    );
    assert_eq!(state.diagnose_request(), None);
}

#[test]
fn d_on_another_row_stops_the_first_and_d_in_the_table_does_nothing() {
    let mut state = fed_state();
    keys(&mut state, &[Key::Char('d')]);
    assert_eq!(state.diagnose_request(), None);
    assert!(state.diagnoses.is_empty());

    keys(&mut state, &[Key::Down, Key::Enter, Key::Char('d')]);
    let first = state.diagnose_request().unwrap();
    keys(
        &mut state,
        &[Key::Esc, Key::Down, Key::Enter, Key::Char('d')],
    );
    let second = state.diagnose_request().unwrap();
    assert_ne!(first.row, second.row);
    assert!(
        matches!(state.diagnosis(&first.row), Some(Diagnosis::Failed(why)) if why.contains("stopped")),
        "{:?}",
        state.diagnosis(&first.row)
    );
    assert!(matches!(
        state.diagnosis(&second.row),
        Some(Diagnosis::Running(_))
    ));
}

#[test]
fn a_recording_is_not_diagnosed() {
    let mut state = nft_detail();
    state.info.diagnosis = Err("diagnosis needs the live system; this is a recording".into());
    let row = state.detail_request().unwrap();
    keys(&mut state, &[Key::Char('d')]);
    assert_eq!(state.diagnose_request(), None);
    assert_eq!(
        state.diagnosis(&row),
        Some(&Diagnosis::Unavailable(
            "diagnosis needs the live system; this is a recording".into()
        ))
    );
}

#[test]
fn answers_come_in_while_paused() {
    let mut state = nft_detail();
    keys(&mut state, &[Key::Char('p'), Key::Char('d')]);
    let request = state.diagnose_request().unwrap();
    answer(&mut state, request, nft_diagnosis());
    assert!(state.paused());
    assert_eq!(state.diagnosis(&request.row), Some(&nft_diagnosis()));
}

#[test]
fn snapshot_detail_diagnosed_120x40() {
    let mut state = nft_detail();
    keys(&mut state, &[Key::Char('d')]);
    let request = state.diagnose_request().unwrap();
    answer(&mut state, request, nft_diagnosis());
    insta::assert_snapshot!(draw(&state, 120, 40));
}

#[test]
fn snapshot_detail_diagnosing_80x24() {
    let mut state = nft_detail();
    keys(&mut state, &[Key::Char('d')]);
    let request = state.diagnose_request().unwrap();
    let watching =
        "watching this row's drops: 0 in 0.4 s (at least 2 s and one drop, at most 10 s)";
    answer(&mut state, request, Diagnosis::Running(watching.into()));
    insta::assert_snapshot!(draw(&state, 80, 24));
}

#[test]
fn snapshot_detail_replay_says_no_diagnosis_80x24() {
    let mut state = nft_detail();
    state.info.source = "recording drops.dtr (web-1)".into();
    state.info.diagnosis = Err(
        "diagnosis needs the live system; this is a recording (run droptrace diagnose where it was made)"
            .into(),
    );
    let before_d = draw(&state, 80, 24);
    keys(&mut state, &[Key::Char('d')]);
    assert_eq!(draw(&state, 80, 24), before_d);
    insta::assert_snapshot!(before_d);
}

/// The lines between the header and the footer, as drawn after telling the state the
/// terminal's size, as the runtime does before every frame.
fn fitted_body(state: &mut State, width: u16, height: u16) -> Vec<String> {
    for action in view::fit(state, width, height) {
        update(state, action);
    }
    let screen = draw(state, width, height);
    let lines: Vec<String> = screen.lines().map(str::to_owned).collect();
    lines[3..lines.len() - 1].to_vec()
}

/// At 80x24 a diagnosed row's drill-down is longer than the screen: it says so, and every
/// scroll key reaches its end (the fix and the latest packets) and comes back.
#[test]
fn the_drill_down_scrolls_at_80x24() {
    let mut state = nft_detail();
    keys(&mut state, &[Key::Char('d')]);
    let request = state.diagnose_request().unwrap();
    // Three findings: more than a page beyond the first.
    let mut three = nft_diagnosis();
    if let Diagnosis::Done(report) = &mut three {
        let again = report.findings[0].clone();
        report.findings.extend([again.clone(), again]);
    }
    answer(&mut state, request, three);
    let top = fitted_body(&mut state, 80, 24);
    let text = top.join("\n");
    assert!(!text.contains("Latest packets"), "{text}");
    assert!(text.contains("more lines below (j/k, PgDn, End)"), "{text}");

    keys(&mut state, &[Key::End]);
    let end = fitted_body(&mut state, 80, 24).join("\n");
    assert!(end.contains("fix: Find the rule"), "{end}");
    assert!(end.contains("Latest packets"), "{end}");
    assert!(
        end.contains("10.77.0.1:40000 > 10.77.0.2:1678 tcp"),
        "{end}"
    );
    assert!(end.contains("lines above"), "{end}");
    assert!(!end.contains("below"), "{end}");
    // Past the end nothing moves; one line back is one line back.
    keys(&mut state, &[Key::Down, Key::Char('j'), Key::PageDown]);
    assert_eq!(fitted_body(&mut state, 80, 24).join("\n"), end);
    keys(&mut state, &[Key::Char('k')]);
    let back = fitted_body(&mut state, 80, 24);
    assert_ne!(back.join("\n"), end);

    keys(&mut state, &[Key::Home]);
    assert_eq!(fitted_body(&mut state, 80, 24), top);
    // A line down: the second line comes first; a page down: the page's last line.
    keys(&mut state, &[Key::Char('j')]);
    assert_eq!(fitted_body(&mut state, 80, 24)[0], top[1]);
    keys(&mut state, &[Key::Up, Key::PageDown]);
    let page = fitted_body(&mut state, 80, 24);
    assert_eq!(page[0], top[top.len() - 2], "{page:#?}");
    keys(&mut state, &[Key::PageUp]);
    assert_eq!(fitted_body(&mut state, 80, 24), top);
    keys(&mut state, &[Key::Down, Key::Down]);
    assert_ne!(fitted_body(&mut state, 80, 24), top);
    // Back to the table and in again: from the top.
    keys(&mut state, &[Key::Esc, Key::Enter]);
    assert_eq!(fitted_body(&mut state, 80, 24), top);
    insta::assert_snapshot!(draw(&state, 80, 24));
}
