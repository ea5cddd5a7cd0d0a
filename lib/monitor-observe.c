/*
 * monitor-observe.c - the monitor's observer thread: learn which items
 * exist (the servers' signed feeds, the path list), ask every server about
 * them through the query engine (survey.h), record what each said
 * (monitor-db.c) and settle the verdicts; then diff what differs through
 * the challenge engine (challenge.h: download, verify, list the files).
 *
 * A tick every feed_poll_ms: the feeds' new pages (verified before
 * anything on them is used), and every `interval` seconds a full pass:
 * the path list re-read and every known item asked again.  One survey per
 * tick, in one transaction: the pages read a consistent state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/challenge.h"
#include "cairn/codec.h"
#include "cairn/feed.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/paths-list.h"
#include "cairn/survey.h"
#include "monitor-int.h"
#include "cairn/banned.h"

/* The --paths file: at most this many bytes. */
#define MON_PATHS_MAX ((size_t)256 << 20)
/* A feed's snapshot, compressed, read in memory: at most this many bytes. */
#define MON_SNAPSHOT_MAX ((uint64_t)512 << 20)
/* Pages read from one feed in one tick (the rest next tick). */
#define MON_PAGES_PER_TICK 50
/* Seconds between reads of the peers' logs. */
#define MON_PEER_INTERVAL 2
/* Differing items compared per tick. */
#define MON_DIFFS_PER_TICK 4

void mon_say(struct cairn_monitor *m, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!m->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m->cfg.log(m->cfg.log_ctx, msg);
}

struct feed_state {
	int has_feed; /* -1 not known yet, 0 no, 1 yes */
	char feed[33];
	uint64_t seq;
	/* what was last said about this feed: a failure that repeats every
	 * poll is said once, until something else happens */
	char said[256];
};

struct observer {
	struct cairn_monitor *m;
	struct cairn_http *http;
	struct cairn_http_server **srv;
	size_t n;
	struct feed_state *fs;
	/* this tick */
	struct cairn_survey *sv;
	int64_t now;
	int64_t *item; /* per path index: the item's id, 0 before its first answer */
	uint8_t *got;  /* per path index: answers recorded */
	size_t cap;
	size_t used; /* entries of item and got the last tick touched */
	struct cairn_http_server **peer; /* per --peer */
	int64_t next_peers;		  /* when the peers' logs are read again */
	char **srv_error; /* per server: the last failure this tick */
	bool *srv_ok;	  /* per server: answered something this tick */
	int failed;
	struct cairn_error fail_err;
};

static void feed_say(struct observer *o, size_t i, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void feed_say(struct observer *o, size_t i, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strncmp(msg, o->fs[i].said, sizeof(o->fs[i].said) - 1) == 0)
		return;
	size_t len = strlen(msg);
	if (len >= sizeof(o->fs[i].said))
		len = sizeof(o->fs[i].said) - 1;
	memcpy(o->fs[i].said, msg, len);
	o->fs[i].said[len] = '\0';
	mon_say(o->m, "%s: %s", o->m->urls[i], msg);
}

/* ---- small HTTP bodies (feed pages, snapshots) ---------------------------- */

struct whole {
	struct cairn_buf *out;
	bool finished;
	long status;
	struct cairn_error err;
};

static int whole_data(void *ctx, const void *data, size_t len)
{
	struct whole *w = ctx;
	return cairn_buf_append(w->out, data, len) ? CAIRN_ELIMIT : 0;
}

static void whole_done(void *ctx, const struct cairn_http_result *res)
{
	struct whole *w = ctx;
	w->finished = true;
	w->status = res->status;
	w->err = res->err;
}

/* GET path of server s whole into out; *status gets the final status. */
static int get_whole(struct observer *o, struct cairn_http_server *s, const char *path,
		     uint64_t max, struct cairn_buf *out, long *status, struct cairn_error *err)
{
	struct whole w = {.out = out};
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = s,
					.url = path,
					.max_body = max,
					.on_data = whole_data,
					.on_done = whole_done,
					.ctx = &w};
	int rc;
	cairn_error_init(&w.err);
	if ((rc = cairn_http_add(o->http, &rq, err)) < 0)
		return rc;
	while (!w.finished)
		if ((rc = cairn_http_step(o->http, 200, err)) < 0)
			return rc;
	*status = w.status;
	if (w.err.code)
		return cairn_error_set(err, w.err.code, "%s", cairn_error_msg(&w.err));
	return 0;
}

/* ---- learning items ------------------------------------------------------- */

