//! tc filters of every kind with their actions and the actions' statistics, from `tc -s
//! -j filter show dev DEV ingress|egress`: a gact `drop`, a police action over its rate,
//! a mirred... each with how many packets it saw and dropped. iproute2 6.1's JSON gives a
//! police action no rate; its text does (`police 0x1 rate 8Kbit burst 2Kb`), read apart.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::tc::TcError;

/// One filter with actions, as the drill-down of a drop names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcFilter {
    pub dev: String,
    /// `ingress` or `egress`.
    pub direction: String,
    pub kind: String,
    pub protocol: Option<String>,
    pub pref: Option<u32>,
    pub chain: Option<u32>,
    /// `0x1` (flower, matchall, bpf), `800::800` (u32): what `tc filter del` takes.
    pub handle: Option<String>,
    /// What it matches, in tc's words: `ip_proto udp dst_port 7001`, `match
    /// 00001b5a/0000ffff at 20`, `all packets`.
    pub matches: String,
    /// The destination port it matches, when it matches one (flower `dst_port`, u32 on the
    /// ports' word).
    pub dport: Option<u16>,
    pub actions: Vec<TcAction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcAction {
    /// `gact`, `police`, `mirred`...
    pub kind: String,
    pub index: Option<u32>,
    /// The action's verdict (`drop`, `pass`, `pipe`; police: what it does over its rate).
    pub verdict: Option<String>,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    /// A police action's `rate 8Kbit burst 2Kb`, from tc's text.
    pub rate: Option<String>,
}

impl TcFilter {
    /// `flower pref 10 handle 0x1 (ip_proto udp dst_port 7001)`.
    pub fn describe(&self) -> String {
        let mut s = self.kind.clone();
        if let Some(p) = self.pref {
            s.push_str(&format!(" pref {p}"));
        }
        if let Some(h) = &self.handle {
            s.push_str(&format!(" handle {h}"));
        }
        if let Some(p) = self.protocol.as_deref().filter(|p| *p != "all") {
            s.push_str(&format!(" protocol {p}"));
        }
        if !self.matches.is_empty() {
            s.push_str(&format!(" ({})", self.matches));
        }
        s
    }

    /// Which filter this is across two samples: where it hangs and its identity.
    pub fn key(&self) -> (String, String, Option<u32>, Option<u32>, Option<String>) {
        (
            self.dev.clone(),
            self.direction.clone(),
            self.chain,
            self.pref,
            self.handle.clone(),
        )
    }
}

impl TcAction {
    /// `gact drop`, `police (index 1, rate 8Kbit burst 2Kb, drop over it)`.
    pub fn describe(&self) -> String {
        match self.kind.as_str() {
            "police" => format!(
                "police (index {}{}, {} over its rate)",
                self.index.map_or("?".to_owned(), |i| i.to_string()),
                self.rate
                    .as_ref()
                    .map(|r| format!(", {r}"))
                    .unwrap_or_default(),
                self.verdict.as_deref().unwrap_or("drop")
            ),
            kind => match &self.verdict {
                Some(v) => format!("{kind} {v}"),
                None => kind.to_owned(),
            },
        }
    }
}

#[derive(Deserialize)]
struct RawFilter {
    kind: Option<String>,
    protocol: Option<String>,
    pref: Option<u32>,
    chain: Option<u32>,
    options: Option<Value>,
}

#[derive(Deserialize)]
struct RawAction {
    kind: Option<String>,
    index: Option<u32>,
    control_action: Option<Control>,
    stats: Option<RawStats>,
}

