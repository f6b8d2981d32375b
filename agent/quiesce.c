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

#define QZ_MAX_MOUNTS 64

struct quiesce {
	int fds[QZ_MAX_MOUNTS];     /* an open directory on each frozen mount */
	char *paths[QZ_MAX_MOUNTS];
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

	clock_gettime(CLOCK_REALTIME, &deadline);
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

/* Adds mount point path (escaped as in mountinfo) when it is mounted from dev. */
static int freeze_one(struct quiesce *qz, const char *path)
{
	int fd;

	if (qz->n == QZ_MAX_MOUNTS)
		return -E2BIG;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_errno(-errno, "cannot open mount point %s", path);
	if (ioctl(fd, FIFREEZE, 0) < 0) {
		int r = -errno;

		close(fd);
		return log_errno(r, "FIFREEZE %s", path);
	}
	qz->fds[qz->n] = fd;
	qz->paths[qz->n] = strdup(path);
	qz->n++;
	log_info("froze %s", path);
	return 0;
}

int qz_freeze(struct source **srcs, unsigned n, unsigned limit_s, struct quiesce **ret_qz)
{
	struct quiesce *qz = calloc(1, sizeof(*qz));
	char line[4096];
	FILE *f;
	int r = 0;

	if (!qz)
		return -ENOMEM;
	pthread_mutex_init(&qz->lock, NULL);
	pthread_cond_init(&qz->cv, NULL);
	qz->limit_s = limit_s;
	/* The watchdog runs before the first freeze, so no freeze is ever unguarded. */
	r = -pthread_create(&qz->thread, NULL, watchdog_main, qz);
	if (r < 0) {
		free(qz);
		return r;
	}
	qz->watchdog = true;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		r = log_errno(-errno, "cannot read /proc/self/mountinfo");
		goto fail;
	}
	while (r == 0 && fgets(line, sizeof(line), f)) {
		unsigned maj, min;
		char mnt[4096];

		/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": octal escapes only in paths with
		 * spaces and the like, which we skip rather than misread. */
		if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &maj, &min, mnt) != 3 || strchr(mnt, '\\'))
			continue;
		for (unsigned i = 0; i < n; i++) {
			struct stat st;

			if (!srcs[i]->blockdev || fstat(srcs[i]->fd, &st) < 0)
				continue;
			if (major(st.st_rdev) == maj && minor(st.st_rdev) == min) {
				r = freeze_one(qz, mnt);
				break;
			}
		}
	}
	fclose(f);
	if (r < 0)
		goto fail;
	if (qz->n == 0)
		log_info("no filesystem is mounted from the sources; nothing to freeze");
	*ret_qz = qz;
	return 0;
fail:
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
