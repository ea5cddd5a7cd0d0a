/*
 * feed-follow.c - the one follower of a change feed (feed-follow.h): the
 * requests, the checks of every document (lib/feed-doc.c for pages,
 * lib/feed-reader.c for snapshots as they stream) and the rules for 410,
 * recreated feeds and failures.  What an event means is the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "cairn/feed-follow.h"
#include "cairn/http.h"
#include "feed-follow-int.h"
#include "cairn/io.h"
#include "cairn/banned.h"

struct cairn_feed_follow {
	struct cairn_feed_follow_config cfg;
	struct cairn_feed_pos pos;
	struct cairn_feed_follow_stats st;
	feed_get_fn get;
	void *get_ctx;
	bool contact; /* the head answered a feed request this session */
	char said[256]; /* the last trouble said */
	unsigned backoff_ms;
};

static void say(struct cairn_feed_follow *f, bool once, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct cairn_feed_follow *f, bool once, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* what came from the network is printed as printable ASCII only */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	if (once) {
		if (!strncmp(msg, f->said, sizeof(f->said) - 1))
			return;
		size_t len = strlen(msg);
		if (len >= sizeof(f->said))
			len = sizeof(f->said) - 1;
		memcpy(f->said, msg, len);
		f->said[len] = '\0';
	}
	if (f->cfg.log)
		f->cfg.log(f->cfg.ctx, msg);
}

/* ---- the default transport: the caller's HTTP client ---------------------- */

static bool stopped(void *ctx)
{
	struct cairn_feed_follow *f = ctx;
	return f->cfg.stop && f->cfg.stop(f->cfg.ctx);
}

static int http_get(void *ctx, const char *path, uint64_t max, long first_byte_ms,
		    int (*sink)(void *sctx, const void *data, size_t len), void *sink_ctx,
		    long *status, struct cairn_error *err)
{
	struct cairn_feed_follow *f = ctx;
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = f->cfg.server,
					.url = path,
					.max_body = max,
					.first_byte_timeout_ms = first_byte_ms,
					.on_data = sink,
					.ctx = sink_ctx};
	struct cairn_http_one one;
	/* a failure marks the server down; each request here is a new try */
	cairn_http_server_mark_up(f->cfg.server);
	/* when stopped, the request is left in flight: the caller frees the
	 * client, which drops it without calling back into this frame */
	int rc = cairn_http_wait_one(f->cfg.http, &rq, NULL, stopped, f, &one, err);
	*status = one.status;
	return rc;
}

/* ---- the handle ------------------------------------------------------------- */

int cairn_feed_follow_new(struct cairn_feed_follow **out, const struct cairn_feed_follow_config *cfg,
			  struct cairn_error *err)
{
	if (!cfg->kr || (!cfg->http && cfg->server) || (cfg->http && !cfg->server))
		return cairn_error_set(err, CAIRN_EINVAL, "feed: trusted keys and a head are needed");
	struct cairn_feed_follow *f = calloc(1, sizeof(*f));
	if (!f)
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	f->cfg = *cfg;
	f->pos = cfg->pos;
	f->pos.feed[CAIRN_FEED_ID_LEN] = '\0';
	if (!f->cfg.snapshot_max)
		f->cfg.snapshot_max = CAIRN_FEED_SNAPSHOT_MAX;
	if (f->cfg.wait_s > CAIRN_FEED_WAIT_MAX)
		f->cfg.wait_s = CAIRN_FEED_WAIT_MAX;
	f->get = http_get;
	f->get_ctx = f;
	f->backoff_ms = CAIRN_FEED_BACKOFF_MS;
	*out = f;
	return 0;
}

void feed_follow_set_transport(struct cairn_feed_follow *f, feed_get_fn get, void *ctx)
{
	f->get = get;
	f->get_ctx = ctx;
}

void cairn_feed_follow_free(struct cairn_feed_follow *f)
{
	free(f);
}

const struct cairn_feed_pos *cairn_feed_follow_pos(const struct cairn_feed_follow *f)
{
	return &f->pos;
}

const struct cairn_feed_follow_stats *cairn_feed_follow_stats(const struct cairn_feed_follow *f)
{
	return &f->st;
}

/* Forget where it is: the next step starts as at a first contact. */
static void forget(struct cairn_feed_follow *f)
{
	f->pos.feed[0] = '\0';
	f->pos.seq = 0;
}

static int moved(struct cairn_feed_follow *f, bool fresh)
{
	f->said[0] = '\0';
	f->backoff_ms = CAIRN_FEED_BACKOFF_MS;
	return f->cfg.on_position ? f->cfg.on_position(f->cfg.ctx, &f->pos, fresh) : 0;
}

/* ---- the snapshot ------------------------------------------------------------ */

