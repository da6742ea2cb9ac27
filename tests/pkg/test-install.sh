#!/bin/sh
# `make install` into a staging directory installs everything a user and a
# distribution package need: the library (with its soname links), the
# headers, the pkg-config file, a man page for every public call (the
# version script's list), the tools, the DKMS source tree of the module,
# the udev rule and the examples. Then the example builds against the
# installed tree with nothing but pkg-config, and runs.
set -eu
S=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
B=${top_builddir:-$S}
S=$(cd "$S" && pwd)
B=$(cd "$B" && pwd)
for v in PACKAGE_VERSION LIBSVA_LT_VERSION inst_bindir inst_libdir \
	 inst_includedir inst_mandir inst_docdir inst_pkgconfigdir \
	 inst_dkmssrcdir inst_udevrulesdir; do
	eval "test -n \"\${$v:-}\"" ||
		{ echo "test-install: $v not set (run through make check)"; exit 99; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
R=$T/root
bad=0
fail() { echo "FAIL: $*"; bad=1; }
need() {	# need -f|-x|-L PATH: PATH (under the staging root) installed
	test "$1" "$R$2" && echo "ok: $2" || fail "$2 not installed ($1)"
}

# A make of its own: make check's jobserver, -k or TESTS= are not ours.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	make -s -C "$B" install DESTDIR="$R" > "$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; echo "FAIL: make install"; exit 1; }

# The library: libtool's current:revision:age gives libsva.so.C-A.A.R, the
# soname libsva.so.C-A, and the development link libsva.so.
IFS=: read -r cur rev age <<EOT
$LIBSVA_LT_VERSION
EOT
major=$((cur - age))
real=libsva.so.$major.$age.$rev
need -f "$inst_libdir/$real"
need -L "$inst_libdir/libsva.so.$major"
need -L "$inst_libdir/libsva.so"
for l in libsva.so libsva.so.$major; do
	[ "$(readlink -f "$R$inst_libdir/$l")" = "$(readlink -f "$R$inst_libdir/$real")" ] ||
		fail "$l does not lead to $real"
done
soname=$(LC_ALL=C readelf -d "$R$inst_libdir/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libsva.so.$major" ] || fail "soname is '$soname', not libsva.so.$major"
# It exports exactly the version script's global symbols.
sed -n '/global:/,/local:/{s/^[[:space:]]*\([a-z_0-9]*\);.*/\1/p}' \
	"$S/lib/libsva.map" | sort > "$T/map"
[ -s "$T/map" ] || fail "no public call read from lib/libsva.map"
LC_ALL=C nm -D --defined-only "$R$inst_libdir/$real" |
	awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' | sort -u > "$T/exported"
cmp -s "$T/map" "$T/exported" ||
	{ diff "$T/map" "$T/exported" || true; fail "exported symbols differ from lib/libsva.map"; }

# Headers, pkg-config file.
need -f "$inst_includedir/sva/sva.h"
need -f "$inst_includedir/linux/sva_shim.h"
need -f "$inst_pkgconfigdir/libsva.pc"

# A man page for every public call: its own, or a .so link to the page
# that documents it, and that page installed too.
while read -r sym; do
	p=$R$inst_mandir/man3/$sym.3
	if [ ! -f "$p" ]; then
		fail "no man page for $sym"
		continue
	fi
	to=$(sed -n 's/^\.so //p' "$p")
	if [ -n "$to" ]; then
		[ -f "$R$inst_mandir/$to" ] || fail "$sym.3 is a link to $to, not installed"
		grep -q "^\.SH NAME" "$R$inst_mandir/$to" &&
			sed -n '/^\.SH NAME/{n;p;q;}' "$R$inst_mandir/$to" | grep -qw "$sym" ||
			fail "$sym.3 leads to $to, which does not name $sym"
	else
		sed -n '/^\.SH NAME/{n;p;q;}' "$p" | grep -qw "$sym" ||
			fail "$sym.3 does not name $sym"
	fi
done < "$T/map"
echo "ok: a man page for each of the $(wc -l < "$T/map") public calls"
need -f "$inst_mandir/man7/libsva.7"

# Tools: installed, and they run against the installed library.
for t in sva-bench sva-info; do
	need -x "$inst_bindir/$t"
	need -f "$inst_mandir/man1/$t.1"
	LD_LIBRARY_PATH=$R$inst_libdir "$R$inst_bindir/$t" --help > "$T/$t.help" 2>&1 ||
		fail "$t --help failed: $(cat "$T/$t.help")"
done

# The DKMS tree: dkms.conf of this version, every source of the module and
# the uapi header where Kbuild looks for it.
if [ "$inst_dkmssrcdir" != no ]; then
	D=$inst_dkmssrcdir/sva_shim-$PACKAGE_VERSION
	need -f "$D/dkms.conf"
	need -f "$D/Kbuild"
	need -f "$D/include/uapi/linux/sva_shim.h"
	# Every source Kbuild compiles, and every header beside them.
	objs=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$S/kernel/Kbuild" |
		sed -n 's/^sva_shim-y[[:space:]]*:*=//p')
	[ -n "$objs" ] || fail "no sva_shim-y objects read from kernel/Kbuild"
	for o in $objs; do
		need -f "$D/${o%.o}.c"
	done
	for f in "$S"/kernel/*.h; do
		need -f "$D/${f##*/}"
	done
	grep -qx "PACKAGE_VERSION=\"$PACKAGE_VERSION\"" "$R$D/dkms.conf" ||
		fail "dkms.conf: not version $PACKAGE_VERSION"
	# The module dkms expects is the one Kbuild builds.
	obj=$(sed -n 's/^obj-m[[:space:]]*:*=[[:space:]]*\(.*\)\.o$/\1/p' "$R$D/Kbuild")
	grep -qx "BUILT_MODULE_NAME\[0\]=\"$obj\"" "$R$D/dkms.conf" ||
		fail "dkms.conf: BUILT_MODULE_NAME is not Kbuild's $obj"
