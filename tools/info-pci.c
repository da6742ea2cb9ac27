// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * PCI config space: the PCIe extended capabilities that SVA needs (PCIe
 * base spec 7.8.x): PASID (0x1b), ATS (0x0f) and PRI (0x13), found by
 * walking the extended capability list from offset 0x100; and what ACS
 * analysis needs: any extended capability, the PCI Express capability's
 * port type, the multifunction bit.
 */
#include <string.h>

#include "info.h"

#define PCI_HEADER_TYPE 0x0e
#define PCI_HEADER_TYPE_MFD 0x80
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAPABILITY_LIST 0x34
#define PCI_CAP_ID_EXP 0x10
#define PCI_EXT_CAP_START 0x100
#define PCI_EXT_CAP_ATS 0x0f
#define PCI_EXT_CAP_PRI 0x13
#define PCI_EXT_CAP_PASID 0x1b
/* Unprivileged readers get 64 bytes of config space (128 for CardBus). */
#define PCI_CFG_UNPRIVILEGED 128

uint32_t pci_rd32(const uint8_t *cfg, size_t off)
{
	return (uint32_t)cfg[off] | (uint32_t)cfg[off + 1] << 8 |
	       (uint32_t)cfg[off + 2] << 16 | (uint32_t)cfg[off + 3] << 24;
}

uint16_t pci_rd16(const uint8_t *cfg, size_t off)
{
	return (uint16_t)(cfg[off] | cfg[off + 1] << 8);
}

size_t pci_find_ext_cap(const uint8_t *cfg, size_t len, uint16_t id)
{
	size_t off = PCI_EXT_CAP_START;
	int guard = 0;

	if (len < 4096)
		return 0;
	/* 4096 bytes hold at most (4096 - 256) / 4 capabilities. */
	while (off >= PCI_EXT_CAP_START && off + 4 <= len && guard++ < 960) {
		uint32_t hdr = pci_rd32(cfg, off);

		if (!hdr || hdr == 0xffffffff)
			break;
		if ((hdr & 0xffff) == id)
			return off;
		off = (hdr >> 20) & 0xffc;
	}
	return 0;
}

static size_t pci_find_cap(const uint8_t *cfg, size_t len, uint8_t id)
{
	size_t off;
	int guard = 0;

	if (len < 64 || !(pci_rd16(cfg, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	off = cfg[PCI_CAPABILITY_LIST] & 0xfc;
	/* 256 bytes hold at most 48 capabilities. */
	while (off >= 0x40 && off + 4 <= len && guard++ < 48) {
		if (cfg[off] == id)
			return off;
		off = cfg[off + 1] & 0xfc;
	}
	return 0;
}

int pci_express_type(const uint8_t *cfg, size_t len)
{
	size_t off = pci_find_cap(cfg, len, PCI_CAP_ID_EXP);

	return off ? (pci_rd16(cfg, off + 2) >> 4) & 0xf : -1;
}

bool pci_multifunction(const uint8_t *cfg, size_t len)
{
	return len > PCI_HEADER_TYPE &&
	       (cfg[PCI_HEADER_TYPE] & PCI_HEADER_TYPE_MFD);
}

void pci_parse_sva_caps(const uint8_t *cfg, size_t len,
			struct pci_sva_caps *caps)
{
	size_t off;

	memset(caps, 0, sizeof(*caps));
	caps->config_partial = len <= PCI_CFG_UNPRIVILEGED;
	if (len < 4096)
		return;	/* 256 bytes: conventional PCI; less: not root */
	caps->config_full = true;
	off = pci_find_ext_cap(cfg, len, PCI_EXT_CAP_PASID);
	if (off && off + 8 <= len) {
		uint16_t cap = pci_rd16(cfg, off + 4);

		caps->pasid = true;
		caps->pasid_exec = cap & 0x2;
		caps->pasid_priv = cap & 0x4;
		caps->pasid_width = (cap >> 8) & 0x1f;
	}
	off = pci_find_ext_cap(cfg, len, PCI_EXT_CAP_ATS);
	if (off && off + 8 <= len) {
		unsigned int qd = pci_rd16(cfg, off + 4) & 0x1f;

		caps->ats = true;
		caps->ats_queue_depth = qd ? qd : 32;
	}
	off = pci_find_ext_cap(cfg, len, PCI_EXT_CAP_PRI);
	if (off && off + 12 <= len) {
		caps->pri = true;
		caps->pri_max_requests = pci_rd32(cfg, off + 8);
	}
}
