// SPDX-License-Identifier: GPL-2.0-only
/* The receiver's control socket; see control.h. Requests:
 *   cutover AGENT tracked|full TIMEOUT_SECONDS */
#include "receiver/control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/proto.h"
#include "common/util.h"

struct control {
	struct rcv_server *srv;
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void reply(int fd, const char *text)
{
	(void)write_full(fd, text, strlen(text));
}

static void serve_one(struct control *ctl, int fd)
{
	char line[256] = "", agent[NAME_MAX_LEN + 2], mode[16], tbuf[16], out[4200];
	struct rcv_cutover *req = NULL;
	uint64_t timeout;
	ssize_t n;
	int r;

	/* One short line; a slow or silent client gets 5 s. */
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = read(fd, line, sizeof(line) - 1);
	if (n <= 0)
		return;
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (sscanf(line, "cutover %65s %15s %15s", agent, mode, tbuf) != 3 ||
	    parse_u64(tbuf, 1, 86400, &timeout) < 0 || !name_is_valid(agent, strlen(agent)) ||
	    (strcmp(mode, "tracked") != 0 && strcmp(mode, "full") != 0)) {
		reply(fd, "FAILED: bad request\n");
		return;
	}
	req = calloc(1, sizeof(*req));
	if (!req) {
		reply(fd, "FAILED: out of memory\n");
		return;
	}
	req->verify = strcmp(mode, "full") == 0 ? PROTO_VERIFY_FULL : PROTO_VERIFY_TRACKED;
	log_info("control: cutover of agent %s asked (verify %s, timeout %u s)", agent, mode,
		 (unsigned)timeout);
	r = rcv_cutover(ctl->srv, agent, req, (unsigned)timeout);
	if (r == 0)
		snprintf(out, sizeof(out), "%sOK\n", req->proof);
	else
		snprintf(out, sizeof(out), "FAILED: %s\n", req->proof);
	reply(fd, out);
	if (r < 0)
		log_error("control: cutover of agent %s failed: %s", agent, req->proof);
	free(req);
}

static void *control_main(void *arg)
{
	struct control *ctl = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = ctl->fd, .events = POLLIN },
				       { .fd = ctl->stop_pipe[0], .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(ctl->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(ctl, fd);
		close(fd);
	}
	return NULL;
}

int control_start(struct rcv_server *srv, struct control **ret_ctl)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct control *ctl = calloc(1, sizeof(*ctl));
	int r;

	if (!ctl)
		return -ENOMEM;
	ctl->srv = srv;
	ctl->fd = ctl->stop_pipe[0] = ctl->stop_pipe[1] = -1;
	if (snprintf(ctl->path, sizeof(ctl->path), "%s/%s", srv->state_dir, CONTROL_SOCKET) >=
	    (int)sizeof(ctl->path)) {
		r = -ENAMETOOLONG;
		goto fail;
	}
	memcpy(a.sun_path, ctl->path, strlen(ctl->path) + 1);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0 || pipe2(ctl->stop_pipe, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	/* A socket left by a receiver that died is stale: nothing else may own this path. */
	unlink(ctl->path);
	if (bind(ctl->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(ctl->path, 0600) < 0 ||
	    listen(ctl->fd, 8) < 0) {
		r = -errno;
		goto fail;
	}
	r = -pthread_create(&ctl->thread, NULL, control_main, ctl);
	if (r < 0)
		goto fail;
	*ret_ctl = ctl;
	return 0;
fail:
	if (ctl->fd >= 0)
		close(ctl->fd);
	if (ctl->stop_pipe[0] >= 0) {
		close(ctl->stop_pipe[0]);
		close(ctl->stop_pipe[1]);
	}
	free(ctl);
	return r;
}

struct control *control_stop(struct control *ctl)
{
	if (!ctl)
		return NULL;
	/* A cutover being waited for would hold the join for its whole timeout. */
	pthread_mutex_lock(&ctl->srv->lock);
	ctl->srv->stopping = true;
	pthread_cond_broadcast(&ctl->srv->cut_cv);
	pthread_mutex_unlock(&ctl->srv->lock);
	(void)write(ctl->stop_pipe[1], "x", 1);
	pthread_join(ctl->thread, NULL);
	close(ctl->fd);
	close(ctl->stop_pipe[0]);
	close(ctl->stop_pipe[1]);
	unlink(ctl->path);
	free(ctl);
	return NULL;
}
