#!/bin/sh
# sva_shim.ko must build clean under sparse (kbuild C=2) and pass the
# kernel's checkpatch.pl. checkpatch comes from the kbuild tree or, on
# Debian, from the linux-source-6.12 package (extracted once into the
# build tree); without either, only sparse runs and that is said.
set -eu
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${top_builddir:-$S}
S=$(cd "$S" && pwd)
B=$(cd "$B" && pwd)
KDIR=${KDIR:-$(ls -d /lib/modules/6.12*/build 2>/dev/null | sort -V | tail -n 1)}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

[ -n "$KDIR" ] && [ -f "$KDIR/Makefile" ] ||
	{ echo "kernel-lint: no kbuild tree: run scripts/install-deps" >&2; exit 1; }
command -v sparse > /dev/null ||
	{ echo "kernel-lint: sparse missing: run scripts/install-deps" >&2; exit 1; }

mkdir -p "$T/kernel"
cp "$S"/kernel/*.c "$S"/kernel/*.h "$S/kernel/Kbuild" "$T/kernel/"
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$KDIR" M="$T/kernel" C=2 ccflags-y="-I$S/include" modules \
	> "$T/sparse.log" 2>&1 || { cat "$T/sparse.log"; exit 1; }
if grep -E '(warning|error):' "$T/sparse.log"; then
	echo "kernel-lint: sparse or compiler warnings above" >&2
	exit 1
fi
echo "kernel-lint: sparse clean"

cp=""
for c in "$KDIR/scripts/checkpatch.pl" "$B/.checkpatch/scripts/checkpatch.pl"; do
	[ -f "$c" ] && cp=$c && break
done
src=$(ls /usr/src/linux-source-6.12*.tar.xz 2>/dev/null | tail -n 1)
if [ -z "$cp" ] && [ -n "$src" ]; then
	top=$(basename "$src" .tar.xz)
	mkdir -p "$B/.checkpatch"
	tar -xJf "$src" -C "$B/.checkpatch" --strip-components=1 \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" \
		"$top/scripts/const_structs.checkpatch"
	cp="$B/.checkpatch/scripts/checkpatch.pl"
fi
if [ -z "$cp" ]; then
	echo "kernel-lint: checkpatch.pl not found (install linux-source-6.12): not run"
	exit 0
fi
perl "$cp" --no-tree -q -f "$S"/kernel/*.c "$S"/kernel/*.h \
	"$S/include/uapi/linux/sva_shim.h" > "$T/checkpatch.log" 2>&1 || true
if grep -E '^(WARNING|ERROR)' "$T/checkpatch.log"; then
	cat "$T/checkpatch.log"
	exit 1
fi
echo "kernel-lint: checkpatch clean"
