// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The print hook is the application's code: libsva calls it with no library
 * lock held (sva_set_print(3)), so on the application's thread it may call
 * libsva and block on anything. A hostile hook here does, on every message
 * said on the test's thread: it registers and unregisters a mirror (the
 * binding's mirror lock), asks the queue (its lock), the statistics and the
 * fault-injection counters, and discards a page under a mirror, which sim0
 * invalidates on its event thread (the mm's locks). Each case drives a path
 * that says something while holding one of those locks: a hook called
 * there deadlocked.
 *
 * Every lock of the library is counted per thread (lib/internal.h): what is
 * said under one waits for the last to be dropped, so no path has to
 * remember to. These cases are the test of that (tests/fault's
 * log-deferred suite tests the deferral itself).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

/* What the hook works on, and what it found. */
static struct {
	struct sva_bind *bind;
	struct sva_mirror *mirror;	/* over page */
	uint8_t *page;
	int pipe_fd;			/* child: one byte a message */
	pthread_t caller;		/* the test's thread */
	pthread_mutex_t lock;		/* the test's own: msgs, results */
	char msgs[2048];
	int calls, register_ret, inflight_ret, stats_ret;
	bool seq_moved;
} hk = { .lock = PTHREAD_MUTEX_INITIALIZER, .pipe_fd = -1 };

static __thread bool in_hook;

static void hook_use_library(void)
{
	struct sva_stats st = { .sz = sizeof(st) };
	struct sva_mirror *m = NULL;
	int reg, inflight, stats;
	uint64_t seq;

	reg = sva_mirror_register(hk.bind, (uintptr_t)hk.page + PAGE, PAGE,
				  NULL, &m);
	if (!reg)
		sva_mirror_unregister(m);
	inflight = sva_inflight(hk.bind);
	stats = sva_bind_stats(hk.bind, &st);
	(void)sva_inject_count(SVA_INJECT_ALLOC);
	/* Present, then discarded: the event thread invalidates it before
	 * madvise() returns, and it needs the locks a caller may hold. */
	seq = sva_mirror_read_begin(hk.mirror);
	hk.page[0]++;
	madvise(hk.page, PAGE, MADV_DONTNEED);
	pthread_mutex_lock(&hk.lock);
	hk.register_ret = reg;
	hk.inflight_ret = inflight;
	hk.stats_ret = stats;
	hk.seq_moved = sva_mirror_read_retry(hk.mirror, seq);
	pthread_mutex_unlock(&hk.lock);
}

static int hostile_print(enum sva_print_level level, const char *fmt,
			 va_list ap)
{
	char msg[512];

	(void)level;
	if (in_hook)
		return 0;	/* what the hook's own calls say */
	in_hook = true;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (hk.pipe_fd >= 0) {
		/* A child of fork(): its handles are inherited, -EPERM. */
		sva_inflight(hk.bind);
		if (write(hk.pipe_fd, "m", 1) != 1)
			_exit(3);
	} else {
		/* On a library thread (sim0's event thread says things too)
		 * the hook must not wait for memory libsva serves: see
		 * sva_set_print(3). */
		if (pthread_equal(pthread_self(), hk.caller))
			hook_use_library();
		pthread_mutex_lock(&hk.lock);
		hk.calls++;
		strncat(hk.msgs, msg, sizeof(hk.msgs) - strlen(hk.msgs) - 1);
		pthread_mutex_unlock(&hk.lock);
	}
	in_hook = false;
	return 0;
}

/* A binding with a mirror over a page of its own, and the hook in. */
static void hook_setup(struct fixture *f)
{
	open_bind(f, NULL);
	hk.page = map_fresh_small(2 * PAGE, PROT_READ | PROT_WRITE);
	hk.bind = f->bind;
	ck_assert_int_eq(sva_mirror_register(f->bind, (uintptr_t)hk.page,
					     PAGE, NULL, &hk.mirror), 0);
	hk.calls = 0;
	hk.msgs[0] = '\0';
	hk.caller = pthread_self();
	sva_set_print(hostile_print);
}

static void hook_teardown(struct fixture *f)
{
	sva_set_print(NULL);
	if (hk.mirror)
		ck_assert_int_eq(sva_mirror_unregister(hk.mirror), 0);
	hk.mirror = NULL;
	close_bind(f);
	munmap(hk.page, 2 * PAGE);
}

/* What the hook saw, under the test's lock. */
static bool hook_saw(const char *what)
{
	bool saw;

	pthread_mutex_lock(&hk.lock);
	saw = strstr(hk.msgs, what) != NULL;
	pthread_mutex_unlock(&hk.lock);
	return saw;
}

/*
 * sva_submit_and_wait() for more than would be in flight: said under the
 * queue's lock (the hook's sva_inflight() takes it).
 */
START_TEST(test_print_hook_wait_more_than_inflight)
{
	uint8_t *p = map_filled(2 * PAGE, 7);
	struct sva_completion comp[4];
	struct fixture f = { 0 };
	struct sva_desc d;

	hook_setup(&f);
	d = desc_make(&f, SVA_OP_COPY, 0, p, p + PAGE, PAGE);
	ck_assert_int_eq(sva_submit_and_wait(f.bind, &d, 1, comp, 4, 3, 1000),
			 -EINVAL);
	ck_assert_msg(hook_saw("waiting for 3"), "hook saw: %s", hk.msgs);
	ck_assert_int_eq(hk.register_ret, 0);
	ck_assert_int_eq(hk.inflight_ret, 0);
	ck_assert_int_eq(hk.stats_ret, 0);
	ck_assert_msg(hk.seq_moved, "the hook's discard was not invalidated");
	hook_teardown(&f);
	munmap(p, 2 * PAGE);
}
END_TEST

static void release_registers(struct sva_mirror *m, uint64_t start,
			      uint64_t end, enum sva_inval_event event,
			      uint64_t seq, void *ctx)
{
	int *ret = ctx;
	struct sva_mirror *other = NULL;

	(void)m; (void)start; (void)end; (void)seq;
	if (event != SVA_INVAL_RELEASE)
		return;
	*ret = sva_mirror_register(hk.bind, (uintptr_t)hk.page + PAGE, PAGE,
				   NULL, &other);
}

/*
 * sva_mirror_register() from a callback of a binding being unbound: said
 * under the binding's mirror lock (the hook's register takes it).
 */
START_TEST(test_print_hook_register_while_unbinding)
{
	uint8_t *p = map_filled(PAGE, 9);
	struct sva_mirror_opts o = { .sz = sizeof(o),
				     .invalidate = release_registers };
	struct sva_mirror *m;
	struct fixture f = { 0 };
	int cb_ret = 1;

	hook_setup(&f);
	o.ctx = &cb_ret;
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, PAGE, &o,
					     &m), 0);
	/* The hook's mirror goes first: unbind releases every mirror. */
	ck_assert_int_eq(sva_mirror_unregister(hk.mirror), 0);
	hk.mirror = NULL;
	hk.mirror = m;		/* the hook reads its sequence meanwhile */
	ck_assert_int_eq(sva_unbind(f.bind), 0);
	f.bind = NULL;
	ck_assert_int_eq(cb_ret, -ESHUTDOWN);
	ck_assert_msg(hook_saw("being unbound"), "hook saw: %s", hk.msgs);
	ck_assert_int_eq(hk.register_ret, -ESHUTDOWN);
	sva_set_print(NULL);
	hk.mirror = NULL;
	close_bind(&f);
	munmap(hk.page, 2 * PAGE);
	munmap(p, PAGE);
}
END_TEST

