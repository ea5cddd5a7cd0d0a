/*
 * edge.c - the mirror's core: the fetches in flight (coalesced), the
 * upstream thread and its health checks, the request handlers and the
 * lifecycle.  The other parts are in edge-claims.c, edge-narinfo.c,
 * edge-nar.c and edge-pages.c (lib/edge-int.h says which is which).
 *
 * Hits are answered on the event loop.  A miss defers its response and
 * goes to a thread of its own, which creates one `struct fetch` in
 * e->inflight, keyed by the request path, or joins the one that is there.
 * The upstream thread runs the transfers (lib/http.c is single-threaded):
 * narinfo queries through the survey, nar downloads through the download
 * engine into a temporary file that each waiting client's thread follows
 * (edge-nar.c).  A finished fetch leaves the table before it reports its
 * end, so the next request after a failure goes upstream again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "download.h"
#include "edge-int.h"
#include "edge-follow-int.h"
#include "edge-trust.h"
#include "httpd-follow.h"
#include "ipfs-gateway.h"
#include "metrics.h"
#include "cairn/banned.h"

void cairn_edge_config_init(struct cairn_edge_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->positive_ttl = 3600;
	cfg->negative_ttl = 60;
	cfg->health_interval_ms = 5000;
	cfg->max_backoff_ms = 60000;
	cfg->wait_ms = 30000;
	cfg->connect_timeout_ms = 2000;
	cfg->stall_timeout_s = 30;
	cfg->priority = -1;
	cfg->log_interval_ms = 10000;
}

/* One line for the operator.  What came from the network must have gone
 * through edge_safe first. */
__attribute__((format(printf, 3, 4))) void
edge_say(struct cairn_edge *e, enum cairn_edge_log_level level, const char *fmt, ...)
{
	char msg[EDGE_LOG_LINE_MAX];
	va_list ap;
	if (!e->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->cfg.log(e->cfg.log_ctx, level, msg);
}

/* Text for people (out, printable): without the credentials of a URL. */
char *edge_tell(char *out, size_t cap, const char *text)
{
	char tmp[EDGE_LOG_LINE_MAX];
	snprintf(tmp, sizeof(tmp), "%s", text);
	edge_redact_userinfo(tmp);
	return edge_safe(out, cap, tmp, strlen(tmp));
}

/* An upstream's base URL as told to people. */
void edge_upstream_name(const struct upstream *u, char *out, size_t cap)
{
	edge_tell(out, cap, cairn_http_server_url(u->srv));
}

/* --- fetch lifetime ---------------------------------------------------------- */

size_t edge_claims_size(size_t n)
{
	return sizeof(struct nar_claims) + n * sizeof(struct nar_claim);
}

void edge_fetch_unref(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	int last = --f->refs == 0;
	pthread_mutex_unlock(&e->mu);
	if (!last)
		return;
	if (f->fd >= 0)
		close(f->fd);
	if (f->sha_init)
		cairn_sha256_release(&f->sha);
	free(f->cand);
	edge_alts_release(f);
	for (size_t i = 0; i < CAIRN_EDGE_MAX_UPSTREAMS; i++) {
		cairn_narinfo_free(f->ans[i].ni);
		free(f->ans[i].text);
		free(f->ans[i].error);
	}
	if (f->mbuf) {
		atomic_fetch_sub(&e->mem_used, f->mcap);
		free(f->mbuf);
	}
	cairn_buf_release(&f->body);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	free(f);
}

/* Under e->mu: f checks its bytes against the claims on its URL as they
 * are now (later changes are looked at again before it commits). */
static int fetch_take_claims_locked(struct cairn_edge *e, struct fetch *f)
{
	const struct nar_claims *cl = map_get(&e->claims, f->key);
	uint32_t srcs = 0;
	size_t n = 0;
	/* A nar URL is the upstream's whose narinfo names it: asked there
	 * first, then (the claims still check the bytes) the others. */
	for (size_t i = 0; cl && i < cl->n; i++)
		srcs |= cl->c[i].srcs;
	for (size_t u = 0; u < e->n_ups; u++)
		if (srcs & ((uint32_t)1 << u))
			f->order[n++] = u;
	for (size_t u = 0; u < e->n_ups; u++)
		if (!(srcs & ((uint32_t)1 << u)))
			f->order[n++] = u;
	if (!cl || !cl->n)
		return 0;
	if (!(f->cand = malloc(edge_claims_size(cl->n))))
		return CAIRN_ENOMEM; /* not unchecked: not at all */
	memcpy(f->cand, cl, edge_claims_size(cl->n));
	return edge_alts_take_locked(e, f, NULL);
}

/*
 * Under e->mu: the fetch in flight for key, with a reference for the
 * caller, or a new one queued for the upstream thread.  *joined tells
 * which.
 */
struct fetch *edge_fetch_get_locked(struct cairn_edge *e, enum fkind kind, const char *key,
				    int *joined)
{
	struct fetch *f = map_get(&e->inflight, key);
	void *old;
	if (f) {
		f->refs++;
		*joined = 1;
		return f;
	}
	*joined = 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->e = e;
	f->refs = 2; /* the table (and upstream thread), the caller */
	f->kind = kind;
	snprintf(f->key, sizeof(f->key), "%s", key);
	snprintf(f->upath, sizeof(f->upath), "%s", key);
	f->fd = -1;
	f->length = -1;
	f->max_age = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	cairn_buf_init(&f->body, CAIRN_NARINFO_MAX);
	if ((kind == FK_NAR && fetch_take_claims_locked(e, f) < 0) ||
	    map_put(&e->inflight, key, f, &old) < 0) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cond);
		free(f->cand);
		edge_alts_release(f);
		free(f);
		return NULL;
	}
	f->qnext = NULL;
	*e->jobs_tail = f;
	e->jobs_tail = &f->qnext;
	pthread_cond_signal(&e->job_cond);
	return f;
}

