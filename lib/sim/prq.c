// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The page request queue (PCIe PRI as the IOMMU receives it) and the fault
 * service that drains it, as the kernel's io-pgfault does: requests are
 * taken in batches, contiguous pages with the same access are resolved with
 * one MADV_POPULATE_READ/WRITE, and each page request group gets exactly
 * one response, sent when its last page has been served: SUCCESS if every
 * page was resolved, INVALID if an access violates the mapping, FAILURE if
 * the MM could not resolve it (no memory, poisoned page).
 *
 * Fault-around: a run of requested pages is populated together with the
 * pages after it, up to a window (sim.h: SIM_AROUND_*), in one populate
 * with the run's access, and the device's ATC is filled for all of them,
 * so that a device streaming through cold memory pays one page request
 * group and one populate per window, as UVM's fault batches and prefetch
 * do. The neighbourhood is best effort and never changes an answer:
 *  - it stays inside the first page's VMA, which must be tracked and
 *    allow the access (sim_mm_around_end()), short of ranges holding
 *    device memory, discards in progress, reserved windows and any range
 *    attribute (a preferred location, NO_ACCESS, ...: the device's own
 *    rules for those pages are applied when it faults on them);
 *  - if populating it with the run fails, the run alone is populated
 *    again and answered as before: a write to a read-only page is still
 *    INVALID, the first page that failed still the fault address;
 *  - its translations enter the ATC as the engine's do: walked under
 *    inval_lock (read) after the populate, only where cacheable, so an
 *    invalidation racing the populate either comes after (and drops
 *    them) or before (and the walk sees its result).
 * The service runs on the device's fault thread, or inline on a requester
 * that finds no one serving (sim_prq_request()): the same batches, one at
 * a time, without the thread switches.
 *
 * Page requests, groups, resolved/failed counts, fault storm accounting
 * and trace events stay those of the pages the device asked for; pages
 * populated around them are not page requests, and the device's later
 * translations of them count as ATC hits.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "sim.h"

static enum sim_response madvise_to_response(int err)
{
	switch (err) {
	case 0:
		return SIM_RESP_SUCCESS;
	case ENOMEM:	/* not mapped */
	case EINVAL:	/* PROT_NONE, write to read-only, VM_IO/PFNMAP */
	case EFAULT:	/* SIGSEGV/SIGBUS: e.g. past the end of a file */
		return SIM_RESP_INVALID;
	default:	/* EHWPOISON, ... */
		return SIM_RESP_FAILURE;
	}
}

enum sim_response sim_fault_resolve(uint64_t addr, uint64_t len,
				    unsigned int access)
{
	int advice = access & SVA_ACCESS_WRITE ? MADV_POPULATE_WRITE :
						 MADV_POPULATE_READ;
	int err;

	do {
		err = madvise((void *)(uintptr_t)addr, len, advice) ? errno : 0;
	} while (err == EINTR || err == EAGAIN);
	return madvise_to_response(err);
}

static enum sim_response injected_response(void)
{
	if (sva__inject(SVA_INJECT_FAULT_INVALID))
		return SIM_RESP_INVALID;
	if (sva__inject(SVA_INJECT_FAULT_FAILURE))
		return SIM_RESP_FAILURE;
	return SIM_RESP_SUCCESS;
}

/*
 * Fault storm control: serve at most opts.fault_rate groups per second.
 * Sleeps with the queue unlocked; requests keep arriving meanwhile.
 */
static void prq_rate_limit(struct sim_dev *sd)
{
	unsigned int rate = sd->dev->opts.fault_rate;
	struct timespec wait;
	uint64_t t, gap;

	if (!rate)
		return;
	gap = 1000000000ull / rate;
	t = sva__now_ns();
	if (t < sd->prq.next_serve) {
		wait.tv_sec = (time_t)((sd->prq.next_serve - t) / 1000000000ull);
		wait.tv_nsec = (long)((sd->prq.next_serve - t) % 1000000000ull);
		nanosleep(&wait, NULL);
		t = sd->prq.next_serve;
	}
	sd->prq.next_serve = t + gap;
}

/* Record @resp for @req's page in its group (worst response wins). */
static void prg_account(struct sim_page_req *req, enum sim_response resp)
{
	struct sim_prg *prg = req->prg;

	if (resp != SIM_RESP_SUCCESS && (prg->resp == SIM_RESP_SUCCESS ||
					 req->addr < prg->fault_addr)) {
		prg->resp = resp > prg->resp ? resp : prg->resp;
		prg->fault_addr = req->addr;
		prg->fault_access = req->access;
	}
}

