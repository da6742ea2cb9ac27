// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The software device's fault-around (sva_dev_open(3), FAULT-AROUND): the
 * fault service populates a page request group and the pages after it,
 * in a window that adapts to the access pattern. What it populated is
 * read back from pagemap on mappings of base pages (MADV_NOHUGEPAGE), so
 * that no THP policy adds pages nobody asked for.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

#define WIN_MAX 256	/* the documented largest window */

/* Present pages from @p on, up to @max, before the first absent one. */
static unsigned int present_run(const void *p, unsigned int max)
{
	uint64_t e[WIN_MAX * 2];
	unsigned int n = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_le(max, WIN_MAX * 2);
	ck_assert_int_eq(pread(fd, e, max * 8, (off_t)((uintptr_t)p / PAGE * 8)),
			 (ssize_t)(max * 8));
	close(fd);
	while (n < max && (e[n] & PM_PRESENT_BIT))
		n++;
	return n;
}

/* The device writes 8 bytes at @p, blocking on faults: must succeed. */
static void fill1(struct fixture *f, void *p)
{
	struct sva_desc d = desc_make(f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT,
				      NULL, p, 8);
	struct sva_completion c;

	d.pattern = 0x1111111111111111ull;
	c = run1(f, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.bytes_done, 8);
	ck_assert_uint_eq(*(volatile uint8_t *)p, 0x11);
}

/* The device reads @len bytes at @p (CRC), blocking on faults. */
static struct sva_completion read1(struct fixture *f, void *p, size_t len)
{
	struct sva_desc d = desc_make(f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT,
				      p, NULL, len);

	return run1(f, &d);
}

/*
 * Sequential misses, each where the last window ended: the window grows
 * (each at least as large as the one before, larger until the largest),
 * and every page populated is one the windows cover, none elsewhere.
 */
START_TEST(test_around_grows_sequential)
{
	const size_t len = 8 << 20;
	uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE);
	unsigned int run[8], total = 0;
	struct fixture f;

	open_bind(&f, NULL);
	for (int k = 0; k < 8; k++) {
		fill1(&f, p + (size_t)total * PAGE);
		run[k] = present_run(p + (size_t)total * PAGE, 2 * WIN_MAX);
		total += run[k];
		ck_assert_uint_le(run[k], WIN_MAX);
		if (k) {
			ck_assert_uint_ge(run[k], run[k - 1]);
			if (run[k - 1] < WIN_MAX)
				ck_assert_uint_gt(run[k], run[k - 1]);
		}
	}
	ck_assert_uint_gt(run[0], 1);		/* fault-around at all */
	ck_assert_uint_eq(run[7], WIN_MAX);	/* reached the largest */
	ck_assert_uint_eq(pages_present(p, len), total);
	/* One page asked for each time: the rest were not page requests. */
	ck_assert_uint_eq(bind_stats(&f).page_requests, 8);
	close_bind(&f);
	munmap(p, len);
}
END_TEST

/*
 * Misses far apart in no order: the window shrinks to the page asked for;
 * then sequential misses make it grow again.
 */
START_TEST(test_around_shrinks_random)
{
	const size_t len = 256ul << 20, step = 16ul << 20;
	uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE), *q;
	unsigned int run[12], prev, total;
	struct fixture f;

	open_bind(&f, NULL);
	for (int k = 0; k < 12; k++) {
		/* 0, 7, 14, 5, 12, 3, ...: 16 MiB apart, back and forth. */
		q = p + (size_t)((k * 7) % 16) * step + (size_t)k * PAGE;
		fill1(&f, q);
		run[k] = present_run(q, 2 * WIN_MAX);
		if (k)
			ck_assert_uint_le(run[k], run[k - 1]);
	}
	ck_assert_uint_gt(run[0], 1);
	ck_assert_uint_eq(run[11], 1);
	/* Sequential again, from the last one: it grows back. */
	prev = 1;
	total = 1;
	for (int k = 0; k < 6; k++) {
		fill1(&f, q + (size_t)total * PAGE);
		run[k] = present_run(q + (size_t)total * PAGE, 2 * WIN_MAX);
		total += run[k];
		ck_assert_uint_ge(run[k], prev);
		prev = run[k];
	}
	ck_assert_uint_gt(prev, 1);
	close_bind(&f);
	munmap(p, len);
}
END_TEST

