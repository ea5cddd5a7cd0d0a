/*
 * survey.c - every narinfo of N paths from M servers, concurrently.
 *
 * The pairs are a cursor (next path, next server) over a growing path
 * list; survey_pump() issues pairs while fewer than max_inflight requests are
 * out, and runs again from every on_done, so the client always has work
 * queued.  Pairs answered without the network (a down server, the narinfo
 * cache) are delivered from inside survey_pump() at once.
 */
#include "cairn/survey.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/buf.h"
#include "cairn/narinfos.h"
#include "cairn/nicache.h"
#include "cairn/storepath.h"
#include "map.h"
#include "survey-int.h"
#include "cairn/banned.h"

const char *cairn_survey_outcome_name(enum cairn_survey_outcome o)
{
	switch (o) {
	case CAIRN_SURVEY_PRESENT: return "present";
	case CAIRN_SURVEY_ABSENT: return "absent";
	case CAIRN_SURVEY_INVALID: return "invalid";
	case CAIRN_SURVEY_UNKNOWN: return "unknown";
	}
	return "?";
}

void cairn_survey_config_init(struct cairn_survey_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_inflight = CAIRN_SURVEY_INFLIGHT_DEFAULT;
	cfg->now = (int64_t)time(NULL);
	cfg->max_retries = 1;
	cfg->batches = true;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cairn_survey_new(struct cairn_survey **out, struct cairn_http *h,
		     struct cairn_http_server *const *servers, size_t n_servers,
		     const struct cairn_survey_config *cfg, cairn_survey_fn fn, void *ctx,
		     struct cairn_error *err)
{
	if (!h || !servers || !fn || n_servers == 0 || n_servers > CAIRN_SURVEY_MAX_SERVERS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "survey: between 1 and %d servers and a callback are needed",
				       CAIRN_SURVEY_MAX_SERVERS);
	if (cfg && cfg->only_if_cached && cfg->cache)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "survey: only-if-cached answers are not for the narinfo cache");
	struct cairn_survey *s = calloc(1, sizeof(*s));
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "survey: out of memory");
	s->servers = calloc(n_servers, sizeof(*s->servers));
	s->st = calloc(n_servers, sizeof(*s->st));
	if (!s->servers || !s->st) {
		free(s->servers);
		free(s->st);
		free(s);
		return cairn_error_set(err, CAIRN_ENOMEM, "survey: out of memory");
	}
	memcpy(s->servers, servers, n_servers * sizeof(*servers));
	s->n_servers = n_servers;
	s->h = h;
	if (cfg)
		s->cfg = *cfg;
	else
		cairn_survey_config_init(&s->cfg);
	if (s->cfg.max_inflight == 0)
		s->cfg.max_inflight = CAIRN_SURVEY_INFLIGHT_DEFAULT;
	if (s->cfg.max_inflight > CAIRN_SURVEY_INFLIGHT_MAX)
		s->cfg.max_inflight = CAIRN_SURVEY_INFLIGHT_MAX;
	s->fn = fn;
	s->ctx = ctx;
	map_init(&s->by_hash, NULL);
	for (size_t i = 0; i < n_servers; i++)
		map_init(&s->st[i].stash, free);
	cairn_error_init(&s->stop_err);
	*out = s;
	return 0;
}

void survey_req_free(struct survey_req *q);

void survey_out_add(struct cairn_survey *s, struct survey_req *q)
{
	q->out_prev = NULL;
	q->out_next = s->out;
	if (s->out)
		s->out->out_prev = q;
	s->out = q;
}

static void out_del(struct cairn_survey *s, struct survey_req *q)
{
	if (q->out_prev)
		q->out_prev->out_next = q->out_next;
	else
		s->out = q->out_next;
	if (q->out_next)
		q->out_next->out_prev = q->out_prev;
	q->out_prev = q->out_next = NULL;
}

