/*
 * posix_check.c: a battery of POSIX behaviour checks run inside one
 * directory, expecting exactly the results (and errno values) that Linux
 * ext4 gives.  The integration tests run it through a cxfs mount; running it
 * on a local ext4 directory first is how the checker itself is checked: it
 * must pass 100% there.
 *
 *   cxfs-posix-check [--keep] [--only SECTION[,SECTION...]] [--list] DIR
 *
 * The program creates DIR/posix.<pid>, chdirs into it and uses relative
 * paths only, so that the unprivileged children of the permission checks
 * need no search permission on DIR's ancestors (a mount point under a 0700
 * temporary directory).  Every check prints one line:
 *
 *   ok   <section>: <what>
 *   FAIL <section>: <what>: expected <x>, got <y>
 *   skip <section>: <what>: <why>          (counted as passed)
 *
 * and the last line is exactly "N passed, M failed".  The exit status is 1
 * if any check failed, 2 on a usage or setup error.
 *
 * Organisation: check primitives; file helpers; one function per section
 * (open flags, data, sparse files, truncate, namespace operations, special
 * files, attributes and times, xattrs, fallocate and lseek, readdir, statvfs,
 * locks, O_DIRECT and mmap, permissions as unprivileged users); the section
 * table; main.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define KiB ((off_t)1024)
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

/* ------------------------------------------------------------------ */
/* Check primitives.                                                   */
/* ------------------------------------------------------------------ */

static unsigned n_passed;        /* checks that passed or were skipped */
static unsigned n_failed;        /* checks that failed */
static const char *section = ""; /* name of the running section */
static int is_root;              /* euid 0: chown, mknod, permission checks */

static const char *errname(int e)
{
	const char *n;

	if (e == 0)
		return "0";
	n = strerrorname_np(e);
	return n ? n : "E?";
}

/* Record one check; fmt describes the failure (expected vs got). */
static int check(int ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		n_passed++;
		printf("ok   %s: %s\n", section, what);
		return 1;
	}
	n_failed++;
	printf("FAIL %s: %s: ", section, what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return 0;
}

static void skip(const char *what, const char *why)
{
	n_passed++;
	printf("skip %s: %s: %s\n", section, what, why);
}

/* The call returned rc with errno; it should have succeeded (rc >= 0). */
static int check_ok(long rc, const char *what)
{
	int e = errno;

	return check(rc >= 0, what, "expected success, got rc=%ld errno=%s",
		     rc, errname(e));
}

/* The call should have failed with exactly errno want. */
static int check_err(long rc, int want, const char *what)
{
	int e = errno;

	if (rc >= 0)
		return check(0, what, "expected -1/%s, got rc=%ld (success)",
			     errname(want), rc);
	return check(e == want, what, "expected -1/%s, got -1/%s",
		     errname(want), errname(e));
}

/* A child's result (0 or an errno) should equal want. */
static int check_code(int got, int want, const char *what)
{
	return check(got == want, what, "expected %s, got %s%s", errname(want),
		     got >= 240 ? "child setup failure " : "",
		     got >= 240 ? "" : errname(got));
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

/* Sleep long enough for the coarse kernel clock to move on. */
static void tick(void)
{
	struct timespec t = { 0, 30 * 1000 * 1000 };

	nanosleep(&t, NULL);
}

/* ------------------------------------------------------------------ */
/* File helpers.                                                       */
/* ------------------------------------------------------------------ */

/* The byte expected at file offset off for a pattern seeded with seed. */
static uint8_t pat(uint64_t off, unsigned seed)
{
	uint64_t x = (off >> 9) * 0x9e3779b97f4a7c15ULL + seed;

	return (uint8_t)((x >> 29) ^ off ^ (off >> 8));
}

static void fill(uint8_t *buf, size_t n, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = pat(off + i, seed);
}

/* Index of the first byte of buf that breaks the pattern, or -1. */
static long mismatch(const uint8_t *buf, size_t n, uint64_t off, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != pat(off + i, seed))
			return (long)i;
	return -1;
}

static long nonzero(const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i])
			return (long)i;
	return -1;
}

/* pwrite all of buf; returns 0 or -1 with errno. */
static int pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;

	while (n) {
		ssize_t w = pwrite(fd, p, n, off);

		if (w < 0)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* pread until n bytes or EOF; returns the count or -1 with errno. */
static ssize_t pread_all(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, off + (off_t)got);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Create path (truncating) holding size pattern bytes; 0 or -1. */
static int make_file(const char *path, size_t size, unsigned seed)
{
	uint8_t *buf = malloc(size ? size : 1);
	int fd, rc = -1;

	if (!buf)
		return -1;
	fill(buf, size, 0, seed);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd >= 0) {
		rc = pwrite_all(fd, buf, size, 0);
		if (close(fd) < 0)
			rc = -1;
	}
	free(buf);
	return rc;
}

/* Does path hold exactly size pattern bytes of seed? */
static int file_is(const char *path, size_t size, unsigned seed)
{
	uint8_t *buf = malloc(size + 1);
	ssize_t r = -1;
	int fd, ok = 0;

	if (!buf)
		return 0;
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		r = pread_all(fd, buf, size + 1, 0);
		close(fd);
	}
	if (r == (ssize_t)size && mismatch(buf, size, 0, seed) < 0)
		ok = 1;
	free(buf);
	return ok;
}

/* Read a whole small file into buf (NUL-terminated); returns length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t r;

	if (fd < 0)
		return -1;
	r = pread_all(fd, buf, cap - 1, 0);
	close(fd);
	if (r >= 0)
		buf[r] = 0;
	return r;
}

static int put(const char *path, const char *s)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	int rc;

	if (fd < 0)
		return -1;
	rc = pwrite_all(fd, s, strlen(s), 0);
	close(fd);
	return rc;
}

static int rm_cb(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static int rm_rf(const char *path)
{
	return nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return (mode_t)-1;
	return st.st_mode;
}

/* ------------------------------------------------------------------ */
/* Sections.                                                           */
/* ------------------------------------------------------------------ */

