#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "config_print.h"
#include "config_read.h"
#include "daemon.h"
#include "envfile.h"
#include "faces.h"
#include "log.h"
#include "protocol.h"
#include "reexec.h"
#include "sd_daemon.h"
#include "single.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/baton/baton.conf"

struct options {
	const char *config;
	const char *control;
	bool check;
	bool verbose;
	struct single_options single;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: batond [-v] [-c FILE] [-s PATH]\n"
		"       batond -n [-v] [-c FILE]\n"
		"       batond [-v] [-s PATH] [--listen ADDR]... [OPTIONS] -- COMMAND [ARGS]...\n"
		"\n"
		"Runs the services of a baton.conf(5) on sockets it owns, in the foreground;\n"
		"or, with a COMMAND, runs that one command as a service (and exits with it).\n"
		"\n"
		"  -c, --config FILE   the configuration (default %s)\n"
		"  -s, --control PATH  the control socket (default: $BATON_CONTROL, the\n"
		"                      config's control, /run/baton/control.sock as root,\n"
		"                      else $XDG_RUNTIME_DIR/baton/control.sock)\n"
		"  -n, --check         check the configuration and exit: 0 valid, 1 not;\n"
		"                      with -v, print it with every default written out\n"
		"  -v, --verbose       log more (each process started, each signal)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"With a COMMAND (each option is the baton.conf key of the same name):\n"
		"  --listen ADDR           a socket for it: tcp:HOST:PORT, unix:/PATH... (repeatable)\n"
		"  --name NAME             the service's name (default: the command's file name)\n"
		"  --instances N           how many processes (default 1)\n"
		"  --ready MODE            notify, fd:N, delay:DURATION or none (default none)\n"
		"  --ready-timeout DUR     (default 30s)\n"
		"  --stop-signal SIG       (default TERM)\n"
		"  --stop-grace DUR        (default 10s)\n"
		"  --stop-delay DUR        wait before the stop signal (default 0s)\n"
		"  --restart POLICY        always, on-failure or never (default never)\n"
		"  --forward-signals LIST  signals passed on (default HUP QUIT USR1 USR2 WINCH)\n"
		"  --log SINK              inherit, stderr or file:/PATH (default inherit)\n"
		"\n"
		"Signals: TERM or INT stops every service gracefully, then exits (0, or the\n"
		"command's status); HUP reloads; USR2 re-executes batond.\n"
		"See batond(8) and baton.conf(5).\n",
		DEFAULT_CONFIG);
}

enum {
	OPT_LISTEN = 256,
	OPT_NAME,
	OPT_INSTANCES,
	OPT_READY,
	OPT_READY_TIMEOUT,
	OPT_STOP_SIGNAL,
	OPT_STOP_GRACE,
	OPT_STOP_DELAY,
	OPT_RESTART,
	OPT_FORWARD,
	OPT_LOG,
};

static const struct option longopts[] = {
	{"config", required_argument, NULL, 'c'},
	{"control", required_argument, NULL, 's'},
	{"check", no_argument, NULL, 'n'},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"name", required_argument, NULL, OPT_NAME},
	{"instances", required_argument, NULL, OPT_INSTANCES},
	{"ready", required_argument, NULL, OPT_READY},
	{"ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT},
	{"stop-signal", required_argument, NULL, OPT_STOP_SIGNAL},
	{"stop-grace", required_argument, NULL, OPT_STOP_GRACE},
	{"stop-delay", required_argument, NULL, OPT_STOP_DELAY},
	{"restart", required_argument, NULL, OPT_RESTART},
	{"forward-signals", required_argument, NULL, OPT_FORWARD},
	{"log", required_argument, NULL, OPT_LOG},
	{0},
};

// Takes an option of single-command mode; returns -1 for one it does not know.
static int take_single(struct single_options *s, int ch, const char *arg)
{
	switch (ch) {
	case OPT_LISTEN:
		if (s->nlisten == SINGLE_LISTEN_MAX) {
			fprintf(stderr, "batond: more than %d --listen\n", SINGLE_LISTEN_MAX);
			exit(2);
		}
		s->listen[s->nlisten++] = arg;
		return 0;
	case OPT_NAME: s->name = arg; return 0;
	case OPT_INSTANCES: s->instances = arg; return 0;
	case OPT_READY: s->ready = arg; return 0;
	case OPT_READY_TIMEOUT: s->ready_timeout = arg; return 0;
	case OPT_STOP_SIGNAL: s->stop_signal = arg; return 0;
	case OPT_STOP_GRACE: s->stop_grace = arg; return 0;
	case OPT_STOP_DELAY: s->stop_delay = arg; return 0;
	case OPT_RESTART: s->restart = arg; return 0;
	case OPT_FORWARD: s->forward = arg; return 0;
	case OPT_LOG: s->log = arg; return 0;
	default: return -1;
	}
}

