//! The engine on states parsed from captured tool output (`fixtures/evidence/`), for the
//! causes whose evidence is read from several tools at once.
use std::collections::BTreeMap;

use super::*;
use crate::diagnose::{raw::RawSnapshot, state::from_raw};

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/",
            $name
        ))
        .to_owned()
    };
}

struct Names;
impl NamespaceNames for Names {
    fn describe(&self, inode: u32) -> String {
        format!("netns n{inode}")
    }
    fn command_prefix(&self, inode: u32) -> String {
        format!("ip netns exec n{inode} ")
    }
}

fn raw(commands: &[(&str, String)]) -> RawSnapshot {
    RawSnapshot {
        commands: commands
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..RawSnapshot::default()
    }
}

/// Findings for `groups` in namespace 1, sampled as `before` and `after`.
fn run(groups: &[DropGroup], before: &RawSnapshot, after: &RawSnapshot) -> Vec<Finding> {
    let before = BTreeMap::from([(1, from_raw(before))]);
    let after = BTreeMap::from([(1, from_raw(after))]);
    diagnose(&Window {
        groups,
        before: &before,
        after: &after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 2.0,
        samples_secs: 2.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    })
}

fn udp_to(family: &str, port: Option<u16>, function: &str, reason: &str) -> DropGroup {
    DropGroup {
        function: Some(function.into()),
        location: format!("{function}+0x10"),
        reason: Some(reason.into()),
        protocol: Some("udp".into()),
        family: Some(family.into()),
        dport: port,
        count: 3,
        places: vec![(1, 0)],
        max_len: 128,
        ..DropGroup::default()
    }
}

#[test]
fn an_nft_policy_drop_is_named_with_the_rule_that_admits() {
    let after = raw(&[("nft", fixture!("nft-ruleset.policy-drop.txt"))]);
    for family in ["ipv4", "ipv6"] {
        let g = udp_to(family, Some(4444), "nft_do_chain", "NETFILTER_DROP");
        let f = run(&[g], &after, &after);
        assert_eq!(f[0].cause, "netfilter_rule");
        assert_eq!(
            f[0].summary,
            "the packets fell through every rule of nftables chain `inet filter input` (hook input) to its policy drop in netns n1"
        );
        assert!(
            f[0].evidence.iter().any(|e| e.contains("has policy drop")),
            "{f:#?}"
        );
        assert!(
            f[0].fix.starts_with(
                "admit the packets that should pass: ip netns exec n1 nft add rule inet filter input udp dport 4444 accept"
            ),
            "{}",
            f[0].fix
        );
        assert!(!f[0].fix.contains("counter"), "{}", f[0].fix);
    }
    // Without packet details there is no rule to write: the fix says so, with no
    // placeholder.
    let mut g = udp_to("ipv4", None, "nft_do_chain", "NETFILTER_DROP");
    (g.protocol, g.family) = (None, None);
    let f = run(&[g], &after, &after);
    assert!(f[0].summary.contains("policy drop"), "{f:#?}");
    assert!(f[0].fix.contains("are unknown"), "{}", f[0].fix);
    assert!(
        !f[0].fix.contains('<') && !f[0].fix.contains('?'),
        "{}",
        f[0].fix
    );
}

#[test]
fn an_iptables_nft_policy_drop_fits_only_its_family() {
    let after = raw(&[(
        "iptables-nft",
        fixture!("iptables-nft-save.policy-drop.v4.txt"),
    )]);
    let f = run(
        &[udp_to("ipv4", Some(4444), "nft_do_chain", "NETFILTER_DROP")],
        &after,
        &after,
    );
    assert!(
        f[0].summary.contains("iptables-nft chain `filter INPUT`"),
        "{f:#?}"
    );
    assert!(
        f[0].fix.contains(
            "ip netns exec n1 iptables-nft -t filter -A INPUT -p udp --dport 4444 -j ACCEPT"
        ),
        "{}",
        f[0].fix
    );
    // An IPv6 packet never meets the IPv4 table's policy.
    let f = run(
        &[udp_to("ipv6", Some(4444), "nft_do_chain", "NETFILTER_DROP")],
        &after,
        &after,
    );
    assert!(!f[0].summary.contains("policy"), "{f:#?}");
}

