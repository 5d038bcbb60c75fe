//! The header above the table (what is watched, the totals, the state of the run) and
//! the interfaces' counters below it.
use ratatui::{
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
    Frame,
};

use super::Theme;
use crate::{
    format::{self, ago, count, rate},
    live::grouping::Grouping,
    pipeline::interfaces::Layer,
    tui::{history, state::State},
};

pub(super) fn render_header(state: &State, frame: &mut Frame, area: Rect) {
    let theme = Theme { color: state.color };
    let (snap, hist) = state.shown();
    let info = &state.info;
    let elapsed = hist.now_ns.saturating_sub(hist.started_ns);
    let mut first = vec![
        Span::styled("droptrace", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "  {}  kernel {}  filters: {}",
            info.source,
            or_dash(&info.kernel),
            or_dash(&info.filters)
        )),
    ];
    let clock = format!("  {}", format::duration(elapsed));
    let used: usize = first.iter().map(Span::width).sum();
    let pad = usize::from(area.width).saturating_sub(used + clock.len());
    first.push(Span::raw(" ".repeat(pad)));
    first.push(Span::raw(clock));

    let (total, lost) = state.totals();
    let filtered = state.filtered();
    let now_rate = filtered.map_or_else(|| hist.rate(&hist.total), |f| f.rate);
    let in_all = filtered
        .map(|_| format!(" of {} in all", count(state.totals_in_all().0)))
        .unwrap_or_default();
    let mut second = vec![
        Span::styled(
            format!("{} drops/s", rate(now_rate)),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!("  total {}{in_all}  ", count(total))),
        Span::styled(
            format!("lost events {}", count(lost)),
            if lost > 0 {
                theme.alarm()
            } else {
                Style::new()
            },
        ),
    ];
    if snap.counters.missed > 0 {
        second.push(Span::raw("  "));
        second.push(Span::styled(
            format!("missed {}", count(snap.counters.missed)),
            theme.alarm(),
        ));
    }
    if snap.tcp.is_some_and(|t| t.off) {
        second.push(Span::raw("  tcp: off"));
    } else if let Some(t) = snap
        .tcp
        .filter(|t| t.retransmits + t.resets_sent + t.resets_received > 0)
    {
        second.push(Span::raw(format!(
            "  tcp: {} retransmits ({} after drops here, {} beyond)  {} resets sent  {} received",
            count(t.retransmits),
            count(t.after_drops),
            count(t.beyond_host),
            count(t.resets_sent),
            count(t.resets_received)
        )));
        if t.missed > 0 {
            second.push(Span::raw(format!(
                "  {} TCP events missed by the kernel",
                count(t.missed)
            )));
        }
    }
    let percentiles = match filtered {
        Some(f) => f
            .percentiles
            .map(|p| (p, format!(" (last {} s)", f.seconds))),
        None => history::summary(&hist.total_per_second).map(|p| (p, String::new())),
    };
    if let Some(((p50, p99, max), window)) = percentiles {
        second.push(Span::raw(format!(
            "  per s{window} p50 {} p99 {} max {}",
            count(p50),
            count(p99),
            count(max)
        )));
    }

    let mut third = vec![
        Span::styled("g", theme.key()),
        Span::raw(format!(" by {}  ", state.grouping.label())),
        Span::styled("s", theme.key()),
        Span::raw(format!(" sort {}  ", state.sort.label())),
    ];
    if !state.filter.is_empty() {
        third.push(Span::styled("/", theme.key()));
        third.push(Span::raw(format!(" {}  ", state.filter.text())));
    }
    if state.paused() {
        third.push(Span::styled(" PAUSED ", theme.alarm()));
        third.push(Span::raw(" "));
    }
    if let Some(at) = state.baseline.at_ns {
        third.push(Span::raw(format!(
            "since reset {} ago  ",
            ago(hist.now_ns, at)
        )));
    }
    if snap.finished {
        third.push(Span::styled(" END OF RECORDING ", theme.alarm()));
    }
    if total == 0 && snap.interfaces.is_empty() && filtered.is_none() {
        // Nothing to show: say what is watched, so that nothing is a finding.
        third.push(Span::raw(watched_line(snap, false)));
    }
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(first),
            Line::from(second),
            Line::from(third),
        ]),
        area,
    );
}

