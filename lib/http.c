/*
 * http.c - many concurrent transfers on one libcurl multi handle.
 *
 * Every request is an easy handle with its own header/body callbacks.  The
 * header callback parses the response as it arrives and, at the blank line
 * that ends the final response (not a 1xx, not a redirect curl follows),
 * checks the announced size against max_body and calls on_headers.  The
 * write callback enforces max_body again while streaming.  When curl
 * reports a transfer done, its CURLcode plus what the callbacks recorded
 * becomes one enum cairn_http_outcome.
 *
 * libcurl forbids multi calls from inside its callbacks, so cairn_http_add
 * only queues; the queue is handed to curl at the start of every step
 * (a delayed request once its time has come).
 *
 * Timers are ours, not curl's: curl's low-speed check averages over
 * seconds and says "timed out" for every kind of slowness.  Every step
 * checks each connected transfer against three clocks that all start when
 * curl calls prereq_cb (the transfer has a connection and its request is
 * about to go out): the first-byte timeout (no status line yet), the stall
 * timeout (no byte at all) and the minimum rate over a sliding window
 * (struct cairn_http__rate), and the poll wait is capped at the nearest
 * deadline, so each fires within a few milliseconds of its time at O(1)
 * cost per transfer and step.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#if LIBCURL_VERSION_NUM < 0x075000
#error "lib/http.c needs libcurl 7.80 or later (CURLOPT_PREREQFUNCTION)"
#endif

#include "cairn/cairn.h"
#include "cairn/http.h"
#include "http-internal.h"
#include "cairn/banned.h"

struct xfer {
	struct cairn_http *h;
	CURL *easy;
	struct xfer *prev, *next; /* in h->queued or h->active */
	struct cairn_http_request req;
	char *url;
	char range[48];
	uint64_t max_body;
	struct cairn_http_response resp;
	size_t hdr_bytes; /* header bytes of the current response */
	int has_location; /* the current response has a Location */
	int hdr_done;	  /* on_headers was called */
	int connected;	  /* curl has a connection for it (stall clock runs) */
	int status_seen;  /* a status line arrived since the request went out */
	int64_t req_ms;	  /* monotonic time the request went out (prereq_cb) */
	int64_t last_ms;  /* monotonic time of the last byte received */
	int64_t not_before;	      /* delayed: not handed to curl before (monotonic) */
	long first_byte_ms;	      /* first-byte timeout; 0 for none */
	struct cairn_http__rate rate; /* when h->rate_need > 0 */
	uint64_t body_bytes;
	uint64_t dropped; /* body bytes of a non-2xx response */
	int file;	  /* a file:// transfer: no status line, headers made up */
	int forced;	  /* an outcome + 1 decided by our callbacks, or 0 */
	int callback_error;
	int cancel; /* cairn_http_cancel: end it on the next step */
	char detail[128]; /* what our callbacks saw, for the message */
	char errbuf[CURL_ERROR_SIZE];
	struct curl_slist *headers; /* only_if_cached */
};

struct cairn_http {
	CURLM *multi;
	struct cairn_http_config cfg;
	char *user_agent;
	char *ca_file;
	struct xfer *queued, *active;
	size_t nqueued, nactive;
	uint64_t rate_need; /* min_rate * window in bytes; 0: rule off */
	int in_step;
	struct cairn_http_stats stats;
};

/* ---- client -------------------------------------------------------------- */

int cairn_http_new(struct cairn_http **out, const struct cairn_http_config *cfg,
		   struct cairn_error *err)
{
	struct cairn_http_config defaults;
	struct cairn_http *h;
	long maxc;

