// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The iommufd container: /dev/iommu, one IOAS (I/O address space) of our
 * own, and the device's VFIO cdev (/dev/vfio/devices/vfioN, N from
 * /sys/bus/pci/devices/<bdf>/vfio-dev/) bound to the iommufd
 * (VFIO_DEVICE_BIND_IOMMUFD) and attached to the IOAS
 * (VFIO_DEVICE_ATTACH_IOMMUFD_PT), as QEMU's iommufd backend does.
 * Mappings are IOMMU_IOAS_MAP at a fixed IOVA (== VA) and IOMMU_IOAS_UNMAP;
 * iommufd pins what it maps and accounts it in the process's pinned_vm
 * (and the user's locked_vm). Its reserved windows are what the IOAS
 * refuses: the complement of IOMMU_IOAS_IOVA_RANGES below the IOMMU's
 * aperture end, named by the group's sysfs list where they match one.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "iommufd_uapi.h"
#include "vfio.h"

/* Most allowed IOVA ranges read (each reserved window splits one). */
#define IOMMUFD_RANGES_MAX (SVA_REGIONS_MAX + 1)

/* The device's VFIO cdev, "/dev/vfio/devices/vfioN", into @out; 0 or
 * -ENODEV with why in @why. */
static int cdev_path(const struct vfio_dev *vd, char *out, size_t len,
		     char *why, size_t wlen)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int err = -ENODEV;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev",
		 vd->bdf);
	d = opendir(dir);
	if (!d) {
		snprintf(why, wlen, "%s: %s (not bound to vfio-pci?)", dir,
			 strerror(errno));
		return -ENODEV;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "vfio", 4))
			continue;
		snprintf(out, len, "/dev/vfio/devices/%.32s", e->d_name);
		err = 0;
		break;
	}
	closedir(d);
	if (err) {
		snprintf(why, wlen, "%s lists no vfio device", dir);
		return err;
	}
	if (access(out, R_OK | W_OK)) {
		snprintf(why, wlen, "no VFIO cdev %s (%s: kernel without VFIO_DEVICE_CDEV?)",
			 out, strerror(errno));
		return -ENODEV;
	}
	return 0;
}

static int iommufd_probe(const struct vfio_dev *vd, char *why, size_t len)
{
	char path[64];

	if (access("/dev/iommu", R_OK | W_OK)) {
		snprintf(why, len, "no /dev/iommu (%s: kernel without IOMMUFD?)",
			 strerror(errno));
		return -ENODEV;
	}
	return cdev_path(vd, path, sizeof(path), why, len);
}

static int iommufd_open(struct vfio_dev *vd, int *dev_fd)
{
	struct vfio_container *c = &vd->cont;
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	char path[64], why[160];
	int err;

	err = cdev_path(vd, path, sizeof(path), why, sizeof(why));
	if (err)
		return sva_err(err, "%s: %s", vd->bdf, why);
	c->fd = sva__fd_open("/dev/iommu", O_RDWR);
	if (c->fd < 0)
		return sva_err(c->fd, "/dev/iommu: %s (kernel without IOMMUFD?)",
			       strerror(-c->fd));
	if (ioctl(c->fd, IOMMU_IOAS_ALLOC, &alloc))
		return sva_err(-errno, "/dev/iommu: IOMMU_IOAS_ALLOC: %s",
			       strerror(errno));
	c->ioas = alloc.out_ioas_id;
	*dev_fd = sva__fd_open(path, O_RDWR);
	if (*dev_fd < 0)
		return sva_err(*dev_fd, "%s (%s): %s", path, vd->bdf,
			       strerror(-*dev_fd));
	bind.iommufd = c->fd;
	/* A refused bind, for the test of the default's fallback. */
	if (sva__inject(SVA_INJECT_VFIO_IOMMUFD_BIND))
		return sva_err(-EBUSY, "%s: VFIO_DEVICE_BIND_IOMMUFD: %s (injected)",
			       path, strerror(EBUSY));
	/* iommufd claims the whole group for user DMA here: -EBUSY if a
	 * member is on a host driver (checked before, in sysfs, by name). */
	if (ioctl(*dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		return sva_err(-errno, "%s: VFIO_DEVICE_BIND_IOMMUFD: %s%s",
			       path, strerror(errno), errno == EBUSY ?
			       " (IOMMU group not viable, or the device open through its group?)" :
			       "");
	at.pt_id = c->ioas;
	if (ioctl(*dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at))
		return sva_err(-errno, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u: %s",
			       path, c->ioas, strerror(errno));
	c->attached = true;
	return 0;
}

static void iommufd_close(struct vfio_dev *vd)
{
	/* The device's fd is closed: unbound and detached. The IOAS goes
	 * with the iommufd. */
	sva__fd_close(vd->cont.fd);
	vd->cont.fd = -1;
	vd->cont.attached = false;
}

static int iommufd_map(struct vfio_dev *vd, uint64_t iova, uint64_t len,
		       unsigned int perm)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA |
			 (perm & VFIO_MAP_READ ? IOMMU_IOAS_MAP_READABLE : 0) |
			 (perm & VFIO_MAP_WRITE ? IOMMU_IOAS_MAP_WRITEABLE : 0),
		.ioas_id = vd->cont.ioas,
		.user_va = iova,
		.length = len,
		.iova = iova,
	};

	return ioctl(vd->cont.fd, IOMMU_IOAS_MAP, &m) ? -errno : 0;
}

