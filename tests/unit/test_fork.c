// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * fork() (issue 7, defect 7): every public call on an inherited handle is
 * -EPERM (the table covers the whole API of sva.h, checked against the
 * header), no child hangs on a lock held at fork() while other threads use
 * the library, and a child holds nothing of the parent's kernel objects.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"

struct forked {
	struct fixture f;
	uint8_t *p;
	struct sva_mirror *m;
	struct sva_desc d;
	bool own_dev;		/* children open a device of their own */
};

#define EXPECT(cond) do { if (!(cond)) return __LINE__; } while (0)

/* Calls on the parent's handles: each must refuse with -EPERM. */
static int f_dev_fd(struct forked *x) { EXPECT(sva_dev_fd(x->f.dev) == -EPERM); return 0; }
static int f_dev_name(struct forked *x) { EXPECT(sva_dev_name(x->f.dev) == NULL); return 0; }
static int f_dev_quarantined(struct forked *x) { EXPECT(sva_dev_quarantined(x->f.dev) == -EPERM); return 0; }
static int f_dev_reset(struct forked *x) { EXPECT(sva_dev_reset(x->f.dev) == -EPERM); return 0; }
static int f_bind_pasid(struct forked *x)
{
	uint32_t pasid = 12345;

	EXPECT(sva_bind_pasid(x->f.bind, &pasid) == -EPERM && pasid == 12345);
	return 0;
}
static int f_dev_caps(struct forked *x)
{
	SVA_OPTS_INIT(sva_dev_caps, c);

	EXPECT(sva_dev_caps(x->f.dev, &c) == -EPERM);
	return 0;
}
static int f_bind(struct forked *x)
{
	struct sva_bind *b = (void *)1;

	EXPECT(sva_bind(x->f.dev, NULL, &b) == -EPERM && !b);
	return 0;
}
static int f_unbind(struct forked *x) { EXPECT(sva_unbind(x->f.bind) == -EPERM); return 0; }
static int f_submit(struct forked *x) { EXPECT(sva_submit(x->f.bind, &x->d, 1) == -EPERM); return 0; }
static int f_wait(struct forked *x)
{
	struct sva_completion c;

	EXPECT(sva_wait(x->f.bind, &c, 1, 0, 0) == -EPERM);
	return 0;
}
static int f_submit_and_wait(struct forked *x)
{
	struct sva_completion c;

	EXPECT(sva_submit_and_wait(x->f.bind, &x->d, 1, &c, 1, 1, -1) == -EPERM);
	return 0;
}
static int f_inflight(struct forked *x) { EXPECT(sva_inflight(x->f.bind) == -EPERM); return 0; }
static int f_queue_stop(struct forked *x) { EXPECT(sva_queue_stop(x->f.bind) == -EPERM); return 0; }
static int f_queue_start(struct forked *x) { EXPECT(sva_queue_start(x->f.bind) == -EPERM); return 0; }
static int f_mirror_register(struct forked *x)
{
	struct sva_mirror *m = (void *)1;

	EXPECT(sva_mirror_register(x->f.bind, (uintptr_t)x->p, PAGE, NULL,
				   &m) == -EPERM && !m);
	return 0;
}
static int f_mirror_unregister(struct forked *x) { EXPECT(sva_mirror_unregister(x->m) == -EPERM); return 0; }
static int f_mirror_snapshot(struct forked *x)
{
	uint8_t st = 0xaa;

	EXPECT(sva_mirror_snapshot(x->m, (uintptr_t)x->p, PAGE, &st, 0) ==
	       -EPERM && st == 0xaa);
	return 0;
}
/* read_begin answers 0, never a valid sequence; read_retry says retry. */
static int f_mirror_read_begin(struct forked *x) { EXPECT(sva_mirror_read_begin(x->m) == 0); return 0; }
static int f_mirror_read_retry(struct forked *x) { EXPECT(sva_mirror_read_retry(x->m, 1)); return 0; }
static int f_bind_stats(struct forked *x)
{
	struct sva_stats s = { .sz = sizeof(s) };

	EXPECT(sva_bind_stats(x->f.bind, &s) == -EPERM);
	return 0;
}
static int f_bind_stats_reset(struct forked *x) { EXPECT(sva_bind_stats_reset(x->f.bind) == -EPERM); return 0; }
static int f_dev_stats(struct forked *x)
{
	struct sva_stats s = { .sz = sizeof(s) };

	EXPECT(sva_dev_stats(x->f.dev, &s) == -EPERM);
	return 0;
}
static int f_dev_stats_reset(struct forked *x) { EXPECT(sva_dev_stats_reset(x->f.dev) == -EPERM); return 0; }
static int f_dev_reserved_regions(struct forked *x)
{
	struct sva_region r = { .start = 7 };

	EXPECT(sva_dev_reserved_regions(x->f.dev, &r, 1) == -EPERM &&
	       r.start == 7);
	return 0;
}
static int f_migrate(struct forked *x)
{
	SVA_OPTS_INIT(sva_migrate_opts, o, .to = SVA_LOC_DEVICE);
	struct sva_migrate_result r = { .sz = sizeof(r), .moved = 77 };

	EXPECT(sva_migrate(x->f.bind, (uintptr_t)x->p, PAGE, &o, &r) ==
	       -EPERM && r.moved == 77);
	return 0;
}
static int f_make_exclusive(struct forked *x)
{
	struct sva_migrate_result r = { .sz = sizeof(r), .moved = 77 };

	EXPECT(sva_make_exclusive(x->f.bind, (uintptr_t)x->p, PAGE, 0, &r) ==
	       -EPERM && r.moved == 77);
	return 0;
}
static int f_range_set_attr(struct forked *x)
{
	struct sva_range_attr a = { .type = SVA_ATTR_DEVICE_READ_ONLY, .value = 1 };

	EXPECT(sva_range_set_attr(x->f.bind, (uintptr_t)x->p, PAGE, &a, 1) == -EPERM);
	return 0;
}
static int f_range_get_attr(struct forked *x)
{
	struct sva_range_attr a = { .type = SVA_ATTR_DEVICE_READ_ONLY, .value = 77 };

	EXPECT(sva_range_get_attr(x->f.bind, (uintptr_t)x->p, PAGE, &a, 1) ==
	       -EPERM && a.value == 77);
	return 0;
}
/* void: does nothing to the parent's device (its fd stays as it was). */
static int f_dev_close(struct forked *x) { sva_dev_close(x->f.dev); EXPECT(sva_dev_fd(x->f.dev) == -EPERM); return 0; }

