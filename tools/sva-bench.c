// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-bench: what shared virtual addressing costs, each figure a ratio to a
 * baseline measured in the same run (memcpy, the kernel's own populate,
 * plain munmap, ...), so that it holds on a noisy machine.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>

#include "sva/sva.h"
#include "bench.h"

#define KiB 1024ul
#define MiB (1024ul * 1024)
#define PAGE 4096ul

static struct {
	bool quick;
	bool json;
	const char *plot;
	const char *backend;
	const char *only;
	const char *trace;		/* --trace FILE */
	unsigned int max_threads;
} opt = { .backend = "sim", .max_threads = 4 };

static struct report rep;
static bool untraced;		/* dev_open_n(): not even with --trace */
static unsigned int step, steps;

static void die(const char *what, int err)
{
	fprintf(stderr, "sva-bench: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* How many devices the chosen backend has (at least 1, to fail clearly). */
static unsigned int backend_devices(void)
{
	struct sva_dev_desc d[16];
	int n = sva_devices(d, 16);
	unsigned int count = 0;

	for (int i = 0; i < n && i < 16; i++)
		count += !strcmp(d[i].backend, opt.backend);
	return count ? count : 1;
}

/*
 * --trace FILE: the @k-th device opened (from 1) traces into FILE, FILE-2,
 * ... (before the extension), each a file of its own. '%' is doubled: the
 * library would expand it.
 */
static void trace_file(char *out, size_t len, unsigned int k)
{
	const char *dot = strrchr(opt.trace, '.'), *slash = strrchr(opt.trace, '/');
	size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - opt.trace) :
		      strlen(opt.trace);
	char name[4096];
	size_t n = 0;

	if (k == 1)
		snprintf(name, sizeof(name), "%s", opt.trace);
	else
		snprintf(name, sizeof(name), "%.*s-%u%s", (int)stem, opt.trace,
			 k, opt.trace + stem);
	for (const char *s = name; *s && n + 2 < len; s++) {
		if (*s == '%')
			out[n++] = '%';
		out[n++] = *s;
	}
	out[n] = 0;
}

/*
 * The @n-th device of the chosen backend: "sim0", "kmod0", ... wrapping
 * around when the backend has fewer (kmod has one).
 */
static struct sva_dev *dev_open_n(unsigned int n,
				  const struct sva_dev_opts *o)
{
	static unsigned int traced;
	SVA_OPTS_INIT(sva_dev_opts, to);
	char name[SVA_NAME_MAX], path[8192];
	struct sva_dev *dev;
	int err;

	snprintf(name, sizeof(name), "%s%u", opt.backend,
		 n % backend_devices());
	if (opt.trace && !untraced && !(o && o->trace_path)) {
		if (o)
			to = *o;
		trace_file(path, sizeof(path), ++traced);
		to.trace_path = path;
		o = &to;
		fprintf(stderr, "sva-bench: tracing %s into %s\n", name, path);
	}
	err = sva_dev_open(name, o, &dev);
	if (err) {
		fprintf(stderr, "sva-bench: can't open %s: %s%s\n", name,
			strerror(-err), strcmp(opt.backend, "sim") ?
			" (is the kernel module loaded? --backend sim needs none)" : "");
		exit(1);
	}
	return dev;
}

struct ctx {
	struct sva_dev *dev;
	struct sva_bind *bind;
	uint32_t pasid;
};

static void ctx_open(struct ctx *c, unsigned int n,
		     const struct sva_dev_opts *o)
{
	int err;

	c->dev = dev_open_n(n, o);
	err = sva_bind(c->dev, NULL, &c->bind);
	if (err)
		die("bind", err);
	sva_bind_pasid(c->bind, &c->pasid);
}

static void ctx_close(struct ctx *c)
{
	sva_unbind(c->bind);
	sva_dev_close(c->dev);
}

/* Run one descriptor to completion; exits on anything but success. */
static void dev_run(struct ctx *c, uint32_t op, uint32_t flags, void *src,
		    void *dst, size_t len)
{
	struct sva_desc d = {
		/* Block on faults: the benchmarks measure, never fail. */
		.opcode = op, .flags = flags | SVA_DESC_BLOCK_ON_FAULT,
		.pasid = c->pasid,
		.src = (uintptr_t)src, .dst = (uintptr_t)dst, .len = len,
		.pattern = 0x5a5a5a5a5a5a5a5aull,
	};
	struct sva_completion comp;
	int err;

	/* One call: run here if the backend can, no worker woken. */
	err = sva_submit_and_wait(c->bind, &d, 1, &comp, 1, 1, -1);
	if (err != 1)
		die("submit and wait", err < 0 ? err : -ETIMEDOUT);
	if (comp.status != SVA_STATUS_SUCCESS) {
		fprintf(stderr, "sva-bench: descriptor failed: %s at %#llx\n",
			sva_status_str(comp.status),
			(unsigned long long)comp.fault_addr);
		exit(1);
	}
}

static void *map_anon(size_t len, bool touch)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", -errno);
	if (touch)
		memset(p, 1, len);
	return p;
}

static void size_name(char *buf, size_t len, size_t sz)
{
	if (sz >= MiB)
		snprintf(buf, len, "%zuMiB", sz / MiB);
	else
		snprintf(buf, len, "%zuKiB", sz / KiB);
}

/*
 * Fill @r from @n timed repetitions of subject and baseline (interleaved by
 * the caller): medians, the subject's p50/p99 and the ratio.
 */
static void finish(struct result *r, double *subj, double *base, size_t n,
		   double work, const char *unit)
{
	r->baseline_ns = percentile(base, n, 50);
	r->p99_ns = percentile(subj, n, 99);
	r->p50_ns = r->subject_ns = percentile(subj, n, 50);
	r->ratio = r->baseline_ns > 0 ? r->subject_ns / r->baseline_ns : 0;
	if (work > 0 && r->subject_ns > 0) {
		r->rate = work / (r->subject_ns / 1e9);
		snprintf(r->rate_unit, sizeof(r->rate_unit), "%s", unit);
	}
	progress("sva-bench", ++step, steps);
}

static void set_names(struct result *r, const char *group, const char *name,
		      const char *subject, const char *baseline, double x)
{
	snprintf(r->group, sizeof(r->group), "%s", group);
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->subject, sizeof(r->subject), "%s", subject);
	snprintf(r->baseline, sizeof(r->baseline), "%s", baseline);
	r->x = x;
}

