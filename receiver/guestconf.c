// SPDX-License-Identifier: GPL-2.0-only
/* The text rewrites of OS adaptation (guestconf.h): pure functions on strings. */
#include "receiver/guestconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; an allocation failure sticks and is reported once at the end. */
struct sb {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sb *s, const char *str, size_t n)
{
	if (s->oom)
		return;
	if (s->len + n + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *p;

		while (cap < s->len + n + 1)
			cap *= 2;
		p = realloc(s->p, cap);
		if (!p) {
			s->oom = true;
			return;
		}
		s->p = p;
		s->cap = cap;
	}
	memcpy(s->p + s->len, str, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void sb_str(struct sb *s, const char *str)
{
	sb_add(s, str, strlen(str));
}

/* Hands the string over: 0 and *ret (never NULL, "" when empty), or -ENOMEM. */
static int sb_done(struct sb *s, char **ret)
{
	sb_add(s, "", 0);
	if (s->oom) {
		free(s->p);
		return -ENOMEM;
	}
	*ret = s->p;
	return 0;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The next line of *pos: its start, its length without the newline; advances *pos past
 * the newline. NULL at the end. *ret_nl says whether the line had a newline. */
static const char *next_line(const char **pos, size_t *ret_len, bool *ret_nl)
{
	const char *s = *pos, *e;

	if (!*s)
		return NULL;
	e = strchr(s, '\n');
	if (e) {
		*ret_len = (size_t)(e - s);
		*ret_nl = true;
		*pos = e + 1;
	} else {
		*ret_len = strlen(s);
		*ret_nl = false;
		*pos = s + *ret_len;
	}
	return s;
}

static char *strndup_or_null(const char *s, size_t n)
{
	return strndup(s, n);
}

int gconf_dev_parse(const char *dev, int *ret_disk, unsigned *ret_part)
{
	static const char *const prefixes[] = { "/dev/sd", "/dev/hd", "/dev/vd", "/dev/xvd" };
	const char *p;
	unsigned long disk = 0, part = 0;

	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t n = strlen(prefixes[i]), letters = 0;

		if (strncmp(dev, prefixes[i], n) != 0)
			continue;
		p = dev + n;
		/* sda..sdz, sdaa..: a bijective base-26 number. */
		while (*p >= 'a' && *p <= 'z' && letters < 3) {
			disk = disk * 26 + (unsigned long)(*p - 'a' + 1);
			p++;
			letters++;
		}
		if (letters == 0)
			return -ENOENT;
		if (*p) {
			char *end;

			if (!isdigit((unsigned char)*p))
				return -ENOENT;
			part = strtoul(p, &end, 10);
			if (*end || part == 0 || part > 4096)
				return -ENOENT;
		}
		*ret_disk = (int)(disk - 1);
		*ret_part = (unsigned)part;
		return 0;
	}
	if (strncmp(dev, "/dev/nvme", 9) == 0) {
		char *end;

		p = dev + 9;
		if (!isdigit((unsigned char)*p))
			return -ENOENT;
		disk = strtoul(p, &end, 10);
		if (*end != 'n' || !isdigit((unsigned char)end[1]) || disk > 1024)
			return -ENOENT;
		(void)strtoul(end + 1, &end, 10);
		if (*end == 'p') {
			if (!isdigit((unsigned char)end[1]))
				return -ENOENT;
			part = strtoul(end + 1, &end, 10);
			if (part == 0 || part > 4096)
				return -ENOENT;
		}
		if (*end)
			return -ENOENT;
		*ret_disk = (int)disk;
		*ret_part = (unsigned)part;
		return 0;
	}
	if (strncmp(dev, "/dev/disk/by-id/", 16) == 0 ||
	    strncmp(dev, "/dev/disk/by-path/", 18) == 0) {
		const char *dash = strrchr(dev, '-');
		char *end;

		if (dash && strncmp(dash, "-part", 5) == 0 && isdigit((unsigned char)dash[5])) {
			part = strtoul(dash + 5, &end, 10);
			if (*end || part == 0 || part > 4096)
				return -ENOENT;
		}
		*ret_disk = -1;
		*ret_part = (unsigned)part;
		return 0;
	}
	return -ENOENT;
}

int gconf_fstab_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			unsigned *ret_changed)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	unsigned changed = 0;
	size_t len;
	bool nl;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t lead = 0, flen = 0;
		char *field = NULL, *spec = NULL;