fi
if [ "$inst_udevrulesdir" != no ]; then
	need -f "$inst_udevrulesdir/60-sva.rules"
	cmp -s "$R$inst_udevrulesdir/60-sva.rules" "$S/packaging/udev/60-sva.rules" ||
		fail "installed udev rule differs from packaging/udev/60-sva.rules"
fi

# The example, built from its installed copy with only pkg-config pointed
# at the staged tree, linked and run against the staged library.
need -f "$inst_docdir/examples/copy.c"
need -f "$inst_docdir/examples/Makefile"
cp -R "$R$inst_docdir/examples" "$T/ex"
PKG_CONFIG_PATH=$R$inst_pkgconfigdir PKG_CONFIG_LIBDIR=$R$inst_pkgconfigdir \
PKG_CONFIG_SYSROOT_DIR=$R env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	make -s -C "$T/ex" > "$T/ex.log" 2>&1 ||
	{ cat "$T/ex.log"; fail "the example does not build against the installed tree"; }
if [ -x "$T/ex/copy" ]; then
	lib=$(LD_LIBRARY_PATH=$R$inst_libdir ldd "$T/ex/copy" | awk '$1 ~ /^libsva\.so/ { print $3 }')
	[ "$lib" = "$R$inst_libdir/libsva.so.$major" ] ||
		fail "the example runs with '$lib', not the staged libsva.so.$major"
	if LD_LIBRARY_PATH=$R$inst_libdir "$T/ex/copy" > "$T/ex.out" 2>&1; then
		cat "$T/ex.out"
		# It copied and verified what it says, and the device faulted
		# in the destination it never touched.
		len=$(sed -n 's/^copy: .*: \([0-9]*\) bytes copied and verified$/\1/p' "$T/ex.out")
		[ -n "$len" ] && [ "$len" -gt 0 ] || fail "example: no verified copy reported"
		set -- $(sed -n 's/^stats: //p' "$T/ex.out")
		while [ $# -ge 2 ]; do eval "st_$1=\$2"; shift 2; done
		[ "${st_bytes_done:-}" = "$len" ] || fail "example: bytes_done ${st_bytes_done:-?} != $len"
		[ "${st_descs_completed:-}" = 1 ] || fail "example: descs_completed ${st_descs_completed:-?} != 1"
		[ "${st_page_requests:-0}" -gt 0 ] || fail "example: no page request for an untouched destination"
	else
		cat "$T/ex.out"
		fail "the example failed"
	fi
fi

# And make uninstall takes it all away again.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	make -s -C "$B" uninstall DESTDIR="$R" > "$T/uninstall.log" 2>&1 ||
	{ cat "$T/uninstall.log"; fail "make uninstall"; }
left=$(cd "$R" && find . -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
exit $bad