/* A fixed fault_batch fixes the window; 1 is no fault-around. */
START_TEST(test_around_fixed_batch)
{
	static const unsigned int batch[] = { 1, 16, 256 };
	const size_t len = 8 << 20;

	for (unsigned int i = 0; i < 3; i++) {
		SVA_OPTS_INIT(sva_dev_opts, o, .fault_batch = batch[i]);
		uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE);
		struct sva_dev_caps caps = { .sz = sizeof(caps) };
		struct fixture f;

		open_bind(&f, &o);
		ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
		ck_assert_uint_eq(caps.fault_batch, batch[i]);
		for (int k = 0; k < 3; k++) {
			size_t at = (size_t)k * 2 * WIN_MAX * PAGE;

			fill1(&f, p + at);
			ck_assert_uint_eq(present_run(p + at, 2 * WIN_MAX),
					  batch[i]);
		}
		ck_assert_uint_eq(pages_present(p, len), 3 * batch[i]);
		close_bind(&f);
		munmap(p, len);
	}
	{
		SVA_OPTS_INIT(sva_dev_opts, o, .fault_batch = WIN_MAX + 1);
		struct sva_dev *dev;

		ck_assert_int_eq(sva_dev_open(test_device(), &o, &dev),
				 -EINVAL);
	}
}
END_TEST

/*
 * The window stops at the end of the faulting page's VMA, whatever comes
 * next: nothing, PROT_NONE, read-only, or a VMA that would allow the
 * access. For reads and writes; on a fresh device (its first window is
 * larger than the 8 pages up to the end: the control shows it).
 */
enum next_kind { NEXT_HOLE, NEXT_NONE, NEXT_RO, NEXT_RW_OTHER, NEXT_MAX };

static void around_vma_end(enum next_kind kind, bool write)
{
	const size_t half = 32 * PAGE;
	uint8_t *p = map_fresh_small(2 * half, PROT_READ | PROT_WRITE);
	struct sva_completion c;
	struct fixture f;

	switch (kind) {
	case NEXT_HOLE:
		ck_assert_int_eq(munmap(p + half, half), 0);
		break;
	case NEXT_NONE:
		ck_assert_int_eq(mprotect(p + half, half, PROT_NONE), 0);
		break;
	case NEXT_RO:
		ck_assert_int_eq(mprotect(p + half, half, PROT_READ), 0);
		break;
	case NEXT_RW_OTHER:
		/* Same protection, other flags: a VMA of its own. */
		ck_assert_int_eq(madvise(p + half, half, MADV_DONTFORK), 0);
		break;
	default:
		break;
	}
	open_bind(&f, NULL);
	if (write) {
		fill1(&f, p + half - 8 * PAGE);
	} else {
		c = read1(&f, p + half - 8 * PAGE, 8);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	}
	ck_assert_uint_eq(present_run(p + half - 8 * PAGE, 8), 8);
	if (kind != NEXT_HOLE && kind != NEXT_MAX)
		ck_assert_msg(!pages_present(p + half, half),
			      "%s %d: %u pages past the VMA", write ? "write" :
			      "read", kind, pages_present(p + half, half));
	/* The control: in the middle of the VMA, more than 8 pages. */
	if (kind == NEXT_MAX)
		ck_assert_uint_gt(present_run(p + half - 8 * PAGE, 16), 8);

	/* Partial completion stays exact at the end: 8 pages, then the
	 * next VMA's verdict for a write. */
	if (write && kind != NEXT_MAX && kind != NEXT_RW_OTHER) {
		struct sva_desc d = desc_make(&f, SVA_OP_FILL,
					      SVA_DESC_BLOCK_ON_FAULT, NULL,
					      p + half - 8 * PAGE,
					      10 * PAGE);

		c = run1(&f, &d);
		ck_assert_uint_eq(c.status, SVA_STATUS_FAULT_INVALID);
		ck_assert_uint_eq(c.bytes_done, 8 * PAGE);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)p + half);
		ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
		if (kind != NEXT_HOLE)
			ck_assert_uint_eq(pages_present(p + half, half), 0);
	}
	close_bind(&f);
	munmap(p, 2 * half);
}

START_TEST(test_around_stays_in_vma)
{
	for (int kind = 0; kind <= NEXT_MAX; kind++) {
		around_vma_end((enum next_kind)kind, true);
		around_vma_end((enum next_kind)kind, false);
	}
}
END_TEST

