#!/bin/sh
# sva-info on a fixture sysfs tree (known answers) and on this machine.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; cat "$T/out" 2>/dev/null; exit 1; }

sh "$S/tests/tools/make-sysfs-fixture.sh" "$T/sys"
"$B/tools/sva-info" --sysfs "$T/sys" > "$T/out" || fail "exit status"
grep -q '^0000:00:02.0 0x8086:0x0b25' "$T/out" || fail "02.0 listed"
grep -q 'PASID yes (width 20, exec, priv)  ATS yes  PRI yes (512 requests)' \
	"$T/out" || fail "02.0 capabilities"
grep -q 'IOMMU group 1, default domain DMA, viable' "$T/out" || fail "group 1"
grep -q 'reserved (keep mirrors off): 0xfee00000-0xfeefffff msi' "$T/out" ||
	fail "MSI window"
[ "$(grep -c '  SVA: ready' "$T/out")" = 1 ] || fail "exactly one ready"
grep -q 'SVA: blocked: no PASID capability; no ATS capability; no PRI: .*; default domain identity: DMA bypasses the IOMMU; group not viable' \
	"$T/out" || fail "03.0 blockers"
grep -q 'members: 0000:00:03.0(e1000e)' "$T/out" || fail "03.0 member driver"
grep -q 'SVA: blocked: .*extended config space.*; no IOMMU group' \
	"$T/out" || fail "04.0 blockers"
grep -q '^  sim0 *backend sim' "$T/out" || fail "libsva devices"

"$B/tools/sva-info" --sysfs "$T/sys" --json > "$T/out" || fail "json exit"
grep -q '"bdf": "0000:00:02.0".*"pasid": true, "pasid_width": 20, "ats": true, "pri": true, "pri_max_requests": 512.*"sva_ready": true' \
	"$T/out" || fail "json 02.0"
grep -q '"bdf": "0000:00:03.0".*"type": "identity", "viable": false' \
	"$T/out" || fail "json 03.0"
grep -q '"name": "sim3", "backend": "sim"' "$T/out" || fail "json libsva"
if command -v python3 >/dev/null; then
	python3 -m json.tool "$T/out" > /dev/null || fail "json syntax"
fi

# This machine: whatever it has, a clean run.
"$B/tools/sva-info" > "$T/out" || fail "real sysfs"
grep -q '^libsva devices:' "$T/out" || fail "real sysfs output"
"$B/tools/sva-info" --sysfs "$T/nonexistent" > "$T/out" 2>&1 &&
	fail "missing sysfs must fail"
"$B/tools/sva-info" --bogus > "$T/out" 2>&1 && fail "bad option must fail"
echo "test-sva-info: all passed"
