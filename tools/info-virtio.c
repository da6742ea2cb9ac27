// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * virtio devices and whether they go through the IOMMU at all.
 *
 * A virtio device that has not negotiated VIRTIO_F_ACCESS_PLATFORM (bit 33,
 * virtio spec 6) DMAs with guest physical addresses: the driver bypasses the
 * DMA API and the device bypasses any IOMMU (vring_use_dma_api() in
 * drivers/virtio/virtio_ring.c). Such a device can never share a process's
 * address space. sysfs shows the negotiated features as a string of '0'
 * and '1', bit i at index i (drivers/virtio/virtio.c, features_show()).
 * A virtio-pci device's parent in sysfs is its PCI function.
 */
#include <dirent.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "info.h"

static void virtio_read(const char *name, struct virtio_info *v)
{
	const char *sys = info_paths.sys;
	char path[PATH_MAX], real[PATH_MAX], feat[1024];

	memset(v, 0, sizeof(*v));
	info_copy(v->name, sizeof(v->name), name);
	info_attr(v->device_id, sizeof(v->device_id),
		  "%s/bus/virtio/devices/%s/device", sys, name);
	info_attr(feat, sizeof(feat), "%s/bus/virtio/devices/%s/features",
		  sys, name);
	v->features_known = strspn(feat, "01") == strlen(feat) && *feat;
	v->access_platform = v->features_known &&
			     strlen(feat) > VIRTIO_F_ACCESS_PLATFORM &&
			     feat[VIRTIO_F_ACCESS_PLATFORM] == '1';
	snprintf(path, sizeof(path), "%s/bus/virtio/devices/%s", sys, name);
	if (!realpath(path, real))
		return;
	/* dirname() of the device is its parent; a BDF there is virtio-pci. */
	info_copy(path, sizeof(path), basename(dirname(real)));
	if (info_is_bdf(path))
		info_copy(v->parent, sizeof(v->parent), path);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strverscmp((*a)->d_name, (*b)->d_name);
}

/* The virtio devices, in name order (virtio2 before virtio10). */
int virtio_scan(struct virtio_info *v, int max)
{
	char path[PATH_MAX];
	struct dirent **names;
	int n, got = 0;

	snprintf(path, sizeof(path), "%s/bus/virtio/devices", info_paths.sys);
	n = scandir(path, &names, NULL, by_name);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && got < max)
			virtio_read(names[i]->d_name, &v[got++]);
		free(names[i]);
	}
	if (n >= 0)
		free(names);
	return got;
}

const struct virtio_info *virtio_of_pci(const struct virtio_info *v, int n,
					const char *bdf)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].parent, bdf))
			return &v[i];
	return NULL;
}

/* Device IDs: linux/virtio_ids.h (virtio spec 5, "Device Types"). */
const char *virtio_kind(const char *device_id)
{
	static const char *const kinds[] = {
		[1] = "net", [2] = "block", [3] = "console", [4] = "entropy",
		[5] = "balloon", [8] = "scsi", [9] = "9p", [16] = "gpu",
		[18] = "input", [19] = "vsock", [20] = "crypto", [23] = "iommu",
		[24] = "mem", [25] = "sound", [26] = "fs", [27] = "pmem",
	};
	unsigned long id = strtoul(device_id, NULL, 0);

	if (id < ARRAY_SIZE(kinds) && kinds[id])
		return kinds[id];
	return "other";
}
