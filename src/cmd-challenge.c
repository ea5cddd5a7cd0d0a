/*
 * cmd-challenge.c - `cairn challenge`: compare the NarHash that several
 * binary caches, and the local store, give for the same store items.
 *
 * Phase 1 is one survey (survey.h) of every item on every server; phase 2
 * reads local hashes (store database, or hashing an unpacked tree); phase 3
 * groups the sources of each item by NarHash.  With --diff, phase 4
 * downloads one NAR per group of each differing item, all at once, streams
 * each through decompression into the NAR parser (nothing is unpacked),
 * collects its file list, checks it against the NarHash its server
 * announced, and compares the lists.
 *
 * Narinfos are compared whether or not they are signed: the point is to
 * catch servers that disagree, signed or not.  The key names in their
 * signatures are shown as claimed, not verified.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/codec.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/storedb.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cli.h"

const char cmd_challenge_usage[] =
    "usage: cairn challenge --from URL [--from URL...] [--store ROOT [--db FILE]]\n"
    "                       [--diff] [--json] [--jobs N] (STOREPATH... | -)\n"
    "\n"
    "For each store path (arguments, or one a line on stdin with '-'), show the\n"
    "NarHash every cache (--from) announces and, with --store, the hash of the\n"
    "local copy, and say whether they are identical, differ (naming which\n"
    "sources agree with which) or are inconclusive (fewer than two sources).\n"
    "Narinfos are compared whether they are signed or not.\n"
    "\n"
    "  --store ROOT  the local store under ROOT: with a Nix or Guix database\n"
    "                (ROOT/nix/var/nix/db/db.sqlite, ROOT/var/guix/db/db.sqlite,\n"
    "                or --db FILE) its recorded NarHash; otherwise the NAR hash\n"
    "                of the tree at ROOT/<store path>.  '/' is the real store.\n"
    "  --diff        for items that differ, download one NAR of each version\n"
    "                (streamed, never unpacked), check it against its NarHash,\n"
    "                and list the files that differ: added, removed, content,\n"
    "                type, executable bit, symlink target\n"
    "  --json        one JSON object on stdout\n"
    "  --jobs N      narinfo requests in flight at once (default 256)\n"
    "\n"
    "Exit 0 when every item is identical, 2 when any differs, 1 when none\n"
    "differs but some are inconclusive.\n";

#define CHALLENGE_FILES_MAX 1000000u /* files listed per NAR with --diff */
#define CHALLENGE_LOCAL "local"
/* NARs downloaded at once with --diff: each holds a decoder (an xz one may
 * take up to CAIRN_CODEC_XZ_MEMLIMIT), so the count is kept small. */
#define CHALLENGE_DOWNLOADS_MAX 8

enum verdict { V_IDENTICAL, V_DIFFERS, V_INCONCLUSIVE };
static const char *const verdict_names[] = {"identical", "differs", "inconclusive"};

/* What one server said about one item. */
struct answer {
	int outcome; /* enum cairn_survey_outcome, -1 when not answered */
	struct cairn_narinfo *ni;
	char *reason;
};

/* One file of a NAR. */
struct fent {
	char *path;
	enum cairn_nar_type type;
	bool exec;
	uint64_t size;
	uint8_t sha[CAIRN_SHA256_LEN];
	char *target;
};

struct flist {
	struct fent *v;
	size_t n, cap;
};

/* One NAR downloaded (or dumped locally) for --diff. */
struct side {
	struct item *item;
	int group;
	size_t src; /* source index: a server, or n_servers for local */
	/* earlier sources of the group whose nar failed, and why */
	char **notes;
	size_t n_notes;
	struct cairn_hash want;
	uint64_t want_size;
	struct cairn_codec *codec;
	struct cairn_nar_parser *parser;
	struct cairn_sha256 fsha; /* the current file's contents */
	bool fsha_live;
	struct flist files;
	bool done, ok;
	struct cairn_error err;
};

struct fchange {
	const struct fent *a, *b; /* either may be NULL (added/removed) */
	const char *kind;
};

struct item {
	const char *path; /* borrowed from the survey */
	struct answer *ans;
	bool local_present;
	struct cairn_hash local_hash;
	char *local_err;
	enum verdict verdict;
	int *group; /* per source (n_servers + 1): group number, -1 for none */
	int n_groups;
	struct side *sides; /* n_groups, with --diff and a difference */
	/* per group k >= 1: changes between group 0 and group k */
	struct fchange **changes;
	size_t *n_changes;
};

struct challenge {
	size_t n_servers;
	struct cairn_http_server **servers;
	struct item *items;
	size_t n_items, cap_items;
	const char *root;
	struct cairn_storedb *db;
	/* --diff downloads: queued sides, started CHALLENGE_DOWNLOADS_MAX at a
	 * time as earlier ones finish */
	struct cairn_http *h;
	struct side **queue;
	size_t n_queue, next_queued, active;
};

/* ---- phase 1: the survey ---------------------------------------------- */

