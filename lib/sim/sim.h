/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * The software SVA device: an in-process model of a PASID-capable device
 * behind an IOMMU. Its pieces, one file each:
 *  - mm.c:     the IOMMU's view of this process's mm: page table walks
 *              (pagemap), VMA permissions, and invalidations from
 *              userfaultfd's non-cooperative events;
 *  - atc.c:    the device's address translation cache;
 *  - prq.c:    the page request queue and the fault service behind it;
 *  - engine.c: descriptor execution (device reads and writes);
 *  - dev.c:    the backend ops table, devices, PASIDs, bindings.
 */
#ifndef SVA_SIM_H
#define SVA_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../internal.h"

#define SIM_NR_DEVICES 4
#define SIM_CHUNK_PAGES 64		/* pages a device burst covers */
#define SIM_CHUNK (SIM_CHUNK_PAGES * SVA_PAGE_SIZE)
/* A bounce buffer: a burst and 8 bytes, in whole pages. */
#define SIM_BOUNCE_SIZE ((SIM_CHUNK + 8 + SVA_PAGE_SIZE - 1) & SVA_PAGE_MASK)

/* Translation permissions, as an ATS completion grants them. */
enum sim_perm {
	SIM_PERM_R = 1u << 0,
	SIM_PERM_W = 1u << 1,
	/* Not a grant, a mark: no VMA there, or one the device can't read. */
	SIM_PERM_NONE = 1u << 2,
};

/* The sim_perm bits that grant access. */
#define SIM_PERM_RW (SIM_PERM_R | SIM_PERM_W)

/* ---------------------------------------------------------------- ATC */

struct sim_atc_entry {
	uint64_t vpn;
	uint32_t pasid;
	uint8_t perm;		/* enum sim_perm, 0 = empty */
};

struct sim_atc {
	pthread_mutex_t lock;	/* protects the entries, hand and below */
	struct sim_atc_entry *e;
	unsigned int nsets;	/* entries = nsets * SIM_ATC_WAYS */
	unsigned int hand;	/* round-robin victim within a set */
	/*
	 * What is cached, for invalidations to cost what the device had:
	 * how many entries are valid, and the pages [lo, hi) they all lie
	 * in (wider after drops; reset when none is left). An invalidation
	 * outside it walks nothing.
	 */
	unsigned int nvalid;
	uint64_t lo, hi;
};

int sim_atc_init(struct sim_atc *atc, unsigned int entries);
void sim_atc_fini(struct sim_atc *atc);
/* Permissions cached for @vpn, 0 on a miss. */
unsigned int sim_atc_lookup(struct sim_atc *atc, uint32_t pasid,
			    uint64_t vpn);
void sim_atc_fill(struct sim_atc *atc, uint32_t pasid, uint64_t vpn,
		  unsigned int perm);
/* Fill the @n pages from @vpn whose perms[i] grant access, under one lock. */
void sim_atc_fill_n(struct sim_atc *atc, uint32_t pasid, uint64_t vpn,
		    const uint8_t *perms, unsigned int n);
/* Drop every entry (device reset). */
void sim_atc_flush(struct sim_atc *atc);
/* Drop [start, end) of @pasid; returns the entries dropped. */
unsigned int sim_atc_invalidate(struct sim_atc *atc, uint32_t pasid,
				uint64_t start, uint64_t end);

/* ---------------------------------------------------------------- PRQ */

enum sim_response {
	SIM_RESP_SUCCESS,
	SIM_RESP_INVALID,
	SIM_RESP_FAILURE,
};

/* A page request group: one outstanding per requester, on its stack. */
struct sim_prg {
	struct sva_bind *bind;		/* the requester, alive until answered */
	unsigned int queued;		/* requests still in the queue */
	bool responded;
	bool overflowed;		/* cut short, answered by the IOMMU */
	enum sim_response resp;
	uint64_t fault_addr;		/* first page not resolved */
	unsigned int fault_access;
};

