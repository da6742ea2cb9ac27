// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Why an IOMMU group holds more than one device: Access Control Services.
 *
 * The kernel puts a device in its own group only if no peer-to-peer path
 * can bypass the IOMMU: every function from the device up to the root port
 * must pass pci_acs_enabled() with REQ_ACS_FLAGS (drivers/iommu/iommu.c:
 * Source Validation, P2P Request Redirect, P2P Completion Redirect,
 * Upstream Forwarding). pci_enable_pasid() (drivers/pci/ats.c) needs
 * P2P Request Redirect and Upstream Forwarding on the same path, so there a
 * missing ACS is not only a shared group but no PASID, hence no SVA.
 * The rules mirror pci_acs_enabled() and pci_acs_flags_enabled() of
 * drivers/pci/pci.c (6.12), less the per-device quirks, which sysfs can't
 * show: root and downstream ports need the controls; endpoints and
 * upstream ports only when multifunction; PCIe-to-PCI bridges never pass;
 * a control whose capability bit is clear is hard-wired and counts as on.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "info.h"

#define PCI_EXT_CAP_ID_ACS 0x0d
#define PCI_ACS_CAP 0x04
#define PCI_ACS_CTRL 0x06
#define PCI_ACS_SV 0x0001
#define PCI_ACS_RR 0x0004
#define PCI_ACS_CR 0x0008
#define PCI_ACS_UF 0x0010
#define PCI_ACS_EC 0x0020
#define REQ_ACS_FLAGS (PCI_ACS_SV | PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_UF)

enum {	/* PCI_EXP_TYPE_* of include/uapi/linux/pci_regs.h */
	EXP_ENDPOINT = 0x0, EXP_LEG_END = 0x1, EXP_ROOT_PORT = 0x4,
	EXP_UPSTREAM = 0x5, EXP_DOWNSTREAM = 0x6, EXP_PCI_BRIDGE = 0x7,
	EXP_PCIE_BRIDGE = 0x8, EXP_RC_END = 0x9, EXP_RC_EC = 0xa,
};

/* Required ACS controls that are off, or -1 without an ACS capability. */
static int acs_missing(const uint8_t *cfg, size_t len)
{
	size_t pos = pci_find_ext_cap(cfg, len, PCI_EXT_CAP_ID_ACS);
	uint16_t need;

	if (!pos || pos + 8 > len)
		return -1;
	need = REQ_ACS_FLAGS & (pci_rd16(cfg, pos + PCI_ACS_CAP) | PCI_ACS_EC);
	return need & ~pci_rd16(cfg, pos + PCI_ACS_CTRL);
}

/* One function on the path; true and @f filled if it fails. */
static bool acs_check_fn(const uint8_t *cfg, size_t len, struct acs_finding *f)
{
	bool mf = pci_multifunction(cfg, len);
	int type, missing;

	if (len <= 128) {
		f->kind = ACS_UNREADABLE;
		return true;
	}
	type = pci_express_type(cfg, len);
	switch (type) {
	case -1:
		f->kind = ACS_CONVENTIONAL;
		return true;
	case EXP_PCI_BRIDGE:
	case EXP_PCIE_BRIDGE:
	case EXP_RC_EC:
		f->kind = ACS_PCI_BRIDGE;
		return true;
	case EXP_ROOT_PORT:
	case EXP_DOWNSTREAM:
		break;
	case EXP_ENDPOINT:
	case EXP_LEG_END:
	case EXP_UPSTREAM:
	case EXP_RC_END:
		if (!mf)
			return false;
		break;
	default:
		return false;
	}
	missing = acs_missing(cfg, len);
	if (!missing)
		return false;
	if (missing < 0)
		f->kind = mf ? ACS_MF_NONE : ACS_CAP_NONE;
	else
		f->kind = mf ? ACS_MF_CTRL_OFF : ACS_CTRL_OFF;
	f->missing = missing < 0 ? REQ_ACS_FLAGS : missing;
	return true;
}

/*
 * From the device at @bdf up through its sysfs parents (each PCI function
 * on the way is a bridge or port) to the host bridge.
 */
int acs_walk(const char *bdf, struct acs_finding *f, int max)
{
	char path[PATH_MAX], real[PATH_MAX];
	static uint8_t cfg[4096];
	int n = 0;
	char *slash;

	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s", info_paths.sys,
		 bdf);
	if (!realpath(path, real))
		return 0;
	while ((slash = strrchr(real, '/')) && info_is_bdf(slash + 1) &&
	       n < max) {
		ssize_t len = info_read(cfg, sizeof(cfg), "%s/config", real);

		memset(&f[n], 0, sizeof(f[n]));
		snprintf(f[n].bdf, sizeof(f[n].bdf), "%s", slash + 1);
		if (acs_check_fn(cfg, len > 0 ? (size_t)len : 0, &f[n]))
			n++;
		*slash = '\0';
	}
	return n;
}

bool acs_blocks_pasid(const struct acs_finding *f)
{
	if (f->kind == ACS_CTRL_OFF || f->kind == ACS_MF_CTRL_OFF)
		return f->missing & (PCI_ACS_RR | PCI_ACS_UF);
	return f->kind != ACS_UNREADABLE;
}

static void acs_bits(uint16_t missing, char *buf, size_t len)
{
	static const struct { uint16_t bit; const char *name; } names[] = {
		{ PCI_ACS_SV, "Source Validation" },
		{ PCI_ACS_RR, "P2P Request Redirect" },
		{ PCI_ACS_CR, "P2P Completion Redirect" },
		{ PCI_ACS_UF, "Upstream Forwarding" },
	};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if ((missing & names[i].bit) && used < len)
			used += snprintf(buf + used, len - used, "%s%s",
					 used ? ", " : "", names[i].name);
}

void acs_describe(const struct acs_finding *f, char *buf, size_t len)
{
	char bits[128];

	acs_bits(f->missing, bits, sizeof(bits));
	switch (f->kind) {
	case ACS_CAP_NONE:
		snprintf(buf, len, "bridge %s has no ACS capability", f->bdf);
		break;
	case ACS_CTRL_OFF:
		snprintf(buf, len, "bridge %s ACS controls off: %s", f->bdf,
			 bits);
		break;
	case ACS_MF_NONE:
		snprintf(buf, len,
			 "multifunction device %s has no ACS on the function",
			 f->bdf);
		break;
	case ACS_MF_CTRL_OFF:
		snprintf(buf, len,
			 "multifunction device %s ACS controls off: %s",
			 f->bdf, bits);
		break;
	case ACS_PCI_BRIDGE:
		snprintf(buf, len,
			 "bridge %s is a PCIe-to-PCI bridge: devices behind it alias",
			 f->bdf);
		break;
	case ACS_CONVENTIONAL:
		snprintf(buf, len, "%s is conventional PCI: no ACS", f->bdf);
		break;
	case ACS_UNREADABLE:
		snprintf(buf, len, "%s config space unreadable (run as root)",
			 f->bdf);
		break;
	}
}