static void t_open(void)
{
	char buf[64];
	struct stat st;
	int fd;

	fd = open("f", O_CREAT | O_EXCL | O_RDWR, 0640);
	check_ok(fd, "O_CREAT|O_EXCL creates a new file");
	if (fd >= 0)
		close(fd);
	check(mode_of("f") == (S_IFREG | 0640), "O_CREAT mode honoured (umask 022)",
	      "expected 0100640, got 0%o", (unsigned)mode_of("f"));
	check_err(open("f", O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST,
		  "O_CREAT|O_EXCL on an existing file -> EEXIST");
	check_err(open("f", O_RDONLY | O_DIRECTORY), ENOTDIR,
		  "O_DIRECTORY on a file -> ENOTDIR");
	check_err(open("f/", O_RDONLY), ENOTDIR, "a file with a trailing slash -> ENOTDIR");
	check_err(open("missing", O_RDONLY), ENOENT, "open a missing name -> ENOENT");
	check_err(open("nodir/x", O_CREAT | O_RDWR, 0644), ENOENT,
		  "O_CREAT in a missing directory -> ENOENT");
	check_err(open("f/x", O_CREAT | O_RDWR, 0644), ENOTDIR,
		  "O_CREAT under a file -> ENOTDIR");
	mkdir("d", 0755);
	check_err(open("d", O_WRONLY), EISDIR, "open a directory for writing -> EISDIR");
	check_err(open("d", O_CREAT | O_WRONLY, 0644), EISDIR,
		  "O_CREAT|O_WRONLY on a directory -> EISDIR");
	fd = open("d", O_RDONLY | O_DIRECTORY);
	check_ok(fd, "O_DIRECTORY on a directory");
	if (fd >= 0)
		close(fd);
	symlink("f", "lnk");
	check_err(open("lnk", O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST,
		  "O_CREAT|O_EXCL on a symlink -> EEXIST");
	check_err(open("lnk", O_RDONLY | O_NOFOLLOW), ELOOP, "O_NOFOLLOW on a symlink -> ELOOP");

	/* O_TRUNC */
	make_file("t", 10000, 1);
	fd = open("t", O_WRONLY | O_TRUNC);
	check_ok(fd, "open O_TRUNC");
	if (fd >= 0) {
		fstat(fd, &st);
		check(st.st_size == 0, "O_TRUNC empties the file", "expected size 0, got %lld",
		      (long long)st.st_size);
		close(fd);
	}
	make_file("t", 100, 1);
	fd = open("t", O_RDONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	stat("t", &st);
	check(st.st_size == 0, "O_RDONLY|O_TRUNC truncates too (Linux)",
	      "expected size 0, got %lld", (long long)st.st_size);

	/* O_APPEND */
	put("a", "abc");
	fd = open("a", O_WRONLY | O_APPEND);
	if (check_ok(fd, "open O_APPEND")) {
		lseek(fd, 0, SEEK_SET);
		check(write(fd, "def", 3) == 3, "write with O_APPEND", "short write");
		check(lseek(fd, 0, SEEK_CUR) == 6, "O_APPEND offset after write is EOF",
		      "expected 6, got %lld", (long long)lseek(fd, 0, SEEK_CUR));
		close(fd);
	}
	slurp("a", buf, sizeof buf);
	check(strcmp(buf, "abcdef") == 0, "O_APPEND appends despite lseek(0)",
	      "expected \"abcdef\", got \"%s\"", buf);

	fd = open("a", O_RDONLY);
	check_err(write(fd, "x", 1), EBADF, "write on an O_RDONLY descriptor -> EBADF");
	close(fd);
	fd = open("a", O_WRONLY);
	check_err(read(fd, buf, 1), EBADF, "read on an O_WRONLY descriptor -> EBADF");
	close(fd);
}

static void t_rw(void)
{
	const size_t n = 3 * (size_t)MiB + 12345;
	uint8_t *buf = malloc(n), *rd = malloc(n);
	struct stat st;
	ssize_t r;
	long bad;
	int fd, fd2;

	if (!buf || !rd) {
		check(0, "allocate buffers", "out of memory");
		free(buf);
		free(rd);
		return;
	}
	fd = open("data", O_CREAT | O_RDWR | O_TRUNC, 0644);
	check_ok(fd, "create data file");
	fill(buf, n, 0, 7);
	/* Sequential writes in odd-sized pieces. */
	for (size_t off = 0; off < n;) {
		size_t len = n - off < 77777 ? n - off : 77777;
		ssize_t w = write(fd, buf + off, len);

		if (w <= 0) {
			check(0, "sequential odd-size writes", "write at %zu: %s", off,
			      errname(errno));
			break;
		}
		off += (size_t)w;
	}
	fstat(fd, &st);
	check(st.st_size == (off_t)n, "size after sequential writes",
	      "expected %zu, got %lld", n, (long long)st.st_size);
	lseek(fd, 0, SEEK_SET);
	r = 0;
	for (size_t off = 0; off < n;) {
		ssize_t g = read(fd, rd + off, 65536 + 13);

		if (g <= 0)
			break;
		off += (size_t)g;
		r = (ssize_t)off;
	}
	bad = mismatch(rd, n, 0, 7);
	check(r == (ssize_t)n && bad < 0, "read(2) returns the bytes written",
	      "read %zd of %zu bytes, first bad byte at %ld", r, n, bad);
	check(read(fd, rd, 10) == 0, "read at EOF returns 0", "non-zero");
	r = pread(fd, rd, 100, (off_t)n - 40);
	check(r == 40, "short pread across EOF", "expected 40, got %zd", r);
	check(pread(fd, rd, 100, (off_t)n + 1000) == 0, "pread past EOF returns 0", "non-zero");

	/* pwrite in the middle, across a 1 MiB boundary. */
	fill(buf, 8192, MiB - 4096, 9);
	check_ok(pwrite_all(fd, buf, 8192, MiB - 4096), "pwrite across 1 MiB boundary");
	r = pread_all(fd, rd, 3 * 4096 + 8192, MiB - 4096 * 4);
	bad = -1;
	if (r == 3 * 4096 + 8192) {
		if (mismatch(rd, 3 * 4096, MiB - 4096 * 4, 7) >= 0 ||
		    mismatch(rd + 3 * 4096, 8192, MiB - 4096, 9) >= 0)
			bad = 1;
	}
	check(r == 3 * 4096 + 8192 && bad < 0, "pread sees pwrite and old data around it",
	      "bytes differ (r=%zd)", r);
	check(lseek(fd, 0, SEEK_CUR) == (off_t)n, "pread/pwrite leave the offset alone",
	      "offset %lld", (long long)lseek(fd, 0, SEEK_CUR));

	/* A second open file description sees the data at once. */
	fd2 = open("data", O_RDONLY);
	fill(buf, 100, 500, 11);
	pwrite_all(fd, buf, 100, 500);
	r = pread_all(fd2, rd, 100, 500);
	check(r == 100 && mismatch(rd, 100, 500, 11) < 0,
	      "a second descriptor reads a write at once", "stale data");
	close(fd2);

	/* Unlinked but open: still readable and writable. */
	check_ok(unlink("data"), "unlink an open file");
	fstat(fd, &st);
	check(st.st_nlink == 0, "fstat of an unlinked open file: nlink 0",
	      "nlink %lu", (unsigned long)st.st_nlink);
	r = pread_all(fd, rd, 4096, 2 * MiB);
	check(r == 4096 && mismatch(rd, 4096, 2 * MiB, 7) < 0,
	      "read an unlinked open file", "bytes differ (r=%zd)", r);
	check_ok(pwrite_all(fd, buf, 100, 0), "write an unlinked open file");
	close(fd);

	/* Small writes that grow a file byte by byte. */
	fd = open("small", O_CREAT | O_RDWR | O_TRUNC, 0644);
	for (int i = 0; i < 300; i++) {
		uint8_t c = pat((uint64_t)i, 3);

		if (write(fd, &c, 1) != 1)
			break;
	}
	close(fd);
	check(file_is("small", 300, 3), "300 one-byte writes", "content differs");
	free(buf);
	free(rd);
}

static void t_sparse(void)
{
	const off_t far = 5 * GiB;
	uint8_t buf[65536], rd[65536];
	struct stat st;
	ssize_t r;
	int fd;

	fd = open("sparse", O_CREAT | O_RDWR | O_TRUNC, 0644);
	if (!check_ok(fd, "create sparse file"))
		return;
	fill(buf, 4096, MiB, 5);
	check_ok(pwrite_all(fd, buf, 4096, MiB), "pwrite at 1 MiB into an empty file");
	r = pread_all(fd, rd, 65536, 0);
	check(r == 65536 && nonzero(rd, 65536) < 0, "hole before data reads zeros",
	      "r=%zd first non-zero %ld", r, nonzero(rd, (size_t)(r > 0 ? r : 0)));
	r = pread_all(fd, rd, 65536, MiB - 61440);
	check(r == 65536 && nonzero(rd, 61440) < 0 && mismatch(rd + 61440, 4096, MiB, 5) < 0,
	      "hole then data in one read", "bytes differ");
	fill(buf, 65536, far, 6);
	check_ok(pwrite_all(fd, buf, 65536, far), "pwrite 64 KiB at 5 GiB");
	fsync(fd);
	fstat(fd, &st);
	check(st.st_size == far + 65536, "size is 5 GiB + 64 KiB",
	      "expected %lld, got %lld", (long long)(far + 65536), (long long)st.st_size);
	check(st.st_blocks * 512 < 64 * MiB, "st_blocks small for a sparse file",
	      "st_blocks=%lld (%lld MiB)", (long long)st.st_blocks,
	      (long long)(st.st_blocks * 512 / MiB));
	check(st.st_blocks * 512 >= 65536, "st_blocks counts the written data",
	      "st_blocks=%lld", (long long)st.st_blocks);
	r = pread_all(fd, rd, 65536, 3 * GiB);
	check(r == 65536 && nonzero(rd, 65536) < 0, "hole at 3 GiB reads zeros", "bytes differ");
	r = pread_all(fd, rd, 65536, 4 * GiB - 32768);
	check(r == 65536 && nonzero(rd, 65536) < 0, "hole across 4 GiB reads zeros",
	      "bytes differ");
	r = pread_all(fd, rd, 65536, far);
	check(r == 65536 && mismatch(rd, 65536, far, 6) < 0, "data at 5 GiB reads back",
	      "r=%zd first bad %ld", r, mismatch(rd, (size_t)(r > 0 ? r : 0), far, 6));
	r = pread_all(fd, rd, 4096, MiB);
	check(r == 4096 && mismatch(rd, 4096, MiB, 5) < 0, "data at 1 MiB still intact",
	      "bytes differ");
	close(fd);
	unlink("sparse");
}

static void t_truncate(void)
{
	uint8_t rd[16384];
	struct stat st;
	ssize_t r;
	int fd;

	make_file("tr", 16384, 4);
	check_ok(truncate("tr", 100), "truncate shrink to 100");
	stat("tr", &st);
	check(st.st_size == 100, "size after shrink", "got %lld", (long long)st.st_size);
	check_ok(truncate("tr", 16384), "truncate grow to 16384");
	fd = open("tr", O_RDONLY);
	r = pread_all(fd, rd, sizeof rd, 0);
	check(r == 16384 && mismatch(rd, 100, 0, 4) < 0 && nonzero(rd + 100, 16284) < 0,
	      "regrown region reads zeros, head intact", "r=%zd", r);
	close(fd);

	/* Shrink to a non-block boundary, then write past the end: the gap
	 * between old EOF and the write must be zero, not stale data. */
	make_file("tr2", 16384, 4);
	truncate("tr2", 5000);
	fd = open("tr2", O_RDWR);
	pwrite_all(fd, "Z", 1, 12000);
	r = pread_all(fd, rd, sizeof rd, 0);
	check(r == 12001 && mismatch(rd, 5000, 0, 4) < 0 && nonzero(rd + 5000, 7000) < 0 &&
		      rd[12000] == 'Z',
	      "stale bytes beyond a shrink stay zero after a later write", "r=%zd", r);

	check_ok(ftruncate(fd, 3), "ftruncate shrink");
	check_ok(ftruncate(fd, 2 * MiB), "ftruncate grow to 2 MiB");
	fstat(fd, &st);
	check(st.st_size == 2 * MiB, "size after ftruncate grow", "got %lld",
	      (long long)st.st_size);
	r = pread_all(fd, rd, sizeof rd, MiB);
	check(r == (ssize_t)sizeof rd && nonzero(rd, sizeof rd) < 0,
	      "ftruncate-grown region reads zeros", "bytes differ");
	check_err(ftruncate(fd, -1), EINVAL, "ftruncate to a negative size -> EINVAL");
	close(fd);
	fd = open("tr2", O_RDONLY);
	check_err(ftruncate(fd, 0), EINVAL, "ftruncate on an O_RDONLY descriptor -> EINVAL");
	close(fd);
	mkdir("dd", 0755);
	check_err(truncate("dd", 0), EISDIR, "truncate a directory -> EISDIR");
	check_err(truncate("nothere", 0), ENOENT, "truncate a missing file -> ENOENT");

	/* ext4 with 4 KiB blocks: files end at 2^32 - 1 blocks. */
	check_err(truncate("tr2", (off_t)1 << 45), EFBIG, "truncate past ext4's largest file -> EFBIG");
	fd = open("tr2", O_WRONLY);
	check_err(pwrite(fd, "x", 1, (off_t)1 << 45), EFBIG, "write past the largest file -> EFBIG");
	close(fd);
}

static void t_unlink(void)
{
	struct stat st;

	put("u", "x");
	check_ok(unlink("u"), "unlink a file");
	check_err(stat("u", &st), ENOENT, "stat after unlink -> ENOENT");
	check_err(unlink("u"), ENOENT, "unlink a missing name -> ENOENT");
	mkdir("ud", 0755);
	check_err(unlink("ud"), EISDIR, "unlink a directory -> EISDIR");
	put("uf", "x");
	check_err(unlink("uf/x"), ENOTDIR, "unlink under a file -> ENOTDIR");
	symlink("uf", "ul");
	check_ok(unlink("ul"), "unlink a symlink");
	check(stat("uf", &st) == 0, "unlinking a symlink leaves its target", "target gone");
}

static void t_rmdir(void)
{
	struct stat st;

	mkdir("r", 0755);
	mkdir("r/sub", 0755);
	check_err(rmdir("r"), ENOTEMPTY, "rmdir a non-empty directory -> ENOTEMPTY");
	put("r/f", "x");
	check_err(rmdir("r/f"), ENOTDIR, "rmdir a file -> ENOTDIR");
	check_err(rmdir("r/sub/."), EINVAL, "rmdir \"dir/.\" -> EINVAL");
	check_err(rmdir("."), EINVAL, "rmdir \".\" -> EINVAL");
	check_err(rmdir("r/sub/.."), ENOTEMPTY, "rmdir \"dir/..\" -> ENOTEMPTY");
	check_err(rmdir("missing"), ENOENT, "rmdir a missing name -> ENOENT");
	symlink("r/sub", "rl");
	check_err(rmdir("rl"), ENOTDIR, "rmdir a symlink to a directory -> ENOTDIR");
	check_ok(rmdir("r/sub"), "rmdir an empty directory");
	check_err(stat("r/sub", &st), ENOENT, "stat after rmdir -> ENOENT");
	unlink("r/f");
	check_ok(rmdir("r"), "rmdir once emptied");
}

/* rmdir of a mount point: EBUSY, the only EBUSY ext4 gives for rmdir. */
static void t_rmdir_busy(const char *top)
{
	struct stat a, b;
	char up[PATH_MAX];

	snprintf(up, sizeof up, "%s/..", top);
	if (stat(top, &a) < 0 || stat(up, &b) < 0 || a.st_dev == b.st_dev) {
		skip("rmdir a mount point -> EBUSY", "the directory is not a mount point");
		return;
	}
	check_err(rmdir(top), EBUSY, "rmdir a mount point -> EBUSY");
}

static void t_mkdir(void)
{
	struct stat st;

	check_ok(mkdir("m", 0750), "mkdir");
	stat("m", &st);
	check(st.st_mode == (S_IFDIR | 0750), "mkdir mode", "got 0%o", (unsigned)st.st_mode);
	check(st.st_nlink == 2, "new directory has nlink 2", "got %lu",
	      (unsigned long)st.st_nlink);
	check_err(mkdir("m", 0755), EEXIST, "mkdir an existing directory -> EEXIST");
	put("mf", "x");
	check_err(mkdir("mf", 0755), EEXIST, "mkdir over a file -> EEXIST");
	symlink("nowhere", "ml");
	check_err(mkdir("ml", 0755), EEXIST, "mkdir over a dangling symlink -> EEXIST");
	check_err(mkdir("nodir/x", 0755), ENOENT, "mkdir in a missing directory -> ENOENT");
	check_err(mkdir("mf/x", 0755), ENOTDIR, "mkdir under a file -> ENOTDIR");
	check_ok(mkdir("m/deep", 0755), "mkdir nested");
	check_ok(mkdir("m/deep/er/", 0755) == 0 ? 0 : -1, "mkdir with a trailing slash");
}

static void t_link(void)
{
	struct stat a, b;

	make_file("l1", 5000, 8);
	stat("l1", &a);
	tick();
	check_ok(link("l1", "l2"), "link");
	stat("l1", &b);
	check(b.st_nlink == 2, "nlink 2 after link", "got %lu", (unsigned long)b.st_nlink);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "link changes the ctime", "unchanged");
	stat("l2", &a);
	check(a.st_ino == b.st_ino, "both names have the same inode", "%llu vs %llu",
	      (unsigned long long)a.st_ino, (unsigned long long)b.st_ino);
	check(file_is("l2", 5000, 8), "data through the new name", "differs");
	check_err(link("l1", "l2"), EEXIST, "link over an existing name -> EEXIST");
	mkdir("ld", 0755);
	check_err(link("ld", "ld2"), EPERM, "link a directory -> EPERM");
	check_err(link("missing", "l3"), ENOENT, "link a missing file -> ENOENT");
	unlink("l1");
	stat("l2", &a);
	check(a.st_nlink == 1, "nlink 1 after unlinking one name", "got %lu",
	      (unsigned long)a.st_nlink);
	check(file_is("l2", 5000, 8), "data survives the unlink of the other name", "differs");
	mkdir("ld/sub", 0755);
	check_ok(link("l2", "ld/sub/l4"), "link into another directory");
	stat("l2", &a);
	check(a.st_nlink == 2, "nlink 2 across directories", "got %lu",
	      (unsigned long)a.st_nlink);
}

static void t_symlink(void)
{
	char buf[PATH_MAX];
	struct stat st;
	ssize_t r;

	put("target", "hello");
	check_ok(symlink("target", "s1"), "symlink");
	r = readlink("s1", buf, sizeof buf);
	check(r == 6 && memcmp(buf, "target", 6) == 0, "readlink returns the target",
	      "r=%zd", r);
	lstat("s1", &st);
	check(S_ISLNK(st.st_mode) && st.st_size == 6, "lstat: a symlink of size 6",
	      "mode 0%o size %lld", (unsigned)st.st_mode, (long long)st.st_size);
	slurp("s1", buf, sizeof buf);
	check(strcmp(buf, "hello") == 0, "open follows the symlink", "got \"%s\"", buf);
	r = readlink("s1", buf, 3);
	check(r == 3 && memcmp(buf, "tar", 3) == 0, "readlink truncates to the buffer",
	      "r=%zd", r);
	check_ok(symlink("no/such/file", "dang"), "dangling symlink");
	check_err(stat("dang", &st), ENOENT, "stat a dangling symlink -> ENOENT");
	check_ok(lstat("dang", &st), "lstat a dangling symlink");
	check_err(symlink("x", "s1"), EEXIST, "symlink over an existing name -> EEXIST");
	symlink("loopb", "loopa");
	symlink("loopa", "loopb");
	check_err(open("loopa", O_RDONLY), ELOOP, "open a symlink loop -> ELOOP");
	check_err(stat("loopa", &st), ELOOP, "stat a symlink loop -> ELOOP");
	symlink("self", "self");
	check_err(open("self", O_RDONLY), ELOOP, "open a self-referencing symlink -> ELOOP");
	check_err(readlink("target", buf, sizeof buf), EINVAL, "readlink on a file -> EINVAL");
	memset(buf, 'a', 4000);
	buf[4000] = 0;
	check_ok(symlink(buf, "longlink"), "symlink with a 4000-byte target");
	{
		char rb[PATH_MAX];

		r = readlink("longlink", rb, sizeof rb);
		check(r == 4000 && memcmp(rb, buf, 4000) == 0, "readlink of a 4000-byte target",
		      "r=%zd", r);
	}
	mkdir("sd", 0755);
	symlink("sd", "sdl");
	check_ok(put("sdl/inner", "x"), "create through a symlink to a directory");
	check(stat("sd/inner", &st) == 0, "the file is in the real directory", "missing");
}

static void t_rename(void)
{
	struct stat a, b, c;
	char buf[64];
	int fd;

	/* file over file */
	put("ra", "AAA");
	put("rb", "BBB");
	stat("ra", &a);
	check_ok(rename("ra", "rb"), "rename file over file");
	stat("rb", &b);
	slurp("rb", buf, sizeof buf);
	check(strcmp(buf, "AAA") == 0 && a.st_ino == b.st_ino,
	      "target replaced by the source", "content \"%s\"", buf);
	check_err(stat("ra", &c), ENOENT, "old name gone after rename");

	/* replacing a file that is still open */
	put("ro", "OLD");
	fd = open("ro", O_RDONLY);
	put("rn", "NEW");
	rename("rn", "ro");
	memset(buf, 0, sizeof buf);
	check(pread(fd, buf, 10, 0) == 3 && strcmp(buf, "OLD") == 0,
	      "an open replaced target stays readable", "got \"%s\"", buf);
	close(fd);

	/* dir over empty dir, and over a non-empty one */
	mkdir("rd1", 0755);
	put("rd1/f", "x");
	mkdir("rd2", 0755);
	stat("rd1", &a);
	check_ok(rename("rd1", "rd2"), "rename dir over an empty dir");
	stat("rd2", &b);
	check(a.st_ino == b.st_ino && stat("rd2/f", &c) == 0, "directory moved with content",
	      "ino %llu vs %llu", (unsigned long long)a.st_ino, (unsigned long long)b.st_ino);
	mkdir("rd3", 0755);
	check_err(rename("rd3", "rd2"), ENOTEMPTY, "rename dir over a non-empty dir -> ENOTEMPTY");
	put("rf", "x");
	check_err(rename("rf", "rd3"), EISDIR, "rename file over a dir -> EISDIR");
	check_err(rename("rd3", "rf"), ENOTDIR, "rename dir over a file -> ENOTDIR");
	mkdir("rd3/sub", 0755);
	check_err(rename("rd3", "rd3/sub/x"), EINVAL, "rename dir into its own subdir -> EINVAL");
	check_err(rename("rd3", "rd3/x"), EINVAL, "rename dir into itself -> EINVAL");
	check_err(rename("missing", "x"), ENOENT, "rename a missing name -> ENOENT");
	check_err(rename("rf", "nodir/x"), ENOENT, "rename into a missing dir -> ENOENT");

	/* renameat2 */
	put("n1", "1");
	put("n2", "2");
	check_err(renameat2(AT_FDCWD, "n1", AT_FDCWD, "n2", RENAME_NOREPLACE), EEXIST,
		  "RENAME_NOREPLACE over an existing name -> EEXIST");
	slurp("n2", buf, sizeof buf);
	check(strcmp(buf, "2") == 0, "RENAME_NOREPLACE left the target alone", "\"%s\"", buf);
	check_ok(renameat2(AT_FDCWD, "n1", AT_FDCWD, "n3", RENAME_NOREPLACE),
		 "RENAME_NOREPLACE to a new name");
	mkdir("xd", 0755);
	put("xd/inside", "x");
	put("xf", "file");
	stat("xd", &a);
	stat("xf", &b);
	check_ok(renameat2(AT_FDCWD, "xd", AT_FDCWD, "xf", RENAME_EXCHANGE),
		 "RENAME_EXCHANGE of a dir and a file");
	lstat("xd", &c);
	check(S_ISREG(c.st_mode) && c.st_ino == b.st_ino, "after exchange \"xd\" is the file",
	      "mode 0%o", (unsigned)c.st_mode);
	lstat("xf", &c);
	check(S_ISDIR(c.st_mode) && c.st_ino == a.st_ino && stat("xf/inside", &c) == 0,
	      "after exchange \"xf\" is the dir with its content", "mode 0%o",
	      (unsigned)c.st_mode);
	check_err(renameat2(AT_FDCWD, "xd", AT_FDCWD, "nothere", RENAME_EXCHANGE), ENOENT,
		  "RENAME_EXCHANGE with a missing target -> ENOENT");
	check_err(renameat2(AT_FDCWD, "xd", AT_FDCWD, "xf", RENAME_EXCHANGE | RENAME_NOREPLACE),
		  EINVAL, "RENAME_EXCHANGE|RENAME_NOREPLACE -> EINVAL");

	/* over a target with another hard link: that inode loses one link */
	put("hsrc", "src");
	put("htgt", "tgt");
	link("htgt", "hother");
	stat("htgt", &a);
	tick();
	check_ok(rename("hsrc", "htgt"), "rename over a hard-linked target");
	stat("hother", &b);
	slurp("hother", buf, sizeof buf);
	check(b.st_nlink == 1 && b.st_ino == a.st_ino && strcmp(buf, "tgt") == 0,
	      "the replaced inode keeps its other link with nlink 1", "nlink %lu \"%s\"",
	      (unsigned long)b.st_nlink, buf);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "the replaced inode's ctime changes",
	      "unchanged");

	/* same file: no-op */
	put("same", "S");
	check_ok(rename("same", "same"), "rename a file to itself");
	check(stat("same", &a) == 0, "file still there after self-rename", "gone");
	link("same", "same2");
	check_ok(rename("same", "same2"), "rename between two links of one inode");
	check(stat("same", &a) == 0 && stat("same2", &b) == 0 && a.st_nlink == 2,
	      "both links remain (POSIX: do nothing)", "a link vanished");

	/* inode stable; parents' nlink follow a moved directory */
	mkdir("p1", 0755);
	mkdir("p2", 0755);
	mkdir("p1/child", 0755);
	stat("p1/child", &a);
	check_ok(rename("p1/child", "p2/child"), "move a directory to another parent");
	stat("p2/child", &b);
	check(a.st_ino == b.st_ino, "st_ino stable across a directory rename", "changed");
	stat("p1", &a);
	stat("p2", &b);
	check(a.st_nlink == 2 && b.st_nlink == 3, "parents' nlink follow the moved dir",
	      "old parent %lu, new parent %lu", (unsigned long)a.st_nlink,
	      (unsigned long)b.st_nlink);
	stat("p2/child/..", &c);
	check(c.st_ino == b.st_ino, "moved dir's \"..\" is the new parent", "wrong parent");
	put("p1/f", "x");
	stat("p1/f", &a);
	rename("p1/f", "p2/f");
	stat("p2/f", &b);
	check(a.st_ino == b.st_ino, "st_ino stable across a file rename", "changed");
	slurp("p2/f", buf, sizeof buf);
	check(strcmp(buf, "x") == 0, "file readable after the move", "got \"%s\"", buf);
}

static void t_names(void)
{
	char n[300];
	int fd;

	memset(n, 'n', 255);
	n[255] = 0;
	fd = open(n, O_CREAT | O_RDWR, 0644);
	check_ok(fd, "create a 255-byte name");
	if (fd >= 0)
		close(fd);
	check(access(n, F_OK) == 0, "stat a 255-byte name", "missing");
	memset(n, 'n', 256);
	n[256] = 0;
	check_err(open(n, O_CREAT | O_RDWR, 0644), ENAMETOOLONG,
		  "create a 256-byte name -> ENAMETOOLONG");
	check_err(mkdir(n, 0755), ENAMETOOLONG, "mkdir a 256-byte name -> ENAMETOOLONG");
	check_err(access(n, F_OK), ENAMETOOLONG, "lookup of a 256-byte name -> ENAMETOOLONG");
	put("short", "x");
	check_err(rename("short", n), ENAMETOOLONG, "rename to a 256-byte name -> ENAMETOOLONG");
	check_ok(put("name with spaces\tand\x01odd bytes \xc3\xa9", "x"),
		 "names with spaces, control and UTF-8 bytes");
}

static void t_special(void)
{
	struct sockaddr_un sa;
	struct stat st;
	int s, c;

	check_ok(mkfifo("fifo", 0644), "mkfifo");
	lstat("fifo", &st);
	check(S_ISFIFO(st.st_mode), "mkfifo makes a FIFO", "mode 0%o", (unsigned)st.st_mode);
	check_ok(mknod("fifo2", S_IFIFO | 0600, 0), "mknod S_IFIFO");
	check_err(mkfifo("fifo", 0644), EEXIST, "mkfifo an existing name -> EEXIST");
	{
		/* A FIFO on this filesystem carries data between processes. */
		pid_t p;
		char b[8] = { 0 };
		int fd, status;

		fflush(stdout);
		p = fork();
		if (p == 0) {
			int w = open("fifo", O_WRONLY);

			_exit(w >= 0 && write(w, "pipe", 4) == 4 ? 0 : 1);
		}
		fd = open("fifo", O_RDONLY);
		check(fd >= 0 && read(fd, b, 4) == 4 && strcmp(b, "pipe") == 0,
		      "data through a FIFO", "got \"%s\"", b);
		if (fd >= 0)
			close(fd);
		waitpid(p, &status, 0);
	}

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, "sock");
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	check_ok(bind(s, (struct sockaddr *)&sa, sizeof sa), "bind a unix socket path");
	lstat("sock", &st);
	check(S_ISSOCK(st.st_mode), "the socket path is S_IFSOCK", "mode 0%o",
	      (unsigned)st.st_mode);
	listen(s, 1);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	check_ok(connect(c, (struct sockaddr *)&sa, sizeof sa), "connect to the socket path");
	close(c);
	close(s);
	check_ok(unlink("sock"), "unlink the socket path");

	if (!is_root) {
		skip("mknod a character device", "not root");
		return;
	}
	check_ok(mknod("chr", S_IFCHR | 0600, makedev(1, 3)), "mknod a character device");
	lstat("chr", &st);
	check(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3),
	      "device type and number kept", "mode 0%o rdev %llx", (unsigned)st.st_mode,
	      (unsigned long long)st.st_rdev);
	check_ok(mknod("blk", S_IFBLK | 0600, makedev(7, 200)), "mknod a block device");
	lstat("blk", &st);
	check(S_ISBLK(st.st_mode) && st.st_rdev == makedev(7, 200),
	      "block device number kept", "rdev %llx", (unsigned long long)st.st_rdev);
}

