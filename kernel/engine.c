// SPDX-License-Identifier: GPL-2.0
/*
 * The descriptor engine: a context executes descriptors itself, as a
 * device's work queue does (io_uring's SQ/CQ and DSA's work queues are the
 * models). Userspace writes submission entries into a ring it maps from
 * the context's fd and reads completions from another; a work item of the
 * context takes entries while there are some and the completion ring has
 * room, and moves their bytes page to page between the mirrored pages:
 * the device page table (mirror.c) looked up under ctx->lock, each page
 * kmap_local()ed, exactly the bytes asked for, a page missing from the
 * table translated or faulted in as READ/WRITE do it (access.c). When the
 * queue runs dry it asks for the doorbell (SVA_SHIM_RING_NEED_WAKEUP):
 * while it runs, submitting takes no system call. A submitter that would
 * only wait for the completions may run the entries in its own doorbell
 * call instead (SVA_SHIM_ENTER_INLINE), saving two wake-ups.
 *
 * The rings are the context's: charged to the memory cgroup of the task
 * that set them up, counted against its user (limits.c), mapped by the
 * context's mm only and never copied into a child by fork(). The work item
 * holds neither the mm nor its pages: it takes the mm's users only inside
 * each page request (as READ/WRITE do), stops an entry when the context is
 * unbound or the mm exits, and closing the context cancels it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crc32.h>
#include <linux/eventfd.h>
#include <linux/highmem.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>

#include "shim.h"

struct sva_engine {
	struct sva_ctx *ctx;
	void *mem;			/* what userspace maps: ring, SQ, CQ */
	size_t size;
	struct sva_shim_ring *ring;
	struct sva_shim_sqe *sqes;
	struct sva_shim_cqe *cqes;
	u32 mask;			/* entries - 1 */
	/*
	 * One runner at a time, the work item or an inline ENTER, holds
	 * run_lock, which protects the engine's own indices: the ring's
	 * copies are for userspace, which may write anything there.
	 */
	struct mutex run_lock;
	u32 sq_head, cq_tail;		/* run_lock */
	struct eventfd_ctx *evfd;	/* NULL: none */
	struct work_struct work;
	wait_queue_head_t cq_wait;	/* poll(): EPOLLRDBAND */
	bool dead;			/* the context is going: run nothing */
};

static struct workqueue_struct *sva_engine_wq;

/* One entry in execution: its copy, its completion, its running state. */
struct eng_desc {
	struct sva_shim_sqe s;
	struct sva_shim_cqe c;
	u32 crc;
	unsigned long translated[2];	/* page each side last translated */
};

enum { ENG_SRC, ENG_DST };

static bool op_reads_src(u8 op)
{
	return op == SVA_SHIM_OP_COPY || op == SVA_SHIM_OP_COMPARE ||
	       op == SVA_SHIM_OP_CRC32C;
}

static bool op_has_dst(u8 op)
{
	return op == SVA_SHIM_OP_COPY || op == SVA_SHIM_OP_FILL ||
	       op == SVA_SHIM_OP_COMPARE;
}

static bool op_writes_dst(u8 op)
{
	return op == SVA_SHIM_OP_COPY || op == SVA_SHIM_OP_FILL;
}

static bool sqe_valid(const struct sva_shim_sqe *s)
{
	if (s->opcode > SVA_SHIM_OP_CRC32C || s->flags & ~SVA_SHIM_SQE_FAULT ||
	    s->pad[0] || s->pad[1] || s->pad[2] || s->rsvd[0] || s->rsvd[1])
		return false;
	if (s->opcode == SVA_SHIM_OP_NOP)
		return !s->len;
	if (!s->len || s->len > SVA_SHIM_RING_MAX_LEN)
		return false;
	if (op_reads_src(s->opcode) && s->src + s->len < s->src)
		return false;
	if (op_has_dst(s->opcode) && s->dst + s->len < s->dst)
		return false;
	return s->opcode != SVA_SHIM_OP_COPY || s->src >= s->dst + s->len ||
	       s->dst >= s->src + s->len;
}

