// SPDX-License-Identifier: GPL-2.0
/*
 * Mirror ranges: ranges of the bound mm userspace keeps a mirror of, each
 * with a sequence that advances on every invalidation overlapping it (its
 * read_begin/read_retry). The context's one notifier over the whole mm
 * advances them, under ctx->lock and before the invalidation returns, so a
 * range costs an interval tree node rather than a notifier of its own.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/slab.h>
#include <linux/uaccess.h>

#include "shim.h"

void sva_ranges_init(struct sva_ctx *ctx)
{
	ctx->ranges = RB_ROOT_CACHED;
	xa_init_flags(&ctx->range_ids, XA_FLAGS_ALLOC1 | XA_FLAGS_ACCOUNT);
}

/*
 * Advance the sequence of every range overlapping [start, end); returns
 * how many. Caller holds ctx->lock.
 */
unsigned int sva_ranges_advance(struct sva_ctx *ctx, unsigned long start,
				unsigned long end)
{
	struct interval_tree_node *it;
	unsigned int n = 0;

	lockdep_assert_held(&ctx->lock);
	for (it = interval_tree_iter_first(&ctx->ranges, start, end - 1); it;
	     it = interval_tree_iter_next(it, start, end - 1)) {
		container_of(it, struct sva_mirror_range, it)->seq++;
		n++;
	}
	return n;
}

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
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	/* Allocations happen outside ctx->lock, which reclaim may need. */
	r = kzalloc(sizeof(*r), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->it.start = m.addr;
	r->it.last = m.addr + m.len - 1;
	/* Reserve the id; the range is stored there once inserted. */
	ret = xa_alloc(&ctx->range_ids, &r->id, NULL, xa_limit_31b,
		       GFP_KERNEL_ACCOUNT);
	if (ret) {
		kfree(r);
		return ret == -EBUSY ? -ENOSPC : ret;
	}
	mutex_lock(&ctx->lock);
	if (!sva_mirror_room(ctx)) {
		mutex_unlock(&ctx->lock);
		xa_erase(&ctx->range_ids, r->id);
		kfree(r);
		return -ENOSPC;
	}
	interval_tree_insert(&r->it, &ctx->ranges);
	ctx->nr_ranges++;
	/* A reserved slot is replaced without allocating. */
	xa_store(&ctx->range_ids, r->id, r, GFP_NOWAIT);
	mutex_unlock(&ctx->lock);
	/*
	 * An invalidation already in flight advanced no sequence of this
	 * range; wait for it to end, so that what userspace reads of the
	 * range after MIRROR returns was not changed behind its sequence.
	 */
	mmu_interval_read_begin(&ctx->notifier);
	sva_live_get();
	m.id = r->id;
	m.seq = 0;
	return copy_to_user(uarg, &m, sizeof(m)) ? -EFAULT : 0;
}

long sva_ioctl_unmirror(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_mirror_range *r;
	u32 id;

	if (get_user(id, (u32 __user *)uarg))
		return -EFAULT;
	mutex_lock(&ctx->lock);
	r = id ? xa_erase(&ctx->range_ids, id) : NULL;
	if (r) {
		interval_tree_remove(&r->it, &ctx->ranges);
		ctx->nr_ranges--;
	}
	mutex_unlock(&ctx->lock);
	if (!r)
		return -ENOENT;
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
	r = m.id ? xa_load(&ctx->range_ids, m.id) : NULL;
	if (r) {
		m.addr = r->it.start;
		m.len = r->it.last + 1 - m.addr;
		m.seq = r->seq;
	}
	mutex_unlock(&ctx->lock);
	if (!r)
		return -ENOENT;
	return copy_to_user(uarg, &m, sizeof(m)) ? -EFAULT : 0;
}

/* Last reference to the context gone: no ioctl or notifier runs. */
void sva_ranges_fini(struct sva_ctx *ctx)
{
	struct sva_mirror_range *r;
	unsigned long id;

	xa_for_each(&ctx->range_ids, id, r) {
		kfree(r);
		sva_live_put();
	}
	xa_destroy(&ctx->range_ids);
	ctx->ranges = RB_ROOT_CACHED;
	ctx->nr_ranges = 0;
}
