/*
 * httpd-test-server - a tiny server on libcairn's http layer, for
 * tests/integration/test-httpd.sh and bench/httpd.sh only (not installed).
 *
 * Routes:
 *   /small              a 300-byte narinfo-like body (Cache-Control set)
 *   /file/NAME          NAME beneath --dir, through cairn_httpd_safe_path
 *   /stream?size=N&fail_at=M&chunk=C&delay_ms=D&length=1&declared=L
 *                       N bytes (byte i is i % 251) written by a producer
 *                       thread in C-byte chunks, D ms apart; at byte M the
 *                       producer fails; length=1 announces Content-Length
 *                       N, declared=L announces L instead (a producer that
 *                       writes more or less than it announced)
 *                       defer_ms=W: the handler defers (cairn_httpd_stream_defer)
 *                       and the producer chooses the head only after W ms
 *                       (status=S, default 200, with "x-deferred: yes");
 *                       nohead=1: it ends without choosing one
 *   /fstream?name=NAME&head=H&tail=T&extra=E&length=1
 *                       a stream of H pattern bytes (as /stream), then the
 *                       file NAME beneath --dir sent by the loop
 *                       (cairn_httpd_stream_write_file, asking E bytes more
 *                       than the file has: a file that shrank), then T
 *                       pattern bytes continuing the count from H
 *   /metrics            Prometheus text, with httpd_test_producer_canceled_total:
 *                       stream producers that got CAIRN_ECANCELED
 *   /cb/...             a route whose handler declines unless the path ends
 *                       in ".narinfo" (then 200 "cb"), to test fall-through
 *   /peer               "ADDRESS 1|2 AUTHORITY" (HTTP version)
 *   /redirect           302 to /small
 *   /noanswer           a handler that returns 0 without answering (500)
 *
 * Prints "port N" on stdout once listening, and with --port-file PATH writes
 * the port to PATH (as cairn publish and cairn mirror do).  SIGTERM/SIGINT stop it
 * gracefully.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/httpd.h"
#include "../../lib/httpd-int.h"

static struct cairn_httpd *g_httpd;
static int g_dirfd = -1;
static char g_small[301];
static struct cairn_httpd_counter *g_canceled;

static void on_signal(int sig)
{
	(void)sig;
	cairn_httpd_stop(g_httpd);
}

static int h_small(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	cairn_httpd_add_header(req, "Cache-Control", "public, max-age=3600");
	return cairn_httpd_send_static(req, 200, "text/x-nix-narinfo", g_small, 300);
}

static int h_file(struct cairn_httpd_req *req, void *data)
{
	char name[256];
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	(void)data;
	len -= strlen("/file/");
	path += strlen("/file/");
	if (cairn_httpd_safe_path(path, len, name, sizeof(name), NULL) < 0)
		return cairn_httpd_send_error(req, 400);
	cairn_httpd_add_header(req, "Cache-Control", "public, max-age=60");
	if (cairn_httpd_send_file_at(req, g_dirfd, name, "application/octet-stream") ==
	    CAIRN_ENOENT)
		return cairn_httpd_send_error(req, 404);
	return 0;
}

static int h_cb(struct cairn_httpd_req *req, void *data)
{
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	(void)data;
	if (len < 8 || memcmp(path + len - 8, ".narinfo", 8) != 0)
		return CAIRN_ENOENT;
	return cairn_httpd_send_static(req, 200, "text/plain", "cb\n", 3);
}

static int h_peer(struct cairn_httpd_req *req, void *data)
{
	char peer[64], body[128];
	size_t al;
	const char *auth = cairn_httpd_req_authority(req, &al);
	(void)data;
	if (cairn_httpd_req_peer(req, peer, sizeof(peer)) < 0)
		return CAIRN_EIO;
	int n = snprintf(body, sizeof(body), "%s %d %.*s\n", peer,
			 cairn_httpd_req_is_http2(req) ? 2 : 1, (int)(al < 64 ? al : 64), auth);
	return cairn_httpd_send(req, 200, "text/plain", body, (size_t)n);
}

/* a buggy handler: claims success without answering */
static int h_noanswer(struct cairn_httpd_req *req, void *data)
{
	(void)req;
	(void)data;
	return 0;
}

static int h_redirect(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	return cairn_httpd_send_redirect(req, 302, "/small");
}

struct producer {
	struct cairn_httpd_stream *s;
	unsigned long long size, fail_at, chunk, delay_ms, defer_ms, status, nohead;
	int deferred;
	int64_t length;
};

