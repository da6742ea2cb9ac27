// SPDX-License-Identifier: GPL-2.0
/*
 * The software device's view of the bound mm, mirrored with HMM as
 * lib/test_hmm.c does: a device page table (an xarray of struct page
 * pointers, tagged writable) that holds only what the interval notifier
 * has not invalidated, filled through hmm_range_fault() under the canonical
 * mmu_interval_read_begin()/read_retry() loop. Device reads and writes go
 * through that table; a page not in it is faulted through the MM (the page
 * request path). User-registered mirror ranges have notifiers of their own,
 * whose sequences tell userspace a snapshot went stale.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "shim.h"

#define SVA_PT_WRITE 1	/* xarray pointer tag: mapped writable */

static u32 inval_reason(enum mmu_notifier_event ev)
{
	switch (ev) {
	case MMU_NOTIFY_UNMAP:
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

/* Drop [start, end) from the device page table. Caller holds ctx->lock. */
static unsigned long pt_zap(struct sva_ctx *ctx, unsigned long start,
			    unsigned long end)
{
	unsigned long pfn, dropped = 0;
	void *entry;

	xa_for_each_range(&ctx->pt, pfn, entry, start >> PAGE_SHIFT,
			  (end >> PAGE_SHIFT) - 1) {
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
		.reason = inval_reason(range->event),
	};
	unsigned long dropped;

	if (!notifier_lock(ctx, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	dropped = pt_zap(ctx, range->start, range->end);
	ev.pasid = ctx->pasid;
	mutex_unlock(&ctx->lock);

	sva_stat_add(ctx, SVA_ST_INVALIDATIONS, 1);
	sva_stat_add(ctx, SVA_ST_ATC_INVALIDATED, dropped);
	/* Only invalidations that cost the device something are told. */
	if (dropped)
		sva_event_push(ctx, &ev);
	return true;
}

static const struct mmu_interval_notifier_ops sva_pt_ops = {
	.invalidate = sva_pt_invalidate,
};

int sva_mirror_init(struct sva_ctx *ctx)
{
	xa_init(&ctx->pt);
	INIT_LIST_HEAD(&ctx->mirrors);
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
	unsigned long *pfns = range->hmm_pfns, addr;
	void *entry;

	for (addr = range->start; addr < range->end;
	     addr += PAGE_SIZE, pfns++) {
		if (!(*pfns & HMM_PFN_VALID))
			continue;
		entry = hmm_pfn_to_page(*pfns);
		if (*pfns & HMM_PFN_WRITE)
			entry = xa_tag_pointer(entry, SVA_PT_WRITE);
		entry = xa_store(&ctx->pt, addr >> PAGE_SHIFT, entry,
				 GFP_ATOMIC);
		if (xa_is_err(entry))
			return xa_err(entry);
	}
	return 0;
}

/* hmm_range_fault() until no invalidation races it; installs the pages. */
static int range_fault_install(struct sva_ctx *ctx, struct hmm_range *range)
{
	unsigned long timeout = jiffies +
				msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	int ret;

	for (;;) {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		range->notifier_seq = mmu_interval_read_begin(range->notifier);
		mmap_read_lock(ctx->mm);
		ret = hmm_range_fault(range);
		mmap_read_unlock(ctx->mm);
		if (ret == -EBUSY)
			continue;
		if (ret)
			return ret;
		mutex_lock(&ctx->lock);
		if (!mmu_interval_read_retry(range->notifier,
					     range->notifier_seq))
			break;
		mutex_unlock(&ctx->lock);
	}
	ret = pt_install(ctx, range);
	mutex_unlock(&ctx->lock);
	return ret;
}

/* hmm_range_fault() [start, end) with @flags; install what it found. */
static int mirror_range(struct sva_ctx *ctx, unsigned long start,
			unsigned long end, unsigned long flags)
{
	unsigned long pfns[SVA_FAULT_BATCH];
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start,
		.end = end,
		.hmm_pfns = pfns,
		.default_flags = flags,
		.dev_private_owner = ctx,
	};
	int ret;

	if (!mmget_not_zero(ctx->mm))
		return -EFAULT;	/* the process is exiting */
	ret = range_fault_install(ctx, &range);
	mmput(ctx->mm);
	return ret;
}

/*
 * Translate [start, end) without faulting, as an ATS translation request
 * does: install what the CPU page table maps now. Errors are left to the
 * page request that follows when a page is still missing.
 */
static void sva_translate(struct sva_ctx *ctx, unsigned long start,
			  unsigned long end)
{
	mirror_range(ctx, start, end, 0);
}

/* Fault [start, end) in for the device, as one page request group. */
static int sva_fault(struct sva_ctx *ctx, unsigned long start,
		     unsigned long end, bool write)
{
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_PAGE_REQUEST,
		.pasid = ctx->pasid, .start = start, .end = end,
		.access = write ? 2 : 1,
	};
	int ret;

	if (sva_should_fail(SVA_INJECT_FAULT))
		ret = sva_inject_fault_error();
	else
		ret = mirror_range(ctx, start, end, HMM_PFN_REQ_FAULT |
				   (write ? HMM_PFN_REQ_WRITE : 0));
	ev.response = !ret ? SVA_SHIM_RESP_SUCCESS :
		      ret == -EFAULT || ret == -EPERM ? SVA_SHIM_RESP_INVALID :
		      SVA_SHIM_RESP_FAILURE;
	sva_stat_add(ctx, SVA_ST_PAGE_REQUESTS, (end - start) >> PAGE_SHIFT);
	sva_stat_add(ctx, SVA_ST_PAGE_GROUPS, 1);
	sva_stat_add(ctx, ret ? SVA_ST_FAULTS_FAILED : SVA_ST_FAULTS_RESOLVED,
		     1);
	sva_event_push(ctx, &ev);
	return ret;
}

/* --------------------------------------------------------- device I/O */

/*
 * Move one page between @bounce and the page mirrored at @addr. Returns
 * -ENOENT when the device page table has no (writable, for @write) entry.
 * Caller holds ctx->lock, which keeps the page from being invalidated.
 */
static int pt_access(struct sva_ctx *ctx, unsigned long addr, void *bounce,
		     bool write)
{
	void *entry = xa_load(&ctx->pt, addr >> PAGE_SHIFT);
	struct page *page;
	void *va;

	sva_stat_add(ctx, SVA_ST_TRANSLATIONS, 1);
	if (!entry || (write && xa_pointer_tag(entry) != SVA_PT_WRITE)) {
		sva_stat_add(ctx, SVA_ST_ATC_MISSES, 1);
		return -ENOENT;
	}
	sva_stat_add(ctx, SVA_ST_ATC_HITS, 1);
	page = xa_untag_pointer(entry);
	va = kmap_local_page(page);
	if (write)
		memcpy(va, bounce, PAGE_SIZE);
	else
		memcpy(bounce, va, PAGE_SIZE);
	kunmap_local(va);
	return 0;
}

static int access_check(const struct sva_shim_access *a)
{
	if (a->flags & ~SVA_SHIM_ACCESS_NO_FAULT || a->status ||
	    a->bytes_done || a->fault_addr || a->faults)
		return -EINVAL;
	if (!a->len || !PAGE_ALIGNED(a->addr) || !PAGE_ALIGNED(a->len) ||
	    a->len > SVA_SHIM_MAX_XFER || a->addr + a->len < a->addr ||
	    a->addr + a->len > TASK_SIZE)
		return -EINVAL;
	return 0;
}

static u32 fault_status(int err)
{
	return err == -EFAULT || err == -EPERM ? SVA_SHIM_STATUS_INVALID :
						 SVA_SHIM_STATUS_FAILURE;
}

/* One page at @addr: fault it in as needed, then move it. */
static int access_page(struct sva_ctx *ctx, struct sva_shim_access *a,
		       unsigned long addr, void *bounce, bool write)
{
	unsigned long end = a->addr + a->len, batch;
	bool translated = false;
	int ret;

	for (;;) {
		mutex_lock(&ctx->lock);
		ret = pt_access(ctx, addr, bounce, write);
		mutex_unlock(&ctx->lock);
		if (ret != -ENOENT)
			return ret;
		batch = min(end, addr + SVA_FAULT_BATCH * PAGE_SIZE);
		/* First ask for a translation of what is mapped now... */
		if (!translated) {
			sva_translate(ctx, addr, batch);
			translated = true;
			continue;
		}
		if (a->flags & SVA_SHIM_ACCESS_NO_FAULT) {
			a->status = SVA_SHIM_STATUS_PAGE_FAULT;
			return -ENOENT;
		}
		/* ...then raise a page request for a batch, else the page. */
		ret = sva_fault(ctx, addr, batch, write);
		if (ret && batch > addr + PAGE_SIZE)
			ret = sva_fault(ctx, addr, addr + PAGE_SIZE, write);
		a->faults++;
		if (ret) {
			a->status = fault_status(ret);
			return ret;
		}
	}
}

long sva_ioctl_access(struct sva_ctx *ctx, void __user *uarg, bool write)
{
	struct sva_shim_access a;
	unsigned long addr;
	void *bounce;
	int ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	ret = access_check(&a);
	if (ret)
		return ret;
	if (sva_should_fail(SVA_INJECT_ALLOC))
		return -ENOMEM;
	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL);
	if (!bounce)
		return -ENOMEM;

	for (addr = a.addr; addr < a.addr + a.len; addr += PAGE_SIZE) {
		void __user *ubuf = u64_to_user_ptr(a.buf + (addr - a.addr));

		/*
		 * The user buffer is copied with ctx->lock dropped: it may
		 * be mirrored memory itself and fault.
		 */
		if (write && copy_from_user(bounce, ubuf, PAGE_SIZE)) {
			ret = -EFAULT;
			break;
		}
		ret = access_page(ctx, &a, addr, bounce, write);
		if (ret) {
			a.fault_addr = addr;
			ret = 0;	/* reported in status */
			break;
		}
		if (!write && copy_to_user(ubuf, bounce, PAGE_SIZE)) {
			ret = -EFAULT;
			break;
		}
		a.bytes_done += PAGE_SIZE;
	}
	kfree(bounce);
	sva_stat_add(ctx, SVA_ST_BYTES_DONE, a.bytes_done);
	if (ret)
		return ret;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}

/* ----------------------------------------------------------- snapshot */

static u8 pfn_state(unsigned long pfn)
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
	return st;
}

