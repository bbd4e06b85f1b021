#ifndef BATON_LOGFILE_H
#define BATON_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A file that lines are appended to, rotated by size: before a write that
 * would take it past its maximum size, PATH.(KEEP-1) is renamed PATH.KEEP
 * (replacing it), and so on down to PATH, renamed PATH.1, and a new PATH is
 * opened. Old files are not compressed: to compress them, let logrotate(8)
 * rotate the file and have batond reopen it (logfile_reopen). The file is
 * batond's alone: no other process writes to it.
 *
 * Nothing here waits: the file is opened O_NONBLOCK, so that a FIFO without
 * a reader fails at once rather than hanging, and a write to a full pipe
 * fails with EAGAIN. Writes to a regular file wait only for the disk.
 */

/* The most old files a logfile keeps. */
#define LOGFILE_KEEP_MAX 1000

struct logfile;

/*
 * Opens path for appending (O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, mode 0640
 * less the umask), creating the file but no directory. max_size is the size
 * past which it rotates, 0 for never; keep is how many old files it keeps,
 * at most LOGFILE_KEEP_MAX, and with keep 0 a full file is emptied instead.
 * Only a regular file rotates. Returns the logfile, or NULL with a message
 * naming the path and the reason in err ("log file /var/log/web.log:
 * Permission denied").
 */
struct logfile *logfile_open(const char *path, uint64_t max_size, unsigned keep, char *err,
	size_t errlen);

/*
 * Appends n bytes, whole lines, rotating the file first when they would take
 * it past its maximum size and it is not empty: a write is never split
 * between two files, and one larger than the maximum makes a file of its
 * own. Returns 0, or -1 with errno (ENOSPC when the disk is full) when the
 * bytes were not written; what a failed write left of them in a regular
 * file is taken back, so that the file holds whole lines and takes the next
 * write. A rotation that fails does not stop the write, which goes to the
 * file in use, and the next try comes after another max_size bytes: see
 * logfile_rotate_error.
 */
int logfile_write(struct logfile *f, const char *data, size_t n);

/*
 * Returns the errno of a rotation that failed since the last call, 0 if
 * none did, and forgets it.
 */
int logfile_rotate_error(struct logfile *f);

/*
 * Opens the path again, so that writes go to the file now there, after
 * logrotate(8) or a person moved the old one away; the size counts from
 * the new file's. Returns 0, or -1 with errno, the old file still in use.
 */
int logfile_reopen(struct logfile *f);

/*
 * Frees up to max bytes of the oldest file the last rotation dropped: it is
 * unlinked as the rotation takes its name, and its blocks, which can take
 * milliseconds to free, are freed a step at a time. Returns 1 while some is
 * left, 0 when nothing is.
 */
int logfile_reclaim(struct logfile *f, uint64_t max);

/* Tells whether a file the last rotation dropped is still being freed. */
bool logfile_reclaiming(const struct logfile *f);

/* Closes the file, and any the last rotation dropped, and frees the logfile. */
void logfile_close(struct logfile *f);

#endif
