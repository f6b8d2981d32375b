// SPDX-License-Identifier: GPL-2.0-only
/* Target volumes written with io_uring; see writer.h. */
#include "receiver/writer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* Up to this many buffers in flight while a disk is busy; each is mapped only when the
 * free list runs dry and unmapped again by wr_flush, so an idle disk holds none (a
 * receiver serving many disks would otherwise hold WR_NBUF MiB for each of them). */
#define WR_NBUF 16
/* Pending zero ranges applied early once this many accumulate, bounding memory. */
#define WR_MAX_ZERO_RANGES 65536
/* The most of a block target one zeroing call is given (see zero_now). */
#define WR_ZERO_PIECE (UINT64_C(1) << 30)
/* The most requests one buffer can have in flight: a patch of up to 64 blocks writes each
 * run of changed blocks on its own, and 64 blocks hold at most 32 runs. */
#define WR_MAX_IO 32

struct zrange {
	uint64_t off, len;
};

struct wbuf;

/* One request in the ring on bytes [pos, pos + len) of a buffer, at its offset + pos: the
 * whole buffer for a write or a patch's read, one run of changed blocks for a patch's
 * write. done counts what a short write already wrote. */
struct wio {
	struct wbuf *b;
	size_t pos, len, done;
};

struct wbuf {
	uint8_t *data; /* NULL: not mapped now */
	uint64_t off;
	size_t len;
	/* A patch: reading the chunk before its blocks (at data + len) are laid over it. */
	bool reading;
	uint8_t shift;
	uint64_t mask;
	struct fp want;
	/* Requests in flight; the buffer goes back to the free list when the last ends. */
	unsigned nio;
	struct wio io[WR_MAX_IO];
	struct wbuf *next;
};

struct writer {
	char *path;
	int fd;        /* O_DIRECT where allowed */
	int fd_plain;  /* buffered, for writes that O_DIRECT cannot align */
	bool direct, blockdev;
	uint64_t size;
	uint64_t src_size;
	uint64_t written;
	struct io_uring ring;
	bool ring_ok;
	struct wbuf bufs[WR_NBUF];
	struct wbuf *free_head;
	unsigned nheld; /* buffers mapped now */
	unsigned inflight; /* requests in the ring (a buffer may have several) */
	int err;       /* first failed write; sticky */
	char err_text[160];
	struct zrange *zr; /* pending zero ranges, see wr_zero */
	size_t nzr, zr_cap;
};

int wr_read(struct writer *w, void *buf, size_t len, uint64_t off)
{
	return pread_full(w->fd_plain, buf, len, off);
}

const char *wr_error_text(const struct writer *w)
{
	return w->err_text;
}

uint64_t wr_size(const struct writer *w)
{
	return w->size;
}

uint64_t wr_bytes_written(const struct writer *w)
{
	return w->written;
}

unsigned wr_buffers_held(const struct writer *w)
{
	return w->nheld;
}

/* A free submission slot: when the queue is full (a patch queues a write per run), what
 * it holds is handed to the kernel first. */
static struct io_uring_sqe *get_sqe(struct writer *w)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&w->ring)))
		io_uring_submit(&w->ring);
	return sqe;
}

/* Queues the rest of request io as a write; counted in flight. */
static void queue_write(struct writer *w, struct wio *io)
{
	struct wbuf *b = io->b;
	struct io_uring_sqe *sqe = get_sqe(w);

	io_uring_prep_write(sqe, w->fd, b->data + io->pos + io->done,
			    (unsigned)(io->len - io->done), b->off + io->pos + io->done);
	io_uring_sqe_set_data(sqe, io);
	b->nio++;
	w->inflight++;
}

/* Queues a write of each run of the patch's changed blocks (the chunk around them is on
 * the target already: writing it again would cost the disk 16x the bytes of a one-block
 * change in a 64 KiB chunk). Under O_DIRECT a run is widened to whole 4 KiB pages of the
 * chunk, which the buffer holds as verified, and runs that then touch are merged. */
