// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Exclusive (atomic) device access to host pages, sva_make_exclusive(3)
 * (issue 8): ports of hmm-tests' exclusive, exclusive_mprotect and
 * exclusive_cow to the libsva API, plus revocation by CPU reads, writes
 * and kernel accesses, device writes to held pages, snapshot states,
 * statistics, munmap/discard/unbind of held pages, pages in device memory,
 * the pages refused and why, bad input, fork, a CPU writer racing grants,
 * and the call from inside an invalidation callback.
 *
 * Runs on every backend. A device without SVA_CAP_EXCLUSIVE (kmod0 on a
 * kernel without device-private memory, a host kernel without UFFDIO_MOVE
 * for sim, or any device opened with SVA_DEV_NO_DEVMEM) must answer
 * -EOPNOTSUPP (test_exclusive_unsupported); the other cases say they skip
 * there, and only there.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

static bool excl_open(struct fixture *f, const struct sva_dev_opts *o,
		      const char *who)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);

	open_bind(f, o);
	ck_assert_int_eq(sva_dev_caps(f->dev, &caps), 0);
	if (caps.flags & SVA_CAP_EXCLUSIVE)
		return true;
	fprintf(stderr, "%s: %s has no SVA_CAP_EXCLUSIVE (no exclusive access on this backend/kernel): skipped\n",
		who, test_device());
	close_bind(f);
	return false;
}

#define EXCL_OR_SKIP(f) do { if (!excl_open(f, NULL, __func__)) return; } while (0)

static int make_excl(struct fixture *f, void *p, size_t len,
		     struct sva_migrate_result *r)
{
	memset(r, 0, sizeof(*r));
	r->sz = sizeof(*r);
	return sva_make_exclusive(f->bind, (uintptr_t)p, len, 0, r);
}

static uint64_t refused(const struct sva_migrate_result *r)
{
	uint64_t sum = 0;

	for (int i = 0; i < SVA_MIGRATE_REASON_MAX; i++)
		sum += r->not_moved[i];
	return sum;
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

/* Every page of the range held (EXCLUSIVE, VALID, WRITE) or none. */
static void check_held(struct fixture *f, void *p, size_t n, bool held)
{
	uint8_t *st = malloc(n);

	ck_assert_ptr_nonnull(st);
	states_of(f, p, n * PAGE, st);
	for (size_t i = 0; i < n; i++) {
		if (held)
			ck_assert_uint_eq(st[i], SVA_PAGE_VALID | SVA_PAGE_WRITE |
					  SVA_PAGE_EXCLUSIVE);
		else
			ck_assert(!(st[i] & SVA_PAGE_EXCLUSIVE));
	}
	free(st);
}

/* ------------------------------------------------ without the cap */

/*
 * -EOPNOTSUPP where the device has no SVA_CAP_EXCLUSIVE. Case 1: any
 * backend, opened with SVA_DEV_NO_DEVMEM (a device without device-private
 * memory support: exclusive entries are part of it in the kernel, and the
 * sim builds both on its device-memory arenas). Case 0: the default
 * device, where the backend or kernel lacks it (else skipped, saying so).
 */
START_TEST(test_exclusive_unsupported)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .flags = SVA_DEV_NO_DEVMEM);
	SVA_OPTS_INIT(sva_dev_caps, caps);
	struct sva_migrate_result r = { .sz = sizeof(r), .moved = 77 };
	struct sva_stats s;
	struct fixture f;
	uint8_t *p = map_filled(4 * PAGE, 3);

	open_bind(&f, _i ? &o : NULL);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	if (!_i && (caps.flags & SVA_CAP_EXCLUSIVE)) {
		fprintf(stderr, "%s: %s has SVA_CAP_EXCLUSIVE: case 0 skipped\n",
			__func__, test_device());
		close_bind(&f);
		munmap(p, 4 * PAGE);
		return;
	}
	ck_assert(!(caps.flags & SVA_CAP_EXCLUSIVE));
	ck_assert_int_eq(sva_make_exclusive(f.bind, (uintptr_t)p, PAGE, 0, &r),
			 -EOPNOTSUPP);
	ck_assert_uint_eq(r.moved, 77);
	ck_assert_int_eq(sva_make_exclusive(f.bind, (uintptr_t)p, 4 * PAGE, 0,
					    NULL), -EOPNOTSUPP);
	s = bind_stats(&f);
	ck_assert_uint_eq(s.exclusive_grants, 0);
	ck_assert_uint_eq(pages_present(p, 4 * PAGE), 4);
	check_pattern(p, 4 * PAGE, 3);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

START_TEST(test_exclusive_bad_args)
{
	struct sva_migrate_result r = { .sz = sizeof(size_t) - 1, .moved = 77 };
	struct fixture f;
	uint8_t *p;

	EXCL_OR_SKIP(&f);
	p = map_filled(4 * PAGE, 1);
#define BAD(a, l, fl, res) \
	ck_assert_int_eq(sva_make_exclusive(f.bind, (a), (l), (fl), (res)), -EINVAL)
	BAD((uintptr_t)p + 1, PAGE, 0, NULL);
	BAD((uintptr_t)p, PAGE + 1, 0, NULL);
	BAD((uintptr_t)p, PAGE - 1, 0, NULL);
	BAD((uintptr_t)p, 0, 0, NULL);
	BAD(UINT64_MAX & ~(PAGE - 1), 2 * PAGE, 0, NULL);	/* wraps */
	BAD((uintptr_t)p, PAGE, 1, NULL);
	BAD((uintptr_t)p, PAGE, 1u << 31, NULL);
	BAD((uintptr_t)p, PAGE, 0, &r);			/* res->sz */
	r.sz = 0;
	BAD((uintptr_t)p, PAGE, 0, &r);
	ck_assert_uint_eq(r.moved, 77);
#undef BAD
	ck_assert_int_eq(sva_make_exclusive(NULL, (uintptr_t)p, PAGE, 0, NULL),
			 -EINVAL);
	/* Nothing was held by any of them. */
	ck_assert_uint_eq(bind_stats(&f).exclusive_grants, 0);
	ck_assert_uint_eq(pages_present(p, 4 * PAGE), 4);
	check_held(&f, p, 4, false);
	/* A result as an older caller knows it: filled up to its sz. */
	{
		struct sva_migrate_result small;

		memset(&small, 0xee, sizeof(small));
		small.sz = offsetof(struct sva_migrate_result, already);
		ck_assert_int_eq(sva_make_exclusive(f.bind, (uintptr_t)p, PAGE,
						    0, &small), 0);
		ck_assert_uint_eq(small.moved, 1);
		ck_assert_uint_eq(small.already, 0xeeeeeeeeeeeeeeeeull);
	}
	/* And without one. */
	ck_assert_int_eq(sva_make_exclusive(f.bind, (uintptr_t)p + PAGE, PAGE,
					    0, NULL), 0);
	ck_assert_uint_eq(bind_stats(&f).exclusive_grants, 2);
	check_pattern(p, 4 * PAGE, 1);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}
