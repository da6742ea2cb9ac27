// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Work queues: descriptors go in at submit, a worker thread per binding runs
 * them through the backend in order, completions come out at wait. A
 * caller that waits forever on an idle queue runs the next one itself.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static bool queue_has_work(const struct sva_queue *q)
{
	return q->d_head != q->d_tail;
}

/*
 * One runner at a time: the worker, or a waiter running the descriptor
 * itself (sva_wait()). It takes the head descriptor under q->lock
 * (queue_take()), runs it with no lock of ours held (queue_run()), and
 * posts its completion under q->lock (queue_post()). Since none is taken
 * while another runs, completions come out in submission order, the
 * backend's per-binding buffers have one user (q->running is 0 or 1).
 */
static bool queue_can_take(const struct sva_queue *q)
{
	return !q->stopped && !q->running && queue_has_work(q);
}

static void queue_take(struct sva_queue *q, struct sva_desc *desc)
{
	*desc = q->descs[q->d_head];
	q->d_head = (q->d_head + 1) % q->depth;
	q->running++;
}

/* Trace and count a descriptor done (before its completion is posted). */
static void queue_finish(struct sva_bind *bind, const struct sva_desc *desc,
			 const struct sva_completion *comp, uint64_t t0)
{
	if (sva__tracing(bind->dev))
		sva__trace_desc(bind, t0, desc, comp);
	sva__count(bind, SVA_C_DESCS_COMPLETED, 1);
	sva__count(bind, SVA_C_BYTES_DONE, comp->bytes_done);
}

static void queue_exec(struct sva_bind *bind, const struct sva_desc *desc,
		       struct sva_completion *comp)
{
	memset(comp, 0, sizeof(*comp));
	comp->user_data = desc->user_data;
	if (desc->opcode == SVA_OP_PREFETCH)
		sva__prefetch_exec(bind, desc, comp);
	else
		sva__exec(bind, desc, comp);
}

/*
 * No library lock held: the access may block on the application (its
 * userfaultfd, a block-on-fault page request). Traced and counted before
 * the completion is posted, so a caller that reaped it sees its stats.
 */
static void queue_run(struct sva_bind *bind, const struct sva_desc *desc,
		      struct sva_completion *comp)
{
	uint64_t t0 = sva__tracing(bind->dev) ? sva__now_ns() : 0;

	queue_exec(bind, desc, comp);
	queue_finish(bind, desc, comp, t0);
}

static void queue_post(struct sva_queue *q, const struct sva_completion *comp)
{
	q->comps[q->c_tail] = *comp;
	q->c_tail = (q->c_tail + 1) % q->depth;
	q->running--;
	pthread_cond_broadcast(&q->comp_cv);
}

static void *queue_worker(void *arg)
{
	struct sva_bind *bind = arg;
	struct sva_queue *q = &bind->q;
	struct sva_completion comp;
	struct sva_desc desc;

	sva__trace_set_role(SVA_ROLE_QUEUE);
	/*
	 * Woken by a submit, don't preempt the submitter: it may be about
	 * to wait and run the descriptor itself. SCHED_BATCH only drops
	 * wake-up preemption; the worker gets its share of the CPU.
	 */
	pthread_setschedparam(pthread_self(), SCHED_BATCH,
			      &(struct sched_param){ 0 });
	sva__mutex_lock(&q->lock);
	for (;;) {
		/* A waiter running one inline wakes us when it's done. */
		while (!q->exiting && !queue_can_take(q))
			sva__cond_wait(&q->work_cv, &q->lock);
		/* Exiting: unbind waited for the queue to empty already. */
		if (!queue_has_work(q))
			break;
		/* A backend with a queue of its own takes it from here. */
		if (bind->dev->ops->run_queue) {
			sva__mutex_unlock(&q->lock);
			bind->dev->ops->run_queue(bind);
			sva__mutex_lock(&q->lock);
			continue;
		}
		queue_take(q, &desc);
		sva__mutex_unlock(&q->lock);
		queue_run(bind, &desc, &comp);
		sva__mutex_lock(&q->lock);
		queue_post(q, &comp);
	}
	sva__mutex_unlock(&q->lock);
	return NULL;
}

/*
 * For ops->run_queue: take the next descriptor, as the worker would, and
 * complete it with sva__queue_post() (in order). False: stopped or empty.
 * *@t0: when it was taken, for its trace record.
 */
