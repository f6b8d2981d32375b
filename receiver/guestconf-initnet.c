// SPDX-License-Identifier: GPL-2.0-only
/* The text rewrites of OS adaptation (guestconf.h), second half: the drivers an
 * initramfs must hold (initramfs-tools, dracut, the listing check) and network
 * configuration bound to the old machine (ifupdown, systemd-networkd, NetworkManager,
 * netplan). Pure functions on strings. */
#include "receiver/guestconf.h"
#include "receiver/guestconf-impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
