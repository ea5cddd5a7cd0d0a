/*
 * edge-narinfo.c - the mirror's narinfos: held in memory (and the cache's
 * index), refused or accepted as the trusted keys say, and asked of the
 * upstreams on a miss through the one query engine (survey.h) and the one
 * trust decision (trust.h, edge-trust.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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
#include "cairn/narinfo.h"
#include "cairn/narinfos.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "edge-trust.h"
#include "edge-int.h"
#include "cairn/banned.h"

static const char *const refusal_kind[REFUSED_KINDS] = {
    "for their signatures", "for naming another store path", "as unreadable",
    "for too few agreeing signatures"};

/* --- narinfo bookkeeping ------------------------------------------------------ */

void edge_ni_ent_free(struct ni_ent *n)
{
	if (n) {
		free(n->text);
		free(n);
	}
}

/* Under e->mu: keep a narinfo (text NULL: a 404) until expires. */
static void ni_put_locked(struct cairn_edge *e, const char *hash, const char *text, size_t len,
			  int64_t expires)
{
	struct ni_ent *n = calloc(1, sizeof(*n));
	void *old;
	if (!n)
		return;
	if (text) {
		if (!(n->text = malloc(len ? len : 1))) {
			free(n);
			return;
		}
		memcpy(n->text, text, len);
		n->len = len;
	}
	n->expires = expires;
	if (map_put(&e->narinfos, hash, n, &old) < 0) {
		edge_ni_ent_free(n);
		return;
	}
	edge_ni_ent_free(old);
}

void cairn_edge_forget_narinfo(struct cairn_edge *e, const char *hashpart)
{
	struct cairn_error err;
	cairn_error_init(&err);
	if (!cairn_store_hash_valid(hashpart, strlen(hashpart)))
		return;
	pthread_mutex_lock(&e->mu);
	struct ni_ent *n = map_take(&e->narinfos, hashpart);
	pthread_mutex_unlock(&e->mu);
	edge_ni_ent_free(n);
	if (edge_store_narinfo_delete(e->store, hashpart, &err) < 0)
		edge_say(e, CAIRN_EDGE_LOG_WARN, "%s", cairn_error_msg(&err));
}

static int64_t ttl_for(int64_t ours, int64_t max_age)
{
	return max_age >= 0 && max_age < ours ? max_age : ours;
}

/*
 * Is this narinfo acceptable for hash: parses, names the store path it was
 * asked for, and (with a keyring) carries a trusted signature.  Returns the
 * parsed narinfo or NULL; then *why is the kind of reason and why_text
 * (printable) the reason.
 */
static struct cairn_narinfo *narinfo_accept(struct cairn_edge *e, const char *hash,
					    const char *text, size_t len, enum refusal *why,
					    char why_text[EDGE_WHY_MAX])
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cairn_narinfo_parse(text, len, &ni, &err) < 0) {
		*why = REFUSED_UNREADABLE;
		edge_tell(why_text, EDGE_WHY_MAX, cairn_error_msg(&err));
		return NULL;
	}
	const char *base = strrchr(ni->store_path, '/');
	base = base ? base + 1 : ni->store_path;
	if (strncmp(base, hash, CAIRN_STORE_HASH_LEN) != 0) {
		char sp[EDGE_WHY_MAX - 64];
		*why = REFUSED_STORE_PATH;
		snprintf(why_text, EDGE_WHY_MAX, "its StorePath is '%s'",
			 edge_tell(sp, sizeof(sp), ni->store_path));
		cairn_narinfo_free(ni);
		return NULL;
	}
	if (e->cfg.trusted) {
		/* A narinfo it served carries the K signatures it was accepted
		 * with, so one held is checked alone against the same rules. */
		struct edge_answer a = {.server = "the cache index",
					.answered = true,
					.state = CAIRN_TRUST_PRESENT,
					.ni = ni};
		struct cairn_trust_answer ta;
		struct cairn_trust_verdict *v = malloc(sizeof(*v));
		if (!v || edge_trust_decide(&a, 1, hash, e->cfg.trusted, e->cfg.require_sigs, &ta,
					    v) != 0) {
			*why = REFUSED_SIGNATURE;
			edge_tell(why_text, EDGE_WHY_MAX,
				  !v	      ? "out of memory"
				  : ta.why[0] ? ta.why
					      : v->reason);
			free(v);
			cairn_narinfo_free(ni);
			return NULL;
		}
		free(v);
	}
	return ni;
}

/*
 * A narinfo of hash refused (why: printable) when it came from `from`:
 * said at once, or counted into the line that tells the refusals of its
 * kind in the next interval (refusals_flush).  An upstream can send as
 * many as it is asked for, so no more than a line per interval and kind.
 */
