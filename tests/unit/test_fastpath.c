// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The shortcuts that make invalidation, bind and snapshots cheap (issue 9),
 * each against the way it could go wrong:
 *  - the ATC's record of what it caches (an invalidation outside it walks
 *    nothing): an entry cached after the "nothing cached" path was taken,
 *    or beside a range dropped, must still be dropped by its own
 *    invalidation, also when the invalidation races the fault filling it;
 *  - threads started when first needed (the event thread with the first
 *    registration, the notifier with the first callback mirror), not at
 *    bind: binds and unbinds from many threads at once, fork() before any
 *    started, and no invalidation or callback lost meanwhile;
 *  - snapshots reading pagemap in blocks and scanning only the 2 MiB blocks
 *    that can be PMD mapped: every state as pagemap and a full PAGEMAP_SCAN
 *    say, on THP and small pages, discarded, paged out, read-only, holes.
 * The software device's only (main.c): kmod0 has none of these paths.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "../../lib/sim/pagemap_scan.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* /proc/self/task once it is @want, or after 2 s (@want -1: now). */
static int tasks_settle(int want)
{
	int n = count_dir("/proc/self/task");

	for (int i = 0; i < 200 && want >= 0 && n != want; i++) {
		usleep(10000);
		n = count_dir("/proc/self/task");
	}
	return n;
}

/* A page-fault completion for @d run without blocking on faults. */
static uint32_t run_noblock(struct fixture *f, uint32_t op, const void *src,
			    const void *dst, size_t len)
{
	struct sva_desc d = desc_make(f, op, 0, src, dst, len);

	return run1(f, &d).status;
}

static void run_block(struct fixture *f, uint32_t op, const void *src,
		      const void *dst, size_t len)
{
	struct sva_desc d = desc_make(f, op, SVA_DESC_BLOCK_ON_FAULT, src, dst,
				      len);

	ck_assert_uint_eq(run1(f, &d).status, SVA_STATUS_SUCCESS);
}

/*
 * munmap of a tracked range the device cached nothing of (the ATC walks
 * nothing), then of ranges it did cache, at both ends of what it caches
 * and between: each drops exactly its own entries, and a device access
 * after it translates again, so that a page no longer there faults.
 */
