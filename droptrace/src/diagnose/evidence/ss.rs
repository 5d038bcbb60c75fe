//! `ss -H -t -l -n -p -e -m` and `ss -H -u -a -n -p -m`: sockets with their queues, owners
//! and memory, including the `d` (drops) field of skmem.
//!
//! For a listening TCP socket Recv-Q is the current accept queue and Send-Q the backlog, so
//! a full queue shows as Recv-Q > Send-Q; the listener's skmem `d` counts the SYNs and
//! ACKs it dropped. For UDP, `d` counts datagrams dropped at a full receive buffer.
//!
//! droptrace no longer runs ss: it reads the sockets from the kernel (`kernel::sockdiag`)
//! and keeps them in ss's text (`render`), the form its snapshots and baselines have
//! always stored, which this parser reads whichever wrote it.
use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::IpAddr,
};

use serde::Serialize;
use thiserror::Error;

use super::snippet;
use crate::kernel::sockdiag::{self, DiagSocket};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SsError {
    #[error("ss output, line {line}: {what}: `{text}`")]
    Line {
        line: usize,
        what: &'static str,
        text: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Raw,
    Sctp,
    Mptcp,
}

impl Proto {
    fn from_netid(word: &str) -> Option<Proto> {
        Some(match word {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "raw" => Proto::Raw,
            "sctp" => Proto::Sctp,
            "mptcp" => Proto::Mptcp,
            _ => return None,
        })
    }
}

/// `127.0.0.1:5302`, `[::1]:5303`, `*:5304`, `0.0.0.0%lo:5305`, `[fe80::1]%dtq0:5306`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The address without brackets; `*` for "any" as ss prints it.
    pub addr: String,
    /// None for `*` (any port: listeners' and unconnected sockets' peers).
    pub port: Option<u16>,
    /// The `%iface` after the address: the socket is bound to that device.
    pub scope: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SsProcess {
    pub name: String,
    pub pid: u32,
    pub fd: Option<u32>,
}

/// `skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d24)`, in bytes except drops.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkMem {
    /// `r`: memory holding received data.
    pub rmem_alloc: u64,
    /// `rb`: the receive buffer size (SO_RCVBUF, doubled by the kernel).
    pub rcvbuf: u64,
    /// `t`: memory of data being transmitted.
    pub wmem_alloc: u64,
    /// `tb`: the send buffer size.
    pub sndbuf: u64,
    /// `f`: forward-allocated memory.
    pub fwd_alloc: u64,
    /// `w`: memory queued for sending.
    pub wmem_queued: u64,
    /// `o`: option memory.
    pub optmem: u64,
    /// `bl`: the socket backlog (packets that arrived while the socket was locked).
    pub backlog: Option<u64>,
    /// `d`: packets the socket dropped (sk_drops).
    pub drops: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Socket {
    pub proto: Proto,
    /// As ss prints it: LISTEN, ESTAB, UNCONN, SYN-SENT...
    pub state: String,
    pub recv_q: u64,
    pub send_q: u64,
    pub local: Endpoint,
    pub peer: Endpoint,
    /// Every process holding the socket (forked servers share one); needs -p and the right
    /// to see them.
    pub processes: Vec<SsProcess>,
    /// `ino:` (-e).
    pub inode: Option<u64>,
    /// `uid:` (-e; printed for non-root owners).
    pub uid: Option<u32>,
    /// `v6only:` (-e, IPv6 listeners).
    pub v6only: Option<bool>,
    pub skmem: Option<SkMem>,
}

/// Parses ss output for `proto` (ss prints no Netid column when asked for one protocol; if
/// it does, the column wins). A header line, if present, is skipped. Continuation lines
/// (`-m`'s skmem, `-i`, `-e` details) start with whitespace and belong to the socket above.
pub fn parse_sockets(text: &str, proto: Proto) -> Result<Vec<Socket>, SsError> {
    let mut sockets: Vec<Socket> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let err = |what| SsError::Line {
            line: index + 1,
            what,
            text: snippet(line),
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let Some(last) = sockets.last_mut() else {
                return Err(err("details before any socket"));
            };
            if let Some(skmem) = field(line, "skmem:(") {
                last.skmem = Some(parse_skmem(skmem).ok_or_else(|| err("bad skmem"))?);
            }
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        if matches!(first, "State" | "Netid" | "Recv-Q") {
            continue;
        }
        sockets.push(parse_socket(line, proto).map_err(err)?);
    }
    Ok(sockets)
}

fn parse_socket(line: &str, proto: Proto) -> Result<Socket, &'static str> {
    let mut words = line.split_whitespace().peekable();
    let proto = match words.peek().and_then(|w| Proto::from_netid(w)) {
        Some(p) => {
            words.next();
            p
        }
        None => proto,
    };
    let (Some(state), Some(recv_q), Some(send_q), Some(local), Some(peer)) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return Err("expected `State Recv-Q Send-Q Local Peer ...`");
    };
    let skmem = match field(line, "skmem:(") {
        Some(s) => Some(parse_skmem(s).ok_or("bad skmem")?),
        None => None,
    };
    Ok(Socket {
        proto,
        state: state.to_string(),
        recv_q: recv_q.parse().map_err(|_| "Recv-Q is not a number")?,
        send_q: send_q.parse().map_err(|_| "Send-Q is not a number")?,
        local: parse_endpoint(local).ok_or("bad local address")?,
        peer: parse_endpoint(peer).ok_or("bad peer address")?,
        processes: parse_users(line).ok_or("bad users:(...)")?,
        inode: word_value(line, "ino:").and_then(|v| v.parse().ok()),
        uid: word_value(line, "uid:").and_then(|v| v.parse().ok()),
        v6only: word_value(line, "v6only:").map(|v| v == "1"),
        skmem,
    })
}

