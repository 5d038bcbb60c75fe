//! The one function that changes the live view's state: `update(&mut State, Action)`,
//! and how each key is taken in each mode. Nothing here draws, reads the clock or touches
//! the terminal.
use super::{filter::ViewFilter, state::*};
use crate::{
    live::{
        grouping::Grouping,
        snapshot::{DetailRequest, DiagnoseRequest, Diagnosis, Snapshot},
    },
    pipeline::tcp::TcpFlow,
};

/// The only place the state changes.
pub fn update(state: &mut State, action: Action) {
    match action {
        Action::Snapshot(snap) => take_snapshot(state, *snap),
        Action::PageSize(n) => {
            state.page = n.max(1);
            return;
        }
        Action::DetailSize { lines, shown } => {
            state.detail_size = (lines, shown);
            state.scroll = state.scroll.min(lines.saturating_sub(shown));
            return;
        }
        Action::Key(key) if moves_only(key, &state.mode) => {
            on_key(state, key);
            return;
        }
        Action::Key(key) => on_key(state, key),
    }
    (state.rows, state.filtered) = state.fold_rows();
    state.selected = state.selected.min(state.rows.len().saturating_sub(1));
}

/// Keys that change only the selection or the screen, not the rows.
fn moves_only(key: Key, mode: &Mode) -> bool {
    matches!(mode, Mode::Table | Mode::Detail(_))
        && matches!(
            key,
            Key::Up
                | Key::Down
                | Key::PageUp
                | Key::PageDown
                | Key::Home
                | Key::End
                | Key::Enter
                | Key::Esc
                | Key::Char('j' | 'k' | '?' | 'q' | 'd')
        )
}

fn take_snapshot(state: &mut State, snap: Snapshot) {
    state.history.update(
        snap.started_ns,
        snap.now_ns,
        snap.counters.matched,
        &snap.groups,
    );
    // The source says how far the diagnosis it works on has got (in every snapshot, so
    // one the view never took loses nothing).
    if let (Some(active), Some((request, status))) = (state.diagnosing, &snap.diagnosis) {
        if *request == active {
            state
                .diagnoses
                .insert(request.row, (request.run, status.clone()));
            if status.ended() {
                state.diagnosing = None;
            }
        }
    }
    state.latest = snap;
    // While paused the screen keeps its frozen copy, but a detail view that is waiting for
    // samples gets them.
    let wanted = state.detail_request();
    if let Some(frozen) = &mut state.frozen {
        if frozen.0.detail.as_ref().map(|d| d.0) != wanted {
            frozen.0.detail = state.latest.detail.clone();
        }
    }
}

fn on_key(state: &mut State, key: Key) {
    if key == Key::CtrlC {
        state.quit = true;
        return;
    }
    match state.mode.clone() {
        Mode::Filter(text) => filter_key(state, text, key),
        Mode::Help => state.mode = Mode::Table,
        Mode::Detail(row) => match key {
            Key::Esc | Key::Backspace | Key::Enter | Key::Char('h') => state.mode = Mode::Table,
            Key::Char('d') => diagnose(state, row),
            Key::Up
            | Key::Down
            | Key::Char('k' | 'j')
            | Key::PageUp
            | Key::PageDown
            | Key::Home
            | Key::End => scroll(state, key),
            _ => common_key(state, key),
        },
        Mode::Table => table_key(state, key),
        Mode::Tcp => tcp_key(state, key),
        Mode::TcpDetail(flow) => tcp_detail_key(state, flow, key),
    }
}

/// A key in the TCP view: move, open a connection group's drill-down, back to the table.
fn tcp_key(state: &mut State, key: Key) {
    let last = state.tcp_rows().len().saturating_sub(1);
    state.tcp_selected = match key {
        Key::Up | Key::Char('k') => state.tcp_selected.saturating_sub(1),
        Key::Down | Key::Char('j') => state.tcp_selected + 1,
        Key::PageUp => state.tcp_selected.saturating_sub(state.page),
        Key::PageDown => state.tcp_selected + state.page,
        Key::Home => 0,
        Key::End => last,
        Key::Enter => {
            if let Some((flow, _)) = state.tcp_rows().get(state.tcp_selected) {
                state.mode = Mode::TcpDetail(*flow);
                state.tcp_cause_selected = 0;
            }
            state.tcp_selected
        }
        Key::Esc | Key::Backspace | Key::Char('t') => {
            state.mode = Mode::Table;
            state.tcp_selected
        }
        _ => {
            common_key(state, key);
            state.tcp_selected
        }
    }
    .min(last);
}

/// A key in a connection group's drill-down: move over the drop groups that explain it,
/// open one's drill-down (its packets, and `d` to diagnose it), back to the TCP view.
fn tcp_detail_key(state: &mut State, flow: TcpFlow, key: Key) {
    let groups = state.tcp_explaining_groups(&flow);
    let last = groups.len().saturating_sub(1);
    state.tcp_cause_selected = match key {
        Key::Up | Key::Char('k') => state.tcp_cause_selected.saturating_sub(1),
        Key::Down | Key::Char('j') => state.tcp_cause_selected + 1,
        Key::Home => 0,
        Key::End => last,
        Key::Enter => {
            if let Some(g) = groups.get(state.tcp_cause_selected) {
                // The drop table's row of that group, as the default grouping shows it.
                state.mode = Mode::Detail(DetailRequest {
                    grouping: Grouping::Site,
                    key: Grouping::Site.key(g),
                });
                state.scroll = 0;
            }
            state.tcp_cause_selected
        }
        Key::Esc | Key::Backspace | Key::Char('h') => {
            state.mode = Mode::Tcp;
            state.tcp_cause_selected
        }
        Key::Char('t') => {
            state.mode = Mode::Table;
            state.tcp_cause_selected
        }
        _ => {
            common_key(state, key);
            state.tcp_cause_selected
        }
    }
    .min(last);
}