void cairn_survey_free(struct cairn_survey *s)
{
	if (!s)
		return;
	cairn_survey_flush(s);
	/* Requests still in the client: it is being torn down (see survey.h),
	 * so their on_done will never come. */
	while (s->out) {
		struct survey_req *q = s->out;
		out_del(s, q);
		survey_req_free(q);
	}
	for (size_t i = 0; i < s->n_servers; i++)
		for (struct survey_req *h = s->st[i].held, *n; h; h = n) {
			n = h->held_next;
			survey_req_free(h);
		}
	survey_batch_free(s);
	for (size_t i = 0; i < s->n_paths; i++)
		free(s->paths[i].path);
	free(s->paths);
	map_release(&s->by_hash);
	free(s->servers);
	free(s->st);
	free(s);
}

static int add_path(struct cairn_survey *s, const char *store_path, const char *hash,
		    bool by_hash, size_t *index, struct cairn_error *err);

int cairn_survey_add(struct cairn_survey *s, const char *store_path, size_t *index,
		     struct cairn_error *err)
{
	struct cairn_store_path sp;
	int rc = cairn_store_path_parse(store_path, strlen(store_path), NULL, &sp, err);
	if (rc)
		return rc;
	return add_path(s, store_path, sp.hash, false, index, err);
}

int cairn_survey_add_hash(struct cairn_survey *s, const char *hash, size_t *index,
			  struct cairn_error *err)
{
	if (strlen(hash) != CAIRN_STORE_HASH_LEN ||
	    !cairn_store_hash_valid(hash, CAIRN_STORE_HASH_LEN))
		return cairn_error_set(err, CAIRN_EFORMAT, "survey: '%.64s' is not a store path hash",
				       hash);
	return add_path(s, hash, hash, true, index, err);
}

static int add_path(struct cairn_survey *s, const char *store_path, const char *hash,
		    bool by_hash, size_t *index, struct cairn_error *err)
{
	uintptr_t known = (uintptr_t)map_get(&s->by_hash, hash);
	if (known) {
		if (index)
			*index = known - 1;
		return 0;
	}
	if (s->n_paths >= CAIRN_SURVEY_MAX_PATHS)
		return cairn_error_set(err, CAIRN_ELIMIT, "survey: more than %u store paths",
				       CAIRN_SURVEY_MAX_PATHS);
	if (s->n_paths == s->cap_paths) {
		size_t cap = s->cap_paths ? s->cap_paths * 2 : 64;
		struct path_ent *p = realloc(s->paths, cap * sizeof(*p));
		if (!p)
			return cairn_error_set(err, CAIRN_ENOMEM, "survey: out of memory");
		s->paths = p;
		s->cap_paths = cap;
	}
	char *copy = strdup(store_path);
	if (!copy || map_put(&s->by_hash, hash, (void *)(uintptr_t)(s->n_paths + 1), NULL) < 0) {
		free(copy);
		return cairn_error_set(err, CAIRN_ENOMEM, "survey: out of memory");
	}
	struct path_ent *e = &s->paths[s->n_paths];
	e->path = copy;
	memcpy(e->hash, hash, CAIRN_STORE_HASH_LEN);
	e->hash[CAIRN_STORE_HASH_LEN] = '\0';
	e->by_hash = by_hash;
	if (index)
		*index = s->n_paths;
	s->n_paths++;
	return 1;
}

size_t cairn_survey_count(const struct cairn_survey *s)
{
	return s->n_paths;
}

const char *cairn_survey_path(const struct cairn_survey *s, size_t index)
{
	return index < s->n_paths ? s->paths[index].path : NULL;
}

static void stop(struct cairn_survey *s, int rc, const struct cairn_error *e)
{
	if (s->stop_rc)
		return;
	s->stop_rc = rc < 0 ? rc : CAIRN_ECANCELED;
	if (e && e->code)
		s->stop_err = *e;
	else
		cairn_error_set(&s->stop_err, s->stop_rc, "survey: stopped by the caller");
}

/* Hand one result to the caller; frees a narinfo the caller did not take. */
void survey_deliver(struct cairn_survey *s, struct cairn_survey_result *r)
{
	s->stats.results++;
	if (!s->stop_rc) {
		int rc = s->fn(s->ctx, r);
		if (rc)
			stop(s, rc, NULL);
	}
	cairn_narinfo_free(r->narinfo);
	r->narinfo = NULL;
}

void survey_result_init(struct cairn_survey_result *r, const struct cairn_survey *s, size_t path,
			size_t server)
{
	memset(r, 0, sizeof(*r));
	r->max_age = -1;
	r->path_index = path;
	r->server_index = server;
	r->store_path = s->paths[path].path;
	cairn_error_init(&r->err);
}

