// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Threads (issue 7, defects 10 and 12): library threads don't take the
 * application's signals; out structs larger than the library knows get a
 * zeroed tail; unbind and wait, racing every other call from many threads
 * and bindings, always finish.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

struct sigwaiter {
	sigset_t set;
	int got;
};

static void *sigwait_thread(void *arg)
{
	struct sigwaiter *w = arg;
	int sig;

	for (int i = 0; i < 5; i++) {
		if (sigwait(&w->set, &sig) || sig != SIGTERM)
			break;
		__atomic_add_fetch(&w->got, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void nop_inval(struct sva_mirror *m, uint64_t start, uint64_t end,
		      enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	(void)m; (void)start; (void)end; (void)ev; (void)seq; (void)ctx;
}

/*
 * The application's threads block SIGTERM but one, which sigwait()s for
 * it; libsva's threads, started before, must not take it (its default
 * action would end the process).
 */
START_TEST(test_regress_library_threads_block_signals)
{
	uint8_t *p = map_filled(4 * PAGE, 1);
	struct fixture f = { 0 };
	struct sigwaiter w = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = nop_inval);
	struct sva_mirror *m;
	struct sva_desc d;
	sigset_t old;
	pthread_t t;

	/* Every library thread there is, started with SIGTERM open (the
	 * sim's notifier starts with the first mirror with a callback). */
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &mo, &m), 0);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p,
		      p + 2 * PAGE, test_len(2 * PAGE));
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);

	sigemptyset(&w.set);
	sigaddset(&w.set, SIGTERM);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &w.set, &old), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, sigwait_thread, &w), 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
		for (int j = 0; j < 5000 &&
		     __atomic_load_n(&w.got, __ATOMIC_ACQUIRE) <= i; j++)
			usleep(1000);
		/* The device keeps working meanwhile. */
		ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(w.got, 5);
	ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

/* A struct @extra bytes larger than the library's, tail set to 0xAA. */
#define BIG(type, name, extra)						\
	union { type s; uint8_t b[sizeof(type) + (extra)]; } name;	\
	memset(&name, 0xaa, sizeof(name));				\
	name.s.sz = sizeof(name)

static void assert_tail_zero(const uint8_t *b, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		ck_assert_msg(!b[i], "byte %zu of %zu is %#x", i, to, b[i]);
}

START_TEST(test_regress_out_struct_tail_zeroed)
{
	struct fixture f = { 0 };
	BIG(struct sva_stats, bs, 64);
	BIG(struct sva_stats, ds, 64);
	BIG(struct sva_dev_caps, caps, 64);

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_bind_stats(f.bind, &bs.s), 0);
	ck_assert_uint_eq(bs.s.sz, sizeof(bs));
	assert_tail_zero(bs.b, sizeof(bs.s), sizeof(bs));
	ck_assert_int_eq(sva_dev_stats(f.dev, &ds.s), 0);
	ck_assert_uint_eq(ds.s.sz, sizeof(ds));
	assert_tail_zero(ds.b, sizeof(ds.s), sizeof(ds));
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps.s), 0);
	ck_assert_uint_eq(caps.s.sz, sizeof(caps));
	assert_tail_zero(caps.b, sizeof(caps.s), sizeof(caps));
	ck_assert_uint_ne(caps.s.queue_depth, 0);
	close_bind(&f);
}
END_TEST

/* ------------------------------------------------ unbind racing */

struct racer {
	struct sva_dev *shared;		/* a device other threads bind too */
	bool own_dev;			/* open a device of its own */
	int rounds;
	int done;
	int err;			/* line of the first failure */
};

static int stop_racers;

#define RACE_EXPECT(cond) do { if (!(cond)) { r->err = __LINE__; goto out; } } while (0)

/*
 * Bind, a few COPYs between small heap buffers (libsva's own structures
 * live beside them), every other call, unbind: again and again.
 */
static void *racer_thread(void *arg)
{
	struct racer *r = arg;
	struct sva_stats s = { .sz = sizeof(s) };
	struct sva_completion c[4];
	struct fixture f = { 0 };
	struct sva_mirror *m;
	uint8_t *p = map_filled(4 * PAGE, 3), st[4];
	uint64_t seq;

	for (int round = 0; round < r->rounds && !r->err; round++) {
		char *src = malloc(3000), *dst = malloc(3000);
		struct sva_desc d[3];

		RACE_EXPECT(src && dst);
		memset(src, round & 0xff, 3000);
		f.dev = r->shared;
		if (r->own_dev)
			RACE_EXPECT(!sva_dev_open(test_device(), NULL, &f.dev));
		RACE_EXPECT(!sva_bind(f.dev, NULL, &f.bind));
		RACE_EXPECT(!sva_bind_pasid(f.bind, &f.pasid));
		RACE_EXPECT(!sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
						 NULL, &m));
		for (int i = 0; i < 3; i++)
			d[i] = desc_make(&f, SVA_OP_COPY,
					 SVA_DESC_BLOCK_ON_FAULT, src + i * 1000,
					 dst + i * 1000, 1000);
		RACE_EXPECT(sva_submit(f.bind, d, 3) == 3);
		seq = sva_mirror_read_begin(m);
		RACE_EXPECT(!sva_mirror_snapshot(m, (uintptr_t)p, 4 * PAGE, st,
						 SVA_ACCESS_WRITE));
		(void)sva_mirror_read_retry(m, seq);
		RACE_EXPECT(sva_inflight(f.bind) >= 0);
		RACE_EXPECT(!sva_bind_stats(f.bind, &s));
		RACE_EXPECT(!sva_dev_stats(f.dev, &s));
		RACE_EXPECT(sva_wait(f.bind, c, 4, 3, 30000) == 3);
		for (int i = 0; i < 3; i++)
			RACE_EXPECT(c[i].status == SVA_STATUS_SUCCESS);
		RACE_EXPECT(!memcmp(src, dst, 3000));
		/* Unbind with work and an invalidation still under way. */
		RACE_EXPECT(sva_submit(f.bind, d, 3) == 3);
		madvise(p, PAGE, MADV_DONTNEED);
		if (round & 1)
			RACE_EXPECT(!sva_mirror_unregister(m));
		RACE_EXPECT(!sva_unbind(f.bind));
		f.bind = NULL;
		if (r->own_dev)
			sva_dev_close(f.dev);
		free(src);
		free(dst);
	}