#[derive(Deserialize)]
struct Control {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawStats {
    #[serde(default)]
    packets: u64,
    #[serde(default)]
    drops: u64,
    #[serde(default)]
    overlimits: u64,
}

/// Parses `tc -s -j filter show dev DEV DIRECTION`, keeping the filters that have actions
/// (tc prints each filter once bare and once with its options: the bare one is skipped).
/// `text` is `tc -s filter show` of the same hook when a police action is there, for its
/// rate.
pub fn parse_filters(
    json: &str,
    dev: &str,
    direction: &str,
    text: Option<&str>,
) -> Result<Vec<TcFilter>, TcError> {
    let raw: Vec<RawFilter> = serde_json::from_str(json)?;
    let rates = text.map(police_rates).unwrap_or_default();
    let mut out = Vec::new();
    for f in raw {
        let Some(options) = f.options else { continue };
        let Some(actions) = options.get("actions").and_then(Value::as_array) else {
            continue;
        };
        let kind = f.kind.unwrap_or_default();
        let actions = actions
            .iter()
            .map(|a| {
                let a: RawAction = serde_json::from_value(a.clone())?;
                let stats = a.stats.unwrap_or_default();
                let kind = a.kind.unwrap_or_default();
                Ok(TcAction {
                    rate: (kind == "police")
                        .then(|| a.index.and_then(|i| rates.get(&i).cloned()))
                        .flatten(),
                    kind,
                    index: a.index,
                    verdict: a.control_action.and_then(|c| c.kind),
                    packets: stats.packets,
                    drops: stats.drops,
                    overlimits: stats.overlimits,
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        out.push(TcFilter {
            dev: dev.to_owned(),
            direction: direction.to_owned(),
            handle: handle(&options),
            matches: matches(&kind, &options),
            dport: dport(&kind, &options),
            kind,
            protocol: f.protocol,
            pref: f.pref,
            chain: f.chain,
            actions,
        });
    }
    Ok(out)
}

/// flower, matchall and bpf give `handle` as a number (tc prints it in hex); u32 its `fh`.
fn handle(options: &Value) -> Option<String> {
    match options.get("handle") {
        Some(Value::Number(n)) => n.as_u64().map(|h| format!("{h:#x}")),
        Some(Value::String(s)) => Some(s.clone()),
        _ => options.get("fh").and_then(Value::as_str).map(str::to_owned),
    }
}

fn matches(kind: &str, options: &Value) -> String {
    match kind {
        "flower" => options
            .get("keys")
            .and_then(Value::as_object)
            .map(|keys| {
                keys.iter()
                    .map(|(k, v)| match v {
                        Value::String(s) => format!("{k} {s}"),
                        other => format!("{k} {other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        "u32" => options
            .get("match")
            .map(|m| {
                format!(
                    "match {:0>8}/{:0>8} at {}",
                    m.get("value").and_then(Value::as_str).unwrap_or("?"),
                    m.get("mask").and_then(Value::as_str).unwrap_or("?"),
                    m.get("off").map_or("?".to_owned(), Value::to_string)
                )
            })
            .unwrap_or_default(),
        "matchall" => "all packets".to_owned(),
        "bpf" => options
            .get("bpf_name")
            .and_then(Value::as_str)
            .map(|n| format!("program {n}"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The destination port a flower or u32 filter matches exactly.
fn dport(kind: &str, options: &Value) -> Option<u16> {
    match kind {
        "flower" => options
            .get("keys")?
            .get("dst_port")?
            .as_u64()
            .and_then(|p| u16::try_from(p).ok()),
        // `match ip dport P 0xffff`: the ports' word at offset 20 of an IPv4 header
        // without options, the destination in its low half.
        "u32" => {
            let m = options.get("match")?;
            let hex = |key: &str| u32::from_str_radix(m.get(key)?.as_str()?, 16).ok();
            let (value, mask) = (hex("value")?, hex("mask")?);
            (m.get("off")?.as_u64()? == 20 && mask == 0xffff).then_some((value & 0xffff) as u16)
        }
        _ => None,
    }
}

/// `police 0x1 rate 8Kbit burst 2Kb mtu 2Kb action drop` -> 1: "rate 8Kbit burst 2Kb".
fn police_rates(text: &str) -> BTreeMap<u32, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "police") else {
            continue;
        };
        let Some(index) = words
            .get(at + 1)
            .and_then(|w| w.strip_prefix("0x"))
            .and_then(|h| u32::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        let value = |key: &str| {
            words
                .iter()
                .position(|w| *w == key)
                .and_then(|i| words.get(i + 1))
                .map(|v| format!("{key} {v}"))
        };
        let rate: Vec<String> = ["rate", "burst"].iter().filter_map(|k| value(k)).collect();
        if !rate.is_empty() {
            out.insert(index, rate.join(" "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gact_and_police_are_read_with_their_statistics_and_rate() {
        let filters = parse_filters(
            fixture!("tc-filter.s.gact-police.json"),
            "veth-b",
            "ingress",
            Some(fixture!("tc-filter.s.gact-police.txt")),
        )
        .unwrap();
        assert_eq!(filters.len(), 3);
        let gact = &filters[0];
        assert_eq!(
            gact.describe(),
            "flower pref 10 handle 0x1 protocol ip (dst_port 7001 eth_type ipv4 ip_proto udp)"
        );
        assert_eq!(
            gact.actions,
            [TcAction {
                kind: "gact".into(),
                index: Some(1),
                verdict: Some("drop".into()),
                packets: 15,
                drops: 15,
                overlimits: 0,
                rate: None,
            }]
        );
        let police = &filters[1];
        assert_eq!(
            police.describe(),
            "u32 pref 20 handle 800::800 protocol ip (match 00001b5a/0000ffff at 20)"
        );
        assert_eq!(
            police.actions[0].describe(),
            "police (index 1, rate 8Kbit burst 2Kb, drop over its rate)"
        );
        assert_eq!(
            (police.actions[0].packets, police.actions[0].drops),
            (15, 11)
        );
        assert_eq!((gact.dport, police.dport), (Some(7001), Some(7002)));
        let pass = &filters[2];
        assert_eq!(pass.describe(), "matchall pref 30 handle 0x1 (all packets)");
        assert_eq!(pass.actions[0].describe(), "gact pass");
        // Without the text, a police action is still read, without its rate.
        let bare = parse_filters(
            fixture!("tc-filter.s.gact-police.json"),
            "veth-b",
            "ingress",
            None,
        )
        .unwrap();
        assert_eq!(bare[1].actions[0].rate, None);
    }

    #[test]
    fn filters_without_actions_and_bad_input() {
        assert!(parse_filters("[]", "lo", "ingress", None)
            .unwrap()
            .is_empty());
        assert!(parse_filters(
            fixture!("tc-filter.clsact-ingress.json"),
            "dtv1",
            "ingress",
            None
        )
        .unwrap()
        .iter()
        .all(|f| !f.actions.is_empty()));
        assert!(parse_filters("{", "x", "ingress", None).is_err());
        assert!(parse_filters(
            r#"[{"kind":"u32","options":{"actions":[{"stats":{"drops":"x"}}]}}]"#,
            "x",
            "ingress",
            None
        )
        .is_err());
    }
}