END_TEST

/* ---------------------------------------------------- hmm-tests ports */

/*
 * exclusive: hold, the device reads, the CPU increments every word (each
 * access revokes), the device holds none after (CHECK_EXCLUSIVE).
 */
START_TEST(test_exclusive_basic)
{
	enum { N = 64 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint32_t *p, *copy;

	EXCL_OR_SKIP(&f);
	p = map_fresh(N * PAGE, PROT_READ | PROT_WRITE);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		p[i] = i;
	s0 = bind_stats(&f);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_uint_eq(r.already, 0);
	ck_assert_uint_eq(refused(&r), 0);
	/* Host pages, no CPU mapping; no device memory taken. */
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	check_held(&f, p, N, true);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_grants - s0.exclusive_grants, N);
	ck_assert_uint_eq(s1.exclusive_revokes, s0.exclusive_revokes);
	ck_assert_uint_eq(s1.migrated_to_dev, s0.migrated_to_dev);
	/* The device reads them: no translation needed. */
	copy = (uint32_t *)device_read(&f, p, N * PAGE);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(copy[i], i);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.page_requests, s0.page_requests);
	ck_assert_uint_eq(s1.exclusive_revokes, s0.exclusive_revokes);
	check_held(&f, p, N, true);
	/* The CPU takes them back. */
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(p[i]++, i);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(p[i], i + 1);
	check_held(&f, p, N, false);
	ck_assert_uint_eq(pages_present(p, N * PAGE), N);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes, N);
	{
		struct sva_stats ds = { .sz = sizeof(ds) };

		ck_assert_int_eq(sva_dev_stats(f.dev, &ds), 0);
		ck_assert_uint_eq(ds.exclusive_grants, s1.exclusive_grants);
		ck_assert_uint_eq(ds.exclusive_revokes, s1.exclusive_revokes);
	}
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(copy, N * PAGE);
}
END_TEST

/* exclusive_mprotect: read-only after the grant: a device write faults. */
START_TEST(test_exclusive_mprotect)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t *p, *copy, st[N];

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 5);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	copy = device_read(&f, p, N * PAGE);
	check_pattern(copy, N * PAGE, 5);
	ck_assert_int_eq(mprotect(p, N * PAGE, PROT_READ), 0);
	/* A device write: FAULT_INVALID at the first byte, nothing written. */
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p,
		      N * PAGE);
	d.pattern = 0x5a5a5a5a5a5a5a5aull;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_FAULT_INVALID);
	ck_assert_uint_eq(c.bytes_done, 0);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)p);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	/* Not writable for the device any more, wherever the page is. */
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_WRITE), 0);
	/* Reads still work; the CPU reads the data exact. */
	munmap(copy, N * PAGE);
	copy = device_read(&f, p, N * PAGE);
	check_pattern(copy, N * PAGE, 5);
	check_pattern(p, N * PAGE, 5);
	ck_assert_int_eq(mprotect(p, N * PAGE, PROT_READ | PROT_WRITE), 0);
	p[0] ^= 1;
	p[0] ^= 1;
	check_pattern(p, N * PAGE, 5);
	check_held(&f, p, N, false);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(copy, N * PAGE);
}
END_TEST

/* exclusive_cow: fork() revokes; parent and child see their own data. */
START_TEST(test_exclusive_cow)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint32_t *p;
	pid_t pid;
	int status;

	EXCL_OR_SKIP(&f);
	p = map_fresh(N * PAGE, PROT_READ | PROT_WRITE);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		p[i] = i;
	s0 = bind_stats(&f);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	pid = test_fork();
	if (pid == 0) {
		bool ok = true;

		/* No allocation here (ASan's allocator after fork). */
		for (uint32_t i = 0; i < N * PAGE / 4 && ok; i++)
			ok = p[i]++ == i;
		for (uint32_t i = 0; i < N * PAGE / 4 && ok; i++)
			ok = p[i] == i + 1;
		_exit(ok ? 0 : 1);
	}
	/* The parent increments too: copy-on-write for both. */
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(p[i]++, i);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(p[i], i + 1);
	/* Each page revoked once (at fork, or by the parent's access). */
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_grants - s0.exclusive_grants, N);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes, N);
	check_held(&f, p, N, false);
	/* Held again after: the parent's pages are its own. */
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	for (uint32_t i = 0; i < N * PAGE / 4; i++)
		ck_assert_uint_eq(p[i], i + 1);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* ------------------------------------------------------- revocation */

