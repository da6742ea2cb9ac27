// SPDX-License-Identifier: GPL-2.0
/*
 * The software device's view of the bound mm, mirrored with HMM as
 * lib/test_hmm.c does: a device page table (an xarray of struct page
 * pointers, tagged writable) that holds only what the interval notifier
 * has not invalidated, filled through hmm_range_fault() under the canonical
 * mmu_interval_read_begin()/read_retry() loop. Device reads and writes go
 * through that table; a page not in it is faulted through the MM (the page
 * request path). The same notifier advances the sequences of the mirror
 * ranges (ranges.c) an invalidation overlaps, and tells userspace once.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/syscall.h>

#include "shim.h"

/*
 * mremap() moving pages issues MMU_NOTIFY_UNMAP for the old range, like
 * munmap(); userspace (and the software device, which hears userfaultfd's
 * REMAP) tells them apart. Tell by the caller: the mm's own task in the
 * mremap syscall, the old VMA still in place (it is moving the page
 * tables; when mremap() unmaps, the VMA has left the tree already). The
 * caller holds the mmap lock. 32-bit mremap() is reported as an unmap.
 */
static bool range_is_mremap_move(const struct mmu_notifier_range *range)
{
	struct pt_regs *regs;

	if (!in_task() || current->mm != range->mm || in_compat_syscall())
		return false;
	regs = task_pt_regs(current);
	if (!regs || syscall_get_nr(current, regs) != __NR_mremap)
		return false;
	return vma_lookup(range->mm, range->start);
}

static u32 inval_reason(const struct mmu_notifier_range *range)
{
	switch (range->event) {
	case MMU_NOTIFY_UNMAP:
		if (range_is_mremap_move(range))
			return SVA_SHIM_INVAL_REMAP;
		return SVA_SHIM_INVAL_UNMAP;
	case MMU_NOTIFY_CLEAR:
		return SVA_SHIM_INVAL_CLEAR;
	case MMU_NOTIFY_PROTECTION_VMA:
	case MMU_NOTIFY_PROTECTION_PAGE:
		return SVA_SHIM_INVAL_PROTECTION;
	case MMU_NOTIFY_RELEASE:
		return SVA_SHIM_INVAL_RELEASE;
	default:
		return SVA_SHIM_INVAL_OTHER;
	}
}

/*
 * Drop [start, end) from the device page table, but for the entries held
 * exclusively if @keep_excl; *revoked: how many of the dropped entries
 * were held exclusively. Caller holds ctx->lock.
 */
static unsigned long pt_zap(struct sva_ctx *ctx, unsigned long start,
			    unsigned long end, bool keep_excl,
			    unsigned long *revoked)
{
	unsigned long pfn, dropped = 0;
	void *entry;

	*revoked = 0;
	xa_for_each_range(&ctx->pt, pfn, entry, start >> PAGE_SHIFT,
			  (end >> PAGE_SHIFT) - 1) {
		if (xa_get_mark(&ctx->pt, pfn, SVA_PT_EXCL)) {
			if (keep_excl)
				continue;
			(*revoked)++;
		}
		xa_erase(&ctx->pt, pfn);
		dropped++;
	}
	return dropped;
}

/* Take ctx->lock from a notifier; false if it may not sleep and can't. */
static bool notifier_lock(struct sva_ctx *ctx,
			  const struct mmu_notifier_range *range)
{
	if (mmu_notifier_range_blockable(range)) {
		mutex_lock(&ctx->lock);
		return true;
	}
	return mutex_trylock(&ctx->lock);
}

