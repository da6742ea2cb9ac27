// SPDX-License-Identifier: GPL-2.0
/*
 * A context's device-local memory: MEMORY_DEVICE_PRIVATE pages, as
 * lib/test_hmm.c's dmirror device has, each backed by a host page that
 * holds its data (the software device's "VRAM") while it is in use.
 * MIGRATE moves private anonymous pages into it (migrate_vma_setup() with
 * MIGRATE_VMA_SELECT_SYSTEM) and back (MIGRATE_VMA_SELECT_DEVICE_PRIVATE);
 * a CPU access to one faults it back (dev_pagemap_ops.migrate_to_ram);
 * when the memory is full its least recently used pages are evicted to
 * host memory (migrate_device_range()); closing the context evicts all.
 * The device's own reads and writes of a page in it are local: the mirror
 * (mirror.c) asks hmm_range_fault() with this context as the device
 * private owner, so such pages come back as they are, without a fault.
 *
 * Accounting: the backing pages are charged to the migrating task's
 * memory cgroup (__GFP_ACCOUNT), and the charge of the data's own page
 * follows it into device memory and back (mem_cgroup_migrate()). The
 * size is bounded per context (max_devmem_mb) and per user (limits.c).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/moduleparam.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/userfaultfd_k.h>

#include "shim.h"

static unsigned int max_devmem_mb = 256;
module_param(max_devmem_mb, uint, 0644);
MODULE_PARM_DESC(max_devmem_mb,
		 "device memory one context may have, MiB (default 256)");

#if IS_ENABLED(CONFIG_DEVICE_PRIVATE)

#define SVA_MIG_BATCH 64	/* pages per migrate_vma_setup() */
#define SVA_GRANULE_MAX 9	/* log2 pages a CPU fault brings back: 2 MiB */
/* memremap_pages() of device private memory works in subsections. */
#define SVA_DEVMEM_ALIGN (2ul << 20)

/* A migration's arrays: too big for the stack under KASAN. */
struct sva_mig_bufs {
	unsigned long src[SVA_MIG_BATCH];
	unsigned long dst[SVA_MIG_BATCH];
	unsigned long pfns[SVA_MIG_BATCH];
};

/* One page of device memory: on dm->free or, in use, on dm->lru. */
struct sva_dm_slot {
	struct list_head node;
	/* log2 pages a CPU fault on it brings back; set while it is locked
	 * for its migration in, read under its lock in migrate_to_ram.
	 */
	u8 granule;
	/* 1 + the host node it goes back to, 0: the memory policy's; set
	 * and read as granule is.
	 */
	u16 home_node;
};

struct sva_devmem {
	struct dev_pagemap pgmap;	/* owner: the context */
	struct sva_ctx *ctx;
	struct list_head node;		/* in sva_devmems */
	unsigned long pfn_first;
	unsigned long npages;		/* usable: the size asked for */
	struct sva_dm_slot *slots;	/* npages of them */
	spinlock_t lock;		/* protects the three below */
	struct list_head free;
	struct list_head lru;		/* oldest first */
	unsigned long used;
};

/*
 * Every context's device memory, for snapshots to tell the pages in
 * another context's memory (SVA_SHIM_PAGE_DEVICE_REMOTE). hmm_range_fault()
 * hands back device private pages of one owner only, so a snapshot asks
 * again as each other context of its mm.
 */
static LIST_HEAD(sva_devmems);		/* sva_devmems_lock */
static DEFINE_MUTEX(sva_devmems_lock);
static atomic_t sva_devmems_nr;		/* on the list, read unlocked */

static struct sva_devmem *page_devmem(struct page *page)
{
	return container_of(page->pgmap, struct sva_devmem, pgmap);
}

static struct sva_dm_slot *page_slot(struct sva_devmem *dm, struct page *page)
{
	return &dm->slots[page_to_pfn(page) - dm->pfn_first];
}

/* The host page holding a device page's data. */
static struct page *backing_page(struct page *dpage)
{
	return dpage->zone_device_data;
}

/* A device page, locked, its backing page charged to the caller; or NULL. */
static struct page *devmem_alloc(struct sva_devmem *dm)
{
	struct sva_dm_slot *slot;
	struct page *dpage, *rpage;

	rpage = alloc_page(GFP_HIGHUSER | __GFP_ACCOUNT);
	if (!rpage)
		return NULL;
	spin_lock(&dm->lock);
	slot = list_first_entry_or_null(&dm->free, struct sva_dm_slot, node);
	if (slot) {
		list_move_tail(&slot->node, &dm->lru);
		dm->used++;
	}
	spin_unlock(&dm->lock);
	if (!slot) {
		__free_page(rpage);
		return NULL;
	}
	dpage = pfn_to_page(dm->pfn_first + (slot - dm->slots));
	zone_device_page_init(dpage);
	dpage->zone_device_data = rpage;
	return dpage;
}

