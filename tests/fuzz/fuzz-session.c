// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for the receiver's session state machine: each input is a sequence of
 * an agent's moves (DATA, ZERO and PATCH frames over chunk sizes of 4 KiB to 1 MiB, epoch
 * ends with right and wrong roots, resumes that send what differs, reconnects, a source
 * resized) played against the real session code (rcv_session_run on its own thread, as
 * the receiver runs it) over real TLS 1.3 on a socketpair, writing a real file target.
 * It checks what the receiver promises: an acknowledged match of the right root means the
 * target holds the source; a wrong root is never acknowledged as a match; and afterwards a
 * record saying verified=1 describes the target (its size, the Merkle root and the .fps
 * file recomputed from the file's content). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/codec.h"
#include "common/fp.h"
#include "common/log.h"
#include "common/net.h"
#include "common/proto.h"
#include "common/tls.h"
#include "common/util.h"
#include "receiver/enrol.h"
#include "receiver/record.h"
#include "receiver/registry.h"
#include "receiver/session.h"

#include "fuzz-driver.h"

#define DISK_MAX (2u << 20)  /* the largest source an input may describe */
#define CHUNKS_MAX 16
#define OPS_MAX 48

/* Every input costs TLS handshakes and fsyncs: a smoke run tries fewer of them. */
const uint64_t tern_fuzz_default_runs = 250;

static void require(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz-session: %s\n", what);
		abort();
	}
}

/* What stays for the whole process: the state directory with its credentials, both TLS
 * contexts and the receiver with its one target. */
static struct {
	bool ready;
	char dir[PATH_MAX - 64];
	char target[PATH_MAX], state[PATH_MAX], fps[PATH_MAX];
	char id[2];
	SSL_CTX *cctx;
	struct rcv_server srv;
	struct rcv_target tgt;
	struct codec *codec;
	uint8_t frame[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];
	uint8_t zbuf[PROTO_MAX_PAYLOAD];
} G;

static void remove_dir(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) < 0 && errno == EISDIR)
			remove_dir(path);
	}
	closedir(d);
	rmdir(dir);
}

static void teardown(void)
{
	if (G.ready)
		remove_dir(G.dir);
}

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char bundle[PATH_MAX];
	bool created;
	int r;

	if (G.ready)
		return;
	/* The receiver's refusals are the point here, not news: keep them quiet. */
	log_setup("fuzz-session", getenv("TERN_FUZZ_VERBOSE") ? LOG_LVL_DEBUG :
		  (enum log_level)(LOG_LVL_ERROR - 1));
	signal(SIGPIPE, SIG_IGN);
	snprintf(G.dir, sizeof(G.dir), "%s/tern-fuzz-session.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	require(mkdtemp(G.dir) != NULL, "mkdtemp");
	G.ready = true;
	atexit(teardown);
	require(tls_init_state(G.dir, &created) == 0, "tls_init_state");
	/* The bundle is the shared one, as serve marks it: else HELLO is refused. */
	require(enrol_shared_ensure(G.dir, &G.srv.shared) == 0, "enrol_shared_ensure");
	snprintf(bundle, sizeof(bundle), "%s/%s", G.dir, TLS_AGENT_BUNDLE);
	G.cctx = tls_client_ctx(bundle, &r);
	G.srv.ctx = tls_server_ctx(G.dir, &r);
	require(G.cctx && G.srv.ctx, "TLS contexts");
	snprintf(G.id, sizeof(G.id), "d");
	snprintf(G.target, sizeof(G.target), "%s/target.img", G.dir);
	snprintf(G.state, sizeof(G.state), "%s/disks/d.state", G.dir);
	snprintf(G.fps, sizeof(G.fps), "%s/disks/d.fps", G.dir);
	G.tgt.id = G.id;
	G.tgt.path = G.target;
	G.srv.state_dir = G.dir;
	G.srv.targets = &G.tgt;
	G.srv.ntargets = 1;
	G.srv.fp_budget = 64u << 20;
	G.srv.reg = reg_new();
	G.codec = codec_new(1);
	require(G.srv.reg && G.codec, "out of memory");
	pthread_mutex_init(&G.srv.lock, NULL);
	pthread_cond_init(&G.srv.idle, NULL);
	pthread_cond_init(&G.srv.cut_cv, NULL);
}

