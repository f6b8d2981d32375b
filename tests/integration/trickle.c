// SPDX-License-Identifier: GPL-2.0-only
/* A slow stranger for tests: opens connections to a port, optionally from a chosen source
 * address, and trickles the start of a TLS ClientHello one byte at a time (or sends nothing),
 * noting when the server closes each connection. It never completes a handshake.
 *
 *   trickle HOST PORT [--from ADDR[,ADDR...]] [--count N] [--every MS] [--hold MS]
 *
 * --count connections are opened per source address. Every --every ms (0: never) each
 * open connection gets one more byte. After --hold ms, or once every connection is
 * closed, it prints one line and exits 0:
 *   opened=N refused=R cut=C open=O cut_min_ms=A cut_max_ms=B
 * where refused counts connections the server closed within --refused-within MS (500 by
 * default) of their connect (or whose connect failed), cut those it closed later, open those
 * still open at the end. A caller whose server cuts at a known deadline passes a bound well
 * below it: a refusal seen late (a loaded machine, a sanitizer build) is still a refusal.
 * With --ready FILE it writes "ready" to FILE once all connections are opened. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 4096

struct c {
	int fd;
	uint64_t opened, closed; /* ms; closed 0 while open */
	size_t sent;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A TLS record header announcing a 512-byte handshake message, then a ClientHello's
 * opening; the server waits for the rest. */
static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03,
				       0x03, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99 };

static int connect_from(const char *from, const char *host, unsigned port)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct sockaddr_in src = { .sin_family = AF_INET };
	int fd;

	if (inet_pton(AF_INET, host, &dst.sin_addr) != 1)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (from) {
		if (inet_pton(AF_INET, from, &src.sin_addr) != 1 ||
		    bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			close(fd);
			return -EADDRNOTAVAIL;
		}
	}
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* A test tool's main, kept whole: its options, then one poll loop that opens, trickles and
 * counts the connections, which reads best as one story. */
int main(int argc, char **argv)
{
	static struct c cs[MAX_CONNS];
	const char *host, *ready = NULL;
	char *froms = NULL;
	unsigned port, count = 1, n = 0, refused = 0, cut = 0, open_ = 0;
	uint64_t every = 1000, hold = 10000, within = 500, start, last_send = 0;
	uint64_t cut_min = 0, cut_max = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: trickle HOST PORT [--from ADDR,...] [--count N] [--every MS] "
				"[--hold MS] [--refused-within MS] [--ready FILE]\n");
		return 2;
	}
	host = argv[1];
	port = (unsigned)strtoul(argv[2], NULL, 10);
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--from") == 0)
			froms = argv[i + 1];
		else if (strcmp(argv[i], "--count") == 0)
			count = (unsigned)strtoul(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--every") == 0)
			every = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--hold") == 0)
			hold = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--refused-within") == 0)
			within = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--ready") == 0)
			ready = argv[i + 1];
		else {
			fprintf(stderr, "trickle: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	start = now_ms();
	{
		char *save = NULL, *list = froms ? strdup(froms) : NULL;
		char *from = list ? strtok_r(list, ",", &save) : NULL;

		do {
			for (unsigned k = 0; k < count && n < MAX_CONNS; k++) {
				int fd = connect_from(from, host, port);

				if (fd == -EADDRNOTAVAIL || fd == -EINVAL) {
					fprintf(stderr, "trickle: bad address %s or %s\n", from ? from : "-", host);
					return 2;
				}
				cs[n] = (struct c){ .fd = fd, .opened = now_ms() };
				if (fd < 0) {
					cs[n].closed = cs[n].opened;
					cs[n].fd = -1;
				}
				n++;
			}
			from = list ? strtok_r(NULL, ",", &save) : NULL;
		} while (from);
		free(list);
	}
	if (ready) {
		FILE *f = fopen(ready, "we");

		if (f) {
			fputs("ready\n", f);
			fclose(f);
		}
	}
	for (;;) {
		uint64_t t = now_ms();
		unsigned live = 0;

		if (every && t - last_send >= every) {
			for (unsigned i = 0; i < n; i++) {
				if (cs[i].fd >= 0 && !cs[i].closed) {
					/* One byte at a time, then the same bytes again once past the
					 * header: the server must not see a complete message. */
					unsigned char b = hello[cs[i].sent % sizeof(hello)];

					if (send(cs[i].fd, &b, 1, MSG_NOSIGNAL) == 1)
						cs[i].sent++;
				}
			}
			last_send = t;
		}
		for (unsigned i = 0; i < n; i++) {
			struct pollfd p = { .fd = cs[i].fd, .events = POLLIN };
			char buf[4096];

			if (cs[i].fd < 0 || cs[i].closed)
				continue;
			if (poll(&p, 1, 0) > 0 && (recv(cs[i].fd, buf, sizeof(buf), MSG_DONTWAIT) <= 0))
				cs[i].closed = now_ms();
			else
				live++;
		}
		if (!live || t - start >= hold)
			break;
		usleep(20 * 1000);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!cs[i].closed) {
			open_++;
		} else if (cs[i].closed - cs[i].opened <= within) {
			refused++;
		} else {
			uint64_t d = cs[i].closed - cs[i].opened;

			cut++;
			if (!cut_min || d < cut_min)
				cut_min = d;
			if (d > cut_max)
				cut_max = d;
		}
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	}
	printf("opened=%u refused=%u cut=%u open=%u cut_min_ms=%llu cut_max_ms=%llu\n", n, refused,
	       cut, open_, (unsigned long long)cut_min, (unsigned long long)cut_max);
	return 0;
}
