// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * The event trace (see trace.h): a ring of fixed-size records per device,
 * filled lock-free by every thread that works for the device (submitters,
 * queue workers, fault services, event readers), written once as Chrome
 * trace-event JSON when the device is closed.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "trace.h"

/* A slot's seq: 0 never written, 1 being written, else index + 2. */
#define SLOT_BUSY 1

struct sva_trace {
	struct sva_trace_ev *ring;
	uint64_t mask;			/* ring size - 1 (a power of two) */
	_Atomic uint64_t head;		/* slots taken so far */
	int fd;				/* the file, created at open */
	char path[PATH_MAX];
};

static __thread uint32_t my_tid;
static __thread uint8_t my_role;	/* SVA_ROLE_APP unless set */

void sva__trace_set_role(enum sva_trace_role role)
{
	my_role = (uint8_t)role;
}

/* -------------------------------------------------------------- open */

/*
 * Expand %p (pid), %d (device name) and %% of @tmpl into @out. -EINVAL for
 * another escape, -ENAMETOOLONG when it doesn't fit a path.
 */
static int path_expand(char *out, size_t size, const char *tmpl,
		       const char *dev_name)
{
	size_t n = 0;
	int w;

	for (const char *s = tmpl; *s; s++) {
		if (*s != '%') {
			w = 1;
			if (n + 1 < size)
				out[n] = *s;
		} else if (s[1] == 'p') {
			w = snprintf(out + MIN(n, size - 1), size - MIN(n, size - 1),
				     "%d", (int)getpid());
			s++;
		} else if (s[1] == 'd') {
			w = snprintf(out + MIN(n, size - 1), size - MIN(n, size - 1),
				     "%s", dev_name);
			s++;
		} else if (s[1] == '%') {
			w = 1;
			if (n + 1 < size)
				out[n] = '%';
			s++;
		} else {
			return -EINVAL;
		}
		n += (size_t)w;
	}
	if (n >= size)
		return -ENAMETOOLONG;
	out[n] = 0;
	return 0;
}

/*
 * Create or take @path for the trace, without blocking and without
 * touching a file another trace owns. O_NONBLOCK: a FIFO nobody reads
 * fails (ENXIO) instead of waiting, under the fd lock, for a reader that
 * may never come; the writes at close block as usual. No O_TRUNC before
 * the lock: a regular file is the first handle's, held with flock() for
 * as long as the device is open (a second handle of this process or any
 * other, fork()'s child included, gets -EBUSY), and only then emptied.
 */
static int file_take(const struct sva_dev *dev, const char *path)
{
	struct stat st;
	int fd, err;

	fd = sva__fd_create(path, O_WRONLY | O_NONBLOCK, 0644);
	if (fd < 0)
		return sva_err(fd, "%s: can't create trace file '%s': %s",
			       dev->name, path, strerror(-fd));
	if (fstat(fd, &st) || fcntl(fd, F_SETFL, 0)) {
		err = sva_err(-errno, "%s: trace file '%s': %s", dev->name,
			      path, strerror(errno));
		goto close;
	}
	if (S_ISREG(st.st_mode)) {
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			sva_err(err, "%s: trace file '%s' %s", dev->name, path,
				err == -EBUSY ? "is another open device's trace (use %%d, %%p in the path)" :
				strerror(-err));
			goto close;
		}
		if (ftruncate(fd, 0)) {
			err = sva_err(-errno, "%s: trace file '%s': %s",
				      dev->name, path, strerror(errno));
			goto close;
		}
	}
	return fd;
close:
	sva__fd_close(fd);
	return err;
}

int sva__trace_open(struct sva_dev *dev)
{
	const char *tmpl = dev->opts.trace_path, *env = NULL;
	unsigned int events = dev->opts.trace_events;
	struct sva_trace *t;
	uint64_t size = 1;
	int err;

	if (!tmpl) {
		/* secure_getenv: not for a set-user-ID program's caller. */
		env = secure_getenv("SVA_TRACE");
		if (!env || !*env)
			return 0;
		tmpl = env;
	}
	if (events > SVA_TRACE_MAX_EVENTS)
		return sva_err(-EINVAL, "%s: trace_events %u above %u",
			       dev->name, events, SVA_TRACE_MAX_EVENTS);
	if (!events)
		events = SVA_TRACE_DEFAULT_EVENTS;
	while (size < events)
		size <<= 1;
	t = sva__zalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	err = path_expand(t->path, sizeof(t->path), tmpl, dev->name);
	if (err) {
		sva_err(err, "%s: trace path '%s': %s", dev->name, tmpl,
			err == -EINVAL ? "unknown %-escape (%p, %d, %% only)" :
			"too long once expanded");
		goto free;
	}
	t->ring = sva__zalloc(size * sizeof(*t->ring));
	if (!t->ring) {
		err = -ENOMEM;
		goto free;
	}
	t->mask = size - 1;
	t->fd = file_take(dev, t->path);
	if (t->fd < 0) {
		err = t->fd;
		goto free;
	}
	dev->trace = t;
	pr_info("%s: tracing up to %llu events into %s\n", dev->name,
		(unsigned long long)size, t->path);
	return 0;
free:
	free(t->ring);
	free(t);
	/* $SVA_TRACE is a debugging aid: a bad one must not break the
	 * application, which didn't ask for it. Say so, trace nothing. */
	if (env) {
		pr_warn("%s: SVA_TRACE ignored\n", dev->name);
		return 0;
	}
	return err;
}

