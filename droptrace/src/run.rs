//! The commands: on a terminal a live run opens the live view; otherwise it prints drops
//! as they come (text) or a summary at the end (JSON); `diagnose` hands a watch to the
//! diagnosis.
use std::{io::Write, ops::ControlFlow, time::Duration};

use std::io::IsTerminal;

use crate::{
    cli::{Cli, Command, Format},
    error::Error,
    feed::{self, LiveView},
    summary::Summary,
    text::{self, TextPrinter},
    watch::Watch,
};

pub fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the runtime".into(), e))?;
    match cli.command {
        Some(Command::Diagnose(args)) => runtime.block_on(crate::diagnose::run(args)),
        Some(Command::Record(args)) => runtime.block_on(crate::recorder::run(args)),
        Some(Command::Report(args)) => crate::report::run(&args),
        Some(Command::Export(args)) => crate::report::export(&args),
        Some(Command::Replay(args)) => {
            drop(runtime);
            let closing = crate::replay::run(&args, on_terminal())?;
            let _ = write_out(&mut std::io::stdout().lock(), &closing);
            Ok(())
        }
        None if cli.format.is_none() && on_terminal() => {
            drop(runtime);
            let closing = feed::run(LiveView {
                args: cli.live,
                duration: cli.duration.map(Duration::from_secs_f64),
                interval: Duration::from_secs_f64(cli.interval.unwrap_or(0.25)),
                vmlinux: cli.vmlinux,
            })?;
            let _ = write_out(&mut std::io::stdout().lock(), &closing);
            Ok(())
        }
        None => runtime.block_on(run_live(cli)),
    }
}

async fn run_live(cli: Cli) -> Result<(), Error> {
    let format = cli.format.unwrap_or(Format::Text);
    let mut watch = Watch::start(&cli.live)?;
    watch.announce(&match cli.duration {
        Some(d) => format!("stopping after {d} s"),
        None => "Ctrl-C to stop".into(),
    });
    let mut printer = TextPrinter::default();
    let mut stdout = std::io::stdout().lock();
    let every =
        (format == Format::Text).then(|| Duration::from_secs_f64(cli.interval.unwrap_or(1.0)));
    watch
        .run(cli.duration.map(Duration::from_secs_f64), every, |w| {
            let block = printer.block(&w.agg, &w.resolver, w.elapsed().as_secs_f64());
            if !block.is_empty() && write_out(&mut stdout, &block).is_err() {
                return ControlFlow::Break(()); // stdout closed: stop quietly, like filters do
            }
            ControlFlow::Continue(())
        })
        .await?;
    watch.finish()?;
    let out = match format {
        Format::Json => {
            let mut s = serde_json::to_string(&Summary::new(&watch.agg, &watch.resolver))
                .map_err(|e| Error::Io("writing the summary".into(), std::io::Error::other(e)))?;
            s.push('\n');
            s
        }
        Format::Text => text::final_table(&watch.agg, &watch.resolver),
    };
    // A closed stdout at the end is not worth an error.
    let _ = write_out(&mut stdout, &out);
    Ok(())
}

/// The live view needs a terminal for its output and for keys.
fn on_terminal() -> bool {
    std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

fn write_out(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}
