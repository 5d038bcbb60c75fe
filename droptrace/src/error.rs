//! Errors a user meets, each saying what is wrong and, where possible, the fix.
use std::path::PathBuf;

use thiserror::Error;

use crate::kernel::layout::LayoutError;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "droptrace needs {} to load its kernel program, and this process does not have {}.\n\
         Run it as root (sudo droptrace ...), or give the binary the capabilities once:\n  \
         sudo setcap cap_bpf,cap_perfmon,cap_syslog,cap_sys_admin+ep \"$(command -v droptrace)\"",
        .0.join(" and "), if .0.len() > 1 { "them" } else { "it" }
    )]
    MissingCapabilities(Vec<&'static str>),

    #[error(
        "the skb:kfree_skb tracepoint cannot be found: the kernel has no BTF \
         (/sys/kernel/btf/vmlinux) and tracefs is not mounted at /sys/kernel/tracing.\n\
         Mount it with:\n  sudo mount -t tracefs tracefs /sys/kernel/tracing"
    )]
    NoTracefs,

    #[error("{0}")]
    Layout(#[from] LayoutError),

    #[error("reading the kernel's BTF: {0}")]
    Btf(String),

    #[error(
        "packet filters (--port, --sport, --dport, --proto, --addr, --iface, --netns) need the \
         kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF), which this kernel does \
         not offer; only --reason and --exclude-reason work without it"
    )]
    NoPacketFilters,

    #[error(
        "--reason/--exclude-reason need the kernel's drop reasons, which this kernel does not \
         have (they arrived in Linux 5.17)"
    )]
    NoReasons,

    #[error("unknown drop reason `{name}`{}\nknown reasons: {known}",
        .suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownReason {
        name: String,
        suggestion: Option<String>,
        known: String,
    },

    #[error("unknown protocol `{0}`: give a name such as tcp, udp, icmp, icmpv6, sctp, or a number from 0 to 255")]
    UnknownProtocol(String),

    #[error("network namespace {}: {source}", path.display())]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("no network interface named `{name}` in {where_}")]
    NoInterface { name: String, where_: String },

    #[error(
        "no {what} on this node: droptrace looks for containers in /proc and the runtimes' \
         state under {}; is it running here{}?",
        host_root.display(),
        if host_root.as_os_str() == "/" { "" } else { ", and are /proc and the runtimes' state mounted there" }
    )]
    NoWorkload { what: String, host_root: PathBuf },

    #[error("{what} is in more than one network namespace ({}): give the container's ID", matches.join(", "))]
    AmbiguousWorkload { what: String, matches: Vec<String> },

    #[error(transparent)]
    Probe(#[from] crate::probe::attach::ProbeError),

    #[error("{0}: {1}")]
    Io(String, std::io::Error),

    #[error(
        "{} is a symbolic link; droptrace does not write through one: give the path of the \
         file itself", .0.display()
    )]
    Symlink(PathBuf),

    #[error("{} exists; give --force to replace it", .0.display())]
    Exists(PathBuf),

    #[error("baseline {}: {source}", path.display())]
    Baseline {
        path: PathBuf,
        source: crate::diagnose::baseline::BaselineError,
    },

    #[error("{}: {source}", path.display())]
    Recording {
        path: PathBuf,
        source: crate::record::ReadError,
    },

    #[error("{}: {source}", path.display())]
    Export {
        path: PathBuf,
        source: crate::sinks::export::ExportError,
    },

    #[error(
        "replay shows the live view, which needs a terminal; for text or JSON use \
         `droptrace report FILE [--format json]`"
    )]
    NotATerminal,
}

impl Error {
    /// Exit status: 77 (EX_NOPERM) for missing privileges, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::MissingCapabilities(_) => 77,
            _ => 1,
        }
    }
}

/// A problem droptrace works around, said once on stderr.
pub fn warn(message: &str) {
    // One line each; names in it may come from the host or a file.
    eprintln!("droptrace: warning: {}", crate::format::printable(message));
}
