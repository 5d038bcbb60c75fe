//! `tc -s -j qdisc show` (every qdisc and its drop/overlimit counters) and
//! `tc -j filter show dev DEV ingress|egress` (which BPF programs classify traffic there).
//!
//! JSON is read: iproute2 6.1 prints the same keys as its text form, with numbers unscaled.
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TcError {
    #[error("tc JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("tc JSON: entry {index}: {what}")]
    Entry { index: usize, what: &'static str },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Qdisc {
    pub dev: String,
    pub kind: String,
    /// `1:`, `ffff:`, `0:` (the device's default).
    pub handle: String,
    /// `1:10` for a child, `ffff:fff1` for ingress/clsact; None for a root qdisc.
    pub parent: Option<String>,
    pub root: bool,
    /// Everything tc printed under "options", as printed.
    pub options: Value,
    /// options.limit: packets for pfifo, bytes for bfifo/tbf.
    pub limit: Option<u64>,
    /// options.rate in bytes per second (tbf, htb's direct classes...).
    pub rate: Option<u64>,
    /// The statistics below need `tc -s`; None without it.
    pub bytes: Option<u64>,
    pub packets: Option<u64>,
    pub drops: Option<u64>,
    pub overlimits: Option<u64>,
    pub requeues: Option<u64>,
    /// Bytes queued when sampled.
    pub backlog: Option<u64>,
    /// Packets queued when sampled.
    pub qlen: Option<u64>,
}

impl Qdisc {
    /// The options as `tc qdisc show` prints them, in its units (`rate 200Kbit burst 4Kb
    /// lat 164ms`).
    pub fn options_tc(&self) -> String {
        options_text(&self.kind, &self.options)
    }

    /// The options flattened as tc's JSON has them (`limit 8192 rate 1Mbit`): what a
    /// baseline compares.
    pub fn options_flat(&self) -> String {
        match self.options.as_object() {
            Some(map) if !map.is_empty() => map
                .iter()
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k} {s}"),
                    other => format!("{k} {other}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => "default options".into(),
        }
    }

    /// options.burst in bytes, where the kind has one (tbf).
    pub fn burst(&self) -> Option<u64> {
        self.options.get("burst").and_then(Value::as_u64)
    }

    /// options.lat in microseconds (tbf).
    pub fn latency_us(&self) -> Option<u64> {
        self.options.get("lat").and_then(Value::as_u64)
    }
}

/// One cls_bpf filter. `tc filter show` prints each filter twice, a bare header and then
/// the entry with "options"; only the latter is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TcBpfFilter {
    /// The device the caller asked about (tc does not repeat it).
    pub dev: String,
    pub kind: String,
    /// `ffff:` under an ingress qdisc; absent under clsact.
    pub parent: Option<String>,
    pub protocol: Option<String>,
    pub pref: Option<u32>,
    pub chain: Option<u32>,
    pub handle: Option<String>,
    /// `da`: the program's return code is the verdict (TC_ACT_SHOT drops).
    pub direct_action: bool,
    pub prog_id: Option<u32>,
    pub prog_name: Option<String>,
    pub prog_tag: Option<String>,
    /// What tc calls the filter: `file.o:[section]` when loaded from an object.
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct RawQdisc {
    kind: Option<String>,
    handle: Option<String>,
    dev: Option<String>,
    parent: Option<String>,
    #[serde(default)]
    root: bool,
    #[serde(default)]
    options: Value,
    bytes: Option<u64>,
    packets: Option<u64>,
    drops: Option<u64>,
    overlimits: Option<u64>,
    requeues: Option<u64>,
    backlog: Option<u64>,
    qlen: Option<u64>,
}

#[derive(Deserialize)]
struct RawFilter {
    kind: Option<String>,
    parent: Option<String>,
    protocol: Option<String>,
    pref: Option<u32>,
    chain: Option<u32>,
    options: Option<RawFilterOptions>,
}

#[derive(Deserialize)]
struct RawFilterOptions {
    handle: Option<String>,
    bpf_name: Option<String>,
    #[serde(rename = "direct-action", default)]
    direct_action: bool,
    prog: Option<RawProg>,
}

#[derive(Deserialize)]
struct RawProg {
    id: Option<u32>,
    name: Option<String>,
    tag: Option<String>,
}

/// Parses `tc -s -j qdisc show` (all devices). Entries without dev, kind or handle are
/// errors: tc always prints them.
pub fn parse_qdiscs(json: &str) -> Result<Vec<Qdisc>, TcError> {
    let raw: Vec<RawQdisc> = serde_json::from_str(json)?;
    raw.into_iter()
        .enumerate()
        .map(|(index, q)| {
            let missing = |what| TcError::Entry { index, what };
            let number = |key: &str| q.options.get(key).and_then(Value::as_u64);
            Ok(Qdisc {
                limit: number("limit"),
                rate: number("rate"),
                dev: q.dev.clone().ok_or_else(|| missing("no dev"))?,
                kind: q.kind.clone().ok_or_else(|| missing("no kind"))?,
                handle: q.handle.clone().ok_or_else(|| missing("no handle"))?,
                parent: q.parent,
                root: q.root,
                options: q.options,
                bytes: q.bytes,
                packets: q.packets,
                drops: q.drops,
                overlimits: q.overlimits,
                requeues: q.requeues,
                backlog: q.backlog,
                qlen: q.qlen,
            })
        })
        .collect()
}

/// A rate in bytes per second as tc prints it: `200Kbit`, `1500Kbit`, `1Gbit`.
pub fn rate_text(bytes_per_sec: u64) -> String {
    const UNITS: [&str; 5] = ["bit", "Kbit", "Mbit", "Gbit", "Tbit"];
    let mut rate = bytes_per_sec.saturating_mul(8);
    let mut unit = 0;
    while unit < UNITS.len() - 1 && rate >= 1000 && rate.is_multiple_of(1000) {
        rate /= 1000;
        unit += 1;
    }
    format!("{rate}{}", UNITS[unit])
}

/// A size in bytes as tc prints it: `4Kb`, `1Mb`, `2999b`.
pub fn size_text(bytes: u64) -> String {
    match bytes {
        0 => "0b".into(),
        b if b % (1 << 20) == 0 => format!("{}Mb", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}Kb", b >> 10),
        b => format!("{b}b"),
    }
}

/// A time in microseconds as tc prints it, to three significant digits: `164ms`, `1s`,
/// `50us`.
pub fn time_text(us: u64) -> String {
    let (value, unit) = match us {
        u if u >= 1_000_000 => (u as f64 / 1e6, "s"),
        u if u >= 1_000 => (u as f64 / 1e3, "ms"),
        u => (u as f64, "us"),
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{unit}")
}

/// A qdisc's options in tc's words and units (`rate 200Kbit burst 4Kb lat 164ms`), as
/// `tc qdisc show` prints them: the JSON form has bytes per second, bytes and
/// microseconds.
pub fn options_text(kind: &str, options: &Value) -> String {
    let Some(map) = options.as_object().filter(|m| !m.is_empty()) else {
        return "default options".into();
    };
    // tc's order for the shapers people meet most; the rest as tc's JSON has them.
    let first = ["rate", "burst", "limit", "lat"];
    let ordered = first
        .iter()
        .filter_map(|k| map.get_key_value(*k))
        .chain(map.iter().filter(|(k, _)| !first.contains(&k.as_str())));
    // netem's random loss is an object: `loss 30%`, as tc prints it.
    let loss = map.get("loss-random").and_then(|l| {
        let share = l.get("loss")?.as_f64()?;
        let correlation = l.get("correlation").and_then(Value::as_f64).unwrap_or(0.0);
        let pct = |v: f64| format!("{}%", (v * 1e4).round() / 1e2);
        Some(if correlation > 0.0 {
            format!("loss {} {}", pct(share), pct(correlation))
        } else {
            format!("loss {}", pct(share))
        })
    });
    loss.into_iter()
        .chain(
            ordered
                .filter(|(_, v)| !v.is_object() && !v.is_array())
                .map(|(k, v)| {
                    let text = match (k.as_str(), v.as_u64()) {
                        ("rate" | "ceil" | "peakrate", Some(n)) => rate_text(n),
                        ("burst" | "cburst" | "mtu" | "quantum" | "memory_limit", Some(n)) => {
                            size_text(n)
                        }
                        ("limit", Some(n)) if limit_in_bytes(kind) => size_text(n),
                        ("limit", Some(n)) if kind == "pfifo" => format!("{n}p"),
                        ("lat" | "latency" | "target" | "interval" | "delay", Some(n)) => {
                            time_text(n)
                        }
                        (_, _) => match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        },
                    };
                    format!("{k} {text}")
                }),
        )
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the kind's `limit` counts bytes (tbf, bfifo) rather than packets.
pub fn limit_in_bytes(kind: &str) -> bool {
    matches!(kind, "tbf" | "bfifo")
}

/// Parses `tc -j filter show dev DEV ingress` (or `egress`, or `parent ffff:`) and keeps the
/// bpf filters; u32 and other classifiers are skipped.
pub fn parse_bpf_filters(json: &str, dev: &str) -> Result<Vec<TcBpfFilter>, TcError> {
    let raw: Vec<RawFilter> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        .filter(|f| f.kind.as_deref() == Some("bpf"))
        .filter_map(|f| {
            let options = f.options?;
            let prog = options.prog;
            Some(TcBpfFilter {
                dev: dev.to_string(),
                kind: "bpf".to_string(),
                parent: f.parent,
                protocol: f.protocol,
                pref: f.pref,
                chain: f.chain,
                handle: options.handle,
                direct_action: options.direct_action,
                prog_id: prog.as_ref().and_then(|p| p.id),
                prog_name: prog.as_ref().and_then(|p| p.name.clone()),
                prog_tag: prog.and_then(|p| p.tag),
                name: options.bpf_name,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapers_with_drops() {
        let q = parse_qdiscs(fixture!("tc-qdisc.shaper.json")).unwrap();
        let kinds: Vec<_> = q
            .iter()
            .map(|q| (q.dev.as_str(), q.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("lo", "noqueue"),
                ("dtv0", "tbf"),
                ("dtp0", "htb"),
                ("dtp0", "pfifo")
            ]
        );
        let tbf = &q[1];
        assert!(tbf.root);
        assert_eq!((tbf.handle.as_str(), tbf.parent.as_deref()), ("1:", None));
        assert_eq!(tbf.rate, Some(1000), "8kbit is 1000 bytes/s");
        assert_eq!(
            (tbf.drops, tbf.overlimits, tbf.packets),
            (Some(1982), Some(2016), Some(28))
        );
        assert_eq!(tbf.options["burst"], 1600);
        let pfifo = &q[3];
        assert!(!pfifo.root);
        assert_eq!(pfifo.parent.as_deref(), Some("1:10"));
        assert_eq!((pfifo.limit, pfifo.drops), (Some(5), Some(1988)));
        assert_eq!(q[2].options["default"], "0x10");
        assert_eq!(
            (q[0].backlog, q[0].qlen, q[0].requeues),
            (Some(0), Some(0), Some(0))
        );
    }

    #[test]
    fn options_in_tcs_units() {
        // `tc qdisc add ... tbf rate 200kbit burst 4kb latency 164ms`: tc -j gives
        // {"rate":25000,"burst":4096,"lat":164000}, tc prints `rate 200Kbit burst 4Kb lat 164ms`.
        let tbf = serde_json::json!({"burst": 4096, "lat": 163_840, "rate": 25_000});
        assert_eq!(
            options_text("tbf", &tbf),
            "rate 200Kbit burst 4Kb lat 164ms"
        );
        let tbf = serde_json::json!({"rate": 187_500, "burst": 2999, "lat": 1_000_001});
        assert_eq!(
            options_text("tbf", &tbf),
            "rate 1500Kbit burst 2999b lat 1s"
        );
        let tbf = serde_json::json!({"rate": 125_000_000, "burst": 1_048_576, "limit": 100_000});
        assert_eq!(
            options_text("tbf", &tbf),
            "rate 1Gbit burst 1Mb limit 100000b"
        );
        assert_eq!(
            options_text("pfifo", &serde_json::json!({"limit": 5})),
            "limit 5p"
        );
        assert_eq!(
            options_text("htb", &serde_json::json!({"r2q": 10, "default": "0x10"})),
            "default 0x10 r2q 10"
        );
        assert_eq!(
            options_text("noqueue", &serde_json::json!({})),
            "default options"
        );
        // `netem loss 30%`, as Debian's 6.12 with iproute2 6.1 gives it.
        let netem = parse_qdiscs(fixture!("tc-qdisc.s.netem.json")).unwrap();
        assert_eq!(
            options_text("netem", &netem[1].options),
            "loss 30% limit 1000 ecn false gap 0"
        );
        assert_eq!((netem[1].drops, netem[1].packets), (Some(10), Some(30)));
        let correlated = serde_json::json!({"loss-random": {"loss": 0.125, "correlation": 0.25}});
        assert_eq!(options_text("netem", &correlated), "loss 12.5% 25%");
        assert_eq!(
            (time_text(50), time_text(1_500), time_text(12_340)),
            ("50us".into(), "1.5ms".into(), "12.3ms".into())
        );
        assert_eq!(
            (rate_text(1000), rate_text(1)),
            ("8Kbit".into(), "8bit".into())
        );
    }

    #[test]
    fn clsact_ingress_and_default_qdiscs() {
        let q = parse_qdiscs(fixture!("tc-qdisc.clsact.json")).unwrap();
        let clsact = q.iter().find(|q| q.kind == "clsact").unwrap();
        assert_eq!(
            (clsact.dev.as_str(), clsact.handle.as_str()),
            ("dtv1", "ffff:")
        );
        assert_eq!(clsact.parent.as_deref(), Some("ffff:fff1"));
        assert!(!clsact.root);
        let ingress = q.iter().find(|q| q.kind == "ingress").unwrap();
        assert_eq!((ingress.dev.as_str(), ingress.packets), ("dtp1", Some(22)));

        let q = parse_qdiscs(fixture!("tc-qdisc.root-default.json")).unwrap();
        assert_eq!(q[1].kind, "pfifo_fast");
        assert_eq!(q[1].options["bands"], 3);
        assert_eq!(q[1].limit, None);
    }

    #[test]
    fn bpf_filters() {
        let f = parse_bpf_filters(fixture!("tc-filter.clsact-ingress.json"), "dtv1").unwrap();
        assert_eq!(f.len(), 1, "the u32 filter and bare headers are skipped");
        let f = &f[0];
        assert_eq!(f.dev, "dtv1");
        assert!(f.direct_action);
        assert_eq!(
            (f.pref, f.chain, f.parent.as_deref()),
            (Some(49152), Some(0), None)
        );
        assert_eq!(f.prog_id, Some(606));
        assert_eq!(f.prog_name.as_deref(), Some("dt_tc_ingress"));
        assert_eq!(f.prog_tag.as_deref(), Some("59f4a931744dcdc6"));
        assert_eq!(f.name.as_deref(), Some("progs.o:[tc]"));
        assert_eq!(f.handle.as_deref(), Some("0x1"));

        let f = parse_bpf_filters(fixture!("tc-filter.clsact-egress.json"), "dtv1").unwrap();
        assert_eq!((f[0].pref, f[0].prog_id), (Some(7), Some(610)));

        let f = parse_bpf_filters(fixture!("tc-filter.ingress-qdisc.json"), "dtp1").unwrap();
        assert!(!f[0].direct_action);
        assert_eq!(f[0].parent.as_deref(), Some("ffff:"));

        assert!(parse_bpf_filters(fixture!("tc-filter.none.json"), "lo")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_input() {
        assert!(matches!(parse_qdiscs(""), Err(TcError::Json(_))));
        assert!(matches!(parse_qdiscs("{}"), Err(TcError::Json(_))));
        assert!(matches!(
            parse_qdiscs(r#"[{"kind":"tbf","handle":"1:"}]"#),
            Err(TcError::Entry { index: 0, .. })
        ));
        assert!(matches!(
            parse_qdiscs(r#"[{"kind":"tbf","dev":"x","handle":"1:","drops":-1}]"#),
            Err(TcError::Json(_))
        ));
        // Without -s: no statistics, not zeros.
        let q = parse_qdiscs(
            r#"[{"kind":"noqueue","handle":"0:","dev":"lo","root":true,"options":{}}]"#,
        )
        .unwrap();
        assert_eq!(q[0].drops, None);
        let text = fixture!("tc-qdisc.shaper.json");
        assert!(parse_qdiscs(&text[..text.len() / 2]).is_err());
        assert!(parse_bpf_filters("[1,2]", "x").is_err());
        assert!(
            parse_bpf_filters(r#"[{"kind":"bpf","options":{"prog":{"id":"x"}}}]"#, "x").is_err()
        );
    }
}
