// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The software device's local memory: a model of device-private memory
 * (MEMORY_DEVICE_PRIVATE) on the host kernel.
 *
 * A device's memory is an arena of anonymous memory in this process,
 * registered with the mm's userfaultfd. Migrating a page to the device
 * moves it with UFFDIO_MOVE out of the user's range into an arena slot: the
 * same physical page, its contents exact, and no CPU mapping left at its
 * address (the move is atomic with respect to the page table: a CPU write
 * lands before it, in the page that moves, or after it, as a fault). The
 * user's range is registered for missing faults with the same userfaultfd,
 * so a CPU access to a page in device memory arrives at the event thread
 * (mm.c) as a missing fault on that page only, and sim_devmem_fault() moves
 * the page back. No signal handler is involved, and kernel accesses
 * (read(2) into the page, process_vm_readv) fault it back the same way.
 *
 * Device accesses to a page in the device's own memory go to the arena
 * (engine.c): local, no translation, no page request. The engine pins the
 * page for the access (busy); a CPU fault on a pinned page waits (deferred
 * by the event thread) until the access is over, as migrate_to_ram() waits
 * for the device.
 *
 * What needs what, so nothing deadlocks: the event thread takes dm_lock to
 * serve a fault or follow an event, so no one holding dm_lock may wait for
 * the event thread. Whoever would (a UFFDIO_MOVE failing with EAGAIN while
 * an event is unread; a madvise() or munmap() of registered memory; a
 * fault on a registered page) lets dm_lock go first. The event thread
 * itself never waits: what it can't do now, it defers.
 *
 * Races, and why no byte is lost:
 *  - CPU access during a migration to the device: before the move it
 *    writes the page that moves; after it, it faults and waits for
 *    dm_lock, which the migration holds until the page is recorded.
 *  - MADV_DONTNEED of a page being migrated: its event is read before its
 *    zap, and the range stays a discard in progress until the zap is seen
 *    (mm.c). A page is moved only if no discard of it is in progress,
 *    under dm_lock, and the event thread drops the pages of a discard
 *    under dm_lock after recording it in progress: so a page either moves
 *    before the drop (and is dropped) or not at all.
 *  - munmap()/mremap() while pages are in device memory: UFFDIO_MOVE fails
 *    with EAGAIN until their event is read; the event drops the pages
 *    (munmap) or moves their addresses (mremap) before any fault read with
 *    it is served.
 *  - fork(): a child doesn't inherit our userfaultfd registration, so its
 *    copy of a page in device memory would read zeros. The fork handler
 *    moves every page back to host memory first (counted as evictions) and
 *    holds dm_lock across fork(): parent and child see the same data,
 *    copy-on-write as for any page. The arena is MADV_DONTFORK.
 *
 * Exclusive access (sva_make_exclusive(3), make_device_exclusive_range()):
 * the kernel leaves the page in host memory and replaces its PTE by a
 * device-exclusive entry, which any CPU access faults on, restoring the
 * mapping and telling the device (revoke). The model is the same move as
 * above, into a second arena per device (sim_dev.xm, excl set): the page
 * leaves the user's page table, the device reaches it in the arena with no
 * translation, and a CPU (or kernel) access arrives as a missing fault that
 * moves it back. It is host memory held, not device memory: it takes none
 * of devmem_size, is never evicted for room, and counts as a grant when
 * held and a revoke when it leaves the arena for any reason (CPU fault,
 * munmap/discard, fork, unbind, a migration), never as a migration.
 *  - mprotect() sends no event: the device's write permission on a held
 *    page is the VMA's, read from the kernel (PROCMAP_QUERY) when a device
 *    access pins it, so a write after mprotect(PROT_READ) faults INVALID
 *    and the page stays held, as the kernel's read-only exclusive entry.
 *  - Pages are faulted in for writing first (MADV_POPULATE_WRITE, as the
 *    kernel's GUP with FOLL_WRITE): a zero page or one shared copy-on-write
 *    since fork() becomes the process's own before it moves.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sim.h"
#include "uffd_move.h"

/* The sim's default device memory, and its largest. */
#define SIM_DEVMEM_DEFAULT (64ull << 20)
#define SIM_DEVMEM_MAX (16ull << 30)
/*
 * The window of host pages a device may hold exclusively at once (virtual,
 * MAP_NORESERVE; its slots cost 36 bytes each): past it, pages are refused
 * with SVA_MIGRATE_NO_ROOM, never taken from another holder.
 */
#define SIM_EXCL_SIZE (256ull << 20)
/* UFFDIO_MOVE tries while the mm is changing (EAGAIN), 50 us apart. */
#define SIM_EAGAIN_TRIES 4000

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

enum sim_dpage_state {
	SIM_DP_FREE,		/* on the free list, arena PTE none */
	SIM_DP_USED,		/* holds a user page, on the LRU list */
	SIM_DP_DIRTY,		/* dropped, arena PTE to zap (dirty list) */
	SIM_DP_ZAPPING,		/* being zapped (no list) */
};

static const uint8_t zero_page[SVA_PAGE_SIZE]
	__attribute__((aligned(SVA_PAGE_SIZE)));

/* ------------------------------------------------------------- caps */

void sim_devmem_caps(struct sva_dev *dev)
{
	uint64_t size = dev->opts.devmem_size;
	int err;

	dev->caps.devmem_size = 0;
	if (dev->opts.flags & SVA_DEV_NO_DEVMEM)
		return;
	err = sim_uffd_probe_move();
	if (err) {
		pr_info("%s: no device memory: this kernel or process can't move pages with userfaultfd (UFFDIO_MOVE, Linux 6.8, and a userfaultfd that sees kernel faults): %s\n",
			dev->name, strerror(-err));
		return;
	}
	dev->caps.devmem_size = size ? size : SIM_DEVMEM_DEFAULT;
	/* Exclusive access is built on the same moves (see above). */
	dev->caps.flags |= SVA_CAP_MIGRATE | SVA_CAP_EXCLUSIVE;
}

/* ------------------------------------------------- slots, hash, lists */

static inline uint64_t slot_addr(const struct sim_devmem *dm, uint32_t s)
{
	return (uint64_t)(uintptr_t)dm->arena + ((uint64_t)s << SVA_PAGE_SHIFT);
}

static inline uint32_t hash_of(const struct sim_devmem *dm, uint64_t vpn)
{
	return (uint32_t)((vpn * 0x9e3779b97f4a7c15ull) >> 32) & dm->hmask;
}

/* The slot holding @vpn, or -1. */
static int64_t dm_lookup(const struct sim_devmem *dm, uint64_t vpn)
{
	for (uint32_t s = dm->hash[hash_of(dm, vpn)]; s; s = dm->pg[s - 1].hnext)
		if (dm->pg[s - 1].vpn == vpn)
			return s - 1;
	return -1;
}

static void hash_add(struct sim_devmem *dm, uint32_t s)
{
	uint32_t *b = &dm->hash[hash_of(dm, dm->pg[s].vpn)];

	dm->pg[s].hnext = *b;
	*b = s + 1;
}

static void hash_del(struct sim_devmem *dm, uint32_t s)
{
	uint32_t *p = &dm->hash[hash_of(dm, dm->pg[s].vpn)];

	while (*p && *p != s + 1)
		p = &dm->pg[*p - 1].hnext;
	if (*p)
		*p = dm->pg[s].hnext;
}

static void lru_add(struct sim_devmem *dm, uint32_t s)
{
	dm->pg[s].next = 0;
	dm->pg[s].prev = dm->lru_tail;
	if (dm->lru_tail)
		dm->pg[dm->lru_tail - 1].next = s + 1;
	else
		dm->lru_head = s + 1;
	dm->lru_tail = s + 1;
}

static void lru_del(struct sim_devmem *dm, uint32_t s)
{
	struct sim_dpage *p = &dm->pg[s];

	if (p->prev)
		dm->pg[p->prev - 1].next = p->next;
	else
		dm->lru_head = p->next;
	if (p->next)
		dm->pg[p->next - 1].prev = p->prev;
	else
		dm->lru_tail = p->prev;
	p->prev = p->next = 0;
}

static void slot_use(struct sim_devmem *dm, uint32_t s, uint64_t vpn,
		     struct sva_bind *bind)
{
	dm->pg[s].vpn = vpn;
	dm->pg[s].bind = bind;
	dm->pg[s].state = SIM_DP_USED;
	hash_add(dm, s);
	lru_add(dm, s);
	dm->nused++;
}

/*
 * Take @s out of use: its PTE is none (@moved) or still to be zapped. A
 * held page leaving the exclusive arena, whatever for, is a revoke.
 */
static void slot_release(struct sim_devmem *dm, uint32_t s, bool moved)
{
	if (dm->excl && dm->pg[s].bind)
		sva__count(dm->pg[s].bind, SVA_C_EXCLUSIVE_REVOKES, 1);
	hash_del(dm, s);
	lru_del(dm, s);
	dm->nused--;
	dm->pg[s].bind = NULL;
	if (moved) {
		dm->pg[s].state = SIM_DP_FREE;
		dm->pg[s].next = dm->free_head;
		dm->free_head = s + 1;
	} else {
		dm->pg[s].state = SIM_DP_DIRTY;
		dm->pg[s].next = 0;
		dm->ndirty++;
	}
}

static int64_t slot_alloc(struct sim_devmem *dm)
{
	uint32_t s = dm->free_head;

	if (!s)
		return -1;
	dm->free_head = dm->pg[s - 1].next;
	dm->pg[s - 1].next = 0;
	return s - 1;
}

/* The arena holding @vpn, and its slot. Caller holds dm_lock. */
static struct sim_devmem *mm_lookup(struct sim_mm *mm, uint64_t vpn,
				    uint32_t *slot)
{
	struct sim_devmem *dm;
	int64_t s;

	list_for_each_entry(dm, &mm->arenas, node) {
		s = dm_lookup(dm, vpn);
		if (s >= 0) {
			*slot = (uint32_t)s;
			return dm;
		}
	}
	return NULL;
}

/* ----------------------------------------------------- moving pages */

/* One page with UFFDIO_MOVE: 0 or -errno. */
static int uffd_move(struct sim_mm *mm, uint64_t dst, uint64_t src,
		     bool wake)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = SVA_PAGE_SIZE,
		.mode = wake ? 0 : UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (!ioctl(mm->uffd, UFFDIO_MOVE, &m))
		return 0;
	/* A whole page or nothing: len is one page. */
	return m.move == (int64_t)SVA_PAGE_SIZE ? 0 : -errno;
}