static int ensure_items(struct challenge *c, size_t n)
{
	if (n <= c->n_items)
		return 0;
	if (n > c->cap_items) {
		size_t cap = c->cap_items ? c->cap_items : 64;
		while (cap < n)
			cap *= 2;
		struct item *v = realloc(c->items, cap * sizeof(*v));
		if (!v)
			return CAIRN_ENOMEM;
		c->items = v;
		c->cap_items = cap;
	}
	for (size_t i = c->n_items; i < n; i++) {
		struct item *it = &c->items[i];
		memset(it, 0, sizeof(*it));
		it->ans = calloc(c->n_servers ? c->n_servers : 1, sizeof(*it->ans));
		it->group = calloc(c->n_servers + 1, sizeof(*it->group));
		if (!it->ans || !it->group) {
			free(it->ans);
			free(it->group);
			return CAIRN_ENOMEM;
		}
		for (size_t s = 0; s < c->n_servers; s++)
			it->ans[s].outcome = -1;
		c->n_items = i + 1;
	}
	return 0;
}

static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct challenge *c = ctx;
	if (ensure_items(c, r->path_index + 1))
		return CAIRN_ENOMEM;
	struct item *it = &c->items[r->path_index];
	struct answer *a = &it->ans[r->server_index];
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

static int open_db(struct challenge *c, const char *db_path, const char *store_dir)
{
	struct cairn_storedb_config cfg;
	enum cairn_storedb_kind kind = CAIRN_STOREDB_NIX;
	char *nixdb = local_file(c->root, "/nix/var/nix/db/db.sqlite");
	char *guixdb = local_file(c->root, "/var/guix/db/db.sqlite");
	char *chosen = NULL;
	struct cairn_error err;
	int ret = EXIT_OK;
	cairn_error_init(&err);
	if (!nixdb || !guixdb) {
		cli_error("out of memory");
		ret = EXIT_FAIL;
		goto out;
	}
	if (db_path) {
		chosen = (char *)db_path;
	} else if (path_exists(nixdb)) {
		chosen = nixdb;
	} else if (path_exists(guixdb)) {
		chosen = guixdb;
		kind = CAIRN_STOREDB_GUIX;
	} else {
		goto out; /* an unpacked tree: hash it */
	}
	cairn_storedb_config_init(&cfg, kind);
	cfg.db_path = chosen;
	cfg.store_dir = store_dir;
	cfg.flags |= CAIRN_STOREDB_IMMUTABLE_FALLBACK;
	if (cairn_storedb_open(&c->db, &cfg, &err)) {
		cli_error("cannot open the store database '%s': %s", chosen, cairn_error_msg(&err));
		ret = EXIT_FAIL;
	}
out:
	free(nixdb);
	free(guixdb);
	return ret;
}

static void local_hash(struct challenge *c, struct item *it)
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
			cairn_storedb_pathinfo_release(&pi);
		} else if (rc != CAIRN_ENOENT) {
			it->local_err = strdup(cairn_error_msg(&err));
		}
		return;
	}
	char *file = local_file(c->root, it->path);
	if (!file) {
		it->local_err = strdup("out of memory");
		return;
	}
	if (path_exists(file)) {
		uint64_t size;
		if (cairn_nar_hash_path(file, &it->local_hash, &size, &err) == 0)
			it->local_present = true;
		else
			it->local_err = strdup(cairn_error_msg(&err));
	}
	free(file);
}

/* ---- phase 3: verdicts ------------------------------------------------- */

static const struct cairn_hash *source_hash(const struct challenge *c, const struct item *it,
					    size_t src)
{
	if (src == c->n_servers)
		return it->local_present ? &it->local_hash : NULL;
	const struct answer *a = &it->ans[src];
	return a->outcome == CAIRN_SURVEY_PRESENT ? &a->ni->nar_hash : NULL;
}

static void judge(const struct challenge *c, struct item *it)
{
	const struct cairn_hash *reps[CAIRN_SURVEY_MAX_SERVERS + 1];
	int n_sources = 0;
	it->n_groups = 0;
	for (size_t s = 0; s <= c->n_servers; s++) {
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
		it->verdict = V_INCONCLUSIVE;
	else
		it->verdict = it->n_groups == 1 ? V_IDENTICAL : V_DIFFERS;
}

/* ---- phase 4: --diff --------------------------------------------------- */

static int flist_add(struct flist *l, const struct cairn_nar_node *n, struct cairn_error *err)
{
	if (l->n >= CHALLENGE_FILES_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "diff: more than %u files in one nar",
				       CHALLENGE_FILES_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct fent *v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct fent *f = &l->v[l->n];
	memset(f, 0, sizeof(*f));
	f->path = strdup(n->path);
	if (!f->path)
		return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
	f->type = n->type;
	f->exec = n->executable;
	f->size = n->size;
	if (n->type == CAIRN_NAR_SYMLINK) {
		f->target = strdup(n->target);
		if (!f->target) {
			free(f->path);
			return cairn_error_set(err, CAIRN_ENOMEM, "diff: out of memory");
		}
	}
	l->n++;
	return 0;
}

static void flist_release(struct flist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].path);
		free(l->v[i].target);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int cb_dir(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct side *sd = ctx;
	return flist_add(&sd->files, n, err);
}

static int cb_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct side *sd = ctx;
	return flist_add(&sd->files, n, err);
}

