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
 * Messages said under a library lock wait for it to go: the print hook is
 * the application's code, which may block on anything (a munmap() waiting
 * for the event thread that needs the lock). Per thread; nested.
 */
#define LOG_DEFERRED_MAX 8

struct deferred_log {
	unsigned int depth, n, dropped;
	struct {
		enum sva_print_level level;
		char msg[256];
	} m[LOG_DEFERRED_MAX];
};

static __thread struct deferred_log deferred;

void sva__log(enum sva_print_level level, const char *fmt, ...)
{
	sva_print_fn_t fn = atomic_load(&print_fn);
	int saved = errno;
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	if (deferred.depth) {
		if (deferred.n < LOG_DEFERRED_MAX) {
			deferred.m[deferred.n].level = level;
			vsnprintf(deferred.m[deferred.n].msg,
				  sizeof(deferred.m[0].msg), fmt, ap);
			deferred.n++;
		} else {
			deferred.dropped++;
		}
	} else {
		fn(level, fmt, ap);
	}
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

void sva__log_defer_begin(void)
{
	deferred.depth++;
}

void sva__log_defer_end(void)
{
	sva_print_fn_t fn = atomic_load(&print_fn);
	int saved = errno;

	if (--deferred.depth)
		return;
	for (unsigned int i = 0; fn && i < deferred.n; i++)
		log_emit(fn, deferred.m[i].level, "%s", deferred.m[i].msg);
	if (fn && deferred.dropped)
		log_emit(fn, SVA_WARN, "libsva: %u more messages said under a lock dropped\n",
			 deferred.dropped);
	deferred.n = 0;
	deferred.dropped = 0;
	errno = saved;
}
