//! The JSON summary printed when a run stops: a stable schema that scripts rely on.
use std::io::Write;

use serde::Serialize;

use crate::{
    pipeline::Error,
    pipeline::{
        aggregate::Aggregator,
        interfaces::{InterfaceRow, Watched},
        names::{Container, Names, Pod},
        sink::{Moment, Sink},
    },
};

/// Writes the summary, one line of JSON, when the run ends; with the source lines of the
/// drop sites the names carry (a live run with debug info).
pub struct SummarySink<W: Write> {
    out: W,
}

impl<W: Write> SummarySink<W> {
    pub fn new(out: W) -> SummarySink<W> {
        SummarySink { out }
    }
}

impl<W: Write> Sink for SummarySink<W> {
    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        let summary = Summary::new(at.agg, at.names);
        // A closed stdout at the end is not worth an error.
        let _ = super::text::write_out(&mut self.out, &summary.to_line()?);
        Ok(())
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Summary {
    /// Every drop that matched the filters (exact, kernel-counted).
    pub total: u64,
    /// How drops were counted: `"kernel"` (by group in the kernel, with samples sent to
    /// user space: the default) or `"events"` (every drop sent as an event: `--stream`).
    pub counting: &'static str,
    /// Events (every drop, or the samples) that did not fit in the ring buffer; their
    /// drops are still counted in `total` and in their group.
    pub lost_events: u64,
    /// Counting in the kernel: drops not sampled because a CPU had spent its sample budget
    /// of the moment; counted all the same.
    pub samples_over_budget: u64,
    /// Drops the kernel did not run droptrace's program for (BPF recursion protection):
    /// not in `total`.
    pub missed: u64,
    /// Drops in `total` that could not be attributed to a group: the kernel's group map
    /// was full (`--max-groups`), or, streaming, the lost-group map was.
    pub unattributed: u64,
    /// Drops of groups beyond the 65536 kept apart (e.g. a port scan), counted together.
    pub other_groups: u64,
    pub groups: Vec<GroupSummary>,
    /// The interfaces' own drop counters (rtnetlink stats64) that grew while droptrace
    /// watched, each with its layer (`nic`, `driver`, `stack`) and whether its drops may
    /// also be in `groups` (`in_kfree_skb`); empty when they were not read (a recording).
    pub interfaces: Vec<InterfaceRow>,
    /// What was watched: the interfaces read and the XDP programs attached to them.
    pub watched: Watched,
    /// TCP retransmits and resets by connection group; absent when they were not
    /// watched (a recording, a kernel without BTF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<super::tcp::TcpSection>,
    /// The XDP programs found on the host, each traced (its XDP_DROP and XDP_ABORTED
    /// verdicts are groups in `groups`) or said why not; absent when XDP verdicts were
    /// not counted (`--no-xdp`, a header filter, a recording, a kernel without BTF).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_programs: Option<Vec<XdpProgramSummary>>,
    /// The XDP exceptions (`xdp:xdp_exception`, `xdp:xdp_redirect_err`,
    /// `xdp:xdp_redirect_map_err`) by program, interface and namespace, each with its exact
    /// count and where else its frames are counted (`also_counted_as`: `xdp_verdict`,
    /// `kfree_skb`, `driver_counter`; then not added to `total`); those counted nowhere
    /// else (`null`) are in `total` and in `groups` too. Absent when there were none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub xdp_exceptions: Vec<XdpExceptionSummary>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct XdpExceptionSummary {
    pub program_id: u32,
    /// `xdp NAME (id N)`.
    pub location: String,
    pub reason: String,
    pub count: u64,
    pub netns: u32,
    pub namespace: Option<String>,
    pub ifindex: u32,
    pub interface: Option<String>,
    pub also_counted_as: Option<&'static str>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct XdpProgramSummary {
    pub id: u32,
    pub name: String,
    pub traced: bool,
    /// Why it is not traced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untraced: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct GroupSummary {
    pub function: Option<String>,
    pub offset: Option<u64>,
    pub module: Option<String>,
    /// `function+0xoff` (or the address when symbols are hidden).
    pub location: String,
    pub address: String,
    pub reason: Option<String>,
    pub reason_code: u32,
    pub family: Option<&'static str>,
    pub protocol: Option<String>,
    pub dport: Option<u16>,
    pub count: u64,
    /// Of `count`, the drops whose event was lost.
    pub lost: u64,
    /// Inode of the network namespace the drops were in (0 when unknown: no packet
    /// details); each namespace's drops are a group of their own.
    pub netns: u32,
    /// Its name (`ux-srv` under /run/netns, `host` for droptrace's own, `nginx:812` by a
    /// process in it); `null` when it has none.
    pub namespace: Option<String>,
    /// Index of the interface the drops were on (0 when none); each interface's drops are
    /// a group of their own.
    pub ifindex: u32,
    /// Its name; `null` when it has none.
    pub interface: Option<String>,
    /// The container whose network namespace the drops were in; `null` when none.
    pub container: Option<Container>,
    /// Its Kubernetes pod; `null` when none.
    pub pod: Option<Pod>,
    /// `file:line` of the drop site in the kernel's source (from a vmlinux with debug
    /// info: `--vmlinux` or the usual /usr/lib/debug places; a module's from its .ko
    /// beside it); `null` without debug info.
    pub source: Option<String>,
}

impl Summary {
    /// The summary as one line of JSON.
    pub fn to_line(&self) -> Result<String, Error> {
        let mut s = serde_json::to_string(self)
            .map_err(|e| Error::Io("writing the summary".into(), std::io::Error::other(e)))?;
        s.push('\n');
        Ok(s)
    }