static size_t reps_for(size_t bytes)
{
	size_t n = (opt.quick ? 64 : 256) * MiB / bytes;

	if (n < 5)
		n = 5;
	return n > 2000 ? 2000 : n;
}

/* ---------------------------------------------------------------- copy */

static void bench_copy(void)
{
	static const size_t sizes[] = { 4 * KiB, 64 * KiB, 1 * MiB,
					16 * MiB, 64 * MiB };
	size_t nsizes = opt.quick ? 3 : 5;
	struct ctx c;

	ctx_open(&c, 0, NULL);
	for (size_t i = 0; i < nsizes; i++) {
		size_t sz = sizes[i], n = reps_for(sz);
		uint8_t *src = map_anon(sz, true), *dst = map_anon(sz, true);
		double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
		struct result *r = report_add(&rep);
		char name[32];
		uint64_t t;

		double *pv = calloc(n, sizeof(*pv));
		struct iovec liov = { dst, sz }, riov = { src, sz };
		bool pv_ok = true;

		dev_run(&c, SVA_OP_COPY, 0, src, dst, sz);	/* warm ATC */
		for (size_t k = 0; k < n; k++) {
			t = now_ns();
			dev_run(&c, SVA_OP_COPY, 0, src, dst, sz);
			s[k] = (double)(now_ns() - t);
			t = now_ns();
			memcpy(dst, src, sz);
			__asm__ volatile("" ::: "memory");
			b[k] = (double)(now_ns() - t);
			/*
			 * The kernel's copy between two addresses it checks
			 * (a bad one is EFAULT, not a signal): what a device
			 * model in user space can at best do.
			 */
			t = now_ns();
			pv_ok &= process_vm_readv(getpid(), &liov, 1, &riov,
						  1, 0) == (ssize_t)sz;
			pv[k] = (double)(now_ns() - t);
		}
		size_name(name, sizeof(name), sz);
		set_names(r, "copy", name, "device copy (warm ATC)",
			  "memcpy", (double)sz);
		finish(r, s, b, n, (double)sz / (1 << 30), "GiB/s");
		if (sz >= 1 * MiB && pv_ok) {
			r = report_add(&rep);
			set_names(r, "copy", name, "device copy (warm ATC)",
				  "process_vm_readv", (double)sz);
			finish(r, s, pv, n, (double)sz / (1 << 30), "GiB/s");
		}
		free(pv);
		free(s);
		free(b);
		munmap(src, sz);
		munmap(dst, sz);
	}
	ctx_close(&c);
}

/* -------------------------------------------------------------- faults */

/*
 * One timed run of an access pattern on fresh memory: a cold fill of @sz
 * (sequential), or one 8-byte fill in each of @sz / 64 KiB pages spread
 * over 1 GiB, a MiB apart, in no order (sparse random).
 */
static double fault_pattern_ns(struct ctx *c, bool sparse, size_t sz)
{
	size_t len = sparse ? 1024 * MiB : sz, npages = sz / (64 * KiB);
	uint8_t *p = map_anon(len, false);
	uint64_t t = now_ns();

	if (!sparse)
		dev_run(c, SVA_OP_FILL, 0, NULL, p, sz);
	for (size_t i = 0; sparse && i < npages; i++)
		dev_run(c, SVA_OP_FILL, 0, NULL,
			p + (i * 37 % 1024) * MiB + (i * 13 % 256) * PAGE, 8);
	t = now_ns() - t;
	munmap(p, len);
	return (double)t;
}

/*
 * The default fault policy (adaptive fault-around) vs the best of fixed
 * page request batches (windows) for two access patterns: the ratio is
 * the default's median to the fastest fixed batch's median.
 */
static void bench_fault_policy(size_t sz, size_t n)
{
	static const unsigned int fixed[] = { 1, 16, 64, 256 };
	enum { NF = sizeof(fixed) / sizeof(fixed[0]) };
	static const char *const pattern[] = { "sequential", "sparse random" };
	struct ctx c[NF + 1];
	double *t[NF + 1], best, med;
	unsigned int bi;
	char name[32], label[32];

	for (unsigned int k = 0; k <= NF; k++) {
		SVA_OPTS_INIT(sva_dev_opts, o, .fault_batch = k ? fixed[k - 1] : 0);

		ctx_open(&c[k], k, &o);
		t[k] = calloc(n, sizeof(double));
	}
	for (int sparse = 0; sparse < 2; sparse++) {
		struct result *r = report_add(&rep);

		for (size_t i = 0; i < n; i++)
			for (unsigned int k = 0; k <= NF; k++)
				t[k][i] = fault_pattern_ns(&c[k], sparse, sz);
		best = 0;
		bi = 1;
		for (unsigned int k = 1; k <= NF; k++) {
			med = percentile(t[k], n, 50);
			if (!best || med < best) {
				best = med;
				bi = k;
			}
		}
		size_name(name, sizeof(name), sz);
		snprintf(label, sizeof(label), "PRI default, %s", pattern[sparse]);
		set_names(r, "fault", sparse ? "sparse" : name, label, "", 4 + sparse);
		snprintf(r->baseline, sizeof(r->baseline),
			 "best fixed batch (%u)", fixed[bi - 1]);
		finish(r, t[0], t[bi], n, sparse ? (double)(sz / (64 * KiB)) :
		       (double)(sz / PAGE), "pages/s");
	}
	for (unsigned int k = 0; k <= NF; k++) {
		free(t[k]);
		ctx_close(&c[k]);
	}
}

/*
 * sim0's floor for a cold fill: the kernel populates the pages (as its
 * fault service does), then writes the pattern through process_vm_writev
 * (as its engine does: one page of pattern, repeated). -1 on failure.
 */
