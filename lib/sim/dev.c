// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The software device's backend ops: SIM_NR_DEVICES devices "sim0".. with
 * ATS, PRI and PASID. A device's fd is a sealed memfd naming it, so it can
 * be passed to another process and opened there with sva_dev_open_fd().
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim.h"

#define SIM_FD_MAGIC "SVASIM01"

struct sim_fd_hdr {
	char magic[8];
	uint32_t index;
	uint32_t rsvd;
};

/*
 * Bounce buffers of the last binding gone, kept for the next (a process
 * binding and unbinding in a loop maps and faults in none again), and the
 * sim devices open: the last to close frees what is kept.
 */
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *bounce_spare;		/* spare_lock */
static unsigned int sim_open_count;	/* spare_lock */

static uint8_t *bounce_get(void)
{
	uint8_t *b;

	sva__mutex_lock(&spare_lock);
	b = bounce_spare;
	bounce_spare = NULL;
	sva__mutex_unlock(&spare_lock);
	return b ? b : sim_pages_alloc(2 * SIM_BOUNCE_SIZE);
}

static void bounce_put(uint8_t *b)
{
	sva__mutex_lock(&spare_lock);
	if (!bounce_spare && sim_open_count) {
		bounce_spare = b;
		b = NULL;
	}
	sva__mutex_unlock(&spare_lock);
	sim_pages_free(b, 2 * SIM_BOUNCE_SIZE);
}

static int sim_enumerate(struct sva_dev_desc *descs, unsigned int max)
{
	for (unsigned int i = 0; i < SIM_NR_DEVICES && i < max; i++) {
		memset(&descs[i], 0, sizeof(descs[i]));
		snprintf(descs[i].name, sizeof(descs[i].name), "sim%u", i);
		snprintf(descs[i].backend, sizeof(descs[i].backend), "sim");
	}
	return SIM_NR_DEVICES;
}

static int sim_fd_create(unsigned int index)
{
	struct sim_fd_hdr hdr = { .magic = SIM_FD_MAGIC, .index = index };
	char name[32];
	int fd;

	snprintf(name, sizeof(name), "sva-sim%u", index);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (write(fd, &hdr, sizeof(hdr)) != sizeof(hdr) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK |
		  F_SEAL_GROW | F_SEAL_SEAL)) {
		close(fd);
		return -EIO;
	}
	return fd;
}

/* The sim device index behind @fd, or -ENODEV if it names none. */
static int sim_fd_index(int fd)
{
	struct sim_fd_hdr hdr;
	struct stat st;

	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size != sizeof(hdr) ||
	    pread(fd, &hdr, sizeof(hdr), 0) != sizeof(hdr) ||
	    memcmp(hdr.magic, SIM_FD_MAGIC, sizeof(hdr.magic)) ||
	    hdr.index >= SIM_NR_DEVICES)
		return -ENODEV;
	return (int)hdr.index;
}

static int sim_name_index(const char *name)
{
	unsigned int idx;
	char tail;

	if (sscanf(name, "sim%u%c", &idx, &tail) != 1 ||
	    idx >= SIM_NR_DEVICES)
		return -ENODEV;
	return (int)idx;
}

/* Fill defaults in and check the caller's options. */
static int sim_opts(struct sva_dev_opts *o)
{
	if (!o->atc_entries)
		o->atc_entries = 4096;
	if (!o->prq_depth)
		o->prq_depth = 256;
	/* fault_batch 0: the fault service adapts its window (prq.c). */
	if (!o->pasid_bits)
		o->pasid_bits = 20;
	if (!o->queue_depth)
		o->queue_depth = 1024;
	if (o->atc_entries > (1u << 20) || o->prq_depth > 65536 ||
	    o->fault_batch > SIM_AROUND_MAX || o->pasid_bits > 20 ||
	    o->queue_depth > 65536 ||
	    (o->devmem_size & ~SVA_PAGE_MASK) || o->devmem_size > (16ull << 30))
		return sva_err(-EINVAL, "option out of range (atc_entries <= 2^20, prq_depth <= 65536, fault_batch <= %u, pasid_bits <= 20, queue_depth <= 65536, devmem_size a page multiple <= 16 GiB)",
			       SIM_AROUND_MAX);
	return 0;
}

