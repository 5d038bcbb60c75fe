//! Loading the kernel program and attaching it to skb:kfree_skb (aya), then the probe's
//! logic over its maps, through the [`KernelMaps`] seam: sampling epochs, the kernel's
//! counters and its figures by group, detaching.
use std::{collections::HashSet, os::fd::AsFd};

use aya::{
    maps::{Array, HashMap as BpfHashMap, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use droptrace_common::{self as wire, Config, GroupKey};
use tokio::io::unix::AsyncFd;

use super::{
    kernel::{AyaMaps, KernelLog, KernelMaps},
    loader::stand_in_btf,
};
use crate::{
    kernel::{
        layout::{Attach, KernelLayout},
        slots::{MapReadings, SlotReader},
    },
    pipeline::{aggregate::KernelCounters, event::Group},
    probe::{Error, ProbeError},
};

/// The compiled kernel program (built by `cargo xtask build-ebpf`, checked in).
static OBJECT: &[u8] = aya::include_bytes_aligned!("../../ebpf/droptrace.bpf.o");

const TP_BTF_PROGRAM: &str = "droptrace_kfree_skb";
const TRACEPOINT_PROGRAM: &str = "droptrace_kfree_skb_tp";

pub struct ProbeOptions {
    pub config: Config,
    /// (raw reason, `REASON_INCLUDE` or `REASON_EXCLUDE`).
    pub reason_marks: Vec<(u32, u8)>,
    pub ring_buffer_size: u32,
    pub layout: KernelLayout,
    /// BTF type id of `btf_trace_kfree_skb` in the running kernel (for `tp_btf`).
    pub tracepoint_btf_id: Option<u32>,
    /// Count every drop by group in the kernel and send only samples; `None` sends every
    /// drop.
    pub sampling: Option<Sampling>,
    /// Print the kernel program's warnings (aya-log); off, they are not even verified in.
    pub verbose: bool,
    /// Attach the TCP programs too (retransmits and resets), where the kernel has them.
    pub tcp: Option<crate::kernel::tcp::TcpLayout>,
    /// Attach the XDP exception programs too (with XDP counting on).
    pub xdp_exceptions: Option<crate::kernel::xdp::XdpExcLayout>,
}

/// How the kernel samples when it counts by group (`CONFIG_COUNT_GROUPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    /// Events per group, per CPU and per epoch (user space starts a new epoch every
    /// time it polls).
    pub per_group: u32,
    /// Events per CPU and per epoch, all groups together.
    pub per_cpu: u32,
    /// Groups the kernel's map holds; drops of groups beyond are in the total only.
    pub max_groups: u32,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling {
            per_group: 2,
            per_cpu: 256,
            max_groups: wire::GROUPS_MAX,
        }
    }
}

/// The attached kernel program and the maps it fills, with what is remembered between
/// readings.
pub struct Probe<K: KernelMaps = AyaMaps> {
    kernel: K,
    program: &'static str,
    /// The kernel counts by group (and sends samples).
    counts_groups: bool,
    /// Each CPU's group cache's reader, with `CONFIG_GROUP_SLOTS`.
    slots: Option<SlotReader>,
    /// Each CPU's matched drops at the last two readings: a CPU whose count has not
    /// moved since the one before has nothing new in its slots.
    matched_by_cpu: Vec<[u64; 2]>,
    epoch_now: u32,
    /// The group map's readings: only the groups that moved are handed on.
    readings: MapReadings,
    missed_at_detach: u64,
}

impl<K: KernelMaps> Probe<K> {
    /// The XDP exceptions counted so far by key (absolute); `None` when they are not
    /// counted.
    pub fn xdp_exceptions(&self) -> Option<Vec<(wire::XdpExcKey, u64)>> {
        self.kernel.xdp_exceptions()
    }

    /// The probe's logic over `kernel`, a program attached as `program` on `cpus` CPUs.
    pub fn new(
        kernel: K,
        program: &'static str,
        cpus: usize,
        counts_groups: bool,
        slots: bool,
    ) -> Probe<K> {
        Probe {
            kernel,
            program,
            counts_groups,
            slots: slots.then(SlotReader::default),
            matched_by_cpu: vec![[0; 2]; cpus],
            epoch_now: 0,
            readings: MapReadings::default(),
            missed_at_detach: 0,
        }
    }
}

