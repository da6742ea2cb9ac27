// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Unbind against callbacks: defects an adversarial review of the issue 7
 * fixes found with programs against the public API only, each test named
 * for its defect.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <stdatomic.h>

#include "unit.h"

/*
 * sva_mirror_register(3): a callback may call sva_inflight(), sva_submit()
 * and sva_wait(), and sva_unbind() calls every mirror still registered
 * with SVA_INVAL_RELEASE. But sva_unbind() tears the queue down
 * (sva__queue_fini: worker joined, lock destroyed, rings freed) before it
 * runs the RELEASE callbacks: a RELEASE callback that uses its own
 * binding's queue writes to the freed ring (ASan: heap-use-after-free in
 * sva_submit) and its sva_wait() has no worker to complete the work.
 */
struct release_queue {
	struct sva_bind *bind;
	uint32_t pasid;
	int calls;
	int inflight, submitted, reaped;
	uint32_t status;
};

static void release_queue_cb(struct sva_mirror *m, uint64_t start,
			     uint64_t end, enum sva_inval_event ev,
			     uint64_t seq, void *ctx)
{
	struct release_queue *r = ctx;
	struct sva_desc d = { .opcode = SVA_OP_NOP, .pasid = r->pasid };
	struct sva_completion c = { 0 };

	(void)m, (void)start, (void)end, (void)seq;
	if (ev != SVA_INVAL_RELEASE)
		return;
	r->calls++;
	r->inflight = sva_inflight(r->bind);
	r->submitted = sva_submit(r->bind, &d, 1);
	if (r->submitted == 1) {
		r->reaped = sva_wait(r->bind, &c, 1, 1, 2000);
		r->status = c.status;
	}
}

START_TEST(test_regress_release_callback_uses_queue)
{
	struct fixture f = { 0 };
	struct release_queue r = { .inflight = 99, .submitted = 99,
				   .reaped = 99 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = release_queue_cb,
		      .ctx = &r);
	uint8_t *p = map_filled(4 * PAGE, 1);
	struct sva_mirror *m;

	open_bind(&f, NULL);
	r.bind = f.bind;
	r.pasid = f.pasid;
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &mo, &m), 0);
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(r.calls, 1);
	/* Allowed from a callback: a count, not garbage. */
	ck_assert_int_eq(r.inflight, 0);
	/* Either refused with an errno, or queued and completed. */
	if (r.submitted != 1) {
		ck_assert_int_lt(r.submitted, 0);
	} else {
		ck_assert_msg(r.reaped == 1,
			      "a NOP queued from a RELEASE callback never completed (sva_wait returned %d)",
			      r.reaped);
		ck_assert_uint_eq(r.status, SVA_STATUS_SUCCESS);
	}
	sva_dev_close(f.dev);
	munmap(p, 4 * PAGE);
}
END_TEST

/*
 * sva_unbind(3)/sva_mirror_register(3): unbind calls every mirror still
 * registered with SVA_INVAL_RELEASE and unregisters it, and a callback may
 * register mirrors. A callback that unregisters its own mirror and then
 * registers a new one while another thread is in sva_unbind() (which, its
 * index empty, only waits for that callback to return) gets 0 and a handle
 * on a mirror that never sees RELEASE and whose binding is freed under it.
 */
struct reg_unbind {
	struct sva_bind *bind;
	uint8_t *p;
	int phase;		/* 1: own mirror unregistered, 2: unbinding */
	int unreg, reg, releases;
	struct sva_mirror *n;
};

static void reg_unbind_cb(struct sva_mirror *m, uint64_t start, uint64_t end,
			  enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct reg_unbind *r = ctx;
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = reg_unbind_cb,
		      .ctx = r);

	(void)start, (void)end, (void)seq;
	if (ev == SVA_INVAL_RELEASE) {
		__atomic_add_fetch(&r->releases, 1, __ATOMIC_ACQ_REL);
		return;
	}
	if (m == r->n || __atomic_load_n(&r->phase, __ATOMIC_ACQUIRE))
		return;
	r->unreg = sva_mirror_unregister(m);
	__atomic_store_n(&r->phase, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 5000 &&
	     __atomic_load_n(&r->phase, __ATOMIC_ACQUIRE) != 2; i++)
		usleep(1000);
	usleep(200000);	/* sva_unbind() now waits for this callback */
	r->reg = sva_mirror_register(r->bind, (uintptr_t)r->p, 4 * PAGE, &mo,
				     &r->n);
}

