// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for disk discovery's rules (agent/disks.c, agent/disks-pick.c) on a sysfs
 * tree and a /dev/disk/by-id made in a temp dir (the TERN_DISKS_ROOT seam): which disks
 * `run` picks and the reason each other one is left out, where a disk's stable id comes
 * from (a WWN link before other links, then serial, then wwid) and how it is made a valid
 * DISK_ID, partitions in sysfs's 512-byte units, and the picks themselves (by-id path,
 * loop devices only when asked, two disks with one id refused). The fake devices' names
 * exist nowhere in /dev, so probing them fails and is recorded, as for a vanished disk. */
#include "agent/disks.h"
#include "agent/disks-impl.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "helpers.h"

static char root[PATH_MAX], sys_block[PATH_MAX], by_id[PATH_MAX];
static unsigned next_minor;

static void setup(void)
{
	char sys[PATH_MAX], dev[PATH_MAX], dev_disk[PATH_MAX];

	t_mkdtemp(root, "disks");
	ck_assert_int_eq(mkdir(t_path(sys, root, "sys"), 0700), 0);
	ck_assert_int_eq(mkdir(t_path(sys_block, sys, "block"), 0700), 0);
	ck_assert_int_eq(mkdir(t_path(dev, root, "dev"), 0700), 0);
	ck_assert_int_eq(mkdir(t_path(dev_disk, dev, "disk"), 0700), 0);
	ck_assert_int_eq(mkdir(t_path(by_id, dev_disk, "by-id"), 0700), 0);
	ck_assert_int_eq(setenv("TERN_DISKS_ROOT", root, 1), 0);
	next_minor = 9000;
}

static void teardown(void)
{
	t_rmtree(root);
}

/* Writes ROOT/sys/block/REL (directories made as needed) holding text and a newline. */
static void attr(const char *rel, const char *text)
{
	char path[PATH_MAX], line[512];

	ck_assert_int_lt(snprintf(path, sizeof(path), "%s/%s", sys_block, rel), (int)sizeof(path));
	for (char *s = strchr(path + strlen(sys_block) + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
		*s = '/';
	}
	snprintf(line, sizeof(line), "%s\n", text);
	t_write_text(path, line);
}

/* A whole disk of size_mib MiB with the attributes every disk has. */
static void disk(const char *name, unsigned size_mib)
{
	char rel[128], v[64];

	snprintf(rel, sizeof(rel), "%s/size", name);
	snprintf(v, sizeof(v), "%u", size_mib * 2048);
	attr(rel, v);
	snprintf(rel, sizeof(rel), "%s/dev", name);
	snprintf(v, sizeof(v), "259:%u", next_minor++);
	attr(rel, v);
	snprintf(rel, sizeof(rel), "%s/removable", name);
	attr(rel, "0");
	snprintf(rel, sizeof(rel), "%s/ro", name);
	attr(rel, "0");
	snprintf(rel, sizeof(rel), "%s/queue/rotational", name);
	attr(rel, "0");
	snprintf(rel, sizeof(rel), "%s/queue/logical_block_size", name);
	attr(rel, "512");
	snprintf(rel, sizeof(rel), "%s/queue/physical_block_size", name);
	attr(rel, "4096");
}

static void disk_attr(const char *name, const char *a, const char *value)
{
	char rel[160];

	snprintf(rel, sizeof(rel), "%s/%s", name, a);
	attr(rel, value);
}

/* ROOT/dev/disk/by-id/LINK -> ../../NAME, as udev makes them. */
static void link_id(const char *link, const char *name)
{
	char path[PATH_MAX], target[128];

	snprintf(target, sizeof(target), "../../%s", name);
	t_symlink(target, t_path(path, by_id, link));
}

static struct disks_list *scan(void)
{
	struct disks_list *l = NULL;

	ck_assert_int_eq(disks_scan(&l), 0);
	ck_assert_ptr_nonnull(l);
	return l;
}

static const struct disks_dev *find(const struct disks_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->disks[i].name, name) == 0)
			return &l->disks[i];
	ck_abort_msg("disk %s not listed", name);
	return NULL;
}

static bool listed(const struct disks_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->disks[i].name, name) == 0)
			return true;
	return false;
}

