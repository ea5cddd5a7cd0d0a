/*
 * httpd.c - server setup, event-loop threads, routing, limits, access log,
 * metrics and shutdown.  Responses are in httpd-send.c, the producer bridge
 * in httpd-stream.c, URL-to-file-name checking in httpd-path.c.
 *
 * Design.  h2o gives us the protocol engines (HTTP/1 with pipelining,
 * HTTP/2, h2c upgrade) and an event loop; a loop is single-threaded, so the
 * server runs one loop per thread, each with its own h2o context, all
 * sharing one read-only h2o_globalconf.  One h2o handler sits at "/" and
 * dispatches to cairn's route table, after enforcing the limits h2o does not
 * have (414, 431, 405; 431 for too many fields and 400 for ambiguous message
 * framing need the parser hook below).  Each request that reaches the
 * dispatcher gets a small record in its memory pool whose dispose callback
 * runs when h2o frees the request: that is where it is counted (metrics) and
 * where the in-flight count drops, which is what graceful shutdown waits
 * for.
 *
 * Stopping.  cairn_httpd_stop writes a byte to a pipe (all a signal handler
 * may do); the thread in cairn_httpd_wait reads it and posts a message to
 * every loop.  Each loop then closes its listening sockets, asks h2o to shut
 * down (keep-alive off, HTTP/2 GOAWAY) and keeps running until its in-flight
 * requests are done or shutdown_timeout has passed.
 *
 * Signals.  Worker threads block SIGPIPE (h2o writes with writev, and a
 * peer's reset must not kill the process), SIGTERM, SIGINT and SIGHUP, so
 * those reach the program's own thread.
 *
 * Checked against h2o 2.2.5 (Debian libh2o-evloop-dev): include/h2o.h,
 * lib/core/request.c (pool dispose order), lib/http1.c (req_timeout covers
 * the whole request head; heads beyond H2O_MAX_REQLEN are dropped),
 * examples/libh2o/simple.c (accept loop).
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cairn/cairn.h"
#include "httpd-int.h"
#include "cairn/banned.h"

_Thread_local struct httpd_worker *httpd_tls_worker;

const int httpd_status_codes[HTTPD_STATUS_SLOTS] = {
    200, 206, 301, 302, 304, 400, 403, 404, 405, 408, 414, 416, 431, 500, 503, 0 /* other */
};

#define COMBINED_LOG_FORMAT "%h %l %u %t \"%r\" %s %b \"%{Referer}i\" \"%{User-agent}i\""

/* Nix asks up to 25 paths at once over one connection (http-connections). */
#define HTTPD_H2_MAX_STREAMS 32

/* How long a loop stops accepting when the process has no descriptor left. */
#define HTTPD_ACCEPT_PAUSE_MS 50

/* Heads and bodies we accept: GET and HEAD carry no body worth having. */
#define HTTPD_MAX_ENTITY (64 * 1024)

void cairn_httpd_config_init(struct cairn_httpd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->request_timeout_ms = 10000;
	cfg->idle_timeout_ms = 10000;
	cfg->shutdown_timeout_ms = 10000;
	cfg->stream_stall_ms = 60000;
	cfg->send_timeout_ms = 60000;
	cfg->max_request_line = 8192;
	cfg->max_header_bytes = 16384;
	cfg->stream_buffer = CAIRN_HTTPD_STREAM_BUFFER_DEFAULT;
}

const char *httpd_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default:
		return status < 300   ? "OK"
		       : status < 400 ? "Redirect"
		       : status < 500 ? "Client Error"
				      : "Server Error";
	}
}

int httpd_is_head(const h2o_req_t *req)
{
	return req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
}