/* Calls that take no handle: they work in the child. */
static int g_set_print(struct forked *x) { (void)x; sva_set_print(sva_set_print(NULL)); return 0; }
static int g_devices(struct forked *x) { (void)x; EXPECT(sva_devices(NULL, 0) >= 1); return 0; }
static int g_dev_open(struct forked *x)
{
	struct sva_dev *dev;

	(void)x;
	EXPECT(sva_dev_open(test_device(), NULL, &dev) == 0);
	sva_dev_close(dev);
	return 0;
}
static int g_dev_open_fd(struct forked *x)
{
	struct sva_dev *dev;

	(void)x;
	EXPECT(sva_dev_open_fd(-1, NULL, &dev) == -EBADF);
	return 0;
}
static int g_desc_resume(struct forked *x)
{
	/* Half of it done (x->d's length is test_len()'s). */
	struct sva_completion c = { .status = SVA_STATUS_PAGE_FAULT,
				    .bytes_done = x->d.len / 2 };
	struct sva_desc d = x->d;

	EXPECT(sva_desc_resume(&d, &c) == 0 &&
	       d.len == x->d.len - x->d.len / 2 &&
	       d.src == x->d.src + x->d.len / 2);
	return 0;
}
static int g_inject(struct forked *x) { (void)x; EXPECT(sva_inject(SVA_INJECT_ALLOC, NULL) == 0); return 0; }
static int g_inject_count(struct forked *x) { (void)x; EXPECT(sva_inject_count(SVA_INJECT_ALLOC) == 0); return 0; }
static int g_status_str(struct forked *x) { (void)x; EXPECT(sva_status_str(0) != NULL); return 0; }
static int g_crc32c(struct forked *x) { (void)x; EXPECT(sva_crc32c(0, "123456789", 9) == 0xe3069283); return 0; }
static int g_version(struct forked *x) { (void)x; EXPECT(sva_version() != NULL); return 0; }

/*
 * E: a call; A: one that allocates in the child (a fresh device), which
 * the ASan build's child skips: GCC 12's runtime takes no allocator lock
 * around fork(), and a library thread of the parent inside the allocator
 * at fork() left its lock held in the child (hung in sva_dev_open() in a
 * distcheck run; see ASAN_RUNTIME in unit.h).
 */
