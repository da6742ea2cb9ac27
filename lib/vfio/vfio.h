/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * The VFIO backend (vfio0, ...): a real PCI device doing real DMA through
 * a real IOMMU, QEMU's edu device bound to vfio-pci, with its IOMMU domain
 * kept a mirror of the process at IOVA == VA (the "no-SVA" fallback of a
 * device without PASID/PRI). Its pieces, one file each:
 *  - dev.c:    enumeration, group viability, BAR0, the ops table;
 *  - container.c: the IOMMU container behind one base (as QEMU's
 *              VFIOContainerBase): which one a device uses, chosen at open;
 *  - container_type1.c: the legacy type1 container (/dev/vfio/vfio and
 *              the group's /dev/vfio/N);
 *  - container_iommufd.c: iommufd (/dev/iommu, an IOAS, the device's
 *              VFIO cdev bound and attached to it);
 *  - engine.c: descriptors run by the edu DMA engine, pages made present
 *              and mapped at IOVA == VA around each transfer.
 *
 * Invalidation reuses the software device's view of the mm (lib/sim/mm.c):
 * a binding is a sim_bind on the process's sim_mm, so the userfaultfd
 * events of munmap/MADV_DONTNEED/mremap reach its mirrors, and a transfer
 * holds the mm's inval_lock (read) from its map to its unmap (either
 * container's): such a call cannot return (its event is read under
 * inval_lock, write) while a mapping of the range exists. See engine.c.
 */
#ifndef SVA_VFIO_H
#define SVA_VFIO_H

#include <linux/vfio.h>

#include "../sim/sim.h"

#define VFIO_EDU_VENDOR 0x1234
#define VFIO_EDU_DEVICE 0x11e8
#define VFIO_EDU_IDENT 0x010000edu	/* BAR0 0x00: version 1.0, "edu" */

/* edu's registers in BAR0 (QEMU hw/misc/edu.c, docs/specs/edu.txt). */
#define EDU_REG_IDENT 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2		/* else RAM -> the device's buffer */
#define EDU_BUF 0x40000			/* the device's buffer, DMA side */
/*
 * The most one transfer moves. The buffer is 4 KiB, but QEMU 7.2's range
 * check is off by one and aborts the whole VM ("hardware error") on a
 * 4096-byte transfer: two halves of 2048 bytes each are used.
 */
#define EDU_XFER 2048u
/* A transfer is timed by QEMU (100 ms virtual); one not done in this long
 * is a dead device. */
#define EDU_TIMEOUT_NS 10000000000ull

#define VFIO_MAX_DEVS 8

struct vfio_dev;

/* The access a mapping grants the device. */
#define VFIO_MAP_READ 0x1u
#define VFIO_MAP_WRITE 0x2u

/*
 * An IOMMU container: what the engine and the rest of the backend see of
 * type1 and iommufd alike. Every call but probe() is made with the device
 * open in it; map/unmap under the device's engine_lock.
 */
struct vfio_container_ops {
	const char *name;		/* "type1", "iommufd" */
	/* Could the device be opened through it (its nodes there, the
	 * device bound to vfio-pci)? 0, or -errno with the reason written
	 * into @why (nothing logged: a default may fall back). */
	int (*probe)(const struct vfio_dev *vd, char *why, size_t len);
	/* The container with the device in it, and the device's fd in
	 * *dev_fd: 0 or -errno with a message. A failure leaves what it
	 * made for close(). */
	int (*open)(struct vfio_dev *vd, int *dev_fd);
	/* After the device's fd is closed. */
	void (*close)(struct vfio_dev *vd);
	/* [iova, iova + len) maps the process's [iova, ...) (IOVA == VA),
	 * VFIO_MAP_READ/WRITE: 0 or -errno (nothing mapped then). */
	int (*map)(struct vfio_dev *vd, uint64_t iova, uint64_t len,
		   unsigned int perm);
	/* Unmap exactly [iova, iova + len): the bytes unmapped, or -errno. */
	int64_t (*unmap)(struct vfio_dev *vd, uint64_t iova, uint64_t len);
	/* Unmap everything: the bytes that were still mapped, or -errno
	 * (-EOPNOTSUPP: the container can't tell). */
	int64_t (*unmap_all)(struct vfio_dev *vd);
	/* The device's reserved windows, as sva_backend_ops. */
	int (*reserved)(struct vfio_dev *vd, struct sva_region *out,
			unsigned int max);
};

