//! The command line, in one place (clap derive): help and errors come from here.
use std::{net::SocketAddr, path::PathBuf};

use crate::{pipeline::recording::Speed, sinks::metrics::series::DropLabel};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where and why does this machine drop packets?
///
/// droptrace follows every packet the kernel frees as dropped (tracepoint skb:kfree_skb),
/// names the kernel function that dropped it and the kernel's reason, and counts drops
/// exactly, in the kernel, even when too many arrive to show each one.
#[derive(Debug, Parser)]
#[command(
    name = "droptrace",
    version,
    about,
    long_about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub live: LiveArgs,

    /// Stop after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Output. On a terminal, droptrace opens a live view; `text` prints a block of new
    /// drops every interval instead (the default when output is not a terminal); `json`
    /// prints one summary object when droptrace stops; `jsonl` prints one object per drop,
    /// a line each, as it comes (for log shippers).
    #[arg(long, value_enum)]
    pub format: Option<LiveFormat>,

    /// With `--format jsonl`: print at most this many drops a second; the rest are left
    /// out of the lines (and counted, on stderr and in a last line), never out of the counts.
    #[arg(long, value_name = "N", requires = "format")]
    pub max_events_per_second: Option<u64>,

    /// Seconds between two refreshes of the live view (default 0.25) or two text blocks
    /// (default 1).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub interval: Option<f64>,

    /// Kernel image with debug info, for the source file and line of drop sites in the
    /// live view's details and the `source` field of `--format json` (default: the usual
    /// /usr/lib/debug places; modules' lines from their .ko beside it).
    #[arg(long, value_name = "PATH")]
    pub vmlinux: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch drops for a while, sample the system before and after, and name the causes
    /// with their evidence and fixes.
    #[command(after_help = DIAGNOSE_EXAMPLES)]
    Diagnose(DiagnoseArgs),

    /// Record drops to a file (every event, the exact counters and the names needed to
    /// read it anywhere), to replay, report or export later without root.
    #[command(after_help = RECORD_EXAMPLES)]
    Record(RecordArgs),

    /// Play a recording in the live view (needs a terminal).
    Replay(ReplayArgs),

    /// Summarise a recording: the live run's closing table, or its JSON summary.
    Report(ReportArgs),

    /// Turn a recording into pcapng (packets with their drop reason as a comment) or JSON
    /// Lines (one object per drop).
    #[command(group(clap::ArgGroup::new("to").required(true).args(["pcapng", "jsonl"])))]
    Export(ExportArgs),

    /// Serve exact drop metrics for Prometheus on HTTP (`/metrics`, `/healthz`) until
    /// SIGINT or SIGTERM.
    #[command(after_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub live: LiveArgs,

    /// Address and port to listen on. Loopback by default: binding another address
    /// exposes the metrics to whoever reaches it.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9877")]
    pub listen: SocketAddr,

    /// Labels of droptrace_drops_total: the exact list (`reason,function,dport`) or
    /// changes to the default `reason,function,protocol,interface,netns,pod,pod_namespace,
    /// container` (`+dport`, `-interface`). `dport` is off by default: a port scan makes
    /// one series per port.
    #[arg(long, value_name = "LIST", value_parser = parse_labels)]
    pub labels: Option<Labels>,

    /// Series of droptrace_drops_total at most; drops of further label sets are counted
    /// in one `other` series (and in droptrace_series_dropped_total). Series of
    /// droptrace_stack_drops_total at most too, beyond which they add up in an `other`
    /// series of their own.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_series: u64,
}

/// The labels chosen with `--labels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels(pub Vec<DropLabel>);

