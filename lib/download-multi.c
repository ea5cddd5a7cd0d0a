/*
 * download-multi.c - one file from several sources at once (see
 * download-int.h): each source asks for the pieces the range scheduler
 * gives it, one request at a time per slot (cfg.per_source slots); bytes at the pipeline's front go straight in, bytes ahead of
 * it wait in an unlinked temporary file until the front reaches them.
 *
 * Rates are measured, not guessed: a source's rate is the bytes it sent
 * over the time its requests were open (first byte's wait included), so a
 * source that stalls sees its rate fall while it stalls, and a free source
 * steals its tail (download-ranges.c) long before a fixed timeout fires.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "download-int.h"
#include "download-ranges.h"
#include "cairn/banned.h"

/* How often (bytes received, all sources) free sources look for a tail to steal. */
#define RESTEAL_EVERY ((uint64_t)256 << 10)
#define SPILL_CHUNK 65536

/* All requests in flight at once: per source, up to the most per source. */
#define MAX_REQS (CAIRN_DL_MAX_SOURCES * CAIRN_DL_MULTI_PER_SOURCE_MAX)

/* One request slot; a source has cfg.per_source of them, each its own
 * owner to the scheduler, so that each asks for its own piece. */
struct mreq {
	struct dl_multi *m;
	size_t src;   /* index into the download's sources */
	size_t use;   /* index into cfg.use: which of the sources in use */
	int who;      /* index into m->r, the scheduler's owner id */
	size_t piece; /* CAIRN_RS_NONE when it has none */
	uint64_t at;  /* the file offset of the next byte of the request in flight */
	bool in_flight, dead, stop;
	unsigned failures;
	uint64_t t_req_ms, t_first_ms;
	struct cairn_dl_source_stats st;
	char why[160];
};

struct dl_multi {
	struct cairn_dl *d;
	struct dl_multi_config cfg;
	size_t use[CAIRN_DL_MAX_SOURCES]; /* cfg.use points here: the caller's is its stack */
	struct mreq r[MAX_REQS];
	size_t n; /* slots: cfg.n_use times the slots per source */
	struct cairn_rs rs;
	int spill;
	uint64_t fed, since_steal;
	int fail_code;
	char fail_why[256];
	bool ended;
	unsigned char buf[SPILL_CHUNK];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* bytes per second over the time its requests were open, this one's so far included */
static uint64_t rate_of(const struct mreq *r, uint64_t now)
{
	uint64_t ms = r->st.active_ms + (r->in_flight ? now - r->t_req_ms : 0);
	return ms ? r->st.bytes * 1000 / ms : 0;
}

static void rates(const struct dl_multi *m, uint64_t *out)
{
	uint64_t now = now_ms();
	for (size_t i = 0; i < m->n; i++)
		out[i] = m->r[i].dead ? 1 : rate_of(&m->r[i], now);
}

static void assign(struct mreq *r);
static void report_source(struct dl_multi *m, size_t u);

static bool any_in_flight(const struct dl_multi *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].in_flight)
			return true;
	return false;
}

/* Requests still open once all bytes are in, or given up: stalled ones
 * would hold the end until a timeout; nothing they send is wanted. */
static void cancel_open(struct dl_multi *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->r[i].in_flight)
			cairn_http_cancel(m->cfg.http, &m->r[i]);
}

static void fail_all(struct dl_multi *m, int code, const char *why)
{
	if (!m->fail_code) {
		m->fail_code = code;
		snprintf(m->fail_why, sizeof(m->fail_why), "%s", why);
	}
	for (size_t i = 0; i < m->n; i++)
		m->r[i].stop = true;
	cancel_open(m);
}

/* Nothing in flight: the end, or free sources to set going again. */
static void check_end(struct dl_multi *m)
{
	if (m->ended)
		return;
	if (any_in_flight(m)) {
		if (m->fed == m->cfg.size)
			cancel_open(m);
		return;
	}
	if (!m->fail_code && m->fed < m->cfg.size) {
		for (size_t i = 0; i < m->n; i++)
			if (!m->r[i].dead)
				assign(&m->r[i]);
		if (any_in_flight(m))
			return;
		fail_all(m, CAIRN_ENET, "no source left for the rest of the file");
	}
	m->ended = true;
	for (size_t u = 0; m->cfg.on_stats && u < m->cfg.n_use; u++)
		report_source(m, u);
	cairn_dl__multi_end(m->d, m->fed == m->cfg.size ? 0 : m->fail_code,
			    m->fed == m->cfg.size ? "" : m->fail_why);
}

/* A source's figures: its slots' together (their requests overlap: the
 * rates add up; the first byte's wait is the best slot's). */
