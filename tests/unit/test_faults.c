// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Accesses that violate the mapping, and changes to the mapping under the
 * device: munmap, MADV_DONTNEED, mremap, mprotect, PRQ overflow.
 */
#include <errno.h>
#include <fcntl.h>
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

START_TEST(test_write_read_only)
{
	uint8_t *src = map_filled(2 * PAGE, 1);
	uint8_t *dst = map_filled(2 * PAGE, 2), before[2 * PAGE];
	struct sva_desc d;
	struct sva_completion c;

	bool vfio = test_on_vfio();

	memcpy(before, dst, sizeof(before));
	ck_assert_int_eq(mprotect(dst, 2 * PAGE, PROT_READ), 0);
	for (int block = 0; block < 2; block++) {
		d = desc_make(&f, SVA_OP_COPY,
			      block ? SVA_DESC_BLOCK_ON_FAULT : 0, src, dst,
			      2 * PAGE);
		c = run1(&f, &d);
		/* vfio0 has no page requests to return: every descriptor
		 * blocks on its faults (lib/vfio/dev.c), and a write to
		 * read-only memory is invalid either way. */
		ck_assert_uint_eq(c.status, block || vfio ?
					    SVA_STATUS_FAULT_INVALID :
					    SVA_STATUS_PAGE_FAULT);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst);
		ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
		ck_assert_uint_eq(c.bytes_done, 0);
		ck_assert_int_eq(memcmp(before, dst, sizeof(before)), 0);
	}
	/* faults_failed counts page request groups that failed: vfio0's
	 * descriptors raise none (the engine checks the VMA itself, and
	 * the fault is the completion's: libsva(7)). */
	if (vfio) {
		struct sva_stats s = bind_stats(&f);

		ck_assert_uint_eq(s.page_requests, 0);
		ck_assert_uint_eq(s.page_groups, 0);
		ck_assert_uint_eq(s.faults_failed, 0);
		ck_assert_uint_eq(s.faults_resolved, 0);
		ck_assert_uint_eq(s.prq_overflows, 0);
		ck_assert_uint_eq(s.quarantines, 0);
	} else {
		ck_assert_uint_ge(bind_stats(&f).faults_failed, 1);
	}
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

START_TEST(test_prot_none_and_unmapped)
{
	uint8_t *src = map_filled(4 * PAGE, 1), *dst = map_filled(4 * PAGE, 2);
	struct sva_desc d;
	struct sva_completion c;

	ck_assert_int_eq(mprotect(src + PAGE, PAGE, PROT_NONE), 0);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst,
		      4 * PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)src + PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	ck_assert_uint_eq(c.bytes_done, PAGE);	/* data before it is done */
	ck_assert_int_eq(memcmp(src, dst, PAGE), 0);

	ck_assert_int_eq(munmap(src + 3 * PAGE, PAGE), 0);
	d = desc_make(&f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT,
		      src + 3 * PAGE - 10, NULL, 100);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)src + 3 * PAGE);
	ck_assert_uint_eq(c.bytes_done, 10);
	ck_assert_uint_eq(c.result, sva_crc32c(0, src + 3 * PAGE - 10, 10));

	/* Kernel addresses and the NULL page: invalid, never a crash. */
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL,
		      (void *)0xffff880000000000ull, PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
		      (void *)PAGE, dst, 64);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, PAGE);
	munmap(src, 4 * PAGE);
	munmap(dst, 4 * PAGE);
}
END_TEST

/* mprotect() sends no event: a warm ATC must still not write. */
START_TEST(test_mprotect_after_warm)
{
	uint8_t *src = map_filled(4 * PAGE, 1), *dst = map_filled(4 * PAGE, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, 4 * PAGE);
	struct sva_completion c;

	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	fill_pattern(src, 4 * PAGE, 11);
	ck_assert_int_eq(mprotect(dst + 2 * PAGE, 2 * PAGE, PROT_READ), 0);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 2 * PAGE);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
	ck_assert_int_ne(memcmp(src + 2 * PAGE, dst + 2 * PAGE, PAGE), 0);
	/* And write access given back is seen too. */
	ck_assert_int_eq(mprotect(dst, 4 * PAGE, PROT_READ | PROT_WRITE), 0);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 4 * PAGE), 0);
	munmap(src, 4 * PAGE);
	munmap(dst, 4 * PAGE);
}
END_TEST

START_TEST(test_unmap_during_queued_work)
{
	size_t len = 8 * PAGE;
	uint8_t *src = map_filled(len, 1), *dst = map_filled(len, 2);
	struct sva_desc d[2];
	struct sva_completion c[2];

	d[0] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst,
			 len);
	d[1] = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	run1(&f, &d[0]);	/* warm: translations cached */
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	ck_assert_int_eq(sva_submit(f.bind, d, 2), 2);
	ck_assert_int_eq(munmap(src + 4 * PAGE, 4 * PAGE), 0);
	ck_assert_int_eq(sva_queue_start(f.bind), 0);
	ck_assert_int_eq(sva_wait(f.bind, c, 2, 2, test_wait_ms()), 2);
	ck_assert_uint_eq(c[0].status, SVA_STATUS_FAULT_INVALID);
	/* vfio0: no page request to return, the hole is invalid. */
	ck_assert_uint_eq(c[1].status, test_on_vfio() ?
				       SVA_STATUS_FAULT_INVALID :
				       SVA_STATUS_PAGE_FAULT);
	for (int i = 0; i < 2; i++) {
		ck_assert_uint_eq(c[i].fault_addr, (uintptr_t)src + 4 * PAGE);
		ck_assert_uint_eq(c[i].bytes_done, 4 * PAGE);
	}
	ck_assert_uint_ge(bind_stats(&f).invalidations, 1);
	ck_assert_uint_ge(bind_stats(&f).atc_invalidated, 4);
	munmap(src, 4 * PAGE);
	munmap(dst, len);
}
END_TEST

