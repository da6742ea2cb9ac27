// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Every public call from inside an invalidation callback, while a second
 * invalidation of the same mirror arrives (issue 7, defect 5): the calls a
 * callback may make work, the others fail with -EDEADLK; none hangs, and
 * the second invalidation advances the sequence while the callback runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

#define NPAGES 8

struct cbt {
	struct fixture f;
	uint8_t *p;
	struct sva_mirror *m, *other, *extra;
	int entry;
	int armed;
	int state;		/* 1: callback waits, 2: go, 3: done */
	int result;		/* 0, or the line of the call that failed */
	int calls;
};

#define EXPECT(cond) do { if (!(cond)) return __LINE__; } while (0)

static int cb_read_seq(struct cbt *c, struct sva_mirror *m)
{
	uint64_t seq = sva_mirror_read_begin(m);

	(void)c;
	EXPECT(seq != 0);
	(void)sva_mirror_read_retry(m, seq);
	EXPECT(sva_mirror_read_retry(m, 0));
	return 0;
}

static int cb_snapshot(struct cbt *c, struct sva_mirror *m)
{
	uint8_t st[2];

	EXPECT(sva_mirror_snapshot(m, (uintptr_t)c->p + PAGE, PAGE, st, 0) == 0);
	EXPECT(sva_mirror_snapshot(m, (uintptr_t)c->p + 3 * PAGE, PAGE, st,
				   SVA_ACCESS_READ) == 0);
	EXPECT(st[0] & SVA_PAGE_VALID);
	return 0;
}

static int cb_stats(struct cbt *c, struct sva_mirror *m)
{
	struct sva_stats s = { .sz = sizeof(s) };

	(void)m;
	EXPECT(sva_bind_stats(c->f.bind, &s) == 0);
	EXPECT(sva_dev_stats(c->f.dev, &s) == 0);
	EXPECT(sva_bind_stats_reset(c->f.bind) == 0);
	EXPECT(sva_dev_stats_reset(c->f.dev) == 0);
	return 0;
}

static int cb_queue(struct cbt *c, struct sva_mirror *m)
{
	struct sva_desc d = desc_make(&c->f, SVA_OP_NOP, 0, NULL, NULL, 0);
	struct sva_completion comp;

	(void)m;
	EXPECT(sva_inflight(c->f.bind) == 0);
	EXPECT(sva_queue_stop(c->f.bind) == 0);
	EXPECT(sva_queue_start(c->f.bind) == 0);
	EXPECT(sva_submit(c->f.bind, &d, 1) == 1);
	EXPECT(sva_wait(c->f.bind, &comp, 1, 1, 10000) == 1);
	EXPECT(comp.status == SVA_STATUS_SUCCESS);
	EXPECT(sva_desc_resume(&d, &comp) == -EINVAL);
	return 0;
}

/* Waiting forever: the callback's thread runs the descriptors itself. */
static int cb_queue_forever(struct cbt *c, struct sva_mirror *m)
{
	uint8_t *src = c->p + 4 * PAGE, *dst = c->p + 7 * PAGE;
	struct sva_completion comp[2];
	struct sva_desc d[2];

	(void)m;
	d[0] = desc_make(&c->f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src,
			 dst, PAGE);
	d[1] = desc_make(&c->f, SVA_OP_CRC32C, 0, dst, NULL, PAGE);
	d[0].user_data = 1;
	d[1].user_data = 2;
	EXPECT(sva_submit(c->f.bind, d, 2) == 2);
	EXPECT(sva_wait(c->f.bind, comp, 2, 2, -1) == 2);
	EXPECT(comp[0].user_data == 1 && comp[1].user_data == 2);
	EXPECT(comp[0].status == SVA_STATUS_SUCCESS &&
	       comp[0].bytes_done == PAGE);
	EXPECT(comp[1].status == SVA_STATUS_SUCCESS &&
	       comp[1].result == sva_crc32c(0, src, PAGE));
	EXPECT(!memcmp(src, dst, PAGE));
	EXPECT(sva_inflight(c->f.bind) == 0);
	return 0;
}

/* The same in one call, forever and with a timeout. */
static int cb_submit_and_wait(struct cbt *c, struct sva_mirror *m)
{
	uint8_t *src = c->p + 4 * PAGE, *dst = c->p + 7 * PAGE;
	struct sva_completion comp[2];
	struct sva_desc d[2];

	(void)m;
	d[0] = desc_make(&c->f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src,
			 dst, PAGE);
	d[1] = desc_make(&c->f, SVA_OP_CRC32C, 0, dst, NULL, PAGE);
	for (int timed = 0; timed < 2; timed++) {
		EXPECT(sva_submit_and_wait(c->f.bind, d, 2, comp, 2, 2,
					   timed ? 10000 : -1) == 2);
		EXPECT(comp[0].status == SVA_STATUS_SUCCESS &&
		       comp[0].bytes_done == PAGE);
		EXPECT(comp[1].status == SVA_STATUS_SUCCESS &&
		       comp[1].result == sva_crc32c(0, src, PAGE));
	}
	EXPECT(!memcmp(src, dst, PAGE));
	EXPECT(sva_inflight(c->f.bind) == 0);
	return 0;
}

