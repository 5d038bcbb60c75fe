//! Drops the interfaces' own counters say happened, beside the stack's drops: the growth
//! of the kernel's per-interface counters (rtnetlink `rtnl_link_stats64`) while droptrace
//! watches, never their values since boot, each with the layer that makes it.
//!
//! Layers, and where they overlap with the kfree_skb rows:
//! - `nic`: the device's receive and transmit errors (`rx_missed_errors`, `rx_fifo_errors`,
//!   `rx_over_errors`, `rx_crc_errors`, `rx_length_errors`, `rx_frame_errors`,
//!   `tx_aborted_errors`, `tx_carrier_errors`, `tx_fifo_errors`, `tx_heartbeat_errors`,
//!   `tx_window_errors`): frames lost in the hardware or its ring before there is an skb,
//!   so never in kfree_skb; they add to the host's drops.
//! - `driver`: `rx_dropped` and `tx_dropped`. The kernel adds the driver's own count and the
//!   core's (`dev_core_stats`) into one figure, and most of these drops free an skb through
//!   kfree_skb (a veth whose peer cannot take a packet: `veth_xmit`'s tx_dropped is also
//!   a drop there). They are shown, and said to be possibly in the kfree_skb
//!   rows already (`in_kfree_skb`), and never added to the host's total.
//! - `driver` too: the driver's own statistics (`ethtool -S`) that count drops, per queue
//!   where it counts per queue; see [`driver_counters`] for which are kfree_skb's too, and
//!   which count the frames a native XDP program dropped (`counts_xdp_drops`): those are
//!   the XDP verdict rows' frames again when droptrace traces the program.
//! - `stack`: `rx_nohandler` and `rx_otherhost_dropped`, counted by the core where it frees
//!   the skb through kfree_skb (UNHANDLED_PROTO, OTHERHOST): shown, not added.
//! - `nic` and `driver`: the netdev family's queue statistics (qstats) that count drops, per
//!   queue; see [`qstats_counters`] for each one's layer.
use std::{borrow::Cow, collections::BTreeMap};

use serde::Serialize;

use super::event::Netns;
use crate::kernel::netdev::QueueStats;

/// Which part of the machine dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Nic,
    Driver,
    Stack,
}

impl Layer {
    pub fn label(self) -> &'static str {
        match self {
            Layer::Nic => "nic",
            Layer::Driver => "driver",
            Layer::Stack => "stack",
        }
    }
}

/// One counter droptrace follows: its name (the kernel's stats64 field), its layer, and
/// whether its drops may also be kfree_skb drops or XDP verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterKind {
    pub name: Cow<'static, str>,
    pub layer: Layer,
    pub in_kfree_skb: bool,
    /// It counts (among others, maybe) the frames an XDP program dropped without an skb:
    /// the same frames as the program's verdict rows where droptrace traces it.
    pub counts_xdp_drops: bool,
}

const fn kind(name: &'static str, layer: Layer, in_kfree_skb: bool) -> CounterKind {
    CounterKind {
        name: Cow::Borrowed(name),
        layer,
        in_kfree_skb,
        counts_xdp_drops: false,
    }
}

/// The stats64 fields that count drops. Not `rx_errors` and `tx_errors`: they sum the
/// error fields here (and drivers add their own), so the same loss would count twice.
pub const COUNTERS: [CounterKind; 15] = [
    kind("rx_dropped", Layer::Driver, true),
    kind("tx_dropped", Layer::Driver, true),
    kind("rx_missed_errors", Layer::Nic, false),
    kind("rx_fifo_errors", Layer::Nic, false),
    kind("rx_over_errors", Layer::Nic, false),
    kind("rx_crc_errors", Layer::Nic, false),
    kind("rx_length_errors", Layer::Nic, false),
    kind("rx_frame_errors", Layer::Nic, false),
    kind("tx_aborted_errors", Layer::Nic, false),
    kind("tx_carrier_errors", Layer::Nic, false),
    kind("tx_fifo_errors", Layer::Nic, false),
    kind("tx_heartbeat_errors", Layer::Nic, false),
    kind("tx_window_errors", Layer::Nic, false),
    kind("rx_nohandler", Layer::Stack, true),
    kind("rx_otherhost_dropped", Layer::Stack, true),
];