/* pgmap->ops->page_free: the last reference to a device page is gone. */
static void devmem_page_free(struct page *page)
{
	struct sva_devmem *dm = page_devmem(page);
	struct page *rpage = backing_page(page);

	page->zone_device_data = NULL;
	if (rpage)
		__free_page(rpage);
	spin_lock(&dm->lock);
	list_move(&page_slot(dm, page)->node, &dm->free);
	dm->used--;
	spin_unlock(&dm->lock);
}

/* A device access to @dpage: it becomes the most recently used. */
void sva_devmem_touch(struct sva_ctx *ctx, struct page *dpage)
{
	struct sva_devmem *dm = page_devmem(dpage);

	spin_lock(&dm->lock);
	/* Only while in use: a free slot stays free. */
	if (page_ref_count(dpage))
		list_move_tail(&page_slot(dm, dpage)->node, &dm->lru);
	spin_unlock(&dm->lock);
}

/*
 * Is @page a device page of @ctx's memory? hmm_range_fault() hands back
 * only ours (dev_private_owner), but say so where it matters.
 */
bool sva_devmem_page(struct sva_ctx *ctx, struct page *page)
{
	return is_device_private_page(page) && page->pgmap->owner == ctx;
}

/*
 * Walk [start, end) as @owner's device would, without faulting: mark the
 * pages not known to @st that sit in that owner's memory. @pfns holds the
 * range's pages.
 */
static void mark_remote_of(struct sva_ctx *ctx, void *owner,
			   unsigned long start, unsigned long end,
			   unsigned long *pfns, u8 *st)
{
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start, .end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = owner,
	};
	unsigned long i;
	int ret;

	range.notifier_seq = mmu_interval_read_begin(&ctx->notifier);
	mmap_read_lock(ctx->mm);
	ret = hmm_range_fault(&range);
	mmap_read_unlock(ctx->mm);
	/* Raced with a change: its invalidation advanced the sequences. */
	if (ret)
		return;
	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++)
		if (!st[i] && (pfns[i] & HMM_PFN_VALID) &&
		    is_device_private_page(hmm_pfn_to_page(pfns[i])))
			st[i] = SVA_SHIM_PAGE_DEVICE_REMOTE;
}

/*
 * The other contexts of @ctx's mm that have device memory, at most @max
 * of them in @owners; returns how many. They are hmm_range_fault()'s
 * dev_private_owner keys, compared with page->pgmap->owner and never
 * dereferenced, so they need no reference: the global lock is not held
 * across other contexts' walks. One made meanwhile is missed (its pages
 * come there by a migration, which invalidates); one closed meanwhile
 * owns no page of the mm any more.
 */
static unsigned int devmem_owners(struct sva_ctx *ctx, void **owners,
				  unsigned int max)
{
	struct sva_devmem *dm;
	unsigned int nr = 0;

	mutex_lock(&sva_devmems_lock);
	list_for_each_entry(dm, &sva_devmems, node) {
		if (nr == max)
			break;
		if (dm->ctx != ctx && dm->ctx->mm == ctx->mm)
			owners[nr++] = dm->ctx;
	}
	mutex_unlock(&sva_devmems_lock);
	return nr;
}

/*
 * A snapshot of [start, end) found the pages of @st that are 0 not
 * present: those in another context's device memory (of the same mm) are
 * DEVICE_REMOTE. A device access still faults them back to host memory
 * (mirror.c asks as this context only). 0, or -ENOMEM: the snapshot
 * fails rather than call such a page absent.
 */
int sva_devmem_mark_remote(struct sva_ctx *ctx, unsigned long start,
			   unsigned long end, unsigned long *pfns, u8 *st)
{
	unsigned long i, n = (end - start) >> PAGE_SHIFT;
	unsigned int nr, k;
	void **owners;

	/* No device memory anywhere: no global lock for every snapshot. */
	nr = atomic_read(&sva_devmems_nr);
	if (!nr)
		return 0;
	for (i = 0; i < n && st[i]; i++)
		;
	if (i == n)
		return 0;
	owners = kmalloc_array(nr, sizeof(*owners), GFP_KERNEL);
	if (!owners)
		return -ENOMEM;
	nr = devmem_owners(ctx, owners, nr);
	for (k = 0; k < nr; k++)
		mark_remote_of(ctx, owners[k], start, end, pfns, st);
	kfree(owners);
	return 0;
}