/* Queue the store path a feed's narinfo names. */
static int add_from_narinfo(struct observer *o, const char *text, size_t len)
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error e;
	cairn_error_init(&e);
	if (cairn_narinfo_parse(text, len, &ni, &e) < 0) {
		mon_say(o->m, "feed: an event's narinfo does not parse: %s", cairn_error_msg(&e));
		return 0;
	}
	int rc = cairn_survey_add(o->sv, ni->store_path, NULL, &e);
	if (rc < 0)
		mon_say(o->m, "feed: %s", cairn_error_msg(&e));
	cairn_narinfo_free(ni);
	return rc == CAIRN_ELIMIT ? rc : 0;
}

static int add_by_hash(struct observer *o, const char *hash)
{
	char path[4096];
	struct cairn_error e;
	cairn_error_init(&e);
	/* an item removed before the monitor ever saw it is nothing to it */
	if (mon_db_path_of(o->m->w, hash, path, sizeof(path), &e) < 0)
		return 0;
	return cairn_survey_add(o->sv, path, NULL, &e) == CAIRN_ELIMIT ? CAIRN_ELIMIT : 0;
}

static int snap_event(void *ctx, const struct cairn_feed_event *e)
{
	struct observer *o = ctx;
	return e->narinfo ? add_from_narinfo(o, e->narinfo, e->narinfo_len) : 0;
}

static int snap_skip(void *ctx, const struct cairn_feed_event *e)
{
	(void)ctx;
	(void)e;
	return 0;
}

struct snap_in {
	struct cairn_feed_reader *r;
	struct cairn_error *err;
};

static int snap_bytes(void *ctx, const void *data, size_t len)
{
	struct snap_in *si = ctx;
	return cairn_feed_reader_feed(si->r, data, len, si->err);
}

/*
 * Read a snapshot (zstd, whole in body).  check: verify it and give its
 * feed id and position; else queue its items.
 */
static int snapshot_pass(struct observer *o, const struct cairn_buf *body, bool check,
			 char feed[33], uint64_t *next, struct cairn_error *err)
{
	struct cairn_codec *c = NULL;
	struct snap_in si = {NULL, err};
	const struct cairn_feed_doc *doc;
	int rc;
	if ((rc = cairn_feed_reader_new(&si.r, check ? snap_skip : snap_event, o, err)) < 0 ||
	    (rc = cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				  CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, err)) < 0 ||
	    (rc = cairn_codec_write(c, body->data, body->len, snap_bytes, &si, err)) < 0 ||
	    (rc = cairn_codec_finish(c, snap_bytes, &si, err)) < 0 ||
	    (rc = cairn_feed_reader_finish(si.r, &doc, err)) < 0)
		goto out;
	if (check) {
		if ((rc = cairn_feed_doc_verify(doc, o->m->cfg.kr, err)) < 0)
			goto out;
		if (doc->kind != CAIRN_FEED_SNAPSHOT) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "a page where the snapshot was asked for");
			goto out;
		}
		memcpy(feed, doc->feed, 33);
		*next = doc->next;
	}
out:
	cairn_codec_free(c);
	cairn_feed_reader_free(si.r);
	return rc;
}

/*
 * Read server i's snapshot: read twice, so that nothing of it is used
 * before its signature verified (the compressed body is kept in memory,
 * its items are not).
 */
static int read_snapshot(struct observer *o, size_t i, struct cairn_error *err)
{
	struct cairn_buf body = CAIRN_BUF_INIT(MON_SNAPSHOT_MAX);
	char feed[33];
	uint64_t next = 0;
	long status = 0;
	int rc;
	if ((rc = get_whole(o, o->srv[i], "feed/snapshot", MON_SNAPSHOT_MAX, &body, &status,
			    err)) < 0 ||
	    (rc = snapshot_pass(o, &body, true, feed, &next, err)) < 0 ||
	    (rc = snapshot_pass(o, &body, false, NULL, NULL, err)) < 0)
		goto out;
	memcpy(o->fs[i].feed, feed, 33);
	o->fs[i].seq = next;
	atomic_fetch_add(&o->m->feed_pages, 1);
	rc = mon_db_feed_set(o->m->w, o->m->server_ids[i], feed, next, err);
out:
	cairn_buf_release(&body);
	return rc;
}

/*
 * Read server i's new feed pages and queue what they name.  A server
 * without a feed (404 at first contact) is asked through the path list
 * only.  Failures are the server's, said and retried next tick.
 */