static void sleep_ms(unsigned long long ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	unsigned char *buf = malloc(p->chunk);
	unsigned long long off = 0;
	int ok = buf != NULL;

	if (p->deferred) {
		static const char *const hdrs[] = {"X-Deferred", "yes", NULL};
		sleep_ms(p->defer_ms);
		if (p->nohead)
			ok = 0;
		else if ((ok = cairn_httpd_stream_begin(p->s, (int)p->status,
							"application/octet-stream", p->length,
							hdrs)) < 0) {
			if (ok == CAIRN_ECANCELED)
				cairn_httpd_counter_add(g_canceled, 1);
			ok = 0;
		} else {
			ok = 1;
		}
	}

	while (ok && off < p->size) {
		unsigned long long n = p->size - off < p->chunk ? p->size - off : p->chunk;
		if (off + n > p->fail_at)
			n = p->fail_at - off;
		for (unsigned long long i = 0; i < n; i++)
			buf[i] = (unsigned char)((off + i) % 251);
		int wr = n ? cairn_httpd_stream_write(p->s, buf, n) : 0;
		if (wr < 0) {
			if (wr == CAIRN_ECANCELED)
				cairn_httpd_counter_add(g_canceled, 1);
			ok = 0;
			break;
		}
		off += n;
		if (off >= p->fail_at) {
			ok = 0;
			break;
		}
		if (p->delay_ms)
			sleep_ms(p->delay_ms);
	}
	cairn_httpd_stream_end(p->s, ok);
	free(buf);
	free(p);
	return NULL;
}

static unsigned long long query_num(struct cairn_httpd_req *req, const char *key,
				    unsigned long long def)
{
	char v[32];
	if (cairn_httpd_query_get(req, key, v, sizeof(v)) < 0)
		return def;
	return strtoull(v, NULL, 10);
}

static int h_stream(struct cairn_httpd_req *req, void *data)
{
	struct producer *p = calloc(1, sizeof(*p));
	pthread_t tid;
	(void)data;
	if (!p)
		return CAIRN_ENOMEM;
	p->size = query_num(req, "size", 1000);
	p->fail_at = query_num(req, "fail_at", ~0ULL);
	p->chunk = query_num(req, "chunk", 16384);
	p->delay_ms = query_num(req, "delay_ms", 0);
	if (p->chunk == 0 || p->chunk > (1 << 24))
		p->chunk = 16384;
	int64_t length = query_num(req, "length", 0) ? (int64_t)p->size : -1;
	length = (int64_t)query_num(req, "declared", (unsigned long long)length);
	p->length = length;
	p->defer_ms = query_num(req, "defer_ms", ~0ULL);
	p->deferred = p->defer_ms != ~0ULL;
	p->status = query_num(req, "status", 200);
	p->nohead = query_num(req, "nohead", 0);
	int ret = p->deferred ? cairn_httpd_stream_defer(req, &p->s)
			      : cairn_httpd_stream_start(req, 200, "application/octet-stream",
							 length, &p->s);
	if (ret < 0) {
		free(p);
		return ret;
	}
	if (pthread_create(&tid, NULL, produce, p) != 0) {
		cairn_httpd_stream_end(p->s, 0);
		free(p);
		return 0;
	}
	pthread_detach(tid);
	return 0;
}

struct fproducer {
	struct cairn_httpd_stream *s;
	int fd;
	unsigned long long head, tail, fsize;
};

static int put_pattern(struct cairn_httpd_stream *s, unsigned long long from,
		       unsigned long long n)
{
	unsigned char buf[4096];
	while (n) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		for (size_t i = 0; i < k; i++)
			buf[i] = (unsigned char)((from + i) % 251);
		int rc = cairn_httpd_stream_write(s, buf, k);
		if (rc < 0)
			return rc;
		from += k;
		n -= k;
	}
	return 0;
}

static void *fproduce(void *arg)
{
	struct fproducer *p = arg;
	int rc = put_pattern(p->s, 0, p->head);
	if (rc == 0)
		rc = cairn_httpd_stream_write_file(p->s, p->fd, 0, p->fsize);
	/* the fd was duplicated: closing ours must not disturb the loop */
	close(p->fd);
	if (rc == 0)
		rc = put_pattern(p->s, p->head, p->tail);
	if (rc == CAIRN_ECANCELED)
		cairn_httpd_counter_add(g_canceled, 1);
	cairn_httpd_stream_end(p->s, rc == 0);
	free(p);
	return NULL;
}

