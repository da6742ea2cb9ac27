// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The IOMMU as user space sees it: the hardware units the kernel registered
 * (/sys/class/iommu) with the capability bits SVA needs, and the device
 * nodes through which a process can own a device's DMA: iommufd
 * (/dev/iommu), a VFIO device cdev (/dev/vfio/devices/vfioN, which works
 * only with iommufd) and the legacy VFIO container (/dev/vfio/vfio) with
 * the group node /dev/vfio/<group>, usable only when the whole group is
 * viable (every member unbound or on a VFIO-safe driver).
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "info.h"

/* Intel VT-d extended capability register (drivers/iommu/intel/iommu.h). */
#define ECAP_PRS(e) (((e) >> 29) & 1)
#define ECAP_PASID(e) (((e) >> 40) & 1)
#define ECAP_SMTS(e) (((e) >> 43) & 1)
/* AMD IOMMU extended features (drivers/iommu/amd/amd_iommu_types.h). */
#define AMD_FEATURE_PPR (1ULL << 1)
#define AMD_FEATURE_GT (1ULL << 4)

static void unit_read(const char *name, struct iommu_unit *u)
{
	const char *sys = info_paths.sys;
	char val[64];

	memset(u, 0, sizeof(*u));
	info_copy(u->name, sizeof(u->name), name);
	if (*info_attr(val, sizeof(val), "%s/class/iommu/%s/intel-iommu/ecap",
		       sys, name)) {
		u->vendor = IOMMU_INTEL;
		u->caps = strtoull(val, NULL, 16);
		u->pasid = ECAP_PASID(u->caps);
		u->prs = ECAP_PRS(u->caps);
		u->scalable = ECAP_SMTS(u->caps);
	} else if (*info_attr(val, sizeof(val),
			      "%s/class/iommu/%s/amd-iommu/features", sys,
			      name)) {
		/* "efr" or "efr:efr2": strtoull stops at the colon. */
		u->vendor = IOMMU_AMD;
		u->caps = strtoull(val, NULL, 16);
		u->pasid = u->caps & AMD_FEATURE_GT;
		u->prs = u->caps & AMD_FEATURE_PPR;
		u->scalable = true;
	} else {
		u->vendor = IOMMU_OTHER;
		return;
	}
	u->have_caps = true;
}

int iommu_units(struct iommu_unit *u, int max)
{
	char path[PATH_MAX];
	struct dirent **names;
	int n, got = 0;

	snprintf(path, sizeof(path), "%s/class/iommu", info_paths.sys);
	n = scandir(path, &names, NULL, alphasort);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && got < max)
			unit_read(names[i]->d_name, &u[got++]);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	return got;
}

/* What of SVA's needs the unit lacks ("" if nothing or unknown). */
const char *iommu_unit_lacks(const struct iommu_unit *u, char *buf,
			     size_t len)
{
	buf[0] = '\0';
	if (!u->have_caps)
		return buf;
	if (u->vendor == IOMMU_INTEL)
		snprintf(buf, len, "%s%s%s", u->scalable ? "" : " scalable mode",
			 u->pasid ? "" : " PASID", u->prs ? "" : " PRS");
	else
		snprintf(buf, len, "%s%s", u->pasid ? "" : " GT (guest translation)",
			 u->prs ? "" : " PPR");
	if (buf[0] == ' ')
		memmove(buf, buf + 1, strlen(buf));
	return buf;
}

void uapi_nodes_read(struct uapi_nodes *n)
{
	const char *dev = info_paths.dev;

	n->iommufd = info_exists("%s/iommu", dev);
	n->vfio_container = info_exists("%s/vfio/vfio", dev);
	n->vfio_cdev_dir = info_exists("%s/vfio/devices", dev);
}

/* vfioN under the device's vfio-dev directory (only with vfio-pci bound). */
static void vfio_cdev_name(const char *bdf, char *buf, size_t len)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/vfio-dev",
		 info_paths.sys, bdf);
	d = opendir(path);
	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4) && strlen(de->d_name) < len)
			memcpy(buf, de->d_name, strlen(de->d_name) + 1);
	if (d)
		closedir(d);
}

static void why_add(struct dev_uapi *u, const char *msg)
{
	size_t used = strlen(u->why);

	snprintf(u->why + used, sizeof(u->why) - used, "%s%s",
		 used ? "; " : "", msg);
}

void dev_uapi_read(const char *bdf, const char *drv, const char *gid,
		   bool viable, const struct uapi_nodes *n, struct dev_uapi *u)
{
	const char *dev = info_paths.dev;
	char cdev[32];

	memset(u, 0, sizeof(*u));
	if (strcmp(drv, "vfio-pci")) {
		snprintf(u->why, sizeof(u->why), "not bound to vfio-pci: %s%s",
			 *drv ? "driver " : "no driver", drv);
		return;
	}
	vfio_cdev_name(bdf, cdev, sizeof(cdev));
	if (*cdev && info_exists("%s/vfio/devices/%s", dev, cdev) &&
	    n->iommufd)
		snprintf(u->cdev, sizeof(u->cdev), "/dev/vfio/devices/%s",
			 cdev);
	else if (*cdev && info_exists("%s/vfio/devices/%s", dev, cdev))
		why_add(u, "VFIO cdev needs iommufd: no /dev/iommu");
	else
		why_add(u, "no VFIO cdev (kernel without VFIO_DEVICE_CDEV)");
	if (!*gid || !info_exists("%s/vfio/%s", dev, gid))
		why_add(u, "no VFIO group node");
	else if (!n->vfio_container)
		why_add(u, "no legacy container /dev/vfio/vfio");
	else if (!viable)
		why_add(u, "group not viable: a member has a host driver");
	else
		snprintf(u->group_node, sizeof(u->group_node), "/dev/vfio/%s",
			 gid);
}
