//! The live view on a real terminal: droptrace runs in a tmux pane, real drops happen in
//! a namespace, and the pane must show them with the kernel's own count; `q` must give the
//! shell back in a usable state.

use std::time::Instant;

use droptrace_tests::{tmux::Tmux, *};

/// The count shown in the row of the nftables drop on port 1678, if there is one.
fn nft_row_count(pane: &str) -> Option<u64> {
    pane.lines().find_map(|line| {
        if !(line.contains("nft_do_chain+") && line.contains("NETFILTER_DROP")) {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let port = words.iter().position(|w| *w == "1678")?;
        (words.get(port - 1) == Some(&"tcp")).then_some(())?;
        words.get(port + 1)?.replace(',', "").parse().ok()
    })
}

#[test]
fn live_view_shows_the_drop_and_gives_the_terminal_back() {
    if !can_run("live_view_shows_the_drop_and_gives_the_terminal_back") {
        return;
    }
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtv", 1678);

    let tmux = Tmux::new(120, 40);
    tmux.wait_for("the shell prompt", |p| p.contains("dt-prompt$"));
    let command = format!(
        "{} --netns {} --interval 0.2",
        droptrace_bin().display(),
        pair.b.path()
    );
    tmux.send(&[&command, "Enter"]);
    tmux.wait_for("the live view's header", |p| {
        p.contains("droptrace  live") && p.contains("q quit")
    });

    let failed = dropped_syns(
        &pair.a,
        format!("{B4}:1678").parse().unwrap(),
        5,
        "the nft rule counter",
        || nft_rule_packets(&pair.b, "dtv", "dtv1678"),
    );
    assert_eq!(failed, 5);
    let packets = nft_rule_packets(&pair.b, "dtv", "dtv1678");
    assert!(packets >= 5, "nft counted {packets}");
    let pane = tmux.wait_for("the nft_do_chain row with the rule's count", |p| {
        nft_row_count(p) == Some(packets)
    });
    eprintln!("{pane}");

    // The view filter, then the drill-down of the only row left.
    tmux.send(&["/", "--port 1678", "Enter"]);
    tmux.wait_for("the filter in the header", |p| p.contains("/ --port 1678"));
    tmux.send(&["Enter"]);
    let detail = tmux.wait_for("the latest packets of the row", |p| {
        p.contains("Latest packets") && p.contains(&format!("> {B4}:1678 tcp"))
    });
    assert!(detail.contains("why: "), "{detail}");
    assert!(detail.contains(&format!("{A4}:")), "{detail}");
    tmux.send(&["Escape"]);
    // Only once the detail has closed: ESC and `q` in one read would be Alt-q.
    tmux.wait_for("the detail to close", |p| {
        !p.contains("Latest packets") && nft_row_count(p) == Some(packets)
    });

    quit_and_check_the_terminal(&tmux);
}

/// `q`: the closing table, then a shell in cooked mode with echo, and no droptrace
/// program left in the kernel.
fn quit_and_check_the_terminal(tmux: &Tmux) {
    tmux.send(&["q"]);
    let after = tmux.wait_for("the closing table and the prompt", |p| {
        p.contains("drops matched") && p.trim_end().ends_with("dt-prompt$")
    });
    assert!(after.contains("NETFILTER_DROP"), "{after}");
    // The terminal is back in cooked mode with echo: a command typed now runs.
    tmux.send(&[
        "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ' '; echo OK-$((6*7))",
        "Enter",
    ]);
    tmux.wait_for("the shell to answer", |p| {
        p.contains("icanon echo OK-42") || p.contains("echo icanon OK-42")
    });
    // Not one droptrace program may stay: whatever is still listed must go.
    wait_unloaded("`q`", &droptrace_programs());
}

/// The pane's text as one line, runs of whitespace made one space: what the drill-down
/// wraps over several lines reads as it was written.
fn flat(pane: &str) -> String {
    pane.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The number right after `before` in `text`.
fn number_after(text: &str, before: &str) -> Option<u64> {
    let rest = &text[text.find(before)? + before.len()..];
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The nft handle of the rule carrying `comment` in `table` (family inet).
fn nft_rule_handle(ns: &Netns, table: &str, comment: &str) -> u64 {
    let listing = ns.exec(&["nft", "-a", "list", "table", "inet", table]);
    listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{comment}\"")))
        .and_then(|l| number_after(l, "# handle "))
        .unwrap_or_else(|| panic!("no rule {comment} with a handle in {listing}"))
}

