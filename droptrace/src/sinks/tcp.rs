//! The `tcp` part of the outputs: retransmits and resets by connection group, in words
//! (text and diagnose) and as JSON. Read from the aggregator; no sink of its own.
use std::fmt::Write as _;

use serde::Serialize;

use crate::pipeline::{
    names::Names,
    tcp::{cause_words, endpoint, FlowStats, TcpFlow, TcpTable},
};

/// Connection groups shown in text; the JSON has them all.
pub const TEXT_FLOWS: usize = 20;

/// One connection group in words: `tcp 10.1.0.1:40000 -> 10.1.0.2 in netns a: 12
/// segments retransmitted, 10 after QDISC_DROP at ... , 2 after no drop seen here (lost
/// beyond this host: the network or the peer); 1 reset sent (NO_SOCKET)`.
pub fn flow_words(flow: &TcpFlow, stats: &FlowStats, names: &Names) -> String {
    let mut s = format!(
        "tcp {} <-> {}{}:",
        endpoint(flow.local, flow.lport),
        flow.remote,
        names.place(flow.netns, 0)
    );
    let mut parts = Vec::new();
    if stats.retransmits > 0 {
        let mut p = format!(
            " {} segment{} retransmitted",
            stats.retransmits,
            if stats.retransmits == 1 { "" } else { "s" }
        );
        for (cause, n) in stats.causes() {
            let _ = write!(p, ", {n} after {}", cause_words(&cause, names));
        }
        let other = stats.after_drops() - stats.causes().iter().map(|c| c.1).sum::<u64>();
        if other > 0 {
            let _ = write!(p, ", {other} after other drops seen here");
        }
        if stats.beyond() > 0 {
            let _ = write!(
                p,
                ", {} after no drop seen here (lost beyond this host: the network or the peer)",
                stats.beyond()
            );
        }
        parts.push(p);
    }
    let sent = stats.resets_sent_total();
    if sent > 0 {
        let reasons: Vec<String> = stats
            .resets_sent
            .iter()
            .map(|(r, n)| format!("{n} {}", names.reset_reason(*r)))
            .collect();
        parts.push(format!(
            " {sent} reset{} sent ({})",
            if sent == 1 { "" } else { "s" },
            reasons.join(", ")
        ));
    }
    if stats.resets_received > 0 {
        parts.push(format!(
            " {} reset{} received",
            stats.resets_received,
            if stats.resets_received == 1 { "" } else { "s" }
        ));
    }
    s.push_str(&parts.join(";"));
    crate::format::printable(&s).into_owned()
}

/// The text section: nothing when TCP was not watched or nothing happened.
pub fn text_section(tcp: &TcpTable, names: &Names) -> String {
    if tcp.off {
        return "tcp: not traced (--no-tcp)\n".to_owned();
    }
    let c = tcp.counters;
    if !tcp.attached || (c.retransmits + c.resets_sent + c.resets_received == 0 && tcp.is_empty()) {
        return String::new();
    }
    let total = tcp.total();
    let mut out = format!(
        "tcp: {} segments retransmitted ({} after a drop seen here, {} after none), {} resets sent, {} received, {} lost events\n",
        c.retransmits,
        total.after_drops(),
        total.beyond(),
        c.resets_sent,
        c.resets_received,
        c.lost
    );
    if c.missed > 0 {
        let _ = writeln!(
            out,
            "  {} TCP events not counted: the kernel skipped its program on a CPU where it was already running",
            c.missed
        );
    }
    let ranked = tcp.ranked();
    for (flow, stats) in ranked.iter().take(TEXT_FLOWS) {
        let _ = writeln!(out, "  {}", flow_words(flow, stats, names));
    }
    if ranked.len() > TEXT_FLOWS {
        let _ = writeln!(
            out,
            "  ... {} more connection groups (--format json has them all)",
            ranked.len() - TEXT_FLOWS
        );
    }
    out
}

/// The JSON's `tcp`: the figures, or `{"off": true}` when TCP tracing was turned off.
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TcpSection {
    Traced(TcpSummary),
    Off { off: bool },
}

