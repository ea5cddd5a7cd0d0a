/*
 * sync.h - `cairn sync`: replicate a head's binary cache into a directory
 * from its change feed (feed.h, docs/PROTOCOL.md): the initial
 * replication from the snapshot, then (follow) the feed's pages; or, for a
 * head without a feed, the closures of a list of store paths (paths_file,
 * through the query engine).
 *
 * The replica is the binary-cache layout (what `nix copy --to file://DIR`
 * writes), servable by `cairn publish --binary-cache DIR` or any static
 * server:
 *   DIR/nix-cache-info        the head's, byte for byte
 *   DIR/<hashpart>.narinfo    the head's narinfo, byte for byte (its
 *                             signatures travel: clients need no new key)
 *   DIR/<URL without query>   the file the narinfo's first URL names, as
 *                             the head served it (compressed)
 *   DIR/<hashpart>.ls         its listing, and DIR/log/<drv basename> its
 *                             build log, where the head has them (not
 *                             signed: copied as they come, after the item)
 * Every item goes through the shared download engine (lib/download.c):
 * FileSize, FileHash, NarHash and NarSize are checked before the file is
 * renamed into place, and the narinfo is written (temporary name, then
 * rename) only after its file is there, so nothing is visible that cannot
 * be served.  An item is trusted only through its narinfo's own
 * signatures; the feed's signature only says which items exist.  A
 * narinfo already in DIR with the same bytes is done: a restart after a
 * kill resumes without downloading it again, and temporary files left by
 * the kill (".NAME.XXXXXX") are removed at start.
 */
#ifndef CAIRN_SYNC_H
#define CAIRN_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/keys.h"

#define CAIRN_SYNC_PARALLEL_DEFAULT 16
#define CAIRN_SYNC_PARALLEL_MAX 256
/* The compressed snapshot, kept in a temporary file (unlinked at once)
 * while its items are copied as it is read: at most this many bytes. */
#define CAIRN_SYNC_SNAPSHOT_MAX ((uint64_t)64 << 30)
/* The --paths list, decompressed: at most this many bytes. */
#define CAIRN_SYNC_PATHS_MAX ((size_t)256 << 20)
/* Seconds a follow long-poll asks the head to wait. */
#define CAIRN_SYNC_WAIT 25
/* Hash parts of a snapshot kept to remove what it no longer lists (20
 * bytes each: 160 MiB at most); a bigger snapshot removes nothing. */
#define CAIRN_SYNC_PRUNE_MAX ((size_t)8 << 20)

struct cairn_sync_config {
	const char *from; /* the head's URL (http:// or https://) */
	const char *to;	  /* the replica directory (created when missing) */
	const struct cairn_keyring *kr; /* trusted keys: the feed's and the narinfos' */
	unsigned parallel;		/* downloads at once; 0: the default */
	/* After the snapshot, follow the feed (long-polls) and apply each
	 * verified page, until stop(log_ctx) says true (checked between
	 * polls, at least every CAIRN_SYNC_WAIT seconds). */
	bool follow;
	bool (*stop)(void *ctx);
	/* Rewritten (atomically) after each page: feed, seq, head, lag in
	 * events, time; NULL: none. */
	const char *status_file;
	/* Instead of the feed (a head without one: nginx, guix publish,
	 * nix-serve): the closures of the store paths listed in this file or
	 * at this http(s) URL (a Hydra store-paths.xz: xz when its bytes say
	 * so), one a line, their narinfos asked through the query engine
	 * (survey.h); references followed only from narinfos a trusted key
	 * signed. */
	const char *paths_file;
	/* Each item refused or failed, and other news; NULL: nothing said. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

struct cairn_sync_stats {
	char feed[33];
	uint64_t seq;	    /* the snapshot's sequence number */
	uint64_t items;	    /* in the snapshot */
	uint64_t present;   /* already in DIR, byte for byte */
	uint64_t copied;    /* downloaded, checked and placed */
	uint64_t refused;   /* narinfo not trusted or not usable */
	uint64_t failed;    /* download or check failed */
	uint64_t bytes;	    /* body bytes received */
	uint64_t removed;   /* narinfos removed by the feed */
	uint64_t extras;    /* .ls listings and build logs copied */
	uint64_t pages_refused; /* feed pages that did not verify (not applied) */
};

/*
 * Replicate once.  0 when the snapshot verified and every item was
 * considered (refused and failed items are counted and logged, and the
 * rest goes on); a negative error when the head or the directory cannot
 * be used at all, or the snapshot is refused.
 */
int cairn_sync_run(const struct cairn_sync_config *cfg, struct cairn_sync_stats *st,
		   struct cairn_error *err);

#endif