	if (!out)
		return cairn_error_set(err, CAIRN_EINVAL, "http: no output");
	if (!cfg) {
		cairn_http_config_init(&defaults);
		cfg = &defaults;
	}
	if (cfg->connect_timeout_ms <= 0 || cfg->stall_timeout_s <= 0 || cfg->total_timeout_s < 0 ||
	    cfg->max_host_connections <= 0 || cfg->max_total_connections <= 0 ||
	    cfg->max_redirects < 0 || cfg->first_byte_timeout_ms < 0 ||
	    cfg->first_byte_timeout_ms > CAIRN_HTTP_TIMEOUT_MAX_MS || cfg->min_rate < 0 ||
	    cfg->min_rate > CAIRN_HTTP_MIN_RATE_MAX ||
	    (cfg->min_rate > 0 && (cfg->min_rate_window_s <= 0 ||
				   cfg->min_rate_window_s > CAIRN_HTTP_RATE_WINDOW_MAX_S)))
		return cairn_error_set(err, CAIRN_EINVAL, "http: invalid client settings");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cairn_error_set(err, CAIRN_ENET, "http: libcurl initialisation failed");
	h = calloc(1, sizeof(*h));
	if (!h)
		goto nomem;
	h->cfg = *cfg;
	h->user_agent = strdup(cfg->user_agent ? cfg->user_agent : "cairn/" CAIRN_VERSION);
	h->multi = curl_multi_init();
	if (!h->user_agent || !h->multi)
		goto nomem;
	h->cfg.user_agent = h->user_agent;
	if (cfg->ca_file && !(h->ca_file = strdup(cfg->ca_file)))
		goto nomem;
	h->cfg.ca_file = h->ca_file;
	h->rate_need = (uint64_t)cfg->min_rate * (uint64_t)cfg->min_rate_window_s;
	maxc = cfg->max_total_connections;
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING,
			  cfg->multiplex ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, cfg->max_host_connections);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, maxc);
	/* The idle-connection cache must hold every connection we allow, or
	 * keep-alive connections are closed between bursts. */
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, maxc);
	*out = h;
	return 0;
nomem:
	if (h) {
		if (h->multi)
			curl_multi_cleanup(h->multi);
		free(h->user_agent);
		free(h->ca_file);
		free(h);
	}
	curl_global_cleanup();
	return cairn_error_set(err, CAIRN_ENOMEM, "http: out of memory");
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->url);
	free(x);
}

static void list_remove(struct xfer **head, struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		*head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
}

static void list_push(struct xfer **head, struct xfer *x)
{
	x->prev = NULL;
	x->next = *head;
	if (*head)
		(*head)->prev = x;
	*head = x;
}

void cairn_http_free(struct cairn_http *h)
{
	struct xfer *x;

	if (!h)
		return;
	while ((x = h->active)) {
		list_remove(&h->active, x);
		curl_multi_remove_handle(h->multi, x->easy);
		xfer_free(x);
	}
	while ((x = h->queued)) {
		list_remove(&h->queued, x);
		xfer_free(x);
	}
	curl_multi_cleanup(h->multi);
	free(h->user_agent);
	free(h->ca_file);
	free(h);
	curl_global_cleanup();
}

void cairn_http_stats(const struct cairn_http *h, struct cairn_http_stats *out)
{
	*out = h->stats;
}

static int status_ok(long status)
{
	return status >= 200 && status < 300;
}

static void force(struct xfer *x, enum cairn_http_outcome o, const char *detail)
{
	if (!x->forced) {
		x->forced = (int)o + 1;
		snprintf(x->detail, sizeof(x->detail), "%s", detail);
	}
}

/* The end of one response's headers. 0 to go on, -1 to stop. */
static int headers_complete(struct xfer *x)
{
	struct cairn_http_response *r = &x->resp;

	if (r->status >= 100 && r->status < 200)
		return 0; /* 100 Continue and friends; the real one follows */
	if (r->status >= 300 && r->status < 400 && x->has_location && x->h->cfg.max_redirects > 0)
		return 0; /* curl follows it (or fails with too many redirects) */
	x->hdr_done = 1;
	if (status_ok(r->status) && x->req.method == CAIRN_HTTP_GET && r->content_length >= 0 &&
	    (uint64_t)r->content_length > x->max_body) {
		char d[128];
		snprintf(d, sizeof(d), "Content-Length %" PRId64 " is over the limit of %" PRIu64,
			 r->content_length, x->max_body);
		force(x, CAIRN_HTTP_TOO_LARGE, d);
		return CAIRN_ECANCELED;
	}
	if (x->req.on_headers) {
		int rc = x->req.on_headers(x->req.ctx, r);
		if (rc) {
			x->callback_error = rc;
			force(x, CAIRN_HTTP_ABORTED, "stopped by the headers callback");
			return CAIRN_ECANCELED;
		}
	}
	return 0;
}

static void received(struct xfer *x, size_t len)
{
	x->last_ms = mono_ms();
	if (x->h->rate_need && x->connected)
		cairn_http__rate_add(&x->rate, x->last_ms, len);
}