/*
 * A child of fork() from a process whose libsva held locks across the
 * fork (atfork handlers): its messages reach its hook, none waits for a
 * lock it will never drop.
 */
START_TEST(test_print_hook_in_fork_child)
{
	struct fixture f = { 0 };
	struct pollfd pfd;
	int fds[2], status;
	char c;
	pid_t pid;

	hook_setup(&f);
	ck_assert_int_eq(pipe(fds), 0);
	pid = test_fork();
	if (!pid) {
		close(fds[0]);
		hk.pipe_fd = fds[1];
		/* -EPERM, and says so. */
		_exit(sva_inflight(f.bind) == -EPERM ? 0 : 2);
	}
	close(fds[1]);
	pfd = (struct pollfd){ .fd = fds[0], .events = POLLIN };
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child status 0x%x", status);
	ck_assert_msg(poll(&pfd, 1, 0) == 1 && read(fds[0], &c, 1) == 1,
		      "the child's message never reached its hook");
	close(fds[0]);
	hook_teardown(&f);
}
END_TEST

/* Threads of this process but the caller's: how many, how many named
 * "sva-..." (the library's, sva_set_print(3)). */
static unsigned int other_threads(unsigned int *named_sva)
{
	DIR *d = opendir("/proc/self/task");
	pid_t self = (pid_t)syscall(SYS_gettid);
	struct dirent *e;
	unsigned int n = 0;

	ck_assert_ptr_nonnull(d);
	*named_sva = 0;
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.' || atoi(e->d_name) == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm",
			 e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* gone meanwhile */
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		n++;
		*named_sva += !strncmp(comm, "sva-", 4);
	}
	closedir(d);
	return n;
}

/*
 * Every thread libsva starts is named "sva-..." (a hook tells by it that it
 * runs on one, sva_set_print(3); top -H, perf and gdb show it): a binding
 * with a mirror, a descriptor run and a discard seen start them.
 */
START_TEST(test_library_threads_named)
{
	unsigned int others0, sva0, others, sva;
	struct sva_mirror *m;
	struct fixture f;
	uint8_t *p = map_filled(2 * PAGE, 7);
	struct sva_desc d;

	others0 = other_threads(&sva0);
	open_bind(&f, NULL);
	ck_assert_int_eq(sva_mirror_register(f.bind, (uintptr_t)p, 2 * PAGE,
					     NULL, &m), 0);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p,
		      test_len(2 * PAGE));
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_int_eq(madvise(p + PAGE, PAGE, MADV_DONTNEED), 0);
	others = other_threads(&sva);
	fprintf(stderr, "%s: %u threads of libsva's beside the test's (%u before)\n",
		__func__, sva - sva0, sva0);
	ck_assert_uint_gt(sva, sva0);
	ck_assert_uint_eq(others - others0, sva - sva0);
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	close_bind(&f);
	munmap(p, 2 * PAGE);
}
END_TEST

Suite *print_hook_suite(void)
{
	Suite *s = suite_create("print_hook");
	TCase *tc = tcase_create("print_hook");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_print_hook_wait_more_than_inflight);
	tcase_add_test(tc, test_print_hook_register_while_unbinding);
	tcase_add_test(tc, test_print_hook_in_fork_child);
	tcase_add_test(tc, test_library_threads_named);
	suite_add_tcase(s, tc);
	return s;
}
