//! Gathering the system's state in one network namespace, through the standard tools'
//! machine-readable output and /proc. Only raw text is kept here; `state` parses it, so
//! everything after collection is testable on captured files.
use std::{
    collections::BTreeMap,
    fs::File,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::Command,
};

/// Files read from /proc inside the namespace (relative to /proc/thread-self/net).
pub const PROC_NET_FILES: &[&str] = &[
    "snmp",
    "netstat",
    "snmp6",
    "dev",
    "softnet_stat",
    "stat/nf_conntrack",
];

/// Per-namespace sysctls the diagnosis cites (interface-specific rp_filter is added per link).
pub const SYSCTLS: &[&str] = &[
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/core/netdev_max_backlog",
    "net/core/rmem_default",
    "net/core/rmem_max",
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_timestamps",
    "net/ipv4/udp_mem",
    "net/ipv4/ip_forward",
    "net/netfilter/nf_conntrack_count",
    "net/netfilter/nf_conntrack_max",
];

/// Commands run inside the namespace: (key, program, arguments).
pub const COMMANDS: &[(&str, &str, &[&str])] = &[
    ("nft", "nft", &["-a", "list", "ruleset"]),
    ("iptables-nft", "iptables-nft-save", &["-c"]),
    ("ip6tables-nft", "ip6tables-nft-save", &["-c"]),
    ("iptables-legacy", "iptables-legacy-save", &["-c"]),
    ("ip6tables-legacy", "ip6tables-legacy-save", &["-c"]),
    ("qdiscs", "tc", &["-s", "-j", "qdisc", "show"]),
    ("links", "ip", &["-j", "-s", "-d", "link", "show"]),
    ("bpf-net", "bpftool", &["-j", "net", "show"]),
    (
        "tcp-listen",
        "ss",
        &["-H", "-t", "-l", "-n", "-p", "-e", "-m"],
    ),
    ("udp", "ss", &["-H", "-u", "-a", "-n", "-p", "-m"]),
];

/// Raw state of one namespace at one moment.
#[derive(Debug, Clone, Default)]
pub struct RawSnapshot {
    /// Output of each of `COMMANDS` by key.
    pub commands: BTreeMap<String, String>,
    /// Their standard error, where it said something (nft warns there about tables
    /// that iptables-nft manages).
    pub stderr: BTreeMap<String, String>,
    /// `tc -j filter show dev DEV ingress|egress`, by (dev, direction), where a clsact or
    /// ingress qdisc exists.
    pub tc_filters: BTreeMap<(String, String), String>,
    /// `bpftool -j prog show id N` of the programs attached to interfaces, by id.
    pub bpf_progs: BTreeMap<u32, String>,
    /// /proc/net files by name.
    pub proc_net: BTreeMap<String, String>,
    /// Sysctl values by path under /proc/sys.
    pub sysctls: BTreeMap<String, String>,
    /// What could not be collected, and why (missing tool, permission...).
    pub missing: Vec<String>,
}

/// Where to collect: the namespace file to enter, `None` for droptrace's own.
pub fn snapshot(netns: Option<&Path>) -> RawSnapshot {
    let mut snap = RawSnapshot::default();
    for (key, program, args) in COMMANDS {
        match run_in(netns, program, args) {
            Ok((out, err)) => {
                snap.commands.insert((*key).to_owned(), out);
                if !err.trim().is_empty() {
                    snap.stderr.insert((*key).to_owned(), err);
                }
            }
            Err(why) => snap.missing.push(format!("{program}: {why}")),
        }
    }
    for (dev, dir) in clsact_devices(snap.commands.get("qdiscs").map(String::as_str)) {
        let args = ["-j", "filter", "show", "dev", dev.as_str(), dir.as_str()];
        match run_in(netns, "tc", &args) {
            Ok((out, _)) => {
                snap.tc_filters.insert((dev, dir), out);
            }
            Err(why) => snap
                .missing
                .push(format!("tc filter show dev {dev} {dir}: {why}")),
        }
    }
    for id in attached_prog_ids(snap.commands.get("bpf-net").map(String::as_str)) {
        let id_text = id.to_string();
        if let Ok((out, _)) = run_in(None, "bpftool", &["-j", "prog", "show", "id", &id_text]) {
            snap.bpf_progs.insert(id, out);
        }
    }
    let links = snap.commands.get("links").cloned().unwrap_or_default();
    let mut sysctls: Vec<String> = SYSCTLS.iter().map(|s| (*s).to_owned()).collect();
    sysctls.extend(
        link_names(&links)
            .into_iter()
            .map(|n| format!("net/ipv4/conf/{n}/rp_filter")),
    );
    let read = move || {
        let mut files = BTreeMap::new();
        for name in PROC_NET_FILES {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{name}")) {
                files.insert((*name).to_owned(), text);
            }
        }
        let mut values = BTreeMap::new();
        for path in &sysctls {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/sys/{path}")) {
                values.insert(path.clone(), text.trim().to_owned());
            }
        }
        (files, values)
    };
    match in_netns(netns, read) {
        Ok((files, values)) => {
            snap.proc_net = files;
            snap.sysctls = values;
        }
        Err(why) => snap.missing.push(format!("/proc/net and sysctls: {why}")),
    }
    snap
}

