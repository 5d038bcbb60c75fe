//! Keys naming one piece of sampled state, the same from a finding's evidence and from a
//! baseline's difference.
use crate::diagnose::state::Rule;

/// A rule, without its counts.
pub fn rule(r: &Rule) -> String {
    rule_text(&r.source, &r.table, &r.chain, &r.text)
}

pub fn rule_text(source: &str, table: &str, chain: &str, text: &str) -> String {
    format!("rule|{source}|{table}|{chain}|{}", without_counts(text))
}

/// A chain (its policy, and the rules packets fall through).
pub fn chain(source: &str, table: &str, chain: &str) -> String {
    format!("chain|{source}|{table}|{chain}")
}

pub fn qdisc(dev: &str, handle: &str) -> String {
    format!("qdisc|{dev}|{handle}")
}

/// A program where it is attached.
pub fn bpf(dev: &str, hook: &str, name: &str) -> String {
    format!("bpf|{dev}|{hook}|{name}")
}

/// nft's `counter packets 12 bytes 720` as `counter`.
pub fn without_counts(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        if matches!(words[i], "packets" | "bytes")
            && words.get(i + 1).is_some_and(|n| n.parse::<u64>().is_ok())
        {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}
