#ifndef BATON_LOGLINE_H
#define BATON_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "protocol.h"

/*
 * One line a process wrote, formatted for a person (logline_text) or for a
 * program (logline_json). Pure: the line and its time are given, and the
 * output is appended to a buffer.
 */

enum logline_stream {
	LOGLINE_OUT, /* stdout */
	LOGLINE_ERR, /* stderr */
};

struct logline {
	double time;         /* wall clock, seconds since the epoch */
	const char *service; /* a C string */
	pid_t pid;
	unsigned gen;
	enum logline_stream stream;
	const char *text; /* the line's bytes, any bytes, without its '\n' */
	size_t len;
	bool cut; /* the line was longer, and this is its start */
};

/* Returns "out" or "err". */
const char *logline_stream_name(enum logline_stream stream);

/*
 * Appends the line for a person, as one line of valid UTF-8:
 *
 *   2026-12-01T19:45:00.123456Z web[4242] gen 3 err: TEXT [cut]
 *
 * the time only when with_time, " [cut]" only when the line is cut. The
 * time is UTC, rounded to the microsecond; one before the epoch is written
 * as the epoch, one past the year 9999 as its last microsecond.
 *
 * TEXT is the line's bytes, but for those that would break the line or the
 * terminal that shows it, each written \xNN (two lowercase hex digits): the
 * control characters (U+0000 to U+001F but tab, U+007F, U+0080 to U+009F),
 * the line and paragraph separators (U+2028, U+2029), and every byte that
 * is not part of valid UTF-8 (RFC 3629: no overlong form, no surrogate). A
 * backslash is not escaped: the text is for people, and a program that
 * needs every byte reads the JSON form. A '\r' that ends the line is left
 * out, so that lines ended "\r\n" read as others do. The service's name is
 * escaped the same way.
 */
void logline_text(struct protocol_buf *b, const struct logline *l, bool with_time);

/*
 * Appends the line for a program, as one JSON object (RFC 8259), with no
 * blank outside its strings, and '\n':
 *
 *   {"time":"2026-12-01T19:45:00.123456Z","service":"web","pid":4242,"gen":3,
 *    "stream":"err","line":"TEXT","cut":true}
 *
 * "cut" only when the line is cut; the time as in logline_text. "line" is
 * always a string, whatever the text looks like, with '"', '\' and U+0000 to
 * U+001F escaped (\", \\, \b, \f, \n, \r, \t, else \u00XX), and U+007F as
 * \u007f. JSON text is Unicode, so a line that is not valid UTF-8 (RFC 3629)
 * cannot be a string as it is: in "line", each byte that is not part of
 * valid UTF-8 becomes U+FFFD, which every JSON reader takes, and
 * "line_base64" follows "line" with the line's exact bytes in base64 (RFC
 * 4648, padded), so that nothing is lost. A service's name that is not
 * UTF-8 has its bytes replaced the same way.
 */
void logline_json(struct protocol_buf *b, const struct logline *l);

/*
 * Appends the line as a record of baton-protocol(7), for a client:
 *
 *   log time=2026-12-01T19:45:00.123456Z service=web gen=3 pid=4242
 *       stream=err line=TEXT [line_base64=BYTES] [cut=yes]
 *
 * A record carries no NUL byte and is read as UTF-8: in "line", each NUL and
 * each byte that is not part of valid UTF-8 becomes U+FFFD, and
 * "line_base64" then has the line's exact bytes, as logline_json does. A
 * record is at most PROTOCOL_RECORD_MAX - 1 bytes before its newline: for a
 * line that would make a longer one, it carries the longest start of the
 * line that fits, cut on a character, and is marked cut.
 */
void logline_record(struct protocol_buf *b, const struct logline *l);

/*
 * Writes a line as a C string of valid UTF-8 for a record's field: NUL and
 * bytes that are not UTF-8 replaced by U+FFFD, cut on a character so that
 * the replacements fit outlen.
 */
void logline_clean(const char *text, size_t len, char *out, size_t outlen);

#endif
