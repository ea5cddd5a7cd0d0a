/*
 * challenge.c - compare servers and the local store about store items
 * (include/cairn/challenge.h).  The downloads for diffs go through the
 * download engine (download.h), so they fail over, resume and check
 * FileHash like every other download.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/challenge.h"
#include "cairn/fetch.h"
#include "cairn/nar.h"
#include "cairn/storedb.h"
#include "cairn/storeloc.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "download.h"
#include "cairn/banned.h"

struct side_run;

struct cairn_challenge {
	struct cairn_challenge_config cfg;
	struct cairn_survey *survey;
	struct cairn_challenge_item *items;
	size_t n_items, cap_items;
	const char **paths; /* without servers: the paths as given */
	struct cairn_storedb *db;
	/* diff downloads: queued, started CAIRN_CHALLENGE_DOWNLOADS_MAX at a time */
	struct side_run **queue;
	size_t n_queue, next_queued, active;
};

/* A side being fetched. */
struct side_run {
	struct cairn_challenge *c;
	struct cairn_challenge_item *it;
	struct cairn_challenge_side *sd;
	size_t srcs[CAIRN_DL_MAX_SOURCES]; /* server indexes of the engine's sources */
	struct cairn_dl *dl;
	char last[CAIRN_ERROR_MSG_MAX];
};

static const char *const verdict_names[] = {"identical", "differs", "inconclusive"};

const char *cairn_challenge_verdict_name(enum cairn_challenge_verdict v)
{
	return (unsigned)v < 3 ? verdict_names[v] : "?";
}

/* ---- phase 1: the survey ---------------------------------------------- */

static int ensure_items(struct cairn_challenge *c, size_t n)
{
	if (n <= c->n_items)
		return 0;
	if (n > c->cap_items) {
		size_t cap = c->cap_items ? c->cap_items : 64;
		while (cap < n)
			cap *= 2;
		struct cairn_challenge_item *v = realloc(c->items, cap * sizeof(*v));
		if (!v)
			return CAIRN_ENOMEM;
		c->items = v;
		c->cap_items = cap;
	}
	size_t ns = c->cfg.n_servers;
	for (size_t i = c->n_items; i < n; i++) {
		struct cairn_challenge_item *it = &c->items[i];
		memset(it, 0, sizeof(*it));
		it->ans = calloc(ns ? ns : 1, sizeof(*it->ans));
		it->group = calloc(ns + 1, sizeof(*it->group));
		if (!it->ans || !it->group) {
			free(it->ans);
			free(it->group);
			return CAIRN_ENOMEM;
		}
		for (size_t s = 0; s < ns; s++)
			it->ans[s].outcome = -1;
		c->n_items = i + 1;
	}
	return 0;
}

static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct cairn_challenge *c = ctx;
	if (ensure_items(c, r->path_index + 1))
		return CAIRN_ENOMEM;
	struct cairn_challenge_item *it = &c->items[r->path_index];
	struct cairn_challenge_answer *a = &it->ans[r->server_index];
	it->path = r->store_path;
	a->outcome = (int)r->outcome;
	if (r->outcome == CAIRN_SURVEY_PRESENT) {
		a->ni = r->narinfo;
		r->narinfo = NULL;
	} else if (r->outcome != CAIRN_SURVEY_ABSENT) {
		a->reason = strdup(cairn_error_msg(&r->err));
		if (!a->reason)
			return CAIRN_ENOMEM;
	}
	return 0;
}

/* ---- phase 2: the local store ----------------------------------------- */

static int path_exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

/* ROOT joined with an absolute store path, without doubling the '/'. */
static char *local_file(const char *root, const char *path)
{
	size_t rl = strlen(root);
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	size_t n = rl + strlen(path) + 1;
	char *out = malloc(n);
	if (out)
		snprintf(out, n, "%.*s%s", (int)rl, root, path);
	return out;
}