struct vfio_container {
	const struct vfio_container_ops *ops;
	int fd;				/* /dev/vfio/vfio or /dev/iommu */
	int group;			/* type1: /dev/vfio/<group_id> */
	uint32_t ioas;			/* iommufd: the IOAS */
	bool attached;			/* iommufd: the device is in it */
	/* type1: VFIO_DMA_UNMAP_FLAG_ALL is there. */
	bool unmap_all;
};

extern const struct vfio_container_ops vfio_type1_ops;
extern const struct vfio_container_ops vfio_iommufd_ops;

/* A page this process mapped in the container (live.c). */
struct vfio_live {
	uint64_t iova;
	uint32_t perm;			/* VFIO_MAP_READ, _WRITE */
};

/* A chunk maps 5 pages at most; the rest is room for lost unmaps that
 * the sweep after the chunk finds. */
#define VFIO_LIVE_MAX 32

struct vfio_dev {
	struct sva_dev *dev;
	char bdf[32];			/* 0000:00:04.0 */
	int group_id;
	struct vfio_container cont;
	volatile uint8_t *bar0;		/* mmap of BAR0 */
	size_t bar0_len;
	/* One engine: its transfers are serialized (every binding's). */
	pthread_mutex_t engine_lock;
	/* Pages mapped in the container now (engine_lock). */
	uint64_t mapped_now;
	/* Which (engine_lock): live.c. */
	struct vfio_live live[VFIO_LIVE_MAX];
	unsigned int nlive;
	unsigned int live_lost;		/* mapped with the table full */
	/* A transfer never finished: the engine ignores register writes
	 * while one runs, so nothing more is sent to it (engine_lock). */
	bool dead;
};

/* A binding: a sim_bind first, so that sim_mm walks it as its own. */
struct vfio_bind {
	struct sim_bind sb;
	/* The library's own staging page: FILL patterns, and the bytes
	 * COMPARE/CRC32C compute on (written by the device's DMA). */
	uint8_t *stage;			/* a page: 2 * EDU_XFER */
	size_t stage_len;
};

static inline struct vfio_dev *vfio_dev_of(struct sva_bind *bind)
{
	return bind->dev->priv;
}

static inline struct vfio_bind *vfio_bind_of(struct sva_bind *bind)
{
	return (struct vfio_bind *)bind->priv;
}

/* container.c: choose the container (SVA_VFIO_CONTAINER, else iommufd
 * where it can be used, else type1) and open the device in it. */
int vfio_container_open(struct vfio_dev *vd, int *dev_fd);
void vfio_container_close(struct vfio_dev *vd);

/* dev.c: the group's reserved regions as sysfs lists them, merged,
 * direct-relaxable ones left out (both containers map over them). */
int vfio_sysfs_regions(const struct vfio_dev *vd, struct sva_region *out,
		       unsigned int max);

/*
 * live.c: the table of this process's mappings in the container, kept by
 * the engine (engine_lock), and the check of each against
 * /proc/self/maps: the number of mappings no VMA of the process holds
 * with the access the mapping grants (each reported with pr_warn() when
 * @report), or -errno. Caller holds engine_lock.
 */
void vfio_live_add(struct vfio_dev *vd, uint64_t iova, uint32_t perm);
void vfio_live_del(struct vfio_dev *vd, uint64_t iova);
int vfio_live_check(struct vfio_dev *vd, bool report);
void vfio_live_clear(struct vfio_dev *vd);

void vfio_exec(struct sva_bind *bind, const struct sva_desc *desc,
	       struct sva_completion *comp);

#endif /* SVA_VFIO_H */
