// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Many descriptors in flight at once: on kmod0 they go through the
 * kernel's descriptor engine (its rings), except those that need library
 * policy (range attributes, PREFETCH), which run on the window path in
 * between. Completions stay in submission order, each exact; stop, start,
 * inflight, statistics and unbind's drain behave as with one at a time.
 */
#include <errno.h>
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
 * How many descriptors a case streams: all on sim0 and kmod0; on vfio0,
 * whose edu moves 2 KiB per ~100 ms of the VM's time, @vfio of them (each
 * case's stream still long enough for what it checks).
 */
static unsigned int stream_len(unsigned int n, unsigned int vfio)
{
	return test_on_vfio() ? vfio : n;
}

static void wait_all(struct sva_completion *c, unsigned int n)
{
	unsigned int got = 0;
	int r;

	while (got < n) {
		r = sva_wait(f.bind, c + got, n - got, 1,
			     test_on_vfio() ? test_wait_ms() : 10000);
		ck_assert_int_gt(r, 0);
		got += (unsigned int)r;
	}
}

/* Engine and policy descriptors interleaved: in order, each exact. */
START_TEST(test_pipeline_policy_interleaved)
{
	enum { N = 96 };
	const unsigned int n = stream_len(N, 16);
	size_t len = 2 * PAGE + 17;
	uint8_t *src = map_filled(N * 3 * PAGE, 1);
	uint8_t *dst = map_filled(N * 3 * PAGE, 2);
	uint8_t *ro = map_filled(4 * PAGE, 3);
	struct sva_range_attr a = { .type = SVA_ATTR_DEVICE_READ_ONLY,
				    .value = 1 };
	static struct sva_desc d[N];
	static struct sva_completion c[N];
	struct sva_stats s0 = bind_stats(&f), s1;
	uint64_t bytes = 0;
	int err;

	/*
	 * Where range attributes are not supported (no SVA_CAP_MIGRATE),
	 * the mapping itself is read-only: the same fault, from the MM.
	 */
	err = sva_range_set_attr(f.bind, (uintptr_t)ro, 4 * PAGE, &a, 1);
	if (err == -EOPNOTSUPP)
		ck_assert_int_eq(mprotect(ro, 4 * PAGE, PROT_READ), 0);
	else
		ck_assert_int_eq(err, 0);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *s = src + i * 3 * PAGE, *t = dst + i * 3 * PAGE;

		switch (i % 4) {
		case 0:
			d[i] = desc_make(&f, SVA_OP_COPY,
					 SVA_DESC_BLOCK_ON_FAULT, s, t, len);
			break;
		case 1:	/* the device may not write there: policy */
			d[i] = desc_make(&f, SVA_OP_FILL,
					 SVA_DESC_BLOCK_ON_FAULT, NULL, ro,
					 PAGE);
			break;
		case 2:
			d[i] = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
			break;
		default:
			d[i] = desc_make(&f, SVA_OP_CRC32C,
					 SVA_DESC_BLOCK_ON_FAULT, s, NULL, len);
			break;
		}
		d[i].user_data = i;
	}
	ck_assert_int_eq(sva_submit(f.bind, d, n), (int)n);
	wait_all(c, n);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *s = src + i * 3 * PAGE, *t = dst + i * 3 * PAGE;

		ck_assert_uint_eq(c[i].user_data, i);
		switch (i % 4) {
		case 0:
			ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
			ck_assert_uint_eq(c[i].bytes_done, len);
			ck_assert_int_eq(memcmp(s, t, len), 0);
			break;
		case 1:
			ck_assert_uint_eq(c[i].status,
					  SVA_STATUS_FAULT_INVALID);
			ck_assert_uint_eq(c[i].bytes_done, 0);
			ck_assert_uint_eq(c[i].fault_addr, (uintptr_t)ro);
			ck_assert_uint_eq(c[i].fault_access,
					  SVA_ACCESS_WRITE);
			break;
		case 2:
			ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
			break;
		default:
			ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
			ck_assert_uint_eq(c[i].result, sva_crc32c(0, s, len));
			break;
		}
		bytes += c[i].bytes_done;
	}
	/* The read-only range: not one byte written. */
	{
		uint8_t *ref = map_filled(4 * PAGE, 3);

		ck_assert_int_eq(memcmp(ro, ref, 4 * PAGE), 0);
		munmap(ref, 4 * PAGE);
	}
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.descs_completed - s0.descs_completed, n);
	ck_assert_uint_eq(s1.bytes_done - s0.bytes_done, bytes);
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	munmap(src, N * 3 * PAGE);
	munmap(dst, N * 3 * PAGE);
	munmap(ro, 4 * PAGE);
}
END_TEST

/*
 * Stopped while many are in flight: what the device took completes, the
 * rest waits for sva_queue_start(); all in order, none lost or doubled.
 */