#[test]
fn a_legacy_policy_counter_that_grew_is_the_cause() {
    let before = raw(&[(
        "iptables-legacy",
        fixture!("iptables-legacy-save.policy-drop.v4.txt"),
    )]);
    let after = raw(&[(
        "iptables-legacy",
        fixture!("iptables-legacy-save.policy-drop.v4.txt")
            .replace(":INPUT DROP [0:0]", ":INPUT DROP [3:384]"),
    )]);
    let f = run(
        &[udp_to("ipv4", Some(4444), "nf_hook_slow", "NETFILTER_DROP")],
        &before,
        &after,
    );
    assert!(
        f[0].summary
            .contains("fell through every rule of iptables-legacy chain `filter INPUT`"),
        "{f:#?}"
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("counter +3 in the window")),
        "{f:#?}"
    );
    assert!(f[0]
        .fix
        .contains("iptables-legacy -t filter -A INPUT -p udp --dport 4444 -j ACCEPT"));
}

#[test]
fn a_veths_peer_in_an_unsampled_namespace_is_resolved_exactly() {
    let mut sender = raw(&[("links", fixture!("ip-link.veth-peer-netns.json"))]);
    // The sampler found link-netnsid 0 to be namespace 7, which was not sampled itself.
    sender.peer_namespaces.insert(
        0,
        crate::diagnose::raw::PeerNamespace {
            inode: 7,
            links: fixture!("ip-link.veth-peer-mtu1400.json"),
        },
    );
    let g = DropGroup {
        function: Some("veth_xmit".into()),
        location: "veth_xmit+0x10".into(),
        reason: Some("PKT_TOO_BIG".into()),
        protocol: Some("udp".into()),
        family: Some("ipv4".into()),
        count: 4,
        places: vec![(1, 2)],
        max_len: 1514,
        ..DropGroup::default()
    };
    let f = run(std::slice::from_ref(&g), &sender, &sender);
    assert_eq!(f[0].cause, "mtu", "{f:#?}");
    assert_eq!(
        f[0].summary,
        "v13b in netns n7 has MTU 1400; packets of up to 1514 bytes were sent to it through v13a in netns n1 (MTU 1500)"
    );
    assert!(
        f[0].fix.starts_with(
            "give both ends the same MTU: ip netns exec n7 ip link set dev v13b mtu 1500"
        ),
        "{}",
        f[0].fix
    );
    // Without packet sizes (classic tracepoint), the MTUs still speak.
    let f = run(
        &[DropGroup {
            max_len: 0,
            ..g.clone()
        }],
        &sender,
        &sender,
    );
    assert!(
        f[0].summary.contains("smaller than its peer v13a"),
        "{f:#?}"
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("size of the dropped packets is unknown")));
    // A peer namespace the sampler could not find is said to be missing, not absent.
    sender.peer_namespaces.clear();
    let f = run(&[g], &sender, &sender);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("could not find (link-netnsid 0 in netns n1)")),
        "{f:#?}"
    );
}

/// Drops on a veth whose other end (in a namespace not sampled itself) is down: whatever
/// their reason, the interface that carries nothing is the finding, with the command that
/// brings the other end up there.
#[test]
fn a_pair_whose_other_end_is_down_is_named_with_it() {
    let mut sender = raw(&[("links", fixture!("ip-link.peer-down.json"))]);
    sender.peer_namespaces.insert(
        0,
        crate::diagnose::raw::PeerNamespace {
            inode: 7,
            links: fixture!("ip-link.peer-down.other.json"),
        },
    );
    let g = DropGroup {
        function: Some("__dev_queue_xmit".into()),
        location: "__dev_queue_xmit+0xdd1".into(),
        reason: Some("QDISC_DROP".into()),
        protocol: Some("udp".into()),
        family: Some("ipv4".into()),
        count: 20,
        places: vec![(1, 2)],
        max_len: 62,
        ..DropGroup::default()
    };
    let f = run(std::slice::from_ref(&g), &sender, &sender);
    assert_eq!(f[0].cause, "nic", "{f:#?}");
    assert_eq!(
        f[0].summary,
        "nothing passes ev-va: ev-va in netns n1 has no carrier (operstate DOWN): its other end ev-vb in netns n7 is down"
    );
    assert_eq!(
        f[0].fix,
        "bring the other end up: ip netns exec n7 ip link set ev-vb up"
    );
    // With both ends up the qdisc family keeps the finding.
    let up = sender.commands["links"]
        .replace("\"NO-CARRIER\",", "")
        .replace("\"UP\"]", "\"UP\",\"LOWER_UP\"]");
    sender.commands.insert("links".into(), up);
    let f = run(std::slice::from_ref(&g), &sender, &sender);
    assert_eq!(f[0].cause, "qdisc", "{f:#?}");
    assert!(
        !f[0].evidence.iter().any(|e| e.starts_with("ip link: ")),
        "{f:#?}"
    );
}

