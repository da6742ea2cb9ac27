// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Device memory and migration (issue 8): ports of the hmm-tests migration
 * cases (migrate, migrate_fault, migrate_release, migrate_shared,
 * migrate_mixed, migrate_multiple, hmm_cow_in_device, double_map) to the
 * libsva API, plus eviction under pressure, attributes, a CPU writer
 * racing migrations, and the calls on a device without device memory.
 * Expectations are the backend's: a device without SVA_CAP_MIGRATE (kmod0
 * on a kernel without device-private memory, a host kernel without
 * UFFDIO_MOVE) must answer -EOPNOTSUPP, and the other cases skip there.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

static bool migrate_open(struct fixture *f, uint64_t devmem_size)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .devmem_size = devmem_size);
	SVA_OPTS_INIT(sva_dev_caps, caps);

	open_bind(f, &o);
	ck_assert_int_eq(sva_dev_caps(f->dev, &caps), 0);
	if (caps.flags & SVA_CAP_MIGRATE)
		return true;
	fprintf(stderr, "%s: %s has no SVA_CAP_MIGRATE (no device memory on this backend/kernel): skipped\n",
		__func__, test_device());
	close_bind(f);
	return false;
}

#define MIGRATE_OR_SKIP(f, size) do { if (!migrate_open(f, size)) return; } while (0)

static int migrate(struct fixture *f, void *p, size_t len, uint64_t to,
		   struct sva_migrate_result *r)
{
	SVA_OPTS_INIT(sva_migrate_opts, o, .to = to);

	memset(r, 0, sizeof(*r));
	r->sz = sizeof(*r);
	return sva_migrate(f->bind, (uintptr_t)p, len, &o, r);
}

/* Snapshot states of [p, p + len) through a mirror of it. */
static void states_of(struct fixture *f, void *p, size_t len, uint8_t *st)
{
	struct sva_mirror *m;

	ck_assert_int_eq(sva_mirror_register(f->bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
}

static unsigned int count_state(const uint8_t *st, size_t n, uint8_t bit)
{
	unsigned int c = 0;

	for (size_t i = 0; i < n; i++)
		c += !!(st[i] & bit);
	return c;
}

/* [p + off, p + off + len) holds what fill_pattern(p, .., seed) put. */
static void check_pattern_at(const uint8_t *p, size_t off, size_t len,
			     unsigned int seed)
{
	uint8_t *want = malloc(off + len);

	ck_assert_ptr_nonnull(want);
	fill_pattern(want, off + len, seed);
	ck_assert(!memcmp(p + off, want + off, len));
	free(want);
}

static void check_pattern(const void *p, size_t len, unsigned int seed)
{
	check_pattern_at(p, 0, len, seed);
}

/* Device reads [src, src + len) into host memory; the copy is returned. */
static uint8_t *device_read(struct fixture *f, const void *src, size_t len)
{
	/* Present already: the page requests counted are the source's. */
	uint8_t *dst = map_filled(len, 99);
	struct sva_desc d = desc_make(f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, len);
	struct sva_completion c = run1(f, &d);

	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.bytes_done, len);
	return dst;
}

/* ------------------------------------------------ without the cap */

/* Every new call says -EOPNOTSUPP where the device has no memory. */
START_TEST(test_migrate_unsupported)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .flags = SVA_DEV_NO_DEVMEM);
	SVA_OPTS_INIT(sva_dev_caps, caps);
	SVA_OPTS_INIT(sva_migrate_opts, mo, .to = SVA_LOC_DEVICE);
	struct sva_range_attr a = { .type = SVA_ATTR_DEVICE_READ_ONLY, .value = 1 };
	struct fixture f;
	uint8_t *p = map_filled(4 * PAGE, 3);
	struct sva_desc d;

	/* The flag on any backend; on one without migration, no flag. */
	open_bind(&f, _i ? &o : NULL);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	if (!_i && (caps.flags & SVA_CAP_MIGRATE)) {
		fprintf(stderr, "%s: %s has device memory: case 0 skipped\n",
			__func__, test_device());
		close_bind(&f);
		munmap(p, 4 * PAGE);
		return;
	}
	ck_assert(!(caps.flags & SVA_CAP_MIGRATE));
	ck_assert_uint_eq(caps.devmem_size, 0);
	ck_assert(!(caps.ops & (1u << SVA_OP_PREFETCH)));
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, PAGE, &mo, NULL),
			 -EOPNOTSUPP);
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, PAGE, &a, 1),
			 -EOPNOTSUPP);
	ck_assert_int_eq(sva_range_get_attr(f.bind, (uintptr_t)p, PAGE, &a, 1),
			 -EOPNOTSUPP);
	d = desc_make(&f, SVA_OP_PREFETCH, 0, p, NULL, PAGE);
	d.pattern = SVA_LOC_DEVICE;
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), -EOPNOTSUPP);
	check_pattern(p, 4 * PAGE, 3);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

START_TEST(test_migrate_bad_args)
{
	struct sva_migrate_result r;
	SVA_OPTS_INIT(sva_migrate_opts, o, .to = SVA_LOC_DEVICE);
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(4 * PAGE, 1);
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p + 1, PAGE, &o, NULL), -EINVAL);
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, PAGE + 1, &o, NULL), -EINVAL);
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, 0, &o, NULL), -EINVAL);
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, PAGE, NULL, NULL), -EINVAL);
	ck_assert_int_eq(sva_migrate(NULL, (uintptr_t)p, PAGE, &o, NULL), -EINVAL);
	ck_assert_int_eq(migrate(&f, p, PAGE, SVA_LOC_NONE, &r), -EINVAL);
	ck_assert_int_eq(migrate(&f, p, PAGE, 77, &r), -EINVAL);
	ck_assert_int_eq(migrate(&f, p, PAGE, SVA_LOC_HOST_NODE(5000), &r), -EINVAL);
	o.flags = 1;
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, PAGE, &o, NULL), -EINVAL);
	check_pattern(p, 4 * PAGE, 1);
	if (test_on_sim()) {
		SVA_OPTS_INIT(sva_dev_opts, dopt, .devmem_size = PAGE + 1);
		SVA_OPTS_INIT(sva_dev_caps, caps);
		struct sva_dev *dev = (void *)1;

		ck_assert_int_eq(sva_dev_open("sim1", &dopt, &dev), -EINVAL);
		ck_assert_ptr_null(dev);
		dopt.devmem_size = 1ull << 40;
		ck_assert_int_eq(sva_dev_open("sim1", &dopt, &dev), -EINVAL);
		dopt.devmem_size = 3 * PAGE;
		ck_assert_int_eq(sva_dev_open("sim1", &dopt, &dev), 0);
		ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
		ck_assert_uint_eq(caps.devmem_size, 3 * PAGE);
		sva_dev_close(dev);
	}
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

