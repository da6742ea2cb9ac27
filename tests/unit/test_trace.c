// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The event trace (issue 10): a traced run writes a file that is valid JSON
 * (checked by the strict parser below: CI machines may have no python3 nor
 * jq) and holds the events the run caused, derived from what the run saw
 * (completions, statistics, pagemap); the ring is bounded; tracing off
 * writes nothing; $SVA_TRACE expands %p/%d; bad options fail the open; a
 * child of fork() never writes its parent's file. Backend independent: the
 * VM runs it on kmod0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"

/* ------------------------------------------------ a strict JSON checker */

struct jp {
	const char *s;
	int depth;
};

static void jws(struct jp *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static bool jvalue(struct jp *p);

static bool jstring(struct jp *p)
{
	if (*p->s++ != '"')
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*p->s++;

		if (c == '"')
			return true;
		if (c < 0x20)	/* control characters must be escaped */
			return false;
		if (c != '\\')
			continue;
		c = (unsigned char)*p->s++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, p->s++)
				if (!strchr("0123456789abcdefABCDEF", *p->s) ||
				    !*p->s)
					return false;
		} else if (!c || !strchr("\"\\/bfnrt", c)) {
			return false;
		}
	}
}

static bool jdigits(struct jp *p)
{
	const char *s = p->s;

	while (*p->s >= '0' && *p->s <= '9')
		p->s++;
	return p->s > s;
}

static bool jnumber(struct jp *p)
{
	if (*p->s == '-')
		p->s++;
	if (*p->s == '0')
		p->s++;		/* no leading zeros */
	else if (!jdigits(p))
		return false;
	if (*p->s == '.') {
		p->s++;
		if (!jdigits(p))
			return false;
	}
	if (*p->s == 'e' || *p->s == 'E') {
		p->s++;
		if (*p->s == '+' || *p->s == '-')
			p->s++;
		if (!jdigits(p))
			return false;
	}
	return true;
}

static bool jlist(struct jp *p, char close, bool object)
{
	p->s++;
	if (++p->depth > 64)
		return false;
	jws(p);
	if (*p->s == close) {
		p->s++;
		p->depth--;
		return true;
	}
	for (;;) {
		jws(p);
		if (object) {
			if (!jstring(p))
				return false;
			jws(p);
			if (*p->s++ != ':')
				return false;
		}
		if (!jvalue(p))
			return false;
		jws(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s++ != close)
			return false;
		p->depth--;
		return true;
	}
}

static bool jvalue(struct jp *p)
{
	jws(p);
	switch (*p->s) {
	case '{':
		return jlist(p, '}', true);
	case '[':
		return jlist(p, ']', false);
	case '"':
		return jstring(p);
	case 't':
		return !strncmp(p->s, "true", 4) && (p->s += 4);
	case 'f':
		return !strncmp(p->s, "false", 5) && (p->s += 5);
	case 'n':
		return !strncmp(p->s, "null", 4) && (p->s += 4);
	default:
		return jnumber(p);
	}
}

/* The whole text is one JSON value. */
static bool json_valid(const char *text)
{
	struct jp p = { .s = text };

	if (!jvalue(&p))
		return false;
	jws(&p);
	return !*p.s;
}

START_TEST(test_trace_json_checker_strict)
{
	/* The checker the other tests rely on rejects what it must. */
	ck_assert(json_valid("{\"a\":[1,2.5,-0.3e4,\"x\\u00e9\\n\",true,null]}"));
	ck_assert(!json_valid("{\"a\":[1,2,]}"));
	ck_assert(!json_valid("{\"a\":01}"));
	ck_assert(!json_valid("{\"a\":\"tab\there\"}"));
	ck_assert(!json_valid("{\"a\":\"\\x\"}"));
	ck_assert(!json_valid("{\"a\":1} x"));
	ck_assert(!json_valid("{\"a\" 1}"));
	ck_assert(!json_valid("[1."));
	ck_assert(!json_valid(""));
}
END_TEST

/* ------------------------------------------------------- trace files */

static char tmpdir[64];

static void tmp_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/sva-trace-XXXXXX",
		 t && *t && strlen(t) < 40 ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	unsetenv("SVA_TRACE");
}

static void tmp_teardown(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	char p[PATH_MAX];

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

static char *read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	if (size)
		*size = (size_t)n;
	return buf;
}

/* One event of the file: what the tests look at. */
struct tev {
	char ph[4], cat[16], name[32], status[32], event[16], access[16];
	char direction[20], cause[16];	/* migrate */
	unsigned int tid;
	int pid;
	double ts, dur;
	uint64_t first, last, start, end, user_data;
	long pages, status_code, bytes_done, atc;	/* atc -1: null */
	long refused;
};

struct trace {
	char *text;
	size_t size;
	struct tev *ev;
	size_t n;
	double recorded, written, dropped, ring_events, pid;
	char device[32];
};

static bool jget_str(const char *line, const char *key, char *out, size_t n)
{
	char k[40];
	const char *s;
	size_t i = 0;

	snprintf(k, sizeof(k), "\"%s\":\"", key);
	s = strstr(line, k);
	if (!s)
		return false;
	for (s += strlen(k); *s && *s != '"' && i + 1 < n; s++)
		out[i++] = *s;
	out[i] = 0;
	return true;
}

static bool jget_num(const char *line, const char *key, double *v)
{
	char k[40];
	const char *s;

	snprintf(k, sizeof(k), "\"%s\":", key);
	s = strstr(line, k);
	if (!s)
		return false;
	s += strlen(k);
	if (*s == '"')		/* "0x..." */
		return *v = (double)strtoull(s + 1, NULL, 16), true;
	if (!strncmp(s, "null", 4))
		return *v = -1, true;
	*v = strtod(s, NULL);
	return true;
}

static uint64_t jget_hex(const char *line, const char *key)
{
	char k[40], *s;

	snprintf(k, sizeof(k), "\"%s\":\"0x", key);
	s = strstr(line, k);
	return s ? strtoull(s + strlen(k), NULL, 16) : 0;
}

static long jget_long(const char *line, const char *key)
{
	double v = -2;

	jget_num(line, key, &v);
	return (long)v;
}

static void trace_check_thread_names(const struct trace *t);

