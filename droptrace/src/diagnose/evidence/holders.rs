//! Which processes hold a BPF program: `/proc/PID/fdinfo/FD` of their `anon_inode:bpf-prog`
//! and `anon_inode:bpf_link` descriptors (both carry `prog_id:`), and their command lines
//! (`/proc/PID/cmdline`). bpftool can say this itself only when built with skeletons
//! (its `pids` field); Debian's 7.1 is not.
use serde::Serialize;

/// What one BPF descriptor refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BpfFd {
    pub prog_id: u32,
    /// None for a program descriptor; the link otherwise.
    pub link: Option<LinkFd>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkFd {
    pub id: u32,
    /// `tcx`, `xdp`, `netfilter`, `cgroup`, `raw_tracepoint`...
    pub link_type: String,
    /// The device of a tcx or XDP link (in the namespace it was made in).
    pub ifindex: Option<u32>,
    /// `ingress` or `egress` for tcx (`attach_type:\t46 (ingress)`).
    pub direction: Option<String>,
}

/// Parses one fdinfo file. None when it is not a BPF program or link descriptor.
pub fn parse_fdinfo(text: &str) -> Option<BpfFd> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    };
    let prog_id = field("prog_id")?.parse().ok()?;
    let link = match (field("link_id"), field("link_type")) {
        (Some(id), Some(kind)) => Some(LinkFd {
            id: id.parse().ok()?,
            link_type: kind.to_owned(),
            ifindex: field("ifindex").and_then(|i| i.parse().ok()),
            direction: field("attach_type").and_then(|a| {
                let inner = a.split_once('(')?.1.strip_suffix(')')?;
                Some(inner.to_owned())
            }),
        }),
        _ => None,
    };
    Some(BpfFd { prog_id, link })
}

/// `/proc/PID/cmdline` (arguments separated by NUL) as one line; arguments with spaces
/// are quoted. None for kernel threads and exited processes (empty).
pub fn parse_cmdline(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let args: Vec<String> = text
        .split('\0')
        .filter(|a| !a.is_empty())
        .map(|a| {
            if a.contains(char::is_whitespace) {
                format!("'{a}'")
            } else {
                a.to_owned()
            }
        })
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_and_link_descriptors() {
        let p = parse_fdinfo(fixture!("fdinfo.bpf-prog.txt")).unwrap();
        assert_eq!((p.prog_id, p.link), (171, None));

        let l = parse_fdinfo(fixture!("fdinfo.tcx-link.txt")).unwrap();
        assert_eq!(l.prog_id, 171);
        assert_eq!(
            l.link,
            Some(LinkFd {
                id: 103,
                link_type: "tcx".into(),
                ifindex: Some(2),
                direction: Some("ingress".into())
            })
        );
        let x = parse_fdinfo(fixture!("fdinfo.xdp-link.txt")).unwrap();
        let link = x.link.unwrap();
        assert_eq!(
            (
                x.prog_id,
                link.link_type.as_str(),
                link.ifindex,
                link.direction
            ),
            (181, "xdp", Some(3), None)
        );
        let c = parse_fdinfo(fixture!("fdinfo.cgroup-link.txt")).unwrap();
        let link = c.link.unwrap();
        assert_eq!(
            (c.prog_id, link.id, link.link_type.as_str(), link.direction),
            (1832, 407, "cgroup", None)
        );
        assert_eq!(parse_fdinfo(fixture!("fdinfo.netns-file.txt")), None);
        assert_eq!(parse_fdinfo("prog_id:\tx\n"), None);
        assert_eq!(parse_fdinfo(""), None);
    }

    #[test]
    fn command_lines() {
        let raw = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/proc-cmdline.bpf_holder"
        ));
        assert_eq!(
            parse_cmdline(raw).as_deref(),
            Some(
                "/tmp/wt-13b/target/release/bpf_holder /run/netns/dtcap-13b dtv1 tcx-ingress \
                 /tmp/wt-13b/tests/fixtures/drop_syn.bpf.o drop_syn"
            )
        );
        assert_eq!(
            parse_cmdline(b"agent\0--name\0a b\0").as_deref(),
            Some("agent --name 'a b'")
        );
        assert_eq!(parse_cmdline(b""), None);
        assert_eq!(parse_cmdline(b"\xff\0"), Some("\u{fffd}".into()));
    }
}