static int cb_handles(struct cbt *c, struct sva_mirror *m)
{
	SVA_OPTS_INIT(sva_dev_caps, caps);
	struct sva_dev *dev2;
	uint32_t pasid;

	(void)m;
	EXPECT(sva_bind_pasid(c->f.bind, &pasid) == 0 && pasid == c->f.pasid);
	EXPECT(sva_dev_caps(c->f.dev, &caps) == 0);
	EXPECT(sva_dev_reserved_regions(c->f.dev, NULL, 0) >= 0);
	EXPECT(sva_dev_fd(c->f.dev) >= 0);
	EXPECT(sva_dev_name(c->f.dev) != NULL);
	EXPECT(sva_dev_quarantined(c->f.dev) == 0);
	EXPECT(sva_dev_reset(c->f.dev) == 0);
	/* A device without bindings may be opened and closed (from its fd:
	 * not a VFIO one, whose group or cdev the process opens once). */
	if (caps.container[0]) {
		test_skip("cb_handles", "sva_dev_open_fd() (a VFIO device is not opened from a fd)");
	} else {
		EXPECT(sva_dev_open_fd(sva_dev_fd(c->f.dev), NULL, &dev2) == 0);
		sva_dev_close(dev2);
	}
	return 0;
}

static int cb_globals(struct cbt *c, struct sva_mirror *m)
{
	struct sva_dev_desc descs[8];
	sva_print_fn_t old;

	(void)c, (void)m;
	EXPECT(sva_devices(descs, 8) >= 1);
	EXPECT(sva_status_str(SVA_STATUS_SUCCESS) != NULL);
	EXPECT(sva_crc32c(0, "a", 1) != 0);
	EXPECT(sva_version() != NULL);
	EXPECT(sva_inject(SVA_INJECT_MAX, NULL) == -EINVAL);
	EXPECT(sva_inject_count(SVA_INJECT_ALLOC) >= 0);
	old = sva_set_print(NULL);
	sva_set_print(old);
	return 0;
}

static int cb_register(struct cbt *c, struct sva_mirror *m)
{
	struct sva_mirror *tmp;

	(void)m;
	EXPECT(sva_mirror_register(c->f.bind, (uintptr_t)c->p + 5 * PAGE,
				   PAGE, NULL, &c->extra) == 0);
	EXPECT(sva_mirror_register(c->f.bind, (uintptr_t)c->p, PAGE, NULL,
				   &tmp) == 0);
	EXPECT(sva_mirror_unregister(tmp) == 0);
	return 0;
}

static int cb_unregister_other(struct cbt *c, struct sva_mirror *m)
{
	(void)m;
	EXPECT(sva_mirror_unregister(c->other) == 0);
	c->other = NULL;
	return 0;
}

static int cb_unregister_self(struct cbt *c, struct sva_mirror *m)
{
	EXPECT(sva_mirror_unregister(m) == 0);
	c->m = NULL;
	return 0;
}

static int cb_forbidden(struct cbt *c, struct sva_mirror *m)
{
	struct sva_bind *b2 = NULL;

	(void)m;
	EXPECT(sva_unbind(c->f.bind) == -EDEADLK);
	EXPECT(sva_bind(c->f.dev, NULL, &b2) == -EDEADLK && !b2);
	/* void: refused, the device stays usable (checked after). */
	sva_dev_close(c->f.dev);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct cbt *c, struct sva_mirror *m);
} calls[] = {
	{ "read_begin/read_retry", cb_read_seq },
	{ "snapshot", cb_snapshot },
	{ "stats", cb_stats },
	{ "queue", cb_queue },
	{ "queue, waiting forever", cb_queue_forever },
	{ "submit_and_wait", cb_submit_and_wait },
	{ "handles", cb_handles },
	{ "globals", cb_globals },
	{ "mirror_register", cb_register },
	{ "unregister other", cb_unregister_other },
	{ "unregister self", cb_unregister_self },
	{ "unbind, bind, dev_close: -EDEADLK", cb_forbidden },
};

