#!/bin/sh
# VM tests of sva_shim.ko: build the module against a 6.12 kbuild tree,
# pack a busybox initramfs with it and the static test programs, boot that
# kernel under QEMU (TCG, q35 with an intel-iommu in scalable mode), and
# turn the result on the serial console into an exit status.
#
# SVA_VM_KERNEL picks the kernel:
#   stock  Debian's linux-image-6.12, what users run (default): the unit
#          suite on kmod0 and sim0 under each THP mode, a short fuzz run;
#   debug  the debug test kernel (build-debug-kernel.sh: KASAN, lockdep,
#          kmemleak, fault injection), built once per machine: the same
#          tests, a longer fuzz run, a kmemleak scan, and the positive
#          control (deliberate bugs) that the harness must see.
set -eu
# configure --disable-vm-tests (make distcheck's builds use it).
if [ "${SVA_VM_TESTS:-yes}" = no ]; then
	echo "SKIP: VM tests (${SVA_VM_KERNEL:-stock} kernel) switched off by configure --disable-vm-tests"
	exit 77
fi
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${top_builddir:-$S}
S=$(cd "$S" && pwd)
B=$(cd "$B" && pwd)
KIND=${SVA_VM_KERNEL:-stock}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# SVA_FUZZ_SECONDS (0: off), SVA_FUZZ_SEED and SVA_FUZZ_THREADS reach the
# fuzzer through the kernel command line.
case $KIND in
stock)
	# The kbuild tree configure found (or the newest 6.12 one), and the
	# kernel image of the same version to boot.
	KDIR=${KDIR:-$(ls -d /lib/modules/6.12*/build 2>/dev/null | sort -V | tail -n 1)}
	KVER=$(cat "$KDIR/include/config/kernel.release" 2>/dev/null || true)
	KERNEL=/boot/vmlinuz-$KVER
	FUZZ=${SVA_FUZZ_SECONDS:-20}
	CMDLINE="sva.kernel=stock sva.thp=always,madvise,never"
	MEM=1024
	# A hang guard, not a budget: six unit suite runs (kmod0 and sim0
	# under three THP modes) took 15 min under TCG on a loaded 2-core CI
	# machine (the debug kernel building beside it); Check's own per-case
	# time-outs catch a stuck case long before this.
	LIMIT=1800
	;;
debug)
	KDIR=$("$S/tests/vm/build-debug-kernel.sh")
	KERNEL=$KDIR/arch/x86/boot/bzImage
	FUZZ=${SVA_FUZZ_SECONDS:-90}
	# no5lvl: -cpu max has LA57, and 6.12's identify_cpu() clears the
	# boot CPU's feature bits (LA57 included) before alternatives are
	# patched, so an interrupt landing in that window sees 4-level
	# paging and KASAN reports its irq_desc's lock (a direct-map address
	# of the 5-level layout) as a wild access (seen once at 0.005 s,
	# before any of our code ran). The stock kernel keeps LA57.
	CMDLINE="sva.kernel=debug kasan.fault=report no5lvl"
	MEM=1536
	# A hang guard (as the stock one): ~1300 s of tests, more on a
	# loaded machine.
	LIMIT=1800
	;;
*)
	echo "run-vm: SVA_VM_KERNEL=$KIND: stock or debug" >&2
	exit 1
	;;
esac
CMDLINE="$CMDLINE sva.fuzz=$FUZZ${SVA_FUZZ_SEED:+ sva.fuzz_seed=$SVA_FUZZ_SEED}${SVA_FUZZ_THREADS:+ sva.fuzz_threads=$SVA_FUZZ_THREADS}"
# Only a part, while working on it (tests/vm/init says how).
CMDLINE="$CMDLINE${SVA_VM_VFIO:+ sva.vfio=$SVA_VM_VFIO}${SVA_VM_VFIO_UNIT:+ sva.vfio_unit=$SVA_VM_VFIO_UNIT}"
CMDLINE="$CMDLINE${SVA_VM_CK_SUITE:+ sva.ck_suite=$SVA_VM_CK_SUITE}${SVA_VM_CK_CASE:+ sva.ck_case=$SVA_VM_CK_CASE}${SVA_VM_DEVICES:+ sva.devices=$SVA_VM_DEVICES}${SVA_VM_QUICK:+ sva.quick=$SVA_VM_QUICK}${SVA_VM_VMTEST:+ sva.vmtest=$SVA_VM_VMTEST}${SVA_VM_ENV:+ sva.env=$SVA_VM_ENV}"
LIMIT=$((LIMIT + FUZZ))
for need in "$KERNEL" "$KDIR" /bin/busybox; do
	if [ -z "$need" ] || [ ! -e "$need" ]; then
		echo "run-vm: missing ${need:-a 6.12 kernel or its headers}:" \
		     "run scripts/install-deps" >&2
		exit 1
	fi
