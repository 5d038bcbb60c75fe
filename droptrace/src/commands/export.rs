//! `droptrace export`: a recording read to its end into the pcapng or JSON Lines sink.
use std::{io::Write, path::Path};

use crate::{
    cli::ExportArgs,
    commands::error::Error,
    format::warn,
    record::{Recording, Status},
    sinks::export::{self, JsonlSink, PcapngSink},
};

pub fn run(args: &ExportArgs) -> Result<(), Error> {
    let reader = Recording::open(&args.file).map_err(|source| Error::Recording {
        path: args.file.clone(),
        source,
    })?;
    let (target, pcapng) = match (&args.pcapng, &args.jsonl) {
        (Some(p), _) => (p, true),
        (None, Some(j)) => (j, false),
        (None, None) => unreachable!("clap requires one of --pcapng and --jsonl"),
    };
    let failed = |source| Error::Export {
        path: args.file.clone(),
        source,
    };
    let mut out = output(target)?;
    let stats = if pcapng {
        let mut sink = PcapngSink::new(reader.header(), &mut out).map_err(failed)?;
        export::export(reader, &mut sink)
    } else {
        let mut sink = JsonlSink::new(reader.header(), &mut out);
        export::export(reader, &mut sink)
    }
    .map_err(failed)?;
    out.flush()
        .map_err(|e| Error::Io(format!("writing {}", target.display()), e))?;
    if !stats.damage.is_empty() {
        warn(&format!(
            "{}: {}; exported what was around them",
            args.file.display(),
            stats.damage.describe()
        ));
    }
    if let Status::Truncated { at_offset } = stats.status {
        warn(&format!(
            "{} ends at byte {at_offset} without its end block: exported what was there",
            args.file.display()
        ));
    }
    if pcapng {
        eprintln!(
            "droptrace: wrote {} packets on {} interfaces to {}{}",
            stats.packets,
            stats.interfaces,
            target.display(),
            if stats.without_bytes > 0 {
                format!(
                    "; {} drops had no packet bytes (not IP, or the bytes were not in the \
                     packet's linear part)",
                    stats.without_bytes
                )
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

/// The export's destination: a new file (mode 0600: it holds real traffic), or stdout.
fn output(target: &Path) -> Result<Box<dyn Write>, Error> {
    if target.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    let file = super::create_private(target, true)?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}