/* Is StorePath sp the path asked for (by its hash part alone: any name,
 * any store directory, as long as it is a store path)? */
static bool store_path_matches(const struct path_ent *p, const char *sp)
{
	if (!p->by_hash)
		return strcmp(sp, p->path) == 0;
	const char *base = strrchr(sp, '/');
	struct cairn_store_path parsed;
	return base && !cairn_store_path_parse_base(base + 1, strlen(base + 1), &parsed, NULL) &&
	       !memcmp(parsed.hash, p->hash, CAIRN_STORE_HASH_LEN);
}

/*
 * Parse a body into r: PRESENT when it is a narinfo for the path asked
 * for, else INVALID.  Returns the outcome.
 */
enum cairn_survey_outcome
survey_classify(struct cairn_survey *s, struct cairn_survey_result *r, const char *text, size_t len)
{
	const char *url = cairn_http_server_url(s->servers[r->server_index]);
	struct cairn_error perr;
	cairn_error_init(&perr);
	struct cairn_narinfo *ni = NULL;
	r->text = text;
	r->text_len = len;
	if (cairn_narinfo_parse(text, len, &ni, &perr)) {
		r->outcome = CAIRN_SURVEY_INVALID;
		cairn_error_set(&r->err, perr.code, "%s: %s.narinfo: %s", url,
				s->paths[r->path_index].hash, cairn_error_msg(&perr));
		return r->outcome;
	}
	if (!store_path_matches(&s->paths[r->path_index], ni->store_path)) {
		r->outcome = CAIRN_SURVEY_INVALID;
		cairn_error_set(&r->err, CAIRN_EFORMAT,
				"%s: %s.narinfo: StorePath is '%.300s', not the path asked for",
				url, s->paths[r->path_index].hash, ni->store_path);
		cairn_narinfo_free(ni);
		return r->outcome;
	}
	r->outcome = CAIRN_SURVEY_PRESENT;
	r->narinfo = ni;
	return r->outcome;
}

void survey_req_free(struct survey_req *q)
{
	free(q->batch);
	cairn_buf_release(&q->body);
	free(q);
}

static int on_headers(void *ctx, const struct cairn_http_response *resp)
{
	struct survey_req *q = ctx;
	q->max_age = resp->max_age;
	q->no_store = resp->no_store != 0;
	return 0;
}

static int on_data(void *ctx, const void *data, size_t len)
{
	struct survey_req *q = ctx;
	return cairn_buf_append(&q->body, data, len) ? CAIRN_ELIMIT : 0;
}

void survey_pump(struct cairn_survey *s);

/* Cache writes go into one transaction until the next flush. */
static bool cache_batch(struct cairn_survey *s)
{
	if (!s->cfg.cache)
		return false;
	if (!s->batch_open && cairn_nicache_begin(s->cfg.cache, NULL) == 0)
		s->batch_open = true;
	return s->batch_open;
}

void cairn_survey_flush(struct cairn_survey *s)
{
	if (!s->batch_open)
		return;
	/* A cache that cannot be written only costs a later run time. */
	if (cairn_nicache_commit(s->cfg.cache, NULL))
		cairn_nicache_rollback(s->cfg.cache);
	s->batch_open = false;
}

/* A server that went down is remembered, so the next run does not wait on it. */
void survey_note_down(struct cairn_survey *s, size_t server)
{
	const char *down = cairn_http_server_down(s->servers[server]);
	if (!down || s->st[server].noted_down)
		return;
	s->st[server].noted_down = true;
	if (cache_batch(s))
		cairn_nicache_put_down(s->cfg.cache, cairn_http_server_url(s->servers[server]), down,
				       s->cfg.now, NULL);
}

