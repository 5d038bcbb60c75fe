//! `droptrace diagnose`: sample the system around a watch window and explain drops.
pub mod collect;
pub mod command;
pub mod engine;
pub mod evidence;
pub mod knowledge;
pub mod netns;
pub mod report;
pub mod state;

pub use command::run;