/* ----------------------------------------------------- back to host */

/*
 * A host page for the data of device page @spage: on its preferred node
 * where that has memory, else as @vma's NUMA policy at @addr says (the
 * task's if @vma is NULL).
 */
static struct page *host_page_for(struct page *spage,
				  struct vm_area_struct *vma,
				  unsigned long addr, gfp_t gfp)
{
	int nid = (int)page_slot(page_devmem(spage), spage)->home_node - 1;

	if (nid >= 0 && nid < MAX_NUMNODES && node_state(nid, N_MEMORY))
		return alloc_pages_node(nid, gfp, 0);
	return vma ? alloc_page_vma(gfp, vma, addr) : alloc_page(gfp);
}

/*
 * Fill @dst for the device pages collected in @src: a host page for each
 * (host_page_for()), the data copied in.
 */
static void copy_to_host(const unsigned long *src, unsigned long *dst,
			 unsigned long npages, struct vm_area_struct *vma,
			 unsigned long start, gfp_t gfp)
{
	unsigned long i;

	for (i = 0; i < npages; i++) {
		struct page *spage = migrate_pfn_to_page(src[i]);
		struct page *dpage;

		dst[i] = 0;
		if (!spage || !(src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		if (WARN_ON_ONCE(!is_device_private_page(spage)))
			continue;
		dpage = host_page_for(spage, vma, start + i * PAGE_SIZE, gfp);
		if (!dpage)
			continue;
		lock_page(dpage);
		copy_highpage(dpage, backing_page(spage));
		dst[i] = migrate_pfn(page_to_pfn(dpage));
		if (src[i] & MIGRATE_PFN_WRITE)
			dst[i] |= MIGRATE_PFN_WRITE;
	}
}

/* How many of the pages with a destination did move. */
static unsigned long count_moved(const unsigned long *src,
				 const unsigned long *dst, unsigned long npages)
{
	unsigned long i, n = 0;

	for (i = 0; i < npages; i++)
		n += dst[i] && (src[i] & MIGRATE_PFN_MIGRATE);
	return n;
}

/*
 * The faulting page's granule, within its VMA: [*start, *end), and src
 * and dst arrays for it; NULL for a single page, or when the arrays can't
 * be had (the caller then moves the faulting page alone).
 */
static unsigned long *fault_span(struct vm_fault *vmf, unsigned int granule,
				 unsigned long *start, unsigned long *end)
{
	unsigned long size = PAGE_SIZE << granule;

	*start = max(ALIGN_DOWN(vmf->address, size), vmf->vma->vm_start);
	*end = min(ALIGN_DOWN(vmf->address, size) + size, vmf->vma->vm_end);
	if (!granule)
		return NULL;
	return kmalloc_array(2 << granule, sizeof(unsigned long), GFP_KERNEL);
}

/*
 * Tell the library of @moved pages the kernel moved back to host memory on
 * its own since @t0 (ktime_get_ns()), so that its trace shows them.
 */
static void devmem_event(struct sva_ctx *ctx, u32 cause, unsigned long first,
			 unsigned long moved, int nid, u64 t0)
{
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_MIGRATE,
		.pasid = ctx->pasid,
		.start = first,
		.end = t0,
		.seq = ktime_get_ns() - t0,
		.access = cause,
		.response = moved,
		.reason = nid + 1,
	};

	/*
	 * An eviction runs in the MIGRATE ioctl of the context's own
	 * process: its thread id means something to the reader. A CPU fault
	 * may come from any task (process_vm_readv, /proc/pid/mem), of
	 * another pid namespace: no id.
	 */
	if (cause == SVA_SHIM_MIG_EVICTION)
		ev.mirror = task_pid_vnr(current);

	if (moved)
		sva_event_push_optional(ctx, &ev);
}

/* The node of the first page @dst moved to, NUMA_NO_NODE if none. */
static int moved_nid(const unsigned long *src, const unsigned long *dst,
		     unsigned long npages)
{
	for (unsigned long i = 0; i < npages; i++)
		if ((src[i] & MIGRATE_PFN_MIGRATE) && dst[i])
			return page_to_nid(migrate_pfn_to_page(dst[i]));
	return NUMA_NO_NODE;
}

/*
 * pgmap->ops->migrate_to_ram: a CPU access to a page in device memory
 * brings it back with the rest of its granule. Called with the page
 * locked and referenced (do_swap_page()).
 */
static vm_fault_t devmem_migrate_to_ram(struct vm_fault *vmf)
{
	struct sva_devmem *dm = page_devmem(vmf->page);
	unsigned int granule = page_slot(dm, vmf->page)->granule;
	unsigned long one[2], *arr, npages, moved, at;
	struct migrate_vma args = {
		.vma = vmf->vma,
		.pgmap_owner = dm->ctx,
		.flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
		.fault_page = vmf->page,
	};
	u64 t0 = ktime_get_ns();
	vm_fault_t ret = 0;
	int nid;

	arr = fault_span(vmf, granule, &args.start, &args.end);
	if (!arr) {
		args.start = ALIGN_DOWN(vmf->address, PAGE_SIZE);
		args.end = args.start + PAGE_SIZE;
		arr = one;
	}
	npages = (args.end - args.start) >> PAGE_SHIFT;
	args.src = arr;
	args.dst = arr + npages;
	if (migrate_vma_setup(&args)) {
		ret = VM_FAULT_SIGBUS;
		goto out;
	}
	/* Onto the node the task's (or the VMA's) memory policy says. */
	copy_to_host(args.src, args.dst, npages, vmf->vma, args.start,
		     GFP_HIGHUSER_MOVABLE);
	/* No host page for the faulting one: OOM. Not collected: retry. */
	at = (ALIGN_DOWN(vmf->address, PAGE_SIZE) - args.start) >> PAGE_SHIFT;
	if ((args.src[at] & MIGRATE_PFN_MIGRATE) && !args.dst[at])
		ret = VM_FAULT_OOM;
	migrate_vma_pages(&args);
	moved = count_moved(args.src, args.dst, npages);
	nid = moved_nid(args.src, args.dst, npages);
	migrate_vma_finalize(&args);
	sva_stat_add(dm->ctx, SVA_ST_MIGRATED_TO_HOST, moved);
	if (moved)
		sva_stat_add(dm->ctx, SVA_ST_CPU_FAULT_MIGRATIONS, 1);
	devmem_event(dm->ctx, SVA_SHIM_MIG_CPU_FAULT, args.start, moved, nid,
		     t0);
out:
	if (arr != one)
		kfree(arr);
	return ret;
}

static const struct dev_pagemap_ops sva_devmem_ops = {
	.page_free = devmem_page_free,
	.migrate_to_ram = devmem_migrate_to_ram,
};

/*
 * Move the device pages [pfn, pfn + npages) that are in use back to host
 * memory, wherever they are mapped; returns how many moved. @src and @dst
 * hold npages entries.
 */
static unsigned long evict_range(unsigned long pfn, unsigned long npages,
				 unsigned long *src, unsigned long *dst,
				 gfp_t gfp)
{
	unsigned long moved;

	migrate_device_range(src, pfn, npages);
	copy_to_host(src, dst, npages, NULL, 0, gfp);
	migrate_device_pages(src, dst, npages);
	moved = count_moved(src, dst, npages);
	migrate_device_finalize(src, dst, npages);
	return moved;
}

/*
 * Evict least recently used pages until @want slots are free, or every
 * page in use was tried once. Returns how many were evicted.
 */
static unsigned long devmem_make_room(struct sva_devmem *dm,
				      unsigned long want)
{
	unsigned long tries, evicted = 0, src, dst, pfn;
	struct sva_dm_slot *slot;
	u64 t0 = ktime_get_ns();

	for (tries = 0; tries < dm->npages; tries++) {
		spin_lock(&dm->lock);
		if (dm->npages - dm->used >= want) {
			spin_unlock(&dm->lock);
			break;
		}
		slot = list_first_entry_or_null(&dm->lru, struct sva_dm_slot,
						node);
		/* Tried once: to the tail, whether it moves or not. */
		if (slot)
			list_move_tail(&slot->node, &dm->lru);
		spin_unlock(&dm->lock);
		if (!slot)
			break;
		pfn = dm->pfn_first + (slot - dm->slots);
		evicted += evict_range(pfn, 1, &src, &dst,
				       GFP_HIGHUSER_MOVABLE);
	}
	sva_stat_add(dm->ctx, SVA_ST_EVICTIONS, evicted);
	sva_stat_add(dm->ctx, SVA_ST_MIGRATED_TO_HOST, evicted);
	devmem_event(dm->ctx, SVA_SHIM_MIG_EVICTION, 0, evicted, NUMA_NO_NODE,
		     t0);
	return evicted;
}

/* ------------------------------------------------------------ migrate */

/*
 * Which pages of [start, end) are in our device memory already, and which
 * are present in host memory, as the device would see them now: bit i of
 * @ours / @present for page i. A racing change only misnames a reason.
 */
static void range_where(struct sva_ctx *ctx, unsigned long start,
			unsigned long end, unsigned long *pfns,
			unsigned long *ours, unsigned long *present)
{
	unsigned long i;
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = ctx,
	};

	*ours = 0;
	*present = 0;
	range.notifier_seq = mmu_interval_read_begin(&ctx->notifier);
	if (hmm_range_fault(&range))
		return;
	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++) {
		if (!(pfns[i] & HMM_PFN_VALID))
			continue;
		if (sva_devmem_page(ctx, hmm_pfn_to_page(pfns[i])))
			*ours |= BIT(i);
		else
			*present |= BIT(i);
	}
}