static int h_fstream(struct cairn_httpd_req *req, void *data)
{
	char raw[256], name[256];
	struct stat st;
	pthread_t tid;
	(void)data;
	if (cairn_httpd_query_get(req, "name", raw, sizeof(raw)) < 0 ||
	    cairn_httpd_safe_path(raw, strlen(raw), name, sizeof(name), NULL) < 0)
		return cairn_httpd_send_error(req, 400);
	int fd = openat(g_dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return cairn_httpd_send_error(req, 404);
	}
	struct fproducer *p = calloc(1, sizeof(*p));
	if (!p) {
		close(fd);
		return CAIRN_ENOMEM;
	}
	p->fd = fd;
	p->head = query_num(req, "head", 0);
	p->tail = query_num(req, "tail", 0);
	p->fsize = (unsigned long long)st.st_size + query_num(req, "extra", 0);
	int64_t length =
	    query_num(req, "length", 0) ? (int64_t)(p->head + p->fsize + p->tail) : -1;
	int ret = cairn_httpd_stream_start(req, 200, "application/octet-stream", length, &p->s);
	if (ret < 0) {
		close(fd);
		free(p);
		return ret;
	}
	if (pthread_create(&tid, NULL, fproduce, p) != 0) {
		cairn_httpd_stream_end(p->s, 0);
		close(fd);
		free(p);
		return 0;
	}
	pthread_detach(tid);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: httpd-test-server --listen ADDR:PORT... [--dir DIR] [--threads N] "
			"[--reuseport] [--systemd] [--access-log PATH] [--port-file PATH] "
			"[--user USER] "
			"[--request-timeout MS] [--shutdown-timeout MS] [--send-timeout MS] "
			"[--stream-buffer BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct cairn_httpd_config cfg;
	struct cairn_error err;
	const char *dir = ".";

	cairn_httpd_config_init(&cfg);
	cairn_error_init(&err);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--reuseport") == 0) {
			cfg.reuseport = 1;
			continue;
		}
		if (strcmp(a, "--systemd") == 0) {
			cfg.systemd = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--listen") == 0 && cfg.n_listen < CAIRN_HTTPD_MAX_LISTEN)
			cfg.listen[cfg.n_listen++] = v;
		else if (strcmp(a, "--dir") == 0)
			dir = v;
		else if (strcmp(a, "--threads") == 0)
			cfg.threads = (unsigned)atoi(v);
		else if (strcmp(a, "--access-log") == 0)
			cfg.access_log = v;
		else if (strcmp(a, "--port-file") == 0)
			cfg.port_file = v;
		else if (strcmp(a, "--user") == 0)
			cfg.user = v;
		else if (strcmp(a, "--request-timeout") == 0)
			cfg.request_timeout_ms = cfg.idle_timeout_ms = (unsigned)atoi(v);
		else if (strcmp(a, "--shutdown-timeout") == 0)
			cfg.shutdown_timeout_ms = (unsigned)atoi(v);
		else if (strcmp(a, "--send-timeout") == 0)
			cfg.send_timeout_ms = (unsigned)atoi(v);
		else if (strcmp(a, "--stream-buffer") == 0)
			cfg.stream_buffer = (size_t)atol(v);
		else
			usage();
	}

	/* a narinfo-shaped body of exactly 300 bytes */
	memset(g_small, 'x', 300);
	int n = snprintf(g_small, sizeof(g_small),
			 "StorePath: /nix/store/6rpbsa1ix05i5cmar0xh7fw9cyms2476-hello-2.12\n"
			 "URL: nar/0mn65kmkv0695yh15m5k00dfafanf583irdf2gk4gpiq25vf56jg.nar.xz\n"
			 "Compression: xz\nNarSize: 226560\nReferences: \nSig: ");
	memset(g_small + n, 'A', 299 - (size_t)n);
	g_small[299] = '\n';
	g_small[300] = '\0';

	g_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g_dirfd < 0) {
		fprintf(stderr, "httpd-test-server: %s: %s\n", dir, strerror(errno));
		return 1;
	}

	struct sigaction sa = {0};
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (cairn_httpd_new(&g_httpd, &cfg, &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/small", "small", h_small, NULL, &err) <
		0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_PREFIX, "/file/", "file", h_file, NULL, &err) <
		0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/stream", "stream", h_stream, NULL,
			      &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/fstream", "fstream", h_fstream, NULL,
			      &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
			      cairn_httpd_metrics_handler, g_httpd, &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_PREFIX, "/cb/", "cb", h_cb, NULL, &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/peer", "peer", h_peer, NULL, &err) <
		0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/noanswer", "noanswer", h_noanswer, NULL,
			      &err) < 0 ||
	    cairn_httpd_route(g_httpd, CAIRN_HTTPD_EXACT, "/redirect", "redirect", h_redirect, NULL,
			      &err) < 0 ||
	    cairn_httpd_counter_new(g_httpd, "httpd_test_producer_canceled_total",
				    "Producers told that their client went away.", &g_canceled,
				    &err) < 0 ||
	    cairn_httpd_start(g_httpd, &err) < 0) {
		fprintf(stderr, "httpd-test-server: %s\n", cairn_error_msg(&err));
		cairn_httpd_free(g_httpd);
		return 1;
	}
	/* Workers render /metrics from the counter table now: it is fixed. */
	struct cairn_httpd_counter *late;
	if (cairn_httpd_counter_new(g_httpd, "late_total", "Added after start.", &late, NULL) !=
	    CAIRN_EINVAL) {
		fprintf(stderr, "httpd-test-server: a counter was added after start\n");
		cairn_httpd_free(g_httpd);
		return 1;
	}
	printf("port %d\n", cairn_httpd_port(g_httpd));
	fflush(stdout);
	int ret = cairn_httpd_wait(g_httpd, &err);
	if (ret < 0)
		fprintf(stderr, "httpd-test-server: %s\n", cairn_error_msg(&err));
	else
		fprintf(stderr, "httpd-test-server: stopped\n");
	cairn_httpd_free(g_httpd);
	close(g_dirfd);
	return ret < 0;
}
