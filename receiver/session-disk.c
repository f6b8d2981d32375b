// SPDX-License-Identifier: GPL-2.0-only
/* A disk joining a receiver session (DISK): the fingerprint budget and array, claiming the
 * target, and what the disk's record (record.c) and the FPS frames of a resume hold. */
#include "receiver/session-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/util.h"
#include "receiver/record.h"
#include "receiver/registry.h"
#include "receiver/writer.h"

/* Takes bytes from the receiver-wide fingerprint budget: the agent picks the disk's
 * size and chunk size, so without a bound one DISK frame could ask for any memory. */
int fp_reserve(struct rcv_server *srv, uint64_t bytes, uint64_t *ret_free)
{
	int r = 0;

	pthread_mutex_lock(&srv->lock);
	*ret_free = srv->fp_budget - MIN(srv->fp_used, srv->fp_budget);
	if (bytes > *ret_free)
		r = -ENOMEM;
	else
		srv->fp_used += bytes;
	pthread_mutex_unlock(&srv->lock);
	return r;
}

void fp_release(struct rcv_server *srv, uint64_t bytes)
{
	pthread_mutex_lock(&srv->lock);
	srv->fp_used -= MIN(bytes, srv->fp_used);
	pthread_mutex_unlock(&srv->lock);
}

/* Chunk i's fingerprint as the agent computes it, from an array of fps_alloc's. */
static void fp_get(const struct rsession *s, const struct rdisk *d, const struct fp *fps,
		   uint64_t i, struct fp *ret)
{
	fps_get(fps, i, d->size, s->cs, ret);
}

/* The Merkle root over fps (common/fptab.h: runs of zero chunks at once). */
void disk_root(const struct rsession *s, const struct rdisk *d, const struct fp *fps,
	       struct fp *ret_root)
{
	fps_root(fps, d->size, s->cs, ret_root);
}

static struct rcv_target *claim_target(struct rcv_server *srv, const char *id, bool *ret_busy)
{
	struct rcv_target *t = NULL;

	*ret_busy = false;
	pthread_mutex_lock(&srv->lock);
	for (unsigned i = 0; i < srv->ntargets; i++) {
		if (strcmp(srv->targets[i].id, id) != 0)
			continue;
		if (srv->targets[i].busy) {
			*ret_busy = true;
		} else {
			srv->targets[i].busy = true;
			t = &srv->targets[i];
		}
		break;
	}
	pthread_mutex_unlock(&srv->lock);
	return t;
}

void release_target(struct rcv_server *srv, struct rcv_target *t)
{
	pthread_mutex_lock(&srv->lock);
	t->busy = false;
	pthread_mutex_unlock(&srv->lock);
}

/* What a disk's state record says, parsed strictly; absent fields stay 0. */
static int load_record(struct rsession *s, const char *id, struct disk_record *ret)
{
	return rec_load(s->srv->state_dir, id, ret);
}

static int read_target(void *ctx, void *buf, size_t len, uint64_t off)
{
	return wr_read(ctx, buf, len, off);
}

/* Fills d->fps for a resumed disk: from the fingerprints saved with its last verified
 * epoch, or, when that epoch was interrupted, by reading and fingerprinting the target
 * (reconciliation: the agent then sends exactly the chunks that differ). */
int recover_fps(struct rsession *s, struct rdisk *d, const struct disk_record *rec,
		       bool *ret_reconciled)
{
	int r;

	*ret_reconciled = false;
	if (rec->verified && rec_fps_load(s->srv->state_dir, d->t->id, d->fps, d->nchunks) == 0)
		return 0;
	r = rec_reconcile(read_target, d->w, d->size, s->cs, d->fps);
	if (r < 0)
		return r;
	*ret_reconciled = true;
	return 0;
}

/* Sends the FPS frames that follow DISK_OK: the known fingerprints, or one empty frame.
 * some: only the held chunks are vouched for (a first copy resumed from its checkpoint,
 * read under tracking generation gen); the others go as 16 zero bytes. */