static void queue_patch_writes(struct writer *w, struct wbuf *b)
{
	size_t bs = (size_t)1 << b->shift, align = w->direct ? 4096 : 1;
	unsigned n = 0;
	uint64_t bits = b->mask;

	while (bits) {
		unsigned first = (unsigned)__builtin_ctzll(bits), end = first;
		size_t pos, stop;

		while (end < 64 && (bits >> end & 1))
			end++;
		bits = end < 64 ? bits & ~((UINT64_C(1) << end) - 1) : 0;
		pos = (size_t)first * bs / align * align;
		stop = MIN(((size_t)end * bs + align - 1) / align * align, b->len);
		if (n > 0 && b->io[n - 1].pos + b->io[n - 1].len >= pos) {
			b->io[n - 1].len = stop - b->io[n - 1].pos;
			continue;
		}
		b->io[n++] = (struct wio){ .b = b, .pos = pos, .len = stop - pos };
	}
	for (unsigned i = 0; i < n; i++)
		queue_write(w, &b->io[i]);
}

/* A patch's read completed with res: lay the blocks over the chunk and, if it then
 * matches, queue the writes of its changed blocks. Returns true when the buffer is in
 * flight again. */
static bool patch_read_done(struct writer *w, struct wbuf *b, int res)
{
	size_t bs = (size_t)1 << b->shift, k = 0;
	struct fp got;

	b->reading = false;
	if (w->err)
		return false;
	/* A short read of a regular file inside its size is not expected; finish it. */
	if (res >= 0 && (size_t)res < b->len)
		res = pread_full(w->fd_plain, b->data + res, b->len - (size_t)res,
				 b->off + (uint64_t)res) == 0 ? (int)b->len : -EIO;
	if (res < 0) {
		w->err = log_errno(res, "%s: read at %" PRIu64, w->path, b->off);
		return false;
	}
	for (uint64_t bits = b->mask; bits; bits &= bits - 1, k++)
		memcpy(b->data + (size_t)__builtin_ctzll(bits) * bs, b->data + b->len + k * bs, bs);
	fp_compute(b->data, b->len, &got);
	if (!fp_equal(&got, &b->want)) {
		w->err = -ESTALE;
		snprintf(w->err_text, sizeof(w->err_text), "the changed blocks of the chunk at "
			 "offset %" PRIu64 " do not fit the target's other blocks", b->off);
		return false;
	}
	queue_patch_writes(w, b);
	io_uring_submit(&w->ring);
	return b->nio > 0;
}

/* Reaps completions; waits for at least one when wait is set. */
static int reap(struct writer *w, bool wait)
{
	struct io_uring_cqe *cqe;
	int r;

	if (wait) {
		r = io_uring_submit_and_wait(&w->ring, 1);
		if (r < 0 && r != -EINTR) {
			if (!w->err)
				w->err = log_errno(r, "%s: io_uring", w->path);
			return w->err;
		}
	}
	while (io_uring_peek_cqe(&w->ring, &cqe) == 0) {
		struct wio *io = io_uring_cqe_get_data(cqe);
		struct wbuf *b = io->b;
		int res = cqe->res;

		io_uring_cqe_seen(&w->ring, cqe);
		w->inflight--;
		b->nio--;
		if (b->reading) {
			if (patch_read_done(w, b, res))
				continue;
		} else if (res <= 0) {
			if (!w->err) {
				w->err = res < 0 ? res : -EIO;
				log_errno(w->err, "%s: write at %" PRIu64, w->path,
					  b->off + io->pos + io->done);
			}
		} else {
			io->done += (size_t)res;
			w->written += (uint64_t)res;
			if (io->done < io->len && !w->err) {
				queue_write(w, io); /* short write: the rest again */
				io_uring_submit(&w->ring);
				continue;
			}
		}
		/* A patch's other runs may still be in flight: the buffer is theirs. */
		if (b->nio > 0)
			continue;
		b->next = w->free_head;
		w->free_head = b;
	}
	return w->err;
}

/* The target's size against the source's: a block device must hold it; a file may grow to
 * it only within max_size (0: what its filesystem has free). 0, or -errno with why. */
