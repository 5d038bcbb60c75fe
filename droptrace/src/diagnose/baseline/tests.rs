use super::*;
use crate::diagnose::{
    engine::{self, DropGroup, NamespaceNames},
    raw::RawSnapshot,
    state,
};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/evidence/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The namespace of README.capture's tc and bpftool sections (dtcap-tcb), before the
/// programs were attached (`with_bpf` false: no clsact qdisc, no programs) and after.
fn snapshot(with_bpf: bool) -> state::NsState {
    let mut raw = RawSnapshot::default();
    raw.commands.insert("links".into(), fixture("ip-link.json"));
    raw.commands
        .insert("nft".into(), fixture("nft-ruleset.txt"));
    raw.sysctls
        .insert("net/ipv4/conf/all/rp_filter".into(), "0".into());
    raw.sysctls
        .insert("net/netfilter/nf_conntrack_count".into(), "3".into());
    if with_bpf {
        raw.commands
            .insert("qdiscs".into(), fixture("tc-qdisc.clsact.json"));
        raw.commands
            .insert("bpf-net".into(), fixture("bpftool-net.json"));
        raw.tc_filters.insert(
            ("dtv1".into(), "ingress".into()),
            fixture("tc-filter.clsact-ingress.json"),
        );
        raw.bpf_progs
            .insert(606, fixture("bpftool-prog.sched_cls.json"));
        raw.sysctls
            .insert("net/netfilter/nf_conntrack_count".into(), "90".into());
    } else {
        raw.commands
            .insert("qdiscs".into(), fixture("tc-qdisc.root-default.json"));
    }
    state::from_raw(&raw)
}

fn baseline(st: &state::NsState) -> Baseline {
    capture([("netns web".to_owned(), st)], "web-1", 1_796_181_297)
}

#[test]
fn a_saved_baseline_reads_back() {
    let b = baseline(&snapshot(true));
    let text = serde_json::to_string_pretty(&b).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["droptrace"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["host"], "web-1");
    assert_eq!(parse(&text).unwrap(), b);
    let web = &b.namespaces["netns web"];
    assert!(web
        .bpf
        .iter()
        .any(|p| p.prog_id == 606 && p.hook == "tc ingress"));
    assert!(!web.sysctls.contains_key("net.netfilter.nf_conntrack_count"));
    assert!(
        web.rules.iter().all(|r| !r.text.contains("packets")),
        "{:?}",
        web.rules
    );
}

