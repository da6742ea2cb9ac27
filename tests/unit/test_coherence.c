// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The mirror guarantee against a racing mm: a snapshot read_retry()
 * accepts is current, no device access runs on a translation an
 * invalidation dropped, and no library lock is held across an access that
 * can block on the application. Regressions of issue 7.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "unit.h"

static struct fixture f;

static void setup(void)
{
	open_bind(&f, NULL);
}

static void teardown(void)
{
	close_bind(&f);
}

/* Discards [p, p + len) with MADV_DONTNEED once told to go. */
struct zapper {
	uint8_t *p;
	size_t len;
	atomic_int go, done;
	pthread_t thread;
};

static void *zap_thread(void *arg)
{
	struct zapper *z = arg;

	while (!atomic_load(&z->go))
		sched_yield();
	ck_assert_int_eq(madvise(z->p, z->len, MADV_DONTNEED), 0);
	atomic_store(&z->done, 1);
	return NULL;
}

static void zapper_start(struct zapper *z, uint8_t *p, size_t len)
{
	z->p = p;
	z->len = len;
	atomic_store(&z->go, 0);
	atomic_store(&z->done, 0);
	ck_assert_int_eq(pthread_create(&z->thread, NULL, zap_thread, z), 0);
	atomic_store(&z->go, 1);
}

/*
 * Regression (issue 7, defect 4): userfaultfd's REMOVE event comes before
 * MADV_DONTNEED's zap, and the sim advanced the sequence on reading it: a
 * snapshot taken between the event and the zap reported the pages VALID
 * and read_retry() accepted it (10 of 10 rounds). Invariant checked: once
 * madvise() has returned and the pages are gone, no snapshot that showed
 * them valid may still be accepted.
 */
START_TEST(test_regress_discard_snapshot_stale)
{
	enum { ROUNDS = 20 };
	size_t len = 4 * PAGE;
	uint8_t *p = map_fresh_small(len, PROT_READ | PROT_WRITE);
	struct sva_mirror *m;
	struct zapper z;
	int raced = 0;

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	for (int r = 0; r < ROUNDS; r++) {
		uint64_t seq, accepted = 0;
		bool have = false;
		uint8_t st[4];

		memset(p, r + 1, len);
		zapper_start(&z, p, len);
		while (!atomic_load(&z.done)) {
			seq = sva_mirror_read_begin(m);
			ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p,
							     len, st, 0), 0);
			if (!sva_mirror_read_retry(m, seq) &&
			    (st[len / PAGE - 1] & SVA_PAGE_VALID)) {
				have = true;
				accepted = seq;
			}
		}
		pthread_join(z.thread, NULL);
		ck_assert_uint_eq(pages_present(p, len), 0);
		if (!have)
			continue;
		raced++;
		ck_assert_msg(sva_mirror_read_retry(m, accepted),
			      "round %d: a snapshot of pages MADV_DONTNEED zapped is still accepted",
			      r);
	}
	fprintf(stderr, "%s: %d of %d rounds had a snapshot accepted during the discard\n",
		__func__, raced, ROUNDS);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, len);
}
END_TEST

/*
 * Regression (issue 7, defect 4), the device's side: a translation taken
 * between the REMOVE event and the zap must not stay in the ATC, or the
 * device reads through it after madvise() returned (silently faulting a
 * new page in) where it must fault.
 */
START_TEST(test_regress_discard_atc_stale)
{
	enum { ROUNDS = 20 };
	size_t len = test_len(4 * PAGE);
	uint8_t *src = map_fresh_small(len, PROT_READ | PROT_WRITE);
	uint8_t *dst = map_filled(len, 2);
	struct sva_desc d = desc_make(&f, SVA_OP_COPY, 0, src, dst, len);
	struct sva_completion c;
	struct zapper z;
	int refaulted = 0;

	for (int r = 0; r < ROUNDS; r++) {
		memset(src, r + 1, len);
		ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
		zapper_start(&z, src, len);
		while (!atomic_load(&z.done))
			run1(&f, &d);
		pthread_join(z.thread, NULL);
		/*
		 * A burst that translated before the zap and read after it
		 * faulted a page in again, as a CPU read racing madvise()
		 * may: then there is nothing stale to check this round.
		 */
		if (pages_present(src, len)) {
			refaulted++;
			continue;
		}
		c = run1(&f, &d);
		if (test_on_vfio()) {
			/* No page requests: the engine populates the pages
			 * itself, and must read the new zero pages, never
			 * the discarded data through a stale IOVA mapping. */
			ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
			for (size_t i = 0; i < len; i++)
				ck_assert_msg(dst[i] == 0,
					      "round %d: byte %zu is %u: device read discarded memory through a stale mapping",
					      r, i, dst[i]);
			ck_assert_uint_eq(pages_present(src, len),
					  (len + PAGE - 1) / PAGE);
			continue;
		}
		ck_assert_msg(c.status == SVA_STATUS_PAGE_FAULT,
			      "round %d: device read discarded memory through a stale translation (status %u)",
			      r, c.status);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)src);
		ck_assert_uint_eq(pages_present(src, len), 0);
	}
	fprintf(stderr, "%s: %d of %d rounds refaulted by a racing burst\n",
		__func__, refaulted, ROUNDS);
	munmap(src, len);
	munmap(dst, len);
}
END_TEST

