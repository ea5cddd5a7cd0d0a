/*
 * linkem - a userspace link emulator for tests and benchmarks: a TCP proxy
 * on 127.0.0.1 that makes the path to one server look like a long, thin
 * link (this machine's kernel has tbf but no netem).
 *
 *   linkem --to HOST:PORT [--listen PORT] [--port-file F]
 *          [--delay-ms D] [--rate BITS]      (each direction)
 *          [--up-rate BITS] [--down-rate BITS]
 *          [--cut-after BYTES] [--stall-after BYTES] [--max-conns N]
 *          [--shared 1]
 *
 * Each direction of each connection is a link of its own: bytes read from
 * one side leave the emulated sender at the link's rate (serialisation,
 * one after the other) and arrive --delay-ms later, so a round trip costs
 * 2*D plus the transfer time; a link's queue holds at most a bandwidth-delay
 * product plus 256 KiB, beyond which the proxy stops reading and TCP's own
 * flow control pushes back on the sender, as a bottleneck router's does.
 * With --shared 1, all connections share one link each way instead (one
 * emulated sender, its rate split among them in the order their bytes
 * come in), as on a real access link: there, opening more connections
 * does not make the link faster, which the default would suggest.
 * "down" is the server-to-client direction.  The client's connect() returns
 * at once (loopback), but its first bytes leave only after one round trip,
 * what a TCP handshake over the link would cost.
 *
 * Losses a test can ask for, counted in server-to-client bytes of one
 * connection: --cut-after closes both sides of a connection once that many
 * bytes were delivered (a reset link), --stall-after stops delivering (a
 * link that goes silent).  The proxy prints one line per connection to
 * stderr when it ends (bytes each way) so that tests can count.
 *
 * Single-threaded, poll(); not part of libcairn (a test tool).
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#define SEG_MAX 16384
#define MAX_CONNS_DEFAULT 256

struct seg {
	struct seg *next;
	uint64_t due_us; /* when its last byte arrives at the far end */
	size_t len, off;
	unsigned char data[];
};

/* One direction: bytes read from `from`, delivered to `to`. */
struct dir {
	int from, to;
	double rate;	   /* bits/s; 0: unlimited */
	uint64_t free_us;  /* when the emulated sender is idle again */
	struct seg *head, *tail;
	size_t queued, qmax;
	uint64_t delivered;
	bool eof_in;	   /* `from` said EOF: shut `to` once the queue drains */
	bool shut;
};

struct conn {
	struct dir d[2]; /* 0: up (client -> server), 1: down */
	int client, server;
	bool dead;
	bool server_gone; /* the server closed both ways: poll it no more */
	unsigned id;
};

static struct {
	const char *to_host, *to_port;
	unsigned listen_port;
	const char *port_file;
	uint64_t delay_us;
	double up_rate, down_rate;
	uint64_t cut_after, stall_after; /* 0: never */
	unsigned max_conns;
	bool shared; /* one emulated sender each way for all connections */
} opt = {.max_conns = MAX_CONNS_DEFAULT};

/* With --shared: when each direction's one sender is idle again. */
static uint64_t shared_free_us[2];

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
	fprintf(stderr, "linkem: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t parse_num(const char *s, const char *name)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	double mul = 1;
	if (*end == 'k' || *end == 'K')
		mul = 1e3, end++;
	else if (*end == 'M')
		mul = 1e6, end++;
	else if (*end == 'G')
		mul = 1e9, end++;
	if (errno || end == s || *end || v < 0) {
		fprintf(stderr, "linkem: %s: not a number: %s\n", name, s);
		exit(2);
	}
	return (uint64_t)(v * mul);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int connect_upstream(void)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res;
	if (getaddrinfo(opt.to_host, opt.to_port, &hints, &res) != 0)
		return -1;
	int fd = -1;
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype, 0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		set_nonblock(fd);
	return fd;
}

static size_t queue_max(double rate)
{
	/* a bandwidth-delay product (both ways) and some slack */
	double bdp = rate > 0 ? rate / 8 * (double)opt.delay_us * 2 / 1e6 : 4e6;
	return (size_t)bdp + 262144;
}

static void dir_init(struct dir *d, int from, int to, double rate)
{
	memset(d, 0, sizeof(*d));
	d->from = from;
	d->to = to;
	d->rate = rate;
	d->qmax = queue_max(rate);
}

static void dir_free(struct dir *d)
{
	while (d->head) {
		struct seg *s = d->head;
		d->head = s->next;
		free(s);
	}
	d->tail = NULL;
	d->queued = 0;
}

static void conn_close(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	fprintf(stderr, "linkem: conn %u closed up=%" PRIu64 " down=%" PRIu64 "\n", c->id,
		c->d[0].delivered, c->d[1].delivered);
	close(c->client);
	close(c->server);
	dir_free(&c->d[0]);
	dir_free(&c->d[1]);
}

