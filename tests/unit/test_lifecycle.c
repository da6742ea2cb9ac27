// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Lifetimes: fork, unbind with work and faults in flight, bind cycles. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

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

START_TEST(test_fork_eperm)
{
	struct fixture f = { 0 };
	uint8_t *src = map_filled(4 * PAGE, 1), *dst = map_filled(4 * PAGE, 2);
	struct sva_desc d;
	int status;
	pid_t pid;

	/* A VFIO device is opened by one process at a time: the child's
	 * own binding can't be while the parent holds it. */
	bool own = !test_on_vfio() ||
		   !test_skip(__func__, "the child's own binding (a VFIO device is opened by one process at a time)");

	open_bind(&f, NULL);
	d = desc_make(&f, SVA_OP_COPY, 0, src, dst, 4 * PAGE);
	run1(&f, &d);
	pid = test_fork();
	if (!pid) {
		struct sva_completion c;
		struct sva_mirror *m;
		struct fixture g = { 0 };
		int bad = 0, n;

		/* The parent's handles are the parent's. */
		bad |= sva_submit(f.bind, &d, 1) != -EPERM;
		bad |= sva_wait(f.bind, &c, 1, 0, 0) != -EPERM;
		bad |= sva_unbind(f.bind) != -EPERM;
		bad |= sva_bind(f.dev, NULL, &g.bind) != -EPERM;
		bad |= sva_mirror_register(f.bind, (uintptr_t)src, PAGE, NULL,
					   &m) != -EPERM;
		bad |= sva_queue_stop(f.bind) != -EPERM;
		/* (CI, loaded, ASan: twice the child's own copy didn't
		 * complete in 5 s; not seen in 28 loaded runs with 60 s.
		 * The allocator hazard of unit.h is the likely cause.) */
		if (ASAN_RUNTIME || !own)
			_exit(bad ? 1 : 0);
		/* Its own binding works, on its own copy of the memory. */
		if (sva_dev_open(test_device(), NULL, &g.dev) ||
		    sva_bind(g.dev, NULL, &g.bind) ||
		    sva_bind_pasid(g.bind, &g.pasid))
			_exit(2);
		d.pasid = g.pasid;
		d.flags = SVA_DESC_BLOCK_ON_FAULT;
		memset(src, 0x77, 4 * PAGE);
		/* A bound on a hang (loaded CI, ASan), not a time limit. */
		n = sva_submit(g.bind, &d, 1);
		if (n == 1)
			n = sva_wait(g.bind, &c, 1, 1, 60000);
		if (n != 1 || c.status != SVA_STATUS_SUCCESS ||
		    dst[100] != 0x77) {
			fprintf(stderr, "test_fork_eperm: child's copy: %d, status %u, dst[100] %#x, %d in flight\n",
				n, n == 1 ? c.status : 0, dst[100],
				sva_inflight(g.bind));
			_exit(3);
		}
		sva_unbind(g.bind);
		sva_dev_close(g.dev);
		_exit(bad ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* The parent's memory and binding are untouched by the child. */
	ck_assert_uint_ne(dst[100], 0x77);
	fill_pattern(src, 4 * PAGE, 9);
	d.flags = SVA_DESC_BLOCK_ON_FAULT;
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 4 * PAGE), 0);
	close_bind(&f);
}
END_TEST

/* After fork, private pages are copy-on-write: device writes in the
 * parent must land in the parent's copy only. */
START_TEST(test_cow_after_fork)
{
	struct fixture f = { 0 };
	uint8_t *buf = map_filled(4 * PAGE, 3);
	struct sva_desc d;
	int to_child[2], to_parent[2], status;
	char go = 'g', res = 0;
	pid_t pid;

	open_bind(&f, NULL);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, buf,
		      4 * PAGE);
	d.pattern = 0x1111111111111111ull;
	run1(&f, &d);	/* warm, writable translations cached */
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(to_parent), 0);
	pid = test_fork();
	if (!pid) {
		if (read(to_child[0], &go, 1) != 1)
			_exit(2);
		res = buf[0] == 0x11 && buf[4 * PAGE - 1] == 0x11 ? 'y' : 'n';
		_exit(write(to_parent[1], &res, 1) == 1 ? 0 : 2);
	}
	d.pattern = 0x2222222222222222ull;
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(buf[0], 0x22);
	ck_assert_uint_eq(buf[4 * PAGE - 1], 0x22);
	ck_assert_int_eq(write(to_child[1], &go, 1), 1);
	ck_assert_int_eq(read(to_parent[0], &res, 1), 1);
	ck_assert_int_eq(res, 'y');
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	close_bind(&f);
}
END_TEST

