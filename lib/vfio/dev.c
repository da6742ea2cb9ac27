// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The VFIO backend's devices: QEMU edu devices bound to vfio-pci, named
 * vfio0, vfio1, ... in PCI address order, opened through an IOMMU
 * container (container.c: iommufd or the legacy type1), as a user-space
 * driver does: the group must be viable (every member bound to vfio-pci,
 * or to no driver, pci-stub or pcieport, as drivers/vfio/group.c allows);
 * the container's reserved regions are the device's reserved windows;
 * BAR0 is mapped for the engine's registers (engine.c).
 *
 * Every fd is a tracked one (sva__fd_*), closed in a child of fork(), and
 * BAR0 is MADV_DONTFORK: a child keeps nothing of the device.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfio.h"

#define PCI_DEVS "/sys/bus/pci/devices"

/* The basename of the symlink @dir/@link points to, or "" if none. */
static void link_base(const char *dir, const char *link, char *out,
		      size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	const char *b;

	out[0] = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, link);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return;
	target[n] = 0;
	b = strrchr(target, '/');
	b = b ? b + 1 : target;
	if (strlen(b) < len)
		memcpy(out, b, strlen(b) + 1);
}

static unsigned long sysfs_hex(const char *dir, const char *file)
{
	char path[PATH_MAX], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtoul(buf, NULL, 16);
}

static int bdf_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

/*
 * The edu devices bound to vfio-pci, sorted by address, into @bdfs (room
 * for VFIO_MAX_DEVS); how many. @unbound counts edu devices on another
 * driver or none (for the message when there is no vfio0).
 */
static int edu_list(char bdfs[][32], unsigned int *unbound)
{
	char dir[PATH_MAX], drv[64];
	struct dirent *e;
	unsigned int n = 0;
	DIR *d;

	*unbound = 0;
	d = opendir(PCI_DEVS);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) >= 32)
			continue;
		snprintf(dir, sizeof(dir), PCI_DEVS "/%s", e->d_name);
		if (sysfs_hex(dir, "vendor") != VFIO_EDU_VENDOR ||
		    sysfs_hex(dir, "device") != VFIO_EDU_DEVICE)
			continue;
		link_base(dir, "driver", drv, sizeof(drv));
		if (strcmp(drv, "vfio-pci")) {
			(*unbound)++;
			continue;
		}
		if (n < VFIO_MAX_DEVS)
			snprintf(bdfs[n++], 32, "%s", e->d_name);
	}
	closedir(d);
	qsort(bdfs, n, sizeof(bdfs[0]), bdf_cmp);
	return (int)n;
}

static int vfio_enumerate(struct sva_dev_desc *descs, unsigned int max)
{
	char bdfs[VFIO_MAX_DEVS][32];
	unsigned int unbound;
	int n = edu_list(bdfs, &unbound);

	/* Neither container's node: VFIO is not there (not loaded). */
	if (access("/dev/vfio/vfio", R_OK | W_OK) &&
	    access("/dev/iommu", R_OK | W_OK))
		return 0;
	for (int i = 0; i < n && (unsigned int)i < max; i++) {
		memset(&descs[i], 0, sizeof(descs[i]));
		snprintf(descs[i].name, sizeof(descs[i].name), "vfio%d", i);
		snprintf(descs[i].backend, sizeof(descs[i].backend), "vfio");
	}
	return n;
}

/*
 * Is the group viable, as VFIO requires before it lets a device of it be
 * used? Every member bound to vfio-pci, or to no driver, or to pci-stub
 * or pcieport (bridges). -EBUSY naming the first member that isn't.
 */
static int group_viable(int group_id)
{
	static const char *const ok[] = { "", "vfio-pci", "pci-stub",
					  "pcieport" };
	char dir[128], mdir[PATH_MAX], drv[64];
	struct dirent *e;
	int err = 0;
	DIR *d;

	snprintf(dir, sizeof(dir), "/sys/kernel/iommu_groups/%d/devices",
		 group_id);
	d = opendir(dir);
	if (!d)
		return sva_err(-ENODEV, "IOMMU group %d: %s: %s", group_id,
			       dir, strerror(errno));
	while (!err && (e = readdir(d))) {
		bool fine = false;

		if (e->d_name[0] == '.')
			continue;
		snprintf(mdir, sizeof(mdir), "%s/%s", dir, e->d_name);
		link_base(mdir, "driver", drv, sizeof(drv));
		for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
			fine |= !strcmp(drv, ok[i]);
		if (!fine)
			err = sva_err(-EBUSY, "IOMMU group %d is not viable: its member %s is bound to %s, not vfio-pci (unbind it, or bind it to vfio-pci)",
				      group_id, e->d_name, drv);
	}
	closedir(d);
	return err;
}