/* Wait until f reaches at least `want` (or ends); returns the state. */
enum fstate edge_fetch_wait(struct fetch *f, enum fstate want, unsigned ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (f->state < want && f->state != FS_FAIL)
		if (pthread_cond_timedwait(&f->cond, &f->mu, &dl) == ETIMEDOUT)
			break;
	enum fstate st = f->state;
	pthread_mutex_unlock(&f->mu);
	return st;
}

/* Upstream thread: the fetch leaves the table, then tells its waiters. */
void edge_fetch_finish(struct fetch *f, enum fstate st, int not_found)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	if (map_get(&e->inflight, f->key) == f)
		map_take(&e->inflight, f->key);
	pthread_mutex_unlock(&e->mu);
	pthread_mutex_lock(&f->mu);
	f->state = st;
	f->not_found = not_found;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	edge_fetch_unref(f);
}

/* --- the upstream thread -------------------------------------------------------- */

/*
 * Upstream thread: u answered (up) or failed (why: the reason, any text).
 * A change is told; whether it is up or not yet known is published for
 * the handlers.
 */
void edge_set_up(struct cairn_edge *e, struct upstream *u, int up, const char *why)
{
	uint64_t t = edge_now_ms();
	if (up) {
		u->backoff_ms = 0;
		u->next_probe = t + e->cfg.health_interval_ms;
	} else {
		unsigned b = u->backoff_ms ? u->backoff_ms * 2 : e->cfg.health_interval_ms;
		if (b > e->cfg.max_backoff_ms)
			b = e->cfg.max_backoff_ms;
		u->backoff_ms = b;
		u->next_probe = t + b;
	}
	int changed = u->up != up;
	if (changed) {
		u->up = up;
		if (up)
			edge_count(e->c.ups_up, 1);
		else
			edge_gauge_down(e->c.ups_up);
	}
	if (!changed && u->checked && up)
		return;
	u->checked = 1;
	char name[512], w[EDGE_WHY_MAX];
	edge_upstream_name(u, name, sizeof(name));
	edge_tell(w, sizeof(w), up ? "" : why ? why : "no reason given");
	pthread_mutex_lock(&e->mu);
	u->up_pub = up;
	u->checked_pub = 1;
	memcpy(u->why_pub, w, sizeof(w));
	pthread_mutex_unlock(&e->mu);
	if (changed && up)
		edge_say(e, CAIRN_EDGE_LOG_INFO, "upstream %s is up again", name);
	else if (changed)
		edge_say(e, CAIRN_EDGE_LOG_WARN, "upstream %s is down: %s", name, w);
}