static void report_source(struct dl_multi *m, size_t u)
{
	struct cairn_dl_source_stats st = {0};
	uint64_t now = now_ms();
	bool all_failed = true;
	size_t src = m->cfg.use[u];
	for (size_t i = 0; i < m->n; i++) {
		const struct mreq *r = &m->r[i];
		if (r->use != u)
			continue;
		st.bytes += r->st.bytes;
		st.rate += rate_of(r, now);
		if (r->st.active_ms > st.active_ms)
			st.active_ms = r->st.active_ms;
		if (r->st.rtt_ms && (!st.rtt_ms || r->st.rtt_ms < st.rtt_ms))
			st.rtt_ms = r->st.rtt_ms;
		st.failures += r->st.failures;
		all_failed &= r->st.failed;
	}
	st.failed = all_failed;
	m->cfg.on_stats(m->cfg.ctx, src, &st);
}

/* Feed the pipeline what the front can now take from the temporary file. */
static int drain(struct dl_multi *m)
{
	uint64_t contig = cairn_rs_contig(&m->rs);
	while (m->fed < contig) {
		size_t want = contig - m->fed < SPILL_CHUNK ? (size_t)(contig - m->fed) : SPILL_CHUNK;
		ssize_t got = pread(m->spill, m->buf, want, (off_t)m->fed);
		if (got <= 0) {
			fail_all(m, CAIRN_EIO, "cannot read back the temporary file");
			return CAIRN_EIO;
		}
		if (cairn_dl__feed(m->d, m->buf, (size_t)got)) {
			fail_all(m, CAIRN_EFORMAT, "the bytes from several sources do not verify");
			return CAIRN_EFORMAT;
		}
		m->fed += (uint64_t)got;
	}
	return 0;
}

static int deliver(struct dl_multi *m, uint64_t off, const unsigned char *data, size_t len)
{
	if (off == m->fed) {
		if (cairn_dl__feed(m->d, data, len)) {
			fail_all(m, CAIRN_EFORMAT, "the bytes from several sources do not verify");
			return CAIRN_EFORMAT;
		}
		m->fed += len;
	} else {
		while (len) {
			ssize_t w = pwrite(m->spill, data, len, (off_t)off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fail_all(m, CAIRN_EIO, "cannot write the temporary file");
				return CAIRN_EIO;
			}
			data += w;
			len -= (size_t)w;
			off += (uint64_t)w;
		}
	}
	return drain(m);
}

static int on_headers(void *ctx, const struct cairn_http_response *resp)
{
	struct mreq *r = ctx;
	if (resp->status < 200 || resp->status > 299)
		return 0;
	r->t_first_ms = now_ms();
	if (!r->st.rtt_ms)
		r->st.rtt_ms = r->t_first_ms - r->t_req_ms;
	if (r->stop)
		return 1;
	/* a server that ignores Range sends the whole file: no use past byte 0 */
	if ((resp->status == 200 && r->at != 0) ||
	    (resp->status == 206 && resp->range_first != (int64_t)r->at)) {
		snprintf(r->why, sizeof(r->why), "cannot send a range (status %ld)", resp->status);
		r->dead = true;
		return 1;
	}
	return 0;
}

/* free sources with nothing to do look again at the others' tails */
static void resteal(struct dl_multi *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (!m->r[i].in_flight && !m->r[i].dead && !m->r[i].stop)
			assign(&m->r[i]);
}

static int on_data(void *ctx, const void *data, size_t len)
{
	struct mreq *r = ctx;
	struct dl_multi *m = r->m;
	cairn_dl__got(m->d, len);
	r->st.bytes += len;
	if (r->stop || r->piece == CAIRN_RS_NONE)
		return 1;
	uint64_t n = cairn_rs_progress(&m->rs, r->piece, len);
	uint64_t off = r->at;
	r->at += n;
	if (n && deliver(m, off, data, (size_t)n))
		return 1;
	m->since_steal += len;
	if (m->since_steal >= RESTEAL_EVERY) {
		m->since_steal = 0;
		resteal(m);
	}
	/* its piece is full (perhaps cut short by a thief): this request is done */
	return cairn_rs_piece_full(&m->rs, r->piece) ? 1 : 0;
}

static void on_done(void *ctx, const struct cairn_http_result *res)
{
	struct mreq *r = ctx;
	struct dl_multi *m = r->m;
	uint64_t now = now_ms();
	r->in_flight = false;
	r->st.active_ms += now - r->t_req_ms;
	bool full = r->piece != CAIRN_RS_NONE && cairn_rs_piece_full(&m->rs, r->piece);
	if (r->piece != CAIRN_RS_NONE)
		cairn_rs_release(&m->rs, r->piece);
	r->piece = CAIRN_RS_NONE;
	if (!full && !r->stop && !r->dead && res->outcome != CAIRN_HTTP_OK) {
		r->failures++;
		r->st.failures++;
		snprintf(r->why, sizeof(r->why), "%s", cairn_error_msg(&res->err));
		if (r->failures > m->cfg.max_resumes ||
		    cairn_http_advice(res) != CAIRN_HTTP_RETRY_RANGE)
			r->dead = true;
	}
	if (r->dead)
		r->st.failed = true;
	if (!r->dead && !r->stop)
		assign(r);
	/* what it left is for the free ones */
	if (!full)
		resteal(m);
	check_end(m);
}

