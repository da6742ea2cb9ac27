// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-bench --plot-trace: a libsva trace file drawn as a timeline with
 * gnuplot, one row per thread: boxes for descriptors, page request
 * groups and migrations, ticks for invalidations and quarantines. It reads the files
 * libsva writes (one event per line), not any Chrome trace: Perfetto and
 * chrome://tracing open those.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define ROWS 64

struct row {
	unsigned long tid;
	unsigned int sort;
	char name[48];
};

struct rows {
	struct row r[ROWS];
	unsigned int n;
};

static const char *field(const char *line, const char *key)
{
	char k[48];
	const char *s;

	snprintf(k, sizeof(k), "\"%s\":", key);
	s = strstr(line, k);
	return s ? s + strlen(k) : NULL;
}

static double num(const char *line, const char *key)
{
	const char *s = field(line, key);

	return s ? strtod(s, NULL) : 0;
}

static void str(const char *line, const char *key, char *out, size_t n)
{
	const char *s = field(line, key);
	size_t i = 0;

	if (s && *s == '"')
		for (s++; *s && *s != '"' && i + 1 < n; s++)
			out[i++] = *s == '\\' || *s == '\'' ? '_' : *s;
	out[i] = 0;
}

/* The row of @tid, made on first sight; -1 past ROWS threads. */
static int row_of(struct rows *rows, unsigned long tid)
{
	for (unsigned int i = 0; i < rows->n; i++)
		if (rows->r[i].tid == tid)
			return (int)i;
	if (rows->n == ROWS)
		return -1;
	rows->r[rows->n] = (struct row){ .tid = tid, .sort = 99 };
	snprintf(rows->r[rows->n].name, sizeof(rows->r[0].name), "thread");
	return (int)rows->n++;
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->sort != y->sort)
		return x->sort < y->sort ? -1 : 1;
	return x->tid < y->tid ? -1 : x->tid > y->tid;
}

static FILE *dat_open(char *path, size_t len, const char *dir,
		      const char *what)
{
	snprintf(path, len, "%s/%s.dat", dir, what);
	return fopen(path, "w");
}