#[test]
fn a_veth_peer_in_the_same_namespace_is_found_by_name() {
    let links = from_raw(&raw(&[("links", fixture!("ip-link.veth-same-netns.json"))])).links;
    let s1 = links.iter().find(|l| l.name == "s1").unwrap();
    let peer = s1.peer.as_ref().unwrap();
    assert_eq!(
        (peer.name.as_str(), peer.mtu, peer.netns),
        ("s0", 1500, None)
    );
}

fn routed(family: &str, src: &str, dst: &str, function: &str, reason: &str) -> DropGroup {
    DropGroup {
        addrs: Some((src.parse().unwrap(), dst.parse().unwrap())),
        ..udp_to(family, Some(4444), function, reason)
    }
}

/// h13a-b as captured, with its interface v13b (ifindex 2) and the given sysctls.
fn router(sysctls: &[(&str, &str)]) -> NsState {
    let mut st = from_raw(&raw(&[
        ("links", fixture!("ip-link.veth-peer-mtu1400.json")),
        ("routes4", fixture!("ip-route-all.rule-table.v4.json")),
        ("routes6", fixture!("ip-route-all.rule-table.v6.json")),
        ("rules4", fixture!("ip-rule.rule-table.v4.json")),
        ("rules6", fixture!("ip-rule.prohibit.v6.json")),
    ]));
    for (k, v) in sysctls {
        st.sysctls.insert((*k).into(), (*v).into());
    }
    st
}

fn run_state(groups: &[DropGroup], st: NsState) -> Vec<Finding> {
    let before = BTreeMap::from([(1, st.clone())]);
    let after = BTreeMap::from([(1, st)]);
    diagnose(&Window {
        groups,
        before: &before,
        after: &after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 2.0,
        samples_secs: 2.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    })
}

#[test]
fn routing_drops_name_the_rule_route_or_sysctl() {
    let mut g = routed(
        "ipv4",
        "10.66.0.1",
        "10.88.0.5",
        "ip_error",
        "NOT_SPECIFIED",
    );
    g.places = vec![(1, 2)];
    let mut st = router(&[("net.ipv4.conf.v13b.forwarding", "1")]);
    let queries = route_queries(
        std::slice::from_ref(&g),
        &BTreeMap::from([(1, st.clone())]),
        1,
    );
    assert_eq!(
        queries,
        [
            (1, "10.88.0.5".to_owned()),
            (1, "10.88.0.5 from 10.66.0.1 iif v13b".to_owned())
        ]
    );
    st.add_route_lookup(
        queries[1].1.clone(),
        Err("RTNETLINK answers: No route to host".into()),
    );
    let f = run_state(std::slice::from_ref(&g), st);
    assert_eq!(f[0].cause, "no_route");
    assert_eq!(
        f[0].summary,
        "the unreachable route `default` in table 100 takes packets to 10.88.0.5 in netns n1: 3 dropped"
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("iif v13b (in netns n1): RTNETLINK answers: No route to host")),
        "{f:#?}"
    );
    assert!(f[0]
        .fix
        .contains("ip netns exec n1 ip route del unreachable default table 100"));
    assert!(f[0]
        .fix
        .contains("ip rule del priority 32765 to 10.88.0.0/24 lookup 100"));

    let g6 = routed(
        "ipv6",
        "fd66::1",
        "fd88::5",
        "ip6_pkt_prohibit",
        "IP_INNOROUTES",
    );
    let f = run_state(&[g6], router(&[("net.ipv6.conf.all.forwarding", "1")]));
    assert!(
        f[0].fix
            .ends_with("ip -6 rule del priority 32765 to fd88::/64 prohibit"),
        "{f:#?}"
    );

    // A destination the rules send to main, which routes it, with forwarding off.
    let g = routed(
        "ipv4",
        "10.66.0.1",
        "10.66.0.9",
        "ip_error",
        "IP_INADDRERRORS",
    );
    let f = run_state(&[g], router(&[("net.ipv4.conf.all.forwarding", "0")]));
    assert_eq!(f[0].cause, "forwarding_disabled", "{f:#?}");
    assert!(f[0]
        .fix
        .contains("sysctl -w net.ipv4.conf.all.forwarding=1"));

    // No addresses: no lookup, and no invented one.
    let mut g = routed(
        "ipv4",
        "10.66.0.1",
        "10.88.0.5",
        "ip_error",
        "IP_INNOROUTES",
    );
    g.addrs = None;
    let f = run_state(&[g], router(&[("net.ipv4.conf.all.forwarding", "1")]));
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("addresses are unknown")),
        "{f:#?}"
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("route `unreachable default` in table 100")),
        "{f:#?}"
    );
    assert!(!f[0].fix.contains('<'), "{}", f[0].fix);
}