struct probe {
	struct cairn_edge *e;
	struct upstream *u;
	struct cairn_buf body;
};

static int probe_data(void *ctx, const void *data, size_t len)
{
	struct probe *p = ctx;
	return cairn_buf_append(&p->body, data, len) < 0;
}

static void probe_done(void *ctx, const struct cairn_http_result *res)
{
	struct probe *p = ctx;
	struct cairn_edge *e = p->e;
	struct upstream *u = p->u;
	struct cairn_http_cache_info info;
	struct cairn_error perr;
	char why[EDGE_WHY_MAX];
	e->active--;
	u->probing = 0;
	cairn_error_init(&perr);
	if (res->outcome == CAIRN_HTTP_OK &&
	    cairn_http_cache_info_parse(p->body.data ? p->body.data : "", p->body.len, &info,
					&perr) == 0) {
		size_t len;
		char *text = cairn_buf_steal(&p->body, &len);
		edge_set_up(e, u, 1, NULL);
		pthread_mutex_lock(&e->mu);
		int same = u->info && u->info_len == len && !memcmp(u->info, text, len);
		free(u->info);
		u->info = text;
		u->info_len = len;
		pthread_cond_broadcast(&e->info_cond);
		pthread_mutex_unlock(&e->mu);
		/* for a restart while the upstreams are down; only this thread
		 * replaces u->info, so it can be read here unlocked */
		if (!same)
			edge_store_info_put(e->store, cairn_http_server_url(u->srv), u->info,
					    u->info_len, NULL);
	} else {
		edge_count(e->c.probes_failed, 1);
		if (res->outcome == CAIRN_HTTP_OK)
			snprintf(why, sizeof(why), "its nix-cache-info is unreadable: %s",
				 cairn_error_msg(&perr));
		else
			snprintf(why, sizeof(why), "%s", cairn_error_msg(&res->err));
		edge_set_up(e, u, 0, why);
		pthread_mutex_lock(&e->mu);
		pthread_cond_broadcast(&e->info_cond);
		pthread_mutex_unlock(&e->mu);
	}
	cairn_buf_release(&p->body);
	free(p);
}

static void probe_start(struct cairn_edge *e, struct upstream *u)
{
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->e = e;
	p->u = u;
	cairn_buf_init(&p->body, CAIRN_HTTP_CACHE_INFO_MAX);
	struct cairn_http_request rq = {
		.method = CAIRN_HTTP_GET,
		.server = u->srv,
		.url = "nix-cache-info",
		.max_body = CAIRN_HTTP_CACHE_INFO_MAX,
		.total_timeout_s = 10,
		.on_data = probe_data,
		.on_done = probe_done,
		.ctx = p,
	};
	cairn_http_server_mark_up(u->srv);
	if (cairn_http_add(e->http, &rq, NULL) < 0) {
		cairn_buf_release(&p->body);
		free(p);
		edge_set_up(e, u, 0, "its health check could not be queued");
		return;
	}
	u->probing = 1;
	e->active++;
}

static void *upstream_main(void *arg)
{
	struct cairn_edge *e = arg;
	uint64_t next_flush = edge_now_ms() + EDGE_FLUSH_MS;
	for (;;) {
		uint64_t t = edge_now_ms();
		pthread_mutex_lock(&e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		struct fetch *jobs = e->jobs;
		e->jobs = NULL;
		e->jobs_tail = &e->jobs;
		pthread_mutex_unlock(&e->mu);
		while (jobs) {
			struct fetch *f = jobs;
			jobs = f->qnext;
			if (f->kind == FK_NARINFO)
				edge_ni_query_start(f);
			else
				edge_nar_start(f);
		}
		edge_ni_queries_poll(e);
		edge_nar_ipfs_poll(e);
		for (size_t i = 0; i < e->n_ups; i++)
			if (!e->ups[i].probing && t >= e->ups[i].next_probe)
				probe_start(e, &e->ups[i]);
		edge_refusals_flush(e);
		if (t >= next_flush) {
			edge_purge_negatives(e);
			edge_store_flush(e->store, NULL);
			next_flush = t + EDGE_FLUSH_MS;
		}
		if (e->active > 0) {
			cairn_http_step(e->http, 2, NULL);
			continue;
		}
		/* idle: sleep until a job arrives or a probe is due */
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 50 * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&e->mu);
		if (!e->jobs && !e->stop)
			pthread_cond_timedwait(&e->job_cond, &e->mu, &dl);
		pthread_mutex_unlock(&e->mu);
	}
	return NULL;
}

