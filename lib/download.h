/*
 * download.h - the one download-and-verify engine (internal to libcairn).
 * fetch, challenge, sync and the mirror get a store item's bytes through
 * it:
 *
 *   HTTP body --> FileSize, FileHash --> codec --> NAR parser --> sink
 *                                                  NarHash, NarSize, CA
 *
 * A download has an expectation (the signed NarHash and NarSize, and a CA
 * when that is what the item was accepted by) and an ordered list of
 * sources: servers that offer those bytes, each with its URL, compression
 * and the unsigned FileHash/FileSize hints of its narinfo.  It runs on the
 * caller's HTTP client (http.h), on whatever thread drives that client,
 * and ends with exactly one call of on_done.
 *
 * Per source:
 *   - a body cut short, a reset or a stall is resumed from where it
 *     stopped with Range (when the server said Accept-Ranges or nothing
 *     was received yet), at most max_resumes times, each retry a little
 *     later than the one before;
 *   - a Range answered with 200 restarts the item from byte 0 on that
 *     very response: what was received is discarded, never trusted twice;
 *   - a 206 for another range than the one asked is a failed attempt: the
 *     item is asked again from byte 0 (once), then the next source;
 *   - bytes that fail a check (FileSize, FileHash, a NAR that does not
 *     parse, NarHash, NarSize, CA) end the source: such a server is not
 *     asked to resume, and the result says which sources failed that way.
 * A new source starts from byte 0 with a fresh pipeline and a fresh sink
 * target: its file may be another compression of the same NAR (unless
 * resume_across says the sources serve one file).
 *
 * The sink receives the NAR's entries and/or its bytes while they stream;
 * they are only verified once the whole body is in.  So a sink writes to a
 * temporary target that its begin() makes and its discard() removes, and
 * the caller publishes it (renames, commits) only after on_done says 0.
 *
 * With a pool, the pipeline runs on worker threads so that decompressing,
 * hashing and unpacking never hold the network loop; a download's queued
 * bytes are bounded (the network thread waits: back-pressure), and the
 * verdicts come back through cairn_dl_pool_drain on the network thread.
 */
#ifndef CAIRN_LIB_DOWNLOAD_H
#define CAIRN_LIB_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/nar.h"
#include "cairn/storepath.h"

#define CAIRN_DL_MAX_SOURCES 64
#define CAIRN_DL_MAX_EXPECT 16
#define CAIRN_DL_REASON_MAX 1024
/* Bytes of one download queued for its worker before the network thread
 * waits (unpacking slower than the network). */
#define CAIRN_DL_QUEUE_MAX ((size_t)8 << 20)

/* One place the bytes can come from.  Strings are borrowed until on_done. */
struct cairn_dl_source {
	const char *label;		  /* the server's URL, for reasons */
	struct cairn_http_server *server; /* NULL when url is absolute */
	const char *url;
	enum cairn_codec_method method;
	bool has_file_hash; /* sha256 FileHash: checked */
	struct cairn_hash file_hash;
	bool has_file_size;
	uint64_t file_size;
};

/* What the bytes must be: signed fields only. */
struct cairn_dl_expect {
	struct cairn_hash nar_hash; /* sha256 */
	uint64_t nar_size;
	bool by_ca; /* the content must match ca too */
	struct cairn_ca ca;
	struct cairn_store_path sp; /* for the CA check */
};

/*
 * Where the verified-to-be bytes go.  begin() runs before byte 0 of every
 * attempt that starts from the beginning (a new source, a restart);
 * discard() undoes it.  All three run on the thread that runs the pipeline
 * (a worker, with a pool), in order with the bytes.
 */
struct cairn_dl_sink {
	int (*begin)(void *ctx, struct cairn_error *err);
	const struct cairn_nar_callbacks *tree; /* the NAR's entries, or NULL */
	int (*nar)(void *ctx, const void *data, size_t len, struct cairn_error *err);
	/* The file's bytes as the server sent them (compressed), or NULL:
	 * what a replica keeps, checked with the rest once all is in */
	int (*body)(void *ctx, const void *data, size_t len, struct cairn_error *err);
	void (*discard)(void *ctx);
	void *ctx;
};

