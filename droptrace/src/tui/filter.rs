//! The filter typed at run time (`/`): the command line's words, applied to the rows shown.
//! Kernel-side filters cannot change while attached; this one narrows the view and leaves
//! the counting alone.
use crate::kernel::reasons::DropReasonTable;
use crate::pipeline::event::{ip_proto_by_name, Group};
use crate::pipeline::names::Names;

/// A word given more than once keeps all its values: a row matches any of them (and every
/// word given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewFilter {
    /// The filter as typed, normalised (`--port 1678 --reason NETFILTER_DROP`).
    text: String,
    dports: Vec<u16>,
    protos: Vec<u8>,
    /// Reason values in the kernel's table.
    reasons: Vec<u32>,
    exclude_reasons: Vec<u32>,
    ifaces: Vec<String>,
    netns: Vec<String>,
    functions: Vec<String>,
}

const WORDS: &str =
    "--port, --dport, --proto, --reason, --exclude-reason, --iface, --netns, --function";

impl ViewFilter {
    /// Parses `--port 1678 reason=NETFILTER_DROP ...`; the leading dashes are optional.
    /// Reasons must be in `reasons`, the kernel's table the drops are named with.
    pub fn parse(input: &str, reasons: Option<&DropReasonTable>) -> Result<ViewFilter, String> {
        let mut f = ViewFilter::default();
        let mut words = input.split_whitespace();
        let mut parts = Vec::new();
        while let Some(word) = words.next() {
            let word = word.trim_start_matches('-');
            let (name, value) = match word.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.to_owned()),
                None => {
                    let value = words
                        .next()
                        .ok_or_else(|| format!("`{word}` needs a value"))?;
                    (word.to_owned(), value.to_owned())
                }
            };
            match name.as_str() {
                "port" | "dport" => f.dports.push(
                    value
                        .parse()
                        .map_err(|_| format!("`{value}` is not a port (0-65535)"))?,
                ),
                "proto" => f.protos.push(
                    ip_proto_by_name(&value).ok_or_else(|| format!("unknown protocol `{value}`"))?,
                ),
                "reason" => f.reasons.push(reason_value(&value, reasons)?),
                "exclude-reason" => f.exclude_reasons.push(reason_value(&value, reasons)?),
                "iface" => f.ifaces.push(value.clone()),
                "netns" => f.netns.push(netns_name(&value).to_owned()),
                "function" | "func" => f.functions.push(value.clone()),
                "sport" | "addr" => {
                    return Err(format!(
                        "--{name} is not kept per row: restart droptrace with --{name} {value} (filtered in the kernel)"
                    ))
                }
                _ => return Err(format!("unknown filter `{name}`; use {WORDS}")),
            }
            parts.push(format!(
                "--{} {value}",
                if name == "func" { "function" } else { &name }
            ));
        }
        f.text = parts.join(" ");
        Ok(f)
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether a group is shown. `port` is the destination port: groups keep no source port.
    pub fn accepts(&self, g: &Group, names: &Names) -> bool {
        if self.is_empty() {
            return true;
        }
        let any =
            |set: &[String], is: &dyn Fn(&str) -> bool| set.is_empty() || set.iter().any(|v| is(v));
        (self.dports.is_empty() || g.dport.is_some_and(|p| self.dports.contains(&p)))
            && (self.protos.is_empty() || g.ip_proto.is_some_and(|p| self.protos.contains(&p)))
            && (self.reasons.is_empty() || self.reasons.contains(&g.reason))
            && !self.exclude_reasons.contains(&g.reason)
            && any(&self.ifaces, &|i| i == names.interface(g.netns, g.ifindex))
            && any(&self.netns, &|n| {
                n == names.namespace(g.netns) || n == g.netns.to_string()
            })
            && any(&self.functions, &|f| {
                names
                    .function(g.location)
                    .is_some_and(|name| name.contains(f))
            })
    }
}

/// The value of a reason the kernel's table names, or why there is none.
fn reason_value(name: &str, table: Option<&DropReasonTable>) -> Result<u32, String> {
    let table = table.ok_or("this kernel has no drop reasons (they came in Linux 5.17)")?;
    table.lookup(name).ok_or_else(|| {
        format!(
            "unknown drop reason `{name}`{}",
            table
                .closest(name)
                .map(|c| format!(" (did you mean {c}?)"))
                .unwrap_or_default()
        )
    })
}

