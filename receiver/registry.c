// SPDX-License-Identifier: GPL-2.0-only
/* The receiver's registry of agents and disks: what sessions record, the states and the
 * forecast of a snapshot; see registry.h. The Prometheus text is in registry-metrics.c. */
#include "receiver/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "common/log.h"
#include "receiver/record.h"
#include "common/util.h"

/* A disk whose backlog would take longer than this to send is lagging. */
#define LAG_BACKLOG_S 60.0
/* Churn must stay under this share of throughput for the backlog to drain in practice. */
#define CONVERGE_MARGIN 0.9
/* Beyond sending the backlog, a cutover freezes, ends an epoch and waits for its flush
 * and proof: the last measured flush plus this. */
#define CUTOVER_FIXED_S 0.2

struct reg_disk {
	char id[NAME_MAX_LEN + 1];
	uint16_t disk_no;
	uint64_t size;
	uint64_t epoch;           /* the epoch expected or being received */
	int64_t verified_epoch;   /* -1: none yet */
	uint64_t epoch_start_ns;  /* wall clock when this epoch's first word arrived (0: not yet) */
	uint64_t verified_src_ns; /* the same for the verified epoch: the source time it holds */
	uint64_t plain_total, data_plain_total, data_payload_total, wire_total;
	uint64_t flush_ns;        /* how long the last epoch's flush took */
	struct proto_status st;
	bool have_st;
	uint64_t st_at_ns;        /* when st arrived (monotonic) */
	double live_bps;          /* source bytes covered per second, smoothed, while active */
	/* The agent's last report of the first copy's progress, kept across its reconnects:
	 * what the receiver holds does not drop to nothing when a link does. */
	uint64_t copy_done, copy_total;
	bool cut_over;
	/* Frames of an epoch after the verified one reached the target: it no longer holds
	 * exactly the verified epoch (the record then says verified=0). */
	bool dirty;
	char last_error[PROTO_MSG_MAX + 1];
	char last_fault[REC_EVENT_MAX];
	struct reg_disk *next;
};

struct reg_agent {
	char name[NAME_MAX_LEN + 1];
	char peer[64];
	bool connected;
	unsigned sessions;        /* live sessions under this name (a stale one may linger) */
	bool paused;
	uint64_t rate_bps;
	bool cutting_over;
	bool shared; /* its last session used the shared agent bundle */
	unsigned streams_asked, streams_granted; /* its last session's compression streams */
	uint64_t left_ns;         /* monotonic time its last session ended (0: never ended) */
	/* Its last session ended in a refusal. A lost link alone is no error: the agent comes
	 * back with backoff, and a flapping link reads as disconnected, not failed. */
	bool refused;
	char last_error[PROTO_MSG_MAX + 1];
	struct reg_disk *disks;
	struct reg_agent *next;
};

struct registry {
	pthread_mutex_t lock;
	uint64_t expire_ns; /* how long an agent that owns no disk stays after it left */
	struct reg_agent *agents;
};

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct registry *reg_new(void)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	if (reg) {
		pthread_mutex_init(&reg->lock, NULL);
		reg->expire_ns = REG_EXPIRE_DEFAULT_S * 1000000000ull;
	}
	return reg;
}

void reg_set_expiry(struct registry *reg, uint64_t seconds)
{
	pthread_mutex_lock(&reg->lock);
	reg->expire_ns = seconds * 1000000000ull;
	pthread_mutex_unlock(&reg->lock);
}

/* Drops the agents that never owned a disk here (every disk entry stands for a record in
 * STATE_DIR/disks, written before DISK_OK) and have been gone for the expiry: a name that
 * connected, registered nothing and left would otherwise be listed until the receiver
 * exits. Agents with an operator's wish (pause, rate) are kept, so the wish is not lost
 * silently. A connected agent is never dropped: its session holds its entry. Lock held. */
static void expire_locked(struct registry *reg)
{
	uint64_t now = now_ns();

	for (struct reg_agent **p = &reg->agents, *a; (a = *p);) {
		if (!a->connected && a->sessions == 0 && !a->disks && a->left_ns &&
		    !a->paused && !a->rate_bps && now - a->left_ns >= reg->expire_ns) {
			*p = a->next;
			free(a);
			continue;
		}
		p = &a->next;
	}
}