START_TEST(test_regress_atc_nothing_cached_then_cached)
{
	struct fixture f = { 0 };
	uint8_t *a, *b, *c, *d;
	struct sva_mirror *m;
	struct sva_stats s0, s1;
	uint8_t *dst;

	open_bind(&f, NULL);
	a = map_filled(8 * PAGE, 1);
	b = map_filled(8 * PAGE, 2);
	c = map_filled(8 * PAGE, 3);
	d = map_filled(8 * PAGE, 4);
	dst = map_fresh_small(8 * PAGE, PROT_READ | PROT_WRITE);
	memset(dst, 0, 8 * PAGE);

	/* Tracked (a mirror), never accessed by the device: nothing cached. */
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)c, 8 * PAGE,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	s0 = bind_stats(&f);
	ck_assert_int_eq(munmap(c, 8 * PAGE), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.invalidations, s0.invalidations + 1);
	ck_assert_uint_eq(s1.atc_invalidated, s0.atc_invalidated);

	/* Now cached: a, b and dst, 24 pages. */
	run_block(&f, SVA_OP_COPY, a, dst, 8 * PAGE);
	run_block(&f, SVA_OP_COPY, b, dst, 8 * PAGE);
	ck_assert_int_eq(memcmp(b, dst, 8 * PAGE), 0);
	/* d is tracked but not cached; whatever its place among them, its
	 * unmap drops nothing. */
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)d, 8 * PAGE,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	s0 = bind_stats(&f);
	ck_assert_int_eq(munmap(d, 8 * PAGE), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.atc_invalidated, s0.atc_invalidated);

	/* a replaced by fresh memory (one mmap(MAP_FIXED): no other
	 * mapping can take its place meanwhile): that unmap drops a's 8
	 * entries, exactly, and as the new pages aren't present, the access
	 * faults (a stale entry would let the kernel fault it in: success). */
	ck_assert_ptr_eq(mmap(a, 8 * PAGE, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
			 a);
	s0 = bind_stats(&f);
	ck_assert_uint_eq(s0.atc_invalidated, s1.atc_invalidated + 8);
	ck_assert_uint_eq(pages_present(a, 8 * PAGE), 0);
	ck_assert_uint_eq(run_noblock(&f, SVA_OP_COPY, a, dst, PAGE),
			  SVA_STATUS_PAGE_FAULT);

	/* b still cached: all hits. */
	s0 = bind_stats(&f);
	run_block(&f, SVA_OP_CRC32C, b, NULL, 8 * PAGE);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.atc_hits, s0.atc_hits + 8);
	ck_assert_uint_eq(s1.atc_misses, s0.atc_misses);

	/* Discarded dst: writes to it fault now. */
	ck_assert_int_eq(madvise(dst, 8 * PAGE, MADV_DONTNEED), 0);
	ck_assert_uint_eq(pages_present(dst, 8 * PAGE), 0);
	ck_assert_uint_eq(run_noblock(&f, SVA_OP_FILL, NULL, dst, PAGE),
			  SVA_STATUS_PAGE_FAULT);
	/* Last: b, after which nothing is cached; cache again, drop again. */
	s0 = bind_stats(&f);
	ck_assert_int_eq(madvise(b, 8 * PAGE, MADV_DONTNEED), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.atc_invalidated, s0.atc_invalidated + 8);
	ck_assert_uint_eq(run_noblock(&f, SVA_OP_COPY, b, dst, PAGE),
			  SVA_STATUS_PAGE_FAULT);
	/* Cached again from nothing (the discard seen done first, so that
	 * the translations may be cached): dropped again. */
	run_block(&f, SVA_OP_COPY, b, dst, 2 * PAGE);
	s0 = bind_stats(&f);
	ck_assert_int_eq(madvise(b, 8 * PAGE, MADV_DONTNEED), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_ge(s1.atc_invalidated, s0.atc_invalidated + 1);
	ck_assert_uint_le(s1.atc_invalidated, s0.atc_invalidated + 8);
	ck_assert_uint_eq(run_noblock(&f, SVA_OP_COPY, b, dst, PAGE),
			  SVA_STATUS_PAGE_FAULT);

	close_bind(&f);
	munmap(a, 8 * PAGE);
	munmap(b, 8 * PAGE);
	munmap(dst, 8 * PAGE);
}
END_TEST

struct filler {
	struct fixture *f;
	uint8_t *src, *dst;
	size_t len;
	int go, submitted;
};

static void *filler_thread(void *arg)
{
	struct filler *w = arg;
	struct sva_desc d = desc_make(w->f, SVA_OP_COPY,
				      SVA_DESC_BLOCK_ON_FAULT, w->src, w->dst,
				      w->len);
	struct sva_completion c;
	int ret;

	while (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE))
		;
	ret = sva_submit(w->f->bind, &d, 1);
	/* Set either way: the main thread waits for it. */
	__atomic_store_n(&w->submitted, 1, __ATOMIC_RELEASE);
	if (ret != 1 || sva_wait(w->f->bind, &c, 1, 1, 5000) != 1)
		return (void *)1;
	return c.status == SVA_STATUS_SUCCESS ? NULL : (void *)2;
}

/*
 * A discard racing the page requests and ATC fills of a copy from the same
 * pages: once both are done, a page the CPU page table doesn't have must
 * not be in the ATC (an access to it faults).
 */
