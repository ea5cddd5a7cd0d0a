/*
 * survey.h - ask many binary caches about many store paths at once.
 *
 * A survey fetches "<server>/<hashpart>.narinfo" for every (store path,
 * server) pair, all concurrently on one asynchronous HTTP client (http.h):
 * at most max_inflight requests at a time, over the client's keep-alive
 * connections, optionally answered from and recorded in the narinfo cache
 * (nicache.h).  Each pair ends in exactly one call of the result callback
 * with one of four outcomes:
 *
 *   PRESENT   the server sent a narinfo that parses (narinfo.h, both the
 *             Nix and the Guix dialect) and whose StorePath is the path
 *             asked for
 *   ABSENT    404, 410 or 403: the server says it does not have the item
 *             (403 is what S3 answers for a missing key; Nix reads it so)
 *   INVALID   the server sent something, but not a usable narinfo: a body
 *             that does not parse, a StorePath other than the one asked
 *             for, a body over CAIRN_NARINFO_MAX
 *   UNKNOWN   no answer: connection refused (the server is then marked
 *             down, and its later pairs end at once without a request),
 *             5xx and other statuses, stalls, resets, timeouts; a pair that
 *             failed in a way worth retrying (5xx, 408, 429, a reset, a
 *             stall) is asked again max_retries times first
 *
 * Nothing here judges the narinfos: signatures are not checked (a caller
 * that cares verifies r->narinfo with keys.h), so `cairn challenge` can
 * compare what servers claim whether or not they sign it, and `cairn
 * weather` can count what they offer.  This is the query phase of a fetch,
 * without the decision.
 *
 * Order: pairs are issued path by path, every server of a path before the
 * next path, as paths were added.  Results arrive in completion order.
 * Paths may be added from inside the callback (closure expansion): a path
 * already in the survey is not asked for again.
 *
 * This is the one narinfo query engine: fetch's query phase, weather,
 * challenge and the mirror's misses ask through it, so statuses, retries,
 * the narinfo cache (answers, 404s, servers remembered down) and
 * nix-cache-info follow one set of rules.  It runs either on its own
 * (cairn_survey_run: weather, challenge) or from the caller's event loop
 * (cairn_survey_start, then the caller steps the HTTP client: fetch).
 *
 * Batches (docs/PROTOCOL.md, narinfos.h): a server whose nix-cache-info
 * says "CairnNarinfos: 1" (known from the narinfo cache, or once its
 * answer is in) is asked for its pairs CAIRN_NARINFOS_HASHES_MAX at a time
 * in one request; with cfg.closure, for their closures too, and what such
 * an answer brings beyond the pairs asked is kept for the survey's life and
 * answers those pairs when they are added (checked as any answer).  Each
 * pair still ends in one result, as from a single request, and goes to the
 * narinfo cache the same way.  A batch response that is not well formed,
 * that leaves out a pair asked, or (without closure) brings one not asked
 * for is refused whole: its pairs are INVALID, with why.  A server whose
 * batch route answers 4xx gets single requests from then on.
 *
 * nix-cache-info (with_info): asked of every server at start, alongside
 * the narinfos, never before them: a server's answers do not wait for it.
 * What it says (Priority, WantMassQuery) is recorded on the server
 * (cairn_http_server_info); a StoreDir other than store_dir marks the
 * server down.  A server the narinfo cache remembers as down is not asked
 * until that memory expires.
 */
#ifndef CAIRN_SURVEY_H
#define CAIRN_SURVEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/http.h"
#include "cairn/narinfo.h"

struct cairn_nicache;

#define CAIRN_SURVEY_MAX_SERVERS 64
#define CAIRN_SURVEY_MAX_PATHS (1u << 24) /* distinct paths in one survey */
#define CAIRN_SURVEY_INFLIGHT_DEFAULT 256
#define CAIRN_SURVEY_INFLIGHT_MAX 4096

enum cairn_survey_outcome {
	CAIRN_SURVEY_PRESENT = 0,
	CAIRN_SURVEY_ABSENT,
	CAIRN_SURVEY_INVALID,
	CAIRN_SURVEY_UNKNOWN,
};

/* "present", "absent", "invalid", "unknown"; static. */
const char *cairn_survey_outcome_name(enum cairn_survey_outcome o);

/*
 * One (path, server) answer, handed to the callback.  Everything is
 * borrowed for the duration of the call, except narinfo, which the
 * callback may take: set r->narinfo to NULL and free it later with
 * cairn_narinfo_free.
 */
struct cairn_survey_result {
	size_t path_index;   /* order of cairn_survey_add */
	size_t server_index; /* index into the servers given to _new */
	const char *store_path;
	enum cairn_survey_outcome outcome;
	struct cairn_narinfo *narinfo; /* PRESENT only, else NULL */
	const char *text;	       /* PRESENT/INVALID: the body as received */
	size_t text_len;
	long status;	 /* HTTP status, 0 when none (or from the cache) */
	bool from_cache; /* answered by the narinfo cache */
	/* the server's Cache-Control: max-age (-1: none said) and no-store;
	 * a caller that keeps answers itself (the mirror) bounds its TTLs
	 * with them as the narinfo cache does */
	int64_t max_age;
	bool no_store;
	/* INVALID/UNKNOWN: why; CAIRN_ENOENT for ABSENT. */
	struct cairn_error err;
};