fn parse_endpoint(text: &str) -> Option<Endpoint> {
    let (host, port) = text.rsplit_once(':')?;
    let port = match port {
        "*" => None,
        p => Some(p.parse().ok()?),
    };
    let (addr, scope) = if let Some(inner) = host.strip_prefix('[') {
        let (addr, after) = inner.split_once(']')?;
        let scope = match after {
            "" => None,
            s => Some(s.strip_prefix('%')?),
        };
        (addr, scope)
    } else {
        match host.split_once('%') {
            Some((addr, scope)) => (addr, Some(scope)),
            None => (host, None),
        }
    };
    if addr.is_empty() || scope == Some("") {
        return None;
    }
    Some(Endpoint {
        addr: addr.to_string(),
        port,
        scope: scope.map(str::to_string),
    })
}

/// `users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))`. Names are printed raw between
/// quotes, so each entry is found by its `",pid=` rather than by splitting on commas.
fn parse_users(line: &str) -> Option<Vec<SsProcess>> {
    let Some(at) = line.find("users:(") else {
        return Some(Vec::new());
    };
    let mut rest = &line[at + "users:(".len()..];
    let mut out = Vec::new();
    while let Some(entry) = rest.strip_prefix("(\"") {
        let (name, after) = entry.split_once("\",pid=")?;
        let end = after.find(')')?;
        let mut fields = after[..end].split(',');
        let pid = fields.next()?.parse().ok()?;
        let fd = fields.find_map(|f| f.strip_prefix("fd=")?.parse().ok());
        out.push(SsProcess {
            name: name.to_string(),
            pid,
            fd,
        });
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    Some(out)
}

/// The text between `prefix` and the next `)`.
fn field<'a>(line: &'a str, prefix: &str) -> Option<&'a str> {
    let start = line.find(prefix)? + prefix.len();
    let len = line[start..].find(')')?;
    Some(&line[start..start + len])
}

/// The value of a whitespace-separated `key:value` word.
fn word_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

fn parse_skmem(text: &str) -> Option<SkMem> {
    let mut m = SkMem {
        rmem_alloc: 0,
        rcvbuf: 0,
        wmem_alloc: 0,
        sndbuf: 0,
        fwd_alloc: 0,
        wmem_queued: 0,
        optmem: 0,
        backlog: None,
        drops: None,
    };
    let mut seen = 0;
    for item in text.split(',') {
        let digits = item.find(|c: char| c.is_ascii_digit())?;
        let (key, value) = item.split_at(digits);
        let value: u64 = value.parse().ok()?;
        match key {
            "r" => m.rmem_alloc = value,
            "rb" => m.rcvbuf = value,
            "t" => m.wmem_alloc = value,
            "tb" => m.sndbuf = value,
            "f" => m.fwd_alloc = value,
            "w" => m.wmem_queued = value,
            "o" => m.optmem = value,
            "bl" => m.backlog = Some(value),
            "d" => m.drops = Some(value),
            _ => continue,
        }
        seen += 1;
    }
    (seen >= 4).then_some(m)
}