bool sva__queue_take(struct sva_bind *bind, struct sva_desc *desc,
		     uint64_t *t0)
{
	struct sva_queue *q = &bind->q;
	bool took = false;

	sva__mutex_lock(&q->lock);
	/* Many in flight at once: only the worker runs this queue. */
	if (!q->stopped && queue_has_work(q)) {
		queue_take(q, desc);
		took = true;
	}
	sva__mutex_unlock(&q->lock);
	*t0 = took && sva__tracing(bind->dev) ? sva__now_ns() : 0;
	return took;
}

/* The completion of a descriptor sva__queue_take() gave, as the worker's. */
void sva__queue_post(struct sva_bind *bind, const struct sva_desc *desc,
		     const struct sva_completion *comp, uint64_t t0)
{
	queue_finish(bind, desc, comp, t0);
	sva__mutex_lock(&bind->q.lock);
	queue_post(&bind->q, comp);
	sva__mutex_unlock(&bind->q.lock);
}

/* Run a taken descriptor here, as the worker does, and post it. */
void sva__queue_exec(struct sva_bind *bind, const struct sva_desc *desc,
		     uint64_t t0)
{
	struct sva_completion comp;

	queue_exec(bind, desc, &comp);
	sva__queue_post(bind, desc, &comp, t0);
}

int sva__queue_init(struct sva_bind *bind, unsigned int depth)
{
	struct sva_queue *q = &bind->q;
	pthread_mutexattr_t ma;
	pthread_condattr_t ca;
	int err;

	memset(q, 0, sizeof(*q));
	q->depth = depth + 1;	/* one slot stays free: full != empty */
	q->descs = sva__zalloc(q->depth * sizeof(*q->descs));
	q->comps = sva__zalloc(q->depth * sizeof(*q->comps));
	if (!q->descs || !q->comps) {
		err = -ENOMEM;
		goto free;
	}
	pthread_mutexattr_init(&ma);
	/* Held for a few stores at a time: spin a little before sleeping. */
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&q->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work_cv, &ca);
	pthread_cond_init(&q->comp_cv, &ca);
	pthread_condattr_destroy(&ca);
	/* The worker starts with the first submit (queue_worker_start()):
	 * a binding used for mirrors or migration only never needs one. */
	return 0;
free:
	free(q->descs);
	free(q->comps);
	return err;
}

void sva__queue_fini(struct sva_bind *bind)
{
	struct sva_queue *q = &bind->q;

	sva__mutex_lock(&q->lock);
	/* A stopped queue would never drain: unbind restarts it. */
	q->stopped = false;
	pthread_cond_broadcast(&q->work_cv);
	while (queue_has_work(q) || q->running)
		sva__cond_wait(&q->comp_cv, &q->lock);
	q->exiting = true;
	pthread_cond_broadcast(&q->work_cv);
	sva__mutex_unlock(&q->lock);
	if (q->worker_started)
		pthread_join(q->worker, NULL);

	pthread_cond_destroy(&q->work_cv);
	pthread_cond_destroy(&q->comp_cv);
	pthread_mutex_destroy(&q->lock);
	free(q->descs);
	free(q->comps);
}

static int desc_check(const struct sva_bind *bind, const struct sva_desc *d)
{
	const struct sva_dev_caps *caps = &bind->dev->caps;
	bool src = d->opcode == SVA_OP_COPY || d->opcode == SVA_OP_COMPARE ||
		   d->opcode == SVA_OP_CRC32C;
	bool dst = d->opcode == SVA_OP_COPY || d->opcode == SVA_OP_COMPARE ||
		   d->opcode == SVA_OP_FILL;

	if (d->opcode == SVA_OP_PREFETCH && !(caps->flags & SVA_CAP_MIGRATE))
		return sva_err(-EOPNOTSUPP, "%s has no device memory (SVA_CAP_MIGRATE)",
			       bind->dev->name);
	if (d->opcode >= SVA_OP_MAX || !(caps->ops & (1u << d->opcode)))
		return sva_err(-EINVAL, "opcode %u not supported", d->opcode);
	if (d->flags & ~(uint32_t)SVA_DESC_BLOCK_ON_FAULT)
		return sva_err(-EINVAL, "unknown descriptor flags %#x",
			       d->flags);
	if ((d->flags & SVA_DESC_BLOCK_ON_FAULT) &&
	    !(caps->flags & SVA_CAP_BLOCK_ON_FAULT))
		return sva_err(-EINVAL, "device can't block on faults");
	if (d->rsvd)
		return sva_err(-EINVAL, "reserved field set");
	if (d->pasid != bind->pasid)
		return sva_err(-EINVAL, "PASID %u is not the binding's %u",
			       d->pasid, bind->pasid);
	if (d->opcode == SVA_OP_NOP)
		return 0;
	if (d->opcode == SVA_OP_PREFETCH &&
	    (d->dst || !d->len || ((d->src | d->len) & ~SVA_PAGE_MASK) ||
	     d->src + d->len < d->src || !sva__loc_valid(d->pattern, false)))
		return sva_err(-EINVAL, "prefetch: src and len page aligned, dst 0, pattern a SVA_LOC_ target");
	if (d->opcode == SVA_OP_PREFETCH)
		return 0;
	if (!d->len || d->len > caps->max_xfer)
		return sva_err(-EINVAL, "length %llu out of 1..%llu",
			       (unsigned long long)d->len,
			       (unsigned long long)caps->max_xfer);
	if ((src && (!d->src || d->src + d->len < d->src)) ||
	    (dst && (!d->dst || d->dst + d->len < d->dst)))
		return sva_err(-EINVAL, "address range NULL or wraps");
	if (d->opcode == SVA_OP_COPY && d->src < d->dst + d->len &&
	    d->dst < d->src + d->len)
		return sva_err(-EINVAL, "copy ranges overlap");
	return 0;
}