/* ---------------------------------------------------- hmm-tests ports */

/* migrate: to the device and back, data exact, no CPU mapping left. */
/*
 * A snapshot taken while a page is in device memory is stale once a CPU
 * access brought the page back: read_retry() must say so as soon as that
 * access returns, not when the invalidation's other work is done (sim
 * advanced the sequence after waking the faulting thread: a CI run saw
 * the exclusive twin of this accept a stale snapshot).
 */
START_TEST(test_regress_cpu_fault_back_seq_before_return)
{
	enum { ROUNDS = 3000 };
	struct sva_migrate_result r;
	struct sva_mirror *m;
	struct fixture f;
	uint64_t seq;
	uint8_t *p, st;
	volatile uint8_t sink;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(PAGE, 9);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, PAGE, NULL,
					     &m), 0);
	for (int i = 0; i < ROUNDS; i++) {
		ck_assert_int_eq(migrate(&f, p, PAGE, SVA_LOC_DEVICE, &r), 0);
		seq = sva_mirror_read_begin(m);
		ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, PAGE,
						     &st, 0), 0);
		ck_assert(st & SVA_PAGE_DEVICE_LOCAL);
		sink = p[i];
		(void)sink;
		ck_assert_msg(sva_mirror_read_retry(m, seq),
			      "round %d: a DEVICE_LOCAL snapshot accepted after the CPU took the page back",
			      i);
	}
	check_pattern(p, PAGE, 9);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	munmap(p, PAGE);
}
END_TEST

START_TEST(test_migrate_basic)
{
	enum { N = 64 };
	struct sva_migrate_result r;
	uint8_t st[N], *p, *copy;
	struct sva_stats s0, s1;
	struct fixture f;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 7);
	s0 = bind_stats(&f);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_LOCAL), N);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_VALID), N);
	/* The device reads its own memory: local, no page request. */
	copy = device_read(&f, p, N * PAGE);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.page_requests, s0.page_requests);
	ck_assert_uint_ge(s1.devmem_accesses - s0.devmem_accesses, N);
	ck_assert_uint_eq(s1.migrated_to_dev - s0.migrated_to_dev, N);
	ck_assert_uint_eq(s1.bytes_to_dev - s0.bytes_to_dev, N * PAGE);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	check_pattern(copy, N * PAGE, 7);
	/* Again: already there. */
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, 0);
	ck_assert_uint_eq(r.already, N);
	/* Back. */
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_uint_eq(pages_present(p, N * PAGE), N);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.migrated_to_host - s0.migrated_to_host, N);
	ck_assert_uint_eq(s1.cpu_fault_migrations, s0.cpu_fault_migrations);
	{
		struct sva_stats ds = { .sz = sizeof(ds) };

		ck_assert_int_eq(sva_dev_stats(f.dev, &ds), 0);
		ck_assert_uint_eq(ds.migrated_to_dev, s1.migrated_to_dev);
		ck_assert_uint_eq(ds.migrated_to_host, s1.migrated_to_host);
	}
	check_pattern(p, N * PAGE, 7);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(copy, N * PAGE);
}
END_TEST

/* migrate_fault: the CPU reads half back; migrate the mix again. */
START_TEST(test_migrate_fault)
{
	enum { N = 32 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint8_t st[N], *p;
	volatile uint8_t sink = 0;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 9);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	s0 = bind_stats(&f);
	for (size_t i = 0; i < N / 2; i++)
		sink += ((volatile uint8_t *)p)[i * PAGE + 5];
	(void)sink;
	ck_assert_uint_eq(pages_present(p, N / 2 * PAGE), N / 2);
	ck_assert_uint_eq(pages_present(p + N / 2 * PAGE, N / 2 * PAGE), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.cpu_fault_migrations - s0.cpu_fault_migrations, N / 2);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N / 2, SVA_PAGE_DEVICE_LOCAL), 0);
	ck_assert_uint_eq(count_state(st + N / 2, N / 2, SVA_PAGE_DEVICE_LOCAL), N / 2);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	ck_assert_uint_eq(r.already, N / 2);
	/* The CPU reads all back (a kernel access too: write(2) from it). */
	{
		int fds[2];
		uint8_t buf[64], want[21 * PAGE];

		ck_assert_int_eq(pipe(fds), 0);
		ck_assert_int_eq(write(fds[1], p + 3 * PAGE, sizeof(buf)), sizeof(buf));
		ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), sizeof(buf));
		ck_assert(!memcmp(buf, p + 3 * PAGE, sizeof(buf)));
		/* And read(2) into a page in device memory. */
		fill_pattern(want, sizeof(want), 9);
		ck_assert_int_eq(write(fds[1], want + 20 * PAGE, sizeof(buf)), sizeof(buf));
		ck_assert_int_eq(read(fds[0], p + 20 * PAGE, sizeof(buf)), sizeof(buf));
		close(fds[0]);
		close(fds[1]);
	}
	check_pattern(p, N * PAGE, 9);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* migrate_release: munmap, discard and unbind with pages in device memory. */
START_TEST(test_migrate_release)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *q;

	/* Small device memory: freed slots must be reused. */
	MIGRATE_OR_SKIP(&f, N * PAGE);
	for (int round = 0; round < 4; round++) {
		p = map_filled(N * PAGE, 20 + round);
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
		ck_assert_uint_eq(r.moved, N);
		ck_assert_uint_eq(r.evicted, 0);
		/* Discarded: zeros after, as any discarded anonymous page. */
		ck_assert_int_eq(madvise(p, 2 * PAGE, MADV_DONTNEED), 0);
		for (size_t i = 0; i < 2 * PAGE; i++)
			ck_assert_uint_eq(p[i], 0);
		check_pattern_at(p, 2 * PAGE, (N - 2) * PAGE, 20 + round);
		ck_assert_int_eq(munmap(p, N * PAGE), 0);
	}
	/* Unbind moves the binding's pages back. */
	q = map_filled(N * PAGE, 33);
	ck_assert_int_eq(migrate(&f, q, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	close_bind(&f);
	ck_assert_uint_eq(pages_present(q, N * PAGE), N);
	check_pattern(q, N * PAGE, 33);
	munmap(q, N * PAGE);
}
END_TEST

/* Two bindings on one device: unbinding one moves back its pages only. */
START_TEST(test_migrate_unbind_own_pages)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f, g;
	uint8_t st[N], *p, *q;

	MIGRATE_OR_SKIP(&f, 0);
	g.dev = f.dev;
	ck_assert_int_eq(sva_bind(f.dev, NULL, &g.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(g.bind, &g.pasid), 0);
	p = map_filled(N * PAGE, 29);
	q = map_filled(N * PAGE, 30);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_int_eq(migrate(&g, q, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_int_eq(sva_unbind(g.bind), 0);
	ck_assert_uint_eq(pages_present(q, N * PAGE), N);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_LOCAL), N);
	check_pattern(q, N * PAGE, 30);
	check_pattern(p, N * PAGE, 29);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(q, N * PAGE);
}
END_TEST

/* migrate_shared: shared and file pages are refused, never touched. */
START_TEST(test_migrate_shared)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *q;
	int fd;

	MIGRATE_OR_SKIP(&f, 0);
	p = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	fill_pattern(p, N * PAGE, 4);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), N);
	ck_assert_uint_eq(r.moved, 0);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_SHARED], N);
	check_pattern(p, N * PAGE, 4);
	/* A private file mapping. */
	fd = memfd_create("migrate", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, N * PAGE), 0);
	q = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(q, MAP_FAILED);
	fill_pattern(q, N * PAGE, 5);
	ck_assert_int_eq(migrate(&f, q, N * PAGE, SVA_LOC_DEVICE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_SHARED], N);
	check_pattern(q, N * PAGE, 5);
	ck_assert_uint_ge(bind_stats(&f).migrate_failures, 2 * N);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(q, N * PAGE);
	close(fd);
}
END_TEST