static int send_fps(struct rsession *s, uint16_t disk_no, const struct rdisk *d, bool known,
		    bool some, uint64_t gen)
{
	static const struct fp zero;
	uint8_t *out = malloc(PROTO_FPS_FRAME_MAX);
	struct fp *part = malloc((size_t)PROTO_FPS_MAX * FP_LEN);
	uint64_t first = 0;
	int n, r = 0;

	if (!out || !part) {
		free(out);
		free(part);
		return -ENOMEM;
	}
	do {
		struct proto_fps m = { .disk_no = disk_no, .next_epoch = d->epoch, .first_chunk = first };

		m.count = known ? (uint32_t)MIN((uint64_t)PROTO_FPS_MAX, d->nchunks - first) : 0;
		/* The agent gets zero chunks' real fingerprints. */
		for (uint32_t i = 0; i < m.count; i++) {
			if (some && !(d->held[(first + i) / 8] >> ((first + i) % 8) & 1))
				part[i] = zero;
			else
				fp_get(s, d, d->fps, first + i, &part[i]);
		}
		m.fps = part;
		if (some && m.count) {
			/* Frames start at multiples of PROTO_FPS_MAX, so on a byte. */
			m.flags = PROTO_FPS_SOME;
			m.track_gen = gen;
			m.held = d->held + first / 8;
		}
		n = proto_encode_fps(out, PROTO_FPS_FRAME_MAX, &m);
		r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
		first += m.count;
	} while (r == 0 && known && first < d->nchunks);
	free(out);
	free(part);
	return r;
}

/* Records what the target holds: verified with its root, or "copy in progress" (written
 * before the first byte of a copy, so a copy that then fails cannot leave an older
 * verified record describing a target it has partly overwritten). */
int save_disk_state(struct rsession *s, const struct rdisk *d, uint64_t epoch,
			   const struct fp *root)
{
	struct disk_record *rec = calloc(1, sizeof(*rec));
	int r;

	if (!rec)
		return -ENOMEM;
	*rec = (struct disk_record){ .present = true, .verified = root != NULL,
				     .cut_over = d->cut_over, .size = d->size,
				     .chunk_size = s->cs, .epoch = epoch };
	if (root)
		rec->root = *root;
	snprintf(rec->disk, sizeof(rec->disk), "%s", d->t->id);
	snprintf(rec->agent, sizeof(rec->agent), "%s", s->agent);
	snprintf(rec->target, sizeof(rec->target), "%s", d->t->path);
	snprintf(rec->event, sizeof(rec->event), "%s", d->event);
	r = strlen(d->t->path) < sizeof(rec->target) ? rec_save(s->srv->state_dir, rec) :
	    -ENAMETOOLONG;
	free(rec);
	return r;
}

/* The agent that last wrote this disk's target, from its state record ("" when none). */
static int state_owner(struct rsession *s, const char *id, char *ret_agent, size_t len)
{
	return rec_owner(s->srv->state_dir, id, ret_agent, len);
}

/* Sets the disk's last event: a UTC time stamp, then the text. */
void note_event(struct rdisk *d, const char *fmt, ...)
{
	time_t now = time(NULL);
	struct tm tm;
	size_t n;
	va_list ap;

	n = strftime(d->event, sizeof(d->event), "%Y-%m-%dT%H:%M:%SZ: ", gmtime_r(&now, &tm));
	va_start(ap, fmt);
	vsnprintf(d->event + n, sizeof(d->event) - n, fmt, ap);
	va_end(ap);
}

/* Says in the disk's record what brought this session about, when it was a fault: the
 * last session lost without BYE (a network loss or the agent killed: the agent's log says
 * which), or this receiver started over a record of an epoch it never finished (the
 * receiver was killed or crashed). Reconciliation by reading the target is named too. */