/*
 * Regression (issue 7, defect 11): after mprotect(PROT_READ) of a page the
 * CPU had written, snapshots said VALID|WRITE (0x3; 0x7 in a THP): the
 * model trusted a VMA permission cached before the mprotect, which sends
 * no event. A snapshot must reflect the protections in force when taken.
 */
static void check_protect(uint8_t *p, size_t len, bool expect_huge)
{
	struct sva_mirror *m;
	static uint8_t st[512];
	size_t n = len / PAGE;

	memset(p, 1, len);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, NULL,
					     &m), 0);
	/* Warm: the model has seen the VMA read/write. */
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i] & ~(unsigned int)SVA_PAGE_HUGE,
				  anon_rw_state(p + i * PAGE));
	ck_assert_int_eq(mprotect(p, len, PROT_READ), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(!(st[i] & SVA_PAGE_WRITE),
			      "page %zu: %#x after mprotect(PROT_READ)", i,
			      st[i]);
		ck_assert_uint_eq(st[i] & SVA_PAGE_VALID, SVA_PAGE_VALID);
		if (expect_huge && page_is_thp(p + i * PAGE) >= 0)
			ck_assert_uint_eq(st[i] & SVA_PAGE_HUGE,
					  page_is_thp(p + i * PAGE) ?
					  SVA_PAGE_HUGE : 0);
	}
	ck_assert_int_eq(mprotect(p, len, PROT_NONE), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i], SVA_PAGE_ERROR);
	/* And write permission given back is seen too. */
	ck_assert_int_eq(mprotect(p, len, PROT_READ | PROT_WRITE), 0);
	ck_assert_int_eq(sva_mirror_snapshot(m, (uintptr_t)p, len, st, 0), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(st[i] & SVA_PAGE_VALID, SVA_PAGE_VALID);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
}

START_TEST(test_regress_snapshot_mprotect)
{
	size_t huge = 2ul << 20;
	uint8_t *small = map_fresh_small(4 * PAGE, PROT_READ | PROT_WRITE);
	uint8_t *raw = map_fresh(2 * huge, PROT_READ | PROT_WRITE), *big;

	check_protect(small, 4 * PAGE, false);
	big = (uint8_t *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ck_assert(!madvise(big, huge, MADV_HUGEPAGE) || errno == EINVAL);
	check_protect(big, huge, true);
	munmap(small, 4 * PAGE);
	munmap(raw, 2 * huge);
}
END_TEST

enum breakage { BREAK_UNMAP, BREAK_PROT_NONE, BREAK_READ_ONLY };

static void break_page(uint8_t *page, enum breakage how)
{
	if (how == BREAK_UNMAP)
		ck_assert_int_eq(munmap(page, PAGE), 0);
	else
		ck_assert_int_eq(mprotect(page, PAGE, how == BREAK_PROT_NONE ?
					  PROT_NONE : PROT_READ), 0);
}

/*
 * Regression (issue 7, defect 11): with block-on-fault, a COPY whose third
 * destination page is invalid reported bytes_done 0 although its first two
 * pages were writable (cold: they were in the same failed page request
 * group; warm: left unwritten). A device translating in order completes
 * the bytes before the failing page; bytes_done is exact and fault_addr
 * is the first byte it could not access.
 */
START_TEST(test_regress_block_fault_bytes_done)
{
	size_t len = 4 * PAGE;
	uint8_t *src = map_filled(len, 5);

	for (int how = BREAK_UNMAP; how <= BREAK_READ_ONLY; how++) {
		for (int warm = 0; warm < 2; warm++) {
			uint8_t *dst = map_fresh_small(len, PROT_READ |
						       PROT_WRITE);
			struct sva_desc d = desc_make(&f, SVA_OP_COPY,
						      SVA_DESC_BLOCK_ON_FAULT,
						      src, dst, len);
			struct sva_completion c;

			if (warm) {
				ck_assert_uint_eq(run1(&f, &d).status,
						  SVA_STATUS_SUCCESS);
				fill_pattern(src, len, 6 + how);
			} else if (how == BREAK_READ_ONLY) {
				dst[2 * PAGE] = 1;	/* present, read-only */
			}
			break_page(dst + 2 * PAGE, how);
			c = run1(&f, &d);
			ck_assert_msg(c.status == SVA_STATUS_FAULT_INVALID,
				      "how %d warm %d: status %u", how, warm,
				      c.status);
			ck_assert_msg(c.bytes_done == 2 * PAGE,
				      "how %d warm %d: bytes_done %llu", how,
				      warm, (unsigned long long)c.bytes_done);
			ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 2 * PAGE);
			ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
			ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
			munmap(dst, len);
		}
	}
	munmap(src, len);
}
END_TEST