/* @n bytes of the 8-byte @pattern laid from byte @off of a FILL on. */
static void fill_bytes(u8 *va, size_t n, u64 pattern, u64 off)
{
	u64 p = ror64(pattern, 8 * (off & 7));
	size_t i;

	for (i = 0; i + 8 <= n; i += 8)
		put_unaligned_le64(p, va + i);
	for (; i < n; i++)
		va[i] = p >> (8 * (i & 7));
}

/* The first of @n bytes where @a and @b differ, or @n. */
static size_t first_difference(const u8 *a, const u8 *b, size_t n)
{
	size_t i = 0;

	if (!memcmp(a, b, n))
		return n;
	while (a[i] == b[i])
		i++;
	return i;
}

/*
 * The next bytes of @d, up to the end of the pages they lie in, with
 * both pages looked up under one hold of ctx->lock (no invalidation can
 * take either meanwhile). Returns how many were done, or -ENOENT with
 * *@side the side whose page the device page table lacks.
 */
static long eng_step(struct sva_ctx *ctx, struct eng_desc *d, int *side)
{
	const struct sva_shim_sqe *s = &d->s;
	u64 off = d->c.bytes_done;
	unsigned long src = s->src + off, dst = s->dst + off;
	bool reads = op_reads_src(s->opcode), has_dst = op_has_dst(s->opcode);
	bool writes = op_writes_dst(s->opcode);
	struct page *sp = NULL, *dp = NULL, *dirty = NULL, *unused;
	u8 *sva = NULL, *dva = NULL;
	size_t n = min_t(u64, s->len - off, PAGE_SIZE);

	if (reads)
		n = min_t(size_t, n, PAGE_SIZE - offset_in_page(src));
	if (has_dst)
		n = min_t(size_t, n, PAGE_SIZE - offset_in_page(dst));
	mutex_lock(&ctx->lock);
	if (reads) {
		sp = sva_pt_page(ctx, src, false, &unused);
		if (!sp) {
			*side = ENG_SRC;
			goto miss;
		}
	}
	if (has_dst) {
		dp = sva_pt_page(ctx, dst, writes, &dirty);
		if (!dp) {
			*side = ENG_DST;
			goto miss;
		}
	}
	if (sp)
		sva = (u8 *)kmap_local_page(sp) + offset_in_page(src);
	if (dp)
		dva = (u8 *)kmap_local_page(dp) + offset_in_page(dst);
	switch (s->opcode) {
	case SVA_SHIM_OP_COPY:
		memcpy(dva, sva, n);
		break;
	case SVA_SHIM_OP_FILL:
		fill_bytes(dva, n, s->pattern, off);
		break;
	case SVA_SHIM_OP_CRC32C:
		d->crc = __crc32c_le(d->crc, sva, n);
		break;
	case SVA_SHIM_OP_COMPARE:
		off = first_difference(sva, dva, n);
		if (off < n) {
			n = off;
			d->c.result = 1;
		}
		break;
	}
	if (dva)
		kunmap_local(dva);
	if (sva)
		kunmap_local(sva);
	if (writes && dirty)
		folio_mark_dirty(page_folio(dirty));
	mutex_unlock(&ctx->lock);
	return n;
miss:
	mutex_unlock(&ctx->lock);
	return -ENOENT;
}

/*
 * @side's page is missing: translate, or raise a page request as the
 * entry allows. 0 to go on; else the entry ends with its fault.
 */
static int eng_resolve(struct sva_ctx *ctx, struct eng_desc *d, int side)
{
	const struct sva_shim_sqe *s = &d->s;
	u64 base = side == ENG_SRC ? s->src : s->dst;
	unsigned long addr = base + d->c.bytes_done;
	bool write = side == ENG_DST && op_writes_dst(s->opcode);
	bool translated = d->translated[side] == (addr & PAGE_MASK);
	int ret = -EFAULT;

	if (addr < TASK_SIZE)
		ret = sva_access_resolve(ctx, addr, base + s->len, write,
					 s->flags & SVA_SHIM_SQE_FAULT,
					 &translated, &d->c.faults,
					 &d->c.status);
	else
		d->c.status = SVA_SHIM_STATUS_INVALID;
	d->translated[side] = addr & PAGE_MASK;
	if (ret) {
		d->c.fault_addr = addr;
		d->c.access = write ? 2 : 1;
	}
	return ret;
}