/*
 * @len bytes (pages) with one UFFDIO_MOVE: one call costs about what one
 * page does (measured on 6.18: 60,000 calls/s one page each, over 1.5
 * million pages/s in one call). Returns the bytes moved; the move stops
 * at the first page that fails, which the caller moves on its own.
 */
static uint64_t uffd_move_run(struct sim_mm *mm, uint64_t dst, uint64_t src,
			      uint64_t len, bool wake)
{
	struct uffdio_move m = {
		.dst = dst, .src = src, .len = len,
		.mode = wake ? 0 : UFFDIO_MOVE_MODE_DONTWAKE,
	};

	if (!ioctl(mm->uffd, UFFDIO_MOVE, &m))
		return len;
	return m.move > 0 ? (uint64_t)m.move & SVA_PAGE_MASK : 0;
}

/*
 * Take up to @max free slots in a row off the free list: slots the list
 * gives in ascending order, or in descending order (as pages freed one by
 * one in address order, by CPU faults, leave it). *first: the lowest.
 */
static uint32_t slot_alloc_run(struct sim_devmem *dm, uint32_t max,
			       uint32_t *first)
{
	uint32_t n = 0;
	int dir = 0;

	while (n < max && dm->free_head) {
		uint32_t s = dm->free_head - 1;

		if (n == 1)
			dir = s == *first + 1 ? 1 : s + 1 == *first ? -1 : 0;
		if (n && !(dir > 0 && s == *first + n) &&
		    !(dir < 0 && s + 1 == *first))
			break;
		if (!n || dir < 0)
			*first = s;
		dm->free_head = dm->pg[s].next;
		n++;
	}
	return n;
}

/* Give slots [first, first + n) back, so that they come out in order. */
static void slot_free_run(struct sim_devmem *dm, uint32_t first, uint32_t n)
{
	for (uint32_t i = n; i > 0; i--) {
		dm->pg[first + i - 1].state = SIM_DP_FREE;
		dm->pg[first + i - 1].next = dm->free_head;
		dm->free_head = first + i;
	}
}

static void uffd_wake(struct sim_mm *mm, uint64_t addr, uint64_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	ioctl(mm->uffd, UFFDIO_WAKE, &r);
}

/*
 * Threads other than the event thread move pages holding inval_lock for
 * reading, then dm_lock. The event thread reads an event and makes device
 * memory follow it (drops the pages of a discard, records it in progress)
 * in one inval_lock write section: so no move lands between an event's
 * read, which lets its zap go, and the drop. (A page moved back to the
 * user after a zap and before the drop would bring discarded data back:
 * seen in the discard race test.) Before the read, UFFDIO_MOVE fails with
 * EAGAIN, and movers let both locks go and try again.
 */
static void mover_lock(struct sim_mm *mm)
{
	sva__rwlock_rdlock(&mm->inval_lock);
	sva__mutex_lock(&mm->dm_lock);
}

static void mover_unlock(struct sim_mm *mm)
{
	sva__mutex_unlock(&mm->dm_lock);
	sva__rwlock_unlock(&mm->inval_lock);
}

/*
 * A move found an event unread (EAGAIN/EBUSY): let both locks go so the
 * event thread can read it, then say whether to try the page again (true)
 * or count it busy (false, after SIM_EAGAIN_TRIES).
 */
static bool mover_backoff(struct sim_mm *mm, unsigned int *tries)
{
	mover_unlock(mm);
	usleep(50);
	mover_lock(mm);
	return ++*tries < SIM_EAGAIN_TRIES;
}

static void count_to_host(struct sva_bind *bind, uint64_t pages)
{
	if (!bind || !pages)
		return;
	sva__count(bind, SVA_C_MIGRATED_TO_HOST, pages);
	sva__count(bind, SVA_C_BYTES_TO_HOST, pages << SVA_PAGE_SHIFT);
}

/*
 * Pages moved back to the host for one cause (eviction, fork, unbind),
 * one owner at a time, as the trace records them: one event per owner
 * and run rather than one per page. Used only while the device traces.
 */
struct back_run {
	struct sva_bind *owner;
	uint64_t t0, dur, first, moved, refused;
	enum sva_trace_mig_cause cause;
};

static void back_run_flush(struct back_run *br)
{
	if (br->owner && (br->moved || br->refused))
		sva__trace_migrate(br->owner, br->t0, br->dur,
				   SVA_TRACE_MIG_TO_HOST, br->cause, -1,
				   br->first, br->moved, br->refused);
	br->owner = NULL;
}

/*
 * Note a page of @owner at @addr moved back (@ok) or not, @t0 when its
 * move began. Evictions add up their times (@sum): they come one by one
 * between moves to the device, which their event must not claim.
 */
static void back_run_add(struct back_run *br, struct sva_bind *owner,
			 uint64_t addr, bool ok, uint64_t t0, bool sum)
{
	if (br->owner != owner) {
		back_run_flush(br);
		*br = (struct back_run){ .owner = owner, .t0 = t0,
					 .first = addr, .cause = br->cause };
	}
	br->first = MIN(br->first, addr);
	if (ok)
		br->moved++;
	else
		br->refused++;
	if (sum)
		br->dur += MAX(sva__now_ns() - t0, 1);
}

/*
 * Move slot @s of @dm back to its user page. 0, or -EAGAIN (the mm is
 * changing: try again without dm_lock), -EBUSY (a device access holds
 * it). Any other failure means the user page is gone (unmapped under us):
 * the page is dropped. Caller holds dm_lock.
 */
