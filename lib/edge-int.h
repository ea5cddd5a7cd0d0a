/*
 * edge-int.h - what lib/edge*.c share: the on-disk store
 * (layout in include/cairn/edge.h) and the helpers of the operator's log.
 * Not installed.
 */
#ifndef CAIRN_EDGE_INT_H
#define CAIRN_EDGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "map.h"

/* --- the store -------------------------------------------------------------- */

#define EDGE_FILE_NAME_LEN 64 /* sha256 in hex */

struct edge_store;

struct edge_store_stats {
	uint64_t n_nars;
	uint64_t bytes;
	uint64_t evictions; /* since open */
};

/* Create the layout if needed, recover, load the index.  Thread-safe after. */
int edge_store_open(struct edge_store **out, const char *dir, uint64_t max_size,
		    struct cairn_error *err);
void edge_store_free(struct edge_store *s);

/* The directory that holds the nars, for cairn_httpd_send_file_at. */
int edge_store_data_fd(const struct edge_store *s);

/* 1 and the file name (and size) when the nar at `path` is cached, marking
 * it recently used; 0 when not. */
int edge_store_nar_get(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size);

/* A new temporary file: *fd open for writing, its path in tmppath. */
int edge_store_tmp_open(struct edge_store *s, char *tmppath, size_t cap, int *fd,
			struct cairn_error *err);

/*
 * Move a verified temporary file into the cache as the nar at `path`,
 * evicting least-recently-used nars to stay under max_size.  CAIRN_ELIMIT
 * (temp file removed) when it alone is larger than max_size.
 */
int edge_store_nar_commit(struct edge_store *s, const char *path, const char *tmppath,
			  const uint8_t sha256[32], uint64_t size, struct cairn_error *err);

/*
 * Forget the nar at `path` unless its file's SHA-256 is sha256 (NULL:
 * forget it anyway), as when what it must hash to changed.  1 when a nar
 * went, 0 when not.  Not counted as an eviction.
 */
int edge_store_nar_drop_unless(struct edge_store *s, const char *path, const uint8_t *sha256);

/* Keep a narinfo text (replacing an older one). */
int edge_store_narinfo_put(struct edge_store *s, const char *hash, const char *text, size_t len,
			   int64_t fetched, struct cairn_error *err);
/* Forget narinfos fetched before `before`. */
int edge_store_narinfo_purge(struct edge_store *s, int64_t before, struct cairn_error *err);
/* Call fn for every stored narinfo (at start-up, to fill the memory cache). */
int edge_store_narinfo_each(struct edge_store *s,
			    int (*fn)(void *ctx, const char *hash, const char *text, size_t len,
				      int64_t fetched),
			    void *ctx, struct cairn_error *err);

/*
 * The last good nix-cache-info of each upstream (keyed by its base URL),
 * so that a restarted mirror can describe itself while its upstreams are
 * down.  info_get: 1 and a malloc'ed copy in *text when there is one of at
 * most max bytes, 0 when not.
 */
int edge_store_info_put(struct edge_store *s, const char *upstream, const char *text, size_t len,
			struct cairn_error *err);
int edge_store_info_get(struct edge_store *s, const char *upstream, size_t max, char **text,
			size_t *len, struct cairn_error *err);

/* Write the recency of recently used nars back to the index. */
int edge_store_flush(struct edge_store *s, struct cairn_error *err);

void edge_store_stats(struct edge_store *s, struct edge_store_stats *out);

/* --- the operator's log (lib/edge-log.c) ------------------------------------ */

#define EDGE_LOG_LINE_MAX 4096 /* one line of the log, with its NUL */

/*
 * Copy len bytes of `in` (text that came from the network, or from a file)
 * into out as printable ASCII on one line: any other byte, and '\',
 * becomes \xNN, so that nothing in it can end the line, move the cursor or
 * pass for something else.  Cut with "..." when out (cap >= 4) is full.
 * Returns out.
 */
char *edge_safe(char *out, size_t cap, const char *in, size_t len);

/* Drop the user:password@ of every URL in s (in place): an upstream's
 * credentials stay out of the log and the pages. */
void edge_redact_userinfo(char *s);

/* "0 B", "512 B", "1.5 KiB", "2.0 GiB"... */
void edge_fmt_size(char *out, size_t cap, uint64_t bytes);

/*
 * At most one line per interval for one kind of event; the ones in between
 * are counted, and the last of them kept, to be told in one line later.
 */
struct edge_ratelimit {
	uint64_t next_ms;	      /* no line before this */
	uint64_t suppressed;	      /* events not told since the last line */
	char last[EDGE_LOG_LINE_MAX]; /* the last of them */
};

/*
 * An event (described by msg) at now_ms: 1 when it is to be told now, with
 * *suppressed the number that went untold before it; 0 when it is counted
 * (and kept as r->last) instead.
 */
int edge_ratelimit_event(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms,
			 const char *msg, uint64_t *suppressed);
/* 1 when untold events are due to be told (*n of them, the last in
 * r->last): a line counts as told from now on. */
int edge_ratelimit_due(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms,
		       uint64_t *n);

#endif
