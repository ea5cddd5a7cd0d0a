/*
 * fetch.c - the fetch engine (see fetch.h for the design): its life, its
 * items and their results, the narinfo queries (survey.h) and the run.
 * Deciding is fetch-decide.c; downloading and placing, fetch-place.c.
 *
 * Everything runs in callbacks of one asynchronous HTTP client: narinfo
 * answers arrive, an item is decided, its download runs on the engine of
 * download.h, and commits happen when references are in place (settle).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "fetch-int.h"
#include "ipfs-source.h"
#include "cairn/banned.h"

double fetch_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t fetch_wall_now(void)
{
	return (int64_t)time(NULL);
}

void fetch_fatal(struct cairn_fetch *f, int code, const char *msg)
{
	if (!f->fatal) {
		f->fatal = code;
		cairn_error_set(&f->fatal_err, code, "fetch: %s", msg);
	}
}

/* A store database that cannot be read or written stops the run: every
 * item would fail the same way, after downloading for nothing. */
void fetch_db_trouble(struct cairn_fetch *f, int code, const struct cairn_error *e)
{
	if (code == CAIRN_EBUSY || code == CAIRN_EIO || code == CAIRN_ENOMEM)
		fetch_fatal(f, code, cairn_error_msg(e));
}

/* ---- connections opened early ------------------------------------------- */

static void warm_done(void *ctx, const struct cairn_http_result *res)
{
	(void)ctx;
	(void)res; /* what it met, the survey's own request meets too */
}

/*
 * Connections for the first wave of NAR downloads, opened while the
 * narinfos are asked: against a server with the batch route, the narinfo
 * phase uses one or two connections, and each further download at once
 * would pay a handshake (a round trip, more with TLS) after the answers
 * came.  HEADs of the cache's root, one per download that can run at
 * once (jobs, or fewer items without --closure), to the first server
 * given (the one asked for bytes first unless its Priority says
 * otherwise); curl keeps them for the downloads.  Any status will do (a
 * static cache may say 404): only the connection is wanted.  Over HTTP/2
 * they share one connection.  The others get the survey's own
 * connection.  Only when the narinfo cache did not answer everything: a
 * run that asks nothing opens nothing.  And only once that server has
 * answered one query over HTTP (called from on_answer): a black hole
 * first in the list would hold every warm-up request, and with them the
 * connections the client may open to its host (curl's per-host limit),
 * so that the other servers' queries on that host waited for its hold.
 */
static void warm_connections(struct cairn_fetch *f, size_t answered, bool more_to_ask)
{
	size_t want = f->cfg.jobs;
	if (!f->cfg.closure && f->n_items < want)
		want = f->n_items;
	for (size_t i = 0; i < f->n_servers; i++) {
		struct server *s = &f->servers[i];
		if (s->demoted || strncmp(s->url, "http", 4) != 0)
			continue;
		if (i != answered)
			return; /* not the first one: no warming by another's answer */
		f->warm_tried = true;
		if (!more_to_ask)
			return; /* every answer is in: the downloads open their own */
		for (size_t k = 0; k < want && k < FETCH_WARM_MAX; k++) {
			struct cairn_http_request rq = {.method = CAIRN_HTTP_HEAD,
							.server = s->hs,
							.url = "",
							.on_done = warm_done,
							.ctx = f};
			if (cairn_http_add(f->http, &rq, NULL))
				break;
			f->warmed++;
		}
		break;
	}
}

/* ---- config, lifecycle -------------------------------------------------- */

void cairn_fetch_config_init(struct cairn_fetch_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->require_sigs = 1;
	cfg->jobs = 8;
	cfg->max_resumes = 3;
	cfg->multi_min = CAIRN_FETCH_MULTI_MIN;
	cfg->threads = 0;
	cairn_http_config_init(&cfg->http);
}

const char *cairn_fetch_status_name(enum cairn_fetch_status s)
{
	switch (s) {
	case CAIRN_FETCH_FETCHED: return "fetched";
	case CAIRN_FETCH_PRESENT: return "present";
	case CAIRN_FETCH_FAILED: return "failed";
	default: return "pending";
	}
}

