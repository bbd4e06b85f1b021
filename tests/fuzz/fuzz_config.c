#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Words longer than this may contain pieces no quoting fits on a line.
#define LONG_WORD 120

#include "config.h"
#include "config_print.h"
#include "config_read.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what, const char *text)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_config: broken invariant: %s\n", what);
	if (text)
		fprintf(stderr, "--- text:\n%s---\n", text);
	abort();
}

static unsigned count_lines(const char *text)
{
	unsigned n = 0;
	for (const char *p = text; *p; p++)
		n += *p == '\n';
	size_t len = strlen(text);
	return n + (len > 0 && text[len - 1] != '\n');
}

// Reads "fuzz:LINE:" at the start of an error line; returns LINE or 0.
static unsigned error_line(const char *line)
{
	unsigned n = 0;
	int end = 0;
	if (sscanf(line, "fuzz:%u:%n", &n, &end) != 1 || end == 0)
		return 0;
	return n;
}

/*
 * Errors come one a line, each citing the file, sorted by line number, and
 * every line they cite is one of the text's.
 */
static void check_errors(const char *errors, const char *text)
{
	require(errors && *errors, "a failed load says why", text);
	require(errors[strlen(errors) - 1] == '\n', "errors end with a newline", errors);
	unsigned lines = count_lines(text), prev = 0, numbered = 0;
	for (const char *p = errors; *p; p = strchr(p, '\n') + 1) {
		require(strncmp(p, "fuzz:", 5) == 0, "every error line cites the file", errors);
		unsigned n = error_line(p);
		if (n == 0)
			continue;
		require(n <= lines, "errors cite lines of the text", errors);
		require(n >= prev, "errors are sorted by line", errors);
		prev = n;
		numbered++;
	}
	require(numbered > 0, "at least one error cites a line", errors);
}

static char *print_config(const struct config *config)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	require(out != NULL, "open_memstream works", NULL);
	config_print(config, out);
	require(fclose(out) == 0 && text != NULL, "printing to memory works", NULL);
	return text;
}

// A word so long that no quoting of it fits a line but the one it was read
// from cannot be printed within the line limit (baton.conf(5)); a re-exec
// does not print words (it passes them as they are).
static bool has_unprintable_word(const struct config *config)
{
	for (size_t i = 0; i < config->nservices; i++) {
		const struct service_conf *c = config->services[i];
		for (size_t j = 0; j < c->argc; j++) {
			if (strlen(c->argv[j]) > LONG_WORD)
				return true;
		}
		for (size_t j = 0; j < c->nenv; j++) {
			if (strlen(c->env[j]) > LONG_WORD)
				return true;
		}
		for (size_t j = 0; j < c->upgrade_gate.argc; j++) {
			if (strlen(c->upgrade_gate.argv[j]) > LONG_WORD)
				return true;
		}
	}
	return false;
}

// The printed form loads again, and prints the same: it is a normal form.
static void check_normal_form(const struct config *config)
{
	if (has_unprintable_word(config))
		return;
	char *printed = print_config(config), *errors = NULL;
	struct config *again = config_load_text("fuzz", printed, &errors);
	if (!again)
		fprintf(stderr, "--- errors:\n%s", errors ? errors : "(none)\n");
	require(again != NULL, "the printed configuration loads", printed);
	require(errors == NULL, "a configuration that loads has no errors", errors);
	char *reprinted = print_config(again);
	if (strcmp(printed, reprinted) != 0)
		fprintf(stderr, "--- printed:\n%s--- printed again:\n%s", printed, reprinted);
	require(strcmp(printed, reprinted) == 0, "printing is idempotent", NULL);
	free(reprinted);
	config_destroy(again);
	free(printed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	char *errors = NULL;
	struct config *config = config_load_text("fuzz", text, &errors);
	if (config) {
		require(errors == NULL, "a configuration that loads has no errors", errors);
		check_normal_form(config);
		config_destroy(config);
	} else {
		check_errors(errors, text);
	}
	free(errors);
	free(text);
	return 0;
}
