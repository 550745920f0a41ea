/*
 * metrics_node.h - this node's metrics in the Prometheus text format, read
 * from every layer's counters (see metrics_node.c and docs/metrics.md);
 * served over HTTP (metrics_http.c) and by `cxfsctl metrics` (admin.c).
 */
#ifndef CXFS_METRICS_NODE_H
#define CXFS_METRICS_NODE_H

#include <stddef.h>

struct cxfsd;

/*
 * The text, NUL-terminated, and its length; NULL if memory ran out.  The
 * caller frees it.  Takes the layers' locks one at a time, briefly: call
 * it from a thread that may block (never a libuv loop thread).
 */
char *cxfsd_metrics_render(const struct cxfsd *d, size_t *len);

#endif