static void refused(struct cairn_edge *e, enum refusal kind, const char *hash, const char *from,
		    const char *why)
{
	char msg[EDGE_LOG_LINE_MAX];
	uint64_t before = 0;
	if (from)
		snprintf(msg, sizeof(msg), "%s from %s: %s", hash, from, why);
	else
		snprintf(msg, sizeof(msg), "%s: %s", hash, why);
	pthread_mutex_lock(&e->log_mu);
	int tell = edge_ratelimit_event(&e->refused[kind], edge_now_ms(), e->cfg.log_interval_ms,
					msg, &before);
	pthread_mutex_unlock(&e->log_mu);
	if (!tell)
		return;
	if (before)
		edge_say(e, CAIRN_EDGE_LOG_WARN,
			 "refused the narinfo of %s (and %llu more refused %s before it)", msg,
			 (unsigned long long)before, refusal_kind[kind]);
	else
		edge_say(e, CAIRN_EDGE_LOG_WARN, "refused the narinfo of %s", msg);
}

/* Upstream thread: tell the refusals counted but not told yet, once their
 * interval is over. */
void edge_refusals_flush(struct cairn_edge *e)
{
	for (int k = 0; k < REFUSED_KINDS; k++) {
		char last[EDGE_LOG_LINE_MAX];
		uint64_t n = 0;
		pthread_mutex_lock(&e->log_mu);
		int due =
		    edge_ratelimit_due(&e->refused[k], edge_now_ms(), e->cfg.log_interval_ms, &n);
		if (due)
			snprintf(last, sizeof(last), "%s", e->refused[k].last);
		pthread_mutex_unlock(&e->log_mu);
		if (due)
			edge_say(e, CAIRN_EDGE_LOG_WARN,
				 "refused %llu more narinfos %s; the last: %s",
				 (unsigned long long)n, refusal_kind[k], last);
	}
}

int edge_load_narinfo_cb(void *ctx, const char *hash, const char *text, size_t len, int64_t fetched)
{
	struct cairn_edge *e = ctx;
	enum refusal why = REFUSED_UNREADABLE;
	char why_text[EDGE_WHY_MAX];
	if (strlen(hash) != CAIRN_STORE_HASH_LEN ||
	    !cairn_store_hash_valid(hash, CAIRN_STORE_HASH_LEN))
		return 0;
	struct cairn_narinfo *ni = narinfo_accept(e, hash, text, len, &why, why_text);
	if (!ni) {
		/* e.g. the trusted keys changed since */
		refused(e, why, hash, "the cache index", why_text);
		return 0;
	}
	edge_claims_item_set_locked(e, hash, ni, 1, NULL);
	ni_put_locked(e, hash, text, len, fetched + e->cfg.positive_ttl);
	cairn_narinfo_free(ni);
	return 0;
}

/* --- narinfo misses: every upstream asked through the survey ----------------- */

/*
 * A narinfo miss asks the upstreams through the one narinfo query engine
 * (survey.h), all at once on the upstream thread's HTTP client, and the
 * answers go to the one trust decision (trust.h, edge-trust.h).  With
 * K = 1 the preferred upstream's acceptable answer is served as soon as
 * every upstream before it has answered; with K > 1 every answer is
 * waited for, as a disagreement must be seen.
 */

/*
 * The misses that reach the upstream thread in one round share one survey
 * (a group), so that the survey's batching (survey-batch.c) asks an
 * upstream that takes batches about all of them in one request; one
 * survey per miss would ask one hash per request.  A group of closure
 * misses also asks for closures, and adds the References of every answer
 * as misses of its own, answered from what the closure response brought:
 * a deep closure costs one round trip, not one per level.  Each miss keeps
 * its own answers and its own trust decision, as when it was alone.
 */
struct ni_group {
	struct cairn_edge *e;
	struct cairn_survey *sv;
	size_t sv_ups[CAIRN_EDGE_MAX_UPSTREAMS]; /* server index -> upstream */
	size_t n_sv;
	struct fetch **f; /* by path index; NULL once over */
	struct map asked; /* hash part -> 1: in the survey (it takes a hash once) */
	size_t n_f, cap_f, live;
	bool closure, dirty;
	struct ni_group *next; /* e->ni_groups */
};

/* a closure group adds References up to this many misses */
#define GROUP_MAX CAIRN_NARINFOS_COUNT_MAX

/* What an INVALID or UNKNOWN result says, without the "<url>: <hash>.narinfo: "
 * the survey puts before it (the log line names both already). */
