// SPDX-License-Identifier: GPL-2.0-only
/* tern wire protocol v2: explicit big-endian encode/decode with strict validation. This
 * file: the header, the type names and the link's frames (HELLO..DISK_OK, ERROR, BYE,
 * CUTOVER, STATUS, DISK_FAULT, DISK_GROW, DISK_GROWN, CONTROL); an epoch's stream is in proto-stream.c. */
#include "common/proto.h"

#include <errno.h>
#include <string.h>

#include "common/cursor.h"
#include "common/proto-impl.h"
#include "common/util.h"

/* A name: u8 length then bytes, valid per name_is_valid. */
static void put_name(struct cur *c, const char *s)
{
	size_t n = strlen(s);

	if (!name_is_valid(s, n)) {
		c->bad = true;
		return;
	}
	put_u8(c, (uint8_t)n);
	put_bytes(c, s, n);
}

static int get_name(struct cur *c, char out[NAME_MAX_LEN + 1])
{
	size_t n = (size_t)get_be(c, 1);
	const uint8_t *p = get_bytes(c, n);

	if (!p)
		return -EBADMSG;
	if (!name_is_valid((const char *)p, n))
		return -EPROTO;
	memcpy(out, p, n);
	out[n] = '\0';
	return 0;
}

static size_t payload_max(unsigned type)
{
	switch (type) {
	case PROTO_HELLO: return 4 + 1 + NAME_MAX_LEN + 1;
	case PROTO_WELCOME: return 4 + 1 + NAME_MAX_LEN + 2;
	case PROTO_DISK: return 2 + 4 + 8 + 1 + NAME_MAX_LEN + 8;
	case PROTO_DISK_OK: return 2 + 8 + 8;
	case PROTO_DATA: return PROTO_MAX_PAYLOAD;
	case PROTO_ZERO: return 18;
	case PROTO_EPOCH_END: return 2 + 8 + 8 + FP_LEN;
	case PROTO_EPOCH_ACK: return 2 + 1 + 8 + 8 + FP_LEN;
	case PROTO_ERROR: return 4 + 2 + PROTO_MSG_MAX;
	case PROTO_BYE: return 0;
	case PROTO_FPS: return PROTO_FPS_FRAME_MAX - PROTO_HDR_LEN;
	case PROTO_CUTOVER: return 10;
	case PROTO_PATCH: return PROTO_PATCH_FIXED + PROTO_CHUNK_MAX;
	case PROTO_STATUS: return PROTO_STATUS_LEN;
	case PROTO_CONTROL: return 9;
	case PROTO_DISK_FAULT: return 2 + 1 + 4 + 8 + 2 + PROTO_MSG_MAX;
	case PROTO_DISK_GROW: return 2 + 8 + 8;
	case PROTO_DISK_GROWN: return 2 + 4 + 8 + 2 + PROTO_MSG_MAX;
	default: return 0;
	}
}

const char *proto_type_name(unsigned type)
{
	static const char *names[] = {
		[PROTO_HELLO] = "HELLO", [PROTO_WELCOME] = "WELCOME", [PROTO_DISK] = "DISK",
		[PROTO_DISK_OK] = "DISK_OK", [PROTO_DATA] = "DATA", [PROTO_ZERO] = "ZERO",
		[PROTO_EPOCH_END] = "EPOCH_END", [PROTO_EPOCH_ACK] = "EPOCH_ACK",
		[PROTO_ERROR] = "ERROR", [PROTO_BYE] = "BYE", [PROTO_FPS] = "FPS", [PROTO_CUTOVER] = "CUTOVER",
		[PROTO_PATCH] = "PATCH", [PROTO_STATUS] = "STATUS", [PROTO_CONTROL] = "CONTROL",
		[PROTO_DISK_FAULT] = "DISK_FAULT", [PROTO_DISK_GROW] = "DISK_GROW",
		[PROTO_DISK_GROWN] = "DISK_GROWN",
	};
	if (type == 0 || type > PROTO_TYPE_MAX)
		return "unknown";
	return names[type];
}