/* Read what the queue has room for; timestamp it through the link. */
static void dir_read(struct conn *c, struct dir *d)
{
	if (d->eof_in || d->queued >= d->qmax)
		return;
	size_t want = d->qmax - d->queued;
	if (want > SEG_MAX)
		want = SEG_MAX;
	struct seg *s = malloc(sizeof(*s) + want);
	if (!s)
		die("malloc");
	ssize_t n = read(d->from, s->data, want);
	if (n <= 0) {
		free(s);
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			d->eof_in = true;
			if (n < 0)
				conn_close(c);
		}
		return;
	}
	uint64_t t = now_us();
	uint64_t *free_us = opt.shared ? &shared_free_us[d == &c->d[1]] : &d->free_us;
	uint64_t start = *free_us > t ? *free_us : t;
	uint64_t tx = d->rate > 0 ? (uint64_t)((double)n * 8 * 1e6 / d->rate) : 0;
	*free_us = start + tx;
	s->due_us = *free_us + opt.delay_us;
	s->len = (size_t)n;
	s->off = 0;
	s->next = NULL;
	if (d->tail)
		d->tail->next = s;
	else
		d->head = s;
	d->tail = s;
	d->queued += (size_t)n;
}

static bool stalled(const struct conn *c, const struct dir *d)
{
	return d == &c->d[1] && opt.stall_after && d->delivered >= opt.stall_after;
}

/* Deliver what has arrived; the caller's timeout covers what has not. */
static void dir_write(struct conn *c, struct dir *d, uint64_t t)
{
	while (d->head && d->head->due_us <= t && !c->dead && !stalled(c, d)) {
		struct seg *s = d->head;
		size_t len = s->len - s->off;
		if (d == &c->d[1] && opt.stall_after && d->delivered + len > opt.stall_after)
			len = (size_t)(opt.stall_after - d->delivered);
		if (d == &c->d[1] && opt.cut_after && d->delivered + len > opt.cut_after)
			len = (size_t)(opt.cut_after - d->delivered);
		ssize_t n = len ? write(d->to, s->data + s->off, len) : 0;
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				conn_close(c);
			return;
		}
		s->off += (size_t)n;
		d->queued -= (size_t)n;
		d->delivered += (uint64_t)n;
		if (d == &c->d[1] && opt.cut_after && d->delivered >= opt.cut_after) {
			fprintf(stderr, "linkem: conn %u cut after %" PRIu64 " bytes\n", c->id,
				d->delivered);
			/* a reset, not a clean end: the client must not take a
			 * short body for a whole one */
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(c->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			conn_close(c);
			return;
		}
		if (s->off < s->len)
			return;
		d->head = s->next;
		if (!d->head)
			d->tail = NULL;
		free(s);
	}
	if (!d->head && d->eof_in && !d->shut && !c->dead) {
		shutdown(d->to, SHUT_WR);
		d->shut = true;
	}
}

static int listen_on(unsigned port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(fd, 128) < 0)
		die("listen");
	socklen_t sl = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	opt.listen_port = ntohs(sa.sin_port);
	set_nonblock(fd);
	return fd;
}