/* ---------------------------------------------------------- recording */

static uint32_t tid_get(void)
{
	if (!my_tid)
		my_tid = (uint32_t)gettid();
	return my_tid;
}

/*
 * Take the next slot, overwriting the oldest event. NULL when another
 * writer still holds that slot (it took it a whole ring ago and was
 * preempted): the event is dropped, and counted as such at close since
 * the slot won't carry its index.
 */
static struct sva_trace_ev *slot_begin(struct sva_trace *t, uint64_t *idx)
{
	uint64_t i = atomic_fetch_add_explicit(&t->head, 1,
					       memory_order_relaxed);
	struct sva_trace_ev *e = &t->ring[i & t->mask];

	if (atomic_exchange_explicit(&e->seq, SLOT_BUSY,
				     memory_order_acquire) == SLOT_BUSY)
		return NULL;
	*idx = i;
	return e;
}

static void slot_end(struct sva_trace_ev *e, uint64_t idx)
{
	atomic_store_explicit(&e->seq, idx + 2, memory_order_release);
}

static struct sva_trace_ev *ev_begin(struct sva_bind *bind, uint8_t kind,
				     uint64_t *idx)
{
	struct sva_trace_ev *e = slot_begin(bind->dev->trace, idx);

	if (!e)
		return NULL;
	e->kind = kind;
	e->role = my_role;
	e->tid = tid_get();
	e->pasid = bind->pasid;
	e->dur = 0;
	e->a = e->b = e->c = 0;
	e->status = 0;
	e->op = 0;
	return e;
}

void sva__trace_desc(struct sva_bind *bind, uint64_t t0,
		     const struct sva_desc *d, const struct sva_completion *c)
{
	uint64_t now = sva__now_ns(), idx;
	struct sva_trace_ev *e = ev_begin(bind, SVA_TRACE_DESC, &idx);

	if (!e)
		return;
	e->ts = t0;
	e->dur = now - t0;
	e->op = (uint16_t)MIN(d->opcode, 0xffffu);
	e->a = d->len;
	e->b = d->user_data;
	e->c = c->bytes_done;
	e->status = c->status;
	slot_end(e, idx);
}

void sva__trace_page_group(struct sva_bind *bind, uint64_t t0,
			   uint64_t first, uint64_t last, unsigned int n,
			   unsigned int access, uint32_t response)
{
	uint64_t now = sva__now_ns(), idx;
	struct sva_trace_ev *e = ev_begin(bind, SVA_TRACE_PAGE_GROUP, &idx);

	if (!e)
		return;
	e->ts = t0 ? t0 : now;
	e->dur = t0 ? now - t0 : SVA_TRACE_UNKNOWN;
	e->a = first;
	e->b = last;
	e->c = n;
	e->op = (uint16_t)access;
	e->status = response;
	slot_end(e, idx);
}

void sva__trace_inval(struct sva_bind *bind, uint64_t start, uint64_t end,
		      unsigned int event, uint64_t atc_dropped)
{
	uint64_t idx;
	struct sva_trace_ev *e = ev_begin(bind, SVA_TRACE_INVAL, &idx);

	if (!e)
		return;
	e->ts = sva__now_ns();
	e->a = start;
	e->b = end;
	e->c = atc_dropped;
	e->op = (uint16_t)event;
	slot_end(e, idx);
}

void sva__trace_quarantine(struct sva_bind *bind, unsigned int failed)
{
	uint64_t idx;
	struct sva_trace_ev *e = ev_begin(bind, SVA_TRACE_QUARANTINE, &idx);

	if (!e)
		return;
	e->ts = sva__now_ns();
	e->c = failed;
	slot_end(e, idx);
}