/* --- setup ----------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int httpd_metrics_init(struct cairn_httpd *h, struct cairn_error *err);

int cairn_httpd_new(struct cairn_httpd **out, const struct cairn_httpd_config *cfg,
		    struct cairn_error *err)
{
	struct cairn_httpd *h = NULL;
	int ret = 0;

	if (!cfg || (cfg->n_listen == 0 && !cfg->systemd) || cfg->n_listen > CAIRN_HTTPD_MAX_LISTEN)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: need 1 to %d listen addresses",
				       CAIRN_HTTPD_MAX_LISTEN);
	if (cfg->threads > CAIRN_HTTPD_MAX_THREADS)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: at most %d threads",
				       CAIRN_HTTPD_MAX_THREADS);
	if ((ret = httpd_find_real_parser(err)))
		return ret;
	if (cfg->max_request_line == 0 || cfg->max_header_bytes == 0 || cfg->stream_buffer == 0)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: limits must not be zero");

	h = calloc(1, sizeof(*h));
	if (!h)
		return cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
	h->cfg = *cfg;
	h->log_fd = -1;
	h->stop_pipe[0] = h->stop_pipe[1] = -1;
	pthread_mutex_init(&h->ready_mu, NULL);
	pthread_mutex_init(&h->maps_mu, NULL);
	pthread_cond_init(&h->ready_cond, NULL);
	for (size_t i = 0; i < CAIRN_HTTPD_MAX_LISTEN; i++)
		for (size_t j = 0; j < CAIRN_HTTPD_MAX_THREADS; j++)
			h->fds[i][j] = -1;
	if ((ret = httpd_metrics_init(h, err)) < 0)
		goto out;
	/* the config's strings are the caller's; keep our own copies */
	size_t k = 0;
	for (size_t i = 0; i < cfg->n_listen; i++) {
		if (!cfg->listen[i]) {
			ret = cairn_error_set(err, CAIRN_EINVAL,
					      "httpd: listen address %zu is NULL", i);
			goto out;
		}
		h->cfg.listen[i] = h->cfg_strings[k++] = strdup(cfg->listen[i]);
	}
	h->cfg.access_log = h->cfg_strings[k++] = dup_or_null(cfg->access_log);
	h->cfg.user = h->cfg_strings[k++] = dup_or_null(cfg->user);
	h->cfg.server_name = h->cfg_strings[k++] = dup_or_null(cfg->server_name);
	h->cfg.port_file = h->cfg_strings[k++] = dup_or_null(cfg->port_file);
	for (size_t i = 0; i < cfg->n_listen; i++)
		if (!h->cfg.listen[i]) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
			goto out;
		}
	if (pipe2(h->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		ret = cairn_error_errno(err, errno, "httpd: pipe");
		goto out;
	}
	h->threads = cfg->threads;
	if (h->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		h->threads = n < 1			   ? 1
			     : n > CAIRN_HTTPD_MAX_THREADS ? CAIRN_HTTPD_MAX_THREADS
							   : (unsigned)n;
	}
out:
	if (ret < 0) {
		cairn_httpd_free(h);
		return ret;
	}
	*out = h;
	return 0;
}

int cairn_httpd_route(struct cairn_httpd *h, enum cairn_httpd_match match, const char *pattern,
		      const char *name, cairn_httpd_handler_fn fn, void *data,
		      struct cairn_error *err)
{
	if (!h || !pattern || !name || !fn || pattern[0] != '/' ||
	    (match != CAIRN_HTTPD_EXACT && match != CAIRN_HTTPD_PREFIX))
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: bad route '%s'",
				       pattern ? pattern : "(null)");
	if (h->started)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "httpd: routes must be added before start");
	if (h->n_routes == CAIRN_HTTPD_MAX_ROUTES)
		return cairn_error_set(err, CAIRN_ELIMIT, "httpd: more than %d routes",
				       CAIRN_HTTPD_MAX_ROUTES);
	struct httpd_route *r = &h->routes[h->n_routes];
	r->pattern = strdup(pattern);
	r->name = strdup(name);
	if (!r->pattern || !r->name) {
		free(r->pattern);
		free(r->name);
		r->pattern = r->name = NULL;
		return cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
	}
	r->match = match;
	r->plen = strlen(pattern);
	r->fn = fn;
	r->data = data;
	h->n_routes++;
	return 0;
}

/*
 * The public counters are the registry's (lib/metrics.h): a struct
 * cairn_httpd_counter * is a struct metric * under another name, so that
 * the registry stays out of the installed headers.
 */
int cairn_httpd_counter_new(struct cairn_httpd *h, const char *name, const char *help,
			    struct cairn_httpd_counter **out, struct cairn_error *err)
{
	if (!h || !name || !help || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: bad counter");
	/* what a server counts is all there from its first request */
	if (h->started)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "httpd: counters must be added before start");
	if (h->n_counters == CAIRN_HTTPD_MAX_COUNTERS)
		return cairn_error_set(err, CAIRN_ELIMIT, "httpd: more than %d counters",
				       CAIRN_HTTPD_MAX_COUNTERS);
	struct metric *m;
	int rc = metrics_counter(h->metrics, name, help, &m, err);
	if (rc < 0)
		return rc;
	h->n_counters++;
	*out = (struct cairn_httpd_counter *)m;
	return 0;
}

