# The guest's job, run in the chroot of the host's root (vmtest writes the variables
# above this line): each root test binary, one test at a time, its output (of passing
# tests too, for --show-output) and exit code in the share; the runner marks a test that
# cannot run here `ignored, REASON`, which the tally counts as skipped. Bounded:
# each binary under `timeout`.
export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export DROPTRACE_BIN TERM=xterm-256color
mkdir -p "$HOME" "$SHARE/results"
uname -r > "$SHARE/results/uname"
# The virtio-net devices of guests with BTF (no udev here to load their driver).
"$SHARE/modprobe" -q virtio_net 2>/dev/null
cd "$TESTS_DIR" || exit 1
# A line: the binary's name, its path, and the guest's own test filters (the big node's).
while read -r name bin tests; do
    start=$(date +%s)
    # shellcheck disable=SC2086 # filters are words
    timeout -k 10 "$BINARY_TIMEOUT" "$bin" --test-threads=1 --show-output ${FILTER:-$tests} > "$SHARE/results/$name.log" 2>&1
    rc=$?
    echo "$name $rc $(($(date +%s) - start))" >> "$SHARE/results/status"
done < "$SHARE/binaries"
echo done > "$SHARE/results/finished"
