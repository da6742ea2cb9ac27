// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The kernel's descriptor engine (SVA_SHIM_CAP_ENGINE): descriptors go to
 * the context's submission ring, the kernel moves their bytes page to page
 * in the mirrored pages, completions come back on its completion ring. The
 * binding's queue worker runs the queue through it (kmod_run_queue(), the
 * ops' run_queue): it takes queued descriptors while the ring has room,
 * rings the doorbell only when the engine went idle, and sleeps on the
 * ring's eventfd only when no completion is there, so that a busy engine
 * costs no system call per descriptor. The doorbell runs the entries in
 * the worker's own call (SVA_SHIM_ENTER_INLINE): the worker would only
 * wait for them, and a hand-off to the module's work item and back costs
 * two wake-ups; SVA_KMOD_ENGINE=async rings for the work item instead.
 *
 * What needs library policy keeps the window path (exec.c), in order:
 * PREFETCH, range attributes (fault-driven migration, read-only and
 * no-access ranges), a device near its fault storm threshold or
 * quarantined. Before such a descriptor runs, everything in the ring
 * completes, so completions stay in submission order and each descriptor
 * sees the state its predecessors left, as on the window path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kmod.h"

#define KMOD_RING_ENTRIES 128

/* A descriptor in the ring: the library's copy, for its completion. */
struct kmod_slot {
	struct sva_desc desc;
	uint64_t t0;
};

struct kmod_ring {
	/*
	 * One submitter and reaper at a time: the queue worker, or an exec
	 * of one descriptor when the ring is idle (kmod_ring_exec()).
	 */
	pthread_mutex_t lock;
	int efd;			/* signalled on completions */
	void *mem;
	size_t size;
	struct sva_shim_ring *r;
	struct sva_shim_sqe *sqes;
	struct sva_shim_cqe *cqes;
	uint32_t mask;
	uint32_t sq_tail, cq_head;	/* ours; the ring's are the kernel's */
	unsigned int inflight;		/* in the ring, not reaped */
	unsigned long enter;		/* RING_ENTER's argument */
	struct kmod_slot *slots;	/* by SQ index */
	int ctx_fd;
};

/* 0 or why not; the binding then keeps the window path. */
static int ring_create(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct sva_shim_ring_setup rs = {
		.entries = KMOD_RING_ENTRIES, .eventfd = -1,
	};
	const char *env = getenv("SVA_KMOD_ENGINE");
	struct kmod_ring *ring;
	int err;

	if (!(kb->shim_caps & SVA_SHIM_CAP_ENGINE) || (env && !strcmp(env, "0")))
		return -EOPNOTSUPP;
	ring = sva__zalloc(sizeof(*ring));
	if (!ring)
		return -ENOMEM;
	ring->efd = sva__fd_eventfd();
	ring->mem = MAP_FAILED;
	if (ring->efd < 0) {
		err = ring->efd;
		goto free;
	}
	ring->slots = sva__zalloc(KMOD_RING_ENTRIES * sizeof(*ring->slots));
	if (!ring->slots) {
		err = -ENOMEM;
		goto free;
	}
	rs.eventfd = ring->efd;
	if (ioctl(kb->fd, SVA_SHIM_IOC_RING_SETUP, &rs)) {
		err = -errno;
		goto free;
	}
	ring->mem = mmap(NULL, rs.size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 kb->fd, SVA_SHIM_RING_OFF);
	if (ring->mem == MAP_FAILED) {
		err = -errno;
		goto free;
	}
	ring->size = rs.size;
	ring->r = ring->mem;
	ring->sqes = (void *)((char *)ring->mem + rs.sq_off);
	ring->cqes = (void *)((char *)ring->mem + rs.cq_off);
	ring->mask = rs.entries - 1;
	ring->ctx_fd = kb->fd;
	ring->enter = env && !strcmp(env, "async") ? 0 : SVA_SHIM_ENTER_INLINE;
	pthread_mutex_init(&ring->lock, NULL);
	kb->ring = ring;
	return 0;
free:
	if (ring->efd >= 0)
		sva__fd_close(ring->efd);
	free(ring->slots);
	free(ring);
	return err;
}

/*
 * The binding's rings, made once: at bind (kmod_ring_start()), before the
 * application can have holes in its address space that it means to fill
 * with MAP_FIXED (a ring mapped there lazily would be replaced under us);
 * else with the first descriptor.
 */