static int slot_to_host(struct sim_mm *mm, struct sim_devmem *dm, uint32_t s,
			bool wake)
{
	uint64_t addr = dm->pg[s].vpn << SVA_PAGE_SHIFT;
	int err;

	if (dm->pg[s].busy)
		return -EBUSY;
	err = uffd_move(mm, addr, slot_addr(dm, s), wake);
	if (err == -EAGAIN)
		return err;
	if (err == -EINVAL) {
		/*
		 * The user's VMA no longer matches the arena (mprotect()ed
		 * read-only or PROT_NONE since): UFFDIO_MOVE won't, so copy
		 * the data back, and the arena page is zapped later.
		 */
		struct uffdio_copy c = {
			.dst = addr, .src = slot_addr(dm, s),
			.len = SVA_PAGE_SIZE,
			.mode = wake ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
		};

		if (!ioctl(mm->uffd, UFFDIO_COPY, &c)) {
			if (!dm->excl)
				count_to_host(dm->pg[s].bind, 1);
			slot_release(dm, s, false);
			return 0;
		}
		err = -errno;
		if (err == -EAGAIN)
			return err;
	}
	if (err) {
		pr_debug("page %#llx not moved back (%s): dropped\n",
			 (unsigned long long)addr, strerror(-err));
		slot_release(dm, s, false);
		return err;
	}
	if (!dm->excl)
		count_to_host(dm->pg[s].bind, 1);
	slot_release(dm, s, true);
	return 0;
}

/*
 * Make room in @dm: evict its least recently used page not in use by a
 * device access. Returns the slot freed, -EAGAIN (try again without
 * dm_lock) or -ENOSPC. *span grows to cover the page evicted.
 */
static int64_t dm_evict(struct sim_mm *mm, struct sim_devmem *dm,
			struct sva_migrate_result *res, uint64_t span[2],
			struct back_run *ev)
{
	for (uint32_t s = dm->lru_head; s; s = dm->pg[s - 1].next) {
		struct sva_bind *owner = dm->pg[s - 1].bind;
		uint64_t addr = dm->pg[s - 1].vpn << SVA_PAGE_SHIFT, t0 = 0;
		bool tracing = owner && sva__tracing(owner->dev);
		int err;

		if (dm->pg[s - 1].busy)
			continue;
		if (tracing)
			t0 = sva__now_ns();
		err = slot_to_host(mm, dm, s - 1, true);
		if (err == -EAGAIN)
			return err;
		/* The one place pages are evicted for room. */
		if (tracing)
			back_run_add(ev, owner, addr, !err, t0, true);
		if (!err) {
			sva__count(owner, SVA_C_EVICTIONS, 1);
			if (res)
				res->evicted++;
			span[0] = MIN(span[0], addr);
			span[1] = MAX(span[1], addr + SVA_PAGE_SIZE);
		}
		return slot_alloc(dm);
	}
	return -ENOSPC;
}

/* Zap the arena PTEs of dropped pages. Takes dm_lock; never holds it
 * across the madvise() (its event is read by the event thread). */
static void dm_zap_dirty(struct sim_mm *mm, struct sim_devmem *dm)
{
	uint32_t *z, nz = 0;

	sva__mutex_lock(&mm->dm_lock);
	if (!dm->ndirty) {
		sva__mutex_unlock(&mm->dm_lock);
		return;
	}
	z = malloc(dm->ndirty * sizeof(*z));
	for (uint32_t s = 0; z && s < dm->npages && nz < dm->ndirty; s++) {
		if (dm->pg[s].state == SIM_DP_DIRTY && !dm->pg[s].busy) {
			dm->pg[s].state = SIM_DP_ZAPPING;
			z[nz++] = s;
		}
	}
	dm->ndirty -= nz;
	sva__mutex_unlock(&mm->dm_lock);
	for (uint32_t i = 0; i < nz; i++)
		madvise((void *)(uintptr_t)slot_addr(dm, z[i]), SVA_PAGE_SIZE,
			MADV_DONTNEED);
	sva__mutex_lock(&mm->dm_lock);
	for (uint32_t i = 0; i < nz; i++) {
		dm->pg[z[i]].state = SIM_DP_FREE;
		dm->pg[z[i]].next = dm->free_head;
		dm->free_head = z[i] + 1;
	}
	sva__mutex_unlock(&mm->dm_lock);
	free(z);
}

/* ---------------------------------------------------------- arenas */

static void dm_free(struct sim_devmem *dm)
{
	if (dm->arena && dm->arena != MAP_FAILED)
		munmap(dm->arena, (size_t)dm->npages << SVA_PAGE_SHIFT);
	free(dm->pg);
	free(dm->hash);
	free(dm);
}

/* @bind's device memory (@excl: its exclusive arena), made on first use. */
static struct sim_devmem *dm_get(struct sva_bind *bind, bool excl, int *errp)
{
	struct sim_dev *sd = sim_dev_of(bind);
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_devmem **where = excl ? &sd->xm : &sd->dm;
	uint64_t size = excl ? SIM_EXCL_SIZE : bind->dev->caps.devmem_size;
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct sim_devmem *dm;
	uint32_t hsize = 1;

	sva__mutex_lock(&mm->dm_lock);
	dm = *where;
	sva__mutex_unlock(&mm->dm_lock);
	if (dm)
		return dm;
	if (mm->uffd < 0 || !mm->uffd_full) {
		*errp = sva_err(-EOPNOTSUPP, "%s: this process's userfaultfd can't move pages",
				bind->dev->name);
		return NULL;
	}
	/* The arena's munmap() at unbind needs the event thread. */
	*errp = sim_mm_listen(mm);
	if (*errp) {
		*errp = sva_err(*errp, "can't start the event thread: %s",
				strerror(-*errp));
		return NULL;
	}
	dm = sva__zalloc(sizeof(*dm));
	if (!dm)
		goto nomem;
	dm->sd = sd;
	dm->excl = excl;
	dm->npages = (uint32_t)(size >> SVA_PAGE_SHIFT);
	while (hsize < dm->npages)
		hsize <<= 1;
	dm->hmask = hsize - 1;
	dm->pg = sva__zalloc(dm->npages * sizeof(*dm->pg));
	dm->hash = sva__zalloc(hsize * sizeof(*dm->hash));
	if (!dm->pg || !dm->hash)
		goto nomem;
	dm->arena = mmap(NULL, size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (dm->arena == MAP_FAILED) {
		*errp = sva_err(-errno, "can't map %llu bytes of device memory",
				(unsigned long long)size);
		dm_free(dm);
		return NULL;
	}
	/* Base pages only; a child gets none of it (see fork above). */
	madvise(dm->arena, size, MADV_NOHUGEPAGE);
	madvise(dm->arena, size, MADV_DONTFORK);
	/* A UFFDIO_MOVE destination must be registered with our fd; WP
	 * mode (never armed) gives it the protections of the user ranges. */
	reg.range.start = (uintptr_t)dm->arena;
	reg.range.len = size;
	if (ioctl(mm->uffd, UFFDIO_REGISTER, &reg)) {
		*errp = sva_err(-errno, "can't register device memory with userfaultfd");
		dm_free(dm);
		return NULL;
	}
	for (uint32_t s = dm->npages; s > 0; s--) {
		dm->pg[s - 1].next = dm->free_head;
		dm->free_head = s;
	}
	sva__mutex_lock(&mm->dm_lock);
	if (*where) {
		/* Made by another thread meanwhile. */
		sva__mutex_unlock(&mm->dm_lock);
		dm_free(dm);
		return *where;
	}
	/* Published for the engine's unlocked look (sim_devmem_pin()). */
	__atomic_store_n(where, dm, __ATOMIC_RELEASE);
	list_add_tail(&dm->node, &mm->arenas);
	sva__mutex_unlock(&mm->dm_lock);
	return dm;
nomem:
	if (dm)
		dm_free(dm);
	*errp = -ENOMEM;
	return NULL;
}

/* ----------------------------------------------------- placement */

/* Move @n pages at @addrs to NUMA node @node; status per page. */
static long pages_to_node(uint64_t *addrs, unsigned long n, int node,
			  int *status)
{
	int nodes[SIM_CHUNK_PAGES];

	for (unsigned long i = 0; i < n; i++)
		nodes[i] = node;
	return syscall(SYS_move_pages, 0, n, (void **)addrs,
		       node < 0 ? NULL : nodes, status, MPOL_MF_MOVE);
}

/* The host node @bind prefers for @addr, -1 for none. */
static int preferred_node(struct sva_bind *bind, uint64_t addr,
			  unsigned int *gran)
{
	uint64_t v[SVA_ATTR_MAX];

	sva__range_attrs_at(&bind->attrs, addr, v);
	if (gran)
		*gran = (unsigned int)v[SVA_ATTR_GRANULARITY];
	if ((v[SVA_ATTR_PREFERRED_LOC] & 0xffffffffull) != SVA_LOC_HOST)
		return -1;
	return SVA_LOC_NODE_OF(v[SVA_ATTR_PREFERRED_LOC]);
}

/* --------------------------------------------------- to the device */

enum page_fate { PF_MOVED, PF_ALREADY, PF_RETRY, PF_FAIL };

/*
 * The page at @addr (in @other's slot @os if not NULL) is being moved by
 * someone else, or discarded: not ours to move now.
 */
static bool page_in_motion(struct sim_mm *mm, const struct sim_devmem *other,
			   uint32_t os, uint64_t addr)
{
	if (other)
		return other->pg[os].busy;
	return sim_mm_discard_pending(mm, addr, addr + SVA_PAGE_SIZE);
}

/*
 * Move the page at @from into free slot @s of @dm: PF_MOVED, or PF_RETRY /
 * PF_FAIL with @reason, the slot given back (a failed move leaves its PTE
 * none). Caller holds dm_lock.
 */
static enum page_fate slot_move_in(struct sim_mm *mm, struct sim_devmem *dm,
				   uint32_t s, uint64_t from, int *reason)
{
	int err = uffd_move(mm, slot_addr(dm, s), from, false);

	if (!err)
		return PF_MOVED;
	dm->pg[s].next = dm->free_head;
	dm->free_head = s + 1;
	switch (err) {
	case -EAGAIN:
		return PF_RETRY;
	case -EBUSY:
		/* Pinned, or still shared (KSM, copy-on-write again since). */
		*reason = SVA_MIGRATE_PINNED;
		return PF_FAIL;
	case -EINVAL:
		*reason = SVA_MIGRATE_UNSUPPORTED;
		return PF_FAIL;
	default:
		/* -ENOENT: not present (discarded since it was faulted in). */
		*reason = SVA_MIGRATE_BUSY;
		return PF_FAIL;
	}
}

/*
 * Move the page at @vpn into @dm. Caller holds dm_lock. PF_RETRY: let
 * dm_lock go and try again (the mm is changing).
 */
static enum page_fate page_to_dev(struct sva_bind *bind,
				  struct sim_devmem *dm, uint64_t vpn,
				  struct sva_migrate_result *res,
				  uint64_t span[2], int *reason,
				  struct back_run *ev)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t addr = vpn << SVA_PAGE_SHIFT;
	struct sim_devmem *other;
	uint32_t os = 0;
	int64_t s;
	enum page_fate fate;

