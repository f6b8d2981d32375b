// SPDX-License-Identifier: GPL-2.0-only
/* The agent's link to the receiver: connect and greet, reconnect with backoff while the
 * link (not the receiver's judgement) fails, control-frame I/O, and the frames the
 * receiver may send at any time (CONTROL, a CUTOVER request, ERROR). */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/session-impl.h"
#include "agent/source.h"
#include "agent/track.h"
#include "common/codec.h"
#include "common/fp.h"
#include "common/fptab.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"

/* A connection that sent this much, or lived this long, or had an epoch acknowledged, was
 * worth having: the next one follows after RECONNECT_QUICK_MS instead of backing off. */
#define RECONNECT_PRODUCTIVE_BYTES (256u << 10)
#define RECONNECT_PRODUCTIVE_NS (30 * 1000000000ull)
#define RECONNECT_QUICK_MS 100u
/* See link_open. */
#define LINK_UNSENT_MAX (512u << 10)

/* A frame header of another protocol version: the receiver's refusal, if it sent one, is
 * in a header this agent cannot read, and trying again would only be refused again. */
static int other_version(struct session *s)
{
	log_error("the receiver speaks another protocol version than this agent's v%d: run the "
		  "same tern release on both sides", PROTO_VERSION);
	s->refused = true;
	return -EPROTONOSUPPORT;
}

/* Notes a CUTOVER request found where another frame was awaited. 1 when it was one. */
static int note_cut_request(struct session *s, const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_cutover m;

	if (h->type != PROTO_CUTOVER || proto_decode_cutover(buf, h->len, &m) < 0 ||
	    m.phase != PROTO_CUT_REQUEST)
		return 0;
	s->cut_pending = true;
	s->cut_verify = m.verify;
	/* The operator wants the cutover now: a pause would hold its final epoch forever. */
	if (s->paused)
		log_info("the cutover lifts the pause");
	s->paused = false;
	return 1;
}

/* Applies a CONTROL frame. 1 when h was one, 0 when not, -errno when malformed. */
static int note_control(struct session *s, const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_control m;
	char b[32];

	if (h->type != PROTO_CONTROL)
		return 0;
	if (proto_decode_control(buf, h->len, &m) < 0)
		return log_errno(-EBADMSG, "receiver sent a malformed CONTROL frame");
	switch (m.op) {
	case PROTO_CTL_PAUSE:
		if (!s->paused)
			log_info("paused by the operator: no data is sent until resumed");
		s->paused = true;
		break;
	case PROTO_CTL_RESUME:
		if (s->paused)
			log_info("resumed by the operator");
		s->paused = false;
		break;
	default:
		/* Debt run up at the old rate is not owed at the new one. */
		if (m.rate_bps != s->remote_rate)
			s->pace_next = 0;
		if (m.rate_bps != s->remote_rate) {
			if (m.rate_bps)
				log_info("bandwidth limit set by the operator: %s/s",
					 fmt_bytes(m.rate_bps, b, sizeof(b)));
			else
				log_info("bandwidth limit lifted by the operator");
		}
		s->remote_rate = m.rate_bps;
		break;
	}
	return 1;
}

/* A frame the receiver may send at any time (a CONTROL, or a CUTOVER request unless one
 * is what is awaited): 1 when h was one and is dealt with, 0 otherwise, -errno when bad. */
static int note_async(struct session *s, const struct proto_hdr *h, const uint8_t *buf,
		      enum proto_type want)
{
	int r = note_control(s, h, buf);

	if (r != 0)
		return r;
	return want != PROTO_CUTOVER ? note_cut_request(s, h, buf) : 0;
}

/* The receiver's ERROR frame h (payload in buf): says why, and that reconnecting is
 * pointless. Returns its code as -errno. */
static int refusal(struct session *s, const struct proto_hdr *h, const uint8_t *buf)
{
	struct proto_error e;

	s->refused = true;
	if (proto_decode_error(buf, h->len, &e) < 0)
		return log_errno(-EBADMSG, "receiver sent a malformed ERROR frame");
	log_error("receiver refused: %s", e.msg);
	return e.code > 0 && e.code < 4096 ? -(int)e.code : -EPROTO;
}

