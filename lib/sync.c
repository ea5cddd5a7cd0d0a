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

#include "cairn/codec.h"
#include "cairn/feed.h"
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

/* ---- whole small bodies (nix-cache-info, the snapshot) -------------------- */

struct fetch_whole {
	struct cairn_buf *out; /* or, when NULL, fd */
	int fd;
	struct cairn_error err;
	bool finished;
	int code;
	long status;
};

static int whole_data(void *ctx, const void *data, size_t len)
{
	struct fetch_whole *w = ctx;
	const char *p = data;
	if (w->out)
		return cairn_buf_append(w->out, data, len) ? CAIRN_ELIMIT : 0;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CAIRN_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void whole_done(void *ctx, const struct cairn_http_result *res)
{
	struct fetch_whole *w = ctx;
	w->finished = true;
	w->code = res->err.code;
	w->err = res->err;
	w->status = res->status;
}

/* GET path whole into out (NULL: into fd); *status (may be NULL) gets the
 * final status. */
int sync_fetch_whole(struct sync *s, const char *path, uint64_t max, long first_byte_ms,
		     struct cairn_buf *out, int fd, long *status, struct cairn_error *err)
{
	struct fetch_whole w = {.out = out, .fd = fd};
	bool absolute = !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8);
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = absolute ? NULL : s->server,
					.url = path,
					.max_body = max,
					.first_byte_timeout_ms = first_byte_ms,
					.on_data = whole_data,
					.on_done = whole_done,
					.ctx = &w};
	cairn_error_init(&w.err);
	int rc = cairn_http_add(s->http, &rq, err);
	if (rc < 0)
		return rc;
	while (!w.finished) {
		if ((rc = cairn_http_step(s->http, 200, err)) < 0)
			return rc;
		/* a long-poll is left in flight when asked to stop: the
		 * caller returns and frees the client, which drops it without
		 * calling back into this frame */
		if (!w.finished && first_byte_ms && s->cfg->stop && s->cfg->stop(s->cfg->log_ctx))
			return cairn_error_set(err, CAIRN_ECANCELED, "sync: stopped");
	}
	if (status)
		*status = w.status;
	if (w.code)
		return cairn_error_set(err, w.code, "%s", cairn_error_msg(&w.err));
	return 0;
}

/* ---- the snapshot, as it streams ---------------------------------------- */

struct snap_run {
	struct sync *s;
	unsigned parallel;
	int fd;
	struct cairn_feed_reader *r;
	struct cairn_error *err;
};

/* Each item of the snapshot as it is read: copied once trusted (item_start). */
static int snap_event(void *ctx, const struct cairn_feed_event *e)
{
	struct snap_run *sr = ctx;
	sr->s->st->items++;
	return sync_add_item(sr->s, e, sr->parallel, sr->err);
}

static int snap_in(void *ctx, const void *data, size_t len)
{
	struct snap_run *sr = ctx;
	return cairn_feed_reader_feed(sr->r, data, len, sr->err);
}

/*
 * Fetch the snapshot (compressed, to a temporary file in DIR: the
 * transfer does not wait for the copies), then read it as it streams,
 * copying each item as it comes, and check its signature at the end.  An
 * item copied before the end was trusted through its own narinfo; what the
 * snapshot's signature adds, its feed id and sequence number, is taken
 * only once it verified.
 */
static int snapshot(struct sync *s, unsigned parallel, char feed[33], uint64_t *seq,
		    struct cairn_error *err)
{
	char tmp[4200];
	struct snap_run sr = {s, parallel, -1, NULL, err};
	struct cairn_codec *c = NULL;
	const struct cairn_feed_doc *doc;
	int rc;
	snprintf(tmp, sizeof(tmp), "%s/.snapshot.zst.XXXXXX", s->cfg->to);
	sr.fd = mkostemp(tmp, O_CLOEXEC);
	if (sr.fd < 0)
		return cairn_error_errno(err, errno, "sync: cannot create '%s'", tmp);
	unlink(tmp); /* nothing to sweep after a kill */
	if ((rc = sync_fetch_whole(s, "feed/snapshot", CAIRN_SYNC_SNAPSHOT_MAX, 0, NULL, sr.fd,
				   NULL, err)) < 0)
		goto out;
	if (lseek(sr.fd, 0, SEEK_SET) < 0) {
		rc = cairn_error_errno(err, errno, "sync: cannot read the snapshot back");
		goto out;
	}
	if ((rc = cairn_feed_reader_new(&sr.r, snap_event, &sr, err)) < 0 ||
	    (rc = cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				  CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, err)) < 0)
		goto out;
	char buf[65536];
	for (;;) {
		ssize_t n = read(sr.fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_error_errno(err, errno, "sync: cannot read the snapshot back");
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = cairn_codec_write(c, buf, (size_t)n, snap_in, &sr, err)) < 0)
			goto out;
	}
	if ((rc = cairn_codec_finish(c, snap_in, &sr, err)) < 0 ||
	    (rc = sync_settle_all(s, err)) < 0 ||
	    (rc = cairn_feed_reader_finish(sr.r, &doc, err)) < 0 ||
	    (rc = cairn_feed_doc_verify(doc, s->cfg->kr, err)) < 0)
		goto out;
	if (doc->kind != CAIRN_FEED_SNAPSHOT) {
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "sync: a page where the snapshot was asked for");
		goto out;
	}
	memcpy(feed, doc->feed, 33);
	*seq = doc->next;
