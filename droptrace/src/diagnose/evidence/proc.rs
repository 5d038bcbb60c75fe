//! /proc/net counters: `snmp` and `netstat` (MIB counters such as TcpExt ListenOverflows
//! and Udp RcvbufErrors), `snmp6`, `softnet_stat` (per-CPU backlog drops and squeezes),
//! `dev` (per-interface drops) and `stat/nf_conntrack` (conntrack drops and failures).
//!
//! All are per network namespace except softnet_stat, which is per CPU for the machine.
use std::collections::BTreeMap;

use serde::Serialize;
use thiserror::Error;

use super::snippet;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProcError {
    #[error("{file}, line {line}: {what}: `{text}`")]
    Line {
        file: &'static str,
        line: usize,
        what: &'static str,
        text: String,
    },
    #[error("{file}: {what}")]
    File {
        file: &'static str,
        what: &'static str,
    },
}

fn line_error(file: &'static str, index: usize, what: &'static str, text: &str) -> ProcError {
    ProcError::Line {
        file,
        line: index + 1,
        what,
        text: snippet(text),
    }
}

/// MIB counters by group and name: `("TcpExt", "ListenOverflows")`. Values are signed
/// because a few are (Tcp MaxConn is -1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Counters {
    pub groups: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Counters {
    pub fn get(&self, group: &str, name: &str) -> Option<i64> {
        self.groups.get(group)?.get(name).copied()
    }
}

/// Parses /proc/net/snmp or /proc/net/netstat: each group is a line of names followed by a
/// line of values, both starting with `Group:`.
pub fn parse_snmp(text: &str) -> Result<Counters, ProcError> {
    const FILE: &str = "/proc/net/snmp";
    let mut counters = Counters::default();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((i, names)) = lines.next() {
        let Some((i2, values)) = lines.next() else {
            return Err(line_error(FILE, i, "names without a line of values", names));
        };
        let (group, names) = names
            .split_once(':')
            .ok_or_else(|| line_error(FILE, i, "expected `Group: names`", names))?;
        let (group2, values) = values
            .split_once(':')
            .ok_or_else(|| line_error(FILE, i2, "expected `Group: values`", values))?;
        if group != group2 {
            return Err(line_error(FILE, i2, "values for another group", values));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(line_error(
                FILE,
                i2,
                "name and value counts differ",
                values.join(" ").as_str(),
            ));
        }
        let entry = counters.groups.entry(group.trim().to_string()).or_default();
        for (name, value) in names.into_iter().zip(values) {
            let value =
                parse_signed(value).ok_or_else(|| line_error(FILE, i2, "not a number", value))?;
            entry.insert(name.to_string(), value);
        }
    }
    Ok(counters)
}

/// Parses /proc/net/snmp6: one `Name value` per line (`Udp6RcvbufErrors 299`).
pub fn parse_snmp6(text: &str) -> Result<BTreeMap<String, i64>, ProcError> {
    name_values("/proc/net/snmp6", text)
}

/// Parses /proc/net/xfrm_stat: one `Name value` per line (`XfrmInPolBlock 5`).
pub fn parse_xfrm_stat(text: &str) -> Result<BTreeMap<String, i64>, ProcError> {
    name_values("/proc/net/xfrm_stat", text)
}

fn name_values(file: &'static str, text: &str) -> Result<BTreeMap<String, i64>, ProcError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (None, ..) => {}
            (Some(name), Some(value), None) => {
                let value =
                    parse_signed(value).ok_or_else(|| line_error(file, i, "not a number", line))?;
                out.insert(name.to_string(), value);
            }
            _ => return Err(line_error(file, i, "expected `Name value`", line)),
        }
    }
    Ok(out)
}

fn parse_signed(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| {
        text.parse::<u64>()
            .ok()
            .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
    })
}

