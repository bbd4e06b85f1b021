#include "faces.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "command.h"
#include "control.h"
#include "daemon.h"
#include "eventlog.h"
#include "log.h"
#include "logs.h"
#include "metrics.h"
#include "status.h"
#include "notify_socket.h"
#include "signals.h"
#include "watch.h"

static void on_request(void *data, struct client *c, const struct protocol_request *req)
{
	struct daemon *d = data;
	command_run(d->command, c, req);
}

static void on_closed(void *data, struct client *c)
{
	struct daemon *d = data;
	if (d->logs)
		logs_reply_cancel(d->logs, c);
}

static void on_drained(void *data, struct client *c)
{
	struct daemon *d = data;
	if (d->logs)
		logs_reply_drained(d->logs, c);
}

static void on_streams_changed(void *data)
{
	struct daemon *d = data;
	if (d->watch)
		watch_update(d->watch);
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

static int open_control(struct daemon *d, int fd)
{
	struct control_handler handler = {on_request, on_streams_changed, on_closed, on_drained, d};
	char err[512];
	if (fd >= 0) {
		if (!(d->control = control_adopt(d, d->control_path, fd, &handler)))
			log_error("control socket: out of memory");
		return d->control ? 0 : -1;
	}
	if (!d->control_path) {
		log_error("no control socket: XDG_RUNTIME_DIR is not set; use -s PATH");
		return -1;
	}
	if (make_parent_dir(d->control_path) < 0)
		return -1;
	d->control = control_create(d, d->control_path, &handler, err, sizeof(err));
	if (!d->control)
		log_error("%s", err);
	return d->control ? 0 : -1;
}

static int open_notify(struct daemon *d, int fd)
{
	char err[512];
	if (fd >= 0)
		d->notify = notify_socket_adopt(d, d->notify_path, fd);
	else
		d->notify = notify_socket_create(d, d->notify_path, err, sizeof(err));
	if (!d->notify)
		log_error("%s", fd >= 0 ? "notify socket: out of memory" : err);
	return d->notify ? 0 : -1;
}

int faces_start(struct daemon *d, int control_fd, int notify_fd)
{
	// The lines a process wrote go out before what batond logs of it next.
	// A re-exec made logs already, for what the state carried of it.
	if (!(d->signals = signals_create(d)) || !(d->logs || (d->logs = logs_create(d))) ||
		!(d->eventlog = eventlog_create(d)) ||
		!(d->watch = watch_create(d)) || !(d->command = command_create(d)) ||
		!(d->metrics = metrics_create(d))) {
		log_error("out of memory");
		return -1;
	}
	if (open_control(d, control_fd) < 0)
		return -1;
	return open_notify(d, notify_fd);
}

void faces_finish(struct daemon *d)
{
	control_destroy(d->control, true);
	d->control = NULL;
	notify_socket_destroy(d->notify, true);
	d->notify = NULL;
	command_destroy(d->command);
	watch_destroy(d->watch);
	eventlog_destroy(d->eventlog);
	metrics_destroy(d->metrics);
	logs_destroy(d->logs);
	signals_destroy(d->signals);
	status_cache_destroy(d->status_cache);
	d->status_cache = NULL;
	d->command = NULL;
	d->watch = NULL;
	d->eventlog = NULL;
	d->metrics = NULL;
	d->logs = NULL;
	d->signals = NULL;
}
