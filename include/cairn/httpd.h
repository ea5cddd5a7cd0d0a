/*
 * httpd.h - the HTTP server layer of cairn, on libh2o (evloop flavour).
 *
 * `cairn publish` and `cairn mirror` stand on this: they fill a config,
 * register routes, and call cairn_httpd_start() then cairn_httpd_wait().  Everything h2o-specific stays
 * in lib/httpd*.c; handlers see an opaque request and a few helpers.
 *
 * Threads.  cairn_httpd_start() starts `threads` event loops (one per core by
 * default), each with its own h2o context.  The listening sockets are either
 * shared (every loop polls the same fd, the kernel hands each connection to
 * one of them) or, with `reuseport`, one SO_REUSEPORT socket per loop.
 * Sockets from systemd (LISTEN_FDS) are always shared.  A handler runs on the
 * loop thread that accepted the connection and must not block; slow work goes
 * to another thread and comes back through a stream (below).
 *
 * Protocols: HTTP/1.1 with keep-alive and pipelining, HTTP/2 over cleartext
 * (prior knowledge, and `Upgrade: h2c`).  No TLS: put a TLS terminator or a
 * CDN in front.
 *
 * Limits (all in the config, defaults below): a request path longer than
 * max_request_line gets 414, request headers larger than max_header_bytes or
 * more than 100 header lines get 431 (h2o itself closes the connection for a
 * request head beyond ~417 KiB).  An HTTP/1 request whose framing is
 * ambiguous (Content-Length with Transfer-Encoding, several or non-numeric
 * Content-Lengths, a Transfer-Encoding other than chunked) gets 400 and its
 * connection is closed, so nothing hidden after it is served.
 * request_timeout bounds how long an HTTP/1 client may take to send a whole
 * request head, and how long an idle keep-alive connection is kept: a
 * slowloris client is disconnected after it.  idle_timeout is the same for
 * HTTP/2.  send_timeout disconnects a client that stops reading a file or
 * stream response (slow-read attacks).  Only GET and HEAD are served (405).
 * cairn_httpd_start raises the process's soft limit on open files to the
 * hard limit; when that is reached, a loop stops accepting for 50 ms at a
 * time (the clients wait in the backlog) rather than spin.
 *
 * Shutdown: cairn_httpd_stop() (async-signal-safe) closes the listening
 * sockets, turns keep-alive off and sends HTTP/2 GOAWAY; responses in flight
 * get shutdown_timeout to finish, then the loops exit.
 *
 * Lifetimes: a `struct cairn_httpd_req *` is valid only inside the handler
 * call (and, for a stream, on the loop side until the response ends; the
 * producer thread never touches it).  Strings returned by the request
 * accessors are borrowed for the handler call.  cairn_httpd_free only after
 * cairn_httpd_wait has returned.
 *
 * Signals: the loop threads block SIGPIPE, SIGTERM, SIGINT and SIGHUP, so the
 * program's own thread receives them; its SIGTERM handler calls
 * cairn_httpd_stop.
 */
#ifndef CAIRN_HTTPD_H
#define CAIRN_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cairn/buf.h"
#include "cairn/error.h"

#define CAIRN_HTTPD_MAX_LISTEN 16
#define CAIRN_HTTPD_MAX_THREADS 64
#define CAIRN_HTTPD_MAX_ROUTES 64
#define CAIRN_HTTPD_MAX_COUNTERS 64
/* A stream buffers at most this much per side (producer and socket). */
#define CAIRN_HTTPD_STREAM_BUFFER_DEFAULT (256 * 1024)

struct cairn_httpd_config {
	/* "127.0.0.1:8080", "[::1]:8080", "*:8080" (all IPv4), "[::]:8080" */
	const char *listen[CAIRN_HTTPD_MAX_LISTEN];
	size_t n_listen;
	/* take the listening sockets from systemd (LISTEN_PID/LISTEN_FDS) */
	int systemd;
	unsigned threads;	      /* 0: one per online CPU */
	int reuseport;		      /* one SO_REUSEPORT socket per thread */
	unsigned request_timeout_ms;  /* HTTP/1 request head + keep-alive idle */
	unsigned idle_timeout_ms;     /* HTTP/2 idle */
	unsigned shutdown_timeout_ms; /* in-flight responses after stop */
	unsigned stream_stall_ms;     /* producer blocked on a stalled client */
	/* a file or stream response whose client reads nothing for this long
	 * is disconnected (0: never); h2o 2.2 has no write timeout of its own */
	unsigned send_timeout_ms;
	size_t max_request_line; /* 414 beyond this path length */
	size_t max_header_bytes; /* 431 beyond this (names + values) */
	size_t stream_buffer;	 /* per-stream bound, each side */
	/* Combined Log Format; NULL: none, "-": stdout, else a file (appended) */
	const char *access_log;
	/* setuid/setgid to this user once the sockets and log are open */
	const char *user;
	/* write the first listener's port here ("8080\n", to a temporary name
	 * renamed into place) once bound, before privileges are dropped;
	 * NULL: none */
	const char *port_file;
	const char *server_name; /* Server: header; NULL: none */
};

