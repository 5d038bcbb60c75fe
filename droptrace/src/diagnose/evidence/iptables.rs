//! `iptables-save -c` / `ip6tables-save -c` (nft and legacy backends): chain policies with
//! their counters, and each rule with its counter, target and random-drop probability.
//!
//! The save format is the one both backends print identically, and `-c` puts a
//! `[packets:bytes]` counter on every line, which is what shows a rule dropping.
use serde::Serialize;
use thiserror::Error;

use super::snippet;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IptablesError {
    #[error("iptables-save, line {line}: {what}: `{text}`")]
    Line {
        line: usize,
        what: &'static str,
        text: String,
    },
    #[error("iptables-save output ends inside table {0} without COMMIT (truncated output?)")]
    Truncated(String),
}

/// Which kernel interface the rules live in; the caller knows which binary it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// iptables-nft: rules are nf_tables rules with xtables-compat expressions.
    Nft,
    /// iptables-legacy: the x_tables setsockopt interface.
    Legacy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// iptables-save
    Ipv4,
    /// ip6tables-save
    Ipv6,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IptSave {
    pub backend: Backend,
    pub family: Family,
    pub chains: Vec<IptChain>,
    pub rules: Vec<IptRule>,
    /// iptables-nft-save's "# Warning: iptables-legacy tables present": more rules exist
    /// that only iptables-legacy-save shows.
    pub legacy_tables_present: bool,
    /// Tables iptables-nft-save could not print ("# Table `filter' is incompatible, use
    /// 'nft' tool."): they hold native nft rules; read them with nft.
    pub incompatible_tables: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IptChain {
    pub table: String,
    pub name: String,
    /// `ACCEPT`/`DROP` for a built-in chain, None for a user chain (`-`).
    pub policy: Option<String>,
    /// Packets and bytes the policy decided. iptables-nft 1.8.9 keeps these at 0: its base
    /// chains have no counters, so policy drops are only visible with the legacy backend.
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IptRule {
    pub table: String,
    pub chain: String,
    /// The rule as saved, `-A INPUT ...`, without the counter.
    pub spec: String,
    /// The `-j` (or `-g`) target; None for a rule that only counts.
    pub target: Option<String>,
    /// True when the target was reached with `-g` (goto).
    pub goto: bool,
    /// From the `[packets:bytes]` prefix; None when saved without -c.
    pub packets: Option<u64>,
    pub bytes: Option<u64>,
    /// `-m statistic --mode random --probability P`: the rule matches (and so, with
    /// DROP, drops) only this share of packets.
    pub random_probability: Option<f64>,
    /// `-m comment --comment TEXT`.
    pub comment: Option<String>,
}

/// Parses one save output. `backend` and `family` are the caller's: the text does not say
/// them reliably (iptables-legacy-save prints no backend name).
pub fn parse_save(text: &str, backend: Backend, family: Family) -> Result<IptSave, IptablesError> {
    let mut save = IptSave {
        backend,
        family,
        chains: Vec::new(),
        rules: Vec::new(),
        legacy_tables_present: false,
        incompatible_tables: Vec::new(),
    };
    let mut table: Option<String> = None;
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let err = |what| IptablesError::Line {
            line: index + 1,
            what,
            text: snippet(line),
        };
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if comment.starts_with("Warning: iptables-legacy tables present") {
                save.legacy_tables_present = true;
            } else if let Some(rest) = comment.strip_prefix("Table `") {
                if let Some((name, _)) = rest.split_once('\'') {
                    save.incompatible_tables.push(name.to_string());
                }
            }
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if table.is_some() {
                return Err(err("table starts before the previous one's COMMIT"));
            }
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(err("bad table name"));
            }
            table = Some(name.to_string());
            continue;
        }
        let Some(current) = table.as_deref() else {
            return Err(err("line outside a table (no `*table` before it)"));
        };
        if line == "COMMIT" {
            table = None;
        } else if let Some(rest) = line.strip_prefix(':') {
            save.chains.push(parse_chain(rest, current).map_err(err)?);
        } else {
            save.rules.push(parse_rule(line, current).map_err(err)?);
        }
    }
    if let Some(name) = table {
        return Err(IptablesError::Truncated(name));
    }
    Ok(save)
}

/// `INPUT DROP [12:720]` (the part after `:`).
fn parse_chain(rest: &str, table: &str) -> Result<IptChain, &'static str> {
    let mut words = rest.split_whitespace();
    let (Some(name), Some(policy), Some(counter), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err("expected `:CHAIN POLICY [packets:bytes]`");
    };
    let (packets, bytes) = parse_counter(counter).ok_or("bad chain counter")?;
    Ok(IptChain {
        table: table.to_string(),
        name: name.to_string(),
        policy: (policy != "-").then(|| policy.to_string()),
        packets,
        bytes,
    })
}

