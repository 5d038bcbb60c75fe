//! The live view: a full-screen table of drops that updates as they come.
//!
//! Elm-style: [`state::update`] is the only code that changes [`state::State`],
//! [`view::render`] only draws it, and [`app`] (the one module that touches the terminal)
//! runs the loop. A source (the live kernel watch, or a recording) feeds it snapshots
//! through a [`Link`]; the view cannot tell which.
pub mod app;
pub mod filter;
pub mod grouping;
pub mod history;
pub mod snapshot;
pub mod state;
pub mod view;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex, MutexGuard,
};

use snapshot::{DetailRequest, Snapshot};

/// Between a source thread and the view: the latest snapshot (a newer one replaces one the
/// view has not taken yet), the row the view wants details of, and the request to stop.
#[derive(Debug, Default)]
pub struct Link {
    latest: Mutex<Option<Snapshot>>,
    request: Mutex<Option<DetailRequest>>,
    stop: AtomicBool,
    stopped: tokio::sync::Notify,
    paused: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain data behind: keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Link {
    /// Source side: publish a snapshot.
    pub fn publish(&self, snapshot: Snapshot) {
        *lock(&self.latest) = Some(snapshot);
    }

    /// View side: the newest snapshot, if one came since the last call.
    pub fn take(&self) -> Option<Snapshot> {
        lock(&self.latest).take()
    }

    /// View side: which row to send samples for.
    pub fn set_request(&self, request: Option<DetailRequest>) {
        *lock(&self.request) = request;
    }

    /// Source side.
    pub fn request(&self) -> Option<DetailRequest> {
        *lock(&self.request)
    }

    /// View side: the screen is paused (a recording's playback waits too).
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Source side.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// View side: ask the source to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.stopped.notify_one();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Source side: resolves when the view asks to stop.
    pub async fn stopping(&self) {
        if !self.stop_requested() {
            self.stopped.notified().await;
        }
    }
}

#[cfg(test)]
mod tests;
