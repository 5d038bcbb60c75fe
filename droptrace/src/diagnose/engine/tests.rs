use super::*;
use crate::diagnose::state::{Link, Qdisc, Rule, Socket};

struct Names;
impl NamespaceNames for Names {
    fn describe(&self, inode: u32) -> String {
        format!("netns n{inode}")
    }
    fn command_prefix(&self, inode: u32) -> String {
        format!("ip netns exec n{inode} ")
    }
    fn label(&self, inode: u32) -> String {
        format!("n{inode}")
    }
}

fn group(function: &str, reason: &str, count: u64) -> DropGroup {
    DropGroup {
        function: Some(function.into()),
        location: format!("{function}+0x10"),
        reason: Some(reason.into()),
        protocol: Some("tcp".into()),
        dport: Some(1678),
        count,
        places: vec![(1, 2)],
        max_len: 60,
        example: None,
        ..DropGroup::default()
    }
}

fn link(ifindex: u32, name: &str, mtu: u32) -> Link {
    Link {
        ifindex,
        name: name.into(),
        mtu,
        rx_dropped: 0,
        rx_missed: 0,
        rx_fifo: 0,
        rx_over: 0,
        rx_errors: 0,
        tx_dropped: 0,
        peer: None,
        link_netnsid: None,
        address: None,
        promisc: false,
        admin_up: true,
        no_carrier: false,
        oper_state: Some("UP".into()),
    }
}

fn rule(packets: u64) -> Rule {
    Rule {
        source: "nftables".into(),
        key: "inet filter input handle 7".into(),
        table: "inet filter".into(),
        chain: "input".into(),
        text: format!("tcp dport 1678 counter packets {packets} bytes 0 drop"),
        verdict: "drop".into(),
        packets: Some(packets),
        random: None,
        delete: "nft delete rule inet filter input handle 7".into(),
        is_policy: false,
        hook: Some("input".into()),
    }
}

fn run(groups: &[DropGroup], before: NsState, after: NsState) -> Vec<Finding> {
    let before = BTreeMap::from([(1, before)]);
    let after = BTreeMap::from([(1, after)]);
    run_in(groups, &before, &after)
}

/// The engine over several namespaces; drops without a place are in namespace 1.
fn run_in(
    groups: &[DropGroup],
    before: &BTreeMap<u32, NsState>,
    after: &BTreeMap<u32, NsState>,
) -> Vec<Finding> {
    diagnose(&Window {
        groups,
        before,
        after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 10.0,
        samples_secs: 10.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    })
}

fn state(rules: Vec<Rule>) -> NsState {
    NsState {
        rules,
        links: vec![link(2, "eth0", 1500)],
        ..NsState::default()
    }
}

#[test]
fn a_rule_whose_counter_grew_is_the_cause() {
    let f = run(
        &[group("nft_do_chain", "NETFILTER_DROP", 12)],
        state(vec![rule(3)]),
        state(vec![rule(15)]),
    );
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].cause, f[0].drops, f[0].rate),
        ("netfilter_rule", 12, 1.2)
    );
    assert_eq!(f[0].iface.as_deref(), Some("eth0"));
    assert!(
        f[0].summary.contains("`inet filter input: tcp dport 1678"),
        "{}",
        f[0].summary
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("(handle 7): counter +12 in the window, now 15")),
        "{f:#?}"
    );
    assert_eq!(
        f[0].fix,
        "ip netns exec n1 nft delete rule inet filter input handle 7"
    );
}

/// Findings for a namespace sampled only after the window (beyond the cap before it).
fn run_after_only(rules: Vec<Rule>) -> Vec<Finding> {
    let after = BTreeMap::from([(1, state(rules))]);
    diagnose(&Window {
        groups: &[group("nft_do_chain", "NETFILTER_DROP", 50)],
        before: &BTreeMap::new(),
        after: &after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 10.0,
        samples_secs: 10.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    })
}

#[test]
fn a_namespace_sampled_only_after_the_window_names_its_counted_rule_and_says_so() {
    let f = run_after_only(vec![rule(50)]);
    assert_eq!(f[0].cause, "netfilter_rule", "{f:#?}");
    assert!(
        f[0].summary.contains("sampled only after the window"),
        "{}",
        f[0].summary
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("(handle 7): counter now 50; no sample before the drops")),
        "{f:#?}"
    );
    assert_eq!(
        f[0].fix,
        "ip netns exec n1 nft delete rule inet filter input handle 7"
    );
    // A rule of another port that counted is not blamed when one of this port did.
    let mut other = rule(9);
    other.key = "inet filter input handle 8".into();
    other.text = "tcp dport 22 counter packets 9 bytes 0 drop".into();
    let f = run_after_only(vec![other.clone(), rule(50)]);
    assert!(f[0].fix.ends_with("handle 7"), "{f:#?}");
    // Two counted rules, neither of this port: nothing is claimed.
    let mut third = other.clone();
    third.key = "inet filter input handle 9".into();
    let f = run_after_only(vec![other, third]);
    assert!(
        f[0].summary
            .contains("which rule is unknown without a sample before the drops"),
        "{f:#?}"
    );
}

