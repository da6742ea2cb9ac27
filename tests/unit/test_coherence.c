// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The mirror guarantee against a racing mm: a snapshot read_retry()
 * accepts is current, no device access runs on a translation an
 * invalidation dropped, and no library lock is held across an access that
 * can block on the application. Regressions of issue 7.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
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

/* Discards [p, p + len) with MADV_DONTNEED once told to go. */
struct zapper {
	uint8_t *p;
	size_t len;
	atomic_int go, done;
	pthread_t thread;
};

static void *zap_thread(void *arg)
{
	struct zapper *z = arg;

	while (!atomic_load(&z->go))
		sched_yield();
	ck_assert_int_eq(madvise(z->p, z->len, MADV_DONTNEED), 0);
	atomic_store(&z->done, 1);
	return NULL;
}

static void zapper_start(struct zapper *z, uint8_t *p, size_t len)
{
	z->p = p;
	z->len = len;
	atomic_store(&z->go, 0);
	atomic_store(&z->done, 0);
	ck_assert_int_eq(pthread_create(&z->thread, NULL, zap_thread, z), 0);
	atomic_store(&z->go, 1);
}

/*
 * Regression (issue 7, defect 4): userfaultfd's REMOVE event comes before
 * MADV_DONTNEED's zap, and the sim advanced the sequence on reading it: a
 * snapshot taken between the event and the zap reported the pages VALID
 * and read_retry() accepted it (10 of 10 rounds). Invariant checked: once
 * madvise() has returned and the pages are gone, no snapshot that showed
 * them valid may still be accepted.
 */
START_TEST(test_regress_discard_snapshot_stale)
{
	enum { ROUNDS = 20 };
	size_t len = 4 * PAGE;
	uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE);
	struct sva_mirror *m;
	struct zapper z;
	int raced = 0;

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t seq, accepted = 0;
		bool have = false;
		uint8_t st[4];

		memset(p, r + 1, len);
		zapper_start(&z, p, len);
		while (!atomic_load(&z.done)) {
			seq = sva_mirror_read_begin(m);
			ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p,
							     len, st, 0), 0);
			if (!sva_mirror_read_retry(m, seq) &&
			    (st[len / PAGE - 1] & SVA_PAGE_VALID)) {
				have = true;
				accepted = seq;
			}
		}
		pthread_join(z.thread, NULL);
		ck_assert_uint_eq(pages_present(p, len), 0);
		if (!have)
			continue;
		raced++;
		ck_assert_msg(sva_mirror_read_retry(m, accepted),
			      "round %d: a snapshot of pages MADV_DONTNEED zapped is still accepted",
			      r);
	}
	fprintf(stderr, "%s: %d of %d rounds had a snapshot accepted during the discard\n",
		__func__, raced, ROUNDS);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, len);
}
END_TEST

/*
 * Regression (issue 7, defect 4), the device's side: a translation taken
 * between the REMOVE event and the zap must not stay in the ATC, or the
 * device reads through it after madvise() returned (silently faulting a
 * new page in) where it must fault.
 */
START_TEST(test_regress_discard_atc_stale)
{
	enum { ROUNDS = 20 };
	size_t len = 4 * PAGE;
	uint8_t *src = map_fresh_small(len, PROT_READ | PROT_WRITE);
	uint8_t *dst = map_filled(len, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	struct sva_completion c;
	struct zapper z;

	for (int r = 0; r < ROUNDS; r++) {
		memset(src, r + 1, len);
		ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
		zapper_start(&z, src, len);
		while (!atomic_load(&z.done))
			run1(&f, &d);
		pthread_join(z.thread, NULL);
		ck_assert_uint_eq(pages_present(src, len), 0);
		c = run1(&f, &d);
		ck_assert_msg(c.status == SVA_STATUS_PAGE_FAULT,
			      "round %d: device read discarded memory through a stale translation (status %u)",
			      r, c.status);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)src);
		ck_assert_uint_eq(pages_present(src, len), 0);
	}
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

Suite *coherence_suite(void)
{
	Suite *s = suite_create("coherence");
	TCase *tc = tcase_create("coherence");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_regress_discard_snapshot_stale);
	tcase_add_test(tc, test_regress_discard_atc_stale);
	suite_add_tcase(s, tc);
	return s;
}