static double fill_floor_ns(size_t sz)
{
	enum { NIOV = 256 };
	static uint8_t pat[PAGE] __attribute__((aligned(PAGE)));
	struct iovec liov[NIOV], riov;
	uint8_t *p = map_anon(sz, false);
	uint64_t t = now_ns();
	bool ok = !madvise(p, sz, MADV_POPULATE_WRITE);

	memset(pat, 0x5a, sizeof(pat));
	for (size_t i = 0; i < NIOV; i++)
		liov[i] = (struct iovec){ pat, PAGE };
	for (size_t off = 0; ok && off < sz; off += NIOV * PAGE) {
		size_t len = sz - off < NIOV * PAGE ? sz - off : NIOV * PAGE;

		riov = (struct iovec){ p + off, len };
		ok = process_vm_writev(getpid(), liov, len / PAGE, &riov, 1,
				       0) == (ssize_t)len;
	}
	t = now_ns() - t;
	munmap(p, sz);
	return ok ? (double)t : -1;
}

static void bench_fault(void)
{
	size_t sz = (opt.quick ? 4 : 16) * MiB, n = opt.quick ? 3 : 7;
	double *s = calloc(n, sizeof(*s)), *b1 = calloc(n, sizeof(*b1));
	double *b2 = calloc(n, sizeof(*b2)), *s1 = calloc(n, sizeof(*s1));
	double *b3 = calloc(n, sizeof(*b3));
	bool floor = !strcmp(opt.backend, "sim");
	SVA_OPTS_INIT(sva_dev_opts, one, .fault_batch = 1);
	struct result *r;
	struct ctx c, c1;
	char name[32];
	uint64_t t;
	void *p;

	ctx_open(&c, 0, NULL);
	ctx_open(&c1, 1, &one);
	for (size_t k = 0; k < n; k++) {
		p = map_anon(sz, false);
		t = now_ns();
		dev_run(&c, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, sz);
		s[k] = (double)(now_ns() - t);
		munmap(p, sz);

		p = map_anon(sz, false);
		t = now_ns();
		dev_run(&c1, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, sz);
		s1[k] = (double)(now_ns() - t);
		munmap(p, sz);

		p = map_anon(sz, false);
		t = now_ns();
		if (madvise(p, sz, MADV_POPULATE_WRITE))
			die("MADV_POPULATE_WRITE", -errno);
		b1[k] = (double)(now_ns() - t);
		munmap(p, sz);

		p = map_anon(sz, false);
		t = now_ns();
		memset(p, 0x5a, sz);
		__asm__ volatile("" ::: "memory");
		b2[k] = (double)(now_ns() - t);
		munmap(p, sz);

		if (floor)
			floor = (b3[k] = fill_floor_ns(sz)) > 0;
	}
	size_name(name, sizeof(name), sz);
	/* Percentile sorts in place: copy the subject for each row. */
	r = report_add(&rep);
	set_names(r, "fault", name, "device fill, cold", "MADV_POPULATE_WRITE",
		  1);
	{
		double *sc = malloc(n * sizeof(*sc));

		memcpy(sc, s, n * sizeof(*sc));
		finish(r, sc, b1, n, (double)(sz / PAGE), "pages/s");
		r = report_add(&rep);
		set_names(r, "fault", name, "device fill, cold",
			  "CPU memset, cold", 2);
		memcpy(sc, s, n * sizeof(*sc));
		finish(r, sc, b2, n, (double)(sz / PAGE), "pages/s");
		r = report_add(&rep);
		set_names(r, "fault", name, "PRI batch=1",
			  "PRI default", 3);
		memcpy(sc, s, n * sizeof(*sc));
		finish(r, s1, sc, n, (double)(sz / PAGE), "pages/s");
		if (floor) {
			r = report_add(&rep);
			set_names(r, "fault", name, "device fill, cold",
				  "populate + writev", 6);
			memcpy(sc, s, n * sizeof(*sc));
			finish(r, sc, b3, n, (double)(sz / PAGE), "pages/s");
		}
		free(sc);
	}
	free(s);
	free(s1);
	free(b1);
	free(b2);
	free(b3);
	ctx_close(&c1);
	ctx_close(&c);
	bench_fault_policy(sz, n);
}

/* -------------------------------------------------------- invalidation */

/*
 * What the software device's invalidation stands on, alone: munmap() and
 * MADV_DONTNEED of memory registered with a userfaultfd whose UNMAP and
 * REMOVE events a thread reads (each call blocks until its event is read),
 * no device and no libsva. sim0's invalidation costs this much at least.
 */
struct uffd_floor {
	int fd, stop;
	pthread_t reader;
};

static void *uffd_floor_read(void *arg)
{
	struct uffd_floor *u = arg;
	struct pollfd pfd[2] = { { .fd = u->fd, .events = POLLIN },
				 { .fd = u->stop, .events = POLLIN } };
	struct uffd_msg msgs[16];

	while (poll(pfd, 2, -1) >= 0 && !pfd[1].revents)
		if (read(u->fd, msgs, sizeof(msgs)) < 0 && errno != EAGAIN)
			break;
	return NULL;
}

static bool uffd_floor_open(struct uffd_floor *u)
{
	struct uffdio_api api = {
		.api = UFFD_API,
		.features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE,
	};

	u->fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	u->stop = eventfd(0, EFD_CLOEXEC);
	if (u->fd < 0 || u->stop < 0 || ioctl(u->fd, UFFDIO_API, &api) ||
	    pthread_create(&u->reader, NULL, uffd_floor_read, u)) {
		fprintf(stderr, "sva-bench: inval: userfaultfd rows skipped: %s\n",
			strerror(errno));
		if (u->fd >= 0)
			close(u->fd);
		if (u->stop >= 0)
			close(u->stop);
		return false;
	}
	return true;
}

/* Fresh touched memory registered with @u. */
static void *uffd_floor_map(struct uffd_floor *u, size_t len)
{
	void *p = map_anon(len, true);
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)p, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(u->fd, UFFDIO_REGISTER, &reg))
		die("UFFDIO_REGISTER", -errno);
	return p;
}

static void uffd_floor_close(struct uffd_floor *u)
{
	uint64_t one = 1;

	if (write(u->stop, &one, sizeof(one)) != sizeof(one))
		die("eventfd", -errno);
	pthread_join(u->reader, NULL);
	close(u->stop);
	close(u->fd);
}