static int check_size(struct writer *w, const struct stat *st, uint64_t src_size,
		      uint64_t max_size, char *why, size_t why_len)
{
	int r;

	if (w->blockdev) {
		if (ioctl(w->fd_plain, BLKGETSIZE64, &w->size) < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot size the target: %s", strerror(-r));
			return r;
		}
		if (w->size < src_size) {
			r = -ENOSPC;
			snprintf(why, why_len, "the target is smaller than the source (%" PRIu64
				 " < %" PRIu64 " bytes)", w->size, src_size);
			return r;
		}
	} else {
		w->size = (uint64_t)st->st_size;
		if (src_size > w->size) {
			struct statvfs vfs;
			uint64_t limit = max_size;

			/* The agent chooses the size: a file grows only as far as the operator
			 * allows, by default as far as its filesystem could ever fill it. */
			if (!limit) {
				if (fstatvfs(w->fd_plain, &vfs) < 0) {
					r = -errno;
					snprintf(why, why_len, "cannot size the target's filesystem: %s",
						 strerror(-r));
					return r;
				}
				/* A filesystem that keeps no count of its blocks (ramfs) says
				 * nothing about its room: only max-size can limit it. */
				limit = vfs.f_blocks == 0 ? UINT64_MAX :
					(uint64_t)st->st_blocks * 512 +
					(uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
			}
			if (src_size > limit) {
				r = -ENOSPC;
				snprintf(why, why_len, "a disk of %" PRIu64 " bytes does not fit the target: "
					 "it may grow to %" PRIu64 " bytes (%s)", src_size, limit,
					 max_size ? "its max-size" : "what its filesystem has free; "
					 "--target ID=PATH,max-size=SIZE sets another limit");
				return r;
			}
		}
	}
	return 0;
}

/* The second descriptor, with O_DIRECT where the target takes it, else a duplicate of
 * the first. 0, or -errno with why. */
static int open_direct(struct writer *w, const char *path, int fl, const struct stat *st,
		       char *why, size_t why_len)
{
	struct stat st2;
	int r;

	w->fd = open(path, (fl & ~(O_CREAT | O_EXCL)) | O_DIRECT);
	if (w->fd >= 0) {
		w->direct = true;
		/* By path again: it must still name what the first descriptor holds (the one
		 * the lock, O_EXCL and fdatasync apply to). */
		if (fstat(w->fd, &st2) < 0 || st2.st_dev != st->st_dev || st2.st_ino != st->st_ino) {
			r = -EBUSY;
			snprintf(why, why_len, "the target was replaced while it was opened");
			return r;
		}
	} else {
		w->fd = fcntl(w->fd_plain, F_DUPFD_CLOEXEC, 0);
		if (w->fd < 0) {
			r = -errno;
			snprintf(why, why_len, "cannot open the target: %s", strerror(-r));
			return r;
		}
		log_info("O_DIRECT refused by %s; using buffered writes", path);
	}
	return 0;
}

/* The ring; its buffers come when they are first needed (wr_get_buf). 0, or -errno with
 * why. */
static int setup_ring(struct writer *w, char *why, size_t why_len)
{
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE };
	int r;

	/* Room for every completion that can be pending at once: each buffer's requests. */
	p.cq_entries = WR_NBUF * WR_MAX_IO;
	r = io_uring_queue_init_params(WR_NBUF * 2, &w->ring, &p);
	if (r < 0) {
		snprintf(why, why_len, "io_uring setup failed: %s", strerror(-r));
		return r;
	}
	w->ring_ok = true;
	return 0;
}

/* Maps one more buffer onto the free list. An anonymous mapping rather than the heap:
 * it is page-aligned (O_DIRECT wants 4 KiB) and munmap surely gives its pages back,
 * where free() may keep a 1 MiB block in the heap once malloc's mmap threshold has risen
 * past it. 0 or -ENOMEM. */
