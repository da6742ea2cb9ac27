// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The software device's engine: runs a descriptor as bursts of up to
 * SIM_CHUNK bytes. Each burst translates its pages (ATC first, then the
 * IOMMU's walk of the CPU page table), moves the bytes of the pages it may
 * access, and on a translation fault either ends the descriptor with a
 * partial completion or raises a page request group and waits (block on
 * fault), as a DSA-style device does.
 *
 * The device never dereferences the bound addresses itself: the kernel's
 * process_vm_readv/writev move the bytes, so a page unmapped under a burst
 * makes the burst short, never a SIGSEGV.
 *
 * No library lock is held across the access. It may block on the
 * application (a page its userfaultfd write-protects or leaves missing),
 * whose fault handler may munmap() memory the device touched, which waits
 * for the event thread, which needs inval_lock for writing: holding it
 * here deadlocked (issue 7, defect 6). A burst translates under inval_lock
 * (read), lets go, and accesses; an invalidation between the two (seen in
 * inval_gen) makes it translate again first.
 *
 * What "no device access uses a translation after the munmap() that
 * dropped it returned" means here: the access is a system call on the
 * live mm, so each byte goes to or comes from the page mapped at its
 * address at the instant it moves, under the protections then in force,
 * as a CPU access from another thread would; no byte can reach a page
 * after munmap()/madvise() took it away (the kernel won't let it). What
 * the device keeps is translations (the ATC), and those are ordered by
 * inval_lock: cached before an invalidation, dropped by it; looked up
 * after it, current. A burst whose access races an invalidation moves
 * each byte as the mm is at that instant: an unmapped page stops it (a
 * short access: translate again, then fault), a page discarded under it is
 * faulted in again by the kernel as a racing CPU access would be.
 */
#include <sched.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sim.h"

/* Short accesses in a row before a page counts as inaccessible. */
#define SIM_MAX_STALLS 64
/*
 * How long page requests may be answered SUCCESS with no progress (the
 * pages invalidated again before the device got to them) before the
 * descriptor fails, as HMM_RANGE_DEFAULT_TIMEOUT bounds hmm_range_fault().
 */
#define SIM_STALL_TIMEOUT_NS 1000000000ull
/* Translations of a burst redone when invalidations keep coming. */
#define SIM_RETRANSLATE 8

struct burst_faults {
	uint64_t addr[2 * SIM_CHUNK_PAGES];	/* pages, for page requests */
	unsigned int access[2 * SIM_CHUNK_PAGES];
	unsigned int n;
	uint64_t first;		/* the first byte that stopped the burst */
	uint64_t first_off;	/* its offset into the burst */
	unsigned int first_access;
};

/*
 * How many bytes from @addr (up to @len, within SIM_CHUNK_PAGES pages) the
 * device may access with @need; pages it may not go to @bf.
 */
static uint64_t burst_translate(struct sva_bind *bind, uint64_t addr,
				uint64_t len, unsigned int need,
				struct burst_faults *bf, unsigned int max,
				uint64_t *local, unsigned int *npinned)
{
	struct sim_dev *sd = sim_dev_of(bind);
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	bool use_atc = !(bind->dev->opts.flags & SVA_DEV_NO_ATC);
	uint64_t vpn = addr >> SVA_PAGE_SHIFT, ok = len;
	unsigned int n = (unsigned int)(((addr + len - 1) >> SVA_PAGE_SHIFT) -
					vpn + 1);
	uint8_t perm[SIM_CHUNK_PAGES], hit[SIM_CHUNK_PAGES];
	unsigned int nhit = 0, need_perm = need & SVA_ACCESS_WRITE ?
				SIM_PERM_W : SIM_PERM_R;
	bool tracked = false;

	for (unsigned int i = 0; i < n; i++) {
		perm[i] = use_atc ? (uint8_t)sim_atc_lookup(&sd->atc,
							    bind->pasid,
							    vpn + i) : 0;
		hit[i] = (perm[i] & need_perm) == need_perm;
		nhit += hit[i];
	}
	sva__count(bind, SVA_C_TRANSLATIONS, n);
	sva__count(bind, SVA_C_ATC_HITS, nhit);
	sva__count(bind, SVA_C_ATC_MISSES, n - nhit);
	if (nhit < n) {
		if (sim_mm_translate(mm, vpn, n, perm, &tracked))
			memset(perm, 0, n);
		for (unsigned int i = 0; use_atc && tracked && i < n; i++)
			if (!hit[i] && (perm[i] & SIM_PERM_RW))
				sim_atc_fill(&sd->atc, bind->pasid, vpn + i,
					     perm[i]);
	}
	/* Pages in the device's own memory: local, no translation. */
	*npinned = n;
	if (!sim_devmem_pin(bind, vpn, n, perm, need_perm, local))
		*npinned = 0;
	for (unsigned int i = 0; i < n; i++) {
		uint64_t page = (vpn + i) << SVA_PAGE_SHIFT;

		if ((perm[i] & need_perm) == need_perm)
			continue;
		if (ok == len)
			ok = page > addr ? page - addr : 0;
		if (ok == (page > addr ? page - addr : 0) &&
		    (!bf->n || ok < bf->first_off)) {
			bf->first = addr + ok;
			bf->first_off = ok;
			bf->first_access = need;
		}
		if (bf->n < max) {
			bf->addr[bf->n] = page;
			bf->access[bf->n++] = need;
		}
	}
	return ok;
}

struct exec_state {
	const struct sva_desc *d;
	/* Arena addresses of the burst's pages in device memory, from the
	 * page of src/dst + off on (0: host memory), and how many pages
	 * each array pins (0: none pinned). */
	uint64_t src_local[SIM_CHUNK_PAGES], dst_local[SIM_CHUNK_PAGES];
	unsigned int src_pinned, dst_pinned;
	uint64_t off;		/* bytes done */
	uint64_t limit;		/* bytes to do: len, or up to a fault */
	uint32_t crc;
	bool differ;		/* COMPARE found a difference at off */
	uint8_t *b0, *b1;
	pid_t pid;		/* whose memory: the bound mm's */
};

/*
 * The iovecs of [addr, addr + len): a page in device memory is its arena
 * slot, the others their own address (@local from addr's page on).
 */
static unsigned int build_iov(uint64_t addr, size_t len,
			      const uint64_t *local, unsigned int pinned,
			      struct iovec *iov)
{
	unsigned int n = 0;

	for (size_t done = 0, i = 0; done < len; i++) {
		size_t in_page = (addr + done) & ~SVA_PAGE_MASK;
		size_t piece = MIN(len - done, SVA_PAGE_SIZE - in_page);
		uint64_t at = pinned && local[i] ? local[i] + in_page :
			      addr + done;

		if (n && (uintptr_t)iov[n - 1].iov_base + iov[n - 1].iov_len == at)
			iov[n - 1].iov_len += piece;
		else
			iov[n++] = (struct iovec){ (void *)(uintptr_t)at, piece };
		done += piece;
	}
	return n;
}

/* @pid: the bound process, this one (no getpid() system call each time). */
static size_t vm_readv(pid_t pid, const struct iovec *l, unsigned int ln,
		       const struct iovec *r, unsigned int rn)
{
	ssize_t n = process_vm_readv(pid, l, ln, r, rn, 0);

	return n > 0 ? (size_t)n : 0;
}

static size_t vm_writev(pid_t pid, const struct iovec *l, unsigned int ln,
			const struct iovec *r, unsigned int rn)
{
	ssize_t n = process_vm_writev(pid, l, ln, r, rn, 0);

	return n > 0 ? (size_t)n : 0;
}

/*
 * FILL's source: FILL_SPAN bytes of the pattern from phase 0 and 8 more,
 * so that a span from any phase is in it. A burst writes the same span
 * again and again (it stays in the cache): setting up a descriptor costs
 * a page, not a chunk.
 */
#define FILL_SPAN SVA_PAGE_SIZE

static void fill_span(uint8_t *b0, uint64_t pattern)
{
	uint8_t p[8];

	for (unsigned int i = 0; i < 8; i++)
		p[i] = (uint8_t)(pattern >> (8 * i));
	for (size_t i = 0; i < FILL_SPAN + 8; i += 8)
		memcpy(b0 + i, p, 8);
}

/* Where two buffers first differ (@len if nowhere): memcmp finds the block. */
static size_t first_difference(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i += 256) {
		size_t n = MIN(len - i, (size_t)256);

		if (!memcmp(a + i, b + i, n))
			continue;
		while (a[i] == b[i])
			i++;
		return i;
	}
	return len;
}

/*
 * Move @len bytes at the state's offset; returns the bytes done. The
 * kernel moves them (a fault is a short count, never a signal), and moves
 * them once: what the device writes goes from the source (or the
 * pattern) straight to the destination's pages, exactly its bytes; only
 * what the device consumes itself (CRC32C, COMPARE) lands in a buffer.
 */
static size_t burst_access(struct exec_state *st, size_t len)
{
	const struct sva_desc *d = st->d;
	struct iovec siov[SIM_CHUNK_PAGES + 1], diov[SIM_CHUNK_PAGES + 1];
	struct iovec buf, piov[SIM_CHUNK / FILL_SPAN + 1];
	unsigned int sn = 0, dn = 0, pn = 0;
	size_t done, n1;

	if (d->src)
		sn = build_iov(d->src + st->off, len, st->src_local,
			       st->src_pinned, siov);
	if (d->dst)
		dn = build_iov(d->dst + st->off, len, st->dst_local,
			       st->dst_pinned, diov);
	switch (d->opcode) {
	case SVA_OP_COPY:
		/* The kernel copies src (the "remote") into dst. */
		return vm_readv(st->pid, diov, dn, siov, sn);
	case SVA_OP_FILL:
		/* Spans of a multiple of 8 bytes: each starts at our phase. */
		for (size_t at = 0; at < len; at += FILL_SPAN)
			piov[pn++] = (struct iovec){ st->b0 + st->off % 8,
						     MIN(len - at, FILL_SPAN) };
		return vm_writev(st->pid, piov, pn, diov, dn);
	case SVA_OP_CRC32C:
		buf = (struct iovec){ st->b0, len };
		done = vm_readv(st->pid, &buf, 1, siov, sn);
		st->crc = sva_crc32c(st->crc, st->b0, done);
		return done;
	case SVA_OP_COMPARE:
		buf = (struct iovec){ st->b0, len };
		done = vm_readv(st->pid, &buf, 1, siov, sn);
		buf = (struct iovec){ st->b1, done };
		dn = build_iov(d->dst + st->off, done, st->dst_local,
			       st->dst_pinned, diov);
		n1 = done ? vm_readv(st->pid, &buf, 1, diov, dn) : 0;
		done = MIN(done, n1);
		n1 = first_difference(st->b0, st->b1, done);
		st->differ = n1 < done;
		return n1;
	default:
		return len;
	}
}

/* Let the pages of device memory the burst pinned go. */
static void burst_unpin(struct sva_bind *bind, struct exec_state *st)
{
	if (st->src_pinned)
		sim_devmem_unpin(bind, st->src_local, st->src_pinned);
	if (st->dst_pinned)
		sim_devmem_unpin(bind, st->dst_local, st->dst_pinned);
	st->src_pinned = st->dst_pinned = 0;
}

static bool op_reads(uint32_t op)
{
	return op == SVA_OP_COPY || op == SVA_OP_COMPARE ||
	       op == SVA_OP_CRC32C;
}

static bool op_writes(uint32_t op)
{
	return op == SVA_OP_COPY || op == SVA_OP_FILL;
}

/*
 * One burst: translate under inval_lock, access outside it. Returns bytes
 * done; the pages that stopped it are in @bf.
 */
static uint64_t burst(struct sva_bind *bind, struct exec_state *st,
		      struct burst_faults *bf)
{
	const struct sva_desc *d = st->d;
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	/* Pages per request group: fault_batch, or all a burst misses when
	 * the fault service adapts its window (prq.c). */
	unsigned int max = sim_dev_of(bind)->dev->opts.fault_batch ?
			   MIN(sim_dev_of(bind)->dev->opts.fault_batch,
			       2u * SIM_CHUNK_PAGES) : 2 * SIM_CHUNK_PAGES;
	uint64_t in_page = 0, len, ok, dst_ok, done, gen;

	/* A burst covers at most SIM_CHUNK_PAGES pages of either side. */
	if (d->src)
		in_page = (d->src + st->off) & ~SVA_PAGE_MASK;
	if (d->dst)
		in_page = MAX(in_page, (d->dst + st->off) & ~SVA_PAGE_MASK);
	len = MIN(st->limit - st->off, SIM_CHUNK - in_page);

	for (unsigned int tries = 0;; tries++) {
		bf->n = 0;
		burst_unpin(bind, st);
		sva__rwlock_rdlock(&mm->inval_lock);
		gen = atomic_load(&mm->inval_gen);
		ok = len;
		if (op_reads(d->opcode))
			ok = burst_translate(bind, d->src + st->off, len,
					     SVA_ACCESS_READ, bf, max,
					     st->src_local, &st->src_pinned);
		/* COMPARE only reads dst. */
		if (d->dst) {
			dst_ok = burst_translate(bind, d->dst + st->off, len,
						 op_writes(d->opcode) ?
						 SVA_ACCESS_WRITE :
						 SVA_ACCESS_READ, bf, max,
						 st->dst_local,
						 &st->dst_pinned);
			ok = MIN(ok, dst_ok);
		}
		sva__rwlock_unlock(&mm->inval_lock);
		/*
		 * Invalidated since: translate again, a few times (past
		 * that the access is still safe, see above).
		 */
		if (atomic_load(&mm->inval_gen) == gen ||
		    tries == SIM_RETRANSLATE)
			break;
	}
	done = ok ? burst_access(st, ok) : 0;
	burst_unpin(bind, st);

	if (ok && done < ok && !st->differ) {
		/*
		 * A page we had a translation for was not accessible: the
		 * mapping changed in a way no event told us of (mprotect).
		 * Forget what we cached of it and translate afresh.
		 */
		uint64_t s = d->src + st->off + done, t = d->dst + st->off + done;

		if (d->src)
			sim_mm_vma_forget(mm, s);
		if (d->dst)
			sim_mm_vma_forget(mm, t);
		sim_atc_invalidate(&sim_dev_of(bind)->atc, bind->pasid,
				   MIN(d->src ? s : t, d->dst ? t : s) >>
				   SVA_PAGE_SHIFT,
				   (MAX(s, t) >> SVA_PAGE_SHIFT) + 1);
	}
	st->off += done;
	return done;
}

/*
 * The offset into @d of the first byte in @page (a page a request was
 * answered INVALID or FAILURE for) that the device would have accessed:
 * the page's first byte, or the descriptor's own address on that side
 * when the page is the one it starts in. fault_addr is that byte.
 */
static uint64_t fault_offset(const struct sva_desc *d, uint64_t off,
			     uint64_t page, unsigned int access,
			     uint64_t *base)
{
	bool on_src = d->src && page + SVA_PAGE_SIZE > d->src + off &&
		      page < d->src + d->len;

	/* A write is always the destination's; a read may be either. */
	*base = on_src && !(access & SVA_ACCESS_WRITE) ? d->src :
		d->dst ? d->dst : d->src;
	if (page + SVA_PAGE_SIZE <= *base + off || page >= *base + d->len)
		return off;	/* not the descriptor's: fault where we are */
	return MAX(page, *base + off) - *base;
}

/*
 * Range attributes the device obeys itself, as its IOMMU's permissions:
 * NO_ACCESS stops any access, DEVICE_READ_ONLY a write, with FAULT_INVALID
 * once the bytes before are done (no page request: nothing to resolve).
 */
static void attrs_limit(struct sva_bind *bind, struct exec_state *st,
			uint32_t *status, unsigned int *access, uint64_t *base)
{
	const struct sva_desc *d = st->d;
	struct sva_range_attrs *ra = &bind->attrs;
	uint64_t off = d->len, f;

	if (op_reads(d->opcode)) {
		f = sva__range_attrs_first(ra, d->src, d->src + d->len,
					   SVA_ATTR_NO_ACCESS) - d->src;
		if (f < off) {
			off = f;
			*access = SVA_ACCESS_READ;
			*base = d->src;
		}
	}
	if (d->dst) {
		f = sva__range_attrs_first(ra, d->dst, d->dst + d->len,
					   SVA_ATTR_NO_ACCESS) - d->dst;
		if (op_writes(d->opcode))
			f = MIN(f, sva__range_attrs_first(ra, d->dst,
					d->dst + d->len,
					SVA_ATTR_DEVICE_READ_ONLY) - d->dst);
		if (f < off) {
			off = f;
			*access = op_writes(d->opcode) ? SVA_ACCESS_WRITE :
							 SVA_ACCESS_READ;
			*base = d->dst;
		}
	}
	if (off < d->len) {
		st->limit = off;
		*status = SVA_STATUS_FAULT_INVALID;
	}
}

void sim_exec(struct sva_bind *bind, const struct sva_desc *d,
	      struct sva_completion *comp)
{
	struct sim_bind *sb = sim_bind_of(bind);
	struct exec_state st = {
		.d = d, .crc = (uint32_t)d->pattern, .limit = d->len,
		.b0 = sb->bounce[0], .b1 = sb->bounce[1], .pid = sb->mm->pid,
	};
	bool block = (d->flags & SVA_DESC_BLOCK_ON_FAULT) &&
		     !(bind->dev->opts.flags & SVA_DEV_NO_PRI);
	struct burst_faults bf;
	enum sim_response resp;
	struct sim_prg prg;
	unsigned int stalls = 0;
	uint64_t stalled_since = 0, fault_off;
	/* A fault to report once the bytes before it are done. */
	struct {
		uint32_t status;
		unsigned int access;
		uint64_t base;		/* the side that faulted */
	} at_limit = { 0, 0, 0 };

	if (!sva__range_attrs_empty(&bind->attrs))
		attrs_limit(bind, &st, &at_limit.status, &at_limit.access,
			    &at_limit.base);
	if (d->opcode == SVA_OP_FILL)
		fill_span(st.b0, d->pattern);

	while (d->opcode != SVA_OP_NOP && st.off < st.limit && !st.differ) {
		/* A quarantined device stops, even mid-descriptor. */
		if (sva__dev_quarantined(bind->dev)) {
			comp->status = SVA_STATUS_QUARANTINED;
			break;
		}
		if (burst(bind, &st, &bf)) {
			stalls = 0;
			stalled_since = 0;
			continue;
		}
		if (!bf.n) {
			/* Short access, translations dropped: try again. */
			if (++stalls < SIM_MAX_STALLS)
				continue;
			sva__complete_fault(comp, SVA_STATUS_FAULT_INVALID,
				       (d->src ? d->src : d->dst) + st.off,
				       SVA_ACCESS_READ);
			break;
		}
		if (!block) {
			sva__complete_fault(comp, SVA_STATUS_PAGE_FAULT, bf.first,
				       bf.first_access);
			break;
		}
		resp = sim_prq_request(bind, bf.addr, bf.access, bf.n, &prg);
		if (resp != SIM_RESP_SUCCESS) {
			/*
			 * The group's pages before the one that failed were
			 * resolved: a device translating in order does the
			 * bytes before it, then reports the fault.
			 */
			at_limit.status = resp == SIM_RESP_INVALID ?
					  SVA_STATUS_FAULT_INVALID :
					  SVA_STATUS_FAULT_FAILURE;
			at_limit.access = prg.fault_access;
			fault_off = fault_offset(d, st.off, prg.fault_addr,
						 prg.fault_access,
						 &at_limit.base);
			st.limit = MAX(fault_off, st.off);
			stalled_since = 0;
			continue;
		}
		/* Resolved: the VMA may have changed under us (mprotect). */
		for (unsigned int i = 0; i < bf.n; i++)
			sim_mm_vma_forget(sb->mm, bf.addr[i]);
		/* Fault-driven migration to a preferred device memory. */
		sim_devmem_fault_migrate(bind, bf.addr, bf.n);
		if (prg.overflowed) {
			sched_yield();	/* let the queue drain, then ask again */
			continue;
		}
		/* Answered SUCCESS for every page, yet no progress. */
		if (!stalled_since)
			stalled_since = sva__now_ns();
		else if (sva__now_ns() - stalled_since > SIM_STALL_TIMEOUT_NS) {
			sva__complete_fault(comp, SVA_STATUS_FAULT_FAILURE,
				       bf.first, bf.first_access);
			break;
		}
	}
	if (at_limit.status && st.off == st.limit && !st.differ &&
	    comp->status == SVA_STATUS_SUCCESS)
		sva__complete_fault(comp, at_limit.status, at_limit.base + st.off,
			       at_limit.access);
	comp->bytes_done = st.off;
	if (d->opcode == SVA_OP_CRC32C)
		comp->result = st.crc;
	if (d->opcode == SVA_OP_COMPARE)
		comp->result = st.differ;
}
