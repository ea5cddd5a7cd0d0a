/*
 * monitor-observe.c - the monitor's observer thread: learn which items
 * exist (the servers' signed feeds, the path list), ask every server about
 * them through the query engine (survey.h), record what each said
 * (monitor-db.c) and settle the verdicts; then diff what differs through
 * the challenge engine (challenge.h: download, verify, list the files).
 *
 * A tick every feed_poll_ms: the feeds' new pages (through the one
 * follower, lib/feed-follow.c: verified before anything on them is used), and every `interval` seconds a full pass:
 * the path list re-read and every known item asked again.  One survey per
 * tick, in one transaction: the pages read a consistent state.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/challenge.h"
#include "cairn/feed-follow.h"
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
	struct observer *o;
	size_t i;
	int has_feed; /* -1 not known yet, 0 no, 1 yes */
	struct cairn_feed_follow *follower;
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
	struct mon_writer wr; /* records the answers (monitor-writer.c) */
	struct cairn_http_server **peer; /* per --peer */
	int64_t next_peers;		  /* when the peers' logs are read again */
	char **srv_error; /* per server: the last failure this tick */
	bool *srv_ok;	  /* per server: answered something this tick */
	int failed;
	struct cairn_error fail_err;
};

/* ---- small HTTP bodies (peers' logs) ---------------------------- */

/* GET path of server s whole into out; *status gets the final status. */
static int get_whole(struct observer *o, struct cairn_http_server *s, const char *path,
		     uint64_t max, struct cairn_buf *out, long *status, struct cairn_error *err)
{
	struct cairn_http_request rq = {
	    .method = CAIRN_HTTP_GET, .server = s, .url = path, .max_body = max};
	struct cairn_http_one one;
	int rc = cairn_http_wait_one(o->http, &rq, out, NULL, NULL, &one, err);
	*status = one.status;
	return rc;
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

/* ---- the feeds, through the one follower (feed-follow.h) ------------------ */

static int on_event(void *ctx, const struct cairn_feed_event *e)
{
	struct feed_state *fs = ctx;
	return e->kind == CAIRN_FEED_ADD ? add_from_narinfo(fs->o, e->narinfo, e->narinfo_len)
					 : add_by_hash(fs->o, e->hashpart);
}

static int on_item(void *ctx, const struct cairn_feed_event *e)
{
	struct feed_state *fs = ctx;
	return add_from_narinfo(fs->o, e->narinfo, e->narinfo_len);
}

static int on_position(void *ctx, const struct cairn_feed_pos *pos, bool fresh)
{
	struct feed_state *fs = ctx;
	struct observer *o = fs->o;
	(void)fresh;
	atomic_fetch_add(&o->m->feed_pages, 1);
	return mon_db_feed_set(o->m->w, o->m->server_ids[fs->i], pos->feed, pos->seq,
			       &o->fail_err);
}

static void on_refused(void *ctx, const struct cairn_error *why)
{
	struct feed_state *fs = ctx;
	(void)why;
	atomic_fetch_add(&fs->o->m->pages_refused, 1);
}

static void on_log(void *ctx, const char *msg)
{
	struct feed_state *fs = ctx;
	mon_say(fs->o->m, "%s: feed: %s", fs->o->m->urls[fs->i], msg);
}

/* Server i's follower, going on from where the database says. */
static int follower_new(struct observer *o, size_t i, struct cairn_error *err)
{
	struct feed_state *fs = &o->fs[i];
	struct cairn_feed_follow_config fc = {.http = o->http,
					      .server = o->srv[i],
					      .kr = o->m->cfg.kr,
					      .start = CAIRN_FEED_START_ZERO,
					      .on_event = on_event,
					      .on_item = on_item,
					      .on_position = on_position,
					      .on_refused = on_refused,
					      .log = on_log,
					      .ctx = fs};
	int rc;
	fs->o = o;
	fs->i = i;
	fs->has_feed = -1;
	if ((rc = mon_db_feed_get(o->m->w, o->m->server_ids[i], fc.pos.feed, &fc.pos.seq, err)) <
	    0)
		return rc;
	return cairn_feed_follow_new(&fs->follower, &fc, err);
}

/*
 * Read server i's new feed pages (no long-poll: the tick paces) and queue
 * what they name.  A server without a feed (404 at first contact) is
 * asked through the path list only.  Failures are the server's, said
 * (by the follower) and retried next tick.
 */
static int poll_feed(struct observer *o, size_t i)
{
	struct feed_state *fs = &o->fs[i];
	int rc = 0;
	for (int n = 0; n < MON_PAGES_PER_TICK; n++) {
		enum cairn_feed_step what;
		struct cairn_error e;
		cairn_error_init(&e);
		if ((rc = cairn_feed_follow_step(fs->follower, &what, &e)) < 0)
			return rc;
		if (what == CAIRN_FEED_STEP_NOFEED) {
			fs->has_feed = 0;
			mon_say(o->m, "%s has no feed: asked through the path list", o->m->urls[i]);
			return mon_db_server_status(o->m->w, o->m->server_ids[i], 0, NULL, o->now,
						    &o->fail_err);
		}
		if (what == CAIRN_FEED_STEP_TROUBLE)
			break;
		if (fs->has_feed != 1) {
			fs->has_feed = 1;
			if ((rc = mon_db_server_status(o->m->w, o->m->server_ids[i], 1, NULL, o->now,
						       &o->fail_err)) < 0)
				return rc;
		}
		const struct cairn_feed_pos *pos = cairn_feed_follow_pos(fs->follower);
		if (what != CAIRN_FEED_STEP_APPLIED || pos->seq >= pos->head)
			break;
	}
	return 0;
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


static void server_failed(struct observer *o, size_t s, const struct cairn_error *e)
{
	if (o->srv_error[s])
		return;
	o->srv_error[s] = strdup(cairn_error_msg(e)[0] ? cairn_error_msg(e) : "no answer");
}

/*
 * One server's answer about one path, handed to the writer.  An UNKNOWN
 * (no answer) records nothing: what the server said before stands, so a
 * server going down is no disagreement.  Once every server answered, the
 * writer settles the verdict.
 */
static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct observer *o = ctx;
	struct cairn_monitor *m = o->m;
	struct cairn_error *err = &o->fail_err;
	struct cairn_buf refs = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	char hs[CAIRN_HASH_STR_MAX];
	int rc;

	atomic_fetch_add(&m->lookups, 1);
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
	rc = mon_writer_put(&o->wr, r->path_index, r->server_index, record ? &obs : NULL, err);
	cairn_buf_release(&refs);
	return rc;
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

/* The server row of a challenge source: a --from, or the local store. */
static int64_t source_id(const struct observer *o, size_t src)
{
	return src < o->n ? o->m->server_ids[src] : o->m->store_id;
}

/* Remove a tree we unpacked (nothing in it is followed: FTW_PHYS). */
static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	/* what cannot be removed is left, not a reason to stop the rest */
	if (flag == FTW_DP)
		(void)rmdir(p);
	else
		(void)unlink(p);
	return 0;
}

static void rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_PHYS | FTW_DEPTH);
}