/// One interface as read now: its counters' absolute values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceReading {
    pub netns: Netns,
    /// The namespace as people know it (`web`, `pid 1234 (nginx)`, `host`).
    pub netns_label: String,
    pub ifindex: u32,
    pub name: String,
    /// Each counter with its value.
    pub counters: Vec<(CounterKind, u64)>,
    /// The ids of the XDP programs attached to it (generic, native or offloaded).
    pub xdp_programs: Vec<u32>,
}

/// Every interface of every namespace watched, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostReading {
    /// The source's clock when it was read.
    pub read_ns: u64,
    pub namespaces: usize,
    pub interfaces: Vec<InterfaceReading>,
    /// Interfaces whose driver gave queue statistics (qstats); `None` when none could be
    /// read (the kernel has no netdev family: before 6.9).
    pub qstats_interfaces: Option<usize>,
}

/// What is watched, for a view that has nothing to show to say so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Watched {
    /// The interfaces' counters are read at all.
    pub interfaces_read: bool,
    pub namespaces: usize,
    pub interfaces: usize,
    /// XDP programs attached to the interfaces watched.
    pub xdp_programs: usize,
    /// Interfaces watched whose driver gave queue statistics (qstats, the netdev
    /// family); `None` when the kernel has none to give (before 6.9) or the interfaces
    /// were not read (a recording): then not in JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qstats_interfaces: Option<usize>,
    /// XDP programs on the host whose verdicts are traced, and those that cannot be;
    /// `None` when verdicts are not counted (`--no-xdp`, a header filter, a recording).
    /// Not in JSON: its `xdp_programs` lists them.
    #[serde(skip)]
    pub xdp_traced: Option<(usize, usize)>,
}

/// One counter of one interface that grew while droptrace watched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceRow {
    #[serde(skip)]
    pub netns: Netns,
    #[serde(rename = "netns")]
    pub netns_label: String,
    #[serde(skip)]
    pub ifindex: u32,
    pub interface: String,
    pub counter: Cow<'static, str>,
    pub layer: Layer,
    /// These drops may also be in the kfree_skb groups (not added to the host's total).
    pub in_kfree_skb: bool,
    /// These drops are (or include) frames an XDP program dropped: its verdict rows count
    /// them too where droptrace traces it.
    pub counts_xdp_drops: bool,
    /// Growth since droptrace first read the counter.
    pub drops: u64,
    /// When it was last seen growing (the source's clock).
    #[serde(skip)]
    pub last_ns: u64,
}

#[derive(Debug, Clone)]
struct Followed {
    kind: CounterKind,
    last: u64,
    grown: u64,
    last_ns: u64,
}

