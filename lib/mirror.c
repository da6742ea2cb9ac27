// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Mirror ranges, HMM style: a range of the bound mm the device keeps a
 * mirror of, a sequence that advances on every invalidation touching it
 * (read_begin/read_retry, as mmu_interval_read_begin/retry), and a callback.
 *
 * Callbacks run with no lock of the library held, so that they may call
 * back into it. bind->mirror_lock guards the index only for short walks; a
 * mirror whose callback runs is pinned (cb_running) instead, and
 * unregister waits for it to be unpinned (bind->cb_done). Each thread
 * keeps a stack of the callbacks it runs (cb_top), which tells the calls a
 * callback may not make (unbind and friends: -EDEADLK) and lets a callback
 * unregister its own mirror: the mirror is freed when the callback returns.
 */
#include <stdlib.h>

#include "internal.h"

/* A callback this thread is running. */
struct cb_frame {
	struct sva_mirror *mirror;
	struct sva_bind *bind;
	struct cb_frame *up;
};

static __thread struct cb_frame *cb_top;

/* A child forked from inside a callback runs none. */
static void cb_atfork_child(void)
{
	cb_top = NULL;
}

__attribute__((constructor)) static void cb_atfork_register(void)
{
	pthread_atfork(NULL, NULL, cb_atfork_child);
}

int sva__forbidden_in_callback(const char *what)
{
	if (!cb_top)
		return 0;
	return sva_err(-EDEADLK, "%s from an invalidation callback (of mirror %#llx+%#llx) would deadlock",
		       what, (unsigned long long)cb_top->mirror->start,
		       (unsigned long long)(cb_top->mirror->end -
					    cb_top->mirror->start));
}

/* Callbacks of @m this thread is inside of. */
static unsigned int cb_depth_of(const struct sva_mirror *m)
{
	unsigned int n = 0;

	for (struct cb_frame *f = cb_top; f; f = f->up)
		n += f->mirror == m;
	return n;
}

int sva_mirror_register(struct sva_bind *bind, uint64_t addr, uint64_t len,
			const struct sva_mirror_opts *opts,
			struct sva_mirror **mirrorp)
{
	SVA_NO_CANCEL;
	struct sva_mirror *m;
	int err;

	if (!bind || !mirrorp)
		return sva_err(-EINVAL, "NULL argument");
	*mirrorp = NULL;
	err = sva__check_owner(bind->owner, "binding");
	if (err)
		return err;
	if (!(bind->dev->caps.flags & SVA_CAP_MIRROR))
		return sva_err(-EOPNOTSUPP, "%s can't mirror", bind->dev->name);
	if (!len || (addr | len) & ~SVA_PAGE_MASK || addr + len < addr)
		return sva_err(-EINVAL, "range %#llx+%#llx not page aligned or wraps",
			       (unsigned long long)addr,
			       (unsigned long long)len);
	/* As VFIO_IOMMU_MAP_DMA refuses reserved IOVAs: no DMA gets there. */
	err = sva__resv_check_range(bind->dev, addr, len,
				    "sva_mirror_register");
	if (err)
		return err;
	m = sva__zalloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	err = sva__opts_copy(&m->opts, sizeof(m->opts), opts,
			     "sva_mirror_opts");
	if (err)
		goto free;
	m->bind = bind;
	m->start = addr;
	m->end = addr + len;
	atomic_init(&m->seq, 1);
	err = bind->dev->ops->mirror_register(m);
	if (err)
		goto free;
	sva__mutex_lock(&bind->mirror_lock);
	if (bind->unbinding)
		err = sva_err(-ESHUTDOWN, "binding is being unbound");
	else
		err = mirror_index_insert(&bind->mirrors, m);
	sva__mutex_unlock(&bind->mirror_lock);
	if (err) {
		bind->dev->ops->mirror_unregister(m);
		goto free;
	}
	*mirrorp = m;
	return 0;
free:
	free(m);
	return err;
}

