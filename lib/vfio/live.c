// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The mappings this process made in its device's IOMMU container, and a
 * check of them against /proc/self/maps.
 *
 * Neither container lists what it maps (type1 has no such ioctl; iommufd's
 * IOMMU_IOAS_IOVA_RANGES gives the allowed ranges, not the mappings), but
 * the library knows what it mapped: every successful map adds its page
 * here and every unmap removes it, under engine_lock. A page still here
 * after its chunk's unmaps is a mapping that outlived its chunk; where no
 * VMA of the process holds it any more (munmap() ran meanwhile), the
 * device could reach memory the process no longer has: the worst kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfio.h"

void vfio_live_add(struct vfio_dev *vd, uint64_t iova, uint32_t perm)
{
	if (vd->nlive < VFIO_LIVE_MAX)
		vd->live[vd->nlive++] = (struct vfio_live){ iova, perm };
	else
		vd->live_lost++;	/* the check can't vouch for it */
}

void vfio_live_del(struct vfio_dev *vd, uint64_t iova)
{
	for (unsigned int i = 0; i < vd->nlive; i++) {
		if (vd->live[i].iova == iova) {
			vd->live[i] = vd->live[--vd->nlive];
			return;
		}
	}
}

/* The VMA of /proc/self/maps holding @addr: its "rwxp" into @perms, or
 * false where none does. */
static bool maps_lookup(FILE *f, uint64_t addr, char perms[5])
{
	/* Whole lines (getline): a long path split by a fixed buffer would
	 * have its tail parsed as a line of its own. */
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	rewind(f);
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned long long s, e;

		found = sscanf(line, "%llx-%llx %4s", &s, &e, perms) == 3 &&
			s <= addr && addr < e;
	}
	free(line);
	return found;
}

int vfio_live_check(struct vfio_dev *vd, bool report)
{
	FILE *f;
	int bad = 0;

	if (!vd->nlive && !vd->live_lost)
		return 0;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return sva_err(-errno, "/proc/self/maps: %s", strerror(errno));
	for (unsigned int i = 0; i < vd->nlive; i++) {
		const struct vfio_live *l = &vd->live[i];
		char perms[5] = "";
		const char *why = NULL;

		if (!maps_lookup(f, l->iova, perms))
			why = "no VMA of the process holds it (memory the process no longer has)";
		else if (perms[0] != 'r')
			why = "its VMA is not readable";
		else if ((l->perm & VFIO_MAP_WRITE) && perms[1] != 'w')
			why = "the device may write it, its VMA is not writable";
		if (!why)
			continue;
		bad++;
		if (report)
			pr_warn("%s: maps check: IOVA %#llx mapped %s in the %s container, but %s\n",
				vd->bdf, (unsigned long long)l->iova,
				l->perm & VFIO_MAP_WRITE ? "read-write" :
				"read-only", vd->cont.ops->name, why);
	}
	fclose(f);
	if (vd->live_lost) {
		bad++;
		if (report)
			pr_warn("%s: maps check: %u mappings not tracked (table full)\n",
				vd->bdf, vd->live_lost);
	}
	return bad;
}

void vfio_live_clear(struct vfio_dev *vd)
{
	vd->nlive = 0;
	vd->live_lost = 0;
}
