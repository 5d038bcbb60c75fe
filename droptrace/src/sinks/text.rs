//! The dropwatch-style text sink: each tick, the drops that are new since the last one;
//! at the end, the closing table.
use std::{collections::HashMap, fmt::Write as _, io::Write, ops::ControlFlow};

use crate::{
    pipeline::Error,
    pipeline::{
        aggregate::Aggregator,
        event::{Group, Netns},
        interfaces::InterfaceRow,
        names::Names,
        sink::{Moment, Sink},
    },
};

/// Writes a block of new drops every tick and the closing table at the end. A closed
/// output stops the run quietly, as filters do.
pub struct TextSink<W: Write> {
    out: W,
    printer: TextPrinter,
    /// Wall-clock time of the source clock's zero (the boot), to say when each block was.
    boot_time_ns: u64,
}

impl<W: Write> TextSink<W> {
    /// `boot_time_ns`: the wall-clock time (ns since the epoch) the source's clock counts from.
    pub fn new(out: W, boot_time_ns: u64) -> TextSink<W> {
        TextSink {
            out,
            printer: TextPrinter::default(),
            boot_time_ns,
        }
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn tick(&mut self, at: &Moment<'_>) -> ControlFlow<()> {
        let wall_ns = self.boot_time_ns.saturating_add(at.now_ns);
        let block = self
            .printer
            .block(at.agg, at.names, at.elapsed_secs(), wall_ns);
        if !block.is_empty() && write_out(&mut self.out, &block).is_err() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn finish(&mut self, at: &Moment<'_>) -> Result<(), Error> {
        // A closed stdout at the end is not worth an error.
        let _ = write_out(&mut self.out, &final_table(at.agg, at.names));
        Ok(())
    }
}

/// Writes and flushes `text`.
pub fn write_out(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// What the blocks printed so far account for.
#[derive(Debug, Default)]
pub struct TextPrinter {
    printed: HashMap<Group, u64>,
    printed_overflow: u64,
    printed_ungrouped: u64,
    /// Every drop the blocks' lines gave so far.
    printed_total: u64,
    printed_lost: u64,
    /// Interface counters' growth printed so far: (namespace, ifindex, counter).
    printed_interfaces: HashMap<(Netns, u32, std::borrow::Cow<'static, str>), u64>,
}

impl TextPrinter {
    /// Lines for the drops since the previous block; empty when nothing new happened.
    /// The header's count is the sum of the lines: a drop the kernel has counted but not
    /// yet put in a group (a group's first reading is not trusted until the next one) is
    /// in the block that shows its group. `wall_ns`: the wall-clock time of the block.
    pub fn block(
        &mut self,
        agg: &Aggregator,
        names: &Names,
        elapsed_secs: f64,
        wall_ns: u64,
    ) -> String {
        let mut out = self.drops_block(agg, names, elapsed_secs, wall_ns);
        out.push_str(&self.interfaces_block(agg, elapsed_secs, wall_ns));
        out
    }

    /// Lines for the interfaces' counters that grew since the previous block, under a
    /// header of their own.
    fn interfaces_block(&mut self, agg: &Aggregator, elapsed_secs: f64, wall_ns: u64) -> String {
        let mut new: Vec<(u64, InterfaceRow)> = agg
            .interfaces()
            .rows()
            .into_iter()
            .filter_map(|r| {
                let key = (r.netns, r.ifindex, r.counter.clone());
                let before = self.printed_interfaces.insert(key, r.drops).unwrap_or(0);
                (r.drops > before).then(|| (r.drops - before, r))
            })
            .collect();
        if new.is_empty() {
            return String::new();
        }
        new.sort_by_key(|r| std::cmp::Reverse(r.0));
        let total: u64 = new.iter().map(|r| r.0).sum();
        let mut out = format!(
            "[{elapsed_secs:>7.1}s] {total} new drop{} counted by interfaces; {} UTC\n",
            if total == 1 { "" } else { "s" },
            crate::format::utc(wall_ns),
        );
        for (n, row) in new {
            let _ = writeln!(out, "{}", interface_line(n, &row));
        }
        out
    }

    fn drops_block(
        &mut self,
        agg: &Aggregator,
        names: &Names,
        elapsed_secs: f64,
        wall_ns: u64,
    ) -> String {
        let counters = agg.counters();
        let mut rows: Vec<(u64, Group)> = agg
            .groups()
            .filter_map(|(g, s)| {
                let before = self.printed.insert(*g, s.count()).unwrap_or(0);
                (s.count() > before).then(|| (s.count() - before, *g))
            })
            .collect();
        let new_overflow = agg.overflow().saturating_sub(self.printed_overflow);
        let new_ungrouped = counters
            .lost_ungrouped
            .saturating_sub(self.printed_ungrouped);
        let new_lost = counters.lost.saturating_sub(self.printed_lost);
        let new_total = rows.iter().map(|r| r.0).sum::<u64>() + new_overflow + new_ungrouped;
        if new_total == 0 {
            return String::new();
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        self.printed_overflow = agg.overflow();
        self.printed_ungrouped = counters.lost_ungrouped;
        self.printed_total += new_total;
        self.printed_lost = counters.lost;

        let mut out = String::new();
        let _ = writeln!(
            out,
            "[{elapsed_secs:>7.1}s] {new_total} new drop{}, {} in all, {} lost events{}; {} UTC",
            if new_total == 1 { "" } else { "s" },
            self.printed_total,
            counters.lost,
            if new_lost > 0 {
                format!(" (+{new_lost})")
            } else {
                String::new()
            },
            crate::format::utc(wall_ns),
        );
        for (n, g) in rows {
            let _ = writeln!(out, "{}", line(n, &g, names));
        }
        unattributed_lines(&mut out, new_overflow, new_ungrouped);
        out
    }
}

/// The lines of drops counted outside every group.
fn unattributed_lines(out: &mut String, overflow: u64, ungrouped: u64) {
    if overflow > 0 {
        let _ = writeln!(
            out,
            "{overflow:>8} drops in groups beyond the {} kept apart",
            crate::pipeline::aggregate::MAX_GROUPS
        );
    }
    if ungrouped > 0 {
        let _ = writeln!(
            out,
            "{ungrouped:>8} drops not attributed to a group (lost-group map full)"
        );
    }
}

/// `12 drops at tcp_v4_rcv+0x99 (NO_SOCKET) tcp dport 9`, then where: ` on veth-b in
/// netns web`, ` on eth0 in pod shop/web-7d9f container web` (see [`Names::place`]).
pub fn line(count: u64, g: &Group, names: &Names) -> String {
    let mut s = format!(
        "{count:>8} drop{} at {}",
        if count == 1 { " " } else { "s" },
        names.location_display(g.location)
    );
    if let Some(reason) = names.reason(g.reason) {
        let _ = write!(s, " ({reason})");
    }
    if let Some(p) = g.protocol() {
        let _ = write!(s, " {p}");
    }
    if let Some(d) = g.dport {
        let _ = write!(s, " dport {d}");
    }
    s.push_str(&names.place(g.netns, g.ifindex));
    // Names of places and workloads come from the host.
    crate::format::printable(&s).into_owned()
}

/// `       7 tx_dropped on dtva in netns web (driver; may also be a kfree_skb drop above)`
pub fn interface_line(count: u64, row: &InterfaceRow) -> String {
    let s = format!(
        "{count:>8} {} on {} in netns {} ({}{})",
        row.counter,
        row.interface,
        row.netns_label,
        row.layer.label(),
        if row.in_kfree_skb {
            "; may also be a kfree_skb drop above"
        } else if row.counts_xdp_drops {
            "; never reached kfree_skb; counts frames an XDP program dropped"
        } else {
            "; never reached kfree_skb"
        }
    );
    crate::format::printable(&s).into_owned()
}

/// The XDP exceptions, each with where else its frames are counted.
fn exception_lines(out: &mut String, agg: &Aggregator, names: &Names) {
    let rows = agg.xdp_exceptions();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "droptrace: XDP exceptions (each frame counted once: those counted elsewhere are shown, \
         not added)"
    );
    for r in rows {
        let why = match r.also_counted_as {
            Some(crate::pipeline::xdp::AlsoCountedAs::Unknown) => {
                "; where else they are counted is not known, not added".to_owned()
            }
            Some(a) => format!("; also counted as {}, not added", a.label()),
            None => "; counted nowhere else, in the total".to_owned(),
        };
        let _ = writeln!(out, "{}{why}", line(r.count, &r.group, names));
    }
}

/// The closing table of a text run: every group with its total, then what the
/// interfaces' own counters say.
pub fn final_table(agg: &Aggregator, names: &Names) -> String {
    let c = agg.counters();
    let mut out = format!(
        "droptrace: {} drops matched, {} lost events, {} missed by the kernel\n",
        c.matched, c.lost, c.missed
    );
    for (g, s) in agg.ranked_by(|g| *g) {
        let _ = writeln!(out, "{}", line(s.count(), &g, names));
    }
    unattributed_lines(&mut out, agg.overflow(), c.lost_ungrouped);
    exception_lines(&mut out, agg, names);
    let rows = agg.interfaces().rows();
    if !rows.is_empty() {
        let _ = writeln!(
            out,
            "droptrace: interfaces' own counters grew by {} while watching, {} of them drops \
             kfree_skb never saw",
            rows.iter().map(|r| r.drops).sum::<u64>(),
            agg.interfaces()
                .beyond_kfree_skb(|id| agg.xdp_programs().is_some_and(|programs| programs
                    .iter()
                    .any(|p| p.id == id && p.untraced.is_none()))),
        );
        for row in &rows {
            let _ = writeln!(out, "{}", interface_line(row.drops, row));
        }
    }
    out.push_str(&super::tcp::text_section(agg.tcp(), names));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_exceptions_are_listed_with_where_else_they_are_counted_and_only_new_ones_added() {
        use crate::pipeline::xdp::{
            exception_reason, name_program, program_location, AlsoCountedAs, ExceptionRow,
        };
        let row = |tp, value, n, also| ExceptionRow {
            group: Group {
                location: program_location(9),
                reason: exception_reason(tp, value),
                ethertype: 0,
                ip_proto: None,
                dport: None,
                netns: 7.into(),
                ifindex: 0,
            },
            count: n,
            also_counted_as: also,
        };
        let mut agg = Aggregator::new();
        agg.set_xdp_exceptions(
            vec![
                row(0, 0, 30, Some(AlsoCountedAs::KfreeSkb)),
                row(1, (-22i32) as u32, 20, None),
            ],
            5,
        );
        let mut names = Names::default();
        name_program(&mut names, 9, "xdp_exc_udp");
        let table = final_table(&agg, &names);
        assert!(
            table.contains(
                "      30 drops at xdp xdp_exc_udp (id 9) (XDP_ABORTED (xdp_exception)) in netns 7; \
                 also counted as kfree_skb, not added\n"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "      20 drops at xdp xdp_exc_udp (id 9) (XDP_REDIRECT failed (err -22)) in netns 7; \
                 counted nowhere else, in the total\n"
            ),
            "{table}"
        );
        // Only the one counted nowhere else is a drop group.
        let ranked = agg.ranked();
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].1.count(), 20);
        let json = serde_json::to_value(super::super::summary::Summary::new(&agg, &names)).unwrap();
        assert_eq!(json["xdp_exceptions"][0]["also_counted_as"], "kfree_skb");
        assert_eq!(
            json["xdp_exceptions"][1]["also_counted_as"],
            serde_json::Value::Null
        );
        assert_eq!(json["xdp_exceptions"][1]["program_id"], 9);
        assert_eq!(
            json["xdp_exceptions"][1]["reason"],
            "XDP_REDIRECT failed (err -22)"
        );
    }

    #[test]
    fn a_workload_name_with_control_characters_is_printed_escaped() {
        let g = Group {
            location: 0xffff_8000,
            reason: 0,
            ethertype: 0x0800,
            ip_proto: Some(17),
            dport: Some(53),
            netns: 7.into(),
            ifindex: 0,
        };
        let mut names = Names::default();
        let mut w = crate::pipeline::fixtures::workload("9b2e", None);
        w.container.name = "web\n    99 drops at forged".into();
        names.workloads.insert(7.into(), w);
        let text = line(3, &g, &names);
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.ends_with(r"container web\n    99 drops at forged"),
            "{text}"
        );
    }
}