/// The processes holding each socket open, by the socket's inode (inodes are unique on the
/// host, so one map serves every namespace).
pub type Owners = HashMap<u64, Vec<SsProcess>>;

/// The inode of a `/proc/PID/fd/N` link's target when it is a socket (`socket:[1234]`).
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The sockets of a dump as `ss -H -n -p -e -m` prints them, one line and its skmem line
/// each: what `parse_sockets` reads. `owners`: the processes by inode; `devices`: interface
/// names by index, for sockets bound to one.
/// A process name as written into the rendered text: any process sets its own (up to 15
/// bytes, newlines included), so what could end the name or forge a field (quotes,
/// brackets, commas, whitespace and line ends, NUL) becomes `?`. Other control characters
/// stay, as ss prints them: they cannot break a line, and what shows the name escapes them.
fn plain_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, '"' | '(' | ')' | ',' | '\\' | '\0') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

pub fn render(sockets: &[DiagSocket], owners: &Owners, devices: &BTreeMap<u32, String>) -> String {
    let mut out = String::with_capacity(sockets.len() * 160);
    for s in sockets {
        let v6only = s.v6only.unwrap_or(false);
        let device = (s.ifindex != 0).then(|| {
            devices
                .get(&s.ifindex)
                .cloned()
                .unwrap_or_else(|| format!("if{}", s.ifindex))
        });
        let _ = write!(
            out,
            "{} {} {} {} {}",
            sockdiag::state_name(s.state),
            s.rqueue,
            s.wqueue,
            endpoint(s.local, s.local_port, v6only, device.as_deref()),
            endpoint(s.peer, s.peer_port, v6only, None),
        );
        if let Some(procs) = owners.get(&u64::from(s.inode)).filter(|_| s.inode != 0) {
            out.push_str(" users:(");
            for (i, p) in procs.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(out, "{sep}(\"{}\",pid={}", plain_name(&p.name), p.pid);
                if let Some(fd) = p.fd {
                    let _ = write!(out, ",fd={fd}");
                }
                out.push(')');
            }
            out.push(')');
        }
        if s.uid != 0 {
            let _ = write!(out, " uid:{}", s.uid);
        }
        let _ = write!(out, " ino:{}", s.inode);
        if let Some(v6only) = s.v6only {
            let _ = write!(out, " v6only:{}", u8::from(v6only));
        }
        out.push('\n');
        if let [r, rb, t, tb, f, w, o, rest @ ..] = s.skmem.as_slice() {
            let _ = write!(out, "\t skmem:(r{r},rb{rb},t{t},tb{tb},f{f},w{w},o{o}");
            if let Some(bl) = rest.first() {
                let _ = write!(out, ",bl{bl}");
            }
            if let Some(d) = rest.get(1) {
                let _ = write!(out, ",d{d}");
            }
            out.push_str(")\n");
        }
    }
    out
}

