//! Source lines of drop sites from the kernel's debug info: the `source` field of
//! `--format json` and the live view's drill-down must name the file and line of the real
//! drop site, for a site in the kernel (`__udp4_lib_rcv`, NO_SOCKET) and one in a module
//! (`nft_do_chain` in nf_tables). Binutils' addr2line, run on the same debug files, is the
//! reference for the line.
//!
//! Needs a vmlinux with DWARF of the running kernel: `DROPTRACE_TEST_VMLINUX` (which
//! `cargo xtask vmtest` sets in the Debian 6.1 guest, from the -dbg package) or one at
//! the usual /usr/lib/debug place; without one the tests say so and do nothing.
use std::{
    net::{SocketAddr, TcpListener, UdpSocket},
    path::{Path, PathBuf},
};

use droptrace_tests::{tmux::Tmux, *};
use serde_json::Value;

/// A UDP port nothing listens on in the namespace.
const CLOSED_UDP: u16 = 5999;

fn vmlinux() -> PathBuf {
    if let Some(path) = std::env::var_os("DROPTRACE_TEST_VMLINUX") {
        return PathBuf::from(path);
    }
    let release = sh(&["uname", "-r"]);
    let usual = PathBuf::from(format!("/usr/lib/debug/boot/vmlinux-{}", release.trim()));
    if usual.exists() {
        return usual;
    }
    skip(format!(
        "no vmlinux with debug info for {} (`cargo xtask vmtest` runs it in its 6.1 guest)",
        release.trim()
    ))
}

/// The module's .ko with debug info beside the vmlinux (`.../boot/vmlinux-R` and
/// `.../lib/modules/R/**/NAME.ko`).
fn module_ko(vmlinux: &Path, name: &str) -> PathBuf {
    let release = sh(&["uname", "-r"]);
    let dir = vmlinux
        .parent()
        .and_then(Path::parent)
        .expect("vmlinux in a boot/ directory")
        .join("lib/modules")
        .join(release.trim());
    let found = sh(&[
        "find",
        &dir.display().to_string(),
        "-name",
        &format!("{name}.ko"),
    ]);
    let path = found.lines().next().unwrap_or_else(|| {
        panic!("no {name}.ko under {}", dir.display());
    });
    PathBuf::from(path)
}

/// `net/ipv4/udp.c:2511`: addr2line's line in `function` itself (the outermost frame,
/// under the functions inlined there) of the call before `function+offset` in `image` (a
/// vmlinux, or a module's .ko with its `.text`), from `net/` on.
fn reference_line(image: &Path, function: &str, offset: u64, module: bool) -> String {
    let image_s = image.display().to_string();
    let symbols = sh(&["nm", &image_s]);
    let start = symbols
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, kind, name) = (w.next()?, w.next()?, w.next()?);
            (name == function && kind.eq_ignore_ascii_case("t"))
                .then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("{function} not in nm {image_s}"));
    let call = format!("{:#x}", start + offset - 1);
    let mut args = vec!["addr2line", "-i", "-e", &image_s];
    if module {
        args.extend(["-j", ".text"]);
    }
    args.push(&call);
    // With -i, the inlined functions come first and the line in `function` last.
    let out = sh(&args);
    let last = out.lines().last().unwrap_or("").trim();
    let last = last.split(" (discriminator").next().unwrap_or(last);
    let at = last
        .find("net/")
        .unwrap_or_else(|| panic!("addr2line gave {out:?} for {function}+{offset:#x}"));
    last[at..].to_owned()
}

/// UDP datagrams to a closed port of `pair.b`, once the kernel has counted them.
fn udp_to_closed_port(pair: &Pair, n: u64) {
    let before = pair.b.snmp("Udp", "NoPorts");
    let to: SocketAddr = format!("{B4}:{CLOSED_UDP}").parse().unwrap();
    pair.a.run(|| {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..n {
            socket.send_to(b"drop", to).unwrap();
        }
    });
    reaches("Udp NoPorts in the namespace", before + n, || {
        pair.b.snmp("Udp", "NoPorts")
    });
}

fn nft_drops(pair: &Pair, table: &str) -> u64 {
    let dropped = dropped_syns(
        &pair.a,
        format!("{B4}:1678").parse().unwrap(),
        3,
        "the nft rule counter",
        || nft_rule_packets(&pair.b, table, &format!("{table}1678")),
    );
    assert_eq!(dropped, 3);
    nft_rule_packets(&pair.b, table, &format!("{table}1678"))
}

/// The one group of `function` in a summary.
fn group<'a>(summary: &'a Value, function: &str) -> &'a Value {
    let function = function.to_owned();
    let found = groups(summary, move |g| g["function"] == function.as_str());
    assert_eq!(found.len(), 1, "{summary:#}");
    found[0]
}