void proto_encode_hdr(uint8_t out[PROTO_HDR_LEN], enum proto_type type, uint32_t len)
{
	struct cur c = { .w = out, .left = PROTO_HDR_LEN };

	put_be(&c, PROTO_MAGIC, 4);
	put_u8(&c, PROTO_VERSION);
	put_u8(&c, (uint8_t)type);
	put_be(&c, 0, 2);
	put_be(&c, len, 4);
	put_be(&c, 0, 4);
}

int proto_decode_hdr(const uint8_t in[PROTO_HDR_LEN], struct proto_hdr *ret_hdr)
{
	struct cur c = { .r = in, .left = PROTO_HDR_LEN };
	struct proto_hdr h;

	h.magic = (uint32_t)get_be(&c, 4);
	h.version = (uint8_t)get_be(&c, 1);
	h.type = (uint8_t)get_be(&c, 1);
	h.flags = (uint16_t)get_be(&c, 2);
	h.len = (uint32_t)get_be(&c, 4);
	h.reserved = (uint32_t)get_be(&c, 4);
	if (h.magic != PROTO_MAGIC)
		return -EBADMSG;
	if (h.version != PROTO_VERSION)
		return -EPROTONOSUPPORT;
	if (h.type == 0 || h.type > PROTO_TYPE_MAX || h.flags != 0 || h.reserved != 0)
		return -EBADMSG;
	if (h.len > payload_max(h.type))
		return -EMSGSIZE;
	*ret_hdr = h;
	return 0;
}

bool proto_chunk_size_valid(uint32_t cs)
{
	return cs >= PROTO_CHUNK_MIN && cs <= PROTO_CHUNK_MAX && (cs & (cs - 1)) == 0;
}

/* HELLO and WELCOME: a u32, a name, then n (1 or 2) bytes. */
static int encode_name_msg(uint8_t *out, size_t cap, enum proto_type type, uint32_t v,
			   const char *name, const uint8_t *tail, size_t n)
{
	struct cur c = begin(out, cap);

	if (!name_is_valid(name, strlen(name)))
		return -EINVAL;
	put_be(&c, v, 4);
	put_name(&c, name);
	put_bytes(&c, tail, n);
	return finish(&c, out, type);
}

static int decode_name_msg(const uint8_t *p, size_t len, uint32_t *ret_v, char *ret_name,
			   uint8_t *ret_tail, size_t n)
{
	struct cur c = { .r = p, .left = len };
	char name[NAME_MAX_LEN + 1];
	uint32_t v = (uint32_t)get_be(&c, 4);
	int r = get_name(&c, name);
	const uint8_t *tail;

	if (r < 0)
		return r;
	tail = get_bytes(&c, n);
	if (!tail)
		return -EBADMSG;
	r = done(&c);
	if (r < 0)
		return r;
	*ret_v = v;
	memcpy(ret_name, name, strlen(name) + 1);
	memcpy(ret_tail, tail, n);
	return 0;
}

int proto_encode_hello(uint8_t *out, size_t cap, const struct proto_hello *m)
{
	if (!proto_chunk_size_valid(m->chunk_size) || m->streams > PROTO_STREAMS_MAX)
		return -EINVAL;
	return encode_name_msg(out, cap, PROTO_HELLO, m->chunk_size, m->name, &m->streams, 1);
}

int proto_decode_hello(const uint8_t *p, size_t len, struct proto_hello *ret_m)
{
	struct proto_hello m;
	int r = decode_name_msg(p, len, &m.chunk_size, m.name, &m.streams, 1);

	if (r < 0)
		return r;
	if (!proto_chunk_size_valid(m.chunk_size) || m.streams > PROTO_STREAMS_MAX)
		return -EPROTO;
	*ret_m = m;
	return 0;
}

/* A grant of streams names a window a decoder can hold; no streams, no window. */
static bool welcome_streams_ok(const struct proto_welcome *m)
{
	if (m->streams == 0)
		return m->window_log == 0;
	return m->streams <= PROTO_STREAMS_MAX && m->window_log >= 10 && m->window_log <= 30;
}

