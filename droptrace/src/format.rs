//! Numbers and times as droptrace prints them (the live view, status lines, reports):
//! short, aligned, deterministic; and text from the host made safe to print.

use std::{borrow::Cow, fmt::Write};

/// `text` as it can reach a terminal: names of namespaces, interfaces, processes, rules,
/// pods and baselines come from the host or a file, and a control character in one would
/// move the cursor, color the screen or forge a line. Each control character (C0, DEL,
/// C1) and each bidirectional override is shown escaped (`\n`, `\t`, `\x1b`, `\u{202e}`);
/// everything else is kept. Applied once, where text and the live view write.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || is_bidi_control(c);
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Characters that reorder the text around them on a terminal that honours them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `1,234,567` up to 9 characters, then `12.3M`.
pub fn count(n: u64) -> String {
    if n < 10_000_000 {
        let digits = n.to_string();
        let mut out = String::with_capacity(digits.len() + 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else {
        human(n as f64)
    }
}

/// Drops per second: `0`, `0.4`, `12.5`, `1.2k`, `345k`, `1.2M`.
pub fn rate(r: f64) -> String {
    if r <= 0.0 {
        "0".into()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else if r < 1000.0 {
        format!("{r:.0}")
    } else {
        human(r)
    }
}

fn human(x: f64) -> String {
    let (v, unit) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else {
        (x / 1e3, "k")
    };
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// How long before `now_ns` something happened: `0.3s`, `12s`, `5m03s`, `2h05m`.
pub fn ago(now_ns: u64, then_ns: u64) -> String {
    duration_short(now_ns.saturating_sub(then_ns))
}

fn duration_short(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    if secs < 10 {
        format!("{:.1}s", ns as f64 / 1e9)
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

/// `00:01:23` (hours grow past 99 if they must).
pub fn duration(ns: u64) -> String {
    let s = ns / 1_000_000_000;
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

const BARS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A sparkline of per-second counts (oldest first) in `width` characters: the newest
/// seconds at the right, several seconds per character when narrow (their sum).
pub fn sparkline(per_second: &[u32], width: usize) -> String {
    if width == 0 || per_second.is_empty() {
        return String::new();
    }
    let per_char = per_second.len().div_ceil(width);
    let chars = per_second.len().div_ceil(per_char).min(width);
    let start = per_second.len() - (chars * per_char).min(per_second.len());
    let sums: Vec<u64> = per_second[start..]
        .chunks(per_char)
        .map(|c| c.iter().map(|&n| u64::from(n)).sum())
        .collect();
    let max = sums.iter().copied().max().unwrap_or(0);
    let mut out: String = " ".repeat(width - sums.len());
    for s in sums {
        let level = if s == 0 || max == 0 {
            0
        } else {
            // Any drop shows at least the lowest bar.
            (s * 8).div_ceil(max).clamp(1, 8) as usize
        };
        out.push(BARS[level]);
    }
    out
}

/// `2026-11-22 13:40:01` from nanoseconds since the Unix epoch (UTC, proleptic Gregorian).
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-22T13:40:01.123456789Z` (RFC 3339, UTC) from nanoseconds since the Unix
/// epoch: exact where a JSON number above 2^53 is not for most readers.
pub fn rfc3339_ns(ns: u64) -> String {
    let date_time = utc(ns).replacen(' ', "T", 1);
    format!("{date_time}.{:09}Z", ns % 1_000_000_000)
}

/// A problem droptrace works around, said once on stderr.
pub fn warn(message: &str) {
    // One line each; names in it may come from the host or a file.
    eprintln!("droptrace: warning: {}", printable(message));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_nanoseconds() {
        assert_eq!(
            rfc3339_ns(1_780_000_000_000_001_000),
            "2026-05-28T20:26:40.000001000Z"
        );
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        // Borrowed when clean: the usual name costs nothing.
        assert!(matches!(
            printable("veth-b ü 名前"),
            Cow::Borrowed("veth-b ü 名前")
        ));
        assert_eq!(printable(""), "");
        // The baseline of issue 28: color codes and a forged line.
        assert_eq!(
            printable("x\x1b[31mRED\x1b[0m\n2. [netfilter_rule] forged finding"),
            "x\\x1b[31mRED\\x1b[0m\\n2. [netfilter_rule] forged finding"
        );
        assert_eq!(printable("a\tb\rc\x07\x7f\0"), "a\\tb\\rc\\x07\\x7f\\x00");
        // C1 (CSI as one character) and a right-to-left override.
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        // Escaping is not repeated by a second pass over clean output.
        let once = printable("\x1b]0;title\x07").into_owned();
        assert_eq!(printable(&once), once);
        assert!(!once.contains(char::is_control));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400 * 1_000_000_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_361_001 * 1_000_000_000), "2026-11-22 15:23:21");
    }

    #[test]
    fn counts_and_rates() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(12_345_678), "12M");
        assert_eq!(rate(0.0), "0");
        assert_eq!(rate(0.44), "0.4");
        assert_eq!(rate(250.2), "250");
        assert_eq!(rate(1234.0), "1.2k");
        assert_eq!(rate(345_000.0), "345k");
    }

    #[test]
    fn times() {
        assert_eq!(ago(5_000_000_000, 4_700_000_000), "0.3s");
        assert_eq!(ago(100_000_000_000, 0), "1m40s");
        assert_eq!(ago(0, 5), "0.0s");
        assert_eq!(ago(7_500_000_000_000, 0), "2h05m");
        assert_eq!(duration(3_723_000_000_000), "01:02:03");
    }

    #[test]
    fn sparklines_fold_seconds_when_narrow() {
        let mut per = [0u32; 60];
        per[59] = 8;
        per[58] = 4;
        let wide = sparkline(&per, 60);
        assert_eq!(wide.chars().count(), 60);
        assert!(wide.ends_with("▄█"));
        let narrow = sparkline(&per, 6);
        assert_eq!(narrow.chars().count(), 6);
        assert_eq!(narrow, "     █");
        per[0] = 1;
        assert_eq!(sparkline(&per, 6), "▁    █");
        assert_eq!(sparkline(&[0; 60], 4), "    ");
    }
}