static int cb_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct side *sd = ctx;
	int rc = flist_add(&sd->files, n, err);
	if (rc)
		return rc;
	if (cairn_sha256_init(&sd->fsha))
		return cairn_error_set(err, CAIRN_ECRYPTO, "diff: cannot start sha-256");
	sd->fsha_live = true;
	return 0;
}

static int cb_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct side *sd = ctx;
	(void)err;
	cairn_sha256_update(&sd->fsha, data, len);
	return 0;
}

static int cb_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct side *sd = ctx;
	(void)n;
	(void)err;
	cairn_sha256_final(&sd->fsha, sd->files.v[sd->files.n - 1].sha);
	sd->fsha_live = false;
	return 0;
}

static const struct cairn_nar_callbacks list_callbacks = {
    .directory_begin = cb_dir,
    .file_begin = cb_file_begin,
    .file_data = cb_file_data,
    .file_end = cb_file_end,
    .symlink = cb_symlink,
};

/* Everything but the notes, ready for another attempt. */
static void side_reset(struct side *sd)
{
	cairn_codec_free(sd->codec);
	sd->codec = NULL;
	cairn_nar_parser_free(sd->parser);
	sd->parser = NULL;
	if (sd->fsha_live)
		cairn_sha256_release(&sd->fsha);
	sd->fsha_live = false;
	flist_release(&sd->files);
	sd->done = sd->ok = false;
	cairn_error_init(&sd->err);
}

static void side_release(struct side *sd)
{
	side_reset(sd);
	for (size_t i = 0; i < sd->n_notes; i++)
		free(sd->notes[i]);
	free(sd->notes);
}

static int side_start(struct side *sd)
{
	struct cairn_nar_limits lim = {.max_nar_size = sd->want_size};
	cairn_error_init(&sd->err);
	sd->parser = cairn_nar_parser_new(&list_callbacks, sd, &lim);
	if (!sd->parser)
		return cairn_error_set(&sd->err, CAIRN_ENOMEM, "diff: out of memory");
	return 0;
}

static void side_fail(struct side *sd, int code, const char *what)
{
	if (!sd->err.code)
		cairn_error_set(&sd->err, code, "%s", what);
	sd->done = true;
	sd->ok = false;
}

/* After all bytes: the parse must be complete and hash to the NarHash. */
static void side_check(struct side *sd, const char *source)
{
	struct cairn_hash got;
	sd->done = true;
	if (cairn_nar_parser_finish(sd->parser, &sd->err))
		return;
	if (cairn_nar_parser_hash(sd->parser, &got)) {
		cairn_error_set(&sd->err, CAIRN_EINVAL, "diff: no nar hash");
		return;
	}
	if (!cairn_hash_equal(&got, &sd->want)) {
		char g[CAIRN_HASH_STR_MAX], w[CAIRN_HASH_STR_MAX];
		cairn_hash_format(&got, CAIRN_HASH_NIX32, g, sizeof(g));
		cairn_hash_format(&sd->want, CAIRN_HASH_NIX32, w, sizeof(w));
		cairn_error_set(&sd->err, CAIRN_EHASH,
				"the nar from %s hashes to %s, not the NarHash %s it announced",
				source, g, w);
		return;
	}
	sd->ok = true;
}

struct dl {
	struct challenge *c;
	struct side *sd;
	const char *source;
};

static void dl_pump(struct challenge *c);
static void side_retry(struct challenge *c, struct side *sd);
static const char *source_name(const struct challenge *c, size_t src);

static int codec_out(void *ctx, const void *data, size_t len)
{
	struct side *sd = ctx;
	return cairn_nar_parser_feed(sd->parser, data, len, &sd->err);
}

static int dl_data(void *ctx, const void *data, size_t len)
{
	struct dl *d = ctx;
	return cairn_codec_write(d->sd->codec, data, len, codec_out, d->sd, &d->sd->err);
}

static void dl_done(void *ctx, const struct cairn_http_result *res)
{
	struct dl *d = ctx;
	struct side *sd = d->sd;
	if (res->outcome != CAIRN_HTTP_OK) {
		if (!sd->err.code)
			sd->err = res->err;
		sd->done = true;
	} else if (cairn_codec_finish(sd->codec, codec_out, sd, &sd->err) == 0) {
		side_check(sd, d->source);
	} else {
		sd->done = true;
	}
	/* the file list is all that is needed from here on */
	cairn_codec_free(sd->codec);
	sd->codec = NULL;
	cairn_nar_parser_free(sd->parser);
	sd->parser = NULL;
	struct challenge *c = d->c;
	free(d);
	c->active--;
	side_retry(c, sd);
	dl_pump(c);
}