	other = mm_lookup(mm, vpn, &os);
	if (other == dm) {
		/* Already here: it was used, it is recent. */
		lru_del(dm, os);
		lru_add(dm, os);
		return PF_ALREADY;
	}
	if (page_in_motion(mm, other, os, addr)) {
		*reason = SVA_MIGRATE_BUSY;
		return PF_FAIL;
	}
	s = slot_alloc(dm);
	if (s < 0)
		s = dm_evict(mm, dm, res, span, ev);
	if (s == -EAGAIN)
		return PF_RETRY;
	if (s < 0) {
		*reason = SVA_MIGRATE_NO_ROOM;
		return PF_FAIL;
	}
	/* From another device's memory: device to device, directly. */
	fate = slot_move_in(mm, dm, (uint32_t)s,
			    other ? slot_addr(other, os) : addr, reason);
	if (fate != PF_MOVED)
		return fate;
	if (other) {
		if (!other->excl)
			sva__trace_mig_from_dev++;
		slot_release(other, os, true);
	}
	slot_use(dm, (uint32_t)s, vpn, bind);
	sva__count(bind, SVA_C_MIGRATED_TO_DEV, 1);
	sva__count(bind, SVA_C_BYTES_TO_DEV, SVA_PAGE_SIZE);
	return PF_MOVED;
}

/* Populate the holes of [start, end) not in device memory. */
static void populate_holes(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	uint64_t pm[SIM_CHUNK_PAGES];
	uint32_t os;

	for (uint64_t a = start; a < end; a += SIM_CHUNK) {
		unsigned int n = (unsigned int)MIN((end - a) >> SVA_PAGE_SHIFT,
						   (uint64_t)SIM_CHUNK_PAGES);
		bool hole[SIM_CHUNK_PAGES];

		if (sim_mm_pagemap(mm, a >> SVA_PAGE_SHIFT, n, pm))
			return;
		sva__mutex_lock(&mm->dm_lock);
		for (unsigned int i = 0; i < n; i++)
			hole[i] = !(pm[i] & (SIM_PM_PRESENT | SIM_PM_SWAP)) &&
				  !mm_lookup(mm, (a >> SVA_PAGE_SHIFT) + i, &os);
		sva__mutex_unlock(&mm->dm_lock);
		for (unsigned int i = 0, j; i < n; i = j) {
			for (j = i + 1; j < n && hole[j] == hole[i]; j++)
				;
			if (hole[i])
				madvise((void *)(uintptr_t)(a + ((uint64_t)i << SVA_PAGE_SHIFT)),
					(uint64_t)(j - i) << SVA_PAGE_SHIFT,
					MADV_POPULATE_WRITE);
		}
	}
}

/*
 * Fault in for writing the pages of [start, end) in no arena that aren't
 * the process's own already (holes, the zero page, pages shared
 * copy-on-write since fork()), as GUP with FOLL_WRITE does before
 * make_device_exclusive_range(): UFFDIO_MOVE moves only exclusive pages.
 * Pages in device memory are left there (held already, or moved on).
 */
static void populate_for_write(struct sim_mm *mm, uint64_t start,
			       uint64_t end)
{
	uint32_t os;

	for (uint64_t a = start; a < end; a += SIM_CHUNK) {
		unsigned int n = (unsigned int)MIN((end - a) >> SVA_PAGE_SHIFT,
						   (uint64_t)SIM_CHUNK_PAGES);
		bool want[SIM_CHUNK_PAGES];

		sva__mutex_lock(&mm->dm_lock);
		/*
		 * Present pages too: pagemap shows no write bit, and a page
		 * fork() shared stays read-only (not AnonExclusive, which
		 * UFFDIO_MOVE needs) after the child is gone. On a writable
		 * PTE this is a page walk, no fault.
		 */
		for (unsigned int i = 0; i < n; i++)
			want[i] = list_empty(&mm->arenas) ||
				  !mm_lookup(mm, (a >> SVA_PAGE_SHIFT) + i, &os);
		sva__mutex_unlock(&mm->dm_lock);
		for (unsigned int i = 0, j; i < n; i = j) {
			for (j = i + 1; j < n && want[j] == want[i]; j++)
				;
			if (want[i])
				madvise((void *)(uintptr_t)(a + ((uint64_t)i << SVA_PAGE_SHIFT)),
					(uint64_t)(j - i) << SVA_PAGE_SHIFT,
					MADV_POPULATE_WRITE);
		}
	}
}

/*
 * Hold the page at @vpn in @xm, @bind's exclusive arena. Caller holds
 * dm_lock. PF_RETRY: let dm_lock go and try again (the mm is changing).
 */