/// The growth of every interface counter since droptrace first read it.
#[derive(Debug, Clone, Default)]
pub struct InterfaceDrops {
    /// (namespace, ifindex, counter) -> the counter followed.
    followed: BTreeMap<(Netns, u32, Cow<'static, str>), Followed>,
    /// The latest names of (namespace, ifindex).
    names: BTreeMap<(Netns, u32), (String, String)>,
    /// The XDP programs attached to (namespace, ifindex) at the latest reading, by id.
    programs: BTreeMap<(Netns, u32), Vec<u32>>,
    watched: Watched,
    /// The clock of the latest reading taken: an older one arriving late is not taken.
    latest_ns: Option<u64>,
}

impl InterfaceDrops {
    /// Takes a reading: a counter seen for the first time is its own baseline; one that
    /// went down (its device was made again) counts from 0. A reading older than one
    /// already taken is left out: its lower values would look like devices made again.
    pub fn update(&mut self, reading: &HostReading) {
        if self
            .latest_ns
            .is_some_and(|latest| reading.read_ns < latest)
        {
            return;
        }
        self.latest_ns = Some(reading.read_ns);
        self.watched = Watched {
            interfaces_read: true,
            namespaces: reading.namespaces,
            interfaces: reading.interfaces.len(),
            xdp_programs: reading
                .interfaces
                .iter()
                .map(|i| i.xdp_programs.len())
                .sum(),
            qstats_interfaces: reading.qstats_interfaces,
            xdp_traced: None,
        };
        for i in &reading.interfaces {
            self.names.insert(
                (i.netns, i.ifindex),
                (i.netns_label.clone(), i.name.clone()),
            );
            self.programs
                .insert((i.netns, i.ifindex), i.xdp_programs.clone());
            for (kind, value) in &i.counters {
                let value = *value;
                match self.followed.entry((i.netns, i.ifindex, kind.name.clone())) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(Followed {
                            kind: kind.clone(),
                            last: value,
                            grown: 0,
                            last_ns: 0,
                        });
                    }
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let f = e.get_mut();
                        let grew = if value >= f.last {
                            value - f.last
                        } else {
                            value
                        };
                        if grew > 0 {
                            f.grown += grew;
                            f.last_ns = reading.read_ns;
                        }
                        f.last = value;
                    }
                }
            }
        }
    }

    pub fn watched(&self) -> Watched {
        self.watched
    }

    /// The counters that grew, most drops first (then by namespace, interface, counter).
    pub fn rows(&self) -> Vec<InterfaceRow> {
        let mut rows: Vec<InterfaceRow> = self
            .followed
            .iter()
            .filter(|(_, f)| f.grown > 0)
            .map(|((netns, ifindex, _), f)| {
                let (netns_label, interface) = self
                    .names
                    .get(&(*netns, *ifindex))
                    .cloned()
                    .unwrap_or_default();
                InterfaceRow {
                    netns: *netns,
                    netns_label,
                    ifindex: *ifindex,
                    interface,
                    counter: f.kind.name.clone(),
                    layer: f.kind.layer,
                    in_kfree_skb: f.kind.in_kfree_skb,
                    counts_xdp_drops: f.kind.counts_xdp_drops,
                    drops: f.grown,
                    last_ns: f.last_ns,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.drops.cmp(&a.drops).then_with(|| {
                (&a.netns_label, &a.interface, &a.counter).cmp(&(
                    &b.netns_label,
                    &b.interface,
                    &b.counter,
                ))
            })
        });
        rows
    }

    /// Whether the interface has a driver counter read that counts the frames an XDP
    /// program dropped without an skb (virtio_net's `xdp_drops`...).
    pub fn counts_xdp_drops_at(&self, netns: Netns, ifindex: u32) -> bool {
        self.followed
            .iter()
            .any(|((n, i, _), f)| *n == netns && *i == ifindex && f.kind.counts_xdp_drops)
    }

    /// Drops the interfaces counted that kfree_skb never saw (the `nic` layer, and the
    /// driver's own counts of frames freed without an skb).
    ///
    /// XDP: a driver's counts of the frames its native XDP program dropped (`rx0_xdp_drops`)
    /// are the program's verdict rows' frames again where droptrace traces a program
    /// attached to that interface (`traced`, by program id): they add nothing there, and
    /// elsewhere they add. virtio_net's receive `drops` count every buffer it gave back,
    /// XDP drops among them (an XDP_DROP grows `rx0_drops` and `rx0_xdp_drops`): where the
    /// verdicts are counted only what `drops` has beyond the XDP ones adds, elsewhere the
    /// larger of the two. Failed XDP_TX and redirects (`tx0_xdp_tx_drops`) were no drop
    /// verdict: they always add.
    ///
    /// A device's losses in stats64's error fields and in its queue statistics' hw drops
    /// are two views of the same frames (drivers fill both from the same hardware
    /// counters): per interface the larger of the two counts, never their sum.
    /// `qstats:*-alloc-fail` is not a count of drops and adds nothing.
    pub fn beyond_kfree_skb(&self, traced: impl Fn(u32) -> bool) -> u64 {
        #[derive(Default)]
        struct Xdp {
            rx_xdp: u64,
            rx_all: u64,
            other: u64,
        }
        let rows = self.rows();
        let mut xdp: BTreeMap<(Netns, u32), Xdp> = BTreeMap::new();
        let mut nic: BTreeMap<(Netns, u32), (u64, u64)> = BTreeMap::new();
        let mut sum = 0;
        for r in rows.iter().filter(|r| !r.in_kfree_skb) {
            let at = (r.netns, r.ifindex);
            if r.counts_xdp_drops {
                let x = xdp.entry(at).or_default();
                let name = r.counter.strip_prefix("ethtool:").unwrap_or(&r.counter);
                match (name.starts_with("rx"), name.contains("xdp")) {
                    (true, true) => x.rx_xdp += r.drops,
                    (true, false) => x.rx_all += r.drops,
                    (false, _) => x.other += r.drops,
                }
                continue;
            }
            match (r.counter.starts_with(QSTATS), r.layer) {
                (false, Layer::Nic) => nic.entry(at).or_default().0 += r.drops,
                (true, Layer::Nic) => nic.entry(at).or_default().1 += r.drops,
                (true, _) => {}
                (false, _) => sum += r.drops,
            }
        }
        sum += nic.values().map(|(a, b)| *a.max(b)).sum::<u64>();
        for (at, x) in &xdp {
            let counted = self
                .programs
                .get(at)
                .is_some_and(|ids| ids.iter().any(|id| traced(*id)));
            sum += x.other
                + if counted {
                    x.rx_all.saturating_sub(x.rx_xdp)
                } else {
                    x.rx_all.max(x.rx_xdp)
                };
        }
        sum
    }
}

