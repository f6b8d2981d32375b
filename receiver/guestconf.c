// SPDX-License-Identifier: GPL-2.0-only
/* The text rewrites of OS adaptation (guestconf.h): pure functions on strings. This file:
 * the root by UUID (fstab, resume, the kernel command line, GRUB); guestconf-initnet.c:
 * the initramfs' drivers and the network configuration. */
#include "receiver/guestconf.h"
#include "receiver/guestconf-impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Where a line holds a device name to resolve: its offset and length. */
typedef bool (*span_fn)(const char *l, size_t len, size_t *ret_off, size_t *ret_n);

/* Rewrites in, line by line, putting fn's answer in place of each line's span (lines
 * without one, or whose name fn leaves alone, are kept as they are). */
static int splice_lines(const char *in, span_fn span, gconf_resolve_fn fn, void *ctx,
			char **ret_out, unsigned *ret_changed)
{
	struct sb out = { 0 };
	const char *pos = in, *l;
	unsigned changed = 0;
	size_t len;
	bool nl;
	int r;

	while ((l = next_line(&pos, &len, &nl))) {
		size_t off = 0, n = 0;
		char *spec = NULL;

		if (span(l, len, &off, &n)) {
			char *dev = strndup_or_null(l + off, n);

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
			sb_add(&out, l, off);
			sb_str(&out, spec);
			sb_add(&out, l + off + n, len - off - n);
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

/* fstab: the first field of a line that is not a comment. */
static bool fstab_span(const char *l, size_t len, size_t *ret_off, size_t *ret_n)
{
	size_t lead = 0, flen = 0;

	while (lead < len && is_blank(l[lead]))
		lead++;
	while (lead + flen < len && !is_blank(l[lead + flen]))
		flen++;
	*ret_off = lead;
	*ret_n = flen;
	return lead < len && l[lead] != '#' && flen > 0;
}

int gconf_fstab_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			unsigned *ret_changed)
{
	return splice_lines(in, fstab_span, fn, ctx, ret_out, ret_changed);
}

/* initramfs-tools' resume file: the value of RESUME=, quoted or not. */
static bool resume_span(const char *l, size_t len, size_t *ret_off, size_t *ret_n)
{
	size_t i = 0, vn = 0;
	char q = 0;

	while (i < len && is_blank(l[i]))
		i++;
	if (len - i <= 7 || strncmp(l + i, "RESUME=", 7) != 0)
		return false;
	i += 7;
	if (l[i] == '"' || l[i] == '\'')
		q = l[i++];
	while (i + vn < len && l[i + vn] != q && !is_blank(l[i + vn]) && l[i + vn] != '#')
		vn++;
	*ret_off = i;
	*ret_n = vn;
	return true;
}

int gconf_resume_rewrite(const char *in, gconf_resolve_fn fn, void *ctx, char **ret_out,
			 unsigned *ret_changed)
{
	return splice_lines(in, resume_span, fn, ctx, ret_out, ret_changed);
}

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
