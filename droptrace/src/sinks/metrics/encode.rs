//! `/metrics` in the two formats scrapers ask for: the Prometheus text format 0.0.4 (the
//! default, written here) and OpenMetrics 1.0 (through `prometheus-client`, the Prometheus
//! project's Rust client, which encodes only OpenMetrics). Both show the same figures.
use std::fmt::Write as _;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, NoLabelSet},
    metrics::MetricType,
    registry::Registry,
};

use super::series::Exposition;

pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One family: name without `_total`, help, type, and its samples (owned: encoded
/// without holding the exposition).
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    samples: Vec<(Vec<(&'static str, String)>, u64)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Info,
}

/// The families of an exposition, in the order they are written.
pub fn families(e: &Exposition) -> Vec<Family> {
    let label_names: Vec<&'static str> = e.labels().iter().map(|l| l.name()).collect();
    let mut drops: Vec<_> = e
        .drops()
        .map(|(values, v)| {
            (
                label_names
                    .iter()
                    .copied()
                    .zip(values.iter().cloned())
                    .collect(),
                v,
            )
        })
        .collect();
    if e.series_dropped() > 0 {
        let other = label_names
            .iter()
            .map(|n| (*n, "other".to_owned()))
            .collect();
        drops.push((other, e.series_dropped()));
    }
    let one = |v| vec![(Vec::new(), v)];
    let mut stack: Vec<_> = e
        .stack()
        .map(|(netns, iface, counter, v)| {
            let mut labels = vec![("netns", netns)];
            if let Some(i) = iface {
                labels.push(("interface", i.to_owned()));
            }
            labels.push(("counter", counter.to_owned()));
            (labels, v)
        })
        .collect();
    if e.stack_other() > 0 {
        let other = vec![
            ("netns", "other".to_owned()),
            ("counter", "other".to_owned()),
        ];
        stack.push((other, e.stack_other()));
    }
    let mut interfaces: Vec<_> = e
        .interfaces()
        .map(|(netns, iface, counter, layer, v)| {
            let labels = vec![
                ("netns", netns),
                ("interface", iface.to_owned()),
                ("counter", counter.to_owned()),
                ("layer", layer.label().to_owned()),
            ];
            (labels, v)
        })
        .collect();
    if e.interfaces_other() > 0 {
        let other = ["netns", "interface", "counter", "layer"].map(|k| (k, "other".to_owned()));
        interfaces.push((other.to_vec(), e.interfaces_other()));
    }
    let mut families = vec![
        Family {
            name: "droptrace_drops",
            help: "Packets the kernel dropped (skb:kfree_skb), counted exactly in the kernel.",
            kind: Kind::Counter,
            samples: drops,
        },
        Family {
            name: "droptrace_lost_events",
            help: "Drops whose event found no room in the ring buffer (still counted in droptrace_drops_total).",
            kind: Kind::Counter,
            samples: one(e.lost()),
        },
        Family {
            name: "droptrace_missed",
            help: "Times the kernel did not run droptrace's program because it was already running on that CPU.",
            kind: Kind::Counter,
            samples: one(e.missed()),
        },
        Family {
            name: "droptrace_series_dropped",
            help: "Drops counted in the other series because --max-series was reached.",
            kind: Kind::Counter,
            samples: one(e.series_dropped()),
        },
        Family {
            name: "droptrace_stack_drops",
            help: "The kernel's own counters of drops (listen queues, backlog, socket buffers, devices), per network namespace; some of these drops never reach skb:kfree_skb, others are also in droptrace_drops_total.",
            kind: Kind::Counter,
            samples: stack,
        },
        Family {
            name: "droptrace_interface_drops",
            help: "Growth while droptrace watches of the interfaces' own drop counters (rtnetlink stats64), by layer: nic (never in droptrace_drops_total), driver and stack (rx_dropped, tx_dropped, rx_nohandler: may also be in droptrace_drops_total).",
            kind: Kind::Counter,
            samples: interfaces,
        },
        Family {
            name: "droptrace_build",
            help: "droptrace's version, the kernel it watches and how it is attached.",
            kind: Kind::Info,
            samples: vec![(
                vec![
                    ("version", e.build.version.clone()),
                    ("kernel", e.build.kernel.clone()),
                    ("attach", e.build.attach.clone()),
                ],
                1,
            )],
        },
    ];
    if let Some(retransmits) = e.tcp_retransmits() {
        families.push(Family {
            name: "droptrace_tcp_retransmits",
            help: "TCP segments retransmitted, by whether a drop of the same socket was seen on this host shortly before (drop_on_host) or none (beyond_host: the network or the peer).",
            kind: Kind::Counter,
            samples: retransmits
                .map(|(explained, v)| (vec![("explained", explained.to_owned())], v))
                .collect(),
        });
        families.push(Family {
            name: "droptrace_tcp_resets",
            help: "TCP resets sent (with the kernel's reason, unknown before Linux 6.10) and received.",
            kind: Kind::Counter,
            samples: e
                .tcp_resets()
                .map(|(direction, reason, v)| {
                    (
                        vec![
                            ("direction", direction.to_owned()),
                            ("reason", reason.to_owned()),
                        ],
                        v,
                    )
                })
                .collect(),
        });
    }
    families
}

/// The Prometheus text format 0.0.4.
pub fn text(e: &Exposition) -> String {
    text_of(&families(e))
}

/// The Prometheus text format 0.0.4 of families.
pub fn text_of(families: &[Family]) -> String {
    let series: usize = families.iter().map(|f| f.samples.len()).sum();
    let mut out = String::with_capacity(256 + series * 128);
    for f in families {
        let (name, kind) = match f.kind {
            Kind::Counter => (format!("{}_total", f.name), "counter"),
            Kind::Info => (format!("{}_info", f.name), "gauge"),
        };
        let _ = writeln!(out, "# HELP {name} {}", escape_help(f.help));
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in &f.samples {
            out.push_str(&name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

/// OpenMetrics 1.0, ended by `# EOF`.
pub fn openmetrics(e: &Exposition) -> String {
    openmetrics_of(families(e))
}

/// OpenMetrics 1.0 of families.
pub fn openmetrics_of(families: Vec<Family>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot(families)));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The families, owned, for the registry (collectors must be `'static`).
struct Snapshot(Vec<Family>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Snapshot").field(&self.0.len()).finish()
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Info => MetricType::Info,
            };
            let mut family = encoder.encode_descriptor(f.name, f.help, None, kind)?;
            for (labels, value) in &f.samples {
                match f.kind {
                    Kind::Counter => family
                        .encode_family(labels)?
                        .encode_counter::<NoLabelSet, _, u64>(value, None)?,
                    // An info's labels are its value.
                    Kind::Info => family.encode_info(labels)?,
                }
            }
        }
        Ok(())
    }
}

fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Whether the scraper's Accept header asks for OpenMetrics (as Prometheus itself does).
pub fn wants_openmetrics(accept: &str) -> bool {
    accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .any(|media| media.eq_ignore_ascii_case("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        kernel::reasons::DropReasonTable,
        pipeline::host::{HostSample, StackCounter, Topology},
        pipeline::{
            aggregate::Aggregator,
            fixtures,
            interfaces::{stats64_counter, HostReading, InterfaceReading},
            names::Names,
        },
        sinks::metrics::series::{BuildInfo, DropLabel},
    };

    fn exposition() -> Exposition {
        let mut e = Exposition::new(
            DropLabel::DEFAULT.to_vec(),
            100,
            BuildInfo {
                version: "0.1.0".into(),
                kernel: "6.18.0".into(),
                attach: "tp_btf".into(),
            },
        );
        let mut topology = Topology {
            complete: true,
            ..Topology::default()
        };
        topology.namespaces.insert(7.into(), "we\"b\\1\nx".into());
        topology.interfaces.insert((7.into(), 2), "veth-b".into());
        topology
            .workloads
            .insert(7.into(), fixtures::workload("9b2e", None));
        e.sample(
            HostSample {
                topology,
                counters: vec![
                    StackCounter {
                        netns: 7.into(),
                        interface: None,
                        counter: "TcpExt:ListenOverflows",
                        value: 3,
                    },
                    StackCounter {
                        netns: 7.into(),
                        interface: Some("veth-b".into()),
                        counter: "dev:rx_dropped",
                        value: 9,
                    },
                ],
            },
            0,
        );
        let mut names = Names::with_reasons(Some(DropReasonTable::from_entries([(
            12,
            "NETFILTER_DROP",
        )])));
        names
            .locations
            .insert(0x100, fixtures::location("nft_do_chain", 0x3e8));
        let mut agg = Aggregator::new();
        for i in 0..5 {
            agg.add(&fixtures::tcp4(0x100, 12, (40_000, 1678), 7, i));
        }
        // veth-b's tx_dropped read at 100, then at 104: 4 drops while watching.
        let reading = |value| HostReading {
            read_ns: 1,
            namespaces: 1,
            qstats_interfaces: None,
            interfaces: vec![InterfaceReading {
                netns: 7.into(),
                netns_label: "web".into(),
                ifindex: 2,
                name: "veth-b".into(),
                counters: vec![(stats64_counter("tx_dropped").unwrap(), value)],
                xdp_programs: Vec::new(),
            }],
        };
        agg.set_interfaces(&reading(100));
        agg.set_interfaces(&reading(104));
        e.fold(&agg, &names);
        e
    }

    #[test]
    fn text_format_has_help_types_and_escaped_labels() {
        let expected = r#"# HELP droptrace_drops_total Packets the kernel dropped (skb:kfree_skb), counted exactly in the kernel.
# TYPE droptrace_drops_total counter
droptrace_drops_total{reason="NETFILTER_DROP",function="nft_do_chain",protocol="tcp",interface="veth-b",netns="we\"b\\1\nx",pod="web-7d9f",pod_namespace="shop",container="web"} 5
# HELP droptrace_lost_events_total Drops whose event found no room in the ring buffer (still counted in droptrace_drops_total).
# TYPE droptrace_lost_events_total counter
droptrace_lost_events_total 0
# HELP droptrace_missed_total Times the kernel did not run droptrace's program because it was already running on that CPU.
# TYPE droptrace_missed_total counter
droptrace_missed_total 0
# HELP droptrace_series_dropped_total Drops counted in the other series because --max-series was reached.
# TYPE droptrace_series_dropped_total counter
droptrace_series_dropped_total 0
# HELP droptrace_stack_drops_total The kernel's own counters of drops (listen queues, backlog, socket buffers, devices), per network namespace; some of these drops never reach skb:kfree_skb, others are also in droptrace_drops_total.
# TYPE droptrace_stack_drops_total counter
droptrace_stack_drops_total{netns="we\"b\\1\nx",counter="TcpExt:ListenOverflows"} 3
droptrace_stack_drops_total{netns="we\"b\\1\nx",interface="veth-b",counter="dev:rx_dropped"} 9
# HELP droptrace_interface_drops_total Growth while droptrace watches of the interfaces' own drop counters (rtnetlink stats64), by layer: nic (never in droptrace_drops_total), driver and stack (rx_dropped, tx_dropped, rx_nohandler: may also be in droptrace_drops_total).
# TYPE droptrace_interface_drops_total counter
droptrace_interface_drops_total{netns="we\"b\\1\nx",interface="veth-b",counter="tx_dropped",layer="driver"} 4
# HELP droptrace_build_info droptrace's version, the kernel it watches and how it is attached.
# TYPE droptrace_build_info gauge
droptrace_build_info{version="0.1.0",kernel="6.18.0",attach="tp_btf"} 1
"#;
        assert_eq!(text(&exposition()), expected);
    }

    #[test]
    fn openmetrics_has_the_same_figures() {
        let om = openmetrics(&exposition());
        assert!(om.contains("# TYPE droptrace_drops counter\n"), "{om}");
        assert!(
            om.contains(r#"droptrace_drops_total{reason="NETFILTER_DROP",function="nft_do_chain",protocol="tcp",interface="veth-b",netns="we\"b\\1\nx",pod="web-7d9f",pod_namespace="shop",container="web"} 5"#),
            "{om}"
        );
        assert!(om.contains("# TYPE droptrace_build info\n"), "{om}");
        assert!(
            om.contains(
                r#"droptrace_build_info{version="0.1.0",kernel="6.18.0",attach="tp_btf"} 1"#
            ),
            "{om}"
        );
        assert!(om.contains("droptrace_lost_events_total 0\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn tcp_series_appear_once_the_tcp_programs_are_attached() {
        use crate::pipeline::tcp::{
            self,
            tests::{bytes_of, retransmit},
            TcpCounters,
        };
        let mut e = Exposition::new(vec![DropLabel::Dport], 10, BuildInfo::default());
        let mut agg = Aggregator::new();
        let mut names = Names::default();
        names.reset_reasons.insert(2, "NO_SOCKET".to_owned());
        e.fold(&agg, &names);
        assert!(!text(&e).contains("droptrace_tcp"), "{}", text(&e));
        for (at, drop_at) in [(5_000, 4_000), (6_000, 5_500), (9_000_000_000_000, 1)] {
            agg.add_tcp(&tcp::decode(&bytes_of(&retransmit(at, 1, drop_at))).unwrap());
        }
        let mut rst = retransmit(1, 2, 0);
        rst.kind = droptrace_common::TCP_RESET_SENT;
        rst.flags = droptrace_common::TCP_EVENT_HAS_REASON;
        rst.reason = 2;
        agg.add_tcp(&tcp::decode(&bytes_of(&rst)).unwrap());
        agg.set_tcp_counters(TcpCounters {
            retransmits: 4,
            resets_sent: 1,
            resets_received: 0,
            lost: 1,
            missed: 0,
        });
        e.fold(&agg, &names);
        let t = text(&e);
        for line in [
            "# TYPE droptrace_tcp_retransmits_total counter\n",
            "droptrace_tcp_retransmits_total{explained=\"drop_on_host\"} 2\n",
            "droptrace_tcp_retransmits_total{explained=\"beyond_host\"} 1\n",
            // The retransmit whose event was lost.
            "droptrace_tcp_retransmits_total{explained=\"unknown\"} 1\n",
            "droptrace_tcp_resets_total{direction=\"sent\",reason=\"NO_SOCKET\"} 1\n",
            "droptrace_tcp_resets_total{direction=\"received\",reason=\"none\"} 0\n",
        ] {
            assert!(t.contains(line), "{line} not in\n{t}");
        }
        let om = openmetrics(&e);
        assert!(
            om.contains("droptrace_tcp_retransmits_total{explained=\"drop_on_host\"} 2\n"),
            "{om}"
        );
    }

    #[test]
    fn the_other_series_appears_when_the_cap_is_reached() {
        let mut e = Exposition::new(vec![DropLabel::Dport], 1, BuildInfo::default());
        let names = Names::default();
        let mut agg = Aggregator::new();
        agg.add(&fixtures::tcp4(0x100, 12, (1, 80), 7, 0));
        agg.add(&fixtures::tcp4(0x100, 12, (1, 443), 7, 0));
        e.fold(&agg, &names);
        // A sample, begun after those drops, that does not know namespace 7: its groups
        // are shown by inode.
        let after = e.folds();
        e.sample(HostSample::default(), after);
        e.fold(&agg, &names);
        let t = text(&e);
        assert!(
            t.contains("droptrace_drops_total{dport=\"other\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("droptrace_series_dropped_total 1\n"), "{t}");
    }

    #[test]
    fn accept_headers_choose_the_format() {
        assert!(wants_openmetrics(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        ));
        assert!(!wants_openmetrics("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics(""));
        assert!(!wants_openmetrics("*/*"));
    }
}
