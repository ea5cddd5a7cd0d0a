/*
 * http-parse.c - the pure parts of the HTTP client, kept apart from curl
 * so that they are fuzzed and unit-tested alone: the response-header line
 * parser and the minimum-rate window (both declared in http-internal.h).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn/cairn.h"
#include "cairn/http.h"
#include "http-internal.h"
#include "cairn/banned.h"

/* ---- the minimum-rate window (http-internal.h) ---------------------------- */

#define RATE_SLOT(r, i) (((r)->head + (i)) % CAIRN_HTTP__RATE_SLOTS)

void cairn_http__rate_start(struct cairn_http__rate *r, int64_t now, uint64_t need,
			    int64_t window_ms)
{
	r->window_ms = window_ms;
	r->gran_ms = window_ms / (CAIRN_HTTP__RATE_SLOTS - 2);
	if (r->gran_ms < 1)
		r->gran_ms = 1;
	r->start = now;
	r->need = need;
	r->total = 0;
	/* A slot of no bytes at the start: before the first window is over
	 * the rule compares with what arrived since then. */
	r->head = 0;
	r->n = 1;
	r->t[0] = now;
	r->cum[0] = 0;
	/* No arrival joins it, so the first window ends exactly on time. */
	r->tail_first = now - r->gran_ms;
}

void cairn_http__rate_add(struct cairn_http__rate *r, int64_t now, uint64_t n)
{
	unsigned tail = RATE_SLOT(r, r->n - 1);

	if (n == 0)
		return;
	r->total += n;
	if (now - r->tail_first < r->gran_ms) {
		r->t[tail] = now;
		r->cum[tail] = r->total;
	} else {
		if (r->n == CAIRN_HTTP__RATE_SLOTS) {
			/* Full (steps came late): forget the oldest slot; the
			 * next one stands for it, later, so never early. */
			r->head = RATE_SLOT(r, 1);
			r->n--;
		}
		tail = RATE_SLOT(r, r->n);
		r->n++;
		r->t[tail] = now;
		r->cum[tail] = r->total;
		r->tail_first = now;
	}
	/* A slot with at least need bytes after it can never again be the
	 * edge of a window that holds fewer than need. */
	while (r->n > 1 && r->total >= r->need && r->cum[r->head] <= r->total - r->need) {
		r->head = RATE_SLOT(r, 1);
		r->n--;
	}
}

int64_t cairn_http__rate_due(const struct cairn_http__rate *r)
{
	/* The oldest slot holds the byte after which fewer than need bytes
	 * arrived: once it is a window old, the window holds fewer than need,
	 * and some, if a later slot exists.  Its last arrival is at or after
	 * the start, so this is never before one window has passed. */
	if (r->n < 2)
		return INT64_MAX;
	return r->t[r->head] + r->window_ms;
}

int cairn_http__rate_slow(const struct cairn_http__rate *r, int64_t now)
{
	unsigned tail = RATE_SLOT(r, r->n - 1);

	return now >= cairn_http__rate_due(r) && r->t[tail] > now - r->window_ms;
}

uint64_t cairn_http__rate_in_window(const struct cairn_http__rate *r, int64_t now)
{
	uint64_t before = 0;
	int found = 0;

	for (unsigned i = 0; i < r->n && r->t[RATE_SLOT(r, i)] <= now - r->window_ms; i++) {
		before = r->cum[RATE_SLOT(r, i)];
		found = 1;
	}
	return found ? r->total - before : r->total;
}

/* ---- header parsing ------------------------------------------------------ */

static int name_is(const char *line, size_t nlen, const char *name)
{
	return strlen(name) == nlen && strncasecmp(line, name, nlen) == 0;
}

/* A non-negative decimal int64 filling [s, end); -1 when it is not one. */
/* What a header that should hold a number holds when it does not. */
#define NOT_A_NUMBER ((int64_t)-1)

static int64_t parse_u63(const char *s, const char *end)
{
	int64_t v = 0;

	if (s == end)
		return NOT_A_NUMBER;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return NOT_A_NUMBER;
		if (v > (INT64_MAX - (*s - '0')) / 10)
			return NOT_A_NUMBER;
		v = v * 10 + (*s - '0');
	}
	return v;
}

static void copy_value(char *dst, size_t cap, const char *v, const char *end)
{
	size_t n = (size_t)(end - v);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, v, n);
	dst[n] = '\0';
}