/*
 * Fault the run [start, end) in for reading, every page of it, alone:
 * hmm_range_fault() faults from the first page that needs it to the end
 * of its walk step, whatever the other pages' request flags say, which
 * would bring our device pages beside the run to host memory and take
 * back the pages held exclusively. What doesn't come is counted by the
 * migration: the result is not needed. Caller holds the mmap lock.
 */
static void fault_run(struct sva_ctx *ctx, unsigned long start,
		      unsigned long end, unsigned long *pfns,
		      unsigned long deadline)
{
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = HMM_PFN_REQ_FAULT,
		.dev_private_owner = ctx,
	};

	sva_range_fault(&range, deadline);
}

/*
 * Where other contexts of this mm have device memory, the pages of
 * [start, end) that are neither ours nor present (bit i of @absent) may
 * be in one of them, which migrate_vma_setup() can't collect: fault them
 * in for reading first, their owner's migrate_to_ram() brings them to
 * host memory, as that device's own access would (a hole maps the zero
 * page, which migrates as a hole). What doesn't come is counted by the
 * migration. Not the pages this context holds exclusively (not present
 * either): a fault would take them back, and migration leaves them be.
 * Caller holds the mmap lock.
 */
static bool fault_absent(struct sva_ctx *ctx, unsigned long start,
			 unsigned long end, unsigned long *pfns,
			 unsigned long absent)
{
	unsigned long i, rs, re, deadline;
	void *owner;

	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++)
		if (sva_excl_held(ctx, start + i * PAGE_SIZE))
			absent &= ~BIT(i);
	if (!absent || atomic_read(&sva_devmems_nr) < 2 ||
	    !devmem_owners(ctx, &owner, 1))
		return false;
	/* One bound for all the runs: the caller holds the mmap lock. */
	deadline = jiffies + msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	for_each_set_bitrange(rs, re, &absent, BITS_PER_LONG)
		fault_run(ctx, start + rs * PAGE_SIZE, start + re * PAGE_SIZE,
			  pfns + rs, deadline);
	return true;
}