static int config_rw(struct vfio_dev *vd, int fd, bool write, void *buf,
		     size_t len, off_t at)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri),
				       .index = VFIO_PCI_CONFIG_REGION_INDEX };
	ssize_t n;

	(void)vd;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return -errno;
	n = write ? pwrite(fd, buf, len, (off_t)ri.offset + at) :
		    pread(fd, buf, len, (off_t)ri.offset + at);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* BAR0 mapped (not inherited by a child), memory decoding and bus
 * mastering on (DMA goes nowhere without it), and the device is edu. */
static int device_setup(struct vfio_dev *vd, int fd)
{
	struct vfio_region_info ri = { .argsz = sizeof(ri),
				       .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint16_t cmd;
	uint32_t ident;
	void *p;
	int err;

	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &ri))
		return sva_err(-errno, "%s: BAR0 region info: %s", vd->bdf,
			       strerror(errno));
	if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size < 0x100)
		return sva_err(-ENODEV, "%s: BAR0 (%llu bytes) can't be mapped",
			       vd->bdf, (unsigned long long)ri.size);
	p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		 (off_t)ri.offset);
	if (p == MAP_FAILED)
		return sva_err(-errno, "%s: mmap BAR0: %s", vd->bdf,
			       strerror(errno));
	/* A child's copy of the mapping would keep the device open. */
	if (madvise(p, ri.size, MADV_DONTFORK)) {
		err = sva_err(-errno, "%s: MADV_DONTFORK on BAR0: %s",
			      vd->bdf, strerror(errno));
		munmap(p, ri.size);
		return err;
	}
	vd->bar0 = p;
	vd->bar0_len = ri.size;
	ident = *(volatile uint32_t *)(vd->bar0 + EDU_REG_IDENT);
	if (ident != VFIO_EDU_IDENT)
		return sva_err(-ENODEV, "%s: identification %#x, not edu's %#x",
			       vd->bdf, ident, VFIO_EDU_IDENT);
	err = config_rw(vd, fd, false, &cmd, sizeof(cmd), 4);
	if (!err) {
		cmd |= 0x2 | 0x4;	/* PCI_COMMAND_MEMORY | _MASTER */
		err = config_rw(vd, fd, true, &cmd, sizeof(cmd), 4);
	}
	if (err)
		return sva_err(err, "%s: enabling bus mastering: %s", vd->bdf,
			       strerror(-err));
	return 0;
}

static void vfio_dev_free(struct vfio_dev *vd)
{
	if (vd->bar0)
		munmap((void *)vd->bar0, vd->bar0_len);
	/* The device first (type1: then the group leaves its container;
	 * iommufd: it is unbound from the IOAS). */
	sva__fd_close(vd->dev->fd);
	vd->dev->fd = -1;
	vfio_container_close(vd);
	pthread_mutex_destroy(&vd->engine_lock);
	free(vd);
}

