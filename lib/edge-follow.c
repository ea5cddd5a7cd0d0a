/*
 * edge-follow.c - `cairn mirror --follow URL`: a warm edge (edge-follow.h).
 *
 * One thread of its own with its own HTTP client (lib/http.c): the one
 * feed follower (lib/feed-follow.c: long-polls, verification, 410,
 * recreated feeds, back-off) calls back with each item added, which is
 * warmed through the mirror's own front door, one at a time, paced by
 * follow_pace.  Nothing here decides
 * trust or touches the cache: the mirror's request path does both.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/edge-follow.h"
#include "cairn/feed-follow.h"
#include "cairn/http.h"
#include "cairn/narinfo.h"
#include "edge-follow-int.h"
#include "metrics.h"
#include "cairn/banned.h"

/* ---- pure parts ----------------------------------------------------------- */

void follow_pace_init(struct follow_pace *p, double item_rate, double byte_rate, uint64_t budget,
		      int64_t now_ms)
{
	memset(p, 0, sizeof(*p));
	p->item_rate = item_rate > 0 ? item_rate : 0;
	p->byte_rate = byte_rate > 0 ? byte_rate : 0;
	p->budget = budget;
	/* the first item goes at once */
	p->items = p->item_rate > 0 && p->item_rate < 1 ? 1 : p->item_rate;
	p->bytes = p->byte_rate;
	p->last_ms = now_ms;
}

static void fill(struct follow_pace *p, int64_t now_ms)
{
	if (now_ms <= p->last_ms)
		return;
	double s = (double)(now_ms - p->last_ms) / 1000.0;
	p->last_ms = now_ms;
	/* at most one second's worth (and at least one item) is kept */
	double item_cap = p->item_rate < 1 ? 1 : p->item_rate;
	p->items += s * p->item_rate;
	if (p->items > item_cap)
		p->items = item_cap;
	p->bytes += s * p->byte_rate;
	if (p->bytes > p->byte_rate)
		p->bytes = p->byte_rate;
}

int64_t follow_pace_wait(struct follow_pace *p, int64_t now_ms)
{
	fill(p, now_ms);
	double wait_s = 0;
	if (p->item_rate > 0 && p->items < 1)
		wait_s = (1 - p->items) / p->item_rate;
	if (p->byte_rate > 0 && p->bytes < 0 && -p->bytes / p->byte_rate > wait_s)
		wait_s = -p->bytes / p->byte_rate;
	int64_t ms = (int64_t)(wait_s * 1000.0);
	/* rounding down would ask again a millisecond early, forever */
	return wait_s > 0 && (double)ms < wait_s * 1000.0 ? ms + 1 : ms;
}

void follow_pace_start(struct follow_pace *p, int64_t now_ms)
{
	fill(p, now_ms);
	if (p->item_rate > 0)
		p->items -= 1;
}

void follow_pace_took(struct follow_pace *p, int64_t now_ms, uint64_t bytes)
{
	fill(p, now_ms);
	if (p->byte_rate > 0)
		p->bytes -= (double)bytes;
	p->spent = bytes > UINT64_MAX - p->spent ? UINT64_MAX : p->spent + bytes;
}

bool follow_budget_fits(const struct follow_pace *p, uint64_t bytes)
{
	return p->budget == 0 || (p->spent <= p->budget && bytes <= p->budget - p->spent);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool edge_cc_only_if_cached(const char *v, size_t len)
{
	static const char want[] = "only-if-cached";
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len && v[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && is_ows(v[a]))
			a++;
		while (b > a && is_ows(v[b - 1]))
			b--;
		if (b - a == sizeof(want) - 1) {
			size_t k = 0;
			while (k < b - a && (v[a + k] | 0x20) == want[k])
				k++;
			if (k == b - a)
				return true;
		}
		i = j + 1;
	}
	return false;
}

/* ---- the follower --------------------------------------------------------- */

void cairn_edge_follow_config_init(struct cairn_edge_follow_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->rate_items = CAIRN_EDGE_FOLLOW_RATE_DEFAULT;
}

struct counters {
	struct metric *warmed, *warmed_bytes, *held, *refused, *failed, *skipped, *removed, *replaced,
		*pages,
		*pages_refused, *seq, *head, *lag, *budget_left;
};

