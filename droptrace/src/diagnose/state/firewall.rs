//! Firewall rules and chain policies (nftables, iptables-nft, legacy) that drop, as the
//! diagnosis needs them.
use super::*;

pub(super) fn firewall(raw: &RawSnapshot, st: &mut NsState) {
    use crate::diagnose::evidence::{
        iptables::{self, Backend, Family},
        nft::{self, Policy, Verdict},
    };
    let mut iptables_nft_present = false;
    for (key, backend, family) in [
        ("iptables-nft", Backend::Nft, Family::Ipv4),
        ("ip6tables-nft", Backend::Nft, Family::Ipv6),
        ("iptables-legacy", Backend::Legacy, Family::Ipv4),
        ("ip6tables-legacy", Backend::Legacy, Family::Ipv6),
    ] {
        let Some(text) = raw.commands.get(key) else {
            continue;
        };
        let save = match iptables::parse_save(text, backend, family) {
            Ok(save) => save,
            Err(e) => {
                st.missing.push(format!("{key}-save output: {e}"));
                continue;
            }
        };
        if backend == Backend::Nft && !save.rules.is_empty() {
            iptables_nft_present = true;
        }
        for r in &save.rules {
            let Some(target) = r
                .target
                .as_deref()
                .filter(|t| matches!(*t, "DROP" | "REJECT"))
            else {
                continue;
            };
            let delete_spec = r.spec.replacen(&format!("-A {} ", r.chain), "", 1);
            st.rules.push(Rule {
                source: key.to_owned(),
                key: format!("{key} {} {}", r.table, r.spec),
                table: r.table.clone(),
                chain: r.chain.clone(),
                text: r.spec.clone(),
                verdict: target.to_ascii_lowercase(),
                packets: r.packets,
                random: r.random_probability,
                delete: format!("{key} -t {} -D {} {delete_spec}", r.table, r.chain),
                is_policy: false,
                hook: builtin_hook(&r.chain),
            });
        }
        for c in save
            .chains
            .iter()
            .filter(|c| c.policy.as_deref() == Some("DROP"))
        {
            st.rules.push(Rule {
                source: key.to_owned(),
                key: format!("{key} {} policy {}", c.table, c.name),
                table: c.table.clone(),
                chain: c.name.clone(),
                text: "policy DROP".into(),
                verdict: "drop".into(),
                // iptables-nft's base chains keep no policy counters (always 0).
                packets: (backend == Backend::Legacy).then_some(c.packets),
                random: None,
                delete: format!("{key} -t {} -P {} ACCEPT", c.table, c.name),
                is_policy: true,
                hook: builtin_hook(&c.name),
            });
        }
    }
    let Some(text) = raw.commands.get("nft") else {
        return;
    };
    let chains = match nft::parse_ruleset(text) {
        Ok(c) => c,
        Err(e) => {
            st.missing.push(format!("nft ruleset: {e}"));
            return;
        }
    };
    let warnings = raw
        .stderr
        .get("nft")
        .map(|e| nft::parse_iptables_nft_warnings(e))
        .unwrap_or_default();
    for chain in &chains {
        // iptables-nft's own tables are read from iptables-nft-save, in its syntax.
        if iptables_nft_present
            && nft::is_iptables_nft_table(&chains, &chain.family, &chain.table, &warnings)
        {
            continue;
        }
        for r in &chain.rules {
            let verdict = match r.verdict {
                Some(Verdict::Drop) => "drop",
                Some(Verdict::Reject) => "reject",
                None => continue,
            };
            st.rules.push(Rule {
                source: "nftables".into(),
                key: format!("{} {} {} handle {}", r.family, r.table, r.chain, r.handle),
                table: format!("{} {}", r.family, r.table),
                chain: r.chain.clone(),
                text: r.text.clone(),
                verdict: verdict.into(),
                packets: r.packets,
                random: numgen_probability(&r.text),
                delete: format!(
                    "nft delete rule {} {} {} handle {}",
                    r.family, r.table, r.chain, r.handle
                ),
                is_policy: false,
                hook: chain.hook.clone(),
            });
        }
        if chain.policy == Some(Policy::Drop) {
            st.rules.push(Rule {
                source: "nftables".into(),
                key: format!("{} {} {} policy", chain.family, chain.table, chain.name),
                table: format!("{} {}", chain.family, chain.table),
                chain: chain.name.clone(),
                text: "policy drop".into(),
                verdict: "drop".into(),
                packets: None,
                random: None,
                delete: format!(
                    "nft chain {} {} {} '{{ policy accept; }}'",
                    chain.family, chain.table, chain.name
                ),
                is_policy: true,
                hook: chain.hook.clone(),
            });
        }
    }
}

/// The hook of an iptables built-in chain (`INPUT` is `input`); user chains have none.
fn builtin_hook(chain: &str) -> Option<String> {
    matches!(
        chain,
        "PREROUTING" | "INPUT" | "FORWARD" | "OUTPUT" | "POSTROUTING"
    )
    .then(|| chain.to_ascii_lowercase())
}

/// `numgen random mod 10 < 3` matches with probability 0.3.
fn numgen_probability(rule: &str) -> Option<f64> {
    let rest = rule.split("numgen random mod ").nth(1)?;
    let mut words = rest.split_whitespace();
    let modulus: f64 = words.next()?.parse().ok()?;
    let op = words.next()?;
    let bound: f64 = words.next()?.parse().ok()?;
    let p = match op {
        "<" => bound / modulus,
        "<=" => (bound + 1.0) / modulus,
        ">" => (modulus - bound - 1.0) / modulus,
        ">=" => (modulus - bound) / modulus,
        _ => return None,
    };
    (modulus > 0.0).then_some(p.clamp(0.0, 1.0))
}
