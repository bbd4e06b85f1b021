#include "reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_read.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"

// A socket of the new configuration, with the listener it will be.
struct socket_plan {
	struct socket_conf *conf;
	struct listener *old; /* the listener of that name now, or NULL */
	struct listener *opened; /* a new listener; NULL when old is kept */
};

static void report_change(struct protocol_buf *report, const char *kind, const char *name,
	const char *change, const char *detail)
{
	protocol_record_begin(report, "reload");
	protocol_record_str(report, "kind", kind);
	protocol_record_str(report, "name", name);
	protocol_record_str(report, "change", change);
	if (detail)
		protocol_record_str(report, "detail", detail);
	protocol_record_end(report);
	log_info("reload: %s %s: %s%s%s", kind, name, change, detail ? ": " : "", detail ? detail : "");
}

// A kept socket is one whose address is written the same way.
static bool listens_as_configured(const struct listener *l, const struct socket_conf *c)
{
	return strcmp(l->listen, c->listen) == 0;
}

static void close_opened(struct socket_plan *plan, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		listener_destroy(plan[i].opened, true);
		plan[i].opened = NULL;
	}
}

// Opens every socket that is new or whose address changed; all or nothing.
static struct socket_plan *plan_sockets(struct daemon *d, struct config *next, char *err,
	size_t errlen)
{
	struct socket_plan *plan = calloc(next->nsockets + 1, sizeof(*plan));
	if (!plan) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < next->nsockets; i++) {
		plan[i].conf = next->sockets[i];
		plan[i].old = daemon_listener(d, next->sockets[i]->name);
		if (plan[i].old && listens_as_configured(plan[i].old, plan[i].conf))
			continue;
		plan[i].opened = listener_create(plan[i].conf, err, errlen);
		if (!plan[i].opened) {
			close_opened(plan, i);
			free(plan);
			return NULL;
		}
	}
	return plan;
}

// The generations started with l keep it until they end; then it closes.
static void retire(struct daemon *d, struct listener *l)
{
	l->retired = true;
	l->users++;
	daemon_listener_release(d, l);
}

// Applies the small settings of a kept socket: its backlog, a unix socket's
// mode, owner and group.
static void update_kept(struct listener *l, const struct socket_conf *c)
{
	if (l->backlog != c->backlog && l->addr.family != ADDRESS_UDP &&
		listen(l->fd, (int)c->backlog) == 0)
		l->backlog = c->backlog;
	if (l->addr.family != ADDRESS_UNIX)
		return;
	if (l->mode != c->mode && chmod(l->addr.path, c->mode) == 0)
		l->mode = c->mode;
	uid_t uid = c->owner ? c->uid : (uid_t)-1;
	gid_t gid = c->group ? c->gid : (gid_t)-1;
	// Not set any more: left as it is, as batond does not know whose it was.
	if ((uid != l->uid && uid != (uid_t)-1) || (gid != l->gid && gid != (gid_t)-1)) {
		if (chown(l->addr.path, uid, gid) == 0) {
			l->uid = uid;
			l->gid = gid;
		} else {
			log_warn("socket %s: chown %s: %s", l->name, l->addr.path, strerror(errno));
		}
	} else {
		l->uid = uid;
		l->gid = gid;
	}
}

static void commit_sockets(struct daemon *d, struct config *next, struct socket_plan *plan,
	struct protocol_buf *report)
{
	for (size_t i = 0; i < next->nsockets; i++) {
		struct socket_plan *p = &plan[i];
		if (!p->opened) {
			update_kept(p->old, p->conf);
			continue;
		}
		list_append(&d->listeners, &p->opened->link);
		if (p->old) {
			report_change(report, "socket", p->conf->name, "replaced", p->opened->bound);
			retire(d, p->old);
		} else {
			report_change(report, "socket", p->conf->name, "added", p->opened->bound);
		}
	}
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		if (!l->retired && !config_socket(next, l->name)) {
			report_change(report, "socket", l->name, "removed", l->bound);
			retire(d, l);
		}
	}
}