/* "bytes FIRST-LAST/TOTAL", "bytes FIRST-LAST/(star)" or "bytes (star)/TOTAL". */
static void parse_content_range(struct cairn_http_response *r, const char *v, const char *end)
{
	const char *dash, *slash;

	if (end - v < 6 || strncasecmp(v, "bytes", 5) != 0 || !cairn_http__is_space(v[5]))
		return;
	v += 6;
	while (v < end && cairn_http__is_space(*v))
		v++;
	slash = memchr(v, '/', (size_t)(end - v));
	if (!slash)
		return;
	if (end - slash == 2 && slash[1] == '*')
		r->range_total = -1;
	else
		r->range_total = parse_u63(slash + 1, end);
	dash = memchr(v, '-', (size_t)(slash - v));
	if (dash) {
		int64_t a = parse_u63(v, dash), b = parse_u63(dash + 1, slash);
		if (a >= 0 && b >= a) {
			r->range_first = a;
			r->range_last = b;
		}
	}
}

static void parse_cache_control(struct cairn_http_response *r, const char *v, const char *end)
{
	int64_t maxage = -1, smaxage = -1;

	while (v < end) {
		const char *tok, *tend, *comma = memchr(v, ',', (size_t)(end - v));
		const char *stop = comma ? comma : end;
		const char *eq;

		tok = v;
		while (tok < stop && cairn_http__is_space(*tok))
			tok++;
		tend = stop;
		while (tend > tok && cairn_http__is_space(tend[-1]))
			tend--;
		eq = memchr(tok, '=', (size_t)(tend - tok));
		if (eq) {
			const char *val = eq + 1, *vend = tend;
			if (vend - val >= 2 && *val == '"' && vend[-1] == '"') {
				val++;
				vend--;
			}
			if (eq - tok == 7 && strncasecmp(tok, "max-age", 7) == 0)
				maxage = parse_u63(val, vend);
			else if (eq - tok == 8 && strncasecmp(tok, "s-maxage", 8) == 0)
				smaxage = parse_u63(val, vend);
		} else if ((tend - tok == 8 && strncasecmp(tok, "no-store", 8) == 0) ||
			   (tend - tok == 8 && strncasecmp(tok, "no-cache", 8) == 0)) {
			r->no_store = 1;
		}
		v = comma ? comma + 1 : end;
	}
	/* A shared cache (the narinfo cache is one) obeys s-maxage first. */
	r->max_age = smaxage >= 0 ? smaxage : maxage;
}

void cairn_http__response_reset(struct cairn_http_response *r)
{
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->range_first = r->range_last = r->range_total = -1;
	r->max_age = -1;
}

int cairn_http__header_line(struct cairn_http_response *r, const char *buf, size_t len,
			    int *has_location)
{
	const char *end = buf + len, *colon, *v;
	size_t nlen;

	if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
		/* A status line starts a new response (after a 1xx or a
		 * redirect); earlier headers no longer apply. */
		const char *p = buf + 5, *sp;
		cairn_http__response_reset(r);
		*has_location = 0;
		if (end - p >= 3 && p[0] == '1' && p[1] == '.')
			r->http_version = p[2] == '0' ? 10 : 11;
		else if (end - p >= 1 && p[0] == '2')
			r->http_version = 20;
		sp = memchr(p, ' ', (size_t)(end - p));
		if (sp && end - sp >= 4 && isdigit((unsigned char)sp[1]) &&
		    isdigit((unsigned char)sp[2]) && isdigit((unsigned char)sp[3]))
			r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		return CAIRN_HTTP__HDR_STATUS;
	}
	while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (end == buf)
		return CAIRN_HTTP__HDR_END;
	colon = memchr(buf, ':', (size_t)(end - buf));
	if (!colon)
		return CAIRN_HTTP__HDR_FIELD;
	v = colon + 1;
	while (v < end && cairn_http__is_space(*v))
		v++;
	while (end > v && cairn_http__is_space(end[-1]))
		end--;
	nlen = (size_t)(colon - buf);
	if (name_is(buf, nlen, "Content-Length"))
		r->content_length = parse_u63(v, end);
	else if (name_is(buf, nlen, "Content-Range"))
		parse_content_range(r, v, end);
	else if (name_is(buf, nlen, "Cache-Control"))
		parse_cache_control(r, v, end);
	else if (name_is(buf, nlen, "Accept-Ranges"))
		r->accept_ranges = end - v == 5 && strncasecmp(v, "bytes", 5) == 0;
	else if (name_is(buf, nlen, "Content-Type"))
		copy_value(r->content_type, sizeof(r->content_type), v, end);
	else if (name_is(buf, nlen, "Content-Encoding"))
		copy_value(r->content_encoding, sizeof(r->content_encoding), v, end);
	else if (name_is(buf, nlen, "Location"))
		*has_location = 1;
	return CAIRN_HTTP__HDR_FIELD;
}

/* Bytes arrived: the stall clock restarts and the rate window counts them.
 * curl hands headers over by whole lines, so a line trickled byte by byte
 * counts when it is complete. */