/// `[5:300] -A INPUT -p tcp -m tcp --dport 1678 -j DROP`, or the same without the counter.
fn parse_rule(line: &str, table: &str) -> Result<IptRule, &'static str> {
    let (counter, spec) = match line.strip_prefix('[') {
        Some(_) => {
            let (counter, spec) = line.split_once(' ').ok_or("counter without a rule")?;
            (
                Some(parse_counter(counter).ok_or("bad rule counter")?),
                spec.trim(),
            )
        }
        None => (None, line),
    };
    let words = split_args(spec).ok_or("unbalanced quotes")?;
    let chain = match words.as_slice() {
        [a, chain, ..] if a == "-A" => chain.clone(),
        _ => return Err("expected `-A CHAIN ...`"),
    };
    let mut target = None;
    let mut goto = false;
    let mut comment = None;
    let mut in_statistic = false;
    let mut random = false;
    let mut probability = None;
    let mut i = 2;
    while i < words.len() {
        let next = words.get(i + 1);
        match words[i].as_str() {
            "-j" | "--jump" => {
                target = next.cloned();
                goto = false;
            }
            "-g" | "--goto" => {
                target = next.cloned();
                goto = true;
            }
            "-m" | "--match" => in_statistic = next.is_some_and(|m| m == "statistic"),
            "--mode" if in_statistic => random = next.is_some_and(|m| m == "random"),
            "--probability" if in_statistic => probability = next.and_then(|p| p.parse().ok()),
            "--comment" => comment = next.cloned(),
            _ => {}
        }
        i += 1;
    }
    Ok(IptRule {
        table: table.to_string(),
        chain,
        spec: spec.to_string(),
        target,
        goto,
        packets: counter.map(|(p, _)| p),
        bytes: counter.map(|(_, b)| b),
        random_probability: probability.filter(|p: &f64| random && p.is_finite()),
        comment,
    })
}

/// `[packets:bytes]`
fn parse_counter(text: &str) -> Option<(u64, u64)> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some((p.parse().ok()?, b.parse().ok()?))
}