static void bench_inval(void)
{
	size_t sz = 1 * MiB, n = opt.quick ? 50 : 200;
	double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
	double *f = calloc(n, sizeof(*f));
	struct uffd_floor u;
	/* The floor is sim0's: the kernel backend hears no userfaultfd. */
	bool floor = !strcmp(opt.backend, "sim") && uffd_floor_open(&u);
	struct result *r;
	struct ctx c;
	uint64_t t;
	uint8_t *p, *q = map_anon(sz, true);

	ctx_open(&c, 0, NULL);
	/* munmap of a range the device has translations for. */
	for (size_t k = 0; k < n; k++) {
		p = map_anon(sz, true);
		dev_run(&c, SVA_OP_COPY, 0, p, q, sz);
		t = now_ns();
		munmap(p, sz);
		s[k] = (double)(now_ns() - t);
		p = map_anon(sz, true);
		t = now_ns();
		munmap(p, sz);
		b[k] = (double)(now_ns() - t);
		if (floor) {
			p = uffd_floor_map(&u, sz);
			t = now_ns();
			munmap(p, sz);
			f[k] = (double)(now_ns() - t);
		}
	}
	r = report_add(&rep);
	set_names(r, "inval", "munmap 1MiB", "munmap, bound+warm",
		  "munmap, plain", 1);
	finish(r, s, b, n, 1, "ops/s");
	if (floor) {
		r = report_add(&rep);
		set_names(r, "inval", "munmap 1MiB", "munmap, bound+warm",
			  "munmap, uffd only", 3);
		finish(r, s, f, n, 1, "ops/s");
	}

	/* MADV_DONTNEED likewise. */
	p = map_anon(sz, true);
	for (size_t k = 0; k < n; k++) {
		uint8_t *plain = map_anon(sz, true);

		dev_run(&c, SVA_OP_COPY, 0, p, q, sz);
		t = now_ns();
		madvise(p, sz, MADV_DONTNEED);
		s[k] = (double)(now_ns() - t);
		t = now_ns();
		madvise(plain, sz, MADV_DONTNEED);
		b[k] = (double)(now_ns() - t);
		munmap(plain, sz);
		if (floor) {
			plain = uffd_floor_map(&u, sz);
			t = now_ns();
			madvise(plain, sz, MADV_DONTNEED);
			f[k] = (double)(now_ns() - t);
			munmap(plain, sz);
		}
	}
	r = report_add(&rep);
	set_names(r, "inval", "DONTNEED 1MiB", "DONTNEED, bound+warm",
		  "DONTNEED, plain", 2);
	finish(r, s, b, n, 1, "ops/s");
	if (floor) {
		r = report_add(&rep);
		set_names(r, "inval", "DONTNEED 1MiB", "DONTNEED, bound+warm",
			  "DONTNEED, uffd only", 4);
		finish(r, s, f, n, 1, "ops/s");
		uffd_floor_close(&u);
	}
	munmap(p, sz);
	munmap(q, sz);
	ctx_close(&c);
	free(s);
	free(b);
	free(f);
}

/* Cost of invalidating one page as the number of mirrors grows. */
static void bench_mirrors(void)
{
	static const unsigned int counts[] = { 1, 16, 256, 4096 };
	unsigned int max = counts[3], n = opt.quick ? 50 : 200;
	size_t sz = (size_t)max * PAGE;
	double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
	struct sva_mirror **m = calloc(max, sizeof(*m));
	uint8_t *p = map_anon(sz, true);
	double base = 0;
	struct ctx c;
	uint64_t t;

	ctx_open(&c, 0, NULL);
	for (size_t ci = 0; ci < 4; ci++) {
		unsigned int cnt = counts[ci];
		struct result *r = report_add(&rep);
		char name[24];

		/* One mirror per page; the page invalidated is mirrored. */
		for (unsigned int i = 0; i < cnt; i++)
			if (sva_mirror_register(c.bind, (uintptr_t)p + i * PAGE,
						PAGE, NULL, &m[i]))
				die("mirror_register", -EINVAL);
		for (unsigned int k = 0; k < n; k++) {
			p[0] = 1;
			t = now_ns();
			madvise(p, PAGE, MADV_DONTNEED);
			s[k] = (double)(now_ns() - t);
		}
		for (unsigned int i = 0; i < cnt; i++)
			sva_mirror_unregister(m[i]);
		if (ci == 0) {
			memcpy(b, s, n * sizeof(*b));
			base = percentile(b, n, 50);
		}
		for (unsigned int k = 0; k < n; k++)
			b[k] = base;
		snprintf(name, sizeof(name), "%u mirrors", cnt);
		set_names(r, "mirrors", name, "DONTNEED 1 page",
			  "same, 1 mirror", cnt);
		finish(r, s, b, n, 1, "ops/s");
	}
	ctx_close(&c);
	munmap(p, sz);
	free(m);
	free(s);
	free(b);
}

/* ------------------------------------------------- bind, snapshot */

static void *nop_thread(void *arg)
{
	return arg;
}

static void bench_bind(void)
{
	size_t n = opt.quick ? 200 : 1000;
	double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
	struct sva_dev *dev = dev_open_n(0, NULL);
	struct result *r = report_add(&rep);
	struct sva_bind *bind;
	pthread_t th;
	uint64_t t;

	for (size_t k = 0; k < n; k++) {
		t = now_ns();
		if (sva_bind(dev, NULL, &bind))
			die("bind", -EINVAL);
		sva_unbind(bind);
		s[k] = (double)(now_ns() - t);
		/* A binding starts a worker: compare with a thread's life. */
		t = now_ns();
		pthread_create(&th, NULL, nop_thread, NULL);
		pthread_join(th, NULL);
		b[k] = (double)(now_ns() - t);
	}
	set_names(r, "bind", "bind+unbind", "bind+unbind",
		  "pthread create+join", 1);
	finish(r, s, b, n, 1, "ops/s");
	sva_dev_close(dev);
	free(s);
	free(b);
}

