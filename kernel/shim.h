/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sva_shim internals. One struct sva_ctx per open file of /dev/sva: a
 * software SVA device context bound to the opener's mm, which it mirrors
 * with HMM.
 */
#ifndef SVA_SHIM_INTERNAL_H
#define SVA_SHIM_INTERNAL_H

#include <linux/interval_tree.h>
#include <linux/iommu.h>
#include <linux/kfifo.h>
#include <linux/list.h>
#include <linux/mmu_notifier.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/wait.h>
#include <linux/xarray.h>

#include <uapi/linux/sva_shim.h>

#define SVA_FAULT_BATCH 64	/* pages per page request group */
#define SVA_EVENTS 256		/* event records queued per context */
#define SVA_PASID_BITS 20
#define SVA_PT_WRITE 1		/* device page table pointer tag: writable */
#define SVA_PT_DEVMEM 2		/* tag: a page of the context's device memory */
/* Mark of a device page table entry: a page held exclusively (exclusive.c) */
#define SVA_PT_EXCL XA_MARK_1

/* Counters, in struct sva_shim_stats order. */
enum sva_stat {
	SVA_ST_TRANSLATIONS,
	SVA_ST_ATC_HITS,
	SVA_ST_ATC_MISSES,
	SVA_ST_PAGE_REQUESTS,
	SVA_ST_PAGE_GROUPS,
	SVA_ST_FAULTS_RESOLVED,
	SVA_ST_FAULTS_FAILED,
	SVA_ST_INVALIDATIONS,
	SVA_ST_ATC_INVALIDATED,
	SVA_ST_EVENTS_LOST,
	SVA_ST_BYTES_DONE,
	SVA_ST_DEVMEM_ACCESSES,
	SVA_ST_MIGRATED_TO_DEV,
	SVA_ST_MIGRATED_TO_HOST,
	SVA_ST_CPU_FAULT_MIGRATIONS,
	SVA_ST_EVICTIONS,
	SVA_ST_EXCL_GRANTS,
	SVA_ST_EXCL_REVOKES,
	SVA_ST_NR,
};

struct sva_user;
struct sva_devmem;
struct sva_engine;

struct sva_ctx {
	struct mm_struct *mm;		/* mmgrab()ed at creation */
	struct sva_user *user;		/* whose contexts count this one */
	/*
	 * The device page table covers the whole mm through one interval
	 * notifier, as lib/test_hmm.c does. pt maps a virtual page number
	 * to its struct page, tagged writable or not. lock protects pt and
	 * is the lock of the read_begin/read_retry pattern: the notifier
	 * takes it to invalidate, the fault path to install.
	 */
	struct mmu_interval_notifier notifier;
	struct mutex lock;
	struct xarray pt;
	/*
	 * Mirror ranges: by address in ranges (lock), by id in range_ids
	 * (its own lock; an id is reserved before its range is inserted).
	 * The notifier above advances their sequences: they need no
	 * notifiers of their own.
	 */
	struct rb_root_cached ranges;
	unsigned int nr_ranges;		/* lock */
	struct xarray range_ids;
	u64 inval_seq;			/* lock: invalidations told */
	/*
	 * Exclusive access (exclusive.c): held pages are pt entries marked
	 * SVA_PT_EXCL (lock). excl_lock serializes EXCLUSIVE ioctls; while
	 * one makes [excl_start, excl_end) exclusive, the notifier sets
	 * excl_hit if something else invalidated that range (all three
	 * under lock).
	 */
	struct mutex excl_lock;
	unsigned long excl_start, excl_end;
	bool excl_hit;

	struct mutex bind_lock;		/* protects the four below */
	u32 pasid;			/* 0: not bound; else mm's (pasid.c) */
	struct iommu_sva *hw;		/* hardware SVA bond, if any */
	int hw_status;
	/* Device memory (devmem.c): set once, read without the lock. */
	struct sva_devmem *devmem;
	/*
	 * The descriptor engine (engine.c): set once under bind_lock,
	 * read with smp_load_acquire() (its rings are initialized first).
	 */
	struct sva_engine *engine;

	spinlock_t ev_lock;		/* protects events and ev_lost */
	DECLARE_KFIFO(events, struct sva_shim_event, SVA_EVENTS);
	u64 ev_lost;			/* dropped since the last LOST record */
	struct mutex ev_read_lock;	/* kfifo's single consumer */
	wait_queue_head_t ev_wait;

	atomic64_t stats[SVA_ST_NR];
};

struct sva_mirror_range {
	struct interval_tree_node it;	/* in ctx->ranges, ctx->lock */
	u32 id;
	u64 seq;			/* ctx->lock */
};

static inline void sva_stat_add(struct sva_ctx *ctx, enum sva_stat s, u64 n)
{
	atomic64_add(n, &ctx->stats[s]);
}

/* main.c: contexts and mirror ranges alive, for leak checks */
void sva_live_get(void);
void sva_live_put(void);