		while (lead < len && is_blank(l[lead]))
			lead++;
		while (lead + flen < len && !is_blank(l[lead + flen]))
			flen++;
		if (lead < len && l[lead] != '#' && flen > 0) {
			field = strndup_or_null(l + lead, flen);
			if (!field) {
				out.oom = true;
				break;
			}
			r = fn(ctx, field, &spec);
			free(field);
			if (r == -ENOMEM) {
				out.oom = true;
				break;
			}
		}
		if (spec) {
			sb_add(&out, l, lead);
			sb_str(&out, spec);
			sb_add(&out, l + lead + flen, len - lead - flen);
			free(spec);
			changed++;
		} else {
			sb_add(&out, l, len);
		}
		if (nl)
			sb_add(&out, "\n", 1);
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_changed = changed;
	return 0;
}

int gconf_resume_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			 unsigned *ret_changed)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	unsigned changed = 0;
	size_t len;
	bool nl;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t i = 0, vn = 0;
		char *spec = NULL, q = 0;

		while (i < len && is_blank(l[i]))
			i++;
		if (len - i > 7 && strncmp(l + i, "RESUME=", 7) == 0) {
			char *dev;

			i += 7;
			if (l[i] == '"' || l[i] == '\'')
				q = l[i++];
			while (i + vn < len && l[i + vn] != q && !is_blank(l[i + vn]) &&
			       l[i + vn] != '#')
				vn++;
			dev = strndup(l + i, vn);
			if (!dev) {
				out.oom = true;
				break;
			}
			r = fn(ctx, dev, &spec);
			free(dev);
			if (r == -ENOMEM) {
				out.oom = true;
				break;
			}
		}
		if (spec) {
			sb_add(&out, l, i);
			sb_str(&out, spec);
			sb_add(&out, l + i + vn, len - i - vn);
			free(spec);
			changed++;
		} else {
			sb_add(&out, l, len);
		}
		if (nl)
			sb_add(&out, "\n", 1);
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_changed = changed;
	return 0;
}

/* A word of a command line, as a pointer into it and a length. */
struct word {
	const char *s;
	size_t n;
};

static bool word_is(const struct word *w, const char *key)
{
	size_t k = strlen(key);

	return w->n >= k && strncmp(w->s, key, k) == 0;
}

