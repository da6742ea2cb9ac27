/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/*
 * libsva - shared virtual addressing runtime for accelerators.
 *
 * Conventions (as in liburing and libbpf):
 *  - every handle is opaque;
 *  - every function that can fail returns 0 (or a count) on success and a
 *    negative errno on failure, and reports a message through the print
 *    callback (sva_set_print());
 *  - every option struct starts with its size (set it with SVA_OPTS_INIT) so
 *    that new fields can be appended without breaking old binaries.
 */
#ifndef SVA_SVA_H
#define SVA_SVA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SVA_API __attribute__((visibility("default")))

/* Declare and zero an option struct of TYPE with its size filled in. */
#define SVA_OPTS_INIT(TYPE, NAME, ...) \
	struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }

struct sva_dev;		/* an opened device */
struct sva_bind;	/* the calling process's mm bound to a device */
struct sva_mirror;	/* a mirrored (HMM style) range of a binding */

/* ---------------------------------------------------------------- logging */

enum sva_print_level {
	SVA_WARN,
	SVA_INFO,
	SVA_DEBUG,
};

typedef int (*sva_print_fn_t)(enum sva_print_level level, const char *fmt,
			      va_list ap);

/*
 * Replace the message callback; returns the previous one. NULL silences the
 * library. The default prints SVA_WARN to stderr (more with SVA_LOG=info or
 * SVA_LOG=debug in the environment).
 */
SVA_API sva_print_fn_t sva_set_print(sva_print_fn_t fn);

/* ---------------------------------------------------------------- devices */

#define SVA_NAME_MAX 32

struct sva_dev_desc {
	char name[SVA_NAME_MAX];	/* "sim0", "kmod0", ... */
	char backend[16];		/* "sim", "kmod" */
};

/*
 * Fill up to @max entries of @descs with the devices present. Returns the
 * number of devices present (which may exceed @max) or a negative errno.
 */
SVA_API int sva_devices(struct sva_dev_desc *descs, unsigned int max);

/*
 * A reserved window of a device's address space: addresses no DMA of the
 * device reaches (an IOMMU group's reserved_regions in sysfs). A device
 * access there ends SVA_STATUS_FAULT_INVALID, and no mirror may cover one.
 */
enum sva_region_type {
	SVA_REGION_RESERVED = 1,	/* nothing there (IOMMU_RESV_RESERVED) */
	SVA_REGION_DIRECT = 2,		/* identity mapped (RMRR): not the
					 * process's memory */
	SVA_REGION_MSI = 3,		/* interrupt messages (x86's
					 * 0xfee00000-0xfeefffff, sw-msi) */
};

struct sva_region {
	uint64_t start;
	uint64_t end;		/* inclusive: the last byte, as sysfs has it */
	uint32_t type;		/* enum sva_region_type */
	uint32_t rsvd;		/* must be 0 */
};

/* Most reserved windows a device may be given (sva_dev_opts). */
#define SVA_REGIONS_MAX 256

enum sva_dev_flags {
	/* Model a device without Page Request Interface: faults always end
	 * the descriptor with a partial completion. */
	SVA_DEV_NO_PRI = 1u << 0,
	/* Don't cache translations (every access asks the IOMMU). */
	SVA_DEV_NO_ATC = 1u << 1,
	/* Model a device without local memory: no SVA_CAP_MIGRATE, and
	 * no SVA_CAP_EXCLUSIVE (device-private memory support, which
	 * exclusive entries are part of in the kernel). */
	SVA_DEV_NO_DEVMEM = 1u << 2,
};

