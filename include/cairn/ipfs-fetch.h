/*
 * ipfs-fetch.h - a NAR's bytes from IPFS trustless gateways, block by block
 * (`cairn fetch --ipfs-gateway`).
 *
 * A narinfo's `IPFS:` field (unsigned for Nix: a hint of where to look)
 * names the root CID of the item's uncompressed NAR as a UnixFS file.  The
 * blocks are read from a block cache (a directory of files named by CID,
 * every one checked against its CID when written and when read) or asked
 * of the gateways: the dag-pb nodes one by one (?format=raw), then each run
 * of missing leaves as one CAR (?format=car&dag-scope=entity&entity-bytes=
 * FROM:TO, the trustless gateway spec) or, for a run of one, a raw block.
 * A gateway whose block does not match its CID, whose CAR is cut short,
 * carries blocks outside the DAG or lacks one asked for, or that fails, is
 * dropped for the item and the next one is asked.  The NAR then streams
 * out of the cache, in order, into the download engine's pipeline
 * (cairn_dl_check_stream), which checks the signed NarHash and NarSize:
 * the CID says where to look, the signature what to accept.
 *
 * Delta downloads: seeding chunks what is on disk (the previous version of
 * an item, or any path) with the same chunker and keeps its leaves, so
 * only the blocks that changed are asked for.
 */
#ifndef CAIRN_IPFS_FETCH_H
#define CAIRN_IPFS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/http.h"
#include "cairn/ipfs.h"

struct cairn_narinfo;

#define CAIRN_IPFS_MAX_GATEWAYS 16
/* Depth of a UnixFS file DAG read: 174^8 leaves are far beyond any NAR. */
#define CAIRN_IPFS_FETCH_DEPTH_MAX 12
/* Items asked of gateways at once (cairn_ipfs_fetch_config.jobs). */
#define CAIRN_IPFS_JOBS_DEFAULT 4
#define CAIRN_IPFS_JOBS_MAX 64
/* Default bound of the block cache's bytes. */
#define CAIRN_IPFS_CACHE_MAX_DEFAULT ((uint64_t)4 << 30)

struct cairn_ipfs_fetch_config {
	const char *gateways[CAIRN_IPFS_MAX_GATEWAYS]; /* base URLs, borrowed */
	size_t n_gateways;
	const char *cache_dir;	 /* the block cache; created when missing */
	uint64_t cache_max;	 /* bytes kept; 0: CAIRN_IPFS_CACHE_MAX_DEFAULT */
	struct cairn_chunker_spec chunker; /* for seeding (--seed; and items, unless auto) */
	/* Take the items' chunker from their DAG: leaves of one size N but
	 * the last are size-N (what publish writes), others fastcdc. */
	bool chunker_auto;
	/* Once an item's DAG is read and before any leaf is asked for: put
	 * what is on disk in the cache with spec (the item's chunker), or
	 * NULL.  Its failure is no failure of the fetch. */
	void (*seed)(void *ctx, const struct cairn_chunker_spec *spec);
	void *seed_ctx;
	/* --seed paths (borrowed): cut with chunker before the run (callers:
	 * cairn_ipfs_seed), and under chunker_auto by fetch again with an
	 * item's chunker when the DAG says another one, once per chunker. */
	const char *const *seeds;
	size_t n_seeds;
	/* Polled while a gateway is waited for (NULL: never): true ends the
	 * fetch with CAIRN_ECANCELED within ~100 ms, whatever the gateway
	 * does, so that a fetch on a thread of its own can be called off. */
	bool (*stop)(void *ctx);
	void *stop_ctx;
	struct cairn_http_config http;
	/* Items asked of the gateways at once by fetch and mirror, each on a
	 * thread of its own (lib/ipfs-source.h); 0: CAIRN_IPFS_JOBS_DEFAULT. */
	unsigned jobs;
};

/* What a fetch (or a run of them) cost: for reports, tests and bench. */
struct cairn_ipfs_fetch_stats {
	uint64_t requests;     /* to gateways */
	uint64_t bytes;	       /* body bytes received from gateways, as sent
				  (compressed CARs before decoding) */
	uint64_t blocks_cached; /* leaves found in the cache */
	uint64_t blocks_fetched; /* blocks received and kept */
	uint64_t gateways_failed; /* gateways dropped for an item */
	uint64_t seeded;	  /* leaves written by seeding */
};

/* The root CID a narinfo names in its IPFS field; false when none or bad. */
bool cairn_ipfs_narinfo_cid(const struct cairn_narinfo *ni, struct cairn_cid *out);

/*
 * The file under root, at most max_size bytes, to write(wctx, ...) in
 * order; gateway (may be NULL) gets the base URL that sent the last
 * missing block ("cache" when none was asked).  The bytes written are the
 * ones the CIDs name; only the caller's check (NarHash) makes them trusted.
 */
typedef int (*cairn_ipfs_write_fn)(void *wctx, const void *data, size_t len);
int cairn_ipfs_fetch_file(const struct cairn_ipfs_fetch_config *cfg,
			  const struct cairn_cid *root, uint64_t max_size,
			  cairn_ipfs_write_fn write, void *wctx, const char **gateway,
			  struct cairn_ipfs_fetch_stats *st, struct cairn_error *err);

/*
 * Chunk the NAR of path (a store item's tree, or a file ending in ".nar"
 * taken as a NAR already) with cfg's chunker and keep its leaves in the
 * cache.  Returns the leaves written in *n (may be NULL).
 */
int cairn_ipfs_seed(const struct cairn_ipfs_fetch_config *cfg, const char *path, uint64_t *n,
		    struct cairn_error *err);

/*
 * The same, with store hashes rewritten first: every occurrence of
 * from[i] (CAIRN_IPFS_HASH_LEN bytes) in the NAR becomes to[i], as Nix
 * rewrites references.  The previous version of an item built against an
 * older dependency then has the bytes the new version has wherever only
 * that reference changed, so those blocks are not asked for either.
 */
#define CAIRN_IPFS_HASH_LEN 32
#define CAIRN_IPFS_REWRITE_MAX 256
int cairn_ipfs_seed_rewritten(const struct cairn_ipfs_fetch_config *cfg, const char *path,
			      const char (*from)[CAIRN_IPFS_HASH_LEN],
			      const char (*to)[CAIRN_IPFS_HASH_LEN], size_t n_rewrites,
			      uint64_t *n, struct cairn_error *err);

#endif
