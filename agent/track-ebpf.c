// SPDX-License-Identifier: GPL-2.0-only
/* The eBPF change tracker; see track-ebpf.h and bpf/track.bpf.c. */
#include "agent/track-ebpf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#ifdef HAVE_EBPF
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/types.h>

#include "bpf/track-ebpf-abi.h"
/* The generated skeleton embeds the BPF object as one long string literal. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
#include "track.skel.h"
#pragma GCC diagnostic pop

struct trk_ebpf {
	struct track_bpf *skel;
	uint64_t nblocks, nwords;
	uint64_t *bm[2];     /* the two bitmaps, mmapped */
	unsigned active;
	int sync_map_fd;     /* an array of maps: updating it forces an RCU grace period */
	int inner_fd;
	int cfg_fd;
};

bool trk_ebpf_built(void)
{
	return true;
}

static int read_sysfs_u64(unsigned maj, unsigned min, const char *file, uint64_t *ret_v)
{
	char path[128], *text = NULL;
	int r;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s", maj, min, file);
	r = read_file_all(path, 256, &text, NULL);
	if (r < 0)
		return r;
	text[strcspn(text, "\n")] = '\0';
	r = parse_u64(text, 0, UINT64_MAX, ret_v);
	free(text);
	return r;
}

/* The whole disk of a block device, and where the device starts on it. */
static int whole_disk(dev_t dev, unsigned *ret_maj, unsigned *ret_min, uint64_t *ret_start)
{
	char path[128], *text = NULL;
	uint64_t start = 0, part;
	unsigned maj, min;
	int r;

	if (read_sysfs_u64(major(dev), minor(dev), "partition", &part) < 0) {
		*ret_maj = major(dev);
		*ret_min = minor(dev);
		*ret_start = 0;
		return 0;
	}
	r = read_sysfs_u64(major(dev), minor(dev), "start", &start);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/../dev", major(dev), minor(dev));
	r = read_file_all(path, 64, &text, NULL);
	if (r < 0)
		return r;
	if (sscanf(text, "%u:%u", &maj, &min) != 2) {
		free(text);
		return -EINVAL;
	}
	free(text);
	*ret_maj = maj;
	*ret_min = min;
	*ret_start = start;
	return 0;
}

int trk_ebpf_start(const struct source *src, uint32_t block_size, struct trk_ebpf **ret_t,
		   char *why, size_t why_len)
{
	struct tern_track_cfg c = { 0 };
	struct trk_ebpf *t = NULL;
	struct stat st;
	uint64_t start;
	unsigned maj, min;
	__u32 k = 0;
	int r;

	if (!src->blockdev) {
		snprintf(why, why_len, "%s is not a block device", src->path);
		return -EOPNOTSUPP;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) < 0) {
		snprintf(why, why_len, "the kernel has no BTF (/sys/kernel/btf/vmlinux)");
		return -EOPNOTSUPP;
	}
	if (fstat(src->fd, &st) < 0 || whole_disk(st.st_rdev, &maj, &min, &start) < 0) {
		snprintf(why, why_len, "cannot find the disk of %s in sysfs", src->path);
		return -ENODEV;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->sync_map_fd = t->inner_fd = -1;
	t->nblocks = DIV_ROUND_UP(src->size, block_size);
	t->nwords = DIV_ROUND_UP(t->nblocks, 64);
	t->skel = track_bpf__open();
	if (!t->skel) {
		r = -errno ? -errno : -EINVAL;
		snprintf(why, why_len, "cannot open the BPF object: %s", strerror(-r));
		goto fail;
	}
	bpf_map__set_max_entries(t->skel->maps.bm0, (__u32)t->nwords);
	bpf_map__set_max_entries(t->skel->maps.bm1, (__u32)t->nwords);
	r = track_bpf__load(t->skel);
	if (r < 0) {
		snprintf(why, why_len, "the kernel refused the BPF program: %s", strerror(-r));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		struct bpf_map *m = i ? t->skel->maps.bm1 : t->skel->maps.bm0;
		size_t len = (size_t)t->nwords * 8;

		t->bm[i] = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);
		if (t->bm[i] == MAP_FAILED) {
			t->bm[i] = NULL;
			r = -errno;
			snprintf(why, why_len, "cannot map the bitmaps: %s", strerror(-r));
			goto fail;
		}
	}
	/* An array of maps whose every update makes the kernel wait for an RCU grace
	 * period, after which no program still runs with the old active index. */
	t->inner_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tern_inner", 4, 4, 1, NULL);
	if (t->inner_fd >= 0) {
		LIBBPF_OPTS(bpf_map_create_opts, o, .inner_map_fd = t->inner_fd);
		t->sync_map_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "tern_sync", 4, 4, 1, &o);
	}
	if (t->sync_map_fd < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot create the grace-period map: %s", strerror(-r));
		goto fail;
	}
	c.major = maj;
	c.first_minor = min;
	c.start_sector = start;
	c.nr_sectors = src->size / 512;
	c.block_shift = (__u32)__builtin_ctz(block_size);
	c.armed = 1;
	t->cfg_fd = bpf_map__fd(t->skel->maps.cfg);
	r = bpf_map_update_elem(t->cfg_fd, &k, &c, BPF_ANY);
	if (r < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot configure the tracker: %s", strerror(-r));
		goto fail;
	}
	r = track_bpf__attach(t->skel);
	if (r < 0) {
		snprintf(why, why_len, "cannot attach to tp_btf/block_rq_complete: %s", strerror(-r));
		goto fail;
	}
	log_info("%s: eBPF tracker on disk %u:%u from sector %" PRIu64 ", %" PRIu64 " blocks of %u",
		 src->id, maj, min, start, t->nblocks, block_size);
	*ret_t = t;
	return 0;