static size_t header_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	int kind;

	if (x->forced)
		return 0;
	if (x->file)
		return len; /* curl's own lines for HEAD; file_headers makes ours */
	received(x, len);
	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0)
		x->status_seen = 1;
	if (x->hdr_done && !(len >= 5 && memcmp(buf, "HTTP/", 5) == 0))
		return len; /* trailers */
	x->hdr_bytes += len;
	if (x->hdr_bytes > CAIRN_HTTP_HEADER_MAX) {
		force(x, CAIRN_HTTP_NETWORK, "response headers are too long");
		return 0;
	}
	kind = cairn_http__header_line(&x->resp, buf, len, &x->has_location);
	if (kind == CAIRN_HTTP__HDR_STATUS) {
		x->hdr_bytes = len;
		x->hdr_done = 0;
	} else if (kind == CAIRN_HTTP__HDR_END && headers_complete(x) < 0) {
		return 0;
	}
	return len;
}

/*
 * curl's file:// sends no headers: make up what an HTTP server of the same
 * file would have said, once the size is known (on the first byte, or at
 * the end for an empty file).  -1 when the headers callback stops it.
 */
static int file_headers(struct xfer *x)
{
	struct cairn_http_response *r = &x->resp;
	curl_off_t cl = -1;
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
	cairn_http__response_reset(r);
	r->http_version = 11;
	r->accept_ranges = 1;
	r->content_length = cl >= 0 ? (int64_t)cl : -1;
	r->status = 200;
	if (x->req.range_start > 0 || x->req.range_end > 0) {
		r->status = 206;
		r->range_first = (int64_t)x->req.range_start;
		if (cl >= 0) {
			r->range_last = r->range_first + (int64_t)cl - 1;
			r->range_total = r->range_first + (int64_t)cl;
		}
	}
	return headers_complete(x);
}

static size_t write_cb(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (len == 0)
		return 0;
	if (x->forced)
		return 0;
	received(x, len);
	if (!x->hdr_done && x->file && x->req.method == CAIRN_HTTP_GET && file_headers(x) < 0)
		return 0;
	if (!x->hdr_done) {
		/* A body without a final header block: curl gave us none of
		 * its headers (cannot happen over HTTP), so refuse it. */
		force(x, CAIRN_HTTP_NETWORK, "body before the end of the headers");
		return 0;
	}
	if (!status_ok(x->resp.status)) {
		x->dropped += len;
		if (x->dropped > CAIRN_HTTP_ERROR_BODY_MAX) {
			/* Not worth reading; the status says it all. */
			force(x, CAIRN_HTTP_STATUS, "");
			return 0;
		}
		return len;
	}
	if (len > x->max_body - x->body_bytes) {
		char d[128];
		snprintf(d, sizeof(d), "body is over the limit of %" PRIu64 " bytes", x->max_body);
		force(x, CAIRN_HTTP_TOO_LARGE, d);
		return 0;
	}
	x->body_bytes += len;
	x->h->stats.body_bytes += len;
	if (x->req.on_data) {
		int rc = x->req.on_data(x->req.ctx, buf, len);
		if (rc) {
			x->callback_error = rc;
			force(x, CAIRN_HTTP_ABORTED, "stopped by the data callback");
			return 0;
		}
	}
	return len;
}

/* ---- requests ------------------------------------------------------------ */

/*
 * Called once the transfer has a connection (new or reused), before the
 * request goes out, and again for each redirect followed.  Until then it
 * may wait in curl's queue for a free connection, which is no stall; from
 * now on the stall, first-byte and rate clocks run, each hop on its own.
 */
static int prereq_cb(void *arg, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
		     int conn_local_port)
{
	struct xfer *x = arg;

	x->connected = 1;
	x->status_seen = 0;
	x->req_ms = x->last_ms = mono_ms();
	if (x->h->rate_need)
		cairn_http__rate_start(&x->rate, x->req_ms, x->h->rate_need,
				       x->h->cfg.min_rate_window_s * 1000);
	return CURL_PREREQFUNC_OK;
}

