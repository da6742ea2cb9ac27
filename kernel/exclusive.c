// SPDX-License-Identifier: GPL-2.0
/*
 * Exclusive device access to host pages, as lib/test_hmm.c's EXCLUSIVE:
 * make_device_exclusive_range() swaps the CPU's PTEs of private anonymous
 * pages for device-exclusive entries, so that the device may run atomics
 * on them with no CPU seeing a torn value. The pages stay in host memory;
 * the context keeps them in its device page table (mirror.c), marked
 * SVA_PT_EXCL, and the device reads and writes them there, without a fault
 * (a fault would take them back: hmm_range_fault() restores the CPU PTE
 * of an exclusive entry). The first CPU access restores the PTE under an
 * MMU_NOTIFY_EXCLUSIVE invalidation, as every other change of the mapping
 * (munmap, mprotect, fork, migration) invalidates it: the notifier drops
 * the entry and counts a revoke. Our own grant's MMU_NOTIFY_EXCLUSIVE
 * (owner: this context) is no invalidation.
 *
 * No page reference is kept: as for every device page table entry, the
 * notifier drops the entry (under ctx->lock, which the device's accesses
 * hold) before the page can leave the mapping, and the exclusive entry
 * holds the page while it is in the mm.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/hmm.h>
#include <linux/hugetlb.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/pagemap.h>
#include <linux/rmap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/userfaultfd_k.h>

#include "shim.h"

/* Is the page at @addr held exclusively? Any context, no lock needed. */
bool sva_excl_held(struct sva_ctx *ctx, unsigned long addr)
{
	return xa_get_mark(&ctx->pt, addr >> PAGE_SHIFT, SVA_PT_EXCL);
}

/*
 * Take the first held page at or after *@pfn off the device page table;
 * false when there is none left.
 */
static bool excl_take(struct sva_ctx *ctx, unsigned long *pfn)
{
	void *entry;

	mutex_lock(&ctx->lock);
	entry = xa_find(&ctx->pt, pfn, ULONG_MAX, SVA_PT_EXCL);
	if (entry)
		xa_erase(&ctx->pt, *pfn);
	mutex_unlock(&ctx->lock);
	return entry;
}

/*
 * Give the CPU its PTE back at @addr if it is a device-exclusive entry
 * (else the fault changes nothing): a write fault, for a page made
 * exclusive is in a VM_WRITE VMA, which may lack VM_READ; a read fault if
 * the VMA changed since. Caller holds the mmap lock, no page lock.
 */
static void excl_restore(struct sva_ctx *ctx, unsigned long addr)
{
	if (fixup_user_fault(ctx->mm, addr, FAULT_FLAG_WRITE, NULL))
		fixup_user_fault(ctx->mm, addr, 0, NULL);
}

/*
 * Unbind: the device gives every held page up, and the CPU gets its
 * mapping back (excl_restore()), as if it had touched each: no page stays
 * unmapped for a device that is gone. The fault's invalidation finds the
 * entry gone, so each page is counted here once. excl_lock: an EXCLUSIVE
 * ioctl under way finishes first, and one after it finds the context
 * unbound (the caller cleared its PASID).
 */
void sva_excl_release(struct sva_ctx *ctx)
{
	unsigned long pfn = 0, n = 0;
	bool mm;

	mutex_lock(&ctx->excl_lock);
	mm = mmget_not_zero(ctx->mm);
	if (mm)
		mmap_read_lock(ctx->mm);
	for (; excl_take(ctx, &pfn); pfn++, n++)
		if (mm)
			excl_restore(ctx, pfn << PAGE_SHIFT);
	if (mm) {
		mmap_read_unlock(ctx->mm);
		mmput(ctx->mm);
	}
	mutex_unlock(&ctx->excl_lock);
	sva_stat_add(ctx, SVA_ST_EXCL_REVOKES, n);
}

#if IS_ENABLED(CONFIG_DEVICE_PRIVATE)