START_TEST(test_inval_races_atc_fill)
{
	struct fixture f = { 0 };
	const size_t len = 16 * PAGE;
	uint8_t *src, *dst;
	int checked = 0;

	open_bind(&f, NULL);
	src = map_fresh_small(len, PROT_READ | PROT_WRITE);
	dst = map_fresh_small(len, PROT_READ | PROT_WRITE);
	for (int round = 0; round < 200; round++) {
		struct filler w = { .f = &f, .src = src, .dst = dst,
				    .len = len };
		pthread_t t;
		void *ret;

		/*
		 * Every page present when the discard comes: one absent then
		 * and faulted in before the zap reaches it is the case the
		 * model documents it can't tell from a zapped one (libsva(7)).
		 */
		memset(src, round, len);
		ck_assert_int_eq(pthread_create(&t, NULL, filler_thread, &w), 0);
		__atomic_store_n(&w.go, 1, __ATOMIC_RELEASE);
		/* Most rounds race the copy, at varied points; every fourth
		 * discards after it, so that some pages are surely absent. */
		if (round % 4 != 3) {
			while (!__atomic_load_n(&w.submitted, __ATOMIC_ACQUIRE))
				;
			if (round % 3)
				usleep((useconds_t)(round * 37 % 300));
			ck_assert_int_eq(madvise(src + (size_t)(round % 8) * PAGE,
						 len / 2, MADV_DONTNEED), 0);
		}
		ck_assert_int_eq(pthread_join(t, &ret), 0);
		ck_assert_ptr_null(ret);
		if (round % 4 == 3)
			ck_assert_int_eq(madvise(src + (size_t)(round % 8) * PAGE,
						 len / 2, MADV_DONTNEED), 0);
		for (size_t p = 0; p < len; p += PAGE) {
			if (pagemap_entry(src + p) & PM_PRESENT_BIT)
				continue;
			checked++;
			ck_assert_uint_eq(run_noblock(&f, SVA_OP_COPY, src + p,
						      dst, PAGE),
					  SVA_STATUS_PAGE_FAULT);
		}
	}
	ck_assert_int_gt(checked, 0);
	close_bind(&f);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/*
 * Threads start when first needed: none at bind, the event thread with
 * the first mirror (its range must be heard of), the notifier with the
 * first mirror that has a callback; all gone at unbind.
 */
static void count_cb(struct sva_mirror *m, uint64_t start, uint64_t end,
		     enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	(void)m; (void)start; (void)end; (void)seq;
	if (ev != SVA_INVAL_RELEASE)
		__atomic_add_fetch((int *)ctx, 1, __ATOMIC_RELEASE);
}

static bool wait_count(int *n, int want)
{
	for (int i = 0; i < 5000 && __atomic_load_n(n, __ATOMIC_ACQUIRE) < want;
	     i++)
		usleep(1000);
	return __atomic_load_n(n, __ATOMIC_ACQUIRE) >= want;
}

START_TEST(test_threads_start_when_needed)
{
	uint8_t *p = map_filled(4 * PAGE, 5);
	struct sva_mirror *m1, *m2, *m3;
	struct fixture f = { 0 };
	int base, bound, calls = 0;
	SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = count_cb,
		      .ctx = &calls);

	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &f.dev), 0);
	base = tasks_settle(-1);
	ck_assert_int_eq(sva_bind(f.dev, NULL, &f.bind), 0);
	bound = tasks_settle(base);
	ck_assert_int_eq(bound, base);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, PAGE, NULL,
					     &m1), 0);
	ck_assert_int_eq(tasks_settle(base + 1), base + 1);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p + PAGE,
					     PAGE, &o, &m2), 0);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p + 2 * PAGE,
					     PAGE, &o, &m3), 0);
	ck_assert_int_eq(tasks_settle(base + 2), base + 2);
	/* Both callback mirrors hear of it. */
	ck_assert_int_eq(madvise(p, 4 * PAGE, MADV_DONTNEED), 0);
	ck_assert(wait_count(&calls, 2));
	ck_assert_int_eq(sva_mirror_unregister(m2), 0);
	ck_assert_int_eq(sva_mirror_unregister(m3), 0);
	ck_assert_int_eq(sva_mirror_unregister(m1), 0);
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(tasks_settle(base), base);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

/*
 * Callbacks are queued only while a callback mirror exists: the first one
 * registered after invalidations with none gets the later ones, and
 * read_retry() sees every one in between (sequences don't wait for the
 * notifier).
 */
