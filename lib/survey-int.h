/*
 * survey-int.h - what survey.c (pairs, single requests, nix-cache-info)
 * shares with survey-batch.c (many narinfos per request).  Not public.
 */
#ifndef CAIRN_SURVEY_INT_H
#define CAIRN_SURVEY_INT_H

#include "cairn/buf.h"
#include "cairn/narinfos.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "map.h"

struct path_ent {
	char *path; /* the hash part alone for a path added by it */
	char hash[CAIRN_STORE_HASH_LEN + 1];
	bool by_hash;
};

struct survey_req {
	struct cairn_survey *s;
	size_t path, server;
	unsigned retries;
	bool info; /* a nix-cache-info request */
	/* a batch request (survey-batch.c): the paths asked, all of them
	 * on server; closure when it asks for their closures too */
	size_t *batch, n_batch;
	bool closure;
	/* held until the server's nix-cache-info is in: the result */
	struct survey_req *held_next;
	/* s->out: sent, on_done not called yet */
	struct survey_req *out_prev, *out_next;
	enum cairn_http_outcome outcome;
	long status;
	struct cairn_error err;
	struct cairn_buf body;
	int64_t max_age;
	bool no_store;
};

struct server_state {
	bool noted_down;   /* recorded in the narinfo cache */
	bool info_pending; /* its nix-cache-info is being asked */
	struct survey_req *held, *held_tail; /* answers waiting for it */
	/* batches (survey-batch.c) */
	bool batch_off;		/* its batch route failed: single requests */
	size_t early;		/* pairs sent before its nix-cache-info was in */
	/* paths for its next requests, a queue: pend[pend_head..n_pend);
	 * batches where it takes them, else single requests */
	size_t *pend, pend_head, n_pend, cap_pend;
	size_t batches_out;	/* its batch requests in the client */
	struct map stash;	/* hash part -> struct stash_ent, from closures */
	size_t n_stash;
};

struct cairn_survey {
	struct cairn_http *h;
	struct cairn_http_server **servers;
	size_t n_servers;
	struct cairn_survey_config cfg;
	cairn_survey_fn fn;
	void *ctx;

	struct path_ent *paths;
	size_t n_paths, cap_paths;
	struct map by_hash; /* hash part -> index + 1 */

	struct server_state *st;
	struct survey_req *out; /* requests in the client */
	size_t next_path, next_server;
	size_t inflight, infos_inflight;
	size_t n_pend; /* pairs queued (pend), all servers */
	size_t flush_next; /* the server survey_batch_flush starts with */
	bool started;
	bool batch_open;
	bool flushing; /* in survey_batch_flush: a nested call returns */
	int stop_rc; /* first failure of the callback or the cache */
	struct cairn_error stop_err;
	struct cairn_survey_stats stats;
};

/* pairs a server gets one by one while its nix-cache-info is out */
#define SURVEY_EARLY_PAIRS 1
/* Pairs queued ahead of the requests, all servers, per request allowed
 * at once: what max_inflight full batches hold.  The pump stops there, so
 * a survey of millions of paths queues no more than it can send soon. */
#define SURVEY_AHEAD_PER_REQUEST CAIRN_NARINFOS_HASHES_MAX
/* A batch of fewer than CAIRN_NARINFOS_HASHES_MAX pairs goes only while
 * its server has fewer batches than this out; else its pairs wait for
 * more pairs or for an answer.  Sent the moment a slot freed, a survey of
 * 100,000 paths went out in batches of 8 (12,000 requests where 1,000
 * do); a query of a few paths still goes at once. */
#define SURVEY_PARTIAL_BATCHES_OUT 2
/* Batches out at once to one server: 800 narinfos, enough to keep it
 * busy; more only let one server's answers run ahead of the others' (with
 * max_inflight's 256 it ran thousands of items ahead, and the monitor,
 * which holds an item's answers until its last, had to write them twice). */
#define SURVEY_BATCHES_OUT_MAX 8

/* survey.c */
void survey_deliver(struct cairn_survey *s, struct cairn_survey_result *r);
void survey_result_init(struct cairn_survey_result *r, const struct cairn_survey *s, size_t path,
			size_t server);
enum cairn_survey_outcome survey_classify(struct cairn_survey *s, struct cairn_survey_result *r,
					  const char *text, size_t len);
void survey_cache_put(struct cairn_survey *s, size_t path, size_t server, int64_t max_age,
		      bool no_store, const struct cairn_survey_result *r);
void survey_note_down(struct cairn_survey *s, size_t server);
void survey_req_free(struct survey_req *q);
void survey_out_add(struct cairn_survey *s, struct survey_req *q);
int survey_send(struct cairn_survey *s, struct survey_req *q, struct cairn_error *err);
/* The single request of one pair, as without batches. */
void survey_issue_single(struct cairn_survey *s, size_t path, size_t server);
void survey_pump(struct cairn_survey *s);

/* survey-batch.c */
/* Does the server take batches now (its nix-cache-info said so)? */
bool survey_batch_ok(const struct cairn_survey *s, size_t server);
/* A pair answered by what an earlier closure response brought; 1 when done. */
int survey_try_stash(struct cairn_survey *s, size_t path, size_t server);
/* Queue a pair for the server's next request (a batch, or a single one
 * when it takes no batches). */
int survey_batch_queue(struct cairn_survey *s, size_t path, size_t server);
/* Send the queued pairs of the servers whose nix-cache-info is in,
 * CAIRN_NARINFOS_HASHES_MAX per request where they take batches, one by one
 * where not; never past max_inflight requests: the rest stay queued. */
void survey_batch_flush(struct cairn_survey *s);
/* A batch request is done. */
void survey_batch_done(struct survey_req *q, const struct cairn_http_result *res);
/* The URL of a batch request into buf. */
int survey_batch_url(const struct cairn_survey *s, const struct survey_req *q,
		     struct cairn_buf *buf);
void survey_batch_free(struct cairn_survey *s);

#endif