static void bench_snapshot(void)
{
	size_t sz = (opt.quick ? 16 : 64) * MiB, pages = sz / PAGE;
	size_t n = opt.quick ? 5 : 15;
	double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
	uint8_t *p = map_anon(sz, true), *st = malloc(pages);
	uint64_t *pm = malloc(pages * 8), t;
	struct result *r = report_add(&rep);
	struct sva_mirror *m;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	char name[32];
	struct ctx c;

	ctx_open(&c, 0, NULL);
	if (sva_mirror_register(c.bind, (uintptr_t)p, sz, NULL, &m))
		die("mirror_register", -EINVAL);
	for (size_t k = 0; k < n; k++) {
		t = now_ns();
		if (sva_mirror_snapshot(m, (uintptr_t)p, sz, st, 0))
			die("snapshot", -EINVAL);
		s[k] = (double)(now_ns() - t);
		t = now_ns();
		if (pread(fd, pm, pages * 8, (off_t)((uintptr_t)p / PAGE * 8)) < 0)
			die("pagemap", -errno);
		b[k] = (double)(now_ns() - t);
	}
	size_name(name, sizeof(name), sz);
	set_names(r, "snapshot", name, "mirror snapshot", "pagemap pread",
		  (double)sz);
	finish(r, s, b, n, (double)pages, "pages/s");
	sva_mirror_unregister(m);
	ctx_close(&c);
	close(fd);
	free(pm);
	free(st);
	munmap(p, sz);
	free(s);
	free(b);
}

/* ------------------------------------------------------------- scaling */

struct worker {
	struct ctx *c;
	uint8_t *src, *dst;
	size_t len, iters;
};

static void *copy_worker(void *arg)
{
	struct worker *w = arg;
	struct sva_bind *bind;
	struct ctx mine;

	/* A binding per thread: the device's queues are per binding. */
	if (sva_bind(w->c->dev, NULL, &bind))
		die("bind", -EINVAL);
	mine = *w->c;
	mine.bind = bind;
	for (size_t i = 0; i < w->iters; i++)
		dev_run(&mine, SVA_OP_COPY, 0, w->src, w->dst, w->len);
	sva_unbind(bind);
	return NULL;
}

/* Total time of @threads threads over @devs devices, @total copies. */
static double scale_run(struct ctx *cs, unsigned int threads,
			unsigned int devs, size_t total, size_t len,
			uint8_t **bufs)
{
	struct worker w[16];
	pthread_t th[16];
	uint64_t t = now_ns();

	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .c = &cs[i % devs], .src = bufs[2 * i],
					.dst = bufs[2 * i + 1], .len = len,
					.iters = total / threads };
		pthread_create(&th[i], NULL, copy_worker, &w[i]);
	}
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	return (double)(now_ns() - t);
}

static void bench_scale(void)
{
	size_t len = 256 * KiB, total = opt.quick ? 256 : 1024;
	unsigned int maxt = opt.max_threads > 8 ? 8 : opt.max_threads;
	uint8_t *bufs[16];
	struct ctx cs[4];
	double s[7], b[7];
	int reps = opt.quick ? 3 : 7;

	for (unsigned int i = 0; i < 2 * maxt; i++)
		bufs[i] = map_anon(len, true);
	for (unsigned int d = 0; d < 4; d++)
		ctx_open(&cs[d], d, NULL);
	unsigned int maxd = backend_devices() < 4 ? backend_devices() : 4;

	scale_run(cs, 1, 1, total, len, bufs);	/* warm up */

	for (unsigned int t = 1; t <= maxt; t *= 2) {
		for (unsigned int devs = 1; devs <= maxd && devs <= t;
		     devs *= 2) {
			struct result *r = report_add(&rep);
			char name[32], subj[32];

			for (int k = 0; k < reps; k++) {
				s[k] = scale_run(cs, t, devs, total, len, bufs);
				b[k] = scale_run(cs, 1, 1, total, len, bufs);
			}
			snprintf(name, sizeof(name), "%ut/%udev", t, devs);
			snprintf(subj, sizeof(subj), "%u threads, %u devices",
				 t, devs);
			set_names(r, "scale", name, subj, "1 thread, 1 device",
				  t * 10 + devs);
			finish(r, s, b, (size_t)reps,
			       (double)(total * len) / (1 << 30),
			       "GiB/s");
		}
	}
	for (unsigned int d = 0; d < 4; d++)
		ctx_close(&cs[d]);
	for (unsigned int i = 0; i < 2 * maxt; i++)
		munmap(bufs[i], len);
}

/* --------------------------------------------------------------- trace */

/* @k descriptors of @len bytes (NOP when 0) on @c, one at a time. */
static double trace_burst(struct ctx *c, unsigned int k, uint8_t *src,
			  uint8_t *dst, size_t len)
{
	uint64_t t = now_ns();

	for (unsigned int i = 0; i < k; i++)
		dev_run(c, len ? SVA_OP_COPY : SVA_OP_NOP, 0, len ? src : NULL,
			len ? dst : NULL, len);
	return (double)(now_ns() - t);
}

/*
 * What recording costs: the same descriptors on a device tracing into a
 * scratch file and on one that doesn't, interleaved. Tracing off is one
 * branch per recording point, less than either.
 */
static void bench_trace(void)
{
	static const size_t lens[] = { 0, 4 * KiB, 64 * KiB };
	size_t n = opt.quick ? 15 : 41;
	unsigned int k = 200;
	double *s = calloc(n, sizeof(*s)), *b = calloc(n, sizeof(*b));
	uint8_t *src = map_anon(64 * KiB, true), *dst = map_anon(64 * KiB, true);
	char scratch[] = "/tmp/sva-bench-trace-XXXXXX";
	SVA_OPTS_INIT(sva_dev_opts, on);
	struct ctx off, traced;
	int fd = mkstemp(scratch);

	if (fd < 0)
		die("mkstemp", -errno);
	close(fd);
	/* The baseline traces nothing, even with --trace. */
	untraced = true;
	ctx_open(&off, 0, NULL);
	untraced = false;
	/* With --trace, the traced one writes FILE-N; else the scratch. */
	on.trace_path = scratch;
	ctx_open(&traced, 1, opt.trace ? NULL : &on);
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		struct result *r = report_add(&rep);
		char name[32];

		trace_burst(&off, k, src, dst, lens[li]);	/* warm */
		trace_burst(&traced, k, src, dst, lens[li]);
		for (size_t i = 0; i < n; i++) {
			s[i] = trace_burst(&traced, k, src, dst, lens[li]);
			b[i] = trace_burst(&off, k, src, dst, lens[li]);
		}
		if (lens[li])
			size_name(name, sizeof(name), lens[li]);
		snprintf(name + (lens[li] ? strlen(name) : 0),
			 sizeof(name) - (lens[li] ? strlen(name) : 0),
			 "%s", lens[li] ? " copy" : "NOP");
		set_names(r, "trace", name, "trace on", "trace off",
			  (double)li + 1);
		finish(r, s, b, n, (double)k, "descs/s");
	}
	ctx_close(&traced);
	ctx_close(&off);
	unlink(scratch);
	munmap(src, 64 * KiB);
	munmap(dst, 64 * KiB);
	free(s);
	free(b);
}