fn parse_labels(text: &str) -> Result<Labels, String> {
    crate::sinks::metrics::series::parse_labels(text).map(Labels)
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The recording to write (created with mode 0600).
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,

    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub live: LiveArgs,

    /// Stop after this many seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub duration: Option<f64>,

    /// Stop after this many drops have been recorded (drops still arriving while
    /// droptrace detaches are kept too, so the counts stay exact).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Also keep the first BYTES of each dropped packet, from its IP header (0 to 4095),
    /// for `droptrace export --pcapng`.
    #[arg(long, value_name = "BYTES", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=4095))]
    pub snaplen: u32,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `droptrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Playback speed: a factor (2 plays twice as fast) or `max` (as fast as it reads).
    #[arg(long, value_name = "N|max", default_value = "1", value_parser = parse_speed)]
    pub speed: Speed,

    /// Seconds between two refreshes of the view.
    #[arg(long, value_name = "SECS", default_value = "0.25", value_parser = parse_duration)]
    pub interval: f64,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A file written by `droptrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// `text` for people; `json` for the same object a live run prints with --format json;
    /// `html` for one self-contained page (charts over time, the groups) to share.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A file written by `droptrace record`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Write the recorded packets as pcapng (needs `record --snaplen`); `-` for stdout.
    #[arg(long, value_name = "OUT")]
    pub pcapng: Option<PathBuf>,

    /// Write one JSON object per drop; `-` for stdout.
    #[arg(long, value_name = "OUT")]
    pub jsonl: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    pub live: LiveArgs,

    /// Seconds to watch.
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_duration)]
    pub duration: f64,

    /// Output: `text` for people, `json` for one object with the findings, `html` for one
    /// self-contained page to attach to a ticket.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Sample at most N namespaces before the window (the first by inode). After it,
    /// every namespace where drops happened is sampled too; one that was not sampled
    /// before is named in the report, as what grew in the window there is unknown.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_namespaces: u32,

    /// Also write the sampled state of every namespace (firewall rules and chain policies,
    /// qdiscs, BPF programs and where they are attached, sysctls, MTUs, routes) to FILE, a
    /// versioned JSON file (mode 0600), to compare with later (--baseline).
    #[arg(long, value_name = "FILE")]
    pub save_baseline: Option<PathBuf>,

    /// Replace the --save-baseline FILE if it exists.
    #[arg(long, requires = "save_baseline")]
    pub force: bool,

    /// Compare with a file --save-baseline wrote (this host when it worked, or a healthy
    /// host of the same role): each difference is listed, and findings whose evidence is
    /// new since the baseline rank first. Namespaces are matched by name.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
}

/// What every run that attaches to the kernel takes.
#[derive(Debug, Clone, Args)]
pub struct LiveArgs {
    #[command(flatten)]
    pub filters: FilterArgs,

    /// Size of the kernel-to-user event ring buffer in bytes (a power of two, at least 4096).
    /// Counts stay exact when it overflows; only per-packet details are lost. Default: 4 MiB
    /// when every drop is streamed (`record`, `--stream`, JSON Lines), 1 MiB when the kernel
    /// counts and sends samples (they are few).
    #[arg(long, value_name = "BYTES", value_parser = parse_ring_size)]
    pub ring_buffer_size: Option<u32>,

    /// Send every drop to user space as an event, instead of counting drops by group in
    /// the kernel and sending samples of each group. Counts are exact either way;
    /// streaming costs more under a flood. `record` and `--format jsonl` always stream.
    #[arg(long)]
    pub stream: bool,

    /// Groups (site, reason, protocol, port, interface, namespace) the kernel counts
    /// apart when it counts by group; drops of groups beyond are counted in the total, as
    /// unattributed. From 128 up, each CPU also keeps up to 128 groups in a cache of its
    /// own (cheaper to count in), which may hold groups beyond the map's.
    #[arg(long, value_name = "N", default_value_t = droptrace_common::GROUPS_MAX,
          value_parser = clap::value_parser!(u32).range(1..=droptrace_common::GROUPS_MAX as i64))]
    pub max_groups: u32,

    /// Do not trace TCP retransmits and resets (`tcp:tcp_retransmit_skb`,
    /// `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`); the outputs say TCP was not traced.
    #[arg(long)]
    pub no_tcp: bool,

    /// Print the kernel program's warnings about packets it could not read as the kernel's
    /// layout said it could (a sign of an unfamiliar kernel), as they come.
    #[arg(long, short = 'v')]
    pub verbose: bool,

    /// Do not trace XDP programs' verdicts. By default every XDP program on the host
    /// (loaded before droptrace or after) gets a small fexit program that counts its
    /// XDP_DROP and XDP_ABORTED verdicts, as drops of their own; it runs on every packet
    /// the XDP program sees (see docs/xdp.md for its cost).
    #[arg(long)]
    pub no_xdp: bool,

    /// Attach mode, normally chosen from what the kernel offers: tp-btf (BTF tracepoint) or
    /// tracepoint (classic, through tracefs).
    #[arg(long, value_enum, hide = true)]
    pub attach: Option<crate::kernel::layout::Attach>,

    /// Where the host's files are, to name containers and pods: `/host` when droptrace
    /// runs in a pod with the host's root mounted there (its /proc, /run/containerd,
    /// /run/containers, /var/lib/docker are read).
    #[arg(long, value_name = "PATH", default_value = "/")]
    pub host_root: PathBuf,
}

impl LiveArgs {
    /// What the probe is asked, as the probe takes it.
    pub fn spec(&self) -> crate::probe::ProbeSpec {
        crate::probe::ProbeSpec {
            filters: self.filters.spec(),
            ring_buffer_size: self.ring_buffer_size,
            stream: self.stream,
            max_groups: self.max_groups,
            no_tcp: self.no_tcp,
            no_xdp: self.no_xdp,
            verbose: self.verbose,
            attach: self.attach,
            host_root: self.host_root.clone(),
        }
    }
}