START_TEST(test_unbind_drains_work)
{
	enum { N = 32 };
	size_t len = test_len(1u << 20);
	struct fixture f = { 0 };
	uint8_t *src = map_filled(len, 4);
	uint8_t *dst = map_fresh(N * len, PROT_READ | PROT_WRITE);
	struct sva_desc d[N];

	open_bind(&f, NULL);
	for (int i = 0; i < N; i++)
		d[i] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src,
				 dst + (size_t)i * len, len);
	ck_assert_int_eq(sva_submit(f.bind, d, N), N);
	/* Work queued and faulting fresh pages in: unbind waits for it. */
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(memcmp(src, dst + (size_t)i * len, len), 0);
	close_bind(&f);
	munmap(src, len);
	munmap(dst, N * len);
}
END_TEST

START_TEST(test_unbind_stopped_queue)
{
	struct fixture f = { 0 };
	uint8_t *dst = map_fresh(PAGE, PROT_READ | PROT_WRITE);
	struct sva_desc d;

	open_bind(&f, NULL);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, dst,
		      PAGE);
	d.pattern = ~0ull;
	ck_assert_int_eq(sva_queue_stop(f.bind), 0);
	ck_assert_int_eq(sva_submit(f.bind, &d, 1), 1);
	ck_assert_int_eq(sva_unbind(f.bind), 0);	/* no hang */
	f.bind = NULL;
	ck_assert_uint_eq(dst[PAGE - 1], 0xff);
	close_bind(&f);
	munmap(dst, PAGE);
}
END_TEST

START_TEST(test_close_with_bindings)
{
	struct sva_dev *dev;
	struct sva_bind *b[3];
	int fds = count_dir("/proc/self/fd");

	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &dev), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(sva_bind(dev, NULL, &b[i]), 0);
	sva_dev_close(dev);
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
}
END_TEST

/* Any backend: a device opened again from its fd is the same device. */
START_TEST(test_reopen_from_fd)
{
	struct fixture f = { 0 }, g = { 0 };
	uint8_t *src, *dst;
	struct sva_desc d;

	if (test_on_vfio() &&
	    test_skip(__func__, "a VFIO device is not opened from a fd (its group or cdev is the process's, opened once)"))
		return;
	src = map_filled(2 * PAGE, 8);
	dst = map_fresh(2 * PAGE, PROT_READ | PROT_WRITE);
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_dev_open_fd(sva_dev_fd(f.dev), NULL, &g.dev), 0);
	ck_assert_str_eq(sva_dev_name(g.dev), test_device());
	ck_assert_int_eq(sva_bind(g.dev, NULL, &g.bind), 0);
	ck_assert_int_eq(sva_bind_pasid(g.bind, &g.pasid), 0);
	d = desc_make(&g, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, src, dst,
		      2 * PAGE);
	ck_assert_uint_eq(run1(&g, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(memcmp(src, dst, 2 * PAGE), 0);
	close_bind(&g);
	close_bind(&f);
	munmap(src, 2 * PAGE);
	munmap(dst, 2 * PAGE);
}
END_TEST

/* /proc/self/task once @want, or after 1 s (a joined thread lingers). */
static int tasks_settle(int want)
{
	int n = count_dir("/proc/self/task");

	for (int i = 0; i < 100 && n != want; i++) {
		usleep(10000);
		n = count_dir("/proc/self/task");
	}
	return n;
}

/*
 * A binding starts its queue worker with its first submit, not at bind: a
 * binding used for mirrors or migration only costs no thread. Exactly one
 * starts however many submit at once, and unbind joins it.
 */
START_TEST(test_queue_worker_starts_at_first_submit)
{
	uint8_t *src = map_filled(PAGE, 7), *dst = map_fresh(PAGE,
						PROT_READ | PROT_WRITE);
	struct sva_mirror *m, *m2;
	struct sva_completion c;
	struct sva_bind *b;
	struct sva_dev *dev;
	struct sva_desc d;
	uint32_t pasid;
	int base, bound;

	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &dev), 0);
	base = tasks_settle(-1);
	ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
	/* What the first access starts besides the worker (sim: the event
	 * thread, with the first range it hears of) starts here. */
	ck_assert_int_eq(sva_mirror_register(b, (uintptr_t)dst, PAGE, NULL,
					     &m), 0);
	ck_assert_int_eq(sva_mirror_register(b, (uintptr_t)src, PAGE, NULL,
					     &m2), 0);
	bound = tasks_settle(-1);
	/* Nothing submitted (a NOP batch of 0 either): no worker yet. */
	ck_assert_int_eq(sva_submit(b, NULL, 0), 0);
	ck_assert_int_eq(tasks_settle(bound), bound);
	ck_assert_int_eq(sva_bind_pasid(b, &pasid), 0);
	d = (struct sva_desc){ .opcode = SVA_OP_COPY, .pasid = pasid,
		.flags = SVA_DESC_BLOCK_ON_FAULT, .src = (uintptr_t)src,
		.dst = (uintptr_t)dst, .len = PAGE };
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(sva_submit(b, &d, 1), 1);
		ck_assert_int_eq(sva_wait(b, &c, 1, 1, test_wait_ms()), 1);
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_int_eq(tasks_settle(bound + 1), bound + 1);
	}
	ck_assert_int_eq(memcmp(src, dst, PAGE), 0);
	ck_assert_int_eq(sva_mirror_unregister(m2), 0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	ck_assert_int_eq(sva_unbind(b), 0);
	ck_assert_int_eq(tasks_settle(base), base);
	sva_dev_close(dev);
	munmap(src, PAGE);
	munmap(dst, PAGE);
}
END_TEST

