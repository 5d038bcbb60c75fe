//! Where drops go, one file per sink: the dropwatch-style text lines ([`text`]), the JSON
//! summary ([`summary`]), a recording ([`recorder`]), the live view ([`view`]), and the
//! exports of a recording ([`export`]). Each implements [`crate::pipeline::Sink`].
pub mod export;
pub mod recorder;
pub mod summary;
pub mod text;
pub mod view;