/* migrate_mixed: PROT_NONE, a hole, read-only, a read-only zero page. */
START_TEST(test_migrate_mixed)
{
	enum { N = 6 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, st[N];
	volatile uint8_t sink;
	uint64_t sum = 0;
	int ret;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_fresh_small(N * PAGE, PROT_NONE);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_PROT_NONE], N);
	ck_assert_int_eq(munmap(p + PAGE, PAGE), 0);
	/* Page 2: read-only, read before (zero page or not). */
	ck_assert_int_eq(mprotect(p + 2 * PAGE, PAGE, PROT_READ), 0);
	sink = p[2 * PAGE];
	(void)sink;
	/* Page 3: written, then read-only. */
	ck_assert_int_eq(mprotect(p + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE), 0);
	p[3 * PAGE] = 3;
	ck_assert_int_eq(mprotect(p + 3 * PAGE, PAGE, PROT_READ), 0);
	/* Pages 4-5: read-write. */
	ck_assert_int_eq(mprotect(p + 4 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE), 0);
	p[4 * PAGE] = 4;
	p[5 * PAGE] = 5;
	ret = migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r);
	for (int i = 0; i < SVA_MIGRATE_REASON_MAX; i++)
		sum += r.not_moved[i];
	ck_assert_int_eq(ret, (int)sum);
	ck_assert_uint_eq(r.moved + r.already + sum, N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_PROT_NONE], 1);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_UNMAPPED], 1);
	/* Read-only pages: moved (kmod) or refused as read-only (sim). */
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_READ_ONLY] + r.moved, 4);
	ck_assert_uint_ge(r.moved, 2);
	states_of(&f, p + 4 * PAGE, 2 * PAGE, st);
	ck_assert_uint_eq(count_state(st, 2, SVA_PAGE_DEVICE_LOCAL), 2);
	ck_assert_uint_eq(p[2 * PAGE], 0);
	ck_assert_uint_eq(p[3 * PAGE], 3);
	ck_assert_uint_eq(p[4 * PAGE], 4);
	ck_assert_uint_eq(p[5 * PAGE], 5);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* migrate_multiple: ten round trips, data exact each time. */
START_TEST(test_migrate_multiple)
{
	enum { N = 64 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 11);
	for (unsigned int i = 0; i < 10; i++) {
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
		ck_assert_uint_eq(r.moved, N);
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST, &r), 0);
		ck_assert_uint_eq(r.moved, N);
		check_pattern(p, N * PAGE, 11 + i);
		/* The CPU changes it between trips. */
		fill_pattern(p, N * PAGE, 12 + i);
	}
	ck_assert_uint_eq(bind_stats(&f).migrated_to_dev, 10 * N);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* hmm_cow_in_device: fork() with pages in device memory. */
START_TEST(test_migrate_cow_in_device)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct fixture f;
	struct sva_stats s0, s1;
	uint8_t *p;
	pid_t pid;
	int status;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 12);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	s0 = bind_stats(&f);
	pid = test_fork();
	if (pid == 0) {
		bool ok = true;

		/* No allocation here (ASan's allocator after fork). */
		for (size_t i = 0; i < N * PAGE && ok; i++) {
			uint8_t c = p[i], nc = (uint8_t)(c ^ 0xff);

			p[i] = nc;	/* copy-on-write break */
			ok = p[i] == nc;
		}
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* The parent's data is its own, exact. */
	check_pattern(p, N * PAGE, 12);
	/*
	 * Each page came back to host memory once: evicted at fork (sim,
	 * whose device pages can't be shared copy-on-write), or by the
	 * child's first write fault on it (kmod: the kernel shares
	 * device-private pages copy-on-write, as in hmm_cow_in_device).
	 */
	s1 = bind_stats(&f);
	ck_assert_uint_eq((s1.evictions - s0.evictions) +
			  (s1.cpu_fault_migrations - s0.cpu_fault_migrations),
			  N);
	/*
	 * Pages fork() shared copy-on-write stay so until the parent
	 * writes (the child's copies don't make them exclusive again):
	 * moved or refused as shared, nothing else.
	 */
	ck_assert_int_ge(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved + r.not_moved[SVA_MIGRATE_PINNED], N);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST, &r), 0);
	fill_pattern(p, N * PAGE, 12);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	check_pattern(p, N * PAGE, 12);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* The child checks what it sees against the parent's pattern. */
START_TEST(test_migrate_fork_child_data)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *want;
	pid_t pid;
	int status;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 13);
	want = map_filled(N * PAGE, 13);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	pid = test_fork();
	if (pid == 0)
		_exit(memcmp(p, want, N * PAGE) ? 1 : 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(want, N * PAGE);
}
END_TEST

/*
 * double_map: two devices, pages in one's memory seen from the other. On
 * kmod, the second is kmod0 opened again: each binding is a kernel
 * context with a device memory of its own.
 */
