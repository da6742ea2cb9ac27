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

/* struct sva_shim_snapshot.flags */
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
	__u64 rsvd[5];
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
 */
#define SVA_SHIM_EVENT_PAGE_REQUEST	1
#define SVA_SHIM_EVENT_INVALIDATE	2
#define SVA_SHIM_EVENT_LOST		3

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

#endif /* _UAPI_LINUX_SVA_SHIM_H */
