// SPDX-License-Identifier: GPL-2.0-only
/* One replication session on the receiver: validate every frame, verify every chunk's
 * fingerprint before it is written, ack an epoch only once it is durable. */
#include "receiver/session.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/enrol.h"
#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/record.h"
#include "receiver/registry.h"
#include "receiver/enrol.h"
#include "receiver/launch.h"
#include "receiver/listener.h"
#include "receiver/writer.h"

#define RCV_MAX_DISKS 256
#define HANDSHAKE_TIMEOUT_MS 15000
#define IDLE_TIMEOUT_MS (15 * 60 * 1000)
#define STATUS_RATE_MAX (UINT64_C(1) << 50)
/* How often a live session looks again at the revocation list: `agent revoke` closes a
 * session within this, however busy or idle it is. */
#define REVOKE_CHECK_MS 2000

struct rdisk {
	struct rcv_target *t;
	struct writer *w;
	uint64_t size;
	uint64_t nchunks;
	/* Verified fingerprint of every chunk received (see fps_alloc: 16 zero bytes stand
	 * for a zero chunk's); reserved from the receiver's budget with the bitmap. */
	struct fp *fps;
	uint8_t *have;    /* bitmap of chunks received in this epoch */
	uint64_t reserved; /* bytes of srv->fp_used this disk holds */
	uint64_t have_count;
	uint64_t epoch;   /* the epoch being received */
	bool marked;      /* the state record says "in progress" for this epoch */
	bool known;       /* fingerprints came from a previous session, not from this one */
	bool fps_saved;   /* the .fps file holds exactly d->fps */
	bool last_match;  /* the last epoch ended with equal roots */
	struct fp last_root;
	uint64_t patched; /* chunks of this epoch that came as PATCH frames */
	/* The last fault this disk's replication met and how it recovered, kept in the state
	 * record for ternctl status (one line; "" when none yet). */
	char event[REC_EVENT_MAX];
	bool fault_noted; /* this session set event (a fault it saw itself) */
	uint64_t epoch_at_req; /* d->epoch when the cutover was asked for */
	bool cut_over;    /* cut over: recorded, and no more writes */
	struct reg_disk *rd; /* its entry in the operator's registry (NULL: unobserved) */
};

struct rsession {
	struct rcv_server *srv;
	struct conn *c;
	struct lsn_conn *lc; /* its place in the listener's limits */
	struct codec *codec;
	char agent[NAME_MAX_LEN + 1];
	uint32_t cs;
	struct rdisk disks[RCV_MAX_DISKS];
	unsigned ndisks;
	uint8_t *buf;
	struct rcv_handle handle;
	bool registered;
	struct reg_agent *ra; /* this agent in the operator's registry (NULL: unobserved) */
	bool shared;          /* it presented the shared agent bundle */
	uint64_t revoke_checked_ns; /* when the revocation list was last consulted */
	char peer[64];
	struct rcv_cutover *cut; /* the cutover in progress (borrowed from the API thread that asked) */
	uint8_t cut_verify;
	uint64_t cut_gen; /* handle.req_gen when cut was adopted */
	uint64_t cut_t0;
	/* How the session ended, for the next session of its targets ("" for BYE). */
	char end_why[160];
	/* The refusal to send before closing, set by the first rule broken. */
	int err;
	char why[PROTO_MSG_MAX + 1];
};

static int refuse(struct rsession *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct rsession *s, int err, const char *fmt, ...)
{
	va_list ap;

	if (s->err)
		return s->err;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	s->err = err < 0 ? err : -EPROTO;
	snprintf(s->end_why, sizeof(s->end_why), "the receiver refused the agent (%s)", strerror(-s->err));
	log_error("agent %s: %s", s->agent[0] ? s->agent : "(unnamed)", s->why);
	return s->err;
}

static bool have_get(const struct rdisk *d, uint64_t i)
{
	return d->have[i / 8] & (1u << (i % 8));
}

static void have_set(struct rdisk *d, uint64_t i)
{
	d->have[i / 8] |= (uint8_t)(1u << (i % 8));
	d->have_count++;
}

/* Marks chunks [first, last) received, whole bytes at a time: a ZERO frame may cover
 * millions of chunks. check_range has made sure none of them came before. */
static void have_set_range(struct rdisk *d, uint64_t first, uint64_t last)
{
	uint64_t i = first;

	for (; i < last && i % 8; i++)
		have_set(d, i);
	if (last - i >= 8) {
		uint64_t bytes = (last - i) / 8;

		memset(&d->have[i / 8], 0xff, (size_t)bytes);
		d->have_count += bytes * 8;
		i += bytes * 8;
	}
	for (; i < last; i++)
		have_set(d, i);
}

/* Takes bytes from the receiver-wide fingerprint budget: the agent picks the disk's
 * size and chunk size, so without a bound one DISK frame could ask for any memory. */
static int fp_reserve(struct rcv_server *srv, uint64_t bytes, uint64_t *ret_free)
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

static void fp_release(struct rcv_server *srv, uint64_t bytes)
{
	pthread_mutex_lock(&srv->lock);
	srv->fp_used -= MIN(bytes, srv->fp_used);
	pthread_mutex_unlock(&srv->lock);
}

static size_t fps_map_len(uint64_t nchunks)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	return (size_t)DIV_ROUND_UP(nchunks * FP_LEN, page) * page;
}

/* Fingerprints live in an anonymous mapping whose untouched pages cost no memory and
 * read as zeros, and 16 zero bytes stand for the fingerprint of a zero chunk (of that
 * chunk's length): so a fresh array describes an all-zero disk, and a ZERO frame over
 * any range drops its pages instead of writing to them. (A real XXH3-128 of all zeros
 * would read as a zero chunk's: the roots then differ and nothing is verified, so that
 * can only fail closed.) The caller has reserved the bytes. NULL when out of memory. */
static struct fp *fps_alloc(uint64_t nchunks)
{
	void *p;

	if (nchunks == 0 || nchunks > SIZE_MAX / FP_LEN / 2)
		return NULL;
	p = mmap(NULL, fps_map_len(nchunks), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static struct fp *fps_free(struct fp *fps, uint64_t nchunks)
{
	if (fps)
		munmap(fps, fps_map_len(nchunks));
	return NULL;
}

/* Records chunks [first, last) as zero chunks without committing memory for them. */
static void fps_zero(struct fp *fps, uint64_t first, uint64_t last)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = (uintptr_t)&fps[first], hi = (uintptr_t)&fps[last];
	uintptr_t plo = (lo + page - 1) / page * page, phi = hi / page * page;

	if (plo >= phi) {
		memset(&fps[first], 0, (size_t)(hi - lo));
		return;
	}
	memset((void *)lo, 0, plo - lo);
	memset((void *)phi, 0, hi - phi);
	/* Dropped private anonymous pages read back as zeros. Should the kernel refuse,
	 * writing the zeros is still correct, only not free. */
	if (madvise((void *)plo, phi - plo, MADV_DONTNEED) < 0)
		memset((void *)plo, 0, phi - plo);
}

/* Chunk i's fingerprint as the agent computes it, from an array of fps_alloc's. */
static void fp_get(const struct rsession *s, const struct rdisk *d, const struct fp *fps,
		   uint64_t i, struct fp *ret)
{
	static const struct fp zero;

	if (memcmp(&fps[i], &zero, sizeof(zero)) != 0) {
		*ret = fps[i];
		return;
	}
	fp_zero((size_t)MIN((uint64_t)s->cs, d->size - i * s->cs), ret);
}

/* The Merkle root over fps, leaf by leaf: no second array as large as the first. */
static void disk_root(const struct rsession *s, const struct rdisk *d, const struct fp *fps,
		      struct fp *ret_root)
{
	struct fp_merkle m;
	struct fp f;