/// The kernel log, for conntrack's "table full" lines (global, not per namespace).
pub fn kernel_log() -> Option<String> {
    let out = Command::new("dmesg").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a program in the namespace: (stdout, stderr), or why it failed.
fn run_in(netns: Option<&Path>, program: &str, args: &[&str]) -> Result<(String, String), String> {
    let mut cmd = match netns {
        Some(path) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", path.display()))
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    let out = cmd.args(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "not installed".to_owned(),
        _ => e.to_string(),
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("failed").trim();
        return Err(
            if first.contains("not found") || first.contains("No such file") {
                "not installed".to_owned()
            } else {
                first.to_owned()
            },
        );
    }
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Runs `f` on a thread inside the namespace (setns changes only that thread).
pub fn in_netns<T: Send>(netns: Option<&Path>, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let Some(path) = netns else {
        return std::thread::scope(|s| s.spawn(f).join()).map_err(|_| "thread failed".to_owned());
    };
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: a valid namespace fd; setns affects only this thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "entering {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
            Ok(f())
        })
        .join()
        .map_err(|_| "thread failed".to_owned())?
    })
}

/// Devices with a clsact or ingress qdisc (where tc filters may hang), with the directions.
fn clsact_devices(qdiscs_json: Option<&str>) -> Vec<(String, String)> {
    let Some(json) = qdiscs_json else {
        return Vec::new();
    };
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(json) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for q in list {
        let (Some(kind), Some(dev)) = (q["kind"].as_str(), q["dev"].as_str()) else {
            continue;
        };
        match kind {
            "clsact" => {
                out.push((dev.to_owned(), "ingress".to_owned()));
                out.push((dev.to_owned(), "egress".to_owned()));
            }
            "ingress" => out.push((dev.to_owned(), "ingress".to_owned())),
            _ => {}
        }
    }
    out
}

/// Ids of the programs in `bpftool -j net show` (at most 32: names are for people).
fn attached_prog_ids(net_json: Option<&str>) -> Vec<u32> {
    let Some(Ok(attachments)) = net_json.map(super::evidence::bpftool::parse_net_show) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = attachments.iter().map(|a| a.prog_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.truncate(32);
    ids
}

fn link_names(links_json: &str) -> Vec<String> {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_str::<serde_json::Value>(links_json)
    else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| !n.contains('/') && !n.contains(".."))
        .map(str::to_owned)
        .collect()
}

/// A namespace to snapshot: its inode and how to enter it.
#[derive(Debug, Clone)]
pub struct Target {
    pub inode: u32,
    pub path: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ids_of_attached_programs() {
        let json = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/bpftool-net.json"
        ));
        let ids = attached_prog_ids(Some(json));
        assert!(ids.contains(&624) && ids.contains(&606), "{ids:?}");
        assert!(attached_prog_ids(Some("[")).is_empty());
        assert!(attached_prog_ids(None).is_empty());
    }

    #[test]
    fn finds_clsact_devices_and_link_names() {
        let qdiscs = r#"[{"kind":"noqueue","handle":"0:","dev":"lo","root":true},
            {"kind":"clsact","handle":"ffff:","dev":"veth-b","parent":"ffff:fff1"},
            {"kind":"ingress","handle":"ffff:","dev":"eth0","parent":"ffff:fff1"}]"#;
        assert_eq!(
            clsact_devices(Some(qdiscs)),
            [
                ("veth-b".to_owned(), "ingress".to_owned()),
                ("veth-b".to_owned(), "egress".to_owned()),
                ("eth0".to_owned(), "ingress".to_owned())
            ]
        );
        assert!(clsact_devices(Some("not json")).is_empty());
        let links =
            r#"[{"ifindex":1,"ifname":"lo"},{"ifindex":2,"ifname":"veth-b"},{"ifname":"../x"}]"#;
        assert_eq!(link_names(links), ["lo", "veth-b"]);
    }
}