static int buf_add(struct writer *w)
{
	struct wbuf *b = NULL;
	void *p;

	for (unsigned i = 0; i < WR_NBUF && !b; i++)
		if (!w->bufs[i].data)
			b = &w->bufs[i];
	if (!b)
		return -ENOMEM;
	p = mmap(NULL, WR_BUF_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	b->data = p;
	b->next = w->free_head;
	w->free_head = b;
	w->nheld++;
	return 0;
}

/* Unmaps every buffer on the free list: none is in flight (the kernel may still use
 * those) or held by the caller between wr_get_buf and wr_submit. */
static void bufs_release(struct writer *w)
{
	while (w->free_head) {
		struct wbuf *b = w->free_head;

		w->free_head = b->next;
		munmap(b->data, WR_BUF_LEN);
		b->data = NULL;
		w->nheld--;
	}
}

int wr_open(const char *path, uint64_t src_size, uint64_t max_size, struct writer **ret_wr,
	    char *why, size_t why_len)
{
	struct writer *w = calloc(1, sizeof(*w));
	struct stat st;
	bool created = false;
	int r, fl;

	if (!w)
		return -ENOMEM;
	w->fd = w->fd_plain = -1;
	w->path = strdup(path);
	if (!w->path) {
		r = -ENOMEM;
		goto fail;
	}
	if (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			r = -errno;
			snprintf(why, why_len, "cannot look up the target: %s", strerror(-r));
			goto fail;
		}
		st.st_mode = S_IFREG;
		created = true;
	}
	if (S_ISBLK(st.st_mode)) {
		/* O_EXCL on a block device fails with EBUSY when it is mounted, part of
		 * a device-mapper/MD stack, or held exclusively by another opener. */
		fl = O_RDWR | O_CLOEXEC | O_EXCL | O_NOCTTY;
		w->blockdev = true;
	} else if (S_ISREG(st.st_mode)) {
		/* O_EXCL when creating: only a file this call created is removed on failure. */
		fl = O_RDWR | O_CLOEXEC | O_CREAT | O_NOFOLLOW | O_NOCTTY | (created ? O_EXCL : 0);
	} else {
		r = -EINVAL;
		snprintf(why, why_len, "the target is neither a block device nor a regular file");
		goto fail;
	}
	w->fd_plain = open(path, fl, 0600);
	if (w->fd_plain < 0) {
		r = -errno;
		if (r == -EBUSY)
			snprintf(why, why_len, "the target is mounted or in use");
		else
			snprintf(why, why_len, "cannot open the target: %s", strerror(-r));
		created = false; /* somebody else's, if it appeared meanwhile (EEXIST) */
		goto fail;
	}
	if (fstat(w->fd_plain, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot stat the target: %s", strerror(-r));
		goto fail;
	}
	/* Block devices are claimed by O_EXCL; a file is claimed by a lock, so two targets
	 * naming one file (another path, a link, another receiver) cannot interleave. */
	if (!w->blockdev && flock(w->fd_plain, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(why, why_len, "the target is in use (locked by another writer)");
		goto fail;
	}
	r = check_size(w, &st, src_size, max_size, why, why_len);
	if (r < 0)
		goto fail;
	w->src_size = src_size;
	/* A second descriptor with O_DIRECT for the bulk of the data; the first stays for
	 * the odd unaligned tail of an image whose size is not a multiple of 4 KiB. The
	 * block device's O_EXCL claim is held by the first. */
	r = open_direct(w, path, fl, &st, why, why_len);
	if (r < 0)
		goto fail;
	r = setup_ring(w, why, why_len);
	if (r < 0)
		goto fail;
	/* A new file's name must be as durable as the data acknowledged into it. */
	if (created) {
		r = fsync_dir_of(path);
		if (r < 0) {
			snprintf(why, why_len, "cannot make the target durable: %s", strerror(-r));
			goto fail;
		}
	}
	*ret_wr = w;
	return 0;
fail:
	/* Nothing is left of a refusal: a file created here goes again. */
	if (created)
		unlink(path);
	wr_close(w);
	return r;
}

int wr_fit(struct writer *w, char *why, size_t why_len)
{
	if (w->blockdev || w->size == w->src_size)
		return 0;
	if (ftruncate(w->fd_plain, (off_t)w->src_size) < 0) {
		int r = -errno;

		snprintf(why, why_len, "cannot %s the target to %" PRIu64 " bytes: %s",
			 w->size < w->src_size ? "grow" : "cut", w->src_size, strerror(-r));
		return r;
	}
	w->size = w->src_size;
	return 0;
}

void *wr_get_buf(struct writer *w, int *ret_err)
{
	struct wbuf *b;

	while (!w->free_head && !w->err) {
		int r;

		/* A new buffer while fewer than WR_NBUF exist; otherwise (or when memory is
		 * short) the next one to complete. */
		if (w->nheld < WR_NBUF) {
			r = buf_add(w);
			if (r == 0)
				continue;
			if (w->inflight == 0) {
				*ret_err = log_errno(r, "%s: no buffer for a write", w->path);
				return NULL;
			}
		}
		r = reap(w, true);
		if (r < 0)
			break;
	}
	if (w->err) {
		*ret_err = w->err;
		return NULL;
	}
	b = w->free_head;
	w->free_head = b->next;
	return b->data;
}

static struct wbuf *buf_of(struct writer *w, void *data)
{
	if (!data)
		return NULL;
	for (unsigned i = 0; i < WR_NBUF; i++)
		if (w->bufs[i].data == data)
			return &w->bufs[i];
	return NULL;
}

void wr_put_buf(struct writer *w, void *data)
{
	struct wbuf *b = buf_of(w, data);

	if (!b)
		return;
	b->next = w->free_head;
	w->free_head = b;
}

/* Submits the one request just queued and reaps whatever has completed. */
static int submit_one(struct writer *w)
{
	int r;

	r = io_uring_submit(&w->ring);
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
		if (!w->err)
			w->err = log_errno(r, "%s: io_uring submit", w->path);
		return w->err;
	}
	return reap(w, false);
}

int wr_submit(struct writer *w, void *data, size_t len, uint64_t off)
{
	struct wbuf *b = buf_of(w, data);
	size_t aligned = w->direct ? len & ~(size_t)4095 : len;
	int r;

	if (!b || len > WR_BUF_LEN || off > w->size || len > w->size - off) {
		if (b)
			wr_put_buf(w, data);
		return -EINVAL;
	}
	if (w->err) {
		wr_put_buf(w, data);
		return w->err;
	}
	/* O_DIRECT needs 4 KiB-aligned offsets and lengths; only a disk's last chunk can
	 * miss that, and its tail goes through the buffered descriptor. */
	if (w->direct && (off & 4095)) {
		r = pwrite_full(w->fd_plain, data, len, off);
		wr_put_buf(w, data);
		if (r == 0)
			w->written += len;
		return r;
	}
	if (aligned < len) {
		r = pwrite_full(w->fd_plain, (uint8_t *)data + aligned, len - aligned, off + aligned);
		if (r < 0) {
			wr_put_buf(w, data);
			return r;
		}
		w->written += len - aligned;
		if (aligned == 0) {
			wr_put_buf(w, data);
			return 0;
		}
	}
	b->off = off;
	b->len = aligned;
	b->reading = false;
	b->io[0] = (struct wio){ .b = b, .len = aligned };
	queue_write(w, &b->io[0]);
	return submit_one(w);
}

int wr_patch(struct writer *w, void *data, size_t len, uint64_t off, uint64_t mask, unsigned shift,
	     const struct fp *want)
{
	struct wbuf *b = buf_of(w, data);
	struct io_uring_sqe *sqe;

	if (!b || len == 0 || len % 4096 || 2 * len > WR_BUF_LEN || off % 4096 || off > w->size ||
	    len > w->size - off || shift >= 32 || (len >> shift) > 64) {
		if (b)
			wr_put_buf(w, data);
		return -EINVAL;
	}
	if (w->err) {
		wr_put_buf(w, data);
		return w->err;
	}
	b->off = off;
	b->len = len;
	b->reading = true;
	b->mask = mask;
	b->shift = (uint8_t)shift;
	b->want = *want;
	b->io[0] = (struct wio){ .b = b, .len = len };
	sqe = get_sqe(w);
	io_uring_prep_read(sqe, w->fd, b->data, (unsigned)len, off);
	io_uring_sqe_set_data(sqe, &b->io[0]);
	b->nio++;
	w->inflight++;
	return submit_one(w);
}

static int drain_writes(struct writer *w)
{
	while (w->inflight > 0) {
		int r = reap(w, true);
		if (r < 0)
			return r;
	}
	return w->err;
}

/* Zeroes one range now; only called with no write in flight over it. */
static int zero_now(struct writer *w, uint64_t off, uint64_t len)
{
	int mode, r;

	/* A hole reads back as zeros and costs no space; a device zeroes the range itself
	 * (WRITE_ZEROES/unmap where it can). Both need KEEP_SIZE so nothing grows. */
	mode = w->blockdev ? FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE
			   : FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	while (len > 0) {
		/* A file punches any range at once; a device zeroes what it is given (merged
		 * ranges of a sparse disk run to TiBs), so it gets a GiB per call: no one call
		 * runs for minutes. */
		uint64_t n = w->blockdev ? MIN(len, WR_ZERO_PIECE) : len;

		if (fallocate(w->fd_plain, mode, (off_t)off, (off_t)n) < 0)
			break;
		off += n;
		len -= n;
	}
	if (len == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS)
		return -errno;
	while (len > 0) {
		size_t n = (size_t)MIN((uint64_t)WR_BUF_LEN, len);
		void *buf = wr_get_buf(w, &r);

		if (!buf)
			return r;
		memset(buf, 0, n);
		r = wr_submit(w, buf, n, off);
		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

static int apply_zero_ranges(struct writer *w)
{
	int r = drain_writes(w);

	for (size_t i = 0; r == 0 && i < w->nzr; i++)
		r = zero_now(w, w->zr[i].off, w->zr[i].len);
	if (r == 0)
		w->nzr = 0;
	return r;
}

int wr_zero(struct writer *w, uint64_t off, uint64_t len)
{
	if (off > w->size || len > w->size - off)
		return -EINVAL;
	if (w->err)
		return w->err;
	if (w->nzr > 0 && w->zr[w->nzr - 1].off + w->zr[w->nzr - 1].len == off) {
		w->zr[w->nzr - 1].len += len;
		return 0;
	}
	if (w->nzr == WR_MAX_ZERO_RANGES) {
		int r = apply_zero_ranges(w);
		if (r < 0)
			return r;
	}
	if (w->nzr == w->zr_cap) {
		size_t cap = w->zr_cap ? w->zr_cap * 2 : 64;
		struct zrange *zr = realloc(w->zr, cap * sizeof(*zr));

		if (!zr)
			return -ENOMEM;
		w->zr = zr;
		w->zr_cap = cap;
	}
	w->zr[w->nzr++] = (struct zrange){ .off = off, .len = len };
	return 0;
}

int wr_flush(struct writer *w)
{
	int r = apply_zero_ranges(w);

	/* Zeroing may have fallen back to queued writes of zeros. */
	if (r == 0)
		r = drain_writes(w);
	if (r < 0)
		return r;
	/* Nothing is in flight: the disk may sit idle now (between epochs, or at a
	 * checkpoint), so its buffers go back; a busy epoch maps them again as it needs. */
	bufs_release(w);
	if (fdatasync(w->fd_plain) < 0)
		return -errno;
	return 0;
}

int wr_grow(struct writer *w, uint64_t src_size, uint64_t max_size, uint64_t *ret_have,
	    char *why, size_t why_len)
{
	uint64_t old = w->src_size;
	struct stat st;
	int r;

	if (src_size <= old || w->inflight > 0 || w->nzr > 0)
		return -EINVAL;
	if (fstat(w->fd_plain, &st) < 0) {
		r = -errno;
		snprintf(why, why_len, "cannot stat the target: %s", strerror(-r));
		return r;
	}
	/* The same rule as wr_open's: a device is sized now (the operator may have attached
	 * a bigger one since the last try), a file only grows within its bound. */
	r = check_size(w, &st, src_size, max_size, why, why_len);
	if (r == -ENOSPC && w->blockdev)
		/* One line with both sizes: the operator's next step is the volume's size. */
		snprintf(why, why_len, "the target is %" PRIu64 " bytes, the disk grew to %" PRIu64
			 ": attach a bigger volume", w->size, src_size);
	if (r < 0) {
		if (!w->blockdev)
			w->size = old;
		*ret_have = w->blockdev ? w->size : old;
		return r;
	}
	w->src_size = src_size;
	if (!w->blockdev)
		return wr_fit(w, why, why_len);
	/* The device's new range holds whatever was there: zeros now, as the fingerprints
	 * will claim, before any chunk of the next epoch can be written there. */
	r = zero_now(w, old, src_size - old);
	if (r == 0)
		r = drain_writes(w);
	if (r < 0) {
		snprintf(why, why_len, "cannot zero the target's new range: %s", strerror(-r));
		w->src_size = old;
		return r;
	}
	return 0;
}

struct writer *wr_close(struct writer *w)
{
	if (!w)
		return NULL;
	if (w->ring_ok) {
		/* Buffers belong to the kernel until their write completes. */
		while (w->inflight > 0 && reap(w, true) >= 0)
			;
		while (w->inflight > 0) {
			struct io_uring_cqe *cqe;
			int r = io_uring_wait_cqe(&w->ring, &cqe);

			if (r == -EINTR)
				continue;
			if (r < 0)
				break;
			io_uring_cqe_seen(&w->ring, cqe);
			w->inflight--;
		}
		io_uring_queue_exit(&w->ring);
	}
	/* Never unmap a buffer the kernel may still read from: leak it instead. */
	for (unsigned i = 0; i < WR_NBUF && w->inflight == 0; i++)
		if (w->bufs[i].data)
			munmap(w->bufs[i].data, WR_BUF_LEN);
	free(w->zr);
	if (w->fd >= 0)
		close(w->fd);
	if (w->fd_plain >= 0)
		close(w->fd_plain);
	free(w->path);
	free(w);
	return NULL;
}
