// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Device memory on the kernel backend: each binding's context gets its own
 * device-private memory from sva_shim (SVA_SHIM_IOC_DEVMEM, on the first
 * migration, so that bindings that never migrate don't pay for it), and
 * SVA_SHIM_IOC_MIGRATE moves pages in and out of it. A target NUMA node is
 * reached with move_pages() once the kernel brought the pages back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kmod.h"

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

#define KMOD_NODE_CHUNK 256	/* pages per move_pages() query */

/* The binding's device memory, made on first use. */
static int devmem_ready(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct sva_shim_devmem d = { .size = bind->dev->caps.devmem_size };
	int err = 0;

	sva__mutex_lock(&kb->devmem_lock);
	if (!kb->devmem && ioctl(kb->fd, SVA_SHIM_IOC_DEVMEM, &d))
		err = sva_err(-errno, "kmod0: %llu bytes of device memory: %s (sva_shim max_devmem_mb, max_devmem_mb_per_user)",
			      (unsigned long long)d.size, strerror(errno));
	if (!err)
		kb->devmem = true;
	sva__mutex_unlock(&kb->devmem_lock);
	return err;
}

/* The kernel's reasons (migrate's not_moved[], exclusive's not_held[]),
 * as libsva's. */
static const enum sva_migrate_reason reason_of[] = {
	[SVA_SHIM_NM_UNMAPPED] = SVA_MIGRATE_UNMAPPED,
	[SVA_SHIM_NM_PROT_NONE] = SVA_MIGRATE_PROT_NONE,
	[SVA_SHIM_NM_SHARED] = SVA_MIGRATE_SHARED,
	[SVA_SHIM_NM_PINNED] = SVA_MIGRATE_PINNED,
	[SVA_SHIM_NM_NO_ROOM] = SVA_MIGRATE_NO_ROOM,
	[SVA_SHIM_NM_BUSY] = SVA_MIGRATE_BUSY,
	[SVA_SHIM_NM_UNSUPPORTED] = SVA_MIGRATE_UNSUPPORTED,
	[SVA_SHIM_NM_UFFD] = SVA_MIGRATE_FOREIGN_UFFD,
	[SVA_SHIM_NM_READ_ONLY] = SVA_MIGRATE_READ_ONLY,
};

/* A newer module's reasons: busy, as good a guess as any. */
static enum sva_migrate_reason reason_from_shim(int i)
{
	return i < (int)ARRAY_SIZE(reason_of) ? reason_of[i] :
	       SVA_MIGRATE_BUSY;
}

/* What the kernel keeps with each page moved to the device. */
struct dev_page_attrs {
	unsigned int granule;	/* a CPU fault on one brings its granule back */
	unsigned int node;	/* 1 + the preferred host node, 0: none */
};

static const struct dev_page_attrs no_attrs;

static int migrate_chunk(struct sva_bind *bind, uint64_t addr, uint64_t len,
			 bool to_dev, const struct dev_page_attrs *a,
			 struct sva_migrate_result *res)
{
	struct sva_shim_migrate m = {
		.addr = addr, .len = len,
		.flags = to_dev ? SVA_SHIM_MIGRATE_TO_DEVICE :
				  SVA_SHIM_MIGRATE_TO_HOST,
		.granule = (__u16)a->granule,
	};

	/*
	 * An ABI 2 module older than the node field reads it as the high
	 * half of the granule and fails the call with -EINVAL: without the
	 * node, it brings the pages back where the memory policy says (as
	 * node 0 asks), the preferred node is all that is lost.
	 */
	if (kmod_bind_of(bind)->shim_caps & SVA_SHIM_CAP_MIGRATE_NODE)
		m.node = (__u16)a->node;

	if (ioctl(kmod_bind_of(bind)->fd, SVA_SHIM_IOC_MIGRATE, &m))
		return sva_err(-errno, "migrate %#llx+%#llx: %s",
			       (unsigned long long)addr,
			       (unsigned long long)len, strerror(errno));
	res->moved += m.moved;
	res->already += m.already;
	res->evicted += m.evicted;
	for (int i = 0; i < SVA_SHIM_NM_MAX; i++)
		res->not_moved[reason_from_shim(i)] += m.not_moved[i];
	return 0;
}

/*
 * ops->make_exclusive: SVA_SHIM_IOC_EXCLUSIVE, a chunk at a time. A chunk
 * that fails after others were done doesn't undo them: the pages held
 * stay held and counted, the rest of the range is counted busy (the
 * error is the message), and the call succeeds with that partial result.
 * The error is returned only when nothing was done.
 */
int kmod_make_exclusive(struct sva_bind *bind, uint64_t addr, uint64_t len,
			struct sva_migrate_result *res)
{
	for (uint64_t done = 0; done < len;) {
		struct sva_shim_exclusive x = {
			.addr = addr + done,
			.len = MIN(len - done, (uint64_t)SVA_SHIM_MAX_XFER),
		};
		int err;

		if (ioctl(kmod_bind_of(bind)->fd, SVA_SHIM_IOC_EXCLUSIVE, &x)) {
			err = sva_err(-errno, "exclusive %#llx+%#llx: %s",
				      (unsigned long long)x.addr,
				      (unsigned long long)x.len,
				      strerror(errno));
			if (!done)
				return err;
			res->not_moved[SVA_MIGRATE_BUSY] +=
				(len - done) >> SVA_PAGE_SHIFT;
			return 0;
		}
		res->moved += x.held;
		res->already += x.already;
		for (int i = 0; i < SVA_SHIM_EXCL_NM_MAX; i++)
			res->not_moved[reason_from_shim(i)] += x.not_held[i];
		done += x.len;
	}
	return 0;
}

/* move_pages(2) of our own pages; @node < 0: where are they (a query). */
static long pages_to_node(void **addrs, unsigned long n, int node,
			  int *status)
{
	int nodes[KMOD_NODE_CHUNK];

	for (unsigned long i = 0; i < n; i++)
		nodes[i] = node;
	return syscall(SYS_move_pages, 0, n, addrs, node < 0 ? NULL : nodes,
		       status, MPOL_MF_MOVE);
}

/*
 * Back to host memory on @node: the kernel brings the pages back where the
 * memory policy says, then move_pages() takes those not on @node there. A
 * page that can't get there is not moved (HOST_NODE); one that was on
 * host memory elsewhere and got there was moved.
 */
static int migrate_to_node(struct sva_bind *bind, uint64_t addr,
			   uint64_t len, int node,
			   struct sva_migrate_result *res)
{
	void *addrs[KMOD_NODE_CHUNK];
	int before[KMOD_NODE_CHUNK], now[KMOD_NODE_CHUNK];

	for (uint64_t a = addr; a < addr + len;
	     a += (uint64_t)KMOD_NODE_CHUNK << SVA_PAGE_SHIFT) {
		unsigned long n = (unsigned long)MIN((addr + len - a) >>
						     SVA_PAGE_SHIFT,
						     (uint64_t)KMOD_NODE_CHUNK);
		struct sva_migrate_result r = { .sz = sizeof(r) };
		int err;

		for (unsigned long i = 0; i < n; i++)
			addrs[i] = (void *)(uintptr_t)(a + (i << SVA_PAGE_SHIFT));
		/* Which were on host memory, on which node, before. */
		if (pages_to_node(addrs, n, -1, before))
			for (unsigned long i = 0; i < n; i++)
				before[i] = -ENOENT;
		err = migrate_chunk(bind, a, n << SVA_PAGE_SHIFT, false,
				    &no_attrs, &r);
		if (err)
			return err;
		if (pages_to_node(addrs, n, -1, now))
			for (unsigned long i = 0; i < n; i++)
				now[i] = -ENOENT;
		for (unsigned long i = 0; i < n; i++) {
			bool was_host = before[i] >= 0;

			/* Not present (never touched, still on a device). */
			if (now[i] < 0 || now[i] == node)
				continue;
			/* One at a time: a bad node fails the call whole. */
			if (pages_to_node(&addrs[i], 1, node, &now[i]) ||
			    now[i] != node) {
				if (was_host && r.already)
					r.already--;
				else if (r.moved)
					r.moved--;
				r.not_moved[SVA_MIGRATE_HOST_NODE]++;
			} else if (was_host && r.already) {
				r.already--;
				r.moved++;
			}
		}
		res->moved += r.moved;
		res->already += r.already;
		res->evicted += r.evicted;
		for (int i = 0; i < SVA_MIGRATE_REASON_MAX; i++)
			res->not_moved[i] += r.not_moved[i];
	}
	return 0;
}

/* The attributes at @addr the kernel keeps with a page moved there. */
static struct dev_page_attrs dev_page_attrs_at(struct sva_bind *bind,
					       uint64_t addr)
{
	uint64_t v[SVA_ATTR_MAX];
	struct dev_page_attrs a = { 0, 0 };
	int node;

	sva__range_attrs_at(&bind->attrs, addr, v);
	a.granule = (unsigned int)v[SVA_ATTR_GRANULARITY];
	node = SVA_LOC_NODE_OF(v[SVA_ATTR_PREFERRED_LOC]);
	/* SVA_LOC_HOST_NODE(n) (n < 1024, set_attr checked it). */
	if ((v[SVA_ATTR_PREFERRED_LOC] & 0xffffffffull) == SVA_LOC_HOST &&
	    node >= 0)
		a.node = (unsigned int)node + 1;
	return a;
}

/*
 * The granularity and preferred host node at @addr, and how far from
 * @addr (at most @len) they stay the same: the kernel takes one of each
 * per call, and gives them to the pages it moves (a CPU fault on one
 * brings its granule back, onto that node).
 */
static struct dev_page_attrs dev_page_attrs_run(struct sva_bind *bind,
						uint64_t addr, uint64_t len,
						uint64_t *run)
{
	struct dev_page_attrs a = { 0, 0 }, b;

	*run = len;
	if (sva__range_attrs_empty(&bind->attrs))
		return a;
	a = dev_page_attrs_at(bind, addr);
	for (uint64_t off = SVA_PAGE_SIZE; off < len; off += SVA_PAGE_SIZE) {
		b = dev_page_attrs_at(bind, addr + off);
		if (b.granule != a.granule || b.node != a.node) {
			*run = off;
			break;
		}
	}
	return a;
}

int kmod_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		 uint64_t to, struct sva_migrate_result *res)
{
	int node = to == SVA_LOC_DEVICE ? -1 : SVA_LOC_NODE_OF(to);
	int err = devmem_ready(bind);
	struct dev_page_attrs a = { 0, 0 };

	for (uint64_t done = 0; !err && done < len;) {
		uint64_t n = MIN(len - done, (uint64_t)SVA_SHIM_MAX_XFER);

		if (to == SVA_LOC_DEVICE)
			a = dev_page_attrs_run(bind, addr + done, n, &n);
		if (node >= 0)
			err = migrate_to_node(bind, addr + done, n, node, res);
		else
			err = migrate_chunk(bind, addr + done, n,
					    to == SVA_LOC_DEVICE, &a, res);
		done += n;
	}
	/* The kernel counted what moved: fold it in now. */
	kmod_stats_sync(bind);
	return err;
}

