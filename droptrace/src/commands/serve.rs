//! `droptrace serve`: the live source into the metrics sink; beside the pipeline, a host
//! sampler (namespaces, interfaces, stack counters) and the HTTP server, each on a thread
//! of its own so that neither scrapers nor sampling slow the ring buffer's reader.
use std::{
    sync::{mpsc, Arc},
    time::Duration,
};

use crate::{
    cli::ServeArgs,
    commands::error::Error,
    pipeline::{drive, source::Control},
    probe::{clock, host, workloads::HostPaths, LiveOptions, LiveSource},
    sinks::metrics::{
        series::{BuildInfo, DropLabel, Exposition},
        server::{self, Limits},
        MetricsSink, Shared,
    },
};

/// The exporter's figures are folded this often.
const TICK: Duration = Duration::from_secs(1);
/// The host is sampled this often, and sooner when drops come from a namespace it does
/// not know yet.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

pub async fn run(args: ServeArgs) -> Result<(), Error> {
    // Bound first: an address in use is an error before anything is attached.
    let listener = std::net::TcpListener::bind(args.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::Io(format!("listening on {}", args.listen), e))?;
    // The port really bound (`--listen 127.0.0.1:0` picks one).
    let bound = listener
        .local_addr()
        .map_err(|e| Error::Io(format!("listening on {}", args.listen), e))?;
    // The host is looked at before attaching, so the first scrape has its names and the
    // ring buffer is never left undrained for it.
    let host_paths = HostPaths::new(&args.live.host_root);
    let first_sample = host::sample(&host_paths);
    let mut source = LiveSource::start(
        &args.live.spec(),
        LiveOptions {
            tick: Some(TICK),
            interfaces: true,
            ..LiveOptions::default()
        },
    )?;
    let labels = args
        .labels
        .map_or_else(|| DropLabel::DEFAULT.to_vec(), |l| l.0);
    let build = BuildInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        kernel: clock::kernel_release(),
        attach: source.attach_mode().into(),
    };
    let max_series = usize::try_from(args.max_series).unwrap_or(usize::MAX);
    let shared = Arc::new(Shared::new(
        Exposition::new(labels, max_series, build),
        TICK,
    ));
    shared.sample(first_sample, 0);

    let control = Arc::new(Control::default());
    let (wake_tx, wake_rx) = mpsc::sync_channel(1);
    let sampler = {
        let (shared, control) = (Arc::clone(&shared), Arc::clone(&control));
        spawn("droptrace-sampler", move || {
            sample_until_stopped(&shared, &control, &wake_rx, &host_paths);
        })?
    };
    let http = {
        let (shared, control) = (Arc::clone(&shared), Arc::clone(&control));
        spawn("droptrace-http", move || {
            serve_until_stopped(listener, shared, control)
        })?
    };
    source.announce(&format!("serving http://{bound}/metrics; Ctrl-C to stop"));
    let mut sink = MetricsSink::new(Arc::clone(&shared), wake_tx);
    let outcome = drive(&mut source, &mut [&mut sink]).await;
    control.stop();
    drop(sink); // closes the sampler's wake-up channel
    let _ = sampler.join();
    let served = http.join().unwrap_or_else(|_| {
        Err(Error::Io(
            "the HTTP server".into(),
            std::io::Error::other("panicked"),
        ))
    });
    outcome?;
    served
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Io(format!("starting the {name} thread"), e))
}

fn sample_until_stopped(
    shared: &Shared,
    control: &Control,
    wake: &mpsc::Receiver<()>,
    host_paths: &HostPaths,
) {
    while !control.stop_requested() {
        match wake.recv_timeout(SAMPLE_EVERY) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {
                let after = shared.folds();
                shared.sample(host::sample(host_paths), after);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn serve_until_stopped(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    control: Arc<Control>,
) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Io("starting the HTTP runtime".into(), e))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Io("listening".into(), e))?;
        let limits = Limits {
            loopback_only: listener.local_addr().is_ok_and(|a| a.ip().is_loopback()),
            ..Limits::default()
        };
        server::serve(listener, shared, limits, control).await;
        Ok(())
    })
}
