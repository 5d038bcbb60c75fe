//! The seam between the probe's logic and the kernel: everything the probe asks of its
//! attached program's maps, as one trait. [`AyaMaps`] is the real one (aya and the bpf()
//! system call); the tests' fake holds plain values, so the live source, draining,
//! detaching, the batch reads' fallback and errors run without root.
use std::{future::Future, os::fd::AsFd};

use aya::{
    maps::{Array, HashMap as BpfHashMap, IterableMap, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use droptrace_common::{self as wire, GroupCount, GroupKey, Slot};
use tokio::io::unix::AsyncFd;

use super::{loader::recursion_misses, Error, ProbeError};

/// One CPU's counters of the kernel program (`COUNTER_*` indexes).
pub type CpuCounters = [u64; wire::COUNTER_COUNT as usize];

/// What the probe reads and writes of its loaded program.
pub trait KernelMaps {
    /// Waits until the ring buffer signals waiting events.
    fn readable(&mut self) -> impl Future<Output = ()>;
    /// Hands the next waiting event to `f`; false when none waits.
    fn next_event(&mut self, f: &mut dyn FnMut(&[u8])) -> bool;
    /// Each CPU's counters.
    fn counters(&self) -> Result<Vec<CpuCounters>, Error>;
    /// Runs the kernel skipped the program for (recursion); only while attached.
    fn missed(&self) -> Result<u64, Error>;
    /// One CPU's group cache (only when the program keeps one).
    fn slots(&self, cpu: u32) -> Result<[Slot; wire::SLOTS], Error>;
    /// Every group and its count, in the shared group map.
    fn groups(&self, each: &mut dyn FnMut(GroupKey, GroupCount)) -> Result<(), Error>;
    /// Every group's drops whose events found no room (streaming).
    fn lost_groups(&self, each: &mut dyn FnMut(GroupKey, u64)) -> Result<(), Error>;
    /// Starts sampling epoch `epoch`.
    fn set_epoch(&mut self, epoch: u32) -> Result<(), Error>;
    /// Detaches and unloads the program; the maps stay readable.
    fn detach(&mut self);
    fn attached(&self) -> bool;
    /// Prints the program's waiting log lines (`--verbose`).
    fn flush_log(&mut self) {}
    /// The TCP programs, where attached.
    fn tcp(&mut self) -> Option<&mut super::tcp::TcpProbe> {
        None
    }
    /// The XDP exceptions by key (absolute), where their programs are attached.
    fn xdp_exceptions(&self) -> Option<Vec<(wire::XdpExcKey, u64)>> {
        None
    }
}

/// Reads a map's entries with `batch` (a few system calls), or, when that fails (a kernel
/// without batch lookups), with `one_by_one`; never both: what a failed batch read had
/// already handed over is forgotten.
pub fn read_entries<K, V>(
    batch: impl FnOnce(&mut dyn FnMut(K, V)) -> std::io::Result<()>,
    one_by_one: impl FnOnce(&mut dyn FnMut(K, V)) -> Result<(), Error>,
    each: &mut dyn FnMut(K, V),
) -> Result<(), Error> {
    let mut entries = Vec::new();
    if batch(&mut |k, v| entries.push((k, v))).is_err() {
        entries.clear();
        one_by_one(&mut |k, v| entries.push((k, v)))?;
    }
    for (k, v) in entries {
        each(k, v);
    }
    Ok(())
}

/// Writes the kernel program's warnings to stderr.
pub struct KernelLog;

impl log::Log for KernelLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        eprintln!("droptrace: kernel program: {}", record.args());
    }

    fn flush(&self) {}
}