static int to_fd(void *ctx, const void *data, size_t len)
{
	return cairn_write_all(*(int *)ctx, data, len);
}

struct snap_read {
	struct cairn_feed_reader *r;
	struct cairn_error *err;
};

static int snap_plain(void *ctx, const void *data, size_t len)
{
	struct snap_read *sr = ctx;
	return cairn_feed_reader_feed(sr->r, data, len, sr->err);
}

/* One pass over the compressed snapshot in fd: each record to on_event
 * (NULL: none), the document checked and its signature verified. */
static int snap_pass(struct cairn_feed_follow *f, int fd,
		     int (*on_event)(void *ctx, const struct cairn_feed_event *e),
		     const struct cairn_feed_doc **doc, struct cairn_feed_reader **r,
		     struct cairn_error *err)
{
	struct cairn_codec *c = NULL;
	struct snap_read sr = {NULL, err};
	char buf[65536];
	int rc;
	if (lseek(fd, 0, SEEK_SET) < 0)
		return cairn_error_errno(err, errno, "feed: cannot read the snapshot back");
	if ((rc = cairn_feed_reader_new(&sr.r, on_event, f->cfg.ctx, err)) < 0)
		return rc;
	*r = sr.r;
	if ((rc = cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				  CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, err)) < 0)
		return rc;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_error_errno(err, errno, "feed: cannot read the snapshot back");
			break;
		}
		if (n == 0) {
			rc = cairn_codec_finish(c, snap_plain, &sr, err);
			break;
		}
		if ((rc = cairn_codec_write(c, buf, (size_t)n, snap_plain, &sr, err)) < 0)
			break;
	}
	cairn_codec_free(c);
	if (rc == 0 && (rc = cairn_feed_reader_finish(sr.r, doc, err)) == 0 &&
	    (rc = cairn_feed_doc_verify(*doc, f->cfg.kr, err)) == 0 &&
	    (*doc)->kind != CAIRN_FEED_SNAPSHOT)
		rc = cairn_error_set(err, CAIRN_EFORMAT, "feed: a page where the snapshot was asked for");
	return rc;
}

/*
 * Fetch the snapshot to a temporary file (unlinked at once: nothing to
 * sweep after a kill), verify it whole, and only then, read again, give
 * its items (items: to on_item).  The position is the snapshot's.
 */
static int snapshot(struct cairn_feed_follow *f, bool items, enum cairn_feed_step *what,
		    struct cairn_error *err)
{
	char tmp[4200];
	const char *dir = f->cfg.tmp_dir ? f->cfg.tmp_dir : getenv("TMPDIR");
	struct cairn_feed_reader *r = NULL;
	const struct cairn_feed_doc *doc = NULL;
	long status = 0;
	int rc;
	snprintf(tmp, sizeof(tmp), "%s/.snapshot.zst.XXXXXX", dir && *dir ? dir : "/tmp");
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "feed: cannot create '%s'", tmp);
	unlink(tmp);
	rc = f->get(f->get_ctx, "feed/snapshot", f->cfg.snapshot_max, 0, to_fd, &fd, &status, err);
	if (rc == CAIRN_ECANCELED)
		goto out;
	if (rc < 0) {
		f->st.troubles++;
		*what = CAIRN_FEED_STEP_TROUBLE;
		say(f, true, "snapshot: %s (retrying)", cairn_error_msg(err));
		rc = 0;
		goto out;
	}
	rc = snap_pass(f, fd, NULL, &doc, &r, err);
	if (rc < 0) {
		f->st.refused++;
		*what = CAIRN_FEED_STEP_REFUSED;
		if (f->cfg.on_refused)
			f->cfg.on_refused(f->cfg.ctx, err);
		say(f, true, "snapshot refused: %s", cairn_error_msg(err));
		rc = 0;
		goto out;
	}
	if (f->pos.feed[0] && strcmp(doc->feed, f->pos.feed) != 0) {
		f->st.restarts++;
		say(f, true, "the feed is now %s, not %s: read from its snapshot", doc->feed,
		    f->pos.feed);
	}
	memcpy(f->pos.feed, doc->feed, sizeof(f->pos.feed));
	f->pos.seq = doc->next;
	f->pos.head = doc->head;
	cairn_feed_reader_free(r);
	r = NULL;
	if (items && f->cfg.on_item) {
		struct cairn_error e;
		cairn_error_init(&e);
		/* the bytes verified are in the file: a second pass sees them */
		if ((rc = snap_pass(f, fd, f->cfg.on_item, &doc, &r, &e)) < 0) {
			forget(f);
			rc = cairn_error_set(err, rc, "%s", cairn_error_msg(&e));
			goto out;
		}
	}
	f->st.snapshots++;
	f->contact = true;
	*what = CAIRN_FEED_STEP_APPLIED;
	rc = moved(f, true);
