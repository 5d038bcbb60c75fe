//! Parser of tracefs event format files (`events/<system>/<event>/format`).
//!
//! Without BTF, the format file is the only description of a tracepoint's record the
//! kernel gives: field offsets moved between releases (`rx_sk` arrived in 6.11,
//! `reason` in 5.17), and the print format lists the drop reason names.

use std::path::{Path, PathBuf};

use super::btf::IoError;

/// What can go wrong reading a format file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("cannot read tracepoint format {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: IoError,
    },
    #[error("tracepoint format has no `name:` line")]
    MissingName,
    #[error("tracepoint format has no `ID:` line")]
    MissingId,
    #[error("tracepoint format line {line}: bad ID `{text}`")]
    BadId { line: usize, text: String },
    #[error("tracepoint format line {line}: {reason} in `{text}`")]
    BadField {
        line: usize,
        text: String,
        reason: &'static str,
    },
}

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// C type as tracefs spells it, e.g. `void *`, `enum skb_drop_reason`, `char[16]`.
    pub type_name: String,
    /// Byte offset in the record, counting the common header fields.
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// A parsed format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    pub name: String,
    pub id: u32,
    /// All fields in file order, including the `common_*` header fields.
    pub fields: Vec<Field>,
    /// The text after `print fmt: `; empty if the file has none.
    pub print_fmt: String,
}

/// Parses the text of a format file.
pub fn parse(text: &str) -> Result<TracepointFormat, FormatError> {
    TracepointFormat::parse(text)
}

impl TracepointFormat {
    /// Parses the text of a format file. Tabs and runs of spaces are treated alike,
    /// so copies that went through a terminal or a web page still parse.
    pub fn parse(text: &str) -> Result<TracepointFormat, FormatError> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        let mut print_fmt = String::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("name:") {
                name = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("ID:") {
                let rest = rest.trim();
                id = Some(rest.parse::<u32>().map_err(|_| FormatError::BadId {
                    line: line_no,
                    text: rest.to_owned(),
                })?);
            } else if line.starts_with("field:") {
                fields.push(parse_field(line, line_no)?);
            } else if let Some(rest) = line.strip_prefix("print fmt:") {
                print_fmt = rest.trim().to_owned();
            }
        }
        Ok(TracepointFormat {
            name: name.ok_or(FormatError::MissingName)?,
            id: id.ok_or(FormatError::MissingId)?,
            fields,
            print_fmt,
        })
    }

    /// Reads and parses a format file, e.g.
    /// `/sys/kernel/tracing/events/skb/kfree_skb/format`.
    pub fn from_file(path: &Path) -> Result<TracepointFormat, FormatError> {
        let text = std::fs::read_to_string(path).map_err(|e| FormatError::Io {
            path: path.to_owned(),
            source: IoError(e),
        })?;
        TracepointFormat::parse(&text)
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The `{ value, "NAME" }` table of `__print_symbolic(REC->field, ...)` in the print
    /// format, in the order given; empty if there is none. Entries whose value is not a
    /// plain number (an enum the kernel did not translate) are left out.
    pub fn symbolic_values(&self, field: &str) -> Vec<(u64, String)> {
        let mut rest = self.print_fmt.as_str();
        while let Some(at) = rest.find("__print_symbolic(") {
            rest = &rest[at + "__print_symbolic(".len()..];
            let args = rest.trim_start();
            let Some(after) = args
                .strip_prefix("REC->")
                .and_then(|a| a.strip_prefix(field))
            else {
                continue;
            };
            let after = after.trim_start();
            if let Some(table) = after.strip_prefix(',') {
                return symbolic_table(table);
            }
        }
        Vec::new()
    }
}

/// Parses `field:TYPE NAME; offset:N; size:N; signed:N;`.
fn parse_field(line: &str, line_no: usize) -> Result<Field, FormatError> {
    let bad = |reason| FormatError::BadField {
        line: line_no,
        text: line.to_owned(),
        reason,
    };
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in line.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part.split_once(':').ok_or_else(|| bad("no `key:value`"))?;
        let value = value.trim();
        match key.trim() {
            "field" => decl = Some(value),
            "offset" => offset = Some(value.parse().map_err(|_| bad("bad offset"))?),
            "size" => size = Some(value.parse().map_err(|_| bad("bad size"))?),
            "signed" => signed = value == "1",
            _ => {}
        }
    }
    let (type_name, name) = split_declaration(decl.ok_or_else(|| bad("no declaration"))?)
        .ok_or_else(|| bad("cannot find the field name"))?;
    Ok(Field {
        name,
        type_name,
        offset: offset.ok_or_else(|| bad("no offset"))?,
        size: size.ok_or_else(|| bad("no size"))?,
        signed,
    })
}

