// SPDX-License-Identifier: GPL-2.0-only
/* The eBPF change tracker: on every block request that changes data (write, discard,
 * secure erase, write zeroes, zone append) on the tracked disk, as it is issued and again
 * as it completes, set the bits of the tracking blocks it touched in one bitmap, each word
 * with an atomic OR. User space harvests it word by word with an atomic exchange against
 * zero, so a bit set at any moment is either in what the exchange returned or still in
 * the word for the next harvest: no write is lost, and one bitmap does what a flipped
 * pair did at twice the memory. */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "track-ebpf-abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tern_track_cfg);
} cfg SEC(".maps");

/* max_entries is set to the disk's bitmap size in words before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} bm SEC(".maps"), pend SEC(".maps");
/* pend is user space's: blocks harvested but not yet acknowledged by the receiver, kept
 * in a pinned map so that they outlive an agent restart. */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tern_track_stats);
} stats SEC(".maps");

/* Ops that change what a read returns; values relocated from the running kernel's BTF. */
static __always_inline int changes_data(__u32 op)
{
	return op == bpf_core_enum_value(enum req_op, REQ_OP_WRITE) ||
	       op == bpf_core_enum_value(enum req_op, REQ_OP_DISCARD) ||
	       op == bpf_core_enum_value(enum req_op, REQ_OP_SECURE_ERASE) ||
	       op == bpf_core_enum_value(enum req_op, REQ_OP_WRITE_ZEROES) ||
	       op == bpf_core_enum_value(enum req_op, REQ_OP_ZONE_APPEND);
}

struct mark_ctx {
	__u64 first, last; /* tracking blocks, inclusive */
	__u32 wfirst, wlast;
	__u32 missing;     /* a word fell outside the bitmap */
};

/* bpf_loop callback: sets the bits of word wfirst + i that lie in [first, last]; 1 stops
 * the loop. */
static long mark_word(__u32 i, void *ctx)
{
	struct mark_ctx *m = ctx;
	__u32 w = m->wfirst + i;
	__u64 mask = ~0ULL, *word;

	if (w > m->wlast)
		return 1;
	if (w == m->wfirst)
		mask &= ~0ULL << (m->first & 63);
	if (w == m->wlast)
		mask &= ~0ULL >> (63 - (m->last & 63));
	word = bpf_map_lookup_elem(&bm, &w);
	if (!word) {
		m->missing = 1;
		return 1;
	}
	__sync_fetch_and_or(word, mask);
	return 0;
}

/* Marks the tracking blocks of rq's [sector, sector + nr_bytes) in the bitmap.
 * count: a completion, counted in the events statistic. */
static __always_inline int mark_rq(struct request *rq, unsigned int nr_bytes, bool count)
{
	struct tern_track_stats *st;
	struct tern_track_cfg *c;
	struct mark_ctx m = { 0 };
	struct gendisk *disk;
	__u64 sector, end, nwords;
	__u32 k = 0, op;

	c = bpf_map_lookup_elem(&cfg, &k);
	if (!c || !c->armed)
		return 0;
	disk = BPF_CORE_READ(rq, q, disk);
	if (!disk || BPF_CORE_READ(disk, major) != c->major ||
	    BPF_CORE_READ(disk, first_minor) != c->first_minor)
		return 0;
	op = BPF_CORE_READ(rq, cmd_flags) & 0xff;
	if (!changes_data(op) || nr_bytes == 0)
		return 0;
	/* Whole-disk sectors; a tracked partition is a window of them. */
	sector = BPF_CORE_READ(rq, __sector);
	end = sector + ((nr_bytes + 511) >> 9);
	if (end <= c->start_sector || sector >= c->start_sector + c->nr_sectors)
		return 0;
	if (sector < c->start_sector)
		sector = c->start_sector;
	if (end > c->start_sector + c->nr_sectors)
		end = c->start_sector + c->nr_sectors;
	m.first = ((sector - c->start_sector) << 9) >> c->block_shift;
	m.last = (((end - c->start_sector) << 9) - 1) >> c->block_shift;
	m.wfirst = m.first >> 6;
	m.wlast = m.last >> 6;
	nwords = (__u64)m.wlast - m.wfirst + 1;
	st = bpf_map_lookup_elem(&stats, &k);
	if (st && count)
		__sync_fetch_and_add(&st->events, 1);
	/* A range larger than the loop may walk (a huge discard) raises the overflow flag,
	 * and user space then treats the whole disk as changed. */
	if (nwords > TERN_TRACK_MAX_WORDS_PER_EVENT) {
		if (st)
			__sync_fetch_and_add(&st->overflow, 1);
		return 0;
	}
	bpf_loop((__u32)nwords, mark_word, &m, 0);
	if (m.missing && st)
		__sync_fetch_and_add(&st->overflow, 1);
	return 0;
}

/* A completed request: its data is on the disk, so a read after the harvest that takes
 * this mark sees it. */
SEC("tp_btf/block_rq_complete")
int BPF_PROG(tern_rq_complete, struct request *rq, blk_status_t error, unsigned int nr_bytes)
{
	return mark_rq(rq, nr_bytes, true);
}

/* The same request as the driver takes it, in the submitter's context. The kernel now and
 * then runs no BPF program at all for one completion (observed on 6.18: about once in
 * 40,000 writes under concurrent I/O, in a softirq, with no recursion miss counted, while
 * a trace event on the same tracepoint saw it), so a tracker of completions alone loses
 * that write for good. Marked at issue as well, such a write is still reported, unless a
 * harvest falls between its issue and its lost completion. */
SEC("tp_btf/block_rq_issue")
int BPF_PROG(tern_rq_issue, struct request *rq)
{
	return mark_rq(rq, BPF_CORE_READ(rq, __data_len), false);
}
