// SPDX-License-Identifier: GPL-2.0-only
/* A stand-in for libFuzzer's main, linked with each target so that every build (gcc, ASan,
 * no clang needed) exercises the decoders: runs LLVMFuzzerTestOneInput over the files named
 * on the command line, or else over a deterministic corpus of random inputs and mutations of
 * valid inputs: the target's own seeds (tern_fuzz_seeds), or else frames and zstd extents
 * built with tern's own encoders. TERN_FUZZ_RUNS and TERN_FUZZ_SEED lengthen or vary a run;
 * `--seeds DIR` writes the seeds to DIR as a starting corpus for the libFuzzer binary. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/codec.h"
#include "common/proto.h"
#include "common/util.h"

#include "fuzz-driver.h"

#define DEFAULT_RUNS 20000
#define MAX_SEEDS 256
#define SEED_CHUNK_SIZE (64u << 10) /* fuzz-proto decodes with this chunk size */
#define MUTATE_SLACK 4096

/* Weak: most targets leave these undefined, and their addresses are then NULL. */
void tern_fuzz_seeds(void (*add)(const void *p, size_t n)) __attribute__((weak));
extern const uint64_t tern_fuzz_default_runs __attribute__((weak));

struct seed {
	uint8_t *p;
	size_t n;
};

static struct seed seeds[MAX_SEEDS];
static size_t nseeds;
static size_t max_seed_len;
static uint64_t rng_state;

/* splitmix64: small, and the same sequence everywhere. */
static uint64_t rnd(void)
{
	uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "fuzz-driver: out of memory\n");
		exit(EXIT_FAILURE);
	}
	return p;
}

static void add_seed(const uint8_t *p, size_t n)
{
	if (nseeds == MAX_SEEDS) {
		fprintf(stderr, "fuzz-driver: too many seeds\n");
		exit(EXIT_FAILURE);
	}
	seeds[nseeds].p = xmalloc(n);
	memcpy(seeds[nseeds].p, p, n);
	seeds[nseeds].n = n;
	max_seed_len = MAX(max_seed_len, n);
	nseeds++;
}

static void add_target_seed(const void *p, size_t n)
{
	add_seed(p, n);
}

/* A whole frame, and the same payload behind a type byte (fuzz-proto's second form). */
static void add_frame(const uint8_t *f, int n)
{
	uint8_t *sel;

	if (n < PROTO_HDR_LEN) {
		fprintf(stderr, "fuzz-driver: encoding a seed failed: %d\n", n);
		exit(EXIT_FAILURE);
	}
	add_seed(f, (size_t)n);
	sel = xmalloc((size_t)n - PROTO_HDR_LEN + 1);
	sel[0] = f[5];
	memcpy(sel + 1, f + PROTO_HDR_LEN, (size_t)n - PROTO_HDR_LEN);
	add_seed(sel, (size_t)n - PROTO_HDR_LEN + 1);
	free(sel);
}

static void fill_text(uint8_t *p, size_t n)
{
	static const char text[] = "epoch 42: extent at 0x10000 sent, 16 chunks, root ok; ";

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)text[(i + i / 977) % (sizeof(text) - 1)];
}

static void add_data_seed(uint8_t *buf, size_t cap, uint8_t enc, uint32_t nchunks,
			  uint32_t plain_len, uint64_t offset, uint32_t payload_len)
{
	struct proto_data m = { .disk_no = 1, .encoding = enc, .nchunks = nchunks,
				.plain_len = plain_len, .offset = offset,
				.payload_len = payload_len };
	size_t total = proto_data_frame_len(nchunks, payload_len);
	int head = proto_encode_data_head(buf, cap, &m);

	if (head < 0 || total > cap) {
		fprintf(stderr, "fuzz-driver: DATA seed does not fit\n");
		exit(EXIT_FAILURE);
	}
	for (size_t i = (size_t)head; i < total; i++)
		buf[i] = (uint8_t)(i * 31);
	add_frame(buf, (int)total);
}

