//! XDP programs' verdicts: every XDP program loaded on the host (every namespace, every
//! mode: program ids are the host's) gets a verdict counter (`kernel::xdp`) loaded as a
//! fexit program against it through the BPF trampoline. The program list is read again
//! each second on a thread of its own, so programs loaded later are followed; a program
//! that cannot be traced (no BTF, the load or attach refused) is named with the reason.
use std::{
    collections::HashMap,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{mpsc, Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use crate::{
    kernel::xdp::{verdict_counter, VerdictKey, XdpLayout, KEY_SIZE},
    pipeline::xdp::{XdpProgram, XdpReading},
};

/// How often the program list is read.
const POLL: Duration = Duration::from_secs(1);
/// (program, interface, namespace, verdict) keys the counter holds.
const MAX_KEYS: u32 = 4096;

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_LOOKUP_ELEM: i64 = 1;
const BPF_MAP_GET_NEXT_KEY: i64 = 4;
const BPF_PROG_LOAD: i64 = 5;
const BPF_PROG_GET_NEXT_ID: i64 = 11;
const BPF_PROG_GET_FD_BY_ID: i64 = 13;
const BPF_OBJ_GET_INFO_BY_FD: i64 = 15;
const BPF_RAW_TRACEPOINT_OPEN: i64 = 17;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FEXIT: u32 = 25;

/// bpf(2); the kernel's answer or its error.
fn bpf(cmd: i64, attr: &mut [u8]) -> std::io::Result<i64> {
    // SAFETY: `attr` is a zeroed `union bpf_attr` prefix of the length given, filled for
    // `cmd`; every pointer in it points at a buffer that outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}

fn fd_of(rc: i64) -> OwnedFd {
    // SAFETY: a descriptor the kernel just handed out, owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(rc as i32) }
}

fn put32(attr: &mut [u8], at: usize, v: u32) {
    attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(attr: &mut [u8], at: usize, v: u64) {
    attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
}

fn get32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// What droptrace needs of a program's `bpf_prog_info`.
struct ProgInfo {
    kind: u32,
    name: String,
    btf_id: u32,
    nr_func_info: u32,
}

fn prog_info(fd: &OwnedFd, func_info: Option<&mut [u8]>) -> std::io::Result<ProgInfo> {
    let mut info = [0u8; 232];
    if let Some(buf) = func_info {
        put32(&mut info, 132, 8);
        put64(&mut info, 136, buf.as_mut_ptr() as u64);
        put32(&mut info, 144, (buf.len() / 8) as u32);
    }
    let mut attr = [0u8; 16];
    put32(&mut attr, 0, fd.as_raw_fd() as u32);
    put32(&mut attr, 4, info.len() as u32);
    put64(&mut attr, 8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    let name = &info[64..80];
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    Ok(ProgInfo {
        kind: get32(&info, 0),
        name: String::from_utf8_lossy(&name[..end]).into_owned(),
        btf_id: get32(&info, 128),
        nr_func_info: get32(&info, 144),
    })
}

/// The BTF id of a program's main function (its `func_info` record at instruction 0).
fn main_func(fd: &OwnedFd, nr: u32) -> std::io::Result<Option<u32>> {
    let mut records = vec![0u8; nr as usize * 8];
    prog_info(fd, Some(&mut records))?;
    Ok(records
        .chunks_exact(8)
        .find(|r| get32(r, 0) == 0)
        .map(|r| get32(r, 4)))
}

/// Ids of every program loaded on the host.
fn program_ids() -> Vec<u32> {
    let mut ids = Vec::new();
    let mut next = 0u32;
    loop {
        let mut attr = [0u8; 12];
        put32(&mut attr, 0, next);
        if bpf(BPF_PROG_GET_NEXT_ID, &mut attr).is_err() {
            return ids;
        }
        next = get32(&attr, 4);
        ids.push(next);
    }
}

/// A traced program: the counter's program and its link (closing them detaches).
struct Tracing {
    _counter: OwnedFd,
    _link: OwnedFd,
}

struct Tracer {
    layout: XdpLayout,
    owned: OwnedFd,
    counts: Arc<OwnedFd>,
    /// Programs seen, traced or not (never looked at twice).
    seen: HashMap<u32, Option<Tracing>>,
    programs: Arc<Mutex<Vec<XdpProgram>>>,
    /// Say what is traced and what is not on stderr.
    say: bool,
}

impl Tracer {
    /// Reads the program list and traces the XDP programs not seen before.
    fn poll(&mut self) {
        for id in program_ids() {
            if self.seen.contains_key(&id) {
                continue;
            }
            let mut attr = [0u8; 12];
            put32(&mut attr, 0, id);
            let Ok(fd) = bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(fd_of) else {
                continue; // gone already
            };
            let Ok(info) = prog_info(&fd, None) else {
                continue;
            };
            if info.kind != BPF_PROG_TYPE_XDP {
                self.seen.insert(id, None);
                continue;
            }
            let (tracing, untraced) = match self.trace(id, &fd, &info) {
                Ok(t) => (Some(t), None),
                Err(why) => (None, Some(why)),
            };
            match &untraced {
                _ if !self.say => {}
                None => eprintln!("droptrace: tracing XDP program {} (id {id})", info.name),
                Some(why) => crate::format::warn(&format!(
                    "XDP program {} (id {id}) is not traced: {why}; its drops are not counted",
                    info.name
                )),
            }
            self.seen.insert(id, tracing);
            if let Ok(mut programs) = self.programs.lock() {
                programs.push(XdpProgram {
                    id,
                    name: info.name,
                    untraced,
                });
            }
        }
    }

    fn trace(&self, id: u32, target: &OwnedFd, info: &ProgInfo) -> Result<Tracing, String> {
        if info.btf_id == 0 || info.nr_func_info == 0 {
            return Err("it has no BTF (a fexit program needs its function's type)".into());
        }
        let func = main_func(target, info.nr_func_info)
            .map_err(|e| format!("reading its BTF function: {e}"))?
            .ok_or("it has no BTF function at its start")?;
        let insns: Vec<u8> = verdict_counter(
            &self.layout,
            id,
            self.owned.as_raw_fd(),
            self.counts.as_raw_fd(),
        )
        .into_iter()
        .flat_map(|i| i.to_bytes())
        .collect();
        let license = b"Dual MIT/GPL\0";
        let mut log = vec![0u8; 16 * 1024];
        let mut attr = [0u8; 128];
        put32(&mut attr, 0, BPF_PROG_TYPE_TRACING);
        put32(&mut attr, 4, (insns.len() / 8) as u32);
        put64(&mut attr, 8, insns.as_ptr() as u64);
        put64(&mut attr, 16, license.as_ptr() as u64);
        attr[48..58].copy_from_slice(b"dt_xdp_out");
        put32(&mut attr, 68, BPF_TRACE_FEXIT);
        put32(&mut attr, 108, func);
        put32(&mut attr, 112, target.as_raw_fd() as u32);
        let counter = match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => fd_of(fd),
            Err(_) => {
                // Again with the verifier's log, to say why.
                put32(&mut attr, 24, 1);
                put32(&mut attr, 28, log.len() as u32);
                put64(&mut attr, 32, log.as_mut_ptr() as u64);
                let e = bpf(BPF_PROG_LOAD, &mut attr).err();
                let end = log.iter().position(|&b| b == 0).unwrap_or(0);
                let text = String::from_utf8_lossy(&log[..end]);
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                return Err(format!(
                    "loading its fexit program: {}{}",
                    e.map_or_else(|| "refused".to_owned(), |e| e.to_string()),
                    if last.is_empty() {
                        String::new()
                    } else {
                        format!(" ({last})")
                    }
                ));
            }
        };
        let mut attr = [0u8; 16];
        put32(&mut attr, 8, counter.as_raw_fd() as u32);
        let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut attr)
            .map(fd_of)
            .map_err(|e| format!("attaching its fexit program: {e}"))?;
        Ok(Tracing {
            _counter: counter,
            _link: link,
        })
    }
}

/// Attaches the XDP exception programs this kernel has tracepoints for; false (said why)
/// when none could be. They live in the drop program's object, beside these.
pub fn attach_exceptions(ebpf: &mut aya::Ebpf, layout: &crate::kernel::xdp::XdpExcLayout) -> bool {
    let mut any = false;
    for &(tp, program, id) in &layout.tracepoints {
        let Some(id) = id else {
            continue; // `xdp_redirect_map_err` is gone from newer kernels
        };
        match super::tcp::load_and_attach(ebpf, program, &format!("btf_trace_{tp}"), tp, id) {
            Ok(_) => any = true,
            Err(e) => crate::format::warn(&format!("xdp:{tp} not counted: {e}")),
        }
    }
    any
}

/// The XDP programs traced, and their verdicts' counter.
pub struct XdpWatch {
    counts: Arc<OwnedFd>,
    programs: Arc<Mutex<Vec<XdpProgram>>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<Tracer>>,
    /// Dropped at `detach`: every counter detached.
    tracer: Option<Tracer>,
}

impl XdpWatch {
    /// Traces every XDP program there is now (before returning), then follows new ones.
    /// `owned` is the drop program's `XDP_OWNED` map.
    /// `say_later`: print what is found after the start too (not when a view has the
    /// terminal).
    pub fn start(layout: XdpLayout, owned: OwnedFd, say_later: bool) -> std::io::Result<XdpWatch> {
        let mut attr = [0u8; 64];
        put32(&mut attr, 0, BPF_MAP_TYPE_HASH);
        put32(&mut attr, 4, KEY_SIZE);
        put32(&mut attr, 8, 8);
        put32(&mut attr, 12, MAX_KEYS);
        attr[28..41].copy_from_slice(b"dt_xdp_counts");
        let counts = Arc::new(fd_of(bpf(BPF_MAP_CREATE, &mut attr)?));
        let programs = Arc::new(Mutex::new(Vec::new()));
        let mut tracer = Tracer {
            layout,
            owned,
            counts: Arc::clone(&counts),
            seen: HashMap::new(),
            programs: Arc::clone(&programs),
            say: true,
        };
        tracer.poll();
        tracer.say = say_later;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("xdp programs".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                    tracer.poll();
                }
                tracer
            })
            .map_err(std::io::Error::other)?;
        Ok(XdpWatch {
            counts,
            programs,
            stop: Some(stop),
            thread: Some(thread),
            tracer: None,
        })
    }

    /// The programs found and the verdicts counted so far (absolute).
    pub fn read(&self) -> XdpReading {
        let programs = self.programs.lock().map(|p| p.clone()).unwrap_or_default();
        let mut counts = Vec::new();
        let fd = self.counts.as_raw_fd() as u32;
        let mut key = [0u8; KEY_SIZE as usize];
        let mut next = [0u8; KEY_SIZE as usize];
        let mut first = true;
        loop {
            let mut attr = [0u8; 32];
            put32(&mut attr, 0, fd);
            if !first {
                put64(&mut attr, 8, key.as_ptr() as u64);
            }
            put64(&mut attr, 16, next.as_mut_ptr() as u64);
            if bpf(BPF_MAP_GET_NEXT_KEY, &mut attr).is_err() {
                break;
            }
            first = false;
            key = next;
            let mut value = [0u8; 8];
            let mut attr = [0u8; 32];
            put32(&mut attr, 0, fd);
            put64(&mut attr, 8, key.as_ptr() as u64);
            put64(&mut attr, 16, value.as_mut_ptr() as u64);
            if bpf(BPF_MAP_LOOKUP_ELEM, &mut attr).is_ok() {
                let k = VerdictKey::from_bytes(&key);
                counts.push((k, u64::from_ne_bytes(value)));
            }
        }
        XdpReading {
            programs,
            counts,
            exceptions: Vec::new(),
        }
    }

    /// Stops following programs and detaches every counter; the counts stay readable.
    pub fn detach(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            self.tracer = thread.join().ok();
        }
        self.tracer = None;
    }
}

impl Drop for XdpWatch {
    fn drop(&mut self) {
        self.detach();
    }
}