/* ------------------------------------------------------------- migrate */

static int migrate_to(struct ctx *c, void *p, size_t len, uint64_t to)
{
	struct sva_migrate_opts o = { .sz = sizeof(o), .to = to };
	struct sva_migrate_result r = { .sz = sizeof(r) };
	int err = sva_migrate(c->bind, (uintptr_t)p, len, &o, &r);

	if (err < 0)
		die("sva_migrate", err);
	if (err > 0)
		fprintf(stderr, "sva-bench: migrate: %d pages not moved\n", err);
	return err;
}

/* NUMA nodes of the host (node directories in sysfs); 0 if unknown. */
static unsigned int host_nodes(void)
{
	DIR *d = opendir("/sys/devices/system/node");
	struct dirent *e;
	unsigned int n = 0;

	while (d && (e = readdir(d)))
		n += !strncmp(e->d_name, "node", 4) &&
		     e->d_name[4] >= '0' && e->d_name[4] <= '9';
	if (d)
		closedir(d);
	return n;
}

/*
 * move_pages(2) of @n pages to @node (raw syscall: no libnuma needed).
 * 0, or -errno; a page not moved is an error too.
 */
static int move_pages_to(void **pages, int *nodes, int *status, size_t n,
			 int node)
{
	for (size_t i = 0; i < n; i++)
		nodes[i] = node;
	if (syscall(SYS_move_pages, 0, n, pages, nodes, status, 0) < 0)
		return -errno;
	for (size_t i = 0; i < n; i++)
		if (status[i] < 0)
			return status[i];
	return 0;
}

/*
 * Exclusive access (sva_make_exclusive(3)): holding a buffer's pages vs
 * migrating them to the device (the same pages, the same per-page work
 * for the sim: a move out of the page table); a CPU access revoking one
 * held page vs a CPU first touch. Every page is revoked by a CPU touch
 * between rounds, so each round holds them all again: the buffer is kept
 * small (4 MiB, 1 MiB with --quick), a fault per page. @sd, @bm (n) and
 * @fs, @fb (nf) are the caller's scratch arrays.
 */
static void bench_exclusive(struct ctx *c, const struct sva_dev_caps *caps,
			    uint8_t *src, double *sd, double *bm, size_t n,
			    double *fs, double *fb, size_t nf)
{
	size_t xs = (opt.quick ? 1 : 4) * MiB, xn = xs / PAGE, nrev = 0;
	struct sva_migrate_result res = { .sz = sizeof(res) };
	struct result *r;
	char name[32];
	uint8_t *fresh;
	uint64_t t;
	int err;

	if (!(caps->flags & SVA_CAP_EXCLUSIVE)) {
		fprintf(stderr, "sva-bench: migrate: exclusive rows skipped: %s has no SVA_CAP_EXCLUSIVE\n",
			sva_dev_name(c->dev));
		step += 2;
		return;
	}
	for (size_t k = 0; k < n; k++) {
		t = now_ns();
		err = sva_make_exclusive(c->bind, (uintptr_t)src, xs, 0, &res);
		sd[k] = (double)(now_ns() - t);
		if (err < 0)
			die("sva_make_exclusive", err);
		if (err > 0 || res.moved != xn)
			fprintf(stderr, "sva-bench: migrate: make exclusive: %llu of %zu pages held\n",
				(unsigned long long)res.moved, xn);
		for (size_t i = 0; i < xn; i++) {
			t = now_ns();
			((volatile uint8_t *)src)[i * PAGE]++;
			if (nrev < nf)
				fs[nrev++] = (double)(now_ns() - t);
		}
		t = now_ns();
		migrate_to(c, src, xs, SVA_LOC_DEVICE);
		bm[k] = (double)(now_ns() - t);
		migrate_to(c, src, xs, SVA_LOC_HOST);
	}
	size_name(name, sizeof(name), xs);
	r = report_add(&rep);
	set_names(r, "migrate", name, "make exclusive", "migrate to device", 7);
	finish(r, sd, bm, n, (double)xn, "pages/s");
	fresh = map_anon(nrev * PAGE, false);
	for (size_t i = 0; i < nrev; i++) {
		t = now_ns();
		((volatile uint8_t *)fresh)[i * PAGE] = 1;
		fb[i] = (double)(now_ns() - t);
	}
	munmap(fresh, nrev * PAGE);
	r = report_add(&rep);
	set_names(r, "migrate", "1 page", "CPU revoke", "CPU first touch", 8);
	finish(r, fs, fb, nrev, 1, "faults/s");
}

/*
 * Device memory: migration to the device and back against memcpy of the
 * same bytes and move_pages(2) of the same pages (between two host nodes,
 * or to the node they are on where there is one: the kernel still looks
 * up and checks every page, copying none); on kmod, against the kernel's
 * own test device (test_hmm's MIGRATE_TO_DEV/MIGRATE_TO_SYS of the same
 * buffer, in the same rounds) where its module is loaded; CPU fault-back
 * latency against a CPU first touch; migration that must evict against
 * one that needn't.
 */