/*
 * Device pages for the collected host pages of @args, data copied in.
 * Returns the pages that found no room (bit i for page i).
 */
static unsigned long copy_to_dev(struct sva_devmem *dm,
				 struct migrate_vma *args,
				 const struct sva_shim_migrate *m)
{
	unsigned long i, no_room = 0;

	for (i = 0; i < args->npages; i++) {
		struct page *spage = migrate_pfn_to_page(args->src[i]);
		struct page *dpage;

		args->dst[i] = 0;
		if (!(args->src[i] & MIGRATE_PFN_MIGRATE))
			continue;
		/* SELECT_SYSTEM never collects device pages. */
		if (WARN_ON_ONCE(spage && is_zone_device_page(spage)))
			continue;
		dpage = devmem_alloc(dm);
		if (!dpage) {
			no_room |= BIT(i);
			continue;
		}
		/* No page: an empty PTE or the zero page, zeros. */
		if (spage)
			copy_highpage(backing_page(dpage), spage);
		else
			clear_highpage(backing_page(dpage));
		page_slot(dm, dpage)->granule = m->granule;
		page_slot(dm, dpage)->home_node = m->node;
		args->dst[i] = migrate_pfn(page_to_pfn(dpage));
		if ((args->src[i] & MIGRATE_PFN_WRITE) ||
		    (!spage && (args->vma->vm_flags & VM_WRITE)))
			args->dst[i] |= MIGRATE_PFN_WRITE;
	}
	return no_room;
}

/* One batch of a VMA, to device memory. Caller holds the mmap lock. */
static int batch_to_dev(struct sva_ctx *ctx, struct sva_devmem *dm,
			struct migrate_vma *args, unsigned long *pfns,
			struct sva_shim_migrate *m)
{
	unsigned long npages = (args->end - args->start) >> PAGE_SHIFT;
	unsigned long ours, present, no_room, i, evicted, all;
	int ret;

