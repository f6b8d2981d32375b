/* SPDX-License-Identifier: GPL-2.0-only */
/* Levelled logging to stderr, one line per event, with a journald priority prefix
 * when stderr is the journal, so operators can filter by severity. */
#pragma once
#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 3, LOG_LVL_WARN = 4, LOG_LVL_INFO = 6, LOG_LVL_DEBUG = 7 };

/* Sets the program name printed in front of every line and the lowest level shown. */
void log_setup(const char *prog, enum log_level max_level);
void log_set_level(enum log_level max_level);
/* Puts "ctx: " in front of every following line until called with NULL; ctx is borrowed.
 * Used while parsing, to name the config file line an option came from. Not thread-safe:
 * set it only before threads start. */
void log_set_context(const char *ctx);
/* Parses "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *ret_level);
/* The --log-level option: sets the level, or says what is wrong with arg and returns
 * -EINVAL, leaving the level as it was. */
int log_level_option(const char *arg);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs with strerror(-err) appended and returns err, so callers can `return log_errno(...)`. */
int log_errno_msg(enum log_level lvl, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_errno(err, ...) log_errno_msg(LOG_LVL_ERROR, (err), __VA_ARGS__)
#define log_warn_errno(err, ...) log_errno_msg(LOG_LVL_WARN, (err), __VA_ARGS__)