static const char *result_why(const struct fetch *f, const struct cairn_survey_result *r)
{
	const char *m = cairn_error_msg(&r->err);
	const char *url = cairn_http_server_url(f->e->ups[f->sv_ups[r->server_index]].srv);
	size_t n = strlen(url);
	if (!strncmp(m, url, n) && !strncmp(m + n, ": ", 2))
		m += n + 2;
	if (!strncmp(m, f->hash, CAIRN_STORE_HASH_LEN) &&
	    !strncmp(m + CAIRN_STORE_HASH_LEN, ".narinfo: ", 10))
		m += CAIRN_STORE_HASH_LEN + 10;
	return m;
}

/* Upstream thread, from inside the survey: one upstream's answer. */
static void group_expand(struct ni_group *g, const struct cairn_narinfo *ni);

static int ni_result(void *ctx, struct cairn_survey_result *r)
{
	struct ni_group *g = ctx;
	if (r->path_index >= g->n_f || !g->f[r->path_index])
		return 0; /* its fetch is over */
	struct fetch *f = g->f[r->path_index];
	struct cairn_edge *e = f->e;
	size_t ui = f->sv_ups[r->server_index];
	struct upstream *u = &e->ups[ui];
	struct edge_answer *a = &f->ans[ui];
	char why[EDGE_WHY_MAX];
	if (a->answered)
		return 0;
	a->max_age = r->max_age;
	a->no_store = r->no_store;
	switch (r->outcome) {
	case CAIRN_SURVEY_PRESENT:
		a->state = CAIRN_TRUST_PRESENT;
		a->ni = r->narinfo;
		r->narinfo = NULL;
		if (f->closure && a->ni)
			group_expand(g, a->ni);
		if ((a->text = malloc(r->text_len ? r->text_len : 1)) != NULL) {
			memcpy(a->text, r->text, r->text_len);
			a->len = r->text_len;
		} else {
			a->state = CAIRN_TRUST_ERROR;
			a->error = strdup("out of memory");
		}
		break;
	case CAIRN_SURVEY_ABSENT:
		a->state = CAIRN_TRUST_ABSENT;
		f->n404++;
		break;
	case CAIRN_SURVEY_INVALID:
		a->state = CAIRN_TRUST_INVALID;
		edge_tell(why, sizeof(why), result_why(f, r));
		a->error = strdup(why);
		f->n_err++;
		edge_count(e->c.up_errors, 1);
		refused(e, strstr(why, "StorePath is") ? REFUSED_STORE_PATH : REFUSED_UNREADABLE,
			f->hash, u->name, why);
		break;
	default:
		a->state = CAIRN_TRUST_ERROR;
		edge_tell(why, sizeof(why), result_why(f, r));
		a->error = strdup(why);
		f->n_err++;
		edge_count(e->c.up_errors, 1);
		if (cairn_http_server_down(u->srv))
			edge_set_up(e, u, 0, why);
		break;
	}
	if (r->outcome != CAIRN_SURVEY_UNKNOWN)
		edge_set_up(e, u, 1, NULL);
	a->answered = true;
	f->n_answered++;
	return 0;
}


static void group_free(struct ni_group *g)
{
	cairn_survey_free(g->sv);
	map_release(&g->asked);
	free(g->f);
	free(g);
}

/* Upstream thread: a group asking every upstream that is up (every one,
 * when none is). */
static struct ni_group *group_new(struct cairn_edge *e, bool closure)
{
	struct ni_group *g = calloc(1, sizeof(*g));
	struct cairn_http_server *servers[CAIRN_EDGE_MAX_UPSTREAMS];
	struct cairn_survey_config cfg;
	struct cairn_error err;
	int any_up = 0;
	cairn_error_init(&err);
	if (!g)
		return NULL;
	g->e = e;
	g->closure = closure;
	map_init(&g->asked, NULL);
	for (size_t i = 0; i < e->n_ups; i++)
		any_up |= e->ups[i].up;
	for (size_t i = 0; i < e->n_ups; i++) {
		if (!e->ups[i].up && any_up)
			continue; /* skipped while down; its probe brings it back */
		cairn_http_server_mark_up(e->ups[i].srv);
		g->sv_ups[g->n_sv] = i;
		servers[g->n_sv++] = e->ups[i].srv;
	}
	cairn_survey_config_init(&cfg);
	cfg.closure = closure;
	cfg.closure_waits = true; /* every answer is waited for anyway */
	cfg.info_known = g->n_sv > 0;
	for (size_t k = 0; k < g->n_sv; k++) {
		/* what the probe read: only this thread replaces u->info */
		const struct upstream *u = &e->ups[g->sv_ups[k]];
		struct cairn_http_cache_info ci;
		if (!u->info || cairn_http_cache_info_parse(u->info, u->info_len, &ci, NULL) < 0) {
			cfg.info_known = false; /* the survey asks, then */
			continue;
		}
		struct cairn_http_cache_info now = *cairn_http_server_info(u->srv);
		now.narinfos = ci.narinfos;
		cairn_http_server_set_info(u->srv, &now);
	}
	if (cairn_survey_new(&g->sv, e->http, servers, g->n_sv, &cfg, ni_result, g, &err) < 0) {
		map_release(&g->asked);
		free(g);
		return NULL;
	}
	return g;
}

