// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Descriptors run by the waiting thread (issue 9): sva_wait() with no
 * timeout on an idle queue runs the next descriptor itself instead of
 * handing it to the queue worker. Everything must stay as exact as on the
 * worker: the bytes each operation touches, completion order (one runner
 * at a time), a stopped queue running nothing, the worker taking over
 * what a waiter leaves, stats, faults under racing munmap() (a short
 * count, never a signal, no byte outside the range), signals to the
 * waiting thread, fork. Which thread ran a descriptor is checked through
 * the event trace in test_trace.c; callbacks that wait in test_callback.c.
 *
 * Tests looped over _i run the same checks through both paths: _i == 0
 * waits forever (inline), _i == 1 with a timeout (the worker); the ops
 * test also through sva_submit_and_wait() (_i == 2 forever, 3 timed).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static struct fixture f;

static void setup(void)
{
	open_bind(&f, NULL);
}

static void teardown(void)
{
	close_bind(&f);
}

/*
 * Submit @d and wait for it: forever (inline) or with a timeout; with
 * @mode 2 and 3 the same through sva_submit_and_wait().
 */
static struct sva_completion run_mode(struct fixture *x,
				      const struct sva_desc *d, int mode)
{
	int timeout = mode == 0 || mode == 2 ? -1 : 10000;
	struct sva_completion c;

	memset(&c, 0xee, sizeof(c));
	if (mode >= 2) {
		ck_assert_int_eq(sva_submit_and_wait(x->bind, d, 1, &c, 1, 1,
						     timeout), 1);
	} else {
		ck_assert_int_eq(sva_submit(x->bind, d, 1), 1);
		ck_assert_int_eq(sva_wait(x->bind, &c, 1, 1, timeout), 1);
	}
	ck_assert_uint_eq(c.user_data, d->user_data);
	return c;
}

/* The first byte of @p not FILL's @pat from phase 0 (@len: none). */
static size_t first_not_pattern(const uint8_t *p, size_t len, uint64_t pat)
{
	for (size_t k = 0; k < len; k++)
		if (p[k] != (uint8_t)(pat >> (8 * (k % 8))))
			return k;
	return len;
}

/*
 * Every operation, sizes across spans, bursts and chunks, odd alignments:
 * exactly the bytes asked for, the neighbours untouched.
 */
START_TEST(test_inline_ops_exact)
{
	static const uint64_t sizes[] = { 1, 8, 4095, 4097, 3 * 4096 + 123,
					  262144 - 5, 262144 + 4099,
					  (2u << 20) + 77 };
	size_t cap = (2u << 20) + 4 * PAGE;
	uint8_t *a = map_filled(cap, 11), *b = map_filled(cap, 12);
	uint8_t *ref = map_filled(cap, 12);
	int in = _i;	/* run_mode()'s mode */

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t len = sizes[i], ao = (i * 13) % 64, bo = 1 + (i * 29) % 4000;
		uint64_t pat = 0x0102030405060708ull * (i + 1);
		struct sva_desc d;
		struct sva_completion c;

		/* COPY */
		d = desc_make(&f, SVA_OP_COPY, 0, a + ao, b + bo, len);
		c = run_mode(&f, &d, in);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.bytes_done, len);
		ck_assert_int_eq(memcmp(a + ao, b + bo, len), 0);
		ck_assert_uint_eq(b[bo - 1], ref[bo - 1]);
		ck_assert_uint_eq(b[bo + len], ref[bo + len]);
		memcpy(b, ref, cap);

		/* FILL, from a phase a resume would give it */
		d = desc_make(&f, SVA_OP_FILL, 0, NULL, b + bo, len);
		d.pattern = pat;
		c = run_mode(&f, &d, in);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.bytes_done, len);
		ck_assert_uint_eq(first_not_pattern(b + bo, len, pat), len);
		ck_assert_uint_eq(b[bo - 1], ref[bo - 1]);
		ck_assert_uint_eq(b[bo + len], ref[bo + len]);

		/* CRC32C of what FILL wrote */
		d = desc_make(&f, SVA_OP_CRC32C, 0, b + bo, NULL, len);
		d.pattern = i;
		c = run_mode(&f, &d, in);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.result, sva_crc32c((uint32_t)i, b + bo, len));

		/* COMPARE: equal, then a difference at the end and in the
		 * middle (around a 256-byte block edge) */
		memcpy(a + ao, b + bo, len);
		d = desc_make(&f, SVA_OP_COMPARE, 0, a + ao, b + bo, len);
		c = run_mode(&f, &d, in);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.result, 0);
		ck_assert_uint_eq(c.bytes_done, len);
		size_t mid = (len / 2) & ~(size_t)255;
		size_t at_[4] = { len - 1, mid ? mid - 1 : 0, mid, mid + 1 };

		for (size_t k = 0; k < 4; k++) {
			size_t at = MIN(at_[k], len - 1);

			b[bo + at] ^= 0x40;
			c = run_mode(&f, &d, in);
			ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
			ck_assert_uint_eq(c.result, 1);
			ck_assert_uint_eq(c.bytes_done, at);
			b[bo + at] ^= 0x40;
		}
		fill_pattern(a, cap, (unsigned int)i + 20);	/* next source */
		memcpy(b, ref, cap);
	}
	munmap(a, cap);
	munmap(b, cap);
	munmap(ref, cap);
}
END_TEST