int proto_encode_welcome(uint8_t *out, size_t cap, const struct proto_welcome *m)
{
	uint8_t tail[2] = { m->streams, m->window_log };

	if (m->max_payload < PROTO_HDR_LEN + PROTO_DATA_FIXED || !welcome_streams_ok(m))
		return -EINVAL;
	return encode_name_msg(out, cap, PROTO_WELCOME, m->max_payload, m->name, tail, 2);
}

int proto_decode_welcome(const uint8_t *p, size_t len, struct proto_welcome *ret_m)
{
	struct proto_welcome m;
	uint8_t tail[2];
	int r = decode_name_msg(p, len, &m.max_payload, m.name, tail, 2);

	if (r < 0)
		return r;
	m.streams = tail[0];
	m.window_log = tail[1];
	if (m.max_payload < PROTO_HDR_LEN + PROTO_DATA_FIXED || !welcome_streams_ok(&m))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

int proto_encode_disk(uint8_t *out, size_t cap, const struct proto_disk *m)
{
	struct cur c = begin(out, cap);

	if (m->size == 0 || m->size > (UINT64_C(1) << 62) || !name_is_valid(m->id, strlen(m->id)) ||
	    m->logical_block < 512 || m->logical_block > 65536 ||
	    (m->logical_block & (m->logical_block - 1)) != 0)
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->logical_block, 4);
	put_be(&c, m->size, 8);
	put_name(&c, m->id);
	put_be(&c, m->track_gen, 8);
	return finish(&c, out, PROTO_DISK);
}

int proto_decode_disk(const uint8_t *p, size_t len, struct proto_disk *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_disk m;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.logical_block = (uint32_t)get_be(&c, 4);
	m.size = get_be(&c, 8);
	r = get_name(&c, m.id);
	if (r < 0)
		return r;
	m.track_gen = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	/* Logical blocks are powers of two from 512 B to 64 KiB on every Linux device. */
	if (m.logical_block < 512 || m.logical_block > 65536 ||
	    (m.logical_block & (m.logical_block - 1)) != 0)
		return -EPROTO;
	/* Sizes near 2^63 cannot be an off_t on the receiver; 4 EiB is plenty. */
	if (m.size == 0 || m.size > (UINT64_C(1) << 62))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

int proto_encode_disk_ok(uint8_t *out, size_t cap, const struct proto_disk_ok *m)
{
	struct cur c = begin(out, cap);

	if (m->size == 0 || m->size > (UINT64_C(1) << 62))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->target_size, 8);
	put_be(&c, m->size, 8);
	return finish(&c, out, PROTO_DISK_OK);
}

int proto_decode_disk_ok(const uint8_t *p, size_t len, struct proto_disk_ok *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_disk_ok m;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.target_size = get_be(&c, 8);
	m.size = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	/* The same bound as DISK's size: a disk is never empty, nor beyond 4 EiB. */
	if (m.size == 0 || m.size > (UINT64_C(1) << 62))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

/* A message line: a 16-bit length and that many bytes of printable ASCII, so a peer can
 * print it as one line; anything else is sent as '?'. */
static void put_line(struct cur *c, const char *msg, size_t n)
{
	put_be(c, n, 2);
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = (uint8_t)msg[i];

		put_u8(c, (ch >= 0x20 && ch < 0x7f) ? ch : '?');
	}
}

/* Reads a message line that ends the frame: -EBADMSG when it is too long, not printable,
 * or not exactly what is left. *ret_s points into the frame (n bytes, no terminator). */
static int get_line(struct cur *c, const uint8_t **ret_s, size_t *ret_n)
{
	size_t n = (size_t)get_be(c, 2);
	const uint8_t *s;
	int r;

	if (n > PROTO_MSG_MAX)
		return -EBADMSG;
	s = get_bytes(c, n);
	r = done(c);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] >= 0x7f)
			return -EBADMSG;
	}
	*ret_s = s;
	*ret_n = n;
	return 0;
}

int proto_encode_error(uint8_t *out, size_t cap, const struct proto_error *m)
{
	struct cur c = begin(out, cap);
	size_t n = strnlen(m->msg, PROTO_MSG_MAX);

	put_be(&c, m->code, 4);
	put_line(&c, m->msg, n);
	return finish(&c, out, PROTO_ERROR);
}

