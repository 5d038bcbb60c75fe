//! `droptrace report` and `droptrace export`: a recording read back through the same
//! aggregator and summary as a live run, with the recording's own names.
use std::{
    collections::HashMap,
    fmt::Write as _,
    io::Write,
    path::{Path, PathBuf},
};

use crate::{
    aggregate::Aggregator,
    cli::{ExportArgs, Format, ReportArgs},
    error::Error,
    kernel::reasons::DropReasonTable,
    record::{Header, Item, Recording, Status},
    resolve::Resolver,
    summary::Summary,
    text,
    tui::view::format,
    watch::warn,
};

/// A recording, aggregated.
pub struct ReadBack {
    pub header: Header,
    pub agg: Aggregator,
    pub resolver: Resolver,
    pub status: Status,
    pub events: u64,
}

/// Reads the whole recording through an aggregator, as a live run would have counted it.
pub fn read_all(path: &Path) -> Result<ReadBack, Error> {
    let fail = |source| Error::Recording {
        path: path.into(),
        source,
    };
    let mut reader = Recording::open(path).map_err(fail)?;
    let mut agg = Aggregator::new();
    let mut last = None;
    let mut events = 0u64;
    let status = reader
        .for_each(|item| match item {
            Item::Drop(drop, _) => {
                events += 1;
                agg.add(&drop);
            }
            Item::Counters(c) => last = Some(c),
        })
        .map_err(fail)?;
    let header = reader.header().clone();
    if let Some(c) = last {
        let mut kernel = c.kernel;
        if status != Status::Complete {
            // Events after the last counters block still count.
            let lost: u64 = c.lost_groups.iter().map(|(_, n)| n).sum();
            kernel.matched = kernel
                .matched
                .max(agg.delivered() + lost + kernel.lost_ungrouped);
        }
        agg.set_kernel(kernel, c.lost_groups);
    } else {
        let mut kernel = agg.counters();
        kernel.matched = agg.delivered();
        agg.set_kernel(kernel, []);
    }
    let reasons = (!header.reasons.is_empty()).then(|| {
        DropReasonTable::from_entries(header.reasons.iter().map(|(v, n)| (*v, n.as_str())))
    });
    let locations: HashMap<_, _> = reader.names().locations.clone();
    Ok(ReadBack {
        resolver: Resolver::recorded(locations, reasons),
        header,
        agg,
        status,
        events,
    })
}

pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let r = read_all(&args.file)?;
    if let Status::Truncated { at_offset } = r.status {
        warn(&format!(
            "{} ends at byte {at_offset} without its end block (the recorder was killed or \
             ran out of disk): these are the figures up to its last complete block",
            args.file.display()
        ));
    }
    let out = match args.format {
        Format::Json => {
            let mut s = serde_json::to_string(&Summary::new(&r.agg, &r.resolver))
                .map_err(|e| Error::Io("writing the summary".into(), std::io::Error::other(e)))?;
            s.push('\n');
            s
        }
        Format::Text => about(&args.file, &r) + &text::final_table(&r.agg, &r.resolver),
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

/// The lines before the table: where and when the recording was made.
fn about(path: &Path, r: &ReadBack) -> String {
    let h = &r.header;
    let mut out = String::new();
    let started = h.boot_time_ns.saturating_add(h.started_ns);
    let end = r
        .agg
        .groups()
        .map(|(_, s)| s.last_ns)
        .max()
        .unwrap_or(h.started_ns);
    let _ = writeln!(
        out,
        "recording {}: host {}, kernel {}, droptrace {}",
        path.display(),
        or_dash(&h.hostname),
        or_dash(&h.kernel_release),
        h.droptrace_version
    );
    let last = if r.events == 0 {
        "no drop recorded".to_owned()
    } else {
        format!("last drop {} later", format::ago(end, h.started_ns))
    };
    let _ = writeln!(
        out,
        "started {} UTC, {last}; filters: {}; snaplen {}",
        utc(started),
        or_dash(&h.filters),
        h.snaplen
    );
    let _ = writeln!(
        out,
        "{} events read; {}",
        format::count(r.events),
        match r.status {
            Status::Complete => "complete".to_owned(),
            Status::Truncated { at_offset } => format!("cut at byte {at_offset}"),
            Status::Reading => "not read to the end".to_owned(),
        }
    );
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `2026-11-22 13:40:01` from nanoseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn export(args: &ExportArgs) -> Result<(), Error> {
    let fail = |source| Error::Recording {
        path: args.file.clone(),
        source,
    };
    let mut reader = Recording::open(&args.file).map_err(fail)?;
    let (target, pcapng) = match (&args.pcapng, &args.jsonl) {
        (Some(p), _) => (p, true),
        (None, Some(j)) => (j, false),
        (None, None) => unreachable!("clap requires one of --pcapng and --jsonl"),
    };
    let mut out = output(target)?;
    let result = if pcapng {
        crate::export::write_pcapng(&mut reader, &mut out)
    } else {
        crate::export::write_jsonl(&mut reader, &mut out)
    };
    let stats = result.map_err(|source| Error::Export {
        path: args.file.clone(),
        source,
    })?;
    out.flush()
        .map_err(|e| Error::Io(format!("writing {}", target.display()), e))?;
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
fn output(target: &PathBuf) -> Result<Box<dyn Write>, Error> {
    if target.as_os_str() == "-" {
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout().lock())));
    }
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
        .map_err(|e| Error::Io(format!("creating {}", target.display()), e))?;
    Ok(Box::new(std::io::BufWriter::new(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_361_001 * 1_000_000_000), "2026-11-22 15:23:21");
    }
}
