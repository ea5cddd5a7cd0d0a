/*
 * ipfs-gateway.h - the trustless IPFS gateway that publish and mirror both
 * serve (lib/ipfs-index.c: the chunk index; lib/ipfs-gateway.c: the
 * routes).  Not public.
 *
 * Blocks are never stored: an item's chunks are cut again from the NAR
 * bytes the server already has (a store item serialised on the fly, a
 * cached file), which the server hands over through ipfs_gw_source.  The
 * index remembers, per item, the offset and CID of every chunk and the
 * DAG's interior dag-pb nodes (small: one per 174 chunks), so a request
 * for a CID finds its item and the bytes to cut.
 */
#ifndef CAIRN_IPFS_GATEWAY_H
#define CAIRN_IPFS_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/codec.h"
#include "cairn/httpd.h"
#include "cairn/ipfs.h"
#include "cairn/nar.h"

struct map;

/* An item is named by its store hash part (32 characters). */
#define IPFS_GW_KEY_MAX 40

/*
 * Where a source puts an item's NAR bytes, from the start, in order: into
 * bytes, or, when file is not NULL and the bytes are a whole regular file,
 * as that file (fd, bytes [0, size): the NAR's next size bytes), so that
 * the gateway reads only the chunks it needs and skips the rest unread.
 * Either may stop the source early by returning CAIRN_ECANCELED, which the
 * source returns.
 *
 * A sink with skip needs only the NAR bytes [want_lo, want_hi), and stops
 * the source (CAIRN_ECANCELED) right after the byte want_hi - 1: a source
 * that can start later than 0 (a decompression it kept from an earlier
 * request, lib/edge-ipfs.c) calls skip(ctx, off) once, first, with
 * off <= want_lo, and then gives bytes from off.  Without skip: every
 * byte, from 0.
 */
struct ipfs_gw_sink {
	cairn_nar_write_fn bytes;
	cairn_nar_file_fn file; /* NULL: bytes only */
	int (*skip)(void *ctx, uint64_t off, struct cairn_error *err);
	uint64_t want_lo, want_hi;
	void *ctx;
	/* The pass that indexes the item (every byte, in order, to bytes): a
	 * source that knows the item's NarHash gives them through
	 * ipfs_gw_source_checked, so that no root is named for other bytes. */
	bool indexing;
};
/* Called from the gateway's threads, several at once. */
typedef int (*ipfs_gw_source_fn)(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
				 struct cairn_error *err);
/*
 * Give sink the bytes produce(sink', pctx, err) gives, checked against
 * nar_hash (sha256; any other algorithm or NULL: unchecked): when the
 * bytes end, a mismatch is CAIRN_EHASH, naming key.  For a source's
 * indexing pass (sink->indexing); other sinks go to produce as they are.
 */
struct cairn_hash;
int ipfs_gw_source_checked(const struct ipfs_gw_sink *sink, const char *key,
			   const struct cairn_hash *nar_hash,
			   int (*produce)(const struct ipfs_gw_sink *sink, void *pctx,
					  struct cairn_error *err),
			   void *pctx, struct cairn_error *err);
/* Files at least this big go to a sink's file (smaller ones are cheaper read). */
#define IPFS_GW_FILE_MIN ((uint64_t)1 << 20)

/*
 * What a gateway counts (relaxed atomics, from any thread), shown on the
 * server's /metrics by ipfs_gw_metrics.
 */
struct ipfs_gw_stats {
	atomic_uint_fast64_t raw, car, probe; /* requests answered 200, by kind */
	atomic_uint_fast64_t blocks, block_bytes; /* blocks sent, and their bytes */
	atomic_uint_fast64_t not_found;		  /* CIDs no item has */
	atomic_uint_fast64_t index_builds;	  /* items indexed from their NAR */
	atomic_uint_fast64_t cut_failures;	  /* chunks that no longer hash to their CID */
	atomic_uint_fast64_t nar_bytes;		  /* NAR bytes read to cut served chunks */
};
struct metrics;
struct ipfs_gw;
/* Register the counters as cairn_<role>_ipfs_* (role: "publish", "mirror"). */
int ipfs_gw_metrics(struct ipfs_gw *g, struct metrics *reg, const char *role,
		    struct cairn_error *err);

/* Items remembered at most; the oldest indexed is forgotten first. */
#define IPFS_GW_ITEMS_DEFAULT 65536

struct ipfs_gw;
int ipfs_gw_new(struct ipfs_gw **out, const struct cairn_chunker_spec *spec, size_t max_items,
		ipfs_gw_source_fn source, void *ctx, struct cairn_error *err);