struct sim_page_req {
	uint64_t addr;
	unsigned int access;		/* enum sva_fault_access */
	bool last;			/* last page of its group */
	struct sim_prg *prg;
};

/*
 * Fault-around (prq.c): the service populates a page request group and the
 * pages after it, up to a window that adapts to the access pattern: a
 * group starting where a stream's last window ended doubles that stream's
 * window (up to SIM_AROUND_MAX pages, as UVM batches up to 256 faults); a
 * group no stream expected is a random miss, which halves the window new
 * streams start with (down to 1: the group alone).
 */
#define SIM_AROUND_MAX 256		/* pages */
#define SIM_AROUND_START 64		/* new streams' window, at first */
#define SIM_AROUND_STREAMS 4

struct sim_stream {
	uint64_t start, next;		/* the last window: [start, next) */
	unsigned int win;		/* pages; 0: slot unused */
	uint64_t used;			/* LRU tick */
};

struct sim_prq {
	/* Fault-around state: the server's alone (serving). fixed: the
	 * window is opts.fault_batch pages, never adapted (0: adaptive). */
	struct sim_stream streams[SIM_AROUND_STREAMS];
	unsigned int base;		/* window a new stream starts with */
	unsigned int fixed;
	uint64_t tick;
	pthread_mutex_t lock;		/* protects all below */
	pthread_cond_t req_cv;		/* service: requests queued */
	pthread_cond_t resp_cv;		/* requesters: responses */
	struct sim_page_req *ring;
	unsigned int depth, head, count;
	unsigned int batch;
	bool exiting;
	/* A batch is being served (by the thread, or inline by a
	 * requester): one at a time, so the fault-around state above and
	 * next_serve have one user. */
	bool serving;
	uint64_t next_serve;		/* rate limit: the server only */
	pthread_t thread;
};

struct sim_dev;
int sim_prq_init(struct sim_dev *sd, unsigned int depth, unsigned int batch);
void sim_prq_fini(struct sim_dev *sd);
/*
 * Raise one page request group for the @n pages in @addrs (with @access
 * each) and wait for its response. A group the queue can't hold whole is
 * cut short and answered SUCCESS by the IOMMU at once, as VT-d does when it
 * drops the last request of a group: the device then asks again.
 */
enum sim_response sim_prq_request(struct sva_bind *bind,
				  const uint64_t *addrs,
				  const unsigned int *access, unsigned int n,
				  struct sim_prg *prg);
/* Resolve [addr, addr + len) as the fault service does. */
enum sim_response sim_fault_resolve(uint64_t addr, uint64_t len,
				    unsigned int access);

/* ----------------------------------------------------------------- mm */

struct sim_vma {
	uint64_t start, end;
	unsigned int prot;		/* enum sim_perm */
	bool shared;
	bool file;			/* file (or shmem) backed */
	bool tracked;			/* registered with our userfaultfd */
	bool big;			/* pages over 4 KiB (hugetlb), or
					 * not known (no PROCMAP_QUERY) */
};

#define SIM_NOTIFY_RING 256

struct sim_notify_ent {
	uint64_t start, end;
	enum sva_inval_event ev;
};

/* Invalidation callbacks queued for the notifier thread (notify.c). */
struct sim_notifier {
	pthread_mutex_t lock;		/* protects the ring and exiting */
	pthread_cond_t cv;
	struct sim_notify_ent ring[SIM_NOTIFY_RING];
	unsigned int head, count;
	bool exiting;
	bool started;
	pthread_t thread;
};

/*
 * A discard (UFFD_EVENT_REMOVE: MADV_DONTNEED, MADV_REMOVE, MADV_FREE)
 * whose event we read but whose zap we have not seen done yet. The event
 * comes before the zap; until the zap shows in pagemap the range is an
 * invalidation in progress (see mm.c).
 */