/*
 * No more work on the context's mm: unbound, closing, the mm exiting, or
 * (@in_task: run in the submitter's ENTER) the submitter killed.
 */
static bool eng_cancelled(struct sva_engine *eng, bool in_task)
{
	return READ_ONCE(eng->dead) || !READ_ONCE(eng->ctx->pasid) ||
	       !atomic_read(&eng->ctx->mm->mm_users) ||
	       (in_task && fatal_signal_pending(current));
}

static void eng_run(struct sva_engine *eng, struct eng_desc *d, bool in_task)
{
	struct sva_ctx *ctx = eng->ctx;
	const struct sva_shim_sqe *s = &d->s;
	int side;
	long n;

	d->c.user_data = s->user_data;
	if (!sqe_valid(s)) {
		d->c.status = SVA_SHIM_STATUS_BAD;
		return;
	}
	d->crc = ~(u32)s->pattern;
	d->translated[ENG_SRC] = -1ul;
	d->translated[ENG_DST] = -1ul;
	while (d->c.bytes_done < s->len && !d->c.result) {
		if (eng_cancelled(eng, in_task)) {
			d->c.status = SVA_SHIM_STATUS_CANCELLED;
			break;
		}
		n = eng_step(ctx, d, &side);
		if (n >= 0)
			d->c.bytes_done += n;
		else if (eng_resolve(ctx, d, side))
			break;
		cond_resched();
	}
	if (s->opcode == SVA_SHIM_OP_CRC32C)
		d->c.result = ~d->crc;
	sva_stat_add(ctx, SVA_ST_BYTES_DONE, d->c.bytes_done);
}

/* May the engine take an entry: one queued, room for its completion? */
static bool eng_has_work(struct sva_engine *eng)
{
	/* The tail's entries, the head's free slots: the submitter's. */
	u32 queued = smp_load_acquire(&eng->ring->sq_tail) - eng->sq_head;
	/* Pairs with the reaper's release: it is done with those CQEs. */
	u32 cq_head = smp_load_acquire(&eng->ring->cq_head);

	/* A tail past a whole ring is nonsense: nothing queued. */
	return queued && queued <= eng->mask + 1 &&
	       eng->cq_tail - cq_head <= eng->mask;
}

static void eng_post(struct sva_engine *eng, const struct sva_shim_cqe *c)
{
	eng->cqes[eng->cq_tail & eng->mask] = *c;
	WRITE_ONCE(eng->cq_tail, eng->cq_tail + 1);
	/* The CQE is written before the reaper can see the tail past it. */
	smp_store_release(&eng->ring->cq_tail, eng->cq_tail);
	WRITE_ONCE(eng->ring->completed, eng->ring->completed + 1);
	if (eng->evfd)
		eventfd_signal(eng->evfd);
	wake_up_poll(&eng->cq_wait, EPOLLRDBAND);
}

/* Run the entries queued, as far as the CQ has room. */
static void eng_drain(struct sva_engine *eng, bool in_task)
{
	struct eng_desc d;

	lockdep_assert_held(&eng->run_lock);
	while (!READ_ONCE(eng->dead) && eng_has_work(eng) &&
	       !(in_task && fatal_signal_pending(current))) {
		memset(&d, 0, sizeof(d));
		memcpy(&d.s, &eng->sqes[eng->sq_head & eng->mask],
		       sizeof(d.s));
		eng->sq_head++;
		/* Copied: the slot is the submitter's again. */
		smp_store_release(&eng->ring->sq_head, eng->sq_head);
		eng_run(eng, &d, in_task);
		eng_post(eng, &d.c);
		cond_resched();
	}
}

