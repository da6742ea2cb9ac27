#!/bin/sh
# Build a fake machine under $1: $1/sys (sysfs), $1/proc/cmdline, $1/dev.
# Every device stands for one reason sva-info gives (or for none):
#   0000:00:02.0  PASID+ATS+PRI, group 1 (DMA, MSI window), no driver: ready
#   0000:00:03.0  no SVA capabilities, group 2 (identity, e1000e bound)
#   0000:00:04.0  256-byte config (conventional PCI), no IOMMU group
#   0000:00:05.0  virtio-pci (virtio0 without VIRTIO_F_ACCESS_PLATFORM), caps
#                 all there, group 6 with a direct-mapped region
#   0000:00:06.0  PASID+ATS+PRI on vfio-pci (cdev vfio0), group 7 (DMA-FQ)
#   0000:00:07.0  64-byte config: what a non-root reader gets
#   0000:00:1c.0  root port, ACS with P2P Request Redirect and Upstream
#                 Forwarding off; 0000:01:00.0 below it, both in group 3
#   0000:00:1d.0  root port without ACS; 0000:02:00.0 below it, group 4
#   0000:00:1e.0  root port with ACS on; multifunction 0000:03:00.0 and .1
#                 without ACS below it, group 5
# The IOMMU unit dmar0 has scalable mode, PASID and PRS; the command line
# says intel_iommu=on,sm_on (an iommu=off after "--" belongs to init).
set -eu
R=$1
S=$R/sys
rm -rf "$R"
mkdir -p "$S/bus/pci/devices" "$S/bus/pci/drivers/e1000e" \
	"$S/bus/pci/drivers/pcieport" "$S/bus/pci/drivers/vfio-pci" \
	"$S/bus/virtio/devices" "$S/class/iommu" \
	"$S/devices/virtual/iommu/dmar0/intel-iommu" "$R/proc" \
	"$R/dev/vfio/devices"

# POSIX printf knows octal escapes only (dash has no \x).
# poke FILE OFFSET BYTES...: write bytes (hex) at a decimal offset
poke() {
	f=$1 off=$2
	shift 2
	bytes=""
	for b in "$@"; do bytes="$bytes\\$(printf '%03o' "0x$b")"; done
	# shellcheck disable=SC2059
	printf "$bytes" | dd of="$f" bs=1 seek="$off" conv=notrunc 2>/dev/null
}