/*
 * The window to populate from @addr for a run of @n pages: a stream whose
 * window ended at @addr goes on twice as far; a fault inside a stream's
 * last window (pages invalidated since) keeps its window; anything else is
 * a random miss: new streams start with half the window. *@sp gets the
 * stream (NULL with a fixed window).
 */
static unsigned int around_pages(struct sim_prq *prq, uint64_t addr,
				 unsigned int n, struct sim_stream **sp)
{
	struct sim_stream *s, *victim = &prq->streams[0];

	*sp = NULL;
	if (prq->fixed)
		return MAX(n, prq->fixed);
	prq->tick++;
	for (unsigned int i = 0; i < SIM_AROUND_STREAMS; i++) {
		s = &prq->streams[i];
		if (s->win && addr >= s->start && addr <= s->next) {
			if (addr == s->next) {
				s->win = MIN(2 * MAX(s->win, n),
					     (unsigned int)SIM_AROUND_MAX);
				prq->base = MIN(2 * prq->base,
						(unsigned int)SIM_AROUND_START);
			}
			s->used = prq->tick;
			*sp = s;
			return MAX(n, s->win);
		}
		if (!s->win || (victim->win && s->used < victim->used))
			victim = s;
	}
	prq->base = MAX(prq->base / 2, 1u);
	victim->win = prq->base;
	victim->start = victim->next = addr;
	victim->used = prq->tick;
	*sp = victim;
	return MAX(n, victim->win);
}

/* How far past @end (a run from @addr) the service may populate. */
static uint64_t around_clip(struct sva_bind *bind, uint64_t addr,
			    uint64_t end, uint64_t want, unsigned int access)
{
	const struct sva_dev *dev = bind->dev;
	uint64_t lim;

	lim = sim_mm_around_end(sim_bind_of(bind)->mm, addr, want,
				access & SVA_ACCESS_WRITE ? SIM_PERM_W :
							    SIM_PERM_R);
	if (lim <= end)
		return end;
	/* Reserved windows (sorted; end inclusive): no DMA reaches them. */
	for (unsigned int i = 0; i < dev->nr_resv; i++)
		if (dev->resv[i].end >= end && dev->resv[i].start < lim)
			lim = MAX(end, dev->resv[i].start & SVA_PAGE_MASK);
	/* Pages with any attribute: the device's rules apply on a fault. */
	for (uint32_t t = 0; lim > end && t < SVA_ATTR_MAX &&
	     !sva__range_attrs_empty(&bind->attrs); t++)
		lim = MAX(end, sva__range_attrs_first(&bind->attrs, end, lim,
						      t) & SVA_PAGE_MASK);
	return lim;
}

/*
 * Cache the translations of [start, end), just populated, as a burst
 * does: walked under inval_lock (read), only where cacheable.
 */
static void around_atc_fill(struct sva_bind *bind, uint64_t start,
			    uint64_t end)
{
	struct sim_mm *mm = sim_bind_of(bind)->mm;
	struct sim_atc *atc = &sim_dev_of(bind)->atc;
	uint64_t vpn = start >> SVA_PAGE_SHIFT, last = end >> SVA_PAGE_SHIFT;
	uint8_t perm[SIM_CHUNK_PAGES];
	unsigned int n;
	bool tracked;

	if (bind->dev->opts.flags & SVA_DEV_NO_ATC)
		return;
	sva__rwlock_rdlock(&mm->inval_lock);
	for (; vpn < last; vpn += n) {
		n = (unsigned int)MIN(last - vpn, (uint64_t)SIM_CHUNK_PAGES);
		if (!sim_mm_translate(mm, vpn, n, perm, &tracked) && tracked)
			sim_atc_fill_n(atc, bind->pasid, vpn, perm, n);
	}
	sva__rwlock_unlock(&mm->inval_lock);
}

/*
 * Resolve the run of @n contiguous pages from @req (one access, one
 * requester), with its neighbourhood where that may be populated.
 */
