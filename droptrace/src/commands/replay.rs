//! `droptrace replay`: a recording, played on its own clock, into the view sink. The view
//! cannot tell it from a live run.
use std::{path::Path, time::Duration};

use crate::{
    cli::ReplayArgs,
    commands::error::Error,
    live::snapshot::SourceInfo,
    pipeline::{
        drive_blocking,
        recording::{Pace, RecordingSource},
    },
    record::Recording,
    sinks::view::ViewPublisher,
};

/// Plays `args.file` in the live view; `terminal` says whether there is one to show it.
pub fn run(args: &ReplayArgs, terminal: bool) -> Result<(), Error> {
    // Opened here, so a bad file is an error before the terminal changes.
    let reader = Recording::open(&args.file).map_err(|source| Error::Recording {
        path: args.file.clone(),
        source,
    })?;
    if !terminal {
        return Err(Error::NotATerminal);
    }
    let header = reader.header();
    let info = SourceInfo {
        source: format!(
            "recording {} ({})",
            file_name(&args.file),
            if header.hostname.is_empty() {
                "?"
            } else {
                &header.hostname
            }
        ),
        kernel: header.kernel_release.clone(),
        filters: header.filters.clone(),
        debuginfo: Err("source lines need the recording kernel's vmlinux: not in a replay".into()),
        diagnosis: Err(
            "diagnosis needs the live system; this is a recording (run droptrace diagnose where it was made)"
                .into(),
        ),
    };
    let pace = Pace {
        speed: args.speed,
        interval: Duration::from_secs_f64(args.interval),
    };
    let path = args.file.clone();
    super::view::show(move |link, ready| {
        let mut source = RecordingSource::new(reader, path).paced(pace, link.control.clone());
        if ready.send(info).is_err() {
            return Ok(String::new());
        }
        let mut view = ViewPublisher::new(link);
        let outcome = drive_blocking(&mut source, &mut [&mut view])?;
        let mut closing = super::view::closing(&outcome);
        if let Some(skipped) = source.damage_warning() {
            closing = format!("droptrace: {skipped}\n{closing}");
        }
        Ok(closing)
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
