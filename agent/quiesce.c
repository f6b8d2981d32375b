// SPDX-License-Identifier: GPL-2.0-only
/* Quiescing the source for the final epoch; see quiesce.h. */
#include "agent/quiesce.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define QZ_MAX_MOUNTS 64
/* The guardian thaws this long after the agent's own watchdog should have: only when the
 * agent cannot (stopped, hung in the kernel). */
#define QZ_GUARD_GRACE_S 2
/* How long the agent waits for a new guardian to say it runs. */
#define QZ_GUARD_READY_MS 3000
#define QZ_GUARD_FD 3

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
	int guard_fd;    /* our end of the guardian's socket; -1: no guardian */
	pid_t guard_pid; /* 0: none to reap */
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

/* Tells the guardian we thawed (or never froze) and lets it go: it must not thaw later
 * what somebody else may have frozen by then. */
static void guard_release(struct quiesce *qz)
{
	if (qz->guard_fd < 0)
		return;
	if (send(qz->guard_fd, "D", 1, MSG_NOSIGNAL) < 0)
		log_debug("telling the thaw guardian: %s", strerror(errno));
	close(qz->guard_fd);
	qz->guard_fd = -1;
}

/* Thaws everything still frozen, then says so; called with qz->lock held. Every FITHAW
 * comes before the first log line: stderr may be a file on a filesystem still frozen,
 * where a write would block until somebody else thaws it. */
static void thaw_locked(struct quiesce *qz)
{
	int err[QZ_MAX_MOUNTS];
	bool was[QZ_MAX_MOUNTS];

	for (unsigned i = 0; i < qz->n; i++) {
		was[i] = qz->fds[i] >= 0;
		if (!was[i])
			continue;
		err[i] = ioctl(qz->fds[i], FITHAW, 0) < 0 && errno != EINVAL ? -errno : 0;
		close(qz->fds[i]);
		qz->fds[i] = -1;
	}
	qz->thawed = true;
	guard_release(qz);
	for (unsigned i = 0; i < qz->n; i++) {
		if (!was[i])
			continue;
		if (err[i] < 0)
			log_errno(err[i], "FITHAW %s", qz->paths[i]);
		else
			log_info("thawed %s", qz->paths[i]);
	}
}

/* Hands the guardian an open directory of a mount about to be frozen. With no guardian,
 * or one that has gone, the freeze still has the watchdog thread; said once. */
static void guard_hold(struct quiesce *qz, int fd, const char *path)
{
	char data[1 + 4096];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = data };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm;
	size_t len = strnlen(path, sizeof(data) - 1);

	if (qz->guard_fd < 0)
		return;
	data[0] = 'F';
	memcpy(data + 1, path, len);
	iov.iov_len = 1 + len;
	memset(&ctl, 0, sizeof(ctl));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	if (sendmsg(qz->guard_fd, &msg, MSG_NOSIGNAL) < 0) {
		log_warn("the thaw guardian is gone (%s): if this agent is killed while frozen, "
			 "run fsfreeze --unfreeze by hand", strerror(errno));
		close(qz->guard_fd);
		qz->guard_fd = -1;
	}
}

/* Starts the guardian: this program again (/proc/self/exe), so it is a clean
 * single-threaded process, with its end of a SEQPACKET socket on fd 3. Waits until it
 * says it runs. Without one the cutover goes on, guarded by the watchdog thread only. */