/* --- handlers ------------------------------------------------------------------ */

static int send_narinfo_text(struct cairn_httpd_req *req, const char *text, size_t len,
			     int64_t max_age)
{
	char cc[64];
	snprintf(cc, sizeof(cc), "max-age=%lld", (long long)(max_age > 0 ? max_age : 0));
	cairn_httpd_add_header(req, "Cache-Control", cc);
	return cairn_httpd_send(req, 200, "text/x-nix-narinfo", text, len);
}

static int send_404(struct cairn_httpd_req *req, int64_t max_age)
{
	char cc[64];
	if (max_age > 0)
		snprintf(cc, sizeof(cc), "max-age=%lld", (long long)max_age);
	else
		snprintf(cc, sizeof(cc), "no-store");
	cairn_httpd_add_header(req, "Cache-Control", cc);
	return cairn_httpd_send_error(req, 404);
}

static int key_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("._+-=/", *s)))
			return 0;
	return 1;
}

static int query_ok(const char *q, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z') ||
		      (q[i] >= '0' && q[i] <= '9') || strchr("._-=&", q[i])))
			return 0;
	return 1;
}

static void *miss_main(void *arg)
{
	struct miss *m = arg;
	struct cairn_edge *e = m->e;
	if (m->kind == MISS_NARINFO)
		edge_miss_narinfo(m);
	else if (m->kind == MISS_INFO)
		edge_miss_info(m);
	else if (m->kind == MISS_BATCH)
		edge_miss_batch(m);
	else
		edge_miss_stream(m);
	free(m);
	pthread_mutex_lock(&e->mu);
	if (--e->producers == 0)
		pthread_cond_broadcast(&e->producers_cond);
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* Loop side: hand the request to a thread of its own (takes m). */
int edge_defer_miss(struct cairn_edge *e, struct cairn_httpd_req *req, struct miss *m)
{
	size_t n;
	const char *v;
	m->e = e;
	m->is_head = cairn_httpd_req_is_head(req);
	if ((v = cairn_httpd_req_query(req, &n)) && n && n < sizeof(m->query) && query_ok(v, n)) {
		memcpy(m->query, v, n);
		m->qlen = n;
	}
	/* longer ones are no single range we would honour: the whole object */
	if ((v = cairn_httpd_req_header(req, "range", &n)) && n < sizeof(m->range)) {
		memcpy(m->range, v, n);
		m->rlen = n;
	}
	pthread_mutex_lock(&e->mu);
	int refuse = e->stop || e->producers >= EDGE_MAX_MISSES;
	if (!refuse)
		e->producers++;
	pthread_mutex_unlock(&e->mu);
	if (refuse) {
		free(m);
		return cairn_httpd_send_error(req, 503);
	}
	pthread_attr_t attr;
	pthread_t tid;
	int ok = 0;
	if (cairn_httpd_stream_defer(req, &m->s) == 0) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, EDGE_PRODUCER_STACK);
		ok = pthread_create(&tid, &attr, miss_main, m) == 0;
		pthread_attr_destroy(&attr);
		if (!ok)
			cairn_httpd_stream_error(m->s, 503, NULL);
	} else {
		cairn_httpd_send_error(req, 503);
	}
	if (!ok) {
		free(m);
		pthread_mutex_lock(&e->mu);
		if (--e->producers == 0)
			pthread_cond_broadcast(&e->producers_cond);
		pthread_mutex_unlock(&e->mu);
	}
	return 0;
}