void survey_cache_put(struct cairn_survey *s, size_t path, size_t server, int64_t max_age,
		      bool no_store, const struct cairn_survey_result *r)
{
	struct cairn_nicache *c = s->cfg.cache;
	if (!c || no_store || !cache_batch(s))
		return;
	const char *url = cairn_http_server_url(s->servers[server]);
	const char *hash = s->paths[path].hash;
	struct cairn_error e;
	cairn_error_init(&e);
	int rc = 0;
	if (r->outcome == CAIRN_SURVEY_PRESENT)
		rc = cairn_nicache_put_present(c, url, hash, r->text, r->text_len, s->cfg.now,
					       max_age, &e);
	else if (r->outcome == CAIRN_SURVEY_ABSENT)
		rc = cairn_nicache_put_absent(c, url, hash, s->cfg.now, max_age, &e);
	if (rc)
		stop(s, rc, &e);
}

int survey_send(struct cairn_survey *s, struct survey_req *q, struct cairn_error *err);
static void info_done(struct survey_req *q, const struct cairn_http_result *res);

/* A narinfo request is done (q->outcome...): its result to the caller. */
static void finish_req(struct cairn_survey *s, struct survey_req *q)
{
	struct cairn_survey_result r;
	survey_result_init(&r, s, q->path, q->server);
	r.status = q->status;
	r.max_age = q->max_age;
	r.no_store = q->no_store;
	switch (q->outcome) {
	case CAIRN_HTTP_OK:
		survey_classify(s, &r, q->body.data ? q->body.data : "", q->body.len);
		break;
	case CAIRN_HTTP_STATUS:
		if (q->status == 404 || q->status == 410 || q->status == 403) {
			r.outcome = CAIRN_SURVEY_ABSENT;
			cairn_error_set(&r.err, CAIRN_ENOENT, "%s", cairn_error_msg(&q->err));
		} else if (q->status == 504 && s->cfg.only_if_cached) {
			/* RFC 9111: a cache that does not hold it */
			r.outcome = CAIRN_SURVEY_ABSENT;
			cairn_error_set(&r.err, CAIRN_ENOENT, "not held (504 to only-if-cached)");
		} else {
			r.outcome = CAIRN_SURVEY_UNKNOWN;
			r.err = q->err;
		}
		break;
	case CAIRN_HTTP_TOO_LARGE:
	case CAIRN_HTTP_ABORTED:
		r.outcome = CAIRN_SURVEY_INVALID;
		r.err = q->err;
		break;
	default:
		r.outcome = CAIRN_SURVEY_UNKNOWN;
		r.err = q->err;
		break;
	}
	survey_cache_put(s, q->path, q->server, q->max_age, q->no_store, &r);
	if (r.outcome == CAIRN_SURVEY_UNKNOWN)
		survey_note_down(s, q->server);
	survey_deliver(s, &r);
	survey_req_free(q);
}

static void on_done(void *ctx, const struct cairn_http_result *res)
{
	struct survey_req *q = ctx;
	struct cairn_survey *s = q->s;
	out_del(s, q);
	if (q->info) {
		info_done(q, res);
		return;
	}
	s->inflight--;
	s->stats.requests++;
	if (res->outcome != CAIRN_HTTP_OK && cairn_http_advice(res) == CAIRN_HTTP_RETRY_RANGE &&
	    !(s->cfg.only_if_cached && res->status == 504) && q->retries < s->cfg.max_retries &&
	    !s->stop_rc) {
		struct cairn_error e;
		cairn_error_init(&e);
		q->retries++;
		cairn_buf_reset(&q->body);
		q->max_age = -1;
		q->no_store = false;
		if (survey_send(s, q, &e) == 0) {
			survey_out_add(s, q);
			s->inflight++;
			return;
		}
	}
	if (q->n_batch) {
		survey_batch_done(q, res);
		survey_pump(s);
		return;
	}
	q->outcome = res->outcome;
	q->status = res->status;
	q->err = res->err;
	struct server_state *st = &s->st[q->server];
	if (st->info_pending && s->cfg.with_info) {
		/* What its nix-cache-info says (its Priority above all) comes
		 * with its answers: they wait for it, alongside, never the
		 * other way round. */
		q->held_next = NULL;
		if (st->held_tail)
			st->held_tail->held_next = q;
		else
			st->held = q;
		st->held_tail = q;
		return;
	}
	finish_req(s, q);
	survey_pump(s);
}