static struct kmod_ring *ring_get(struct sva_bind *bind)
{
	struct kmod_bind *kb = kmod_bind_of(bind);
	struct kmod_ring *ring;
	int err;

	sva__mutex_lock(&kb->ring_lock);
	if (!kb->ring_tried) {
		kb->ring_tried = true;
		err = ring_create(bind);
		if (err && err != -EOPNOTSUPP)
			pr_debug("kmod0: no descriptor engine: %s\n",
				 strerror(-err));
	}
	ring = kb->ring;
	sva__mutex_unlock(&kb->ring_lock);
	return ring;
}

void kmod_ring_start(struct sva_bind *bind)
{
	ring_get(bind);
}

/* Before the context's fd closes: the mapping holds the context too. */
void kmod_ring_fini(struct kmod_bind *kb)
{
	struct kmod_ring *ring = kb->ring;

	if (!ring)
		return;
	munmap(ring->mem, ring->size);
	sva__fd_close(ring->efd);
	pthread_mutex_destroy(&ring->lock);
	free(ring->slots);
	free(ring);
	kb->ring = NULL;
}

/*
 * Can @d go to the engine now, behind what the ring holds? Not what needs
 * library policy; and not while the descriptors ahead of it (each may fail
 * once) could push the device over its storm threshold: it must see the
 * quarantine they may cause, as on the window path, where each descriptor
 * looks when it starts.
 */
static bool ring_takes(struct sva_bind *bind, struct kmod_ring *ring,
		       const struct sva_desc *d)
{
	struct sva_dev *dev = bind->dev;
	bool room;

	if (d->opcode > SVA_OP_CRC32C || dev->nr_resv ||
	    !sva__range_attrs_empty(&bind->attrs))
		return false;
	if (sva__dev_quarantined(dev))
		return false;
	if (!ring->inflight)
		return true;
	sva__mutex_lock(&dev->storm_lock);
	room = dev->storm_failed + ring->inflight <
	       dev->opts.storm_threshold;
	sva__mutex_unlock(&dev->storm_lock);
	return room;
}

static void ring_push(struct sva_bind *bind, struct kmod_ring *ring,
		      const struct sva_desc *d, uint64_t t0)
{
	uint32_t i = ring->sq_tail & ring->mask;
	bool block = (d->flags & SVA_DESC_BLOCK_ON_FAULT) &&
		     !(bind->dev->opts.flags & SVA_DEV_NO_PRI);

	ring->sqes[i] = (struct sva_shim_sqe){
		.user_data = i, .src = d->src, .dst = d->dst,
		.len = d->opcode == SVA_OP_NOP ? 0 : d->len,
		.pattern = d->pattern, .opcode = (uint8_t)d->opcode,
		.flags = block ? SVA_SHIM_SQE_FAULT : 0,
	};
	/* The four opcodes have the shim's numbers. */
	ring->slots[i] = (struct kmod_slot){ *d, t0 };
	ring->sq_tail++;
	ring->inflight++;
	__atomic_store_n(&ring->r->sq_tail, ring->sq_tail, __ATOMIC_RELEASE);
}

/*
 * Ring the doorbell if the engine went idle with work it can take: the
 * engine sets NEED_WAKEUP, then looks at the SQ; we publish, then look at
 * NEED_WAKEUP (full barriers between on both sides). Inline, the entries
 * are done when it returns.
 */
static void ring_kick(struct kmod_ring *ring)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!(__atomic_load_n(&ring->r->flags, __ATOMIC_RELAXED) &
	      SVA_SHIM_RING_NEED_WAKEUP))
		return;
	if (__atomic_load_n(&ring->r->sq_head, __ATOMIC_RELAXED) ==
	    ring->sq_tail)
		return;
	ioctl(ring->ctx_fd, SVA_SHIM_IOC_RING_ENTER, ring->enter);
}

