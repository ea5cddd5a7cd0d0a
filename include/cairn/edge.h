/*
 * edge.h - a caching edge (CDN node) in front of substitute servers: the
 * library under `cairn mirror`.
 *
 * It knows what narinfos and nars are, unlike a generic proxy:
 *   - narinfos are kept for a positive TTL, 404s for a short negative TTL
 *     (the upstream's Cache-Control max-age wins when shorter), and served
 *     stale when every upstream is down;
 *   - a nar is fetched once however many clients ask for it at the same time
 *     (coalescing), written to a temporary file and hashed while it streams
 *     to every waiting client, and renamed into the cache only when it
 *     matches what the narinfos held for the items naming its URL say
 *     (FileHash, or NarHash after decompressing; with a keyring always the
 *     signed NarHash); on a mismatch the file is dropped and the clients
 *     see a broken response, because each response's last byte is held
 *     back until the object is verified;
 *   - with a keyring, a narinfo without a valid trusted signature is neither
 *     cached nor served; with require_sigs K > 1, neither is one that
 *     fewer than K trusted keys signed across the upstreams, or one whose
 *     upstreams' signed claims disagree (trust.h decides);
 *   - when the cache cannot be written, downloads go on uncached (still
 *     verified), their clients fed from memory;
 *   - each upstream's last good nix-cache-info is kept in the index, so a
 *     mirror restarted while its upstreams are down still describes itself
 *     and serves what it holds.
 *
 * On-disk layout under the cache directory:
 *   index.sqlite        tables nar(path, file, size, atime),
 *                       narinfo(hash, text, fetched) and
 *                       cache_info(upstream, text); WAL journal
 *   data/<sha256 hex>   a verified nar, named by the SHA-256 of its bytes
 *   tmp/<random>        a download in progress (removed at start-up)
 * A nar is renamed into data/ before its index row is written, so after a
 * crash at any moment a row always names a complete verified file; start-up
 * drops rows whose file is missing or has the wrong size, files without a
 * row, and everything in tmp/.  Least-recently-used nars are evicted when
 * the total exceeds max_size (at start-up too, when it shrank); recency is
 * kept in memory and written back to the index every few seconds.  Files,
 * bound and eviction are the nar cache's (lib/narcache.h), shared with
 * publish.
 *
 * Threads: request handlers run on the httpd loops; one upstream thread
 * owns the HTTP client (lib/http.c) and runs every transfer and the health
 * checks; each client of a nar that is still downloading gets a small
 * producer thread that follows the growing temporary file and feeds the
 * httpd stream.  A handler that misses waits (bounded by wait_ms) on its
 * loop thread for the upstream's answer to a narinfo, or only for the
 * response headers of a nar; see docs/cairn-mirror.md.
 */
#ifndef CAIRN_EDGE_H
#define CAIRN_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

struct cairn_httpd;
struct cairn_keyring;

#define CAIRN_EDGE_MAX_UPSTREAMS 16
#define CAIRN_EDGE_KEY_MAX 1024		       /* a request path we fetch */
#define CAIRN_EDGE_NAR_MAX (UINT64_C(1) << 40) /* largest nar passed through */

/* What kind of line cairn_edge_config.log is given. */
enum cairn_edge_log_level {
	CAIRN_EDGE_LOG_INFO, /* what it does: listening, an upstream back */
	CAIRN_EDGE_LOG_WARN, /* what needs looking at: an upstream down, a narinfo
				refused, the cache's disk failing */
};

#define CAIRN_EDGE_MAX_GATEWAYS 16