static bool sva_pt_invalidate(struct mmu_interval_notifier *mni,
			      const struct mmu_notifier_range *range,
			      unsigned long cur_seq)
{
	struct sva_ctx *ctx = container_of(mni, struct sva_ctx, notifier);
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_INVALIDATE,
		.start = range->start, .end = range->end,
		.reason = inval_reason(range),
	};
	/*
	 * Our own grant (exclusive.c) keeps the device's translations; it
	 * changes only what a snapshot says, which the mirror ranges hear.
	 */
	bool own = range->event == MMU_NOTIFY_EXCLUSIVE && range->owner == ctx;
	/*
	 * A migration leaves exclusive entries where they are, whoever
	 * migrates (our devmem.c, another context's, its migrate_to_ram()):
	 * only migrate_vma_*() send MMU_NOTIFY_MIGRATE, and their walk
	 * skips every non-present entry but device-private ones. The CPU's
	 * PTE stays exclusive: the pages the device holds stay held.
	 */
	bool migrate = range->event == MMU_NOTIFY_MIGRATE;
	unsigned long dropped = 0, revoked = 0;

	if (!notifier_lock(ctx, range))
		return false;
	if (!own) {
		mmu_interval_set_seq(mni, cur_seq);
		dropped = pt_zap(ctx, range->start, range->end, migrate,
				 &revoked);
	}
	/*
	 * A grant in progress over this range: the mapping changed under
	 * it, unless this restores a page's PTE for it to be granted (a
	 * grant has the page locked, which any later restore waits for).
	 */
	if (range->start < ctx->excl_end && range->end > ctx->excl_start &&
	    range->event != MMU_NOTIFY_EXCLUSIVE)
		ctx->excl_hit = true;
	ev.mirror = sva_ranges_advance(ctx, range->start, range->end);
	if (dropped || ev.mirror)
		ev.seq = ++ctx->inval_seq;
	ev.pasid = ctx->pasid;
	mutex_unlock(&ctx->lock);

	sva_stat_add(ctx, SVA_ST_INVALIDATIONS, 1);
	sva_stat_add(ctx, SVA_ST_ATC_INVALIDATED, dropped);
	sva_stat_add(ctx, SVA_ST_EXCL_REVOKES, revoked);
	/* Only invalidations that cost the device or a mirror are told. */
	if (dropped || ev.mirror)
		sva_event_push(ctx, &ev);
	return true;
}

static const struct mmu_interval_notifier_ops sva_pt_ops = {
	.invalidate = sva_pt_invalidate,
};

int sva_mirror_init(struct sva_ctx *ctx)
{
	xa_init_flags(&ctx->pt, XA_FLAGS_ACCOUNT);
	sva_ranges_init(ctx);
	return mmu_interval_notifier_insert(&ctx->notifier, ctx->mm, 0,
					    ULONG_MAX & PAGE_MASK,
					    &sva_pt_ops);
}

/* ------------------------------------------------------------- faults */

/*
 * Install @range's pages in the device page table. Caller holds ctx->lock
 * and has checked that no invalidation raced with hmm_range_fault().
 */
static int pt_install(struct sva_ctx *ctx, struct hmm_range *range)
{
	unsigned long *pfns = range->hmm_pfns, addr, tag;
	struct page *page;
	void *entry;

	for (addr = range->start; addr < range->end;
	     addr += PAGE_SIZE, pfns++) {
		if (!(*pfns & HMM_PFN_VALID))
			continue;
		page = hmm_pfn_to_page(*pfns);
		tag = *pfns & HMM_PFN_WRITE ? SVA_PT_WRITE : 0;
		/* Ours (dev_private_owner): the device reads it locally. */
		if (sva_devmem_page(ctx, page))
			tag |= SVA_PT_DEVMEM;
		entry = xa_tag_pointer(page, tag);
		/* No reclaim: it may invalidate and wait for ctx->lock. */
		entry = xa_store(&ctx->pt, addr >> PAGE_SHIFT, entry,
				 GFP_NOWAIT);
		if (xa_is_err(entry))
			return xa_err(entry);
	}
	return 0;
}

/*
 * hmm_range_fault() @range, walking again while an invalidation ends the
 * walk (-EBUSY: one the fault itself caused, past a PMD, or another's)
 * until @deadline (in jiffies) passes. The deadline bounds retries only:
 * a first walk always runs, so a slow caller that progresses (many runs,
 * a loaded machine) isn't failed for the time its earlier walks took.
 * Caller holds the mmap read lock; range->notifier_seq is the last walk's.
 */
int sva_range_fault(struct hmm_range *range, unsigned long deadline)
{
	int ret;

	for (;;) {
		/* An OOM-killed task must not go on faulting for the device. */
		if (fatal_signal_pending(current))
			return -EINTR;
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		ret = hmm_range_fault(range);
		if (ret != -EBUSY || time_after(jiffies, deadline))
			return ret;
	}
}

/*
 * sva_range_fault() until no invalidation races it either, or @deadline
 * passes. Returns 0 with ctx->lock held: @range's pfns are current until
 * it is dropped.
 */
