#!/bin/sh
# sva-info on fixture machines (tests/tools/make-sysfs-fixture.sh), one
# case per reason it gives: each asserts the verdict and the reason text,
# then changes the one thing the reason rests on (a config space bit, a
# feature bit, a command-line word, a kernel release) and asserts that the
# verdict follows. Every output, text or JSON, must parse (jq). Last, a run
# on this machine.
set -eu
B=${top_builddir:-.}
S=${top_srcdir:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
F=$T/m
KREL=6.12.63	# a release the kernel table doesn't flag
ARCH=x86_64
fail() { echo "FAIL: $*"; cat "$T/out" 2>/dev/null; exit 1; }

command -v jq >/dev/null || fail "jq is needed (scripts/install-deps)"

fresh() { sh "$S/tests/tools/make-sysfs-fixture.sh" "$F"; }

# json_ok FILE: parses, is UTF-8 (RFC 8259; sysfs and /proc bytes needn't
# be), and no object holds a key twice (jq keeps only the last one: the
# JSON had both "libsva": VERSION and "libsva": [devices]).
json_ok() {
	jq -e . "$1" > /dev/null || fail "invalid JSON"
	iconv -f UTF-8 -t UTF-8 "$1" > /dev/null 2>&1 || fail "JSON not UTF-8"
	dup=$(jq -n --stream -r '
		reduce (inputs | select(length == 2) | .[0] as $p
			| range(0; $p | length) as $i
			| [($p[0:$i] | tojson), $p[$i]]) as [$par, $k]
			({}; if (.[$par] | last) == $k then .
			     else .[$par] += [$k] end)
		| to_entries[]
		| select((.value | length) != (.value | unique | length))
		| .key' "$1")
	[ -z "$dup" ] || fail "JSON keys repeated in object $dup"
}
run() {
	"$B/tools/sva-info" --sysfs "$F/sys" --proc "$F/proc" --dev "$F/dev" \
		--kernel-release "$KREL" --machine "$ARCH" "$@"
}

# poke FILE OFFSET BYTE: one config space byte (hex) at a decimal offset
poke() {
	# shellcheck disable=SC2059
	printf "\\$(printf '%03o' "0x$3")" |
		dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}
cfg() { echo "$F/sys/bus/pci/devices/$1/config"; }

# verdict BDF: the device's verdict line (text), and the JSON one agrees.
verdict() {
	run > "$T/out" || fail "exit status"
	v=$(awk -v d="$1" '$1 == d { on = 1; next }
		/^[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:/ { on = 0 }
		on && /^  verdict: / { sub(/^  verdict: /, ""); print }' \
		"$T/out")
	run --json > "$T/json" || fail "json exit status"
	json_ok "$T/json"
	j=$(jq -r --arg d "$1" '.pci[] | select(.bdf == $d) | .verdict' \
		"$T/json")
	[ "$v" = "$j" ] || fail "$1: text verdict '$v', JSON '$j'"
	echo "$v"
}

# expect BDF TEXT: the verdict of BDF starts with TEXT
expect() {
	# a failure inside $(...) only ends the subshell: pass it on
	v=$(verdict "$1") || { echo "$v"; exit 1; }
	case $v in
	"$2"*) ;;
	*) fail "$1: verdict '$v', expected '$2'" ;;
	esac
}

# first_id BDF ID: the first JSON reason's id ("" when SVA is possible)
first_id() {
	id=$(jq -r --arg d "$1" \
		'.pci[] | select(.bdf == $d) | .reasons[0].id // ""' "$T/json")
	[ "$id" = "$2" ] || fail "$1: first reason id '$id', expected '$2'"
}

has() { grep -qF -- "$1" "$T/out" || fail "missing: $1"; }
hasnt() { ! grep -qF -- "$1" "$T/out" || fail "unexpected: $1"; }

READY="SVA possible"
VIRTIO="never SVA: virtio without VIRTIO_F_ACCESS_PLATFORM (bypasses the IOMMU)"
ACS="ACS off on the path to the root port: the kernel won't enable PASID"

# -- the base machine: what each device stands for
fresh
expect 0000:00:02.0 "$READY"
first_id 0000:00:02.0 ""
has 'PASID yes (width 20, exec, priv)  ATS yes  PRI yes (512 requests)'
has 'IOMMU group 1 (dmar0), default domain DMA (translated, strict'
has 'command line: intel_iommu=on,sm_on'
# the "iommu=off" after "--" is init's, not the kernel's
has 'not disabled, passthrough kernel default, scalable mode on'
has 'dmar0: Intel VT-d, caps 0x90020f0505e, PASID and page requests'
[ "$(grep -c '^  verdict: SVA possible' "$T/out")" = 2 ] ||
	fail "exactly 02.0 and 06.0 ready"
has '2 of 13 PCI devices: SVA possible'
[ "$(jq .sva_possible "$T/json")" = 2 ] || fail "json sva_possible"
has 'members: 0000:00:03.0(e1000e)'
grep -q '^  sim0 *backend sim' "$T/out" || fail "libsva devices"
jq -e '.libsva[] | select(.name == "sim3" and .backend == "sim")' \
	"$T/json" > /dev/null || fail "json libsva"

# -- virtio without VIRTIO_F_ACCESS_PLATFORM, whatever else the device has
expect 0000:00:05.0 "$VIRTIO: virtio0 (net)"
first_id 0000:00:05.0 virtio-bypass
has 'virtio0 (net) on 0000:00:05.0: VIRTIO_F_ACCESS_PLATFORM no'
has 'every virtio device here lacks VIRTIO_F_ACCESS_PLATFORM'
jq -e '.virtio[0] | .access_platform == false and .pci == "0000:00:05.0"' \
	"$T/json" > /dev/null || fail "json virtio"
feat=$F/sys/bus/virtio/devices/virtio0/features
sed 's/^\(.\{33\}\)0/\11/' "$feat" > "$T/f" && cat "$T/f" > "$feat"
expect 0000:00:05.0 "$READY"
has 'VIRTIO_F_ACCESS_PLATFORM yes'
hasnt 'every virtio device here lacks'
# bit 32 (VERSION_1) instead of 33: still a bypass
fresh
sed 's/^\(.\{32\}\)1/\10/' "$feat" > "$T/f" && cat "$T/f" > "$feat"
expect 0000:00:05.0 "$VIRTIO"

# -- config space: unreadable (not root), conventional PCI
expect 0000:00:07.0 "extended config space unreadable (run as root)"
first_id 0000:00:07.0 config-unreadable
head -c 256 /dev/zero > "$(cfg 0000:00:07.0)"
expect 0000:00:07.0 "no extended config space (conventional PCI)"
first_id 0000:00:07.0 conventional-pci
expect 0000:00:04.0 "no extended config space (conventional PCI)"

# -- device capabilities: each one's ID byte broken in turn
expect 0000:00:03.0 "no PASID capability"
has 'blockers: no PASID capability; no ATS capability; no PRI: '
poke "$(cfg 0000:00:02.0)" 288 1a	# PASID 0x1b -> 0x1a
expect 0000:00:02.0 "no PASID capability"
first_id 0000:00:02.0 no-pasid
fresh
poke "$(cfg 0000:00:02.0)" 256 0e	# ATS 0x0f -> 0x0e
expect 0000:00:02.0 "no ATS capability"
first_id 0000:00:02.0 no-ats
fresh
poke "$(cfg 0000:00:02.0)" 272 12	# PRI 0x13 -> 0x12
expect 0000:00:02.0 "no PRI: device faults can't be served"
first_id 0000:00:02.0 no-pri

# -- kernel release: the table's x86 6.12.64+ refusal, and its edges
fresh
KREL=6.12.64
expect 0000:00:02.0 "kernel refuses SVA binding: 6.12.64 x86_64"
first_id 0000:00:02.0 kernel-refuses
has 'iommu_sva_bind_device() returns -EOPNOTSUPP'
KREL=6.12.117+deb12-amd64
expect 0000:00:02.0 "kernel refuses SVA binding"
KREL=6.12.63
expect 0000:00:02.0 "$READY"
KREL=6.13.0
expect 0000:00:02.0 "$READY"
KREL=6.12.70; ARCH=aarch64
expect 0000:00:02.0 "$READY"
has 'SVA status not in the table of known releases'
KREL=6.12.63; ARCH=x86_64

# -- IOMMU off: no group, the command line says why
rm "$F/sys/bus/pci/devices/0000:00:02.0/iommu_group"
expect 0000:00:02.0 "no IOMMU group: IOMMU absent or disabled: device not behind an IOMMU unit"
first_id 0000:00:02.0 iommu-off
echo 'root=/dev/sda1 intel_iommu=off' > "$F/proc/cmdline"
expect 0000:00:02.0 "no IOMMU group: IOMMU absent or disabled: intel_iommu=off on the command line"
has 'disabled, passthrough kernel default'
rm "$F/sys/class/iommu/dmar0"
expect 0000:00:02.0 "no IOMMU group: IOMMU absent or disabled: intel_iommu=off"
has 'IOMMU units: none registered'

# -- passthrough: identity default domain
fresh
echo identity > "$F/sys/kernel/iommu_groups/1/type"
expect 0000:00:02.0 "default domain identity: DMA bypasses the IOMMU"
first_id 0000:00:02.0 identity-domain
echo 'intel_iommu=on,sm_on iommu=pt' > "$F/proc/cmdline"
expect 0000:00:02.0 "default domain identity: DMA bypasses the IOMMU: iommu=pt on the command line"
has 'passthrough on'
echo 'intel_iommu=on,sm_on iommu.passthrough=0' > "$F/proc/cmdline"
run > "$T/out"
has 'passthrough off'

# -- the IOMMU unit: scalable mode off, or no PASID in its ecap
fresh
echo 'intel_iommu=on,sm_off' > "$F/proc/cmdline"
expect 0000:00:02.0 "IOMMU can't do PASID/page requests: scalable mode off on the command line (sm_off)"
first_id 0000:00:02.0 iommu-no-pasid
fresh
echo 80020f0505e > "$F/sys/class/iommu/dmar0/intel-iommu/ecap"	# bit 40 off
expect 0000:00:02.0 "IOMMU can't do PASID/page requests: dmar0 lacks PASID (ecap 0x80020f0505e)"
echo 90000f0505e > "$F/sys/class/iommu/dmar0/intel-iommu/ecap"	# bit 29 off
expect 0000:00:02.0 "IOMMU can't do PASID/page requests: dmar0 lacks PRS"

# -- ACS: root port controls off, no ACS, multifunction without ACS
fresh
expect 0000:01:00.0 "$ACS: bridge 0000:00:1c.0 ACS controls off: P2P Request Redirect, Upstream Forwarding"
first_id 0000:01:00.0 acs
has 'shared by 2 devices: bridge 0000:00:1c.0 ACS controls off: P2P Request Redirect, Upstream Forwarding'
jq -e '.pci[] | select(.bdf == "0000:01:00.0") | .iommu_group.shared_because[0] | test("0000:00:1c.0")' \
	"$T/json" > /dev/null || fail "json shared_because"
poke "$(cfg 0000:00:1c.0)" 262 1c	# all on but Source Validation
expect 0000:01:00.0 "$READY"		# PASID needs only RR and UF
has 'shared by 2 devices: bridge 0000:00:1c.0 ACS controls off: Source Validation'
poke "$(cfg 0000:00:1c.0)" 260 1e	# SV not implemented: hard-wired
expect 0000:01:00.0 "$READY"
has 'shared by 2 devices: not explained by ACS'
poke "$(cfg 0000:00:1c.0)" 262 18	# RR off again
expect 0000:01:00.0 "$ACS: bridge 0000:00:1c.0 ACS controls off: P2P Request Redirect"

expect 0000:02:00.0 "$ACS: bridge 0000:00:1d.0 has no ACS capability"
has 'shared by 2 devices: bridge 0000:00:1d.0 has no ACS capability'
f=$(cfg 0000:00:1d.0)
poke "$f" 256 0d; poke "$f" 258 01; poke "$f" 260 1f; poke "$f" 262 1f
expect 0000:02:00.0 "$READY"

expect 0000:03:00.0 "$ACS: multifunction device 0000:03:00.0 has no ACS on the function"
has 'shared by 3 devices: multifunction device 0000:03:00.0 has no ACS on the function; multifunction device 0000:03:00.1 has no ACS on the function'
poke "$(cfg 0000:03:00.0)" 14 00	# not multifunction after all
expect 0000:03:00.0 "$READY"
poke "$(cfg 0000:00:1e.0)" 64 10; poke "$(cfg 0000:00:1e.0)" 66 72
expect 0000:03:00.0 "$ACS: bridge 0000:00:1e.0 is a PCIe-to-PCI bridge"

# -- user-space interfaces
fresh
run > "$T/out"
has 'User-space IOMMU interfaces: iommufd /dev/iommu yes, VFIO cdevs /dev/vfio/devices yes, legacy VFIO container /dev/vfio/vfio yes'
has 'user space: VFIO cdev /dev/vfio/devices/vfio0 with iommufd /dev/iommu; legacy VFIO container /dev/vfio/vfio with group /dev/vfio/7'
has 'user space: none (not bound to vfio-pci: driver e1000e)'
has 'user space: none (not bound to vfio-pci: no driver)'
rm "$F/dev/iommu"
ln -s ../../../../devices/pci0000:00/0000:00:03.0 \
	"$F/sys/kernel/iommu_groups/7/devices/0000:00:03.0"
run > "$T/out"
has 'iommufd /dev/iommu no'
has 'user space: none (VFIO cdev needs iommufd: no /dev/iommu; group not viable: a member has a host driver)'
run --json > "$T/json"
jq -e '.pci[] | select(.bdf == "0000:00:06.0") | .userspace.vfio_cdev == "" and .iommu_group.viable == false' \
	"$T/json" > /dev/null || fail "json userspace"

# -- flush mode and reserved windows: reported, never blocking
fresh
echo 'intel_iommu=on,sm_on iommu.strict=0' > "$F/proc/cmdline"
expect 0000:00:06.0 "$READY"
has 'default domain DMA-FQ (translated, lazy IOTLB flush'
has 'flush lazy'
has 'reserved (keep mirrors off): 0xfee00000-0xfeefffff msi'
has 'msi: interrupt window (x86: 0xfee00000-0xfeefffff): device writes there are MSIs, no device DMA reaches these addresses'
has 'reserved (keep mirrors off): 0x7c000000-0x7cffffff direct'
has 'direct: identity-mapped for firmware (RMRR/IVMD)'
jq -e '.pci[] | select(.bdf == "0000:00:05.0") | .iommu_group.reserved_regions | length == 2 and .[0].start == "0xfee00000" and .[0].type == "msi"' \
	"$T/json" > /dev/null || fail "json reserved regions"

# -- --explain: a remedy per reason given
run --explain > "$T/out"
has 'remedy (virtio-bypass): enable VIRTIO_F_ACCESS_PLATFORM (QEMU: iommu_platform=on,ats=on'
has 'remedy (acs): enable ACS (and ARI) in firmware/BIOS'
has 'remedy (no-pasid): use a device with ATS/PRI/PASID'
has 'remedy (config-unreadable): run sva-info as root'
has 'remedy (user space): bind to vfio-pci'
echo 'iommu=pt' > "$F/proc/cmdline"
echo identity > "$F/sys/kernel/iommu_groups/1/type"
KREL=6.12.70
run --explain > "$T/out"
has 'remedy (identity-domain): boot without iommu=pt and with iommu.passthrough=0'
has 'remedy (kernel-refuses): boot a kernel release'
run > "$T/out"
hasnt 'remedy ('
run --json --explain > "$T/json"
jq -e '[.pci[].reasons[] | select(.remedy == "")] | length == 0' \
	"$T/json" > /dev/null || fail "json remedies"

KREL=6.12.63

# -- names that need escaping still make valid JSON
fresh
printf 'iommu="x"\tiommu.strict=\\1\n' > "$F/proc/cmdline"
run --json > "$T/json"
jq -e '.cmdline.params == "iommu=\"x\" iommu.strict=\\1"' "$T/json" \
	> /dev/null ||
	fail "json escaping"
# bytes that aren't UTF-8 (a command line is any bytes): U+FFFD each
printf 'iommu=\377x\303\n' > "$F/proc/cmdline"
run --json > "$T/json"
json_ok "$T/json"
jq -e '.cmdline.params == "iommu=\ufffdx\ufffd"' "$T/json" > /dev/null ||
	fail "json: bytes not UTF-8"
jq -e '.libsva_version | type == "string"' "$T/json" > /dev/null ||
	fail "json libsva_version"

# -- this machine: whatever it has, a clean run with a verdict per device
"$B/tools/sva-info" > "$T/out" || fail "real sysfs"
grep -q '^libsva devices:' "$T/out" || fail "real sysfs output"
n=$(ls /sys/bus/pci/devices 2>/dev/null | wc -l)
[ "$(grep -c '^  verdict: ' "$T/out")" = "$n" ] || fail "a verdict per device"
# every virtio device without bit 33 named, and its PCI function's verdict
for d in /sys/bus/virtio/devices/*; do
	[ -e "$d/features" ] || continue
	[ "$(cut -c34 "$d/features")" = 0 ] || continue
	has "${d##*/} ("
	p=$(basename "$(dirname "$(readlink -f "$d")")")
	case $p in
	*:*.*) grep -A20 "^$p " "$T/out" | grep -m1 '^  verdict' |
		grep -qF "$VIRTIO" || fail "$p: virtio verdict" ;;
	esac
done
"$B/tools/sva-info" --json > "$T/json" || fail "real sysfs json"
json_ok "$T/json"
"$B/tools/sva-info" --sysfs "$T/nonexistent" > "$T/out" 2>&1 &&
	fail "missing sysfs must fail"
"$B/tools/sva-info" --bogus > "$T/out" 2>&1 && fail "bad option must fail"
"$B/tools/sva-info" extra > "$T/out" 2>&1 && fail "stray argument must fail"
echo "test-sva-info: all passed"