static int open_db(struct cairn_challenge *c, const char *store_dir, struct cairn_error *err)
{
	struct cairn_storedb_config cfg;
	struct cairn_storeloc_config lc;
	struct cairn_storeloc loc;
	struct cairn_error e;
	int rc;
	cairn_error_init(&e);
	cairn_storeloc_config_init(&lc);
	lc.root = c->cfg.root;
	lc.store_dir = store_dir;
	lc.db_path = c->cfg.db_path;
	if ((rc = cairn_storeloc_locate(&loc, &lc, err)))
		return rc;
	if (!c->cfg.db_path && !loc.has_db)
		goto out; /* an unpacked tree: hash it */
	cairn_storedb_config_init(&cfg, loc.kind);
	cfg.db_path = loc.db_path;
	cfg.store_dir = store_dir;
	cfg.flags |= CAIRN_STOREDB_IMMUTABLE_FALLBACK;
	if ((rc = cairn_storedb_open(&c->db, &cfg, &e)))
		cairn_error_set(err, rc, "cannot open the store database '%s': %s", loc.db_path,
				cairn_error_msg(&e));
out:
	cairn_storeloc_release(&loc);
	return rc;
}

static void local_hash(struct cairn_challenge *c, struct cairn_challenge_item *it)
{
	struct cairn_error err;
	cairn_error_init(&err);
	if (c->db) {
		struct cairn_storedb_pathinfo pi;
		memset(&pi, 0, sizeof(pi));
		int rc = cairn_storedb_query_path(c->db, it->path, &pi, &err);
		if (rc == 0) {
			it->local_present = true;
			it->local_hash = pi.nar_hash;
			it->local_size = pi.nar_size;
			cairn_storedb_pathinfo_release(&pi);
		} else if (rc != CAIRN_ENOENT) {
			it->local_err = strdup(cairn_error_msg(&err));
		}
		return;
	}
	char *file = local_file(c->cfg.root, it->path);
	if (!file) {
		it->local_err = strdup("out of memory");
		return;
	}
	if (path_exists(file)) {
		if (cairn_nar_hash_path(file, &it->local_hash, &it->local_size, &err) == 0)
			it->local_present = true;
		else
			it->local_err = strdup(cairn_error_msg(&err));
	}
	free(file);
}

/* ---- phase 3: verdicts ------------------------------------------------- */

static const struct cairn_hash *source_hash(const struct cairn_challenge *c,
					    const struct cairn_challenge_item *it, size_t src)
{
	if (src == c->cfg.n_servers)
		return it->local_present ? &it->local_hash : NULL;
	const struct cairn_challenge_answer *a = &it->ans[src];
	return a->outcome == CAIRN_SURVEY_PRESENT ? &a->ni->nar_hash : NULL;
}

static void judge(const struct cairn_challenge *c, struct cairn_challenge_item *it)
{
	const struct cairn_hash *reps[CAIRN_SURVEY_MAX_SERVERS + 1];
	int n_sources = 0;
	it->n_groups = 0;
	for (size_t s = 0; s <= c->cfg.n_servers; s++) {
		const struct cairn_hash *h = source_hash(c, it, s);
		it->group[s] = -1;
		if (!h)
			continue;
		n_sources++;
		int g;
		for (g = 0; g < it->n_groups; g++)
			if (cairn_hash_equal(reps[g], h))
				break;
		if (g == it->n_groups)
			reps[it->n_groups++] = h;
		it->group[s] = g;
	}
	if (n_sources < 2)
		it->verdict = CAIRN_CHALLENGE_INCONCLUSIVE;
	else
		it->verdict = it->n_groups == 1 ? CAIRN_CHALLENGE_IDENTICAL : CAIRN_CHALLENGE_DIFFERS;
}

/* ---- phase 4: diffs ---------------------------------------------------- */

const char *cairn_challenge_source(const struct cairn_challenge *c, size_t src)
{
	return src >= c->cfg.n_servers ? CAIRN_CHALLENGE_LOCAL
				       : cairn_http_server_url(c->cfg.servers[src]);
}

static void side_note(struct cairn_challenge_side *sd, const char *src, const char *msg)
{
	size_t len = strlen(src) + strlen(msg) + 3;
	char *note = malloc(len);
	char **v = realloc(sd->notes, (sd->n_notes + 1) * sizeof(*v));
	if (v)
		sd->notes = v;
	if (!note || !v) {
		free(note);
		return;
	}
	snprintf(note, len, "%s: %s", src, msg);
	sd->notes[sd->n_notes++] = note;
}