struct input {
	const uint8_t *p;
	size_t n, i;
};

static uint8_t next(struct input *in)
{
	return in->i < in->n ? in->p[in->i++] : 0;
}

/* The agent: its source, what the receiver said it holds, and the connection. */
struct agent {
	struct conn *c;
	pthread_t tid;
	bool running, dead;
	uint32_t cs;
	uint64_t size, nchunks, epoch;
	uint8_t src[DISK_MAX];
	struct fp rfps[CHUNKS_MAX];
	bool rknown;
};

static void *session_thread(void *arg)
{
	rcv_session_run(&G.srv, NULL, (int)(intptr_t)arg, "fuzz");
	return NULL;
}

/* Picks a chunk size of 4 KiB to 1 MiB and a size of up to CHUNKS_MAX chunks (at most
 * DISK_MAX bytes), the last chunk possibly short and off any block boundary. */
static void geometry(struct agent *a, struct input *in)
{
	uint64_t old = a->size, max;

	a->cs = 4096u << (next(in) % 9);
	max = MIN((uint64_t)CHUNKS_MAX, DISK_MAX / a->cs);
	a->nchunks = 1 + next(in) % max;
	a->size = a->nchunks * a->cs - (next(in) * UINT64_C(4099)) % a->cs;
	if (a->size > old)
		memset(a->src + old, 0, a->size - old);
}

static uint64_t chunk_len(const struct agent *a, uint64_t i)
{
	return MIN((uint64_t)a->cs, a->size - i * a->cs);
}

static void src_fp(const struct agent *a, uint64_t i, struct fp *ret)
{
	fp_compute(a->src + i * a->cs, chunk_len(a, i), ret);
}

/* Fills len bytes with a pattern of seed; seed 0 is zeros. */
static void pattern(uint8_t *p, size_t len, uint8_t seed)
{
	memset(p, seed, len);
	for (size_t x = 0; seed && x < len; x += 512)
		p[x] = (uint8_t)(seed * 31 + x / 512);
}

static int send_frame(struct agent *a, size_t n)
{
	if (a->dead || conn_send(a->c, G.frame, n) < 0) {
		a->dead = true;
		return -EPIPE;
	}
	return 0;
}

/* The receiver's next frame other than CONTROL; dead on ERROR or a lost link. */
static int recv_frame(struct agent *a, struct proto_hdr *h)
{
	while (!a->dead) {
		if (conn_recv(a->c, h, G.frame, sizeof(G.frame)) < 0 || h->type == PROTO_ERROR)
			break;
		if (h->type != PROTO_CONTROL)
			return 0;
	}
	a->dead = true;
	return -EPROTO;
}

static void hang_up(struct agent *a, bool bye)
{
	if (!a->running)
		return;
	if (bye && !a->dead) {
		int n = proto_encode_bye(G.frame, sizeof(G.frame));

		if (n > 0)
			send_frame(a, (size_t)n);
	}
	a->c = conn_free(a->c);
	pthread_join(a->tid, NULL);
	a->running = false;
}

