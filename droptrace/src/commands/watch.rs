//! `droptrace` without a terminal (or with `--format`): the live source into the text
//! sink (a block per interval, the closing table), the JSON summary, or JSON Lines.
use std::time::Duration;

use crate::{
    cli::{Cli, LiveFormat},
    commands::error::Error,
    pipeline::{drive, Sink},
    probe::{
        clock,
        lines::{self, LineResolver},
        LiveOptions, LiveSource,
    },
    record::Header,
    sinks::{export::JsonlSink, summary::SummarySink, text::TextSink},
};

pub async fn run(cli: Cli) -> Result<(), Error> {
    let format = cli.format.unwrap_or(LiveFormat::Text);
    let tick = match format {
        LiveFormat::Text => Some(cli.interval.unwrap_or(1.0)),
        LiveFormat::Jsonl => Some(1.0),
        LiveFormat::Json => None,
    };
    let mut source = LiveSource::start(
        &cli.live.spec(),
        LiveOptions {
            duration: cli.duration.map(Duration::from_secs_f64),
            tick: tick.map(Duration::from_secs_f64),
            // Every output says where drops were: interfaces and namespaces by name.
            name_places: true,
            name_workloads: true,
            // JSON Lines writes drops one by one.
            stream: format == LiveFormat::Jsonl,
            // The text table and the JSON summary show the interfaces' drops too.
            interfaces: format != LiveFormat::Jsonl,
            ..LiveOptions::default()
        },
    )?;
    source.announce(&match cli.duration {
        Some(d) => format!("stopping after {d} s"),
        None => "Ctrl-C to stop".into(),
    });
    let stdout = std::io::stdout().lock();
    let mut sink: Box<dyn Sink> = match format {
        LiveFormat::Text => Box::new(TextSink::new(stdout, clock::boot_time_ns())),
        LiveFormat::Json => {
            // Source lines when debug info is there; `source` stays null otherwise.
            let release = clock::kernel_release();
            match lines::debuginfo_path(cli.vmlinux.as_deref(), &release) {
                Ok(path) => source.with_source_lines(LineResolver::open(path, release, true)),
                Err(why) => {
                    if cli.vmlinux.is_some() {
                        crate::format::warn(&format!("no source lines: {why}"));
                    }
                }
            }
            Box::new(SummarySink::new(stdout))
        }
        LiveFormat::Jsonl => {
            // The times of the lines are wall-clock: boot time plus the drop's.
            let header = Header {
                boot_time_ns: clock::boot_time_ns(),
                ..Header::default()
            };
            Box::new(JsonlSink::live(&header, stdout, cli.max_events_per_second))
        }
    };
    drive(&mut source, &mut [&mut *sink]).await?;
    Ok(())
}
