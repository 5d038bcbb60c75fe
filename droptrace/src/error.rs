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

impl Error {
    /// Whether this is only the reader of the output gone (`droptrace ... | head`): a
    /// normal end, said with no message and exit status 0.
    pub fn is_closed_pipe(&self) -> bool {
        let io = match self {
            Error::Io(_, e)
            | Error::Export {
                source: crate::sinks::export::ExportError::Io(e),
                ..
            } => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }

    /// Exit status: 0 for a closed pipe, 2 for a bad value given on the command line (as for any usage
    /// error), 77 (EX_NOPERM) for missing privileges, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            _ if self.is_closed_pipe() => 0,
            Error::UnknownReason { .. } | Error::UnknownProtocol(_) => 2,
            Error::MissingCapabilities(_) => 77,
            _ => 1,
        }
    }
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

/// A problem droptrace works around, said once on stderr.
pub fn warn(message: &str) {
    // One line each; names in it may come from the host or a file.
    eprintln!("droptrace: warning: {}", crate::format::printable(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_flag_values_are_usage_errors() {
        let reason = Error::UnknownReason {
            name: "NETFILTER_DRP".into(),
            suggestion: Some("NETFILTER_DROP".into()),
            known: "NETFILTER_DROP, NO_SOCKET".into(),
        };
        assert_eq!(reason.exit_code(), 2);
        assert!(reason
            .to_string()
            .starts_with("unknown drop reason `NETFILTER_DRP` (did you mean NETFILTER_DROP?)"));
        let proto = Error::UnknownProtocol("tcpp".into());
        assert_eq!(proto.exit_code(), 2);
        assert!(proto.to_string().contains("(did you mean tcp?)"));
        assert_eq!(Error::MissingCapabilities(vec!["CAP_BPF"]).exit_code(), 77);
        assert_eq!(Error::NotATerminal.exit_code(), 1);
    }
}
