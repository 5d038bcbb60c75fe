//! `droptrace report`: a recording read to its end into the text sink's closing table or
//! the JSON summary, the same figures a live run prints, with the recording's own names.
use std::{fmt::Write as _, io::Write, path::Path};

use crate::{
    cli::{Format, ReportArgs},
    commands::error::Error,
    format::warn,
    format::{self, printable},
    html,
    pipeline::{drive_blocking, recording::RecordingSource, Outcome, Sink},
    record::{Recording, Status},
    sinks::{summary::Summary, text, timeline::TimelineSink},
};

/// A recording read to its end.
pub struct ReadBack {
    pub outcome: Outcome,
    pub source: RecordingSource<std::io::BufReader<std::fs::File>>,
}

/// Reads the whole recording through the drive loop, as a live run would have counted it,
/// with a sink of `make`'s (given the recording's start) beside the flow.
fn read_with<S: Sink>(
    path: &Path,
    make: impl FnOnce(u64) -> Option<S>,
) -> Result<(ReadBack, Option<S>), Error> {
    let reader = Recording::open(path).map_err(|source| Error::Recording {
        path: path.into(),
        source,
    })?;
    let mut source = RecordingSource::new(reader, path.into());
    let mut sink = make(source.header().started_ns);
    let outcome = match sink.as_mut() {
        Some(s) => drive_blocking(&mut source, &mut [s as &mut dyn Sink])?,
        None => drive_blocking(&mut source, &mut [])?,
    };
    Ok((ReadBack { outcome, source }, sink))
}

pub fn run(args: &ReportArgs) -> Result<(), Error> {
    let (r, timeline) = read_with(&args.file, |started| {
        (args.format == Format::Html).then(|| TimelineSink::new(started))
    })?;
    if let Some(skipped) = r.source.damage_warning() {
        warn(&skipped);
    }
    if let Status::Truncated { at_offset } = r.source.status() {
        warn(&format!(
            "{} ends at byte {at_offset} without its end block (the recorder was killed or \
             ran out of disk): these are the figures up to its last complete block",
            args.file.display()
        ));
    }
    let (agg, names) = (&r.outcome.agg, &r.outcome.names);
    let out = match args.format {
        Format::Json => Summary::new(agg, names).to_line()?,
        Format::Text => about(&args.file, &r) + &text::final_table(agg, names),
        Format::Html => {
            let summary = Summary::new(agg, names);
            let json = summary.to_line()?;
            let timeline = timeline.unwrap_or_else(|| TimelineSink::new(0));
            html::recording::page(
                &html_about(&args.file, &r),
                &summary,
                &timeline.by_reason,
                &timeline.by_site,
                json.trim_end(),
            )
        }
    };
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(())
}

/// The lines before the table: where and when the recording was made.
fn about(path: &Path, r: &ReadBack) -> String {
    let h = r.source.header();
    let events = r.source.events();
    let mut out = String::new();
    let started = h.boot_time_ns.saturating_add(h.started_ns);
    let end = r
        .outcome
        .agg
        .groups()
        .map(|(_, s)| s.last_ns)
        .max()
        .unwrap_or(h.started_ns);
    let _ = writeln!(
        out,
        "recording {}: host {}, kernel {}, droptrace {}",
        printable(&path.display().to_string()),
        printable(or_dash(&h.hostname)),
        printable(or_dash(&h.kernel_release)),
        printable(&h.droptrace_version)
    );
    let last = if events == 0 {
        "no drop recorded".to_owned()
    } else {
        format!("last drop {} later", format::ago(end, h.started_ns))
    };
    let _ = writeln!(
        out,
        "started {} UTC, {last}; filters: {}; snaplen {}",
        crate::format::utc(started),
        printable(or_dash(&h.filters)),
        h.snaplen
    );
    let _ = writeln!(
        out,
        "{} events read; {}",
        format::count(events),
        match r.source.status() {
            Status::Complete => "complete".to_owned(),
            Status::Truncated { at_offset } => format!("cut at byte {at_offset}"),
            Status::Reading => "not read to the end".to_owned(),
        }
    );
    out
}

fn html_about(path: &Path, r: &ReadBack) -> html::recording::About {
    let h = r.source.header();
    let started = h.boot_time_ns.saturating_add(h.started_ns);
    let utc = crate::format::utc(started);
    html::recording::About {
        file: path.display().to_string(),
        host: or_dash(&h.hostname).to_owned(),
        kernel: or_dash(&h.kernel_release).to_owned(),
        version: h.droptrace_version.clone(),
        started_clock: utc.rsplit(' ').next().unwrap_or_default().to_owned(),
        started_utc: utc,
        filters: h.filters.clone(),
        snaplen: h.snaplen,
        events: r.source.events(),
        status: match r.source.status() {
            Status::Complete => "complete".to_owned(),
            Status::Truncated { at_offset } => {
                format!("cut at byte {at_offset} (the recorder was killed or ran out of disk)")
            }
            Status::Reading => "not read to the end".to_owned(),
        } + &r
            .source
            .damage_warning()
            .map(|d| format!("; {d}"))
            .unwrap_or_default(),
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}
