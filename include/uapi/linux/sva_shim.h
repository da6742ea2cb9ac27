/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * sva_shim: the ioctl ABI of /dev/sva, shared by the kernel module and
 * libsva. Every struct has a fixed size and explicit padding; reserved and
 * padding fields must be zero; unknown flags are refused with -EINVAL.
 *
 * An open file of /dev/sva is a software SVA device context bound to the
 * opening process's mm. It mirrors that mm with HMM: a device page table
 * that holds only what no MMU notifier has invalidated, filled through
 * hmm_range_fault() (the page request path). SVA_SHIM_IOC_CONTEXT on any
 * open file of the device, whoever opened it (an fd passed over a socket),
 * makes a new context bound to the caller's mm.
 */
#ifndef _UAPI_LINUX_SVA_SHIM_H
#define _UAPI_LINUX_SVA_SHIM_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define SVA_SHIM_ABI_VERSION 2
#define SVA_SHIM_MAX_XFER (64u << 20)	/* bytes per read/write ioctl */

/* struct sva_shim_version.caps */
#define SVA_SHIM_CAP_HMM	(1u << 0)	/* HMM mirror device */
#define SVA_SHIM_CAP_INJECT	(1u << 1)	/* fault injection knobs */
/* Device memory and migration: DEVMEM, MIGRATE (the kernel has
 * CONFIG_DEVICE_PRIVATE; without it both ioctls fail with -EOPNOTSUPP).
 */
#define SVA_SHIM_CAP_MIGRATE	(1u << 2)
/* Exclusive device access to host pages: EXCLUSIVE (the kernel has
 * CONFIG_DEVICE_PRIVATE, make_device_exclusive_range(); without it the
 * ioctl fails with -EOPNOTSUPP).
 */
#define SVA_SHIM_CAP_EXCLUSIVE	(1u << 3)
/* struct sva_shim_migrate.node is taken (with SVA_SHIM_CAP_MIGRATE): ABI 2
 * modules without it have a __u32 granule there and fail a migrate that
 * carries a node with -EINVAL.
 */
#define SVA_SHIM_CAP_MIGRATE_NODE	(1u << 4)
/* The descriptor engine: RING_SETUP, the rings' mmap, RING_ENTER. */
#define SVA_SHIM_CAP_ENGINE	(1u << 5)

struct sva_shim_version {
	__u32 abi;		/* out: SVA_SHIM_ABI_VERSION */
	__u32 caps;		/* out: SVA_SHIM_CAP_* */
	__u32 pasid_bits;	/* out: width of the module's PASID space */
	__u32 pad;
};

struct sva_shim_bind {
	__u32 flags;		/* in: none defined, 0 */
	__u32 pasid;		/* out */
	/*
	 * out: 0 if a hardware SVA bind of the module's sva_pci device
	 * succeeded, else its -errno (-ENODEV: none configured)
	 */
	__s32 hw_status;
	__u32 pad;
};

/* struct sva_shim_access.flags */
/* Don't fault: stop at the first page not mirrored. */
#define SVA_SHIM_ACCESS_NO_FAULT (1u << 0)

/* struct sva_shim_access.status */
#define SVA_SHIM_STATUS_OK		0
#define SVA_SHIM_STATUS_PAGE_FAULT	1	/* NO_FAULT, page not mirrored */
#define SVA_SHIM_STATUS_INVALID		2	/* access violates the mapping */
#define SVA_SHIM_STATUS_FAILURE		3	/* the MM could not resolve it */

/*
 * Device read (mirror -> buf) or write (buf -> mirror) of exactly the
 * bytes [addr, addr + len): a write touches no other byte of the pages it
 * writes, and leaves them dirty as a CPU write would. Stops at the first
 * page it can't access: bytes_done bytes were moved, fault_addr is the
 * first byte not moved (that page's first byte, or addr).
 */
struct sva_shim_access {
	__u64 addr;		/* in: any byte */
	__u64 len;		/* in: 1 to SVA_SHIM_MAX_XFER bytes */
	__u64 buf;		/* in: the caller's buffer (user pointer) */
	__u32 flags;		/* in: SVA_SHIM_ACCESS_* */
	__u32 status;		/* out: SVA_SHIM_STATUS_* */
	__u64 bytes_done;	/* out */
	__u64 fault_addr;	/* out */
	__u64 faults;		/* out: page request groups raised */
};

