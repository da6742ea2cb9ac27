// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Thread cancellation: every libsva call that can sleep, its thread
 * cancelled while it sleeps. The contract (libsva(7), THREADS): sva_wait()
 * and sva_submit_and_wait() are cancellation points while they sleep with
 * nothing reaped; no other call is one (cancellation acts at the caller's
 * next cancellation point after it returns). Either way a cancelled thread
 * leaves no library lock held and loses no completion.
 *
 * Before: a thread cancelled in sva_wait()'s sleep went away holding the
 * queue's lock (every later call on the binding hung) and took the
 * completions it had reaped with it; one cancelled in sva_unbind() or
 * sva_mirror_unregister() while a callback ran went away holding the
 * mirror lock, and the callback's thread hung on it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unit.h"

/* A thread in one libsva call; what the call returned, if it did. */
struct caller {
	struct fixture *f;
	struct sva_completion comps[4];
	unsigned int max, min;
	int timeout_ms;
	atomic_int returned;	/* 1 + the call's result stored */
	int ret;
	struct sva_desc desc;	/* sva_submit_and_wait()'s */
	struct sva_mirror *mirror;
	bool async;		/* asynchronous cancellation type */
	atomic_int tid;		/* the calling thread, once it runs */
};

static void *call_wait(void *arg)
{
	struct caller *c = arg;

	/* (POSIX: undefined for a call not async-cancel-safe; libsva keeps
	 * its locks right all the same, see SVA_NO_CANCEL.) */
	if (c->async)
		pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, NULL);
	c->ret = sva_wait(c->f->bind, c->comps, c->max, c->min, c->timeout_ms);
	atomic_store(&c->returned, 1);
	pthread_testcancel();
	return NULL;
}

static void *call_submit_and_wait(void *arg)
{
	struct caller *c = arg;

	c->ret = sva_submit_and_wait(c->f->bind, &c->desc, 1, c->comps,
				     c->max, c->min, c->timeout_ms);
	atomic_store(&c->returned, 1);
	pthread_testcancel();
	return NULL;
}

static void *call_unbind(void *arg)
{
	struct caller *c = arg;

	atomic_store(&c->tid, (int)syscall(SYS_gettid));
	c->ret = sva_unbind(c->f->bind);
	atomic_store(&c->returned, 1);
	pthread_testcancel();
	return NULL;
}

static void *call_mirror_unregister(void *arg)
{
	struct caller *c = arg;

	atomic_store(&c->tid, (int)syscall(SYS_gettid));
	c->ret = sva_mirror_unregister(c->mirror);
	atomic_store(&c->returned, 1);
	pthread_testcancel();
	return NULL;
}

static void *call_snapshot_fault(void *arg)
{
	struct caller *c = arg;
	uint8_t state = 0;
	struct sva_mirror *m = c->mirror;

	c->ret = sva_mirror_snapshot(m, c->desc.src, PAGE, &state,
				     SVA_ACCESS_READ);
	c->desc.pattern = state;
	atomic_store(&c->returned, 1);
	pthread_testcancel();
	return NULL;
}

/* Cancel @t (give it a moment to get to sleep first: the test holds
 * either way, a cancellation pending before the sleep acts there). */
static void *cancel_join(pthread_t t)
{
	void *res = NULL;

	usleep(20000);
	ck_assert_int_eq(pthread_cancel(t), 0);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	return res;
}

/*
 * Wait until @c's thread sleeps in a futex (inside its libsva call, waiting
 * for the callback): a cancellation sent before it got there would test
 * nothing of the call.
 */
static void wait_in_futex(struct caller *c)
{
	char path[64], buf[64];
	int nr = -1;

	for (int i = 0; i < 5000; i++) {
		int tid = atomic_load(&c->tid);
		FILE *f;

		if (tid) {
			snprintf(path, sizeof(path), "/proc/self/task/%d/syscall",
				 tid);
			f = fopen(path, "r");
			if (f && fgets(buf, sizeof(buf), f))
				nr = atoi(buf);
			if (f)
				fclose(f);
			if (nr == SYS_futex)
				return;
		}
		usleep(1000);
	}
	ck_abort_msg("the caller never slept in its call (syscall %d)", nr);
}

