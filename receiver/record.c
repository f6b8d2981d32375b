// SPDX-License-Identifier: GPL-2.0-only
/* Reading a disk's record; see record.h. */
#include "receiver/record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rec_load(const char *path, struct disk_record *ret)
{
	struct disk_record rec = { 0 };
	char *text = NULL, *line, *save = NULL;
	int r;

	r = read_file_all(path, 64 * 1024, &text, NULL);
	if (r == -ENOENT) {
		*ret = rec;
		return 0;
	}
	if (r < 0)
		return r;
	rec.present = true;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		uint64_t v;

		if (strncmp(line, "size=", 5) == 0 && parse_u64(line + 5, 0, UINT64_MAX, &v) == 0)
			rec.size = v;
		else if (strncmp(line, "chunk_size=", 11) == 0 &&
			 parse_u64(line + 11, 0, UINT32_MAX, &v) == 0)
			rec.chunk_size = v;
		else if (strncmp(line, "epoch=", 6) == 0 && parse_u64(line + 6, 0, UINT64_MAX - 2, &v) == 0)
			rec.epoch = v;
		else if (strcmp(line, "verified=1") == 0)
			rec.verified = true;
		else if (strcmp(line, "cutover=1") == 0)
			rec.cut_over = true;
		else if (strncmp(line, "agent=", 6) == 0 && name_is_valid(line + 6, strlen(line + 6)))
			snprintf(rec.agent, sizeof(rec.agent), "%s", line + 6);
		else if (strncmp(line, "target=", 7) == 0 && strlen(line + 7) < sizeof(rec.target))
			snprintf(rec.target, sizeof(rec.target), "%s", line + 7);
		else if (strncmp(line, "event=", 6) == 0)
			snprintf(rec.event, sizeof(rec.event), "%s", line + 6);
	}
	free(text);
	*ret = rec;
	return 0;
}