static int easy_setup(struct cairn_http *h, struct xfer *x)
{
	CURL *e = x->easy;
	const struct cairn_http_config *c = &h->cfg;
	long total = x->req.total_timeout_s ? x->req.total_timeout_s : c->total_timeout_s;
	long version = CURL_HTTP_VERSION_2TLS;
	CURLcode rc = CURLE_OK;

	int h2 = x->req.server && (x->req.server->flags & CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE);

	if (h2)
		version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(e, opt, val);                                        \
	} while (0)
	SET(CURLOPT_URL, x->url);
	SET(CURLOPT_PRIVATE, (void *)x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, x->file ? "file" : "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	SET(CURLOPT_PROTOCOLS, x->file ? (long)CURLPROTO_FILE
				       : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	SET(CURLOPT_FOLLOWLOCATION, c->max_redirects > 0 ? 1L : 0L);
	SET(CURLOPT_MAXREDIRS, c->max_redirects);
	SET(CURLOPT_HTTP_VERSION, version);
	/* Waiting for an existing connection pays only where it can be
	 * shared: HTTP/2, which plain http:// never gets without prior
	 * knowledge.  There it would hold every transfer to the host behind
	 * the first one's response. */
	SET(CURLOPT_PIPEWAIT,
	    c->multiplex && (h2 || strncmp(x->url, "https://", 8) == 0) ? 1L : 0L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
	/* Our own checks (check_timers) see silence and slowness.  Without
	 * a minimum rate of ours, curl's low-speed check still ends a trickle
	 * slower than a byte a second. */
	if (c->min_rate == 0) {
		SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
		SET(CURLOPT_LOW_SPEED_TIME, c->stall_timeout_s);
	}
	SET(CURLOPT_TIMEOUT, total);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_USERAGENT, h->user_agent);
	if (h->ca_file)
		SET(CURLOPT_CAINFO, h->ca_file);
	SET(CURLOPT_HEADERFUNCTION, header_cb);
	SET(CURLOPT_HEADERDATA, (void *)x);
	SET(CURLOPT_WRITEFUNCTION, write_cb);
	SET(CURLOPT_WRITEDATA, (void *)x);
	SET(CURLOPT_PREREQFUNCTION, prereq_cb);
	SET(CURLOPT_PREREQDATA, (void *)x);
	if (x->req.method == CAIRN_HTTP_HEAD)
		SET(CURLOPT_NOBODY, 1L);
	else if (x->req.range_start > 0 || x->req.range_end > 0)
		SET(CURLOPT_RANGE, x->range);
	if (x->req.accept_compressed)
		SET(CURLOPT_ACCEPT_ENCODING, ""); /* "": each one this libcurl decodes */
	if (x->req.only_if_cached) {
		x->headers = curl_slist_append(NULL, "Cache-Control: only-if-cached");
		if (!x->headers)
			rc = CURLE_OUT_OF_MEMORY;
		SET(CURLOPT_HTTPHEADER, x->headers);
	}
#undef SET
	return rc == CURLE_OK ? 0 : -1;
}

int cairn_http_add(struct cairn_http *h, const struct cairn_http_request *req,
		   struct cairn_error *err)
{
	struct xfer *x;
	const char *path;
	size_t blen = 0, plen;
	char *url;

	if (!h || !req || !req->url || !req->on_done)
		return cairn_error_set(err, CAIRN_EINVAL, "http: request without url or on_done");
	if (req->delay_ms < 0 || req->delay_ms > CAIRN_HTTP_DELAY_MAX_MS ||
	    req->first_byte_timeout_ms < 0 ||
	    req->first_byte_timeout_ms > CAIRN_HTTP_TIMEOUT_MAX_MS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "http: request delay or first-byte timeout out of range");
	if (req->method != CAIRN_HTTP_GET && req->method != CAIRN_HTTP_HEAD)
		return cairn_error_set(err, CAIRN_EINVAL, "http: unknown method");
	path = req->url;
	if (req->server) {
		if (req->server->state != CAIRN_HTTP_SERVER_UP)
			return cairn_error_set(err, CAIRN_ENET, "http: %s is down: %s",
					       req->server->base_url, req->server->down_reason);
		blen = strlen(req->server->base_url);
		while (*path == '/')
			path++;
	}
	plen = strnlen(path, CAIRN_HTTP_URL_MAX + 1);
	if (plen > CAIRN_HTTP_URL_MAX || blen + 1 + plen > CAIRN_HTTP_URL_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "http: url longer than %d bytes",
				       CAIRN_HTTP_URL_MAX);
	url = malloc(blen + 1 + plen + 1);
	if (!url)
		return cairn_error_set(err, CAIRN_ENOMEM, "http: out of memory");
	if (req->server)
		snprintf(url, blen + plen + 2, "%s/%s", req->server->base_url, path);
	else
		memcpy(url, path, plen + 1);
	/* file:// only under a file:// server: an absolute URL in a narinfo
	 * must never make a client (or a mirror) read local files. */
	int file = req->server && cairn_http__is_file_url(req->server->base_url);
	if (file ? !cairn_http__file_path_ok(path) : !cairn_http__url_scheme_ok(url)) {
		cairn_error_set(err, CAIRN_EINVAL,
				file ? "http: '%.200s': a path under a file:// cache may not "
				       "hold '.', '..', '%%', '?' or '#'"
				     : "http: '%.200s': only http:// and https:// are supported",
				url);
		free(url);
		return CAIRN_EINVAL;
	}
	x = calloc(1, sizeof(*x));
	if (!x) {
		free(url);
		return cairn_error_set(err, CAIRN_ENOMEM, "http: out of memory");
	}
	x->h = h;
	x->url = url;
	x->file = file;
	x->req = *req;
	x->req.url = url;
	x->first_byte_ms =
	    req->first_byte_timeout_ms ? req->first_byte_timeout_ms : h->cfg.first_byte_timeout_ms;
	x->not_before = req->delay_ms ? mono_ms() + req->delay_ms : 0;
	x->max_body = req->max_body ? req->max_body : CAIRN_HTTP_NARINFO_MAX;
	if (x->max_body > CAIRN_HTTP_BODY_MAX)
		x->max_body = CAIRN_HTTP_BODY_MAX;
	if (req->range_end > req->range_start)
		snprintf(x->range, sizeof(x->range), "%" PRIu64 "-%" PRIu64, req->range_start,
			 req->range_end - 1);
	else
		snprintf(x->range, sizeof(x->range), "%" PRIu64 "-", req->range_start);
	cairn_http__response_reset(&x->resp);
	x->easy = curl_easy_init();
	if (!x->easy || easy_setup(h, x) < 0) {
		xfer_free(x);
		return cairn_error_set(err, CAIRN_ENOMEM, "http: cannot set up a transfer");
	}
	list_push(&h->queued, x);
	h->nqueued++;
	return 0;
}

