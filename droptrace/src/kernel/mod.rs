//! Readers of what the running kernel tells about itself: BTF, tracefs formats, kallsyms.
//! All parsers take bytes or text, so they are tested on captured fixtures.
pub mod btf;
pub mod debuginfo;
pub mod kallsyms;
pub mod reasons;
pub mod tracefs;