struct registry *reg_free(struct registry *reg)
{
	if (!reg)
		return NULL;
	for (struct reg_agent *a = reg->agents, *an; a; a = an) {
		an = a->next;
		for (struct reg_disk *d = a->disks, *dn; d; d = dn) {
			dn = d->next;
			free(d);
		}
		free(a);
	}
	pthread_mutex_destroy(&reg->lock);
	free(reg);
	return NULL;
}

static struct reg_agent *find_agent(struct registry *reg, const char *name)
{
	struct reg_agent *a;

	for (a = reg->agents; a && strcmp(a->name, name) != 0; a = a->next)
		;
	return a;
}

/* Finds or adds agent name; called with the lock held. */
static struct reg_agent *get_agent(struct registry *reg, const char *name)
{
	struct reg_agent *a = find_agent(reg, name), **tail;

	if (a)
		return a;
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	snprintf(a->name, sizeof(a->name), "%s", name);
	/* Kept in arrival order, so status lists agents as they first came. */
	for (tail = &reg->agents; *tail; tail = &(*tail)->next)
		;
	*tail = a;
	return a;
}

struct reg_agent *reg_connect(struct registry *reg, const char *name, const char *peer)
{
	struct reg_agent *a;

	pthread_mutex_lock(&reg->lock);
	a = get_agent(reg, name);
	if (a) {
		snprintf(a->peer, sizeof(a->peer), "%s", peer);
		a->connected = true;
		a->sessions++;
		a->cutting_over = false;
		a->refused = false;
		a->last_error[0] = '\0';
	}
	pthread_mutex_unlock(&reg->lock);
	return a;
}

void reg_set_session(struct registry *reg, struct reg_agent *a, bool shared, unsigned asked,
		     unsigned granted)
{
	if (!a)
		return;
	pthread_mutex_lock(&reg->lock);
	a->shared = shared;
	a->streams_asked = asked;
	a->streams_granted = granted;
	pthread_mutex_unlock(&reg->lock);
}

void reg_disconnect(struct registry *reg, struct reg_agent *a, const char *why, bool refused)
{
	if (!a)
		return;
	pthread_mutex_lock(&reg->lock);
	if (a->sessions > 0)
		a->sessions--;
	a->connected = a->sessions > 0;
	a->cutting_over = false;
	a->left_ns = now_ns();
	if (why && why[0])
		snprintf(a->last_error, sizeof(a->last_error), "%s", why);
	a->refused = refused;
	for (struct reg_disk *d = a->disks; d; d = d->next) {
		d->st.active = 0;
		d->live_bps = 0;
	}
	pthread_mutex_unlock(&reg->lock);
}

void reg_disk_resize(struct registry *reg, struct reg_disk *d, uint64_t size)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	d->size = size;
	pthread_mutex_unlock(&reg->lock);
}

struct reg_disk *reg_disk_open(struct registry *reg, struct reg_agent *a, uint16_t disk_no,
			       const char *id, uint64_t size, uint64_t next_epoch,
			       int64_t verified_epoch, bool cut_over)
{
	struct reg_disk *d, **tail;

	if (!a)
		return NULL;
	pthread_mutex_lock(&reg->lock);
	for (d = a->disks; d && strcmp(d->id, id) != 0; d = d->next)
		;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (d) {
			snprintf(d->id, sizeof(d->id), "%s", id);
			for (tail = &a->disks; *tail; tail = &(*tail)->next)
				;
			*tail = d;
		}
	}
	if (d) {
		d->disk_no = disk_no;
		d->size = size;
		d->epoch = next_epoch;
		d->verified_epoch = verified_epoch;
		d->cut_over = cut_over;
		d->epoch_start_ns = 0;
		d->have_st = false;
		d->live_bps = 0;
		d->dirty = verified_epoch < 0;
		d->last_error[0] = '\0';
	}
	pthread_mutex_unlock(&reg->lock);
	return d;
}

/* The first word of an epoch sets the source time it will stand for. Lock held. */
static void epoch_begins(struct reg_disk *d)
{
	if (!d->epoch_start_ns)
		d->epoch_start_ns = wall_ns();
}