START_TEST(test_migrate_double_map)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct fixture f0, f1;
	uint8_t st[N], *p, *copy;
	SVA_OPTS_INIT(sva_dev_caps, caps);

	MIGRATE_OR_SKIP(&f0, 0);
	ck_assert_int_eq(sva_dev_open(test_on_sim() ? "sim1" : test_device(),
				      NULL, &f1.dev), 0);
	ck_assert_int_eq(sva_bind(f1.dev, NULL, &f1.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(f1.bind, &f1.pasid), 0);
	ck_assert_int_eq(sva_dev_caps(f1.dev, &caps), 0);
	ck_assert(caps.flags & SVA_CAP_MIGRATE);
	p = map_filled(N * PAGE, 14);
	ck_assert_int_eq(migrate(&f0, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	states_of(&f1, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_REMOTE), N);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_VALID), 0);
	/* Device 1 reads: the pages come back to host memory first. */
	copy = device_read(&f1, p, N * PAGE);
	check_pattern(copy, N * PAGE, 14);
	ck_assert_uint_eq(pages_present(p, N * PAGE), N);
	/* To device 0 again, then straight to device 1. */
	ck_assert_int_eq(migrate(&f0, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_int_eq(migrate(&f1, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	states_of(&f1, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_LOCAL), N);
	states_of(&f0, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_REMOTE), N);
	check_pattern(p, N * PAGE, 14);
	close_bind(&f1);
	close_bind(&f0);
	munmap(p, N * PAGE);
	munmap(copy, N * PAGE);
}
END_TEST

/* Device memory smaller than the buffer: LRU eviction, nothing lost. */
START_TEST(test_migrate_eviction)
{
	enum { N = 64, DEV = 16 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t st[N], *p;

	MIGRATE_OR_SKIP(&f, DEV * PAGE);
	p = map_filled(N * PAGE, 15);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_uint_eq(r.evicted, N - DEV);
	ck_assert_uint_eq(bind_stats(&f).evictions, N - DEV);
	states_of(&f, p, N * PAGE, st);
	/* The most recently moved ones stay. */
	ck_assert_uint_eq(count_state(st, N - DEV, SVA_PAGE_DEVICE_LOCAL), 0);
	ck_assert_uint_eq(count_state(st + N - DEV, DEV, SVA_PAGE_DEVICE_LOCAL), DEV);
	/* A device access makes a page recent: it survives the next round. */
	{
		uint8_t *c = device_read(&f, p + (N - DEV) * PAGE, PAGE);

		munmap(c, PAGE);
	}
	ck_assert_int_eq(migrate(&f, p, (DEV - 1) * PAGE, SVA_LOC_DEVICE, &r), 0);
	states_of(&f, p, N * PAGE, st);
	ck_assert(st[N - DEV] & SVA_PAGE_DEVICE_LOCAL);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_LOCAL), DEV);
	check_pattern(p, N * PAGE, 15);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* Transparent huge pages (where the kernel gives them) move too. */
START_TEST(test_migrate_thp)
{
	const size_t len = 4ul << 20;
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *raw, *p;
	int thp;

	MIGRATE_OR_SKIP(&f, 0);
	raw = map_fresh(2 * len, PROT_READ | PROT_WRITE);
	p = (uint8_t *)(((uintptr_t)raw + len - 1) & ~(len - 1));
	madvise(p, len, MADV_HUGEPAGE);
	fill_pattern(p, len, 28);
	thp = page_is_thp(p);
	ck_assert_int_eq(migrate(&f, p, len, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, len / PAGE);
	ck_assert_uint_eq(pages_present(p, len), 0);
	check_pattern(p, len / 2, 28);		/* half by CPU faults */
	ck_assert_int_eq(migrate(&f, p, len, SVA_LOC_HOST, &r), 0);
	ck_assert_uint_eq(r.moved, len / 2 / PAGE);
	ck_assert_uint_eq(r.already, len / 2 / PAGE);
	check_pattern(p, len, 28);
	fprintf(stderr, "%s: the range was %s huge pages\n", __func__,
		thp == 1 ? "in" : thp == 0 ? "not in" : "maybe in");
	close_bind(&f);
	munmap(raw, 2 * len);
}
END_TEST

/* mremap() moves pages in device memory with the range. */
START_TEST(test_migrate_mremap)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *q, *dst;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 16);
	dst = map_fresh(N * PAGE, PROT_NONE);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	q = mremap(p, N * PAGE, N * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ck_assert_ptr_eq(q, dst);
	check_pattern(q, N * PAGE, 16);
	close_bind(&f);
	munmap(q, N * PAGE);
}
END_TEST

/* mprotect() of pages in device memory: they come back all the same. */
START_TEST(test_migrate_mprotect)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 27);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	/* Read-only: a CPU read faults them back. */
	ck_assert_int_eq(mprotect(p, N / 2 * PAGE, PROT_READ), 0);
	check_pattern(p, N / 2 * PAGE, 27);
	/* PROT_NONE: moved back by sva_migrate(), readable once allowed. */
	ck_assert_int_eq(mprotect(p + N / 2 * PAGE, N / 2 * PAGE, PROT_NONE), 0);
	ck_assert_int_eq(migrate(&f, p + N / 2 * PAGE, N / 2 * PAGE,
				 SVA_LOC_HOST, &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	ck_assert_int_eq(mprotect(p, N * PAGE, PROT_READ | PROT_WRITE), 0);
	check_pattern(p, N * PAGE, 27);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* The application's own userfaultfd on a range: refused, clearly. */
START_TEST(test_migrate_foreign_uffd)
{
	enum { N = 4 };
	struct sva_migrate_result r;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct fixture f;
	uint8_t *p;
	int uffd;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 17);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "%s: no userfaultfd: skipped\n", __func__);
		goto out;
	}
	reg.range.start = (uintptr_t)p;
	reg.range.len = N * PAGE;
	ck_assert_int_eq(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_FOREIGN_UFFD], N);
	check_pattern(p, N * PAGE, 17);
	close(uffd);
out:
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* To host memory on a node: node 0 works, a node that isn't fails. */
START_TEST(test_migrate_host_node)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	char path[64];
	uint8_t *p;
	int nodes = 0;

	MIGRATE_OR_SKIP(&f, 0);
	for (;; nodes++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", nodes);
		if (access(path, F_OK))
			break;
	}
	p = map_filled(N * PAGE, 18);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	ck_assert_int_eq(migrate(&f, p, N / 2 * PAGE, SVA_LOC_HOST_NODE(0), &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	ck_assert_uint_eq(pages_present(p, N / 2 * PAGE), N / 2);
	if (nodes >= 1 && nodes < 1000) {
		/* The rest, to a node that doesn't exist: back, but not there. */
		ck_assert_int_eq(migrate(&f, p + N / 2 * PAGE, N / 2 * PAGE,
					 SVA_LOC_HOST_NODE(nodes), &r), N / 2);
		ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_HOST_NODE], N / 2);
	}
	check_pattern(p, N * PAGE, 18);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* SVA_OP_PREFETCH: the queued form completes like any descriptor. */
