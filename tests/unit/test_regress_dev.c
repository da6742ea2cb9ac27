// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Regression tests of device data and invalidation delivery, on whatever
 * device the suite runs on (sim0 on the host, kmod0 in the test VM): a
 * device write touches exactly its bytes; no invalidation callback is lost
 * however slow the callbacks are.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

static struct fixture f;

static void setup(void)
{
	open_bind(&f, NULL);
}

static void teardown(void)
{
	close_bind(&f);
}

struct incrementer {
	_Atomic uint64_t *counter;
	_Atomic int stop;
	uint64_t done;
};

static void *increment_loop(void *arg)
{
	struct incrementer *in = arg;

	while (!atomic_load_explicit(&in->stop, memory_order_relaxed)) {
		atomic_fetch_add_explicit(in->counter, 1, memory_order_relaxed);
		in->done++;
	}
	return NULL;
}

/*
 * Defect 2: kmod wrote a destination that starts inside a page by reading
 * the whole page, patching it and writing it back, undoing the CPU's
 * stores to the rest of the page meanwhile. A CPU thread increments a
 * counter beside the destination while the device copies into the same
 * page, over and over: no increment may be lost.
 */
START_TEST(test_regress_partial_page_write)
{
	uint8_t *src = map_filled(PAGE, 5), *dst = map_filled(2 * PAGE, 6);
	struct incrementer in = { .counter = (_Atomic uint64_t *)dst };
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst + 64, PAGE - 64);
	uint8_t before_tail = dst[PAGE];
	uint64_t deadline = (uint64_t)time(NULL) + 3;
	pthread_t t;
	int n = 0;

	memset(dst, 0, 64);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(pthread_create(&t, NULL, increment_loop, &in), 0);
	/* Rounds, not time, decide; the deadline only bounds slow hosts. */
	for (; n < 4000 && (uint64_t)time(NULL) < deadline; n++) {
		struct sva_completion c = run1(&f, &d);

		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.bytes_done, PAGE - 64);
	}
	atomic_store(&in.stop, 1);
	pthread_join(t, NULL);
	ck_assert_int_gt(n, 50);
	ck_assert_uint_eq(atomic_load(in.counter), in.done);
	ck_assert_mem_eq(dst + 64, src, PAGE - 64);
	ck_assert_uint_eq(dst[PAGE], before_tail);
	munmap(src, PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

enum { LOST_PAGES = 600 };

struct slow_log {
	pthread_mutex_t lock;
	uint8_t told[LOST_PAGES];	/* page reached a callback */
	uint64_t base;
	_Atomic int calls;
	_Atomic int release;		/* the first callback may return */
};

/*
 * How long the first callback waits for the invalidations to be done: they
 * normally release it; the bound only keeps a backend whose madvise()
 * waits for callbacks from hanging.
 */
#define SLOW_CALLBACK_MS 5000

static void slow_inval(struct sva_mirror *m, uint64_t start, uint64_t end,
		       enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct slow_log *log = ctx;

	(void)m, (void)ev, (void)seq;
	/* The first callback sleeps while every other invalidation comes. */
	if (atomic_fetch_add(&log->calls, 1) == 0)
		for (int i = 0; i < SLOW_CALLBACK_MS &&
		     !atomic_load(&log->release); i++)
			usleep(1000);
	pthread_mutex_lock(&log->lock);
	for (uint64_t a = start; a < end; a += PAGE)
		log->told[(a - log->base) / PAGE] = 1;
	pthread_mutex_unlock(&log->lock);
}

static int untold(struct slow_log *log)
{
	int n = 0;

	pthread_mutex_lock(&log->lock);
	for (int i = 0; i < LOST_PAGES; i++)
		n += !log->told[i];
	pthread_mutex_unlock(&log->lock);
	return n;
}

/*
 * Defect 3: with a callback that sleeps, more invalidations arrive than
 * the kernel's 256-record queue holds; the dropped records were counted
 * and never read, and their pages never reached a callback. Every page
 * invalidated must reach one (a whole-mirror callback counts), and the
 * sequence has advanced.
 */
START_TEST(test_regress_lost_invalidations)
{
	uint8_t *p = map_filled(LOST_PAGES * PAGE, 3);
	static struct slow_log log;
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = slow_inval,
		      .ctx = &log);
	struct sva_mirror *m;
	uint64_t seq;
	int left = LOST_PAGES;

	memset(&log, 0, sizeof(log));
	pthread_mutex_init(&log.lock, NULL);
	log.base = (uintptr_t)p;
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p,
					     LOST_PAGES * PAGE, &mo, &m), 0);
	seq = sva_mirror_read_begin(m);
	for (int i = 0; i < LOST_PAGES; i++)
		ck_assert_int_eq(madvise(p + (size_t)i * PAGE, PAGE,
					 MADV_DONTNEED), 0);
	atomic_store(&log.release, 1);
	ck_assert(sva_mirror_read_retry(m, seq));
	for (int i = 0; i < 10000 && (left = untold(&log)); i++)
		usleep(1000);
	ck_assert_int_eq(left, 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, LOST_PAGES * PAGE);
}
END_TEST

Suite *regress_dev_suite(void)
{
	Suite *s = suite_create("regress_dev");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_regress_partial_page_write);
	tcase_add_test(tc, test_regress_lost_invalidations);
	suite_add_tcase(s, tc);
	return s;
}