fail:
	trk_ebpf_stop(t);
	return r < 0 ? r : -EINVAL;
}

int trk_ebpf_harvest(struct trk_ebpf *t, uint64_t *bits, bool *ret_overflow)
{
	struct tern_track_cfg c;
	struct tern_track_stats s = { 0 };
	unsigned idle = t->active;
	__u32 k = 0, v;
	int r;

	if (bpf_map_lookup_elem(t->cfg_fd, &k, &c) < 0)
		return -errno;
	c.active = !t->active;
	if (bpf_map_update_elem(t->cfg_fd, &k, &c, BPF_ANY) < 0)
		return -errno;
	t->active = c.active;
	/* Programs that read the old index finish before this update returns. */
	v = (__u32)t->inner_fd;
	if (bpf_map_update_elem(t->sync_map_fd, &k, &v, BPF_ANY) < 0)
		return -errno;
	for (uint64_t i = 0; i < t->nwords; i++) {
		uint64_t w = __atomic_exchange_n(&t->bm[idle][i], 0, __ATOMIC_RELAXED);

		bits[i] |= w;
	}
	r = bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.stats), &k, &s);
	*ret_overflow = r == 0 && s.overflow > 0;
	if (*ret_overflow) {
		memset(&s, 0, sizeof(s));
		bpf_map_update_elem(bpf_map__fd(t->skel->maps.stats), &k, &s, BPF_ANY);
	}
	return 0;
}

uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t)
{
	return t->nblocks;
}

struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t)
{
	if (!t)
		return NULL;
	for (int i = 0; i < 2; i++)
		if (t->bm[i])
			munmap(t->bm[i], (size_t)t->nwords * 8);
	if (t->sync_map_fd >= 0)
		close(t->sync_map_fd);
	if (t->inner_fd >= 0)
		close(t->inner_fd);
	track_bpf__destroy(t->skel);
	free(t);
	return NULL;
}

#else

struct trk_ebpf {
	int unused;
};

bool trk_ebpf_built(void)
{
	return false;
}

int trk_ebpf_start(const struct source *src, uint32_t block_size, struct trk_ebpf **ret_t,
		   char *why, size_t why_len)
{
	snprintf(why, why_len, "this build has no eBPF tracker (clang, bpftool or libbpf missing)");
	return -EOPNOTSUPP;
}

int trk_ebpf_harvest(struct trk_ebpf *t, uint64_t *bits, bool *ret_overflow)
{
	return -EOPNOTSUPP;
}

uint64_t trk_ebpf_nblocks(const struct trk_ebpf *t)
{
	return 0;
}

struct trk_ebpf *trk_ebpf_stop(struct trk_ebpf *t)
{
	return NULL;
}
#endif