/// Words that make a driver's statistic a count of drops.
const DROP_WORDS: [&str; 7] = [
    "drop", "discard", "miss", "no_buf", "nobuf", "fifo", "overrun",
];

/// A driver statistic's queue and the name of the total it adds to: `rx_queue_3_drops`
/// (veth), `rx3_drops` (virtio_net, mlx5), `rx-3.drops` (i40e) are queue 3 of `rx_drops`.
fn queue_of(name: &str) -> Option<(u32, String)> {
    for dir in ["rx", "tx"] {
        let Some(rest) = name.strip_prefix(dir) else {
            continue;
        };
        let rest = rest
            .strip_prefix("_queue_")
            .or_else(|| rest.strip_prefix('-'))
            .unwrap_or(rest);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            continue;
        }
        let (queue, after) = rest.split_at(digits);
        let Some(after) = after.strip_prefix('_').or_else(|| after.strip_prefix('.')) else {
            continue;
        };
        return Some((queue.parse().ok()?, format!("{dir}_{after}")));
    }
    None
}

/// The driver's own statistics (`ethtool -S`) that count drops, as counters of the
/// `driver` layer named `ethtool:NAME`, per queue where the driver counts per queue (a
/// total whose queues are all there is left out: it would count them twice). XDP drops
/// are frames a native XDP program freed without an skb (virtio_net, mlx5...), never in
/// kfree_skb, but for a veth, whose XDP runs on skbs that kfree_skb frees. virtio_net's
/// receive `drops` are buffers it gave back without an skb (an XDP verdict other than
/// pass, a frame too short, no memory for an skb), never in kfree_skb, and they include
/// its XDP drops (`receive_small_xdp` and `receive_mergeable_xdp` count an XDP_DROP in
/// both). Any other drop a driver counts may have been an skb freed through kfree_skb.
pub fn driver_counters(driver: &str, names: &[String], values: &[u64]) -> Vec<(CounterKind, u64)> {
    let per_queue: std::collections::HashSet<String> = names
        .iter()
        .filter_map(|n| queue_of(n))
        .map(|(_, total)| total)
        .collect();
    names
        .iter()
        .zip(values)
        .filter(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            DROP_WORDS.iter().any(|w| lower.contains(w))
                && (queue_of(name).is_some() || !per_queue.contains(name.as_str()))
        })
        .map(|(name, value)| {
            let xdp_without_skb = name.contains("xdp") && driver != "veth";
            let virtio_rx_drops = driver == "virtio_net"
                && name.starts_with("rx")
                && name.ends_with("_drops")
                && !name.contains("xdp");
            (
                CounterKind {
                    name: Cow::Owned(format!("ethtool:{name}")),
                    layer: Layer::Driver,
                    in_kfree_skb: !(xdp_without_skb || virtio_rx_drops),
                    counts_xdp_drops: xdp_without_skb || virtio_rx_drops,
                },
                *value,
            )
        })
        .collect()
}

/// The prefix of the counters read from the queue statistics (qstats).
pub const QSTATS: &str = "qstats:";