struct cairn_dl_result {
	int code;		   /* 0: the sink holds exactly the expected NAR */
	size_t source;		   /* the source that delivered (code 0) */
	size_t expect;		   /* the expectation it met (code 0, checked) */
	enum cairn_codec_method method;
	uint64_t bytes;		   /* body bytes received, all sources */
	uint64_t verify_failed;	   /* bit i: source i sent bytes that failed a check */
	const char *headline;	   /* code != 0: what happened in all */
	const char *reason;	   /* each source's failure, "label: why; ..." */
};

/* What one source did in a download from several at once (multi_min). */
struct cairn_dl_source_stats {
	uint64_t bytes;	    /* body bytes it sent */
	uint64_t active_ms; /* its requests were open this long */
	uint64_t rate;	    /* bytes/s: bytes over active_ms */
	uint64_t rtt_ms;    /* request to first response header, its first request */
	unsigned failures;  /* requests that broke off */
	bool failed;	    /* given up on */
};

struct cairn_dl_pool;

/* Worker threads for the pipelines of many downloads (fewer may start). */
int cairn_dl_pool_new(struct cairn_dl_pool **out, unsigned threads, struct cairn_error *err);
void cairn_dl_pool_free(struct cairn_dl_pool *p);
unsigned cairn_dl_pool_threads(const struct cairn_dl_pool *p);
/* Verdicts the workers reached: hand them to their downloads (on_done and
 * next sources run here).  Returns how many. */
size_t cairn_dl_pool_drain(struct cairn_dl_pool *p);
/* Verdicts asked of the workers and not yet drained. */
size_t cairn_dl_pool_pending(struct cairn_dl_pool *p);
/* Sleep until a verdict is ready or timeout_ms passes. */
void cairn_dl_pool_wait(struct cairn_dl_pool *p, int timeout_ms);

struct cairn_dl_config {
	struct cairn_http *http;     /* borrowed */
	struct cairn_dl_pool *pool;  /* NULL: the pipeline runs in on_data */
	unsigned max_resumes;	     /* per source; default 3 when 0 */
	unsigned retry_delay_ms;     /* first retry's delay, doubling; default 100 */
	/* The sources serve the very same file (mirrors of one cache, the
	 * same path): a source that fails in transit hands what it sent on
	 * to the next one with the same method and hints, which is asked for
	 * the rest with Range.  Bytes so put together that fail a check are
	 * asked again of that source from byte 0, alone. */
	bool resume_across;
	/*
	 * A file of at least multi_min bytes (by FileSize) that two or more
	 * sources serve the very same way (method, FileHash, FileSize) is
	 * asked of all of them at once, in ranges (download-int.h); 0: one
	 * source at a time.  multi_parts initial pieces per source (1 when
	 * 0), none smaller than multi_min_piece (1 MiB when 0).  Such a
	 * download calls neither on_response nor on_source_failed, and its
	 * result names source 0 (or, after a failed check, the source that
	 * then delivered alone).  Its bytes ahead of the pipeline wait in an
	 * unlinked file under $TMPDIR (at most the file's size).
	 */
	uint64_t multi_min;
	unsigned multi_parts;
	uint64_t multi_min_piece;
	/* Range requests in flight per source at once (CAIRN_DL_MULTI_PER_SOURCE
	 * when 0, at most CAIRN_DL_MULTI_PER_SOURCE_MAX). */
	unsigned multi_per_source;
	/* After such a download: what each source it used did (to keep their
	 * rates, so that the next download starts with the fastest). */
	void (*on_source_stats)(void *ctx, size_t source, const struct cairn_dl_source_stats *st);
	/* Exactly once; the download may be freed from inside. */
	void (*on_done)(void *ctx, const struct cairn_dl_result *r);
	void (*on_bytes)(void *ctx, size_t n); /* body bytes as they arrive */
	/* A 2xx answer whose body goes on from byte `first` (0: the whole
	 * file; the sink was begun for it), or NULL.  Non-zero turns it down
	 * as bytes that fail a check would be (why says why): the next source. */
	int (*on_response)(void *ctx, size_t source, uint64_t first,
			   const struct cairn_http_response *resp, char *why, size_t cap);
	/* A source failed for good (why names it), before the next is tried. */
	void (*on_source_failed)(void *ctx, size_t source, int code, const char *why);
	void *ctx;
};

struct cairn_dl;

/*
 * Start downloading.  src[0..n) and the sink are copied (their strings
 * and contexts are borrowed until on_done).  Fails at once, without
 * on_done, only for bad arguments or no memory; a source that cannot be
 * asked (its server is down) is a reason, not an error.
 */