/* Read and check @path: valid JSON, the keys every event must have. */
static void trace_load(struct trace *t, const char *path)
{
	char *line, *next, *other;
	size_t cap = 64;

	memset(t, 0, sizeof(*t));
	t->text = read_file(path, &t->size);
	ck_assert_msg(json_valid(t->text), "%s is not valid JSON", path);
	ck_assert_msg(!strncmp(t->text, "{\"traceEvents\":[", 16),
		      "no traceEvents array first");
	ck_assert_ptr_nonnull(strstr(t->text, "\"displayTimeUnit\":\"ns\""));
	other = strstr(t->text, "\"otherData\":{");
	ck_assert_ptr_nonnull(other);
	ck_assert(jget_num(other, "recorded", &t->recorded));
	ck_assert(jget_num(other, "written", &t->written));
	ck_assert(jget_num(other, "dropped", &t->dropped));
	ck_assert(jget_num(other, "ring_events", &t->ring_events));
	ck_assert(jget_num(other, "pid", &t->pid));
	ck_assert(jget_str(other, "device", t->device, sizeof(t->device)));
	t->ev = calloc(cap, sizeof(*t->ev));
	/* The writer puts one event per line (see lib/trace.c). */
	for (line = t->text; line && line < other; line = next) {
		struct tev *e;
		double v;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (strncmp(line, "{\"ph\":", 6))
			continue;
		if (t->n == cap) {
			cap *= 2;
			t->ev = realloc(t->ev, cap * sizeof(*t->ev));
			ck_assert_ptr_nonnull(t->ev);
		}
		e = &t->ev[t->n++];
		memset(e, 0, sizeof(*e));
		ck_assert(jget_str(line, "ph", e->ph, sizeof(e->ph)));
		ck_assert(jget_str(line, "name", e->name, sizeof(e->name)));
		ck_assert(jget_num(line, "pid", &v));
		e->pid = (int)v;
		ck_assert(jget_num(line, "tid", &v));
		e->tid = (unsigned int)v;
		if (!strcmp(e->ph, "M"))
			continue;
		ck_assert_msg(jget_str(line, "cat", e->cat, sizeof(e->cat)) &&
			      jget_num(line, "ts", &e->ts) && e->ts > 0,
			      "event without cat/ts: %s", line);
		ck_assert_msg(strstr(line, "\"pasid\":"), "no pasid: %s", line);
		if (!strcmp(e->ph, "X"))
			ck_assert_msg(jget_num(line, "dur", &e->dur) &&
				      e->dur >= 0, "X without dur: %s", line);
		jget_str(line, "status", e->status, sizeof(e->status));
		jget_str(line, "event", e->event, sizeof(e->event));
		jget_str(line, "access", e->access, sizeof(e->access));
		e->first = jget_hex(line, "first");
		e->last = jget_hex(line, "last");
		e->start = jget_hex(line, "start");
		e->end = jget_hex(line, "end");
		e->user_data = jget_hex(line, "user_data");
		e->pages = jget_long(line, "pages");
		e->status_code = jget_long(line, "status_code");
		e->bytes_done = jget_long(line, "bytes_done");
		e->atc = jget_long(line, "atc_dropped");
		jget_str(line, "direction", e->direction, sizeof(e->direction));
		jget_str(line, "cause", e->cause, sizeof(e->cause));
		e->refused = jget_long(line, "refused");
	}
	trace_check_thread_names(t);
}

/* Every thread that recorded has its row named (thread_name metadata). */
static void trace_check_thread_names(const struct trace *t)
{
	for (size_t i = 0; i < t->n; i++) {
		bool named = false;

		if (!strcmp(t->ev[i].ph, "M"))
			continue;
		for (size_t j = 0; j < t->n; j++)
			named |= !strcmp(t->ev[j].ph, "M") &&
				 !strcmp(t->ev[j].name, "thread_name") &&
				 t->ev[j].tid == t->ev[i].tid;
		ck_assert_msg(named, "thread %u has no name", t->ev[i].tid);
	}
}

static void trace_free(struct trace *t)
{
	free(t->text);
	free(t->ev);
}

static size_t trace_count(const struct trace *t, const char *cat)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++)
		n += !strcmp(t->ev[i].cat, cat);
	return n;
}

static void open_traced(struct fixture *f, const char *file,
			unsigned int events, char *path, size_t len)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .trace_events = events);

	snprintf(path, len, "%s/%s", tmpdir, file);
	o.trace_path = path;
	open_bind(f, &o);
}

/* ------------------------------------------------------------- events */

START_TEST(test_trace_descriptors_completions)
{
	struct fixture f;
	char path[PATH_MAX];
	uint8_t *a = map_filled(4 * PAGE, 1), *b = map_filled(4 * PAGE, 2);
	uint8_t *cold = map_fresh(2 * PAGE, PROT_READ | PROT_WRITE);
	struct sva_desc d[6];
	struct sva_completion c[6];
	struct trace t;
	int n = 0;

	open_traced(&f, "%d.json", 0, path, sizeof(path));
	d[0] = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, a, b, 4 * PAGE);
	d[1] = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, b, PAGE);
	d[2] = desc_make(&f, SVA_OP_CRC32C, SVA_DESC_BLOCK_ON_FAULT, a, NULL, 3 * PAGE);
	d[3] = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
	d[4] = desc_make(&f, SVA_OP_COMPARE, SVA_DESC_BLOCK_ON_FAULT, a, b, PAGE);
	/* Cold memory, no block-on-fault: a partial completion. */
	d[5] = desc_make(&f, SVA_OP_FILL, 0, NULL, cold, 2 * PAGE);
	for (int i = 0; i < 6; i++)
		d[i].user_data = 0x7ace0000u + (unsigned int)i;
	ck_assert_int_eq(sva_submit(f.bind, d, 6), 6);
	while (n < 6) {
		int r = sva_wait(f.bind, c + n, 6 - (unsigned int)n, 1, 5000);

		ck_assert_int_gt(r, 0);
		n += r;
	}
	/* "%d" named the file after the device. */
	snprintf(path, sizeof(path), "%s/%s.json", tmpdir, sva_dev_name(f.dev));
	close_bind(&f);

	trace_load(&t, path);
	ck_assert_str_eq(t.device, test_device());
	ck_assert_int_eq((int)t.pid, (int)getpid());
	ck_assert_uint_eq(trace_count(&t, "desc"), 6);
	ck_assert(t.dropped == 0 && t.recorded == t.written);
	for (int i = 0; i < 6; i++) {
		const struct tev *e = NULL;
		unsigned int k = (unsigned int)(c[i].user_data - 0x7ace0000u);
		static const char *const op[] = {
			"NOP", "COPY", "FILL", "COMPARE", "CRC32C" };

		ck_assert_uint_lt(k, 6);
		for (size_t j = 0; j < t.n; j++)
			if (!strcmp(t.ev[j].cat, "desc") &&
			    t.ev[j].user_data == c[i].user_data)
				e = &t.ev[j];
		ck_assert_msg(e, "no event for descriptor %u", k);
		ck_assert_str_eq(e->ph, "X");
		ck_assert_str_eq(e->name, op[d[k].opcode]);
		ck_assert_int_eq(e->status_code, (long)c[i].status);
		ck_assert_str_eq(e->status, sva_status_str(c[i].status));
		ck_assert_int_eq(e->bytes_done, (long)c[i].bytes_done);
		ck_assert_int_eq(e->pid, (int)getpid());
	}
	trace_free(&t);
	munmap(a, 4 * PAGE);
	munmap(b, 4 * PAGE);
	munmap(cold, 2 * PAGE);
}
END_TEST

