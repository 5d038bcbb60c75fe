//! Where drops go, one file per sink: the dropwatch-style text lines ([`text`]), the JSON
//! summary ([`summary`]), a recording ([`recorder`]), the live view ([`view`]), the
//! exports of a recording ([`export`]), and the Prometheus exporter ([`metrics`]). Each
//! implements [`crate::pipeline::Sink`].
pub mod export;
pub mod metrics;
pub mod recorder;
pub mod summary;
pub mod tcp;
pub mod text;
pub mod timeline;
pub mod view;

#[cfg(test)]
mod tests;