int cairn_fetch_new(struct cairn_fetch **out, const struct cairn_fetch_config *cfg,
		    struct cairn_error *err)
{
	if (!cfg || !cfg->keys || (!cfg->root == !cfg->nar_dir))
		return cairn_error_set(
		    err, CAIRN_EINVAL,
		    "fetch: need trusted keys and exactly one of root and nar_dir");
	if (cfg->jobs > CAIRN_FETCH_MAX_JOBS)
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: at most %d parallel downloads",
				       CAIRN_FETCH_MAX_JOBS);
	if (cfg->db && !cfg->root)
		return cairn_error_set(err, CAIRN_EINVAL, "fetch: a store database needs root");
	if (cfg->require_sigs > CAIRN_VERIFY_MAX_SIGNERS)
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: at most %d required signatures",
				       CAIRN_VERIFY_MAX_SIGNERS);
	const char *sd = cfg->store_dir ? cfg->store_dir : "/nix/store";
	int rc = cairn_store_dir_check(sd, strlen(sd), err);
	if (rc)
		return rc;
	struct cairn_fetch *f = calloc(1, sizeof(*f));
	if (!f)
		return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
	f->cfg = *cfg;
	if (f->cfg.jobs == 0)
		f->cfg.jobs = 8;
	if (f->cfg.require_sigs == 0)
		f->cfg.require_sigs = 1;
	snprintf(f->store_dir, sizeof(f->store_dir), "%s", sd);
	cairn_error_init(&f->fatal_err);
	pthread_mutex_init(&f->seeds_mu, NULL);
	if (f->cfg.ipfs) /* the caller cut the --seed paths with this one */
		f->seeds_cut[f->n_seeds_cut++] = f->cfg.ipfs->chunker;
	if (f->cfg.threads > CAIRN_FETCH_MAX_THREADS)
		f->cfg.threads = CAIRN_FETCH_MAX_THREADS;
	rc = cairn_http_new(&f->http, &f->cfg.http, err);
	if (rc) {
		pthread_mutex_destroy(&f->seeds_mu);
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}


static void item_free(struct item *it)
{
	if (!it)
		return;
	fetch_download_free(it);
	if (it->ans) {
		for (size_t i = 0; i < it->f->n_servers; i++) {
			struct answer *a = &it->ans[i];
			cairn_narinfo_free(a->ni);
			free(a->msg);
		}
		free(it->ans);
	}
	free(it->srcs);
	free(it->wait_headline);
	free(it->deps);
	for (size_t i = 0; i < it->n_refs; i++)
		free(it->refs[i]);
	free(it->refs);
	free(it->deriver);
	free(it->choices);
	free(it->sigs);
	cairn_storedb_drv_outputs_free(it->outputs, it->n_outputs);
	free(it->path);
	free(it->base);
	cairn_buf_release(&it->reason);
	free(it);
}

void cairn_fetch_free(struct cairn_fetch *f)
{
	if (!f)
		return;
	/* The client first: it holds callbacks into the items. */
	cairn_http_free(f->http);
	for (size_t i = 0; i < f->n_items; i++)
		item_free(f->items[i]);
	free(f->items);
	free(f->batch);
	for (size_t i = 0; i < f->n_servers; i++) {
		cairn_http_server_free(f->servers[i].hs);
		free(f->servers[i].url);
		free(f->servers[i].demoted);
	}
	free(f->servers);
	cairn_survey_free(f->survey); /* commits its cache batch */
	free(f->qmap);
	/* Items (and their downloads) are gone: no worker has work left. */
	cairn_dl_pool_free(f->pool);
	ipfs_src_free(f->ipfs); /* each item called its own job off */
	pthread_mutex_destroy(&f->seeds_mu);
	free(f);
}