int link_recv(struct session *s, struct conn *c, enum proto_type want, uint8_t *buf, size_t cap,
	      struct proto_hdr *ret_hdr)
{
	struct proto_hdr h;
	int r;

again:
	r = conn_recv(c, &h, buf, cap);

	if (r == -ETIMEDOUT)
		return log_errno(r, "receiver did not answer in time");
	if (r == -EPROTO && strstr(conn_error_text(c), "alert")) {
		/* TLS 1.3 finishes the client's handshake before the server has checked the
		 * client certificate, so a refusal of our credential arrives here as an alert. */
		log_error("receiver ended the TLS session: %s", conn_error_text(c));
		s->refused = true;
		return r;
	}
	if (r == -EPROTONOSUPPORT)
		return other_version(s);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	if (h.type == PROTO_ERROR)
		return refusal(s, &h, buf);
	/* The cutover may be asked for while an epoch is under way: it waits for the epoch. */
	if (h.type != want) {
		r = note_async(s, &h, buf, want);
		if (r < 0)
			return r;
		if (r > 0)
			goto again;
	}
	if (h.type != want) {
		log_error("receiver sent %s where %s was expected", proto_type_name(h.type),
			  proto_type_name(want));
		return -EPROTO;
	}
	*ret_hdr = h;
	return 0;
}

/* Reads one frame the receiver sent unasked: a CONTROL or a cutover request is taken
 * note of; a refusal or anything else ends the session. */
int link_recv_async(struct session *s, struct conn *c)
{
	uint8_t *ctrl = s->ctrl;
	struct proto_hdr h;
	int r = conn_recv(c, &h, ctrl, CTRL_BUF);

	if (r == -EPROTONOSUPPORT)
		return other_version(s);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	if (h.type == PROTO_ERROR)
		return refusal(s, &h, ctrl);
	r = note_async(s, &h, ctrl, PROTO_EPOCH_ACK);
	if (r == 0)
		r = log_errno(-EPROTO, "receiver sent %s unasked", proto_type_name(h.type));
	return r < 0 ? r : 0;
}

void link_wait(struct conn *c, int ms)
{
	struct pollfd p = { .fd = c ? conn_fd(c) : -1, .events = POLLIN };

	if (!c || !conn_pending(c))
		poll(&p, 1, ms);
}

int link_register_disk(struct session *s, struct conn *c, uint16_t disk_no)
{
	struct source *src = s->srcs[disk_no];
	uint8_t *ctrl = s->ctrl;
	struct proto_disk dm = { .disk_no = disk_no, .logical_block = src->logical_block,
				 .size = src->size };
	struct proto_disk_ok ok;
	struct proto_hdr h;
	int n, r;

	snprintf(dm.id, sizeof(dm.id), "%s", src->id);
	/* The receiver keeps it with a first copy's checkpoint and offers it back. */
	dm.track_gen = s->runs[disk_no].trk ? track_gen(s->runs[disk_no].trk) : 0;
	conn_set_recv_timeout(c, s->o->connect_timeout_ms); /* a control answer comes at once */
	n = proto_encode_disk(ctrl, CTRL_BUF, &dm);
	if (n < 0)
		return log_errno(n, "%s: cannot encode disk", src->id);
	r = conn_send(c, ctrl, (size_t)n);
	if (r < 0)
		return log_errno(r, "connection to receiver lost");
	r = link_recv(s, c, PROTO_DISK_OK, ctrl, CTRL_BUF, &h);
	if (r < 0)
		return r;
	r = proto_decode_disk_ok(ctrl, h.len, &ok);
	if (r < 0 || ok.disk_no != disk_no || ok.size > src->size)
		return log_errno(r < 0 ? r : -EPROTO, "receiver sent a malformed DISK_OK");
	if (ok.size < src->size) {
		/* The source grew while no agent ran and the receiver's target cannot hold it
		 * yet: the disk is what the receiver vouches for, at that size, and the growth
		 * is asked for before its first epoch (grow_check), as a live one would be. */
		log_info("%s: the source grew to %" PRIu64 " bytes while no agent ran; the "
			 "receiver registered it at the %" PRIu64 " it holds", src->id, src->size,
			 ok.size);
		src->size = ok.size;
		s->views[disk_no].total = ok.size;
	}
	return 0;
}

