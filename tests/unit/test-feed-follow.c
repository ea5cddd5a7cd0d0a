/* The one feed follower (lib/feed-follow.c), its rules on a fake
 * transport serving a real log (lib/feed.c): pages applied in order and
 * the position kept; a page badly signed, or of a range that leaves a gap
 * or overlaps, refused and counted with nothing of it used; 410 read from
 * the snapshot, verified before any item is used; a recreated feed
 * followed from its start; a first contact at the head; a position that
 * survives in its file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/codec.h"
#include "cairn/feed-follow.h"
#include "cairn/keys.h"
#include "../../lib/feed-follow-int.h"

static char dir[64];

static void rm_log(const char *p)
{
	char q[256];
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(q, sizeof(q), "%s%s", p, suffix[i]);
		unlink(q);
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-feed-follow-XXXXXX");
	return mkdtemp(dir) ? 0 : 1;
}

static int teardown(void **state)
{
	(void)state;
	char p[160];
	snprintf(p, sizeof(p), "%s/a.sqlite", dir);
	rm_log(p);
	snprintf(p, sizeof(p), "%s/b.sqlite", dir);
	rm_log(p);
	snprintf(p, sizeof(p), "%s/pos", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void hp(char out[33], unsigned i)
{
	snprintf(out, 33, "%032u", i); /* digits are nix32 */
}

static void add(struct cairn_feed *f, unsigned i)
{
	char h[33], ni[128];
	hp(h, i);
	int n = snprintf(ni, sizeof(ni), "StorePath: /nix/store/%s-item-%u\nNarSize: %u\n", h, i,
			 i);
	assert_int_equal(cairn_feed_add(f, h, ni, (size_t)n, NULL, NULL), 0);
}

static void del(struct cairn_feed *f, unsigned i)
{
	char h[33];
	hp(h, i);
	assert_int_equal(cairn_feed_remove(f, h, NULL, NULL), 0);
}

static struct cairn_feed *open_log(const char *name)
{
	char p[160];
	struct cairn_feed *f;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	rm_log(p);
	assert_int_equal(cairn_feed_open(&f, p, NULL), 0);
	return f;
}

/* ---- the fake head ---------------------------------------------------------- */

struct head {
	struct cairn_feed *log;
	struct cairn_feed_signer signer;
	long status;	     /* answer every request with it (0: serve) */
	int64_t since_shift; /* serve the page after since + shift (a gap, an overlap) */
	unsigned requests, snapshots;
	uint64_t last_since;
};

struct zsink {
	int (*sink)(void *ctx, const void *data, size_t len);
	void *ctx;
	struct cairn_codec *c;
};

static int zout(void *ctx, const void *data, size_t len)
{
	struct zsink *z = ctx;
	return z->sink(z->ctx, data, len);
}

static int zin(void *ctx, const void *data, size_t len)
{
	struct zsink *z = ctx;
	return cairn_codec_write(z->c, data, len, zout, z, NULL);
}

static int fake_get(void *ctx, const char *path, uint64_t max, long first_byte_ms,
		    int (*sink)(void *sctx, const void *data, size_t len), void *sink_ctx,
		    long *status, struct cairn_error *err)
{
	struct head *h = ctx;
	(void)max;
	(void)first_byte_ms;
	h->requests++;
	*status = h->status;
	if (h->status)
		return cairn_error_set(err, CAIRN_ENET, "HTTP %ld", h->status);
	*status = 200;
	if (!strcmp(path, "feed/snapshot")) {
		struct zsink z = {sink, sink_ctx, NULL};
		h->snapshots++;
		assert_int_equal(cairn_codec_new(&z.c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_COMPRESS,
						 CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED,
						 NULL),
				 0);
		int rc = cairn_feed_snapshot(h->log, &h->signer, zin, &z, err);
		if (rc == 0)
			rc = cairn_codec_finish(z.c, zout, &z, err);
		cairn_codec_free(z.c);
		return rc;
	}
	unsigned long long since;
	unsigned max_events = 0;
	assert_int_equal(sscanf(path, "feed/events?since=%llu", &since), 1);
	if (strstr(path, "&max=1"))
		max_events = 1;
	h->last_since = since;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	uint64_t next;
	int rc = cairn_feed_page(h->log, (uint64_t)((int64_t)since + h->since_shift), max_events,
				 &h->signer, &b, &next, NULL);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EINVAL) {
		*status = rc == CAIRN_ENOENT ? 410 : 400;
		cairn_buf_release(&b);
		return cairn_error_set(err, CAIRN_ENET, "HTTP %ld", *status);
	}
	assert_int_equal(rc, 0);
	rc = sink(sink_ctx, b.data, b.len);
	cairn_buf_release(&b);
	return rc;
}

