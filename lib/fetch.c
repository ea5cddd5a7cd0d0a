/*
 * fetch.c - the download-and-verify engine (see fetch.h for the design).
 *
 * Everything runs in callbacks of one asynchronous HTTP client: narinfo
 * answers arrive, an item is decided when every server has answered, its
 * download is a pipeline fed by on_data (FileHash -> codec -> NAR parser ->
 * restore), and commits happen when references are in place (settle()).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/fetch.h"
#include "cairn/hash.h"
#include "cairn/keys.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "download.h"

/* Narinfo queries in flight at once; more wait in our own queue. */
#define QUERY_INFLIGHT_MAX 256
/* Network retries of one narinfo query on the same server. */
#define QUERY_RETRIES 1
/* How often the network thread looks for finished work while workers run. */
#define WORKER_POLL_MS 5

enum answer_state { A_PENDING = 0, A_PRESENT, A_ABSENT, A_INVALID, A_ERROR };

struct item;

struct server {
	struct cairn_http_server *hs;
	char *url;
	size_t order; /* position given */
};

struct answer {
	struct item *it;
	size_t si; /* server index */
	enum answer_state state;
	struct cairn_narinfo *ni;
	char *msg; /* A_ERROR, or why the narinfo was refused */
	int group; /* -1 none */
	bool ca_ok;
	uint32_t sigs_ok; /* bit i: ni->sigs[i] verified with a trusted key */
};

enum item_state {
	I_NEW = 0,  /* added, not started */
	I_QUERY,    /* narinfo answers pending */
	I_READY,    /* decided, waiting for a download slot */
	I_DOWNLOAD, /* bytes flowing */
	I_WAITING,  /* every source failed; answers still to come may give more */
	I_VERIFIED, /* waiting for references to commit */
	I_PLACED,   /* in place and synced, waiting for its batch's registration */
	I_FINAL,    /* status set */
};

struct item {
	struct cairn_fetch *f;
	size_t index;
	struct cairn_store_path sp;
	char *path;
	char *base;
	bool requested;
	enum item_state st;
	struct answer *ans;
	size_t n_pending;
	/* decision */
	struct cairn_hash nar_hash;
	uint64_t nar_size;
	size_t *srcs;
	size_t n_srcs, cur_src;
	const struct cairn_narinfo *chosen; /* the accepted claim (borrowed from ans) */
	int chosen_group;
	bool early;			    /* decided before every server answered */
	int wait_code;			    /* I_WAITING: why the sources so far failed */
	char *wait_headline;
	struct item **deps;
	size_t n_deps;
	bool by_ca;
	struct cairn_ca ca;
	unsigned n_signers;
	/* what a store records (storedb-write.h); strings owned unless noted */
	char **refs;	   /* full paths, sorted, self included */
	size_t n_refs;
	char *deriver;	   /* full path or NULL */
	const char **sigs; /* accepted signatures, sorted; borrowed from ans */
	size_t n_sigs;
	const char *ca_text; /* a CA the path recomputes from; borrowed from ans */
	struct cairn_storedb_drv_output *outputs; /* a .drv's, read once placed */
	size_t n_outputs;
	bool on_disk;	     /* files there but not valid: check, do not download */
	bool in_place;	     /* checked on disk, nothing downloaded */
	bool registered;
	/* result */
	enum cairn_fetch_status status;
	int code;
	struct cairn_buf reason;
	const char *server_used;
	const char *compression;
	uint64_t dl_bytes;
	double t_start, t_end;
	struct cairn_dl *dl;
	struct cairn_dl_tree *tree; /* the sink: a tree under the root */
	struct cairn_dl_file *file; /* or a NAR file in nar_dir */
};