struct sva_dev_opts {
	size_t sz;
	unsigned int flags;		/* enum sva_dev_flags */
	unsigned int atc_entries;	/* ATC size (sim), 0 = default 4096 */
	unsigned int prq_depth;		/* page request queue, 0 = default 256 */
	unsigned int fault_batch;	/* pages per request group, and the
					 * fault-around window, fixed (sim:
					 * <= 256); 0 = default: adaptive */
	unsigned int pasid_bits;	/* PASID width (sim), 0 = default 20 */
	unsigned int queue_depth;	/* max descriptors per queue, 0 = 1024 */
	/* Fault storm control: the device is quarantined once this many
	 * page request groups fail within one second (0 = default 1000),
	 * and its fault service answers at most fault_rate groups per
	 * second (0 = no limit). See sva_dev_reset(). */
	unsigned int storm_threshold;
	unsigned int fault_rate;
	/* Reserved windows (sim only; see sva_dev_reserved_regions()): NULL
	 * keeps the device's own; else the device has exactly these
	 * nr_reserved windows (0: none). Copied at open. */
	const struct sva_region *reserved;
	unsigned int nr_reserved;
	/* Event trace, written at sva_dev_close() as Chrome trace-event
	 * JSON: the file to create (%p: pid, %d: device name, %%: %), NULL
	 * = $SVA_TRACE or none; trace_events: ring size in events, the
	 * oldest dropped beyond it (0 = 65536). See libsva(7). */
	const char *trace_path;
	unsigned int trace_events;
	/* Device-local memory in bytes (a page multiple), for migration
	 * (sva_migrate(3)); 0 = the backend's default (sim: 64 MiB). What
	 * the device got is in sva_dev_caps.devmem_size: 0 where the
	 * backend or the kernel can't migrate. */
	uint64_t devmem_size;
};

/* Open the device called @name; @opts may be NULL. */
SVA_API int sva_dev_open(const char *name, const struct sva_dev_opts *opts,
			 struct sva_dev **devp);
/*
 * Open the device behind an fd obtained from sva_dev_fd() (possibly passed
 * from another process) or from open("/dev/sva"). The fd is duplicated; the
 * caller keeps its own.
 */
SVA_API int sva_dev_open_fd(int fd, const struct sva_dev_opts *opts,
			    struct sva_dev **devp);
/* The device's own fd (owned by the handle; don't close it). It is closed
 * in a child after fork(): dup() it before to hand the device over. */
SVA_API int sva_dev_fd(const struct sva_dev *dev);
SVA_API const char *sva_dev_name(const struct sva_dev *dev);
/* Close; any binding still open on the device is unbound first. */
SVA_API void sva_dev_close(struct sva_dev *dev);
/* 1 if a fault storm got the device quarantined, 0 if not, or -errno. */
SVA_API int sva_dev_quarantined(const struct sva_dev *dev);
/* Lift a quarantine (as a function level reset would): drops the ATC. */
SVA_API int sva_dev_reset(struct sva_dev *dev);

enum sva_cap_flags {
	SVA_CAP_PASID = 1u << 0,
	SVA_CAP_ATS = 1u << 1,
	SVA_CAP_PRI = 1u << 2,
	SVA_CAP_BLOCK_ON_FAULT = 1u << 3,
	SVA_CAP_MIRROR = 1u << 4,
	/* Hardware SVA through the IOMMU (iommu_sva_bind_device()). */
	SVA_CAP_HW_SVA = 1u << 5,
	/* Device-local memory and migration: sva_migrate(3),
	 * sva_range_set_attr(3), SVA_OP_PREFETCH. */
	SVA_CAP_MIGRATE = 1u << 6,
	/* Exclusive (atomic) device access to host pages:
	 * sva_make_exclusive(3). */
	SVA_CAP_EXCLUSIVE = 1u << 7,
};

struct sva_dev_caps {
	size_t sz;
	unsigned int flags;		/* enum sva_cap_flags */
	unsigned int pasid_bits;
	uint64_t page_sizes;		/* bitmap of supported page sizes */
	unsigned int queue_depth;
	unsigned int prq_depth;
	unsigned int atc_entries;
	unsigned int fault_batch;
	uint32_t ops;			/* bitmap of 1 << enum sva_opcode */
	uint64_t max_xfer;		/* largest descriptor length */
	uint64_t devmem_size;		/* device-local memory (bytes), 0:
					 * none (no SVA_CAP_MIGRATE) */
	char container[16];		/* the IOMMU container a vfio device
					 * was opened through: "type1" or
					 * "iommufd"; "" on other backends */
	char pci_addr[32];		/* the PCI function a vfio device
					 * drives ("0000:00:04.0"); "" on
					 * other backends */
};