	range_where(ctx, args->start, args->end, pfns, &ours, &present);
	all = npages == BITS_PER_LONG ? ~0ul : BIT(npages) - 1;
	if (fault_absent(ctx, args->start, args->end, pfns,
			 all & ~(ours | present)))
		range_where(ctx, args->start, args->end, pfns, &ours,
			    &present);
	/* Room for what isn't there yet, evicting the oldest pages. */
	evicted = devmem_make_room(dm, npages - hweight_long(ours));
	m->evicted += evicted;
	args->flags = MIGRATE_VMA_SELECT_SYSTEM;
	ret = migrate_vma_setup(args);
	if (ret)
		return ret;
	no_room = copy_to_dev(dm, args, m);
	migrate_vma_pages(args);
	/* What failed lost MIGRATE_PFN_MIGRATE: say why as best we know. */
	for (i = 0; i < npages; i++) {
		if ((args->src[i] & MIGRATE_PFN_MIGRATE) && args->dst[i])
			m->moved++;
		else if (ours & BIT(i))
			m->already++;
		else if (no_room & BIT(i))
			m->not_moved[SVA_SHIM_NM_NO_ROOM]++;
		else if (present & BIT(i))
			m->not_moved[SVA_SHIM_NM_PINNED]++;
		else
			m->not_moved[SVA_SHIM_NM_BUSY]++;
	}
	migrate_vma_finalize(args);
	return 0;
}

/* One batch of a VMA, back to host memory. Caller holds the mmap lock. */
static int batch_to_host(struct sva_ctx *ctx, struct migrate_vma *args,
			 struct sva_shim_migrate *m)
{
	unsigned long npages = (args->end - args->start) >> PAGE_SHIFT, i;
	int ret;

	args->flags = MIGRATE_VMA_SELECT_DEVICE_PRIVATE;
	ret = migrate_vma_setup(args);
	if (ret)
		return ret;
	copy_to_host(args->src, args->dst, npages, args->vma, args->start,
		     GFP_HIGHUSER_MOVABLE);
	migrate_vma_pages(args);
	for (i = 0; i < npages; i++) {
		/* Holes are collected too, with no page: nothing to move. */
		bool ours = migrate_pfn_to_page(args->src[i]);

		if (ours && args->dst[i] &&
		    (args->src[i] & MIGRATE_PFN_MIGRATE))
			m->moved++;
		else if (ours)
			m->not_moved[SVA_SHIM_NM_BUSY]++;
		else
			m->already++;
	}
	migrate_vma_finalize(args);
	return 0;
}

/*
 * Why no page of @vma can move to device memory (a reason index), or -1
 * if they may. To host memory, every VMA is tried: only private anonymous
 * ones can hold device pages, whatever their protection now.
 */
static int vma_refusal(struct vm_area_struct *vma, bool to_dev)
{
	if (!to_dev)
		return -1;
	if (!(vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC)))
		return SVA_SHIM_NM_PROT_NONE;
	if (vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP))
		return SVA_SHIM_NM_UNSUPPORTED;
	/* Device private memory takes private anonymous pages only. */
	if (!vma_is_anonymous(vma))
		return SVA_SHIM_NM_SHARED;
	/*
	 * Someone's userfaultfd (the application's) handles this range's
	 * faults: pages leaving under it would surprise its handler.
	 */
	if (userfaultfd_armed(vma))
		return SVA_SHIM_NM_UFFD;
	return -1;
}

static int migrate_range(struct sva_ctx *ctx, struct sva_devmem *dm,
			 struct sva_mig_bufs *b, struct sva_shim_migrate *m)
{
	unsigned long addr = m->addr, end = m->addr + m->len, next, batch;
	bool to_dev = m->flags & SVA_SHIM_MIGRATE_TO_DEVICE;
	struct vm_area_struct *vma;
	int ret = 0, why;

