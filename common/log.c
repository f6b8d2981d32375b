// SPDX-License-Identifier: GPL-2.0-only
/* Levelled logging: "prog: level: message" on stderr, or "<N>message" under journald. */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *log_prog = "tern";
static enum log_level log_max = LOG_LVL_INFO;
static bool log_journal;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_setup(const char *prog, enum log_level max_level)
{
	log_prog = prog;
	log_max = max_level;
	/* systemd sets JOURNAL_STREAM when stderr is connected to the journal. */
	log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void log_set_level(enum log_level max_level)
{
	log_max = max_level;
}

int log_parse_level(const char *s, enum log_level *ret_level)
{
	static const struct { const char *name; enum log_level lvl; } names[] = {
		{ "error", LOG_LVL_ERROR }, { "warn", LOG_LVL_WARN },
		{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i].name) == 0) {
			*ret_level = names[i].lvl;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *level_name(enum log_level lvl)
{
	switch (lvl) {
	case LOG_LVL_ERROR: return "error";
	case LOG_LVL_WARN: return "warning";
	case LOG_LVL_INFO: return "info";
	default: return "debug";
	}
}

static void log_vmsg(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void log_vmsg(enum log_level lvl, const char *suffix, const char *fmt, va_list ap)
{
	char line[1024];

	if (lvl > log_max)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	pthread_mutex_lock(&log_lock);
	if (log_journal)
		fprintf(stderr, "<%d>%s%s\n", (int)lvl, line, suffix ? suffix : "");
	else
		fprintf(stderr, "%s: %s: %s%s\n", log_prog, level_name(lvl), line,
			suffix ? suffix : "");
	pthread_mutex_unlock(&log_lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, NULL, fmt, ap);
	va_end(ap);
}

int log_errno_msg(enum log_level lvl, int err, const char *fmt, ...)
{
	char suffix[160];
	va_list ap;

	snprintf(suffix, sizeof(suffix), ": %s", strerror(err < 0 ? -err : err));
	va_start(ap, fmt);
	log_vmsg(lvl, suffix, fmt, ap);
	va_end(ap);
	return err;
}
