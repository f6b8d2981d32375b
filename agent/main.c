// SPDX-License-Identifier: GPL-2.0-only
/* tern-agent: replicates a machine's disks to a tern receiver. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "agent/disks.h"
#include "agent/join.h"
#include "agent/level.h"
#include "agent/quiesce.h"
#include "agent/reboot.h"
#include "agent/session.h"
#include "common/codec.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

#define AGENT_CONF "/etc/tern/agent.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tern-agent run --receiver HOST:PORT --credentials BUNDLE\n"
		"                      [--disk DISK_ID=PATH ...] [--once] [options]\n"
		"       tern-agent disks [--json]\n"
		"       tern-agent join TOKEN [--name NAME] [--config-dir DIR] [--force]\n"
		"       tern-agent track --start|--save|--seal|--consume [--disk ...]\n"
		"       tern-agent --help | --version\n"
		"\n"
		"Copies each disk (a block device or an image file, opened read-only) to the\n"
		"receiver over mutual TLS 1.3, and with --once exits 0 only when the receiver\n"
		"reports every disk durable and its Merkle root equal to the source's. Without\n"
		"--once it then keeps the targets in step: each epoch sends the chunks changed\n"
		"since the last, until SIGINT/SIGTERM (or --epochs).\n"
		"\n"
		"Options for run:\n"
		"  --receiver HOST:PORT    receiver to replicate to\n"
		"  --credentials BUNDLE    agent credential bundle (from tern-receiver init)\n"
		"  --disk DISK_ID=PATH     disk to replicate; DISK_ID names its target (default:\n"
		"                          every disk `disks` marks AUTO, by its stable id)\n");
	fprintf(f,
		"  --config FILE           read options from FILE, `key = value` lines, keys are\n"
		"                          these options' names (default " AGENT_CONF " if it\n"
		"                          exists); options given here win, and any --disk here\n"
		"                          replaces every `disk` line of the file\n"
		"  --name NAME             agent name (default: host name)\n"
		"  --once                  copy once, wait for durable + verified, exit\n"
		"  --reconcile             with --once: read each disk whole but send only the\n"
		"                          chunks that differ from what the receiver holds (its\n"
		"                          fingerprints): a failback to the original disk, or a\n"
		"                          copy run again (default: --once sends everything)\n"
		"  --tracker auto|kmod|ebpf|scan  change tracker for continuous replication\n"
		"                          (auto: kmod when tern.ko is loaded, else ebpf where\n"
		"                          it loads, else scan)\n"
		"  --snapshot auto|dm|none where epochs read from: dm takes a device-mapper\n"
		"                          snapshot of each source (which must be a dm device,\n"
		"                          e.g. an LVM volume) as each epoch starts, and its\n"
		"                          exceptions are the next epoch's changes (it replaces\n"
		"                          --tracker); auto: dm when every source is a dm device\n"
		"                          and --snapshot-cow is given, else none (read live)\n"
		"  --snapshot-cow DEVICE   block device whose slices hold the snapshots' copies\n"
		"                          (2 per disk; its content is overwritten)\n"
		"  --interval SECONDS      seconds between epochs (default 30)\n"
		"  --epochs N              stop after N epochs past the full copy (default: never)\n"
		"  --pre-cutover CMD       run CMD (sh -c) before freezing the source at cutover\n"
		"  --freeze-limit SECONDS  thaw the source after this long whatever happens (60)\n"
		"  --chunk-size SIZE       chunk size, power of two 4K..1M (default 64K)\n"
		"  --ioprio idle|be        I/O priority of replication reads (default idle; the\n"
		"                          cutover's final epoch always reads best-effort)\n"
		"  --level N|MIN..MAX      zstd level (%d..%d); a range adapts to the link:\n"
		"                          higher while frames wait for the link, lower while\n"
		"                          the link waits for compression (default %d..%d)\n",
		CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, CODEC_LEVEL_DEFAULT, CODEC_LEVEL_ADAPT_MAX);
	fprintf(f,
		"  --threads N             compression threads (default: online CPUs)\n"
		"  --streams N             compression streams, 0..%u (default 2): each carries\n"
		"                          zstd's 8 MiB window from one extent to the next (up\n"
		"                          to ~21 MiB of memory each); 0: independent extents\n"
		"  --queue-depth N         batches in flight (default 16)\n"
		"  --max-rate BYTES        bytes per second on the wire, e.g. 50M (default: no\n"
		"                          limit; the operator can also set one at the receiver)\n"
		"  --skip-unreadable       copy what can be read: chunks of a source that cannot\n"
		"                          be read (EIO) are zero-filled on the target and listed,\n"
		"                          and --once exits 3 (not a verified copy); without it\n"
		"                          such a disk is not copied (exit 1), the others are\n"
		"  --copy used|all         used (default): chunks wholly in the free space of an\n"
		"                          ext4 or XFS file system mounted from a source are\n"
		"                          sent as zeros without being read (FS_IOC_GETFSMAP);\n"
		"                          all: every chunk is read and sent\n"
		"  --block-sums-memory SIZE  the scan tracker keeps a 4-byte sum of every block\n"
		"                          (72 bytes per 64 KiB chunk, 18 MiB per 16 GiB) so a\n"
		"                          changed chunk goes as its changed blocks; disks whose\n"
		"                          sums do not fit in SIZE over all disks go whole\n"
		"                          (default 256M; 0: never)\n"
		"  --no-progress           do not print progress lines\n"
		"  --log-level LEVEL       error, warn, info (default) or debug\n"
		"\n"
		"disks lists whole disks and their partitions (size, sector sizes, partition\n"
		"table, filesystem, UUID, label, mount points, stable id), and whether each disk\n"
		"qualifies for automatic selection (run without --disk) or why not;\n"
		"--json prints the same as JSON.\n"
		"\n"
		"join enrols this host with the receiver that made TOKEN (tern-receiver token\n"
		"create) and writes /etc/tern/agent.pem and agent.conf; see join --help.\n",
		CODEC_STREAMS_MAX);
	fputs("\n"
		"track keeps each disk's eBPF tracker across a clean reboot (the units\n"
		"tern-track.service and the shutdown hook run it): --start at early boot starts\n"
		"the tracker and resumes the pending set saved at shutdown when nothing can have\n"
		"written the disk since (else the agent reconciles by fingerprints), --save at\n"
		"shutdown saves it, --seal (the systemd-shutdown hook) rewrites it sealed once\n"
		"the file systems are read-only, --consume drops it once the system runs.\n"
		"It reads run's options and config file for the disks; --state-dir DIR (default\n"
		"/var/lib/tern/track, on the root file system) and --run-dir DIR (/run/tern).\n", f);
}

enum {
	OPT_RECEIVER = 0x100, OPT_CREDENTIALS, OPT_DISK, OPT_NAME, OPT_ONCE, OPT_CHUNK,
	OPT_LEVEL, OPT_THREADS, OPT_QD, OPT_NO_PROGRESS, OPT_LOG_LEVEL, OPT_TRACKER, OPT_INTERVAL,
	OPT_EPOCHS, OPT_PRE_CUTOVER, OPT_FREEZE_LIMIT, OPT_MAX_RATE, OPT_STREAMS,
};

/* Options of mine kept apart from the list above, which others extend. */
enum { OPT_CONFIG = 0x180, OPT_IOPRIO, OPT_INCLUDE_LOOP };
/* The dm-snapshot source's options. */
enum { OPT_SNAPSHOT = 0x1c0, OPT_SNAPSHOT_COW };
/* Source faults. */
enum { OPT_SKIP_UNREADABLE = 0x1e0, OPT_RECONCILE };
/* Used blocks only. */
enum { OPT_COPY = 0x200 };
/* The scan tracker's deltas. */
enum { OPT_BLOCK_SUMS_MEMORY = 0x220 };
/* track: the tracker across a reboot (agent/reboot.h). */
enum { OPT_TRACK_START = 0x240, OPT_TRACK_SAVE, OPT_TRACK_SEAL, OPT_TRACK_CONSUME,
       OPT_STATE_DIR, OPT_RUN_DIR };