/// A gact `drop` and a police action on veth-b's ingress (captured on Debian's 6.12): the
/// TC_INGRESS drops are named by the action whose drops grew, with its filter and the
/// command that removes that filter; before the window the filters had dropped nothing.
#[test]
fn tc_actions_that_dropped_are_named_with_their_filter() {
    let json = fixture!("tc-filter.s.gact-police.json");
    let text = fixture!("tc-filter.s.gact-police.txt");
    let key = ("veth-b".to_owned(), "ingress".to_owned());
    let mut after = RawSnapshot::default();
    after.tc_filters.insert(key.clone(), json.clone());
    after.tc_filters_text.insert(key.clone(), text);
    let mut before = RawSnapshot::default();
    // The same filters with no packet seen yet.
    let zero = json
        .replace("\"packets\":15,\"drops\":15", "\"packets\":0,\"drops\":0")
        .replace("\"packets\":15,\"drops\":11", "\"packets\":0,\"drops\":0");
    before.tc_filters.insert(key, zero);
    let mut g = udp_to("ipv4", Some(7001), "__netif_receive_skb_core", "TC_INGRESS");
    g.count = 15;
    let f = run(&[g], &before, &after);
    assert_eq!(f[0].cause, "tc_bpf", "{f:#?}");
    assert_eq!(
        f[0].summary,
        "the tc filter flower pref 10 handle 0x1 protocol ip (dst_port 7001 eth_type ipv4 \
         ip_proto udp) at ingress on veth-b in netns n1 drops these packets: its action \
         `gact drop` dropped 15 packets between the samples (2.0 s)"
    );
    assert_eq!(
        f[0].fix,
        "ip netns exec n1 tc filter del dev veth-b ingress pref 10 handle 0x1 flower"
    );
    assert!(
        f[0].evidence.iter().any(|e| e.contains(
            "action police (index 1, rate 8Kbit burst 2Kb, drop over its rate): dropped +11 in the window (now 11 of 15 packets, 11 over the limit)"
        )),
        "{f:#?}"
    );
    // The police filter's port: its action, not the gact's that dropped more.
    let mut p = udp_to("ipv4", Some(7002), "__netif_receive_skb_core", "TC_INGRESS");
    p.count = 11;
    let f = run(&[p], &before, &after);
    assert!(
        f[0].summary.ends_with(
            "its police action dropped 11 packets over its rate between the samples (2.0 s) \
             (police (index 1, rate 8Kbit burst 2Kb, drop over its rate))"
        ),
        "{f:#?}"
    );
    assert!(
        f[0].fix.ends_with(
            "or remove the filter: ip netns exec n1 tc filter del dev veth-b ingress pref 20 \
             handle 800::800 u32"
        ),
        "{f:#?}"
    );
}
