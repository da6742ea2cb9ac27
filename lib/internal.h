/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * libsva core internals: the handles behind the public API and the ops table
 * every backend (software device, kernel shim, ...) implements. The core
 * validates arguments, owns queues, mirrors and statistics; a backend only
 * translates, faults and moves bytes.
 */
#ifndef SVA_INTERNAL_H
#define SVA_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <time.h>

#include "sva/sva.h"
#include "list.h"
#include "mirror_index.h"
#include "trace.h"
#include "range_attr.h"

#define SVA_PAGE_SIZE 4096ul
#define SVA_PAGE_SHIFT 12
#define SVA_PAGE_MASK (~(SVA_PAGE_SIZE - 1))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* -------------------------------------------------------- cancellation */

/*
 * No libsva call is a cancellation point, but sva_wait()'s sleep (and
 * sva_submit_and_wait()'s) with nothing reaped yet: a call cancelled in
 * one of its inner waits (a callback to wait out, a page request, the
 * application's userfaultfd, a sysfs read) would go away holding a
 * library lock or half done. SVA_NO_CANCEL, first in a public call,
 * holds cancellation off until the call returns; the caller's own state
 * (sva__cancel.state) is what the one deliberate point restores. The
 * type is made deferred meanwhile: asynchronous cancellation could act
 * between a condition wait's unlock and its cleanup handler (POSIX makes
 * no libsva call async-cancel-safe; this keeps the library's locks right
 * for a caller that does it anyway).
 */
struct sva__cancel {
	int state;
	int type;
};

static inline struct sva__cancel sva__cancel_off(void)
{
	struct sva__cancel c;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &c.state);
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &c.type);
	return c;
}

static inline void sva__cancel_restore(struct sva__cancel *c)
{
	pthread_setcanceltype(c->type, NULL);
	pthread_setcancelstate(c->state, NULL);
}

#define SVA_NO_CANCEL \
	struct sva__cancel sva__cancel \
		__attribute__((cleanup(sva__cancel_restore))) = \
		sva__cancel_off()

/* ------------------------------------------------------------- logging */

__attribute__((format(printf, 2, 3)))
void sva__log(enum sva_print_level level, const char *fmt, ...);

/*
 * Library locks, counted per thread: a message said while this thread holds
 * one waits until it holds none (sva__log_flush() from the last unlock).
 * The print hook is the application's code: it may call libsva (a lock we
 * hold is not recursive) or block on anything (a munmap() waiting for the
 * event thread that needs a lock we hold). Every lock of the library goes
 * through these: the raw calls are poisoned below.
 */
extern __thread unsigned int sva__locks_held
	__attribute__((tls_model("initial-exec")));
extern __thread unsigned int sva__log_pending
	__attribute__((tls_model("initial-exec")));
void sva__log_flush(void);
/* In a child of fork(): @n locks its atfork handlers took stay held (the
 * parent's, reinitialised or abandoned): no longer this thread's. */
void sva__locks_forget(unsigned int n);

static inline int sva__lock_taken(int err)
{
	if (!err)
		sva__locks_held++;
	return err;
}

static inline void sva__lock_dropped(void)
{
	if (sva__locks_held && !--sva__locks_held && sva__log_pending)
		sva__log_flush();
}

static inline int sva__mutex_lock(pthread_mutex_t *m)
{
	return sva__lock_taken(pthread_mutex_lock(m));
}

static inline int sva__mutex_trylock(pthread_mutex_t *m)
{
	return sva__lock_taken(pthread_mutex_trylock(m));
}

static inline int sva__mutex_unlock(pthread_mutex_t *m)
{
	int err = pthread_mutex_unlock(m);

	sva__lock_dropped();
	return err;
}

static inline int sva__rwlock_rdlock(pthread_rwlock_t *l)
{
	return sva__lock_taken(pthread_rwlock_rdlock(l));
}

