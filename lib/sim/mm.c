// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The IOMMU's view of this process's mm.
 *
 * Translations come from the CPU page table as /proc/self/pagemap shows it,
 * combined with the VMA's protection from /proc/self/maps. Invalidations
 * come from a userfaultfd registered (write-protect mode, which by itself
 * never blocks a CPU access) on every VMA the device touches, with the
 * non-cooperative UNMAP, REMOVE and REMAP events. munmap() and mremap() wait
 * until we have read their event, MADV_DONTNEED until we read it and then
 * zaps; we read it holding inval_lock for writing, so no translation they
 * killed stays cached once they return (a discard's range stays in
 * progress until its zap is seen: see "discards in progress").
 *
 * What the model can't see: mprotect() and fork() send no event. The device
 * never moves bytes itself, though: process_vm_readv/writev do it, and they
 * obey the current protections (a write to a page made read-only fails and
 * becomes a fault; a write to a page fork() made copy-on-write breaks the
 * sharing as a CPU write would). VMAs that can't be registered (most
 * file-backed private mappings) are translated on every access and never
 * cached, since no event would tell us of their unmap.
 *
 * Ranges holding pages moved to device memory (devmem.c) are registered
 * for missing faults as well, with the same fd: the event thread then also
 * reads CPU faults, and serves them after the events read with them.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pagemap_scan.h"
#include "sim.h"
#include "uffd_move.h"

#define PM_PRESENT (1ull << 63)
#define PM_FILE (1ull << 61)
#define PM_UFFD_WP (1ull << 57)
#define PM_EXCLUSIVE (1ull << 56)
#define PM_PFN ((1ull << 55) - 1)	/* 0 without CAP_SYS_ADMIN */

/* /proc/kpageflags bits */
#define KPF_ANON 12
#define KPF_SWAPBACKED 14

/*
 * PROCMAP_QUERY (Linux 6.11): one VMA from /proc/self/maps by address,
 * without reading the file. Debian 12's 6.1 headers lack it; the layout is
 * the kernel's ABI, copied from linux/fs.h.
 */
#ifndef PROCMAP_QUERY
struct procmap_query {
	__u64 size;
	__u64 query_flags;
	__u64 query_addr;
	__u64 vma_start;
	__u64 vma_end;
	__u64 vma_flags;
	__u64 vma_page_size;
	__u64 vma_offset;
	__u64 inode;
	__u32 dev_major;
	__u32 dev_minor;
	__u32 vma_name_size;
	__u32 build_id_size;
	__u64 vma_name_addr;
	__u64 build_id_addr;
};

#define PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define PROCMAP_QUERY_VMA_READABLE 0x01
#define PROCMAP_QUERY_VMA_WRITABLE 0x02
#define PROCMAP_QUERY_VMA_SHARED 0x08
#endif

/* One IOMMU view per process; a child after fork() builds its own. */
static pthread_mutex_t sim_mm_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_mm *the_mm;
/*
 * The memory of the last IOMMU view destroyed, kept (sim_mm_lock) for the
 * next: a process that binds and unbinds in a loop maps and faults in
 * none of it again. Freed when the last sim device closes.
 */
static struct sim_mm *mm_spare;

/* ---------------------------------------------------------------- VMAs */

static bool maps_line_parse(const char *line, struct sim_vma *vma)
{
	char *end;

	vma->start = strtoull(line, &end, 16);
	if (*end != '-')
		return false;
	vma->end = strtoull(end + 1, &end, 16);
	if (*end != ' ' || strlen(end) < 5)
		return false;
	vma->prot = (end[1] == 'r' ? SIM_PERM_R : 0) |
		    (end[2] == 'w' ? SIM_PERM_W : 0);
	vma->shared = end[4] == 's';
	/* "rw-p 00000000 fd:01 1234": a non-zero inode is a file. */
	{
		const char *f = end + 5;

		for (int field = 0; field < 3 && f; field++) {
			f = strchr(f + 1, ' ');
			while (f && f[1] == ' ')
				f++;
		}
		vma->file = f && strtoull(f + 1, NULL, 10) != 0;
	}
	vma->tracked = false;
	vma->big = true;	/* maps doesn't say */
	return true;
}

/*
 * Find the VMA around @addr in /proc/self/maps. No stdio and no malloc:
 * this runs under inval_lock, where freeing memory could trim the heap and
 * wait on the event thread that waits on us.
 */