START_TEST(test_callback_mirror_after_unwatched_invals)
{
	struct fixture f = { 0 };
	uint8_t *p = map_filled(8 * PAGE, 6);
	struct sva_mirror *plain, *m;
	int calls = 0;
	uint64_t seq;
	SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = count_cb,
		      .ctx = &calls);

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 8 * PAGE,
					     NULL, &plain), 0);
	for (int i = 0; i < 50; i++) {
		seq = sva_mirror_read_begin(plain);
		ck_assert_int_eq(madvise(p + (i % 8) * PAGE, PAGE,
					 MADV_DONTNEED), 0);
		ck_assert(sva_mirror_read_retry(plain, seq));
	}
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 8 * PAGE,
					     &o, &m), 0);
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	ck_assert(wait_count(&calls, 1));
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	/* None watches again: invalidations still advance the sequence. */
	seq = sva_mirror_read_begin(plain);
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	ck_assert(sva_mirror_read_retry(plain, seq));
	ck_assert_int_eq(sva_mirror_unregister(plain), 0);
	close_bind(&f);
	munmap(p, 8 * PAGE);
}
END_TEST

struct stormer {
	struct sva_dev *shared;
	int id;
	int fail;		/* line of the first failed check */
};

#define STORM_CHECK(w, cond) \
	do { if (!(cond) && !(w)->fail) (w)->fail = __LINE__; } while (0)

static void *storm_thread(void *arg)
{
	struct stormer *w = arg;

	for (int i = 0; i < 150 && !w->fail; i++) {
		struct sva_dev *dev = w->shared;
		struct fixture f = { 0 };
		uint8_t *p = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct sva_mirror *m = NULL;
		size_t mapped = 2 * PAGE;
		int calls = 0;
		uint64_t seq;
		SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = count_cb,
			      .ctx = &calls);

		STORM_CHECK(w, p != MAP_FAILED);
		if (w->fail)
			break;
		memset(p, i, 2 * PAGE);
		if (w->id & 1)
			STORM_CHECK(w, !sva_dev_open(test_device(), NULL, &dev));
		STORM_CHECK(w, !sva_bind(dev, NULL, &f.bind));
		if (w->fail)
			break;
		f.dev = dev;
		sva_bind_pasid(f.bind, &f.pasid);
		switch ((i + w->id) % 3) {
		case 0:		/* bind and unbind, nothing more */
			break;
		case 1: {	/* a callback mirror, told of a munmap */
			STORM_CHECK(w, !sva_mirror_register(f.bind, (uintptr_t)p,
							    2 * PAGE, &o, &m));
			if (!m)
				break;
			seq = sva_mirror_read_begin(m);
			/* Its second page is anyone's once unmapped: not ours
			 * to unmap again below. */
			STORM_CHECK(w, !munmap(p + PAGE, PAGE));
			mapped = PAGE;
			STORM_CHECK(w, sva_mirror_read_retry(m, seq));
			STORM_CHECK(w, wait_count(&calls, 1));
			break;
		}
		case 2: {	/* the device copies */
			struct sva_desc d = desc_make(&f, SVA_OP_COPY,
						      SVA_DESC_BLOCK_ON_FAULT,
						      p, p + PAGE, PAGE);
			struct sva_completion c;

			STORM_CHECK(w, sva_submit(f.bind, &d, 1) == 1);
			STORM_CHECK(w, sva_wait(f.bind, &c, 1, 1, 5000) == 1);
			STORM_CHECK(w, c.status == SVA_STATUS_SUCCESS);
			break;
		}
		}
		/* Unbind releases the mirror (if any) itself. */
		STORM_CHECK(w, !sva_unbind(f.bind));
		if (w->id & 1)
			sva_dev_close(dev);
		munmap(p, mapped);
	}
	return NULL;
}

/*
 * Binds and unbinds from many threads at once, some on a shared device,
 * some each on its own, each binding the last or not at random: threads
 * start and stop under each other, callbacks and sequences arrive, and
 * nothing (fd, thread) is left over.
 */
