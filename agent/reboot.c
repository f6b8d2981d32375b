// SPDX-License-Identifier: GPL-2.0-only
/* `tern-agent track --start|--save|--seal|--consume` (reboot.h): the tracker's pending set
 * across a clean reboot, through the state files of persist.h. */
#include "agent/reboot.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "agent/persist.h"
#include "agent/session.h"
#include "agent/source.h"
#include "agent/track.h"
#include "common/log.h"
#include "common/util.h"

struct rb_disk {
	const struct agent_opts *o;
	const char *state_dir, *run_dir;
	struct source *src;
	struct track *trk;
	dev_t dev;
	char state[PATH_MAX], plan[PATH_MAX];
};

/* The pending set and identity as they stand now, into *ret (pending allocated). */
static int snapshot(struct rb_disk *d, bool sealed, struct pst_state *ret)
{
	struct pst_state s = { .sealed = sealed, .nblocks = track_nblocks(d->trk) };
	char why[256];
	int r;

	r = pst_probe(d->src->id, d->dev, d->src->size, d->o->track_block, &s.ident, why,
		      sizeof(why));
	if (r < 0)
		return log_errno(r, "%s: %s", d->src->id, why);
	s.pending = calloc(DIV_ROUND_UP(s.nblocks, 64), 8);
	if (!s.pending)
		return log_errno(-ENOMEM, "allocation");
	r = track_peek(d->trk, s.pending, &s.acked_epoch);
	if (r < 0) {
		free(s.pending);
		return log_errno(r, "%s: cannot read the tracker's pending set", d->src->id);
	}
	*ret = s;
	return 0;
}

static uint64_t count_bits(const uint64_t *b, uint64_t nblocks)
{
	uint64_t n = 0;

	for (uint64_t w = 0; w < DIV_ROUND_UP(nblocks, 64); w++)
		n += (uint64_t)__builtin_popcountll(b[w]);
	return n;
}

static int save(struct rb_disk *d)
{
	struct pst_state s = { 0 };
	struct pst_plan p;
	char why[256];
	int r;

	r = snapshot(d, false, &s);
	if (r < 0)
		return r;
	r = mkdir_p(d->state_dir, 0700);
	if (r == 0)
		r = mkdir_p(d->run_dir, 0700);
	if (r < 0) {
		log_errno(r, "cannot create %s or %s", d->state_dir, d->run_dir);
		goto out;
	}
	r = pst_save(d->state, &s, &p, why, sizeof(why));
	if (r < 0) {
		log_errno(r, "%s: %s; the next boot reconciles by fingerprints", d->src->id, why);
		goto out;
	}
	r = pst_plan_write(d->plan, &p);
	if (r < 0) {
		log_errno(r, "%s: cannot write %s", d->src->id, d->plan);
		goto out;
	}
	log_info("%s: saved %" PRIu64 " pending blocks to %s (last acknowledged epoch %" PRIu64
		 "); the shutdown hook seals it", d->src->id, count_bits(s.pending, s.nblocks),
		 d->state, s.acked_epoch);
out:
	pst_state_clear(&s);
	return r;
}

static int seal(struct rb_disk *d)
{
	struct pst_state s = { 0 };
	struct pst_plan p;
	void *buf = NULL;
	char why[256];
	int r;

	r = pst_plan_read(d->plan, &p, why, sizeof(why));
	if (r < 0)
		return log_errno(r, "%s: %s; not sealed", d->src->id, why);
	r = snapshot(d, true, &s);
	if (r < 0)
		return r;
	r = -EINVAL;
	if (p.len != pst_encoded_len(s.nblocks)) {
		log_error("%s: %s is not the state of this tracker; not sealed", d->src->id, d->plan);
		goto out;
	}
	r = -ENOMEM;
	buf = alloc_aligned(4096, p.len);
	if (!buf)
		goto out;
	r = pst_encode(&s, buf, p.len);
	if (r == 0)
		r = pst_seal_write(&p, buf, why, sizeof(why));
	if (r < 0) {
		log_errno(r, "%s: %s; not sealed", d->src->id, why);
		goto out;
	}
	log_info("%s: sealed %" PRIu64 " pending blocks into %s (%" PRIu32 " file systems' "
		 "write evidence)", d->src->id, count_bits(s.pending, s.nblocks), d->state,
		 s.ident.nfs);
out:
	free(buf);
	pst_state_clear(&s);
	return r;
}

/* The blocks of the source the state file itself lies on: the seal wrote them after the
 * last pending set was read, so they are pending too. */
static int mark_state_blocks(struct rb_disk *d, const struct pst_ident *id, uint64_t *pending)
{
	uint64_t start = id->start_sector * 512, bs = d->o->track_block;
	struct pst_plan p;
	dev_t whole;
	uint64_t dummy;
	char why[256];
	int r;

	r = pst_extents(d->state, &p, why, sizeof(why));
	if (r < 0)
		return log_errno(r, "%s: %s", d->src->id, why);
	r = src_whole_disk(d->dev, &whole, &dummy);
	if (r < 0)
		return log_errno(r, "%s: cannot find its disk", d->src->id);
	if (p.disk_major != major(whole) || p.disk_minor != minor(whole))
		return 0;
	for (unsigned i = 0; i < p.n; i++) {
		uint64_t a = MAX(p.ext[i].disk_off, start);
		uint64_t z = MIN(p.ext[i].disk_off + p.ext[i].len, start + d->src->size);

		if (a >= z)
			continue;
		for (uint64_t b = (a - start) / bs; b < DIV_ROUND_UP(z - start, bs); b++)
			pending[b / 64] |= UINT64_C(1) << (b % 64);
	}
	return 0;
}