static int sim_open(struct sva_dev *dev, const char *name, int fd)
{
	struct sva_dev_caps *caps = &dev->caps;
	struct sim_dev *sd;
	int idx, err;

	idx = name ? sim_name_index(name) : sim_fd_index(fd);
	if (idx < 0)
		return idx;
	err = sim_opts(&dev->opts);
	if (err)
		return err;
	sd = sva__zalloc(sizeof(*sd));
	if (!sd)
		return -ENOMEM;
	sd->dev = dev;
	sd->index = (unsigned int)idx;
	dev->fd = name ? sim_fd_create(sd->index) :
			 fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dev->fd < 0) {
		err = dev->fd == -1 ? -errno : dev->fd;
		goto free;
	}
	err = sim_atc_init(&sd->atc, dev->opts.atc_entries);
	if (err)
		goto close;
	err = sim_prq_init(sd, dev->opts.prq_depth, dev->opts.fault_batch);
	if (err)
		goto atc;

	snprintf(dev->name, sizeof(dev->name), "sim%u", sd->index);
	caps->flags = SVA_CAP_PASID | SVA_CAP_ATS | SVA_CAP_MIRROR;
	if (!(dev->opts.flags & SVA_DEV_NO_PRI))
		caps->flags |= SVA_CAP_PRI | SVA_CAP_BLOCK_ON_FAULT;
	caps->pasid_bits = dev->opts.pasid_bits;
	caps->page_sizes = (1ull << 12) | (1ull << 21);
	caps->queue_depth = dev->opts.queue_depth;
	caps->prq_depth = dev->opts.prq_depth;
	caps->atc_entries = dev->opts.flags & SVA_DEV_NO_ATC ? 0 :
			    dev->opts.atc_entries;
	/* Adaptive: the largest window the fault service populates. */
	caps->fault_batch = dev->opts.fault_batch ? dev->opts.fault_batch :
			    SIM_AROUND_MAX;
	caps->ops = (1u << SVA_OP_MAX) - 1;
	caps->max_xfer = 1ull << 30;
	sim_devmem_caps(dev);
	dev->priv = sd;
	sva__mutex_lock(&spare_lock);
	sim_open_count++;
	sva__mutex_unlock(&spare_lock);
	return 0;
atc:
	sim_atc_fini(&sd->atc);
close:
	close(dev->fd);
	dev->fd = -1;
free:
	free(sd);
	return err;
}

static void sim_close(struct sva_dev *dev)
{
	struct sim_dev *sd = dev->priv;
	uint8_t *spare = NULL;
	bool last;

	sva__mutex_lock(&spare_lock);
	last = !--sim_open_count;
	if (last) {
		spare = bounce_spare;
		bounce_spare = NULL;
	}
	sva__mutex_unlock(&spare_lock);
	sim_pages_free(spare, 2 * SIM_BOUNCE_SIZE);
	if (last)
		sim_mm_spare_drop();
	sim_prq_fini(sd);
	sim_atc_fini(&sd->atc);
	close(dev->fd);
	free(sd);
}

static int sim_bind(struct sva_bind *bind)
{
	struct sim_bind *sb;
	struct sim_mm *mm;

	sb = sva__zalloc(sizeof(*sb));
	if (!sb)
		return -ENOMEM;
	sb->bind = bind;
	sb->bounce[0] = bounce_get();
	if (!sb->bounce[0])
		goto nomem;
	sb->bounce[1] = sb->bounce[0] + SIM_BOUNCE_SIZE;
	bind->priv = sb;
	mm = sim_mm_get(bind);
	if (!mm)
		goto nomem;
	if (mm->pasid >= 1u << bind->dev->caps.pasid_bits) {
		sim_mm_put(bind);
		bounce_put(sb->bounce[0]);
		free(sb);
		return sva_err(-ENOSPC, "PASID %u does not fit %s's %u bits",
			       mm->pasid, bind->dev->name,
			       bind->dev->caps.pasid_bits);
	}
	bind->pasid = mm->pasid;
	return 0;
nomem:
	if (sb->bounce[0])
		bounce_put(sb->bounce[0]);
	free(sb);
	return -ENOMEM;
}

static void sim_unbind(struct sva_bind *bind)
{
	struct sim_bind *sb = sim_bind_of(bind);
	struct sva_bind *other;
	bool last = true;

	sva__mutex_lock(&bind->dev->lock);
	list_for_each_entry(other, &bind->dev->binds, dev_node)
		if (other != bind)
			last = false;
	sva__mutex_unlock(&bind->dev->lock);
	/* The PASID leaves the device: its ATC entries go with it. */
	if (last)
		sim_atc_invalidate(&sim_dev_of(bind)->atc, bind->pasid, 0,
				   UINT64_MAX >> SVA_PAGE_SHIFT);
	/* Its pages leave device memory while our userfaultfd still can. */
	sim_devmem_unbind(bind, last);
	sim_mm_put(bind);
	if (sb->bounce[0])
		bounce_put(sb->bounce[0]);
	free(sb);
}

static void sim_reset(struct sva_dev *dev)
{
	struct sim_dev *sd = dev->priv;

	sim_atc_flush(&sd->atc);
}

static void sim_sync(struct sva_bind *bind)
{
	sim_mm_sync(sim_bind_of(bind)->mm);
}

int sim_mm_mirror_register(struct sim_mm *mm, struct sva_mirror *m)
{
	int err;

	/*
	 * A mirror's sequences need the events of its range: the event
	 * thread must run (it starts with the first registration, and
	 * mirrors fail as binds did when it can't). Callbacks need the
	 * notifier thread, which a mirror without one doesn't.
	 */
	err = sim_mm_listen(mm);
	if (!err && m->opts.invalidate)
		err = sim_notify_want(mm);
	if (err)
		return sva_err(err, "can't start the thread mirrors need: %s",
			       strerror(-err));
	sim_mm_track_range(mm, m->start, m->end);
	return 0;
}