static void guard_start(struct quiesce *qz)
{
	struct pollfd p = { .events = POLLIN };
	char lim[16], c = 0;
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("no thaw guardian (socketpair: %s)", strerror(errno));
		return;
	}
	snprintf(lim, sizeof(lim), "%u", qz->limit_s);
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls between fork and exec in a threaded process. */
		if (sv[1] == QZ_GUARD_FD ? fcntl(sv[1], F_SETFD, 0) < 0
					  : dup2(sv[1], QZ_GUARD_FD) < 0)
			_exit(127);
		execl("/proc/self/exe", "tern-agent", QZ_GUARD_CMD, lim, (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (pid < 0) {
		log_warn("no thaw guardian (fork: %s)", strerror(errno));
		close(sv[0]);
		return;
	}
	p.fd = sv[0];
	if (poll(&p, 1, QZ_GUARD_READY_MS) != 1 || recv(sv[0], &c, 1, 0) != 1 || c != 'R') {
		log_warn("the thaw guardian did not start; if this agent is killed while frozen, "
			 "run fsfreeze --unfreeze by hand");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		close(sv[0]);
		return;
	}
	qz->guard_fd = sv[0];
	qz->guard_pid = pid;
}

/* Reaps the guardian after it was told we thawed; it exits at once. */
static void guard_reap(struct quiesce *qz)
{
	for (int i = 0; qz->guard_pid > 0 && i < 100; i++) {
		pid_t r = waitpid(qz->guard_pid, NULL, WNOHANG);

		if (r == qz->guard_pid || (r < 0 && errno != EINTR))
			qz->guard_pid = 0;
		else
			usleep(10000);
	}
	if (qz->guard_pid > 0) {
		kill(qz->guard_pid, SIGKILL);
		waitpid(qz->guard_pid, NULL, 0);
		qz->guard_pid = 0;
	}
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
			/* Thaw first: the log may sit on the frozen filesystem. */
			qz->fired = true;
			thaw_locked(qz);
			log_error("the source stayed frozen for %u s: the watchdog thawed it",
				  qz->limit_s);
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
	struct stat st;
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
	/* The path may reach another filesystem than the one mountinfo names there: one
	 * mounted over it, or a mount moved since the table was read. Freezing that one
	 * would leave the source's filesystem live for the final epoch. */
	if (fstat(fd, &st) < 0) {
		r = log_errno(-errno, "cannot stat mount point %s", path);
		close(fd);
		goto out;
	}
	if (st.st_dev != dev) {
		log_error("%s is listed as the mount of source device %u:%u but leads to device "
			  "%u:%u (mounted over, or moved); not freezing it", path, major(dev),
			  minor(dev), major(st.st_dev), minor(st.st_dev));
		r = -EXDEV;
		close(fd);
		goto out;
	}
	/* The guardian holds the mount before it is frozen: never a moment unguarded. */
	guard_hold(qz, fd, path);
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
	qz->guard_fd = -1;
	/* The watchdog and the guardian run before the first freeze, so no freeze is ever
	 * unguarded. */
	guard_start(qz);
	r = -pthread_create(&qz->thread, NULL, watchdog_main, qz);
	if (r < 0) {
		guard_release(qz);
		guard_reap(qz);
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
	guard_reap(qz);
	for (unsigned i = 0; i < qz->n; i++)
		free(qz->paths[i]);
	pthread_cond_destroy(&qz->cv);
	pthread_mutex_destroy(&qz->lock);
	free(qz);
	return NULL;
}

/* The guardian: thaws what it holds when the agent's socket closes without a "D" (the
 * agent died) or when the freeze outlives the agent's own limit by QZ_GUARD_GRACE_S (it is
 * stopped or hung and its watchdog cannot run). Ignores the signals that end a session,
 * so a Ctrl-C or a service stop reaching the whole group leaves it to see how the agent
 * ended. */
static void guard_thaw_all(int *fds, char (*paths)[4097], unsigned n, const char *why)
{
	int err[QZ_MAX_MOUNTS];

	/* All thawed before the first log line, as in thaw_locked. */
	for (unsigned i = 0; i < n; i++) {
		err[i] = ioctl(fds[i], FITHAW, 0) < 0 ? -errno : 0;
		close(fds[i]);
	}
	for (unsigned i = 0; i < n; i++) {
		if (err[i] == 0)
			log_error("%s: the thaw guardian thawed %s", why, paths[i]);
		else if (err[i] != -EINVAL)
			log_errno(err[i], "thaw guardian: FITHAW %s", paths[i]);
	}
}

int qz_guard_main(int argc, char **argv)
{
	static char paths[QZ_MAX_MOUNTS][4097];
	int fds[QZ_MAX_MOUNTS];
	unsigned n = 0, limit_s;
	struct timespec now, deadline;
	sigset_t none;
	uint64_t v;

	if (argc != 3 || parse_u64(argv[2], 0, 86400, &v) < 0 ||
	    fcntl(QZ_GUARD_FD, F_GETFD) < 0) {
		log_error("%s is internal to tern-agent's cutover", QZ_GUARD_CMD);
		return 2;
	}
	limit_s = (unsigned)v;
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	fcntl(QZ_GUARD_FD, F_SETFD, FD_CLOEXEC);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += limit_s + QZ_GUARD_GRACE_S;
	if (send(QZ_GUARD_FD, "R", 1, MSG_NOSIGNAL) != 1)
		return 1;
	for (;;) {
		struct pollfd p = { .fd = QZ_GUARD_FD, .events = POLLIN };
		char data[1 + 4096];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} ctl;
		struct iovec iov = { .iov_base = data, .iov_len = sizeof(data) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = sizeof(ctl.buf) };
		struct cmsghdr *cm;
		long left_ms;
		ssize_t len;
		int fd = -1, ready;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left_ms = (deadline.tv_sec - now.tv_sec) * 1000 +
			  (deadline.tv_nsec - now.tv_nsec) / 1000000;
		ready = left_ms > 0 ? poll(&p, 1, (int)left_ms) : 0;
		if (ready < 0 && errno == EINTR)
			continue; /* never block in recvmsg past the deadline */
		if (ready == 0) {
			guard_thaw_all(fds, paths, n, "the agent kept the source frozen past its limit");
			return 1;
		}
		len = recvmsg(QZ_GUARD_FD, &msg, MSG_CMSG_CLOEXEC);
		if (len < 0 && errno == EINTR)
			continue;
		if (len <= 0) {
			/* End of file without "D": the agent ended while frozen. */
			guard_thaw_all(fds, paths, n, "the agent ended while the source was frozen");
			return n ? 1 : 0;
		}
		for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
			    cm->cmsg_len == CMSG_LEN(sizeof(int)))
				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		if (data[0] == 'D') {
			if (fd >= 0)
				close(fd);
			for (unsigned i = 0; i < n; i++)
				close(fds[i]);
			return 0;
		}
		if (data[0] != 'F' || fd < 0 || n == QZ_MAX_MOUNTS) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		fds[n] = fd;
		memcpy(paths[n], data + 1, (size_t)len - 1);
		paths[n][len - 1] = '\0';
		n++;
	}
}