/* struct sva_shim_snapshot: one byte per page in states */
#define SVA_SHIM_PAGE_VALID	(1u << 0)
#define SVA_SHIM_PAGE_WRITE	(1u << 1)
#define SVA_SHIM_PAGE_HUGE	(1u << 2)
#define SVA_SHIM_PAGE_ERROR	(1u << 3)
#define SVA_SHIM_PAGE_DEVICE_LOCAL (1u << 4)	/* in this context's memory */
/* In another context's device memory (of this mm): not VALID, a device
 * access faults it back to host memory first.
 */
#define SVA_SHIM_PAGE_DEVICE_REMOTE (1u << 5)
/* Held exclusively by this context (EXCLUSIVE), with VALID and WRITE. */
#define SVA_SHIM_PAGE_EXCLUSIVE	(1u << 6)

/*
 * struct sva_shim_snapshot.flags: fault in the pages that lack it (a page
 * request group each), then look. A page that faulted in, or had what was
 * asked, reads VALID (and WRITE) though migration or NUMA balancing took
 * it away for a moment in between; one the fault couldn't bring in keeps
 * the state the first look found (ERROR where no VMA allows the access).
 */
#define SVA_SHIM_SNAP_FAULT_READ	(1u << 0)
#define SVA_SHIM_SNAP_FAULT_WRITE	(1u << 1)

struct sva_shim_snapshot {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple, <= SVA_SHIM_MAX_XFER */
	__u64 states;		/* in: user pointer, len / 4096 bytes */
	__u32 flags;		/* in: SVA_SHIM_SNAP_* */
	__u32 pad;
};

/* A mirrored range, with its own interval notifier and sequence. */
struct sva_shim_mirror {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple */
	__u32 flags;		/* in: 0 */
	__u32 id;		/* out: for UNMIRROR and MIRROR_SEQ */
	__u64 seq;		/* out: invalidations seen so far */
};

struct sva_shim_stats {
	__u64 translations;	/* pages the device looked up */
	__u64 atc_hits;		/* found in the device page table */
	__u64 atc_misses;
	__u64 page_requests;	/* pages faulted through hmm_range_fault */
	__u64 page_groups;
	__u64 faults_resolved;
	__u64 faults_failed;
	__u64 invalidations;	/* notifier callbacks on this context */
	__u64 atc_invalidated;	/* device page table entries dropped */
	__u64 events_lost;	/* records a full queue dropped (told) */
	__u64 bytes_done;
	/* Device memory (DEVMEM, MIGRATE), in pages. */
	__u64 devmem_accesses;	/* device accesses served from it */
	__u64 migrated_to_dev;
	__u64 migrated_to_host;	/* by MIGRATE, CPU faults and evictions */
	__u64 cpu_fault_migrations;
	__u64 evictions;	/* pages evicted to make room */
	/* Exclusive access (EXCLUSIVE), in pages. */
	__u64 exclusive_grants;
	__u64 exclusive_revokes; /* CPU access, invalidation, unbind */
	__u64 rsvd[6];		/* zero */
};

/*
 * Records read() returns, whole records only; a record is consumed only
 * once it was copied out. PAGE_REQUEST: one per page request group.
 * INVALIDATE: one per invalidation of the mm that dropped device
 * translations or overlapped mirror ranges (whose sequences it advanced
 * before the invalidation returned: start/end are the whole invalidated
 * range, mirror is how many ranges it overlapped). LOST: the queue was full
 * and seq records were dropped; every mirror range must be treated as
 * invalidated (their sequences are right, the callbacks were lost).
 * MIGRATE: a migration the kernel made on its own, out of the context's
 * device memory to host memory (a CPU fault, an eviction for room), for the
 * library's trace; left out when the queue is half full, never making
 * other records get lost. Its fields: start, the first address moved (0:
 * not known, as for an eviction); end, CLOCK_MONOTONIC ns when it began;
 * seq, how long it took (ns); access, SVA_SHIM_MIG_*; response, the pages
 * moved; reason, 1 + the host node of the first (0: not known); mirror,
 * for an eviction, the thread whose MIGRATE needed room (0 otherwise).
 */
#define SVA_SHIM_EVENT_PAGE_REQUEST	1
#define SVA_SHIM_EVENT_INVALIDATE	2
#define SVA_SHIM_EVENT_LOST		3
#define SVA_SHIM_EVENT_MIGRATE		4

/* struct sva_shim_event.access, for MIGRATE records */
#define SVA_SHIM_MIG_CPU_FAULT		1
#define SVA_SHIM_MIG_EVICTION		2

/* struct sva_shim_event.response, for page requests */
#define SVA_SHIM_RESP_SUCCESS	0
#define SVA_SHIM_RESP_INVALID	1
#define SVA_SHIM_RESP_FAILURE	2