static bool vma_read(uint64_t addr, struct sim_vma *out)
{
	char buf[8192], *line, *nl;
	size_t have = 0;
	bool found = false;
	ssize_t n;
	int fd;

	fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while (!found && (n = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
		have += (size_t)n;
		buf[have] = '\0';
		line = buf;
		while (!found && (nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (maps_line_parse(line, out) && addr >= out->start &&
			    addr < out->end)
				found = true;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
	close(fd);
	return found;
}

/*
 * The VMA around @addr as the kernel has it now: PROCMAP_QUERY where the
 * kernel has it (6.11+), else a walk of /proc/self/maps. No malloc (see
 * vma_read()).
 */
static bool vma_query(struct sim_mm *mm, uint64_t addr, struct sim_vma *out)
{
	struct procmap_query q = { .size = sizeof(q), .query_addr = addr };

	if (mm->maps < 0 || atomic_load(&mm->no_procmap_query))
		return vma_read(addr, out);
	if (ioctl(mm->maps, PROCMAP_QUERY, &q)) {
		if (errno == ENOENT)
			return false;	/* no VMA covers @addr */
		if (errno == ENOTTY || errno == EINVAL) {
			/* Before 6.11: parse the file from now on. */
			pr_debug("no PROCMAP_QUERY (%s): parsing maps\n",
				 strerror(errno));
			atomic_store(&mm->no_procmap_query, true);
		}
		return vma_read(addr, out);
	}
	out->start = q.vma_start;
	out->end = q.vma_end;
	out->prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? SIM_PERM_R : 0) |
		    (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? SIM_PERM_W : 0);
	out->shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED;
	out->file = q.inode != 0;
	out->tracked = false;
	out->big = q.vma_page_size > SVA_PAGE_SIZE;
	return true;
}

/* Does [start, end) overlap a range registered for missing faults? */
static bool missing_overlaps(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < mm->nmissing; i++)
		if (mm->missing[i].start < end && start < mm->missing[i].end)
			return true;
	return false;
}

static void vma_track(struct sim_mm *mm, struct sim_vma *vma)
{
	struct uffdio_register reg = {
		.range = { .start = vma->start, .len = vma->end - vma->start },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	/*
	 * Registering again replaces the mode: a VMA holding pages moved to
	 * device memory must keep its missing faults (devmem.c).
	 */
	if (missing_overlaps(mm, vma->start, vma->end))
		reg.mode |= UFFDIO_REGISTER_MODE_MISSING;

	if (mm->uffd >= 0 && !sim_mm_listen(mm) &&
	    !ioctl(mm->uffd, UFFDIO_REGISTER, &reg)) {
		vma->tracked = true;
		if (reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))
			atomic_store(&mm->can_probe, true);
	} else
		pr_debug("VMA %#llx-%#llx untracked: %s\n",
			 (unsigned long long)vma->start,
			 (unsigned long long)vma->end, strerror(errno));
}

/* Drop cached VMAs overlapping [start, end). Caller holds mm->lock. */
static void vmas_forget(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < mm->nr_vmas;) {
		if (mm->vmas[i].start < end && start < mm->vmas[i].end)
			mm->vmas[i] = mm->vmas[--mm->nr_vmas];
		else
			i++;
	}
}

/*
 * @addr's VMA from the kernel, registered with our userfaultfd where it
 * can be, and cached if that holds until an event says otherwise: a VMA
 * registered whole. The query and the registration race other threads'
 * munmap()s of parts not registered yet, which send no event: a part
 * unmapped between them is a hole the registration skips, and a stale
 * entry over it would keep a later mapping there unregistered. Once
 * registered, a VMA found whole again stays so until an event (which
 * forgets the entry). An untracked VMA isn't cached either (it may be
 * trackable when looked up again), but where nothing is (no
 * userfaultfd). Caller holds mm->lock.
 */
static bool vma_load(struct sim_mm *mm, uint64_t addr, struct sim_vma *out)
{
	struct sim_vma *slot, now;

	if (!vma_query(mm, addr, out))
		return false;
	vma_track(mm, out);
	if (out->tracked) {
		if (!vma_query(mm, addr, &now) || now.start != out->start ||
		    now.end != out->end || now.prot != out->prot) {
			out->tracked = false;
			return true;
		}
	} else if (mm->uffd >= 0) {
		return true;
	}
	/* Entries of what was there before (their event not read yet). */
	vmas_forget(mm, out->start, out->end);
	if (mm->nr_vmas < ARRAY_SIZE(mm->vmas))
		slot = &mm->vmas[mm->nr_vmas++];
	else
		slot = &mm->vmas[mm->vma_hand++ % ARRAY_SIZE(mm->vmas)];
	*slot = *out;
	return true;
}

/* Look @addr's VMA up in the cache, else load it. Caller holds mm->lock. */
static bool vma_get(struct sim_mm *mm, uint64_t addr, struct sim_vma *out)
{
	for (unsigned int i = 0; i < mm->nr_vmas; i++) {
		if (addr >= mm->vmas[i].start && addr < mm->vmas[i].end) {
			*out = mm->vmas[i];
			return true;
		}
	}
	return vma_load(mm, addr, out);
}

bool sim_mm_page_tracked(struct sim_mm *mm, uint64_t addr)
{
	struct sim_vma vma;
	bool tracked;

	sva__mutex_lock(&mm->lock);
	tracked = vma_get(mm, addr, &vma) && vma.tracked;
	sva__mutex_unlock(&mm->lock);
	return tracked;
}

void sim_mm_vma_forget(struct sim_mm *mm, uint64_t addr)
{
	sva__mutex_lock(&mm->lock);
	vmas_forget(mm, addr, addr + 1);
	sva__mutex_unlock(&mm->lock);
}

/*
 * Not from the cache: munmap() frees the range before its event is read,
 * so another thread's mapping at the same place can be found under the
 * entry of the old one until the event thread forgets it. A translation
 * cached meanwhile is dropped by that event (same range); a mirror
 * registered meanwhile would stay unregistered, deaf to its range's
 * munmap (seen in test_bind_unbind_storm_threads). So mirrors and
 * attributes look their VMAs up afresh.
 */
void sim_mm_track_range(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	struct sim_vma vma;

	sva__mutex_lock(&mm->lock);
	for (uint64_t a = start; a < end;)
		a = vma_load(mm, a, &vma) ? vma.end : a + SVA_PAGE_SIZE;
	sva__mutex_unlock(&mm->lock);
}

bool sim_mm_vma_now(struct sim_mm *mm, uint64_t addr, struct sim_vma *out)
{
	return vma_query(mm, addr, out);
}

/* Fault service only (prq.c); see sim.h. */
static bool pending_overlaps(struct sim_mm *mm, uint64_t start, uint64_t end);

uint64_t sim_mm_around_end(struct sim_mm *mm, uint64_t addr, uint64_t want,
			   unsigned int need)
{
	struct sim_vma now, vma = { 0 };
	bool have = false;
	uint64_t end = addr;

	sva__mutex_lock(&mm->lock);
	/*
	 * The VMA as it is now: mprotect() sends no event, so a cached one
	 * that differs is looked up (and tracked) afresh.
	 */
	if (vma_query(mm, addr, &now)) {
		have = vma_get(mm, addr, &vma);
		if (have && (vma.start != now.start || vma.end != now.end ||
			     vma.prot != now.prot)) {
			vmas_forget(mm, addr, addr + 1);
			have = vma_get(mm, addr, &vma);
		}
	}
	if (have && vma.tracked && (vma.prot & need) == need) {
		end = MIN(want, vma.end);
		for (unsigned int i = 0; i < mm->nmissing; i++) {
			if (mm->missing[i].start < end &&
			    addr < mm->missing[i].end)
				end = MAX(addr, mm->missing[i].start);
		}
	}
	sva__mutex_unlock(&mm->lock);
	/*
	 * Not into a discard in progress. Not retired here when its pages
	 * look absent: they are before the populate, whether or not the
	 * zap has come, and a zap after it would leave the ATC stale.
	 */
	if (end > addr && pending_overlaps(mm, addr, end))
		end = addr;
	return end;
}

/* Record [start, end) as registered for missing faults. mm->lock held. */
static int missing_add(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < mm->nmissing; i++) {
		if (mm->missing[i].start <= end && start <= mm->missing[i].end) {
			mm->missing[i].start = MIN(mm->missing[i].start, start);
			mm->missing[i].end = MAX(mm->missing[i].end, end);
			return 0;
		}
	}
	if (mm->nmissing == SIM_MISSING_MAX)
		return sva_err(-ENOSPC, "more than %u ranges hold device memory",
			       SIM_MISSING_MAX);
	mm->missing[mm->nmissing].start = start;
	mm->missing[mm->nmissing++].end = end;
	return 0;
}

/* munmap/mremap: [start, end) holds no registration of ours. */
static void missing_del(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	for (unsigned int i = 0; i < mm->nmissing;) {
		uint64_t s = mm->missing[i].start, e = mm->missing[i].end;

		if (e <= start || end <= s) {
			i++;
			continue;
		}
		/* Cut out the middle: keep what lies outside. */
		if (s < start && e > end && mm->nmissing < SIM_MISSING_MAX) {
			mm->missing[mm->nmissing].start = end;
			mm->missing[mm->nmissing++].end = e;
		}
		if (s < start) {
			mm->missing[i].end = start;
			i++;
		} else if (e > end) {
			mm->missing[i].start = end;
			i++;
		} else {
			mm->missing[i] = mm->missing[--mm->nmissing];
		}
	}
}

int sim_mm_register_missing(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = end - start },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};
	int err;

	sva__mutex_lock(&mm->lock);
	err = missing_add(mm, start, end);
	if (!err)
		err = sim_mm_listen(mm);
	if (!err && ioctl(mm->uffd, UFFDIO_REGISTER, &reg))
		err = -errno;
	/* The VMA was split: forget what we cached of it. */
	vmas_forget(mm, start, end);
	sva__mutex_unlock(&mm->lock);
	return err;
}

int sim_mm_pagemap(struct sim_mm *mm, uint64_t vpn, unsigned int n,
		   uint64_t *pm)
{
	ssize_t got = pread(mm->pagemap, pm, n * sizeof(pm[0]),
			    (off_t)(vpn * sizeof(pm[0])));

	if (got < 0)
		return -errno;
	memset((char *)pm + got, 0, n * sizeof(pm[0]) - (size_t)got);
	return 0;
}

/* ------------------------------------------------ discards in progress */

