/*
 * metrics.h - a text in the Prometheus exposition format (version 0.0.4)
 * being written: families (HELP and TYPE lines), samples with labels, and
 * histograms (cumulative buckets up to +Inf, _sum in seconds, _count).  It
 * knows nothing of the layers; src/daemon/metrics_node.c fills it.
 */
#ifndef CXFS_METRICS_H
#define CXFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct cx_hist_snap;
struct metrics_out;

struct metrics_label {
	const char *name;             /* [a-zA-Z_][a-zA-Z0-9_]* */
	const char *value;            /* any UTF-8; escaped on output */
};

/*
 * A new text whose every sample carries the labels @common (copied), first.
 * NULL if memory runs out.
 */
struct metrics_out *metrics_new(const struct metrics_label *common, size_t ncommon);
/*
 * The text written, NUL-terminated, and its length; NULL if memory ran out.
 * Frees @m; the caller frees the text.
 */
char *metrics_take(struct metrics_out *m, size_t *len);
void metrics_free(struct metrics_out *m);

/*
 * Start family @name of @type ("counter", "gauge", "histogram") with @help.
 * Its samples follow, before the next family.
 */
void metrics_family(struct metrics_out *m, const char *name, const char *type, const char *help);
/* One sample of the family just started, with @n labels @l after the common ones. */
void metrics_u64(struct metrics_out *m, const char *name, const struct metrics_label *l, size_t n,
		 uint64_t v);
void metrics_f64(struct metrics_out *m, const char *name, const struct metrics_label *l, size_t n,
		 double v);
/* The samples of histogram @name (a family of type "histogram") from @h. */
void metrics_hist(struct metrics_out *m, const char *name, const struct metrics_label *l,
		  size_t n, const struct cx_hist_snap *h);

#endif
