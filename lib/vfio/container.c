// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Which IOMMU container a vfio device is opened through: one base, two
 * containers (struct vfio_container_ops), as QEMU's VFIOContainerBase.
 * Chosen at open, reported in sva_dev_caps().container:
 *  - SVA_VFIO_CONTAINER=type1|iommufd forces one; one that can't be used
 *    here fails the open (-EOPNOTSUPP, saying why), never falls back:
 *    the caller asked for that one;
 *  - else iommufd where /dev/iommu and the device's VFIO cdev exist (the
 *    interface VFIO's development goes on in), else the legacy type1
 *    container. A default that fails to open (a refused bind, say) falls
 *    back to the other one where it can be used, saying why: the device
 *    still works, and caps.container says which one it works in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vfio.h"

/* In order of preference. */
static const struct vfio_container_ops *const containers[] = {
	&vfio_iommufd_ops,
	&vfio_type1_ops,
};

/* Undo a failed open: the device's fd first, as vfio_dev_free() does,
 * then what the container made; ready for another one. */
static void container_undo(struct vfio_dev *vd, int *dev_fd)
{
	if (*dev_fd >= 0)
		sva__fd_close(*dev_fd);
	*dev_fd = -1;
	vd->cont.ops->close(vd);
	memset(&vd->cont, 0, sizeof(vd->cont));
	vd->cont.fd = vd->cont.group = -1;
}

int vfio_container_open(struct vfio_dev *vd, int *dev_fd)
{
	const char *want = getenv("SVA_VFIO_CONTAINER");
	const struct vfio_container_ops *ops = NULL;
	char why[ARRAY_SIZE(containers)][192];
	const char *failed = NULL;
	int err = 0, first = 0;

	vd->cont.fd = vd->cont.group = -1;
	if (want && *want) {
		for (size_t i = 0; i < ARRAY_SIZE(containers); i++)
			if (!strcmp(want, containers[i]->name))
				ops = containers[i];
		if (!ops)
			return sva_err(-EINVAL, "SVA_VFIO_CONTAINER=%s: not a container (type1 or iommufd)",
				       want);
		if (ops->probe(vd, why[0], sizeof(why[0])))
			return sva_err(-EOPNOTSUPP, "%s: container %s (SVA_VFIO_CONTAINER) can't be used here: %s",
				       vd->bdf, want, why[0]);
		/* Forced: its failure is the open's, no other is tried. */
		vd->cont.ops = ops;
		return ops->open(vd, dev_fd);
	}
	for (size_t i = 0; i < ARRAY_SIZE(containers); i++) {
		if (containers[i]->probe(vd, why[i], sizeof(why[i])))
			continue;
		if (failed)
			pr_warn("%s: the %s container (the default here) failed to open (above); falling back to %s\n",
				vd->bdf, failed, containers[i]->name);
		vd->cont.ops = ops = containers[i];
		err = ops->open(vd, dev_fd);
		if (!err)
			return 0;
		container_undo(vd, dev_fd);
		failed = failed ?: ops->name;
		first = first ?: err;
	}
	if (!ops)
		return sva_err(-ENODEV, "%s: no VFIO container can be used: %s: %s; %s: %s",
			       vd->bdf, containers[0]->name, why[0],
			       containers[1]->name, why[1]);
	/* Every container that could be used failed: the default's
	 * errno, each one's message said above. */
	return first;
}

void vfio_container_close(struct vfio_dev *vd)
{
	if (vd->cont.ops)
		vd->cont.ops->close(vd);
	vd->cont.ops = NULL;
}