struct cairn_fetch {
	struct cairn_fetch_config cfg;
	char store_dir[CAIRN_STORE_DIR_MAX + 1];
	struct cairn_http *http;
	struct server *servers;
	size_t n_servers;
	struct item **items;
	size_t n_items, cap_items;
	bool started;
	bool store_ready;
	struct cairn_survey *survey; /* the narinfo queries (survey.h) */
	struct item **qmap;	     /* survey path index -> item */
	size_t n_qmap, cap_qmap;
	size_t downloads_active;
	uint64_t bytes_received;
	uint64_t bytes_expected;
	double t_first_dl; /* when the first download started */
	size_t n_done, n_failed, n_present;
	size_t n_ready, n_verified; /* items in I_READY, I_VERIFIED: scans skip when 0 */
	struct item **batch;	    /* I_PLACED items, in the order placed */
	size_t n_batch, cap_batch;
	int fatal;
	struct cairn_error fatal_err;
	struct cairn_dl_pool *pool; /* workers that unpack and verify, or NULL */
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_now(void)
{
	return (int64_t)time(NULL);
}

static void fatal(struct cairn_fetch *f, int code, const char *msg)
{
	if (!f->fatal) {
		f->fatal = code;
		cairn_error_set(&f->fatal_err, code, "fetch: %s", msg);
	}
}

/* A store database that cannot be read or written stops the run: every
 * item would fail the same way, after downloading for nothing. */
static void db_trouble(struct cairn_fetch *f, int code, const struct cairn_error *e)
{
	if (code == CAIRN_EBUSY || code == CAIRN_EIO || code == CAIRN_ENOMEM)
		fatal(f, code, cairn_error_msg(e));
}

/* ---- config, lifecycle -------------------------------------------------- */

void cairn_fetch_config_init(struct cairn_fetch_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->require_sigs = 1;
	cfg->jobs = 8;
	cfg->max_resumes = 3;
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
	if (f->cfg.threads > CAIRN_FETCH_MAX_THREADS)
		f->cfg.threads = CAIRN_FETCH_MAX_THREADS;
	rc = cairn_http_new(&f->http, &f->cfg.http, err);
	if (rc) {
		free(f);
		return rc;
	}
	*out = f;
	return 0;
}

static void download_free(struct item *it);

static void item_free(struct item *it)
{
	if (!it)
		return;
	download_free(it);
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
	}
	free(f->servers);
	cairn_survey_free(f->survey); /* commits its cache batch */
	free(f->qmap);
	/* Items (and their downloads) are gone: no worker has work left. */
	cairn_dl_pool_free(f->pool);
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

static struct item *find_item(const struct cairn_fetch *f, const struct cairn_store_path *sp)
{
	for (size_t i = 0; i < f->n_items; i++)
		if (!cairn_store_path_cmp(&f->items[i]->sp, sp))
			return f->items[i];
	return NULL;
}

static int new_item(struct cairn_fetch *f, const struct cairn_store_path *sp, bool requested,
		    struct item **out, struct cairn_error *err)
{
	struct item *it = find_item(f, sp);
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
	return new_item(f, &sp, true, &it, err);
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

static void reason_add(struct item *it, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason_add(struct item *it, const char *fmt, ...)
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

static void item_finish(struct item *it, enum cairn_fetch_status st, int code)
{
	struct cairn_fetch *f = it->f;
	if (it->st == I_FINAL)
		return;
	download_free(it);
	if (it->st == I_READY)
		f->n_ready--;
	if (it->st == I_VERIFIED || it->st == I_PLACED)
		f->n_verified--;
	it->st = I_FINAL;
	it->status = st;
	it->code = code;
	it->t_end = now_s();
	f->n_done++;
	if (st == CAIRN_FETCH_FAILED)
		f->n_failed++;
	if (st == CAIRN_FETCH_PRESENT)
		f->n_present++;
	item_report(it);
}

static void item_fail(struct item *it, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void item_fail(struct item *it, int code, const char *fmt, ...)
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
	item_finish(it, CAIRN_FETCH_FAILED, code);
}

/* ---- where items go ------------------------------------------------------ */

static int target_path(const struct item *it, char *out, size_t cap)
{
	const struct cairn_fetch *f = it->f;
	int n;
	if (f->cfg.nar_dir)
		n = snprintf(out, cap, "%s/%s.nar", f->cfg.nar_dir, it->base);
	else
		n = snprintf(out, cap, "%s%s/%s", f->cfg.root, f->store_dir, it->base);
	return n < 0 || (size_t)n >= cap ? CAIRN_ELIMIT : 0;
}

static bool item_on_disk(const struct item *it)
{
	char p[4096];
	struct stat st;
	if (target_path(it, p, sizeof(p)))
		return false;
	return lstat(p, &st) == 0;
}

/*
 * Whether path sp is in the target store: valid in its database, or, with
 * no database, its files exist (NAR_DIR: its NAR).  1, 0, or a negative
 * error from the database (e then says why).
 */
static int in_target(struct cairn_fetch *f, const struct cairn_store_path *sp,
		     struct cairn_error *e)
{
	char p[4096];
	struct stat st;
	int n;
	if (f->cfg.db) {
		if (cairn_store_path_format(sp, f->store_dir, p, sizeof(p)) < 0)
			return cairn_error_set(e, CAIRN_ELIMIT, "path too long");
		return cairn_storedb_writer_is_valid(f->cfg.db, p, e);
	}
	char base[CAIRN_STORE_PATH_MAX];
	if (cairn_store_path_format(sp, NULL, base, sizeof(base)) < 0)
		return cairn_error_set(e, CAIRN_ELIMIT, "path too long");
	if (f->cfg.nar_dir)
		n = snprintf(p, sizeof(p), "%s/%s.nar", f->cfg.nar_dir, base);
	else
		n = snprintf(p, sizeof(p), "%s%s/%s", f->cfg.root, f->store_dir, base);
	if (n < 0 || (size_t)n >= sizeof(p))
		return cairn_error_set(e, CAIRN_ELIMIT, "path too long");
	return lstat(p, &st) == 0;
}

static int mkdir_p(const char *path, struct cairn_error *err)
{
	char buf[4096];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: directory name too long");
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] == '/' || buf[i] == '\0') {
			char c = buf[i];
			buf[i] = '\0';
			if (mkdir(buf, 0755) != 0 && errno != EEXIST)
				return cairn_error_errno(err, errno, "fetch: cannot create '%s'",
							 buf);
			buf[i] = c;
		}
	}
	return 0;
}

static int store_ready(struct cairn_fetch *f, struct cairn_error *err)
{
	if (f->store_ready)
		return 0;
	char p[4096];
	int n;
	if (f->cfg.nar_dir)
		n = snprintf(p, sizeof(p), "%s", f->cfg.nar_dir);
	else
		n = snprintf(p, sizeof(p), "%s%s", f->cfg.root, f->store_dir);
	if (n < 0 || (size_t)n >= sizeof(p))
		return cairn_error_set(err, CAIRN_ELIMIT, "fetch: directory name too long");
	int rc = mkdir_p(p, err);
	if (!rc)
		f->store_ready = true;
	return rc;
}

/* ---- narinfo queries (survey.h) ----------------------------------------- */

static void decide(struct item *it, bool early);
static void pump(struct cairn_fetch *f);
static void item_start(struct item *it);

static void late_answer(struct item *it, struct answer *a);

/* An answer is in: decide when all are, or (K = 1) as soon as one is
 * acceptable; later answers that claim the same are more byte sources. */
static void answer_done(struct answer *a)
{
	struct item *it = a->it;
	struct cairn_fetch *f = it->f;
	it->n_pending--;
	if (it->st == I_QUERY) {
		if (it->n_pending == 0)
			decide(it, false);
		else if (f->cfg.require_sigs <= 1 && a->state == A_PRESENT)
			decide(it, true);
		return;
	}
	if (a->state == A_PRESENT)
		late_answer(it, a);
	if (it->st == I_WAITING && it->n_pending == 0) {
		char *h = it->wait_headline;
		it->wait_headline = NULL;
		item_fail(it, it->wait_code, "%s", h ? h : "download failed");
		free(h);
	}
}

