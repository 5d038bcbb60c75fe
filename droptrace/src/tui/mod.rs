//! The live view: a full-screen table of drops that updates as they come.
//!
//! Elm-style: [`update::update`] is the only code that changes [`state::State`],
//! [`view::render`] only draws it, and [`app`] (the one module that touches the terminal)
//! runs the loop. Snapshots come through a [`Link`] from the pipeline's view sink,
//! whatever the source (the live kernel, or a recording); the view cannot tell which.
pub mod app;
pub use app::Error;
pub mod filter;
pub mod history;
pub mod state;
pub mod update;
pub mod view;

pub use crate::live::Link;

#[cfg(test)]
mod tests;
