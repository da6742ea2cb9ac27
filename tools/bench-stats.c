// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* sva-bench: timing, percentiles, and the table, JSON and PNG reports. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double percentile(double *v, size_t n, double pct)
{
	size_t i;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(pct / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

struct result *report_add(struct report *rep)
{
	struct result *r;

	if (rep->n == rep->cap) {
		size_t cap = rep->cap ? rep->cap * 2 : 32;
		struct result *nr = realloc(rep->r, cap * sizeof(*nr));

		if (!nr) {
			perror("sva-bench");
			exit(1);
		}
		rep->r = nr;
		rep->cap = cap;
	}
	r = &rep->r[rep->n++];
	memset(r, 0, sizeof(*r));
	return r;
}

static void fmt_ns(char *buf, size_t len, double ns)
{
	if (ns <= 0)
		snprintf(buf, len, "-");
	else if (ns < 1e3)
		snprintf(buf, len, "%.0fns", ns);
	else if (ns < 1e6)
		snprintf(buf, len, "%.1fus", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, len, "%.1fms", ns / 1e6);
	else
		snprintf(buf, len, "%.2fs", ns / 1e9);
}

void report_table(const struct report *rep, FILE *out)
{
	const char *group = "";
	char s[16], b[16], p50[16], p99[16];

	fprintf(out, "%-9s %-14s %-22s %-22s %9s %9s %7s %9s %9s %14s\n",
		"group", "case", "subject", "baseline", "subject",
		"baseline", "ratio", "p50", "p99", "rate");
	for (size_t i = 0; i < rep->n; i++) {
		const struct result *r = &rep->r[i];

		if (strcmp(group, r->group))
			fprintf(out, "\n");
		group = r->group;
		fmt_ns(s, sizeof(s), r->subject_ns);
		fmt_ns(b, sizeof(b), r->baseline_ns);
		fmt_ns(p50, sizeof(p50), r->p50_ns);
		fmt_ns(p99, sizeof(p99), r->p99_ns);
		fprintf(out, "%-9s %-14s %-22s %-22s %9s %9s ", r->group,
			r->name, r->subject, r->baseline, s, b);
		if (r->ratio > 0)
			fprintf(out, "%6.2fx ", r->ratio);
		else
			fprintf(out, "%7s ", "-");
		fprintf(out, "%9s %9s ", p50, p99);
		if (r->rate > 0)
			fprintf(out, "%8.3g %-6s\n", r->rate, r->rate_unit);
		else
			fprintf(out, "%14s\n", "-");
	}
	fprintf(out, "\nratio = subject time / baseline time, medians of the "
		"same run (below 1: faster than the baseline).\n");
}

static void json_str(FILE *out, const char *key, const char *v, bool comma)
{
	fprintf(out, "\"%s\": \"", key);
	for (; *v; v++)
		fprintf(out, *v == '"' || *v == '\\' ? "\\%c" : "%c", *v);
	fprintf(out, "\"%s", comma ? ", " : "");
}

void report_json(const struct report *rep, FILE *out, const char *backend,
		 bool quick)
{
	fprintf(out, "{\"tool\": \"sva-bench\", \"backend\": \"%s\", "
		"\"quick\": %s, \"results\": [\n", backend,
		quick ? "true" : "false");
	for (size_t i = 0; i < rep->n; i++) {
		const struct result *r = &rep->r[i];

		fprintf(out, "  {");
		json_str(out, "group", r->group, true);
		json_str(out, "case", r->name, true);
		json_str(out, "subject", r->subject, true);
		json_str(out, "baseline", r->baseline, true);
		fprintf(out, "\"x\": %g, \"subject_ns\": %.1f, "
			"\"baseline_ns\": %.1f, \"ratio\": %.4f, "
			"\"p50_ns\": %.1f, \"p99_ns\": %.1f, \"rate\": %.4g, ",
			r->x, r->subject_ns, r->baseline_ns, r->ratio,
			r->p50_ns, r->p99_ns, r->rate);
		json_str(out, "rate_unit", r->rate_unit, false);
		fprintf(out, "}%s\n", i + 1 < rep->n ? "," : "");
	}
	fprintf(out, "]}\n");
}

/* One chart per group: ratio against the case's x value. */
int report_plot(const struct report *rep, const char *dir)
{
	char path[512], cmd[1024];
	const char *group;
	FILE *dat, *gp;
	int err = 0;

	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	for (size_t i = 0; i < rep->n; i++) {
		group = rep->r[i].group;
		if (i && !strcmp(group, rep->r[i - 1].group))
			continue;
		snprintf(path, sizeof(path), "%s/%s.dat", dir, group);
		dat = fopen(path, "w");
		if (!dat)
			return -errno;
		for (size_t j = i; j < rep->n &&
		     !strcmp(rep->r[j].group, group); j++)
			fprintf(dat, "%g %g \"%s\"\n", rep->r[j].x,
				rep->r[j].ratio, rep->r[j].name);
		fclose(dat);
		snprintf(cmd, sizeof(cmd), "gnuplot > /dev/null 2>&1");
		gp = popen(cmd, "w");
		if (!gp)
			return -errno;
		fprintf(gp,
			"set terminal pngcairo size 800,480\n"
			"set output '%s/%s.png'\n"
			"set title 'sva-bench: %s (subject time / baseline time)'\n"
			"set ylabel 'ratio'\nset grid\nset key off\n"
			"set xtics rotate by -30\nset yrange [0:*]\n"
			"plot '%s' using 0:2:xtic(3) with linespoints lw 2 pt 7\n",
			dir, group, group, path);
		if (pclose(gp))
			err = -EIO;
		unlink(path);
	}
	return err;
}

void progress(const char *what, unsigned int done, unsigned int total)
{
	unsigned int width = 30, fill;

	if (!isatty(STDERR_FILENO) || !total)
		return;
	fill = done * width / total;
	fprintf(stderr, "\r%-12s [", what);
	for (unsigned int i = 0; i < width; i++)
		fputc(i < fill ? '#' : ' ', stderr);
	fprintf(stderr, "] %3u%%%s", done * 100 / total,
		done == total ? "\r\033[K" : "");
	fflush(stderr);
}