static const char *method_name(const struct xfer *x)
{
	return x->req.method == CAIRN_HTTP_HEAD ? "HEAD" : "GET";
}

static void server_count(struct cairn_http_server *s, const struct cairn_http_result *res,
			 int never_started)
{
	struct cairn_http_server_health *hl = &s->health;

	hl->requests++;
	if (never_started)
		return;
	switch (res->outcome) {
	case CAIRN_HTTP_OK: hl->ok++; break;
	case CAIRN_HTTP_CONNECT: hl->unreachable++; break;
	case CAIRN_HTTP_SILENT: hl->silent++; break;
	case CAIRN_HTTP_SLOW: hl->slow++; break;
	case CAIRN_HTTP_STALL: hl->stalls++; break;
	default: break;
	}
}

/* Turn what curl and our callbacks saw into an outcome, and report it. */
static void finish(struct cairn_http *h, struct xfer *x, CURLcode code, int never_started)
{
	struct cairn_http_result res;
	curl_off_t total_us = 0;
	long nconn = 0, total;
	const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
	int ecode = CAIRN_ENET;

	memset(&res, 0, sizeof(res));
	res.url = x->url;
	res.body_bytes = x->body_bytes;
	res.wire_bytes = x->body_bytes;
	res.callback_error = x->callback_error;
	res.status = x->hdr_done ? x->resp.status : 0;

	if (never_started) {
		res.outcome = CAIRN_HTTP_CONNECT;
		cairn_error_set(&res.err, CAIRN_ENET, "http: %s %s: server is down: %s",
				method_name(x), x->url, x->req.server->down_reason);
		goto report;
	}
	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn);
	curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &total_us);
	/* before Content-Encoding is undone: what Content-Length counts */
	curl_off_t wire = 0;
	if (x->req.accept_compressed &&
	    curl_easy_getinfo(x->easy, CURLINFO_SIZE_DOWNLOAD_T, &wire) == CURLE_OK && wire > 0)
		res.wire_bytes = (uint64_t)wire;
	if (nconn > 0)
		h->stats.new_connections += (uint64_t)nconn;
	total = x->req.total_timeout_s ? x->req.total_timeout_s : h->cfg.total_timeout_s;

	if (x->file && !x->forced) {
		if (code == CURLE_FILE_COULDNT_READ_FILE) {
			/* What a web server says of a file that is not there. */
			cairn_http__response_reset(&x->resp);
			x->resp.status = 404;
			x->hdr_done = 1;
			code = CURLE_OK;
		} else if (code == CURLE_OK && !x->hdr_done) {
			/* An empty file, or HEAD. */
			file_headers(x);
		}
		res.status = x->hdr_done ? x->resp.status : 0;
	}
	if (x->forced) {
		res.outcome = (enum cairn_http_outcome)(x->forced - 1);
		if (res.outcome == CAIRN_HTTP_STATUS)
			res.status = x->resp.status;
	} else {
		switch (code) {
		case CURLE_OK:
			if (!status_ok(x->resp.status))
				res.outcome = CAIRN_HTTP_STATUS;
			else if (x->req.method == CAIRN_HTTP_GET && x->resp.content_length >= 0 &&
				 res.wire_bytes != (uint64_t)x->resp.content_length)
				res.outcome = CAIRN_HTTP_SHORT; /* belt and braces */
			else
				res.outcome = CAIRN_HTTP_OK;
			break;
		case CURLE_PARTIAL_FILE: res.outcome = CAIRN_HTTP_SHORT; break;
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_CONNECT:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_PEER_FAILED_VERIFICATION: res.outcome = CAIRN_HTTP_CONNECT; break;
		case CURLE_OPERATION_TIMEDOUT:
			/* One code for three timeouts: without a connection
			 * it was the connect timeout; otherwise the total
			 * timeout when it ran out, else the low-speed check. */
			if (!x->connected)
				res.outcome = CAIRN_HTTP_CONNECT;
			else if (total > 0 && total_us >= (curl_off_t)total * 1000000 - 200000)
				res.outcome = CAIRN_HTTP_TIMEOUT;
			else
				res.outcome = CAIRN_HTTP_STALL;
			break;
		case CURLE_TOO_MANY_REDIRECTS:
			res.outcome = CAIRN_HTTP_STATUS;
			res.status = x->resp.status;
			break;
		default: res.outcome = CAIRN_HTTP_NETWORK; break;
		}
	}

	switch (res.outcome) {
	case CAIRN_HTTP_OK: ecode = 0; break;
	case CAIRN_HTTP_STATUS:
		ecode = (res.status == 404 || res.status == 410) ? CAIRN_ENOENT : CAIRN_ENET;
		if (code == CURLE_TOO_MANY_REDIRECTS)
			cairn_error_set(&res.err, ecode, "http: %s %s: more than %ld redirects",
					method_name(x), x->url, h->cfg.max_redirects);
		else
			cairn_error_set(&res.err, ecode, "http: %s %s: status %ld", method_name(x),
					x->url, res.status);
		break;
	case CAIRN_HTTP_SHORT:
		ecode = CAIRN_ETRUNCATED;
		if (x->resp.content_length >= 0)
			cairn_error_set(
			    &res.err, ecode,
			    "http: %s %s: body ended after %" PRIu64 " of %" PRId64 " bytes",
			    method_name(x), x->url, x->body_bytes, x->resp.content_length);
		else
			cairn_error_set(&res.err, ecode,
					"http: %s %s: body ended early after %" PRIu64 " bytes: %s",
					method_name(x), x->url, x->body_bytes, why);
		break;
	case CAIRN_HTTP_STALL:
		/* curl gives headers by whole lines: in the headers, bytes of
		 * an unfinished line may have come. */
		cairn_error_set(&res.err, ecode,
				x->hdr_done ? "http: %s %s: stalled, nothing received for %ld s"
					    : "http: %s %s: stalled, the response headers did not "
					      "advance for %ld s",
				method_name(x), x->url, h->cfg.stall_timeout_s);
		break;
	case CAIRN_HTTP_SILENT:
		cairn_error_set(&res.err, ecode,
				"http: %s %s: no response within %g s (no status line since the "
				"request went out)",
				method_name(x), x->url, (double)x->first_byte_ms / 1000.0);
		if (x->req.server && x->req.server->state == CAIRN_HTTP_SERVER_UP)
			cairn_http__server_set_down(x->req.server, CAIRN_HTTP_SERVER_SILENT, res.err.msg);
		break;
	case CAIRN_HTTP_SLOW:
		cairn_error_set(&res.err, ecode, "http: %s %s: too slow: %s", method_name(x),
				x->url, x->detail);
		if (h->cfg.slow_marks_down && x->req.server &&
		    x->req.server->state == CAIRN_HTTP_SERVER_UP)
			cairn_http__server_set_down(x->req.server, CAIRN_HTTP_SERVER_SLOW, res.err.msg);
		break;
	case CAIRN_HTTP_TIMEOUT:
		cairn_error_set(&res.err, ecode, "http: %s %s: not done within %ld s",
				method_name(x), x->url, total);
		break;
	case CAIRN_HTTP_CONNECT:
		cairn_error_set(&res.err, ecode, "http: %s %s: cannot connect: %s", method_name(x),
				x->url, why);
		if (x->req.server && x->req.server->state == CAIRN_HTTP_SERVER_UP)
			cairn_http__server_set_down(x->req.server, CAIRN_HTTP_SERVER_UNREACHABLE, res.err.msg);
		break;
	case CAIRN_HTTP_TOO_LARGE:
		ecode = CAIRN_ELIMIT;
		cairn_error_set(&res.err, ecode, "http: %s %s: %s", method_name(x), x->url,
				x->detail);
		break;
	case CAIRN_HTTP_ABORTED:
		ecode = CAIRN_ECANCELED;
		cairn_error_set(&res.err, ecode, "http: %s %s: %s", method_name(x), x->url,
				x->detail);
		break;
	case CAIRN_HTTP_NETWORK:
		cairn_error_set(&res.err, ecode, "http: %s %s: %s", method_name(x), x->url,
				x->forced ? x->detail : why);
		break;
	}