impl Probe<AyaMaps> {
    /// Loads, configures and attaches the program. Needs a tokio runtime (for the ring
    /// buffer's readiness).
    pub fn attach(opts: ProbeOptions) -> Result<Probe<AyaMaps>, Error> {
        let mut config = opts.config;
        config.wakeup_events = wakeup_events(opts.ring_buffer_size, config.snaplen);
        // Only the map the mode uses gets its size; the other is made one entry small.
        // Possible CPUs: the program indexes its slot caches by CPU number.
        let cpus = aya::util::nr_cpus().map_or(1, |n| n.max(1));
        let (groups_max, lost_max, slots_max) = match opts.sampling {
            Some(s) => {
                config.flags |= wire::CONFIG_COUNT_GROUPS;
                // The slot cache holds groups beyond the map's: only for a map at least as
                // large, so a small `--max-groups` stays the bound it says.
                if s.max_groups as usize >= wire::SLOTS {
                    config.flags |= wire::CONFIG_GROUP_SLOTS;
                }
                config.samples_per_group = s.per_group;
                config.samples_per_cpu = s.per_cpu;
                // Samples are few: the kernel wakes the reader when it is idle.
                config.wakeup_events = 0;
                let slots = if config.flags & wire::CONFIG_GROUP_SLOTS != 0 {
                    u32::try_from(cpus).unwrap_or(u32::MAX)
                } else {
                    1
                };
                (s.max_groups.max(1), 1, slots)
            }
            None => (1, wire::LOST_GROUPS_MAX, 1),
        };
        raise_memlock_limit();
        // aya-log's level: warnings, or 0 (off, so the verifier drops them as dead code).
        let log_level: u8 = if opts.verbose { 2 } else { 0 };
        let mut tcp_config = opts
            .tcp
            .as_ref()
            .map_or(wire::TcpConfig::ZERO, |t| t.config);
        // The tp_btf drop program remembers each TCP socket's last drop when the TCP
        // programs go beside it (below).
        if opts.tcp.is_some()
            && opts.layout.attach == Attach::BtfTracepoint
            && opts.layout.skb.is_some()
        {
            tcp_config.flags |= wire::TCP_CONFIG_MARK_DROPS;
        }
        let release = super::clock::kernel_release();
        let object = if !allocates_in_tracing(&release) {
            std::borrow::Cow::Owned(preallocated(OBJECT, &["GROUPS", "LOST_GROUPS"])?)
        } else {
            std::borrow::Cow::Borrowed(OBJECT)
        };
        let mut ebpf = EbpfLoader::new()
            .btf(None)
            .override_global("CONFIG", &config, true)
            .override_global("AYA_LOG_LEVEL", &log_level, true)
            .override_global("TCP_CONFIG", &tcp_config, true)
            .override_global(
                "XDP_EXC_CONFIG",
                &opts
                    .xdp_exceptions
                    .as_ref()
                    .map_or(wire::XdpExcConfig::ZERO, |x| x.config),
                true,
            )
            .map_max_entries("EVENTS", opts.ring_buffer_size)
            .map_max_entries("GROUPS", groups_max)
            .map_max_entries("LOST_GROUPS", lost_max)
            .map_max_entries("GROUP_SLOTS", slots_max)
            .load(&object)
            .map_err(|e| ProbeError::Load(Box::new(e)))?;

        {
            let map = ebpf
                .map_mut("REASON_FILTER")
                .ok_or(ProbeError::MissingMap("REASON_FILTER"))?;
            let mut reasons: BpfHashMap<_, u32, u8> =
                BpfHashMap::try_from(map).map_err(|e| ProbeError::Map("REASON_FILTER", e))?;
            for (reason, mark) in &opts.reason_marks {
                reasons
                    .insert(reason, mark, 0)
                    .map_err(|e| ProbeError::Map("REASON_FILTER", e))?;
            }
        }

        let program = match &opts.layout.attach {
            Attach::BtfTracepoint => {
                let id = opts
                    .tracepoint_btf_id
                    .ok_or_else(|| Error::Btf("no btf_trace_kfree_skb typedef".into()))?;
                let btf = stand_in_btf(TRACEPOINT_TYPEDEF, id)?;
                let prog: &mut BtfTracePoint =
                    program_mut(&mut ebpf, TP_BTF_PROGRAM)?
                        .try_into()
                        .map_err(|e| ProbeError::Program(TP_BTF_PROGRAM, Box::new(e)))?;
                prog.load(TRACEPOINT, &btf)
                    .map_err(|e| ProbeError::Program(TP_BTF_PROGRAM, Box::new(e)))?;
                prog.attach().map_err(|e| ProbeError::Attach(Box::new(e)))?;
                TP_BTF_PROGRAM
            }
            Attach::Tracepoint => {
                let prog: &mut TracePoint = program_mut(&mut ebpf, TRACEPOINT_PROGRAM)?
                    .try_into()
                    .map_err(|e| ProbeError::Program(TRACEPOINT_PROGRAM, Box::new(e)))?;
                prog.load()
                    .map_err(|e| ProbeError::Program(TRACEPOINT_PROGRAM, Box::new(e)))?;
                prog.attach("skb", "kfree_skb")
                    .map_err(|e| ProbeError::Attach(Box::new(e)))?;
                TRACEPOINT_PROGRAM
            }
        };

        // Only beside the tp_btf drop program: the TCP programs are tp_btf too, and read
        // the same BTF offsets.
        let tcp = match (&opts.tcp, opts.layout.attach, opts.tracepoint_btf_id) {
            (Some(layout), Attach::BtfTracepoint, Some(_)) if opts.layout.skb.is_some() => {
                super::tcp::TcpProbe::attach(&mut ebpf, layout)
            }
            _ => None,
        };
        let xdp_exceptions = match (&opts.xdp_exceptions, opts.layout.attach) {
            (Some(layout), Attach::BtfTracepoint) if opts.layout.skb.is_some() => {
                super::xdp::attach_exceptions(&mut ebpf, layout)
            }
            _ => false,
        };
        let xdp_exceptions = if xdp_exceptions {
            let mut map: BpfHashMap<aya::maps::MapData, wire::XdpExcKey, u64> =
                BpfHashMap::try_from(take_map(&mut ebpf, "XDP_EXCEPTIONS")?)
                    .map_err(|e| ProbeError::Map("XDP_EXCEPTIONS", e))?;
            // The key that counts what finds the map full, there before any exception.
            map.insert(wire::XdpExcKey::OVERFLOW, 0, 0)
                .map_err(|e| ProbeError::Map("XDP_EXCEPTIONS", e))?;
            Some(map)
        } else {
            None
        };
        let log = if opts.verbose {
            Some(
                aya_log::EbpfLogger::init_with_logger(&mut ebpf, KernelLog).map_err(|e| {
                    Error::Io(
                        "reading the kernel program's log".into(),
                        std::io::Error::other(e),
                    )
                })?,
            )
        } else {
            None
        };
        let ring = RingBuf::try_from(take_map(&mut ebpf, "EVENTS")?)
            .map_err(|e| ProbeError::Map("EVENTS", e))?;
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as
        // long as the AsyncFd holds it.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| Error::Io("watching the ring buffer".into(), e.into_parts().1))?;
        let counters = PerCpuArray::try_from(take_map(&mut ebpf, "COUNTERS")?)
            .map_err(|e| ProbeError::Map("COUNTERS", e))?;
        let lost = BpfHashMap::try_from(take_map(&mut ebpf, "LOST_GROUPS")?)
            .map_err(|e| ProbeError::Map("LOST_GROUPS", e))?;
        let groups = BpfHashMap::try_from(take_map(&mut ebpf, "GROUPS")?)
            .map_err(|e| ProbeError::Map("GROUPS", e))?;
        let epoch = Array::try_from(take_map(&mut ebpf, "EPOCH")?)
            .map_err(|e| ProbeError::Map("EPOCH", e))?;
        let slots = if config.flags & wire::CONFIG_GROUP_SLOTS != 0 {
            let map = Array::try_from(take_map(&mut ebpf, "GROUP_SLOTS")?)
                .map_err(|e| ProbeError::Map("GROUP_SLOTS", e))?;
            Some(map)
        } else {
            None
        };
        let has_slots = slots.is_some();
        let maps = AyaMaps {
            ebpf: Some(ebpf),
            program,
            ring,
            counters,
            lost,
            groups,
            slots,
            epoch,
            log,
            tcp,
            xdp_exceptions,
        };
        Ok(Probe::new(
            maps,
            program,
            cpus,
            opts.sampling.is_some(),
            has_slots,
        ))
    }