static void eng_work(struct work_struct *work)
{
	struct sva_engine *eng = container_of(work, struct sva_engine, work);

	mutex_lock(&eng->run_lock);
	WRITE_ONCE(eng->ring->flags, 0);
	WRITE_ONCE(eng->ring->wakeups, eng->ring->wakeups + 1);
	for (;;) {
		eng_drain(eng, false);
		if (READ_ONCE(eng->dead))
			break;
		/*
		 * Idle: ask for the doorbell, then look once more. The
		 * submitter publishes its tail, then reads the flag: one of
		 * us sees the other (the barriers pair).
		 */
		WRITE_ONCE(eng->ring->flags, SVA_SHIM_RING_NEED_WAKEUP);
		/* Flag then tail here, tail then flag there. */
		smp_mb();
		if (!eng_has_work(eng))
			break;
		WRITE_ONCE(eng->ring->flags, 0);
	}
	mutex_unlock(&eng->run_lock);
}

static struct sva_engine *engine_of(struct sva_ctx *ctx)
{
	/* Pairs with the store in setup: the rings are initialized. */
	return smp_load_acquire(&ctx->engine);
}

static void engine_free(struct sva_engine *eng)
{
	if (eng->evfd)
		eventfd_ctx_put(eng->evfd);
	vfree(eng->mem);
	sva_user_ring_uncharge(eng->ctx->user, eng->size >> PAGE_SHIFT);
	kfree(eng);
}

static int engine_alloc(struct sva_ctx *ctx, struct sva_shim_ring_setup *rs)
{
	size_t sq_off = ALIGN(sizeof(struct sva_shim_ring), 64), cq_off, size;
	struct sva_engine *eng;
	int ret;

	cq_off = sq_off + rs->entries * sizeof(struct sva_shim_sqe);
	size = PAGE_ALIGN(cq_off + rs->entries * sizeof(struct sva_shim_cqe));
	ret = sva_inject_alloc();
	if (ret)
		return ret;
	ret = sva_user_ring_charge(ctx->user, size >> PAGE_SHIFT);
	if (ret)
		return ret;
	eng = kzalloc(sizeof(*eng), GFP_KERNEL_ACCOUNT);
	if (!eng) {
		sva_user_ring_uncharge(ctx->user, size >> PAGE_SHIFT);
		return -ENOMEM;
	}
	eng->ctx = ctx;
	eng->size = size;
	/* Sized by the user, who is told ENOMEM: no splat in the log. */
	eng->mem = __vmalloc(size, GFP_KERNEL_ACCOUNT | __GFP_ZERO |
			     __GFP_NOWARN);
	if (!eng->mem) {
		engine_free(eng);
		return -ENOMEM;
	}
	if (rs->eventfd >= 0) {
		eng->evfd = eventfd_ctx_fdget(rs->eventfd);
		if (IS_ERR(eng->evfd)) {
			ret = PTR_ERR(eng->evfd);
			eng->evfd = NULL;
			engine_free(eng);
			return ret;
		}
	}
	eng->ring = eng->mem;
	eng->sqes = eng->mem + sq_off;
	eng->cqes = eng->mem + cq_off;
	eng->mask = rs->entries - 1;
	eng->ring->entries = rs->entries;
	eng->ring->flags = SVA_SHIM_RING_NEED_WAKEUP;
	INIT_WORK(&eng->work, eng_work);
	mutex_init(&eng->run_lock);
	init_waitqueue_head(&eng->cq_wait);
	rs->size = size;
	rs->sq_off = sq_off;
	rs->cq_off = cq_off;
	/* Published whole: readers use engine_of(). */
	smp_store_release(&ctx->engine, eng);
	return 0;
}

long sva_ioctl_ring_setup(struct sva_ctx *ctx, void __user *uarg)
{
	struct sva_shim_ring_setup rs;
	long ret;

	if (copy_from_user(&rs, uarg, sizeof(rs)))
		return -EFAULT;
	if (rs.flags || rs.pad || rs.size || rs.sq_off || rs.cq_off ||
	    !rs.entries || !is_power_of_2(rs.entries) ||
	    rs.entries > sva_ring_max_entries())
		return -EINVAL;
	mutex_lock(&ctx->bind_lock);
	ret = ctx->engine ? -EBUSY : engine_alloc(ctx, &rs);
	mutex_unlock(&ctx->bind_lock);
	if (ret)
		return ret;
	/* The rings stay set up: userspace finds the offsets again here. */
	return copy_to_user(uarg, &rs, sizeof(rs)) ? -EFAULT : 0;
}