/* struct sva_shim_event.reason, for invalidations (mmu_notifier_event) */
#define SVA_SHIM_INVAL_UNMAP		0
#define SVA_SHIM_INVAL_CLEAR		1
#define SVA_SHIM_INVAL_PROTECTION	2
#define SVA_SHIM_INVAL_OTHER		3
#define SVA_SHIM_INVAL_RELEASE		4
#define SVA_SHIM_INVAL_REMAP		5	/* mremap() moved the range */

struct sva_shim_event {
	__u32 type;		/* SVA_SHIM_EVENT_* */
	__u32 pasid;
	__u64 start;
	__u64 end;
	__u32 access;		/* page request: 1 read, 2 write */
	__u32 response;		/* page request: SVA_SHIM_RESP_* */
	__u32 reason;		/* invalidation: SVA_SHIM_INVAL_* */
	__u32 mirror;		/* invalidation: mirror ranges overlapped */
	__u64 seq;		/* invalidation: the context's count;
				 * lost: how many records were lost
				 */
};

/*
 * Give the context a device-local memory of size bytes (a page multiple,
 * at most the module's max_devmem_mb), once: MEMORY_DEVICE_PRIVATE pages,
 * each backed by a host page charged to the caller's memory cgroup when it
 * is used. -EBUSY if it has one; -EOPNOTSUPP without SVA_SHIM_CAP_MIGRATE.
 */
struct sva_shim_devmem {
	__u64 size;		/* in: bytes */
	__u32 flags;		/* in: 0 */
	__u32 pad;
};

/* struct sva_shim_migrate.flags: the direction, exactly one of */
#define SVA_SHIM_MIGRATE_TO_DEVICE	(1u << 0)
#define SVA_SHIM_MIGRATE_TO_HOST	(1u << 1)

/* struct sva_shim_migrate.not_moved[]: why pages were not moved */
#define SVA_SHIM_NM_UNMAPPED	0	/* no VMA */
#define SVA_SHIM_NM_PROT_NONE	1	/* no access allowed */
#define SVA_SHIM_NM_SHARED	2	/* not private anonymous memory */
#define SVA_SHIM_NM_PINNED	3	/* extra references, shared COW, ... */
#define SVA_SHIM_NM_NO_ROOM	4	/* device memory full, none evictable */
#define SVA_SHIM_NM_BUSY	5	/* changed under the migration */
#define SVA_SHIM_NM_UNSUPPORTED	6	/* VM_IO, VM_PFNMAP, ... */
#define SVA_SHIM_NM_UFFD	7	/* registered with a userfaultfd */
#define SVA_SHIM_NM_MAX		8
/* struct sva_shim_exclusive.not_held[] only: no write access */
#define SVA_SHIM_NM_READ_ONLY	8
#define SVA_SHIM_EXCL_NM_MAX	16

/*
 * Migrate [addr, addr + len) to the context's device memory (private
 * anonymous pages only; when it is full, its least recently used pages are
 * evicted to host memory first) or back to host memory (the pages in this
 * context's memory), as lib/test_hmm.c's MIGRATE_TO_DEV/MIGRATE_TO_SYS.
 * Every page is counted once: moved, already (there before), or in
 * not_moved[] by reason. A CPU access to a page in device memory migrates
 * it back (migrate_to_ram), data exact, with the rest of its granule (the
 * naturally aligned 2^granule pages around it, as far as they are in this
 * context's memory and in the same VMA); the device's own reads and writes
 * of it are local. Closing the context evicts what is left.
 */
struct sva_shim_migrate {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple, <= SVA_SHIM_MAX_XFER */
	__u32 flags;		/* in: SVA_SHIM_MIGRATE_* */
	__u16 granule;		/* in: to device: log2 pages, 0..9; else 0 */
	/* in: to device: 1 + the host NUMA node a CPU fault or an eviction
	 * brings the pages back to (where it has memory then; else, as
	 * with 0, the node the VMA's memory policy gives); else 0. Only
	 * with SVA_SHIM_CAP_MIGRATE_NODE.
	 */
	__u16 node;
	__u64 moved;		/* out */
	__u64 already;		/* out */
	__u64 evicted;		/* out: other pages evicted for room */
	__u64 not_moved[SVA_SHIM_NM_MAX];	/* out */
};

/*
 * Make the pages of [addr, addr + len) exclusive to the context, as
 * make_device_exclusive_range() does for device atomics: they stay in host
 * memory but lose their CPU mapping; the device reads and writes them
 * without a fault, and the first CPU access (or any other invalidation:
 * munmap, mprotect, fork, ...) revokes the exclusivity, the data exact.
 * Private anonymous writable memory only; pages are faulted in for writing
 * first. Every page is counted once: held (made exclusive now), already
 * (held before, or in this context's device memory), or in not_held[] by
 * reason (SVA_SHIM_NM_*). Unbinding releases every held page.
 */
