// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The fault-injection suite: every injection point of the runtime, swept
 * fail-the-Nth-call style, plus invalidations racing faults, unbind during
 * faults, process death mid-work and fault storms. Each case checks the
 * errno or status the caller gets and that data written before the fault
 * is intact; the suite runs under AddressSanitizer, so a leak on any error
 * path fails it.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "sva/sva.h"

#define PAGE 4096ul

Suite *log_deferred_suite(void);

static void *map_fresh(size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       flags | MAP_ANONYMOUS, -1, 0);

	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

static void disarm_all(void)
{
	for (int p = 0; p < SVA_INJECT_MAX; p++)
		sva_inject(p, NULL);
}

static void arm(enum sva_inject_point p, unsigned int nth,
		unsigned int every, unsigned int times)
{
	SVA_OPTS_INIT(sva_inject_opts, o, .nth = nth, .every = every,
		      .times = times);

	ck_assert_int_eq(sva_inject(p, &o), 0);
}

static struct sva_completion run(struct sva_bind *b, struct sva_desc *d)
{
	struct sva_completion c;

	ck_assert_int_eq(sva_bind_pasid(b, &d->pasid), 0);
	ck_assert_int_eq(sva_submit(b, d, 1), 1);
	ck_assert_int_eq(sva_wait(b, &c, 1, 1, 10000), 1);
	return c;
}

/*
 * Device memory (issue 8), where the device has it: an attribute, the
 * source to the device, the copy from there, back; then held exclusively,
 * copied from, revoked. 0 or the first error.
 */
static int devmem_steps(struct sva_dev *dev, struct sva_bind *b,
			uint8_t *src, uint8_t *dst, struct sva_desc *d)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);
	SVA_OPTS_INIT(sva_migrate_opts, mo, .to = SVA_LOC_DEVICE);
	struct sva_range_attr a = { .type = SVA_ATTR_PREFERRED_LOC,
				    .value = SVA_LOC_HOST };
	struct sva_completion c;
	int err;

	ck_assert_int_eq(sva_dev_caps(dev, &caps), 0);
	if (!(caps.flags & SVA_CAP_MIGRATE))
		return 0;
	err = sva_range_set_attr(b, (uintptr_t)src, 8 * PAGE, &a, 1);
	if (err)
		return err;
	err = sva_migrate(b, (uintptr_t)src, 8 * PAGE, &mo, NULL);
	if (err < 0)
		return err;
	ck_assert_int_eq(err, 0);
	memset(dst, 0, 8 * PAGE);
	c = run(b, d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	mo.to = SVA_LOC_HOST;
	err = sva_migrate(b, (uintptr_t)src, 8 * PAGE, &mo, NULL);
	if (err < 0)
		return err;
	ck_assert_int_eq(err, 0);
	ck_assert_int_eq(memcmp(src, dst, 8 * PAGE), 0);
	/* Exclusive access: held, the device copies, the CPU revokes. */
	if (!(caps.flags & SVA_CAP_EXCLUSIVE))
		return 0;
	err = sva_make_exclusive(b, (uintptr_t)src, 8 * PAGE, 0, NULL);
	if (err < 0)
		return err;
	ck_assert_int_eq(err, 0);
	memset(dst, 0, 8 * PAGE);
	c = run(b, d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 8 * PAGE), 0);
	return 0;
}

/*
 * The whole life of a binding; returns 0, or the first error, having
 * undone what succeeded. The copy must be right whenever it ran.
 */
static int lifecycle(const char *trace_path)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .trace_path = trace_path);
	uint8_t *src = map_fresh(8 * PAGE, MAP_PRIVATE);
	uint8_t *dst = map_fresh(8 * PAGE, MAP_PRIVATE);
	struct sva_desc d = { .opcode = SVA_OP_COPY,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .src = (uintptr_t)src, .dst = (uintptr_t)dst,
			      .len = 8 * PAGE };
	struct sva_mirror *m = NULL;
	struct sva_bind *b = NULL;
	struct sva_dev *dev = NULL;
	struct sva_completion c;
	int err;

	memset(src, 0x3c, 8 * PAGE);
	err = sva_dev_open("sim0", &o, &dev);
	if (err)
		goto out;
	err = sva_bind(dev, NULL, &b);
	if (err)
		goto close;
	err = sva_mirror_register(b, (uintptr_t)src, 8 * PAGE, NULL, &m);
	if (err)
		goto unbind;
	c = run(b, &d);
	ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 8 * PAGE), 0);
	err = devmem_steps(dev, b, src, dst, &d);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
