// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* Messages: one replaceable callback, as libbpf_set_print() does. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int default_print(enum sva_print_level level, const char *fmt,
			 va_list ap)
{
	static int max_level = -2;	/* -2: not read yet, -1: silent */

	if (max_level == -2) {
		const char *env = getenv("SVA_LOG");

		max_level = SVA_WARN;
		if (env && !strcmp(env, "info"))
			max_level = SVA_INFO;
		else if (env && !strcmp(env, "debug"))
			max_level = SVA_DEBUG;
		else if (env && !strcmp(env, "none"))
			max_level = -1;
	}
	if ((int)level > max_level)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static _Atomic(sva_print_fn_t) print_fn = default_print;

sva_print_fn_t sva_set_print(sva_print_fn_t fn)
{
	return atomic_exchange(&print_fn, fn);
}

/*
 * Messages said while this thread holds a library lock wait until it holds
 * none (sva__lock_dropped() in internal.h calls sva__log_flush()). When
 * more wait than fit, a warning takes the place of the last debug or info
 * message (the default hook would drop those anyway); what is dropped is
 * counted and said after them.
 */
#define LOG_DEFERRED_MAX 16

struct deferred_log {
	unsigned int dropped;
	struct {
		enum sva_print_level level;
		char msg[256];
	} m[LOG_DEFERRED_MAX];
};

__thread unsigned int sva__locks_held
	__attribute__((tls_model("initial-exec")));
__thread unsigned int sva__log_pending
	__attribute__((tls_model("initial-exec")));
static __thread struct deferred_log deferred;

void sva__locks_forget(unsigned int n)
{
	sva__locks_held -= n < sva__locks_held ? n : sva__locks_held;
}

/* What the parent deferred before fork() is the parent's to say. */
static void log_atfork_child(void)
{
	sva__log_pending = 0;
	deferred.dropped = 0;
}

__attribute__((constructor)) static void log_atfork_register(void)
{
	pthread_atfork(NULL, NULL, log_atfork_child);
}

/* The slot for a message of @level: a free one, else the last of a less
 * severe level, else none (-1). */
static int log_slot(enum sva_print_level level)
{
	unsigned int n = sva__log_pending;

	if (n < LOG_DEFERRED_MAX)
		return (int)n;
	for (int i = LOG_DEFERRED_MAX - 1; i >= 0; i--)
		if (deferred.m[i].level > level)
			return i;
	return -1;
}

static void log_defer(enum sva_print_level level, const char *fmt,
		      va_list ap)
{
	int i = log_slot(level);
	char *msg;
	size_t sz;

	if (i < 0) {
		deferred.dropped++;
		return;
	}
	if ((unsigned int)i < sva__log_pending)
		deferred.dropped++;	/* a less severe one goes */
	else
		sva__log_pending = i + 1;
	msg = deferred.m[i].msg;
	sz = sizeof(deferred.m[i].msg);
	deferred.m[i].level = level;
	/* Cut short: say so, and keep the line ending. */
	if ((size_t)vsnprintf(msg, sz, fmt, ap) >= sz)
		memcpy(msg + sz - 5, "...\n", 5);
}

void sva__log(enum sva_print_level level, const char *fmt, ...)
{
	sva_print_fn_t fn = atomic_load(&print_fn);
	int saved = errno;
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	if (sva__locks_held)
		log_defer(level, fmt, ap);
	else
		fn(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

static void log_emit(sva_print_fn_t fn, enum sva_print_level level,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fn(level, fmt, ap);
	va_end(ap);
}

/*
 * Called with no library lock held. The hook may call libsva, which may
 * defer and flush more: what is pending is taken off first.
 */
void sva__log_flush(void)
{
	sva_print_fn_t fn = atomic_load(&print_fn);
	unsigned int n = sva__log_pending, dropped = deferred.dropped;
	struct deferred_log taken;
	int saved = errno;

	memcpy(taken.m, deferred.m, n * sizeof(deferred.m[0]));
	sva__log_pending = 0;
	deferred.dropped = 0;
	for (unsigned int i = 0; fn && i < n; i++)
		log_emit(fn, taken.m[i].level, "%s", taken.m[i].msg);
	if (fn && dropped)
		log_emit(fn, SVA_WARN, "libsva: %u more messages said under a lock dropped\n",
			 dropped);
	errno = saved;
}
