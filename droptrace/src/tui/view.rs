//! Drawing: `render(&State, &mut Frame)` reads the state and draws it; nothing else.
use rustc_hash::FxHashMap as HashMap;

use ratatui::{
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Cell, Paragraph, Row as TableRow, Table, TableState, Wrap},
    Frame,
};

use super::{
    history::{History, WINDOW},
    state::{Action, Mode, Row, State},
};
use crate::live::grouping::Grouping;
use crate::pipeline::{event::Group, names::Names};

pub mod detail;
mod diagnosis;
mod header;
mod tcp;

use header::{interface_lines, render_header, render_interfaces, watched_line};

use crate::format::{self, ago, count, rate};

/// Header lines above the table.
const HEADER: u16 = 3;

pub fn render(state: &State, frame: &mut Frame) {
    let [header, body, footer] = areas(frame.area());
    render_header(state, frame, header);
    match &state.mode {
        Mode::Detail(request) => detail::render(state, request, frame, body),
        Mode::Help => render_help(state, frame, body),
        Mode::Table | Mode::Filter(_) => render_table(state, frame, body),
        Mode::Tcp => tcp::render_flows(state, frame, body),
        Mode::TcpDetail(flow) => tcp::render_flow(state, flow, frame, body),
    }
    render_footer(state, frame, footer);
}

/// What the state must know of a terminal of `width` x `height` before a frame is drawn:
/// the table's page, and the drill-down's length and how much of it fits.
pub fn fit(state: &State, width: u16, height: u16) -> [Action; 2] {
    let (lines, shown) = match &state.mode {
        Mode::Detail(request) => {
            let [_, body, _] = areas(Rect::new(0, 0, width, height));
            detail::measure(state, request, body)
        }
        _ => (0, 0),
    };
    [
        Action::PageSize(table_rows(height)),
        Action::DetailSize { lines, shown },
    ]
}

fn areas(area: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(HEADER),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Rows of the table that fit in a terminal of `height` lines.
pub fn table_rows(height: u16) -> usize {
    usize::from(height.saturating_sub(HEADER + 2)).max(1)
}

struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    fn alarm(&self) -> Style {
        if self.color {
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED)
        }
    }

    fn new_row(&self) -> Style {
        self.fg(Color::Green).add_modifier(Modifier::BOLD)
    }

    fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
}

/// The name columns of a grouping: title and width (0 = takes what is left).
/// `reason_width` fits the reasons on screen, so the location keeps the room it needs.
fn name_columns(grouping: Grouping, reason_width: u16) -> Vec<(&'static str, u16)> {
    match grouping {
        Grouping::Site => vec![
            ("Location", 0),
            ("Reason", reason_width.clamp(6, 22)),
            ("Proto", 6),
            ("Port", 5),
        ],
        Grouping::Location => vec![("Location", 0)],
        Grouping::Reason => vec![("Reason", 0)],
        Grouping::Port => vec![("Proto", 8), ("Port", 0)],
        Grouping::Interface => vec![("Interface", 16), ("Namespace", 0)],
        Grouping::Namespace => vec![("Namespace", 0)],
        Grouping::Pod => vec![("Pod", 28), ("Container", 16), ("Namespace", 0)],
        Grouping::Layer => vec![("Layer", 8), ("Counted by", 0)],
    }
}