struct sva_shim_exclusive {
	__u64 addr;		/* in: page aligned */
	__u64 len;		/* in: page multiple, <= SVA_SHIM_MAX_XFER */
	__u32 flags;		/* in: 0 */
	__u32 pad;
	__u64 held;		/* out */
	__u64 already;		/* out */
	__u64 not_held[SVA_SHIM_EXCL_NM_MAX];	/* out */
};

/*
 * The descriptor engine. The context executes descriptors itself, as a
 * device's work queue does: userspace writes entries into a submission
 * queue (SQ) and reads their completions from a completion queue (CQ),
 * both in memory it maps from the context's fd (io_uring's model). The
 * engine moves bytes page to page in the mirrored pages (the device page
 * table above, filled by translations and page requests as READ/WRITE
 * fill it), byte exact, with no copy through userspace.
 *
 * RING_SETUP (once per context; -EBUSY after) sizes both queues and says
 * where they lie; mmap() @size bytes at offset SVA_SHIM_RING_OFF. The
 * mapping is the caller's mm's only: fork() doesn't copy it. Indices run
 * freely (u32) and are masked with entries - 1. The producer of a queue
 * writes its entries then its tail with a store-release; the consumer
 * reads the tail with a load-acquire, the entries, then writes its head
 * with a store-release. The engine runs while the SQ has entries and the
 * CQ room; before it stops it sets SVA_SHIM_RING_NEED_WAKEUP in flags (then
 * a full barrier, then it looks at the SQ once more): a submitter that
 * sees it after publishing its tail (a full barrier between) rings the
 * doorbell, RING_ENTER. The engine stops too when the CQ is full: reap,
 * then ring. Completions signal the eventfd given at setup and wake
 * poll() with EPOLLRDBAND. RING_ENTER's argument, SVA_SHIM_ENTER_INLINE,
 * runs what the SQ holds in the caller's own call instead (as far as
 * the CQ has room), as io_uring_enter() does without SQPOLL: for a
 * submitter that would wait for the completions anyway.
 */
#define SVA_SHIM_RING_OFF		0ull	/* mmap offset of the rings */
#define SVA_SHIM_RING_MAX_ENTRIES	4096u	/* per queue */
#define SVA_SHIM_RING_MAX_LEN		(1ull << 30)	/* bytes per entry */

/* RING_ENTER's argument */
#define SVA_SHIM_ENTER_INLINE		(1u << 0)

/* struct sva_shim_ring.flags, written by the engine */
#define SVA_SHIM_RING_NEED_WAKEUP	(1u << 0)

/* struct sva_shim_sqe.opcode */
#define SVA_SHIM_OP_NOP		0
#define SVA_SHIM_OP_COPY	1	/* dst[0..len) = src[0..len), disjoint */
#define SVA_SHIM_OP_FILL	2	/* dst[i] = byte i % 8 of pattern (LE) */
#define SVA_SHIM_OP_COMPARE	3	/* result: 0 equal, 1 differ at bytes_done */
#define SVA_SHIM_OP_CRC32C	4	/* result: crc32c of src seeded by pattern */

/* struct sva_shim_sqe.flags */
/*
 * Raise page requests for pages not mirrored (block on fault); without
 * it the entry stops at the first page no translation finds, status
 * PAGE_FAULT, as READ/WRITE with SVA_SHIM_ACCESS_NO_FAULT.
 */
#define SVA_SHIM_SQE_FAULT	(1u << 0)

/* struct sva_shim_cqe.status, beyond SVA_SHIM_STATUS_* above */
#define SVA_SHIM_STATUS_CANCELLED	4	/* unbound, or the mm exiting */
#define SVA_SHIM_STATUS_BAD		5	/* malformed entry: nothing done */

struct sva_shim_sqe {
	__u64 user_data;	/* copied into the completion */
	__u64 src;
	__u64 dst;
	__u64 len;		/* 1 to SVA_SHIM_RING_MAX_LEN (NOP: 0) */
	__u64 pattern;		/* FILL: the bytes laid; CRC32C: the seed */
	__u8 opcode;		/* SVA_SHIM_OP_* */
	__u8 pad[3];
	__u32 flags;		/* SVA_SHIM_SQE_* */
	__u64 rsvd[2];		/* zero */
};

