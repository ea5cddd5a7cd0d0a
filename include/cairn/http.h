/*
 * http.h - the asynchronous HTTP client under cairn's download engine.
 *
 * `cairn fetch`, `cairn mirror` and `cairn challenge` share one
 * download-and-verify engine; this is its transport: many GET/HEAD
 * transfers in flight at once on one thread, on libcurl's multi interface.
 *
 * Design.
 *   - One client (struct cairn_http) per thread; it is not thread-safe.
 *   - Connections are kept alive and reused.  With multiplexing on (the
 *     default) transfers to one host share an HTTP/2 connection when the
 *     server offers HTTP/2: over https through ALPN; over plain http only
 *     when the server was created with CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE
 *     (curl does not try h2c otherwise).  New transfers wait for a
 *     multiplexed connection rather than opening more (CURLOPT_PIPEWAIT).
 *     Connections per host are capped (max_host_connections); transfers
 *     past the cap wait in curl's queue.
 *   - Only http:// and https:// (also across redirects), at most
 *     max_redirects redirects.  Bodies are passed through unchanged: no
 *     Accept-Encoding is sent, so Content-Encoding is reported, not undone.
 *   - A request streams its body to on_data; the body is bounded by
 *     max_body, checked against Content-Length as soon as the headers are
 *     in and again on every chunk.
 *   - Timeouts and rates, checked by the client itself on every step to
 *     within a few milliseconds; all but connect and total run from the
 *     moment the transfer has a connection (time queued for a free
 *     connection does not count):
 *       connect: per connection attempt (CONNECT);
 *       first byte: no status line within first_byte_timeout_ms of the
 *         request going out (SILENT; the server is marked down);
 *       minimum rate: bytes arriving, headers and body alike, but fewer
 *         than min_rate * min_rate_window_s of them in the last
 *         min_rate_window_s seconds (SLOW);
 *       stall: nothing at all for stall_timeout_s (STALL);
 *       total: an optional limit on the whole transfer (TIMEOUT).
 *   - A request may ask to start later (delay_ms): it waits in the client's
 *     queue, not in curl's, and cairn_http_step wakes up for it.
 *   - A body shorter than its Content-Length, or a chunked body cut off
 *     before its last chunk, is CAIRN_HTTP_SHORT, never success (curl's
 *     CURLE_PARTIAL_FILE; the received count is checked against
 *     Content-Length as well).
 *
 * Callbacks run inside cairn_http_step/cairn_http_run.  They may call
 * cairn_http_add (the new request starts on the next step) but must not
 * call cairn_http_step, cairn_http_run or cairn_http_free.  A request is
 * cancelled by returning non-zero from its on_headers or on_data.
 *
 * Resuming: a GET with range_start sends "Range: bytes=N-".  A server that
 * ignores it answers 200 with the whole body; on_headers should check for
 * status 206 with range_first == range_start and stop otherwise (the
 * advice for ABORTED is GIVE_UP, so the caller decides what next).
 *
 * Errors are classified (enum cairn_http_outcome) and cairn_http_advice()
 * turns a result into what the engine should do next: retry the same
 * server from where the body stopped (Range), try the next server, or give
 * up.  See docs/http-client.md.
 *
 * Servers.  struct cairn_http_server is a binary cache base URL with its
 * /nix-cache-info (StoreDir, WantMassQuery, Priority) and its health: up or
 * down (why, since when) and counters of what its transfers met.  A
 * request through a server that ends with CAIRN_HTTP_CONNECT (refused, DNS
 * failure, TLS failure, no connection within the connect timeout) or
 * CAIRN_HTTP_SILENT (connected, but no status line within the first-byte
 * timeout) marks the server down for the rest of the run, and so does
 * CAIRN_HTTP_SLOW when the client was configured with slow_marks_down.
 * cairn_http_add then refuses new requests to it, and requests queued for
 * it (delayed ones too), still waiting for a connection to it, or connected
 * but without a status line yet end with CAIRN_HTTP_CONNECT at once
 * instead of each waiting out a timeout.  Transfers that have their status
 * line go on.  A server object may be shared by several clients of one
 * thread only.
 *
 * nix-cache-info, as Nix's BinaryCacheStore::init reads it (checked against
 * NixOS/nix src/libstore/binary-cache-store.cc): the text is split into
 * lines on '\n'; a line without ':' is skipped; the name is what comes
 * before the first ':' and the value is the rest with surrounding
 * whitespace trimmed.  "StoreDir" must equal the client's store directory;
 * "WantMassQuery" is true only when the value is exactly "1"; "Priority" is
 * a decimal integer (lower is preferred), left at its default when it does
 * not parse.  Other names are ignored.  Here the file is bounded by
 * CAIRN_HTTP_CACHE_INFO_MAX and the store directory by
 * CAIRN_HTTP_STORE_DIR_MAX, and a NUL byte makes it malformed.
 */
