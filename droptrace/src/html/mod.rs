//! Self-contained HTML pages to share (`report --format html`, `diagnose --format html`):
//! one file with its style inline, no scripts and nothing fetched, readable printed.
//! Pure: strings in, a page out.
mod chart;
pub mod diagnosis;
pub mod recording;

use std::fmt::Write;

/// Text made safe inside HTML elements and attribute values; control characters (a
/// hostile interface or namespace name) are shown as `\u{..}` escapes, never passed on.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1b1f24;margin:2em auto;max-width:1100px;padding:0 1em}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #d0d7de;padding-bottom:.2em}
.meta{color:#57606a;margin:0 0 1em}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.15em 1.2em;margin:0}
dl.facts dt{color:#57606a}dl.facts dd{margin:0}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #d0d7de;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.finding{border:1px solid #d0d7de;border-left:5px solid #cf222e;padding:.6em 1em;margin:.8em 0;break-inside:avoid}
.finding.benign{border-left-color:#8c959f}
.finding h3{margin:0 0 .3em;font-size:1.05em}
.fix{background:#f6f8fa;padding:.4em .6em;white-space:pre-wrap}
.legend{list-style:none;padding:0;margin:.4em 0;display:flex;flex-wrap:wrap;gap:.3em 1.2em}
.sw{display:inline-block;width:.9em;height:.9em;margin-right:.35em;vertical-align:-.1em;border:1px solid #0003}
.warn{color:#9a6700}
svg{max-width:100%;height:auto}
@media print{body{margin:0;max-width:none;font-size:11px}h2{break-after:avoid}table{font-size:10px}}
";

/// A page being written: sections of already-escaped HTML.
pub struct Page {
    html: String,
}

impl Page {
    pub fn new(title: &str, subtitle: &str) -> Page {
        let mut html = String::new();
        let _ = write!(
            html,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta name=\"generator\" content=\"droptrace {}\">\
             <title>{}</title><style>{STYLE}</style></head><body>\n\
             <h1>{}</h1><p class=\"meta\">{}</p>\n",
            env!("CARGO_PKG_VERSION"),
            escape(title),
            escape(title),
            escape(subtitle)
        );
        Page { html }
    }

    pub fn heading(&mut self, text: &str) {
        let _ = writeln!(self.html, "<h2>{}</h2>", escape(text));
    }

    /// A paragraph of plain text; `class` styles it (`warn`, `meta`, or empty).
    pub fn para(&mut self, class: &str, text: &str) {
        let _ = writeln!(self.html, "<p class=\"{class}\">{}</p>", escape(text));
    }

    /// Pairs of a label and a value; the value's `data-figure` names it for tools.
    pub fn facts(&mut self, facts: &[(&str, &str, String)]) {
        self.html.push_str("<dl class=\"facts\">");
        for (label, figure, value) in facts {
            let _ = write!(
                self.html,
                "<dt>{}</dt><dd data-figure=\"{figure}\">{}</dd>",
                escape(label),
                escape(value)
            );
        }
        self.html.push_str("</dl>\n");
    }

    /// A table; cells are plain text, those of `numeric` columns right-aligned.
    pub fn table(&mut self, id: &str, head: &[&str], numeric: &[bool], rows: &[Vec<String>]) {
        let _ = write!(self.html, "<table id=\"{id}\"><thead><tr>");
        for (i, h) in head.iter().enumerate() {
            let class = if numeric.get(i).copied().unwrap_or(false) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(self.html, "<th{class}>{}</th>", escape(h));
        }
        self.html.push_str("</tr></thead><tbody>\n");
        for row in rows {
            self.html.push_str("<tr>");
            for (i, cell) in row.iter().enumerate() {
                let class = if numeric.get(i).copied().unwrap_or(false) {
                    " class=\"n\""
                } else {
                    ""
                };
                let _ = write!(self.html, "<td{class}>{}</td>", escape(cell));
            }
            self.html.push_str("</tr>\n");
        }
        self.html.push_str("</tbody></table>\n");
    }

    /// HTML this module built (a chart, a finding).
    fn raw(&mut self, html: &str) {
        self.html.push_str(html);
    }

    /// The machine-readable figures the page shows, as JSON in an inert block (never run:
    /// `application/json`), with `<` escaped so no text can close it.
    pub fn data(&mut self, id: &str, json: &str) {
        let _ = writeln!(
            self.html,
            "<script type=\"application/json\" id=\"{id}\">{}</script>",
            json.replace('<', "\\u003c")
        );
    }

    pub fn finish(mut self) -> String {
        self.html.push_str("</body></html>\n");
        self.html
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            escape("x\u{1b}[31m<b>\"a&b'"),
            "x\\u{1b}[31m&lt;b&gt;&quot;a&amp;b&#39;"
        );
    }

    #[test]
    fn a_page_is_whole_and_fetches_nothing() {
        let mut p = Page::new("t <1>", "sub");
        p.heading("Drops");
        p.table(
            "g",
            &["a", "n"],
            &[false, true],
            &[vec!["x".into(), "3".into()]],
        );
        p.data("d", "{\"a\":\"</script>\"}");
        let html = p.finish();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</body></html>\n"));
        assert!(html.contains("<title>t &lt;1&gt;</title>"));
        assert!(html.contains("<td class=\"n\">3</td>"));
        assert!(html.contains("\\u003c/script>"));
        assert!(!html.contains("src="), "nothing fetched");
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
