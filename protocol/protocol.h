#ifndef BATON_PROTOCOL_H
#define BATON_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * The control protocol spoken between batond and batonctl, specified in
 * baton-protocol(7). This module is pure: it encodes and parses lines held in
 * memory and never does I/O, so both programs link it and fuzzers drive it.
 */

/* A request line, newline included, is at most this long. */
#define PROTOCOL_REQUEST_MAX 1024
/* A request has at most this many words, the verb included. */
#define PROTOCOL_WORDS_MAX 32
/* A record line, newline included, is at most this long. */
#define PROTOCOL_RECORD_MAX 16384
/* A record has at most this many key=value fields. */
#define PROTOCOL_FIELDS_MAX 48
/* A name (service, socket) is at most this long and uses [A-Za-z0-9_.@-]. */
#define PROTOCOL_NAME_MAX 64

enum protocol_verb {
	VERB_STATUS,
	VERB_START,
	VERB_STOP,
	VERB_RESTART,
	VERB_UPGRADE,
	VERB_SIGNAL,
	VERB_WATCH,
	VERB_RELOAD,
	VERB_REEXEC,
	VERB_SHUTDOWN,
	VERB_METRICS,
	VERB_VERSION,
	VERB_LOGS,
	VERB_COUNT,
};

/*
 * Flags a request may carry after its verb (--lines=N carries a number); a
 * lone "--" ends them: every word after it is an argument.
 */
enum protocol_flag {
	FLAG_WAIT = 1 << 0,
	FLAG_FOLLOW = 1 << 1,
	FLAG_REOPEN = 1 << 2,
	FLAG_LINES = 1 << 3,
	FLAG_GEN = 1 << 4,
	FLAG_PID = 1 << 5,
	FLAG_CANARY = 1 << 6,   /* upgrade --canary=N */
	FLAG_OBSERVE = 1 << 7,  /* upgrade --observe=MILLISECONDS */
	FLAG_CONTINUE = 1 << 8, /* upgrade --continue */
	FLAG_ABORT = 1 << 9,    /* upgrade --abort */
	FLAG_GATE = 1 << 10,    /* upgrade --gate SERVICE -- WORDS... */
};

/* The numbers of the flags that carry one, by their flag. */
enum protocol_value {
	VALUE_LINES,
	VALUE_GEN,
	VALUE_PID,
	VALUE_CANARY,
	VALUE_OBSERVE,
	VALUE_COUNT,
};

struct protocol_verb_info {
	const char *name;
	int min_args, max_args; /* positional arguments, flags not counted */
	unsigned flags;         /* the flags this verb accepts */
	const char *usage;
};

struct protocol_request {
	enum protocol_verb verb;
	unsigned flags;
	unsigned long values[VALUE_COUNT]; /* of the flags given with a number */
	int argc;
	char *argv[PROTOCOL_WORDS_MAX]; /* point into buf */
	char buf[PROTOCOL_REQUEST_MAX];
};

/* Error codes of an `error CODE MESSAGE` line. */
#define PROTOCOL_E_USAGE "usage"
#define PROTOCOL_E_UNKNOWN_VERB "unknown-verb"
#define PROTOCOL_E_TOO_LONG "too-long"
#define PROTOCOL_E_NOT_FOUND "not-found"
#define PROTOCOL_E_DENIED "denied"
#define PROTOCOL_E_BUSY "busy"
#define PROTOCOL_E_FAILED "failed"
#define PROTOCOL_E_INVALID "invalid"
#define PROTOCOL_E_LIMIT "limit"
#define PROTOCOL_E_INTERNAL "internal"

/* Returns the description of a verb. */
const struct protocol_verb_info *protocol_verb_info(enum protocol_verb verb);

/*
 * Parses one request line of len bytes (without its newline; a trailing \r is
 * ignored). On success fills req and returns 0. On failure returns -1 and
 * points *code at an error code and writes a message into err (errlen bytes).
 */
int protocol_parse_request(struct protocol_request *req, const char *line, size_t len,
	const char **code, char *err, size_t errlen);

