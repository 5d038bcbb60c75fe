#!/bin/sh
# /init of the vmtest initramfs (busybox): load the 9p modules, mount the host's root
# read-only and the writable share, set up the system a root test expects inside that
# root, run the job there, power off. Every step says what failed on the console.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do
    insmod "/modules/$m" || echo "vmtest: insmod $m failed"
done
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        vmtest.share=*) SHARE="${arg#vmtest.share=}" ;;
        vmtest.workspace=*) WS="${arg#vmtest.workspace=}" ;;
        vmtest.probe) PROBE=1 ;;
        vmtest.nobtf) NOBTF=1 ;;
    esac
done
off() {
    sync
    echo o > /proc/sysrq-trigger
    sleep 30
}
if [ -n "$PROBE" ]; then
    echo "vmtest-probe-ok"
    off
fi
opts=trans=virtio,version=9p2000.L,msize=262144
mkdir -p /root "$SHARE"
mount -t 9p -o "$opts,ro,cache=loose" hostroot /root || { echo "vmtest: mounting the host root failed"; off; }
mount -t 9p -o "$opts" share "$SHARE" || { echo "vmtest: mounting the share failed"; off; }
mount -t proc proc /root/proc
mount -t sysfs sysfs /root/sys
mount -t devtmpfs devtmpfs /root/dev
mkdir -p /root/dev/pts /root/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /root/dev/pts
ln -sf pts/ptmx /root/dev/ptmx
ln -sf /proc/self/fd /root/dev/fd
ln -sf /proc/self/fd/0 /root/dev/stdin
ln -sf /proc/self/fd/1 /root/dev/stdout
ln -sf /proc/self/fd/2 /root/dev/stderr
# Fresh tmpfs on /tmp and the like; the workspace (which may live under /tmp) is kept
# visible through a bind made before, and the share bound over its place in it.
mkdir -p /ws
mount --bind "/root$WS" /ws
for d in /tmp /run /var/tmp /dev/shm; do
    mount -t tmpfs -o mode=1777 tmpfs "/root$d"
done
mkdir -p "/root$WS"
mount --bind /ws "/root$WS" || { echo "vmtest: binding the workspace failed"; off; }
mount --bind "$SHARE" "/root$SHARE" || { echo "vmtest: binding the share failed"; off; }
mount -t tracefs tracefs /root/sys/kernel/tracing
# Without BTF: an empty /sys/kernel/btf, as on kernels built without it; droptrace then
# attaches to the classic tracepoint and takes reasons from its tracefs format.
[ -n "$NOBTF" ] && mount -t tmpfs -o mode=0555 nobtf /root/sys/kernel/btf
mount -t debugfs debugfs /root/sys/kernel/debug
mount -t bpf bpf /root/sys/fs/bpf
mount -t cgroup2 cgroup2 /root/sys/fs/cgroup
# Modules autoload through a wrapper on the share: the kernel runs it from this root,
# tools such as iptables run it from the chroot; the path is the same in both.
echo "$SHARE/modprobe" > /proc/sys/kernel/modprobe
ip link set lo up
echo "vmtest: running the job on $(uname -r)"
chroot /root /bin/bash "$SHARE/job.sh"
echo "vmtest: job exited with $?"
off