static enum page_fate page_to_xm(struct sva_bind *bind,
				 struct sim_devmem *xm, uint64_t vpn,
				 int *reason)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t addr = vpn << SVA_PAGE_SHIFT;
	struct sim_devmem *other;
	uint32_t os = 0;
	int64_t s;
	enum page_fate fate;

	other = mm_lookup(mm, vpn, &os);
	/* Held, or in this device's memory: exclusive to it already. */
	if (other == xm || (other && other == sim_dev_of(bind)->dm)) {
		lru_del(other, os);
		lru_add(other, os);
		return PF_ALREADY;
	}
	if (page_in_motion(mm, other, os, addr)) {
		*reason = SVA_MIGRATE_BUSY;
		return PF_FAIL;
	}
	s = slot_alloc(xm);
	if (s < 0) {
		*reason = SVA_MIGRATE_NO_ROOM;
		return PF_FAIL;
	}
	/* From another device (its memory, or held by it): taken over. */
	fate = slot_move_in(mm, xm, (uint32_t)s,
			    other ? slot_addr(other, os) : addr, reason);
	if (fate != PF_MOVED)
		return fate;
	if (other) {
		if (!other->excl)
			count_to_host(other->pg[os].bind, 1);
		slot_release(other, os, true);
	}
	slot_use(xm, (uint32_t)s, vpn, bind);
	sva__count(bind, SVA_C_EXCLUSIVE_GRANTS, 1);
	return PF_MOVED;
}

/*
 * The common case in one call: pages from @a on in host memory, no
 * discard of them in progress, into free slots in a row. Returns the
 * bytes moved (0: let page_to_dev() look at the page at @a). Caller:
 * mover_lock().
 */
static uint64_t run_move_to_dev(struct sva_bind *bind, struct sim_devmem *dm,
				uint64_t a, uint64_t end)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint32_t n = 0, first = 0, got, os;
	uint64_t moved;

	while (a + ((uint64_t)n << SVA_PAGE_SHIFT) < end &&
	       n < SIM_CHUNK_PAGES &&
	       !mm_lookup(mm, (a >> SVA_PAGE_SHIFT) + n, &os))
		n++;
	if (n < 2 || sim_mm_discard_pending(mm, a, a +
					    ((uint64_t)n << SVA_PAGE_SHIFT)))
		return 0;
	got = slot_alloc_run(dm, n, &first);
	if (got < 2) {
		slot_free_run(dm, first, got);
		return 0;
	}
	moved = uffd_move_run(mm, slot_addr(dm, first), a,
			      (uint64_t)got << SVA_PAGE_SHIFT, false);
	for (uint32_t i = 0; i < moved >> SVA_PAGE_SHIFT; i++)
		slot_use(dm, first + i, (a >> SVA_PAGE_SHIFT) + i, bind);
	slot_free_run(dm, first + (uint32_t)(moved >> SVA_PAGE_SHIFT),
		      got - (uint32_t)(moved >> SVA_PAGE_SHIFT));
	if (dm->excl) {
		sva__count(bind, SVA_C_EXCLUSIVE_GRANTS, moved >> SVA_PAGE_SHIFT);
		return moved;
	}
	sva__count(bind, SVA_C_MIGRATED_TO_DEV, moved >> SVA_PAGE_SHIFT);
	sva__count(bind, SVA_C_BYTES_TO_DEV, moved);
	return moved;
}

/* Move the pages of [start, end), one registered VMA's part, to @dm. */
static void run_to_dev(struct sva_bind *bind, struct sim_devmem *dm,
		       uint64_t start, uint64_t end,
		       struct sva_migrate_result *res, uint64_t span[2])
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct back_run ev = { .cause = SVA_TRACE_MIG_EVICTION };
	unsigned int tries = 0;
	int reason = 0;

	if (dm->excl)
		populate_for_write(mm, start, end);
	else
		populate_holes(mm, start, end);
	mover_lock(mm);
	for (uint64_t a = start; a < end;) {
		uint64_t moved = run_move_to_dev(bind, dm, a, end);

		if (moved) {
			res->moved += moved >> SVA_PAGE_SHIFT;
			span[0] = MIN(span[0], a);
			span[1] = MAX(span[1], a + moved);
			a += moved;
			continue;
		}
		/* One page, with everything that may be in its way. */
		switch (dm->excl ?
			page_to_xm(bind, dm, a >> SVA_PAGE_SHIFT, &reason) :
			page_to_dev(bind, dm, a >> SVA_PAGE_SHIFT, res, span,
				    &reason, &ev)) {
		case PF_MOVED:
			res->moved++;
			span[0] = MIN(span[0], a);
			span[1] = MAX(span[1], a + SVA_PAGE_SIZE);
			break;
		case PF_ALREADY:
			res->already++;
			break;
		case PF_FAIL:
			res->not_moved[reason]++;
			break;
		case PF_RETRY:
			/* An event is unread: let the event thread have it. */
			if (mover_backoff(mm, &tries))
				continue;
			res->not_moved[SVA_MIGRATE_BUSY]++;
			break;
		}
		tries = 0;
		a += SVA_PAGE_SIZE;
	}
	mover_unlock(mm);
	back_run_flush(&ev);
}

/* Why the pages of @vma can't move, or -1 if they may. */
static int vma_reason(const struct sim_vma *vma)
{
	if (!(vma->prot & SIM_PERM_R))
		return SVA_MIGRATE_PROT_NONE;
	if (vma->shared || vma->file)
		return SVA_MIGRATE_SHARED;
	if (!(vma->prot & SIM_PERM_W))
		return SVA_MIGRATE_READ_ONLY;
	return -1;
}

/* To the device's memory, or (@excl) into its exclusive hold. */
static int migrate_to_dev(struct sva_bind *bind, uint64_t addr, uint64_t len,
			  bool excl, struct sva_migrate_result *res,
			  uint64_t span[2])
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_devmem *dm;
	struct sim_vma vma;
	int err = 0, reason;

	dm = dm_get(bind, excl, &err);
	if (!dm)
		return err;
	dm_zap_dirty(mm, dm);
	for (uint64_t a = addr, e; a < addr + len; a = e) {
		if (!sim_mm_vma_now(mm, a, &vma)) {
			e = a + SVA_PAGE_SIZE;
			res->not_moved[SVA_MIGRATE_UNMAPPED]++;
			continue;
		}
		e = MIN(vma.end, addr + len);
		reason = vma_reason(&vma);
		if (reason < 0) {
			err = sim_mm_register_missing(mm, a, e);
			if (err == -EBUSY) {
				pr_warn("%#llx-%#llx is registered with another userfaultfd: not %s\n",
					(unsigned long long)a,
					(unsigned long long)e,
					excl ? "made exclusive" : "migrated");
				reason = SVA_MIGRATE_FOREIGN_UFFD;
			} else if (err == -EINVAL) {
				reason = SVA_MIGRATE_SHARED; /* file, hugetlb */
			} else if (err) {
				return sva_err(err, "can't register %#llx-%#llx for missing faults",
					       (unsigned long long)a,
					       (unsigned long long)e);
			}
		}
		if (reason >= 0)
			res->not_moved[reason] += (e - a) >> SVA_PAGE_SHIFT;
		else
			run_to_dev(bind, dm, a, e, res, span);
	}
	return 0;
}

/* ----------------------------------------------------- to the host */

/* Place the pages of [addr, addr + len) present on host node @node. */
static void place_on_node(struct sim_mm *mm, uint64_t addr, uint64_t len,
			  int node, const bool *from_dev,
			  struct sva_migrate_result *res)
{
	uint64_t addrs[SIM_CHUNK_PAGES], pm[SIM_CHUNK_PAGES];
	int status[SIM_CHUNK_PAGES], idx[SIM_CHUNK_PAGES];

	for (uint64_t a = addr; a < addr + len; a += SIM_CHUNK) {
		unsigned int n = (unsigned int)MIN((addr + len - a) >>
						   SVA_PAGE_SHIFT,
						   (uint64_t)SIM_CHUNK_PAGES);
		unsigned int m = 0, base = (unsigned int)((a - addr) >>
							  SVA_PAGE_SHIFT);
		long r;

		if (sim_mm_pagemap(mm, a >> SVA_PAGE_SHIFT, n, pm))
			return;
		for (unsigned int i = 0; i < n; i++) {
			if (!(pm[i] & SIM_PM_PRESENT))
				continue;
			idx[m] = (int)i;
			addrs[m++] = a + ((uint64_t)i << SVA_PAGE_SHIFT);
		}
		if (!m)
			continue;
		/* Where they are now (nodes NULL: a query). */
		r = pages_to_node(addrs, m, -1, status);
		for (unsigned int k = 0; k < m; k++) {
			bool moved_back = from_dev[base + idx[k]];

			if (!r && status[k] == node)
				continue;
			/* One at a time: a bad node fails the call whole. */
			if (pages_to_node(&addrs[k], 1, node, &status[k]) ||
			    status[k] != node) {
				if (moved_back)
					res->moved--;
				else
					res->already--;
				res->not_moved[SVA_MIGRATE_HOST_NODE]++;
			} else if (!moved_back) {
				res->already--;
				res->moved++;
			}
		}
	}
}