out:
	cairn_feed_reader_free(r);
	close(fd);
	return rc;
}

/* ---- pages -------------------------------------------------------------------- */

static int to_buf(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len) ? CAIRN_ELIMIT : 0;
}

static int refused(struct cairn_feed_follow *f, uint64_t since, enum cairn_feed_step *what,
		   struct cairn_error *err)
{
	f->st.refused++;
	*what = CAIRN_FEED_STEP_REFUSED;
	if (f->cfg.on_refused)
		f->cfg.on_refused(f->cfg.ctx, err);
	/* a page refused is not applied: nothing it says counts */
	say(f, true, "page after %" PRIu64 " refused: %s", since, cairn_error_msg(err));
	return 0;
}

int cairn_feed_follow_step(struct cairn_feed_follow *f, enum cairn_feed_step *what,
			   struct cairn_error *err)
{
	struct cairn_buf page = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	uint64_t probe_seq = 0; /* when probing for a recreated feed: the seq to go back to */
	bool probing = false;
	struct cairn_error local;
	int rc = 0;

	if (!err) /* the reason is said and passed to on_refused all the same */
		err = &local;
	cairn_error_init(err);
	*what = CAIRN_FEED_STEP_APPLIED;
	/* at most: a probe after 0, then the page or snapshot it leads to */
	for (int round = 0; round < 3; round++) {
		bool first = !f->pos.feed[0];
		bool head_probe = first && f->cfg.start == CAIRN_FEED_START_HEAD;
		uint64_t since = first ? 0 : f->pos.seq;
		unsigned wait = first || probing ? 0 : f->cfg.wait_s;
		char path[128];
		long status = 0;
		struct cairn_feed_doc doc;

		if (first && f->cfg.start == CAIRN_FEED_START_SNAPSHOT) {
			rc = snapshot(f, true, what, err);
			break;
		}
		cairn_buf_reset(&page);
		snprintf(path, sizeof(path), "feed/events?since=%" PRIu64 "%s", since,
			 head_probe || probing ? "&max=1" : "");
		if (wait)
			snprintf(path + strlen(path), sizeof(path) - strlen(path), "&wait=%u", wait);
		cairn_error_init(err);
		rc = f->get(f->get_ctx, path, CAIRN_FEED_PAGE_MAX, wait ? (wait + 15) * 1000L : 0,
			    to_buf, &page, &status, err);
		if (rc == CAIRN_ECANCELED)
			break;
		if (rc < 0 && status == 410) {
			cairn_error_init(err);
			if (f->cfg.start == CAIRN_FEED_START_HEAD) {
				if (!first)
					say(f, false,
					    "behind what the head keeps (after event %" PRIu64
					    "): going on from its head; what was missed is not used",
					    since);
				rc = snapshot(f, false, what, err);
			} else {
				say(f, false, "behind what the head keeps (after event %" PRIu64
					      "): reading its snapshot",
				    since);
				rc = snapshot(f, true, what, err);
			}
			break;
		}
		if (rc < 0 && !f->contact && (status == 404 || status == 403)) {
			*what = CAIRN_FEED_STEP_NOFEED;
			rc = 0;
			break;
		}
		if (rc < 0 && status == 400 && !first && !probing && f->pos.seq > 0) {
			/* past the head: the feed may have been recreated (its
			 * own numbering); its page after 0 says (below) */
			probing = true;
			probe_seq = f->pos.seq;
			f->pos.seq = 0;
			continue;
		}
		if (rc < 0) {
			if (probing)
				f->pos.seq = probe_seq;
			f->st.troubles++;
			*what = CAIRN_FEED_STEP_TROUBLE;
			say(f, true, "%s (retrying)", cairn_error_msg(err));
			rc = 0;
			break;
		}
		f->contact = true;
		if ((rc = cairn_feed_doc_parse(page.data, page.len, &doc, err)) < 0 ||
		    (rc = cairn_feed_doc_verify(&doc, f->cfg.kr, err)) < 0) {
			cairn_feed_doc_release(&doc);
			if (probing)
				f->pos.seq = probe_seq;
			rc = refused(f, since, what, err);
			break;
		}
		if (!first && doc.kind == CAIRN_FEED_PAGE && strcmp(doc.feed, f->pos.feed) != 0) {
			/* signed by a trusted key, but of another feed: the
			 * head's log was made anew; start over in it */
			f->st.restarts++;
			say(f, true, "the feed is now %s, not %s: read from its start", doc.feed,
			    f->pos.feed);
			forget(f);
			cairn_feed_doc_release(&doc);
			probing = false;
			continue;
		}
		if (probing) {
			/* the same feed after all: the 400 was something else */
			cairn_feed_doc_release(&doc);
			f->pos.seq = probe_seq;
			f->st.troubles++;
			*what = CAIRN_FEED_STEP_TROUBLE;
			cairn_error_set(err, CAIRN_EFORMAT,
					"the head refused the events after %" PRIu64, probe_seq);
			say(f, true, "%s", cairn_error_msg(err));
			rc = 0;
			break;
		}
		if ((rc = cairn_feed_doc_check_page(&doc, first ? NULL : f->pos.feed, since, err)) < 0) {
			cairn_feed_doc_release(&doc);
			rc = refused(f, since, what, err);
			break;
		}
		memcpy(f->pos.feed, doc.feed, sizeof(f->pos.feed));
		f->pos.head = doc.head;
		if (head_probe) {
			/* where the head is now: following starts there */
			f->pos.seq = doc.head;
		} else {
			for (size_t i = 0; i < doc.n_events && rc == 0; i++)
				if (f->cfg.on_event)
					rc = f->cfg.on_event(f->cfg.ctx, &doc.events[i]);
			if (rc < 0) {
				if (first)
					forget(f);
				cairn_feed_doc_release(&doc);
				break;
			}
			f->pos.seq = doc.next;
			f->st.pages++;
		}
		cairn_feed_doc_release(&doc);
		rc = moved(f, first);
		break;
	}
	cairn_buf_release(&page);
	return rc;
}

