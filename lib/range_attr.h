/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * Range attributes of a binding (sva_range_set_attr()): a sorted array of
 * disjoint intervals, each with a value per attribute. A set splits the
 * intervals it cuts and merges neighbours left equal; pages no interval
 * covers have the defaults (every value 0: SVA_LOC_NONE, flags clear,
 * granularity 0), and intervals with only defaults are not kept.
 */
#ifndef SVA_RANGE_ATTR_H
#define SVA_RANGE_ATTR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sva/sva.h"

/* Intervals a binding may hold (each set adds at most two). */
#define SVA_ATTR_IVALS_MAX 65536

struct sva_attr_ival {
	uint64_t start, end;
	uint64_t v[SVA_ATTR_MAX];	/* by enum sva_range_attr_type */
};

struct sva_range_attrs {
	pthread_mutex_t lock;		/* a leaf lock: protects iv, n, cap */
	struct sva_attr_ival *iv;
	unsigned int n, cap;
};

void sva__range_attrs_init(struct sva_range_attrs *ra);
void sva__range_attrs_fini(struct sva_range_attrs *ra);
/* Set attributes @mask (bit per type) of [start, end) to @v[type]. */
int sva__range_attrs_set(struct sva_range_attrs *ra, uint64_t start,
			 uint64_t end, uint32_t mask, const uint64_t *v);
/* The value of @type common to [start, end) (see sva_range_get_attr). */
uint64_t sva__range_attrs_get(struct sva_range_attrs *ra, uint64_t start,
			      uint64_t end, uint32_t type);
/* The values of every attribute at @addr. */
void sva__range_attrs_at(struct sva_range_attrs *ra, uint64_t addr,
			 uint64_t *v);
/* The first address of [start, end) where @type is not 0, or @end. */
uint64_t sva__range_attrs_first(struct sva_range_attrs *ra, uint64_t start,
				uint64_t end, uint32_t type);
/* munmap, mremap: forget [start, end). Allocates nothing. */
void sva__range_attrs_drop(struct sva_range_attrs *ra, uint64_t start,
			   uint64_t end);
/* True when no attribute is set anywhere (a cheap check, unlocked). */
bool sva__range_attrs_empty(struct sva_range_attrs *ra);

#endif /* SVA_RANGE_ATTR_H */
