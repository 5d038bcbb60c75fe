//! `droptrace diagnose` for the host: from the window's drops and the two samples of its
//! namespaces to the report: the engine's findings, what the drops did to TCP, every
//! counter that moved, and, with a baseline, what changed since it. The sampling is the
//! probe's (`probe::host_sampler`); this is ordinary code.
use std::collections::{BTreeMap, BTreeSet};

use super::{
    baseline::{self, Baseline},
    engine::{self, DropGroup, NamespaceNames},
    programs,
    raw::RawSnapshot,
    report::Report,
    state::{from_raw, NsState},
};
use crate::pipeline::{names::Names, tcp::TcpTable};

/// The namespaces where the window's drops happened.
pub fn dropped_in(groups: &[DropGroup]) -> BTreeSet<u32> {
    groups
        .iter()
        .filter(|g| g.count > 0)
        .flat_map(|g| g.places.iter().map(|p| p.0))
        .collect()
}

/// What the report is made of.
pub struct HostWindow<'a> {
    pub groups: &'a [DropGroup],
    pub before: BTreeMap<u32, RawSnapshot>,
    pub after: BTreeMap<u32, RawSnapshot>,
    pub names: &'a dyn NamespaceNames,
    /// Namespaces deleted during the window (their drops went with them).
    pub vanished: &'a BTreeSet<u32>,
    /// Namespace assumed for drops without samples; droptrace's own.
    pub default_netns: u32,
    pub host_netns: u32,
    pub secs: f64,
    pub samples_secs: f64,
    pub conntrack_full_log_lines: usize,
    pub details_unknown: Option<String>,
    /// The window's TCP figures, and the names they use.
    pub tcp: (&'a TcpTable, &'a Names),
    /// Drops that matched, and events lost, in the window.
    pub total: u64,
    pub lost_events: u64,
    pub not_sampled: Vec<String>,
    /// `--baseline`'s state, and whether the diagnosis was scoped to one namespace.
    pub baseline: Option<&'a Baseline>,
    pub scoped: bool,
    /// This host's name and the time now (seconds since the epoch), for the baseline.
    pub host: String,
    pub now_secs: u64,
}