/* The restore beside the listing, when the side is to be unpacked. */
static struct cairn_nar_restore *rs(void *ctx)
{
	return ((struct cairn_challenge_side *)ctx)->restore;
}

static void drop_restore(struct cairn_challenge_side *sd)
{
	cairn_nar_restore_free(sd->restore);
	sd->restore = NULL;
}

/* Keep the unpacked tree of a side that is complete, else forget it. */
static void settle_tree(struct cairn_challenge_side *sd)
{
	struct cairn_error e;
	cairn_error_init(&e);
	if (!sd->ok || !sd->restore || cairn_nar_restore_commit(sd->restore, &e) < 0) {
		free(sd->tree);
		sd->tree = NULL;
	}
	drop_restore(sd);
}

static int sink_begin(void *ctx, struct cairn_error *err)
{
	struct cairn_challenge_side *sd = ctx;
	cairn_nar_list_release(&sd->files);
	/* a source that failed over starts again from nothing */
	drop_restore(sd);
	if (sd->tree)
		return cairn_nar_restore_new(sd->tree, &sd->restore, err);
	return 0;
}

static void sink_discard(void *ctx)
{
	struct cairn_challenge_side *sd = ctx;
	cairn_nar_list_release(&sd->files);
	drop_restore(sd);
}

static int list_dir(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_list_callbacks.directory_begin(
	    &((struct cairn_challenge_side *)ctx)->files, n, err);
	if (rc == 0 && rs(ctx))
		rc = cairn_nar_restore_callbacks.directory_begin(rs(ctx), n, err);
	return rc;
}
static int list_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	if (rs(ctx) && cairn_nar_restore_callbacks.directory_end)
		return cairn_nar_restore_callbacks.directory_end(rs(ctx), n, err);
	return 0;
}
static int list_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_list_callbacks.file_begin(&((struct cairn_challenge_side *)ctx)->files,
						      n, err);
	if (rc == 0 && rs(ctx))
		rc = cairn_nar_restore_callbacks.file_begin(rs(ctx), n, err);
	return rc;
}
static int list_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	int rc = cairn_nar_list_callbacks.file_data(&((struct cairn_challenge_side *)ctx)->files,
						     data, len, err);
	if (rc == 0 && rs(ctx))
		rc = cairn_nar_restore_callbacks.file_data(rs(ctx), data, len, err);
	return rc;
}
static int list_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_list_callbacks.file_end(&((struct cairn_challenge_side *)ctx)->files,
						    n, err);
	if (rc == 0 && rs(ctx))
		rc = cairn_nar_restore_callbacks.file_end(rs(ctx), n, err);
	return rc;
}
static int list_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_list_callbacks.symlink(&((struct cairn_challenge_side *)ctx)->files,
						   n, err);
	if (rc == 0 && rs(ctx))
		rc = cairn_nar_restore_callbacks.symlink(rs(ctx), n, err);
	return rc;
}

static const struct cairn_nar_callbacks side_tree = {
    .directory_begin = list_dir,
    .directory_end = list_dir_end,
    .file_begin = list_file_begin,
    .file_data = list_file_data,
    .file_end = list_file_end,
    .symlink = list_symlink,
};

static void side_sink(struct cairn_challenge_side *sd, struct cairn_dl_sink *out)
{
	*out = (struct cairn_dl_sink){
	    .begin = sink_begin, .tree = &side_tree, .discard = sink_discard, .ctx = sd};
}

/* The local tree, when the group has it: the last resort. */
static void local_side(struct cairn_challenge *c, struct cairn_challenge_item *it,
		       struct cairn_challenge_side *sd)
{
	char *file = local_file(c->cfg.root, it->path);
	if (!file) {
		cairn_error_set(&sd->err, CAIRN_ENOMEM, "out of memory");
		return;
	}
	struct cairn_dl_expect ex = {.nar_hash = it->local_hash, .nar_size = it->local_size};
	struct cairn_dl_sink sink;
	side_sink(sd, &sink);
	cairn_nar_list_release(&sd->files);
	sd->src = c->cfg.n_servers;
	cairn_error_init(&sd->err);
	if (cairn_dl_check_tree(file, &ex, &sink, &sd->err) == 0)
		sd->ok = true;
	else
		cairn_nar_list_release(&sd->files);
	settle_tree(sd);
	free(file);
}

