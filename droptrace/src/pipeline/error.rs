//! What stops the loop: a source or a sink that cannot go on. The loop hands it to the
//! command whole; each part keeps its own error type and says it here.
use std::path::PathBuf;

use thiserror::Error;

use crate::record::ReadError;

#[derive(Debug, Error)]
pub enum Error {
    /// Reading or writing failed: what was being done, and the system's error.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),

    /// A recording could not be read on.
    #[error("{}: {source}", path.display())]
    Recording { path: PathBuf, source: ReadError },

    /// Any other error of a source or a sink (the probe's, an export's), kept whole.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}