START_TEST(test_trace_cold_buffer_page_requests)
{
	enum { NP = 16 };
	uint8_t *p = map_fresh_small(NP * PAGE, PROT_READ | PROT_WRITE);
	struct fixture f;
	struct sva_desc d;
	struct sva_stats s;
	char path[PATH_MAX];
	struct trace t;
	bool covered[NP] = { 0 };
	const struct tev *dsc = NULL;

	ck_assert_uint_eq(pages_present(p, NP * PAGE), 0);
	open_traced(&f, "cold.json", 0, path, sizeof(path));
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p,
		      NP * PAGE);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	ck_assert_uint_eq(pages_present(p, NP * PAGE), NP);
	s = bind_stats(&f);
	if (test_on_vfio()) {
		/* vfio0 made the pages present itself (no PRI): no page
		 * request group raised, none traced, the descriptor is. */
		ck_assert_uint_eq(s.page_groups, 0);
		close_bind(&f);
		trace_load(&t, path);
		ck_assert_uint_eq(trace_count(&t, "fault"), 0);
		ck_assert_uint_eq(trace_count(&t, "desc"), 1);
		trace_free(&t);
		munmap(p, NP * PAGE);
		return;
	}
	ck_assert_uint_gt(s.page_groups, 0);
	close_bind(&f);

	trace_load(&t, path);
	/* One event per group the device raised, and they cover the pages. */
	ck_assert_uint_eq(trace_count(&t, "fault"), s.page_groups);
	for (size_t i = 0; i < t.n; i++) {
		const struct tev *e = &t.ev[i];

		if (strcmp(e->cat, "fault"))
			continue;
		ck_assert_str_eq(e->ph, "X");
		ck_assert_str_eq(e->name, "page request group");
		ck_assert_ptr_nonnull(strstr(e->access, "write"));
		ck_assert_uint_le(e->first, e->last);
		ck_assert_int_ge(e->pages, 1);
		ck_assert_uint_le((uint64_t)e->pages,
				  (e->last - e->first) / PAGE + 1);
		for (int k = 0; k < NP; k++) {
			uint64_t pg = (uintptr_t)p + (uint64_t)k * PAGE;

			covered[k] |= pg >= e->first && pg <= e->last;
		}
	}
	for (int k = 0; k < NP; k++)
		ck_assert_msg(covered[k], "page %d in no page request group", k);
	/* A group with a service time (the backend saw it raised; kmod's
	 * have none) lies within the one descriptor that raised it: one
	 * clock, one thread. */
	ck_assert_uint_eq(trace_count(&t, "desc"), 1);
	for (size_t j = 0; j < t.n; j++)
		if (!strcmp(t.ev[j].cat, "desc"))
			dsc = &t.ev[j];
	for (size_t i = 0; i < t.n; i++) {
		const struct tev *g = &t.ev[i];

		if (strcmp(g->cat, "fault") || g->dur <= 0)
			continue;
		ck_assert_uint_eq(g->tid, dsc->tid);
		ck_assert(g->ts >= dsc->ts);
		ck_assert(g->ts + g->dur <= dsc->ts + dsc->dur + 0.002);
	}
	trace_free(&t);
	munmap(p, NP * PAGE);
}
END_TEST

START_TEST(test_trace_munmap_mirrored_invalidation)
{
	enum { NP = 8 };
	uint8_t *p = map_filled(NP * PAGE, 3), *q = map_filled(NP * PAGE, 4);
	uint64_t lo = (uintptr_t)p, hi = lo + NP * PAGE, seq, cov = lo;
	struct sva_mirror *m;
	struct fixture f;
	struct sva_desc d;
	struct sva_stats s;
	char path[PATH_MAX];
	struct trace t;
	long atc = 0;
	bool known = false;
	int tries = 0;

	open_traced(&f, "inval.json", 0, path, sizeof(path));
	ck_assert_int_eq(sva_mirror_register(f.bind, lo, NP * PAGE, NULL, &m), 0);
	d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, p, q, NP * PAGE);
	ck_assert_uint_eq(run1(&f, &d).status, SVA_STATUS_SUCCESS);
	seq = sva_mirror_read_begin(m);
	ck_assert_int_eq(munmap(p, NP * PAGE), 0);
	while (!sva_mirror_read_retry(m, seq) && tries++ < 5000)
		usleep(1000);
	ck_assert_msg(sva_mirror_read_retry(m, seq), "munmap never invalidated");
	ck_assert_int_eq(sva_mirror_unregister(m), 0);
	s = bind_stats(&f);
	close_bind(&f);

	trace_load(&t, path);
	ck_assert_uint_ge(trace_count(&t, "inval"), 1);
	/* The unmap events cover the range (sorted walk of their union). */
	for (bool grew = true; grew;) {
		grew = false;
		for (size_t i = 0; i < t.n; i++) {
			const struct tev *e = &t.ev[i];

			if (strcmp(e->cat, "inval") || strcmp(e->event, "unmap"))
				continue;
			ck_assert_str_eq(e->ph, "i");
			if (e->start <= cov && e->end > cov) {
				cov = e->end;
				grew = true;
			}
		}
	}
	ck_assert_msg(cov >= hi, "unmap events cover %#llx..%#llx of %#llx..%#llx",
		      (unsigned long long)lo, (unsigned long long)cov,
		      (unsigned long long)lo, (unsigned long long)hi);
	/* Where the backend counts the ATC entries dropped, so do the stats. */
	for (size_t i = 0; i < t.n; i++) {
		if (strcmp(t.ev[i].cat, "inval") || t.ev[i].atc < 0)
			continue;
		known = true;
		atc += t.ev[i].atc;
	}
	/* vfio0's domain maps nothing between chunks: an invalidation
	 * drops no IOTLB entry (each chunk's own unmaps are what its
	 * atc_invalidated counts). */
	if (known && test_on_vfio())
		ck_assert_int_eq(atc, 0);
	else if (known)
		ck_assert_int_eq(atc, (long)s.atc_invalidated);
	trace_free(&t);
	munmap(q, NP * PAGE);
}
END_TEST

