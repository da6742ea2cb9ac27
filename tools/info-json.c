// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * JSON output: strings escaped (sysfs names, command lines and paths may
 * hold quotes or control characters), so the output always parses.
 */
#include <stdio.h>

#include "info.h"

/*
 * Bytes in a well-formed UTF-8 sequence starting at @s (1 for ASCII), or 0
 * for a byte that starts none (RFC 3629: no overlong forms, surrogates or
 * code points past U+10FFFF).
 */
static int utf8_len(const unsigned char *s)
{
	int n;
	unsigned int cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)	/* also stops at the NUL */
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/*
 * sysfs names and the command line are bytes, JSON is UTF-8 (RFC 8259):
 * a byte that is no part of a UTF-8 character becomes U+FFFD.
 */
void json_str(const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	putchar('"');
	while (*s) {
		int n = utf8_len(s);

		if (!n) {
			printf("\\ufffd");
			s++;
		} else if (*s == '"' || *s == '\\') {
			printf("\\%c", *s++);
		} else if (*s < 0x20) {
			printf("\\u%04x", *s++);
		} else {
			fwrite(s, 1, (size_t)n, stdout);
			s += n;
		}
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