static void note_resume(struct rdisk *d, const struct disk_record *rec, bool known, bool reconciled,
			bool from_ckpt)
{
	const char *how = reconciled ? "; the interrupted epoch was reconciled by reading the target" :
			  from_ckpt ? "; the first copy resumed from its checkpoint" :
			  "; resumed from the fingerprints of the last verified epoch";

	snprintf(d->event, sizeof(d->event), "%s", rec->event);
	if (!known)
		return;
	/* The last session wrote down what went wrong; say how it ended. */
	if (d->t->seen && d->t->fault_noted)
		snprintf(d->event, sizeof(d->event), "%.*s; the agent came back%s",
			 (int)(sizeof(d->event) - strlen(how) - 32), rec->event, how);
	else if (d->t->seen && d->t->last_end[0])
		note_event(d, "%s in epoch %" PRIu64 "; the agent came back%s", d->t->last_end,
			   rec->epoch + (rec->verified ? 1 : 0), how);
	else if (!d->t->seen && !rec->verified)
		note_event(d, "the receiver restarted with epoch %" PRIu64 " unfinished (it was "
			   "stopped or killed mid-epoch)%s", rec->epoch, how);
}

/* Writes the .fps file atomically, with zero chunks' real fingerprints. */
int save_fps(struct rsession *s, const struct rdisk *d)
{
	return rec_fps_save(s->srv->state_dir, d->t->id, d->fps, d->nchunks, d->size, s->cs);
}

/* Whether another disk's record vouches for what target path holds (see
 * rec_vouched_elsewhere): a copy would overwrite it. 1, 0 or -errno. */
static int vouched_elsewhere(struct rsession *s, const char *id, const char *path,
			     char *ret_other, size_t len)
{
	return rec_vouched_elsewhere(s->srv->state_dir, id, path, ret_other, len);
}

/* The size a target has now, without changing it (a missing file is -ENOENT). */
static int target_size(const char *path, uint64_t *ret_size)
{
	struct stat st;
	uint64_t size;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size;
	else if (!S_ISBLK(st.st_mode))
		r = -EINVAL;
	else if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		*ret_size = size;
	return r;
}

/* Who may write the disk's target, checked before anything about it changes: the agent
 * it is bound to, the agent its record names, a record that can be read, a disk not cut
 * over. Fills rec. 0 or refuse()'s -errno. */
static int check_owner(struct rsession *s, struct rdisk *d, const char *id,
		       struct disk_record *rec)
{
	char owner[NAME_MAX_LEN + 1];
	int r;

	/* A bound target is refused to any other agent before anything about it changes. */
	if (d->t->agent && strcmp(d->t->agent, s->agent) != 0)
		return refuse(s, -EPERM, "disk %s: target is bound to agent %s on this receiver "
			      "(--target %s=PATH,agent=%s), not %s", id, d->t->agent, id,
			      d->t->agent, s->agent);
	/* A target holds one machine's disk: another agent may not overwrite it. */
	r = state_owner(s, id, owner, sizeof(owner));
	if (r < 0)
		return refuse(s, r, "disk %s: cannot read its state record: %s", id, strerror(-r));
	if (owner[0] && strcmp(owner, s->agent) != 0)
		return refuse(s, -EPERM, "disk %s: target belongs to agent %s, not %s", id, owner,
			      s->agent);
	r = load_record(s, id, rec);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot read its state record: %s", id, strerror(-r));
	if (rec->cut_over)
		return refuse(s, -EPERM, "disk %s was cut over; its target is no longer written",
			      id);
	return 0;
}

/* Reserves the disk's fingerprints and bitmap from the receiver's budget. 0 or refuse()'s
 * -errno. */