/// Splits saved arguments the way iptables-restore does: whitespace separates, double
/// quotes group, and a backslash escapes the next character. None on an unclosed quote.
fn split_args(text: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                word.push(chars.next()?);
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        out.push(word);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFT4: &str = fixture!("iptables-nft-save.v4.txt");
    const NFT6: &str = fixture!("iptables-nft-save.v6.txt");
    const LEGACY4: &str = fixture!("iptables-legacy-save.v4.txt");
    const LEGACY6: &str = fixture!("iptables-legacy-save.v6.txt");
    const WITH_LEGACY: &str = fixture!("iptables-nft-save.with-legacy.v4.txt");
    const INCOMPATIBLE: &str = fixture!("iptables-nft-save.incompatible.v4.txt");

    fn chain<'a>(s: &'a IptSave, table: &str, name: &str) -> &'a IptChain {
        s.chains
            .iter()
            .find(|c| c.table == table && c.name == name)
            .unwrap()
    }

    #[test]
    fn both_backends_v4() {
        for (text, backend) in [(NFT4, Backend::Nft), (LEGACY4, Backend::Legacy)] {
            let s = parse_save(text, backend, Family::Ipv4).unwrap();
            assert_eq!(s.backend, backend);
            assert_eq!(s.chains.len(), 9);
            assert_eq!(s.rules.len(), 9);
            assert!(!s.legacy_tables_present);
            assert_eq!(
                chain(&s, "filter", "FORWARD").policy.as_deref(),
                Some("DROP")
            );
            assert_eq!(chain(&s, "filter", "DT_CHECK").policy, None);

            let stat = &s.rules[1];
            assert_eq!(
                (stat.table.as_str(), stat.chain.as_str()),
                ("filter", "INPUT")
            );
            assert_eq!(
                stat.spec,
                "-A INPUT -p tcp -m tcp --dport 1678 -m statistic --mode random \
                 --probability 0.29999999981 -j DROP"
            );
            assert_eq!(stat.target.as_deref(), Some("DROP"));
            assert_eq!((stat.packets, stat.bytes), (Some(2), Some(120)));
            assert_eq!(stat.random_probability, Some(0.29999999981));

            let reject = &s.rules[2];
            assert_eq!(reject.target.as_deref(), Some("REJECT"));
            assert_eq!(reject.random_probability, None);
            assert_eq!(s.rules[3].target.as_deref(), Some("DT_CHECK"));

            let user = &s.rules[7];
            assert_eq!(user.chain, "DT_CHECK");
            assert_eq!(user.comment.as_deref(), Some("drop udp 1680"));
            assert_eq!(
                (user.packets, user.target.as_deref()),
                (Some(4), Some("DROP"))
            );

            assert_eq!(s.rules[0].table, "mangle");
            assert_eq!(s.rules[0].target.as_deref(), Some("MARK"));
        }
        // The backends differ in one place: iptables-nft keeps no policy counters.
        let nft = parse_save(NFT4, Backend::Nft, Family::Ipv4).unwrap();
        let legacy = parse_save(LEGACY4, Backend::Legacy, Family::Ipv4).unwrap();
        assert_eq!(chain(&nft, "filter", "INPUT").packets, 0);
        assert_eq!(
            (
                chain(&legacy, "filter", "INPUT").packets,
                chain(&legacy, "filter", "INPUT").bytes
            ),
            (19, 960)
        );
    }

    #[test]
    fn both_backends_v6() {
        for (text, backend) in [(NFT6, Backend::Nft), (LEGACY6, Backend::Legacy)] {
            let s = parse_save(text, backend, Family::Ipv6).unwrap();
            assert_eq!(s.family, Family::Ipv6);
            assert_eq!(s.rules.len(), 3);
            assert_eq!(s.rules[0].target.as_deref(), Some("REJECT"));
            assert_eq!(s.rules[1].random_probability, Some(0.5));
            assert_eq!(s.rules[1].target.as_deref(), Some("DROP"));
        }
        let legacy = parse_save(LEGACY6, Backend::Legacy, Family::Ipv6).unwrap();
        assert_eq!(legacy.rules[1].packets, Some(10));
    }

    #[test]
    fn warnings_from_iptables_nft_save() {
        let s = parse_save(WITH_LEGACY, Backend::Nft, Family::Ipv4).unwrap();
        assert!(s.legacy_tables_present);
        assert_eq!(s.rules.len(), 1);
        let s = parse_save(INCOMPATIBLE, Backend::Nft, Family::Ipv4).unwrap();
        assert_eq!(s.incompatible_tables, ["filter"]);
        assert!(s.chains.iter().all(|c| c.table == "mangle"));
    }

    #[test]
    fn quoting_goto_and_no_counters() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n:X - [0:0]\n\
                    -A INPUT -m comment --comment \"say \\\"hi\\\" now\" -g X\n\
                    -A INPUT -p udp\n\
                    -A X -m statistic --mode nth --every 10 --packet 0 -j DROP\nCOMMIT\n";
        let s = parse_save(text, Backend::Legacy, Family::Ipv4).unwrap();
        assert_eq!(s.rules[0].comment.as_deref(), Some("say \"hi\" now"));
        assert_eq!(
            (s.rules[0].target.as_deref(), s.rules[0].goto),
            (Some("X"), true)
        );
        assert_eq!((s.rules[0].packets, s.rules[0].bytes), (None, None));
        assert_eq!(s.rules[1].target, None);
        assert_eq!(s.rules[2].random_probability, None);
    }

    #[test]
    fn malformed_input() {
        let ok = |t| parse_save(t, Backend::Nft, Family::Ipv4);
        assert_eq!(ok("").map(|s| s.rules.len()), Ok(0));
        assert!(matches!(
            ok("-A INPUT -j DROP\n"),
            Err(IptablesError::Line { line: 1, .. })
        ));
        assert!(matches!(
            ok("*filter\n:INPUT ACCEPT\n"),
            Err(IptablesError::Line { line: 2, .. })
        ));
        assert!(ok("*filter\n[1:x] -A INPUT -j DROP\nCOMMIT\n").is_err());
        assert!(ok("*filter\n[1:2]\nCOMMIT\n").is_err());
        assert!(ok("*filter\n[1:2] -A INPUT -m comment --comment \"open\nCOMMIT\n").is_err());
        assert!(ok("*filter\n[1:2] -I INPUT -j DROP\nCOMMIT\n").is_err());
        assert!(ok("*filter\n*nat\n").is_err());
        let cut = &LEGACY4[..LEGACY4
            .find("COMMIT\n# Completed on Sun Nov 22 11:39:13 2026\n# Generated")
            .unwrap()];
        assert_eq!(ok(cut), Err(IptablesError::Truncated("mangle".into())));
        let nan = "*filter\n-A I -m statistic --mode random --probability NaN -j DROP\nCOMMIT\n";
        assert_eq!(ok(nan).unwrap().rules[0].random_probability, None);
    }

    #[test]
    fn every_prefix_parses_or_errors() {
        for (i, _) in LEGACY4.char_indices() {
            let _ = parse_save(&LEGACY4[..i], Backend::Legacy, Family::Ipv4);
        }
    }
}
