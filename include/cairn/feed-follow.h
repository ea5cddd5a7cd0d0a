/*
 * feed-follow.h - the one follower of a signed change feed (feed.h,
 * docs/PROTOCOL.md), for every program that follows one: `cairn sync
 * --follow` (a replica), `cairn mirror --follow` (a warm edge) and `cairn
 * monitor` (an observer).  They keep what is theirs (what an event means to
 * them, where they keep their position); the rules of the protocol are here
 * once:
 *   - a page is used only once it parsed, a trusted key signed it, and its
 *     signed range starts where the follower is, in the feed it follows;
 *     a refused page is counted, said (once until the trouble changes) and
 *     nothing of it is used;
 *   - 410 (the events are gone): the snapshot, fetched to a temporary
 *     file and verified before any of its items is used;
 *   - a feed recreated (a trusted page of another feed id, or 400 for a
 *     position past the head and the page after 0 of another feed): the
 *     position is forgotten and following starts again from 0;
 *   - a failure of the head (network, 5xx) is said once and retried with
 *     a back-off.
 * Drivable two ways: cairn_feed_follow_step, one document per call (the
 * monitor's ticks), or cairn_feed_follow_run, steps with the back-off until
 * stop (a thread of its own: sync, the warm edge).  Requests go through
 * the caller's HTTP client (lib/http.c), stepped while a document comes,
 * so the caller's other transfers on it go on meanwhile.
 */
#ifndef CAIRN_FEED_FOLLOW_H
#define CAIRN_FEED_FOLLOW_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/feed.h"
#include "cairn/keys.h"

/* A snapshot, compressed, in its temporary file: at most this many bytes. */
#define CAIRN_FEED_SNAPSHOT_MAX ((uint64_t)64 << 30)
/* The back-off after a failure or a refused document: from the first to
 * at most the second, doubling. */
#define CAIRN_FEED_BACKOFF_MS 1000
#define CAIRN_FEED_BACKOFF_MAX_MS 8000

/* Where a follower starts when it has no position (and after a feed was
 * recreated, or, for HEAD, after a 410). */
enum cairn_feed_start {
	CAIRN_FEED_START_ZERO = 0,  /* the events after 0 (a 410: the snapshot) */
	CAIRN_FEED_START_SNAPSHOT,  /* the snapshot, then the events after it */
	CAIRN_FEED_START_HEAD,	    /* from the head now: what came before is not
				       used (a first page of one event, or the
				       snapshot, says where the head is) */
};

/* Where a follower is: after event seq of feed ("" before a first
 * contact); head: the newest event the head said it had. */
struct cairn_feed_pos {
	char feed[CAIRN_FEED_ID_LEN + 1];
	uint64_t seq;
	uint64_t head;
};

struct cairn_http;
struct cairn_http_server;

struct cairn_feed_follow_config {
	struct cairn_http *http;	  /* borrowed; stepped while a document comes */
	struct cairn_http_server *server; /* the head; borrowed */
	const struct cairn_keyring *kr;	  /* keys the documents must be signed by */
	enum cairn_feed_start start;
	unsigned wait_s;     /* long-poll wait asked of the head; 0: none */
	const char *tmp_dir; /* for the snapshot's file; NULL: $TMPDIR or /tmp */
	uint64_t snapshot_max; /* 0: CAIRN_FEED_SNAPSHOT_MAX */
	struct cairn_feed_pos pos; /* where to go on from (as saved); feed "": none */
	/* Each event of a verified page, in order (narinfo NULL for a
	 * removal).  0 to go on; a negative cairn_err stops the step with it
	 * and the position stays before the page. */
	int (*on_event)(void *ctx, const struct cairn_feed_event *e);
	/* Each item of a verified snapshot (seq 0); NULL: items not read. */
	int (*on_item)(void *ctx, const struct cairn_feed_event *e);
	/* Once a page or a snapshot was applied (every event called back):
	 * the new position, to keep; fresh when following (re)started there
	 * (first contact, snapshot, feed recreated).  A negative cairn_err
	 * stops the step with it. */
	int (*on_position)(void *ctx, const struct cairn_feed_pos *pos, bool fresh);
	/* A document refused (why: the reason), counted also in the stats;
	 * NULL: nothing. */
	void (*on_refused)(void *ctx, const struct cairn_error *why);
	/* Asked while a request waits; true ends the step with
	 * CAIRN_ECANCELED, the request left to the client (free the client
	 * without stepping it again).  NULL: never. */
	bool (*stop)(void *ctx);
	/* What the operator should hear (a trouble that repeats is said once
	 * until it changes); NULL: nothing. */
	void (*log)(void *ctx, const char *msg);
	void *ctx;
};

/* What one step did. */
enum cairn_feed_step {
	CAIRN_FEED_STEP_APPLIED = 0, /* a page (maybe empty) or a snapshot used */
	CAIRN_FEED_STEP_NOFEED,	     /* 404 or 403 before any contact: no feed here */
	CAIRN_FEED_STEP_TROUBLE,     /* the head failed or refused; try again later */
	CAIRN_FEED_STEP_REFUSED,     /* a document did not verify: not used */
};

struct cairn_feed_follow_stats {
	uint64_t pages;		/* pages verified and applied */
	uint64_t snapshots;	/* snapshots verified and applied */
	uint64_t refused;	/* pages and snapshots refused */
	uint64_t restarts;	/* feeds found recreated */
	uint64_t troubles;	/* failed requests */
};

struct cairn_feed_follow;

/* Copies the config (its position too); the pointers are borrowed. */
int cairn_feed_follow_new(struct cairn_feed_follow **out, const struct cairn_feed_follow_config *cfg,
			  struct cairn_error *err);
void cairn_feed_follow_free(struct cairn_feed_follow *f);

/*
 * One document: the page after the position (a long-poll with wait_s), or
 * the snapshot, or a first contact, as the rules above say.  0 with *what
 * telling what happened (err has the reason for TROUBLE, REFUSED); a
 * negative error only from a callback, or CAIRN_ECANCELED.
 */
int cairn_feed_follow_step(struct cairn_feed_follow *f, enum cairn_feed_step *what,
			   struct cairn_error *err);

/*
 * Steps until cfg->stop says true (then 0), waiting with the back-off after
 * TROUBLE and REFUSED (a head without a feed is TROUBLE here); a negative
 * error from a callback.
 */
int cairn_feed_follow_run(struct cairn_feed_follow *f, struct cairn_error *err);

/* The position now (pos.head: the newest event heard of). */
const struct cairn_feed_pos *cairn_feed_follow_pos(const struct cairn_feed_follow *f);
const struct cairn_feed_follow_stats *cairn_feed_follow_stats(const struct cairn_feed_follow *f);

/*
 * A position in a small file, "feed ID\nseq N\n" (written to a temporary
 * name, synced, renamed).  load: 0 with pos set, or CAIRN_ENOENT when the
 * file is missing or not such a file (pos left "").
 */
int cairn_feed_pos_load(const char *path, struct cairn_feed_pos *pos);
int cairn_feed_pos_save(const char *path, const struct cairn_feed_pos *pos,
			struct cairn_error *err);

#endif