static void t_chmod_chown(void)
{
	struct stat a, b;

	put("cm", "x");
	stat("cm", &a);
	tick();
	check_ok(chmod("cm", 0751), "chmod");
	stat("cm", &b);
	check((b.st_mode & 07777) == 0751, "chmod sets the mode", "got 0%o",
	      (unsigned)b.st_mode);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "chmod changes ctime", "unchanged");
	check(ts_cmp(b.st_mtim, a.st_mtim) == 0, "chmod leaves mtime", "changed");
	check_ok(chmod("cm", 07777), "chmod with suid, sgid and sticky bits");
	stat("cm", &b);
	check((b.st_mode & 07777) == 07777, "all mode bits kept", "got 0%o",
	      (unsigned)b.st_mode);
	{
		int fd = open("cm", O_RDONLY);

		check_ok(fchmod(fd, 0600), "fchmod");
		fstat(fd, &b);
		check((b.st_mode & 07777) == 0600, "fchmod sets the mode", "got 0%o",
		      (unsigned)b.st_mode);
		close(fd);
	}
	if (!is_root) {
		skip("chown", "not root");
		return;
	}
	stat("cm", &a);
	tick();
	check_ok(chown("cm", 1234, 5678), "chown to 1234:5678");
	stat("cm", &b);
	check(b.st_uid == 1234 && b.st_gid == 5678, "chown sets owner and group", "got %u:%u",
	      (unsigned)b.st_uid, (unsigned)b.st_gid);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "chown changes ctime", "unchanged");
	check_ok(chown("cm", (uid_t)-1, 42), "chown -1:42 changes only the group");
	stat("cm", &b);
	check(b.st_uid == 1234 && b.st_gid == 42, "only the group changed", "got %u:%u",
	      (unsigned)b.st_uid, (unsigned)b.st_gid);
	chmod("cm", 06755);
	check_ok(chown("cm", 4321, (gid_t)-1), "chown a setuid/setgid file");
	stat("cm", &b);
	check((b.st_mode & 07777) == 0755, "chown clears S_ISUID and S_ISGID (even as root)",
	      "mode 0%o", (unsigned)b.st_mode);
	mkdir("cmd", 02755);
	chmod("cmd", 02755);
	chown("cmd", 1, 1);
	stat("cmd", &b);
	check((b.st_mode & 07777) == 02755, "chown of a directory keeps S_ISGID", "mode 0%o",
	      (unsigned)b.st_mode);
	symlink("cm", "cml");
	check_ok(lchown("cml", 77, 88), "lchown a symlink");
	lstat("cml", &b);
	stat("cm", &a);
	check(b.st_uid == 77 && b.st_gid == 88 && a.st_uid == 4321,
	      "lchown changes the link, not the target", "link %u:%u target %u",
	      (unsigned)b.st_uid, (unsigned)b.st_gid, (unsigned)a.st_uid);
}

