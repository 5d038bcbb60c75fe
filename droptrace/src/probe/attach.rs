//! The only module that touches aya and the bpf() system call: loading the kernel program,
//! attaching it to skb:kfree_skb, reading the ring buffer and the kernel's counters, and
//! detaching.
use std::{collections::HashSet, os::fd::AsFd};

use aya::{
    maps::{Array, HashMap as BpfHashMap, IterableMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use droptrace_common::{self as wire, Config, GroupCount, GroupKey, Slot};
use tokio::io::unix::AsyncFd;

use super::loader::{recursion_misses, stand_in_btf};
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
}

/// Writes the kernel program's warnings to stderr.
struct KernelLog;

impl log::Log for KernelLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!("droptrace: kernel program: {}", record.args());
    }

    fn flush(&self) {}
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

/// The attached kernel program and the maps it fills.
pub struct Probe {
    /// `None` once detached: dropping `Ebpf` detaches and unloads the program.
    ebpf: Option<Ebpf>,
    program: &'static str,
    ring: AsyncFd<RingBuf<MapData>>,
    counters: PerCpuArray<MapData, [u64; wire::COUNTER_COUNT as usize]>,
    lost: BpfHashMap<MapData, GroupKey, u64>,
    groups: Option<BpfHashMap<MapData, GroupKey, GroupCount>>,
    /// Each CPU's group cache, with `CONFIG_GROUP_SLOTS`.
    slots: Option<(Array<MapData, [Slot; wire::SLOTS]>, SlotReader)>,
    /// Each CPU's matched drops at the last two readings: a CPU whose count has not
    /// moved since the one before has nothing new in its slots.
    matched_by_cpu: Vec<[u64; 2]>,
    epoch: Array<MapData, u32>,
    epoch_now: u32,
    /// The group map's readings: only the groups that moved are handed on.
    readings: MapReadings,
    log: Option<aya_log::EbpfLogger<KernelLog>>,
    missed_at_detach: u64,
    /// The TCP programs' ring and counters, where attached.
    tcp: Option<super::tcp::TcpProbe>,
}