/* Upstream thread: f asked in g; its answers from upstreams g skips say
 * why.  The caller holds a reference to f for the group. */
static int group_add(struct ni_group *g, struct fetch *f)
{
	struct cairn_edge *e = g->e;
	struct cairn_error err;
	size_t idx;
	cairn_error_init(&err);
	if (g->n_f == g->cap_f) {
		size_t nc = g->cap_f ? g->cap_f * 2 : 64;
		struct fetch **nf = realloc(g->f, nc * sizeof(*nf));
		if (!nf)
			return CAIRN_ENOMEM;
		g->f = nf;
		g->cap_f = nc;
	}
	if (map_get(&g->asked, f->hash) || map_put(&g->asked, f->hash, (void *)1, NULL) < 0 ||
	    cairn_survey_add_hash(g->sv, f->hash, &idx, &err) < 0 || idx != g->n_f)
		return CAIRN_ENOMEM;
	g->f[g->n_f++] = f;
	g->live++;
	g->dirty = true;
	f->grp = g;
	f->grp_idx = idx;
	f->sv = g->sv;
	memcpy(f->sv_ups, g->sv_ups, sizeof(f->sv_ups));
	for (size_t i = 0, k = 0; i < e->n_ups; i++) {
		struct edge_answer *a = &f->ans[i];
		a->server = e->ups[i].name;
		a->max_age = -1;
		if (k < g->n_sv && g->sv_ups[k] == i) {
			k++;
			continue;
		}
		char why[EDGE_WHY_MAX + 16];
		pthread_mutex_lock(&e->mu);
		snprintf(why, sizeof(why), "down: %s", e->ups[i].why_pub);
		pthread_mutex_unlock(&e->mu);
		a->state = CAIRN_TRUST_ERROR;
		a->error = strdup(why);
		a->answered = true;
		f->n_answered++;
	}
	f->sv_next = e->surveys;
	e->surveys = f;
	e->active++;
	return 0;
}

/* Upstream thread, from inside g's survey: the References of ni that are
 * neither known nor asked yet become misses of g, so that what the
 * closure response brought answers them without another request. */
static void group_expand(struct ni_group *g, const struct cairn_narinfo *ni)
{
	struct cairn_edge *e = g->e;
	int64_t now = edge_now_s();
	for (size_t i = 0; i < ni->n_refs && g->n_f < GROUP_MAX; i++) {
		const char *r = ni->refs[i];
		char hash[CAIRN_STORE_HASH_LEN + 1], key[CAIRN_STORE_HASH_LEN + 16];
		int joined;
		if (strlen(r) <= CAIRN_STORE_HASH_LEN || !cairn_store_hash_valid(r, CAIRN_STORE_HASH_LEN))
			continue;
		memcpy(hash, r, CAIRN_STORE_HASH_LEN);
		hash[CAIRN_STORE_HASH_LEN] = '\0';
		if (map_get(&g->asked, hash))
			continue; /* answered in this group already (a 404 not kept) */
		snprintf(key, sizeof(key), "%s.narinfo", hash);
		pthread_mutex_lock(&e->mu);
		struct ni_ent *n = map_get(&e->narinfos, hash);
		if ((n && now < n->expires) || map_get(&e->inflight, key)) {
			pthread_mutex_unlock(&e->mu);
			continue;
		}
		struct fetch *f = edge_fetch_get_locked(e, FK_NARINFO, key, &joined);
		if (f && !joined) {
			memcpy(f->hash, hash, sizeof(hash));
			f->closure = 1;
			/* its job in the queue has nothing to start, but must find
			 * it alive */
			f->expanded = 1;
			f->refs++;
		}
		pthread_mutex_unlock(&e->mu);
		if (f && joined)
			edge_fetch_unref(f); /* cannot be: it was not in flight */
		if (!f || joined)
			continue;
		/* the caller's reference is the group's */
		if (group_add(g, f) < 0) {
			f->grp = NULL;
			edge_fetch_finish(f, FS_FAIL, 0);
			edge_fetch_unref(f);
		}
	}
}

