/*
 * sync.c - `cairn sync`: the run, the initial replication of a head into a
 * binary-cache directory from its feed's snapshot, and following the feed
 * (sync.h has the layout and the guarantees).  One item's copy is in
 * sync-item.c, heads without a feed (--paths) in sync-paths.c.
 *
 * One thread drives the HTTP client; the download engine's pipelines
 * (decompress, hash, check) run on its pool.  At most `parallel` items are
 * in flight; each is one engine download whose body sink keeps the file
 * as served, committed (renamed) once every check passed, then its
 * narinfo written beside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/feed-follow.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/survey.h"
#include "cairn/sync.h"
#include "sync-int.h"
#include "cairn/banned.h"

void sync_say(struct sync *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!s->cfg->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->cfg->log(s->cfg->log_ctx, msg);
}

/* ---- whole small bodies (nix-cache-info, the --paths list) --------------- */

int sync_fetch_whole(struct sync *s, const char *path, uint64_t max, struct cairn_buf *out,
		     struct cairn_error *err)
{
	bool absolute = !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8);
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = absolute ? NULL : s->server,
					.url = path,
					.max_body = max};
	return cairn_http_wait_one(s->http, &rq, out, NULL, NULL, NULL, err);
}

/* ---- the feed, through the one follower (feed-follow.h) ------------------ */

/* A store hash part, decoded: what a snapshot lists, kept to prune by. */
struct hashbin {
	uint8_t b[20];
};

struct follow {
	struct sync *s;
	unsigned parallel;
	struct cairn_error err; /* why a callback stopped the follower */
	/* the hash parts of the snapshot being read (snap: one is) */
	struct hashbin *seen;
	size_t n_seen, cap_seen;
	bool snap, seen_over;
};

static int hashbin_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct hashbin));
}

static void remember(struct follow *fw, const char *hashpart)
{
	struct hashbin h;
	if (fw->seen_over || cairn_nix32_decode(hashpart, 32, h.b, sizeof(h.b)) < 0)
		return;
	if (fw->n_seen == fw->cap_seen) {
		size_t cap = fw->cap_seen ? fw->cap_seen * 2 : 4096;
		struct hashbin *n = cap <= CAIRN_SYNC_PRUNE_MAX ? realloc(fw->seen, cap * sizeof(*n))
								 : NULL;
		if (!n) {
			fw->seen_over = true;
			return;
		}
		fw->seen = n;
		fw->cap_seen = cap;
	}
	fw->seen[fw->n_seen++] = h;
}

/* An item of the verified snapshot: copied once trusted (item_start). */
static int on_item(void *ctx, const struct cairn_feed_event *e)
{
	struct follow *fw = ctx;
	fw->s->st->items++;
	fw->snap = true;
	remember(fw, e->hashpart);
	return sync_add_item(fw->s, e, fw->parallel, &fw->err);
}

/*
 * A snapshot read in whole is the head's contents: a narinfo of the replica
 * it does not list was removed at the head while no page said so (the
 * replica was too far behind, or the head's feed was made anew), and goes
 * as a removal would.  Skipped when the snapshot listed more items than
 * could be kept (CAIRN_SYNC_PRUNE_MAX): the replica then keeps extra items
 * rather than losing any.
 */
static int prune(struct follow *fw)
{
	struct sync *s = fw->s;
	int rc = 0;
	size_t gone = 0;
	if (fw->seen_over) {
		sync_say(s, "snapshot: more than %zu items, items the head removed stay",
			 (size_t)CAIRN_SYNC_PRUNE_MAX);
		return 0;
	}
	qsort(fw->seen, fw->n_seen, sizeof(*fw->seen), hashbin_cmp);
	/* its own open file: a dup would share (and start at) another
	 * listing's position */
	int dfd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return cairn_error_errno(&fw->err, errno, "sync: cannot list '%s'", s->cfg->to);
	}
	struct dirent *de;
	while (rc == 0 && (de = readdir(d))) {
		struct hashbin h;
		if (strlen(de->d_name) != 32 + 8 || strcmp(de->d_name + 32, ".narinfo") != 0 ||
		    cairn_nix32_decode(de->d_name, 32, h.b, sizeof(h.b)) < 0)
			continue;
		if (fw->seen &&
		    bsearch(&h, fw->seen, fw->n_seen, sizeof(*fw->seen), hashbin_cmp))
			continue;
		char hp[33];
		memcpy(hp, de->d_name, 32);
		hp[32] = '\0';
		if ((rc = sync_remove_item(s, hp, &fw->err)) == 0)
			gone++;
	}
	closedir(d);
	if (gone)
		sync_say(s, "snapshot: removed %zu item%s the head no longer has", gone,
			 gone == 1 ? "" : "s");
	return rc;
}