static void usage(void)
{
	fputs("usage: linkem --to HOST:PORT [--listen PORT] [--port-file F] [--delay-ms D]\n"
	      "              [--rate BITS] [--up-rate BITS] [--down-rate BITS]\n"
	      "              [--cut-after BYTES] [--stall-after BYTES] [--max-conns N]\n"
	      "              [--shared 1]\n",
	      stderr);
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	static char host[256], port[16];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		if (!strcmp(a, "--to")) {
			const char *colon = strrchr(v, ':');
			if (!colon || (size_t)(colon - v) >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
				usage();
			memcpy(host, v, (size_t)(colon - v));
			host[colon - v] = 0;
			memcpy(port, colon + 1, strlen(colon + 1) + 1);
			opt.to_host = host;
			opt.to_port = port;
		} else if (!strcmp(a, "--listen")) {
			opt.listen_port = (unsigned)parse_num(v, a);
		} else if (!strcmp(a, "--port-file")) {
			opt.port_file = v;
		} else if (!strcmp(a, "--delay-ms")) {
			opt.delay_us = parse_num(v, a) * 1000;
		} else if (!strcmp(a, "--rate")) {
			opt.up_rate = opt.down_rate = (double)parse_num(v, a);
		} else if (!strcmp(a, "--up-rate")) {
			opt.up_rate = (double)parse_num(v, a);
		} else if (!strcmp(a, "--down-rate")) {
			opt.down_rate = (double)parse_num(v, a);
		} else if (!strcmp(a, "--cut-after")) {
			opt.cut_after = parse_num(v, a);
		} else if (!strcmp(a, "--stall-after")) {
			opt.stall_after = parse_num(v, a);
		} else if (!strcmp(a, "--shared")) {
			opt.shared = parse_num(v, a) != 0;
		} else if (!strcmp(a, "--max-conns")) {
			opt.max_conns = (unsigned)parse_num(v, a);
		} else {
			usage();
		}
	}
	if (!opt.to_host || !opt.max_conns || opt.max_conns > MAX_CONNS_DEFAULT)
		usage();
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	int lfd = listen_on(opt.listen_port);
	if (opt.port_file) {
		char tmp[4096];
		snprintf(tmp, sizeof(tmp), "%s.tmp", opt.port_file);
		FILE *f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", opt.listen_port) < 0 || fclose(f) != 0 ||
		    rename(tmp, opt.port_file) != 0)
			die("port file");
	}
	fprintf(stderr, "linkem: 127.0.0.1:%u -> %s:%s delay %" PRIu64 " ms up %.0f down %.0f bit/s\n",
		opt.listen_port, opt.to_host, opt.to_port, opt.delay_us / 1000, opt.up_rate,
		opt.down_rate);

	struct conn *conns = calloc(opt.max_conns, sizeof(*conns));
	struct pollfd *pfd = calloc(1 + 2 * (size_t)opt.max_conns, sizeof(*pfd));
	if (!conns || !pfd)
		die("calloc");
	for (unsigned i = 0; i < opt.max_conns; i++)
		conns[i].dead = true;
	unsigned next_id = 1;

	for (;;) {
		uint64_t t = now_us();
		int64_t wait_us = -1;
		size_t np = 0;
		pfd[np++] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (unsigned i = 0; i < opt.max_conns; i++) {
			struct conn *c = &conns[i];
			if (c->dead)
				continue;
			for (int k = 0; k < 2; k++) {
				struct dir *d = &c->d[k];
				dir_write(c, d, t);
				if (c->dead)
					break;
				if (d->head && !stalled(c, d)) {
					int64_t w = d->head->due_us > t ? (int64_t)(d->head->due_us - t) : 0;
					if (wait_us < 0 || w < wait_us)
						wait_us = w;
				}
			}
		}
		/* pollfd slots: client and server of each live connection */
		struct conn *slot[2 * MAX_CONNS_DEFAULT + 2];
		size_t nslot = 0;
		for (unsigned i = 0; i < opt.max_conns && nslot + 2 <= sizeof(slot) / sizeof(slot[0]); i++) {
			struct conn *c = &conns[i];
			if (c->dead)
				continue;
			short ce = 0, se = 0;
			if (!c->d[0].eof_in && c->d[0].queued < c->d[0].qmax)
				ce |= POLLIN;
			if (!c->d[1].eof_in && c->d[1].queued < c->d[1].qmax)
				se |= POLLIN;
			if (c->d[1].head && c->d[1].head->due_us <= t && !stalled(c, &c->d[1]))
				ce |= POLLOUT;
			if (c->d[0].head && c->d[0].head->due_us <= t)
				se |= POLLOUT;
			pfd[np++] = (struct pollfd){.fd = c->client, .events = ce};
			slot[nslot++] = c;
			pfd[np++] = (struct pollfd){.fd = c->server_gone ? -1 : c->server, .events = se};
			slot[nslot++] = c;
		}
		int timeout = wait_us < 0 ? 1000 : (int)((wait_us + 999) / 1000);
		if (poll(pfd, np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (pfd[0].revents & POLLIN) {
			int cfd = accept(lfd, NULL, NULL);
			if (cfd >= 0) {
				unsigned i = 0;
				while (i < opt.max_conns && !conns[i].dead)
					i++;
				int sfd = i < opt.max_conns ? connect_upstream() : -1;
				if (sfd < 0) {
					close(cfd);
				} else {
					set_nonblock(cfd);
					struct conn *c = &conns[i];
					memset(c, 0, sizeof(*c));
					c->client = cfd;
					c->server = sfd;
					c->id = next_id++;
					dir_init(&c->d[0], cfd, sfd, opt.up_rate);
					dir_init(&c->d[1], sfd, cfd, opt.down_rate);
					/* the handshake costs a round trip before the
					 * first request byte can leave (loopback's own
					 * connect() is instant) */
					c->d[0].free_us = now_us() + 2 * opt.delay_us;
				}
			}
		}
		for (size_t k = 0; k < nslot; k++) {
			struct conn *c = slot[k];
			short re = pfd[1 + k].revents;
			if (c->dead || !re)
				continue;
			bool is_client = (k % 2) == 0;
			struct dir *in = &c->d[is_client ? 0 : 1];
			if ((re & (POLLHUP | POLLERR)) && in->eof_in) {
				/* gone both ways: a client that left ends it all;
				 * a server's last bytes may still be on their way */
				if (is_client) {
					conn_close(c);
					continue;
				}
				c->server_gone = true;
				dir_free(&c->d[0]);
				c->d[0].eof_in = c->d[0].shut = true;
				continue;
			}
			if (re & (POLLIN | POLLHUP | POLLERR))
				dir_read(c, &c->d[is_client ? 0 : 1]);
			if (c->dead)
				continue;
			if (re & POLLOUT)
				dir_write(c, &c->d[is_client ? 1 : 0], now_us());
		}
		/* a connection whose both directions ended and drained is done */
		for (unsigned i = 0; i < opt.max_conns; i++) {
			struct conn *c = &conns[i];
			if (!c->dead && c->d[0].shut && c->d[1].shut)
				conn_close(c);
		}
	}
}
