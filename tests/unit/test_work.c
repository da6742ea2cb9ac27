// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Work submission: operations, faulting in fresh memory, queues, threads. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
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

/*
 * Copies of many sizes and alignments, on warm memory. On a vfio device
 * the sizes are around edu's 2 KiB transfer (one short of it, one, one
 * more, a page about) and the largest is test_len()'s, several transfers.
 */
START_TEST(test_copy_sizes)
{
	static const uint64_t sim_sizes[] = { 1, 7, 4095, 4096, 4097,
					      65536 + 3, 300000, 5u << 20 };
	static const uint64_t edu_sizes[] = { 1, 7, 2047, 2048, 2049, 4095,
					      4097 };
	const uint64_t *sizes = test_on_vfio() ? edu_sizes : sim_sizes;
	size_t n = test_on_vfio() ? sizeof(edu_sizes) / sizeof(edu_sizes[0]) :
				    sizeof(sim_sizes) / sizeof(sim_sizes[0]);
	size_t big = test_len(5u << 20), cap = big + 2 * PAGE;
	uint8_t *src = map_filled(cap, 3), *dst = map_filled(cap, 4);
	uint8_t *ref = map_filled(cap, 4);

	/* vfio: test_len()'s largest after the list (sim's ends with it). */
	for (size_t i = 0; i < n + test_on_vfio(); i++) {
		size_t so = (i * 13) % 64, doff = (i * 29) % 4096;
		uint64_t len = i < n ? sizes[i] : big;
		struct sva_desc d = desc_make(&f, SVA_OP_COPY, 0, src + so,
					      dst + doff, len);
		struct sva_completion c = run1(&f, &d);

		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.bytes_done, len);
		ck_assert_int_eq(memcmp(src + so, dst + doff, len), 0);
		/* Not a byte more, not a byte less. */
		ck_assert_uint_eq(dst[doff + len], ref[doff + len]);
		if (doff)
			ck_assert_uint_eq(dst[doff - 1], ref[doff - 1]);
		memcpy(dst, ref, cap);
	}
	munmap(ref, cap);
	munmap(src, cap);
	munmap(dst, cap);
}
END_TEST

/* On a vfio device: a FILL and a CRC over two edu transfers (the pattern
 * stays in edu's buffer from one to the next), a COMPARE over one. */
START_TEST(test_fill_compare_crc)
{
	size_t len = test_len(3 * PAGE) + 123, cmp = test_len(4 * PAGE);
	size_t at = cmp / 2 + 77;	/* the byte that differs */
	uint8_t *a = map_filled(4 * PAGE, 5), *b = map_filled(4 * PAGE, 6);
	struct sva_desc d;
	struct sva_completion c;

	d = desc_make(&f, SVA_OP_FILL, 0, NULL, a + 1, len);
	d.pattern = 0x0807060504030201ull;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(a[1 + i], i % 8 + 1);
	ck_assert_uint_ne(a[1 + len], (len % 8) + 1);

	d = desc_make(&f, SVA_OP_CRC32C, 0, a + 1, NULL, len);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, sva_crc32c(0, a + 1, len));

	memcpy(b, a, 4 * PAGE);
	d = desc_make(&f, SVA_OP_COMPARE, 0, a, b, cmp);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, 0);
	ck_assert_uint_eq(c.bytes_done, cmp);
	b[at] ^= 1;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, 1);
	ck_assert_uint_eq(c.bytes_done, at);

	d = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	munmap(a, 4 * PAGE);
	munmap(b, 4 * PAGE);
}
END_TEST

/*
 * Fresh pages: the device raises page requests, the MM populates them. A
 * vfio device (no PRI) has the library make them present before it maps
 * them (MADV_POPULATE_*): no page request, each page mapped in the IOMMU
 * and unmapped after, nothing pinned. Three pages there (edu's 2 KiB
 * transfers are slow), forty elsewhere.
 */