#define SVA_EXCL_BATCH 64	/* pages per make_device_exclusive_range() */
#define SVA_EXCL_TRIES 3	/* batches an invalidation raced, retried */

/* Why no page of @vma can be held (SVA_SHIM_NM_*), or -1 if they may. */
static int vma_refusal(struct vm_area_struct *vma)
{
	if (!(vma->vm_flags & (VM_READ | VM_WRITE | VM_EXEC)))
		return SVA_SHIM_NM_PROT_NONE;
	if (vma->vm_flags & (VM_IO | VM_PFNMAP | VM_MIXEDMAP))
		return SVA_SHIM_NM_UNSUPPORTED;
	/* make_device_exclusive_range() takes anonymous folios only. */
	if (!vma_is_anonymous(vma) || is_vm_hugetlb_page(vma))
		return SVA_SHIM_NM_SHARED;
	if (!(vma->vm_flags & VM_WRITE))
		return SVA_SHIM_NM_READ_ONLY;
	/* The write fault would be the application's handler's to serve. */
	if (userfaultfd_armed(vma))
		return SVA_SHIM_NM_UFFD;
	return -1;
}

/*
 * Which pages of [start, end) are in this context's device memory (bit i
 * for page i): they are the device's already, and a write fault would
 * migrate them out. Caller holds the mmap lock.
 */
static unsigned long devmem_pages(struct sva_ctx *ctx, unsigned long start,
				  unsigned long end, unsigned long *pfns)
{
	struct hmm_range range = {
		.notifier = &ctx->notifier,
		.start = start, .end = end,
		.hmm_pfns = pfns,
		.dev_private_owner = ctx,
	};
	unsigned long i, ours = 0, deadline = jiffies +
				msecs_to_jiffies(HMM_RANGE_DEFAULT_TIMEOUT);

	if (sva_range_fault(&range, deadline)) {
		/* Nothing known: no page is ours, none to split or skip. */
		memset(pfns, 0, ((end - start) >> PAGE_SHIFT) * sizeof(*pfns));
		return 0;
	}
	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++)
		if ((pfns[i] & HMM_PFN_VALID) &&
		    sva_devmem_page(ctx, hmm_pfn_to_page(pfns[i])))
			ours |= BIT(i);
	return ours;
}

/*
 * Record the pages make_device_exclusive_range() gave us for [start,
 * start + n pages) in the device page table, unless the mapping changed
 * meanwhile; *@recorded: bit i for each page recorded. A large folio's
 * head is not recorded: 6.12's rmap walk swapped every PTE of the folio
 * (tails included, which it refuses to hold) for an exclusive entry, and
 * the caller gives them all back. Returns how many were recorded, or
 * -EAGAIN.
 *
 * Our own grant's MMU_NOTIFY_EXCLUSIVE advanced the mirror ranges before
 * the pages were marked held here: a snapshot in between saw them
 * neither mapped nor held. Advancing them again once they are marked
 * makes such a snapshot fail its read_retry().
 */
static long run_record(struct sva_ctx *ctx, unsigned long start, long n,
		       struct page **pages, unsigned long *recorded)
{
	struct sva_shim_event ev = {
		.type = SVA_SHIM_EVENT_INVALIDATE,
		.reason = SVA_SHIM_INVAL_OTHER,
	};
	unsigned long addr;
	long i, held = 0;
	void *entry;

