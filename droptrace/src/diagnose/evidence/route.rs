//! Routing state from iproute2's JSON: the routes of every table (`ip -j -4 route show
//! table all`), the policy-routing rules (`ip -j -4 rule show`), and the kernel's answer to
//! one lookup (`ip -j route get DST from SRC iif DEV`). Also the prefix match that says
//! which route or rule a destination meets, so a finding can name it.
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::snippet;

#[derive(Debug, Error)]
pub enum RouteError {
    #[error("not the JSON of ip route/rule ({0}): {1}")]
    Json(String, String),
}

/// One route of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    /// `unicast` (ip prints no type for it), `local`, `broadcast`, `unreachable`,
    /// `blackhole`, `prohibit`, `throw`...
    pub kind: String,
    /// `default` or a prefix as ip prints it (`10.88.0.0/24`, `10.66.0.2`).
    pub dst: String,
    pub dev: Option<String>,
    pub gateway: Option<String>,
    /// `main` when ip prints none.
    pub table: String,
    pub metric: Option<u64>,
}

/// A policy-routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteRule {
    pub priority: u32,
    /// Source and destination prefixes; `None` is "all".
    pub src: Option<String>,
    pub dst: Option<String>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// `lookup` (with `table`), `unreachable`, `prohibit`, `blackhole`, `goto`, `nop`.
    pub action: String,
    pub table: Option<String>,
    /// Selectors droptrace does not evaluate (fwmark, uidrange, ipproto, ports, tos,
    /// `not`): whether the rule matches a packet cannot be said here.
    pub unevaluated: Vec<String>,
    /// The rule as `ip rule` would take it after `ip rule del`.
    pub text: String,
}

/// The answer of `ip -j route get`: the route the kernel would use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteAnswer {
    pub kind: String,
    pub dst: String,
    pub dev: Option<String>,
    pub gateway: Option<String>,
    pub table: Option<String>,
}

#[derive(Deserialize)]
struct RawRoute {
    #[serde(rename = "type")]
    kind: Option<String>,
    dst: Option<String>,
    dev: Option<String>,
    gateway: Option<String>,
    table: Option<String>,
    metric: Option<u64>,
}

fn list(json: &str) -> Result<Vec<serde_json::Value>, RouteError> {
    serde_json::from_str(json).map_err(|e| RouteError::Json(e.to_string(), snippet(json)))
}

fn route_of(v: serde_json::Value) -> Option<RawRoute> {
    serde_json::from_value(v).ok()
}

/// `ip -j route show table all` (one family).
pub fn parse_routes(json: &str) -> Result<Vec<Route>, RouteError> {
    Ok(list(json)?
        .into_iter()
        .filter_map(route_of)
        .filter_map(|r| {
            Some(Route {
                kind: r.kind.unwrap_or_else(|| "unicast".into()),
                dst: r.dst?,
                dev: r.dev,
                gateway: r.gateway,
                table: r.table.unwrap_or_else(|| "main".into()),
                metric: r.metric,
            })
        })
        .collect())
}

/// `ip -j route get ...`; an empty list (never printed by ip) is an error too.
pub fn parse_route_get(json: &str) -> Result<RouteAnswer, RouteError> {
    let first = list(json)?
        .into_iter()
        .next()
        .and_then(route_of)
        .ok_or_else(|| RouteError::Json("no route in the answer".into(), snippet(json)))?;
    Ok(RouteAnswer {
        kind: first.kind.unwrap_or_else(|| "unicast".into()),
        dst: first.dst.unwrap_or_default(),
        dev: first.dev,
        gateway: first.gateway,
        table: first.table,
    })
}