/* No --disk: every disk that qualifies (see disks.c), by its stable id. */
static int pick_disks(struct agent_opts *o, bool include_loop)
{
	struct disks_pick *picks = NULL;
	struct disks_list *l = NULL;
	size_t n = 0;
	int r;

	/* Both log their own failures. */
	r = disks_scan(&l);
	if (r < 0)
		goto out;
	r = disks_pick_auto(l, include_loop, &picks, &n);
	if (r < 0)
		goto out;
	if (n == 0) {
		r = -ENOENT;
		log_error("no disk qualifies for automatic selection (see tern-agent disks); "
			  "name disks with --disk DISK_ID=PATH");
		goto out;
	}
	r = -ENOMEM;
	o->disks = calloc(n, sizeof(*o->disks));
	if (!o->disks) {
		log_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		o->disks[i].id = picks[i].id;
		o->disks[i].path = picks[i].path;
		picks[i].id = picks[i].path = NULL;
	}
	o->ndisks = (unsigned)n;
	r = 0;
out:
	disks_picks_free(picks, n);
	disks_list_free(l);
	return r;
}

/* TERN_FAULT_EIO's DISK_ID:OFFSET+LENGTH[:FLAG_FILE]; the strings stay in the
 * environment, which outlives the run. */
static int parse_fault_eio(const char *spec, struct agent_opts *o)
{
	static char id[NAME_MAX_LEN + 1];
	const char *colon = strchr(spec, ':'), *plus, *flag;
	char num[32];
	uint64_t off, len;

	if (!colon || (size_t)(colon - spec) > NAME_MAX_LEN || !(plus = strchr(colon, '+')))
		return -EINVAL;
	flag = strchr(plus, ':');
	if ((size_t)(plus - colon - 1) >= sizeof(num))
		return -EINVAL;
	memcpy(num, colon + 1, (size_t)(plus - colon - 1));
	num[plus - colon - 1] = '\0';
	if (parse_u64(num, 0, UINT64_MAX / 2, &off) < 0)
		return -EINVAL;
	if ((flag ? (size_t)(flag - plus - 1) : strlen(plus + 1)) >= sizeof(num))
		return -EINVAL;
	snprintf(num, sizeof(num), "%.*s", flag ? (int)(flag - plus - 1) : (int)strlen(plus + 1),
		 plus + 1);
	if (parse_u64(num, 1, UINT64_MAX / 2, &len) < 0)
		return -EINVAL;
	memcpy(id, spec, (size_t)(colon - spec));
	id[colon - spec] = '\0';
	o->fault_eio_disk = id;
	o->fault_eio_off = off;
	o->fault_eio_len = len;
	o->fault_eio_flag = flag && flag[1] ? flag + 1 : NULL;
	return 0;
}