static void t_utimens(void)
{
	struct timespec ts[2];
	struct stat a, b;
	time_t now;

	put("ut", "x");
	ts[0].tv_sec = 1000000000;
	ts[0].tv_nsec = 123456789;
	ts[1].tv_sec = 1234567890;
	ts[1].tv_nsec = 987654321;
	stat("ut", &a);
	tick();
	check_ok(utimensat(AT_FDCWD, "ut", ts, 0), "utimensat explicit times");
	stat("ut", &b);
	check(ts_cmp(b.st_atim, ts[0]) == 0, "atime set with ns precision", "got %lld.%09ld",
	      (long long)b.st_atim.tv_sec, b.st_atim.tv_nsec);
	check(ts_cmp(b.st_mtim, ts[1]) == 0, "mtime set with ns precision", "got %lld.%09ld",
	      (long long)b.st_mtim.tv_sec, b.st_mtim.tv_nsec);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "utimensat changes ctime", "unchanged");

	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = 1500000000;
	ts[1].tv_nsec = 1;
	check_ok(utimensat(AT_FDCWD, "ut", ts, 0), "utimensat UTIME_OMIT atime");
	stat("ut", &a);
	check(a.st_atim.tv_sec == 1000000000 && a.st_atim.tv_nsec == 123456789,
	      "UTIME_OMIT leaves atime", "got %lld.%09ld", (long long)a.st_atim.tv_sec,
	      a.st_atim.tv_nsec);
	check(a.st_mtim.tv_sec == 1500000000 && a.st_mtim.tv_nsec == 1, "mtime set to x.000000001",
	      "got %lld.%09ld", (long long)a.st_mtim.tv_sec, a.st_mtim.tv_nsec);

	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_NOW;
	now = time(NULL);
	check_ok(utimensat(AT_FDCWD, "ut", ts, 0), "utimensat UTIME_NOW");
	stat("ut", &a);
	check(a.st_atim.tv_sec >= now - 2 && a.st_atim.tv_sec <= now + 2 &&
		      a.st_mtim.tv_sec >= now - 2 && a.st_mtim.tv_sec <= now + 2,
	      "UTIME_NOW sets atime and mtime to now", "atime %lld mtime %lld now %lld",
	      (long long)a.st_atim.tv_sec, (long long)a.st_mtim.tv_sec, (long long)now);
	check_ok(utimensat(AT_FDCWD, "ut", NULL, 0), "utimensat(NULL) sets now");

	ts[0].tv_sec = -1;
	ts[0].tv_nsec = 0;
	ts[1].tv_sec = 4000000000LL;
	ts[1].tv_nsec = 0;
	check_ok(utimensat(AT_FDCWD, "ut", ts, 0), "times before 1970 and after 2038");
	stat("ut", &a);
	check(a.st_atim.tv_sec == -1 && a.st_mtim.tv_sec == 4000000000LL,
	      "pre-1970 and post-2038 times kept", "atime %lld mtime %lld",
	      (long long)a.st_atim.tv_sec, (long long)a.st_mtim.tv_sec);

	ts[0].tv_sec = 5;
	ts[0].tv_nsec = 1000000000;
	check_err(utimensat(AT_FDCWD, "ut", ts, 0), EINVAL, "tv_nsec 1e9 -> EINVAL");

	symlink("ut", "utl");
	ts[0].tv_sec = 111;
	ts[0].tv_nsec = 0;
	ts[1].tv_sec = 222;
	ts[1].tv_nsec = 0;
	check_ok(utimensat(AT_FDCWD, "utl", ts, AT_SYMLINK_NOFOLLOW),
		 "utimensat AT_SYMLINK_NOFOLLOW on a symlink");
	lstat("utl", &a);
	stat("ut", &b);
	check(a.st_mtim.tv_sec == 222 && b.st_mtim.tv_sec != 222,
	      "the link's times change, not the target's", "link %lld target %lld",
	      (long long)a.st_mtim.tv_sec, (long long)b.st_mtim.tv_sec);
	mkdir("utd", 0755);
	check_ok(utimensat(AT_FDCWD, "utd", ts, 0), "utimensat on a directory");
	stat("utd", &a);
	check(a.st_mtim.tv_sec == 222, "directory mtime set", "got %lld",
	      (long long)a.st_mtim.tv_sec);
}

static void t_timestamps(void)
{
	struct stat a, b, pa, pb;
	char buf[8];
	int fd;

	mkdir("td", 0755);
	put("td/f", "x");
	stat("td/f", &a);
	tick();
	fd = open("td/f", O_WRONLY);
	write(fd, "more", 4);
	close(fd);
	stat("td/f", &b);
	check(ts_cmp(b.st_mtim, a.st_mtim) > 0, "write changes mtime", "unchanged");
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "write changes ctime", "unchanged");

	a = b;
	tick();
	fd = open("td/f", O_RDONLY);
	read(fd, buf, sizeof buf);
	close(fd);
	stat("td/f", &b);
	check(ts_cmp(b.st_mtim, a.st_mtim) == 0 && ts_cmp(b.st_ctim, a.st_ctim) == 0,
	      "read leaves mtime and ctime", "changed");
	check(ts_cmp(b.st_atim, a.st_atim) > 0, "read after a write updates atime (relatime)",
	      "unchanged");
	a = b;
	tick();
	fd = open("td/f", O_RDONLY);
	read(fd, buf, sizeof buf);
	close(fd);
	stat("td/f", &b);
	check(ts_cmp(b.st_atim, a.st_atim) == 0, "a second read leaves atime (relatime)",
	      "changed");

	tick();
	truncate("td/f", 1);
	stat("td/f", &a);
	check(ts_cmp(a.st_mtim, b.st_mtim) > 0 && ts_cmp(a.st_ctim, b.st_ctim) > 0,
	      "truncate changes mtime and ctime", "unchanged");
	tick();
	fd = open("td/f", O_WRONLY | O_TRUNC);
	close(fd);
	stat("td/f", &b);
	check(ts_cmp(b.st_mtim, a.st_mtim) > 0, "O_TRUNC changes mtime", "unchanged");

	stat("td", &pa);
	tick();
	put("td/new", "x");
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0 && ts_cmp(pb.st_ctim, pa.st_ctim) > 0,
	      "create changes the parent's mtime and ctime", "unchanged");
	stat("td/new", &a);
	check(ts_cmp(a.st_mtim, pb.st_mtim) == 0 || ts_cmp(a.st_mtim, pa.st_mtim) > 0,
	      "a new file's mtime is the creation time", "old mtime");
	pa = pb;
	tick();
	mkdir("td/sub", 0755);
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0, "mkdir changes the parent's mtime",
	      "unchanged");
	pa = pb;
	tick();
	unlink("td/new");
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0 && ts_cmp(pb.st_ctim, pa.st_ctim) > 0,
	      "unlink changes the parent's mtime and ctime", "unchanged");
	pa = pb;
	stat("td/f", &a);
	tick();
	rename("td/f", "td/sub/f");
	stat("td", &pb);
	stat("td/sub", &b);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0 && ts_cmp(b.st_mtim, pa.st_mtim) > 0,
	      "rename changes both parents' mtime", "unchanged");
	stat("td/sub/f", &b);
	check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "rename changes the file's ctime (ext4)",
	      "unchanged");
	check(ts_cmp(b.st_mtim, a.st_mtim) == 0, "rename leaves the file's mtime", "changed");
	pa = pb;
	tick();
	rmdir("td/sub/../sub2");
	mkdir("td/sub2", 0755);
	tick();
	stat("td", &pa);
	tick();
	rmdir("td/sub2");
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0, "rmdir changes the parent's mtime",
	      "unchanged");
	pa = pb;
	tick();
	symlink("x", "td/sl");
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0, "symlink changes the parent's mtime",
	      "unchanged");
	pa = pb;
	tick();
	link("td/sub/f", "td/hl");
	stat("td", &pb);
	check(ts_cmp(pb.st_mtim, pa.st_mtim) > 0, "link changes the parent's mtime",
	      "unchanged");
}

