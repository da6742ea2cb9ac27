// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-bench --baseline FILE.json: each ratio of this run against the same
 * case of an earlier run (its --json output), for regression tracking.
 * Only ratios are compared: both runs timed their subject and baseline
 * side by side, so the comparison holds across machines' absolute speeds
 * as far as ratios do.
 *
 * The reader takes any JSON (RFC 8259) and keeps, from the objects of the
 * top-level "results" array, their "group", "case" and "ratio".
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

struct reader {
	const char *p, *end, *start;
	const char *path;
	int depth;
};

/* -EINVAL with where and why, once. */
static int bad(struct reader *r, const char *why)
{
	fprintf(stderr, "sva-bench: --baseline %s: byte %ld: %s\n", r->path,
		(long)(r->p - r->start), why);
	return -EINVAL;
}

static void skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				 *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* A string into @buf (truncated to @len - 1; NUL-terminated), escapes
 * decoded (\uXXXX outside ASCII kept as '?': names are ASCII). */
static int read_string(struct reader *r, char *buf, size_t len)
{
	size_t n = 0;
	char c;

	if (r->p >= r->end || *r->p != '"')
		return bad(r, "string expected");
	r->p++;
	while (r->p < r->end && *r->p != '"') {
		c = *r->p++;
		if ((unsigned char)c < 0x20)
			return bad(r, "control character in string");
		if (c == '\\') {
			if (r->p >= r->end)
				break;
			c = *r->p++;
			switch (c) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case '"': case '\\': case '/': break;
			case 'u':
				for (int i = 0; i < 4; i++, r->p++)
					if (r->p >= r->end || !isxdigit((unsigned char)*r->p))
						return bad(r, "bad \\u escape");
				c = '?';
				break;
			default:
				return bad(r, "bad escape");
			}
		}
		if (buf && n + 1 < len)
			buf[n++] = c;
	}
	if (r->p >= r->end)
		return bad(r, "unterminated string");
	r->p++;
	if (buf && len)
		buf[n] = 0;
	return 0;
}

static int read_number(struct reader *r, double *v)
{
	char tmp[64], *e;
	size_t n = 0;

	while (r->p + n < r->end && n < sizeof(tmp) - 1 &&
	       strchr("+-0123456789.eE", r->p[n]))
		n++;
	memcpy(tmp, r->p, n);
	tmp[n] = 0;
	*v = n ? strtod(tmp, &e) : 0;
	if (!n || *e || !isfinite(*v))
		return bad(r, "number expected");
	r->p += n;
	return 0;
}

static int skip_value(struct reader *r);

static int expect(struct reader *r, char c)
{
	skip_ws(r);
	if (r->p >= r->end || *r->p != c) {
		char why[32];

		snprintf(why, sizeof(why), "'%c' expected", c);
		return bad(r, why);
	}
	r->p++;
	return 0;
}

/* Walk an object or array; @member is called for each object member (key
 * read, value next) when not NULL, else values are skipped. */
static int walk(struct reader *r, bool object,
		int (*member)(struct reader *r, const char *key, void *ctx),
		void *ctx)
{
	char key[64];
	int err;

	if (++r->depth > 64)
		return bad(r, "nested too deep");
	r->p++;
	skip_ws(r);
	if (r->p < r->end && *r->p == (object ? '}' : ']')) {
		r->p++;
		r->depth--;
		return 0;
	}
	for (;;) {
		skip_ws(r);
		if (object) {
			err = read_string(r, key, sizeof(key));
			if (!err)
				err = expect(r, ':');
			if (!err) {
				skip_ws(r);
				err = member ? member(r, key, ctx) :
				      skip_value(r);
			}
		} else {
			err = member ? member(r, NULL, ctx) : skip_value(r);
		}
		if (err)
			return err;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		err = expect(r, object ? '}' : ']');
		r->depth--;
		return err;
	}
}

static int skip_value(struct reader *r)
{
	static const char *const words[] = { "true", "false", "null" };
	double v;

	skip_ws(r);
	if (r->p >= r->end)
		return bad(r, "value expected");
	if (*r->p == '{' || *r->p == '[')
		return walk(r, *r->p == '{', NULL, NULL);
	if (*r->p == '"')
		return read_string(r, NULL, 0);
	for (size_t i = 0; i < 3; i++) {
		size_t n = strlen(words[i]);

		if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, words[i], n)) {
			r->p += n;
			return 0;
		}
	}
	return read_number(r, &v);
}

struct load {
	struct report *rep;
	struct result *cur;
	bool tool_ok, has_results;
	char backend[16];
};