SVA_API int sva_dev_caps(const struct sva_dev *dev, struct sva_dev_caps *caps);

/*
 * Copy up to @n of @dev's reserved windows, sorted by address, into @out
 * (NULL when @n is 0). Returns how many the device has (which may exceed
 * @n) or a negative errno.
 */
SVA_API int sva_dev_reserved_regions(const struct sva_dev *dev,
				     struct sva_region *out, unsigned int n);

/* --------------------------------------------------------------- bindings */

struct sva_bind_opts {
	size_t sz;
	unsigned int flags;		/* none defined yet, must be 0 */
	unsigned int queue_depth;	/* 0 = device's queue_depth */
};

/*
 * Bind the calling process's mm to @dev. Every binding of one process gets
 * the same PASID on a device. A binding belongs to the process that made
 * it: used from a child after fork() every call fails with -EPERM.
 */
SVA_API int sva_bind(struct sva_dev *dev, const struct sva_bind_opts *opts,
		     struct sva_bind **bindp);
/* Drain queued work and outstanding faults, then free the binding. */
SVA_API int sva_unbind(struct sva_bind *bind);
SVA_API int sva_bind_pasid(const struct sva_bind *bind, uint32_t *pasid);

/* ------------------------------------------------------------------- work */

enum sva_opcode {
	SVA_OP_NOP = 0,
	SVA_OP_COPY = 1,	/* dst[0..len) = src[0..len) */
	SVA_OP_FILL = 2,	/* dst[0..len) = repeated 8-byte pattern */
	SVA_OP_COMPARE = 3,	/* result = 0 if src == dst, else 1 and
				 * bytes_done = offset of first difference */
	SVA_OP_CRC32C = 4,	/* result = crc32c(src, len) seeded by
				 * pattern */
	SVA_OP_PREFETCH = 5,	/* sva_migrate() of [src, src + len) to
				 * location pattern (SVA_LOC_*): result =
				 * pages at the target, bytes_done = len;
				 * FAULT_FAILURE if some page didn't move
				 * (needs SVA_CAP_MIGRATE: sva_migrate(3)) */
	SVA_OP_MAX,
};

enum sva_desc_flags {
	/* On a translation fault raise a page request and wait for the
	 * response instead of ending with a partial completion. */
	SVA_DESC_BLOCK_ON_FAULT = 1u << 0,
};

struct sva_desc {
	uint32_t opcode;	/* enum sva_opcode */
	uint32_t flags;		/* enum sva_desc_flags */
	uint32_t pasid;		/* must be the binding's PASID */
	uint32_t rsvd;		/* must be 0 */
	uint64_t src;		/* virtual addresses of the bound process */
	uint64_t dst;
	uint64_t len;
	uint64_t pattern;	/* FILL pattern, CRC32C seed */
	uint64_t user_data;	/* returned in the completion */
};

enum sva_status {
	SVA_STATUS_SUCCESS = 0,
	/* Translation fault without block-on-fault: bytes_done bytes are
	 * done, fault_addr is the first byte that was not accessible. Make
	 * it accessible and resubmit the rest (sva_desc_resume()). */
	SVA_STATUS_PAGE_FAULT = 1,
	/* Page request answered INVALID: the access violates the mapping
	 * (unmapped, PROT_NONE, write to read-only). Also, with no page
	 * request, an access to a reserved window of the device. */
	SVA_STATUS_FAULT_INVALID = 2,
	/* Page request answered FAILURE (no memory, poisoned page, ...). */
	SVA_STATUS_FAULT_FAILURE = 3,
	/* Not run, or stopped: the device is quarantined (fault storm). */
	SVA_STATUS_QUARANTINED = 4,
};

enum sva_fault_access {
	SVA_ACCESS_READ = 1u << 0,
	SVA_ACCESS_WRITE = 1u << 1,
};