static void comp_of(struct sva_bind *bind, const struct sva_desc *d,
		    const struct sva_shim_cqe *c, struct sva_completion *comp)
{
	memset(comp, 0, sizeof(*comp));
	comp->user_data = d->user_data;
	if (d->opcode == SVA_OP_NOP)
		return;
	comp->bytes_done = c->bytes_done;
	if (d->opcode == SVA_OP_CRC32C)
		comp->result = (uint32_t)c->result;
	if (d->opcode == SVA_OP_COMPARE)
		comp->result = c->result;
	switch (c->status) {
	case SVA_SHIM_STATUS_OK:
		return;
	case SVA_SHIM_STATUS_PAGE_FAULT:
		comp->status = SVA_STATUS_PAGE_FAULT;
		break;
	case SVA_SHIM_STATUS_INVALID:
		comp->status = SVA_STATUS_FAULT_INVALID;
		break;
	default:	/* FAILURE; CANCELLED: the mm is exiting */
		comp->status = SVA_STATUS_FAULT_FAILURE;
		break;
	}
	comp->fault_addr = c->fault_addr;
	comp->fault_access = c->access == 2 ? SVA_ACCESS_WRITE :
					      SVA_ACCESS_READ;
	if (comp->status != SVA_STATUS_PAGE_FAULT)
		sva__fault_failed(bind);
}

/*
 * The next completion, waiting for it if @wait (the ring holds some);
 * false if none is there. A lost doorbell can't strand us: the engine
 * signals the eventfd after each completion it posts.
 */
static bool ring_reap(struct kmod_ring *ring, struct sva_shim_cqe *c,
		      bool wait)
{
	uint64_t n;

	for (;;) {
		if (__atomic_load_n(&ring->r->cq_tail, __ATOMIC_ACQUIRE) !=
		    ring->cq_head) {
			*c = ring->cqes[ring->cq_head & ring->mask];
			ring->cq_head++;
			ring->inflight--;
			__atomic_store_n(&ring->r->cq_head, ring->cq_head,
					 __ATOMIC_RELEASE);
			return true;
		}
		if (!wait)
			return false;
		/* The CQ may have been full: the engine waits for room. */
		ring_kick(ring);
		if (read(ring->efd, &n, sizeof(n)) < 0 && errno != EINTR)
			return false;
	}
}

static void ring_post(struct sva_bind *bind, struct kmod_ring *ring,
		      const struct sva_shim_cqe *c)
{
	struct kmod_slot *s = &ring->slots[c->user_data & ring->mask];
	struct sva_completion comp;

	comp_of(bind, &s->desc, c, &comp);
	sva__queue_post(bind, &s->desc, &comp, s->t0);
}

/* Complete everything in the ring, in order. */
static void ring_drain(struct sva_bind *bind, struct kmod_ring *ring)
{
	struct sva_shim_cqe c;

	while (ring->inflight && ring_reap(ring, &c, true))
		ring_post(bind, ring, &c);
}

void kmod_run_queue(struct sva_bind *bind)
{
	struct kmod_ring *ring = ring_get(bind);
	struct sva_shim_cqe c;
	struct sva_desc d;
	uint64_t t0;

	if (!ring) {
		while (sva__queue_take(bind, &d, &t0))
			sva__queue_exec(bind, &d, t0);
		return;
	}
	sva__mutex_lock(&ring->lock);
	for (;;) {
		while (ring->inflight <= ring->mask &&
		       sva__queue_take(bind, &d, &t0)) {
			if (ring_takes(bind, ring, &d)) {
				ring_push(bind, ring, &d, t0);
				continue;
			}
			/* Everything before it first, then it, here. */
			ring_kick(ring);
			ring_drain(bind, ring);
			if (ring_takes(bind, ring, &d)) {
				ring_push(bind, ring, &d, t0);
				continue;
			}
			sva__queue_exec(bind, &d, t0);
		}
		if (!ring->inflight)
			break;
		ring_kick(ring);
		/* Post what is done; sleep only when nothing is. */
		if (!ring_reap(ring, &c, true))
			break;
		ring_post(bind, ring, &c);
		while (ring_reap(ring, &c, false))
			ring_post(bind, ring, &c);
	}
	sva__mutex_unlock(&ring->lock);
}

/*
 * One descriptor outside the queue worker (exec): through the engine
 * when the ring is idle and the descriptor needs no library policy. True
 * if it ran there; @comp is its completion.
 */
bool kmod_ring_exec(struct sva_bind *bind, const struct sva_desc *d,
		    struct sva_completion *comp)
{
	struct kmod_ring *ring = ring_get(bind);
	struct sva_shim_cqe c;
	bool ran = false;

	if (!ring || sva__mutex_trylock(&ring->lock))
		return false;
	if (!ring->inflight && ring_takes(bind, ring, d)) {
		ring_push(bind, ring, d, 0);
		ring_kick(ring);
		ran = ring_reap(ring, &c, true);
		if (ran)
			comp_of(bind, d, &c, comp);
	}
	sva__mutex_unlock(&ring->lock);
	return ran;
}