#define SIM_PENDING_MAX 16
#define SIM_PENDING_PFNS 512	/* pages whose PFN is remembered */
/* A zap not seen done after this long is taken as done (mm.c). */
#define SIM_PENDING_TIMEOUT_NS 500000000ull
/* The barrier (mmap_lock) releases discards read at least this long ago. */
#define SIM_PENDING_GRACE_NS 50000000ull

struct sim_pending {
	uint64_t start, end;		/* page aligned */
	uint64_t next;			/* pages below it seen zapped */
	uint64_t since;			/* when the event was read (ns) */
	bool closing;			/* timed out, being retired */
	/* PFNs of the first pages when the event was read, 0: absent or
	 * hidden. A page mapping another PFN was zapped and refaulted. */
	uint64_t pfn[SIM_PENDING_PFNS];
	/* Which of them were present then: only their absence now says
	 * that the zap passed (an absent one may be populated since, by
	 * the device as well, and zapped yet). */
	uint64_t was_present[SIM_PENDING_PFNS / 64];
};

/*
 * The IOMMU's view of this process's mm, shared by every sim binding.
 * inval_lock orders translations (read side: look up and cache in the ATC)
 * against invalidations (write side, taken while the event that causes
 * one is read from userfaultfd): every translation cached before an
 * invalidation is dropped by it, every one looked up after it sees the
 * page table it left. Device accesses run outside it (engine.c): they may
 * block on the application, whose handler may munmap() and so wait on the
 * event thread. inval_gen counts invalidations, so that a burst can tell
 * one came between its translation and its access.
 */
#define SIM_MISSING_MAX 256
#define SIM_DEFERRED_MAX 1024

struct sim_mm {
	pid_t pid;
	int refs;			/* bindings, under sim_mm_lock */
	int uffd;			/* -1: no invalidation source */
	int pagemap;
	int stop_fd;			/* eventfd that stops the thread */
	/*
	 * Threads start when first needed, not at bind: the event thread
	 * before the first registration with uffd (sim_mm_listen()), the
	 * notifier with the first mirror that has a callback. start_lock
	 * (a leaf, taken under mm->lock too) orders their starts.
	 */
	pthread_mutex_t start_lock;
	_Atomic bool listening;		/* the event thread runs */
	_Atomic unsigned int cb_mirrors; /* mirrors with a callback */
	pthread_t thread;
	pthread_rwlock_t inval_lock;
	_Atomic uint64_t inval_gen;	/* written under inval_lock (write) */
	pthread_mutex_t lock;		/* protects vmas, and binds (below) */
	/* binds changes under notify_lock and lock (in that order); the
	 * notifier and event threads walk it under notify_lock alone, which
	 * they drop while a binding's callbacks run or its sequences
	 * advance (sim_bind.notifying). */
	pthread_mutex_t notify_lock;
	pthread_cond_t notify_cv;	/* a binding's callbacks returned */
	struct list_head binds;		/* struct sim_bind.mm_node */
	struct sim_notifier notify;
	struct sim_vma vmas[64];	/* small cache of VMAs looked up */
	unsigned int nr_vmas, vma_hand;
	uint32_t pasid;
	int kpageflags;			/* -1 unless readable (root) */
	int maps;			/* /proc/self/maps, for PROCMAP_QUERY */
	_Atomic bool no_procmap_query;	/* the kernel has none (< 6.11) */
	_Atomic bool can_probe;		/* UFFDIO_WRITEPROTECT works (mm.c) */
	/* Discards in progress: pend_lock is a leaf lock, taken alone or
	 * under inval_lock (read or write) or mm->lock. */
	pthread_mutex_t pend_lock;	/* protects pend, npend */
	pthread_cond_t pend_cv;		/* a discard finished */
	struct sim_pending pend[SIM_PENDING_MAX];
	_Atomic unsigned int npend;	/* read unlocked as a hint */
	/* Device memory (devmem.c). uffd_full: our userfaultfd sees
	 * kernel-mode faults too (not UFFD_USER_MODE_ONLY), and the kernel
	 * has UFFDIO_MOVE: what migration needs. */
	bool uffd_full;
	/* dm_lock is taken under inval_lock (read), never the other way;
	 * no one holding it waits for the event thread. */
	pthread_mutex_t dm_lock;	/* protects the arenas and their pages */
	struct list_head arenas;	/* struct sim_devmem.node */
	/* Ranges registered for missing faults (mm->lock), so that
	 * tracking a VMA keeps their mode. */
	struct { uint64_t start, end; } missing[SIM_MISSING_MAX];
	unsigned int nmissing;
	/* CPU faults on device pages that couldn't be served yet (a device
	 * access holds the page, or the mm is changing): event thread. */
	uint64_t deferred[SIM_DEFERRED_MAX];
	unsigned int ndeferred;
};

