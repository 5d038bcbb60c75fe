//! The live view's memory under a port scan, without a kernel: heap bytes held by the
//! pipeline's counts and samples, the snapshots and the view's state and history.
//!
//! cargo run --release --example scan_memory [PORTS]
//!
//! Every port (default all 65,536) gets drops for a minute of the source's clock, 8
//! samples and more, with the kernel's count per group as the default modes read it; a
//! snapshot goes to the view every 250 ms, as `droptrace` does. Prints the heap in use
//! (and its peak) after each part is built, counted by a global allocator that adds up
//! what is allocated and freed.
use std::{
    alloc::{GlobalAlloc, Layout, System},
    net::{IpAddr, Ipv4Addr},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use droptrace::live::snapshot::SourceInfo;
use droptrace::pipeline::aggregate::{Aggregator, KernelCounters};
use droptrace::pipeline::event::{Drop, Group, Packet, ETH_P_IP};
use droptrace::pipeline::names::Names;
use droptrace::sinks::view::snapshot;
use droptrace::tui::{
    state::{Action, State},
    update::update,
};

struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only adds up sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const NS: u64 = 1_000_000_000;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn drop_to(port: u16, t: u64) -> Drop {
    Drop {
        timestamp_ns: t,
        location: 0xffff_ffff_81f2_3c40,
        reason: 6,
        netns: droptrace::pipeline::event::Netns::new(4_026_532_000, 4097),
        ifindex: 1,
        len: 28,
        l2_len: 0,
        cpu: (t % 2) as u32,
        packet: Packet {
            ethertype: ETH_P_IP,
            addrs: Some((
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            )),
            ip_proto: Some(17),
            ports: Some((40_000, port)),
            icmp: None,
            tcp_flags: None,
        },
    }
}

fn main() {
    let ports: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PORTS: a number"))
        .unwrap_or(65_536);
    let before = IN_USE.load(Ordering::Relaxed);
    let mut agg = Aggregator::new();
    let names = Arc::new(Names::default());
    let mut state = State::new(SourceInfo::default(), false);
    let started = 1_000 * NS;
    let mut counts: Vec<u64> = vec![0; ports as usize];
    let groups: Vec<Group> = (0..ports).map(|p| drop_to(p as u16, 0).group()).collect();
    let read = |agg: &mut Aggregator, counts: &[u64], now: u64| {
        let total: u64 = counts.iter().sum();
        agg.set_kernel(
            KernelCounters {
                seen: total,
                matched: total,
                groups_in_kernel: true,
                read_ns: now,
                ..KernelCounters::default()
            },
            groups.iter().copied().zip(counts.iter().copied()),
        );
    };
    // Every port: 10 samples and 3 drops every 250 ms of the source's clock.
    for tick in 0..10u64 {
        let now = started + tick * NS / 4;
        for p in 0..ports {
            counts[p as usize] += 3;
            agg.add(&drop_to(p as u16, now + u64::from(p)));
        }
        read(&mut agg, &counts, now);
    }
    let agg_bytes = IN_USE.load(Ordering::Relaxed) - before;
    let mut snap_bytes = 0;
    // Then a minute of snapshots, one every 250 ms, as the live view takes them.
    for tick in 10..250u64 {
        let now = started + tick * NS / 4;
        for c in counts.iter_mut() {
            *c += 3;
        }
        read(&mut agg, &counts, now);
        let held = IN_USE.load(Ordering::Relaxed);
        let snap = snapshot(&agg, &names, started, now);
        snap_bytes = IN_USE.load(Ordering::Relaxed) - held;
        update(&mut state, Action::Snapshot(Box::new(snap)));
    }
    println!(
        "{ports} groups with 8 samples each: aggregator {:.1} MB, a snapshot {:.1} MB, view state and history {:.1} MB",
        mb(agg_bytes),
        mb(snap_bytes),
        mb(IN_USE.load(Ordering::Relaxed) - before - agg_bytes)
    );
    let end = IN_USE.load(Ordering::Relaxed) - before;
    println!(
        "after a minute of snapshots: {:.1} MB in use, peak {:.1} MB ({} rows)",
        mb(end),
        mb(PEAK.load(Ordering::Relaxed) - before),
        state.rows().len()
    );
    println!(
        "bytes a group: {:.0} in use, {:.0} at the peak",
        end as f64 / f64::from(ports),
        (PEAK.load(Ordering::Relaxed) - before) as f64 / f64::from(ports)
    );
}