/*
 * MADV_DONTNEED of warm pages: once it returns, the device must not use its
 * cached translations (which would silently read through to new zero pages):
 * it must raise page requests again.
 */
START_TEST(test_dontneed_invalidates)
{
	size_t len = 8 * PAGE;
	uint8_t *src = map_filled(len, 1), *dst = map_filled(len, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, len);
	struct sva_stats s0, s1;
	struct sva_completion c;

	run1(&f, &d);
	s0 = bind_stats(&f);
	ck_assert_uint_eq(s0.page_requests, 0);
	ck_assert_int_eq(madvise(src, len, MADV_DONTNEED), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.invalidations, s0.invalidations + 1);
	/* vfio0's domain maps nothing between chunks: the discard has no
	 * IOTLB entry to drop (each chunk's unmap counted them). */
	ck_assert_uint_eq(s1.atc_invalidated, s0.atc_invalidated +
					      (test_on_vfio() ? 0 : 8));
	ck_assert_uint_eq(pages_present(src, len), 0);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	/* vfio0 populates the pages itself (MADV_POPULATE_READ), as a page
	 * request answered would: present again, none requested. */
	if (test_on_vfio()) {
		ck_assert_uint_eq(bind_stats(&f).page_requests, 0);
		ck_assert_uint_eq(pages_present(src, len), 8);
	} else {
		ck_assert_uint_ge(bind_stats(&f).page_requests, 8);
	}
	for (size_t i = 0; i < len; i++)
		ck_assert_uint_eq(dst[i], 0);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

START_TEST(test_mremap_moves)
{
	size_t len = 4 * PAGE;
	uint8_t *src = map_filled(len, 1), *dst = map_filled(len, 2);
	uint8_t *hole = map_fresh(2 * len, PROT_NONE), *moved;
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, len);
	struct sva_completion c;
	uint8_t ref[4 * PAGE];

	memcpy(ref, src, len);
	run1(&f, &d);
	moved = mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, hole);
	ck_assert_ptr_eq(moved, hole);
	ck_assert_uint_ge(bind_stats(&f).invalidations, 1);
	c = run1(&f, &d);	/* the old place is gone */
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)src);
	memset(dst, 0, len);
	d.src = (uintptr_t)moved;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(ref, dst, len), 0);
	munmap(hole, 2 * len);
	munmap(dst, len);
}
END_TEST

/* A group bigger than the page request queue: overflow, then progress. */
START_TEST(test_prq_overflow)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .prq_depth = 4, .fault_batch = 64);
	struct fixture g = { 0 };
	size_t len = 64 * PAGE;
	uint8_t *src = map_filled(len, 5);
	uint8_t *dst = map_fresh_small(len, PROT_READ | PROT_WRITE);
	struct sva_desc d;
	struct sva_completion c;
	struct sva_stats s;

	open_bind(&g, &o);
	d = desc_make(&g, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst, len);
	c = run1(&g, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	s = bind_stats(&g);
	ck_assert_uint_gt(s.prq_overflows, 0);
	/* At least a queue's worth; the pages around those the queue took
	 * were populated with them (fault-around), not requested. */
	ck_assert_uint_ge(s.page_requests, 4);
	ck_assert_uint_eq(pages_present(dst, len), 64);
	ck_assert_uint_eq(s.faults_failed, 0);
	close_bind(&g);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

START_TEST(test_shared_and_file_mappings)
{
	char path[] = "/tmp/sva-unit-XXXXXX";
	size_t len = 4 * PAGE;
	int fd = mkstemp(path);
	uint8_t *shm, *file, *priv, *src = map_filled(len, 8);
	uint8_t back[4 * PAGE];
	struct sva_desc d;
	struct sva_completion c;

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(ftruncate(fd, (off_t)len), 0);
	shm = mmap(NULL, len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	file = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(shm, MAP_FAILED);
	ck_assert_ptr_ne(file, MAP_FAILED);

	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, shm, len);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, shm, len), 0);

	d.dst = (uintptr_t)file;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(pread(fd, back, len, 0), (ssize_t)len);
	ck_assert_int_eq(memcmp(src, back, len), 0);

	/* A private file mapping: the device's write is the process's own
	 * copy, the file keeps its data. */
	priv = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(priv, MAP_FAILED);
	ck_assert_uint_eq(priv[5], src[5]);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, priv,
		      len);
	d.pattern = 0;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(priv[5], 0);
	ck_assert_int_eq(pread(fd, back, len, 0), (ssize_t)len);
	ck_assert_int_eq(memcmp(src, back, len), 0);
	munmap(priv, len);
	munmap(file, len);
	munmap(shm, len);
	munmap(src, len);
	close(fd);
}
END_TEST

Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("faults");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_write_read_only);
	tcase_add_test(tc, test_prot_none_and_unmapped);
	tcase_add_test(tc, test_mprotect_after_warm);
	tcase_add_test(tc, test_unmap_during_queued_work);
	tcase_add_test(tc, test_dontneed_invalidates);
	tcase_add_test(tc, test_mremap_moves);
	/* Only the software device has a page request queue to overflow. */
	if (test_on_sim())
		tcase_add_test(tc, test_prq_overflow);
	tcase_add_test(tc, test_shared_and_file_mappings);
	suite_add_tcase(s, tc);
	return s;
}
