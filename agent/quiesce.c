// SPDX-License-Identifier: GPL-2.0-only
/* Quiescing the source for the final epoch; see quiesce.h. */
#include "agent/quiesce.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define QZ_MAX_MOUNTS 64

struct quiesce {
	int fds[QZ_MAX_MOUNTS];     /* an open directory on each frozen mount */
	char *paths[QZ_MAX_MOUNTS];
	dev_t devs[QZ_MAX_MOUNTS];  /* its filesystem's device: one FIFREEZE per superblock */
	unsigned n;
	pthread_mutex_t lock;
	pthread_cond_t cv;
	bool thawed, watchdog, fired;
	unsigned limit_s;
	pthread_t thread;
};

int qz_run_hook(const char *cmd)
{
	pid_t pid;
	int status;

	log_info("running the pre-cutover hook: %s", cmd);
	pid = fork();
	if (pid < 0)
		return log_errno(-errno, "cannot run the pre-cutover hook");
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return log_errno(-errno, "waiting for the pre-cutover hook");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		log_error("the pre-cutover hook failed (%s %d); not cutting over",
			  WIFEXITED(status) ? "exit" : "signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		return -EIO;
	}
	return 0;
}

/* Thaws everything still frozen; called with qz->lock held. */
static void thaw_locked(struct quiesce *qz)
{
	for (unsigned i = 0; i < qz->n; i++) {
		if (qz->fds[i] < 0)
			continue;
		if (ioctl(qz->fds[i], FITHAW, 0) < 0 && errno != EINVAL)
			log_errno(-errno, "FITHAW %s", qz->paths[i]);
		else
			log_info("thawed %s", qz->paths[i]);
		close(qz->fds[i]);
		qz->fds[i] = -1;
	}
	qz->thawed = true;
}

static void *watchdog_main(void *arg)
{
	struct quiesce *qz = arg;
	struct timespec deadline;

	/* Monotonic (the condition variable's clock too): a clock step must not stretch it. */
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += qz->limit_s;
	pthread_mutex_lock(&qz->lock);
	while (!qz->thawed) {
		if (pthread_cond_timedwait(&qz->cv, &qz->lock, &deadline) == ETIMEDOUT) {
			log_error("the source stayed frozen for %u s: the watchdog thaws it now",
				  qz->limit_s);
			qz->fired = true;
			thaw_locked(qz);
		}
	}
	pthread_mutex_unlock(&qz->lock);
	return NULL;
}

/* Freezes the filesystem of device dev mounted at path, unless a mount of it is frozen
 * already (bind mounts and namespaces list one filesystem several times, and a second
 * FIFREEZE fails with EBUSY). Under the lock, so the watchdog never races a freeze, and
 * never after the watchdog has thawed: nothing may stay frozen unguarded. */
static int freeze_one(struct quiesce *qz, const char *path, dev_t dev)
{
	int fd, r = 0;

	pthread_mutex_lock(&qz->lock);
	for (unsigned i = 0; i < qz->n; i++)
		if (qz->devs[i] == dev)
			goto out;
	if (qz->thawed) {
		r = -ETIMEDOUT;
		goto out;
	}
	if (qz->n == QZ_MAX_MOUNTS) {
		r = -E2BIG;
		goto out;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = log_errno(-errno, "cannot open mount point %s", path);
		goto out;
	}
	if (ioctl(fd, FIFREEZE, 0) < 0) {
		r = log_errno(-errno, "FIFREEZE %s", path);
		close(fd);
		goto out;
	}
	qz->fds[qz->n] = fd;
	qz->devs[qz->n] = dev;
	qz->paths[qz->n] = strdup(path);
	qz->n++;
	log_info("froze %s", path);
out:
	pthread_mutex_unlock(&qz->lock);
	return r;
}

/* Whether a filesystem on dev belongs to a source: the source device itself, or a
 * partition of a whole-disk source. */
static bool from_sources(dev_t dev, const dev_t *src_devs, unsigned n)
{
	dev_t whole = dev;
	uint64_t start;

	if (major(dev) == 0)
		return false; /* tmpfs, proc and the like */
	if (src_whole_disk(dev, &whole, &start) < 0)
		whole = dev;
	for (unsigned i = 0; i < n; i++)
		if (src_devs[i] == dev || src_devs[i] == whole)
			return true;
	return false;
}

int qz_freeze(struct source **srcs, unsigned n, unsigned limit_s, struct quiesce **ret_qz)
{
	struct quiesce *qz = calloc(1, sizeof(*qz));
	dev_t *src_devs = calloc(n ? n : 1, sizeof(*src_devs));
	pthread_condattr_t ca;
	unsigned nsrc = 0;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	if (!qz || !src_devs) {
		free(qz);
		free(src_devs);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		struct stat st;

		if (srcs[i]->blockdev && fstat(srcs[i]->fd, &st) == 0)
			src_devs[nsrc++] = st.st_rdev;
	}
	pthread_mutex_init(&qz->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&qz->cv, &ca);
	pthread_condattr_destroy(&ca);
	qz->limit_s = limit_s;
	/* The watchdog runs before the first freeze, so no freeze is ever unguarded. */
	r = -pthread_create(&qz->thread, NULL, watchdog_main, qz);
	if (r < 0) {
		pthread_cond_destroy(&qz->cv);
		pthread_mutex_destroy(&qz->lock);
		free(qz);
		free(src_devs);
		return r;
	}
	qz->watchdog = true;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		r = log_errno(-errno, "cannot read /proc/self/mountinfo");
		goto fail;
	}
	while (r == 0 && getline(&line, &cap, f) > 0) {
		unsigned maj, min;
		char mnt[4096];

		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...", paths with \ooo escapes. */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) != 3)
			continue;
		if (!from_sources(makedev(maj, min), src_devs, nsrc))
			continue;
		mountinfo_unescape(mnt);
		r = freeze_one(qz, mnt, makedev(maj, min));
	}
	free(line);
	fclose(f);
	if (r < 0)
		goto fail;
	if (qz->n == 0)
		log_info("no filesystem is mounted from the sources; nothing to freeze");
	free(src_devs);
	*ret_qz = qz;
	return 0;
fail:
	free(src_devs);
	qz_thaw(qz);
	return r;
}

bool qz_watchdog_fired(struct quiesce *qz)
{
	bool fired;

	pthread_mutex_lock(&qz->lock);
	fired = qz->fired;
	pthread_mutex_unlock(&qz->lock);
	return fired;
}

struct quiesce *qz_thaw(struct quiesce *qz)
{
	if (!qz)
		return NULL;
	pthread_mutex_lock(&qz->lock);
	if (!qz->thawed)
		thaw_locked(qz);
	pthread_cond_broadcast(&qz->cv);
	pthread_mutex_unlock(&qz->lock);
	if (qz->watchdog)
		pthread_join(qz->thread, NULL);
	for (unsigned i = 0; i < qz->n; i++)
		free(qz->paths[i]);
	pthread_cond_destroy(&qz->cv);
	pthread_mutex_destroy(&qz->lock);
	free(qz);
	return NULL;
}