/*
 * fault_addr is the first byte the device could not access (sva_submit(3),
 * sva.h): in a destination starting inside an invalid page that is the
 * descriptor's own address, not the page's, with or without block-on-fault.
 */
START_TEST(test_regress_fault_addr_first_byte)
{
	uint8_t *src = map_filled(2 * PAGE, 7);
	uint8_t *dst = map_filled(2 * PAGE, 8);

	ck_assert_int_eq(mprotect(dst, 2 * PAGE, PROT_READ), 0);
	for (int block = 0; block < 2; block++) {
		struct sva_desc d = desc_make(&f, SVA_OP_COPY,
					      block ? SVA_DESC_BLOCK_ON_FAULT : 0,
					      src, dst + 100, PAGE);
		struct sva_completion c = run1(&f, &d);

		/* vfio0: every descriptor blocks on its faults. */
		ck_assert_uint_eq(c.status, block || test_on_vfio() ?
					    SVA_STATUS_FAULT_INVALID :
					    SVA_STATUS_PAGE_FAULT);
		ck_assert_uint_eq(c.bytes_done, 0);
		ck_assert_uint_eq(c.fault_addr, (uintptr_t)dst + 100);
		ck_assert_uint_eq(c.fault_access, SVA_ACCESS_WRITE);
	}
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

/*
 * The application's own userfaultfd, write-protecting memory the device
 * writes. Its fault handler munmap()s a page of memory the device touched
 * before it resolves the fault, and a second thread write-protects the
 * range again and again (the race the library must survive: protection
 * put back between the device's translation and its access).
 */
struct app_uffd {
	int uffd;
	bool missing;		/* MISSING mode, else write-protect */
	uint8_t *target, *victim;
	size_t target_len, victim_pages, victim_next;
	atomic_int stop;
	atomic_int faults;
	pthread_t handler, protector;
};

static void app_wp(struct app_uffd *a, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { (uintptr_t)a->target, a->target_len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	/* EAGAIN: the mm is changing (an event in flight); try again. */
	while (ioctl(a->uffd, UFFDIO_WRITEPROTECT, &wp) && errno == EAGAIN)
		sched_yield();
}

static void *app_fault_handler(void *arg)
{
	struct app_uffd *a = arg;
	struct pollfd pfd = { .fd = a->uffd, .events = POLLIN };
	struct uffd_msg msg;

	while (!atomic_load(&a->stop)) {
		if (poll(&pfd, 1, 10) <= 0)
			continue;
		if (read(a->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		/* Unmap memory the device touched, then resolve. */
		if (a->victim_next < a->victim_pages &&
		    (!a->missing || atomic_load(&a->faults) % 8 == 0))
			munmap(a->victim + a->victim_next++ * PAGE, PAGE);
		atomic_fetch_add(&a->faults, 1);
		if (a->missing) {
			struct uffdio_zeropage zp = {
				.range = { msg.arg.pagefault.address &
					   ~(PAGE - 1), PAGE },
			};

			/* EEXIST: mapped meanwhile; it woke up anyway. */
			if (ioctl(a->uffd, UFFDIO_ZEROPAGE, &zp) &&
			    errno != EEXIST && errno != EAGAIN)
				ck_abort_msg("UFFDIO_ZEROPAGE: %s",
					     strerror(errno));
			if (errno == EAGAIN || errno == EEXIST) {
				struct uffdio_range r = zp.range;

				ioctl(a->uffd, UFFDIO_WAKE, &r);
			}
		} else {
			app_wp(a, false);
		}
	}
	return NULL;
}

static void *app_protector(void *arg)
{
	struct app_uffd *a = arg;

	while (!atomic_load(&a->stop)) {
		/* Protection put back, or the pages taken away again. */
		if (a->missing)
			madvise(a->target, a->target_len, MADV_DONTNEED);
		else
			app_wp(a, true);
		usleep(a->missing ? 1000 : 200);
	}
	if (!a->missing)
		app_wp(a, false);
	return NULL;
}

/*
 * Regression (issue 7, defect 6): a device burst held inval_lock across
 * process_vm_writev(); a write into the application's uffd-WP-protected
 * memory blocked there, the application's handler munmap()ed memory the
 * device had touched before resolving, and the munmap waited on the event
 * thread that waited on the burst: nothing moved again. The same with
 * pages the application's userfaultfd leaves missing (MISSING mode, its
 * handler resolving with UFFDIO_ZEROPAGE). Bounded: every descriptor must
 * complete within 2 * test_wait_ms() (10 s; 2 minutes on vfio0).
 */
static void app_uffd_deadlock(bool missing)
{
	/* On vfio0 (edu: 2 KiB per ~100 ms) fewer pages, same races. */
	struct app_uffd a = {
		.target_len = test_on_vfio() ? 2 * PAGE : 16 * PAGE,
		.victim_pages = test_on_vfio() ? 4 : 256,
		.missing = missing,
	};
	size_t fill_len = test_len(a.target_len);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.mode = missing ? UFFDIO_REGISTER_MODE_MISSING :
				  UFFDIO_REGISTER_MODE_WP,
	};
	uint8_t *tmp = map_filled(a.victim_pages * PAGE, 3);
	struct sva_desc d;
	struct sva_completion c;
	uint64_t t0 = 0;
	struct timespec ts;
	int n = 0;

	a.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (a.uffd < 0) {
		fprintf(stderr, "%s: no userfaultfd (%s), skipped\n",
			__func__, strerror(errno));
		return;
	}
	ck_assert_int_eq(ioctl(a.uffd, UFFDIO_API, &api), 0);
	if (!(api.ioctls & (1ull << _UFFDIO_REGISTER))) {
		close(a.uffd);
		return;
	}
	a.target = missing ? map_fresh_small(a.target_len,
					     PROT_READ | PROT_WRITE) :
			     map_filled(a.target_len, 1);
	reg.range.start = (uintptr_t)a.target;
	reg.range.len = a.target_len;
	if (ioctl(a.uffd, UFFDIO_REGISTER, &reg)) {
		fprintf(stderr, "%s: no userfaultfd mode %llu (%s), skipped\n",
			__func__, (unsigned long long)reg.mode,
			strerror(errno));
		close(a.uffd);
		munmap(a.target, a.target_len);
		return;
	}
	/* Memory the device touched: its munmap waits on libsva. */
	a.victim = map_filled(a.victim_pages * PAGE, 2);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, a.victim, tmp,
		      a.victim_pages * PAGE);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);

	ck_assert_int_eq(pthread_create(&a.handler, NULL, app_fault_handler,
					&a), 0);
	ck_assert_int_eq(pthread_create(&a.protector, NULL, app_protector,
					&a), 0);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL,
		      a.target, fill_len);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec;
	/* Until the handler ran out of victims, or 3 s at most. */
	while (a.victim_next < a.victim_pages) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec - t0 >= 3)
			break;
		d.pattern = 0x0101010101010101ull * (uint8_t)n++;
		ck_assert_int_eq(sva_submit(f.bind, &d, 1), 1);
		ck_assert_msg(sva_wait(f.bind, &c, 1, 1,
				       2 * test_wait_ms()) == 1,
			      "descriptor %d stuck: the device waits on the application, which waits on libsva",
			      n);
		/*
		 * Pages discarded again and again may keep the device from
		 * progress past its stall timeout: FAILURE, not a hang.
		 */
		if (missing && c.status == SVA_STATUS_FAULT_FAILURE)
			continue;
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		/* (In MISSING mode the application discards them again.) */
		if (!missing)
			ck_assert_uint_eq(a.target[fill_len - 1],
					  (uint8_t)(n - 1));
	}
	atomic_store(&a.stop, 1);
	pthread_join(a.protector, NULL);
	pthread_join(a.handler, NULL);
	fprintf(stderr, "%s(%s): %d descriptors, %d faults, %zu pages unmapped in the handler\n",
		__func__, missing ? "missing" : "wp", n,
		atomic_load(&a.faults), a.victim_next);
	close(a.uffd);
	munmap(a.target, a.target_len);
	munmap(a.victim, a.victim_pages * PAGE);
	munmap(tmp, a.victim_pages * PAGE);
}