/// The report, and the state now as a baseline (for `--save-baseline`). `route_get`
/// answers `ip route get QUERY` in a sampled namespace (`None`: not sampled).
pub fn diagnose_host(
    w: HostWindow<'_>,
    route_get: impl Fn(u32, &str) -> Option<Result<String, String>>,
) -> (Report, Baseline) {
    let parse = |raw: BTreeMap<u32, RawSnapshot>| -> BTreeMap<u32, NsState> {
        raw.into_iter().map(|(i, r)| (i, from_raw(&r))).collect()
    };
    let (before, mut after) = (parse(w.before), parse(w.after));
    // The kernel's route lookups for the window's routing drops, asked in their namespace.
    for (inode, query) in engine::route_queries(w.groups, &after, w.default_netns) {
        let Some(answer) = route_get(inode, &query) else {
            continue;
        };
        if let Some(state) = after.get_mut(&inode) {
            state.add_route_lookup(query, answer);
        }
    }
    let window = engine::Window {
        groups: w.groups,
        before: &before,
        after: &after,
        names: w.names,
        default_netns: w.default_netns,
        host_netns: w.host_netns,
        secs: w.secs,
        samples_secs: w.samples_secs,
        conntrack_full_log_lines: w.conntrack_full_log_lines,
        details_unknown: w.details_unknown,
        earlier: false,
    };
    let mut findings = engine::diagnose(&window);
    let counters_moved = engine::counters_moved(&window);
    // What the drops did to TCP connections, after the drops' own causes.
    findings.extend(engine::tcp_findings(w.tcp.0, w.tcp.1, w.names, w.secs));
    for f in &mut findings {
        if let Some(inode) = f.netns_inode().filter(|i| w.vanished.contains(i)) {
            f.fix = format!(
                "none to run: {} no longer exists, and its drops went with it (while it \
                 existed the fix was: {})",
                w.names.found_as(inode),
                f.fix
            );
        }
    }
    let now = baseline::capture(
        after
            .iter()
            .map(|(inode, st)| (w.names.baseline_name(*inode), st)),
        &w.host,
        w.now_secs,
    );
    let baseline_diff = w.baseline.map(|then| {
        let diff = baseline::diff(then, &now, w.scoped);
        let aliases: BTreeMap<String, String> = after
            .keys()
            .map(|i| (w.names.describe(*i), w.names.baseline_name(*i)))
            .collect();
        baseline::rank(&mut findings, &diff, &aliases);
        diff
    });
    let report = Report {
        window_secs: w.secs,
        samples_secs: w.samples_secs,
        total: w.total,
        lost_events: w.lost_events,
        namespaces: after.len(),
        not_sampled: w.not_sampled,
        findings,
        counters_moved,
        baseline_of: w
            .baseline
            .map(|b| format!("host {}, saved {}", b.host, programs::utc(b.taken_at))),
        baseline_diff,
    };
    (report, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Names;
    impl NamespaceNames for Names {
        fn describe(&self, inode: u32) -> String {
            format!("netns n{inode}")
        }
        fn command_prefix(&self, inode: u32) -> String {
            format!("ip netns exec n{inode} ")
        }
    }

    /// The captured ruleset before the window, and after it with its rule's counter grown
    /// by the window's drops.
    fn samples(grown: u64) -> (BTreeMap<u32, RawSnapshot>, BTreeMap<u32, RawSnapshot>) {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/nft-ruleset.txt"
        ))
        .unwrap();
        let raw = |text: String| {
            let mut r = RawSnapshot::default();
            r.commands.insert("nft".into(), text);
            BTreeMap::from([(1, r)])
        };
        let after = text.replace(
            "tcp dport 1678 counter packets 1 bytes 60 drop",
            &format!(
                "tcp dport 1678 counter packets {} bytes {} drop",
                1 + grown,
                60 * (1 + grown)
            ),
        );
        (raw(text), raw(after))
    }

    fn window<'a>(
        groups: &'a [DropGroup],
        vanished: &'a BTreeSet<u32>,
        tcp: &'a TcpTable,
        names: &'a Names,
        pipeline_names: &'a crate::pipeline::names::Names,
        baseline: Option<&'a Baseline>,
    ) -> HostWindow<'a> {
        let (before, after) = samples(5);
        HostWindow {
            groups,
            before,
            after,
            names,
            vanished,
            default_netns: 1,
            host_netns: 9,
            secs: 2.0,
            samples_secs: 2.5,
            conntrack_full_log_lines: 0,
            details_unknown: None,
            tcp: (tcp, pipeline_names),
            total: 5,
            lost_events: 0,
            not_sampled: Vec::new(),
            baseline,
            scoped: false,
            host: "web-1".into(),
            now_secs: 1_765_000_000,
        }
    }

    fn drops() -> Vec<DropGroup> {
        vec![DropGroup {
            function: Some("nft_do_chain".into()),
            location: "nft_do_chain+0x1c1".into(),
            reason: Some("NETFILTER_DROP".into()),
            protocol: Some("tcp".into()),
            dport: Some(1678),
            count: 5,
            places: vec![(1, 2)],
            max_len: 60,
            ..DropGroup::default()
        }]
    }

    #[test]
    fn the_rule_whose_counter_grew_with_the_drops_is_the_finding_and_the_baseline_keeps_it() {
        let (groups, tcp, pn) = (drops(), TcpTable::default(), Default::default());
        let vanished = BTreeSet::new();
        let (report, now) = diagnose_host(
            window(&groups, &vanished, &tcp, &Names, &pn, None),
            |_, _| None,
        );
        assert_eq!((report.total, report.namespaces), (5, 1));
        let top = &report.findings[0];
        assert_eq!(top.cause, "netfilter_rule", "{report:#?}");
        assert_eq!(top.drops, 5);
        assert!(top.fix.contains("handle 7"), "{}", top.fix);
        assert!(report.baseline_diff.is_none());
        assert_eq!(now.host, "web-1");
        assert!(
            now.namespaces.contains_key("netns n1"),
            "{:?}",
            now.namespaces.keys()
        );
        // Against that baseline, nothing has changed.
        let (again, _) = diagnose_host(
            window(&groups, &vanished, &tcp, &Names, &pn, Some(&now)),
            |_, _| None,
        );
        assert_eq!(again.baseline_diff.as_deref().map(<[_]>::len), Some(0));
        assert!(again.baseline_of.unwrap().starts_with("host web-1, saved "));
    }

    #[test]
    fn a_namespace_gone_during_the_window_has_no_fix_to_run() {
        let (groups, tcp, pn) = (drops(), TcpTable::default(), Default::default());
        let vanished = BTreeSet::from([1]);
        let (report, _) = diagnose_host(
            window(&groups, &vanished, &tcp, &Names, &pn, None),
            |_, _| None,
        );
        let top = &report.findings[0];
        assert!(
            top.fix
                .starts_with("none to run: netns n1 no longer exists"),
            "{}",
            top.fix
        );
    }
}
