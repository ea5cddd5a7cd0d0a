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

#include "download.h"

/* Defaults of cfg.multi_*: initial pieces per source, the smallest piece. */
#define CAIRN_DL_MULTI_PARTS 1
#define CAIRN_DL_MULTI_MIN_PIECE ((uint64_t)1 << 20)

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
	const size_t *use;		   /* which of them serve the file */
	size_t n_use;
	uint64_t size; /* the file's, as all of them say */
	unsigned max_resumes, retry_delay_ms;
	unsigned parts; /* initial pieces per source */
	uint64_t min_piece;
	/* called once per source used, when the download ends */
	void (*on_stats)(void *ctx, size_t source, const struct cairn_dl_source_stats *st);
	void *ctx;
};
int dl_multi_start(struct dl_multi **out, struct cairn_dl *d, const struct dl_multi_config *cfg,
		   struct cairn_error *err);
void dl_multi_free(struct dl_multi *m);

#endif
