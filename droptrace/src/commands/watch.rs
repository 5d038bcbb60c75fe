//! `droptrace` without a terminal (or with `--format`): the live source into the text
//! sink (a block per interval, the closing table) or the JSON summary.
use std::time::Duration;

use crate::{
    cli::{Cli, Format},
    error::Error,
    pipeline::{drive, Sink},
    probe::{LiveOptions, LiveSource},
    sinks::{summary::SummarySink, text::TextSink},
};

pub async fn run(cli: Cli) -> Result<(), Error> {
    let format = cli.format.unwrap_or(Format::Text);
    let mut source = LiveSource::start(
        &cli.live,
        LiveOptions {
            duration: cli.duration.map(Duration::from_secs_f64),
            tick: (format == Format::Text)
                .then(|| Duration::from_secs_f64(cli.interval.unwrap_or(1.0))),
            name_workloads: true,
            ..LiveOptions::default()
        },
    )?;
    source.announce(&match cli.duration {
        Some(d) => format!("stopping after {d} s"),
        None => "Ctrl-C to stop".into(),
    });
    let stdout = std::io::stdout().lock();
    let mut sink: Box<dyn Sink> = match format {
        Format::Text => Box::new(TextSink::new(stdout)),
        Format::Json => Box::new(SummarySink(stdout)),
    };
    drive(&mut source, &mut [&mut *sink]).await?;
    Ok(())
}