#ifndef CAIRN_HTTP_H
#define CAIRN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"

#define CAIRN_HTTP_URL_MAX 4096			/* a request URL, after joining */
#define CAIRN_HTTP_BODY_MAX (UINT64_C(1) << 40) /* hard cap of max_body: 1 TiB */
#define CAIRN_HTTP_NARINFO_MAX (1u << 20)	/* suggested max_body for a narinfo */
#define CAIRN_HTTP_ERROR_BODY_MAX (64u << 10)	/* error bodies read then dropped */
#define CAIRN_HTTP_HEADER_MAX (64u << 10)	/* all header lines of one response */
#define CAIRN_HTTP_CACHE_INFO_MAX (64u << 10)	/* a nix-cache-info file */
#define CAIRN_HTTP_STORE_DIR_MAX 1024
/* Priority when nix-cache-info gives none: 0, the default of Nix's
 * StoreConfig "priority" setting (store.hh). */
#define CAIRN_HTTP_DEFAULT_PRIORITY 0

#define CAIRN_HTTP_DELAY_MAX_MS (24L * 3600 * 1000)   /* longest delay_ms */
#define CAIRN_HTTP_TIMEOUT_MAX_MS (24L * 3600 * 1000) /* longest first-byte timeout */
#define CAIRN_HTTP_MIN_RATE_MAX (1L << 30)	      /* largest min_rate, bytes/s */
#define CAIRN_HTTP_RATE_WINDOW_MAX_S 3600	      /* longest min_rate_window_s */

/* The client's settings; cairn_http_config_init fills in the defaults. */
struct cairn_http_config {
	long connect_timeout_ms; /* per connection attempt; default 5000 */
	/* From the request going out (the transfer has a connection) to its
	 * status line; default 5000; 0: none (the stall timeout still
	 * applies).  Ends with CAIRN_HTTP_SILENT and marks the server down. */
	long first_byte_timeout_ms;
	long stall_timeout_s; /* no byte for this long fails; default 30 */
	/* Minimum rate: a transfer connected for at least min_rate_window_s
	 * that received at least one byte but fewer than min_rate *
	 * min_rate_window_s bytes (headers and body) in the last
	 * min_rate_window_s seconds ends with CAIRN_HTTP_SLOW.  A window with
	 * no byte at all is left to the stall timeout.  min_rate in bytes/s,
	 * default 1024, 0: off (curl's own check, under 1 byte/s over
	 * stall_timeout_s, is then the last resort); window default 10. */
	long min_rate;
	long min_rate_window_s;
	int slow_marks_down;	    /* a SLOW transfer marks its server down too;
				       default 0: the server's slow counter only */
	long total_timeout_s;	    /* whole transfer; 0 (default) for none */
	long max_host_connections;  /* per host; default 8 */
	long max_total_connections; /* all hosts; default 64 */
	long max_redirects;	    /* default 5 */
	int multiplex;		    /* HTTP/2 multiplexing; default 1 */
	const char *user_agent;	    /* copied; default "cairn/VERSION" */
	const char *ca_file;	    /* PEM CA bundle for https (copied); NULL:
				       the system's */
};

void cairn_http_config_init(struct cairn_http_config *cfg);

struct cairn_http;

int cairn_http_new(struct cairn_http **out, const struct cairn_http_config *cfg,
		   struct cairn_error *err);
/* Abort every transfer still in flight (their on_done is not called). */
void cairn_http_free(struct cairn_http *h);

/* ---- servers --------------------------------------------------------- */

enum cairn_http_server_flags {
	/* Speak HTTP/2 over cleartext http:// without upgrade (h2c prior
	 * knowledge); only for servers known to accept it.  Refused with
	 * CAIRN_EUNSUPPORTED where cairn_http_h2c_usable() is 0. */
	CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE = 1 << 0,
};

/*
 * 0 when the running libcurl cannot reuse h2c prior-knowledge connections
 * (7.88.x: every request after the first on a connection fails, curl
 * issue #10634; Debian 12 ships 7.88.1), else 1.  HTTP/2 over https (ALPN)
 * is not affected.
 */