/* Connects as the real agent does: handshake, HELLO, DISK, then the FPS frames. */
static void dial(struct agent *a)
{
	struct proto_hello hello = { .chunk_size = a->cs, .name = "fuzz" };
	struct proto_disk disk = { .disk_no = 0, .logical_block = 512, .size = a->size, .id = "d" };
	struct proto_hdr h;
	char why[256];
	int sv[2], r, n;

	require(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
	require(pthread_create(&a->tid, NULL, session_thread, (void *)(intptr_t)sv[0]) == 0,
		"pthread_create");
	a->running = true;
	a->dead = false;
	a->rknown = false;
	a->c = conn_handshake(G.cctx, sv[1], false, 10000, &r, why, sizeof(why));
	require(a->c != NULL, why);
	n = proto_encode_hello(G.frame, sizeof(G.frame), &hello);
	if (n < 0 || send_frame(a, (size_t)n) < 0 || recv_frame(a, &h) < 0 || h.type != PROTO_WELCOME)
		goto dead;
	n = proto_encode_disk(G.frame, sizeof(G.frame), &disk);
	if (n < 0 || send_frame(a, (size_t)n) < 0 || recv_frame(a, &h) < 0 || h.type != PROTO_DISK_OK)
		goto dead;
	for (uint64_t have = 0;;) {
		struct proto_fps f;

		if (recv_frame(a, &h) < 0 || h.type != PROTO_FPS ||
		    proto_decode_fps(G.frame, h.len, &f) < 0)
			goto dead;
		a->epoch = f.next_epoch;
		if (f.count == 0)
			break;
		require(f.first_chunk == have && have + f.count <= a->nchunks, "FPS frames out of order");
		memcpy(&a->rfps[have], f.fps, (size_t)f.count * FP_LEN);
		have += f.count;
		a->rknown = true;
		if (have == a->nchunks)
			break;
	}
	return;
dead:
	a->dead = true;
}

/* DATA of chunks [i, i+k): raw, or zstd when it saves; corrupt flips a byte after the
 * fingerprints were taken, which the receiver must refuse. */
static void send_data(struct agent *a, uint64_t i, uint64_t k, bool zstd, bool corrupt)
{
	struct fp fps[CHUNKS_MAX];
	uint64_t off = i * a->cs, len = MIN(k * a->cs, a->size - off);
	struct proto_data m = { .disk_no = 0, .encoding = PROTO_ENC_RAW, .nchunks = (uint32_t)k,
				.plain_len = (uint32_t)len, .offset = off };
	long z = 0;
	int head;

	for (uint64_t j = 0; j < k; j++)
		src_fp(a, i + j, &fps[j]);
	if (zstd)
		z = codec_compress(G.codec, G.zbuf, sizeof(G.zbuf), a->src + off, len);
	m.encoding = z > 0 ? PROTO_ENC_ZSTD : PROTO_ENC_RAW;
	m.payload_len = z > 0 ? (uint32_t)z : (uint32_t)len;
	head = proto_encode_data_head(G.frame, sizeof(G.frame), &m);
	require(head > 0, "encoding DATA");
	memcpy(G.frame + head, fps, k * FP_LEN);
	memcpy(G.frame + head + k * FP_LEN, z > 0 ? G.zbuf : a->src + off, m.payload_len);
	if (corrupt)
		G.frame[head + k * FP_LEN + m.payload_len / 2] ^= 0x01;
	send_frame(a, (size_t)head + k * FP_LEN + m.payload_len);
}

static void send_zero(struct agent *a, uint64_t i, uint64_t k)
{
	struct proto_zero z = { .disk_no = 0, .offset = i * a->cs };
	int n;

	z.length = MIN(k * a->cs, a->size - z.offset);
	memset(a->src + z.offset, 0, z.length);
	n = proto_encode_zero(G.frame, sizeof(G.frame), &z);
	require(n > 0, "encoding ZERO");
	send_frame(a, (size_t)n);
}

/* Changes the blocks of chunk i that mask names and sends them as a PATCH with the new
 * chunk's fingerprint. The receiver lays them over what its target holds. */
static void send_patch(struct agent *a, uint64_t i, uint64_t mask, unsigned pick, uint8_t seed)
{
	unsigned log_cs = (unsigned)__builtin_ctz(a->cs), lo = MAX(9u, log_cs - 6);
	unsigned shift = lo + pick % (log_cs - lo), nb = a->cs >> shift;
	struct proto_patch m = { .disk_no = 0, .encoding = PROTO_ENC_RAW, .block_shift = (uint8_t)shift,
				 .offset = i * a->cs };
	size_t bs = (size_t)1 << shift, k = 0;
	int head;

	if (a->cs > PROTO_CHUNK_MAX / 2 || chunk_len(a, i) != a->cs)
		return;
	if (nb < 64)
		mask &= (UINT64_C(1) << nb) - 1;
	if (mask == 0 || (unsigned)__builtin_popcountll(mask) == nb)
		mask = 1;
	m.mask = mask;
	m.plain_len = (uint32_t)((size_t)__builtin_popcountll(mask) * bs);
	m.payload_len = m.plain_len;
	head = proto_encode_patch_head(G.frame, sizeof(G.frame), &m);
	/* The encoder wrote the fingerprint field: lay the blocks, then fingerprint and
	 * encode again with the chunk's new fingerprint. */
	require(head > 0, "encoding PATCH");
	for (unsigned b = 0; b < nb; b++) {
		if (!(mask & (UINT64_C(1) << b)))
			continue;
		pattern(a->src + m.offset + b * bs, bs, (uint8_t)(seed + b));
		memcpy(G.frame + head + k * bs, a->src + m.offset + b * bs, bs);
		k++;
	}
	src_fp(a, i, &m.fp);
	require(proto_encode_patch_head(G.frame, sizeof(G.frame), &m) == head, "encoding PATCH");
	send_frame(a, (size_t)head + m.plain_len);
}

static void src_root(const struct agent *a, struct fp *ret)
{
	struct fp_merkle m;
	struct fp f;

	fp_merkle_init(&m);
	for (uint64_t i = 0; i < a->nchunks; i++) {
		src_fp(a, i, &f);
		fp_merkle_add(&m, &f);
	}
	fp_merkle_final(&m, ret);
}

/* Reads the target as it is now; require()s that it is exactly the source. */
static void target_is_source(const struct agent *a)
{
	static uint8_t buf[DISK_MAX];
	struct stat st;
	int fd = open(G.target, O_RDONLY | O_CLOEXEC);

	require(fd >= 0 && fstat(fd, &st) == 0, "cannot open the target");
	require((uint64_t)st.st_size == a->size, "the target's size is not the source's");
	require(pread_full(fd, buf, a->size, 0) == 0, "cannot read the target");
	close(fd);
	require(memcmp(buf, a->src, a->size) == 0,
		"EPOCH_ACK said match for the source's root, but the target differs");
}

static void end_epoch(struct agent *a, bool wrong)
{
	struct proto_epoch_end e = { .disk_no = 0, .epoch = a->epoch, .nchunks = a->nchunks };
	struct proto_epoch_ack ack;
	struct proto_hdr h;
	int n;

	src_root(a, &e.root);
	if (wrong)
		e.root.b[3] ^= 0x10;
	n = proto_encode_epoch_end(G.frame, sizeof(G.frame), &e);
	require(n > 0, "encoding EPOCH_END");
	if (send_frame(a, (size_t)n) < 0 || recv_frame(a, &h) < 0)
		return;
	require(h.type == PROTO_EPOCH_ACK && proto_decode_epoch_ack(G.frame, h.len, &ack) == 0,
		"no EPOCH_ACK after EPOCH_END");
	require(ack.epoch == a->epoch, "EPOCH_ACK for another epoch");
	require(!wrong || !ack.match, "a wrong root was acknowledged as a match");
	if (ack.match) {
		target_is_source(a);
		for (uint64_t i = 0; i < a->nchunks; i++)
			src_fp(a, i, &a->rfps[i]);
		a->rknown = true;
	}
	a->epoch++;
}

/* The source grows by up to what DISK_MAX allows (any size, the last chunk possibly
 * short) and the agent asks the receiver to follow, as between two epochs. When it does,
 * the receiver holds zeros past the old end, and the old short last chunk is unknown. */
static void grow(struct agent *a, uint8_t x)
{
	uint64_t max = MIN((uint64_t)CHUNKS_MAX, DISK_MAX / a->cs) * a->cs, old = a->size, on;
	struct proto_disk_grow g = { .disk_no = 0, .epoch = a->epoch };
	struct proto_disk_grown ans;
	struct proto_hdr h;
	struct stat st;
	int n;

	if (a->dead || old >= max)
		return;
	g.size = old + 1 + (x * UINT64_C(4099)) % (max - old);
	n = proto_encode_disk_grow(G.frame, sizeof(G.frame), &g);
	require(n > 0, "encoding DISK_GROW");
	/* Refused (ERROR) when a chunk of the open epoch came already: the link is dead. */
	if (send_frame(a, (size_t)n) < 0 || recv_frame(a, &h) < 0)
		return;
	require(h.type == PROTO_DISK_GROWN && proto_decode_disk_grown(G.frame, h.len, &ans) == 0,
		"no DISK_GROWN after DISK_GROW");
	if (ans.code != 0) {
		require(ans.size == old, "a refused growth changed the disk's size");
		return;
	}
	require(ans.size == g.size, "DISK_GROWN for another size");
	/* Grown means the target holds the new size now, zeros past the old end. */
	require(stat(G.target, &st) == 0 && (uint64_t)st.st_size == g.size,
		"DISK_GROWN said grown, but the target is not the new size");
	on = a->nchunks;
	memset(a->src + old, 0, g.size - old);
	a->size = g.size;
	a->nchunks = DIV_ROUND_UP(a->size, a->cs);
	for (uint64_t i = on; a->rknown && i < a->nchunks; i++)
		fp_zero((size_t)chunk_len(a, i), &a->rfps[i]);
	if (a->rknown && old % a->cs)
		memset(&a->rfps[on - 1], 0xff, sizeof(a->rfps[on - 1]));
}

/* What the real agent does after connecting: send every chunk that differs from what the
 * receiver reported (all of them when it knows nothing), zero runs as ZERO, then end. */
static void sync_epoch(struct agent *a, bool zstd)
{
	for (uint64_t i = 0; i < a->nchunks && !a->dead; i++) {
		struct fp f;

		src_fp(a, i, &f);
		if (a->rknown && fp_equal(&f, &a->rfps[i]))
			continue;
		if (mem_is_zero(a->src + i * a->cs, chunk_len(a, i)))
			send_zero(a, i, 1);
		else
			send_data(a, i, 1, zstd, false);
	}
	end_epoch(a, false);
}

/* The invariant a sequence must leave: a record saying verified=1 describes the target
 * file exactly (size, root over the recomputed chunk fingerprints, the .fps file). */
static void check_record(void)
{
	static uint8_t buf[1u << 20];
	struct disk_record rec;
	struct fp_merkle m;
	struct fp root, f, saved;
	struct stat st;
	int fd, ffd;

	require(rec_load(G.dir, G.id, &rec) == 0, "cannot read the record");
	if (!rec.present || !rec.verified)
		return;
	require(rec.chunk_size >= 4096, "a verified record with a bad chunk size");
	fd = open(G.target, O_RDONLY | O_CLOEXEC);
	require(fd >= 0 && fstat(fd, &st) == 0, "a verified record without a target");
	require((uint64_t)st.st_size == rec.size, "the target's size is not the record's");
	ffd = open(G.fps, O_RDONLY | O_CLOEXEC);
	require(ffd >= 0, "a verified record without its .fps file");
	fp_merkle_init(&m);
	for (uint64_t off = 0, i = 0; off < rec.size; off += rec.chunk_size, i++) {
		size_t len = (size_t)MIN(rec.chunk_size, rec.size - off);

		require(pread_full(fd, buf, len, off) == 0, "cannot read the target");
		fp_compute(buf, len, &f);
		require(pread_full(ffd, &saved, FP_LEN, i * FP_LEN) == 0, "the .fps file is short");
		require(fp_equal(&f, &saved), "the .fps file does not describe the target");
		fp_merkle_add(&m, &f);
	}
	fp_merkle_final(&m, &root);
	require(fp_equal(&root, &rec.root), "a record says verified=1, but the target's root differs");
	close(fd);
	close(ffd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct agent a;
	struct input in = { .p = data, .n = size };
	unsigned ops = 0;

	setup();
	/* A receiver meeting this disk for the first time. */
	unlink(G.target);
	unlink(G.state);
	unlink(G.fps);
	G.tgt.seen = G.tgt.fault_noted = false;
	G.tgt.last_end[0] = '\0';
	a.size = 0;
	geometry(&a, &in);
	dial(&a);
	while (in.i < in.n && ops++ < OPS_MAX) {
		uint8_t op = next(&in), x = next(&in), y = next(&in);
		uint64_t i = x % a.nchunks, k = 1 + y % MIN((uint64_t)3, a.nchunks - i);

		if (a.dead && op % 9 != 6) {
			hang_up(&a, false);
			dial(&a);
		}
		switch (op % 9) {
		case 0: /* the source changes here and the change is sent */
		case 1:
			if (k * a.cs > PROTO_CHUNK_MAX)
				k = 1;
			for (uint64_t j = 0; j < k; j++)
				pattern(a.src + (i + j) * a.cs, chunk_len(&a, i + j), (uint8_t)(op / 9 + j));
			send_data(&a, i, k, y & 0x80, op >= 0xf0);
			break;
		case 2:
			send_zero(&a, i, k);
			break;
		case 3: {
			uint64_t mask = 0;

			for (int b = 0; b < 8; b++)
				mask = mask << 8 | next(&in);
			send_patch(&a, i, mask, y, (uint8_t)(op / 9));
			break;
		}
		case 4:
			end_epoch(&a, false);
			break;
		case 5:
			end_epoch(&a, true);
			break;
		case 6: /* the link drops or the agent says BYE; it may come back resized */
			hang_up(&a, y & 1);
			if (y & 2)
				geometry(&a, &in);
			dial(&a);
			break;
		case 7: /* the source changes and nobody sends it (yet), or it grows */
			if (y & 0x40)
				grow(&a, x);
			else
				pattern(a.src + i * a.cs, chunk_len(&a, i), (uint8_t)(op / 9));
			break;
		case 8:
			sync_epoch(&a, y & 1);
			break;
		}
	}
	hang_up(&a, false);
	check_record();
	return 0;
}

/* Seeds: whole agent lives across the chunk sizes, and the sequence that once left a
 * stale verified record (a verified copy, an empty epoch with a wrong root, a chunk
 * rewritten, the source back to what the record vouched for, a lost link, a resume). */
void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	/* op bytes: (op % 9) is the move, op / 9 its pattern; then x, y (and a mask). */
	static const uint8_t stale[] = {
		4, 3, 0,                /* 64 KiB chunks, 4 of them */
		7 + 9 * 5, 0, 0,        /* chunk 0 becomes pattern 5 */
		8, 0, 0,                /* epoch 0: verified */
		5, 0, 0,                /* epoch 1: wrong root, nothing written */
		0 + 9 * 6, 0, 0,        /* chunk 0 rewritten as pattern 6 */
		7 + 9 * 5, 0, 0,        /* the source goes back to pattern 5 */
		6, 0, 0,                /* the link drops */
		8, 0, 0,                /* resume: send what differs, end */
	};
	static const uint8_t small_patches[] = {
		0, 7, 5,                /* 4 KiB chunks, 8 of them, a short last one */
		8, 0, 0,
		3 + 9 * 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0x5a,
		3 + 9 * 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0x03,
		4, 0, 0,
		2, 1, 2,
		1 + 9 * 4, 5, 0x81,
		4, 0, 0,
		6, 1, 0,
		8, 0, 1,
	};
	static const uint8_t big_resized[] = {
		8, 1, 0,                /* 1 MiB chunks, 2 of them */
		0 + 9 * 7, 1, 0,
		2, 0, 0,
		4, 0, 0,
		6, 0, 3, 2, 5, 9,       /* back resized: 16 KiB chunks, 6, a short last one */
		8, 0, 0,
		5, 0, 0,
		1 + 9 * 9, 3, 2,
		6, 0, 1,
		8, 0, 0,
	};
	static const uint8_t refusals[] = {
		3, 5, 0,
		8, 0, 0,
		0 + 9 * 3, 2, 0,
		0 + 9 * 4, 2, 0,        /* the same chunk twice in one epoch: refused */
		8, 0, 0,
		0xf3, 1, 0,             /* a corrupt extent: refused */
		4, 0, 0,
		8, 0, 0,
	};

	static const uint8_t grown[] = {
		1, 5, 3,                /* 8 KiB chunks, 6 of them, a short last one */
		0 + 9 * 2, 5, 0,
		8, 0, 0,                /* epoch 0: verified */
		7, 7, 0x40,             /* the source grows, the receiver follows */
		0 + 9 * 3, 7, 0,        /* a chunk in the new range */
		8, 0, 0,                /* the growth's epoch: what differs, verified */
		7, 200, 0x40,           /* grows again */
		0 + 9 * 4, 1, 0,        /* a chunk of this epoch, then a growth: refused */
		7, 3, 0x40,
		8, 0, 0,                /* resume at the grown size */
	};

	add(stale, sizeof(stale));
	add(grown, sizeof(grown));
	add(small_patches, sizeof(small_patches));
	add(big_resized, sizeof(big_resized));
	add(refusals, sizeof(refusals));
}