/*
 * A completion: exactly bytes_done bytes were done, in order; on a fault
 * (status PAGE_FAULT, INVALID, FAILURE) fault_addr is the first byte not
 * done and access says which side (1 read, 2 write).
 */
struct sva_shim_cqe {
	__u64 user_data;
	__u64 bytes_done;
	__u64 fault_addr;
	__u64 result;		/* CRC32C: the CRC of the bytes done */
	__u32 status;		/* SVA_SHIM_STATUS_* */
	__u32 access;
	__u64 faults;		/* page request groups raised */
};

/* At offset 0 of the mapping. */
struct sva_shim_ring {
	__u32 sq_head;		/* engine */
	__u32 sq_tail;		/* user */
	__u32 cq_head;		/* user */
	__u32 cq_tail;		/* engine */
	__u32 flags;		/* engine: SVA_SHIM_RING_* */
	__u32 entries;		/* of each queue */
	__u64 completed;	/* engine: entries completed */
	__u64 wakeups;		/* engine: runs started (doorbells heeded) */
	__u64 rsvd[4];
};

struct sva_shim_ring_setup {
	__u32 entries;		/* in: a power of 2, 1..RING_MAX_ENTRIES */
	__u32 flags;		/* in: 0 */
	__s32 eventfd;		/* in: -1, or an eventfd completions signal */
	__u32 pad;
	__u64 size;		/* out: bytes to mmap at SVA_SHIM_RING_OFF */
	__u64 sq_off;		/* out: struct sva_shim_sqe[entries] */
	__u64 cq_off;		/* out: struct sva_shim_cqe[entries] */
};

#define SVA_SHIM_IOC_MAGIC 'S'
#define SVA_SHIM_IOC_VERSION	_IOR(SVA_SHIM_IOC_MAGIC, 0x00, struct sva_shim_version)
#define SVA_SHIM_IOC_BIND	_IOWR(SVA_SHIM_IOC_MAGIC, 0x01, struct sva_shim_bind)
#define SVA_SHIM_IOC_UNBIND	_IO(SVA_SHIM_IOC_MAGIC, 0x02)
#define SVA_SHIM_IOC_READ	_IOWR(SVA_SHIM_IOC_MAGIC, 0x03, struct sva_shim_access)
#define SVA_SHIM_IOC_WRITE	_IOWR(SVA_SHIM_IOC_MAGIC, 0x04, struct sva_shim_access)
#define SVA_SHIM_IOC_SNAPSHOT	_IOWR(SVA_SHIM_IOC_MAGIC, 0x05, struct sva_shim_snapshot)
#define SVA_SHIM_IOC_MIRROR	_IOWR(SVA_SHIM_IOC_MAGIC, 0x06, struct sva_shim_mirror)
#define SVA_SHIM_IOC_UNMIRROR	_IOW(SVA_SHIM_IOC_MAGIC, 0x07, __u32)
#define SVA_SHIM_IOC_MIRROR_SEQ	_IOWR(SVA_SHIM_IOC_MAGIC, 0x08, struct sva_shim_mirror)
#define SVA_SHIM_IOC_STATS	_IOR(SVA_SHIM_IOC_MAGIC, 0x09, struct sva_shim_stats)
/* Returns a new fd: a context of the same device bound to the caller's mm. */
#define SVA_SHIM_IOC_CONTEXT	_IO(SVA_SHIM_IOC_MAGIC, 0x0a)
#define SVA_SHIM_IOC_DEVMEM	_IOW(SVA_SHIM_IOC_MAGIC, 0x0b, struct sva_shim_devmem)
#define SVA_SHIM_IOC_MIGRATE	_IOWR(SVA_SHIM_IOC_MAGIC, 0x0c, struct sva_shim_migrate)
#define SVA_SHIM_IOC_EXCLUSIVE	_IOWR(SVA_SHIM_IOC_MAGIC, 0x0d, struct sva_shim_exclusive)
#define SVA_SHIM_IOC_RING_SETUP	_IOWR(SVA_SHIM_IOC_MAGIC, 0x0e, struct sva_shim_ring_setup)
#define SVA_SHIM_IOC_RING_ENTER	_IO(SVA_SHIM_IOC_MAGIC, 0x0f)
/*
 * STATS as ABI 2 first had it, up to evictions: still answered, so that
 * a library of then works with this module and this library with a
 * module of then.
 */
#define SVA_SHIM_IOC_STATS_ABI2	_IOC(_IOC_READ, SVA_SHIM_IOC_MAGIC, 0x09, \
				     16 * sizeof(__u64))

#endif /* _UAPI_LINUX_SVA_SHIM_H */