out:
	munmap(p, 4 * PAGE);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Device-wide calls racing the bindings coming and going on it. */
static void *device_caller(void *arg)
{
	struct sva_dev *dev = arg;
	struct sva_stats s = { .sz = sizeof(s) };

	while (!__atomic_load_n(&stop_racers, __ATOMIC_ACQUIRE)) {
		sva_dev_stats(dev, &s);
		sva_dev_stats_reset(dev);
		sva_dev_quarantined(dev);
	}
	return NULL;
}

/*
 * _i 0: threads each with a device handle and a binding of their own (as
 * issue 7 saw unbind hang on kmod0); _i 1: bindings of one device too,
 * with device-wide calls racing them coming and going. A VFIO device is
 * opened once (its group or cdev): there _i 0 doesn't apply, and _i 1's
 * racers all bind the one handle, two rounds each (edu is slow).
 */
START_TEST(test_regress_unbind_concurrent_bindings)
{
	enum { MAX = 6 };
	bool vfio = test_on_vfio();
	int own = vfio ? 0 : _i ? 2 : 3, shared = _i ? 3 : 0;
	struct racer r[MAX];
	pthread_t t[MAX], dc;
	struct timespec deadline;
	struct sva_dev *dev;

	if (vfio && !_i &&
	    test_skip("test_regress_unbind_concurrent_bindings_0",
		      "a device handle per thread (a VFIO device is opened once, by one process)"))
		return;
	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &dev), 0);
	__atomic_store_n(&stop_racers, 0, __ATOMIC_RELEASE);
	if (shared)
		ck_assert_int_eq(pthread_create(&dc, NULL, device_caller, dev),
				 0);
	for (int i = 0; i < own + shared; i++) {
		r[i] = (struct racer){ .shared = dev, .own_dev = i < own,
				       .rounds = vfio ? 2 : 8 };
		ck_assert_int_eq(pthread_create(&t[i], NULL, racer_thread,
						&r[i]), 0);
	}
	for (int i = 0; i < own + shared; i++) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 240;
		ck_assert_msg(!pthread_timedjoin_np(t[i], NULL, &deadline),
			      "racer %d hangs", i);
		ck_assert_msg(!r[i].err, "racer %d failed at line %d", i,
			      r[i].err);
	}
	__atomic_store_n(&stop_racers, 1, __ATOMIC_RELEASE);
	if (shared)
		pthread_join(dc, NULL);
	sva_dev_close(dev);
}
END_TEST

/*
 * sva_submit_and_wait() from many threads on one binding whose queue holds
 * fewer descriptors than there are threads, a plain reaper stealing
 * completions beside them: every descriptor completes once, reaped by
 * someone, each copy byte exact and touching only its own bytes; nobody
 * hangs (a waiter whose completion another thread took returns short).
 */
#define SAW_THREADS 6
#define SAW_ROUNDS 150			/* the most; saw_rounds() */
#define SAW_SLOT 64
#define SAW_LEN 48

struct saw {
	struct fixture *f;
	uint8_t *src, *dst;		/* [SAW_THREADS][SAW_ROUNDS][SAW_SLOT] */
	atomic_int seen[SAW_THREADS * SAW_ROUNDS];
	atomic_int bad_status, eagain, stop;
	atomic_int err;			/* line of the first failure */
};

/* Each submitter's descriptors: 10 on a vfio device (edu moves 48 bytes
 * in ~200 ms), still more than the queue holds across the threads. */
static int saw_rounds(void)
{
	return test_on_vfio() ? 10 : SAW_ROUNDS;
}

struct saw_thread {
	struct saw *s;
	int id;
};

static void saw_record(struct saw *s, const struct sva_completion *c, int n)
{
	for (int i = 0; i < n; i++) {
		if (c[i].user_data >= SAW_THREADS * SAW_ROUNDS ||
		    c[i].status != SVA_STATUS_SUCCESS)
			atomic_fetch_add(&s->bad_status, 1);
		else
			atomic_fetch_add(&s->seen[c[i].user_data], 1);
	}
}