static int poll_feed(struct observer *o, size_t i)
{
	struct feed_state *fs = &o->fs[i];
	struct cairn_buf page = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	const char *url = o->m->urls[i];
	uint64_t saved_seq = fs->seq;
	bool restarted = false;
	int rc = 0;

	for (int n = 0; n < MON_PAGES_PER_TICK && rc == 0; n++) {
		char path[96];
		long status = 0;
		struct cairn_feed_doc doc;
		struct cairn_error e;
		cairn_error_init(&e);
		cairn_buf_reset(&page);
		snprintf(path, sizeof(path), "feed/events?since=%" PRIu64, fs->seq);
		if (get_whole(o, o->srv[i], path, CAIRN_FEED_PAGE_MAX, &page, &status, &e) < 0) {
			if (fs->has_feed < 0 && (status == 404 || status == 403)) {
				fs->has_feed = 0;
				mon_say(o->m, "%s has no feed: asked through the path list", url);
				return mon_db_server_status(o->m->w, o->m->server_ids[i], 0, NULL,
							    o->now, &o->fail_err);
			}
			if (status == 410) {
				if (read_snapshot(o, i, &e) < 0) {
					feed_say(o, i, "feed snapshot refused: %s", cairn_error_msg(&e));
					atomic_fetch_add(&o->m->pages_refused, 1);
					break;
				}
				continue;
			}
			if (status == 400 && fs->seq > 0 && !restarted) {
				/* past the head: the server's feed may have been
				 * recreated; its first page says (below) */
				restarted = true;
				fs->seq = 0;
				continue;
			}
			feed_say(o, i, "feed: %s", cairn_error_msg(&e));
			break;
		}
		if (fs->has_feed != 1) {
			fs->has_feed = 1;
			if ((rc = mon_db_server_status(o->m->w, o->m->server_ids[i], 1, NULL, o->now,
						       &o->fail_err)) < 0)
				break;
		}
		bool parsed = cairn_feed_doc_parse(page.data, page.len, &doc, &e) == 0 &&
			      cairn_feed_doc_verify(&doc, o->m->cfg.kr, &e) == 0;
		if (parsed && fs->feed[0] && strcmp(doc.feed, fs->feed) != 0) {
			/* a new feed (its database recreated): read it from the
			 * start; the items it names are asked of every server
			 * anyway, so the feed's word is never taken for content */
			feed_say(o, i, "the feed is now %s, not %s: read from the start", doc.feed,
				 fs->feed);
			fs->feed[0] = '\0';
			if (fs->seq != 0) {
				cairn_feed_doc_release(&doc);
				fs->seq = 0;
				restarted = true;
				continue;
			}
		} else if (restarted && fs->seq == 0 && parsed && fs->feed[0]) {
			/* the same feed after all: the 400 was something else */
			cairn_feed_doc_release(&doc);
			fs->seq = saved_seq;
			feed_say(o, i, "feed: the server refused the events after %" PRIu64,
				 saved_seq);
			break;
		}
		if (!parsed ||
		    cairn_feed_doc_check_page(&doc, fs->feed[0] ? fs->feed : NULL, fs->seq, &e) < 0) {
			/* a page refused is not used: nothing it says counts */
			feed_say(o, i, "feed page after %" PRIu64 " refused: %s", fs->seq,
				 cairn_error_msg(&e));
			atomic_fetch_add(&o->m->pages_refused, 1);
			cairn_feed_doc_release(&doc);
			break;
		}
		atomic_fetch_add(&o->m->feed_pages, 1);
		fs->said[0] = '\0';
		for (size_t k = 0; k < doc.n_events && rc == 0; k++) {
			const struct cairn_feed_event *ev = &doc.events[k];
			rc = ev->kind == CAIRN_FEED_ADD
				     ? add_from_narinfo(o, ev->narinfo, ev->narinfo_len)
				     : add_by_hash(o, ev->hashpart);
		}
		bool more = doc.next < doc.head && doc.n_events > 0;
		snprintf(fs->feed, sizeof(fs->feed), "%s", doc.feed);
		fs->seq = doc.next;
		if (rc == 0)
			rc = mon_db_feed_set(o->m->w, o->m->server_ids[i], fs->feed, fs->seq,
					     &o->fail_err);
		cairn_feed_doc_release(&doc);
		if (!more)
			break;
	}
	cairn_buf_release(&page);
	return rc;
}

static int add_listed(void *ctx, const char *path)
{
	struct observer *o = ctx;
	struct cairn_error e;
	cairn_error_init(&e);
	int rc = cairn_survey_add(o->sv, path, NULL, &e);
	if (rc == CAIRN_ELIMIT)
		return rc;
	if (rc < 0)
		mon_say(o->m, "%s: %s", o->m->cfg.paths_file, cairn_error_msg(&e));
	return 0;
}

/* Queue every store path of the path list: a file or a URL (a Hydra-style
 * store-paths.xz), read by paths-list.h; one that cannot be read is said
 * and the pass goes on with the items known. */
