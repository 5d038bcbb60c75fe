//! `sudo droptrace` on a terminal: the live source into the view sink.
use std::{sync::Arc, time::Duration};

use crate::{
    cli::Cli,
    commands::error::Error,
    live::snapshot::SourceInfo,
    pipeline::drive,
    probe::{
        clock,
        lines::{self, LineResolver},
        LiveOptions, LiveSource,
    },
    sinks::view::ViewPublisher,
};

pub fn run(cli: Cli) -> Result<(), Error> {
    super::view::show(move |link, ready| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Io("starting the runtime".into(), e))?;
        runtime.block_on(async {
            let mut source = LiveSource::start(
                &cli.live.spec(),
                LiveOptions {
                    duration: cli.duration.map(Duration::from_secs_f64),
                    tick: Some(Duration::from_secs_f64(cli.interval.unwrap_or(0.25))),
                    name_places: true,
                    name_workloads: true,
                    control: Some(Arc::clone(&link.control)),
                    interfaces: true,
                    // The terminal is the view's: programs found later are not printed.
                    on_terminal: true,
                    ..LiveOptions::default()
                },
            )?;
            let kernel = clock::kernel_release();
            let path = lines::debuginfo_path(cli.vmlinux.as_deref(), &kernel);
            let info = SourceInfo {
                source: "live".into(),
                kernel: kernel.clone(),
                filters: source.describe_filters(),
                debuginfo: path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .map_err(Clone::clone),
                diagnosis: Ok(()),
            };
            if ready.send(info).is_err() {
                return Ok(String::new());
            }
            if let Ok(p) = path {
                source.with_source_lines(LineResolver::open(p, kernel, false));
            }
            let mut view = ViewPublisher::new(link).with_diagnoser(Box::new(
                crate::diagnose::session::LiveDiagnoser::new(
                    crate::probe::row_sampler::HostSampler,
                ),
            ));
            let outcome = drive(&mut source, &mut [&mut view]).await?;
            Ok(super::view::closing(&outcome))
        })
    })
}
