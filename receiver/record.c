// SPDX-License-Identifier: GPL-2.0-only
/* A disk's record and fingerprints file: format, paths, strict load, atomic save, the
 * queries over all records, and the reconcile read; see record.h. */
#include "receiver/record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/proto.h"

#define REC_SUFFIX ".state"
#define FPS_SUFFIX ".fps"
#define CKPT_SUFFIX ".ckpt"
#define REC_DIR "disks"
/* Fingerprints written per write(2) by rec_fps_save: 64 KiB. */
#define FPS_BLOCK 4096
/* A checkpoint: a 64-byte head (magic, version, chunk size, disk size, chunks, tracking
 * generation, held count, 16 zero bytes), the held bitmap, the fingerprints of the held
 * chunks only, in chunk order (so an empty one costs a bit a chunk, not 16 bytes), then a
 * 16-byte digest: the Merkle root of the XXH3-128 of each piece written (the head, the
 * bitmap in CKPT_PIECE pieces, the fingerprints in FPS_BLOCK pieces). */
#define CKPT_MAGIC "TERNCKPT"
#define CKPT_VERSION 1
#define CKPT_HEAD 64
#define CKPT_PIECE (64u << 10)

/* The keys of a record, in the order rec_save writes them; each appears once. */
enum rec_key {
	K_DISK, K_AGENT, K_TARGET, K_SIZE, K_CHUNK_SIZE, K_CHUNKS, K_EPOCH, K_ROOT, K_VERIFIED,
	K_CUTOVER, K_EVENT, K_COUNT
};

static const char *const key_name[K_COUNT] = {
	[K_DISK] = "disk", [K_AGENT] = "agent", [K_TARGET] = "target", [K_SIZE] = "size",
	[K_CHUNK_SIZE] = "chunk_size", [K_CHUNKS] = "chunks", [K_EPOCH] = "epoch",
	[K_ROOT] = "root", [K_VERIFIED] = "verified", [K_CUTOVER] = "cutover",
	[K_EVENT] = "event",
};

/* Every key, each once; the event, last and possibly empty, is there so that a record cut
 * short at a line's end still lacks a line. */
#define REQUIRED_KEYS ((1u << K_COUNT) - 1)

/* The registry and the session add one to a record's epoch. */
#define EPOCH_MAX (UINT64_MAX - 2)