    /// A descriptor of the `XDP_OWNED` map, for the XDP verdict counters to mark the
    /// frames they see dropped.
    pub fn xdp_owned(&self) -> Option<std::os::fd::OwnedFd> {
        match self.kernel.ebpf.as_ref()?.map("XDP_OWNED")? {
            aya::maps::Map::PerCpuArray(data) => data.fd().as_fd().try_clone_to_owned().ok(),
            _ => None,
        }
    }
}

impl<K: KernelMaps> Probe<K> {
    /// Prints the kernel program's waiting warnings (`--verbose`).
    pub fn flush_log(&mut self) {
        self.kernel.flush_log();
    }

    /// Starts a new sampling epoch: every group may send its samples again.
    pub fn next_epoch(&mut self) -> Result<(), Error> {
        if !self.counts_groups {
            return Ok(());
        }
        self.epoch_now = self.epoch_now.wrapping_add(1);
        self.kernel.set_epoch(self.epoch_now)
    }

    /// The TCP programs, where attached.
    pub fn tcp(&mut self) -> Option<&mut super::tcp::TcpProbe> {
        self.kernel.tcp()
    }

    /// Name of the attached program, for the status line.
    pub fn program(&self) -> &'static str {
        self.program
    }

    /// `tp_btf` or `tracepoint`.
    pub fn attach_mode(&self) -> &'static str {
        if self.program == TP_BTF_PROGRAM {
            "tp_btf"
        } else {
            "tracepoint"
        }
    }

    /// Waits until the kernel signals waiting events.
    pub async fn readable(&mut self) {
        self.kernel.readable().await;
    }

    /// Hands every waiting event to `sink`, at most `limit`; returns how many.
    pub fn drain(&mut self, limit: usize, mut sink: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < limit && self.kernel.next_event(&mut sink) {
            n += 1;
        }
        n
    }

    /// The kernel's counters and its figures by group, summed over CPUs: the totals of
    /// the groups that moved since the last reading (all of them at the first) when the
    /// kernel counts by group, the lost drops by group otherwise.
    pub fn read_counters(&mut self) -> Result<(KernelCounters, Vec<(Group, u64)>), Error> {
        let per_cpu = self.kernel.counters()?;
        let sum = |i: u32| per_cpu.iter().map(|c| c[i as usize]).sum::<u64>();
        let counters = KernelCounters {
            seen: sum(wire::COUNTER_SEEN),
            matched: sum(wire::COUNTER_MATCHED),
            lost: sum(wire::COUNTER_LOST),
            lost_ungrouped: sum(wire::COUNTER_LOST_UNGROUPED),
            missed: self.missed()?,
            sent: sum(wire::COUNTER_SENT),
            over_budget: sum(wire::COUNTER_OVER_BUDGET),
            anomalies: sum(wire::COUNTER_ANOMALIES),
            groups_in_kernel: self.counts_groups,
            read_ns: super::clock::boottime_ns(),
        };
        let mut by_group = Vec::new();
        if self.counts_groups {
            // Groups whose count in a CPU's slot grew since the last reading.
            let mut in_slots = HashSet::new();
            if let Some(reader) = self.slots.as_mut() {
                let settled = !self.kernel.attached();
                for (cpu, (values, matched)) in per_cpu
                    .iter()
                    .zip(self.matched_by_cpu.iter_mut())
                    .enumerate()
                {
                    let now = values[wire::COUNTER_MATCHED as usize];
                    // A run of the program may have counted its drop in `COUNTERS` and
                    // not yet in its slot when the last reading was made: a CPU is read
                    // once more after its count stops moving.
                    let moved = now != matched[0] || matched[0] != matched[1];
                    *matched = [now, matched[0]];
                    if !(moved || reader.unsure(cpu) || (settled && now != 0)) {
                        continue;
                    }
                    let index = u32::try_from(cpu).unwrap_or(u32::MAX);
                    let slots = self.kernel.slots(index)?;
                    reader.read_cpu(cpu, &slots, settled, &mut in_slots);
                }
            }
            // A group is in one CPU's slot or in the shared map for that CPU, never both:
            // the slots' counts add to the map's.
            let reader = self.slots.as_ref();
            let total = |key: &GroupKey, n: u64| n + reader.map_or(0, |r| r.total(key));
            let readings = &mut self.readings;
            readings.start();
            self.kernel.groups(&mut |key, value| {
                let moved_in_slots = !in_slots.is_empty() && in_slots.remove(&key);
                if readings.moved(key, value.count) || moved_in_slots {
                    by_group.push((Group::from(key), total(&key, value.count)));
                }
            })?;
            readings.finish();
            by_group.extend(
                in_slots
                    .into_iter()
                    .map(|key| (Group::from(key), total(&key, 0))),
            );
        } else {
            self.kernel.lost_groups(&mut |key, n| {
                by_group.push((Group::from(key), n));
            })?;
        }
        Ok((counters, by_group))
    }

    /// Detaches and unloads the program; the maps stay readable so the last events can be
    /// drained and the final counters read.
    pub fn detach(&mut self) -> Result<(), Error> {
        if self.kernel.attached() {
            self.missed_at_detach = self.kernel.missed()?;
        }
        self.kernel.detach();
        Ok(())
    }

    /// Whether the program has been detached.
    pub fn kernel_detached(&self) -> bool {
        !self.kernel.attached()
    }

    fn missed(&self) -> Result<u64, Error> {
        if !self.kernel.attached() {
            return Ok(self.missed_at_detach);
        }
        self.kernel.missed()
    }
}