static void add_proto_seeds(void)
{
	size_t cap = 8192;
	uint8_t *buf = xmalloc(cap);
	struct proto_hello hello = { .chunk_size = SEED_CHUNK_SIZE, .name = "agent-1" };
	struct proto_welcome welcome = { .max_payload = PROTO_MAX_PAYLOAD, .name = "receiver" };
	struct proto_disk disk = { .disk_no = 1, .logical_block = 4096,
				   .size = UINT64_C(1) << 34, .id = "vda" };
	struct proto_disk_ok disk_ok = { .disk_no = 1, .target_size = UINT64_C(1) << 34,
					 .size = UINT64_C(1) << 34 };
	struct proto_zero zero = { .disk_no = 1, .offset = 4 * SEED_CHUNK_SIZE,
				   .length = 3 * SEED_CHUNK_SIZE };
	struct proto_epoch_end end = { .disk_no = 1, .epoch = 7, .nchunks = 262144 };
	struct proto_epoch_ack ack = { .disk_no = 1, .match = 1, .epoch = 7,
				       .bytes_written = 1 << 20 };
	struct proto_error error = { .code = ENOSPC, .msg = "no space left on target" };
	struct proto_disk_fault fault = { .disk_no = 1, .abandoned = 1, .code = EIO, .epoch = 7,
					  .msg = "reading /dev/vda at byte 4194304 failed" };
	struct proto_disk_grow grow = { .disk_no = 1, .epoch = 7, .size = (UINT64_C(1) << 34) + 512 };
	struct proto_disk_grown grown = { .disk_no = 1, .code = 0, .size = UINT64_C(1) << 35 };

	add_frame(buf, proto_encode_hello(buf, cap, &hello));
	memset(hello.name, 'h', NAME_MAX_LEN);
	hello.chunk_size = PROTO_CHUNK_MIN;
	add_frame(buf, proto_encode_hello(buf, cap, &hello));
	add_frame(buf, proto_encode_welcome(buf, cap, &welcome));
	add_frame(buf, proto_encode_disk(buf, cap, &disk));
	add_frame(buf, proto_encode_disk_ok(buf, cap, &disk_ok));
	/* A disk registered smaller than its source (grown while no agent ran, held). */
	disk_ok.size = UINT64_C(1) << 33;
	add_frame(buf, proto_encode_disk_ok(buf, cap, &disk_ok));
	add_frame(buf, proto_encode_zero(buf, cap, &zero));
	memset(end.root.b, 0x42, FP_LEN);
	add_frame(buf, proto_encode_epoch_end(buf, cap, &end));
	memset(ack.root.b, 0x42, FP_LEN);
	add_frame(buf, proto_encode_epoch_ack(buf, cap, &ack));
	add_frame(buf, proto_encode_error(buf, cap, &error));
	memset(error.msg, 'e', PROTO_MSG_MAX);
	add_frame(buf, proto_encode_error(buf, cap, &error));
	add_frame(buf, proto_encode_bye(buf, cap));
	add_frame(buf, proto_encode_disk_fault(buf, cap, &fault));
	add_frame(buf, proto_encode_disk_grow(buf, cap, &grow));
	add_frame(buf, proto_encode_disk_grown(buf, cap, &grown));
	grown.code = ENOSPC;
	snprintf(grown.msg, sizeof(grown.msg), "the target is 1 GiB, the disk grew to 2 GiB");
	add_frame(buf, proto_encode_disk_grown(buf, cap, &grown));

	/* DATA at the fuzzer's chunk size: raw, compressed, short last chunk, 1 MiB extent. */
	add_data_seed(buf, cap, PROTO_ENC_RAW, 1, 100, 0, 100);
	add_data_seed(buf, cap, PROTO_ENC_RAW, 1, 3000, 5 * SEED_CHUNK_SIZE, 3000);
	add_data_seed(buf, cap, PROTO_ENC_ZSTD, 2, SEED_CHUNK_SIZE + 1000, SEED_CHUNK_SIZE, 200);
	add_data_seed(buf, cap, PROTO_ENC_ZSTD, PROTO_EXTENT_MAX / SEED_CHUNK_SIZE,
		      PROTO_EXTENT_MAX, UINT64_C(1) << 40, 64);
	add_data_seed(buf, cap, PROTO_ENC_ZSTD, 1, SEED_CHUNK_SIZE,
		      UINT64_MAX - (2 * (uint64_t)SEED_CHUNK_SIZE - 1), 50);
	free(buf);
}