/* The binding still works: a copy through it completes, byte exact. */
static void binding_works(struct fixture *f)
{
	uint8_t *src = map_filled(2 * PAGE, 7), *dst = src + PAGE;
	struct sva_desc d = desc_make(f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, PAGE);

	ck_assert_uint_eq(run1(f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, PAGE), 0);
	munmap(src, 2 * PAGE);
}

/*
 * Queue stopped: nothing completes, the waiter sleeps with nothing
 * reaped and is cancelled there. Then the queue restarts and another
 * wait gets both completions (none lost, none doubled).
 */
static void cancel_sleeping_waiter(bool submit_and_wait, bool async)
{
	uint8_t *p = map_filled(4 * PAGE, 3);
	struct fixture f = { 0 };
	struct caller c = { .f = &f, .max = 2, .min = 2, .timeout_ms = -1,
			    .async = async };
	struct sva_completion got[4];
	struct sva_desc d;
	pthread_t t;
	int n = 0, r;

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p, p + 2 * PAGE,
		      PAGE);
	d.user_data = 1;
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), 1);
	c.desc = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
			   p + PAGE, p + 3 * PAGE, PAGE);
	c.desc.user_data = 2;
	if (!submit_and_wait)
		ck_assert_int_eq(sva_submit(f.bind, &c.desc, 1), 1);
	ck_assert_int_eq(pthread_create(&t, NULL, submit_and_wait ?
					call_submit_and_wait : call_wait, &c),
			 0);
	ck_assert_ptr_eq(cancel_join(t), PTHREAD_CANCELED);
	ck_assert_int_eq(atomic_load(&c.returned), 0);

	/* The queue's lock is free, the queued work runs. */
	ck_assert_int_eq(sva_queue_start(f.bind), 0);
	while (n < 2) {
		r = sva_wait(f.bind, got + n, 4 - n, 1, 10000);
		ck_assert_int_gt(r, 0);
		n += r;
	}
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(got[0].user_data + got[1].user_data, 3);
	ck_assert_uint_eq(got[0].status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(got[1].status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(p, p + 2 * PAGE, 2 * PAGE), 0);
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	binding_works(&f);
	close_bind(&f);
	munmap(p, 4 * PAGE);
}

START_TEST(test_regress_cancel_in_wait)
{
	cancel_sleeping_waiter(false, false);
}
END_TEST

/* The caller's type asynchronous: cancelled all the same in the sleep,
 * the queue's lock left free, nothing lost. */
START_TEST(test_cancel_async_type_in_wait)
{
	cancel_sleeping_waiter(false, true);
}
END_TEST

START_TEST(test_regress_cancel_in_submit_and_wait)
{
	cancel_sleeping_waiter(true, false);
}
END_TEST

/* A userfaultfd of the test's: a page that stays missing until told. */
struct held_page {
	int uffd;
	uint8_t *page;
};

/*
 * Software and VFIO devices only (their page requests populate the page,
 * and block on the application's userfaultfd; the kernel engine's don't):
 * false, said why, elsewhere or without a userfaultfd.
 */
static bool hold_page(struct held_page *h, const char *test)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };

	/* vfio0 populates a page (MADV_POPULATE_*) as sim's page request
	 * does: the application's userfaultfd holds both. */
	if (!test_on_sim() && !test_on_vfio())
		return !test_skip(test, "the kernel engine doesn't wait on a userfaultfd");
	h->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (h->uffd < 0) {
		fprintf(stderr, "%s: no userfaultfd (%s): skipped\n", test,
			strerror(errno));
		return false;
	}
	ck_assert_int_eq(ioctl(h->uffd, UFFDIO_API, &api), 0);
	h->page = map_fresh(PAGE, PROT_READ | PROT_WRITE);
	reg.range.start = (uintptr_t)h->page;
	reg.range.len = PAGE;
	ck_assert_int_eq(ioctl(h->uffd, UFFDIO_REGISTER, &reg), 0);
	return true;
}

/* Wait until something faults on the held page (5 s at most). */
static void held_page_faulted(struct held_page *h)
{
	struct pollfd pfd = { .fd = h->uffd, .events = POLLIN };
	struct uffd_msg msg;

	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	ck_assert_int_eq(read(h->uffd, &msg, sizeof(msg)), sizeof(msg));
	ck_assert_uint_eq(msg.event, UFFD_EVENT_PAGEFAULT);
}