	*recorded = 0;
	mutex_lock(&ctx->lock);
	if (ctx->excl_hit) {
		held = -EAGAIN;
		goto out;
	}
	for (i = 0, addr = start; i < n; i++, addr += PAGE_SIZE) {
		if (!pages[i] || folio_test_large(page_folio(pages[i])))
			continue;
		entry = xa_tag_pointer(pages[i], SVA_PT_WRITE);
		/* No reclaim: it may invalidate and wait for ctx->lock. */
		entry = xa_store(&ctx->pt, addr >> PAGE_SHIFT, entry,
				 GFP_NOWAIT);
		if (xa_is_err(entry))
			continue;	/* not held: busy, given back */
		xa_set_mark(&ctx->pt, addr >> PAGE_SHIFT, SVA_PT_EXCL);
		*recorded |= BIT(i);
		if (!held++)
			ev.start = addr;
		ev.end = addr + PAGE_SIZE;
	}
	if (held) {
		ev.mirror = sva_ranges_advance(ctx, ev.start, ev.end);
		if (ev.mirror)
			ev.seq = ++ctx->inval_seq;
		ev.pasid = ctx->pasid;
	}
out:
	ctx->excl_start = 0;
	ctx->excl_end = 0;
	mutex_unlock(&ctx->lock);
	if (ev.mirror) {
		sva_stat_add(ctx, SVA_ST_INVALIDATIONS, 1);
		sva_event_push(ctx, &ev);
	}
	return held;
}

/*
 * Unlock and put the pages make_device_exclusive_range() returned; for
 * each of the first @n not in @recorded, how many pages from its address
 * on may carry an exclusive entry of ours (@span: a large folio's size,
 * else 1), for run_restore().
 */
static void pages_release(struct page **pages, long n,
			  unsigned long recorded, unsigned long *span)
{
	long i;

	for (i = 0; i < n; i++) {
		span[i] = recorded & BIT(i) ? 0 : 1;
		if (!pages[i])
			continue;
		if (span[i])
			span[i] = folio_nr_pages(page_folio(pages[i]));
		unlock_page(pages[i]);
		put_page(pages[i]);
	}
}

/*
 * No page stays neither held nor CPU-mapped: fault back every page of the
 * run that was not recorded (a refused page's fault changes nothing; one
 * raced, or that found no room in the device page table, was swapped for
 * an exclusive entry all the same), and the whole of a large folio whose
 * head was swapped, as far as it lies in @vma. Caller holds the mmap
 * lock, no page lock.
 */
static void run_restore(struct sva_ctx *ctx, struct vm_area_struct *vma,
			unsigned long start, long n, const unsigned long *span)
{
	unsigned long addr, end;
	long i;

	for (i = 0; i < n; i++) {
		addr = start + i * PAGE_SIZE;
		end = min(vma->vm_end, addr + span[i] * PAGE_SIZE);
		for (; addr < end; addr += PAGE_SIZE)
			excl_restore(ctx, addr);
	}
}

/*
 * Make the run [start, end) of pages neither held nor ours exclusive.
 * make_device_exclusive_range() returns them locked, which keeps a CPU
 * fault from restoring them before they are recorded; an invalidation
 * that doesn't need the page lock (munmap, madvise, mprotect) is seen
 * through excl_hit, and the run tried again. Caller holds the mmap lock;
 * @span: room for a batch, scratch.
 */
static void run_exclusive(struct sva_ctx *ctx, struct vm_area_struct *vma,
			  unsigned long start, unsigned long end,
			  struct page **pages, unsigned long *span,
			  struct sva_shim_exclusive *x)
{
	long n, held, want = (end - start) >> PAGE_SHIFT;
	unsigned long recorded;
	int tries;

	for (tries = 0; ; tries++) {
		mutex_lock(&ctx->lock);
		ctx->excl_start = start;
		ctx->excl_end = end;
		ctx->excl_hit = false;
		mutex_unlock(&ctx->lock);
		/* GUP stops at the first page it can't fault: n <= want. */
		n = make_device_exclusive_range(ctx->mm, start, end, pages,
						ctx);
		n = max(n, 0L);
		held = run_record(ctx, start, n, pages, &recorded);
		pages_release(pages, n, recorded, span);
		run_restore(ctx, vma, start, n, span);
		if (held != -EAGAIN || tries == SVA_EXCL_TRIES)
			break;
	}
	if (held < 0)
		held = 0;
	x->held += held;
	/* Locked, part of a large folio, or raced: busy. */
	x->not_held[SVA_SHIM_NM_BUSY] += want - held;
}