static int reserve_fps(struct rsession *s, struct rdisk *d, const char *id)
{
	char b1[32], b2[32];
	uint64_t need, avail;
	int r;

	/* 16 bytes a chunk and two bits (received, and held by a first copy's checkpoint):
	 * what the agent's size and chunk size cost here. */
	need = d->nchunks > SIZE_MAX / FP_LEN / 2 ? UINT64_MAX :
	       fps_map_len(d->nchunks) + 2 * DIV_ROUND_UP(d->nchunks, 8);
	r = fp_reserve(s->srv, need, &avail);
	if (r < 0)
		return refuse(s, -ENOMEM, "disk %s: %" PRIu64 " chunks of %u bytes need %s of "
			      "fingerprint memory, more than the %s this receiver has left "
			      "(--fp-memory); a larger chunk size needs less", id, d->nchunks, s->cs,
			      fmt_bytes(need, b1, sizeof(b1)), fmt_bytes(avail, b2, sizeof(b2)));
	d->reserved = need;
	return 0;
}

/* A target that another disk's verified record vouches for is not overwritten by a new
 * copy. 0 or refuse()'s -errno. */
static int check_vouched(struct rsession *s, struct rdisk *d, const char *id)
{
	char other[NAME_MAX_LEN + 1];
	int r;

	r = vouched_elsewhere(s, id, d->t->path, other, sizeof(other));
	if (r < 0)
		return refuse(s, r, "disk %s: cannot read the state records: %s", id,
			      strerror(-r));
	if (r > 0) {
		log_error("agent %s: disk %s: target %s holds disk %s, verified in its state "
			  "record (remove %s/disks/%s.state if that disk is gone)", s->agent,
			  id, d->t->path, other, s->srv->state_dir, other);
		return refuse(s, -EEXIST, "disk %s: its target holds disk %s, verified in the "
			      "receiver's state records; a copy would overwrite it", id, other);
	}
	return 0;
}

/* reconcile=yes: the target, with no record of its own, is declared an earlier copy of
 * the disk. Makes rec an unverified epoch-0 record, so that the target is fingerprinted
 * to reconcile with. 0 or refuse()'s -errno. */
static int declare_copy(struct rsession *s, struct rdisk *d, const struct proto_disk *m,
			struct disk_record *rec)
{
	char b1[32], b2[32];
	uint64_t have = 0;
	int r;

	/* An earlier copy of this disk (reconcile=yes, e.g. the original disk of a
	 * failback) is read and fingerprinted like an interrupted first copy, so the
	 * agent sends only what differs; wr_open would grow or cut it, so a size that
	 * is not the disk's is refused before anything is opened for writing. */
	r = target_size(d->t->path, &have);
	if (r < 0)
		return refuse(s, r, "disk %s: the target to reconcile with (reconcile=yes) "
			      "cannot be read: %s", m->id, strerror(-r));
	if (have != m->size)
		return refuse(s, -EINVAL, "disk %s: the target to reconcile with holds %s, "
			      "the disk is %s: not an earlier copy of it (reconcile=yes needs "
			      "the same size)", m->id, fmt_bytes(have, b1, sizeof(b1)),
			      fmt_bytes(m->size, b2, sizeof(b2)));
	rec->present = true; /* an epoch-0 record that is not verified: reconcile */
	rec->verified = false;
	rec->epoch = 0;
	log_info("agent %s: disk %s: target %s is declared an earlier copy (reconcile=yes): "
		 "fingerprinting it", s->agent, m->id, d->t->path);
	return 0;
}

/* A first copy cut short: its checkpoint (session-ckpt.c), when there is one of this
 * disk's shape, says which chunks the target holds; nothing of the target is read. 1 when
 * loaded (*ret_gen: the generation they were read under), 0 when there is none to trust. */
static int load_ckpt(struct rsession *s, struct rdisk *d, const char *id, uint64_t *ret_gen)
{
	struct rec_ckpt ck;
	int r;

	r = rec_ckpt_load(s->srv->state_dir, id, d->size, s->cs, d->fps, d->held, &ck);
	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		log_warn_errno(r, "agent %s: disk %s: the first copy's checkpoint cannot be "
			       "trusted; reading the target to reconcile instead", s->agent, id);
		return 0;
	}
	d->held_count = ck.held;
	*ret_gen = ck.track_gen;
	return 1;
}