__thread uint64_t sva__trace_mig_from_dev;

static void trace_migrate_tid(struct sva_bind *bind, uint32_t tid,
			      uint64_t t0, uint64_t dur,
			      enum sva_trace_mig_dir dir,
			      enum sva_trace_mig_cause cause, int node,
			      uint64_t first, uint64_t moved, uint64_t refused)
{
	uint64_t now = sva__now_ns(), idx;
	struct sva_trace_ev *e = ev_begin(bind, SVA_TRACE_MIGRATE, &idx);

	if (!e)
		return;
	if (tid) {
		/* Another thread's (the kernel told): its role unknown. */
		e->tid = tid;
		e->role = SVA_ROLE_APP;
	}
	e->ts = t0;
	e->dur = dur ? dur : now - t0;
	e->a = first;
	e->b = refused;
	e->c = moved;
	e->op = (uint16_t)(cause | dir << 8);
	e->status = (uint32_t)node;
	slot_end(e, idx);
}

void sva__trace_migrate(struct sva_bind *bind, uint64_t t0, uint64_t dur,
			enum sva_trace_mig_dir dir,
			enum sva_trace_mig_cause cause, int node,
			uint64_t first, uint64_t moved, uint64_t refused)
{
	trace_migrate_tid(bind, 0, t0, dur, dir, cause, node, first, moved,
			  refused);
}

void sva__trace_migrate_by(struct sva_bind *bind, uint32_t tid, uint64_t t0,
			   uint64_t dur, enum sva_trace_mig_cause cause,
			   int node, uint64_t first, uint64_t moved)
{
	trace_migrate_tid(bind, tid, t0, dur ? dur : 1, SVA_TRACE_MIG_TO_HOST,
			  cause, node, first, moved, 0);
}

/* ------------------------------------------------------------ writing */

/* Write @s as a JSON string (quoted, escaped). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

/* Microseconds with the nanoseconds as fraction, exactly. */
/* A count the backend may not know (null), then the args' and event's ends. */
static void json_count_end(FILE *f, uint64_t v)
{
	if (v == SVA_TRACE_UNKNOWN)
		fputs("null}}", f);
	else
		fprintf(f, "%llu}}", (unsigned long long)v);
}

static void json_us(FILE *f, uint64_t ns)
{
	fprintf(f, "%llu.%03u", (unsigned long long)(ns / 1000),
		(unsigned int)(ns % 1000));
}

static const char *opcode_name(unsigned int op)
{
	static const char *const names[] = {
		[SVA_OP_NOP] = "NOP", [SVA_OP_COPY] = "COPY",
		[SVA_OP_FILL] = "FILL", [SVA_OP_COMPARE] = "COMPARE",
		[SVA_OP_CRC32C] = "CRC32C",
	};

	return op < ARRAY_SIZE(names) && names[op] ? names[op] : "unknown";
}

static const char *access_name(unsigned int access)
{
	switch (access & (SVA_ACCESS_READ | SVA_ACCESS_WRITE)) {
	case SVA_ACCESS_READ:
		return "read";
	case SVA_ACCESS_WRITE:
		return "write";
	case SVA_ACCESS_READ | SVA_ACCESS_WRITE:
		return "read+write";
	default:
		return "none";
	}
}

static const char *response_name(uint32_t resp)
{
	static const char *const names[] = { "success", "invalid", "failure" };

	return resp < ARRAY_SIZE(names) ? names[resp] : "unknown";
}

static const char *inval_name(unsigned int ev)
{
	static const char *const names[] = {
		[SVA_INVAL_UNMAP] = "unmap", [SVA_INVAL_DISCARD] = "discard",
		[SVA_INVAL_REMAP] = "remap", [SVA_INVAL_RELEASE] = "release",
		[SVA_INVAL_PROTECT] = "protect", [SVA_INVAL_OTHER] = "other",
	};

	return ev < ARRAY_SIZE(names) && names[ev] ? names[ev] : "unknown";
}

static const char *mig_cause_name(unsigned int cause)
{
	static const char *const names[] = {
		[SVA_TRACE_MIG_EXPLICIT] = "sva_migrate",
		[SVA_TRACE_MIG_PREFETCH] = "prefetch",
		[SVA_TRACE_MIG_DEV_FAULT] = "device fault",
		[SVA_TRACE_MIG_CPU_FAULT] = "cpu fault",
		[SVA_TRACE_MIG_EVICTION] = "eviction",
		[SVA_TRACE_MIG_FORK] = "fork",
		[SVA_TRACE_MIG_UNBIND] = "unbind",
	};

	return cause < ARRAY_SIZE(names) && names[cause] ? names[cause] :
	       "unknown";
}