/* The binding's first work: start its worker. Caller holds q->lock. */
static int queue_worker_start(struct sva_bind *bind)
{
	struct sva_queue *q = &bind->q;
	int err;

	if (q->worker_started)
		return 0;
	err = sva__thread_create(&q->worker, "sva-worker", queue_worker, bind);
	/* Not -EAGAIN, which tells submitters to reap and retry. */
	if (err)
		return sva_err(-ENOMEM, "can't start the queue worker: %s",
			       strerror(-err));
	q->worker_started = true;
	return 0;
}

/*
 * Queue @n descriptors. @all: all or none (-EAGAIN when they don't fit
 * with @min_total in flight, -EINVAL when fewer than @min_total would be
 * in flight, the first bad descriptor's error), else the good ones before
 * a bad one, as many as fit. @kick: wake the worker, which a caller that
 * runs them itself at once (sva_submit_and_wait()) spares.
 */
static int queue_submit(struct sva_bind *bind, const struct sva_desc *descs,
			unsigned int n, bool all, unsigned int min_total,
			bool kick)
{
	struct sva_queue *q;
	unsigned int i;
	int err;

	if (!bind || (!descs && n))
		return sva_err(-EINVAL, "NULL argument");
	err = sva__check_owner(bind->owner, "binding");
	if (err)
		return err;
	if (sva__dev_quarantined(bind->dev))
		return sva_err(-EIO, "%s is quarantined after a fault storm (sva_dev_reset())",
			       bind->dev->name);
	q = &bind->q;
	for (i = 0; i < n; i++) {
		err = desc_check(bind, &descs[i]);
		if (err) {
			if (!i || all)
				return err;
			n = i;	/* queue the good ones before it */
			break;
		}
	}

	sva__mutex_lock(&q->lock);
	err = n ? queue_worker_start(bind) : 0;
	if (!err && all && q->inflight + n < min_total)
		err = sva_err(-EINVAL, "waiting for %u with %u in flight",
			      min_total, q->inflight + n);
	else if (!err && all && q->inflight + n > q->depth - 1)
		err = -EAGAIN;	/* not a misuse: reap, then submit again */
	if (err) {
		sva__mutex_unlock(&q->lock);
		return err;
	}
	for (i = 0; i < n && q->inflight < q->depth - 1; i++) {
		q->descs[q->d_tail] = descs[i];
		q->d_tail = (q->d_tail + 1) % q->depth;
		q->inflight++;
	}
	sva__mutex_unlock(&q->lock);
	/* After the unlock: the worker doesn't wake into a held lock. */
	if (i && kick)
		pthread_cond_signal(&q->work_cv);
	return i || !n ? (int)i : -EAGAIN;
}

int sva_submit(struct sva_bind *bind, const struct sva_desc *descs,
	       unsigned int n)
{
	SVA_NO_CANCEL;

	return queue_submit(bind, descs, n, false, 0, true);
}

/*
 * Run the head descriptor on the calling thread, as the worker would (one
 * runner at a time, see queue_take()). Called and returns with q->lock
 * held; drops it meanwhile. Cancellation is held off: a cancelled waiter
 * would leave q->running set and unbind waiting forever.
 */
