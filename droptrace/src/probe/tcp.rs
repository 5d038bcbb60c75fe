//! The TCP programs beside the drop program: attached one by one (a tracepoint this kernel
//! lacks, or a program it refuses, is said and left out), their ring buffer drained and
//! their counters read with the drop program's.
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    programs::BtfTracePoint,
    Ebpf,
};
use droptrace_common as wire;

use crate::{format::warn, kernel::tcp::TcpLayout, pipeline::tcp::TcpCounters, probe::Error};

use std::os::fd::{AsFd, OwnedFd};

use super::{
    loader::{recursion_misses, stand_in_btf},
    ProbeError,
};

pub struct TcpProbe {
    ring: RingBuf<MapData>,
    counters: PerCpuArray<MapData, [u64; wire::TCP_COUNTER_COUNT as usize]>,
    /// Names of the tracepoints attached.
    pub attached: Vec<&'static str>,
    /// The attached programs' own descriptors, for their `recursion_misses` (readable
    /// after the detach too).
    programs: Vec<OwnedFd>,
}

impl TcpProbe {
    /// Attaches what this kernel allows; `None` (said why) when nothing could be. Each TCP
    /// socket's drops are marked by the drop program itself (`TCP_CONFIG_MARK_DROPS`).
    pub fn attach(ebpf: &mut Ebpf, layout: &TcpLayout) -> Option<TcpProbe> {
        let mut attached = Vec::new();
        let mut programs = Vec::new();
        for tp in &layout.tracepoints {
            let Some(id) = tp.btf_id else {
                warn(&format!(
                    "this kernel has no tcp:{} tracepoint: not counted",
                    tp.name
                ));
                continue;
            };
            match load_and_attach(
                ebpf,
                tp.program,
                &format!("btf_trace_{}", tp.name),
                tp.name,
                id,
            ) {
                Ok(fd) => {
                    attached.push(tp.name);
                    programs.extend(fd);
                }
                Err(e) => warn(&format!("tcp:{} not counted: {e}", tp.name)),
            }
        }
        if attached.is_empty() {
            return None;
        }
        if layout.config.flags & wire::TCP_CONFIG_RETRANSMIT_HAS_ERR == 0
            && attached.contains(&"tcp_retransmit_skb")
        {
            warn("this kernel traces only the retransmits that went out (newer kernels, 6.18 among them, trace the failed ones too, as TcpRetransSegs counts them)");
        }
        if !layout.has_reset_reasons() && attached.contains(&"tcp_send_reset") {
            warn("this kernel gives no reason for the resets it sends (Linux 6.10 and later do): shown as unknown");
        }
        let taken = (|| -> Result<TcpProbe, Error> {
            let ring = RingBuf::try_from(
                ebpf.take_map("TCP_EVENTS")
                    .ok_or(ProbeError::MissingMap("TCP_EVENTS"))?,
            )
            .map_err(|e| ProbeError::Map("TCP_EVENTS", e))?;
            let counters = PerCpuArray::try_from(
                ebpf.take_map("TCP_COUNTERS")
                    .ok_or(ProbeError::MissingMap("TCP_COUNTERS"))?,
            )
            .map_err(|e| ProbeError::Map("TCP_COUNTERS", e))?;
            Ok(TcpProbe {
                ring,
                counters,
                attached: attached.clone(),
                programs: std::mem::take(&mut programs),
            })
        })();
        match taken {
            Ok(probe) => Some(probe),
            Err(e) => {
                warn(&format!("TCP retransmits and resets not counted: {e}"));
                None
            }
        }
    }

    /// Hands every waiting event to `sink`, at most `limit`; returns how many.
    pub fn drain(&mut self, limit: usize, mut sink: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(item) = self.ring.next() else { break };
            sink(&item);
            n += 1;
        }
        n
    }

    pub fn read_counters(&self) -> Result<TcpCounters, Error> {
        let per_cpu = self
            .counters
            .get(&0, 0)
            .map_err(|e| ProbeError::Map("TCP_COUNTERS", e))?;
        let sum = |i: u32| per_cpu.iter().map(|c| c[i as usize]).sum::<u64>();
        Ok(TcpCounters {
            retransmits: sum(wire::TCP_COUNTER_RETRANSMITS),
            resets_sent: sum(wire::TCP_COUNTER_RESETS_SENT),
            resets_received: sum(wire::TCP_COUNTER_RESETS_RECEIVED),
            lost: sum(wire::TCP_COUNTER_LOST),
            missed: self
                .programs
                .iter()
                .map(|fd| recursion_misses(fd.as_fd()).unwrap_or(0))
                .sum(),
        })
    }
}

pub(super) fn load_and_attach(
    ebpf: &mut Ebpf,
    program: &'static str,
    typedef: &str,
    tracepoint: &str,
    id: u32,
) -> Result<Option<OwnedFd>, Error> {
    let btf = stand_in_btf(typedef, id)?;
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .ok_or(ProbeError::MissingProgram(program))?
        .try_into()
        .map_err(|e| ProbeError::Program(program, Box::new(e)))?;
    prog.load(tracepoint, &btf)
        .map_err(|e| ProbeError::Program(program, Box::new(e)))?;
    prog.attach()
        .map_err(|e| ProbeError::Program(program, Box::new(e)))?;
    // Its own descriptor, for its statistics (none: they are not read).
    Ok(prog
        .fd()
        .ok()
        .and_then(|fd| fd.as_fd().try_clone_to_owned().ok()))
}
