// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Reserved windows (issue 10): addresses no DMA of the device reaches (the
 * x86 MSI window 0xfee00000-0xfeefffff, or the windows sva_dev_opts gives
 * the software device). A device access inside one ends FAULT_INVALID at
 * the window's first byte with the bytes before it done exactly and none
 * after; no page request is raised; a mirror over one is refused. kmod0
 * has none: the cases that need a window say so and stop there.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#define MSI_START 0xfee00000ull
#define MSI_END 0xfeefffffull

static bool on_x86(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return true;
#else
	return false;
#endif
}

/* Map @len bytes at exactly @addr, or NULL where the address is taken. */
static uint8_t *map_at(uint64_t addr, size_t len)
{
	void *p = mmap((void *)(uintptr_t)addr, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		       -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (p != (void *)(uintptr_t)addr) {
		/* A kernel older than 4.17 takes the address as a hint. */
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* The test device's windows; false (and why) where it has none. */
static bool device_has_msi_window(struct fixture *f)
{
	struct sva_region r[4];
	int n = sva_dev_reserved_regions(f->dev, r, 4);

	ck_assert_int_ge(n, 0);
	if (!n) {
		fprintf(stderr, "%s: %s has no reserved window (kmod0: no IOMMU domain; sim: not x86), window cases skipped\n",
			__func__, test_device());
		return false;
	}
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(r[0].start, MSI_START);
	ck_assert_uint_eq(r[0].end, MSI_END);
	ck_assert_uint_eq(r[0].type, SVA_REGION_MSI);
	return true;
}

/* What the library said last (the refusal's message). */
static char last_msg[512];
static int keep_print(enum sva_print_level level, const char *fmt,
		      va_list ap)
{
	if (level == SVA_WARN)
		vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
	return 0;
}

static int try_mirror(struct fixture *f, uint64_t addr, uint64_t len)
{
	struct sva_mirror *m = NULL;
	int err = sva_mirror_register(f->bind, addr, len, NULL, &m);

	if (!err)
		ck_assert_int_eq(sva_mirror_unregister(m), 0);
	else
		ck_assert_ptr_null(m);
	return err;
}

/* The device's own windows: sim0 has the MSI window on x86, kmod0 none,
 * vfio0 its IOMMU group's (the VM's q35: the MSI window alone, the
 * direct-relaxable ones left out as lib/vfio/dev.c says). */
START_TEST(test_resv_default)
{
	struct sva_region r[2], sentinel;
	struct fixture f;
	int n;

	open_bind(&f, NULL);
	n = sva_dev_reserved_regions(f.dev, NULL, 0);
	ck_assert_int_eq(n, (test_on_sim() || test_on_vfio()) && on_x86() ?
			    1 : 0);
	memset(r, 0x5a, sizeof(r));
	memcpy(&sentinel, &r[1], sizeof(sentinel));
	/* Room for none: the count, nothing written. */
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, r, 0), n);
	ck_assert_mem_eq(&r[0], &sentinel, sizeof(sentinel));
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, r, 2), n);
	if (n) {
		ck_assert(device_has_msi_window(&f));
		ck_assert_uint_eq(r[0].rsvd, 0);
	}
	ck_assert_mem_eq(&r[n], &sentinel, sizeof(sentinel));
	ck_assert_int_eq(sva_dev_reserved_regions(NULL, r, 2), -EINVAL);
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, NULL, 1), -EINVAL);
	close_bind(&f);
}
END_TEST

/*
 * Work that reaches the MSI window, on memory the process has mapped
 * there: the CPU uses it freely, the device stops at its first byte.
 */
