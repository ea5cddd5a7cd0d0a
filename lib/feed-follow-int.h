/*
 * feed-follow-int.h - a fake transport for the follower's tests
 * (tests/unit/test-feed-follow.c): the documents come from the test, not
 * from HTTP.  Not public.
 */
#ifndef CAIRN_FEED_FOLLOW_INT_H
#define CAIRN_FEED_FOLLOW_INT_H

#include "cairn/feed-follow.h"

/* GET path (relative to the head) through sink; *status gets the final
 * HTTP status (0 when none came; a non-2xx fails, CAIRN_ENET, with no body). */
typedef int (*feed_get_fn)(void *ctx, const char *path, uint64_t max, long first_byte_ms,
			   int (*sink)(void *sctx, const void *data, size_t len), void *sink_ctx,
			   long *status, struct cairn_error *err);

void feed_follow_set_transport(struct cairn_feed_follow *f, feed_get_fn get, void *ctx);

#endif