#[test]
fn json_names_the_namespace_without_the_word() {
    struct InPod;
    impl NamespaceNames for InPod {
        fn describe(&self, _inode: u32) -> String {
            "pod shop/web-7d9f".into()
        }
        fn command_prefix(&self, _inode: u32) -> String {
            String::new()
        }
        fn label(&self, _inode: u32) -> String {
            "nginx:812".into()
        }
        fn workload(&self, _inode: u32) -> Option<Workload> {
            Some(Workload {
                container: crate::pipeline::names::Container {
                    id: "4f1c".into(),
                    name: "web".into(),
                    runtime: "containerd".into(),
                },
                pod: Some(crate::pipeline::names::Pod {
                    name: "web-7d9f".into(),
                    namespace: "shop".into(),
                    uid: None,
                }),
            })
        }
    }
    let groups = [group("nft_do_chain", "NETFILTER_DROP", 12)];
    let f = run(&groups, state(vec![rule(3)]), state(vec![rule(15)]));
    let json = serde_json::to_value(&f[0]).unwrap();
    assert_eq!(json["netns"], "n1", "{json}");
    assert_eq!(
        (&json["pod"], &json["container"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    let (before, after) = (
        BTreeMap::from([(1, state(vec![rule(3)]))]),
        BTreeMap::from([(1, state(vec![rule(15)]))]),
    );
    let f = diagnose(&Window {
        groups: &groups,
        before: &before,
        after: &after,
        names: &InPod,
        default_netns: 1,
        host_netns: 1,
        secs: 10.0,
        samples_secs: 10.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    });
    let json = serde_json::to_value(&f[0]).unwrap();
    assert_eq!(
        (&json["netns"], &json["pod"], &json["container"]),
        (
            &serde_json::json!("nginx:812"),
            &serde_json::json!("shop/web-7d9f"),
            &serde_json::json!("web")
        ),
        "{json}"
    );
    // The text keeps saying where in words.
    assert_eq!(f[0].netns.as_deref(), Some("pod shop/web-7d9f"));
}

#[test]
fn without_a_moving_counter_it_says_so_or_finds_conntrack_full() {
    let f = run(
        &[group("nf_hook_slow", "NETFILTER_DROP", 5)],
        state(vec![]),
        state(vec![]),
    );
    assert_eq!(f[0].cause, "netfilter_rule");
    assert!(
        f[0].summary.contains("no rule's counter shows which"),
        "{f:#?}"
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("no nftables or iptables rule")));

    let mut full = state(vec![]);
    full.sysctls
        .insert("net.netfilter.nf_conntrack_count".into(), "65536".into());
    full.sysctls
        .insert("net.netfilter.nf_conntrack_max".into(), "65536".into());
    let f = run(
        &[group("nf_hook_slow", "NETFILTER_DROP", 5)],
        state(vec![]),
        full,
    );
    assert_eq!(f[0].cause, "conntrack_full", "{f:#?}");
    assert!(f[0].fix.contains("nf_conntrack_max=131072"));
}

#[test]
fn counters_alone_reveal_listen_overflows() {
    let mut before = state(vec![]);
    before
        .counters
        .insert(("TcpExt".into(), "ListenOverflows".into()), 2);
    let mut after = before.clone();
    after
        .counters
        .insert(("TcpExt".into(), "ListenOverflows".into()), 50);
    after.sockets.push(Socket {
        proto: "tcp".into(),
        local_ip: "0.0.0.0".into(),
        port: 8080,
        device: None,
        recv_q: 129,
        send_q: 128,
        process: Some("server (pid 42)".into()),
        rcvbuf: None,
        drops: None,
    });
    let f = run(&[], before, after);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!((f[0].cause, f[0].drops), ("listen_overflow", 48));
    assert!(
        f[0].summary.contains("port 8080 (server (pid 42))"),
        "{}",
        f[0].summary
    );
    let overflow_lines = f[0]
        .evidence
        .iter()
        .filter(|e| e.contains("ListenOverflows +48"))
        .count();
    assert_eq!(overflow_lines, 1, "{:#?}", f[0].evidence);
}

#[test]
fn benign_drops_rank_after_real_causes() {
    let mut before = state(vec![]);
    before.qdiscs.push(Qdisc {
        dev: "eth0".into(),
        kind: "tbf".into(),
        handle: "8001:".into(),
        parent: None,
        root: true,
        options: serde_json::json!({"rate": 125_000}),
        limit: None,
        rate: Some(125_000),
        bytes: None,
        packets: None,
        drops: Some(0),
        overlimits: Some(0),
        requeues: None,
        backlog: None,
        qlen: None,
    });
    let mut after = before.clone();
    after.qdiscs[0].drops = Some(7);
    let f = run(
        &[
            group("unix_release_sock", "UNIX_DISCONNECT", 500),
            group("__dev_queue_xmit", "QDISC_DROP", 7),
        ],
        before,
        after,
    );
    assert_eq!(f[0].cause, "qdisc", "{f:#?}");
    assert!(!f[0].benign && f.last().unwrap().benign);
    assert!(f[0].evidence.iter().any(|e| e.contains("dropped +7")));
}

#[test]
fn a_small_mtu_is_found_in_the_peer_namespace() {
    let mut g = group("__dev_forward_skb2", "NOT_SPECIFIED", 20);
    g.max_len = 542;
    let here = state(vec![]);
    let mut peer = NsState::default();
    peer.links.push(link(2, "veth-b", 100));
    let before = BTreeMap::from([(1, here.clone()), (2, peer.clone())]);
    let after = BTreeMap::from([(1, here), (2, peer)]);
    let f = diagnose(&Window {
        groups: &[g],
        before: &before,
        after: &after,
        names: &Names,
        default_netns: 1,
        host_netns: 1,
        secs: 1.0,
        samples_secs: 1.0,
        conntrack_full_log_lines: 0,
        details_unknown: None,
        earlier: false,
    });
    assert_eq!(f[0].cause, "mtu", "{f:#?}");
    assert!(
        f[0].summary
            .contains("veth-b in netns n2 has MTU 100; packets of up to 542 bytes were sent to it"),
        "{}",
        f[0].summary
    );
    assert!(
        f[0].fix
            .starts_with("ip netns exec n2 ip link set dev veth-b mtu 1500"),
        "{}",
        f[0].fix
    );
}

#[test]
fn interface_counters_that_the_drops_explain_are_not_repeated() {
    let mut g = group("__dev_forward_skb2", "NOT_SPECIFIED", 20);
    g.max_len = 542;
    let mut before = state(vec![]);
    before.links.push(link(3, "veth-b", 100));
    let mut after = before.clone();
    after
        .counters
        .insert(("dev:eth0".into(), "tx_drop".into()), 20);
    after
        .counters
        .insert(("Ip".into(), "OutDiscards".into()), 19);
    let f = run(&[g.clone()], before.clone(), after.clone());
    assert_eq!(
        f.iter().map(|f| f.cause).collect::<Vec<_>>(),
        ["mtu"],
        "{f:#?}"
    );

    // Without drops to explain them, the same counters are findings.
    let f = run(&[], before, after);
    assert_eq!(f[0].cause, "nic", "{f:#?}");
}

#[test]
fn global_sysctls_are_cited_and_set_in_the_host_namespace() {
    let mut g = group("__udp_enqueue_schedule_skb", "SOCKET_RCVBUFF", 7);
    g.protocol = Some("udp".into());
    let mut after = state(vec![]);
    for k in ["net.core.rmem_default", "net.core.rmem_max"] {
        after.sysctls.insert(k.into(), "212992".into());
    }
    // The namespace has its own copy: cited as is, set inside it.
    let f = run(std::slice::from_ref(&g), state(vec![]), after.clone());
    assert_eq!(f[0].cause, "socket_rcvbuf", "{f:#?}");
    assert!(
        f[0].fix.contains(
            "(SO_RCVBUF, bounded by ip netns exec n1 sysctl -w net.core.rmem_max=8388608)"
        ),
        "{}",
        f[0].fix
    );
    assert!(f[0]
        .evidence
        .contains(&"net.core.rmem_max = 212992".to_owned()));
    // Absent (6.1) or read-only (6.12, 6.18) inside it: the global value, set on the host.
    for k in ["net.core.rmem_default", "net.core.rmem_max"] {
        after.global_sysctls.insert(k.into());
    }
    let f = run(&[g], state(vec![]), after);
    assert_eq!(
        f[0].fix,
        "let the application read faster or give it a bigger buffer (SO_RCVBUF, bounded by \
         sysctl -w net.core.rmem_max=8388608 in the host namespace (net.core.rmem_max is \
         global: it cannot be set inside netns n1))"
    );
    assert!(
        f[0].evidence.contains(
            &"net.core.rmem_max = 212992 (global: netns n1 has no copy of its own)".to_owned()
        ),
        "{:#?}",
        f[0].evidence
    );
}

#[test]
fn a_cgroup_skb_program_explains_socket_filter_drops() {
    use crate::diagnose::{
        evidence::bpftool::CgroupAttachment,
        programs::{BpfProgram, Holder},
    };
    let mut before = state(vec![]);
    before.counters.insert(("Udp".into(), "InErrors".into()), 0);
    let mut after = before.clone();
    after.counters.insert(("Udp".into(), "InErrors".into()), 5);
    let plain_after = after.clone();
    after.cgroup_bpf = vec![CgroupAttachment {
        cgroup: "/sys/fs/cgroup/unified/web".into(),
        prog_id: 7,
        attach_type: "cgroup_inet_ingress".into(),
        name: Some("dt_cgroup_drop".into()),
    }];
    after.programs.insert(
        7,
        BpfProgram {
            id: 7,
            prog_type: "cgroup_skb".into(),
            name: Some("dt_cgroup_drop".into()),
            uid: Some(0),
            holders: vec![Holder {
                pid: 42,
                comm: "agent".into(),
                cmdline: Some("agent --drop".into()),
                via: "cgroup link 3".into(),
            }],
            ..BpfProgram::default()
        },
    );
    let mut g = group("sk_filter_trim_cap", "SOCKET_FILTER", 5);
    g.protocol = Some("udp".into());
    let f = run(std::slice::from_ref(&g), before.clone(), after);
    assert_eq!(f.len(), 1, "InErrors repeats the filter's drops: {f:#?}");
    assert!(
        f[0].summary.contains(
            "`dt_cgroup_drop` (id 7) attached at ingress of cgroup /sys/fs/cgroup/unified/web"
        ),
        "{}",
        f[0].summary
    );
    assert!(f[0].summary.contains("by pid 42 agent: `agent --drop`"));
    assert!(f[0].fix.starts_with("stop or reconfigure pid 42 (agent)"));
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("cgroup_inet_ingress: BPF program dt_cgroup_drop (id 7, cgroup_skb")));

    // No cgroup program: nothing is claimed, the reason's explanation stays.
    let f = run(&[g], before, plain_after);
    assert!(!f[0].summary.contains("cgroup skb"), "{}", f[0].summary);
}