void reg_frame(struct registry *reg, struct reg_disk *d, uint64_t plain, uint64_t data_plain,
	       uint64_t data_payload, uint64_t frame_bytes)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	epoch_begins(d);
	d->dirty = true;
	d->plain_total += plain;
	d->data_plain_total += data_plain;
	d->data_payload_total += data_payload;
	d->wire_total += frame_bytes;
	pthread_mutex_unlock(&reg->lock);
}

void reg_epoch_end(struct registry *reg, struct reg_disk *d, uint64_t epoch, bool match,
		   uint64_t frame_bytes, uint64_t flush_ns)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	epoch_begins(d);
	d->wire_total += frame_bytes;
	d->flush_ns = flush_ns;
	if (match) {
		d->verified_epoch = (int64_t)epoch;
		d->verified_src_ns = d->epoch_start_ns;
		d->dirty = false;
		d->last_error[0] = '\0';
	}
	d->epoch = epoch + 1;
	d->epoch_start_ns = 0;
	pthread_mutex_unlock(&reg->lock);
}

void reg_status(struct registry *reg, struct reg_disk *d, const struct proto_status *m)
{
	uint64_t now = now_ns();

	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	/* Progress rate from successive reports of the same epoch, smoothed. */
	if (d->have_st && d->st.active && m->active && d->st.epoch == m->epoch &&
	    m->bytes_done >= d->st.bytes_done && now > d->st_at_ns) {
		double inst = (double)(m->bytes_done - d->st.bytes_done) * 1e9 /
			      (double)(now - d->st_at_ns);

		d->live_bps = d->live_bps > 0 ? 0.5 * d->live_bps + 0.5 * inst : inst;
	} else if (!m->active) {
		d->live_bps = 0;
	}
	if (m->active && m->epoch == d->epoch)
		epoch_begins(d);
	if (d->verified_epoch < 0 && m->bytes_total) {
		d->copy_done = m->bytes_done;
		d->copy_total = m->bytes_total;
	}
	d->st = *m;
	d->have_st = true;
	d->st_at_ns = now;
	pthread_mutex_unlock(&reg->lock);
}

void reg_cutting_over(struct registry *reg, struct reg_agent *a, bool on)
{
	if (!a)
		return;
	pthread_mutex_lock(&reg->lock);
	a->cutting_over = on;
	pthread_mutex_unlock(&reg->lock);
}

void reg_cut_over(struct registry *reg, struct reg_disk *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	d->cut_over = true;
	pthread_mutex_unlock(&reg->lock);
}

void reg_disk_fault(struct registry *reg, struct reg_disk *d, const char *text)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	snprintf(d->last_fault, sizeof(d->last_fault), "%s", text);
	pthread_mutex_unlock(&reg->lock);
}

void reg_load_records(struct registry *reg, const char *state_dir, const char *const *ids,
		      unsigned nids)
{
	for (unsigned i = 0; i < nids; i++) {
		struct disk_record rec;
		struct reg_agent *a;
		struct reg_disk *d;
		int r;

		r = rec_load(state_dir, ids[i], &rec);
		if (r < 0) {
			log_warn_errno(r, "cannot read disk %s's record; it is not shown until its "
				       "agent connects", ids[i]);
			continue;
		}
		if (!rec.present || !rec.agent[0])
			continue;
		pthread_mutex_lock(&reg->lock);
		a = get_agent(reg, rec.agent);
		pthread_mutex_unlock(&reg->lock);
		/* A record's epoch is the verified one, or the one in progress when it was
		 * written (the one before it was verified, if any). */
		d = reg_disk_open(reg, a, 0, ids[i], rec.size, rec.verified ? rec.epoch + 1 : rec.epoch,
				  rec.verified ? (int64_t)rec.epoch : (int64_t)rec.epoch - 1,
				  rec.cut_over);
		if (d) {
			/* An unfinished epoch's record: the target is a mix of two epochs. */
			pthread_mutex_lock(&reg->lock);
			d->dirty = !rec.verified;
			pthread_mutex_unlock(&reg->lock);
		}
		reg_disk_fault(reg, d, rec.event);
	}
}

void reg_disk_error(struct registry *reg, struct reg_disk *d, const char *text)
{
	if (!d)
		return;
	pthread_mutex_lock(&reg->lock);
	snprintf(d->last_error, sizeof(d->last_error), "%s", text);
	pthread_mutex_unlock(&reg->lock);
}