struct cairn_edge_follow {
	struct cairn_edge_follow_config cfg;
	char *feed_url, *edge_url, *state_file;
	struct counters c;
	/* monotonic ms since the follower has known of an event it has not
	 * dealt with yet; 0 while caught up (for the lag in seconds) */
	atomic_int_fast64_t behind_since;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	/* the thread's own */
	struct cairn_http *http;
	struct cairn_http_server *feed_srv, *edge_srv;
	struct cairn_feed_follow *follower;
	uint64_t pages_seen; /* of the follower's pages, counted in c.pages */
	char feed[CAIRN_FEED_ID_LEN + 1]; /* "" until the first contact */
	uint64_t seq;
	struct follow_pace pace;
	bool budget_said;
	char last_trouble[256]; /* said once until it changes */
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(struct cairn_edge_follow *f, enum cairn_edge_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct cairn_edge_follow *f, enum cairn_edge_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!f->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* what came from the network is printed as printable ASCII only */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	f->cfg.log(f->cfg.log_ctx, level, msg);
}

/* A trouble that repeats (the head down) is said once, until it changes. */
static void trouble(struct cairn_edge_follow *f, const char *what)
{
	if (!strcmp(f->last_trouble, what))
		return;
	snprintf(f->last_trouble, sizeof(f->last_trouble), "%s", what);
	say(f, CAIRN_EDGE_LOG_WARN, "follow: %s (retrying)", what);
}

/* Wait ms, or less when asked to stop. */
static void pause_ms(struct cairn_edge_follow *f, int64_t ms)
{
	while (ms > 0 && !atomic_load(&f->stop)) {
		int64_t step = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)step * 1000000L};
		nanosleep(&ts, NULL);
		ms -= step;
	}
}

static bool follow_stopped(void *ctx)
{
	struct cairn_edge_follow *f = ctx;
	return atomic_load(&f->stop);
}

/* One request run to its end on the thread's client; body NULL: counted
 * (one->bytes), dropped.  0 for a 2xx; else the error, one->status telling
 * which status it was.  CAIRN_ECANCELED when asked to stop (the request is
 * left to the client, which is freed before it is stepped again). */
static int get(struct cairn_edge_follow *f, struct cairn_http_server *srv, const char *path,
	       bool only_if_cached, uint64_t max, long first_byte_ms, struct cairn_buf *body,
	       struct cairn_http_one *one, struct cairn_error *err)
{
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = srv,
					.url = path,
					.max_body = max,
					.first_byte_timeout_ms = first_byte_ms,
					.only_if_cached = only_if_cached};
	/* a failure marks the server down; each request here is a new try */
	cairn_http_server_mark_up(srv);
	return cairn_http_wait_one(f->http, &rq, body, follow_stopped, f, one, err);
}

/* ---- where it is in the feed ---------------------------------------------- */

static void state_save(struct cairn_edge_follow *f)
{
	struct cairn_feed_pos pos = {.seq = f->seq};
	struct cairn_error e;
	if (!f->state_file || !f->feed[0])
		return;
	memcpy(pos.feed, f->feed, sizeof(pos.feed));
	cairn_error_init(&e);
	if (cairn_feed_pos_save(f->state_file, &pos, &e) < 0)
		trouble(f, "cannot write the follow state file");
}

static void gauges(struct cairn_edge_follow *f, uint64_t head)
{
	if (head <= f->seq)
		atomic_store(&f->behind_since, 0);
	else if (atomic_load(&f->behind_since) == 0)
		atomic_store(&f->behind_since, mono_ms());
	metric_set(f->c.seq, (int64_t)f->seq);
	metric_set(f->c.head, (int64_t)head);
	metric_set(f->c.lag, head > f->seq ? (int64_t)(head - f->seq) : 0);
	if (f->pace.budget)
		metric_set(f->c.budget_left, f->pace.spent < f->pace.budget
						     ? (int64_t)(f->pace.budget - f->pace.spent)
						     : 0);
}

/* ---- warming one item ------------------------------------------------------ */

/* What the item will cost: its first URL's FileSize, else its NarSize. */
static uint64_t item_cost(const struct cairn_feed_event *e)
{
	struct cairn_narinfo *ni = NULL;
	uint64_t cost = 0;
	if (cairn_narinfo_parse(e->narinfo, e->narinfo_len, &ni, NULL) == 0) {
		cost = ni->n_urls && ni->urls[0].has_file_size ? ni->urls[0].file_size
							       : ni->nar_size;
		cairn_narinfo_free(ni);
	}
	return cost;
}

/* The mirror answers a miss once its upstream did (within its --wait). */
#define EDGE_FIRST_BYTE_MS 60000L