fn listener(local_ip: &str, port: u16, device: Option<&str>) -> Socket {
    Socket {
        proto: "tcp".into(),
        local_ip: local_ip.into(),
        port,
        device: device.map(str::to_owned),
        recv_q: 0,
        send_q: 128,
        process: Some("web (pid 7)".into()),
        rcvbuf: None,
        drops: None,
    }
}

/// SYNs to 10.0.0.2:1678 refused (NO_SOCKET) while something holds the port: the socket
/// that does not take them is named with why, and the fix changes its address.
#[test]
fn a_listener_on_the_wrong_address_is_named_with_why() {
    let mut g = group("tcp_v4_rcv", "NO_SOCKET", 5);
    g.addrs = Some(("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
    for (socket, why, fix) in [
        (
            listener("127.0.0.1", 1678, None),
            "the port is bound by web (pid 7), but only on the loopback address 127.0.0.1:1678, and these go to 10.0.0.2;",
            "make web (pid 7) listen on 10.0.0.2:1678 or on every address (0.0.0.0:1678) instead of 127.0.0.1:1678",
        ),
        (
            listener("10.0.0.9", 1678, None),
            "the port is bound by web (pid 7), but only on 10.0.0.9:1678, and these go to 10.0.0.2",
            "instead of 10.0.0.9:1678",
        ),
        (
            listener("0.0.0.0", 1678, Some("eth1")),
            "the port is bound by web (pid 7), but it is bound to device eth1, and these arrive on eth0",
            "make web (pid 7) listen where these packets go (10.0.0.2:1678), not only on 0.0.0.0%eth1:1678",
        ),
    ] {
        let mut after = NsState::default();
        after.links.push(link(2, "eth0", 1500));
        after.sockets.push(socket);
        let f = run(std::slice::from_ref(&g), NsState::default(), after);
        assert_eq!(f[0].cause, "no_listener");
        assert!(f[0].summary.contains(why), "{}", f[0].summary);
        assert!(f[0].fix.contains(fix), "{}", f[0].fix);
    }
}

/// Nothing on the port where the packets arrive, but a socket on it in another sampled
/// namespace: that one is named.
#[test]
fn a_listener_in_another_namespace_is_named() {
    let mut g = group("tcp_v4_rcv", "NO_SOCKET", 5);
    g.addrs = Some(("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()));
    let mut other = NsState::default();
    other.sockets.push(listener("0.0.0.0", 1678, None));
    let before = BTreeMap::from([(1, NsState::default()), (3, other.clone())]);
    let after = BTreeMap::from([(1, NsState::default()), (3, other)]);
    let f = run_in(&[g], &before, &after);
    assert_eq!(
        f[0].summary,
        "nothing listens on tcp port 1678 in netns n1, where these packets arrive; a socket on \
         that port listens in netns n3 by web (pid 7): 5 packets were refused"
    );
    assert!(
        f[0].fix.starts_with("run the service in netns n1"),
        "{}",
        f[0].fix
    );
}

/// The policies and the state captured in a namespace (fixtures/netlink/xfrm_*.bin).
fn xfrm_state() -> NsState {
    let read = |name: &str| {
        let path = format!("{}/fixtures/netlink/{name}", env!("CARGO_MANIFEST_DIR"));
        crate::kernel::xfrm::parse_dump(&std::fs::read(path).unwrap()).unwrap()
    };
    NsState {
        xfrm_policies: read("xfrm_getpolicy.6.12.bin").policies,
        xfrm_states: read("xfrm_getsa.6.12.bin").states,
        ..state(vec![])
    }
}

fn xfrm_group(dport: u16, count: u64) -> DropGroup {
    DropGroup {
        protocol: Some("udp".into()),
        dport: Some(dport),
        addrs: Some(("10.9.0.2".parse().unwrap(), "10.9.0.1".parse().unwrap())),
        ..group("udp_queue_rcv_one_skb", "XFRM_POLICY", count)
    }
}

/// `after` with the policy for `dport` used in the window and `counter` grown by `n`.
fn xfrm_window(dport: u16, counter: &str, n: u64) -> (NsState, NsState) {
    let mut before = xfrm_state();
    before.counters.insert(("Xfrm".into(), counter.into()), 0);
    let mut after = before.clone();
    for p in after
        .xfrm_policies
        .iter_mut()
        .filter(|p| p.selector.dport == dport)
    {
        p.use_time = p.add_time + 5;
    }
    after.counters.insert(("Xfrm".into(), counter.into()), n);
    (before, after)
}

#[test]
fn an_ipsec_policy_that_blocks_is_named_with_its_delete() {
    let (before, after) = xfrm_window(5000, "InPolBlock", 7);
    let f = run(&[xfrm_group(5000, 7)], before, after);
    assert_eq!((f[0].cause, f[0].drops), ("xfrm", 7), "{f:#?}");
    let sel = "src 10.9.0.2/32 dst 10.9.0.1/32 proto udp dport 5000";
    assert_eq!(
        f[0].summary,
        format!("7 packets udp 10.9.0.2 -> 10.9.0.1:5000 in netns n1 refused by the IPsec policy `{sel}`: its action is block")
    );
    assert!(
        f[0].evidence.iter().any(
            |e| e.contains(&format!("{sel} dir in action block priority 10"))
                && e.contains("matched in the window")
        ),
        "{f:#?}"
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("XfrmInPolBlock +7")),
        "{f:#?}"
    );
    assert!(
        f[0].fix.starts_with(&format!(
            "ip netns exec n1 ip xfrm policy delete dir in {sel} "
        )),
        "{}",
        f[0].fix
    );
}

#[test]
fn an_ipsec_policy_whose_template_was_not_met_says_the_sender_does_not_protect() {
    let (before, after) = xfrm_window(5001, "InTmplMismatch", 3);
    let f = run(&[xfrm_group(5001, 3)], before, after);
    assert_eq!(f[0].cause, "xfrm", "{f:#?}");
    assert!(
        f[0].summary.contains("arrived without the esp the IPsec policy `src 10.9.0.2/32 dst 10.9.0.1/32 proto udp dport 5001` demands"),
        "{}",
        f[0].summary
    );
    // The one state protects the other direction.
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.ends_with("no state (SA) from 10.9.0.2 to 10.9.0.1")),
        "{f:#?}"
    );
    assert!(
        f[0].fix
            .starts_with("set up the SA on the sender (10.9.0.2)"),
        "{}",
        f[0].fix
    );
}

#[test]
fn an_ipsec_check_no_policy_matches_points_at_the_default_policy() {
    let (before, after) = xfrm_window(0, "InNoPols", 2);
    let f = run(&[xfrm_group(6000, 2)], before, after);
    assert_eq!(f[0].cause, "xfrm", "{f:#?}");
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e
                .contains("none of its 4 policies matches udp 10.9.0.2 -> 10.9.0.1:6000 (dir in)")),
        "{f:#?}"
    );
    assert_eq!(
        f[0].fix,
        "add a policy for them, or accept by default: ip netns exec n1 ip xfrm policy setdefault in accept"
    );
}

