// SPDX-License-Identifier: GPL-2.0-only
/* `tern-agent disks`: the list as an aligned table for people or as one JSON document;
 * see disks.h. */
#include "agent/disks.h"
#include "agent/disks-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

/* ---- JSON ---- */

/* json-c returns NULL on allocation failure; every add goes through these so that one
 * check at the end catches any of them. */
static void j_add(struct json_object *o, const char *key, struct json_object *v, bool want,
		  int *err)
{
	if (want && !v) {
		*err = -ENOMEM;
		return;
	}
	if (json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		*err = -ENOMEM;
	}
}

static void j_str(struct json_object *o, const char *key, const char *s, int *err)
{
	j_add(o, key, s ? json_object_new_string(s) : NULL, s != NULL, err);
}

static void j_u64(struct json_object *o, const char *key, uint64_t v, int *err)
{
	j_add(o, key, json_object_new_uint64(v), true, err);
}

static void j_bool(struct json_object *o, const char *key, bool v, int *err)
{
	j_add(o, key, json_object_new_boolean(v), true, err);
}

static void j_strs(struct json_object *o, const char *key, char **v, size_t n, int *err)
{
	struct json_object *a = json_object_new_array();

	for (size_t i = 0; a && i < n; i++) {
		struct json_object *s = json_object_new_string(v[i]);

		if (!s || json_object_array_add(a, s) < 0) {
			json_object_put(s);
			*err = -ENOMEM;
		}
	}
	j_add(o, key, a, true, err);
}

static struct json_object *dev_to_json(const struct disks_dev *d, int *err)
{
	struct json_object *o = json_object_new_object();
	char devno[32];

	if (!o) {
		*err = -ENOMEM;
		return NULL;
	}
	snprintf(devno, sizeof(devno), "%u:%u", d->major, d->minor);
	j_str(o, "name", d->name, err);
	j_str(o, "path", d->path, err);
	j_str(o, "type", d->whole ? "disk" : "part", err);
	j_str(o, "devno", devno, err);
	j_u64(o, "size", d->size, err);
	j_u64(o, "logical_sector_size", d->log_sec, err);
	j_u64(o, "physical_sector_size", d->phy_sec, err);
	if (d->whole) {
		j_str(o, "pttype", d->pttype, err);
	} else {
		j_u64(o, "number", d->partno, err);
		j_u64(o, "start", d->start, err);
		j_str(o, "parent", d->parent, err);
	}
	j_str(o, "fstype", d->fstype, err);
	j_str(o, "uuid", d->uuid, err);
	j_str(o, "label", d->label, err);
	j_strs(o, "mountpoints", d->mounts, d->nmounts, err);
	j_bool(o, "rotational", d->rota, err);
	j_bool(o, "removable", d->removable, err);
	j_bool(o, "read_only", d->ro, err);
	j_strs(o, "holders", d->holders, d->nholders, err);
	j_str(o, "probe_error", d->probe_err ? d->probe_what : NULL, err);
	if (d->probe_err)
		j_str(o, "probe_errno", strerror(-d->probe_err), err);
	if (d->whole) {
		struct json_object *parts;

		j_bool(o, "device_mapper", d->dm, err);
		j_str(o, "dm_name", d->dm_name, err);
		j_str(o, "dm_uuid", d->dm_uuid, err);
		j_bool(o, "lvm", d->lvm, err);
		j_str(o, "stable_id", d->id, err);
		j_str(o, "stable_id_source", d->id_source, err);
		j_str(o, "disk_id", d->disk_id[0] ? d->disk_id : NULL, err);
		j_bool(o, "auto", d->pick, err);
		j_str(o, "skip_reason", d->pick ? NULL : d->skip_reason, err);
		parts = json_object_new_array();
		for (size_t i = 0; parts && i < d->nparts; i++) {
			struct json_object *p = dev_to_json(&d->parts[i], err);

			if (p && json_object_array_add(parts, p) < 0) {
				json_object_put(p);
				*err = -ENOMEM;
			}
		}
		j_add(o, "partitions", parts, true, err);
	}
	return o;
}

int disks_print_json(const struct disks_list *l, FILE *f)
{
	struct json_object *root, *arr;
	const char *text;
	int err = 0, r;

	r = -ENOMEM;
	root = json_object_new_object();
	if (!root)
		goto out;
	arr = json_object_new_array();
	for (size_t i = 0; arr && i < l->n; i++) {
		struct json_object *d = dev_to_json(&l->disks[i], &err);

		if (d && json_object_array_add(arr, d) < 0) {
			json_object_put(d);
			err = -ENOMEM;
		}
	}
	j_add(root, "disks", arr, true, &err);
	if (err < 0)
		goto out;
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_SPACED |
					      JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		goto out;
	r = fprintf(f, "%s\n", text) < 0 || fflush(f) != 0 ? -EIO : 0;
out:
	json_object_put(root);
	return r;
}