START_TEST(test_fault_in_fresh_memory)
{
	bool vfio = test_on_vfio();
	size_t pages = vfio ? 3 : 40, len = pages * PAGE;
	/* Small pages: a THP would populate pages nobody asked for. */
	uint8_t *src = map_fresh_small(len, PROT_READ | PROT_WRITE);
	uint8_t *dst = map_fresh_small(len, PROT_READ | PROT_WRITE);
	struct sva_desc d;
	struct sva_completion c;
	struct sva_stats s;

	ck_assert_uint_eq(pages_present(dst, len), 0);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, dst,
		      len);
	d.pattern = 0xabababababababab;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(pages_present(dst, len), pages);
	s = bind_stats(&f);
	if (vfio) {
		ck_assert_uint_eq(s.page_requests, 0);
		/* Each page once per 2 KiB chunk, the staging page too. */
		ck_assert_uint_ge(s.iommu_pages_mapped, pages);
		ck_assert_uint_eq(s.iommu_pages_unmapped, s.iommu_pages_mapped);
		ck_assert_uint_eq(s.pinned_now, 0);
	} else {
		ck_assert_uint_ge(s.page_requests, pages);
		ck_assert_uint_ge(s.faults_resolved, 1);
	}
	ck_assert_uint_eq(s.faults_failed, 0);
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(dst[i], 0xab);

	/* Reading fresh memory reads zeros, through read faults. */
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst,
		      len);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.bytes_done, len);
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(dst[i], 0);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/*
 * Without block-on-fault: a partial completion, DSA style, then resume. A
 * vfio device (no PRI: the library makes absent pages present before it
 * maps them) stops at a page it can't access instead: the pages after the
 * third are PROT_NONE there, the completion FAULT_INVALID, and the fix
 * before resuming an mprotect(); four pages (edu is slow), not eight.
 */
START_TEST(test_partial_completion_resume)
{
	bool vfio = test_on_vfio();
	size_t len = (vfio ? 4 : 8) * PAGE;
	uint8_t *src = map_filled(len, 7);
	uint8_t *dst = map_fresh_small(len, PROT_READ | PROT_WRITE);
	uint32_t want = vfio ? SVA_STATUS_FAULT_INVALID : SVA_STATUS_PAGE_FAULT;
	struct sva_desc d;
	struct sva_completion c;
	int rounds = 0;

	memset(dst, 1, 3 * PAGE);	/* three pages present */
	ck_assert_uint_eq(pages_present(dst, len), 3);
	if (vfio)
		ck_assert_int_eq(mprotect(dst + 3 * PAGE, len - 3 * PAGE,
					  PROT_NONE), 0);
	d = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, want);
	ck_assert_uint_eq(c.bytes_done, 3 * PAGE);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 3 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	ck_assert_int_eq(memcmp(src, dst, 3 * PAGE), 0);
	ck_assert_uint_eq(pages_present(dst, len), 3);	/* no silent touch */

	/* Touch what faulted, as a DSA driver does, and resume. */
	while (c.status == want) {
		if (vfio)
			ck_assert_int_eq(mprotect((void *)(uintptr_t)c.fault_addr,
						  PAGE, PROT_READ | PROT_WRITE),
					 0);
		*(volatile uint8_t *)(uintptr_t)c.fault_addr = 0;
		ck_assert_int_eq(sva_desc_resume(&d, &c), 0);
		c = run1(&f, &d);
		ck_assert_int_lt(++rounds, 10);
	}
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/* The running CRC carried over a resume. On a vfio device the second
 * half is PROT_NONE rather than absent (see test_partial_completion_resume). */