/// The loaded program's maps, through aya.
pub struct AyaMaps {
    /// `None` once detached: dropping `Ebpf` detaches and unloads the program.
    pub(super) ebpf: Option<Ebpf>,
    pub(super) program: &'static str,
    pub(super) ring: AsyncFd<RingBuf<MapData>>,
    pub(super) counters: PerCpuArray<MapData, CpuCounters>,
    pub(super) lost: BpfHashMap<MapData, GroupKey, u64>,
    pub(super) groups: BpfHashMap<MapData, GroupKey, GroupCount>,
    /// Each CPU's group cache, with `CONFIG_GROUP_SLOTS`.
    pub(super) slots: Option<Array<MapData, [Slot; wire::SLOTS]>>,
    pub(super) epoch: Array<MapData, u32>,
    pub(super) log: Option<aya_log::EbpfLogger<KernelLog>>,
    /// The TCP programs' ring and counters, where attached.
    pub(super) tcp: Option<super::tcp::TcpProbe>,
    /// The XDP exceptions by key, where their programs are attached (readable after
    /// the detach).
    pub(super) xdp_exceptions: Option<BpfHashMap<MapData, wire::XdpExcKey, u64>>,
}

/// A shared hash map's entries: batched, or one key at a time on a kernel without batch
/// lookups.
fn read_hash<V: aya::Pod + Default>(
    map: &BpfHashMap<MapData, GroupKey, V>,
    name: &'static str,
    each: &mut dyn FnMut(GroupKey, V),
) -> Result<(), Error> {
    let fd = map.map().fd().as_fd();
    read_entries(
        // One value a key: the maps are shared by every CPU, not per-CPU.
        |put| super::batch::entries(fd, 1, |key: GroupKey, values: &[V]| put(key, values[0])),
        |put| {
            for entry in map.iter() {
                let (k, v) = entry.map_err(|e| ProbeError::Map(name, e))?;
                put(k, v);
            }
            Ok(())
        },
        each,
    )
}

impl KernelMaps for AyaMaps {
    async fn readable(&mut self) {
        if let Ok(mut guard) = self.ring.readable_mut().await {
            guard.clear_ready();
        }
    }

    fn next_event(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
        let Some(item) = self.ring.get_mut().next() else {
            return false;
        };
        f(&item);
        true
    }

    fn counters(&self) -> Result<Vec<CpuCounters>, Error> {
        let per_cpu = self
            .counters
            .get(&0, 0)
            .map_err(|e| ProbeError::Map("COUNTERS", e))?;
        Ok(per_cpu.iter().copied().collect())
    }

    fn missed(&self) -> Result<u64, Error> {
        let ebpf = self
            .ebpf
            .as_ref()
            .ok_or(ProbeError::MissingProgram(self.program))?;
        let prog = ebpf
            .program(self.program)
            .ok_or(ProbeError::MissingProgram(self.program))?;
        let fd = prog
            .fd()
            .map_err(|e| ProbeError::Program(self.program, Box::new(e)))?;
        recursion_misses(fd.as_fd())
            .map_err(|e| Error::Io("reading the program's statistics".into(), e))
    }

    fn slots(&self, cpu: u32) -> Result<[Slot; wire::SLOTS], Error> {
        let map = self
            .slots
            .as_ref()
            .ok_or(ProbeError::MissingMap("GROUP_SLOTS"))?;
        Ok(map
            .get(&cpu, 0)
            .map_err(|e| ProbeError::Map("GROUP_SLOTS", e))?)
    }

    fn groups(&self, each: &mut dyn FnMut(GroupKey, GroupCount)) -> Result<(), Error> {
        read_hash(&self.groups, "GROUPS", each)
    }

    fn lost_groups(&self, each: &mut dyn FnMut(GroupKey, u64)) -> Result<(), Error> {
        read_hash(&self.lost, "LOST_GROUPS", each)
    }

    fn set_epoch(&mut self, epoch: u32) -> Result<(), Error> {
        self.epoch
            .set(0, epoch, 0)
            .map_err(|e| ProbeError::Map("EPOCH", e).into())
    }

    fn detach(&mut self) {
        self.ebpf = None;
    }

    fn attached(&self) -> bool {
        self.ebpf.is_some()
    }

    fn flush_log(&mut self) {
        if let Some(log) = self.log.as_mut() {
            log.flush();
        }
    }

    fn tcp(&mut self) -> Option<&mut super::tcp::TcpProbe> {
        self.tcp.as_mut()
    }