static int read_paths(struct observer *o)
{
	const char *where = o->m->cfg.paths_file;
	struct cairn_buf raw = CAIRN_BUF_INIT(MON_PATHS_MAX);
	struct cairn_error e;
	long status = 0;
	int rc;
	cairn_error_init(&e);
	if (!cairn_paths_list_is_url(where))
		rc = cairn_paths_list_file(where, &raw, &e);
	else if ((rc = get_whole(o, NULL, where, MON_PATHS_MAX, &raw, &status, &e)) == 0 &&
		 status != 200)
		rc = cairn_error_set(&e, CAIRN_ENET, "the path list '%s': HTTP %ld", where,
				     status);
	if (rc == 0)
		rc = cairn_paths_list_each(raw.data, raw.len, MON_PATHS_MAX, add_listed, o, &e);
	cairn_buf_release(&raw);
	if (rc == CAIRN_ELIMIT && !e.code)
		return rc; /* the survey is full: as before, the pass stops */
	if (rc < 0)
		mon_say(o->m, "%s", cairn_error_msg(&e));
	return 0;
}

static int add_known(void *ctx, const char *path)
{
	struct observer *o = ctx;
	struct cairn_error e;
	cairn_error_init(&e);
	int rc = cairn_survey_add(o->sv, path, NULL, &e);
	return rc == CAIRN_ELIMIT ? rc : 0;
}

/* ---- recording answers ---------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The References as a set: sorted, space-separated, into b. */
static int refs_text(const struct cairn_narinfo *ni, struct cairn_buf *b)
{
	char **v = NULL;
	int rc = 0;
	if (ni->n_refs) {
		v = malloc(ni->n_refs * sizeof(*v));
		if (!v)
			return CAIRN_ENOMEM;
		memcpy(v, ni->refs, ni->n_refs * sizeof(*v));
		qsort(v, ni->n_refs, sizeof(*v), cmp_str);
	}
	for (size_t i = 0; i < ni->n_refs && rc == 0; i++)
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			rc = cairn_buf_printf(b, "%s%s", b->len ? " " : "", v[i]);
	free(v);
	return rc;
}

static int grow(struct observer *o, size_t idx)
{
	if (idx < o->cap)
		return 0;
	size_t nc = o->cap ? o->cap : 1024;
	while (nc <= idx)
		nc *= 2;
	int64_t *it = realloc(o->item, nc * sizeof(*it));
	if (!it)
		return CAIRN_ENOMEM;
	o->item = it;
	uint8_t *g = realloc(o->got, nc);
	if (!g)
		return CAIRN_ENOMEM;
	o->got = g;
	memset(o->item + o->cap, 0, (nc - o->cap) * sizeof(*it));
	memset(o->got + o->cap, 0, nc - o->cap);
	o->cap = nc;
	return 0;
}

static void server_failed(struct observer *o, size_t s, const struct cairn_error *e)
{
	if (o->srv_error[s])
		return;
	o->srv_error[s] = strdup(cairn_error_msg(e)[0] ? cairn_error_msg(e) : "no answer");
}

/*
 * One server's answer about one path.  An UNKNOWN (no answer) records
 * nothing: what the server said before stands, so a server going down is
 * no disagreement.  Once every server answered, the verdict is settled.
 */