static void t_stat(void)
{
	struct stat st, a;
	struct statx sx;

	mkdir("sd", 0755);
	for (int i = 0; i < 3; i++) {
		char n[32];

		snprintf(n, sizeof n, "sd/sub%d", i);
		mkdir(n, 0755);
	}
	put("sd/file", "x");
	stat("sd", &st);
	check(st.st_nlink == 5, "dir nlink = 2 + subdirs (3)", "got %lu",
	      (unsigned long)st.st_nlink);
	rmdir("sd/sub2");
	stat("sd", &st);
	check(st.st_nlink == 4, "dir nlink after rmdir of a subdir", "got %lu",
	      (unsigned long)st.st_nlink);
	check(st.st_blksize > 0 && (st.st_blksize & (st.st_blksize - 1)) == 0 &&
		      st.st_blksize >= 512,
	      "st_blksize is a power of two >= 512", "got %ld", (long)st.st_blksize);
	stat("sd/file", &st);
	check(st.st_nlink == 1 && st.st_size == 1 && S_ISREG(st.st_mode),
	      "new file: nlink 1, size 1, regular", "nlink %lu size %lld mode 0%o",
	      (unsigned long)st.st_nlink, (long long)st.st_size, (unsigned)st.st_mode);
	check(st.st_uid == geteuid() && st.st_gid == getegid(), "owner is the creator",
	      "got %u:%u", (unsigned)st.st_uid, (unsigned)st.st_gid);
	stat("sd", &a);
	check(st.st_dev == a.st_dev, "same st_dev for file and directory", "differs");
	stat("sd/file", &a);
	rename("sd/file", "sd/sub0/moved");
	stat("sd/sub0/moved", &st);
	check(st.st_ino == a.st_ino, "st_ino stable across rename", "%llu -> %llu",
	      (unsigned long long)a.st_ino, (unsigned long long)st.st_ino);
	stat(".", &a);
	stat("sd/..", &st);
	check(a.st_ino == st.st_ino, "\"..\" names the parent", "differs");
	check_ok(statx(AT_FDCWD, "sd", 0, STATX_BASIC_STATS, &sx), "statx");
	check((sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS,
	      "statx returns the basic fields", "mask 0x%x", sx.stx_mask);
	check_err(stat("", &st), ENOENT, "stat of an empty path -> ENOENT");
}

static void t_xattr(void)
{
	char buf[8192], big[4000];
	ssize_t r;

	put("x", "x");
	check_ok(setxattr("x", "user.a", "v1", 2, 0), "setxattr user.a");
	r = getxattr("x", "user.a", buf, sizeof buf);
	check(r == 2 && memcmp(buf, "v1", 2) == 0, "getxattr returns the value", "r=%zd", r);
	check(getxattr("x", "user.a", NULL, 0) == 2, "getxattr size query", "wrong size");
	check_err(getxattr("x", "user.a", buf, 1), ERANGE, "getxattr small buffer -> ERANGE");
	check_err(setxattr("x", "user.a", "v2", 2, XATTR_CREATE), EEXIST,
		  "XATTR_CREATE on an existing name -> EEXIST");
	check_err(setxattr("x", "user.b", "v", 1, XATTR_REPLACE), ENODATA,
		  "XATTR_REPLACE on a missing name -> ENODATA");
	check_ok(setxattr("x", "user.a", "value2", 6, XATTR_REPLACE), "XATTR_REPLACE existing");
	r = getxattr("x", "user.a", buf, sizeof buf);
	check(r == 6 && memcmp(buf, "value2", 6) == 0, "replaced value", "r=%zd", r);
	check_err(getxattr("x", "user.missing", buf, sizeof buf), ENODATA,
		  "getxattr a missing name -> ENODATA");
	check_ok(setxattr("x", "user.b", "", 0, XATTR_CREATE), "setxattr an empty value");
	check(getxattr("x", "user.b", buf, sizeof buf) == 0, "empty value reads back as 0 bytes",
	      "non-zero");
	memset(big, 'V', sizeof big);
	check_ok(setxattr("x", "user.big", big, sizeof big, 0), "setxattr a 4000-byte value");
	r = getxattr("x", "user.big", buf, sizeof buf);
	check(r == (ssize_t)sizeof big && memcmp(buf, big, sizeof big) == 0,
	      "4000-byte value reads back", "r=%zd", r);
	r = listxattr("x", buf, sizeof buf);
	{
		int seen = 0;

		for (ssize_t i = 0; i < r; i += (ssize_t)strlen(buf + i) + 1)
			seen |= (strcmp(buf + i, "user.a") == 0 ? 1 : 0) |
				(strcmp(buf + i, "user.b") == 0 ? 2 : 0) |
				(strcmp(buf + i, "user.big") == 0 ? 4 : 0);
		check(r > 0 && seen == 7, "listxattr lists user.a, user.b, user.big",
		      "r=%zd seen=%d", r, seen);
	}
	check(listxattr("x", NULL, 0) == r, "listxattr size query", "wrong size");
	check_err(listxattr("x", buf, 3), ERANGE, "listxattr small buffer -> ERANGE");
	check_ok(removexattr("x", "user.a"), "removexattr");
	check_err(getxattr("x", "user.a", buf, sizeof buf), ENODATA,
		  "getxattr after remove -> ENODATA");
	check_err(removexattr("x", "user.a"), ENODATA, "removexattr a missing name -> ENODATA");
	check_err(setxattr("x", "bogus.a", "v", 1, 0), EOPNOTSUPP,
		  "setxattr in an unknown namespace -> EOPNOTSUPP");
	mkdir("xd", 0755);
	check_ok(setxattr("xd", "user.d", "dir", 3, 0), "setxattr on a directory");
	check(getxattr("xd", "user.d", buf, sizeof buf) == 3, "getxattr on a directory", "wrong");
	symlink("x", "xl");
	check_err(lsetxattr("xl", "user.l", "v", 1, 0), EPERM,
		  "user.* on a symlink -> EPERM");
	check(getxattr("xl", "user.b", buf, sizeof buf) == 0, "getxattr follows a symlink",
	      "did not");
	if (is_root) {
		check_ok(setxattr("x", "trusted.t", "tv", 2, 0), "setxattr trusted.* as root");
		check(getxattr("x", "trusted.t", buf, sizeof buf) == 2, "getxattr trusted.*",
		      "wrong");
	} else {
		skip("trusted.* xattrs", "not root");
	}
	{
		int fd = open("x", O_RDONLY);

		check_ok(fsetxattr(fd, "user.f", "fv", 2, 0), "fsetxattr");
		check(fgetxattr(fd, "user.f", buf, sizeof buf) == 2, "fgetxattr", "wrong");
		close(fd);
	}
	{
		struct stat a, b;

		stat("x", &a);
		tick();
		setxattr("x", "user.c", "c", 1, 0);
		stat("x", &b);
		check(ts_cmp(b.st_ctim, a.st_ctim) > 0, "setxattr changes ctime", "unchanged");
	}
	/* Values survive a rename and are gone with the file. */
	rename("x", "x2");
	check(getxattr("x2", "user.big", buf, sizeof buf) == (ssize_t)sizeof big,
	      "xattrs follow a rename", "lost");
	unlink("x2");
	put("x2", "new");
	check_err(getxattr("x2", "user.big", buf, sizeof buf), ENODATA,
		  "a new file under an old name has no old xattrs -> ENODATA");
}

static void t_fallocate(void)
{
	uint8_t rd[65536];
	struct stat a, b;
	ssize_t r;
	int fd;

	fd = open("fa", O_CREAT | O_RDWR | O_TRUNC, 0644);
	check_ok(fallocate(fd, 0, 0, MiB), "fallocate mode 0, 1 MiB");
	fstat(fd, &a);
	check(a.st_size == MiB, "fallocate mode 0 extends the size", "size %lld",
	      (long long)a.st_size);
	check(a.st_blocks * 512 >= MiB, "fallocate reserves blocks", "st_blocks %lld",
	      (long long)a.st_blocks);
	r = pread_all(fd, rd, sizeof rd, 100000);
	check(r == (ssize_t)sizeof rd && nonzero(rd, sizeof rd) < 0,
	      "fallocated range reads zeros", "bytes differ");
	check_ok(fallocate(fd, FALLOC_FL_KEEP_SIZE, MiB, MiB), "fallocate KEEP_SIZE beyond EOF");
	fstat(fd, &b);
	check(b.st_size == MiB, "KEEP_SIZE leaves the size", "size %lld", (long long)b.st_size);
	check(b.st_blocks > a.st_blocks, "KEEP_SIZE still allocates", "st_blocks %lld -> %lld",
	      (long long)a.st_blocks, (long long)b.st_blocks);
	close(fd);

	make_file("ph", (size_t)(1 * MiB), 12);
	fd = open("ph", O_RDWR);
	fsync(fd);
	fstat(fd, &a);
	check_ok(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 256 * KiB, 256 * KiB),
		 "fallocate PUNCH_HOLE|KEEP_SIZE");
	fstat(fd, &b);
	check(b.st_size == MiB, "punching keeps the size", "size %lld", (long long)b.st_size);
	check(b.st_blocks < a.st_blocks, "punching frees blocks", "st_blocks %lld -> %lld",
	      (long long)a.st_blocks, (long long)b.st_blocks);
	r = pread_all(fd, rd, sizeof rd, 256 * KiB);
	check(r == (ssize_t)sizeof rd && nonzero(rd, sizeof rd) < 0, "punched range reads zeros",
	      "first non-zero %ld", nonzero(rd, sizeof rd));
	r = pread_all(fd, rd, sizeof rd, 512 * KiB - 32 * KiB);
	check(r == (ssize_t)sizeof rd && nonzero(rd, 32 * KiB) < 0 &&
		      mismatch(rd + 32 * KiB, 32 * KiB, 512 * KiB, 12) < 0,
	      "data after the hole intact", "bytes differ");
	r = pread_all(fd, rd, 4096, 256 * KiB - 4096);
	check(r == 4096 && mismatch(rd, 4096, 256 * KiB - 4096, 12) < 0,
	      "data before the hole intact", "bytes differ");
	/* A punch not aligned to blocks zeroes the partial blocks. */
	check_ok(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 700001, 10000),
		 "unaligned PUNCH_HOLE");
	r = pread_all(fd, rd, 12000, 700000);
	check(r == 12000 && mismatch(rd, 1, 700000, 12) < 0 && nonzero(rd + 1, 10000) < 0 &&
		      mismatch(rd + 10001, 1999, 710001, 12) < 0,
	      "unaligned punch zeroes exactly its range", "bytes differ");
	check_err(fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096), EOPNOTSUPP,
		  "PUNCH_HOLE without KEEP_SIZE -> EOPNOTSUPP");
	check_err(fallocate(fd, 0, 0, 0), EINVAL, "fallocate length 0 -> EINVAL");
	close(fd);
}