/* Fill with defaults: 1 thread per CPU, 10 s request/idle/shutdown
 * timeouts, 60 s send timeout, 8 KiB line, 16 KiB headers, no listen
 * address. */
void cairn_httpd_config_init(struct cairn_httpd_config *cfg);

struct cairn_httpd;
struct cairn_httpd_req;

/*
 * A route handler.  Return 0 when it answered (with one of the send
 * functions or a stream), or CAIRN_ENOENT to decline: the next matching
 * route is tried, then 404.  Any other negative value sends 500, and so does
 * returning 0 without answering.  Once a response is started the return
 * value is ignored.
 */
typedef int (*cairn_httpd_handler_fn)(struct cairn_httpd_req *req, void *data);

enum cairn_httpd_match {
	CAIRN_HTTPD_EXACT,  /* the path (without query) equals the pattern */
	CAIRN_HTTPD_PREFIX, /* the path starts with the pattern */
};

int cairn_httpd_new(struct cairn_httpd **out, const struct cairn_httpd_config *cfg,
		    struct cairn_error *err);
/*
 * Routes are tried in registration order.  `name` labels the route in the
 * metrics ("narinfo", "nar"); pattern and name are copied.
 */
int cairn_httpd_route(struct cairn_httpd *h, enum cairn_httpd_match match, const char *pattern,
		      const char *name, cairn_httpd_handler_fn fn, void *data,
		      struct cairn_error *err);
/*
 * start binds (or adopts systemd's sockets), opens the access log, drops
 * privileges and starts the loops, then returns (print the port, signal
 * readiness); wait blocks until cairn_httpd_stop(), then waits for the
 * loops to drain, and returns 0 after a clean stop.
 */
int cairn_httpd_start(struct cairn_httpd *h, struct cairn_error *err);
int cairn_httpd_wait(struct cairn_httpd *h, struct cairn_error *err);
/* Ask a running server to stop.  Async-signal-safe; any thread. */
void cairn_httpd_stop(struct cairn_httpd *h);
/* Was it asked to?  Any thread: a producer that holds a response back
 * (a long-poll) answers it now, so the stop need not wait for it. */
bool cairn_httpd_stopping(struct cairn_httpd *h);
/* The port the first listener is bound to (for ":0"); valid during run, 0 before. */
int cairn_httpd_port(const struct cairn_httpd *h);
/* Listener i's bound address as text ("127.0.0.1:8080", "[::1]:8080"; a
 * socket from systemd may also be "unix:PATH"), valid during run: 0, or
 * CAIRN_ENOENT when there is no listener i. */
int cairn_httpd_listen_addr(const struct cairn_httpd *h, size_t i, char *buf, size_t cap);
void cairn_httpd_free(struct cairn_httpd *h);

/* --- the request ---------------------------------------------------------- */

/* The raw path without the query ("/nar/abc.nar.xz"); not decoded. */
const char *cairn_httpd_req_path(const struct cairn_httpd_req *req, size_t *len);
/* The query after '?', or NULL. */
const char *cairn_httpd_req_query(const struct cairn_httpd_req *req, size_t *len);
/* The first request header named `name` (any case), or NULL. */
const char *cairn_httpd_req_header(const struct cairn_httpd_req *req, const char *name,
				   size_t *len);
int cairn_httpd_req_is_head(const struct cairn_httpd_req *req);
/* The Host (HTTP/1) or :authority (HTTP/2); borrowed for the handler call. */
const char *cairn_httpd_req_authority(const struct cairn_httpd_req *req, size_t *len);
/* 1 for HTTP/2, 0 for HTTP/1.x. */
int cairn_httpd_req_is_http2(const struct cairn_httpd_req *req);

