// SPDX-License-Identifier: GPL-2.0-only
/* A disk's fingerprint array; see fptab.h. */
#include "common/fptab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

size_t fps_map_len(uint64_t nchunks)
{
	uint64_t page = page_size();

	return (size_t)DIV_ROUND_UP(nchunks * FP_LEN, page) * page;
}

/* The page before the array: its length, so that whoever frees it need not know it (an
 * agent's arrays outlive the size they were made for when a disk grows). */
struct fps_head {
	uint64_t nchunks;
};

static struct fps_head *head_of(const struct fp *fps)
{
	return (struct fps_head *)((uintptr_t)fps - page_size());
}

/* Past this the mapping's length would not fit a size_t on any platform. */
static bool fps_count_valid(uint64_t nchunks)
{
	return nchunks > 0 && nchunks <= SIZE_MAX / FP_LEN / 2;
}

struct fp *fps_alloc(uint64_t nchunks)
{
	struct fps_head *h;
	void *p;

	if (!fps_count_valid(nchunks))
		return NULL;
	p = mmap(NULL, page_size() + fps_map_len(nchunks), PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* With transparent huge pages always on, one fingerprint written would commit 2 MiB
	 * around it: a sparse disk's few data chunks would cost their whole neighbourhood.
	 * Should the kernel refuse, the array still works, only less sparsely. */
	(void)madvise(p, page_size() + fps_map_len(nchunks), MADV_NOHUGEPAGE);
	h = p;
	h->nchunks = nchunks;
	return (struct fp *)((uint8_t *)p + page_size());
}

struct fp *fps_free(struct fp *fps)
{
	if (fps)
		munmap(head_of(fps), page_size() + fps_map_len(head_of(fps)->nchunks));
	return NULL;
}

struct fp *fps_grow(struct fp *fps, uint64_t old_n, uint64_t n)
{
	struct fps_head *h;
	void *p;

	if (!fps || head_of(fps)->nchunks != old_n || n <= old_n || !fps_count_valid(n))
		return NULL;
	/* In place or moved, the new pages untouched: a large growth costs no memory yet. */
	p = mremap(head_of(fps), page_size() + fps_map_len(old_n), page_size() + fps_map_len(n),
		   MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return NULL;
	h = p;
	h->nchunks = n;
	fps = (struct fp *)((uint8_t *)p + page_size());
	/* The old last page's tail was never written, but say so rather than rely on it. */
	memset(&fps[old_n], 0, (size_t)(MIN(n * FP_LEN, (uint64_t)fps_map_len(old_n)) -
					old_n * FP_LEN));
	return fps;
}

/* Zeroes [lo, hi), inside the page at base, without committing memory for it: a read of
 * an untouched page maps the shared zero page, a write commits one, so nothing is written
 * where zeros are already; a page that holds only zeros afterwards is dropped again. (A
 * sparse disk's small ZERO frames, each a part of a page of fingerprints, used to commit
 * the whole array by writing their zeros: 16 MiB per 64 GiB disk.) */
static void clear(uintptr_t base, uintptr_t lo, uintptr_t hi, uintptr_t page)
{
	if (lo >= hi || mem_is_zero((const void *)lo, hi - lo))
		return;
	memset((void *)lo, 0, hi - lo);
	if (mem_is_zero((const void *)base, page))
		(void)madvise((void *)base, page, MADV_DONTNEED);
}

void fps_zero(struct fp *fps, uint64_t first, uint64_t last)
{
	uintptr_t page = (uintptr_t)page_size();
	uintptr_t lo = (uintptr_t)&fps[first], hi = (uintptr_t)&fps[last];
	uintptr_t plo = (lo + page - 1) / page * page, phi = hi / page * page;

	if (plo > phi) { /* inside one page */
		clear(phi, lo, hi, page);
		return;
	}
	clear(plo - page, lo, plo, page);
	clear(phi, phi, hi, page);
	/* Dropped private anonymous pages read back as zeros. Should the kernel refuse,
	 * writing the zeros is still correct, only not free. */
	if (plo < phi && madvise((void *)plo, phi - plo, MADV_DONTNEED) < 0)
		memset((void *)plo, 0, phi - plo);
}

static size_t chunk_len(uint64_t i, uint64_t size, uint32_t cs)
{
	return (size_t)MIN((uint64_t)cs, size - i * cs);
}

void fps_get(const struct fp *fps, uint64_t i, uint64_t size, uint32_t cs, struct fp *ret)
{
	static const struct fp none;

	if (!fp_equal(&fps[i], &none)) {
		*ret = fps[i];
		return;
	}
	fp_zero(chunk_len(i, size, cs), ret);
}

void fps_put(struct fp *fps, uint64_t i, const struct fp *fp, uint64_t size, uint32_t cs)
{
	static const struct fp none;
	struct fp z;

	if (!fp_equal(fp, &none)) {
		fp_zero(chunk_len(i, size, cs), &z);
		if (!fp_equal(fp, &z)) {
			fps[i] = *fp;
			return;
		}
	}
	/* A read of an untouched page maps the shared zero page; only a write commits. */
	if (!fp_equal(&fps[i], &none))
		fps[i] = none;
}

void fps_root(const struct fp *fps, uint64_t size, uint32_t cs, struct fp *ret_root)
{
	static const struct fp none;
	uint64_t n = DIV_ROUND_UP(size, cs);
	/* Chunks before this one are whole; the last may be short, with its own leaf. */
	uint64_t whole = size / cs;
	struct fp_merkle m;
	struct fp f, zf;

	fp_zero(cs, &zf);
	fp_merkle_init(&m);
	for (uint64_t i = 0; i < n;) {
		uint64_t j = i;

		/* A run of whole zero chunks goes in as one (fp_merkle_add_run): a TiB of holes
		 * costs a few hundred hashes, not 16M. */
		while (j < whole && fp_equal(&fps[j], &none))
			j++;
		if (j > i) {
			fp_merkle_add_run(&m, &zf, j - i);
			i = j;
			continue;
		}
		fps_get(fps, i, size, cs, &f);
		fp_merkle_add(&m, &f);
		i++;
	}
	fp_merkle_final(&m, ret_root);
}
