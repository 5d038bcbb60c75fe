//! The labels of `droptrace_drops_total`, and `--labels` read into them.

/// A label of `droptrace_drops_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropLabel {
    Reason,
    Function,
    Protocol,
    Interface,
    Netns,
    Pod,
    PodNamespace,
    Container,
    Dport,
}

impl DropLabel {
    pub const ALL: [DropLabel; 9] = [
        DropLabel::Reason,
        DropLabel::Function,
        DropLabel::Protocol,
        DropLabel::Interface,
        DropLabel::Netns,
        DropLabel::Pod,
        DropLabel::PodNamespace,
        DropLabel::Container,
        DropLabel::Dport,
    ];
    /// On unless turned off: bounded by the kernel and the node (its pods included).
    pub const DEFAULT: [DropLabel; 8] = [
        DropLabel::Reason,
        DropLabel::Function,
        DropLabel::Protocol,
        DropLabel::Interface,
        DropLabel::Netns,
        DropLabel::Pod,
        DropLabel::PodNamespace,
        DropLabel::Container,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropLabel::Reason => "reason",
            DropLabel::Function => "function",
            DropLabel::Protocol => "protocol",
            DropLabel::Interface => "interface",
            DropLabel::Netns => "netns",
            DropLabel::Pod => "pod",
            DropLabel::PodNamespace => "pod_namespace",
            DropLabel::Container => "container",
            DropLabel::Dport => "dport",
        }
    }
}

/// `--labels`: the exact list (`reason,function,dport`), or changes to the default
/// (`+dport,-interface`).
pub fn parse_labels(spec: &str) -> Result<Vec<DropLabel>, String> {
    let items: Vec<&str> = spec
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let by_name = |name: &str| {
        DropLabel::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown label `{name}`: the labels are {}",
                    DropLabel::ALL.map(DropLabel::name).join(", ")
                )
            })
    };
    let relative = items
        .iter()
        .all(|i| i.starts_with('+') || i.starts_with('-'));
    let mut labels: Vec<DropLabel> = if relative {
        DropLabel::DEFAULT.to_vec()
    } else {
        Vec::new()
    };
    for item in items {
        match (relative, item.as_bytes().first()) {
            (true, Some(b'+')) => {
                let l = by_name(&item[1..])?;
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
            (true, _) => {
                let l = by_name(&item[1..])?;
                labels.retain(|x| *x != l);
            }
            (false, _) => {
                let l = by_name(item)?;
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
    }
    // A fixed order, whatever the order given: the series' identity does not depend on it.
    labels.sort_by_key(|l| DropLabel::ALL.iter().position(|x| x == l));
    Ok(labels)
}