	fp_merkle_init(&m);
	for (uint64_t i = 0; i < d->nchunks; i++) {
		fp_get(s, d, fps, i, &f);
		fp_merkle_add(&m, &f);
	}
	fp_merkle_final(&m, ret_root);
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

static void release_target(struct rcv_server *srv, struct rcv_target *t)
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
static int recover_fps(struct rsession *s, struct rdisk *d, const struct disk_record *rec,
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

/* Sends the FPS frames that follow DISK_OK: the known fingerprints, or one empty frame. */
static int send_fps(struct rsession *s, uint16_t disk_no, const struct rdisk *d, bool known)
{
	uint8_t *out = malloc(PROTO_HDR_LEN + PROTO_FPS_FIXED + (size_t)PROTO_FPS_MAX * FP_LEN);
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
		for (uint32_t i = 0; i < m.count; i++)
			fp_get(s, d, d->fps, first + i, &part[i]);
		m.fps = part;
		n = proto_encode_fps(out, PROTO_HDR_LEN + PROTO_FPS_FIXED +
				     (size_t)PROTO_FPS_MAX * FP_LEN, &m);
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
static int save_disk_state(struct rsession *s, const struct rdisk *d, uint64_t epoch,
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

static void note_event(struct rdisk *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets the disk's last event: a UTC time stamp, then the text. */
static void note_event(struct rdisk *d, const char *fmt, ...)
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
static void note_resume(struct rdisk *d, const struct disk_record *rec, bool known, bool reconciled)
{
	const char *how = reconciled ? "; the interrupted epoch was reconciled by reading the target" :
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
static int save_fps(struct rsession *s, const struct rdisk *d)
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

static int on_disk(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_disk m;
	struct proto_disk_ok ok;
	struct rdisk *d;
	uint8_t out[64];
	char why[256], owner[NAME_MAX_LEN + 1], other[NAME_MAX_LEN + 1], b1[32], b2[32];
	struct disk_record rec;
	bool busy, known, reconciled = false, declared = false;
	uint64_t need, avail;
	int n, r;

	r = proto_decode_disk(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed DISK frame");
	if (s->ndisks >= RCV_MAX_DISKS)
		return refuse(s, -EPROTO, "more than %d disks in one session", RCV_MAX_DISKS);
	if (m.disk_no != s->ndisks)
		return refuse(s, -EPROTO, "DISK numbered %u where %u was expected", m.disk_no,
			      s->ndisks);
	for (unsigned i = 0; i < s->ndisks; i++)
		if (s->disks[i].t && strcmp(s->disks[i].t->id, m.id) == 0)
			return refuse(s, -EPROTO, "disk %s registered twice", m.id);
	d = &s->disks[s->ndisks];
	d->size = m.size;
	d->nchunks = DIV_ROUND_UP(m.size, s->cs);
	/* The target is checked before any memory is set aside for the disk. */
	d->t = claim_target(s->srv, m.id, &busy);
	s->ndisks++; /* from here on the cleanup owns d */
	if (!d->t) {
		if (busy)
			return refuse(s, -EBUSY, "target for disk %s is in use by another session", m.id);
		return refuse(s, -ENOENT, "unknown disk id %s: no --target %s=PATH on this receiver",
			      m.id, m.id);
	}
	/* A bound target is refused to any other agent before anything about it changes. */
	if (d->t->agent && strcmp(d->t->agent, s->agent) != 0)
		return refuse(s, -EPERM, "disk %s: target is bound to agent %s on this receiver "
			      "(--target %s=PATH,agent=%s), not %s", m.id, d->t->agent, m.id,
			      d->t->agent, s->agent);
	/* A target holds one machine's disk: another agent may not overwrite it. */
	r = state_owner(s, m.id, owner, sizeof(owner));
	if (r < 0)
		return refuse(s, r, "disk %s: cannot read its state record: %s", m.id, strerror(-r));
	if (owner[0] && strcmp(owner, s->agent) != 0)
		return refuse(s, -EPERM, "disk %s: target belongs to agent %s, not %s", m.id, owner,
			      s->agent);
	r = load_record(s, m.id, &rec);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot read its state record: %s", m.id, strerror(-r));
	if (rec.cut_over)
		return refuse(s, -EPERM, "disk %s was cut over; its target is no longer written",
			      m.id);
	/* 16 bytes a chunk and a bit: what the agent's size and chunk size cost here. */
	need = d->nchunks > SIZE_MAX / FP_LEN / 2 ? UINT64_MAX :
	       fps_map_len(d->nchunks) + DIV_ROUND_UP(d->nchunks, 8);
	r = fp_reserve(s->srv, need, &avail);
	if (r < 0)
		return refuse(s, -ENOMEM, "disk %s: %" PRIu64 " chunks of %u bytes need %s of "
			      "fingerprint memory, more than the %s this receiver has left "
			      "(--fp-memory); a larger chunk size needs less", m.id, d->nchunks, s->cs,
			      fmt_bytes(need, b1, sizeof(b1)), fmt_bytes(avail, b2, sizeof(b2)));
	d->reserved = need;
	/* A target that already holds this disk (same size and chunk size) is resumed: the
	 * agent learns its fingerprints and sends only what differs. */
	known = rec.present && rec.size == m.size && rec.chunk_size == s->cs;
	if (!known) {
		r = vouched_elsewhere(s, m.id, d->t->path, other, sizeof(other));
		if (r < 0)
			return refuse(s, r, "disk %s: cannot read the state records: %s", m.id,
				      strerror(-r));
		if (r > 0) {
			log_error("agent %s: disk %s: target %s holds disk %s, verified in its state "
				  "record (remove %s/disks/%s.state if that disk is gone)", s->agent,
				  m.id, d->t->path, other, s->srv->state_dir, other);
			return refuse(s, -EEXIST, "disk %s: its target holds disk %s, verified in the "
				      "receiver's state records; a copy would overwrite it", m.id, other);
		}
	}
	if (!known && !rec.present && d->t->reconcile) {
		uint64_t have = 0;

		/* An earlier copy of this disk (reconcile=yes, e.g. the original disk of a
		 * failback) is read and fingerprinted like an interrupted first copy, so the
		 * agent sends only what differs; wr_open would grow or cut it, so a size that
		 * is not the disk's is refused before anything is opened for writing. */
		r = target_size(d->t->path, &have);
		if (r < 0)
			return refuse(s, r, "disk %s: the target to reconcile with (reconcile=yes) "
				      "cannot be read: %s", m.id, strerror(-r));
		if (have != m.size)
			return refuse(s, -EINVAL, "disk %s: the target to reconcile with holds %s, "
				      "the disk is %s: not an earlier copy of it (reconcile=yes needs "
				      "the same size)", m.id, fmt_bytes(have, b1, sizeof(b1)),
				      fmt_bytes(m.size, b2, sizeof(b2)));
		known = true;
		rec.present = true; /* an epoch-0 record that is not verified: reconcile */
		rec.verified = false;
		rec.epoch = 0;
		declared = true;
		log_info("agent %s: disk %s: target %s is declared an earlier copy (reconcile=yes): "
			 "fingerprinting it", s->agent, m.id, d->t->path);
	}
	r = wr_open(d->t->path, m.size, d->t->max_size, &d->w, why, sizeof(why));
	if (r < 0) {
		/* The path is for the receiver's log only: the agent learns the disk and why. */
		log_error("agent %s: disk %s: target %s: %s", s->agent, m.id, d->t->path, why);
		return refuse(s, r, "disk %s: %s", m.id, why);
	}
	d->fps = fps_alloc(d->nchunks);
	d->have = calloc(DIV_ROUND_UP(d->nchunks, 8), 1);
	if (!d->fps || !d->have)
		return refuse(s, -ENOMEM, "out of memory for disk %s", m.id);
	if (known) {
		r = recover_fps(s, d, &rec, &reconciled);
		if (r < 0)
			return refuse(s, r, "disk %s: cannot fingerprint the target: %s", m.id,
				      strerror(-r));
		/* An interrupted epoch is retried under its own number. */
		d->epoch = rec.verified ? rec.epoch + 1 : rec.epoch;
		d->known = true;
		d->fps_saved = !reconciled;
		log_info("agent %s: disk %s resumes after epoch %" PRIu64 "%s", s->agent, m.id,
			 rec.epoch, reconciled ? " (interrupted: target fingerprinted to reconcile)" : "");
	}
	note_resume(d, &rec, known, reconciled);
	if (declared)
		note_event(d, "the target was declared an earlier copy of the disk (reconcile=yes) "
			   "and read to reconcile with it");
	/* A new target is claimed for this agent before anything is written to it. A
	 * verified one keeps its record until mark_epoch, before the first accepted write. */
	if (!known || !rec.verified) {
		r = save_disk_state(s, d, d->epoch, NULL);
		if (r < 0) {
			log_error("agent %s: disk %s: cannot record state in %s/disks: %s", s->agent,
				  m.id, s->srv->state_dir, strerror(-r));
			return refuse(s, r, "disk %s: cannot record its state: %s", m.id,
				      strerror(-r));
		}
		d->marked = true;
	}
	/* Only now is a file resized: to the source's size exactly, so that nothing past the
	 * disk's end outlives a new copy (a resumed one's record vouches only for its size). */
	r = wr_fit(d->w, why, sizeof(why));
	if (r < 0) {
		log_error("agent %s: disk %s: target %s: %s", s->agent, m.id, d->t->path, why);
		return refuse(s, r, "disk %s: %s", m.id, why);
	}
	ok = (struct proto_disk_ok){ .disk_no = m.disk_no, .target_size = wr_size(d->w) };
	n = proto_encode_disk_ok(out, sizeof(out), &ok);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	if (r == 0)
		r = send_fps(s, m.disk_no, d, known);
	if (r < 0)
		return r;
	d->rd = reg_disk_open(s->srv->reg, s->ra, m.disk_no, m.id, m.size, d->epoch,
			      known && rec.verified ? (int64_t)rec.epoch : -1, false);
	reg_disk_fault(s->srv->reg, d->rd, d->event);
	log_info("agent %s: disk %s (%" PRIu64 " bytes) -> %s", s->agent, m.id, m.size, d->t->path);
	return 0;
}

static struct rdisk *disk_of(struct rsession *s, uint16_t disk_no)
{
	if (disk_no >= s->ndisks || !s->disks[disk_no].w)
		return NULL;
	return &s->disks[disk_no];
}

/* Checks that [off, off+len) lies inside the disk, is made of whole chunks (the disk's
 * last may be short), and that none of them arrived before in this epoch. */
static int check_range(struct rsession *s, struct rdisk *d, uint64_t off, uint64_t len)
{
	uint64_t first = off / s->cs, last;

	if (d->cut_over)
		return refuse(s, -EPERM, "disk %s was cut over; its target is no longer written",
			      d->t->id);

	if (off >= d->size || len > d->size - off)
		return refuse(s, -ERANGE, "disk %s: write at %" PRIu64 "+%" PRIu64
			      " past the end (%" PRIu64 " bytes)", d->t->id, off, len, d->size);
	if (len % s->cs != 0 && off + len != d->size)
		return refuse(s, -EPROTO, "disk %s: partial chunk at %" PRIu64 " is not the last",
			      d->t->id, off);
	last = DIV_ROUND_UP(off + len, s->cs);
	for (uint64_t i = first; i < last; i++)
		if (have_get(d, i))
			return refuse(s, -EPROTO, "disk %s: chunk %" PRIu64 " sent twice in one epoch",
				      d->t->id, i);
	return 0;
}

/* Called once a frame is accepted, just before its first write: from here until the
 * epoch ends the target holds a mix of the last epoch and this one, so the record stops
 * claiming it verified. A refused frame never gets here and changes nothing. */
static int mark_epoch(struct rsession *s, struct rdisk *d)
{
	int r;

	if (d->marked)
		return 0;
	r = save_disk_state(s, d, d->epoch, NULL);
	if (r < 0)
		return refuse(s, r, "disk %s: cannot record state: %s", d->t->id, strerror(-r));
	d->marked = true;
	return 0;
}

/* The writer failed: a patch that did not fit (recorded as the disk's last fault, and
 * refused with ESTALE so the agent reconciles) or an I/O error. */
static int wr_failed(struct rsession *s, struct rdisk *d, int r)
{
	if (r != -ESTALE)
		return refuse(s, r, "disk %s: target write failed: %s", d->t->id, strerror(-r));
	note_event(d, "in epoch %" PRIu64 " %s (the target or the source changed where the "
		   "agent's tracker did not see it); the agent was told to reconcile by "
		   "fingerprints", d->epoch, wr_error_text(d->w));
	d->fault_noted = true;
	reg_disk_fault(s->srv->reg, d->rd, d->event);
	save_disk_state(s, d, d->epoch, NULL);
	return refuse(s, -ESTALE, "disk %s: %s; nothing of that chunk written, reconcile",
		      d->t->id, wr_error_text(d->w));
}

/* Puts a DATA or PATCH payload at dst as plain bytes: decompressed, or copied. */
static int unpack(struct rsession *s, uint8_t *dst, uint8_t encoding, uint32_t plain_len,
		  const uint8_t *payload, uint32_t payload_len)
{
	if (encoding == PROTO_ENC_ZSTD)
		return codec_decompress(s->codec, dst, plain_len, payload, payload_len);
	memcpy(dst, payload, plain_len);
	return 0;
}

static int on_data(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_data m;
	struct rdisk *d;
	uint64_t first;
	uint8_t *buf;
	int r;

	r = proto_decode_data(s->buf, h->len, s->cs, &m);
	if (r < 0)
		return refuse(s, r, "malformed DATA frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "DATA for unregistered disk number %u", m.disk_no);
	r = check_range(s, d, m.offset, m.plain_len);
	if (r < 0)
		return r;
	buf = wr_get_buf(d->w, &r);
	if (!buf)
		return wr_failed(s, d, r);
	r = unpack(s, buf, m.encoding, m.plain_len, m.payload, m.payload_len);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return refuse(s, r, "disk %s: corrupt compressed extent at %" PRIu64
			      "; refused, nothing written", d->t->id, m.offset);
	}
	first = m.offset / s->cs;
	/* End to end: the fingerprint was taken from the source read; a mismatch here means
	 * the data changed somewhere between, and none of this extent may reach the disk. */
	for (uint32_t i = 0; i < m.nchunks; i++) {
		uint32_t clen = (uint32_t)MIN((uint64_t)s->cs, (uint64_t)m.plain_len - (uint64_t)i * s->cs);
		struct fp got;

		fp_compute(buf + (size_t)i * s->cs, clen, &got);
		if (!fp_equal(&got, &m.fps[i])) {
			wr_put_buf(d->w, buf);
			return refuse(s, -EBADMSG, "disk %s: fingerprint mismatch in chunk %" PRIu64
				      " at offset %" PRIu64 "; refused, nothing written",
				      d->t->id, first + i, m.offset + (uint64_t)i * s->cs);
		}
	}
	r = mark_epoch(s, d);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return r;
	}
	r = wr_submit(d->w, buf, m.plain_len, m.offset);
	if (r < 0)
		return wr_failed(s, d, r);
	for (uint32_t i = 0; i < m.nchunks; i++) {
		d->fps[first + i] = m.fps[i];
		have_set(d, first + i);
	}
	reg_frame(s->srv->reg, d->rd, m.plain_len, m.plain_len, m.payload_len,
		  PROTO_HDR_LEN + (uint64_t)h->len);
	return 0;
}

/* The changed blocks of one chunk: laid over what the target holds, the chunk must match
 * the source's fingerprint before anything is written (the writer does it as the chunk's
 * read completes, so patches pipeline). A mismatch means the target is not what the
 * agent's tracker believes (changed behind tern's back, or a missed write): the refusal
 * (ESTALE, see wr_failed) tells the agent to reconcile by fingerprints instead. */
static int on_patch(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_patch m;
	struct rdisk *d;
	uint8_t *buf;
	int r;

	r = proto_decode_patch(s->buf, h->len, s->cs, &m);
	if (r < 0)
		return refuse(s, r, "malformed PATCH frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "PATCH for unregistered disk number %u", m.disk_no);
	/* A whole chunk: check_range refuses one that would pass the disk's end. */
	r = check_range(s, d, m.offset, s->cs);
	if (r < 0)
		return r;
	buf = wr_get_buf(d->w, &r);
	if (!buf)
		return wr_failed(s, d, r);
	/* The blocks wait behind the chunk's place in the buffer (the decoder allows patches
	 * only of chunks up to half a buffer). */
	r = unpack(s, buf + s->cs, m.encoding, m.plain_len, m.payload, m.payload_len);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return refuse(s, r, "disk %s: corrupt compressed patch at %" PRIu64
			      "; refused, nothing written", d->t->id, m.offset);
	}
	r = mark_epoch(s, d);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return r;
	}
	/* Earlier epochs are flushed and this chunk was not sent in this one, so the target
	 * holds the chunk as last acknowledged. */
	r = wr_patch(d->w, buf, s->cs, m.offset, m.mask, m.block_shift, &m.fp);
	if (r < 0)
		return wr_failed(s, d, r);
	d->fps[m.offset / s->cs] = m.fp;
	have_set(d, m.offset / s->cs);
	d->patched++;
	reg_frame(s->srv->reg, d->rd, s->cs, m.plain_len, m.payload_len,
		  PROTO_HDR_LEN + (uint64_t)h->len);
	return 0;
}

static int on_zero(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_zero m;
	struct rdisk *d;
	uint64_t first, last;
	int r;

	r = proto_decode_zero(s->buf, h->len, s->cs, &m);
	if (r < 0)
		return refuse(s, r, "malformed ZERO frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "ZERO for unregistered disk number %u", m.disk_no);
	r = check_range(s, d, m.offset, m.length);
	if (r == 0)
		r = mark_epoch(s, d);
	if (r < 0)
		return r;
	r = wr_zero(d->w, m.offset, m.length);
	if (r < 0)
		return refuse(s, r, "disk %s: zeroing %" PRIu64 "+%" PRIu64 " failed: %s", d->t->id,
			      m.offset, m.length, strerror(-r));
	first = m.offset / s->cs;
	last = DIV_ROUND_UP(m.offset + m.length, s->cs);
	/* No memory per chunk: a zero chunk's fingerprint is implied (see fps_alloc). */
	fps_zero(d->fps, first, last);
	have_set_range(d, first, last);
	reg_frame(s->srv->reg, d->rd, m.length, 0, 0, PROTO_HDR_LEN + (uint64_t)h->len);
	return 0;
}

/* Looks at the revocation list again (it is cached and re-read only when it changed):
 * a revoked agent's session ends at once, and nothing more of it is acknowledged. */
static int recheck_revoked(struct rsession *s)
{
	char why[256];
	int r;

	s->revoke_checked_ns = now_ns();
	r = enrol_check_revoked(s->srv->state_dir, s->c, s->agent, why, sizeof(why));
	if (r < 0)
		return refuse(s, r, "%s; session closed", why);
	return 0;
}

/* The agent could not read a disk's source: shown to the operator as the disk's error and
 * kept in its record as the last fault. An abandoned epoch's writes are made durable first
 * (its deferred zero ranges too, so none lands later over a chunk sent again), then every
 * chunk may come again: the agent retries the epoch under the same number. Not abandoned:
 * the epoch just acknowledged had unreadable ranges, zero-filled. */
static int on_disk_fault(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_disk_fault m;
	struct rdisk *d;
	int r;

	r = proto_decode_disk_fault(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed DISK_FAULT frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "DISK_FAULT for unregistered disk number %u", m.disk_no);
	if (m.abandoned ? m.epoch != d->epoch : m.epoch + 1 != d->epoch || !d->last_match)
		return refuse(s, -EPROTO, "disk %s: DISK_FAULT for epoch %" PRIu64 " where epoch %"
			      PRIu64 " is open", d->t->id, m.epoch, d->epoch);
	if (m.abandoned) {
		r = wr_flush(d->w);
		if (r < 0)
			return r == -ESTALE ? wr_failed(s, d, r) :
			       refuse(s, r, "disk %s: cannot make the target durable: %s", d->t->id,
				      strerror(-r));
		memset(d->have, 0, DIV_ROUND_UP(d->nchunks, 8));
		d->have_count = 0;
		d->patched = 0;
	}
	note_event(d, "in epoch %" PRIu64 " the agent could not read the source: %s%s", m.epoch,
		   m.msg, m.abandoned ? "; the epoch was abandoned" : "");
	d->fault_noted = true;
	log_warn("agent %s: disk %s: %s", s->agent, d->t->id, d->event);
	reg_disk_fault(s->srv->reg, d->rd, d->event);
	reg_disk_error(s->srv->reg, d->rd, m.msg);
	/* The record keeps what it claimed (in progress, or the epoch this session verified
	 * last); a record this session has not rewritten keeps its own event until it is. */
	r = 0;
	if (d->marked)
		r = save_disk_state(s, d, d->epoch, NULL);
	else if (d->last_match)
		r = save_disk_state(s, d, d->epoch - 1, &d->last_root);
	if (r < 0)
		log_warn_errno(r, "disk %s: cannot record the fault", d->t->id);
	return 0;
}

static int on_epoch_end(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_epoch_end m;
	struct proto_epoch_ack ack = { 0 };
	struct rdisk *d;
	uint8_t out[128];
	char h1[33], h2[33];
	uint64_t flush_t0;
	int n, r;

	r = proto_decode_epoch_end(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed EPOCH_END frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "EPOCH_END for unregistered disk number %u", m.disk_no);
	if (m.epoch != d->epoch)
		return refuse(s, -EPROTO, "disk %s: end of epoch %" PRIu64 " where epoch %" PRIu64
			      " is open", d->t->id, m.epoch, d->epoch);
	if (m.nchunks != d->nchunks)
		return refuse(s, -EPROTO, "disk %s: epoch covers %" PRIu64 " chunks, the disk has %"
			      PRIu64, d->t->id, m.nchunks, d->nchunks);
	/* Epoch 0 is the full copy: every chunk must have come. Later epochs carry only the
	 * chunks that changed; the root below still covers the whole disk. */
	if (m.epoch == 0 && !d->known && d->have_count != d->nchunks)
		return refuse(s, -EPROTO, "disk %s: epoch 0 incomplete: %" PRIu64 " of %" PRIu64
			      " chunks received", d->t->id, d->have_count, d->nchunks);
	/* An agent revoked while this epoch ran gets no acknowledgement of it. */
	r = recheck_revoked(s);
	if (r < 0)
		return r;
	/* Durable before acknowledged: every write completed, then fdatasync. */
	flush_t0 = now_ns();
	r = wr_flush(d->w);
	if (r < 0)
		return r == -ESTALE ? wr_failed(s, d, r) :
		       refuse(s, r, "disk %s: cannot make the target durable: %s", d->t->id,
			      strerror(-r));
	disk_root(s, d, d->fps, &ack.root);
	ack.disk_no = m.disk_no;
	ack.epoch = m.epoch;
	ack.match = fp_equal(&ack.root, &m.root);
	ack.bytes_written = wr_bytes_written(d->w);
	if (ack.match) {
		/* The fingerprints first, then the record that vouches for them; an epoch
		 * that changed nothing leaves the saved ones as they are (16 bytes a chunk:
		 * 256 MiB a TiB, not to be rewritten every idle interval). */
		if (!d->fps_saved || d->have_count > 0) {
			r = save_fps(s, d);
			if (r < 0) {
				log_error("agent %s: disk %s: cannot save fingerprints in %s/disks: %s",
					  s->agent, d->t->id, s->srv->state_dir, strerror(-r));
				return refuse(s, r, "disk %s: cannot save its fingerprints: %s",
					      d->t->id, strerror(-r));
			}
			d->fps_saved = true;
		}
		r = save_disk_state(s, d, d->epoch, &ack.root);
		if (r < 0) {
			log_error("agent %s: disk %s: cannot record state in %s/disks: %s", s->agent,
				  d->t->id, s->srv->state_dir, strerror(-r));
			return refuse(s, r, "disk %s: cannot record its state: %s", d->t->id,
				      strerror(-r));
		}
		log_info("agent %s: disk %s epoch %" PRIu64 " durable and verified (%" PRIu64
			 " chunks, %" PRIu64 " as patches), merkle root %s", s->agent, d->t->id,
			 m.epoch, d->have_count, d->patched, fp_hex(&ack.root, h1));
	} else {
		d->fps_saved = d->fps_saved && d->have_count == 0;
		log_error("agent %s: disk %s root mismatch: agent %s, target %s", s->agent, d->t->id,
			  fp_hex(&m.root, h1), fp_hex(&ack.root, h2));
	}
	d->last_match = ack.match;
	d->last_root = ack.root;
	reg_epoch_end(s->srv->reg, d->rd, m.epoch, ack.match, PROTO_HDR_LEN + (uint64_t)h->len,
		      now_ns() - flush_t0);
	if (!ack.match)
		reg_disk_error(s->srv->reg, d->rd, "root mismatch at the end of an epoch");
	/* The next epoch starts: every chunk may come once more. Its first write rewrites
	 * the record as in progress whatever this epoch's outcome: after a mismatch the
	 * record may still vouch for an earlier verified epoch (when nothing of this one was
	 * written), and a resume from it would trust fingerprints the target no longer has. */
	d->epoch++;
	d->marked = false;
	memset(d->have, 0, DIV_ROUND_UP(d->nchunks, 8));
	d->have_count = 0;
	d->patched = 0;
	n = proto_encode_epoch_ack(out, sizeof(out), &ack);
	return n < 0 ? n : conn_send(s->c, out, (size_t)n);
}

static int on_hello(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_hello m;
	struct proto_welcome w = { .max_payload = PROTO_MAX_PAYLOAD, .name = "tern-receiver" };
	uint8_t out[128];
	char why[256];
	const char *cn;
	int n, r;

	if (h->type != PROTO_HELLO)
		return refuse(s, -EPROTO, "expected HELLO, got %s", proto_type_name(h->type));
	r = proto_decode_hello(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed HELLO frame");
	/* An agent's own certificate binds its name: its targets, its revocation and the
	 * operator's commands all go by that name, so another credential may not claim it.
	 * The shared bundle is known by its certificate's hash, never by its name. */
	cn = conn_peer_cn(s->c);
	s->shared = enrol_shared_is(&s->srv->shared, s->c);
	if (s->shared) {
		bool enrolled = false;

		if (s->srv->no_shared)
			return refuse(s, -EACCES, "the shared agent bundle is switched off on this "
				      "receiver (serve --no-shared-bundle); enrol agent %s with "
				      "tern-agent join", m.name);
		if (enrol_name_reserved(m.name))
			return refuse(s, -EPERM, "agent name %s is reserved for the receiver's own "
				      "credentials", m.name);
		r = enrol_name_has_cert(s->srv->state_dir, m.name, &enrolled);
		if (r < 0)
			return refuse(s, -EIO, "the receiver cannot read its list of enrolled agents");
		if (enrolled)
			return refuse(s, -EPERM, "agent %s has its own certificate from enrolment; the "
				      "shared bundle may not claim its name", m.name);
	} else if (enrol_name_reserved(cn)) {
		return refuse(s, -EPERM, "a certificate issued to %s is not the receiver's shared "
			      "bundle; that name is reserved", cn);
	} else if (strcmp(cn, m.name) != 0) {
		return refuse(s, -EPERM, "agent name %s does not match its certificate (issued to "
			      "%s)", m.name, cn);
	}
	r = enrol_check_revoked(s->srv->state_dir, s->c, m.name, why, sizeof(why));
	if (r < 0)
		return refuse(s, r, "%s", why);
	s->revoke_checked_ns = now_ns();
	memcpy(s->agent, m.name, sizeof(s->agent));
	s->cs = m.chunk_size;
	n = proto_encode_welcome(out, sizeof(out), &w);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	return r;
}

/* The agent's report of where a disk stands: kept for the operator API. */
static int on_status(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_status m;
	struct rdisk *d;
	int r;

	r = proto_decode_status(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed STATUS frame");
	d = disk_of(s, m.disk_no);
	if (!d)
		return refuse(s, -EPROTO, "STATUS for unregistered disk number %u", m.disk_no);
	if (m.bytes_total > d->size)
		return refuse(s, -EPROTO, "disk %s: STATUS covers %" PRIu64 " bytes of a %" PRIu64
			      "-byte disk", d->t->id, m.bytes_total, d->size);
	/* Rates past a petabyte a second are no measurement; the forecast's arithmetic in
	 * doubles stays exact below 2^53. */
	if (m.churn_bps > STATUS_RATE_MAX || m.throughput_bps > STATUS_RATE_MAX ||
	    m.rate_limit_bps > STATUS_RATE_MAX)
		return refuse(s, -EPROTO, "disk %s: STATUS with an implausible rate", d->t->id);
	reg_status(s->srv->reg, d->rd, &m);
	return 0;
}

/* Passes the operator's wishes for this agent on: at the start of a session only what
 * differs from the defaults, after a change all of them. */
static int send_wishes(struct rsession *s, bool all)
{
	struct proto_control pause = { .op = PROTO_CTL_PAUSE }, rate = { .op = PROTO_CTL_RATE };
	uint8_t out[64];
	bool paused;
	int n, r = 0;

	reg_wishes(s->srv->reg, s->ra, &paused, &rate.rate_bps);
	if (!paused)
		pause.op = PROTO_CTL_RESUME;
	if (all || paused) {
		n = proto_encode_control(out, sizeof(out), &pause);
		r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	}
	if (r == 0 && (all || rate.rate_bps)) {
		n = proto_encode_control(out, sizeof(out), &rate);
		r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	}
	return r;
}

/* Receives the next frame. Returns 1 with a frame, 0 when the session is over (the
 * peer left, or broke a rule and s->err says which), or -errno when the link failed. */
static int next_frame(struct rsession *s, struct proto_hdr *h)
{
	int r = conn_recv(s->c, h, s->buf, PROTO_MAX_PAYLOAD);

	switch (r) {
	case 0:
		return 1;
	case -ECONNRESET:
		log_warn("agent %s: connection closed without BYE", s->agent[0] ? s->agent : "(unnamed)");
		snprintf(s->end_why, sizeof(s->end_why), "the connection ended without BYE (the "
			 "link failed or the agent stopped)");
		return 0;
	case -EPROTONOSUPPORT:
		refuse(s, r, "malformed frame header: unsupported protocol version (this receiver "
		       "speaks v%d)", PROTO_VERSION);
		return 0;
	case -EBADMSG:
	case -EMSGSIZE:
		refuse(s, r, "malformed frame header: %s", strerror(-r));
		return 0;
	default:
		log_warn_errno(r, "agent %s: connection lost", s->agent[0] ? s->agent : "(unnamed)");
		snprintf(s->end_why, sizeof(s->end_why), "the connection was lost (%s)", strerror(-r));
		return r;
	}
}

/* Hands a cutover's outcome back to the API thread that asked, if it still waits. */
/* Whether the cutover this session serves is still the one the API thread waits
 * for (not withdrawn at its timeout). Called with srv->lock held. */
static bool cut_is_current(const struct rsession *s)
{
	return s->cut && s->handle.req == s->cut && s->handle.req_gen == s->cut_gen;
}

/* Hands the outcome over if the request is still awaited; srv->lock held. */
static void finish_locked(struct rsession *s, int result, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void finish_locked(struct rsession *s, int result, const char *fmt, va_list ap)
{
	if (cut_is_current(s)) {
		vsnprintf(s->cut->proof, sizeof(s->cut->proof), fmt, ap);
		s->cut->result = result;
		s->cut->done = true;
		s->handle.req = NULL;
		pthread_cond_broadcast(&s->srv->cut_cv);
	}
	s->cut = NULL;
}

static void finish_cutover(struct rsession *s, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void finish_cutover(struct rsession *s, int result, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&s->srv->lock);
	va_start(ap, fmt);
	finish_locked(s, result, fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&s->srv->lock);
	reg_cutting_over(s->srv->reg, s->ra, false);
}

static int register_handle(struct rsession *s)
{
	s->handle.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->handle.efd < 0)
		return -errno;
	snprintf(s->handle.agent, sizeof(s->handle.agent), "%s", s->agent);
	pthread_mutex_lock(&s->srv->lock);
	s->handle.next = s->srv->handles;
	s->srv->handles = &s->handle;
	/* A cutover asked for while the agent was away waits for it on cut_cv. */
	pthread_cond_broadcast(&s->srv->cut_cv);
	pthread_mutex_unlock(&s->srv->lock);
	s->registered = true;
	return 0;
}

static void abort_locked(struct rsession *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void abort_locked(struct rsession *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	finish_locked(s, -ECONNABORTED, fmt, ap);
	va_end(ap);
}

static void unregister_handle(struct rsession *s)
{
	if (!s->registered)
		return;
	/* A request handed over at any moment up to the unlink is answered here, under the
	 * same lock: once unlinked, the asking thread could no longer withdraw it. */
	pthread_mutex_lock(&s->srv->lock);
	if (!s->cut && s->handle.req) {
		s->cut = s->handle.req;
		s->cut_gen = s->handle.req_gen;
	}
	if (s->cut)
		abort_locked(s, "the agent's session ended before the cutover completed%s%s",
			     s->err ? ": " : "", s->err ? s->why : "");
	if (s->handle.launch) {
		launch_abort(s->srv->launches, s->handle.launch, "the agent's session ended "
			     "before an epoch boundary; try again once it is back");
		s->handle.launch = NULL;
		__atomic_store_n(&s->handle.launch_pending, false, __ATOMIC_RELEASE);
	}
	for (struct rcv_handle **p = &s->srv->handles; *p; p = &(*p)->next) {
		if (*p == &s->handle) {
			*p = s->handle.next;
			break;
		}
	}
	pthread_mutex_unlock(&s->srv->lock);
	reg_cutting_over(s->srv->reg, s->ra, false);
	close(s->handle.efd);
	s->registered = false;
}

/* Whether every disk's target holds a verified epoch and nothing of the next: the
 * epoch boundary a test launch clones at. The next epoch's first write comes only after
 * its first frame is read (mark_epoch), and the last one was made durable (wr_flush)
 * before it was acknowledged. */
static bool between_epochs(const struct rsession *s)
{
	if (s->ndisks == 0 || s->cut)
		return false;
	for (unsigned i = 0; i < s->ndisks; i++) {
		const struct rdisk *d = &s->disks[i];

		if (!d->t || !d->last_match || d->marked || d->have_count > 0)
			return false;
	}
	return true;
}

/* Serves a test launch waiting for an epoch boundary, when the session is at one: the
 * targets are cloned here, in the session thread, so no write lands during the clone;
 * a reflink is instant, a copy holds replication for its length (said up front). */
static void serve_launch(struct rsession *s)
{
	struct launch_disk ld[RCV_MAX_DISKS];
	struct launch *l;

	if (!__atomic_load_n(&s->handle.launch_pending, __ATOMIC_ACQUIRE) || !between_epochs(s))
		return;
	pthread_mutex_lock(&s->srv->lock);
	l = s->handle.launch;
	s->handle.launch = NULL;
	__atomic_store_n(&s->handle.launch_pending, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->srv->lock);
	if (!l)
		return;
	for (unsigned i = 0; i < s->ndisks; i++) {
		ld[i].id = s->disks[i].t->id;
		ld[i].path = s->disks[i].t->path;
		ld[i].epoch = s->disks[i].epoch - 1;
		ld[i].root = s->disks[i].last_root;
	}
	log_info("agent %s: test launch at the epoch boundary after epoch %" PRIu64, s->agent,
		 s->disks[0].epoch - 1);
	launch_take(s->srv->launches, l, ld, s->ndisks);
}

/* Waits for the agent's next frame or a cutover request, whichever comes first. Returns
 * 1 when a frame can be read, 0 after starting a cutover, -errno on failure. */
static int wait_input(struct rsession *s)
{
	struct pollfd p[2] = { { .fd = conn_fd(s->c), .events = POLLIN },
			       { .fd = s->handle.efd, .events = POLLIN } };
	struct proto_cutover m = { .phase = PROTO_CUT_REQUEST };
	uint8_t out[64];
	uint64_t v;
	int n, r;

	/* Checked on every frame: a busy stream keeps the TLS buffer full, and a pause must
	 * not wait for a gap in it. */
	if (__atomic_exchange_n(&s->handle.ctl_pending, false, __ATOMIC_ACQ_REL)) {
		r = send_wishes(s, true);
		if (r < 0)
			return r;
	}
	serve_launch(s);
	for (uint64_t idle_t0 = now_ns();;) {
		uint64_t now = now_ns();

		if (__atomic_exchange_n(&s->handle.kick, false, __ATOMIC_ACQ_REL))
			return refuse(s, -ECONNRESET, "the operator disconnected agent %s (ternctl "
				      "disconnect); it may reconnect", s->agent);
		/* Also while a busy stream never lets the poll below wait. */
		if (now - s->revoke_checked_ns >= (uint64_t)REVOKE_CHECK_MS * 1000000u) {
			r = recheck_revoked(s);
			if (r < 0)
				return r;
		}
		if (conn_pending(s->c))
			return 1;
		if (now - idle_t0 >= (uint64_t)IDLE_TIMEOUT_MS * 1000000u)
			return -ETIMEDOUT;
		r = poll(p, 2, REVOKE_CHECK_MS);
		if (r < 0)
			return errno == EINTR ? 0 : -errno;
		if (r > 0)
			break;
	}
	if (!(p[1].revents & POLLIN))
		return 1;
	if (read(s->handle.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&s->srv->lock);
	if (!s->cut && s->handle.req) {
		s->cut = s->handle.req;
		s->cut_gen = s->handle.req_gen;
		s->cut_verify = s->cut->verify;
	}
	pthread_mutex_unlock(&s->srv->lock);
	if (!s->cut)
		return 0;
	reg_cutting_over(s->srv->reg, s->ra, true);
	/* The agent lifts a pause for its final epoch; the operator's wish goes with it, or
	 * a later session (after a withdrawn cutover) would be paused again. */
	{
		bool connected;

		reg_set_paused(s->srv->reg, s->agent, false, &connected);
	}
	s->cut_t0 = now_ns();
	/* The final epoch must start after the request: an epoch already under way (some of
	 * its chunks arrived) does not count, as the source was not yet quiesced for it. */
	for (unsigned i = 0; i < s->ndisks; i++)
		s->disks[i].epoch_at_req = s->disks[i].epoch + (s->disks[i].have_count > 0 ? 1 : 0);
	m.verify = s->cut_verify;
	n = proto_encode_cutover(out, sizeof(out), &m);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	if (r < 0)
		return r;
	log_info("agent %s: cutover requested (verify %s)", s->agent,
		 s->cut_verify == PROTO_VERIFY_FULL ? "full" : "tracked");
	return 0;
}

/* The agent quiesced its source, sent a final epoch of every disk and thawed: check that
 * every disk's final epoch matched, re-read the targets for --verify full, record the
 * cutover, and answer with the proof. */
static int on_cutover(struct rsession *s, const struct proto_hdr *h)
{
	struct proto_cutover m, done = { .phase = PROTO_CUT_DONE };
	char proof[4096], hex[33];
	size_t len = 0;
	uint8_t out[64];
	bool withdrawn;
	int n, r;

	r = proto_decode_cutover(s->buf, h->len, &m);
	if (r < 0)
		return refuse(s, r, "malformed CUTOVER frame");
	if (!s->cut || m.phase != PROTO_CUT_FINAL)
		return refuse(s, -EPROTO, "CUTOVER frame with no cutover asked for");
	pthread_mutex_lock(&s->srv->lock);
	withdrawn = !cut_is_current(s);
	pthread_mutex_unlock(&s->srv->lock);
	if (withdrawn) {
		/* Nobody waits for this proof: recording the cutover now would contradict the
		 * failure ternctl reported. The agent reconnects and replication goes on. */
		s->cut = NULL;
		return refuse(s, -ECANCELED, "the cutover request was withdrawn (its timeout "
			      "passed); nothing recorded, replication goes on");
	}
	done.verify = s->cut_verify;
	if (s->ndisks == 0)
		return refuse(s, -EPROTO, "cutover with no disk registered");
	for (unsigned i = 0; i < s->ndisks; i++) {
		struct rdisk *d = &s->disks[i];
		struct fp root = d->last_root;

		/* The final epoch must be verified, begun after the request, and the last one:
		 * chunks of a newer, unfinished epoch would be on the target unvouched for. */
		if (d->epoch <= d->epoch_at_req || !d->last_match || d->have_count > 0)
			return refuse(s, -EPROTO, "disk %s: no verified final epoch after the cutover "
				      "request", d->t->id);
		if (s->cut_verify == PROTO_VERIFY_FULL) {
			struct disk_record full = { .present = true };
			bool reread;
			struct fp *saved = d->fps;
			uint64_t need = fps_map_len(d->nchunks), avail;

			/* Read every chunk of the target back; the fingerprints kept so far are
			 * set aside, so the root below describes what is on the disk now. The
			 * second array counts against the budget while it lives. */
			if (fp_reserve(s->srv, need, &avail) < 0)
				return refuse(s, -ENOMEM, "disk %s: no fingerprint memory left for "
					      "--verify full (--fp-memory)", d->t->id);
			d->fps = fps_alloc(d->nchunks);
			if (!d->fps) {
				d->fps = saved;
				fp_release(s->srv, need);
				return refuse(s, -ENOMEM, "out of memory");
			}
			r = recover_fps(s, d, &full, &reread);
			if (r == 0)
				disk_root(s, d, d->fps, &root);
			fps_free(d->fps, d->nchunks);
			fp_release(s->srv, need);
			d->fps = saved;
			if (r < 0)
				return refuse(s, r, "disk %s: cannot re-read the target: %s", d->t->id,
					      strerror(-r));
			if (!fp_equal(&root, &d->last_root))
				return refuse(s, -EIO, "disk %s: VERIFY FULL FAILED: the target reads back "
					      "as root %s", d->t->id, fp_hex(&root, hex));
		}
		d->cut_over = true;
		reg_cut_over(s->srv->reg, d->rd);
		pthread_mutex_lock(&s->srv->lock);
		if (cut_is_current(s) && s->cut->ndisks < sizeof(s->cut->disks) / sizeof(s->cut->disks[0])) {
			struct rcv_cut_disk *cd = &s->cut->disks[s->cut->ndisks++];

			snprintf(cd->id, sizeof(cd->id), "%s", d->t->id);
			snprintf(cd->path, sizeof(cd->path), "%s", d->t->path);
			cd->root = d->last_root;
			cd->size = d->size;
			cd->chunk_size = s->cs;
		}
		pthread_mutex_unlock(&s->srv->lock);
		/* The record names the final epoch: the last one acknowledged. */
		r = save_disk_state(s, d, d->epoch - 1, &d->last_root);
		if (r < 0)
			return refuse(s, r, "disk %s: cannot record the cutover: %s", d->t->id,
				      strerror(-r));
		len += (size_t)snprintf(proof + len, sizeof(proof) - len,
					"disk %s: %" PRIu64 " bytes, %" PRIu64 " chunks, merkle root %s, "
					"final epoch %" PRIu64 ", verify %s: match\n", d->t->id, d->size,
					d->nchunks, fp_hex(&d->last_root, hex), d->epoch - 1,
					s->cut_verify == PROTO_VERIFY_FULL ? "full" : "tracked");
		if (len >= sizeof(proof))
			len = sizeof(proof) - 1;
	}
	snprintf(proof + len, sizeof(proof) - len,
		 "agent %s: source frozen %.3f s; %.3f s from the request to ready\n", s->agent,
		 (double)m.frozen_ns / 1e9, (double)(now_ns() - s->cut_t0) / 1e9);
	log_info("agent %s: cutover complete", s->agent);
	n = proto_encode_cutover(out, sizeof(out), &done);
	r = n < 0 ? n : conn_send(s->c, out, (size_t)n);
	finish_cutover(s, 0, "%s", proof);
	return r;
}

static void session_loop(struct rsession *s)
{
	struct proto_hdr h;
	int r;

	if (next_frame(s, &h) <= 0 || on_hello(s, &h) < 0)
		return;
	/* Until HELLO is in, the listener's deadline holds the connection; a session that
	 * would pass the limit is told so (the agent tries again later). */
	r = lsn_established(s->lc, 0);
	if (r == -EBUSY) {
		refuse(s, r, "the receiver serves its maximum number of sessions; try again later");
		return;
	}
	if (r < 0) {
		snprintf(s->end_why, sizeof(s->end_why), "the connection was cut at the handshake "
			 "deadline");
		return;
	}
	log_info("agent %s connected (certificate CN %s), chunk size %u", s->agent,
		 conn_peer_cn(s->c), s->cs);
	conn_set_recv_timeout(s->c, IDLE_TIMEOUT_MS);
	r = register_handle(s);
	if (r < 0) {
		refuse(s, r, "cannot set up the session: %s", strerror(-r));
		return;
	}
	s->ra = reg_connect(s->srv->reg, s->agent, s->peer);
	reg_set_shared(s->srv->reg, s->ra, s->shared);
	/* The agent starts each connection from no pause and no limit: only what differs
	 * needs saying. */
	if (send_wishes(s, false) < 0) {
		snprintf(s->end_why, sizeof(s->end_why), "the connection was lost");
		return;
	}
	for (;;) {
		r = wait_input(s);
		if (r == 0)
			continue;
		if (r < 0) {
			/* A refusal (revoked, disconnected) has already said why. */
			if (!s->err) {
				log_warn_errno(r, "agent %s: connection lost", s->agent);
				snprintf(s->end_why, sizeof(s->end_why), "the connection was lost (%s)",
					 strerror(-r));
			}
			return;
		}
		if (next_frame(s, &h) <= 0)
			return;
		switch (h.type) {
		case PROTO_CUTOVER: r = on_cutover(s, &h); break;
		case PROTO_DISK: r = on_disk(s, &h); break;
		case PROTO_DATA: r = on_data(s, &h); break;
		case PROTO_ZERO: r = on_zero(s, &h); break;
		case PROTO_PATCH: r = on_patch(s, &h); break;
		case PROTO_EPOCH_END: r = on_epoch_end(s, &h); break;
		case PROTO_STATUS: r = on_status(s, &h); break;
		case PROTO_DISK_FAULT: r = on_disk_fault(s, &h); break;
		case PROTO_BYE:
			log_info("agent %s: session ended", s->agent);
			return;
		case PROTO_ERROR: {
			struct proto_error e;

			if (proto_decode_error(s->buf, h.len, &e) == 0) {
				log_warn("agent %s gave up: %s", s->agent, e.msg);
				if (s->cut)
					finish_cutover(s, -EIO, "the agent gave up: %s", e.msg);
			}
			return;
		}
		default:
			r = refuse(s, -EPROTO, "unexpected %s frame", proto_type_name(h.type));
			break;
		}
		if (r < 0) {
			if (!s->err) {
				log_warn_errno(r, "agent %s: connection lost", s->agent);
				snprintf(s->end_why, sizeof(s->end_why), "the connection was lost (%s)",
					 strerror(-r));
			}
			return;
		}
	}
}

void rcv_session_run(struct rcv_server *srv, struct lsn_conn *lc, int fd, const char *peer_addr)
{
	struct rsession *s;
	struct conn *c;
	char why[256];
	int r;

	/* A stranger gets nothing but its TLS state: the session and its buffers are
	 * allocated only once the peer's certificate has been verified. */
	c = conn_handshake(srv->ctx, fd, true, HANDSHAKE_TIMEOUT_MS, &r, why, sizeof(why));
	if (!c) {
		/* A cut at the deadline is counted in the listener's summary instead. */
		if (!lsn_was_cut(lc))
			lsn_warn(lc, "refused connection from %s: %s", peer_addr, why);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		conn_free(c);
		return;
	}
	s->srv = srv;
	s->lc = lc;
	s->c = c;
	snprintf(s->peer, sizeof(s->peer), "%s", peer_addr);
	s->codec = codec_new(0);
	s->buf = malloc(PROTO_MAX_PAYLOAD);
	if (!s->codec || !s->buf)
		refuse(s, -ENOMEM, "out of memory");
	/* Checked at every connection, so a revocation takes effect without a restart. */
	else if ((r = enrol_check_revoked(srv->state_dir, s->c, NULL, why, sizeof(why))) < 0)
		refuse(s, r, "%s", why);
	else
		session_loop(s);
	unregister_handle(s);
	reg_disconnect(srv->reg, s->ra, s->err ? s->why : s->end_why, s->err != 0);
	/* The targets are let go before the refusal is sent: an agent that hears it may
	 * come back at once (or another may be started), and must not find them in use
	 * while this session lingers for its peer to close. */
	for (unsigned i = 0; i < s->ndisks; i++) {
		/* A session that did not end its epoch leaves queued writes unacknowledged;
		 * they complete or fail, but nothing claims they are durable. */
		wr_close(s->disks[i].w);
		fps_free(s->disks[i].fps, s->disks[i].nchunks);
		free(s->disks[i].have);
		fp_release(srv, s->disks[i].reserved);
		if (s->disks[i].t) {
			s->disks[i].t->seen = true;
			s->disks[i].t->fault_noted = s->disks[i].fault_noted;
			snprintf(s->disks[i].t->last_end, sizeof(s->disks[i].t->last_end), "%s",
				 s->end_why);
			release_target(srv, s->disks[i].t);
		}
	}
	if (s->err) {
		conn_send_error(s->c, s->err, "%s", s->why);
		conn_linger(s->c, 2000);
	}
	conn_free(s->c);
	codec_free(s->codec);
	free(s->buf);
	free(s);
}

int rcv_cutover(struct rcv_server *srv, const char *agent, struct rcv_cutover *req,
		unsigned timeout_s)
{
	struct rcv_handle *hd;
	struct timespec deadline;
	uint64_t one = 1;
	bool waited = false;
	int target, r = 0;

	/* srv->cut_cv waits on the monotonic clock: a clock step must not move the deadline. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;
	req->done = false;
	req->result = 0;
	req->proof[0] = '\0';
	req->ndisks = 0;
	/* An agent the receiver has never heard of, or whose every disk is cut over, is not
	 * worth waiting for: refused at once. */
	target = reg_cutover_target(srv->reg, agent);
	pthread_mutex_lock(&srv->lock);
	for (;;) {
		/* Sessions are added at the head: the first match is the newest, the one a
		 * reconnected agent opened while a stale one may still linger. */
		for (hd = srv->handles; hd && strcmp(hd->agent, agent) != 0; hd = hd->next)
			;
		if (hd || target < 0 || srv->stopping)
			break;
		/* A link flap or an agent restart: wait, within the same deadline, for the
		 * agent's next session (register_handle signals cut_cv). */
		if (!waited)
			log_info("api: agent %s is not connected; waiting up to %u s for it to come "
				 "back", agent, timeout_s);
		waited = true;
		if (pthread_cond_timedwait(&srv->cut_cv, &srv->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (!hd) {
		if (target == -ENOENT)
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected (this "
				 "receiver has never seen it)", agent);
		else if (target < 0)
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected, and "
				 "every disk of it is cut over already", agent);
		else if (srv->stopping)
			snprintf(req->proof, sizeof(req->proof), "the receiver is shutting down");
		else
			snprintf(req->proof, sizeof(req->proof), "agent %s is not connected (waited "
				 "%u s for it to come back)", agent, timeout_s);
		r = target == 0 && !srv->stopping ? -ETIMEDOUT : -ENOENT;
	} else if (hd->req) {
		snprintf(req->proof, sizeof(req->proof), "a cutover of agent %s is already running",
			 agent);
		r = -EBUSY;
	} else {
		hd->req = req;
		hd->req_gen++;
		if (write(hd->efd, &one, sizeof(one)) < 0)
			r = -errno;
		while (r == 0 && !req->done && !srv->stopping) {
			if (pthread_cond_timedwait(&srv->cut_cv, &srv->lock, &deadline) == ETIMEDOUT)
				break;
		}
		if (req->done) {
			r = req->result;
		} else {
			/* Withdraw the request: whatever the session does next is not awaited. */
			for (hd = srv->handles; hd; hd = hd->next)
				if (hd->req == req)
					hd->req = NULL;
			if (srv->stopping)
				snprintf(req->proof, sizeof(req->proof), "the receiver is shutting down");
			else
				snprintf(req->proof, sizeof(req->proof), "no cutover within %u s", timeout_s);
			r = r ? r : -ETIMEDOUT;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

int rcv_launch(struct rcv_server *srv, const char *agent, struct launch *l, char *why,
	       size_t why_len)
{
	struct rcv_handle *hd;
	uint64_t one = 1;
	int r = 0;

	pthread_mutex_lock(&srv->lock);
	/* The newest session first, as for a cutover. */
	for (hd = srv->handles; hd && strcmp(hd->agent, agent) != 0; hd = hd->next)
		;
	if (!hd) {
		snprintf(why, why_len, "agent %s has no live session on this receiver: a test "
			 "launch clones at an epoch boundary of a running replication", agent);
		r = -ENOENT;
	} else if (hd->launch) {
		snprintf(why, why_len, "a test launch of agent %s already waits for an epoch "
			 "boundary", agent);
		r = -EBUSY;
	} else {
		hd->launch = l;
		__atomic_store_n(&hd->launch_pending, true, __ATOMIC_RELEASE);
		/* An idle session (between epochs, waiting for the agent) wakes to serve it. */
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
	}
	pthread_mutex_unlock(&srv->lock);
	return r;
}

bool rcv_launch_withdraw(struct rcv_server *srv, struct launch *l)
{
	bool found = false;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (hd->launch == l) {
			hd->launch = NULL;
			__atomic_store_n(&hd->launch_pending, false, __ATOMIC_RELEASE);
			found = true;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	return found;
}

void rcv_poke(struct rcv_server *srv, const char *agent)
{
	uint64_t one = 1;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (strcmp(hd->agent, agent) != 0)
			continue;
		__atomic_store_n(&hd->ctl_pending, true, __ATOMIC_RELEASE);
		/* The eventfd wakes a session idle in poll; a full counter still wakes it. */
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
	}
	pthread_mutex_unlock(&srv->lock);
}

int rcv_disconnect(struct rcv_server *srv, const char *agent)
{
	uint64_t one = 1;
	int n = 0;

	pthread_mutex_lock(&srv->lock);
	for (struct rcv_handle *hd = srv->handles; hd; hd = hd->next) {
		if (strcmp(hd->agent, agent) != 0)
			continue;
		__atomic_store_n(&hd->kick, true, __ATOMIC_RELEASE);
		if (write(hd->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			log_warn_errno(-errno, "waking the session of agent %s", agent);
		n++;
	}
	pthread_mutex_unlock(&srv->lock);
	return n > 0 ? n : -ENOENT;
}