impl FilterArgs {
    /// The filters as given, as the probe takes them.
    pub fn spec(&self) -> crate::probe::filters::FilterSpec {
        crate::probe::filters::FilterSpec {
            port: self.port,
            sport: self.sport,
            dport: self.dport,
            proto: self.proto.clone(),
            addr: self.addr,
            reasons: self.reasons.clone(),
            exclude_reasons: self.exclude_reasons.clone(),
            iface: self.iface.clone(),
            netns: self.netns.clone(),
            pod: self.pod.clone(),
            container: self.container.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    /// One self-contained HTML page to share: no scripts, nothing fetched, readable printed.
    Html,
}

/// The live command's outputs (besides the live view on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LiveFormat {
    Text,
    Json,
    Jsonl,
}

/// Which drops to keep. They are applied in the kernel program, so drops filtered out never
/// reach user space.
#[derive(Debug, Default, Clone, Args)]
pub struct FilterArgs {
    /// Source or destination port (like tcpdump's `port`).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,

    /// Source port.
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,

    /// Destination port.
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,

    /// Transport protocol: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, esp, ah, or a
    /// protocol number.
    #[arg(long, value_name = "PROTO", value_parser = parse_proto)]
    pub proto: Option<String>,

    /// Source or destination address, IPv4 or IPv6.
    #[arg(long, value_name = "IP")]
    pub addr: Option<std::net::IpAddr>,

    /// Keep only this drop reason, as the kernel spells it (e.g. NETFILTER_DROP). Repeatable.
    #[arg(long = "reason", value_name = "NAME")]
    pub reasons: Vec<String>,

    /// Leave out this drop reason (e.g. NOT_SPECIFIED). Repeatable.
    #[arg(long = "exclude-reason", value_name = "NAME")]
    pub exclude_reasons: Vec<String>,

    /// Network interface the packet was on, by name, in droptrace's network namespace or
    /// the one given by --netns.
    #[arg(long, value_name = "NAME")]
    pub iface: Option<String>,

    /// Network namespace: its name, as `ip netns list` shows it (for /run/netns/NAME), or
    /// a path such as /proc/PID/ns/net.
    #[arg(long, value_name = "NAME-OR-PATH", value_parser = parse_netns)]
    pub netns: Option<PathBuf>,

    /// Kubernetes pod, as NAMESPACE/NAME: the drops in its network namespace (found on
    /// this node, without the Kubernetes API).
    #[arg(long, value_name = "NAMESPACE/NAME", value_parser = parse_pod, conflicts_with_all = ["netns", "container"])]
    pub pod: Option<String>,

    /// Container, by name or ID (a prefix of 12 or more characters): the drops in its
    /// network namespace.
    #[arg(long, value_name = "ID-OR-NAME", conflicts_with = "netns")]
    pub container: Option<String>,
}

/// A bare name is a namespace of `ip netns`: /run/netns/NAME; anything with a `/` is a path.
fn parse_netns(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("give a name from `ip netns list` or a path such as /proc/PID/ns/net".into());
    }
    Ok(if value.contains('/') {
        PathBuf::from(value)
    } else {
        PathBuf::from("/run/netns").join(value)
    })
}

const EXAMPLES: &str = "\
Examples:
  sudo droptrace                          the live view (a block a second when piped)
  sudo droptrace --port 1678              drops of packets to or from port 1678
  sudo droptrace --netns /run/netns/web --exclude-reason NOT_SPECIFIED
  sudo droptrace --pod shop/web-7d9f      drops of one Kubernetes pod on this node
  sudo droptrace --duration 10 --format json > drops.json
  sudo droptrace diagnose                 what is dropping, why, and the fix
  sudo droptrace record -o drops.dtr      save drops; later: droptrace report drops.dtr";

const RECORD_EXAMPLES: &str = "\
Examples:
  sudo droptrace record -o drops.dtr --duration 60
  sudo droptrace record -o drops.dtr --port 1678 --snaplen 256 --count 1000
  droptrace report drops.dtr                   the closing table, on any machine
  droptrace report drops.dtr --format json     the live --format json summary
  droptrace replay drops.dtr --speed 10        the live view, ten times as fast
  droptrace export drops.dtr --pcapng drops.pcapng   then: tshark -r drops.pcapng
  droptrace export drops.dtr --jsonl -          one JSON object per drop";

const SERVE_EXAMPLES: &str = "\
Examples:
  sudo droptrace serve                          http://127.0.0.1:9877/metrics
  sudo droptrace serve --listen 0.0.0.0:9877    reachable from Prometheus on another host
  sudo droptrace serve --labels +dport          one series per destination port too
  sudo droptrace serve --labels -interface --max-series 1000";

