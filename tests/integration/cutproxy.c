// SPDX-License-Identifier: GPL-2.0-only
/* A TCP proxy for fault tests: relays connections from LISTEN to UPSTREAM and, in each of
 * the first CUT_CONNECTIONS connections, once the client has sent CUT_BYTES:
 *   reset  cuts it (both ways, abruptly), as a dead link looks;
 *   stall  stops relaying (dropping what arrives) and prints "stalled at N", holding the
 *          connection until either end goes away, so a test can kill a process at
 *          exactly that point.
 * CUT_BYTES may be MIN-MAX: each connection is then cut at its own point in that range
 * (a fixed pseudo-random sequence, the same in every run), as a flapping link would.
 * It prints "listening on PORT" and, after each connection, the bytes relayed from clients
 * so far.
 * Usage: cutproxy LISTEN_PORT UPSTREAM_PORT CUT_BYTES CUT_CONNECTIONS [reset|stall]
 *        cutproxy LISTEN_PORT UPSTREAM_PORT 0 0 wan RATE DELAY_MS
 * The wan form emulates a WAN link instead of cutting: each direction carries at most
 * RATE bytes per second (0: unlimited) and delivers what it carries DELAY_MS later (what
 * a link's propagation delay does to the protocol's round trips; TCP's own window runs
 * between each end and the proxy, so a bandwidth-delay product is not emulated). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static bool stall_mode;

/* Holds a connection without relaying until either end closes or resets. What arrives is
 * read and dropped: a full receive window would hold back a killed peer's FIN. */
static void hold(int cfd, int ufd)
{
	static char sink[1 << 16];

	while (!stop) {
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = ufd, .events = POLLIN } };

		if (poll(p, 2, 200) < 0 && errno != EINTR)
			return;
		for (int i = 0; i < 2; i++) {
			if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    read(p[i].fd, sink, sizeof(sink)) <= 0)
				return;
		}
	}
}