static int disks_dir(const char *state_dir, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/" REC_DIR, state_dir) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* STATE_DIR/disks/ID.SUFFIX; the id is a name, so it cannot leave the directory. */
static int file_path(const char *state_dir, const char *id, const char *suffix, char *buf,
		     size_t len)
{
	if (!name_is_valid(id, strlen(id)))
		return -EINVAL;
	if (snprintf(buf, len, "%s/" REC_DIR "/%s%s", state_dir, id, suffix) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* A number as rec_save writes it: decimal, no sign, no leading zero. */
static bool parse_num(const char *v, uint64_t min, uint64_t max, uint64_t *ret)
{
	return !(v[0] == '0' && v[1]) && parse_u64(v, min, max, ret) == 0;
}

static bool is_bool(const char *v, bool *ret)
{
	if ((v[0] != '0' && v[0] != '1') || v[1])
		return false;
	*ret = v[0] == '1';
	return true;
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The root as fp_hex writes it: 32 lowercase hex digits. */
static bool parse_root(const char *v, struct fp *ret)
{
	struct fp f;

	if (strlen(v) != 2 * FP_LEN)
		return false;
	for (size_t i = 0; i < FP_LEN; i++) {
		int hi = hex_val(v[2 * i]), lo = hex_val(v[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		f.b[i] = (uint8_t)(hi << 4 | lo);
	}
	*ret = f;
	return true;
}

/* One `key=value` line into rec; false when the key is unknown or the value invalid. */
static bool parse_line(char *line, struct disk_record *rec, uint64_t *chunks,
		       bool *has_root, unsigned *seen)
{
	char *v = strchr(line, '=');
	unsigned k;

	if (!v)
		return false;
	*v++ = '\0';
	for (k = 0; k < K_COUNT; k++)
		if (strcmp(line, key_name[k]) == 0)
			break;
	if (k == K_COUNT || (*seen & (1u << k)))
		return false;
	*seen |= 1u << k;
	switch (k) {
	case K_DISK:
	case K_AGENT: {
		char *dst = k == K_DISK ? rec->disk : rec->agent;

		if (!name_is_valid(v, strlen(v)))
			return false;
		snprintf(dst, NAME_MAX_LEN + 1, "%s", v);
		return true;
	}
	case K_TARGET:
		if (!v[0] || strlen(v) >= sizeof(rec->target))
			return false;
		snprintf(rec->target, sizeof(rec->target), "%s", v);
		return true;
	case K_SIZE:
		return parse_num(v, 0, UINT64_MAX, &rec->size);
	case K_CHUNK_SIZE:
		return parse_num(v, 1, UINT32_MAX, &rec->chunk_size) &&
		       proto_chunk_size_valid((uint32_t)rec->chunk_size);
	case K_CHUNKS:
		return parse_num(v, 0, UINT64_MAX, chunks);
	case K_EPOCH:
		return parse_num(v, 0, EPOCH_MAX, &rec->epoch);
	case K_ROOT:
		*has_root = strcmp(v, "-") != 0;
		return !*has_root || parse_root(v, &rec->root);
	case K_VERIFIED:
		return is_bool(v, &rec->verified);
	case K_CUTOVER:
		return is_bool(v, &rec->cut_over);
	case K_EVENT:
		if (strlen(v) >= sizeof(rec->event))
			return false;
		snprintf(rec->event, sizeof(rec->event), "%s", v);
		return true;
	}
	return false;
}

int rec_parse_file(const char *path, struct disk_record *ret)
{
	struct disk_record *rec = calloc(1, sizeof(*rec));
	char *text = NULL, *line, *nl;
	uint64_t chunks = 0;
	bool has_root = false;
	unsigned seen = 0;
	size_t len = 0;
	int r;

	if (!rec)
		return -ENOMEM;
	r = read_file_all(path, REC_FILE_MAX, &text, &len);
	if (r < 0)
		goto cleanup;
	/* Torn (cut short before its last line ended) or holding a NUL: not a record. */
	r = -EBADMSG;
	if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len))
		goto cleanup;
	for (line = text; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = '\0';
		if (!parse_line(line, rec, &chunks, &has_root, &seen))
			goto cleanup;
	}
	if ((seen & REQUIRED_KEYS) != REQUIRED_KEYS ||
	    chunks != DIV_ROUND_UP(rec->size, rec->chunk_size) || rec->verified != has_root)
		goto cleanup;
	rec->present = true;
	*ret = *rec;
	r = 0;
cleanup:
	free(text);
	free(rec);
	return r;
}

int rec_load(const char *state_dir, const char *id, struct disk_record *ret)
{
	char path[4096];
	struct disk_record rec;
	int r;

	r = file_path(state_dir, id, REC_SUFFIX, path, sizeof(path));
	if (r < 0)
		return r;
	r = rec_parse_file(path, &rec);
	if (r == -ENOENT) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	if (r < 0)
		return r;
	/* A record under another disk's name was put there by hand: it vouches for nothing. */
	if (strcmp(rec.disk, id) != 0)
		return -EBADMSG;
	*ret = rec;
	return 0;
}

int rec_save(const char *state_dir, const struct disk_record *rec)
{
	char path[4096], dir[4096], *text = NULL, hex[2 * FP_LEN + 1];
	int n, r;

	if (!name_is_valid(rec->agent, strnlen(rec->agent, sizeof(rec->agent))) ||
	    !rec->target[0] || strnlen(rec->target, sizeof(rec->target)) >= sizeof(rec->target) ||
	    strchr(rec->target, '\n') ||
	    strnlen(rec->event, sizeof(rec->event)) >= sizeof(rec->event) ||
	    strchr(rec->event, '\n') || rec->chunk_size > UINT32_MAX ||
	    !proto_chunk_size_valid((uint32_t)rec->chunk_size) || rec->epoch > EPOCH_MAX)
		return -EINVAL;
	r = file_path(state_dir, rec->disk, REC_SUFFIX, path, sizeof(path));
	if (r < 0)
		return r;
	r = disks_dir(state_dir, dir, sizeof(dir));
	if (r < 0)
		return r;
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	n = asprintf(&text,
		     "disk=%s\nagent=%s\ntarget=%s\nsize=%" PRIu64 "\nchunk_size=%" PRIu64 "\n"
		     "chunks=%" PRIu64 "\nepoch=%" PRIu64 "\nroot=%s\nverified=%d\ncutover=%d\nevent=%s\n",
		     rec->disk, rec->agent, rec->target, rec->size, rec->chunk_size,
		     DIV_ROUND_UP(rec->size, rec->chunk_size), rec->epoch,
		     rec->verified ? fp_hex(&rec->root, hex) : "-", rec->verified ? 1 : 0,
		     rec->cut_over ? 1 : 0, rec->event);
	if (n < 0)
		return -ENOMEM;
	/* Never written, rather than written and then refused on every read. */
	r = n > REC_FILE_MAX ? -EINVAL : write_file_atomic(path, text, (size_t)n, 0600);
	free(text);
	return r;
}

int rec_foreach(const char *state_dir, rec_visit_fn *fn, void *ctx)
{
	char dir[4096], path[4096 + 256];
	struct disk_record *rec = malloc(sizeof(*rec));
	struct dirent *e;
	DIR *dp = NULL;
	int r;

	if (!rec)
		return -ENOMEM;
	r = disks_dir(state_dir, dir, sizeof(dir));
	if (r < 0)
		goto cleanup;
	dp = opendir(dir);
	if (!dp) {
		r = errno == ENOENT ? 0 : -errno;
		goto cleanup;
	}
	while (r == 0 && (e = readdir(dp))) {
		size_t n = strlen(e->d_name), sn = strlen(REC_SUFFIX);
		char id[256];

		if (n <= sn || strcmp(e->d_name + n - sn, REC_SUFFIX) != 0)
			continue;
		snprintf(id, sizeof(id), "%.*s", (int)(n - sn), e->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (!name_is_valid(id, strlen(id)))
			r = -EINVAL;
		else
			r = rec_parse_file(path, rec);
		if (r == 0 && strcmp(rec->disk, id) != 0)
			r = -EBADMSG;
		r = fn(ctx, id, r, r < 0 ? NULL : rec);
	}
cleanup:
	if (dp)
		closedir(dp);
	free(rec);
	return r;
}

int rec_owner(const char *state_dir, const char *id, char *ret_agent, size_t len)
{
	struct disk_record *rec = malloc(sizeof(*rec));
	int r;

	if (!rec)
		return -ENOMEM;
	r = rec_load(state_dir, id, rec);
	if (r == 0)
		snprintf(ret_agent, len, "%s", rec->agent);
	free(rec);
	return r;
}

struct agent_query {
	const char *name;
	char *disk;
	size_t len;
};

static int visit_agent(void *ctx, const char *id, int r, const struct disk_record *rec)
{
	struct agent_query *q = ctx;

	if (r < 0)
		return r;
	if (strcmp(rec->agent, q->name) != 0)
		return 0;
	snprintf(q->disk, q->len, "%s", id);
	return 1;
}

int rec_disk_of_agent(const char *state_dir, const char *name, char *ret_disk, size_t len)
{
	struct agent_query q = { .name = name, .disk = ret_disk, .len = len };
	int r;

	ret_disk[0] = '\0';
	r = rec_foreach(state_dir, visit_agent, &q);
	return r < 0 ? r : 0;
}

struct vouch_query {
	const char *id, *path;
	struct stat st;
	bool have_st;
	char *other;
	size_t len;
};

static int visit_vouch(void *ctx, const char *id, int r, const struct disk_record *rec)
{
	struct vouch_query *q = ctx;
	struct stat ost;

	if (r < 0 || strcmp(id, q->id) == 0 || !(rec->verified || rec->cut_over))
		return 0;
	if (strcmp(rec->target, q->path) != 0 &&
	    !(q->have_st && stat(rec->target, &ost) == 0 && ost.st_dev == q->st.st_dev &&
	      ost.st_ino == q->st.st_ino))
		return 0;
	snprintf(q->other, q->len, "%s", id);
	return 1;
}

int rec_vouched_elsewhere(const char *state_dir, const char *id, const char *path,
			  char *ret_other, size_t len)
{
	struct vouch_query q = { .id = id, .path = path, .other = ret_other, .len = len };

	q.have_st = stat(path, &q.st) == 0;
	return rec_foreach(state_dir, visit_vouch, &q);
}

/* Makes the temporary file tmp, written through fd (closed here on every path), the file
 * at path: durable first, then renamed over it, then the rename made durable. 0 or -errno;
 * the caller removes tmp on failure. */
static int commit_tmp(int fd, const char *tmp, const char *path)
{
	int r = 0;

	if (fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	return r < 0 ? r : fsync_dir_of(path);
}

int rec_fps_save(const char *state_dir, const char *id, const struct fp *fps,
		 uint64_t nchunks, uint64_t size, uint32_t chunk_size)
{
	static const struct fp zero;
	char path[4096], dir[4096], tmp[4200] = "";
	struct fp *blk = NULL;
	int fd = -1, r;

	r = file_path(state_dir, id, FPS_SUFFIX, path, sizeof(path));
	if (r == 0)
		r = disks_dir(state_dir, dir, sizeof(dir));
	if (r == 0)
		r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	blk = malloc(FPS_BLOCK * sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		goto fail;
	}
	for (uint64_t i = 0; i < nchunks;) {
		size_t k = (size_t)MIN((uint64_t)FPS_BLOCK, nchunks - i);

		for (size_t j = 0; j < k; j++) {
			blk[j] = fps[i + j];
			if (memcmp(&blk[j], &zero, sizeof(zero)) == 0)
				fp_zero((size_t)MIN((uint64_t)chunk_size, size - (i + j) * chunk_size),
					&blk[j]);
		}
		r = write_full(fd, blk, k * FP_LEN);
		if (r < 0)
			goto fail;
		i += k;
	}
	r = commit_tmp(fd, tmp, path);
	fd = -1;
	if (r < 0)
		goto fail;
	free(blk);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	free(blk);
	return r;
}

int rec_fps_load(const char *state_dir, const char *id, struct fp *fps, uint64_t nchunks)
{
	char path[4096];
	struct stat st;
	int fd, r;

	r = file_path(state_dir, id, FPS_SUFFIX, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (!S_ISREG(st.st_mode) || nchunks > UINT64_MAX / FP_LEN ||
		 (uint64_t)st.st_size != nchunks * FP_LEN)
		r = -EBADMSG;
	else
		r = pread_full(fd, fps, nchunks * FP_LEN, 0);
	close(fd);
	return r;
}

int rec_reconcile(rec_read_fn *read_fn, void *ctx, uint64_t size, uint32_t chunk_size,
		  struct fp *fps)
{
	static const struct fp zero;
	uint64_t nchunks = DIV_ROUND_UP(size, chunk_size);
	uint8_t *buf;
	int r = 0;

	/* Aligned: the writer reads an O_DIRECT target through it. */
	buf = alloc_aligned(4096, chunk_size);
	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < nchunks; i++) {
		size_t clen = (size_t)MIN((uint64_t)chunk_size, size - i * chunk_size);

		r = read_fn(ctx, buf, clen, i * chunk_size);
		if (r < 0)
			break;
		if (!mem_is_zero(buf, clen))
			fp_compute(buf, clen, &fps[i]);
		else if (memcmp(&fps[i], &zero, sizeof(zero)) != 0)
			fps[i] = zero;
	}
	free(buf);
	return r;
}

/* Big-endian fields of a checkpoint's head. */
static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint64_t held_bytes(uint64_t nchunks)
{
	return DIV_ROUND_UP(nchunks, 8);
}

static bool held_bit(const uint8_t *held, uint64_t i)
{
	return held[i / 8] >> (i % 8) & 1;
}

static uint64_t held_count(const uint8_t *held, uint64_t nchunks)
{
	uint64_t n = 0, full = nchunks / 8;

	for (uint64_t i = 0; i < full; i++)
		n += (uint64_t)__builtin_popcount(held[i]);
	for (uint64_t i = full * 8; i < nchunks; i++)
		n += held_bit(held, i);
	return n;
}

/* Writes len bytes and adds their digest to m. */
static int ckpt_put(int fd, struct fp_merkle *m, const void *buf, size_t len)
{
	struct fp f;

	fp_compute(buf, len, &f);
	fp_merkle_add(m, &f);
	return write_full(fd, buf, len);
}

int rec_ckpt_save(const char *state_dir, const char *id, const struct rec_ckpt *ck,
		  const struct fp *fps, const uint8_t *held)
{
	char path[4096], dir[4096], tmp[4200] = "";
	uint8_t head[CKPT_HEAD] = { 0 };
	uint64_t nchunks, nbytes;
	struct fp_merkle m;
	struct fp *blk = NULL, digest;
	int fd = -1, r;

	if (!proto_chunk_size_valid(ck->chunk_size) || ck->size == 0)
		return -EINVAL;
	nchunks = DIV_ROUND_UP(ck->size, ck->chunk_size);
	nbytes = held_bytes(nchunks);
	/* The bitmap's unused bits are zero and its count is the head's: the loader checks. */
	if ((nchunks % 8 && held[nbytes - 1] >> (nchunks % 8)) ||
	    held_count(held, nchunks) != ck->held)
		return -EINVAL;
	r = file_path(state_dir, id, CKPT_SUFFIX, path, sizeof(path));
	if (r == 0)
		r = disks_dir(state_dir, dir, sizeof(dir));
	if (r == 0)
		r = mkdir_p(dir, 0700);
	if (r < 0)
		return r;
	blk = malloc(FPS_BLOCK * sizeof(*blk));
	if (!blk)
		return -ENOMEM;
	memcpy(head, CKPT_MAGIC, 8);
	put64(head + 8, (uint64_t)CKPT_VERSION << 32 | ck->chunk_size);
	put64(head + 16, ck->size);
	put64(head + 24, nchunks);
	put64(head + 32, ck->track_gen);
	put64(head + 40, ck->held);
	fp_merkle_init(&m);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0) {
		r = -errno;
		goto fail;
	}
	r = ckpt_put(fd, &m, head, sizeof(head));
	for (uint64_t off = 0; r == 0 && off < nbytes; off += CKPT_PIECE)
		r = ckpt_put(fd, &m, held + off, (size_t)MIN((uint64_t)CKPT_PIECE, nbytes - off));
	for (uint64_t i = 0, k = 0; r == 0 && i < nchunks; i++) {
		if (held_bit(held, i))
			blk[k++] = fps[i];
		if (k == FPS_BLOCK || (k > 0 && i + 1 == nchunks)) {
			r = ckpt_put(fd, &m, blk, (size_t)k * FP_LEN);
			k = 0;
		}
	}
	fp_merkle_final(&m, &digest);
	if (r == 0)
		r = write_full(fd, &digest, sizeof(digest));
	if (r < 0)
		goto fail;
	r = commit_tmp(fd, tmp, path);
	fd = -1;
	if (r < 0)
		goto fail;
	free(blk);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	free(blk);
	return r;
}

/* Reads len bytes at *off, adds their digest to m and moves *off on. */
static int ckpt_get(int fd, struct fp_merkle *m, void *buf, size_t len, uint64_t *off)
{
	struct fp f;
	int r = pread_full(fd, buf, len, *off);

	if (r < 0)
		return r;
	fp_compute(buf, len, &f);
	fp_merkle_add(m, &f);
	*off += len;
	return 0;
}

int rec_ckpt_load(const char *state_dir, const char *id, uint64_t size, uint32_t chunk_size,
		  struct fp *fps, uint8_t *held, struct rec_ckpt *ret_ck)
{
	uint64_t nchunks, nbytes, off = 0, want, fps_off;
	uint8_t head[CKPT_HEAD], *bm = NULL;
	struct rec_ckpt ck;
	struct fp_merkle m;
	struct fp *blk = NULL, digest, stored;
	char path[4096];
	struct stat st;
	int fd, r;

	r = file_path(state_dir, id, CKPT_SUFFIX, path, sizeof(path));
	if (r < 0)
		return r;
	if (!proto_chunk_size_valid(chunk_size) || size == 0)
		return -EINVAL;
	nchunks = DIV_ROUND_UP(size, chunk_size);
	nbytes = held_bytes(nchunks);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	fp_merkle_init(&m);
	r = -EBADMSG;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < CKPT_HEAD + FP_LEN)
		goto out;
	r = ckpt_get(fd, &m, head, sizeof(head), &off);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (memcmp(head, CKPT_MAGIC, 8) != 0 || get64(head + 8) >> 32 != CKPT_VERSION ||
	    !mem_is_zero(head + 48, 16))
		goto out;
	ck = (struct rec_ckpt){ .chunk_size = (uint32_t)get64(head + 8), .size = get64(head + 16),
				.track_gen = get64(head + 32), .held = get64(head + 40) };
	/* Whole and readable, but of another disk's shape: not this copy's. */
	if (ck.size != size || ck.chunk_size != chunk_size || get64(head + 24) != nchunks) {
		r = -ESTALE;
		goto out;
	}
	if (ck.held > nchunks)
		goto out;
	want = CKPT_HEAD + nbytes + ck.held * FP_LEN + FP_LEN;
	if ((uint64_t)st.st_size != want)
		goto out;
	bm = malloc(nbytes);
	blk = malloc(FPS_BLOCK * sizeof(*blk));
	if (!bm || !blk) {
		r = -ENOMEM;
		goto out;
	}
	for (uint64_t o = 0; o < nbytes; o += CKPT_PIECE) {
		r = ckpt_get(fd, &m, bm + o, (size_t)MIN((uint64_t)CKPT_PIECE, nbytes - o), &off);
		if (r < 0)
			goto out;
	}
	r = -EBADMSG;
	if ((nchunks % 8 && bm[nbytes - 1] >> (nchunks % 8)) || held_count(bm, nchunks) != ck.held)
		goto out;
	/* First pass: the digest, before anything is copied. */
	fps_off = off;
	for (uint64_t i = 0; i < ck.held;) {
		size_t k = (size_t)MIN((uint64_t)FPS_BLOCK, ck.held - i);

		r = ckpt_get(fd, &m, blk, k * FP_LEN, &off);
		if (r < 0)
			goto out;
		i += k;
	}
	fp_merkle_final(&m, &digest);
	r = pread_full(fd, &stored, sizeof(stored), off);
	if (r < 0)
		goto out;
	r = -EBADMSG;
	if (!fp_equal(&digest, &stored))
		goto out;
	/* Second pass: each held chunk's fingerprint to its place. The file is the one
	 * checked: a replacement is a rename, never a rewrite in place. */
	for (uint64_t i = 0, k = 0, n = 0; i < nchunks; i++) {
		if (!held_bit(bm, i))
			continue;
		if (k == n) {
			n = MIN((uint64_t)FPS_BLOCK, ck.held - (fps_off - CKPT_HEAD - nbytes) / FP_LEN);
			r = pread_full(fd, blk, (size_t)n * FP_LEN, fps_off);
			if (r < 0)
				goto out;
			fps_off += n * FP_LEN;
			k = 0;
		}
		fps[i] = blk[k++];
	}
	memcpy(held, bm, nbytes);
	*ret_ck = ck;
	r = 0;
out:
	close(fd);
	free(bm);
	free(blk);
	return r;
}

int rec_ckpt_remove(const char *state_dir, const char *id)
{
	char path[4096];
	int r;

	r = file_path(state_dir, id, CKPT_SUFFIX, path, sizeof(path));
	if (r < 0)
		return r;
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : -errno;
	return fsync_dir_of(path);
}
