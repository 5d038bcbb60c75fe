//! The terminal side of the live view: raw mode, the alternate screen, keys in, frames out.
//! The terminal is restored however the view ends: return, error or panic.
use std::{
    io::{stdout, Stdout},
    sync::Once,
    time::Duration,
};

use crossterm::{
    cursor,
    event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers},
    execute,
    terminal::{self, EnterAlternateScreen, LeaveAlternateScreen},
};
use ratatui::{backend::CrosstermBackend, Terminal};

use super::{
    state::{Action, Key, State},
    update::update,
    view,
};
use crate::live::{snapshot::SourceInfo, Link};

/// What stops the view: the terminal could not be set up, read or drawn on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// How long the loop waits for a key before looking for a new snapshot.
const KEY_POLL: Duration = Duration::from_millis(20);

/// Runs the view until `q`, Ctrl-C, or the source ends (`source_done`). Asks the source to
/// stop on the way out.
pub fn run(info: SourceInfo, link: &Link, source_done: impl Fn() -> bool) -> Result<(), Error> {
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let result = {
        let mut screen = Screen::enter()?;
        view_loop(
            &mut screen.terminal,
            State::new(info, color),
            link,
            source_done,
        )
    };
    link.stop();
    result
}

fn view_loop(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    mut state: State,
    link: &Link,
    source_done: impl Fn() -> bool,
) -> Result<(), Error> {
    let io = |what: &str, e: std::io::Error| Error::Io(what.into(), e);
    let mut dirty = true;
    loop {
        if let Some(snapshot) = link.take() {
            update(&mut state, Action::Snapshot(Box::new(snapshot)));
            // A diagnosis that has ended is not asked for any more.
            link.set_diagnose(state.diagnose_request());
            dirty = true;
        }
        if dirty {
            let size = terminal
                .size()
                .map_err(|e| io("reading the terminal size", e))?;
            for action in view::fit(&state, size.width, size.height) {
                update(&mut state, action);
            }
            terminal
                .draw(|frame| view::render(&state, frame))
                .map_err(|e| io("drawing", e))?;
            dirty = false;
        }
        if state.quit || source_done() {
            return Ok(());
        }
        // Every key waiting is handled before the next frame.
        let mut wait = KEY_POLL;
        while event::poll(wait).map_err(|e| io("reading keys", e))? {
            wait = Duration::ZERO;
            match event::read().map_err(|e| io("reading keys", e))? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(key) = map_key(k) {
                        update(&mut state, Action::Key(key));
                        link.set_request(state.detail_request());
                        link.set_diagnose(state.diagnose_request());
                        link.set_paused(state.paused());
                        dirty = true;
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
            if state.quit {
                break;
            }
        }
    }
}

fn map_key(k: KeyEvent) -> Option<Key> {
    if k.modifiers.contains(KeyModifiers::CONTROL) {
        return match k.code {
            KeyCode::Char('c' | 'C') => Some(Key::CtrlC),
            KeyCode::Char('u' | 'U') => Some(Key::CtrlU),
            KeyCode::Char('w' | 'W') => Some(Key::CtrlW),
            _ => None,
        };
    }
    Some(match k.code {
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Left => Key::Esc,
        KeyCode::Right => Key::Enter,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        KeyCode::Tab => Key::Tab,
        KeyCode::BackTab => Key::BackTab,
        _ => return None,
    })
}

/// The terminal in raw mode on the alternate screen, for as long as this lives.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> Result<Screen, Error> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        let io = |e| Error::Io("setting up the terminal".into(), e);
        terminal::enable_raw_mode().map_err(io)?;
        let screen = execute!(stdout(), EnterAlternateScreen, cursor::Hide)
            .map_err(io)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())).map_err(io));
        match screen {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl std::ops::Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen; harmless when already done.
fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(stdout(), LeaveAlternateScreen, cursor::Show);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_keys_the_view_knows() {
        let ctrl = |c| map_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
        assert_eq!(ctrl('c'), Some(Key::CtrlC));
        assert_eq!(ctrl('u'), Some(Key::CtrlU));
        assert_eq!(ctrl('w'), Some(Key::CtrlW));
        assert_eq!(ctrl('x'), None);
        let plain = map_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::NONE));
        assert_eq!(plain, Some(Key::Char('u')));
    }
}