/* Answer a pair from the cache when it has a fresh entry; 1 when done. */
static int try_cache(struct cairn_survey *s, size_t path, size_t server)
{
	struct cairn_nicache *c = s->cfg.cache;
	if (!c)
		return 0;
	const char *url = cairn_http_server_url(s->servers[server]);
	char *text = NULL;
	size_t len = 0;
	struct cairn_error e;
	cairn_error_init(&e);
	int st = cairn_nicache_lookup(c, url, s->paths[path].hash, s->cfg.now, &text, &len, &e);
	if (st < 0) {
		stop(s, st, &e);
		return 1;
	}
	if (st == CAIRN_NICACHE_UNKNOWN)
		return 0;
	struct cairn_survey_result r;
	survey_result_init(&r, s, path, server);
	r.from_cache = true;
	if (st == CAIRN_NICACHE_PRESENT) {
		survey_classify(s, &r, text, len);
	} else {
		r.outcome = CAIRN_SURVEY_ABSENT;
		cairn_error_set(&r.err, CAIRN_ENOENT, "%s: %s.narinfo: absent (cached)", url,
				s->paths[path].hash);
	}
	s->stats.cache_hits++;
	survey_deliver(s, &r);
	free(text);
	return 1;
}

static void deliver_unknown(struct cairn_survey *s, size_t path, size_t server,
			    const struct cairn_error *why)
{
	struct cairn_survey_result r;
	survey_result_init(&r, s, path, server);
	r.outcome = CAIRN_SURVEY_UNKNOWN;
	r.err = *why;
	survey_deliver(s, &r);
}

int survey_send(struct cairn_survey *s, struct survey_req *q, struct cairn_error *err)
{
	char url[CAIRN_STORE_HASH_LEN + sizeof(".narinfo")];
	if (q->n_batch) {
		struct cairn_buf u = CAIRN_BUF_INIT(CAIRN_HTTP_URL_MAX);
		int rc = survey_batch_url(s, q, &u);
		struct cairn_http_request rq = {
		    .method = CAIRN_HTTP_GET,
		    .server = s->servers[q->server],
		    .url = u.data,
		    .max_body = CAIRN_NARINFOS_RESPONSE_MAX,
		    .only_if_cached = s->cfg.only_if_cached,
		    .on_headers = on_headers,
		    .on_data = on_data,
		    .on_done = on_done,
		    .ctx = q,
		};
		if (rc == 0)
			rc = cairn_http_add(s->h, &rq, err);
		else
			cairn_error_set(err, rc, "survey: batch URL too long");
		cairn_buf_release(&u);
		return rc;
	}
	if (q->info) {
		snprintf(url, sizeof(url), "nix-cache-info");
	} else {
		memcpy(url, s->paths[q->path].hash, CAIRN_STORE_HASH_LEN);
		memcpy(url + CAIRN_STORE_HASH_LEN, ".narinfo", sizeof(".narinfo"));
	}
	struct cairn_http_request rq = {
	    .method = CAIRN_HTTP_GET,
	    .server = s->servers[q->server],
	    .url = url,
	    .max_body = q->info ? CAIRN_HTTP_CACHE_INFO_MAX : CAIRN_NARINFO_MAX,
	    .only_if_cached = s->cfg.only_if_cached && !q->info,
	    .on_headers = on_headers,
	    .on_data = on_data,
	    .on_done = on_done,
	    .ctx = q,
	};
	return cairn_http_add(s->h, &rq, err);
}

/* ---- nix-cache-info ------------------------------------------------------ */

static void apply_info(struct cairn_survey *s, size_t server, const char *text, size_t len)
{
	struct cairn_http_server *srv = s->servers[server];
	struct cairn_http_cache_info ci;
	if (!s->cfg.with_info) {
		/* asked for batches alone: nothing else changes */
		struct cairn_http_cache_info now = *cairn_http_server_info(srv);
		if (cairn_http_cache_info_parse(text, len, &ci, NULL) == 0) {
			now.narinfos = ci.narinfos;
			cairn_http_server_set_info(srv, &now);
		}
		return;
	}
	if (cairn_http_cache_info_parse(text, len, &ci, NULL)) {
		cairn_http_server_mark_down(srv, "its nix-cache-info is malformed");
		return;
	}
	if (s->cfg.store_dir && ci.store_dir[0] && strcmp(ci.store_dir, s->cfg.store_dir)) {
		struct cairn_buf why = CAIRN_BUF_INIT(4096);
		cairn_buf_printf(&why, "it serves %s, not %s", ci.store_dir, s->cfg.store_dir);
		cairn_http_server_mark_down(srv, why.data ? why.data : "wrong store directory");
		cairn_buf_release(&why);
		return;
	}
	cairn_http_server_set_info(srv, &ci);
}