out:
	cairn_codec_free(c);
	cairn_feed_reader_free(sr.r);
	close(sr.fd);
	if (rc < 0 && err->code == 0)
		cairn_error_set(err, rc, "sync: cannot read the snapshot of %s", s->cfg->from);
	return rc;
}

/*
 * Apply a verified document's events in order: additions downloaded up to
 * `parallel` at once, a removal only after every addition before it is
 * settled (an add and a remove of one item in a page keep their order).
 */
static int apply(struct sync *s, const struct cairn_feed_doc *doc, unsigned parallel,
		 struct cairn_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < doc->n_events && rc == 0; i++) {
		const struct cairn_feed_event *e = &doc->events[i];
		if (e->kind == CAIRN_FEED_REMOVE) {
			if ((rc = sync_settle(s, 0, err)) == 0)
				rc = sync_remove_item(s, e->hashpart, err);
			continue;
		}
		rc = sync_add_item(s, e, parallel, err);
	}
	if (rc == 0)
		rc = sync_settle_all(s, err);
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

/*
 * Follow the feed from st->seq: long-poll pages, verify each (signature,
 * feed, position), apply it.  A 410 (too far behind) re-reads the
 * snapshot.  Until cfg->stop says so, or an error.
 */
static int follow(struct sync *s, unsigned parallel, struct cairn_error *err)
{
	struct cairn_buf page = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	int rc = 0;
	write_status(s, s->st->seq);
	while (!(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx))) {
		char path[128];
		long status = 0;
		struct cairn_feed_doc doc;
		struct cairn_error e;
		cairn_error_init(&e);
		cairn_buf_reset(&page);
		snprintf(path, sizeof(path), "feed/events?since=%" PRIu64 "&wait=%u", s->st->seq,
			 CAIRN_SYNC_WAIT);
		rc = sync_fetch_whole(s, path, CAIRN_FEED_PAGE_MAX, (CAIRN_SYNC_WAIT + 15) * 1000L,
				      &page, -1, &status, &e);
		if (rc == CAIRN_ECANCELED) {
			rc = 0;
			break;
		}
		if (rc < 0 && status == 410) {
			sync_say(s, "feed: behind what the head keeps: reading the snapshot again");
			char feed[33];
			uint64_t seq = 0;
			rc = snapshot(s, parallel, feed, &seq, err);
			if (rc == 0 && strcmp(feed, s->st->feed) != 0)
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "sync: the head's feed is now %s, not %s",
						     feed, s->st->feed);
			if (rc == 0)
				s->st->seq = seq;
			if (rc < 0)
				break;
			continue;
		}
		if (rc < 0) {
			/* the head is down or restarting: say so, wait, go on */
			sync_say(s, "feed: %s (retrying)", cairn_error_msg(&e));
			for (int i = 0; i < 20 && !(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx));
			     i++)
				cairn_http_step(s->http, 50, NULL);
			rc = 0;
			continue;
		}
		if ((rc = cairn_feed_doc_parse(page.data, page.len, &doc, &e)) < 0 ||
		    (rc = cairn_feed_doc_verify(&doc, s->cfg->kr, &e)) < 0 ||
		    (rc = cairn_feed_doc_check_page(&doc, s->st->feed, s->st->seq, &e)) < 0) {
			/* a page refused is not applied: nothing it says counts */
			sync_say(s, "feed: page after %" PRIu64 " refused: %s", s->st->seq,
				 cairn_error_msg(&e));
			s->st->pages_refused++;
			cairn_feed_doc_release(&doc);
			for (int i = 0; i < 20 && !(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx));
			     i++)
				cairn_http_step(s->http, 50, NULL);
			rc = 0;
			continue;
		}
		rc = apply(s, &doc, parallel, err);
		if (rc == 0) {
			s->st->seq = doc.next;
			s->st->items += doc.n_events;
			write_status(s, doc.head);
		}
		cairn_feed_doc_release(&doc);
		if (rc < 0)
			break;
	}
	cairn_buf_release(&page);
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
	if ((rc = sync_fetch_whole(&s, "nix-cache-info", CAIRN_HTTP_CACHE_INFO_MAX, 0, &info, -1,
				   NULL, err)) < 0 ||
	    (rc = cairn_http_cache_info_parse(info.data, info.len, &ci, err)) < 0 ||
	    (rc = sync_write_atomic(cfg->to, s.dirfd, "nix-cache-info", info.data, info.len, err)) <
		0)
		goto out;
	if (cfg->paths_file) {
		rc = sync_paths(&s, parallel, ci.store_dir[0] ? ci.store_dir : "/nix/store", err);
		goto out;
	}
	if ((rc = snapshot(&s, parallel, st->feed, &st->seq, err)) < 0)
		goto out;
	if (cfg->follow && (rc = follow(&s, parallel, err)) < 0)
		goto out;
	rc = 0;
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