START_TEST(test_trace_quarantine_event)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .storm_threshold = 3);
	uint8_t *p = map_fresh(PAGE, PROT_NONE);
	struct fixture f;
	struct sva_desc d;
	char path[PATH_MAX];
	struct trace t;
	int n = 0;

	snprintf(path, sizeof(path), "%s/storm.json", tmpdir);
	o.trace_path = path;
	open_bind(&f, &o);
	d = desc_make(&f, SVA_OP_FILL, SVA_DESC_BLOCK_ON_FAULT, NULL, p, PAGE);
	for (n = 0; n < 10 && sva_dev_quarantined(f.dev) == 0; n++)
		ck_assert_uint_eq(run1(&f, &d).status,
				  SVA_STATUS_FAULT_INVALID);
	/* A storm is of failed page request groups: vfio0 (no PRI) raises
	 * none, its faults are its descriptors' (libsva(7)): ten of them
	 * quarantine nothing. */
	ck_assert_int_eq(sva_dev_quarantined(f.dev), !test_on_vfio());
	ck_assert_uint_eq(bind_stats(&f).quarantines, !test_on_vfio());
	close_bind(&f);

	trace_load(&t, path);
	ck_assert_uint_eq(trace_count(&t, "storm"), !test_on_vfio());
	for (size_t i = 0; i < t.n; i++)
		if (!strcmp(t.ev[i].cat, "storm"))
			ck_assert_str_eq(t.ev[i].name, "quarantine");
	ck_assert_uint_eq(trace_count(&t, "desc"), (size_t)n);
	trace_free(&t);
	munmap(p, PAGE);
}
END_TEST

/* --------------------------------------------------------- bounds, off */

START_TEST(test_trace_ring_bounded_drops_counted)
{
	enum { N = 1000, RING = 100 };
	struct fixture f;
	struct sva_desc d[50];
	struct sva_completion c[50];
	char path[PATH_MAX];
	struct trace t;

	open_traced(&f, "ring.json", RING, path, sizeof(path));
	for (int i = 0; i < 50; i++)
		d[i] = desc_make(&f, SVA_OP_NOP, 0, NULL, NULL, 0);
	for (int done = 0; done < N; done += 50) {
		ck_assert_int_eq(sva_submit(f.bind, d, 50), 50);
		for (int got = 0; got < 50;) {
			int r = sva_wait(f.bind, c, 50, 1, 5000);

			ck_assert_int_gt(r, 0);
			got += r;
		}
	}
	close_bind(&f);

	trace_load(&t, path);
	/* The ring is the size asked for, rounded up, and no larger. */
	ck_assert(t.ring_events >= RING && t.ring_events < 2 * RING);
	ck_assert(t.written <= t.ring_events);
	ck_assert(t.recorded >= N);
	ck_assert(t.dropped >= N - t.ring_events);
	ck_assert(t.recorded == t.written + t.dropped);
	ck_assert_uint_eq(trace_count(&t, "desc"), (size_t)t.written);
	/* Bounded by the ring, not by the run (1000 events: over 200 KiB). */
	ck_assert_uint_lt(t.size, 64 * 1024);
	trace_free(&t);
}
END_TEST

struct writer {
	struct sva_dev *dev;
	unsigned int id;
	int err;
};

/* A binding of its own (its own queue worker) and 200 NOPs. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	struct sva_desc d = { .opcode = SVA_OP_NOP };
	struct sva_completion c;
	struct sva_bind *b;

	w->err = sva_bind(w->dev, NULL, &b);
	if (w->err)
		return NULL;
	sva_bind_pasid(b, &d.pasid);
	for (unsigned int i = 0; i < 200 && !w->err; i++) {
		d.user_data = (uint64_t)w->id << 32 | i;
		if (sva_submit(b, &d, 1) != 1 || sva_wait(b, &c, 1, 1, 5000) != 1)
			w->err = -EIO;
	}
	sva_unbind(b);
	return NULL;
}

/*
 * Writers on several threads at once: nothing lost, torn or doubled; and
 * (second loop) overwriting one another in a small ring: every event
 * written whole, once, and the rest counted as dropped.
 */
START_TEST(test_trace_concurrent_writers)
{
	enum { W = 4 };
	SVA_OPTS_INIT(sva_dev_opts, o, .trace_events = _i ? 64 : 4096);
	struct writer w[W];
	pthread_t th[W];
	char path[PATH_MAX];
	unsigned int seen[W][200] = { { 0 } };
	struct sva_dev *dev;
	struct trace t;

	snprintf(path, sizeof(path), "%s/mt.json", tmpdir);
	o.trace_path = path;
	ck_assert_int_eq(sva_dev_open(test_device(), &o, &dev), 0);
	for (unsigned int i = 0; i < W; i++) {
		w[i] = (struct writer){ .dev = dev, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer_thread,
						&w[i]), 0);
	}
	for (unsigned int i = 0; i < W; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(w[i].err, 0);
	}
	sva_dev_close(dev);

	trace_load(&t, path);
	ck_assert(t.recorded == t.written + t.dropped);
	ck_assert(t.recorded >= W * 200);
	ck_assert_uint_eq(trace_count(&t, "desc"), (size_t)t.written);
	if (!_i)
		ck_assert(t.dropped == 0);
	else
		ck_assert(t.written <= 64 && t.dropped >= W * 200 - 64);
	for (size_t i = 0; i < t.n; i++) {
		uint64_t u = t.ev[i].user_data;

		if (strcmp(t.ev[i].cat, "desc"))
			continue;
		ck_assert_str_eq(t.ev[i].name, "NOP");
		ck_assert_uint_lt(u >> 32, W);
		ck_assert_uint_lt(u & 0xffffffffu, 200);
		seen[u >> 32][u & 0xffffffffu]++;
	}
	for (unsigned int i = 0; i < W; i++)
		for (unsigned int k = 0; k < 200; k++)
			ck_assert_uint_eq(seen[i][k], _i ? seen[i][k] & 1 : 1);
	trace_free(&t);
}
END_TEST

static void run_some(struct fixture *f)
{
	struct sva_desc d = desc_make(f, SVA_OP_NOP, 0, NULL, NULL, 0);

	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(run1(f, &d).status, SVA_STATUS_SUCCESS);
}

