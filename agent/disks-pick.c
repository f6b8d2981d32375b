// SPDX-License-Identifier: GPL-2.0-only
/* The rule `run` picks disks by when none is named: real, fixed disks with a stable id,
 * each disk's reason when it is left out, and the picks; see disks.h. */
#include "agent/disks.h"
#include "agent/disks-impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

bool disks_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Why `run` without --disk leaves a disk out, or NULL: real, fixed disks only. Stacked
 * devices (dm, md) are left out because their data already lives on the disks beneath
 * them; a disk without a stable id, because its kernel name can change at reboot and the
 * receiver would then write another disk's target. */
static const char *skip_reason(int devfd, const struct disks_dev *d, bool loop_ok)
{
	char type[16];

	if (disks_has_prefix(d->name, "loop") && !loop_ok)
		return "loop device";
	if (disks_has_prefix(d->name, "zram"))
		return "zram device";
	if (disks_has_prefix(d->name, "ram"))
		return "ram disk";
	if (disks_has_prefix(d->name, "sr") ||
	    (attr_read(devfd, "device/type", type, sizeof(type)) == 0 && strcmp(type, "5") == 0))
		return "optical drive";
	if (d->dm)
		return "device-mapper device";
	if (disks_has_prefix(d->name, "md"))
		return "md RAID array";
	if (d->removable)
		return "removable";
	if (!d->id)
		return "no stable id (no /dev/disk/by-id link, serial or wwid)";
	return NULL;
}

void disks_decide_pick(int devfd, struct disks_dev *d)
{
	d->skip_reason = skip_reason(devfd, d, false);
	d->pick = !d->skip_reason;
	d->loop = disks_has_prefix(d->name, "loop");
	d->loop_skip_reason = d->loop ? skip_reason(devfd, d, true) : d->skip_reason;
}

int disks_pick_auto(const struct disks_list *l, bool include_loop, struct disks_pick **ret_picks,
		    size_t *ret_n)
{
	struct disks_pick *picks = NULL;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < l->n; i++) {
		const struct disks_dev *d = &l->disks[i];
		struct disks_pick *p;
		char size[32];
		const char *why = include_loop && d->loop ? d->loop_skip_reason : d->skip_reason;

		if (why) {
			log_info("not replicating %s: %s", d->path, why);
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			if (strcmp(picks[j].id, d->disk_id) == 0) {
				r = log_errno(-EEXIST, "%s and %s have the same disk id %s; name "
					      "the disks with --disk", picks[j].path, d->path,
					      d->disk_id);
				goto fail;
			}
		}
		r = -ENOMEM;
		p = disks_grow(picks, n, sizeof(*p));
		if (!p) {
			log_errno(r, "cannot choose disks");
			goto fail;
		}
		picks = p;
		p = &picks[n++];
		p->id = strdup(d->disk_id);
		p->path = strdup(d->id_path ? d->id_path : d->path);
		if (!p->id || !p->path) {
			log_errno(r, "cannot choose disks");
			goto fail;
		}
		log_info("replicating %s (%s) as disk %s from %s (stable id from %s)", d->path,
			 fmt_bytes(d->size, size, sizeof(size)), p->id, p->path, d->id_source);
	}
	*ret_picks = picks;
	*ret_n = n;
	return 0;
fail:
	disks_picks_free(picks, n);
	return r;
}

struct disks_pick *disks_picks_free(struct disks_pick *p, size_t n)
{
	for (size_t i = 0; p && i < n; i++) {
		free(p[i].id);
		free(p[i].path);
	}
	free(p);
	return NULL;
}