	/* A batch of device pages must fit in device memory. */
	batch = min_t(unsigned long, SVA_MIG_BATCH, dm->npages);
	mmap_read_lock(ctx->mm);
	for (; addr < end && !ret; addr = next) {
		struct migrate_vma args = {
			.src = b->src, .dst = b->dst, .pgmap_owner = ctx,
		};

		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		vma = find_vma(ctx->mm, addr);
		if (!vma || vma->vm_start >= end) {
			m->not_moved[SVA_SHIM_NM_UNMAPPED] += (end - addr) >>
							      PAGE_SHIFT;
			break;
		}
		if (vma->vm_start > addr) {
			next = vma->vm_start;
			m->not_moved[SVA_SHIM_NM_UNMAPPED] += (next - addr) >>
							      PAGE_SHIFT;
			continue;
		}
		next = min3(end, vma->vm_end, addr + batch * PAGE_SIZE);
		why = vma_refusal(vma, to_dev);
		if (why >= 0) {
			m->not_moved[why] += (next - addr) >> PAGE_SHIFT;
			continue;
		}
		/* Nothing of ours can be in a VMA that can't hold it. */
		if (!to_dev && (!vma_is_anonymous(vma) ||
				(vma->vm_flags & (VM_IO | VM_PFNMAP)))) {
			m->already += (next - addr) >> PAGE_SHIFT;
			continue;
		}
		args.vma = vma;
		args.start = addr;
		args.end = next;
		ret = to_dev ? batch_to_dev(ctx, dm, &args, b->pfns, m) :
			       batch_to_host(ctx, &args, m);
	}
	mmap_read_unlock(ctx->mm);
	return ret;
}

static struct sva_devmem *ctx_devmem(struct sva_ctx *ctx)
{
	/* Set once, under bind_lock; paired with devmem_create(). */
	return smp_load_acquire(&ctx->devmem);
}

long sva_ioctl_migrate(struct sva_ctx *ctx, void __user *uarg)
{
	u32 dir = SVA_SHIM_MIGRATE_TO_DEVICE | SVA_SHIM_MIGRATE_TO_HOST;
	struct sva_devmem *dm = ctx_devmem(ctx);
	struct sva_shim_migrate m;
	struct sva_mig_bufs *b;
	int ret, i;

	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	if ((m.flags & ~dir) || hweight32(m.flags) != 1 ||
	    m.granule > SVA_GRANULE_MAX ||
	    ((m.granule || m.node) &&
	     !(m.flags & SVA_SHIM_MIGRATE_TO_DEVICE)) ||
	    m.moved || m.already || m.evicted || !m.len ||
	    !PAGE_ALIGNED(m.addr) || !PAGE_ALIGNED(m.len) ||
	    m.len > SVA_SHIM_MAX_XFER || m.addr + m.len < m.addr ||
	    m.addr + m.len > TASK_SIZE)
		return -EINVAL;
	for (i = 0; i < SVA_SHIM_NM_MAX; i++)
		if (m.not_moved[i])
			return -EINVAL;
	if (!dm)
		return -ENODEV;		/* no DEVMEM yet */
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	b = kmalloc(sizeof(*b), GFP_KERNEL_ACCOUNT);
	if (!b)
		return -ENOMEM;
	ret = -ESRCH;
	if (mmget_not_zero(ctx->mm)) {
		ret = migrate_range(ctx, dm, b, &m);
		mmput(ctx->mm);
	}
	kfree(b);
	if (ret)
		return ret;
	sva_stat_add(ctx, m.flags & SVA_SHIM_MIGRATE_TO_DEVICE ?
		     SVA_ST_MIGRATED_TO_DEV : SVA_ST_MIGRATED_TO_HOST,
		     m.moved);
	return copy_to_user(uarg, &m, sizeof(m)) ? -EFAULT : 0;
}

/* ------------------------------------------------- creation, teardown */

static struct sva_devmem *devmem_create(struct sva_ctx *ctx, u64 size)
{
	unsigned long i, span = ALIGN(size, SVA_DEVMEM_ALIGN);
	struct sva_devmem *dm;
	struct resource *res;
	void *ptr;
	int ret = -ENOMEM;

	dm = kzalloc(sizeof(*dm), GFP_KERNEL_ACCOUNT);
	if (!dm)
		return ERR_PTR(-ENOMEM);
	dm->npages = size >> PAGE_SHIFT;
	dm->slots = kvcalloc(dm->npages, sizeof(*dm->slots),
			     GFP_KERNEL_ACCOUNT);
	if (!dm->slots)
		goto free;
	res = request_free_mem_region(&iomem_resource, span, "sva_shim");
	if (IS_ERR(res)) {
		ret = PTR_ERR(res);
		goto free;
	}
	dm->ctx = ctx;
	spin_lock_init(&dm->lock);
	INIT_LIST_HEAD(&dm->free);
	INIT_LIST_HEAD(&dm->lru);
	dm->pgmap.type = MEMORY_DEVICE_PRIVATE;
	dm->pgmap.range.start = res->start;
	dm->pgmap.range.end = res->end;
	dm->pgmap.nr_range = 1;
	dm->pgmap.ops = &sva_devmem_ops;
	dm->pgmap.owner = ctx;
	ptr = memremap_pages(&dm->pgmap, numa_node_id());
	if (IS_ERR_OR_NULL(ptr)) {
		ret = ptr ? PTR_ERR(ptr) : -EFAULT;
		release_mem_region(res->start, resource_size(res));
		goto free;
	}
	dm->pfn_first = PHYS_PFN(res->start);
	/* Only the size asked for is handed out; the rest is alignment. */
	for (i = 0; i < dm->npages; i++)
		list_add_tail(&dm->slots[i].node, &dm->free);
	return dm;
free:
	kvfree(dm->slots);
	kfree(dm);
	return ERR_PTR(ret);
}