/// The queue statistics (qstats) attributes that count drops, with their layer and, for
/// the kinds of a total, the total they are part of. The layers follow the attributes'
/// definitions in the kernel's spec (`Documentation/netlink/specs/netdev.yaml`):
/// - `rx-hw-drops`, "packets which entered the device, but never left it" (lack of buffer
///   space, processing errors, policies and filters): `nic`, lost in the device before
///   there was an skb, so never in kfree_skb. `rx-hw-drop-overruns` ("transient lack of
///   resources, such as buffer space, host descriptors") and `rx-hw-drop-ratelimits` (the
///   device's rate limit) are kinds of those drops.
/// - `tx-hw-drops`, packets "that arrived at the device but never left it": `nic`; the
///   driver has handed the frame to the device, which drops it, and frees the skb as
///   sent (a consume, not kfree_skb). `tx-hw-drop-errors` ("invalid or malformed") and
///   `tx-hw-drop-ratelimits` are kinds of those drops.
/// - `rx-alloc-fail`, "skb or buffer allocation failed on the Rx datapath": `driver`, with
///   no skb yet, so never in kfree_skb; the spec says it "may, or may not result in a
///   packet drop", so it is shown but never added to the drops kfree_skb never saw.
///
/// The rest (packets, bytes, checksums, GRO/GSO, tx-stop/wake) count no drops.
const QSTATS_DROPS: [(&str, Layer, Option<&str>); 7] = [
    ("rx-hw-drops", Layer::Nic, None),
    ("rx-hw-drop-overruns", Layer::Nic, Some("rx-hw-drops")),
    ("rx-hw-drop-ratelimits", Layer::Nic, Some("rx-hw-drops")),
    ("tx-hw-drops", Layer::Nic, None),
    ("tx-hw-drop-errors", Layer::Nic, Some("tx-hw-drops")),
    ("tx-hw-drop-ratelimits", Layer::Nic, Some("tx-hw-drops")),
    ("rx-alloc-fail", Layer::Driver, None),
];

/// The queue statistics of one interface that count drops, as counters named like the
/// driver's per-queue ones: `qstats:rx3-hw-drops` is `rx-hw-drops` of rx queue 3. A kind
/// of a total (`rx-hw-drop-overruns`) is kept only where its queue has no total (that
/// would count the same drops twice). None of them is in kfree_skb (see [`QSTATS_DROPS`]).
pub fn qstats_counters(queues: &[&QueueStats]) -> Vec<(CounterKind, u64)> {
    let mut out = Vec::new();
    for q in queues {
        for (name, value) in &q.counters {
            let Some((_, layer, part_of)) = QSTATS_DROPS.iter().find(|(n, _, _)| n == name) else {
                continue;
            };
            if part_of.is_some_and(|total| q.get(total).is_some()) {
                continue;
            }
            let dir = q.queue_type.label();
            let rest = name.split_once('-').map_or(*name, |(_, rest)| rest);
            out.push((
                CounterKind {
                    name: Cow::Owned(format!("{QSTATS}{dir}{}-{rest}", q.queue_id)),
                    layer: *layer,
                    in_kfree_skb: false,
                    counts_xdp_drops: false,
                },
                *value,
            ));
        }
    }
    out
}