static void bench_migrate(void)
{
	size_t sz = (opt.quick ? 4 : 64) * MiB, np = sz / PAGE;
	size_t n = opt.quick ? 5 : 11, nf = opt.quick ? 256 : 2048;
	SVA_OPTS_INIT(sva_dev_opts, big, .devmem_size = sz);
	SVA_OPTS_INIT(sva_dev_opts, small, .devmem_size = sz / 4);
	struct sva_dev_caps caps = { .sz = sizeof(caps) };
	double *sd = calloc(n, sizeof(*sd)), *sh = calloc(n, sizeof(*sh));
	double *bc = calloc(n, sizeof(*bc)), *bm = calloc(n, sizeof(*bm));
	double *tmp = calloc(n, sizeof(*tmp));
	double *fs = calloc(nf, sizeof(*fs)), *fb = calloc(nf, sizeof(*fb));
	void **pages = calloc(np, sizeof(*pages));
	int *nodes = calloc(np, sizeof(*nodes));
	int *status = calloc(np, sizeof(*status));
	unsigned int nnodes = host_nodes();
	char name[32], mp_name[32], why[160] = "";
	struct sva_stats st0 = { .sz = sizeof(st0) }, st1 = { .sz = sizeof(st1) };
	struct ctx c, cs;
	struct result *r;
	uint8_t *src, *dst;
	int mp_err = 0, hfd = -ENOENT, h_err = 0;
	double *hd = calloc(n, sizeof(*hd)), *hh = calloc(n, sizeof(*hh));
	uint64_t t;

	/* For the test of the skip: a sim device without device memory. */
	if (getenv("SVA_BENCH_NO_DEVMEM"))
		big.flags |= SVA_DEV_NO_DEVMEM;
	ctx_open(&c, 0, &big);
	if (sva_dev_caps(c.dev, &caps) || !(caps.flags & SVA_CAP_MIGRATE)) {
		fprintf(stderr, "sva-bench: migrate: skipped: %s has no device memory (no SVA_CAP_MIGRATE on this backend/kernel)\n",
			sva_dev_name(c.dev));
		step += 8;
		ctx_close(&c);
		goto out;
	}
	src = map_anon(sz, true);
	dst = map_anon(sz, true);
	for (size_t i = 0; i < np; i++)
		pages[i] = src + i * PAGE;
	/* Two nodes: back and forth between 0 and 1. One: to node 0. */
	snprintf(mp_name, sizeof(mp_name), "%s",
		 nnodes >= 2 ? "move_pages node<->node" : "move_pages same node");
	migrate_to(&c, src, sz, SVA_LOC_DEVICE);	/* warm: arena made */
	migrate_to(&c, src, sz, SVA_LOC_HOST);
	/* The peer: test_hmm, warmed the same way (its memory made). */
	if (!strcmp(opt.backend, "kmod"))
		hfd = hmm_peer_open();
	if (hfd >= 0) {
		h_err = hmm_peer_migrate(hfd, src, dst, np, true);
		if (!h_err)
			h_err = hmm_peer_migrate(hfd, src, dst, np, false);
	}
	for (size_t k = 0; k < n; k++) {
		t = now_ns();
		migrate_to(&c, src, sz, SVA_LOC_DEVICE);
		sd[k] = (double)(now_ns() - t);
		t = now_ns();
		migrate_to(&c, src, sz, SVA_LOC_HOST);
		sh[k] = (double)(now_ns() - t);
		t = now_ns();
		memcpy(dst, src, sz);
		__asm__ volatile("" ::: "memory");
		bc[k] = (double)(now_ns() - t);
		if (!mp_err) {
			t = now_ns();
			mp_err = move_pages_to(pages, nodes, status, np,
					       nnodes >= 2 ? (int)(k & 1) : 0);
			bm[k] = (double)(now_ns() - t);
		}
		if (hfd >= 0 && !h_err) {
			t = now_ns();
			h_err = hmm_peer_migrate(hfd, src, dst, np, true);
			hd[k] = (double)(now_ns() - t);
			t = now_ns();
			if (!h_err)
				h_err = hmm_peer_migrate(hfd, src, dst, np,
							 false);
			hh[k] = (double)(now_ns() - t);
		}
	}
	if (mp_err)
		snprintf(why, sizeof(why), "move_pages(2): %s",
			 strerror(-mp_err));
	size_name(name, sizeof(name), sz);
	for (int dir = 0; dir < 2; dir++) {
		const char *subj = dir ? "migrate to host" : "migrate to device";
		double *sv = dir ? sh : sd;

		r = report_add(&rep);
		set_names(r, "migrate", name, subj, "memcpy", 1 + 2 * dir);
		memcpy(tmp, sv, n * sizeof(*tmp));
		finish(r, tmp, bc, n, (double)sz / (1 << 30), "GiB/s");
		if (mp_err) {
			/* No baseline, no ratio: say why rather than print 0. */
			fprintf(stderr, "sva-bench: migrate: %s vs move_pages: n/a (%s)\n",
				subj, why);
			progress("sva-bench", ++step, steps);
			continue;
		}
		r = report_add(&rep);
		set_names(r, "migrate", name, subj, mp_name, 2 + 2 * dir);
		memcpy(tmp, sv, n * sizeof(*tmp));
		finish(r, tmp, bm, n, (double)np, "pages/s");
	}
	/* The peer's rows, kmod with test_hmm loaded only (two steps the
	 * group's count doesn't hold). The goal: within 1.2x of its time. */
	if (hfd >= 0 && h_err) {
		fprintf(stderr, "sva-bench: migrate: vs test_hmm: n/a (%s)\n",
			strerror(-h_err));
	} else if (hfd >= 0) {
		steps += 2;
		for (int dir = 0; dir < 2; dir++) {
			r = report_add(&rep);
			set_names(r, "migrate", name,
				  dir ? "migrate to host" : "migrate to device",
				  dir ? "test_hmm MIGRATE_TO_SYS" :
					"test_hmm MIGRATE_TO_DEV", 7 + dir);
			memcpy(tmp, dir ? sh : sd, n * sizeof(*tmp));
			finish(r, tmp, dir ? hh : hd, n, (double)np, "pages/s");
		}
	} else if (!strcmp(opt.backend, "kmod")) {
		fprintf(stderr, "sva-bench: migrate: vs test_hmm: n/a (%s: is test_hmm loaded?)\n",
			strerror(-hfd));
	}
	if (hfd >= 0)
		close(hfd);

	/* CPU fault-back: one touch of a page in device memory, each
	 * against a first touch of a fresh page. */
	migrate_to(&c, src, nf * PAGE, SVA_LOC_DEVICE);
	{
		uint8_t *fresh = map_anon(nf * PAGE, false);

		for (size_t i = 0; i < nf; i++) {
			t = now_ns();
			((volatile uint8_t *)src)[i * PAGE]++;
			fs[i] = (double)(now_ns() - t);
			t = now_ns();
			((volatile uint8_t *)fresh)[i * PAGE] = 1;
			fb[i] = (double)(now_ns() - t);
		}
		munmap(fresh, nf * PAGE);
	}
	r = report_add(&rep);
	set_names(r, "migrate", "1 page", "CPU fault-back", "CPU first touch",
		  5);
	finish(r, fs, fb, nf, 1, "faults/s");

	/* Eviction: device memory a quarter of the buffer. */
	ctx_open(&cs, 1, &small);
	migrate_to(&cs, src, sz, SVA_LOC_DEVICE);
	migrate_to(&cs, src, sz, SVA_LOC_HOST);
	if (sva_bind_stats(cs.bind, &st0))
		die("stats", -EINVAL);
	for (size_t k = 0; k < n; k++) {
		t = now_ns();
		migrate_to(&cs, src, sz, SVA_LOC_DEVICE);
		sd[k] = (double)(now_ns() - t);
		migrate_to(&cs, src, sz, SVA_LOC_HOST);
		t = now_ns();
		migrate_to(&c, src, sz, SVA_LOC_DEVICE);
		bm[k] = (double)(now_ns() - t);
		migrate_to(&c, src, sz, SVA_LOC_HOST);
	}
	if (sva_bind_stats(cs.bind, &st1))
		die("stats", -EINVAL);
	r = report_add(&rep);
	set_names(r, "migrate", name, "to device, evicting 3/4",
		  "to device, room for all", 6);
	/* Rate: pages evicted per second of the evicting migration. */
	finish(r, sd, bm, n, (double)(st1.evictions - st0.evictions) / (double)n,
	       "evict/s");
	ctx_close(&cs);
	bench_exclusive(&c, &caps, src, sd, bm, n, fs, fb, nf);
	ctx_close(&c);
	munmap(src, sz);
	munmap(dst, sz);
out:
	free(sd);
	free(sh);
	free(hd);
	free(hh);
	free(bc);
	free(bm);
	free(tmp);
	free(fs);
	free(fb);
	free(pages);
	free(nodes);
	free(status);
}