struct sva_completion {
	uint64_t user_data;
	uint32_t status;	/* enum sva_status */
	uint32_t fault_access;	/* enum sva_fault_access, on faults */
	uint64_t bytes_done;
	uint64_t fault_addr;	/* on faults: the first byte not accessed */
	uint64_t result;	/* COMPARE / CRC32C result */
};

/*
 * Queue @n descriptors. Returns the number queued (fewer than @n when the
 * queue is full; -EAGAIN if none fit), or a negative errno when the first
 * descriptor is malformed (-EINVAL) or the binding is gone.
 */
SVA_API int sva_submit(struct sva_bind *bind, const struct sva_desc *descs,
		       unsigned int n);
/*
 * Reap up to @max completions, waiting until at least @min are available or
 * @timeout_ms passes (-1 waits forever). Returns the number reaped, which is
 * below @min only on timeout.
 */
SVA_API int sva_wait(struct sva_bind *bind, struct sva_completion *comps,
		     unsigned int max, unsigned int min, int timeout_ms);
/*
 * sva_submit() all @n (or none: -EAGAIN when they don't fit, -EINVAL when
 * a descriptor is malformed or fewer than @min would be in flight), then
 * sva_wait(). Waiting forever (-1), the caller may run them itself without
 * waking the queue worker: the fast path for one small descriptor.
 */
SVA_API int sva_submit_and_wait(struct sva_bind *bind,
				const struct sva_desc *descs, unsigned int n,
				struct sva_completion *comps, unsigned int max,
				unsigned int min, int timeout_ms);
/* Descriptors queued or running and not yet reaped. */
SVA_API int sva_inflight(const struct sva_bind *bind);
/* Stop / restart the binding's queue (work stays queued while stopped). */
SVA_API int sva_queue_stop(struct sva_bind *bind);
SVA_API int sva_queue_start(struct sva_bind *bind);
/*
 * Turn @desc into the descriptor for the part that @comp (a completion of
 * it with a fault status) did not do. Returns -EINVAL when nothing is left
 * or @comp reports no fault.
 */
SVA_API int sva_desc_resume(struct sva_desc *desc,
			    const struct sva_completion *comp);

/* ---------------------------------------------------------------- mirrors */

enum sva_page_state {
	SVA_PAGE_VALID = 1u << 0,	/* mapped and present */
	SVA_PAGE_WRITE = 1u << 1,	/* writable without a fault */
	SVA_PAGE_HUGE = 1u << 2,	/* part of a huge page (THP/hugetlb) */
	SVA_PAGE_ERROR = 1u << 3,	/* not mapped, or not accessible */
	/* In this device's local memory (with VALID): device accesses are
	 * local, a CPU access migrates it back. */
	SVA_PAGE_DEVICE_LOCAL = 1u << 4,
	/* In another device's memory (not VALID: an access faults). */
	SVA_PAGE_DEVICE_REMOTE = 1u << 5,
	/* In host memory, held exclusively by this device (with VALID):
	 * device atomics are local, any CPU access revokes it first
	 * (sva_make_exclusive(3)). */
	SVA_PAGE_EXCLUSIVE = 1u << 6,
};

enum sva_inval_event {
	SVA_INVAL_UNMAP = 1,		/* munmap */
	SVA_INVAL_DISCARD = 2,		/* MADV_DONTNEED / MADV_REMOVE */
	SVA_INVAL_REMAP = 3,		/* mremap moved the range */
	SVA_INVAL_RELEASE = 4,		/* the binding is going away */
	SVA_INVAL_PROTECT = 5,		/* mprotect (where it is seen) */
	SVA_INVAL_OTHER = 6,		/* migration, KSM, ... */
};

/*
 * Called after cached translations of [start, end) were dropped and the
 * mirror's sequence advanced to @seq (callbacks may cover a wider range
 * than one invalidation when many come at once). Runs on a libsva thread
 * with no library lock held: it may unmap and free memory and call
 * read_begin/read_retry/snapshot, the stats calls, submit/wait,
 * sva_mirror_register() and sva_mirror_unregister() (of its own mirror
 * too). sva_bind() and sva_unbind() fail there with -EDEADLK. See
 * sva_mirror_register(3).
 */