/*
 * A chain whose every descriptor depends on the one before: FILL a page
 * with round r, COPY it on, CRC32C the copy. Run out of order (two
 * runners at once, or a waiter overtaking the worker), some CRC is wrong.
 * Submitted in batches, reaped one by one (inline each time the queue is
 * idle, the worker otherwise): completions in submission order.
 */
#define ROUNDS 200
static void chain_descs(struct fixture *x, uint8_t *p, unsigned int r,
			struct sva_desc *d)
{
	d[0] = desc_make(x, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, PAGE);
	d[0].pattern = 0x1111111111111111ull * (r % 15 + 1) + r;
	d[1] = desc_make(x, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p,
			 p + PAGE, PAGE);
	d[2] = desc_make(x, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT, p + PAGE,
			 NULL, PAGE);
	for (int k = 0; k < 3; k++)
		d[k].user_data = (uint64_t)r * 3 + (uint64_t)k;
}

static uint32_t chain_crc(unsigned int r)
{
	uint64_t pat = 0x1111111111111111ull * (r % 15 + 1) + r;
	uint8_t page[PAGE];

	for (size_t k = 0; k < PAGE; k++)
		page[k] = (uint8_t)(pat >> (8 * (k % 8)));
	return sva_crc32c(0, page, PAGE);
}