static int vfio_open(struct sva_dev *dev, const char *name, int fd)
{
	char bdfs[VFIO_MAX_DEVS][32], dir[PATH_MAX], grp[32], *end;
	struct sva_dev_caps *caps = &dev->caps;
	struct vfio_dev *vd;
	unsigned int unbound;
	unsigned long idx;
	int n, err;

	/* A VFIO fd of the caller's: not yet (the group's container is
	 * the caller's to set up). */
	if (!name || strncmp(name, "vfio", 4))
		return -ENODEV;
	(void)fd;
	idx = strtoul(name + 4, &end, 10);
	if (!name[4] || *end || idx >= VFIO_MAX_DEVS)
		return -ENODEV;
	n = edu_list(bdfs, &unbound);
	if ((int)idx >= n)
		return sva_err(-ENODEV, "%s: %d edu device(s) bound to vfio-pci%s",
			       name, n, unbound ? ", others bound to another driver or none (bind them to vfio-pci)" : "");
	if (dev->opts.reserved)
		return sva_err(-EOPNOTSUPP, "%s: reserved windows are the IOMMU group's, not the caller's",
			       name);
	if (dev->opts.flags & SVA_DEV_NO_ATC)
		return sva_err(-EOPNOTSUPP, "%s: the IOMMU caches translations (IOTLB)",
			       name);
	vd = sva__zalloc(sizeof(*vd));
	if (!vd)
		return -ENOMEM;
	vd->dev = dev;
	vd->cont.fd = vd->cont.group = -1;
	pthread_mutex_init(&vd->engine_lock, NULL);
	snprintf(vd->bdf, sizeof(vd->bdf), "%s", bdfs[idx]);
	snprintf(dir, sizeof(dir), PCI_DEVS "/%s", vd->bdf);
	link_base(dir, "iommu_group", grp, sizeof(grp));
	if (!grp[0]) {
		err = sva_err(-ENODEV, "%s (%s): no IOMMU group (is the IOMMU on?)",
			      name, vd->bdf);
		goto free;
	}
	vd->group_id = atoi(grp);
	/* Both containers: iommufd's bind would refuse such a group too,
	 * but only sysfs can name the member in the way. */
	err = group_viable(vd->group_id);
	if (!err)
		err = vfio_container_open(vd, &dev->fd);
	if (err)
		goto free;
	err = device_setup(vd, dev->fd);
	if (err)
		goto free;

	if (!dev->opts.queue_depth)
		dev->opts.queue_depth = 64;
	snprintf(dev->name, sizeof(dev->name), "%s", name);
	/* No PASID, no ATS, no PRI: the domain mirrors the process. A
	 * chunk's pages are made present before it runs (engine.c), as a
	 * page request answered would: every descriptor blocks on its
	 * faults, so SVA_DESC_BLOCK_ON_FAULT is accepted and changes
	 * nothing (a page that can't be made present still ends it). */
	caps->flags = SVA_CAP_MIRROR | SVA_CAP_BLOCK_ON_FAULT;
	caps->pasid_bits = 0;
	caps->page_sizes = 1ull << 12;
	caps->queue_depth = dev->opts.queue_depth;
	caps->prq_depth = 0;
	caps->atc_entries = 0;
	caps->fault_batch = 1;
	caps->ops = (1u << SVA_OP_NOP) | (1u << SVA_OP_COPY) |
		    (1u << SVA_OP_FILL) | (1u << SVA_OP_COMPARE) |
		    (1u << SVA_OP_CRC32C);
	/* Each 2 KiB is ~100 ms of the device's time. */
	caps->max_xfer = 1ull << 20;
	snprintf(caps->container, sizeof(caps->container), "%s",
		 vd->cont.ops->name);
	snprintf(caps->pci_addr, sizeof(caps->pci_addr), "%s", vd->bdf);
	dev->priv = vd;
	pr_debug("%s: %s, IOMMU group %d, %s container\n", name, vd->bdf,
		 vd->group_id, vd->cont.ops->name);
	return 0;
free:
	vfio_dev_free(vd);
	return err;
}

static void vfio_close(struct sva_dev *dev)
{
	vfio_dev_free(dev->priv);
	dev->priv = NULL;
	sim_mm_spare_drop();
}

/*
 * The group's reserved regions, as sysfs lists them ("0x00000000fee00000
 * 0x00000000feefffff msi"), merged where they overlap. direct-relaxable
 * ones are left out: VFIO's type1 maps over them (vfio_iommu_resv_exclude()
 * keeps them usable), and iommufd does not reserve them either
 * (iopt_table_enforce_dev_resv_regions()), so DMA there is the process's.
 */
int vfio_sysfs_regions(const struct vfio_dev *vd, struct sva_region *out,
		       unsigned int max)
{
	struct sva_region r[SVA_REGIONS_MAX];
	unsigned long long s, e;
	unsigned int n = 0, m = 0;
	char path[PATH_MAX], type[32];
	FILE *f;

	snprintf(path, sizeof(path),
		 "/sys/kernel/iommu_groups/%d/reserved_regions", vd->group_id);
	f = fopen(path, "re");
	if (!f)
		return sva_err(-errno, "%s: %s", path, strerror(errno));
	while (n < SVA_REGIONS_MAX &&
	       fscanf(f, "%llx %llx %31s", &s, &e, type) == 3) {
		uint32_t t = !strcmp(type, "msi") ? SVA_REGION_MSI :
			     !strcmp(type, "direct") ? SVA_REGION_DIRECT :
			     !strcmp(type, "reserved") ? SVA_REGION_RESERVED : 0;

		if (!t || s > e)
			continue;	/* direct-relaxable, or unknown */
		r[n++] = (struct sva_region){ .start = s, .end = e, .type = t };
	}
	fclose(f);
	/* Merge: the core wants them disjoint. */
	for (unsigned int i = 0; i < n; i++) {
		bool merged = false;

		for (unsigned int j = 0; j < m && !merged; j++) {
			if (r[j].start <= r[i].end && r[i].start <= r[j].end) {
				r[j].start = MIN(r[j].start, r[i].start);
				r[j].end = MAX(r[j].end, r[i].end);
				merged = true;
			}
		}
		if (!merged)
			r[m++] = r[i];
	}
	if (max)
		memcpy(out, r, MIN(m, max) * sizeof(*out));
	return (int)m;
}

