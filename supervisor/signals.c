#include "signals.h"

#include <signal.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"
#include "parse.h"
#include "reexec.h"
#include "reload.h"

#define OTHER_SIGNALS 6

static const int other_signals[OTHER_SIGNALS] = {
	SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM,
};

struct signals {
	struct daemon *d;
	ev_signal sigterm, sigint;
	ev_signal others[OTHER_SIGNALS];
};

static void stop_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	log_info("received SIG%s", signal_name(w->signum));
	daemon_shutdown(d);
}

// Passes signo on to the processes of every service whose forward_signals has it.
static bool forward(struct daemon *d, int signo)
{
	bool any = false;
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (!(svc->conf->forward_signals & (1ull << signo)))
			continue;
		unsigned n = service_signal(svc, signo);
		log_debug("SIG%s passed on to %u process%s of %s", signal_name(signo), n,
			n == 1 ? "" : "es", svc->name);
		any = true;
	}
	return any;
}

static void other_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	(void)loop;
	(void)revents;
	struct daemon *d = w->data;
	if (forward(d, w->signum))
		return;
	char err[512];
	switch (w->signum) {
	case SIGHUP:
		log_info("received SIGHUP: reloading %s", d->config_path ? d->config_path : "nothing");
		reload_run(d, NULL);
		break;
	case SIGUSR2:
		log_info("received SIGUSR2");
		reexec_run(d, -1, err, sizeof(err));
		break;
	case SIGWINCH:
	case SIGALRM:
		break;
	default:
		log_warn("received SIG%s: ignored", signal_name(w->signum));
	}
}

static void start(struct signals *s, ev_signal *w, void (*cb)(struct ev_loop *, ev_signal *, int),
	int signo)
{
	ev_signal_init(w, cb, signo);
	w->data = s->d;
	ev_signal_start(s->d->loop, w);
}

struct signals *signals_create(struct daemon *d)
{
	struct signals *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->d = d;
	start(s, &s->sigterm, stop_signal_cb, SIGTERM);
	start(s, &s->sigint, stop_signal_cb, SIGINT);
	for (int i = 0; i < OTHER_SIGNALS; i++)
		start(s, &s->others[i], other_signal_cb, other_signals[i]);
	return s;
}

void signals_destroy(struct signals *s)
{
	if (!s)
		return;
	// batond is exiting: a signal that comes now waits, blocked, and ends with it.
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	ev_signal_stop(s->d->loop, &s->sigterm);
	ev_signal_stop(s->d->loop, &s->sigint);
	for (int i = 0; i < OTHER_SIGNALS; i++)
		ev_signal_stop(s->d->loop, &s->others[i]);
	free(s);
}