int cairn_fetch_add_server(struct cairn_fetch *f, const char *url, struct cairn_error *err)
{
	if (f->started)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "fetch: servers must be added before the run");
	if (f->n_servers >= CAIRN_FETCH_MAX_SERVERS)
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: at most %d servers",
				       CAIRN_FETCH_MAX_SERVERS);
	struct server *ns = realloc(f->servers, (f->n_servers + 1) * sizeof(*ns));
	if (!ns)
		return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
	f->servers = ns;
	struct server *s = &f->servers[f->n_servers];
	memset(s, 0, sizeof(*s));
	int rc = cairn_http_server_new(&s->hs, url, 0, err);
	if (rc)
		return rc;
	s->url = strdup(cairn_http_server_url(s->hs));
	if (!s->url) {
		cairn_http_server_free(s->hs);
		return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
	}
	s->order = f->n_servers;
	f->n_servers++;
	return 0;
}

struct item *fetch_find_item(const struct cairn_fetch *f, const struct cairn_store_path *sp)
{
	for (size_t i = 0; i < f->n_items; i++)
		if (!cairn_store_path_cmp(&f->items[i]->sp, sp))
			return f->items[i];
	return NULL;
}

int fetch_new_item(struct cairn_fetch *f, const struct cairn_store_path *sp, bool requested,
		    struct item **out, struct cairn_error *err)
{
	struct item *it = fetch_find_item(f, sp);
	if (it) {
		it->requested |= requested;
		*out = it;
		return 0;
	}
	if (f->n_items >= CAIRN_FETCH_MAX_ITEMS)
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: more than %d items",
				       CAIRN_FETCH_MAX_ITEMS);
	if (f->n_items == f->cap_items) {
		size_t nc = f->cap_items ? f->cap_items * 2 : 64;
		struct item **ni = realloc(f->items, nc * sizeof(*ni));
		if (!ni)
			return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
		f->items = ni;
		f->cap_items = nc;
	}
	it = calloc(1, sizeof(*it));
	char buf[CAIRN_STORE_PATH_MAX];
	if (!it)
		return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
	it->f = f;
	it->sp = *sp;
	it->requested = requested;
	cairn_buf_init(&it->reason, CAIRN_FETCH_REASON_MAX);
	if (cairn_store_path_format(sp, f->store_dir, buf, sizeof(buf)) < 0)
		goto nomem;
	it->path = strdup(buf);
	if (cairn_store_path_format(sp, NULL, buf, sizeof(buf)) < 0)
		goto nomem;
	it->base = strdup(buf);
	if (!it->path || !it->base)
		goto nomem;
	it->index = f->n_items;
	f->items[f->n_items++] = it;
	*out = it;
	return 0;
nomem:
	item_free(it);
	return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
}