fn render_table(state: &State, frame: &mut Frame, area: Rect) {
    let panel = interface_lines(state);
    let area = if panel > 0 && area.height > panel + 3 {
        let [table, below] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(panel)]).areas(area);
        render_interfaces(state, frame, below);
        table
    } else {
        area
    };
    let theme = Theme { color: state.color };
    let (snap, hist) = state.shown();
    let rows = state.rows();
    let (total, _) = state.totals();
    let names = &snap.names;

    // Only the rows on screen are built: a port scan makes tens of thousands.
    let visible = usize::from(area.height.saturating_sub(1)).max(1);
    let offset = state.selected.saturating_sub(visible - 1);
    let shown = &rows[offset.min(rows.len())..(offset + visible).min(rows.len())];
    let series = row_series(state, shown, hist);

    let reason_width = shown
        .iter()
        .filter_map(|r| names.reason(r.key.reason))
        .map(|r| r.chars().count())
        .max()
        .unwrap_or(0);
    let name_cols = name_columns(
        state.grouping,
        u16::try_from(reason_width).unwrap_or(u16::MAX),
    );
    let longest = shown
        .iter()
        .map(|r| state.grouping.cells(&r.key, names))
        .filter_map(|cells| {
            let flexible = name_cols.iter().position(|c| c.1 == 0)?;
            Some(cells.get(flexible)?.chars().count() + 1)
        })
        .max()
        .unwrap_or(0);
    let plan = Columns::plan(area.width, &name_cols, longest);

    let right = |t: &str, w: u16| format!("{t:>w$}", w = usize::from(w));
    let mut titles: Vec<String> = name_cols.iter().map(|c| c.0.to_owned()).collect();
    titles.extend([right("Count", 9), right("Rate/s", 7)]);
    if plan.share {
        titles.push(right("Share", 6));
    }
    titles.push(
        if plan.spark >= 11 {
            "Last minute"
        } else {
            "Last min"
        }
        .into(),
    );
    if plan.times {
        titles.extend([right("First", 7), right("Last", 7)]);
    }
    let mut widths: Vec<Constraint> = name_cols
        .iter()
        .map(|c| {
            if c.1 == 0 {
                Constraint::Min(plan.flexible)
            } else {
                Constraint::Length(c.1)
            }
        })
        .collect();
    widths.extend([Constraint::Length(9), Constraint::Length(7)]);
    if plan.share {
        widths.push(Constraint::Length(6));
    }
    widths.push(Constraint::Length(plan.spark));
    if plan.times {
        widths.extend([Constraint::Length(7), Constraint::Length(7)]);
    }
    let spacing = 1;
    let spark = plan.spark;
    let with_times = plan.times;

    let body: Vec<TableRow> = shown
        .iter()
        .map(|row| {
            let per_second = series.get(&row.key).copied().unwrap_or([0; WINDOW]);
            table_row(
                state,
                row,
                names,
                hist,
                total,
                (&per_second, spark),
                (plan.share, with_times),
                &theme,
            )
        })
        .collect();
    let empty = body.is_empty();
    let header = TableRow::new(titles)
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(spacing)
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut table_state =
        TableState::new().with_selected((!empty).then_some(state.selected - offset));
    frame.render_stateful_widget(table, area, &mut table_state);
    if empty {
        let text = if snap.groups.is_empty() {
            format!(
                "No drops yet. Counting in the kernel; rows appear as drops do. Now {}.",
                watched_line(snap, true)
            )
        } else {
            "No rows match the view filter (/ to change it, Enter on an empty filter clears it)."
                .into()
        };
        let [_, msg] = Layout::vertical([Constraint::Length(2), Constraint::Min(1)]).areas(area);
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), msg);
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one row needs the whole view's context"
)]
fn table_row<'a>(
    state: &State,
    row: &Row,
    names: &Names,
    hist: &History,
    total: u64,
    (per_second, spark): (&[u32; WINDOW], u16),
    (with_share, with_times): (bool, bool),
    theme: &Theme,
) -> TableRow<'a> {
    let mut cells: Vec<Cell> = state
        .grouping
        .cells(&row.key, names)
        .into_iter()
        .map(Cell::from)
        .collect();
    if row.new {
        if let Some(first) = cells.first_mut() {
            let name = state.grouping.cells(&row.key, names).remove(0);
            *first = Cell::from(Span::styled(format!("+{name}"), theme.new_row()));
        }
    }
    let share = if total == 0 {
        0.0
    } else {
        row.stats.count() as f64 * 100.0 / total as f64
    };
    cells.push(Cell::from(format!("{:>9}", count(row.stats.count()))));
    cells.push(Cell::from(format!("{:>7}", rate(row.rate))));
    if with_share {
        cells.push(Cell::from(format!("{share:>5.1}%")));
    }
    cells.push(Cell::from(Span::styled(
        format::sparkline(per_second, usize::from(spark)),
        theme.fg(Color::Yellow),
    )));
    if with_times {
        cells.push(Cell::from(format!("{:>7}", ago(hist.now_ns, row.first_ns))));
        cells.push(Cell::from(format!(
            "{:>7}",
            ago(
                hist.now_ns,
                row.stats.last_ns.max(row.first_ns).min(hist.now_ns)
            )
        )));
    }
    TableRow::new(cells)
}

/// Widths of the table's columns for a terminal width: the flexible name column first,
/// then the sparkline; Share, First and Last only when there is room.
struct Columns {
    flexible: u16,
    spark: u16,
    share: bool,
    times: bool,
}

impl Columns {
    fn plan(width: u16, name_cols: &[(&str, u16)], longest: usize) -> Columns {
        let fixed_names: u16 = name_cols.iter().map(|c| c.1).sum();
        // Highlight symbol, Count, Rate/s and a space after every column.
        let base = 2 + fixed_names + 9 + 7 + name_cols.len() as u16 + 3;
        let want = u16::try_from(longest).unwrap_or(u16::MAX).clamp(12, 44);
        let avail = width.saturating_sub(base);
        let (share, times) = (7, 16);
        let (share, times, avail) = if avail >= want + share + times + 12 {
            (true, true, avail - share - times)
        } else if avail >= want + share + 8 {
            (true, false, avail - share)
        } else {
            (false, false, avail)
        };
        let flexible = want.min(avail.saturating_sub(8)).max(12);
        let spark = avail.saturating_sub(flexible).min(WINDOW as u16);
        Columns {
            flexible,
            spark,
            share,
            times,
        }
    }
}

