// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * VFIO's legacy type1 container: /dev/vfio/vfio, the device's group
 * (/dev/vfio/<group>) set into it, the type1(v2) IOMMU, and the device's
 * fd from the group. Mappings are VFIO_IOMMU_MAP_DMA/UNMAP_DMA; the type1
 * driver pins what it maps and accounts it in the process's locked_vm.
 * Its reserved windows are the group's sysfs list: type1 enforces the
 * same ones (vfio_iommu_resv_exclude()).
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vfio.h"

static int type1_probe(const struct vfio_dev *vd, char *why, size_t len)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/vfio/%d", vd->group_id);
	if (access("/dev/vfio/vfio", R_OK | W_OK)) {
		snprintf(why, len, "no /dev/vfio/vfio (%s)", strerror(errno));
		return -ENODEV;
	}
	if (access(path, R_OK | W_OK)) {
		snprintf(why, len, "no group node %s (%s)", path,
			 strerror(errno));
		return -ENODEV;
	}
	return 0;
}

static int type1_open(struct vfio_dev *vd, int *dev_fd)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	struct vfio_container *c = &vd->cont;
	char path[64];
	int type;

	c->fd = sva__fd_open("/dev/vfio/vfio", O_RDWR);
	if (c->fd < 0)
		return sva_err(c->fd, "/dev/vfio/vfio: %s (vfio and vfio_iommu_type1 loaded?)",
			       strerror(-c->fd));
	if (ioctl(c->fd, VFIO_GET_API_VERSION) != VFIO_API_VERSION)
		return sva_err(-EPROTO, "/dev/vfio/vfio: VFIO API version is not %d",
			       VFIO_API_VERSION);
	type = ioctl(c->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0 ?
	       VFIO_TYPE1v2_IOMMU :
	       ioctl(c->fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU) > 0 ?
	       VFIO_TYPE1_IOMMU : 0;
	if (!type)
		return sva_err(-EOPNOTSUPP, "/dev/vfio/vfio: no type1 IOMMU (is vfio_iommu_type1 loaded?)");
	snprintf(path, sizeof(path), "/dev/vfio/%d", vd->group_id);
	c->group = sva__fd_open(path, O_RDWR);
	if (c->group < 0)
		return sva_err(c->group, "%s: %s", path, strerror(-c->group));
	if (ioctl(c->group, VFIO_GROUP_GET_STATUS, &st))
		return sva_err(-errno, "%s: group status: %s", path,
			       strerror(errno));
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE))
		return sva_err(-EBUSY, "IOMMU group %d is not viable (VFIO says so: a member is bound to a host driver)",
			       vd->group_id);
	if (ioctl(c->group, VFIO_GROUP_SET_CONTAINER, &c->fd))
		return sva_err(-errno, "%s: set container: %s", path,
			       strerror(errno));
	if (ioctl(c->fd, VFIO_SET_IOMMU, type))
		return sva_err(-errno, "/dev/vfio/vfio: set type1 IOMMU: %s",
			       strerror(errno));
	c->unmap_all = ioctl(c->fd, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL) > 0;
	*dev_fd = sva__fd_ioctl_arg(c->group, VFIO_GROUP_GET_DEVICE_FD,
				    vd->bdf);
	if (*dev_fd < 0)
		return sva_err(*dev_fd, "%s: get device fd: %s", vd->bdf,
			       strerror(-*dev_fd));
	return 0;
}

static void type1_close(struct vfio_dev *vd)
{
	/* The group leaves its container, then the container goes. */
	sva__fd_close(vd->cont.group);
	sva__fd_close(vd->cont.fd);
	vd->cont.group = vd->cont.fd = -1;
}

static int type1_map(struct vfio_dev *vd, uint64_t iova, uint64_t len,
		     unsigned int perm)
{
	struct vfio_iommu_type1_dma_map m = {
		.argsz = sizeof(m),
		.flags = (perm & VFIO_MAP_READ ? VFIO_DMA_MAP_FLAG_READ : 0) |
			 (perm & VFIO_MAP_WRITE ? VFIO_DMA_MAP_FLAG_WRITE : 0),
		.vaddr = iova,
		.iova = iova,
		.size = len,
	};

	return ioctl(vd->cont.fd, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
}

static int64_t type1_unmap(struct vfio_dev *vd, uint64_t iova, uint64_t len)
{
	struct vfio_iommu_type1_dma_unmap um = {
		.argsz = sizeof(um),
		.iova = iova,
		.size = len,
	};

	if (ioctl(vd->cont.fd, VFIO_IOMMU_UNMAP_DMA, &um))
		return -errno;
	return (int64_t)um.size;
}

static int64_t type1_unmap_all(struct vfio_dev *vd)
{
	struct vfio_iommu_type1_dma_unmap um = {
		.argsz = sizeof(um),
		.flags = VFIO_DMA_UNMAP_FLAG_ALL,
	};

	if (!vd->cont.unmap_all)
		return -EOPNOTSUPP;
	if (ioctl(vd->cont.fd, VFIO_IOMMU_UNMAP_DMA, &um))
		return -errno;
	return (int64_t)um.size;
}

static int type1_reserved(struct vfio_dev *vd, struct sva_region *out,
			  unsigned int max)
{
	return vfio_sysfs_regions(vd, out, max);
}

const struct vfio_container_ops vfio_type1_ops = {
	.name = "type1",
	.probe = type1_probe,
	.open = type1_open,
	.close = type1_close,
	.map = type1_map,
	.unmap = type1_unmap,
	.unmap_all = type1_unmap_all,
	.reserved = type1_reserved,
};
