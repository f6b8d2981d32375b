/* SPDX-License-Identifier: GPL-2.0-only */
/* Config files (/etc/tern/agent.conf, receiver.conf): `key = value` lines whose keys are a
 * subcommand's long options, turned into argv entries placed before the command line's, so
 * one getopt pass parses both and the command line wins. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

struct option;

/* Longest line accepted, newline excluded. */
#define CONF_LINE_MAX 4095

/* The argv a subcommand parses: its name, the config file's entries, then the command
 * line's options. */
struct conf_args {
	int argc;
	char **argv;     /* NULL-terminated; the strings are borrowed or in owned */
	int nfile;       /* argv[1..nfile] came from the file */
	char *path;      /* the file read, or NULL when none was */
	unsigned *lines; /* lines[i - 1]: the file line of argv[i], 1 <= i <= nfile */
	char **owned;    /* the file's entries (nfile of them) */
};

/* Reads the config file at path for the long options opts (a `{ NULL }`-terminated getopt
 * table). Keys are option names spelled out in full; "config" and "help" are refused. A
 * flag (no_argument) takes true|false|yes|no|on|off|1|0 and yields "--key" when true; any
 * other key yields "--key=value", the value being the rest of the line without surrounding
 * blanks (no quoting, no trailing comments). Blank lines and lines starting with '#' are
 * skipped. A key may appear once unless listed in repeatable (NULL-terminated, may be NULL).
 * On a bad line logs one error naming path:line and returns -EINVAL; a file that cannot be
 * read, is not a regular file, or is writable by group or others (it can name a command run
 * as root) gets one error line and -errno. On success returns 0 with *ret_entries (n
 * strings and a NULL, owned by the caller) and *ret_lines (n line numbers). */
int conf_parse_file(const char *path, const struct option *opts, const char *const *repeatable,
		    char ***ret_entries, unsigned **ret_lines, size_t *ret_n);

/* Builds the argv for a subcommand: argv[0], the config file's entries, then argv[1..argc).
 * The file is the one named by the option whose getopt value is config_val, found with
 * getopt_long itself so that abbreviations count (an explicit file must exist; naming two is
 * an error), else default_path when that exists. Nothing is read when --help is given.
 * argv may be permuted as getopt_long does. optind is reset for the caller's own pass.
 * Returns 0 and *ret_ca (free with conf_args_free), or -errno after logging one line. */
int conf_args_build(int argc, char **argv, const struct option *opts, int config_val,
		    const char *default_path, const char *const *repeatable,
		    struct conf_args **ret_ca);

/* True when ca->argv[idx] came from the config file. While getopt_long parses ca->argv,
 * the entry just returned is argv[optind - 1]: file entries are single tokens. */
bool conf_args_from_file(const struct conf_args *ca, int idx);

/* Writes "PATH:LINE" of ca->argv[idx] into buf and returns buf when it came from the file;
 * returns NULL otherwise. For log_set_context while parsing. */
const char *conf_args_origin(const struct conf_args *ca, int idx, char *buf, size_t len);

/* Frees; accepts NULL and returns NULL. */
struct conf_args *conf_args_free(struct conf_args *ca);