#define E(name, fn) { #name, fn, false }
#define A(name, fn) { #name, fn, true }
static const struct {
	const char *name;
	int (*fn)(struct forked *x);
	bool allocates;
} api[] = {
	E(sva_dev_fd, f_dev_fd), E(sva_dev_name, f_dev_name),
	E(sva_dev_quarantined, f_dev_quarantined),
	E(sva_dev_reset, f_dev_reset), E(sva_dev_caps, f_dev_caps),
	E(sva_bind, f_bind), E(sva_unbind, f_unbind),
	E(sva_bind_pasid, f_bind_pasid), E(sva_submit, f_submit),
	E(sva_wait, f_wait), E(sva_submit_and_wait, f_submit_and_wait),
	E(sva_inflight, f_inflight),
	E(sva_queue_stop, f_queue_stop), E(sva_queue_start, f_queue_start),
	E(sva_mirror_register, f_mirror_register),
	E(sva_mirror_snapshot, f_mirror_snapshot),
	E(sva_mirror_read_begin, f_mirror_read_begin),
	E(sva_mirror_read_retry, f_mirror_read_retry),
	E(sva_bind_stats, f_bind_stats),
	E(sva_bind_stats_reset, f_bind_stats_reset),
	E(sva_dev_stats, f_dev_stats),
	E(sva_dev_stats_reset, f_dev_stats_reset),
	E(sva_mirror_unregister, f_mirror_unregister),
	E(sva_migrate, f_migrate),
	E(sva_make_exclusive, f_make_exclusive),
	E(sva_range_set_attr, f_range_set_attr),
	E(sva_range_get_attr, f_range_get_attr),
	E(sva_dev_close, f_dev_close),
	E(sva_set_print, g_set_print), A(sva_devices, g_devices),
	A(sva_dev_open, g_dev_open), E(sva_dev_open_fd, g_dev_open_fd),
	E(sva_desc_resume, g_desc_resume), E(sva_inject, g_inject),
	E(sva_inject_count, g_inject_count),
	E(sva_status_str, g_status_str), E(sva_crc32c, g_crc32c),
	E(sva_version, g_version),
	E(sva_dev_reserved_regions, f_dev_reserved_regions),
};

static void forked_setup(struct forked *x)
{
	memset(x, 0, sizeof(*x));
	open_bind(&x->f, NULL);
	x->p = map_filled(4 * PAGE, 1);
	ck_assert_int_eq(sva_mirror_register(x->f.bind, (uintptr_t)x->p,
					     4 * PAGE, NULL, &x->m), 0);
	x->d = desc_make(&x->f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, x->p,
			 x->p + 2 * PAGE, test_len(2 * PAGE));
	run1(&x->f, &x->d);
}

static void forked_teardown(struct forked *x)
{
	ck_assert_int_eq(sva_mirror_unregister(x->m), 0);
	close_bind(&x->f);
	munmap(x->p, 4 * PAGE);
}

