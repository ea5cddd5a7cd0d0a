/*
 * edge-follow.h - a warm edge: `cairn mirror --follow URL` follows the
 * signed change feed of a head (feed.h, docs/PROTOCOL.md) and fetches each
 * new item into the mirror's cache before any client asks for it.
 *
 * The warmer is a client of the mirror's own front door: for each item
 * added in a verified page it asks the mirror (over HTTP, on its listening
 * address) for <hash>.narinfo, then for the nar its first URL names, and
 * drops the bytes.  So an item is warmed by exactly the paths a client's
 * request takes: the mirror's trust policy (--trusted-key, --require-sigs),
 * its verify-before-cache and its coalescing.  An item the mirror refuses
 * (404) is not warmed, and said so.  Before it fetches, it asks with
 * "Cache-Control: only-if-cached" whether the mirror already holds the
 * item, so nothing held is sent again.
 *
 * Bounds: a rate (items per second and bytes per second, token buckets)
 * and a budget (bytes warmed since the mirror started; an item that would
 * go past it is skipped and counted).  Pages are verified with the
 * mirror's trusted keys (a page that does not verify is logged, not
 * applied, asked for again).  Where it is in the feed is kept in a state
 * file (feed id and sequence), so a restart goes on where it stopped; the
 * first contact with a feed starts at its head: what the head had before
 * is not warmed.
 */
#ifndef CAIRN_EDGE_FOLLOW_H
#define CAIRN_EDGE_FOLLOW_H

#include <stdint.h>

#include "cairn/edge.h"
#include "cairn/error.h"

/* Seconds a long-poll asks the head to wait. */
#define CAIRN_EDGE_FOLLOW_WAIT 25
#define CAIRN_EDGE_FOLLOW_RATE_DEFAULT 10 /* items per second */

struct cairn_edge_follow_config {
	const char *feed_url; /* the head serving /feed/events (http:// or https://) */
	/* feed pages must be signed by one of these; borrowed, required */
	const struct cairn_keyring *trusted;
	const char *state_file; /* "feed ID\nseq N\n"; NULL: not kept */
	unsigned rate_items;	/* per second; 0: unbounded */
	uint64_t rate_bytes;	/* per second; 0: unbounded */
	uint64_t budget;	/* bytes warmed in all; 0: unbounded */
	long connect_timeout_ms; /* 0: the HTTP client's */
	void (*log)(void *ctx, enum cairn_edge_log_level level, const char *msg);
	void *log_ctx;
	/* a removal of a verified page: forget the item (NULL: removals are
	 * left to the TTLs) */
	void (*forget)(void *ctx, const char *hashpart);
	void *forget_ctx;
};

void cairn_edge_follow_config_init(struct cairn_edge_follow_config *cfg);

struct cairn_edge_follow;
struct cairn_httpd;

/* Check the config, copy its strings, register the metrics on h (before
 * h runs; free the follower only once h has stopped: its /metrics reads
 * the follower). */
int cairn_edge_follow_new(struct cairn_edge_follow **out, const struct cairn_edge_follow_config *cfg,
			  struct cairn_httpd *h, struct cairn_error *err);
/* Start the follower's thread once the mirror listens: edge_url is its
 * front door, "http://127.0.0.1:PORT" (copied). */
int cairn_edge_follow_start(struct cairn_edge_follow *f, const char *edge_url,
			    struct cairn_error *err);
/* Stop it (within a fraction of a second) and free it. */
void cairn_edge_follow_free(struct cairn_edge_follow *f);

#endif