/*
 * Zeroed memory straight from mmap() (the ALLOC injection point can fail
 * it): for the large, mostly untouched structures made at bind, which a
 * calloc() would clear (and the heap grow and trim) every first bind.
 */
void *sim_pages_alloc(size_t len);
void sim_pages_free(void *p, size_t len);

struct sim_mm *sim_mm_get(struct sva_bind *bind);
/* The last sim device closed: free the memory kept for the next mm. */
void sim_mm_spare_drop(void);
void sim_mm_put(struct sva_bind *bind);
/*
 * Walk the CPU page table for @n pages from @vpn; perms[i] gets what a
 * translation request may grant (enum sim_perm), marked SIM_PERM_NONE
 * where no VMA is, or the VMA isn't readable. @tracked says whether
 * every page lies in a VMA whose invalidations we hear of (cacheable).
 * Caller holds inval_lock for read.
 */
int sim_mm_translate(struct sim_mm *mm, uint64_t vpn, unsigned int n,
		     uint8_t *perms, bool *tracked);
/* Queue callbacks for [start, end); never blocks (notify.c). Nothing
 * while no mirror with a callback is registered. */
void sim_notify_push(struct sim_mm *mm, uint64_t start, uint64_t end,
		     enum sva_inval_event ev);
void sim_notify_init(struct sim_mm *mm);
void sim_notify_fini(struct sim_mm *mm);
/* A mirror with a callback is being registered (before the core inserts
 * it): start the notifier thread if it isn't, count the mirror. */
int sim_notify_want(struct sim_mm *mm);
/* That mirror is unregistered. */
void sim_notify_unwant(struct sim_mm *mm);
/* Join the notifier thread, if it started (the last binding is gone). */
void sim_notify_stop(struct sim_mm *mm);
/*
 * Start the event thread if it isn't running: before anything is
 * registered with mm->uffd (a munmap() of a registered range waits for it
 * to read the event). 0, or -errno if it can't start; 0 without uffd.
 */
int sim_mm_listen(struct sim_mm *mm);
/* A mirror of @mm registered: the threads it needs, its range tracked. */
int sim_mm_mirror_register(struct sim_mm *mm, struct sva_mirror *m);
/*
 * Wait for invalidations under way to finish: an event being read, and a
 * discard whose event was read until its zap is seen done. As
 * mmu_interval_read_begin() waits for invalidate_range_end().
 */
void sim_mm_sync(struct sim_mm *mm);
/* Forget what we know of the VMA around @addr (it may have changed). */
void sim_mm_vma_forget(struct sim_mm *mm, uint64_t addr);
/* Make sure we hear of invalidations of [start, end) where we can. */
void sim_mm_track_range(struct sim_mm *mm, uint64_t start, uint64_t end);
int sim_mm_snapshot(struct sim_mm *mm, uint64_t addr, uint64_t len,
		    uint8_t *states);

/*
 * Advance the mirror sequences of [start, end) only, without inval_lock:
 * before a CPU fault that changed a page's state (out of device memory or
 * exclusivity) is woken, so that a snapshot taken before it can't be
 * accepted after it returns. sim_mm_invalidate() follows, after the wake.
 */