/*
 * The doorbell: the engine looks at the submission queue. With
 * SVA_SHIM_ENTER_INLINE the caller runs what is queued itself, in this
 * call (as far as the CQ has room; a fatal signal stops it between
 * entries and cancels the one running).
 */
long sva_ioctl_ring_enter(struct sva_ctx *ctx, unsigned long flags)
{
	struct sva_engine *eng = engine_of(ctx);

	if (flags & ~(unsigned long)SVA_SHIM_ENTER_INLINE)
		return -EINVAL;
	if (!eng)
		return -ENXIO;
	if (flags & SVA_SHIM_ENTER_INLINE) {
		if (mutex_lock_killable(&eng->run_lock))
			return -EINTR;
		eng_drain(eng, true);
		mutex_unlock(&eng->run_lock);
		return 0;
	}
	/*
	 * Heard: no other doorbell is needed until the run this queues
	 * ends (it may be under way and set the flag as it finds no
	 * work: then this queues another run, which looks again).
	 */
	WRITE_ONCE(eng->ring->flags, 0);
	queue_work(sva_engine_wq, &eng->work);
	return 0;
}

int sva_engine_mmap(struct sva_ctx *ctx, struct vm_area_struct *vma)
{
	struct sva_engine *eng = engine_of(ctx);
	unsigned long len = vma->vm_end - vma->vm_start, off;
	int ret;

	if (current->mm != ctx->mm)
		return -EPERM;
	if (!eng)
		return -ENXIO;
	/* Shared: a private mapping's writes would go to copies. */
	if (vma->vm_pgoff != SVA_SHIM_RING_OFF >> PAGE_SHIFT ||
	    len > eng->size || !(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	/*
	 * The context's mm only: a child gets no copy (VM_DONTCOPY, which
	 * VM_IO keeps MADV_DOFORK from clearing), so it holds neither the
	 * file nor the pages; and the device never mirrors its own rings.
	 */
	vm_flags_set(vma, VM_IO | VM_DONTCOPY | VM_DONTEXPAND | VM_DONTDUMP);
	for (off = 0; off < len; off += PAGE_SIZE) {
		ret = vm_insert_page(vma, vma->vm_start + off,
				     vmalloc_to_page(eng->mem + off));
		if (ret)
			return ret;
	}
	return 0;
}

__poll_t sva_engine_poll(struct sva_ctx *ctx, struct file *file,
			 poll_table *wait)
{
	struct sva_engine *eng = engine_of(ctx);

	if (!eng)
		return 0;
	poll_wait(file, &eng->cq_wait, wait);
	return READ_ONCE(eng->ring->cq_head) != READ_ONCE(eng->cq_tail) ?
	       EPOLLRDBAND : 0;
}

/*
 * Unbinding: the entry running stops (cancelled, its bytes_done exact)
 * and the rest complete cancelled; when this returns nothing of the
 * engine touches the mm. Caller holds bind_lock and has cleared the PASID.
 */
void sva_engine_quiesce(struct sva_ctx *ctx)
{
	struct sva_engine *eng = engine_of(ctx);

	if (!eng)
		return;
	/* A run now cancels what is queued, as room in the CQ allows. */
	queue_work(sva_engine_wq, &eng->work);
	flush_work(&eng->work);
}

/* The context's last reference is gone: no ioctl, no mapping is left. */
void sva_engine_fini(struct sva_ctx *ctx)
{
	struct sva_engine *eng = ctx->engine;

	if (!eng)
		return;
	WRITE_ONCE(eng->dead, true);
	cancel_work_sync(&eng->work);
	engine_free(eng);
	ctx->engine = NULL;
}

int sva_engine_module_init(void)
{
	sva_engine_wq = alloc_workqueue("sva_engine", WQ_UNBOUND, 0);
	return sva_engine_wq ? 0 : -ENOMEM;
}

void sva_engine_module_exit(void)
{
	destroy_workqueue(sva_engine_wq);
}