static bool wait_state(int *state, int want)
{
	for (int i = 0; i < 20000; i++) {
		if (__atomic_load_n(state, __ATOMIC_ACQUIRE) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

static void callback(struct sva_mirror *m, uint64_t start, uint64_t end,
		     enum sva_inval_event ev, uint64_t seq, void *ctx)
{
	struct cbt *c = ctx;

	(void)start, (void)end, (void)ev, (void)seq;
	__atomic_add_fetch(&c->calls, 1, __ATOMIC_RELEASE);
	if (!__atomic_exchange_n(&c->armed, 0, __ATOMIC_ACQ_REL))
		return;
	__atomic_store_n(&c->state, 1, __ATOMIC_RELEASE);
	/* The second invalidation arrives while this one runs. */
	if (!wait_state(&c->state, 2))
		c->result = -1;
	else
		c->result = calls[c->entry].fn(c, m);
	__atomic_store_n(&c->state, 3, __ATOMIC_RELEASE);
}

/* Memory the device touched, then unmapped: must not hang. */
static void device_touch_and_unmap(struct fixture *f)
{
	uint8_t *src = map_filled(2 * PAGE, 7), *dst = map_filled(2 * PAGE, 8);
	size_t len = test_len(2 * PAGE);
	struct sva_desc d = desc_make(f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT,
				      src, dst, len);

	ck_assert_uint_eq(run1(f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	ck_assert_int_eq(munmap(src, 2 * PAGE), 0);
	ck_assert_int_eq(munmap(dst, 2 * PAGE), 0);
}

START_TEST(test_regress_callback_calls_libsva)
{
	static struct cbt c;
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = callback, .ctx = &c);
	uint64_t seq;

	memset(&c, 0, sizeof(c));
	c.entry = _i;
	open_bind(&c.f, NULL);
	c.p = map_filled(NPAGES * PAGE, 1);
	ck_assert_int_eq(sva_mirror_register(c.f.bind, (uintptr_t)c.p,
					     4 * PAGE, &mo, &c.m), 0);
	ck_assert_int_eq(sva_mirror_register(c.f.bind,
					     (uintptr_t)c.p + 4 * PAGE,
					     4 * PAGE, NULL, &c.other), 0);
	device_touch_and_unmap(&c.f);
	__atomic_store_n(&c.armed, 1, __ATOMIC_RELEASE);

	ck_assert_int_eq(madvise(c.p, PAGE, MADV_DONTNEED), 0);
	ck_assert_msg(wait_state(&c.state, 1), "%s: no callback",
		      calls[_i].name);
	/* A second invalidation while the callback runs: it advances the
	 * sequence without waiting for the callback. */
	seq = sva_mirror_read_begin(c.m);
	ck_assert_int_eq(madvise(c.p + 2 * PAGE, PAGE, MADV_DONTNEED), 0);
	ck_assert(sva_mirror_read_retry(c.m, seq));
	__atomic_store_n(&c.state, 2, __ATOMIC_RELEASE);
	ck_assert_msg(wait_state(&c.state, 3), "%s: callback hangs",
		      calls[_i].name);
	ck_assert_msg(c.result == 0, "%s: failed at line %d", calls[_i].name,
		      c.result);

	/* The second invalidation reaches the callback (unless it went). */
	if (c.m)
		for (int i = 0; i < 20000 &&
		     __atomic_load_n(&c.calls, __ATOMIC_ACQUIRE) < 2; i++)
			usleep(1000);
	if (c.m)
		ck_assert_int_ge(__atomic_load_n(&c.calls, __ATOMIC_ACQUIRE), 2);
	/* Nothing is stuck: the device works, munmap() returns. */
	device_touch_and_unmap(&c.f);
	ck_assert_int_eq(munmap(c.p + 6 * PAGE, PAGE), 0);
	if (c.m)
		ck_assert_int_eq(sva_mirror_unregister(c.m), 0);
	if (c.other)
		ck_assert_int_eq(sva_mirror_unregister(c.other), 0);
	if (c.extra)
		ck_assert_int_eq(sva_mirror_unregister(c.extra), 0);
	close_bind(&c.f);
	munmap(c.p, NPAGES * PAGE);
}
END_TEST

struct selfunreg {
	int calls;
	int freed_ok;
};

static void unregister_self_cb(struct sva_mirror *m, uint64_t start,
			       uint64_t end, enum sva_inval_event ev,
			       uint64_t seq, void *ctx)
{
	struct selfunreg *s = ctx;

	(void)start, (void)end, (void)seq;
	__atomic_add_fetch(&s->calls, 1, __ATOMIC_RELEASE);
	if (ev == SVA_INVAL_RELEASE)
		s->freed_ok = sva_mirror_unregister(m) == 0;
}

/* The RELEASE callbacks of unbind may unregister their mirror too. */
START_TEST(test_unbind_release_callback_unregisters)
{
	struct fixture f = { 0 };
	struct selfunreg s = { 0 };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = unregister_self_cb,
		      .ctx = &s);
	uint8_t *p = map_filled(4 * PAGE, 1);
	struct sva_mirror *m;

	open_bind(&f, NULL);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(sva_mirror_register(f.bind,
				(uintptr_t)p + (uint64_t)i * PAGE, PAGE, &mo,
				&m), 0);
	close_bind(&f);
	ck_assert_int_eq(s.calls, 4);
	ck_assert_int_eq(s.freed_ok, 1);
	munmap(p, 4 * PAGE);
}
END_TEST

Suite *callback_suite(void)
{
	Suite *s = suite_create("callback");
	TCase *tc = tcase_create("callback");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_regress_callback_calls_libsva, 0,
			    (int)(sizeof(calls) / sizeof(calls[0])));
	tcase_add_test(tc, test_unbind_release_callback_unregisters);
	suite_add_tcase(s, tc);
	return s;
}