static void pump(struct cairn_challenge *c);

static void run_failed_source(void *ctx, size_t source, int code, const char *why)
{
	struct side_run *r = ctx;
	(void)code;
	side_note(r->sd, cairn_challenge_source(r->c, r->srcs[source]), why);
	snprintf(r->last, sizeof(r->last), "%s: %s", cairn_challenge_source(r->c, r->srcs[source]),
		 why);
}

static void run_done(void *ctx, const struct cairn_dl_result *res)
{
	struct side_run *r = ctx;
	struct cairn_challenge *c = r->c;
	struct cairn_challenge_side *sd = r->sd;
	c->active--;
	if (!res->code) {
		sd->ok = true;
		sd->src = r->srcs[res->source];
		settle_tree(sd);
	} else if (c->cfg.root && r->it->group[c->cfg.n_servers] == sd->group) {
		local_side(c, r->it, sd);
	} else {
		sd->src = r->srcs[res->source];
		cairn_error_set(&sd->err, res->code, "%s", r->last[0] ? r->last : res->headline);
		/* the last failure is the error, not also a note */
		if (sd->n_notes)
			free(sd->notes[--sd->n_notes]);
		settle_tree(sd);
	}
	/* Freed once the client lets go: cairn_challenge_free. */
	pump(c);
}

static void side_start(struct cairn_challenge *c, struct side_run *r)
{
	struct cairn_challenge_item *it = r->it;
	struct cairn_challenge_side *sd = r->sd;
	struct cairn_dl_source src[CAIRN_DL_MAX_SOURCES];
	size_t n = 0;
	const struct cairn_narinfo *first = NULL;
	for (size_t s = 0; s < c->cfg.n_servers && n < CAIRN_DL_MAX_SOURCES; s++) {
		if (it->group[s] != sd->group)
			continue;
		const struct cairn_narinfo *ni = it->ans[s].ni;
		int u = cairn_fetch_pick_url(ni, 0, NULL, 1, NULL);
		if (u < 0) {
			side_note(sd, cairn_challenge_source(c, s), "no compression cairn can read");
			continue;
		}
		const struct cairn_narinfo_url *url = &ni->urls[u];
		struct cairn_dl_source *x = &src[n];
		memset(x, 0, sizeof(*x));
		cairn_codec_method_parse(url->compression, strlen(url->compression), &x->method,
					 NULL);
		x->label = cairn_challenge_source(c, s);
		x->server = strstr(url->url, "://") ? NULL : c->cfg.servers[s];
		x->url = url->url;
		x->has_file_hash = url->has_file_hash;
		x->file_hash = url->file_hash;
		x->has_file_size = url->has_file_size;
		x->file_size = url->file_size;
		r->srcs[n++] = s;
		if (!first)
			first = ni;
	}
	if (!n) {
		if (c->cfg.root && it->group[c->cfg.n_servers] == sd->group) {
			local_side(c, it, sd);
		} else {
			cairn_error_set(&sd->err, CAIRN_ENET, "no server of this group could be asked");
			settle_tree(sd);
		}
		return;
	}
	/* What the group announced: its NarHash, and the first server's
	 * NarSize (a server whose NarSize differs fails the size check). */
	struct cairn_dl_expect ex = {.nar_hash = first->nar_hash, .nar_size = first->nar_size};
	struct cairn_dl_sink sink;
	side_sink(sd, &sink);
	struct cairn_dl_config dc = {.http = c->cfg.http,
				     .on_done = run_done,
				     .on_source_failed = run_failed_source,
				     .ctx = r};
	struct cairn_error e;
	cairn_error_init(&e);
	c->active++;
	if (cairn_dl_start(&r->dl, &dc, &ex, src, n, &sink, &e)) {
		c->active--;
		sd->err = e;
		settle_tree(sd);
	}
}

static void pump(struct cairn_challenge *c)
{
	while (c->active < CAIRN_CHALLENGE_DOWNLOADS_MAX && c->next_queued < c->n_queue)
		side_start(c, c->queue[c->next_queued++]);
}