/* Wait for @pid at most @ms; kill it and return -1 if it hangs. */
static int wait_bounded(pid_t pid, int ms)
{
	int status;

	for (int i = 0; i < ms; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
		usleep(1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

START_TEST(test_regress_fork_every_call_eperm)
{
	struct forked x;
	int pfd[2], rc;
	char msg[128] = "";
	pid_t pid;

	/* A VFIO device is opened by one process at a time: the child's
	 * sva_dev_open() of the parent's device can't succeed. */
	bool own = !test_on_vfio() ||
		   !test_skip(__func__, "sva_dev_open() in the child (a VFIO device is opened by one process at a time)");

	forked_setup(&x);
	ck_assert_int_eq(pipe(pfd), 0);
	pid = test_fork();
	if (!pid) {
		close(pfd[0]);
		for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++) {
			/* Named before it runs: a hang names the call. */
			int n = snprintf(msg, sizeof(msg), "%s;", api[i].name);
			int line;

			if (ASAN_RUNTIME && api[i].allocates)
				continue;
			if (!own && api[i].fn == g_dev_open)
				continue;
			if (write(pfd[1], msg, (size_t)n) < 0)
				_exit(2);
			line = api[i].fn(&x);
			if (line) {
				n = snprintf(msg, sizeof(msg), " failed (line %d)",
					     line);
				if (write(pfd[1], msg, (size_t)n) < 0)
					_exit(2);
				_exit(1);
			}
		}
		_exit(0);
	}
	close(pfd[1]);
	rc = wait_bounded(pid, 30000);
	if (rc) {
		/* The calls it started, the last one the culprit. */
		char log[8192];
		ssize_t n = read(pfd[0], log, sizeof(log) - 1);

		n = n > 0 ? n : 0;
		log[n] = 0;
		snprintf(msg, sizeof(msg), "%.100s", log + (n > 100 ? n - 100 : 0));
	}
	close(pfd[0]);
	ck_assert_msg(rc == 0, "child: rc %d (-1: hung, killed after 30 s), in or after %s",
		      rc, msg);
	/* The parent's handles still work. */
	ck_assert_uint_eq(run1(&x.f, &x.d).status, SVA_STATUS_SUCCESS);
	forked_teardown(&x);
}
END_TEST

/* The table covers every call sva.h declares (a new call needs a line). */
START_TEST(test_fork_table_covers_api)
{
	const char *top = getenv("top_srcdir");
	char path[4096], line[512], name[64];
	int found = 0;
	FILE *h;

	if (!top) {
		/* In the test VM: no source tree; the host run checks it. */
		return;
	}
	snprintf(path, sizeof(path), "%s/include/sva/sva.h", top);
	h = fopen(path, "r");
	ck_assert_ptr_nonnull(h);
	while (fgets(line, sizeof(line), h)) {
		char *s = strstr(line, "SVA_API"), *n;
		bool covered = false;
		size_t len;

		if (!s || strstr(line, "#define"))
			continue;
		/* The declaration may continue on the next line. */
		if (!strchr(s, '(') && !fgets(line, sizeof(line), h))
			break;
		n = strchr(line, '(');
		ck_assert_ptr_nonnull(n);
		while (n > line && n[-1] != ' ' && n[-1] != '*')
			n--;
		len = strcspn(n, "(");
		ck_assert_uint_lt(len, sizeof(name));
		memcpy(name, n, len);
		name[len] = 0;
		for (size_t i = 0; i < sizeof(api) / sizeof(api[0]); i++)
			covered |= !strcmp(api[i].name, name);
		ck_assert_msg(covered, "%s: not in the fork test's table", name);
		found++;
	}
	fclose(h);
	ck_assert_int_eq(found, (int)(sizeof(api) / sizeof(api[0])));
}
END_TEST

struct hammer {
	struct forked *x;
	int stop;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	struct forked *x = h->x;
	struct sva_stats s = { .sz = sizeof(s) };
	struct sva_completion c;
	struct sva_mirror *m;
	uint64_t seq;
	uint8_t st;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		seq = sva_mirror_read_begin(x->m);
		sva_mirror_snapshot(x->m, (uintptr_t)x->p, PAGE, &st, 0);
		(void)sva_mirror_read_retry(x->m, seq);
		sva_bind_stats(x->f.bind, &s);
		sva_dev_stats(x->f.dev, &s);
		sva_inflight(x->f.bind);
		if (!sva_mirror_register(x->f.bind, (uintptr_t)x->p + 3 * PAGE,
					 PAGE, NULL, &m))
			sva_mirror_unregister(m);
		sva_inject_count(SVA_INJECT_ALLOC);
		if (sva_submit(x->f.bind, &x->d, 1) == 1)
			sva_wait(x->f.bind, &c, 1, 1, 10000);
		madvise(x->p + 3 * PAGE, PAGE, MADV_DONTNEED);
	}
	return NULL;
}

/*
 * Under AddressSanitizer the children open no device of their own: GCC 12's
 * sanitizer runtime takes no allocator locks around fork(), so a child that
 * allocates while a parent's hammer thread was inside the allocator hangs
 * in it (seen in gdb: SizeClassAllocator64::GetFromAllocator, its mutex
 * inherited locked). The plain suite and kmod0 in the VM run the whole
 * test; the ASan build checks the inherited handles, which allocate
 * nothing.
 */
/* (ASAN_RUNTIME: unit.h.) */

/* What a child does: the parent's handles refuse, its own work. */
static int child_run(struct forked *x, bool own)
{
	struct sva_stats s = { .sz = sizeof(s) };
	struct fixture g = { 0 };
	uint8_t *buf;

	if (sva_bind_stats(x->f.bind, &s) != -EPERM ||
	    sva_dev_stats(x->f.dev, &s) != -EPERM ||
	    sva_inflight(x->f.bind) != -EPERM ||
	    sva_mirror_read_begin(x->m) != 0 ||
	    sva_submit(x->f.bind, &x->d, 1) != -EPERM)
		return 1;
	if (ASAN_RUNTIME || !x->own_dev)
		return 0;
	if (sva_dev_open(test_device(), NULL, &g.dev))
		return 2;
	if (own) {
		struct sva_completion c;
		struct sva_desc d;

		buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (buf == MAP_FAILED || sva_bind(g.dev, NULL, &g.bind) ||
		    sva_bind_pasid(g.bind, &g.pasid))
			return 3;
		memset(buf, 0x5c, PAGE);
		d = desc_make(&g, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, buf,
			      buf + PAGE, PAGE);
		if (sva_submit(g.bind, &d, 1) != 1 ||
		    sva_wait(g.bind, &c, 1, 1, 10000) != 1 ||
		    c.status != SVA_STATUS_SUCCESS || buf[PAGE + 7] != 0x5c)
			return 4;
		if (sva_unbind(g.bind))
			return 5;
	}
	sva_dev_close(g.dev);
	return 0;
}

START_TEST(test_regress_fork_no_child_hangs)
{
	enum { THREADS = 3, FORKS = 300 };
	struct forked x;
	struct hammer h = { .x = &x };
	pthread_t t[THREADS];
	int hung = 0, failed = 0, first_rc = 0, rc;

	forked_setup(&x);
	x.own_dev = !test_on_vfio() ||
		    !test_skip(__func__, "the children's own devices (a VFIO device is opened by one process at a time)");
	for (int i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_thread, &h),
				 0);
	for (int i = 0; i < FORKS; i++) {
		pid_t pid = fork();

		ck_assert_int_ge(pid, 0);
		if (!pid)
			_exit(child_run(&x, i % 10 == 0));
		rc = wait_bounded(pid, 20000);
		hung += rc == -1;
		failed += rc > 0;
		if (rc && !first_rc)
			first_rc = rc;
	}
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(hung, 0);
	ck_assert_msg(!failed, "%d children failed, the first with %d", failed,
		      first_rc);
	forked_teardown(&x);
}
END_TEST

