// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Mirror ranges, HMM style: a range of the bound mm the device keeps a
 * mirror of, a sequence that advances on every invalidation touching it
 * (read_begin/read_retry, as mmu_interval_read_begin/retry), and a callback.
 */
#include <stdlib.h>

#include "internal.h"

int sva_mirror_register(struct sva_bind *bind, uint64_t addr, uint64_t len,
			const struct sva_mirror_opts *opts,
			struct sva_mirror **mirrorp)
{
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
	pthread_mutex_lock(&bind->mirror_lock);
	err = mirror_index_insert(&bind->mirrors, m);
	pthread_mutex_unlock(&bind->mirror_lock);
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
	struct sva_bind *bind;
	int err;

	if (!m)
		return sva_err(-EINVAL, "NULL mirror");
	bind = m->bind;
	err = sva__check_owner(bind->owner, "binding");
	if (err)
		return err;
	/* Taking mirror_lock waits out a callback running on the mirror. */
	pthread_mutex_lock(&bind->mirror_lock);
	mirror_index_remove(&bind->mirrors, m);
	pthread_mutex_unlock(&bind->mirror_lock);
	bind->dev->ops->mirror_unregister(m);
	free(m);
	return 0;
}

int sva_mirror_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
			uint8_t *states, unsigned int fault)
{
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

uint64_t sva_mirror_read_begin(struct sva_mirror *m)
{
	if (!m)
		return 0;
	mirror_sync(m);
	return atomic_load_explicit(&m->seq, memory_order_acquire);
}

bool sva_mirror_read_retry(struct sva_mirror *m, uint64_t seq)
{
	if (!m)
		return true;
	mirror_sync(m);
	return atomic_load_explicit(&m->seq, memory_order_acquire) != seq;
}

void sva__mirrors_advance(struct sva_bind *bind, uint64_t start,
			  uint64_t end)
{
	struct sva_mirror *m;
	size_t i;

	pthread_mutex_lock(&bind->mirror_lock);
	mirror_index_for_each(m, &bind->mirrors, start, end, i)
		atomic_fetch_add_explicit(&m->seq, 1, memory_order_acq_rel);
	pthread_mutex_unlock(&bind->mirror_lock);
}

void sva__mirrors_notify(struct sva_bind *bind, uint64_t start, uint64_t end,
			 enum sva_inval_event event)
{
	struct sva_mirror *m;
	size_t i;

	pthread_mutex_lock(&bind->mirror_lock);
	mirror_index_for_each(m, &bind->mirrors, start, end, i) {
		if (m->opts.invalidate)
			m->opts.invalidate(m, MAX(start, m->start),
					   MIN(end, m->end), event,
					   atomic_load(&m->seq), m->opts.ctx);
	}
	pthread_mutex_unlock(&bind->mirror_lock);
}
