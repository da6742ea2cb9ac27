/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/* sva-info: what PCI config space and sysfs say of a device's SVA path. */
#ifndef SVA_INFO_H
#define SVA_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pci_sva_caps {
	bool config_full;	/* extended config space was readable */
	bool pasid, ats, pri;
	unsigned int pasid_width;	/* PASID cap: max PASID width */
	bool pasid_exec, pasid_priv;
	unsigned int ats_queue_depth;
	uint32_t pri_max_requests;	/* outstanding page request capacity */
};

/* Parse PCI config space @cfg of @len bytes (256 or 4096). */
void pci_parse_sva_caps(const uint8_t *cfg, size_t len,
			struct pci_sva_caps *caps);

#endif /* SVA_INFO_H */