/* CPU reads revoke (the pages read only), and kernel accesses too. */
START_TEST(test_exclusive_cpu_read_revokes)
{
	enum { N = 32 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint8_t st[N], *p;
	volatile uint8_t sink = 0;
	int fds[2];
	uint8_t buf[64];

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 9);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	s0 = bind_stats(&f);
	for (size_t i = 0; i < N / 2; i++)
		sink += ((volatile uint8_t *)p)[i * PAGE + 5];
	(void)sink;
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes, N / 2);
	ck_assert_uint_eq(pages_present(p, N / 2 * PAGE), N / 2);
	ck_assert_uint_eq(pages_present(p + N / 2 * PAGE, N / 2 * PAGE), 0);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N / 2, SVA_PAGE_EXCLUSIVE), 0);
	ck_assert_uint_eq(count_state(st + N / 2, N / 2, SVA_PAGE_EXCLUSIVE),
			  N / 2);
	/* A kernel read of a held page (write(2) from it) revokes it... */
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(write(fds[1], p + 20 * PAGE, sizeof(buf)), sizeof(buf));
	ck_assert_int_eq(read(fds[0], buf, sizeof(buf)), sizeof(buf));
	check_pattern_at(p, 20 * PAGE, sizeof(buf), 9);
	ck_assert(!memcmp(buf, p + 20 * PAGE, sizeof(buf)));
	/* ...and a kernel write (read(2) into one) lands whole. */
	memset(buf, 0xa5, sizeof(buf));
	ck_assert_int_eq(write(fds[1], buf, sizeof(buf)), sizeof(buf));
	ck_assert_int_eq(read(fds[0], p + 24 * PAGE + 100, sizeof(buf)),
			 sizeof(buf));
	close(fds[0]);
	close(fds[1]);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes,
			  N / 2 + 2);
	ck_assert(!memcmp(p + 24 * PAGE + 100, buf, sizeof(buf)));
	check_pattern_at(p, 0, 24 * PAGE + 100, 9);
	check_pattern_at(p, 24 * PAGE + 100 + sizeof(buf),
			 (N - 24) * PAGE - 100 - sizeof(buf), 9);
	check_held(&f, p, N, false);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* CPU writes revoke; each lands, the bytes around it are exact. */
START_TEST(test_exclusive_cpu_write_revokes)
{
	enum { N = 32 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint8_t st[N], *p, *want;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 10);
	want = map_filled(N * PAGE, 10);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	s0 = bind_stats(&f);
	for (size_t i = 0; i < N; i += 2) {
		p[i * PAGE + i] = (uint8_t)~want[i * PAGE + i];
		want[i * PAGE + i] = (uint8_t)~want[i * PAGE + i];
	}
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes, N / 2);
	states_of(&f, p, N * PAGE, st);
	for (size_t i = 0; i < N; i++)
		ck_assert_uint_eq(!!(st[i] & SVA_PAGE_EXCLUSIVE), i & 1);
	ck_assert(!memcmp(p, want, N * PAGE));
	ck_assert_uint_eq(bind_stats(&f).exclusive_revokes - s0.exclusive_revokes,
			  N);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(want, N * PAGE);
}
END_TEST

/*
 * A device write to held pages lands in them, byte exact, without a
 * translation and without revoking them; the CPU reads it after.
 */
START_TEST(test_exclusive_device_write)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct sva_completion c;
	struct sva_desc d;
	struct fixture f;
	uint8_t *p, *want;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 26);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	s0 = bind_stats(&f);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p + 3,
		      N * PAGE - 6);
	d.pattern = 0x0123456789abcdefull;
	c = run1(&f, &d);
	ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c.bytes_done, N * PAGE - 6);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.page_requests, s0.page_requests);
	ck_assert_uint_eq(s1.exclusive_revokes, s0.exclusive_revokes);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	check_held(&f, p, N, true);
	/* A device copy between two held ranges, too. */
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p + 3,
		      p + N / 2 * PAGE + 11, 100);
	ck_assert_int_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(bind_stats(&f).exclusive_revokes, s0.exclusive_revokes);
	/* The CPU reads what the device wrote, and only that. */
	want = map_filled(N * PAGE, 26);
	for (size_t i = 0; i < N * PAGE - 6; i++)
		want[3 + i] = (uint8_t)(0x0123456789abcdefull >> (8 * (i % 8)));
	memmove(want + N / 2 * PAGE + 11, want + 3, 100);
	ck_assert(!memcmp(p, want, N * PAGE));
	ck_assert_uint_eq(bind_stats(&f).exclusive_revokes - s0.exclusive_revokes,
			  N);
	close_bind(&f);
	munmap(p, N * PAGE);
	munmap(want, N * PAGE);
}
END_TEST

/* ------------------------------------------------ states and stats */

/*
 * Snapshots: VALID|WRITE before (what the kernel mapped), EXCLUSIVE added
 * by the grant (the mirror told by an invalidation), gone with the revoke.
 */
START_TEST(test_exclusive_snapshot_states)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct sva_mirror *m;
	struct fixture f;
	uint8_t st[N], *p;
	uint64_t seq;
	volatile uint8_t sink;

	EXCL_OR_SKIP(&f);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	memset(p, 0x42, N * PAGE);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, N * PAGE,
					     NULL, &m), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, N * PAGE, st, 0), 0);
	for (size_t i = 0; i < N; i++)
		ck_assert_uint_eq(st[i], anon_rw_state(p + i * PAGE));
	seq = sva_mirror_read_begin(m);
	ck_assert_int_eq(make_excl(&f, p + PAGE, (N - 2) * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N - 2);
	/* The grant changed what the device sees: the mirror heard of it. */
	ck_assert(sva_mirror_read_retry(m, seq));
	seq = sva_mirror_read_begin(m);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, N * PAGE, st, 0), 0);
	ck_assert(!sva_mirror_read_retry(m, seq));
	ck_assert_uint_eq(st[0], anon_rw_state(p));
	ck_assert_uint_eq(st[N - 1], anon_rw_state(p + (N - 1) * PAGE));
	for (size_t i = 1; i < N - 1; i++)
		ck_assert_uint_eq(st[i], SVA_PAGE_VALID | SVA_PAGE_WRITE |
				  SVA_PAGE_EXCLUSIVE);
	/* Revoked by a CPU read: the mirror is told, the flag goes. */
	sink = p[3 * PAGE];
	(void)sink;
	ck_assert(sva_mirror_read_retry(m, seq));
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, N * PAGE, st, 0), 0);
	ck_assert_uint_eq(st[3], anon_rw_state(p + 3 * PAGE));
	ck_assert(!(st[3] & SVA_PAGE_EXCLUSIVE));
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_EXCLUSIVE), N - 3);
	/* A snapshot that faults for writing keeps them held. */
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, N * PAGE, st,
					     SVA_ACCESS_WRITE), 0);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_EXCLUSIVE), N - 3);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_WRITE), N);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	for (size_t i = 0; i < N * PAGE; i++)
		ck_assert_uint_eq(p[i], 0x42);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* Grants count pages made exclusive, not those held already. */