#[test]
fn foreign_newer_and_damaged_files_are_refused() {
    assert!(matches!(parse("not json"), Err(BaselineError::NotJson(_))));
    assert!(matches!(parse(""), Err(BaselineError::NotJson(_))));
    assert!(matches!(
        parse(&fixture("bpftool-net.root-empty.json")),
        Err(BaselineError::Foreign)
    ));
    assert!(matches!(
        parse(r#"{"version":1,"host":"x"}"#),
        Err(BaselineError::Foreign)
    ));
    let newer = parse(r#"{"version":2,"droptrace":"9.0.0","namespaces":{}}"#).unwrap_err();
    assert!(matches!(newer, BaselineError::Newer { found: 2, .. }));
    assert!(newer.to_string().contains("droptrace 9.0.0"), "{newer}");
    assert!(matches!(
        parse(r#"{"version":1,"droptrace":"0.1.0","host":"x","taken_at":0,"namespaces":5}"#),
        Err(BaselineError::Corrupt(_))
    ));
    let text = serde_json::to_string(&baseline(&snapshot(true))).unwrap();
    for cut in [1, text.len() / 3, text.len() - 1] {
        assert!(parse(&text[..cut]).is_err());
    }
}

#[test]
fn an_oversized_or_binary_file_is_refused_before_parsing() {
    let text = serde_json::to_string(&baseline(&snapshot(true))).unwrap();
    assert!(from_bytes(text.as_bytes()).is_ok());
    // Valid JSON past the limit (padding in a string) is still refused, by its size.
    let mut big = text.into_bytes();
    big.truncate(big.len() - 1);
    let pad = usize::try_from(MAX_BYTES).unwrap() + 1 - big.len() - 10;
    big.extend_from_slice(b",\"pad\":\"");
    big.resize(big.len() + pad, b'x');
    big.extend_from_slice(b"\"}");
    assert!(big.len() as u64 > MAX_BYTES);
    let err = from_bytes(&big).unwrap_err();
    assert!(matches!(err, BaselineError::TooLarge), "{err}");
    assert!(err.to_string().contains("larger than 16 MiB"), "{err}");
    assert!(matches!(
        from_bytes(b"{\"version\":1,\"droptrace\":\"\xff\"}"),
        Err(BaselineError::NotText(_))
    ));
}

#[test]
fn a_program_attached_since_is_named_and_counters_are_not_differences() {
    let then = baseline(&snapshot(false));
    let now = baseline(&snapshot(true));
    let d = diff(&then, &now, true);
    let sentences: Vec<&str> = d.iter().map(|d| d.sentence.as_str()).collect();
    assert!(
        sentences.contains(
            &"new since the baseline: BPF program dt_tc_ingress (id 606) at tc ingress on \
              dtv1 in netns web"
        ),
        "{sentences:#?}"
    );
    assert!(sentences
        .iter()
        .any(|s| s.starts_with("new since the baseline: qdisc clsact")));
    // The same state twice: nothing, although rule counters and conntrack's count moved.
    assert!(diff(&now, &baseline(&snapshot(true)), false).is_empty());
    // Gone the other way; a namespace missing from a scoped run is not called gone.
    let back = diff(&now, &then, false);
    assert!(back
        .iter()
        .any(|d| d.change == Change::Gone && d.kind == "bpf"));
    let other = capture([("netns db".to_owned(), &snapshot(false))], "web-1", 0);
    assert!(diff(&then, &other, true)
        .iter()
        .all(|d| d.change != Change::Gone));
    assert!(diff(&then, &other, false)
        .iter()
        .any(|d| d.sentence == "gone since the baseline: netns web"));
}

#[test]
fn more_programs_of_a_type_than_the_baseline_is_said() {
    let mut then = baseline(&snapshot(true));
    let mut now = then.clone();
    let web = now.namespaces.get_mut("netns web").unwrap();
    let mut extra = web
        .bpf
        .iter()
        .find(|b| b.hook == "tc ingress")
        .unwrap()
        .clone();
    extra.dev = "dtv9".into();
    extra.prog_type = Some("sched_cls".into());
    web.bpf.push(extra);
    for b in &mut then.namespaces.get_mut("netns web").unwrap().bpf {
        if b.prog_id == 606 {
            b.prog_type = Some("sched_cls".into());
        }
    }
    let now_web = now.namespaces.get_mut("netns web").unwrap();
    for b in &mut now_web.bpf {
        if b.prog_id == 606 {
            b.prog_type = Some("sched_cls".into());
        }
    }
    let d = diff(&then, &now, false);
    assert!(
        d.iter().any(|d| d
            .sentence
            .contains("sched_cls programs attached in netns web")),
        "{d:#?}"
    );
}

#[test]
fn sysctls_mtus_and_rules_that_changed() {
    let then = baseline(&snapshot(false));
    let mut now = then.clone();
    let web = now.namespaces.get_mut("netns web").unwrap();
    web.sysctls
        .insert("net.ipv4.conf.all.rp_filter".into(), "1".into());
    *web.mtus.get_mut("lo").unwrap() = 1280;
    let dropped = web.rules.remove(0);
    let d = diff(&then, &now, false);
    let s: Vec<&str> = d.iter().map(|d| d.sentence.as_str()).collect();
    assert!(s.contains(
        &"changed since the baseline: net.ipv4.conf.all.rp_filter in netns web is 1, was 0"
    ));
    assert!(s.contains(&"changed since the baseline: MTU of lo in netns web is 1280, was 65536"));
    assert!(
        s.iter()
            .any(|l| l.starts_with("gone since the baseline: nftables rule")
                && l.contains(&dropped.text)),
        "{s:#?}"
    );
}

struct Names;
impl NamespaceNames for Names {
    fn describe(&self, _inode: u32) -> String {
        "netns web".into()
    }
    fn command_prefix(&self, _inode: u32) -> String {
        "ip netns exec web ".into()
    }
}

#[test]
fn findings_whose_evidence_is_new_rank_first() {
    let (then, now) = (snapshot(false), snapshot(true));
    let group = |function: &str, reason: &str, count| DropGroup {
        function: Some(function.into()),
        location: format!("{function}+0x10"),
        reason: Some(reason.into()),
        protocol: Some("tcp".into()),
        dport: Some(8080),
        count,
        // No interface: the fixtures' links are of another capture.
        places: vec![(1, 0)],
        max_len: 60,
        example: None,
        ..DropGroup::default()
    };
    // More drops at a listener-less port than by the program: without a baseline the
    // program comes second.
    let groups = [
        group("tcp_v4_rcv", "NO_SOCKET", 50),
        group("sch_handle_ingress", "TC_INGRESS", 3),
    ];
    let before = BTreeMap::from([(1, now.clone())]);
    let after = BTreeMap::from([(1, now.clone())]);
    let mut findings = engine::diagnose(&engine::Window {
        groups: &groups,
        before: &before,
        after: &after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 3.0,
        samples_secs: 3.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    });
    assert_eq!(findings[1].cause, "tc_bpf");
    let d = diff(&baseline(&then), &baseline(&now), true);
    let mut unmatched = findings.clone();
    let elsewhere = BTreeMap::from([("netns web".to_owned(), "netns db".to_owned())]);
    rank(&mut unmatched, &d, &elsewhere);
    assert_eq!(
        unmatched[0].cause, "no_listener",
        "another namespace's differences"
    );
    rank(&mut findings, &d, &BTreeMap::new());
    assert_eq!(findings[0].cause, "tc_bpf", "{findings:#?}");
    assert!(findings[0]
        .evidence
        .iter()
        .any(|e| e.starts_with("new since the baseline: BPF program dt_tc_ingress (id 606)")));
    assert_eq!(findings[1].cause, "no_listener");
    // Nothing new: the order stays.
    let mut same = findings.clone();
    rank(&mut same, &[], &BTreeMap::new());
    assert_eq!(same, findings);

    let report = crate::diagnose::report::Report {
        window_secs: 3.0,
        samples_secs: 3.4,
        total: 53,
        lost_events: 0,
        namespaces: 1,
        not_sampled: Vec::new(),
        findings,
        counters_moved: Vec::new(),
        baseline_of: Some("host web-1, saved 2026-12-02 03:14:57 UTC".into()),
        baseline_diff: Some(d.clone()),
    };
    let text = report.text();
    let section = text
        .split("\nSince the baseline (host web-1, saved 2026-12-02 03:14:57 UTC):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no baseline section: {text}"));
    assert!(
        section.contains(
            "\n   - new since the baseline: BPF program dt_tc_ingress (id 606) at tc ingress on \
             dtv1 in netns web\n"
        ),
        "{text}"
    );
    assert_eq!(section.lines().count(), d.len());
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["baseline_diff"][0]["kind"], "bpf");
    assert_eq!(json["baseline_diff"][0]["change"], "new");
    let without = crate::diagnose::report::Report {
        baseline_of: None,
        baseline_diff: None,
        findings: Vec::new(),
        counters_moved: Vec::new(),
        ..report
    };
    assert!(serde_json::to_value(&without)
        .unwrap()
        .get("baseline_diff")
        .is_none());
    assert!(!without.text().contains("Since the baseline"));
}

#[test]
fn counts_are_taken_out_of_rule_text() {
    assert_eq!(
        without_counts("tcp dport 1678 counter packets 12 bytes 720 drop"),
        "tcp dport 1678 counter drop"
    );
    assert_eq!(
        without_counts("meta bytes > 100 drop"),
        "meta bytes > 100 drop"
    );
}

#[test]
fn routes_and_routing_rules_that_changed() {
    use crate::diagnose::evidence::route::Route;
    let mut st = snapshot(false);
    st.routing_v4.routes = vec![
        Route {
            kind: "unicast".into(),
            dst: "10.0.0.0/24".into(),
            dev: Some("eth0".into()),
            gateway: None,
            table: "main".into(),
            metric: None,
        },
        Route {
            kind: "unicast".into(),
            dst: "default".into(),
            dev: Some("eth0".into()),
            gateway: Some("10.0.0.1".into()),
            table: "main".into(),
            metric: Some(100),
        },
    ];
    let then = baseline(&st);
    assert_eq!(
        then.namespaces["netns web"].routes,
        [
            "ipv4 table main: 10.0.0.0/24 dev eth0",
            "ipv4 table main: default via 10.0.0.1 dev eth0 metric 100"
        ]
    );
    st.routing_v4.routes[1].kind = "blackhole".into();
    st.routing_v4.routes[1].gateway = None;
    st.routing_v4.routes[1].dev = None;
    let d = diff(&then, &baseline(&st), false);
    let s: Vec<&str> = d.iter().map(|d| d.sentence.as_str()).collect();
    assert_eq!(
        s,
        [
            "new since the baseline: ipv4 table main: blackhole default metric 100 in netns web",
            "gone since the baseline: ipv4 table main: default via 10.0.0.1 dev eth0 metric 100 \
             in netns web"
        ]
    );
    // A file from before routes were saved still reads.
    let old = r#"{"version":1,"droptrace":"0.1.0","host":"x","taken_at":0,
        "namespaces":{"netns web":{"bpf":[],"rules":[],"qdiscs":[],"sysctls":{},"mtus":{}}}}"#;
    assert!(parse(old).unwrap().namespaces["netns web"]
        .routes
        .is_empty());
}