START_TEST(test_bind_unbind_storm_threads)
{
	struct stormer w[4];
	pthread_t t[4];
	struct sva_dev *shared;
	int fds, tasks;

	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &shared), 0);
	fds = count_dir("/proc/self/fd");
	tasks = tasks_settle(-1);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct stormer){ .shared = shared, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, storm_thread,
						&w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_msg(!w[i].fail, "thread %d: check at line %d failed",
			      i, w[i].fail);
	}
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
	ck_assert_int_eq(tasks_settle(tasks), tasks);
	sva_dev_close(shared);
}
END_TEST

/*
 * fork() while a binding has started no thread yet (its userfaultfd is
 * open, nothing registered): the child gets -EPERM on it and works with
 * its own; the parent, while the child lives on, starts its threads,
 * hears of its munmap()s (none waits on the child) and unbinds cleanly.
 */
START_TEST(test_fork_before_threads_start)
{
	uint8_t *p = map_filled(4 * PAGE, 7), *q = map_fresh(4 * PAGE,
						PROT_READ | PROT_WRITE);
	struct fixture f = { 0 };
	struct sva_mirror *m;
	int calls = 0, status, pipefd[2];
	SVA_OPTS_INIT(sva_mirror_opts, o, .invalidate = count_cb,
		      .ctx = &calls);
	uint64_t seq;
	pid_t pid;
	char c;

	open_bind(&f, NULL);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = test_fork();
	if (pid == 0) {
		struct fixture g = { 0 };
		uint32_t pasid;
		int ok = 1, ccalls = 0;
		SVA_OPTS_INIT(sva_mirror_opts, co, .invalidate = count_cb,
			      .ctx = &ccalls);

		close(pipefd[1]);
		ok &= sva_bind_pasid(f.bind, &pasid) == -EPERM;
		ok &= sva_mirror_register(f.bind, (uintptr_t)p, PAGE, NULL,
					  &m) == -EPERM;
		ok &= sva_unbind(f.bind) == -EPERM;
#ifdef SVA_ASAN_BUILD
		/* GCC 12's ASan takes no allocator lock around fork(): a
		 * child that allocates can hang on one a library thread held
		 * (test_fork.c). The inherited handles allocate nothing. */
		if (read(pipefd[0], &c, 1) < 0)
			ok = 0;
		_exit(ok ? 0 : 1);
#endif
		ok &= !sva_dev_open(test_device(), NULL, &g.dev);
		ok &= ok && !sva_bind(g.dev, NULL, &g.bind);
		if (ok) {
			struct sva_desc d;
			struct sva_completion cc;

			sva_bind_pasid(g.bind, &g.pasid);
			d = desc_make(&g, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      p, q, 4 * PAGE);
			ok &= sva_mirror_register(g.bind, (uintptr_t)q,
						  4 * PAGE, &co, &m) == 0;
			ok &= sva_submit(g.bind, &d, 1) == 1 &&
			      sva_wait(g.bind, &cc, 1, 1, 5000) == 1 &&
			      cc.status == SVA_STATUS_SUCCESS &&
			      !memcmp(p, q, 4 * PAGE);
			ok &= !munmap(q + 3 * PAGE, PAGE);
			ok &= wait_count(&ccalls, 1);
			ok &= !sva_unbind(g.bind);
			sva_dev_close(g.dev);
		}
		/* Live on, holding what fork() gave us, until told. */
		if (read(pipefd[0], &c, 1) < 0)
			ok = 0;
		_exit(ok ? 0 : 1);
	}
	close(pipefd[0]);
	/* Parent: threads start now, after the fork. */
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &o, &m), 0);
	run_block(&f, SVA_OP_COPY, p, q, 2 * PAGE);
	seq = sva_mirror_read_begin(m);
	ck_assert_int_eq(munmap(p + 3 * PAGE, PAGE), 0);
	ck_assert(sva_mirror_read_retry(m, seq));
	ck_assert(wait_count(&calls, 1));
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	/* With the child alive: had it kept our userfaultfd, p would still
	 * be registered and this munmap() would wait for a reader forever. */
	ck_assert_int_eq(munmap(p, 3 * PAGE), 0);
	ck_assert_int_eq(munmap(q, 4 * PAGE), 0);
	ck_assert_int_eq(write(pipefd[1], "x", 1), 1);
	close(pipefd[1]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
}
END_TEST