static int range_fault_locked(struct sva_ctx *ctx, struct hmm_range *range,
			      unsigned long deadline)
{
	int ret;

	for (;;) {
		mmap_read_lock(ctx->mm);
		ret = sva_range_fault(range, deadline);
		mmap_read_unlock(ctx->mm);
		if (ret)
			return ret;
		mutex_lock(&ctx->lock);
		if (!mmu_interval_read_retry(range->notifier,
					     range->notifier_seq))
			return 0;
		mutex_unlock(&ctx->lock);
		if (time_after(jiffies, deadline))
			return -EBUSY;
	}
}

/* What a page request must do, bit i for page i of its range. */
struct sva_fault_need {
	DECLARE_BITMAP(fault, SVA_FAULT_BATCH);	/* fault it in */
	DECLARE_BITMAP(take, SVA_FAULT_BATCH);	/* from device memory first */
};

/*
 * Which pages of [start, end) a page request must fault in: those the
 * device page table lacks, or has read-only for a @write. Not the pages
 * the device has already, held exclusively or in its memory: a fault
 * would take them back. But a page of its memory that it has read-only
 * (migrated from a read-only PTE) must come back to host memory for a
 * @write, as for a CPU write: hmm_range_fault() reports our device pages
 * without faulting them, however they are asked for, and the write would
 * find the page read-only again and again. Caller holds ctx->lock.
 */
static void pt_need(struct sva_ctx *ctx, unsigned long start,
		    unsigned long end, bool write, struct sva_fault_need *need)
{
	unsigned long i, n = (end - start) >> PAGE_SHIFT;
	unsigned long index = start >> PAGE_SHIFT, tag;
	void *entry;

	bitmap_zero(need->fault, n);
	bitmap_zero(need->take, n);
	for (i = 0; i < n; i++, index++) {
		entry = xa_load(&ctx->pt, index);
		if (!entry) {
			__set_bit(i, need->fault);
			continue;
		}
		tag = xa_pointer_tag(entry);
		if (xa_get_mark(&ctx->pt, index, SVA_PT_EXCL) ||
		    !write || (tag & SVA_PT_WRITE))
			continue;
		__set_bit(i, need->fault);
		if (tag & SVA_PT_DEVMEM)
			__set_bit(i, need->take);
	}
}

/*
 * hmm_range_fault() @range (its default_flags say what to fault), install
 * what it found.
 */
static int range_install(struct sva_ctx *ctx, struct hmm_range *range,
			 unsigned long deadline)
{
	int ret = range_fault_locked(ctx, range, deadline);

	if (ret)
		return ret;
	ret = pt_install(ctx, range);
	mutex_unlock(&ctx->lock);
	return ret;
}

/* What a request for @write over [start, end) must do now (pt_need()). */
static void need_now(struct sva_ctx *ctx, unsigned long start,
		     unsigned long end, bool write, struct sva_fault_need *need)
{
	mutex_lock(&ctx->lock);
	pt_need(ctx, start, end, write, need);
	mutex_unlock(&ctx->lock);
}

/*
 * Bring the pages in @take (of the range from @start) back from our
 * device memory for a write, as a CPU write would: -EFAULT where the VMA
 * forbids the write. The write fault that follows gives the device its
 * own copy. The fault is the device's, not current's (a kthread's, or a
 * thread whose protection keys are not the device's): FAULT_FLAG_REMOTE,
 * as hmm_range_fault() faults, so that neither pkeys nor accounting take
 * current for the accessor.
 */
static int devmem_take_back(struct sva_ctx *ctx, unsigned long start,
			    const unsigned long *take, unsigned long npages)
{
	unsigned long i;
	int ret = 0;

	/* Our own bitmap: the common case takes no lock at all. */
	if (bitmap_empty(take, npages))
		return 0;
	mmap_read_lock(ctx->mm);
	for_each_set_bit(i, take, npages) {
		ret = fixup_user_fault(ctx->mm, start + i * PAGE_SIZE,
				       FAULT_FLAG_WRITE | FAULT_FLAG_REMOTE,
				       NULL);
		if (ret)
			break;
	}
	mmap_read_unlock(ctx->mm);
	return ret;
}

/*
 * Fault in what @need says the pages of the range from @start lack: take
 * back what must come from our device memory first, then fault each
 * maximal run of lacking pages alone. hmm_range_fault() faults from the
 * first page that needs it to the end of its walk step, whatever the
 * other pages' request flags say, which would take back the pages beside
 * it that the device holds exclusively or has in its memory. A run holds
 * none of those.
 */