/* One server's answer for one item, from the survey. */
static int on_answer(void *ctx, struct cairn_survey_result *r)
{
	struct cairn_fetch *f = ctx;
	if (r->path_index >= f->n_qmap)
		return 0;
	struct item *it = f->qmap[r->path_index];
	struct answer *a = &it->ans[r->server_index];
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
	answer_done(a);
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
static void item_start(struct item *it)
{
	struct cairn_fetch *f = it->f;
	if (it->st != I_NEW)
		return;
	struct cairn_error e;
	cairn_error_init(&e);
	int present = in_target(f, &it->sp, &e);
	if (present != 0) {
		it->st = I_QUERY; /* so that item_finish reports it */
		if (present < 0) {
			item_fail(it, present, "%s", cairn_error_msg(&e));
			db_trouble(f, present, &e);
		} else {
			item_finish(it, CAIRN_FETCH_PRESENT, 0);
		}
		return;
	}
	/* Files without a registration (a run stopped between the two, or
	 * a database that refused to be written): checked, not fetched. */
	it->on_disk = f->cfg.db && item_on_disk(it);
	it->t_start = now_s();
	it->st = I_QUERY;
	if (f->n_servers == 0) {
		item_fail(it, CAIRN_ENOENT, "no server given");
		return;
	}
	it->ans = calloc(f->n_servers, sizeof(*it->ans));
	if (!it->ans) {
		item_fail(it, CAIRN_ENOMEM, "out of memory");
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
		item_fail(it, rc < 0 ? rc : CAIRN_EINVAL, "%s",
			  rc < 0 ? cairn_error_msg(&e) : "internal error: asked twice");
		return;
	}
	if (qmap_add(f, qi, it)) {
		item_fail(it, CAIRN_ENOMEM, "out of memory");
		return;
	}
}

/* ---- deciding ------------------------------------------------------------ */

/* What each server said, for the trust module (trust.h). */
static void trust_answer(struct item *it, struct answer *a, struct cairn_trust_answer *ta)
{
	struct cairn_fetch *f = it->f;
	ta->server = f->servers[a->si].url;
	switch (a->state) {
	case A_PRESENT:
		ta->state = CAIRN_TRUST_PRESENT;
		ta->ni = a->ni;
		break;
	case A_ABSENT: ta->state = CAIRN_TRUST_ABSENT; break;
	case A_INVALID:
		ta->state = CAIRN_TRUST_INVALID;
		ta->error = a->msg ? a->msg : "not a narinfo";
		break;
	case A_PENDING:
		ta->state = CAIRN_TRUST_ERROR;
		ta->error = "no answer yet";
		break;
	default:
		ta->state = CAIRN_TRUST_ERROR;
		ta->error = a->msg ? a->msg : "no answer";
		break;
	}
}

/* Servers by preference: nix-cache-info's Priority (lower first), then
 * the order given.  What Priority said may have come in meanwhile. */
static int prio(const struct cairn_fetch *f, size_t i)
{
	return cairn_http_server_info(f->servers[i].hs)->priority;
}

static void preference(const struct cairn_fetch *f, size_t *order)
{
	size_t n = f->n_servers;
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	/* Insertion sort: a handful of servers, and it is stable. */
	for (size_t i = 1; i < n; i++) {
		size_t x = order[i], j = i;
		while (j > 0 && prio(f, order[j - 1]) > prio(f, x)) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
}

static int cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * What a store records about the accepted group: the references as full
 * paths, a deriver (unsigned, so the best server's hint), the signatures
 * that verified with a trusted key on any narinfo of the group, and a CA
 * the path recomputes from.  0 or CAIRN_ENOMEM.
 */
static int record_info(struct item *it, int chosen)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_narinfo *ni = NULL;
	size_t nsig = 0;
	char buf[CAIRN_STORE_PATH_MAX];
	for (size_t i = 0; i < f->n_servers; i++) {
		const struct answer *a = &it->ans[i];
		if (a->group != chosen)
			continue;
		if (!ni)
			ni = a->ni;
		nsig += (size_t)__builtin_popcount(a->sigs_ok);
		if (!it->ca_text && a->ca_ok)
			it->ca_text = a->ni->ca;
		struct cairn_store_path dsp;
		if (!it->deriver && a->ni->deriver &&
		    !cairn_store_path_parse_base(a->ni->deriver, strlen(a->ni->deriver), &dsp,
						 NULL) &&
		    cairn_store_path_format(&dsp, f->store_dir, buf, sizeof(buf)) > 0 &&
		    !(it->deriver = strdup(buf)))
			return CAIRN_ENOMEM;
	}
	if (!ni)
		return 0;
	if (ni->n_refs) {
		it->refs = calloc(ni->n_refs, sizeof(char *));
		if (!it->refs)
			return CAIRN_ENOMEM;
	}
	for (size_t i = 0; i < ni->n_refs; i++) {
		size_t n = strlen(f->store_dir) + 1 + strlen(ni->refs[i]) + 1;
		if (!(it->refs[i] = malloc(n)))
			return CAIRN_ENOMEM;
		snprintf(it->refs[i], n, "%s/%s", f->store_dir, ni->refs[i]);
		it->n_refs++;
	}
	if (it->n_refs > 1)
		qsort(it->refs, it->n_refs, sizeof(char *), cstr_cmp);
	if (nsig) {
		it->sigs = calloc(nsig, sizeof(char *));
		if (!it->sigs)
			return CAIRN_ENOMEM;
	}
	for (size_t i = 0; i < f->n_servers; i++) {
		const struct answer *a = &it->ans[i];
		for (size_t k = 0; a->group == chosen && k < a->ni->n_sigs && k < 32; k++)
			if (a->sigs_ok & ((uint32_t)1 << k))
				it->sigs[it->n_sigs++] = a->ni->sigs[k];
	}
	/* A store keeps a set: sorted, each once, as many as it reads back. */
	if (it->n_sigs > 1)
		qsort(it->sigs, it->n_sigs, sizeof(char *), cstr_cmp);
	size_t k = 0;
	for (size_t i = 0; i < it->n_sigs; i++)
		if ((!k || strcmp(it->sigs[i], it->sigs[k - 1])) && k < CAIRN_STOREDB_SIGS_MAX)
			it->sigs[k++] = it->sigs[i];
	it->n_sigs = k;
	return 0;
}

/*
 * Link it to its references.  With the closure, each becomes an item of
 * the run.  Without, a reference must be an item of this run (it is then
 * committed first) or already in the target (valid in its database): a
 * store never holds a path whose references it lacks, so anything else
 * fails the item, naming what is missing.  NARs in NAR_DIR stand alone.
 * False when the item failed.
 */
static bool resolve_refs(struct item *it, const struct cairn_narinfo *ni)
{
	struct cairn_fetch *f = it->f;
	struct cairn_buf missing = CAIRN_BUF_INIT(CAIRN_FETCH_REASON_MAX / 2);
	size_t n_missing = 0;
	bool ok = false;
	if (ni->n_refs) {
		it->deps = calloc(ni->n_refs, sizeof(*it->deps));
		if (!it->deps) {
			item_fail(it, CAIRN_ENOMEM, "out of memory");
			return false;
		}
	}
	for (size_t i = 0; i < ni->n_refs; i++) {
		struct cairn_store_path sp;
		struct cairn_error e;
		cairn_error_init(&e);
		if (cairn_store_path_parse_base(ni->refs[i], strlen(ni->refs[i]), &sp, &e)) {
			item_fail(it, CAIRN_EFORMAT, "bad reference: %s", cairn_error_msg(&e));
			goto out;
		}
		if (!cairn_store_path_cmp(&sp, &it->sp))
			continue;
		struct item *d = NULL;
		if (f->cfg.closure) {
			int rc = new_item(f, &sp, false, &d, &e);
			if (rc) {
				item_fail(it, rc, "%s", cairn_error_msg(&e));
				goto out;
			}
			it->deps[it->n_deps++] = d;
			item_start(d);
			continue;
		}
		if (f->cfg.nar_dir)
			continue;
		if ((d = find_item(f, &sp)) != NULL) {
			it->deps[it->n_deps++] = d;
			continue;
		}
		int v = in_target(f, &sp, &e);
		if (v < 0) {
			item_fail(it, v, "%s", cairn_error_msg(&e));
			db_trouble(f, v, &e);
			goto out;
		}
		if (v == 0)
			cairn_buf_printf(&missing, "%s%s", n_missing++ ? ", " : "", ni->refs[i]);
	}
	if (n_missing) {
		item_fail(it, CAIRN_ENOENT,
			  "%zu reference%s not in the store and not fetched in this run: %s%s "
			  "(fetch them too, or the closure)",
			  n_missing, n_missing == 1 ? " is" : "s are",
			  missing.data ? missing.data : "", missing.len >= missing.max ? "..." : "");
		goto out;
	}
	ok = true;
out:
	cairn_buf_release(&missing);
	return ok;
}

static int check_in_place(struct item *it, struct cairn_error *e);

static void decide(struct item *it, bool early)
{
	struct cairn_fetch *f = it->f;
	size_t ns = f->n_servers;
	struct cairn_trust_answer *ta = calloc(ns, sizeof(*ta));
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	size_t *order = calloc(ns, sizeof(*order));
	if (!ta || !v || !order) {
		item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	/* The trust decision takes the answers in the order of preference:
	 * with K = 1 the first acceptable group is the best server's. */
	preference(f, order);
	for (size_t k = 0; k < ns; k++)
		trust_answer(it, &it->ans[order[k]], &ta[k]);
	struct cairn_trust_policy pol = {.keys = f->cfg.keys,
					 .require_sigs = f->cfg.require_sigs,
					 .store_dir = f->store_dir};
	int rc = cairn_trust_decide(ta, ns, it->path, &it->sp, &pol, v);
	if (rc && early)
		goto out; /* not yet: wait for more answers */
	for (size_t k = 0; k < ns; k++) {
		struct answer *a = &it->ans[order[k]];
		a->group = ta[k].group;
		a->ca_ok = ta[k].ca_ok;
		a->sigs_ok = ta[k].sigs_ok;
	}
	if (rc) {
		/* Say why per server (down, refused, unsigned), except when signed
		 * groups disagree: the headline names them all.  The survey's
		 * messages name their server already. */
		for (size_t k = 0; rc != CAIRN_EHASH && k < ns; k++) {
			if (!ta[k].why[0] || ta[k].state == CAIRN_TRUST_ABSENT)
				continue;
			if (strstr(ta[k].why, ta[k].server))
				reason_add(it, "%s", ta[k].why);
			else
				reason_add(it, "%s: %s", ta[k].server, ta[k].why);
		}
		item_fail(it, rc, "%s", v->reason);
		goto out;
	}
	int chosen = v->chosen;
	it->early = early;
	it->chosen = v->ni;
	it->chosen_group = chosen;
	it->nar_hash = v->ni->nar_hash;
	it->nar_size = v->ni->nar_size;
	it->n_signers = (unsigned)v->groups[chosen].n_signers;
	if (v->by_ca) {
		/* Accepted through CA: the content must match it. */
		it->by_ca = true;
		it->ca = v->ca;
	}
	it->srcs = malloc(ns * sizeof(size_t));
	if (!it->srcs) {
		item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < ns; k++)
		if (it->ans[order[k]].group == chosen)
			it->srcs[it->n_srcs++] = order[k];

	/* What the store will record, then references: closure items, items
	 * of this run, or paths already in the target; nothing else. */
	if (record_info(it, chosen)) {
		item_fail(it, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	if (!resolve_refs(it, v->ni))
		goto out;
	if (it->on_disk) {
		struct cairn_error e;
		cairn_error_init(&e);
		rc = check_in_place(it, &e);
		if (rc) {
			item_fail(it, rc, "%s", cairn_error_msg(&e));
			goto out;
		}
		it->in_place = true;
		it->st = I_VERIFIED;
		f->n_verified++;
		goto out;
	}
	const struct cairn_narinfo_url *u0 = &it->ans[it->srcs[0]].ni->urls[0];
	f->bytes_expected += u0->has_file_size ? u0->file_size : it->nar_size;
	it->st = I_READY;
	f->n_ready++;
out:
	free(ta);
	free(v);
	free(order);
}

/* An answer that came after an early decision (K = 1): a server that
 * claims the same is one more source of the bytes. */
static void add_dl_source(struct item *it, size_t si);

static void late_answer(struct item *it, struct answer *a)
{
	if (!it->chosen || !a->ni || it->st == I_FINAL || it->st == I_VERIFIED ||
	    it->st == I_PLACED || strcmp(a->ni->store_path, it->path) ||
	    !cairn_trust_same_claim(a->ni, it->chosen))
		return;
	a->group = it->chosen_group;
	it->srcs[it->n_srcs++] = a->si;
	if (it->st == I_DOWNLOAD && it->dl) {
		add_dl_source(it, a->si);
	} else if (it->st == I_WAITING) {
		/* Start over with the sources not tried yet. */
		download_free(it);
		it->cur_src = it->n_srcs - 1;
		it->st = I_READY;
		it->f->n_ready++;
	}
}

/* ---- downloading --------------------------------------------------------- */

/* The engine (lib/download.h) does the work; these say where to and from. */

static void download_free(struct item *it)
{
	cairn_dl_free(it->dl);
	it->dl = NULL;
	cairn_dl_tree_free(it->tree); /* removes an uncommitted tree */
	it->tree = NULL;
	cairn_dl_file_free(it->file);
	it->file = NULL;
}

/* Ties go to the earlier: zstd is small and unpacks at 1 GB/s; then by size. */
static int method_rank(enum cairn_codec_method m)
{
	switch (m) {
	case CAIRN_CODEC_ZSTD: return 0;
	case CAIRN_CODEC_XZ: return 1;
	case CAIRN_CODEC_LZIP: return 2;
	case CAIRN_CODEC_GZIP: return 3;
	case CAIRN_CODEC_BZIP2: return 4;
	case CAIRN_CODEC_NONE: return 5;
	default: return 9;
	}
}

/*
 * Unpacking speed of one core in NAR bytes per second, and the size of a
 * typical file as a fraction of its NAR when the narinfo has no FileSize:
 * the measurements in codec.h (52 MB of mixed files), rounded down.
 */
static void method_model(enum cairn_codec_method m, double *rate, double *ratio)
{
	switch (m) {
	case CAIRN_CODEC_NONE:
		*rate = 2000e6;
		*ratio = 1.0;
		break;
	case CAIRN_CODEC_ZSTD:
		*rate = 1000e6;
		*ratio = 0.30;
		break;
	case CAIRN_CODEC_GZIP:
		*rate = 350e6;
		*ratio = 0.32;
		break;
	case CAIRN_CODEC_XZ:
		*rate = 40e6;
		*ratio = 0.21;
		break;
	case CAIRN_CODEC_LZIP:
		*rate = 40e6;
		*ratio = 0.21;
		break;
	case CAIRN_CODEC_BZIP2:
		*rate = 30e6;
		*ratio = 0.25;
		break;
	default:
		*rate = 1e6;
		*ratio = 1.0;
		break;
	}
}

int cairn_fetch_pick_url(const struct cairn_narinfo *ni, double net_rate, unsigned cpus)
{
	int best = -1, best_rank = 0;
	double best_cost = 0;
	if (net_rate <= 0)
		net_rate = CAIRN_FETCH_NET_RATE_GUESS;
	if (cpus == 0)
		cpus = 1;
	for (size_t i = 0; i < ni->n_urls && i < (size_t)INT32_MAX; i++) {
		enum cairn_codec_method m;
		const char *c = ni->urls[i].compression;
		if (cairn_codec_method_parse(c, strlen(c), &m, NULL))
			continue;
		double rate, ratio;
		method_model(m, &rate, &ratio);
		double size = ni->urls[i].has_file_size ? (double)ni->urls[i].file_size
							: (double)ni->nar_size * ratio;
		/* Transfer plus unpacking, the cores shared by parallel downloads. */
		double cost = size / net_rate + (double)ni->nar_size / (rate * cpus);
		int rank = method_rank(m);
		if (best < 0 || cost < best_cost * 0.99 ||
		    (cost <= best_cost * 1.01 && rank < best_rank)) {
			best = (int)i;
			best_cost = cost;
			best_rank = rank;
		}
	}
	return best;
}

/* The network rate so far; 0 (unknown) until a MiB has come in. */
static double net_rate(const struct cairn_fetch *f)
{
	if (f->bytes_received < (1u << 20) || f->t_first_dl <= 0)
		return 0;
	double el = now_s() - f->t_first_dl;
	return el > 0.01 ? (double)f->bytes_received / el : 0;
}

static const struct cairn_narinfo_url *choose_url(const struct cairn_fetch *f,
						  const struct cairn_narinfo *ni,
						  enum cairn_codec_method *method)
{
	unsigned cpus = cairn_dl_pool_threads(f->pool);
	int i = cairn_fetch_pick_url(ni, net_rate(f), cpus ? cpus : 1);
	if (i < 0)
		return NULL;
	const char *c = ni->urls[i].compression;
	if (cairn_codec_method_parse(c, strlen(c), method, NULL))
		return NULL;
	return &ni->urls[i];
}

static void settle(struct cairn_fetch *f);

static void dl_bytes(void *ctx, size_t n)
{
	struct item *it = ctx;
	it->dl_bytes += n;
	it->f->bytes_received += n;
}

static void dl_finished(void *ctx, const struct cairn_dl_result *r)
{
	struct item *it = ctx;
	struct cairn_fetch *f = it->f;
	f->downloads_active--;
	if (r->code) {
		if (r->reason[0])
			reason_add(it, "%s", r->reason);
		if (it->n_pending > 0 && r->code != CAIRN_EIO && r->code != CAIRN_ENOMEM) {
			/* A server that has not answered yet may still have it. */
			free(it->wait_headline);
			it->wait_headline = strdup(r->headline);
			it->wait_code = r->code;
			cairn_dl_free(it->dl);
			it->dl = NULL;
			it->st = I_WAITING;
			return;
		}
		item_fail(it, r->code, "%s", r->headline);
		return;
	}
	it->server_used = f->servers[it->srcs[r->source]].url;
	it->compression = cairn_codec_method_name(r->method);
	it->st = I_VERIFIED;
	f->n_verified++;
}

/* Server si's narinfo as a source of the bytes; non-zero when unreadable. */
static int dl_source(struct item *it, size_t si, struct cairn_dl_source *s)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_narinfo *ni = it->ans[si].ni;
	memset(s, 0, sizeof(*s));
	const struct cairn_narinfo_url *u = choose_url(f, ni, &s->method);
	if (!u) {
		reason_add(it, "%s: no compression cairn can read", f->servers[si].url);
		return -1;
	}
	s->label = f->servers[si].url;
	s->server = strstr(u->url, "://") ? NULL : f->servers[si].hs;
	s->url = u->url;
	s->has_file_hash = u->has_file_hash;
	s->file_hash = u->file_hash;
	s->has_file_size = u->has_file_size;
	s->file_size = u->file_size;
	return 0;
}

static void add_dl_source(struct item *it, size_t si)
{
	struct cairn_dl_source s;
	if (dl_source(it, si, &s) == 0 && cairn_dl_add_source(it->dl, &s) == 0)
		return;
	it->n_srcs--; /* not a source after all */
}

/* The expected NAR, its sources (the accepted group's servers, in order)
 * and a sink under the root or in nar_dir; then the engine. */
static void download_start(struct item *it)
{
	struct cairn_fetch *f = it->f;
	struct cairn_dl_source src[CAIRN_DL_MAX_SOURCES];
	size_t n = 0;
	struct cairn_error e;
	cairn_error_init(&e);
	/* The sources the engine gets, in order; srcs is made to match them,
	 * so that the engine's source index names the server. */
	size_t m = 0;
	for (size_t k = it->cur_src; k < it->n_srcs && n < CAIRN_DL_MAX_SOURCES; k++) {
		size_t si = it->srcs[k];
		if (dl_source(it, si, &src[n]))
			continue;
		it->srcs[m++] = si;
		n++;
	}
	it->n_srcs = m;
	it->cur_src = 0;
	if (!n) {
		f->downloads_active--;
		item_fail(it, CAIRN_ENET, "no server could send the NAR");
		return;
	}
	char target[4096];
	int rc = store_ready(f, &e);
	if (!rc && target_path(it, target, sizeof(target)))
		rc = cairn_error_set(&e, CAIRN_ELIMIT, "target path too long");
	struct cairn_dl_sink sink;
	if (!rc && f->cfg.nar_dir) {
		rc = cairn_dl_file_new(&it->file, target, &e);
		if (!rc)
			cairn_dl_file_sink(it->file, &sink);
	} else if (!rc) {
		/* Into a store: its metadata, and on disk before it is registered. */
		unsigned flags = f->cfg.db ? CAIRN_NAR_RESTORE_SYNC | CAIRN_NAR_RESTORE_CANONICAL
					   : 0;
		rc = cairn_dl_tree_new(&it->tree, target, flags, &e);
		if (!rc)
			cairn_dl_tree_sink(it->tree, &sink);
	}
	struct cairn_dl_expect ex = {.nar_hash = it->nar_hash, .nar_size = it->nar_size,
				     .by_ca = it->by_ca, .ca = it->ca, .sp = it->sp};
	struct cairn_dl_config dc = {.http = f->http,
				     .pool = f->pool,
				     .max_resumes = f->cfg.max_resumes,
				     .on_done = dl_finished,
				     .on_bytes = dl_bytes,
				     .ctx = it};
	if (f->t_first_dl <= 0)
		f->t_first_dl = now_s();
	if (!rc)
		rc = cairn_dl_start(&it->dl, &dc, &ex, src, n, &sink, &e);
	if (rc) {
		f->downloads_active--;
		item_fail(it, rc, "%s", cairn_error_msg(&e));
	}
}

/*
 * The files of an item are there but the store does not know them (a run
 * stopped between placing and registering, or the database refused the
 * write): the tree must be exactly the accepted NAR, and match the CA too
 * when that is what accepted it.  Then its file system is synced (the run
 * that placed it may have stopped before its own syncs), and it is
 * registered as it is.  Runs on the network thread: a recovery, not the
 * usual path.
 */
static int check_in_place(struct item *it, struct cairn_error *e)
{
	struct cairn_fetch *f = it->f;
	char target[4096], dir[4096];
	if (target_path(it, target, sizeof(target)) ||
	    (size_t)snprintf(dir, sizeof(dir), "%s%s", f->cfg.root, f->store_dir) >= sizeof(dir))
		return cairn_error_set(e, CAIRN_ELIMIT, "target path too long");
	struct cairn_dl_expect ex = {.nar_hash = it->nar_hash, .nar_size = it->nar_size,
				     .by_ca = it->by_ca, .ca = it->ca, .sp = it->sp};
	struct cairn_error why;
	cairn_error_init(&why);
	int rc = cairn_dl_check_tree(target, &ex, NULL, &why);
	if (rc)
		return cairn_error_set(e, rc,
				       "'%s' is there but not valid in the store, and it is not "
				       "what was signed (%s): remove it to fetch it again",
				       target, cairn_error_msg(&why));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || syncfs(fd) != 0) {
		rc = cairn_error_errno(e, errno, "cannot sync '%s'", dir);
		if (fd >= 0)
			close(fd);
		return rc;
	}
	close(fd);
	return 0;
}

static bool deps_failed(struct item *it, struct item **which)
{
	for (size_t i = 0; i < it->n_deps; i++)
		if (it->deps[i]->st == I_FINAL && it->deps[i]->status == CAIRN_FETCH_FAILED) {
			*which = it->deps[i];
			return true;
		}
	return false;
}

static size_t deps_unsettled(const struct item *it)
{
	size_t n = 0;
	for (size_t i = 0; i < it->n_deps; i++)
		if (it->deps[i]->st != I_FINAL && it->deps[i]->st != I_VERIFIED &&
		    it->deps[i]->st != I_PLACED)
			n++;
	return n;
}

/* A placed .drv: the outputs the store records for it, read back from the
 * file (as Nix and Guix do when they register one). */
static int read_drv_outputs(struct item *it, struct cairn_error *e)
{
	size_t n = strlen(it->base);
	if (n < 4 || strcmp(it->base + n - 4, ".drv"))
		return 0;
	char target[4096];
	if (target_path(it, target, sizeof(target)))
		return cairn_error_set(e, CAIRN_ELIMIT, "target path too long");
	int fd = open(target, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(e, errno, "cannot read '%s'", target);
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_STOREDB_DRV_MAX);
	char chunk[65536];
	int rc = 0;
	for (;;) {
		ssize_t got = read(fd, chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = cairn_error_errno(e, errno, "cannot read '%s'", target);
			break;
		}
		if (got == 0)
			break;
		if (cairn_buf_append(&text, chunk, (size_t)got)) {
			rc = cairn_error_set(e, CAIRN_ELIMIT, "'%s' is too large for a derivation",
					     target);
			break;
		}
	}
	close(fd);
	if (!rc)
		rc = cairn_storedb_drv_parse(text.data ? text.data : "", text.len, it->f->store_dir,
					     &it->outputs, &it->n_outputs, e);
	cairn_buf_release(&text);
	return rc;
}

/* The files are in place (and synced): registration comes with the batch. */
static void placed(struct item *it)
{
	struct cairn_fetch *f = it->f;
	struct cairn_error e;
	cairn_error_init(&e);
	if (!f->cfg.db) {
		item_finish(it, CAIRN_FETCH_FETCHED, 0);
		return;
	}
	int rc = read_drv_outputs(it, &e);
	if (rc) {
		item_fail(it, rc, "in place but not registered: %s", cairn_error_msg(&e));
		return;
	}
	if (f->n_batch == f->cap_batch) {
		size_t nc = f->cap_batch ? f->cap_batch * 2 : 64;
		struct item **nb = realloc(f->batch, nc * sizeof(*nb));
		if (!nb) {
			item_fail(it, CAIRN_ENOMEM, "out of memory");
			return;
		}
		f->batch = nb;
		f->cap_batch = nc;
	}
	f->batch[f->n_batch++] = it;
	it->st = I_PLACED; /* still counted in n_verified */
}

/* Someone else put the target there while we downloaded. */
static void taken(struct item *it)
{
	struct cairn_fetch *f = it->f;
	struct cairn_error e;
	cairn_error_init(&e);
	int v = f->cfg.db ? in_target(f, &it->sp, &e) : 1;
	if (v < 0) {
		item_fail(it, v, "%s", cairn_error_msg(&e));
		db_trouble(f, v, &e);
	} else if (v) {
		item_finish(it, CAIRN_FETCH_PRESENT, 0);
	} else if ((v = check_in_place(it, &e)) != 0) {
		item_fail(it, v, "%s", cairn_error_msg(&e));
	} else {
		it->in_place = true;
		placed(it);
	}
}

static void commit(struct item *it)
{
	struct cairn_error e;
	cairn_error_init(&e);
	int rc = 0;
	if (it->in_place) {
		placed(it);
		return;
	}
	if (it->tree) {
		rc = cairn_dl_tree_commit(it->tree, &e);
		if (rc == CAIRN_EEXIST) {
			taken(it);
			return;
		}
	} else if (it->file) {
		rc = cairn_dl_file_commit(it->file, &e);
	}
	if (rc)
		item_fail(it, rc, "%s", cairn_error_msg(&e));
	else
		placed(it);
}

/*
 * Register the items placed since the last flush, in one transaction, in
 * the order they were placed: an item is placed only after its references
 * are placed or valid, so each one's references come before it.  Their
 * files were synced before they were renamed into place.
 */
static bool flush_batch(struct cairn_fetch *f)
{
	if (!f->n_batch)
		return true;
	size_t n = f->n_batch;
	struct cairn_storedb_newpath *np = calloc(n, sizeof(*np));
	struct cairn_error e;
	cairn_error_init(&e);
	int rc;
	if (!np) {
		rc = cairn_error_set(&e, CAIRN_ENOMEM, "out of memory");
	} else {
		for (size_t i = 0; i < n; i++) {
			const struct item *it = f->batch[i];
			np[i].path = it->path;
			np[i].nar_hash = it->nar_hash;
			np[i].nar_size = it->nar_size;
			np[i].deriver = it->deriver;
			np[i].refs = (const char *const *)it->refs;
			np[i].nrefs = it->n_refs;
			np[i].sigs = it->sigs;
			np[i].nsigs = it->n_sigs;
			np[i].ca = it->ca_text;
			np[i].outputs = it->outputs;
			np[i].noutputs = it->n_outputs;
		}
		rc = cairn_storedb_writer_register(f->cfg.db, np, n, &e);
	}
	free(np);
	f->n_batch = 0;
	for (size_t i = 0; i < n; i++) {
		struct item *it = f->batch[i];
		if (rc >= 0) {
			it->registered = true;
			item_finish(it, CAIRN_FETCH_FETCHED, 0);
		} else {
			item_fail(it, rc, "in place but not registered: %s", cairn_error_msg(&e));
		}
	}
	if (rc < 0)
		db_trouble(f, rc, &e);
	return rc >= 0;
}

/* Commit what can be committed, fail what depends on failures. */
static void settle_once(struct cairn_fetch *f)
{
	bool changed = true;
	while (changed && (f->n_ready || f->n_verified)) {
		changed = false;
		for (size_t i = 0; i < f->n_items; i++) {
			struct item *it = f->items[i];
			struct item *bad;
			if (it->st != I_VERIFIED && it->st != I_READY)
				continue;
			if (deps_failed(it, &bad)) {
				item_fail(it, CAIRN_ENOENT, "reference %s failed", bad->path);
				changed = true;
				continue;
			}
			if (it->st != I_VERIFIED)
				continue;
			/* A placed reference is registered before it, in the same
			 * transaction. */
			bool ready = true;
			for (size_t d = 0; d < it->n_deps && ready; d++)
				ready = it->deps[d]->st == I_FINAL || it->deps[d]->st == I_PLACED;
			if (ready) {
				commit(it);
				changed = true;
			}
		}
	}
}

/* Commit what can be committed and register it; fail what depends on
 * failures (a failed registration included). */
static void settle(struct cairn_fetch *f)
{
	settle_once(f);
	if (!flush_batch(f))
		settle_once(f);
}

/*
 * Store paths cannot refer to each other in a cycle (a path's hash covers
 * its references), so narinfos that claim one are lying; their items would
 * wait for each other for ever.  Fail every item on such a cycle, naming
 * it; settle() then fails what refers to them.  Returns how many failed.
 */
static size_t fail_cycles(struct cairn_fetch *f)
{
	size_t n = f->n_items, failed = 0;
	unsigned char *color = calloc(n, 1); /* 0 new, 1 on the path, 2 done */
	size_t *stack = calloc(n, sizeof(*stack)), *edge = calloc(n, sizeof(*edge));
	if (!color || !stack || !edge)
		goto out;
	for (size_t root = 0; root < n; root++) {
		if (color[root] || f->items[root]->st == I_FINAL)
			continue;
		size_t depth = 0;
		stack[depth] = root;
		edge[depth++] = 0;
		color[root] = 1;
		while (depth) {
			struct item *it = f->items[stack[depth - 1]];
			size_t e = edge[depth - 1]++;
			if (e >= it->n_deps) {
				color[it->index] = 2;
				depth--;
				continue;
			}
			struct item *d = it->deps[e];
			if (d->st == I_FINAL || color[d->index] == 2)
				continue;
			if (color[d->index] == 0) {
				color[d->index] = 1;
				stack[depth] = d->index;
				edge[depth++] = 0;
				continue;
			}
			/* A back edge: the cycle is the path from d to the top. */
			size_t from = depth;
			while (from && stack[from - 1] != d->index)
				from--;
			struct cairn_buf b = CAIRN_BUF_INIT(4096);
			for (size_t k = from ? from - 1 : 0; k < depth; k++)
				cairn_buf_printf(&b, "%s -> ", f->items[stack[k]]->base);
			cairn_buf_puts(&b, d->base);
			for (size_t k = from ? from - 1 : 0; k < depth; k++) {
				struct item *c = f->items[stack[k]];
				if (c->st == I_FINAL)
					continue;
				item_fail(c, CAIRN_EFORMAT,
					  "narinfos claim a reference cycle, which no store "
					  "can hold: %s%s",
					  b.data ? b.data : "", b.len >= b.max ? "..." : "");
				failed++;
			}
			cairn_buf_release(&b);
		}
	}
out:
	free(color);
	free(stack);
	free(edge);
	return failed;
}

/* Start queued queries and downloads while there is room. */
static void pump(struct cairn_fetch *f)
{
	if (f->survey) {
		struct cairn_error e;
		cairn_error_init(&e);
		if (cairn_survey_start(f->survey, &e))
			fatal(f, cairn_survey_failed(f->survey, &e), cairn_error_msg(&e));
		if (cairn_survey_pending(f->survey) == 0)
			cairn_survey_flush(f->survey);
	}
	while (f->downloads_active < f->cfg.jobs && f->n_ready) {
		/* Leaves first: an item whose references are settled commits at
		 * once instead of holding its temporary tree open. */
		struct item *best = NULL;
		size_t best_n = (size_t)-1;
		for (size_t i = 0; i < f->n_items && best_n; i++) {
			struct item *it = f->items[i];
			if (it->st != I_READY)
				continue;
			size_t n = deps_unsettled(it);
			if (n < best_n) {
				best = it;
				best_n = n;
			}
		}
		if (!best)
			break;
		best->st = I_DOWNLOAD;
		f->n_ready--;
		f->downloads_active++;
		download_start(best);
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
		sc.now = wall_now();
		sc.with_info = true;
		sc.store_dir = f->store_dir;
		int rc = cairn_survey_new(&f->survey, f->http, hs, f->n_servers, &sc, on_answer, f,
					  err);
		free(hs);
		if (rc)
			return rc;
	}
	size_t n = f->n_items;
	for (size_t i = 0; i < n; i++)
		item_start(f->items[i]);
	settle(f);
	pump(f);
	return 0;
}

int cairn_fetch_step(struct cairn_fetch *f, int timeout_ms, struct cairn_error *err)
{
	bool working = cairn_dl_pool_pending(f->pool) > 0;
	int wait_ms = timeout_ms > 0 ? timeout_ms : 0;
	if (working && timeout_ms > WORKER_POLL_MS)
		timeout_ms = WORKER_POLL_MS;
	int rc = cairn_http_step(f->http, timeout_ms, err);
	if (rc < 0)
		return rc;
	if (f->fatal)
		return cairn_error_set(err, f->fatal, "%s", f->fatal_err.msg);
	/* Nothing on the network (the client returns at once then): sleep
	 * until a worker posts a verdict instead of spinning. */
	if (rc == 0 && working)
		cairn_dl_pool_wait(f->pool, wait_ms);
	cairn_dl_pool_drain(f->pool);
	settle(f);
	pump(f);
	if (f->n_done == f->n_items && f->started) {
		/* Every item is decided: answers still to come (a silent
		 * server's) change nothing, and nobody waits for them. */
		if (f->survey)
			cairn_survey_flush(f->survey);
		return 0;
	}
	working = cairn_dl_pool_pending(f->pool) > 0 ||
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
			item_start(it);
			left++;
			continue;
		}
		left++;
	}
	if (left) {
		settle(f);
		pump(f);
		int again = cairn_http_step(f->http, 0, err);
		if (again < 0)
			return again;
		/* What that step finished may let items move on. */
		settle(f);
		pump(f);
		if (again == 0 && f->downloads_active == 0 && f->n_ready == 0 &&
		    cairn_dl_pool_pending(f->pool) == 0 &&
		    !(f->survey && cairn_survey_pending(f->survey) > 0)) {
			if (fail_cycles(f)) {
				settle(f);
				return 1;
			}
			for (size_t i = 0; i < f->n_items; i++)
				if (f->items[i]->st != I_FINAL && f->items[i]->st != I_NEW)
					item_fail(f->items[i], CAIRN_EINVAL,
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