static enum sim_response serve_run(struct sim_prq *prq,
				   const struct sim_page_req *req,
				   unsigned int n)
{
	struct sva_bind *bind = req->prg->bind;
	uint64_t addr = req->addr, end = addr + n * SVA_PAGE_SIZE, want, lim;
	struct sim_stream *s;
	unsigned int pages = around_pages(prq, addr, n, &s);
	enum sim_response resp;

	want = addr + (uint64_t)pages * SVA_PAGE_SIZE;
	if (want < addr)
		want = SVA_PAGE_MASK;	/* wrapped: the top of the space */
	lim = want > end ? around_clip(bind, addr, end, want, req->access) :
	      end;
	if (lim > end &&
	    sim_fault_resolve(addr, lim - addr, req->access) ==
	    SIM_RESP_SUCCESS) {
		around_atc_fill(bind, addr, lim);
		end = lim;
		resp = SIM_RESP_SUCCESS;
	} else {
		/* The run alone, answered as if nothing had been around. */
		resp = sim_fault_resolve(addr, end - addr, req->access);
	}
	if (s) {
		s->start = addr;
		s->next = end;
	}
	return resp;
}

/*
 * Serve @n requests. Runs unlocked: the requests are ours until their
 * groups' queued counts are dropped.
 */
static void prq_serve(struct sim_prq *prq, struct sim_page_req *reqs,
		      unsigned int n)
{
	unsigned int i = 0, j;
	enum sim_response resp;

	while (i < n) {
		/* Extend a run of contiguous pages with the same access
		 * (and requester: its attributes bound the neighbourhood). */
		for (j = i + 1; j < n && reqs[j].access == reqs[i].access &&
		     reqs[j].prg->bind == reqs[i].prg->bind &&
		     reqs[j].addr == reqs[j - 1].addr + SVA_PAGE_SIZE; j++)
			;
		resp = injected_response();
		if (resp != SIM_RESP_SUCCESS) {
			prg_account(&reqs[i], resp);
			i = j;
			continue;
		}
		resp = serve_run(prq, &reqs[i], j - i);
		for (unsigned int k = i; k < j; k++) {
			/* A run failed: find out which pages did. */
			if (resp != SIM_RESP_SUCCESS)
				prg_account(&reqs[k],
					    sim_fault_resolve(reqs[k].addr,
							      SVA_PAGE_SIZE,
							      reqs[k].access));
		}
		i = j;
	}
}

/*
 * Take a batch from the queue, serve it and answer it: the service, run by
 * its thread or inline by a requester (see sim_prq_request()). Called and
 * returns with prq->lock held; drops it while serving, holding the
 * service (prq->serving) instead, so batches are served one at a time.
 */
static void prq_serve_batch(struct sim_dev *sd)
{
	struct sim_prq *prq = &sd->prq;
	struct sim_page_req batch[256];
	unsigned int n;

	prq->serving = true;
	n = MIN(MIN(prq->count, prq->batch), (unsigned int)ARRAY_SIZE(batch));
	for (unsigned int i = 0; i < n; i++) {
		batch[i] = prq->ring[prq->head];
		prq->head = (prq->head + 1) % prq->depth;
	}
	prq->count -= n;
	sva__mutex_unlock(&prq->lock);

	prq_rate_limit(sd);
	prq_serve(prq, batch, n);

	sva__mutex_lock(&prq->lock);
	for (unsigned int i = 0; i < n; i++) {
		batch[i].prg->queued--;
		if (batch[i].last)
			batch[i].prg->responded = true;
	}
	prq->serving = false;
	pthread_cond_broadcast(&prq->resp_cv);
	/* More queued meanwhile (or the end): the thread's turn. */
	if (prq->count || prq->exiting)
		pthread_cond_signal(&prq->req_cv);
}

static void *prq_thread(void *arg)
{
	struct sim_dev *sd = arg;
	struct sim_prq *prq = &sd->prq;

	sva__trace_set_role(SVA_ROLE_FAULT);
	sva__mutex_lock(&prq->lock);
	for (;;) {
		while (!prq->exiting && (!prq->count || prq->serving))
			sva__cond_wait(&prq->req_cv, &prq->lock);
		if (!prq->count)
			break;
		if (prq->serving) {
			sva__cond_wait(&prq->req_cv, &prq->lock);
			continue;
		}
		prq_serve_batch(sd);
	}
	sva__mutex_unlock(&prq->lock);
	return NULL;
}

/* The group as the trace shows it: its page span and every access. */
static void prq_trace(struct sva_bind *bind, uint64_t t0,
		      const uint64_t *addrs, const unsigned int *access,
		      unsigned int n, enum sim_response resp)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	unsigned int acc = 0;

	for (unsigned int i = 0; i < n; i++) {
		lo = MIN(lo, addrs[i]);
		hi = MAX(hi, addrs[i]);
		acc |= access[i];
	}
	sva__trace_page_group(bind, t0, lo, hi, n, acc, resp);
}