/*
 * Split the transparent huge page mapped by the PMD at @addr into small
 * pages: 6.12's make_device_exclusive_range() holds only a large folio's
 * head page (it refuses tail pages), and a module can't call
 * split_folio(). Collecting a page of a PMD-mapped THP for migration
 * splits it (migrate_vma_collect_pmd()); nothing is migrated, the page
 * is put back where it was.
 */
static void thp_split(struct sva_ctx *ctx, struct vm_area_struct *vma,
		      unsigned long addr)
{
	unsigned long src = 0, dst = 0;
	struct migrate_vma args = {
		.vma = vma,
		.start = addr,
		.end = addr + PAGE_SIZE,
		.src = &src,
		.dst = &dst,
		.pgmap_owner = ctx,
		.flags = MIGRATE_VMA_SELECT_SYSTEM,
	};

	if (migrate_vma_setup(&args))
		return;
	migrate_vma_pages(&args);
	migrate_vma_finalize(&args);
}

/*
 * Split every THP that hmm_range_fault() found PMD-mapped in @pfns; true
 * if there was one (@pfns is stale then).
 */
static bool batch_split(struct sva_ctx *ctx, struct vm_area_struct *vma,
			unsigned long start, unsigned long end,
			const unsigned long *pfns)
{
	unsigned long addr, i;
	bool split = false;

	for (addr = start, i = 0; addr < end; addr += PAGE_SIZE, i++) {
		if (!(pfns[i] & HMM_PFN_VALID) || !hmm_pfn_to_map_order(pfns[i]))
			continue;
		thp_split(ctx, vma, addr);
		split = true;
		/* The rest of this PMD is split with it. */
		while (addr + PAGE_SIZE < end &&
		       (addr + PAGE_SIZE) & ~PMD_MASK) {
			addr += PAGE_SIZE;
			i++;
		}
	}
	return split;
}

/*
 * Which pages of [start, end) belong to a large folio (bit i for page i)
 * after batch_split() (a THP it could not split, one mapped by PTEs):
 * 6.12's make_device_exclusive_range() refuses its tails, but holding its
 * head swaps every PTE of the folio for an exclusive entry, and a module
 * can't split it (split_folio() isn't exported, migrate_vma_setup()
 * splits only PMD-mapped ones). The pfns are hmm_range_fault()'s, without
 * a reference: a hint (the mmap lock keeps folios from growing: collapse
 * takes it for writing); a folio the grant's own fault makes large is
 * given back by run_restore().
 */
static unsigned long large_pages(unsigned long start, unsigned long end,
				 const unsigned long *pfns)
{
	unsigned long i, large = 0;

	for (i = 0; i < (end - start) >> PAGE_SHIFT; i++)
		if ((pfns[i] & HMM_PFN_VALID) &&
		    folio_test_large(page_folio(hmm_pfn_to_page(pfns[i]))))
			large |= BIT(i);
	return large;
}

/*
 * A batch of @vma: runs of the pages not held already, nor in a large
 * folio (busy).
 */
static void batch_exclusive(struct sva_ctx *ctx, struct vm_area_struct *vma,
			    unsigned long start, unsigned long end,
			    struct page **pages, unsigned long *pfns,
			    struct sva_shim_exclusive *x)
{
	unsigned long ours = devmem_pages(ctx, start, end, pfns);
	unsigned long addr, run = start, i, large;

	if (batch_split(ctx, vma, start, end, pfns))
		devmem_pages(ctx, start, end, pfns);
	large = large_pages(start, end, pfns) & ~ours;

