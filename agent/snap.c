// SPDX-License-Identifier: GPL-2.0-only
/* Dispatch from the snapshot interface (snap.h) to its providers, and the --snapshot
 * policy. */
#include "agent/snap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/snap-ops.h"
#include "agent/source.h"
#include "common/log.h"

struct snap {
	const struct snap_ops *ops;
	void *b;
};

#define NAME_(kind, name) [SNAP_##kind] = #name,
static const char *const names[SNAP_NKINDS] = {
	[SNAP_AUTO] = "auto", [SNAP_NONE] = "none", SNAP_PROVIDERS(NAME_)
};
#undef NAME_

/* Every provider, in auto's order (snap.h). */
#define OPS_(kind, name) &snap_##name##_ops,
static const struct snap_ops *const providers[] = { SNAP_PROVIDERS(OPS_) };
#undef OPS_

static const struct snap_ops *provider(enum snap_kind kind)
{
	for (size_t i = 0; i < sizeof(providers) / sizeof(*providers); i++)
		if (providers[i]->kind == kind)
			return providers[i];
	return NULL;
}

const char *snap_kind_name(enum snap_kind kind)
{
	return (unsigned)kind < SNAP_NKINDS ? names[kind] : "?";
}

int snap_kind_parse(const char *name, enum snap_kind *ret_kind)
{
	for (unsigned k = 0; k < SNAP_NKINDS; k++) {
		if (strcmp(name, names[k]) == 0) {
			*ret_kind = (enum snap_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

int snap_cleanup(const char *id, const char *path)
{
	for (size_t i = 0; i < sizeof(providers) / sizeof(*providers); i++) {
		int r = providers[i]->cleanup(id, path);

		if (r < 0)
			return r;
	}
	return 0;
}

static bool all_suit(const struct snap_ops *ops, struct source *const *srcs, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!ops->source_ok(srcs[i]))
			return false;
	return true;
}

int snap_pick(enum snap_kind want, const char *store, struct source *const *srcs, unsigned n,
	      enum snap_kind *ret_kind)
{
	const struct snap_ops *ops = NULL;
	char why[256] = "";
	int r;

	if (want == SNAP_NONE)
		return 1;
	if (want == SNAP_AUTO) {
		for (size_t i = 0; !ops && i < sizeof(providers) / sizeof(*providers); i++)
			if (all_suit(providers[i], srcs, n))
				ops = providers[i];
		if (!ops)
			return 1;
		if (!store) {
			log_info("snapshot auto: every source suits %s snapshots, but without "
				 "--snapshot-cow there is no store for them; reading the sources live",
				 snap_kind_name(ops->kind));
			return 1;
		}
	} else {
		ops = provider(want);
		if (!ops)
			return log_errno(-EINVAL, "--snapshot %s: no such provider", snap_kind_name(want));
	}
	r = ops->check_store(store, srcs, n, why, sizeof(why));
	if (r < 0)
		return log_errno(r, "--snapshot %s: %s", snap_kind_name(ops->kind), why);
	*ret_kind = ops->kind;
	return 0;
}

int snap_start(enum snap_kind kind, struct source *src, uint32_t block_size, const char *store,
	       unsigned slot, unsigned nslots, struct snap **ret_s, char *why, size_t why_len)
{
	const struct snap_ops *ops = provider(kind);
	struct snap *s;
	int r;

	if (!ops)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->ops = ops;
	r = ops->start(src, block_size, store, slot, nslots, &s->b, why, why_len);
	if (r < 0) {
		free(s);
		return r;
	}
	*ret_s = s;
	return 0;
}

int snap_take(struct snap *s, int *ret_fd, const uint64_t **ret_pending, bool *ret_overflow)
{
	return s->ops->take(s->b, ret_fd, ret_pending, ret_overflow);
}

int snap_acked(struct snap *s, uint64_t epoch)
{
	return s->ops->acked(s->b, epoch);
}

uint64_t snap_acked_epoch(const struct snap *s)
{
	return s->ops->acked_epoch(s->b);
}

uint64_t snap_nblocks(const struct snap *s)
{
	return s->ops->nblocks(s->b);
}

const char *snap_name(const struct snap *s)
{
	return snap_kind_name(s->ops->kind);
}

uint8_t snap_proto(const struct snap *s)
{
	return s->ops->proto;
}

struct snap *snap_stop(struct snap *s)
{
	if (!s)
		return NULL;
	s->ops->stop(s->b);
	free(s);
	return NULL;
}