/* Relays until either side closes or the client has sent cut bytes (0: never). */
static uint64_t relay(int cfd, int ufd, uint64_t cut)
{
	static char buf[1 << 16];
	uint64_t from_client = 0;

	for (;;) {
		struct pollfd p[2] = { { .fd = cfd, .events = POLLIN }, { .fd = ufd, .events = POLLIN } };

		if (poll(p, 2, 500) < 0 && errno != EINTR)
			break;
		if (stop)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return from_client;
			if (i == 0) {
				if (cut && from_client + (uint64_t)n >= cut && stall_mode) {
					/* Exactly cut bytes reach the server, then nothing. */
					for (ssize_t off = 0; off < (ssize_t)(cut - from_client);) {
						ssize_t w = write(ufd, buf + off,
								  (size_t)(cut - from_client) - (size_t)off);
						if (w <= 0)
							return from_client;
						off += w;
					}
					printf("stalled at %llu\n", (unsigned long long)cut);
					fflush(stdout);
					hold(cfd, ufd);
					return cut;
				}
				if (cut && from_client + (uint64_t)n >= cut) {
					/* Abrupt: a reset on both sides, as a dead link looks. */
					struct linger l = { .l_onoff = 1, .l_linger = 0 };
					setsockopt(cfd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
					setsockopt(ufd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
					return from_client;
				}
				from_client += (uint64_t)n;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = write(p[1 - i].fd, buf + off, (size_t)(n - off));
				if (w <= 0)
					return from_client;
				off += w;
			}
		}
	}
	return from_client;
}

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* One direction of an emulated WAN link: blocks in flight, each due DELAY after it was
 * read, written out no faster than the rate. */
struct wan_block {
	uint64_t due;
	size_t len, off;
	struct wan_block *next;
	char data[];
};

struct wan_dir {
	int from, to;
	struct wan_block *head, *tail;
	size_t queued;
	uint64_t sent, t0; /* for the rate: bytes written since t0 */
	bool eof;
};

static uint64_t wan_rate, wan_delay_ns;
/* What a direction holds: what is in flight over the delay plus 1/8 s at the rate (a
 * router's buffer), so a sender feels the link's rate as TCP backpressure. */
static size_t wan_queue_max = 64u << 20;

/* Writes what is due and what the rate allows now, without waiting: the caller goes on
 * reading both ways meanwhile, as a link takes in packets while it sends others (a relay
 * that slept through its queue would take the sender's data in bursts, and the sender
 * would see a link that stalls and races by turns). Sets *ret_wait to the nanoseconds
 * until more may go (UINT64_MAX: nothing waits). Returns -1 when the far end is gone,
 * else 0. */
static int wan_flush(struct wan_dir *d, uint64_t *ret_wait)
{
	uint64_t now = mono_ns();

	*ret_wait = UINT64_MAX;
	while (d->head) {
		struct wan_block *b = d->head;
		/* At most 16 KiB at a time, each when the rate allows it. */
		size_t n = b->len - b->off < 16384 ? b->len - b->off : 16384;
		ssize_t w;

		if (b->due > now) {
			*ret_wait = b->due - now;
			break;
		}
		if (wan_rate) {
			uint64_t at = d->t0 + (d->sent * 1000000000ull) / wan_rate;

			/* An idle link saves up no more than 0.1 s of sending. */
			if (now > at + 100000000ull) {
				d->t0 += now - at - 100000000ull;
			} else if (at > now) {
				*ret_wait = at - now;
				break;
			}
		}
		w = write(d->to, b->data + b->off, n);
		if (w <= 0)
			return -1;
		b->off += (size_t)w;
		d->sent += (uint64_t)w;
		if (b->off == b->len) {
			d->head = b->next;
			if (!d->head)
				d->tail = NULL;
			d->queued -= b->len;
			free(b);
		}
		now = mono_ns();
	}
	return 0;
}

/* Relays both ways through the emulated link until either side closes and what it sent
 * before has arrived. Returns the bytes the client sent. */
static uint64_t relay_wan(int cfd, int ufd)
{
	struct wan_dir dir[2] = { { .from = cfd, .to = ufd }, { .from = ufd, .to = cfd } };
	uint64_t from_client = 0, wait[2] = { UINT64_MAX, UINT64_MAX };

	dir[0].t0 = dir[1].t0 = mono_ns();
	while (!stop) {
		uint64_t timeout = 500000000ull;
		struct pollfd p[2];
		struct timespec ts;

		for (int i = 0; i < 2; i++) {
			p[i] = (struct pollfd){ .fd = dir[i].from, .events = 0 };
			if (!dir[i].eof && dir[i].queued < wan_queue_max)
				p[i].events = POLLIN;
			timeout = wait[i] < timeout ? wait[i] : timeout;
		}
		if ((dir[0].eof || dir[1].eof) && !dir[0].head && !dir[1].head)
			break; /* one side is gone and nothing is in flight */
		ts.tv_sec = (time_t)(timeout / 1000000000ull);
		ts.tv_nsec = (long)(timeout % 1000000000ull);
		if (ppoll(p, 2, &ts, NULL) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			struct wan_block *b;
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			b = malloc(sizeof(*b) + 65536);
			if (!b)
				return from_client;
			n = read(dir[i].from, b->data, 65536);
			if (n <= 0) {
				free(b);
				dir[i].eof = true;
				continue;
			}
			b->len = (size_t)n;
			b->off = 0;
			b->due = mono_ns() + wan_delay_ns;
			b->next = NULL;
			if (dir[i].tail)
				dir[i].tail->next = b;
			else
				dir[i].head = b;
			dir[i].tail = b;
			dir[i].queued += b->len;
			if (i == 0)
				from_client += (uint64_t)n;
		}
		for (int i = 0; i < 2; i++)
			if (wan_flush(&dir[i], &wait[i]) < 0)
				goto out;
	}
out:
	for (int i = 0; i < 2; i++) {
		while (dir[i].head) {
			struct wan_block *b = dir[i].head;

			dir[i].head = b->next;
			free(b);
		}
	}
	return from_client;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sigaction sa = { .sa_handler = on_term };
	uint64_t total = 0, cut, cut_max, seq = 0x9e3779b97f4a7c15ull;
	int lfd, one = 1, upstream, cuts, nconn = 0;
	char *dash;

	bool wan = argc == 8 && strcmp(argv[5], "wan") == 0;

	if ((argc != 5 && argc != 6 && !wan) ||
	    (argc == 6 && strcmp(argv[5], "reset") != 0 && strcmp(argv[5], "stall") != 0)) {
		fprintf(stderr, "usage: cutproxy LISTEN_PORT UPSTREAM_PORT CUT_BYTES CUT_CONNECTIONS "
				"[reset|stall]\n"
				"       cutproxy LISTEN_PORT UPSTREAM_PORT 0 0 wan RATE DELAY_MS\n");
		return 2;
	}
	if (wan) {
		wan_rate = strtoull(argv[6], NULL, 10);
		wan_delay_ns = strtoull(argv[7], NULL, 10) * 1000000ull;
		if (wan_rate) {
			uint64_t q = wan_rate * (wan_delay_ns / 1000000ull) / 1000 + wan_rate / 8;

			wan_queue_max = q < 262144 ? 262144 : q > (64u << 20) ? 64u << 20 : (size_t)q;
		}
	}
	stall_mode = argc == 6 && strcmp(argv[5], "stall") == 0;
	upstream = atoi(argv[2]);
	cut = strtoull(argv[3], &dash, 10);
	cut_max = *dash == '-' ? strtoull(dash + 1, NULL, 10) : cut;
	if (cut_max < cut) {
		fprintf(stderr, "cutproxy: CUT_BYTES MIN-MAX with MAX < MIN\n");
		return 2;
	}
	cuts = atoi(argv[4]);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (wan) {
		/* The link's only buffer in front of its rate is the queue above. Left to
		 * itself, loopback's receive buffer would grow to tcp_rmem's maximum (32 MiB
		 * here) and hide the rate from the sender for seconds: a buffer no real link
		 * has between a sender and its bottleneck. Set before listen() so the
		 * accepted socket inherits it and its window scale fits. */
		int rcvbuf = 256 << 10;

		setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	}
	a.sin_port = htons((uint16_t)atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0) {
		perror("cutproxy: listen");
		return 1;
	}
	socklen_t sl = sizeof(a);
	getsockname(lfd, (struct sockaddr *)&a, &sl);
	printf("listening on %d\n", ntohs(a.sin_port));
	fflush(stdout);
	while (!stop) {
		struct pollfd p = { .fd = lfd, .events = POLLIN };
		int cfd, ufd;

		if (poll(&p, 1, 500) <= 0)
			continue;
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0)
			continue;
		ufd = tcp_connect(upstream);
		if (ufd < 0) {
			close(cfd);
			continue;
		}
		nconn++;
		{
			uint64_t at = cut;

			if (cut_max > cut) {
				/* xorshift64: reproducible, and spread over the range. */
				seq ^= seq << 13;
				seq ^= seq >> 7;
				seq ^= seq << 17;
				at = cut + seq % (cut_max - cut + 1);
			}
			total += wan ? relay_wan(cfd, ufd) : relay(cfd, ufd, nconn <= cuts ? at : 0);
		}
		close(cfd);
		close(ufd);
		/* A running total after every connection, so nothing depends on how we end. */
		printf("relayed %llu\n", (unsigned long long)total);
		fflush(stdout);
	}
	return 0;
}