static inline int sva__rwlock_wrlock(pthread_rwlock_t *l)
{
	return sva__lock_taken(pthread_rwlock_wrlock(l));
}

static inline int sva__rwlock_unlock(pthread_rwlock_t *l)
{
	int err = pthread_rwlock_unlock(l);

	sva__lock_dropped();
	return err;
}

/*
 * A message said under @m, the one lock this thread holds, would wait for
 * the next wake-up of a thread about to sleep on a condition (a library
 * thread sleeps there most of its life): say it now, with @m dropped for
 * the hook, and tell the caller to return as if woken. Every wait is in a
 * loop on its predicate (a spurious wake-up is the condition's own
 * contract), and dropping @m there is what the wait itself does.
 */
static inline bool sva__cond_say_pending(pthread_mutex_t *m)
{
	if (!sva__log_pending || sva__locks_held != 1)
		return false;
	sva__mutex_unlock(m);
	sva__mutex_lock(m);
	return true;
}

static inline int sva__cond_wait(pthread_cond_t *cv, pthread_mutex_t *m)
{
	if (sva__cond_say_pending(m))
		return 0;
	return pthread_cond_wait(cv, m);
}

static inline int sva__cond_timedwait(pthread_cond_t *cv, pthread_mutex_t *m,
				      const struct timespec *ts)
{
	if (sva__cond_say_pending(m))
		return 0;
	return pthread_cond_timedwait(cv, m, ts);
}

/*
 * A wait that is a cancellation point, its handler needing @m held: never
 * says anything (a hook cancelled with @m dropped would leave the handler
 * unlocking a mutex not held). The caller says what is pending first,
 * before it arms the handler (queue_sleep()).
 */
static inline int sva__cond_wait_cancellable(pthread_cond_t *cv,
					     pthread_mutex_t *m,
					     const struct timespec *ts)
{
	return ts ? pthread_cond_timedwait(cv, m, ts) :
		    pthread_cond_wait(cv, m);
}

#pragma GCC poison pthread_mutex_lock pthread_mutex_trylock pthread_mutex_unlock
#pragma GCC poison pthread_mutex_timedlock pthread_rwlock_rdlock pthread_rwlock_wrlock
#pragma GCC poison pthread_rwlock_tryrdlock pthread_rwlock_trywrlock pthread_rwlock_unlock
#pragma GCC poison pthread_cond_wait pthread_cond_timedwait
#define pr_warn(fmt, ...) sva__log(SVA_WARN, "libsva: " fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) sva__log(SVA_INFO, "libsva: " fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) sva__log(SVA_DEBUG, "libsva: " fmt, ##__VA_ARGS__)