START_TEST(test_exclusive_stats)
{
	enum { N = 16 };
	struct sva_migrate_result r;
	struct sva_stats s0, s1;
	struct fixture f;
	uint8_t *p;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 31);
	s0 = bind_stats(&f);
	ck_assert_int_eq(make_excl(&f, p, N / 2 * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	/* Overlapping: half held already. */
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	ck_assert_uint_eq(r.already, N / 2);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, 0);
	ck_assert_uint_eq(r.already, N);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_grants - s0.exclusive_grants, N);
	ck_assert_uint_eq(s1.exclusive_revokes, s0.exclusive_revokes);
	/* No migration happened: nothing counted there. */
	ck_assert_uint_eq(s1.migrated_to_dev, s0.migrated_to_dev);
	ck_assert_uint_eq(s1.migrated_to_host, s0.migrated_to_host);
	ck_assert_uint_eq(s1.cpu_fault_migrations, s0.cpu_fault_migrations);
	ck_assert_uint_eq(s1.evictions, s0.evictions);
	check_pattern(p, N * PAGE, 31);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_revokes - s0.exclusive_revokes, N);
	ck_assert_uint_eq(s1.cpu_fault_migrations, s0.cpu_fault_migrations);
	ck_assert_uint_eq(s1.migrated_to_host, s0.migrated_to_host);
	/* Reset clears them too. */
	ck_assert_int_eq(sva_bind_stats_reset(f.bind), 0);
	s1 = bind_stats(&f);
	ck_assert_uint_eq(s1.exclusive_grants, 0);
	ck_assert_uint_eq(s1.exclusive_revokes, 0);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* ------------------------------------------- munmap, discard, unbind */

/*
 * munmap and MADV_DONTNEED drop held pages (discarded ones read zero),
 * the others stay held; held pages take no device memory (a device
 * memory of 4 pages holds 64 of them, nothing evicted).
 */
START_TEST(test_exclusive_release)
{
	enum { N = 64 };
	SVA_OPTS_INIT(sva_dev_opts, o, .devmem_size = 4 * PAGE);
	struct sva_migrate_result r;
	struct sva_stats s;
	struct fixture f;
	uint8_t *p;

	if (!excl_open(&f, &o, __func__))
		return;
	for (int round = 0; round < 4; round++) {
		p = map_filled(N * PAGE, 20 + round);
		ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
		ck_assert_uint_eq(r.moved, N);
		ck_assert_uint_eq(r.evicted, 0);
		ck_assert_int_eq(madvise(p, 2 * PAGE, MADV_DONTNEED), 0);
		check_held(&f, p + 2 * PAGE, N - 2, true);
		for (size_t i = 0; i < 2 * PAGE; i++)
			ck_assert_uint_eq(p[i], 0);
		check_pattern_at(p, 2 * PAGE, 2 * PAGE, 20 + round);
		/* The rest goes with the munmap, held. */
		ck_assert_int_eq(munmap(p, N * PAGE), 0);
	}
	s = bind_stats(&f);
	ck_assert_uint_eq(s.exclusive_grants, 4 * N);
	ck_assert_uint_eq(s.exclusive_revokes, 4 * N);
	ck_assert_uint_eq(s.evictions, 0);
	ck_assert_uint_eq(s.migrated_to_dev, 0);
	/* The address range is usable again, fresh. */
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < N * PAGE; i += 512)
		ck_assert_uint_eq(p[i], 0);
	fill_pattern(p, N * PAGE, 40);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	check_pattern(p, N * PAGE, 40);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/*
 * Unbind with held pages: they come back (exact, usable); with two
 * bindings, unbinding one revokes its pages only.
 */
