#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_record.h"

/*
 * Definitions and configurations from records as a re-exec's state carries
 * them (conf_record.h): whatever the input, no crash and no leak; and a
 * definition read is written and read back the same.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_conf_record: broken invariant: %s\n", what);
	abort();
}

struct input {
	const char *text;
	size_t len, pos;
	struct protocol_record rec;
};

static int next(struct input *in)
{
	if (in->pos >= in->len)
		return -1;
	const char *line = in->text + in->pos, *nl = memchr(line, '\n', in->len - in->pos);
	size_t n = nl ? (size_t)(nl - line) : in->len - in->pos;
	in->pos += n + 1;
	return protocol_parse_record(&in->rec, line, n);
}

// The bytes after a record with length=N, copied, or NULL.
static char *bytes(struct input *in)
{
	const char *len = protocol_record_get(&in->rec, "length");
	char *end;
	unsigned long long n = len ? strtoull(len, &end, 10) : 0;
	if (!len || *end || in->pos > in->len || n >= in->len - in->pos ||
		memchr(in->text + in->pos, '\0', n))
		return NULL;
	char *text = strndup(in->text + in->pos, n);
	in->pos += n + 1;
	return text;
}

// Reads one definition back after writing it: the same fields and words.
static void check_round_trip(const struct service_conf *c)
{
	struct protocol_buf b = {0};
	conf_record_write_service(&b, 0, c);
	require(!b.failed, "a definition can be written");
	struct input in = {b.data, b.len, 0, {0}};
	require(next(&in) == 0, "the conf record parses");
	struct service_conf *back = conf_record_read_service(&in.rec, bytes(&in));
	require(back != NULL, "a definition written reads back");
	while (next(&in) == 0) {
		char list[16];
		snprintf(list, sizeof(list), "%s", protocol_record_get(&in.rec, "list"));
		require(conf_record_add_word(back, list, bytes(&in)) == 0, "its words read back");
	}
	require(service_conf_equal(c, back), "the definition reads back the same");
	require(strcmp(c->command, back->command) == 0, "the command reads back the same");
	service_conf_unref(back);
	protocol_buf_finish(&b);
}

static void finish_conf(struct service_conf *c)
{
	// Only a definition with the words it needs is compared.
	if (c && c->argv && c->env)
		check_round_trip(c);
	service_conf_unref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {(const char *)data, size, 0, {0}};
	struct service_conf *conf = NULL;
	struct config *config = NULL;
	while (next(&in) == 0) {
		const char *type = in.rec.type, *list = protocol_record_get(&in.rec, "list");
		if (strcmp(type, "conf") == 0) {
			finish_conf(conf);
			conf = conf_record_read_service(&in.rec, bytes(&in));
		} else if (strcmp(type, "word") == 0 && conf && list) {
			char kind[16];
			snprintf(kind, sizeof(kind), "%s", list);
			conf_record_add_word(conf, kind, bytes(&in));
		} else if (strcmp(type, "config") == 0 && !config) {
			config = conf_record_read_config(&in.rec);
		} else if (strcmp(type, "socket_conf") == 0 && config) {
			conf_record_add_socket(config, &in.rec);
		}
	}
	finish_conf(conf);
	config_destroy(config);
	return 0;
}