/* ------------------------------------------------- attributes' ranges */

/*
 * Attributes of a range are forgotten when it is unmapped or moved
 * (sva_range_set_attr(3)), by the time munmap()/mremap() returns. The
 * kernel tells of those through our context's events once the range is
 * one of its mirror ranges: each range with attributes is one (merged
 * when covered by one already).
 */
void kmod_attrs_track(struct sva_bind *bind, uint64_t addr, uint64_t len)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct sva_shim_mirror km = { .addr = addr, .len = len };
	struct kmod_track *t;

	sva__mutex_lock(&kb->track_lock);
	for (size_t i = 0; i < kb->ntracks; i++)
		if (kb->tracks[i].start <= addr &&
		    addr + len <= kb->tracks[i].end)
			goto unlock;
	if (kb->ntracks == kb->tracks_cap) {
		size_t cap = kb->tracks_cap ? 2 * kb->tracks_cap : 8;

		t = realloc(kb->tracks, cap * sizeof(*t));
		if (!t)
			goto fail;
		kb->tracks = t;
		kb->tracks_cap = cap;
	}
	if (ioctl(kb->fd, SVA_SHIM_IOC_MIRROR, &km))
		goto fail;
	kb->tracks[kb->ntracks++] = (struct kmod_track){
		.start = addr, .end = addr + len, .id = km.id,
		.processed = km.seq,
	};