static void chain_check(const struct sva_completion *c, uint64_t expect)
{
	ck_assert_uint_eq(c->user_data, expect);
	ck_assert_uint_eq(c->status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(c->bytes_done, PAGE);
	if (expect % 3 == 2)
		ck_assert_uint_eq(c->result, chain_crc((unsigned int)(expect / 3)));
}

START_TEST(test_inline_order_chain)
{
	uint8_t *p = map_filled(2 * PAGE, 3);
	struct sva_desc d[3 * ROUNDS];
	struct sva_completion c[8];
	uint64_t next = 0, submitted = 0;
	unsigned int batch = 1;

	for (unsigned int r = 0; r < ROUNDS; r++)
		chain_descs(&f, p, r, &d[3 * r]);
	while (next < 3 * ROUNDS) {
		/* Batches of 1..7: the worker may hold one when we wait. */
		while (submitted < 3 * ROUNDS && submitted - next < 24) {
			unsigned int n = (unsigned int)MIN(batch, 3 * ROUNDS - submitted);

			ck_assert_int_eq(sva_submit(f.bind, &d[submitted], n), (int)n);
			submitted += n;
			batch = batch % 7 + 1;
		}
		/* One at a time, or a few: up to what is in flight. */
		int max = (int)MIN(1 + next % 3, submitted - next);
		int got = sva_wait(f.bind, c, (unsigned int)max, 1, -1);

		ck_assert_int_ge(got, 1);
		for (int k = 0; k < got; k++)
			chain_check(&c[k], next++);
	}
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	munmap(p, 2 * PAGE);
}
END_TEST

struct reaper {
	struct fixture *x;
	uint64_t last;		/* the last user_data seen, +1 */
	unsigned int got;
	int bad;		/* the first problem's line */
	int *stop;
};

/* Reaps one at a time, forever-waits: each sees increasing user_data. */
static void *reaper_thread(void *arg)
{
	struct reaper *r = arg;
	struct sva_completion c;

	while (!__atomic_load_n(r->stop, __ATOMIC_ACQUIRE)) {
		int n;

		/* Only wait for what is there to wait for (else -EINVAL). */
		if (sva_inflight(r->x->bind) <= 0) {
			sched_yield();
			continue;
		}
		n = sva_wait(r->x->bind, &c, 1, 0, -1);
		if (n < 0 && !r->bad)
			r->bad = __LINE__;
		if (n != 1)
			continue;
		if (c.user_data + 1 <= r->last && !r->bad)
			r->bad = __LINE__;
		if (c.status != SVA_STATUS_SUCCESS && !r->bad)
			r->bad = __LINE__;
		if (c.user_data % 3 == 2 &&
		    c.result != chain_crc((unsigned int)(c.user_data / 3)) &&
		    !r->bad)
			r->bad = __LINE__;
		r->last = c.user_data + 1;
		__atomic_add_fetch(&r->got, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/*
 * Two threads reaping one binding while a third submits: each runs
 * descriptors inline when the queue is idle; the chain still holds.
 */
START_TEST(test_inline_two_waiters_order)
{
	uint8_t *p = map_filled(2 * PAGE, 3);
	struct sva_desc d[3 * ROUNDS];
	struct reaper r[2];
	pthread_t t[2];
	int stop = 0;
	unsigned int done = 0;

	for (unsigned int k = 0; k < ROUNDS; k++)
		chain_descs(&f, p, k, &d[3 * k]);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct reaper){ .x = &f, .stop = &stop };
		ck_assert_int_eq(pthread_create(&t[i], NULL, reaper_thread,
						&r[i]), 0);
	}
	for (unsigned int s = 0; s < 3 * ROUNDS;) {
		int n = sva_submit(f.bind, &d[s], MIN(3u, 3 * ROUNDS - s));

		if (n == -EAGAIN) {
			sched_yield();
			continue;
		}
		ck_assert_int_ge(n, 1);
		s += (unsigned int)n;
		if (s % 9 == 0)
			usleep(100);	/* let the queue go idle now and then */
	}
	for (int i = 0; i < 200000 && done < 3 * ROUNDS; i++) {
		done = __atomic_load_n(&r[0].got, __ATOMIC_ACQUIRE) +
		       __atomic_load_n(&r[1].got, __ATOMIC_ACQUIRE);
		usleep(100);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(r[0].bad, 0);
	ck_assert_int_eq(r[1].bad, 0);
	ck_assert_uint_eq(r[0].got + r[1].got, 3 * ROUNDS);
	munmap(p, 2 * PAGE);
}
END_TEST

struct waiter {
	struct fixture *x;
	struct sva_completion c;
	int n;
	int done;
};

static void *forever_waiter(void *arg)
{
	struct waiter *w = arg;

	w->n = sva_wait(w->x->bind, &w->c, 1, 1, -1);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A stopped queue runs nothing, not even for a waiter that waits forever. */
START_TEST(test_inline_stopped_queue_runs_nothing)
{
	uint8_t *src = map_filled(4 * PAGE, 5), *dst = map_filled(4 * PAGE, 6);
	uint8_t *ref = map_filled(4 * PAGE, 6);
	struct sva_desc d[2];
	struct sva_completion c;
	struct waiter w = { .x = &f };
	pthread_t t;

	d[0] = desc_make(&f, SVA_OP_COPY, 0, src, dst, 2 * PAGE);
	d[1] = desc_make(&f, SVA_OP_COPY, 0, src + 2 * PAGE, dst + 2 * PAGE,
			 2 * PAGE);
	d[0].user_data = 0;
	d[1].user_data = 1;
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	ck_assert_int_eq(sva_submit(f.bind, d, 2), 2);
	ck_assert_int_eq(pthread_create(&t, NULL, forever_waiter, &w), 0);
	/* However long we look: not run, not reaped. */
	for (int i = 0; i < 20; i++) {
		usleep(5000);
		ck_assert_int_eq(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), 0);
		ck_assert_int_eq(memcmp(dst, ref, 4 * PAGE), 0);
		ck_assert_int_eq(sva_inflight(f.bind), 2);
	}
	ck_assert_uint_eq(bind_stats(&f).descs_completed, 0);
	/* Stopped again and started: the waiter gets the first. */
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	ck_assert_int_eq(sva_queue_start(f.bind), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(w.n, 1);
	ck_assert_uint_eq(w.c.user_data, 0);
	ck_assert_uint_eq(w.c.status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(sva_wait(f.bind, &c, 1, 1, -1), 1);
	ck_assert_uint_eq(c.user_data, 1);
	ck_assert_int_eq(memcmp(src, dst, 4 * PAGE), 0);
	ck_assert_uint_eq(bind_stats(&f).descs_completed, 2);
	munmap(src, 4 * PAGE);
	munmap(dst, 4 * PAGE);
	munmap(ref, 4 * PAGE);
}
END_TEST

/*
 * A waiter ran the first of three and left: the worker, which woke for
 * the submission and found the waiter running one, must be woken again
 * for the other two (a wait with a timeout never runs one itself).
 */
START_TEST(test_inline_worker_takes_over)
{
	size_t big = 32u << 20;
	uint8_t *p = map_fresh(big, PROT_READ | PROT_WRITE);
	uint8_t *src = map_filled(2 * PAGE, 7), *dst = map_filled(2 * PAGE, 8);
	struct sva_desc d[3];
	struct sva_completion c[2];

	/* Long enough (faults on fresh memory) for the worker to wake. */
	d[0] = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, big);
	d[1] = desc_make(&f, SVA_OP_COPY, 0, src, dst, PAGE);
	d[2] = desc_make(&f, SVA_OP_COPY, 0, src + PAGE, dst + PAGE, PAGE);
	for (int i = 0; i < 3; i++)
		d[i].user_data = (uint64_t)i;
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(sva_submit(f.bind, d, 3), 3);
		ck_assert_int_eq(sva_wait(f.bind, c, 1, 1, -1), 1);
		ck_assert_uint_eq(c[0].user_data, 0);
		ck_assert_uint_eq(c[0].bytes_done, big);
		ck_assert_int_eq(sva_wait(f.bind, c, 2, 2, 20000), 2);
		ck_assert_uint_eq(c[0].user_data, 1);
		ck_assert_uint_eq(c[1].user_data, 2);
		ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
		memset(dst, 0, 2 * PAGE);
		ck_assert_int_eq(madvise(p, big, MADV_DONTNEED), 0);
	}
	munmap(p, big);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

/* Stats and sva_inflight() exact after each inline completion, faults too. */
START_TEST(test_inline_stats_exact)
{
	uint8_t *src = map_filled(64 * PAGE, 9), *dst = map_filled(64 * PAGE, 10);
	uint8_t *hole = map_fresh_small(8 * PAGE, PROT_READ | PROT_WRITE);
	uint64_t bytes = 0, descs = 0;
	struct sva_completion c[2];
	struct sva_desc d[2];
	struct sva_stats s;

	for (unsigned int i = 0; i < 64; i++) {
		d[0] = desc_make(&f, SVA_OP_COPY, 0, src, dst, (i + 1) * 997);
		d[1] = desc_make(&f, SVA_OP_FILL, 0, NULL, dst, i + 1);
		ck_assert_int_eq(sva_submit(f.bind, d, 2), 2);
		ck_assert_int_eq(sva_inflight(f.bind), 2);
		ck_assert_int_eq(sva_wait(f.bind, c, 1, 1, -1), 1);
		ck_assert_int_eq(sva_inflight(f.bind), 1);
		s = bind_stats(&f);
		/* The reaped one is counted; the other may be too. */
		ck_assert_uint_ge(s.descs_completed, descs + 1);
		ck_assert_uint_ge(s.bytes_done, bytes + (i + 1) * 997);
		ck_assert_int_eq(sva_wait(f.bind, c + 1, 1, 1, -1), 1);
		ck_assert_int_eq(sva_inflight(f.bind), 0);
		descs += 2;
		bytes += c[0].bytes_done + c[1].bytes_done;
		ck_assert_uint_eq(c[0].bytes_done, (i + 1) * 997);
		ck_assert_uint_eq(c[1].bytes_done, i + 1);
		s = bind_stats(&f);
		ck_assert_uint_eq(s.descs_completed, descs);
		ck_assert_uint_eq(s.bytes_done, bytes);
	}
	/* A partial completion counts the bytes it did. */
	ck_assert_int_eq(madvise(hole, 8 * PAGE, MADV_DONTNEED), 0);
	hole[0] = 1;
	hole[PAGE] = 1;
	d[0] = desc_make(&f, SVA_OP_COPY, 0, hole + 100, dst, 4 * PAGE);
	c[0] = run_mode(&f, &d[0], 0);
	ck_assert_uint_eq(c[0].status, SVA_STATUS_PAGE_FAULT);
	ck_assert_uint_eq(c[0].bytes_done, 2 * PAGE - 100);
	ck_assert_uint_eq(c[0].fault_addr, (uintptr_t)hole + 2 * PAGE);
	s = bind_stats(&f);
	ck_assert_uint_eq(s.descs_completed, descs + 1);
	ck_assert_uint_eq(s.bytes_done, bytes + 2 * PAGE - 100);
	munmap(src, 64 * PAGE);
	munmap(dst, 64 * PAGE);
	munmap(hole, 8 * PAGE);
}
END_TEST

/* Unbind right after an inline wait drains what is left. */
START_TEST(test_inline_unbind_drains)
{
	struct fixture g;
	uint8_t *src = map_filled(16 * PAGE, 13), *dst = map_filled(16 * PAGE, 14);
	struct sva_desc d[8];
	struct sva_completion c;

	open_bind(&g, NULL);
	for (int i = 0; i < 8; i++)
		d[i] = desc_make(&g, SVA_OP_COPY, 0, src + 2 * i * PAGE,
				 dst + 2 * i * PAGE, 2 * PAGE);
	ck_assert_int_eq(sva_submit(g.bind, d, 8), 8);
	ck_assert_int_eq(sva_wait(g.bind, &c, 1, 1, -1), 1);
	close_bind(&g);
	ck_assert_int_eq(memcmp(src, dst, 16 * PAGE), 0);
	munmap(src, 16 * PAGE);
	munmap(dst, 16 * PAGE);
}
END_TEST

/* ------------------------------------------------ munmap() races */

/*
 * A region of its own, far below where mmap() places things: a hole the
 * racer leaves in it for a moment is never handed to another mapping.
 */
static uint8_t *map_low(size_t len, unsigned int seed)
{
	for (uint64_t at = 0x100000000000ull; at < 0x200000000000ull;
	     at += 1ull << 32) {
		void *p = mmap((void *)(uintptr_t)at, len,
			       PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			       -1, 0);

		if (p == MAP_FAILED)
			continue;
		if (p != (void *)(uintptr_t)at) {	/* hint only (old kernel) */
			munmap(p, len);
			continue;
		}
		fill_pattern(p, len, seed);
		return p;
	}
	ck_abort_msg("no room for a low mapping");
	return NULL;
}

#define R_PAGES 8	/* region: pages 0, 1, 6, 7 stay; 2..5 come and go */
#define R_OFF (PAGE + 123)
#define R_LEN (5 * PAGE)

struct racer {
	uint8_t *gone;		/* 4 pages the racer unmaps and maps again */
	int stop;
	unsigned int rounds;
};

static void *racer_thread(void *arg)
{
	struct racer *r = arg;

	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		void *p;

		ck_assert_int_eq(munmap(r->gone, 4 * PAGE), 0);
		if (r->rounds % 3)
			sched_yield();
		p = mmap(r->gone, 4 * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			 -1, 0);
		ck_assert_ptr_eq(p, r->gone);
		if (r->rounds % 2)
			memset(p, 0x77, 4 * PAGE);	/* present again */
		r->rounds++;
		usleep(r->rounds % 5 * 20);
	}
	return NULL;
}

/* dst[from, to): the source's bytes below @done, untouched (0xee) past. */
static bool stayed_ok(const uint8_t *dst, size_t from, size_t to,
		      uint64_t done, const uint8_t *src)
{
	for (size_t k = from; k < to; k++)
		if (dst[k] != (k < done ? src[k] : 0xee))
			return false;
	return true;
}

/*
 * Copies while pages of the destination (_i even) or the source (_i odd)
 * are unmapped and mapped again under them, inline (_i < 2) or on the
 * worker: no signal, a fault completion or success, bytes_done exact (the
 * pages that stay show it), no byte outside [dst, dst + len) written.
 */
START_TEST(test_inline_munmap_races_copy)
{
	bool race_dst = !(_i & 1);
	int in = _i < 2 ? 0 : 1;	/* run_mode()'s mode */
	uint8_t *rg = map_low(R_PAGES * PAGE, 31);
	uint8_t *other = map_filled(R_PAGES * PAGE, 32);
	uint8_t *sreg = race_dst ? other : rg, *dreg = race_dst ? rg : other;
	uint8_t *src = sreg + R_OFF, *dst = dreg + R_OFF;
	uint8_t *sref = malloc(R_PAGES * PAGE), *dref = malloc(R_PAGES * PAGE);
	struct racer r = { .gone = rg + 2 * PAGE };
	unsigned int faults = 0, ok = 0, iters = 0;
	/* The bytes of dst in pages 1 and 6, which stay mapped. */
	size_t head = 2 * PAGE - R_OFF, tail_at = 6 * PAGE - R_OFF;
	pthread_t t;

	if (!test_on_sim()) {
		fprintf(stderr, "%s: races munmap() on the software device only: skipped\n",
			__func__);
		return;
	}
	memcpy(sref, sreg, R_PAGES * PAGE);
	memset(dst, 0xee, head);
	memset(dst + tail_at, 0xee, R_LEN - tail_at);
	memcpy(dref, dreg, R_PAGES * PAGE);	/* canaries around */
	ck_assert_int_eq(pthread_create(&t, NULL, racer_thread, &r), 0);
	while (iters < 20000 && (iters < 500 || faults < 50 || ok < 50)) {
		uint32_t fl = iters % 2 ? SVA_DESC_BLOCK_ON_FAULT : 0;
		struct sva_desc d = desc_make(&f, SVA_OP_COPY, fl, src, dst, R_LEN);
		struct sva_completion c = run_mode(&f, &d, in);
		uint64_t done = c.bytes_done;

		iters++;
		ck_assert_uint_le(done, R_LEN);
		if (c.status == SVA_STATUS_SUCCESS) {
			ck_assert_uint_eq(done, R_LEN);
			ok++;
		} else {
			ck_assert_msg(c.status == SVA_STATUS_PAGE_FAULT ||
				      c.status == SVA_STATUS_FAULT_INVALID ||
				      c.status == SVA_STATUS_FAULT_FAILURE,
				      "status %u", c.status);
			ck_assert_uint_lt(done, R_LEN);
			ck_assert_msg((c.fault_addr >= (uintptr_t)dst + done &&
				       c.fault_addr < (uintptr_t)dst + R_LEN) ||
				      (c.fault_addr >= (uintptr_t)src + done &&
				       c.fault_addr < (uintptr_t)src + R_LEN),
				      "fault at %#llx, done %llu",
				      (unsigned long long)c.fault_addr,
				      (unsigned long long)done);
			faults++;
		}
		/* Outside [dst, dst + len): untouched. */
		ck_assert_int_eq(memcmp(dreg, dref, R_OFF), 0);
		ck_assert_int_eq(memcmp(dst + R_LEN, dref + R_OFF + R_LEN,
					R_PAGES * PAGE - R_OFF - R_LEN), 0);
		/* What stayed mapped: the source's bytes up to bytes_done,
		 * nothing written past it. */
		ck_assert_msg(stayed_ok(dst, 0, head, done, sref + R_OFF),
			      "first page: done %llu", (unsigned long long)done);
		ck_assert_msg(stayed_ok(dst, tail_at, R_LEN, done, sref + R_OFF),
			      "last page: done %llu", (unsigned long long)done);
		memset(dst, 0xee, head);
		memset(dst + tail_at, 0xee, R_LEN - tail_at);
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	/* The race happened both ways (else the test tested nothing). */
	ck_assert_msg(faults > 0 && ok > 0, "%u faults, %u successes in %u",
		      faults, ok, iters);
	free(sref);
	free(dref);
	munmap(rg, R_PAGES * PAGE);
	munmap(other, R_PAGES * PAGE);
}
END_TEST

/* ------------------------------------------------------------ signals */

static volatile sig_atomic_t sigs;

static void on_usr1(int sig)
{
	(void)sig;
	sigs++;
}

struct pest {
	pthread_t target;
	int stop;
};

static void *pest_thread(void *arg)
{
	struct pest *p = arg;

	while (!__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
		pthread_kill(p->target, SIGUSR1);
		usleep(30);
	}
	return NULL;
}

/*
 * The waiting thread runs descriptors with its signals open (a library
 * thread has them blocked): a handler without SA_RESTART interrupting
 * it, fault service included, changes nothing in what the device does.
 */
START_TEST(test_inline_signals_to_waiter)
{
	size_t len = 1u << 20;
	uint8_t *src = map_filled(len, 15), *dst;
	struct sigaction sa = { .sa_handler = on_usr1 }, old;
	struct pest p = { .target = pthread_self() };
	pthread_t t;

	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
	sigs = 0;
	ck_assert_int_eq(pthread_create(&t, NULL, pest_thread, &p), 0);
	for (int i = 0; i < 60; i++) {
		struct sva_desc d;
		struct sva_completion c;

		/* Fresh pages every few: page requests, waits on them. */
		dst = map_fresh(len, PROT_READ | PROT_WRITE);
		d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src,
			      dst, len);
		c = run_mode(&f, &d, 0);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.bytes_done, len);
		ck_assert_int_eq(memcmp(src, dst, len), 0);
		/*
		 * Blocking on faults: NUMA balancing or reclaim may take a
		 * page from the device between the two (CI's stock VM, kmod0:
		 * PAGE_FAULT without it).
		 */
		d = desc_make(&f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT, dst,
			      NULL, len);
		c = run_mode(&f, &d, 0);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_uint_eq(c.result, sva_crc32c(0, src, len));
		munmap(dst, len);
	}
	__atomic_store_n(&p.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	ck_assert_int_gt(sigs, 0);
	sigaction(SIGUSR1, &old, NULL);
	munmap(src, len);
}
END_TEST

/* --------------------------------------------------------------- fork */

struct looper {
	struct fixture *x;
	int stop;
	int bad;
	unsigned int n;
};

/* Inline copies onto fresh memory, one after another. */
static void *inline_looper(void *arg)
{
	struct looper *l = arg;
	size_t len = 1u << 20;
	uint8_t *src = map_filled(len, 17);

	while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
		uint8_t *dst = map_fresh(len, PROT_READ | PROT_WRITE);
		struct sva_desc d = desc_make(l->x, SVA_OP_COPY,
					      SVA_DESC_BLOCK_ON_FAULT, src,
					      dst, len);
		struct sva_completion c;

		if (sva_submit(l->x->bind, &d, 1) != 1 ||
		    sva_wait(l->x->bind, &c, 1, 1, -1) != 1 ||
		    c.status != SVA_STATUS_SUCCESS || memcmp(src, dst, len))
			l->bad = 1;
		munmap(dst, len);
		__atomic_add_fetch(&l->n, 1, __ATOMIC_RELEASE);
	}
	munmap(src, len);
	return NULL;
}

static int wait_child(pid_t pid, int ms)
{
	int status;

	for (int i = 0; i < ms; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

/*
 * fork() while another thread runs a descriptor inline (its queue busy in
 * the child's copy forever): every call of the child on the binding is
 * -EPERM at once, a forever wait included; the parent goes on.
 */
START_TEST(test_inline_fork_child_eperm)
{
	struct looper l = { .x = &f };
	pthread_t t;
	int failed = 0, hung = 0;

	ck_assert_int_eq(pthread_create(&t, NULL, inline_looper, &l), 0);
	for (int i = 0; i < 40; i++) {
		struct sva_completion c;
		struct sva_desc d = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
		pid_t pid;
		int rc;

		usleep(300 + i * 50);
		pid = fork();
		/*
		 * The child calls nothing of Check's: the looper thread's
		 * helpers assert too, and a child forked while it held
		 * Check's lock (send_loc_info()) hung in ck_assert (seen in
		 * gdb; it was this test's "hung child", not libsva's).
		 */
		if (!pid)
			_exit(sva_wait(f.bind, &c, 1, 1, -1) != -EPERM ? 1 :
			      sva_wait(f.bind, &c, 1, 0, 0) != -EPERM ? 2 :
			      sva_submit(f.bind, &d, 1) != -EPERM ? 3 :
			      sva_inflight(f.bind) != -EPERM ? 4 :
			      sva_queue_stop(f.bind) != -EPERM ? 5 :
			      sva_queue_start(f.bind) != -EPERM ? 6 : 0);
		ck_assert_int_ge(pid, 0);
		rc = wait_child(pid, 20000);
		hung += rc == -1;
		failed += rc > 0;
	}
	__atomic_store_n(&l.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	ck_assert_int_eq(hung, 0);
	ck_assert_int_eq(failed, 0);
	ck_assert_int_eq(l.bad, 0);
	ck_assert_uint_gt(l.n, 0);
}
END_TEST

/*
 * sva_submit_and_wait() queues all its descriptors or none (unlike
 * sva_submit(), which queues the good ones before a bad one, as many as
 * fit), and waits as sva_wait() does.
 */
START_TEST(test_submit_and_wait_all_or_nothing)
{
	uint8_t *src = map_filled(2 * PAGE, 5), *dst = map_filled(2 * PAGE, 6);
	struct sva_completion c[4];
	struct sva_desc d[3], *many;
	uint8_t after = dst[PAGE];	/* the byte past the copies */
	int depth, n;

	for (int i = 0; i < 3; i++) {
		d[i] = desc_make(&f, SVA_OP_COPY, 0, src, dst, PAGE);
		d[i].user_data = (uint64_t)i;
	}
	/* Bad arguments: nothing queued. */
	ck_assert_int_eq(sva_submit_and_wait(NULL, d, 1, c, 1, 1, -1), -EINVAL);
	ck_assert_int_eq(sva_submit_and_wait(f.bind, d, 1, NULL, 1, 1, -1),
			 -EINVAL);
	ck_assert_int_eq(sva_submit_and_wait(f.bind, d, 1, c, 1, 2, -1),
			 -EINVAL);
	ck_assert_int_eq(sva_submit_and_wait(f.bind, NULL, 1, c, 1, 1, -1),
			 -EINVAL);
	/* More to wait for than would be in flight. */
	ck_assert_int_eq(sva_submit_and_wait(f.bind, d, 1, c, 4, 2, -1),
			 -EINVAL);
	/* A bad descriptor after good ones: none queued. */
	d[2].opcode = 0x7f;
	ck_assert_int_eq(sva_submit_and_wait(f.bind, d, 3, c, 3, 3, -1),
			 -EINVAL);
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	d[2].opcode = SVA_OP_COPY;
	/* All three, in order, each exact. */
	ck_assert_int_eq(sva_submit_and_wait(f.bind, d, 3, c, 4, 3, -1), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(c[i].user_data, (uint64_t)i);
		ck_assert_uint_eq(c[i].status, SVA_STATUS_SUCCESS);
	}
	ck_assert_int_eq(memcmp(src, dst, PAGE), 0);
	ck_assert_uint_eq(dst[PAGE], after);
	/* More than the queue holds: -EAGAIN, none queued. */
	{
		struct sva_dev_caps caps = { .sz = sizeof(caps) };

		ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
		depth = (int)caps.queue_depth;
		ck_assert_int_gt(depth, 1);
	}
	many = calloc((size_t)depth + 1, sizeof(*many));
	ck_assert_ptr_nonnull(many);
	for (int i = 0; i <= depth; i++)
		many[i] = d[0];
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	ck_assert_int_eq(sva_submit(f.bind, many, 1), 1);
	ck_assert_int_eq(sva_submit_and_wait(f.bind, many, (unsigned int)depth,
					     c, 1, 0, 0), -EAGAIN);
	ck_assert_int_eq(sva_inflight(f.bind), 1);
	ck_assert_int_eq(sva_queue_start(f.bind), 0);
	/* Nothing more to run: reaps what there is. */
	n = sva_submit_and_wait(f.bind, NULL, 0, c, 4, 1, -1);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(c[0].status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(sva_inflight(f.bind), 0);
	free(many);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

/*
 * Review of sva_submit_and_wait(): a wait satisfied without running its
 * descriptors (min 0, or completions of earlier work already there) left
 * them queued with the worker never woken: a timed wait after it timed
 * out. The worker must have them.
 */
START_TEST(test_regress_submit_and_wait_leaves_work_to_worker)
{
	uint8_t *src = map_filled(2 * PAGE, 9), *dst = map_filled(2 * PAGE, 10);
	struct sva_desc d[2];
	struct sva_completion c[2];

	for (int i = 0; i < 2; i++) {
		d[i] = desc_make(&f, SVA_OP_COPY, 0, src + i * PAGE,
				 dst + i * PAGE, PAGE);
		d[i].user_data = (uint64_t)i;
	}
	/* min 0: back at once, the copy queued. */
	ck_assert_int_eq(sva_submit_and_wait(f.bind, &d[0], 1, c, 1, 0, -1), 0);
	ck_assert_int_eq(sva_wait(f.bind, c, 1, 1, 10000), 1);
	ck_assert_uint_eq(c[0].user_data, 0);
	ck_assert_uint_eq(c[0].status, SVA_STATUS_SUCCESS);
	/* An earlier completion satisfies the wait: the new copy queued. */
	ck_assert_int_eq(sva_submit(f.bind, &d[0], 1), 1);
	usleep(20000);	/* the worker runs it; its completion waits */
	ck_assert_int_eq(sva_submit_and_wait(f.bind, &d[1], 1, c, 1, 1, -1), 1);
	ck_assert_uint_eq(c[0].user_data, 0);
	ck_assert_int_eq(sva_wait(f.bind, c, 1, 1, 10000), 1);
	ck_assert_uint_eq(c[0].user_data, 1);
	ck_assert_uint_eq(c[0].status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

Suite *inline_suite(void)
{
	Suite *s = suite_create("inline");
	TCase *tc = tcase_create("inline");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_inline_ops_exact, 0, 4);
	tcase_add_test(tc, test_inline_order_chain);
	tcase_add_test(tc, test_inline_two_waiters_order);
	tcase_add_test(tc, test_inline_stopped_queue_runs_nothing);
	tcase_add_test(tc, test_inline_worker_takes_over);
	tcase_add_test(tc, test_inline_stats_exact);
	tcase_add_test(tc, test_inline_unbind_drains);
	tcase_add_loop_test(tc, test_inline_munmap_races_copy, 0, 4);
	tcase_add_test(tc, test_inline_signals_to_waiter);
	tcase_add_test(tc, test_inline_fork_child_eperm);
	tcase_add_test(tc, test_submit_and_wait_all_or_nothing);
	tcase_add_test(tc, test_regress_submit_and_wait_leaves_work_to_worker);
	suite_add_tcase(s, tc);
	return s;
}
