//! The live view over any source: the pipeline runs on a thread of its own (so drawing
//! never slows the source) into the view sink, and the terminal shows what it publishes.
use std::sync::{mpsc, Arc};

use crate::{
    commands::error::Error,
    live::{snapshot::SourceInfo, Link},
    sinks::text::{final_table, write_out},
    tui,
};

/// What the pipeline's thread returns: the closing table, printed once the terminal is
/// restored.
pub type Closing = Result<String, Error>;

/// Shows the view while `pipeline` runs on its own thread. `pipeline` sends the header's
/// facts once its source is up (an error before that is the one to show), then runs until
/// the link's control says stop.
pub fn show(
    pipeline: impl FnOnce(Arc<Link>, mpsc::Sender<SourceInfo>) -> Closing + Send + 'static,
) -> Result<(), Error> {
    let link = Arc::new(Link::default());
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread_link = Arc::clone(&link);
    let thread = std::thread::Builder::new()
        .name("droptrace-pipeline".into())
        .spawn(move || pipeline(thread_link, ready_tx))
        .map_err(|e| Error::Io("starting the pipeline thread".into(), e))?;
    let shown = match ready_rx.recv() {
        Ok(info) => tui::app::run(info, &link, || thread.is_finished()),
        // The source failed before it was up: its error is the one to show.
        Err(_) => Ok(()),
    };
    link.stop();
    let closing = thread.join().unwrap_or_else(|_| {
        Err(Error::Io(
            "the pipeline thread".into(),
            std::io::Error::other("panicked"),
        ))
    });
    shown?;
    let _ = write_out(&mut std::io::stdout().lock(), &closing?);
    Ok(())
}

/// The closing table of a run's outcome.
pub fn closing(outcome: &crate::pipeline::Outcome) -> String {
    final_table(&outcome.agg, &outcome.names)
}
