/*
 * publish.h - serving a local Nix or Guix store as a binary cache.
 *
 * `cairn publish` is a thin program around this module: it fills a
 * struct cairn_publish_config, creates the server state, registers its
 * routes on an HTTP server (httpd.h) and runs it.  `cairn mirror` reuses
 * the narinfo and nar-cache pieces.
 *
 * URL space (both dialects answer every form, so a client holding an older
 * narinfo keeps working after the nar was baked, or after a restart):
 *
 *   /nix-cache-info              StoreDir, WantMassQuery: 1, Priority
 *   /<hashpart>.narinfo          the narinfo of the valid path with that hash part
 *   /<hashpart>.ls               Nix's JSON listing of the nar (nar.h)
 *   /nar/<narhash>.nar<ext>[?hash=<hashpart>]
 *                                the nar of the item whose NarHash (nix32, 52
 *                                characters) this is, compressed on the fly
 *                                with the method of <ext>
 *   /nar/<filehash>.nar<ext>     a baked (cached) compressed nar: the file
 *                                whose SHA-256 is <filehash>
 *   /nar/<method>/<basename>     Guix: the nar of <basename>, compressed with
 *   /nar/<basename>              <method>, or not compressed.  The Guix
 *                                dialect answers /nar/none/<basename> with 404,
 *                                as guix publish does (it has no such URL);
 *                                the Nix dialect serves it
 *   /log/<drv basename>          a build log from the store's log directory;
 *   /log/<output basename>       the same, found through the output's deriver
 *                                (what `guix build --log-file` asks first)
 *   /file/<name>/sha256/<nix32>  Guix: the content of the flat fixed-output
 *                                item with that name and hash
 *   /signing-key.pub             the dialect's public key(s): Guix, the Guix
 *                                key alone (what `guix archive --authorize`
 *                                reads); Nix, the Nix keys, one a line
 *   /nix-signing-keys            the Nix public keys, one a line (any dialect)
 *   /guix-signing-key.pub        the Guix public key (any dialect)
 *
 * <ext> is ".nar" (none), ".nar.xz", ".nar.zst", ".nar.bz2", ".nar.gz"
 * (gzip; Nix itself writes plain ".nar" for gzip, which is ambiguous, so
 * cairn names it ".gz") or ".nar.lzip".  A nar is served with any method
 * cairn supports, configured or not, so that the URLs of a narinfo handed
 * out before a restart with other --compression methods keep working (as
 * guix publish does for its URLs).  A method that is not configured
 * compresses at a low level (pub_level), so that a client cannot make the
 * server spend its CPU on xz -9.
 *
 * Narinfo dialects (narinfo.h has the field layouts):
 *   Nix   URL: nar/<filehash>.nar<ext> with FileHash and FileSize when the
 *         first method offered (below) is baked in the cache; otherwise
 *         URL: nar/<narhash>.nar<ext>?hash=<hashpart> without them (the
 *         client checks NarHash anyway).  Compression names that method
 *         only: Nix reads one URL.  Sig: lines from the
 *         store database and from every Nix key given; CA as stored.
 *   Guix  as guix publish's narinfo-string (guix/scripts/publish.scm,
 *         Guix 1.4 and later) writes it: the signed part StorePath,
 *         NarHash, NarSize, References, Deriver (when known; no System, CA
 *         or Sig), then "Signature: 1;<host>;<base64>", then one
 *         URL/Compression[/FileSize] group per offered method,
 *         "nar/<method>/<basename>" ("nar/<basename>" for none).  FileSize
 *         is given for every group or for none: Guix's read-narinfo pairs
 *         the FileSize values with the URLs by position, so one missing
 *         size would attach the next to the wrong URL.  All are known once
 *         every compressed method is baked (none's is the NarSize).  The
 *         groups follow the signature so that baking changes no signed
 *         byte.  (Guix 1.0-1.3 put the groups before NarHash, inside the
 *         signed part; their clients read either layout.)
 *
 * Methods offered: the configured ones, except for an item compression
 * cannot help, which is offered uncompressed only (both dialects), as
 * guix publish does for items whose name ends in .gz, .xz, .zip...  cairn
 * knows an item is such when its name has one of those extensions
 * (pub_name_compressed), or once a compression of its whole nar has
 * measured it: a bake (or, without a cache, a nar compressed on the fly)
 * whose output is at least CAIRN_PUBLISH_RAW_PERCENT % of the nar.  Until
 * then its narinfo offers every configured method; after, no other method
 * is baked for it.
 *
 * Temporary narinfos: with a cache, a narinfo whose compressed files are
 * not all baked yet (so it lacks FileSize, or FileHash in the Nix
 * dialect) is sent with max-age at most CAIRN_PUBLISH_TEMP_TTL instead of
 * the configured ttl, as guix publish does, so that clients and proxies
 * pick up the final one soon.  Without a cache a narinfo never changes
 * state and always gets the ttl.
 *
 * Signing happens once per item and state (baked or not): the signed text
 * is remembered (the "memo"), keyed by hash part and checked against the
 * database row at most once per second, so a path that is deleted and
 * rebuilt with other contents gets a new narinfo.
 *
 * The nar cache (--cache DIR), layout:
 *   DIR/nar/<filehash nix32>.nar<ext>     compressed nar, content-addressed
 *   DIR/info/<hashpart>.<method>          "<narhash nix32> <filehash nix32>
 *                                         <filesize>\n": which file holds
 *                                         the nar of that item, compressed so
 *                                         (kept after the file is evicted, so
 *                                         that its URL still resolves)
 *   DIR/info/<hashpart>.none              "<narhash nix32> <method>
 *                                         <filesize> <narsize>\n": the item
 *                                         does not compress; a compression
 *                                         with <method> made <filesize>
 *                                         bytes of its <narsize> (a bake
 *                                         that measured it keeps its file,
 *                                         for the URLs of earlier narinfos)
 *   DIR/tmp/                              files being written (renamed into
 *                                         nar/ when complete and verified)
 * Background workers ("bakers") fill it: a narinfo or nar request for an
 * item that is not baked queues it (once).  A baker streams the nar from the
 * store, checks its size and SHA-256 against the database, compresses it,
 * hashes the output, and renames it into place.  The cache is bounded by
 * max_size: the least recently served files go first.
 */