/* Log @fmt as a warning and return @err (a negative errno). */
#define sva_err(err, fmt, ...) \
	({ pr_warn("%s: " fmt "\n", __func__, ##__VA_ARGS__); (err); })

/* A descriptor ended by a fault at @addr (@access: SVA_ACCESS_*). */
static inline void sva__complete_fault(struct sva_completion *comp,
				       uint32_t status, uint64_t addr,
				       unsigned int access)
{
	comp->status = status;
	comp->fault_addr = addr;
	comp->fault_access = access;
}

/* CLOCK_MONOTONIC in nanoseconds. */
static inline uint64_t sva__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ options */

/*
 * Copy a caller's option struct of size opts->sz into @dst (sized @dst_sz),
 * zero-filling fields the caller doesn't know of. Fails with -EINVAL when the
 * caller's struct is larger and its extra bytes are not zero (a field this
 * library doesn't know of was set).
 */
int sva__opts_copy(void *dst, size_t dst_sz, const void *src,
		   const char *what);

/* ---------------------------------------------------------- statistics */

enum sva_counter {
	SVA_C_TRANSLATIONS,
	SVA_C_ATC_HITS,
	SVA_C_ATC_MISSES,
	SVA_C_PAGE_REQUESTS,
	SVA_C_PAGE_GROUPS,
	SVA_C_FAULTS_RESOLVED,
	SVA_C_FAULTS_FAILED,
	SVA_C_INVALIDATIONS,
	SVA_C_ATC_INVALIDATED,
	SVA_C_PRQ_OVERFLOWS,
	SVA_C_DESCS_COMPLETED,
	SVA_C_BYTES_DONE,
	SVA_C_QUARANTINES,
	/* Device memory (struct sva_stats in the same order). */
	SVA_C_MIGRATED_TO_DEV,
	SVA_C_MIGRATED_TO_HOST,
	SVA_C_BYTES_TO_DEV,
	SVA_C_BYTES_TO_HOST,
	SVA_C_CPU_FAULT_MIGRATIONS,
	SVA_C_EVICTIONS,
	SVA_C_MIGRATE_FAILURES,
	SVA_C_DEVMEM_ACCESSES,
	SVA_C_EXCLUSIVE_GRANTS,
	SVA_C_EXCLUSIVE_REVOKES,
	/* vfio's IOMMU domain. */
	SVA_C_IOMMU_MAPPED,
	SVA_C_IOMMU_UNMAPPED,
	SVA_C_IOTLB_UNMAPS,
	SVA_C_PINNED_NOW,		/* a gauge: reset leaves it */
	SVA_C_NR,
};

struct sva_counters {
	_Atomic uint64_t v[SVA_C_NR];
};

void sva__counters_read(const struct sva_counters *c, struct sva_stats *out);
void sva__counters_reset(struct sva_counters *c);

/* --------------------------------------------------------------- queue */

/*
 * A binding's work queue: a ring of descriptors a worker thread runs through
 * the backend's exec op, and a ring of completions callers reap. The number
 * of descriptors not yet reaped never exceeds the depth, so the completion
 * ring never overflows.
 */
struct sva_queue {
	pthread_mutex_t lock;		/* protects everything below */
	pthread_cond_t work_cv;		/* worker: work queued or stop */
	pthread_cond_t comp_cv;		/* reapers and drain: completions */
	struct sva_desc *descs;
	struct sva_completion *comps;
	unsigned int depth;
	unsigned int d_head, d_tail;	/* descs: worker takes at head */
	unsigned int c_head, c_tail;	/* comps: reapers take at head */
	unsigned int running;		/* being run: worker or a waiter */
	unsigned int inflight;		/* submitted and not reaped */
	bool stopped;			/* sva_queue_stop() */
	bool exiting;			/* unbind: worker must finish */
	pthread_t worker;
	bool worker_started;
};

/* -------------------------------------------------------------- handles */

struct sva_backend_ops;

struct sva_dev {
	const struct sva_backend_ops *ops;
	char name[SVA_NAME_MAX];
	int fd;
	struct sva_dev_opts opts;	/* with defaults filled in */
	struct sva_dev_caps caps;
	pid_t owner;
	pthread_mutex_t lock;		/* protects binds */
	struct list_head binds;
	struct sva_counters stats;
	pthread_mutex_t storm_lock;	/* protects the two below */
	uint64_t storm_start;		/* window of failed page groups */
	unsigned int storm_failed;
	_Atomic bool quarantined;
	/* Reserved windows, sorted, disjoint; set at open, then read-only
	 * (so read under no lock). reserved.c. */
	struct sva_region *resv;
	unsigned int nr_resv;
	/* The event trace (trace.h), NULL when off: set at open, freed at
	 * close, when no thread of the device runs any more. */
	struct sva_trace *trace;
	void *priv;			/* backend's */
};

struct sva_bind {
	struct sva_dev *dev;
	struct list_head dev_node;	/* on dev->binds, dev->lock */
	pid_t owner;
	uint32_t pasid;
	struct sva_queue q;
	/*
	 * Protects mirrors and each mirror's callback state. Held only for
	 * short walks of the index, never across a callback or a backend
	 * call, so advancing a sequence never waits behind user code.
	 */
	pthread_mutex_t mirror_lock;
	pthread_cond_t cb_done;		/* a callback returned (mirror_lock) */
	unsigned int cb_running;	/* callbacks running (mirror_lock) */
	bool unbinding;			/* sva_unbind() began (mirror_lock) */
	struct mirror_index mirrors;
	struct sva_counters stats;
	struct sva_range_attrs attrs;	/* sva_range_set_attr() */
	void *priv;			/* backend's */
};

struct sva_mirror {
	struct sva_bind *bind;		/* in bind->mirrors, mirror_lock */
	uint64_t start, end;
	_Atomic uint64_t seq;
	struct sva_mirror_opts opts;
	uint64_t backend_id;		/* the backend's name for it */
	/* Under bind->mirror_lock: */
	unsigned int cb_running;	/* callbacks running on it now */
	bool unregistered;		/* out of the index */
	bool free_on_return;		/* unregistered by its own callback */
};

/* Count @n events of kind @c on @bind and its device. */
static inline void sva__count(struct sva_bind *bind, enum sva_counter c,
			      uint64_t n)
{
	atomic_fetch_add_explicit(&bind->stats.v[c], n, memory_order_relaxed);
	atomic_fetch_add_explicit(&bind->dev->stats.v[c], n,
				  memory_order_relaxed);
}

/* Count @n events of kind @c on the device alone. */
static inline void sva__dev_count(struct sva_dev *dev, enum sva_counter c,
				  uint64_t n)
{
	atomic_fetch_add_explicit(&dev->stats.v[c], n, memory_order_relaxed);
}

/*
 * An invalidation of [start, end) reached @bind: advance the sequence of
 * the mirrors it overlaps. Backends call it while no device access can use
 * the dropped translations, before the cause returns where they can (so a
 * read_retry() after munmap() returns sees it). Takes bind->mirror_lock
 * briefly; never waits for a callback.
 */
void sva__mirrors_advance(struct sva_bind *bind, uint64_t start,
			  uint64_t end);
/*
 * Then, from a context that may block, run the mirrors' callbacks. No
 * library lock of the core is held while a callback runs; the caller must
 * hold none either (a callback may call back into libsva).
 */
void sva__mirrors_notify(struct sva_bind *bind, uint64_t start, uint64_t end,
			 enum sva_inval_event event);
/*
 * Unbind: advance the first mirror of @bind, run its callback with
 * SVA_INVAL_RELEASE and unregister it. False when there is none left.
 */
bool sva__mirror_release_first(struct sva_bind *bind);
/* Wait until no callback of @bind runs (unbind: its mirrors are gone). */
void sva__mirrors_wait_callbacks(struct sva_bind *bind);
/*
 * -EDEADLK (with a message naming @what) when the calling thread is
 * running an invalidation callback, for calls a callback must not make.
 */
int sva__forbidden_in_callback(const char *what);

int sva__queue_init(struct sva_bind *bind, unsigned int depth);
/* Wait until nothing is queued or running, then stop the worker. */
void sva__queue_fini(struct sva_bind *bind);

/* ------------------------------------------------------------- backends */

struct sva_backend_ops {
	const char *name;
	/* Append this backend's devices to @descs (room for @max entries)
	 * and return how many it has, or a negative errno. */
	int (*enumerate)(struct sva_dev_desc *descs, unsigned int max);
	/* Open by name (@fd < 0) or from a caller's fd, which the backend
	 * dup()s into dev->fd. Fills dev->caps. -ENODEV: not this
	 * backend's. */
	int (*open)(struct sva_dev *dev, const char *name, int fd);
	void (*close)(struct sva_dev *dev);
	/* Bind the calling process's mm: set bind->pasid. */
	int (*bind)(struct sva_bind *bind);
	/* Queue is drained and mirrors are gone. */
	void (*unbind)(struct sva_bind *bind);
	/* Optional: wait for invalidations already under way to finish. */
	void (*sync)(struct sva_bind *bind);
	/* Optional: reset the device (drop cached translations). */
	void (*reset)(struct sva_dev *dev);
	/* Run one validated descriptor to its completion record. */
	void (*exec)(struct sva_bind *bind, const struct sva_desc *desc,
		     struct sva_completion *comp);
	/* exec may run on an application thread (a waiter runs it inline,
	 * signals unblocked): else only on the queue worker. */
	bool exec_anywhere;
	/*
	 * Optional: the queue worker hands the binding's queue over, with
	 * work queued: take descriptors (sva__queue_take()), run them on a
	 * queue of the backend's own, post each completion in order
	 * (sva__queue_post(); sva__queue_exec() runs one through exec);
	 * return once nothing can be taken and nothing is left running.
	 */
	void (*run_queue)(struct sva_bind *bind);
	int (*mirror_register)(struct sva_mirror *mirror);
	void (*mirror_unregister)(struct sva_mirror *mirror);
	int (*snapshot)(struct sva_mirror *mirror, uint64_t addr,
			uint64_t len, uint8_t *states, unsigned int fault);
	/*
	 * Optional: the open device's reserved windows (addresses no DMA
	 * reaches), up to @max of them into @out (NULL when @max is 0), in
	 * any order but disjoint (a group may list overlapping regions of
	 * different types: merge them; the core takes an overlap for a
	 * bug, -EIO); returns how many it has or a negative errno. The
	 * caller's own list, if any, is in dev->opts.reserved (checked by
	 * the core): a backend that models a device (sim) reports it
	 * instead of its defaults; one with real windows (VFIO: the group's)
	 * refuses it. NULL: the device has none and models none (kmod: the
	 * shim mirrors through HMM, no IOMMU domain is in the way); a list
	 * from the caller is then refused (-EOPNOTSUPP). The core keeps the
	 * result and does every check (reserved.c).
	 */
	int (*reserved_regions)(struct sva_dev *dev, struct sva_region *out,
				unsigned int max);
	/* Optional (SVA_CAP_MIGRATE): migrate the validated, page aligned
	 * [addr, addr + len) to @to (SVA_LOC_*), counting into @res (all
	 * of it known to the library). Returns 0 or a negative errno. */
	int (*migrate)(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       uint64_t to, struct sva_migrate_result *res);
	/* Optional (SVA_CAP_EXCLUSIVE): make the validated, page aligned
	 * [addr, addr + len) exclusive to @bind's device, counting into
	 * @res as sva_make_exclusive(3) documents. 0 or a negative errno. */
	int (*make_exclusive)(struct sva_bind *bind, uint64_t addr,
			      uint64_t len, struct sva_migrate_result *res);
	/* Optional: attributes were set on [addr, addr + len): hear of
	 * its munmap/mremap (sva__range_attrs_drop()) where it can. */
	void (*attrs_track)(struct sva_bind *bind, uint64_t addr,
			    uint64_t len);
};

/*
 * ops->migrate, recorded in the trace as one migration run for @cause
 * (enum sva_trace_mig_cause) when the device traces.
 */
int sva__migrate_run(struct sva_bind *bind, uint64_t addr, uint64_t len,
		     uint64_t to, struct sva_migrate_result *res, int cause);
/* SVA_OP_PREFETCH, run by the queue worker through ops->migrate. */
void sva__prefetch_exec(struct sva_bind *bind, const struct sva_desc *desc,
			struct sva_completion *comp);
/* A valid migration target (SVA_LOC_DEVICE/HOST/HOST_NODE)? */
bool sva__loc_valid(uint64_t loc, bool none_ok);

extern const struct sva_backend_ops sva_sim_ops;
extern const struct sva_backend_ops sva_kmod_ops;
extern const struct sva_backend_ops sva_vfio_ops;

/* --------------------------------------------- reserved windows (reserved.c) */

/* Check the caller's dev->opts.reserved: -EINVAL with a message if bad. */
int sva__resv_opts_check(const struct sva_dev_opts *opts);
/* After the backend opened @dev: take its windows into dev->resv. */
int sva__resv_load(struct sva_dev *dev);
void sva__resv_free(struct sva_dev *dev);
/* -EINVAL with a message when [addr, addr + len) overlaps a window. */
int sva__resv_check_range(const struct sva_dev *dev, uint64_t addr,
			  uint64_t len, const char *what);
/*
 * Run @desc through the backend, stopping at the first byte it would
 * access inside a window: the bytes before it are done, and it completes
 * FAULT_INVALID there (no page request: the fault can't be resolved).
 */
bool sva__queue_take(struct sva_bind *bind, struct sva_desc *desc,
		     uint64_t *t0);
void sva__queue_post(struct sva_bind *bind, const struct sva_desc *desc,
		     const struct sva_completion *comp, uint64_t t0);
void sva__queue_exec(struct sva_bind *bind, const struct sva_desc *desc,
		     uint64_t t0);
void sva__exec(struct sva_bind *bind, const struct sva_desc *desc,
	       struct sva_completion *comp);

/* Fault injection (inject.c): true when this call at @point must fail. */
bool sva__inject(enum sva_inject_point point);
/* calloc/malloc that the ALLOC injection point can fail. */
void *sva__zalloc(size_t size);
void *sva__alloc(size_t size);

/* A page request group of @bind failed: count it towards a fault storm. */
void sva__fault_failed(struct sva_bind *bind);

static inline bool sva__dev_quarantined(const struct sva_dev *dev)
{
	return atomic_load_explicit(&dev->quarantined, memory_order_relaxed);
}

/*
 * Fail with -EPERM when the handle was made by another process (fork).
 * Every public call on a handle checks this first, before it takes any
 * lock: a lock held by a parent's thread at fork() stays held forever in
 * the child.
 */
int sva__check_owner(pid_t owner, const char *what);

/*
 * File descriptors a child of fork() must not keep (kernel contexts, event
 * fds): opened and closed under a lock that fork() takes, so a child gets
 * every one of them closed by an atfork handler, and none half open.
 */
int sva__fd_open(const char *path, int flags);
int sva__fd_dup(int fd);		/* F_DUPFD_CLOEXEC */
int sva__fd_create(const char *path, int flags, mode_t mode); /* O_CREAT */
int sva__fd_eventfd(void);		/* EFD_CLOEXEC */
/* A new fd that an ioctl on @dev_fd returns (close-on-exec already). */
int sva__fd_ioctl(int dev_fd, unsigned long request);
/* The same with an argument (VFIO_GROUP_GET_DEVICE_FD's device name). */
int sva__fd_ioctl_arg(int dev_fd, unsigned long request, void *arg);
void sva__fd_close(int fd);

/*
 * pthread_create() for library threads: they run with every signal
 * blocked, so a process-directed signal goes to an application thread,
 * and are named @name ("sva-..." , at most 15 characters).
 */
int sva__thread_create(pthread_t *thread, const char *name,
		       void *(*fn)(void *), void *arg);

/* Copy @known bytes of @src to @dst of @dst_sz bytes (an out struct that
 * carries its size), zeroing the tail the library doesn't know of. */
void sva__out_copy(void *dst, size_t dst_sz, const void *src, size_t known);

/* -EINVAL for NULL, -EPERM for another process's handle, else 0. */
static inline int sva__bind_usable(const struct sva_bind *bind)
{
	if (!bind)
		return sva_err(-EINVAL, "NULL binding");
	return sva__check_owner(bind->owner, "binding");
}

static inline int sva__dev_usable(const struct sva_dev *dev)
{
	if (!dev)
		return sva_err(-EINVAL, "NULL device");
	return sva__check_owner(dev->owner, "device");
}

#endif /* SVA_INTERNAL_H */
