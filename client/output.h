#ifndef BATONCTL_OUTPUT_H
#define BATONCTL_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "protocol.h"

/*
 * How batonctl shows a reply: readable text (tables for status) or JSON. A
 * reply is a run of records, then a final ok or error; streaming replies
 * (watch, --wait) show each record as it arrives.
 */
struct output {
	/* Called for every record before the final line, with the line itself. */
	void (*record)(struct output *o, const struct protocol_record *rec, const char *line,
		size_t len);
	/* Called once with the final line: ok, or an error record. */
	void (*finish)(struct output *o, const struct protocol_record *final);
	void (*destroy)(struct output *o);
	enum protocol_verb verb;
	bool streaming;
	FILE *out;
	/* When set, called about ten times a second while waiting for records. */
	void (*tick)(struct output *o);
	/* When set, called with each record's line before it is parsed: true when it
	 * took the line, which is then neither parsed nor given to record. It takes
	 * only a line the parser accepts, never the final one (ok, error), and
	 * shows it exactly as record would. */
	bool (*line)(struct output *o, const char *line, size_t len);
};

/* Writes the one-line text form of a record (an event, a service, ...). */
void output_print_line(FILE *out, const struct protocol_record *rec);

/* Creates the text output for a verb's reply. */
struct output *output_text_create(enum protocol_verb verb, bool streaming, FILE *out);

/* Creates the JSON output: one object, or one object per line when streaming. */
struct output *output_json_create(enum protocol_verb verb, bool streaming, FILE *out);

/* Writes s as a JSON string, quoted and escaped (invalid UTF-8 becomes U+FFFD). */
void json_write_string(FILE *out, const char *s);

/* Writes a record's fields as the members of a JSON object, typed by key. */
void json_write_fields(FILE *out, const struct protocol_record *rec);

#endif