#[test]
fn live_view_diagnoses_the_row_in_its_drill_down() {
    if !can_run("live_view_diagnoses_the_row_in_its_drill_down") {
        return;
    }
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtd", 1678);
    let to = format!("{B4}:1678").parse().unwrap();
    let rule_count = || nft_rule_packets(&pair.b, "dtd", "dtd1678");

    let tmux = Tmux::new(120, 40);
    tmux.wait_for("the shell prompt", |p| p.contains("dt-prompt$"));
    let command = format!(
        "{} --netns {} --interval 0.2",
        droptrace_bin().display(),
        pair.b.path()
    );
    tmux.send(&[&command, "Enter"]);
    tmux.wait_for("the live view's header", |p| {
        p.contains("droptrace  live") && p.contains("q quit")
    });
    assert_eq!(
        dropped_syns(&pair.a, to, 5, "the nft rule counter", rule_count),
        5
    );
    let before = rule_count();
    assert_eq!(before, 5);
    tmux.wait_for("the nft_do_chain row with the rule's count", |p| {
        nft_row_count(p) == Some(before)
    });

    tmux.send(&["/", "--port 1678", "Enter"]);
    tmux.wait_for("the filter in the header", |p| p.contains("/ --port 1678"));
    tmux.send(&["Enter"]);
    tmux.wait_for("the drill-down with its diagnosis hint", |p| {
        p.contains("Latest packets") && p.contains("Diagnosis: d samples")
    });
    let asked = Instant::now();
    tmux.send(&["d"]);
    // The first sample is taken: the window is open and waits for this row's drops.
    tmux.wait_for("the diagnosis to watch the row", |p| {
        p.contains("diagnosing ") && p.contains("watching this row's drops")
    });
    eprintln!("d to the window: {:?}", asked.elapsed());
    assert_eq!(
        dropped_syns(&pair.a, to, 5, "the nft rule counter", rule_count),
        5
    );
    let total = rule_count();
    assert_eq!(total, 10);

    let handle = nft_rule_handle(&pair.b, "dtd", "dtd1678");
    let fix = format!(
        "fix: ip netns exec {} nft delete rule inet dtd input handle {handle}",
        pair.b.name
    );
    let pane = tmux.wait_for("the diagnosis with the rule and its fix", |p| {
        let p = flat(p);
        p.contains("[netfilter_rule]") && p.contains(&fix)
    });
    eprintln!(
        "{pane}\nd to the diagnosis on screen: {:?}",
        asked.elapsed()
    );
    let text = flat(&pane);
    assert!(text.contains("tcp dport 1678 counter packets"), "{pane}");
    // The rule's counter as the diagnosis sampled it, against the kernel's: the first
    // sample came after the first 5 SYNs, the second at most after all 10.
    let grown = number_after(&text, "counter +").expect("the counter's growth");
    let now = number_after(&text, " in the window, now ").expect("the counter after");
    assert_eq!(now - grown, before, "{pane}");
    assert!((1..=5).contains(&grown) && now <= total, "{pane}");
    // droptrace's own count of the row's drops in the window: the same SYNs.
    let drops = number_after(&text, "kernel: ").expect("the drops in the window");
    assert!((1..=5).contains(&drops), "{pane}");

    tmux.send(&["Escape"]);
    tmux.wait_for("the detail to close", |p| !p.contains("Latest packets"));
    quit_and_check_the_terminal(&tmux);
}

