/*
 * metrics.c - writes the Prometheus text exposition format (0.0.4): a
 * growing buffer, the escaping of HELP text and label values, and the
 * samples of a histogram (see metrics.h).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_hist.h"
#include "daemon/metrics.h"

#define METRICS_COMMON_MAX 4

struct metrics_out {
	char *buf;                    /* the text, NUL-terminated */
	size_t len, cap;
	bool failed;                  /* memory ran out: the text is lost */
	struct metrics_label common[METRICS_COMMON_MAX];  /* strings owned */
	size_t ncommon;
};

static bool grow(struct metrics_out *m, size_t more)
{
	size_t cap = m->cap ? m->cap : 4096;
	char *b;

	if (m->failed)
		return false;
	while (cap - m->len <= more)
		cap *= 2;
	if (cap == m->cap)
		return true;
	b = realloc(m->buf, cap);
	if (!b) {
		m->failed = true;
		return false;
	}
	m->buf = b;
	m->cap = cap;
	return true;
}

static void put(struct metrics_out *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct metrics_out *m, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !grow(m, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(m->buf + m->len, m->cap - m->len, fmt, ap);
	va_end(ap);
	m->len += (size_t)n;
}

/* @s escaped: backslash and newline always, the double quote in label values. */
static void put_escaped(struct metrics_out *m, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			put(m, "\\\\");
		else if (*s == '\n')
			put(m, "\\n");
		else if (*s == '"' && quote)
			put(m, "\\\"");
		else
			put(m, "%c", *s);
	}
}

/* A number of seconds (or a bound) into @b, without trailing zeros: 0.00005, 2.5, 10. */
static void fmt_seconds(char *b, size_t size, double v)
{
	char *e;

	snprintf(b, size, "%.9f", v);
	e = b + strlen(b) - 1;
	while (e > b && *e == '0')
		*e-- = '\0';
	if (*e == '.')
		*e = '\0';
}

static void put_seconds(struct metrics_out *m, double v)
{
	char b[64];

	fmt_seconds(b, sizeof(b), v);
	put(m, "%s", b);
}

struct metrics_out *metrics_new(const struct metrics_label *common, size_t ncommon)
{
	struct metrics_out *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	for (size_t i = 0; i < ncommon && i < METRICS_COMMON_MAX; i++) {
		m->common[i].name = strdup(common[i].name);
		m->common[i].value = strdup(common[i].value ? common[i].value : "");
		m->ncommon++;
		if (!m->common[i].name || !m->common[i].value) {
			metrics_free(m);
			return NULL;
		}
	}
	if (!grow(m, 0)) {
		metrics_free(m);
		return NULL;
	}
	m->buf[0] = '\0';
	return m;
}

char *metrics_take(struct metrics_out *m, size_t *len)
{
	char *t = m->failed ? NULL : m->buf;

	*len = m->failed ? 0 : m->len;
	if (t)
		m->buf = NULL;
	metrics_free(m);
	return t;
}

void metrics_free(struct metrics_out *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->ncommon; i++) {
		free((char *)m->common[i].name);
		free((char *)m->common[i].value);
	}
	free(m->buf);
	free(m);
}

void metrics_family(struct metrics_out *m, const char *name, const char *type, const char *help)
{
	put(m, "# HELP %s ", name);
	put_escaped(m, help, false);
	put(m, "\n# TYPE %s %s\n", name, type);
}

/* name{common..., l..., extra} with @extra (may be NULL) a last label, then a space. */
static void put_head(struct metrics_out *m, const char *name, const char *suffix,
		     const struct metrics_label *l, size_t n, const struct metrics_label *extra)
{
	bool first = true;

	put(m, "%s%s", name, suffix);
	for (size_t i = 0; i < m->ncommon + n + (extra ? 1 : 0); i++) {
		const struct metrics_label *x = i < m->ncommon ? &m->common[i] :
						i < m->ncommon + n ? &l[i - m->ncommon] : extra;

		put(m, "%s%s=\"", first ? "{" : ",", x->name);
		put_escaped(m, x->value, true);
		put(m, "\"");
		first = false;
	}
	put(m, first ? " " : "} ");
}

void metrics_u64(struct metrics_out *m, const char *name, const struct metrics_label *l, size_t n,
		 uint64_t v)
{
	put_head(m, name, "", l, n, NULL);
	put(m, "%llu\n", (unsigned long long)v);
}

void metrics_f64(struct metrics_out *m, const char *name, const struct metrics_label *l, size_t n,
		 double v)
{
	put_head(m, name, "", l, n, NULL);
	put_seconds(m, v);
	put(m, "\n");
}

void metrics_hist(struct metrics_out *m, const char *name, const struct metrics_label *l,
		  size_t n, const struct cx_hist_snap *h)
{
	uint64_t cum = 0;
	char le[64];

	for (unsigned i = 0; i <= CX_HIST_NBOUNDS; i++) {
		struct metrics_label x = { "le", le };

		cum += h->bucket[i];
		if (i == CX_HIST_NBOUNDS)
			snprintf(le, sizeof(le), "+Inf");
		else
			fmt_seconds(le, sizeof(le), cx_hist_bound(i));
		put_head(m, name, "_bucket", l, n, &x);
		put(m, "%llu\n", (unsigned long long)cum);
	}
	put_head(m, name, "_sum", l, n, NULL);
	put_seconds(m, (double)h->sum_ns / 1e9);
	put(m, "\n");
	put_head(m, name, "_count", l, n, NULL);
	put(m, "%llu\n", (unsigned long long)cum);
}