static void t_seek(void)
{
	uint8_t buf[65536];
	off_t o;
	int fd;

	fd = open("sk", O_CREAT | O_RDWR | O_TRUNC, 0644);
	fill(buf, sizeof buf, MiB, 2);
	pwrite_all(fd, buf, sizeof buf, MiB);
	ftruncate(fd, 4 * MiB);
	fsync(fd);
	o = lseek(fd, 0, SEEK_DATA);
	check(o == MiB, "SEEK_DATA from 0 finds the data at 1 MiB", "got %lld (%s)",
	      (long long)o, o < 0 ? errname(errno) : "");
	o = lseek(fd, 0, SEEK_HOLE);
	check(o == 0, "SEEK_HOLE from 0 is 0 (leading hole)", "got %lld", (long long)o);
	o = lseek(fd, MiB + 100, SEEK_HOLE);
	check(o == MiB + 65536, "SEEK_HOLE inside data finds its end", "got %lld", (long long)o);
	o = lseek(fd, MiB + 65536, SEEK_DATA);
	check(o < 0 && errno == ENXIO, "SEEK_DATA in the trailing hole -> ENXIO",
	      "got %lld (%s)", (long long)o, errname(errno));
	o = lseek(fd, 3 * MiB, SEEK_HOLE);
	check(o == 3 * MiB, "SEEK_HOLE in a hole returns the offset", "got %lld", (long long)o);
	check_err(lseek(fd, 4 * MiB, SEEK_DATA), ENXIO, "SEEK_DATA at EOF -> ENXIO");
	check_err(lseek(fd, 5 * MiB, SEEK_HOLE), ENXIO, "SEEK_HOLE past EOF -> ENXIO");
	check_err(lseek(fd, 5 * MiB, SEEK_DATA), ENXIO, "SEEK_DATA past EOF -> ENXIO");
	pwrite_all(fd, buf, 4096, 4 * MiB - 4096);
	o = lseek(fd, 2 * MiB, SEEK_DATA);
	check(o == 4 * MiB - 4096, "SEEK_DATA finds a final block", "got %lld", (long long)o);
	o = lseek(fd, 4 * MiB - 4096, SEEK_HOLE);
	check(o == 4 * MiB, "SEEK_HOLE at the last data is EOF", "got %lld", (long long)o);
	check_err(lseek(fd, -1, SEEK_SET), EINVAL, "lseek to a negative offset -> EINVAL");
	close(fd);
}

static void t_sync(void)
{
	int fd = open("sy", O_CREAT | O_RDWR, 0644);

	write(fd, "data", 4);
	check_ok(fsync(fd), "fsync");
	write(fd, "more", 4);
	check_ok(fdatasync(fd), "fdatasync");
	close(fd);
	fd = open(".", O_RDONLY | O_DIRECTORY);
	check_ok(fsync(fd), "fsync a directory");
	close(fd);
	fd = open("sy", O_RDONLY);
	check_ok(fsync(fd), "fsync a read-only descriptor");
	close(fd);
	check_ok(syncfs(fd = open(".", O_RDONLY)), "syncfs");
	close(fd);
	fd = open("sy2", O_CREAT | O_RDWR | O_SYNC, 0644);
	check(write(fd, "sync", 4) == 4, "O_SYNC write", "short");
	close(fd);
}

/* readdir lists every entry once, with "." and "..", through several pages. */
static void t_readdir(void)
{
	enum { NF = 600, ND = 5 };
	static unsigned char seen[NF + ND + 1000];
	unsigned char dots = 0;
	struct dirent *de;
	int bad_type = 0, extra = 0, dup = 0;
	DIR *d;

	mkdir("rd", 0755);
	for (int i = 0; i < NF; i++) {
		char n[64];

		snprintf(n, sizeof n, "rd/file-%04d-with-a-longer-name-to-fill-pages", i);
		put(n, "");
	}
	for (int i = 0; i < ND; i++) {
		char n[64];

		snprintf(n, sizeof n, "rd/dir-%d", i);
		mkdir(n, 0755);
	}
	d = opendir("rd");
	if (!check(d != NULL, "opendir", "%s", errname(errno)))
		return;
	memset(seen, 0, sizeof seen);
	while ((de = readdir(d))) {
		int i;

		if (!strcmp(de->d_name, ".")) {
			dots |= 1;
			bad_type |= de->d_type != DT_DIR && de->d_type != DT_UNKNOWN;
		} else if (!strcmp(de->d_name, "..")) {
			dots |= 2;
		} else if (sscanf(de->d_name, "file-%d-with", &i) == 1 && i >= 0 && i < NF) {
			dup |= seen[i]++;
			bad_type |= de->d_type != DT_REG && de->d_type != DT_UNKNOWN;
		} else if (sscanf(de->d_name, "dir-%d", &i) == 1 && i >= 0 && i < ND) {
			dup |= seen[NF + i]++;
			bad_type |= de->d_type != DT_DIR && de->d_type != DT_UNKNOWN;
		} else {
			extra++;
		}
	}
	{
		int missing = 0;

		for (int i = 0; i < NF + ND; i++)
			missing += !seen[i];
		check(!missing && !dup && !extra, "readdir lists every entry exactly once",
		      "%d missing, dup=%d, %d unexpected", missing, dup, extra);
	}
	check(dots == 3, "readdir lists \".\" and \"..\"", "dots mask %u", dots);
	check(!bad_type, "d_type matches the entry type", "wrong d_type");

	/* Unlink half while iterating from scratch; a rewound listing reflects it. */
	for (int i = 0; i < NF; i += 2) {
		char n[64];

		snprintf(n, sizeof n, "rd/file-%04d-with-a-longer-name-to-fill-pages", i);
		unlink(n);
	}
	rewinddir(d);
	{
		int count = 0;

		while ((de = readdir(d)))
			count++;
		check(count == NF / 2 + ND + 2, "rewinddir relists after unlinks",
		      "expected %d entries, got %d", NF / 2 + ND + 2, count);
	}
	closedir(d);

	/* Entries neither added nor removed during a listing appear exactly once
	 * (POSIX), even when others are unlinked and created mid-listing. */
	mkdir("st", 0755);
	for (int i = 0; i < 1000; i++) {
		char n[64];

		snprintf(n, sizeof n, "st/e%04d", i);
		put(n, "");
	}
	d = opendir("st");
	memset(seen, 0, sizeof seen);
	{
		int got = 0, dupe = 0, miss = 0, i;

		while (got < 100 && (de = readdir(d))) {
			if (sscanf(de->d_name, "e%d", &i) == 1 && i >= 0 && i < 1000) {
				dupe |= seen[i]++;
				got++;
			}
		}
		/* Remove every third not-yet-seen entry; add new ones. */
		for (i = 0; i < 1000; i++) {
			char n[64];

			if (!seen[i] && i % 3 == 0) {
				snprintf(n, sizeof n, "st/e%04d", i);
				unlink(n);
				seen[i] = 2; /* removed: may or may not appear */
			}
		}
		for (i = 0; i < 300; i++) {
			char n[64];

			snprintf(n, sizeof n, "st/new%04d", i);
			put(n, "");
		}
		while ((de = readdir(d))) {
			if (sscanf(de->d_name, "e%d", &i) == 1 && i >= 0 && i < 1000 && seen[i] != 2)
				dupe |= seen[i]++;
		}
		for (i = 0; i < 1000; i++)
			miss += seen[i] == 0;
		check(!dupe && !miss, "untouched entries listed once despite concurrent changes",
		      "%d missing, duplicates=%d", miss, dupe);
	}
	closedir(d);

	/* telldir/seekdir return to the same place in the stream. */
	d = opendir("st");
	{
		char after[NAME_MAX + 1] = "", again[NAME_MAX + 1] = "";
		long pos = -1;

		for (int k = 0; k < 200 && (de = readdir(d)); k++)
			;
		pos = telldir(d);
		if ((de = readdir(d)))
			snprintf(after, sizeof after, "%s", de->d_name);
		for (int k = 0; k < 50 && readdir(d); k++)
			;
		seekdir(d, pos);
		if ((de = readdir(d)))
			snprintf(again, sizeof again, "%s", de->d_name);
		check(pos >= 0 && after[0] && strcmp(after, again) == 0,
		      "seekdir(telldir()) resumes at the same entry", "\"%s\" then \"%s\"", after,
		      again);
	}
	closedir(d);
	put("notdir", "x");
	errno = 0;
	d = opendir("notdir");
	check(!d && errno == ENOTDIR, "opendir on a file -> ENOTDIR", "got %s",
	      d ? "success" : errname(errno));
	if (d)
		closedir(d);
	mkdir("empty", 0755);
	d = opendir("empty");
	{
		int count = 0;

		while (d && (de = readdir(d)))
			count++;
		check(count == 2, "an empty directory lists only . and ..", "got %d", count);
	}
	if (d)
		closedir(d);
}

static void t_statvfs(void)
{
	struct statvfs a, b;
	int ok = 0;

	check_ok(statvfs(".", &a), "statvfs");
	check(a.f_bsize > 0 && a.f_frsize > 0 && a.f_blocks > 0 && a.f_bfree <= a.f_blocks &&
		      a.f_bavail <= a.f_bfree,
	      "block counts consistent", "bsize %lu frsize %lu blocks %llu bfree %llu bavail %llu",
	      a.f_bsize, a.f_frsize, (unsigned long long)a.f_blocks,
	      (unsigned long long)a.f_bfree, (unsigned long long)a.f_bavail);
	check(a.f_files == 0 || a.f_ffree <= a.f_files, "inode counts consistent",
	      "files %llu ffree %llu", (unsigned long long)a.f_files,
	      (unsigned long long)a.f_ffree);
	check(a.f_namemax == 255, "f_namemax is 255", "got %lu", a.f_namemax);
	/* Writing 32 MiB consumes space (retried: other users share a local
	 * test filesystem). */
	for (int attempt = 0; attempt < 3 && !ok; attempt++) {
		unsigned long long before, after;

		statvfs(".", &a);
		make_file("space", (size_t)(32 * MiB), 1);
		sync();
		statvfs(".", &b);
		before = (unsigned long long)a.f_bfree * a.f_frsize;
		after = (unsigned long long)b.f_bfree * b.f_frsize;
		ok = before > after && before - after >= (unsigned long long)(24 * MiB);
		unlink("space");
		if (!ok)
			printf("     (attempt %d: free %llu -> %llu)\n", attempt, before, after);
	}
	check(ok, "writing 32 MiB lowers f_bfree by about 32 MiB", "see attempts above");
}

/* Read exactly n bytes from a pipe within ms milliseconds; 1 if done. */
static int pipe_read(int fd, void *buf, size_t n, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) != 1)
		return 0;
	return read(fd, buf, n) == (ssize_t)n;
}

static int set_lock(int fd, int cmd, short type, off_t start, off_t len)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len };

	return fcntl(fd, cmd, &fl);
}