fn evidence_fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/evidence/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A drop group of any cause has its own path asked of the kernel and said: delivered
/// here (so routing is not what drops it), or forwarded back out where it came in.
#[test]
fn every_big_group_has_its_own_path_said() {
    let mut st = state(vec![rule(15)]);
    st.links = vec![link(2, "v13b", 1500)];
    let mut g = group("nft_do_chain", "NETFILTER_DROP", 12);
    g.addrs = Some(("10.66.0.1".parse().unwrap(), "10.66.0.2".parse().unwrap()));
    let after = BTreeMap::from([(1, st.clone())]);
    let queries = route_queries(std::slice::from_ref(&g), &after, 1);
    assert_eq!(
        queries,
        [(1, "10.66.0.2 from 10.66.0.1 iif v13b".to_owned())]
    );
    let mut answered = st.clone();
    answered.add_route_lookup(
        queries[0].1.clone(),
        Ok(evidence_fixture("ip-route-get.local.v4.json")),
    );
    let mut before = state(vec![rule(3)]);
    before.links = st.links.clone();
    let f = run(std::slice::from_ref(&g), before.clone(), answered);
    assert_eq!(f[0].cause, "netfilter_rule");
    assert!(
        f[0].evidence.iter().any(|e| e
            == "path: ip route get 10.66.0.2 from 10.66.0.1 iif v13b (in netns n1): local dev lo (table local) (delivered to this host: routing is not what drops it)"),
        "{f:#?}"
    );
    // A packet the kernel would send back out the interface it came in on.
    g.addrs = Some(("10.66.0.1".parse().unwrap(), "10.88.0.5".parse().unwrap()));
    let mut forwarded = st;
    forwarded.add_route_lookup(
        "10.88.0.5 from 10.66.0.1 iif v13b".into(),
        Ok(evidence_fixture("ip-route-get.forward.v4.json")),
    );
    let f = run(std::slice::from_ref(&g), before, forwarded);
    assert!(
        f[0].evidence.iter().any(|e| e.ends_with(
            "unicast dev v13b (not for this host: it would be forwarded back out v13b, where it came in)"
        )),
        "{f:#?}"
    );
}

