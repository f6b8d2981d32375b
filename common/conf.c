// SPDX-License-Identifier: GPL-2.0-only
/* Config files as argv entries: parsed strictly here, validated by the subcommand's own
 * getopt handlers afterwards, so a file and the command line obey the same rules. */
#include "common/conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Far beyond any real config; a bigger file is a mistake (a disk image named by accident). */
#define CONF_FILE_MAX (1u << 20)

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/* Returns 1 for true, 0 for false, -EINVAL for anything else. */
static int parse_bool(const char *s)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0)
			return 1;
		if (strcmp(s, no[i]) == 0)
			return 0;
	}
	return -EINVAL;
}

static bool in_list(const char *const *list, const char *s)
{
	for (; list && *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* One line: returns 1 with *ret_entry, 0 when the line yields nothing, or -EINVAL
 * (logged). first_line[i]: the line option i was first set on, 0 if not yet. */
static int parse_line(const char *path, unsigned lineno, char *line, const struct option *opts,
		      const char *const *repeatable, unsigned *first_line, char **ret_entry)
{
	const struct option *o = NULL;
	char *eq, *key, *value, *entry;
	size_t i;
	int b, n;

	line = trim(line);
	if (line[0] == '\0' || line[0] == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq) {
		log_error("%s:%u: expected 'key = value'", path, lineno);
		return -EINVAL;
	}
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	for (i = 0; key[0] && opts[i].name; i++) {
		if (strcmp(opts[i].name, key) == 0) {
			o = &opts[i];
			break;
		}
	}
	/* --config in a config file would be a loop; --help is not a setting. */
	if (!o || strcmp(key, "config") == 0 || strcmp(key, "help") == 0) {
		log_error("%s:%u: unknown key '%s'", path, lineno, key);
		return -EINVAL;
	}
	if (first_line[i] && !in_list(repeatable, key)) {
		log_error("%s:%u: '%s' given twice (first on line %u)", path, lineno, key,
			  first_line[i]);
		return -EINVAL;
	}
	if (!first_line[i])
		first_line[i] = lineno;
	if (o->has_arg == no_argument) {
		b = parse_bool(value);
		if (b < 0) {
			log_error("%s:%u: %s = %s: expected true or false", path, lineno, key, value);
			return -EINVAL;
		}
		if (b == 0)
			return 0;
		n = asprintf(&entry, "--%s", key);
	} else {
		if (value[0] == '\0') {
			log_error("%s:%u: '%s' needs a value", path, lineno, key);
			return -EINVAL;
		}
		n = asprintf(&entry, "--%s=%s", key, value);
	}
	if (n < 0)
		return log_errno(-ENOMEM, "%s:%u", path, lineno);
	*ret_entry = entry;
	return 1;
}

/* Whether the open config file may be trusted: a regular file, written only by root or
 * us, of a bounded size. 0, or -errno (logged). */
static int check_conf_file(const char *path, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return log_errno(-errno, "cannot read config %s", path);
	if (!S_ISREG(st.st_mode)) {
		log_error("config %s: not a regular file", path);
		return -EINVAL;
	}
	/* The file can name a command that runs as root (--pre-cutover): whoever may change
	 * it must already be root, or us. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_error("config %s: writable by group or others; refusing it (chmod go-w)", path);
		return -EINVAL;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		log_error("config %s: owned by uid %u, neither root nor us; refusing it", path,
			  (unsigned)st.st_uid);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > CONF_FILE_MAX) {
		log_error("config %s: larger than %u bytes", path, CONF_FILE_MAX);
		return -EINVAL;
	}
	return 0;
}

/* Parses an open file; takes ownership of fd. Logs every failure. */
static int parse_fd(const char *path, int fd, const struct option *opts,
		    const char *const *repeatable, char ***ret_entries, unsigned **ret_lines,
		    size_t *ret_n)
{
	unsigned *first_line = NULL, *lines = NULL, lineno = 0;
	char **entries = NULL, *line = NULL;
	size_t nopts = 0, n = 0, cap = 0;
	FILE *f = NULL;
	ssize_t len;
	int r;

	r = check_conf_file(path, fd);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	f = fdopen(fd, "re");
	if (!f) {
		r = log_errno(-errno, "cannot read config %s", path);
		goto out;
	}
	fd = -1;
	while (opts[nopts].name)
		nopts++;
	first_line = calloc(nopts + 1, sizeof(*first_line));
	entries = calloc(1, sizeof(*entries));
	if (!first_line || !entries) {
		log_errno(r, "cannot read config %s", path);
		goto out;
	}
	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *entry = NULL;
		char **e;
		unsigned *l;

		lineno++;
		r = -EINVAL;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > CONF_LINE_MAX) {
			log_error("%s:%u: line longer than %d characters", path, lineno, CONF_LINE_MAX);
			goto out;
		}
		if (memchr(line, '\0', (size_t)len)) {
			log_error("%s:%u: NUL byte in line", path, lineno);
			goto out;
		}
		line[len] = '\0';
		r = parse_line(path, lineno, line, opts, repeatable, first_line, &entry);
		if (r < 0)
			goto out;
		if (r == 0)
			continue;
		r = -ENOMEM;
		e = realloc(entries, (n + 2) * sizeof(*e));
		if (e)
			entries = e;
		l = realloc(lines, (n + 1) * sizeof(*l));
		if (l)
			lines = l;
		if (!e || !l) {
			free(entry);
			log_errno(r, "cannot read config %s", path);
			goto out;
		}
		entries[n] = entry;
		lines[n++] = lineno;
		entries[n] = NULL;
		errno = 0;
	}
	if (ferror(f)) {
		r = log_errno(errno ? -errno : -EIO, "cannot read config %s", path);
		goto out;
	}
	*ret_entries = entries;
	*ret_lines = lines;
	*ret_n = n;
	entries = NULL;
	lines = NULL;
	r = 0;
out:
	if (entries) {
		for (size_t i = 0; i < n; i++)
			free(entries[i]);
		free(entries);
	}
	free(lines);
	free(first_line);
	free(line);
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	return r;
}

int conf_parse_file(const char *path, const struct option *opts, const char *const *repeatable,
		    char ***ret_entries, unsigned **ret_lines, size_t *ret_n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		return log_errno(-errno, "cannot read config %s", path);
	return parse_fd(path, fd, opts, repeatable, ret_entries, ret_lines, ret_n);
}

static const char *opt_name(const struct option *opts, int val)
{
	for (size_t i = 0; opts[i].name; i++)
		if (opts[i].val == val)
			return opts[i].name;
	return "config";
}

int conf_args_build(int argc, char **argv, const struct option *opts, int config_val,
		    const char *default_path, const char *const *repeatable,
		    struct conf_args **ret_ca)
{
	const char *path = NULL;
	struct conf_args *ca = NULL;
	unsigned *lines = NULL;
	char **entries = NULL;
	size_t n = 0;
	bool help = false;
	int c, fd, r, saved_opterr = opterr;

	/* A first pass finds --config as getopt will see it; errors are left to the
	 * caller's own pass, which reports them. */
	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h') {
			help = true;
		} else if (c == config_val) {
			if (path) {
				log_error("--%s given twice", opt_name(opts, config_val));
				opterr = saved_opterr;
				return -EINVAL;
			}
			path = optarg;
		}
	}
	opterr = saved_opterr;
	optind = 0;

	r = -ENOMEM;
	ca = calloc(1, sizeof(*ca));
	if (!ca)
		return log_errno(r, "cannot read the config");
	if (!help && (path || default_path)) {
		const char *p = path ? path : default_path;

		fd = open(p, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0 && (path || errno != ENOENT)) {
			r = log_errno(-errno, "cannot read config %s", p);
			goto fail;
		}
		/* Without --config, an absent default file means "flags only". */
		if (fd >= 0) {
			r = parse_fd(p, fd, opts, repeatable, &entries, &lines, &n);
			if (r < 0)
				goto fail;
			r = -ENOMEM;
			ca->path = strdup(p);
			if (!ca->path) {
				log_errno(r, "cannot read config %s", p);
				goto fail;
			}
		}
	}
	r = -ENOMEM;
	ca->argv = calloc((size_t)argc + n + 1, sizeof(*ca->argv));
	if (!ca->argv) {
		log_errno(r, "cannot read the config");
		goto fail;
	}
	ca->argv[0] = argv[0];
	for (size_t i = 0; i < n; i++)
		ca->argv[1 + i] = entries[i];
	for (int i = 1; i < argc; i++)
		ca->argv[(int)n + i] = argv[i];
	ca->argc = argc + (int)n;
	ca->nfile = (int)n;
	ca->owned = entries;
	ca->lines = lines;
	*ret_ca = ca;
	return 0;
fail:
	if (entries) {
		for (size_t i = 0; i < n; i++)
			free(entries[i]);
		free(entries);
	}
	free(lines);
	conf_args_free(ca);
	return r;
}

bool conf_args_from_file(const struct conf_args *ca, int idx)
{
	return ca && idx >= 1 && idx <= ca->nfile;
}

const char *conf_args_origin(const struct conf_args *ca, int idx, char *buf, size_t len)
{
	if (!conf_args_from_file(ca, idx))
		return NULL;
	snprintf(buf, len, "%s:%u", ca->path, ca->lines[idx - 1]);
	return buf;
}

struct conf_args *conf_args_free(struct conf_args *ca)
{
	if (!ca)
		return NULL;
	for (int i = 0; ca->owned && i < ca->nfile; i++)
		free(ca->owned[i]);
	free(ca->owned);
	free(ca->lines);
	free(ca->argv);
	free(ca->path);
	free(ca);
	return NULL;
}