static const char *mig_dir_name(unsigned int dir)
{
	static const char *const names[] = {
		[SVA_TRACE_MIG_TO_DEV] = "to device",
		[SVA_TRACE_MIG_TO_HOST] = "to host",
		[SVA_TRACE_MIG_DEV_TO_DEV] = "device to device",
	};

	return dir < ARRAY_SIZE(names) && names[dir] ? names[dir] : "unknown";
}

static const char *const role_names[SVA_ROLE_NR] = {
	[SVA_ROLE_APP] = "application",
	[SVA_ROLE_QUEUE] = "queue worker",
	[SVA_ROLE_FAULT] = "fault service",
	[SVA_ROLE_MM_EVENTS] = "mm events (userfaultfd)",
	[SVA_ROLE_KMOD_EVENTS] = "kernel events",
};

static void ev_head(FILE *f, const char *ph, const char *cat,
		    const char *name, int pid, const struct sva_trace_ev *e)
{
	fprintf(f, "{\"ph\":\"%s\",\"cat\":\"%s\",\"name\":", ph, cat);
	json_str(f, name);
	fprintf(f, ",\"pid\":%d,\"tid\":%u,\"ts\":", pid, e->tid);
	json_us(f, e->ts);
}

static void mig_write(FILE *f, int pid, const struct sva_trace_ev *e)
{
	unsigned int cause = e->op & 0xff, dir = e->op >> 8;
	int node = (int)e->status;
	char name[64];

	/* The timeline's label: direction and cause, as one reads it. */
	if (dir == SVA_TRACE_MIG_TO_HOST && node >= 0)
		snprintf(name, sizeof(name), "migrate to host node %d (%s)",
			 node, mig_cause_name(cause));
	else
		snprintf(name, sizeof(name), "migrate %s (%s)",
			 mig_dir_name(dir), mig_cause_name(cause));
	ev_head(f, "X", "migrate", name, pid, e);
	fputs(",\"dur\":", f);
	json_us(f, e->dur);
	fprintf(f, ",\"args\":{\"pasid\":%u,\"direction\":\"%s\","
		"\"node\":%d,\"cause\":\"%s\",\"first\":\"0x%llx\","
		"\"pages\":%llu,\"refused\":%llu,\"duration_ns\":%llu}}",
		e->pasid, mig_dir_name(dir), dir == SVA_TRACE_MIG_TO_HOST ?
		node : -1, mig_cause_name(cause), (unsigned long long)e->a,
		(unsigned long long)e->c, (unsigned long long)e->b,
		(unsigned long long)e->dur);
}

static void ev_write(FILE *f, int pid, const struct sva_dev *dev,
		     const struct sva_trace_ev *e)
{
	switch (e->kind) {
	case SVA_TRACE_DESC:
		ev_head(f, "X", "desc", opcode_name(e->op), pid, e);
		fputs(",\"dur\":", f);
		json_us(f, e->dur);
		fprintf(f, ",\"args\":{\"pasid\":%u,\"opcode\":%u,\"len\":%llu,"
			"\"bytes_done\":%llu,\"status\":", e->pasid, e->op,
			(unsigned long long)e->a, (unsigned long long)e->c);
		json_str(f, sva_status_str(e->status));
		fprintf(f, ",\"status_code\":%u,\"user_data\":\"0x%llx\"}}",
			e->status, (unsigned long long)e->b);
		break;
	case SVA_TRACE_PAGE_GROUP:
		ev_head(f, "X", "fault", "page request group", pid, e);
		fputs(",\"dur\":", f);
		json_us(f, e->dur == SVA_TRACE_UNKNOWN ? 0 : e->dur);
		fprintf(f, ",\"args\":{\"pasid\":%u,\"first\":\"0x%llx\","
			"\"last\":\"0x%llx\",\"pages\":%llu,\"access\":\"%s\","
			"\"batch\":%u,\"response\":\"%s\",\"service_ns\":",
			e->pasid, (unsigned long long)e->a,
			(unsigned long long)e->b, (unsigned long long)e->c,
			access_name(e->op), dev->caps.fault_batch,
			response_name(e->status));
		json_count_end(f, e->dur);
		break;
	case SVA_TRACE_INVAL:
		ev_head(f, "i", "inval", "invalidation", pid, e);
		fprintf(f, ",\"s\":\"t\",\"args\":{\"pasid\":%u,"
			"\"start\":\"0x%llx\",\"end\":\"0x%llx\",\"len\":%llu,"
			"\"event\":\"%s\",\"atc_dropped\":", e->pasid,
			(unsigned long long)e->a, (unsigned long long)e->b,
			(unsigned long long)(e->b - e->a), inval_name(e->op));
		json_count_end(f, e->c);
		break;
	case SVA_TRACE_QUARANTINE:
		ev_head(f, "i", "storm", "quarantine", pid, e);
		fprintf(f, ",\"s\":\"p\",\"args\":{\"pasid\":%u,"
			"\"failed_groups\":%llu,\"window_ms\":1000}}", e->pasid,
			(unsigned long long)e->c);
		break;
	case SVA_TRACE_MIGRATE:
		mig_write(f, pid, e);
		break;
	default:
		break;
	}
}