int sva_mirror_unregister(struct sva_mirror *m)
{
	SVA_NO_CANCEL;
	struct sva_bind *bind;
	unsigned int self;
	int err;

	if (!m)
		return sva_err(-EINVAL, "NULL mirror");
	bind = m->bind;
	err = sva__check_owner(bind->owner, "binding");
	if (err)
		return err;
	self = cb_depth_of(m);
	sva__mutex_lock(&bind->mirror_lock);
	if (m->unregistered) {
		sva__mutex_unlock(&bind->mirror_lock);
		return sva_err(-EINVAL, "mirror %#llx+%#llx unregistered twice",
			       (unsigned long long)m->start,
			       (unsigned long long)(m->end - m->start));
	}
	/* Out of the index: no callback starts on it from now on. */
	mirror_index_remove(&bind->mirrors, m);
	m->unregistered = true;
	/* Wait out the callbacks running on it, but the caller's own. */
	while (m->cb_running > self)
		sva__cond_wait(&bind->cb_done, &bind->mirror_lock);
	m->free_on_return = self > 0;
	sva__mutex_unlock(&bind->mirror_lock);
	bind->dev->ops->mirror_unregister(m);
	if (!self)
		free(m);
	return 0;
}

int sva_mirror_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
			uint8_t *states, unsigned int fault)
{
	SVA_NO_CANCEL;
	int err;

	if (!m || !states)
		return sva_err(-EINVAL, "NULL argument");
	err = sva__check_owner(m->bind->owner, "binding");
	if (err)
		return err;
	if (!len || (addr | len) & ~SVA_PAGE_MASK || addr < m->start ||
	    addr + len > m->end || addr + len < addr)
		return sva_err(-EINVAL, "range %#llx+%#llx outside the mirror or unaligned",
			       (unsigned long long)addr,
			       (unsigned long long)len);
	if (fault & ~(unsigned int)(SVA_ACCESS_READ | SVA_ACCESS_WRITE))
		return sva_err(-EINVAL, "bad fault flags %#x", fault);
	return m->bind->dev->ops->snapshot(m, addr, len, states, fault);
}

static void mirror_sync(struct sva_mirror *m)
{
	if (m->bind->dev->ops->sync)
		m->bind->dev->ops->sync(m->bind);
}

/*
 * Sequences start at 1 and only grow: 0 is never a valid one. It is what
 * read_begin() returns on a handle it can't use (NULL, another process's),
 * and read_retry() always says "retry" for it.
 */
uint64_t sva_mirror_read_begin(struct sva_mirror *m)
{
	if (!m) {
		sva_err(-EINVAL, "NULL mirror");
		return 0;
	}
	if (sva__check_owner(m->bind->owner, "binding"))
		return 0;
	mirror_sync(m);
	return atomic_load_explicit(&m->seq, memory_order_acquire);
}

bool sva_mirror_read_retry(struct sva_mirror *m, uint64_t seq)
{
	if (!m) {
		sva_err(-EINVAL, "NULL mirror");
		return true;
	}
	if (sva__check_owner(m->bind->owner, "binding"))
		return true;
	if (!seq)
		return true;
	mirror_sync(m);
	return atomic_load_explicit(&m->seq, memory_order_acquire) != seq;
}

void sva__mirrors_advance(struct sva_bind *bind, uint64_t start,
			  uint64_t end)
{
	struct sva_mirror *m;
	size_t i;

	sva__mutex_lock(&bind->mirror_lock);
	mirror_index_for_each(m, &bind->mirrors, start, end, i)
		atomic_fetch_add_explicit(&m->seq, 1, memory_order_acq_rel);
	sva__mutex_unlock(&bind->mirror_lock);
}

/* Caller holds mirror_lock: keep @m from being freed while it runs. */
static void mirror_pin(struct sva_mirror *m)
{
	m->cb_running++;
	m->bind->cb_running++;
}

/*
 * Caller holds mirror_lock. Returns true when the caller must free @m
 * (after unlocking): its own callback unregistered it and was the last.
 */
static bool mirror_unpin(struct sva_mirror *m)
{
	m->cb_running--;
	m->bind->cb_running--;
	/* Unregister and unbind wait for callbacks to return. */
	pthread_cond_broadcast(&m->bind->cb_done);
	return m->unregistered && m->free_on_return && !m->cb_running;
}

