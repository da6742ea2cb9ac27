#!/bin/sh
# Build a fake sysfs tree under $1 with three PCI devices:
#   0000:00:02.0  PASID+ATS+PRI, IOMMU group 1 (DMA, no driver, MSI window)
#   0000:00:03.0  no SVA capabilities, group 2 (identity, e1000e bound)
#   0000:00:04.0  256-byte config only, no IOMMU group
set -eu
R=$1
rm -rf "$R"
mkdir -p "$R/bus/pci/devices" "$R/bus/pci/drivers/e1000e" \
	"$R/kernel/iommu_groups/1/devices" "$R/kernel/iommu_groups/2/devices"

dev() {	# bdf vendor device class group driver
	d=$R/devices/pci0000:00/$1
	mkdir -p "$d"
	echo "$2" > "$d/vendor"
	echo "$3" > "$d/device"
	echo "$4" > "$d/class"
	echo 0 > "$d/numa_node"
	ln -s "../../../devices/pci0000:00/$1" "$R/bus/pci/devices/$1"
	if [ "$5" != - ]; then
		ln -s "../../../../kernel/iommu_groups/$5" "$d/iommu_group"
		ln -s "../../../../devices/pci0000:00/$1" \
			"$R/kernel/iommu_groups/$5/devices/$1"
	fi
	if [ "$6" != - ]; then
		ln -s "../../../bus/pci/drivers/$6" "$d/driver"
	fi
}

# poke FILE OFFSET BYTES...: write bytes (hex) at a decimal offset
poke() {
	f=$1 off=$2
	shift 2
	bytes=""
	# POSIX printf knows octal escapes only (dash has no \x).
	for b in "$@"; do bytes="$bytes\\$(printf '%03o' "0x$b")"; done
	# shellcheck disable=SC2059
	printf "$bytes" | dd of="$f" bs=1 seek="$off" conv=notrunc 2>/dev/null
}

dev 0000:00:02.0 0x8086 0x0b25 0x088000 1 -
cfg=$R/devices/pci0000:00/0000:00:02.0/config
head -c 4096 /dev/zero > "$cfg"
poke "$cfg" 256 0f 00 01 11		# 0x100 ATS, next 0x110
poke "$cfg" 272 13 00 01 12		# 0x110 PRI, next 0x120
poke "$cfg" 280 00 02 00 00		# 0x118 outstanding requests: 512
poke "$cfg" 288 1b 00 01 00		# 0x120 PASID, last
poke "$cfg" 292 06 14			# 0x124 exec, priv, width 20
echo DMA > "$R/kernel/iommu_groups/1/type"
printf '0x00000000fee00000 0x00000000feefffff msi\n' \
	> "$R/kernel/iommu_groups/1/reserved_regions"

dev 0000:00:03.0 0x8086 0x10d3 0x020000 2 e1000e
cfg=$R/devices/pci0000:00/0000:00:03.0/config
head -c 4096 /dev/zero > "$cfg"
echo identity > "$R/kernel/iommu_groups/2/type"
: > "$R/kernel/iommu_groups/2/reserved_regions"

dev 0000:00:04.0 0x1af4 0x1000 0x020000 - -
head -c 256 /dev/zero > "$R/devices/pci0000:00/0000:00:04.0/config"
