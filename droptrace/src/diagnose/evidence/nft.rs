//! `nft -a list ruleset`: chains, base-chain policies, and each rule's verdict and counter.
//!
//! The text form is read, not `-j`: it keeps each rule as people wrote it (JSON expands rules
//! into expression trees), names rules with `# handle N` (with `-a`) and shows counters inline
//! as `counter packets P bytes B`. iptables-nft keeps its rules in nf_tables too;
//! [`is_iptables_nft_table`] lets the engine read those through `iptables-save` instead.
use serde::Serialize;
use thiserror::Error;

use super::snippet;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NftError {
    #[error("nft ruleset, line {line}: {what}: `{text}`")]
    Line {
        line: usize,
        what: &'static str,
        text: String,
    },
    #[error("nft ruleset ends inside {0} (truncated output?)")]
    Truncated(String),
}

/// A verdict that throws the packet away; the only ones a drop diagnosis needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Drop,
    Reject,
}

/// A base chain's policy: what happens to packets no rule decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Accept,
    Drop,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftChain {
    pub family: String,
    pub table: String,
    pub name: String,
    pub handle: Option<u64>,
    /// `filter`, `nat` or `route`; None for a regular (non-base) chain.
    pub chain_type: Option<String>,
    pub hook: Option<String>,
    /// The device of a netdev ingress/egress chain (several joined with ", ").
    pub device: Option<String>,
    /// As printed: `filter`, `filter - 10`, `-500`, ...
    pub priority: Option<String>,
    /// Only base chains have one.
    pub policy: Option<Policy>,
    pub rules: Vec<NftRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NftRule {
    pub family: String,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    /// The rule as printed, without the `# handle N` comment.
    pub text: String,
    /// The rule's final verdict statement, when it drops or rejects.
    pub verdict: Option<Verdict>,
    /// From `counter packets P bytes B`; None when the rule has no counter.
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    pub comment: Option<String>,
}

/// A table named by `nft`'s "managed by iptables-nft" warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftTableId {
    pub family: String,
    pub table: String,
}

/// Parses `nft -a list ruleset` (stdout, or stdout and stderr merged). Sets, maps, flowtables
/// and stateful objects are skipped: drops happen in chains.
pub fn parse_ruleset(text: &str) -> Result<Vec<NftChain>, NftError> {
    let mut chains = Vec::new();
    let mut table: Option<(String, String)> = None;
    let mut chain: Option<NftChain> = None;
    // Open braces of a set/map/flowtable/object block being skipped.
    let mut skip_depth: i64 = 0;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |what| NftError::Line {
            line: index + 1,
            what,
            text: snippet(line),
        };
        if skip_depth > 0 {
            skip_depth += brace_delta(line);
            continue;
        }
        // Blank lines, and comments such as nft's warnings when stderr was merged in.
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(current) = chain.as_mut() {
            if line == "}" {
                chains.extend(chain.take());
            } else if line.starts_with("type ") {
                parse_base_spec(line, current).map_err(err)?;
            } else if is_chain_property(line) {
                // `comment "..."`, `devices = { ... }`, `flags offload`: not rules.
            } else {
                let rule = parse_rule(line, current).map_err(err)?;
                current.rules.push(rule);
            }
            continue;
        }
        if let Some((family, table_name)) = &table {
            if line == "}" {
                table = None;
            } else if let Some(rest) = line.strip_prefix("chain ") {
                let (code, comment) = split_comment(rest);
                let name = code.trim_end_matches('{').trim();
                if name.is_empty() || !code.ends_with('{') {
                    return Err(err("expected `chain NAME {`"));
                }
                let new = NftChain {
                    family: family.clone(),
                    table: table_name.clone(),
                    name: unquote(name).to_string(),
                    handle: comment.and_then(handle_in),
                    chain_type: None,
                    hook: None,
                    device: None,
                    priority: None,
                    policy: None,
                    rules: Vec::new(),
                };
                chain = Some(new);
            } else {
                // A set, map, flowtable or object block opens here; one-line table
                // properties (`flags dormant`, `comment "..."`) leave the depth at 0.
                skip_depth = brace_delta(line).max(0);
            }
            continue;
        }
        let Some(rest) = line.strip_prefix("table ") else {
            return Err(err("expected `table FAMILY NAME {`"));
        };
        let (code, _) = split_comment(rest);
        let mut words = code.split_whitespace();
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some(family), Some(name), Some("{"), None) => {
                table = Some((family.to_string(), unquote(name).to_string()))
            }
            _ => return Err(err("expected `table FAMILY NAME {`")),
        }
    }
    if let Some(c) = chain {
        return Err(NftError::Truncated(format!(
            "chain {} {} {}",
            c.family, c.table, c.name
        )));
    }
    if skip_depth > 0 {
        return Err(NftError::Truncated("a set or map".into()));
    }
    if let Some((family, name)) = table {
        return Err(NftError::Truncated(format!("table {family} {name}")));
    }
    Ok(chains)
}