impl TcpSection {
    /// `None` when the TCP programs were not attached and not turned off either (a kernel
    /// without them, a recording without TCP figures).
    pub fn new(tcp: &TcpTable, names: &Names) -> Option<TcpSection> {
        if tcp.off {
            return Some(TcpSection::Off { off: true });
        }
        TcpSummary::new(tcp, names).map(TcpSection::Traced)
    }
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TcpSummary {
    /// Retransmitted segments (exact, kernel-counted).
    pub retransmits: u64,
    /// Of those delivered, the ones that followed a drop of the same socket seen here
    /// shortly before, and the ones that followed none (lost beyond this host).
    pub after_drops: u64,
    pub beyond_host: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// Events that did not fit in the ring buffer (counted in the totals above only).
    pub lost_events: u64,
    /// Runs of the TCP programs the kernel skipped (one on a CPU where one was running):
    /// each is at least one retransmit or reset in none of the figures above.
    pub missed: u64,
    /// Whether the kernel gives the reason of the resets it sends (6.10+).
    pub reset_reasons: bool,
    pub flows: Vec<TcpFlowSummary>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TcpFlowSummary {
    pub netns: u32,
    pub namespace: Option<String>,
    pub local: String,
    pub local_port: u16,
    pub remote: String,
    pub retransmits: u64,
    pub after_drops: u64,
    pub beyond_host: u64,
    /// Retransmits that did not go out (where the kernel says so: 6.18 does).
    pub failed: u64,
    pub explained_by: Vec<TcpCauseSummary>,
    pub resets_sent: Vec<TcpResetSummary>,
    pub resets_received: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TcpCauseSummary {
    pub location: String,
    pub address: String,
    pub reason: Option<String>,
    pub reason_code: u32,
    pub netns: u32,
    pub namespace: Option<String>,
    pub ifindex: u32,
    pub interface: Option<String>,
    pub count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TcpResetSummary {
    /// The kernel's name, or `unknown` before 6.10.
    pub reason: String,
    pub reason_code: Option<u32>,
    pub count: u64,
}

impl TcpSummary {
    /// `None` when the TCP programs were not attached.
    pub fn new(tcp: &TcpTable, names: &Names) -> Option<TcpSummary> {
        if !tcp.attached {
            return None;
        }
        let total = tcp.total();
        let flows = tcp
            .ranked()
            .into_iter()
            .map(|(flow, s)| TcpFlowSummary {
                netns: flow.netns.inode,
                namespace: names.namespace_name(flow.netns).map(str::to_owned),
                local: flow.local.to_string(),
                local_port: flow.lport,
                remote: flow.remote.to_string(),
                retransmits: s.retransmits,
                after_drops: s.after_drops(),
                beyond_host: s.beyond(),
                failed: s.failed,
                explained_by: s
                    .causes()
                    .into_iter()
                    .map(|(c, count)| TcpCauseSummary {
                        location: names.location_display(c.location),
                        address: format!("{:#x}", c.location),
                        reason: names.reason(c.reason),
                        reason_code: c.reason,
                        netns: c.netns.inode,
                        namespace: names.namespace_name(c.netns).map(str::to_owned),
                        ifindex: c.ifindex,
                        interface: names.interface_name(c.netns, c.ifindex).map(str::to_owned),
                        count,
                    })
                    .collect(),
                resets_sent: s
                    .resets_sent
                    .iter()
                    .map(|(r, n)| TcpResetSummary {
                        reason: names.reset_reason(*r),
                        reason_code: *r,
                        count: *n,
                    })
                    .collect(),
                resets_received: s.resets_received,
            })
            .collect();
        Some(TcpSummary {
            retransmits: tcp.counters.retransmits,
            after_drops: total.after_drops(),
            beyond_host: total.beyond(),
            resets_sent: tcp.counters.resets_sent,
            resets_received: tcp.counters.resets_received,
            lost_events: tcp.counters.lost,
            missed: tcp.counters.missed,
            reset_reasons: !names.reset_reasons.is_empty(),
            flows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{
        event::Netns,
        tcp::{self, TcpCounters},
    };

    fn table() -> TcpTable {
        use crate::pipeline::tcp::tests::{bytes_of, retransmit};
        let s = 1_000_000_000;
        let mut table = TcpTable::default();
        for i in 0..3 {
            let at = 10 * s + i;
            table.add(&tcp::decode(&bytes_of(&retransmit(at, 40000, at - 1000))).unwrap());
        }
        table.add(&tcp::decode(&bytes_of(&retransmit(20 * s, 40000, 0))).unwrap());
        let mut rst = retransmit(30 * s, 40000, 0);
        rst.kind = droptrace_common::TCP_RESET_SENT;
        rst.flags = droptrace_common::TCP_EVENT_HAS_REASON;
        rst.reason = 2;
        table.add(&tcp::decode(&bytes_of(&rst)).unwrap());
        table.attached = true;
        table.counters = TcpCounters {
            retransmits: 4,
            resets_sent: 1,
            resets_received: 0,
            lost: 0,
            missed: 0,
        };
        table
    }

    fn names() -> Names {
        let mut names = Names::default();
        names
            .namespaces
            .insert(Netns::new(4_026_532_100, 77), "web".to_owned());
        names.reset_reasons.insert(2, "NO_SOCKET".to_owned());
        names
    }

    #[test]
    fn the_text_section_says_what_explains_each_connections_retransmits() {
        let text = text_section(&table(), &names());
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "tcp: 4 segments retransmitted (3 after a drop seen here, 1 after none), 1 resets sent, 0 received, 0 lost events"
        );
        let flow = lines.next().unwrap();
        assert!(
            flow.starts_with("  tcp 10.1.0.1:40000 <-> 10.1.0.2 in netns web: 4 segments retransmitted, 3 after a drop at 0xffffffff81d41a2b on if2 in netns web"),
            "{flow}"
        );
        assert!(
            flow.ends_with(", 1 after no drop seen here (lost beyond this host: the network or the peer); 1 reset sent (1 NO_SOCKET)"),
            "{flow}"
        );
    }

    #[test]
    fn nothing_is_shown_when_tcp_was_not_watched() {
        let mut t = table();
        t.attached = false;
        assert_eq!(text_section(&t, &names()), "");
        assert_eq!(TcpSummary::new(&t, &names()), None);
        let mut empty = TcpTable::default();
        empty.attached = true;
        assert_eq!(text_section(&empty, &names()), "");
    }

    #[test]
    fn turned_off_tcp_says_so_rather_than_zeros() {
        let mut off = TcpTable::default();
        off.off = true;
        assert_eq!(text_section(&off, &names()), "tcp: not traced (--no-tcp)\n");
        let json = serde_json::to_value(TcpSection::new(&off, &names())).unwrap();
        assert_eq!(json, serde_json::json!({"off": true}));
        // Traced, the section is the summary itself.
        let json = serde_json::to_value(TcpSection::new(&table(), &names())).unwrap();
        assert_eq!(json["retransmits"], 4);
        assert!(json.get("off").is_none());
    }

    #[test]
    fn the_json_section_has_each_connection_group_with_its_causes() {
        let summary = TcpSummary::new(&table(), &names()).unwrap();
        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["retransmits"], 4);
        assert_eq!(json["after_drops"], 3);
        assert_eq!(json["beyond_host"], 1);
        let flow = &json["flows"][0];
        assert_eq!(flow["namespace"], "web");
        assert_eq!(flow["local"], "10.1.0.1");
        assert_eq!(flow["local_port"], 40000);
        assert_eq!(flow["explained_by"][0]["count"], 3);
        assert_eq!(flow["explained_by"][0]["ifindex"], 2);
        assert_eq!(flow["resets_sent"][0]["reason"], "NO_SOCKET");
        assert_eq!(flow["resets_sent"][0]["reason_code"], 2);
    }
}