/* Upstream thread: f joins this round's group. */
void edge_ni_query_start(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	if (f->expanded) {
		/* added by a closure group already; this was its job's reference */
		edge_fetch_unref(f);
		return;
	}
	bool c = f->closure != 0;
	struct ni_group *g = e->ni_open[c];
	if (!g && (g = group_new(e, c)) != NULL) {
		e->ni_open[c] = g;
		g->next = e->ni_groups;
		e->ni_groups = g;
		e->active++; /* until its survey is over */
	}
	pthread_mutex_lock(&e->mu);
	f->refs++; /* the group's, until f is over */
	pthread_mutex_unlock(&e->mu);
	if (!g || group_add(g, f) < 0) {
		f->grp = NULL;
		edge_fetch_finish(f, FS_FAIL, 0);
		edge_fetch_unref(f);
	}
}

/* Upstream thread: issue what the groups were given since the last round,
 * and free the groups whose misses are all over. */
static void groups_step(struct cairn_edge *e)
{
	e->ni_open[0] = e->ni_open[1] = NULL;
	for (struct ni_group **pp = &e->ni_groups, *g; (g = *pp) != NULL;) {
		/* freed with no request in the client: their on_done would
		 * find it gone */
		if (g->live == 0 && cairn_survey_pending(g->sv) == 0) {
			*pp = g->next;
			group_free(g);
			e->active--;
			continue;
		}
		if (g->dirty) {
			g->dirty = false;
			cairn_survey_start(g->sv, NULL);
		}
		pp = &g->next;
	}
}

void edge_ni_queries_free(struct cairn_edge *e)
{
	while (e->surveys) {
		struct fetch *f = e->surveys;
		e->surveys = f->sv_next;
		f->sv = NULL;
		f->grp = NULL;
		edge_fetch_unref(f);
	}
	while (e->ni_groups) {
		struct ni_group *g = e->ni_groups;
		e->ni_groups = g->next;
		group_free(g);
	}
	e->ni_open[0] = e->ni_open[1] = NULL;
}

/* Upstream thread: serve text (accepted) as the narinfo of f's item. */
static void ni_serve(struct fetch *f, const char *text, size_t len, int64_t max_age, int no_store,
		     const struct cairn_narinfo *const *srcs)
{
	struct cairn_edge *e = f->e;
	struct cairn_narinfo *ni = NULL;
	if (cairn_narinfo_parse(text, len, &ni, NULL) < 0 ||
	    cairn_buf_append(&f->body, text, len)) {
		cairn_narinfo_free(ni);
		edge_fetch_finish(f, FS_FAIL, 0);
		return;
	}
	int64_t now = edge_now_s();
	int64_t ttl = no_store ? 0 : ttl_for(e->cfg.positive_ttl, max_age);
	pthread_mutex_lock(&e->mu);
	edge_claims_item_set_locked(e, f->hash, ni, 0, srcs);
	ni_put_locked(e, f->hash, f->body.data, f->body.len, now + ttl);
	pthread_mutex_unlock(&e->mu);
	if (ttl > 0)
		edge_store_narinfo_put(e->store, f->hash, f->body.data, f->body.len, now, NULL);
	cairn_narinfo_free(ni);
	edge_fetch_finish(f, FS_OK, 0);
}

/* Upstream thread: no narinfo to serve; what the client gets, what is
 * remembered and what the operator hears depend on why. */