static int set_wish(struct registry *reg, const char *name, int paused, const uint64_t *rate,
		    bool *ret_connected)
{
	struct reg_agent *a;
	int r = 0;

	pthread_mutex_lock(&reg->lock);
	expire_locked(reg);
	a = find_agent(reg, name);
	if (!a) {
		r = -ENOENT;
	} else {
		if (paused >= 0)
			a->paused = paused;
		if (rate)
			a->rate_bps = *rate;
		*ret_connected = a->connected;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

int reg_set_paused(struct registry *reg, const char *name, bool paused, bool *ret_connected)
{
	return set_wish(reg, name, paused, NULL, ret_connected);
}

int reg_set_rate(struct registry *reg, const char *name, uint64_t rate_bps, bool *ret_connected)
{
	return set_wish(reg, name, -1, &rate_bps, ret_connected);
}

void reg_wishes(struct registry *reg, const struct reg_agent *a, bool *ret_paused,
		uint64_t *ret_rate)
{
	bool paused = false;
	uint64_t rate = 0;

	if (a) {
		pthread_mutex_lock(&reg->lock);
		paused = a->paused;
		rate = a->rate_bps;
		pthread_mutex_unlock(&reg->lock);
	}
	*ret_paused = paused;
	*ret_rate = rate;
}

bool reg_known(struct registry *reg, const char *name)
{
	bool known;

	pthread_mutex_lock(&reg->lock);
	expire_locked(reg);
	known = find_agent(reg, name) != NULL;
	pthread_mutex_unlock(&reg->lock);
	return known;
}

int reg_cutover_target(struct registry *reg, const char *name)
{
	struct reg_agent *a;
	int r = -ENOENT;

	pthread_mutex_lock(&reg->lock);
	expire_locked(reg);
	a = find_agent(reg, name);
	if (a) {
		r = -EALREADY;
		if (!a->disks)
			r = 0;
		for (struct reg_disk *d = a->disks; d; d = d->next)
			if (!d->cut_over)
				r = 0;
	}
	pthread_mutex_unlock(&reg->lock);
	return r;
}

/* Snapshot building. json-c's adders take ownership and fail only out of memory; a
 * failed add leaves a shorter object rather than a crash, and the caller checks the
 * top-level objects it needs. */

static void add(json_object *o, const char *key, json_object *v)
{
	if (json_object_object_add(o, key, v) < 0)
		json_object_put(v);
}

static json_object *jnum(double v)
{
	return json_object_new_double(v);
}

static json_object *ju64(uint64_t v)
{
	return json_object_new_int64(v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static const char *tracker_name(uint8_t t)
{
	switch (t) {
	case PROTO_TRACKER_SCAN: return "scan";
	case PROTO_TRACKER_EBPF: return "ebpf";
	case PROTO_TRACKER_KMOD: return "kmod";
	case PROTO_TRACKER_DM: return "dm";
	default: return "none";
	}
}

struct forecast {
	double throughput; /* what the backlog drains at, bytes/s (0: unknown) */
	int converges;     /* 1, 0, or -1 unknown */
	double drain_s, downtime_s; /* < 0: unknown */
	char warning[256];
};

/* Whether the backlog drains and what a cutover now would cost, from the churn the agent
 * measured and the throughput its epochs achieved (or, before any has been measured, the
 * progress rate of the epoch under way); a bandwidth limit caps the throughput. */
static void forecast(const struct reg_agent *a, const struct reg_disk *d, uint64_t backlog,
		     struct forecast *f)
{
	double t = d->have_st ? (double)d->st.throughput_bps : 0.0;
	double c = d->have_st ? (double)d->st.churn_bps : 0.0;
	uint64_t limit = d->have_st ? d->st.rate_limit_bps : a->rate_bps;
	char b1[32], b2[32], b3[32];

	memset(f, 0, sizeof(*f));
	f->converges = -1;
	f->drain_s = f->downtime_s = -1;
	if (t <= 0)
		t = d->live_bps;
	if (limit && (t <= 0 || (double)limit < t))
		t = (double)limit;
	f->throughput = t;
	if (t <= 0 || !d->have_st || d->st.tracker == PROTO_TRACKER_NONE)
		return;
	f->converges = c < CONVERGE_MARGIN * t;
	f->downtime_s = (double)backlog / t + (double)d->flush_ns / 1e9 + CUTOVER_FIXED_S;
	if (f->converges)
		f->drain_s = (double)backlog / (t - c);
	else
		snprintf(f->warning, sizeof(f->warning), "will not converge: the source changes "
			 "%s/s and replication moves %s/s%s%s%s", fmt_bytes((uint64_t)c, b1, sizeof(b1)),
			 fmt_bytes((uint64_t)t, b2, sizeof(b2)), limit ? " (bandwidth limit " : "",
			 limit ? fmt_bytes(limit, b3, sizeof(b3)) : "", limit ? "/s)" : "");
}

static const char *disk_state(const struct reg_agent *a, const struct reg_disk *d,
			      const struct forecast *f, uint64_t backlog)
{
	if (d->cut_over)
		return "cut-over";
	if (!a->connected && (a->refused || d->last_error[0]))
		return "error";
	/* Gone in good order, with the target holding exactly its last verified epoch (a
	 * finished --once copy, or an agent stopped between epochs). */
	if (!a->connected)
		return d->verified_epoch >= 0 && !d->dirty ? "verified" : "disconnected";
	/* The agent cannot read this disk's source: its other disks go on. */
	if (d->have_st && d->st.phase == PROTO_PHASE_FAULTED)
		return "error";
	if (a->cutting_over || (d->have_st && d->st.phase == PROTO_PHASE_CUTTING_OVER))
		return "cutting-over";
	if (a->paused || (d->have_st && d->st.paused))
		return "paused";
	if (d->have_st && d->st.active && d->st.phase == PROTO_PHASE_COPYING)
		return "copying";
	if (d->have_st && d->st.active && d->st.phase == PROTO_PHASE_RECONCILING)
		return "reconciling";
	if (d->verified_epoch < 0)
		return "copying";
	if (f->converges == 0 || (f->throughput > 0 && (double)backlog / f->throughput > LAG_BACKLOG_S))
		return "lagging";
	return "in-sync";
}

/* The agent's state: the most pressing of its disks'. all_done: every disk is verified or
 * cut over (and there is one). */
static const char *agent_state(const struct reg_agent *a, const char *worst, bool all_cut,
			       bool all_done)
{
	if (all_cut)
		return "cut-over";
	if (!a->connected)
		return a->refused ? "error" : all_done ? "verified" : "disconnected";
	if (a->cutting_over)
		return "cutting-over";
	if (a->paused)
		return "paused";
	return worst ? worst : "copying";
}

static int state_rank(const char *s)
{
	static const char *order[] = { "in-sync", "lagging", "reconciling", "copying", "error" };

	for (int i = 0; i < (int)ARRAY_SIZE(order); i++)
		if (strcmp(s, order[i]) == 0)
			return i;
	return 0;
}

static json_object *disk_json(const struct reg_agent *a, const struct reg_disk *d,
			      uint64_t wall, uint64_t mono, const char **ret_state)
{
	json_object *o = json_object_new_object(), *fo;
	struct forecast f;
	uint64_t backlog = 0, done = 0, total = d->size;
	const char *state;

	if (!o)
		return NULL;
	if (d->have_st && a->connected) {
		/* The agent's estimate grows with the churn since it was sent (rates are
		 * bounded by the session, 2^50, so the product fits). */
		double age = mono > d->st_at_ns ? (double)(mono - d->st_at_ns) / 1e9 : 0.0;

		backlog = MIN(d->st.backlog_bytes, d->size);
		if (d->st.tracker != PROTO_TRACKER_NONE)
			backlog += (uint64_t)((double)d->st.churn_bps * MIN(age, 5.0));
		backlog = MIN(backlog, d->size);
		done = d->st.bytes_done;
		total = d->st.bytes_total;
	} else if (d->verified_epoch >= 0) {
		done = total;
	} else if (d->copy_total) {
		done = d->copy_done;
		total = d->copy_total;
	}
	forecast(a, d, backlog, &f);
	state = disk_state(a, d, &f, backlog);
	add(o, "id", json_object_new_string(d->id));
	add(o, "state", json_object_new_string(state));
	add(o, "size_bytes", ju64(d->size));
	add(o, "epoch", ju64(d->epoch));
	add(o, "verified_epoch", d->verified_epoch >= 0 ? json_object_new_int64(d->verified_epoch) : NULL);
	add(o, "bytes_copied", ju64(done));
	add(o, "bytes_total", ju64(total));
	add(o, "backlog_bytes", ju64(backlog));
	add(o, "lag_seconds", d->verified_src_ns && wall > d->verified_src_ns ?
		jnum((double)(wall - d->verified_src_ns) / 1e9) : NULL);
	add(o, "throughput_bps", jnum(d->have_st && d->st.active ? d->live_bps : f.throughput));
	add(o, "wire_bytes_total", ju64(d->wire_total));
	add(o, "plain_bytes_total", ju64(d->plain_total));
	add(o, "compression_ratio", d->data_payload_total ?
		jnum((double)d->data_plain_total / (double)d->data_payload_total) : NULL);
	add(o, "churn_bps", jnum(d->have_st ? (double)d->st.churn_bps : 0.0));
	add(o, "tracker", json_object_new_string(d->have_st ? tracker_name(d->st.tracker) : "none"));
	add(o, "cut_over", json_object_new_boolean(d->cut_over));
	add(o, "last_error", json_object_new_string(d->last_error));
	add(o, "last_fault", json_object_new_string(d->last_fault));
	fo = json_object_new_object();
	if (fo) {
		add(fo, "converges", f.converges < 0 ? NULL : json_object_new_boolean(f.converges));
		add(fo, "drain_seconds", f.drain_s < 0 ? NULL : jnum(f.drain_s));
		add(fo, "cutover_downtime_seconds", f.downtime_s < 0 ? NULL : jnum(f.downtime_s));
		add(fo, "warning", json_object_new_string(f.warning));
	}
	add(o, "forecast", fo);
	*ret_state = state;
	return o;
}

json_object *reg_snapshot(struct registry *reg, uint64_t uptime_s)
{
	json_object *top = json_object_new_object(), *rcv = json_object_new_object(),
		    *agents = json_object_new_array();
	uint64_t wall = wall_ns(), mono = now_ns();

	if (!top || !rcv || !agents) {
		json_object_put(top);
		json_object_put(rcv);
		json_object_put(agents);
		return NULL;
	}
	add(rcv, "version", json_object_new_string(TERN_VERSION));
	add(rcv, "uptime_seconds", ju64(uptime_s));
	add(top, "receiver", rcv);
	pthread_mutex_lock(&reg->lock);
	expire_locked(reg);
	for (const struct reg_agent *a = reg->agents; a; a = a->next) {
		json_object *ao = json_object_new_object(), *disks = json_object_new_array();
		const char *worst = NULL;
		bool all_cut = a->disks != NULL, all_done = a->disks != NULL;

		if (!ao || !disks) {
			json_object_put(ao);
			json_object_put(disks);
			continue;
		}
		for (const struct reg_disk *d = a->disks; d; d = d->next) {
			const char *st;
			json_object *dj = disk_json(a, d, wall, mono, &st);

			if (dj && json_object_array_add(disks, dj) < 0)
				json_object_put(dj);
			all_cut = all_cut && d->cut_over;
			all_done = all_done && (strcmp(st, "verified") == 0 || d->cut_over);
			if (!worst || state_rank(st) > state_rank(worst))
				worst = st;
		}
		add(ao, "name", json_object_new_string(a->name));
		add(ao, "connected", json_object_new_boolean(a->connected));
		add(ao, "peer", json_object_new_string(a->peer));
		add(ao, "paused", json_object_new_boolean(a->paused));
		add(ao, "rate_limit_bps", ju64(a->rate_bps));
		add(ao, "shared_bundle", json_object_new_boolean(a->shared));
		add(ao, "streams_asked", json_object_new_int((int32_t)a->streams_asked));
		add(ao, "streams_granted", json_object_new_int((int32_t)a->streams_granted));
		add(ao, "state", json_object_new_string(agent_state(a, worst, all_cut, all_done)));
		add(ao, "last_error", json_object_new_string(a->last_error));
		add(ao, "disks", disks);
		if (json_object_array_add(agents, ao) < 0)
			json_object_put(ao);
	}
	pthread_mutex_unlock(&reg->lock);
	add(top, "agents", agents);
	return top;
}