/* ---- table ---- */

enum { COL_NAME, COL_SIZE, COL_SECTOR, COL_TABLE_FS, COL_LABEL, COL_UUID, COL_FLAGS,
       COL_MOUNTS, COL_ID, COL_AUTO, NCOLS };

static const char *const col_heads[NCOLS] = {
	"NAME", "SIZE", "SECTOR", "PTTYPE/FS", "LABEL", "UUID", "FLAGS", "MOUNTPOINTS",
	"STABLE-ID", "AUTO",
};

struct row {
	char cell[NCOLS][160];
};

static void fill_row(const struct disks_dev *d, struct row *row)
{
	char *c[NCOLS];
	size_t w = sizeof(row->cell[0]);
	size_t used = 0;

	for (int i = 0; i < NCOLS; i++) {
		c[i] = row->cell[i];
		snprintf(c[i], w, "-");
	}
	snprintf(c[COL_NAME], w, "%s%s", d->whole ? "" : "  ", d->name);
	fmt_bytes(d->size, c[COL_SIZE], w);
	snprintf(c[COL_SECTOR], w, "%u/%u", d->log_sec, d->phy_sec);
	if (d->probe_err)
		snprintf(c[COL_TABLE_FS], w, "?");
	else if (d->pttype || d->fstype)
		snprintf(c[COL_TABLE_FS], w, "%s", d->pttype ? d->pttype : d->fstype);
	if (d->label)
		snprintf(c[COL_LABEL], w, "%s", d->label);
	if (d->uuid)
		snprintf(c[COL_UUID], w, "%s", d->uuid);
	snprintf(c[COL_FLAGS], w, "%s%s%s%s%s", d->rota ? "rot," : "", d->removable ? "rm," : "",
		 d->ro ? "ro," : "", d->lvm ? "lvm," : d->dm ? "dm," : "",
		 d->nholders ? "held," : "");
	if (c[COL_FLAGS][0] == '\0')
		snprintf(c[COL_FLAGS], w, "-");
	else
		c[COL_FLAGS][strlen(c[COL_FLAGS]) - 1] = '\0';
	for (size_t i = 0; i < d->nmounts && used + 1 < w; i++) {
		int n = snprintf(c[COL_MOUNTS] + used, w - used, "%s%s", i ? "," : "", d->mounts[i]);

		used = n < 0 ? w : MIN(w - 1, used + (size_t)n);
	}
	if (d->whole) {
		/* The id `run` uses, the one the receiver's --target names. */
		snprintf(c[COL_ID], w, "%s", d->disk_id[0] ? d->disk_id : "(none)");
		if (d->pick)
			snprintf(c[COL_AUTO], w, "yes");
		else
			snprintf(c[COL_AUTO], w, "no: %s", d->skip_reason);
	}
}

int disks_print_table(const struct disks_list *l, FILE *f)
{
	size_t nrows = 1, width[NCOLS], k = 0;
	struct row *rows;
	int r = -ENOMEM;

	for (size_t i = 0; i < l->n; i++)
		nrows += 1 + l->disks[i].nparts;
	rows = calloc(nrows, sizeof(*rows));
	if (!rows)
		return r;
	for (int c = 0; c < NCOLS; c++)
		snprintf(rows[0].cell[c], sizeof(rows[0].cell[c]), "%s", col_heads[c]);
	k = 1;
	for (size_t i = 0; i < l->n; i++) {
		fill_row(&l->disks[i], &rows[k++]);
		for (size_t j = 0; j < l->disks[i].nparts; j++)
			fill_row(&l->disks[i].parts[j], &rows[k++]);
	}
	for (int c = 0; c < NCOLS; c++) {
		width[c] = 0;
		for (size_t i = 0; i < nrows; i++)
			width[c] = MAX(width[c], strlen(rows[i].cell[c]));
	}
	r = 0;
	for (size_t i = 0; i < nrows; i++) {
		for (int c = 0; c < NCOLS; c++) {
			/* Sizes read best right-aligned; the last column gets no padding. */
			if (c == COL_SIZE)
				fprintf(f, "%*s  ", (int)width[c], rows[i].cell[c]);
			else if (c == NCOLS - 1)
				fprintf(f, "%s\n", rows[i].cell[c]);
			else
				fprintf(f, "%-*s  ", (int)width[c], rows[i].cell[c]);
		}
	}
	if (fflush(f) != 0 || ferror(f))
		r = -EIO;
	for (size_t i = 0; i < l->n; i++) {
		const struct disks_dev *d = &l->disks[i];

		if (d->probe_err)
			log_warn_errno(d->probe_err, "%s: %s", d->path, d->probe_what);
		for (size_t j = 0; j < d->nparts; j++)
			if (d->parts[j].probe_err)
				log_warn_errno(d->parts[j].probe_err, "%s: %s", d->parts[j].path,
					       d->parts[j].probe_what);
	}
	free(rows);
	return r;
}
