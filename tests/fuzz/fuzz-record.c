// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for rec_load, which reads a disk's state record back from the
 * receiver's state directory: a file a crash may have cut short or a disk may have
 * damaged. The input is the file (in a memfd, opened by its /proc path as rec_load opens
 * any path); every field loaded must be one a line of the file says, within its bounds. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/util.h"
#include "receiver/record.h"

#include "fuzz-driver.h"

#define REC_FILE_MAX (64 * 1024) /* what rec_load reads at most */

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* True when a line of the input (up to its first NUL, as rec_load reads it) starts with
 * prefix and then holds rest, all of it when whole. */
static bool has_line(const char *text, const char *prefix, const char *rest, bool whole)
{
	size_t plen = strlen(prefix), rlen = strlen(rest);

	for (const char *l = text; l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (strncmp(l, prefix, plen) == 0 && strncmp(l + plen, rest, rlen) == 0 &&
		    (!whole || l[plen + rlen] == '\0' || l[plen + rlen] == '\n'))
			return true;
	}
	return false;
}

static void check(const char *text, const struct disk_record *rec)
{
	size_t alen = strnlen(rec->agent, sizeof(rec->agent));
	size_t elen = strnlen(rec->event, sizeof(rec->event));

	require(rec->present);
	require(rec->chunk_size <= UINT32_MAX);
	/* The registry and the session add one to the epoch. */
	require(rec->epoch <= UINT64_MAX - 2);
	require(alen < sizeof(rec->agent) && elen < sizeof(rec->event));
	require(!alen || name_is_valid(rec->agent, alen));
	require(!memchr(rec->event, '\n', elen));
	require(!rec->verified || has_line(text, "verified=1", "", true));
	require(!rec->cut_over || has_line(text, "cutover=1", "", true));
	require(!alen || has_line(text, "agent=", rec->agent, true));
	require(strnlen(rec->target, sizeof(rec->target)) < sizeof(rec->target));
	require(!rec->target[0] || has_line(text, "target=", rec->target, true));
	require(!elen || has_line(text, "event=", rec->event, elen + 1 < sizeof(rec->event)));
	require(!rec->size || has_line(text, "size=", "", false));
	require(!rec->chunk_size || has_line(text, "chunk_size=", "", false));
	require(!rec->epoch || has_line(text, "epoch=", "", false));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct disk_record rec;
	char *text;
	int r;

	if (fd < 0) {
		fd = memfd_create("tern-fuzz-record", MFD_CLOEXEC);
		require(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	require(ftruncate(fd, 0) == 0);
	require(pwrite_full(fd, data, size, 0) == 0);
	memset(&rec, 0xa5, sizeof(rec));
	r = rec_load(path, &rec);
	if (size > REC_FILE_MAX) {
		require(r == -EFBIG);
		return 0;
	}
	require(r == 0);
	text = malloc(size + 1);
	require(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	check(text, &rec);
	free(text);
	return 0;
}

/* Seeds: records as the session writes them (save_disk_state), and as an older or
 * hand-edited one may look. */
void tern_fuzz_seeds(void (*add)(const void *p, size_t n))
{
	static const char *const recs[] = {
		/* Verified, with the last fault. */
		"disk=root\nagent=web1\ntarget=/dev/vg0/web1-root\nsize=10737418240\n"
		"chunk_size=65536\nchunks=163840\nepoch=42\n"
		"root=0123456789abcdef0123456789abcdef\nverified=1\ncutover=0\n"
		"event=2024-05-01T12:00:00Z: the agent's connection was lost without BYE (a "
		"network loss, or the agent was killed); the agent came back; resumed from the "
		"fingerprints of the last verified epoch\n",
		/* A copy in progress: written before its first byte. */
		"disk=data\nagent=db-2.example:primary\ntarget=/srv/tern/data.img\nsize=4096\n"
		"chunk_size=4096\nchunks=1\nepoch=0\nroot=-\nverified=0\ncutover=0\n",
		/* Cut over. */
		"disk=vdb\nagent=a\ntarget=/dev/sdb\nsize=1099511627776\nchunk_size=1048576\n"
		"chunks=1048576\nepoch=18446744073709551613\nroot=ffffffffffffffffffffffffffffffff\n"
		"verified=1\ncutover=1\n",
		/* Edited by hand: CRLF, reordered, repeated, unknown and bad lines. */
		"verified=1\r\ncutover=1\r\nagent=web1\r\nsize=12\r\nepoch=7\n\n\nsize=13\n"
		"size=-1\nsize= 5\nchunk_size=4294967296\nepoch=18446744073709551614\nagent=.x\n"
		"agent=\nevent=\nfuture=1\n=\n",
		/* Cut short by a crash (before rename made it atomic). */
		"disk=root\nagent=web1\ntarget=/dev/vg0/web1-root\nsize=1073",
		"",
		"\n",
	};
	char big[700];

	for (size_t i = 0; i < ARRAY_SIZE(recs); i++)
		add(recs[i], strlen(recs[i]));
	/* An event longer than the record keeps, and a name of the longest length. */
	memcpy(big, "agent=", 6);
	memset(big + 6, 'n', NAME_MAX_LEN);
	memcpy(big + 6 + NAME_MAX_LEN, "\nevent=", 7);
	memset(big + 13 + NAME_MAX_LEN, 'e', sizeof(big) - 14 - NAME_MAX_LEN);
	big[sizeof(big) - 1] = '\n';
	add(big, sizeof(big));
	/* A NUL in the middle: rec_load reads up to it. */
	add("verified=1\nsize=4096\0cutover=1\n", 31);
}
