/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * A binding's mirrors, sorted by start, so that an invalidation visits the
 * mirrors it may overlap rather than all of them: binary search for the
 * first mirror starting at or after (start - longest mirror length), walk
 * until one starts past the end.
 */
#ifndef SVA_MIRROR_INDEX_H
#define SVA_MIRROR_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct sva_mirror;

struct mirror_index {
	struct sva_mirror **v;
	size_t n, cap;
	uint64_t max_len;	/* longest mirror ever inserted and present */
};

int mirror_index_insert(struct mirror_index *idx, struct sva_mirror *m);
void mirror_index_remove(struct mirror_index *idx, struct sva_mirror *m);
/* Index of the first mirror that can overlap an address >= @start. */
size_t mirror_index_first(const struct mirror_index *idx, uint64_t start);
void mirror_index_fini(struct mirror_index *idx);

/* Every mirror of @idx that overlaps [@lo, @hi), as @m (index @i). */
#define mirror_index_for_each(m, idx, lo, hi, i)			\
	for (i = mirror_index_first(idx, lo);				\
	     i < (idx)->n && ((m) = (idx)->v[i])->start < (hi); i++)	\
		if ((m)->end > (lo))

#endif /* SVA_MIRROR_INDEX_H */
