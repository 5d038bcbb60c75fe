# The guest's job for `vmtest --bench-xdp`, run in the chroot of the host's root (vmtest
# writes the variables above this line): `bench --xdp` of this xtask with the droptrace
# given, its tables, messages, exit code and seconds in the share. Bounded by `timeout`.
export HOME=/tmp/home PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p "$HOME" "$SHARE/results"
cd "$WS" || exit 1
start=$(date +%s)
timeout -k 10 1800 "$XTASK" bench --xdp --droptrace-bin "$DROPTRACE_BIN" --rounds 5 --seconds 2 \
    > "$SHARE/results/bench.out" 2> "$SHARE/results/bench.err"
echo $? > "$SHARE/results/bench.rc"
echo $(($(date +%s) - start)) > "$SHARE/results/bench.seconds"
echo done > "$SHARE/results/finished"
