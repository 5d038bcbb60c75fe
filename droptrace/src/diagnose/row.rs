//! The diagnosis of one row of the live view (`d`): the engine on the row's drops of a
//! short window and the namespaces they were in, sampled before and after it. The same
//! engine and evidence as `droptrace diagnose`, scoped to one row.
use std::collections::BTreeMap;

use super::{
    engine::{self, DropGroup, Finding, NamespaceNames},
    raw::RawSnapshot,
    report::packet_line,
    state::{from_raw, NsState},
};
use crate::pipeline::{
    aggregate::GroupStats,
    event::{Drop, Group},
    names::Names,
};

/// A row's drops in the window and the state of their namespaces around it.
pub struct RowWindow<'a> {
    /// The row's drops in the window, by drop site ([`drop_groups`]).
    pub groups: &'a [DropGroup],
    /// Raw state of the sampled namespaces before and after the window, by inode.
    pub before: &'a BTreeMap<u32, RawSnapshot>,
    pub after: &'a BTreeMap<u32, RawSnapshot>,
    pub namespaces: &'a dyn NamespaceNames,
    /// droptrace's own namespace.
    pub host_netns: u32,
    pub secs: f64,
    /// Seconds from the start of the sample before to the end of the one after: what the
    /// growth of counters covers.
    pub samples_secs: f64,
    /// Lines of the kernel log saying the conntrack table was full, in the window.
    pub conntrack_full_log_lines: usize,
    /// Why the drops have no packet details, when they have none (no BTF).
    pub details_unknown: Option<String>,
    /// The drops are the row's figures from before the samples (it stopped dropping):
    /// `before` is empty, and the state sampled is the state now.
    pub earlier: bool,
}

/// Ranked findings about the row's drops (and the counters of its namespaces).
pub fn diagnose_row(w: &RowWindow<'_>) -> Vec<Finding> {
    let parse = |raw: &BTreeMap<u32, RawSnapshot>| -> BTreeMap<u32, NsState> {
        raw.iter().map(|(i, r)| (*i, from_raw(r))).collect()
    };
    let (before, after) = (parse(w.before), parse(w.after));
    // Drops whose events were all lost have no sample: they happened where the row's
    // drops mostly did.
    let default_netns = w
        .groups
        .first()
        .and_then(|g| g.places.first())
        .map_or(w.host_netns, |p| p.0);
    engine::diagnose(&engine::Window {
        groups: w.groups,
        before: &before,
        after: &after,
        names: w.namespaces,
        default_netns,
        host_netns: w.host_netns,
        secs: w.secs,
        samples_secs: w.samples_secs,
        conntrack_full_log_lines: w.conntrack_full_log_lines,
        details_unknown: w.details_unknown.clone(),
        earlier: w.earlier,
    })
}

/// A row's groups (finest: by namespace and interface too, with their figures in the
/// window) as the engine sees them: by drop site and namespace (each namespace has its
/// own rules and counters to explain its drops), their interfaces the places (most drops
/// first), with a recent packet from `samples` each.
pub fn drop_groups(
    groups: &[(Group, GroupStats)],
    samples: &[Drop],
    names: &Names,
) -> Vec<DropGroup> {
    let site_in_netns = |g: &Group| Group {
        netns: g.netns,
        ..g.site()
    };
    let mut sites: BTreeMap<Group, Vec<(Group, GroupStats)>> = BTreeMap::new();
    for (g, s) in groups.iter().filter(|(_, s)| s.count() > 0) {
        sites.entry(site_in_netns(g)).or_default().push((*g, *s));
    }
    // The latest sample of each site (samples come oldest first), found once: a port
    // scan has tens of thousands of sites.
    let mut latest: BTreeMap<Group, &Drop> = BTreeMap::new();
    for d in samples {
        latest.insert(site_in_netns(&d.group()), d);
    }
    let mut out: Vec<DropGroup> = sites
        .into_iter()
        .map(|(site, mut members)| {
            members.sort_by(|a, b| b.1.count().cmp(&a.1.count()).then(a.0.cmp(&b.0)));
            let loc = names.location(site.location);
            let latest = latest.get(&site).copied();
            DropGroup {
                function: loc.function,
                location: loc.display,
                reason: names.reason(site.reason),
                protocol: site.protocol(),
                family: site.family().map(str::to_owned),
                dport: site.dport,
                addrs: latest.and_then(|d| d.packet.addrs),
                sport: latest.and_then(|d| d.packet.ports).map(|(s, _)| s),
                count: members.iter().map(|(_, s)| s.count()).sum(),
                // The sampled state is keyed by inode (the host's namespaces now).
                places: members
                    .iter()
                    .map(|(g, _)| (g.netns.inode, g.ifindex))
                    .collect(),
                max_len: members.iter().map(|(_, s)| s.max_len).max().unwrap_or(0),
                example: latest.map(packet_line),
                tcp_segments: tcp_segments(members.iter().map(|(_, s)| s)),
            }
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.location.cmp(&b.location)));
    out
}