/// What a group's site must resolve to, from addr2line.
fn expected(vmlinux: &Path, g: &Value) -> String {
    let function = g["function"].as_str().unwrap();
    let offset = g["offset"].as_u64().unwrap();
    match g["module"].as_str() {
        Some(m) => reference_line(&module_ko(vmlinux, m), function, offset, true),
        None => reference_line(vmlinux, function, offset, false),
    }
}

fn json_groups_name_the_source_line_of_their_drop_site() {
    let vmlinux = vmlinux();
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dts", 1678);
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:1678").unwrap());
    let vmlinux_s = vmlinux.display().to_string();
    let dt = Droptrace::start(&[
        "--netns",
        &pair.b.path(),
        "--format",
        "json",
        "--vmlinux",
        &vmlinux_s,
    ]);
    let packets = nft_drops(&pair, "dts");
    udp_to_closed_port(&pair, 4);
    let summary = dt.stop_json();
    eprintln!("{summary:#}");

    let nft = group(&summary, "nft_do_chain");
    assert_eq!(
        (&nft["reason"], &nft["count"]),
        (&"NETFILTER_DROP".into(), &packets.into())
    );
    assert_eq!(nft["module"], "nf_tables", "{nft:#}");
    let want = expected(&vmlinux, nft);
    assert!(
        want.starts_with("net/netfilter/nf_tables_core.c:"),
        "{want}"
    );
    let source = nft["source"]
        .as_str()
        .unwrap_or_else(|| panic!("no source: {nft:#}"));
    assert!(
        source.contains(&want),
        "droptrace: {source}; addr2line: {want}"
    );

    let udp = group(&summary, "__udp4_lib_rcv");
    assert_eq!(
        (&udp["reason"], &udp["count"]),
        (&"NO_SOCKET".into(), &4.into())
    );
    let want = expected(&vmlinux, udp);
    assert!(want.starts_with("net/ipv4/udp.c:"), "{want}");
    let source = udp["source"]
        .as_str()
        .unwrap_or_else(|| panic!("no source: {udp:#}"));
    assert!(
        source.contains(&want),
        "droptrace: {source}; addr2line: {want}"
    );
}

fn the_drill_down_names_the_source_line_of_each_drop_site() {
    let vmlinux = vmlinux();
    let pair = Pair::new();
    nft_drop_tcp_port(&pair.b, "dtd", 1678);
    let _server = pair.b.run(|| TcpListener::bind("0.0.0.0:1678").unwrap());
    let vmlinux_s = vmlinux.display().to_string();
    // The reference lines first, from a JSON run over the same drops.
    let dt = Droptrace::start(&[
        "--netns",
        &pair.b.path(),
        "--format",
        "json",
        "--vmlinux",
        &vmlinux_s,
    ]);
    nft_drops(&pair, "dtd");
    udp_to_closed_port(&pair, 2);
    let summary = dt.stop_json();
    let sites = [
        ("1678", expected(&vmlinux, group(&summary, "nft_do_chain"))),
        (
            &*CLOSED_UDP.to_string(),
            expected(&vmlinux, group(&summary, "__udp4_lib_rcv")),
        ),
    ]
    .map(|(port, line)| (port.to_owned(), line));

    // One live view per site, filtered to its port: its only row, Enter, its source line.
    for (port, want) in &sites {
        let tmux = Tmux::droptrace(
            250,
            50,
            &format!(
                "--netns {} --port {port} --interval 0.2 --vmlinux {vmlinux_s}",
                pair.b.path()
            ),
        );
        tmux.wait_for_live_view();
        if port == "1678" {
            nft_drops(&pair, "dtd");
        } else {
            udp_to_closed_port(&pair, 2);
        }
        tmux.wait_for("the row of the drops", |p| {
            p.lines().any(|l| {
                l.contains(port.as_str())
                    && (l.contains("NETFILTER_DROP") || l.contains("NO_SOCKET"))
            })
        });
        tmux.send(&["Enter"]);
        // The view opens the debug info on a thread of its own; indexing 600 MB of DWARF
        // takes a while, much longer under emulation (and over 9p).
        let indexing = WAIT_LIMIT * 2 * time_scale();
        let detail = tmux.wait_within(indexing, "the source line in the detail", |p| {
            p.lines()
                .any(|l| l.contains("source: ") && !l.contains("looking up"))
        });
        eprintln!("{detail}");
        let line = detail
            .lines()
            .find(|l| l.contains("source: "))
            .unwrap_or_default();
        assert!(line.contains(want.as_str()), "want {want}:\n{detail}");
        tmux.send(&["Escape"]);
        tmux.wait_for("the detail to close", |p| !p.contains("Latest packets"));
        tmux.send(&["q"]);
        tmux.wait_for("the prompt", |p| p.trim_end().ends_with("dt-prompt$"));
    }
}

droptrace_tests::root_tests!(
    json_groups_name_the_source_line_of_their_drop_site,
    the_drill_down_names_the_source_line_of_each_drop_site,
);