/*
 * Add a response header before sending (Cache-Control, ETag...).  Name and
 * value are copied into the request.
 */
void cairn_httpd_add_header(struct cairn_httpd_req *req, const char *name, const char *value);

/* --- responses ------------------------------------------------------------ */

/*
 * Send `len` bytes (copied) with `status` and `content_type`.  HEAD sends
 * the headers with the Content-Length of the body.
 */
int cairn_httpd_send(struct cairn_httpd_req *req, int status, const char *content_type,
		     const void *body, size_t len);
/* Same, without copying: `body` must outlive the server (a static string). */
int cairn_httpd_send_static(struct cairn_httpd_req *req, int status, const char *content_type,
			    const void *body, size_t len);
/* A short text/plain error body ("404 not found\n"); status must be >= 400. */
int cairn_httpd_send_error(struct cairn_httpd_req *req, int status);
/* The same with the reason in the body ("400 why"), for a client that
 * logs it: why says what was wrong with the request, never server state. */
int cairn_httpd_send_error_why(struct cairn_httpd_req *req, int status, const char *why);

/*
 * Send an open regular file: takes ownership of fd (closed when the response
 * ends, or on error).  Handles HEAD, ETag + If-None-Match and
 * Last-Modified + If-Modified-Since (304), a single byte Range (206, 416 when
 * unsatisfiable; several ranges are answered with the whole file).  The body
 * is read with pread in 64 KiB pieces as the socket drains.  Returns
 * CAIRN_EINVAL (fd closed, nothing sent) when fd is not a regular file.
 */
int cairn_httpd_send_take_fd(struct cairn_httpd_req *req, int fd, const char *content_type);
/*
 * Open `relpath` beneath directory `dirfd` and send it like send_take_fd.
 * relpath must already have passed cairn_httpd_safe_path; the last
 * component is opened with O_NOFOLLOW.  CAIRN_ENOENT when it does not exist
 * or is not a regular file (nothing sent: the caller picks the answer).
 */
int cairn_httpd_send_file_at(struct cairn_httpd_req *req, int dirfd, const char *relpath,
			     const char *content_type);

/*
 * Turn the part of a URL path after a route prefix into a relative file
 * name, or refuse.  Percent-decodes, then rejects: an empty name, a leading
 * '/', empty, "." or ".." segments, an encoded '/' or '\' (%2f, %5c), NUL (raw
 * or %00), bad escapes, control bytes, and names longer than outsize-1.
 * Returns 0 and writes out (NUL-terminated) or CAIRN_EUNSAFE / CAIRN_EFORMAT
 * / CAIRN_ELIMIT.  A parser over bytes, no I/O: fuzzed.
 */
int cairn_httpd_safe_path(const char *urlpath, size_t len, char *out, size_t outsize,
			  struct cairn_error *err);

/*
 * A Range header against a body of `size` bytes: one range "bytes=A-B",
 * "bytes=A-" or "bytes=-N" gives OK and [*start, *start + *count), clipped
 * to the body (*count >= 1); one that starts past the end (or a suffix of
 * 0 bytes) is UNSATISFIABLE (416); anything else - several ranges, other
 * units, junk - is NONE: send the whole body.  Client bytes: fuzzed.
 */
enum cairn_httpd_range {
	CAIRN_HTTPD_RANGE_NONE,
	CAIRN_HTTPD_RANGE_OK,
	CAIRN_HTTPD_RANGE_UNSATISFIABLE
};
enum cairn_httpd_range cairn_httpd_parse_range(const char *v, size_t len, uint64_t size,
					       uint64_t *start, uint64_t *count);

/* --- streams: a response produced by another thread ------------------------ */

/*
 * The bridge between a producer thread (compressing a NAR, reading from an
 * upstream) and the loop that owns the connection.  The handler starts the
 * response on the loop thread and hands the stream to a producer; the
 * producer writes and finally calls cairn_httpd_stream_end.  Buffering is
 * bounded: write blocks while stream_buffer bytes are waiting for the
 * socket, so a slow client slows the producer instead of filling memory.
 * Ending with an error makes the client see a broken response (HTTP/1: the
 * connection closes before the announced length or the last chunk; HTTP/2:
 * RST_STREAM), never a clean short body.
 */
struct cairn_httpd_stream;