/* mirror.c: the device page table and the page request path */
struct hmm_range;
int sva_range_fault(struct hmm_range *range, unsigned long deadline);
int sva_mirror_init(struct sva_ctx *ctx);
void sva_mirror_fini(struct sva_ctx *ctx);
void sva_translate(struct sva_ctx *ctx, unsigned long start,
		   unsigned long end);
int sva_fault(struct sva_ctx *ctx, unsigned long start, unsigned long end,
	      bool write);
u32 sva_fault_status(struct sva_ctx *ctx, int err, unsigned long addr,
		     bool write);
long sva_ioctl_snapshot(struct sva_ctx *ctx, void __user *uarg);

/* access.c: device reads and writes */
long sva_ioctl_access(struct sva_ctx *ctx, void __user *uarg, bool write);
struct page *sva_pt_page(struct sva_ctx *ctx, unsigned long addr,
			 bool write, struct page **dirty);
int sva_access_resolve(struct sva_ctx *ctx, unsigned long addr,
		       unsigned long end, bool write, bool fault,
		       bool *translated, u64 *faults, u32 *status);

/* engine.c: the descriptor engine and its rings */
int sva_engine_module_init(void);
void sva_engine_module_exit(void);
long sva_ioctl_ring_setup(struct sva_ctx *ctx, void __user *uarg);
long sva_ioctl_ring_enter(struct sva_ctx *ctx, unsigned long flags);
int sva_engine_mmap(struct sva_ctx *ctx, struct vm_area_struct *vma);
__poll_t sva_engine_poll(struct sva_ctx *ctx, struct file *file,
			 poll_table *wait);
void sva_engine_quiesce(struct sva_ctx *ctx);
void sva_engine_fini(struct sva_ctx *ctx);

/* ranges.c: mirror ranges and their sequences */
void sva_ranges_init(struct sva_ctx *ctx);
void sva_ranges_fini(struct sva_ctx *ctx);
unsigned int sva_ranges_advance(struct sva_ctx *ctx, unsigned long start,
				unsigned long end);
long sva_ioctl_mirror(struct sva_ctx *ctx, void __user *uarg);
long sva_ioctl_unmirror(struct sva_ctx *ctx, void __user *uarg);
long sva_ioctl_mirror_seq(struct sva_ctx *ctx, void __user *uarg);

/* limits.c: what users may make the module allocate */
struct sva_user *sva_user_get(void);
void sva_user_put(struct sva_user *user);
bool sva_mirror_room(struct sva_ctx *ctx);
int sva_user_devmem_charge(struct sva_user *user, unsigned long pages);
void sva_user_devmem_uncharge(struct sva_user *user, unsigned long pages);
unsigned int sva_ring_max_entries(void);
int sva_user_ring_charge(struct sva_user *user, unsigned long pages);
void sva_user_ring_uncharge(struct sva_user *user, unsigned long pages);

/* devmem.c: device memory and migration (CONFIG_DEVICE_PRIVATE) */
bool sva_devmem_supported(void);
long sva_ioctl_devmem(struct sva_ctx *ctx, void __user *uarg);
long sva_ioctl_migrate(struct sva_ctx *ctx, void __user *uarg);
void sva_devmem_fini(struct sva_ctx *ctx);
bool sva_devmem_page(struct sva_ctx *ctx, struct page *page);
void sva_devmem_touch(struct sva_ctx *ctx, struct page *dpage);

/* devmem.c: snapshots of the pages in other contexts' device memory */
int sva_devmem_mark_remote(struct sva_ctx *ctx, unsigned long start,
			   unsigned long end, unsigned long *pfns, u8 *st);

/* exclusive.c: exclusive device access to host pages */
bool sva_excl_supported(void);
long sva_ioctl_exclusive(struct sva_ctx *ctx, void __user *uarg);
bool sva_excl_held(struct sva_ctx *ctx, unsigned long addr);
void sva_excl_release(struct sva_ctx *ctx);

/* pasid.c: one PASID per bound mm */
int sva_pasid_get(struct mm_struct *mm);
void sva_pasid_put(struct mm_struct *mm);
void sva_pasids_fini(void);

/* events.c */
void sva_events_init(struct sva_ctx *ctx);
void sva_event_push(struct sva_ctx *ctx, const struct sva_shim_event *ev);
bool sva_event_push_optional(struct sva_ctx *ctx,
			     const struct sva_shim_event *ev);
ssize_t sva_events_read(struct sva_ctx *ctx, char __user *buf, size_t len,
			bool nonblock);
__poll_t sva_events_poll(struct sva_ctx *ctx, struct file *file,
			 poll_table *wait);

/* inject.c: fault injection points, set through module parameters */
enum sva_inject_point {
	SVA_INJECT_BIND,
	SVA_INJECT_PASID,
	SVA_INJECT_ALLOC,
	SVA_INJECT_FAULT,
	SVA_INJECT_NR,
};

bool sva_should_fail(enum sva_inject_point point);
/* 0, or the errno an allocation / a fault resolution is to fail with. */
int sva_inject_alloc(void);
int sva_inject_fault(void);
/* The error an injected fault resolution fails with (-EPERM/-ENOMEM). */
int sva_inject_fault_error(void);

#endif /* SVA_SHIM_INTERNAL_H */