START_TEST(test_migrate_prefetch)
{
	enum { N = 32 };
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t st[N], *p;
	SVA_OPTS_INIT(sva_dev_caps, caps);

	MIGRATE_OR_SKIP(&f, 0);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	ck_assert(caps.ops & (1u << SVA_OP_PREFETCH));
	ck_assert_uint_ge(caps.devmem_size, PAGE);
	p = map_filled(N * PAGE, 19);
	d = desc_make(&f, SVA_OP_PREFETCH, 0, p, NULL, N * PAGE);
	d.pattern = SVA_LOC_DEVICE;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, N);
	ck_assert_uint_eq(c.bytes_done, N * PAGE);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_DEVICE_LOCAL), N);
	d.pattern = SVA_LOC_HOST;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(pages_present(p, N * PAGE), N);
	/* Malformed: unaligned, a dst, no target. */
	d.src++;
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), -EINVAL);
	d.src--;
	d.pattern = SVA_LOC_NONE;
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), -EINVAL);
	/* Shared memory: the prefetch fails, the data stays. */
	{
		uint8_t *sh = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		sh[0] = 42;
		d = desc_make(&f, SVA_OP_PREFETCH, 0, sh, NULL, PAGE);
		d.pattern = SVA_LOC_DEVICE;
		c = run1(&f, &d);
		ck_assert_int_eq(c.status, SVA_STATUS_FAULT_FAILURE);
		ck_assert_uint_eq(sh[0], 42);
		munmap(sh, PAGE);
	}
	check_pattern(p, N * PAGE, 19);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* ---------------------------------------------------------- attributes */

static uint64_t get1(struct fixture *f, void *p, size_t len, uint32_t type)
{
	struct sva_range_attr a = { .type = type, .value = 12345 };

	ck_assert_int_eq(sva_range_get_attr(f->bind, (uintptr_t)p, len, &a, 1), 0);
	return a.value;
}

static int set1(struct fixture *f, void *p, size_t len, uint32_t type,
		uint64_t value)
{
	struct sva_range_attr a = { .type = type, .value = value };

	return sva_range_set_attr(f->bind, (uintptr_t)p, len, &a, 1);
}

START_TEST(test_migrate_attr_intersection)
{
	enum { N = 8 };
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 21);
	for (uint32_t t = 1; t < SVA_ATTR_MAX; t++)
		ck_assert_uint_eq(get1(&f, p, N * PAGE, t), 0);
	ck_assert_int_eq(set1(&f, p, N / 2 * PAGE, SVA_ATTR_DEVICE_READ_ONLY, 1), 0);
	ck_assert_uint_eq(get1(&f, p, N / 2 * PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	ck_assert_uint_eq(get1(&f, p + PAGE, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	ck_assert_uint_eq(get1(&f, p, N * PAGE, SVA_ATTR_DEVICE_READ_ONLY), 0);
	/* Split in the middle: clear page 1 only. */
	ck_assert_int_eq(set1(&f, p + PAGE, PAGE, SVA_ATTR_DEVICE_READ_ONLY, 0), 0);
	ck_assert_uint_eq(get1(&f, p, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	ck_assert_uint_eq(get1(&f, p + PAGE, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 0);
	ck_assert_uint_eq(get1(&f, p + 2 * PAGE, 2 * PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	/* Locations: the same everywhere, else none. */
	ck_assert_int_eq(set1(&f, p, N / 2 * PAGE, SVA_ATTR_PREFERRED_LOC, SVA_LOC_DEVICE), 0);
	ck_assert_int_eq(set1(&f, p + N / 2 * PAGE, N / 2 * PAGE, SVA_ATTR_PREFERRED_LOC,
			      SVA_LOC_HOST_NODE(0)), 0);
	ck_assert_uint_eq(get1(&f, p, N / 2 * PAGE, SVA_ATTR_PREFERRED_LOC), SVA_LOC_DEVICE);
	ck_assert_uint_eq(get1(&f, p + N / 2 * PAGE, PAGE, SVA_ATTR_PREFERRED_LOC),
			  SVA_LOC_HOST_NODE(0));
	ck_assert_uint_eq(get1(&f, p, N * PAGE, SVA_ATTR_PREFERRED_LOC), SVA_LOC_NONE);
	/* Granularity: the smallest. */
	ck_assert_int_eq(set1(&f, p, N / 2 * PAGE, SVA_ATTR_GRANULARITY, 5), 0);
	ck_assert_int_eq(set1(&f, p + N / 2 * PAGE, N / 2 * PAGE, SVA_ATTR_GRANULARITY, 3), 0);
	ck_assert_uint_eq(get1(&f, p, N * PAGE, SVA_ATTR_GRANULARITY), 3);
	ck_assert_uint_eq(get1(&f, p, 2 * N * PAGE, SVA_ATTR_GRANULARITY), 0);
	/* Several at once; the other attributes are kept. */
	{
		struct sva_range_attr a[2] = {
			{ .type = SVA_ATTR_NO_ACCESS, .value = 1 },
			{ .type = SVA_ATTR_ACCESSED_BY, .value = 1 },
		};

		ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, N * PAGE, a, 2), 0);
		a[0].value = a[1].value = 7;
		ck_assert_int_eq(sva_range_get_attr(f.bind, (uintptr_t)p, N * PAGE, a, 2), 0);
		ck_assert_uint_eq(a[0].value, 1);
		ck_assert_uint_eq(a[1].value, 1);
		ck_assert_uint_eq(get1(&f, p, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	}
	/* munmap forgets them (as soon as it returns), of its range only. */
	ck_assert_int_eq(munmap(p + PAGE, (N - 1) * PAGE), 0);
	for (uint32_t t = 1; t < SVA_ATTR_MAX; t++)
		ck_assert_uint_eq(get1(&f, p + PAGE, (N - 1) * PAGE, t), 0);
	ck_assert_uint_eq(get1(&f, p, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 1);
	ck_assert_uint_eq(get1(&f, p, PAGE, SVA_ATTR_GRANULARITY), 5);
	close_bind(&f);
	munmap(p, PAGE);
}
END_TEST

START_TEST(test_migrate_attr_einval)
{
	struct sva_range_attr a = { .type = SVA_ATTR_DEVICE_READ_ONLY, .value = 1 };
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(2 * PAGE, 22);
#define BAD(...) do { struct sva_range_attr b = a; __VA_ARGS__; \
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, PAGE, &b, 1), -EINVAL); } while (0)
	BAD(b.type = 0);
	BAD(b.type = SVA_ATTR_MAX);
	BAD(b.type = 1000);
	BAD(b.rsvd = 1);
	BAD(b.value = 2);
	BAD(b.type = SVA_ATTR_GRANULARITY; b.value = 10);
	BAD(b.type = SVA_ATTR_PREFERRED_LOC; b.value = 99);
	{
		struct sva_range_attr two[2] = { a, { .type = 77 } };

		/* A bad one anywhere: nothing is set. */
		ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, PAGE, two, 2), -EINVAL);
		ck_assert_uint_eq(get1(&f, p, PAGE, SVA_ATTR_DEVICE_READ_ONLY), 0);
		ck_assert_int_eq(sva_range_get_attr(f.bind, (uintptr_t)p, PAGE, two, 2), -EINVAL);
	}
	a.type = 0;
	ck_assert_int_eq(sva_range_get_attr(f.bind, (uintptr_t)p, PAGE, &a, 1), -EINVAL);
	a.type = SVA_ATTR_DEVICE_READ_ONLY;
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p + 1, PAGE, &a, 1), -EINVAL);
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, 0, &a, 1), -EINVAL);
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, PAGE, &a, 0), -EINVAL);
	ck_assert_int_eq(sva_range_set_attr(f.bind, (uintptr_t)p, PAGE, NULL, 1), -EINVAL);
	ck_assert_int_eq(sva_range_set_attr(NULL, (uintptr_t)p, PAGE, &a, 1), -EINVAL);
	close_bind(&f);
	munmap(p, 2 * PAGE);
}
END_TEST