fn unheard(dst: &str, sport: u16, dport: u16) -> DropGroup {
    DropGroup {
        protocol: Some("udp".into()),
        dport: Some(dport),
        sport: Some(sport),
        addrs: Some(("10.0.0.5".parse().unwrap(), dst.parse().unwrap())),
        ..group("__udp4_lib_rcv", "NO_SOCKET", 3)
    }
}

fn with_port_range() -> NsState {
    let mut st = state(vec![]);
    st.sysctls
        .insert("net.ipv4.ip_local_port_range".into(), "32768\t60999".into());
    st
}

/// Packets nothing listens for are housekeeping only where the packet and the state say
/// so: multicast with no socket on its port; a reply from a server's port to a client
/// port of the ephemeral range with no socket on it. A stray packet from one high port
/// to another, or one for a port a socket holds, stays a finding.
#[test]
fn housekeeping_among_unheard_packets_is_decided_from_the_packet_and_the_state() {
    let st = with_port_range();
    let f = run(
        &[unheard("224.0.0.251", 5353, 5353)],
        st.clone(),
        st.clone(),
    );
    assert_eq!((f[0].cause, f[0].benign), ("no_listener", true), "{f:#?}");
    assert!(
        f[0].summary
            .contains("multicast or broadcast nobody joined"),
        "{}",
        f[0].summary
    );
    let f = run(&[unheard("10.0.0.9", 53, 41234)], st.clone(), st.clone());
    assert!(f[0].benign, "{f:#?}");
    assert!(
        f[0].summary
            .starts_with("3 udp packets from 10.0.0.5:53 to the client port 41234 in netns n1, whose socket is gone"),
        "{}",
        f[0].summary
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("ephemeral range 32768-60999")));
    // From a high port to a high port: nothing says it is a reply.
    let f = run(&[unheard("10.0.0.9", 40001, 41234)], st.clone(), st.clone());
    assert!(!f[0].benign, "{f:#?}");
    assert!(f[0]
        .summary
        .starts_with("nothing listens on udp port 41234"));
    // Without the range read, nothing is assumed.
    let bare = state(vec![]);
    let f = run(&[unheard("10.0.0.9", 53, 41234)], bare.clone(), bare);
    assert!(!f[0].benign, "{f:#?}");
    // A socket holds the multicast port: not housekeeping, it is named.
    let mut held = st;
    held.sockets.push(Socket {
        proto: "udp".into(),
        local_ip: "10.0.0.9".into(),
        port: 5353,
        device: None,
        recv_q: 0,
        send_q: 0,
        process: Some("avahi (pid 7)".into()),
        rcvbuf: None,
        drops: None,
    });
    let f = run(&[unheard("224.0.0.251", 5353, 5353)], held.clone(), held);
    assert!(!f[0].benign, "{f:#?}");
}