/* A disk the target already holds: its fingerprints recovered (a first copy's checkpoint,
 * else see recover_fps) and the epoch it resumes at. *ret_some: only the held chunks are
 * vouched for, read under generation *ret_gen. 0 or refuse()'s -errno. */
static int resume_disk(struct rsession *s, struct rdisk *d, const char *id,
		       const struct disk_record *rec, bool *ret_reconciled, bool *ret_some,
		       uint64_t *ret_gen)
{
	int r;

	*ret_reconciled = *ret_some = false;
	*ret_gen = 0;
	if (!rec->verified && rec->epoch == 0 && load_ckpt(s, d, id, ret_gen) > 0) {
		*ret_some = true;
		d->epoch = 0;
		d->known = true;
		d->fps_saved = false;
		log_info("agent %s: disk %s resumes its first copy from the checkpoint: %" PRIu64
			 " of %" PRIu64 " chunks held, nothing of the target read", s->agent, id,
			 d->held_count, d->nchunks);
		return 0;
	}
	r = recover_fps(s, d, rec, ret_reconciled);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot fingerprint the target: %s", id,
			      strerror(-r));
	/* An interrupted epoch is retried under its own number. */
	d->epoch = rec->verified ? rec->epoch + 1 : rec->epoch;
	d->known = true;
	d->fps_saved = !*ret_reconciled;
	log_info("agent %s: disk %s resumes after epoch %" PRIu64 "%s", s->agent, id,
		 rec->epoch, *ret_reconciled ? " (interrupted: target fingerprinted to reconcile)" : "");
	if (*ret_reconciled && d->epoch == 0) {
		/* The whole target was read: once durable, all of it is held, and a checkpoint
		 * says so, so the next interruption reads nothing. Nothing says under which
		 * generation the source was read: none. */
		memset(d->held, 0xff, d->nchunks / 8);
		for (uint64_t i = d->nchunks / 8 * 8; i < d->nchunks; i++)
			d->held[i / 8] |= (uint8_t)(1u << (i % 8));
		d->held_count = d->nchunks;
	}
	return 0;
}

/* Writes the disk's record as a copy in progress, before anything is written to its
 * target. 0 or refuse()'s -errno. */
static int mark_new(struct rsession *s, struct rdisk *d, const char *id)
{
	int r;

	r = save_disk_state(s, d, d->epoch, NULL);
	if (r < 0) {
		log_error("agent %s: disk %s: cannot record state in %s/disks: %s", s->agent,
			  id, s->srv->state_dir, strerror(-r));
		return refuse(s, r, "disk %s: cannot record its state: %s", id,
			      strerror(-r));
	}
	d->marked = true;
	return 0;
}

/* DISK's checks that need nothing but the frame and the session, then the target's
 * claim: the new disk is the session's (*ret_d, owned by its cleanup) from the claim on. */
static int claim_disk(struct rsession *s, const struct proto_disk *m, struct rdisk **ret_d)
{
	struct rdisk *d;
	bool busy;

	if (s->ndisks >= RCV_MAX_DISKS)
		return refuse(s, -EPROTO, "more than %d disks in one session", RCV_MAX_DISKS);
	if (m->disk_no != s->ndisks)
		return refuse(s, -EPROTO, "DISK numbered %u where %u was expected", m->disk_no,
			      s->ndisks);
	for (unsigned i = 0; i < s->ndisks; i++)
		if (s->disks[i].t && strcmp(s->disks[i].t->id, m->id) == 0)
			return refuse(s, -EPROTO, "disk %s registered twice", m->id);
	d = &s->disks[s->ndisks];
	d->size = m->size;
	d->nchunks = DIV_ROUND_UP(m->size, s->cs);
	/* The target is checked before any memory is set aside for the disk. */
	d->t = claim_target(s->srv, m->id, &busy);
	s->ndisks++; /* from here on the cleanup owns d */
	if (!d->t) {
		if (busy)
			return refuse(s, -EBUSY, "target for disk %s is in use by another session",
				      m->id);
		return refuse(s, -ENOENT, "unknown disk id %s: no --target %s=PATH on this receiver",
			      m->id, m->id);
	}
	*ret_d = d;
	return 0;
}

