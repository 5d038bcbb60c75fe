//! The filter typed at run time (`/`): the command line's words, applied to the rows shown.
//! Kernel-side filters cannot change while attached; this one narrows the view and leaves
//! the counting alone.
use crate::pipeline::event::{ip_proto_by_name, Group};
use crate::pipeline::names::Names;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewFilter {
    /// The filter as typed, normalised (`--port 1678 --reason NETFILTER_DROP`).
    text: String,
    dport: Option<u16>,
    proto: Option<u8>,
    reasons: Vec<String>,
    exclude_reasons: Vec<String>,
    iface: Option<String>,
    netns: Option<String>,
    function: Option<String>,
}

const WORDS: &str =
    "--port, --dport, --proto, --reason, --exclude-reason, --iface, --netns, --function";

impl ViewFilter {
    /// Parses `--port 1678 reason=NETFILTER_DROP ...`; the leading dashes are optional.
    pub fn parse(input: &str) -> Result<ViewFilter, String> {
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
                "port" | "dport" => {
                    let port = value
                        .parse()
                        .map_err(|_| format!("`{value}` is not a port (0-65535)"))?;
                    f.dport = Some(port);
                }
                "proto" => {
                    f.proto = Some(
                        ip_proto_by_name(&value)
                            .ok_or_else(|| format!("unknown protocol `{value}`"))?,
                    );
                }
                "reason" => f.reasons.push(reason_key(&value)),
                "exclude-reason" => f.exclude_reasons.push(reason_key(&value)),
                "iface" => f.iface = Some(value.clone()),
                "netns" => f.netns = Some(value.clone()),
                "function" | "func" => f.function = Some(value.clone()),
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
        let reason = names.reason(g.reason).as_deref().map(reason_key);
        let reason_in = |set: &[String]| reason.as_ref().is_some_and(|r| set.contains(r));
        (self.dport.is_none() || g.dport == self.dport)
            && (self.proto.is_none() || g.ip_proto == self.proto)
            && (self.reasons.is_empty() || reason_in(&self.reasons))
            && !reason_in(&self.exclude_reasons)
            && self
                .iface
                .as_ref()
                .is_none_or(|i| *i == names.interface(g.netns, g.ifindex))
            && self
                .netns
                .as_ref()
                .is_none_or(|n| *n == names.namespace(g.netns) || *n == g.netns.to_string())
            && self.function.as_ref().is_none_or(|f| {
                names
                    .function(g.location)
                    .is_some_and(|name| name.contains(f.as_str()))
            })
    }
}

fn reason_key(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    upper
        .strip_prefix("SKB_DROP_REASON_")
        .map_or(upper.clone(), str::to_owned)
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
        let f = ViewFilter::parse("--port 1678 reason=netfilter_drop").unwrap();
        assert_eq!(f.text(), "--port 1678 --reason netfilter_drop");
        assert!(f.accepts(&group(12, Some(1678)), &n));
        assert!(!f.accepts(&group(12, Some(80)), &n));
        assert!(!f.accepts(&group(2, Some(1678)), &n));
        let f = ViewFilter::parse("--exclude-reason SKB_DROP_REASON_NOT_SPECIFIED --proto tcp")
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
            let f = ViewFilter::parse(text).unwrap();
            assert_eq!(f.accepts(&group(12, Some(1678)), &n), shown, "{text}");
        }
        assert!(ViewFilter::parse("").unwrap().is_empty());
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
            let err = ViewFilter::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