int gconf_cmdline_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, bool console,
			  char **ret_out, unsigned *ret_changed)
{
	struct sb out = { 0 };
	const char *p = in;
	unsigned changed = 0;
	int r;

	while (*p) {
		struct word w;
		const char *key = NULL;
		char *spec = NULL;

		while (is_blank(*p))
			p++;
		if (!*p)
			break;
		w.s = p;
		while (*p && !is_blank(*p))
			p++;
		w.n = (size_t)(p - w.s);
		if (console && word_is(&w, "console=")) {
			changed++;
			continue;
		}
		if (word_is(&w, "root="))
			key = "root=";
		else if (word_is(&w, "resume="))
			key = "resume=";
		if (key) {
			size_t k = strlen(key);
			char *dev = strndup(w.s + k, w.n - k);

			if (!dev) {
				out.oom = true;
				break;
			}
			r = fn(ctx, dev, &spec);
			free(dev);
			if (r == -ENOMEM) {
				out.oom = true;
				break;
			}
		}
		if (out.len)
			sb_add(&out, " ", 1);
		if (spec) {
			sb_str(&out, key);
			sb_str(&out, spec);
			free(spec);
			changed++;
		} else {
			sb_add(&out, w.s, w.n);
		}
	}
	if (console) {
		if (out.len)
			sb_add(&out, " ", 1);
		sb_str(&out, GCONF_CONSOLE);
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	/* Dropping console= words and adding the same back is no change. */
	if (strcmp(*ret_out, in) == 0)
		changed = 0;
	else if (changed == 0)
		changed = 1;
	*ret_changed = changed;
	return 0;
}

/* Parses "NAME=value" at l (len bytes, leading blanks and "export " allowed) for one of
 * the GRUB_CMDLINE_LINUX variables. On a match: *ret_var is the name, *ret_vs and *ret_vn
 * the value inside its quotes, *ret_q the quote ('"', '\'' or 0), *ret_tail what follows. */
static bool grub_cmdline_assignment(const char *l, size_t len, const char **ret_var,
				    size_t *ret_prefix, const char **ret_vs, size_t *ret_vn,
				    char *ret_q, const char **ret_tail)
{
	static const char *const vars[] = { "GRUB_CMDLINE_LINUX_DEFAULT", "GRUB_CMDLINE_LINUX" };
	size_t i = 0;

	while (i < len && is_blank(l[i]))
		i++;
	if (len - i > 7 && strncmp(l + i, "export ", 7) == 0)
		i += 7;
	for (size_t v = 0; v < 2; v++) {
		size_t n = strlen(vars[v]), j = i + n;
		const char *vs, *ve;
		char q = 0;

		if (len - i <= n || strncmp(l + i, vars[v], n) != 0 || l[j] != '=')
			continue;
		j++;
		if (j < len && (l[j] == '"' || l[j] == '\''))
			q = l[j++];
		vs = l + j;
		if (q) {
			ve = memchr(vs, q, len - j);
			if (!ve)
				return false;
		} else {
			ve = vs;
			while (ve < l + len && !is_blank(*ve) && *ve != '#')
				ve++;
		}
		*ret_var = vars[v];
		*ret_prefix = i + n + 1;
		*ret_vs = vs;
		*ret_vn = (size_t)(ve - vs);
		*ret_q = q;
		*ret_tail = q ? ve + 1 : ve;
		return true;
	}
	return false;
}

/* Whether a shell value (v, n bytes; quoted or not, a comment after it) is "true". */
static bool value_is_true(const char *v, size_t n)
{
	size_t i = 0;

	if (n > 0 && (v[0] == '"' || v[0] == '\'')) {
		v++;
		n--;
	}
	if (n < 4 || strncmp(v, "true", 4) != 0)
		return false;
	i = 4;
	if (i < n && (v[i] == '"' || v[i] == '\''))
		i++;
	return i == n || is_blank(v[i]) || v[i] == '#';
}

int gconf_grub_default_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, bool console,
			       bool add_missing, char **ret_out, unsigned *ret_changed)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	bool nl, seen_linux = false;
	unsigned changed = 0;
	size_t len;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		const char *var, *vs, *tail;
		size_t prefix, vn, i = 0;
		char q;

		while (i < len && is_blank(l[i]))
			i++;
		if (len - i >= 24 && strncmp(l + i, "GRUB_DISABLE_LINUX_UUID=", 24) == 0 &&
		    value_is_true(l + i + 24, len - i - 24)) {
			sb_str(&out, "#");
			sb_add(&out, l, len);
			sb_str(&out, "  # disabled by tern: the kernel must find its root by UUID");
			changed++;
		} else if (grub_cmdline_assignment(l, len, &var, &prefix, &vs, &vn, &q, &tail)) {
			bool is_linux = strcmp(var, "GRUB_CMDLINE_LINUX") == 0;
			char *val = strndup(vs, vn), *nv = NULL;
			unsigned c = 0;

			if (!val) {
				out.oom = true;
				break;
			}
			r = gconf_cmdline_rewrite(val, fn, ctx, console && is_linux, &nv, &c);
			free(val);
			if (r < 0) {
				out.oom = true;
				break;
			}
			seen_linux = seen_linux || is_linux;
			/* An unquoted value gets quotes it does not hold, or is left alone. */
			char quote = q ? q : !strchr(nv, '"') ? '"' : !strchr(nv, '\'') ? '\'' : 0;

			if (c == 0 || !quote) {
				sb_add(&out, l, len);
			} else {

				sb_add(&out, l, prefix);
				sb_add(&out, &quote, 1);
				sb_str(&out, nv);
				sb_add(&out, &quote, 1);
				sb_add(&out, tail, (size_t)(l + len - tail));
				changed += c;
			}
			free(nv);
		} else {
			sb_add(&out, l, len);
		}
		if (nl)
			sb_add(&out, "\n", 1);
	}
	if (console && add_missing && !seen_linux) {
		if (out.len && out.p[out.len - 1] != '\n')
			sb_add(&out, "\n", 1);
		sb_str(&out, "GRUB_CMDLINE_LINUX=\"" GCONF_CONSOLE "\"\n");
		changed++;
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_changed = changed;
	return 0;
}