START_TEST(test_exclusive_unbind)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f, g;
	uint8_t *p, *q;

	EXCL_OR_SKIP(&f);
	g.dev = f.dev;
	ck_assert_int_eq(sva_bind(f.dev, NULL, &g.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(g.bind, &g.pasid), 0);
	p = map_filled(N * PAGE, 29);
	q = map_filled(N * PAGE, 30);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_int_eq(make_excl(&g, q, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_int_eq(sva_unbind(g.bind), 0);
	ck_assert_uint_eq(pages_present(q, N * PAGE), N);
	ck_assert_uint_eq(pages_present(p, N * PAGE), 0);
	check_held(&f, p, N, true);
	check_pattern(q, N * PAGE, 30);
	ck_assert_uint_eq(bind_stats(&f).exclusive_revokes, 0);
	/* The last binding goes: its pages too. */
	close_bind(&f);
	ck_assert_uint_eq(pages_present(p, N * PAGE), N);
	check_pattern(p, N * PAGE, 29);
	/* Usable as any memory. */
	fill_pattern(p, N * PAGE, 31);
	fill_pattern(q, N * PAGE, 32);
	check_pattern(p, N * PAGE, 31);
	check_pattern(q, N * PAGE, 32);
	/* A new binding holds them again. */
	EXCL_OR_SKIP(&f);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_int_eq(munmap(p, N * PAGE), 0);
	close_bind(&f);
	munmap(q, N * PAGE);
}
END_TEST

/* mremap() moves held pages with the range; the data stays exact. */
START_TEST(test_exclusive_mremap)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *q, *dst;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 16);
	dst = map_fresh(N * PAGE, PROT_NONE);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	q = mremap(p, N * PAGE, N * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ck_assert_ptr_eq(q, dst);
	check_pattern(q, N * PAGE, 16);
	check_held(&f, q, N, false);
	close_bind(&f);
	munmap(q, N * PAGE);
}
END_TEST

/*
 * Another device (a second handle on the same one: a device context of
 * its own) sees held pages as not mapped: its access revokes them first,
 * its grant takes them over. The holder is told and counts the revokes.
 */
START_TEST(test_exclusive_other_device)
{
	enum { N = 8 };
	struct sva_migrate_result r;
	struct fixture f0, f1;
	uint8_t st[N], *p, *copy;
	SVA_OPTS_INIT(sva_dev_caps, caps);

	EXCL_OR_SKIP(&f0);
	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &f1.dev), 0);
	ck_assert_int_eq(sva_bind(f1.dev, NULL, &f1.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(f1.bind, &f1.pasid), 0);
	ck_assert_int_eq(sva_dev_caps(f1.dev, &caps), 0);
	ck_assert(caps.flags & SVA_CAP_EXCLUSIVE);
	p = map_filled(N * PAGE, 14);
	ck_assert_int_eq(make_excl(&f0, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	/* Not this device's: not held for it, no CPU mapping either. */
	states_of(&f1, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_EXCLUSIVE), 0);
	ck_assert_uint_eq(count_state(st, N, SVA_PAGE_VALID), 0);
	/* Device 1 reads the first half: revoked from device 0 first. */
	copy = device_read(&f1, p, N / 2 * PAGE);
	check_pattern(copy, N / 2 * PAGE, 14);
	ck_assert_uint_eq(bind_stats(&f0).exclusive_revokes, N / 2);
	check_held(&f0, p, N / 2, false);
	check_held(&f0, p + N / 2 * PAGE, N / 2, true);
	/* Device 1 takes the rest over. */
	ck_assert_int_eq(make_excl(&f1, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	ck_assert_uint_eq(bind_stats(&f0).exclusive_revokes, N);
	ck_assert_uint_eq(bind_stats(&f1).exclusive_grants, N);
	check_held(&f1, p, N, true);
	check_held(&f0, p, N, false);
	check_pattern(p, N * PAGE, 14);
	ck_assert_uint_eq(bind_stats(&f1).exclusive_revokes, N);
	close_bind(&f1);
	close_bind(&f0);
	munmap(p, N * PAGE);
	munmap(copy, N / 2 * PAGE);
}
END_TEST

/* Transparent huge pages (where the kernel gives them): held per page. */
START_TEST(test_exclusive_thp)
{
	const size_t len = 4ul << 20;
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *raw, *p;
	int thp;

	EXCL_OR_SKIP(&f);
	raw = map_fresh(2 * len, PROT_READ | PROT_WRITE);
	p = (uint8_t *)(((uintptr_t)raw + len - 1) & ~(len - 1));
	madvise(p, len, MADV_HUGEPAGE);
	fill_pattern(p, len, 28);
	thp = page_is_thp(p);
	ck_assert_int_eq(make_excl(&f, p, len, &r), 0);
	ck_assert_uint_eq(r.moved, len / PAGE);
	ck_assert_uint_eq(pages_present(p, len), 0);
	check_pattern(p, len / 2, 28);		/* half revoked */
	check_held(&f, p + len / 2, len / 2 / PAGE, true);
	ck_assert_uint_eq(bind_stats(&f).exclusive_revokes, len / 2 / PAGE);
	check_pattern(p, len, 28);
	fprintf(stderr, "%s: the range was %s huge pages\n", __func__,
		thp == 1 ? "in" : thp == 0 ? "not in" : "maybe in");
	close_bind(&f);
	munmap(raw, 2 * len);
}
END_TEST

/*
 * A transparent huge page mapped by PTEs (its PMD split by an mprotect()
 * of one page, the folio still large): each page is either held or keeps
 * its CPU mapping (refused), and the counts say which. 6.12's
 * make_device_exclusive_range() refuses a large folio's tail pages, but
 * its rmap walk of the head page swaps every PTE of the folio for a
 * device-exclusive entry: tails neither held nor mapped, counted busy.
 */
START_TEST(test_regress_exclusive_pte_mapped_thp)
{
	const size_t len = 2ul << 20, n = len / PAGE;
	struct sva_migrate_result r;
	unsigned int held, lost = 0;
	struct fixture f;
	uint8_t *raw, *p, *st;
	int thp, ret;

	EXCL_OR_SKIP(&f);
	st = malloc(n);
	ck_assert_ptr_nonnull(st);
	raw = map_fresh(2 * len, PROT_READ | PROT_WRITE);
	p = (uint8_t *)(((uintptr_t)raw + len - 1) & ~(len - 1));
	madvise(p, len, MADV_HUGEPAGE);
	fill_pattern(p, len, 41);
	/* Split the PMD mapping, not the folio; the VMAs merge again. */
	ck_assert_int_eq(mprotect(p + PAGE, PAGE, PROT_READ), 0);
	ck_assert_int_eq(mprotect(p + PAGE, PAGE, PROT_READ | PROT_WRITE), 0);
	thp = page_is_thp(p + 3 * PAGE);
	ret = make_excl(&f, p, len, &r);
	ck_assert_int_eq(ret, (int)refused(&r));
	states_of(&f, p, len, st);
	held = count_state(st, n, SVA_PAGE_EXCLUSIVE);
	for (size_t i = 0; i < n; i++)
		if (!(st[i] & SVA_PAGE_EXCLUSIVE) &&
		    !pages_present(p + i * PAGE, PAGE))
			lost++;
	fprintf(stderr, "%s: %s a PTE-mapped huge page: %llu held, %llu refused, %u neither held nor mapped\n",
		__func__, thp == 1 ? "in" : thp == 0 ? "not in" : "maybe in",
		(unsigned long long)r.moved, (unsigned long long)refused(&r),
		lost);
	ck_assert_uint_eq(lost, 0);
	ck_assert_uint_eq(r.moved, held);
	ck_assert_uint_eq(r.moved + refused(&r), n);
	/* Unbinding gives back what was held: every page mapped, exact. */
	close_bind(&f);
	for (size_t i = 0; i < n; i++)
		if (!pages_present(p + i * PAGE, PAGE))
			lost++;
	ck_assert_uint_eq(lost, 0);
	check_pattern(p, len, 41);
	free(st);
	munmap(raw, 2 * len);
}
END_TEST

/* -------------------------------------------- device memory, refusals */

/* Pages in this device's memory count as held already, and stay there. */
START_TEST(test_exclusive_already_devmem)
{
	enum { N = 16 };
	SVA_OPTS_INIT(sva_migrate_opts, mo, .to = SVA_LOC_DEVICE);
	SVA_OPTS_INIT(sva_dev_caps, caps);
	struct sva_migrate_result r = { .sz = sizeof(r) };
	struct fixture f;
	uint8_t st[N], *p;

	EXCL_OR_SKIP(&f);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	if (!(caps.flags & SVA_CAP_MIGRATE)) {
		fprintf(stderr, "%s: %s has no SVA_CAP_MIGRATE: skipped\n",
			__func__, test_device());
		close_bind(&f);
		return;
	}
	p = map_filled(N * PAGE, 18);
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, N / 2 * PAGE, &mo,
				     &r), 0);
	ck_assert_uint_eq(r.moved, N / 2);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.already, N / 2);
	ck_assert_uint_eq(r.moved, N / 2);
	states_of(&f, p, N * PAGE, st);
	ck_assert_uint_eq(count_state(st, N / 2, SVA_PAGE_DEVICE_LOCAL), N / 2);
	ck_assert_uint_eq(count_state(st + N / 2, N / 2, SVA_PAGE_EXCLUSIVE),
			  N / 2);
	ck_assert_uint_eq(bind_stats(&f).exclusive_grants, N / 2);
	/*
	 * Migrating held pages to the device's memory: sim moves them
	 * (held by the device either way); a kernel backend may leave them
	 * (migrate_vma_setup() skips device-exclusive entries).
	 */
	ck_assert_int_ge(sva_migrate(f.bind, (uintptr_t)p, N * PAGE, &mo, &r),
			 0);
	ck_assert_uint_eq(r.already + r.moved + refused(&r), N);
	if (test_on_sim())
		ck_assert_uint_eq(r.already + r.moved, N);
	check_pattern(p, N * PAGE, 18);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* PROT_NONE, a hole, read-only, shared and file pages: refused, kept. */
START_TEST(test_exclusive_refused)
{
	enum { N = 6 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p, *sh, *q, st[N];
	volatile uint8_t sink;
	int ret, fd;

	EXCL_OR_SKIP(&f);
	p = map_fresh_small(N * PAGE, PROT_NONE);
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_PROT_NONE], N);
	ck_assert_uint_eq(r.moved + r.already, 0);
	ck_assert_int_eq(munmap(p + PAGE, PAGE), 0);
	/* Page 2: read-only, read before (zero page or not). */
	ck_assert_int_eq(mprotect(p + 2 * PAGE, PAGE, PROT_READ), 0);
	sink = p[2 * PAGE];
	(void)sink;
	/* Page 3: written, then read-only. */
	ck_assert_int_eq(mprotect(p + 3 * PAGE, PAGE, PROT_READ | PROT_WRITE), 0);
	p[3 * PAGE] = 3;
	ck_assert_int_eq(mprotect(p + 3 * PAGE, PAGE, PROT_READ), 0);
	/* Page 4: read-write, never touched; page 5 written. */
	ck_assert_int_eq(mprotect(p + 4 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE), 0);
	p[5 * PAGE] = 5;
	ret = make_excl(&f, p, N * PAGE, &r);
	ck_assert_int_eq(ret, (int)refused(&r));
	ck_assert_int_eq(ret, 4);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_PROT_NONE], 1);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_UNMAPPED], 1);
	/* Exclusive access is for writing: read-only pages are refused. */
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_READ_ONLY], 2);
	/* A page never touched is faulted in for writing, then held. */
	ck_assert_uint_eq(r.moved, 2);
	states_of(&f, p + 4 * PAGE, 2 * PAGE, st);
	ck_assert_uint_eq(count_state(st, 2, SVA_PAGE_EXCLUSIVE), 2);
	ck_assert_uint_eq(p[2 * PAGE], 0);
	ck_assert_uint_eq(p[3 * PAGE], 3);
	ck_assert_uint_eq(p[4 * PAGE], 0);
	ck_assert_uint_eq(p[5 * PAGE], 5);
	munmap(p, N * PAGE);
	/* MAP_SHARED anonymous memory. */
	sh = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE,
		  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	fill_pattern(sh, N * PAGE, 4);
	ck_assert_int_eq(make_excl(&f, sh, N * PAGE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_SHARED], N);
	check_pattern(sh, N * PAGE, 4);
	ck_assert_uint_eq(pages_present(sh, N * PAGE), N);
	/* A private file mapping. */
	fd = memfd_create("exclusive", 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, N * PAGE), 0);
	q = mmap(NULL, N * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ck_assert_ptr_ne(q, MAP_FAILED);
	fill_pattern(q, N * PAGE, 5);
	ck_assert_int_eq(make_excl(&f, q, N * PAGE, &r), N);
	ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_SHARED], N);
	check_pattern(q, N * PAGE, 5);
	ck_assert_uint_eq(bind_stats(&f).exclusive_grants, 2);
	close_bind(&f);
	munmap(sh, N * PAGE);
	munmap(q, N * PAGE);
	close(fd);
}
END_TEST

