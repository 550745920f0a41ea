/*
 * hsm_log.c - the log of cxfs-hsmd (hsm_log.h): time-stamped lines to a
 * file or to standard error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hsm/hsm_log.h"

#define HLOG_LINE_MAX 1024   /* bytes of one line, longer ones are cut */

static pthread_mutex_t hlog_mutex = PTHREAD_MUTEX_INITIALIZER;
static int hlog_fd = STDERR_FILENO;  /* protected by hlog_mutex */
static char hlog_path[4096];         /* "" for standard error; set once by hlog_open */
static bool hlog_verbose;            /* set once by hlog_open */

int hlog_open(const char *path, bool verbose)
{
	hlog_verbose = verbose;
	if (!path)
		return 0;
	if (strlen(path) >= sizeof(hlog_path))
		return -ENAMETOOLONG;
	snprintf(hlog_path, sizeof(hlog_path), "%s", path);
	return hlog_reopen();
}

int hlog_reopen(void)
{
	int fd, old;

	if (!hlog_path[0])
		return 0;
	fd = open(hlog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	pthread_mutex_lock(&hlog_mutex);
	old = hlog_fd;
	hlog_fd = fd;
	pthread_mutex_unlock(&hlog_mutex);
	if (old != STDERR_FILENO)
		close(old);
	return 0;
}

static void hlog__v(const char *fmt, va_list ap)
{
	char line[HLOG_LINE_MAX];
	struct timeval tv;
	struct tm tm;
	size_t n;
	int k;

	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ld cxfs-hsmd[%ld]: ",
		     (long)(tv.tv_usec / 1000), (long)getpid());
	n += k > 0 ? (size_t)k : 0;
	if (n < sizeof(line)) {
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		n += k > 0 ? (size_t)k : 0;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	pthread_mutex_lock(&hlog_mutex);
	if (write(hlog_fd, line, n) < 0) {
		/* Nowhere else to say it. */
	}
	pthread_mutex_unlock(&hlog_mutex);
}

void hlog(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hlog__v(fmt, ap);
	va_end(ap);
}

void hlog_debug(const char *fmt, ...)
{
	va_list ap;

	if (!hlog_verbose)
		return;
	va_start(ap, fmt);
	hlog__v(fmt, ap);
	va_end(ap);
}