/// `watching kfree_skb, XDP programs: 1 traced, interfaces: 7` (`, 1 untraced` when some
/// cannot be; `1 attached (not traced)` with `--no-xdp`), and ` in 3 namespaces` when
/// `long`. Programs traced are the host's; attached, those of the interfaces watched.
pub(super) fn watched_line(snap: &crate::live::snapshot::Snapshot, long: bool) -> String {
    let w = &snap.watched;
    if !w.interfaces_read {
        return "watching kfree_skb".into();
    }
    let xdp = match w.xdp_traced {
        None => format!("{} attached (not traced)", w.xdp_programs),
        Some((traced, 0)) => format!("{traced} traced"),
        Some((traced, untraced)) => format!("{traced} traced, {untraced} untraced"),
    };
    let mut s = format!(
        "watching kfree_skb, XDP programs: {xdp}, interfaces: {}",
        w.interfaces,
    );
    if long {
        let plural = if w.namespaces == 1 { "" } else { "s" };
        s.push_str(&format!(" in {} namespace{plural}", w.namespaces));
    }
    s
}

/// Lines of the interfaces' panel below the table at most (with its title).
pub(super) const INTERFACE_LINES: usize = 6;

/// The interfaces' own counters that grew, below the table: one line per counter, or by
/// layer when the table is.
pub(super) fn render_interfaces(state: &State, frame: &mut Frame, area: Rect) {
    let (snap, _) = state.shown();
    let rows = &snap.interfaces;
    let theme = Theme { color: state.color };
    let mut lines = vec![Line::from(Span::styled(
        "Counted by the interfaces themselves, while watching",
        Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    ))];
    let note = |in_kfree_skb: bool, xdp: bool| {
        if in_kfree_skb {
            "may also be in the rows above"
        } else if xdp {
            "never reached kfree_skb; includes XDP drops"
        } else {
            "never reached kfree_skb"
        }
    };
    if state.grouping == Grouping::Layer {
        for layer in [Layer::Driver, Layer::Nic, Layer::Stack] {
            let of: Vec<_> = rows.iter().filter(|r| r.layer == layer).collect();
            if of.is_empty() {
                continue;
            }
            let sum: u64 = of.iter().map(|r| r.drops).sum();
            let counters = of.len();
            lines.push(Line::raw(format!(
                "  {:<8} {:>9}  {counters} counter{} ({})",
                layer.label(),
                count(sum),
                if counters == 1 { "" } else { "s" },
                note(
                    of.iter().any(|r| r.in_kfree_skb),
                    of.iter().all(|r| r.counts_xdp_drops)
                ),
            )));
        }
    } else {
        for r in rows.iter().take(INTERFACE_LINES - 1) {
            let text = format!(
                "  {:<8} {:>9}  {} on {} in {} ({})",
                r.layer.label(),
                count(r.drops),
                r.counter,
                r.interface,
                r.netns_label,
                note(r.in_kfree_skb, r.counts_xdp_drops),
            );
            lines.push(Line::styled(
                format::printable(&text).into_owned(),
                if r.in_kfree_skb {
                    Style::new()
                } else {
                    theme.alarm()
                },
            ));
        }
    }
    frame.render_widget(Paragraph::new(lines), area);
}

/// How many lines the interfaces' panel takes (0 without rows).
pub(super) fn interface_lines(state: &State) -> u16 {
    let (snap, _) = state.shown();
    if snap.interfaces.is_empty() {
        return 0;
    }
    let n = if state.grouping == Grouping::Layer {
        3
    } else {
        snap.interfaces.len()
    };
    u16::try_from((n + 1).min(INTERFACE_LINES)).unwrap_or(0)
}

pub(super) fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