static int fault_need(struct sva_ctx *ctx, struct hmm_range *range,
		      unsigned long start, unsigned long npages,
		      const struct sva_fault_need *need, unsigned long deadline)
{
	unsigned long *pfns = range->hmm_pfns, rs, re;
	int ret = devmem_take_back(ctx, start, need->take, npages);

	for_each_set_bitrange(rs, re, need->fault, npages) {
		if (ret)
			break;
		range->start = start + rs * PAGE_SIZE;
		range->end = start + re * PAGE_SIZE;
		range->hmm_pfns = pfns + rs;
		ret = range_install(ctx, range, deadline);
	}
	range->hmm_pfns = pfns;
	return ret;
}

/*
 * Install what the MM maps in [start, end); if @flags ask for a fault,
 * fault in then what the device lacks, until it lacks nothing: what was
 * there at first may have gone since (a take-back migrates its whole
 * granule, do_swap_page() gives up on a page it can't lock at once),
 * and SUCCESS says every page asked for is there. @deadline bounds the
 * passes after the first; the device asks again after a FAILURE.
 */
static int mirror_range(struct sva_ctx *ctx, unsigned long start,
			unsigned long end, unsigned long flags)
{
	unsigned long deadline = jiffies +
				 msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	unsigned long npages = (end - start) >> PAGE_SHIFT;
	unsigned long pfns[SVA_FAULT_BATCH];
	bool write = flags & HMM_PFN_REQ_WRITE;
	struct sva_fault_need need;
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = ctx,
	};
	bool again = false;
	int ret;

	if (!mmget_not_zero(ctx->mm))
		return -EFAULT;	/* the process is exiting */
	ret = range_install(ctx, &range, deadline);
	range.default_flags = flags;
	while (!ret && flags) {
		need_now(ctx, start, end, write, &need);
		if (bitmap_empty(need.fault, npages))
			break;
		if (again && time_after(jiffies, deadline)) {
			ret = -EBUSY;
			break;
		}
		again = true;
		ret = fault_need(ctx, &range, start, npages, &need, deadline);
	}
	mmput(ctx->mm);
	return ret;
}

/*
 * Translate [start, end) without faulting, as an ATS translation request
 * does: install what the CPU page table maps now. Errors are left to the
 * page request that follows when a page is still missing.
 */
void sva_translate(struct sva_ctx *ctx, unsigned long start,
		   unsigned long end)
{
	mirror_range(ctx, start, end, 0);
}

/*
 * Does the mm allow the device's access at @addr? hmm_range_fault() says
 * -EFAULT both for an address no VMA allows and for a fault the MM could
 * not resolve (poisoned page, OOM, SIGBUS past a file's end): look.
 */
static bool access_allowed(struct sva_ctx *ctx, unsigned long addr,
			   bool write)
{
	vm_flags_t need = write ? VM_WRITE : VM_READ;
	struct vm_area_struct *vma;
	bool allowed;

	if (!mmget_not_zero(ctx->mm))
		return false;
	mmap_read_lock(ctx->mm);
	vma = vma_lookup(ctx->mm, addr);
	allowed = vma && (vma->vm_flags & need) &&
		  !(vma->vm_flags & (VM_IO | VM_PFNMAP));
	mmap_read_unlock(ctx->mm);
	mmput(ctx->mm);
	return allowed;
}

/*
 * SVA_SHIM_STATUS_* for a page request at @addr that failed with @err:
 * INVALID when the mapping forbids the access (a CPU would get SIGSEGV),
 * FAILURE when the MM could not resolve an access it allows.
 */
u32 sva_fault_status(struct sva_ctx *ctx, int err, unsigned long addr,
		     bool write)
{
	if (err == -EPERM)
		return SVA_SHIM_STATUS_INVALID;
	if (err == -EFAULT && !access_allowed(ctx, addr, write))
		return SVA_SHIM_STATUS_INVALID;
	return SVA_SHIM_STATUS_FAILURE;
}

static u32 fault_response(u32 status)
{
	switch (status) {
	case SVA_SHIM_STATUS_OK:
		return SVA_SHIM_RESP_SUCCESS;
	case SVA_SHIM_STATUS_INVALID:
		return SVA_SHIM_RESP_INVALID;
	default:
		return SVA_SHIM_RESP_FAILURE;
	}
}