void cairn_httpd_counter_add(struct cairn_httpd_counter *c, uint64_t v)
{
	metric_add((struct metric *)c, v);
}

struct metrics *httpd_metrics(struct cairn_httpd *h)
{
	return h->metrics;
}

/* --- per-request bookkeeping ------------------------------------------------- */

struct req_record {
	h2o_req_t *req;
	struct httpd_worker *w;
	size_t route;
};

static size_t status_slot(int status)
{
	for (size_t i = 0; i < HTTPD_STATUS_SLOTS - 1; i++)
		if (httpd_status_codes[i] == status)
			return i;
	return HTTPD_STATUS_SLOTS - 1;
}

/* Runs when h2o frees the request's pool: the response is over. */
static void req_record_dispose(void *p)
{
	struct req_record *rec = p;
	struct httpd_worker *w = rec->w;

	__atomic_fetch_add(&w->counts[rec->route][status_slot(rec->req->res.status)], 1,
			   __ATOMIC_RELAXED);
	__atomic_fetch_add(&w->bytes[rec->route], (uint64_t)rec->req->bytes_sent, __ATOMIC_RELAXED);
	w->inflight--;
}

/* 431 or 400 when the parser hook marked the head, else 0. */
static int head_refused(const h2o_req_t *req)
{
	if (req->headers.size == 0)
		return 0;
	const h2o_iovec_t *name = req->headers.entries[req->headers.size - 1].name;
	if (name->len == sizeof(TOO_MANY_FIELDS) - 1 &&
	    memcmp(name->base, TOO_MANY_FIELDS, name->len) == 0)
		return 431;
	if (name->len == sizeof(BAD_FRAMING) - 1 && memcmp(name->base, BAD_FRAMING, name->len) == 0)
		return 400;
	return 0;
}

struct dispatch_handler {
	h2o_handler_t super;
	struct cairn_httpd *h;
};

static int refuse(h2o_req_t *req, int status)
{
	if (status == 405)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
			       H2O_STRLIT("GET, HEAD"));
	if (status != 405 && status != 404)
		req->http1_is_persistent = 0;
	return cairn_httpd_send_error((struct cairn_httpd_req *)(void *)req, status);
}

static int dispatch(h2o_handler_t *self, h2o_req_t *req)
{
	struct cairn_httpd *h = ((struct dispatch_handler *)self)->h;
	struct httpd_worker *w = httpd_tls_worker;
	struct req_record *rec = h2o_mem_alloc_shared(&req->pool, sizeof(*rec), req_record_dispose);

	rec->req = req;
	rec->w = w;
	rec->route = h->n_routes;
	w->inflight++;

	int refused = head_refused(req);
	if (refused)
		return refuse(req, refused), 0;
	if (!(req->method.len == 3 && memcmp(req->method.base, "GET", 3) == 0) &&
	    !httpd_is_head(req))
		return refuse(req, 405), 0;
	if (req->input.path.len > h->cfg.max_request_line)
		return refuse(req, 414), 0;
	/*
	 * GET and HEAD carry no content.  One that does is refused and its
	 * connection closed (ambiguous framing was refused above, by the
	 * parser hook).
	 */
	if (req->entity.base != NULL && req->entity.len != 0)
		return refuse(req, 400), 0;
	size_t hb = 0;
	for (size_t i = 0; i < req->headers.size; i++)
		hb += req->headers.entries[i].name->len + req->headers.entries[i].value.len + 4;
	if (hb > h->cfg.max_header_bytes)
		return refuse(req, 431), 0;

	size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
	const char *path = req->path.base;
	for (size_t i = 0; i < h->n_routes; i++) {
		const struct httpd_route *r = &h->routes[i];
		if (r->match == CAIRN_HTTPD_EXACT
			? (plen != r->plen || memcmp(path, r->pattern, plen) != 0)
			: (plen < r->plen || memcmp(path, r->pattern, r->plen) != 0))
			continue;
		rec->route = i;
		w->deferred = NULL;
		int ret = r->fn((struct cairn_httpd_req *)(void *)req, r->data);
		/* a response was started: whatever the handler returned, it answered */
		if (req->res.status != 0)
			return 0;
		/* another thread answers (cairn_httpd_stream_defer) */
		if (w->deferred == req) {
			w->deferred = NULL;
			return 0;
		}
		if (ret == CAIRN_ENOENT)
			continue;
		/* an error, or a handler that forgot to answer: never leave the client hanging */
		return cairn_httpd_send_error((struct cairn_httpd_req *)(void *)req, 500), 0;
	}
	rec->route = h->n_routes;
	return cairn_httpd_send_error((struct cairn_httpd_req *)(void *)req, 404), 0;
}