report:
	if (x->req.server)
		server_count(x->req.server, &res, never_started);
	h->stats.requests++;
	x->req.on_done(x->req.ctx, &res);
}

/* Hand the queued requests that are due to curl; requests to servers marked
 * down meanwhile end here without touching the network, delayed or not. */
static int flush_queue(struct cairn_http *h, struct cairn_error *err)
{
	int64_t now = mono_ms();
	struct xfer *x, *next;

	/* on_done may queue more (at the head, behind this walk): they go out
	 * on the next step. */
	for (x = h->queued; x; x = next) {
		next = x->next;
		if (x->req.server && x->req.server->state != CAIRN_HTTP_SERVER_UP) {
			list_remove(&h->queued, x);
			h->nqueued--;
			finish(h, x, CURLE_OK, 1);
			xfer_free(x);
			continue;
		}
		if (x->not_before > now)
			continue;
		list_remove(&h->queued, x);
		h->nqueued--;
		CURLMcode mc = curl_multi_add_handle(h->multi, x->easy);
		if (mc != CURLM_OK) {
			list_push(&h->queued, x);
			h->nqueued++;
			return cairn_error_set(err, CAIRN_ENET, "http: curl_multi_add_handle: %s",
					       curl_multi_strerror(mc));
		}
		list_push(&h->active, x);
		h->nactive++;
	}
	return 0;
}