/* CAIRN_ECANCELED only when stopping; every other outcome is counted. */
static int warm(struct cairn_edge_follow *f, const struct cairn_feed_event *e)
{
	char path[CAIRN_EDGE_KEY_MAX + 64];
	struct cairn_buf body = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	struct cairn_http_one g;
	int rc;
	uint64_t cost = item_cost(e);
	if (!follow_budget_fits(&f->pace, cost)) {
		metric_add(f->c.skipped, 1);
		if (!f->budget_said) {
			say(f, CAIRN_EDGE_LOG_WARN,
			    "follow: the warming budget is spent (%" PRIu64 " of %" PRIu64
			    " bytes): new items are not warmed, only counted",
			    f->pace.spent, f->pace.budget);
			f->budget_said = true;
		}
		return 0;
	}
	pause_ms(f, follow_pace_wait(&f->pace, mono_ms()));
	if (atomic_load(&f->stop))
		return CAIRN_ECANCELED;
	follow_pace_start(&f->pace, mono_ms());
	cairn_error_init(&err);

	/* already held (a client asked first, or an earlier run): nothing to send */
	snprintf(path, sizeof(path), "%s.narinfo", e->hashpart);
	memset(&g, 0, sizeof(g));
	rc = get(f, f->edge_srv, path, true, CAIRN_NARINFO_MAX, 0, &body, &g, &err);
	if (rc == CAIRN_ECANCELED)
		goto out;
	if (rc == 0 && f->cfg.forget &&
	    (body.len != e->narinfo_len || memcmp(body.data, e->narinfo, body.len) != 0)) {
		/* the head rewrote it (a signature added, another URL) or the
		 * copy held came from another upstream: fetched again, so the
		 * edge does not serve the old bytes until its TTL ends */
		f->cfg.forget(f->cfg.forget_ctx, e->hashpart);
		metric_add(f->c.replaced, 1);
		rc = CAIRN_ENOENT;
	}
	if (rc == 0) {
		metric_add(f->c.held, 1);
		goto out;
	}
	cairn_buf_reset(&body);
	memset(&g, 0, sizeof(g));
	cairn_error_init(&err);
	rc = get(f, f->edge_srv, path, false, CAIRN_NARINFO_MAX, EDGE_FIRST_BYTE_MS, &body, &g,
		 &err);
	if (rc == CAIRN_ECANCELED)
		goto out;
	if (rc < 0) {
		metric_add(g.status == 404 ? f->c.refused : f->c.failed, 1);
		say(f, CAIRN_EDGE_LOG_WARN, "follow: %s not warmed: %s", e->hashpart,
		    g.status == 404 ? "the mirror does not serve its narinfo (refused by its trust "
				      "policy, or no upstream has it)"
				    : cairn_error_msg(&err));
		rc = 0;
		goto out;
	}
	if ((rc = cairn_narinfo_parse(body.data, body.len, &ni, &err)) < 0 || !ni->n_urls ||
	    strstr(ni->urls[0].url, "://")) {
		metric_add(f->c.failed, 1);
		say(f, CAIRN_EDGE_LOG_WARN, "follow: %s not warmed: %s", e->hashpart,
		    rc < 0 ? cairn_error_msg(&err) : "its nar is not under the mirror");
		rc = 0;
		goto out;
	}
	snprintf(path, sizeof(path), "%s", ni->urls[0].url);
	memset(&g, 0, sizeof(g));
	cairn_error_init(&err);
	rc = get(f, f->edge_srv, path, false, CAIRN_EDGE_NAR_MAX, EDGE_FIRST_BYTE_MS, NULL, &g,
		 &err);
	if (rc == CAIRN_ECANCELED)
		goto out;
	follow_pace_took(&f->pace, mono_ms(), g.bytes);
	if (rc < 0) {
		metric_add(f->c.failed, 1);
		say(f, CAIRN_EDGE_LOG_WARN, "follow: %s not warmed: %s", e->hashpart,
		    cairn_error_msg(&err));
		rc = 0;
		goto out;
	}
	/* a clean end: the mirror verified the bytes (it holds back the last
	 * one until then) and cached them */
	metric_add(f->c.warmed, 1);
	metric_add(f->c.warmed_bytes, g.bytes);
out:
	cairn_narinfo_free(ni);
	cairn_buf_release(&body);
	return rc;
}

/* ---- following: the one follower (feed-follow.h) calls back ---------------- */

