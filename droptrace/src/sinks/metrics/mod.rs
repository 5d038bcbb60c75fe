//! The Prometheus exporter: a sink that folds the pipeline's exact counts into series
//! ([`series`]) at every tick, and the HTTP server that shows them ([`server`]) in the
//! text format or OpenMetrics ([`encode`]). The host's namespaces, interfaces and the
//! counters of drops that never reach kfree_skb come from a sampler in `probe::host`.
pub mod encode;
pub mod labels;
pub mod series;
pub mod server;

use std::{
    ops::ControlFlow,
    sync::{mpsc, Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    pipeline::sink::{Moment, Sink},
    pipeline::Error,
};

use crate::pipeline::host::HostSample;
use series::Exposition;

/// What the sink, the sampler and the server share.
#[derive(Debug)]
pub struct Shared {
    exposition: Mutex<Exposition>,
    /// Encoded bodies of the current figures (text, OpenMetrics), made once per change
    /// however many scrapers ask.
    bodies: Mutex<(Option<Bytes>, Option<Bytes>)>,
    /// When the sink last saw a tick: the ring buffer is being read.
    last_tick: Mutex<Option<Instant>>,
    /// Longest gap between ticks that still counts as healthy.
    stale_after: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere leaves plain data behind: keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn new(exposition: Exposition, tick: Duration) -> Shared {
        Shared {
            exposition: Mutex::new(exposition),
            bodies: Mutex::new((None, None)),
            last_tick: Mutex::new(None),
            stale_after: tick * 5 + Duration::from_secs(2),
        }
    }

    /// The fold a sample taken now begins after (see [`Exposition::sample`]).
    pub fn folds(&self) -> u64 {
        lock(&self.exposition).folds()
    }

    /// A sample of the host whose scan began after fold `after`, from the sampler.
    pub fn sample(&self, sample: HostSample, after: u64) {
        lock(&self.exposition).sample(sample, after);
        *lock(&self.bodies) = (None, None);
    }

    /// `/metrics`: the text format, or OpenMetrics. Encoded at most once per change,
    /// outside the locks the sink and the sampler take.
    pub fn body(&self, openmetrics: bool) -> Bytes {
        let cached = {
            let bodies = lock(&self.bodies);
            if openmetrics {
                bodies.1.clone()
            } else {
                bodies.0.clone()
            }
        };
        if let Some(b) = cached {
            return b;
        }
        let families = encode::families(&lock(&self.exposition));
        let body = Bytes::from(if openmetrics {
            encode::openmetrics_of(families)
        } else {
            encode::text_of(&families)
        });
        let mut bodies = lock(&self.bodies);
        let slot = if openmetrics {
            &mut bodies.1
        } else {
            &mut bodies.0
        };
        slot.get_or_insert_with(|| body.clone());
        body
    }

    /// `/healthz`: attached, and the ring buffer read recently.
    pub fn healthy(&self) -> bool {
        lock(&self.last_tick).is_some_and(|t| t.elapsed() <= self.stale_after)
    }
}

/// The sink: every tick, the figures into the exposition.
pub struct MetricsSink {
    shared: Arc<Shared>,
    /// Asks the sampler for a sample now (drops from namespaces it does not know).
    wake_sampler: mpsc::SyncSender<()>,
}

impl MetricsSink {
    pub fn new(shared: Arc<Shared>, wake_sampler: mpsc::SyncSender<()>) -> MetricsSink {
        MetricsSink {
            shared,
            wake_sampler,
        }
    }

    fn fold(&self, at: &Moment<'_>) {
        let unknown = {
            let mut e = lock(&self.shared.exposition);
            e.fold(at.agg, at.names);
            e.unknown_namespaces
        };
        *lock(&self.shared.bodies) = (None, None);
        if unknown {
            // A full channel means a sample is on its way already.
            let _ = self.wake_sampler.try_send(());
        }
    }
}

impl Sink for MetricsSink {
    fn tick(&mut self, at: &Moment<'_>) -> ControlFlow<()> {
        self.fold(at);
        *lock(&self.shared.last_tick) = Some(Instant::now());
        ControlFlow::Continue(())
    }

    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        self.fold(at);
        *lock(&self.shared.last_tick) = None;
        Ok(())
    }
}