/* How long until the first queued request is due (0: now), at most limit. */
static int64_t queue_wait(const struct cairn_http *h, int64_t limit)
{
	int64_t now = mono_ms();

	for (const struct xfer *x = h->queued; x && limit > 0; x = x->next)
		if (x->not_before - now < limit)
			limit = x->not_before > now ? x->not_before - now : 0;
	return limit;
}

static int reap(struct cairn_http *h)
{
	CURLMsg *m;
	int left, n = 0;

	while ((m = curl_multi_info_read(h->multi, &left))) {
		struct xfer *x = NULL;
		CURLcode code;

		if (m->msg != CURLMSG_DONE)
			continue;
		code = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(h->multi, m->easy_handle);
		list_remove(&h->active, x);
		h->nactive--;
		finish(h, x, code, 0);
		xfer_free(x);
		n++;
	}
	return n;
}

static void end_active(struct cairn_http *h, struct xfer *x, enum cairn_http_outcome o,
		       const char *detail)
{
	curl_multi_remove_handle(h->multi, x->easy);
	list_remove(&h->active, x);
	h->nactive--;
	force(x, o, detail);
	finish(h, x, CURLE_OPERATION_TIMEDOUT, 0);
	xfer_free(x);
}

/*
 * End the connected transfers whose first-byte, rate or stall deadline has
 * passed, and return how long until the next deadline (at most limit_ms).
 * When two are due the earlier wins; on a tie, SILENT over STALL: "no
 * status line" says more.  A rate window that emptied is silence, the
 * stall timeout's to judge.
 */
