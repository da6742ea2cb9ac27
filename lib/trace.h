/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * The event trace: what a device did, recorded into a fixed-size ring per
 * device and written at sva_dev_close() as Chrome trace-event JSON
 * (Perfetto, chrome://tracing). The core and each backend record at the one
 * place where an event happens, through the calls below; none of them knows
 * which backend drives the device.
 *
 * Off (dev->trace NULL) every recording point costs one predictable branch:
 * no clock read, no lock, no allocation. On, a writer takes a slot with one
 * atomic add and never waits: when the ring is full the oldest events are
 * overwritten, and the file says how many were dropped.
 */
#ifndef SVA_TRACE_H
#define SVA_TRACE_H

#include <stdatomic.h>
#include <stdint.h>

struct sva_dev;
struct sva_bind;

enum sva_trace_kind {
	SVA_TRACE_DESC = 1,		/* a descriptor, start to completion */
	SVA_TRACE_PAGE_GROUP,		/* a page request group to its response */
	SVA_TRACE_INVAL,		/* cached translations dropped */
	SVA_TRACE_QUARANTINE,		/* a fault storm quarantined the device */
	SVA_TRACE_MIGRATE,		/* a migration run, start to end */
};

/* What the recording thread is, to name its row in the timeline. */
enum sva_trace_role {
	SVA_ROLE_APP,			/* the application's own thread */
	SVA_ROLE_QUEUE,			/* a binding's queue worker */
	SVA_ROLE_FAULT,			/* a fault service (sim) */
	SVA_ROLE_MM_EVENTS,		/* the sim's userfaultfd event reader */
	SVA_ROLE_KMOD_EVENTS,		/* a kmod binding's event reader */
	SVA_ROLE_NR,
};

/* One event: 64 bytes, written by one writer, read at close. */
struct sva_trace_ev {
	_Atomic uint64_t seq;		/* 0 never written, 1 busy, else index + 2 */
	uint64_t ts;			/* CLOCK_MONOTONIC ns (start) */
	uint64_t dur;			/* ns (DESC, PAGE_GROUP) */
	uint64_t a, b;			/* addresses (see trace.c) */
	uint64_t c;			/* bytes done, pages, ATC entries */
	uint32_t tid;
	uint32_t pasid;
	uint32_t status;		/* enum sva_status, response */
	uint16_t op;			/* opcode, access, enum sva_inval_event */
	uint8_t kind;			/* enum sva_trace_kind */
	uint8_t role;			/* enum sva_trace_role */
};

#define SVA_TRACE_DEFAULT_EVENTS (64u * 1024)
#define SVA_TRACE_MAX_EVENTS (16u * 1024 * 1024)
/* c of an invalidation whose ATC drop count the backend doesn't know. */
#define SVA_TRACE_UNKNOWN UINT64_MAX

/* Is @dev tracing? The one branch every recording point takes. */
#define sva__tracing(dev) __builtin_expect((dev)->trace != NULL, 0)

/*
 * At open: set up dev->trace from opts.trace_path/trace_events, else from
 * $SVA_TRACE. 0, or a negative errno (with a message) for bad options. The
 * file is created here, so that a path that can't be written fails the
 * open and not, unseen, the close.
 */
int sva__trace_open(struct sva_dev *dev);
/* At close, after every thread of the device stopped: write and free. */
void sva__trace_close(struct sva_dev *dev);

/* The calling thread's role (library threads call it when they start). */
void sva__trace_set_role(enum sva_trace_role role);

/* Recording; callers check sva__tracing() first. @t0 from sva__now_ns(). */
struct sva_desc;
struct sva_completion;
void sva__trace_desc(struct sva_bind *bind, uint64_t t0,
		     const struct sva_desc *d, const struct sva_completion *c);
/*
 * @first, @last: the group's lowest and highest page; @n pages. @t0 0:
 * the backend learns of the group only once answered (kmod): no duration.
 */
void sva__trace_page_group(struct sva_bind *bind, uint64_t t0,
			   uint64_t first, uint64_t last, unsigned int n,
			   unsigned int access, uint32_t response);
/* @atc_dropped may be SVA_TRACE_UNKNOWN. */
void sva__trace_inval(struct sva_bind *bind, uint64_t start, uint64_t end,
		      unsigned int event, uint64_t atc_dropped);
void sva__trace_quarantine(struct sva_bind *bind, unsigned int failed);

/* Where a migration run moved pages (the event's direction). */
enum sva_trace_mig_dir {
	SVA_TRACE_MIG_TO_DEV = 1,	/* host memory to device memory */
	SVA_TRACE_MIG_TO_HOST,		/* device memory to host (node) */
	SVA_TRACE_MIG_DEV_TO_DEV,	/* another device's memory to ours */
};

/* What started a migration run. */
enum sva_trace_mig_cause {
	SVA_TRACE_MIG_EXPLICIT = 1,	/* sva_migrate() */
	SVA_TRACE_MIG_PREFETCH,		/* an SVA_OP_PREFETCH descriptor */
	SVA_TRACE_MIG_DEV_FAULT,	/* a device fault, preferred location */
	SVA_TRACE_MIG_CPU_FAULT,	/* a CPU access to device memory */
	SVA_TRACE_MIG_EVICTION,		/* room made in full device memory */
	SVA_TRACE_MIG_FORK,		/* everything back before fork() */
	SVA_TRACE_MIG_UNBIND,		/* a binding's pages back at unbind */
};

/*
 * One migration run of @bind's pages, from @t0 to now (or @dur ns when
 * not 0: evictions add up the time of each, made between other moves):
 * @first the lowest page, @moved pages moved, @refused pages not moved,
 * @node the host node (-1 any) of a run to the host.
 */
void sva__trace_migrate(struct sva_bind *bind, uint64_t t0, uint64_t dur,
			enum sva_trace_mig_dir dir,
			enum sva_trace_mig_cause cause, int node,
			uint64_t first, uint64_t moved, uint64_t refused);

/*
 * A run to host memory that another thread @tid (0: the caller) made and
 * the kernel told of (kmod: CPU faults, evictions), from @t0 for @dur ns.
 */
void sva__trace_migrate_by(struct sva_bind *bind, uint32_t tid, uint64_t t0,
			   uint64_t dur, enum sva_trace_mig_cause cause,
			   int node, uint64_t first, uint64_t moved);

/*
 * Pages the backend moved, in the migration run of the calling thread,
 * from another device's memory (the core zeroes it before ops->migrate):
 * what tells a run device to device. Counted only while tracing.
 */
extern __thread uint64_t sva__trace_mig_from_dev;

#endif /* SVA_TRACE_H */