struct access_logger {
	h2o_logger_t super;
	struct cairn_httpd *h;
};

static void log_access(h2o_logger_t *self, h2o_req_t *req)
{
	struct cairn_httpd *h = ((struct access_logger *)self)->h;
	char buf[4096], *line;
	size_t len = sizeof(buf);

	line = h2o_log_request(h->logconf, req, &len, buf);
	if (!line)
		return;
	/* one write per line: O_APPEND keeps lines from different loops whole */
	ssize_t r = write(h->log_fd, line, len);
	(void)r;
	if (line != buf)
		free(line);
}

static void watchdog_fire(h2o_timeout_entry_t *e)
{
	struct httpd_watchdog *wd = H2O_STRUCT_FROM_MEMBER(struct httpd_watchdog, entry, e);
	h2o_conn_t *conn = wd->req->conn;
	h2o_socket_t *sock = conn->callbacks->get_socket ? conn->callbacks->get_socket(conn) : NULL;

	if (!sock)
		return;
	/*
	 * On HTTP/2 a stalled stream with a drained socket is the client's flow
	 * control at work (it may be reading other streams); only a connection
	 * whose bytes sit unwritten means the client stopped reading.  HTTP/1
	 * has nothing but TCP, so no progress is always the client.
	 */
	if (wd->req->version >= 0x200 && !h2o_socket_is_writing(sock)) {
		h2o_timeout_link(conn->ctx->loop, &httpd_tls_worker->send_timeout, &wd->entry);
		return;
	}
	shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

void httpd_watchdog_arm(struct httpd_watchdog *wd, h2o_req_t *req)
{
	struct httpd_worker *w = httpd_tls_worker;

	if (!w || w->h->cfg.send_timeout_ms == 0)
		return;
	if (h2o_timeout_is_linked(&wd->entry))
		h2o_timeout_unlink(&wd->entry);
	wd->req = req;
	wd->entry.cb = watchdog_fire;
	h2o_timeout_link(w->loop, &w->send_timeout, &wd->entry);
}

void httpd_watchdog_disarm(struct httpd_watchdog *wd)
{
	if (h2o_timeout_is_linked(&wd->entry))
		h2o_timeout_unlink(&wd->entry);
}

/* --- loops -------------------------------------------------------------------- */

static void on_accept(h2o_socket_t *listener, const char *errstr);

static void accept_resume(h2o_timeout_entry_t *e)
{
	struct httpd_worker *w = H2O_STRUCT_FROM_MEMBER(struct httpd_worker, accept_resume, e);

	for (size_t i = 0; i < w->n_listeners; i++)
		h2o_socket_read_start(w->listeners[i], on_accept);
}

/*
 * Out of file descriptors, accept fails and leaves the connection queued, so
 * the listener stays readable and the loop would spin on it.  Stop watching
 * the listeners for HTTPD_ACCEPT_PAUSE_MS instead: the queued clients wait
 * in the kernel's backlog and are taken as soon as connections close.
 */
static void accept_pause(struct httpd_worker *w)
{
	if (h2o_timeout_is_linked(&w->accept_resume))
		return;
	for (size_t i = 0; i < w->n_listeners; i++)
		h2o_socket_read_stop(w->listeners[i]);
	__atomic_fetch_add(&w->accept_fd_exhausted, 1, __ATOMIC_RELAXED);
	w->accept_resume.cb = accept_resume;
	h2o_timeout_link(w->loop, &w->accept_pause, &w->accept_resume);
}

static void on_accept(h2o_socket_t *listener, const char *errstr)
{
	struct httpd_worker *w = listener->data;
	h2o_socket_t *sock;

	if (errstr)
		return;
	/* a few per wakeup: fairness between loops sharing one socket */
	for (int i = 0; i < 16; i++) {
		/* h2o 2.2.5 returns NULL right after accept4 fails: errno is its */
		if ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
			if (errno == EMFILE || errno == ENFILE)
				accept_pause(w);
			return;
		}
		h2o_accept(&w->accept_ctx, sock);
	}
}