	/* From here on pfns is run_exclusive()'s scratch. */
	for (addr = start, i = 0; addr <= end; addr += PAGE_SIZE, i++) {
		bool held = addr < end &&
			    ((ours & BIT(i)) || sva_excl_held(ctx, addr));
		bool busy = addr < end && !held && (large & BIT(i));

		if (addr < end && !held && !busy)
			continue;
		if (run < addr)
			run_exclusive(ctx, vma, run, addr, pages, pfns, x);
		if (held)
			x->already++;
		if (busy)
			x->not_held[SVA_SHIM_NM_BUSY]++;
		run = addr + PAGE_SIZE;
	}
}

static int exclusive_range(struct sva_ctx *ctx, struct sva_shim_exclusive *x,
			   struct page **pages, unsigned long *pfns)
{
	unsigned long addr = x->addr, end = x->addr + x->len, next;
	struct vm_area_struct *vma;
	int ret = 0, why;

	mmap_read_lock(ctx->mm);
	for (; addr < end; addr = next) {
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		vma = find_vma(ctx->mm, addr);
		if (!vma || vma->vm_start >= end) {
			x->not_held[SVA_SHIM_NM_UNMAPPED] += (end - addr) >>
							     PAGE_SHIFT;
			break;
		}
		if (vma->vm_start > addr) {
			next = vma->vm_start;
			x->not_held[SVA_SHIM_NM_UNMAPPED] += (next - addr) >>
							     PAGE_SHIFT;
			continue;
		}
		next = min3(end, vma->vm_end,
			    addr + SVA_EXCL_BATCH * PAGE_SIZE);
		why = vma_refusal(vma);
		if (why >= 0)
			x->not_held[why] += (next - addr) >> PAGE_SHIFT;
		else
			batch_exclusive(ctx, vma, addr, next, pages, pfns, x);
	}
	mmap_read_unlock(ctx->mm);
	return ret;
}

static int exclusive_check(const struct sva_shim_exclusive *x)
{
	int i;

	if (x->flags || x->pad || x->held || x->already || !x->len ||
	    !PAGE_ALIGNED(x->addr) || !PAGE_ALIGNED(x->len) ||
	    x->len > SVA_SHIM_MAX_XFER || x->addr + x->len < x->addr ||
	    x->addr + x->len > TASK_SIZE)
		return -EINVAL;
	for (i = 0; i < SVA_SHIM_EXCL_NM_MAX; i++)
		if (x->not_held[i])
			return -EINVAL;
	return 0;
}

long sva_ioctl_exclusive(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_shim_exclusive x;
	unsigned long *pfns;
	struct page **pages;
	int ret;

	if (copy_from_user(&x, uarg, sizeof(x)))
		return -EFAULT;
	ret = exclusive_check(&x);
	if (ret)
		return ret;
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	/* One allocation for both arrays: too big for the stack. */
	pages = kmalloc_array(2 * SVA_EXCL_BATCH, sizeof(void *),
			      GFP_KERNEL_ACCOUNT);
	if (!pages)
		return -ENOMEM;
	pfns = (unsigned long *)(pages + SVA_EXCL_BATCH);
	ret = -ESRCH;
	if (mmget_not_zero(ctx->mm)) {
		mutex_lock(&ctx->excl_lock);
		/* Unbound meanwhile: sva_excl_release() has run. */
		ret = -ENOTCONN;
		if (READ_ONCE(ctx->pasid))
			ret = exclusive_range(ctx, &x, pages, pfns);
		mutex_unlock(&ctx->excl_lock);
		mmput(ctx->mm);
	}
	kfree(pages);
	sva_stat_add(ctx, SVA_ST_EXCL_GRANTS, x.held);
	if (ret)
		return ret;
	return copy_to_user(uarg, &x, sizeof(x)) ? -EFAULT : 0;
}

bool sva_excl_supported(void)
{
	return true;
}

#else /* !CONFIG_DEVICE_PRIVATE: no make_device_exclusive_range() */

long sva_ioctl_exclusive(struct sva_ctx *ctx, void __user *uarg)
{
	return -EOPNOTSUPP;
}

bool sva_excl_supported(void)
{
	return false;
}

#endif /* CONFIG_DEVICE_PRIVATE */
