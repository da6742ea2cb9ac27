// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Readers for sysfs and friends. Every path comes in printf form so that
 * callers can root it at info_paths (a fixture in the tests). A missing
 * file reads as empty: sva-info reports what is there and says what isn't.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "info.h"

static ssize_t vread(void *buf, size_t len, const char *fmt, va_list ap)
{
	char path[PATH_MAX];
	ssize_t n, got = 0;
	int fd;

	vsnprintf(path, sizeof(path), fmt, ap);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/* sysfs config files may return less than asked: read to the end. */
	while ((size_t)got < len) {
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	return got;
}

ssize_t info_read(void *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	n = vread(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

/* A one-line attribute into @buf; "" if absent. */
const char *info_attr(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	n = vread(buf, len - 1, fmt, ap);
	va_end(ap);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* The last component of the link's target, or "". */
const char *info_link_base(char *buf, size_t len, const char *fmt, ...)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *slash;
	va_list ap;
	ssize_t n;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return buf;
	target[n] = '\0';
	slash = strrchr(target, '/');
	slash = slash ? slash + 1 : target;
	if (strlen(slash) < len)
		memcpy(buf, slash, strlen(slash) + 1);
	return buf;
}

bool info_exists(const char *fmt, ...)
{
	char path[PATH_MAX];
	struct stat st;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	return !stat(path, &st);
}

/* "0000:00:1c.0": a PCI function's sysfs name. */
bool info_is_bdf(const char *name)
{
	unsigned int dom, bus, dev, fn;
	char end;

	return sscanf(name, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &end) == 4;
}

/* Copy @src into @dst of @len bytes, cut short if it must be. */
void info_copy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}