/*
 * Call off what the gateway does: indexing passes in progress end
 * CAIRN_ECANCELED at their next bytes, and none starts.  A server calls it
 * before it waits for its threads that may be in one (a narinfo's), then
 * ipfs_gw_free.
 */
void ipfs_gw_stop(struct ipfs_gw *g);
/* Stops it, and waits for the responses still being produced. */
void ipfs_gw_free(struct ipfs_gw *g);
/* Keep each item's index in DIR (created if missing; its parent must
 * exist) too, so a restarted server reads it instead of the NAR. */
int ipfs_gw_set_dir(struct ipfs_gw *g, const char *dir, struct cairn_error *err);
/* What the operator should hear (a chunk that no longer hashes to its
 * CID: the item changed on disk), one line; called from any thread. */
void ipfs_gw_set_log(struct ipfs_gw *g, void (*log)(void *ctx, const char *msg), void *ctx);
/*
 * The root someone else named for item key (a mirror: its upstream's
 * narinfo's IPFS field), so the gateway serves that DAG: 0 and *root, or
 * CAIRN_ENOENT when none is named.  Called from the gateway's threads.
 */
typedef int (*ipfs_gw_expect_fn)(void *ctx, const char *key, struct cairn_cid *root);
/*
 * With expect, an item whose root under the gateway's chunker is not the
 * one expected is cut again with alt; the DAG whose root is the expected
 * one is served, or, when neither is, the gateway's own (and the log says
 * so).  Call before the first item is indexed.
 */
void ipfs_gw_set_expect(struct ipfs_gw *g, const struct cairn_chunker_spec *alt,
			ipfs_gw_expect_fn expect, void *ctx);

/*
 * The root CID of item key's NAR (nar_size bytes): from the index, or cut
 * once from the source (a pass over the whole NAR) and remembered.  Blocks
 * until done: call it off the event loops.
 */
int ipfs_gw_index(struct ipfs_gw *g, const char *key, uint64_t nar_size, struct cairn_cid *root,
		  struct cairn_error *err);
/*
 * Index item key in the background (one thread, started on first use), as
 * a server does when it comes to hold an item's bytes.  Queued at most
 * IPFS_GW_QUEUE_MAX; beyond, dropped (the item is indexed when asked).
 */
#define IPFS_GW_QUEUE_MAX 1024
void ipfs_gw_enqueue(struct ipfs_gw *g, const char *key, uint64_t nar_size);
/* The root of an indexed item without indexing it: CAIRN_ENOENT if not. */
int ipfs_gw_root(struct ipfs_gw *g, const char *key, struct cairn_cid *root);

enum ipfs_gw_format { GW_NONE, GW_RAW, GW_CAR };
enum ipfs_gw_scope { GW_SCOPE_ALL, GW_SCOPE_ENTITY, GW_SCOPE_BLOCK };

/* A request, as parsed. */
struct ipfs_gw_req {
	struct cairn_cid cid;
	enum ipfs_gw_format format;
	enum ipfs_gw_scope scope;
	bool ranged;
	int64_t from, to;	     /* entity-bytes; to == INT64_MAX: "*" */
	enum cairn_codec_method enc; /* for a CAR: NONE, ZSTD or GZIP */
};
/*
 * Parse path (after "/ipfs/"), query and the Accept and Accept-Encoding
 * headers (each NULL when absent), all untrusted.  Returns 0, or the HTTP
 * status to answer with, *msg saying why.
 */
int ipfs_gw_parse_req(const char *path, size_t plen, const char *q, size_t qlen, const char *accept,
		      size_t alen, const char *aenc, size_t aelen, struct ipfs_gw_req *r,
		      const char **msg);
/* entity-bytes of r against the file bytes [flo, fhi): [*blo, *bhi), or
 * false when that is empty. */
bool ipfs_gw_range(const struct ipfs_gw_req *r, uint64_t flo, uint64_t fhi, uint64_t *blo,
		   uint64_t *bhi);

/* The handler of GET/HEAD /ipfs/... (route it as a prefix "/ipfs/"). */
int ipfs_gw_handle(struct cairn_httpd_req *req, void *data);

/* ---- between ipfs-index.c and ipfs-gateway.c ---------------------------- */

/* One interior node: its bytes, and the part of the DAG under it. */
struct ipfs_gw_node {
	struct cairn_cid cid;
	uint8_t *data;
	size_t len;
	size_t seq_lo, seq_hi;	   /* its DFS entries: [seq_lo, seq_hi] */
	uint64_t byte_lo, byte_hi; /* the file bytes under it: [lo, hi) */
};

/* A DFS entry: a chunk (>= 0) or a node (-1 - its index). */
typedef int64_t ipfs_gw_seq;