START_TEST(test_regress_app_uffd_deadlock)
{
	app_uffd_deadlock(false);	/* write-protected */
	app_uffd_deadlock(true);	/* missing */
}
END_TEST

/* A callback that binds and unbinds another binding. */
struct cb_binder {
	struct sva_dev *dev;
	atomic_int calls, done, bind_err;
};

static void bind_in_callback(struct sva_mirror *m, uint64_t start,
			     uint64_t end, enum sva_inval_event ev,
			     uint64_t seq, void *ctx)
{
	struct cb_binder *b = ctx;
	struct sva_bind *c = NULL;
	int err;

	(void)m, (void)start, (void)end, (void)seq;
	if (ev != SVA_INVAL_DISCARD || atomic_fetch_add(&b->calls, 1))
		return;
	err = sva_bind(b->dev, NULL, &c);
	if (!err)
		err = sva_unbind(c);
	atomic_store(&b->bind_err, err ? err : 1);
	atomic_store(&b->done, 1);
}

/*
 * Regression (issue 7, defect 5, the software device's side): the notifier
 * thread held notify_lock across callbacks, and binding and unbinding take
 * it: sva_bind() from a callback deadlocked on it. No sim lock may be held
 * while a callback runs. Bounded: 5 s.
 */
START_TEST(test_regress_callback_sim_locks)
{
	uint8_t *p = map_filled(4 * PAGE, 1);
	struct cb_binder b = { .dev = f.dev };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = bind_in_callback,
		      .ctx = &b);
	struct sva_bind *other;
	struct sva_mirror *m;

	/* Another binding of the same mm, so the walk has two to visit. */
	ck_assert_int_eq(sva_bind(f.dev, NULL, &other), 0);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 4 * PAGE,
					     &mo, &m), 0);
	ck_assert_int_eq(madvise(p, PAGE, MADV_DONTNEED), 0);
	for (int i = 0; i < 500 && !atomic_load(&b.done); i++)
		usleep(10000);
	ck_assert_msg(atomic_load(&b.done),
		      "callback stuck in sva_bind()/sva_unbind()");
	/* sva_bind() from a callback is refused (sva_mirror_register(3)):
	 * what matters here is that it answers instead of hanging on a sim
	 * lock the notifier thread holds. */
	ck_assert_int_eq(atomic_load(&b.bind_err), -EDEADLK);
	ck_assert_int_eq(sva_unbind(other), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, 4 * PAGE);
}
END_TEST

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct cb_all {
	struct fixture *f;
	struct sva_mirror *m;
	uint8_t *p;
	size_t len;
	atomic_int calls, errors, running;
};