/* Fault [start, end) in for the device, as one page request group. */
int sva_fault(struct sva_ctx *ctx, unsigned long start, unsigned long end,
	      bool write)
{
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_PAGE_REQUEST,
		.pasid = ctx->pasid, .start = start, .end = end,
		.access = write ? 2 : 1,
	};
	int ret;

	ret = sva_inject_fault();
	if (!ret)
		ret = mirror_range(ctx, start, end, HMM_PFN_REQ_FAULT |
				   (write ? HMM_PFN_REQ_WRITE : 0));
	ev.response = fault_response(ret ? sva_fault_status(ctx, ret, start,
							    write) :
				     SVA_SHIM_STATUS_OK);
	sva_stat_add(ctx, SVA_ST_PAGE_REQUESTS, (end - start) >> PAGE_SHIFT);
	sva_stat_add(ctx, SVA_ST_PAGE_GROUPS, 1);
	sva_stat_add(ctx, ret ? SVA_ST_FAULTS_FAILED : SVA_ST_FAULTS_RESOLVED,
		     1);
	sva_event_push(ctx, &ev);
	return ret;
}

/* ----------------------------------------------------------- snapshot */

static u8 pfn_state(struct sva_ctx *ctx, unsigned long pfn)
{
	u8 st = 0;

	if (pfn & HMM_PFN_ERROR)
		return SVA_SHIM_PAGE_ERROR;
	if (!(pfn & HMM_PFN_VALID))
		return 0;
	st = SVA_SHIM_PAGE_VALID;
	if (pfn & HMM_PFN_WRITE)
		st |= SVA_SHIM_PAGE_WRITE;
	if (hmm_pfn_to_map_order(pfn))
		st |= SVA_SHIM_PAGE_HUGE;
	if (sva_devmem_page(ctx, hmm_pfn_to_page(pfn)))
		st |= SVA_SHIM_PAGE_DEVICE_LOCAL;
	return st;
}

/*
 * Snapshot [start, end) (at most SVA_FAULT_BATCH pages) into @st. The pages
 * in @req (NULL: none) are faulted in (for writing if @write) by the look
 * itself, which waits out migration and NUMA hinting as a fault does.
 */
static int snapshot_batch(struct sva_ctx *ctx, unsigned long start,
			  unsigned long end, u8 *st, const unsigned long *req,
			  bool write)
{
	unsigned long npages = (end - start) >> PAGE_SHIFT;
	unsigned long pfns[SVA_FAULT_BATCH];
	unsigned long want = HMM_PFN_REQ_FAULT | (write ? HMM_PFN_REQ_WRITE : 0);
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start, .end = end,
		.hmm_pfns = pfns,
		.pfn_flags_mask = req ? want : 0,
		.dev_private_owner = ctx,
	};
	unsigned long i, timeout = jiffies +
				   msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	int ret;

	do {
		if (fatal_signal_pending(current))
			return -EINTR;
		if (time_after(jiffies, timeout))
			return -EBUSY;
		/* In and out: a walk cut short left its answers here. */
		for (i = 0; i < npages; i++)
			pfns[i] = req && test_bit(i, req) ? want : 0;
		range.notifier_seq = mmu_interval_read_begin(&ctx->notifier);
		mmap_read_lock(ctx->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(ctx->mm);
	} while (ret == -EBUSY);
	if (ret)
		return ret;
	for (i = 0; i < npages; i++) {
		st[i] = pfn_state(ctx, pfns[i]);
		/* The CPU's PTE is gone, the page is the device's. */
		if (sva_excl_held(ctx, start + i * PAGE_SIZE))
			st[i] = SVA_SHIM_PAGE_VALID | SVA_SHIM_PAGE_WRITE |
				SVA_SHIM_PAGE_EXCLUSIVE;
	}
	return sva_devmem_mark_remote(ctx, start, end, pfns, st);
}

/*
 * Fault in, page by page (a page request group each, as a device would
 * raise them), what a snapshot asked for and lacks. The pages that have
 * what was asked for, then or now, go into @have.
 */