static int why_set(char **ret_why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why_set(char **ret_why, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(ret_why, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*ret_why = NULL;
		return -ENOMEM;
	}
	return 0;
}

int gconf_grubcfg_check(const char *cfg, const char *root, bool console, char **ret_why)
{
	const char *pos = cfg, *l;
	char want[320];
	int entries = 0;
	size_t len;
	bool nl;

	snprintf(want, sizeof(want), "root=%s", root);
	while ((l = next_line(&pos, &len, &nl))) {
		struct word rw = { NULL, 0 }, w;
		bool has_console = false;
		const char *p = l, *e = l + len;

		while (p < e && is_blank(*p))
			p++;
		w.s = p;
		while (p < e && !is_blank(*p))
			p++;
		w.n = (size_t)(p - w.s);
		if (!((w.n == 5 && strncmp(w.s, "linux", 5) == 0) ||
		      (w.n == 7 && strncmp(w.s, "linux16", 7) == 0) ||
		      (w.n == 8 && strncmp(w.s, "linuxefi", 8) == 0)))
			continue;
		entries++;
		while (p < e) {
			while (p < e && is_blank(*p))
				p++;
			w.s = p;
			while (p < e && !is_blank(*p))
				p++;
			w.n = (size_t)(p - w.s);
			if (w.n > 5 && strncmp(w.s, "root=", 5) == 0)
				rw = w;
			if (w.n >= 20 && strncmp(w.s, "console=ttyS0,115200", 20) == 0)
				has_console = true;
		}
		if (!rw.s || rw.n != strlen(want) || strncmp(rw.s, want, rw.n) != 0) {
			why_set(ret_why, "grub.cfg entry names its root as %.*s, not %s: %.*s",
				rw.s ? (int)rw.n : 4, rw.s ? rw.s : "none", want,
				(int)(len > 160 ? 160 : len), l);
			return -EBADMSG;
		}
		if (console && !has_console) {
			why_set(ret_why, "grub.cfg entry has no console=ttyS0,115200: %.*s",
				(int)(len > 160 ? 160 : len), l);
			return -EBADMSG;
		}
	}
	if (entries == 0) {
		why_set(ret_why, "grub.cfg has no linux entry");
		return -ENOENT;
	}
	return entries;
}

/* Whether a and b (lengths an, bn) name the same module: '-' and '_' are the same. */
static bool mod_eq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++) {
		char x = a[i] == '-' ? '_' : a[i], y = b[i] == '-' ? '_' : b[i];

		if (x != y)
			return false;
	}
	return true;
}

int gconf_modules_add(const char *in, const char *const *drivers, const char *comment,
		      char **ret_out, unsigned *ret_added)
{
	struct sb out = { 0 };
	unsigned added = 0;
	int r;

	sb_str(&out, in);
	if (out.len && out.p[out.len - 1] != '\n')
		sb_add(&out, "\n", 1);
	for (size_t d = 0; drivers[d]; d++) {
		const char *pos = in, *l;
		bool found = false, nl;
		size_t len;

		while (!found && (l = next_line(&pos, &len, &nl))) {
			size_t i = 0, n = 0;

			while (i < len && is_blank(l[i]))
				i++;
			while (i + n < len && !is_blank(l[i + n]) && l[i + n] != '#')
				n++;
			found = n > 0 && l[i] != '#' &&
				mod_eq(l + i, n, drivers[d], strlen(drivers[d]));
		}
		if (found)
			continue;
		if (added++ == 0) {
			sb_str(&out, "# ");
			sb_str(&out, comment);
			sb_str(&out, "\n");
		}
		sb_str(&out, drivers[d]);
		sb_str(&out, "\n");
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_added = added;
	return 0;
}

int gconf_initramfs_conf(const char *in, char **ret_out, bool *ret_changed)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	bool nl, changed = false;
	size_t len;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t i = 0;

		while (i < len && is_blank(l[i]))
			i++;
		if (len - i >= 11 && strncmp(l + i, "MODULES=dep", 11) == 0 &&
		    (len - i == 11 || is_blank(l[i + 11]) || l[i + 11] == '#')) {
			sb_str(&out, "MODULES=most  # was MODULES=dep; changed by tern: dep "
				     "would take the drivers of the rebuilding machine");
			changed = true;
		} else {
			sb_add(&out, l, len);
		}
		if (nl)
			sb_add(&out, "\n", 1);
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_changed = changed;
	return 0;
}

