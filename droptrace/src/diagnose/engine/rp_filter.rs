//! Reverse-path filtering: the rp_filter settings that reject the source address.

use super::{Finding, Ns};

pub(super) fn rp_filter(n: &Ns<'_>, iface: Option<&str>, f: &mut Finding) -> String {
    let Some(after) = n.after else {
        return "unknown".into();
    };
    let all = after.sysctl("net.ipv4.conf.all.rp_filter").unwrap_or("?");
    let dev = iface.and_then(|i| after.sysctl(&format!("net.ipv4.conf.{i}.rp_filter")));
    f.evidence.push(format!(
        "net.ipv4.conf.all.rp_filter = {all}{}",
        match (iface, dev) {
            (Some(i), Some(v)) => format!(", net.ipv4.conf.{i}.rp_filter = {v}"),
            _ => String::new(),
        }
    ));
    if let Some(d) = n.delta("TcpExt", "IPReversePathFilter") {
        f.evidence
            .push(format!("TcpExt IPReversePathFilter +{d} in the window"));
    }
    let i = iface.unwrap_or("IFACE");
    // sysctl reads dots as separators: an interface name with a dot needs the slash form.
    let key = if i.contains('.') {
        format!("net/ipv4/conf/{i}/rp_filter")
    } else {
        format!("net.ipv4.conf.{i}.rp_filter")
    };
    f.summary = format!(
        "reverse-path filtering drops packets arriving on {i} in {}: the route back to their source leaves by another interface",
        n.name
    );
    f.fix = format!(
        "fix the routing for those sources, or use loose mode: {}sysctl -w {key}=2 net.ipv4.conf.all.rp_filter=2", n.prefix
    );
    i.to_owned()
}