/// Per-second counts of the rows shown: the sums of their members' series, in one pass.
fn row_series(state: &State, rows: &[Row], hist: &History) -> HashMap<Group, [u32; WINDOW]> {
    let mut out: HashMap<Group, [u32; WINDOW]> =
        rows.iter().map(|r| (r.key, [0u32; WINDOW])).collect();
    let names = &state.shown().0.names;
    for (g, series) in hist.groups.iter() {
        let Some(sum) = out.get_mut(&state.grouping.key(g)) else {
            continue;
        };
        if !state.filter.accepts(g, names) {
            continue;
        }
        for (o, n) in sum.iter_mut().zip(series.per_second(hist.now_ns)) {
            *o = o.saturating_add(n);
        }
    }
    out
}

fn render_footer(state: &State, frame: &mut Frame, area: Rect) {
    let theme = Theme { color: state.color };
    let line = match &state.mode {
        Mode::Filter(text) => {
            let mut spans = vec![
                Span::styled("/", theme.key()),
                Span::raw(format!(" filter: {text}")),
                Span::styled("_", Style::new().add_modifier(Modifier::SLOW_BLINK)),
            ];
            if let Some(m) = &state.message {
                spans.push(Span::styled(format!("  {m}"), theme.alarm()));
            } else {
                spans.push(Span::raw(
                    "  Enter apply, Esc cancel, Ctrl-U clear, Ctrl-W word",
                ));
            }
            Line::from(spans)
        }
        _ => match &state.message {
            Some(m) => Line::from(Span::raw(m.clone())),
            None => {
                let keys: &[(&str, &str)] = match state.mode {
                    Mode::Detail(_) => &[
                        ("Esc", "back"),
                        ("d", "diagnose"),
                        ("q", "quit"),
                        ("p", "pause"),
                        ("?", "help"),
                    ],
                    Mode::Tcp => &[
                        ("Esc", "drops"),
                        ("Enter", "what explains it"),
                        ("q", "quit"),
                        ("p", "pause"),
                        ("?", "help"),
                    ],
                    Mode::TcpDetail(_) => &[
                        ("Esc", "back"),
                        ("Enter", "the drop group"),
                        ("t", "drops"),
                        ("q", "quit"),
                        ("?", "help"),
                    ],
                    _ => &[
                        ("q", "quit"),
                        ("?", "help"),
                        ("Enter", "details"),
                        ("/", "filter"),
                        ("g", "group"),
                        ("s", "sort"),
                        ("p", "pause"),
                        ("r", "reset"),
                    ],
                };
                let mut spans = Vec::new();
                // The TCP view, once there is something in it.
                let tcp =
                    matches!(state.mode, Mode::Table) && !state.shown().0.tcp_flows.is_empty();
                let tcp_key: &[(&str, &str)] = if tcp { &[("t", "tcp")] } else { &[] };
                for (k, what) in keys.iter().chain(tcp_key) {
                    spans.push(Span::styled(*k, theme.key()));
                    spans.push(Span::raw(format!(" {what}  ")));
                }
                Line::from(spans)
            }
        },
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// Every key, in the help screen.
pub const KEYS: &[(&str, &str)] = &[
    ("Up/Down, j/k", "move the selection; in the details, scroll"),
    (
        "PgUp/PgDn, Home/End",
        "move by a page, to the top or bottom (details too)",
    ),
    (
        "Enter",
        "details of the selected row: packets, reason, drop site",
    ),
    (
        "d",
        "in the details: diagnose the row (d again runs it again)",
    ),
    ("Esc", "back to the table"),
    (
        "t",
        "TCP: retransmits and resets by connection, and their drops",
    ),
    ("g / G, Tab", "next / previous grouping"),
    (
        "1-8",
        "group by location+reason+port, location, reason, port, interface, namespace, pod, \
         layer",
    ),
    (
        "s / S",
        "next / previous sort: count, rate, name, port, recency",
    ),
    (
        "/",
        "view filter: --port, --proto, --reason, --exclude-reason, --iface, --netns, --function",
    ),
    ("p, Space", "pause the screen (counting goes on)"),
    ("r", "reset the counts shown (the closing table keeps all)"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit (prints the final table)"),
];

fn render_help(state: &State, frame: &mut Frame, area: Rect) {
    let theme = Theme { color: state.color };
    let mut lines = vec![Line::from(Span::styled(
        "Keys (any key closes this help)",
        Style::new().add_modifier(Modifier::BOLD),
    ))];
    for (k, what) in KEYS {
        lines.push(Line::from(vec![
            Span::styled(format!("{k:>20}  "), theme.key()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::raw(""));
    lines.push(Line::raw(
        "A + before a name marks a row that appeared in the last 5 s. Rate/s is the average \
         of the last 5 s; Last minute shows drops per second, oldest on the left.",
    ));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}