unbind:
	ck_assert_int_eq(sva_unbind(b), 0);
close:
	sva_dev_close(dev);
out:
	munmap(src, 8 * PAGE);
	munmap(dst, 8 * PAGE);
	return err;
}

/*
 * Fail the 1st, 2nd, ... allocation until one run needs no failure; the
 * second loop with the event trace on (its ring and state are allocations
 * of their own).
 */
START_TEST(test_alloc_sweep)
{
	char path[] = "/tmp/sva-fault-trace-XXXXXX";
	int n, err, fd = -1;
	long hits;

	if (_i) {
		fd = mkstemp(path);
		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	for (n = 1; n < 100; n++) {
		arm(SVA_INJECT_ALLOC, (unsigned int)n, 0, 0);
		err = lifecycle(_i ? path : NULL);
		hits = sva_inject_count(SVA_INJECT_ALLOC);
		disarm_all();
		if (!hits) {
			ck_assert_int_eq(err, 0);
			break;
		}
		ck_assert_int_eq(hits, 1);
		ck_assert_msg(err == -ENOMEM, "allocation %d: got %d", n, err);
	}
	/* Device, ATC, PRQ, binding, queue, bounce buffers, mirror, ... */
	ck_assert_int_ge(n, _i ? 10 : 8);
	ck_assert_int_lt(n, 100);
	if (_i) {
		/* The run that succeeded wrote its trace. */
		struct stat st;

		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_gt(st.st_size, 0);
		unlink(path);
	}
}
END_TEST

START_TEST(test_pasid_exhaustion)
{
	struct sva_dev *dev;
	struct sva_bind *b;

	ck_assert_int_eq(sva_dev_open("sim0", NULL, &dev), 0);
	arm(SVA_INJECT_PASID, 1, 1, 3);
	for (int i = 0; i < 3; i++) {
		b = (void *)1;
		ck_assert_int_eq(sva_bind(dev, NULL, &b), -ENOSPC);
		ck_assert_ptr_null(b);
	}
	ck_assert_int_eq(sva_inject_count(SVA_INJECT_PASID), 3);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);	/* times exhausted */
	disarm_all();
	ck_assert_int_eq(sva_unbind(b), 0);
	sva_dev_close(dev);
}
END_TEST

