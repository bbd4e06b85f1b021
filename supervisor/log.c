#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *log_prog = "batond";
static enum log_level log_max = LOG_INFO;
static struct log_writer *log_writer;
static unsigned long log_lost, log_unsaid;

static const char *const prefixes[] = {
	[LOG_ERROR] = "error: ",
	[LOG_WARNING] = "warning: ",
	[LOG_INFO] = "",
	[LOG_DEBUG] = "debug: ",
};

void log_init(const char *prog, enum log_level level)
{
	log_prog = prog;
	log_max = level;
}

void log_set_writer(struct log_writer *w)
{
	log_writer = w;
}

// Writes a line to stderr if it takes it now: a full pipe is not waited on.
// A line is shorter than PIPE_BUF, so that a pipe with room takes it whole.
static bool to_stderr(const char *line, size_t len)
{
	struct pollfd p = {STDERR_FILENO, POLLOUT, 0};
	if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
		return false;
	return write(STDERR_FILENO, line, len) == (ssize_t)len;
}

static bool put_line(const char *line, size_t len)
{
	return log_writer ? log_writer->write(log_writer, line, len) : to_stderr(line, len);
}

void log_say_dropped(void)
{
	// Cleared first: a writer may log, and come here again, while it takes this.
	unsigned long n = log_unsaid;
	if (n == 0)
		return;
	log_unsaid = 0;
	char line[160];
	int len = snprintf(line, sizeof(line),
		"%s: warning: %lu line%s of its own log dropped: its stderr took no more\n",
		log_prog, n, n == 1 ? "" : "s");
	if (len < 0 || (size_t)len >= sizeof(line) || !put_line(line, (size_t)len))
		log_unsaid += n;
}

unsigned long log_dropped(unsigned long *unsaid)
{
	if (unsaid)
		*unsaid = log_unsaid;
	return log_lost;
}

void log_set_dropped(unsigned long total, unsigned long unsaid)
{
	log_lost = total;
	log_unsaid = unsaid;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level > log_max)
		return;
	int saved = errno;
	char line[2048];
	int n = snprintf(line, sizeof(line), "%s: %s", log_prog, prefixes[level]);
	va_list ap;
	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	// One write per line, so lines from batond and its children never mix.
	size_t len = strlen(line);
	if (len == sizeof(line) - 1)
		len--;
	line[len++] = '\n';
	log_say_dropped();
	if (!put_line(line, len)) {
		log_lost++;
		log_unsaid++;
	}
	errno = saved;
}

bool log_limit_pass(struct log_limit *limit, double now, unsigned *suppressed)
{
	if (limit->last != 0 && now - limit->last < 1.0) {
		limit->suppressed++;
		return false;
	}
	*suppressed = limit->suppressed;
	limit->suppressed = 0;
	limit->last = now;
	return true;
}