int proto_decode_error(const uint8_t *p, size_t len, struct proto_error *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_error m;
	const uint8_t *s;
	size_t n;
	int r;

	m.code = (uint32_t)get_be(&c, 4);
	r = get_line(&c, &s, &n);
	if (r < 0)
		return r;
	memcpy(m.msg, s, n);
	m.msg[n] = '\0';
	*ret_m = m;
	return 0;
}

int proto_encode_bye(uint8_t *out, size_t cap)
{
	if (cap < PROTO_HDR_LEN)
		return -ENOBUFS;
	proto_encode_hdr(out, PROTO_BYE, 0);
	return PROTO_HDR_LEN;
}

int proto_encode_cutover(uint8_t *out, size_t cap, const struct proto_cutover *m)
{
	struct cur c = begin(out, cap);

	if (m->phase < PROTO_CUT_REQUEST || m->phase > PROTO_CUT_DONE || m->verify > PROTO_VERIFY_FULL)
		return -EINVAL;
	put_u8(&c, m->phase);
	put_u8(&c, m->verify);
	put_be(&c, m->frozen_ns, 8);
	return finish(&c, out, PROTO_CUTOVER);
}

int proto_decode_cutover(const uint8_t *p, size_t len, struct proto_cutover *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_cutover m;
	int r;

	m.phase = (uint8_t)get_be(&c, 1);
	m.verify = (uint8_t)get_be(&c, 1);
	m.frozen_ns = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	if (m.phase < PROTO_CUT_REQUEST || m.phase > PROTO_CUT_DONE || m.verify > PROTO_VERIFY_FULL)
		return -EPROTO;
	*ret_m = m;
	return 0;
}

static bool status_valid(const struct proto_status *m)
{
	return m->phase >= PROTO_PHASE_COPYING && m->phase <= PROTO_PHASE_FAULTED &&
	       m->tracker <= PROTO_TRACKER_MAX && m->paused <= 1 && m->active <= 1 &&
	       m->bytes_done <= m->bytes_total;
}

int proto_encode_status(uint8_t *out, size_t cap, const struct proto_status *m)
{
	struct cur c = begin(out, cap);

	if (!status_valid(m))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_u8(&c, m->phase);
	put_u8(&c, m->tracker);
	put_u8(&c, m->paused);
	put_u8(&c, m->active);
	put_be(&c, m->epoch, 8);
	put_be(&c, m->bytes_done, 8);
	put_be(&c, m->bytes_total, 8);
	put_be(&c, m->backlog_bytes, 8);
	put_be(&c, m->churn_bps, 8);
	put_be(&c, m->throughput_bps, 8);
	put_be(&c, m->rate_limit_bps, 8);
	return finish(&c, out, PROTO_STATUS);
}

int proto_decode_status(const uint8_t *p, size_t len, struct proto_status *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_status m;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.phase = (uint8_t)get_be(&c, 1);
	m.tracker = (uint8_t)get_be(&c, 1);
	m.paused = (uint8_t)get_be(&c, 1);
	m.active = (uint8_t)get_be(&c, 1);
	m.epoch = get_be(&c, 8);
	m.bytes_done = get_be(&c, 8);
	m.bytes_total = get_be(&c, 8);
	m.backlog_bytes = get_be(&c, 8);
	m.churn_bps = get_be(&c, 8);
	m.throughput_bps = get_be(&c, 8);
	m.rate_limit_bps = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	if (!status_valid(&m))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

static bool disk_fault_valid(const struct proto_disk_fault *m, size_t n)
{
	return m->abandoned <= 1 && m->code > 0 && m->code < 4096 && n > 0 && n <= PROTO_MSG_MAX;
}

int proto_encode_disk_fault(uint8_t *out, size_t cap, const struct proto_disk_fault *m)
{
	struct cur c = begin(out, cap);
	size_t n = strnlen(m->msg, PROTO_MSG_MAX);

	if (!disk_fault_valid(m, n))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_u8(&c, m->abandoned);
	put_be(&c, m->code, 4);
	put_be(&c, m->epoch, 8);
	/* One printable line: the operator sees it as the disk's error. */
	put_line(&c, m->msg, n);
	return finish(&c, out, PROTO_DISK_FAULT);
}

int proto_decode_disk_fault(const uint8_t *p, size_t len, struct proto_disk_fault *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_disk_fault m;
	const uint8_t *s;
	size_t n;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.abandoned = (uint8_t)get_be(&c, 1);
	m.code = (uint32_t)get_be(&c, 4);
	m.epoch = get_be(&c, 8);
	r = get_line(&c, &s, &n);
	if (r < 0)
		return r;
	if (!disk_fault_valid(&m, n))
		return -EPROTO;
	memcpy(m.msg, s, n);
	m.msg[n] = '\0';
	*ret_m = m;
	return 0;
}

/* Sizes as DISK's: near 2^63 a size cannot be an off_t on the receiver. */
static bool disk_size_valid(uint64_t size)
{
	return size > 0 && size <= (UINT64_C(1) << 62);
}

int proto_encode_disk_grow(uint8_t *out, size_t cap, const struct proto_disk_grow *m)
{
	struct cur c = begin(out, cap);

	if (!disk_size_valid(m->size))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->epoch, 8);
	put_be(&c, m->size, 8);
	return finish(&c, out, PROTO_DISK_GROW);
}