/* Start the download of a server's NAR for a side. */
static void side_download(struct challenge *c, struct side *sd, const struct cairn_narinfo *ni)
{
	const char *source = cairn_http_server_url(c->servers[sd->src]);
	if (side_start(sd))
		return side_fail(sd, CAIRN_ENOMEM, "out of memory");
	if (ni->n_urls == 0)
		return side_fail(sd, CAIRN_EFORMAT, "the narinfo has no URL");
	const struct cairn_narinfo_url *u = &ni->urls[0];
	enum cairn_codec_method m;
	if (cairn_codec_method_parse(u->compression, strlen(u->compression), &m, &sd->err) ||
	    cairn_codec_new(&sd->codec, m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
			    sd->want_size, &sd->err)) {
		sd->done = true;
		return;
	}
	struct dl *d = calloc(1, sizeof(*d));
	if (!d)
		return side_fail(sd, CAIRN_ENOMEM, "out of memory");
	d->c = c;
	d->sd = sd;
	d->source = source;
	bool absolute = strstr(u->url, "://") != NULL;
	struct cairn_http_request rq = {
	    .method = CAIRN_HTTP_GET,
	    .server = absolute ? NULL : c->servers[sd->src],
	    .url = u->url,
	    .max_body = u->has_file_size ? u->file_size : CAIRN_HTTP_BODY_MAX,
	    .on_data = dl_data,
	    .on_done = dl_done,
	    .ctx = d,
	};
	if (cairn_http_add(c->h, &rq, &sd->err)) {
		free(d);
		sd->done = true;
		return;
	}
	c->active++;
}

static void dl_pump(struct challenge *c)
{
	while (c->active < CHALLENGE_DOWNLOADS_MAX && c->next_queued < c->n_queue) {
		struct side *sd = c->queue[c->next_queued++];
		side_download(c, sd, sd->item->ans[sd->src].ni);
		side_retry(c, sd);
	}
}

static void local_dump(struct challenge *c, struct item *it, struct side *sd);

/*
 * A side whose nar failed (unreachable, corrupt, not matching its NarHash)
 * moves on to the next source of its group: the other servers that
 * announced the same NarHash, then the local store.  The failure stays as a
 * note, so a lying server is still reported.
 */
static void side_retry(struct challenge *c, struct side *sd)
{
	struct item *it = sd->item;
	while (sd->done && !sd->ok) {
		size_t next = sd->src + 1;
		while (next < c->n_servers && it->group[next] != sd->group)
			next++;
		if (next == c->n_servers && !(c->root && it->group[next] == sd->group))
			return; /* nothing left: the failure is the result */
		const char *src = source_name(c, sd->src);
		const char *msg = cairn_error_msg(&sd->err);
		size_t len = strlen(src) + strlen(msg) + 3;
		char *note = malloc(len);
		char **v = realloc(sd->notes, (sd->n_notes + 1) * sizeof(*v));
		if (!note || !v) {
			free(note);
			if (v)
				sd->notes = v;
			return;
		}
		sd->notes = v;
		/* messages from side_check already name their source */
		if (strstr(msg, src))
			snprintf(note, len, "%s", msg);
		else
			snprintf(note, len, "%s: %s", src, msg);
		sd->notes[sd->n_notes++] = note;
		side_reset(sd);
		sd->src = next;
		if (next == c->n_servers) {
			sd->want = it->local_hash;
			local_dump(c, it, sd);
		} else {
			sd->want = it->ans[next].ni->nar_hash;
			sd->want_size = it->ans[next].ni->nar_size;
			side_download(c, sd, it->ans[next].ni);
		}
	}
}

static int dump_out(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct side *sd = ctx;
	return cairn_nar_parser_feed(sd->parser, data, len, err);
}

static void local_dump(struct challenge *c, struct item *it, struct side *sd)
{
	char *file = local_file(c->root, it->path);
	if (side_start(sd) || !file) {
		free(file);
		return side_fail(sd, CAIRN_ENOMEM, "out of memory");
	}
	if (cairn_nar_dump_path(file, dump_out, sd, &sd->err) == 0)
		side_check(sd, CHALLENGE_LOCAL);
	else
		sd->done = true;
	cairn_nar_parser_free(sd->parser);
	sd->parser = NULL;
	free(file);
}

static int fent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fent *)a)->path, ((const struct fent *)b)->path);
}

static int add_change(struct fchange **v, size_t *n, size_t *cap, const struct fent *a,
		      const struct fent *b, const char *kind)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct fchange *p = realloc(*v, nc * sizeof(*p));
		if (!p)
			return CAIRN_ENOMEM;
		*v = p;
		*cap = nc;
	}
	(*v)[(*n)++] = (struct fchange){a, b, kind};
	return 0;
}