int cairn_fetch_add_path(struct cairn_fetch *f, const char *path, struct cairn_error *err)
{
	struct cairn_store_path sp;
	size_t sdl = strlen(f->store_dir);
	size_t len = strlen(path);
	int rc;
	if (len > CAIRN_STORE_PATH_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: path too long");
	if (path[0] == '/') {
		if (strncmp(path, f->store_dir, sdl) != 0 || path[sdl] != '/')
			return cairn_error_set(err, CAIRN_EFORMAT, "fetch: '%s' is not in %s", path,
					       f->store_dir);
		const char *b = path + sdl + 1;
		const char *slash = strchr(b, '/');
		size_t blen = slash ? (size_t)(slash - b) : strlen(b);
		rc = cairn_store_path_parse_base(b, blen, &sp, err);
	} else {
		rc = cairn_store_path_parse_base(path, len, &sp, err);
	}
	if (rc)
		return rc;
	struct item *it;
	return fetch_new_item(f, &sp, true, &it, err);
}

size_t cairn_fetch_item_count(const struct cairn_fetch *f)
{
	return f->n_items;
}

size_t cairn_fetch_failed(const struct cairn_fetch *f)
{
	return f->n_failed;
}

void cairn_fetch_item(const struct cairn_fetch *f, size_t i, struct cairn_fetch_report *r)
{
	const struct item *it = f->items[i];
	memset(r, 0, sizeof(*r));
	r->path = it->path;
	r->status = it->status;
	r->requested = it->requested;
	r->code = it->code;
	r->reason = it->status == CAIRN_FETCH_FAILED && it->reason.data ? it->reason.data : "";
	if (it->status == CAIRN_FETCH_FETCHED) {
		r->server = it->server_used;
		r->compression = it->compression;
		r->choices = it->choices;
		r->n_choices = it->n_choices;
		r->choice_net_rate = it->choice_net_rate;
		r->choice_rate_from = it->choice_rate_from;
		r->choice_unpack_measured = f->unpack_measured;
		r->nar_size = it->nar_size;
		r->download_bytes = it->dl_bytes;
		r->n_signers = it->n_signers;
		r->by_ca = it->by_ca;
		r->seconds = it->t_end - it->t_start;
		if (it->cur_src < it->n_srcs)
			r->narinfo = it->ans[it->srcs[it->cur_src]].ni;
		r->nar_hash = it->nar_hash;
		r->references = (const char *const *)it->refs;
		r->n_references = it->n_refs;
		r->deriver = it->deriver;
		r->signatures = it->sigs;
		r->n_signatures = it->n_sigs;
		r->ca = it->ca_text;
		r->in_place = it->in_place;
		r->registered = it->registered;
	}
}

size_t cairn_fetch_server_count(const struct cairn_fetch *f)
{
	return f->n_servers;
}

void cairn_fetch_server(const struct cairn_fetch *f, size_t i,
			struct cairn_fetch_server_report *r)
{
	const struct server *s = &f->servers[i];
	struct cairn_http_server_health h;
	cairn_http_server_health(s->hs, &h);
	r->url = s->url;
	r->state = cairn_http_server_state_name(h.state);
	r->reason = h.state == CAIRN_HTTP_SERVER_UP ? NULL : h.down_reason;
	r->demoted = s->demoted;
	r->demoted_now = s->demoted_now;
}

void cairn_fetch_progress(const struct cairn_fetch *f, struct cairn_fetch_progress *out)
{
	memset(out, 0, sizeof(*out));
	out->items_total = f->n_items;
	out->items_done = f->n_done;
	out->items_failed = f->n_failed;
	out->items_present = f->n_present;
	out->downloads_active = f->downloads_active;
	out->queries_active = f->survey ? cairn_survey_pending(f->survey) : 0;
	out->bytes_received = f->bytes_received;
	out->bytes_expected = f->bytes_expected;
}

/* ---- item results -------------------------------------------------------- */

void fetch_reason_add(struct item *it, const char *fmt, ...)
{
	va_list ap;
	if (it->reason.len)
		cairn_buf_puts(&it->reason, "; ");
	va_start(ap, fmt);
	/* A reason cut at CAIRN_FETCH_REASON_MAX still names the first causes. */
	cairn_buf_vprintf(&it->reason, fmt, ap);
	va_end(ap);
}

static void item_report(struct item *it)
{
	struct cairn_fetch *f = it->f;
	if (!f->cfg.on_item)
		return;
	struct cairn_fetch_report r;
	cairn_fetch_item(f, it->index, &r);
	f->cfg.on_item(f->cfg.ctx, &r);
}

void fetch_item_finish(struct item *it, enum cairn_fetch_status st, int code)
{
	struct cairn_fetch *f = it->f;
	if (it->st == I_FINAL)
		return;
	fetch_download_free(it);
	if (it->early_waiting) {
		it->early_waiting = false;
		f->n_early_waiting--;
	}
	if (it->st == I_READY)
		f->n_ready--;
	if (it->st == I_VERIFIED || it->st == I_PLACED)
		f->n_verified--;
	it->st = I_FINAL;
	it->status = st;
	it->code = code;
	it->t_end = fetch_now_s();
	f->n_done++;
	if (st == CAIRN_FETCH_FAILED)
		f->n_failed++;
	if (st == CAIRN_FETCH_PRESENT)
		f->n_present++;
	item_report(it);
}

void fetch_item_fail(struct item *it, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fetch_item_fail(struct item *it, int code, const char *fmt, ...)
{
	if (fmt) {
		/* The headline goes first; details gathered so far follow it. */
		struct cairn_buf old = it->reason;
		cairn_buf_init(&it->reason, CAIRN_FETCH_REASON_MAX);
		va_list ap;
		va_start(ap, fmt);
		cairn_buf_vprintf(&it->reason, fmt, ap);
		va_end(ap);
		if (old.len) {
			cairn_buf_puts(&it->reason, ": ");
			cairn_buf_append(&it->reason, old.data, old.len);
		}
		cairn_buf_release(&old);
	}
	fetch_item_finish(it, CAIRN_FETCH_FAILED, code);
}

/* ---- narinfo queries (survey.h) ----------------------------------------- */



/* An answer is in: decide when all are, or (K = 1) as soon as one is
 * acceptable; later answers that claim the same are more byte sources. */
void fetch_answer_done(struct answer *a)
{
	struct item *it = a->it;
	struct cairn_fetch *f = it->f;
	it->n_pending--;
	if (it->st == I_QUERY) {
		if (it->n_pending == 0)
			fetch_decide(it, false);
		else if (f->cfg.require_sigs <= 1 && (a->state == A_PRESENT || it->early_waiting))
			fetch_decide(it, true); /* a preferred server may have answered */
		return;
	}
	if (a->state == A_PRESENT)
		fetch_late_answer(it, a);
	if (it->st == I_WAITING && it->n_pending == 0) {
		char *h = it->wait_headline;
		it->wait_headline = NULL;
		fetch_item_fail(it, it->wait_code, "%s", h ? h : "download failed");
		free(h);
	}
}

static bool has_other_refs(const struct cairn_narinfo *ni)
{
	if (!ni)
		return false;
	const char *self = strrchr(ni->store_path, '/');
	self = self ? self + 1 : ni->store_path;
	for (size_t i = 0; i < ni->n_refs; i++)
		if (strcmp(ni->refs[i], self) != 0)
			return true;
	return false;
}

/* One server's answer for one item, from the survey. */
static int on_answer(void *ctx, struct cairn_survey_result *r)
{
	struct cairn_fetch *f = ctx;
	if (r->path_index >= f->n_qmap)
		return 0;
	struct item *it = f->qmap[r->path_index];
	struct answer *a = &it->ans[r->server_index];
	/* a server that answered over HTTP is not a black hole: warm it,
	 * unless this was the last answer to come (the survey adds a closure's
	 * references only once this returns) */
	if (!f->warm_tried && !r->from_cache && r->status != 0)
		warm_connections(f, r->server_index,
				 cairn_survey_pending(f->survey) > 0 ||
					 (f->cfg.closure && has_other_refs(r->narinfo)));
	if (a->state != A_PENDING || it->st == I_FINAL || it->st == I_NEW)
		return 0;
	switch (r->outcome) {
	case CAIRN_SURVEY_PRESENT:
		a->state = A_PRESENT;
		a->ni = r->narinfo; /* taken */
		r->narinfo = NULL;
		break;
	case CAIRN_SURVEY_ABSENT: a->state = A_ABSENT; break;
	case CAIRN_SURVEY_INVALID:
		a->state = A_INVALID;
		a->msg = strdup(cairn_error_msg(&r->err));
		break;
	default:
		a->state = A_ERROR;
		a->msg = strdup(cairn_error_msg(&r->err));
		break;
	}
	fetch_answer_done(a);
	return 0;
}

static int qmap_add(struct cairn_fetch *f, size_t index, struct item *it)
{
	if (index >= f->cap_qmap) {
		size_t nc = f->cap_qmap ? f->cap_qmap : 256;
		while (nc <= index)
			nc *= 2;
		struct item **m = realloc(f->qmap, nc * sizeof(*m));
		if (!m)
			return CAIRN_ENOMEM;
		f->qmap = m;
		f->cap_qmap = nc;
	}
	for (size_t i = f->n_qmap; i < index; i++)
		f->qmap[i] = NULL;
	f->qmap[index] = it;
	if (index >= f->n_qmap)
		f->n_qmap = index + 1;
	return 0;
}

/* Start an item: present, or ask every server. */
void fetch_item_start(struct item *it)
{
	struct cairn_fetch *f = it->f;
	if (it->st != I_NEW)
		return;
	struct cairn_error e;
	cairn_error_init(&e);
	int present = fetch_in_target(f, &it->sp, &e);
	if (present != 0) {
		it->st = I_QUERY; /* so that item_finish reports it */
		if (present < 0) {
			fetch_item_fail(it, present, "%s", cairn_error_msg(&e));
			fetch_db_trouble(f, present, &e);
		} else {
			fetch_item_finish(it, CAIRN_FETCH_PRESENT, 0);
		}
		return;
	}
	/* Files without a registration (a run stopped between the two, or
	 * a database that refused to be written): checked, not fetched. */
	it->on_disk = f->cfg.db && fetch_item_on_disk(it);
	it->t_start = fetch_now_s();
	it->st = I_QUERY;
	if (f->n_servers == 0) {
		fetch_item_fail(it, CAIRN_ENOENT, "no server given");
		return;
	}
	it->ans = calloc(f->n_servers, sizeof(*it->ans));
	if (!it->ans) {
		fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
		return;
	}
	it->n_pending = f->n_servers;
	for (size_t i = 0; i < f->n_servers; i++) {
		struct answer *a = &it->ans[i];
		a->it = it;
		a->si = i;
		a->group = -1;
	}
	size_t qi;
	int rc = cairn_survey_add(f->survey, it->path, &qi, &e);
	if (rc < 0 || (rc == 0 && qi < f->n_qmap && f->qmap[qi] && f->qmap[qi] != it)) {
		fetch_item_fail(it, rc < 0 ? rc : CAIRN_EINVAL, "%s",
			  rc < 0 ? cairn_error_msg(&e) : "internal error: asked twice");
		return;
	}
	if (qmap_add(f, qi, it)) {
		fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
		return;
	}
}

/* ---- the run ------------------------------------------------------------- */

int cairn_fetch_start(struct cairn_fetch *f, struct cairn_error *err)
{
	if (f->started)
		return cairn_error_set(err, CAIRN_EINVAL, "fetch: already started");
	f->started = true;
	if (f->cfg.threads) {
		int rc = cairn_dl_pool_new(&f->pool, f->cfg.threads, err);
		if (rc)
			return rc;
	}
	for (size_t i = 0; f->cfg.cache && i < f->n_servers; i++) {
		char *why = NULL;
		if (cairn_nicache_is_demoted(f->cfg.cache, f->servers[i].url, fetch_wall_now(), &why,
					     NULL) == 1)
			f->servers[i].demoted = why ? why : strdup("demoted");
		else
			free(why);
		if (cairn_nicache_get_speed(f->cfg.cache, f->servers[i].url, &f->servers[i].speed,
					    &f->servers[i].rtt_ms, NULL) != 1)
			f->servers[i].speed = f->servers[i].rtt_ms = 0;
	}
	if (f->n_servers) {
		/* Queries and nix-cache-info go out together: no server's
		 * items wait for any server's nix-cache-info. */
		struct cairn_http_server **hs = calloc(f->n_servers, sizeof(*hs));
		if (!hs)
			return cairn_error_set(err, CAIRN_ENOMEM, "fetch: out of memory");
		for (size_t i = 0; i < f->n_servers; i++)
			hs[i] = f->servers[i].hs;
		struct cairn_survey_config sc;
		cairn_survey_config_init(&sc);
		sc.max_inflight = QUERY_INFLIGHT_MAX;
		sc.max_retries = QUERY_RETRIES;
		sc.cache = f->cfg.cache;
		sc.now = fetch_wall_now();
		sc.with_info = true;
		sc.store_dir = f->store_dir;
		sc.closure = true; /* on_answer adds the references */
		int rc = cairn_survey_new(&f->survey, f->http, hs, f->n_servers, &sc, on_answer, f,
					  err);
		free(hs);
		if (rc)
			return rc;
	}
	size_t n = f->n_items;
	for (size_t i = 0; i < n; i++)
		fetch_item_start(f->items[i]);
	fetch_settle(f);
	fetch_pump(f);
	return 0;
}

int cairn_fetch_step(struct cairn_fetch *f, int timeout_ms, struct cairn_error *err)
{
	bool working = cairn_dl_pool_pending(f->pool) > 0 || ipfs_src_pending(f->ipfs) > 0;
	int wait_ms = timeout_ms > 0 ? timeout_ms : 0;
	if (working && timeout_ms > WORKER_POLL_MS)
		timeout_ms = WORKER_POLL_MS;
	if (f->n_early_waiting && timeout_ms > EARLY_POLL_MS)
		timeout_ms = EARLY_POLL_MS;
	int rc = cairn_http_step(f->http, timeout_ms, err);
	if (rc < 0)
		return rc;
	if (f->fatal)
		return cairn_error_set(err, f->fatal, "%s", f->fatal_err.msg);
	/* Nothing on the network (the client returns at once then): sleep
	 * until a worker posts a verdict instead of spinning. */
	if (rc == 0 && working) {
		if (ipfs_src_pending(f->ipfs))
			ipfs_src_wait(f->ipfs, WORKER_POLL_MS);
		else
			cairn_dl_pool_wait(f->pool, wait_ms);
	}
	cairn_dl_pool_drain(f->pool);
	ipfs_src_drain(f->ipfs);
	/* acceptable answers waiting for a preferred server: when the grace is
	 * over (deciding again verifies signatures: not at every step) */
	double now = f->n_early_waiting ? fetch_now_s() : 0;
	for (size_t i = 0; f->n_early_waiting && i < f->n_items; i++) {
		struct item *it = f->items[i];
		if (it->early_waiting && it->st == I_QUERY &&
		    now - it->t_start >= it->grace_s)
			fetch_decide(it, true);
	}
	fetch_settle(f);
	fetch_pump(f);
	if (f->n_done == f->n_items && f->started) {
		/* Every item is decided: answers still to come (a silent
		 * server's) change nothing, and nobody waits for them. */
		if (f->survey)
			cairn_survey_flush(f->survey);
		return 0;
	}
	working = cairn_dl_pool_pending(f->pool) > 0 || ipfs_src_pending(f->ipfs) > 0 ||
		  (f->survey && cairn_survey_pending(f->survey) > 0);
	if (rc > 0 || working)
		return 1;
	/* Nothing in flight: every item must be final by now. */
	size_t left = 0;
	for (size_t i = 0; i < f->n_items; i++) {
		struct item *it = f->items[i];
		if (it->st == I_FINAL)
			continue;
		if (it->st == I_NEW) {
			fetch_item_start(it);
			left++;
			continue;
		}
		left++;
	}
	if (left) {
		fetch_settle(f);
		fetch_pump(f);
		int again = cairn_http_step(f->http, 0, err);
		if (again < 0)
			return again;
		/* What that step finished may let items move on. */
		fetch_settle(f);
		fetch_pump(f);
		if (again == 0 && f->downloads_active == 0 && f->n_ready == 0 &&
		    cairn_dl_pool_pending(f->pool) == 0 && ipfs_src_pending(f->ipfs) == 0 &&
		    !(f->survey && cairn_survey_pending(f->survey) > 0)) {
			if (fetch_fail_cycles(f)) {
				fetch_settle(f);
				return 1;
			}
			for (size_t i = 0; i < f->n_items; i++)
				if (f->items[i]->st != I_FINAL && f->items[i]->st != I_NEW)
					fetch_item_fail(f->items[i], CAIRN_EINVAL,
						  "internal error: item stuck");
		}
		return 1;
	}
	if (f->survey)
		cairn_survey_flush(f->survey);
	return 0;
}

int cairn_fetch_run(struct cairn_fetch *f, struct cairn_error *err)
{
	int rc = cairn_fetch_start(f, err);
	if (rc)
		return rc;
	while ((rc = cairn_fetch_step(f, 1000, err)) > 0)
		;
	if (rc < 0)
		return rc;
	return (int)(f->n_failed > (size_t)INT32_MAX ? INT32_MAX : f->n_failed);
}