/// One CPU's line of /proc/net/softnet_stat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SoftnetCpu {
    /// The CPU number: column 13 since Linux 5.10 (offline CPUs leave gaps), else the line.
    pub cpu: u32,
    /// Packets taken off the backlog / NAPI.
    pub processed: u64,
    /// Dropped because the backlog queue was full (net.core.netdev_max_backlog).
    pub dropped: u64,
    /// net_rx_action ran out of budget or time with work left (netdev_budget).
    pub time_squeeze: u64,
    pub received_rps: Option<u64>,
    pub flow_limit_count: Option<u64>,
    /// Packets queued in the backlog when read (Linux 5.10+).
    pub backlog_len: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Softnet {
    pub cpus: Vec<SoftnetCpu>,
    pub processed: u64,
    pub dropped: u64,
    pub time_squeeze: u64,
    /// Columns per line: 11 before 5.10, 13 from 5.10, 15 on 6.18 (input/process queue
    /// lengths added).
    pub columns: usize,
}

/// Parses /proc/net/softnet_stat: one line per online CPU of hex columns.
pub fn parse_softnet(text: &str) -> Result<Softnet, ProcError> {
    const FILE: &str = "/proc/net/softnet_stat";
    let mut cpus = Vec::new();
    let mut columns = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let values = line
            .split_whitespace()
            .map(|w| u64::from_str_radix(w, 16).ok())
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| line_error(FILE, i, "not hexadecimal", line))?;
        if values.len() < 3 {
            return Err(line_error(FILE, i, "fewer than 3 columns", line));
        }
        columns = columns.max(values.len());
        let col = |n: usize| values.get(n).copied();
        let cpu = match col(12) {
            Some(c) => u32::try_from(c).map_err(|_| line_error(FILE, i, "bad cpu number", line))?,
            None => u32::try_from(cpus.len()).unwrap_or(u32::MAX),
        };
        cpus.push(SoftnetCpu {
            cpu,
            processed: values[0],
            dropped: values[1],
            time_squeeze: values[2],
            received_rps: col(9),
            flow_limit_count: col(10),
            backlog_len: col(11),
        });
    }
    let sum = |f: fn(&SoftnetCpu) -> u64| cpus.iter().map(f).fold(0u64, u64::saturating_add);
    Ok(Softnet {
        processed: sum(|c| c.processed),
        dropped: sum(|c| c.dropped),
        time_squeeze: sum(|c| c.time_squeeze),
        cpus,
        columns,
    })
}

/// One interface's line of /proc/net/dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDev {
    pub name: String,
    pub rx: NetDevRx,
    pub tx: NetDevTx,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDevRx {
    pub bytes: u64,
    pub packets: u64,
    pub errs: u64,
    pub drop: u64,
    pub fifo: u64,
    pub frame: u64,
    pub compressed: u64,
    pub multicast: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDevTx {
    pub bytes: u64,
    pub packets: u64,
    pub errs: u64,
    pub drop: u64,
    pub fifo: u64,
    pub colls: u64,
    pub carrier: u64,
    pub compressed: u64,
}

/// Parses /proc/net/dev: two header lines, then `name: 8 rx columns 8 tx columns`.
pub fn parse_net_dev(text: &str) -> Result<Vec<NetDev>, ProcError> {
    const FILE: &str = "/proc/net/dev";
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        // Headers: "Inter-|   Receive ..." and " face |bytes ...".
        if line.contains('|') || line.trim().is_empty() {
            continue;
        }
        // Names cannot contain ':', and large counters can touch it: "eth0:123".
        let (name, rest) = line
            .split_once(':')
            .ok_or_else(|| line_error(FILE, i, "expected `name: counters`", line))?;
        let v = rest
            .split_whitespace()
            .map(|w| w.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| line_error(FILE, i, "not a number", line))?;
        let [rb, rp, re, rd, rf, rfr, rc, rm, tb, tp, te, td, tf, tco, tca, tcm] = v[..] else {
            return Err(line_error(FILE, i, "expected 16 counters", line));
        };
        out.push(NetDev {
            name: name.trim().to_string(),
            rx: NetDevRx {
                bytes: rb,
                packets: rp,
                errs: re,
                drop: rd,
                fifo: rf,
                frame: rfr,
                compressed: rc,
                multicast: rm,
            },
            tx: NetDevTx {
                bytes: tb,
                packets: tp,
                errs: te,
                drop: td,
                fifo: tf,
                colls: tco,
                carrier: tca,
                compressed: tcm,
            },
        });
    }
    Ok(out)
}

