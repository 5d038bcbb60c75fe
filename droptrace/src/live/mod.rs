//! The live view's contract, between the pipeline's view sink (which publishes) and the
//! terminal view (which draws and asks): the snapshot of the table and what comes with it
//! (`snapshot`), how rows are grouped (`grouping`), and the [`Link`] both hold. Neither
//! side knows the other; both know this.
pub mod grouping;
pub mod snapshot;

use std::sync::{Arc, Mutex, MutexGuard};

use snapshot::{DetailRequest, DiagnoseRequest, Diagnosis, Snapshot};

use crate::pipeline::sink::Moment;

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

/// Diagnoses the view's rows (`d`) beside the pipeline; a live run has one, a replay none.
/// Called on every tick while the view waits for a diagnosis, it must not block: the
/// sampling runs on threads of its own.
pub trait RowDiagnoser {
    /// Goes on with `request` (or starts it), seeing the drops as they are at `at`; says
    /// how far it has got.
    fn tick(&mut self, request: &DiagnoseRequest, at: &Moment<'_>) -> Diagnosis;
}