static void t_posix_locks(void)
{
	struct { struct flock fl; int e_conflict, e_free, e_rd; } res;
	int fd, p[2], status;
	pid_t pid;
	char c;

	make_file("lk", 4096, 1);
	fd = open("lk", O_RDWR);
	check_ok(set_lock(fd, F_SETLK, F_WRLCK, 0, 100), "parent F_SETLK write lock [0,100)");
	if (pipe(p) < 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int cfd = open("lk", O_RDWR);

		memset(&res, 0, sizeof res);
		res.fl.l_type = F_WRLCK;
		res.fl.l_whence = SEEK_SET;
		res.fl.l_start = 50;
		res.fl.l_len = 10;
		if (fcntl(cfd, F_GETLK, &res.fl) < 0)
			res.fl.l_type = -1;
		res.e_conflict = set_lock(cfd, F_SETLK, F_WRLCK, 0, 10) < 0 ? errno : 0;
		res.e_free = set_lock(cfd, F_SETLK, F_WRLCK, 200, 10) < 0 ? errno : 0;
		res.e_rd = set_lock(cfd, F_SETLK, F_RDLCK, 99, 1) < 0 ? errno : 0;
		if (write(p[1], &res, sizeof res) != sizeof res)
			_exit(1);
		_exit(0);
	}
	if (!check(pipe_read(p[0], &res, sizeof res, 10000), "child reports", "no report")) {
		waitpid(pid, &status, 0);
		return;
	}
	waitpid(pid, &status, 0);
	check(res.fl.l_type == F_WRLCK, "F_GETLK in a child reports the conflict",
	      "l_type %d", res.fl.l_type);
	check(res.fl.l_pid == getpid(), "F_GETLK reports the holder's pid",
	      "expected %d, got %d", (int)getpid(), (int)res.fl.l_pid);
	check(res.fl.l_start == 0 && res.fl.l_len == 100, "F_GETLK reports the held range",
	      "got start %lld len %lld", (long long)res.fl.l_start, (long long)res.fl.l_len);
	check_code(res.e_conflict, EAGAIN, "child F_SETLK on a locked range -> EAGAIN");
	check_code(res.e_free, 0, "child F_SETLK on a free range succeeds");
	check_code(res.e_rd, EAGAIN, "child read lock on a write-locked byte -> EAGAIN");
	close(p[0]);
	close(p[1]);

	/* F_SETLKW blocks until the holder releases. */
	if (pipe(p) < 0)
		return;
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int cfd = open("lk", O_RDWR);

		write(p[1], "w", 1);
		if (set_lock(cfd, F_SETLKW, F_WRLCK, 10, 10) < 0)
			_exit(1);
		write(p[1], "g", 1);
		_exit(0);
	}
	pipe_read(p[0], &c, 1, 5000);
	check(!pipe_read(p[0], &c, 1, 400), "F_SETLKW blocks while the range is held",
	      "acquired while held");
	set_lock(fd, F_SETLK, F_UNLCK, 0, 100);
	check(pipe_read(p[0], &c, 1, 10000) && c == 'g', "F_SETLKW acquires after release",
	      "not acquired in 10 s");
	waitpid(pid, &status, 0);
	close(p[0]);
	close(p[1]);

	/* Shared read locks; a child's write lock conflicts. */
	check_ok(set_lock(fd, F_SETLK, F_RDLCK, 0, 0), "parent read lock on the whole file");
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int cfd = open("lk", O_RDWR);
		int a = set_lock(cfd, F_SETLK, F_RDLCK, 0, 0) < 0 ? errno : 0;
		int b = set_lock(cfd, F_SETLK, F_WRLCK, 4000, 1) < 0 ? errno : 0;

		_exit(a == 0 && b == EAGAIN ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "read locks share; a write lock under a read lock -> EAGAIN", "child saw otherwise");
	/* Closing any descriptor of the file drops the process's locks. */
	{
		int fd2 = open("lk", O_RDONLY);

		close(fd2);
	}
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int cfd = open("lk", O_RDWR);

		_exit(set_lock(cfd, F_SETLK, F_WRLCK, 0, 0) == 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "close of another descriptor releases the process's locks", "still locked");
	close(fd);
}

static void t_flock(void)
{
	int a, b;

	put("fl", "x");
	a = open("fl", O_RDWR);
	b = open("fl", O_RDWR);
	check_ok(flock(a, LOCK_EX | LOCK_NB), "flock LOCK_EX on the first description");
	check_err(flock(b, LOCK_EX | LOCK_NB), EWOULDBLOCK,
		  "flock LOCK_EX|LOCK_NB on a second description -> EWOULDBLOCK");
	check_err(flock(b, LOCK_SH | LOCK_NB), EWOULDBLOCK,
		  "flock LOCK_SH|LOCK_NB under LOCK_EX -> EWOULDBLOCK");
	check_ok(flock(a, LOCK_UN), "flock LOCK_UN");
	check_ok(flock(b, LOCK_SH | LOCK_NB), "LOCK_SH after release");
	check_ok(flock(a, LOCK_SH | LOCK_NB), "two LOCK_SH share");
	check_err(flock(a, LOCK_EX | LOCK_NB), EWOULDBLOCK,
		  "upgrade to LOCK_EX with another LOCK_SH -> EWOULDBLOCK");
	close(b);
	check_ok(flock(a, LOCK_EX | LOCK_NB), "close releases the other description's lock");
	close(a);
}

static void t_direct(void)
{
	const size_t n = 256 * 1024;
	uint8_t *buf = NULL, *rd = NULL;
	ssize_t r;
	int fd, fd2;

	if (posix_memalign((void **)&buf, 4096, n) || posix_memalign((void **)&rd, 4096, n)) {
		check(0, "aligned buffers", "out of memory");
		free(buf);
		return;
	}
	fd = open("od", O_CREAT | O_RDWR | O_TRUNC | O_DIRECT, 0644);
	if (fd < 0 && errno == EINVAL) {
		skip("O_DIRECT", "not supported by this filesystem");
		free(buf);
		free(rd);
		return;
	}
	check_ok(fd, "open O_DIRECT");
	fill(buf, n, 0, 21);
	r = pwrite(fd, buf, n, 0);
	check(r == (ssize_t)n, "O_DIRECT aligned 256 KiB write", "r=%zd (%s)", r,
	      errname(errno));
	fill(buf, 4096, 1 * MiB, 21);
	r = pwrite(fd, buf, 4096, 1 * MiB);
	check(r == 4096, "O_DIRECT aligned 4 KiB write beyond EOF", "r=%zd", r);
	memset(rd, 0xee, n);
	r = pread(fd, rd, n, 0);
	check(r == (ssize_t)n && mismatch(rd, n, 0, 21) < 0, "O_DIRECT read returns the data",
	      "r=%zd first bad %ld", r, mismatch(rd, n, 0, 21));
	r = pread(fd, rd, 8192, MiB - 4096);
	check(r == 8192 && nonzero(rd, 4096) < 0 && mismatch(rd + 4096, 4096, MiB, 21) < 0,
	      "O_DIRECT read across hole and data", "r=%zd", r);
	fd2 = open("od", O_RDONLY);
	r = pread_all(fd2, rd, n, 0);
	check(r == (ssize_t)n && mismatch(rd, n, 0, 21) < 0,
	      "buffered read sees the O_DIRECT write", "bytes differ");
	/* Buffered write then direct read: the page cache must be written. */
	close(fd2);
	fd2 = open("od", O_WRONLY);
	fill(buf, 4096, 8192, 22);
	pwrite_all(fd2, buf, 4096, 8192);
	close(fd2);
	r = pread(fd, rd, 4096, 8192);
	check(r == 4096 && mismatch(rd, 4096, 8192, 22) < 0,
	      "O_DIRECT read sees an earlier buffered write", "stale data");
	close(fd);
	free(buf);
	free(rd);
}

static void t_mmap(void)
{
	const size_t n = 256 * 1024;
	uint8_t *m, *rd = malloc(n);
	ssize_t r;
	int fd;

	fd = open("mm", O_CREAT | O_RDWR | O_TRUNC, 0644);
	ftruncate(fd, (off_t)n);
	m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (!check(m != MAP_FAILED, "mmap MAP_SHARED read/write", "%s", errname(errno))) {
		close(fd);
		free(rd);
		return;
	}
	fill(m, n, 0, 31);
	check_ok(msync(m, n, MS_SYNC), "msync MS_SYNC");
	r = pread_all(fd, rd, n, 0);
	check(r == (ssize_t)n && mismatch(rd, n, 0, 31) < 0, "read(2) sees mmap writes",
	      "r=%zd first bad %ld", r, mismatch(rd, n, 0, 31));
	fill(rd, 4096, 4096, 32);
	pwrite_all(fd, rd, 4096, 4096);
	check(mismatch(m + 4096, 4096, 4096, 32) < 0, "the mapping sees a pwrite", "stale page");
	munmap(m, n);
	close(fd);
	fd = open("mm", O_RDONLY);
	r = pread_all(fd, rd, 4096, 0);
	check(r == 4096 && mismatch(rd, 4096, 0, 31) < 0, "mmap data persists after munmap",
	      "bytes differ");
	close(fd);
	free(rd);
}

/* ------------------------------------------------------------------ */
/* Permission checks as unprivileged users.                            */
/* ------------------------------------------------------------------ */

struct cred {
	uid_t uid;
	gid_t gid;
	int ngroups;
	gid_t groups[2];
};

enum op_kind { OP_OPEN_RD, OP_OPEN_WR, OP_CREATE, OP_UNLINK, OP_RENAME, OP_CHMOD, OP_CHOWN,
	       OP_WRITE1, OP_ACCESS_R, OP_STAT, OP_UTIME_NOW, OP_UTIME_SET, OP_MKDIR,
	       OP_READDIR };

struct op {
	enum op_kind kind;
	const char *path;
	const char *path2; /* rename target */
	long arg;          /* mode, uid, or gid for the operation */
	long arg2;         /* gid for OP_CHOWN */
};

static const struct cred U1 = { 65534, 65534, 0, { 0 } };        /* nobody */
static const struct cred U2 = { 1001, 1001, 1, { 2001, 0 } };    /* with group 2001 */

static int do_op(const struct op *o)
{
	struct timespec ts[2] = { { 10, 0 }, { 20, 0 } };
	struct stat st;
	DIR *d;
	int fd, rc = 0;

	switch (o->kind) {
	case OP_OPEN_RD:
	case OP_OPEN_WR:
		fd = open(o->path, o->kind == OP_OPEN_RD ? O_RDONLY : O_WRONLY);
		if (fd < 0)
			return -1;
		return close(fd);
	case OP_CREATE:
		fd = open(o->path, O_CREAT | O_EXCL | O_WRONLY, (mode_t)o->arg);
		if (fd < 0)
			return -1;
		return close(fd);
	case OP_UNLINK:
		return unlink(o->path);
	case OP_RENAME:
		return rename(o->path, o->path2);
	case OP_CHMOD:
		return chmod(o->path, (mode_t)o->arg);
	case OP_CHOWN:
		return chown(o->path, (uid_t)o->arg, (gid_t)o->arg2);
	case OP_WRITE1:
		fd = open(o->path, O_WRONLY);
		if (fd < 0)
			return -1;
		if (write(fd, "w", 1) != 1)
			rc = -1;
		close(fd);
		return rc;
	case OP_ACCESS_R:
		return access(o->path, R_OK);
	case OP_STAT:
		return stat(o->path, &st);
	case OP_UTIME_NOW:
		return utimensat(AT_FDCWD, o->path, NULL, 0);
	case OP_UTIME_SET:
		return utimensat(AT_FDCWD, o->path, ts, 0);
	case OP_MKDIR:
		return mkdir(o->path, (mode_t)o->arg);
	case OP_READDIR:
		d = opendir(o->path);
		if (!d)
			return -1;
		return closedir(d);
	}
	errno = ENOSYS;
	return -1;
}

/* Run o as the user c in a child; returns 0 or the child's errno. */
static int as_user(const struct cred *c, const struct op *o)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 254;
	if (pid == 0) {
		if (setgroups((size_t)c->ngroups, c->groups) < 0 || setgid(c->gid) < 0 ||
		    setuid(c->uid) < 0)
			_exit(250);
		_exit(do_op(o) < 0 ? (errno & 0xff) : 0);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status))
		return 253;
	return WEXITSTATUS(status);
}

static int run(const struct cred *c, enum op_kind k, const char *path, const char *path2,
	       long arg, long arg2)
{
	struct op o = { k, path, path2, arg, arg2 };

	return as_user(c, &o);
}