/*
 * An event of a verified page, in order: additions downloaded up to
 * `parallel` at once, a removal only after every addition before it is
 * settled (an add and a remove of one item in a page keep their order).
 */
static int on_event(void *ctx, const struct cairn_feed_event *e)
{
	struct follow *fw = ctx;
	int rc;
	fw->s->st->items++;
	if (e->kind != CAIRN_FEED_REMOVE)
		return sync_add_item(fw->s, e, fw->parallel, &fw->err);
	if ((rc = sync_settle(fw->s, 0, &fw->err)) == 0)
		rc = sync_remove_item(fw->s, e->hashpart, &fw->err);
	return rc;
}

/* The status file: where the replica is in the feed, for monitoring. */
static void write_status(struct sync *s, uint64_t head)
{
	char b[256];
	if (!s->cfg->status_file)
		return;
	int n =
	    snprintf(b, sizeof(b),
		     "feed %s\nseq %" PRIu64 "\nhead %" PRIu64 "\nlag %" PRIu64 "\nupdated %lld\n",
		     s->st->feed, s->st->seq, head, head - s->st->seq, (long long)time(NULL));
	const char *f = s->cfg->status_file, *slash = strrchr(f, '/'), *name = f;
	char dir[4096] = ".";
	if (slash) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - f), f);
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
		name = slash + 1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	struct cairn_error e;
	cairn_error_init(&e);
	if (sync_write_atomic(dir, dfd, name, b, (size_t)n, &e) < 0)
		sync_say(s, "%s", cairn_error_msg(&e));
	close(dfd);
}

/* A page or the snapshot applied: once every item of it is settled, the
 * replica is there. */
static int on_position(void *ctx, const struct cairn_feed_pos *pos, bool fresh)
{
	struct follow *fw = ctx;
	(void)fresh;
	int rc = sync_settle_all(fw->s, &fw->err);
	if (rc == 0 && fw->snap)
		rc = prune(fw);
	fw->snap = fw->seen_over = false;
	fw->n_seen = 0;
	if (rc < 0)
		return rc;
	memcpy(fw->s->st->feed, pos->feed, sizeof(fw->s->st->feed));
	fw->s->st->seq = pos->seq;
	write_status(fw->s, pos->head);
	return 0;
}

static bool on_stop(void *ctx)
{
	struct follow *fw = ctx;
	return fw->s->cfg->stop && fw->s->cfg->stop(fw->s->cfg->log_ctx);
}

static void on_log(void *ctx, const char *msg)
{
	struct follow *fw = ctx;
	sync_say(fw->s, "feed: %s", msg);
}

/*
 * The snapshot (fetched into DIR, verified, then its items copied), then,
 * with follow, the feed's pages until cfg->stop says so.  A snapshot that
 * does not come or does not verify at the start is an error: there is no
 * replica without it.
 */