static long live_objects(void)
{
	FILE *f = fopen("/sys/module/sva_shim/parameters/live_objects", "r");
	long n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/* The fds of the calling process, as a bitmap of the first 1024. */
static void fds_open(uint8_t *open_fds)
{
	memset(open_fds, 0, 1024);
	for (int fd = 0; fd < 1024; fd++)
		open_fds[fd] = fcntl(fd, F_GETFD) >= 0;
}

/*
 * A child that never calls libsva holds none of the parent's libsva fds,
 * so the parent's contexts go when the parent unbinds and closes (on kmod,
 * the shim counts them).
 */
START_TEST(test_regress_fork_child_keeps_nothing)
{
	static uint8_t before[1024], after[1024];
	int to_child[2], to_parent[2], status;
	long live0 = live_objects(), live;
	char c = 0;
	struct forked x;
	pid_t pid;

	fds_open(before);
	forked_setup(&x);
	fds_open(after);
	ck_assert_int_eq(pipe(to_child), 0);
	ck_assert_int_eq(pipe(to_parent), 0);
	pid = test_fork();
	if (!pid) {
		char r = 'y';

		/* Every fd libsva opened is closed here. */
		for (int fd = 0; fd < 1024; fd++)
			if (after[fd] && !before[fd] &&
			    fd != to_child[0] && fd != to_child[1] &&
			    fd != to_parent[0] && fd != to_parent[1] &&
			    fcntl(fd, F_GETFD) >= 0) {
				char path[64], target[256] = "";

				snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
				if (readlink(path, target, sizeof(target) - 1) < 0)
					target[0] = 0;
				/* sim's device fd is a sealed memfd naming it,
				 * no kernel context: the rest must be gone. */
				if (!strstr(target, "memfd:sva-sim"))
					r = 'n';
			}
		if (write(to_parent[1], &r, 1) != 1 ||
		    read(to_child[0], &r, 1) != 1)
			_exit(2);
		_exit(0);
	}
	ck_assert_int_eq(read(to_parent[0], &c, 1), 1);
	ck_assert_msg(c == 'y', "the child kept a libsva fd of the parent's");
	forked_teardown(&x);
	/* The child lives on, holding what it inherited. */
	live = live_objects();
	if (live0 >= 0)
		ck_assert_int_eq(live, live0);
	ck_assert_int_eq(write(to_child[1], &c, 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

Suite *fork_suite(void)
{
	Suite *s = suite_create("fork");
	TCase *tc = tcase_create("fork");

	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_regress_fork_every_call_eperm);
	tcase_add_test(tc, test_fork_table_covers_api);
	tcase_add_test(tc, test_regress_fork_child_keeps_nothing);
	tcase_add_test(tc, test_regress_fork_no_child_hangs);
	suite_add_tcase(s, tc);
	return s;
}