typedef void (*sva_inval_fn_t)(struct sva_mirror *mirror, uint64_t start,
			       uint64_t end, enum sva_inval_event event,
			       uint64_t seq, void *ctx);

struct sva_mirror_opts {
	size_t sz;
	sva_inval_fn_t invalidate;	/* may be NULL */
	void *ctx;
};

/* Mirror [addr, addr + len) (page aligned) for @bind's device. */
SVA_API int sva_mirror_register(struct sva_bind *bind, uint64_t addr,
				uint64_t len, const struct sva_mirror_opts *opts,
				struct sva_mirror **mirrorp);
SVA_API int sva_mirror_unregister(struct sva_mirror *mirror);
/*
 * Fill @states[i] (enum sva_page_state) for each page of [addr, addr+len),
 * which must lie inside the mirror. With @fault set, pages not valid (or not
 * writable when @fault is SVA_ACCESS_WRITE) are faulted in first, as a
 * device page request would; a page that can't be is reported as ERROR.
 */
SVA_API int sva_mirror_snapshot(struct sva_mirror *mirror, uint64_t addr,
				uint64_t len, uint8_t *states,
				unsigned int fault);
/*
 * read_begin/read_retry: take a sequence with read_begin(), snapshot, and
 * if read_retry() says the sequence moved, an invalidation raced with the
 * snapshot: take it again.
 */
/* read_begin() returns 0, never a valid sequence, on a NULL or inherited
 * (fork) mirror; read_retry() of 0 is always true. */
SVA_API uint64_t sva_mirror_read_begin(struct sva_mirror *mirror);
SVA_API bool sva_mirror_read_retry(struct sva_mirror *mirror, uint64_t seq);

/* ------------------------------------------- device memory and placement */

/*
 * Locations, as sva_migrate() targets and SVA_ATTR_PREFERRED_LOC values:
 * the binding's device memory, host memory on no node in particular, or
 * host memory on NUMA node n. See sva_migrate(3).
 */
#define SVA_LOC_NONE		0ull	/* no preference (attributes only) */
#define SVA_LOC_DEVICE		1ull	/* the binding's device memory */
#define SVA_LOC_HOST		2ull	/* host memory, any node */
#define SVA_LOC_HOST_NODE(n)	((((uint64_t)(n) + 1) << 32) | SVA_LOC_HOST)
/* The node of a SVA_LOC_HOST_NODE() location, -1 for SVA_LOC_HOST. */
#define SVA_LOC_NODE_OF(loc)	((int)((loc) >> 32) - 1)

/* Why pages were not moved: index of sva_migrate_result.not_moved[]. */
enum sva_migrate_reason {
	SVA_MIGRATE_UNMAPPED = 0,	/* no VMA there */
	SVA_MIGRATE_PROT_NONE = 1,	/* no access (PROT_NONE) */
	SVA_MIGRATE_READ_ONLY = 2,	/* read-only, which this backend
					 * can't move (sim) */
	SVA_MIGRATE_SHARED = 3,		/* MAP_SHARED, file or hugetlb
					 * memory: never moved */
	SVA_MIGRATE_PINNED = 4,		/* pinned, KSM, or shared
					 * copy-on-write with another mm */
	SVA_MIGRATE_NO_ROOM = 5,	/* device memory full of pages that
					 * can't be evicted now */
	SVA_MIGRATE_BUSY = 6,		/* the mapping changed under the
					 * migration (munmap, madvise) */
	SVA_MIGRATE_FOREIGN_UFFD = 7,	/* registered with another
					 * userfaultfd (the application's) */
	SVA_MIGRATE_HOST_NODE = 8,	/* move_pages() to the node failed */
	SVA_MIGRATE_UNSUPPORTED = 9,	/* memory this backend can't move
					 * (mlocked, executable, ...) */
	SVA_MIGRATE_REASON_MAX = 16,
};

