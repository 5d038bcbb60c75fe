//! What can stop the probe: missing privileges, a kernel without what droptrace needs,
//! a filter that names nothing on this host, a program the kernel refuses.
use std::path::PathBuf;

use thiserror::Error;

use crate::{kernel::layout::LayoutError, pipeline};

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

    #[error("{}", unknown_protocol(.0))]
    UnknownProtocol(String),

    #[error("network namespace {}: {source}{}", path.display(), netns_hint(source))]
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
    Attach(#[from] ProbeError),

    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// What can go wrong between the kernel object and an attached program.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the kernel program: {0}")]
    Load(Box<aya::EbpfError>),

    #[error("loading {0}: {1}")]
    Program(&'static str, Box<aya::programs::ProgramError>),

    #[error("attaching to skb:kfree_skb: {0}")]
    Attach(Box<aya::programs::ProgramError>),

    #[error("the kernel object has no program {0} (rebuild it with cargo xtask build-ebpf)")]
    MissingProgram(&'static str),

    #[error("the kernel object has no map {0} (rebuild it with cargo xtask build-ebpf)")]
    MissingMap(&'static str),

    #[error("BPF map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),

    #[error("the kernel object (rebuild it with cargo xtask build-ebpf): {0}")]
    Object(String),
}

/// The loop carries a probe's error whole, for the command to say it and choose the
/// exit status.
impl From<Error> for pipeline::Error {
    fn from(e: Error) -> pipeline::Error {
        pipeline::Error::Other(Box::new(e))
    }
}

/// What `--proto` says of a name it does not know, with the nearest it knows.
pub fn unknown_protocol(name: &str) -> String {
    let hint = crate::pipeline::event::closest_proto_name(name)
        .map(|p| format!(" (did you mean {p}?)"))
        .unwrap_or_default();
    format!(
        "unknown protocol `{name}`{hint}: give a name such as tcp, udp, icmp, icmpv6, sctp, \
         or a number from 0 to 255"
    )
}

/// What to do about a namespace that is not there.
fn netns_hint(source: &std::io::Error) -> &'static str {
    if source.kind() == std::io::ErrorKind::NotFound {
        "\nnamed namespaces: `ip netns list` (give the name or /run/netns/NAME); a process's: \
         /proc/PID/ns/net (e.g. /proc/$(pidof nginx)/ns/net); a container's: --container or --pod"
    } else {
        ""
    }
}