/* ---- the follower's caller ---------------------------------------------------- */

struct seen {
	unsigned adds, removes, items, positions, fresh, refused;
	char last[33];
	struct cairn_feed_pos pos;
};

static int on_event(void *ctx, const struct cairn_feed_event *e)
{
	struct seen *s = ctx;
	if (e->kind == CAIRN_FEED_ADD)
		s->adds++;
	else
		s->removes++;
	memcpy(s->last, e->hashpart, 33);
	return 0;
}

static int on_item(void *ctx, const struct cairn_feed_event *e)
{
	struct seen *s = ctx;
	assert_non_null(e->narinfo);
	s->items++;
	return 0;
}

static int on_position(void *ctx, const struct cairn_feed_pos *pos, bool fresh)
{
	struct seen *s = ctx;
	s->positions++;
	s->fresh += fresh;
	s->pos = *pos;
	return 0;
}

static void on_refused(void *ctx, const struct cairn_error *why)
{
	struct seen *s = ctx;
	assert_int_not_equal(why->code, 0);
	s->refused++;
}

struct world {
	struct cairn_seckey sk, other;
	const struct cairn_seckey *keys[1], *other_keys[1];
	struct cairn_keyring kr;
	struct head h;
	struct seen s;
	struct cairn_feed_follow *f;
};

static void world_init(struct world *w, enum cairn_feed_start start, const struct cairn_feed_pos *pos)
{
	struct cairn_nix_pubkey pk;
	memset(w, 0, sizeof(*w));
	w->sk.kind = w->other.kind = CAIRN_KEY_NIX;
	assert_int_equal(cairn_nix_key_generate("head-1", &w->sk.u.nix, NULL), 0);
	assert_int_equal(cairn_nix_key_generate("other-1", &w->other.u.nix, NULL), 0);
	cairn_nix_seckey_public(&w->sk.u.nix, &pk);
	cairn_keyring_init(&w->kr);
	assert_int_equal(cairn_keyring_add_nix(&w->kr, &pk, NULL), 0);
	w->keys[0] = &w->sk;
	w->other_keys[0] = &w->other;
	w->h.log = open_log("a.sqlite");
	w->h.signer = (struct cairn_feed_signer){w->keys, 1, "nix"};
	struct cairn_feed_follow_config fc = {.kr = &w->kr,
					      .start = start,
					      .tmp_dir = dir,
					      .on_event = on_event,
					      .on_item = on_item,
					      .on_position = on_position,
					      .on_refused = on_refused,
					      .ctx = &w->s};
	if (pos)
		fc.pos = *pos;
	assert_int_equal(cairn_feed_follow_new(&w->f, &fc, NULL), 0);
	feed_follow_set_transport(w->f, fake_get, &w->h);
}

static void world_free(struct world *w)
{
	cairn_feed_follow_free(w->f);
	cairn_feed_close(w->h.log);
	cairn_keyring_release(&w->kr);
	cairn_seckey_wipe(&w->sk);
	cairn_seckey_wipe(&w->other);
}

static enum cairn_feed_step step(struct world *w)
{
	enum cairn_feed_step what = 99;
	assert_int_equal(cairn_feed_follow_step(w->f, &what, NULL), 0);
	return what;
}