enum sim_response sim_prq_request(struct sva_bind *bind,
				  const uint64_t *addrs,
				  const unsigned int *access, unsigned int n,
				  struct sim_prg *prg)
{
	struct sim_prq *prq = &sim_dev_of(bind)->prq;
	unsigned int queued = 0, tail;
	uint64_t t0 = sva__tracing(bind->dev) ? sva__now_ns() : 0;

	prg->bind = bind;
	prg->queued = 0;
	prg->responded = false;
	prg->overflowed = false;
	prg->resp = SIM_RESP_SUCCESS;
	prg->fault_addr = 0;
	prg->fault_access = 0;

	/* An injected overflow: the queue takes none of the group. */
	bool full = sva__inject(SVA_INJECT_PRQ_FULL);

	sva__mutex_lock(&prq->lock);
	for (; !full && queued < n && prq->count < prq->depth; queued++) {
		tail = (prq->head + prq->count++) % prq->depth;
		prq->ring[tail] = (struct sim_page_req) {
			.addr = addrs[queued],
			.access = access[queued],
			.last = queued == n - 1,
			.prg = prg,
		};
		prg->queued++;
	}
	if (queued < n) {
		/* The last request was dropped: the IOMMU answers for it. */
		sva__count(bind, SVA_C_PRQ_OVERFLOWS, n - queued);
		prg->responded = true;
		prg->overflowed = true;
	}
	sva__count(bind, SVA_C_PAGE_REQUESTS, queued);
	/*
	 * Wait for the response, and for the queue to let go of @prg. While
	 * no one serves, serve the queue here: the fault service is the
	 * same, without two thread switches per group (which cost most of
	 * a cold fill on a loaded machine). No library lock is held while
	 * serving: a populate may block on the application's userfaultfd.
	 */
	while (!prg->responded || prg->queued) {
		if (prq->count && !prq->serving)
			prq_serve_batch(sim_dev_of(bind));
		else
			sva__cond_wait(&prq->resp_cv, &prq->lock);
	}
	sva__mutex_unlock(&prq->lock);

	sva__count(bind, SVA_C_PAGE_GROUPS, 1);
	sva__count(bind, prg->resp == SIM_RESP_SUCCESS ?
		   SVA_C_FAULTS_RESOLVED : SVA_C_FAULTS_FAILED, 1);
	if (prg->resp != SIM_RESP_SUCCESS)
		sva__fault_failed(bind);
	if (sva__tracing(bind->dev))
		prq_trace(bind, t0, addrs, access, n, prg->resp);
	return prg->resp;
}

int sim_prq_init(struct sim_dev *sd, unsigned int depth, unsigned int batch)
{
	struct sim_prq *prq = &sd->prq;
	int err;

	prq->ring = sva__zalloc(depth * sizeof(*prq->ring));
	if (!prq->ring)
		return -ENOMEM;
	prq->depth = depth;
	/* A fixed window: the group size asked for (0: adaptive). */
	prq->fixed = batch;
	prq->batch = batch ? batch : SIM_AROUND_MAX;
	prq->base = SIM_AROUND_START;
	prq->tick = 0;
	prq->serving = false;
	memset(prq->streams, 0, sizeof(prq->streams));
	prq->head = prq->count = 0;
	prq->exiting = false;
	pthread_mutex_init(&prq->lock, NULL);
	pthread_cond_init(&prq->req_cv, NULL);
	pthread_cond_init(&prq->resp_cv, NULL);
	err = sva__thread_create(&prq->thread, "sva-faults", prq_thread, sd);
	if (err) {
		pthread_cond_destroy(&prq->req_cv);
		pthread_cond_destroy(&prq->resp_cv);
		pthread_mutex_destroy(&prq->lock);
		free(prq->ring);
	}
	return err;
}

void sim_prq_fini(struct sim_dev *sd)
{
	struct sim_prq *prq = &sd->prq;

	sva__mutex_lock(&prq->lock);
	prq->exiting = true;
	pthread_cond_signal(&prq->req_cv);
	sva__mutex_unlock(&prq->lock);
	pthread_join(prq->thread, NULL);
	pthread_cond_destroy(&prq->req_cv);
	pthread_cond_destroy(&prq->resp_cv);
	pthread_mutex_destroy(&prq->lock);
	free(prq->ring);
}