/* Cache-Control: only-if-cached (RFC 9111 5.2.1.7): the asker wants what
 * is held, never a fetch through (cairn weather --held, the follower). */
static int only_if_cached(const struct cairn_httpd_req *req)
{
	size_t n;
	const char *v = cairn_httpd_req_header(req, "cache-control", &n);
	return v && edge_cc_only_if_cached(v, n);
}

/* An item is held when its narinfo is, and the nar its first URL names. */
static int nar_held(struct cairn_edge *e, const char *text, size_t len)
{
	struct cairn_narinfo *ni = NULL;
	char key[CAIRN_EDGE_KEY_MAX + 1], name[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	int held = cairn_narinfo_parse(text, len, &ni, NULL) == 0 && ni->n_urls &&
		   edge_url_key(ni->urls[0].url, key) == 0 && edge_store_nar_get(e->store, key, name, &size);
	cairn_narinfo_free(ni);
	return held;
}

/* for edge-batch.c */
int edge_req_only_if_cached(const struct cairn_httpd_req *req)
{
	return only_if_cached(req);
}

int edge_nar_held(struct cairn_edge *e, const char *text, size_t len)
{
	return nar_held(e, text, len);
}

static int h_narinfo(struct cairn_edge *e, struct cairn_httpd_req *req, const char *hash)
{
	char *text = NULL;
	size_t len = 0;
	int64_t max_age = 0;
	int stale;
	int rc = edge_narinfo_lookup(e, hash, &text, &len, &max_age, &stale, 1);
	if (only_if_cached(req) && (rc == LOOKUP_WOULD_WAIT || (rc > 0 && !nar_held(e, text, len)))) {
		free(text);
		return cairn_httpd_send_error(req, 504);
	}
	if (rc == LOOKUP_WOULD_WAIT) {
		struct miss *m = calloc(1, sizeof(*m));
		if (!m)
			return cairn_httpd_send_error(req, 503);
		m->kind = MISS_NARINFO;
		memcpy(m->hash, hash, CAIRN_STORE_HASH_LEN + 1);
		return edge_defer_miss(e, req, m);
	}
	if (rc < 0)
		return cairn_httpd_send_error(req, 502);
	if (rc == 0)
		return send_404(req, max_age);
	rc = send_narinfo_text(req, text, len, max_age);
	free(text);
	return rc;
}

static int h_stream(struct cairn_edge *e, struct cairn_httpd_req *req, const char *key, int is_nar)
{
	struct miss *m = calloc(1, sizeof(*m));
	if (!m)
		return cairn_httpd_send_error(req, 503);
	snprintf(m->key, sizeof(m->key), "%s", key);
	m->is_nar = is_nar;
	return edge_defer_miss(e, req, m);
}

static int h_nar(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	size_t plen;
	const char *path = cairn_httpd_req_path(req, &plen);
	char key[CAIRN_EDGE_KEY_MAX + 1];
	if (plen < 2 || cairn_httpd_safe_path(path + 1, plen - 1, key, sizeof(key), NULL) < 0 ||
	    !key_ok(key))
		return cairn_httpd_send_error(req, 404);
	int is_nar = !strncmp(key, "nar/", 4);
	if (is_nar) {
		char name[EDGE_FILE_NAME_LEN + 1];
		uint64_t size;
		if (edge_store_nar_pin(e->store, key, name, &size)) {
			int rc = cairn_httpd_send_file_at(req, edge_store_data_fd(e->store), name,
							  "application/x-nix-nar");
			edge_store_nar_unpin(e->store, name);
			if (rc != CAIRN_ENOENT) {
				edge_count(e->c.hits, 1);
				if (!cairn_httpd_req_is_head(req))
					edge_count(e->c.bytes_cache, size);
				return rc;
			}
		}
	}
	if (only_if_cached(req))
		return cairn_httpd_send_error(req, 504);
	return h_stream(e, req, key, is_nar);
}

static int h_root(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	size_t plen;
	const char *path = cairn_httpd_req_path(req, &plen);
	char hash[CAIRN_STORE_HASH_LEN + 1];
	if (plen == 1 + CAIRN_STORE_HASH_LEN + 8 && !memcmp(path + 1 + CAIRN_STORE_HASH_LEN, ".narinfo", 8) &&
	    cairn_store_hash_valid(path + 1, CAIRN_STORE_HASH_LEN)) {
		memcpy(hash, path + 1, CAIRN_STORE_HASH_LEN);
		hash[CAIRN_STORE_HASH_LEN] = 0;
		return h_narinfo(e, req, hash);
	}
	if (plen == 1 + CAIRN_STORE_HASH_LEN + 3 && !memcmp(path + 1 + CAIRN_STORE_HASH_LEN, ".ls", 3) &&
	    cairn_store_hash_valid(path + 1, CAIRN_STORE_HASH_LEN)) {
		char key[CAIRN_STORE_HASH_LEN + 4];
		memcpy(key, path + 1, plen - 1);
		key[plen - 1] = 0;
		return h_stream(e, req, key, 0);
	}
	return CAIRN_ENOENT;
}

/* --- lifecycle ---------------------------------------------------------------- */

int cairn_edge_new(struct cairn_edge **out, const struct cairn_edge_config *cfg,
		   struct cairn_error *err)
{
	struct cairn_edge *e;
	int rc;
	if (!cfg->cache_dir || !cfg->n_upstreams || cfg->n_upstreams > CAIRN_EDGE_MAX_UPSTREAMS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: needs a cache directory and 1 to %d upstreams",
				       CAIRN_EDGE_MAX_UPSTREAMS);
	if (cfg->require_sigs > 1 && !cfg->trusted)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: requiring %u signatures needs trusted keys",
				       cfg->require_sigs);
	if (cfg->require_sigs > CAIRN_VERIFY_MAX_SIGNERS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: at most %d signatures can be required",
				       CAIRN_VERIFY_MAX_SIGNERS);
	if (!(e = calloc(1, sizeof(*e))))
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	e->cfg = *cfg;
	e->cfg.cache_dir = NULL;
	if (!(e->cache_dir = strdup(cfg->cache_dir))) {
		free(e);
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	}
	memset(e->cfg.upstreams, 0, sizeof(e->cfg.upstreams));
	if (!e->cfg.health_interval_ms)
		e->cfg.health_interval_ms = 5000;
	if (e->cfg.max_backoff_ms < e->cfg.health_interval_ms)
		e->cfg.max_backoff_ms = e->cfg.health_interval_ms;
	if (!e->cfg.wait_ms)
		e->cfg.wait_ms = 30000;
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->log_mu, NULL);
	pthread_cond_init(&e->job_cond, NULL);
	pthread_cond_init(&e->info_cond, NULL);
	pthread_cond_init(&e->producers_cond, NULL);
	map_init(&e->inflight, NULL);
	map_init(&e->narinfos, NULL);
	map_init(&e->claims, NULL);
	map_init(&e->alts, NULL);
	e->jobs_tail = &e->jobs;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		if ((rc = cairn_http_server_new(&e->ups[i].srv, cfg->upstreams[i], 0, err)) < 0)
			goto fail;
		e->n_ups++;
		edge_upstream_name(&e->ups[i], e->ups[i].name, sizeof(e->ups[i].name));
		/* optimistic until the first probe says otherwise */
		e->ups[i].up = 1;
		e->ups[i].up_pub = 1;
	}
	if ((rc = edge_store_open(&e->store, cfg->cache_dir, cfg->max_size, err)) < 0)
		goto fail;
	if ((rc = edge_keys_describe(e, err)) < 0)
		goto fail;
	if (cfg->ipfs && (rc = edge_ipfs_open(e, err)) < 0)
		goto fail;
	if ((rc = edge_nar_ipfs_open(e, err)) < 0)
		goto fail;
	/* each upstream's last good nix-cache-info, until it answers again */
	for (size_t i = 0; i < e->n_ups; i++) {
		struct upstream *u = &e->ups[i];
		struct cairn_http_cache_info info;
		rc = edge_store_info_get(e->store, cairn_http_server_url(u->srv),
					 CAIRN_HTTP_CACHE_INFO_MAX, &u->info, &u->info_len, err);
		if (rc < 0)
			goto fail;
		if (rc == 1 && cairn_http_cache_info_parse(u->info, u->info_len, &info, NULL) < 0) {
			free(u->info);
			u->info = NULL;
			u->info_len = 0;
		}
	}
	/* narinfos not refreshed for this long are no use even as stale answers */
	if ((rc = edge_store_narinfo_purge(e->store, edge_now_s() - e->cfg.positive_ttl - EDGE_STALE_MAX,
					   err)) < 0)
		goto fail;
	pthread_mutex_lock(&e->mu);
	rc = edge_store_narinfo_each(e->store, edge_load_narinfo_cb, e, err);
	if (rc >= 0 && e->gw)
		edge_ipfs_reload_locked(e);
	pthread_mutex_unlock(&e->mu);
	if (rc < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	cairn_edge_free(e);
	return rc;
}

