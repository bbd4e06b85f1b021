#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envfile.h"
#include "parse.h"

/*
 * Environment files (envfile.h): whatever the input, no crash and no leak;
 * a failure says where; every variable is NAME=VALUE with a valid name, each
 * name once; and what envfile_print writes parses back to the same
 * variables, in the same order.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(bool ok, const char *what)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_envfile: broken invariant: %s\n", what);
	abort();
}

static int by_name(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	size_t nx = strcspn(x, "="), ny = strcspn(y, "=");
	int c = memcmp(x, y, nx < ny ? nx : ny);
	return c ? c : (nx > ny) - (nx < ny);
}

static void check_variables(const struct envfile *e)
{
	require(e->env != NULL && e->env[e->n] == NULL, "the variables are NULL-terminated");
	for (size_t i = 0; i < e->n; i++) {
		const char *eq = strchr(e->env[i], '=');
		require(eq != NULL, "a variable is NAME=VALUE");
		require(env_name_valid(e->env[i], (size_t)(eq - e->env[i])), "a name is valid");
	}
	char **sorted = malloc((e->n + 1) * sizeof(char *));
	require(sorted != NULL, "memory for the names");
	memcpy(sorted, e->env, e->n * sizeof(char *));
	qsort(sorted, e->n, sizeof(char *), by_name);
	for (size_t i = 1; i < e->n; i++)
		require(by_name(&sorted[i - 1], &sorted[i]) != 0, "each name is set once");
	free(sorted);
}

static void check_print_reads_back(const struct envfile *e)
{
	char *text = NULL, err[512];
	size_t len = 0;
	struct envfile again;
	FILE *out = open_memstream(&text, &len);
	require(out != NULL, "memory for the printed variables");
	require(envfile_print(e, out) == 0, "the variables print");
	require(fclose(out) == 0, "the printed variables are written");
	require(envfile_parse(text, len, "printed", &again, err, sizeof(err)) == 0,
		"the printed variables parse");
	require(again.n == e->n, "as many variables read back");
	for (size_t i = 0; i < e->n; i++)
		require(strcmp(again.env[i], e->env[i]) == 0, "each variable reads back the same");
	envfile_finish(&again);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envfile e;
	char err[512];
	memset(err, 'x', sizeof(err));
	if (envfile_parse((const char *)data, size, "fuzz", &e, err, sizeof(err)) < 0) {
		require(memchr(err, '\0', sizeof(err)) && strncmp(err, "fuzz:", 5) == 0,
			"a failure names the file");
		require(e.env == NULL && e.n == 0, "a failure leaves nothing to free");
		return 0;
	}
	check_variables(&e);
	check_print_reads_back(&e);
	envfile_finish(&e);
	return 0;
}