static int on_event(void *ctx, const struct cairn_feed_event *e)
{
	struct cairn_edge_follow *f = ctx;
	uint64_t head = cairn_feed_follow_pos(f->follower)->head;
	gauges(f, head);
	int rc = 0;
	if (e->kind == CAIRN_FEED_ADD) {
		rc = warm(f, e);
	} else if (e->kind == CAIRN_FEED_REMOVE && f->cfg.forget) {
		/* forgotten, not refused: another upstream may still have it */
		f->cfg.forget(f->cfg.forget_ctx, e->hashpart);
		metric_add(f->c.removed, 1);
	}
	if (rc == 0) {
		f->seq = e->seq;
		gauges(f, head);
	}
	return rc;
}

static int on_position(void *ctx, const struct cairn_feed_pos *pos, bool fresh)
{
	struct cairn_edge_follow *f = ctx;
	uint64_t pages = cairn_feed_follow_stats(f->follower)->pages;
	memcpy(f->feed, pos->feed, sizeof(f->feed));
	f->seq = pos->seq;
	f->last_trouble[0] = 0;
	if (pages > f->pages_seen)
		metric_add(f->c.pages, pages - f->pages_seen);
	f->pages_seen = pages;
	if (fresh)
		say(f, CAIRN_EDGE_LOG_INFO,
		    "follow: feed %s of %s: warming what comes after its event %" PRIu64, f->feed,
		    f->feed_url, f->seq);
	gauges(f, pos->head);
	state_save(f);
	return 0;
}

static void on_refused(void *ctx, const struct cairn_error *why)
{
	struct cairn_edge_follow *f = ctx;
	(void)why;
	metric_add(f->c.pages_refused, 1);
}

static bool on_stop(void *ctx)
{
	struct cairn_edge_follow *f = ctx;
	return atomic_load(&f->stop);
}

static void on_log(void *ctx, const char *msg)
{
	struct cairn_edge_follow *f = ctx;
	say(f, CAIRN_EDGE_LOG_WARN, "follow: %s", msg);
}

static void *follow_main(void *arg)
{
	struct cairn_edge_follow *f = arg;
	struct cairn_error e;
	cairn_error_init(&e);
	if (cairn_feed_follow_run(f->follower, &e) < 0)
		say(f, CAIRN_EDGE_LOG_WARN, "follow: stopped: %s", cairn_error_msg(&e));
	return NULL;
}

/* The lag in seconds: how long the oldest event known and not dealt with
 * has waited (from when its page came); 0 while caught up. */
static int lag_seconds(void *ctx, struct metrics_out *o)
{
	const struct cairn_edge_follow *f = ctx;
	int64_t since = atomic_load(&f->behind_since), now = mono_ms();
	return metrics_emit_ns(o, NULL, 0,
			       since && now > since ? (uint64_t)(now - since) * 1000000u : 0);
}

int cairn_edge_follow_new(struct cairn_edge_follow **out, const struct cairn_edge_follow_config *cfg,
			  struct cairn_httpd *h, struct cairn_error *err)
{
	static const struct {
		size_t off;
		enum metric_type type;
		const char *name, *help;
	} ms[] = {
#define C(f, n, hl) {offsetof(struct counters, f), METRIC_COUNTER, n, hl}
#define G(f, n, hl) {offsetof(struct counters, f), METRIC_GAUGE, n, hl}
		C(warmed, "cairn_mirror_follow_warmed_total",
		  "items the follower fetched into the cache before any client asked"),
		C(warmed_bytes, "cairn_mirror_follow_warmed_bytes_total", "nar bytes it fetched"),
		C(held, "cairn_mirror_follow_held_total", "items of the feed already held"),
		C(refused, "cairn_mirror_follow_refused_total",
		  "items the mirror would not serve (its trust policy, or no upstream has them)"),
		C(failed, "cairn_mirror_follow_failed_total", "items whose warming failed"),
		C(skipped, "cairn_mirror_follow_budget_skipped_total",
		  "items not warmed because the budget is spent"),
		C(removed, "cairn_mirror_follow_removed_total",
		  "items the head removed, forgotten by the mirror"),
		C(replaced, "cairn_mirror_follow_replaced_total",
		  "held narinfos the head rewrote, forgotten and fetched again"),
		C(pages, "cairn_mirror_follow_pages_total", "feed pages verified and applied"),
		C(pages_refused, "cairn_mirror_follow_pages_refused_total",
		  "feed pages that did not verify (not applied)"),
		G(seq, "cairn_mirror_follow_seq", "the last feed event the follower dealt with"),
		G(head, "cairn_mirror_follow_head", "the head's newest event, as last heard"),
		G(lag, "cairn_mirror_follow_lag", "events between the follower and the head"),
		G(budget_left, "cairn_mirror_follow_budget_left_bytes",
		  "bytes left in the warming budget (unbounded: not set)"),
#undef C
#undef G
	};
	if (!cfg->feed_url || !cfg->trusted)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "follow: a feed URL and trusted keys (to verify its pages) are "
				       "needed");
	struct cairn_edge_follow *f = calloc(1, sizeof(*f));
	if (!f)
		return cairn_error_set(err, CAIRN_ENOMEM, "follow: out of memory");
	f->cfg = *cfg;
	f->feed_url = strdup(cfg->feed_url);
	f->state_file = cfg->state_file ? strdup(cfg->state_file) : NULL;
	if (!f->feed_url || (cfg->state_file && !f->state_file)) {
		cairn_edge_follow_free(f);
		return cairn_error_set(err, CAIRN_ENOMEM, "follow: out of memory");
	}
	struct metrics *reg = httpd_metrics(h);
	for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
		struct metric **slot = (struct metric **)((char *)&f->c + ms[i].off);
		int rc = ms[i].type == METRIC_GAUGE
			     ? metrics_gauge(reg, ms[i].name, ms[i].help, slot, err)
			     : metrics_counter(reg, ms[i].name, ms[i].help, slot, err);
		if (rc < 0) {
			cairn_edge_follow_free(f);
			return rc;
		}
	}
	int rc = metrics_collector(reg, "cairn_mirror_follow_lag_seconds", METRIC_GAUGE,
				   "how long the oldest feed event not dealt with has waited",
				   lag_seconds, f, err);
	if (rc < 0) {
		cairn_edge_follow_free(f);
		return rc;
	}
	*out = f;
	return 0;
}