done
command -v qemu-system-x86_64 > /dev/null ||
	{ echo "run-vm: qemu-system-x86_64 missing: run scripts/install-deps" >&2; exit 1; }

# Build the out-of-tree module in $2 (a copy of $1) against $KDIR; kbuild
# must not inherit make check's jobserver.
kbuild() {
	mkdir -p "$2"
	cp "$1"/*.c "$1/Kbuild" "$2/"
	cp "$1"/*.h "$2/" 2> /dev/null || true
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$KDIR" \
		M="$2" ccflags-y="-I$S/include" modules \
		> "$2/build.log" 2>&1 || { cat "$2/build.log"; exit 1; }
}

# The module: for the stock kernel the one `make` built (kernel-build/),
# else built here out of tree in a copy, so a read-only or VPATH source
# tree works too. Warnings are kernel-lint.sh's business.
mkdir -p "$T/root/bin" "$T/root/proc" "$T/root/sys" "$T/root/dev" \
	"$T/root/tmp"
if [ "$KIND" = stock ] && [ -f "$B/kernel-build/sva_shim.ko" ]; then
	cp "$B/kernel-build/sva_shim.ko" "$T/root/"
else
	kbuild "$S/kernel" "$T/kernel"
	cp "$T/kernel/sva_shim.ko" "$T/root/"
fi
if [ "$KIND" = debug ]; then
	kbuild "$S/tests/vm/control" "$T/control"
	cp "$T/control/sva_control.ko" "$T/root/"
	cp "$KDIR/lib/test_hmm.ko" "$T/root/" 2> /dev/null || true
fi

cc -static -O1 -Wall -Wextra -Werror -I"$S/include" -pthread \
	"$S/tests/vm/vmtest.c" -o "$T/root/sva-vmtest"
cc -static -O1 -Wall -Wextra -Werror -I"$S/include" -pthread \
	"$S/tests/vm/fuzz.c" -o "$T/root/sva-fuzz"
for prog in tests/unit/sva-unit-kmod tests/vm/sva-bench-static \
	tests/vm/sva-vfiotest-static tests/vm/sva-info-static; do
	if [ -x "$B/$prog" ]; then
		cp "$B/$prog" "$T/root/"
	fi
done
# loop.ko, for the tests that swap to a loop device, where the kernel has
# loop as a module (Debian's does; a kernel with it built in needs none).
loop=$(ls /lib/modules/"${KVER:-none}"/kernel/drivers/block/loop.ko* 2>/dev/null |
	head -n 1)
case $loop in
*.xz) xz -dc "$loop" > "$T/root/loop.ko" ;;
?*) cp "$loop" "$T/root/loop.ko" ;;
esac
# VFIO for the vfio0 backend's tests (the edu device below): Debian's
# stock kernel has it as modules, loaded by init in this order; the debug
# kernel has it built in.
mkdir -p "$T/root/vfio"
for m in virt/lib/irqbypass drivers/vfio/vfio drivers/vfio/vfio_iommu_type1 \
	drivers/vfio/pci/vfio-pci-core drivers/vfio/pci/vfio-pci; do
	ko=$(ls /lib/modules/"${KVER:-none}"/kernel/$m.ko* 2>/dev/null | head -n 1)
	case $ko in
	*.xz) xz -dc "$ko" > "$T/root/vfio/${m##*/}.ko" ;;
	?*) cp "$ko" "$T/root/vfio/${m##*/}.ko" ;;
	esac
	if [ -n "$ko" ]; then
		echo "${m##*/}" >> "$T/root/vfio/order"
	fi