static void ni_refuse(struct fetch *f, const struct cairn_trust_answer *ta,
		      const struct cairn_trust_verdict *v)
{
	struct cairn_edge *e = f->e;
	int status = v ? v->status : f->n404 ? CAIRN_ENOENT : CAIRN_ENET;
	if (status == CAIRN_ENOENT) {
		int64_t max_age = -1;
		int no_store = 0;
		for (size_t i = 0; i < e->n_ups; i++)
			if (f->ans[i].state == CAIRN_TRUST_ABSENT) {
				no_store |= f->ans[i].no_store;
				if (f->ans[i].max_age >= 0 &&
				    (max_age < 0 || f->ans[i].max_age < max_age))
					max_age = f->ans[i].max_age;
			}
		if (!f->n_err) {
			/* every upstream that answered said 404: remember for a short while */
			int64_t ttl = no_store ? 0 : ttl_for(e->cfg.negative_ttl, max_age);
			if (ttl > 0) {
				pthread_mutex_lock(&e->mu);
				edge_claims_item_set_locked(e, f->hash, NULL, 0, NULL);
				ni_put_locked(e, f->hash, NULL, 0, edge_now_s() + ttl);
				pthread_mutex_unlock(&e->mu);
			}
		}
		edge_fetch_finish(f, FS_FAIL, 1);
		return;
	}
	if (status == CAIRN_ENET || status == CAIRN_EFORMAT || status == CAIRN_ENOMEM ||
	    status == CAIRN_EINVAL) {
		/* nothing usable, or not decided: the upstreams are failing */
		edge_fetch_finish(f, FS_FAIL, f->n404 > 0);
		return;
	}
	edge_count(e->c.untrusted, 1);
	if (v->n_signers == 0) {
		/* no trusted key signed anything: each answer says why */
		for (size_t i = 0; i < e->n_ups; i++)
			if (ta[i].state == CAIRN_TRUST_PRESENT && ta[i].why[0]) {
				char why[EDGE_WHY_MAX];
				refused(e, REFUSED_SIGNATURE, f->hash, f->ans[i].server,
					edge_tell(why, sizeof(why), ta[i].why));
			}
	} else {
		/* keys signed, but too few or for different claims: one line
		 * names which keys signed what, and who did not answer */
		struct cairn_buf b = CAIRN_BUF_INIT(EDGE_LOG_LINE_MAX - 256);
		char line[EDGE_LOG_LINE_MAX - 128];
		cairn_buf_puts(&b, v->reason);
		for (size_t i = 0; i < e->n_ups; i++)
			if (ta[i].state != CAIRN_TRUST_PRESENT && ta[i].state != CAIRN_TRUST_ABSENT)
				cairn_buf_printf(&b, "; %s: %s", f->ans[i].server,
						 f->ans[i].error ? f->ans[i].error : "no answer");
			else if (ta[i].state == CAIRN_TRUST_ABSENT)
				cairn_buf_printf(&b, "; %s: does not have it", f->ans[i].server);
		refused(e, REFUSED_AGREEMENT, f->hash, NULL,
			edge_tell(line, sizeof(line), b.data ? b.data : v->reason));
		cairn_buf_release(&b);
	}
	edge_fetch_finish(f, FS_FAIL, 1);
}

/*
 * Upstream thread: decide about f's narinfo when the answers in allow it
 * (all of them with force).  Without a keyring nothing is checked: the
 * first upstream in order that has it is served, as it is.
 */
static void ni_try_decide(struct fetch *f, int force)
{
	struct cairn_edge *e = f->e;
	size_t n = e->n_ups;
	unsigned k = e->cfg.require_sigs ? e->cfg.require_sigs : 1;
	if (!e->cfg.trusted) {
		for (size_t i = 0; i < n; i++) {
			const struct edge_answer *a = &f->ans[i];
			if (!a->answered && !force)
				return;
			if (a->answered && a->state == CAIRN_TRUST_PRESENT) {
				const struct cairn_narinfo *srcs[CAIRN_EDGE_MAX_UPSTREAMS] = {0};
				srcs[i] = a->ni;
				f->decided = 1;
				ni_serve(f, a->text, a->len, a->max_age, a->no_store, srcs);
				return;
			}
		}
		f->decided = 1;
		ni_refuse(f, NULL, NULL);
		return;
	}
	struct cairn_trust_answer *ta = calloc(n, sizeof(*ta));
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	if (!ta || !v) {
		if (force) {
			f->decided = 1;
			edge_fetch_finish(f, FS_FAIL, 0);
		}
		goto out;
	}
	int rc = edge_trust_decide(f->ans, n, f->hash, e->cfg.trusted, k, ta, v);
	if (!force && !edge_trust_final(f->ans, n, k, v))
		goto out;
	f->decided = 1;
	if (rc) {
		ni_refuse(f, ta, v);
		goto out;
	}
	if (edge_trust_served(f->ans, ta, n, v, &text)) {
		edge_fetch_finish(f, FS_FAIL, 0);
		goto out;
	}
	/* what is served depends on every answer of the group: the shortest
	 * lifetime any of them was given */
	int64_t max_age = -1;
	int no_store = 0;
	const struct cairn_narinfo *srcs[CAIRN_EDGE_MAX_UPSTREAMS] = {0};
	for (size_t i = 0; i < n; i++)
		if (ta[i].group == v->chosen) {
			srcs[i] = f->ans[i].ni;
			no_store |= f->ans[i].no_store;
			if (f->ans[i].max_age >= 0 && (max_age < 0 || f->ans[i].max_age < max_age))
				max_age = f->ans[i].max_age;
		}
	ni_serve(f, text.data ? text.data : "", text.len, max_age, no_store, srcs);
out:
	cairn_buf_release(&text);
	free(ta);
	free(v);
}

