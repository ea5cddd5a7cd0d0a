/*
 * ipfs-source.h - an item's NAR from IPFS gateways as a byte source of the
 * download pipeline, shared by `cairn fetch` and `cairn mirror` (internal).
 *
 * ipfs_src_nar is the one way both take the bytes: the blocks from the
 * cache and the gateways (ipfs-fetch.h, every block checked against its
 * CID), streamed in order through the download engine's pipeline
 * (cairn_dl_check_stream), which checks the whole against the signed
 * NarHash and NarSize before the sink may keep anything.
 *
 * It blocks for as long as the gateways take, so the callers that drive
 * many items on one thread (fetch's network thread, the mirror's upstream
 * thread) run it as a job of an ipfs_src: each job on a thread of its own,
 * at most `max` at once (the rest wait in order), with its own HTTP client
 * (ipfs-fetch.c's, lib/http.c).  A job's verdict comes back on the owner's
 * thread, from ipfs_src_drain, as the download pool's do (download.h).
 * Threads rather than a state machine on the owner's multi handle: the
 * block walk is a sequence of dependent requests (the nodes, then the runs
 * the nodes name) and the check is a pipeline that already runs on worker
 * threads; a thread keeps both as they are, and a stalled gateway holds
 * one job's thread and nothing else.
 */
#ifndef CAIRN_LIB_IPFS_SOURCE_H
#define CAIRN_LIB_IPFS_SOURCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "cairn/error.h"
#include "cairn/ipfs-fetch.h"
#include "download.h"

/*
 * The NAR under root into sink, checked against ex; *gateway (may be NULL)
 * the gateway that sent the last block, or "cache".  st counts what the
 * gateways cost (may be NULL).  0 when the sink holds the verified NAR.
 */
int ipfs_src_nar(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *root,
		 const struct cairn_dl_expect *ex, const struct cairn_dl_sink *sink,
		 const char **gateway, struct cairn_ipfs_fetch_stats *st,
		 struct cairn_error *err);

struct ipfs_src;

/* One item.  The caller fills the first part and hands it to
 * ipfs_src_submit; the rest is the verdict, for done. */
struct ipfs_src_job {
	struct cairn_ipfs_fetch_config cfg; /* its strings and seed borrowed; stop is the job's */
	struct cairn_cid root;
	struct cairn_dl_expect ex;
	struct cairn_dl_sink sink; /* written on the job's thread only */
	/* On the owner's thread (ipfs_src_drain), once the job is over; the
	 * job is freed when it returns.  Not called for a job cancelled or
	 * still running when the ipfs_src is freed. */
	void (*done)(struct ipfs_src_job *j);
	void *ctx;
	/* the verdict */
	int rc;
	struct cairn_error err;
	const char *gateway;
	struct cairn_ipfs_fetch_stats st;
	/* ipfs_src's */
	struct ipfs_src *src;
	struct ipfs_src_job *next;
	pthread_t tid;
	bool started;
	atomic_bool stop;
};

/* wake (may be NULL) is called on a job's thread once its verdict is in,
 * for an owner that sleeps on something else than ipfs_src_wait. */
int ipfs_src_new(struct ipfs_src **out, unsigned max, void (*wake)(void *ctx), void *wake_ctx,
		 struct cairn_error *err);
/* Calls off the jobs (each stops within ~100 ms) and waits for them. */
void ipfs_src_free(struct ipfs_src *s);
/* A zeroed job to fill in (NULL when out of memory). */
struct ipfs_src_job *ipfs_src_job_new(void);
/* Run j (now, or when a slot frees); s owns it from here. */
void ipfs_src_submit(struct ipfs_src *s, struct ipfs_src_job *j);
/* Call j off and wait for its thread: done is not called and j is freed.
 * For an owner that gives up on the item (its sink goes away). */
void ipfs_src_cancel(struct ipfs_src *s, struct ipfs_src_job *j);
/* Jobs on their threads now (at most max). */
size_t ipfs_src_running(struct ipfs_src *s);
/* Jobs submitted whose done has not run yet. */
size_t ipfs_src_pending(struct ipfs_src *s);
/* The verdicts in: done for each, on this thread; waiting jobs start.
 * Returns how many. */
size_t ipfs_src_drain(struct ipfs_src *s);
/* Sleep until a verdict is in or timeout_ms passes. */
void ipfs_src_wait(struct ipfs_src *s, int timeout_ms);

#endif