int link_recv_fps(struct session *s, struct conn *c, uint16_t disk_no, struct fp **ret_fps,
		  uint64_t *ret_next, uint64_t **ret_held, uint64_t *ret_gen)
{
	const struct source *src = s->srcs[disk_no];
	uint8_t *big = s->big;
	uint64_t nchunks = DIV_ROUND_UP(src->size, s->o->rd.chunk_size), have = 0, next = 0, gen = 0;
	uint64_t *held = NULL;
	struct fp *fps = NULL;
	struct proto_hdr h = { 0 };
	uint8_t flags = 0;
	int r;

	for (;;) {
		struct proto_fps m;

		r = link_recv(s, c, PROTO_FPS, big, PROTO_MAX_PAYLOAD, &h);
		if (r < 0)
			goto fail;
		r = proto_decode_fps(big, h.len, &m);
		/* One disk's frames agree on its epoch, and on what they vouch for. */
		if (r < 0 || m.disk_no != disk_no || m.first_chunk != have ||
		    m.count > nchunks - have || (have > 0 && (m.count == 0 || m.next_epoch != next ||
		    m.flags != flags || m.track_gen != gen)) ||
		    ((m.flags & PROTO_FPS_SOME) && m.next_epoch != 0)) {
			r = log_errno(r < 0 ? r : -EPROTO, "%s: receiver sent malformed fingerprints",
				      src->id);
			goto fail;
		}
		next = m.next_epoch;
		flags = m.flags;
		gen = m.track_gen;
		if (m.count == 0)
			break; /* the receiver knows nothing of this disk */
		/* Zero chunks are stored as the fresh array's zeros (common/fptab.h): a
		 * sparse disk's costs little here. */
		if (!fps && !(fps = fps_alloc(nchunks))) {
			r = log_errno(-ENOMEM, "allocation");
			goto fail;
		}
		if ((flags & PROTO_FPS_SOME) && !held &&
		    !(held = calloc(DIV_ROUND_UP(nchunks, 64), 8))) {
			r = log_errno(-ENOMEM, "allocation");
			goto fail;
		}
		for (uint32_t i = 0; i < m.count; i++)
			fps_put(fps, have + i, &m.fps[i], src->size, s->o->rd.chunk_size);
		for (uint32_t i = 0; held && i < m.count; i++)
			if (m.held[i / 8] >> (i % 8) & 1)
				held[(have + i) / 64] |= UINT64_C(1) << ((have + i) % 64);
		have += m.count;
		if (have == nchunks)
			break;
	}
	*ret_fps = fps;
	*ret_next = next;
	*ret_held = held;
	*ret_gen = gen;
	return 0;
fail:
	fps_free(fps);
	free(held);
	return r;
}

/* Connects, completes the TLS handshake and HELLO/WELCOME; the operator's wishes and a
 * cutover request belong to one connection and start afresh. Returns 0 with *ret_c, or
 * -errno (s->refused: the receiver refused us). */
