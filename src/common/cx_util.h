/*
 * cx_util.h - small helpers shared by the daemon and the tools (command-line
 * parsing), with no dependency on any layer.
 */
#ifndef CXFS_CX_UTIL_H
#define CXFS_CX_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Parse "123", "4K", "64M", "2G", "1T" (binary units); 0 on error or zero. */
uint64_t cx_parse_size(const char *s);

/*
 * Read or write exactly @len bytes of stream socket or pipe @fd, retrying
 * on EINTR and short transfers (writes never raise SIGPIPE on a socket).
 * 0, -ECONNRESET (the peer closed before @len bytes), or -errno.
 */
int cx_read_full(int fd, void *buf, size_t len);
int cx_write_full(int fd, const void *buf, size_t len);

/*
 * Parse a listening address "IPV4:PORT" or "[IPV6]:PORT" (numeric, port 1 to
 * 65535) into @ss and @len.  0 or -EINVAL.
 */
int cx_parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len);

#endif
