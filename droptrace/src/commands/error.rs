//! Errors a user meets, each saying what is wrong and, where possible, the fix; and the
//! exit status each one ends the process with.
use std::path::PathBuf;

use thiserror::Error;

use crate::{
    diagnose::baseline::BaselineError, pipeline, probe, record, sinks::export::ExportError, tui,
};

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Probe(#[from] probe::Error),

    #[error("{0}: {1}")]
    Io(String, std::io::Error),

    #[error(
        "{} is a symbolic link; droptrace does not write through one: give the path of the \
         file itself", .0.display()
    )]
    Symlink(PathBuf),

    #[error("{} exists; give --force to replace it", .0.display())]
    Exists(PathBuf),

    #[error("baseline {}: {source}", path.display())]
    Baseline {
        path: PathBuf,
        source: BaselineError,
    },

    #[error("{}: {source}", path.display())]
    Recording {
        path: PathBuf,
        source: record::ReadError,
    },

    #[error("{}: {source}", path.display())]
    Export { path: PathBuf, source: ExportError },

    #[error(
        "replay shows the live view, which needs a terminal; for text or JSON use \
         `droptrace report FILE [--format json]`"
    )]
    NotATerminal,

    /// An error of a source or sink that none of the above names.
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// What the loop could not get past, said as the part that failed said it.
impl From<pipeline::Error> for Error {
    fn from(e: pipeline::Error) -> Error {
        match e {
            pipeline::Error::Io(what, e) => Error::Io(what, e),
            pipeline::Error::Recording { path, source } => Error::Recording { path, source },
            pipeline::Error::Other(other) => match other.downcast::<probe::Error>() {
                Ok(probe) => Error::Probe(*probe),
                Err(other) => match other.downcast::<ExportError>() {
                    Ok(export) => Error::Export {
                        path: PathBuf::new(),
                        source: *export,
                    },
                    Err(other) => Error::Other(other),
                },
            },
        }
    }
}

impl From<tui::Error> for Error {
    fn from(e: tui::Error) -> Error {
        let tui::Error::Io(what, e) = e;
        Error::Io(what, e)
    }
}

impl Error {
    /// Whether this is only the reader of the output gone (`droptrace ... | head`): a
    /// normal end, said with no message and exit status 0.
    pub fn is_closed_pipe(&self) -> bool {
        match self {
            Error::Io(_, e) => e.kind() == std::io::ErrorKind::BrokenPipe,
            Error::Export { source, .. } => source.is_closed_pipe(),
            _ => false,
        }
    }

    /// Exit status: 0 for a closed pipe, 2 for a bad value given on the command line (as for any usage
    /// error), 77 (EX_NOPERM) for missing privileges, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            _ if self.is_closed_pipe() => 0,
            Error::Probe(probe::Error::UnknownReason { .. } | probe::Error::UnknownProtocol(_)) => {
                2
            }
            Error::Probe(probe::Error::MissingCapabilities(_)) => 77,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flag_values_are_usage_errors() {
        let reason = Error::Probe(probe::Error::UnknownReason {
            name: "NETFILTER_DRP".into(),
            suggestion: Some("NETFILTER_DROP".into()),
            known: "NETFILTER_DROP, NO_SOCKET".into(),
        });
        assert_eq!(reason.exit_code(), 2);
        assert!(reason
            .to_string()
            .starts_with("unknown drop reason `NETFILTER_DRP` (did you mean NETFILTER_DROP?)"));
        let proto = Error::Probe(probe::Error::UnknownProtocol("tcpp".into()));
        assert_eq!(proto.exit_code(), 2);
        assert!(proto.to_string().contains("(did you mean tcp?)"));
        let caps = Error::Probe(probe::Error::MissingCapabilities(vec!["CAP_BPF"]));
        assert_eq!(caps.exit_code(), 77);
        assert_eq!(Error::NotATerminal.exit_code(), 1);
    }

    #[test]
    fn a_closed_pipe_is_a_normal_end_wherever_it_comes_from() {
        let closed = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let export = |source| Error::Export {
            path: "drops.dtr".into(),
            source,
        };
        assert_eq!(export(ExportError::Io(closed())).exit_code(), 0);
        assert_eq!(Error::Io("writing -".into(), closed()).exit_code(), 0);
        // Through the loop, as a sink's error.
        let through: Error = pipeline::Error::Other(Box::new(ExportError::Io(closed()))).into();
        assert!(through.is_closed_pipe(), "{through}");
        let full = export(ExportError::Io(std::io::Error::from_raw_os_error(28)));
        assert!(!full.is_closed_pipe());
        assert_eq!(full.exit_code(), 1);
        // A probe's error comes back as itself.
        let caps: Error =
            pipeline::Error::from(probe::Error::MissingCapabilities(vec!["CAP_BPF"])).into();
        assert_eq!(caps.exit_code(), 77);
    }
}