/* A zstd extent behind the two length bytes fuzz-codec reads (its plain_len_of). */
static void add_codec_seed(struct codec *c, size_t plain_len, bool zeros)
{
	size_t cap = codec_bound(plain_len) + 2;
	uint8_t *src = xmalloc(plain_len), *buf = xmalloc(cap);
	unsigned v;
	long n;

	if (plain_len < 0x8000)
		v = (unsigned)plain_len;
	else
		v = 0x8000 | (unsigned)((plain_len >> 5) - 1);
	if (zeros)
		memset(src, 0, plain_len);
	else
		fill_text(src, plain_len);
	n = codec_compress(c, buf + 2, cap - 2, src, plain_len);
	if (n > 0) {
		buf[0] = (uint8_t)(v >> 8);
		buf[1] = (uint8_t)v;
		add_seed(buf, (size_t)n + 2);
	}
	free(buf);
	free(src);
}

static void add_codec_seeds(void)
{
	static const size_t lens[] = { 100, 4000, 20000, 32767, 65536, 262144 };
	struct codec *c = codec_new(CODEC_LEVEL_DEFAULT);

	if (!c) {
		fprintf(stderr, "fuzz-driver: codec_new failed\n");
		exit(EXIT_FAILURE);
	}
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++)
		add_codec_seed(c, lens[i], false);
	add_codec_seed(c, PROTO_EXTENT_MAX, true);
	codec_free(c);
}

static uint64_t interesting(void)
{
	static const uint64_t v[] = {
		0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 511, 512, 513, 4095, 4096, 4097, 65535, 65536,
		65537, (1u << 20) - 1, 1u << 20, (1u << 20) + 1, PROTO_MAX_PAYLOAD,
		PROTO_MAX_PAYLOAD + 1, 0x7fffffff, 0x80000000, 0xffffffff, UINT64_C(1) << 62,
		(UINT64_C(1) << 62) + 1, INT64_MAX, UINT64_MAX, UINT64_MAX - 65535,
	};
	return v[rnd_below(ARRAY_SIZE(v))];
}

/* n bytes of v, big-endian (the wire) or little-endian (on-disk formats such as a
 * dm-snapshot's exception store). */
static void put_int(uint8_t *p, uint64_t v, unsigned n, bool le)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (le ? i : n - 1 - i)));
}

/* Applies one to four random edits to b (n bytes, room for cap); returns the new length. */
static size_t mutate(uint8_t *b, size_t n, size_t cap)
{
	unsigned edits = 1 + (unsigned)rnd_below(4);

	for (unsigned e = 0; e < edits; e++) {
		switch (rnd_below(10)) {
		case 0:
			if (n)
				b[rnd_below(n)] ^= (uint8_t)(1u << rnd_below(8));
			break;
		case 1:
			if (n)
				b[rnd_below(n)] = (uint8_t)rnd();
			break;
		case 2:
			if (n)
				b[rnd_below(n)] = (uint8_t)interesting();
			break;
		case 3: {
			unsigned w = 1u << (1 + rnd_below(3)); /* 2, 4 or 8 bytes */
			bool le = rnd() & 1;

			if (n >= w)
				put_int(b + rnd_below(n - w + 1), interesting(), w, le);
			break;
		}
		case 4:
			n = rnd_below(n + 1);
			break;
		case 5: {
			size_t add = MIN(1 + rnd_below(16), cap - n);

			for (size_t i = 0; i < add; i++)
				b[n++] = (uint8_t)rnd();
			break;
		}
		case 6:
			if (n < cap) {
				size_t at = rnd_below(n + 1);

				memmove(b + at + 1, b + at, n - at);
				b[at] = (uint8_t)rnd();
				n++;
			}
			break;
		case 7:
			if (n) {
				size_t at = rnd_below(n);

				memmove(b + at, b + at + 1, n - at - 1);
				n--;
			}
			break;
		case 8:
			if (n >= 2) {
				size_t len = 1 + rnd_below(MIN(n / 2, 64));
				size_t from = rnd_below(n - len + 1), to = rnd_below(n - len + 1);

				memmove(b + to, b + from, len);
			}
			break;
		default: {
			/* Splice: the tail of another seed over ours from some point on. */
			const struct seed *o = &seeds[rnd_below(nseeds)];
			size_t at = rnd_below(n + 1), from = rnd_below(o->n + 1);
			size_t len = MIN(o->n - from, cap - at);

			memcpy(b + at, o->p + from, len);
			n = at + len;
			break;
		}
		}
	}
	return n;
}

