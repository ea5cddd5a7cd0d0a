/*
 * download-int.h - between the download engine (download.c) and its
 * several-sources-at-once mode (download-multi.c).
 *
 * When several sources serve the very same file (same method, FileHash
 * and FileSize) and it is at least cfg.multi_min bytes, the engine begins
 * the sink and hands the transfer to a dl_multi: every source asks for
 * ranges of the file at once (download-ranges.c decides which), the bytes
 * go to the one pipeline in file order (bytes ahead of it wait in an
 * unlinked temporary file, so memory stays bounded), and once every byte
 * is in the engine verifies the whole as it does for one source.  Bytes
 * that fail a check cannot be blamed on one source: the engine then
 * starts over one source at a time, which can tell.
 */
#ifndef CAIRN_LIB_DOWNLOAD_INT_H
#define CAIRN_LIB_DOWNLOAD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/hash.h"
#include "cairn/nar.h"
#include "download.h"

/* Defaults of cfg.multi_*: initial pieces per source, the smallest piece. */
#define CAIRN_DL_MULTI_PARTS 1
#define CAIRN_DL_MULTI_MIN_PIECE ((uint64_t)1 << 20)
/* Requests in flight per source: 1 won on emulated links of 100 and 300 ms
 * round trip (bench/README.md, "Ranges per source"). */
#define CAIRN_DL_MULTI_PER_SOURCE 1
#define CAIRN_DL_MULTI_PER_SOURCE_MAX 4

struct dl_multi;

/* download.c, for download-multi.c: */
/* Body bytes, in file order, into the pipeline; non-zero when it refused
 * them (d's pipeline error says why). */
int cairn_dl__feed(struct cairn_dl *d, const void *data, size_t len);
/* Body bytes received from any source (counted, on_bytes). */
void cairn_dl__got(struct cairn_dl *d, size_t len);
/* Every request has ended: code 0 when all bytes were fed (verify them),
 * else why it could not be done together. */
void cairn_dl__multi_end(struct cairn_dl *d, int code, const char *why);

/* download-multi.c: */
struct dl_multi_config {
	struct cairn_http *http;
	const struct cairn_dl_source *src; /* all of the download's sources */
	const size_t *use;		   /* which of them serve the file (copied) */
	size_t n_use;
	uint64_t size; /* the file's, as all of them say */
	unsigned max_resumes, retry_delay_ms;
	unsigned parts; /* initial pieces per request in flight */
	uint64_t min_piece;
	unsigned per_source; /* requests in flight per source */
	/* called once per source used, when the download ends */
	void (*on_stats)(void *ctx, size_t source, const struct cairn_dl_source_stats *st);
	void *ctx;
};
int dl_multi_start(struct dl_multi **out, struct cairn_dl *d, const struct dl_multi_config *cfg,
		   struct cairn_error *err);
void dl_multi_free(struct dl_multi *m);

/* download.c, for download-check.c and download-multi.c: the handle */
/* A piece of body for a worker, or an order to start over from byte 0. */
struct chunk {
	struct chunk *next;
	bool restart;
	size_t len;
	unsigned char data[];
};

struct cairn_dl {
	struct cairn_dl_config cfg;
	struct cairn_dl_expect ex[CAIRN_DL_MAX_EXPECT];
	size_t n_ex; /* 0: unchecked, the source's hints only */
	size_t met;  /* the expectation the NAR met */
	uint64_t max_nar; /* the largest NarSize of ex */
	struct cairn_dl_source src[CAIRN_DL_MAX_SOURCES];
	size_t n_src, cur;
	struct cairn_dl_sink sink;
	/* the pipeline of the current source */
	struct cairn_codec *codec;
	struct cairn_nar_parser *parser;
	struct cairn_sha256 filehash;
	bool filehash_on;
	struct cairn_ca_verify cav;
	bool ca_on, ca_root_file;
	bool sink_begun;
	uint64_t fed; /* body bytes into the pipeline since byte 0 */
	struct cairn_error perr;
	/* the transfer */
	uint64_t received;    /* body bytes of this source from byte 0, resumes included */
	uint64_t range_start; /* of the request in flight */
	unsigned resumes;
	bool accept_ranges;
	bool bad_range;	    /* a 206 for another range than asked */
	bool plain_retried; /* asked again from byte 0 after a bad range */
	bool content_error; /* the bytes failed a check: do not resume */
	bool in_flight;
	bool refused; /* the caller's on_response turned the answer down */
	bool continued; /* this source goes on from another's bytes (resume_across) */
	bool transit;	/* the source failing now failed in transit, not on its bytes */
	char refuse_why[128];
	struct dl_multi *multi; /* several sources at once (download-multi.c) */
	uint64_t bytes;
	uint64_t verify_failed;
	struct cairn_buf reason;
	char headline[96];
	/* hand-off to the pool, under pool->mu */
	struct cairn_dl_pool *pool;
	struct chunk *q_head, *q_tail;
	size_t q_bytes;
	bool q_finish;
	bool busy, runnable, w_failed, w_done;
	int w_rc;
	struct cairn_dl *run_next, *done_next;
};

/* The pipeline (download.c): the NAR parser's callbacks into the sink,
 * NAR bytes in, its setup for d->src[d->cur], the checks once all is in. */
extern const struct cairn_nar_callbacks dl_pipe_cb;
int dl_nar_out(void *ctx, const void *data, size_t len);
int dl_pipe_setup(struct cairn_dl *d);
int dl_pipe_verify(struct cairn_dl *d);
void dl_pipe_teardown(struct cairn_dl *d);

#endif
