// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * JSON output: strings escaped (sysfs names, command lines and paths may
 * hold quotes or control characters), so the output always parses.
 */
#include <stdio.h>

#include "info.h"

void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

void json_kv_str(const char *key, const char *val, bool last)
{
	json_str(key);
	printf(": ");
	json_str(val);
	printf(last ? "" : ", ");
}

void json_kv_bool(const char *key, bool val, bool last)
{
	json_str(key);
	printf(": %s%s", val ? "true" : "false", last ? "" : ", ");
}