/// /proc/net/stat/nf_conntrack, summed over CPUs, by the kernel's column names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConntrackStats {
    /// Current entries in this namespace. The kernel repeats the same count on every CPU
    /// line, so it is read once, not summed.
    pub entries: Option<u64>,
    /// Every other column summed: found, invalid, insert_failed, drop, early_drop,
    /// icmp_error, clashres, search_restart... (names as in the header).
    pub totals: BTreeMap<String, u64>,
    pub cpus: usize,
}

impl ConntrackStats {
    pub fn get(&self, name: &str) -> Option<u64> {
        if name == "entries" {
            return self.entries;
        }
        self.totals.get(name).copied()
    }
}

/// Parses /proc/net/stat/nf_conntrack: a header of names, then one hex line per CPU.
pub fn parse_conntrack_stat(text: &str) -> Result<ConntrackStats, ProcError> {
    const FILE: &str = "/proc/net/stat/nf_conntrack";
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(ProcError::File {
            file: FILE,
            what: "empty",
        });
    };
    let names: Vec<&str> = header.split_whitespace().collect();
    let mut stats = ConntrackStats {
        entries: None,
        totals: BTreeMap::new(),
        cpus: 0,
    };
    for (i, line) in lines {
        let values = line
            .split_whitespace()
            .map(|w| u64::from_str_radix(w, 16).ok())
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| line_error(FILE, i, "not hexadecimal", line))?;
        if values.len() != names.len() {
            return Err(line_error(
                FILE,
                i,
                "column count differs from the header",
                line,
            ));
        }
        for (name, value) in names.iter().zip(values) {
            if *name == "entries" {
                stats.entries.get_or_insert(value);
            } else {
                let total = stats.totals.entry(name.to_string()).or_insert(0);
                *total = total.saturating_add(value);
            }
        }
        stats.cpus += 1;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snmp_and_netstat() {
        let snmp = parse_snmp(fixture!("proc-net-snmp.txt")).unwrap();
        assert_eq!(snmp.get("Udp", "NoPorts"), Some(25));
        assert_eq!(snmp.get("Udp", "RcvbufErrors"), Some(299));
        assert_eq!(snmp.get("Udp", "InErrors"), Some(299));
        assert_eq!(snmp.get("Tcp", "MaxConn"), Some(-1));
        assert_eq!(snmp.get("IcmpMsg", "OutType3"), Some(25));
        assert_eq!(snmp.get("Udp", "Nope"), None);
        let netstat = parse_snmp(fixture!("proc-net-netstat.txt")).unwrap();
        assert_eq!(netstat.get("TcpExt", "ListenOverflows"), Some(48));
        assert_eq!(netstat.get("TcpExt", "ListenDrops"), Some(48));
        assert_eq!(netstat.get("TcpExt", "TCPSynRetrans"), Some(36));
        assert_eq!(netstat.get("IpExt", "InNoECTPkts"), Some(385));
        assert!(netstat.groups.contains_key("MPTcpExt"));
    }

    #[test]
    fn snmp6() {
        let m = parse_snmp6(fixture!("proc-net-snmp6.txt")).unwrap();
        assert_eq!(m.get("Udp6RcvbufErrors"), Some(&299));
        assert_eq!(m.get("Udp6NoPorts"), Some(&7));
        assert_eq!(m.get("Icmp6OutType1"), Some(&7));
    }

    #[test]
    fn softnet() {
        let s = parse_softnet(fixture!("proc-net-softnet_stat.txt")).unwrap();
        assert_eq!(s.columns, 15);
        assert_eq!(s.cpus.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(s.cpus[0].time_squeeze, 2);
        assert_eq!(s.time_squeeze, 6);
        assert_eq!(s.dropped, 0);
        assert_eq!(s.processed, 0x02de_c907 + 0x0342_2b71);
        // An 11-column line (before 5.10): the CPU is the line number.
        let old = parse_softnet(
            "0000000a 00000001 00000002 0 0 0 0 0 0 0 0\n0000000b 0 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        assert_eq!(
            (old.cpus[1].cpu, old.cpus[1].backlog_len, old.dropped),
            (1, None, 1)
        );
    }

    #[test]
    fn net_dev() {
        let d = parse_net_dev(fixture!("proc-net-dev.drops.txt")).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[1].name.as_str(), d[1].rx.drop, d[1].rx.packets),
            ("dtl0", 50, 31)
        );
        assert_eq!(d[1].tx.packets, 7);
        let d = parse_net_dev(fixture!("proc-net-dev.txt")).unwrap();
        assert_eq!(
            d.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["lo", "dtq1", "dtq0"]
        );
        let joined = parse_net_dev("eth0:123 1 0 0 0 0 0 0 9 2 0 0 0 0 0 0\n").unwrap();
        assert_eq!((joined[0].rx.bytes, joined[0].tx.bytes), (123, 9));
    }

    #[test]
    fn conntrack_stat() {
        let c = parse_conntrack_stat(fixture!("proc-net-stat-nf_conntrack.txt")).unwrap();
        assert_eq!(c.cpus, 2);
        assert_eq!(
            c.entries,
            Some(20),
            "not 40: entries is per namespace, not per CPU"
        );
        assert_eq!(c.get("invalid"), Some(10));
        assert_eq!(c.get("drop"), Some(0));
        assert_eq!(c.get("early_drop"), Some(0));
        assert_eq!(c.get("insert_failed"), Some(0));
        assert_eq!(c.get("search_restart"), Some(0));
        assert_eq!(c.get("found"), Some(0));
        assert_eq!(c.get("nope"), None);
    }

    #[test]
    fn malformed_input() {
        assert_eq!(parse_snmp(""), Ok(Counters::default()));
        assert!(parse_snmp("Udp: InDatagrams NoPorts\n").is_err());
        assert!(parse_snmp("Udp: A B\nUdp: 1\n").is_err());
        assert!(parse_snmp("Udp: A B\nTcp: 1 2\n").is_err());
        assert!(parse_snmp("Udp: A\nUdp: x\n").is_err());
        assert!(parse_snmp("U: A\nU: 99999999999999999999\n").is_err());
        assert_eq!(
            parse_snmp("U: A\nU: 18446744073709551615\n")
                .unwrap()
                .get("U", "A"),
            Some(i64::MAX)
        );
        assert!(parse_snmp6("Udp6NoPorts\n").is_err());
        assert!(parse_snmp6("Udp6NoPorts 1 2\n").is_err());
        assert!(parse_softnet("zz 0 0\n").is_err());
        assert!(parse_softnet("0 0\n").is_err());
        assert!(parse_softnet("1 2 3 4 5 6 7 8 9 a b c 1ffffffff\n").is_err());
        assert!(parse_net_dev("lo 1 2 3\n").is_err());
        assert!(parse_net_dev("lo: 1 2 3\n").is_err());
        assert!(parse_conntrack_stat("").is_err());
        assert!(parse_conntrack_stat("entries drop\n1\n").is_err());
        assert!(parse_conntrack_stat("entries drop\n1 g\n").is_err());
        for text in [
            fixture!("proc-net-netstat.txt"),
            fixture!("proc-net-dev.txt"),
        ] {
            for (i, _) in text.char_indices() {
                let _ = parse_snmp(&text[..i]);
                let _ = parse_net_dev(&text[..i]);
            }
        }
    }
}