static int64_t iommufd_unmap(struct vfio_dev *vd, uint64_t iova, uint64_t len)
{
	struct iommu_ioas_unmap um = {
		.size = sizeof(um),
		.ioas_id = vd->cont.ioas,
		.iova = iova,
		.length = len,
	};

	if (ioctl(vd->cont.fd, IOMMU_IOAS_UNMAP, &um))
		return -errno;
	return (int64_t)um.length;
}

static int64_t iommufd_unmap_all(struct vfio_dev *vd)
{
	/* iova 0, length U64_MAX: everything (nothing mapped: 0 bytes). */
	return iommufd_unmap(vd, 0, UINT64_MAX);
}

/* The sysfs type of a reserved window [s, e], if the group lists one
 * that overlaps it; else SVA_REGION_RESERVED. */
static uint32_t hole_type(const struct sva_region *sys, int nsys, uint64_t s,
			  uint64_t e)
{
	for (int i = 0; i < nsys; i++)
		if (sys[i].start <= e && s <= sys[i].end)
			return sys[i].type;
	return SVA_REGION_RESERVED;
}

static int iommufd_reserved(struct vfio_dev *vd, struct sva_region *out,
			    unsigned int max)
{
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = vd->cont.ioas,
		.num_iovas = IOMMUFD_RANGES_MAX,
	};
	struct sva_region sys[SVA_REGIONS_MAX];
	struct iommu_iova_range *r;
	unsigned int n = 0;
	uint64_t next = 0;
	int nsys, ret;

	r = calloc(IOMMUFD_RANGES_MAX, sizeof(*r));
	if (!r)
		return -ENOMEM;
	q.allowed_iovas = (uintptr_t)r;
	ret = ioctl(vd->cont.fd, IOMMU_IOAS_IOVA_RANGES, &q);
	/* More ranges than room: the kernel said how many (EMSGSIZE). */
	if (ret && errno == EMSGSIZE) {
		struct iommu_iova_range *more = calloc(q.num_iovas, sizeof(*r));

		free(r);
		r = more;
		if (!r)
			return -ENOMEM;
		q.allowed_iovas = (uintptr_t)r;
		ret = ioctl(vd->cont.fd, IOMMU_IOAS_IOVA_RANGES, &q);
	}
	if (ret) {
		int err = -errno;

		free(r);
		return sva_err(err, "%s: IOMMU_IOAS_IOVA_RANGES of IOAS %u: %s",
			       vd->bdf, vd->cont.ioas, strerror(-err));
	}
	/* Only to name the windows: iommufd's ranges are what it enforces. */
	nsys = vfio_sysfs_regions(vd, sys, SVA_REGIONS_MAX);
	if (nsys < 0)
		nsys = 0;
	/*
	 * The holes between allowed ranges (sorted, disjoint). What lies
	 * past the last one is beyond the IOMMU's address width, not a
	 * window of the group: left out, as the type1 container's list
	 * (sysfs) leaves it out.
	 */
	for (unsigned int i = 0; i < q.num_iovas; i++) {
		if (r[i].start > next) {
			uint64_t s = next, e = r[i].start - 1;

			if (n < max)
				out[n] = (struct sva_region){
					.start = s, .end = e,
					.type = hole_type(sys, nsys, s, e) };
			n++;
		}
		if (r[i].last == UINT64_MAX)
			break;
		next = r[i].last + 1;
	}
	free(r);
	return (int)n;
}

const struct vfio_container_ops vfio_iommufd_ops = {
	.name = "iommufd",
	.probe = iommufd_probe,
	.open = iommufd_open,
	.close = iommufd_close,
	.map = iommufd_map,
	.unmap = iommufd_unmap,
	.unmap_all = iommufd_unmap_all,
	.reserved = iommufd_reserved,
};
