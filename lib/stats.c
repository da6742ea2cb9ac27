// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Statistics of bindings and devices. */
#include <stddef.h>
#include <string.h>

#include "internal.h"

void sva__counters_read(const struct sva_counters *c, struct sva_stats *out)
{
	/* struct sva_stats lists its counters in enum sva_counter order. */
	struct sva_stats s = { .sz = sizeof(s) };
	uint64_t *v = &s.translations;

	for (int i = 0; i < SVA_C_NR; i++)
		v[i] = atomic_load_explicit(&c->v[i], memory_order_relaxed);
	/* A newer caller's struct: its fields we don't know read 0. */
	sva__out_copy(out, out->sz, &s, sizeof(s));
}

/* struct sva_stats lists the counters in enum sva_counter order. */
_Static_assert(offsetof(struct sva_stats, pinned_now) ==
	       offsetof(struct sva_stats, translations) +
	       SVA_C_PINNED_NOW * sizeof(uint64_t) &&
	       sizeof(struct sva_stats) ==
	       offsetof(struct sva_stats, translations) +
	       SVA_C_NR * sizeof(uint64_t),
	       "struct sva_stats and enum sva_counter differ");

void sva__counters_reset(struct sva_counters *c)
{
	for (int i = 0; i < SVA_C_NR; i++)
		if (i != SVA_C_PINNED_NOW)	/* a state, not a count */
			atomic_store_explicit(&c->v[i], 0,
					      memory_order_relaxed);
}

static int stats_check(const void *h, pid_t owner,
		       const struct sva_stats *stats)
{
	int err;

	if (!h || !stats)
		return sva_err(-EINVAL, "NULL argument");
	err = sva__check_owner(owner, "handle");
	if (err)
		return err;
	if (stats->sz < sizeof(size_t))
		return sva_err(-EINVAL, "stats->sz %zu too small", stats->sz);
	return 0;
}

int sva_bind_stats(const struct sva_bind *bind, struct sva_stats *stats)
{
	SVA_NO_CANCEL;
	int err = stats_check(bind, bind ? bind->owner : 0, stats);

	if (err)
		return err;
	/* Count invalidations that munmap() & co. already started. */
	if (bind->dev->ops->sync)
		bind->dev->ops->sync((struct sva_bind *)bind);
	sva__counters_read(&bind->stats, stats);
	return err;
}

int sva_bind_stats_reset(struct sva_bind *bind)
{
	SVA_NO_CANCEL;
	int err = sva__bind_usable(bind);

	if (err)
		return err;
	sva__counters_reset(&bind->stats);
	return 0;
}

int sva_dev_stats(const struct sva_dev *dev, struct sva_stats *stats)
{
	SVA_NO_CANCEL;
	struct sva_dev *d = (struct sva_dev *)dev;
	struct sva_bind *bind;
	int err = stats_check(dev, dev ? dev->owner : 0, stats);

	if (err)
		return err;
	if (d->ops->sync) {
		sva__mutex_lock(&d->lock);
		list_for_each_entry(bind, &d->binds, dev_node)
			d->ops->sync(bind);
		sva__mutex_unlock(&d->lock);
	}
	sva__counters_read(&dev->stats, stats);
	return 0;
}

int sva_dev_stats_reset(struct sva_dev *dev)
{
	SVA_NO_CANCEL;
	int err = sva__dev_usable(dev);

	if (err)
		return err;
	sva__counters_reset(&dev->stats);
	return 0;
}