/* Upstream thread, f's survey over after its narinfo was served: the
 * answers that came after the decision may name other files of the nar. */
static void ni_late_answers(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->n_ups; i++)
		if (f->ans[i].answered && f->ans[i].state == CAIRN_TRUST_PRESENT)
			edge_alts_late_locked(e, f->hash, i, f->ans[i].ni);
	pthread_mutex_unlock(&e->mu);
	edge_nar_alts_learnt(e, f->hash);
}

/* Upstream thread: decide what the new answers allow, and free the
 * surveys that are over. */
void edge_ni_queries_poll(struct cairn_edge *e)
{
	groups_step(e);
	struct fetch **pp = &e->surveys, *f;
	while ((f = *pp) != NULL) {
		if (!f->decided && f->n_answered != f->n_seen) {
			f->n_seen = f->n_answered;
			ni_try_decide(f, 0);
		}
		/* over when every upstream answered (the group's survey may
		 * still ask about others) */
		if (f->n_answered < e->n_ups && cairn_survey_pending(f->sv) > 0) {
			pp = &f->sv_next;
			continue;
		}
		*pp = f->sv_next;
		if (!f->decided)
			ni_try_decide(f, 1);
		else
			ni_late_answers(f); /* what is served now decides */
		f->grp->f[f->grp_idx] = NULL;
		f->grp->live--;
		f->grp = NULL;
		f->sv = NULL;
		e->active--;
		edge_fetch_unref(f);
	}
}

/* Expired 404s: without this, asking for random hashes would grow the map
 * without bound.  (Expired narinfos stay: they are served when every
 * upstream fails.) */
void edge_purge_negatives(struct cairn_edge *e)
{
	int64_t now = edge_now_s();
	pthread_mutex_lock(&e->mu);
	struct map_iter it;
	for (struct map_ent *x = map_iter_first(&it, &e->narinfos); x; x = map_iter_next(&it)) {
		struct ni_ent *n = x->val;
		if (!n->text && n->expires <= now) {
			map_take(&e->narinfos, x->key);
			edge_ni_ent_free(n);
		}
	}
	pthread_mutex_unlock(&e->mu);
}

/* Under e->mu: is an upstream up, or not known to be down yet? */
static int any_up_locked(const struct cairn_edge *e)
{
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].up_pub)
			return 1;
	return 0;
}

int edge_narinfo_lookup(struct cairn_edge *e, const char *hash, char **text, size_t *len,
			int64_t *max_age, int *stale_out, int nowait)
{
	return edge_narinfo_lookup_closure(e, hash, text, len, max_age, stale_out, nowait, 0);
}

static int lookup(struct cairn_edge *e, const char *hash, char **text, size_t *len,
		  int64_t *max_age, int *stale_out, int nowait, int closure)
{
	int64_t now = edge_now_s();
	char *stale = NULL;
	size_t stale_len = 0;
	int joined, rc;
	*stale_out = 0;
	pthread_mutex_lock(&e->mu);
	struct ni_ent *n = map_get(&e->narinfos, hash);
	if (n && now < n->expires) {
		edge_count(e->c.ni_hits, 1);
		*max_age = n->expires - now;
		if (!n->text) {
			pthread_mutex_unlock(&e->mu);
			return LOOKUP_ABSENT;
		}
		if (text) {
			if (!(*text = malloc(n->len))) {
				pthread_mutex_unlock(&e->mu);
				return LOOKUP_FAILED;
			}
			memcpy(*text, n->text, n->len);
			*len = n->len;
		}
		pthread_mutex_unlock(&e->mu);
		return LOOKUP_PRESENT;
	}
	if (nowait) {
		pthread_mutex_unlock(&e->mu);
		return LOOKUP_WOULD_WAIT;
	}
	if (n && n->text && (stale = malloc(n->len))) {
		memcpy(stale, n->text, n->len);
		stale_len = n->len;
	}
	if (stale && !any_up_locked(e)) {
		/* every upstream is down: no use waiting for them (each may take
		 * a connect timeout) before the stale answer; their probes tell
		 * when they are back */
		pthread_mutex_unlock(&e->mu);
		edge_count(e->c.stale, 1);
		*stale_out = 1;
		*max_age = 0;
		if (text) {
			*text = stale;
			*len = stale_len;
		} else {
			free(stale);
		}
		return LOOKUP_PRESENT;
	}
	char key[CAIRN_STORE_HASH_LEN + 16];
	snprintf(key, sizeof(key), "%s.narinfo", hash);
	struct fetch *f = edge_fetch_get_locked(e, FK_NARINFO, key, &joined);
	if (f && !joined) {
		memcpy(f->hash, hash, CAIRN_STORE_HASH_LEN + 1);
		f->closure = closure;
	} else if (f && f->primed) {
		f->primed = 0; /* the primer made it for this lookup: counted there */
		joined = -1;
	}
	pthread_mutex_unlock(&e->mu);
	if (joined >= 0)
		edge_count(joined ? e->c.coalesced : e->c.ni_misses, 1);
	if (!f) {
		free(stale);
		return LOOKUP_FAILED;
	}
	enum fstate st = edge_fetch_wait(f, FS_OK, e->cfg.wait_ms);
	if (st == FS_OK) {
		rc = LOOKUP_PRESENT;
		*max_age = ttl_for(e->cfg.positive_ttl, -1);
		if (text) {
			/* the body is not touched again once the fetch is OK */
			if ((*text = malloc(f->body.len ? f->body.len : 1))) {
				memcpy(*text, f->body.data, f->body.len);
				*len = f->body.len;
			} else {
				rc = LOOKUP_FAILED;
			}
		}
	} else if (st == FS_FAIL && f->not_found) {
		rc = LOOKUP_ABSENT;
		*max_age = e->cfg.negative_ttl;
	} else if (stale) {
		/* stale-if-error: every upstream is failing */
		edge_count(e->c.stale, 1);
		*stale_out = 1;
		*max_age = 0;
		rc = LOOKUP_PRESENT;
		if (text) {
			*text = stale;
			*len = stale_len;
			stale = NULL;
		}
	} else {
		rc = LOOKUP_FAILED;
	}
	free(stale);
	edge_fetch_unref(f);
	return rc;
}