/// A rule added since the baseline (udp 5001) is no news about the drops of an old rule
/// (tcp 1678): that finding neither carries it nor goes before a bigger one; a finding
/// whose drops the new rule made does both.
#[test]
fn a_finding_carries_only_the_differences_about_its_own_evidence() {
    let nft = |text: String| {
        let mut raw = RawSnapshot::default();
        raw.commands.insert("nft".into(), text);
        state::from_raw(&raw)
    };
    let old = "tcp dport 1678 counter packets 1 bytes 60 drop # handle 7";
    let new = "udp dport 5001 counter packets 0 bytes 0 drop # handle 21";
    let saved = fixture("nft-ruleset.txt");
    let with_new = saved.replace(old, &format!("{old}\n\t\t{new}"));
    let before = nft(with_new.clone());
    let after = nft(with_new
        .replace(
            "1678 counter packets 1 bytes 60",
            "1678 counter packets 6 bytes 360",
        )
        .replace(
            "5001 counter packets 0 bytes 0",
            "5001 counter packets 4 bytes 240",
        ));
    let group = |function: &str, reason: &str, protocol: &str, dport, count| DropGroup {
        function: Some(function.into()),
        location: format!("{function}+0x10"),
        reason: Some(reason.into()),
        protocol: Some(protocol.into()),
        dport: Some(dport),
        count,
        places: vec![(1, 0)],
        max_len: 60,
        ..DropGroup::default()
    };
    let findings_of = |groups: &[DropGroup]| {
        engine::diagnose(&engine::Window {
            groups,
            before: &BTreeMap::from([(1, before.clone())]),
            after: &BTreeMap::from([(1, after.clone())]),
            names: &Names,
            default_netns: 1,
            host_netns: 1,
            secs: 3.0,
            samples_secs: 3.0,
            conntrack_full_log_lines: 0,
            details_unknown: None,
            earlier: false,
        })
    };
    let d = diff(&baseline(&nft(saved)), &baseline(&after), true);
    assert!(
        d.iter()
            .any(|d| d.sentence.contains("udp dport 5001") && d.change == Change::New),
        "{d:#?}"
    );

    let mut findings = findings_of(&[
        group("tcp_v4_rcv", "NO_SOCKET", "tcp", 9, 50),
        group("nft_do_chain", "NETFILTER_DROP", "tcp", 1678, 5),
    ]);
    assert_eq!(findings[1].cause, "netfilter_rule");
    rank(&mut findings, &d, &BTreeMap::new());
    assert_eq!(findings[0].cause, "no_listener", "{findings:#?}");
    assert!(
        !findings[1]
            .evidence
            .iter()
            .any(|e| e.contains("since the baseline")),
        "{:#?}",
        findings[1].evidence
    );

    let mut findings = findings_of(&[
        group("tcp_v4_rcv", "NO_SOCKET", "tcp", 9, 50),
        group("nft_do_chain", "NETFILTER_DROP", "udp", 5001, 4),
    ]);
    rank(&mut findings, &d, &BTreeMap::new());
    assert_eq!(findings[0].cause, "netfilter_rule", "{findings:#?}");
    assert!(
        findings[0].evidence.iter().any(|e| e.starts_with(
            "new since the baseline: nftables rule in inet dtfilter input `udp dport 5001"
        )),
        "{:#?}",
        findings[0].evidence
    );
}