static int check_timers(struct cairn_http *h, int limit_ms)
{
	int64_t now = mono_ms(), stall = (int64_t)h->cfg.stall_timeout_s * 1000;
	int64_t wait = limit_ms;
	struct xfer *x, *next;

	for (x = h->active; x; x = next) {
		enum cairn_http_outcome o = CAIRN_HTTP_STALL;
		int64_t due = x->last_ms + stall;

		next = x->next;
		if (!x->connected || x->forced)
			continue;
		if (!x->file && !x->status_seen && x->first_byte_ms > 0 &&
		    x->req_ms + x->first_byte_ms <= due) {
			due = x->req_ms + x->first_byte_ms;
			o = CAIRN_HTTP_SILENT;
		}
		if (!x->file && h->rate_need) {
			int64_t rd = cairn_http__rate_due(&x->rate);
			if (rd <= now && !cairn_http__rate_slow(&x->rate, now))
				rd = INT64_MAX;
			if (rd < due) {
				due = rd;
				o = CAIRN_HTTP_SLOW;
			}
		}
		if (due > now) {
			if (due - now < wait)
				wait = due - now;
			continue;
		}
		if (o == CAIRN_HTTP_SLOW) {
			char d[128];
			snprintf(d, sizeof(d),
				 "%" PRIu64 " bytes in the last %ld s, below the minimum of %ld "
				 "bytes/s",
				 cairn_http__rate_in_window(&x->rate, now),
				 h->cfg.min_rate_window_s, h->cfg.min_rate);
			end_active(h, x, o, d);
		} else {
			end_active(h, x, o, "");
		}
	}
	return (int)wait;
}

/*
 * Once a server is marked down, the transfers to it that have no answer yet
 * (waiting for a connection, or connected without a status line) would
 * only wait out the same timeout one after another: end them now.
 * Transfers that have their status line go on.
 */
static void sweep_down(struct cairn_http *h)
{
	struct xfer *x, *next;

	for (x = h->active; x; x = next) {
		next = x->next;
		if (!x->req.server || x->req.server->state == CAIRN_HTTP_SERVER_UP || x->forced ||
		    (x->connected && (x->status_seen || x->file)))
			continue;
		curl_multi_remove_handle(h->multi, x->easy);
		list_remove(&h->active, x);
		h->nactive--;
		finish(h, x, CURLE_OK, 1);
		xfer_free(x);
	}
}

void cairn_http_cancel(struct cairn_http *h, const void *ctx)
{
	for (struct xfer *x = h->active; x; x = x->next)
		if (x->req.ctx == ctx)
			x->cancel = 1;
	for (struct xfer *x = h->queued; x; x = x->next)
		if (x->req.ctx == ctx)
			x->cancel = 1;
}

/* End what cairn_http_cancel asked to (not from inside curl's callbacks,
 * where a transfer cannot be removed). */
static void sweep_cancelled(struct cairn_http *h)
{
	struct xfer *x, *next;

	for (x = h->active; x; x = next) {
		next = x->next;
		if (x->cancel)
			end_active(h, x, CAIRN_HTTP_ABORTED, "cancelled");
	}
	for (x = h->queued; x; x = next) {
		next = x->next;
		if (!x->cancel)
			continue;
		list_remove(&h->queued, x);
		h->nqueued--;
		force(x, CAIRN_HTTP_ABORTED, "cancelled");
		finish(h, x, CURLE_OK, 0);
		xfer_free(x);
	}
}

int cairn_http_step(struct cairn_http *h, int timeout_ms, struct cairn_error *err)
{
	int running = 0, rc, wait_ms;
	uint64_t done_before;
	CURLMcode mc;

	if (!h || h->in_step)
		return cairn_error_set(err, CAIRN_EINVAL, "http: step called from a callback");
	h->in_step = 1;
	done_before = h->stats.requests;
	rc = flush_queue(h, err);
	if (rc < 0)
		goto out;
	mc = curl_multi_perform(h->multi, &running);
	if (mc != CURLM_OK)
		goto curl_fail;
	reap(h);
	sweep_cancelled(h);
	wait_ms = check_timers(h, timeout_ms > 0 ? timeout_ms : 0);
	sweep_down(h);
	wait_ms = (int)queue_wait(h, wait_ms);
	/* Wait only when no callback ran: the caller may want to react. */
	if (h->stats.requests == done_before && h->nactive + h->nqueued > 0 && wait_ms > 0) {
		mc = curl_multi_poll(h->multi, NULL, 0, wait_ms + 1, NULL);
		if (mc != CURLM_OK)
			goto curl_fail;
		mc = curl_multi_perform(h->multi, &running);
		if (mc != CURLM_OK)
			goto curl_fail;
		reap(h);
		sweep_cancelled(h);
		check_timers(h, 0);
		sweep_down(h);
	}
	rc = (int)(h->nactive + h->nqueued);
	goto out;
curl_fail:
	rc = cairn_error_set(err, CAIRN_ENET, "http: libcurl: %s", curl_multi_strerror(mc));
out:
	h->in_step = 0;
	return rc;
}