/// Linux 6.1 gave hash maps that allocate as elements come an allocator safe in any
/// context (bpf_mem_alloc). Before it, such a map takes kmalloc in the drop path, and the
/// verifier lets a classic-tracepoint program use one only with a warning, once, that
/// taints the kernel: there the group maps are preallocated instead (still one value for
/// every CPU).
fn allocates_in_tracing(release: &str) -> bool {
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    version >= (6, 1)
}

/// Offset of `map_flags` in a legacy map definition (`struct bpf_map_def`: type, key
/// size, value size, max entries, flags, ...).
const MAP_DEF_FLAGS: u64 = 16;

/// The kernel object with the hash maps `names` preallocated: their `BPF_F_NO_PREALLOC`
/// flag cleared in the `maps` section.
fn preallocated(object: &[u8], names: &[&str]) -> Result<Vec<u8>, Error> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let bad = |what: String| Error::from(ProbeError::Object(what));
    let elf = object::File::parse(object).map_err(|e| bad(e.to_string()))?;
    let maps = elf
        .section_by_name("maps")
        .ok_or_else(|| bad("no maps section".into()))?;
    let (start, len) = maps
        .file_range()
        .ok_or_else(|| bad("an empty maps section".into()))?;
    let mut patched = object.to_vec();
    for name in names {
        let symbol = elf
            .symbols()
            .find(|s| s.name() == Ok(*name) && s.section_index() == Some(maps.index()))
            .ok_or_else(|| bad(format!("no map {name}")))?;
        let at = symbol.address() + MAP_DEF_FLAGS;
        if at + 4 > len {
            return Err(bad(format!("map {name} lies outside its section")));
        }
        let at = usize::try_from(start + at).map_err(|e| bad(e.to_string()))?;
        let flags = u32::from_le_bytes(patched[at..at + 4].try_into().unwrap_or_default());
        let cleared = flags & !NO_PREALLOC;
        patched[at..at + 4].copy_from_slice(&cleared.to_le_bytes());
    }
    Ok(patched)
}

