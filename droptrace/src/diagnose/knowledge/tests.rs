use super::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixture(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

/// The `{ N, "NAME" }` pairs of a kfree_skb format's `__print_symbolic`.
fn symbolic_pairs(format: &str) -> Vec<(u32, String)> {
    let mut pairs = Vec::new();
    for chunk in format.split('{').skip(1) {
        let Some((body, _)) = chunk.split_once('}') else {
            continue;
        };
        let Some((number, name)) = body.split_once(',') else {
            continue;
        };
        if let Ok(number) = number.trim().parse() {
            pairs.push((number, name.trim().trim_matches('"').to_owned()));
        }
    }
    pairs
}

fn reasons_6_18() -> Vec<String> {
    symbolic_pairs(&fixture("kfree_skb.format.6.18"))
        .into_iter()
        .filter(|(_, name)| name != "MAX")
        .map(|(_, name)| name)
        .collect()
}

#[test]
fn fixture_has_the_126_reasons_of_6_18() {
    let pairs = symbolic_pairs(&fixture("kfree_skb.format.6.18"));
    let reasons: Vec<_> = pairs.iter().filter(|(_, n)| n != "MAX").collect();
    assert_eq!(reasons.len(), 126);
    assert_eq!(
        reasons.first().map(|(v, n)| (*v, n.as_str())),
        Some((2, "NOT_SPECIFIED"))
    );
    assert_eq!(
        reasons.last().map(|(v, n)| (*v, n.as_str())),
        Some((127, "RECURSION_LIMIT"))
    );
}

#[test]
fn every_reason_of_6_18_has_an_entry() {
    let missing: Vec<_> = reasons_6_18()
        .into_iter()
        .filter(|name| !REASONS.iter().any(|info| info.name == name))
        .collect();
    assert!(missing.is_empty(), "no entry for {missing:?}");
}

#[test]
fn every_reason_of_older_fixtures_has_an_entry() {
    for file in ["kfree_skb.format.pre-6.11", "kfree_skb.format.5.18-era"] {
        for (_, name) in symbolic_pairs(&fixture(file)) {
            if name != "MAX" {
                assert!(find_reason(&name).is_some(), "{file}: no entry for {name}");
            }
        }
    }
}

#[test]
fn reasons_follow_the_kernel_order_then_older_names() {
    let names: Vec<_> = REASONS.iter().map(|info| info.name.to_owned()).collect();
    let kernel = reasons_6_18();
    assert_eq!(names[..kernel.len()], kernel[..]);
}

#[test]
fn reason_names_are_unique_and_spelled_like_the_kernel() {
    let mut seen = BTreeSet::new();
    for info in REASONS {
        assert!(seen.insert(info.name), "duplicate {}", info.name);
        assert!(
            info.name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "{}",
            info.name
        );
        assert!(!info.name.starts_with("SKB_DROP_REASON_"), "{}", info.name);
    }
}

fn is_snake_case(id: &str) -> bool {
    !id.is_empty()
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('_')
        && !id.contains("__")
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn cause_ids_are_unique_snake_case_and_round_trip() {
    let ids: BTreeSet<_> = Cause::ALL.iter().map(Cause::id).collect();
    assert_eq!(ids.len(), Cause::ALL.len());
    for cause in Cause::ALL {
        assert!(is_snake_case(cause.id()), "{}", cause.id());
        assert_eq!(Cause::from_id(cause.id()), Some(cause));
        assert_eq!(cause.to_string(), cause.id());
        assert!(!cause.label().is_empty());
    }
    assert_eq!(Cause::from_id("nope"), None);
}

#[test]
fn cause_serializes_as_its_id() {
    assert_eq!(
        serde_json::to_string(&Cause::ListenOverflow)
            .ok()
            .as_deref(),
        Some("\"listen_overflow\"")
    );
    let json = serde_json::to_value(classify(Some("QDISC_DROP"), None)).ok();
    let json = json.unwrap_or_default();
    assert_eq!(json["cause"], "qdisc");
    assert_eq!(json["basis"], "reason");
    assert_eq!(json["benign"], false);
}

#[test]
fn every_cause_has_a_reason_or_counter() {
    // Forwarding is told from a routing drop by the namespace's sysctls, and a wrong
    // neighbour entry from OTHERHOST by the interface's promiscuity, in the engine.
    for cause in Cause::ALL
        .into_iter()
        .filter(|c| !matches!(c, Cause::ForwardingDisabled | Cause::Neighbour))
    {
        let used =
            REASONS.iter().any(|r| r.cause == cause) || COUNTERS.iter().any(|c| c.cause == cause);
        assert!(used, "nothing maps to {}", cause.id());
    }
}

#[test]
fn texts_are_single_lines_with_documented_placeholders() {
    let mut texts: Vec<(&str, &str, &str)> = Vec::new();
    texts.extend(REASONS.iter().map(|r| (r.name, r.explanation, r.fix)));
    texts.extend(LOCATIONS.iter().map(|l| (l.function, l.explanation, l.fix)));
    texts.extend(
        REASON_FAMILIES
            .iter()
            .map(|f| (f.prefix, f.explanation, f.fix)),
    );
    texts.extend(COUNTERS.iter().map(|c| (c.name, c.explanation, c.fix)));
    for (what, explanation, fix) in texts {
        for text in [explanation, fix] {
            assert!(!text.trim().is_empty(), "{what}: empty text");
            assert!(!text.contains('\n'), "{what}: more than one line");
            assert_eq!(text, text.trim(), "{what}: stray whitespace");
            assert!(!text.ends_with('.'), "{what}: no full stop at the end");
        }
        assert!(
            !explanation.contains('{'),
            "{what}: placeholder in explanation"
        );
        let mut rest = fix;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else {
                panic!("{what}: unclosed placeholder");
            };
            let placeholder = &rest[start..start + len + 1];
            assert!(
                PLACEHOLDERS.iter().any(|(p, _)| *p == placeholder),
                "{what}: undocumented placeholder {placeholder}"
            );
            rest = &rest[start + len + 1..];
        }
    }
}

#[test]
fn fill_placeholders_fills_or_marks() {
    let fix = "tc -s qdisc show dev {iface}; ss -ltn 'sport = :{port}'";
    assert_eq!(
        fill_placeholders(fix, Some("eth0"), Some(80)),
        "tc -s qdisc show dev eth0; ss -ltn 'sport = :80'"
    );
    assert_eq!(
        fill_placeholders(fix, None, None),
        "tc -s qdisc show dev <iface>; ss -ltn 'sport = :<port>'"
    );
}

#[test]
fn locations_are_well_formed() {
    let mut seen = BTreeSet::new();
    for info in LOCATIONS {
        assert!(
            info.function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{}",
            info.function
        );
        assert!(
            seen.insert((info.function, info.reasons)),
            "duplicate location {} {:?}",
            info.function,
            info.reasons
        );
        for reason in info.reasons {
            assert!(
                find_reason(reason).is_some(),
                "{}: unknown {reason}",
                info.function
            );
        }
    }
    for family in REASON_FAMILIES {
        assert_eq!(family.prefix, family.prefix.to_ascii_uppercase());
    }
}

#[test]
fn benign_reasons_are_the_housekeeping_ones() {
    for name in [
        "SOCKET_CLOSE",
        "UNIX_DISCONNECT",
        "TCP_CLOSE",
        "QUEUE_PURGE",
        "TCP_OLD_DATA",
    ] {
        assert!(find_reason(name).is_some_and(|r| r.benign), "{name}");
    }
    for name in ["NETFILTER_DROP", "NO_SOCKET", "QDISC_DROP", "NOT_SPECIFIED"] {
        assert!(find_reason(name).is_some_and(|r| !r.benign), "{name}");
    }
}

#[test]
fn classify_precedence() {
    let c = classify(Some("NETFILTER_DROP"), Some("nft_do_chain"));
    assert_eq!((c.cause, c.benign), (Cause::NetfilterRule, false));

    let c = classify(Some("NOT_SPECIFIED"), Some("virtio_transport_recv_pkt"));
    assert_eq!(
        (c.cause, c.benign, c.basis),
        (Cause::Other, true, Basis::Location)
    );

    let c = classify(Some("QDISC_DROP"), Some("__dev_queue_xmit"));
    assert_eq!((c.cause, c.basis), (Cause::Qdisc, Basis::Reason));
    assert_eq!(classify(Some("QDISC_DROP"), None).cause, Cause::Qdisc);

    assert_eq!(classify(Some("PKT_TOO_BIG"), None).cause, Cause::Mtu);
    let c = classify(Some("PKT_TOO_BIG"), Some("ip_forward+0x1f0"));
    assert_eq!((c.cause, c.basis), (Cause::Mtu, Basis::LocationAndReason));

    assert_eq!(
        classify(Some("NO_SOCKET"), Some("tcp_v4_rcv")).cause,
        Cause::NoListener
    );

    let c = classify(None, Some("nft_do_chain"));
    assert_eq!((c.cause, c.basis), (Cause::NetfilterRule, Basis::Location));

    let c = classify(Some("SOME_REASON_FROM_2030"), Some("some_future_function"));
    assert_eq!(
        (c.cause, c.benign, c.basis),
        (Cause::Other, false, Basis::Unknown)
    );
    assert_eq!(c.explanation, UNKNOWN_REASON);
}

#[test]
fn classify_more_cases() {
    // A specific reason beats a location guess.
    let c = classify(Some("TC_EGRESS"), Some("__dev_queue_xmit"));
    assert_eq!(c.cause, Cause::TcBpf);
    // A generic reason defers to the location.
    assert_eq!(
        classify(Some("NOT_SPECIFIED"), Some("__dev_queue_xmit")).cause,
        Cause::Qdisc
    );
    // An unknown reason defers to the location too.
    assert_eq!(
        classify(Some("reason 130"), Some("enqueue_to_backlog")).cause,
        Cause::NetdevBacklog
    );
    // ip_forward without PKT_TOO_BIG is not an MTU problem.
    assert_eq!(classify(None, Some("ip_forward")).cause, Cause::Other);
    assert_eq!(
        classify(Some("NOT_SPECIFIED"), Some("ip_fragment")).cause,
        Cause::Mtu
    );
    // Listen overflow by function on kernels without reasons.
    assert_eq!(
        classify(None, Some("tcp_v4_syn_recv_sock")).cause,
        Cause::ListenOverflow
    );
    assert_eq!(
        classify(None, Some("tcp_conn_request")).cause,
        Cause::ListenOverflow
    );
    // unix_* is benign housekeeping.
    assert!(classify(None, Some("unix_stream_connect")).benign);
    // Exact beats prefix, longer prefix beats shorter.
    assert_eq!(
        find_location("__neigh_event_send", None).map(|l| l.function),
        Some("__neigh_event_send")
    );
    assert_eq!(
        find_location("sk_filter_trim_cap", None).map(|l| l.function),
        Some("sk_filter")
    );
    // Spellings and decorations.
    assert_eq!(
        classify(Some("skb_drop_reason_netfilter_drop"), None).cause,
        Cause::NetfilterRule
    );
    assert_eq!(
        classify(None, Some("nft_do_chain+0x3e8 [nf_tables]")).cause,
        Cause::NetfilterRule
    );
    assert_eq!(
        classify(None, Some("enqueue_to_backlog.isra.0")).cause,
        Cause::NetdevBacklog
    );
    // Older names.
    assert!(find_reason("VXLAN_NO_REMOTE").is_some());
    // Subsystem reasons.
    let c = classify(Some("OVS_DROP_EXPLICIT"), Some("ovs_execute_actions"));
    assert_eq!(c.basis, Basis::ReasonFamily);
    assert_eq!(
        classify(Some("OPENVSWITCH reason 5"), None).basis,
        Basis::ReasonFamily
    );
    // Nothing at all.
    let c = classify(None, None);
    assert_eq!(
        (c.cause, c.benign, c.basis),
        (Cause::Other, false, Basis::Unknown)
    );
    assert_eq!(c.explanation, UNKNOWN_NO_REASON);
    let c = classify(Some("NOT_SPECIFIED"), Some("0xffffffff81f63638"));
    assert_eq!((c.cause, c.basis), (Cause::Other, Basis::GenericReason));
    // Odd input does not panic.
    for odd in ["", " ", "+", ".", "SKB_DROP_REASON_", "é+0x1", "\u{0}"] {
        let _ = classify(Some(odd), Some(odd));
    }
}

/// Counter names of a /proc/net/snmp or /proc/net/netstat: header lines come first
/// in each pair, `Group: Name Name ...`.
fn snmp_names(text: &str) -> BTreeSet<(String, String)> {
    let mut names = BTreeSet::new();
    let lines: Vec<&str> = text.lines().collect();
    for pair in lines.chunks(2) {
        let Some((group, header)) = pair[0].split_once(':') else {
            continue;
        };
        for name in header.split_whitespace() {
            names.insert((group.to_owned(), name.to_owned()));
        }
    }
    names
}

#[test]
fn counters_exist_in_this_machines_proc_files() {
    let snmp = snmp_names(&fixture("knowledge/snmp.6.18"));
    let netstat = snmp_names(&fixture("knowledge/netstat.6.18"));
    let snmp6: BTreeSet<String> = fixture("knowledge/snmp6.6.18")
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect();
    let dev = fixture("knowledge/dev.6.18");
    let dev_header = dev.lines().nth(1).unwrap_or_default();
    let dev_halves: Vec<Vec<&str>> = dev_header
        .split('|')
        .map(|half| half.split_whitespace().collect())
        .collect();
    let conntrack = fixture("knowledge/nf_conntrack.stat.header.6.18");
    let conntrack: BTreeSet<&str> = conntrack.split_whitespace().collect();

    let xfrm = fixture("knowledge/xfrm_stat.6.18");
    let xfrm: BTreeSet<&str> = xfrm.split_whitespace().step_by(2).collect();

    let mut seen = BTreeSet::new();
    for c in COUNTERS {
        assert!(counter_path(c.file).is_some(), "{}: unknown file", c.name);
        assert!(
            seen.insert((c.file, c.group, c.name)),
            "duplicate {}",
            c.name
        );
        let key = (c.group.to_owned(), c.name.to_owned());
        let found = match c.file {
            "snmp" => snmp.contains(&key),
            "netstat" => netstat.contains(&key),
            "snmp6" => snmp6.contains(&format!("{}{}", c.group, c.name)),
            "dev" => {
                let (half, column) = match c.name.split_once('_') {
                    Some(("rx", column)) => (1, column),
                    Some(("tx", column)) => (2, column),
                    _ => (0, ""),
                };
                c.group == "dev"
                    && half > 0
                    && dev_halves.get(half).is_some_and(|h| h.contains(&column))
            }
            "nf_conntrack_stat" => c.group == "nf_conntrack" && conntrack.contains(c.name),
            "xfrm_stat" => c.group == "Xfrm" && xfrm.contains(format!("Xfrm{}", c.name).as_str()),
            // No header to check against; the columns are documented on CounterInfo.
            "softnet_stat" => c.group == "softnet",
            _ => false,
        };
        assert!(
            found,
            "{} {} {} not in the captured files",
            c.file, c.group, c.name
        );
    }
}

#[test]
fn required_counters_are_present() {
    let required = [
        ("netstat", "TcpExt", "ListenOverflows"),
        ("netstat", "TcpExt", "ListenDrops"),
        ("netstat", "TcpExt", "TCPBacklogDrop"),
        ("netstat", "TcpExt", "PAWSActive"),
        ("netstat", "TcpExt", "PAWSEstab"),
        ("netstat", "TcpExt", "TCPRcvQDrop"),
        ("netstat", "TcpExt", "TCPZeroWindowDrop"),
        ("netstat", "TcpExt", "IPReversePathFilter"),
        ("netstat", "TcpExt", "TCPMinTTLDrop"),
        ("netstat", "TcpExt", "LockDroppedIcmps"),
        ("snmp", "Udp", "RcvbufErrors"),
        ("snmp", "Udp", "NoPorts"),
        ("snmp", "Udp", "InErrors"),
        ("snmp", "Udp", "MemErrors"),
        ("snmp6", "Udp6", "RcvbufErrors"),
        ("snmp6", "Udp6", "NoPorts"),
        ("snmp6", "Udp6", "InErrors"),
        ("snmp6", "Udp6", "MemErrors"),
        ("snmp", "Ip", "InDiscards"),
        ("snmp", "Ip", "InHdrErrors"),
        ("snmp", "Ip", "InAddrErrors"),
        ("snmp", "Ip", "OutDiscards"),
        ("snmp", "Ip", "FragFails"),
        ("snmp", "Ip", "ReasmFails"),
        ("snmp", "Icmp", "InErrors"),
        ("softnet_stat", "softnet", "dropped"),
        ("softnet_stat", "softnet", "time_squeeze"),
        ("dev", "dev", "rx_drop"),
        ("dev", "dev", "rx_fifo"),
        ("dev", "dev", "rx_errs"),
        ("nf_conntrack_stat", "nf_conntrack", "drop"),
        ("nf_conntrack_stat", "nf_conntrack", "early_drop"),
        ("nf_conntrack_stat", "nf_conntrack", "insert_failed"),
    ];
    for (file, group, name) in required {
        assert!(
            find_counter(file, group, name).is_some(),
            "{file} {group} {name}"
        );
    }
    for c in COUNTERS.iter().filter(|c| c.file == "dev") {
        assert_eq!(c.cause, Cause::Nic, "{}", c.name);
    }
    for c in COUNTERS.iter().filter(|c| c.file == "nf_conntrack_stat") {
        assert_eq!(c.cause, Cause::ConntrackFull, "{}", c.name);
    }
}

/// At the forward functions IP_INHDR is the TTL (hop limit) running out, nothing else.
#[test]
fn a_header_error_while_forwarding_is_the_ttl() {
    let v4 = classify(Some("IP_INHDR"), Some("ip_forward"));
    assert!(
        v4.explanation
            .starts_with("The TTL ran out while forwarding"),
        "{}",
        v4.explanation
    );
    let v6 = classify(Some("IP_INHDR"), Some("ip6_forward"));
    assert!(
        v6.explanation.starts_with("The hop limit ran out"),
        "{}",
        v6.explanation
    );
    // Elsewhere the reason's own sentence.
    let input = classify(Some("IP_INHDR"), Some("ip_rcv_core"));
    assert!(
        !input.explanation.starts_with("The TTL ran out"),
        "{}",
        input.explanation
    );
}
