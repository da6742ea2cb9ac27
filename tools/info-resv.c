// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Reserved regions of an IOMMU group (/sys/kernel/iommu_groups/N/
 * reserved_regions, types from iommu_group_resv_type_string()): address
 * ranges where a device's DMA never reaches memory. A process address in
 * such a range can't be shared with the device, so libsva mirrors must
 * stay off them. One line per type says why.
 */
#include <string.h>

#include "info.h"

const char *reserved_note(const char *type)
{
	if (!strcmp(type, "msi"))
		return "interrupt window (x86: 0xfee00000-0xfeefffff): device "
		       "writes there are MSIs, no device DMA reaches these "
		       "addresses";
	if (!strcmp(type, "sw-msi"))
		return "IOVAs the IOMMU driver maps to MSI doorbells: no "
		       "device DMA reaches memory at these addresses";
	if (!strcmp(type, "reserved"))
		return "reserved by the platform (e.g. PCI host bridge "
		       "windows): never mapped, no device DMA reaches these "
		       "addresses";
	if (!strcmp(type, "direct") || !strcmp(type, "direct-relaxable"))
		return "identity-mapped for firmware (RMRR/IVMD): device DMA "
		       "there reaches physical memory, not the process's";
	return "unknown type: treat as unreachable by device DMA";
}