START_TEST(test_resv_msi_access)
{
	const size_t wlen = 8 * PAGE;
	uint64_t base = MSI_START - 4 * PAGE, dst;
	uint8_t *w, *orig, *src, *buf, *buf0;
	struct sva_stats s0, s1;
	struct sva_completion c;
	struct fixture f;
	struct sva_desc d;

	open_bind(&f, NULL);
	if (!device_has_msi_window(&f))
		goto out;
	w = map_at(base, wlen);
	if (!w) {
		fprintf(stderr, "%s: can't map %#llx (%s), skipped\n",
			__func__, (unsigned long long)base, strerror(errno));
		goto out;
	}
	fill_pattern(w, wlen, 7);
	orig = malloc(wlen);
	ck_assert_ptr_nonnull(orig);
	memcpy(orig, w, wlen);
	src = map_filled(8 * PAGE, 3);
	buf = map_filled(8 * PAGE, 5);
	buf0 = malloc(8 * PAGE);
	ck_assert_ptr_nonnull(buf0);
	memcpy(buf0, buf, 8 * PAGE);

	/* A write into it, with and without block-on-fault. */
	for (int block = 0; block < 2; block++) {
		uint32_t fl = block ? SVA_DESC_BLOCK_ON_FAULT : 0;

		memcpy(w, orig, wlen);
		dst = base + PAGE + 123 + (uint64_t)block;
		s0 = bind_stats(&f);
		d = desc_make(&f, SVA_OP_COPY, fl, src, (void *)(uintptr_t)dst,
			      6 * PAGE - 123);
		c = run1(&f, &d);
		s1 = bind_stats(&f);
		ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
		ck_assert_uint_eq(c.fault_addr, MSI_START);
		ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
		ck_assert_uint_eq(c.bytes_done, MSI_START - dst);
		ck_assert_mem_eq(w, orig, dst - base);
		ck_assert_mem_eq(w + (dst - base), src, MSI_START - dst);
		ck_assert_mem_eq(w + (MSI_START - base),
				 orig + (MSI_START - base), 4 * PAGE);
		/* Every page before it was present: no page request, and
		 * none for the window (nothing can resolve it). */
		ck_assert_uint_eq(pages_present(src, 8 * PAGE), 8);
		ck_assert_uint_eq(s1.page_requests, s0.page_requests);
		ck_assert_uint_eq(s1.page_groups, s0.page_groups);
		ck_assert_uint_eq(s1.faults_failed, s0.faults_failed);
		/* Resumed, it fails the same at the window's first byte. */
		ck_assert_int_eq(sva_desc_resume(&d, &c), 0);
		ck_assert_uint_eq(d.dst, MSI_START);
		c = run1(&f, &d);
		ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
		ck_assert_uint_eq(c.fault_addr, MSI_START);
		ck_assert_uint_eq(c.bytes_done, 0);
		ck_assert_mem_eq(w + (MSI_START - base),
				 orig + (MSI_START - base), 4 * PAGE);
	}

	/* A read from it: the bytes before it copied, nothing after. */
	memcpy(w, orig, wlen);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
		      (void *)(uintptr_t)(MSI_START - 3000), buf, 2 * PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, MSI_START);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	ck_assert_uint_eq(c.bytes_done, 3000);
	ck_assert_mem_eq(buf, w + (MSI_START - 3000 - base), 3000);
	ck_assert_mem_eq(buf + 3000, buf0 + 3000, 2 * PAGE - 3000);

	/* FILL into it keeps its pattern's phase up to the window. */
	d = desc_make(&f, SVA_OP_FILL, 0, NULL,
		      (void *)(uintptr_t)(MSI_START - 5001), 3 * PAGE);
	d.pattern = 0x0807060504030201ull;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, MSI_START);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	ck_assert_uint_eq(c.bytes_done, 5001);
	for (size_t i = 0; i < 5001; i++)
		ck_assert_uint_eq(w[MSI_START - 5001 - base + i], i % 8 + 1);
	ck_assert_mem_eq(w + (MSI_START - base), orig + (MSI_START - base),
			 4 * PAGE);
	ck_assert_mem_eq(w, orig, MSI_START - 5001 - base);

	/* Starting inside: nothing done, the fault at its own address. */
	d = desc_make(&f, SVA_OP_CRC32C, 0,
		      (void *)(uintptr_t)(MSI_START + PAGE + 8), NULL, PAGE);
	d.pattern = 0x1234;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, MSI_START + PAGE + 8);
	ck_assert_uint_eq(c.bytes_done, 0);
	/* The running CRC, which sva_desc_resume() carries, is the seed. */
	ck_assert_uint_eq(c.result, 0x1234);

	/* Ending right before it: all done. */
	memcpy(w, orig, wlen);
	d = desc_make(&f, SVA_OP_COPY, 0, src,
		      (void *)(uintptr_t)(MSI_START - 2 * PAGE), 2 * PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	ck_assert_mem_eq(w + 2 * PAGE, src, 2 * PAGE);
	ck_assert_mem_eq(w + 4 * PAGE, orig + 4 * PAGE, 4 * PAGE);

	free(buf0);
	free(orig);
	munmap(buf, 8 * PAGE);
	munmap(src, 8 * PAGE);
	munmap(w, wlen);
out:
	close_bind(&f);
}
END_TEST

