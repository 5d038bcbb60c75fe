//! `droptrace diagnose`, the pure part: from the drops of a watch window and the raw state
//! of every namespace before and after it (sampled by `probe::collect`), the causes, with
//! evidence and fixes. Nothing here touches the system.
pub mod baseline;
pub mod engine;
pub mod evidence;
pub mod host;
pub mod knowledge;
pub mod programs;
pub mod raw;
pub mod report;
pub mod row;
pub mod session;
pub mod state;
pub mod subject;