/*
 * UFFD_EVENT_REMOVE comes *before* the zap: madvise(MADV_DONTNEED) sends
 * it, sleeps until we have read it, then takes mmap_lock again and zaps.
 * (Measured on 6.18: right after the read, the page was still mapped in
 * about half of 200 rounds; the zap showed in pagemap 0.8 ms later on
 * average, 15 ms at worst, on a loaded 2-core machine.) Advancing the
 * sequences when the event is read is then like invalidate_range_start()
 * with nothing standing for invalidate_range_end(): a snapshot taken
 * between the read and the zap sees the doomed pages and read_retry()
 * accepts it.
 *
 * So the range stays an invalidation in progress from the read until its
 * zap is done, as the kernel keeps an mmu_interval_notifier's sequence odd
 * until invalidate_range_end(): read_begin/read_retry (sync) and snapshots
 * of the range wait for it, and no translation of it enters the ATC
 * meanwhile. No event marks the end, and the thread that called madvise()
 * can't be told apart, so the end is taken from either of:
 *
 *  - pagemap: each page seen not present, or present with another PFN than
 *    when the event was read (zapped and refaulted; PFNs are visible to
 *    CAP_SYS_ADMIN only), or lazily freed (MADV_FREE, in /proc/kpageflags:
 *    anonymous and no longer swap backed). Pages are checked in order,
 *    each once seen zapped.
 *  - the madvise() thread's own locking: woken by our read, it decrements
 *    the userfaultfd's mmap_changing count (which makes UFFDIO_WRITEPROTECT
 *    fail with EAGAIN while it is not zero, before it looks at anything
 *    else), then takes mmap_lock for reading (VMAs a userfaultfd is armed
 *    on never get the per-VMA lock) and zaps under it. So once the count
 *    is zero, taking mmap_lock for writing (brk(0) does, and changes
 *    nothing) waits for every such zap in progress. (Measured on 6.18: a
 *    page freed and refaulted at once got its old PFN back often enough
 *    that pagemap alone left 16% of ranges in progress to the timeout.)
 *
 * What remains: a page seen absent that is faulted in again before the
 * zap reaches it (a CPU access racing the madvise() of that very page); a
 * madvise() thread preempted between its decrement and its mmap_lock (a
 * few instructions), which the barrier may pass before; and, where
 * neither sign comes (no UFFDIO_WRITEPROTECT, events in flight without
 * end), SIM_PENDING_TIMEOUT_NS, after which the event thread retires the
 * range with a second invalidation (sequences advanced, callbacks told
 * again).
 */

static bool page_lazyfree(struct sim_mm *mm, uint64_t pfn)
{
	uint64_t f;

	if (mm->kpageflags < 0 || !pfn ||
	    pread(mm->kpageflags, &f, sizeof(f), (off_t)(pfn * sizeof(f))) !=
	    sizeof(f))
		return false;
	return (f & (1ull << KPF_ANON)) && !(f & (1ull << KPF_SWAPBACKED));
}

static bool page_zapped(struct sim_mm *mm, const struct sim_pending *p,
			uint64_t addr, uint64_t pm)
{
	uint64_t i = (addr - p->start) >> SVA_PAGE_SHIFT, pfn = pm & PM_PFN;

	/*
	 * Absent: zapped, if it was present when the event was read. If it
	 * was absent then too (or we don't know), pagemap can't tell: a
	 * populate since (the device's fault service, a CPU access) may yet
	 * be zapped, and the translation cached meanwhile would outlive it.
	 * The barrier or the time-out retires it.
	 */
	if (!(pm & PM_PRESENT))
		return i < SIM_PENDING_PFNS &&
		       (p->was_present[i / 64] >> (i % 64) & 1);
	if (i < SIM_PENDING_PFNS && p->pfn[i] && pfn && pfn != p->pfn[i])
		return true;
	return page_lazyfree(mm, pfn);
}

/* Move p->next past the pages seen zapped; true when all are. */
static bool pending_advance(struct sim_mm *mm, struct sim_pending *p)
{
	uint64_t pm[SIM_CHUNK_PAGES];
	unsigned int n;
	ssize_t got;

	while (p->next < p->end) {
		n = (unsigned int)MIN((p->end - p->next) >> SVA_PAGE_SHIFT,
				      (uint64_t)SIM_CHUNK_PAGES);
		got = pread(mm->pagemap, pm, n * sizeof(pm[0]),
			    (off_t)((p->next >> SVA_PAGE_SHIFT) * sizeof(pm[0])));
		if (got < 0)
			return true;	/* past the address space */
		memset((char *)pm + got, 0, n * sizeof(pm[0]) - (size_t)got);
		for (unsigned int i = 0; i < n; i++) {
			if (!page_zapped(mm, p, p->next, pm[i]))
				return false;
			p->next += SVA_PAGE_SIZE;
		}
	}
	return true;
}

static void pending_del_locked(struct sim_mm *mm, unsigned int i)
{
	unsigned int n = atomic_load(&mm->npend) - 1;

	mm->pend[i] = mm->pend[n];
	atomic_store(&mm->npend, n);
	pthread_cond_broadcast(&mm->pend_cv);
}

/*
 * Retire the discards seen done. With @close (the event thread), mark
 * those past their time closing and return how many; they are retired by
 * pending_close().
 */
static unsigned int pending_scan_locked(struct sim_mm *mm, bool close)
{
	uint64_t now = sva__now_ns();
	unsigned int closing = 0;

	for (unsigned int i = 0; i < atomic_load(&mm->npend);) {
		struct sim_pending *p = &mm->pend[i];

		if (!p->closing && pending_advance(mm, p)) {
			pending_del_locked(mm, i);
			continue;
		}
		if (close && !p->closing &&
		    now - p->since > SIM_PENDING_TIMEOUT_NS) {
			pr_debug("discard %#llx-%#llx not seen done: retired\n",
				 (unsigned long long)p->start,
				 (unsigned long long)p->end);
			p->closing = true;
		}
		closing += p->closing;
		i++;
	}
	return closing;
}

static bool pending_overlaps_locked(struct sim_mm *mm, uint64_t start,
				    uint64_t end)
{
	for (unsigned int i = 0; i < atomic_load(&mm->npend); i++)
		if (mm->pend[i].start < end && start < mm->pend[i].end)
			return true;
	return false;
}

/* A discard's event was read. Caller holds inval_lock for writing. */
static void pending_add(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	uint64_t pm[SIM_PENDING_PFNS];
	unsigned int n = atomic_load(&mm->npend), npages;
	struct sim_pending *p;
	ssize_t got;

	start &= SVA_PAGE_MASK;
	end = (end + SVA_PAGE_SIZE - 1) & SVA_PAGE_MASK;
	if (start >= end)
		return;
	sva__mutex_lock(&mm->pend_lock);
	if (n == SIM_PENDING_MAX) {
		/* Full: fold into the last one, whose PFNs are then lost. */
		p = &mm->pend[n - 1];
		start = MIN(start, p->start);
		end = MAX(end, p->end);
	} else {
		p = &mm->pend[n];
		atomic_store(&mm->npend, n + 1);
	}
	memset(p, 0, sizeof(*p));
	p->start = p->next = start;
	p->end = end;
	p->since = sva__now_ns();
	if (n < SIM_PENDING_MAX) {
		npages = (unsigned int)MIN((end - start) >> SVA_PAGE_SHIFT,
					   (uint64_t)SIM_PENDING_PFNS);
		got = pread(mm->pagemap, pm, npages * sizeof(pm[0]),
			    (off_t)((start >> SVA_PAGE_SHIFT) * sizeof(pm[0])));
		for (unsigned int i = 0; got > 0 && i < got / sizeof(pm[0]);
		     i++) {
			p->pfn[i] = pm[i] & PM_PRESENT ? pm[i] & PM_PFN : 0;
			if (pm[i] & PM_PRESENT)
				p->was_present[i / 64] |= 1ull << (i % 64);
		}
	}
	sva__mutex_unlock(&mm->pend_lock);
}