/* Every call a callback may make, on its own binding and others. */
static void call_all_in_callback(struct sva_mirror *m, uint64_t start,
				 uint64_t end, enum sva_inval_event ev,
				 uint64_t seq, void *ctx)
{
	struct cb_all *c = ctx;
	struct sva_stats st = { .sz = sizeof(st) };
	struct sva_mirror *extra;
	struct sva_bind *b;
	static uint8_t states[64];
	uint64_t s;
	int bad = 0;

	(void)start, (void)end, (void)seq;
	if (ev == SVA_INVAL_RELEASE)
		return;
	atomic_store(&c->running, 1);
	s = sva_mirror_read_begin(m);
	bad |= sva_mirror_snapshot(m, (uintptr_t)c->p, c->len, states, 0) != 0;
	(void)sva_mirror_read_retry(m, s);
	bad |= sva_bind_stats(c->f->bind, &st) != 0;
	bad |= sva_dev_stats(c->f->dev, &st) != 0;
	/* Device memory calls (issue 8): work, or -EOPNOTSUPP without it.
	 * Migrations invalidate (OTHER): not again from those callbacks. */
	{
		struct sva_range_attr a = { .type = SVA_ATTR_GRANULARITY };
		SVA_OPTS_INIT(sva_migrate_opts, mo, .to = SVA_LOC_DEVICE);
		int r;

		r = sva_range_set_attr(c->f->bind, (uintptr_t)c->p, PAGE, &a, 1);
		bad |= r != 0 && r != -EOPNOTSUPP;
		r = sva_range_get_attr(c->f->bind, (uintptr_t)c->p, PAGE, &a, 1);
		bad |= r != 0 && r != -EOPNOTSUPP;
		if (ev != SVA_INVAL_OTHER) {
			r = sva_migrate(c->f->bind, (uintptr_t)c->p, 2 * PAGE,
					&mo, NULL);
			bad |= r < 0 && r != -EOPNOTSUPP;
			mo.to = SVA_LOC_HOST;
			r = sva_migrate(c->f->bind, (uintptr_t)c->p + PAGE,
					PAGE, &mo, NULL);
			bad |= r < 0 && r != -EOPNOTSUPP;
		}
	}
	bad |= sva_mirror_register(c->f->bind, (uintptr_t)c->p, PAGE, NULL,
				   &extra) != 0;
	if (!bad)
		bad |= sva_mirror_unregister(extra) != 0;
	/* Forbidden in a callback on every backend (sva_mirror_register(3)):
	 * refused at once, never a hang. */
	bad |= sva_bind(c->f->dev, NULL, &b) != -EDEADLK;
	atomic_fetch_add(&c->errors, bad);
	atomic_fetch_add(&c->calls, 1);
	atomic_store(&c->running, 0);
}

