/*
 * trust.h - the one trust decision: what several servers said about one
 * store item in, a verdict out.  No I/O: fetch and mirror ask the servers,
 * this decides, so every rule below is unit-tested with a table of cases
 * (tests/unit/test-trust.c).
 *
 * The rules (the same for Nix and Guix narinfos, which may be mixed):
 *   - A narinfo is usable when it parses, its StorePath is the path asked
 *     for, its NarHash is SHA-256, NarSize is not 0 and it has a URL.
 *   - Usable narinfos are grouped by what they claim: NarHash, NarSize and
 *     the set of References.  A group's signers are the distinct trusted
 *     public keys whose signature verified on any narinfo of the group,
 *     on any server (keys.h: one key under two names is one signer).
 *   - A group is acceptable with at least K signers, or when one of its
 *     narinfos has a CA field from which the store path recomputes (the
 *     content is then checked against it; sha256 only, not git).
 *   - Unsigned narinfos in an acceptable group are byte sources too
 *     (Guix's rule): what they claim is exactly what was signed.
 *   - With K > 1, two groups that each have a signer are a disagreement:
 *     the item is refused and both are named.  A disagreement is never
 *     resolved silently.  With K = 1, the first acceptable group in the
 *     order of the answers (the caller's server preference) wins.
 */
#ifndef CAIRN_TRUST_H
#define CAIRN_TRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/keys.h"
#include "cairn/storepath.h"

struct cairn_narinfo;

#define CAIRN_TRUST_WHY_MAX 256	    /* why one answer was refused */
#define CAIRN_TRUST_REASON_MAX 1024 /* why an item was refused */

enum cairn_trust_state {
	CAIRN_TRUST_ABSENT = 0, /* the server does not have it (404, 410) */
	CAIRN_TRUST_ERROR,	/* no answer: down, timeout, 5xx... */
	CAIRN_TRUST_INVALID,	/* an answer that is not a narinfo */
	CAIRN_TRUST_PRESENT,	/* a parsed narinfo */
};

/* One server's answer; the caller fills in the first part. */
struct cairn_trust_answer {
	const char *server;		/* for reasons (borrowed) */
	enum cairn_trust_state state;
	const struct cairn_narinfo *ni; /* PRESENT (borrowed) */
	const char *error;		/* ERROR, INVALID: why (borrowed) */
	/* Set by cairn_trust_decide: */
	int group;			/* claim group, -1 when not usable */
	int status;			/* 0: signed by a trusted key; else why not */
	bool ca_ok;			/* its CA recomputes the path */
	uint32_t sigs_ok;		/* bit i: its Sig line i verified */
	uint64_t signers;		/* bits into the verdict's signer table */
	char why[CAIRN_TRUST_WHY_MAX];	/* not usable or not signed: why; else "" */
};

struct cairn_trust_policy {
	const struct cairn_keyring *keys; /* borrowed */
	unsigned require_sigs;		  /* K; 0 is taken as 1 */
	const char *store_dir;		  /* "/nix/store", for CA checks */
};

/* Why a group of claims is what it is; for reasons and reports. */
struct cairn_trust_group {
	size_t first;	  /* index of its first answer */
	size_t n_signers; /* distinct keys */
	uint64_t signers; /* bits into the verdict's signer table */
	bool ca_ok;
};

#define CAIRN_TRUST_MAX_ANSWERS 64

struct cairn_trust_verdict {
	/* 0 accepted; else CAIRN_ENOENT (no server has it), CAIRN_ENET (no
	 * server could be asked), CAIRN_EUNTRUSTED (not enough signatures),
	 * CAIRN_EHASH (signed groups disagree), CAIRN_EFORMAT (no usable
	 * narinfo), CAIRN_ENOSIG/CAIRN_ESIG/... (no trusted signature),
	 * CAIRN_ENOMEM, CAIRN_EINVAL (more than CAIRN_TRUST_MAX_ANSWERS). */
	int status;
	int chosen;				/* the accepted group, -1 */
	const struct cairn_narinfo *ni;		/* its first narinfo (borrowed) */
	bool by_ca;				/* accepted through CA, not K signers */
	struct cairn_ca ca;			/* when by_ca */
	size_t n_groups;
	struct cairn_trust_group groups[CAIRN_TRUST_MAX_ANSWERS];
	/* Every distinct trusted key that signed anything here (at most 64:
	 * more cannot be told apart by the bit sets above). */
	size_t n_signers;
	struct cairn_signer signers[CAIRN_VERIFY_MAX_SIGNERS];
	char reason[CAIRN_TRUST_REASON_MAX];	/* status != 0: the headline */
};

/*
 * Decide about the item at store path sp (full path `path`) from answers
 * ans[0..n), in the caller's order of preference.  Fills the answers'
 * output fields and v.  Returns v->status.
 */
int cairn_trust_decide(struct cairn_trust_answer *ans, size_t n, const char *path,
		       const struct cairn_store_path *sp, const struct cairn_trust_policy *pol,
		       struct cairn_trust_verdict *v);

/* Whether two narinfos claim the same: NarHash, NarSize, set of References. */
bool cairn_trust_same_claim(const struct cairn_narinfo *a, const struct cairn_narinfo *b);

/* "http://a, http://b (signed by k1, k2) claim NarHash ..., NarSize ...,
 * N references" for group g, appended to b. */
void cairn_trust_describe_group(const struct cairn_trust_answer *ans, size_t n,
				const struct cairn_trust_verdict *v, size_t g,
				const struct cairn_keyring *keys, struct cairn_buf *b);

#endif
