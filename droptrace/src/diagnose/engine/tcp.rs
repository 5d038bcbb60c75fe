//! Findings about TCP connections: retransmits that follow drops seen on this host (which
//! drop group), retransmits that follow none (the loss is beyond this host), and resets
//! this host sent (with the kernel's reason).
use crate::pipeline::{
    names::Names,
    tcp::{cause_words, endpoint, FlowStats, TcpFlow, TcpTable},
};

use super::{Finding, NamespaceNames};

/// Connection groups that get a finding of their own, most retransmits first.
const MAX_TCP_FINDINGS: usize = 10;

fn finding(cause: &'static str, count: u64, flow: &TcpFlow, ns: &dyn NamespaceNames) -> Finding {
    let inode = flow.netns.inode;
    Finding {
        cause,
        drops: count,
        rate: 0.0,
        summary: String::new(),
        evidence: Vec::new(),
        fix: String::new(),
        benign: false,
        netns: (inode != 0).then(|| ns.describe(inode)),
        netns_name: (inode != 0).then(|| ns.label(inode)),
        pod: None,
        container: ns.workload(inode).map(|w| w.container.name),
        reason: None,
        location: None,
        protocol: Some("tcp".to_owned()),
        dport: None,
        iface: None,
        merge_key: format!(
            "{cause}|{inode}|{}|{}|{}",
            flow.local, flow.lport, flow.remote
        ),
        netns_inode: (inode != 0).then_some(inode),
        family: None,
        subjects: Vec::new(),
    }
}

/// `tcp 10.1.0.2:443 <- 10.1.0.1 in netns web`.
/// The namespace as the pipeline named it, else as the diagnosis names it (a namespace
/// the live names never saw a drop in: its name, not its inode).
fn connection(flow: &TcpFlow, names: &Names, ns: &dyn NamespaceNames) -> String {
    let place = if names.namespaces.contains_key(&flow.netns) {
        names.place(flow.netns, 0)
    } else {
        format!(" in {}", ns.describe(flow.netns.inode))
    };
    format!(
        "tcp {} <- {}{place}",
        endpoint(flow.local, flow.lport),
        flow.remote,
    )
}

fn retransmit_findings(
    flow: &TcpFlow,
    s: &FlowStats,
    names: &Names,
    ns: &dyn NamespaceNames,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let who = connection(flow, names, ns);
    let here = s.after_drops();
    if here > 0 {
        let mut f = finding("tcp_retransmits_after_drops", here, flow, ns);
        let causes = s.causes();
        let top = causes
            .first()
            .map(|(c, n)| format!("{n} after {}", cause_words(c, names)))
            .unwrap_or_else(|| format!("{here} after drops seen here"));
        f.summary = crate::format::printable(&format!(
            "{who}: {} segments retransmitted, {top}",
            s.retransmits
        ))
        .into_owned();
        f.evidence = causes
            .iter()
            .map(|(c, n)| {
                format!(
                    "{n} retransmits followed {} (same socket, at most 3 s before)",
                    cause_words(c, names)
                )
            })
            .collect();
        if let Some((c, _)) = causes.first() {
            f.reason = names.reason(c.reason);
            f.location = Some(names.location_display(c.location));
        }
        f.fix = "the retransmits are this host's own drops: fix the cause of the drop group named (see its finding)".to_owned();
        out.push(f);
    }
    let beyond = s.beyond();
    if beyond > 0 {
        let mut f = finding("tcp_loss_beyond_host", beyond, flow, ns);
        f.summary = crate::format::printable(&format!(
            "{who}: {} segments retransmitted, {beyond} after no drop seen here: the loss is beyond this host",
            s.retransmits
        ))
        .into_owned();
        f.evidence.push(format!(
            "{beyond} retransmits with no drop of the same socket seen on this host in the 3 s before"
        ));
        f.fix = format!(
            "look at the path to {} (the network, a router or namespace droptrace does not watch, or the peer): its interface and queue counters, or run droptrace there",
            flow.remote
        );
        out.push(f);
    }
    out
}

/// The TCP findings of a window; none when the TCP programs were not attached.
pub fn tcp_findings(
    tcp: &TcpTable,
    names: &Names,
    ns: &dyn NamespaceNames,
    secs: f64,
) -> Vec<Finding> {
    if !tcp.attached {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (flow, s) in tcp.ranked().into_iter().take(MAX_TCP_FINDINGS) {
        out.extend(retransmit_findings(flow, s, names, ns));
        let sent = s.resets_sent_total();
        if sent > 0 {
            let mut f = finding("tcp_resets_sent", sent, flow, ns);
            let reasons: Vec<String> = s
                .resets_sent
                .iter()
                .map(|(r, n)| format!("{n} {}", names.reset_reason(*r)))
                .collect();
            f.summary = crate::format::printable(&format!(
                "{}: {sent} resets sent by this host ({})",
                connection(flow, names, ns),
                reasons.join(", ")
            ))
            .into_owned();
            f.reason = s.resets_sent.keys().next().map(|r| names.reset_reason(*r));
            f.fix = "NO_SOCKET: nothing listens on the port (start the service or fix the clients' port); other reasons: see the kernel's enum sk_rst_reason".to_owned();
            out.push(f);
        }
    }
    for f in &mut out {
        f.rate = if secs > 0.0 {
            f.drops as f64 / secs
        } else {
            0.0
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tcp::{
        self,
        tests::{bytes_of, retransmit},
    };

    struct Plain;
    impl NamespaceNames for Plain {
        fn describe(&self, inode: u32) -> String {
            format!("netns #{inode}")
        }
        fn command_prefix(&self, _: u32) -> String {
            String::new()
        }
    }

    #[test]
    fn retransmits_are_found_after_drops_here_and_beyond_this_host() {
        let s = 1_000_000_000;
        let mut table = TcpTable::default();
        table.attached = true;
        for i in 0..4 {
            let at = 10 * s + i;
            table.add(&tcp::decode(&bytes_of(&retransmit(at, 443, at - 1_000))).unwrap());
        }
        table.add(&tcp::decode(&bytes_of(&retransmit(50 * s, 443, 0))).unwrap());
        let mut names = Names::default();
        names.namespaces.insert(
            crate::pipeline::event::Netns::new(4_026_532_100, 77),
            "web".to_owned(),
        );
        let findings = tcp_findings(&table, &names, &Plain, 10.0);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        assert_eq!(findings[0].cause, "tcp_retransmits_after_drops");
        assert_eq!(findings[0].drops, 4);
        assert_eq!(
            findings[0].summary,
            "tcp 10.1.0.1:443 <- 10.1.0.2 in netns web: 5 segments retransmitted, 4 after a drop at 0xffffffff81d41a2b on if2 in netns web"
        );
        // A namespace the live names do not know is named as the diagnosis names it.
        let unnamed = tcp_findings(&table, &Names::default(), &Plain, 10.0);
        assert!(
            unnamed[0]
                .summary
                .starts_with("tcp 10.1.0.1:443 <- 10.1.0.2 in netns #4026532100: "),
            "{}",
            unnamed[0].summary
        );
        assert_eq!(findings[1].cause, "tcp_loss_beyond_host");
        assert_eq!(findings[1].drops, 1);
        assert!(
            findings[1]
                .summary
                .ends_with("1 after no drop seen here: the loss is beyond this host"),
            "{}",
            findings[1].summary
        );
        table.attached = false;
        assert!(tcp_findings(&table, &names, &Plain, 10.0).is_empty());
    }
}