/// `BPF_F_NO_PREALLOC`.
const NO_PREALLOC: u32 = 1;

/// The tracepoint, and the typedef the kernel's BTF describes it with.
const TRACEPOINT: &str = "kfree_skb";
pub const TRACEPOINT_TYPEDEF: &str = "btf_trace_kfree_skb";

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK. Raising it needs
/// CAP_SYS_RESOURCE; where that is missing (newer kernels charge the memory cgroup instead)
/// a failure is harmless, and an old kernel's load error will say EPERM.
fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain system call with a valid pointer.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const unlimited) };
}

/// Wake-ups cost the producing CPU; waking at every event is wasteful under a flood. Wake
/// once a sixteenth of the ring could be full (per CPU), at most every 1024 events.
fn wakeup_events(ring_buffer_size: u32, snaplen: u32) -> u32 {
    let record = size_of::<wire::DropEvent>() as u32 + snaplen + 8;
    let events = ring_buffer_size / record / 16;
    let events = events.clamp(1, 1024);
    1 << events.ilog2()
}

fn program_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::programs::Program, Error> {
    ebpf.program_mut(name)
        .ok_or_else(|| ProbeError::MissingProgram(name).into())
}

fn take_map(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, Error> {
    ebpf.take_map(name)
        .ok_or_else(|| ProbeError::MissingMap(name).into())
}

#[cfg(test)]
mod tests {
    use droptrace_common::{self as wire, GroupCount, GroupKey, Slot};

    use super::Probe;
    use crate::probe::kernel::{fake::FakeKernel, CpuCounters};

    fn cpu(matched: u64, sent: u64) -> CpuCounters {
        let mut c = [0; wire::COUNTER_COUNT as usize];
        c[wire::COUNTER_SEEN as usize] = matched + 1;
        c[wire::COUNTER_MATCHED as usize] = matched;
        c[wire::COUNTER_SENT as usize] = sent;
        c
    }

    fn key(dport: u16) -> GroupKey {
        GroupKey {
            location: 0xffff_ffff_81f6_3411,
            reason: 12,
            dport,
            flags: wire::EVENT_PORTS,
            ..GroupKey::default()
        }
    }

    fn count(n: u64) -> GroupCount {
        GroupCount {
            count: n,
            ..GroupCount::default()
        }
    }

    #[test]
    fn counters_are_summed_over_cpus_and_only_groups_that_moved_are_handed_on() {
        let fake = FakeKernel {
            counters: vec![cpu(5, 2), cpu(7, 1)],
            groups: vec![(key(1678), count(9)), (key(53), count(3))],
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 2, true, false);
        let (c, groups) = probe.read_counters().unwrap();
        assert_eq!((c.matched, c.seen, c.sent), (12, 14, 3));
        assert!(c.groups_in_kernel);
        let mut got: Vec<(Option<u16>, u64)> = groups.iter().map(|(g, n)| (g.dport, *n)).collect();
        got.sort();
        assert_eq!(got, [(Some(53), 3), (Some(1678), 9)]);
        // Read again with one group grown: only that one comes.
        probe.kernel.groups[0].1 = count(11);
        let (_, groups) = probe.read_counters().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].0.dport, groups[0].1), (Some(1678), 11));
    }

    #[test]
    fn a_groups_count_in_a_cpus_slot_adds_to_the_maps() {
        let mut slots = [Slot::default(); wire::SLOTS];
        slots[wire::slot_index(&key(1678))] = Slot {
            count: count(4),
            key: key(1678),
        };
        let fake = FakeKernel {
            counters: vec![cpu(10, 0)],
            slots: vec![slots],
            groups: vec![(key(1678), count(6))],
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 1, true, true);
        // A slot's key is trusted once two readings agree on it (the kernel may be
        // writing it): the first reading has the map's count only...
        let (_, groups) = probe.read_counters().unwrap();
        assert_eq!((groups.len(), groups[0].1), (1, 6));
        // ... and the CPU is read again, though its count did not move.
        let (_, groups) = probe.read_counters().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1, 10, "6 in the map and 4 in the slot");
        // Once detached, nothing writes: a slot is trusted at its first reading.
        let mut slots = [Slot::default(); wire::SLOTS];
        slots[wire::slot_index(&key(53))] = Slot {
            count: count(2),
            key: key(53),
        };
        probe.kernel.slots = vec![slots];
        probe.detach().unwrap();
        let (_, groups) = probe.read_counters().unwrap();
        assert!(
            groups.iter().any(|(g, n)| g.dport == Some(53) && *n == 2),
            "{groups:?}"
        );
    }

    #[test]
    fn streaming_reads_the_lost_groups_and_starts_no_epochs() {
        let fake = FakeKernel {
            counters: vec![cpu(3, 1)],
            lost: vec![(key(80), 2)],
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 1, false, false);
        probe.next_epoch().unwrap();
        assert_eq!(probe.kernel.epoch, 0, "no epochs without counting by group");
        let (c, groups) = probe.read_counters().unwrap();
        assert!(!c.groups_in_kernel);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].1, 2);
    }

    #[test]
    fn missed_runs_are_kept_from_the_moment_of_detaching() {
        let fake = FakeKernel {
            counters: vec![cpu(1, 1)],
            missed: 4,
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 1, true, false);
        probe.next_epoch().unwrap();
        assert_eq!(probe.kernel.epoch, 1);
        probe.detach().unwrap();
        assert!(probe.kernel.detached);
        // The program is gone; its last figure stays.
        let (c, _) = probe.read_counters().unwrap();
        assert_eq!(c.missed, 4);
        probe.detach().unwrap();
    }

    #[test]
    fn a_map_that_cannot_be_read_is_an_error_not_zero() {
        let fake = FakeKernel {
            counters: vec![cpu(1, 1)],
            broken: true,
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 1, true, false);
        let err = probe.read_counters().unwrap_err();
        assert!(err.to_string().contains("COUNTERS"), "{err}");
    }

    #[test]
    fn draining_hands_on_at_most_the_limit() {
        let fake = FakeKernel {
            events: (0..5u8).map(|i| vec![i]).collect(),
            ..FakeKernel::default()
        };
        let mut probe = Probe::new(fake, "fake", 1, true, false);
        let mut got = Vec::new();
        assert_eq!(probe.drain(3, |b| got.push(b[0])), 3);
        assert_eq!(probe.drain(10, |b| got.push(b[0])), 2);
        assert_eq!(probe.drain(10, |b| got.push(b[0])), 0);
        assert_eq!(got, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn kernels_before_6_1_get_preallocated_group_maps() {
        assert!(!super::allocates_in_tracing("6.0.19-amd64"));
        assert!(!super::allocates_in_tracing("5.15.0-91-generic"));
        assert!(!super::allocates_in_tracing("unknown"));
        assert!(super::allocates_in_tracing("6.1.0-57-amd64"));
        assert!(super::allocates_in_tracing("6.18.0"));
        assert!(super::allocates_in_tracing("7.0.1"));
        // Read the flags back as aya does.
        let flags = |object: &[u8], name: &str| {
            let obj = aya_obj::Object::parse(object).unwrap();
            obj.maps[name].map_flags()
        };
        let object = super::preallocated(super::OBJECT, &["GROUPS", "LOST_GROUPS"]).unwrap();
        for name in ["GROUPS", "LOST_GROUPS"] {
            assert_eq!(flags(super::OBJECT, name), super::NO_PREALLOC, "{name}");
            assert_eq!(flags(&object, name), 0, "{name}");
        }
        assert_eq!(flags(&object, "REASON_FILTER"), 0);
        assert_eq!(flags(&object, "EPOCH"), flags(super::OBJECT, "EPOCH"));
        assert!(super::preallocated(super::OBJECT, &["NO_SUCH_MAP"]).is_err());
    }

    #[test]
    fn wakeups_scale_with_the_ring() {
        assert_eq!(super::wakeup_events(4096, 0), 2);
        assert_eq!(super::wakeup_events(1 << 16, 0), 32);
        assert_eq!(super::wakeup_events(4 << 20, 0), 1024);
        assert_eq!(super::wakeup_events(1 << 30, 0), 1024);
    }
}
