// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The device's address translation cache: set associative, keyed by
 * (PASID, virtual page), round-robin replacement within a set. Every entry
 * is for a page whose invalidations the IOMMU model hears of (see mm.c).
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define SIM_ATC_WAYS 4

static unsigned int atc_set(const struct sim_atc *atc, uint32_t pasid,
			    uint64_t vpn)
{
	uint64_t h = (vpn ^ ((uint64_t)pasid << 40)) * 0x9e3779b97f4a7c15ull;

	return (unsigned int)(h >> 32) % atc->nsets;
}

int sim_atc_init(struct sim_atc *atc, unsigned int entries)
{
	atc->nsets = MAX(entries / SIM_ATC_WAYS, 1u);
	atc->e = sva__zalloc((size_t)atc->nsets * SIM_ATC_WAYS * sizeof(*atc->e));
	if (!atc->e)
		return -ENOMEM;
	atc->hand = 0;
	atc->nvalid = 0;
	atc->lo = UINT64_MAX;
	atc->hi = 0;
	pthread_mutex_init(&atc->lock, NULL);
	return 0;
}

void sim_atc_fini(struct sim_atc *atc)
{
	pthread_mutex_destroy(&atc->lock);
	free(atc->e);
	atc->e = NULL;
}

unsigned int sim_atc_lookup(struct sim_atc *atc, uint32_t pasid,
			    uint64_t vpn)
{
	struct sim_atc_entry *set;
	unsigned int perm = 0;

	sva__mutex_lock(&atc->lock);
	set = &atc->e[atc_set(atc, pasid, vpn) * SIM_ATC_WAYS];
	for (int w = 0; w < SIM_ATC_WAYS; w++) {
		if (set[w].perm && set[w].vpn == vpn &&
		    set[w].pasid == pasid) {
			perm = set[w].perm;
			break;
		}
	}
	sva__mutex_unlock(&atc->lock);
	return perm;
}

/*
 * The way to fill with @vpn: its own entry if cached (never two entries
 * for one page), else an empty way, else the round-robin victim. Caller
 * holds atc->lock.
 */
static struct sim_atc_entry *atc_slot(struct sim_atc *atc, uint32_t pasid,
				      uint64_t vpn)
{
	struct sim_atc_entry *set, *empty = NULL;

	set = &atc->e[atc_set(atc, pasid, vpn) * SIM_ATC_WAYS];
	for (int w = 0; w < SIM_ATC_WAYS; w++) {
		if (!set[w].perm) {
			if (!empty)
				empty = &set[w];
		} else if (set[w].vpn == vpn && set[w].pasid == pasid) {
			return &set[w];
		}
	}
	return empty ? empty : &set[atc->hand++ % SIM_ATC_WAYS];
}

/*
 * Cache @vpn with @perm, keeping the count of valid entries and the
 * interval they lie in (what lets an invalidation elsewhere walk nothing).
 * Caller holds atc->lock.
 */
static void atc_set_entry(struct sim_atc *atc, uint32_t pasid, uint64_t vpn,
			  unsigned int perm)
{
	struct sim_atc_entry *victim = atc_slot(atc, pasid, vpn);

	if (!victim->perm && perm)
		atc->nvalid++;
	else if (victim->perm && !perm)
		atc->nvalid--;
	atc->lo = MIN(atc->lo, vpn);
	atc->hi = MAX(atc->hi, vpn + 1);
	victim->vpn = vpn;
	victim->pasid = pasid;
	victim->perm = (uint8_t)perm;
}

void sim_atc_fill(struct sim_atc *atc, uint32_t pasid, uint64_t vpn,
		  unsigned int perm)
{
	sva__mutex_lock(&atc->lock);
	atc_set_entry(atc, pasid, vpn, perm);
	sva__mutex_unlock(&atc->lock);
}

static unsigned int atc_drop(struct sim_atc_entry *e, uint32_t pasid,
			     uint64_t start, uint64_t end)
{
	if (e->perm && e->pasid == pasid && e->vpn >= start && e->vpn < end) {
		e->perm = 0;
		return 1;
	}
	return 0;
}

unsigned int sim_atc_invalidate(struct sim_atc *atc, uint32_t pasid,
				uint64_t start, uint64_t end)
{
	unsigned int total = atc->nsets * SIM_ATC_WAYS, dropped = 0;
	struct sim_atc_entry *set;

	sva__mutex_lock(&atc->lock);
	/* Only where entries may be: nothing cached, nothing walked. */
	start = MAX(start, atc->lo);
	end = MIN(end, atc->hi);
	if (!atc->nvalid || start >= end) {
		sva__mutex_unlock(&atc->lock);
		return 0;
	}
	if (end - start < atc->nsets) {
		/* Small range: visit only the sets its pages hash to. */
		for (uint64_t vpn = start; vpn < end; vpn++) {
			set = &atc->e[atc_set(atc, pasid, vpn) * SIM_ATC_WAYS];
			for (int w = 0; w < SIM_ATC_WAYS; w++)
				dropped += atc_drop(&set[w], pasid, vpn,
						    vpn + 1);
		}
	} else {
		for (unsigned int i = 0; i < total; i++)
			dropped += atc_drop(&atc->e[i], pasid, start, end);
	}
	atc->nvalid -= dropped;
	if (!atc->nvalid) {
		atc->lo = UINT64_MAX;
		atc->hi = 0;
	}
	sva__mutex_unlock(&atc->lock);
	return dropped;
}

void sim_atc_flush(struct sim_atc *atc)
{
	sva__mutex_lock(&atc->lock);
	memset(atc->e, 0, (size_t)atc->nsets * SIM_ATC_WAYS * sizeof(*atc->e));
	atc->nvalid = 0;
	atc->lo = UINT64_MAX;
	atc->hi = 0;
	sva__mutex_unlock(&atc->lock);
}

void sim_atc_fill_n(struct sim_atc *atc, uint32_t pasid, uint64_t vpn,
		    const uint8_t *perms, unsigned int n)
{
	sva__mutex_lock(&atc->lock);
	for (unsigned int i = 0; i < n; i++)
		if (perms[i] & SIM_PERM_RW)
			atc_set_entry(atc, pasid, vpn + i, perms[i]);
	sva__mutex_unlock(&atc->lock);
}