static int take_option(struct options *o, int ch)
{
	switch (ch) {
	case 'c': o->config = optarg; return 0;
	case 's': o->control = optarg; return 0;
	case 'n': o->check = true; return 0;
	case 'v': o->verbose = true; return 0;
	case 'h':
		usage(stdout);
		exit(0);
	case 'V':
		printf("batond %s\n", BATON_VERSION);
		exit(0);
	default:
		return take_single(&o->single, ch, optarg);
	}
}

static int usage_error(const char *msg)
{
	fprintf(stderr, "batond: %s\nTry 'batond --help'.\n", msg);
	return -1;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	int ch;
	// "+": stop at the command, whose own options are its business.
	while ((ch = getopt_long(argc, argv, "+c:s:nvhV", longopts, NULL)) != -1) {
		if (take_option(o, ch) < 0) {
			usage(stderr);
			return -1;
		}
	}
	// A COMMAND comes after "--": a stray word must not run as one.
	if (optind < argc && strcmp(argv[optind - 1], "--") != 0) {
		fprintf(stderr, "batond: unexpected argument \"%s\" (a COMMAND comes after --)\n",
			argv[optind]);
		return -1;
	}
	o->single.argv = argv + optind;
	o->single.argc = argc - optind;
	if (!single_wanted(&o->single))
		return 0;
	if (o->config)
		return usage_error("a COMMAND and -c exclude each other");
	if (o->check)
		return usage_error("-n checks a configuration file, not a COMMAND");
	if (o->single.argc == 0)
		return usage_error("single-command options need a COMMAND after --");
	return 0;
}

// Makes sure fds 0-2 are open, so no socket of batond's lands there.
static void sanitize_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

static char *control_path(const struct options *o, const struct config *config)
{
	const char *env = getenv("BATON_CONTROL");
	if (o->control)
		return strdup(o->control);
	if (env && env[0])
		return strdup(env);
	if (config && config->control)
		return strdup(config->control);
	return protocol_default_control(geteuid() == 0, getenv("XDG_RUNTIME_DIR"));
}

// The PATH a service's check is searched on: its own, batond's, or the default.
static const char *path_of(const struct service_conf *c)
{
	for (size_t i = 0; i < c->nenv; i++) {
		if (strncmp(c->env[i], "PATH=", 5) == 0)
			return c->env[i] + 5;
	}
	const char *path = getenv("PATH");
	return path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
}

// Tells whether file can be executed, as the check's exec would find it.
static int find_program(const char *file, const struct service_conf *c)
{
	char full[4096];
	if (strchr(file, '/')) {
		bool relative = file[0] != '/' && c->directory;
		snprintf(full, sizeof(full), "%s%s%s", relative ? c->directory : "",
			relative ? "/" : "", file);
		return access(full, X_OK);
	}
	int err = ENOENT;
	for (const char *p = path_of(c);; p++) {
		const char *end = strchrnul(p, ':');
		snprintf(full, sizeof(full), "%.*s/%s", (int)(end - p), p, file);
		if (access(full, X_OK) == 0)
			return 0;
		if (errno == EACCES)
			err = EACCES;
		if (!*end)
			break;
		p = end;
	}
	errno = err;
	return -1;
}

/*
 * Each check's and each upgrade gate's program must be there to run:
 * "FILE:LINE: check: exec X: why".
 */
static int check_programs(const struct config *config)
{
	int rc = 0;
	for (size_t i = 0; i < config->nservices; i++) {
		const struct service_conf *c = config->services[i];
		const struct check_conf *checks[] = {&c->ready_check, &c->check, &c->upgrade_gate};
		const char *keys[] = {"ready", "check", "upgrade_gate"};
		for (int k = 0; k < 3; k++) {
			if (!checks[k]->argv || find_program(checks[k]->argv[0], c) == 0)
				continue;
			fprintf(stderr, "%s:%u: %s: exec %s: %s\n", config->path, checks[k]->line,
				keys[k], checks[k]->argv[0], strerror(errno));
			rc = -1;
		}
	}
	return rc;
}

/*
 * Each environment file must read and parse, but an optional one may be
 * missing: "FILE:LINE: environment_file: PATH: why" or "...: PATH:N: why".
 */
static int check_env_files(const struct config *config)
{
	int rc = 0;
	for (size_t i = 0; i < config->nservices; i++) {
		const struct service_conf *c = config->services[i];
		for (size_t j = 0; j < c->nenv_files; j++) {
			const struct env_file_conf *f = &c->env_files[j];
			struct envfile e;
			char err[512];
			if (envfile_read(f->path, &e, err, sizeof(err)) == 0) {
				envfile_finish(&e);
				continue;
			}
			if (f->optional && errno == ENOENT)
				continue;
			fprintf(stderr, "%s:%u: environment_file: %s\n", config->path,
				c->env_files_line, err);
			rc = -1;
		}
	}
	return rc;
}