static void *saw_submitter(void *arg)
{
	struct saw_thread *t = arg;
	struct saw *s = t->s;
	struct sva_completion c[8];
	struct sva_desc d;
	size_t off;
	int n;

	for (int i = 0; i < saw_rounds() && !atomic_load(&s->err); i++) {
		off = ((size_t)t->id * SAW_ROUNDS + i) * SAW_SLOT;
		d = desc_make(s->f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
			      s->src + off, s->dst + off, SAW_LEN);
		d.user_data = (uint64_t)t->id * SAW_ROUNDS + i;
		/* Forever, or with a timeout: both paths. */
		while ((n = sva_submit_and_wait(s->f->bind, &d, 1, c, 8, 1,
						i & 1 ? 10000 : -1)) == -EAGAIN) {
			atomic_fetch_add(&s->eagain, 1);
			n = sva_wait(s->f->bind, c, 8, 0, 0);
			if (n < 0)
				break;
			saw_record(s, c, n);
			sched_yield();
		}
		if (n < 0) {
			atomic_store(&s->err, __LINE__);
			break;
		}
		saw_record(s, c, n);
	}
	return NULL;
}

static void *saw_reaper(void *arg)
{
	struct saw *s = arg;
	struct sva_completion c[8];
	int n;

	while (!atomic_load(&s->stop)) {
		/* min 0: what is there now (min 1 races the submitters'
		 * own reaping: -EINVAL with nothing in flight). */
		n = sva_wait(s->f->bind, c, 8, 0, 0);
		if (n == 0)
			sched_yield();
		if (n > 0)
			saw_record(s, c, n);
	}
	return NULL;
}

START_TEST(test_submit_and_wait_threads_full_queue)
{
	size_t len = (size_t)SAW_THREADS * SAW_ROUNDS * SAW_SLOT;
	SVA_OPTS_INIT(sva_bind_opts, bo, .queue_depth = 4);
	struct saw *s = calloc(1, sizeof(*s));
	struct saw_thread th[SAW_THREADS];
	struct sva_completion c[8];
	struct fixture f = { 0 };
	pthread_t t[SAW_THREADS], reaper;
	int n;

	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &f.dev), 0);
	ck_assert_int_eq(sva_bind(f.dev, &bo, &f.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(f.bind, &f.pasid), 0);
	s->f = &f;
	s->src = map_filled(len, 11);
	s->dst = map_fresh(len, PROT_READ | PROT_WRITE);
	memset(s->dst, 0, len);
	ck_assert_int_eq(pthread_create(&reaper, NULL, saw_reaper, s), 0);
	for (int i = 0; i < SAW_THREADS; i++) {
		th[i] = (struct saw_thread){ .s = s, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, saw_submitter,
						&th[i]), 0);
	}
	for (int i = 0; i < SAW_THREADS; i++) {
		struct timespec deadline;

		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 120;
		ck_assert_msg(!pthread_timedjoin_np(t[i], NULL, &deadline),
			      "submitter %d hangs", i);
	}
	atomic_store(&s->stop, 1);
	pthread_join(reaper, NULL);
	ck_assert_msg(!atomic_load(&s->err), "a submitter failed at line %d",
		      atomic_load(&s->err));
	while ((n = sva_inflight(f.bind)) > 0) {
		n = sva_wait(f.bind, c, 8, 1, 10000);
		ck_assert_int_gt(n, 0);
		saw_record(s, c, n);
	}
	ck_assert_int_eq(atomic_load(&s->bad_status), 0);
	/* Slots of rounds not run (vfio) were never submitted: reaped
	 * never, their bytes untouched. */
	for (int i = 0; i < SAW_THREADS * SAW_ROUNDS; i++) {
		bool ran = i % SAW_ROUNDS < saw_rounds();
		size_t off = (size_t)i * SAW_SLOT;

		ck_assert_msg(atomic_load(&s->seen[i]) == ran,
			      "descriptor %d reaped %d times", i,
			      atomic_load(&s->seen[i]));
		if (ran)
			ck_assert_int_eq(memcmp(s->src + off, s->dst + off,
						SAW_LEN), 0);
		for (size_t b = ran ? SAW_LEN : 0; b < SAW_SLOT; b++)
			ck_assert_uint_eq(s->dst[off + b], 0);
	}
	fprintf(stderr, "%s: %d descriptors, %d times the queue was full\n",
		__func__, SAW_THREADS * saw_rounds(), atomic_load(&s->eagain));
	munmap(s->src, len);
	munmap(s->dst, len);
	free(s);
	close_bind(&f);
}
END_TEST

Suite *threads_suite(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("threads");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_regress_library_threads_block_signals);
	tcase_add_test(tc, test_regress_out_struct_tail_zeroed);
	tcase_add_loop_test(tc, test_regress_unbind_concurrent_bindings, 0, 2);
	tcase_add_test(tc, test_submit_and_wait_threads_full_queue);
	suite_add_tcase(s, tc);
	return s;
}