    fn xdp_exceptions(&self) -> Option<Vec<(wire::XdpExcKey, u64)>> {
        let map = self.xdp_exceptions.as_ref()?;
        Some(map.iter().filter_map(Result::ok).collect())
    }
}

#[cfg(test)]
pub mod fake {
    //! A kernel of plain values, for the probe's logic without root.
    use std::collections::VecDeque;

    use super::*;

    #[derive(Default)]
    pub struct FakeKernel {
        pub events: VecDeque<Vec<u8>>,
        pub counters: Vec<CpuCounters>,
        pub missed: u64,
        pub slots: Vec<[Slot; wire::SLOTS]>,
        pub groups: Vec<(GroupKey, GroupCount)>,
        pub lost: Vec<(GroupKey, u64)>,
        pub epoch: u32,
        pub detached: bool,
        /// Map reads fail (as a map the kernel took away would).
        pub broken: bool,
    }

    impl FakeKernel {
        fn check(&self, name: &'static str) -> Result<(), Error> {
            if self.broken {
                return Err(Error::Io(
                    format!("reading {name}"),
                    std::io::Error::from_raw_os_error(libc::EBADF),
                ));
            }
            Ok(())
        }
    }

    impl KernelMaps for FakeKernel {
        async fn readable(&mut self) {
            if self.events.is_empty() {
                std::future::pending::<()>().await;
            }
        }

        fn next_event(&mut self, f: &mut dyn FnMut(&[u8])) -> bool {
            match self.events.pop_front() {
                Some(e) => {
                    f(&e);
                    true
                }
                None => false,
            }
        }

        fn counters(&self) -> Result<Vec<CpuCounters>, Error> {
            self.check("COUNTERS")?;
            Ok(self.counters.clone())
        }

        fn missed(&self) -> Result<u64, Error> {
            if self.detached {
                return Err(ProbeError::MissingProgram("fake").into());
            }
            Ok(self.missed)
        }

        fn slots(&self, cpu: u32) -> Result<[Slot; wire::SLOTS], Error> {
            self.check("GROUP_SLOTS")?;
            Ok(self.slots[cpu as usize])
        }

        fn groups(&self, each: &mut dyn FnMut(GroupKey, GroupCount)) -> Result<(), Error> {
            self.check("GROUPS")?;
            for (k, v) in &self.groups {
                each(*k, *v);
            }
            Ok(())
        }

        fn lost_groups(&self, each: &mut dyn FnMut(GroupKey, u64)) -> Result<(), Error> {
            self.check("LOST_GROUPS")?;
            for (k, v) in &self.lost {
                each(*k, *v);
            }
            Ok(())
        }

        fn set_epoch(&mut self, epoch: u32) -> Result<(), Error> {
            self.epoch = epoch;
            Ok(())
        }

        fn detach(&mut self) {
            self.detached = true;
        }

        fn attached(&self) -> bool {
            !self.detached
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_batch_read_falls_back_to_one_key_at_a_time_without_doubles() {
        let mut got = Vec::new();
        read_entries(
            |put| {
                put(1, 10);
                Err(std::io::Error::from_raw_os_error(libc::EINVAL))
            },
            |put| {
                put(1, 10);
                put(2, 20);
                Ok(())
            },
            &mut |k: u32, v: u64| got.push((k, v)),
        )
        .unwrap();
        assert_eq!(got, [(1, 10), (2, 20)]);
    }

    #[test]
    fn a_batch_read_that_works_is_the_only_read() {
        let mut got = Vec::new();
        read_entries(
            |put| {
                put(3, 30);
                Ok(())
            },
            |_| panic!("read one by one after a batch read that worked"),
            &mut |k: u32, v: u64| got.push((k, v)),
        )
        .unwrap();
        assert_eq!(got, [(3, 30)]);
    }

    #[test]
    fn when_both_reads_fail_the_error_is_said() {
        let err = read_entries(
            |_| Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
            |_| Err(ProbeError::MissingMap("GROUPS").into()),
            &mut |_: u32, _: u64| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("GROUPS"), "{err}");
    }
}