/*
 * [start, end) was unmapped: a discard in progress inside it is over (the
 * unmap, under mmap_lock for writing, came after any zap of it). Without
 * this, a page mapped there again soon after, with the PFN it had before
 * (pages freed and faulted in again often get theirs back), kept the range
 * busy until the barrier's grace. Event thread, inval_lock held.
 */
static void pending_unmapped(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	if (!atomic_load(&mm->npend))
		return;
	sva__mutex_lock(&mm->pend_lock);
	for (unsigned int i = 0; i < atomic_load(&mm->npend);) {
		struct sim_pending *p = &mm->pend[i];

		if (!p->closing && start <= p->start && p->end <= end)
			pending_del_locked(mm, i);
		else
			i++;
	}
	sva__mutex_unlock(&mm->pend_lock);
}

/* Does [start, end) overlap a discard in progress? */
static bool pending_overlaps(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	bool ret;

	if (!atomic_load(&mm->npend))
		return false;
	sva__mutex_lock(&mm->pend_lock);
	ret = pending_overlaps_locked(mm, start, end);
	sva__mutex_unlock(&mm->pend_lock);
	return ret;
}

static void pending_barrier_locked(struct sim_mm *mm);

bool sim_mm_discard_pending(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	bool ret;

	if (!atomic_load(&mm->npend))
		return false;
	/*
	 * Look for the zap now, as pending_wait() does: the event thread
	 * waits a tick before it looks (pending_scan_locked()), and a
	 * migration right after a discard returned would find the range
	 * still busy.
	 */
	sva__mutex_lock(&mm->pend_lock);
	ret = pending_overlaps_locked(mm, start, end);
	if (ret) {
		pending_scan_locked(mm, false);
		ret = pending_overlaps_locked(mm, start, end);
	}
	sva__mutex_unlock(&mm->pend_lock);
	return ret;
}