START_TEST(test_crc_resume)
{
	bool vfio = test_on_vfio();
	size_t len = 4 * PAGE;
	uint8_t *src = map_fresh_small(len, PROT_READ | PROT_WRITE);
	struct sva_desc d;
	struct sva_completion c;

	fill_pattern(src, 2 * PAGE, 9);	/* the rest stays absent */
	ck_assert_uint_eq(pages_present(src, len), 2);
	if (vfio)
		ck_assert_int_eq(mprotect(src + 2 * PAGE, 2 * PAGE, PROT_NONE),
				 0);
	d = desc_make(&f, SVA_OP_CRC32C, 0, src, NULL, len);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, vfio ? SVA_STATUS_FAULT_INVALID :
					   SVA_STATUS_PAGE_FAULT);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)src + 2 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	if (vfio)
		ck_assert_int_eq(mprotect(src + 2 * PAGE, 2 * PAGE,
					  PROT_READ | PROT_WRITE), 0);
	fill_pattern(src + 2 * PAGE, 2 * PAGE, 10);
	ck_assert_int_eq(sva_desc_resume(&d, &c), 0);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, sva_crc32c(0, src, len));
	munmap(src, len);
}
END_TEST

START_TEST(test_atc_warm)
{
	size_t len = 16 * PAGE;
	uint8_t *src = map_filled(len, 1), *dst = map_filled(len, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	struct sva_stats s1, s2;

	run1(&f, &d);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.translations, 32);
	ck_assert_uint_eq(s1.atc_misses, 32);
	run1(&f, &d);
	s2 = bind_stats(&f);
	ck_assert_uint_eq(s2.atc_hits - s1.atc_hits, 32);
	ck_assert_uint_eq(s2.atc_misses, s1.atc_misses);
	ck_assert_uint_eq(s2.page_requests, 0);
	ck_assert_uint_eq(s2.descs_completed, 2);
	ck_assert_uint_eq(s2.bytes_done, 2 * len);
	/* Device statistics add up the device's bindings; reset works. */
	{
		struct sva_stats ds = { .sz = sizeof(ds) };

		ck_assert_int_eq(sva_dev_stats(f.dev, &ds), 0);
		ck_assert_uint_eq(ds.atc_hits, s2.atc_hits);
		ck_assert_int_eq(sva_bind_stats_reset(f.bind), 0);
		ck_assert_uint_eq(bind_stats(&f).atc_hits, 0);
		ck_assert_int_eq(sva_dev_stats_reset(f.dev), 0);
		ck_assert_int_eq(sva_dev_stats(f.dev, &ds), 0);
		ck_assert_uint_eq(ds.bytes_done, 0);
	}
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/*
 * vfio0 keeps no translation between chunks (libsva(7)): each chunk's
 * pages are mapped (translations, each an ATC miss) and unmapped
 * (atc_invalidated) again, a second run the same as the first; no page
 * request is raised.
 */
START_TEST(test_vfio_no_atc)
{
	size_t len = 2 * 2048;
	uint8_t *src = map_filled(PAGE, 1), *dst = map_filled(PAGE, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	struct sva_stats s1, s2;

	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	s1 = bind_stats(&f);
	/* Two chunks, each mapping its source and destination page. */
	ck_assert_uint_eq(s1.translations, 4);
	ck_assert_uint_eq(s1.atc_misses, s1.translations);
	ck_assert_uint_eq(s1.atc_hits, 0);
	ck_assert_uint_eq(s1.atc_invalidated, s1.translations);
	ck_assert_uint_eq(s1.iommu_pages_mapped, s1.iommu_pages_unmapped);
	ck_assert_uint_eq(s1.pinned_now, 0);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	s2 = bind_stats(&f);
	ck_assert_uint_eq(s2.translations, 2 * s1.translations);
	ck_assert_uint_eq(s2.atc_misses, s2.translations);
	ck_assert_uint_eq(s2.atc_hits, 0);
	ck_assert_uint_eq(s2.atc_invalidated, s2.translations);
	ck_assert_uint_eq(s2.page_requests + s2.page_groups, 0);
	ck_assert_uint_eq(s2.bytes_done, 2 * len);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	munmap(src, PAGE);
	munmap(dst, PAGE);
}
END_TEST

START_TEST(test_queue_full_and_stop)
{
	SVA_OPTS_INIT(sva_bind_opts, bo, .queue_depth = 4);
	struct sva_bind *b;
	struct sva_desc d[10];
	struct sva_completion c[10];
	uint32_t pasid;

	ck_assert_int_eq(sva_bind(f.dev, &bo, &b), 0);
	ck_assert_int_eq(sva_bind_pasid(b, &pasid), 0);
	for (int i = 0; i < 10; i++) {
		d[i] = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
		d[i].pasid = pasid;
		d[i].user_data = (uint64_t)i;
	}
	ck_assert_int_eq(sva_queue_stop(b), 0);
	ck_assert_int_eq(sva_submit(b, d, 10), 4);
	ck_assert_int_eq(sva_submit(b, d, 1), -EAGAIN);
	ck_assert_int_eq(sva_inflight(b), 4);
	/* Stopped: nothing completes. */
	ck_assert_int_eq(sva_wait(b, c, 10, 1, 50), 0);
	ck_assert_int_eq(sva_queue_start(b), 0);
	ck_assert_int_eq(sva_wait(b, c, 10, 4, 5000), 4);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(c[i].user_data, (uint64_t)i);	/* in order */
	ck_assert_int_eq(sva_inflight(b), 0);
	ck_assert_int_eq(sva_submit(b, d + 4, 6), 4);
	ck_assert_int_eq(sva_unbind(b), 0);
}
END_TEST

struct submitter {
	struct sva_bind *bind;
	uint32_t pasid;
	int id;
	int errors;
};

#define THREADS 4
/* Each thread's descriptors: 200, 4 on a vfio device (edu is slow). */
static int per_thread(void)
{
	return test_on_vfio() ? 4 : 200;
}

/* Threads sharing one binding, each checking its own results. */
static void *submit_thread(void *arg)
{
	struct submitter *s = arg;
	size_t len = test_len(2 * PAGE + (size_t)s->id * 100);
	uint8_t *src = malloc(len), *dst = malloc(len);

	for (int i = 0; i < per_thread(); i++) {
		struct sva_desc d = {
			.opcode = SVA_OP_COPY, .pasid = s->pasid,
			.src = (uintptr_t)src, .dst = (uintptr_t)dst,
			.len = len, .flags = SVA_DESC_BLOCK_ON_FAULT,
			.user_data = (uint64_t)s->id << 32 | (uint64_t)i,
		};

		memset(src, s->id + i, len);
		while (sva_submit(s->bind, &d, 1) == -EAGAIN)
			sched_yield();
		/* Others reap too: wait until *our* result shows up. */
		while (!s->errors && memcmp(src, dst, len))
			sched_yield();
	}
	free(src);
	free(dst);
	return NULL;
}

START_TEST(test_concurrent_submitters)
{
	struct submitter s[THREADS];
	pthread_t t[THREADS];
	struct sva_completion c[64];
	int reaped = 0, n;

	for (int i = 0; i < THREADS; i++) {
		s[i] = (struct submitter){ .bind = f.bind, .pasid = f.pasid,
					   .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, submit_thread,
						&s[i]), 0);
	}
	while (reaped < THREADS * per_thread()) {
		n = sva_wait(f.bind, c, 64, 0, 100);
		ck_assert_int_ge(n, 0);
		for (int i = 0; i < n; i++)
			ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
		reaped += n;
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(bind_stats(&f).descs_completed,
			  THREADS * per_thread());
}
END_TEST

Suite *work_suite(void)
{
	Suite *s = suite_create("work");
	TCase *tc = tcase_create("work");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_copy_sizes);
	tcase_add_test(tc, test_fill_compare_crc);
	tcase_add_test(tc, test_fault_in_fresh_memory);
	tcase_add_test(tc, test_partial_completion_resume);
	tcase_add_test(tc, test_crc_resume);
	/* Exact ATC counts are the software device's. */
	if (test_on_sim())
		tcase_add_test(tc, test_atc_warm);
	if (test_on_vfio())
		tcase_add_test(tc, test_vfio_no_atc);
	tcase_add_test(tc, test_queue_full_and_stop);
	tcase_add_test(tc, test_concurrent_submitters);
	suite_add_tcase(s, tc);
	return s;
}
