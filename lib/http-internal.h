/*
 * http-internal.h - what lib/http.c, http-server.c and http-parse.c share,
 * and the response-header parser and minimum-rate window exposed for the
 * fuzz target and unit tests; not part of the public API.
 */
#ifndef CAIRN_HTTP_INTERNAL_H
#define CAIRN_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/http.h"
#include "cairn/error.h"

/* A server as http.c and http-server.c share it. */
struct cairn_http_server {
	char *base_url;
	unsigned flags;
	struct cairn_http_cache_info info;
	enum cairn_http_server_state state;
	char down_reason[CAIRN_ERROR_MSG_MAX];
	struct cairn_http_server_health health; /* counters and down_since */
};

/* A server is down (in state st) from now, for reason. */
void cairn_http__server_set_down(struct cairn_http_server *s, enum cairn_http_server_state st,
				  const char *reason);

/* URL rules shared by server creation and each request (http-server.c). */
int cairn_http__url_scheme_ok(const char *url);
int cairn_http__is_file_url(const char *url);
/* A path under a file:// cache may not climb out: no "." or ".."
 * segment, no '%', '?' or '#'. */
int cairn_http__file_path_ok(const char *path);

static inline int cairn_http__is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* A response as before its status line. */
void cairn_http__response_reset(struct cairn_http_response *r);

enum {
	CAIRN_HTTP__HDR_FIELD = 0,  /* a header field (or a line without ':') */
	CAIRN_HTTP__HDR_STATUS = 1, /* a status line: *r was reset */
	CAIRN_HTTP__HDR_END = 2,    /* the blank line ending the block */
};

/*
 * Parse one header line as curl hands it over (with its CR LF) into *r;
 * *has_location is set by a Location field and cleared by a status line.
 * Never reads past buf + len; strings in *r stay NUL-terminated.
 */
int cairn_http__header_line(struct cairn_http_response *r, const char *buf, size_t len,
			    int *has_location);

/*
 * The minimum-rate rule over a sliding window (see cairn_http_config): at
 * time now, a transfer whose clock started at least window_ms ago is slow
 * when the bytes it received in (now - window_ms, now] number at least one
 * but fewer than need.
 *
 * Arrival times are kept in CAIRN_HTTP__RATE_SLOTS slots, each covering at
 * most window_ms / (CAIRN_HTTP__RATE_SLOTS - 2) ms of arrivals and stamped
 * with its last one, so memory is fixed and each call is O(1) but for
 * cairn_http__rate_in_window.  A slot counts as inside the window while its
 * last arrival is: the rule therefore never fires early, and at most one
 * slot's span late.  Slots whose bytes can no longer matter (more than need
 * bytes arrived after them) are dropped as bytes arrive.
 */
#define CAIRN_HTTP__RATE_SLOTS 64

struct cairn_http__rate {
	int64_t window_ms, gran_ms, start;
	uint64_t need, total;
	int64_t tail_first;		      /* first arrival in the newest slot */
	unsigned head, n;		      /* ring of n slots from head */
	int64_t t[CAIRN_HTTP__RATE_SLOTS];    /* last arrival in the slot */
	uint64_t cum[CAIRN_HTTP__RATE_SLOTS]; /* total after that arrival */
};

/* Start the clock at now (need > 0, window_ms > 0). */
void cairn_http__rate_start(struct cairn_http__rate *r, int64_t now, uint64_t need,
			    int64_t window_ms);
/* n bytes arrived at now (now never goes back). */
void cairn_http__rate_add(struct cairn_http__rate *r, int64_t now, uint64_t n);
/* When the rule will hold if nothing more arrives, INT64_MAX when it will
 * not (the window then empties first: silence, the stall timeout's). */
int64_t cairn_http__rate_due(const struct cairn_http__rate *r);
/* 1 when the rule holds at now (now >= every arrival), else 0. */
int cairn_http__rate_slow(const struct cairn_http__rate *r, int64_t now);
/* The bytes received in (now - window_ms, now], or more: slots that
 * straddle the edge count whole (exact to a slot when the rule holds). */
uint64_t cairn_http__rate_in_window(const struct cairn_http__rate *r, int64_t now);

/* Used by tests only, not part of the public API. */
/* Transfers through s that ended CAIRN_HTTP_SLOW; non-zero means "slow". */
uint64_t cairn_http_server_slow(const struct cairn_http_server *s);

#endif