/* Pages applied in order; the position moves only with a verified page. */
static void test_pages(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	for (unsigned i = 1; i <= 3; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 3);
	assert_int_equal(w.s.fresh, 1);
	assert_int_equal(w.s.pos.seq, 3);
	assert_string_equal(w.s.pos.feed, cairn_feed_id(w.h.log));
	del(w.h.log, 2);
	add(w.h.log, 4);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 4);
	assert_int_equal(w.s.removes, 1);
	assert_int_equal(w.s.pos.seq, 5);
	assert_int_equal(w.s.fresh, 1);
	assert_int_equal(w.h.last_since, 3);
	/* nothing new: an empty page, the position stays */
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 5);
	assert_int_equal(cairn_feed_follow_stats(w.f)->pages, 3);
	assert_int_equal(w.h.snapshots, 0);
	world_free(&w);
}

/* A page signed by a key not trusted is refused, counted, and nothing of it
 * is used; the follower goes on once pages verify again. */
static void test_bad_signature(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	add(w.h.log, 1);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	add(w.h.log, 2);
	w.h.signer.keys = w.other_keys;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	assert_int_equal(w.s.refused, 2);
	assert_int_equal(cairn_feed_follow_stats(w.f)->refused, 2);
	assert_int_equal(w.s.adds, 1);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 1);
	/* unsigned: refused too */
	w.h.signer.n_keys = 0;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	assert_int_equal(w.s.adds, 1);
	w.h.signer.keys = w.keys;
	w.h.signer.n_keys = 1;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 2);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 2);
	world_free(&w);
}

/* A page whose signed range does not start where the follower is: a gap
 * (events skipped) or an overlap (events again) is refused. */
static void test_gap_and_overlap(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	for (unsigned i = 1; i <= 3; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	for (unsigned i = 4; i <= 8; i++)
		add(w.h.log, i);
	w.h.since_shift = 2; /* after 5 where 3 was asked: 4 and 5 skipped */
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	w.h.since_shift = -2; /* after 1: 2 and 3 again */
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	assert_int_equal(w.s.adds, 3);
	assert_int_equal(w.s.refused, 2);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 3);
	w.h.since_shift = 0;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 8);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 8);
	world_free(&w);
}

/* Behind what the head keeps (410): the snapshot, used only once it
 * verified; its position is the snapshot's. */
static void test_410_snapshot(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	for (unsigned i = 1; i <= 6; i++)
		add(w.h.log, i);
	for (unsigned i = 1; i <= 3; i++)
		del(w.h.log, i);
	assert_int_equal(cairn_feed_prune(w.h.log, 0, NULL), 0);
	/* badly signed: refused whole, not one item used */
	w.h.signer.keys = w.other_keys;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_REFUSED);
	assert_int_equal(w.h.snapshots, 1);
	assert_int_equal(w.s.items, 0);
	assert_int_equal(w.s.positions, 0);
	assert_int_equal(w.s.refused, 1);
	w.h.signer.keys = w.keys;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.h.snapshots, 2);
	assert_int_equal(w.s.items, 3); /* 4, 5, 6 */
	assert_int_equal(w.s.adds, 0);
	assert_int_equal(w.s.pos.seq, 9);
	assert_int_equal(w.s.fresh, 1);
	assert_int_equal(cairn_feed_follow_stats(w.f)->snapshots, 1);
	/* then the pages after it */
	add(w.h.log, 7);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 1);
	assert_int_equal(w.h.last_since, 9);
	assert_int_equal(w.s.pos.seq, 10);
	world_free(&w);
}

/* The head's log made anew (another feed id, its own numbering): from its
 * start, whether the old position is past its head (400) or not. */