START_TEST(test_prq_overflow_injected)
{
	size_t len = 32 * PAGE;
	uint8_t *src = map_fresh(len, MAP_PRIVATE), *dst = map_fresh(len,
								  MAP_PRIVATE);
	struct sva_desc d = { .opcode = SVA_OP_COPY,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .src = (uintptr_t)src, .dst = (uintptr_t)dst,
			      .len = len };
	struct sva_stats s = { .sz = sizeof(s) };
	struct sva_dev *dev;
	struct sva_bind *b;

	memset(src, 0x11, len);
	ck_assert_int_eq(sva_dev_open("sim0", NULL, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	arm(SVA_INJECT_PRQ_FULL, 1, 1, 5);
	/* Dropped groups are answered by the IOMMU; the device asks again. */
	ck_assert_uint_eq(run(b, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	ck_assert_int_eq(sva_inject_count(SVA_INJECT_PRQ_FULL), 5);
	ck_assert_int_eq(sva_bind_stats(b, &s), 0);
	ck_assert_uint_ge(s.prq_overflows, 5);
	ck_assert_uint_eq(s.faults_failed, 0);
	disarm_all();
	sva_dev_close(dev);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/* The 2nd page request group answered INVALID or FAILURE. */
static void fault_response(enum sva_inject_point point, uint32_t status)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .fault_batch = 8);
	size_t len = 32 * PAGE;
	uint8_t *dst = map_fresh(len, MAP_PRIVATE);
	struct sva_desc d = { .opcode = SVA_OP_FILL,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .dst = (uintptr_t)dst, .len = len,
			      .pattern = 0x4242424242424242ull };
	struct sva_completion c;
	struct sva_dev *dev;
	struct sva_bind *b;

	ck_assert_int_eq(sva_dev_open("sim0", &o, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	arm(point, 2, 0, 0);
	c = run(b, &d);
	ck_assert_uint_eq(c.status, status);
	ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 8 * PAGE);
	ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	ck_assert_uint_eq(c.bytes_done, 8 * PAGE);
	/* What came before the fault is written, nothing after it. */
	for (size_t i = 0; i < 8 * PAGE; i++)
		ck_assert_uint_eq(dst[i], 0x42);
	for (size_t i = 8 * PAGE; i < len; i++)
		ck_assert_uint_eq(dst[i], 0);
	disarm_all();
	/* And the device goes on: the rest can be resumed. */
	ck_assert_int_eq(sva_desc_resume(&d, &c), 0);
	ck_assert_uint_eq(run(b, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(dst[len - 1], 0x42);
	ck_assert_int_eq(sva_unbind(b), 0);
	sva_dev_close(dev);
	munmap(dst, len);
}

START_TEST(test_fault_invalid)
{
	fault_response(SVA_INJECT_FAULT_INVALID, SVA_STATUS_FAULT_INVALID);
}
END_TEST

START_TEST(test_fault_failure)
{
	fault_response(SVA_INJECT_FAULT_FAILURE, SVA_STATUS_FAULT_FAILURE);
}
END_TEST

struct racer {
	uint8_t *p;
	size_t len;
	volatile bool stop;
};

static void *discard_loop(void *arg)
{
	struct racer *r = arg;

	while (!r->stop) {
		madvise(r->p, r->len, MADV_DONTNEED);
		usleep(100);
	}
	return NULL;
}

/*
 * MADV_DONTNEED of shared memory racing with device faults on it: the
 * pages go and come back from shmem with their data, so every byte a copy
 * reports done must carry that data, whatever the interleaving. A copy
 * that the discards keep from progressing for a second fails with
 * FAULT_FAILURE (as hmm_range_fault() gives up with -EBUSY); most succeed.
 */
START_TEST(test_invalidation_races_faults)
{
	size_t len = 64 * PAGE;
	struct racer r = { .p = map_fresh(len, MAP_SHARED), .len = len };
	uint8_t *dst = map_fresh(len, MAP_PRIVATE);
	struct sva_desc d = { .opcode = SVA_OP_COPY,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .src = (uintptr_t)r.p, .dst = (uintptr_t)dst,
			      .len = len };
	struct sva_stats s = { .sz = sizeof(s) };
	struct sva_dev *dev;
	struct sva_bind *b;
	pthread_t t;
	int ok = 0;

	memset(r.p, 0x77, len);
	ck_assert_int_eq(sva_dev_open("sim0", NULL, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	ck_assert_int_eq(pthread_create(&t, NULL, discard_loop, &r), 0);
	for (int i = 0; i < 100; i++) {
		struct sva_completion c;

		memset(dst, 0, len);
		c = run(b, &d);
		ck_assert(c.status == SVA_STATUS_SUCCESS ||
			  (c.status == SVA_STATUS_FAULT_FAILURE &&
			   c.fault_addr >= (uintptr_t)r.p &&
			   c.fault_addr < (uintptr_t)r.p + len));
		ok += c.status == SVA_STATUS_SUCCESS;
		for (size_t k = 0; k < c.bytes_done; k += 512)
			ck_assert_uint_eq(dst[k], 0x77);
	}
	ck_assert_int_ge(ok, 50);
	r.stop = true;
	pthread_join(t, NULL);
	ck_assert_int_eq(sva_bind_stats(b, &s), 0);
	ck_assert_uint_gt(s.invalidations, 0);
	ck_assert_uint_gt(s.page_requests, 0);
	ck_assert_int_eq(sva_unbind(b), 0);
	sva_dev_close(dev);
	munmap(r.p, len);
	munmap(dst, len);
}
END_TEST

/* Unbind while queued work is faulting and some faults fail. */
START_TEST(test_unbind_during_faults)
{
	enum { N = 16 };
	size_t len = 256 * PAGE;
	uint8_t *dst = map_fresh(N * len, MAP_PRIVATE);
	struct sva_desc d[N];
	struct sva_dev *dev;
	struct sva_bind *b;
	uint32_t pasid;

	ck_assert_int_eq(sva_dev_open("sim0", NULL, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	ck_assert_int_eq(sva_bind_pasid(b, &pasid), 0);
	for (int i = 0; i < N; i++)
		d[i] = (struct sva_desc){ .opcode = SVA_OP_FILL,
			.flags = SVA_DESC_BLOCK_ON_FAULT, .pasid = pasid,
			.dst = (uintptr_t)dst + (uint64_t)i * len, .len = len,
			.pattern = ~0ull };
	arm(SVA_INJECT_FAULT_FAILURE, 3, 7, 0);
	ck_assert_int_eq(sva_submit(b, d, N), N);
	ck_assert_int_eq(sva_unbind(b), 0);	/* drains; no hang */
	ck_assert_int_gt(sva_inject_count(SVA_INJECT_FAULT_FAILURE), 0);
	disarm_all();
	sva_dev_close(dev);
	munmap(dst, N * len);
}
END_TEST

/* A process killed with work in flight; its parent carries on. */
START_TEST(test_process_death_mid_work)
{
	uint8_t *src = map_fresh(4 * PAGE, MAP_PRIVATE);
	uint8_t *dst = map_fresh(4 * PAGE, MAP_PRIVATE);
	struct sva_desc d = { .opcode = SVA_OP_COPY,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .src = (uintptr_t)src, .dst = (uintptr_t)dst,
			      .len = 4 * PAGE };
	struct sva_dev *dev;
	struct sva_bind *b;
	int status;
	pid_t pid;

	memset(src, 0x99, 4 * PAGE);
	ck_assert_int_eq(sva_dev_open("sim0", NULL, &dev), 0);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (!pid) {
		size_t len = 64ul << 20;
		uint8_t *big = mmap(NULL, len, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct sva_desc cd = { .opcode = SVA_OP_FILL,
				       .flags = SVA_DESC_BLOCK_ON_FAULT,
				       .dst = (uintptr_t)big, .len = len };
		struct sva_dev *cdev;
		struct sva_bind *cb;

		if (sva_dev_open("sim0", NULL, &cdev) ||
		    sva_bind(cdev, NULL, &cb) || sva_bind_pasid(cb, &cd.pasid))
			_exit(2);
		for (int i = 0; i < 8; i++)
			sva_submit(cb, &cd, 1);
		usleep(20000);
		raise(SIGKILL);	/* mid-work, faults outstanding */
		_exit(3);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_uint_eq(run(b, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 4 * PAGE), 0);
	ck_assert_int_eq(sva_unbind(b), 0);
	sva_dev_close(dev);
}
END_TEST

struct storm {
	struct sva_bind *bind;
	uint8_t *bad;
	int submitted, eio, quarantined;
};

/* Device A: descriptors that fault on PROT_NONE memory, until refused. */
static void *storm_thread(void *arg)
{
	struct storm *s = arg;
	struct sva_desc d = { .opcode = SVA_OP_CRC32C,
			      .flags = SVA_DESC_BLOCK_ON_FAULT,
			      .src = (uintptr_t)s->bad, .len = PAGE };
	struct sva_completion c;
	int ret;

	sva_bind_pasid(s->bind, &d.pasid);
	while (s->submitted < 100000) {
		ret = sva_submit(s->bind, &d, 1);
		if (ret == -EIO) {
			s->eio++;
			break;
		}
		s->submitted++;
		if (sva_wait(s->bind, &c, 1, 1, 10000) == 1 &&
		    c.status == SVA_STATUS_QUARANTINED)
			s->quarantined++;
	}
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

START_TEST(test_fault_storm_quarantine)
{
	SVA_OPTS_INIT(sva_dev_opts, oa, .storm_threshold = 50,
		      .fault_rate = 1000);
	struct storm s = { 0 };
	struct sva_dev *a, *bdev;
	struct sva_bind *good;
	struct sva_stats st = { .sz = sizeof(st) };
	size_t len = 16 * PAGE;
	double t0, storm_time;
	pthread_t t;

	ck_assert_int_eq(sva_dev_open("sim0", &oa, &a), 0);
	ck_assert_int_eq(sva_dev_open("sim1", NULL, &bdev), 0);
	ck_assert_int_eq(sva_bind(a, NULL, &s.bind), 0);
	ck_assert_int_eq(sva_bind(bdev, NULL, &good), 0);
	s.bad = mmap(NULL, PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	ck_assert_ptr_ne(s.bad, MAP_FAILED);

	t0 = now_s();
	ck_assert_int_eq(pthread_create(&t, NULL, storm_thread, &s), 0);
	/* Meanwhile device B's binding faults and works as usual. */
	for (int i = 0; i < 100; i++) {
		uint8_t *dst = map_fresh(len, MAP_PRIVATE);
		struct sva_desc d = { .opcode = SVA_OP_FILL,
				      .flags = SVA_DESC_BLOCK_ON_FAULT,
				      .dst = (uintptr_t)dst, .len = len,
				      .pattern = 0x0101010101010101ull };

		ck_assert_uint_eq(run(good, &d).status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(dst[len - 1], 1);
		munmap(dst, len);
	}
	pthread_join(t, NULL);
	storm_time = now_s() - t0;

	/* A was quarantined at the threshold, and refused work after. */
	ck_assert_int_eq(sva_dev_quarantined(a), 1);
	ck_assert_int_eq(sva_dev_quarantined(bdev), 0);
	ck_assert_int_eq(s.eio, 1);
	ck_assert_int_ge(s.submitted, 50);
	ck_assert_int_eq(sva_bind_stats(s.bind, &st), 0);
	ck_assert_uint_ge(st.faults_failed, 50);
	ck_assert_uint_eq(st.quarantines, 1);
	/* Rate limited: 50 groups at 1000/s can't take under 50 ms. */
	ck_assert_msg(storm_time >= 0.045, "storm took %.3fs", storm_time);
	ck_assert_int_eq(sva_bind_stats(good, &st), 0);
	ck_assert_uint_eq(st.faults_failed, 0);
	ck_assert_uint_eq(st.descs_completed, 100);

	/* A reset lifts it. */
	ck_assert_int_eq(sva_dev_reset(a), 0);
	ck_assert_int_eq(sva_dev_quarantined(a), 0);
	{
		uint8_t *dst = map_fresh(len, MAP_PRIVATE);
		struct sva_desc d = { .opcode = SVA_OP_FILL,
				      .flags = SVA_DESC_BLOCK_ON_FAULT,
				      .dst = (uintptr_t)dst, .len = len };

		ck_assert_uint_eq(run(s.bind, &d).status, SVA_STATUS_SUCCESS);
		munmap(dst, len);
	}
	sva_dev_close(a);
	sva_dev_close(bdev);
	munmap(s.bad, PAGE);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fault-injection");
	TCase *tc = tcase_create("inject");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, disarm_all, disarm_all);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_alloc_sweep, 0, 2);
	tcase_add_test(tc, test_pasid_exhaustion);
	tcase_add_test(tc, test_prq_overflow_injected);
	tcase_add_test(tc, test_fault_invalid);
	tcase_add_test(tc, test_fault_failure);
	tcase_add_test(tc, test_invalidation_races_faults);
	tcase_add_test(tc, test_unbind_during_faults);
	tcase_add_test(tc, test_process_death_mid_work);
	tcase_add_test(tc, test_fault_storm_quarantine);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_add_suite(sr, log_deferred_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