static int migrate_to_host(struct sva_bind *bind, uint64_t addr, uint64_t len,
			   int node, struct sva_migrate_result *res,
			   uint64_t span[2])
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t npages = len >> SVA_PAGE_SHIFT;
	struct sim_devmem *dm;
	struct sim_vma vma = { 0 };
	bool *from_dev;
	uint32_t s;
	unsigned int tries = 0;
	int err;

	from_dev = node >= 0 ? sva__zalloc(npages) : NULL;
	if (node >= 0 && !from_dev)
		return -ENOMEM;
	mover_lock(mm);
	for (uint64_t i = 0; i < npages;) {
		uint64_t a = addr + (i << SVA_PAGE_SHIFT);

		dm = list_empty(&mm->arenas) ? NULL :
		     mm_lookup(mm, a >> SVA_PAGE_SHIFT, &s);
		if (dm && dm->excl) {
			/*
			 * Held exclusively: in host memory already, and it
			 * stays held (migrate_vma_setup() leaves a
			 * device-exclusive entry alone).
			 */
			res->already++;
			i++;
			continue;
		}
		if (!dm) {
			/* On host memory already, if mapped at all. */
			if (vma.end <= a || vma.start > a) {
				mover_unlock(mm);
				if (!sim_mm_vma_now(mm, a, &vma))
					vma.start = vma.end = 0;
				mover_lock(mm);
			}
			if (vma.start <= a && a < vma.end)
				res->already++;
			else
				res->not_moved[SVA_MIGRATE_UNMAPPED]++;
			i++;
			continue;
		}
		/* Pages in a row in slots in a row: one move. */
		{
			uint64_t k = 1, moved;

			while (i + k < npages && k < SIM_CHUNK_PAGES &&
			       s + k < dm->npages &&
			       dm->pg[s + k].state == SIM_DP_USED &&
			       dm->pg[s + k].vpn == (a >> SVA_PAGE_SHIFT) + k)
				k++;
			for (uint64_t j = 0; j < k; j++)
				if (dm->pg[s + j].busy)
					k = j;
			moved = k > 1 ? uffd_move_run(mm, a, slot_addr(dm, s),
						      k << SVA_PAGE_SHIFT,
						      true) >> SVA_PAGE_SHIFT : 0;
			for (uint64_t j = moved; j > 0; j--) {
				count_to_host(dm->pg[s + j - 1].bind, 1);
				slot_release(dm, (uint32_t)(s + j - 1), true);
			}
			for (uint64_t j = 0; from_dev && j < moved; j++)
				from_dev[i + j] = true;
			if (moved) {
				res->moved += moved;
				span[0] = MIN(span[0], a);
				span[1] = MAX(span[1], a + (moved << SVA_PAGE_SHIFT));
				i += moved;
				continue;
			}
		}
		err = slot_to_host(mm, dm, s, true);
		if (err == -EAGAIN || err == -EBUSY) {
			if (mover_backoff(mm, &tries))
				continue;
			res->not_moved[SVA_MIGRATE_BUSY]++;
		} else if (err) {
			res->not_moved[SVA_MIGRATE_UNMAPPED]++;
		} else {
			res->moved++;
			if (from_dev)
				from_dev[i] = true;
			span[0] = MIN(span[0], a);
			span[1] = MAX(span[1], a + SVA_PAGE_SIZE);
		}
		tries = 0;
		i++;
	}
	mover_unlock(mm);
	if (node >= 0)
		place_on_node(mm, addr, len, node, from_dev, res);
	free(from_dev);
	return 0;
}

int sim_devmem_migrate(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       uint64_t to, struct sva_migrate_result *res)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t span[2] = { UINT64_MAX, 0 };
	int err;

	if (to == SVA_LOC_DEVICE)
		err = migrate_to_dev(bind, addr, len, false, res, span);
	else
		err = migrate_to_host(bind, addr, len, SVA_LOC_NODE_OF(to),
				      res, span);
	/* Free what munmap() and discards left in device memory (a
	 * migration to the device does it before it takes room). */
	if (to != SVA_LOC_DEVICE && sim_dev_of(bind)->dm)
		dm_zap_dirty(mm, sim_dev_of(bind)->dm);
	/* Mirrors see pages come and go, as MMU_NOTIFY_MIGRATE tells. */
	if (span[0] < span[1])
		sim_mm_invalidate(mm, span[0], span[1]);
	return err;
}

int sim_devmem_make_exclusive(struct sva_bind *bind, uint64_t addr,
			      uint64_t len, struct sva_migrate_result *res)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t span[2] = { UINT64_MAX, 0 };
	int err;

	err = migrate_to_dev(bind, addr, len, true, res, span);
	/*
	 * The grant takes the pages out of the CPU page table: mirrors
	 * are told (MMU_NOTIFY_EXCLUSIVE), this device's to see them held.
	 */
	if (span[0] < span[1])
		sim_mm_invalidate(mm, span[0], span[1]);
	return err;
}

void sim_devmem_fault_migrate(struct sva_bind *bind, const uint64_t *addrs,
			      unsigned int n)
{
	uint64_t v[SVA_ATTR_MAX], done_to = 0;

	if (!(bind->dev->caps.flags & SVA_CAP_MIGRATE) ||
	    sva__range_attrs_empty(&bind->attrs))
		return;
	for (unsigned int i = 0; i < n; i++) {
		struct sva_migrate_result r = { .sz = sizeof(r) };
		uint64_t size, start;

		if (addrs[i] < done_to)
			continue;	/* in the granule just moved */
		sva__range_attrs_at(&bind->attrs, addrs[i], v);
		if (v[SVA_ATTR_PREFERRED_LOC] != SVA_LOC_DEVICE ||
		    v[SVA_ATTR_ACCESSED_BY])
			continue;
		size = SVA_PAGE_SIZE << v[SVA_ATTR_GRANULARITY];
		start = addrs[i] & ~(size - 1);
		sva__migrate_run(bind, start, size, SVA_LOC_DEVICE, &r,
				 SVA_TRACE_MIG_DEV_FAULT);
		done_to = start + size;
	}
}

/* ------------------------------------------------ the event thread */

/*
 * No page in device memory at @addr: a fresh page, as the kernel maps.
 * Under dm_lock: a migration moving the page out between our look-up and
 * the fill would leave a zero page where its data should come back to.
 */
static bool fault_fill(struct sim_mm *mm, uint64_t addr)
{
	struct uffdio_copy c = {
		.dst = addr, .src = (uintptr_t)zero_page,
		.len = SVA_PAGE_SIZE,
	};

	if (!ioctl(mm->uffd, UFFDIO_COPY, &c))
		return true;
	if (errno == EAGAIN)
		return false;	/* an event is unread: it may move pages */
	/* Mapped by now (EEXIST), or gone: the thread tries again. */
	uffd_wake(mm, addr, SVA_PAGE_SIZE);
	return true;
}

/*
 * A CPU access to a page held exclusively: revoke it (the page, not a
 * granule; it stays on the node it is on), as the kernel's fault on a
 * device-exclusive entry restores the PTE and tells the device. Called
 * with dm_lock held; lets it go.
 */
static bool xm_fault(struct sim_mm *mm, struct sim_devmem *xm, uint32_t s,
		     uint64_t addr)
{
	int err = slot_to_host(mm, xm, s, false);

	sva__mutex_unlock(&mm->dm_lock);
	if (err == -EAGAIN)
		return false;
	/* Snapshots hear of it before the CPU access returns; the ATC and
	 * the callbacks after (inval_lock: the woken thread may hold it). */
	sim_mm_advance(mm, addr, addr + SVA_PAGE_SIZE);
	uffd_wake(mm, addr, SVA_PAGE_SIZE);
	sim_mm_invalidate(mm, addr, addr + SVA_PAGE_SIZE);
	return true;
}