# dev PATH vendor device class group driver: PATH under devices/pci0000:00
dev() {
	d=$S/devices/pci0000:00/$1
	b=${1##*/}
	mkdir -p "$d"
	echo "$2" > "$d/vendor"
	echo "$3" > "$d/device"
	echo "$4" > "$d/class"
	echo 0 > "$d/numa_node"
	ln -sr "$d" "$S/bus/pci/devices/$b"
	if [ "$5" != - ]; then
		mkdir -p "$S/kernel/iommu_groups/$5/devices"
		[ -f "$S/kernel/iommu_groups/$5/type" ] ||
			echo DMA > "$S/kernel/iommu_groups/$5/type"
		ln -sr "$S/kernel/iommu_groups/$5" "$d/iommu_group"
		ln -sr "$d" "$S/kernel/iommu_groups/$5/devices/$b"
		ln -sr "$S/devices/virtual/iommu/dmar0" "$d/iommu"
	fi
	if [ "$6" != - ]; then
		ln -sr "$S/bus/pci/drivers/$6" "$d/driver"
	fi
	cfg=$d/config
	head -c 4096 /dev/zero > "$cfg"
}

# sva_caps: ATS at 0x100, PRI at 0x110 (512 requests), PASID at 0x120
# (exec, priv, width 20), the last capability.
sva_caps() {
	poke "$1" 256 0f 00 01 11
	poke "$1" 272 13 00 01 12
	poke "$1" 280 00 02 00 00
	poke "$1" 288 1b 00 01 00
	poke "$1" 292 06 14
}

# pcie FILE TYPE HEADER: PCI Express capability at 0x40 with port TYPE.
pcie() {
	poke "$1" 6 10				# status: capability list
	poke "$1" 52 40				# capabilities pointer
	poke "$1" 64 10 00 "${2}2" 00		# PCIe cap, version 2
	poke "$1" 14 "$3"			# header type (80: multifunction)
}

# acs FILE CAP CTRL: ACS extended capability at 0x100, the last one.
acs() {
	poke "$1" 256 0d 00 01 00
	poke "$1" 260 "$2" 00
	poke "$1" 262 "$3" 00
}

P=$S/devices/pci0000:00
ln -sr "$S/devices/virtual/iommu/dmar0" "$S/class/iommu/dmar0"
echo 90020f0505e > "$S/devices/virtual/iommu/dmar0/intel-iommu/ecap"
echo 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on,sm_on quiet -- iommu=off' \
	> "$R/proc/cmdline"

dev 0000:00:02.0 0x8086 0x0b25 0x088000 1 -
sva_caps "$cfg"
printf '0x00000000fee00000 0x00000000feefffff msi\n' \
	> "$S/kernel/iommu_groups/1/reserved_regions"

mkdir -p "$S/kernel/iommu_groups/2"
echo identity > "$S/kernel/iommu_groups/2/type"
dev 0000:00:03.0 0x8086 0x10d3 0x020000 2 e1000e
: > "$S/kernel/iommu_groups/2/reserved_regions"

dev 0000:00:04.0 0x1af4 0x1000 0x020000 - -
head -c 256 /dev/zero > "$cfg"

dev 0000:00:05.0 0x1af4 0x1041 0x020000 6 -
sva_caps "$cfg"
printf '0x00000000fee00000 0x00000000feefffff msi\n0x000000007c000000 0x000000007cffffff direct\n' \
	> "$S/kernel/iommu_groups/6/reserved_regions"
mkdir -p "$P/0000:00:05.0/virtio0"
echo 0x0001 > "$P/0000:00:05.0/virtio0/device"
# bits 0, 5, 16 and 32 (VERSION_1); bit 33 (ACCESS_PLATFORM) clear
echo 10000100000000001000000000000000100000000000000000000000000000000 \
	> "$P/0000:00:05.0/virtio0/features"
ln -sr "$P/0000:00:05.0/virtio0" "$S/bus/virtio/devices/virtio0"

mkdir -p "$S/kernel/iommu_groups/7"
echo DMA-FQ > "$S/kernel/iommu_groups/7/type"
dev 0000:00:06.0 0x8086 0x0b25 0x088000 7 vfio-pci
sva_caps "$cfg"
mkdir -p "$P/0000:00:06.0/vfio-dev/vfio0"
: > "$R/dev/vfio/devices/vfio0"
: > "$R/dev/vfio/7"
: > "$R/dev/vfio/vfio"
: > "$R/dev/iommu"

dev 0000:00:07.0 0x8086 0x0b25 0x088000 - -
head -c 64 /dev/zero > "$cfg"

dev 0000:00:1c.0 0x8086 0xa110 0x060400 3 pcieport
pcie "$cfg" 4 01
acs "$cfg" 1f 09			# SV and CR on; RR and UF off
dev 0000:00:1c.0/0000:01:00.0 0x8086 0x0b25 0x088000 3 -
pcie "$cfg" 0 00
sva_caps "$cfg"

dev 0000:00:1d.0 0x8086 0xa111 0x060400 4 pcieport
pcie "$cfg" 4 01
dev 0000:00:1d.0/0000:02:00.0 0x8086 0x0b25 0x088000 4 -
pcie "$cfg" 0 00
sva_caps "$cfg"

dev 0000:00:1e.0 0x8086 0xa112 0x060400 5 pcieport
pcie "$cfg" 4 01
acs "$cfg" 1f 1f
for fn in 0 1; do
	dev "0000:00:1e.0/0000:03:00.$fn" 0x8086 0x0b25 0x088000 5 -
	pcie "$cfg" 0 80
	sva_caps "$cfg"
done
