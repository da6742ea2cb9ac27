// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The page request queue (PCIe PRI as the IOMMU receives it) and the fault
 * service that drains it, as the kernel's io-pgfault does: requests are
 * taken in batches, contiguous pages with the same access are resolved with
 * one MADV_POPULATE_READ/WRITE, and each page request group gets exactly
 * one response, sent when its last page has been served: SUCCESS if every
 * page was resolved, INVALID if an access violates the mapping, FAILURE if
 * the MM could not resolve it (no memory, poisoned page).
 */
#include <stdlib.h>
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
 * Serve @n requests. Runs unlocked: the requests are ours until their
 * groups' queued counts are dropped.
 */
static void prq_serve(struct sim_page_req *reqs, unsigned int n)
{
	unsigned int i = 0, j;
	enum sim_response resp;

	while (i < n) {
		/* Extend a run of contiguous pages with the same access. */
		for (j = i + 1; j < n && reqs[j].access == reqs[i].access &&
		     reqs[j].addr == reqs[j - 1].addr + SVA_PAGE_SIZE; j++)
			;
		resp = injected_response();
		if (resp != SIM_RESP_SUCCESS) {
			prg_account(&reqs[i], resp);
			i = j;
			continue;
		}
		resp = sim_fault_resolve(reqs[i].addr,
					 (j - i) * SVA_PAGE_SIZE,
					 reqs[i].access);
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

static void *prq_thread(void *arg)
{
	struct sim_dev *sd = arg;
	struct sim_prq *prq = &sd->prq;
	struct sim_page_req batch[256];
	unsigned int n;

	sva__trace_set_role(SVA_ROLE_FAULT);
	pthread_mutex_lock(&prq->lock);
	for (;;) {
		while (!prq->exiting && !prq->count)
			pthread_cond_wait(&prq->req_cv, &prq->lock);
		if (!prq->count)
			break;
		n = MIN(MIN(prq->count, prq->batch), (unsigned int)ARRAY_SIZE(batch));
		for (unsigned int i = 0; i < n; i++) {
			batch[i] = prq->ring[prq->head];
			prq->head = (prq->head + 1) % prq->depth;
		}
		prq->count -= n;
		pthread_mutex_unlock(&prq->lock);

		prq_rate_limit(sd);
		prq_serve(batch, n);

		pthread_mutex_lock(&prq->lock);
		for (unsigned int i = 0; i < n; i++) {
			batch[i].prg->queued--;
			if (batch[i].last)
				batch[i].prg->responded = true;
		}
		pthread_cond_broadcast(&prq->resp_cv);
	}
	pthread_mutex_unlock(&prq->lock);
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

	prg->queued = 0;
	prg->responded = false;
	prg->overflowed = false;
	prg->resp = SIM_RESP_SUCCESS;
	prg->fault_addr = 0;
	prg->fault_access = 0;

	/* An injected overflow: the queue takes none of the group. */
	bool full = sva__inject(SVA_INJECT_PRQ_FULL);

	pthread_mutex_lock(&prq->lock);
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
	if (queued)
		pthread_cond_signal(&prq->req_cv);
	/* Wait for the response, and for the queue to let go of @prg. */
	while (!prg->responded || prg->queued)
		pthread_cond_wait(&prq->resp_cv, &prq->lock);
	pthread_mutex_unlock(&prq->lock);

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
	prq->batch = batch;
	prq->head = prq->count = 0;
	prq->exiting = false;
	pthread_mutex_init(&prq->lock, NULL);
	pthread_cond_init(&prq->req_cv, NULL);
	pthread_cond_init(&prq->resp_cv, NULL);
	err = sva__thread_create(&prq->thread, prq_thread, sd);
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

	pthread_mutex_lock(&prq->lock);
	prq->exiting = true;
	pthread_cond_signal(&prq->req_cv);
	pthread_mutex_unlock(&prq->lock);
	pthread_join(prq->thread, NULL);
	pthread_cond_destroy(&prq->req_cv);
	pthread_cond_destroy(&prq->resp_cv);
	pthread_mutex_destroy(&prq->lock);
	free(prq->ring);
}
