#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

static enum log_level g_level = LOG_INFO;
static log_sink_fn g_sink;
static void *g_sink_arg;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
	g_level = level;
}

enum log_level log_get_level(void)
{
	return g_level;
}

int log_parse_level(enum log_level *out, const char *text)
{
	for (int i = 0; i <= LOG_DEBUG; i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return APP_EINVAL;
}

void log_set_sink(log_sink_fn fn, void *arg)
{
	pthread_mutex_lock(&g_lock);
	g_sink = fn;
	g_sink_arg = arg;
	pthread_mutex_unlock(&g_lock);
}

static void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
	int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
	if (m > 0)
		used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
	/* One event, one line: never let a message break the line format. */
	for (size_t i = 0; i < used; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	pthread_mutex_lock(&g_lock);
	if (g_sink) {
		g_sink(g_sink_arg, level, line, used);
	} else {
		line[used] = '\n';
		fwrite(line, 1, used + 1, stderr);
	}
	pthread_mutex_unlock(&g_lock);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	if (level > g_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(LOG_ERROR, fmt, ap);
	va_end(ap);
	abort();
}