/* Not into a reserved window, nor into pages with a range attribute. */
START_TEST(test_around_resv_and_attrs)
{
	const size_t len = 64 * PAGE;
	uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE);
	uint64_t A = (uintptr_t)p;
	struct sva_region resv = { A + 8 * PAGE, A + 12 * PAGE - 1,
				   SVA_REGION_RESERVED, 0 };
	SVA_OPTS_INIT(sva_dev_opts, o, .reserved = &resv, .nr_reserved = 1);
	struct sva_range_attr na = { .type = SVA_ATTR_NO_ACCESS, .value = 1 };
	struct fixture f;

	open_bind(&f, &o);
	fill1(&f, p + 4 * PAGE);
	ck_assert_uint_eq(present_run(p + 4 * PAGE, 8), 4);
	ck_assert_uint_eq(pages_present(p + 8 * PAGE, len - 8 * PAGE), 0);
	close_bind(&f);

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_range_set_attr(f.bind, A + 40 * PAGE, 4 * PAGE,
					    &na, 1), 0);
	fill1(&f, p + 36 * PAGE);
	ck_assert_uint_eq(present_run(p + 36 * PAGE, 8), 4);
	ck_assert_uint_eq(pages_present(p + 40 * PAGE, len - 40 * PAGE), 0);
	close_bind(&f);
	munmap(p, len);
}
END_TEST

/*
 * The application's own userfaultfd (missing mode) on the range: only the
 * page the device asked for reaches its handler, and the handler may
 * munmap memory the device has translations for while the fault service
 * waits on it (no library lock held across the populate).
 */
struct app {
	int uffd;
	uint8_t *base, *victim;
	size_t victim_len;
	_Atomic bool stop;
	_Atomic unsigned int faults, outside;
	uint64_t lo, hi;		/* the page the device asks for */
};