struct cairn_edge_config {
	/* base URLs in priority order (first is preferred); borrowed during new */
	const char *upstreams[CAIRN_EDGE_MAX_UPSTREAMS];
	size_t n_upstreams;
	const char *cache_dir;	/* created if missing */
	uint64_t max_size;	/* bytes of nars; 0: unbounded */
	/* narinfos must carry a valid signature by one of these; NULL: no
	 * check.  Borrowed: must outlive the edge. */
	const struct cairn_keyring *trusted;
	/* K: a narinfo is served only when K distinct trusted keys, across
	 * the upstreams, signed the same NarHash, NarSize and References (the
	 * rules of trust.h), and it then carries all their signatures.  0 or
	 * 1: one key, the first upstream in order that has the item wins.
	 * Above 1 every upstream is asked about each item, and needs
	 * `trusted`. */
	unsigned require_sigs;
	int64_t positive_ttl;	/* seconds; default 3600 */
	int64_t negative_ttl;	/* seconds; default 60 */
	unsigned health_interval_ms; /* between probes of an upstream; default 5000 */
	unsigned max_backoff_ms;     /* of a failing upstream; default 60000 */
	unsigned wait_ms;	     /* a handler waits at most this; default 30000 */
	long connect_timeout_ms;     /* default 2000 */
	long stall_timeout_s;	     /* default 30 */
	/* the Priority served in /nix-cache-info instead of the upstream's;
	 * -1 (the default): the upstream's line as it is */
	int priority;
	/* at most one line per this for each kind of refused narinfo; the
	 * others are counted into the next; default 10000 */
	unsigned log_interval_ms;
	/* Serve a trustless IPFS gateway (/ipfs/{cid}) over the nars cached,
	 * each item indexed once committed (docs/cairn-ipfs.md); 0: none. */
	int ipfs;
	/* Its chunker, as publish's (NULL: CAIRN_IPFS_CHUNKER_SERVED); an
	 * item whose upstream narinfo names a root this one does not give is
	 * cut again with the other of fastcdc and size-262144. */
	const char *ipfs_chunker;
	/* IPFS trustless gateways (base URLs, borrowed during new; n 0: none)
	 * that the nar of an uncompressed-nar URL is filled from first when
	 * its served narinfo names the NAR's root CID (`IPFS:`): each block
	 * checked against its CID, the whole against the signed NarHash;
	 * the upstreams' file on any failure.  At most ipfs_jobs items at
	 * once (0: 4); blocks kept in <cache_dir>/ipfs-blocks. */
	const char *ipfs_gateways[CAIRN_EDGE_MAX_GATEWAYS];
	size_t n_ipfs_gateways;
	unsigned ipfs_jobs;
	/* Bytes of blocks kept in <cache_dir>/ipfs-blocks (0: 256 MiB): a
	 * transit store (a nar filled from gateways is then in the nar cache,
	 * which --ipfs serves from), so small. */
	uint64_t ipfs_block_cache_max;
	/* What the operator should hear about: listening, upstreams going
	 * down and coming back, narinfos refused, the cache's disk failing
	 * and working again.  msg is one line, no newline, printable ASCII
	 * (what came from the network is escaped).  NULL: nothing said.
	 * Called from any thread. */
	void (*log)(void *ctx, enum cairn_edge_log_level level, const char *msg);
	void *log_ctx;
};

#define CAIRN_EDGE_PRIORITY_MAX 1000000

void cairn_edge_config_init(struct cairn_edge_config *cfg);

struct cairn_edge;

/* Open (or create) the cache, recover it, load the index. */
int cairn_edge_new(struct cairn_edge **out, const struct cairn_edge_config *cfg,
		   struct cairn_error *err);
/*
 * Register the routes (/, /health, /nix-cache-info, /metrics, /nar/...,
 * /log/..., /<hash>.narinfo, /<hash>.ls) and the counters on h, which must
 * not be running yet.  h must outlive the edge's use of it.
 */
int cairn_edge_attach(struct cairn_edge *e, struct cairn_httpd *h, struct cairn_error *err);
/* Start the upstream thread (first health checks run at once), and log
 * the line that says where it listens (h started) and what it serves. */
int cairn_edge_start(struct cairn_edge *e, struct cairn_error *err);
/* Stop the upstream thread; in-flight downloads fail.  Call after the
 * httpd has stopped (cairn_httpd_wait returned). */
void cairn_edge_stop(struct cairn_edge *e);
void cairn_edge_free(struct cairn_edge *e);
/*
 * Forget what the edge holds of item hashpart's narinfo (memory and disk,
 * stale copies too), so that the next request asks the upstreams again: a
 * signed feed said the head removed it.  Never a refusal: an upstream that
 * still has it is served as before.  Any thread.
 */
void cairn_edge_forget_narinfo(struct cairn_edge *e, const char *hashpart);

#endif