/* Every rule that leaves a disk out, each with its reason, and the disk that qualifies. */
START_TEST(test_disks_rules_leave_out_what_run_must_not_copy)
{
	struct disks_list *l;
	const struct disks_dev *d;

	disk("vdq", 64);
	disk_attr("vdq", "serial", "GOOD-1");
	disk("vdr", 64);                          /* no id at all */
	disk("vds", 64);
	disk_attr("vds", "serial", "USB-1");
	disk_attr("vds", "removable", "1");
	disk("vdt", 64);
	disk_attr("vdt", "serial", "CD-1");
	disk_attr("vdt", "device/type", "5");     /* SCSI type 5: CD/DVD */
	disk("dm-97", 64);
	disk_attr("dm-97", "dm/name", "vg-root");
	disk_attr("dm-97", "dm/uuid", "LVM-abcdef");
	disk("md997", 64);
	disk_attr("md997", "serial", "MD-1");
	disk("sr997", 64);
	disk("ram997", 64);
	disk("zram997", 64);
	disk("loop997", 64);
	disk_attr("loop997", "serial", "LOOP-1");
	disk("vdu", 0);                           /* no medium: not listed */
	l = scan();
	ck_assert(!listed(l, "vdu"));
	d = find(l, "vdq");
	ck_assert(d->pick);
	ck_assert_ptr_null(d->skip_reason);
	ck_assert_str_eq(find(l, "vdr")->skip_reason,
			 "no stable id (no /dev/disk/by-id link, serial or wwid)");
	ck_assert_str_eq(find(l, "vds")->skip_reason, "removable");
	ck_assert_str_eq(find(l, "vdt")->skip_reason, "optical drive");
	d = find(l, "dm-97");
	ck_assert_str_eq(d->skip_reason, "device-mapper device");
	ck_assert(d->dm && d->lvm);
	ck_assert_str_eq(d->dm_name, "vg-root");
	ck_assert_str_eq(find(l, "md997")->skip_reason, "md RAID array");
	ck_assert_str_eq(find(l, "sr997")->skip_reason, "optical drive");
	ck_assert_str_eq(find(l, "ram997")->skip_reason, "ram disk");
	ck_assert_str_eq(find(l, "zram997")->skip_reason, "zram device");
	d = find(l, "loop997");
	ck_assert_str_eq(d->skip_reason, "loop device");
	ck_assert(d->loop);
	ck_assert_ptr_null(d->loop_skip_reason); /* it would qualify with --include-loop */
	for (size_t i = 0; i < l->n; i++)
		ck_assert_msg(!l->disks[i].pick || strcmp(l->disks[i].name, "vdq") == 0,
			      "%s picked", l->disks[i].name);
	/* The fake devices are nowhere in /dev: the probe's failure is recorded, not fatal. */
	ck_assert_int_eq(find(l, "vdq")->probe_err, -ENOENT);
	disks_list_free(l);
}
END_TEST

/* A WWN link is the drive's own id and wins over other links; without links, the serial,
 * then the wwid; an id is made a valid DISK_ID, and a long one keeps a hash of the whole. */
START_TEST(test_disks_stable_id_sources)
{
	struct disks_list *l;
	const struct disks_dev *d;
	char want_path[PATH_MAX];
	const char *long1 = "nvme-VERY_LONG_MODEL_NAME_OF_A_DISK_WITH_A_SERIAL_NUMBER_AAAA_0001";
	const char *long2 = "nvme-VERY_LONG_MODEL_NAME_OF_A_DISK_WITH_A_SERIAL_NUMBER_AAAA_0002";

	disk("vdq", 64);
	link_id("ata-MODEL_SERIAL1", "vdq");
	link_id("wwn-0x5000c500a1b2c3d4", "vdq");
	link_id("ata-MODEL_SERIAL1-part1", "vdq1"); /* another device's link */
	disk("vdr", 64);
	disk_attr("vdr", "device/serial", "  ");    /* blank: no id from it */
	disk_attr("vdr", "serial", "SN 12/34");
	disk("vds", 64);
	disk_attr("vds", "device/wwid", "naa.600a0b80");
	disk("vdt", 64);
	disk_attr("vdt", "serial", "..--");         /* nothing usable is no id */
	disk("vdu", 64);
	link_id(long1, "vdu");
	disk("vdv", 64);
	link_id(long2, "vdv");
	l = scan();
	d = find(l, "vdq");
	ck_assert_str_eq(d->id_source, "by-id");
	ck_assert_str_eq(d->disk_id, "wwn-0x5000c500a1b2c3d4");
	ck_assert_str_eq(d->id_path, t_path(want_path, by_id, "wwn-0x5000c500a1b2c3d4"));
	d = find(l, "vdr");
	ck_assert_str_eq(d->id_source, "serial");
	ck_assert_str_eq(d->disk_id, "SN_12_34");
	ck_assert_ptr_null(d->id_path);
	d = find(l, "vds");
	ck_assert_str_eq(d->id_source, "wwid");
	ck_assert_str_eq(d->disk_id, "naa.600a0b80");
	d = find(l, "vdt");
	ck_assert_str_eq(d->id_source, "none");
	ck_assert_str_eq(d->disk_id, "");
	ck_assert(!d->pick);
	/* Long ids: 64 characters, a valid name, and two that share 47 characters differ. */
	ck_assert_uint_eq(strlen(find(l, "vdu")->disk_id), NAME_MAX_LEN);
	ck_assert(name_is_valid(find(l, "vdu")->disk_id, NAME_MAX_LEN));
	ck_assert_int_eq(strncmp(find(l, "vdu")->disk_id, long1, 47), 0);
	ck_assert_str_ne(find(l, "vdu")->disk_id, find(l, "vdv")->disk_id);
	disks_list_free(l);
}
END_TEST