/// Splits a C declaration into type and name: `void * skbaddr` -> (`void *`, `skbaddr`),
/// `char comm[16]` -> (`char[16]`, `comm`), `__data_loc char[] name` -> (`__data_loc char[]`, `name`).
fn split_declaration(decl: &str) -> Option<(String, String)> {
    let decl = decl.trim();
    let (head, array) = match decl.strip_suffix(']') {
        Some(_) => {
            let open = decl.rfind('[')?;
            (decl[..open].trim_end(), &decl[open..])
        }
        None => (decl, ""),
    };
    let split = head.rfind(|c: char| c.is_whitespace() || c == '*')?;
    let (type_part, name) = head.split_at(split + 1);
    let name = name.trim();
    let type_part = type_part.trim();
    let is_ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    if !is_ident(name) || type_part.is_empty() {
        return None;
    }
    Some((format!("{type_part}{array}"), name.to_owned()))
}

/// Reads `{ 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" }, ... )` up to the closing parenthesis.
fn symbolic_table(mut rest: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        let Some(entry) = rest.strip_prefix('{') else {
            return out;
        };
        let Some((value, after)) = entry.split_once(',') else {
            return out;
        };
        let after = after.trim_start();
        let Some(quoted) = after.strip_prefix('"') else {
            return out;
        };
        let Some(close) = quoted.find('"') else {
            return out;
        };
        let name = &quoted[..close];
        let Some(end) = quoted[close..].find('}') else {
            return out;
        };
        if let Some(value) = parse_number(value) {
            out.push((value, name.to_owned()));
        }
        rest = &quoted[close + end + 1..];
    }
}