void sim_mm_advance(struct sim_mm *mm, uint64_t start, uint64_t end);
/* Invalidate [start, end) for a migration: sequences, ATC, callbacks. */
void sim_mm_invalidate(struct sim_mm *mm, uint64_t start, uint64_t end);
/* The VMA around @addr as the kernel has it now. */
bool sim_mm_vma_now(struct sim_mm *mm, uint64_t addr, struct sim_vma *out);
/*
 * Do we hear of @addr's invalidations (its VMA registered with our
 * userfaultfd, registering it now where it can be)? False where no VMA
 * is, or another userfaultfd (the application's) or the mapping's kind
 * keeps it from ours. No inval_lock needed: a VMA registered with us
 * stays so until an event, and no other userfaultfd can take it.
 */
bool sim_mm_page_tracked(struct sim_mm *mm, uint64_t addr);
/* Register [start, end) (one VMA's part) for missing faults: 0 or -errno. */
int sim_mm_register_missing(struct sim_mm *mm, uint64_t start, uint64_t end);
/* A discard of [start, end) is under way (its zap may still come). */
bool sim_mm_discard_pending(struct sim_mm *mm, uint64_t start, uint64_t end);
/*
 * Fault-around: how far past @addr (up to @want) the service may populate
 * with @need (SIM_PERM_R or SIM_PERM_W) ahead of the device: within
 * @addr's VMA as the kernel has it now, only if that VMA is tracked
 * (invalidations heard: not the application's userfaultfd, whose handler
 * would see faults the device never raised, nor a file we can't cache),
 * and short of ranges holding device memory or exclusive pages (a
 * populate would take them back) and of discards in progress. Returns
 * @addr when nothing may be.
 */
uint64_t sim_mm_around_end(struct sim_mm *mm, uint64_t addr, uint64_t want,
			   unsigned int need);
/* Read @n pagemap entries from @vpn (0 past the address space). */
int sim_mm_pagemap(struct sim_mm *mm, uint64_t vpn, unsigned int n,
		   uint64_t *pm);
#define SIM_PM_PRESENT (1ull << 63)
#define SIM_PM_SWAP (1ull << 62)

/* ------------------------------------------------------ device memory */

/* One page of a device's memory (devmem.c). */
struct sim_dpage {
	uint64_t vpn;			/* the user page it holds */
	struct sva_bind *bind;		/* that moved it in (its counts) */
	uint32_t hnext;			/* hash chain: slot + 1, 0 ends */
	uint32_t prev, next;		/* LRU or free list: slot + 1 */
	uint16_t busy;			/* device accesses using it */
	uint8_t state;			/* enum sim_dpage_state */
};

/*
 * A device's memory: an arena of anonymous memory in this process,
 * registered with the mm's userfaultfd so that UFFDIO_MOVE can move pages
 * in and out of it. Everything under mm->dm_lock.
 */
struct sim_devmem {
	struct sim_dev *sd;
	struct list_head node;		/* on mm->arenas */
	uint8_t *arena;
	uint32_t npages;
	struct sim_dpage *pg;
	uint32_t *hash;			/* vpn -> slot + 1 chains */
	uint32_t hmask;
	uint32_t lru_head, lru_tail;	/* used pages, oldest first */
	uint32_t free_head;		/* free pages (pte none) */
	uint32_t nused, ndirty;
	/* Host pages the device holds exclusively (sva_make_exclusive(3)),
	 * not device memory: see devmem.c. */
	bool excl;
};

/* 0 when this process may move pages with UFFDIO_MOVE (mm.c). */
int sim_uffd_probe_move(void);
/* Fill the device memory caps of @dev (SVA_CAP_MIGRATE, devmem_size). */
void sim_devmem_caps(struct sva_dev *dev);
int sim_devmem_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       uint64_t to, struct sva_migrate_result *res);
/* sva_make_exclusive(3): hold [addr, addr + len) for @bind's device. */
int sim_devmem_make_exclusive(struct sva_bind *bind, uint64_t addr,
			      uint64_t len, struct sva_migrate_result *res);
