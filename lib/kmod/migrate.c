// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Device memory on the kernel backend: each binding's context gets its own
 * device-private memory from sva_shim (SVA_SHIM_IOC_DEVMEM, on the first
 * migration, so that bindings that never migrate don't pay for it), and
 * SVA_SHIM_IOC_MIGRATE moves pages in and out of it. A target NUMA node is
 * reached with move_pages() once the kernel brought the pages back.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

	pthread_mutex_lock(&kb->devmem_lock);
	if (!kb->devmem && ioctl(kb->fd, SVA_SHIM_IOC_DEVMEM, &d))
		err = sva_err(-errno, "kmod0: %llu bytes of device memory: %s (sva_shim max_devmem_mb, max_devmem_mb_per_user)",
			      (unsigned long long)d.size, strerror(errno));
	if (!err)
		kb->devmem = true;
	pthread_mutex_unlock(&kb->devmem_lock);
	return err;
}

/* The kernel's reasons, as libsva's. */
static const enum sva_migrate_reason reason_of[SVA_SHIM_NM_MAX] = {
	[SVA_SHIM_NM_UNMAPPED] = SVA_MIGRATE_UNMAPPED,
	[SVA_SHIM_NM_PROT_NONE] = SVA_MIGRATE_PROT_NONE,
	[SVA_SHIM_NM_SHARED] = SVA_MIGRATE_SHARED,
	[SVA_SHIM_NM_PINNED] = SVA_MIGRATE_PINNED,
	[SVA_SHIM_NM_NO_ROOM] = SVA_MIGRATE_NO_ROOM,
	[SVA_SHIM_NM_BUSY] = SVA_MIGRATE_BUSY,
	[SVA_SHIM_NM_UNSUPPORTED] = SVA_MIGRATE_UNSUPPORTED,
	[7] = SVA_MIGRATE_UNSUPPORTED,
};

static int migrate_chunk(struct sva_bind *bind, uint64_t addr, uint64_t len,
			 bool to_dev, struct sva_migrate_result *res)
{
	struct sva_shim_migrate m = {
		.addr = addr, .len = len,
		.flags = to_dev ? SVA_SHIM_MIGRATE_TO_DEVICE :
				  SVA_SHIM_MIGRATE_TO_HOST,
	};

	if (ioctl(kmod_bind_of(bind)->fd, SVA_SHIM_IOC_MIGRATE, &m))
		return sva_err(-errno, "migrate %#llx+%#llx: %s",
			       (unsigned long long)addr,
			       (unsigned long long)len, strerror(errno));
	res->moved += m.moved;
	res->already += m.already;
	res->evicted += m.evicted;
	for (int i = 0; i < SVA_SHIM_NM_MAX; i++)
		res->not_moved[reason_of[i]] += m.not_moved[i];
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
		err = migrate_chunk(bind, a, n << SVA_PAGE_SHIFT, false, &r);
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

int kmod_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		 uint64_t to, struct sva_migrate_result *res)
{
	int node = to == SVA_LOC_DEVICE ? -1 : SVA_LOC_NODE_OF(to);
	int err = devmem_ready(bind);

	for (uint64_t done = 0; !err && done < len;) {
		uint64_t n = MIN(len - done, (uint64_t)SVA_SHIM_MAX_XFER);

		if (node >= 0)
			err = migrate_to_node(bind, addr + done, n, node, res);
		else
			err = migrate_chunk(bind, addr + done, n,
					    to == SVA_LOC_DEVICE, res);
		done += n;
	}
	/* The kernel counted what moved: fold it in now. */
	kmod_stats_sync(bind);
	return err;
}