unlock:
	sva__mutex_unlock(&kb->track_lock);
	return;
fail:
	sva__mutex_unlock(&kb->track_lock);
	pr_warn("kmod0: can't watch %#llx+%#llx for munmap: its attributes outlive it\n",
		(unsigned long long)addr, (unsigned long long)len);
}

/* The event thread: an invalidation overlapping mirror ranges. */
void kmod_tracks_event(struct sva_bind *bind, const struct sva_shim_event *ev)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	bool ours = false;

	sva__mutex_lock(&kb->track_lock);
	for (size_t i = 0; i < kb->ntracks; i++) {
		struct kmod_track *t = &kb->tracks[i];

		if (t->start < ev->end && ev->start < t->end) {
			t->processed++;
			ours = true;
		}
	}
	if (ours && (ev->reason == SVA_SHIM_INVAL_UNMAP ||
		     ev->reason == SVA_SHIM_INVAL_REMAP))
		sva__range_attrs_drop(&bind->attrs, ev->start, ev->end);
	if (ours)
		pthread_cond_broadcast(&kb->track_cond);
	sva__mutex_unlock(&kb->track_lock);
}

/* Drop the attributes of what is no longer mapped in [start, end). */
static void drop_unmapped(struct sva_bind *bind, uint64_t start, uint64_t end)
{
	uint64_t mid;

	/* msync() of a range with a hole in it: ENOMEM. */
	if (!msync((void *)(uintptr_t)start, end - start, MS_ASYNC) ||
	    errno != ENOMEM)
		return;
	if (end - start == SVA_PAGE_SIZE) {
		sva__range_attrs_drop(&bind->attrs, start, end);
		return;
	}
	mid = start + ((end - start) / 2 & ~(uint64_t)(SVA_PAGE_SIZE - 1));
	drop_unmapped(bind, start, mid);
	drop_unmapped(bind, mid, end);
}

