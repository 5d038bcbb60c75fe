//! The TCP view (`t`): connection groups with their retransmits, split into those after a
//! drop seen here and those beyond this host, and their resets; and one group's
//! drill-down, with the drop groups that explain its retransmits.
use ratatui::{
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row as TableRow, Table, TableState, Wrap},
    Frame,
};

use crate::format::{count, printable};
use crate::live::grouping::Grouping;
use crate::pipeline::{
    names::Names,
    tcp::{cause_words, endpoint, FlowStats, TcpFlow},
};
use crate::tui::state::State;

/// The connection groups, one a row, the selected one highlighted.
pub fn render_flows(state: &State, frame: &mut Frame, area: Rect) {
    let snap = state.shown().0;
    let names = &snap.names;
    let rows = state.tcp_rows();
    if rows.is_empty() {
        let why = match snap.tcp {
            None => "TCP is not traced here (no TCP tracepoints, or a recording without them)",
            Some(t) if t.off => "TCP is not traced (--no-tcp)",
            Some(_) => "no TCP retransmits or resets yet",
        };
        frame.render_widget(Paragraph::new(why), area);
        return;
    }
    let header = TableRow::new(
        [
            "Netns", "Local", "Remote", "Retrans", "By drop", "Beyond", "RST out", "RST in",
        ]
        .map(|h| Cell::from(h).style(Style::new().add_modifier(Modifier::BOLD))),
    );
    let body: Vec<TableRow> = rows
        .iter()
        .map(|(flow, stats)| {
            TableRow::new(
                flow_cells(flow, names)
                    .into_iter()
                    .chain([
                        count(stats.retransmits),
                        count(stats.after_drops()),
                        count(stats.beyond()),
                        count(stats.resets_sent_total()),
                        count(stats.resets_received),
                    ])
                    .map(Cell::from),
            )
        })
        .collect();
    // Retrans: every retransmitted segment; By drop: after a drop of the socket seen
    // here; Beyond: after none (the network or the peer).
    let widths = [
        Constraint::Fill(1),
        Constraint::Length(22),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
    ];
    let table = Table::new(body, widths)
        .header(header)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut table_state = TableState::default().with_selected(Some(state.tcp_selected));
    frame.render_stateful_widget(table, area, &mut table_state);
}

/// Namespace, this host's end, the peer (names from the host, escaped).
fn flow_cells(flow: &TcpFlow, names: &Names) -> [String; 3] {
    [
        printable(&names.namespace(flow.netns)).into_owned(),
        endpoint(flow.local, flow.lport),
        flow.remote.to_string(),
    ]
}

/// One connection group: its figures in words, then each drop cause with the drop
/// table's groups it stands for; the selected group opens with Enter.
pub fn render_flow(state: &State, flow: &TcpFlow, frame: &mut Frame, area: Rect) {
    let snap = state.shown().0;
    let names = &snap.names;
    let Some(stats) = state.tcp_flow(flow) else {
        frame.render_widget(
            Paragraph::new("this connection group is no longer shown (Esc: back)"),
            area,
        );
        return;
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![
        Line::from(Span::styled(
            format!(
                "tcp {} <-> {} in {}",
                endpoint(flow.local, flow.lport),
                flow.remote,
                printable(&names.namespace(flow.netns))
            ),
            bold,
        )),
        Line::raw(""),
    ];
    lines.extend(figures(stats, names));
    let explaining = state.tcp_explaining(flow);
    lines.push(Line::raw(""));
    if explaining.is_empty() {
        lines.push(Line::raw(if stats.retransmits > 0 {
            "No drop seen here explains its retransmits: they were lost beyond this host \
             (the network or the peer)."
        } else {
            "No retransmits."
        }));
    } else {
        lines.push(Line::from(Span::styled(
            "Drops seen here that explain its retransmits (Enter: the drop group's details, d there diagnoses it):",
            bold,
        )));
    }
    let mut at = 0;
    for e in &explaining {
        lines.push(Line::raw(format!(
            "  {} retransmits after {}",
            count(e.retransmits),
            printable(&cause_words(&e.cause, names))
        )));
        if e.groups.is_empty() {
            lines.push(Line::raw(
                "      (its drop group is not in the table: reset, or beyond the groups kept)",
            ));
        }
        for (g, s) in &e.groups {
            let text = format!(
                "    {:>8} drops  {}",
                count(s.count()),
                Grouping::Site.row_name(g, names)
            );
            let style = if at == state.tcp_cause_selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else {
                Style::new()
            };
            lines.push(Line::from(Span::styled(text, style)));
            at += 1;
        }
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}

/// The group's figures, a line each.
fn figures(stats: &FlowStats, names: &Names) -> Vec<Line<'static>> {
    let mut out = vec![Line::raw(format!(
        "  retransmitted segments {}: {} after a drop seen here, {} beyond this host{}",
        count(stats.retransmits),
        count(stats.after_drops()),
        count(stats.beyond()),
        if stats.failed > 0 {
            format!(" ({} did not go out)", count(stats.failed))
        } else {
            String::new()
        }
    ))];
    let reasons: Vec<String> = stats
        .resets_sent
        .iter()
        .map(|(r, n)| format!("{} {}", count(*n), names.reset_reason(*r)))
        .collect();
    out.push(Line::raw(format!(
        "  resets sent {}{}, received {}",
        count(stats.resets_sent_total()),
        if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        },
        count(stats.resets_received)
    )));
    out
}