/// The counter of a stats64 field droptrace follows.
pub fn stats64_counter(name: &str) -> Option<CounterKind> {
    COUNTERS.iter().find(|k| k.name == name).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::netdev::QueueType;

    fn reading(read_ns: u64, tx_dropped: u64, rx_missed: u64) -> HostReading {
        HostReading {
            read_ns,
            namespaces: 1,
            qstats_interfaces: None,
            interfaces: vec![InterfaceReading {
                netns: Netns::inode(7),
                netns_label: "web".into(),
                ifindex: 3,
                name: "veth-a".into(),
                counters: vec![
                    (stats64_counter("tx_dropped").unwrap(), tx_dropped),
                    (stats64_counter("rx_missed_errors").unwrap(), rx_missed),
                ],
                xdp_programs: vec![12],
            }],
        }
    }

    #[test]
    fn a_reading_older_than_one_taken_is_left_out() {
        // The last reading made at the end came in before one queued earlier: 1, 26, then
        // the stale 1 again, then 26. Taken, the stale one looked like a device made again
        // and the 25 drops counted twice (51).
        let mut d = InterfaceDrops::default();
        d.update(&reading(1, 1, 0));
        d.update(&reading(9, 26, 0));
        d.update(&reading(5, 1, 0));
        d.update(&reading(9, 26, 0));
        let rows = d.rows();
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].drops, 25);
    }

    #[test]
    fn rows_are_growth_since_the_first_reading_never_the_value_since_boot() {
        let mut d = InterfaceDrops::default();
        d.update(&reading(1, 100, 50));
        assert!(d.rows().is_empty(), "{:?}", d.rows());
        d.update(&reading(2, 107, 50));
        d.update(&reading(3, 110, 52));
        let rows = d.rows();
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(
            (
                rows[0].counter.as_ref(),
                rows[0].layer,
                rows[0].drops,
                rows[0].in_kfree_skb
            ),
            ("tx_dropped", Layer::Driver, 10, true)
        );
        assert_eq!(
            (
                rows[1].counter.as_ref(),
                rows[1].layer,
                rows[1].drops,
                rows[1].last_ns
            ),
            ("rx_missed_errors", Layer::Nic, 2, 3)
        );
        // tx_dropped may be kfree_skb's too: only the nic's drops add to the host's.
        assert_eq!(d.beyond_kfree_skb(|_| true), 2);
        assert_eq!(
            d.watched(),
            Watched {
                interfaces_read: true,
                namespaces: 1,
                interfaces: 1,
                xdp_programs: 1,
                qstats_interfaces: None,
                xdp_traced: None,
            }
        );
    }

    fn names(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn drivers_drop_counters_are_kept_per_queue_without_their_totals() {
        // virtio_net's `ethtool -S` names (captured in droptrace/fixtures/netlink): the
        // totals `rx_drops` and `rx_xdp_drops` add up queue 0's, so they are left out.
        let virtio = names(
            "rx_drops rx_xdp_packets rx_xdp_tx rx_xdp_redirects rx_xdp_drops rx_kicks \
             tx_xdp_tx tx_xdp_tx_drops tx_kicks tx_tx_timeouts rx0_drops rx0_xdp_packets \
             rx0_xdp_tx rx0_xdp_redirects rx0_xdp_drops rx0_kicks tx0_xdp_tx \
             tx0_xdp_tx_drops tx0_kicks tx0_tx_timeouts",
        );
        let values: Vec<u64> = (0..20).collect();
        let kept: Vec<(String, bool, u64)> = driver_counters("virtio_net", &virtio, &values)
            .into_iter()
            .map(|(k, v)| (k.name.into_owned(), k.in_kfree_skb, v))
            .collect();
        assert_eq!(
            kept,
            [
                ("ethtool:rx0_drops".to_owned(), false, 10),
                ("ethtool:rx0_xdp_drops".to_owned(), false, 14),
                ("ethtool:tx0_xdp_tx_drops".to_owned(), false, 17),
            ]
        );
        assert!(driver_counters("virtio_net", &virtio, &values)
            .iter()
            .all(|(k, _)| k.counts_xdp_drops));
        // A veth's XDP drops free skbs: kfree_skb sees them too.
        let veth = names("peer_ifindex rx_queue_0_drops rx_queue_0_xdp_drops rx_queue_0_xdp_tx");
        let kept = driver_counters("veth", &veth, &[4, 5, 6, 7]);
        assert_eq!(kept.len(), 2);
        assert!(kept
            .iter()
            .all(|(k, _)| k.in_kfree_skb && k.layer == Layer::Driver));
        assert_eq!(queue_of("rx-3.drops"), Some((3, "rx_drops".into())));
        assert_eq!(queue_of("rx_missed"), None);
    }

    fn queue(queue_type: QueueType, queue_id: u32, counters: &[(&'static str, u64)]) -> QueueStats {
        QueueStats {
            ifindex: 3,
            queue_type,
            queue_id,
            counters: counters.to_vec(),
        }
    }

    #[test]
    fn queue_statistics_that_count_drops_are_kept_per_queue_with_their_layer() {
        // Rx queue 3 gives the total and a kind of it (only the total is kept), tx queue 0
        // only kinds (kept), rx queue 0 what virtio_net gives on this machine: no drops.
        let rx3 = queue(
            QueueType::Rx,
            3,
            &[
                ("rx-packets", 900),
                ("rx-hw-drops", 12),
                ("rx-hw-drop-overruns", 5),
                ("rx-alloc-fail", 2),
            ],
        );
        let tx0 = queue(
            QueueType::Tx,
            0,
            &[("tx-hw-drop-errors", 4), ("tx-stop", 1)],
        );
        let virtio = queue(
            QueueType::Rx,
            0,
            &[("rx-packets", 421_117), ("rx-bytes", 1)],
        );
        let kept: Vec<(String, Layer, bool, u64)> = qstats_counters(&[&rx3, &tx0, &virtio])
            .into_iter()
            .map(|(k, v)| (k.name.into_owned(), k.layer, k.in_kfree_skb, v))
            .collect();
        assert_eq!(
            kept,
            [
                ("qstats:rx3-hw-drops".to_owned(), Layer::Nic, false, 12),
                ("qstats:rx3-alloc-fail".to_owned(), Layer::Driver, false, 2),
                ("qstats:tx0-hw-drop-errors".to_owned(), Layer::Nic, false, 4),
            ]
        );
    }

    #[test]
    fn a_devices_losses_seen_by_stats64_and_by_qstats_count_once() {
        let at = |read_ns, missed, hw, alloc| HostReading {
            read_ns,
            namespaces: 1,
            qstats_interfaces: Some(1),
            interfaces: vec![InterfaceReading {
                netns: Netns::inode(7),
                ifindex: 3,
                name: "eth0".into(),
                counters: [(stats64_counter("rx_missed_errors").unwrap(), missed)]
                    .into_iter()
                    .chain(qstats_counters(&[&queue(
                        QueueType::Rx,
                        0,
                        &[("rx-hw-drops", hw), ("rx-alloc-fail", alloc)],
                    )]))
                    .collect(),
                ..InterfaceReading::default()
            }],
        };
        let mut d = InterfaceDrops::default();
        d.update(&at(1, 0, 0, 0));
        d.update(&at(2, 6, 9, 40));
        assert_eq!(d.rows().len(), 3, "{:?}", d.rows());
        // The larger view of the device's losses, not 6 + 9; alloc-fail is no count of drops.
        assert_eq!(d.beyond_kfree_skb(|_| true), 9);
        assert_eq!(d.beyond_kfree_skb(|_| false), 9);
        assert_eq!(d.watched().qstats_interfaces, Some(1));
    }

    #[test]
    fn a_native_xdp_drop_that_two_driver_counters_count_adds_once_and_not_beside_its_verdict() {
        // virtio_net counts an XDP_DROP in rx0_drops and in rx0_xdp_drops.
        let virtio = names("rx0_drops rx0_xdp_drops");
        let at = |read_ns, xdp: u64, missed| {
            let mut r = reading(read_ns, 0, missed);
            r.interfaces[0]
                .counters
                .extend(driver_counters("virtio_net", &virtio, &[xdp, xdp]));
            r
        };
        let mut d = InterfaceDrops::default();
        d.update(&at(1, 100, 0));
        d.update(&at(2, 140, 2));
        assert_eq!(d.rows().len(), 3, "{:?}", d.rows());
        // The verdicts counted 40 already: only the nic's 2 are beyond them.
        assert_eq!(d.beyond_kfree_skb(|_| true), 2);
        // Untraced, the 40 frames add once.
        assert_eq!(d.beyond_kfree_skb(|_| false), 42);
        // Another interface's program traced: this one's (id 12) frames still add.
        assert_eq!(d.beyond_kfree_skb(|id| id == 99), 42);
        // Buffers virtio_net gave back for other reasons add beside traced verdicts.
        let mut r = at(3, 140, 2);
        r.interfaces[0]
            .counters
            .retain(|(k, _)| k.name != "ethtool:rx0_drops");
        r.interfaces[0]
            .counters
            .extend(driver_counters("virtio_net", &names("rx0_drops"), &[143]));
        d.update(&r);
        assert_eq!(d.beyond_kfree_skb(|id| id == 12), 5);
    }

    #[test]
    fn a_counter_that_goes_down_counts_again_from_zero() {
        let mut d = InterfaceDrops::default();
        d.update(&reading(1, 100, 0));
        d.update(&reading(2, 4, 0));
        assert_eq!(d.rows()[0].drops, 4);
    }

    #[test]
    fn the_json_of_a_row_names_its_layer() {
        let mut d = InterfaceDrops::default();
        d.update(&reading(1, 0, 0));
        d.update(&reading(2, 0, 3));
        assert_eq!(
            serde_json::to_value(&d.rows()[0]).unwrap(),
            serde_json::json!({"netns": "web", "interface": "veth-a", "counter": "rx_missed_errors",
                "layer": "nic", "in_kfree_skb": false, "counts_xdp_drops": false, "drops": 3})
        );
    }
}
