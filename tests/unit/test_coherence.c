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
	int refaulted = 0;

	for (int r = 0; r < ROUNDS; r++) {
		memset(src, r + 1, len);
		ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
		zapper_start(&z, src, len);
		while (!atomic_load(&z.done))
			run1(&f, &d);
		pthread_join(z.thread, NULL);
		/*
		 * A burst that translated before the zap and read after it
		 * faulted a page in again, as a CPU read racing madvise()
		 * may: then there is nothing stale to check this round.
		 */
		if (pages_present(src, len)) {
			refaulted++;
			continue;
		}
		c = run1(&f, &d);
		ck_assert_msg(c.status == SVA_STATUS_PAGE_FAULT,
			      "round %d: device read discarded memory through a stale translation (status %u)",
			      r, c.status);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)src);
		ck_assert_uint_eq(pages_present(src, len), 0);
	}
	fprintf(stderr, "%s: %d of %d rounds refaulted by a racing burst\n",
		__func__, refaulted, ROUNDS);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/*
 * Regression (issue 7, defect 11): after mprotect(PROT_READ) of a page the
 * CPU had written, snapshots said VALID|WRITE (0x3; 0x7 in a THP): the
 * model trusted a VMA permission cached before the mprotect, which sends
 * no event. A snapshot must reflect the protections in force when taken.
 */
static void check_protect(uint8_t *p, size_t len, bool expect_huge)
{
	struct sva_mirror *m;
	static uint8_t st[512];
	size_t n = len / PAGE;

	memset(p, 1, len);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	/* Warm: the model has seen the VMA read/write. */
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i] & ~(unsigned int)SVA_PAGE_HUGE,
				  anon_rw_state(p + i * PAGE));
	ck_assert_int_eq(mprotect(p, len, PROT_READ), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(!(st[i] & SVA_PAGE_WRITE),
			      "page %zu: %#x after mprotect(PROT_READ)", i,
			      st[i]);
		ck_assert_uint_eq(st[i] & SVA_PAGE_VALID, SVA_PAGE_VALID);
		if (expect_huge && page_is_thp(p + i * PAGE) >= 0)
			ck_assert_uint_eq(st[i] & SVA_PAGE_HUGE,
					  page_is_thp(p + i * PAGE) ?
					  SVA_PAGE_HUGE : 0);
	}
	ck_assert_int_eq(mprotect(p, len, PROT_NONE), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i], SVA_PAGE_ERROR);
	/* And write permission given back is seen too. */
	ck_assert_int_eq(mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i] & SVA_PAGE_VALID, SVA_PAGE_VALID);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
}

START_TEST(test_regress_snapshot_mprotect)
{
	size_t huge = 2ul << 20;
	uint8_t *small = map_fresh_small(4 * PAGE, PROT_READ | PROT_WRITE);
	uint8_t *raw = map_fresh(2 * huge, PROT_READ | PROT_WRITE), *big;

	check_protect(small, 4 * PAGE, false);
	big = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ck_assert(!madvise(big, huge, MADV_HUGEPAGE) || errno == EINVAL);
	check_protect(big, huge, true);
	munmap(small, 4 * PAGE);
	munmap(raw, 2 * huge);
}
END_TEST

enum breakage { BREAK_UNMAP, BREAK_PROT_NONE, BREAK_READ_ONLY };

static void break_page(uint8_t *page, enum breakage how)
{
	if (how == BREAK_UNMAP)
		ck_assert_int_eq(munmap(page, PAGE), 0);
	else
		ck_assert_int_eq(mprotect(page, PAGE, how == BREAK_PROT_NONE ?
					  PROT_NONE : PROT_READ), 0);
}

/*
 * Regression (issue 7, defect 11): with block-on-fault, a COPY whose third
 * destination page is invalid reported bytes_done 0 although its first two
 * pages were writable (cold: they were in the same failed page request
 * group; warm: left unwritten). A device translating in order completes
 * the bytes before the failing page; bytes_done is exact and fault_addr
 * is the first byte it could not access.
 */
START_TEST(test_regress_block_fault_bytes_done)
{
	size_t len = 4 * PAGE;
	uint8_t *src = map_filled(len, 5);

	for (int how = BREAK_UNMAP; how <= BREAK_READ_ONLY; how++) {
		for (int warm = 0; warm < 2; warm++) {
			uint8_t *dst = map_fresh_small(len, PROT_READ |
						       PROT_WRITE);
			struct sva_desc d = desc_make(&f, SVA_OP_COPY,
						      SVA_DESC_BLOCK_ON_FAULT,
						      src, dst, len);
			struct sva_completion c;

			if (warm) {
				ck_assert_uint_eq(run1(&f, &d).status,
						  SVA_STATUS_SUCCESS);
				fill_pattern(src, len, 6 + how);
			} else if (how == BREAK_READ_ONLY) {
				dst[2 * PAGE] = 1;	/* present, read-only */
			}
			break_page(dst + 2 * PAGE, how);
			c = run1(&f, &d);
			ck_assert_msg(c.status == SVA_STATUS_FAULT_INVALID,
				      "how %d warm %d: status %u", how, warm,
				      c.status);
			ck_assert_msg(c.bytes_done == 2 * PAGE,
				      "how %d warm %d: bytes_done %llu", how,
				      warm, (unsigned long long)c.bytes_done);
			ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 2 * PAGE);
			ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
			ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
			munmap(dst, len);
		}
	}
	munmap(src, len);
}
END_TEST

/*
 * fault_addr is the first byte the device could not access (sva_submit(3),
 * sva.h): in a destination starting inside an invalid page that is the
 * descriptor's own address, not the page's, with or without block-on-fault.
 */
START_TEST(test_regress_fault_addr_first_byte)
{
	uint8_t *src = map_filled(2 * PAGE, 7);
	uint8_t *dst = map_filled(2 * PAGE, 8);

	ck_assert_int_eq(mprotect(dst, 2 * PAGE, PROT_READ), 0);
	for (int block = 0; block < 2; block++) {
		struct sva_desc d = desc_make(&f, SVA_OP_COPY,
					      block ? SVA_DESC_BLOCK_ON_FAULT : 0,
					      src, dst + 100, PAGE);
		struct sva_completion c = run1(&f, &d);

		ck_assert_uint_eq(c.status, block ? SVA_STATUS_FAULT_INVALID :
					    SVA_STATUS_PAGE_FAULT);
		ck_assert_uint_eq(c.bytes_done, 0);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 100);
		ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	}
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
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
	tcase_add_test(tc, test_regress_snapshot_mprotect);
	tcase_add_test(tc, test_regress_block_fault_bytes_done);
	tcase_add_test(tc, test_regress_fault_addr_first_byte);
	suite_add_tcase(s, tc);
	return s;
}