static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct observer *o = ctx;
	struct cairn_monitor *m = o->m;
	struct cairn_error *err = &o->fail_err;
	struct cairn_buf refs = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	char hs[CAIRN_HASH_STR_MAX];
	size_t pi = r->path_index;
	int rc;

	atomic_fetch_add(&m->lookups, 1);
	if ((rc = grow(o, pi)) < 0)
		return cairn_error_set(err, rc, "monitor: out of memory");
	const char *path = cairn_survey_path(o->sv, pi);
	const char *base = strrchr(path, '/');
	char hash[MON_HASH_LEN + 1];
	snprintf(hash, sizeof(hash), "%.32s", base ? base + 1 : path);
	if (!o->item[pi]) {
		if ((rc = mon_db_item(m->w, hash, path, o->now, &o->item[pi], err)) < 0)
			return rc;
		/* the local store, once per item and pass, before any verdict */
		if (m->store && (rc = mon_store_observe(m, o->item[pi], hash, o->now, err)) < 0)
			return rc;
	}

	struct mon_obs_in obs = {0};
	bool record = true;
	switch (r->outcome) {
	case CAIRN_SURVEY_PRESENT: {
		struct cairn_verify_result vr;
		struct cairn_error ve;
		cairn_error_init(&ve);
		cairn_narinfo_verify(r->narinfo, m->cfg.kr, &vr, &ve);
		cairn_hash_format(&r->narinfo->nar_hash, CAIRN_HASH_NIX32, hs, sizeof(hs));
		if ((rc = refs_text(r->narinfo, &refs)) < 0) {
			cairn_buf_release(&refs);
			return cairn_error_set(err, rc, "monitor: out of memory");
		}
		obs = (struct mon_obs_in){.state = CAIRN_MONITOR_PRESENT,
					  .sig = cairn_monitor_sig_of(vr.status),
					  .nar_hash = hs,
					  .nar_size = r->narinfo->nar_size,
					  .refs = refs.data ? refs.data : "",
					  .narinfo = r->text,
					  .narinfo_len = r->text_len};
		o->srv_ok[r->server_index] = true;
		break;
	}
	case CAIRN_SURVEY_ABSENT:
		obs = (struct mon_obs_in){.state = CAIRN_MONITOR_GONE, .sig = CAIRN_MONITOR_SIG_UNSIGNED};
		o->srv_ok[r->server_index] = true;
		break;
	case CAIRN_SURVEY_INVALID:
		obs = (struct mon_obs_in){.state = CAIRN_MONITOR_BROKEN,
					  .sig = CAIRN_MONITOR_SIG_UNSIGNED,
					  .narinfo = r->text,
					  .narinfo_len = r->text_len};
		o->srv_ok[r->server_index] = true;
		break;
	default:
		record = false;
		server_failed(o, r->server_index, &r->err);
		break;
	}
	if (obs.narinfo && obs.narinfo_len > CAIRN_NARINFO_MAX)
		obs.narinfo_len = CAIRN_NARINFO_MAX;
	if (record &&
	    (rc = mon_db_observe(m->w, o->item[pi], m->server_ids[r->server_index], &obs, o->now,
				 err)) < 0) {
		cairn_buf_release(&refs);
		return rc;
	}
	if (record && m->cfg.key) {
		/* the signed log keeps changes: what a server says now that it
		 * did not say before (or was never seen saying) */
		bool changed = false;
		if ((rc = mon_db_changed(m->w, o->item[pi], m->server_ids[r->server_index], o->now,
					 &changed, err)) == 0 &&
		    changed &&
		    (rc = mon_db_log_append(m->w, o->now, m->urls[r->server_index], hash, &obs,
					    err)) == 0)
			atomic_fetch_add(&m->logged, 1);
		if (rc < 0) {
			cairn_buf_release(&refs);
			return rc;
		}
	}
	cairn_buf_release(&refs);
	if (++o->got[pi] == o->n) {
		enum cairn_monitor_verdict v;
		bool changed;
		if ((rc = mon_db_settle(m->w, o->item[pi], o->now, &v, &changed, err)) < 0)
			return rc;
		if (changed) {
			atomic_fetch_add(&m->changes, 1);
			if (v == CAIRN_MONITOR_DIFFERS)
				mon_say(m, "%s: differs", path);
		}
	}
	return 0;
}

/* ---- diffs ---------------------------------------------------------------- */

static const char *type_name(const struct cairn_nar_entry *f)
{
	switch (f->type) {
	case CAIRN_NAR_REGULAR:
		return f->exec ? "executable" : "regular";
	case CAIRN_NAR_DIRECTORY:
		return "directory";
	case CAIRN_NAR_SYMLINK:
		return "symlink";
	}
	return "?";
}

static void file_of(const struct cairn_nar_entry *f, struct mon_file *out, char hex[65])
{
	memset(out, 0, sizeof(*out));
	if (!f)
		return;
	out->type = type_name(f);
	if (f->type == CAIRN_NAR_REGULAR) {
		out->size = f->size;
		cairn_base16_encode(f->sha, CAIRN_SHA256_LEN, hex);
		hex[64] = '\0';
		out->sha256 = hex;
	} else if (f->type == CAIRN_NAR_SYMLINK) {
		out->target = f->target;
	}
}