/* --disk ID=PATH, added to o->disks. 0, or -EINVAL (logged). */
static int add_disk(struct agent_opts *o, struct conf_args *ca, bool *disks_from_cmdline,
		    const char *arg)
{
	struct agent_disk *d;

	/* The command line's disks replace the file's, not add to them. */
	if (!conf_args_from_file(ca, optind - 1) && !*disks_from_cmdline) {
		for (unsigned i = 0; i < o->ndisks; i++) {
			free(o->disks[i].id);
			free(o->disks[i].path);
		}
		o->ndisks = 0;
		*disks_from_cmdline = true;
	}
	if (o->ndisks >= 256) {
		log_error("too many --disk options (at most 256)");
		return -EINVAL;
	}
	d = realloc(o->disks, (o->ndisks + 1) * sizeof(*d));
	if (!d) {
		log_error("out of memory");
		return -EINVAL;
	}
	o->disks = d;
	if (parse_id_path(arg, &d[o->ndisks].id, &d[o->ndisks].path) < 0) {
		log_error("--disk %s: expected DISK_ID=PATH with an id of 1-64 "
			  "characters from [A-Za-z0-9._:-]", arg);
		return -EINVAL;
	}
	for (unsigned i = 0; i < o->ndisks; i++) {
		if (strcmp(d[i].id, d[o->ndisks].id) == 0) {
			log_error("--disk %s: disk id given twice", arg);
			free(d[o->ndisks].id);
			free(d[o->ndisks].path);
			return -EINVAL;
		}
	}
	o->ndisks++;
	return 0;
}