/// Tables that `nft` warned (on stderr) are managed by iptables-nft: it prints
/// `# Warning: table ip filter is managed by iptables-nft, do not touch!` for every table
/// holding xtables-compat expressions. Accepts stderr alone or merged output.
pub fn parse_iptables_nft_warnings(text: &str) -> Vec<NftTableId> {
    text.lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("# Warning: table ")?;
            let rest = rest.strip_suffix(" is managed by iptables-nft, do not touch!")?;
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(family), Some(table), None) => Some(NftTableId {
                    family: family.to_string(),
                    table: table.to_string(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// Whether a table belongs to iptables-nft, so its rules should be read (with their iptables
/// syntax and statistic matches) from `iptables-nft-save` rather than from nft.
///
/// nft's stderr warning ([`parse_iptables_nft_warnings`]) is decisive. Without it, a table
/// counts as iptables-nft's when it has an iptables table name in an xtables family and
/// either shows untranslated `xt` statements or names its base chains like iptables does
/// (`INPUT` for hook input). A native nft table that copies those names exactly is
/// misjudged, which costs nothing: iptables-nft-save lists the same rules.
pub fn is_iptables_nft_table(
    chains: &[NftChain],
    family: &str,
    table: &str,
    warnings: &[NftTableId],
) -> bool {
    if warnings
        .iter()
        .any(|w| w.family == family && w.table == table)
    {
        return true;
    }
    const FAMILIES: &[&str] = &["ip", "ip6", "arp", "bridge"];
    const TABLES: &[&str] = &["filter", "mangle", "nat", "raw", "security", "broute"];
    if !FAMILIES.contains(&family) || !TABLES.contains(&table) {
        return false;
    }
    let mine: Vec<&NftChain> = chains
        .iter()
        .filter(|c| c.family == family && c.table == table)
        .collect();
    let has_xt = mine.iter().flat_map(|c| &c.rules).any(|r| {
        let words: Vec<&str> = r.text.split_whitespace().collect();
        words
            .windows(2)
            .any(|w| w[0] == "xt" && matches!(w[1], "match" | "target" | "watcher"))
    });
    let mut base = mine.iter().filter_map(|c| Some((c, c.hook.as_deref()?)));
    let mut any_base = false;
    let iptables_names = base.all(|(c, hook)| {
        any_base = true;
        c.name == hook.to_ascii_uppercase()
    });
    has_xt || (any_base && iptables_names)
}

/// Lines inside a chain that describe the chain rather than being rules.
fn is_chain_property(line: &str) -> bool {
    let (code, comment) = split_comment(line);
    comment.and_then(handle_in).is_none()
        && (code.starts_with("comment ")
            || code.starts_with("devices ")
            || code.starts_with("flags ")
            || code.starts_with("policy "))
}

/// `type filter hook input priority filter; policy accept;` (netdev: `... device "lo" ...`).
fn parse_base_spec(line: &str, chain: &mut NftChain) -> Result<(), &'static str> {
    let (code, _) = split_comment(line);
    for part in code.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let words = words(part);
        if words.first() == Some(&"policy") {
            chain.policy = match words.get(1).copied() {
                Some("accept") => Some(Policy::Accept),
                Some("drop") => Some(Policy::Drop),
                _ => return Err("unknown chain policy"),
            };
            continue;
        }
        let mut i = 0;
        while i < words.len() {
            let next = words.get(i + 1).map(|w| unquote(w).to_string());
            match words[i] {
                "type" => chain.chain_type = next,
                "hook" => chain.hook = next,
                "device" => chain.device = next,
                "devices" => {
                    let list: Vec<&str> = words[i + 1..]
                        .iter()
                        .take_while(|w| !w.contains('}'))
                        .filter(|w| !matches!(**w, "=" | "{"))
                        .map(|w| unquote(w.trim_end_matches(',')))
                        .collect();
                    chain.device = Some(list.join(", "));
                }
                "priority" => {
                    chain.priority = Some(words[i + 1..].join(" "));
                    break;
                }
                _ => {
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
    }
    if chain.hook.is_none() {
        return Err("base chain line without a hook");
    }
    Ok(())
}

fn parse_rule(line: &str, chain: &NftChain) -> Result<NftRule, &'static str> {
    let (code, comment) = split_comment(line);
    let handle = comment
        .and_then(handle_in)
        .ok_or("rule without `# handle N` (list the ruleset with nft -a)")?;
    let words = words(code);
    let counter = words.windows(5).find_map(|w| match w {
        ["counter", "packets", p, "bytes", b] => Some((p.parse().ok()?, b.parse().ok()?)),
        _ => None,
    });
    // Top-level words only: verdicts inside `vmap { 23 : drop }` are not the rule's own.
    let mut depth = 0i64;
    let mut top: Vec<&str> = Vec::new();
    for w in &words {
        if depth == 0 && !w.starts_with('{') {
            top.push(w);
        }
        depth += brace_delta(w);
    }
    let mut comment_text = None;
    if let [.., "comment", quoted] = top.as_slice() {
        comment_text = Some(unquote(quoted).to_string());
        top.truncate(top.len() - 2);
    }
    let verdict = if top.last() == Some(&"drop") {
        Some(Verdict::Drop)
    } else {
        top.iter()
            .rposition(|w| *w == "reject")
            .filter(|&at| matches!(top.get(at + 1), None | Some(&"with")))
            .map(|_| Verdict::Reject)
    };
    Ok(NftRule {
        family: chain.family.clone(),
        table: chain.table.clone(),
        chain: chain.name.clone(),
        handle,
        text: code.to_string(),
        verdict,
        packets: counter.map(|(p, _)| p),
        bytes: counter.map(|(_, b)| b),
        comment: comment_text,
    })
}

/// Splits a line at its first `#` outside double quotes: (code, trailing comment).
fn split_comment(line: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return (line[..i].trim(), Some(line[i + 1..].trim())),
            _ => {}
        }
    }
    (line.trim(), None)
}

/// The N of a `handle N` comment (`# handle 7`, `# handle 1 progname foo`).
fn handle_in(comment: &str) -> Option<u64> {
    let mut words = comment.split_whitespace();
    while let Some(w) = words.next() {
        if w == "handle" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// Opened minus closed braces outside quotes and comments.
fn brace_delta(text: &str) -> i64 {
    let mut quoted = false;
    let mut delta = 0;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => delta += 1,
            '}' if !quoted => delta -= 1,
            '#' if !quoted => break,
            _ => {}
        }
    }
    delta
}

/// Whitespace-separated words; a double-quoted string (nft has no escapes) stays one word.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if c.is_whitespace() && !quoted {
            if let Some(s) = start.take() {
                out.push(&text[s..i]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn unquote(word: &str) -> &str {
    word.strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .unwrap_or(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULESET: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/evidence/nft-ruleset.txt"
    ));
    const IPTNFT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/evidence/nft-ruleset-iptables-nft.txt"
    ));
    const IPTNFT_STDERR: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/evidence/nft-ruleset-iptables-nft.stderr"
    ));
    const IPTNFT_COMBINED: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/evidence/nft-ruleset-iptables-nft.combined.txt"
    ));

    fn rule(chains: &[NftChain], handle: u64, chain: &str) -> NftRule {
        chains
            .iter()
            .filter(|c| c.name == chain)
            .flat_map(|c| c.rules.iter())
            .find(|r| r.handle == handle)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {handle} in {chain}"))
    }

    #[test]
    fn chains_and_policies() {
        let chains = parse_ruleset(RULESET).unwrap();
        let names: Vec<_> = chains
            .iter()
            .map(|c| format!("{} {} {}", c.family, c.table, c.name))
            .collect();
        assert_eq!(
            names,
            [
                "inet dtfilter input",
                "inet dtfilter extra",
                "inet dtfilter forward",
                "inet dtfilter output",
                "ip6 dt6 in6",
                "netdev dtnd ing"
            ]
        );
        let input = &chains[0];
        assert_eq!(input.handle, Some(1));
        assert_eq!(input.chain_type.as_deref(), Some("filter"));
        assert_eq!(input.hook.as_deref(), Some("input"));
        assert_eq!(input.priority.as_deref(), Some("filter"));
        assert_eq!(input.policy, Some(Policy::Accept));
        assert_eq!(input.rules.len(), 8);
        let extra = &chains[1];
        assert_eq!((extra.hook.as_deref(), extra.policy), (None, None));
        assert_eq!(chains[2].policy, Some(Policy::Drop));
        assert!(chains[3].rules.is_empty());
        assert_eq!(chains[4].priority.as_deref(), Some("filter - 10"));
        let ing = &chains[5];
        assert_eq!(ing.hook.as_deref(), Some("ingress"));
        assert_eq!(ing.device.as_deref(), Some("lo"));
        assert_eq!(ing.priority.as_deref(), Some("-500"));
    }

    #[test]
    fn rules_verdicts_counters_comments() {
        let chains = parse_ruleset(RULESET).unwrap();
        let r = rule(&chains, 7, "input");
        assert_eq!(r.text, "tcp dport 1678 counter packets 1 bytes 60 drop");
        assert_eq!(
            (r.verdict, r.packets, r.bytes),
            (Some(Verdict::Drop), Some(1), Some(60))
        );
        assert_eq!((r.family.as_str(), r.table.as_str()), ("inet", "dtfilter"));

        let r = rule(&chains, 8, "input");
        assert_eq!(r.verdict, Some(Verdict::Reject));
        assert!(r.text.ends_with("reject with tcp reset"));

        let r = rule(&chains, 9, "input");
        assert_eq!(
            (r.verdict, r.packets, r.bytes),
            (Some(Verdict::Drop), None, None)
        );
        assert_eq!(r.comment.as_deref(), Some("no counter here"));

        let r = rule(&chains, 10, "input");
        assert_eq!(r.comment.as_deref(), Some("blocked sources"));
        assert_eq!(r.verdict, Some(Verdict::Drop));

        let r = rule(&chains, 11, "input");
        assert_eq!((r.verdict, r.packets), (Some(Verdict::Reject), Some(2)));

        let r = rule(&chains, 12, "input");
        assert!(r.text.contains("numgen random mod 10 < 3"));
        assert_eq!(
            (r.verdict, r.packets, r.bytes),
            (Some(Verdict::Drop), Some(37), Some(2220))
        );

        // Counting only, and a jump: no verdict of their own.
        assert_eq!(rule(&chains, 13, "input").verdict, None);
        assert_eq!(rule(&chains, 13, "input").packets, Some(67));
        assert_eq!(rule(&chains, 14, "input").verdict, None);

        // The ip6 rule in the inet table and the icmp accept.
        assert_eq!(rule(&chains, 15, "extra").verdict, Some(Verdict::Drop));
        assert_eq!(rule(&chains, 16, "extra").verdict, None);

        // A verdict map: its drop is not the rule's verdict; a comment holding
        // "# handle 99" does not fool the handle.
        let r = rule(&chains, 19, "extra");
        assert_eq!(r.verdict, None);
        assert_eq!(r.comment.as_deref(), Some("vmap # handle 99 lookalike"));
        assert_eq!(r.packets, None);

        // `drop` inside the quoted log prefix, then the real drop.
        let r = rule(&chains, 20, "extra");
        assert_eq!((r.verdict, r.packets), (Some(Verdict::Drop), Some(3)));

        let r = rule(&chains, 2, "in6");
        assert_eq!(r.family, "ip6");
        assert_eq!(r.verdict, Some(Verdict::Reject));
        assert_eq!(rule(&chains, 2, "ing").packets, Some(7));
    }

    #[test]
    fn objects_maps_comments_and_device_lists() {
        let text = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/evidence/nft-ruleset.objects.txt"
        ));
        let chains = parse_ruleset(text).unwrap();
        let names: Vec<_> = chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["sub", "pre", "ing2"]);
        let sub = &chains[0];
        assert_eq!((sub.hook.as_deref(), sub.rules.len()), (None, 1));
        // A named counter: the rule drops, but its packets are in the counter object.
        let r = &sub.rules[0];
        assert_eq!(
            (r.handle, r.verdict, r.packets),
            (7, Some(Verdict::Drop), None)
        );
        let pre = &chains[1];
        assert_eq!(pre.priority.as_deref(), Some("raw"));
        assert_eq!(
            pre.rules.iter().map(|r| r.handle).collect::<Vec<_>>(),
            [8, 9, 11]
        );
        assert_eq!(pre.rules[0].verdict, None, "vmap @portmap");
        assert_eq!(pre.rules[1].verdict, Some(Verdict::Drop));
        assert_eq!(pre.rules[1].packets, Some(0));
        assert_eq!(
            (pre.rules[2].verdict, pre.rules[2].packets),
            (None, Some(1))
        );
        let ing2 = &chains[2];
        assert_eq!(ing2.device.as_deref(), Some("dtf0, dtf1"));
        assert_eq!(ing2.priority.as_deref(), Some("filter + 10"));
        assert_eq!(ing2.policy, Some(Policy::Accept));
    }

    #[test]
    fn iptables_nft_tables() {
        let chains = parse_ruleset(IPTNFT).unwrap();
        assert_eq!(chains.len(), 6);
        let r = rule(&chains, 2, "INPUT");
        assert!(r.text.contains("meta random & 2147483647 < 644245094"));
        assert_eq!(r.verdict, Some(Verdict::Drop));
        // iptables' comment match does not survive nft's translation.
        assert_eq!(rule(&chains, 5, "DT_CHECK").comment, None);

        let warnings = parse_iptables_nft_warnings(IPTNFT_STDERR);
        assert_eq!(
            warnings,
            [("ip", "filter"), ("ip", "mangle"), ("ip6", "filter")].map(|(f, t)| NftTableId {
                family: f.into(),
                table: t.into()
            })
        );
        for (family, table) in [("ip", "filter"), ("ip", "mangle"), ("ip6", "filter")] {
            assert!(is_iptables_nft_table(&chains, family, table, &warnings));
            // Without stderr the chain names give it away.
            assert!(is_iptables_nft_table(&chains, family, table, &[]));
        }
        let native = parse_ruleset(RULESET).unwrap();
        for (family, table) in [("inet", "dtfilter"), ("ip6", "dt6"), ("netdev", "dtnd")] {
            assert!(!is_iptables_nft_table(&native, family, table, &[]));
        }
        assert!(parse_iptables_nft_warnings(RULESET).is_empty());
    }

    #[test]
    fn merged_stderr_parses_the_same() {
        assert_eq!(parse_ruleset(IPTNFT_COMBINED), parse_ruleset(IPTNFT));
        assert_eq!(
            parse_iptables_nft_warnings(IPTNFT_COMBINED),
            parse_iptables_nft_warnings(IPTNFT_STDERR)
        );
    }

    #[test]
    fn lookalike_native_table_is_not_iptables() {
        let text = "table ip filter { # handle 9\n\tchain input { # handle 1\n\t\t\
                    type filter hook input priority filter; policy drop;\n\t}\n}\n";
        let chains = parse_ruleset(text).unwrap();
        assert_eq!(chains[0].policy, Some(Policy::Drop));
        assert!(!is_iptables_nft_table(&chains, "ip", "filter", &[]));
    }

    #[test]
    fn malformed_input() {
        assert_eq!(parse_ruleset(""), Ok(vec![]));
        assert!(matches!(
            parse_ruleset("garbage\n"),
            Err(NftError::Line { line: 1, .. })
        ));
        // Listed without -a: no handles.
        let no_handles = "table inet t {\n\tchain c {\n\t\ttcp dport 1 drop\n\t}\n}\n";
        assert!(matches!(
            parse_ruleset(no_handles),
            Err(NftError::Line { line: 3, .. })
        ));
        let bad_policy = "table inet t {\n chain c {\n  type filter hook input priority 0; policy maybe;\n }\n}\n";
        assert!(parse_ruleset(bad_policy).is_err());
        let cut = &RULESET[..RULESET.find("chain extra").unwrap()];
        assert!(matches!(parse_ruleset(cut), Err(NftError::Truncated(_))));
        // A counter whose numbers are not numbers is read as no counter, not a panic.
        let odd = "table ip t {\n chain c {\n  counter packets x bytes 99999999999999999999999 drop # handle 3\n }\n}\n";
        let chains = parse_ruleset(odd).unwrap();
        assert_eq!(chains[0].rules[0].packets, None);
        assert_eq!(
            parse_iptables_nft_warnings(
                "# Warning: table is managed by iptables-nft, do not touch!"
            ),
            []
        );
    }

    #[test]
    fn every_prefix_parses_or_errors() {
        for (i, _) in RULESET.char_indices() {
            let _ = parse_ruleset(&RULESET[..i]);
        }
    }
}