/* diffoscope's report on the first two groups' trees, kept beside the
 * file list; a missing diffoscope is no failure, only no report. */
static int run_diffoscope(struct observer *o, int64_t item, const struct cairn_challenge_item *it)
{
	struct cairn_monitor *m = o->m;
	const char *prog = m->cfg.diffoscope ? m->cfg.diffoscope : "diffoscope";
	if (!prog[0] || it->n_groups < 2 || !it->sides[0].tree || !it->sides[1].tree)
		return 0;
	struct cairn_buf html = CAIRN_BUF_INIT(MON_DIFFOSCOPE_HTML_MAX);
	char note[MON_NOTE_MAX];
	int rc = mon_diffoscope(prog, it->sides[0].tree, it->sides[1].tree, it->changes[1],
				it->n_changes[1], MON_DIFFOSCOPE_TIMEOUT_S, MON_DIFFOSCOPE_HTML_MAX,
				&html, note, sizeof(note));
	if (rc == CAIRN_ENOENT) {
		cairn_buf_release(&html);
		return 0;
	}
	if (rc < 0)
		mon_say(m, "%s", note);
	rc = mon_db_diffoscope_put(m->w, item, source_id(o, it->sides[0].src),
				   source_id(o, it->sides[1].src), rc < 0 ? NULL : html.data,
				   rc < 0 ? 0 : html.len, note, &o->fail_err);
	cairn_buf_release(&html);
	return rc;
}

/* Compare the NARs of one differing item and keep the file-level diff. */
static int diff_item(struct observer *o, int64_t item, const char *path)
{
	struct cairn_monitor *m = o->m;
	char tmp[4096];
	const char *td = getenv("TMPDIR");
	snprintf(tmp, sizeof(tmp), "%s/cairn-monitor-XXXXXX", td && td[0] ? td : "/tmp");
	bool unpack = !(m->cfg.diffoscope && !m->cfg.diffoscope[0]) && mkdtemp(tmp);
	struct cairn_challenge_config cc = {.http = o->http,
					    .servers = o->srv,
					    .n_servers = o->n,
					    .diff = true,
					    .unpack_dir = unpack ? tmp : NULL,
					    .unpack_max = MON_DIFFOSCOPE_NAR_MAX,
					    /* a disagreement with --store is diffed too: its
					     * tree is dumped as a NAR, not downloaded */
					    .root = m->cfg.store_root,
					    .db_path = m->cfg.store_db};
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
			if ((rc = mon_db_diff_put(m->w, item, source_id(o, a->src),
						  source_id(o, b->src),
						  ch->a ? ch->a->path : ch->b->path, ch->kind, &fa, &fb,
						  &o->fail_err)) < 0)
				goto out;
		}
	}
	if (kept >= CAIRN_MONITOR_DIFF_FILES_MAX)
		snprintf(note, sizeof(note), "only the first %u changed files are kept",
			 CAIRN_MONITOR_DIFF_FILES_MAX);
	if ((rc = run_diffoscope(o, item, it)) < 0)
		goto out;
