// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * PCIe extended capabilities that SVA needs (PCIe base spec 7.8.x):
 * PASID (0x1b), ATS (0x0f) and PRI (0x13), found by walking the extended
 * capability list from offset 0x100.
 */
#include <string.h>

#include "info.h"

#define PCI_EXT_CAP_START 0x100
#define PCI_EXT_CAP_ATS 0x0f
#define PCI_EXT_CAP_PRI 0x13
#define PCI_EXT_CAP_PASID 0x1b

static uint32_t rd32(const uint8_t *cfg, size_t off)
{
	return (uint32_t)cfg[off] | (uint32_t)cfg[off + 1] << 8 |
	       (uint32_t)cfg[off + 2] << 16 | (uint32_t)cfg[off + 3] << 24;
}

static uint16_t rd16(const uint8_t *cfg, size_t off)
{
	return (uint16_t)(cfg[off] | cfg[off + 1] << 8);
}

void pci_parse_sva_caps(const uint8_t *cfg, size_t len,
			struct pci_sva_caps *caps)
{
	size_t off = PCI_EXT_CAP_START;
	int guard = 0;

	memset(caps, 0, sizeof(*caps));
	if (len < 4096)
		return;	/* only 256 bytes: unprivileged, or conventional PCI */
	caps->config_full = true;
	/* 4096 bytes hold at most (4096 - 256) / 4 capabilities. */
	while (off >= PCI_EXT_CAP_START && off + 4 <= len && guard++ < 960) {
		uint32_t hdr = rd32(cfg, off);
		uint16_t id = hdr & 0xffff;

		if (!hdr || hdr == 0xffffffff)
			break;
		if (id == PCI_EXT_CAP_PASID && off + 8 <= len) {
			uint16_t cap = rd16(cfg, off + 4);

			caps->pasid = true;
			caps->pasid_exec = cap & 0x2;
			caps->pasid_priv = cap & 0x4;
			caps->pasid_width = (cap >> 8) & 0x1f;
		} else if (id == PCI_EXT_CAP_ATS && off + 8 <= len) {
			unsigned int qd = rd16(cfg, off + 4) & 0x1f;

			caps->ats = true;
			caps->ats_queue_depth = qd ? qd : 32;
		} else if (id == PCI_EXT_CAP_PRI && off + 12 <= len) {
			caps->pri = true;
			caps->pri_max_requests = rd32(cfg, off + 8);
		}
		off = (hdr >> 20) & 0xffc;
	}
}