size_t edge_narinfo_prime(struct cairn_edge *e, const char (*hashes)[CAIRN_STORE_HASH_LEN + 1],
			  size_t n, int closure, struct fetch **out)
{
	int64_t now = edge_now_s();
	size_t k = 0, misses = 0;
	/* one hold of the lock: the upstream thread takes the jobs queued
	 * under it in one round */
	pthread_mutex_lock(&e->mu);
	bool up = any_up_locked(e);
	for (size_t i = 0; i < n; i++) {
		struct ni_ent *x = map_get(&e->narinfos, hashes[i]);
		/* what lookup() answers without asking upstream */
		if (x && (now < x->expires || (x->text && !up)))
			continue;
		char key[CAIRN_STORE_HASH_LEN + 16];
		snprintf(key, sizeof(key), "%s.narinfo", hashes[i]);
		int joined;
		struct fetch *f = edge_fetch_get_locked(e, FK_NARINFO, key, &joined);
		if (!f)
			continue; /* its lookup will say */
		if (!joined) {
			memcpy(f->hash, hashes[i], CAIRN_STORE_HASH_LEN + 1);
			f->closure = closure;
			f->primed = 1;
			misses++;
		}
		out[k++] = f;
	}
	pthread_mutex_unlock(&e->mu);
	edge_count(e->c.ni_misses, misses);
	return k;
}

int edge_narinfo_lookup_closure(struct cairn_edge *e, const char *hash, char **text,
				size_t *len, int64_t *max_age, int *stale_out, int nowait,
				int closure)
{
	int rc = lookup(e, hash, text, len, max_age, stale_out, nowait, closure);
	if (rc == LOOKUP_PRESENT && text && e->gw)
		edge_ipfs_field(e, hash, text, len);
	return rc;
}

void edge_cc_404(char *cc, size_t n, int64_t max_age)
{
	if (max_age > 0)
		snprintf(cc, n, "max-age=%lld", (long long)max_age);
	else
		snprintf(cc, n, "no-store");
}

void edge_miss_narinfo(struct miss *m)
{
	char *text = NULL, cc[64];
	size_t len = 0;
	int64_t max_age = 0;
	int stale;
	int rc = edge_narinfo_lookup(m->e, m->hash, &text, &len, &max_age, &stale, 0);
	if (rc < 0) {
		cairn_httpd_stream_error(m->s, 502, NULL);
		return;
	}
	if (rc == 0) {
		edge_cc_404(cc, sizeof(cc), max_age);
		cairn_httpd_stream_error(m->s, 404, cc);
		return;
	}
	snprintf(cc, sizeof(cc), "max-age=%lld", (long long)(max_age > 0 ? max_age : 0));
	const char *hdrs[] = {"Cache-Control", cc, stale ? "Warning" : NULL,
			      "110 - \"Response is Stale\"", NULL};
	cairn_httpd_stream_reply(m->s, 200, "text/x-nix-narinfo", text, len, hdrs);
	free(text);
}