#ifndef CAIRN_PUBLISH_H
#define CAIRN_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/keys.h"
#include "cairn/storedb.h"

#define CAIRN_PUBLISH_MAX_KEYS 16
/* Narinfos remembered (signed text); beyond this the memo starts over. */
#define CAIRN_PUBLISH_MEMO_MAX 200000
/* Items waiting to be baked; beyond this new requests are not queued. */
#define CAIRN_PUBLISH_BAKE_QUEUE_MAX 10000
/* Nar streams running at once; beyond this a nar request gets 503. */
#define CAIRN_PUBLISH_STREAMS_MAX 4096
/* The narinfo max-age while its compressed files are being baked (guix
 * publish's figure for its temporary narinfos). */
#define CAIRN_PUBLISH_TEMP_TTL 300
/* A compressed nar at least this share of its nar (percent) means that
 * compression cannot help the item: it is offered uncompressed only. */
#define CAIRN_PUBLISH_RAW_PERCENT 95
/* Longest build log served (compressed or not). */
#define CAIRN_PUBLISH_LOG_MAX ((uint64_t)1 << 32)
/*
 * Compression speed.  Every compression (a nar compressed on the fly, a
 * bake) counts the nar bytes it takes in and the CPU time its thread
 * spends in the compressor, per method.  A method whose rate, over at
 * least CAIRN_PUBLISH_RATE_SAMPLE_MIN bytes, is below the configured
 * slow_compression_rate is "slow": a client fetching an item that is not
 * baked waits at that pace (on the fly, or following the bake), so the
 * operator is told once per method, through the log callback.  The
 * default, CAIRN_PUBLISH_SLOW_RATE, is about what a 200 Mbit/s link
 * carries: zstd and gzip stay above it, xz, lzip and bzip2 do not
 * (docs/cairn-publish.md has the figures).
 */
#define CAIRN_PUBLISH_SLOW_RATE ((uint64_t)20 << 20)	  /* bytes of nar per CPU second */
#define CAIRN_PUBLISH_RATE_SAMPLE_MIN ((uint64_t)4 << 20) /* bytes before a judgement */

enum cairn_publish_dialect {
	CAIRN_PUBLISH_NIX = 1,
	CAIRN_PUBLISH_GUIX,
};

/*
 * How a nar made from the store is checked against its NarHash (its size is
 * always checked, so a path deleted mid-stream ends in an error).  Each
 * item is checked once per NarHash while the server runs; a bake checks it
 * too.  An item whose bytes do not match is withdrawn: its narinfo and nar
 * are 404 (baked files excepted: they were checked when written), and it is
 * checked again on a request a minute later, so a repaired store is served
 * again.
 */
