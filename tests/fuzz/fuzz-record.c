// SPDX-License-Identifier: GPL-2.0-only
/* libFuzzer target for rec_parse_file, which reads a disk's state record back from the
 * receiver's state directory: a file a crash may have cut short or a disk or a hand may
 * have damaged. The input is the file (in a memfd, opened by its /proc path as
 * rec_parse_file opens any path). A record is taken whole or refused whole: when taken,
 * every field is one a line of the file says, within its bounds; when refused, nothing
 * of it reached the caller. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/fp.h"
#include "common/proto.h"
#include "common/util.h"
#include "receiver/record.h"

#include "fuzz-driver.h"

static void require(bool ok)
{
	if (!ok)
		abort();
}

/* True when a whole line of the input is prefix followed by rest. */
static bool has_line(const char *text, const char *prefix, const char *rest)
{
	size_t plen = strlen(prefix), rlen = strlen(rest);

	for (const char *l = text; l; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		if (strncmp(l, prefix, plen) == 0 && strncmp(l + plen, rest, rlen) == 0 &&
		    l[plen + rlen] == '\n')
			return true;
	}
	return false;
}

static bool has_u64(const char *text, const char *prefix, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	return has_line(text, prefix, num);
}

static void check(const char *text, size_t size, const struct disk_record *rec)
{
	char hex[2 * FP_LEN + 1];

	require(rec->present);
	require(size > 0 && text[size - 1] == '\n' && strlen(text) == size);
	require(name_is_valid(rec->disk, strnlen(rec->disk, sizeof(rec->disk))));
	require(name_is_valid(rec->agent, strnlen(rec->agent, sizeof(rec->agent))));
	require(has_line(text, "disk=", rec->disk) && has_line(text, "agent=", rec->agent));
	require(strnlen(rec->target, sizeof(rec->target)) < sizeof(rec->target));
	require(rec->target[0] && has_line(text, "target=", rec->target));
	require(strnlen(rec->event, sizeof(rec->event)) < sizeof(rec->event));
	require(has_line(text, "event=", rec->event));
	require(proto_chunk_size_valid((uint32_t)rec->chunk_size) && rec->chunk_size <= UINT32_MAX);
	/* The registry and the session add one to the epoch. */
	require(rec->epoch <= UINT64_MAX - 2);
	require(has_u64(text, "size=", rec->size) && has_u64(text, "chunk_size=", rec->chunk_size) &&
		has_u64(text, "epoch=", rec->epoch) &&
		has_u64(text, "chunks=", DIV_ROUND_UP(rec->size, rec->chunk_size)));
	require(has_line(text, "verified=", rec->verified ? "1" : "0"));
	require(has_line(text, "cutover=", rec->cut_over ? "1" : "0"));
	require(has_line(text, "root=", rec->verified ? fp_hex(&rec->root, hex) : "-"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	struct disk_record rec, untouched;
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
	untouched = rec;
	r = rec_parse_file(path, &rec);
	if (size > REC_FILE_MAX)
		require(r == -EFBIG);
	else
		require(r == 0 || r == -EBADMSG);
	if (r < 0) {
		require(memcmp(&rec, &untouched, sizeof(rec)) == 0);
		return 0;
	}
	text = malloc(size + 1);
	require(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';
	check(text, size, &rec);
	free(text);
	return 0;
}

/* Seeds: records as rec_save writes them, and as a damaged or hand-edited one may look. */
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
		"chunk_size=4096\nchunks=1\nepoch=0\nroot=-\nverified=0\ncutover=0\nevent=\n",
		/* Cut over. */
		"disk=vdb\nagent=a\ntarget=/dev/sdb\nsize=1099511627776\nchunk_size=1048576\n"
		"chunks=1048576\nepoch=18446744073709551613\nroot=ffffffffffffffffffffffffffffffff\n"
		"verified=1\ncutover=1\nevent=\n",
		/* Edited by hand: CRLF, reordered, repeated, unknown and bad lines. */
		"verified=1\r\ncutover=1\r\nagent=web1\r\nsize=12\r\nepoch=7\n\n\nsize=13\n"
		"size=-1\nsize= 5\nchunk_size=4294967296\nepoch=18446744073709551614\nagent=.x\n"
		"agent=\nevent=\nfuture=1\n=\n",
		/* Valid, reordered, with an empty event. */
		"root=-\ncutover=0\nverified=0\nepoch=3\nchunks=2\nchunk_size=4096\n"
		"size=4097\ntarget=/t\nagent=a\ndisk=d\nevent=\n",
		/* One field wrong each: chunks, a root without verified, verified without. */
		"disk=d\nagent=a\ntarget=/t\nsize=4097\nchunk_size=4096\nchunks=1\nepoch=0\n"
		"root=-\nverified=0\ncutover=0\nevent=\n",
		"disk=d\nagent=a\ntarget=/t\nsize=1\nchunk_size=4096\nchunks=1\nepoch=0\n"
		"root=0123456789abcdef0123456789abcdef\nverified=0\ncutover=0\nevent=\n",
		"disk=d\nagent=a\ntarget=/t\nsize=1\nchunk_size=4096\nchunks=1\nepoch=0\n"
		"root=-\nverified=1\ncutover=0\nevent=\n",
		/* Cut short by a crash (before rename made it atomic). */
		"disk=root\nagent=web1\ntarget=/dev/vg0/web1-root\nsize=1073",
		"",
		"\n",
	};
	static const char head[] = "disk=d\nagent=a\ntarget=/t\nsize=1\nchunk_size=4096\n"
				   "chunks=1\nepoch=0\nroot=-\nverified=0\ncutover=0\nevent=";
	char big[700], ev[sizeof(head) + REC_EVENT_MAX + 1];

	for (size_t i = 0; i < ARRAY_SIZE(recs); i++)
		add(recs[i], strlen(recs[i]));
	/* The longest event a record keeps, and one byte more. */
	memcpy(ev, head, sizeof(head) - 1);
	memset(ev + sizeof(head) - 1, 'e', REC_EVENT_MAX - 1);
	ev[sizeof(head) - 1 + REC_EVENT_MAX - 1] = '\n';
	add(ev, sizeof(head) - 1 + REC_EVENT_MAX);
	ev[sizeof(head) - 1 + REC_EVENT_MAX - 1] = 'e';
	ev[sizeof(head) - 1 + REC_EVENT_MAX] = '\n';
	add(ev, sizeof(head) + REC_EVENT_MAX);
	/* An event longer than the record keeps, and a name of the longest length. */
	memcpy(big, "agent=", 6);
	memset(big + 6, 'n', NAME_MAX_LEN);
	memcpy(big + 6 + NAME_MAX_LEN, "\nevent=", 7);
	memset(big + 13 + NAME_MAX_LEN, 'e', sizeof(big) - 14 - NAME_MAX_LEN);
	big[sizeof(big) - 1] = '\n';
	add(big, sizeof(big));
	/* A NUL in the middle. */
	add("verified=1\nsize=4096\0cutover=1\n", 31);
}