static void queue_run_inline(struct sva_bind *bind)
{
	struct sva_queue *q = &bind->q;
	struct sva_completion comp;
	struct sva_desc desc;
	int cs;

	queue_take(q, &desc);
	sva__mutex_unlock(&q->lock);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	queue_run(bind, &desc, &comp);
	pthread_setcancelstate(cs, NULL);
	sva__mutex_lock(&q->lock);
	queue_post(q, &comp);
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* A waiter cancelled in its sleep: see queue_sleep(). */
struct queue_sleeper {
	struct sva_queue *q;
	bool kick;
};

/*
 * A waiter leaving (q->lock held) with work it queued without waking the
 * worker, or with the worker asleep while it ran work itself (@kick): what
 * is left is the worker's.
 */
static void queue_hand_to_worker(struct sva_queue *q, bool kick)
{
	if (kick && queue_can_take(q))
		pthread_cond_signal(&q->work_cv);
}

static void queue_sleep_cancelled(void *arg)
{
	struct queue_sleeper *s = arg;

	queue_hand_to_worker(s->q, s->kick);
	sva__mutex_unlock(&s->q->lock);
}

/*
 * Sleep on the completion queue (q->lock held), until @ts when not NULL.
 * The one cancellation point of libsva: with the caller's @cancel_state,
 * PTHREAD_CANCEL_DISABLE once the wait has reaped something (a completion
 * taken from the queue must reach the caller). A thread cancelled here
 * drops the lock and hands work queued unkicked (@kick) to the worker;
 * what it had not reaped stays queued for the next wait. The type stays
 * deferred (SVA_NO_CANCEL): cancellation acts in the wait itself, where
 * the lock is held again and this handler's to drop.
 */
static int queue_sleep(struct sva_queue *q, const struct timespec *ts,
		       int cancel_state, bool kick)
{
	struct queue_sleeper s = { .q = q, .kick = kick };
	/* volatile: pthread_cleanup_push() may be a setjmp() */
	volatile int err = 0;
	int cs;

	/* Said here, not in the wait: the hook is not to run where a
	 * cancellation would find the lock dropped under its handler. */
	if (sva__cond_say_pending(&q->lock))
		return 0;
	pthread_cleanup_push(queue_sleep_cancelled, &s);
	pthread_setcancelstate(cancel_state, &cs);
	err = sva__cond_wait_cancellable(&q->comp_cv, &q->lock, ts);
	pthread_setcancelstate(cs, NULL);
	pthread_cleanup_pop(0);
	return err;
}

/*
 * sva_wait(). @checked: the caller (sva_submit_and_wait()) checked @min
 * against what is in flight when it queued, under the same lock: a reaper
 * on another thread may have taken some since, which is no misuse here.
 * @unkicked: work was queued without waking the worker; whatever of it
 * this wait doesn't run is handed to the worker before returning.
 * @cancel_state: the caller's (see queue_sleep()).
 */
static int queue_wait(struct sva_bind *bind, struct sva_completion *comps,
		      unsigned int max, unsigned int min, int timeout_ms,
		      bool checked, bool unkicked, int cancel_state)
{
	struct sva_queue *q;
	struct timespec ts;
	unsigned int n = 0;
	bool inline_ok, ran_inline = false;
	int err;

	err = sva__bind_usable(bind);
	if (err)
		return err;
	if (!comps || !max || min > max)
		return sva_err(-EINVAL, "bad arguments");
	q = &bind->q;
	/*
	 * Waiting forever for a descriptor nobody runs yet: run it here
	 * rather than hand it to the worker and sleep until it hands the
	 * completion back (two thread wake-ups, most of a small
	 * descriptor's time). Not with a timeout: the caller asked to be
	 * back by then, and a descriptor may take any time (block on
	 * faults). Only where the backend's exec may run on any thread.
	 */
	inline_ok = timeout_ms < 0 && bind->dev->ops->exec_anywhere;
	if (timeout_ms >= 0)
		deadline_after(&ts, timeout_ms);

	sva__mutex_lock(&q->lock);
	if (min > q->inflight && !checked) {
		sva__mutex_unlock(&q->lock);
		return sva_err(-EINVAL, "waiting for %u with %u in flight",
			       min, q->inflight);
	}
	for (;;) {
		while (n < max && q->c_head != q->c_tail) {
			comps[n++] = q->comps[q->c_head];
			q->c_head = (q->c_head + 1) % q->depth;
			q->inflight--;
		}
		if (n >= min)
			break;
		/* Reaped by another thread meanwhile: never to come. */
		if (checked && n + q->inflight < min)
			break;
		if (inline_ok && queue_can_take(q)) {
			queue_run_inline(bind);
			ran_inline = true;
			continue;
		}
		if (queue_sleep(q, timeout_ms < 0 ? NULL : &ts,
				n ? PTHREAD_CANCEL_DISABLE : cancel_state,
				ran_inline || unkicked))
			timeout_ms = 0, min = 0;	/* take what's there */
	}
	queue_hand_to_worker(q, ran_inline || unkicked);
	sva__mutex_unlock(&q->lock);
	return (int)n;
}

int sva_wait(struct sva_bind *bind, struct sva_completion *comps,
	     unsigned int max, unsigned int min, int timeout_ms)
{
	SVA_NO_CANCEL;

	return queue_wait(bind, comps, max, min, timeout_ms, false, false,
			  sva__cancel.state);
}

/*
 * Submit and wait in one call (liburing's io_uring_submit_and_wait()). The
 * point: waiting forever on a backend whose descriptors may run on any
 * thread, the caller runs them itself (sva_wait()) and the worker isn't
 * woken for them. A wake-up across CPUs costs most of a small
 * descriptor's time: on an idle 2-core guest a 4 KiB copy through
 * sva_submit() + sva_wait() took 9.3 us at p50, the worker woken on the
 * other CPU taking it first or contending for the queue, against 2.4 us
 * run here with no wake-up.
 */
int sva_submit_and_wait(struct sva_bind *bind, const struct sva_desc *descs,
			unsigned int n, struct sva_completion *comps,
			unsigned int max, unsigned int min, int timeout_ms)
{
	SVA_NO_CANCEL;
	bool kick;
	int ret;

	if (!bind || !comps || !max || min > max)
		return sva_err(-EINVAL, "bad arguments");
	kick = timeout_ms >= 0 || !bind->dev->ops->exec_anywhere;
	ret = queue_submit(bind, descs, n, true, min, kick);
	if (ret < 0)
		return ret;
	ret = queue_wait(bind, comps, max, min, timeout_ms, true, !kick && n,
			 sva__cancel.state);
	/* Not waited for after all (an error): the worker's, now. */
	if (ret < 0 && !kick && n)
		pthread_cond_signal(&bind->q.work_cv);
	return ret;
}

int sva_inflight(const struct sva_bind *bind)
{
	struct sva_queue *q;
	int n = sva__bind_usable(bind);

	if (n)
		return n;
	q = (struct sva_queue *)&bind->q;
	sva__mutex_lock(&q->lock);
	n = (int)q->inflight;
	sva__mutex_unlock(&q->lock);
	return n;
}

static int queue_set_stopped(struct sva_bind *bind, bool stopped)
{
	int err = sva__bind_usable(bind);

	if (err)
		return err;
	sva__mutex_lock(&bind->q.lock);
	bind->q.stopped = stopped;
	pthread_cond_broadcast(&bind->q.work_cv);
	sva__mutex_unlock(&bind->q.lock);
	return 0;
}

int sva_queue_stop(struct sva_bind *bind)
{
	SVA_NO_CANCEL;

	return queue_set_stopped(bind, true);
}

int sva_queue_start(struct sva_bind *bind)
{
	SVA_NO_CANCEL;

	return queue_set_stopped(bind, false);
}

int sva_desc_resume(struct sva_desc *desc, const struct sva_completion *comp)
{
	uint64_t done;

	if (!desc || !comp)
		return sva_err(-EINVAL, "NULL argument");
	done = comp->bytes_done;
	/* Any fault can be resumed once its cause is fixed. */
	if ((comp->status != SVA_STATUS_PAGE_FAULT &&
	     comp->status != SVA_STATUS_FAULT_INVALID &&
	     comp->status != SVA_STATUS_FAULT_FAILURE) ||
	    done >= desc->len || desc->opcode == SVA_OP_NOP)
		return -EINVAL;
	/* CRC32C carries its running value as the next seed. */
	if (desc->opcode == SVA_OP_CRC32C)
		desc->pattern = comp->result;
	/* FILL's pattern is laid from dst on: keep its phase. */
	if (desc->opcode == SVA_OP_FILL && done % 8)
		desc->pattern = desc->pattern >> (8 * (done % 8)) |
				desc->pattern << (64 - 8 * (done % 8));
	if (desc->src)
		desc->src += done;
	if (desc->dst)
		desc->dst += done;
	desc->len -= done;
	return 0;
}
