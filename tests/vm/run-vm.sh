#!/bin/sh
# VM tests of sva_shim.ko: build the module against the Debian 6.12 headers,
# pack a busybox initramfs with it and the static test programs, boot the
# 6.12 kernel under QEMU (TCG, q35 with an intel-iommu in scalable mode),
# and turn the result on the serial console into an exit status.
set -eu
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${top_builddir:-$S}
S=$(cd "$S" && pwd)
B=$(cd "$B" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# The kbuild tree configure found (or the newest 6.12 one), and the kernel
# image of the same version to boot.
KDIR=${KDIR:-$(ls -d /lib/modules/6.12*/build 2>/dev/null | sort -V | tail -n 1)}
KVER=$(cat "$KDIR/include/config/kernel.release" 2>/dev/null || true)
KERNEL=/boot/vmlinuz-$KVER
for need in "$KERNEL" "$KDIR" /bin/busybox; do
	if [ -z "$need" ] || [ ! -e "$need" ]; then
		echo "run-vm: missing ${need:-a 6.12 kernel or its headers}:" \
		     "run scripts/install-deps" >&2
		exit 1
	fi
done
command -v qemu-system-x86_64 > /dev/null ||
	{ echo "run-vm: qemu-system-x86_64 missing: run scripts/install-deps" >&2; exit 1; }

# The module: the one `make` built (kernel-build/), else built here out of
# tree in a copy, so a read-only or VPATH source tree works too. Warnings
# are kernel-lint.sh's business.
mkdir -p "$T/root/bin" "$T/root/proc" "$T/root/sys" "$T/root/dev" \
	"$T/root/tmp"
if [ -f "$B/kernel-build/sva_shim.ko" ]; then
	cp "$B/kernel-build/sva_shim.ko" "$T/root/"
else
	mkdir -p "$T/kernel"
	cp "$S"/kernel/*.c "$S"/kernel/*.h "$S/kernel/Kbuild" "$T/kernel/"
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$KDIR" \
		M="$T/kernel" ccflags-y="-I$S/include" modules \
		> "$T/build.log" 2>&1 || { cat "$T/build.log"; exit 1; }
	cp "$T/kernel/sva_shim.ko" "$T/root/"
fi

cc -static -O1 -Wall -Wextra -Werror -I"$S/include" -pthread \
	"$S/tests/vm/vmtest.c" -o "$T/root/sva-vmtest"
for prog in tests/unit/sva-unit-kmod tests/vm/sva-bench-static; do
	if [ -x "$B/$prog" ]; then
		cp "$B/$prog" "$T/root/"
	fi
done
# loop.ko, for the tests that swap to a loop device, where the kernel has
# loop as a module (Debian's does; a kernel with it built in needs none).
loop=$(ls /lib/modules/"$KVER"/kernel/drivers/block/loop.ko* 2>/dev/null |
	head -n 1)
case $loop in
*.xz) xz -dc "$loop" > "$T/root/loop.ko" ;;
?*) cp "$loop" "$T/root/loop.ko" ;;
esac
cp /bin/busybox "$T/root/bin/busybox"
cp "$S/tests/vm/init" "$T/root/init"
chmod +x "$T/root/init"
(cd "$T/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$T/initrd"

timeout 400 qemu-system-x86_64 -machine q35,kernel-irqchip=split -accel tcg \
	-device intel-iommu,intremap=on,x-scalable-mode=on \
	-device e1000e,addr=03.0,romfile= -nic none \
	-cpu max -smp 2 -m 1024 -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$T/initrd" \
	-append "console=ttyS0 intel_iommu=on,sm_on panic=-1 loglevel=4 no_timer_check" \
	< /dev/null > "$T/console" 2>&1 || true

tr -d '\r' < "$T/console" | grep -E '^(ok|not ok|#|vm:|vmtest:|SVA-VM-RESULT|[0-9]+%: Checks)|WARNING|BUG|Oops|Call Trace' || true
if grep -q 'SVA-VM-RESULT: PASS' "$T/console"; then
	exit 0
fi
echo "run-vm: FAILED; the console:" >&2
tr -d '\r' < "$T/console" | tail -60 >&2
exit 1
