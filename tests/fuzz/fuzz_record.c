#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char key_chars[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";

// Records are large: keep them out of the stack.
static struct protocol_record first, second;

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_record: broken invariant: %s\n", what);
	abort();
}

static bool is_key(const char *s)
{
	return *s && strspn(s, key_chars) == strlen(s);
}

static bool in_buf(const struct protocol_record *rec, const char *s)
{
	return s >= rec->buf && s < rec->buf + sizeof(rec->buf);
}

static void check_parsed(const struct protocol_record *rec)
{
	require(in_buf(rec, rec->type) && is_key(rec->type), "type is a key in buf");
	bool error = strcmp(rec->type, "error") == 0;
	require(error == (rec->code != NULL && rec->message != NULL), "error records have a code");
	require(!error || rec->nfields == 0, "error records have no fields");
	require(!error || (in_buf(rec, rec->code) && in_buf(rec, rec->message)),
		"code and message point into buf");
	require(!error || (*rec->code && !strchr(rec->code, ' ')), "code is one word");
	require(rec->nfields >= 0 && rec->nfields <= PROTOCOL_FIELDS_MAX, "nfields in range");
	for (int i = 0; i < rec->nfields; i++) {
		require(in_buf(rec, rec->fields[i].key) && in_buf(rec, rec->fields[i].value),
			"fields point into buf");
		require(is_key(rec->fields[i].key), "field keys are keys");
	}
}

// An error message goes out with its line breaks turned into spaces.
static bool same_message(const char *sent, const char *got)
{
	for (; *sent; sent++, got++) {
		char c = *sent == '\n' || *sent == '\r' ? ' ' : *sent;
		if (*got != c)
			return false;
	}
	return *got == '\0';
}

static void encode(struct protocol_buf *buf, const struct protocol_record *rec)
{
	if (rec->code) {
		protocol_error(buf, rec->code, rec->message);
		return;
	}
	protocol_record_begin(buf, rec->type);
	for (int i = 0; i < rec->nfields; i++)
		protocol_record_str(buf, rec->fields[i].key, rec->fields[i].value);
	protocol_record_end(buf);
}

// Parses an encoded record, which must be one line.
static bool parse_encoded(struct protocol_record *rec, const struct protocol_buf *buf,
	bool one_line)
{
	require(!buf->failed && buf->len > 0 && buf->data[buf->len - 1] == '\n',
		"an encoded record ends with a newline");
	require(!one_line || memchr(buf->data, '\n', buf->len - 1) == NULL,
		"an encoded record is one line");
	if (buf->len - 1 >= PROTOCOL_RECORD_MAX)
		return false; // escaping grew it past the limit: not a round trip
	require(protocol_parse_record(rec, buf->data, buf->len - 1) == 0,
		"an encoded record parses");
	check_parsed(rec);
	return true;
}

static void require_same(const struct protocol_record *a, const struct protocol_record *b)
{
	require(strcmp(a->type, b->type) == 0, "round trip keeps the type");
	require(a->nfields == b->nfields, "round trip keeps the number of fields");
	for (int i = 0; i < a->nfields; i++) {
		require(strcmp(a->fields[i].key, b->fields[i].key) == 0, "round trip keeps keys");
		require(strcmp(a->fields[i].value, b->fields[i].value) == 0,
			"round trip keeps values");
	}
	require((a->code == NULL) == (b->code == NULL), "round trip keeps errors errors");
	require(!a->code || strcmp(a->code, b->code) == 0, "round trip keeps the code");
	require(!a->code || same_message(a->message, b->message), "round trip keeps the message");
}

static void round_trip(const struct protocol_record *rec)
{
	struct protocol_buf once = {0}, twice = {0};
	encode(&once, rec);
	// A code is sent as it is: only one without a line break makes one line.
	bool one_line = !rec->code || !strchr(rec->code, '\n');
	if (parse_encoded(&second, &once, one_line)) {
		require_same(rec, &second);
		encode(&twice, &second);
		require(twice.len == once.len && memcmp(twice.data, once.data, once.len) == 0,
			"encoding a parsed encoding changes nothing");
	}
	protocol_buf_finish(&once);
	protocol_buf_finish(&twice);
}

struct input {
	const uint8_t *data;
	size_t size, pos;
};

static uint8_t next_byte(struct input *in)
{
	return in->pos < in->size ? in->data[in->pos++] : 0;
}