impl Probe {
    /// Loads, configures and attaches the program. Needs a tokio runtime (for the ring
    /// buffer's readiness).
    pub fn attach(opts: ProbeOptions) -> Result<Probe, Error> {
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
            Some((map, SlotReader::default()))
        } else {
            None
        };
        Ok(Probe {
            ebpf: Some(ebpf),
            program,
            ring,
            counters,
            lost,
            groups: opts.sampling.map(|_| groups),
            slots,
            matched_by_cpu: vec![[0; 2]; cpus],
            epoch,
            epoch_now: 0,
            readings: MapReadings::default(),
            log,
            missed_at_detach: 0,
            tcp,
        })
    }

    /// A descriptor of the `XDP_OWNED` map, for the XDP verdict counters to mark the
    /// frames they see dropped.
    pub fn xdp_owned(&self) -> Option<std::os::fd::OwnedFd> {
        match self.ebpf.as_ref()?.map("XDP_OWNED")? {
            aya::maps::Map::PerCpuArray(data) => data.fd().as_fd().try_clone_to_owned().ok(),
            _ => None,
        }
    }

    /// Prints the kernel program's waiting warnings (`--verbose`).
    pub fn flush_log(&mut self) {
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
    }

    /// Starts a new sampling epoch: every group may send its samples again.
    pub fn next_epoch(&mut self) -> Result<(), Error> {
        if self.groups.is_none() {
            return Ok(());
        }
        self.epoch_now = self.epoch_now.wrapping_add(1);
        self.epoch
            .set(0, self.epoch_now, 0)
            .map_err(|e| ProbeError::Map("EPOCH", e).into())
    }

    /// The TCP programs, where attached.
    pub fn tcp(&mut self) -> Option<&mut super::tcp::TcpProbe> {
        self.tcp.as_mut()
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
        if let Ok(mut guard) = self.ring.readable_mut().await {
            guard.clear_ready();
        }
    }

    /// Hands every waiting event to `sink`, at most `limit`; returns how many.
    pub fn drain(&mut self, limit: usize, mut sink: impl FnMut(&[u8])) -> usize {
        let ring = self.ring.get_mut();
        let mut n = 0;
        while n < limit {
            let Some(item) = ring.next() else { break };
            sink(&item);
            n += 1;
        }
        n
    }

    /// The kernel's counters and its figures by group, summed over CPUs: the totals of
    /// the groups that moved since the last reading (all of them at the first) when the
    /// kernel counts by group, the lost drops by group otherwise.
    pub fn read_counters(&mut self) -> Result<(KernelCounters, Vec<(Group, u64)>), Error> {
        let per_cpu = self
            .counters
            .get(&0, 0)
            .map_err(|e| ProbeError::Map("COUNTERS", e))?;
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
            groups_in_kernel: self.groups.is_some(),
            read_ns: super::clock::boottime_ns(),
        };
        let mut by_group = Vec::new();
        if let Some(groups) = &self.groups {
            // Groups whose count in a CPU's slot grew since the last reading.
            let mut in_slots = HashSet::new();
            if let Some((map, reader)) = self.slots.as_mut() {
                let settled = self.ebpf.is_none();
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
                    let slots = map
                        .get(&index, 0)
                        .map_err(|e| ProbeError::Map("GROUP_SLOTS", e))?;
                    reader.read_cpu(cpu, &slots, settled, &mut in_slots);
                }
            }
            // A group is in one CPU's slot or in the shared map for that CPU, never both:
            // the slots' counts add to the map's.
            let reader = self.slots.as_ref().map(|(_, reader)| reader);
            let total = |key: &GroupKey, n: u64| n + reader.map_or(0, |r| r.total(key));
            let readings = &mut self.readings;
            readings.start();
            read_hash(groups, "GROUPS", |key, value: GroupCount| {
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
            read_hash(&self.lost, "LOST_GROUPS", |key, n: u64| {
                by_group.push((Group::from(key), n));
            })?;
        }
        Ok((counters, by_group))
    }

    /// Detaches and unloads the program; the maps stay readable so the last events can be
    /// drained and the final counters read.
    pub fn detach(&mut self) -> Result<(), Error> {
        if self.ebpf.is_some() {
            self.missed_at_detach = self.missed()?;
        }
        self.ebpf = None;
        Ok(())
    }

    fn missed(&self) -> Result<u64, Error> {
        let Some(ebpf) = &self.ebpf else {
            return Ok(self.missed_at_detach);
        };
        let prog = ebpf
            .program(self.program)
            .ok_or(ProbeError::MissingProgram(self.program))?;
        let fd = prog
            .fd()
            .map_err(|e| ProbeError::Program(self.program, Box::new(e)))?;
        recursion_misses(fd.as_fd())
            .map_err(|e| Error::Io("reading the program's statistics".into(), e))
    }
}

/// Calls `each` with every key and value of a hash map: in a few system calls (batch
/// lookups), or one key at a time on a kernel without them.
fn read_hash<V: aya::Pod + Default>(
    map: &BpfHashMap<MapData, GroupKey, V>,
    name: &'static str,
    mut each: impl FnMut(GroupKey, V),
) -> Result<(), Error> {
    let mut entries = Vec::new();
    let fd = map.map().fd().as_fd();
    // One value a key: the maps are shared by every CPU, not per-CPU.
    let batched = super::batch::entries(fd, 1, |key: GroupKey, values: &[V]| {
        entries.push((key, values[0]));
    });
    if batched.is_err() {
        entries.clear();
        for entry in map.iter() {
            entries.push(entry.map_err(|e| ProbeError::Map(name, e))?);
        }
    }
    for (key, value) in entries {
        each(key, value);
    }
    Ok(())
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