static void info_done(struct survey_req *q, const struct cairn_http_result *res)
{
	struct cairn_survey *s = q->s;
	struct cairn_http_server *srv = s->servers[q->server];
	s->infos_inflight--;
	if (res->outcome == CAIRN_HTTP_OK) {
		apply_info(s, q->server, q->body.data ? q->body.data : "", q->body.len);
		if (!cairn_http_server_down(srv) && cache_batch(s))
			cairn_nicache_put_info(s->cfg.cache, cairn_http_server_url(srv),
					       q->body.data ? q->body.data : "", q->body.len,
					       s->cfg.now, -1, NULL);
	} else if (res->outcome == CAIRN_HTTP_STATUS && res->status >= 400 && res->status < 500) {
		/* No nix-cache-info (a plain directory of narinfos): defaults. */
	} else if (s->cfg.with_info && !cairn_http_server_down(srv)) {
		cairn_http_server_mark_down(srv, cairn_error_msg(&res->err));
	}
	survey_note_down(s, q->server);
	struct server_state *st = &s->st[q->server];
	st->info_pending = false;
	survey_req_free(q);
	while (st->held) {
		struct survey_req *h = st->held;
		st->held = h->held_next;
		if (!st->held)
			st->held_tail = NULL;
		finish_req(s, h);
	}
	survey_pump(s);
}

/* Once per survey: what the cache remembers of each server, and its
 * nix-cache-info. */
static void start_servers(struct cairn_survey *s)
{
	for (size_t i = 0; i < s->n_servers; i++) {
		struct cairn_http_server *srv = s->servers[i];
		const char *url = cairn_http_server_url(srv);
		if (s->cfg.cache && !cairn_http_server_down(srv)) {
			char *reason = NULL;
			if (cairn_nicache_is_down(s->cfg.cache, url, s->cfg.now, &reason, NULL) == 1) {
				char why[CAIRN_NICACHE_REASON_MAX + 64];
				snprintf(why, sizeof(why), "%s (remembered)", reason ? reason : "down");
				cairn_http_server_mark_down(srv, why);
				s->st[i].noted_down = true;
			}
			free(reason);
		}
		if (!(s->cfg.with_info || s->cfg.batches) || cairn_http_server_down(srv) ||
		    (s->cfg.info_known && !s->cfg.with_info))
			continue;
		if (s->cfg.cache) {
			char *text = NULL;
			size_t len = 0;
			if (cairn_nicache_get_info(s->cfg.cache, url, s->cfg.now, &text, &len, NULL) ==
			    1) {
				apply_info(s, i, text, len);
				free(text);
				continue;
			}
		}
		struct survey_req *q = calloc(1, sizeof(*q));
		if (!q)
			continue; /* defaults, then */
		q->s = s;
		q->server = i;
		q->info = true;
		q->max_age = -1;
		cairn_buf_init(&q->body, CAIRN_HTTP_CACHE_INFO_MAX);
		struct cairn_error e;
		cairn_error_init(&e);
		if (survey_send(s, q, &e)) {
			survey_req_free(q);
			continue;
		}
		survey_out_add(s, q);
		s->infos_inflight++;
		s->st[i].info_pending = true;
	}
}