/* Compare the NARs of one differing item and keep the file-level diff. */
static int diff_item(struct observer *o, int64_t item, const char *path)
{
	struct cairn_monitor *m = o->m;
	struct cairn_challenge_config cc = {.http = o->http,
					    .servers = o->srv,
					    .n_servers = o->n,
					    .diff = true};
	struct cairn_challenge *c = NULL;
	struct cairn_error e;
	char note[MON_NOTE_MAX] = "";
	enum mon_diff_state state = MON_DIFF_DONE;
	size_t kept = 0;
	int rc;

	cairn_error_init(&e);
	for (size_t i = 0; i < o->n; i++)
		cairn_http_server_mark_up(o->srv[i]);
	if (cairn_challenge_new(&c, &cc, &e) < 0 || cairn_challenge_add(c, path, &e) < 0 ||
	    cairn_challenge_run(c, &e) < 0) {
		snprintf(note, sizeof(note), "%s", cairn_error_msg(&e));
		state = MON_DIFF_FAILED;
		goto record;
	}
	const struct cairn_challenge_item *it = cairn_challenge_item(c, 0);
	if ((rc = mon_db_diff_clear(m->w, item, &o->fail_err)) < 0)
		goto out;
	if (it->verdict != CAIRN_CHALLENGE_DIFFERS || !it->sides) {
		snprintf(note, sizeof(note),
			 it->verdict == CAIRN_CHALLENGE_IDENTICAL
				 ? "same NarHash everywhere: the narinfos differ in NarSize or "
				   "References only"
				 : "fewer than two servers answered when the NARs were asked for");
		state = MON_DIFF_FAILED;
		goto record;
	}
	for (int g = 1; g < it->n_groups; g++) {
		const struct cairn_challenge_side *a = &it->sides[0], *b = &it->sides[g];
		if (!a->ok || !b->ok) {
			snprintf(note, sizeof(note), "%s",
				 cairn_error_msg(!a->ok ? &a->err : &b->err));
			state = MON_DIFF_FAILED;
			continue;
		}
		for (size_t k = 0; k < it->n_changes[g] && kept < CAIRN_MONITOR_DIFF_FILES_MAX;
		     k++, kept++) {
			const struct cairn_nar_change *ch = &it->changes[g][k];
			struct mon_file fa, fb;
			char ha[65], hb[65];
			file_of(ch->a, &fa, ha);
			file_of(ch->b, &fb, hb);
			if ((rc = mon_db_diff_put(m->w, item, m->server_ids[a->src],
						  m->server_ids[b->src],
						  ch->a ? ch->a->path : ch->b->path, ch->kind, &fa, &fb,
						  &o->fail_err)) < 0)
				goto out;
		}
	}
	if (kept >= CAIRN_MONITOR_DIFF_FILES_MAX)
		snprintf(note, sizeof(note), "only the first %u changed files are kept",
			 CAIRN_MONITOR_DIFF_FILES_MAX);
record:
	atomic_fetch_add(&m->diffs, 1);
	rc = mon_db_diff_done(m->w, item, state, note[0] ? note : NULL, &o->fail_err);
out:
	cairn_challenge_free(c);
	return rc;
}

static int run_diffs(struct observer *o)
{
	int64_t ids[MON_DIFFS_PER_TICK];
	char *paths[MON_DIFFS_PER_TICK];
	size_t n = 0;
	int rc = mon_db_diff_todo(o->m->w, MON_DIFFS_PER_TICK, ids, paths, &n, &o->fail_err);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && !atomic_load(&o->m->stop))
			rc = diff_item(o, ids[i], paths[i]);
		free(paths[i]);
	}
	return rc;
}

/* ---- peers ---------------------------------------------------------------- */

struct peer_put {
	struct observer *o;
	const char *peer;
	const char *monitor;
};

static int peer_entry(void *ctx, const struct cairn_monitor_log_entry *e)
{
	struct peer_put *pp = ctx;
	return mon_db_peer_put(pp->o->m->w, pp->peer, pp->monitor, e, &pp->o->fail_err);
}

/*
 * The chained digest of a log's records: c(0) = 32 zero bytes, c(k) =
 * SHA-256(c(k-1) || record k as the log writes it).  Kept for each peer,
 * so that its next log can be checked to extend the one used before: the
 * same monitor, no fewer records, and the same digest over the records
 * seen before (a record changed or dropped since is a rewritten history).
 */
struct chain {
	uint64_t n, upto;
	uint8_t c[CAIRN_SHA256_LEN], at_upto[CAIRN_SHA256_LEN];
};

static int chain_entry(void *ctx, const struct cairn_monitor_log_entry *e)
{
	struct chain *ch = ctx;
	char rec[CAIRN_SHA256_LEN + 1024];
	int n = snprintf(rec + CAIRN_SHA256_LEN, sizeof(rec) - CAIRN_SHA256_LEN,
			 "obs %" PRIu64 " %" PRId64 " %s %s %s %s %" PRIu64 "\n", e->seq, e->at,
			 e->server, e->hash, e->state, e->nar_hash, e->nar_size);
	if (n < 0 || (size_t)n >= sizeof(rec) - CAIRN_SHA256_LEN)
		return CAIRN_ELIMIT;
	memcpy(rec, ch->c, CAIRN_SHA256_LEN);
	cairn_sha256(rec, CAIRN_SHA256_LEN + (size_t)n, ch->c);
	if (++ch->n == ch->upto)
		memcpy(ch->at_upto, ch->c, CAIRN_SHA256_LEN);
	return 0;
}

static void chain_hex(const uint8_t *c, char out[65])
{
	cairn_base16_encode(c, CAIRN_SHA256_LEN, out);
	out[64] = '\0';
}