enum cairn_publish_verify {
	/* the first stream is not slowed: a thread at idle priority hashes
	 * the item after it (the client checks NarHash anyway) */
	CAIRN_PUBLISH_VERIFY_BACKGROUND = 0,
	/* the first stream hashes as it goes and holds its last byte back
	 * until the hash matches: a wrong nar never ends cleanly */
	CAIRN_PUBLISH_VERIFY_STRICT,
	/* size only */
	CAIRN_PUBLISH_VERIFY_OFF,
};

/* Items waiting for a background check; beyond this new ones are dropped
 * (and checked when asked for again). */
#define CAIRN_PUBLISH_VERIFY_QUEUE_MAX 1024

struct cairn_publish_config {
	/* The store as clients see it ("/nix/store"): the paths in the
	 * database, StoreDir in nix-cache-info. */
	const char *store_dir;
	/* Where its files are, when not at store_dir (a chroot store:
	 * "ROOT/nix/store"); NULL means store_dir. */
	const char *real_store_dir;
	const char *db_path;
	/* Build logs ("/nix/var/log/nix/drvs"); NULL: none served. */
	const char *log_dir;
	enum cairn_publish_dialect dialect;
	/* In order of preference; at least one. */
	struct cairn_codec_spec compressions[CAIRN_CODEC_LIST_MAX];
	size_t n_compressions;
	/* Signing keys, borrowed for the life of the server. */
	const struct cairn_seckey *keys[CAIRN_PUBLISH_MAX_KEYS];
	size_t n_keys;
	/* The host named in Guix signatures; NULL: gethostname(). */
	const char *host;
	/* Nar cache; NULL: no cache, nars are always compressed on the fly. */
	const char *cache_dir;
	uint64_t cache_max_size; /* 0: unbounded */
	unsigned bake_workers;	 /* 0: 1 */
	unsigned ttl;		 /* narinfo Cache-Control max-age, seconds */
	unsigned negative_ttl;	 /* 404 max-age, seconds (0: no-store) */
	int priority;		 /* nix-cache-info Priority */
	enum cairn_publish_verify verify;
	/* Below this rate (nar bytes per CPU second) a compression method is
	 * slow (above); 0: never said.  Default CAIRN_PUBLISH_SLOW_RATE. */
	uint64_t slow_compression_rate;
	/* Serve a trustless IPFS gateway (/ipfs/{cid}) and name each item's
	 * root CID in its narinfo ("IPFS:"; docs/FORMATS.md); off: narinfos
	 * stay byte for byte what they were. */
	bool ipfs;
	/* Its chunker: "fastcdc" (NULL: CAIRN_IPFS_CHUNKER_SERVED) or "size-N"
	 * (the CIDs `ipfs add` gives). */
	const char *ipfs_chunker;
	/* What the operator should hear about (an item withdrawn because its
	 * bytes do not match its NarHash, a slow compression method, an empty
	 * store); NULL: nothing said.  Called from any thread. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

/* Defaults: Nix store at /nix/store, zstd:3, ttl 3600, negative 60,
 * priority 30, no keys, no cache, slow compression below
 * CAIRN_PUBLISH_SLOW_RATE. */
void cairn_publish_config_init(struct cairn_publish_config *cfg, enum cairn_storedb_kind kind);

struct cairn_publish;

/*
 * Open the store database (read-only) and the cache directory (created if
 * missing), start the bakers.  cfg's strings are copied; its keys are
 * borrowed.
 */
int cairn_publish_new(struct cairn_publish **out, const struct cairn_publish_config *cfg,
		      struct cairn_error *err);
/* Stop the bakers, wait for running nar streams to end, free everything. */
void cairn_publish_free(struct cairn_publish *p);

/*
 * The narinfo text of the valid path whose hash part is hashpart (32
 * characters, not checked beyond that), signed, appended to out.
 * CAIRN_ENOENT when no such path is valid; CAIRN_EFORMAT for a malformed
 * hash part.  Thread-safe.  Queues the item for baking.  *max_age (may be
 * NULL) gets the Cache-Control max-age it deserves: the configured ttl, or
 * at most CAIRN_PUBLISH_TEMP_TTL for a temporary narinfo (above).
 */
int cairn_publish_narinfo(struct cairn_publish *p, const char *hashpart, size_t len,
			  struct cairn_buf *out, unsigned *max_age, struct cairn_error *err);

/* The nix-cache-info text. */
int cairn_publish_cache_info(struct cairn_publish *p, struct cairn_buf *out);
/*
 * The public keys of a kind, as served: CAIRN_KEY_NIX, the Nix keys as
 * "name:base64" lines; CAIRN_KEY_GUIX, the Guix key's s-expression as Guix
 * writes signing-key.pub; 0, the dialect's (what /signing-key.pub serves).
 * Appends nothing when there is no such key.
 */
int cairn_publish_public_keys(struct cairn_publish *p, int kind, struct cairn_buf *out);

/*
 * Build a narinfo for a database row, unsigned (pure: no I/O).  baked[i]
 * describes the cached file of compressions[i] (NULL or has_file false:
 * not baked).  Nix dialect: only index 0 is used.  Guix dialect: no URL
 * groups; print them after the signed narinfo with
 * cairn_publish_guix_groups.
 */
struct cairn_publish_file {
	bool has_file;
	struct cairn_hash file_hash;
	uint64_t file_size;
};
int cairn_publish_make_narinfo(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			       enum cairn_publish_dialect dialect,
			       const struct cairn_codec_spec *compressions, size_t n_compressions,
			       const struct cairn_publish_file *baked, struct cairn_narinfo **out,
			       struct cairn_error *err);

/* Append the Guix URL/Compression[/FileSize] groups of pi to out: with a
 * FileSize in every group when every size is known, else in none. */
int cairn_publish_guix_groups(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			      const struct cairn_codec_spec *compressions, size_t n_compressions,
			      const struct cairn_publish_file *baked, struct cairn_buf *out);

/* What a /nar/... request names (cairn_publish_parse_nar_url). */
struct cairn_publish_nar_url {
	enum cairn_codec_method method;
	bool by_hash;	    /* /nar/<hash>.nar<ext> (else Guix form) */
	bool method_named;  /* Guix form with a "<method>/" (even "none/") */
	char hash[53];	    /* by_hash: nix32 of a SHA-256 (NarHash or FileHash) */
	char hashpart[33];  /* the ?hash= hint, or the Guix basename's hash; "" */
	char basename[CAIRN_STOREDB_NAME_MAX + 34]; /* Guix form: "<hash>-<name>" */
};
/*
 * Parse the part of a nar URL after "/nar/" (query included, not decoded).
 * 0, or CAIRN_EFORMAT / CAIRN_EUNSUPPORTED (unknown method).
 */
int cairn_publish_parse_nar_url(const char *s, size_t len, struct cairn_publish_nar_url *out,
				struct cairn_error *err);

/* Nix URL suffix after ".nar" for a method as cairn names it (".gz" for gzip). */
const char *cairn_publish_nar_ext(enum cairn_codec_method m);

/* --- HTTP (lib/publish-http.c; only in builds with libh2o) --------------- */
struct cairn_httpd;
/* Register every route of the server (above) on h.  p must outlive h's run. */
int cairn_publish_routes(struct cairn_publish *p, struct cairn_httpd *h, struct cairn_error *err);

/*
 * Serve the binary-cache directory cfg->dir (what `nix copy --to
 * file://DIR` writes) as it is: every regular file beneath it, names
 * checked with cairn_httpd_safe_path, with Content-Type and Cache-Control
 * by kind (narinfo: ttl; nar/: immutable; 404: negative_ttl), the batch
 * route over its narinfo files; /metrics and /health too.  With ipfs, the
 * trustless IPFS gateway over its nar files and the IPFS field in its
 * narinfos (lib/publish-static.c says when).  *out (freed with
 * cairn_publish_static_free after the server stopped running, before it
 * is freed) holds the directory.
 */
struct cairn_publish_static_config {
	const char *dir;
	unsigned ttl, negative_ttl; /* seconds */
	bool ipfs;
	const char *ipfs_chunker; /* NULL: fastcdc */
	const char *index_dir;	  /* the items' chunk indexes kept in DIR/ipfs; NULL: none */
	void (*log)(void *ctx, const char *msg); /* what the operator should hear */
	void *log_ctx;
};
struct cairn_publish_static;
int cairn_publish_static_routes(struct cairn_httpd *h,
				const struct cairn_publish_static_config *cfg,
				struct cairn_publish_static **out, struct cairn_error *err);
void cairn_publish_static_free(struct cairn_publish_static *s);

#endif