int gconf_dracut_conf(const char *const *drivers, const char *comment, char **ret_out)
{
	struct sb out = { 0 };

	sb_str(&out, "# ");
	sb_str(&out, comment);
	sb_str(&out, "\nadd_drivers+=\" ");
	for (size_t d = 0; drivers[d]; d++) {
		sb_str(&out, drivers[d]);
		sb_str(&out, " ");
	}
	sb_str(&out, "\"\n");
	return sb_done(&out, ret_out);
}

/* The first word of l and where the rest starts. */
static struct word first_word(const char *l, size_t len, size_t *ret_rest)
{
	struct word w;
	size_t i = 0, n = 0;

	while (i < len && is_blank(l[i]))
		i++;
	while (i + n < len && !is_blank(l[i + n]))
		n++;
	w.s = l + i;
	w.n = n;
	*ret_rest = i + n;
	return w;
}

static bool w_eq(const struct word *w, const char *s)
{
	return w->n == strlen(s) && strncmp(w->s, s, w->n) == 0;
}

#define TERN_OFF "#tern: "

int gconf_interfaces_disable(const char *in, char **ret_out, unsigned *ret_disabled)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	bool nl, in_off = false;
	unsigned disabled = 0;
	size_t len;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t rest;
		struct word w = first_word(l, len, &rest);
		bool stanza = w_eq(&w, "iface") || w_eq(&w, "mapping") || w_eq(&w, "auto") ||
			      w_eq(&w, "source") || w_eq(&w, "source-directory") ||
			      (w.n > 6 && strncmp(w.s, "allow-", 6) == 0);

		if (w.n == 0 || w.s[0] == '#') {
			sb_add(&out, l, len);
		} else if (stanza) {
			in_off = false;
			if (w_eq(&w, "iface") || w_eq(&w, "mapping")) {
				size_t r2;
				struct word name = first_word(l + rest, len - rest, &r2);

				if (!w_eq(&name, "lo")) {
					in_off = true;
					if (w_eq(&w, "iface"))
						disabled++;
					sb_str(&out, TERN_OFF);
				}
				sb_add(&out, l, len);
			} else if (w_eq(&w, "auto") || strncmp(w.s, "allow-", 6) == 0) {
				const char *p = l + rest, *e = l + len;
				bool lo = false, other = false;

				while (p < e) {
					size_t r3;
					struct word n = first_word(p, (size_t)(e - p), &r3);

					if (n.n == 0)
						break;
					if (w_eq(&n, "lo"))
						lo = true;
					else
						other = true;
					p += r3;
				}
				if (other) {
					sb_str(&out, TERN_OFF);
					sb_add(&out, l, len);
					if (lo) {
						sb_str(&out, "\n");
						sb_add(&out, w.s, w.n);
						sb_str(&out, " lo");
					}
				} else {
					sb_add(&out, l, len);
				}
			} else {
				sb_add(&out, l, len);
			}
		} else if (in_off) {
			sb_str(&out, TERN_OFF);
			sb_add(&out, l, len);
		} else {
			sb_add(&out, l, len);
		}
		if (nl)
			sb_add(&out, "\n", 1);
	}
	r = sb_done(&out, ret_out);
	if (r < 0)
		return r;
	*ret_disabled = disabled;
	return 0;
}

/* Calls fn for each "key=value" of an ini-style file with its section ("" before any);
 * stops when fn returns true and returns true then. */
static bool ini_any(const char *in, bool (*fn)(const char *sec, size_t sn, const char *key,
					       size_t kn, const char *val, size_t vn))
{
	const char *pos = in, *l, *sec = "";
	size_t len, sn = 0;
	bool nl;

	while ((l = next_line(&pos, &len, &nl))) {
		const char *e = l + len, *eq;
		size_t kn;

		while (l < e && is_blank(*l))
			l++;
		while (e > l && (is_blank(e[-1]) || e[-1] == '\r'))
			e--;
		if (l == e || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			const char *c = memchr(l, ']', (size_t)(e - l));

			sec = l + 1;
			sn = c ? (size_t)(c - sec) : 0;
			continue;
		}
		eq = memchr(l, '=', (size_t)(e - l));
		if (!eq)
			continue;
		kn = (size_t)(eq - l);
		while (kn > 0 && is_blank(l[kn - 1]))
			kn--;
		eq++;
		while (eq < e && is_blank(*eq))
			eq++;
		if (fn(sec, sn, l, kn, eq, (size_t)(e - eq)))
			return true;
	}
	return false;
}