static void *app_handler(void *arg)
{
	struct app *a = arg;
	struct pollfd pfd = { .fd = a->uffd, .events = POLLIN };
	static uint8_t zero[PAGE];
	struct uffdio_copy cp = { .src = (uintptr_t)zero, .len = PAGE };
	struct uffd_msg msg;

	while (!a->stop) {
		if (poll(&pfd, 1, 20) != 1 ||
		    read(a->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		cp.dst = msg.arg.pagefault.address & ~(PAGE - 1);
		if (cp.dst < a->lo || cp.dst >= a->hi)
			a->outside++;
		/* Memory the device has translations for: the event
		 * thread must take inval_lock meanwhile. */
		if (!a->faults++ && a->victim)
			ck_assert_int_eq(munmap(a->victim, a->victim_len), 0);
		if (ioctl(a->uffd, UFFDIO_COPY, &cp) && errno != EEXIST)
			ck_abort_msg("UFFDIO_COPY: %s", strerror(errno));
	}
	return NULL;
}

START_TEST(test_around_app_uffd)
{
	const size_t len = 64 * PAGE;
	struct app a = { .victim_len = 16 * PAGE };
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct sva_completion c;
	struct fixture f;
	pthread_t t;

	a.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (a.uffd < 0)
		return;	/* no userfaultfd for us: nothing to test */
	ck_assert_int_eq(ioctl(a.uffd, UFFDIO_API, &api), 0);
	a.base = map_fresh_small(len, PROT_READ | PROT_WRITE);
	a.victim = map_filled(a.victim_len, 3);
	reg.range.start = (uintptr_t)a.base;
	reg.range.len = len;
	ck_assert_int_eq(ioctl(a.uffd, UFFDIO_REGISTER, &reg), 0);
	a.lo = (uintptr_t)a.base + 5 * PAGE;
	a.hi = a.lo + PAGE;
	open_bind(&f, NULL);
	c = read1(&f, a.victim, a.victim_len);	/* translations cached */
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(pthread_create(&t, NULL, app_handler, &a), 0);
	fill1(&f, a.base + 5 * PAGE);
	a.stop = true;
	pthread_join(t, NULL);
	ck_assert_uint_ge(a.faults, 1);
	ck_assert_uint_eq(a.outside, 0);
	ck_assert_uint_eq(pages_present(a.base, len), 1);
	close_bind(&f);
	close(a.uffd);
	munmap(a.base, len);
}
END_TEST

/*
 * munmap/MADV_DONTNEED racing a fault-around (and the translations it
 * caches): afterwards, a device access without block-on-fault must stop
 * at exactly the first page pagemap shows absent. A translation left
 * cached for a page taken away would let it write on through.
 */
struct racer {
	uint8_t *p;
	size_t len;
	bool unmap;
	unsigned int delay_ns;
	pthread_barrier_t go;
};

static void *race_thread(void *arg)
{
	struct racer *r = arg;

	struct timespec t0, t;

	pthread_barrier_wait(&r->go);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do	/* busy: the delay is shorter than a sleep's granularity */
		clock_gettime(CLOCK_MONOTONIC, &t);
	while ((t.tv_sec - t0.tv_sec) * 1000000000l + t.tv_nsec - t0.tv_nsec <
	       (long)r->delay_ns);
	if (r->unmap) {
		ck_assert_int_eq(munmap(r->p, r->len), 0);
		ck_assert_ptr_eq(mmap(r->p, r->len, PROT_READ | PROT_WRITE,
				      MAP_PRIVATE | MAP_ANONYMOUS |
				      MAP_FIXED, -1, 0), r->p);
		madvise(r->p, r->len, MADV_NOHUGEPAGE);
	} else {
		ck_assert_int_eq(madvise(r->p, r->len, MADV_DONTNEED), 0);
	}
	return NULL;
}

static void around_race(bool unmap, bool whole)
{
	const size_t len = 2 * WIN_MAX * PAGE;
	struct racer r = { .len = len, .unmap = unmap };
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	unsigned int ahead;
	pthread_t t;

	open_bind(&f, NULL);
	r.p = map_fresh_small(len, PROT_READ | PROT_WRITE);
	for (unsigned int round = 0; round < (whole ? 100u : 400u); round++) {
		/* One page (its window populated and cached with it), or
		 * all of it (windows growing as it goes). */
		ck_assert_int_eq(pthread_barrier_init(&r.go, NULL, 2), 0);
		/* 0 to 1 ms after the device starts, by 25 us steps. */
		r.delay_ns = (round * 17u) % 40u * 25000u;
		ck_assert_int_eq(pthread_create(&t, NULL, race_thread, &r), 0);
		pthread_barrier_wait(&r.go);
		d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL,
			      r.p, whole ? len : 8);
		c = run1(&f, &d);
		/* Between munmap and mmap: nothing mapped. */
		ck_assert(c.status == SVA_STATUS_SUCCESS ||
			  (unmap && c.status == SVA_STATUS_FAULT_INVALID));
		pthread_join(t, NULL);
		pthread_barrier_destroy(&r.go);

		ahead = present_run(r.p, 2 * WIN_MAX);
		d = desc_make(&f, SVA_OP_FILL, 0, NULL, r.p, len);
		c = run1(&f, &d);
		ck_assert_uint_eq(c.bytes_done, (uint64_t)ahead * PAGE);
		if (ahead < 2 * WIN_MAX) {
			ck_assert_uint_eq(c.status, SVA_STATUS_PAGE_FAULT);
			ck_assert_uint_eq(c.fault_addr,
					  (uintptr_t)r.p + ahead * PAGE);
			ck_assert_uint_eq(present_run(r.p, 2 * WIN_MAX),
					  ahead);
		}
		/* Fresh again for the next round. */
		ck_assert_int_eq(madvise(r.p, len, MADV_DONTNEED), 0);
	}
	close_bind(&f);
	munmap(r.p, len);
}

START_TEST(test_around_race_dontneed)
{
	around_race(false, false);
	around_race(false, true);
}
END_TEST

START_TEST(test_around_race_munmap)
{
	around_race(true, false);
	around_race(true, true);
}
END_TEST

Suite *fault_around_suite(void)
{
	Suite *s = suite_create("fault_around");
	TCase *tc = tcase_create("fault_around");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_around_grows_sequential);
	tcase_add_test(tc, test_around_shrinks_random);
	tcase_add_test(tc, test_around_fixed_batch);
	tcase_add_test(tc, test_around_stays_in_vma);
	tcase_add_test(tc, test_around_resv_and_attrs);
	tcase_add_test(tc, test_around_app_uffd);
	/* Also the regression test of a defect it found (mm.c): a discard
	 * whose pages were absent when its event was read was retired at
	 * once, and a populate and translation cached before its zap
	 * outlived it (failed 1 run in 6-8 before, fault-around or not). */
	tcase_add_test(tc, test_around_race_dontneed);
	tcase_add_test(tc, test_around_race_munmap);
	suite_add_tcase(s, tc);
	return s;
}
