// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Fault injection: fail the Nth call at an injection point, then every
 * Mth, at most K times. The runtime asks sva__inject() at each point; an
 * unarmed point costs one relaxed atomic load.
 */
#include <stdlib.h>

#include "internal.h"

struct inject_point {
	_Atomic bool armed;
	pthread_mutex_t lock;	/* protects the rest */
	struct sva_inject_opts o;
	unsigned long calls;
	long hits;
};

static struct inject_point points[SVA_INJECT_MAX] = {
	[0 ... SVA_INJECT_MAX - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER },
};

/*
 * A child of fork() may use libsva afresh: it must not find a point's lock
 * held forever by a parent's thread that held it at fork().
 */
static void inject_atfork_prepare(void)
{
	for (int i = 0; i < SVA_INJECT_MAX; i++)
		sva__mutex_lock(&points[i].lock);
}

static void inject_atfork_release(void)
{
	for (int i = SVA_INJECT_MAX - 1; i >= 0; i--)
		sva__mutex_unlock(&points[i].lock);
}

__attribute__((constructor)) static void inject_atfork_register(void)
{
	pthread_atfork(inject_atfork_prepare, inject_atfork_release,
		       inject_atfork_release);
}

int sva_inject(enum sva_inject_point point, const struct sva_inject_opts *opts)
{
	SVA_NO_CANCEL;
	struct inject_point *p;
	struct sva_inject_opts o;
	int err;

	if ((unsigned int)point >= SVA_INJECT_MAX)
		return sva_err(-EINVAL, "no injection point %d", (int)point);
	err = sva__opts_copy(&o, sizeof(o), opts, "sva_inject_opts");
	if (err)
		return err;
	p = &points[point];
	sva__mutex_lock(&p->lock);
	p->o = o;
	p->calls = 0;
	p->hits = 0;
	atomic_store(&p->armed, o.nth != 0);
	sva__mutex_unlock(&p->lock);
	return 0;
}

long sva_inject_count(enum sva_inject_point point)
{
	long hits;

	if ((unsigned int)point >= SVA_INJECT_MAX)
		return -EINVAL;
	sva__mutex_lock(&points[point].lock);
	hits = points[point].hits;
	sva__mutex_unlock(&points[point].lock);
	return hits;
}

bool sva__inject(enum sva_inject_point point)
{
	struct inject_point *p = &points[point];
	unsigned long n;
	bool fail;

	if (!atomic_load_explicit(&p->armed, memory_order_relaxed))
		return false;
	sva__mutex_lock(&p->lock);
	n = ++p->calls;
	fail = n == p->o.nth ||
	       (p->o.every && n > p->o.nth && (n - p->o.nth) % p->o.every == 0);
	if (fail && p->o.times && p->hits >= (long)p->o.times)
		fail = false;
	if (fail)
		p->hits++;
	sva__mutex_unlock(&p->lock);
	return fail;
}

void *sva__zalloc(size_t size)
{
	return sva__inject(SVA_INJECT_ALLOC) ? NULL : calloc(1, size);
}

void *sva__alloc(size_t size)
{
	return sva__inject(SVA_INJECT_ALLOC) ? NULL : malloc(size);
}