int cairn_edge_attach(struct cairn_edge *e, struct cairn_httpd *h, struct cairn_error *err)
{
	static const struct {
		size_t off;
		enum metric_type type;
		const char *name, *help;
	} cs[] = {
#define C(f, n, hl) {offsetof(struct counters, f), METRIC_COUNTER, n, hl}
#define G(f, n, hl) {offsetof(struct counters, f), METRIC_GAUGE, n, hl}
		C(hits, "cairn_mirror_nar_hits_total", "nar requests served from the cache"),
		C(misses, "cairn_mirror_nar_misses_total",
		  "nar requests that started an upstream fetch"),
		C(coalesced, "cairn_mirror_coalesced_total",
		  "requests that joined a fetch already in flight"),
		C(ni_hits, "cairn_mirror_narinfo_hits_total", "narinfo lookups answered from memory"),
		C(ni_misses, "cairn_mirror_narinfo_misses_total", "narinfo lookups sent upstream"),
		C(stale, "cairn_mirror_stale_served_total",
		  "narinfos served stale because every upstream failed"),
		C(bytes_cache, "cairn_mirror_cache_sent_bytes_total", "nar bytes sent from the cache"),
		C(bytes_upstream, "cairn_mirror_upstream_received_bytes_total",
		  "bytes received from upstreams"),
		C(up_errors, "cairn_mirror_upstream_errors_total",
		  "upstream requests that failed (not 404)"),
		C(verify_fail, "cairn_mirror_verify_failures_total",
		  "nars whose bytes did not match the narinfo"),
		C(untrusted, "cairn_mirror_untrusted_total",
		  "narinfos refused for lack of a trusted signature"),
		C(evictions, "cairn_mirror_evictions_total", "nars evicted from the cache"),
		G(ups_up, "cairn_mirror_upstreams_up", "upstreams currently healthy"),
		C(probes_failed, "cairn_mirror_health_check_failures_total",
		  "failed upstream health checks"),
		G(write_failing, "cairn_mirror_cache_write_failing",
		  "1 while downloads cannot be written to the cache"),
		C(write_errors, "cairn_mirror_cache_write_errors_total",
		  "downloads passed through uncached because the cache could not be written"),
		C(gw_fills, "cairn_mirror_gateway_fills_total",
		  "nars filled from IPFS gateways (--ipfs-gateway), verified"),
		C(gw_fill_failures, "cairn_mirror_gateway_fill_failures_total",
		  "nars the IPFS gateways could not fill (the upstreams' file used)"),
#undef C
#undef G
	};
	struct metrics *reg = httpd_metrics(h);
	int rc;
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		struct metric **slot = (struct metric **)((char *)&e->c + cs[i].off);
		if ((rc = cs[i].type == METRIC_GAUGE
				  ? metrics_gauge(reg, cs[i].name, cs[i].help, slot, err)
				  : metrics_counter(reg, cs[i].name, cs[i].help, slot, err)) < 0)
			return rc;
	}
	edge_count(e->c.ups_up, e->n_ups);
	e->httpd = h;
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/", "index", edge_h_index, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", edge_h_health, e, err)) <
		0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/narinfos", "narinfos", edge_h_narinfos,
				    e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-cache-info", "cache-info",
				    edge_h_cache_info, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_nar, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/log/", "log", h_nar, e, err)) < 0 ||
	    (e->gw && (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/ipfs/", "ipfs",
					      ipfs_gw_handle, e->gw, err)) < 0) ||
	    (e->gw && (rc = ipfs_gw_metrics(e->gw, httpd_metrics(h), "mirror", err)) < 0) ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "narinfo", h_root, e, err)) < 0)
		return rc;
	return 0;
}

