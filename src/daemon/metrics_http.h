/*
 * metrics_http.h - the daemon's Prometheus endpoint (see metrics_http.c).
 */
#ifndef CXFS_METRICS_HTTP_H
#define CXFS_METRICS_HTTP_H

struct cxfsd;
struct cxfsd_metrics_http;

/*
 * Serve GET /metrics for @d on @addr ("IPV4:PORT" or "[IPV6]:PORT") until
 * cxfsd_metrics_http_stop().  -EINVAL for a bad address, -EADDRINUSE if it
 * cannot listen there.
 */
int cxfsd_metrics_http_start(const struct cxfsd *d, const char *addr,
			     struct cxfsd_metrics_http **out);
void cxfsd_metrics_http_stop(struct cxfsd_metrics_http *h);

#endif