/* 10k bind/unbind cycles: no fd, thread or (under ASan) memory leaks. */
START_TEST(test_bind_unbind_cycles)
{
	uint8_t *src = map_filled(2 * PAGE, 6), *dst = map_fresh(2 * PAGE,
						PROT_READ | PROT_WRITE);
	/* Fewer under emulation in the VM (SVA_TEST_EMULATED, set by its
	 * init): each cycle is threads, a userfaultfd or a kernel context,
	 * and a leak of any shows after a thousand as after ten thousand. */
	int cycles = getenv("SVA_TEST_EMULATED") ? 1000 :
		     test_on_sim() ? 10000 : 2000;
	size_t len = test_len(2 * PAGE);
	struct sva_dev *dev;
	int fds, tasks;

	ck_assert_int_eq(sva_dev_open(test_device(), NULL, &dev), 0);
	fds = count_dir("/proc/self/fd");
	tasks = count_dir("/proc/self/task");
	for (int i = 0; i < cycles; i++) {
		struct sva_bind *b;
		struct sva_completion c;
		struct sva_desc d;
		uint32_t pasid;

		ck_assert_int_eq(sva_bind(dev, NULL, &b), 0);
		if (i % 100 == 0) {
			ck_assert_int_eq(sva_bind_pasid(b, &pasid), 0);
			d = (struct sva_desc){ .opcode = SVA_OP_COPY,
				.flags = SVA_DESC_BLOCK_ON_FAULT,
				.pasid = pasid, .src = (uintptr_t)src,
				.dst = (uintptr_t)dst, .len = len };
			ck_assert_int_eq(sva_submit(b, &d, 1), 1);
			ck_assert_int_eq(sva_wait(b, &c, 1, 1, test_wait_ms()), 1);
			ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		}
		ck_assert_int_eq(sva_unbind(b), 0);
	}
	ck_assert_int_eq(count_dir("/proc/self/fd"), fds);
	/* A joined thread can linger in /proc a moment; a leaked one stays. */
	for (int i = 0; i < 100 && count_dir("/proc/self/task") != tasks; i++)
		usleep(10000);
	ck_assert_int_eq(count_dir("/proc/self/task"), tasks);
	ck_assert_int_eq(memcmp(src, dst, len), 0);
	sva_dev_close(dev);
}
END_TEST

Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_fork_eperm);
	tcase_add_test(tc, test_cow_after_fork);
	tcase_add_test(tc, test_unbind_drains_work);
	tcase_add_test(tc, test_unbind_stopped_queue);
	tcase_add_test(tc, test_close_with_bindings);
	tcase_add_test(tc, test_reopen_from_fd);
	tcase_add_test(tc, test_bind_unbind_cycles);
	tcase_add_test(tc, test_queue_worker_starts_at_first_submit);
	suite_add_tcase(s, tc);
	return s;
}