static void begin_shutdown(struct httpd_worker *w)
{
	if (w->stopping)
		return;
	w->stopping = 1;
	if (h2o_timeout_is_linked(&w->accept_resume))
		h2o_timeout_unlink(&w->accept_resume);
	for (size_t i = 0; i < w->n_listeners; i++) {
		h2o_socket_read_stop(w->listeners[i]);
		h2o_socket_close(w->listeners[i]);
		w->listeners[i] = NULL;
	}
	w->n_listeners = 0;
	h2o_context_request_shutdown(&w->ctx);
	w->stop_deadline = h2o_now(w->loop) + w->h->cfg.shutdown_timeout_ms;
}

static void on_stop_msg(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
	struct httpd_worker *w = H2O_STRUCT_FROM_MEMBER(struct httpd_worker, stop_rx, rx);

	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	begin_shutdown(w);
}

static void *worker_main(void *arg)
{
	struct httpd_worker *w = arg;
	struct cairn_httpd *h = w->h;

	httpd_tls_worker = w;
	w->loop = h2o_evloop_create();
	h2o_context_init(&w->ctx, w->loop, &h->gconf);
	w->accept_ctx.ctx = &w->ctx;
	w->accept_ctx.hosts = h->gconf.hosts;
	h2o_linklist_init_anchor(&w->streams);
	h2o_timeout_init(w->loop, &w->send_timeout,
			 h->cfg.send_timeout_ms ? h->cfg.send_timeout_ms : 1);
	h2o_timeout_init(w->loop, &w->accept_pause, HTTPD_ACCEPT_PAUSE_MS);
	httpd_maps_init(w);
	for (size_t i = 0; i < h->n_fds; i++) {
		/*
		 * Shared sockets are dup'ed so that each loop closes its own fd
		 * at shutdown without pulling the socket from under the others.
		 */
		int fd =
		    h->cfg.reuseport ? h->fds[i][w->idx] : fcntl(h->fds[i][0], F_DUPFD_CLOEXEC, 0);
		if (h->cfg.reuseport)
			h->fds[i][w->idx] = -1;
		if (fd < 0)
			continue;
		h2o_socket_t *s = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
		s->data = w;
		h2o_socket_read_start(s, on_accept);
		w->listeners[w->n_listeners++] = s;
	}

	/* after the listeners: once the stop message can arrive, wait may close the originals */
	h2o_multithread_register_receiver(w->ctx.queue, &w->stream_rx, httpd_stream_rx_cb);
	h2o_multithread_register_receiver(w->ctx.queue, &w->stop_rx, on_stop_msg);
	pthread_mutex_lock(&h->ready_mu);
	h->ready++;
	pthread_cond_broadcast(&h->ready_cond);
	pthread_mutex_unlock(&h->ready_mu);

	for (;;) {
		h2o_evloop_run(w->loop, w->stopping ? 50 : INT32_MAX);
		if (w->stopping && (w->inflight == 0 || h2o_now(w->loop) >= w->stop_deadline))
			break;
	}
	/* producers still blocked on a client past the deadline learn it here */
	httpd_streams_cancel_all(w);
	/*
	 * The context and loop are left to process exit when connections
	 * remain: h2o 2.2 cannot dispose a context with live connections.
	 */
	if (h2o_linklist_is_empty(&w->ctx.http1._conns) &&
	    h2o_linklist_is_empty(&w->ctx.http2._conns) && h2o_linklist_is_empty(&w->streams)) {
		/* request_shutdown armed HTTP/2's graceful timer; dispose insists it is idle */
		if (h2o_timeout_is_linked(&w->ctx.http2._graceful_shutdown_timeout))
			h2o_timeout_unlink(&w->ctx.http2._graceful_shutdown_timeout);
		h2o_timeout_dispose(w->loop, &w->send_timeout);
		h2o_timeout_dispose(w->loop, &w->accept_pause);
		httpd_maps_dispose(w);
		h2o_multithread_unregister_receiver(w->ctx.queue, &w->stream_rx);
		h2o_multithread_unregister_receiver(w->ctx.queue, &w->stop_rx);
		h2o_context_dispose(&w->ctx);
		h2o_evloop_destroy(w->loop);
		w->loop = NULL;
	}
	return NULL;
}