/* The threads seen, to name their rows; more than this go unnamed. */
#define TRACE_THREADS 256

struct thread_seen {
	uint32_t tid;
	uint8_t role;
};

static void thread_note(struct thread_seen *th, unsigned int *n,
			const struct sva_trace_ev *e)
{
	for (unsigned int i = 0; i < *n; i++)
		if (th[i].tid == e->tid)
			return;
	if (*n < TRACE_THREADS)
		th[(*n)++] = (struct thread_seen){ e->tid, e->role };
}

/*
 * One event per line, metadata first: readers that don't parse JSON
 * (sva-bench --plot-trace, grep) can take the file a line at a time.
 */
static int trace_write(const struct sva_dev *dev, struct sva_trace *t)
{
	uint64_t head = atomic_load(&t->head), size = t->mask + 1;
	uint64_t first = head > size ? head - size : 0, written = 0;
	struct thread_seen *th;
	unsigned int nth = 0;
	int pid = (int)getpid(), fd, err;
	char name[64];
	FILE *f;

	th = calloc(TRACE_THREADS, sizeof(*th));
	/* Close-on-exec: another thread may fork() and exec() meanwhile. */
	fd = fcntl(t->fd, F_DUPFD_CLOEXEC, 0);
	f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f || !th) {
		err = fd < 0 ? -errno : -ENOMEM;
		if (fd >= 0 && !f)
			close(fd);
		free(th);
		if (f)
			fclose(f);
		return err;
	}
	for (uint64_t i = first; i < head; i++)
		if (atomic_load(&t->ring[i & t->mask].seq) == i + 2)
			thread_note(th, &nth, &t->ring[i & t->mask]);

	fputs("{\"traceEvents\":[\n", f);
	snprintf(name, sizeof(name), "libsva %s", dev->name);
	fprintf(f, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%d,"
		"\"tid\":0,\"args\":{\"name\":", pid);
	json_str(f, name);
	fputs("}}", f);
	for (unsigned int i = 0; i < nth; i++) {
		fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,"
			"\"tid\":%u,\"args\":{\"name\":", pid, th[i].tid);
		json_str(f, th[i].role < SVA_ROLE_NR ? role_names[th[i].role] :
			 "thread");
		fprintf(f, "}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\","
			"\"pid\":%d,\"tid\":%u,\"args\":{\"sort_index\":%u}}",
			pid, th[i].tid, th[i].role);
	}
	for (uint64_t i = first; i < head; i++) {
		const struct sva_trace_ev *e = &t->ring[i & t->mask];

		/* Overwritten by a later lap, or still held: dropped. */
		if (atomic_load(&e->seq) != i + 2)
			continue;
		fputs(",\n", f);	/* after the process name, at least */
		ev_write(f, pid, dev, e);
		written++;
	}
	fputs("\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{", f);
	fputs("\"library\":", f);
	json_str(f, PACKAGE_STRING);
	fputs(",\"device\":", f);
	json_str(f, dev->name);
	fputs(",\"backend\":", f);
	json_str(f, dev->ops->name);
	fprintf(f, ",\"pid\":%d,\"clock\":\"CLOCK_MONOTONIC\","
		"\"ring_events\":%llu,\"recorded\":%llu,\"written\":%llu,"
		"\"dropped\":%llu}}\n", pid, (unsigned long long)size,
		(unsigned long long)head, (unsigned long long)written,
		(unsigned long long)(head - written));
	free(th);
	if (fclose(f))
		return -errno;
	return 0;
}

void sva__trace_close(struct sva_dev *dev)
{
	struct sva_trace *t = dev->trace;
	int err;

	if (!t)
		return;
	dev->trace = NULL;
	err = trace_write(dev, t);
	if (err)
		pr_warn("%s: trace file '%s' not written: %s\n",
			dev->name, t->path, strerror(-err));
	sva__fd_close(t->fd);
	free(t->ring);
	free(t);
}