static unsigned int dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(test_trace_off_writes_nothing)
{
	/* Options of a program built before tracing existed: sz ends
	 * before trace_path; and no $SVA_TRACE. */
	struct sva_dev_opts o = { .sz = offsetof(struct sva_dev_opts, trace_path) };
	char cwd[PATH_MAX];
	struct fixture f;

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(tmpdir), 0);
	open_bind(&f, &o);
	run_some(&f);
	close_bind(&f);
	open_bind(&f, NULL);
	run_some(&f);
	close_bind(&f);
	ck_assert_int_eq(chdir(cwd), 0);
	ck_assert_uint_eq(dir_entries(tmpdir), 0);
}
END_TEST

START_TEST(test_trace_env_path_expands)
{
	char tmpl[PATH_MAX], path[PATH_MAX];
	struct fixture f;
	struct trace t;

	snprintf(tmpl, sizeof(tmpl), "%s/t-%%p-%%d-%%%%.json", tmpdir);
	ck_assert_int_eq(setenv("SVA_TRACE", tmpl, 1), 0);
	open_bind(&f, NULL);
	run_some(&f);
	snprintf(path, sizeof(path), "%s/t-%d-%s-%%.json", tmpdir,
		 (int)getpid(), sva_dev_name(f.dev));
	close_bind(&f);
	unsetenv("SVA_TRACE");
	ck_assert_uint_eq(dir_entries(tmpdir), 1);
	trace_load(&t, path);
	ck_assert_uint_eq(trace_count(&t, "desc"), 3);
	trace_free(&t);
}
END_TEST

/* ---------------------------------------------------------- bad input */

static char msg[512];

static int capture(enum sva_print_level level, const char *fmt, va_list ap)
{
	size_t n = strlen(msg);

	(void)level;
	if (n < sizeof(msg) - 1)
		vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	return 0;
}

static int open_bad(const char *path, unsigned int events)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .trace_path = path,
		      .trace_events = events);
	struct sva_dev *dev = (void *)1;
	int err;

	msg[0] = 0;
	err = sva_dev_open(test_device(), &o, &dev);
	ck_assert_ptr_null(dev);
	return err;
}

START_TEST(test_trace_bad_options)
{
	char p[PATH_MAX + 64];
	sva_print_fn_t old = sva_set_print(capture);
	struct fixture f;

	snprintf(p, sizeof(p), "%s/no/such/dir/t.json", tmpdir);
	ck_assert_int_eq(open_bad(p, 0), -ENOENT);
	ck_assert_ptr_nonnull(strstr(msg, "trace file"));
	ck_assert_int_eq(open_bad(tmpdir, 0), -EISDIR);
	ck_assert_ptr_nonnull(strstr(msg, tmpdir));
	snprintf(p, sizeof(p), "%s/t-%%x.json", tmpdir);
	ck_assert_int_eq(open_bad(p, 0), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "escape"));
	memset(p, 'a', sizeof(p) - 1);
	p[sizeof(p) - 1] = 0;
	ck_assert_int_eq(open_bad(p, 0), -ENAMETOOLONG);
	/* %d grows the path past PATH_MAX once expanded. */
	memset(p, 'a', PATH_MAX - 4);
	strcpy(p + PATH_MAX - 4, "%d%d");
	ck_assert_int_eq(open_bad(p, 0), -ENAMETOOLONG);
	snprintf(p, sizeof(p), "%s/t.json", tmpdir);
	ck_assert_int_eq(open_bad(p, UINT_MAX), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "trace_events"));
	ck_assert_uint_eq(dir_entries(tmpdir), 0);

	/* A bad $SVA_TRACE doesn't break the program: a warning, no trace. */
	snprintf(p, sizeof(p), "%s/no/such/dir/t.json", tmpdir);
	setenv("SVA_TRACE", p, 1);
	msg[0] = 0;
	open_bind(&f, NULL);
	ck_assert_ptr_nonnull(strstr(msg, "SVA_TRACE ignored"));
	run_some(&f);
	close_bind(&f);
	unsetenv("SVA_TRACE");

	/* A write that fails at close (a full disk) says so. */
	if (!access("/dev/full", W_OK)) {
		SVA_OPTS_INIT(sva_dev_opts, o, .trace_path = "/dev/full");

		open_bind(&f, &o);
		run_some(&f);
		msg[0] = 0;
		close_bind(&f);
		ck_assert_msg(strstr(msg, "not written") &&
			      strstr(msg, strerror(ENOSPC)), "got: %s", msg);
	}
	sva_set_print(old);
	ck_assert_uint_eq(dir_entries(tmpdir), 0);
}
END_TEST

/* --------------------------------------------------------------- fork */

START_TEST(test_trace_fork_child_never_writes_parent_file)
{
	char path[PATH_MAX], tmpl[PATH_MAX], child_path[PATH_MAX];
	SVA_OPTS_INIT(sva_dev_opts, o);
	struct fixture f;
	struct trace t;
	struct stat st;
	int status;
	pid_t pid;
	/* A VFIO device is opened by one process at a time: the child's
	 * own device can't be while the parent holds it. */
	bool own = !test_on_vfio() ||
		   !test_skip(__func__, "the child's own device and trace (a VFIO device is opened by one process at a time)");

	snprintf(tmpl, sizeof(tmpl), "%s/t-%%p.json", tmpdir);
	snprintf(path, sizeof(path), "%s/t-%d.json", tmpdir, (int)getpid());
	o.trace_path = tmpl;
	open_bind(&f, &o);
	run_some(&f);
	pid = test_fork();
	if (!pid) {
		/* Inherited handles: refused, and nothing written. */
		if (sva_dev_fd(f.dev) != -EPERM || sva_unbind(f.bind) != -EPERM)
			_exit(1);
		sva_dev_close(f.dev);
#ifndef SVA_ASAN_BUILD
		/* A device of its own traces to its own file (%p). Plain
		 * calls: no Check assertion in a child of the test. */
		if (own) {
			struct sva_dev *dev;
			struct sva_bind *b;
			struct sva_completion c;
			struct sva_desc d = { .opcode = SVA_OP_NOP };

			if (sva_dev_open(test_device(), &o, &dev) ||
			    sva_bind(dev, NULL, &b) ||
			    sva_bind_pasid(b, &d.pasid))
				_exit(2);
			for (int i = 0; i < 3; i++)
				if (sva_submit(b, &d, 1) != 1 ||
				    sva_wait(b, &c, 1, 1, 5000) != 1)
					_exit(3);
			sva_unbind(b);
			sva_dev_close(dev);
		}
#endif
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);	/* the parent's: untouched */
#ifndef SVA_ASAN_BUILD
	snprintf(child_path, sizeof(child_path), "%s/t-%d.json", tmpdir,
		 (int)pid);
	if (own) {
		trace_load(&t, child_path);
		ck_assert_int_eq((int)t.pid, (int)pid);
		ck_assert_uint_eq(trace_count(&t, "desc"), 3);
		trace_free(&t);
	} else {
		ck_assert_int_ne(stat(child_path, &st), 0);
	}
#else
	(void)own;
	(void)child_path;
#endif
	run_some(&f);
	close_bind(&f);
	trace_load(&t, path);
	ck_assert_int_eq((int)t.pid, (int)getpid());
	ck_assert_uint_eq(trace_count(&t, "desc"), 6);
	for (size_t i = 0; i < t.n; i++)
		ck_assert_int_eq(t.ev[i].pid, (int)getpid());
	trace_free(&t);
}
END_TEST

