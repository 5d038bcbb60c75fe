//! droptrace: where and why the kernel drops packets.
//!
//! One pipeline, in one direction (ARCHITECTURE.md draws it):
//!
//! ```text
//! source (probe::LiveSource | pipeline::recording::RecordingSource)
//!     -> decode -> resolve (one Names table) -> aggregate -> sinks
//! ```
//!
//! - [`probe`]: the only folder that needs privileges: aya and the kernel program,
//!   discovery of the running kernel, capabilities, clocks, network namespaces (setns),
//!   sampling namespaces for diagnose. The live source lives here.
//! - [`kernel`]: pure parsers of what the kernel says about itself (BTF, tracefs,
//!   kallsyms, debug info), tested on captured fixtures.
//! - [`containers`]: pure parsers of what container runtimes leave on the node (cgroup
//!   paths, bundle annotations), naming the container and pod of a namespace.
//! - [`pipeline`]: the drive loop, the `Source` and `Sink` traits, decoding, names,
//!   aggregation, and the recording source. Runs without root.
//! - [`sinks`]: text, JSON summary, recorder, live-view publisher, exports.
//! - [`record`]: the recording file format.
//! - [`html`]: self-contained HTML pages of a report or a diagnosis (pure).
//! - [`live`]: the live view's contract (snapshot, requests, the link), shared by the
//!   view sink and the view.
//! - [`tui`]: the live view (pure state and drawing; it never knows its source).
//! - [`diagnose`]: from drops and sampled state to causes (pure).
//! - [`commands`]: one thin file per subcommand, wiring a source to sinks.
pub mod cli;
pub mod commands;
pub mod containers;
pub mod diagnose;
pub mod format;
pub mod html;
pub mod kernel;
pub mod live;
pub mod pipeline;
pub mod probe;
pub mod record;
pub mod sinks;
pub mod tui;
