/*
 * fetch-place.c - where items go and how they get there: the target under
 * the root or in nar_dir, the download (download.h), and placing verified
 * items once their references are in place, registered in batches.
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

#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/nicache.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "fetch-int.h"
#include "cairn/banned.h"

/* ---- where items go ------------------------------------------------------ */

int fetch_target_path(const struct item *it, char *out, size_t cap)
{
	const struct cairn_fetch *f = it->f;
	int n;
	if (f->cfg.nar_dir)
		n = snprintf(out, cap, "%s/%s.nar", f->cfg.nar_dir, it->base);
	else
		n = snprintf(out, cap, "%s%s/%s", f->cfg.root, f->store_dir, it->base);
	return n < 0 || (size_t)n >= cap ? CAIRN_ELIMIT : 0;
}

bool fetch_item_on_disk(const struct item *it)
{
	char p[4096];
	struct stat st;
	if (fetch_target_path(it, p, sizeof(p)))
		return false;
	return lstat(p, &st) == 0;
}

/*
 * Whether path sp is in the target store: valid in its database, or, with
 * no database, its files exist (NAR_DIR: its NAR).  1, 0, or a negative
 * error from the database (e then says why).
 */
int fetch_in_target(struct cairn_fetch *f, const struct cairn_store_path *sp,
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

int fetch_store_ready(struct cairn_fetch *f, struct cairn_error *err)
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

/* ---- downloading --------------------------------------------------------- */

/* The engine (lib/download.h) does the work; these say where to and from. */

void fetch_download_free(struct item *it)
{
	fetch_ipfs_cancel(it);
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

/* The size of a typical file as a fraction of its NAR, for a narinfo
 * without FileSize (codec.h's measurements, 52 MB of mixed files). */
static double method_ratio(enum cairn_codec_method m)
{
	switch (m) {
	case CAIRN_CODEC_ZSTD: return 0.30;
	case CAIRN_CODEC_GZIP: return 0.32;
	case CAIRN_CODEC_XZ: return 0.21;
	case CAIRN_CODEC_LZIP: return 0.21;
	case CAIRN_CODEC_BZIP2: return 0.25;
	default: return 1.0;
	}
}

int cairn_fetch_pick_url(const struct cairn_narinfo *ni, double net_rate, const double *unpack,
			 unsigned cpus, struct cairn_fetch_choice *est)
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
		if (est)
			est[i] = (struct cairn_fetch_choice){.compression = c};
		if (cairn_codec_method_parse(c, strlen(c), &m, NULL))
			continue;
		double rate = unpack && unpack[m] > 0 ? unpack[m] : fetch_codec_builtin_rate(m);
		double size = ni->urls[i].has_file_size ? (double)ni->urls[i].file_size
							: (double)ni->nar_size * method_ratio(m);
		/* Transfer plus unpacking, the cores shared by parallel downloads. */
		double cost = size / net_rate + (double)ni->nar_size / (rate * cpus);
		if (est)
			est[i] = (struct cairn_fetch_choice){.compression = cairn_codec_method_name(m),
							     .file_size = (uint64_t)size,
							     .unpack_rate = rate,
							     .seconds = cost,
							     .readable = true};
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

/* Bytes after the first ones that make an early estimate: a few round
 * trips of data on a slow link, nothing on a fast one. */
#define EARLY_RATE_BYTES ((uint64_t)64 << 10)

/*
 * The network rate so far: 0 (unknown) until a MiB has come in (*from:
 * this run); or, before that, *early: from the first byte on, which
 * leaves out the connection's handshake and the request's round trip, 0
 * until EARLY_RATE_BYTES more have come in.  Still low while TCP opens
 * its window, so it is used only when no earlier run kept a rate: too low
 * errs towards the smaller file, which is what a slow link needs.
 */
static double net_rate(const struct cairn_fetch *f, double *early)
{
	double now = fetch_now_s();
	*early = 0;
	if (f->t_first_byte > 0 && f->bytes_received - f->bytes_at_first >= EARLY_RATE_BYTES) {
		double el = now - f->t_first_byte;
		if (el > 0.001)
			*early = (double)(f->bytes_received - f->bytes_at_first) / el;
	}
	if (f->bytes_received < (1u << 20) || f->t_first_dl <= 0)
		return 0;
	double el = now - f->t_first_dl;
	return el > 0.01 ? (double)f->bytes_received / el : 0;
}

static size_t readable_urls(const struct cairn_narinfo *ni)
{
	size_t n = 0;
	enum cairn_codec_method m;
	for (size_t i = 0; i < ni->n_urls; i++)
		if (!cairn_codec_method_parse(ni->urls[i].compression,
					      strlen(ni->urls[i].compression), &m, NULL))
			n++;
	return n;
}

/*
 * The rate this run sees once a MiB is in; before that the best rate kept
 * from earlier runs among the servers; else this run's first bytes' rate
 * (net_rate); else the guess.  One figure for
 * every source of an item, so that identical narinfos get the same
 * choice and their sources can share one file's ranges (download-multi).
 * Only a real choice (two readable compressions) costs the one-time
 * unpacking measurement.
 */
static const struct cairn_narinfo_url *choose_url(struct item *it,
						  const struct cairn_narinfo *ni,
						  enum cairn_codec_method *method)
{
	struct cairn_fetch *f = it->f;
	unsigned cpus = cairn_dl_pool_threads(f->pool);
	double early, rate = net_rate(f, &early), kept = 0;
	const char *from = CAIRN_FETCH_RATE_RUNNING;
	for (size_t k = 0; rate <= 0 && k < f->n_servers; k++)
		if ((double)f->servers[k].speed > kept)
			kept = (double)f->servers[k].speed;
	if (rate <= 0 && kept > 0) {
		rate = kept;
		from = CAIRN_FETCH_RATE_KEPT;
	} else if (rate <= 0 && early > 0) {
		rate = early;
		from = CAIRN_FETCH_RATE_EARLY;
	} else if (rate <= 0) {
		rate = CAIRN_FETCH_NET_RATE_GUESS;
		from = CAIRN_FETCH_RATE_GUESSED;
	}
	bool choice = readable_urls(ni) > 1;
	if (choice && !f->unpack_known) {
		fetch_codec_rates(f->cfg.cache, f->unpack, &f->unpack_measured);
		f->unpack_known = true;
	}
	struct cairn_fetch_choice *est = NULL;
	if (choice && (est = calloc(ni->n_urls, sizeof(*est)))) {
		free(it->choices);
		it->choices = est;
		it->n_choices = ni->n_urls;
		it->choice_net_rate = rate;
		it->choice_rate_from = from;
	}
	int i = cairn_fetch_pick_url(ni, rate, f->unpack_known ? f->unpack : NULL,
				     cpus ? cpus : 1, est);
	if (i < 0)
		return NULL;
	const char *c = ni->urls[i].compression;
	if (cairn_codec_method_parse(c, strlen(c), method, NULL))
		return NULL;
	return &ni->urls[i];
}


static void dl_bytes(void *ctx, size_t n)
{
	struct item *it = ctx;
	struct cairn_fetch *f = it->f;
	it->dl_bytes += n;
	if (it->t_dl_first <= 0)
		it->t_dl_first = fetch_now_s();
	if (f->t_first_byte <= 0) {
		/* this chunk took the round trips before it: not counted */
		f->t_first_byte = fetch_now_s();
		f->bytes_at_first = f->bytes_received + n;
	}
	f->bytes_received += n;
}

/* Measured over enough bytes to mean something: kept for the next runs'
 * order (fetch-decide.c's preference). */
#define SPEED_MIN_BYTES ((uint64_t)1 << 20)

static void dl_source_stats(void *ctx, size_t source, const struct cairn_dl_source_stats *st)
{
	struct item *it = ctx;
	struct cairn_fetch *f = it->f;
	if (!f->cfg.cache || source >= it->n_srcs || st->bytes < SPEED_MIN_BYTES || st->failed)
		return;
	it->speed_kept = true;
	/* a cache that cannot take it costs the next run its order, nothing more */
	cairn_nicache_put_speed(f->cfg.cache, f->servers[it->srcs[source]].url, st->rate,
				st->rtt_ms, fetch_wall_now(), NULL);
}

static void dl_finished(void *ctx, const struct cairn_dl_result *r)
{
	struct item *it = ctx;
	struct cairn_fetch *f = it->f;
	f->downloads_active--;
	for (size_t k = 0; k < CAIRN_DL_MAX_SOURCES && k < it->n_srcs; k++) {
		if (!(r->verify_failed & ((uint64_t)1 << k)))
			continue;
		/* Its bytes failed verification: asked last, here and next time. */
		struct server *s = &f->servers[it->srcs[k]];
		if (!s->demoted_now) {
			free(s->demoted);
			s->demoted = strdup("its bytes failed verification");
			s->demoted_now = true;
			if (f->cfg.cache)
				cairn_nicache_put_demoted(f->cfg.cache, s->url,
							  "its bytes failed verification",
							  fetch_wall_now(), NULL);
		}
	}
	if (r->code) {
		if (r->reason[0])
			fetch_reason_add(it, "%s", r->reason);
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
		fetch_item_fail(it, r->code, "%s", r->headline);
		return;
	}
	it->server_used = f->servers[it->srcs[r->source]].url;
	it->compression = cairn_codec_method_name(r->method);
	/* One source the whole way: its rate is this item's, kept like a
	 * multi-source download's so that the next run's first choice of
	 * compression knows the link; and its time to first byte, which
	 * sets the next run's grace for this server (fetch-decide.c). */
	double el = it->t_dl > 0 ? fetch_now_s() - it->t_dl : 0;
	double ttfb = it->t_dl > 0 && it->t_dl_first > it->t_dl ? it->t_dl_first - it->t_dl : 0;
	if (f->cfg.cache && !it->speed_kept && it->dl_bytes >= SPEED_MIN_BYTES && el > 0.01 &&
	    r->source < it->n_srcs)
		cairn_nicache_put_speed(f->cfg.cache, it->server_used,
					(uint64_t)((double)it->dl_bytes / el),
					(uint64_t)(ttfb * 1000.0 + 1), fetch_wall_now(), NULL);
	it->st = I_VERIFIED;
	f->n_verified++;
}

/* Server si's narinfo as a source of the bytes; non-zero when unreadable. */
static int dl_source(struct item *it, size_t si, struct cairn_dl_source *s)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_narinfo *ni = it->ans[si].ni;
	memset(s, 0, sizeof(*s));
	const struct cairn_narinfo_url *u = choose_url(it, ni, &s->method);
	if (!u) {
		fetch_reason_add(it, "%s: no compression cairn can read", f->servers[si].url);
		return CAIRN_EUNSUPPORTED;
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

void fetch_add_dl_source(struct item *it, size_t si)
{
	struct cairn_dl_source s;
	if (dl_source(it, si, &s) == 0 && cairn_dl_add_source(it->dl, &s) == 0)
		return;
	it->n_srcs--; /* not a source after all */
}

/* The sources the engine gets, in order, into src; srcs is made to match
 * them, so that the engine's source index names the server. */
static size_t dl_sources(struct item *it, struct cairn_dl_source *src)
{
	size_t n = 0, m = 0;
	for (size_t k = it->cur_src; k < it->n_srcs && n < CAIRN_DL_MAX_SOURCES; k++) {
		size_t si = it->srcs[k];
		if (dl_source(it, si, &src[n]))
			continue;
		it->srcs[m++] = si;
		n++;
	}
	it->n_srcs = m;
	it->cur_src = 0;
	return n;
}

/* The expected NAR, its sources (the accepted group's servers, in order)
 * and a sink under the root or in nar_dir; then the gateways (when the
 * narinfo names a CID) or the engine. */
void fetch_download_start(struct item *it)
{
	struct cairn_fetch *f = it->f;
	struct cairn_dl_source src[CAIRN_DL_MAX_SOURCES];
	struct cairn_error e;
	cairn_error_init(&e);
	if (!dl_sources(it, src)) {
		f->downloads_active--;
		fetch_item_fail(it, CAIRN_ENET, "no server could send the NAR");
		return;
	}
	char target[4096];
	int rc = fetch_store_ready(f, &e);
	if (!rc && fetch_target_path(it, target, sizeof(target)))
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
	if (f->t_first_dl <= 0)
		f->t_first_dl = fetch_now_s();
	if (it->t_dl <= 0)
		it->t_dl = fetch_now_s();
	if (rc) {
		f->downloads_active--;
		fetch_item_fail(it, rc, "%s", cairn_error_msg(&e));
		return;
	}
	if (!fetch_try_ipfs(it, &sink))
		fetch_download_servers(it);
}

void fetch_download_servers(struct item *it)
{
	struct cairn_fetch *f = it->f;
	struct cairn_dl_source src[CAIRN_DL_MAX_SOURCES];
	struct cairn_error e;
	cairn_error_init(&e);
	struct cairn_dl_sink sink;
	if (it->file)
		cairn_dl_file_sink(it->file, &sink);
	else
		cairn_dl_tree_sink(it->tree, &sink);
	struct cairn_dl_expect ex = {.nar_hash = it->nar_hash, .nar_size = it->nar_size,
				     .by_ca = it->by_ca, .ca = it->ca, .sp = it->sp};
	struct cairn_dl_config dc = {.http = f->http,
				     .pool = f->pool,
				     .max_resumes = f->cfg.max_resumes,
				     .multi_min = f->cfg.multi_min,
				     .multi_per_source = f->cfg.multi_per_source,
				     .on_source_stats = dl_source_stats,
				     .on_done = dl_finished,
				     .on_bytes = dl_bytes,
				     .ctx = it};
	/* late answers may have come while the gateways were asked */
	size_t n = dl_sources(it, src);
	int rc = n ? cairn_dl_start(&it->dl, &dc, &ex, src, n, &sink, &e)
		   : cairn_error_set(&e, CAIRN_ENET, "no server could send the NAR");
	if (rc) {
		f->downloads_active--;
		fetch_item_fail(it, rc, "%s", cairn_error_msg(&e));
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
int fetch_check_in_place(struct item *it, struct cairn_error *e)
{
	struct cairn_fetch *f = it->f;
	char target[4096], dir[4096];
	if (fetch_target_path(it, target, sizeof(target)) ||
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

size_t fetch_deps_unsettled(const struct item *it)
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
	if (fetch_target_path(it, target, sizeof(target)))
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
		fetch_item_finish(it, CAIRN_FETCH_FETCHED, 0);
		return;
	}
	int rc = read_drv_outputs(it, &e);
	if (rc) {
		fetch_item_fail(it, rc, "in place but not registered: %s", cairn_error_msg(&e));
		return;
	}
	if (f->n_batch == f->cap_batch) {
		size_t nc = f->cap_batch ? f->cap_batch * 2 : 64;
		struct item **nb = realloc(f->batch, nc * sizeof(*nb));
		if (!nb) {
			fetch_item_fail(it, CAIRN_ENOMEM, "out of memory");
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
	int v = f->cfg.db ? fetch_in_target(f, &it->sp, &e) : 1;
	if (v < 0) {
		fetch_item_fail(it, v, "%s", cairn_error_msg(&e));
		fetch_db_trouble(f, v, &e);
	} else if (v) {
		fetch_item_finish(it, CAIRN_FETCH_PRESENT, 0);
	} else if ((v = fetch_check_in_place(it, &e)) != 0) {
		fetch_item_fail(it, v, "%s", cairn_error_msg(&e));
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
		fetch_item_fail(it, rc, "%s", cairn_error_msg(&e));
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
			fetch_item_finish(it, CAIRN_FETCH_FETCHED, 0);
		} else {
			fetch_item_fail(it, rc, "in place but not registered: %s", cairn_error_msg(&e));
		}
	}
	if (rc < 0)
		fetch_db_trouble(f, rc, &e);
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
				fetch_item_fail(it, CAIRN_ENOENT, "reference %s failed", bad->path);
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
void fetch_settle(struct cairn_fetch *f)
{
	settle_once(f);
	if (!flush_batch(f))
		settle_once(f);
}

/*
 * Store paths cannot refer to each other in a cycle (a path's hash covers
 * its references), so narinfos that claim one are lying; their items would
 * wait for each other for ever.  Fail every item on such a cycle, naming
 * it; fetch_settle() then fails what refers to them.  Returns how many failed.
 */
size_t fetch_fail_cycles(struct cairn_fetch *f)
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
				fetch_item_fail(c, CAIRN_EFORMAT,
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
void fetch_pump(struct cairn_fetch *f)
{
	if (f->survey) {
		struct cairn_error e;
		cairn_error_init(&e);
		if (cairn_survey_start(f->survey, &e))
			fetch_fatal(f, cairn_survey_failed(f->survey, &e), cairn_error_msg(&e));
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
			size_t n = fetch_deps_unsettled(it);
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
		fetch_download_start(best);
	}
}