/* The first source of each group: a server when one has it, else local. */
static size_t group_rep(const struct cairn_challenge *c, const struct cairn_challenge_item *it,
			int g)
{
	for (size_t s = 0; s <= c->cfg.n_servers; s++)
		if (it->group[s] == g)
			return s;
	return c->cfg.n_servers;
}

/* The NarSize a group announced. */
static uint64_t group_size(const struct cairn_challenge *c, const struct cairn_challenge_item *it,
			   int g)
{
	for (size_t s = 0; s < c->cfg.n_servers; s++)
		if (it->group[s] == g && it->ans[s].ni)
			return it->ans[s].ni->nar_size;
	return it->local_size;
}

static int run_diffs(struct cairn_challenge *c, struct cairn_error *err)
{
	size_t n_sides = 0;
	for (size_t i = 0; i < c->n_items; i++)
		if (c->items[i].verdict == CAIRN_CHALLENGE_DIFFERS)
			n_sides += (size_t)c->items[i].n_groups;
	c->queue = calloc(n_sides ? n_sides : 1, sizeof(*c->queue));
	if (!c->queue)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->n_items; i++) {
		struct cairn_challenge_item *it = &c->items[i];
		if (it->verdict != CAIRN_CHALLENGE_DIFFERS)
			continue;
		it->sides = calloc((size_t)it->n_groups, sizeof(*it->sides));
		if (!it->sides)
			return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		for (int g = 0; g < it->n_groups; g++) {
			struct cairn_challenge_side *sd = &it->sides[g];
			sd->group = g;
			sd->src = group_rep(c, it, g);
			if (c->cfg.unpack_dir &&
			    (!c->cfg.unpack_max || group_size(c, it, g) <= c->cfg.unpack_max)) {
				size_t tl = strlen(c->cfg.unpack_dir) + 48;
				if (!(sd->tree = malloc(tl)))
					return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
				snprintf(sd->tree, tl, "%s/%zu.%d", c->cfg.unpack_dir, i, g);
			}
			if (sd->src == c->cfg.n_servers)
				continue; /* read below, while the downloads run */
			struct side_run *r = calloc(1, sizeof(*r));
			if (!r)
				return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
			r->c = c;
			r->it = it;
			r->sd = sd;
			c->queue[c->n_queue++] = r;
		}
	}
	pump(c);
	for (size_t i = 0; i < c->n_items; i++) {
		struct cairn_challenge_item *it = &c->items[i];
		for (int g = 0; it->sides && g < it->n_groups; g++)
			if (it->sides[g].src == c->cfg.n_servers)
				local_side(c, it, &it->sides[g]);
	}
	int rc = cairn_http_run(c->cfg.http, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < c->n_items; i++) {
		struct cairn_challenge_item *it = &c->items[i];
		if (!it->sides)
			continue;
		it->changes = calloc((size_t)it->n_groups, sizeof(*it->changes));
		it->n_changes = calloc((size_t)it->n_groups, sizeof(*it->n_changes));
		if (!it->changes || !it->n_changes)
			return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		for (int g = 0; g < it->n_groups; g++)
			if (it->sides[g].ok)
				cairn_nar_list_sort(&it->sides[g].files);
		if (!it->sides[0].ok)
			continue;
		for (int g = 1; g < it->n_groups; g++) {
			if (!it->sides[g].ok)
				continue;
			if (cairn_nar_diff(&it->sides[0].files, &it->sides[g].files,
					   &it->changes[g], &it->n_changes[g]))
				return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* ---- the whole ---------------------------------------------------------- */

int cairn_challenge_new(struct cairn_challenge **out, const struct cairn_challenge_config *cfg,
			struct cairn_error *err)
{
	if (!cfg->http || (cfg->n_servers && !cfg->servers))
		return cairn_error_set(err, CAIRN_EINVAL, "challenge: bad arguments");
	if (cfg->n_servers > CAIRN_SURVEY_MAX_SERVERS)
		return cairn_error_set(err, CAIRN_ELIMIT, "challenge: more than %d servers",
				       CAIRN_SURVEY_MAX_SERVERS);
	if (!cfg->n_servers && !cfg->root)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "challenge: no server and no local store to compare");
	struct cairn_challenge *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	c->cfg = *cfg;
	if (cfg->n_servers) {
		struct cairn_survey_config sc;
		cairn_survey_config_init(&sc);
		if (cfg->max_inflight)
			sc.max_inflight = cfg->max_inflight;
		int rc = cairn_survey_new(&c->survey, cfg->http, cfg->servers, cfg->n_servers, &sc,
					  on_result, c, err);
		if (rc) {
			free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

struct cairn_survey *cairn_challenge_survey(struct cairn_challenge *c)
{
	return c->survey;
}

int cairn_challenge_add(struct cairn_challenge *c, const char *path, struct cairn_error *err)
{
	if (c->survey) {
		int rc = cairn_survey_add(c->survey, path, NULL, err);
		return rc < 0 ? rc : 0;
	}
	/* Without servers the paths are only checked and listed here. */
	struct cairn_store_path sp;
	int rc = cairn_store_path_parse(path, strlen(path), NULL, &sp, err);
	if (rc)
		return rc;
	if (ensure_items(c, c->n_items + 1))
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	c->items[c->n_items - 1].path = path;
	return 0;
}

int cairn_challenge_run(struct cairn_challenge *c, struct cairn_error *err)
{
	int rc;
	if (c->survey) {
		if ((rc = cairn_survey_run(c->survey, err)))
			return rc;
		if (ensure_items(c, cairn_survey_count(c->survey)))
			return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		for (size_t i = 0; i < c->n_items; i++)
			c->items[i].path = cairn_survey_path(c->survey, i);
	}
	if (c->cfg.root && c->n_items > 0) {
		struct cairn_store_path sp;
		const char *p0 = c->items[0].path;
		char dir[CAIRN_STORE_PATH_MAX];
		if ((rc = cairn_store_path_parse(p0, strlen(p0), NULL, &sp, err)))
			return rc;
		snprintf(dir, sizeof(dir), "%.*s",
			 (int)(strlen(p0) - cairn_store_path_base_len(&sp) - 1), p0);
		if ((rc = open_db(c, dir, err)))
			return rc;
		for (size_t i = 0; i < c->n_items; i++)
			local_hash(c, &c->items[i]);
	}
	bool any_differs = false;
	for (size_t i = 0; i < c->n_items; i++) {
		judge(c, &c->items[i]);
		any_differs |= c->items[i].verdict == CAIRN_CHALLENGE_DIFFERS;
	}
	if (c->cfg.diff && any_differs)
		return run_diffs(c, err);
	return 0;
}

size_t cairn_challenge_count(const struct cairn_challenge *c)
{
	return c->n_items;
}

const struct cairn_challenge_item *cairn_challenge_item(const struct cairn_challenge *c, size_t i)
{
	return i < c->n_items ? &c->items[i] : NULL;
}

size_t cairn_challenge_n_servers(const struct cairn_challenge *c)
{
	return c->cfg.n_servers;
}

static void item_release(const struct cairn_challenge *c, struct cairn_challenge_item *it)
{
	for (size_t s = 0; it->ans && s < c->cfg.n_servers; s++) {
		cairn_narinfo_free(it->ans[s].ni);
		free(it->ans[s].reason);
	}
	free(it->ans);
	free(it->group);
	free(it->local_err);
	for (int g = 0; it->sides && g < it->n_groups; g++) {
		struct cairn_challenge_side *sd = &it->sides[g];
		cairn_nar_list_release(&sd->files);
		drop_restore(sd);
		free(sd->tree);
		for (size_t k = 0; k < sd->n_notes; k++)
			free(sd->notes[k]);
		free(sd->notes);
	}
	free(it->sides);
	for (int g = 0; it->changes && g < it->n_groups; g++)
		free(it->changes[g]);
	free(it->changes);
	free(it->n_changes);
}

void cairn_challenge_free(struct cairn_challenge *c)
{
	if (!c)
		return;
	/* Downloads still running (a failed run) are dropped by the caller's
	 * client when it is freed; ours go first. */
	for (size_t i = 0; i < c->n_queue; i++) {
		cairn_dl_free(c->queue[i]->dl);
		free(c->queue[i]);
	}
	free(c->queue);
	for (size_t i = 0; i < c->n_items; i++)
		item_release(c, &c->items[i]);
	free(c->items);
	cairn_storedb_free(c->db);
	cairn_survey_free(c->survey);
	free(c);
}
