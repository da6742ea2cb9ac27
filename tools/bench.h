/* SPDX-License-Identifier: LGPL-2.1-or-later OR MIT */
/* sva-bench: results, timing and reporting. */
#ifndef SVA_BENCH_H
#define SVA_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* One measured case: the subject against its baseline, same run. */
struct result {
	char group[24];		/* "copy", "fault", ... */
	char name[48];		/* "64KiB", "batch=1", ... */
	char subject[32];	/* what was measured */
	char baseline[32];	/* what it is compared with */
	double x;		/* numeric x-axis for plots (size, threads) */
	double subject_ns;	/* median time of one repetition */
	double baseline_ns;
	double ratio;		/* subject_ns / baseline_ns */
	double p50_ns, p99_ns;	/* subject's per-operation latency */
	double rate;		/* subject's work per second */
	char rate_unit[12];	/* "GiB/s", "pages/s", "ops/s" */
};

struct report {
	struct result *r;
	size_t n, cap;
};

uint64_t now_ns(void);
/* Sort @v (of @n) and return the @pct percentile. */
double percentile(double *v, size_t n, double pct);
struct result *report_add(struct report *rep);
void report_table(const struct report *rep, FILE *out);
void report_json(const struct report *rep, FILE *out, const char *backend,
		 bool quick);
/* PNG charts of each group into @dir with gnuplot; 0 or -errno. */
int report_plot(const struct report *rep, const char *dir);
/* @json (a libsva trace file) as a timeline PNG @png; 0 or -errno. */
int trace_plot(const char *json, const char *png);
/* An earlier --json run into @rep (group, case, ratio), its backend into
 * @backend; 0 or -errno, with a message. */
int baseline_load(const char *path, struct report *rep, char *backend,
		  size_t backend_len);
/* Print each ratio of @now against @then; returns how many grew by more
 * than @max_regress_pct percent (none counted when it is negative). */
unsigned int baseline_compare(const struct report *now,
			      const struct report *then, FILE *out,
			      double max_regress_pct);
void progress(const char *what, unsigned int done, unsigned int total);

/*
 * The kernel's test_hmm device as the migrate group's peer on kmod
 * (bench-peer-hmm.c): its fd, or -errno (-ENOENT: module not loaded;
 * SVA_BENCH_TEST_HMM names another device node). hmm_peer_migrate():
 * MIGRATE_TO_DEV (@to_dev) or MIGRATE_TO_SYS of @npages pages at @p,
 * @bounce (as big) taking the copy test_hmm reads back; 0, -errno, or
 * -EIO when not every page moved.
 */
int hmm_peer_open(void);
int hmm_peer_migrate(int fd, void *p, void *bounce, size_t npages,
		     bool to_dev);

#endif /* SVA_BENCH_H */