int cairn_http_h2c_usable(void);

/* What a server's /nix-cache-info says. */
struct cairn_http_cache_info {
	char store_dir[CAIRN_HTTP_STORE_DIR_MAX + 1]; /* "" when not given */
	int want_mass_query;			      /* 1 when "WantMassQuery: 1" */
	int priority; /* CAIRN_HTTP_DEFAULT_PRIORITY when not given */
	/* "CairnNarinfos: 1": the batch narinfo endpoint (narinfos.h); 0 when
	 * not said, or a version this client does not speak */
	int narinfos;
};

/*
 * Parse a nix-cache-info text (see the opening comment).  CAIRN_ELIMIT when
 * it is longer than CAIRN_HTTP_CACHE_INFO_MAX or StoreDir is too long,
 * CAIRN_EFORMAT for a NUL byte.  A StoreDir other than the caller's is not
 * checked here: compare out->store_dir.
 */
/* Remove the lines of nix-cache-info text whose key is key (in place);
 * the new length.  What a server says of itself, not of the cache (the
 * batch route: "CairnNarinfos"), is not copied into a replica. */
size_t cairn_http_cache_info_drop(char *text, size_t len, const char *key);
int cairn_http_cache_info_parse(const char *text, size_t len, struct cairn_http_cache_info *out,
				struct cairn_error *err);

struct cairn_http_server;

/*
 * A server at base_url (http:// or https://; trailing slashes dropped;
 * copied).  Priority starts at CAIRN_HTTP_DEFAULT_PRIORITY.
 */
int cairn_http_server_new(struct cairn_http_server **out, const char *base_url, unsigned flags,
			  struct cairn_error *err);
void cairn_http_server_free(struct cairn_http_server *s);
/* Borrowed, valid until cairn_http_server_free. */
const char *cairn_http_server_url(const struct cairn_http_server *s);
/* Record what the server's nix-cache-info said (copied). */
void cairn_http_server_set_info(struct cairn_http_server *s,
				const struct cairn_http_cache_info *info);
/* Borrowed; priority CAIRN_HTTP_DEFAULT_PRIORITY until set_info. */
const struct cairn_http_cache_info *cairn_http_server_info(const struct cairn_http_server *s);
/* Mark down (reason copied, truncated; state CAIRN_HTTP_SERVER_DOWN) or up
 * again.  Marking up keeps the counters. */
void cairn_http_server_mark_down(struct cairn_http_server *s, const char *reason);
void cairn_http_server_mark_up(struct cairn_http_server *s);
/* The reason it is down (borrowed, until the next mark), or NULL when up. */
const char *cairn_http_server_down(const struct cairn_http_server *s);

/* Up, or down and why; the client marks a server down after one transfer
 * with the outcome named (see the opening comment). */
enum cairn_http_server_state {
	CAIRN_HTTP_SERVER_UP = 0,
	CAIRN_HTTP_SERVER_DOWN,	       /* by cairn_http_server_mark_down */
	CAIRN_HTTP_SERVER_UNREACHABLE, /* after CAIRN_HTTP_CONNECT */
	CAIRN_HTTP_SERVER_SILENT,      /* after CAIRN_HTTP_SILENT */
	CAIRN_HTTP_SERVER_SLOW,	       /* after CAIRN_HTTP_SLOW, with slow_marks_down */
};

/* A short static name: "up", "down", "unreachable", "silent", "slow". */
const char *cairn_http_server_state_name(enum cairn_http_server_state st);

/* What the transfers through a server met, since cairn_http_server_new. */
struct cairn_http_server_health {
	enum cairn_http_server_state state;
	const char *down_reason; /* NULL when up; borrowed until the next mark */
	int64_t down_since;	 /* Unix time (s) of the mark; 0 when up */
	uint64_t requests;	 /* finished, any outcome */
	uint64_t ok;		 /* CAIRN_HTTP_OK */
	uint64_t unreachable;	 /* CAIRN_HTTP_CONNECT after a connection attempt
				    (not requests ended because it was down) */
	uint64_t silent;	 /* CAIRN_HTTP_SILENT */
	uint64_t slow;		 /* CAIRN_HTTP_SLOW */
	uint64_t stalls;	 /* CAIRN_HTTP_STALL */
};

void cairn_http_server_health(const struct cairn_http_server *s,
			      struct cairn_http_server_health *out);

