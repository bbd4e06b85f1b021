#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_request: broken invariant: %s\n", what);
	abort();
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

// Whether a lone "--" comes before offset off in the line: then words are arguments.
static bool after_dashdash(const char *line, size_t off)
{
	for (size_t i = 0; i + 2 <= off; i++) {
		if (line[i] == '-' && line[i + 1] == '-' && (i == 0 || is_blank(line[i - 1])) &&
			(i + 2 == off || is_blank(line[i + 2])))
			return true;
	}
	return false;
}

// Every argument is a whole word of the line, found at the same offset in buf.
static void check_word(const struct protocol_request *req, const char *line, size_t len,
	const char *w)
{
	require(w >= req->buf && w < req->buf + sizeof(req->buf), "argv points into buf");
	size_t off = (size_t)(w - req->buf);
	size_t n = strnlen(w, sizeof(req->buf) - off);
	require(off + n < sizeof(req->buf), "argv word ends inside buf");
	require(n > 0 && off + n <= len, "argv word is a non-empty part of the line");
	require(memcmp(line + off, w, n) == 0, "argv word is the line's text");
	require(off > 0 && is_blank(line[off - 1]), "argv word starts after a blank");
	require(off + n == len || is_blank(line[off + n]), "argv word ends at a blank");
	require(strncmp(w, "--", 2) != 0 || after_dashdash(line, off),
		"a flag is not an argument, but after a lone --");
}

// The verb is the first word of the line.
static void check_verb(const char *name, const char *line, size_t len)
{
	size_t i = 0;
	while (i < len && is_blank(line[i]))
		i++;
	size_t n = strlen(name);
	require(len - i >= n && memcmp(line + i, name, n) == 0, "verb is the first word");
	require(i + n == len || is_blank(line[i + n]), "verb is a whole word");
}

static void check_request(const struct protocol_request *req, const char *line, size_t len)
{
	const struct protocol_verb_info *info = protocol_verb_info(req->verb);
	require(info != NULL, "verb is valid");
	require(len < PROTOCOL_REQUEST_MAX, "a request fits in PROTOCOL_REQUEST_MAX");
	require(req->argc >= 0 && req->argc < PROTOCOL_WORDS_MAX, "argc within PROTOCOL_WORDS_MAX");
	require(req->argc >= info->min_args && req->argc <= info->max_args,
		"argc within the verb's limits");
	require((req->flags & ~info->flags) == 0, "only the flags the verb accepts");
	check_verb(info->name, line, len);
	for (int i = 0; i < req->argc; i++) {
		check_word(req, line, len, req->argv[i]);
		require(i == 0 || req->argv[i] > req->argv[i - 1], "arguments keep their order");
	}
}

static void check_failure(const char *code, const char *err, size_t errlen, size_t len)
{
	require(code != NULL, "a failure has a code");
	require(strcmp(code, PROTOCOL_E_USAGE) == 0 || strcmp(code, PROTOCOL_E_UNKNOWN_VERB) == 0 ||
			strcmp(code, PROTOCOL_E_TOO_LONG) == 0,
		"a failure's code is usage, unknown-verb or too-long");
	require(memchr(err, '\0', errlen) != NULL && err[0] != '\0',
		"a failure has a NUL-terminated message");
	require(len < PROTOCOL_REQUEST_MAX || strcmp(code, PROTOCOL_E_TOO_LONG) == 0,
		"a long line fails as too-long");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct protocol_request req;
	const char *line = (const char *)data;
	const char *code = NULL;
	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = protocol_parse_request(&req, line, size, &code, err, sizeof(err));
	// The parser drops one trailing \r: so do the checks.
	size_t len = size > 0 && line[size - 1] == '\r' ? size - 1 : size;
	if (rc == 0)
		check_request(&req, line, len);
	else
		check_failure(code, err, sizeof(err), len);
	return 0;
}
