/*
 * blk_file.c - the plain file backend of the block device layer: a regular
 * file (created with opts->create_size if missing) or a block device node,
 * accessed with pread/pwrite loops and made durable with fdatasync.  The
 * system calls go through blk__file_sys so the unit test can inject faults.
 *
 * The backend holds no lock: the kernel orders concurrent pread/pwrite on
 * one descriptor, and blk.c serializes read-modify-writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "block/blk_i.h"

/* Sector size reported for a regular file: the smallest a disk has. */
#define BLK__FILE_SECTOR 512u

struct blk__file {
	int fd;                           /* open descriptor, constant while open */
};

struct blk__file_syscalls blk__file_sys = {
	.pread = pread,
	.pwrite = pwrite,
	.fdatasync = fdatasync,
};

/* Open an existing @path, or create it with @create_size bytes. */
static int blk__file_open_fd(const char *path, const struct blk_open_opts *opts)
{
	int flags = (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd, err;

	for (;;) {
		fd = open(path, flags);
		if (fd >= 0 || errno != ENOENT || !opts->create_size || opts->read_only)
			break;
		fd = open(path, flags | O_CREAT | O_EXCL, 0644);
		if (fd < 0 && errno == EEXIST)
			continue; /* somebody else created it first: open theirs */
		if (fd < 0)
			break;
		if (ftruncate(fd, (off_t)opts->create_size) < 0) {
			err = errno;
			close(fd);
			unlink(path);
			errno = err;
			fd = -1;
		}
		break;
	}
	if (fd < 0)
		return -errno;
	return fd;
}

static int blk__file_open(struct blk_dev *dev, const char *uri, const struct blk_open_opts *opts)
{
	struct blk__file *f;
	struct stat st;
	uint64_t size;
	int ssz, rc;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fd = blk__file_open_fd(uri, opts);
	if (f->fd < 0) {
		rc = f->fd;
		fprintf(stderr, "cxfs blk: cannot open %s: %s\n", uri, strerror(-rc));
		goto out_free;
	}
	if (fstat(f->fd, &st) < 0) {
		rc = -errno;
		goto out_close;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(f->fd, BLKGETSIZE64, &size) < 0 || ioctl(f->fd, BLKSSZGET, &ssz) < 0) {
			rc = -errno;
			fprintf(stderr, "cxfs blk: %s: cannot get the device size\n", uri);
			goto out_close;
		}
		dev->sector_size = (uint32_t)ssz;
	} else if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
		dev->sector_size = BLK__FILE_SECTOR;
	} else {
		rc = -EINVAL;
		fprintf(stderr, "cxfs blk: %s is neither a regular file nor a block device\n", uri);
		goto out_close;
	}
	dev->size = size & ~(uint64_t)(dev->sector_size - 1);
	dev->be.file = f;
	return 0;

out_close:
	close(f->fd);
out_free:
	free(f);
	return rc;
}

static void blk__file_close(struct blk_dev *dev)
{
	close(dev->be.file->fd);
	free(dev->be.file);
	dev->be.file = NULL;
}

static int blk__file_read(struct blk_dev *dev, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = blk__file_sys.pread(dev->be.file->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* the file shrank under us */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int blk__file_write(struct blk_dev *dev, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = blk__file_sys.pwrite(dev->be.file->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* no progress and no error: do not spin */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int blk__file_flush(struct blk_dev *dev)
{
	if (blk__file_sys.fdatasync(dev->be.file->fd) < 0)
		return -errno;
	return 0;
}

const struct blk__ops blk__file_ops = {
	.open = blk__file_open,
	.close = blk__file_close,
	.read = blk__file_read,
	.write = blk__file_write,
	.flush = blk__file_flush,
	.pr_out = NULL,
	.pr_in = NULL,
};