    pub fn new(agg: &Aggregator, names: &Names) -> Summary {
        let counters = agg.counters();
        let groups = agg
            .ranked_by(|g| *g)
            .into_iter()
            .map(|(g, s)| {
                let loc = names.location(g.location);
                let workload = names.workload(g.netns);
                GroupSummary {
                    function: loc.function,
                    offset: loc.offset,
                    module: loc.module,
                    location: loc.display,
                    address: format!("{:#x}", g.location),
                    reason: names.reason(g.reason),
                    reason_code: g.reason,
                    family: g.family(),
                    protocol: g.protocol(),
                    dport: g.dport,
                    count: s.count(),
                    lost: s.lost,
                    netns: g.netns.inode,
                    namespace: names.namespace_name(g.netns).map(str::to_owned),
                    ifindex: g.ifindex,
                    interface: names.interface_name(g.netns, g.ifindex).map(str::to_owned),
                    container: workload.map(|w| w.container.clone()),
                    pod: workload.and_then(|w| w.pod.clone()),
                    source: names.source_line(g.location).map(str::to_owned),
                }
            })
            .collect();
        Summary {
            total: counters.matched,
            counting: if counters.groups_in_kernel {
                "kernel"
            } else {
                "events"
            },
            lost_events: counters.lost,
            samples_over_budget: counters.over_budget,
            missed: counters.missed,
            unattributed: counters.lost_ungrouped,
            other_groups: agg.overflow(),
            groups,
            interfaces: agg.interfaces().rows(),
            watched: agg.watched(),
            tcp: super::tcp::TcpSection::new(agg.tcp(), names),
            xdp_programs: agg.xdp_programs().map(|programs| {
                programs
                    .iter()
                    .map(|p| XdpProgramSummary {
                        id: p.id,
                        name: p.name.clone(),
                        traced: p.untraced.is_none(),
                        untraced: p.untraced.clone(),
                    })
                    .collect()
            }),
            xdp_exceptions: agg
                .xdp_exceptions()
                .iter()
                .map(|r| {
                    let g = &r.group;
                    XdpExceptionSummary {
                        program_id: crate::pipeline::xdp::program_of(g.location).unwrap_or(0),
                        location: names.location_display(g.location),
                        reason: names.reason(g.reason).unwrap_or_default(),
                        count: r.count,
                        netns: g.netns.inode,
                        namespace: names.namespace_name(g.netns).map(str::to_owned),
                        ifindex: g.ifindex,
                        interface: names.interface_name(g.netns, g.ifindex).map(str::to_owned),
                        also_counted_as: r.also_counted_as.map(|a| a.label()),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        kernel::{kallsyms::KernelSymbols, reasons::DropReasonTable, tracefs},
        pipeline::{
            aggregate::KernelCounters,
            event::{Drop, Netns, Packet},
            resolve::SymbolNames,
        },
        sinks::text,
    };

    /// Names from the captured kallsyms and tracefs format, for the locations used here.
    fn resolver() -> Names {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/");
        let syms = std::fs::read(format!("{dir}kallsyms.6.18")).unwrap();
        let format = std::fs::read_to_string(format!("{dir}kfree_skb.format.6.18")).unwrap();
        let mut names = Names::with_reasons(DropReasonTable::from_tracefs_format(
            &tracefs::parse(&format).unwrap(),
        ));
        let symbols = SymbolNames::new(Some(KernelSymbols::parse(&syms[..]).unwrap()));
        for location in [NFT, TCP] {
            symbols.name(&mut names, location);
        }
        names
    }

    fn syn(location: u64, reason: u32, dport: u16) -> Drop {
        crate::pipeline::fixtures::tcp4(location, reason, (40000, dport), 4026531840, 1)
    }

    // Addresses from the captured kallsyms: nft_do_chain at 0xffffffff81f63250 and
    // tcp_v4_rcv at 0xffffffff820339c0.
    const NFT: u64 = 0xffff_ffff_81f6_3250 + 0x1c1;
    const TCP: u64 = 0xffff_ffff_8203_39c0 + 0x99;

    fn aggregate() -> Aggregator {
        let mut agg = Aggregator::new();
        for _ in 0..3 {
            agg.add(&syn(NFT, 12, 1678));
        }
        agg.add(&syn(TCP, 3, 9));
        let mut arp = syn(TCP, 2, 0);
        arp.packet = Packet {
            ethertype: 0x0806,
            ..Packet::default()
        };
        agg.add(&arp);
        agg.set_kernel(
            KernelCounters {
                seen: 9,
                matched: 7,
                lost: 2,
                lost_ungrouped: 0,
                missed: 1,
                ..Default::default()
            },
            [(syn(NFT, 12, 1678).group(), 2)],
        );
        agg
    }

    #[test]
    fn json_summary_has_the_documented_schema() {
        let json = serde_json::to_value(Summary::new(&aggregate(), &resolver())).unwrap();
        assert_eq!(json["total"], 7);
        assert_eq!(json["lost_events"], 2);
        assert_eq!(json["missed"], 1);
        // No interfaces read (a recording, or a test): said so, not left out.
        assert_eq!(json["interfaces"], serde_json::json!([]));
        assert_eq!(
            json["watched"],
            serde_json::json!({"interfaces_read": false, "namespaces": 0, "interfaces": 0,
                "xdp_programs": 0})
        );
        let groups = json["groups"].as_array().unwrap();
        assert_eq!(groups.len(), 3);
        let top = &groups[0];
        assert_eq!(top["function"], "nft_do_chain");
        assert_eq!(top["offset"], 0x1c1);
        assert_eq!(top["location"], "nft_do_chain+0x1c1");
        assert_eq!(
            top["source"],
            serde_json::Value::Null,
            "no debug info given"
        );
        assert_eq!(top["reason"], "NETFILTER_DROP");
        assert_eq!(top["protocol"], "tcp");
        assert_eq!(top["dport"], 1678);
        assert_eq!(top["count"], 5);
        assert_eq!(top["lost"], 2);
        let arp = groups
            .iter()
            .find(|g| g["reason"] == "NOT_SPECIFIED")
            .unwrap();
        assert_eq!(arp["protocol"], "arp");
        assert!(arp["dport"].is_null() && arp["family"].is_null());
    }

    #[test]
    fn a_containers_drops_are_a_group_of_their_own_with_its_pod() {
        let mut names = resolver();
        let mut agg = aggregate();
        let pod_ns = crate::pipeline::event::Netns::new(4_026_532_182, 4097);
        for _ in 0..2 {
            let mut d = syn(NFT, 12, 1678);
            d.netns = pod_ns;
            agg.add(&d);
        }
        names.workloads.insert(
            pod_ns,
            crate::pipeline::fixtures::workload("9b2e7d4a1c6f", None),
        );
        let json = serde_json::to_value(Summary::new(&agg, &names)).unwrap();
        let nft: Vec<&serde_json::Value> = json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["dport"] == 1678)
            .collect();
        assert_eq!(nft.len(), 2, "{json}");
        assert_eq!(
            (nft[0]["count"].as_u64(), nft[0]["pod"].is_null()),
            (Some(5), true)
        );
        assert_eq!(nft[1]["count"], 2);
        assert_eq!(
            nft[1]["pod"],
            serde_json::json!({"name": "web-7d9f", "namespace": "shop", "uid": null})
        );
        assert_eq!(
            nft[1]["container"],
            serde_json::json!({"id": "9b2e7d4a1c6f", "name": "web", "runtime": "containerd"})
        );
        let table = text::final_table(&agg, &names);
        assert!(
            table.contains(
                "       2 drops at nft_do_chain+0x1c1 (NETFILTER_DROP) tcp dport 1678 on if2 in pod shop/web-7d9f container web\n"
            ),
            "{table}"
        );
        assert!(
            table
                .contains("       5 drops at nft_do_chain+0x1c1 (NETFILTER_DROP) tcp dport 1678 on if2 in netns 4026531840\n"),
            "{table}"
        );
    }

    /// 2026-11-22 15:23:21 UTC.
    const WALL: u64 = 1_795_361_001 * 1_000_000_000;

    #[test]
    fn each_namespace_and_interface_is_a_group_of_its_own_with_their_names() {
        let mut names = resolver();
        let mut agg = Aggregator::new();
        let (a, b) = (Netns::inode(4_026_532_301), Netns::inode(4_026_532_302));
        for (netns, n) in [(a, 3), (b, 5)] {
            for _ in 0..n {
                let mut d = syn(NFT, 12, 1678);
                d.netns = netns;
                agg.add(&d);
            }
        }
        names.namespaces.insert(a, "ux-a".into());
        names.namespaces.insert(b, "ux-b".into());
        names.interfaces.insert((a, 2), "veth-a".into());
        let json = serde_json::to_value(Summary::new(&agg, &names)).unwrap();
        let groups = json["groups"].as_array().unwrap();
        let places: Vec<_> = groups
            .iter()
            .map(|g| {
                (
                    g["count"].as_u64().unwrap(),
                    g["netns"].as_u64().unwrap(),
                    g["namespace"].clone(),
                    g["ifindex"].as_u64().unwrap(),
                    g["interface"].clone(),
                )
            })
            .collect();
        assert_eq!(
            places,
            [
                (
                    5,
                    u64::from(b.inode),
                    "ux-b".into(),
                    2,
                    serde_json::Value::Null
                ),
                (3, u64::from(a.inode), "ux-a".into(), 2, "veth-a".into()),
            ],
            "{json:#}"
        );
        let table = text::final_table(&agg, &names);
        assert!(
            table.ends_with(concat!(
                "       5 drops at nft_do_chain+0x1c1 (NETFILTER_DROP) tcp dport 1678 on if2 in netns ux-b\n",
                "       3 drops at nft_do_chain+0x1c1 (NETFILTER_DROP) tcp dport 1678 on veth-a in netns ux-a\n"
            )),
            "{table}"
        );
        let block = text::TextPrinter::default().block(&agg, &names, 1.0, WALL);
        assert!(
            block.contains("tcp dport 1678 on veth-a in netns ux-a\n"),
            "{block}"
        );
        assert!(
            block.contains("tcp dport 1678 on if2 in netns ux-b\n"),
            "{block}"
        );
    }

    /// The lines of a block and its header's count.
    fn block_sums(block: &str) -> (u64, u64) {
        let mut lines = block.lines();
        let header = lines.next().unwrap();
        let new: u64 = header
            .split("] ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{header}"));
        let sum = lines
            .map(|l| l.split_whitespace().next().unwrap().parse::<u64>().unwrap())
            .sum();
        (new, sum)
    }

    #[test]
    fn a_blocks_lines_add_up_to_its_header_while_the_kernel_places_its_drops() {
        let names = resolver();
        let mut agg = Aggregator::new();
        let g = syn(NFT, 12, 1678).group();
        let kernel = |matched| KernelCounters {
            matched,
            groups_in_kernel: true,
            read_ns: 10,
            ..KernelCounters::default()
        };
        let mut printer = text::TextPrinter::default();
        // 30 drops counted; two samples in; the group's count not trusted yet (a slot
        // read for the first time).
        agg.add(&syn(NFT, 12, 1678));
        agg.add(&syn(NFT, 12, 1678));
        agg.set_kernel(kernel(30), []);
        let first = printer.block(&agg, &names, 1.0, WALL);
        assert_eq!(block_sums(&first), (2, 2), "{first}");
        assert!(first.contains(" 2 in all"), "{first}");
        agg.set_kernel(kernel(60), [(g, 60)]);
        let second = printer.block(&agg, &names, 2.0, WALL);
        assert_eq!(block_sums(&second), (58, 58), "{second}");
        assert!(second.contains(" 60 in all"), "{second}");
    }

    #[test]
    fn interfaces_counters_are_text_lines_apart_and_json_rows_with_their_layer() {
        use crate::pipeline::interfaces::{stats64_counter, HostReading, InterfaceReading};
        let names = resolver();
        let mut agg = aggregate();
        let reading = |tx: u64, missed: u64| HostReading {
            read_ns: 1,
            namespaces: 1,
            qstats_interfaces: None,
            interfaces: vec![InterfaceReading {
                netns: 7.into(),
                netns_label: "web".into(),
                ifindex: 3,
                name: "veth-a".into(),
                counters: vec![
                    (stats64_counter("tx_dropped").unwrap(), tx),
                    (stats64_counter("rx_missed_errors").unwrap(), missed),
                ],
                xdp_programs: Vec::new(),
            }],
        };
        agg.set_interfaces(&reading(90, 10));
        let mut printer = text::TextPrinter::default();
        let first = printer.block(&agg, &names, 1.0, WALL);
        assert!(!first.contains("counted by interfaces"), "{first}");
        agg.set_interfaces(&reading(97, 12));
        let second = printer.block(&agg, &names, 2.0, WALL);
        assert!(
            second.contains("9 new drops counted by interfaces;")
                && second.contains(
                    "       7 tx_dropped on veth-a in netns web (driver; may also be a \
                     kfree_skb drop above)\n"
                )
                && second.contains(
                    "       2 rx_missed_errors on veth-a in netns web (nic; never reached \
                     kfree_skb)\n"
                ),
            "{second}"
        );
        assert_eq!(printer.block(&agg, &names, 3.0, WALL), "", "nothing new");
        let table = text::final_table(&agg, &names);
        assert!(
            table.contains(
                "interfaces' own counters grew by 9 while watching, 2 of them drops \
                 kfree_skb never saw"
            ),
            "{table}"
        );
        let json = serde_json::to_value(Summary::new(&agg, &names)).unwrap();
        assert_eq!(json["interfaces"][0]["counter"], "tx_dropped");
        assert_eq!(json["interfaces"][0]["layer"], "driver");
        assert_eq!(json["interfaces"][1]["layer"], "nic");
        assert_eq!(json["interfaces"][1]["drops"], 2);
        assert_eq!(json["watched"]["interfaces"], 1);
    }

    #[test]
    fn text_blocks_show_only_what_is_new() {
        let resolver = resolver();
        let mut agg = aggregate();
        let mut printer = text::TextPrinter::default();
        let first = printer.block(&agg, &resolver, 1.0, WALL);
        assert!(
            first.starts_with(
                "[    1.0s] 7 new drops, 7 in all, 2 lost events (+2); 2026-11-22 15:23:21 UTC\n"
            ),
            "{first}"
        );
        assert!(
            first.contains("       5 drops at nft_do_chain+0x1c1 (NETFILTER_DROP) tcp dport 1678"),
            "{first}"
        );
        assert!(
            first.contains("       1 drop  at tcp_v4_rcv+0x99 (NO_SOCKET) tcp dport 9"),
            "{first}"
        );
        assert_eq!(printer.block(&agg, &resolver, 2.0, WALL), "");
        agg.add(&syn(TCP, 3, 9));
        agg.set_kernel(
            KernelCounters {
                seen: 10,
                matched: 8,
                lost: 2,
                lost_ungrouped: 0,
                missed: 1,
                ..Default::default()
            },
            [],
        );
        let third = printer.block(&agg, &resolver, 3.0, WALL);
        assert_eq!(third.lines().count(), 2, "{third}");
        assert!(
            third.contains("1 new drop, 8 in all, 2 lost events; 2026-11-22 15:23:21 UTC\n"),
            "{third}"
        );
    }

    /// `source`: the drop site's line as the names carry it (`probe::lines` puts it
    /// there), null for a site without one.
    #[test]
    fn groups_carry_the_source_line_of_their_drop_site() {
        let mut names = resolver();
        names.source_lines.insert(
            NFT,
            Some("/src/tiny-kernel.c:13 (drop_it, inlined into nft_do_chain at /src/tiny-kernel.c:20)".into()),
        );
        names.source_lines.insert(TCP, None);
        let json = serde_json::to_value(Summary::new(&aggregate(), &names)).unwrap();
        let source = |address: u64| {
            json["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["address"] == format!("{address:#x}"))
                .map(|g| g["source"].clone())
        };
        assert_eq!(
            source(NFT),
            Some(serde_json::json!(
                "/src/tiny-kernel.c:13 (drop_it, inlined into nft_do_chain at /src/tiny-kernel.c:20)"
            )),
            "{json:#}"
        );
        assert_eq!(source(TCP), Some(serde_json::Value::Null));
    }
}