static void commit_services(struct daemon *d, struct config *next, struct protocol_buf *report)
{
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		struct service_conf *conf = config_service(next, svc->name);
		if (svc->removed)
			continue;
		if (!conf) {
			report_change(report, "service", svc->name, "removed", "stopping");
			svc->removed = true;
			service_stop(svc);
			continue;
		}
		if (!service_conf_equal(svc->conf, conf))
			report_change(report, "service", svc->name, "changed",
				"takes effect at the next upgrade or restart");
		service_conf_unref(svc->conf);
		svc->conf = service_conf_ref(conf);
	}
	for (size_t i = 0; i < next->nservices; i++) {
		struct service *svc = daemon_service(d, next->services[i]->name);
		if (svc && !svc->removed)
			continue;
		svc = daemon_add_service(d, next->services[i]);
		if (!svc) {
			log_error("reload: %s: out of memory", next->services[i]->name);
			continue;
		}
		report_change(report, "service", svc->name, "added", "starting");
		service_start(svc);
	}
}

static void check_baton_section(struct daemon *d, struct config *next)
{
	const char *before = d->config->control ? d->config->control : "";
	const char *after = next->control ? next->control : "";
	if (strcmp(before, after) != 0)
		log_warn("reload: control: a new control socket takes effect when batond restarts");
	if (next->has_control_group && d->control_path &&
		(chown(d->control_path, (uid_t)-1, next->control_gid) < 0 ||
			chmod(d->control_path, 0660) < 0))
		log_warn("reload: control_group: cannot give %s to the group", d->control_path);
	if (!next->has_control_group && d->config->has_control_group && d->control_path)
		chmod(d->control_path, 0600);
	// The cgroups stay where batond made them until it starts again.
	const char *cg_before = d->config->cgroup ? d->config->cgroup : "auto";
	const char *cg_after = next->cgroup ? next->cgroup : "auto";
	if (strcmp(cg_before, cg_after) != 0) {
		log_warn("reload: cgroup: a change takes effect when batond starts again");
		free(next->cgroup);
		next->cgroup = d->config->cgroup ? strdup(d->config->cgroup) : NULL;
	}
}

int reload_config(struct daemon *d, struct protocol_buf *report, char *err, size_t errlen)
{
	if (!d->config_path) {
		snprintf(err, errlen, "batond runs a single command: there is no file to reload");
		return -1;
	}
	char *errors = NULL;
	struct config *next = config_load(d->config_path, &errors);
	if (!next) {
		size_t n = errors ? strcspn(errors, "\n") : 0;
		snprintf(err, errlen, "%.*s", (int)n, errors ? errors : "out of memory");
		free(errors);
		return -1;
	}
	if (containment_check(d->cg, next, err, errlen) < 0) {
		config_destroy(next);
		return -1;
	}
	struct socket_plan *plan = plan_sockets(d, next, err, errlen);
	if (!plan) {
		config_destroy(next);
		return -1;
	}
	check_baton_section(d, next);
	commit_sockets(d, next, plan, report);
	free(plan);
	// Services last: a new one finds its new sockets open.
	struct config *old = d->config;
	d->config = next;
	commit_services(d, next, report);
	config_destroy(old);
	return 0;
}

int reload_run(struct daemon *d, struct protocol_buf *report)
{
	char err[1024];
	struct protocol_buf scratch = {0};
	if (d->shutting_down) {
		log_warn("reload: batond is shutting down");
		return -1;
	}
	daemon_tell_systemd(d, "RELOADING=1");
	int rc = reload_config(d, report ? report : &scratch, err, sizeof(err));
	protocol_buf_finish(&scratch);
	if (rc < 0) {
		log_error("reload failed, the running configuration stays: %s", err);
		if (report)
			protocol_error(report, PROTOCOL_E_INVALID, err);
	}
	daemon_tell_systemd(d, "READY=1");
	return rc;
}
