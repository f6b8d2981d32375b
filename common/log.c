// SPDX-License-Identifier: GPL-2.0-only
/* Levelled logging: "prog: level: message" on stderr, or "<N>message" under journald. */
#include "common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *log_prog = "tern";
static enum log_level log_max = LOG_LVL_INFO;
static bool log_journal;
static const char *log_ctx;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* systemd sets JOURNAL_STREAM to the device and inode of the stream it connected. The
 * variable is inherited by children whose stderr went elsewhere (a shell redirect, a test
 * harness), so only a match with our own stderr counts. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = -1;

	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || end < 0 || e[end] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(const char *prog, enum log_level max_level)
{
	log_prog = prog;
	log_max = max_level;
	log_journal = stderr_is_journal();
}

void log_set_context(const char *ctx)
{
	log_ctx = ctx;
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
	/* The journal adds the program name and a timestamp itself, and takes the
	 * severity from the <N> prefix. */
	if (log_journal)
		fprintf(stderr, "<%d>%s%s%s%s\n", (int)lvl, log_ctx ? log_ctx : "",
			log_ctx ? ": " : "", line, suffix ? suffix : "");
	else
		fprintf(stderr, "%s: %s: %s%s%s%s\n", log_prog, level_name(lvl),
			log_ctx ? log_ctx : "", log_ctx ? ": " : "", line, suffix ? suffix : "");
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

int log_level_option(const char *arg)
{
	enum log_level lvl;

	if (log_parse_level(arg, &lvl) < 0) {
		log_error("--log-level %s: error, warn, info or debug", arg);
		return -EINVAL;
	}
	log_set_level(lvl);
	return 0;
}