record:
	atomic_fetch_add(&m->diffs, 1);
	rc = mon_db_diff_done(m->w, item, state, note[0] ? note : NULL, &o->fail_err);
out:
	cairn_challenge_free(c);
	if (unpack)
		rm_tree(tmp);
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
 * The chained digest of a log's records (monitor.h), from its base on.
 * Kept for each peer, so that its next log can be checked to extend the
 * one used before: the same monitor, no fewer records, and the same
 * digest over the records seen before (a record changed or dropped since
 * is a rewritten history; pruned ones are carried in the base's digest).
 */
struct chain {
	const struct cairn_monitor_log_head *head;
	bool started;
	uint64_t n, upto;
	uint8_t c[CAIRN_SHA256_LEN], at_upto[CAIRN_SHA256_LEN];
};

static void chain_start(struct chain *ch)
{
	if (ch->started)
		return;
	ch->started = true;
	ch->n = ch->head->base;
	memcpy(ch->c, ch->head->base_chain, CAIRN_SHA256_LEN);
	if (ch->n == ch->upto)
		memcpy(ch->at_upto, ch->c, CAIRN_SHA256_LEN);
}

static int chain_entry(void *ctx, const struct cairn_monitor_log_entry *e)
{
	struct chain *ch = ctx;
	chain_start(ch);
	int rc = cairn_monitor_log_chain(ch->c, e);
	if (rc < 0)
		return rc;
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
	char old_monitor[33] = "", old_chain[65] = "", hex[65];
	uint64_t old_count = 0;
	struct cairn_monitor_log_head head;
	struct chain ch = {.head = &head};
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
	    cairn_monitor_log_verify(body.data, body.len, m->cfg.kr, &head, chain_entry, &ch, &e) <
		0)
		goto refused;
	chain_start(&ch);
	const char *monitor = head.monitor;
	uint64_t count = head.count;
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
	if (old_chain[0] && head.base > old_count) {
		/* pruned past what we saw: what it dropped unseen cannot be
		 * checked, only what follows its base */
		mon_say(m,
			"peer %s: its log was pruned past the %" PRIu64
			" records read before: continuing from its base at %" PRIu64,
			url, old_count, head.base);
	} else if (old_chain[0] && strcmp(hex, old_chain) != 0) {
		cairn_error_set(&e, CAIRN_EFORMAT,
				"its first %" PRIu64 " records are not those it served before:"
				" its history was rewritten",
				old_count);
		goto refused;
	}
	chain_hex(ch.c, hex);
	struct peer_put pp = {o, url, monitor};
	if ((rc = mon_db_peer_clear(m->w, url, &o->fail_err)) < 0 ||
	    (rc = cairn_monitor_log_verify(body.data, body.len, m->cfg.kr, &head, peer_entry, &pp,
					   &o->fail_err)) < 0 ||
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
	if (rc == 0 && cairn_survey_count(o->sv) > 0 &&
	    (rc = mon_writer_start(&o->wr, o->sv, o->n, o->now, &o->fail_err)) == 0) {
		rc = cairn_survey_run(o->sv, &o->fail_err);
		/* every answer written before anything reads or commits them */
		int wrc = mon_writer_finish(&o->wr, rc ? NULL : &o->fail_err);
		if (rc == 0)
			rc = wrc;
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
	if (rc == 0 && full)
		rc = mon_log_prune(m->w, o->now - (int64_t)m->cfg.retention_days * 86400,
				   &o->fail_err);
	if (rc == 0)
		rc = mon_db_trends(m->w, o->now, &o->fail_err);
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

	mon_writer_init(&o.wr, m);
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
		if (cairn_http_server_new(&o.srv[i], m->urls[i], 0, &e) < 0 ||
		    follower_new(&o, i, &e) < 0) {
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
		if (o.fs)
			cairn_feed_follow_free(o.fs[i].follower);
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
	mon_writer_release(&o.wr);
	return NULL;
}