bool sim_devmem_fault(struct sim_mm *mm, uint64_t addr)
{
	uint64_t vpn = addr >> SVA_PAGE_SHIFT, g0, gn, moved[512];
	struct sim_devmem *dm;
	struct sva_bind *owner;
	unsigned int gran = 0, nmoved = 0, refused = 0;
	int node, err, status[1];
	uint64_t t0 = 0;
	uint32_t s;

	sva__mutex_lock(&mm->dm_lock);
	dm = list_empty(&mm->arenas) ? NULL : mm_lookup(mm, vpn, &s);
	if (!dm) {
		bool done = fault_fill(mm, addr);

		sva__mutex_unlock(&mm->dm_lock);
		return done;
	}
	if (dm->pg[s].busy) {
		sva__mutex_unlock(&mm->dm_lock);
		return false;
	}
	owner = dm->pg[s].bind;
	if (dm->excl)
		return xm_fault(mm, dm, s, addr);
	if (owner && sva__tracing(owner->dev))
		t0 = sva__now_ns();
	node = preferred_node(owner, addr, &gran);
	err = slot_to_host(mm, dm, s, false);
	if (err == -EAGAIN) {
		sva__mutex_unlock(&mm->dm_lock);
		return false;
	}
	if (!err) {
		moved[nmoved++] = addr;
		sva__count(owner, SVA_C_CPU_FAULT_MIGRATIONS, 1);
	} else {
		refused++;
	}
	/* The rest of its granule comes along, as far as it can now. */
	g0 = vpn & ~((1ull << gran) - 1);
	gn = g0 + (1ull << gran);
	for (uint64_t v = g0; gran && v < gn && nmoved < ARRAY_SIZE(moved);
	     v++) {
		if (v == vpn || dm_lookup(dm, v) < 0)
			continue;
		s = (uint32_t)dm_lookup(dm, v);
		if (dm->pg[s].bind != owner)
			continue;
		if (!slot_to_host(mm, dm, s, false))
			moved[nmoved++] = v << SVA_PAGE_SHIFT;
		else
			refused++;
	}
	sva__mutex_unlock(&mm->dm_lock);
	/* On its preferred node before the faulting thread goes on. */
	for (unsigned int i = 0; node >= 0 && i < nmoved; i++)
		pages_to_node(&moved[i], 1, node, status);
	/* Snapshots hear of it before the CPU access returns (xm_fault). */
	if (nmoved)
		sim_mm_advance(mm, gran ? g0 << SVA_PAGE_SHIFT : addr,
			       gran ? gn << SVA_PAGE_SHIFT :
			       addr + SVA_PAGE_SIZE);
	if (gran)
		uffd_wake(mm, g0 << SVA_PAGE_SHIFT, (gn - g0) << SVA_PAGE_SHIFT);
	else
		uffd_wake(mm, addr, SVA_PAGE_SIZE);
	/* The one place a CPU access moves pages back: the fault's run,
	 * to its node, on the event thread that served it. */
	if (t0)
		sva__trace_migrate(owner, t0, 0, SVA_TRACE_MIG_TO_HOST,
				   SVA_TRACE_MIG_CPU_FAULT, node,
				   gran ? g0 << SVA_PAGE_SHIFT : addr, nmoved,
				   refused);
	if (nmoved)
		sim_mm_invalidate(mm, gran ? g0 << SVA_PAGE_SHIFT : addr,
				  gran ? gn << SVA_PAGE_SHIFT :
				  addr + SVA_PAGE_SIZE);
	return true;
}

/* Each page of [start, end) in @dm: small ranges by lookup, else a scan. */
static void dm_drop_range(struct sim_devmem *dm, uint64_t start, uint64_t end)
{
	uint64_t v0 = start >> SVA_PAGE_SHIFT, v1 = end >> SVA_PAGE_SHIFT;
	int64_t s;

	if (v1 - v0 <= dm->nused) {
		for (uint64_t v = v0; v < v1; v++)
			if ((s = dm_lookup(dm, v)) >= 0)
				slot_release(dm, (uint32_t)s, false);
		return;
	}
	for (uint32_t i = 0; i < dm->npages; i++)
		if (dm->pg[i].state == SIM_DP_USED && dm->pg[i].vpn >= v0 &&
		    dm->pg[i].vpn < v1)
			slot_release(dm, i, false);
}

void sim_devmem_drop(struct sim_mm *mm, uint64_t start, uint64_t end,
		     bool unmap)
{
	struct sim_devmem *dm;

	(void)unmap;
	sva__mutex_lock(&mm->dm_lock);
	list_for_each_entry(dm, &mm->arenas, node)
		if (dm->nused)
			dm_drop_range(dm, start & SVA_PAGE_MASK,
				      (end + SVA_PAGE_SIZE - 1) & SVA_PAGE_MASK);
	sva__mutex_unlock(&mm->dm_lock);
}

bool sim_devmem_in_arena(struct sim_mm *mm, uint64_t start, uint64_t end)
{
	struct sim_devmem *dm;
	bool ret = false;

	sva__mutex_lock(&mm->dm_lock);
	list_for_each_entry(dm, &mm->arenas, node) {
		if (start >= slot_addr(dm, 0) && end <= slot_addr(dm, dm->npages)) {
			ret = true;
			break;
		}
	}
	sva__mutex_unlock(&mm->dm_lock);
	return ret;
}

void sim_devmem_remap(struct sim_mm *mm, uint64_t from, uint64_t to,
		      uint64_t len)
{
	uint64_t v0 = from >> SVA_PAGE_SHIFT, v1 = (from + len) >> SVA_PAGE_SHIFT;
	int64_t delta = (int64_t)(to >> SVA_PAGE_SHIFT) - (int64_t)v0;
	struct sim_devmem *dm;

	sva__mutex_lock(&mm->dm_lock);
	list_for_each_entry(dm, &mm->arenas, node) {
		for (uint32_t i = 0; dm->nused && i < dm->npages; i++) {
			if (dm->pg[i].state != SIM_DP_USED ||
			    dm->pg[i].vpn < v0 || dm->pg[i].vpn >= v1)
				continue;
			hash_del(dm, i);
			dm->pg[i].vpn = (uint64_t)((int64_t)dm->pg[i].vpn + delta);
			hash_add(dm, i);
		}
	}
	sva__mutex_unlock(&mm->dm_lock);
}

/* ------------------------------------------------------ the engine */

unsigned int sim_devmem_pin(struct sva_bind *bind, uint64_t vpn,
			    unsigned int n, uint8_t *perm, unsigned int need,
			    uint64_t *local)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_dev *sd = sim_dev_of(bind);
	struct sim_devmem *dm, *xm;
	unsigned int pinned = 0, local_pages = 0, held = 0;
	struct sim_vma vma = { 0 };
	int64_t s;

	memset(local, 0, n * sizeof(*local));
	if (!__atomic_load_n(&sd->dm, __ATOMIC_ACQUIRE) &&
	    !__atomic_load_n(&sd->xm, __ATOMIC_ACQUIRE))
		return 0;
	sva__mutex_lock(&mm->dm_lock);
	dm = sd->dm;
	xm = sd->xm;
	for (unsigned int i = 0; (dm || xm) && i < n; i++) {
		struct sim_devmem *a = dm;

		if ((perm[i] & need) == need)
			continue;
		s = dm ? dm_lookup(dm, vpn + i) : -1;
		if (s < 0 && xm) {
			/* A VMA the device can't read: no access. */
			if (perm[i] & SIM_PERM_NONE)
				continue;
			a = xm;
			s = dm_lookup(xm, vpn + i);
		}
		if (s < 0)
			continue;
		a->pg[s].busy++;
		lru_del(a, (uint32_t)s);
		lru_add(a, (uint32_t)s);
		local[i] = slot_addr(a, (uint32_t)s);
		perm[i] = SIM_PERM_RW;
		if (a == xm)
			held++;
		else
			local_pages++;
		pinned++;
	}
	sva__mutex_unlock(&mm->dm_lock);
	if (local_pages)
		sva__count(bind, SVA_C_DEVMEM_ACCESSES, local_pages);
	if (!held)
		return pinned;
	/*
	 * Held pages: the device may write them if their VMA is writable
	 * now. mprotect() sends no event, so ask the kernel (not under
	 * dm_lock: the query may wait for the mm). A page the device may
	 * not access as it needs is let go: it faults, and the page
	 * request is answered as the VMA says (INVALID for a write to a
	 * read-only one), the page staying held.
	 */
	for (unsigned int i = 0; i < n; i++) {
		uint64_t addr = (vpn + i) << SVA_PAGE_SHIFT;
		unsigned int allowed;

		if (!local[i] || local[i] < (uintptr_t)xm->arena ||
		    local[i] >= slot_addr(xm, xm->npages))
			continue;
		if ((addr < vma.start || addr >= vma.end) &&
		    !sim_mm_vma_now(mm, addr, &vma))
			vma.start = vma.end = 0;
		allowed = addr >= vma.start && addr < vma.end ?
			  vma.prot & SIM_PERM_RW : 0;
		if ((allowed & need) == need) {
			perm[i] = (uint8_t)allowed;
			continue;
		}
		sim_devmem_unpin(bind, &local[i], 1);
		local[i] = 0;
		perm[i] = 0;
		pinned--;
	}
	return pinned;
}