/*
 * Read peer i's observation log; only a log that verified (a trusted
 * key's signature over all of it) and extends the one used before
 * replaces what was known of it.  A peer that fails is said once and keeps
 * what it said before.
 */
static int read_peer(struct observer *o, size_t i)
{
	struct cairn_monitor *m = o->m;
	struct cairn_buf body = CAIRN_BUF_INIT(CAIRN_MONITOR_LOG_MAX);
	struct cairn_error e;
	char monitor[33], old_monitor[33] = "", old_chain[65] = "", hex[65];
	uint64_t count, old_count = 0;
	struct chain ch = {0};
	long status = 0;
	const char *url = cairn_http_server_url(o->peer[i]);
	int rc = 0;
	cairn_error_init(&e);
	cairn_http_server_mark_up(o->peer[i]);
	if ((rc = mon_db_peer_log_get(m->w, url, old_monitor, &old_count, old_chain,
				      &o->fail_err)) < 0 &&
	    rc != CAIRN_ENOENT)
		goto out;
	rc = 0;
	ch.upto = old_count;
	if (get_whole(o, o->peer[i], "api/v1/log", CAIRN_MONITOR_LOG_MAX, &body, &status, &e) < 0 ||
	    cairn_monitor_log_verify(body.data, body.len, m->cfg.kr, monitor, &count, chain_entry,
				     &ch, &e) < 0)
		goto refused;
	if (old_monitor[0] && strcmp(monitor, old_monitor) != 0) {
		cairn_error_set(&e, CAIRN_EFORMAT, "the log is of monitor %s, not %s as before",
				monitor, old_monitor);
		goto refused;
	}
	if (count < old_count) {
		cairn_error_set(&e, CAIRN_EFORMAT,
				"the log has %" PRIu64 " records, fewer than the %" PRIu64
				" it had before",
				count, old_count);
		goto refused;
	}
	chain_hex(old_count ? ch.at_upto : (const uint8_t[CAIRN_SHA256_LEN]){0}, hex);
	if (old_chain[0] && strcmp(hex, old_chain) != 0) {
		cairn_error_set(&e, CAIRN_EFORMAT,
				"its first %" PRIu64 " records are not those it served before:"
				" its history was rewritten",
				old_count);
		goto refused;
	}
	chain_hex(ch.c, hex);
	struct peer_put pp = {o, url, monitor};
	if ((rc = mon_db_peer_clear(m->w, url, &o->fail_err)) < 0 ||
	    (rc = cairn_monitor_log_verify(body.data, body.len, m->cfg.kr, monitor, &count,
					   peer_entry, &pp, &o->fail_err)) < 0 ||
	    (rc = mon_db_peer_log_set(m->w, url, monitor, count, hex, &o->fail_err)) < 0)
		goto out;
	atomic_fetch_add(&m->peer_logs, 1);
	goto out;
refused:
	if (e.code != CAIRN_ENET)
		atomic_fetch_add(&m->peer_logs_refused, 1);
	mon_say(m, "peer %s: log refused: %s", url, cairn_error_msg(&e));
out:
	cairn_buf_release(&body);
	return rc;
}

/* ---- the loop ------------------------------------------------------------- */