/// `ip -j rule show` (one family).
pub fn parse_rules(json: &str) -> Result<Vec<RouteRule>, RouteError> {
    const KNOWN: &[&str] = &[
        "priority", "src", "srclen", "dst", "dstlen", "iif", "oif", "table", "action", "protocol",
        "flags",
    ];
    let mut out = Vec::new();
    for v in list(json)? {
        let Some(obj) = v.as_object() else { continue };
        let Some(priority) = obj
            .get("priority")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
        else {
            continue;
        };
        let text_of = |k: &str| obj.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let prefix = |addr: &str, len: &str| -> Option<String> {
            let a = text_of(addr).filter(|a| a != "all")?;
            Some(match obj.get(len).and_then(serde_json::Value::as_u64) {
                Some(l) => format!("{a}/{l}"),
                None => a,
            })
        };
        let mut unevaluated: Vec<String> = obj
            .keys()
            .filter(|k| !KNOWN.contains(&k.as_str()))
            .cloned()
            .collect();
        if obj
            .get("flags")
            .and_then(|f| f.as_array())
            .is_some_and(|f| f.iter().any(|x| x == "not"))
        {
            unevaluated.push("not".into());
        }
        let table = text_of("table");
        let action = text_of("action").unwrap_or_else(|| "lookup".into());
        let (src, dst) = (prefix("src", "srclen"), prefix("dst", "dstlen"));
        let (iif, oif) = (text_of("iif"), text_of("oif"));
        let mut text = format!("priority {priority}");
        for (word, value) in [("from", &src), ("to", &dst), ("iif", &iif), ("oif", &oif)] {
            if let Some(v) = value {
                text.push_str(&format!(" {word} {v}"));
            }
        }
        match (&action[..], &table) {
            ("lookup", Some(t)) => text.push_str(&format!(" lookup {t}")),
            (a, _) => text.push_str(&format!(" {a}")),
        }
        out.push(RouteRule {
            priority,
            src,
            dst,
            iif,
            oif,
            action,
            table,
            unevaluated,
            text,
        });
    }
    out.sort_by_key(|r| r.priority);
    Ok(out)
}

/// The length of `prefix` (`default`, `10.88.0.0/24`, `fd88::5`) when it contains
/// `addr`; `None` when it does not (or is not a prefix of the same family).
pub fn prefix_len_containing(prefix: &str, addr: IpAddr) -> Option<u8> {
    if prefix == "default" {
        return Some(0);
    }
    let (net, len) = match prefix.split_once('/') {
        Some((n, l)) => (n, l.parse::<u8>().ok()?),
        None => (prefix, if addr.is_ipv4() { 32 } else { 128 }),
    };
    let net: IpAddr = net.parse().ok()?;
    let (a, n, bits) = match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(n)) << 96,
            32,
        ),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return None,
    };
    if len > bits {
        return None;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    (a & mask == n & mask).then_some(len)
}

/// The route of `table` a packet to `dst` takes: the longest prefix (lowest metric on a
/// tie).
pub fn best_route<'a>(routes: &'a [Route], table: &str, dst: IpAddr) -> Option<&'a Route> {
    routes
        .iter()
        .filter(|r| r.table == table)
        .filter_map(|r| prefix_len_containing(&r.dst, dst).map(|l| (l, r)))
        .max_by(|(la, a), (lb, b)| {
            la.cmp(lb)
                .then(b.metric.unwrap_or(0).cmp(&a.metric.unwrap_or(0)))
        })
        .map(|(_, r)| r)
}