/* The application's own userfaultfd on a range: refused, clearly. */
START_TEST(test_exclusive_foreign_uffd)
{
	enum { N = 4 };
	struct sva_migrate_result r;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct fixture f;
	uint8_t *p;
	int uffd, ret;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 17);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		fprintf(stderr, "%s: no userfaultfd: skipped\n", __func__);
		goto out;
	}
	reg.range.start = (uintptr_t)p;
	reg.range.len = N * PAGE;
	ck_assert_int_eq(ioctl(uffd, UFFDIO_REGISTER, &reg), 0);
	/*
	 * sim can't take missing faults on a range another userfaultfd
	 * holds: refused; a kernel backend holds them as any page.
	 */
	ret = make_excl(&f, p, N * PAGE, &r);
	ck_assert_int_eq(ret, (int)refused(&r));
	ck_assert_uint_eq(r.moved + refused(&r), N);
	if (test_on_sim())
		ck_assert_uint_eq(r.not_moved[SVA_MIGRATE_FOREIGN_UFFD], N);
	check_pattern(p, N * PAGE, 17);
	close(uffd);
out:
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* ------------------------------------------------------ fork, callbacks */

/* The child may not use the parent's binding: -EPERM, nothing held. */
START_TEST(test_exclusive_fork_eperm)
{
	enum { N = 4 };
	struct sva_migrate_result r;
	struct fixture f;
	uint8_t *p;
	pid_t pid;
	int status;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 19);
	pid = test_fork();
	if (pid == 0) {
		struct sva_migrate_result cr = { .sz = sizeof(cr), .moved = 77 };
		int ok;

		ok = sva_make_exclusive(f.bind, (uintptr_t)p, N * PAGE, 0,
					&cr) == -EPERM && cr.moved == 77 &&
		     sva_make_exclusive(f.bind, (uintptr_t)p, N * PAGE, 0,
					NULL) == -EPERM &&
		     pages_present(p, N * PAGE) == N;
		_exit(ok ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_uint_eq(bind_stats(&f).exclusive_grants, 0);
	/* The parent's binding still works. */
	ck_assert_int_eq(make_excl(&f, p, N * PAGE, &r), 0);
	ck_assert_uint_eq(r.moved, N);
	check_pattern(p, N * PAGE, 19);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

struct excl_cb {
	struct fixture *f;
	uint8_t *p;
	int armed, done, ret;
	struct sva_migrate_result r;
};

/*
 * From inside an invalidation callback: allowed (it takes no lock a
 * callback holds, and the invalidation its grant causes, on this very
 * mirror, is delivered after the callback returns, never waited for).
 */
static void excl_callback(struct sva_mirror *m, uint64_t start, uint64_t end,
			  enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct excl_cb *c = ctx;

	(void)m, (void)start, (void)end, (void)ev, (void)seq;
	if (!__atomic_exchange_n(&c->armed, 0, __ATOMIC_ACQ_REL))
		return;
	memset(&c->r, 0, sizeof(c->r));
	c->r.sz = sizeof(c->r);
	c->ret = sva_make_exclusive(c->f->bind, (uintptr_t)c->p + 4 * PAGE,
				    4 * PAGE, 0, &c->r);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
}

START_TEST(test_exclusive_in_callback)
{
	enum { N = 8 };
	struct excl_cb c = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = excl_callback,
		      .ctx = &c);
	struct sva_mirror *m;
	struct fixture f;
	uint8_t *p;
	int i;

	EXCL_OR_SKIP(&f);
	p = map_filled(N * PAGE, 21);
	c.f = &f;
	c.p = p;
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, N * PAGE,
					     &mo, &m), 0);
	__atomic_store_n(&c.armed, 1, __ATOMIC_RELEASE);
	/* An invalidation of the mirror: a discard of its first page. */
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	for (i = 0; i < 10000 && !__atomic_load_n(&c.done, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_msg(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE),
		      "sva_make_exclusive() from a callback hangs (or no callback)");
	ck_assert_int_eq(c.ret, 0);
	ck_assert_uint_eq(c.r.moved, 4);
	check_held(&f, p + 4 * PAGE, 4, true);
	ck_assert_uint_eq(p[0], 0);
	check_pattern_at(p, PAGE, (N - 1) * PAGE, 21);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/*
 * A snapshot that read_retry() accepts while a grant is under way is
 * current, or a later invalidation says it isn't: a callback re-reading
 * the range on each invalidation ends with the pages held, or with its
 * snapshot's sequence invalidated. (kmod: the grant's own
 * MMU_NOTIFY_EXCLUSIVE advances the mirrors before the pages are recorded
 * as held; a snapshot in between saw them neither mapped nor held, and
 * nothing advanced the mirrors again.)
 */
enum { SNAPW_N = 64 };

struct snapw {
	struct sva_mirror *m;
	uint8_t *p;
	pthread_mutex_t lock;
	uint8_t st[SNAPW_N];
	uint64_t seq;
	bool have;
	unsigned int taken;
};

static void snapw_callback(struct sva_mirror *m, uint64_t start, uint64_t end,
			   enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct snapw *w = ctx;
	uint8_t st[SNAPW_N];
	uint64_t s;

	(void)start, (void)end, (void)ev, (void)seq;
	s = sva_mirror_read_begin(m);
	if (sva_mirror_snapshot(m, (uintptr_t)w->p, SNAPW_N * PAGE, st, 0))
		return;
	if (sva_mirror_read_retry(m, s))
		return;
	pthread_mutex_lock(&w->lock);
	memcpy(w->st, st, sizeof(st));
	w->seq = s;
	w->have = true;
	w->taken++;
	pthread_mutex_unlock(&w->lock);
}

START_TEST(test_regress_exclusive_snapshot_in_grant)
{
	enum { ROUNDS = 40 };
	struct snapw w = { .lock = PTHREAD_MUTEX_INITIALIZER };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = snapw_callback,
		      .ctx = &w);
	struct sva_migrate_result r;
	unsigned int stale = 0;
	struct fixture f;
	volatile uint8_t sink;

	EXCL_OR_SKIP(&f);
	w.p = map_filled(SNAPW_N * PAGE, 43);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)w.p,
					     SNAPW_N * PAGE, &mo, &w.m), 0);
	for (int round = 0; round < ROUNDS; round++) {
		bool current = false;

		ck_assert_int_eq(make_excl(&f, w.p, SNAPW_N * PAGE, &r), 0);
		ck_assert_uint_eq(r.moved, SNAPW_N);
		/* Callbacks of the grant run; nothing changes meanwhile. */
		for (int t = 0; t < 500 && !current; t++) {
			usleep(2000);
			pthread_mutex_lock(&w.lock);
			current = !w.have ||
				  sva_mirror_read_retry(w.m, w.seq) ||
				  count_state(w.st, SNAPW_N,
					      SVA_PAGE_EXCLUSIVE) == SNAPW_N;
			pthread_mutex_unlock(&w.lock);
		}
		if (!current)
			stale++;
		/* Revoke every page (CPU reads) for the next round. */
		for (int i = 0; i < SNAPW_N; i++)
			sink = w.p[i * PAGE];
	}
	(void)sink;
	fprintf(stderr, "%s: %u snapshots from callbacks, %u of %d rounds left an accepted snapshot stale\n",
		__func__, w.taken, stale, ROUNDS);
	ck_assert_uint_eq(stale, 0);
	ck_assert_int_eq(sva_mirror_unregister(w.m), 0);
	check_pattern(w.p, SNAPW_N * PAGE, 43);
	close_bind(&f);
	munmap(w.p, SNAPW_N * PAGE);
}
END_TEST

