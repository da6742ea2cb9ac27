// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Range attributes: a sorted array of disjoint intervals. Sets rebuild the
 * array (one pass), so a lookup is a binary search and nothing points into
 * it. Bounded by SVA_ATTR_IVALS_MAX intervals per binding.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

void sva__range_attrs_init(struct sva_range_attrs *ra)
{
	memset(ra, 0, sizeof(*ra));
	pthread_mutex_init(&ra->lock, NULL);
}

void sva__range_attrs_fini(struct sva_range_attrs *ra)
{
	free(ra->iv);
	ra->iv = NULL;
	ra->n = ra->cap = 0;
	pthread_mutex_destroy(&ra->lock);
}

bool sva__range_attrs_empty(struct sva_range_attrs *ra)
{
	return !__atomic_load_n(&ra->n, __ATOMIC_RELAXED);
}

static bool ival_default(const struct sva_attr_ival *iv)
{
	for (int t = 0; t < SVA_ATTR_MAX; t++)
		if (iv->v[t])
			return false;
	return true;
}

/* The first interval ending after @addr (n if none). */
static unsigned int ival_find(const struct sva_range_attrs *ra, uint64_t addr)
{
	unsigned int lo = 0, hi = ra->n;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (ra->iv[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Append @iv to @out (merging with an equal neighbour); drops defaults. */
static void ival_push(struct sva_attr_ival *out, unsigned int *n,
		      const struct sva_attr_ival *iv)
{
	struct sva_attr_ival *last = *n ? &out[*n - 1] : NULL;

	if (iv->start >= iv->end || ival_default(iv))
		return;
	if (last && last->end == iv->start &&
	    !memcmp(last->v, iv->v, sizeof(iv->v))) {
		last->end = iv->end;
		return;
	}
	out[(*n)++] = *iv;
}

/*
 * Rebuild with [start, end) given by @fn over what was there (gaps passed
 * as default intervals). Caller holds ra->lock.
 */
static int attrs_rebuild(struct sva_range_attrs *ra, uint64_t start,
			 uint64_t end,
			 void (*fn)(struct sva_attr_ival *iv, const void *arg),
			 const void *arg)
{
	unsigned int cap = 2 * ra->n + 4, n = 0, i;
	struct sva_attr_ival *out, piece;
	uint64_t at = start;

	out = sva__alloc(cap * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (i = 0; i < ra->n && ra->iv[i].end <= start; i++)
		ival_push(out, &n, &ra->iv[i]);
	/* The part of a cut interval before start. */
	if (i < ra->n && ra->iv[i].start < start) {
		piece = ra->iv[i];
		piece.end = start;
		ival_push(out, &n, &piece);
	}
	for (; at < end;) {
		if (i < ra->n && ra->iv[i].start <= at) {
			piece = ra->iv[i];
			piece.start = at;
			piece.end = MIN(ra->iv[i].end, end);
			i += ra->iv[i].end <= end;
		} else {
			memset(&piece, 0, sizeof(piece));
			piece.start = at;
			piece.end = i < ra->n ? MIN(ra->iv[i].start, end) : end;
		}
		at = piece.end;
		if (fn)
			fn(&piece, arg);
		else
			memset(piece.v, 0, sizeof(piece.v));
		ival_push(out, &n, &piece);
	}
	/* The part of a cut interval after end, then the rest. */
	if (i < ra->n && ra->iv[i].start < end) {
		piece = ra->iv[i];
		piece.start = end;
		ival_push(out, &n, &piece);
		i++;
	}
	for (; i < ra->n; i++)
		ival_push(out, &n, &ra->iv[i]);
	if (n > SVA_ATTR_IVALS_MAX) {
		free(out);
		return sva_err(-ENOSPC, "more than %u attribute intervals",
			       SVA_ATTR_IVALS_MAX);
	}
	free(ra->iv);
	ra->iv = out;
	ra->cap = cap;	/* >= n + 1: a drop may split one in place */
	__atomic_store_n(&ra->n, n, __ATOMIC_RELAXED);
	return 0;
}

struct set_arg {
	uint32_t mask;
	const uint64_t *v;
};

static void set_fn(struct sva_attr_ival *iv, const void *arg)
{
	const struct set_arg *a = arg;

	for (int t = 0; t < SVA_ATTR_MAX; t++)
		if (a->mask & (1u << t))
			iv->v[t] = a->v[t];
}

int sva__range_attrs_set(struct sva_range_attrs *ra, uint64_t start,
			 uint64_t end, uint32_t mask, const uint64_t *v)
{
	struct set_arg a = { mask, v };
	int err;

	sva__mutex_lock(&ra->lock);
	err = attrs_rebuild(ra, start, end, set_fn, &a);
	sva__mutex_unlock(&ra->lock);
	return err;
}

/*
 * In place, allocating and freeing nothing: it runs on the thread that
 * reads userfaultfd events, which must not free memory (trimming the heap
 * would wait for an event that thread itself has to read). There is
 * always room for the one split a drop may need (cap > n).
 */
void sva__range_attrs_drop(struct sva_range_attrs *ra, uint64_t start,
			   uint64_t end)
{
	unsigned int i, j;

	if (sva__range_attrs_empty(ra))
		return;
	sva__mutex_lock(&ra->lock);
	i = ival_find(ra, start);
	if (i < ra->n && ra->iv[i].start < start && ra->iv[i].end > end) {
		/* Inside one interval: split it in two. */
		memmove(&ra->iv[i + 1], &ra->iv[i],
			(ra->n - i) * sizeof(ra->iv[0]));
		ra->iv[i].end = start;
		ra->iv[i + 1].start = end;
		__atomic_store_n(&ra->n, ra->n + 1, __ATOMIC_RELAXED);
		goto out;
	}
	if (i < ra->n && ra->iv[i].start < start) {
		ra->iv[i].end = start;
		i++;
	}
	for (j = i; j < ra->n && ra->iv[j].end <= end; j++)
		;
	if (j < ra->n && ra->iv[j].start < end)
		ra->iv[j].start = end;
	memmove(&ra->iv[i], &ra->iv[j], (ra->n - j) * sizeof(ra->iv[0]));
	__atomic_store_n(&ra->n, ra->n - (j - i), __ATOMIC_RELAXED);
out:
	sva__mutex_unlock(&ra->lock);
}

void sva__range_attrs_at(struct sva_range_attrs *ra, uint64_t addr,
			 uint64_t *v)
{
	unsigned int i;

	memset(v, 0, SVA_ATTR_MAX * sizeof(*v));
	if (sva__range_attrs_empty(ra))
		return;
	sva__mutex_lock(&ra->lock);
	i = ival_find(ra, addr);
	if (i < ra->n && ra->iv[i].start <= addr)
		memcpy(v, ra->iv[i].v, SVA_ATTR_MAX * sizeof(*v));
	sva__mutex_unlock(&ra->lock);
}

uint64_t sva__range_attrs_first(struct sva_range_attrs *ra, uint64_t start,
				uint64_t end, uint32_t type)
{
	uint64_t ret = end;

	if (sva__range_attrs_empty(ra))
		return end;
	sva__mutex_lock(&ra->lock);
	for (unsigned int i = ival_find(ra, start);
	     i < ra->n && ra->iv[i].start < end; i++) {
		if (ra->iv[i].v[type]) {
			ret = MAX(ra->iv[i].start, start);
			break;
		}
	}
	sva__mutex_unlock(&ra->lock);
	return ret;
}

/*
 * KFD's rules for a range whose pages differ: a flag is 1 only if set on
 * every page, a location is SVA_LOC_NONE unless the same on every page,
 * the granularity is the smallest.
 */
uint64_t sva__range_attrs_get(struct sva_range_attrs *ra, uint64_t start,
			      uint64_t end, uint32_t type)
{
	uint64_t at = start, val = 0;
	bool first = true;

	sva__mutex_lock(&ra->lock);
	for (unsigned int i = ival_find(ra, start); at < end; i++) {
		uint64_t v;

		if (i < ra->n && ra->iv[i].start <= at) {
			v = ra->iv[i].v[type];
			at = ra->iv[i].end;
		} else {
			v = 0;	/* a gap: defaults */
			at = i < ra->n ? ra->iv[i].start : end;
			i--;	/* look at this interval again */
		}
		if (first)
			val = v;
		else if (type == SVA_ATTR_GRANULARITY)
			val = MIN(val, v);
		else if (val != v)
			val = 0;
		first = false;
	}
	sva__mutex_unlock(&ra->lock);
	return val;
}
