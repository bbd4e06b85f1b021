#include "logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOGFILE_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

struct logfile {
	int fd;
	bool regular;      /* a regular file, the only kind that rotates */
	int rotate_errno;  /* of the last failed rotation not yet told */
	unsigned keep;
	uint64_t max_size; /* 0: never rotate */
	uint64_t size;     /* written since the file was opened, or since a failed rotation */
	int doomed;        /* the oldest file a rotation dropped, unlinked, being freed, or -1 */
	off_t doomed_size; /* ...what is left of it */
	char path[];
};

// Opens the path and writes to it from now on, closing the file in use; -1 with errno.
static int use_path(struct logfile *f)
{
	struct stat st;
	int fd = open(f->path, LOGFILE_FLAGS, 0640);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	if (f->fd >= 0)
		close(f->fd);
	f->fd = fd;
	f->regular = S_ISREG(st.st_mode);
	f->size = f->regular ? (uint64_t)st.st_size : 0;
	return 0;
}

struct logfile *logfile_open(const char *path, uint64_t max_size, unsigned keep, char *err,
	size_t errlen)
{
	if (keep > LOGFILE_KEEP_MAX) {
		snprintf(err, errlen, "log file %s: cannot keep %u old files, %d at most", path,
			keep, LOGFILE_KEEP_MAX);
		return NULL;
	}
	struct logfile *f = calloc(1, sizeof(*f) + strlen(path) + 1);
	if (!f)
		goto error;
	strcpy(f->path, path);
	f->fd = -1;
	f->doomed = -1;
	f->keep = keep;
	f->max_size = max_size;
	if (use_path(f) < 0)
		goto error;
	return f;
error:
	snprintf(err, errlen, "log file %s: %s", path, strerror(errno));
	free(f);
	return NULL;
}

int logfile_reopen(struct logfile *f)
{
	return use_path(f);
}

// Takes PATH.KEEP away before the names shift over it, unlinked but open:
// freeing a large file's blocks takes milliseconds, and a rename over it
// would take them all at once in the loop. logfile_reclaim frees them in
// steps. Only a regular file with no other name is taken, never what a
// symbolic link points to: what it holds is truncated. Any other is left to
// the rename, which drops only its name.
static void doom_oldest(struct logfile *f, const char *oldest)
{
	if (f->doomed >= 0) {
		close(f->doomed); /* the one before, not freed yet: at once */
		f->doomed = -1;
	}
	int fd = open(oldest, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
		unlink(oldest) == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0) {
		f->doomed = fd;
		f->doomed_size = st.st_size;
		return;
	}
	close(fd);
}

// Renames PATH.(KEEP-1) to PATH.KEEP, ..., PATH to PATH.1; -1 with errno.
static int shift_names(struct logfile *f)
{
	size_t size = strlen(f->path) + sizeof(".1000");
	char *from = malloc(2 * size);
	if (!from)
		return -1;
	char *to = from + size;
	snprintf(to, size, "%s.%u", f->path, f->keep);
	doom_oldest(f, to);
	for (unsigned i = f->keep; i >= 1; i--) {
		if (i > 1)
			snprintf(from, size, "%s.%u", f->path, i - 1);
		else
			snprintf(from, size, "%s", f->path);
		snprintf(to, size, "%s.%u", f->path, i);
		if (rename(from, to) < 0 && errno != ENOENT) {
			int e = errno;
			free(from);
			errno = e;
			return -1;
		}
	}
	free(from);
	return 0;
}

// Tells whether n more bytes would take the file past its maximum size.
static bool full(const struct logfile *f, size_t n)
{
	if (!f->regular || f->max_size == 0 || f->size == 0)
		return false;
	return f->size >= f->max_size || n > f->max_size - f->size;
}

// Starts the file afresh; -1 with errno, the file in use kept.
static int rotate(struct logfile *f)
{
	if (f->keep > 0)
		return shift_names(f) < 0 ? -1 : use_path(f);
	if (ftruncate(f->fd, 0) < 0)
		return -1;
	f->size = 0;
	return 0;
}

// Takes back the done bytes a failed write left at the end of the file.
static void take_back(struct logfile *f, size_t done)
{
	struct stat st;
	if (done == 0 || !f->regular || fstat(f->fd, &st) < 0 || (uint64_t)st.st_size < done)
		return;
	if (ftruncate(f->fd, st.st_size - (off_t)done) < 0) {
		// Nothing more to do: the next line will follow a piece of this one.
	}
}

int logfile_write(struct logfile *f, const char *data, size_t n)
{
	if (full(f, n) && rotate(f) < 0) {
		f->rotate_errno = errno;
		// The next try comes after another max_size bytes, not at every line.
		f->size = 0;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(f->fd, data + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			take_back(f, done);
			errno = e;
			return -1;
		}
		done += (size_t)w;
	}
	f->size += n;
	return 0;
}

int logfile_rotate_error(struct logfile *f)
{
	int e = f->rotate_errno;
	f->rotate_errno = 0;
	return e;
}

int logfile_reclaim(struct logfile *f, uint64_t max)
{
	if (!f || f->doomed < 0)
		return 0;
	off_t left = (uint64_t)f->doomed_size > max ? f->doomed_size - (off_t)max : 0;
	if (left > 0 && ftruncate(f->doomed, left) == 0) {
		f->doomed_size = left;
		return 1;
	}
	close(f->doomed); /* the rest, or all of it if the truncation failed */
	f->doomed = -1;
	return 0;
}

bool logfile_reclaiming(const struct logfile *f)
{
	return f && f->doomed >= 0;
}

void logfile_close(struct logfile *f)
{
	if (!f)
		return;
	if (f->doomed >= 0)
		close(f->doomed);
	close(f->fd);
	free(f);
}
