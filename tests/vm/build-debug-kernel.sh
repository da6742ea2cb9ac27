#!/bin/sh
# Build the debug test kernel once per machine and print the directory it
# lives in (bzImage, the kbuild tree for out-of-tree modules, test_hmm.ko).
#
# The kernel is Debian's linux-source-6.12 (the same version as the headers
# the module is built against) with x86_64_defconfig and
# tests/vm/debug-kernel.config. It is cached outside the clone, under
# $SVA_KERNEL_CACHE (default ~/.cache/libsva/kernel), keyed by the source
# package's version and the hash of the fragment (bump BUILD_REV when a
# change here changes what is built), so
# only the first run on a machine pays the build (~14 min on 2 cores).
# Concurrent runs wait on a lock; a half-built tree is never used.
set -eu
S=$(cd "$(dirname "$0")/../.." && pwd)
FRAG=$S/tests/vm/debug-kernel.config
TARBALL=$(ls /usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n 1)
if [ -z "$TARBALL" ]; then
	echo "build-debug-kernel: linux-source-6.12 missing: run scripts/install-deps" >&2
	exit 1
fi
SRCVER=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || echo unknown)
BUILD_REV=1
KEY=$( (cat "$FRAG"; echo "rev $BUILD_REV") | sha256sum | cut -c1-16)
CACHE=${SVA_KERNEL_CACHE:-${HOME:-/root}/.cache/libsva/kernel}
OUT=$CACHE/$SRCVER-$KEY
mkdir -p "$CACHE"

if [ -f "$OUT/.done" ]; then
	echo "$OUT"
	exit 0
fi

exec 9> "$CACHE/.lock"
flock 9
if [ -f "$OUT/.done" ]; then
	echo "$OUT"
	exit 0
fi

rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp"
log=$OUT.tmp/build.log
echo "build-debug-kernel: building $SRCVER with $(basename "$FRAG") in $OUT (first run on this machine, ~15 min; log $log)" >&2
start=$(date +%s)
tar -xf "$TARBALL" -C "$OUT.tmp" --strip-components=1
cd "$OUT.tmp"
# kbuild must not inherit make check's jobserver.
unset MAKEFLAGS MFLAGS MAKELEVEL
jobs=$(nproc)
{
	make x86_64_defconfig
	scripts/kconfig/merge_config.sh -m .config "$FRAG"
	make olddefconfig
} > "$log" 2>&1 || { tail -40 "$log" >&2; exit 1; }

# Every option the fragment sets must have survived olddefconfig (an
# unmet dependency silently drops it). The loop runs in a pipeline's
# subshell: it leaves a file behind for each miss.
rm -f .frag-mismatch
grep -E '^CONFIG_[A-Z0-9_]+=' "$FRAG" | while IFS= read -r opt; do
	name=${opt%%=*}
	val=${opt#*=}
	if [ "$val" = n ]; then
		if grep -q "^$name=" .config; then
			echo "build-debug-kernel: $name is on, wanted off" >&2
			echo bad > .frag-mismatch
		fi
	elif ! grep -qx "$name=$val" .config; then
		echo "build-debug-kernel: $opt did not stick (got: $(grep "^$name=" .config || echo unset))" >&2
		echo bad > .frag-mismatch
	fi
done
[ -f .frag-mismatch ] && exit 1

if ! make -j"$jobs" bzImage modules >> "$log" 2>&1; then
	tail -60 "$log" >&2
	exit 1
fi
# The kbuild tree stays (out-of-tree modules build against it); objects of
# the kernel proper are not needed for that.
echo "build-debug-kernel: built in $(( $(date +%s) - start )) s" >&2
cd /
mv "$OUT.tmp" "$OUT"
touch "$OUT/.done"
echo "$OUT"