/*
 * Engine: the device faulted on @addrs (resolved): pages whose preferred
 * location is the device (and not ACCESSED_BY) move there, by granule.
 */
void sim_devmem_fault_migrate(struct sva_bind *bind, const uint64_t *addrs,
			      unsigned int n);
/* Unbind: its pages go back to host memory; the last one frees the
 * device's memory. */
void sim_devmem_unbind(struct sva_bind *bind, bool last);
/* Event thread: a CPU fault at @addr; false: try again later. */
bool sim_devmem_fault(struct sim_mm *mm, uint64_t addr);
/* [start, end) lies in an arena of ours (device memory, held pages): the
 * discards there are ours (dm_zap_dirty()), over when madvise() returns,
 * and no device translation ever points there. */
bool sim_devmem_in_arena(struct sim_mm *mm, uint64_t start, uint64_t end);
/* Event thread: [start, end) unmapped (@unmap) or discarded. */
void sim_devmem_drop(struct sim_mm *mm, uint64_t start, uint64_t end,
		     bool unmap);
/* Event thread: mremap moved [from, from + len) to @to. */
void sim_devmem_remap(struct sim_mm *mm, uint64_t from, uint64_t to,
		      uint64_t len);
/*
 * Engine: for the pages of @vpn.. (n) whose @perm lacks @need, held in
 * this device's memory, pin them, grant the access and set local[i] to
 * their address in the arena (0 for the others). Returns how many.
 */
unsigned int sim_devmem_pin(struct sva_bind *bind, uint64_t vpn,
			    unsigned int n, uint8_t *perm, unsigned int need,
			    uint64_t *local);
void sim_devmem_unpin(struct sva_bind *bind, const uint64_t *local,
		      unsigned int n);
/* fork(): pages back to host memory, dm_lock held until the parent's
 * handler (mm.c's atfork handlers call these). */
void sim_devmem_fork_prepare(struct sim_mm *mm);
void sim_devmem_fork_parent(struct sim_mm *mm);
void sim_devmem_fork_child(void);
/* Snapshot: mark pages in device memory (DEVICE_LOCAL / _REMOTE) and
 * those the device holds exclusively (EXCLUSIVE). */
void sim_devmem_states(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       uint8_t *states);

/* -------------------------------------------------------- device, bind */

struct sim_dev {
	struct sva_dev *dev;
	unsigned int index;
	struct sim_atc atc;
	struct sim_prq prq;
	struct sim_devmem *dm;		/* NULL until a migration (dm_lock) */
	struct sim_devmem *xm;		/* pages held exclusively, NULL
					 * until the first (dm_lock) */
};

struct sim_bind {
	struct sva_bind *bind;
	struct sim_mm *mm;
	struct list_head mm_node;	/* on mm->binds, mm->lock */
	/* Under mm->notify_lock: walkers pinning this binding (callbacks
	 * running, sequences advancing), and unbinding (no new callbacks
	 * start). */
	unsigned int notifying;
	bool dying;
	/* Not a sim device's (the VFIO backend's, lib/vfio/): no ATC to
	 * drop; its mirrors and its transfers' exclusion are all it asks. */
	bool foreign;
	/* Bounce buffers for reads the device consumes itself: one
	 * mapping of 2 * SIM_BOUNCE_SIZE (sim_pages_alloc()). */
	uint8_t *bounce[2];
};

static inline struct sim_dev *sim_dev_of(struct sva_bind *bind)
{
	return bind->dev->priv;
}

static inline struct sim_bind *sim_bind_of(struct sva_bind *bind)
{
	return bind->priv;
}

void sim_exec(struct sva_bind *bind, const struct sva_desc *desc,
	      struct sva_completion *comp);

#endif /* SVA_SIM_H */