static void run_one(const uint8_t *p, size_t n)
{
	/* An exact-size copy, so ASan sees a read one byte past the input. */
	uint8_t *copy = xmalloc(n);

	memcpy(copy, p, n);
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
}

static int replay(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		char *data;
		size_t len;
		int r = read_file_all(argv[i], 64u << 20, &data, &len);

		if (r < 0) {
			fprintf(stderr, "fuzz-driver: %s: %s\n", argv[i], strerror(-r));
			return EXIT_FAILURE;
		}
		run_one((const uint8_t *)data, len);
		free(data);
	}
	fprintf(stderr, "fuzz-driver: %d inputs ok\n", argc - 1);
	return EXIT_SUCCESS;
}

static int dump_seeds(const char *dir)
{
	for (size_t i = 0; i < nseeds; i++) {
		char path[4096];
		FILE *f;
		bool ok;

		snprintf(path, sizeof(path), "%s/seed-%03zu", dir, i);
		f = fopen(path, "we");
		if (!f) {
			fprintf(stderr, "fuzz-driver: %s: %s\n", path, strerror(errno));
			return EXIT_FAILURE;
		}
		ok = fwrite(seeds[i].p, 1, seeds[i].n, f) == seeds[i].n;
		if (fclose(f) != 0 || !ok) {
			fprintf(stderr, "fuzz-driver: cannot write %s\n", path);
			return EXIT_FAILURE;
		}
	}
	fprintf(stderr, "fuzz-driver: %zu seeds written to %s\n", nseeds, dir);
	return EXIT_SUCCESS;
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *s = getenv(name);
	uint64_t v;

	if (!s || !*s)
		return def;
	if (parse_u64(s, 0, UINT64_MAX, &v) < 0) {
		fprintf(stderr, "fuzz-driver: bad %s=%s\n", name, s);
		exit(EXIT_FAILURE);
	}
	return v;
}

int main(int argc, char **argv)
{
	uint64_t runs = env_u64("TERN_FUZZ_RUNS",
				&tern_fuzz_default_runs ? tern_fuzz_default_runs : DEFAULT_RUNS);
	uint64_t seed = env_u64("TERN_FUZZ_SEED", 1);
	size_t cap;
	uint8_t *buf;

	if (argc > 1 && strcmp(argv[1], "--seeds") != 0)
		return replay(argc, argv);
	/* A target's own seeds alone: frames and extents would only waste its runs. */
	if (tern_fuzz_seeds) {
		tern_fuzz_seeds(add_target_seed);
	} else {
		add_proto_seeds();
		add_codec_seeds();
	}
	if (nseeds == 0) {
		fprintf(stderr, "fuzz-driver: no seeds\n");
		return EXIT_FAILURE;
	}
	if (argc > 1) {
		if (argc != 3) {
			fprintf(stderr, "usage: %s [--seeds DIR | FILE...]\n", argv[0]);
			return EXIT_FAILURE;
		}
		return dump_seeds(argv[2]);
	}
	cap = max_seed_len + MUTATE_SLACK;
	buf = xmalloc(cap);
	rng_state = seed;
	for (size_t i = 0; i < nseeds; i++)
		run_one(seeds[i].p, seeds[i].n);
	for (uint64_t i = 0; i < runs; i++) {
		size_t n;

		if (rnd_below(10) == 0) {
			/* Plain random bytes, short. */
			n = rnd_below(300);
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rnd();
		} else {
			const struct seed *s = &seeds[rnd_below(nseeds)];

			memcpy(buf, s->p, s->n);
			n = mutate(buf, s->n, cap);
		}
		run_one(buf, n);
	}
	fprintf(stderr, "fuzz-driver: %zu seeds and %" PRIu64 " inputs ok (seed %" PRIu64 ")\n",
		nseeds, runs, seed);
	for (size_t i = 0; i < nseeds; i++)
		free(seeds[i].p);
	free(buf);
	return EXIT_SUCCESS;
}