static void assign(struct mreq *r)
{
	struct dl_multi *m = r->m;
	if (r->in_flight || r->dead || r->stop || m->fail_code)
		return;
	uint64_t rt[MAX_REQS];
	rates(m, rt);
	size_t i = cairn_rs_take(&m->rs, r->who, rt, m->n);
	if (i == CAIRN_RS_NONE)
		return;
	const struct cairn_rs_piece *p = &m->rs.p[i];
	const struct cairn_dl_source *s = &m->cfg.src[r->src];
	r->piece = i;
	r->at = p->start + p->done;
	struct cairn_http_request rq = {
	    .server = s->server,
	    .url = s->url,
	    .range_start = r->at,
	    .range_end = p->end,
	    .max_body = p->end - r->at,
	    .delay_ms = r->failures ? (long)m->cfg.retry_delay_ms << (r->failures - 1) : 0,
	    .on_headers = on_headers,
	    .on_data = on_data,
	    .on_done = on_done,
	    .ctx = r,
	};
	struct cairn_error e;
	cairn_error_init(&e);
	r->t_req_ms = now_ms();
	if (cairn_http_add(m->cfg.http, &rq, &e)) {
		cairn_rs_release(&m->rs, i);
		r->piece = CAIRN_RS_NONE;
		r->dead = true;
		r->st.failed = true;
		snprintf(r->why, sizeof(r->why), "%s", cairn_error_msg(&e));
		return;
	}
	r->in_flight = true;
}

int dl_multi_start(struct dl_multi **out, struct cairn_dl *d, const struct dl_multi_config *cfg,
		   struct cairn_error *err)
{
	if (cfg->n_use < 2 || cfg->n_use > CAIRN_DL_MAX_SOURCES || !cfg->size)
		return cairn_error_set(err, CAIRN_EINVAL, "download: bad arguments");
	struct dl_multi *m = calloc(1, sizeof(*m));
	if (!m)
		return cairn_error_set(err, CAIRN_ENOMEM, "download: out of memory");
	const char *dir = getenv("TMPDIR");
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/cairn-ranges.XXXXXX", dir && *dir ? dir : "/tmp") >=
	    (int)sizeof(path)) {
		free(m);
		return cairn_error_set(err, CAIRN_ELIMIT, "download: TMPDIR too long");
	}
	m->spill = mkstemp(path);
	if (m->spill < 0) {
		int e = errno;
		free(m);
		return cairn_error_set(err, CAIRN_EIO, "download: cannot make a temporary file: %s",
				       strerror(e));
	}
	unlink(path); /* bytes not yet verified never get a name */
	m->d = d;
	m->cfg = *cfg;
	if (cfg->n_use > CAIRN_DL_MAX_SOURCES)
		BUG("dl_multi_start: %zu sources", cfg->n_use);
	memcpy(m->use, cfg->use, cfg->n_use * sizeof(*m->use));
	m->cfg.use = m->use;
	size_t per = cfg->per_source ? cfg->per_source : CAIRN_DL_MULTI_PER_SOURCE;
	if (per > CAIRN_DL_MULTI_PER_SOURCE_MAX)
		per = CAIRN_DL_MULTI_PER_SOURCE_MAX;
	m->n = cfg->n_use * per;
	unsigned parts = (cfg->parts ? cfg->parts : CAIRN_DL_MULTI_PARTS) * (unsigned)m->n;
	cairn_rs_init(&m->rs, cfg->size, parts,
		      cfg->min_piece ? cfg->min_piece : CAIRN_DL_MULTI_MIN_PIECE);
	/* sources in turn: each starts with its first slot's piece */
	for (size_t i = 0; i < m->n; i++) {
		m->r[i].m = m;
		m->r[i].use = i % cfg->n_use;
		m->r[i].src = cfg->use[m->r[i].use];
		m->r[i].who = (int)i;
		m->r[i].piece = CAIRN_RS_NONE;
	}
	*out = m;
	for (size_t i = 0; i < m->n; i++)
		assign(&m->r[i]);
	check_end(m);
	return 0;
}

void dl_multi_free(struct dl_multi *m)
{
	if (!m)
		return;
	close(m->spill);
	free(m);
}