struct sva_migrate_opts {
	size_t sz;
	uint64_t to;			/* SVA_LOC_DEVICE, SVA_LOC_HOST or
					 * SVA_LOC_HOST_NODE(n) */
	unsigned int flags;		/* none defined yet, must be 0 */
};

struct sva_migrate_result {
	size_t sz;
	uint64_t moved;			/* pages moved to the target */
	uint64_t already;		/* pages that were there already */
	uint64_t evicted;		/* other pages evicted for room */
	uint64_t not_moved[SVA_MIGRATE_REASON_MAX];	/* by reason */
};

/*
 * Migrate the pages of [addr, addr + len) (page aligned) to @opts->to,
 * synchronously. Returns 0 when every page is at the target, the number of
 * pages not moved (> 0, reasons in @res, which may be NULL) when some
 * weren't, or a negative errno (-EOPNOTSUPP without SVA_CAP_MIGRATE).
 */
SVA_API int sva_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
			const struct sva_migrate_opts *opts,
			struct sva_migrate_result *res);

/*
 * Give @bind's device exclusive access to the host pages of [addr, addr +
 * len) (page aligned), as make_device_exclusive_range() does: the pages
 * stay where they are but lose their CPU mapping, so the device may run
 * atomics on them without a CPU seeing a torn value; the first CPU access
 * (read or write) revokes the exclusivity and finds the data exact.
 * Pages in this device's memory count as already exclusive. Returns 0
 * when every page is held, the number of pages not made exclusive (> 0,
 * reasons in @res: moved counts pages made exclusive, already those that
 * were), or a negative errno (-EOPNOTSUPP without SVA_CAP_EXCLUSIVE).
 * @flags must be 0. See sva_make_exclusive(3).
 */
SVA_API int sva_make_exclusive(struct sva_bind *bind, uint64_t addr,
			       uint64_t len, unsigned int flags,
			       struct sva_migrate_result *res);

enum sva_range_attr_type {
	/* SVA_LOC_*: where CPU faults take pages back to (a host node),
	 * or the device (device page requests migrate pages there). */
	SVA_ATTR_PREFERRED_LOC = 1,
	/* 0/1: the device may only read (a device write faults INVALID). */
	SVA_ATTR_DEVICE_READ_ONLY = 2,
	/* 0/1: the device may not access at all (faults INVALID). */
	SVA_ATTR_NO_ACCESS = 3,
	/* 0/1: the device accesses in place: its page requests never
	 * migrate pages to it (preferred location notwithstanding). */
	SVA_ATTR_ACCESSED_BY = 4,
	/* log2 of the pages migrated together on a fault, 0..9. */
	SVA_ATTR_GRANULARITY = 5,
	SVA_ATTR_MAX,
};

struct sva_range_attr {
	uint32_t type;			/* enum sva_range_attr_type */
	uint32_t rsvd;			/* must be 0 */
	uint64_t value;
};

/*
 * Set @n attributes of [addr, addr + len) (page aligned) for @bind's
 * device, or get them: a get returns each attribute's value common to the
 * whole range (flags: 1 only if set on every page; PREFERRED_LOC:
 * SVA_LOC_NONE unless the same everywhere; GRANULARITY: the smallest).
 * Unknown types or values fail with -EINVAL, setting nothing.
 * See sva_range_set_attr(3) for what munmap, mremap and fork do.
 */
SVA_API int sva_range_set_attr(struct sva_bind *bind, uint64_t addr,
			       uint64_t len, const struct sva_range_attr *attrs,
			       unsigned int n);
SVA_API int sva_range_get_attr(struct sva_bind *bind, uint64_t addr,
			       uint64_t len, struct sva_range_attr *attrs,
			       unsigned int n);

/* ------------------------------------------------------------- statistics */