/*
 * The PMD-mapped pages of [p, p + len) as a full PAGEMAP_SCAN says: huge[i]
 * set for each. False when the kernel has no PAGEMAP_SCAN.
 */
static bool scan_huge(const uint8_t *p, size_t len, uint8_t *huge)
{
	struct page_region regs[64];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)p, .end = (uintptr_t)p + len,
		.vec = (uintptr_t)regs, .vec_len = 64,
		.category_anyof_mask = PAGE_IS_HUGE,
		.return_mask = PAGE_IS_HUGE,
	};
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC), n;

	ck_assert_int_ge(fd, 0);
	memset(huge, 0, len / PAGE);
	while (arg.start < arg.end) {
		n = ioctl(fd, PAGEMAP_SCAN, &arg);
		if (n < 0) {
			close(fd);
			return false;
		}
		for (int i = 0; i < n; i++)
			for (uint64_t a = regs[i].start; a < regs[i].end;
			     a += PAGE)
				huge[(a - (uintptr_t)p) / PAGE] = 1;
		if (arg.walk_end <= arg.start)
			break;
		arg.start = arg.walk_end;
	}
	close(fd);
	return true;
}

/*
 * Snapshot [p + off, + len) of @m and compare each page with pagemap and
 * a full PAGEMAP_SCAN taken after it: 0, or the first page that differs
 * (from 1), its states in @msg.
 */
static size_t snapshot_diff(struct sva_mirror *m, uint8_t *p, size_t off,
			    size_t len, const uint8_t *ro, const uint8_t *none,
			    int *nhuge, char *msg, size_t msglen)
{
	size_t n = len / PAGE, bad = 0;
	uint8_t *st = malloc(n), *huge = malloc(n);
	bool have_scan;

	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p + off, len, st,
					     0), 0);
	have_scan = scan_huge(p + off, len, huge);
	*nhuge = 0;
	for (size_t i = 0; i < n && !bad; i++) {
		size_t k = off / PAGE + i;
		uint8_t *pg = p + k * PAGE;
		uint64_t e = pagemap_entry(pg);
		unsigned int want;

		if (none[k])
			want = SVA_PAGE_ERROR;
		else if (!(e & PM_PRESENT_BIT))
			want = 0;
		else if (ro[k])
			want = SVA_PAGE_VALID;
		else
			want = anon_rw_state(pg);
		if (want != SVA_PAGE_ERROR && have_scan && huge[i])
			want |= SVA_PAGE_HUGE;
		*nhuge += !!(st[i] & SVA_PAGE_HUGE);
		if (st[i] != want) {
			bad = i + 1;
			snprintf(msg, msglen,
				 "page %zu of the range at +%zu: state %#x, pagemap %#llx%s says %#x",
				 i, off / PAGE, st[i], (unsigned long long)e,
				 have_scan ? " and PAGEMAP_SCAN" : "", want);
		}
	}
	free(st);
	free(huge);
	return bad;
}

/* As snapshot_diff(), again if the kernel changed a page meanwhile
 * (khugepaged, reclaim): a wrong snapshot differs every time. */
static void snapshot_check(struct sva_mirror *m, uint8_t *p, size_t off,
			   size_t len, const uint8_t *ro, const uint8_t *none,
			   int *nhuge)
{
	char msg[256] = "";
	size_t bad = 1;
	int h = 0;

	for (int tries = 0; bad && tries < 3; tries++)
		bad = snapshot_diff(m, p, off, len, ro, none, &h, msg,
				    sizeof(msg));
	ck_assert_msg(!bad, "%s", msg);
	*nhuge += h;
}

/*
 * 16 MiB, half where THP may back it and half in base pages, with holes
 * punched (DONTNEED, inside THPs too, which splits them), pages paged out
 * (swapped where there is swap, else still present), a read-only THP, a
 * PROT_NONE part and an unmapped page: the snapshot says what pagemap and
 * a full PAGEMAP_SCAN say, page by page, over the whole range (many pread
 * blocks) and over ranges starting and ending inside 2 MiB blocks.
 */
