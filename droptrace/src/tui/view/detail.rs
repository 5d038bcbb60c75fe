//! The drill-down of one row: what the kernel said, where, and the latest packets.
use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
    Frame,
};

use crate::format::{ago, count, rate};
use crate::{
    diagnose::knowledge,
    live::snapshot::{DetailRequest, Diagnosis},
    pipeline::{
        event::{endpoint, Drop},
        names::Names,
    },
    tui::{
        history::{self, WINDOW},
        state::State,
    },
};

/// Drop sites listed for a folded row (by reason, by port...).
const MAX_SITES: usize = 6;

/// Draws the drill-down from the state's scroll position, with a last line saying what is
/// above and below when it does not fit.
pub fn render(state: &State, request: &DetailRequest, frame: &mut Frame, area: Rect) {
    let text = Paragraph::new(lines(state, request)).wrap(Wrap { trim: false });
    let (total, shown) = size(&text, area);
    let top = state.scroll.min(total - shown);
    let [body, more] =
        Layout::vertical([Constraint::Length(shown as u16), Constraint::Min(0)]).areas(area);
    frame.render_widget(
        text.scroll((u16::try_from(top).unwrap_or(u16::MAX), 0)),
        body,
    );
    if shown < total {
        let below = total - shown - top;
        let said = match (top, below) {
            (0, _) => format!("-- {below} more lines below (j/k, PgDn, End) --"),
            (_, 0) => format!("-- {top} lines above (k, PgUp, Home) --"),
            _ => format!("-- {top} lines above, {below} below (j/k, PgUp/PgDn, Home/End) --"),
        };
        frame.render_widget(
            Paragraph::new(said).style(Style::new().add_modifier(Modifier::REVERSED)),
            more,
        );
    }
}

/// The drill-down's lines at `area`'s width, and how many are shown at once (one line less
/// than the area when the last says there is more).
pub fn measure(state: &State, request: &DetailRequest, area: Rect) -> (usize, usize) {
    size(
        &Paragraph::new(lines(state, request)).wrap(Wrap { trim: false }),
        area,
    )
}

fn size(text: &Paragraph, area: Rect) -> (usize, usize) {
    let total = text.line_count(area.width);
    let height = usize::from(area.height);
    let shown = if total > height {
        height.saturating_sub(1)
    } else {
        total
    };
    (total, shown)
}