/* A mirror over the MSI window is refused, with a message that says why. */
START_TEST(test_resv_msi_mirror)
{
	sva_print_fn_t old;
	struct fixture f;
	char want[128];

	open_bind(&f, NULL);
	if (!device_has_msi_window(&f))
		goto out;
	old = sva_set_print(keep_print);
	last_msg[0] = 0;
	ck_assert_int_eq(try_mirror(&f, MSI_START - PAGE, 2 * PAGE), -EINVAL);
	sva_set_print(old);
	snprintf(want, sizeof(want),
		 "[0xfee00000-0xfeefffff] is %s's MSI window: no DMA reaches it",
		 sva_dev_name(f.dev));
	ck_assert_msg(strstr(last_msg, want), "message: %s", last_msg);

	sva_set_print(NULL);
	ck_assert_int_eq(try_mirror(&f, MSI_START + PAGE, PAGE), -EINVAL);
	ck_assert_int_eq(try_mirror(&f, MSI_END + 1 - PAGE, 2 * PAGE), -EINVAL);
	ck_assert_int_eq(try_mirror(&f, MSI_START - PAGE, 4ull << 20), -EINVAL);
	sva_set_print(old);
	/* Right before it and right after it: fine. */
	ck_assert_int_eq(try_mirror(&f, MSI_START - 2 * PAGE, 2 * PAGE), 0);
	ck_assert_int_eq(try_mirror(&f, MSI_END + 1, 2 * PAGE), 0);
out:
	close_bind(&f);
}
END_TEST

/*
 * Windows of the caller's, anywhere (here in an anonymous buffer): the
 * device has exactly those, sorted, and behaves at each as at the MSI
 * window. One page-aligned, one 100 bytes in the middle of a page.
 */
START_TEST(test_resv_custom)
{
	const size_t len = 16 * PAGE;
	uint8_t *a = map_filled(len, 11), *b = map_filled(len, 13);
	uint8_t *a0 = malloc(len), *b0 = malloc(len);
	uint64_t A = (uintptr_t)a;
	struct sva_region give[2] = {
		{ A + 10 * PAGE + 100, A + 10 * PAGE + 199, SVA_REGION_DIRECT, 0 },
		{ A + 4 * PAGE, A + 6 * PAGE - 1, SVA_REGION_RESERVED, 0 },
	};
	SVA_OPTS_INIT(sva_dev_opts, o, .reserved = give, .nr_reserved = 2);
	struct sva_region r[3];
	sva_print_fn_t old;
	struct sva_completion c;
	struct fixture f;
	struct sva_desc d;
	int err;

	ck_assert_ptr_nonnull(a0);
	ck_assert_ptr_nonnull(b0);
	memcpy(a0, a, len);
	memcpy(b0, b, len);
	if (!test_on_sim()) {
		struct sva_dev *dev = (void *)1;

		err = sva_dev_open(test_device(), &o, &dev);
		ck_assert_int_eq(err, -EOPNOTSUPP);
		ck_assert_ptr_null(dev);
		fprintf(stderr, "%s: %s has no windows to model (refused: %s), window cases skipped\n",
			__func__, test_device(), strerror(-err));
		goto free;
	}
	open_bind(&f, &o);
	/* The caller's array need not outlive the open. */
	memset(give, 0, sizeof(give));

	/* Sorted; the default MSI window is replaced, not added to. */
	memset(r, 0x5a, sizeof(r));
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, r, 1), 2);
	ck_assert_uint_eq(r[0].start, A + 4 * PAGE);
	ck_assert_uint_eq(r[0].end, A + 6 * PAGE - 1);
	ck_assert_uint_eq(r[0].type, SVA_REGION_RESERVED);
	ck_assert_uint_eq(r[1].start, 0x5a5a5a5a5a5a5a5aull);
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, r, 3), 2);
	ck_assert_uint_eq(r[1].start, A + 10 * PAGE + 100);
	ck_assert_uint_eq(r[1].end, A + 10 * PAGE + 199);
	ck_assert_uint_eq(r[1].type, SVA_REGION_DIRECT);

	/* Reading into the first window. */
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, a + 2 * PAGE,
		      b, 4 * PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, A + 4 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	ck_assert_mem_eq(b, a + 2 * PAGE, 2 * PAGE);
	ck_assert_mem_eq(b + 2 * PAGE, b0 + 2 * PAGE, len - 2 * PAGE);

	/* COMPARE reads its destination: equal up to the window... */
	d = desc_make(&f, SVA_OP_COMPARE, 0, b, a + 2 * PAGE, 4 * PAGE);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, A + 4 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	/* ...while a difference before it ends the descriptor first. */
	b[PAGE + 7] ^= 0xff;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, 1);
	ck_assert_uint_eq(c.bytes_done, PAGE + 7);

	/* Writing into the second, 100 bytes into its page. */
	d = desc_make(&f, SVA_OP_FILL, 0, NULL, a + 8 * PAGE, 4 * PAGE);
	d.pattern = 0;
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, A + 10 * PAGE + 100);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE + 100);
	for (size_t i = 0; i < 2 * PAGE + 100; i++)
		ck_assert_uint_eq(a[8 * PAGE + i], 0);
	ck_assert_mem_eq(a + 10 * PAGE + 100, a0 + 10 * PAGE + 100,
			 6 * PAGE - 100);

	/* Both sides reach one 10 bytes in: the source's is reported. */
	d = desc_make(&f, SVA_OP_COPY, 0, a + 4 * PAGE - 10,
		      a + 10 * PAGE + 90, 20);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.fault_addr, A + 4 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	ck_assert_uint_eq(c.bytes_done, 10);
	ck_assert_mem_eq(a + 10 * PAGE + 90, a + 4 * PAGE - 10, 10);

	/* Between and around the windows: fine. */
	d = desc_make(&f, SVA_OP_COPY, 0, a + 6 * PAGE, b,
		      4 * PAGE + 100);
	c = run1(&f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_mem_eq(b, a + 6 * PAGE, 4 * PAGE + 100);

	old = sva_set_print(NULL);
	ck_assert_int_eq(try_mirror(&f, A, len), -EINVAL);
	ck_assert_int_eq(try_mirror(&f, A + 4 * PAGE, PAGE), -EINVAL);
	ck_assert_int_eq(try_mirror(&f, A + 6 * PAGE, 5 * PAGE), -EINVAL);
	ck_assert_int_eq(try_mirror(&f, A, 4 * PAGE), 0);
	ck_assert_int_eq(try_mirror(&f, A + 6 * PAGE, 4 * PAGE), 0);
	ck_assert_int_eq(try_mirror(&f, A + 11 * PAGE, 5 * PAGE), 0);
	sva_set_print(old);
	close_bind(&f);

	/* An empty list: no window at all, the MSI window included. */
	o.nr_reserved = 0;
	open_bind(&f, &o);
	ck_assert_int_eq(sva_dev_reserved_regions(f.dev, NULL, 0), 0);
	ck_assert_int_eq(try_mirror(&f, MSI_START, PAGE), 0);
	close_bind(&f);
free:
	free(a0);
	free(b0);
	munmap(a, len);
	munmap(b, len);
}
END_TEST

