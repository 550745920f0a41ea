/*
 * metrics_http.c - the daemon's Prometheus endpoint: libmicrohttpd on one
 * thread of its own (MHD_USE_AUTO_INTERNAL_THREAD) answers GET /metrics
 * with the text of metrics_node.c, rendered in that thread for each scrape;
 * nothing runs on the daemon's other threads, and no lock is held between
 * scrapes.  Few connections at once and a short idle time-out: a scraper
 * or two, not the world (the recommended address is loopback).
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "common/cx_util.h"
#include "daemon/metrics_http.h"
#include "daemon/metrics_node.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct cxfsd_metrics_http {
	const struct cxfsd *d;        /* constant */
	struct MHD_Daemon *mhd;       /* constant */
};

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								   MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_size, void **req_cls)
{
	struct cxfsd_metrics_http *h = cls;
	struct MHD_Response *r;
	enum MHD_Result rc;
	size_t len;
	char *text;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
	if (strcmp(url, "/") == 0)
		return answer_text(conn, MHD_HTTP_OK, "cxfsd: the metrics are at /metrics\n");
	if (strcmp(url, "/metrics") != 0)
		return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found; try /metrics\n");
	text = cxfsd_metrics_render(h->d, &len);
	if (!text)
		return answer_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

int cxfsd_metrics_http_start(const struct cxfsd *d, const char *addr,
			     struct cxfsd_metrics_http **out)
{
	struct cxfsd_metrics_http *h;
	struct sockaddr_storage ss;
	socklen_t len;
	/* epoll where there is: select would fail on a descriptor above 1023. */
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

	if (cx_parse_listen(addr, &ss, &len))
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->d = d;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, h,
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, 16u,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10u,
				  MHD_OPTION_END);
	if (!h->mhd) {
		free(h);
		return -EADDRINUSE;
	}
	*out = h;
	return 0;
}

void cxfsd_metrics_http_stop(struct cxfsd_metrics_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
