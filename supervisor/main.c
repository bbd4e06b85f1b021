#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batond.h"
#include "clock.h"
#include "control.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "service.h"

#define DEFAULT_CONFIG "/etc/baton/baton.conf"

struct options {
	const char *config;
	const char *control;
	bool check;
	bool verbose;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: batond [-v] [-c FILE] [-s PATH]\n"
		"       batond -n [-v] [-c FILE]\n"
		"\n"
		"Runs the services of a baton.conf(5) on sockets it owns, in the foreground.\n"
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
		"Signals: TERM or INT stops every service gracefully, then exits 0.\n"
		"See batond(8) and baton.conf(5).\n",
		DEFAULT_CONFIG);
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"control", required_argument, NULL, 's'},
		{"check", no_argument, NULL, 'n'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:s:nvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 's':
			o->control = optarg;
			break;
		case 'n':
			o->check = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("batond %s\n", BATON_VERSION_STRING);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "batond: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return -1;
	}
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

static char *default_control(void)
{
	char *path;
	if (geteuid() == 0)
		return strdup("/run/baton/control.sock");
	const char *dir = getenv("XDG_RUNTIME_DIR");
	if (!dir || dir[0] != '/')
		return NULL;
	if (asprintf(&path, "%s/baton/control.sock", dir) < 0)
		return NULL;
	return path;
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
	return default_control();
}

// The notify socket lives beside the control socket: control.sock -> control-notify.sock.
static char *notify_path_for(const char *control)
{
	char *path;
	size_t n = strlen(control);
	int rc;
	if (n > 5 && strcmp(control + n - 5, ".sock") == 0)
		rc = asprintf(&path, "%.*s-notify.sock", (int)(n - 5), control);
	else
		rc = asprintf(&path, "%s.notify", control);
	return rc < 0 ? NULL : path;
}

static int make_parent_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	char *dir = dirname(copy);
	int rc = 0;
	if (access(dir, F_OK) < 0) {
		// One level only: the parent of a control socket's directory must exist.
		rc = mkdir(dir, geteuid() == 0 ? 0755 : 0700);
		if (rc < 0 && errno == EEXIST)
			rc = 0;
	}
	if (rc < 0)
		log_error("cannot create the directory %s: %s", dir, strerror(errno));
	free(copy);
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
	if (o->verbose)
		config_print(config, stdout);
	else
		printf("%s: configuration OK\n", o->config);
	config_destroy(config);
	return 0;
}

struct listener *daemon_listener(struct daemon *d, const char *name)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (!l->retired && strcmp(l->name, name) == 0)
			return l;
	}
	return NULL;
}

// A unix socket file is removed only when no open listener has that path.
static bool path_in_use(struct daemon *d, const struct listener *gone)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (l != gone && l->addr.family == ADDRESS_UNIX &&
			strcmp(l->addr.path, gone->addr.path) == 0)
			return true;
	}
	return false;
}

void daemon_listener_release(struct daemon *d, struct listener *l)
{
	if (l->users > 0)
		l->users--;
	if (!l->retired || l->users > 0)
		return;
	log_info("socket %s: closed %s %s: no generation uses it any more", l->name,
		listener_kind(l), l->bound);
	bool remove_file = l->addr.family == ADDRESS_UNIX && !path_in_use(d, l);
	list_remove(&l->link);
	listener_destroy(l, remove_file);
}

static void collector_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct daemon *d = w->data;
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (svc->removed && list_empty(&svc->gens)) {
			log_info("%s: removed", svc->name);
			list_remove(&svc->link);
			service_destroy(svc);
		}
	}
	ev_idle_stop(loop, w);
	daemon_check_done(d);
}

void daemon_collect_later(struct daemon *d)
{
	ev_idle_start(d->loop, &d->collector);
}

struct service *daemon_service(struct daemon *d, const char *name)
{
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (!svc->removed && strcmp(svc->name, name) == 0)
			return svc;
	}
	return NULL;
}

void daemon_check_done(struct daemon *d)
{
	if (!d->shutting_down)
		return;
	struct list *pos;
	list_for_each(pos, &d->services) {
		if (!list_empty(&container_of(pos, struct service, link)->gens))
			return;
	}
	ev_break(d->loop, EVBREAK_ALL);
}

void daemon_shutdown(struct daemon *d)
{
	if (d->shutting_down) {
		log_info("already shutting down: %zu process%s left", d->procs.count,
			d->procs.count == 1 ? "" : "es");
		return;
	}
	d->shutting_down = true;
	log_info("shutting down: stopping every service");
	struct list *pos;
	list_for_each(pos, &d->services)
		service_stop(container_of(pos, struct service, link));
	daemon_check_done(d);
}

static void stop_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	log_info("received SIG%s", w->signum == SIGINT ? "INT" : "TERM");
	daemon_shutdown(d);
}

// Signals batond does not act on must not kill it: it would orphan every service.
static void unused_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	const char *name = w->signum == SIGUSR1 ? "USR1" : "USR2";
	log_warn("received SIG%s: ignored: batond %s does not act on it", name,
		BATON_VERSION_STRING);
}

static void hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	log_info("received SIGHUP: reloading %s", d->config_path ? d->config_path : "nothing");
	daemon_reload(d, NULL);
}