/* ---- requests -------------------------------------------------------- */

/* Parsed from the final response's headers (redirects are skipped). */
struct cairn_http_response {
	long status;		/* 200, 206, 404... */
	int http_version;	/* 10, 11 or 20 */
	int64_t content_length; /* -1 when absent */
	/* Content-Range "bytes FIRST-LAST/TOTAL"; -1 when absent (TOTAL is
	 * -1 also for "*"). */
	int64_t range_first, range_last, range_total;
	int64_t max_age;	   /* Cache-Control max-age (s-maxage wins); -1 absent */
	int no_store;		   /* Cache-Control no-store or no-cache */
	int accept_ranges;	   /* "Accept-Ranges: bytes" */
	char content_type[128];	   /* "" when absent; truncated */
	char content_encoding[32]; /* "" when absent; truncated */
};

enum cairn_http_outcome {
	CAIRN_HTTP_OK = 0,    /* 2xx with the whole body */
	CAIRN_HTTP_STATUS,    /* the server answered with a non-2xx status */
	CAIRN_HTTP_NETWORK,   /* reset, protocol error, nothing received... */
	CAIRN_HTTP_SHORT,     /* body ended before its announced end */
	CAIRN_HTTP_STALL,     /* no byte for stall_timeout_s */
	CAIRN_HTTP_CONNECT,   /* could not connect: refused, DNS, timeout */
	CAIRN_HTTP_TIMEOUT,   /* total timeout */
	CAIRN_HTTP_TOO_LARGE, /* body longer than max_body */
	CAIRN_HTTP_ABORTED,   /* a callback returned an error */
	CAIRN_HTTP_SILENT,    /* no status line within the first-byte timeout */
	CAIRN_HTTP_SLOW,      /* bytes arriving, but under the minimum rate */
};

/* A short static name ("stall", "short", "too-large"...). */
const char *cairn_http_outcome_name(enum cairn_http_outcome o);

/* Handed to on_done; valid only during the call. */
struct cairn_http_result {
	enum cairn_http_outcome outcome;
	const char *url;	/* the request's URL */
	long status;		/* final status, 0 when none was received */
	uint64_t body_bytes;	/* bytes handed to on_data */
	uint64_t wire_bytes;	/* the body as received: body_bytes unless
				   accept_compressed had it decoded */
	int callback_error;	/* what on_headers/on_data returned, when they
				   stopped the transfer; else 0 */
	/* The message names the method and URL.  Code: 0 for OK, CAIRN_ENOENT
	 * for 404/410, CAIRN_ETRUNCATED for SHORT, CAIRN_ELIMIT for
	 * TOO_LARGE, CAIRN_ECANCELED for ABORTED, else CAIRN_ENET. */
	struct cairn_error err;
};

enum cairn_http_advice {
	CAIRN_HTTP_DONE = 0,	/* success */
	CAIRN_HTTP_RETRY_RANGE, /* same server again, from body_bytes on */
	CAIRN_HTTP_NEXT_SERVER, /* this server cannot give it */
	CAIRN_HTTP_GIVE_UP,	/* the caller stopped it; do not retry */
};

/*
 * What to do after a result: OK is DONE; network errors, stalls, short
 * bodies, 5xx, 408 and 429 are RETRY_RANGE (the caller bounds its retries
 * and checks Accept-Ranges); connect failures, silent and slow servers,
 * total timeout, other 4xx (404 above all), other statuses and too-large
 * bodies are NEXT_SERVER; ABORTED is GIVE_UP.
 */
enum cairn_http_advice cairn_http_advice(const struct cairn_http_result *r);

enum cairn_http_method {
	CAIRN_HTTP_GET = 0,
	CAIRN_HTTP_HEAD,
};