START_TEST(test_snapshot_matches_pagemap)
{
	const size_t huge = 2ul << 20, len = 8 * huge, n = len / PAGE;
	uint8_t *raw = map_fresh(len + huge, PROT_READ | PROT_WRITE), *p;
	uint8_t *ro = calloc(n, 1), *none = calloc(n, 1);
	struct fixture f = { 0 };
	struct sva_mirror *m;
	int nhuge = 0;

	p = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ck_assert(!madvise(p, len / 2, MADV_HUGEPAGE) || errno == EINVAL);
	ck_assert(!madvise(p + len / 2, len / 2, MADV_NOHUGEPAGE) ||
		  errno == EINVAL);
	memset(p, 0x5a, len);
	/* Discards: inside the first THP, at the second's end (both split:
	 * the third and fourth stay whole if THPs they are), small. */
	ck_assert_int_eq(madvise(p + 5 * PAGE, 3 * PAGE, MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(p + 2 * huge - 4 * PAGE, 4 * PAGE,
				 MADV_DONTNEED), 0);
	ck_assert_int_eq(madvise(p + len / 2 + 7 * PAGE, 9 * PAGE,
				 MADV_DONTNEED), 0);
	/* Paged out, if the kernel can (errors: no swap, old kernel). */
	(void)madvise(p + huge + 64 * PAGE, 64 * PAGE, MADV_PAGEOUT);
	(void)madvise(p + len / 2 + huge, 64 * PAGE, MADV_PAGEOUT);
	/* Read-only: a whole 2 MiB block and a few small pages. */
	ck_assert_int_eq(mprotect(p + 2 * huge, huge, PROT_READ), 0);
	memset(ro + 2 * huge / PAGE, 1, huge / PAGE);
	ck_assert_int_eq(mprotect(p + len / 2 + 100 * PAGE, 4 * PAGE,
				  PROT_READ), 0);
	memset(ro + len / 2 / PAGE + 100, 1, 4);
	/* No access, and a hole. */
	ck_assert_int_eq(mprotect(p + len - 3 * huge + 10 * PAGE, 2 * PAGE,
				  PROT_NONE), 0);
	memset(none + (len - 3 * huge) / PAGE + 10, 1, 2);

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	ck_assert_int_eq(munmap(p + len - 5 * PAGE, PAGE), 0);
	none[n - 5] = 1;

	snapshot_check(m, p, 0, len, ro, none, &nhuge);
	/* Inside 2 MiB blocks at both ends, across several. */
	snapshot_check(m, p, huge - 3 * PAGE, 2 * huge + 7 * PAGE, ro, none,
		       &nhuge);
	snapshot_check(m, p, 3 * PAGE, 5 * PAGE, ro, none, &nhuge);
	snapshot_check(m, p, len - huge - 1 * PAGE, huge + PAGE, ro, none,
		       &nhuge);
	fprintf(stderr, "test_snapshot_matches_pagemap: %d huge pages seen\n",
		nhuge);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	/* Around the hole, which may be someone else's by now. */
	munmap(raw, (size_t)(p + len - 5 * PAGE - raw));
	munmap(p + len - 4 * PAGE, (size_t)(raw + len + huge -
					   (p + len - 4 * PAGE)));
	free(ro);
	free(none);
}
END_TEST

Suite *fastpath_suite(void)
{
	Suite *s = suite_create("fastpath");
	TCase *tc = tcase_create("fastpath");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_regress_atc_nothing_cached_then_cached);
	tcase_add_test(tc, test_inval_races_atc_fill);
	tcase_add_test(tc, test_threads_start_when_needed);
	tcase_add_test(tc, test_callback_mirror_after_unwatched_invals);
	tcase_add_test(tc, test_bind_unbind_storm_threads);
	tcase_add_test(tc, test_fork_before_threads_start);
	tcase_add_test(tc, test_snapshot_matches_pagemap);
	suite_add_tcase(s, tc);
	return s;
}
