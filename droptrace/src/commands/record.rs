//! `droptrace record`: the live source, copying packet bytes, into the recording sink.
use std::{io::IsTerminal, time::Duration};

use crate::{
    cli::RecordArgs,
    commands::error::Error,
    pipeline::drive,
    probe::{clock, LiveOptions, LiveSource},
    record::{Header, Writer},
    sinks::recorder::{write_error, Recorder},
};

/// Counters go in and blocks go out this often (the most a SIGKILL can lose).
const FLUSH_EVERY: Duration = Duration::from_millis(250);

pub async fn run(args: RecordArgs) -> Result<(), Error> {
    let mut source = LiveSource::start(
        &args.live.spec(),
        LiveOptions {
            snaplen: args.snaplen,
            duration: args.duration.map(Duration::from_secs_f64),
            tick: Some(FLUSH_EVERY),
            name_places: true,
            name_workloads: true,
            control: None,
            // A recording keeps every drop.
            stream: true,
            // Not in recordings (yet): their format has no block for them.
            interfaces: false,
            on_terminal: false,
            // XDP verdicts are counted, not events: their groups go in the counters
            // (format version 5), the programs named there.
            no_xdp: false,
        },
    )?;
    let file = super::create_private(&args.output, args.force)?;
    let header = Header {
        kernel_release: clock::kernel_release(),
        hostname: clock::hostname(),
        boot_time_ns: clock::boot_time_ns(),
        started_ns: clock::boottime_ns(),
        filters: source.describe_filters(),
        snaplen: args.snaplen,
        reasons: source
            .reasons()
            .map(|t| t.entries().map(|(v, n)| (v, n.to_owned())).collect())
            .unwrap_or_default(),
        reset_reasons: source
            .reset_reasons()
            .iter()
            .map(|(v, n)| (*v, n.clone()))
            .collect(),
        ..Header::default()
    };
    let writer = Writer::new(file, &header).map_err(|e| write_error(&args.output, e))?;
    let mut recorder = Recorder::new(
        writer,
        args.output.clone(),
        args.count,
        std::io::stderr().is_terminal(),
    );
    source.announce(&match (args.duration, args.count) {
        (Some(d), _) => format!("recording to {} for {d} s", args.output.display()),
        (None, Some(n)) => format!("recording {n} drops to {}", args.output.display()),
        (None, None) => format!("recording to {}; Ctrl-C to stop", args.output.display()),
    });
    drive(&mut source, &mut [&mut recorder]).await?;
    Ok(())
}