static char *take_key(struct input *in, char *out, size_t max)
{
	size_t n = 1 + next_byte(in) % (max - 1);
	for (size_t i = 0; i < n; i++)
		out[i] = key_chars[next_byte(in) % (sizeof(key_chars) - 1)];
	out[n] = '\0';
	return out;
}

static char *take_value(struct input *in, char *out, size_t max)
{
	size_t n = next_byte(in) % max;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = next_byte(in);
		out[i] = (char)(c ? c : 'z'); // values hold no NUL
	}
	out[n] = '\0';
	return out;
}

// Encodes key=value pairs taken from the input and checks they parse back.
static void check_encoder(const uint8_t *data, size_t size)
{
	struct input in = {data, size, 0};
	struct protocol_buf buf = {0};
	char type[16], keys[PROTOCOL_FIELDS_MAX][16], values[PROTOCOL_FIELDS_MAX][64];
	take_key(&in, type, sizeof(type));
	if (strcmp(type, "error") == 0)
		strcpy(type, "fuzz");
	protocol_record_begin(&buf, type);
	int n = 0;
	while (n < PROTOCOL_FIELDS_MAX && in.pos < in.size) {
		take_key(&in, keys[n], sizeof(keys[n]));
		take_value(&in, values[n], sizeof(values[n]));
		protocol_record_str(&buf, keys[n], values[n]);
		n++;
	}
	protocol_record_end(&buf);
	require(parse_encoded(&second, &buf, true), "encoded pairs fit in a record");
	require(strcmp(second.type, type) == 0 && second.nfields == n,
		"encoded pairs keep the type and their number");
	for (int i = 0; i < n; i++) {
		require(strcmp(second.fields[i].key, keys[i]) == 0, "encoded keys parse back");
		require(strcmp(second.fields[i].value, values[i]) == 0, "encoded values parse back");
	}
	protocol_buf_finish(&buf);
}

// What batonctl status shows of a reply made of the lines of text (up to its
// end, split at newlines) when its line hook may take a line (fast) or not:
// each line parsed and given to the view. *out is the output, *size its length.
static void status_text(const char *text, size_t len, bool fast, char **out, size_t *size)
{
	FILE *f = open_memstream(out, size);
	require(f != NULL, "open_memstream");
	struct output *o = output_text_create(VERB_STATUS, false, f);
	require(o != NULL, "a text output");
	for (size_t at = 0; at < len;) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl ? (size_t)(nl - text) - at : len - at;
		// Each line in a buffer of its own size, so that reading past it is caught.
		char *line = malloc(n ? n : 1);
		require(line != NULL, "memory for a line");
		memcpy(line, text + at, n);
		bool taken = fast && o->line && o->line(o, line, n);
		require(!taken || protocol_parse_record(&second, line, n) == 0,
			"a line read straight parses");
		if (!taken && protocol_parse_record(&second, line, n) == 0 &&
			strcmp(second.type, "ok") != 0 && strcmp(second.type, "error") != 0)
			o->record(o, &second, line, n);
		free(line);
		at += n + 1;
	}
	require(protocol_parse_record(&second, "ok", 2) == 0, "ok parses");
	o->finish(o, &second);
	o->destroy(o);
	fclose(f);
}

// batonctl status shows every record the same whether its line hook takes
// the lines it can or the parser reads them all.
static void check_status(const char *text, size_t len)
{
	char *fast = NULL, *parsed = NULL;
	size_t nfast = 0, nparsed = 0;
	status_text(text, len, true, &fast, &nfast);
	status_text(text, len, false, &parsed, &nparsed);
	require(nfast == nparsed && memcmp(fast, parsed, nfast) == 0,
		"a status shows the same with its lines read straight");
	free(fast);
	free(parsed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	// The input as a reply's lines, and after "service ".
	if (size < PROTOCOL_RECORD_MAX) {
		static char prefixed[PROTOCOL_RECORD_MAX + 8];
		check_status((const char *)data, size);
		memcpy(prefixed, "service ", 8);
		memcpy(prefixed + 8, data, size);
		check_status(prefixed, size + 8);
	}
	if (protocol_parse_record(&first, (const char *)data, size) == 0) {
		check_parsed(&first);
		round_trip(&first);
	}
	check_encoder(data, size);
	return 0;
}