/// What the policy-routing walk met for a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Walk<'a> {
    /// A route, found through this rule.
    Route(&'a RouteRule, &'a Route),
    /// A rule whose action refuses the packet (unreachable, prohibit, blackhole).
    Rule(&'a RouteRule),
    /// No table the rules led to has a route; the rules that could not be evaluated.
    NoRoute(Vec<&'a RouteRule>),
}

/// The kernel's policy-routing walk, for the selectors droptrace can evaluate: rules in
/// priority order, each table's longest-prefix route, `throw` routes going on.
pub fn walk<'a>(
    rules: &'a [RouteRule],
    routes: &'a [Route],
    src: Option<IpAddr>,
    dst: IpAddr,
    iif: Option<&str>,
) -> Walk<'a> {
    let mut skipped = Vec::new();
    let matches = |prefix: &Option<String>, addr: Option<IpAddr>| match (prefix, addr) {
        (None, _) => true,
        (Some(p), Some(a)) => prefix_len_containing(p, a).is_some(),
        (Some(_), None) => false,
    };
    for rule in rules {
        if !rule.unevaluated.is_empty() {
            skipped.push(rule);
            continue;
        }
        let iif_ok = match (&rule.iif, iif) {
            (None, _) => true,
            (Some(r), Some(i)) => r == i,
            (Some(_), None) => false,
        };
        if !iif_ok
            || rule.oif.is_some()
            || !matches(&rule.src, src)
            || !matches(&rule.dst, Some(dst))
        {
            continue;
        }
        match rule.action.as_str() {
            "unreachable" | "prohibit" | "blackhole" => return Walk::Rule(rule),
            "lookup" => {
                let Some(table) = &rule.table else { continue };
                match best_route(routes, table, dst) {
                    Some(r) if r.kind != "throw" => return Walk::Route(rule, r),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Walk::NoRoute(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_routes_of_every_table() {
        let routes = parse_routes(fixture!("ip-route-all.rule-table.v4.json")).unwrap();
        let unreachable = routes.iter().find(|r| r.table == "100").unwrap();
        assert_eq!(
            (unreachable.kind.as_str(), unreachable.dst.as_str()),
            ("unreachable", "default")
        );
        let main = routes.iter().find(|r| r.dst == "10.66.0.0/24").unwrap();
        assert_eq!(
            (main.kind.as_str(), main.table.as_str()),
            ("unicast", "main")
        );
        assert_eq!(main.dev.as_deref(), Some("v13b"));
        let v6 = parse_routes(fixture!("ip-route-all.rule-table.v6.json")).unwrap();
        assert!(v6
            .iter()
            .any(|r| r.table == "100" && r.kind == "unreachable"));
        assert!(parse_routes("{").is_err());
    }

    #[test]
    fn parses_rules_in_priority_order() {
        let rules = parse_rules(fixture!("ip-rule.rule-table.v4.json")).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[1].text, "priority 32765 to 10.88.0.0/24 lookup 100");
        assert_eq!(rules[1].table.as_deref(), Some("100"));
        let rules = parse_rules(fixture!("ip-rule.prohibit.v6.json")).unwrap();
        assert_eq!(rules[1].text, "priority 32765 to fd88::/64 prohibit");
        assert_eq!(rules[1].action, "prohibit");
        let marked =
            parse_rules(r#"[{"priority":5,"src":"all","fwmark":"0x1","table":"7"}]"#).unwrap();
        assert_eq!(marked[0].unevaluated, ["fwmark"]);
    }

    #[test]
    fn parses_route_get_answers() {
        let local = parse_route_get(fixture!("ip-route-get.local.v4.json")).unwrap();
        assert_eq!(
            (local.kind.as_str(), local.dev.as_deref()),
            ("local", Some("lo"))
        );
        let fwd = parse_route_get(fixture!("ip-route-get.forward.v6.json")).unwrap();
        assert_eq!(
            (fwd.kind.as_str(), fwd.dev.as_deref()),
            ("unicast", Some("v13b"))
        );
        assert!(parse_route_get("[]").is_err());
    }

    #[test]
    fn prefixes_match_by_length() {
        assert_eq!(
            prefix_len_containing("10.88.0.0/24", ip("10.88.0.5")),
            Some(24)
        );
        assert_eq!(prefix_len_containing("10.88.0.0/24", ip("10.89.0.5")), None);
        assert_eq!(prefix_len_containing("default", ip("fd88::5")), Some(0));
        assert_eq!(prefix_len_containing("fd88::/64", ip("fd88::5")), Some(64));
        assert_eq!(prefix_len_containing("fd88::/64", ip("10.88.0.5")), None);
        assert_eq!(
            prefix_len_containing("10.66.0.2", ip("10.66.0.2")),
            Some(32)
        );
        assert_eq!(prefix_len_containing("10.0.0.0/33", ip("10.0.0.1")), None);
        assert_eq!(prefix_len_containing("garbage", ip("10.0.0.1")), None);
    }

    #[test]
    fn the_walk_finds_the_rule_or_route_that_refuses() {
        let rules = parse_rules(fixture!("ip-rule.rule-table.v4.json")).unwrap();
        let routes = parse_routes(fixture!("ip-route-all.rule-table.v4.json")).unwrap();
        let w = walk(
            &rules,
            &routes,
            Some(ip("10.66.0.1")),
            ip("10.88.0.5"),
            Some("v13b"),
        );
        let Walk::Route(rule, route) = w else {
            panic!("{w:?}")
        };
        assert_eq!(
            (rule.priority, route.kind.as_str(), route.table.as_str()),
            (32765, "unreachable", "100")
        );
        // Local addresses are found in table local first.
        let w = walk(
            &rules,
            &routes,
            Some(ip("10.66.0.1")),
            ip("10.66.0.2"),
            Some("v13b"),
        );
        assert!(matches!(w, Walk::Route(_, r) if r.kind == "local"), "{w:?}");
        let rules6 = parse_rules(fixture!("ip-rule.prohibit.v6.json")).unwrap();
        let w = walk(&rules6, &[], None, ip("fd88::5"), None);
        assert!(
            matches!(w, Walk::Rule(r) if r.action == "prohibit"),
            "{w:?}"
        );
        let w = walk(&rules6, &[], None, ip("fd89::5"), None);
        assert_eq!(w, Walk::NoRoute(Vec::new()));
    }
}