int cairn_edge_start(struct cairn_edge *e, struct cairn_error *err)
{
	struct cairn_http_config hc;
	int rc;
	cairn_http_config_init(&hc);
	hc.connect_timeout_ms = e->cfg.connect_timeout_ms;
	hc.stall_timeout_s = e->cfg.stall_timeout_s;
	hc.max_host_connections = 16;
	if ((rc = cairn_http_new(&e->http, &hc, err)) < 0)
		return rc;
	if (pthread_create(&e->thread, NULL, upstream_main, e) != 0) {
		cairn_http_free(e->http);
		e->http = NULL;
		return cairn_error_set(err, CAIRN_EIO, "mirror: cannot start the upstream thread");
	}
	e->thread_started = 1;
	edge_say_listening(e);
	return 0;
}

/* Fail every fetch still queued or in flight, so that waiters wake up. */
static void fail_all(struct cairn_edge *e)
{
	for (;;) {
		struct fetch *f = NULL;
		pthread_mutex_lock(&e->mu);
		struct map_iter it;
		struct map_ent *x = map_iter_first(&it, &e->inflight);
		if (x)
			f = x->val;
		pthread_mutex_unlock(&e->mu);
		if (!f)
			break;
		if (f->fd >= 0)
			unlink(f->tmppath);
		edge_fetch_finish(f, FS_FAIL, 0);
	}
}