static int link_open(struct session *s, struct conn **ret_c)
{
	const struct agent_opts *o = s->o;
	struct proto_hello hello = { .chunk_size = o->rd.chunk_size,
				     .streams = (uint8_t)MIN(o->streams, o->rd.workers) };
	uint8_t *ctrl = s->ctrl;
	struct proto_welcome w;
	struct proto_hdr h;
	struct conn *c;
	char why[256];
	int fd, n, r;

	fd = net_connect(o->receiver, o->connect_timeout_ms);
	if (fd < 0)
		return log_errno(fd, "cannot connect to receiver %s", o->receiver);
	/* Frames wait in the agent's queue, not in the kernel's send buffer (4 MiB here at
	 * most): the adaptive level feels the link within a frame or two of sending, not
	 * megabytes later, and a level change reaches the wire that much sooner. Data in
	 * flight is not counted, so a long fat link still fills. */
	net_limit_unsent(fd, LINK_UNSENT_MAX);
	c = conn_handshake(s->ctx, fd, false, o->connect_timeout_ms, &r, why, sizeof(why));
	if (!c) {
		log_error("TLS handshake with %s failed: %s", o->receiver, why);
		/* A refusal ends the agent; a link lost mid-handshake is retried. */
		s->refused = r == -ECONNREFUSED;
		return r;
	}
	snprintf(hello.name, sizeof(hello.name), "%s", o->name);
	n = proto_encode_hello(ctrl, CTRL_BUF, &hello);
	r = n < 0 ? n : conn_send(c, ctrl, (size_t)n);
	if (r < 0) {
		/* A receiver that refused our certificate has sent an alert saying so. */
		if (link_recv(s, c, PROTO_WELCOME, ctrl, CTRL_BUF, &h) == 0)
			r = -EPROTO;
		goto fail;
	}
	r = link_recv(s, c, PROTO_WELCOME, ctrl, CTRL_BUF, &h);
	if (r < 0)
		goto fail;
	r = proto_decode_welcome(ctrl, h.len, &w);
	if (r == 0 && w.streams > hello.streams)
		r = -EPROTO;
	if (r < 0) {
		log_errno(r, "receiver sent a malformed WELCOME");
		goto fail;
	}
	/* Our streams use an 8 MiB window: a receiver that can hold less gets none. */
	s->streams = w.window_log >= CODEC_STREAM_WLOG ? w.streams : 0;
	if (s->streams < hello.streams)
		log_info("receiver granted %u of %u compression streams%s", s->streams,
			 hello.streams, w.streams && !s->streams ? " (its window is too small)" : "");
	log_info("connected to %s (TLS 1.3, mutual certificate verification)", o->receiver);
	s->nregistered = 0;
	/* A cutover request and the operator's wishes belong to one session: the receiver
	 * asks again, and repeats its wishes, on the next. */
	s->cut_pending = false;
	s->paused = false;
	s->remote_rate = 0;
	s->pace_next = 0;
	/* A receiver busy making a large target durable (or zeroing it) may not read for a
	 * while; the stream waits as long as the acknowledgement would. */
	conn_set_send_timeout(c, o->ack_timeout_ms);
	*ret_c = c;
	return 0;
fail:
	conn_free(c);
	return r;
}

int link_run(struct session *s)
{
	const struct agent_opts *o = s->o;
	uint64_t backoff_ms = 0;
	int r;

	for (;;) {
		uint64_t t_conn = now_ns();
		struct conn *c = NULL;
		bool productive;

		s->refused = false;
		s->conn_sent = 0;
		s->conn_acked = false;
		r = link_open(s, &c);
		if (r == 0)
			r = ses_connected(s, c);
		conn_free(c);
		/* A connection that moved data (or lived long) proves the link works: a lost one
		 * is retried almost at once, so a link that flaps every few MB still copies at
		 * nearly full speed. Links that fail at once back off, 1 s doubling to 60 s. */
		productive = s->conn_acked || s->conn_sent >= RECONNECT_PRODUCTIVE_BYTES ||
			     now_ns() - t_conn >= RECONNECT_PRODUCTIVE_NS;
		backoff_ms = productive ? RECONNECT_QUICK_MS :
			     backoff_ms < 1000 ? 1000 : MIN(backoff_ms * 2, 60000u);
		/* A patch that did not fit: reconnect at once, once, and reconcile. */
		if (r == -ESTALE && !s->reconcile && !o->once && !ses_stopping()) {
			log_warn("the receiver's target is not what the tracker expected (changed "
				 "behind tern, or a write the tracker missed); reconciling every disk "
				 "by fingerprints");
			s->reconcile = true;
			continue;
		}
		/* "In use" is the receiver still holding our previous session after a dead
		 * link; it lets go once its side notices, so that refusal is worth a retry, as
		 * are a cutover the operator's timeout withdrew and a session the operator
		 * closed (ternctl disconnect, ECONNRESET): a revoked agent is refused anew. */
		if (r == -ECANCELED && !s->cut_over)
			log_warn("the receiver withdrew the cutover (the operator's request timed "
				 "out); the source is thawed and replication goes on");
		if (r == 0 || o->once || s->cut_over ||
		    (s->refused && r != -EBUSY && r != -ECANCELED && r != -ECONNRESET) ||
		    ses_stopping())
			return r;
		/* The link failed, not the receiver's judgement: what it acknowledged is
		 * durable, and the next connection resumes from its fingerprints. */
		log_warn("connection lost; reconnecting in %.1f s", (double)backoff_ms / 1000.0);
		pace_sleep(s, backoff_ms, NULL);
	}
}