/// TCP segments to a port no socket holds are late segments of closed connections
/// (housekeeping) only when droptrace read their flags and none opens a connection; one
/// SYN among them makes it a refused connection, even from a server's port to a client
/// port; flags not read, nothing is assumed.
#[test]
fn tcp_segments_nothing_listens_for_are_housekeeping_only_without_a_syn() {
    let st = with_port_range();
    let tcp = |segments| DropGroup {
        protocol: Some("tcp".into()),
        tcp_segments: segments,
        ..group("tcp_v4_rcv", "NO_SOCKET", 5)
    };
    let late = tcp(Some((0, 5)));
    let late = DropGroup {
        sport: Some(40000),
        dport: Some(8080),
        addrs: Some(("10.0.0.5".parse().unwrap(), "10.0.0.9".parse().unwrap())),
        ..late
    };
    let f = run(std::slice::from_ref(&late), st.clone(), st.clone());
    assert_eq!((f[0].cause, f[0].benign), ("no_listener", true), "{f:#?}");
    assert!(
        f[0].summary.starts_with(
            "5 tcp segments from 10.0.0.5:40000 to port 8080 in netns n1, none of the 5 whose flags were read a connection attempt"
        ),
        "{}",
        f[0].summary
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("none was a connection attempt (SYN)")));
    // Two SYNs among them: connections refused, even from a server's port to a client's.
    let refused = DropGroup {
        tcp_segments: Some((2, 3)),
        sport: Some(443),
        dport: Some(41234),
        ..late.clone()
    };
    let f = run(&[refused], st.clone(), st.clone());
    assert!(!f[0].benign, "{f:#?}");
    assert!(
        f[0].summary
            .starts_with("nothing listens on tcp port 41234"),
        "{}",
        f[0].summary
    );
    assert!(f[0]
        .evidence
        .iter()
        .any(|e| e.contains("2 were connection attempts (SYN)")));
    // Flags not read: not housekeeping on the port alone.
    let unknown = DropGroup {
        tcp_segments: None,
        ..late
    };
    let f = run(&[unknown], st.clone(), st);
    assert!(!f[0].benign, "{f:#?}");
}

/// A TCP drop of a reason no family knows, at an established socket: the connection whose
/// own drop counter grew by them is named with its peer, state and owner, in the evidence
/// and (its growth being the drops') in the summary; one on another port is not.
#[test]
fn the_connection_that_counted_a_drop_is_named() {
    use crate::diagnose::state::Connection;
    let conn = |peer_port, port, drops| Connection {
        local_ip: "10.98.0.2".into(),
        port,
        peer_ip: "10.98.0.1".into(),
        peer_port,
        state: "ESTAB".into(),
        process: Some("nginx (pid 30)".into()),
        drops: Some(drops),
        inode: Some(u64::from(peer_port)),
    };
    let mut before = state(vec![]);
    before.connections = vec![conn(60680, 8080, 2), conn(60690, 9090, 0)];
    let mut after = state(vec![]);
    after.connections = vec![conn(60680, 8080, 7), conn(60690, 9090, 4)];
    let g = DropGroup {
        dport: Some(8080),
        sport: Some(60680),
        addrs: Some(("10.98.0.1".parse().unwrap(), "10.98.0.2".parse().unwrap())),
        ..group("tcp_validate_incoming", "TCP_INVALID_SEQUENCE", 5)
    };
    // A later connection between the same two ends (another inode) counts from 0.
    let mut reused = after.clone();
    reused.connections[0].inode = Some(1);
    reused.connections[0].drops = Some(5);
    let f = run(std::slice::from_ref(&g), before.clone(), reused);
    assert!(
        f[0].evidence.iter().any(|e| e.contains("drops +5 (now 5)")),
        "{:#?}",
        f[0].evidence
    );
    let f = run(&[g], before, after);
    assert_eq!(f[0].cause, "other", "{f:#?}");
    assert!(
        f[0].evidence.iter().any(|e| e.starts_with(
            "ss: the drop counter of 1 connection on port 8080 grew between the samples"
        ) && e.contains(
            "tcp 10.98.0.2:8080 <- 10.98.0.1:60680 (ESTAB) of nginx (pid 30) drops +5 (now 7)"
        )),
        "{:#?}",
        f[0].evidence
    );
    assert!(
        f[0].summary.ends_with(
            "; counted by the connection tcp 10.98.0.2:8080 <- 10.98.0.1:60680 (ESTAB) of nginx (pid 30)"
        ),
        "{}",
        f[0].summary
    );
}