START_TEST(test_pipeline_stop_with_many_in_flight)
{
	enum { N = 400 };
	const unsigned int n = stream_len(N, 16);
	/* Quiet this long after the stop: nothing was left running (vfio0:
	 * the descriptor edu runs takes 0.4 s of the VM's time). */
	const int quiet_ms = test_on_vfio() ? 5000 : 500;
	size_t len = PAGE;
	uint8_t *src = map_filled(N * len, 4), *dst = map_filled(N * len, 5);
	static struct sva_desc d[N];
	static struct sva_completion c[N];
	unsigned int got = 0;
	int r;

	for (unsigned int i = 0; i < n; i++) {
		d[i] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				 src + i * len, dst + i * len, len);
		d[i].user_data = i;
	}
	ck_assert_int_eq(sva_submit(f.bind, d, n), (int)n);
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	/*
	 * What was taken before the stop completes (half a second without
	 * a completion: nothing was left running); then nothing more.
	 */
	while (got < n) {
		r = sva_wait(f.bind, c + got, n - got, 1, quiet_ms);
		ck_assert_int_ge(r, 0);
		if (!r)
			break;
		got += (unsigned int)r;
	}
	ck_assert_int_eq(sva_inflight(f.bind), (int)(n - got));
	if (got < n)
		ck_assert_int_eq(sva_wait(f.bind, c + got, n - got, 0, 100),
				 0);
	ck_assert_int_eq(sva_queue_start(f.bind), 0);
	wait_all(c + got, n - got);
	for (unsigned int i = 0; i < n; i++) {
		ck_assert_uint_eq(c[i].user_data, i);
		ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
	}
	ck_assert_int_eq(memcmp(src, dst, n * len), 0);
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	munmap(src, N * len);
	munmap(dst, N * len);
}
END_TEST

/* Unbind with a full queue: it drains, every copy done, nothing after. */
START_TEST(test_pipeline_unbind_drains)
{
	enum { N = 300 };
	const unsigned int n = stream_len(N, 8);
	size_t len = 3 * PAGE;
	uint8_t *src = map_filled(N * len, 6), *dst = map_filled(N * len, 7);
	static struct sva_desc d[N];

	for (unsigned int i = 0; i < n; i++)
		d[i] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				 src + i * len, dst + i * len, len);
	ck_assert_int_eq(sva_submit(f.bind, d, n), (int)n);
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(memcmp(src, dst, n * len), 0);
	/* Nothing of the binding runs after: the bytes stay ours. */
	memset(dst, 0x5a, N * len);
	usleep(20000);
	for (size_t i = 0; i < N * len; i += PAGE)
		ck_assert_uint_eq(dst[i], 0x5a);
	munmap(src, N * len);
	munmap(dst, N * len);
}
END_TEST

/* Faults in the middle of a stream: each descriptor's own, exact. */
START_TEST(test_pipeline_faults_in_stream)
{
	enum { N = 64 };
	/* vfio0: two faulting destinations (0 and 8) among them. */
	const unsigned int n = stream_len(N, 10);
	size_t len = 4 * PAGE;
	uint8_t *src = map_filled(N * len, 8);
	uint8_t *dst = map_fresh_small(N * len, PROT_READ | PROT_WRITE);
	static struct sva_desc d[N];
	static struct sva_completion c[N];
	SVA_OPTS_INIT(sva_dev_opts, o, .fault_batch = 1);

	/*
	 * No fault-around: a blocking descriptor's page requests would
	 * populate the next one's fresh destination, which then wouldn't
	 * fault (test_fault_around.c tests that policy).
	 */
	close_bind(&f);
	open_bind(&f, &o);
	/* Every 8th destination has a page the device may not write. */
	for (unsigned int i = 0; i < N; i += 8)
		ck_assert_int_eq(mprotect(dst + i * len + 2 * PAGE, PAGE,
					  PROT_READ), 0);
	for (unsigned int i = 0; i < n; i++) {
		/* Odd ones don't block: fresh pages fault at once. */
		d[i] = desc_make(&f, SVA_OP_COPY,
				 i % 2 ? 0 : SVA_DESC_BLOCK_ON_FAULT,
				 src + i * len, dst + i * len, len);
		d[i].user_data = i;
	}
	ck_assert_int_eq(sva_submit(f.bind, d, n), (int)n);
	wait_all(c, n);
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *t = dst + i * len;

		ck_assert_uint_eq(c[i].user_data, i);
		if (i % 8 == 0) {
			ck_assert_uint_eq(c[i].status,
					  SVA_STATUS_FAULT_INVALID);
			ck_assert_uint_eq(c[i].bytes_done, 2 * PAGE);
			ck_assert_uint_eq(c[i].fault_addr,
					  (uintptr_t)t + 2 * PAGE);
			ck_assert_uint_eq(c[i].fault_access,
					  SVA_ACCESS_WRITE);
			ck_assert_int_eq(memcmp(src + i * len, t, 2 * PAGE),
					 0);
		} else if (i % 2 && !test_on_vfio()) {
			/* (vfio0 has no page requests to return: it makes
			 * the pages present itself, the copy succeeds.) */
			ck_assert_uint_eq(c[i].status, SVA_STATUS_PAGE_FAULT);
			ck_assert_uint_eq(c[i].bytes_done, 0);
			ck_assert_uint_eq(c[i].fault_addr, (uintptr_t)t);
		} else {
			ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
			ck_assert_int_eq(memcmp(src + i * len, t, len), 0);
		}
	}
	munmap(src, N * len);
	munmap(dst, N * len);
}
END_TEST

Suite *pipeline_suite(void)
{
	Suite *s = suite_create("pipeline");
	TCase *tc = tcase_create("pipeline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pipeline_policy_interleaved);
	tcase_add_test(tc, test_pipeline_stop_with_many_in_flight);
	tcase_add_test(tc, test_pipeline_unbind_drains);
	tcase_add_test(tc, test_pipeline_faults_in_stream);
	suite_add_tcase(s, tc);
	return s;
}