/* Run @m's callback (pinned by the caller, mirror_lock not held). */
static void mirror_callback(struct sva_mirror *m, uint64_t start,
			    uint64_t end, enum sva_inval_event event,
			    uint64_t seq)
{
	struct cb_frame frame = { .mirror = m, .bind = m->bind, .up = cb_top };

	cb_top = &frame;
	m->opts.invalidate(m, start, end, event, seq, m->opts.ctx);
	cb_top = frame.up;
}

static bool mirror_after(const struct sva_mirror *m, uint64_t start,
			 uintptr_t id)
{
	return m->start > start || (m->start == start && (uintptr_t)m > id);
}

/*
 * The first mirror overlapping [lo, hi) with a callback that comes after
 * the cursor (@start, @id) in (start, address) order. The cursor only moves
 * forward, so the walk needs no copy of the index and survives mirrors
 * registered and unregistered by the callbacks it runs. Caller holds
 * mirror_lock.
 */
static struct sva_mirror *mirror_next(struct sva_bind *bind, uint64_t lo,
				      uint64_t hi, uint64_t start, uintptr_t id)
{
	struct mirror_index *idx = &bind->mirrors;
	struct sva_mirror *m, *best = NULL;
	size_t i = mirror_index_first(idx, lo);

	/* Mirrors starting before the cursor were visited already. */
	while (i < idx->n && idx->v[i]->start < start)
		i++;
	for (; i < idx->n && (m = idx->v[i])->start < hi; i++) {
		if (best && m->start > best->start)
			break;
		if (m->end <= lo || !m->opts.invalidate ||
		    !mirror_after(m, start, id))
			continue;
		if (!best || (uintptr_t)m < (uintptr_t)best)
			best = m;
	}
	return best;
}

void sva__mirrors_notify(struct sva_bind *bind, uint64_t start, uint64_t end,
			 enum sva_inval_event event)
{
	uint64_t cur_start = 0, seq;
	uintptr_t cur_id = 0;
	struct sva_mirror *m;
	bool free_it;

	sva__mutex_lock(&bind->mirror_lock);
	while ((m = mirror_next(bind, start, end, cur_start, cur_id))) {
		cur_start = m->start;
		cur_id = (uintptr_t)m;
		mirror_pin(m);
		sva__mutex_unlock(&bind->mirror_lock);

		seq = atomic_load(&m->seq);
		mirror_callback(m, MAX(start, m->start), MIN(end, m->end),
				event, seq);

		sva__mutex_lock(&bind->mirror_lock);
		free_it = mirror_unpin(m);
		if (free_it)
			free(m);
	}
	sva__mutex_unlock(&bind->mirror_lock);
}

bool sva__mirror_release_first(struct sva_bind *bind)
{
	struct sva_mirror *m;
	bool mine, free_it;
	uint64_t seq;

	sva__mutex_lock(&bind->mirror_lock);
	if (!bind->mirrors.n) {
		sva__mutex_unlock(&bind->mirror_lock);
		return false;
	}
	m = bind->mirrors.v[0];
	mirror_pin(m);
	seq = atomic_fetch_add_explicit(&m->seq, 1, memory_order_acq_rel) + 1;
	sva__mutex_unlock(&bind->mirror_lock);

	if (m->opts.invalidate)
		mirror_callback(m, m->start, m->end, SVA_INVAL_RELEASE, seq);

	sva__mutex_lock(&bind->mirror_lock);
	/* Its callback may have unregistered it: then it's not ours. */
	mine = !m->unregistered;
	if (mine) {
		mirror_index_remove(&bind->mirrors, m);
		m->unregistered = true;
		while (m->cb_running > 1)
			sva__cond_wait(&bind->cb_done, &bind->mirror_lock);
	}
	free_it = mirror_unpin(m);
	sva__mutex_unlock(&bind->mirror_lock);
	if (mine) {
		bind->dev->ops->mirror_unregister(m);
		free(m);
	} else if (free_it) {
		free(m);
	}
	return true;
}

void sva__mirrors_wait_callbacks(struct sva_bind *bind)
{
	sva__mutex_lock(&bind->mirror_lock);
	while (bind->cb_running)
		sva__cond_wait(&bind->cb_done, &bind->mirror_lock);
	sva__mutex_unlock(&bind->mirror_lock);
}