struct sva_stats {
	size_t sz;
	uint64_t translations;		/* translation requests (ATS) */
	uint64_t atc_hits;
	uint64_t atc_misses;
	uint64_t page_requests;		/* PRI page requests raised */
	uint64_t page_groups;		/* page request groups answered */
	uint64_t faults_resolved;	/* groups answered SUCCESS */
	uint64_t faults_failed;		/* groups answered INVALID/FAILURE */
	uint64_t invalidations;		/* ranges invalidated */
	uint64_t atc_invalidated;	/* ATC entries dropped by them */
	uint64_t prq_overflows;		/* page requests dropped, queue full */
	uint64_t descs_completed;
	uint64_t bytes_done;
	uint64_t quarantines;		/* times a fault storm quarantined */
	/* Device memory (sva_migrate(3)), in pages unless named bytes. */
	uint64_t migrated_to_dev;	/* pages moved into device memory */
	uint64_t migrated_to_host;	/* pages moved out of it to host */
	uint64_t bytes_to_dev;
	uint64_t bytes_to_host;
	uint64_t cpu_fault_migrations;	/* CPU faults that moved a page back */
	uint64_t evictions;		/* pages evicted for room (LRU) */
	uint64_t migrate_failures;	/* pages a migration didn't move */
	uint64_t devmem_accesses;	/* device page accesses served from
					 * device memory (no translation) */
	uint64_t exclusive_grants;	/* pages made device-exclusive */
	uint64_t exclusive_revokes;	/* exclusive pages a CPU access (or
					 * an invalidation) took back */
	/* An IOMMU domain kept by the library (vfio), in pages; 0 on
	 * other backends. */
	uint64_t iommu_pages_mapped;	/* pages mapped in the container */
	uint64_t iommu_pages_unmapped;	/* pages unmapped from it */
	uint64_t iotlb_unmaps;		/* unmaps that removed a mapping
					 * (each makes the IOMMU drop its
					 * IOTLB entries for it) */
	uint64_t pinned_now;		/* pages pinned now (mapped and not
					 * yet unmapped); not reset */
};

SVA_API int sva_bind_stats(const struct sva_bind *bind,
			   struct sva_stats *stats);
SVA_API int sva_bind_stats_reset(struct sva_bind *bind);
SVA_API int sva_dev_stats(const struct sva_dev *dev, struct sva_stats *stats);
SVA_API int sva_dev_stats_reset(struct sva_dev *dev);

/* -------------------------------------------------------- fault injection */

/*
 * Injection points of the runtime, for fault-injection tests: make the Nth
 * call at a point fail from now on. Process wide.
 */
enum sva_inject_point {
	SVA_INJECT_ALLOC,		/* memory allocation: -ENOMEM */
	SVA_INJECT_PASID,		/* PASID allocation at bind: -ENOSPC */
	SVA_INJECT_PRQ_FULL,		/* page request queue full: overflow */
	SVA_INJECT_FAULT_INVALID,	/* fault service answers INVALID */
	SVA_INJECT_FAULT_FAILURE,	/* fault service answers FAILURE */
	SVA_INJECT_VFIO_SKIP_UNMAP,	/* vfio: a page's IOMMU unmap skipped */
	SVA_INJECT_VFIO_IOMMUFD_BIND,	/* vfio: iommufd's device bind: -EBUSY */
	SVA_INJECT_MAX,
};

struct sva_inject_opts {
	size_t sz;
	unsigned int nth;	/* fail the nth call from now (1: the next) */
	unsigned int every;	/* then every Nth call after it, 0: once */
	unsigned int times;	/* at most this many failures, 0: no limit */
};

/* Arm @point (@opts NULL or nth 0 disarms it); resets its counts. */
SVA_API int sva_inject(enum sva_inject_point point,
		       const struct sva_inject_opts *opts);
/* Failures injected at @point since it was armed, or -EINVAL. */
SVA_API long sva_inject_count(enum sva_inject_point point);

/* ---------------------------------------------------------------- helpers */

/* Human name of an enum sva_status value. */
SVA_API const char *sva_status_str(uint32_t status);
/* CRC32C (Castagnoli) of @len bytes, as SVA_OP_CRC32C computes it. */
SVA_API uint32_t sva_crc32c(uint32_t seed, const void *buf, size_t len);
SVA_API const char *sva_version(void);

#ifdef __cplusplus
}
#endif

#endif /* SVA_SVA_H */