/* ---------------------------------------------------------- migrations */

/* Pages of the migration events with @dir ("" any) and @cause ("" any). */
static long mig_pages(const struct trace *t, const char *dir,
		      const char *cause, long *events, long *refused)
{
	long pages = 0;

	*events = 0;
	if (refused)
		*refused = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct tev *e = &t->ev[i];

		if (strcmp(e->cat, "migrate") ||
		    (*dir && strcmp(e->direction, dir)) ||
		    (*cause && strcmp(e->cause, cause)))
			continue;
		ck_assert_str_eq(e->ph, "X");
		ck_assert_int_ge(e->pages, 0);
		ck_assert_int_ge(e->refused, 0);
		/* Runs the library started on its own are recorded when
		 * they did something (libsva(7)). */
		if (strcmp(e->cause, "sva_migrate") &&
		    strcmp(e->cause, "prefetch") &&
		    strcmp(e->cause, "device fault"))
			ck_assert_msg(e->pages + e->refused > 0,
				      "an empty migration event: %s", e->name);
		pages += e->pages;
		(*events)++;
		if (refused)
			*refused += e->refused;
	}
	return pages;
}

/*
 * Migrate to the device (one page refused: PROT_NONE), let the CPU touch
 * half of it (fault-back), migrate more than device memory holds
 * (evictions), everything back: the events' page totals are the
 * binding's counters, whatever the run did.
 */
START_TEST(test_trace_migration_events_match_stats)
{
	enum { N = 32, DEV = 16 };
	SVA_OPTS_INIT(sva_dev_opts, o, .devmem_size = DEV * PAGE);
	struct sva_migrate_opts mo = { .sz = sizeof(mo) };
	struct sva_migrate_result r = { .sz = sizeof(r) };
	struct sva_dev_caps caps = { .sz = sizeof(caps) };
	uint8_t *p, *ref;
	struct fixture f;
	char path[PATH_MAX];
	struct sva_stats s;
	struct trace t;
	long n, ev_cpu, ev_evict, ev_fork, ev_unbind, ev_expl, refused, refused2;
	long to_dev, d2d, to_host, cpu, evict, fork_pages, unbind;
	unsigned int me = (unsigned int)syscall(SYS_gettid);

	snprintf(path, sizeof(path), "%s/migrate.json", tmpdir);
	o.trace_path = path;
	open_bind(&f, &o);
	ck_assert_int_eq(sva_dev_caps(f.dev, &caps), 0);
	if (!(caps.flags & SVA_CAP_MIGRATE)) {
		fprintf(stderr, "%s: %s has no SVA_CAP_MIGRATE (no device memory on this backend/kernel): skipped\n",
			__func__, sva_dev_name(f.dev));
		close_bind(&f);
		return;
	}
	p = map_filled((N + 1) * PAGE, 41);
	ref = malloc(N * PAGE);
	ck_assert_ptr_nonnull(ref);
	memcpy(ref, p, N * PAGE);
	ck_assert_int_eq(mprotect(p + N * PAGE, PAGE, PROT_NONE), 0);

	mo.to = SVA_LOC_DEVICE;
	ck_assert_int_ge(sva_migrate(f.bind, (uintptr_t)p, DEV * PAGE, &mo, &r), 0);
	/* The CPU reads half of it back, page by page. */
	for (unsigned int i = 0; i < DEV; i += 2)
		ck_assert_int_eq(memcmp(p + i * PAGE, ref + i * PAGE, PAGE), 0);
	/* More than fits, and the PROT_NONE page: evictions, one refused. */
	ck_assert_int_ge(sva_migrate(f.bind, (uintptr_t)p + PAGE, N * PAGE, &mo, &r), 1);
	mo.to = SVA_LOC_HOST;
	ck_assert_int_eq(sva_migrate(f.bind, (uintptr_t)p, N * PAGE, &mo, &r), 0);
	ck_assert_int_eq(memcmp(p, ref, N * PAGE), 0);
	s = bind_stats(&f);
	close_bind(&f);
	/* What the run did, from its counters: the test needs each. */
	ck_assert_uint_gt(s.migrated_to_dev, 0);
	ck_assert_uint_gt(s.migrated_to_host, 0);
	ck_assert_uint_gt(s.cpu_fault_migrations, 0);
	ck_assert_uint_gt(s.evictions, 0);
	ck_assert_uint_gt(s.migrate_failures, 0);

	trace_load(&t, path);
	ck_assert_uint_eq((uint64_t)t.dropped, 0);
	to_dev = mig_pages(&t, "to device", "", &n, NULL);
	d2d = mig_pages(&t, "device to device", "", &n, NULL);
	to_host = mig_pages(&t, "to host", "", &n, NULL);
	cpu = mig_pages(&t, "to host", "cpu fault", &ev_cpu, NULL);
	evict = mig_pages(&t, "to host", "eviction", &ev_evict, NULL);
	fork_pages = mig_pages(&t, "to host", "fork", &ev_fork, NULL);
	unbind = mig_pages(&t, "to host", "unbind", &ev_unbind, NULL);
	mig_pages(&t, "", "sva_migrate", &ev_expl, &refused);
	ck_assert_int_eq(ev_expl, 3);
	ck_assert_int_eq(to_dev + d2d, (long)s.migrated_to_dev);
	/* Everything was back before the stats: unbind moved nothing. */
	ck_assert_int_eq(unbind, 0);
	ck_assert_int_eq(to_host - unbind, (long)s.migrated_to_host);
	/* Granularity 0: each CPU fault moved its one page. */
	ck_assert_int_eq(ev_cpu, (long)s.cpu_fault_migrations);
	ck_assert_int_eq(cpu, (long)s.cpu_fault_migrations);
	ck_assert_int_eq(evict + fork_pages, (long)s.evictions);
	mig_pages(&t, "", "prefetch", &n, &refused2);
	ck_assert_int_eq(refused + refused2, (long)s.migrate_failures);
	/* Each on the thread that did it: CPU faults on the event reader. */
	for (size_t i = 0; i < t.n; i++) {
		const struct tev *e = &t.ev[i];

		if (strcmp(e->cat, "migrate"))
			continue;
		if (!strcmp(e->cause, "sva_migrate") ||
		    !strcmp(e->cause, "eviction"))
			ck_assert_uint_eq(e->tid, me);
		else if (!strcmp(e->cause, "cpu fault"))
			ck_assert_uint_ne(e->tid, me);
	}
	trace_free(&t);
	free(ref);
	munmap(p, (N + 1) * PAGE);
}
END_TEST