done
cp /bin/busybox "$T/root/bin/busybox"
cp "$S/tests/vm/init" "$T/root/init"
chmod +x "$T/root/init"
(cd "$T/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$T/initrd"

# Two NUMA nodes, a CPU and half the memory each, for the placement tests
# (host memory on a node, preferred location): the VM's init tells the
# unit suite to expect them (SVA_TEST_EXPECT_NODES), so that those tests
# fail rather than skip if the nodes are gone. Each CPU a socket of its
# own: two cores of one socket (QEMU's default) share a cache, and the
# kernel WARNs at boot when cache siblings sit on different nodes.
NODES=2
NUMA="-object memory-backend-ram,id=mem0,size=$((MEM / 2))M
	-object memory-backend-ram,id=mem1,size=$((MEM - MEM / 2))M
	-numa node,nodeid=0,cpus=0,memdev=mem0
	-numa node,nodeid=1,cpus=1,memdev=mem1"
CMDLINE="$CMDLINE sva.nodes=$NODES"

start=$(date +%s)
# edu (04.0): a PCI device with a DMA engine, for the vfio0 backend,
# bound to vfio-pci by init. dma_mask: all 64 bits (its default, 28, would
# clamp user addresses); aw-bits=48: QEMU 7.2's intel-iommu defaults to 39
# address bits, and VFIO_IOMMU_MAP_DMA of a user address (IOVA == VA, up to
# 47 bits) then fails with EINVAL. A second edu shares a conventional PCI
# bridge (one IOMMU group) with a serial card its built-in driver takes:
# a group VFIO must refuse as not viable.
# (NUMA: options of their own)
# shellcheck disable=SC2086
timeout "$LIMIT" qemu-system-x86_64 -machine q35,kernel-irqchip=split -accel tcg \
	-device intel-iommu,intremap=on,x-scalable-mode=on,aw-bits=48 \
	-device e1000e,addr=03.0,romfile= -nic none \
	-device edu,addr=04.0,dma_mask=0xffffffffffffffff \
	-device pci-bridge,id=vfbr,chassis_nr=1,addr=05.0 \
	-device edu,bus=vfbr,addr=01.0 -device pci-serial,bus=vfbr,addr=02.0 \
	-cpu max -smp 2,sockets=2,cores=1,threads=1 -m "$MEM" $NUMA -nographic -no-reboot \
	-kernel "$KERNEL" -initrd "$T/initrd" \
	-append "console=ttyS0 intel_iommu=on,sm_on panic=-1 loglevel=4 no_timer_check $CMDLINE" \
	< /dev/null > "$T/console" 2>&1 || true
tr -d '\r' < "$T/console" > "$T/log"
# The whole console stays beside the test's log, for the post-mortem.
cp "$T/log" "$B/tests/vm/console-$KIND.log" 2> /dev/null || true
echo "run-vm: $KIND kernel, $(( $(date +%s) - start )) s in the VM"

grep -E '^(ok|not ok|#|vm:|vmtest:|vfiotest:|sva-info:|fuzz:|SVA-VM-RESULT|[0-9]+%: Checks)|:[EF]:|WARNING|BUG|Oops|Call Trace|KASAN|circular locking|unreferenced object' "$T/log" || true

ok=yes
grep -q 'SVA-VM-RESULT: PASS' "$T/log" || ok=no
# The harness looks for itself too: no checker's report before the result
# line (the positive control comes after it).
if sed '/SVA-VM-RESULT/q' "$T/log" |
	grep -E 'BUG:|WARNING:|KASAN|circular locking|recursive locking|unreferenced object|Oops' > /dev/null; then
	echo "run-vm: kernel checker reports before the result" >&2
	ok=no
fi
if [ "$KIND" = debug ]; then
	for c in kasan lockdep kmemleak grep; do
		if ! grep -Eq "^vm: positive control seen:.* $c( |$)" "$T/log"; then
			echo "run-vm: the positive control's $c bug went unseen: the harness is blind" >&2
			ok=no
		fi
	done
fi
[ "$ok" = yes ] && exit 0
echo "run-vm: FAILED; the console:" >&2
tail -80 "$T/log" >&2
exit 1