int daemon_reload(struct daemon *d, struct protocol_buf *report)
{
	char err[1024];
	struct protocol_buf scratch = {0};
	if (d->shutting_down) {
		log_warn("reload: batond is shutting down");
		return -1;
	}
	int rc = reload_config(d, report ? report : &scratch, err, sizeof(err));
	protocol_buf_finish(&scratch);
	if (rc < 0) {
		log_error("reload failed, the running configuration stays: %s", err);
		if (report)
			protocol_error(report, PROTOCOL_E_INVALID, err);
	}
	return rc;
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	if (service_reap(d, w->rpid, w->rstatus))
		return;
	char desc[128];
	describe_status(w->rstatus, desc, sizeof(desc));
	d->orphans++;
	log_debug("reaped orphan %d: %s", (int)w->rpid, desc);
}

static void setup_signals(struct daemon *d)
{
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, SIG_IGN);
	ev_signal_init(&d->sigterm, stop_signal_cb, SIGTERM);
	ev_signal_init(&d->sigint, stop_signal_cb, SIGINT);
	ev_signal_init(&d->sighup, hup_cb, SIGHUP);
	ev_signal_init(&d->sigusr1, unused_signal_cb, SIGUSR1);
	ev_signal_init(&d->sigusr2, unused_signal_cb, SIGUSR2);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	d->sigusr1.data = d->sigusr2.data = d;
	ev_signal_start(d->loop, &d->sigterm);
	ev_signal_start(d->loop, &d->sigint);
	ev_signal_start(d->loop, &d->sighup);
	ev_signal_start(d->loop, &d->sigusr1);
	ev_signal_start(d->loop, &d->sigusr2);
	ev_child_init(&d->child, child_cb, 0, 0);
	d->child.data = d;
	ev_child_start(d->loop, &d->child);
	ev_idle_init(&d->collector, collector_cb);
	d->collector.data = d;
}

static void become_reaper(void)
{
	if (getpid() == 1)
		return;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("neither PID 1 nor a subreaper (%s): orphans of services are not "
			 "reaped by batond",
			strerror(errno));
}

static int open_listeners(struct daemon *d)
{
	for (size_t i = 0; i < d->config->nsockets; i++) {
		char err[512];
		struct listener *l = listener_create(d->config->sockets[i], err, sizeof(err));
		if (!l) {
			log_error("%s", err);
			return -1;
		}
		list_append(&d->listeners, &l->link);
		log_info("socket %s: listening on %s %s", l->name, listener_kind(l), l->bound);
	}
	return 0;
}

static int open_sockets(struct daemon *d)
{
	char err[512];
	if (!d->control_path) {
		log_error("no control socket: XDG_RUNTIME_DIR is not set; use -s PATH");
		return -1;
	}
	if (make_parent_dir(d->control_path) < 0)
		return -1;
	d->control = control_create(d, d->control_path, err, sizeof(err));
	if (!d->control) {
		log_error("%s", err);
		return -1;
	}
	if (open_listeners(d) < 0)
		return -1;
	char *npath = notify_path_for(d->control_path);
	if (!npath) {
		log_error("out of memory");
		return -1;
	}
	d->notify = notify_create(d, npath, err, sizeof(err));
	free(npath);
	if (!d->notify) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

static int create_services(struct daemon *d)
{
	for (size_t i = 0; i < d->config->nservices; i++) {
		struct service *svc = service_create(d, d->config->services[i]);
		if (!svc) {
			log_error("out of memory");
			return -1;
		}
		list_append(&d->services, &svc->link);
	}
	return 0;
}

static void start_services(struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->services)
		service_start(container_of(pos, struct service, link));
}

static void daemon_finish(struct daemon *d)
{
	while (!list_empty(&d->services)) {
		struct service *svc = container_of(d->services.next, struct service, link);
		list_remove(&svc->link);
		service_destroy(svc);
	}
	while (!list_empty(&d->listeners)) {
		struct listener *l = container_of(d->listeners.next, struct listener, link);
		list_remove(&l->link);
		listener_destroy(l, true);
	}
	notify_destroy(d->notify, true);
	control_destroy(d->control, true);
	config_destroy(d->config);
	pidmap_finish(&d->procs);
	free(d->control_path);
	free(d->config_path);
	if (d->loop)
		ev_loop_destroy(d->loop);
}

static int load(struct daemon *d, const struct options *o)
{
	char *errors = NULL;
	d->config = config_load(o->config, &errors);
	if (!d->config) {
		fputs(errors ? errors : "out of memory\n", stderr);
		free(errors);
		return -1;
	}
	d->config_path = strdup(o->config);
	d->control_path = control_path(o, d->config);
	return d->config_path ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct options o = {.config = DEFAULT_CONFIG};
	sanitize_stdio();
	if (parse_options(argc, argv, &o) < 0)
		return 2;
	log_init("batond", o.verbose ? LOG_DEBUG : LOG_INFO);
	if (o.check)
		return check_config(&o);

	struct daemon d = {0};
	list_init(&d.listeners);
	list_init(&d.services);
	pidmap_init(&d.procs);
	int status = 1;
	if (load(&d, &o) < 0)
		goto out;
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (!d.loop) {
		log_error("cannot create the event loop");
		goto out;
	}
	d.started = clock_now();
	d.wall_started = time(NULL);
	setup_signals(&d);
	become_reaper();
	if (open_sockets(&d) < 0 || create_services(&d) < 0)
		goto out;
	log_info("batond %s: %zu service%s, control socket %s", BATON_VERSION_STRING,
		d.config->nservices, d.config->nservices == 1 ? "" : "s", d.control_path);
	start_services(&d);
	ev_run(d.loop, 0);
	log_info("every service has stopped; exiting");
	status = d.exit_status;
out:
	daemon_finish(&d);
	return status;
}