static int start(struct rb_disk *d)
{
	struct pst_state s = { 0 };
	struct pst_ident now;
	char why[256];
	int r;

	if (track_resumed(d->trk)) {
		log_info("%s: tracking already runs (pinned since this boot); the saved state is "
			 "not needed", d->src->id);
		return 0;
	}
	/* The tracker records from here on; the checks below decide whether everything
	 * before it is in the saved set. */
	r = pst_load(d->state, &s, why, sizeof(why));
	if (r == -ENOENT) {
		log_info("%s: no saved tracking state (%s): tracking from now; the agent "
			 "reconciles by fingerprints", d->src->id, d->state);
		return 0;
	}
	if (r == 0)
		r = pst_probe(d->src->id, d->dev, d->src->size, d->o->track_block, &now, why,
			      sizeof(why));
	if (r == 0)
		r = pst_trust(&s, &now, why, sizeof(why));
	if (r == 0 && s.nblocks != track_nblocks(d->trk)) {
		snprintf(why, sizeof(why), "saved for %" PRIu64 " blocks, the tracker has %" PRIu64,
			 s.nblocks, track_nblocks(d->trk));
		r = -ESTALE;
	}
	if (r < 0) {
		log_warn("%s: not resuming from %s: %s; the agent reconciles by fingerprints",
			 d->src->id, d->state, why);
		r = 0;
		goto out;
	}
	r = mark_state_blocks(d, &now, s.pending);
	if (r == 0)
		r = track_seed(d->trk, s.pending, s.acked_epoch);
	if (r < 0) {
		log_errno(r, "%s: cannot seed the tracker; the agent reconciles by fingerprints",
			  d->src->id);
		goto out;
	}
	log_info("%s: resumed tracking from the state sealed at shutdown: %" PRIu64 " pending "
		 "blocks, last acknowledged epoch %" PRIu64, d->src->id,
		 count_bits(s.pending, s.nblocks), s.acked_epoch);
out:
	pst_state_clear(&s);
	return r;
}

static int one(struct rb_disk *d, enum rb_mode mode)
{
	struct track_conf conf = {
		.kind = TRACK_EBPF, .chunk_size = d->o->rd.chunk_size,
		.block_size = d->o->track_block, .pin_root = d->o->bpf_pin_root,
	};
	struct stat st;
	char why[256];
	int r;

	if (mode == RB_CONSUME) {
		if (unlink(d->state) < 0 && errno != ENOENT)
			return log_errno(-errno, "cannot remove %s", d->state);
		return 0;
	}
	if (fstat(d->src->fd, &st) < 0)
		return log_errno(-errno, "stat %s", d->src->path);
	d->dev = st.st_rdev;
	r = track_start_one(&conf, d->src, &d->trk, why, sizeof(why));
	if (r < 0)
		return log_errno(r, "%s: eBPF tracker: %s", d->src->id, why);
	if (mode != RB_START && !track_resumed(d->trk)) {
		/* The fresh tracker just started holds nothing; nothing to keep. A state file
		 * an earlier shutdown left must not outlive this one. */
		log_info("%s: no tracker was running; nothing to %s", d->src->id,
			 mode == RB_SAVE ? "save" : "seal");
		d->trk = track_stop(d->trk, true);
		if (mode == RB_SAVE)
			unlink(d->state);
		return 0;
	}
	r = mode == RB_START ? start(d) : mode == RB_SAVE ? save(d) : seal(d);
	/* Pinned, it records on after this command exits, for the agent. */
	d->trk = track_stop(d->trk, false);
	return r;
}

int rb_run(const struct agent_opts *o, enum rb_mode mode, const char *state_dir,
	   const char *run_dir)
{
	int ret = 0;

	if (o->tracker != TRACK_AUTO && o->tracker != TRACK_EBPF) {
		log_info("tracker %s: only the eBPF tracker is kept across a reboot",
			 track_kind_name(o->tracker));
		return 0;
	}
	for (unsigned i = 0; i < o->ndisks; i++) {
		struct rb_disk d = { .o = o, .state_dir = state_dir, .run_dir = run_dir };
		char why[256];
		int r = 0;

		/* Pin directories map dots to underscores; the files here may keep them. */
		snprintf(d.state, sizeof(d.state), "%s/%s.state", state_dir, o->disks[i].id);
		snprintf(d.plan, sizeof(d.plan), "%s/%s.plan", run_dir, o->disks[i].id);
		if (mode != RB_CONSUME) {
			r = src_open(o->disks[i].id, o->disks[i].path, &d.src, why, sizeof(why));
			if (r < 0) {
				log_errno(r, "%s: %s", o->disks[i].id, why);
				ret = r;
				continue;
			}
			if (!d.src->blockdev) {
				log_info("%s: not a block device; nothing is tracked across a reboot",
					 o->disks[i].id);
				d.src = src_free(d.src);
				continue;
			}
		}
		r = one(&d, mode);
		if (r < 0)
			ret = r;
		src_free(d.src);
	}
	return ret;
}