// The cgroup limits need cgroups, with their controllers, where batond would make them.
static int check_cgroups(const struct config *config)
{
	struct containment c;
	char err[4096];
	containment_setup(&c, NULL, config->cgroup, false, true);
	int rc = containment_check(&c, config, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "%s\n", err);
	containment_finish(&c);
	return rc;
}

static int check_config(const struct options *o)
{
	char *errors = NULL;
	struct config *config = config_load(o->config, &errors);
	if (!config) {
		fputs(errors ? errors : "out of memory\n", stderr);
		free(errors);
		return 1;
	}
	// Both run, so that every error is shown at once.
	int programs = check_programs(config), env_files = check_env_files(config),
	    cgroups = check_cgroups(config);
	if (programs < 0 || env_files < 0 || cgroups < 0) {
		config_destroy(config);
		return 1;
	}
	if (o->verbose)
		config_print(config, stdout);
	else
		printf("%s: configuration OK\n", o->config);
	config_destroy(config);
	return 0;
}

static struct config *load_single(const struct options *o)
{
	char err[512], *errors = NULL, *command = NULL;
	char *text = single_config(&o->single, err, sizeof(err));
	if (!text) {
		fprintf(stderr, "batond: %s\n", err);
		return NULL;
	}
	struct config *config = config_load_text("command line", text, &errors);
	if (!config)
		fputs(errors ? errors : "out of memory\n", stderr);
	else if (config_set_words(config->services[0], false, o->single.argv,
			 (size_t)o->single.argc) < 0 ||
		!(command = config_words_text(o->single.argv, (size_t)o->single.argc))) {
		fputs("batond: out of memory\n", stderr);
		config_destroy(config);
		config = NULL;
	} else {
		free(config->services[0]->command);
		config->services[0]->command = command;
	}
	free(errors);
	free(text);
	return config;
}

static int load(struct daemon *d, const struct options *o)
{
	char *errors = NULL;
	if (d->single) {
		d->config = load_single(o);
	} else {
		d->config = config_load(o->config, &errors);
		if (!d->config)
			fputs(errors ? errors : "out of memory\n", stderr);
		free(errors);
		d->config_path = d->config ? strdup(o->config) : NULL;
	}
	if (!d->config)
		return -1;
	d->control_path = control_path(o, d->config);
	if (d->control_path && !(d->notify_path = daemon_notify_path(d->control_path))) {
		fputs("batond: out of memory\n", stderr);
		return -1;
	}
	return 0;
}

// Starts batond afresh on its configuration; returns 0, or -1 after logging why.
static int start(struct daemon *d)
{
	d->started = clock_now();
	d->wall_started = time(NULL);
	d->systemd_notify = sd_daemon_take_notify_socket();
	if (daemon_prepare(d) < 0 || faces_start(d, -1, -1) < 0)
		return -1;
	daemon_unblock_signals();
	if (daemon_open_listeners(d) < 0 || daemon_contain(d, false) < 0)
		return -1;
	return daemon_start(d);
}

// Goes on with the state a re-exec left; returns 0, or -1 after logging why.
static int resume(struct daemon *d)
{
	struct reexec_fds fds;
	if (reexec_resume(d, &fds, faces_start) < 0)
		return -1;
	// Signals that came during the exec and the resume are handled now.
	daemon_unblock_signals();
	reexec_resumed(d, &fds);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = {0};
	// Blocks of 128 KiB and more are mapped apart and given back when freed,
	// and free memory past 128 KiB at the heap's top is given back: glibc's
	// defaults rise as big blocks are freed (a logs reply of megabytes), and
	// then memory no longer used stays in batond's RSS.
	mallopt(M_MMAP_THRESHOLD, 128 << 10);
	mallopt(M_TRIM_THRESHOLD, 128 << 10);
	sanitize_stdio();
	if (parse_options(argc, argv, &o) < 0)
		return 2;
	if (!o.config)
		o.config = DEFAULT_CONFIG;
	log_init("batond", o.verbose ? LOG_DEBUG : LOG_INFO);
	if (o.check)
		return check_config(&o);

	struct daemon d;
	daemon_init(&d);
	d.single = single_wanted(&o.single);
	d.argv = argv;
	int status = 1;
	if (reexec_resuming()) {
		if (resume(&d) == 0)
			status = daemon_run(&d);
	} else if (load(&d, &o) < 0) {
		// A bad option value of single-command mode is a usage error.
		status = d.single ? 2 : 1;
	} else if (start(&d) == 0) {
		status = daemon_run(&d);
	}
	daemon_destroy_services(&d);
	faces_finish(&d);
	daemon_finish(&d);
	return status;
}