static bool eqn(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && strncmp(s, lit, n) == 0;
}

static bool networkd_bound_kv(const char *sec, size_t sn, const char *key, size_t kn,
			      const char *val, size_t vn)
{
	if (eqn(sec, sn, "Match"))
		return vn > 0 && (eqn(key, kn, "Name") || eqn(key, kn, "MACAddress") ||
				  eqn(key, kn, "PermanentMACAddress") || eqn(key, kn, "Path") ||
				  eqn(key, kn, "Driver"));
	if (eqn(sec, sn, "Network"))
		return vn > 0 && (eqn(key, kn, "Address") || eqn(key, kn, "Gateway"));
	if (eqn(sec, sn, "Address") || eqn(sec, sn, "Route"))
		return vn > 0 && (eqn(key, kn, "Address") || eqn(key, kn, "Gateway"));
	return false;
}

bool gconf_networkd_bound(const char *in)
{
	return ini_any(in, networkd_bound_kv);
}

static bool nm_is_ethernet(const char *sec, size_t sn, const char *key, size_t kn,
			   const char *val, size_t vn)
{
	return eqn(sec, sn, "connection") && eqn(key, kn, "type") &&
	       (eqn(val, vn, "ethernet") || eqn(val, vn, "802-3-ethernet"));
}

static bool nm_bound_kv(const char *sec, size_t sn, const char *key, size_t kn,
			const char *val, size_t vn)
{
	if (eqn(sec, sn, "connection") && eqn(key, kn, "interface-name"))
		return vn > 0;
	if ((eqn(sec, sn, "ethernet") || eqn(sec, sn, "802-3-ethernet")) &&
	    eqn(key, kn, "mac-address"))
		return vn > 0;
	if (eqn(sec, sn, "ipv4") && eqn(key, kn, "method"))
		return eqn(val, vn, "manual");
	return false;
}

bool gconf_nm_bound(const char *in)
{
	return ini_any(in, nm_is_ethernet) && ini_any(in, nm_bound_kv);
}

bool gconf_netplan_bound(const char *in)
{
	const char *pos = in, *l;
	size_t len;
	bool nl;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t rest;
		struct word w = first_word(l, len, &rest);

		if (w.n >= 10 && strncmp(w.s, "ethernets:", 10) == 0)
			return true;
	}
	return false;
}

/* Whether path (n bytes) ends in "/MOD.ko" or "/MOD.ko.<ext>". */
static bool path_is_module(const char *path, size_t n, const char *mod)
{
	const char *base = path, *ko;
	size_t bn;

	for (size_t i = 0; i < n; i++)
		if (path[i] == '/')
			base = path + i + 1;
	bn = (size_t)(path + n - base);
	ko = NULL;
	for (size_t i = 0; i + 3 <= bn; i++)
		if (strncmp(base + i, ".ko", 3) == 0 &&
		    (i + 3 == bn || base[i + 3] == '.')) {
			ko = base + i;
			break;
		}
	if (!ko)
		return false;
	return mod_eq(base, (size_t)(ko - base), mod, strlen(mod));
}

bool gconf_listing_has_module(const char *listing, const char *mod)
{
	const char *pos = listing, *l;
	size_t len;
	bool nl;

	while ((l = next_line(&pos, &len, &nl))) {
		/* lsinitrd prints `ls -l` columns: the path is the last word. */
		const char *e = l + len, *s;

		while (e > l && is_blank(e[-1]))
			e--;
		s = e;
		while (s > l && !is_blank(s[-1]))
			s--;
		if (path_is_module(s, (size_t)(e - s), mod))
			return true;
	}
	return false;
}

bool gconf_modlist_has(const char *list, const char *mod)
{
	const char *pos = list, *l;
	size_t len;
	bool nl;

	while ((l = next_line(&pos, &len, &nl))) {
		/* modules.dep: "path: deps"; modules.builtin: "path". */
		const char *c = memchr(l, ':', len);

		if (path_is_module(l, c ? (size_t)(c - l) : len, mod))
			return true;
	}
	return false;
}