static void t_perms(void)
{
	struct stat st;

	if (!is_root) {
		skip("permission checks", "not root");
		return;
	}
	mkdir("pd", 0755);
	chmod("pd", 0755);

	/* Another user's 0600 file. */
	put("pd/secret", "s");
	chown("pd/secret", U1.uid, U1.gid);
	chmod("pd/secret", 0600);
	check_code(run(&U2, OP_OPEN_RD, "pd/secret", NULL, 0, 0), EACCES,
		   "open another user's 0600 file -> EACCES");
	check_code(run(&U2, OP_ACCESS_R, "pd/secret", NULL, 0, 0), EACCES,
		   "access(R_OK) on another user's 0600 file -> EACCES");
	check_code(run(&U1, OP_OPEN_RD, "pd/secret", NULL, 0, 0), 0,
		   "the owner opens its 0600 file");
	check_code(run(&U1, OP_OPEN_WR, "pd/secret", NULL, 0, 0), 0,
		   "the owner writes its 0600 file");
	check_code(run(&U2, OP_CHMOD, "pd/secret", NULL, 0666, 0), EPERM,
		   "chmod by a non-owner -> EPERM");
	check_code(run(&U1, OP_CHOWN, "pd/secret", NULL, U2.uid, -1), EPERM,
		   "chown by a non-root owner -> EPERM");
	check_code(run(&U1, OP_CHOWN, "pd/secret", NULL, -1, 2001), EPERM,
		   "chgrp by the owner to a group it is not in -> EPERM");
	check_code(run(&U2, OP_UTIME_SET, "pd/secret", NULL, 0, 0), EPERM,
		   "explicit utimensat by a non-owner -> EPERM");
	check_code(run(&U2, OP_UTIME_NOW, "pd/secret", NULL, 0, 0), EACCES,
		   "utimensat(NOW) by a non-owner without write -> EACCES");
	check_code(run(&U2, OP_CREATE, "pd/u2file", NULL, 0644, 0), EACCES,
		   "create in a root 0755 directory -> EACCES");
	check_code(run(&U2, OP_UNLINK, "pd/secret", NULL, 0, 0), EACCES,
		   "unlink in a root 0755 directory -> EACCES");

	/* Access through a supplementary group. */
	put("pd/grp", "g");
	chown("pd/grp", 0, 2001);
	chmod("pd/grp", 0640);
	check_code(run(&U2, OP_OPEN_RD, "pd/grp", NULL, 0, 0), 0,
		   "read through a supplementary group");
	check_code(run(&U2, OP_OPEN_WR, "pd/grp", NULL, 0, 0), EACCES,
		   "write without group write -> EACCES");
	check_code(run(&U1, OP_OPEN_RD, "pd/grp", NULL, 0, 0), EACCES,
		   "read by a non-member of the group -> EACCES");
	chmod("pd/grp", 0604);
	check_code(run(&U2, OP_OPEN_RD, "pd/grp", NULL, 0, 0), EACCES,
		   "group bits apply before other bits -> EACCES");
	check_code(run(&U1, OP_OPEN_RD, "pd/grp", NULL, 0, 0), 0, "other bits grant read");

	/* Search permission on a directory. */
	mkdir("pd/priv", 0700);
	chown("pd/priv", U1.uid, U1.gid);
	chmod("pd/priv", 0700);
	put("pd/priv/f", "x");
	check_code(run(&U2, OP_STAT, "pd/priv/f", NULL, 0, 0), EACCES,
		   "stat through a 0700 directory of another user -> EACCES");
	check_code(run(&U2, OP_READDIR, "pd/priv", NULL, 0, 0), EACCES,
		   "opendir a 0700 directory of another user -> EACCES");
	check_code(run(&U1, OP_STAT, "pd/priv/f", NULL, 0, 0), 0, "the owner searches it");
	chmod("pd/priv", 0711);
	check_code(run(&U2, OP_STAT, "pd/priv/f", NULL, 0, 0), 0, "search with x only");
	check_code(run(&U2, OP_READDIR, "pd/priv", NULL, 0, 0), EACCES,
		   "list with x only -> EACCES");

	/* Sticky, world-writable directory. */
	mkdir("pd/sticky", 01777);
	chmod("pd/sticky", 01777);
	check_code(run(&U1, OP_CREATE, "pd/sticky/u1", NULL, 0666, 0), 0,
		   "user 1 creates in a 1777 directory");
	check_code(run(&U2, OP_CREATE, "pd/sticky/u2", NULL, 0666, 0), 0,
		   "user 2 creates in a 1777 directory");
	stat("pd/sticky/u1", &st);
	check(st.st_uid == U1.uid && st.st_gid == U1.gid, "created file owned by its creator",
	      "got %u:%u", (unsigned)st.st_uid, (unsigned)st.st_gid);
	check((st.st_mode & 0777) == 0644, "the creator's umask applies", "mode 0%o",
	      (unsigned)st.st_mode);
	check_code(run(&U2, OP_UNLINK, "pd/sticky/u1", NULL, 0, 0), EPERM,
		   "unlink another user's file in a sticky dir -> EPERM");
	check_code(run(&U2, OP_RENAME, "pd/sticky/u1", "pd/sticky/stolen", 0, 0), EPERM,
		   "rename another user's file in a sticky dir -> EPERM");
	check_code(run(&U2, OP_RENAME, "pd/sticky/u2", "pd/sticky/u1", 0, 0), EPERM,
		   "rename over another user's file in a sticky dir -> EPERM");
	check_code(run(&U2, OP_UNLINK, "pd/sticky/u2", NULL, 0, 0), 0,
		   "unlink one's own file in a sticky dir");
	check_code(run(&U1, OP_UNLINK, "pd/sticky/u1", NULL, 0, 0), 0,
		   "the owner unlinks its file in a sticky dir");

	/* setgid directory: group and S_ISGID inherited. */
	mkdir("pd/sg", 0775);
	chown("pd/sg", 0, 2001);
	chmod("pd/sg", 02775);
	put("pd/sg/f", "x");
	stat("pd/sg/f", &st);
	check(st.st_gid == 2001, "a file in a setgid dir gets the dir's group", "gid %u",
	      (unsigned)st.st_gid);
	check(!(st.st_mode & S_ISGID), "a new file does not get S_ISGID", "mode 0%o",
	      (unsigned)st.st_mode);
	mkdir("pd/sg/sub", 0755);
	stat("pd/sg/sub", &st);
	check(st.st_gid == 2001, "a subdir of a setgid dir gets the dir's group", "gid %u",
	      (unsigned)st.st_gid);
	check((st.st_mode & S_ISGID) != 0, "a subdir of a setgid dir gets S_ISGID", "mode 0%o",
	      (unsigned)st.st_mode);
	check_code(run(&U1, OP_MKDIR, "pd/sticky/u1d", NULL, 0755, 0), 0,
		   "user 1 mkdir in a 1777 dir");
	chmod("pd/sg", 02777);
	check_code(run(&U1, OP_CREATE, "pd/sg/byu1", NULL, 0644, 0), 0,
		   "a non-member creates in a setgid dir");
	stat("pd/sg/byu1", &st);
	check(st.st_gid == 2001 && st.st_uid == U1.uid,
	      "a non-member's file still gets the dir's group", "got %u:%u",
	      (unsigned)st.st_uid, (unsigned)st.st_gid);
	check_code(run(&U1, OP_CHMOD, "pd/sg/byu1", NULL, 02755, 0), 0,
		   "chmod g+s by a non-member owner succeeds");
	stat("pd/sg/byu1", &st);
	check((st.st_mode & 07777) == 0755, "but S_ISGID is silently dropped", "mode 0%o",
	      (unsigned)st.st_mode);

	/* A non-owner's write clears S_ISUID (and S_ISGID with group exec). */
	put("pd/suid", "x");
	chown("pd/suid", U1.uid, U1.gid);
	chmod("pd/suid", 06777);
	check_code(run(&U2, OP_WRITE1, "pd/suid", NULL, 0, 0), 0, "a non-owner writes a 06777 file");
	stat("pd/suid", &st);
	check((st.st_mode & 07777) == 0777, "the write cleared S_ISUID and S_ISGID", "mode 0%o",
	      (unsigned)st.st_mode);
	chmod("pd/suid", 04777);
	check_code(run(&U1, OP_WRITE1, "pd/suid", NULL, 0, 0), 0, "the owner writes a 04777 file");
	stat("pd/suid", &st);
	check((st.st_mode & 07777) == 0777, "an owner's write clears S_ISUID too", "mode 0%o",
	      (unsigned)st.st_mode);
	chmod("pd/suid", 04777);
	{
		int fd = open("pd/suid", O_WRONLY);

		write(fd, "r", 1);
		close(fd);
	}
	stat("pd/suid", &st);
	check((st.st_mode & 07777) == 04777, "root's write keeps S_ISUID (CAP_FSETID)",
	      "mode 0%o", (unsigned)st.st_mode);
	check_code(run(&U2, OP_UTIME_NOW, "pd/suid", NULL, 0, 0), 0,
		   "utimensat(NOW) by a non-owner with write permission");
	chown("pd/suid", U2.uid, U2.gid);
	check_code(run(&U2, OP_CHOWN, "pd/suid", NULL, -1, 2001), 0,
		   "chgrp by the owner to its supplementary group");
	stat("pd/suid", &st);
	check(st.st_gid == 2001, "group changed", "gid %u", (unsigned)st.st_gid);
}

/* ------------------------------------------------------------------ */
/* The section table and main.                                         */
/* ------------------------------------------------------------------ */

static const struct {
	const char *name; /* section name, also the work subdirectory */
	void (*fn)(void); /* runs inside that subdirectory */
} sections[] = {
	{ "open", t_open },
	{ "rw", t_rw },
	{ "sparse", t_sparse },
	{ "truncate", t_truncate },
	{ "unlink", t_unlink },
	{ "rmdir", t_rmdir },
	{ "mkdir", t_mkdir },
	{ "link", t_link },
	{ "symlink", t_symlink },
	{ "rename", t_rename },
	{ "names", t_names },
	{ "special", t_special },
	{ "chmod", t_chmod_chown },
	{ "utimens", t_utimens },
	{ "times", t_timestamps },
	{ "stat", t_stat },
	{ "xattr", t_xattr },
	{ "fallocate", t_fallocate },
	{ "seek", t_seek },
	{ "sync", t_sync },
	{ "readdir", t_readdir },
	{ "statvfs", t_statvfs },
	{ "locks", t_posix_locks },
	{ "flock", t_flock },
	{ "direct", t_direct },
	{ "mmap", t_mmap },
	{ "perms", t_perms },
};

static int wanted(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only)
		return 1;
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return 1;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: cxfs-posix-check [--keep] [--only S1,S2] [--list] DIR\n");
}

int main(int argc, char **argv)
{
	const char *only = NULL, *dir = NULL;
	char work[PATH_MAX];
	int keep = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keep")) {
			keep = 1;
		} else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(argv[i], "--list")) {
			for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++)
				printf("%s\n", sections[s].name);
			return 0;
		} else if (argv[i][0] == '-' || dir) {
			usage();
			return 2;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	is_root = geteuid() == 0;
	snprintf(work, sizeof work, "%s/posix.%d", dir, (int)getpid());
	if (mkdir(work, 0755) < 0 || chmod(work, 0755) < 0 || chdir(work) < 0) {
		fprintf(stderr, "cxfs-posix-check: cannot set up %s: %s\n", work, strerror(errno));
		return 2;
	}
	section = "rmdir";
	if (wanted(only, "rmdir"))
		t_rmdir_busy(dir);
	for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
		if (!wanted(only, sections[s].name))
			continue;
		section = sections[s].name;
		if (mkdir(section, 0755) < 0 || chmod(section, 0755) < 0 || chdir(section) < 0) {
			check(0, "set up the section directory", "%s", errname(errno));
			continue;
		}
		umask(022);
		sections[s].fn();
		if (chdir("..") < 0) {
			fprintf(stderr, "cxfs-posix-check: lost the work directory\n");
			return 2;
		}
		if (!keep && rm_rf(section) < 0)
			check(0, "remove the section directory", "%s", errname(errno));
	}
	if (chdir("/") == 0 && !keep)
		rm_rf(work);
	printf("%u passed, %u failed\n", n_passed, n_failed);
	return n_failed ? 1 : 0;
}
