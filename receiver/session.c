// SPDX-License-Identifier: GPL-2.0-only
/* One replication session on the receiver: validate every frame, verify every chunk's
 * fingerprint before it is written, ack an epoch only once it is durable. */
#include "receiver/session-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define HANDSHAKE_TIMEOUT_MS 15000
#define STATUS_RATE_MAX (UINT64_C(1) << 50)

int refuse(struct rsession *s, int err, const char *fmt, ...)
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

/* Puts a DATA or PATCH payload at dst as plain bytes: decompressed, or copied. A stream
 * (DATA only) is one the session was granted, decoded in the order it arrives. */
static int unpack(struct rsession *s, uint8_t *dst, uint8_t encoding, unsigned stream,
		  bool start, uint32_t plain_len, const uint8_t *payload, uint32_t payload_len)
{
	if (encoding == PROTO_ENC_ZSTD_STREAM)
		return codec_decompress_stream(s->codec, stream, start, dst, plain_len, payload,
					       payload_len);
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
	if (m.encoding == PROTO_ENC_ZSTD_STREAM && m.stream >= s->streams)
		return refuse(s, -EPROTO, "DATA on compression stream %u, but %u granted",
			      m.stream, s->streams);
	buf = wr_get_buf(d->w, &r);
	if (!buf)
		return wr_failed(s, d, r);
	r = unpack(s, buf, m.encoding, m.stream, m.start, m.plain_len, m.payload, m.payload_len);
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
	if (r == 0)
		r = ckpt_before_write(s, d, first, first + m.nchunks, m.fps);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return s->err ? r : wr_failed(s, d, r);
	}
	r = wr_submit(d->w, buf, m.plain_len, m.offset);
	if (r < 0)
		return wr_failed(s, d, r);
	for (uint32_t i = 0; i < m.nchunks; i++) {
		d->fps[first + i] = m.fps[i];
		have_set(d, first + i);
	}
	r = ckpt_after_write(s, d, first, first + m.nchunks, m.plain_len);
	if (r < 0)
		return wr_failed(s, d, r);
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
	r = unpack(s, buf + s->cs, m.encoding, 0, false, m.plain_len, m.payload, m.payload_len);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return refuse(s, r, "disk %s: corrupt compressed patch at %" PRIu64
			      "; refused, nothing written", d->t->id, m.offset);
	}
	r = mark_epoch(s, d);
	if (r == 0)
		r = ckpt_before_write(s, d, m.offset / s->cs, m.offset / s->cs + 1, &m.fp);
	if (r < 0) {
		wr_put_buf(d->w, buf);
		return s->err ? r : wr_failed(s, d, r);
	}
	/* Earlier epochs are flushed and this chunk was not sent in this one, so the target
	 * holds the chunk as last acknowledged. */
	r = wr_patch(d->w, buf, s->cs, m.offset, m.mask, m.block_shift, &m.fp);
	if (r < 0)
		return wr_failed(s, d, r);
	d->fps[m.offset / s->cs] = m.fp;
	have_set(d, m.offset / s->cs);
	r = ckpt_after_write(s, d, m.offset / s->cs, m.offset / s->cs + 1, s->cs);
	if (r < 0)
		return wr_failed(s, d, r);
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
	first = m.offset / s->cs;
	last = DIV_ROUND_UP(m.offset + m.length, s->cs);
	r = check_range(s, d, m.offset, m.length);
	if (r == 0)
		r = mark_epoch(s, d);
	if (r == 0)
		r = ckpt_before_write(s, d, first, last, NULL);
	if (r < 0)
		return s->err ? r : wr_failed(s, d, r);
	r = wr_zero(d->w, m.offset, m.length);
	if (r < 0)
		return refuse(s, r, "disk %s: zeroing %" PRIu64 "+%" PRIu64 " failed: %s", d->t->id,
			      m.offset, m.length, strerror(-r));
	/* No memory per chunk: a zero chunk's fingerprint is implied (see fps_zero). */
	fps_zero(d->fps, first, last);
	have_set_range(d, first, last);
	/* Zeroing is no data written: it counts as what it adds to a checkpoint, so that a
	 * large sparse disk is not checkpointed every few GiB of holes (each checkpoint
	 * rewrites the fingerprints of everything held). */
	r = ckpt_after_write(s, d, first, last, (last - first) * FP_LEN);
	if (r < 0)
		return wr_failed(s, d, r);
	reg_frame(s->srv->reg, d->rd, m.length, 0, 0, PROTO_HDR_LEN + (uint64_t)h->len);
	return 0;
}

/* Looks at the revocation list again (it is cached and re-read only when it changed):
 * a revoked agent's session ends at once, and nothing more of it is acknowledged. */
int recheck_revoked(struct rsession *s)
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
	/* A first copy resumed from its checkpoint: every chunk not held must have come. */
	if (m.epoch == 0 && d->ckpt && d->held_count != d->nchunks)
		return refuse(s, -EPROTO, "disk %s: epoch 0 incomplete: the target holds %" PRIu64
			      " of %" PRIu64 " chunks", d->t->id, d->held_count, d->nchunks);
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
		/* The .fps file and the verified record take over from the checkpoint. */
		ckpt_done(s, d);
	} else {
		/* Fingerprints that do not add up to the agent's root vouch for nothing: a
		 * later session reads the target to reconcile. */
		ckpt_done(s, d);
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

/* HELLO's decoder bounds `want` by the protocol's limit; the codec must hold that many. */
_Static_assert(PROTO_STREAMS_MAX <= CODEC_STREAMS_MAX,
	       "a stream HELLO may ask for would have no decoder");

/* Grants up to `want` compression streams from the receiver's RCV_STREAMS_TOTAL: each may
 * make this session hold a decoder window, so the total is what bounds them. */
static int grant_streams(struct rsession *s, unsigned want)
{
	struct rcv_server *srv = s->srv;
	unsigned n;

	pthread_mutex_lock(&srv->lock);
	n = MIN(want, RCV_STREAMS_TOTAL - srv->streams_used);
	srv->streams_used += n;
	pthread_mutex_unlock(&srv->lock);
	s->streams = n;
	if (n && codec_streams_accept(s->codec, n, CODEC_STREAM_WLOG) < 0)
		return -ENOMEM;
	return 0;
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
	s->streams_asked = m.streams;
	r = grant_streams(s, m.streams);
	if (r < 0)
		return refuse(s, r, "out of memory");
	w.streams = (uint8_t)s->streams;
	w.window_log = s->streams ? CODEC_STREAM_WLOG : 0;
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
int send_wishes(struct rsession *s, bool all)
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
	reg_set_session(s->srv->reg, s->ra, s->shared, s->streams_asked, s->streams);
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
		case PROTO_DISK_GROW: r = on_disk_grow(s, &h); break;
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
		 * they complete or fail, but nothing claims they are durable (except what a
		 * first copy's last checkpoint claims after flushing them). */
		ckpt_final(s, &s->disks[i]);
		wr_close(s->disks[i].w);
		free(s->disks[i].held);
		fps_free(s->disks[i].fps);
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
	pthread_mutex_lock(&srv->lock);
	srv->streams_used -= MIN(s->streams, srv->streams_used);
	pthread_mutex_unlock(&srv->lock);
	free(s->buf);
	free(s);
}