void sim_devmem_unpin(struct sva_bind *bind, const uint64_t *local,
		      unsigned int n)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_devmem *dm = sim_dev_of(bind)->dm;
	struct sim_devmem *xm = sim_dev_of(bind)->xm;

	sva__mutex_lock(&mm->dm_lock);
	for (unsigned int i = 0; i < n; i++) {
		struct sim_devmem *a = dm;

		if (!local[i])
			continue;
		/* Which arena: the one whose range holds it. */
		if (!a || local[i] < (uintptr_t)a->arena ||
		    local[i] >= slot_addr(a, a->npages))
			a = xm;
		a->pg[(local[i] - (uintptr_t)a->arena) >> SVA_PAGE_SHIFT].busy--;
	}
	sva__mutex_unlock(&mm->dm_lock);
}

void sim_devmem_states(struct sva_bind *bind, uint64_t addr, uint64_t len,
		       uint8_t *states)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_vma vma = { 0 };
	struct sim_devmem *dm;
	uint64_t nheld = 0;
	uint32_t s;

	sva__mutex_lock(&mm->dm_lock);
	for (uint64_t i = 0; !list_empty(&mm->arenas) &&
	     i < len >> SVA_PAGE_SHIFT; i++) {
		dm = mm_lookup(mm, (addr >> SVA_PAGE_SHIFT) + i, &s);
		if (!dm)
			continue;
		if (dm->excl) {
			/*
			 * Held by another device: no CPU mapping, and no
			 * translation for this one (an access revokes it
			 * first), as hmm_range_fault() sees another's
			 * exclusive entry. Held by this one: its own.
			 */
			if (dm == sim_dev_of(bind)->xm &&
			    !(states[i] & SVA_PAGE_ERROR)) {
				states[i] = SVA_PAGE_VALID | SVA_PAGE_WRITE |
					    SVA_PAGE_EXCLUSIVE;
				nheld++;
			}
			continue;
		}
		states[i] = dm == sim_dev_of(bind)->dm ?
			    SVA_PAGE_VALID | SVA_PAGE_WRITE |
			    SVA_PAGE_DEVICE_LOCAL : SVA_PAGE_DEVICE_REMOTE;
	}
	sva__mutex_unlock(&mm->dm_lock);
	/* Writable as their VMA is now (mprotect() sends no event). */
	for (uint64_t i = 0; nheld && i < len >> SVA_PAGE_SHIFT; i++) {
		uint64_t a = addr + (i << SVA_PAGE_SHIFT);

		if (!(states[i] & SVA_PAGE_EXCLUSIVE))
			continue;
		nheld--;
		if ((a < vma.start || a >= vma.end) &&
		    !sim_mm_vma_now(mm, a, &vma))
			vma.start = vma.end = 0;
		if (a < vma.start || a >= vma.end ||
		    !(vma.prot & SIM_PERM_W))
			states[i] &= (uint8_t)~SVA_PAGE_WRITE;
	}
}

/* ------------------------------------------- unbind, close, fork */

/*
 * Move back every page of @dm owned by @bind (NULL: all). Waits out device
 * accesses and mm changes with the locks let go. Caller: mover_lock().
 */
static void dm_evict_all(struct sim_mm *mm, struct sim_devmem *dm,
			 struct sva_bind *bind, bool count, uint64_t span[2])
{
	struct back_run br = {
		.cause = count ? SVA_TRACE_MIG_FORK : SVA_TRACE_MIG_UNBIND,
	};
	bool again = false;

	for (unsigned int tries = 0; dm->nused && tries < SIM_EAGAIN_TRIES;
	     tries++) {
		again = false;
		for (uint32_t s = 0; s < dm->npages; s++) {
			struct sva_bind *owner = dm->pg[s].bind;
			uint64_t a = dm->pg[s].vpn << SVA_PAGE_SHIFT, t0 = 0;
			int err;

			if (dm->pg[s].state != SIM_DP_USED ||
			    (bind && owner != bind))
				continue;
			if (owner && sva__tracing(owner->dev))
				t0 = sva__now_ns();
			err = slot_to_host(mm, dm, s, true);
			if (err == -EAGAIN || err == -EBUSY)
				again = true;
			/* The one place fork and unbind move pages back. */
			if (t0 && err != -EAGAIN && err != -EBUSY)
				back_run_add(&br, owner, a, !err, t0, false);
			if (err)
				continue;
			if (count && !dm->excl)
				sva__count(owner, SVA_C_EVICTIONS, 1);
			span[0] = MIN(span[0], a);
			span[1] = MAX(span[1], a + SVA_PAGE_SIZE);
		}
		if (!again)
			break;
		mover_unlock(mm);
		usleep(50);
		mover_lock(mm);
	}
	back_run_flush(&br);
	if (again && dm->nused)
		pr_warn("%u pages of device memory held by device accesses: not moved back\n",
			dm->nused);
}

void sim_devmem_unbind(struct sva_bind *bind, bool last)
{
	struct sim_dev *sd = sim_dev_of(bind);
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	uint64_t span[2] = { UINT64_MAX, 0 };
	struct sim_devmem *dm, *xm;

	mover_lock(mm);
	dm = sd->dm;
	xm = sd->xm;
	if (dm)
		dm_evict_all(mm, dm, last ? NULL : bind, false, span);
	/* Its exclusive pages: revoked, back in place. */
	if (xm)
		dm_evict_all(mm, xm, last ? NULL : bind, false, span);
	if (dm && last) {
		list_del(&dm->node);
		sd->dm = NULL;
	}
	if (xm && last) {
		list_del(&xm->node);
		sd->xm = NULL;
	}
	mover_unlock(mm);
	if (span[0] < span[1])
		sim_mm_invalidate(mm, span[0], span[1]);
	/* munmap() of the arena waits for its event: no lock held. */
	if (dm && last)
		dm_free(dm);
	if (xm && last)
		dm_free(xm);
}

/*
 * Before fork(): every page back to host memory, mirrors told (not under
 * the locks: invalidating takes inval_lock for writing), then both locks
 * held across fork() so that nothing moves to a device meanwhile (fork()
 * sends our userfaultfd no event: nothing waits for the event thread).
 */
void sim_devmem_fork_prepare(struct sim_mm *mm)
{
	struct sim_devmem *dm;

	for (int round = 0; round < 8; round++) {
		uint64_t span[2] = { UINT64_MAX, 0 };

		mover_lock(mm);
		list_for_each_entry(dm, &mm->arenas, node)
			dm_evict_all(mm, dm, NULL, true, span);
		if (span[0] >= span[1])
			return;		/* nothing moved: keep the locks */
		mover_unlock(mm);
		sim_mm_invalidate(mm, span[0], span[1]);
	}
	mover_lock(mm);
}

void sim_devmem_fork_parent(struct sim_mm *mm)
{
	mover_unlock(mm);
}

/* The child leaves the parent's mm (and its held locks) alone. */
void sim_devmem_fork_child(void)
{
	sva__locks_forget(2);	/* mover_lock()'s two */
}