/* DEVICE_READ_ONLY and NO_ACCESS: the device faults INVALID there. */
START_TEST(test_migrate_attr_enforced)
{
	enum { N = 4 };
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t *src, *dst;

	MIGRATE_OR_SKIP(&f, 0);
	src = map_filled(N * PAGE, 23);
	dst = map_filled(N * PAGE, 24);
	ck_assert_int_eq(set1(&f, dst + 2 * PAGE, PAGE, SVA_ATTR_DEVICE_READ_ONLY, 1), 0);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst, N * PAGE);
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.bytes_done, 2 * PAGE);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 2 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	ck_assert(!memcmp(dst, src, 2 * PAGE));
	check_pattern_at(dst, 2 * PAGE, 2 * PAGE, 24);
	/* Reading a read-only range is fine. */
	d = desc_make(&f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT, dst, NULL, N * PAGE);
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.result, sva_crc32c(0, dst, N * PAGE));
	/* No access at all. */
	ck_assert_int_eq(set1(&f, src + PAGE, PAGE, SVA_ATTR_NO_ACCESS, 1), 0);
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	d = desc_make(&f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT, src, NULL, N * PAGE);
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.bytes_done, PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_READ);
	close_bind(&f);
	munmap(src, N * PAGE);
	munmap(dst, N * PAGE);
}
END_TEST

/* Granularity: a CPU fault brings its granule back with it. */
START_TEST(test_migrate_granularity)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p;
	volatile uint8_t sink;

	MIGRATE_OR_SKIP(&f, 0);
	p = mmap(NULL, 2 * N * PAGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	/* Aligned to N pages, so that the granule is the first 8. */
	p = (uint8_t *)(((uintptr_t)p + N * PAGE - 1) & ~(N * PAGE - 1));
	fill_pattern(p, N * PAGE, 25);
	ck_assert_int_eq(set1(&f, p, N * PAGE, SVA_ATTR_GRANULARITY, 3), 0);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	sink = p[2 * PAGE];
	(void)sink;
	ck_assert_uint_eq(pages_present(p, 8 * PAGE), 8);
	ck_assert_uint_eq(pages_present(p + 8 * PAGE, 8 * PAGE), 0);
	ck_assert_uint_eq(bind_stats(&f).cpu_fault_migrations, 1);
	check_pattern(p, N * PAGE, 25);
	close_bind(&f);
}
END_TEST

/*
 * Preferred location the device: a device fault migrates the page there
 * (by granule); ACCESSED_BY keeps it in place.
 */
START_TEST(test_migrate_fault_driven)
{
	enum { N = 16 };
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t st[N], *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	ck_assert_int_eq(set1(&f, p, N * PAGE, SVA_ATTR_PREFERRED_LOC, SVA_LOC_DEVICE), 0);
	ck_assert_int_eq(set1(&f, p + N / 2 * PAGE, N / 2 * PAGE,
			      SVA_ATTR_ACCESSED_BY, 1), 0);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, N * PAGE);
	d.pattern = 0x1122334455667788ull;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_ge(bind_stats(&f).page_requests, 1);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N / 2, SVA_PAGE_DEVICE_LOCAL), N / 2);
	ck_assert_uint_eq(count_state(st + N / 2, N / 2, SVA_PAGE_DEVICE_LOCAL), 0);
	ck_assert_uint_eq(bind_stats(&f).migrated_to_dev, N / 2);
	for (size_t i = 0; i < N * PAGE; i++)
		ck_assert_uint_eq(p[i], (uint8_t)(d.pattern >> (8 * (i % 8))));
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* ------------------------------------------------ NUMA placement */

/* Host NUMA nodes (node directories in sysfs, numbered from 0). */
static int host_nodes(void)
{
	char path[64];
	int n = 0;

	for (;; n++) {
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", n);
		if (access(path, F_OK))
			return n;
	}
}

/*
 * Placement needs @want nodes. Where the harness says the machine has
 * them (SVA_TEST_EXPECT_NODES: the test VM boots with two), fewer fail
 * the case instead of skipping it.
 */
static bool need_nodes(const char *who, int want)
{
	const char *expect = getenv("SVA_TEST_EXPECT_NODES");
	int have = host_nodes();

	if (have >= want)
		return true;
	ck_assert_msg(!expect || atoi(expect) < want,
		      "%d NUMA node(s) here, SVA_TEST_EXPECT_NODES=%s", have,
		      expect);
	fprintf(stderr, "%s: %d NUMA node(s), %d needed: skipped\n",
		who, have, want);
	return false;
}

/*
 * Where each page of [p, p + n pages) is: its node, or a negative errno
 * (-ENOENT: not present, as a page in device memory); a move_pages(2)
 * query (nodes NULL) moves nothing.
 */
static void nodes_of(const void *p, size_t n, int *node)
{
	void **addrs = malloc(n * sizeof(*addrs));

	ck_assert_ptr_nonnull(addrs);
	for (size_t i = 0; i < n; i++)
		addrs[i] = (uint8_t *)p + i * PAGE;
	ck_assert_int_eq(syscall(SYS_move_pages, 0, n, addrs, NULL, node, 0), 0);
	free(addrs);
}

static unsigned int count_on_node(const void *p, size_t n, int node)
{
	int *where = calloc(n, sizeof(*where));
	unsigned int c = 0;

	ck_assert_ptr_nonnull(where);
	nodes_of(p, n, where);
	for (size_t i = 0; i < n; i++)
		c += where[i] == node;
	free(where);
	return c;
}