/* What cmd_run's options set besides struct agent_opts. */
struct run_flags {
	bool include_loop, disks_from_cmdline, once;
	enum rb_mode track;      /* `track`: what to do, RB_NONE for run */
	const char *state_dir, *run_dir;
};

/* Applies run's option c, its value in optarg, to o and f. 0, 1 after --help (printed), or
 * -EINVAL (logged, or the usage printed). Long only by its cases, one per option, each the
 * check of one value: nothing in it depends on another case. */
static int run_option(int c, struct agent_opts *o, struct conf_args *ca, struct run_flags *f)
{
	uint64_t v;

	switch (c) {
	case OPT_RECEIVER:
		o->receiver = optarg;
		break;
	case OPT_CREDENTIALS:
		o->credentials = optarg;
		break;
	case OPT_DISK:
		return add_disk(o, ca, &f->disks_from_cmdline, optarg);
	case OPT_NAME:
		if (!name_is_valid(optarg, strlen(optarg))) {
			log_error("--name %s: 1-64 characters from [A-Za-z0-9._:-]", optarg);
			return -EINVAL;
		}
		o->name = optarg;
		break;
	case OPT_ONCE:
		f->once = true;
		break;
	case OPT_CHUNK:
		if (parse_size(optarg, &v) < 0 || v > UINT32_MAX ||
		    !proto_chunk_size_valid((uint32_t)v)) {
			log_error("--chunk-size %s: a power of two from 4K to 1M", optarg);
			return -EINVAL;
		}
		o->rd.chunk_size = (uint32_t)v;
		break;
	case OPT_LEVEL:
		if (lvl_parse(optarg, CODEC_LEVEL_MIN, CODEC_LEVEL_MAX, &o->level_min,
			      &o->level_max) < 0) {
			log_error("--level %s: a level N or a range MIN..MAX (MIN < MAX, "
				  "neither 0), from %d to %d", optarg, CODEC_LEVEL_MIN,
				  CODEC_LEVEL_MAX);
			return -EINVAL;
		}
		o->rd.level = o->level_min;
		break;
	case OPT_THREADS:
		if (parse_u64(optarg, 1, 256, &v) < 0) {
			log_error("--threads %s: from 1 to 256", optarg);
			return -EINVAL;
		}
		o->rd.workers = (unsigned)v;
		break;
	case OPT_STREAMS:
		if (parse_u64(optarg, 0, CODEC_STREAMS_MAX, &v) < 0) {
			log_error("--streams %s: from 0 to %u", optarg, CODEC_STREAMS_MAX);
			return -EINVAL;
		}
		o->streams = (unsigned)v;
		break;
	case OPT_QD:
		if (parse_u64(optarg, 1, 256, &v) < 0) {
			log_error("--queue-depth %s: from 1 to 256", optarg);
			return -EINVAL;
		}
		o->rd.queue_depth = (unsigned)v;
		break;
	case OPT_NO_PROGRESS:
		o->progress = false;
		break;
	case OPT_LOG_LEVEL:
		if (log_level_option(optarg) < 0)
			return -EINVAL;
		break;
	case OPT_TRACKER:
		if (track_kind_parse(optarg, &o->tracker) < 0) {
			log_error("--tracker %s: auto, kmod, ebpf or scan", optarg);
			return -EINVAL;
		}
		break;
	case OPT_INTERVAL:
		if (parse_u64(optarg, 1, 86400, &v) < 0) {
			log_error("--interval %s: seconds from 1 to 86400", optarg);
			return -EINVAL;
		}
		o->interval_s = (unsigned)v;
		break;
	case OPT_EPOCHS:
		if (parse_u64(optarg, 1, UINT32_MAX, &v) < 0) {
			log_error("--epochs %s: a positive number", optarg);
			return -EINVAL;
		}
		o->epochs = v;
		break;
	case OPT_PRE_CUTOVER:
		o->pre_cutover = optarg;
		break;
	case OPT_FREEZE_LIMIT:
		if (parse_u64(optarg, 1, 3600, &v) < 0) {
			log_error("--freeze-limit %s: seconds from 1 to 3600", optarg);
			return -EINVAL;
		}
		o->freeze_limit_s = (unsigned)v;
		break;
	case OPT_MAX_RATE:
		/* Bytes per second on the wire; 0 lifts the limit. */
		if (parse_size(optarg, &v) < 0) {
			log_error("--max-rate %s: bytes per second, e.g. 50M (0: unlimited)", optarg);
			return -EINVAL;
		}
		o->max_rate = v;
		break;
	case OPT_CONFIG:
		/* Read by conf_args_build. */
		break;
	case OPT_IOPRIO:
		if (strcmp(optarg, "idle") == 0) {
			o->rd.ioprio = RD_IOPRIO_IDLE;
		} else if (strcmp(optarg, "be") == 0) {
			o->rd.ioprio = RD_IOPRIO_BE;
		} else {
			log_error("--ioprio %s: idle or be", optarg);
			return -EINVAL;
		}
		break;
	case OPT_SNAPSHOT:
		if (snap_kind_parse(optarg, &o->snapshot) < 0) {
			log_error("--snapshot %s: auto, dm or none", optarg);
			return -EINVAL;
		}
		break;
	case OPT_SNAPSHOT_COW:
		o->snapshot_cow = optarg;
		break;
	case OPT_INCLUDE_LOOP:
		f->include_loop = true;
		break;
	case OPT_SKIP_UNREADABLE:
		o->skip_unreadable = true;
		break;
	case OPT_RECONCILE:
		o->reconcile = true;
		break;
	case OPT_COPY:
		if (strcmp(optarg, "used") == 0) {
			o->copy_used = true;
		} else if (strcmp(optarg, "all") == 0) {
			o->copy_used = false;
		} else {
			log_error("--copy %s: used or all", optarg);
			return -EINVAL;
		}
		break;
	case OPT_BLOCK_SUMS_MEMORY:
		if (parse_size(optarg, &v) < 0) {
			log_error("--block-sums-memory %s: bytes, e.g. 256M (0: none)", optarg);
			return -EINVAL;
		}
		o->block_sums_memory = v;
		break;
	case OPT_TRACK_START:
	case OPT_TRACK_SAVE:
	case OPT_TRACK_SEAL:
	case OPT_TRACK_CONSUME:
		f->track = (enum rb_mode)(RB_START + (c - OPT_TRACK_START));
		break;
	case OPT_STATE_DIR:
		f->state_dir = optarg;
		break;
	case OPT_RUN_DIR:
		f->run_dir = optarg;
		break;
	case 'h':
		usage(stdout);
		return 1;
	default:
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

/* The checks across run's options, the agent's name (the host's, into hostname, when no
 * --name) and the test seams the environment may set. 0, or -EINVAL (logged). */
static int check_run_opts(struct agent_opts *o, bool once, char *hostname, size_t len)
{
	const char *fault;
	uint64_t v;

	o->once = once;
	if (o->reconcile && !once) {
		/* Continuous replication always sends only what differs. */
		log_error("--reconcile is for --once (continuous replication already sends only "
			  "the chunks that differ from what the receiver holds)");
		return -EINVAL;
	}
	if (o->snapshot != SNAP_AUTO && o->snapshot != SNAP_NONE &&
	    (!o->snapshot_cow || once || o->tracker != TRACK_AUTO)) {
		log_error("--snapshot %s needs --snapshot-cow DEVICE, and is the change tracker of "
			  "continuous replication (no --once, no --tracker)", snap_kind_name(o->snapshot));
		return -EINVAL;
	}
	o->track_block = MIN(4096u, o->rd.chunk_size);
	/* The batch must hold whole chunks; a chunk larger than 1 MiB is refused above. */
	o->rd.batch = MAX(o->rd.batch, o->rd.chunk_size);
	if (!o->name) {
		if (gethostname(hostname, len) < 0 ||
		    !name_is_valid(hostname, strlen(hostname))) {
			log_error("the host name is not a valid agent name; pass --name NAME");
			return -EINVAL;
		}
		o->name = hostname;
	}
	/* Test seam for the refusal of corrupted chunks; documented in tests/. */
	fault = getenv("TERN_FAULT_CORRUPT_CHUNK");
	if (fault && parse_u64(fault, 0, UINT64_MAX - 1, &o->rd.fault_corrupt_chunk) < 0) {
		log_error("TERN_FAULT_CORRUPT_CHUNK=%s: not a chunk number", fault);
		return -EINVAL;
	}
	/* Tests keep their pins apart from a real agent's. */
	o->bpf_pin_root = getenv("TERN_BPF_PIN_ROOT");
	if (!o->bpf_pin_root || o->bpf_pin_root[0] != '/')
		o->bpf_pin_root = "/sys/fs/bpf/tern";
	/* Test seam for a source with bad sectors: DISK_ID:OFFSET+LENGTH[:FLAG_FILE]. */
	fault = getenv("TERN_FAULT_EIO");
	if (fault && parse_fault_eio(fault, o) < 0) {
		log_error("TERN_FAULT_EIO=%s: expected DISK_ID:OFFSET+LENGTH[:FLAG_FILE]", fault);
		return -EINVAL;
	}
	fault = getenv("TERN_FAULT_SUM_BLIND");
	if (fault && parse_u64(fault, 0, 63, &v) < 0) {
		log_error("TERN_FAULT_SUM_BLIND=%s: not a block number of a chunk (0-63)", fault);
		return -EINVAL;
	}
	if (fault)
		o->fault_sum_blind = (uint32_t)v + 1;
	fault = getenv("TERN_FAULT_STALL_FROZEN");
	if (fault && parse_u64(fault, 1, 3600, &v) == 0)
		o->fault_stall_frozen_s = (unsigned)v;
	return 0;
}

/* run's and track's options (track takes run's, to find the same disks). */
static const struct option run_opts[] = {
	{ "receiver", required_argument, NULL, OPT_RECEIVER },
	{ "credentials", required_argument, NULL, OPT_CREDENTIALS },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "once", no_argument, NULL, OPT_ONCE },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "ioprio", required_argument, NULL, OPT_IOPRIO },
	/* Hidden: loop devices join automatic selection, for tests. */
	{ "include-loop", no_argument, NULL, OPT_INCLUDE_LOOP },
	{ "chunk-size", required_argument, NULL, OPT_CHUNK },
	{ "level", required_argument, NULL, OPT_LEVEL },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "streams", required_argument, NULL, OPT_STREAMS },
	{ "queue-depth", required_argument, NULL, OPT_QD },
	{ "no-progress", no_argument, NULL, OPT_NO_PROGRESS },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "tracker", required_argument, NULL, OPT_TRACKER },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "epochs", required_argument, NULL, OPT_EPOCHS },
	{ "pre-cutover", required_argument, NULL, OPT_PRE_CUTOVER },
	{ "freeze-limit", required_argument, NULL, OPT_FREEZE_LIMIT },
	{ "max-rate", required_argument, NULL, OPT_MAX_RATE },
	{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
	{ "snapshot-cow", required_argument, NULL, OPT_SNAPSHOT_COW },
	{ "skip-unreadable", no_argument, NULL, OPT_SKIP_UNREADABLE },
	{ "reconcile", no_argument, NULL, OPT_RECONCILE },
	{ "copy", required_argument, NULL, OPT_COPY },
	{ "block-sums-memory", required_argument, NULL, OPT_BLOCK_SUMS_MEMORY },
	/* track's. */
	{ "start", no_argument, NULL, OPT_TRACK_START },
	{ "save", no_argument, NULL, OPT_TRACK_SAVE },
	{ "seal", no_argument, NULL, OPT_TRACK_SEAL },
	{ "consume", no_argument, NULL, OPT_TRACK_CONSUME },
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
	{ "run-dir", required_argument, NULL, OPT_RUN_DIR },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* run's defaults, before the config file and the command line. */
static void run_defaults(struct agent_opts *o)
{
	*o = (struct agent_opts){
		.rd = { .chunk_size = 64u << 10, .batch = 1u << 20, .queue_depth = 16,
			.level = CODEC_LEVEL_DEFAULT, .fault_corrupt_chunk = UINT64_MAX,
			.ioprio = RD_IOPRIO_IDLE },
		.level_min = CODEC_LEVEL_DEFAULT, .level_max = CODEC_LEVEL_ADAPT_MAX,
		.connect_timeout_ms = 15000,
		.ack_timeout_ms = 6 * 3600 * 1000,
		.progress = true,
		.interval_s = 30,
		.freeze_limit_s = 60,
		.copy_used = true,
		.block_sums_memory = 256u << 20,
		.streams = 2,
	};
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	o->rd.workers = ncpu > 0 ? (unsigned)MIN(ncpu, 64) : 2;
}

static int cmd_run(int argc, char **argv)
{
	static const char *const repeatable[] = { "disk", NULL };
	struct agent_opts o;
	char hostname[HOST_NAME_MAX + 1] = "", where[PATH_MAX + 16];
	struct conf_args *ca = NULL;
	struct run_flags f = { .state_dir = "/var/lib/tern/track", .run_dir = "/run/tern" };
	bool track = strcmp(argv[0], "track") == 0;
	int c, r, ret = 2;

	run_defaults(&o);
	/* Options from the config file come first, so the command line's win. */
	if (conf_args_build(argc, argv, run_opts, OPT_CONFIG, AGENT_CONF, repeatable, &ca) < 0)
		goto out;
	while ((c = getopt_long(ca->argc, ca->argv, "h", run_opts, NULL)) != -1) {
		/* An error below names the config line the option came from. */
		log_set_context(conf_args_origin(ca, optind - 1, where, sizeof(where)));
		r = run_option(c, &o, ca, &f);
		if (r != 0) {
			ret = r > 0 ? 0 : 2;
			goto out;
		}
	}
	log_set_context(NULL);
	if (optind < ca->argc) {
		log_error("unexpected argument '%s'", ca->argv[optind]);
		goto out;
	}
	if (track != (f.track != RB_NONE)) {
		log_error(track ? "track needs --start, --save, --seal or --consume" :
			  "--start, --save, --seal and --consume are track's");
		goto out;
	}
	if (!track && (!o.receiver || !o.credentials)) {
		log_error("run needs --receiver HOST:PORT and --credentials BUNDLE");
		goto out;
	}
	/* track sends nothing: it needs no name, and at early boot the host has none yet. */
	if (track && !o.name)
		o.name = "track";
	if (check_run_opts(&o, f.once, hostname, sizeof(hostname)) < 0)
		goto out;
	if (o.ndisks == 0 && pick_disks(&o, f.include_loop) < 0) {
		ret = 1;
		goto out;
	}
	if (track) {
		ret = rb_run(&o, f.track, f.state_dir, f.run_dir) < 0 ? 1 : 0;
		goto out;
	}
	/* A receiver that vanishes must surface as an error return, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	r = session_run(&o);
	/* 3: copied, but not all of it could be read (--skip-unreadable). */
	ret = r < 0 ? 1 : r > 0 ? 3 : 0;
out:
	log_set_context(NULL);
	for (unsigned i = 0; i < o.ndisks; i++) {
		free(o.disks[i].id);
		free(o.disks[i].path);
	}
	free(o.disks);
	conf_args_free(ca);
	return ret;
}

static int cmd_disks(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct disks_list *l = NULL;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	/* disks_scan logs its own failure. */
	r = disks_scan(&l);
	if (r < 0)
		return 1;
	r = json ? disks_print_json(l, stdout) : disks_print_table(l, stdout);
	if (r < 0)
		log_errno(r, "cannot print the disk list");
	disks_list_free(l);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	log_setup("tern-agent", LOG_LVL_INFO);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("tern-agent %s (wire protocol v%d)\n", TERN_VERSION, PROTO_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1);
	/* track reads run's options (and config file) for the disks and their tracking. */
	if (strcmp(argv[1], "track") == 0)
		return cmd_run(argc - 1, argv + 1);
	if (strcmp(argv[1], "disks") == 0)
		return cmd_disks(argc - 1, argv + 1);
	if (strcmp(argv[1], "join") == 0)
		return join_main(argc - 1, argv + 1);
	if (strcmp(argv[1], QZ_GUARD_CMD) == 0)
		return qz_guard_main(argc, argv);
	log_error("unknown command '%s'; see tern-agent --help", argv[1]);
	return 2;
}