/* ------------------------------------------------------------ races */

/* Grants racing a CPU writer (each write revokes): no write is lost. */
START_TEST(test_exclusive_race_cpu_writer)
{
	enum { N = 32, GRANTS = 300 };
	struct sva_migrate_result r;
	uint64_t seen = 0;
	struct race_writer w = { .pages = N };
	struct fixture f;
	struct sva_stats s;
	pthread_t t;
	uint64_t t0;
	int i;

	EXCL_OR_SKIP(&f);
	w.p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	memset(w.p, 0, N * PAGE);
	ck_assert_int_eq(pthread_create(&t, NULL, race_writer_fn, &w), 0);
	t0 = race_now_s();
	for (i = 0; i < GRANTS && !race_over(t0, (unsigned int)i); i++) {
		ck_assert_int_ge(make_excl(&f, w.p, N * PAGE, &r), 0);
		ck_assert_uint_eq(r.moved + r.already + refused(&r), N);
		/* Let the writer run into them (each write a revoke). */
		usleep(200);
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
	/* Every page read above: none is held, each grant was revoked. */
	s = bind_stats(&f);
	ck_assert_uint_eq(s.exclusive_grants, s.exclusive_revokes);
	fprintf(stderr, "%s: %d grant calls raced %u rounds of CPU writes: %llu pages granted and revoked\n",
		__func__, i, atomic_load(&w.rounds),
		(unsigned long long)s.exclusive_grants);
	close_bind(&f);
	munmap(w.p, N * PAGE);
}
END_TEST

struct granter {
	struct fixture *f;
	void *p;
	size_t len;
	atomic_bool stop;
	unsigned int rounds;
	int err;
};

/* Hold the range again and again until told to stop. */
static void *granter_fn(void *arg)
{
	struct granter *g = arg;
	struct sva_migrate_result r = { .sz = sizeof(r) };

	while (!atomic_load(&g->stop)) {
		int ret = sva_make_exclusive(g->f->bind, (uintptr_t)g->p,
					     g->len, 0, &r);

		g->rounds++;
		if (ret < 0)
			g->err = ret;
	}
	return NULL;
}

/*
 * MADV_DONTNEED racing grants: discarded pages read zero, the others keep
 * their data (no held page survives its discard, none comes back).
 */
START_TEST(test_exclusive_race_discard)
{
	enum { N = 32 };
	struct granter g = { .len = N * PAGE };
	struct fixture f;
	pthread_t t;
	uint8_t *p;
	uint64_t t0;
	unsigned int k;

	EXCL_OR_SKIP(&f);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	g.f = &f;
	g.p = p;
	ck_assert_int_eq(pthread_create(&t, NULL, granter_fn, &g), 0);
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
	atomic_store(&g.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(g.err, 0);
	fprintf(stderr, "%s: %u discards raced %u grant calls (%llu pages granted)\n",
		__func__, k, g.rounds,
		(unsigned long long)bind_stats(&f).exclusive_grants);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

/* Device writes racing grants and CPU reads: each lands whole. */
START_TEST(test_exclusive_race_device_writer)
{
	enum { N = 32 };
	struct granter g = { .len = N * PAGE };
	struct fixture f;
	pthread_t t;
	uint64_t *p, t0, k;

	EXCL_OR_SKIP(&f);
	p = map_fresh_small(N * PAGE, PROT_READ | PROT_WRITE);
	memset(p, 0, N * PAGE);
	g.f = &f;
	g.p = p;
	ck_assert_int_eq(pthread_create(&t, NULL, granter_fn, &g), 0);
	t0 = race_now_s();
	for (k = 1; k <= 200 && !race_over(t0, (unsigned int)k - 1); k++) {
		struct sva_desc d = desc_make(&f, SVA_OP_FILL,
					      SVA_DESC_BLOCK_ON_FAULT, NULL, p,
					      N * PAGE);
		struct sva_completion c;

		d.pattern = k * 0x0101010101010101ull;
		c = run1(&f, &d);
		ck_assert_int_eq(c.status, SVA_STATUS_SUCCESS);
		/* The CPU revokes pages as it reads them. */
		for (size_t i = 0; i < N * PAGE / 8; i += 61)
			ck_assert_uint_eq(p[i], d.pattern);
	}
	atomic_store(&g.stop, true);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(g.err, 0);
	fprintf(stderr, "%s: %llu device fills raced %u grant calls (%llu pages granted)\n",
		__func__, (unsigned long long)k - 1, g.rounds,
		(unsigned long long)bind_stats(&f).exclusive_grants);
	close_bind(&f);
	munmap(p, N * PAGE);
}
END_TEST

Suite *exclusive_suite(void)
{
	Suite *s = suite_create("exclusive");
	TCase *tc = tcase_create("exclusive");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_exclusive_unsupported, 0, 2);
	tcase_add_test(tc, test_exclusive_bad_args);
	tcase_add_test(tc, test_exclusive_basic);
	tcase_add_test(tc, test_exclusive_mprotect);
	tcase_add_test(tc, test_exclusive_cow);
	tcase_add_test(tc, test_exclusive_cpu_read_revokes);
	tcase_add_test(tc, test_exclusive_cpu_write_revokes);
	tcase_add_test(tc, test_exclusive_device_write);
	tcase_add_test(tc, test_exclusive_snapshot_states);
	tcase_add_test(tc, test_exclusive_stats);
	tcase_add_test(tc, test_exclusive_release);
	tcase_add_test(tc, test_exclusive_unbind);
	tcase_add_test(tc, test_exclusive_mremap);
	tcase_add_test(tc, test_exclusive_other_device);
	tcase_add_test(tc, test_exclusive_thp);
	tcase_add_test(tc, test_regress_exclusive_pte_mapped_thp);
	tcase_add_test(tc, test_exclusive_already_devmem);
	tcase_add_test(tc, test_exclusive_refused);
	tcase_add_test(tc, test_exclusive_foreign_uffd);
	tcase_add_test(tc, test_exclusive_fork_eperm);
	tcase_add_test(tc, test_exclusive_in_callback);
	tcase_add_test(tc, test_regress_exclusive_snapshot_in_grant);
	tcase_add_test(tc, test_exclusive_race_cpu_writer);
	tcase_add_test(tc, test_exclusive_race_discard);
	tcase_add_test(tc, test_exclusive_race_device_writer);
	suite_add_tcase(s, tc);
	return s;
}