fn table_key(state: &mut State, key: Key) {
    let rows = state.rows().len();
    let last = rows.saturating_sub(1);
    match key {
        Key::Up | Key::Char('k') => state.selected = state.selected.saturating_sub(1),
        Key::Down | Key::Char('j') => state.selected = (state.selected + 1).min(last),
        Key::PageUp => state.selected = state.selected.saturating_sub(state.page),
        Key::PageDown => state.selected = (state.selected + state.page).min(last),
        Key::Home => state.selected = 0,
        Key::End => state.selected = last,
        Key::Enter => {
            if let Some(row) = state.rows().get(state.selected) {
                state.mode = Mode::Detail(DetailRequest {
                    grouping: state.grouping,
                    key: row.key,
                });
                state.scroll = 0;
            }
        }
        Key::Esc => state.message = None,
        Key::Char('t') => {
            state.mode = Mode::Tcp;
            state.tcp_selected = 0;
        }
        _ => common_key(state, key),
    }
    state.selected = state.selected.min(last);
}

/// A scroll key in the drill-down: by a line, by a page (one line stays in sight), to an
/// end; never past the last screenful.
fn scroll(state: &mut State, key: Key) {
    let (lines, shown) = state.detail_size;
    let last = lines.saturating_sub(shown);
    let page = shown.saturating_sub(1).max(1);
    state.scroll = match key {
        Key::Up | Key::Char('k') => state.scroll.saturating_sub(1),
        Key::Down | Key::Char('j') => state.scroll + 1,
        Key::PageUp => state.scroll.saturating_sub(page),
        Key::PageDown => state.scroll + page,
        Key::Home => 0,
        _ => last,
    }
    .min(last);
}

/// Keys that work in the table and in the detail view.
fn common_key(state: &mut State, key: Key) {
    match key {
        Key::Char('q') => state.quit = true,
        Key::Char('?') => state.mode = Mode::Help,
        Key::Char('/') => {
            // The filter in force, to edit (Ctrl-U clears it).
            state.mode = Mode::Filter(state.filter.text().to_owned());
            state.message = None;
        }
        Key::Char('p') | Key::Char(' ') => {
            state.frozen = match state.frozen.take() {
                Some(_) => None,
                None => Some(Box::new((state.latest.clone(), state.history.clone()))),
            };
        }
        Key::Char('r') => reset(state),
        Key::Char('g') | Key::Tab => regroup(state, state.grouping.next()),
        Key::Char('G') | Key::BackTab => regroup(state, state.grouping.previous()),
        Key::Char(c @ '1'..='8') => {
            let i = c as usize - '1' as usize;
            regroup(state, Grouping::ALL[i]);
        }
        Key::Char('s') => state.sort = state.sort.next(),
        Key::Char('S') => state.sort = state.sort.previous(),
        _ => {}
    }
}

/// `d` in a row's details: asks the source to diagnose it (again, if it was), or says why
/// this source cannot. One diagnosis runs at a time: one still running on another row
/// stops.
fn diagnose(state: &mut State, row: DetailRequest) {
    if let Err(why) = &state.info.diagnosis {
        state
            .diagnoses
            .insert(row, (0, Diagnosis::Unavailable(why.clone())));
        return;
    }
    if let Some(old) = state.diagnosing.take() {
        if let Some(entry) = state.diagnoses.get_mut(&old.row) {
            if old.row != row && entry.0 == old.run && !entry.1.ended() {
                entry.1 = Diagnosis::Failed(
                    "stopped: another row's diagnosis started (d here runs it again)".into(),
                );
            }
        }
    }
    state.runs += 1;
    let request = DiagnoseRequest {
        row,
        run: state.runs,
    };
    state
        .diagnoses
        .insert(row, (request.run, Diagnosis::Running("starting".into())));
    state.diagnosing = Some(request);
}

fn regroup(state: &mut State, grouping: Grouping) {
    state.grouping = grouping;
    state.selected = 0;
    state.mode = Mode::Table;
}

fn reset(state: &mut State) {
    let (snap, _) = state.shown();
    state.baseline = Baseline {
        groups: snap.groups.iter().copied().collect(),
        total: snap.counters.matched,
        lost: snap.counters.lost,
        at_ns: Some(snap.now_ns),
    };
    state.history.reset();
    if let Some(frozen) = &mut state.frozen {
        frozen.1.reset();
    }
    state.selected = 0;
    state.message = Some("counters reset (the final summary still counts everything)".into());
}

fn filter_key(state: &mut State, mut text: String, key: Key) {
    match key {
        Key::Esc => state.mode = Mode::Table,
        Key::Enter => match ViewFilter::parse(&text, state.shown().0.names.reasons()) {
            Ok(filter) => {
                state.message = (!filter.is_empty()).then(|| format!("filter: {}", filter.text()));
                state.filter = filter;
                state.selected = 0;
                state.mode = Mode::Table;
            }
            Err(e) => {
                state.message = Some(e);
                state.mode = Mode::Filter(text);
            }
        },
        Key::Backspace => {
            text.pop();
            state.mode = Mode::Filter(text);
        }
        Key::CtrlU => state.mode = Mode::Filter(String::new()),
        Key::CtrlW => {
            // The last word and the spaces after it, as a shell's Ctrl-W.
            let kept = text.trim_end().rfind(' ').map_or(0, |at| at + 1);
            text.truncate(kept);
            state.mode = Mode::Filter(text);
        }
        Key::Char(c) if text.len() < 200 => {
            text.push(c);
            state.mode = Mode::Filter(text);
        }
        _ => {}
    }
}