const DIAGNOSE_EXAMPLES: &str = "\
Examples:
  sudo droptrace diagnose                      watch 10 s, then report the causes
  sudo droptrace diagnose --port 1678 --duration 30
  sudo droptrace diagnose --netns /run/netns/web --format json";

fn parse_duration(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(secs.is_finite() && (0.001..=31_536_000.0).contains(&secs)) {
        return Err(format!(
            "`{text}`: give a number of seconds from 0.001 up to a year"
        ));
    }
    Ok(secs)
}

/// A protocol `--proto` knows, checked before anything else runs (a usage error).
fn parse_proto(text: &str) -> Result<String, String> {
    match crate::pipeline::event::ip_proto_by_name(text) {
        Some(_) => Ok(text.to_owned()),
        None => Err(crate::probe::error::unknown_protocol(text)),
    }
}

fn parse_pod(text: &str) -> Result<String, String> {
    crate::containers::parse_pod_arg(text).map(|_| text.to_owned())
}

fn parse_speed(text: &str) -> Result<Speed, String> {
    if text == "max" {
        return Ok(Speed::Max);
    }
    match text.parse::<f64>() {
        Ok(f) if f.is_finite() && (0.01..=1_000_000.0).contains(&f) => Ok(Speed::Factor(f)),
        _ => Err(format!(
            "`{text}`: give a factor from 0.01 to 1000000, or `max`"
        )),
    }
}

fn parse_ring_size(text: &str) -> Result<u32, String> {
    let size: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of bytes"))?;
    if size < 4096 || !size.is_power_of_two() || size > 1 << 30 {
        return Err(format!(
            "`{text}`: the ring buffer size must be a power of two from 4096 to 1073741824"
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_filters_and_rejects_bad_values() {
        let cli = Cli::try_parse_from([
            "droptrace",
            "--port",
            "1678",
            "--reason",
            "NETFILTER_DROP",
            "--reason",
            "NO_SOCKET",
            "--format",
            "json",
            "--addr",
            "fd00::1",
        ])
        .unwrap();
        assert_eq!(cli.live.filters.port, Some(1678));
        assert_eq!(cli.live.filters.reasons, ["NETFILTER_DROP", "NO_SOCKET"]);
        assert_eq!(cli.format, Some(LiveFormat::Json));
        for bad in [
            &["droptrace", "--port", "70000"][..],
            &["droptrace", "--duration", "-1"],
            &["droptrace", "--duration", "nan"],
            &["droptrace", "--interval", "1e-10"],
            &["droptrace", "--ring-buffer-size", "5000"],
            &["droptrace", "--addr", "10.0.0.300"],
            &["droptrace", "--format", "xml"],
            // The kernel program compares one port: a second is refused, not dropped.
            &["droptrace", "--port", "1", "--port", "2"],
            &["droptrace", "--port", "1", "diagnose"],
            &["droptrace", "diagnose", "--interval", "1"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_misspelt_protocol_is_a_usage_error_with_the_nearest_name() {
        let err = Cli::try_parse_from(["droptrace", "--proto", "tcpp"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("unknown protocol `tcpp` (did you mean tcp?)"),
            "{text}"
        );
        let ok = Cli::try_parse_from(["droptrace", "--proto", "UDP"]).unwrap();
        assert_eq!(ok.live.filters.proto.as_deref(), Some("UDP"));
        let number = Cli::try_parse_from(["droptrace", "--proto", "47"]).unwrap();
        assert_eq!(number.live.filters.proto.as_deref(), Some("47"));
    }

    #[test]
    fn diagnose_takes_the_live_filters() {
        let cli = Cli::try_parse_from([
            "droptrace",
            "diagnose",
            "--port",
            "1678",
            "--netns",
            "/run/netns/x",
            "--format",
            "json",
        ])
        .unwrap();
        let Some(Command::Diagnose(d)) = cli.command else {
            panic!("not diagnose")
        };
        assert_eq!(d.live.filters.port, Some(1678));
        assert_eq!(d.duration, 10.0);
        assert_eq!(d.format, Format::Json);
    }

    #[test]
    fn a_namespace_by_its_name_is_its_path_in_run_netns() {
        for (given, path) in [
            ("ux-srv", "/run/netns/ux-srv"),
            ("/run/netns/ux-srv", "/run/netns/ux-srv"),
            ("/proc/812/ns/net", "/proc/812/ns/net"),
            ("./ns/x", "./ns/x"),
        ] {
            let cli = Cli::try_parse_from(["droptrace", "--netns", given]).unwrap();
            assert_eq!(
                cli.live.filters.netns.as_deref(),
                Some(std::path::Path::new(path)),
                "{given}"
            );
        }
    }
}
