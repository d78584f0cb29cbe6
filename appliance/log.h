/*
 * log.h: one-line structured logging.
 *
 * Each call writes one line: `2026-11-21T13:00:00Z level=info <message>`,
 * where the message is printf-formatted by the caller and should consist of
 * key=value fields (`event=publish id=ab12cd34 relay=wss://...`).
 * Library code prints only through these functions. Never log secrets or
 * user content: log identifiers (event id prefix, payment_hash prefix).
 *
 * Output goes to stderr unless a sink is installed (the enclave forwards its
 * log lines to the untrusted parent through a sink). Thread-safe.
 */
#ifndef APPLIANCE_LOG_H
#define APPLIANCE_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Maximum length of one formatted log line (longer lines are truncated). */
#define LOG_LINE_MAX 2048

/*
 * log_sink_fn: receives each formatted line (NUL-terminated, no newline)
 * and its length. Called with the log mutex held: must not log itself.
 */
typedef void (*log_sink_fn)(void *arg, enum log_level level, const char *line, size_t len);

/* log_set_level: lines above `level` are discarded. Default LOG_INFO. */
void log_set_level(enum log_level level);

/* log_get_level: the current level. */
enum log_level log_get_level(void);

/*
 * log_parse_level: "error", "warn", "info" or "debug" into *out.
 * Returns 0, or APP_EINVAL for any other text.
 */
int log_parse_level(enum log_level *out, const char *text) __attribute__((warn_unused_result));

/* log_set_sink: route lines to `fn(arg, ...)`; NULL restores stderr. */
void log_set_sink(log_sink_fn fn, void *arg);

/* log_write: format and emit one line at `level`. Prefer the macros below. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)

/*
 * fatal: log at error level and abort(). Only for broken invariants and
 * startup failures, never for bad input.
 */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