/*
 * Events were lost: which invalidations of our ranges were unmaps is
 * unknown. What is unmapped now loses its attributes; the counts start
 * again from the kernel's.
 */
void kmod_tracks_lost(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);

	sva__mutex_lock(&kb->track_lock);
	for (size_t i = 0; i < kb->ntracks; i++) {
		struct kmod_track *t = &kb->tracks[i];
		struct sva_shim_mirror km = { .id = t->id };

		if (!ioctl(kb->fd, SVA_SHIM_IOC_MIRROR_SEQ, &km) &&
		    km.seq > t->processed)
			t->processed = km.seq;
		drop_unmapped(bind, t->start, t->end);
	}
	pthread_cond_broadcast(&kb->track_cond);
	sva__mutex_unlock(&kb->track_lock);
}

/*
 * Before attributes are read or set: wait until the event thread has seen
 * every invalidation the kernel counted on our ranges (a munmap that
 * returned has been counted), so that its attributes are gone. Not on the
 * event thread itself (a callback calling in): it is the one to wait for.
 */
void kmod_tracks_sync(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct timespec deadline;

	if (kb->stop_fd < 0 || pthread_equal(pthread_self(), kb->events))
		return;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	sva__mutex_lock(&kb->track_lock);
	for (size_t i = 0; i < kb->ntracks; i++) {
		struct sva_shim_mirror km = { .id = kb->tracks[i].id };

		if (ioctl(kb->fd, SVA_SHIM_IOC_MIRROR_SEQ, &km))
			continue;
		while (kb->tracks[i].processed < km.seq)
			if (sva__cond_timedwait(&kb->track_cond,
						   &kb->track_lock, &deadline)) {
				pr_warn("kmod0: event thread late: attributes of an unmapped range may linger\n");
				goto unlock;
			}
	}
unlock:
	sva__mutex_unlock(&kb->track_lock);
}

void kmod_tracks_fini(struct kmod_bind *kb)
{
	free(kb->tracks);
	pthread_cond_destroy(&kb->track_cond);
	pthread_mutex_destroy(&kb->track_lock);
}