/* Changes from list a to list b (both sorted by path). */
static int diff_lists(const struct flist *a, const struct flist *b, struct fchange **out,
		      size_t *n_out)
{
	struct fchange *v = NULL;
	size_t n = 0, cap = 0, i = 0, j = 0;
	int rc = 0;
	while (rc == 0 && (i < a->n || j < b->n)) {
		int cmp = i >= a->n ? 1 : j >= b->n ? -1 : strcmp(a->v[i].path, b->v[j].path);
		if (cmp < 0) {
			rc = add_change(&v, &n, &cap, &a->v[i++], NULL, "removed");
			continue;
		}
		if (cmp > 0) {
			rc = add_change(&v, &n, &cap, NULL, &b->v[j++], "added");
			continue;
		}
		const struct fent *x = &a->v[i++], *y = &b->v[j++];
		if (x->type != y->type) {
			rc = add_change(&v, &n, &cap, x, y, "type");
		} else if (x->type == CAIRN_NAR_REGULAR) {
			if (x->exec != y->exec)
				rc = add_change(&v, &n, &cap, x, y, "executable");
			if (rc == 0 &&
			    (x->size != y->size || memcmp(x->sha, y->sha, sizeof(x->sha))))
				rc = add_change(&v, &n, &cap, x, y, "content");
		} else if (x->type == CAIRN_NAR_SYMLINK && strcmp(x->target, y->target)) {
			rc = add_change(&v, &n, &cap, x, y, "target");
		}
	}
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* The first source of each group: a server when one has it, else local. */
static size_t group_rep(const struct challenge *c, const struct item *it, int g)
{
	for (size_t s = 0; s <= c->n_servers; s++)
		if (it->group[s] == g)
			return s;
	return c->n_servers;
}

static int run_diffs(struct challenge *c, struct cairn_http *h)
{
	size_t n_sides = 0;
	for (size_t i = 0; i < c->n_items; i++)
		if (c->items[i].verdict == V_DIFFERS)
			n_sides += (size_t)c->items[i].n_groups;
	c->h = h;
	c->queue = calloc(n_sides ? n_sides : 1, sizeof(*c->queue));
	if (!c->queue)
		return CAIRN_ENOMEM;
	for (size_t i = 0; i < c->n_items; i++) {
		struct item *it = &c->items[i];
		if (it->verdict != V_DIFFERS)
			continue;
		it->sides = calloc((size_t)it->n_groups, sizeof(*it->sides));
		if (!it->sides)
			return CAIRN_ENOMEM;
		for (int g = 0; g < it->n_groups; g++) {
			struct side *sd = &it->sides[g];
			sd->item = it;
			sd->group = g;
			sd->src = group_rep(c, it, g);
			if (sd->src == c->n_servers) {
				sd->want = it->local_hash;
				continue; /* dumped below, while the downloads run */
			}
			const struct cairn_narinfo *ni = it->ans[sd->src].ni;
			sd->want = ni->nar_hash;
			sd->want_size = ni->nar_size;
			c->queue[c->n_queue++] = sd;
		}
	}
	dl_pump(c);
	struct cairn_error err;
	cairn_error_init(&err);
	for (size_t i = 0; i < c->n_items; i++) {
		struct item *it = &c->items[i];
		for (int g = 0; it->sides && g < it->n_groups; g++)
			if (it->sides[g].src == c->n_servers)
				local_dump(c, it, &it->sides[g]);
	}
	if (cairn_http_run(h, &err) < 0) {
		cli_fail("downloads failed", &err);
		return CAIRN_ENET;
	}
	for (size_t i = 0; i < c->n_items; i++) {
		struct item *it = &c->items[i];
		if (!it->sides)
			continue;
		it->changes = calloc((size_t)it->n_groups, sizeof(*it->changes));
		it->n_changes = calloc((size_t)it->n_groups, sizeof(*it->n_changes));
		if (!it->changes || !it->n_changes)
			return CAIRN_ENOMEM;
		for (int g = 0; g < it->n_groups; g++)
			if (it->sides[g].ok)
				qsort(it->sides[g].files.v, it->sides[g].files.n,
				      sizeof(struct fent), fent_cmp);
		if (!it->sides[0].ok)
			continue;
		for (int g = 1; g < it->n_groups; g++) {
			if (!it->sides[g].ok)
				continue;
			int rc = diff_lists(&it->sides[0].files, &it->sides[g].files,
					    &it->changes[g], &it->n_changes[g]);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* ---- output ------------------------------------------------------------ */

static const char *source_name(const struct challenge *c, size_t src)
{
	return src == c->n_servers ? CHALLENGE_LOCAL : cairn_http_server_url(c->servers[src]);
}


static const char *type_name(enum cairn_nar_type t)
{
	return t == CAIRN_NAR_REGULAR	  ? "regular"
	       : t == CAIRN_NAR_DIRECTORY ? "directory"
					  : "symlink";
}

/* The key names a narinfo's signatures claim, comma-separated. */
static void signers(const struct cairn_narinfo *ni, char *out, size_t cap)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < ni->n_sigs && len + 1 < cap; i++) {
		const char *colon = strchr(ni->sigs[i], ':');
		int n = colon ? (int)(colon - ni->sigs[i]) : (int)strlen(ni->sigs[i]);
		len += (size_t)snprintf(out + len, cap - len, "%s%.*s", len ? "," : "", n,
					ni->sigs[i]);
	}
	if (ni->signature && len + 1 < cap) {
		/* "1;host;base64" */
		const char *h = strchr(ni->signature, ';');
		const char *e = h ? strchr(h + 1, ';') : NULL;
		if (h && e)
			snprintf(out + len, cap - len, "%s%.*s", len ? "," : "", (int)(e - h - 1),
				 h + 1);
	}
}

static void json_fent(const struct fent *f)
{
	printf("{\"type\":\"%s\"", type_name(f->type));
	if (f->type == CAIRN_NAR_REGULAR) {
		char hex[2 * CAIRN_SHA256_LEN + 1];
		cairn_base16_encode(f->sha, CAIRN_SHA256_LEN, hex);
		hex[2 * CAIRN_SHA256_LEN] = '\0';
		printf(",\"executable\":%s,\"size\":%llu,\"sha256\":\"%s\"",
		       f->exec ? "true" : "false", (unsigned long long)f->size, hex);
	} else if (f->type == CAIRN_NAR_SYMLINK) {
		printf(",\"target\":");
		cli_json_str(f->target);
	}
	printf("}");
}

static void print_item_json(const struct challenge *c, const struct item *it, bool first)
{
	char hs[CAIRN_HASH_STR_MAX], sg[512];
	printf("%s{\"path\":", first ? "" : ",");
	cli_json_str(it->path);
	printf(",\"verdict\":\"%s\",\"sources\":[", verdict_names[it->verdict]);
	for (size_t s = 0; s < c->n_servers; s++) {
		const struct answer *a = &it->ans[s];
		printf("%s{\"source\":", s ? "," : "");
		cli_json_str(source_name(c, s));
		printf(",\"outcome\":\"%s\"",
		       a->outcome < 0 ? "unknown" : cairn_survey_outcome_name(a->outcome));
		if (a->ni) {
			cairn_hash_format(&a->ni->nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			signers(a->ni, sg, sizeof(sg));
			printf(",\"nar_hash\":\"%s\",\"nar_size\":%llu,\"group\":%d,\"signers\":",
			       hs, (unsigned long long)a->ni->nar_size, it->group[s]);
			cli_json_str(sg);
		}
		if (a->reason) {
			printf(",\"reason\":");
			cli_json_str(a->reason);
		}
		printf("}");
	}
	if (it->local_present || it->local_err) {
		printf(",{\"source\":\"local\"");
		if (it->local_present) {
			cairn_hash_format(&it->local_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			printf(",\"outcome\":\"present\",\"nar_hash\":\"%s\",\"group\":%d", hs,
			       it->group[c->n_servers]);
		} else {
			printf(",\"outcome\":\"unknown\",\"reason\":");
			cli_json_str(it->local_err);
		}
		printf("}");
	}
	printf("]");
	if (it->sides) {
		printf(",\"diffs\":[");
		for (int g = 1; g < it->n_groups; g++) {
			const struct side *a = &it->sides[0], *b = &it->sides[g];
			printf("%s{\"a\":", g > 1 ? "," : "");
			cli_json_str(source_name(c, a->src));
			printf(",\"b\":");
			cli_json_str(source_name(c, b->src));
			if (a->n_notes + b->n_notes) {
				printf(",\"notes\":[");
				for (size_t k = 0; k < a->n_notes + b->n_notes; k++) {
					printf("%s", k ? "," : "");
					cli_json_str(k < a->n_notes ? a->notes[k]
								: b->notes[k - a->n_notes]);
				}
				printf("]");
			}
			if (!a->ok || !b->ok) {
				printf(",\"error\":");
				cli_json_str(cairn_error_msg(!a->ok ? &a->err : &b->err));
			} else {
				printf(",\"files\":[");
				for (size_t k = 0; k < it->n_changes[g]; k++) {
					const struct fchange *ch = &it->changes[g][k];
					printf("%s{\"path\":", k ? "," : "");
					cli_json_str(ch->a ? ch->a->path : ch->b->path);
					printf(",\"change\":\"%s\"", ch->kind);
					if (ch->a) {
						printf(",\"a\":");
						json_fent(ch->a);
					}
					if (ch->b) {
						printf(",\"b\":");
						json_fent(ch->b);
					}
					printf("}");
				}
				printf("]");
			}
			printf("}");
		}
		printf("]");
	}
	printf("}");
}

static void print_fent(const struct fent *f)
{
	if (f->type == CAIRN_NAR_REGULAR) {
		char hex[17];
		cairn_base16_encode(f->sha, 8, hex);
		hex[16] = '\0';
		printf("%s%s, %llu bytes, sha256 %s...", type_name(f->type),
		       f->exec ? " executable" : "", (unsigned long long)f->size, hex);
	} else if (f->type == CAIRN_NAR_SYMLINK) {
		printf("symlink -> %s", f->target);
	} else {
		printf("directory");
	}
}

static void print_item_human(const struct challenge *c, const struct item *it)
{
	char hs[CAIRN_HASH_STR_MAX], sg[512];
	int w = (int)strlen(CHALLENGE_LOCAL);
	for (size_t s = 0; s < c->n_servers; s++)
		if ((int)strlen(source_name(c, s)) > w)
			w = (int)strlen(source_name(c, s));
	printf("%s\n", it->path);
	for (size_t s = 0; s < c->n_servers; s++) {
		const struct answer *a = &it->ans[s];
		printf("  %-*s  ", w, source_name(c, s));
		if (a->ni) {
			cairn_hash_format(&a->ni->nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
			signers(a->ni, sg, sizeof(sg));
			printf("%s  %s%s\n", hs, sg[0] ? "signed by " : "unsigned", sg);
		} else if (a->outcome == CAIRN_SURVEY_ABSENT) {
			printf("absent\n");
		} else {
			printf("%s: %s\n",
			       a->outcome < 0 ? "unknown" : cairn_survey_outcome_name(a->outcome),
			       a->reason ? a->reason : "no answer");
		}
	}
	if (it->local_present) {
		cairn_hash_format(&it->local_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
		printf("  %-*s  %s\n", w, CHALLENGE_LOCAL, hs);
	} else if (it->local_err) {
		printf("  %-*s  unknown: %s\n", w, CHALLENGE_LOCAL, it->local_err);
	}
	printf("  %s", verdict_names[it->verdict]);
	if (it->verdict == V_DIFFERS) {
		printf(":");
		for (int g = 0; g < it->n_groups; g++) {
			printf("%s {", g ? " vs" : "");
			bool first = true;
			for (size_t s = 0; s <= c->n_servers; s++) {
				if (it->group[s] != g)
					continue;
				printf("%s%s", first ? "" : ", ", source_name(c, s));
				first = false;
			}
			printf("}");
		}
	}
	printf("\n");
	if (!it->sides)
		return;
	for (int g = 1; g < it->n_groups; g++) {
		const struct side *a = &it->sides[0], *b = &it->sides[g];
		for (size_t k = 0; g == 1 && k < a->n_notes; k++)
			printf("  note: %s\n", a->notes[k]);
		for (size_t k = 0; k < b->n_notes; k++)
			printf("  note: %s\n", b->notes[k]);
		printf("  diff %s -> %s:", source_name(c, a->src), source_name(c, b->src));
		if (!a->ok || !b->ok) {
			printf(" cannot compare: %s\n",
			       cairn_error_msg(!a->ok ? &a->err : &b->err));
			continue;
		}
		printf(" %zu change%s\n", it->n_changes[g], it->n_changes[g] == 1 ? "" : "s");
		for (size_t k = 0; k < it->n_changes[g]; k++) {
			const struct fchange *ch = &it->changes[g][k];
			const char *p = ch->a ? ch->a->path : ch->b->path;
			printf("    %-10s /%s  (", ch->kind, p);
			if (ch->a)
				print_fent(ch->a);
			if (ch->a && ch->b)
				printf(" => ");
			if (ch->b)
				print_fent(ch->b);
			printf(")\n");
		}
	}
}

/* ---- the command ------------------------------------------------------- */


static void item_release(const struct challenge *c, struct item *it)
{
	for (size_t s = 0; it->ans && s < c->n_servers; s++) {
		cairn_narinfo_free(it->ans[s].ni);
		free(it->ans[s].reason);
	}
	free(it->ans);
	free(it->group);
	free(it->local_err);
	for (int g = 0; it->sides && g < it->n_groups; g++)
		side_release(&it->sides[g]);
	free(it->sides);
	for (int g = 0; it->changes && g < it->n_groups; g++)
		free(it->changes[g]);
	free(it->changes);
	free(it->n_changes);
}

int cmd_challenge(int argc, char **argv)
{
	const char **urls = calloc((size_t)argc, sizeof(*urls));
	const char **args = calloc((size_t)argc, sizeof(*args));
	size_t n_urls = 0, n_args = 0;
	bool json = false, diff = false;
	const char *db_path = NULL;
	long jobs = CAIRN_SURVEY_INFLIGHT_DEFAULT;
	struct challenge c;
	struct cairn_http *h = NULL;
	struct cairn_survey *survey = NULL;
	struct cairn_error err;
	int ret = EXIT_FAIL;

	memset(&c, 0, sizeof(c));
	cairn_error_init(&err);
	if (cli_wants_help(argc, argv)) {
		ret = cli_usage(cmd_challenge_usage, true);
		goto out;
	}
	if (!urls || !args) {
		cli_error("out of memory");
		goto out;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--from") && i + 1 < argc) {
			urls[n_urls++] = argv[++i];
		} else if (!strcmp(a, "--store") && i + 1 < argc) {
			c.root = argv[++i];
		} else if (!strcmp(a, "--db") && i + 1 < argc) {
			db_path = argv[++i];
		} else if (!strcmp(a, "--diff")) {
			diff = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--jobs") && i + 1 < argc) {
			char *end;
			const char *v = argv[++i];
			errno = 0;
			jobs = strtol(v, &end, 10);
			if (errno || end == v || *end || jobs < 1 ||
			    jobs > CAIRN_SURVEY_INFLIGHT_MAX) {
				cli_error("--jobs: '%s' is not a number from 1 to %d", v,
					  CAIRN_SURVEY_INFLIGHT_MAX);
				ret = EXIT_USAGE;
				goto out;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			cli_error("unexpected argument '%s'", a);
			ret = cli_usage(cmd_challenge_usage, false);
			goto out;
		} else {
			args[n_args++] = a;
		}
	}
	ret = EXIT_USAGE;
	if (n_urls == 0 && !c.root) {
		cli_error("at least one --from URL (or --store) is required");
		goto out;
	}
	if (n_urls > CAIRN_SURVEY_MAX_SERVERS) {
		cli_error("at most %d --from servers", CAIRN_SURVEY_MAX_SERVERS);
		goto out;
	}
	if (db_path && !c.root) {
		cli_error("--db needs --store");
		goto out;
	}
	if (n_args == 0) {
		cli_error("no store paths given (use '-' to read them from stdin)");
		goto out;
	}
	ret = EXIT_FAIL;

	struct cairn_http_config hc;
	cairn_http_config_init(&hc);
	if (cairn_http_new(&h, &hc, &err)) {
		ret = cli_fail("cannot start the HTTP client", &err);
		goto out;
	}
	/* The survey wants at least one server; with none, a placeholder
	 * list of zero is handled by skipping the survey. */
	c.servers = calloc(n_urls ? n_urls : 1, sizeof(*c.servers));
	if (!c.servers) {
		cli_error("out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_urls; i++) {
		if (cairn_http_server_new(&c.servers[i], urls[i], 0, &err)) {
			cli_error("--from '%s': %s", urls[i], cairn_error_msg(&err));
			ret = EXIT_USAGE;
			goto out;
		}
		c.n_servers++;
	}
	struct cairn_survey_config sc;
	cairn_survey_config_init(&sc);
	sc.max_inflight = (size_t)jobs;
	if (n_urls > 0 &&
	    cairn_survey_new(&survey, h, c.servers, n_urls, &sc, on_result, &c, &err)) {
		ret = cli_fail("cannot start the survey", &err);
		goto out;
	}
	/* Without servers the paths are only checked and listed here. */
	for (size_t i = 0; i < n_args; i++) {
		if (!survey) {
			struct cairn_store_path sp;
			if (cairn_store_path_parse(args[i], strlen(args[i]), NULL, &sp, &err)) {
				cli_error("'%s': %s", args[i], cairn_error_msg(&err));
				ret = EXIT_USAGE;
				goto out;
			}
			if (ensure_items(&c, c.n_items + 1)) {
				cli_error("out of memory");
				goto out;
			}
			c.items[c.n_items - 1].path = args[i];
		} else if (!strcmp(args[i], "-")) {
			if ((ret = cli_survey_add_stdin(survey)) != EXIT_OK)
				goto out;
			ret = EXIT_FAIL;
		} else if (cairn_survey_add(survey, args[i], NULL, &err) < 0) {
			cli_error("'%s': %s", args[i], cairn_error_msg(&err));
			ret = EXIT_USAGE;
			goto out;
		}
	}
	if (survey) {
		if (cairn_survey_run(survey, &err)) {
			ret = cli_fail("survey failed", &err);
			goto out;
		}
		if (ensure_items(&c, cairn_survey_count(survey))) {
			cli_error("out of memory");
			goto out;
		}
		for (size_t i = 0; i < c.n_items; i++)
			c.items[i].path = cairn_survey_path(survey, i);
	}
	if (c.root && c.n_items > 0) {
		struct cairn_store_path sp;
		const char *p0 = c.items[0].path;
		char dir[CAIRN_STORE_PATH_MAX];
		if (cairn_store_path_parse(p0, strlen(p0), NULL, &sp, &err)) {
			cli_error("'%s': %s", p0, cairn_error_msg(&err));
			goto out;
		}
		snprintf(dir, sizeof(dir), "%.*s",
			 (int)(strlen(p0) - cairn_store_path_base_len(&sp) - 1), p0);
		if ((ret = open_db(&c, db_path, dir)) != EXIT_OK)
			goto out;
		ret = EXIT_FAIL;
		for (size_t i = 0; i < c.n_items; i++)
			local_hash(&c, &c.items[i]);
	}
	size_t counts[3] = {0, 0, 0};
	for (size_t i = 0; i < c.n_items; i++) {
		judge(&c, &c.items[i]);
		counts[c.items[i].verdict]++;
	}
	if (diff && counts[V_DIFFERS] && run_diffs(&c, h)) {
		cli_error("--diff failed");
		goto out;
	}

	double n = c.n_items ? (double)c.n_items : 1;
	if (json) {
		printf("{\"items\":[");
		for (size_t i = 0; i < c.n_items; i++)
			print_item_json(&c, &c.items[i], i == 0);
		printf("],\"summary\":{\"items\":%zu,\"identical\":%zu,\"differ\":%zu,"
		       "\"inconclusive\":%zu}}\n",
		       c.n_items, counts[V_IDENTICAL], counts[V_DIFFERS], counts[V_INCONCLUSIVE]);
	} else {
		for (size_t i = 0; i < c.n_items; i++)
			print_item_human(&c, &c.items[i]);
		printf("%zu store items analysed: %zu (%.1f%%) identical, %zu (%.1f%%) differ, "
		       "%zu (%.1f%%) inconclusive\n",
		       c.n_items, counts[V_IDENTICAL], 100.0 * (double)counts[V_IDENTICAL] / n,
		       counts[V_DIFFERS], 100.0 * (double)counts[V_DIFFERS] / n,
		       counts[V_INCONCLUSIVE], 100.0 * (double)counts[V_INCONCLUSIVE] / n);
	}
	if (fflush(stdout) != 0) {
		cli_error("cannot write the report");
		goto out;
	}
	ret = counts[V_DIFFERS] ? 2 : counts[V_INCONCLUSIVE] ? EXIT_FAIL : EXIT_OK;
out:
	for (size_t i = 0; i < c.n_items; i++)
		item_release(&c, &c.items[i]);
	free(c.items);
	free(c.queue);
	cairn_storedb_free(c.db);
	cairn_survey_free(survey);
	cairn_http_free(h); /* before the servers its transfers borrow */
	for (size_t i = 0; i < c.n_servers; i++)
		cairn_http_server_free(c.servers[i]);
	free(c.servers);
	free(urls);
	free(args);
	return ret;
}