/* Return 0 to go on, non-zero to stop the survey (run then fails with
 * CAIRN_ECANCELED). */
typedef int (*cairn_survey_fn)(void *ctx, struct cairn_survey_result *r);

struct cairn_survey_config {
	size_t max_inflight;	     /* default CAIRN_SURVEY_INFLIGHT_DEFAULT */
	struct cairn_nicache *cache; /* borrowed; NULL for none */
	int64_t now;		     /* for the cache: seconds since the epoch */
	unsigned max_retries;	     /* per pair; default 1 */
	bool with_info;		     /* ask each server's nix-cache-info too */
	const char *store_dir;	     /* with_info: the StoreDir servers must have */
	/* Ask what each server holds, not what it can get: narinfo requests
	 * carry "Cache-Control: only-if-cached", and a 504 (RFC 9111: not
	 * stored; a cairn mirror's answer for an item it would have to fetch)
	 * is ABSENT, not retried.  Origins answer as usual.  Not with cache
	 * (CAIRN_EINVAL): held is a fact of the moment. */
	bool only_if_cached;
	/* Use batches where servers take them (default true): their
	 * nix-cache-info is asked even without with_info, and then only
	 * CairnNarinfos is taken from it (a failure to answer it is not held
	 * against the server).  While it is out, a server's first pair goes
	 * at once and the rest wait for it (not with closure). */
	bool batches;
	/* The caller adds the References of what it gets (a closure): ask
	 * servers that take batches for closures, so that what it adds next
	 * is already here (see "Batches" above). */
	bool closure;
	/* With closure, still hold a server's pairs past the first while its
	 * nix-cache-info is out (as without closure), for a caller that waits
	 * for every server's answer anyway (the mirror). */
	bool closure_waits;
	/* The caller has set every server's CairnNarinfos already
	 * (cairn_http_server_set_info, from its own nix-cache-info): none is
	 * asked for it.  Not with with_info. */
	bool info_known;
};

void cairn_survey_config_init(struct cairn_survey_config *cfg);

struct cairn_survey;

/*
 * A survey of servers[0..n_servers) over the client h.  h and the servers
 * are borrowed and must outlive the survey; fn(ctx, ...) gets every
 * result.  CAIRN_EINVAL for no servers or more than
 * CAIRN_SURVEY_MAX_SERVERS.
 */
int cairn_survey_new(struct cairn_survey **out, struct cairn_http *h,
		     struct cairn_http_server *const *servers, size_t n_servers,
		     const struct cairn_survey_config *cfg, cairn_survey_fn fn, void *ctx,
		     struct cairn_error *err);
/* Also frees the requests still in flight: free a survey with pending
 * answers only when h will not be stepped again (it is being freed). */
void cairn_survey_free(struct cairn_survey *s);

/*
 * Add a full store path ("/nix/store/<hash>-<name>", copied).  Returns 1
 * when it is new, 0 when the survey already has a path with that hash
 * part; *index (when not NULL) gets its path index either way.
 * CAIRN_EFORMAT for an invalid store path, CAIRN_ELIMIT past
 * CAIRN_SURVEY_MAX_PATHS.  May be called from the callback.
 */
int cairn_survey_add(struct cairn_survey *s, const char *store_path, size_t *index,
		     struct cairn_error *err);

/*
 * Add a store path known only by its hash part (32 nix32 characters, as
 * in a request for "<hash>.narinfo": the mirror's misses).  A narinfo
 * whose StorePath has that hash part, in any store directory, is PRESENT;
 * r->store_path is then the hash part.  Returns as cairn_survey_add.
 */
int cairn_survey_add_hash(struct cairn_survey *s, const char *hash, size_t *index,
			  struct cairn_error *err);

/* Number of paths added so far; the path at an index (borrowed, for the
 * survey's life). */
size_t cairn_survey_count(const struct cairn_survey *s);
const char *cairn_survey_path(const struct cairn_survey *s, size_t index);

/*
 * Asynchronous use: issue what can be issued now (and again after more
 * paths were added); the caller steps h, and results come through the
 * callback.  Cache writes are batched: call cairn_survey_flush when idle.
 */
int cairn_survey_start(struct cairn_survey *s, struct cairn_error *err);
/* Pairs not answered yet, and nix-cache-info requests in flight. */
size_t cairn_survey_pending(const struct cairn_survey *s);
/* 0, or the first failure of the callback or the cache (detail in err). */
int cairn_survey_failed(const struct cairn_survey *s, struct cairn_error *err);
/* Commit the narinfo cache's open batch (a failure only costs a later run). */
void cairn_survey_flush(struct cairn_survey *s);

/*
 * Ask every pair not yet asked and wait for all answers.  Fails only when
 * libcurl, the cache or the callback fails; servers that fail are results,
 * not errors.  May be called again after more paths were added.
 */
int cairn_survey_run(struct cairn_survey *s, struct cairn_error *err);

struct cairn_survey_stats {
	uint64_t results;    /* callbacks made */
	uint64_t requests;   /* HTTP requests completed */
	uint64_t cache_hits; /* answered by the cache */
	uint64_t batches;    /* of requests: batch requests (narinfos.h) */
	uint64_t from_batch; /* results that came in a batch response */
	double seconds;	     /* wall time spent in cairn_survey_run */
};
void cairn_survey_stats(const struct cairn_survey *s, struct cairn_survey_stats *out);

#endif