/* Wait ms, stepping the client (the caller's transfers go on), or less
 * when asked to stop. */
static void pause_ms(struct cairn_feed_follow *f, unsigned ms)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (f->cfg.stop && f->cfg.stop(f->cfg.ctx))
			return;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		int64_t done = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000 +
			       (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (done >= (int64_t)ms)
			return;
		int64_t left = (int64_t)ms - done, slice = left < 50 ? left : 50;
		struct timespec a, b;
		clock_gettime(CLOCK_MONOTONIC, &a);
		if (f->cfg.http)
			cairn_http_step(f->cfg.http, (int)slice, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b);
		int64_t took = (int64_t)(b.tv_sec - a.tv_sec) * 1000 +
			       (b.tv_nsec - a.tv_nsec) / 1000000;
		/* an idle client returns at once: sleep the rest of the slice */
		if (took < slice) {
			struct timespec ts = {0, (long)(slice - took) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
}

int cairn_feed_follow_run(struct cairn_feed_follow *f, struct cairn_error *err)
{
	while (!(f->cfg.stop && f->cfg.stop(f->cfg.ctx))) {
		enum cairn_feed_step what;
		struct cairn_error e;
		cairn_error_init(&e);
		int rc = cairn_feed_follow_step(f, &what, &e);
		if (rc == CAIRN_ECANCELED)
			return 0;
		if (rc < 0)
			return cairn_error_set(err, rc, "%s", cairn_error_msg(&e));
		if (what == CAIRN_FEED_STEP_NOFEED)
			say(f, true, "no feed here (404): retrying");
		if (what != CAIRN_FEED_STEP_APPLIED) {
			pause_ms(f, f->backoff_ms);
			f->backoff_ms = f->backoff_ms * 2 > CAIRN_FEED_BACKOFF_MAX_MS
						? CAIRN_FEED_BACKOFF_MAX_MS
						: f->backoff_ms * 2;
		}
	}
	return 0;
}

/* ---- a position in a file ------------------------------------------------------ */

int cairn_feed_pos_load(const char *path, struct cairn_feed_pos *pos)
{
	char b[256], feed[64];
	uint64_t seq;
	memset(pos, 0, sizeof(*pos));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return CAIRN_ENOENT;
	ssize_t n = read(fd, b, sizeof(b) - 1);
	close(fd);
	if (n <= 0)
		return CAIRN_ENOENT;
	b[n] = 0;
	if (sscanf(b, "feed %63s\nseq %" SCNu64, feed, &seq) != 2 ||
	    strlen(feed) != CAIRN_FEED_ID_LEN || seq > CAIRN_FEED_SEQ_MAX)
		return CAIRN_ENOENT;
	memcpy(pos->feed, feed, sizeof(pos->feed));
	pos->seq = seq;
	return 0;
}

int cairn_feed_pos_save(const char *path, const struct cairn_feed_pos *pos,
			struct cairn_error *err)
{
	char b[128], tmp[4200];
	int n = snprintf(b, sizeof(b), "feed %s\nseq %" PRIu64 "\n", pos->feed, pos->seq);
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "feed: cannot write '%s'", tmp);
	bool ok = write(fd, b, (size_t)n) == n && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!ok || rename(tmp, path) != 0) {
		saved = ok ? errno : saved;
		unlink(tmp);
		return cairn_error_errno(err, saved, "feed: cannot write '%s'", path);
	}
	return 0;
}