int cairn_edge_follow_start(struct cairn_edge_follow *f, const char *edge_url,
			    struct cairn_error *err)
{
	struct cairn_http_config hc;
	int rc;
	cairn_http_config_init(&hc);
	if (f->cfg.connect_timeout_ms)
		hc.connect_timeout_ms = f->cfg.connect_timeout_ms;
	/* a nar of any size may take its time; stalls still end it */
	hc.total_timeout_s = 0;
	if (!(f->edge_url = strdup(edge_url)))
		return cairn_error_set(err, CAIRN_ENOMEM, "follow: out of memory");
	if ((rc = cairn_http_new(&f->http, &hc, err)) < 0 ||
	    (rc = cairn_http_server_new(&f->feed_srv, f->feed_url, 0, err)) < 0 ||
	    (rc = cairn_http_server_new(&f->edge_srv, f->edge_url, 0, err)) < 0)
		return rc;
	follow_pace_init(&f->pace, f->cfg.rate_items, (double)f->cfg.rate_bytes, f->cfg.budget,
			 mono_ms());
	struct cairn_feed_follow_config fc = {.http = f->http,
					      .server = f->feed_srv,
					      .kr = f->cfg.trusted,
					      /* what the head had before is not warmed, nor
					       * what was missed behind a 410: a mirror need
					       * not be complete */
					      .start = CAIRN_FEED_START_HEAD,
					      .wait_s = CAIRN_EDGE_FOLLOW_WAIT,
					      .on_event = on_event,
					      .on_position = on_position,
					      .on_refused = on_refused,
					      .stop = on_stop,
					      .log = on_log,
					      .ctx = f};
	if (f->state_file && cairn_feed_pos_load(f->state_file, &fc.pos) == 0) {
		memcpy(f->feed, fc.pos.feed, sizeof(f->feed));
		f->seq = fc.pos.seq;
	}
	if ((rc = cairn_feed_follow_new(&f->follower, &fc, err)) < 0)
		return rc;
	if (f->feed[0])
		say(f, CAIRN_EDGE_LOG_INFO, "follow: feed %s of %s: going on after its event %" PRIu64,
		    f->feed, f->feed_url, f->seq);
	gauges(f, f->seq);
	if ((rc = pthread_create(&f->thread, NULL, follow_main, f)) != 0)
		return cairn_error_errno(err, rc, "follow: cannot start its thread");
	f->started = true;
	return 0;
}

void cairn_edge_follow_free(struct cairn_edge_follow *f)
{
	if (!f)
		return;
	atomic_store(&f->stop, true);
	if (f->started)
		pthread_join(f->thread, NULL);
	cairn_feed_follow_free(f->follower);
	cairn_http_free(f->http); /* before the servers its transfers borrow */
	cairn_http_server_free(f->feed_srv);
	cairn_http_server_free(f->edge_srv);
	free(f->feed_url);
	free(f->edge_url);
	free(f->state_file);
	free(f);
}