int trace_plot(const char *json, const char *png)
{
	char line[4096], ph[4], cat[16], name[48], title[160] = "";
	char dir[] = "/tmp/sva-plot-XXXXXX", p[5][300];
	double t0 = -1, ts, dur, dropped = 0;
	FILE *in, *gp, *dat[5];
	int y, err = 0, rank[ROWS];
	struct rows rows = { .n = 0 };
	size_t events = 0;

	in = fopen(json, "r");
	if (!in)
		return -errno;
	/* Rows first (thread names), and the earliest timestamp. */
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "{\"ph\":", 6))
			continue;
		str(line, "ph", ph, sizeof(ph));
		if (strcmp(ph, "M")) {
			ts = num(line, "ts");
			if (t0 < 0 || ts < t0)
				t0 = ts;
			row_of(&rows, (unsigned long)num(line, "tid"));
			events++;
			continue;
		}
		str(line, "name", name, sizeof(name));
		y = row_of(&rows, (unsigned long)num(line, "tid"));
		if (!num(line, "tid") || y < 0)
			continue;	/* the process name */
		if (!strcmp(name, "thread_name"))
			str(strstr(line, "\"args\""), "name", rows.r[y].name,
			    sizeof(rows.r[y].name));
		else if (!strcmp(name, "thread_sort_index"))
			rows.r[y].sort = (unsigned int)num(line, "sort_index");
	}
	if (t0 < 0) {
		fclose(in);
		return -ENODATA;
	}
	/* Drop the process-name pseudo row (tid 0), order by role. */
	for (unsigned int i = 0; i < rows.n; i++)
		if (!rows.r[i].tid)
			rows.r[i] = rows.r[--rows.n];
	qsort(rows.r, rows.n, sizeof(rows.r[0]), cmp_row);

	if (!mkdtemp(dir)) {
		fclose(in);
		return -errno;
	}
	dat[0] = dat_open(p[0], sizeof(p[0]), dir, "desc");
	dat[1] = dat_open(p[1], sizeof(p[1]), dir, "fault");
	dat[2] = dat_open(p[2], sizeof(p[2]), dir, "inval");
	dat[3] = dat_open(p[3], sizeof(p[3]), dir, "storm");
	dat[4] = dat_open(p[4], sizeof(p[4]), dir, "migrate");
	for (int i = 0; i < 5; i++)
		if (!dat[i])
			err = -errno;
	rewind(in);
	while (!err && fgets(line, sizeof(line), in)) {
		const char *other = strstr(line, "\"otherData\"");

		if (other) {
			char dev[32];

			str(other + 12, "device", dev, sizeof(dev));
			dropped = num(other, "dropped");
			snprintf(title, sizeof(title),
				 "libsva trace of %s: %zu events, %.0f dropped",
				 dev, events, dropped);
			continue;
		}
		if (strncmp(line, "{\"ph\":", 6))
			continue;
		str(line, "ph", ph, sizeof(ph));
		str(line, "cat", cat, sizeof(cat));
		if (!strcmp(ph, "M"))
			continue;
		y = -1;
		for (unsigned int i = 0; i < rows.n; i++)
			if (rows.r[i].tid == (unsigned long)num(line, "tid"))
				y = (int)i;
		if (y < 0)
			continue;
		ts = (num(line, "ts") - t0) / 1000.0;	/* ms */
		dur = num(line, "dur") / 1000.0;
		/* boxxyerror: x y dx dy, centred. */
		if (!strcmp(cat, "desc"))
			fprintf(dat[0], "%.6f %d %.6f 0.35\n", ts + dur / 2, y,
				dur / 2);
		else if (!strcmp(cat, "fault"))
			fprintf(dat[1], "%.6f %d %.6f 0.2\n", ts + dur / 2, y,
				dur / 2);
		else if (!strcmp(cat, "inval"))
			fprintf(dat[2], "%.6f %d\n", ts, y);
		else if (!strcmp(cat, "storm"))
			fprintf(dat[3], "%.6f %d\n", ts, y);
		else if (!strcmp(cat, "migrate"))
			fprintf(dat[4], "%.6f %d %.6f 0.28\n", ts + dur / 2, y,
				dur / 2);
	}
	fclose(in);
	for (int i = 0; i < 5; i++)
		if (dat[i]) {
			/* gnuplot refuses an empty file: one point off-chart. */
			fprintf(dat[i], "-1e9 -10 0 0\n");
			fclose(dat[i]);
		}
	if (!err) {
		gp = popen("gnuplot > /dev/null 2>&1", "w");
		if (!gp) {
			err = -errno;
			goto out;
		}
		fprintf(gp,
			"set terminal pngcairo size 1200,%u font ',10'\n"
			"set output '%s'\nset title '%s'\n"
			"set xlabel 'time (ms)'\nset grid x\nset key below horizontal\n"
			"set yrange [-0.7:%u-0.3]\nset xrange [0:*]\n"
			"set ytics (",
			160 + 70 * rows.n, png, title, rows.n);
		for (unsigned int i = 0; i < rows.n; i++) {
			rank[i] = (int)i;
			fprintf(gp, "%s'%s %lu' %d", i ? ", " : "",
				rows.r[i].name, rows.r[i].tid, rank[i]);
		}
		fprintf(gp, ")\n"
			"plot '%s' using 1:2:3:4 with boxxyerror fs solid 0.5 "
			"lc rgb '#4a7fc1' title 'descriptor', "
			"'%s' using 1:2:3:4 with boxxyerror fs solid 0.8 border lc rgb '#8a4a00' "
			"lc rgb '#e08a2c' title 'page request group', "
			"'%s' using 1:2:3:4 with boxxyerror fs solid 0.6 border lc rgb '#1e6b3a' "
			"lc rgb '#3fae6a' title 'migration', "
			"'%s' using 1:($2-0.4):(0):(0.8) with vectors nohead "
			"lw 1.5 lc rgb '#c0392b' title 'invalidation', "
			"'%s' using 1:($2-0.45):(0):(0.9) with vectors nohead "
			"lw 3 lc rgb 'black' title 'quarantine'\n",
			p[0], p[1], p[4], p[2], p[3]);
		if (pclose(gp))
			err = -EIO;
	}
out:
	for (int i = 0; i < 5; i++)
		unlink(p[i]);
	rmdir(dir);
	return err;
}