#[test]
fn replay_plays_a_recording_in_the_live_view() {
    if !can_run("replay_plays_a_recording_in_the_live_view") {
        return;
    }
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtp", 1678);
    let file = std::env::temp_dir().join(format!("droptrace-replay-{}.dtr", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let recorder = Droptrace::start(&["record", "-o", file.to_str().unwrap(), "--port", "1678"]);
    assert_eq!(
        dropped_syns(
            &pair.a,
            format!("{B4}:1678").parse().unwrap(),
            5,
            "the nft rule counter",
            || nft_rule_packets(&pair.b, "dtp", "dtp1678"),
        ),
        5
    );
    let packets = nft_rule_packets(&pair.b, "dtp", "dtp1678");
    assert!(recorder.stop(libc::SIGINT).status.success());

    let tmux = Tmux::new(100, 30);
    tmux.wait_for("the shell prompt", |p| p.contains("dt-prompt$"));
    let command = format!(
        "{} replay {} --speed 4",
        droptrace_bin().display(),
        file.display()
    );
    tmux.send(&[&command, "Enter"]);
    let pane = tmux.wait_for("the recorded row and the end of the recording", |p| {
        p.contains("droptrace  recording")
            && nft_row_count(p) == Some(packets)
            && p.contains("END OF RECORDING")
    });
    eprintln!("{pane}");
    // No diagnosis of a recording: the live system is not the recorded one.
    tmux.send(&["Enter"]);
    tmux.wait_for("the drill-down", |p| p.contains("Latest packets"));
    tmux.send(&["d"]);
    tmux.wait_for("the replay's answer to d", |p| {
        p.contains("Diagnosis: diagnosis needs the live system; this is a recording")
    });
    tmux.send(&["Escape"]);
    tmux.wait_for("the detail to close", |p| !p.contains("Latest packets"));
    tmux.send(&["p"]);
    tmux.wait_for("the pause", |p| p.contains("PAUSED"));
    tmux.send(&["q"]);
    tmux.wait_for("the closing table and the prompt", |p| {
        p.contains("drops matched") && p.trim_end().ends_with("dt-prompt$")
    });
    let _ = std::fs::remove_file(&file);
}

#[test]
fn live_view_says_when_the_rows_namespace_is_gone() {
    if !can_run("live_view_says_when_the_rows_namespace_is_gone") {
        return;
    }
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtg", 1678);
    let to = format!("{B4}:1678").parse().unwrap();

    let tmux = Tmux::new(120, 40);
    tmux.wait_for("the shell prompt", |p| p.contains("dt-prompt$"));
    // Not --netns: droptrace would hold the namespace open.
    let command = format!("{} --port 1678 --interval 0.2", droptrace_bin().display());
    tmux.send(&[&command, "Enter"]);
    tmux.wait_for("the live view's header", |p| {
        p.contains("droptrace  live") && p.contains("q quit")
    });
    let rule_count = || nft_rule_packets(&pair.b, "dtg", "dtg1678");
    assert_eq!(
        dropped_syns(&pair.a, to, 5, "the nft rule counter", rule_count),
        5
    );
    tmux.wait_for("the nft_do_chain row", |p| nft_row_count(p) == Some(5));
    tmux.send(&["Enter"]);
    tmux.wait_for("the drill-down", |p| p.contains("Latest packets"));

    // Its name goes and no process is in it: nothing on the system leads to it any more.
    sh(&["ip", "netns", "del", &pair.b.name]);
    tmux.send(&["d"]);
    let pane = tmux.wait_for("the diagnosis to say the namespace is gone", |p| {
        flat(p).contains("Diagnosis failed: the namespace of these drops is gone")
    });
    assert!(flat(&pane).contains(&pair.b.name), "{pane}");
    tmux.send(&["Escape"]);
    tmux.wait_for("the detail to close", |p| !p.contains("Latest packets"));
    quit_and_check_the_terminal(&tmux);
}