/* The windows the device's container enforces. */
static int vfio_reserved_regions(struct sva_dev *dev, struct sva_region *out,
				 unsigned int max)
{
	struct vfio_dev *vd = dev->priv;

	return vd->cont.ops->reserved(vd, out, max);
}

static int vfio_bind(struct sva_bind *bind)
{
	struct vfio_bind *vb;

	vb = sva__zalloc(sizeof(*vb));
	if (!vb)
		return -ENOMEM;
	vb->sb.bind = bind;
	vb->sb.foreign = true;
	vb->stage_len = SVA_PAGE_SIZE;	/* two halves of EDU_XFER */
	vb->stage = mmap(NULL, vb->stage_len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vb->stage == MAP_FAILED) {
		free(vb);
		return -ENOMEM;
	}
	bind->priv = &vb->sb;
	if (!sim_mm_get(bind)) {
		munmap(vb->stage, vb->stage_len);
		free(vb);
		bind->priv = NULL;
		return -ENOMEM;
	}
	bind->pasid = 0;	/* no PASID: requests carry the RID alone */
	return 0;
}

static void vfio_unbind(struct sva_bind *bind)
{
	struct vfio_bind *vb = vfio_bind_of(bind);

	/* The queue is drained: nothing of ours is mapped. */
	sim_mm_put(bind);
	munmap(vb->stage, vb->stage_len);
	free(vb);
}

static void vfio_sync(struct sva_bind *bind)
{
	sim_mm_sync(vfio_bind_of(bind)->sb.mm);
}

static int vfio_mirror_register(struct sva_mirror *m)
{
	/* As sim's: the events of the range, the callbacks' thread. */
	return sim_mm_mirror_register(vfio_bind_of(m->bind)->sb.mm, m);
}

static void vfio_mirror_unregister(struct sva_mirror *m)
{
	if (m->opts.invalidate)
		sim_notify_unwant(vfio_bind_of(m->bind)->sb.mm);
}

/* Make [addr, addr + len) present for @fault as a transfer would: 0 or
 * -1 (something of it can't be). */
static int populate(uint64_t addr, uint64_t len, unsigned int fault)
{
	return madvise((void *)(uintptr_t)addr, len,
		       fault & SVA_ACCESS_WRITE ? MADV_POPULATE_WRITE :
						  MADV_POPULATE_READ);
}

/*
 * What the domain would map: the CPU page table (it is mapped from there
 * at each transfer). A snapshot that asks for faults makes the pages not
 * yet as asked present as a transfer would (MADV_POPULATE_*), run by run
 * as sim's page groups, and a run that fails page by page: one page that
 * can't be (PROT_NONE, read-only for a write, a hole) leaves the others
 * made present, and the run counts in faults_failed (else
 * faults_resolved), as on the other backends.
 */
static int vfio_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
			 uint8_t *states, unsigned int fault)
{
	struct sim_mm *mm = vfio_bind_of(m->bind)->sb.mm;
	uint8_t want = fault & SVA_ACCESS_WRITE ?
		       SVA_PAGE_VALID | SVA_PAGE_WRITE : SVA_PAGE_VALID;
	uint64_t n = len >> SVA_PAGE_SHIFT, i = 0, j;
	int err;

	err = sim_mm_snapshot(mm, addr, len, states);
	if (err || !fault)
		return err;
	while (i < n) {
		if ((states[i] & want) == want) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && (states[j] & want) != want; j++)
			;
		err = populate(addr + (i << SVA_PAGE_SHIFT),
			       (j - i) << SVA_PAGE_SHIFT, fault);
		for (uint64_t k = i; err && k < j; k++)
			populate(addr + (k << SVA_PAGE_SHIFT), SVA_PAGE_SIZE,
				 fault);
		sva__count(m->bind, SVA_C_PAGE_GROUPS, 1);
		sva__count(m->bind, err ? SVA_C_FAULTS_FAILED :
					  SVA_C_FAULTS_RESOLVED, 1);
		i = j;
	}
	return sim_mm_snapshot(mm, addr, len, states);
}

const struct sva_backend_ops sva_vfio_ops = {
	.name = "vfio",
	.enumerate = vfio_enumerate,
	.open = vfio_open,
	.close = vfio_close,
	.bind = vfio_bind,
	.unbind = vfio_unbind,
	.sync = vfio_sync,
	.exec = vfio_exec,
	.exec_anywhere = false,
	.mirror_register = vfio_mirror_register,
	.mirror_unregister = vfio_mirror_unregister,
	.snapshot = vfio_snapshot,
	.reserved_regions = vfio_reserved_regions,
};
