//! The live view on a real terminal: droptrace runs in a tmux pane, real drops happen in
//! a namespace, and the pane must show them with the kernel's own count; `q` must give the
//! shell back in a usable state.

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
    tmux.send(&["p"]);
    tmux.wait_for("the pause", |p| p.contains("PAUSED"));
    tmux.send(&["q"]);
    tmux.wait_for("the closing table and the prompt", |p| {
        p.contains("drops matched") && p.trim_end().ends_with("dt-prompt$")
    });
    let _ = std::fs::remove_file(&file);
}
