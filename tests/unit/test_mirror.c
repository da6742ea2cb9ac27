// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Mirror ranges: snapshots, invalidation callbacks, read_begin/retry. */
#include <errno.h>
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

START_TEST(test_mirror_bad_args)
{
	uint8_t *p = map_fresh(4 * PAGE, PROT_READ | PROT_WRITE);
	struct sva_mirror *m;
	uint8_t st[4];

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p + 1, PAGE,
					     NULL, &m), -EINVAL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 100,
					     NULL, &m), -EINVAL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 0, NULL,
					     &m), -EINVAL);
	ck_assert_int_eq(sva_mirror_register(f.bind, UINT64_MAX & ~4095ull,
					     2 * PAGE, NULL, &m), -EINVAL);
	ck_assert_int_eq(sva_mirror_register(NULL, (uintptr_t)p, PAGE, NULL,
					     &m), -EINVAL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 2 * PAGE,
					     NULL, &m), 0);
	/* Snapshots inside the mirror only. */
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, 4 * PAGE, st,
					     0), -EINVAL);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, PAGE, NULL, 0),
			 -EINVAL);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, PAGE, st, 8),
			 -EINVAL);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	ck_assert_int_eq(sva_mirror_unregister(NULL), -EINVAL);
	munmap(p, 4 * PAGE);
}
END_TEST

/*
 * Snapshot states of pages in every state a mapping can be in. The state a
 * read fault leaves (the shared zero page, read-only, or a page of its own,
 * writable: kernels differ) is taken from pagemap, not assumed.
 */
START_TEST(test_snapshot_states)
{
	uint8_t *p = map_fresh_small(8 * PAGE, PROT_READ | PROT_WRITE);
	volatile uint8_t sink;
	struct sva_mirror *m;
	unsigned int want[2];
	uint8_t st[8];

	p[0] = 1;				/* 0: written */
	sink = p[PAGE];				/* 1: read */
	(void)sink;
	p[2 * PAGE] = 1;
	mprotect(p + 2 * PAGE, PAGE, PROT_READ);	/* 2: read-only */
	mprotect(p + 3 * PAGE, PAGE, PROT_NONE);	/* 3: no access */
	munmap(p + 4 * PAGE, PAGE);			/* 4: hole */
						/* 5..7: untouched */
	want[0] = anon_rw_state(p);
	ck_assert_uint_eq(want[0], SVA_PAGE_VALID | SVA_PAGE_WRITE);
	want[1] = anon_rw_state(p + PAGE);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 8 * PAGE,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, 8 * PAGE, st,
					     0), 0);
	ck_assert_uint_eq(st[0], want[0]);
	ck_assert_uint_eq(st[1], want[1]);
	ck_assert_uint_eq(st[2], SVA_PAGE_VALID);
	ck_assert_uint_eq(st[3], SVA_PAGE_ERROR);
	ck_assert_uint_eq(st[4], SVA_PAGE_ERROR);
	ck_assert_uint_eq(pages_present(p + 5 * PAGE, 3 * PAGE), 0);
	for (int i = 5; i < 8; i++)
		ck_assert_uint_eq(st[i], 0);

	/* Faulting for write: what can be made writable is. */
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, 8 * PAGE, st,
					     SVA_ACCESS_WRITE), 0);
	ck_assert_uint_eq(st[1], SVA_PAGE_VALID | SVA_PAGE_WRITE);
	ck_assert_uint_eq(anon_rw_state(p + PAGE),
			  SVA_PAGE_VALID | SVA_PAGE_WRITE);
	ck_assert_uint_eq(st[2], SVA_PAGE_VALID);
	ck_assert_uint_eq(st[3], SVA_PAGE_ERROR);
	ck_assert_uint_eq(st[4], SVA_PAGE_ERROR);
	for (int i = 5; i < 8; i++)
		ck_assert_uint_eq(st[i], SVA_PAGE_VALID | SVA_PAGE_WRITE);
	ck_assert_uint_eq(pages_present(p + 5 * PAGE, 3 * PAGE), 3);
	ck_assert_uint_eq(p[5 * PAGE], 0);
	ck_assert_uint_ge(bind_stats(&f).faults_failed, 1);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, 8 * PAGE);
}
END_TEST

/*
 * Whether the kernel backs the range with a huge page depends on its THP
 * policy (always, madvise, never) and on whether it found one free: the
 * HUGE bit must say what the kernel did, page by page, whatever it did.
 */