static void release_page(struct held_page *h, uint8_t byte)
{
	static uint8_t buf[PAGE];
	struct uffdio_copy cp = {
		.dst = (uintptr_t)h->page, .src = (uintptr_t)buf, .len = PAGE,
	};

	memset(buf, byte, PAGE);
	ck_assert_int_eq(ioctl(h->uffd, UFFDIO_COPY, &cp), 0);
}

/*
 * The waiter has reaped one completion and sleeps for the second (the
 * device blocks on a page the application's userfaultfd holds) when it is
 * cancelled. The reaped completion must not go with it: either the wait
 * returns it (cancellation deferred to the caller's next cancellation
 * point) or it stays queued for the next wait. Not on kmod0: the
 * kernel engine doesn't wait on a userfaultfd.
 */
START_TEST(test_regress_cancel_keeps_reaped)
{
	struct fixture f = { 0 };
	struct caller c = { .f = &f, .max = 2, .min = 2, .timeout_ms = 60000 };
	struct sva_completion got[4];
	struct held_page h;
	struct sva_desc d[2];
	unsigned long seen = 0;
	pthread_t t;
	int n = 0, r;
	uint8_t *p;
	void *res;

	if (!hold_page(&h, __func__))
		return;
	p = map_filled(2 * PAGE, 5);
	open_bind(&f, NULL);
	d[0] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p, p + PAGE,
			 PAGE);
	d[0].user_data = 1;
	d[1] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, h.page, p,
			 PAGE);
	d[1].user_data = 2;
	ck_assert_int_eq(sva_submit(f.bind, d, 2), 2);
	ck_assert_int_eq(pthread_create(&t, NULL, call_wait, &c), 0);
	held_page_faulted(&h);	/* d[0] done, d[1] blocked */
	/* The waiter reaped d[0] (in flight counts down at the reap). */
	for (int i = 0; i < 5000 && sva_inflight(f.bind) != 1; i++)
		usleep(1000);
	ck_assert_int_eq(sva_inflight(f.bind), 1);
	ck_assert_int_eq(pthread_cancel(t), 0);
	usleep(20000);
	release_page(&h, 0x5a);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	ck_assert_ptr_eq(res, PTHREAD_CANCELED);
	/* Having reaped one, it was no cancellation point: it returned. */
	ck_assert_int_eq(atomic_load(&c.returned), 1);
	ck_assert_int_eq(c.ret, 2);

	/* What the cancelled wait returned, then what is left. */
	fprintf(stderr, "%s: the cancelled wait %s %d\n", __func__,
		atomic_load(&c.returned) ? "returned" : "was cancelled with",
		atomic_load(&c.returned) ? c.ret : 0);
	if (atomic_load(&c.returned) && c.ret > 0) {
		memcpy(got, c.comps, (size_t)c.ret * sizeof(got[0]));
		n = c.ret;
	}
	while (n < 2 && sva_inflight(f.bind) > 0) {
		r = sva_wait(f.bind, got + n, 4 - n, 1, 10000);
		ck_assert_int_gt(r, 0);
		n += r;
	}
	ck_assert_int_eq(n, 2);
	for (int i = 0; i < n; i++) {
		ck_assert_uint_eq(got[i].status, SVA_STATUS_SUCCESS);
		seen |= 1ul << got[i].user_data;
	}
	ck_assert_uint_eq(seen, 6);	/* 1 and 2, once each */
	ck_assert_uint_eq(p[0], 0x5a);
	binding_works(&f);
	close_bind(&f);
	close(h.uffd);
	munmap(h.page, PAGE);
	munmap(p, 2 * PAGE);
}
END_TEST

/*
 * A faulting snapshot blocks on a page the application's userfaultfd holds
 * (software device: its page request populates the page); its thread is
 * cancelled meanwhile. The snapshot finishes (it is no cancellation point)
 * once the page comes, and says the page is there.
 */