/* Snapshot [start, end) (at most SVA_FAULT_BATCH pages) into @st. */
static int snapshot_batch(struct sva_ctx *ctx, unsigned long start,
			  unsigned long end, u8 *st)
{
	unsigned long pfns[SVA_FAULT_BATCH];
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start, .end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = ctx,
	};
	unsigned long i, timeout = jiffies +
				   msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);
	int ret;

	do {
		if (time_after(jiffies, timeout))
			return -EBUSY;
		range.notifier_seq = mmu_interval_read_begin(&ctx->notifier);
		mmap_read_lock(ctx->mm);
		ret = hmm_range_fault(&range);
		mmap_read_unlock(ctx->mm);
	} while (ret == -EBUSY);
	if (ret)
		return ret;
	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++)
		st[i] = pfn_state(pfns[i]);
	return 0;
}

/* Fault in, page by page, what a snapshot asked for and lacks. */
static void snapshot_fault(struct sva_ctx *ctx, unsigned long start,
			   unsigned long end, const u8 *st, bool write)
{
	u8 want = SVA_SHIM_PAGE_VALID | (write ? SVA_SHIM_PAGE_WRITE : 0);
	unsigned long addr;

	for (addr = start; addr < end; addr += PAGE_SIZE, st++)
		if ((*st & want) != want && !(*st & SVA_SHIM_PAGE_ERROR))
			sva_fault(ctx, addr, addr + PAGE_SIZE, write);
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
		ret = snapshot_batch(ctx, addr, end, st);
		if (!ret && (s.flags & fault_flags)) {
			snapshot_fault(ctx, addr, end, st,
				       s.flags & SVA_SHIM_SNAP_FAULT_WRITE);
			ret = snapshot_batch(ctx, addr, end, st);
		}
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

/* ------------------------------------------------------ mirror ranges */

static bool sva_range_invalidate(struct mmu_interval_notifier *mni,
				 const struct mmu_notifier_range *range,
				 unsigned long cur_seq)
{
	struct sva_mirror_range *r =
		container_of(mni, struct sva_mirror_range, notifier);
	struct sva_ctx *ctx = r->ctx;
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_INVALIDATE,
		.start = max(range->start, mni->interval_tree.start),
		.end = min(range->end, mni->interval_tree.last + 1),
		.reason = inval_reason(range->event),
		.mirror = r->id,
	};

	if (!notifier_lock(ctx, range))
		return false;
	mmu_interval_set_seq(mni, cur_seq);
	ev.seq = atomic64_inc_return(&r->seq);
	ev.pasid = ctx->pasid;
	mutex_unlock(&ctx->lock);
	sva_event_push(ctx, &ev);
	return true;
}

