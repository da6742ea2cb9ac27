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

void sva__log(enum sva_print_level level, const char *fmt, ...)
{
	sva_print_fn_t fn = atomic_load(&print_fn);
	int saved = errno;
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	fn(level, fmt, ap);
	va_end(ap);
	errno = saved;
}
