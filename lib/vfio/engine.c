// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The VFIO backend's engine: a descriptor runs as chunks of at most
 * EDU_XFER bytes, each moved by edu's DMA engine through its 4 KiB buffer
 * (COPY: user -> buffer -> user; FILL: a staging page of ours holding the
 * pattern -> buffer, once, then buffer -> user; COMPARE and CRC32C: user
 * -> buffer -> staging, where the CPU computes on the library's own
 * copy). Every byte of the user's memory is read or written by the
 * device's DMA through the IOMMU, never by the CPU.
 *
 * The domain maps nothing between chunks. A chunk:
 *  1. makes its pages present as a page request would (the VMA must allow
 *     the access, then MADV_POPULATE_READ/WRITE), holding no lock: that
 *     may block on the application (its userfaultfd), whose handler may
 *     munmap() and wait for the event thread;
 *  2. maps the pages of VMAs we hear no invalidation of (the
 *     application's own userfaultfd holds them) at IOVA == VA in the
 *     device's container (type1's VFIO_IOMMU_MAP_DMA or iommufd's
 *     IOMMU_IOAS_MAP, the access it needs: read for a source, read and
 *     write for a destination), holding engine_lock only: their pin may
 *     wait on the application's handler (iommufd's pin does; type1's
 *     fails instead), and that handler may munmap() memory we track;
 *  3. takes the mm's inval_lock (read), checks in the page table that the
 *     pages are still there with the access granted (else unmaps and
 *     goes to 1. again), maps the others (present, in VMAs registered
 *     with our userfaultfd: no pin of theirs faults), runs the
 *     transfers, unmaps each (unpinned), and lets inval_lock go.
 * munmap(), MADV_DONTNEED and mremap() of a range registered with the mm's
 * userfaultfd (sim's event thread: every VMA a chunk looked up is) wait
 * until their event is read, which is read under inval_lock (write): they
 * return with no mapping of the range in the container and nothing of it
 * pinned, and a device write before them is ordered before them.
 *
 * A page that can't be made present ends the descriptor after the bytes
 * before it: FAULT_INVALID where the mapping forbids the access (no VMA,
 * PROT_NONE, a write to read-only), FAULT_FAILURE where populating failed
 * (SIGBUS, no memory, poison) or the IOMMU refused the mapping.
 */
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "vfio.h"

/* Retries of a chunk whose pages went away between populate and map. */
#define VFIO_CHUNK_RETRIES 16

struct side {
	uint64_t addr;			/* first byte of the chunk */
	unsigned int access;		/* SVA_ACCESS_READ or _WRITE */
};

/* Pages a chunk maps: 2 per side (<= 2 KiB each) and the staging page. */
#define VFIO_CHUNK_MAPS 5

struct chunk_map {
	uint64_t page;
	uint32_t perm;			/* VFIO_MAP_READ, _WRITE */
};

struct chunk {
	struct side side[2];
	unsigned int nsides;
	uint64_t len;
	bool stage;			/* maps the staging page */
	struct chunk_map map[VFIO_CHUNK_MAPS];
	unsigned int nmap;
	unsigned int nearly;		/* map[0, nearly): untracked */
};

/* ------------------------------------------------------------ the engine */

static void edu_write64(struct vfio_dev *vd, unsigned int reg, uint64_t v)
{
	*(volatile uint64_t *)(vd->bar0 + reg) = v;
}

static uint64_t edu_read64(struct vfio_dev *vd, unsigned int reg)
{
	return *(volatile uint64_t *)(vd->bar0 + reg);
}

/*
 * One DMA transfer of @cnt (<= EDU_XFER) bytes, waited for: QEMU runs it
 * 100 ms (virtual) after the command. -ETIMEDOUT if the engine never
 * finishes. Caller holds engine_lock.
 */
static int edu_xfer(struct vfio_dev *vd, uint64_t src, uint64_t dst,
		    uint64_t cnt, bool to_ram)
{
	struct timespec nap = { 0, 1000000 };
	uint64_t t0 = sva__now_ns();

	if (vd->dead)
		return -EIO;
	/*
	 * Idle first: edu ignores register writes while a transfer runs,
	 * and one may (a process killed mid-DMA left it running: VFIO
	 * can't reset edu, which has no reset).
	 */
	while (edu_read64(vd, EDU_REG_DMA_CMD) & EDU_DMA_RUN) {
		if (sva__now_ns() - t0 > EDU_TIMEOUT_NS) {
			vd->dead = true;
			return sva_err(-ETIMEDOUT, "%s: DMA engine busy for %llu s",
				       vd->bdf,
				       EDU_TIMEOUT_NS / 1000000000ull);
		}
		nanosleep(&nap, NULL);
	}
	edu_write64(vd, EDU_REG_DMA_SRC, src);
	edu_write64(vd, EDU_REG_DMA_DST, dst);
	edu_write64(vd, EDU_REG_DMA_CNT, cnt);
	edu_write64(vd, EDU_REG_DMA_CMD,
		    EDU_DMA_RUN | (to_ram ? EDU_DMA_TO_RAM : 0));
	while (edu_read64(vd, EDU_REG_DMA_CMD) & EDU_DMA_RUN) {
		if (sva__now_ns() - t0 > EDU_TIMEOUT_NS) {
			vd->dead = true;
			return sva_err(-ETIMEDOUT, "%s: DMA of %llu bytes not done after %llu s",
				       vd->bdf, (unsigned long long)cnt,
				       EDU_TIMEOUT_NS / 1000000000ull);
		}
		nanosleep(&nap, NULL);
	}
	return 0;
}

/* --------------------------------------------------------------- pages */

/*
 * Make [addr, addr + len) present for @access, page by page. Returns the
 * bytes from @addr made so (len: all), with the failing byte's status in
 * @status (FAULT_INVALID or FAULT_FAILURE).
 */
static uint64_t side_populate(struct sim_mm *mm, uint64_t addr, uint64_t len,
			      unsigned int access, uint32_t *status)
{
	uint64_t page = addr & SVA_PAGE_MASK, end = addr + len;
	unsigned int need = access & SVA_ACCESS_WRITE ? SIM_PERM_W :
				SIM_PERM_R;
	struct sim_vma vma;

	for (; page < end; page += SVA_PAGE_SIZE) {
		uint64_t done = page > addr ? page - addr : 0;

		if (!sim_mm_vma_now(mm, page, &vma) ||
		    (vma.prot & need) != need ||
		    !(vma.prot & SIM_PERM_R)) {
			*status = SVA_STATUS_FAULT_INVALID;
			return done;
		}
		if (madvise((void *)(uintptr_t)page, SVA_PAGE_SIZE,
			    need & SIM_PERM_W ? MADV_POPULATE_WRITE :
						MADV_POPULATE_READ)) {
			*status = errno == EINVAL || errno == EPERM ?
				  SVA_STATUS_FAULT_INVALID :
				  SVA_STATUS_FAULT_FAILURE;
			return done;
		}
	}
	return len;
}

/* Does the page table grant @access on the chunk's bytes of @s? Caller
 * holds inval_lock (read). */
static bool side_present(struct sim_mm *mm, const struct side *s,
			 uint64_t len)
{
	uint64_t vpn = s->addr >> SVA_PAGE_SHIFT;
	unsigned int n = (unsigned int)(((s->addr + len - 1) >>
					 SVA_PAGE_SHIFT) - vpn + 1);
	unsigned int need = s->access & SVA_ACCESS_WRITE ?
			    SIM_PERM_R | SIM_PERM_W : SIM_PERM_R;
	uint8_t perm[2];
	bool tracked;

	if (n > ARRAY_SIZE(perm) || sim_mm_translate(mm, vpn, n, perm,
						     &tracked))
		return false;
	for (unsigned int i = 0; i < n; i++)
		if ((perm[i] & need) != need || (perm[i] & SIM_PERM_NONE))
			return false;
	return true;
}

/*
 * May the chunk be mapped now? 0; -EAGAIN: a page is no longer present
 * with the access granted, or one to map under inval_lock is no longer
 * in a VMA we hear of (as our VMA cache has it: an entry a munmap() left,
 * its event unread, still covers a new mapping there, which this doesn't
 * see); -EBUSY: a discard (MADV_DONTNEED) of its range is under way, its
 * zap still to come. Caller holds inval_lock (read).
 */
static int chunk_ready(struct sim_mm *mm, const struct chunk *c,
		       const uint8_t *stage)
{
	/* A page mapped under inval_lock must be in a VMA we still hear of:
	 * one taken over since by the application's userfaultfd could have
	 * its pin wait on that handler here. */
	for (unsigned int i = c->nearly; i < c->nmap; i++)
		if (c->map[i].page != (uint64_t)(uintptr_t)stage &&
		    !sim_mm_page_tracked(mm, c->map[i].page))
			return -EAGAIN;
	for (unsigned int i = 0; i < c->nsides; i++) {
		const struct side *s = &c->side[i];

		if (sim_mm_discard_pending(mm, s->addr & SVA_PAGE_MASK,
					   s->addr + c->len))
			return -EBUSY;
		if (!side_present(mm, s, c->len))
			return -EAGAIN;
	}
	return 0;
}

/*
 * Where a chunk the IOMMU refused faults: in the side whose page @bad is
 * (0: none known; or the staging page), else at the first side's start.
 */
static const struct side *bad_side(const struct chunk *c, uint64_t *bad)
{
	for (unsigned int i = 0; i < c->nsides && *bad; i++)
		if ((c->side[i].addr & SVA_PAGE_MASK) <= *bad &&
		    *bad < c->side[i].addr + c->len) {
			*bad = MAX(*bad, c->side[i].addr);
			return &c->side[i];
		}
	*bad = c->side[0].addr;
	return &c->side[0];
}

static void chunk_add_page(struct chunk *c, uint64_t page, uint32_t perm)
{
	for (unsigned int i = 0; i < c->nmap; i++) {
		if (c->map[i].page == page) {
			c->map[i].perm |= perm;
			return;
		}
	}
	c->map[c->nmap++] = (struct chunk_map){ page, perm };
}

/*
 * The pages the chunk maps, those of VMAs whose invalidations we don't
 * hear of first (map[0, nearly): the application's own userfaultfd holds
 * them, or the mapping's kind keeps them from ours). Their pin may wait
 * on that userfaultfd's handler, which may munmap() memory we do track,
 * whose event is read under inval_lock (write): they are mapped before
 * inval_lock is taken (no event orders their unmaps anyway, libsva(7)).
 */
static void chunk_pages(struct sim_mm *mm, struct chunk *c,
			const uint8_t *stage)
{
	c->nmap = 0;
	for (unsigned int i = 0; i < c->nsides; i++) {
		const struct side *s = &c->side[i];
		uint32_t f = VFIO_MAP_READ;

		if (s->access & SVA_ACCESS_WRITE)
			f |= VFIO_MAP_WRITE;
		for (uint64_t p = s->addr & SVA_PAGE_MASK; p < s->addr + c->len;
		     p += SVA_PAGE_SIZE)
			chunk_add_page(c, p, f);
	}
	if (c->stage)
		chunk_add_page(c, (uint64_t)(uintptr_t)stage,
			       VFIO_MAP_READ | VFIO_MAP_WRITE);
	c->nearly = 0;
	for (unsigned int i = 0; i < c->nmap; i++) {
		struct chunk_map m = c->map[i];

		if (m.page == (uint64_t)(uintptr_t)stage ||
		    sim_mm_page_tracked(mm, m.page))
			continue;
		c->map[i] = c->map[c->nearly];
		c->map[c->nearly++] = m;
	}
}

/*
 * The domain's statistics (struct sva_stats), on @bind and its device:
 * @mapped pages mapped, @unmapped pages unmapped by @unmaps unmaps (each
 * one the IOMMU drops IOTLB entries for); pinned_now follows.
 */
static void count_domain(struct sva_bind *bind, uint64_t mapped,
			 uint64_t unmapped, uint64_t unmaps)
{
	sva__count(bind, SVA_C_IOMMU_MAPPED, mapped);
	sva__count(bind, SVA_C_IOMMU_UNMAPPED, unmapped);
	sva__count(bind, SVA_C_IOTLB_UNMAPS, unmaps);
	/* A gauge: up by what was mapped, down (modulo 2^64) by what was
	 * unmapped; each container pins what it maps until it's unmapped. */
	sva__count(bind, SVA_C_PINNED_NOW, mapped - unmapped);
}

/* Unmap pages [from, to) of @c; how many were. */
static unsigned int unmap_pages(struct vfio_dev *vd, struct sva_bind *bind,
				const struct chunk *c, unsigned int from,
				unsigned int to)
{
	unsigned int done = 0;

	for (unsigned int i = from; i < to; i++) {
		int64_t got;

		/* A lost unmap, for the test of stale_sweep(). */
		if (sva__inject(SVA_INJECT_VFIO_SKIP_UNMAP))
			continue;
		got = vd->cont.ops->unmap(vd, c->map[i].page, SVA_PAGE_SIZE);

		if (got != SVA_PAGE_SIZE) {
			pr_warn("%s: %s unmap of IOVA %#llx: %s\n", vd->bdf,
				vd->cont.ops->name,
				(unsigned long long)c->map[i].page,
				got < 0 ? strerror((int)-got) :
				"not the page mapped");
		} else {
			vfio_live_del(vd, c->map[i].page);
			done++;
		}
	}
	vd->mapped_now -= done;
	count_domain(bind, 0, done, done);
	return done;
}

/*
 * Between chunks the container maps nothing (every mapping is made and
 * removed under engine_lock): ask the container to unmap everything
 * (type1: VFIO_DMA_UNMAP_FLAG_ALL, iommufd: IOMMU_IOAS_UNMAP of 0 to
 * U64_MAX), which must find nothing. A mapping found is a stale one, reported and gone.
 * Caller holds engine_lock.
 */
static void stale_sweep(struct vfio_dev *vd, struct sva_bind *bind)
{
	int64_t left;

	/* What the table still holds outlived its chunk: which of it maps
	 * memory the process no longer has, or with more access than its
	 * VMA grants (/proc/self/maps), is said before it goes. */
	vfio_live_check(vd, true);
	left = vd->cont.ops->unmap_all(vd);
	if (left < 0)
		return;
	vfio_live_clear(vd);
	/* What it found was mapped by this chunk, of this binding. */
	if (left)
		count_domain(bind, 0, (uint64_t)left / SVA_PAGE_SIZE, 1);
	if (left || vd->mapped_now)
		pr_warn("%s: %llu bytes stayed mapped in the %s container after a chunk (%llu pages not unmapped): unmapped now\n",
			vd->bdf, (unsigned long long)left, vd->cont.ops->name,
			(unsigned long long)vd->mapped_now);
	vd->mapped_now = 0;
}

/* Map pages [from, to) of the chunk at IOVA == VA; 0, or the failing
 * page's errno with none of them left mapped. Caller holds engine_lock
 * (and inval_lock for tracked pages). */
static int map_pages(struct vfio_dev *vd, struct sva_bind *bind,
		     const struct chunk *c, unsigned int from, unsigned int to,
		     uint64_t *bad)
{
	for (unsigned int i = from; i < to; i++) {
		int err = vd->cont.ops->map(vd, c->map[i].page, SVA_PAGE_SIZE,
					    c->map[i].perm);

		if (err) {
			*bad = c->map[i].page;
			pr_debug("%s: %s map of %#llx: %s\n", vd->bdf,
				 vd->cont.ops->name, (unsigned long long)*bad,
				 strerror(-err));
			unmap_pages(vd, bind, c, from, i);
			return err;
		}
		vfio_live_add(vd, c->map[i].page, c->map[i].perm);
		count_domain(bind, 1, 0, 0);
		vd->mapped_now++;
	}
	return 0;
}

/* ------------------------------------------------------------- the ops */

struct exec_state {
	const struct sva_desc *d;
	uint8_t *stage;			/* [0, EDU_XFER): A, then B */
	bool fill_loaded;		/* edu's buffer holds the pattern */
	uint32_t crc;
	bool differ;
	uint64_t differ_at;
};

/* The transfers of one chunk; its pages are mapped. */
static int chunk_run(struct vfio_dev *vd, struct exec_state *st,
		     const struct chunk *c)
{
	const struct sva_desc *d = st->d;
	uint64_t a = (uint64_t)(uintptr_t)st->stage;
	uint64_t b = a + EDU_XFER, n = c->len;
	int err = 0;

	switch (d->opcode) {
	case SVA_OP_COPY:
		err = edu_xfer(vd, c->side[0].addr, EDU_BUF, n, false);
		if (!err)
			err = edu_xfer(vd, EDU_BUF, c->side[1].addr, n, true);
		break;
	case SVA_OP_FILL:
		if (!st->fill_loaded) {
			err = edu_xfer(vd, a, EDU_BUF, EDU_XFER, false);
			st->fill_loaded = !err;
		}
		if (!err)
			err = edu_xfer(vd, EDU_BUF, c->side[0].addr, n, true);
		break;
	case SVA_OP_CRC32C:
		err = edu_xfer(vd, c->side[0].addr, EDU_BUF, n, false);
		if (!err)
			err = edu_xfer(vd, EDU_BUF, a, n, true);
		break;
	case SVA_OP_COMPARE:
		err = edu_xfer(vd, c->side[0].addr, EDU_BUF, n, false);
		if (!err)
			err = edu_xfer(vd, EDU_BUF, a, n, true);
		if (!err)
			err = edu_xfer(vd, c->side[1].addr, EDU_BUF, n, false);
		if (!err)
			err = edu_xfer(vd, EDU_BUF, b, n, true);
		break;
	}
	return err;
}

/* The CPU's part: on the library's own staging bytes only. */
static void chunk_compute(struct exec_state *st, uint64_t n)
{
	const uint8_t *a = st->stage, *b = st->stage + EDU_XFER;

	if (st->d->opcode == SVA_OP_CRC32C)
		st->crc = sva_crc32c(st->crc, a, n);
	if (st->d->opcode == SVA_OP_COMPARE) {
		for (uint64_t i = 0; i < n; i++) {
			if (a[i] != b[i]) {
				st->differ = true;
				st->differ_at = i;
				break;
			}
		}
	}
}

/* The chunk's sides at offset @off of the descriptor. */
static void chunk_sides(const struct sva_desc *d, uint64_t off,
			struct chunk *c)
{
	c->nsides = 0;
	c->stage = d->opcode != SVA_OP_COPY;
	switch (d->opcode) {
	case SVA_OP_COPY:
	case SVA_OP_COMPARE:
		c->side[c->nsides++] = (struct side){ d->src + off,
						      SVA_ACCESS_READ };
		c->side[c->nsides++] = (struct side){
			d->dst + off, d->opcode == SVA_OP_COPY ?
				      SVA_ACCESS_WRITE : SVA_ACCESS_READ };
		break;
	case SVA_OP_CRC32C:
		c->side[c->nsides++] = (struct side){ d->src + off,
						      SVA_ACCESS_READ };
		break;
	case SVA_OP_FILL:
		c->side[c->nsides++] = (struct side){ d->dst + off,
						      SVA_ACCESS_WRITE };
		break;
	}
}

/*
 * Make the chunk's pages present; shorten it before the first byte that
 * can't be (its fault into @comp, to report once the bytes before it are
 * done). False: nothing of it can be.
 */
static bool chunk_populate(struct sim_mm *mm, struct chunk *c,
			   struct sva_completion *pending)
{
	for (unsigned int i = 0; i < c->nsides; i++) {
		uint32_t status = 0;
		uint64_t ok = side_populate(mm, c->side[i].addr, c->len,
					    c->side[i].access, &status);

		if (ok < c->len) {
			c->len = ok;
			sva__complete_fault(pending, status, c->side[i].addr + ok,
				       c->side[i].access);
		}
	}
	return c->len > 0;
}

void vfio_exec(struct sva_bind *bind, const struct sva_desc *d,
	       struct sva_completion *comp)
{
	struct vfio_bind *vb = vfio_bind_of(bind);
	struct vfio_dev *vd = vfio_dev_of(bind);
	struct sim_mm *mm = vb->sb.mm;
	struct exec_state st = { .d = d, .stage = vb->stage,
				 .crc = (uint32_t)d->pattern };
	struct sva_completion pending = { 0 };
	uint64_t off = 0, bad = 0;
	int err = 0;

	if (d->opcode == SVA_OP_FILL) {
		for (unsigned int i = 0; i < EDU_XFER; i++)
			vb->stage[i] = (uint8_t)(d->pattern >> (8 * (i % 8)));
	}
	while (d->opcode != SVA_OP_NOP && off < d->len && !st.differ &&
	       !pending.status) {
		struct chunk c = { .len = MIN(EDU_XFER, d->len - off) };
		unsigned int tries = 0;

		if (sva__dev_quarantined(bind->dev)) {
			comp->status = SVA_STATUS_QUARANTINED;
			break;
		}
		chunk_sides(d, off, &c);
		/* FILL's pattern is in edu's buffer after the first load. */
		if (d->opcode == SVA_OP_FILL && st.fill_loaded)
			c.stage = false;
		for (;;) {
			int why;

			/* Page by page, so the part before a fault runs. */
			if (!chunk_populate(mm, &c, &pending))
				break;
			sva__mutex_lock(&vd->engine_lock);
			chunk_pages(mm, &c, vb->stage);
			why = map_pages(vd, bind, &c, 0, c.nearly, &bad) ?
			      -EAGAIN : 0;
			if (!why) {
				sva__rwlock_rdlock(&mm->inval_lock);
				why = chunk_ready(mm, &c, vb->stage);
				if (!why &&
				    !map_pages(vd, bind, &c, c.nearly, c.nmap,
					       &bad))
					break;	/* mapped, locks held */
				if (!why)
					why = -EAGAIN;
				unmap_pages(vd, bind, &c, 0, c.nearly);
				sva__rwlock_unlock(&mm->inval_lock);
			}
			/* An unmap that failed: its page goes now, not at
			 * the next chunk's end (a retry mapping it again
			 * would fail on it). */
			if (vd->mapped_now)
				stale_sweep(vd, bind);
			sva__mutex_unlock(&vd->engine_lock);
			/* A discard whose zap is still to come: wait it out,
			 * or the zap could pass a page we pinned. */
			if (why == -EBUSY)
				sim_mm_sync(mm);
			/* Zapped or unmapped since (or the IOMMU refused):
			 * populate again, which says why if it can't. */
			if (++tries == VFIO_CHUNK_RETRIES) {
				const struct side *f = bad_side(&c, &bad);

				sva__complete_fault(&pending,
					       SVA_STATUS_FAULT_FAILURE, bad,
					       f->access);
				c.len = 0;
				break;
			}
		}
		if (!c.len)
			break;
		/* translations: pages mapped in the IOMMU, each a miss (no
		 * translation is kept between chunks); atc_invalidated:
		 * pages unmapped (IOTLB entries dropped). */
		sva__count(bind, SVA_C_TRANSLATIONS, c.nmap);
		sva__count(bind, SVA_C_ATC_MISSES, c.nmap);
		err = chunk_run(vd, &st, &c);
		sva__count(bind, SVA_C_ATC_INVALIDATED,
			   unmap_pages(vd, bind, &c, 0, c.nmap));
		stale_sweep(vd, bind);
		sva__rwlock_unlock(&mm->inval_lock);
		sva__mutex_unlock(&vd->engine_lock);
		if (err) {
			sva__complete_fault(comp, SVA_STATUS_FAULT_FAILURE,
				       c.side[0].addr, c.side[0].access);
			break;
		}
		chunk_compute(&st, c.len);
		off += st.differ ? st.differ_at : c.len;
	}
	if (pending.status && !st.differ && !comp->status)
		sva__complete_fault(comp, pending.status, pending.fault_addr,
			       pending.fault_access);
	comp->bytes_done = off;
	if (d->opcode == SVA_OP_CRC32C)
		comp->result = st.crc;
	if (d->opcode == SVA_OP_COMPARE)
		comp->result = st.differ;
}