long sva_ioctl_devmem(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_shim_devmem d;
	struct sva_devmem *dm;
	long ret;

	if (copy_from_user(&d, uarg, sizeof(d)))
		return -EFAULT;
	if (d.flags || d.pad || !d.size || !PAGE_ALIGNED(d.size) ||
	    d.size > (u64)READ_ONCE(max_devmem_mb) << 20)
		return -EINVAL;
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	mutex_lock(&ctx->bind_lock);
	ret = -EBUSY;
	if (ctx->devmem)
		goto unlock;
	ret = sva_user_devmem_charge(ctx->user, d.size >> PAGE_SHIFT);
	if (ret)
		goto unlock;
	dm = devmem_create(ctx, d.size);
	if (IS_ERR(dm)) {
		sva_user_devmem_uncharge(ctx->user, d.size >> PAGE_SHIFT);
		ret = PTR_ERR(dm);
		goto unlock;
	}
	/* Published whole: MIGRATE reads it with smp_load_acquire(). */
	smp_store_release(&ctx->devmem, dm);
	mutex_lock(&sva_devmems_lock);
	list_add(&dm->node, &sva_devmems);
	atomic_inc(&sva_devmems_nr);
	mutex_unlock(&sva_devmems_lock);
	ret = 0;
unlock:
	mutex_unlock(&ctx->bind_lock);
	return ret;
}

/*
 * The context is going: move every page still in its memory back to host
 * memory, wherever it is mapped, then take the memory away. memunmap_pages()
 * waits for every device page to be freed, so this must not give up while
 * one is in use (a CPU fault moving it may hold it for a moment).
 */
void sva_devmem_fini(struct sva_ctx *ctx)
{
	struct sva_devmem *dm = ctx->devmem;
	unsigned long *src, *dst, moved, tries;

	if (!dm)
		return;
	mutex_lock(&sva_devmems_lock);
	list_del(&dm->node);
	atomic_dec(&sva_devmems_nr);
	mutex_unlock(&sva_devmems_lock);
	src = kvcalloc(dm->npages, sizeof(*src), GFP_KERNEL | __GFP_NOFAIL);
	dst = kvcalloc(dm->npages, sizeof(*dst), GFP_KERNEL | __GFP_NOFAIL);
	for (tries = 0; READ_ONCE(dm->used); tries++) {
		moved = evict_range(dm->pfn_first, dm->npages, src, dst,
				    GFP_HIGHUSER_MOVABLE | __GFP_NOFAIL);
		sva_stat_add(ctx, SVA_ST_EVICTIONS, moved);
		if (READ_ONCE(dm->used) && tries == 100)
			pr_warn_ratelimited("%lu device pages still in use at close\n",
					    READ_ONCE(dm->used));
		if (READ_ONCE(dm->used))
			schedule_timeout_uninterruptible(1);
	}
	kvfree(src);
	kvfree(dst);
	memunmap_pages(&dm->pgmap);
	release_mem_region(dm->pgmap.range.start, range_len(&dm->pgmap.range));
	sva_user_devmem_uncharge(ctx->user, dm->npages);
	kvfree(dm->slots);
	kfree(dm);
	ctx->devmem = NULL;
}

bool sva_devmem_supported(void)
{
	return true;
}

#else /* !CONFIG_DEVICE_PRIVATE: no device memory, say so */

long sva_ioctl_devmem(struct sva_ctx *ctx, void __user *uarg)
{
	return -EOPNOTSUPP;
}

long sva_ioctl_migrate(struct sva_ctx *ctx, void __user *uarg)
{
	return -EOPNOTSUPP;
}

void sva_devmem_fini(struct sva_ctx *ctx)
{
}

void sva_devmem_touch(struct sva_ctx *ctx, struct page *dpage)
{
}

bool sva_devmem_page(struct sva_ctx *ctx, struct page *page)
{
	return false;
}

bool sva_devmem_supported(void)
{
	return false;
}

int sva_devmem_mark_remote(struct sva_ctx *ctx, unsigned long start,
			   unsigned long end, unsigned long *pfns, u8 *st)
{
	return 0;
}

#endif /* CONFIG_DEVICE_PRIVATE */
