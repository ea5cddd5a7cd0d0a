/*
 * edge-trust.h - the mirror's side of the trust decision: what its
 * upstreams answered about one item in, the verdict of lib/trust.c and the
 * narinfo to serve out.  Pure (no I/O, no clock), tested in
 * tests/unit/test-edge-trust.c.  Not installed.
 */
#ifndef CAIRN_EDGE_TRUST_H
#define CAIRN_EDGE_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/keys.h"
#include "cairn/trust.h"

struct cairn_narinfo;

/* What one upstream answered (the mirror asks by hash part only). */
struct edge_answer {
	const char *server;	    /* its name, printable (borrowed) */
	bool answered;		    /* false: no answer yet */
	enum cairn_trust_state state;
	struct cairn_narinfo *ni;   /* PRESENT */
	char *text;		    /* PRESENT: the body as received */
	size_t len;
	char *error;		    /* INVALID, ERROR: why */
	int64_t max_age;	    /* its Cache-Control max-age, -1: none */
	bool no_store;
};

/*
 * Decide about the item with hash part `hash` from ans[0..n) (n at most
 * CAIRN_TRUST_MAX_ANSWERS), in the order of preference, needing K
 * distinct trusted keys (keys non-NULL).  The store path decided for is
 * the StorePath of a PRESENT answer: each distinct one in answer order
 * until one is accepted (only one name can carry valid signatures for a
 * hash; the others are answers that are not usable), else the first.  An
 * unanswered answer counts as an error.  ta[0..n) and v get what
 * cairn_trust_decide fills in.  Returns v->status.
 */
int edge_trust_decide(const struct edge_answer *ans, size_t n, const char *hash,
		      const struct cairn_keyring *keys, unsigned k,
		      struct cairn_trust_answer *ta, struct cairn_trust_verdict *v);

/*
 * K = 1 may be decided before every upstream answered, as long as the
 * answer served is the one the preferred upstreams' answers could not
 * change: the verdict (of edge_trust_decide) accepted an answer and every
 * upstream before it answered.  With K > 1 every answer is needed: a
 * disagreement must be seen.
 */
bool edge_trust_final(const struct edge_answer *ans, size_t n, unsigned k,
		      const struct cairn_trust_verdict *v);

/*
 * text[0..len) (a Nix narinfo) with a "Sig: <s>" line for each of
 * sigs[0..n) it does not carry yet, added after its last Sig line (at its
 * end when it has none); the rest byte for byte.  Appended to out.
 * CAIRN_ENOMEM or CAIRN_ELIMIT (out is full).
 */
int edge_sigs_merge(const char *text, size_t len, const char *const *sigs, size_t n,
		    struct cairn_buf *out);

/*
 * The narinfo to serve for an accepted verdict: the text of the group's
 * first answer (its URL, Compression, FileHash and FileSize are that
 * upstream's), carrying every signature by a trusted key that verified
 * on any narinfo of the group.  A Guix narinfo is served as it is: its
 * one Signature covers the text before it, and Guix checks no more.
 */
int edge_trust_served(const struct edge_answer *ans, const struct cairn_trust_answer *ta,
		      size_t n, const struct cairn_trust_verdict *v, struct cairn_buf *out);

#endif