/*
 * Run the calling thread on @node's CPUs only (its cpulist in sysfs), so
 * that what it touches first lands there, and what a fault brings back
 * without a preference too: the placement a case asks for is then
 * distinguishable from the default.
 */
static void run_on_node(int node)
{
	char path[80], list[256] = "", *s, *end;
	cpu_set_t set;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/cpulist",
		 node);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(list, sizeof(list), f));
	fclose(f);
	CPU_ZERO(&set);
	for (s = list; *s >= '0' && *s <= '9'; s = end + (*end == ',')) {
		long lo = strtol(s, &end, 10), hi = lo;

		if (*end == '-')
			hi = strtol(end + 1, &end, 10);
		for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
			CPU_SET((int)c, &set);
	}
	ck_assert_msg(CPU_COUNT(&set) > 0, "node %d has no CPU", node);
	ck_assert_int_eq(sched_setaffinity(0, sizeof(set), &set), 0);
}

/*
 * sva_migrate() to SVA_LOC_HOST_NODE(n) lands every page on node n, from
 * the device and from another host node: node 1 and, as the control, node
 * 0, each time from pages first touched on the other node.
 */
START_TEST(test_migrate_host_node_placement)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct fixture f;
	cpu_set_t saved;
	uint8_t *p;

	if (!need_nodes(__func__, 2))
		return;
	MIGRATE_OR_SKIP(&f, 0);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	for (int node = 1; node >= 0; node--) {
		unsigned int there;

		/* First touched on the other node (where the CPU is). */
		run_on_node(!node);
		p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
		fill_pattern(p, N * PAGE, 40 + node);
		there = count_on_node(p, N, node);
		/* Host to host: those not there move, the others were. */
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST_NODE(node),
					 &r), 0);
		ck_assert_uint_eq(r.moved, N - there);
		ck_assert_uint_eq(r.already, there);
		ck_assert_uint_eq(count_on_node(p, N, node), N);
		/* Back to the other node, then to the device: none on a node. */
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST_NODE(!node),
					 &r), 0);
		ck_assert_uint_eq(count_on_node(p, N, !node), N);
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
		ck_assert_uint_eq(count_on_node(p, N, 0) +
				  count_on_node(p, N, 1), 0);
		/* Device to the node: all of them, there, data exact. */
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_HOST_NODE(node),
					 &r), 0);
		ck_assert_uint_eq(r.moved, N);
		ck_assert_uint_eq(count_on_node(p, N, node), N);
		check_pattern(p, N * PAGE, 40 + node);
		munmap(p, N * PAGE);
	}
	ck_assert_int_eq(sched_setaffinity(0, sizeof(saved), &saved), 0);
	close_bind(&f);
}
END_TEST

/*
 * SVA_ATTR_PREFERRED_LOC = SVA_LOC_HOST_NODE(n): pages moved to the
 * device come back on node n when the CPU touches them, whichever node
 * the touching CPU is on: node 1 and, as the control, node 0, with the
 * CPU on the other node each time; then a preferred node that doesn't
 * exist, where the pages come back anyway (on whichever node), data
 * exact.
 */
START_TEST(test_migrate_preferred_node)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	cpu_set_t saved;
	int nodes = host_nodes();
	uint8_t *p;

	if (!need_nodes(__func__, 2))
		return;
	MIGRATE_OR_SKIP(&f, 0);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(saved), &saved), 0);
	for (int node = 1; node >= -1; node--) {
		int want = node >= 0 ? node : nodes;	/* -1: none such */
		int cpu_node = node >= 0 ? !node : 0;
		uint64_t sum = 0;

		run_on_node(cpu_node);
		p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
		fill_pattern(p, N * PAGE, 50 + want);
		ck_assert_int_eq(set1(&f, p, N * PAGE, SVA_ATTR_PREFERRED_LOC,
				      SVA_LOC_HOST_NODE(want)), 0);
		ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
		ck_assert_uint_eq(r.moved, N);
		s0 = bind_stats(&f);
		/* A CPU read of each page, from the other node. */
		for (size_t i = 0; i < N; i++)
			sum += ((volatile uint8_t *)p)[i * PAGE];
		(void)sum;
		s1 = bind_stats(&f);
		ck_assert_uint_ge(s1.cpu_fault_migrations - s0.cpu_fault_migrations, 1);
		ck_assert_uint_eq(s1.migrated_to_host - s0.migrated_to_host, N);
		if (node >= 0)
			ck_assert_uint_eq(count_on_node(p, N, node), N);
		else
			ck_assert_uint_eq(pages_present(p, N * PAGE), N);
		check_pattern(p, N * PAGE, 50 + want);
		munmap(p, N * PAGE);
	}
	ck_assert_int_eq(sched_setaffinity(0, sizeof(saved), &saved), 0);
	close_bind(&f);
}
END_TEST

/* ---------------------------------------------------------- races */

/*
 * Caught a lost write: a CPU fault found no page in device memory and
 * filled a zero page after dm_lock went, while a migration moved the page
 * out: the fill now happens under dm_lock.
 */