START_TEST(test_regress_cancel_in_faulting_snapshot)
{
	struct fixture f = { 0 };
	struct caller c = { .f = &f };
	struct held_page h;
	pthread_t t;
	void *res;

	if (!hold_page(&h, __func__))
		return;
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)h.page, PAGE,
					     NULL, &c.mirror), 0);
	c.desc.src = (uintptr_t)h.page;
	ck_assert_int_eq(pthread_create(&t, NULL, call_snapshot_fault, &c), 0);
	held_page_faulted(&h);
	usleep(20000);
	ck_assert_int_eq(pthread_cancel(t), 0);
	usleep(20000);
	release_page(&h, 0x33);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	ck_assert_ptr_eq(res, PTHREAD_CANCELED);
	ck_assert_int_eq(atomic_load(&c.returned), 1);
	ck_assert_int_eq(c.ret, 0);
	ck_assert_uint_ne(c.desc.pattern & SVA_PAGE_VALID, 0);
	ck_assert_uint_eq(h.page[PAGE - 1], 0x33);
	ck_assert_int_eq(sva_mirror_unregister(c.mirror), 0);
	binding_works(&f);
	close_bind(&f);
	close(h.uffd);
	munmap(h.page, PAGE);
}
END_TEST

/* A callback that blocks until told, counting its calls. */
struct blocker {
	atomic_int in, release;
};

static void block_inval(struct sva_mirror *m, uint64_t start, uint64_t end,
			enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct blocker *b = ctx;

	(void)m, (void)start, (void)end, (void)seq;
	if (ev != SVA_INVAL_DISCARD)
		return;
	atomic_fetch_add(&b->in, 1);
	while (!atomic_load(&b->release))
		usleep(1000);
}

static void *discard_page(void *arg)
{
	madvise(arg, PAGE, MADV_DONTNEED);
	return NULL;
}

/*
 * A callback runs (blocked on the test) on a mirror while another thread
 * unbinds, or unregisters the mirror: that call waits for the callback,
 * and the thread is cancelled there. The call must finish what it began
 * (it is no cancellation point) and leave no lock held: the callback
 * returns, the call returns 0, the thread is cancelled after.
 */
static void cancel_teardown_in_callback(bool unbind)
{
	uint8_t *p = map_filled(2 * PAGE, 9);
	struct blocker b = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = block_inval,
		      .ctx = &b);
	struct fixture f = { 0 };
	struct caller c = { .f = &f };
	struct sva_desc d;
	pthread_t dt, t;
	void *res;

	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 2 * PAGE,
					     &mo, &c.mirror), 0);
	/* The device touched the pages: their discard reaches it. */
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p, p + PAGE,
		      PAGE);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(pthread_create(&dt, NULL, discard_page, p), 0);
	for (int i = 0; i < 5000 && !atomic_load(&b.in); i++)
		usleep(1000);
	ck_assert_int_eq(atomic_load(&b.in), 1);

	ck_assert_int_eq(pthread_create(&t, NULL, unbind ? call_unbind :
					call_mirror_unregister, &c), 0);
	wait_in_futex(&c);
	ck_assert_int_eq(pthread_cancel(t), 0);
	usleep(20000);
	atomic_store(&b.release, 1);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	ck_assert_ptr_eq(res, PTHREAD_CANCELED);
	ck_assert_int_eq(atomic_load(&c.returned), 1);
	ck_assert_int_eq(c.ret, 0);
	ck_assert_int_eq(pthread_join(dt, NULL), 0);
	if (unbind) {
		f.bind = NULL;
		close_bind(&f);
	} else {
		binding_works(&f);
		close_bind(&f);
	}
	munmap(p, 2 * PAGE);
}

START_TEST(test_regress_cancel_in_unbind)
{
	cancel_teardown_in_callback(true);
}
END_TEST

START_TEST(test_regress_cancel_in_mirror_unregister)
{
	cancel_teardown_in_callback(false);
}
END_TEST

Suite *cancel_suite(void)
{
	Suite *s = suite_create("cancel");
	TCase *tc = tcase_create("cancel");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_regress_cancel_in_wait);
	tcase_add_test(tc, test_regress_cancel_in_submit_and_wait);
	tcase_add_test(tc, test_cancel_async_type_in_wait);
	tcase_add_test(tc, test_regress_cancel_keeps_reaped);
	tcase_add_test(tc, test_regress_cancel_in_faulting_snapshot);
	tcase_add_test(tc, test_regress_cancel_in_unbind);
	tcase_add_test(tc, test_regress_cancel_in_mirror_unregister);
	suite_add_tcase(s, tc);
	return s;
}
