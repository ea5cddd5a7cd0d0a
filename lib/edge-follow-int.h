/*
 * edge-follow-int.h - the pure parts of the warm edge (lib/edge-follow.c):
 * its pace (rate and budget) and the only-if-cached directive that
 * lib/edge.c honours.  No I/O, no clock: time comes in as an argument.
 * Tested in tests/unit/test-edge-follow.c.  Not installed.
 */
#ifndef CAIRN_EDGE_FOLLOW_INT_H
#define CAIRN_EDGE_FOLLOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Token buckets, one of items and one of bytes, each holding at most one
 * second of its rate (so an idle follower does not burst), and a budget of
 * bytes in all.  An item may start when both buckets are not in debt; its
 * bytes are taken when they are known (after it was fetched), so one
 * large item may put the byte bucket in debt, which the next one waits
 * out.
 */
struct follow_pace {
	double item_rate, byte_rate; /* per second; 0: unbounded */
	uint64_t budget;	     /* bytes; 0: unbounded */
	uint64_t spent;		     /* bytes taken so far */
	double items, bytes;	     /* tokens (bytes may be negative: debt) */
	int64_t last_ms;	     /* when the buckets were last filled */
};

void follow_pace_init(struct follow_pace *p, double item_rate, double byte_rate, uint64_t budget,
		      int64_t now_ms);
/* Milliseconds to wait before the next item may start; 0: now. */
int64_t follow_pace_wait(struct follow_pace *p, int64_t now_ms);
/* An item starts: one item token. */
void follow_pace_start(struct follow_pace *p, int64_t now_ms);
/* Its bytes, once fetched: from the byte bucket and the budget. */
void follow_pace_took(struct follow_pace *p, int64_t now_ms, uint64_t bytes);
/* Does an item of about `bytes` fit in what is left of the budget? */
bool follow_budget_fits(const struct follow_pace *p, uint64_t bytes);

/* Does a Cache-Control value hold the only-if-cached directive (any case,
 * a token of the comma-separated list)? */
bool edge_cc_only_if_cached(const char *v, size_t len);

#endif