START_TEST(test_migrate_race_cpu_writer)
{
	enum { N = 32, MIGRATIONS = 300 };
	struct sva_migrate_result r;
	uint64_t t0;
	int i;
	uint64_t seen = 0;
	struct race_writer w = { .pages = N };
	struct fixture f;
	pthread_t t;

	MIGRATE_OR_SKIP(&f, 0);
	w.p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	memset(w.p, 0, N * PAGE);
	ck_assert_int_eq(pthread_create(&t, NULL, race_writer_fn, &w), 0);
	t0 = race_now_s();
	for (i = 0; i < MIGRATIONS && !race_over(t0, (unsigned int)i); i++) {
		ck_assert_int_ge(migrate(&f, w.p, N * PAGE, i & 1 ? SVA_LOC_HOST :
					 SVA_LOC_DEVICE, &r), 0);
		/*
		 * Device reads race too: a count the writer wrote, not junk,
		 * checked against its final count once it is joined. (In the
		 * stock TCG VM, 3 CI runs of ~7 saw a value above the count
		 * loaded right after the read, never on the host; cause not
		 * found yet, see the closing note of 2026-11-24.)
		 */
		if (i % 8 == 7) {
			uint8_t *c = device_read(&f, w.p, N * PAGE);

			for (int k = 0; k < N; k++)
				seen = MAX_LEN(seen,
					       ((uint64_t *)c)[k * PAGE / 8]);
			munmap(c, N * PAGE);
		}
	}
	atomic_store(&w.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_le(seen, atomic_load(&w.rounds));
	ck_assert_uint_eq(w.lost, 0);
	for (int k = 0; k < N; k++)
		ck_assert_uint_eq(w.p[k * PAGE / 8], atomic_load(&w.rounds));
	fprintf(stderr, "%s: %d migrations raced %u rounds of CPU writes, %llu CPU faults moved pages back\n",
		__func__, i, atomic_load(&w.rounds),
		(unsigned long long)bind_stats(&f).cpu_fault_migrations);
	close_bind(&f);
	munmap(w.p, N * PAGE);
}
END_TEST

struct migrator {
	struct fixture *f;
	void *p;
	size_t len;
	atomic_bool stop;
	unsigned int rounds;
	int err;
};

/* Migrate back and forth until told to stop. */
static void *migrator_fn(void *arg)
{
	struct migrator *m = arg;
	SVA_OPTS_INIT(sva_migrate_opts, o);
	struct sva_migrate_result r = { .sz = sizeof(r) };

	while (!atomic_load(&m->stop)) {
		o.to = m->rounds++ & 1 ? SVA_LOC_HOST : SVA_LOC_DEVICE;
		int ret = sva_migrate(m->f->bind, (uintptr_t)m->p, m->len, &o, &r);

		if (ret < 0)
			m->err = ret;
	}
	return NULL;
}

/* Device writes racing migrations: each lands whole, none is lost. */
START_TEST(test_migrate_race_device_writer)
{
	enum { N = 32 };
	struct migrator m = { .len = N * PAGE };
	struct fixture f;
	pthread_t t;
	uint64_t *p, t0, k;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	memset(p, 0, N * PAGE);
	m.f = &f;
	m.p = p;
	ck_assert_int_eq(pthread_create(&t, NULL, migrator_fn, &m), 0);
	t0 = race_now_s();
	for (k = 1; k <= 200 && !race_over(t0, (unsigned int)k - 1); k++) {
		struct sva_desc d = desc_make(&f, SVA_OP_FILL,
					      SVA_DESC_BLOCK_ON_FAULT, NULL, p,
					      N * PAGE);
		struct sva_completion c;

		d.pattern = k * 0x0101010101010101ull;
		c = run1(&f, &d);
		ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
		/* Every word: the CPU faults pages back as it reads. */
		for (size_t i = 0; i < N * PAGE / 8; i += 61)
			ck_assert_uint_eq(p[i], d.pattern);
	}
	atomic_store(&m.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(m.err, 0);
	fprintf(stderr, "%s: %llu device fills raced %u migrations\n",
		__func__, (unsigned long long)k - 1, m.rounds);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* MADV_DONTNEED racing migrations: discarded pages read zero, others
 * keep their data (no page in device memory survives its discard). */
START_TEST(test_migrate_race_discard)
{
	enum { N = 32 };
	struct migrator m = { .len = N * PAGE };
	struct fixture f;
	pthread_t t;
	uint8_t *p;
	uint64_t t0;
	unsigned int k;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	m.f = &f;
	m.p = p;
	ck_assert_int_eq(pthread_create(&t, NULL, migrator_fn, &m), 0);
	t0 = race_now_s();
	for (k = 0; k < 100 && !race_over(t0, k); k++) {
		size_t at = (k % 4) * (N / 4) * PAGE;

		fill_pattern(p, N * PAGE, k);
		ck_assert_int_eq(madvise(p + at, N / 4 * PAGE, MADV_DONTNEED), 0);
		for (size_t i = 0; i < N / 4 * PAGE; i += 512)
			ck_assert_uint_eq(p[at + i], 0);
		ck_assert_uint_eq(p[at + N / 4 * PAGE - 1], 0);
		if (at)
			check_pattern_at(p, 0, at, k);
		check_pattern_at(p, at + N / 4 * PAGE, N * PAGE - at - N / 4 * PAGE, k);
	}
	atomic_store(&m.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(m.err, 0);
	fprintf(stderr, "%s: %u discards raced %u migrations\n", __func__,
		k, m.rounds);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* Device writes to pages in its memory land there, then come back. */
START_TEST(test_migrate_device_writes_local)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t *p;

	MIGRATE_OR_SKIP(&f, 0);
	p = map_filled(N * PAGE, 26);
	ck_assert_int_eq(migrate(&f, p, N * PAGE, SVA_LOC_DEVICE, &r), 0);
	s0 = bind_stats(&f);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p + 3,
		      N * PAGE - 6);
	d.pattern = 0x0123456789abcdefull;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.page_requests, s0.page_requests);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	for (size_t i = 0; i < N * PAGE - 6; i++)
		ck_assert_uint_eq(p[3 + i], (uint8_t)(d.pattern >> (8 * (i % 8))));
	/* The bytes outside: untouched. */
	{
		uint8_t want[N * PAGE];

		fill_pattern(want, sizeof(want), 26);
		ck_assert(!memcmp(p, want, 3));
		ck_assert(!memcmp(p + N * PAGE - 3, want + N * PAGE - 3, 3));
	}
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_migrate_unsupported, 0, 2);
	tcase_add_test(tc, test_migrate_bad_args);
	tcase_add_test(tc, test_migrate_basic);
	tcase_add_test(tc, test_regress_cpu_fault_back_seq_before_return);
	tcase_add_test(tc, test_migrate_fault);
	tcase_add_test(tc, test_migrate_release);
	tcase_add_test(tc, test_migrate_shared);
	tcase_add_test(tc, test_migrate_unbind_own_pages);
	tcase_add_test(tc, test_migrate_mixed);
	tcase_add_test(tc, test_migrate_multiple);
	tcase_add_test(tc, test_migrate_cow_in_device);
	tcase_add_test(tc, test_migrate_fork_child_data);
	tcase_add_test(tc, test_migrate_double_map);
	tcase_add_test(tc, test_migrate_eviction);
	tcase_add_test(tc, test_migrate_mremap);
	tcase_add_test(tc, test_migrate_thp);
	tcase_add_test(tc, test_migrate_mprotect);
	tcase_add_test(tc, test_migrate_foreign_uffd);
	tcase_add_test(tc, test_migrate_host_node);
	tcase_add_test(tc, test_migrate_host_node_placement);
	tcase_add_test(tc, test_migrate_preferred_node);
	tcase_add_test(tc, test_migrate_prefetch);
	tcase_add_test(tc, test_migrate_attr_intersection);
	tcase_add_test(tc, test_migrate_attr_einval);
	tcase_add_test(tc, test_migrate_attr_enforced);
	tcase_add_test(tc, test_migrate_granularity);
	tcase_add_test(tc, test_migrate_fault_driven);
	tcase_add_test(tc, test_migrate_race_cpu_writer);
	tcase_add_test(tc, test_migrate_race_device_writer);
	tcase_add_test(tc, test_migrate_race_discard);
	tcase_add_test(tc, test_migrate_device_writes_local);
	suite_add_tcase(s, tc);
	return s;
}