/// XDP verdicts droptrace counted itself: the finding names the program of the group (not
/// merely the first XDP program on the interface), with the exact count, and says how to
/// detach it; without its attachment sampled it still names it by id.
#[test]
fn xdp_verdicts_name_their_program_with_the_exact_count() {
    use crate::diagnose::programs::BpfAttachment;
    let attachment = |id: u32, name: &str| BpfAttachment {
        dev: "eth0".into(),
        hook: "xdp".into(),
        prog_id: id,
        name: name.into(),
        label: None,
        tag: None,
        detach: "ip link set dev eth0 xdp off".into(),
    };
    let verdicts = DropGroup {
        function: Some("xdp dt_xdp_udp".into()),
        location: "xdp dt_xdp_udp (id 42)".into(),
        reason: Some("XDP_DROP".into()),
        count: 40,
        places: vec![(1, 2)],
        ..DropGroup::default()
    };
    let mut after = state(vec![]);
    after.bpf = vec![attachment(7, "other"), attachment(42, "dt_xdp_udp")];
    let f = run(std::slice::from_ref(&verdicts), state(vec![]), after);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].cause, "xdp");
    assert_eq!(f[0].drops, 40);
    assert_eq!(f[0].iface.as_deref(), Some("eth0"));
    assert_eq!(
        f[0].summary,
        "the BPF program `dt_xdp_udp` (id 42) attached at xdp on eth0 in netns n1 returned \
         XDP_DROP for 40 frames"
    );
    assert!(
        f[0].evidence.iter().any(|e| e
            == "droptrace: the XDP program `dt_xdp_udp` (id 42) returned XDP_DROP 40 times on \
                eth0 in netns n1, counted exactly by a fexit program on it; none of these \
                frames is counted again at kfree_skb"),
        "{:#?}",
        f[0].evidence
    );
    assert!(
        f[0].fix
            .ends_with("ip netns exec n1 ip link set dev eth0 xdp off"),
        "{}",
        f[0].fix
    );

    // Its attachment not sampled: named by id all the same.
    let f = run(
        std::slice::from_ref(&verdicts),
        state(vec![]),
        state(vec![]),
    );
    assert_eq!(f[0].cause, "xdp");
    assert_eq!(
        f[0].summary,
        "the XDP program `dt_xdp_udp` (id 42) on eth0 in netns n1 returned XDP_DROP for 40 \
         frames"
    );
    assert!(f[0].fix.contains("bpftool prog show id 42"), "{}", f[0].fix);

    // An XDP exception counted nowhere else: the same finding, said as what happened.
    let failed = DropGroup {
        reason: Some("XDP_REDIRECT failed (err -22)".into()),
        count: 20,
        ..verdicts
    };
    let f = run(&[failed], state(vec![]), state(vec![]));
    assert_eq!(f[0].cause, "xdp");
    assert_eq!(
        f[0].summary,
        "the XDP program `dt_xdp_udp` (id 42) on eth0 in netns n1 had XDP_REDIRECT failed \
         (err -22) for 20 frames"
    );
    assert!(
        f[0].evidence.iter().any(|e| e
            == "droptrace: the XDP program `dt_xdp_udp` (id 42) had XDP_REDIRECT failed (err \
                -22) 20 times on eth0 in netns n1, counted exactly at the xdp tracepoints; \
                these frames are counted nowhere else"),
        "{:#?}",
        f[0].evidence
    );
}

/// A drop by the neighbour layer names the entry its route sends it by, as the kernel
/// holds it after the window: FAILED, so the next hop does not answer ARP.
#[test]
fn a_neighbour_drop_names_the_next_hops_entry() {
    let mut va = link(2, "ev-va", 1500);
    va.address = Some("9e:5b:00:00:00:01".into());
    let mut st = NsState {
        links: vec![va],
        ..NsState::default()
    };
    let mut g = group("neigh_invalidate", "NEIGH_FAILED", 25);
    g.protocol = Some("udp".into());
    g.addrs = Some(("10.77.1.1".parse().unwrap(), "10.77.1.9".parse().unwrap()));
    let after = BTreeMap::from([(1, st.clone())]);
    let queries = route_queries(std::slice::from_ref(&g), &after, 1);
    assert_eq!(queries, [(1, "10.77.1.9".to_owned())], "on the way out");
    st.add_route_lookup(
        queries[0].1.clone(),
        Ok(evidence_fixture("ip-route-get.link.v4.json")),
    );
    st.neighbours = crate::diagnose::evidence::neigh::parse_neighbours(&evidence_fixture(
        "ip-neigh.failed.json",
    ))
    .unwrap();
    let f = run(std::slice::from_ref(&g), NsState::default(), st);
    assert!(
        f[0].evidence.iter().any(|e| e
            == "neighbour: ip neigh show 10.77.1.9 dev ev-va (in netns n1): 10.77.1.9 FAILED on ev-va (unresolved: 10.77.1.9 does not answer ARP on ev-va)"),
        "{f:#?}"
    );
    assert!(
        f[0].summary.contains(
            "the next hop 10.77.1.9 does not answer ARP on ev-va (its neighbour entry is FAILED)"
        ),
        "{}",
        f[0].summary
    );
    assert!(
        f[0].fix
            .contains("ip netns exec n1 ip neigh show 10.77.1.9 dev ev-va"),
        "{}",
        f[0].fix
    );
}