static int result_member(struct reader *r, const char *key, void *ctx)
{
	struct load *l = ctx;

	if (!strcmp(key, "group"))
		return read_string(r, l->cur->group, sizeof(l->cur->group));
	if (!strcmp(key, "case"))
		return read_string(r, l->cur->name, sizeof(l->cur->name));
	if (!strcmp(key, "ratio"))
		return read_number(r, &l->cur->ratio);
	return skip_value(r);
}

static int results_elem(struct reader *r, const char *key, void *ctx)
{
	struct load *l = ctx;
	int err;

	(void)key;
	if (r->p >= r->end || *r->p != '{')
		return bad(r, "a result object expected");
	l->cur = report_add(l->rep);
	err = walk(r, true, result_member, l);
	if (!err && (!l->cur->group[0] || !l->cur->name[0]))
		return bad(r, "a result without \"group\" or \"case\"");
	return err;
}

static int top_member(struct reader *r, const char *key, void *ctx)
{
	struct load *l = ctx;
	char tool[32];
	int err;

	if (!strcmp(key, "tool")) {
		err = read_string(r, tool, sizeof(tool));
		l->tool_ok = !err && !strcmp(tool, "sva-bench");
		return err;
	}
	if (!strcmp(key, "backend"))
		return read_string(r, l->backend, sizeof(l->backend));
	if (!strcmp(key, "results")) {
		if (r->p >= r->end || *r->p != '[')
			return bad(r, "\"results\" is no array");
		l->has_results = true;
		return walk(r, false, results_elem, l);
	}
	return skip_value(r);
}

int baseline_load(const char *path, struct report *rep, char *backend,
		  size_t backend_len)
{
	struct load l = { .rep = rep };
	struct reader r = { .path = path };
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int err;

	f = fopen(path, "r");
	if (!f) {
		err = -errno;
		fprintf(stderr, "sva-bench: --baseline %s: %s\n", path,
			strerror(-err));
		return err;
	}
	for (;;) {
		char *nb = realloc(buf, len + 65536);
		size_t got;

		if (!nb) {
			free(buf);
			fclose(f);
			return -ENOMEM;
		}
		buf = nb;
		got = fread(buf + len, 1, 65536, f);
		len += got;
		if (got < 65536)
			break;
	}
	fclose(f);
	r.start = r.p = buf;
	r.end = buf + len;
	skip_ws(&r);
	if (r.p >= r.end || *r.p != '{')
		err = bad(&r, "not a JSON object (sva-bench --json output?)");
	else
		err = walk(&r, true, top_member, &l);
	if (!err) {
		skip_ws(&r);
		if (r.p != r.end)
			err = bad(&r, "text after the JSON object");
	}
	if (!err && (!l.tool_ok || !l.has_results))
		err = bad(&r, "no \"tool\": \"sva-bench\" with \"results\" (not sva-bench --json output)");
	free(buf);
	if (!err && backend)
		snprintf(backend, backend_len, "%s", l.backend);
	return err;
}

static const struct result *find(const struct report *rep,
				 const struct result *like)
{
	for (size_t i = 0; i < rep->n; i++)
		if (!strcmp(rep->r[i].group, like->group) &&
		    !strcmp(rep->r[i].name, like->name))
			return &rep->r[i];
	return NULL;
}

unsigned int baseline_compare(const struct report *now,
			      const struct report *then, FILE *out,
			      double max_regress_pct)
{
	unsigned int worse = 0;
	double change;

	fprintf(out, "\n%-9s %-14s %9s %9s %9s  %s\n", "group", "case",
		"then", "now", "change", "(ratios; change = now / then, "
		"below 1: better than then)");
	for (size_t i = 0; i < now->n; i++) {
		const struct result *n = &now->r[i], *t = find(then, n);
		const char *mark = "";

		if (!t || t->ratio <= 0 || n->ratio <= 0) {
			fprintf(out, "%-9s %-14s %9s %8.2fx %9s  %s\n",
				n->group, n->name, "-", n->ratio, "-",
				t ? "no ratio" : "new");
			continue;
		}
		change = n->ratio / t->ratio;
		if (max_regress_pct >= 0 &&
		    change > 1.0 + max_regress_pct / 100.0) {
			mark = "  REGRESSED";
			worse++;
		}
		fprintf(out, "%-9s %-14s %8.2fx %8.2fx %8.2fx  %+.0f%%%s\n",
			n->group, n->name, t->ratio, n->ratio, change,
			(change - 1.0) * 100.0, mark);
	}
	for (size_t i = 0; i < then->n; i++)
		if (!find(now, &then->r[i]))
			fprintf(out, "%-9s %-14s %8.2fx %9s %9s  gone (not run now)\n",
				then->r[i].group, then->r[i].name,
				then->r[i].ratio, "-", "-");
	if (max_regress_pct >= 0)
		fprintf(out, "%u of %zu ratios regressed by more than %g%%\n",
			worse, now->n, max_regress_pct);
	return worse;
}