static const struct mmu_interval_notifier_ops sva_range_ops = {
	.invalidate = sva_range_invalidate,
};

long sva_ioctl_mirror(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_mirror_range *r;
	struct sva_shim_mirror m;
	int ret;

	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	if (m.flags || m.id || m.seq || !m.len || !PAGE_ALIGNED(m.addr) ||
	    !PAGE_ALIGNED(m.len) || m.addr + m.len < m.addr ||
	    m.addr + m.len > TASK_SIZE)
		return -EINVAL;
	if (sva_should_fail(SVA_INJECT_ALLOC))
		return -ENOMEM;
	r = kzalloc(sizeof(*r), GFP_KERNEL);
	if (!r)
		return -ENOMEM;
	r->ctx = ctx;
	atomic64_set(&r->seq, 0);
	ret = mmu_interval_notifier_insert(&r->notifier, ctx->mm, m.addr,
					   m.len, &sva_range_ops);
	if (ret) {
		kfree(r);
		return ret;
	}
	mutex_lock(&ctx->lock);
	r->id = ++ctx->next_mirror_id;
	list_add_tail(&r->node, &ctx->mirrors);
	mutex_unlock(&ctx->lock);
	sva_live_get();
	m.id = r->id;
	m.seq = 0;
	return copy_to_user(uarg, &m, sizeof(m)) ? -EFAULT : 0;
}