static int tick(struct observer *o, bool full)
{
	struct cairn_monitor *m = o->m;
	struct cairn_survey_config sc;
	int rc;

	o->now = (int64_t)time(NULL);
	/* only what the last tick used: a tick with nothing new costs
	 * nothing however many items a full pass had */
	if (o->used) {
		memset(o->got, 0, o->used);
		memset(o->item, 0, o->used * sizeof(*o->item));
		o->used = 0;
	}
	for (size_t i = 0; i < o->n; i++) {
		free(o->srv_error[i]);
		o->srv_error[i] = NULL;
		o->srv_ok[i] = false;
		/* each tick asks afresh: a server down last time may be back */
		cairn_http_server_mark_up(o->srv[i]);
	}
	cairn_survey_config_init(&sc);
	if ((rc = cairn_survey_new(&o->sv, o->http, o->srv, o->n, &sc, on_result, o,
				   &o->fail_err)) < 0)
		return rc;
	if ((rc = mon_db_exec(m->w, "BEGIN IMMEDIATE", &o->fail_err)) < 0)
		goto out;
	for (size_t i = 0; i < o->n && rc == 0; i++)
		if (o->fs[i].has_feed != 0)
			rc = poll_feed(o, i);
	if (rc == 0 && full && m->cfg.paths_file)
		rc = read_paths(o);
	if (rc == 0 && full)
		rc = mon_db_each_item(m->w, add_known, o, &o->fail_err);
	if (rc == 0 && cairn_survey_count(o->sv) > 0) {
		rc = cairn_survey_run(o->sv, &o->fail_err);
		for (size_t i = 0; i < o->n && rc == 0; i++) {
			if (!o->srv_ok[i] && !o->srv_error[i])
				continue;
			rc = mon_db_server_status(m->w, m->server_ids[i], -1,
						  o->srv_ok[i] ? NULL : o->srv_error[i], o->now,
						  &o->fail_err);
		}
	}
	if (rc == 0 && m->cfg.n_peers && o->now >= o->next_peers) {
		o->next_peers = o->now + MON_PEER_INTERVAL;
		for (size_t i = 0; i < m->cfg.n_peers && rc == 0; i++)
			rc = read_peer(o, i);
	}
	if (rc == 0 && full)
		rc = mon_db_diff_retry(m->w, MON_DIFF_TRIES, &o->fail_err);
	if (rc == 0 && full)
		rc = mon_db_prune(m->w, (int64_t)m->cfg.retention_days * 86400, o->now,
				  &o->fail_err);
	if (rc == 0)
		rc = mon_db_exec(m->w, "COMMIT", &o->fail_err);
	else
		mon_db_exec(m->w, "ROLLBACK", NULL);
	/* counted once readable: a reader that saw the count sees the pass */
	if (rc == 0 && full)
		atomic_fetch_add(&m->passes, 1);
	if (rc == 0 && m->cfg.diff)
		rc = run_diffs(o);
out:
	o->used = o->sv ? cairn_survey_count(o->sv) : 0;
	if (o->used > o->cap)
		o->used = o->cap;
	cairn_survey_free(o->sv);
	o->sv = NULL;
	return rc;
}

void *mon_observe_main(void *arg)
{
	struct cairn_monitor *m = arg;
	struct observer o = {.m = m, .n = m->cfg.n_servers};
	struct cairn_http_config hc;
	struct cairn_error e;
	int64_t next_full = 0;

	cairn_error_init(&e);
	cairn_error_init(&o.fail_err);
	cairn_http_config_init(&hc);
	o.srv = calloc(o.n, sizeof(*o.srv));
	o.fs = calloc(o.n, sizeof(*o.fs));
	o.srv_error = calloc(o.n, sizeof(*o.srv_error));
	o.srv_ok = calloc(o.n, sizeof(*o.srv_ok));
	o.peer = calloc(m->cfg.n_peers + 1, sizeof(*o.peer));
	if (!o.srv || !o.fs || !o.srv_error || !o.srv_ok || !o.peer ||
	    cairn_http_new(&o.http, &hc, &e) < 0) {
		mon_say(m, "monitor: cannot start: %s", e.code ? cairn_error_msg(&e) : "out of memory");
		goto out;
	}
	for (size_t i = 0; i < o.n; i++) {
		o.fs[i].has_feed = -1;
		if (cairn_http_server_new(&o.srv[i], m->urls[i], 0, &e) < 0 ||
		    mon_db_feed_get(m->w, m->server_ids[i], o.fs[i].feed, &o.fs[i].seq, &e) < 0) {
			mon_say(m, "monitor: %s", cairn_error_msg(&e));
			goto out;
		}
	}
	for (size_t i = 0; i < m->cfg.n_peers; i++)
		if (cairn_http_server_new(&o.peer[i], m->cfg.peers[i], 0, &e) < 0) {
			mon_say(m, "monitor: %s", cairn_error_msg(&e));
			goto out;
		}
	while (!atomic_load(&m->stop)) {
		int64_t now = (int64_t)time(NULL);
		bool full = now >= next_full;
		if (full)
			next_full = now + (int64_t)m->cfg.interval;
		if (tick(&o, full) < 0) {
			/* the database failing is the monitor failing: say it
			 * and try again next tick (a full disk may clear) */
			mon_say(m, "monitor: %s", cairn_error_msg(&o.fail_err));
			cairn_error_init(&o.fail_err);
			next_full = 0;
		}
		for (unsigned waited = 0; waited < m->cfg.feed_poll_ms && !atomic_load(&m->stop);
		     waited += 50)
			usleep(50 * 1000);
	}
out:
	/* the client first: its requests borrow the servers */
	cairn_http_free(o.http);
	for (size_t i = 0; o.srv && i < o.n; i++) {
		cairn_http_server_free(o.srv[i]);
		if (o.srv_error)
			free(o.srv_error[i]);
	}
	for (size_t i = 0; o.peer && i < m->cfg.n_peers; i++)
		cairn_http_server_free(o.peer[i]);
	free(o.peer);
	free(o.srv);
	free(o.fs);
	free(o.srv_error);
	free(o.srv_ok);
	free(o.item);
	free(o.got);
	return NULL;
}