/* Tells whether s is a valid service or socket name. */
bool protocol_name_valid(const char *s);

/* The control socket's path for root when none is given. */
#define PROTOCOL_CONTROL_ROOT "/run/baton/control.sock"

/*
 * Returns the control socket's path when none is given (to free): for root,
 * PROTOCOL_CONTROL_ROOT; for anyone else, baton/control.sock in runtime_dir
 * ($XDG_RUNTIME_DIR), or NULL when that is not an absolute path.
 */
char *protocol_default_control(bool root, const char *runtime_dir);

/* A growable byte buffer that records are encoded into. */
struct protocol_buf {
	char *data;
	size_t len, cap;
	bool failed; /* an allocation failed; the content is incomplete */
};

/* Releases the memory of a buffer and empties it. */
void protocol_buf_finish(struct protocol_buf *buf);
/*
 * Makes room for more bytes at once, so that a buffer about to grow big is
 * not copied as it doubles; false (buf->failed set) when out of memory.
 */
bool protocol_buf_reserve(struct protocol_buf *buf, size_t more);

/* Appends len bytes; on allocation failure sets buf->failed. */
void protocol_buf_add(struct protocol_buf *buf, const void *data, size_t len);
/* Appends formatted text; on allocation failure sets buf->failed. */
void protocol_buf_printf(struct protocol_buf *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void protocol_buf_consume(struct protocol_buf *buf, size_t n);

/* Starts a record of the given type; end it with protocol_record_end. */
void protocol_record_begin(struct protocol_buf *buf, const char *type);
/* The two below with the key's length, which is known where the key is written out. */
void protocol_record_strn(struct protocol_buf *buf, const char *key, size_t keylen,
	const char *value);
void protocol_record_intn(struct protocol_buf *buf, const char *key, size_t keylen,
	long long value);

/* Adds key=value, quoting and escaping the value where needed. */
static inline void protocol_record_str(struct protocol_buf *buf, const char *key,
	const char *value)
{
	protocol_record_strn(buf, key, strlen(key), value);
}

/* Adds key=N. */
static inline void protocol_record_int(struct protocol_buf *buf, const char *key,
	long long value)
{
	protocol_record_intn(buf, key, strlen(key), value);
}
/* Adds key=N.NNN: a number of seconds with millisecond precision. */
void protocol_record_secs(struct protocol_buf *buf, const char *key, double secs);
/* Ends the record with a newline. */
void protocol_record_end(struct protocol_buf *buf);
/* Appends `error CODE MESSAGE`; newlines in message are replaced by spaces. */
void protocol_error(struct protocol_buf *buf, const char *code, const char *message);

struct protocol_field {
	const char *key;
	const char *value;
};

struct protocol_record {
	const char *type;
	int nfields;
	struct protocol_field fields[PROTOCOL_FIELDS_MAX];
	/* for an error record: the code and the message */
	const char *code;
	const char *message;
	char buf[PROTOCOL_RECORD_MAX];
};

/*
 * What each byte may be in a record: in a key (and a type), in a bare value,
 * in a quoted value as it is (without an escape).
 */
enum {
	PROTOCOL_BYTE_KEY = 1,
	PROTOCOL_BYTE_BARE = 2,
	PROTOCOL_BYTE_PLAIN = 4,
};
/* The class of each byte, a table of 256. */
const unsigned char *protocol_byte_classes(void);

/*
 * Parses one record line of len bytes (without its newline) into rec, whose
 * strings point into rec->buf. Returns 0, or -1 when the line is malformed.
 */
int protocol_parse_record(struct protocol_record *rec, const char *line, size_t len);
/* Returns the value of key in rec, or NULL. */
const char *protocol_record_get(const struct protocol_record *rec, const char *key);

enum protocol_value_type {
	VALUE_STRING,
	VALUE_INT,
	VALUE_NUMBER,
};

/* Tells how a field's value is to be read: every key has one type. */
enum protocol_value_type protocol_field_type(const char *key);

#endif