/// On a pair device, the entry's link-layer address is compared with the other end's:
/// a permanent entry pointing elsewhere sends frames to no one.
#[test]
fn a_next_hop_entry_is_compared_with_the_pairs_other_end() {
    let mut a = link(2, "ev-va", 1500);
    a.address = Some("9e:5b:00:00:00:01".into());
    a.peer = Some(crate::diagnose::state::Peer {
        netns: Some(3),
        ifindex: 7,
        name: "ev-vb".into(),
        mtu: 1500,
        admin_up: true,
        address: Some("9e:5b:00:00:00:02".into()),
        master: None,
    });
    let mut b = link(7, "ev-vb", 1500);
    b.address = Some("9e:5b:00:00:00:02".into());
    let mut st = NsState {
        links: vec![a],
        ..NsState::default()
    };
    let peer = NsState {
        links: vec![b],
        ..NsState::default()
    };
    let mut g = group("nft_do_chain", "NETFILTER_DROP", 4);
    g.addrs = Some(("10.77.1.1".parse().unwrap(), "10.77.1.9".parse().unwrap()));
    g.function = Some("ip_finish_output2".into());
    st.add_route_lookup(
        "10.77.1.9".into(),
        Ok(evidence_fixture("ip-route-get.link.v4.json")),
    );
    let wrong =
        r#"[{"dst":"10.77.1.9","dev":"ev-va","lladdr":"02:00:00:00:00:99","state":["PERMANENT"]}]"#;
    st.neighbours = crate::diagnose::evidence::neigh::parse_neighbours(wrong).unwrap();
    let before = BTreeMap::from([(1, NsState::default()), (3, peer.clone())]);
    let after = BTreeMap::from([(1, st.clone()), (3, peer.clone())]);
    let f = run_in(std::slice::from_ref(&g), &before, &after);
    assert!(
        f[0].evidence.iter().any(|e| e.ends_with(
            "(not the address of ev-vb in n3 (9e:5b:00:00:00:02), the other end of ev-va: frames sent by it reach no one there)"
        )),
        "{f:#?}"
    );
    // The other end a port of a bridge: the address is some host's behind it, no claim.
    let mut bridged = st.clone();
    if let Some(p) = bridged.links[0].peer.as_mut() {
        p.master = Some("br0".into());
    }
    let after = BTreeMap::from([(1, bridged), (3, peer.clone())]);
    let f = run_in(std::slice::from_ref(&g), &before, &after);
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.starts_with("neighbour: ") && e.ends_with("PERMANENT on ev-va (resolved)")),
        "{f:#?}"
    );
    // The right address is said to be the receiver's.
    st.neighbours[0].lladdr = Some("9E:5B:00:00:00:02".into());
    let after = BTreeMap::from([(1, st.clone()), (3, peer.clone())]);
    let f = run_in(std::slice::from_ref(&g), &before, &after);
    assert!(
        f[0].evidence.iter().any(|e| e
            .ends_with("(the address of ev-vb in n3, the other end of ev-va: the right receiver)")),
        "{f:#?}"
    );
    // A link without a link-layer address (a tunnel) has no neighbour to say.
    st.links[0].address = None;
    let after = BTreeMap::from([(1, st), (3, peer)]);
    let f = run_in(std::slice::from_ref(&g), &before, &after);
    assert!(
        !f[0].evidence.iter().any(|e| e.starts_with("neighbour: ")),
        "{f:#?}"
    );
}

/// A drop whose reason no family knows, counted by one socket's own drop counter: the
/// summary names that socket (a socket filter here, which the kernel cannot show).
#[test]
fn one_socket_that_counted_the_drops_is_named_in_the_summary() {
    let socket = |drops| Socket {
        proto: "udp".into(),
        local_ip: "0.0.0.0".into(),
        port: 5300,
        device: None,
        recv_q: 0,
        send_q: 0,
        process: Some("python3 (pid 799)".into()),
        rcvbuf: None,
        drops: Some(drops),
    };
    let mut g = group("udp_queue_rcv_one_skb", "SOCKET_FILTER", 25);
    g.protocol = Some("udp".into());
    g.dport = Some(5300);
    let mut before = state(vec![]);
    before.sockets.push(socket(0));
    let mut after = state(vec![]);
    after.sockets.push(socket(25));
    let f = run(std::slice::from_ref(&g), before.clone(), after.clone());
    assert!(
        f[0].summary.contains(
            "; counted by the socket udp 0.0.0.0:5300 of python3 (pid 799) (its drops +25)"
        ),
        "{}",
        f[0].summary
    );
    // A socket that counted only some of them is evidence, not the summary's object.
    after.sockets[0].drops = Some(5);
    let f = run(std::slice::from_ref(&g), before, after);
    assert!(
        !f[0].summary.contains("counted by the socket"),
        "{}",
        f[0].summary
    );
    assert!(
        f[0].evidence
            .iter()
            .any(|e| e.contains("udp 0.0.0.0:5300 of python3 (pid 799) drops +5 (now 5)")),
        "{f:#?}"
    );
}
