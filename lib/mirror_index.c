// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* The sorted index of a binding's mirrors (see mirror_index.h). */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* First position whose mirror starts at or after @start. */
static size_t lower_bound(const struct mirror_index *idx, uint64_t start)
{
	size_t lo = 0, hi = idx->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (idx->v[mid]->start < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

size_t mirror_index_first(const struct mirror_index *idx, uint64_t start)
{
	return lower_bound(idx, start > idx->max_len ?
			   start - idx->max_len : 0);
}

int mirror_index_insert(struct mirror_index *idx, struct sva_mirror *m)
{
	size_t pos;

	if (idx->n == idx->cap) {
		size_t cap = idx->cap ? 2 * idx->cap : 16;
		struct sva_mirror **v = sva__inject(SVA_INJECT_ALLOC) ? NULL :
					realloc(idx->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		idx->v = v;
		idx->cap = cap;
	}
	pos = lower_bound(idx, m->start);
	memmove(&idx->v[pos + 1], &idx->v[pos],
		(idx->n - pos) * sizeof(*idx->v));
	idx->v[pos] = m;
	idx->n++;
	idx->max_len = MAX(idx->max_len, m->end - m->start);
	return 0;
}

void mirror_index_remove(struct mirror_index *idx, struct sva_mirror *m)
{
	size_t pos = lower_bound(idx, m->start);

	while (pos < idx->n && idx->v[pos] != m)
		pos++;
	if (pos == idx->n)
		return;
	memmove(&idx->v[pos], &idx->v[pos + 1],
		(idx->n - pos - 1) * sizeof(*idx->v));
	idx->n--;
	/* The longest one left: keeps the search window tight. */
	if (m->end - m->start == idx->max_len) {
		idx->max_len = 0;
		for (size_t i = 0; i < idx->n; i++)
			idx->max_len = MAX(idx->max_len,
					   idx->v[i]->end - idx->v[i]->start);
	}
}

void mirror_index_fini(struct mirror_index *idx)
{
	free(idx->v);
	memset(idx, 0, sizeof(*idx));
}