int cairn_httpd_start(struct cairn_httpd *h, struct cairn_error *err)
{
	int ret;

	if (!h || h->started)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: already started");
	h->started = 1;

	/* a descriptor per connection: use what the administrator allows; if
	 * the limit stays, accept pauses when it is reached */
	cairn_fd_limit_raise(NULL);
	ret = h->cfg.systemd ? httpd_adopt_systemd(h, err) : httpd_bind_all(h, err);
	if (ret < 0)
		return ret;
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getsockname(h->fds[0][0], (struct sockaddr *)&ss, &sl) == 0)
			h->port =
			    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	}

	h2o_config_init(&h->gconf);
	h->gconf.server_name = h->cfg.server_name
				   ? h2o_iovec_init(h->cfg.server_name, strlen(h->cfg.server_name))
				   : h2o_iovec_init("", 0);
	h->gconf.max_request_entity_size = HTTPD_MAX_ENTITY;
	h->gconf.http1.req_timeout = h->cfg.request_timeout_ms;
	h->gconf.http2.idle_timeout = h->cfg.idle_timeout_ms;
	h->gconf.http2.graceful_shutdown_timeout = h->cfg.shutdown_timeout_ms;
	/* each HTTP/2 stream may hold 2 x stream_buffer: bound them per connection */
	h->gconf.http2.max_concurrent_requests_per_connection = HTTPD_H2_MAX_STREAMS;
	h2o_hostconf_t *host =
	    h2o_config_register_host(&h->gconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
	struct dispatch_handler *dh = (void *)h2o_create_handler(path, sizeof(*dh));
	dh->super.on_req = dispatch;
	dh->h = h;

	if (h->cfg.access_log) {
		char ebuf[256] = "";
		if (strcmp(h->cfg.access_log, "-") == 0) {
			h->log_fd = STDOUT_FILENO;
		} else {
			h->log_fd = open(h->cfg.access_log,
					 O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
			if (h->log_fd < 0)
				return cairn_error_errno(err, errno, "httpd: access log '%s'",
							 h->cfg.access_log);
			h->own_log_fd = 1;
		}
		h->logconf =
		    h2o_logconf_compile(COMBINED_LOG_FORMAT, H2O_LOGCONF_ESCAPE_APACHE, ebuf);
		if (!h->logconf)
			return cairn_error_set(err, CAIRN_EINVAL, "httpd: log format: %s", ebuf);
		struct access_logger *lg = (void *)h2o_create_logger(path, sizeof(*lg));
		lg->super.log_access = log_access;
		lg->h = h;
	}

	if (h->cfg.port_file && (ret = httpd_write_port_file(h->cfg.port_file, h->port, err)) < 0)
		return ret;
	if (h->cfg.user && (ret = httpd_drop_privileges(h->cfg.user, err)) < 0)
		return ret;

	h->workers = calloc(h->threads, sizeof(*h->workers));
	if (!h->workers)
		return cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
	for (unsigned t = 0; t < h->threads; t++) {
		struct httpd_worker *w = &h->workers[t];
		w->h = h;
		w->idx = t;
		w->counts = calloc(h->n_routes + 1, sizeof(*w->counts));
		w->bytes = calloc(h->n_routes + 1, sizeof(*w->bytes));
		if (!w->counts || !w->bytes)
			return cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
	}

	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	for (unsigned t = 0; t < h->threads; t++) {
		int e = pthread_create(&h->workers[t].tid, NULL, worker_main, &h->workers[t]);
		if (e != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			cairn_httpd_stop(h);
			cairn_httpd_wait(h, NULL);
			return cairn_error_errno(err, e, "httpd: thread");
		}
		h->workers[t].started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	/* return when every loop is ready: the caller may announce readiness */
	pthread_mutex_lock(&h->ready_mu);
	while (h->ready < h->threads)
		pthread_cond_wait(&h->ready_cond, &h->ready_mu);
	pthread_mutex_unlock(&h->ready_mu);
	return 0;
}

int cairn_httpd_wait(struct cairn_httpd *h, struct cairn_error *err)
{
	if (!h || !h->started || !h->workers)
		return cairn_error_set(err, CAIRN_EINVAL, "httpd: not started");
	for (;;) {
		struct pollfd p = {.fd = h->stop_pipe[0], .events = POLLIN};
		int r = poll(&p, 1, -1);
		if (r < 0 && errno != EINTR)
			return cairn_error_errno(err, errno, "httpd: poll");
		char c;
		if (r > 0 && read(h->stop_pipe[0], &c, 1) == 1)
			break;
	}
	/* a loop still starting (start failed half-way) must be able to take the message */
	pthread_mutex_lock(&h->ready_mu);
	unsigned started = 0;
	for (unsigned t = 0; t < h->threads; t++)
		started += h->workers[t].started != 0;
	while (h->ready < started)
		pthread_cond_wait(&h->ready_cond, &h->ready_mu);
	pthread_mutex_unlock(&h->ready_mu);
	for (unsigned t = 0; t < h->threads; t++)
		if (h->workers[t].started)
			h2o_multithread_send_message(&h->workers[t].stop_rx,
						     &h->workers[t].stop_msg);
	/*
	 * Each loop holds its own dup of a shared socket; closing the originals
	 * too makes the kernel refuse new connections during the drain instead
	 * of queueing them where no one will accept them.
	 */
	if (!h->cfg.reuseport)
		for (size_t i = 0; i < h->n_fds; i++)
			if (h->fds[i][0] >= 0) {
				close(h->fds[i][0]);
				h->fds[i][0] = -1;
			}
	for (unsigned t = 0; t < h->threads; t++)
		if (h->workers[t].started) {
			pthread_join(h->workers[t].tid, NULL);
			h->workers[t].started = 0;
		}
	return 0;
}

void cairn_httpd_stop(struct cairn_httpd *h)
{
	int saved = errno;
	if (h)
		atomic_store(&h->stop_asked, 1);
	if (h && h->stop_pipe[1] >= 0) {
		ssize_t r = write(h->stop_pipe[1], "x", 1);
		(void)r;
	}
	errno = saved;
}

bool cairn_httpd_stopping(struct cairn_httpd *h)
{
	return h && atomic_load(&h->stop_asked);
}

int cairn_httpd_port(const struct cairn_httpd *h)
{
	return h ? h->port : 0;
}

int cairn_httpd_listen_addr(const struct cairn_httpd *h, size_t i, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN];
	if (!h || !h->started || i >= h->n_fds || h->fds[i][0] < 0 ||
	    getsockname(h->fds[i][0], (struct sockaddr *)&ss, &sl) < 0)
		return CAIRN_ENOENT;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, (unsigned)ntohs(s4->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, (unsigned)ntohs(s6->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *su = (const struct sockaddr_un *)&ss;
		size_t n = sl > offsetof(struct sockaddr_un, sun_path)
			       ? strnlen(su->sun_path, sl - offsetof(struct sockaddr_un, sun_path))
			       : 0;
		snprintf(buf, cap, "unix:%.*s", (int)n, su->sun_path);
	} else {
		snprintf(buf, cap, "(address family %d)", (int)ss.ss_family);
	}
	return 0;
}

void cairn_httpd_free(struct cairn_httpd *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < CAIRN_HTTPD_MAX_LISTEN; i++)
		for (size_t j = 0; j < CAIRN_HTTPD_MAX_THREADS; j++)
			if (h->fds[i][j] >= 0)
				close(h->fds[i][j]);
	if (h->workers) {
		for (unsigned t = 0; t < h->threads; t++) {
			free(h->workers[t].counts);
			free(h->workers[t].bytes);
		}
		free(h->workers);
	}
	/* the globalconf is kept: loops that could not be disposed still use it */
	if (h->own_log_fd)
		close(h->log_fd);
	if (h->stop_pipe[0] >= 0)
		close(h->stop_pipe[0]);
	if (h->stop_pipe[1] >= 0)
		close(h->stop_pipe[1]);
	pthread_cond_destroy(&h->ready_cond);
	pthread_mutex_destroy(&h->ready_mu);
	httpd_maps_free(h);
	pthread_mutex_destroy(&h->maps_mu);
	metrics_free(h->metrics);
	for (size_t i = 0; i < h->n_routes; i++) {
		free(h->routes[i].pattern);
		free(h->routes[i].name);
	}
	for (size_t i = 0; i < sizeof(h->cfg_strings) / sizeof(h->cfg_strings[0]); i++)
		free(h->cfg_strings[i]);
	free(h);
}

/* --- metrics ------------------------------------------------------------------ */

/* Route r's name; n_routes is "none" (refused before routing). */
static const char *route_name(const struct cairn_httpd *h, size_t r)
{
	return r < h->n_routes ? h->routes[r].name : "none";
}

/* The loops count without locks, each its own; a rendering sums them. */
static int collect_requests(void *ctx, struct metrics_out *o)
{
	struct cairn_httpd *h = ctx;
	int rc = 0;
	for (size_t r = 0; r <= h->n_routes && h->workers && rc == 0; r++) {
		for (size_t s = 0; s < HTTPD_STATUS_SLOTS && rc == 0; s++) {
			uint64_t n = 0;
			for (unsigned t = 0; t < h->threads; t++)
				n += __atomic_load_n(&h->workers[t].counts[r][s], __ATOMIC_RELAXED);
			if (n == 0)
				continue;
			char status[16] = "other";
			if (httpd_status_codes[s])
				snprintf(status, sizeof(status), "%d", httpd_status_codes[s]);
			const struct metric_label l[] = {{"route", route_name(h, r)},
							 {"status", status}};
			rc = metrics_emit(o, l, 2, n);
		}
	}
	return rc;
}

static int collect_bytes(void *ctx, struct metrics_out *o)
{
	struct cairn_httpd *h = ctx;
	int rc = 0;
	for (size_t r = 0; r <= h->n_routes && h->workers && rc == 0; r++) {
		uint64_t n = 0;
		for (unsigned t = 0; t < h->threads; t++)
			n += __atomic_load_n(&h->workers[t].bytes[r], __ATOMIC_RELAXED);
		const struct metric_label l[] = {{"route", route_name(h, r)}};
		rc = metrics_emit(o, l, 1, n);
	}
	return rc;
}

static int collect_fd_exhausted(void *ctx, struct metrics_out *o)
{
	struct cairn_httpd *h = ctx;
	uint64_t paused = 0;
	for (unsigned t = 0; h->workers && t < h->threads; t++)
		paused += __atomic_load_n(&h->workers[t].accept_fd_exhausted, __ATOMIC_RELAXED);
	return metrics_emit(o, NULL, 0, paused);
}

static int httpd_metrics_init(struct cairn_httpd *h, struct cairn_error *err)
{
	char help[160];
	int rc;
	if (!(h->metrics = metrics_new()))
		return cairn_error_set(err, CAIRN_ENOMEM, "httpd: out of memory");
	snprintf(help, sizeof(help),
		 "Times a loop stopped accepting for %d ms because the process had no file "
		 "descriptor left.",
		 HTTPD_ACCEPT_PAUSE_MS);
	if ((rc = metrics_collector(h->metrics, "cairn_http_requests_total", METRIC_COUNTER,
				    "HTTP responses by route and status.", collect_requests, h,
				    err)) < 0 ||
	    (rc = metrics_collector(h->metrics, "cairn_http_response_bytes_total", METRIC_COUNTER,
				    "Response body bytes by route.", collect_bytes, h, err)) < 0 ||
	    (rc = metrics_collector(h->metrics, "cairn_http_accept_fd_exhausted_total",
				    METRIC_COUNTER, help, collect_fd_exhausted, h, err)) < 0)
		return rc;
	return 0;
}

int cairn_httpd_metrics_render(struct cairn_httpd *h, struct cairn_buf *out)
{
	if (!h || !out)
		return CAIRN_EINVAL;
	return metrics_render(h->metrics, out);
}

int cairn_httpd_metrics_handler(struct cairn_httpd_req *req, void *data)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1024 * 1024);
	int ret = cairn_httpd_metrics_render(data, &b);
	if (ret == 0) {
		cairn_httpd_add_header(req, "cache-control", "no-store");
		ret = cairn_httpd_send(req, 200, "text/plain; version=0.0.4", b.data ? b.data : "",
				       b.len);
	}
	cairn_buf_release(&b);
	return ret;
}
