#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_prog = "batond";
static enum log_level log_max = LOG_INFO;

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
	fwrite(line, 1, len, stderr);
	fflush(stderr);
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
