// SPDX-License-Identifier: GPL-2.0
/*
 * Device reads and writes through the device page table (mirror.c), as
 * DMA would do them: exactly the bytes asked for, a page at a time, each
 * page translated (ATS) or faulted in (PRI) first. A write goes into the
 * mapped page at its offset, never through a copy of the whole page, so
 * the CPU's concurrent stores to the page's other bytes survive; and it
 * dirties the page, as a CPU store through the PTE would, so that reclaim
 * and writeback don't throw it away (a writable PTE may well be clean: a
 * shmem page only read, an anonymous page swapped in by a read).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "shim.h"

/*
 * The page holding the data mirrored at @addr, or NULL when the device
 * page table has no (writable, for @write) entry. *@dirty: the page a
 * write must mark dirty (NULL for device memory, which is not the page
 * cache's: nothing to write back). Caller holds ctx->lock: the notifier
 * can't invalidate the page meanwhile, so it stays mapped in the mm, which
 * is what makes marking it dirty without its folio lock safe (as
 * zap_pte_range() does, truncation can't take a mapped folio away).
 */
struct page *sva_pt_page(struct sva_ctx *ctx, unsigned long addr,
			 bool write, struct page **dirty)
{
	void *entry = xa_load(&ctx->pt, addr >> PAGE_SHIFT);
	struct page *page;

	lockdep_assert_held(&ctx->lock);
	sva_stat_add(ctx, SVA_ST_TRANSLATIONS, 1);
	if (!entry || (write && !(xa_pointer_tag(entry) & SVA_PT_WRITE))) {
		sva_stat_add(ctx, SVA_ST_ATC_MISSES, 1);
		return NULL;
	}
	sva_stat_add(ctx, SVA_ST_ATC_HITS, 1);
	page = xa_untag_pointer(entry);
	*dirty = page;
	if (!(xa_pointer_tag(entry) & SVA_PT_DEVMEM))
		return page;
	/*
	 * A page of our device memory: its data is in its backing page,
	 * which only the device touches (a CPU access migrates it back
	 * first, and the migration invalidates this entry under ctx->lock).
	 */
	sva_devmem_touch(ctx, page);
	sva_stat_add(ctx, SVA_ST_DEVMEM_ACCESSES, 1);
	*dirty = NULL;
	return page->zone_device_data;
}

/*
 * Move @len bytes between @bounce and the page mirrored at @addr (the
 * bytes lie within that page). Returns -ENOENT when the device page table
 * has no (writable, for @write) entry. Caller holds ctx->lock.
 */
static int pt_access(struct sva_ctx *ctx, unsigned long addr, void *bounce,
		     size_t len, bool write)
{
	struct page *data, *dirty;
	void *va;

	data = sva_pt_page(ctx, addr, write, &dirty);
	if (!data)
		return -ENOENT;
	va = kmap_local_page(data);
	if (write)
		memcpy(va + offset_in_page(addr), bounce, len);
	else
		memcpy(bounce, va + offset_in_page(addr), len);
	kunmap_local(va);
	if (write && dirty)
		folio_mark_dirty(page_folio(dirty));
	return 0;
}

/*
 * The device page table lacks the page at @addr (of an access ending at
 * @end): first ask for a translation of what is mapped now (once per page:
 * *@translated), then, if @fault, raise a page request for a batch, else
 * the page. Returns 0 to retry the access; else the access stops there,
 * *@status says why.
 */
int sva_access_resolve(struct sva_ctx *ctx, unsigned long addr,
		       unsigned long end, bool write, bool fault,
		       bool *translated, u64 *faults, u32 *status)
{
	unsigned long page = addr & PAGE_MASK, batch;
	int ret;

	batch = min(PAGE_ALIGN(end), page + SVA_FAULT_BATCH * PAGE_SIZE);
	if (!*translated) {
		sva_translate(ctx, page, batch);
		*translated = true;
		return 0;
	}
	if (!fault) {
		*status = SVA_SHIM_STATUS_PAGE_FAULT;
		return -ENOENT;
	}
	ret = sva_fault(ctx, page, batch, write);
	if (ret && batch > page + PAGE_SIZE)
		ret = sva_fault(ctx, page, page + PAGE_SIZE, write);
	(*faults)++;
	if (ret)
		*status = sva_fault_status(ctx, ret, page, write);
	return ret;
}

static int access_check(const struct sva_shim_access *a)
{
	if (a->flags & ~SVA_SHIM_ACCESS_NO_FAULT || a->status ||
	    a->bytes_done || a->fault_addr || a->faults)
		return -EINVAL;
	if (!a->len || a->len > SVA_SHIM_MAX_XFER ||
	    a->addr + a->len < a->addr || a->addr + a->len > TASK_SIZE)
		return -EINVAL;
	return 0;
}

/* @len bytes at @addr, within a page: fault it in as needed, move them. */
static int access_bytes(struct sva_ctx *ctx, struct sva_shim_access *a,
			unsigned long addr, size_t len, void *bounce,
			bool write)
{
	bool translated = false;
	int ret;

	for (;;) {
		mutex_lock(&ctx->lock);
		ret = pt_access(ctx, addr, bounce, len, write);
		mutex_unlock(&ctx->lock);
		if (ret != -ENOENT)
			return ret;
		ret = sva_access_resolve(ctx, addr, a->addr + a->len, write,
					 !(a->flags & SVA_SHIM_ACCESS_NO_FAULT),
					 &translated, &a->faults, &a->status);
		if (ret)
			return ret;
	}
}

long sva_ioctl_access(struct sva_ctx *ctx, void __user *uarg, bool write)
{
	struct sva_shim_access a;
	unsigned long addr, end;
	void *bounce;
	size_t len;
	int ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	ret = access_check(&a);
	if (ret)
		return ret;
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	bounce = kmalloc(PAGE_SIZE, GFP_KERNEL_ACCOUNT);
	if (!bounce)
		return -ENOMEM;

	end = a.addr + a.len;
	for (addr = a.addr; addr < end; addr += len) {
		void __user *ubuf = u64_to_user_ptr(a.buf + (addr - a.addr));

		len = min(end, (addr & PAGE_MASK) + PAGE_SIZE) - addr;
		/* An OOM-killed task must not go on faulting for us. */
		if (fatal_signal_pending(current)) {
			ret = -EINTR;
			break;
		}
		/*
		 * The user buffer is copied with ctx->lock dropped: it may
		 * be mirrored memory itself and fault.
		 */
		if (write && copy_from_user(bounce, ubuf, len)) {
			ret = -EFAULT;
			break;
		}
		ret = access_bytes(ctx, &a, addr, len, bounce, write);
		if (ret) {
			a.fault_addr = addr;
			ret = 0;	/* reported in status */
			break;
		}
		if (!write && copy_to_user(ubuf, bounce, len)) {
			ret = -EFAULT;
			break;
		}
		a.bytes_done += len;
	}
	kfree(bounce);
	sva_stat_add(ctx, SVA_ST_BYTES_DONE, a.bytes_done);
	if (ret)
		return ret;
	return copy_to_user(uarg, &a, sizeof(a)) ? -EFAULT : 0;
}