int cairn_dl_start(struct cairn_dl **out, const struct cairn_dl_config *cfg,
		   const struct cairn_dl_expect *ex, const struct cairn_dl_source *src, size_t n,
		   const struct cairn_dl_sink *sink, struct cairn_error *err);
/*
 * The same with ex[0..n_ex) acceptable: one URL that several signed
 * narinfos name (the mirror), each with its NarHash and NarSize; the NAR
 * must be one of them (result.expect says which).  At most one of them,
 * alone, may be by_ca.  n_ex == 0 checks only the sources' FileSize and
 * FileHash and passes the body through to a body-only sink: bytes the
 * caller has nothing signed to check against, which it must not trust
 * (the mirror streams them, never keeps them).
 */
int cairn_dl_start_any(struct cairn_dl **out, const struct cairn_dl_config *cfg,
		       const struct cairn_dl_expect *ex, size_t n_ex,
		       const struct cairn_dl_source *src, size_t n,
		       const struct cairn_dl_sink *sink, struct cairn_error *err);
/*
 * One more source, tried after the others (an answer that came in after
 * the download started).  Only before on_done; CAIRN_ELIMIT when full.
 */
int cairn_dl_add_source(struct cairn_dl *d, const struct cairn_dl_source *src);
/* Stop (on_done is not called), discard the sink's target, free. */
void cairn_dl_free(struct cairn_dl *d);

/*
 * Check a tree already on disk against ex (its NAR's hash and size, and
 * the CA when ex->by_ca): the pipeline without a download, with an
 * optional sink (begin and discard are not called).  0 or CAIRN_EHASH
 * with what the tree's NAR is.
 */
int cairn_dl_check_tree(const char *path, const struct cairn_dl_expect *ex,
			const struct cairn_dl_sink *sink, struct cairn_error *err);

/*
 * A NAR the caller produces itself (blocks from IPFS gateways, each already
 * checked against its CID, put back in order): the download's pipeline
 * and checks, without the download.  produce() writes the NAR's bytes to
 * write(wctx, ...) and returns 0 or an error (set in err).  The sink is
 * begun first and discarded on any failure; on 0 its target is the
 * caller's to commit.  0, produce()'s error, or the check's (CAIRN_EHASH...).
 */
typedef int (*cairn_dl_write_fn)(void *wctx, const void *data, size_t len);
typedef int (*cairn_dl_produce_fn)(void *ctx, cairn_dl_write_fn write, void *wctx,
				   struct cairn_error *err);
int cairn_dl_check_stream(const struct cairn_dl_expect *ex, cairn_dl_produce_fn produce,
			  void *ctx, const struct cairn_dl_sink *sink, struct cairn_error *err);

/* ---- sinks ---------------------------------------------------------------- */

/* Restore the tree at target (nar.h's restore: a temporary name, renamed by
 * cairn_dl_tree_commit).  flags: CAIRN_NAR_RESTORE_*. */
struct cairn_dl_tree;
int cairn_dl_tree_new(struct cairn_dl_tree **out, const char *target, unsigned flags,
		      struct cairn_error *err);
void cairn_dl_tree_sink(struct cairn_dl_tree *t, struct cairn_dl_sink *out);
/* Put the verified tree in place; CAIRN_EEXIST when something is there. */
int cairn_dl_tree_commit(struct cairn_dl_tree *t, struct cairn_error *err);
void cairn_dl_tree_free(struct cairn_dl_tree *t); /* removes an uncommitted tree */

/* Keep the NAR as a file: written under a temporary name in dir, renamed
 * to path (0644, synced) by cairn_dl_file_commit. */
struct cairn_dl_file;
int cairn_dl_file_new(struct cairn_dl_file **out, const char *path, struct cairn_error *err);
void cairn_dl_file_sink(struct cairn_dl_file *f, struct cairn_dl_sink *out);
/* The same file, but holding the body as served (the compressed file a
 * binary cache keeps under its narinfo's URL) rather than the NAR. */
void cairn_dl_file_body_sink(struct cairn_dl_file *f, struct cairn_dl_sink *out);
int cairn_dl_file_commit(struct cairn_dl_file *f, struct cairn_error *err);
void cairn_dl_file_free(struct cairn_dl_file *f);

#endif