/// A namespace by its name or its path in /run/netns (as `ip netns` makes them): the view
/// knows them by name.
fn netns_name(value: &str) -> &str {
    ["/run/netns/", "/var/run/netns/"]
        .iter()
        .find_map(|dir| value.strip_prefix(dir))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::names::Location;

    fn names() -> Names {
        let mut n =
            Names::with_reasons(Some(crate::kernel::reasons::DropReasonTable::from_entries(
                [(12, "NETFILTER_DROP"), (2, "NOT_SPECIFIED")],
            )));
        n.locations.insert(
            0x100,
            Location {
                function: Some("nft_do_chain".into()),
                offset: Some(0x3e8),
                module: None,
                display: "nft_do_chain+0x3e8".into(),
            },
        );
        n.interfaces.insert((7.into(), 3), "veth-b".into());
        n.namespaces.insert(7.into(), "dt-a".into());
        n
    }

    fn group(reason: u32, dport: Option<u16>) -> Group {
        Group {
            location: 0x100,
            reason,
            ethertype: 0x0800,
            ip_proto: Some(6),
            dport,
            netns: 7.into(),
            ifindex: 3,
        }
    }

    #[test]
    fn takes_the_command_line_words() {
        let n = names();
        let f = ViewFilter::parse("--port 1678 reason=netfilter_drop", n.reasons()).unwrap();
        assert_eq!(f.text(), "--port 1678 --reason netfilter_drop");
        assert!(f.accepts(&group(12, Some(1678)), &n));
        assert!(!f.accepts(&group(12, Some(80)), &n));
        assert!(!f.accepts(&group(2, Some(1678)), &n));
        let f = ViewFilter::parse(
            "--exclude-reason SKB_DROP_REASON_NOT_SPECIFIED --proto tcp",
            n.reasons(),
        )
        .unwrap();
        assert!(f.accepts(&group(12, None), &n));
        assert!(!f.accepts(&group(2, None), &n));
        for (text, shown) in [
            ("--iface veth-b", true),
            ("--iface eth0", false),
            ("--netns dt-a", true),
            ("--netns 7", true),
            ("--netns web", false),
            ("--function nft_", true),
            ("--func tcp_v4_rcv", false),
            ("--proto udp", false),
        ] {
            let f = ViewFilter::parse(text, n.reasons()).unwrap();
            assert_eq!(f.accepts(&group(12, Some(1678)), &n), shown, "{text}");
        }
        assert!(ViewFilter::parse("", None).unwrap().is_empty());
    }

    #[test]
    fn a_word_given_twice_keeps_both() {
        let n = names();
        let f = ViewFilter::parse("--port 1678 --port 9", n.reasons()).unwrap();
        assert_eq!(f.text(), "--port 1678 --port 9");
        assert!(f.accepts(&group(12, Some(1678)), &n));
        assert!(f.accepts(&group(12, Some(9)), &n));
        assert!(!f.accepts(&group(12, Some(80)), &n));
        let f =
            ViewFilter::parse("--proto udp --proto tcp --iface eth0 --iface veth-b", None).unwrap();
        assert!(f.accepts(&group(12, Some(80)), &n));
    }

    #[test]
    fn a_namespace_by_name_or_by_its_path() {
        let n = names();
        for text in [
            "--netns dt-a",
            "--netns /run/netns/dt-a",
            "--netns /var/run/netns/dt-a",
        ] {
            let f = ViewFilter::parse(text, None).unwrap();
            assert!(f.accepts(&group(12, None), &n), "{text}");
        }
        let f = ViewFilter::parse("--netns /run/netns/web", None).unwrap();
        assert!(!f.accepts(&group(12, None), &n));
    }

    #[test]
    fn reasons_are_checked_against_the_kernels_table() {
        let n = names();
        let err = ViewFilter::parse("--reason NETFILTER_DRP", n.reasons()).unwrap_err();
        assert!(
            err.contains("unknown drop reason `NETFILTER_DRP` (did you mean NETFILTER_DROP?)"),
            "{err}"
        );
        let err = ViewFilter::parse("--exclude-reason bogus", n.reasons()).unwrap_err();
        assert!(err.contains("unknown drop reason `bogus`"), "{err}");
        assert!(ViewFilter::parse("--reason skb_drop_reason_not_specified", n.reasons()).is_ok());
        let err = ViewFilter::parse("--reason NETFILTER_DROP", None).unwrap_err();
        assert!(err.contains("no drop reasons"), "{err}");
    }

    #[test]
    fn bad_words_say_what_to_do() {
        for (text, says) in [
            ("--port", "needs a value"),
            ("--port 70000", "not a port"),
            ("--proto bogus", "unknown protocol"),
            ("--colour red", "unknown filter `colour`"),
            ("--addr 10.0.0.1", "restart droptrace with --addr 10.0.0.1"),
        ] {
            let err = ViewFilter::parse(text, None).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