/* What the record says of the disk's size: a shrink is refused, a checkpoint without a
 * record goes, and *ret_grown says a verified copy of a disk that grew while no agent ran
 * (resumed at its recorded size, then grown). 0 or refuse()'s -errno. */
static int check_size(struct rsession *s, struct rdisk *d, const struct proto_disk *m,
		      const struct disk_record *rec, bool *ret_grown)
{
	int r;

	/* A checkpoint without a record (the record removed by hand) vouches for nothing. */
	if (!rec->present && (r = rec_ckpt_remove(s->srv->state_dir, m->id)) < 0)
		return refuse(s, r, "disk %s: cannot remove a stale checkpoint: %s", m->id,
			      strerror(-r));
	/* A source smaller than a copy the record vouches for shrank (while no agent ran): a
	 * new copy would cut what the target holds. Refused, as a live DISK_GROW's rule. */
	if (rec->present && (rec->verified || rec->epoch > 0) && m->size < rec->size)
		return refuse(s, -EINVAL, "disk %s: the source is %" PRIu64 " bytes, smaller than "
			      "the %" PRIu64 " the receiver holds: shrinking is refused; the target "
			      "is left as it was", m->id, m->size, rec->size);
	/* A verified copy of a disk that grew while no agent ran is resumed at the size its
	 * record vouches for, then grown (disk_grow) or held as a live DISK_GROW would be. */
	*ret_grown = rec->present && rec->verified && rec->chunk_size == s->cs &&
		     rec->size < m->size && !d->t->reconcile;
	if (*ret_grown) {
		d->size = rec->size;
		d->nchunks = DIV_ROUND_UP(rec->size, s->cs);
	}
	return 0;
}

/* Opens the target and sets aside the disk's fingerprints and bitmaps. 0 or refuse()'s. */
static int open_disk(struct rsession *s, struct rdisk *d, const char *id)
{
	char why[256];
	int r;

	r = wr_open(d->t->path, d->size, d->t->max_size, &d->w, why, sizeof(why));
	if (r < 0) {
		/* The path is for the receiver's log only: the agent learns the disk and why. */
		log_error("agent %s: disk %s: target %s: %s", s->agent, id, d->t->path, why);
		return refuse(s, r, "disk %s: %s", id, why);
	}
	d->fps = fps_alloc(d->nchunks);
	d->have = calloc(DIV_ROUND_UP(d->nchunks, 8), 1);
	d->held = calloc(DIV_ROUND_UP(d->nchunks, 8), 1);
	if (!d->fps || !d->have || !d->held)
		return refuse(s, -ENOMEM, "out of memory for disk %s", id);
	return 0;
}

/* A first copy is checkpointed from its start: its chunks are held under the agent's
 * tracking generation, unless some were read under another (then under none). */
static int start_ckpt(struct rsession *s, struct rdisk *d, const struct proto_disk *m,
		      bool some, uint64_t offer_gen)
{
	int r;

	d->ckpt = true;
	d->ckpt_gen = d->held_count == 0 || (some && offer_gen == m->track_gen) ? m->track_gen : 0;
	d->ckpt_ns = now_ns();
	/* Saved at once when it differs from the file: a new copy's empty one replaces any
	 * older, a reconciled target's says all of it is held. */
	if (some)
		return 0;
	r = ckpt_save(s, d);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot checkpoint the first copy: %s", m->id,
			      strerror(-r));
	return 0;
}

/* A file is resized only now: to the source's size exactly, so that nothing past the
 * disk's end outlives a new copy (a resumed one's record vouches only for its size); a
 * disk that grew while no agent ran grows after, or, when its target cannot hold the new
 * size, is registered at the size its record vouches for and held as a live growth would
 * be (ret_held: the operator's line; the agent asks for the growth with DISK_GROW). Then
 * DISK_OK, with the size the disk is registered at, and the FPS frames. */