/* ---------------------------------------------------------------- main */

static const struct {
	const char *name;
	void (*fn)(void);
	unsigned int steps;
} benches[] = {
	{ "copy", bench_copy, 8 },
	{ "fault", bench_fault, 6 },
	{ "inval", bench_inval, 4 },
	{ "mirrors", bench_mirrors, 4 },
	{ "bind", bench_bind, 1 },
	{ "snapshot", bench_snapshot, 1 },
	{ "scale", bench_scale, 6 },
	{ "trace", bench_trace, 3 },
	{ "migrate", bench_migrate, 8 },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sva-bench [--quick] [--json] [--plot DIR] [--backend sim|kmod]\n"
		"                 [--only GROUP[,GROUP]] [--threads N] [--trace FILE]\n"
		"                 [--baseline EARLIER.json [--max-regress PCT]]\n"
		"       sva-bench --plot-trace FILE.json OUT.png\n"
		"groups: copy fault inval mirrors bind snapshot scale trace migrate\n"
		"Every figure is a ratio to a baseline timed in the same run.\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "plot", required_argument, NULL, 'p' },
		{ "backend", required_argument, NULL, 'b' },
		{ "only", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, 't' },
		{ "trace", required_argument, NULL, 'T' },
		{ "plot-trace", required_argument, NULL, 'P' },
		{ "baseline", required_argument, NULL, 'B' },
		{ "max-regress", required_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *plot_trace = NULL, *baseline = NULL;
	struct report then = { 0 };
	double max_regress = -1;
	char then_backend[16] = "", *end;
	unsigned int regressed = 0;
	int c, err;

	while ((c = getopt_long(argc, argv, "qjp:b:o:t:h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': opt.quick = true; break;
		case 'j': opt.json = true; break;
		case 'p': opt.plot = optarg; break;
		case 'b': opt.backend = optarg; break;
		case 'o': opt.only = optarg; break;
		case 't': opt.max_threads = (unsigned int)atoi(optarg); break;
		case 'T': opt.trace = optarg; break;
		case 'P': plot_trace = optarg; break;
		case 'B': baseline = optarg; break;
		case 'R':
			max_regress = strtod(optarg, &end);
			if (*end || !(max_regress >= 0)) {
				fprintf(stderr, "sva-bench: --max-regress %s: a percentage >= 0\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (plot_trace) {
		/* A drawing of a trace file: nothing is measured. */
		if (optind != argc - 1) {
			usage(stderr);
			return 2;
		}
		err = trace_plot(plot_trace, argv[optind]);
		if (err) {
			fprintf(stderr, "sva-bench: --plot-trace %s: %s%s\n",
				plot_trace, strerror(-err),
				err == -EIO ? " (is gnuplot installed?)" : "");
			return 1;
		}
		return 0;
	}
	if (optind < argc || !opt.max_threads ||
	    (strcmp(opt.backend, "sim") && strcmp(opt.backend, "kmod"))) {
		usage(stderr);
		return 2;
	}
	if (max_regress >= 0 && !baseline) {
		fprintf(stderr, "sva-bench: --max-regress needs --baseline\n");
		return 2;
	}
	/* Read the earlier run first: a bad file fails before the run. */
	if (baseline && baseline_load(baseline, &then, then_backend,
				      sizeof(then_backend)))
		return 1;
	if (baseline && then_backend[0] && strcmp(then_backend, opt.backend))
		fprintf(stderr, "sva-bench: --baseline %s ran on backend %s, this run on %s\n",
			baseline, then_backend, opt.backend);
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (!opt.only || strstr(opt.only, benches[i].name))
			steps += benches[i].steps;
	if (!steps) {
		fprintf(stderr, "sva-bench: no group matches '%s'\n", opt.only);
		return 2;
	}
	for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
		if (!opt.only || strstr(opt.only, benches[i].name))
			benches[i].fn();
	if (opt.json)
		report_json(&rep, stdout, opt.backend, opt.quick);
	else
		report_table(&rep, stdout);
	/* With --json, stdout carries the JSON only. */
	if (baseline)
		regressed = baseline_compare(&rep, &then,
					     opt.json ? stderr : stdout,
					     max_regress);
	free(then.r);
	if (opt.plot) {
		err = report_plot(&rep, opt.plot);
		if (err) {
			fprintf(stderr, "sva-bench: --plot %s: %s (is gnuplot installed?)\n",
				opt.plot, strerror(-err));
			return 1;
		}
	}
	free(rep.r);
	return regressed ? 3 : 0;
}