START_TEST(test_snapshot_huge)
{
	size_t huge = 2ul << 20;
	uint8_t *raw = map_fresh(2 * huge, PROT_READ | PROT_WRITE), *p;
	struct sva_mirror *m;
	static uint8_t st[512];
	int thp, told = 0, huge_pages = 0;

	p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	/* EINVAL: no THP in this kernel; the range is then all small. */
	ck_assert(!madvise(p, huge, MADV_HUGEPAGE) || errno == EINVAL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, huge,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, huge, st,
					     SVA_ACCESS_WRITE), 0);
	for (int i = 0; i < 512; i++) {
		ck_assert_uint_eq(st[i] & (SVA_PAGE_VALID | SVA_PAGE_WRITE),
				  SVA_PAGE_VALID | SVA_PAGE_WRITE);
		thp = page_is_thp(p + (size_t)i * PAGE);
		if (thp < 0)
			continue;	/* PFNs hidden: can't tell */
		told++;
		huge_pages += thp;
		ck_assert_uint_eq(st[i] & SVA_PAGE_HUGE,
				  thp ? SVA_PAGE_HUGE : 0);
	}
	fprintf(stderr, "test_snapshot_huge: %d of 512 pages checked, %d in THPs\n",
		told, huge_pages);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(raw, 2 * huge);
}
END_TEST

/*
 * Regression (issue 7, defect 13): the suite assumed a read fault maps the
 * shared zero page. Read-fault fresh memory in base pages and in a range
 * THP may back (a huge zero page, a THP, or small pages, by policy), and
 * check the snapshot against what pagemap says the kernel mapped.
 */
START_TEST(test_regress_read_fault_policy)
{
	size_t huge = 2ul << 20;
	uint8_t *small = map_fresh_small(4 * PAGE, PROT_READ | PROT_WRITE);
	uint8_t *raw = map_fresh(2 * huge, PROT_READ | PROT_WRITE), *big;
	volatile uint8_t sink;
	struct sva_mirror *m;
	static uint8_t st[512];
	unsigned int want;

	big = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ck_assert(!madvise(big, huge, MADV_HUGEPAGE) || errno == EINVAL);
	sink = small[PAGE];
	sink = big[0];
	(void)sink;
	want = anon_rw_state(small + PAGE);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)small,
					     4 * PAGE, NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)small, 4 * PAGE,
					     st, 0), 0);
	ck_assert_uint_eq(st[0], 0);
	ck_assert_uint_eq(st[1], want);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)big, huge,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)big, huge, st, 0),
			 0);
	for (int i = 0; i < 512; i++) {
		uint8_t *pg = big + (size_t)i * PAGE;

		if (!(pagemap_entry(pg) & PM_PRESENT_BIT)) {
			ck_assert_uint_eq(st[i], 0);
			continue;
		}
		ck_assert_uint_eq(st[i] & ~(unsigned int)SVA_PAGE_HUGE,
				  anon_rw_state(pg));
		if (page_is_thp(pg) >= 0 && !page_is_zero_page(pg))
			ck_assert_uint_eq(st[i] & SVA_PAGE_HUGE,
					  page_is_thp(pg) ? SVA_PAGE_HUGE : 0);
	}
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(small, 4 * PAGE);
	munmap(raw, 2 * huge);
}
END_TEST

struct inval_log {
	int calls;
	uint64_t start, end, seq;
	enum sva_inval_event ev;
};

static void record_inval(struct sva_mirror *m, uint64_t start, uint64_t end,
			 enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct inval_log *log = ctx;

	(void)m;
	log->calls++;
	log->start = start;
	log->end = end;
	log->ev = ev;
	log->seq = seq;
}

static void wait_calls(struct inval_log *log, int calls)
{
	/* Callbacks run on libsva's thread just after the event. */
	for (int i = 0; i < 2000 && __atomic_load_n(&log->calls,
						    __ATOMIC_ACQUIRE) < calls;
	     i++)
		usleep(1000);
	ck_assert_int_eq(__atomic_load_n(&log->calls, __ATOMIC_ACQUIRE),
			 calls);
}

START_TEST(test_invalidate_callback_and_retry)
{
	uint8_t *p = map_filled(8 * PAGE, 1);
	struct inval_log log = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = record_inval,
		      .ctx = &log);
	struct sva_mirror *m, *other;
	uint64_t seq, oseq;
	uint8_t st[8];

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &mo, &m), 0);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p + 4 * PAGE,
					     4 * PAGE, NULL, &other), 0);
	seq = sva_mirror_read_begin(m);
	oseq = sva_mirror_read_begin(other);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, 4 * PAGE, st,
					     0), 0);
	ck_assert(!sva_mirror_read_retry(m, seq));

	/* DONTNEED of part of it: stale as soon as madvise returns. */
	ck_assert_int_eq(madvise(p + PAGE, PAGE, MADV_DONTNEED), 0);
	ck_assert(sva_mirror_read_retry(m, seq));
	ck_assert(!sva_mirror_read_retry(other, oseq));
	wait_calls(&log, 1);
	ck_assert_uint_eq(log.start, (uintptr_t)p + PAGE);
	ck_assert_uint_eq(log.end, (uintptr_t)p + 2 * PAGE);
	ck_assert_int_eq(log.ev, SVA_INVAL_DISCARD);
	ck_assert_uint_eq(log.seq, sva_mirror_read_begin(m));

	/* munmap over both: each mirror told of its own part. */
	seq = sva_mirror_read_begin(m);
	ck_assert_int_eq(munmap(p + 3 * PAGE, 2 * PAGE), 0);
	ck_assert(sva_mirror_read_retry(m, seq));
	ck_assert(sva_mirror_read_retry(other, oseq));
	wait_calls(&log, 2);
	ck_assert_uint_eq(log.start, (uintptr_t)p + 3 * PAGE);
	ck_assert_uint_eq(log.end, (uintptr_t)p + 4 * PAGE);
	ck_assert_int_eq(log.ev, SVA_INVAL_UNMAP);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, 4 * PAGE, st,
					     0), 0);
	ck_assert_uint_eq(st[1], 0);
	ck_assert_uint_eq(st[3], SVA_PAGE_ERROR);

	/* Unbinding tells the mirrors still registered. */
	ck_assert_int_eq(sva_mirror_unregister(other), 0);
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(log.calls, 3);
	ck_assert_int_eq(log.ev, SVA_INVAL_RELEASE);
	munmap(p, 8 * PAGE);
}
END_TEST