/* Partitions are listed under their disk, in order, with sysfs's 512-byte units turned
 * into bytes whatever the logical sector size. */
START_TEST(test_disks_partitions_in_bytes)
{
	struct disks_list *l;
	const struct disks_dev *d;

	disk("vdq", 64);
	disk_attr("vdq", "serial", "P-1");
	disk_attr("vdq", "queue/logical_block_size", "4096");
	disk_attr("vdq", "vdq2/partition", "2");
	disk_attr("vdq", "vdq2/start", "67584");
	disk_attr("vdq", "vdq2/size", "2048");
	disk_attr("vdq", "vdq2/dev", "259:8002");
	disk_attr("vdq", "vdq1/partition", "1");
	disk_attr("vdq", "vdq1/start", "2048");
	disk_attr("vdq", "vdq1/size", "65536");
	disk_attr("vdq", "vdq1/dev", "259:8001");
	disk_attr("vdq", "power/control", "auto"); /* not a partition */
	l = scan();
	d = find(l, "vdq");
	ck_assert_uint_eq(d->size, 64u << 20);
	ck_assert_uint_eq(d->log_sec, 4096);
	ck_assert_uint_eq(d->nparts, 2);
	ck_assert_str_eq(d->parts[0].name, "vdq1");
	ck_assert_uint_eq(d->parts[0].partno, 1);
	ck_assert_uint_eq(d->parts[0].start, 1u << 20);
	ck_assert_uint_eq(d->parts[0].size, 32u << 20);
	ck_assert_str_eq(d->parts[0].parent, "vdq");
	ck_assert_str_eq(d->parts[1].name, "vdq2");
	ck_assert_uint_eq(d->parts[1].start, 33u << 20);
	ck_assert_uint_eq(d->parts[1].size, 1u << 20);
	disks_list_free(l);
}
END_TEST

/* The picks: each qualifying disk by its by-id path (else /dev/NAME) and DISK_ID, loop
 * devices only with include_loop, and two chosen disks with one id refused. */
START_TEST(test_disks_pick_auto)
{
	struct disks_list *l;
	struct disks_pick *picks = NULL;
	size_t n = 99;
	char want_path[PATH_MAX];

	disk("vdq", 64);
	link_id("wwn-0x5000aaaa", "vdq");
	disk("vdr", 64);
	disk_attr("vdr", "serial", "S-2");
	disk("vds", 64);                      /* no id: left out */
	disk("loop997", 64);
	disk_attr("loop997", "serial", "L-1");
	l = scan();
	ck_assert_int_eq(disks_pick_auto(l, false, &picks, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(picks[0].id, "wwn-0x5000aaaa");
	ck_assert_str_eq(picks[0].path, t_path(want_path, by_id, "wwn-0x5000aaaa"));
	ck_assert_str_eq(picks[1].id, "S-2");
	ck_assert_str_eq(picks[1].path, "/dev/vdr");
	picks = disks_picks_free(picks, n);
	ck_assert_int_eq(disks_pick_auto(l, true, &picks, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(picks[0].id, "L-1");  /* versionsort: loop997 before vdq */
	picks = disks_picks_free(picks, n);
	disks_list_free(l);

	/* A second disk with the same serial: refused, nothing picked. */
	disk("vdt", 64);
	disk_attr("vdt", "serial", "S-2");
	l = scan();
	ck_assert_int_eq(disks_pick_auto(l, false, &picks, &n), -EEXIST);
	disks_list_free(l);
}
END_TEST

static Suite *disks_suite(void)
{
	Suite *s = suite_create("disks");
	TCase *tc = tcase_create("disks");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_disks_rules_leave_out_what_run_must_not_copy);
	tcase_add_test(tc, test_disks_stable_id_sources);
	tcase_add_test(tc, test_disks_partitions_in_bytes);
	tcase_add_test(tc, test_disks_pick_auto);
	suite_add_tcase(s, tc);
	return s;
}

Suite *(*const t_suites[])(void) = { disks_suite, NULL };