/* Wait until no discard in progress overlaps [start, end). */
static void pending_wait(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	struct timespec ts;

	if (!atomic_load(&mm->npend))
		return;
	sva__mutex_lock(&mm->pend_lock);
	for (;;) {
		pending_scan_locked(mm, false);
		pending_barrier_locked(mm);
		if (!pending_overlaps_locked(mm, start, end))
			break;
		/* Nothing signals a zap: look again in a while. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 200000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		sva__cond_timedwait(&mm->pend_cv, &mm->pend_lock, &ts);
	}
	sva__mutex_unlock(&mm->pend_lock);
}

/* ------------------------------------------------------- translations */

static unsigned int pte_perm(uint64_t pm, const struct sim_vma *vma)
{
	unsigned int perm = 0;

	if (!(pm & PM_PRESENT))
		return 0;
	if (vma->prot & SIM_PERM_R)
		perm |= SIM_PERM_R;
	/*
	 * The PTE's write bit isn't in pagemap. A shared mapping's present
	 * page is writable if the VMA is; a private one's only if it's an
	 * anonymous page mapped once (not the zero page, not shared
	 * copy-on-write, not page cache awaiting its copy). A page
	 * write-protected by a userfaultfd (the application's) faults.
	 */
	if ((vma->prot & SIM_PERM_W) && !(pm & PM_UFFD_WP) &&
	    (vma->shared || ((pm & PM_EXCLUSIVE) && !(pm & PM_FILE))))
		perm |= SIM_PERM_W;
	return perm;
}

/*
 * With @fresh, VMAs come from the kernel, not the cache: protections
 * changed by mprotect() (which sends no event) are seen.
 */
static int mm_translate(struct sim_mm *mm, uint64_t vpn, unsigned int n,
			uint8_t *perms, bool *tracked, bool fresh)
{
	uint64_t pm[SIM_CHUNK_PAGES];
	struct sim_vma vma = { 0 };
	bool have_vma = false;
	ssize_t got;

	if (n > SIM_CHUNK_PAGES)
		return -EINVAL;
	got = pread(mm->pagemap, pm, n * sizeof(pm[0]),
		    (off_t)(vpn * sizeof(pm[0])));
	if (got < 0)
		return -errno;
	/* Past the end of the address space: nothing is mapped there. */
	memset((char *)pm + got, 0, n * sizeof(pm[0]) - (size_t)got);

	*tracked = true;
	sva__mutex_lock(&mm->lock);
	for (unsigned int i = 0; i < n; i++) {
		uint64_t addr = (vpn + i) << SVA_PAGE_SHIFT;

		if (!have_vma || addr < vma.start || addr >= vma.end)
			have_vma = fresh ? vma_query(mm, addr, &vma) :
					   vma_get(mm, addr, &vma);
		if (!have_vma) {
			perms[i] = SIM_PERM_NONE;
			*tracked = false;
			continue;
		}
		if (!vma.tracked)
			*tracked = false;
		perms[i] = (uint8_t)(pte_perm(pm[i], &vma) |
				     (vma.prot & SIM_PERM_R ? 0 : SIM_PERM_NONE));
	}
	sva__mutex_unlock(&mm->lock);
	/* A discard in progress: its zap may not have happened yet. */
	if (*tracked && pending_overlaps(mm, vpn << SVA_PAGE_SHIFT,
					 (vpn + n) << SVA_PAGE_SHIFT))
		*tracked = false;
	return 0;
}

int sim_mm_translate(struct sim_mm *mm, uint64_t vpn, unsigned int n,
		     uint8_t *perms, bool *tracked)
{
	return mm_translate(mm, vpn, n, perms, tracked, false);
}

/*
 * Snapshots. One pread of pagemap per SIM_SNAP_BLOCK pages and one VMA
 * query per VMA give every state but HUGE: pagemap has no bit for a page
 * mapped by a PMD. PAGEMAP_SCAN (6.7) reports those, but walks every PTE
 * of what it scans at a fraction of pread's speed, so it scans only the
 * 2 MiB blocks that can be PMD mapped: every page present and, where
 * PFNs are visible (CAP_SYS_ADMIN), each at its offset from one 512-page
 * aligned PFN, as a PMD maps them. Without PFNs, every block all present
 * is scanned; hugetlb VMAs (and all, where PROCMAP_QUERY can't tell) are
 * scanned whole; without PAGEMAP_SCAN, no page is reported huge.
 */
#define SIM_SNAP_BLOCK 1024		/* pagemap entries read at once */
#define SIM_PMD_PAGES 512ull		/* pages a PMD maps (4 KiB pages) */
#define SIM_SNAP_SCANS 16		/* ranges to scan, then folded */

struct snap_huge {
	struct { uint64_t start, end; } r[SIM_SNAP_SCANS];
	unsigned int n;
	uint64_t blk;			/* 2 MiB block being looked at */
	uint64_t base;			/* its PFN base (0: PFNs hidden) */
	bool cand;			/* it can still be PMD mapped */
};

/*
 * [start, end) may hold huge pages: scan it. Ranges come in order of their
 * start, but for a 2 MiB block straddling VMAs, whose part before the last
 * range's start can't be PMD mapped (a PMD maps one VMA's pages).
 */
static void snap_huge_add(struct snap_huge *h, uint64_t start, uint64_t end)
{
	/* Touching the last, or no room left (a wider scan only costs
	 * more): the last grows. */
	if (h->n && (h->r[h->n - 1].end >= start || h->n == SIM_SNAP_SCANS)) {
		h->r[h->n - 1].end = MAX(h->r[h->n - 1].end, end);
		return;
	}
	h->r[h->n].start = start;
	h->r[h->n++].end = end;
}

/* Page @vpn (in order, none skipped) has pagemap entry @pm, or no VMA
 * (@pm 0). [lo, hi): the snapshot's pages. */
static void snap_huge_page(struct snap_huge *h, uint64_t vpn, uint64_t pm,
			   uint64_t lo, uint64_t hi)
{
	uint64_t blk = vpn / SIM_PMD_PAGES, pfn = pm & PM_PFN;
	uint64_t base = pfn ? pfn - vpn % SIM_PMD_PAGES : 0;

	if (blk != h->blk) {
		h->blk = blk;
		h->base = base;
		h->cand = !(base % SIM_PMD_PAGES);
	}
	if (h->cand && (!(pm & PM_PRESENT) || base != h->base))
		h->cand = false;
	/* Its last page in the snapshot: scan it if it still can be. */
	if (h->cand && (vpn % SIM_PMD_PAGES == SIM_PMD_PAGES - 1 ||
			vpn + 1 == hi))
		snap_huge_add(h, MAX(blk * SIM_PMD_PAGES, lo) << SVA_PAGE_SHIFT,
			      (vpn + 1) << SVA_PAGE_SHIFT);
}

static void snapshot_huge(struct sim_mm *mm, const struct snap_huge *h,
			  uint64_t addr, uint8_t *states)
{
	struct page_region regs[32];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.vec = (uintptr_t)regs,
		.vec_len = ARRAY_SIZE(regs),
		.category_anyof_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	int n;

	for (unsigned int r = 0; r < h->n; r++) {
		arg.start = h->r[r].start;
		arg.end = h->r[r].end;
		while (arg.start < arg.end) {
			n = ioctl(mm->pagemap, PAGEMAP_SCAN, &arg);
			if (n < 0)
				return;	/* before 6.7: huge pages aren't reported */
			for (int i = 0; i < n; i++)
				for (uint64_t a = regs[i].start; a < regs[i].end;
				     a += SVA_PAGE_SIZE) {
					uint8_t *st = &states[(a - addr) >> SVA_PAGE_SHIFT];

					/* An error page is an error, nothing more. */
					if (!(*st & SVA_PAGE_ERROR))
						*st |= SVA_PAGE_HUGE;
				}
			if (arg.walk_end <= arg.start)
				break;
			arg.start = arg.walk_end;
		}
	}
}

/* The state of a page of @vma whose pagemap entry is @pm (HUGE aside). */
static uint8_t snap_state(uint64_t pm, const struct sim_vma *vma)
{
	unsigned int perm;

	/* A VMA the device may not read: error. */
	if (!(vma->prot & SIM_PERM_R))
		return SVA_PAGE_ERROR;
	perm = pte_perm(pm, vma);
	return (uint8_t)((perm & SIM_PERM_R ? SVA_PAGE_VALID : 0) |
			 (perm & SIM_PERM_W ? SVA_PAGE_WRITE : 0));
}

int sim_mm_snapshot(struct sim_mm *mm, uint64_t addr, uint64_t len,
		    uint8_t *states)
{
	uint64_t lo = addr >> SVA_PAGE_SHIFT, hi = (addr + len) >> SVA_PAGE_SHIFT;
	struct snap_huge h = { .blk = UINT64_MAX };
	uint64_t pm[SIM_SNAP_BLOCK], vpn = lo, seg;
	struct sim_vma vma;
	ssize_t got;

	/* Not while a discard of the range may still be zapping it. */
	pending_wait(mm, addr, addr + len);
	while (vpn < hi) {
		/* The VMA as it is now, not as cached: mprotect() sends no
		 * event. No VMA: an error page. */
		if (!vma_query(mm, vpn << SVA_PAGE_SHIFT, &vma)) {
			states[vpn - lo] = SVA_PAGE_ERROR;
			snap_huge_page(&h, vpn, 0, lo, hi);
			vpn++;
			continue;
		}
		seg = MIN(hi, vma.end >> SVA_PAGE_SHIFT);
		/* hugetlb (or can't tell): PAGEMAP_SCAN says HUGE for its
		 * pages, present or not; scan it whole, as before. */
		if (vma.big)
			snap_huge_add(&h, vpn << SVA_PAGE_SHIFT,
				      seg << SVA_PAGE_SHIFT);
		while (vpn < seg) {
			unsigned int n = (unsigned int)MIN(seg - vpn,
						(uint64_t)SIM_SNAP_BLOCK);

			got = pread(mm->pagemap, pm, n * sizeof(pm[0]),
				    (off_t)(vpn * sizeof(pm[0])));
			if (got < 0)
				return -errno;
			/* Past the end of the address space: nothing mapped. */
			memset((char *)pm + got, 0,
			       n * sizeof(pm[0]) - (size_t)got);
			for (unsigned int i = 0; i < n; i++) {
				states[vpn + i - lo] = snap_state(pm[i], &vma);
				snap_huge_page(&h, vpn + i, pm[i], lo, hi);
			}
			vpn += n;
		}
	}
	snapshot_huge(mm, &h, addr, states);
	return 0;
}

/* -------------------------------------------------------- invalidation */

/*
 * Drop what the device caches of [start, end) and advance the sequences.
 * Caller: inval_lock write.
 */
static void mm_invalidate_locked(struct sim_mm *mm, uint64_t start,
				 uint64_t end, enum sva_inval_event ev)
{
	struct sim_bind *sb;
	unsigned int n;

	atomic_fetch_add(&mm->inval_gen, 1);
	sva__mutex_lock(&mm->lock);
	vmas_forget(mm, start, end);
	sva__mutex_unlock(&mm->lock);
	/*
	 * Each binding pinned (sb->notifying), no lock of ours held, while
	 * its sequences advance: that takes its mirror_lock, which a
	 * callback may hold, and binding or unbinding others must go on.
	 */
	sva__mutex_lock(&mm->notify_lock);
	list_for_each_entry(sb, &mm->binds, mm_node) {
		sb->notifying++;
		sva__mutex_unlock(&mm->notify_lock);
		n = sb->foreign ? 0 :
		    sim_atc_invalidate(&sim_dev_of(sb->bind)->atc, mm->pasid,
				       start >> SVA_PAGE_SHIFT,
				       (end + SVA_PAGE_SIZE - 1) >>
				       SVA_PAGE_SHIFT);
		sva__count(sb->bind, SVA_C_ATC_INVALIDATED, n);
		sva__count(sb->bind, SVA_C_INVALIDATIONS, 1);
		if (sva__tracing(sb->bind->dev))
			sva__trace_inval(sb->bind, start, end, ev, n);
		sva__mirrors_advance(sb->bind, start, end);
		sva__mutex_lock(&mm->notify_lock);
		if (!--sb->notifying)
			pthread_cond_broadcast(&mm->notify_cv);
	}
	sva__mutex_unlock(&mm->notify_lock);
}

void sim_mm_advance(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	struct sim_bind *sb;

	/* Pinned as in mm_invalidate_locked(): no lock of ours held while
	 * each binding's mirror_lock is taken (it guards short walks only). */
	sva__mutex_lock(&mm->notify_lock);
	list_for_each_entry(sb, &mm->binds, mm_node) {
		sb->notifying++;
		sva__mutex_unlock(&mm->notify_lock);
		sva__mirrors_advance(sb->bind, start, end);
		sva__mutex_lock(&mm->notify_lock);
		if (!--sb->notifying)
			pthread_cond_broadcast(&mm->notify_cv);
	}
	sva__mutex_unlock(&mm->notify_lock);
}

void sim_mm_invalidate(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	sva__rwlock_wrlock(&mm->inval_lock);
	mm_invalidate_locked(mm, start, end, SVA_INVAL_OTHER);
	sva__rwlock_unlock(&mm->inval_lock);
	sim_notify_push(mm, start, end, SVA_INVAL_OTHER);
}

void sim_mm_sync(struct sim_mm *mm)
{
	sva__rwlock_rdlock(&mm->inval_lock);
	sva__rwlock_unlock(&mm->inval_lock);
	pending_wait(mm, 0, UINT64_MAX);
}

/*
 * Retire the discards past their time: invalidate them again (their zap
 * may have come after everything we told of the first time), then let the
 * waiters go. Event thread only.
 */
/*
 * Is a madvise()/munmap() whose event was sent not yet past its wake-up?
 * UFFDIO_WRITEPROTECT checks the mmap_changing count first: EAGAIN while
 * it isn't zero; else the invalid mode fails it with EINVAL, doing nothing.
 */
static bool mm_changing(struct sim_mm *mm, uint64_t addr)
{
	struct uffdio_writeprotect wp = {
		.range = { addr & SVA_PAGE_MASK, SVA_PAGE_SIZE },
		.mode = 1ull << 63,
	};

	return ioctl(mm->uffd, UFFDIO_WRITEPROTECT, &wp) && errno == EAGAIN;
}

/*
 * Every discard whose event we read has passed its wake-up: take mmap_lock
 * for writing once, which waits for their zaps, and release them all.
 * Caller holds pend_lock: no discard is added meanwhile.
 */
static void pending_barrier_locked(struct sim_mm *mm)
{
	unsigned int n = atomic_load(&mm->npend);
	uint64_t now;

	if (!n || !atomic_load(&mm->can_probe) ||
	    mm_changing(mm, mm->pend[0].start))
		return;
	syscall(SYS_brk, 0);	/* mmap_write_lock(); no change */
	/*
	 * Only discards whose event was read SIM_PENDING_GRACE_NS ago: a
	 * madvise() thread preempted between its decrement and its
	 * mmap_lock (seen in a TCG guest on a loaded host, where a vCPU
	 * stalls for milliseconds) would otherwise be passed by the barrier
	 * before it zaps. Younger ones wait for pagemap or a later barrier.
	 */
	now = sva__now_ns();
	for (unsigned int i = 0; i < atomic_load(&mm->npend);) {
		if (!mm->pend[i].closing &&
		    now - mm->pend[i].since >= SIM_PENDING_GRACE_NS)
			pending_del_locked(mm, i);
		else
			i++;
	}
}

static void pending_close(struct sim_mm *mm)
{
	struct { uint64_t start, end; } c[SIM_PENDING_MAX];
	unsigned int n = 0, closing;

	sva__mutex_lock(&mm->pend_lock);
	/* Zaps pagemap shows done first: the barrier (mmap_lock for
	 * writing, which the application's next mmap or madvise would wait
	 * behind) only for what remains. */
	closing = pending_scan_locked(mm, true);
	pending_barrier_locked(mm);
	if (closing) {
		for (unsigned int i = 0; i < atomic_load(&mm->npend); i++) {
			if (!mm->pend[i].closing)
				continue;
			c[n].start = mm->pend[i].start;
			c[n++].end = mm->pend[i].end;
		}
	}
	sva__mutex_unlock(&mm->pend_lock);
	if (!n)
		return;
	sva__rwlock_wrlock(&mm->inval_lock);
	for (unsigned int i = 0; i < n; i++)
		mm_invalidate_locked(mm, c[i].start, c[i].end,
				     SVA_INVAL_DISCARD);
	sva__rwlock_unlock(&mm->inval_lock);
	/* Only this thread closes: the closing entries are still there. */
	sva__mutex_lock(&mm->pend_lock);
	for (unsigned int i = 0; i < atomic_load(&mm->npend);) {
		if (mm->pend[i].closing)
			pending_del_locked(mm, i);
		else
			i++;
	}
	sva__mutex_unlock(&mm->pend_lock);
	for (unsigned int i = 0; i < n; i++)
		sim_notify_push(mm, c[i].start, c[i].end, SVA_INVAL_DISCARD);
}

struct inval {
	uint64_t start, end;
	enum sva_inval_event ev;
	uint64_t to;		/* REMAP's old place: where it went, else 0 */
};

/* Turn one userfaultfd event into up to two invalidated ranges. */
static int msg_to_invals(const struct uffd_msg *msg, struct inval *inv)
{
	switch (msg->event) {
	case UFFD_EVENT_UNMAP:
	case UFFD_EVENT_REMOVE:
		inv[0].start = msg->arg.remove.start;
		inv[0].end = msg->arg.remove.end;
		inv[0].ev = msg->event == UFFD_EVENT_UNMAP ?
			    SVA_INVAL_UNMAP : SVA_INVAL_DISCARD;
		inv[0].to = 0;
		return 1;
	case UFFD_EVENT_REMAP:
		/* Old place loses its pages; the new one's VMA is new. */
		inv[0].start = msg->arg.remap.from;
		inv[0].end = msg->arg.remap.from + msg->arg.remap.len;
		inv[0].ev = SVA_INVAL_REMAP;
		inv[0].to = msg->arg.remap.to;
		inv[1].to = 0;
		inv[1].start = msg->arg.remap.to;
		inv[1].end = msg->arg.remap.to + msg->arg.remap.len;
		inv[1].ev = SVA_INVAL_REMAP;
		return 2;
	default:
		return 0;
	}
}

/* A CPU fault on a range registered for missing faults (devmem.c). */
static void mm_fault(struct sim_mm *mm, uint64_t addr)
{
	addr &= SVA_PAGE_MASK;
	if (sim_devmem_fault(mm, addr))
		return;
	/* The room was made sure of before the read (poll). */
	mm->deferred[mm->ndeferred++] = addr;
}

static void mm_faults_retry(struct sim_mm *mm)
{
	unsigned int n = mm->ndeferred, kept = 0;

	for (unsigned int i = 0; i < n; i++)
		if (!sim_devmem_fault(mm, mm->deferred[i]))
			mm->deferred[kept++] = mm->deferred[i];
	mm->ndeferred = kept;
}

/*
 * An event reached device memory and range attributes: munmap and mremap
 * forget the attributes of the old place (as KFD does), a discard drops
 * the pages in device memory, mremap moves them with the range.
 */
static void mm_devmem_event(struct sim_mm *mm, const struct inval *inv)
{
	struct sim_bind *sb;
	uint64_t len = inv->end - inv->start;

	if (inv->ev == SVA_INVAL_DISCARD || inv->ev == SVA_INVAL_UNMAP)
		sim_devmem_drop(mm, inv->start, inv->end,
				inv->ev == SVA_INVAL_UNMAP);
	else if (inv->ev == SVA_INVAL_REMAP && inv->to)
		sim_devmem_remap(mm, inv->start, inv->to, len);
	else
		return;
	if (inv->ev == SVA_INVAL_DISCARD)
		return;
	sva__mutex_lock(&mm->lock);
	if (inv->ev == SVA_INVAL_REMAP &&
	    missing_overlaps(mm, inv->start, inv->end))
		missing_add(mm, inv->to, inv->to + len);
	missing_del(mm, inv->start, inv->end);
	sva__mutex_unlock(&mm->lock);
	sva__mutex_lock(&mm->notify_lock);
	list_for_each_entry(sb, &mm->binds, mm_node)
		sva__range_attrs_drop(&sb->bind->attrs, inv->start, inv->end);
	sva__mutex_unlock(&mm->notify_lock);
}

#define SIM_EVENTS_READ 16		/* userfaultfd messages read at once */

/*
 * Read the events queued on our userfaultfd and act on them. Reading an
 * event lets the munmap/madvise behind it go on: read it with device
 * accesses shut out, drop the translations, then let them in again.
 */
static void mm_read_events(struct sim_mm *mm)
{
	struct uffd_msg msgs[SIM_EVENTS_READ];
	struct inval inv[2 * SIM_EVENTS_READ];
	uint64_t faults[SIM_EVENTS_READ];
	int n, ninv = 0, nfaults = 0;

	sva__rwlock_wrlock(&mm->inval_lock);
	n = (int)read(mm->uffd, msgs, sizeof(msgs));
	for (int i = 0; n > 0 && i < n / (int)sizeof(msgs[0]); i++) {
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			faults[nfaults++] = msgs[i].arg.pagefault.address;
		else
			ninv += msg_to_invals(&msgs[i], &inv[ninv]);
	}
	for (int i = 0; i < ninv; i++) {
		mm_invalidate_locked(mm, inv[i].start, inv[i].end, inv[i].ev);
		/* Its zap comes after this read: in progress. */
		if (inv[i].ev == SVA_INVAL_DISCARD &&
		    !sim_devmem_in_arena(mm, inv[i].start, inv[i].end))
			pending_add(mm, inv[i].start, inv[i].end);
		else if (inv[i].ev == SVA_INVAL_UNMAP ||
			 (inv[i].ev == SVA_INVAL_REMAP && inv[i].to))
			/* Unmapped, or mremap()ed away from there. */
			pending_unmapped(mm, inv[i].start, inv[i].end);
		/*
		 * Device memory and attributes follow the event before any
		 * fault read with it is served, and before a sync
		 * (inval_lock) lets a caller look: a page unmapped or
		 * discarded leaves device memory, one mremap()ed is found
		 * at its new address. (A fault on a range that is changing
		 * fails with EAGAIN until its event was read, and is
		 * deferred.)
		 */
		mm_devmem_event(mm, &inv[i]);
	}
	sva__rwlock_unlock(&mm->inval_lock);
	for (int i = 0; i < nfaults; i++)
		mm_fault(mm, faults[i]);
	for (int i = 0; i < ninv; i++)
		sim_notify_push(mm, inv[i].start, inv[i].end, inv[i].ev);
}

static void *mm_event_thread(void *arg)
{
	struct sim_mm *mm = arg;
	struct pollfd pfd[2] = {
		{ .fd = mm->uffd, .events = POLLIN },
		{ .fd = mm->stop_fd, .events = POLLIN },
	};

	sva__trace_set_role(SVA_ROLE_MM_EVENTS);
	for (;;) {
		/* Room for a full read of faults we may have to defer. */
		pfd[0].events = mm->ndeferred + SIM_EVENTS_READ <=
				SIM_DEFERRED_MAX ? POLLIN : 0;
		/* While a discard is in progress, look for its zap often;
		 * faults deferred are tried again as often. */
		if (poll(pfd, 2, atomic_load(&mm->npend) || mm->ndeferred ?
			 1 : -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (atomic_load(&mm->npend))
			pending_close(mm);
		if (mm->ndeferred)
			mm_faults_retry(mm);
		if (pfd[1].revents) {
			/*
			 * Stop hearing events before this thread winds down:
			 * its exit may unmap memory (sanitizers do) in a VMA
			 * we registered, and nobody would read that event.
			 * The last close unregisters every VMA.
			 */
			close(mm->uffd);
			mm->uffd = -1;
			break;
		}
		/*
		 * Earlier discards' zaps are looked for before the events
		 * are read: a discard read now is looked at at the next
		 * wake-up at the earliest, when the madvise() it woke has
		 * had time to zap (a page present at the read and absent
		 * now counts as zapped; see page_zapped()).
		 */
		if (pfd[0].revents & POLLIN)
			mm_read_events(mm);
	}
	return NULL;
}

int sim_mm_listen(struct sim_mm *mm)
{
	int err = 0;

	if (atomic_load(&mm->listening) || mm->uffd < 0)
		return 0;
	sva__mutex_lock(&mm->start_lock);
	if (!atomic_load(&mm->listening)) {
		/* No message here: callers may hold mm->lock, and a print
		 * hook is user code. */
		err = sva__thread_create(&mm->thread, "sva-mm-events",
					 mm_event_thread, mm);
		if (!err)
			atomic_store(&mm->listening, true);
	}
	sva__mutex_unlock(&mm->start_lock);
	return err;
}

/*
 * Our userfaultfd. Full mode (faults from the kernel too: read(2) into a
 * page in device memory must fault it back, not fail) where we may have
 * it; user-mode-only works without privilege where that isn't allowed,
 * but then no page may leave its place (no migration). Sets *full when
 * the fd can serve device memory (full mode and UFFD_FEATURE_MOVE).
 */
static int uffd_open(bool *full)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP |
			    UFFD_FEATURE_EVENT_REMOVE |
			    UFFD_FEATURE_EVENT_REMAP,
	};
	int fd;

	*full = true;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		*full = false;
		fd = (int)syscall(SYS_userfaultfd,
				  O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	}
	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int err = -errno;

		close(fd);
		return err;
	}
	/* The kernel answers with every feature it has. */
	if (!(api.features & UFFD_FEATURE_MOVE))
		*full = false;
	return fd;
}

int sim_uffd_probe_move(void)
{
	bool full;
	int fd = uffd_open(&full);

	if (fd < 0)
		return fd;
	close(fd);
	return full ? 0 : -EOPNOTSUPP;
}

/* Under AddressSanitizer, from its heap instead: it then sees overflows
 * and leaks of these buffers. */
#if defined(__SANITIZE_ADDRESS__)
#define SIM_PAGES_FROM_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_PAGES_FROM_HEAP 1
#endif
#endif

void *sim_pages_alloc(size_t len)
{
#ifdef SIM_PAGES_FROM_HEAP
	return sva__zalloc(len);
#else
	void *p;

	if (sva__inject(SVA_INJECT_ALLOC))
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
#endif
}

void sim_pages_free(void *p, size_t len)
{
#ifdef SIM_PAGES_FROM_HEAP
	(void)len;
	free(p);
#else
	if (p)
		munmap(p, len);
#endif
}

static void mm_destroy(struct sim_mm *mm)
{
	if (mm->uffd >= 0)
		close(mm->uffd);	/* unregisters every VMA */
	if (mm->stop_fd >= 0)
		close(mm->stop_fd);
	if (mm->pagemap >= 0)
		close(mm->pagemap);
	if (mm->kpageflags >= 0)
		close(mm->kpageflags);
	if (mm->maps >= 0)
		close(mm->maps);
	sim_notify_fini(mm);
	pthread_mutex_destroy(&mm->start_lock);
	pthread_cond_destroy(&mm->pend_cv);
	pthread_mutex_destroy(&mm->pend_lock);
	pthread_mutex_destroy(&mm->dm_lock);
	pthread_rwlock_destroy(&mm->inval_lock);
	pthread_cond_destroy(&mm->notify_cv);
	pthread_mutex_destroy(&mm->notify_lock);
	pthread_mutex_destroy(&mm->lock);
	/* Under sim_mm_lock, as every mm_destroy() is. */
	if (!mm_spare)
		mm_spare = mm;
	else
		sim_pages_free(mm, sizeof(*mm));
}

static int mm_create(struct sim_mm **mmp)
{
	pthread_rwlockattr_t ra;
	struct sim_mm *mm;
	int err;

	/* 85 KiB, mostly room for discards in progress: zero pages until
	 * used, and kept for the next (mm_spare), not a calloc() that
	 * faults in and clears it all at every first bind. */
	if (mm_spare) {
		mm = mm_spare;
		mm_spare = NULL;
		memset(mm, 0, sizeof(*mm));
	} else {
		mm = sim_pages_alloc(sizeof(*mm));
		if (!mm)
			return -ENOMEM;
	}
	mm->pid = getpid();
	mm->pasid = 1;	/* PASID 0 is RID_PASID: DMA without a PASID */
	mm->uffd = mm->stop_fd = mm->pagemap = mm->kpageflags = mm->maps = -1;
	list_init(&mm->binds);
	list_init(&mm->arenas);
	pthread_mutex_init(&mm->start_lock, NULL);
	sim_notify_init(mm);
	pthread_mutex_init(&mm->dm_lock, NULL);
	pthread_mutex_init(&mm->pend_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&mm->pend_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	pthread_mutex_init(&mm->lock, NULL);
	pthread_mutex_init(&mm->notify_lock, NULL);
	pthread_cond_init(&mm->notify_cv, NULL);
	/* Writers first: an invalidation must not wait behind a stream of
	 * device bursts while munmap() waits on it. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&mm->inval_lock, &ra);
	pthread_rwlockattr_destroy(&ra);

	mm->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (mm->pagemap < 0) {
		err = sva_err(-errno, "can't open /proc/self/pagemap: %s",
			      strerror(errno));
		goto destroy;
	}
	mm->maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	/* Root only: tells lazily freed pages (MADV_FREE) apart. */
	mm->kpageflags = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);
	mm->uffd = uffd_open(&mm->uffd_full);
	if (mm->uffd < 0) {
		pr_info("userfaultfd unavailable (%s): translations won't be cached\n",
			strerror(-mm->uffd));
		mm->uffd = -1;
		*mmp = mm;
		return 0;
	}
	mm->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (mm->stop_fd < 0) {
		err = -errno;
		goto destroy;
	}
	/* No thread yet: the event thread starts before the first
	 * registration, the notifier with the first callback. */
	*mmp = mm;
	return 0;
destroy:
	mm_destroy(mm);
	return err;
}

/* sim_devmem_fork_prepare() ran: its locks are held across fork()
 * (sim_mm_lock). */
static bool mm_fork_movers_held;

/*
 * In a child after fork(): drop the parent's fds. The child holding the
 * userfaultfd open would keep the parent's VMAs registered after the parent
 * closes it, and the parent's munmap() would then wait for a reader that no
 * longer exists. The memory of the parent's state is left alone: the
 * parent's handles are unusable here (-EPERM) anyway.
 */
static void mm_atfork_child(void)
{
	/* Held across fork() by mm_atfork_prepare(). */
	pthread_mutex_init(&sim_mm_lock, NULL);
	sva__locks_forget(1);
	if (mm_fork_movers_held)
		sim_devmem_fork_child();
	mm_fork_movers_held = false;
	if (!the_mm)
		return;
	if (the_mm->uffd >= 0)
		close(the_mm->uffd);
	if (the_mm->stop_fd >= 0)
		close(the_mm->stop_fd);
	if (the_mm->pagemap >= 0)
		close(the_mm->pagemap);
	if (the_mm->kpageflags >= 0)
		close(the_mm->kpageflags);
	if (the_mm->maps >= 0)
		close(the_mm->maps);
	the_mm = NULL;
}

/*
 * Before fork(): pages in device memory go back to host memory (a child
 * inherits none of our userfaultfd registration, and would read zeros
 * where they were). sim_mm_lock is held across fork() so that the mm
 * stays; the child's handler makes both locks new.
 */
static void mm_atfork_prepare(void)
{
	sva__mutex_lock(&sim_mm_lock);
	mm_fork_movers_held = the_mm && the_mm->pid == getpid();
	if (mm_fork_movers_held)
		sim_devmem_fork_prepare(the_mm);
}

static void mm_atfork_parent(void)
{
	if (mm_fork_movers_held)
		sim_devmem_fork_parent(the_mm);
	mm_fork_movers_held = false;
	sva__mutex_unlock(&sim_mm_lock);
}

void sim_mm_spare_drop(void)
{
	sva__mutex_lock(&sim_mm_lock);
	sim_pages_free(mm_spare, sizeof(*mm_spare));
	mm_spare = NULL;
	sva__mutex_unlock(&sim_mm_lock);
}

static void mm_atfork_register(void)
{
	pthread_atfork(mm_atfork_prepare, mm_atfork_parent, mm_atfork_child);
}

struct sim_mm *sim_mm_get(struct sva_bind *bind)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct sim_bind *sb = sim_bind_of(bind);
	struct sim_mm *mm;

	pthread_once(&once, mm_atfork_register);
	sva__mutex_lock(&sim_mm_lock);
	/* Inherited across a fork() that ran no atfork handlers. */
	if (the_mm && the_mm->pid != getpid())
		the_mm = NULL;
	if (!the_mm && mm_create(&the_mm))
		the_mm = NULL;
	mm = the_mm;
	if (mm) {
		mm->refs++;
		sb->mm = mm;
		sva__mutex_lock(&mm->notify_lock);
		sva__mutex_lock(&mm->lock);
		list_add_tail(&sb->mm_node, &mm->binds);
		sva__mutex_unlock(&mm->lock);
		sva__mutex_unlock(&mm->notify_lock);
	}
	sva__mutex_unlock(&sim_mm_lock);
	return mm;
}

void sim_mm_put(struct sva_bind *bind)
{
	struct sim_bind *sb = sim_bind_of(bind);
	struct sim_mm *mm = sb->mm;
	uint64_t one = 1;

	/*
	 * Wait out callbacks and sequence advances running on this binding
	 * (not under sim_mm_lock: a callback may be binding). A callback
	 * must not unbind its own binding: it would wait for itself.
	 */
	sva__mutex_lock(&mm->notify_lock);
	sb->dying = true;
	while (sb->notifying)
		sva__cond_wait(&mm->notify_cv, &mm->notify_lock);
	sva__mutex_lock(&mm->lock);
	list_del(&sb->mm_node);
	sva__mutex_unlock(&mm->lock);
	sva__mutex_unlock(&mm->notify_lock);

	sva__mutex_lock(&sim_mm_lock);
	if (--mm->refs == 0) {
		if (atomic_load(&mm->listening)) {
			if (write(mm->stop_fd, &one, sizeof(one)) < 0)
				pr_warn("can't stop the event thread\n");
			pthread_join(mm->thread, NULL);
		}
		sim_notify_stop(mm);
		mm_destroy(mm);
		the_mm = NULL;
	}
	sva__mutex_unlock(&sim_mm_lock);
}
