/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * The kernel backend: devices "kmod0" backed by sva_shim.ko's /dev/sva.
 * Each binding is an open /dev/sva context of its own, bound to our mm;
 * the kernel mirrors the mm with HMM and moves the bytes for us. Pieces:
 *  - dev.c:    the ops table, devices, bindings, statistics;
 *  - exec.c:   descriptors as page reads and writes through the mirror;
 *  - ring.c:   descriptors through the kernel's descriptor engine, where
 *              the module has one (SVA_SHIM_CAP_ENGINE);
 *  - mirror.c: mirror ranges and the thread that turns the kernel's event
 *              records into invalidation callbacks.
 */
#ifndef SVA_KMOD_H
#define SVA_KMOD_H

#include "../internal.h"
#include "uapi/linux/sva_shim.h"

#define KMOD_DEV_PATH "/dev/sva"
#define KMOD_WINDOW (64 * SVA_PAGE_SIZE)	/* bytes a burst moves */
#define KMOD_DEVMEM_DEFAULT (64ull << 20)	/* device memory, as sim's */

struct kmod_ring;

struct kmod_bind {
	int fd;				/* this binding's /dev/sva context */
	/* The engine's rings (ring.c), made on first use, or NULL. */
	pthread_mutex_t ring_lock;
	bool ring_tried;		/* ring_lock */
	struct kmod_ring *ring;		/* ring_lock; then fixed */
	int stop_fd;			/* eventfd: stop the event thread */
	uint32_t shim_caps;		/* the module's SVA_SHIM_CAP_* */
	pthread_t events;
	/* Windows for src and dst, KMOD_WINDOW bytes each. */
	uint8_t *win[2];
	/* Kernel counters as last folded into libsva's (dev.c). */
	struct sva_shim_stats seen;
	pthread_mutex_t seen_lock;
	/* The context's device memory exists (migrate.c). */
	pthread_mutex_t devmem_lock;
	bool devmem;			/* devmem_lock */
	/*
	 * Ranges with attributes, each a kernel mirror range of ours, so
	 * that their munmap/mremap reach us as events (migrate.c). The
	 * event thread counts the events of each in processed; a sync
	 * waits until it has seen as many as the kernel counted.
	 */
	pthread_mutex_t track_lock;
	pthread_cond_t track_cond;
	struct kmod_track *tracks;	/* track_lock */
	size_t ntracks, tracks_cap;	/* track_lock */
};

struct kmod_track {
	uint64_t start, end;
	uint32_t id;			/* its kernel mirror range */
	uint64_t processed;		/* track_lock: events seen */
};

static inline struct kmod_bind *kmod_bind_of(struct sva_bind *bind)
{
	return bind->priv;
}

void kmod_exec(struct sva_bind *bind, const struct sva_desc *desc,
	       struct sva_completion *comp);
void kmod_ring_start(struct sva_bind *bind);
void kmod_ring_fini(struct kmod_bind *kb);
void kmod_run_queue(struct sva_bind *bind);
bool kmod_ring_exec(struct sva_bind *bind, const struct sva_desc *desc,
		    struct sva_completion *comp);
int kmod_events_start(struct sva_bind *bind);
void kmod_events_stop(struct sva_bind *bind);
int kmod_mirror_register(struct sva_mirror *m);
void kmod_mirror_unregister(struct sva_mirror *m);
int kmod_snapshot(struct sva_mirror *m, uint64_t addr, uint64_t len,
		  uint8_t *states, unsigned int fault);
void kmod_mirrors_sync(struct sva_bind *bind);
void kmod_stats_sync(struct sva_bind *bind);
int kmod_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		 uint64_t to, struct sva_migrate_result *res);
int kmod_make_exclusive(struct sva_bind *bind, uint64_t addr, uint64_t len,
			struct sva_migrate_result *res);
void kmod_attrs_track(struct sva_bind *bind, uint64_t addr, uint64_t len);
void kmod_tracks_event(struct sva_bind *bind, const struct sva_shim_event *ev);
void kmod_tracks_lost(struct sva_bind *bind);
void kmod_tracks_sync(struct sva_bind *bind);
void kmod_tracks_fini(struct kmod_bind *kb);

#endif /* SVA_KMOD_H */
