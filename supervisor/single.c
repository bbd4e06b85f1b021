#include "single.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "parse.h"
#include "protocol.h"

int single_wanted(const struct single_options *o)
{
	return o->argc > 0 || o->nlisten > 0 || o->name || o->instances || o->ready ||
		o->ready_timeout || o->stop_signal || o->stop_grace || o->stop_delay || o->restart ||
		o->forward || o->log;
}

// stderr, inherit or file:/PATH, all on one line of the configuration it makes.
static int check_log(const char *s, char *err, size_t errlen)
{
	bool ok = strcmp(s, "stderr") == 0 || strcmp(s, "inherit") == 0 ||
		strncmp(s, "file:/", 6) == 0;
	for (const char *p = s; ok && *p; p++)
		ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
	if (!ok)
		snprintf(err, errlen, "expected stderr, inherit or file:/PATH, got \"%s\"", s);
	return ok ? 0 : -1;
}

// Checks every option with the parser its config key uses, for its own message.
static int check(const struct single_options *o, char *err, size_t errlen)
{
	char msg[256] = "";
	const char *bad = NULL;
	struct address addr;
	struct ready_spec ready;
	double secs;
	unsigned long n;
	int sig;
	enum restart_policy policy;
	uint64_t set;
	for (int i = 0; i < o->nlisten && !bad; i++) {
		if (parse_address(o->listen[i], &addr, msg, sizeof(msg)) < 0)
			bad = "--listen";
	}
	if (!bad && o->instances &&
		parse_uint(o->instances, 1, CONFIG_MAX_INSTANCES, &n, msg, sizeof(msg)) < 0)
		bad = "--instances";
	if (!bad && o->ready && parse_ready(o->ready, &ready, msg, sizeof(msg)) < 0)
		bad = "--ready";
	if (!bad && o->ready_timeout && parse_duration(o->ready_timeout, &secs, msg, sizeof(msg)) < 0)
		bad = "--ready-timeout";
	if (!bad && o->stop_signal && parse_signal(o->stop_signal, &sig, msg, sizeof(msg)) < 0)
		bad = "--stop-signal";
	if (!bad && o->stop_grace && parse_duration(o->stop_grace, &secs, msg, sizeof(msg)) < 0)
		bad = "--stop-grace";
	if (!bad && o->stop_delay && parse_duration(o->stop_delay, &secs, msg, sizeof(msg)) < 0)
		bad = "--stop-delay";
	if (!bad && o->restart && parse_restart(o->restart, &policy, msg, sizeof(msg)) < 0)
		bad = "--restart";
	if (!bad && o->forward && strcmp(o->forward, "none") != 0 &&
		parse_signal_set(o->forward, &set, msg, sizeof(msg)) < 0)
		bad = "--forward-signals";
	if (!bad && o->log && check_log(o->log, msg, sizeof(msg)) < 0)
		bad = "--log";
	if (bad) {
		snprintf(err, errlen, "%s: %s", bad, msg);
		return -1;
	}
	return 0;
}

// The service is named after the program: /usr/bin/my app -> my_app.
static void service_name(const struct single_options *o, char *out, size_t len)
{
	const char *base = o->name ? o->name : strrchr(o->argv[0], '/');
	base = base ? base + (o->name ? 0 : 1) : o->argv[0];
	snprintf(out, len, "%s", base);
	for (char *p = out; *p; p++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-", *p))
			*p = '_';
	}
	if (!protocol_name_valid(out))
		snprintf(out, len, "main");
}

static void write_sockets(FILE *f, const struct single_options *o)
{
	for (int i = 0; i < o->nlisten; i++) {
		if (i == 0)
			fprintf(f, "[socket:listen]\nlisten = %s\n\n", o->listen[i]);
		else
			fprintf(f, "[socket:listen%d]\nlisten = %s\n\n", i + 1, o->listen[i]);
	}
}

static void write_service(FILE *f, const struct single_options *o)
{
	char name[PROTOCOL_NAME_MAX + 1];
	service_name(o, name, sizeof(name));
	fprintf(f, "[service:%s]\n", name);
	// The words themselves are put in after loading (config_set_words): no
	// quoting has to carry a newline or a word longer than a line.
	fprintf(f, "command = %s\n", SINGLE_COMMAND_PLACEHOLDER);
	if (o->nlisten > 0) {
		fprintf(f, "sockets = listen");
		for (int i = 1; i < o->nlisten; i++)
			fprintf(f, " listen%d", i + 1);
		fprintf(f, "\n");
	}
	// A container's command ends the container when it exits: no restart.
	fprintf(f, "restart = %s\n", o->restart ? o->restart : "never");
	fprintf(f, "forward_signals = %s\n", o->forward ? o->forward : "HUP QUIT USR1 USR2 WINCH");
	// The one program's output reaches the container runtime byte for byte.
	fprintf(f, "log = %s\n", o->log ? o->log : "inherit");
	const char *keys[][2] = {{"instances", o->instances}, {"ready", o->ready},
		{"ready_timeout", o->ready_timeout}, {"stop_signal", o->stop_signal},
		{"stop_grace", o->stop_grace}, {"stop_delay", o->stop_delay}};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (keys[i][1])
			fprintf(f, "%s = %s\n", keys[i][0], keys[i][1]);
	}
}

char *single_config(const struct single_options *o, char *err, size_t errlen)
{
	if (o->argc == 0) {
		snprintf(err, errlen, "no command: give it after --");
		return NULL;
	}
	if (check(o, err, errlen) < 0)
		return NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	write_sockets(f, o);
	write_service(f, o);
	fclose(f);
	return text;
}
