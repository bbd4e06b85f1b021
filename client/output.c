#include "output.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logrecord.h"

/* ---- JSON ---- */

// Returns the length of the valid UTF-8 sequence at s, or 0.
static size_t utf8_length(const unsigned char *s)
{
	size_t n;
	uint32_t cp;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	if (s[0] < 0xe0) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] < 0xf0) {
		n = 3;
		cp = s[0] & 0x0f;
	} else {
		n = 4;
		cp = s[0] & 0x07;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		(n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void json_write_string(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	putc_unlocked('"', out);
	while (*s) {
		// A run of bytes that stand for themselves, in one write: keys and
		// most values are nothing else.
		const unsigned char *run = s;
		while (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\')
			s++;
		if (s > run)
			fwrite_unlocked(run, 1, (size_t)(s - run), out);
		if (!*s)
			break;
		unsigned char c = *s;
		if (c == '"' || c == '\\') {
			fprintf(out, "\\%c", c);
		} else if (c == '\n') {
			fputs_unlocked("\\n", out);
		} else if (c == '\t') {
			fputs_unlocked("\\t", out);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(out, "\\u%04x", c);
		} else if (c >= 0x80) {
			size_t n = utf8_length(s);
			if (n == 0) {
				fputs_unlocked("\\ufffd", out);
				s++;
				continue;
			}
			fwrite_unlocked(s, 1, n, out);
			s += n;
			continue;
		} else {
			putc_unlocked(c, out);
		}
		s++;
	}
	putc_unlocked('"', out);
}

// A JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
static bool is_number(const char *s)
{
	const char *p = s;
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

void json_write_fields(FILE *out, const struct protocol_record *rec)
{
	for (int i = 0; i < rec->nfields; i++) {
		const struct protocol_field *f = &rec->fields[i];
		if (i > 0)
			putc_unlocked(',', out);
		json_write_string(out, f->key);
		putc_unlocked(':', out);
		if (protocol_field_type(f->key) != VALUE_STRING && is_number(f->value))
			fputs_unlocked(f->value, out);
		else
			json_write_string(out, f->value);
	}
}

static const struct {
	const char *type;
	const char *key;
	bool array;
} json_keys[] = {
	{"daemon", "daemon", false},
	{"version", "version", false},
	{"upgrade", "upgrade", false},
	{"signalled", "signalled", false},
	{"socket", "sockets", true},
	{"service", "services", true},
	{"proc", "procs", true},
	{"event", "events", true},
	{"reload", "changes", true},
	{"reexec", "reexec", false},
	{"metric", "metrics", true},
};

struct json_group {
	char type[64]; /* the records' */
	char key[64];
	bool array;
	size_t members;
	char *text; /* the members, comma separated */
	size_t len;
	FILE *f;
};

struct json_output {
	struct output base;
	struct json_group groups[16];
	int ngroups;
};

static struct json_group *json_group(struct json_output *j, const char *type)
{
	for (int i = 0; i < j->ngroups; i++) {
		if (strcmp(j->groups[i].type, type) == 0)
			return &j->groups[i];
	}
	char key[64];
	bool array = true;
	snprintf(key, sizeof(key), "%ss", type);
	for (size_t i = 0; i < sizeof(json_keys) / sizeof(json_keys[0]); i++) {
		if (strcmp(json_keys[i].type, type) == 0) {
			snprintf(key, sizeof(key), "%s", json_keys[i].key);
			array = json_keys[i].array;
		}
	}
	for (int i = 0; i < j->ngroups; i++) {
		if (strcmp(j->groups[i].key, key) == 0)
			return &j->groups[i];
	}
	if (j->ngroups == (int)(sizeof(j->groups) / sizeof(j->groups[0])))
		return NULL;
	struct json_group *g = &j->groups[j->ngroups++];
	snprintf(g->type, sizeof(g->type), "%s", type);
	snprintf(g->key, sizeof(g->key), "%s", key);
	g->array = array;
	g->members = 0;
	g->f = open_memstream(&g->text, &g->len);
	return g->f ? g : NULL;
}

// A log record as the object of a log file, or -1 when it is malformed.
static int json_log(FILE *out, const struct protocol_record *rec)
{
	struct protocol_buf b = {0};
	int rc = logrecord_json(&b, rec);
	if (rc == 0 && !b.failed)
		fputs(b.data, out);
	protocol_buf_finish(&b);
	return rc;
}

// A reply of logs that holds only its newest lines says so; on stderr, so
// that standard output holds only lines, as a log file does.
static bool logs_cut(const struct output *o, const struct protocol_record *rec)
{
	if (o->verb != VERB_LOGS || strcmp(rec->type, "cut") != 0)
		return false;
	const char *lines = protocol_record_get(rec, "lines");
	const char *max = protocol_record_get(rec, "max_bytes");
	const char *dropped = protocol_record_get(rec, "dropped");
	lines = lines ? lines : "?";
	if (dropped && strcmp(dropped, lines) == 0)
		fprintf(stderr, "batonctl: %s lines were left out: their service's log_buffer "
				"dropped them before batond could send them\n",
			lines);
	else
		fprintf(stderr, "batonctl: the %s oldest lines asked for were left out: a reply holds "
				"%s bytes of lines at most (--lines=N asks for the last N)%s%s%s\n",
			lines, max ? max : "a limited number of", dropped ? "; " : "",
			dropped ? dropped : "",
			dropped ? " of them dropped by their service's log_buffer before batond "
				  "could send them" : "");
	return true;
}

static void json_record(struct output *o, const struct protocol_record *rec, const char *line,
	size_t len)
{
	if (logs_cut(o, rec))
		return;
	(void)line;
	(void)len;
	struct json_output *j = (struct json_output *)o;
	// logs prints lines as a log file holds them, one object each.
	if (strcmp(rec->type, "log") == 0 && json_log(o->out, rec) == 0) {
		fflush(o->out);
		return;
	}
	if (o->streaming || o->verb == VERB_LOGS) {
		fputs("{\"type\":", o->out);
		json_write_string(o->out, rec->type);
		if (rec->nfields > 0)
			fputc(',', o->out);
		json_write_fields(o->out, rec);
		fputs("}\n", o->out);
		fflush(o->out);
		return;
	}
	struct json_group *g = json_group(j, rec->type);
	if (!g)
		return;
	if (g->members++ > 0) {
		if (!g->array)
			return;
		fputc(',', g->f);
	}
	fputc('{', g->f);
	json_write_fields(g->f, rec);
	fputc('}', g->f);
}

static void json_error(FILE *out, const struct protocol_record *final)
{
	fputs("\"error\":{\"code\":", out);
	json_write_string(out, final->code ? final->code : "");
	fputs(",\"message\":", out);
	json_write_string(out, final->message ? final->message : "");
	fputc('}', out);
}

static void json_finish(struct output *o, const struct protocol_record *final)
{
	struct json_output *j = (struct json_output *)o;
	bool ok = strcmp(final->type, "ok") == 0;
	// What logs prints is only its lines, as a log file holds them.
	if (o->verb == VERB_LOGS) {
		if (!ok)
			fprintf(stderr, "batonctl: %s\n", final->message ? final->message : "error");
		return;
	}
	// A status always has its three lists, even empty: scripts index them.
	if (ok && o->verb == VERB_STATUS) {
		json_group(j, "socket");
		json_group(j, "service");
		json_group(j, "proc");
	}
	fprintf(o->out, "{\"ok\":%s", ok ? "true" : "false");
	if (!ok) {
		fputc(',', o->out);
		json_error(o->out, final);
	}
	for (int i = 0; !o->streaming && i < j->ngroups; i++) {
		struct json_group *g = &j->groups[i];
		fflush(g->f);
		fputc(',', o->out);
		json_write_string(o->out, g->key);
		fprintf(o->out, g->array ? ":[%.*s]" : ":%.*s", (int)g->len, g->text);
	}
	fputs("}\n", o->out);
	fflush(o->out);
}

static void json_destroy(struct output *o)
{
	struct json_output *j = (struct json_output *)o;
	for (int i = 0; i < j->ngroups; i++) {
		fclose(j->groups[i].f);
		free(j->groups[i].text);
	}
	free(j);
}

struct output *output_json_create(enum protocol_verb verb, bool streaming, FILE *out)
{
	struct json_output *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->base = (struct output){json_record, json_finish, json_destroy, verb, streaming, out, NULL,
		NULL};
	return &j->base;
}

/* ---- text ---- */

static const char *get(const struct protocol_record *rec, const char *key)
{
	const char *v = protocol_record_get(rec, key);
	return v ? v : "";
}

// A key of up to 15 bytes and the byte after it (its NUL in a parsed record,
// its '=' in a line) as two words, and the mask of those bytes: a key is
// compared with it in two loads.
struct word_key {
	uint64_t word[2], mask[2];
};

// Fills w with key and end; *len (when given) is their length. False for a
// key too long for the words.
static bool word_key(const char *key, char end, struct word_key *w, size_t *len)
{
	size_t n = strlen(key);
	if (n > 15)
		return false;
	unsigned char bytes[16] = {0}, mask[16] = {0};
	memcpy(bytes, key, n);
	bytes[n] = (unsigned char)end;
	memset(mask, 0xff, n + 1);
	memcpy(w->word, bytes, sizeof(bytes));
	memcpy(w->mask, mask, sizeof(mask));
	if (len)
		*len = n + 1;
	return true;
}

#define PICK_MAX 16

// Finds the values of keys in a record in one pass over its fields. The keys
// are listed in the order batond writes them, so that each field is compared
// first with the key after the one found last: it is nearly always that one.
struct picker {
	const char *const *keys;
	size_t n; /* at most PICK_MAX */
	bool ready;
	bool fits[PICK_MAX]; /* the key fits in words[j] */
	struct word_key words[PICK_MAX];
};

// Whether key, a field's key in rec's buffer, is the picker's key j. The 16
// bytes read from key may run past its NUL into the record's other bytes, not
// past the buffer; the mask keeps only those of the key.
static bool key_is(const struct picker *pk, size_t j, const struct protocol_record *rec,
	const char *key)
{
	uint64_t a[2];
	if (pk->fits[j] && (size_t)(key - rec->buf) + sizeof(a) <= sizeof(rec->buf)) {
		const struct word_key *w = &pk->words[j];
		memcpy(a, key, sizeof(a));
		return (a[0] & w->mask[0]) == w->word[0] && (a[1] & w->mask[1]) == w->word[1];
	}
	const char *q = pk->keys[j];
	while (*key && *key == *q)
		key++, q++;
	return *key == *q;
}

// values[j] is the value of keys[j], "" where it is absent.
static void pick(struct picker *pk, const struct protocol_record *rec, const char **values)
{
	if (!pk->ready) {
		for (size_t j = 0; j < pk->n; j++)
			pk->fits[j] = word_key(pk->keys[j], '\0', &pk->words[j], NULL);
		pk->ready = true;
	}
	size_t n = pk->n, next = 0;
	for (size_t j = 0; j < n; j++)
		values[j] = NULL;
	for (int i = 0; i < rec->nfields; i++) {
		const char *key = rec->fields[i].key;
		for (size_t t = 0; t < n; t++) {
			size_t j = next + t < n ? next + t : next + t - n;
			if (key_is(pk, j, rec, key)) {
				if (!values[j])
					values[j] = rec->fields[i].value;
				next = j + 1 < n ? j + 1 : 0;
				break;
			}
		}
	}
	for (size_t j = 0; j < n; j++) {
		if (!values[j])
			values[j] = "";
	}
}

// Writes seconds the way a person reads them: 0.25s, 12.4s, 3m05s, 2h10m.
static void human_secs(const char *value, char *out, size_t len)
{
	double s = atof(value);
	if (!(s >= 0)) /* NaN too */
		s = 0;
	if (s > 1e9) /* 31 years: days fit an int */
		s = 1e9;
	if (s < 1)
		snprintf(out, len, "%.0fms", s * 1000);
	else if (s < 60)
		snprintf(out, len, "%.*fs", s < 10 ? 2 : 1, s);
	else if (s < 3600)
		snprintf(out, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else if (s < 86400)
		snprintf(out, len, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
	else
		snprintf(out, len, "%dd%02dh", (int)s / 86400, ((int)s % 86400) / 3600);
}

#define TABLE_COLS 12

// A table's cells one after the other in one buffer, row by row, each ended
// by a NUL; the widths kept as rows come.
struct table {
	int ncols;
	const char *head[TABLE_COLS];
	size_t width[TABLE_COLS];
	char *text;
	size_t len, cap;
	size_t rows;
};

static bool table_reserve(struct table *t, size_t more)
{
	if (t->len + more <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more)
		cap *= 2;
	char *text = realloc(t->text, cap);
	if (!text)
		return false;
	t->text = text;
	t->cap = cap;
	return true;
}

// A cell made of up to six parts written one after the other ("running",
// " (", "batch 2 of 4", ")"); the parts not given are NULL.
struct cell {
	const char *part[6];
};

// A row, copied: a thousand services make a thousand rows, so no allocation
// each, and no call for each of their short strings.
// Makes room for more bytes after p, moving p with the buffer; false when
// there is no memory.
static bool table_room(struct table *t, char **p, char **end)
{
	size_t at = (size_t)(*p - t->text);
	t->len = at;
	if (!table_reserve(t, 256))
		return false;
	*p = t->text + at;
	*end = t->text + t->cap;
	return true;
}

static void table_cells(struct table *t, const struct cell *cells)
{
	size_t cols = (size_t)t->ncols, row = t->len, width[TABLE_COLS];
	// Written in one pass, the room made as it is needed (the first row's now).
	if (!t->text && !table_reserve(t, 256))
		return;
	char *p = t->text + t->len, *end = t->text + t->cap;
	for (size_t c = 0; c < cols; c++) {
		size_t n = 0;
		for (size_t i = 0; i < 6 && cells[c].part[i]; i++) {
			for (const char *s = cells[c].part[i]; *s; s++, n++) {
				if (p == end && !table_room(t, &p, &end))
					goto dropped;
				*p++ = *s;
			}
		}
		if (p == end && !table_room(t, &p, &end))
			goto dropped;
		*p++ = '\0';
		width[c] = n;
	}
	t->len = (size_t)(p - t->text);
	for (size_t c = 0; c < cols; c++) {
		if (width[c] > t->width[c])
			t->width[c] = width[c];
	}
	t->rows++;
	return;
dropped:
	t->len = row; /* the row is dropped */
}

// A row of plain values.
static void table_row(struct table *t, const char *const *values)
{
	struct cell cells[TABLE_COLS];
	for (int c = 0; c < t->ncols; c++)
		cells[c] = (struct cell){{values[c] ? values[c] : ""}};
	table_cells(t, cells);
}

// A cell by stdio, when there is no memory for the whole table.
static void put_cell(FILE *out, const char *cell, size_t width, bool last)
{
	if (last)
		fprintf(out, "%s\n", cell);
	else
		fprintf(out, "%-*s", (int)width + 2, cell);
}

// The table in one buffer, written at once: a thousand rows of seven cells
// would be fourteen thousand calls to stdio. The cells are read in one pass.
static void table_print(const struct table *t, FILE *out)
{
	size_t width[TABLE_COLS], line = 0;
	int last = t->ncols - 1;
	for (int c = 0; c < t->ncols; c++) {
		width[c] = strlen(t->head[c]);
		if (t->width[c] > width[c])
			width[c] = t->width[c];
		line += width[c] + 2;
	}
	// 16 bytes more: a padding is written 16 spaces at a time, the next cell over them.
	char *text = malloc(line * (t->rows + 1) + 16);
	if (!text) {
		for (int c = 0; c < t->ncols; c++)
			put_cell(out, t->head[c], width[c], c == last);
		int c = 0;
		for (size_t at = 0; at < t->len; at += strlen(t->text + at) + 1) {
			put_cell(out, t->text + at, width[c], c == last);
			c = c == last ? 0 : c + 1;
		}
		return;
	}
	char *p = text;
	for (int c = 0; c < t->ncols; c++) {
		size_t n = strlen(t->head[c]);
		memcpy(p, t->head[c], n);
		p += n;
		for (; c < last && n < width[c] + 2; n++)
			*p++ = ' ';
	}
	*p++ = '\n';
	static const char spaces[16] = "                ";
	int c = 0;
	// Read by offset: a table with no row has no text (NULL).
	for (size_t at = 0; at < t->len;) {
		const char *s = t->text + at;
		size_t n = 0;
		for (; s[n]; n++) /* cells are short: cheaper than strlen and memcpy */
			p[n] = s[n];
		p += n;
		at += n + 1;
		if (c == last) {
			*p++ = '\n';
			c = 0;
			continue;
		}
		size_t pad = width[c] + 2 - n;
		if (pad <= sizeof(spaces))
			memcpy(p, spaces, sizeof(spaces));
		else
			memset(p, ' ', pad);
		p += pad;
		c++;
	}
	fwrite(text, 1, (size_t)(p - text), out);
	free(text);
}

static void table_free(struct table *t)
{
	free(t->text);
}

// The tables of a status reply, filled as its records arrive and written
// after its last one: each record is parsed once and copied once.
struct status_view {
	struct protocol_buf header;  /* the daemon's lines */
	struct table sockets, services, gens, procs;
	struct protocol_buf reasons; /* "web: why", after the services */
	struct protocol_buf strays;  /* after the generations */
	long total;                  /* the processes batond has, -1 when not told */
	long listed;                 /* the processes listed */
};

static void status_view_init(struct status_view *v)
{
	*v = (struct status_view){
		.sockets = {.ncols = 3, .head = {"SOCKET", "KIND", "ADDRESS"}},
		.services = {.ncols = 7, .head = {"SERVICE", "STATE", "GEN", "READY", "RESTARTS",
			"UPGRADES", "KILLS"}},
		.gens = {.ncols = 11, .head = {"SERVICE", "GEN", "ROLE", "PROCS", "CONNS", "PROGRAM",
			"DIRECTORY", "CHANGED", "CPU", "MEMORY", "TASKS"}},
		.procs = {.ncols = 8, .head = {"SERVICE", "GEN", "ROLE", "INST", "PID", "STATE",
			"AGE", "DETAIL"}},
		.total = -1,
	};
}

static void status_view_free(struct status_view *v)
{
	protocol_buf_finish(&v->header);
	protocol_buf_finish(&v->reasons);
	protocol_buf_finish(&v->strays);
	table_free(&v->sockets);
	table_free(&v->services);
	table_free(&v->gens);
	table_free(&v->procs);
}

static void daemon_lines(struct status_view *v, const struct protocol_record *r)
{
	char up[32];
	human_secs(get(r, "uptime"), up, sizeof(up));
	int nsvc = atoi(get(r, "services")), nproc = atoi(get(r, "procs"));
	protocol_buf_printf(&v->header, "batond %s (pid %s), up %s%s: %d service%s, %d process%s\n",
		get(r, "version"), get(r, "pid"), up,
		strcmp(get(r, "state"), "stopping") == 0 ? ", shutting down" : "", nsvc,
		nsvc == 1 ? "" : "s", nproc, nproc == 1 ? "" : "es");
	if (*get(r, "containment_why"))
		protocol_buf_printf(&v->header, "containment: process groups (%s)\n",
			get(r, "containment_why"));
	else if (*get(r, "containment"))
		protocol_buf_printf(&v->header, "containment: %s\n", get(r, "containment"));
	protocol_buf_add(&v->header, "\n", 1);
	v->total = atol(get(r, "procs"));
}

static void socket_row(struct status_view *v, const struct protocol_record *r)
{
	char bound[160];
	snprintf(bound, sizeof(bound), "%s%s", get(r, "bound"),
		*get(r, "retired") ? " (retired: closes with its last generation)" : "");
	const char *row[] = {get(r, "name"), get(r, "kind"), bound};
	table_row(&v->sockets, row);
}

// A service record's keys, as batond orders them; some are not shown.
enum {
	SVC_NAME, SVC_STATE, SVC_GEN, SVC_INSTANCES, SVC_READY, SVC_RUNNING, SVC_TO, SVC_PHASE,
	SVC_RESTARTS, SVC_UPGRADES, SVC_ROLLBACKS, SVC_KILLS, SVC_COMMAND, SVC_REMOVED,
	SVC_REASON, SVC_KEYS
};

static const char *const service_keys[SVC_KEYS] = {
	[SVC_NAME] = "name", [SVC_STATE] = "state", [SVC_GEN] = "gen",
	[SVC_INSTANCES] = "instances", [SVC_READY] = "ready", [SVC_RUNNING] = "running",
	[SVC_TO] = "upgrading_to", [SVC_PHASE] = "phase", [SVC_RESTARTS] = "restarts",
	[SVC_UPGRADES] = "upgrades", [SVC_ROLLBACKS] = "rollbacks", [SVC_KILLS] = "kills",
	[SVC_COMMAND] = "command", [SVC_REMOVED] = "removed", [SVC_REASON] = "reason",
};

static void service_row(struct status_view *v, const struct protocol_record *r)
{
	_Static_assert(SVC_KEYS <= PICK_MAX, "a picker holds the keys of a service");
	static struct picker picker = {service_keys, SVC_KEYS, false, {false}, {{{0}, {0}}}};
	const char *f[SVC_KEYS];
	pick(&picker, r, f);
	bool to = *f[SVC_TO], phase = *f[SVC_PHASE];
	const struct cell row[] = {
		{{f[SVC_NAME]}},
		{{f[SVC_STATE], phase ? " (" : "", f[SVC_PHASE], phase ? ")" : "",
			*f[SVC_REMOVED] ? " (removed)" : ""}},
		{{f[SVC_GEN], to ? "->" : "", f[SVC_TO]}},
		{{f[SVC_READY], "/", f[SVC_INSTANCES]}},
		{{f[SVC_RESTARTS]}},
		{{f[SVC_UPGRADES]}},
		{{f[SVC_KILLS]}},
	};
	table_cells(&v->services, row);
	if (*f[SVC_REASON])
		protocol_buf_printf(&v->reasons, "%s: %s\n", f[SVC_NAME], f[SVC_REASON]);
}

// A value's place in a line.
struct span {
	const char *s;
	size_t n;
};

static char *put_span(char *p, struct span v)
{
	memcpy(p, v.s, v.n);
	return p + v.n;
}

// Ends the cell of column c that began at cell and ends at w; returns where the
// next begins.
static char *end_cell(struct table *t, size_t c, const char *cell, char *w)
{
	if ((size_t)(w - cell) > t->width[c])
		t->width[c] = (size_t)(w - cell);
	*w = '\0';
	return w + 1;
}

// A service record read straight from its line into the services table, in
// one pass: a thousand services make most of a status, and parsing each into
// fields and then picking from them was most of batonctl's time. It takes a
// record of the shape batond writes, no other: keys of service_keys in their
// order, each at most once, values bare or quoted without a backslash. Any
// other line, a malformed one too, is left to the parser (false), so that what
// is shown, and what is refused, is the same either way.
static bool service_line(struct status_view *v, const char *line, size_t len)
{
	static const char type[] = "service ";
	static size_t key_len[SVC_KEYS]; /* with its '=' */
	static struct word_key key_word[SVC_KEYS];
	static enum { UNSET, USABLE, UNUSABLE } keys;
	const size_t type_len = sizeof(type) - 1;
	if (keys == UNSET) {
		keys = USABLE;
		for (size_t j = 0; j < SVC_KEYS; j++) {
			if (!word_key(service_keys[j], '=', &key_word[j], &key_len[j]))
				keys = UNUSABLE;
		}
	}
	if (keys != USABLE || len <= type_len || len >= PROTOCOL_RECORD_MAX ||
		line[len - 1] == '\r' || memcmp(line, type, type_len) != 0)
		return false;
	const unsigned char *class = protocol_byte_classes();
	struct span f[SVC_KEYS];
	for (size_t j = 0; j < SVC_KEYS; j++)
		f[j] = (struct span){"", 0};
	const char *p = line + type_len, *end = line + len;
	size_t j = 0;
	while (p < end) {
		size_t left = (size_t)(end - p);
		if (left >= 16) {
			uint64_t a[2];
			memcpy(a, p, sizeof(a));
			while (j < SVC_KEYS && ((a[0] & key_word[j].mask[0]) != key_word[j].word[0] ||
						       (a[1] & key_word[j].mask[1]) != key_word[j].word[1]))
				j++;
		} else {
			while (j < SVC_KEYS && !(left > key_len[j] &&
						       memcmp(p, key_word[j].word, key_len[j]) == 0))
				j++;
		}
		if (j == SVC_KEYS)
			return false;
		p += key_len[j];
		const char *value = p;
		if (p < end && *p == '"') {
			value = ++p;
			while (p < end && (class[(unsigned char)*p] & PROTOCOL_BYTE_PLAIN))
				p++;
			if (p == end || *p != '"')
				return false;
			f[j] = (struct span){value, (size_t)(p - value)};
			p++;
		} else {
			while (p < end && (class[(unsigned char)*p] & PROTOCOL_BYTE_BARE))
				p++;
			if (p == value)
				return false;
			f[j] = (struct span){value, (size_t)(p - value)};
		}
		if (p < end && *p++ != ' ')
			return false;
		j++;
	}
	// The row: the values, at most len - 8 bytes, the words added, 16, and the
	// cells' NULs, 7.
	struct table *t = &v->services;
	if (!table_reserve(t, len + 32))
		return false;
	char *w = t->text + t->len, *cell = w;
	w = end_cell(t, 0, cell, put_span(w, f[SVC_NAME]));
	cell = w;
	w = put_span(w, f[SVC_STATE]);
	if (f[SVC_PHASE].n) {
		w = put_span(put_span(w, (struct span){" (", 2}), f[SVC_PHASE]);
		*w++ = ')';
	}
	if (f[SVC_REMOVED].n)
		w = put_span(w, (struct span){" (removed)", 10});
	w = end_cell(t, 1, cell, w);
	cell = w;
	w = put_span(w, f[SVC_GEN]);
	if (f[SVC_TO].n)
		w = put_span(put_span(w, (struct span){"->", 2}), f[SVC_TO]);
	w = end_cell(t, 2, cell, w);
	cell = w;
	w = put_span(w, f[SVC_READY]);
	*w++ = '/';
	w = end_cell(t, 3, cell, put_span(w, f[SVC_INSTANCES]));
	w = end_cell(t, 4, w, put_span(w, f[SVC_RESTARTS]));
	w = end_cell(t, 5, w, put_span(w, f[SVC_UPGRADES]));
	w = end_cell(t, 6, w, put_span(w, f[SVC_KILLS]));
	t->len = (size_t)(w - t->text);
	t->rows++;
	if (f[SVC_REASON].n)
		protocol_buf_printf(&v->reasons, "%.*s: %.*s\n", (int)f[SVC_NAME].n, f[SVC_NAME].s,
			(int)f[SVC_REASON].n, f[SVC_REASON].s);
	return true;
}

// The last column of a process: what a person wants to know about it now.
// What its checks say: "unhealthy", "checked for 1.2s", "check failed 2 times: ...".
static void health_detail(const struct protocol_record *r, char *out, size_t len, bool more)
{
	char a[32];
	const char *sep = more ? "; " : "";
	size_t n = 0;
	if (*get(r, "unhealthy"))
		n += (size_t)snprintf(out, len, "%sunhealthy", sep);
	sep = n || more ? "; " : "";
	if (*get(r, "checking_for") && n < len) {
		human_secs(get(r, "checking_for"), a, sizeof(a));
		n += (size_t)snprintf(out + n, len - n, "%schecked for %s", sep, a);
		sep = "; ";
	}
	if (strcmp(get(r, "check"), "failed") == 0 && n < len)
		snprintf(out + n, len - n, "%scheck failed %s in a row: %s", sep,
			get(r, "check_failures"), get(r, "check_output"));
}

static void proc_detail(const struct protocol_record *r, char *out, size_t len)
{
	char a[32], b[32];
	const char *state = get(r, "state");
	size_t n = 0;
	out[0] = '\0';
	if (*get(r, "error"))
		n += (size_t)snprintf(out + n, len - n, "%s", get(r, "error"));
	if (strcmp(state, "waiting") == 0 && *get(r, "restart_in")) {
		human_secs(get(r, "restart_in"), a, sizeof(a));
		n += (size_t)snprintf(out + n, len - n, "%srestart in %s", n ? "; " : "", a);
	} else if (*get(r, "kill_in")) {
		human_secs(get(r, "stopped_for"), a, sizeof(a));
		human_secs(get(r, "kill_in"), b, sizeof(b));
		n += (size_t)snprintf(out + n, len - n, "%sstopping for %s, SIGKILL in %s",
			n ? "; " : "", a, b);
	} else if (*get(r, "killed")) {
		n += (size_t)snprintf(out + n, len - n, "%sSIGKILL sent", n ? "; " : "");
	}
	if (*get(r, "conns") && n < len)
		n += (size_t)snprintf(out + n, len - n, "%s%s connections", n ? "; " : "",
			get(r, "conns"));
	if (*get(r, "status") && n < len)
		n += (size_t)snprintf(out + n, len - n, "%s\"%s\"", n ? "; " : "", get(r, "status"));
	if (n < len)
		health_detail(r, out + n, len - n, n > 0);
}

// What each generation runs: its program, identity, directory and changes.
// Bytes for people: 812KiB, 41.2MiB; "-" when not known.
static void human_bytes(const char *value, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	if (!*value) {
		snprintf(out, len, "-");
		return;
	}
	double v = atof(value);
	size_t u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u == 0 || v >= 100 ? "%.0f%s" : "%.1f%s", v, units[u]);
}

// What a generation's cgroup counts: "1.52s 41.2MiB 3", "-" where not known.
static void gen_usage(const struct protocol_record *r, char *cpu, char *mem, char *tasks,
	size_t len)
{
	snprintf(cpu, len, "-");
	if (*get(r, "cpu"))
		human_secs(get(r, "cpu"), cpu, len);
	human_bytes(get(r, "memory"), mem, len);
	snprintf(tasks, len, "%s", *get(r, "tasks") ? get(r, "tasks") : "-");
}

static void gen_row(struct status_view *v, const struct protocol_record *r)
{
	char program[512];
	snprintf(program, sizeof(program), "%s%s%s%s%s", *get(r, "exe") ? get(r, "exe") : "-",
		*get(r, "script") ? " (script)" : "", *get(r, "sha256") ? " (sha256 " : "",
		get(r, "sha256"), *get(r, "sha256") ? ")" : "");
	char cpu[32], mem[32], tasks[32];
	gen_usage(r, cpu, mem, tasks, sizeof(cpu));
	const char *row[] = {get(r, "service"), get(r, "gen"), get(r, "role"), get(r, "procs"),
		*get(r, "conns") ? get(r, "conns") : "-", program,
		*get(r, "directory") ? get(r, "directory") : "-",
		*get(r, "changed") ? get(r, "changed") : "-", cpu, mem, tasks};
	table_row(&v->gens, row);
	if (*get(r, "strays"))
		protocol_buf_printf(&v->strays, "%s gen %s: %s process%s outside the service's "
			"process groups still running: %s\n", get(r, "service"), get(r, "gen"),
			get(r, "strays"), strcmp(get(r, "strays"), "1") == 0 ? "" : "es",
			get(r, "stray_processes"));
}

static void proc_row(struct status_view *v, const struct protocol_record *r)
{
	char age[32] = "-", detail[512];
	if (*get(r, "age"))
		human_secs(get(r, "age"), age, sizeof(age));
	proc_detail(r, detail, sizeof(detail));
	const char *pid = strcmp(get(r, "pid"), "0") == 0 ? "-" : get(r, "pid");
	const char *row[] = {get(r, "service"), get(r, "gen"), get(r, "role"), get(r, "instance"),
		pid, get(r, "state"), age, detail};
	table_row(&v->procs, row);
	v->listed++;
}

static void status_view_add(struct status_view *v, const struct protocol_record *r)
{
	const char *type = r->type;
	if (strcmp(type, "service") == 0)
		service_row(v, r);
	else if (strcmp(type, "proc") == 0)
		proc_row(v, r);
	else if (strcmp(type, "gen") == 0)
		gen_row(v, r);
	else if (strcmp(type, "socket") == 0)
		socket_row(v, r);
	else if (strcmp(type, "daemon") == 0)
		daemon_lines(v, r);
}

static void put_buf(const struct protocol_buf *b, FILE *out)
{
	if (b->len > 0 && !b->failed)
		fwrite(b->data, 1, b->len, out);
}

static void status_view_print(const struct status_view *v, FILE *out)
{
	put_buf(&v->header, out);
	if (v->sockets.rows > 0) {
		table_print(&v->sockets, out);
		fputc('\n', out);
	}
	table_print(&v->services, out);
	put_buf(&v->reasons, out);
	if (v->gens.rows > 0) {
		fputc('\n', out);
		table_print(&v->gens, out);
		put_buf(&v->strays, out);
	}
	if (v->procs.rows > 0) {
		fputc('\n', out);
		table_print(&v->procs, out);
	}
	if (v->total > v->listed)
		fprintf(out, "\n%ld ready process%s of current generations not listed: batonctl "
			     "status SERVICE lists them.\n",
			v->total - v->listed, v->total - v->listed == 1 ? "" : "es");
}

static void print_logfmt(FILE *out, const struct protocol_record *r)
{
	struct protocol_buf b = {0};
	protocol_record_begin(&b, r->type);
	for (int i = 0; i < r->nfields; i++)
		protocol_record_str(&b, r->fields[i].key, r->fields[i].value);
	protocol_record_end(&b);
	if (!b.failed)
		fputs(b.data, out);
	protocol_buf_finish(&b);
}

// "web[4242] gen 3" or "web", the subject of an event line.
static void subject(const struct protocol_record *r, char *out, size_t len)
{
	if (*get(r, "pid") && strcmp(get(r, "pid"), "0") != 0)
		snprintf(out, len, "%s[%s] gen %s", get(r, "service"), get(r, "pid"), get(r, "gen"));
	else
		snprintf(out, len, "%s", get(r, "service"));
}

static void upgrade_detail(const struct protocol_record *r, char *out, size_t len)
{
	const char *state = get(r, "state");
	char elapsed[32];
	human_secs(get(r, "elapsed"), elapsed, sizeof(elapsed));
	if (strcmp(state, "started") == 0)
		snprintf(out, len, "upgrade to gen %s started", get(r, "gen"));
	else if (strcmp(state, "batch") == 0)
		snprintf(out, len, "upgrade to gen %s: starting %s of %s", get(r, "gen"),
			get(r, "spawned"), get(r, "instances"));
	else if (strcmp(state, "done") == 0)
		snprintf(out, len, "upgrade to gen %s done in %s", get(r, "gen"), elapsed);
	else if (strcmp(state, "paused") == 0)
		snprintf(out, len, "upgrade to gen %s paused: %s canar%s ready beside the old "
			"processes", get(r, "gen"), get(r, "canary"),
			strcmp(get(r, "canary"), "1") == 0 ? "y" : "ies");
	else if (strcmp(state, "continued") == 0)
		snprintf(out, len, "upgrade to gen %s goes on: %s", get(r, "gen"), get(r, "reason"));
	else if (strcmp(state, "gating") == 0)
		snprintf(out, len, "upgrade to gen %s: the gate runs on %s new processes",
			get(r, "gen"), get(r, "spawned"));
	else if (strcmp(state, "gate-passed") == 0)
		snprintf(out, len, "upgrade to gen %s: the gate passed%s%s", get(r, "gen"),
			*get(r, "reason") ? ": " : "", get(r, "reason"));
	else
		snprintf(out, len, "upgrade to gen %s %s: %s", get(r, "gen"), state, get(r, "reason"));
}

// What an event says, after its subject.
static void event_detail(const struct protocol_record *r, char *out, size_t len)
{
	const char *kind = get(r, "kind");
	char a[32], b[32];
	human_secs(get(r, "ready_after"), a, sizeof(a));
	human_secs(get(r, "kill_in"), b, sizeof(b));
	if (strcmp(kind, "ready") == 0)
		snprintf(out, len, "ready after %s", a);
	else if (strcmp(kind, "signalled") == 0)
		snprintf(out, len, "sent SIG%s; SIGKILL in %s", get(r, "signal"), b);
	else if (strcmp(kind, "progress") == 0)
		snprintf(out, len, "draining: %s connections%s%s", *get(r, "conns") ? get(r, "conns") : "?",
			*get(r, "kill_in") ? ", SIGKILL in " : "", *get(r, "kill_in") ? b : "");
	else if (strcmp(kind, "sigkill") == 0)
		snprintf(out, len, "SIGKILL (%s), holding %s connections", get(r, "reason"),
			*get(r, "conns") ? get(r, "conns") : "?");
	else if (strcmp(kind, "killed") == 0)
		snprintf(out, len, "%s, holding %s connections: its cleanup did not run",
			get(r, "reason"), *get(r, "conns") ? get(r, "conns") : "?");
	else if (strcmp(kind, "restarting") == 0)
		snprintf(out, len, "%s; restarting in %s", get(r, "reason"),
			(human_secs(get(r, "restart_in"), a, sizeof(a)), a));
	else if (strcmp(kind, "spawn_failed") == 0)
		snprintf(out, len, "cannot start: %s", get(r, "error"));
	else if (strcmp(kind, "status") == 0)
		snprintf(out, len, "status: %s", get(r, "status"));
	else if (strcmp(kind, "upgrade") == 0)
		upgrade_detail(r, out, len);
	else if (strcmp(kind, "drained") == 0)
		snprintf(out, len, "gen %s drained in %s", get(r, "gen"),
			(human_secs(get(r, "elapsed"), a, sizeof(a)), a));
	else if (strcmp(kind, "strays") == 0)
		snprintf(out, len, "gen %s: %s process%s outside the service's process groups still "
			"running: %s; sent SIG%s, SIGKILL in %s", get(r, "gen"), get(r, "count"),
			strcmp(get(r, "count"), "1") == 0 ? "" : "es", get(r, "processes"),
			get(r, "signal"), b);
	else if (strcmp(kind, "strays_killed") == 0)
		snprintf(out, len, "gen %s: SIGKILL to the %s process%s left in its cgroup: %s",
			get(r, "gen"), get(r, "count"), strcmp(get(r, "count"), "1") == 0 ? "" : "es",
			get(r, "processes"));
	else if (strcmp(kind, "check") == 0)
		snprintf(out, len, "check %s%s%s", get(r, "result"), *get(r, "output") ? ": " : "",
			get(r, "output"));
	else if (strcmp(kind, "unhealthy") == 0)
		snprintf(out, len, "unhealthy: %s%s%s", get(r, "reason"),
			*get(r, "replace_in") ? "; replacing it in " : "",
			*get(r, "replace_in") ? (human_secs(get(r, "replace_in"), a, sizeof(a)), a) : "");
	else if (strcmp(kind, "exited") == 0 && *get(r, "reason"))
		snprintf(out, len, "%s", get(r, "reason"));
	else if (*get(r, "reason"))
		snprintf(out, len, "%s: %s", kind, get(r, "reason"));
	else
		snprintf(out, len, "%s", kind);
}

// A line of a stopping process: web[4242] gen 3 err: TEXT (N lines skipped).
static int print_output(FILE *out, const struct protocol_record *r)
{
	struct protocol_buf b = {0};
	int rc = logrecord_event(&b, r);
	if (rc == 0 && !b.failed)
		fprintf(out, "%10.3f %s%s%s%s\n", atof(get(r, "t")), b.data,
			*get(r, "skipped") ? " (" : "", get(r, "skipped"),
			*get(r, "skipped") ? " lines skipped)" : "");
	protocol_buf_finish(&b);
	return rc;
}

static void print_event(FILE *out, const struct protocol_record *r)
{
	char who[160], what[1024];
	if (strcmp(get(r, "kind"), "output") == 0 && print_output(out, r) == 0)
		return;
	subject(r, who, sizeof(who));
	event_detail(r, what, sizeof(what));
	fprintf(out, "%10.3f %s: %s\n", atof(get(r, "t")), who, what);
}

// A log record as a text line of a log file; a malformed one as it came.
static void print_log(FILE *out, const struct protocol_record *r)
{
	struct protocol_buf b = {0};
	if (logrecord_text(&b, r) == 0 && !b.failed)
		fputs(b.data, out);
	else
		print_logfmt(out, r);
	protocol_buf_finish(&b);
}

static void print_proc_line(FILE *out, const struct protocol_record *r)
{
	char detail[512], age[32] = "-";
	if (*get(r, "age"))
		human_secs(get(r, "age"), age, sizeof(age));
	proc_detail(r, detail, sizeof(detail));
	fprintf(out, "%s[%s] gen %s: %s %s, age %s%s%s\n", get(r, "service"), get(r, "pid"),
		get(r, "gen"), get(r, "role"), get(r, "state"), age, *detail ? "; " : "", detail);
}

// One line for a record of a verb other than status.
// "web: gen 4 → gen 5: /srv/app/releases/42/bin/app (sha256 9f2c…) → /srv/…/43/bin/app (…)"
static void print_identities(FILE *out, const struct protocol_record *r)
{
	fprintf(out, "%s: gen %s \u2192 gen %s: %s", get(r, "service"), get(r, "from"), get(r, "gen"),
		*get(r, "from_exe") ? get(r, "from_exe") : "?");
	if (*get(r, "from_sha256"))
		fprintf(out, " (sha256 %s)", get(r, "from_sha256"));
	fprintf(out, " \u2192 %s", *get(r, "exe") ? get(r, "exe") : "?");
	if (*get(r, "sha256"))
		fprintf(out, " (sha256 %s)", get(r, "sha256"));
	fputc('\n', out);
}

static void print_line(FILE *out, const struct protocol_record *r)
{
	if (strcmp(r->type, "event") == 0) {
		print_event(out, r);
		return;
	}
	if (strcmp(r->type, "log") == 0) {
		print_log(out, r);
		return;
	}
	if (strcmp(r->type, "proc") == 0) {
		print_proc_line(out, r);
		return;
	}
	if (strcmp(r->type, "metric") == 0) {
		fprintf(out, "%s\n", get(r, "line"));
		return;
	}
	if (strcmp(r->type, "reexec") == 0) {
		fprintf(out, "batond re-executed: pid %s, version %s\n", get(r, "pid"),
			get(r, "version"));
		return;
	}
	if (strcmp(r->type, "reload") == 0) {
		fprintf(out, "%s %s: %s%s%s%s\n", get(r, "kind"), get(r, "name"), get(r, "change"),
			*get(r, "detail") ? " (" : "", get(r, "detail"), *get(r, "detail") ? ")" : "");
		return;
	}
	if (strcmp(r->type, "service") == 0) {
		fprintf(out, "%s: %s (gen %s, %s/%s ready)\n", get(r, "name"), get(r, "state"),
			get(r, "gen"), get(r, "ready"), get(r, "instances"));
	} else if (strcmp(r->type, "upgrade") == 0) {
		const char *state = get(r, "state");
		bool done = strcmp(state, "done") == 0;
		if (strcmp(state, "paused") == 0)
			fprintf(out, "%s: upgrade to gen %s paused at its canaries: batonctl upgrade "
				"--continue %s goes on, --abort ends it\n", get(r, "service"),
				get(r, "gen"), get(r, "service"));
		else if (strcmp(state, "continued") == 0 || strcmp(state, "aborted") == 0)
			fprintf(out, "%s: upgrade to gen %s %s\n", get(r, "service"), get(r, "gen"),
				state);
		else
			fprintf(out, "%s: %s gen %s\n", get(r, "service"),
				done ? "upgraded to" : "upgrade started to", get(r, "gen"));
		if (done && *get(r, "from"))
			print_identities(out, r);
	} else if (strcmp(r->type, "signalled") == 0) {
		int n = atoi(get(r, "procs"));
		fprintf(out, "%s: sent SIG%s to %d process%s\n", get(r, "service"), get(r, "signal"),
			n, n == 1 ? "" : "es");
	} else if (strcmp(r->type, "version") == 0) {
		fprintf(out, "batond %s (protocol %s)\n", get(r, "version"), get(r, "protocol"));
	} else {
		print_logfmt(out, r);
	}
}

void output_print_line(FILE *out, const struct protocol_record *rec)
{
	print_line(out, rec);
}

struct text_output {
	struct output base;
	struct status_view view; /* for a status reply */
};

static void text_record(struct output *o, const struct protocol_record *rec, const char *line,
	size_t len)
{
	struct text_output *t = (struct text_output *)o;
	(void)line;
	(void)len;
	if (logs_cut(o, rec))
		return;
	if (o->verb == VERB_STATUS && !o->streaming) {
		status_view_add(&t->view, rec);
		return;
	}
	print_line(o->out, rec);
	fflush(o->out);
}

// A status's service records, as they come.
static bool text_line(struct output *o, const char *line, size_t len)
{
	struct text_output *t = (struct text_output *)o;
	return o->verb == VERB_STATUS && !o->streaming && service_line(&t->view, line, len);
}

static void text_finish(struct output *o, const struct protocol_record *final)
{
	struct text_output *t = (struct text_output *)o;
	if (strcmp(final->type, "ok") == 0 && o->verb == VERB_STATUS && !o->streaming)
		status_view_print(&t->view, o->out);
	else if (strcmp(final->type, "ok") != 0)
		fprintf(stderr, "batonctl: %s\n", final->message ? final->message : "error");
	fflush(o->out);
}

static void text_destroy(struct output *o)
{
	struct text_output *t = (struct text_output *)o;
	status_view_free(&t->view);
	free(t);
}

struct output *output_text_create(enum protocol_verb verb, bool streaming, FILE *out)
{
	struct text_output *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->base = (struct output){text_record, text_finish, text_destroy, verb, streaming, out, NULL,
		text_line};
	status_view_init(&t->view);
	return &t->base;
}