int proto_decode_disk_grow(const uint8_t *p, size_t len, struct proto_disk_grow *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_disk_grow m;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.epoch = get_be(&c, 8);
	m.size = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	if (!disk_size_valid(m.size))
		return -EPROTO;
	*ret_m = m;
	return 0;
}

/* Grown (code 0) says nothing more; a refusal says why, in one line. */
static bool disk_grown_valid(const struct proto_disk_grown *m, size_t n)
{
	return m->code < 4096 && disk_size_valid(m->size) && (m->code == 0) == (n == 0) &&
	       n <= PROTO_MSG_MAX;
}

int proto_encode_disk_grown(uint8_t *out, size_t cap, const struct proto_disk_grown *m)
{
	struct cur c = begin(out, cap);
	size_t n = strnlen(m->msg, PROTO_MSG_MAX + 1);

	if (!disk_grown_valid(m, n))
		return -EINVAL;
	put_be(&c, m->disk_no, 2);
	put_be(&c, m->code, 4);
	put_be(&c, m->size, 8);
	put_line(&c, m->msg, n);
	return finish(&c, out, PROTO_DISK_GROWN);
}

int proto_decode_disk_grown(const uint8_t *p, size_t len, struct proto_disk_grown *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_disk_grown m;
	const uint8_t *s;
	size_t n;
	int r;

	m.disk_no = (uint16_t)get_be(&c, 2);
	m.code = (uint32_t)get_be(&c, 4);
	m.size = get_be(&c, 8);
	r = get_line(&c, &s, &n);
	if (r < 0)
		return r;
	if (!disk_grown_valid(&m, n))
		return -EPROTO;
	memcpy(m.msg, s, n);
	m.msg[n] = '\0';
	*ret_m = m;
	return 0;
}

static bool control_valid(const struct proto_control *m)
{
	return (m->op == PROTO_CTL_PAUSE || m->op == PROTO_CTL_RESUME || m->op == PROTO_CTL_RATE) &&
	       (m->op == PROTO_CTL_RATE || m->rate_bps == 0);
}

int proto_encode_control(uint8_t *out, size_t cap, const struct proto_control *m)
{
	struct cur c = begin(out, cap);

	if (!control_valid(m))
		return -EINVAL;
	put_u8(&c, m->op);
	put_be(&c, m->rate_bps, 8);
	return finish(&c, out, PROTO_CONTROL);
}

int proto_decode_control(const uint8_t *p, size_t len, struct proto_control *ret_m)
{
	struct cur c = { .r = p, .left = len };
	struct proto_control m;
	int r;

	m.op = (uint8_t)get_be(&c, 1);
	m.rate_bps = get_be(&c, 8);
	r = done(&c);
	if (r < 0)
		return r;
	if (!control_valid(&m))
		return -EPROTO;
	*ret_m = m;
	return 0;
}