static void test_recreated(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	for (unsigned i = 1; i <= 4; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	char old[33];
	memcpy(old, cairn_feed_follow_pos(w.f)->feed, 33);

	/* past its head: 400, then its page after 0 says it is another feed */
	cairn_feed_close(w.h.log);
	w.h.log = open_log("b.sqlite");
	add(w.h.log, 10);
	add(w.h.log, 11);
	assert_string_not_equal(old, cairn_feed_id(w.h.log));
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(cairn_feed_follow_stats(w.f)->restarts, 1);
	assert_string_equal(w.s.pos.feed, cairn_feed_id(w.h.log));
	assert_int_equal(w.s.pos.seq, 2);
	assert_int_equal(w.s.adds, 6);
	assert_int_equal(w.s.fresh, 2);

	/* not past its head: its page, signed, names another feed */
	memcpy(old, w.s.pos.feed, 33);
	cairn_feed_close(w.h.log);
	w.h.log = open_log("a.sqlite");
	for (unsigned i = 20; i <= 24; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(cairn_feed_follow_stats(w.f)->restarts, 2);
	assert_int_equal(w.s.pos.seq, 5);
	assert_int_equal(w.s.adds, 11);
	assert_int_equal(w.h.last_since, 0);

	/* a 400 of the same feed is no restart: the position stays */
	w.h.since_shift = 100;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_TROUBLE);
	assert_int_equal(cairn_feed_follow_stats(w.f)->restarts, 2);
	assert_int_equal(cairn_feed_follow_pos(w.f)->seq, 5);
	world_free(&w);
}

/* First contact at the head: nothing before it is used.  A head without a
 * feed is said so. */
static void test_head_start(void **state)
{
	(void)state;
	struct world w;
	world_init(&w, CAIRN_FEED_START_HEAD, NULL);
	w.h.status = 404;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_NOFEED);
	w.h.status = 503;
	assert_int_equal(step(&w), CAIRN_FEED_STEP_TROUBLE);
	assert_int_equal(cairn_feed_follow_stats(w.f)->troubles, 1);
	w.h.status = 0;
	for (unsigned i = 1; i <= 3; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 0);
	assert_int_equal(w.s.pos.seq, 3);
	assert_int_equal(w.s.fresh, 1);
	add(w.h.log, 4);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.s.adds, 1);
	assert_int_equal(w.s.pos.seq, 4);
	world_free(&w);
}

/* A position in its file goes on where it stopped. */
static void test_position_persisted(void **state)
{
	(void)state;
	char p[160];
	struct cairn_feed_pos pos, back;
	struct world w;
	snprintf(p, sizeof(p), "%s/pos", dir);
	assert_int_equal(cairn_feed_pos_load(p, &back), CAIRN_ENOENT);
	world_init(&w, CAIRN_FEED_START_ZERO, NULL);
	for (unsigned i = 1; i <= 3; i++)
		add(w.h.log, i);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(cairn_feed_pos_save(p, &w.s.pos, NULL), 0);
	pos = w.s.pos;
	cairn_feed_follow_free(w.f);
	w.f = NULL;
	assert_int_equal(cairn_feed_pos_load(p, &back), 0);
	assert_string_equal(back.feed, pos.feed);
	assert_int_equal(back.seq, 3);

	/* a new follower from the file: asks after 3, nothing applied twice */
	struct cairn_feed_follow_config fc = {.kr = &w.kr,
					      .pos = back,
					      .on_event = on_event,
					      .on_position = on_position,
					      .ctx = &w.s};
	assert_int_equal(cairn_feed_follow_new(&w.f, &fc, NULL), 0);
	feed_follow_set_transport(w.f, fake_get, &w.h);
	add(w.h.log, 4);
	assert_int_equal(step(&w), CAIRN_FEED_STEP_APPLIED);
	assert_int_equal(w.h.last_since, 3);
	assert_int_equal(w.s.adds, 4);
	assert_int_equal(w.s.fresh, 1);
	world_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_gap_and_overlap),
		cmocka_unit_test(test_410_snapshot),
		cmocka_unit_test(test_recreated),
		cmocka_unit_test(test_head_start),
		cmocka_unit_test(test_position_persisted),
	};
	if (cairn_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, setup, teardown);
}