static int sim_mirror_register(struct sva_mirror *m)
{
	return sim_mm_mirror_register(sim_bind_of(m->bind)->mm, m);
}

static void sim_attrs_track(struct sva_bind *bind, uint64_t addr,
			    uint64_t len)
{
	sim_mm_track_range(sim_bind_of(bind)->mm, addr, addr + len);
}

static void sim_mirror_unregister(struct sva_mirror *m)
{
	if (m->opts.invalidate)
		sim_notify_unwant(sim_bind_of(m->bind)->mm);
}

/* Fault in the pages of @states not already as @fault asks. */
static void snapshot_fault(struct sva_mirror *m, uint64_t addr,
			   uint64_t npages, const uint8_t *states,
			   unsigned int fault)
{
	uint8_t want = fault & SVA_ACCESS_WRITE ?
		       SVA_PAGE_VALID | SVA_PAGE_WRITE : SVA_PAGE_VALID;
	enum sim_response resp;
	uint64_t i = 0, j, t0;

	while (i < npages) {
		if ((states[i] & want) == want) {
			i++;
			continue;
		}
		for (j = i + 1; j < npages && (states[j] & want) != want; j++)
			;
		t0 = sva__tracing(m->bind->dev) ? sva__now_ns() : 0;
		resp = sim_fault_resolve(addr + (i << SVA_PAGE_SHIFT),
					 (j - i) << SVA_PAGE_SHIFT, fault);
		/* A run failed: resolve what can be, page by page. */
		for (uint64_t k = i; resp != SIM_RESP_SUCCESS && k < j; k++)
			sim_fault_resolve(addr + (k << SVA_PAGE_SHIFT),
					  SVA_PAGE_SIZE, fault);
		sva__count(m->bind, SVA_C_PAGE_GROUPS, 1);
		sva__count(m->bind, resp == SIM_RESP_SUCCESS ?
			   SVA_C_FAULTS_RESOLVED : SVA_C_FAULTS_FAILED, 1);
		if (sva__tracing(m->bind->dev))
			sva__trace_page_group(m->bind, t0,
					      addr + (i << SVA_PAGE_SHIFT),
					      addr + ((j - 1) << SVA_PAGE_SHIFT),
					      (unsigned int)(j - i), fault, resp);
		i = j;
	}
}

static int sim_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
			uint8_t *states, unsigned int fault)
{
	struct sim_mm *mm = sim_bind_of(m->bind)->mm;
	int err;

	err = sim_mm_snapshot(mm, addr, len, states);
	if (err)
		return err;
	sim_devmem_states(m->bind, addr, len, states);
	if (!fault)
		return 0;
	snapshot_fault(m, addr, len >> SVA_PAGE_SHIFT, states, fault);
	err = sim_mm_snapshot(mm, addr, len, states);
	if (!err)
		sim_devmem_states(m->bind, addr, len, states);
	return err;
}

/*
 * The windows of the group the device would be in: the caller's
 * (sva_dev_opts.reserved, checked by the core), else what every x86 group
 * reports, the interrupt window; elsewhere none (the sim is no platform's
 * device, and sw-msi windows are the kernel's choice per domain).
 */
static int sim_reserved_regions(struct sva_dev *dev, struct sva_region *out,
				unsigned int max)
{
#if defined(__x86_64__) || defined(__i386__)
	static const struct sva_region x86_msi = {
		.start = 0xfee00000, .end = 0xfeefffff,
		.type = SVA_REGION_MSI,
	};
	const struct sva_region *r = &x86_msi;
	unsigned int n = 1;
#else
	const struct sva_region *r = NULL;
	unsigned int n = 0;
#endif

	if (dev->opts.reserved) {
		r = dev->opts.reserved;
		n = dev->opts.nr_reserved;
	}
	if (n && max)
		memcpy(out, r, MIN(n, max) * sizeof(*out));
	return (int)n;
}

const struct sva_backend_ops sva_sim_ops = {
	.name = "sim",
	.enumerate = sim_enumerate,
	.open = sim_open,
	.close = sim_close,
	.bind = sim_bind,
	.unbind = sim_unbind,
	.sync = sim_sync,
	.reset = sim_reset,
	.exec = sim_exec,
	.exec_anywhere = true,	/* its syscalls ride out signals */
	.mirror_register = sim_mirror_register,
	.mirror_unregister = sim_mirror_unregister,
	.snapshot = sim_snapshot,
	.reserved_regions = sim_reserved_regions,
	.migrate = sim_devmem_migrate,
	.make_exclusive = sim_devmem_make_exclusive,
	.attrs_track = sim_attrs_track,
};