static int open_with(const struct sva_region *r, unsigned int n)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .reserved = r, .nr_reserved = n);
	struct sva_dev *dev = (void *)1;
	int err = sva_dev_open(test_device(), &o, &dev);

	if (!err)
		sva_dev_close(dev);
	else
		ck_assert_ptr_null(dev);
	return err;
}

/* Bad lists are refused on every device, before it is opened. */
START_TEST(test_resv_bad_opts)
{
	struct sva_region *many = calloc(SVA_REGIONS_MAX + 1, sizeof(*many));
	struct sva_region r[2] = {
		{ 0x10000, 0x1ffff, SVA_REGION_MSI, 0 },
		{ 0x20000, 0x2ffff, SVA_REGION_RESERVED, 0 },
	};
	/* A good list: sim takes it, kmod0 has nothing to model, vfio0's
	 * windows are its IOMMU group's. */
	int good = test_on_sim() ? 0 : -EOPNOTSUPP;
	sva_print_fn_t old;

	ck_assert_ptr_nonnull(many);
	for (unsigned int i = 0; i <= SVA_REGIONS_MAX; i++) {
		many[i].start = (i + 1) * 2 * PAGE;
		many[i].end = many[i].start + PAGE - 1;
		many[i].type = SVA_REGION_RESERVED;
	}
	old = sva_set_print(NULL);
	ck_assert_int_eq(open_with(r, 2), good);
	ck_assert_int_eq(open_with(many, SVA_REGIONS_MAX), good);
	/* Too many; a count with no array. */
	ck_assert_int_eq(open_with(many, SVA_REGIONS_MAX + 1), -EINVAL);
	ck_assert_int_eq(open_with(many, UINT_MAX), -EINVAL);
	ck_assert_int_eq(open_with(NULL, 1), -EINVAL);
	/* Sharing one byte (the end is inclusive), in either order. */
	r[1].start = 0x1ffff;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	ck_assert_int_eq(open_with(&r[1], 1), good);
	r[1].start = 0x8000;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	/* A start after its end; a one-byte window is fine. */
	r[1].start = 0x30000;
	r[1].end = 0x2ffff;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	r[1].end = 0x30000;
	ck_assert_int_eq(open_with(r, 2), good);
	/* Unknown types, a reserved field set. */
	r[1].type = 0;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	r[1].type = SVA_REGION_MSI + 1;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	r[1].type = SVA_REGION_DIRECT;
	r[1].rsvd = 1;
	ck_assert_int_eq(open_with(r, 2), -EINVAL);
	sva_set_print(old);
	free(many);
}
END_TEST

Suite *reserved_suite(void)
{
	Suite *s = suite_create("reserved");
	TCase *tc = tcase_create("reserved");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_resv_default);
	tcase_add_test(tc, test_resv_msi_access);
	tcase_add_test(tc, test_resv_msi_mirror);
	tcase_add_test(tc, test_resv_custom);
	tcase_add_test(tc, test_resv_bad_opts);
	suite_add_tcase(s, tc);
	return s;
}
