# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_droptrace_global_optspecs
    string join \n port= sport= dport= proto= addr= reason= exclude-reason= iface= netns= pod= container= ring-buffer-size= stream max-groups= no-tcp v/verbose no-xdp attach= host-root= duration= format= max-events-per-second= interval= vmlinux= h/help V/version
end

function __fish_droptrace_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_droptrace_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_droptrace_using_subcommand
    set -l cmd (__fish_droptrace_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c droptrace -n "__fish_droptrace_needs_command" -l port -d 'Source or destination port (like tcpdump\'s `port`)' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l sport -d 'Source port' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l dport -d 'Destination port' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l proto -d 'Transport protocol: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, esp, ah, or a protocol number' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l addr -d 'Source or destination address, IPv4 or IPv6' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l reason -d 'Keep only this drop reason, as the kernel spells it (e.g. NETFILTER_DROP). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l exclude-reason -d 'Leave out this drop reason (e.g. NOT_SPECIFIED). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l iface -d 'Network interface the packet was on, by name, in droptrace\'s network namespace or the one given by --netns' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l netns -d 'Network namespace: its name, as `ip netns list` shows it (for /run/netns/NAME), or a path such as /proc/PID/ns/net' -r -F
complete -c droptrace -n "__fish_droptrace_needs_command" -l pod -d 'Kubernetes pod, as NAMESPACE/NAME: the drops in its network namespace (found on this node, without the Kubernetes API)' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l container -d 'Container, by name or ID (a prefix of 12 or more characters): the drops in its network namespace' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l ring-buffer-size -d 'Size of the kernel-to-user event ring buffer in bytes (a power of two, at least 4096). Counts stay exact when it overflows; only per-packet details are lost. Default: 4 MiB when every drop is streamed (`record`, `--stream`, JSON Lines), 1 MiB when the kernel counts and sends samples (they are few)' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l max-groups -d 'Groups (site, reason, protocol, port, interface, namespace) the kernel counts apart when it counts by group; drops of groups beyond are counted in the total, as unattributed. From 128 up, each CPU also keeps up to 128 groups in a cache of its own (cheaper to count in), which may hold groups beyond the map\'s' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l attach -d 'Attach mode, normally chosen from what the kernel offers: tp-btf (BTF tracepoint) or tracepoint (classic, through tracefs)' -r -f -a "tp-btf\t'BTF-enabled tracepoint (tp_btf): cheapest; needs kernel BTF'
tracepoint\t'Classic tracepoint through tracefs/perf: works without BTF, but then without packet details'"
complete -c droptrace -n "__fish_droptrace_needs_command" -l host-root -d 'Where the host\'s files are, to name containers and pods: `/host` when droptrace runs in a pod with the host\'s root mounted there (its /proc, /run/containerd, /run/containers, /var/lib/docker are read)' -r -F
complete -c droptrace -n "__fish_droptrace_needs_command" -l duration -d 'Stop after this many seconds (default: run until Ctrl-C or SIGTERM)' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l format -d 'Output. On a terminal, droptrace opens a live view; `text` prints a block of new drops every interval instead (the default when output is not a terminal); `json` prints one summary object when droptrace stops; `jsonl` prints one object per drop, a line each, as it comes (for log shippers)' -r -f -a "text\t''
json\t''
jsonl\t''"
complete -c droptrace -n "__fish_droptrace_needs_command" -l max-events-per-second -d 'With `--format jsonl`: print at most this many drops a second; the rest are left out of the lines (and counted, on stderr and in a last line), never out of the counts' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l interval -d 'Seconds between two refreshes of the live view (default 0.25) or two text blocks (default 1)' -r
complete -c droptrace -n "__fish_droptrace_needs_command" -l vmlinux -d 'Kernel image with debug info, for the source file and line of drop sites in the live view\'s details and the `source` field of `--format json` (default: the usual /usr/lib/debug places; modules\' lines from their .ko beside it)' -r -F
complete -c droptrace -n "__fish_droptrace_needs_command" -l stream -d 'Send every drop to user space as an event, instead of counting drops by group in the kernel and sending samples of each group. Counts are exact either way; streaming costs more under a flood. `record` and `--format jsonl` always stream'
complete -c droptrace -n "__fish_droptrace_needs_command" -l no-tcp -d 'Do not trace TCP retransmits and resets (`tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`); the outputs say TCP was not traced'
complete -c droptrace -n "__fish_droptrace_needs_command" -s v -l verbose -d 'Print the kernel program\'s warnings about packets it could not read as the kernel\'s layout said it could (a sign of an unfamiliar kernel), as they come'
complete -c droptrace -n "__fish_droptrace_needs_command" -l no-xdp -d 'Do not trace XDP programs\' verdicts. By default every XDP program on the host (loaded before droptrace or after) gets a small fexit program that counts its XDP_DROP and XDP_ABORTED verdicts, as drops of their own; it runs on every packet the XDP program sees (see docs/xdp.md for its cost)'
complete -c droptrace -n "__fish_droptrace_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c droptrace -n "__fish_droptrace_needs_command" -s V -l version -d 'Print version'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "diagnose" -d 'Watch drops for a while, sample the system before and after, and name the causes with their evidence and fixes'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "record" -d 'Record drops to a file (every event, the exact counters and the names needed to read it anywhere), to replay, report or export later without root'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "replay" -d 'Play a recording in the live view (needs a terminal)'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "report" -d 'Summarise a recording: the live run\'s closing table, or its JSON summary'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "export" -d 'Turn a recording into pcapng (packets with their drop reason as a comment) or JSON Lines (one object per drop)'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "serve" -d 'Serve exact drop metrics for Prometheus on HTTP (`/metrics`, `/healthz`) until SIGINT or SIGTERM'
complete -c droptrace -n "__fish_droptrace_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l port -d 'Source or destination port (like tcpdump\'s `port`)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l sport -d 'Source port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l dport -d 'Destination port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l proto -d 'Transport protocol: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, esp, ah, or a protocol number' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l addr -d 'Source or destination address, IPv4 or IPv6' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l reason -d 'Keep only this drop reason, as the kernel spells it (e.g. NETFILTER_DROP). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l exclude-reason -d 'Leave out this drop reason (e.g. NOT_SPECIFIED). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l iface -d 'Network interface the packet was on, by name, in droptrace\'s network namespace or the one given by --netns' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l netns -d 'Network namespace: its name, as `ip netns list` shows it (for /run/netns/NAME), or a path such as /proc/PID/ns/net' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l pod -d 'Kubernetes pod, as NAMESPACE/NAME: the drops in its network namespace (found on this node, without the Kubernetes API)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l container -d 'Container, by name or ID (a prefix of 12 or more characters): the drops in its network namespace' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l ring-buffer-size -d 'Size of the kernel-to-user event ring buffer in bytes (a power of two, at least 4096). Counts stay exact when it overflows; only per-packet details are lost. Default: 4 MiB when every drop is streamed (`record`, `--stream`, JSON Lines), 1 MiB when the kernel counts and sends samples (they are few)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l max-groups -d 'Groups (site, reason, protocol, port, interface, namespace) the kernel counts apart when it counts by group; drops of groups beyond are counted in the total, as unattributed. From 128 up, each CPU also keeps up to 128 groups in a cache of its own (cheaper to count in), which may hold groups beyond the map\'s' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l attach -d 'Attach mode, normally chosen from what the kernel offers: tp-btf (BTF tracepoint) or tracepoint (classic, through tracefs)' -r -f -a "tp-btf\t'BTF-enabled tracepoint (tp_btf): cheapest; needs kernel BTF'
tracepoint\t'Classic tracepoint through tracefs/perf: works without BTF, but then without packet details'"
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l host-root -d 'Where the host\'s files are, to name containers and pods: `/host` when droptrace runs in a pod with the host\'s root mounted there (its /proc, /run/containerd, /run/containers, /var/lib/docker are read)' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l duration -d 'Seconds to watch' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l format -d 'Output: `text` for people, `json` for one object with the findings, `html` for one self-contained page to attach to a ticket' -r -f -a "text\t''
json\t''
html\t'One self-contained HTML page to share: no scripts, nothing fetched, readable printed'"
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l max-namespaces -d 'Sample at most N namespaces before the window (the first by inode). After it, every namespace where drops happened is sampled too; one that was not sampled before is named in the report, as what grew in the window there is unknown' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l save-baseline -d 'Also write the sampled state of every namespace (firewall rules and chain policies, qdiscs, BPF programs and where they are attached, sysctls, MTUs, routes) to FILE, a versioned JSON file (mode 0600), to compare with later (--baseline)' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l baseline -d 'Compare with a file --save-baseline wrote (this host when it worked, or a healthy host of the same role): each difference is listed, and findings whose evidence is new since the baseline rank first. Namespaces are matched by name' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l stream -d 'Send every drop to user space as an event, instead of counting drops by group in the kernel and sending samples of each group. Counts are exact either way; streaming costs more under a flood. `record` and `--format jsonl` always stream'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l no-tcp -d 'Do not trace TCP retransmits and resets (`tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`); the outputs say TCP was not traced'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -s v -l verbose -d 'Print the kernel program\'s warnings about packets it could not read as the kernel\'s layout said it could (a sign of an unfamiliar kernel), as they come'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l no-xdp -d 'Do not trace XDP programs\' verdicts. By default every XDP program on the host (loaded before droptrace or after) gets a small fexit program that counts its XDP_DROP and XDP_ABORTED verdicts, as drops of their own; it runs on every packet the XDP program sees (see docs/xdp.md for its cost)'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -l force -d 'Replace the --save-baseline FILE if it exists'
complete -c droptrace -n "__fish_droptrace_using_subcommand diagnose" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -s o -l output -d 'The recording to write (created with mode 0600)' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l port -d 'Source or destination port (like tcpdump\'s `port`)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l sport -d 'Source port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l dport -d 'Destination port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l proto -d 'Transport protocol: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, esp, ah, or a protocol number' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l addr -d 'Source or destination address, IPv4 or IPv6' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l reason -d 'Keep only this drop reason, as the kernel spells it (e.g. NETFILTER_DROP). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l exclude-reason -d 'Leave out this drop reason (e.g. NOT_SPECIFIED). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l iface -d 'Network interface the packet was on, by name, in droptrace\'s network namespace or the one given by --netns' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l netns -d 'Network namespace: its name, as `ip netns list` shows it (for /run/netns/NAME), or a path such as /proc/PID/ns/net' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l pod -d 'Kubernetes pod, as NAMESPACE/NAME: the drops in its network namespace (found on this node, without the Kubernetes API)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l container -d 'Container, by name or ID (a prefix of 12 or more characters): the drops in its network namespace' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l ring-buffer-size -d 'Size of the kernel-to-user event ring buffer in bytes (a power of two, at least 4096). Counts stay exact when it overflows; only per-packet details are lost. Default: 4 MiB when every drop is streamed (`record`, `--stream`, JSON Lines), 1 MiB when the kernel counts and sends samples (they are few)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l max-groups -d 'Groups (site, reason, protocol, port, interface, namespace) the kernel counts apart when it counts by group; drops of groups beyond are counted in the total, as unattributed. From 128 up, each CPU also keeps up to 128 groups in a cache of its own (cheaper to count in), which may hold groups beyond the map\'s' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l attach -d 'Attach mode, normally chosen from what the kernel offers: tp-btf (BTF tracepoint) or tracepoint (classic, through tracefs)' -r -f -a "tp-btf\t'BTF-enabled tracepoint (tp_btf): cheapest; needs kernel BTF'
tracepoint\t'Classic tracepoint through tracefs/perf: works without BTF, but then without packet details'"
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l host-root -d 'Where the host\'s files are, to name containers and pods: `/host` when droptrace runs in a pod with the host\'s root mounted there (its /proc, /run/containerd, /run/containers, /var/lib/docker are read)' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l duration -d 'Stop after this many seconds (default: until Ctrl-C or SIGTERM)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l count -d 'Stop after this many drops have been recorded (drops still arriving while droptrace detaches are kept too, so the counts stay exact)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l snaplen -d 'Also keep the first BYTES of each dropped packet, from its IP header (0 to 4095), for `droptrace export --pcapng`' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l force -d 'Replace FILE if it exists'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l stream -d 'Send every drop to user space as an event, instead of counting drops by group in the kernel and sending samples of each group. Counts are exact either way; streaming costs more under a flood. `record` and `--format jsonl` always stream'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l no-tcp -d 'Do not trace TCP retransmits and resets (`tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`); the outputs say TCP was not traced'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -s v -l verbose -d 'Print the kernel program\'s warnings about packets it could not read as the kernel\'s layout said it could (a sign of an unfamiliar kernel), as they come'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -l no-xdp -d 'Do not trace XDP programs\' verdicts. By default every XDP program on the host (loaded before droptrace or after) gets a small fexit program that counts its XDP_DROP and XDP_ABORTED verdicts, as drops of their own; it runs on every packet the XDP program sees (see docs/xdp.md for its cost)'
complete -c droptrace -n "__fish_droptrace_using_subcommand record" -s h -l help -d 'Print help'
complete -c droptrace -n "__fish_droptrace_using_subcommand replay" -l speed -d 'Playback speed: a factor (2 plays twice as fast) or `max` (as fast as it reads)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand replay" -l interval -d 'Seconds between two refreshes of the view' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand replay" -s h -l help -d 'Print help'
complete -c droptrace -n "__fish_droptrace_using_subcommand report" -l format -d '`text` for people; `json` for the same object a live run prints with --format json; `html` for one self-contained page (charts over time, the groups) to share' -r -f -a "text\t''
json\t''
html\t'One self-contained HTML page to share: no scripts, nothing fetched, readable printed'"
complete -c droptrace -n "__fish_droptrace_using_subcommand report" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c droptrace -n "__fish_droptrace_using_subcommand export" -l pcapng -d 'Write the recorded packets as pcapng (needs `record --snaplen`); `-` for stdout' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand export" -l jsonl -d 'Write one JSON object per drop; `-` for stdout' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand export" -s h -l help -d 'Print help'
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l port -d 'Source or destination port (like tcpdump\'s `port`)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l sport -d 'Source port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l dport -d 'Destination port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l proto -d 'Transport protocol: tcp, udp, icmp, icmpv6, sctp, dccp, udplite, gre, esp, ah, or a protocol number' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l addr -d 'Source or destination address, IPv4 or IPv6' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l reason -d 'Keep only this drop reason, as the kernel spells it (e.g. NETFILTER_DROP). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l exclude-reason -d 'Leave out this drop reason (e.g. NOT_SPECIFIED). Repeatable' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l iface -d 'Network interface the packet was on, by name, in droptrace\'s network namespace or the one given by --netns' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l netns -d 'Network namespace: its name, as `ip netns list` shows it (for /run/netns/NAME), or a path such as /proc/PID/ns/net' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l pod -d 'Kubernetes pod, as NAMESPACE/NAME: the drops in its network namespace (found on this node, without the Kubernetes API)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l container -d 'Container, by name or ID (a prefix of 12 or more characters): the drops in its network namespace' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l ring-buffer-size -d 'Size of the kernel-to-user event ring buffer in bytes (a power of two, at least 4096). Counts stay exact when it overflows; only per-packet details are lost. Default: 4 MiB when every drop is streamed (`record`, `--stream`, JSON Lines), 1 MiB when the kernel counts and sends samples (they are few)' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l max-groups -d 'Groups (site, reason, protocol, port, interface, namespace) the kernel counts apart when it counts by group; drops of groups beyond are counted in the total, as unattributed. From 128 up, each CPU also keeps up to 128 groups in a cache of its own (cheaper to count in), which may hold groups beyond the map\'s' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l attach -d 'Attach mode, normally chosen from what the kernel offers: tp-btf (BTF tracepoint) or tracepoint (classic, through tracefs)' -r -f -a "tp-btf\t'BTF-enabled tracepoint (tp_btf): cheapest; needs kernel BTF'
tracepoint\t'Classic tracepoint through tracefs/perf: works without BTF, but then without packet details'"
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l host-root -d 'Where the host\'s files are, to name containers and pods: `/host` when droptrace runs in a pod with the host\'s root mounted there (its /proc, /run/containerd, /run/containers, /var/lib/docker are read)' -r -F
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l listen -d 'Address and port to listen on. Loopback by default: binding another address exposes the metrics to whoever reaches it' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l labels -d 'Labels of droptrace_drops_total: the exact list (`reason,function,dport`) or changes to the default `reason,function,protocol,interface,netns,pod,pod_namespace, container` (`+dport`, `-interface`). `dport` is off by default: a port scan makes one series per port' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l max-series -d 'Series of droptrace_drops_total at most; drops of further label sets are counted in one `other` series (and in droptrace_series_dropped_total). Series of droptrace_stack_drops_total at most too, beyond which they add up in an `other` series of their own' -r
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l stream -d 'Send every drop to user space as an event, instead of counting drops by group in the kernel and sending samples of each group. Counts are exact either way; streaming costs more under a flood. `record` and `--format jsonl` always stream'
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l no-tcp -d 'Do not trace TCP retransmits and resets (`tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`); the outputs say TCP was not traced'
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -s v -l verbose -d 'Print the kernel program\'s warnings about packets it could not read as the kernel\'s layout said it could (a sign of an unfamiliar kernel), as they come'
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -l no-xdp -d 'Do not trace XDP programs\' verdicts. By default every XDP program on the host (loaded before droptrace or after) gets a small fexit program that counts its XDP_DROP and XDP_ABORTED verdicts, as drops of their own; it runs on every packet the XDP program sees (see docs/xdp.md for its cost)'
complete -c droptrace -n "__fish_droptrace_using_subcommand serve" -s h -l help -d 'Print help'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "diagnose" -d 'Watch drops for a while, sample the system before and after, and name the causes with their evidence and fixes'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "record" -d 'Record drops to a file (every event, the exact counters and the names needed to read it anywhere), to replay, report or export later without root'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "replay" -d 'Play a recording in the live view (needs a terminal)'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "report" -d 'Summarise a recording: the live run\'s closing table, or its JSON summary'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "export" -d 'Turn a recording into pcapng (packets with their drop reason as a comment) or JSON Lines (one object per drop)'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "serve" -d 'Serve exact drop metrics for Prometheus on HTTP (`/metrics`, `/healthz`) until SIGINT or SIGTERM'
complete -c droptrace -n "__fish_droptrace_using_subcommand help; and not __fish_seen_subcommand_from diagnose record replay report export serve help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