/*
 * On the loop thread, inside a handler: send the status line and headers
 * (content_length < 0: unknown, chunked on HTTP/1.1); add extra headers
 * (Cache-Control, Content-Encoding...) with cairn_httpd_add_header before.  *out is the
 * producer's; exactly one cairn_httpd_stream_end must follow, from any
 * thread.  For HEAD the response is complete at once and writes return
 * CAIRN_ECANCELED.
 */
int cairn_httpd_stream_start(struct cairn_httpd_req *req, int status, const char *content_type,
			     int64_t content_length, struct cairn_httpd_stream **out);
/*
 * On the loop thread, inside a handler that cannot answer yet (it would
 * have to wait for an upstream): return 0 without a response and let
 * another thread decide it.  Exactly one cairn_httpd_stream_end must
 * follow, from any thread; before writing, that thread chooses the head
 * with cairn_httpd_stream_begin.  Ending without a head answers 502.  The
 * loop goes on serving other requests meanwhile.
 */
int cairn_httpd_stream_defer(struct cairn_httpd_req *req, struct cairn_httpd_stream **out);
/*
 * Producer side, once, for a deferred stream: status, Content-Type,
 * Content-Length (< 0: unknown) and extra headers as a NULL-terminated list
 * of name, value pairs (copied).  CAIRN_ECANCELED when the client is gone;
 * for HEAD the head is sent and writes return CAIRN_ECANCELED.
 */
int cairn_httpd_stream_begin(struct cairn_httpd_stream *s, int status, const char *content_type,
			     int64_t content_length, const char *const *headers);
/*
 * Producer side, deferred stream: the whole answer at once (begin, write,
 * end); and an error answer with the same body as cairn_httpd_send_error
 * and the given Cache-Control (NULL: no-store).  Both end the stream.
 */
int cairn_httpd_stream_reply(struct cairn_httpd_stream *s, int status, const char *content_type,
			     const void *body, size_t len, const char *const *headers);
int cairn_httpd_stream_error(struct cairn_httpd_stream *s, int status, const char *cache_control);
/*
 * Producer side: queue len bytes (copied).  Blocks while the buffer is full.
 * CAIRN_ECANCELED when the client went away or the server is stopping
 * (stop producing and call stream_end), CAIRN_ENET when the client stalled
 * longer than stream_stall_ms, CAIRN_ELIMIT (nothing queued, the response
 * will end in an error) when it would go past the announced Content-Length.
 */
int cairn_httpd_stream_write(struct cairn_httpd_stream *s, const void *data, size_t len);
/*
 * Producer side: queue len bytes of the regular file fd from offset off,
 * sent by the loop without passing through the stream's buffers (HTTP/1:
 * written from the server's mapping of the file, one copy in all; HTTP/2:
 * read by the loop into the stream's buffer).  fd is duplicated, so the
 * caller may close it on return.  Returns once the loop has sent them (or
 * the client is gone); errors as cairn_httpd_stream_write, plus CAIRN_EIO
 * when the file turned out shorter than off + len (the response then ends
 * in an error).  Worth it for large files only: each call is a hand-over.
 */
int cairn_httpd_stream_write_file(struct cairn_httpd_stream *s, int fd, uint64_t off,
				  uint64_t len);
/*
 * Producer side: finish.  ok != 0 ends the body cleanly after the queued
 * bytes; ok == 0 aborts it so the client sees an error.  The stream is freed
 * by the layer; the producer must not touch it afterwards.
 */
void cairn_httpd_stream_end(struct cairn_httpd_stream *s, int ok);

/* --- metrics -------------------------------------------------------------- */

/*
 * Every response is counted by route name and status
 * (cairn_http_requests_total{route,status}) with its body bytes
 * (cairn_http_response_bytes_total{route}).  Servers add their own counters:
 * register before cairn_httpd_start (later is CAIRN_EINVAL), add from any
 * thread (relaxed atomics).
 */
struct cairn_httpd_counter;
int cairn_httpd_counter_new(struct cairn_httpd *h, const char *name, const char *help,
			    struct cairn_httpd_counter **out, struct cairn_error *err);
void cairn_httpd_counter_add(struct cairn_httpd_counter *c, uint64_t v);
/* Append the Prometheus text exposition (format 0.0.4) to out. */
int cairn_httpd_metrics_render(struct cairn_httpd *h, struct cairn_buf *out);
/* A ready handler for a /metrics route: data is the struct cairn_httpd *. */
int cairn_httpd_metrics_handler(struct cairn_httpd_req *req, void *data);

#endif