/* ------------------------------------------------- regressions (review) */

/* NOPs on @f, @n of them, one at a time. */
static void run_n(struct fixture *f, unsigned int n)
{
	struct sva_desc d = desc_make(f, SVA_OP_NOP, 0, NULL, NULL, 0);

	for (unsigned int i = 0; i < n; i++)
		ck_assert_uint_eq(run1(f, &d).status, SVA_STATUS_SUCCESS);
}

/*
 * Two handles naming one trace file (the same device opened twice with
 * trace_path or SVA_TRACE "%p-%d"): each wrote the file from offset 0 at
 * its close, so a shorter trace written last left the tail of the longer
 * one behind it, and the file was no JSON. The file belongs to the first
 * handle: a second trace_path naming it is refused (-EBUSY, with a
 * message), a second SVA_TRACE naming it only warns and traces nothing.
 */
START_TEST(test_regress_trace_same_file_two_handles)
{
	sva_print_fn_t old = sva_set_print(capture);
	char path[PATH_MAX], tmpl[PATH_MAX];
	struct fixture f, g;
	struct trace t;

	if (test_on_vfio() &&
	    test_skip(__func__, "the device opened twice (a VFIO device is opened once)")) {
		sva_set_print(old);
		return;
	}
	/* Explicit trace_path: the second open is refused. */
	open_traced(&f, "same.json", 0, path, sizeof(path));
	ck_assert_int_eq(open_bad(path, 0), -EBUSY);
	ck_assert_msg(strstr(msg, path), "got: %s", msg);
	run_n(&f, 20);
	close_bind(&f);
	trace_load(&t, path);
	ck_assert_uint_eq(trace_count(&t, "desc"), 20);
	trace_free(&t);

	/* $SVA_TRACE: the second handle runs untraced, the file is whole. */
	snprintf(tmpl, sizeof(tmpl), "%s/env-%%p-%%d.json", tmpdir);
	ck_assert_int_eq(setenv("SVA_TRACE", tmpl, 1), 0);
	open_bind(&f, NULL);
	msg[0] = 0;
	open_bind(&g, NULL);
	ck_assert_msg(strstr(msg, "SVA_TRACE ignored"), "got: %s", msg);
	unsetenv("SVA_TRACE");
	snprintf(path, sizeof(path), "%s/env-%d-%s.json", tmpdir,
		 (int)getpid(), sva_dev_name(f.dev));
	run_n(&f, 20);
	run_n(&g, 3);
	close_bind(&f);
	close_bind(&g);
	ck_assert_uint_eq(dir_entries(tmpdir), 2);	/* same.json too */
	trace_load(&t, path);
	ck_assert_uint_eq(trace_count(&t, "desc"), 20);
	trace_free(&t);
	sva_set_print(old);
}
END_TEST

struct opener {
	const char *path;
	int err;
};

static void *open_thread(void *arg)
{
	struct opener *o = arg;

	o->err = open_bad(o->path, 0);
	return NULL;
}

/*
 * A trace path naming a FIFO nobody reads: open(O_WRONLY) waited for a
 * reader forever, inside sva_dev_open() and under the library's fd lock
 * (every other thread's open and fork() waited too). It fails at once now
 * with a specific errno.
 */
START_TEST(test_regress_trace_fifo_open_never_hangs)
{
	sva_print_fn_t old = sva_set_print(capture);
	struct opener o = { .err = 1 };
	char path[PATH_MAX];
	struct timespec deadline;
	pthread_t th;
	int err, rfd;

	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	o.path = path;
	ck_assert_int_eq(pthread_create(&th, NULL, open_thread, &o), 0);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 5;
	err = pthread_timedjoin_np(th, NULL, &deadline);
	if (err) {
		/* Give it a reader so that the thread ends, then fail. */
		rfd = open(path, O_RDONLY | O_NONBLOCK);
		pthread_join(th, NULL);
		close(rfd);
	}
	sva_set_print(old);
	ck_assert_msg(!err, "sva_dev_open() on a FIFO without reader hung");
	ck_assert_int_eq(o.err, -ENXIO);
	ck_assert_msg(strstr(msg, path), "got: %s", msg);
}
END_TEST

struct closer {
	struct fixture *f;
	_Atomic bool done;
};

static void *close_thread(void *arg)
{
	struct closer *c = arg;

	close_bind(c->f);
	atomic_store(&c->done, true);
	return NULL;
}

/*
 * Every fd of this process open on @path, and whether each is
 * close-on-exec (/proc/self/fdinfo "flags:", octal, O_CLOEXEC 02000000).
 */
static unsigned int fds_on(const char *path, unsigned int *cloexec)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned int n = 0;

	*cloexec = 0;
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char lnk[PATH_MAX + 32], tgt[PATH_MAX], info[PATH_MAX + 32];
		char line[128];
		ssize_t len;
		FILE *fi;

		if (e->d_name[0] == '.')
			continue;
		snprintf(lnk, sizeof(lnk), "/proc/self/fd/%s", e->d_name);
		len = readlink(lnk, tgt, sizeof(tgt) - 1);
		if (len <= 0)
			continue;
		tgt[len] = 0;
		if (strcmp(tgt, path))
			continue;
		n++;
		snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", e->d_name);
		fi = fopen(info, "r");
		while (fi && fgets(line, sizeof(line), fi))
			if (!strncmp(line, "flags:", 6) &&
			    strtoul(line + 6, NULL, 8) & O_CLOEXEC)
				(*cloexec)++;
		if (fi)
			fclose(fi);
	}
	closedir(d);
	return n;
}