static int replicate(struct sync *s, unsigned parallel, struct cairn_error *err)
{
	struct follow fw = {.s = s, .parallel = parallel};
	struct cairn_feed_follow_config fc = {.http = s->http,
					      .server = s->server,
					      .kr = s->cfg->kr,
					      .start = CAIRN_FEED_START_SNAPSHOT,
					      .wait_s = CAIRN_SYNC_WAIT,
					      .tmp_dir = s->cfg->to,
					      .snapshot_max = CAIRN_SYNC_SNAPSHOT_MAX,
					      .on_event = on_event,
					      .on_item = on_item,
					      .on_position = on_position,
					      .stop = on_stop,
					      .log = on_log,
					      .ctx = &fw};
	struct cairn_feed_follow *f = NULL;
	enum cairn_feed_step what;
	struct cairn_error e;
	int rc;
	cairn_error_init(&fw.err);
	cairn_error_init(&e);
	if ((rc = cairn_feed_follow_new(&f, &fc, err)) < 0)
		return rc;
	rc = cairn_feed_follow_step(f, &what, &e);
	if (rc == 0 && what != CAIRN_FEED_STEP_APPLIED)
		rc = e.code ? e.code : CAIRN_ENET;
	if (rc == 0 && s->cfg->follow)
		rc = cairn_feed_follow_run(f, &e);
	if (rc == CAIRN_ECANCELED && s->cfg->follow)
		rc = 0;
	if (rc < 0)
		cairn_error_set(err, rc, "sync: %s of %s: %s",
				s->st->feed[0] ? "following the feed" : "the snapshot", s->cfg->from,
				fw.err.code ? cairn_error_msg(&fw.err) : cairn_error_msg(&e));
	s->st->pages_refused = cairn_feed_follow_stats(f)->refused;
	cairn_feed_follow_free(f);
	free(fw.seen);
	return rc;
}

int cairn_sync_run(const struct cairn_sync_config *cfg, struct cairn_sync_stats *st,
		   struct cairn_error *err)
{
	struct sync s = {.cfg = cfg, .st = st, .dirfd = -1};
	struct cairn_http_config hc;
	struct cairn_buf info = CAIRN_BUF_INIT(CAIRN_HTTP_CACHE_INFO_MAX);
	unsigned parallel = cfg->parallel ? cfg->parallel : CAIRN_SYNC_PARALLEL_DEFAULT;
	int rc;

	memset(st, 0, sizeof(*st));
	if (parallel > CAIRN_SYNC_PARALLEL_MAX)
		parallel = CAIRN_SYNC_PARALLEL_MAX;
	if (mkdir(cfg->to, 0755) < 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "sync: cannot create '%s'", cfg->to);
	s.dirfd = open(cfg->to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.dirfd < 0)
		return cairn_error_errno(err, errno, "sync: cannot open '%s'", cfg->to);
	if (mkdirat(s.dirfd, "nar", 0755) < 0 && errno != EEXIST) {
		rc = cairn_error_errno(err, errno, "sync: cannot create '%s/nar'", cfg->to);
		goto out;
	}
	sync_sweep(s.dirfd, NULL);
	sync_sweep(s.dirfd, "nar");
	sync_sweep(s.dirfd, "log");
	cairn_http_config_init(&hc);
	if ((rc = cairn_http_new(&s.http, &hc, err)) < 0 ||
	    (rc = cairn_http_server_new(&s.server, cfg->from, 0, err)) < 0 ||
	    (rc = cairn_dl_pool_new(&s.pool, 2, err)) < 0)
		goto out;
	/* nix-cache-info first: a replica without it is no cache */
	struct cairn_http_cache_info ci;
	if ((rc = sync_fetch_whole(&s, "nix-cache-info", CAIRN_HTTP_CACHE_INFO_MAX, &info, err)) < 0 ||
	    (rc = cairn_http_cache_info_parse(info.data, info.len, &ci, err)) < 0)
		goto out;
	/* the head's batch route is the head's: a replica served by nginx
	 * that said it would send every client a batch that 404s first */
	info.len = cairn_http_cache_info_drop(info.data, info.len, "CairnNarinfos");
	if ((rc = sync_write_atomic(cfg->to, s.dirfd, "nix-cache-info", info.data, info.len, err)) <
	    0)
		goto out;
	if (cfg->paths_file) {
		rc = sync_paths(&s, parallel, ci.store_dir[0] ? ci.store_dir : "/nix/store", err);
		goto out;
	}
	rc = replicate(&s, parallel, err);
out:
	while (s.live) /* an error left some in flight */
		sync_item_finish(s.live);
	cairn_buf_release(&info);
	cairn_dl_pool_free(s.pool);
	cairn_http_server_free(s.server);
	cairn_http_free(s.http);
	if (s.dirfd >= 0)
		close(s.dirfd);
	return rc;
}