static int answer_disk(struct rsession *s, struct rdisk *d, const struct proto_disk *m,
		       bool grown, bool known, bool some, uint64_t offer_gen, char *ret_held,
		       size_t held_len)
{
	struct proto_disk_ok ok;
	uint8_t out[64];
	char why[256];
	int n, r;

	ret_held[0] = '\0';
	r = wr_fit(d->w, why, sizeof(why));
	if (r == 0 && grown) {
		r = disk_grow(s, d, m->size, why, sizeof(why));
		/* Nothing changed: the verified copy stays as it was, the other disks go on. */
		if (r == -ENOSPC || r == -ENOMEM) {
			disk_hold_note(s, d, why, ret_held, held_len);
			r = 0;
		}
	}
	if (r < 0) {
		log_error("agent %s: disk %s: target %s: %s", s->agent, m->id, d->t->path, why);
		return refuse(s, r, "disk %s: %s", m->id, why);
	}
	ok = (struct proto_disk_ok){ .disk_no = m->disk_no, .target_size = wr_size(d->w),
				     .size = d->size };
	n = proto_encode_disk_ok(out, sizeof(out), &ok);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	if (r == 0)
		r = send_fps(s, m->disk_no, d, known, some, offer_gen);
	return r;
}

int on_disk(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_disk m;
	struct rdisk *d = NULL;
	struct disk_record rec;
	bool known, grown = false, reconciled = false, declared = false, some = false;
	char held[PROTO_MSG_MAX + 1];
	uint64_t offer_gen = 0;
	int r;

	r = proto_decode_disk(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed DISK frame");
	r = claim_disk(s, &m, &d);
	if (r < 0)
		return r;
	r = check_owner(s, d, m.id, &rec);
	if (r < 0)
		return r;
	r = check_size(s, d, &m, &rec, &grown);
	if (r < 0)
		return r;
	r = reserve_fps(s, d, m.id);
	if (r < 0)
		return r;
	/* A target that already holds this disk (same size and chunk size) is resumed: the
	 * agent learns its fingerprints and sends only what differs. */
	known = rec.present && rec.size == d->size && rec.chunk_size == s->cs;
	if (!known) {
		r = check_vouched(s, d, m.id);
		if (r < 0)
			return r;
	}
	if (!known && !rec.present && d->t->reconcile) {
		r = declare_copy(s, d, &m, &rec);
		if (r < 0)
			return r;
		known = true;
		declared = true;
	}
	r = open_disk(s, d, m.id);
	if (r < 0)
		return r;
	if (known) {
		r = resume_disk(s, d, m.id, &rec, &reconciled, &some, &offer_gen);
		if (r < 0)
			return r;
	}
	note_resume(d, &rec, known, reconciled, some);
	if (declared)
		note_event(d, "the target was declared an earlier copy of the disk (reconcile=yes) "
			   "and read to reconcile with it");
	/* A new target is claimed for this agent before anything is written to it. A
	 * verified one keeps its record until mark_epoch, before the first accepted write. */
	if (!known || !rec.verified) {
		r = mark_new(s, d, m.id);
		if (r < 0)
			return r;
	}
	if (d->epoch == 0) {
		r = start_ckpt(s, d, &m, some, offer_gen);
		if (r < 0)
			return r;
	}
	r = answer_disk(s, d, &m, grown, known, some, offer_gen, held, sizeof(held));
	if (r < 0)
		return r;
	d->rd = reg_disk_open(s->srv->reg, s->ra, m.disk_no, m.id, d->size, d->epoch,
			      known && rec.verified ? (int64_t)rec.epoch : -1, false);
	reg_disk_fault(s->srv->reg, d->rd, d->event);
	if (held[0])
		reg_disk_error(s->srv->reg, d->rd, held);
	log_info("agent %s: disk %s (%" PRIu64 " bytes) -> %s", s->agent, m.id, m.size, d->t->path);
	return 0;
}