/*
 * Writing the trace at close, the library held a dup() of the file made
 * without close-on-exec: a thread's fork()+exec() meanwhile handed the
 * trace file to the new program. Seen here while the write blocks on a
 * FIFO whose reader the test holds (a FIFO with a reader is a valid
 * trace target: SVA_TRACE=/dev/stdout into a pipe).
 */
START_TEST(test_regress_trace_write_fd_cloexec)
{
	SVA_OPTS_INIT(sva_dev_opts, o, .trace_events = 4096);
	struct closer c = { .done = false };
	char path[PATH_MAX], buf[4096];
	unsigned int n = 0, cloexec = 0;
	struct fixture f;
	pthread_t th;
	size_t total = 0;
	ssize_t r;
	int rfd, tries = 0;

	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	rfd = open(path, O_RDONLY | O_NONBLOCK);
	ck_assert_int_ge(rfd, 0);
	o.trace_path = path;
	open_bind(&f, &o);
	/* Over a pipe's 64 KiB of events: the write at close blocks. */
	run_n(&f, 1500);
	c.f = &f;
	ck_assert_int_eq(pthread_create(&th, NULL, close_thread, &c), 0);
	/* Wait until the closing thread holds a second fd on the FIFO. */
	while (!atomic_load(&c.done) && tries++ < 5000) {
		n = fds_on(path, &cloexec);
		if (n > 2)
			break;
		usleep(1000);
	}
	/* Then drain it so that the close ends. */
	ck_assert_int_eq(fcntl(rfd, F_SETFL, 0), 0);
	while ((r = read(rfd, buf, sizeof(buf))) > 0)
		total += (size_t)r;
	pthread_join(th, NULL);
	close(rfd);
	ck_assert_msg(n > 2, "the close never wrote through a second fd");
	/* Ours (the reader) isn't close-on-exec; every fd of the library's is. */
	ck_assert_uint_eq(cloexec, n - 1);
	ck_assert_uint_gt(total, 64 * 1024);
}
END_TEST

/*
 * Which thread runs a descriptor: a caller waiting forever on an idle
 * queue runs it itself where the backend allows (sim: the trace shows it
 * on the caller's thread, the page request group inside it); a wait with
 * a timeout never does (the queue worker's thread).
 */
START_TEST(test_trace_desc_runs_on_forever_waiter)
{
	enum { ROUNDS = 40 };
	/* vfio0: a 2 KiB copy (edu: ~100 ms of the VM's time each way),
	 * 10 rounds of each kind. */
	const unsigned int rounds = test_on_vfio() ? 10 : ROUNDS;
	const size_t len = test_len(PAGE);
	unsigned int me = (unsigned int)syscall(SYS_gettid);
	uint8_t *a = map_filled(2 * PAGE, 1);
	struct sva_completion c;
	unsigned int on_me = 0, found = 0, saw_on_me = 0;
	struct fixture f;
	char path[PATH_MAX];
	struct sva_desc d;
	struct trace t;

	open_traced(&f, "waiter.json", 0, path, sizeof(path));
	for (unsigned int i = 0; i < 3 * rounds; i++) {
		/* Fresh memory: a page request each time. */
		uint8_t *b = map_fresh(PAGE, PROT_READ | PROT_WRITE);

		d = desc_make(&f, SVA_OP_COPY, SVA_DESC_BLOCK_ON_FAULT, a, b,
			      len);
		d.user_data = i;
		if (i >= 2 * rounds) {
			/* One call, the worker never woken for it. */
			ck_assert_int_eq(sva_submit_and_wait(f.bind, &d, 1, &c,
							     1, 1, -1), 1);
		} else {
			ck_assert_int_eq(sva_submit(f.bind, &d, 1), 1);
			ck_assert_int_eq(sva_wait(f.bind, &c, 1, 1,
						  i < rounds ? -1 :
						  test_wait_ms()), 1);
		}
		ck_assert_uint_eq(c.status, SVA_STATUS_SUCCESS);
		ck_assert_int_eq(memcmp(a, b, len), 0);
		munmap(b, PAGE);
	}
	close_bind(&f);
	trace_load(&t, path);
	ck_assert(t.dropped == 0);
	for (size_t j = 0; j < t.n; j++) {
		const struct tev *e = &t.ev[j];

		if (strcmp(e->cat, "desc"))
			continue;
		found++;
		if (e->user_data >= 2 * rounds)
			saw_on_me += e->tid == me;
		else if (e->user_data >= rounds)
			ck_assert_uint_ne(e->tid, me);	/* timed: the worker */
		else
			on_me += e->tid == me;
	}
	ck_assert_uint_eq(found, 3 * rounds);
	/*
	 * sva_submit_and_wait() forever: on sim every one ran here (the
	 * worker, not woken, sleeps through it); kmod's run on its engine.
	 */
	ck_assert_uint_eq(saw_on_me, test_on_sim() ? rounds : 0);
	/*
	 * The worker wakes for each submission and may take one before
	 * the caller waits (a race it seldom wins on an idle machine, more
	 * often on a loaded one): some, not all.
	 */
	fprintf(stderr, "%s: %u of %d forever waits ran the descriptor themselves\n",
		__func__, on_me, (int)rounds);
	if (test_on_sim())
		ck_assert_uint_ge(on_me, 1);
	else
		ck_assert_uint_eq(on_me, 0);
	trace_free(&t);
	munmap(a, 2 * PAGE);
}
END_TEST

Suite *trace_suite(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("trace");

	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_trace_json_checker_strict);
	tcase_add_test(tc, test_trace_descriptors_completions);
	tcase_add_test(tc, test_trace_cold_buffer_page_requests);
	tcase_add_test(tc, test_trace_munmap_mirrored_invalidation);
	tcase_add_test(tc, test_trace_quarantine_event);
	tcase_add_test(tc, test_trace_ring_bounded_drops_counted);
	tcase_add_loop_test(tc, test_trace_concurrent_writers, 0, 2);
	tcase_add_test(tc, test_trace_off_writes_nothing);
	tcase_add_test(tc, test_trace_env_path_expands);
	tcase_add_test(tc, test_trace_bad_options);
	tcase_add_test(tc, test_trace_fork_child_never_writes_parent_file);
	tcase_add_test(tc, test_trace_migration_events_match_stats);
	tcase_add_test(tc, test_regress_trace_same_file_two_handles);
	tcase_add_test(tc, test_regress_trace_fifo_open_never_hangs);
	tcase_add_test(tc, test_regress_trace_write_fd_cloexec);
	tcase_add_test(tc, test_trace_desc_runs_on_forever_waiter);
	suite_add_tcase(s, tc);
	return s;
}