struct cairn_http_request {
	enum cairn_http_method method;
	/* With server: the path under its base URL ("nix-cache-info",
	 * "nar/x.nar.xz"; a leading '/' is ignored).  Without: a full URL. */
	struct cairn_http_server *server; /* borrowed; must outlive the request */
	const char *url;		  /* copied */
	uint64_t range_start;		  /* GET from this byte on (Range); 0 for all */
	uint64_t range_end;		  /* and up to this one, excluded; 0: to the end */
	uint64_t max_body;		  /* bytes of body; 0 for CAIRN_HTTP_NARINFO_MAX,
					     capped at CAIRN_HTTP_BODY_MAX */
	long total_timeout_s;		  /* 0: the client's */
	long first_byte_timeout_ms;	  /* 0: the client's */
	/* Not handed to curl before delay_ms after cairn_http_add (back-off
	 * before a retry); 0 for at once; at most CAIRN_HTTP_DELAY_MAX_MS.
	 * A request to a server marked down meanwhile ends at once. */
	long delay_ms;
	/* Send "Cache-Control: only-if-cached" (RFC 9111 5.2.1.7): a cache
	 * (a cairn mirror) answers from what it holds, or 504, and never
	 * asks its upstreams; an origin answers as usual. */
	bool only_if_cached;
	/* Send Accept-Encoding for what libcurl can decode (zstd, gzip...):
	 * on_data then gets the decoded body, which max_body bounds.  For
	 * bodies checked whole after decoding (an IPFS gateway's CARs), never
	 * for a nar's bytes, whose length and Range are the file's. */
	bool accept_compressed;
	/*
	 * Once the final response's headers are in.  Return 0 to go on,
	 * non-zero to stop (outcome ABORTED).  For a non-2xx status the body
	 * is dropped (on_data is not called) and the outcome is STATUS.
	 */
	int (*on_headers)(void *ctx, const struct cairn_http_response *resp);
	/* Each chunk of a 2xx body; non-zero stops (outcome ABORTED). */
	int (*on_data)(void *ctx, const void *data, size_t len);
	/* Exactly once per request that cairn_http_add accepted. */
	void (*on_done)(void *ctx, const struct cairn_http_result *res);
	void *ctx;
};

/*
 * Queue a request (the struct and url are copied; the server is
 * borrowed).  It starts on the next cairn_http_step (or the first one after
 * its delay).  Fails at once, without on_done, with CAIRN_ENET when the
 * server is marked down, CAIRN_ELIMIT when the URL is too long, CAIRN_EINVAL
 * for a scheme other than http(s), a missing on_done, or a negative or too
 * long delay or first-byte timeout.
 */
int cairn_http_add(struct cairn_http *h, const struct cairn_http_request *req,
		   struct cairn_error *err);

/*
 * Run transfers, waiting at most timeout_ms for network activity (or for
 * the next timer: a timeout, the rate check, a delayed request's start),
 * and call the callbacks that are due.  Returns the number of requests not
 * yet done (delayed, queued or in flight), or a negative error when libcurl
 * itself fails.
 */
int cairn_http_step(struct cairn_http *h, int timeout_ms, struct cairn_error *err);

/* Step until every request is done (including ones added meanwhile). */
int cairn_http_run(struct cairn_http *h, struct cairn_error *err);

/* What cairn_http_wait_one reports of its request. */
struct cairn_http_one {
	long status;	 /* final status, 0 when none was received */
	uint64_t bytes;	 /* body bytes received */
	uint64_t wire_bytes; /* the same before decoding (accept_compressed) */
	int outcome_code; /* the result's error code (0, CAIRN_ENOENT, ...) */
};

/*
 * Run one request to its end on the calling thread, stepping h (nothing
 * else may drive h meanwhile): the small documents and long polls that
 * sync, the followers and the monitor wait for.  rq's on_done is not used
 * and may be NULL.  body: the 2xx body is appended to it (bounded by
 * rq->max_body and body->max); NULL: rq->on_data(rq->ctx, ...) sees it.
 * stop, when given, is polled between steps: then CAIRN_ECANCELED, and the
 * request stays queued in h, so h must be freed before it is stepped again.
 * 0, or the request's error (its message names the URL); *one (may be
 * NULL) is filled in either case.
 */
int cairn_http_wait_one(struct cairn_http *h, const struct cairn_http_request *rq,
			struct cairn_buf *body, bool (*stop)(void *ctx), void *stop_ctx,
			struct cairn_http_one *one, struct cairn_error *err);

/*
 * End the requests whose ctx is ctx as ABORTED (on_done is called), on
 * the next cairn_http_step: for one that has nothing more to give and
 * may be silent (a stalled range whose bytes came from elsewhere), which
 * no callback of its own would stop.  May be called from callbacks.
 */
void cairn_http_cancel(struct cairn_http *h, const void *ctx);

/* Counters since cairn_http_new. */
struct cairn_http_stats {
	uint64_t requests;	  /* done */
	uint64_t new_connections; /* connections opened */
	uint64_t body_bytes;	  /* handed to on_data */
};
void cairn_http_stats(const struct cairn_http *h, struct cairn_http_stats *out);

#endif