START_TEST(test_regress_register_from_callback_during_unbind)
{
	struct fixture f = { 0 };
	struct reg_unbind r = { .unreg = 99, .reg = 99 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = reg_unbind_cb,
		      .ctx = &r);
	struct sva_mirror *m;
	struct sva_desc d;
	int i;

	r.p = map_filled(4 * PAGE, 1);
	open_bind(&f, NULL);
	r.bind = f.bind;
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)r.p, 4 * PAGE,
					     &mo, &m), 0);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, r.p,
		      4 * PAGE);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(madvise(r.p, 4 * PAGE, MADV_DONTNEED), 0);
	for (i = 0; i < 5000 &&
	     __atomic_load_n(&r.phase, __ATOMIC_ACQUIRE) != 1; i++)
		usleep(1000);
	ck_assert_int_eq(r.phase, 1);
	__atomic_store_n(&r.phase, 2, __ATOMIC_RELEASE);
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(r.unreg, 0);
	/* Refused, or registered and then released by the unbind. */
	if (r.reg == 0)
		ck_assert_msg(r.releases == 1,
			      "a mirror registered during sva_unbind() got %d RELEASE callbacks; its binding is gone",
			      r.releases);
	else
		ck_assert_int_lt(r.reg, 0);
	sva_dev_close(f.dev);
	munmap(r.p, 4 * PAGE);
}
END_TEST

/* A callback that forks; the child binds a device of its own. */
struct fork_in_cb {
	atomic_int done;
	int child_status;
	const char *child_dev;	/* the device the child opens */
};

static void fork_in_callback(struct sva_mirror *m, uint64_t start,
			     uint64_t end, enum sva_inval_event ev,
			     uint64_t seq, void *ctx)
{
	struct fork_in_cb *c = ctx;
	struct sva_dev *dev;
	struct sva_bind *bind;
	pid_t pid;
	int err;

	(void)m, (void)start, (void)end, (void)seq;
	if (ev != SVA_INVAL_DISCARD || atomic_load(&c->done))
		return;
	pid = fork();
	if (!pid) {
		err = sva_dev_open(c->child_dev, NULL, &dev);
		if (!err)
			err = sva_bind(dev, NULL, &bind);
		if (!err)
			err = sva_unbind(bind);
		_exit(err ? 100 + (-err & 0x7f) : 0);
	}
	if (pid < 0 || waitpid(pid, &c->child_status, 0) != pid)
		c->child_status = -1;
	atomic_store(&c->done, 1);
}

/*
 * Regression: the thread-local marker of the callbacks a thread runs was
 * inherited by a child forked from inside a callback, so the child's own
 * sva_bind() failed with -EDEADLK though it ran no callback.
 */
START_TEST(test_regress_fork_in_callback_child_binds)
{
	struct fixture f = { 0 };
	uint8_t *p = map_filled(4 * PAGE, 1);
	struct fork_in_cb c = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = fork_in_callback,
		      .ctx = &c);
	struct sva_mirror *m;

	/* The child's bind is the library's (its callback marker), any
	 * device's: sim0 where the parent's is a VFIO one, which one
	 * process opens at a time. */
	c.child_dev = test_device();
	if (test_on_vfio() &&
	    test_skip(__func__, "the child binds sim0, not the parent's VFIO device (opened by one process at a time)"))
		c.child_dev = "sim0";
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &mo, &m), 0);
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	for (int i = 0; i < 1000 && !atomic_load(&c.done); i++)
		usleep(10000);
	ck_assert_msg(atomic_load(&c.done), "callback never ran");
	ck_assert_msg(WIFEXITED(c.child_status) &&
		      WEXITSTATUS(c.child_status) == 0,
		      "child of a callback: status %#x (100 + errno)",
		      c.child_status);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, 4 * PAGE);
	close_bind(&f);
}
END_TEST

Suite *unbind_suite(void)
{
	Suite *s = suite_create("unbind");
	TCase *tc = tcase_create("unbind");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_regress_release_callback_uses_queue);
	tcase_add_test(tc, test_regress_register_from_callback_during_unbind);
#ifndef SVA_ASAN_BUILD
	/* Its child allocates after fork(): GCC 12's ASan allocator isn't
	 * fork-safe (see test_fork.c). */
	tcase_add_test(tc, test_regress_fork_in_callback_child_binds);
#else
	(void)test_regress_fork_in_callback_child_binds;
#endif
	suite_add_tcase(s, tc);
	return s;
}