/* Find mirror @id; caller holds ctx->lock. */
static struct sva_mirror_range *mirror_find(struct sva_ctx *ctx, u32 id)
{
	struct sva_mirror_range *r;

	list_for_each_entry(r, &ctx->mirrors, node)
		if (r->id == id)
			return r;
	return NULL;
}

long sva_ioctl_unmirror(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_mirror_range *r;
	u32 id;

	if (get_user(id, (u32 __user *)uarg))
		return -EFAULT;
	mutex_lock(&ctx->lock);
	r = mirror_find(ctx, id);
	if (r)
		list_del(&r->node);
	mutex_unlock(&ctx->lock);
	if (!r)
		return -ENOENT;
	/* Not under ctx->lock: removal waits for callbacks that take it. */
	mmu_interval_notifier_remove(&r->notifier);
	kfree(r);
	sva_live_put();
	return 0;
}

long sva_ioctl_mirror_seq(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_mirror_range *r;
	struct sva_shim_mirror m;

	if (copy_from_user(&m, uarg, sizeof(m)))
		return -EFAULT;
	mutex_lock(&ctx->lock);
	r = mirror_find(ctx, m.id);
	if (r) {
		m.addr = r->notifier.interval_tree.start;
		m.len = r->notifier.interval_tree.last + 1 - m.addr;
		m.seq = atomic64_read(&r->seq);
	}
	mutex_unlock(&ctx->lock);
	if (!r)
		return -ENOENT;
	return copy_to_user(uarg, &m, sizeof(m)) ? -EFAULT : 0;
}

void sva_mirror_fini(struct sva_ctx *ctx)
{
	struct sva_mirror_range *r, *tmp;

	list_for_each_entry_safe(r, tmp, &ctx->mirrors, node) {
		list_del(&r->node);
		mmu_interval_notifier_remove(&r->notifier);
		kfree(r);
		sva_live_put();
	}
	mmu_interval_notifier_remove(&ctx->notifier);
	xa_destroy(&ctx->pt);
}
