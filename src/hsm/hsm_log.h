/*
 * hsm_log.h - the log of cxfs-hsmd: one line per message, each with a time
 * stamp (to the millisecond) and the daemon's PID, to a file opened for
 * appending (cxfs-hsmd --log) or to standard error.  Thread-safe: each line
 * is one write(2) on an O_APPEND descriptor.
 */
#ifndef CXFS_HSM_LOG_H
#define CXFS_HSM_LOG_H

#include <stdbool.h>

/* Log to @path (NULL: standard error); @verbose lets hlog_debug() through.  0 or -errno. */
int hlog_open(const char *path, bool verbose);
/* Open the file again (after it was rotated: SIGHUP).  0 or -errno. */
int hlog_reopen(void);

__attribute__((format(printf, 1, 2))) void hlog(const char *fmt, ...);
/* Only with -v. */
__attribute__((format(printf, 1, 2))) void hlog_debug(const char *fmt, ...);

#endif