/// An end as ss prints it: `127.0.0.1:80`, `[::1]:80`, `*:80` (IPv6 "any" taking IPv4
/// too), `0.0.0.0%lo:80`, `*` for port 0.
fn endpoint(addr: IpAddr, port: u16, v6only: bool, device: Option<&str>) -> String {
    let host = match addr {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) if a.is_unspecified() && !v6only => "*".to_owned(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let scope = device.map(|d| format!("%{d}")).unwrap_or_default();
    let port = if port == 0 {
        "*".to_owned()
    } else {
        port.to_string()
    };
    format!("{host}{scope}:{port}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(addr: &str, port: Option<u16>, scope: Option<&str>) -> Endpoint {
        Endpoint {
            addr: addr.into(),
            port,
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn tcp_listeners_with_full_queues() {
        let s = parse_sockets(fixture!("ss-tcp-listen.txt"), Proto::Tcp).unwrap();
        assert_eq!(s.len(), 4);
        let full = &s[0];
        assert_eq!((full.proto, full.state.as_str()), (Proto::Tcp, "LISTEN"));
        assert_eq!(
            (full.recv_q, full.send_q),
            (2, 1),
            "accept queue 2 over backlog 1"
        );
        assert_eq!(full.local, ep("127.0.0.1", Some(5302), None));
        assert_eq!(full.peer, ep("0.0.0.0", None, None));
        assert_eq!(full.processes[0].name, "python3");
        assert_eq!(full.processes[0].fd, Some(8));
        assert_eq!(full.inode, Some(39222));
        let m = full.skmem.as_ref().unwrap();
        assert_eq!(
            (m.rcvbuf, m.sndbuf, m.drops, m.backlog),
            (131072, 16384, Some(24), Some(0))
        );

        assert_eq!(
            (s[1].send_q, s[1].skmem.as_ref().unwrap().drops),
            (4096, Some(0))
        );
        let v6 = &s[2];
        assert_eq!(v6.local, ep("::1", Some(5303), None));
        assert_eq!(v6.peer, ep("::", None, None));
        assert_eq!((v6.v6only, v6.recv_q), (Some(true), 2));
        let any = &s[3];
        assert_eq!(
            (any.local.clone(), any.v6only),
            (ep("*", Some(5304), None), Some(false))
        );
        assert_eq!(any.peer, ep("*", None, None));
    }

    #[test]
    fn udp_with_drops_and_scopes() {
        let s = parse_sockets(fixture!("ss-udp-all.txt"), Proto::Udp).unwrap();
        assert_eq!(s.len(), 5);
        let small = &s[0];
        assert_eq!((small.state.as_str(), small.recv_q), ("UNCONN", 1280));
        let m = small.skmem.as_ref().unwrap();
        assert_eq!((m.rmem_alloc, m.rcvbuf, m.drops), (1280, 2304, Some(299)));
        assert_eq!(s[1].local, ep("0.0.0.0", Some(5305), Some("lo")));
        assert_eq!(s[2].local, ep("::1", Some(5301), None));
        assert_eq!(s[2].skmem.as_ref().unwrap().drops, Some(299));
        assert_eq!(s[3].local, ep("fe80::1", Some(5306), Some("dtq0")));
        assert_eq!(s[4].local, ep("*", Some(5307), None));
        assert!(s
            .iter()
            .all(|s| s.processes.len() == 1 && s.inode.is_none()));
    }

    #[test]
    fn a_connections_own_drops() {
        // Five segments outside its window were dropped at it (README.capture).
        let s = parse_sockets(fixture!("ss-tcp-connected.txt"), Proto::Tcp).unwrap();
        assert_eq!(s.len(), 1);
        let c = &s[0];
        assert_eq!(c.state, "CLOSE-WAIT");
        assert_eq!(
            (c.local.addr.as_str(), c.local.port),
            ("10.98.0.2", Some(8080))
        );
        assert_eq!(
            (c.peer.addr.as_str(), c.peer.port),
            ("10.98.0.1", Some(60680))
        );
        assert_eq!(c.processes[0].name, "python3");
        assert_eq!(c.skmem.as_ref().and_then(|m| m.drops), Some(5));
    }

    #[test]
    fn all_tcp_states() {
        let s = parse_sockets(fixture!("ss-tcp-all.txt"), Proto::Tcp).unwrap();
        assert!(s.iter().any(|s| s.state == "SYN-SENT"));
        // Accepted by the kernel but not by the program: no owner yet.
        let queued = s
            .iter()
            .find(|s| s.state == "ESTAB" && s.local.port == Some(5302))
            .unwrap();
        assert!(queued.processes.is_empty());
        assert!(s.iter().all(|s| s.skmem.is_some()));
    }

    #[test]
    fn netid_header_and_shared_sockets() {
        let text = "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n\
                    udp   UNCONN 0      0      0.0.0.0:53 0.0.0.0:* \
                    users:((\"a,b\\\"),c\",pid=7,fd=3),(\"worker\",pid=8,fd=3)) uid:101\n\
                    \t skmem:(r0,rb212992,t0,tb212992,f0,w0,o0)\n";
        let s = parse_sockets(text, Proto::Tcp).unwrap();
        assert_eq!(s[0].proto, Proto::Udp);
        assert_eq!(s[0].processes.len(), 2);
        assert_eq!(s[0].processes[0].name, "a,b\\\"),c");
        assert_eq!((s[0].processes[1].pid, s[0].uid), (8, Some(101)));
        assert_eq!(s[0].skmem.as_ref().unwrap().drops, None);
    }

    fn capture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/fixtures/netlink/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    /// The dumps captured in one namespace, rendered, read as what ss printed of the same
    /// sockets at the same moment (`capture-sockdiag.sh`), with the owners ss found given
    /// by inode as the /proc walk gives them.
    #[test]
    fn rendered_dumps_read_as_ss_printed_them() {
        let devices = BTreeMap::from([(1, "lo".to_owned()), (3, "dtq0".to_owned())]);
        for (name, proto) in [
            ("tcp-listen", Proto::Tcp),
            ("tcp-connected", Proto::Tcp),
            ("udp", Proto::Udp),
        ] {
            let text = String::from_utf8(capture(&format!("sock_diag.{name}.ss.txt"))).unwrap();
            let printed = parse_sockets(&text, proto).unwrap();
            let owners: Owners = printed
                .iter()
                .filter(|s| !s.processes.is_empty())
                .filter_map(|s| Some((s.inode?, s.processes.clone())))
                .collect();
            let mut dump = Vec::new();
            for family in ["v4", "v6"] {
                let bytes = capture(&format!("sock_diag.{name}.{family}.bin"));
                dump.extend(sockdiag::parse_dump(&bytes).unwrap());
            }
            let rendered = render(&dump, &owners, &devices);
            assert_eq!(
                parse_sockets(&rendered, proto).unwrap(),
                printed,
                "{name}:\n{rendered}"
            );
        }
    }

    /// A process names itself: a name that would end the field or forge one (a quote, a
    /// bracket, a newline and a socket line) is written with `?`, and every socket of the
    /// dump still reads, owned by that process.
    #[test]
    fn a_process_name_cannot_break_or_forge_the_rendered_text() {
        let bytes = capture("sock_diag.udp.v4.bin");
        let dump = sockdiag::parse_dump(&bytes).unwrap();
        let inode = u64::from(dump.iter().find(|s| s.inode != 0).unwrap().inode);
        let hostile = "x\"),(\"y\",pid=1\nUNCONN 0 0 *:1 *:* ino:9 skmem:(";
        let owners: Owners = HashMap::from([(
            inode,
            vec![SsProcess {
                name: hostile.to_owned(),
                pid: 42,
                fd: Some(3),
            }],
        )]);
        let rendered = render(&dump, &owners, &BTreeMap::new());
        let read = parse_sockets(&rendered, Proto::Udp).unwrap();
        assert_eq!(read.len(), dump.len(), "{rendered}");
        let owned = read.iter().find(|s| s.inode == Some(inode)).unwrap();
        assert_eq!(owned.processes.len(), 1, "{rendered}");
        assert_eq!(owned.processes[0].pid, 42);
        assert!(!owned.processes[0].name.contains(['"', '(', '\n', ' ']));
    }

    #[test]
    fn socket_inodes_of_descriptors() {
        assert_eq!(socket_inode("socket:[3682504]"), Some(3_682_504));
        assert_eq!(socket_inode("pipe:[12]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn malformed_input() {
        assert_eq!(parse_sockets("", Proto::Tcp), Ok(vec![]));
        let bad = |t: &str| parse_sockets(t, Proto::Tcp).is_err();
        assert!(bad("\t skmem:(r0,rb1,t0,tb1)\n"));
        assert!(bad("LISTEN 0 1\n"));
        assert!(bad("LISTEN x 1 1.2.3.4:1 0.0.0.0:*\n"));
        assert!(bad("LISTEN 0 1 1.2.3.4:99999 0.0.0.0:*\n"));
        assert!(bad("LISTEN 0 1 [::1:80 [::]:*\n"));
        assert!(bad("LISTEN 0 1 1.2.3.4%:80 *:*\n"));
        assert!(bad("LISTEN 0 1 noport *:*\n"));
        assert!(bad(
            "LISTEN 0 1 1.2.3.4:80 *:* users:((\"x\",pid=y,fd=1))\n"
        ));
        assert!(bad("LISTEN 0 1 1.2.3.4:80 *:*\n\t skmem:(r0,rbx)\n"));
        let text = fixture!("ss-tcp-all.txt");
        for (i, _) in text.char_indices() {
            let _ = parse_sockets(&text[..i], Proto::Tcp);
        }
    }
}