/* A callback calls every allowed libsva function while invalidations keep
 * coming and another thread binds/unbinds: must finish (bounded). */
START_TEST(test_regress_callback_calls_everything)
{
	size_t len = 64 * PAGE;
	uint8_t *p = map_filled(len, 1), *q = map_filled(len, 2);
	struct cb_all c = { .f = &f, .p = p, .len = len };
	SVA_OPTS_INIT(sva_mirror_opts, mo, .invalidate = call_all_in_callback,
		      .ctx = &c);
	struct sva_mirror *m;
	uint64_t t0;

	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, len, &mo,
					     &m), 0);
	c.m = m;
	t0 = now_ms();
	while (now_ms() - t0 < 2000) {
		for (size_t i = 0; i < len / PAGE; i++)
			p[i * PAGE] = 1;
		ck_assert_int_eq(madvise(p, len, MADV_DONTNEED), 0);
		ck_assert_int_eq(madvise(q, PAGE, MADV_DONTNEED), 0);
	}
	for (int i = 0; i < 500 && atomic_load(&c.running); i++)
		usleep(10000);
	ck_assert_int_eq(atomic_load(&c.errors), 0);
	ck_assert_int_gt(atomic_load(&c.calls), 0);
	fprintf(stderr, "%s: %d callbacks, %llu pages migrated to the device by them\n",
		__func__, atomic_load(&c.calls),
		(unsigned long long)bind_stats(&f).migrated_to_dev);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	munmap(p, len);
	munmap(q, len);
}
END_TEST

Suite *coherence_suite(void)
{
	Suite *s = suite_create("coherence");
	TCase *tc = tcase_create("coherence");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_regress_discard_snapshot_stale);
	tcase_add_test(tc, test_regress_discard_atc_stale);
	tcase_add_test(tc, test_regress_snapshot_mprotect);
	tcase_add_test(tc, test_regress_block_fault_bytes_done);
	tcase_add_test(tc, test_regress_fault_addr_first_byte);
	/* The software device's locks and accesses (the kernel backend's
	 * are the shim's). */
	if (test_on_sim() || test_on_vfio())
		/* vfio0's notifier is sim's mm (lib/vfio/engine.c). */
		tcase_add_test(tc, test_regress_callback_sim_locks);
	if (test_on_sim() || test_on_vfio()) {
		/* vfio0 populates before its engine runs: its populate may
		 * wait on the application's userfaultfd as sim0's access. */
		tcase_add_test(tc, test_regress_callback_calls_everything);
		tcase_add_test(tc, test_regress_app_uffd_deadlock);
	}
	suite_add_tcase(s, tc);
	return s;
}
