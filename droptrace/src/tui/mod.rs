//! The live view: a full-screen table of drops that updates as they come.
//!
//! Elm-style: [`state::update`] is the only code that changes [`state::State`],
//! [`view::render`] only draws it, and [`app`] (the one module that touches the terminal)
//! runs the loop. Snapshots come through a [`Link`] from the pipeline's view sink,
//! whatever the source (the live kernel, or a recording); the view cannot tell which.
pub mod app;
pub mod filter;
pub mod grouping;
pub mod history;
pub mod snapshot;
pub mod state;
pub mod view;

use std::sync::{Arc, Mutex, MutexGuard};

use snapshot::{DetailRequest, DiagnoseRequest, Snapshot};

use crate::pipeline::source::Control;

/// Between the pipeline's thread and the view: the latest snapshot (a newer one replaces
/// one the view has not taken yet), the row the view wants details of, the diagnosis it
/// waits for, and the source's [`Control`] (stop, pause).
#[derive(Debug, Default)]
pub struct Link {
    latest: Mutex<Option<Snapshot>>,
    request: Mutex<Option<DetailRequest>>,
    diagnose: Mutex<Option<DiagnoseRequest>>,
    pub control: Arc<Control>,
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

    /// View side: which diagnosis to run (or go on with), if any.
    pub fn set_diagnose(&self, request: Option<DiagnoseRequest>) {
        *lock(&self.diagnose) = request;
    }

    /// Source side.
    pub fn diagnose(&self) -> Option<DiagnoseRequest> {
        *lock(&self.diagnose)
    }

    /// View side: the screen is paused (a recording's playback waits too).
    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
    }

    /// View side: ask the source to stop.
    pub fn stop(&self) {
        self.control.stop();
    }
}

#[cfg(test)]
mod tests;
