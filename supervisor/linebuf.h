#ifndef BATON_LINEBUF_H
#define BATON_LINEBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Splits a byte stream (a process's stdout or stderr) into lines. A line is
 * the bytes before a '\n', all of them: a '\r' before the '\n' is kept, and
 * so is a NUL. Pure: bytes go in, lines come out through a callback.
 *
 * Lines wholly inside one feed are handed out where they lie; only the start
 * of a line that a feed leaves unfinished is copied, into a buffer allocated
 * then and freed as soon as the line ends, so a linebuf holding nothing costs
 * no memory beyond the struct.
 */

/* The longest line delivered whole; a longer one is cut to this many bytes. */
#define LINEBUF_MAX 16384

/* What the callback is told about a line. */
enum linebuf_flag {
	/*
	 * The line was longer than LINEBUF_MAX: these are its first LINEBUF_MAX
	 * bytes, and the rest of it, up to the next '\n', is dropped.
	 */
	LINEBUF_CUT = 1 << 0,
	/*
	 * No '\n' ended the line: the stream ended (linebuf_flush), or memory
	 * ran out to keep it until its end, whose bytes then come as a line of
	 * their own.
	 */
	LINEBUF_PARTIAL = 1 << 1,
};

struct linebuf {
	char *buf;     /* the unfinished line's bytes, or NULL */
	uint16_t len;  /* bytes in buf, at most LINEBUF_MAX */
	uint16_t cap;  /* bytes allocated */
	bool dropping; /* dropping the rest of a cut line until its '\n' */
};

/*
 * Called for each line, without its '\n', with its LINEBUF_* flags. The line
 * may be in the linebuf's own buffer: it is valid during the call only, and
 * the callback must not feed, flush or finish the same linebuf.
 */
typedef void (*linebuf_fn)(void *data, const char *line, size_t len, unsigned flags);

/* Initialises an empty linebuf, which allocates nothing. */
void linebuf_init(struct linebuf *lb);

/*
 * Feeds n bytes of the stream, calling fn for each line they end, in order,
 * and keeping an unfinished last line for the next feed. Returns how many
 * bytes of cut lines were dropped, the '\n' that ends a cut line not
 * counted: of a whole stream, flushed, every byte is in a line, is a '\n',
 * or is counted here.
 */
size_t linebuf_feed(struct linebuf *lb, const char *bytes, size_t n, linebuf_fn fn, void *data);

/*
 * Ends the stream: a kept unfinished line is delivered, flagged
 * LINEBUF_PARTIAL, and the linebuf is empty again, as after linebuf_init.
 */
void linebuf_flush(struct linebuf *lb, linebuf_fn fn, void *data);

/* Frees what the linebuf holds, discarding an unfinished line. */
void linebuf_finish(struct linebuf *lb);

/*
 * Returns the unfinished line's bytes (NULL when there are none), their
 * count in *len, and in *dropping whether the rest of a cut line is being
 * dropped: what linebuf_restore needs to go on, in another batond, where this
 * one stopped. The bytes are valid until the next call on lb.
 */
const char *linebuf_pending(const struct linebuf *lb, size_t *len, bool *dropping);

/*
 * Makes an empty linebuf hold what linebuf_pending returned. Returns 0, or
 * -1 with errno EINVAL when len is over LINEBUF_MAX or len is not 0 while
 * dropping, or ENOMEM; the linebuf is then unchanged.
 */
int linebuf_restore(struct linebuf *lb, const char *bytes, size_t len, bool dropping);

#endif