/// Parses `12`, `0x1f`, `-1`, `(1UL)`; negatives become their u64 bit pattern.
fn parse_number(text: &str) -> Option<u64> {
    let mut t = text.trim();
    while let Some(inner) = t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        t = inner.trim();
    }
    let t = t.trim_end_matches(['u', 'U', 'l', 'L']);
    let (negative, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d.trim_start()),
        None => (false, t),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    Some(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> TracepointFormat {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        TracepointFormat::from_file(&path).unwrap()
    }

    fn offset(format: &TracepointFormat, name: &str) -> Option<u32> {
        format.field(name).map(|f| f.offset)
    }

    #[test]
    fn kfree_skb_on_6_18() {
        let f = fixture("kfree_skb.format.6.18");
        assert_eq!(f.name, "kfree_skb");
        assert_eq!(f.id, 2310);
        assert_eq!(f.fields.len(), 9);
        assert_eq!(offset(&f, "skbaddr"), Some(8));
        assert_eq!(offset(&f, "location"), Some(16));
        assert_eq!(offset(&f, "rx_sk"), Some(24));
        assert_eq!(offset(&f, "protocol"), Some(32));
        assert_eq!(offset(&f, "reason"), Some(36));
        let reason = f.field("reason").unwrap();
        assert_eq!(reason.type_name, "enum skb_drop_reason");
        assert_eq!((reason.size, reason.signed), (4, false));
        let skbaddr = f.field("skbaddr").unwrap();
        assert_eq!((skbaddr.type_name.as_str(), skbaddr.size), ("void *", 8));
        let pid = f.field("common_pid").unwrap();
        assert_eq!((pid.type_name.as_str(), pid.signed), ("int", true));
        assert!(f.print_fmt.starts_with("\"skbaddr=%p rx_sk=%p"));
    }

    #[test]
    fn reason_names_on_6_18() {
        let values = fixture("kfree_skb.format.6.18").symbolic_values("reason");
        assert_eq!(values.len(), 127);
        assert_eq!(values[0], (2, "NOT_SPECIFIED".to_owned()));
        assert!(values.contains(&(12, "NETFILTER_DROP".to_owned())));
        assert_eq!(values.last().unwrap(), &(128, "MAX".to_owned()));
    }

    #[test]
    fn kfree_skb_before_rx_sk() {
        // Captured on a 6.8-era kernel (see fixtures/README.capture); spaces, not tabs.
        let f = fixture("kfree_skb.format.pre-6.11");
        assert_eq!(f.id, 1763);
        assert_eq!(offset(&f, "rx_sk"), None);
        assert_eq!(offset(&f, "protocol"), Some(24));
        assert_eq!(offset(&f, "reason"), Some(28));
        let values = f.symbolic_values("reason");
        assert_eq!(values.first().unwrap(), &(2, "NOT_SPECIFIED".to_owned()));
        assert_eq!(values.last().unwrap(), &(87, "MAX".to_owned()));
    }

    #[test]
    fn kfree_skb_when_not_specified_was_1() {
        let f = fixture("kfree_skb.format.5.18-era");
        assert_eq!(offset(&f, "reason"), Some(28));
        let values = f.symbolic_values("reason");
        assert_eq!(values.first().unwrap(), &(1, "NOT_SPECIFIED".to_owned()));
        assert_eq!(values.last().unwrap(), &(65, "MAX".to_owned()));
    }

    #[test]
    fn kfree_skb_before_reasons() {
        let f = fixture("kfree_skb.format.pre-5.17");
        assert_eq!(f.id, 1408);
        assert_eq!(offset(&f, "skbaddr"), Some(8));
        assert_eq!(offset(&f, "location"), Some(16));
        assert_eq!(offset(&f, "protocol"), Some(24));
        assert!(f.field("reason").is_none());
        assert!(f.symbolic_values("reason").is_empty());
    }

    #[test]
    fn declarations() {
        let split = |d: &str| split_declaration(d).unwrap();
        assert_eq!(split("void * skbaddr"), ("void *".into(), "skbaddr".into()));
        assert_eq!(split("void *skbaddr"), ("void *".into(), "skbaddr".into()));
        assert_eq!(split("char comm[16]"), ("char[16]".into(), "comm".into()));
        assert_eq!(
            split("__data_loc char[] name"),
            ("__data_loc char[]".into(), "name".into())
        );
        assert_eq!(
            split("unsigned char common_flags"),
            ("unsigned char".into(), "common_flags".into())
        );
        assert!(split_declaration("lonely").is_none());
        assert!(split_declaration("int 9lives").is_none());
        assert!(split_declaration("int x[").is_none());
    }

    #[test]
    fn symbolic_values_variants() {
        let format = |print_fmt: &str| TracepointFormat {
            name: "t".into(),
            id: 1,
            fields: Vec::new(),
            print_fmt: print_fmt.into(),
        };
        let f = format(
            r#""%s %s", __print_symbolic(REC->other, { 1, "A" }), __print_symbolic( REC->reason , { 0x10, "HEX" }, {7,"TIGHT"}, { SKB_DROP_REASON_X, "UNTRANSLATED" }, { -1, "NEG" }, { (2UL), "PAREN" })"#,
        );
        assert_eq!(
            f.symbolic_values("reason"),
            [
                (16, "HEX".to_owned()),
                (7, "TIGHT".to_owned()),
                (u64::MAX, "NEG".to_owned()),
                (2, "PAREN".to_owned()),
            ]
        );
        assert_eq!(f.symbolic_values("other"), [(1, "A".to_owned())]);
        assert!(f.symbolic_values("reaso").is_empty());
        assert!(f.symbolic_values("missing").is_empty());
        // Cut off anywhere, the table yields what it has and never panics.
        let text = r#"__print_symbolic(REC->reason, { 2, "NOT_SPECIFIED" }, { 3, "NO_SOCKET" })"#;
        for cut in 0..=text.len() {
            let _ = format(&text[..cut]).symbolic_values("reason");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(parse("ID: 5\n"), Err(FormatError::MissingName));
        assert_eq!(parse("name: x\n"), Err(FormatError::MissingId));
        assert!(matches!(
            parse("name: x\nID: many\n"),
            Err(FormatError::BadId { line: 2, .. })
        ));
        let err = parse("name: x\nID: 1\n\tfield:int a;\toffset:zero;\tsize:4;\n").unwrap_err();
        assert!(matches!(err, FormatError::BadField { line: 3, .. }));
        assert!(err.to_string().contains("bad offset"), "{err}");
        assert!(parse("name: x\nID: 1\n\tfield:int a;\tsize:4;\n").is_err());
        let err = TracepointFormat::from_file(Path::new("/nonexistent/format")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/format"), "{err}");
    }

    #[test]
    fn every_prefix_parses_or_fails_cleanly() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/kfree_skb.format.6.18"
        ))
        .unwrap();
        for (cut, _) in text.char_indices() {
            if let Ok(f) = parse(&text[..cut]) {
                let _ = f.symbolic_values("reason");
            }
        }
    }
}