static void snapshot_fault(struct sva_ctx *ctx, unsigned long start,
			   unsigned long end, const u8 *st, bool write,
			   unsigned long *have)
{
	u8 want = SVA_SHIM_PAGE_VALID | (write ? SVA_SHIM_PAGE_WRITE : 0);
	unsigned long addr, i;

	bitmap_zero(have, SVA_FAULT_BATCH);
	for (addr = start, i = 0; addr < end && !fatal_signal_pending(current);
	     addr += PAGE_SIZE, i++) {
		/* Faulting it would take it back from the device. */
		if (st[i] & SVA_SHIM_PAGE_EXCLUSIVE)
			continue;
		if ((st[i] & want) == want ||
		    (!(st[i] & SVA_SHIM_PAGE_ERROR) &&
		     !sva_fault(ctx, addr, addr + PAGE_SIZE, write)))
			__set_bit(i, have);
	}
}

/*
 * Snapshot [start, end), faulting in first what @flags ask for. A page
 * that had what was asked for, or faulted in, and lacks it in the look
 * after the faults (migration, NUMA balancing and khugepaged take a page
 * away for a moment: the debug VM's fuzzer saw one read as absent) is
 * looked at again alone, as a fault. Alone: hmm_range_fault() faults from
 * a page that needs it to the end of its walk step, requested or not,
 * which would take back held exclusive pages and device memory beside
 * it. Should that fault fail now (unmapped, mprotect()ed meanwhile), the
 * page keeps what the plain look found.
 */
static int snapshot_faulting(struct sva_ctx *ctx, unsigned long start,
			     unsigned long end, u32 flags, u8 *st)
{
	DECLARE_BITMAP(have, SVA_FAULT_BATCH);
	const unsigned long one = 1;	/* the bitmap of a one-page look */
	bool write = flags & SVA_SHIM_SNAP_FAULT_WRITE;
	u8 want = SVA_SHIM_PAGE_VALID | (write ? SVA_SHIM_PAGE_WRITE : 0);
	int ret = snapshot_batch(ctx, start, end, st, NULL, false);
	unsigned long i, addr;
	u8 again;

	if (ret || !flags)
		return ret;
	snapshot_fault(ctx, start, end, st, write, have);
	ret = snapshot_batch(ctx, start, end, st, NULL, false);
	for_each_set_bit(i, have, (end - start) >> PAGE_SHIFT) {
		if (ret || (st[i] & want) == want)
			continue;
		addr = start + i * PAGE_SIZE;
		ret = snapshot_batch(ctx, addr, addr + PAGE_SIZE, &again, &one,
				     write);
		if (!ret)
			st[i] = again;
		else if (ret == -EFAULT || ret == -EPERM)
			ret = 0;
	}
	return ret;
}

long sva_ioctl_snapshot(struct sva_ctx *ctx, void __user *uarg)
{
	u32 fault_flags = SVA_SHIM_SNAP_FAULT_READ | SVA_SHIM_SNAP_FAULT_WRITE;
	struct sva_shim_snapshot s;
	unsigned long addr, end;
	u8 st[SVA_FAULT_BATCH];
	int ret = 0;

	if (copy_from_user(&s, uarg, sizeof(s)))
		return -EFAULT;
	if (s.flags & ~fault_flags || s.pad || !s.len ||
	    !PAGE_ALIGNED(s.addr) || !PAGE_ALIGNED(s.len) ||
	    s.len > SVA_SHIM_MAX_XFER || s.addr + s.len < s.addr ||
	    s.addr + s.len > TASK_SIZE)
		return -EINVAL;
	if (!mmget_not_zero(ctx->mm))
		return -ESRCH;
	for (addr = s.addr; addr < s.addr + s.len; addr = end) {
		end = min_t(unsigned long, s.addr + s.len,
			    addr + SVA_FAULT_BATCH * PAGE_SIZE);
		ret = snapshot_faulting(ctx, addr, end, s.flags, st);
		if (ret)
			break;
		if (copy_to_user(u64_to_user_ptr(s.states +
				 ((addr - s.addr) >> PAGE_SHIFT)), st,
				 (end - addr) >> PAGE_SHIFT)) {
			ret = -EFAULT;
			break;
		}
	}
	mmput(ctx->mm);
	return ret;
}

void sva_mirror_fini(struct sva_ctx *ctx)
{
	mmu_interval_notifier_remove(&ctx->notifier);
	sva_ranges_fini(ctx);
	xa_destroy(&ctx->pt);
}
