#!/bin/sh
# The module's DKMS tree, as `make install` stages it, goes through what a
# kernel upgrade does to it: dkms add, build for the 6.12 kernel whose
# headers are installed, install; the installed sva_shim.ko must carry that
# kernel's vermagic. Then dkms remove. dkms works in trees of this test's
# own (--sourcetree, --dkmstree, --installtree, --no-depmod): the
# machine's /usr/src, /var/lib/dkms and /lib/modules, and any sva_shim
# installed there, are left alone. Skips (77) only where dkms, root or
# kernel headers are missing (or configure left the DKMS tree out).
set -eu
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${top_builddir:-$S}
S=$(cd "$S" && pwd)
B=$(cd "$B" && pwd)
V=${PACKAGE_VERSION:?run through make check}

command -v dkms > /dev/null ||
	{ echo "SKIP: dkms is not installed (apt-get install dkms)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "SKIP: dkms needs root"; exit 77; }
KDIR=${KDIR:-$(ls -d /lib/modules/6.12*/build 2> /dev/null | sort -V | tail -n 1)}
[ -n "$KDIR" ] && [ -f "$KDIR/include/config/kernel.release" ] ||
	{ echo "SKIP: no 6.12 kernel headers (/lib/modules/6.12*/build)"; exit 77; }
K=$(cat "$KDIR/include/config/kernel.release")
[ "${inst_dkmssrcdir:-}" != no ] ||
	{ echo "SKIP: configured --without-dkmssrcdir: no DKMS tree to test"; exit 77; }

T=$(mktemp -d)
# dkms makes a module signing key in /var/lib/dkms (not in --dkmstree) the
# first time it signs; one it made for this test goes with the test.
key=/var/lib/dkms/mok.key cert=/var/lib/dkms/mok.pub
had_key=no
[ -e "$key" ] || [ -e "$cert" ] && had_key=yes
DKMS() {
	dkms "$@" --sourcetree "$T/src" --dkmstree "$T/dkms" \
		--installtree "$T/modules" --kernelsourcedir "$KDIR" --no-depmod
}
cleanup() {
	DKMS remove -m sva_shim -v "$V" --all > /dev/null 2>&1 || true
	[ "$had_key" = yes ] || rm -f "$key" "$cert"
	rm -rf "$T"
}
trap cleanup EXIT
mkdir -p "$T/src" "$T/dkms" "$T/modules/$K"

# Stage the tree exactly as make install lays it out.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	make -s -C "$B" install-dkms-tree DESTDIR="$T/stage" > "$T/stage.log" 2>&1 ||
	{ cat "$T/stage.log"; echo "FAIL: staging the DKMS tree"; exit 1; }
tree=$T/stage$inst_dkmssrcdir/sva_shim-$V
[ -f "$tree/dkms.conf" ] || { echo "FAIL: no staged sva_shim-$V/dkms.conf"; exit 1; }

step() {
	echo "+ dkms $*"
	DKMS "$@" > "$T/step.log" 2>&1 || {
		cat "$T/step.log"
		for l in "$T"/dkms/sva_shim/"$V"/build/make.log; do
			[ -f "$l" ] && cat "$l"
		done
		echo "FAIL: dkms $*"
		exit 1
	}
}
step add "$tree"
step build -m sva_shim -v "$V" -k "$K"
step install -m sva_shim -v "$V" -k "$K"
DKMS status -m sva_shim -v "$V" -k "$K" | tee "$T/status"
grep -q "installed" "$T/status" || { echo "FAIL: dkms status does not say installed"; exit 1; }

ko=$(find "$T/modules/$K" -name 'sva_shim.ko*' | head -n 1)
[ -n "$ko" ] || { echo "FAIL: no sva_shim.ko under the install tree for $K"; exit 1; }
echo "installed: ${ko#"$T/modules/"}"
magic=$(modinfo -F vermagic "$ko")
# The vermagic of the kernel's own modules, else its release at least.
stock=$(find "/lib/modules/$K/kernel" -name '*.ko*' 2> /dev/null | head -n 1)
want=$([ -n "$stock" ] && modinfo -F vermagic "$stock" || true)
echo "vermagic: $magic"
if [ -n "$want" ]; then
	[ "$magic" = "$want" ] ||
		{ echo "FAIL: vermagic '$magic', the kernel's modules have '$want'"; exit 1; }
else
	case $magic in "$K "*) ;; *)
		echo "FAIL: vermagic '$magic' is not for $K"; exit 1 ;;
	esac
fi
[ "$(modinfo -F name "$ko")" = sva_shim ] || { echo "FAIL: module name"; exit 1; }

step remove -m sva_shim -v "$V" --all
left=$(find "$T/modules" -name 'sva_shim.ko*')
[ -z "$left" ] || { echo "FAIL: dkms remove left $left"; exit 1; }
! DKMS status -m sva_shim 2> /dev/null | grep -q . ||
	{ echo "FAIL: dkms still lists sva_shim"; exit 1; }
echo "PASS: dkms add/build/install/remove of sva_shim $V for $K"