/// Everything the drill-down says, before wrapping.
fn lines(state: &State, request: &DetailRequest) -> Vec<Line<'static>> {
    let (snap, hist) = state.shown();
    let names = &snap.names;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let members = state.members(request);
    let title = request.grouping.row_name(&request.key, names);
    let mut lines = vec![Line::from(Span::styled(
        format!("{} {title}", request.grouping.label()),
        bold,
    ))];

    let mut total = crate::pipeline::aggregate::GroupStats::default();
    let mut per_second = [0u64; WINDOW];
    let mut rate_now = 0.0;
    for (g, s) in &members {
        total.merge(s);
        if let Some(series) = hist.groups.get(g) {
            rate_now += hist.rate(series);
            for (o, n) in per_second.iter_mut().zip(series.per_second(hist.now_ns)) {
                *o += u64::from(n);
            }
        }
    }
    if members.is_empty() {
        lines.push(Line::raw("No drops in this row any more."));
    } else {
        lines.push(Line::raw(format!(
            "{} drops ({} lost events)  {}/s now  first {} ago  last {} ago  largest {} bytes",
            count(total.count()),
            count(total.lost),
            rate(rate_now),
            ago(hist.now_ns, total.first_ns),
            ago(hist.now_ns, total.last_ns.min(hist.now_ns)),
            total.max_len,
        )));
        let seconds = (hist.now_ns.saturating_sub(hist.since_ns) / 1_000_000_000 + 1)
            .min(WINDOW as u64) as usize;
        if let Some((p50, p99, max)) =
            history::percentiles(per_second[WINDOW - seconds..].iter().copied())
        {
            lines.push(Line::raw(format!(
                "drops per second over the last {seconds} s: p50 {} p99 {} max {}",
                count(p50),
                count(p99),
                count(max)
            )));
        }
    }

    // The containers and pods the drops were in.
    let mut workloads: Vec<&crate::pipeline::names::Workload> = Vec::new();
    for (g, _) in &members {
        if let Some(w) = names.workload(g.netns) {
            if !workloads.contains(&w) {
                workloads.push(w);
            }
        }
    }
    workloads.sort();
    for w in workloads.iter().take(MAX_SITES) {
        lines.push(Line::raw(workload_line(w)));
    }
    if workloads.len() > MAX_SITES {
        lines.push(Line::raw(format!(
            "... and {} more containers",
            workloads.len() - MAX_SITES
        )));
    }

    // A source that cannot diagnose says so before `d` too.
    let unavailable = state
        .info
        .diagnosis
        .clone()
        .err()
        .map(Diagnosis::Unavailable);
    lines.push(Line::raw(""));
    lines.extend(super::diagnosis::lines(
        state.diagnosis(request).or(unavailable.as_ref()),
        &title,
    ));

    // Drop sites: function+offset, reason and what it means, source line.
    let detail = snap
        .detail
        .as_ref()
        .filter(|(r, _)| r == request)
        .map(|(_, d)| d);
    let mut sites: Vec<(u64, u32, u64)> = Vec::new();
    for (g, s) in &members {
        match sites
            .iter_mut()
            .find(|x| x.0 == g.location && x.1 == g.reason)
        {
            Some(site) => site.2 += s.count(),
            None => sites.push((g.location, g.reason, s.count())),
        }
    }
    sites.sort_by_key(|s| std::cmp::Reverse(s.2));
    for (location, reason, n) in sites.iter().take(MAX_SITES) {
        lines.push(Line::raw(""));
        let reason_name = names.reason(*reason);
        lines.push(Line::from(vec![
            Span::styled(names.location_display(*location), bold),
            Span::raw(format!(
                "  {}  {} drops",
                reason_name
                    .as_deref()
                    .unwrap_or("(no reason from this kernel)"),
                count(*n)
            )),
        ]));
        let source = match (
            detail.and_then(|d| d.source_lines.get(location)),
            &state.info.debuginfo,
        ) {
            (Some(line), _) => format!("source: {line}"),
            (None, Ok(_)) if detail.is_none_or(|d| d.source_pending) => {
                "source: looking up...".into()
            }
            (None, Ok(path)) => format!("source: not found in {path}"),
            (None, Err(why)) => format!("source: {why}"),
        };
        lines.push(Line::raw(format!("  {source}")));
        let c = knowledge::classify(reason_name.as_deref(), names.function(*location));
        lines.push(Line::raw(format!("  why: {}", c.explanation)));
        lines.push(Line::raw(format!(
            "  fix: {}",
            knowledge::fill_placeholders(c.fix, None, request.key.dport)
        )));
    }
    if sites.len() > MAX_SITES {
        lines.push(Line::raw(format!(
            "  ... and {} more drop sites",
            sites.len() - MAX_SITES
        )));
    }

    lines.push(Line::raw(""));
    lines.push(Line::from(Span::styled("Latest packets", bold)));
    match detail {
        None => lines.push(Line::raw("  waiting for the next snapshot...")),
        Some(d) if d.samples.is_empty() => {
            lines.push(Line::raw(
                "  none kept (their events were lost; counts stay exact)",
            ));
        }
        Some(d) => {
            for drop in d.samples.iter().rev() {
                lines.push(Line::raw(format!(
                    "  {}",
                    sample_line(drop, names, hist.now_ns)
                )));
            }
        }
    }
    lines
}

/// `in pod shop/web-7d9f (uid 0b6c...)  container web (containerd 9b2e7d4a1c6f)`
fn workload_line(w: &crate::pipeline::names::Workload) -> String {
    let c = &w.container;
    let container = format!(
        "container {} ({} {})",
        c.name,
        c.runtime,
        crate::containers::short_id(&c.id)
    );
    match &w.pod {
        Some(p) => format!(
            "in pod {}/{}{}  {container}",
            p.namespace,
            p.name,
            p.uid
                .as_ref()
                .map(|u| format!(" (uid {u})"))
                .unwrap_or_default()
        ),
        None => format!("in {container}"),
    }
}

/// `0.3s ago  10.77.0.1:40000 > 10.77.0.2:1678 tcp  veth-b@dt-a  60 B`, then the pod (or
/// container) when the namespace belongs to one.
fn sample_line(d: &Drop, names: &Names, now_ns: u64) -> String {
    let p = &d.packet;
    let ends = match (p.addrs, p.ports) {
        (Some((s, t)), Some((sp, dp))) => format!("{} > {}", endpoint(s, sp), endpoint(t, dp)),
        (Some((s, t)), None) => format!("{s} > {t}"),
        _ => "non-IP".to_owned(),
    };
    let proto = d
        .group()
        .protocol()
        .unwrap_or_else(|| format!("ethertype {:#06x}", p.ethertype));
    let icmp = p
        .icmp
        .map(|(t, c)| format!(" type {t} code {c}"))
        .unwrap_or_default();
    let workload = names
        .workload(d.netns)
        .map(|w| format!("  {}", w.label()))
        .unwrap_or_default();
    let l2 = if d.l2_len > 0 {
        format!(" (+{} B L2)", d.l2_len)
    } else {
        String::new()
    };
    format!(
        "{:>6} ago  {ends} {proto}{icmp}  {}@{}  {} B{l2}  cpu {}{workload}",
        ago(now_ns, d.timestamp_ns.min(now_ns)),
        names.interface(d.netns, d.ifindex),
        names.namespace(d.netns),
        d.len,
        d.cpu
    )
}