struct ipfs_gw_item;
/* What the CID index points at (an item's array, one per DFS entry). */
struct ipfs_gw_ent {
	struct ipfs_gw_item *item;
	ipfs_gw_seq what;
};

struct ipfs_gw_item {
	char key[IPFS_GW_KEY_MAX + 1];
	struct cairn_chunker_spec spec; /* what its chunks were cut with */
	struct cairn_cid root;
	uint64_t nar_size;
	size_t n_leaves;
	uint64_t *leaf_off; /* n_leaves + 1: chunk i is [leaf_off[i], leaf_off[i+1]) */
	uint8_t (*leaf_digest)[32];
	size_t *leaf_seq; /* its DFS position */
	struct ipfs_gw_node *nodes;
	size_t n_nodes;
	ipfs_gw_seq *seq; /* parents before children, chunks in file order */
	size_t n_seq;
	struct ipfs_gw_ent *ents; /* n_seq */
	unsigned refs;		  /* under the gateway's lock */
	bool dropped;		  /* forgotten: freed at its last unref */
};

/* What a CID names in an item. */
struct ipfs_gw_hit {
	struct ipfs_gw_item *item; /* a reference: ipfs_gw_unref */
	ipfs_gw_seq what;
};

struct ipfs_gw {
	struct cairn_chunker_spec spec;
	struct cairn_chunker_spec alt; /* with expect: the second guess */
	ipfs_gw_expect_fn expect;      /* NULL: every item under spec */
	void *expect_ctx;
	size_t max_items;
	ipfs_gw_source_fn source;
	void *ctx;
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
	char *dir; /* NULL: in memory only */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct map *by_key;	     /* key -> item */
	struct map *by_cid;	     /* CID string -> struct ipfs_gw_ent */
	struct map *indexing;	     /* keys being cut now: others wait (cond) */
	struct ipfs_gw_item **order; /* ring of items in indexing order */
	size_t head, n;
	unsigned running; /* responses being produced */
	struct ipfs_gw_stats st;
	/* the background indexer */
	struct ipfs_gw_job {
		char key[IPFS_GW_KEY_MAX + 1];
		uint64_t nar_size;
	} * queue;
	size_t q_head, q_len;
	bool indexer_running;
	atomic_bool stopping; /* also read by indexing passes, without the lock */
	pthread_t indexer;
};

/* CAIRN_ENOENT when no indexed item has cid. */
int ipfs_gw_lookup(struct ipfs_gw *g, const struct cairn_cid *cid, struct ipfs_gw_hit *out);
void ipfs_gw_unref(struct ipfs_gw *g, struct ipfs_gw_item *it);
/* ipfs-index-file.c: an item's index on disk (DIR/<key>.idx).  load fills
 * it (chunks, nodes, root) for build_order, or fails (CAIRN_ENOENT: no
 * file; CAIRN_EFORMAT: not one for this NAR and chunker); save (under
 * it->spec) is best effort. */
int ipfs_index_file_load(const char *dir, const struct cairn_chunker_spec *spec, const char *key,
			 uint64_t nar_size, struct ipfs_gw_item *it);
int ipfs_index_file_save(const char *dir, const struct ipfs_gw_item *it);
void ipfs_index_file_drop(const char *dir, const char *key);
/* The CID of DFS entry e. */
void ipfs_gw_seq_cid(const struct ipfs_gw_item *it, ipfs_gw_seq e, struct cairn_cid *cid);

/*
 * An item made from the DAG builder's blocks (ipfs-index.c): the index's
 * own way in, and the one DFS orderer of a file's DAG, which the CAR
 * writer of `cairn ipfs add --car` (car-dfs.c) uses too.  Give
 * ipfs_gw_build_block to cairn_ipfs_add_new with a build whose it is a
 * zeroed item; set it->root to the root the builder made; then
 * ipfs_gw_build_order fills it->seq (parents before children, chunks in
 * file order), it->leaf_seq, the nodes' ranges and it->ents, checking that
 * the DAG covers its chunks in order.  ipfs_gw_build_release frees what
 * the build kept beside the item; ipfs_gw_item_free the item.
 */
struct ipfs_gw_build {
	struct ipfs_gw *g; /* NULL: not called off */
	struct ipfs_gw_item *it;
	size_t cap_leaves, cap_nodes;
	uint64_t off;
	struct cairn_ipfs_add *add;
	bool *claimed; /* nodes already placed in the DFS */
};
int ipfs_gw_build_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user);
int ipfs_gw_build_order(struct ipfs_gw_build *b, struct cairn_error *err);
void ipfs_gw_build_release(struct ipfs_gw_build *b);
void ipfs_gw_item_free(struct ipfs_gw_item *it);

#endif