static void issue(struct cairn_survey *s, size_t path, size_t server)
{
	struct cairn_http_server *srv = s->servers[server];
	struct cairn_error e;
	cairn_error_init(&e);
	/* A fresh cached answer holds even when the server is down now. */
	if (try_cache(s, path, server) || survey_try_stash(s, path, server))
		return;
	const char *down = cairn_http_server_down(srv);
	if (down) {
		cairn_error_set(&e, CAIRN_ENET, "%s: server is down: %s",
				cairn_http_server_url(srv), down);
		survey_note_down(s, server);
		deliver_unknown(s, path, server, &e);
		return;
	}
	/* While its nix-cache-info is out, the first pair goes at once (a
	 * query of one path waits for nothing) and the rest wait for it, to
	 * go in batches if it takes them; the narinfo cache remembers what it
	 * said for the next run.  Not for a closure (fetch): it decides on the
	 * first acceptable answer in Priority order, and holding one server's
	 * pairs back would hand its items to the others. */
	struct server_state *st = &s->st[server];
	bool wait = st->info_pending && (!s->cfg.closure || s->cfg.closure_waits) &&
		    st->early++ >= SURVEY_EARLY_PAIRS;
	/* and behind pairs already queued for it: in order, and the queue
	 * is what keeps its requests under max_inflight */
	if ((wait || survey_batch_ok(s, server) || st->pend_head < st->n_pend) &&
	    survey_batch_queue(s, path, server) == 0)
		return;
	survey_issue_single(s, path, server);
}

void survey_issue_single(struct cairn_survey *s, size_t path, size_t server)
{
	struct cairn_error e;
	cairn_error_init(&e);
	struct survey_req *q = calloc(1, sizeof(*q));
	if (!q) {
		cairn_error_set(&e, CAIRN_ENOMEM, "survey: out of memory");
		stop(s, CAIRN_ENOMEM, &e);
		return;
	}
	q->s = s;
	q->path = path;
	q->server = server;
	q->max_age = -1;
	cairn_buf_init(&q->body, CAIRN_NARINFO_MAX);
	if (survey_send(s, q, &e)) {
		/* Refused at once: the server went down meanwhile, or a URL
		 * the client will not take.  Either way no answer. */
		survey_req_free(q);
		deliver_unknown(s, path, server, &e);
		return;
	}
	survey_out_add(s, q);
	s->inflight++;
}

void survey_pump(struct cairn_survey *s)
{
	size_t ahead = s->cfg.max_inflight * SURVEY_AHEAD_PER_REQUEST;
	while (!s->stop_rc && s->inflight < s->cfg.max_inflight && s->n_pend < ahead &&
	       s->next_path < s->n_paths) {
		size_t path = s->next_path, server = s->next_server;
		if (++s->next_server == s->n_servers) {
			s->next_server = 0;
			s->next_path++;
		}
		issue(s, path, server);
	}
	survey_batch_flush(s);
}

int cairn_survey_start(struct cairn_survey *s, struct cairn_error *err)
{
	(void)err;
	if (!s->started) {
		s->started = true;
		start_servers(s);
	}
	survey_pump(s);
	return s->stop_rc;
}

size_t cairn_survey_pending(const struct cairn_survey *s)
{
	size_t queued = 0;
	if (s->next_path < s->n_paths)
		queued = (s->n_paths - s->next_path) * s->n_servers - s->next_server;
	return s->inflight + s->infos_inflight + queued + s->n_pend;
}

int cairn_survey_failed(const struct cairn_survey *s, struct cairn_error *err)
{
	if (s->stop_rc)
		cairn_error_set(err, s->stop_rc, "%s", cairn_error_msg(&s->stop_err));
	return s->stop_rc;
}

int cairn_survey_run(struct cairn_survey *s, struct cairn_error *err)
{
	double t0 = now_seconds();
	int rc = cairn_survey_start(s, err);
	while (!s->stop_rc && (s->inflight > 0 || s->infos_inflight > 0 || s->n_pend > 0 ||
			       s->next_path < s->n_paths)) {
		rc = cairn_http_step(s->h, 1000, err);
		if (rc < 0)
			goto out;
		survey_pump(s);
	}
	rc = 0;
	if (s->stop_rc) {
		rc = s->stop_rc;
		cairn_error_set(err, rc, "%s", cairn_error_msg(&s->stop_err));
	}
out:
	if (s->batch_open) {
		if (rc == 0) {
			int crc = cairn_nicache_commit(s->cfg.cache, err);
			if (crc) {
				cairn_nicache_rollback(s->cfg.cache);
				rc = crc;
			}
		} else {
			cairn_nicache_rollback(s->cfg.cache);
		}
		s->batch_open = false;
	}
	s->stats.seconds += now_seconds() - t0;
	return rc;
}

void cairn_survey_stats(const struct cairn_survey *s, struct cairn_survey_stats *out)
{
	*out = s->stats;
}