struct unmapper {
	uint8_t *victim;
	size_t len;
	int calls;
};

static void unmap_in_callback(struct sva_mirror *m, uint64_t start,
			      uint64_t end, enum sva_inval_event ev,
			      uint64_t seq, void *ctx)
{
	struct unmapper *u = ctx;

	(void)m, (void)start, (void)end, (void)ev, (void)seq;
	if (u->victim) {
		munmap(u->victim, u->len);	/* memory the device touched */
		u->victim = NULL;
	}
	__atomic_add_fetch(&u->calls, 1, __ATOMIC_RELEASE);
}

/*
 * A callback may unmap (or free) memory the device has touched: munmap()
 * then waits on libsva's event thread, which must not be the one running
 * the callback.
 */
START_TEST(test_callback_may_unmap)
{
	size_t len = 4 * PAGE;
	uint8_t *p = map_filled(len, 1), *victim = map_filled(len, 2);
	uint8_t *dst = map_filled(len, 3);
	struct unmapper u = { .victim = victim, .len = len };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = unmap_in_callback,
		      .ctx = &u);
	/* One edu transfer on a vfio device. */
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      victim, dst, test_len(len));
	struct sva_mirror *m;

	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(victim, dst, test_len(len)), 0);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, &mo,
					     &m), 0);
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	for (int i = 0; i < 2000 &&
	     !__atomic_load_n(&u.calls, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_int_ge(__atomic_load_n(&u.calls, __ATOMIC_ACQUIRE), 1);
	ck_assert_ptr_null(u.victim);
	/* The device saw that unmap too. */
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_FAULT_INVALID);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, len);
	munmap(dst, len);
}
END_TEST

/* Many mirrors: an invalidation tells only the ones it overlaps. */
START_TEST(test_many_mirrors)
{
	enum { N = 256 };
	uint8_t *p = map_filled(N * PAGE, 2);
	static struct sva_mirror *m[N];
	static uint64_t seq[N];
	struct sva_mirror *big;
	uint64_t bseq;

	/* Registered out of order, and one long mirror over them all. */
	for (int k = 0; k < N; k++) {
		int i = (k * 37) % N;

		ck_assert_int_eq(sva_mirror_register(f.bind,
					(uintptr_t)p + (uint64_t)i * PAGE,
					PAGE, NULL, &m[i]), 0);
	}
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, N * PAGE,
					     NULL, &big), 0);
	for (int i = 0; i < N; i++)
		seq[i] = sva_mirror_read_begin(m[i]);
	bseq = sva_mirror_read_begin(big);
	ck_assert_int_eq(madvise(p + 10 * PAGE, 5 * PAGE, MADV_DONTNEED), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(sva_mirror_read_retry(m[i], seq[i]),
				 i >= 10 && i < 15);
	ck_assert(sva_mirror_read_retry(big, bseq));
	/* Without the long one, a far page is still found. */
	ck_assert_int_eq(sva_mirror_unregister(big), 0);
	for (int i = 0; i < N; i++)
		seq[i] = sva_mirror_read_begin(m[i]);
	ck_assert_int_eq(madvise(p + 200 * PAGE, PAGE, MADV_DONTNEED), 0);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(sva_mirror_read_retry(m[i], seq[i]), i == 200);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(sva_mirror_unregister(m[i]), 0);
	munmap(p, N * PAGE);
}
END_TEST

Suite *mirror_suite(void)
{
	Suite *s = suite_create("mirror");
	TCase *tc = tcase_create("mirror");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mirror_bad_args);
	tcase_add_test(tc, test_snapshot_states);
	tcase_add_test(tc, test_snapshot_huge);
	tcase_add_test(tc, test_regress_read_fault_policy);
	tcase_add_test(tc, test_invalidate_callback_and_retry);
	tcase_add_test(tc, test_many_mirrors);
	tcase_add_test(tc, test_callback_may_unmap);
	suite_add_tcase(s, tc);
	return s;
}