void cairn_edge_stop(struct cairn_edge *e)
{
	if (!e || !e->thread_started)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_cond_signal(&e->job_cond);
	pthread_cond_broadcast(&e->info_cond);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	e->thread_started = 0;
	/* the gateways' jobs write into fetches that end below */
	edge_nar_ipfs_close(e);
	/* transfers are abandoned without on_done: their fetches end here */
	edge_ni_queries_free(e);
	cairn_http_free(e->http);
	e->http = NULL;
	while (e->downloads) {
		struct fetch *f = e->downloads;
		e->downloads = f->dl_next;
		cairn_dl_free(f->dl);
		f->dl = NULL;
		if (f->fd >= 0 && !f->mem)
			unlink(f->tmppath);
		edge_fetch_finish(f, FS_FAIL, 0);
	}
	e->jobs = NULL;
	e->jobs_tail = &e->jobs;
	fail_all(e);
	/* producers end their streams: wait for them before the httpd goes */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&e->mu);
	while (e->producers)
		if (pthread_cond_timedwait(&e->producers_cond, &e->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

void cairn_edge_free(struct cairn_edge *e)
{
	if (!e)
		return;
	cairn_edge_stop(e);
	struct map_iter it;
	for (struct map_ent *x = map_iter_first(&it, &e->narinfos); x; x = map_iter_next(&it))
		edge_ni_ent_free(x->val);
	for (struct map_ent *x = map_iter_first(&it, &e->claims); x; x = map_iter_next(&it))
		free(x->val);
	map_release(&e->narinfos);
	map_release(&e->claims);
	edge_alts_free_all(e);
	map_release(&e->inflight);
	edge_ipfs_free(e);
	edge_nar_ipfs_close(e);
	for (size_t i = 0; i < e->n_ups; i++) {
		cairn_http_server_free(e->ups[i].srv);
		free(e->ups[i].info);
	}
	edge_store_free(e->store);
	free(e->cache_dir);
	free(e->keys);
	free(e->nix_keys);
	pthread_mutex_destroy(&e->log_mu);
	pthread_cond_destroy(&e->job_cond);
	pthread_cond_destroy(&e->info_cond);
	pthread_cond_destroy(&e->producers_cond);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