/// The TCP segments whose flags were read, by kind, of the stats of a site's groups.
fn tcp_segments<'a>(stats: impl Iterator<Item = &'a GroupStats>) -> Option<(u64, u64)> {
    let (syn, other) = stats.fold((0u64, 0u64), |(syn, other), s| {
        (syn + s.tcp_syn, other + s.tcp_other)
    });
    (syn + other > 0).then_some((syn, other))
}

/// Why no drop of the window has packet details, when none has: without the kernel's BTF
/// the probe reads only the tracepoint's fields.
pub fn details_unknown(groups: &[DropGroup], has_btf: bool) -> Option<String> {
    let none_read = !groups.is_empty()
        && groups
            .iter()
            .all(|g| g.addrs.is_none() && g.dport.is_none() && g.family.is_none());
    (none_read && !has_btf).then(|| {
        "this kernel offers no BTF (/sys/kernel/btf/vmlinux), so droptrace sees only each drop's location, reason and protocol, not the packet's addresses, ports or namespace".to_owned()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        kernel::reasons::DropReasonTable,
        pipeline::{event::Packet, fixtures::location},
    };

    const NFT: u64 = 0xffff_ffff_8100_0000;
    const NS: u32 = 4026532246;
    const OTHER_NS: u32 = 4026532300;

    struct Named;
    impl NamespaceNames for Named {
        fn describe(&self, inode: u32) -> String {
            format!("netns n{inode}")
        }
        fn command_prefix(&self, inode: u32) -> String {
            format!("ip netns exec n{inode} ")
        }
    }

    fn names() -> Names {
        let mut n = Names::with_reasons(Some(DropReasonTable::from_entries([(
            12,
            "NETFILTER_DROP",
        )])));
        n.locations.insert(NFT, location("nft_do_chain", 0x3e8));
        n
    }

    fn group(netns: u32, ifindex: u32) -> Group {
        Group {
            location: NFT,
            reason: 12,
            ethertype: 0x0800,
            ip_proto: Some(6),
            dport: Some(1678),
            netns: netns.into(),
            ifindex,
        }
    }

    pub(crate) fn stats(delivered: u64, lost: u64) -> GroupStats {
        GroupStats {
            delivered,
            lost,
            max_len: 60,
            ..GroupStats::default()
        }
    }

    fn sample(g: &Group, sport: u16) -> Drop {
        Drop {
            timestamp_ns: u64::from(sport),
            location: g.location,
            reason: g.reason,
            netns: g.netns,
            ifindex: g.ifindex,
            len: 60,
            l2_len: 0,
            cpu: 0,
            packet: Packet {
                ethertype: 0x0800,
                addrs: Some(("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap())),
                ip_proto: Some(6),
                ports: Some((sport, 1678)),
                icmp: None,
                tcp_flags: None,
            },
        }
    }

    #[test]
    fn a_rows_groups_fold_by_site_and_namespace_with_their_interfaces_by_drops() {
        let (a, b) = (group(NS, 2), group(OTHER_NS, 3));
        let groups = drop_groups(
            &[
                (b, stats(2, 0)),
                (a, stats(4, 3)),
                (group(NS, 4), stats(1, 0)),
                (group(NS, 5), stats(0, 0)),
            ],
            &[sample(&a, 40000), sample(&a, 40001), sample(&b, 40002)],
            &names(),
        );
        assert_eq!(groups.len(), 2, "one per namespace: {groups:#?}");
        let g = &groups[0];
        assert_eq!(g.count, 8);
        assert_eq!(g.places, [(NS, 2), (NS, 4)]);
        assert_eq!(g.location, "nft_do_chain+0x3e8");
        assert_eq!(g.reason.as_deref(), Some("NETFILTER_DROP"));
        assert_eq!(g.protocol.as_deref(), Some("tcp"));
        assert_eq!(
            g.example.as_deref(),
            Some("10.77.0.1:40001 -> 10.77.0.2:1678, 60 bytes")
        );
        assert_eq!(
            (groups[1].count, groups[1].places.as_slice()),
            (2, &[(OTHER_NS, 3)][..])
        );
        assert_eq!(
            groups[1].example.as_deref(),
            Some("10.77.0.1:40002 -> 10.77.0.2:1678, 60 bytes")
        );
    }

    /// The captured ruleset before the window, and the same ruleset after five more drops
    /// by its `tcp dport 1678` rule (handle 7).
    fn rulesets() -> (RawSnapshot, RawSnapshot) {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/nft-ruleset.txt"
        ));
        let rule = "tcp dport 1678 counter packets 1 bytes 60 drop";
        assert!(text.contains(rule));
        let after = text.replace(rule, "tcp dport 1678 counter packets 6 bytes 360 drop");
        let raw = |nft: String| RawSnapshot {
            commands: [("nft".to_owned(), nft)].into_iter().collect(),
            ..RawSnapshot::default()
        };
        (raw(text.to_owned()), raw(after))
    }

    #[test]
    fn the_rows_drops_are_put_down_to_the_rule_whose_counter_grew() {
        let (before, after) = rulesets();
        let g = group(NS, 2);
        let groups = drop_groups(&[(g, stats(5, 0))], &[sample(&g, 40000)], &names());
        let findings = diagnose_row(&RowWindow {
            groups: &groups,
            before: &BTreeMap::from([(NS, before)]),
            after: &BTreeMap::from([(NS, after)]),
            namespaces: &Named,
            host_netns: 1,
            secs: 2.5,
            samples_secs: 2.5,
            conntrack_full_log_lines: 0,
            details_unknown: None,
            earlier: false,
        });
        let f = &findings[0];
        assert_eq!(f.cause, "netfilter_rule");
        assert_eq!(f.drops, 5);
        assert!((f.rate - 2.0).abs() < 1e-9);
        assert!(f.summary.contains("tcp dport 1678"), "{}", f.summary);
        assert!(f.summary.contains(&format!("netns n{NS}")), "{}", f.summary);
        assert!(
            f.evidence
                .iter()
                .any(|e| e.contains("(handle 7): counter +5 in the window, now 6")),
            "{:?}",
            f.evidence
        );
        assert_eq!(
            f.fix,
            format!("ip netns exec n{NS} nft delete rule inet dtfilter input handle 7")
        );
    }

    #[test]
    fn drops_without_samples_are_put_where_the_row_dropped() {
        let (before, after) = rulesets();
        // Every event lost: the group still names its namespace.
        let groups = drop_groups(&[(group(NS, 2), stats(0, 5))], &[], &names());
        assert_eq!(groups[0].example, None);
        let findings = diagnose_row(&RowWindow {
            groups: &groups,
            before: &BTreeMap::from([(NS, before)]),
            after: &BTreeMap::from([(NS, after)]),
            namespaces: &Named,
            host_netns: 1,
            secs: 2.5,
            samples_secs: 2.5,
            conntrack_full_log_lines: 0,
            details_unknown: None,
            earlier: false,
        });
        assert_eq!(findings[0].cause, "netfilter_rule");
        assert_eq!(
            findings[0].netns.as_deref(),
            Some(format!("netns n{NS}").as_str())
        );
    }

    /// droptrace watched 2.5 s and saw 5 drops; the rule's counter grew by 8 over the 3.1 s
    /// between the samples (drops before it attached): each figure says what it covers.
    #[test]
    fn each_figure_of_a_finding_says_which_window_it_covers() {
        let (before, after) = rulesets();
        let after = RawSnapshot {
            commands: after
                .commands
                .into_iter()
                .map(|(k, v)| (k, v.replace("packets 6 bytes 360", "packets 9 bytes 540")))
                .collect(),
            ..RawSnapshot::default()
        };
        let g = group(NS, 2);
        let groups = drop_groups(&[(g, stats(5, 0))], &[sample(&g, 40000)], &names());
        let findings = diagnose_row(&RowWindow {
            groups: &groups,
            before: &BTreeMap::from([(NS, before)]),
            after: &BTreeMap::from([(NS, after)]),
            namespaces: &Named,
            host_netns: 1,
            secs: 2.5,
            samples_secs: 3.1,
            conntrack_full_log_lines: 0,
            details_unknown: None,
            earlier: false,
        });
        let f = &findings[0];
        assert_eq!((f.cause, f.drops), ("netfilter_rule", 5));
        assert!(
            f.summary
                .contains("dropped 8 packets between the samples (3.1 s) in netns n"),
            "{}",
            f.summary
        );
        let report = crate::diagnose::report::Report {
            window_secs: 2.5,
            samples_secs: 3.1,
            total: 5,
            lost_events: 0,
            namespaces: 1,
            not_sampled: Vec::new(),
            findings,
            counters_moved: Vec::new(),
            baseline_of: None,
            baseline_diff: None,
        };
        let text = report.text();
        assert!(
            text.contains("\n1. [netfilter_rule] 5 drops seen in 2.5 s (2.0/s)\n"),
            "{text}"
        );
        assert!(
            text.contains("between the samples of the state before and after, 3.1 s apart"),
            "{text}"
        );
    }
}
