/*
 * fetch.h - the download-and-verify engine: substitute store items (and
 * their closures) from several binary caches at once, trusting only
 * signatures and content hashes.
 *
 * `cairn fetch` is a thin front end to this; the mirror and the challenge
 * reuse it.  One engine runs on one thread, on one asynchronous HTTP client
 * (http.h); nothing here prints.
 *
 * A run, per item:
 *
 *   present?  valid in the store's database (cfg.db), or without one,
 *             ROOT<storedir>/<hash>-<name> (or NAR_DIR/<hash>-<name>.nar)
 *             exists: skipped.  The engine commits an item only after all
 *             of its references are in place, so "present" implies "closure
 *             present", as in a Nix store.
 *   query     GET <server>/<hash>.narinfo from every server that is up, all
 *             at once (or the fresh answer from the narinfo cache, nicache.h).
 *   decide    Each narinfo is parsed; one whose StorePath is not the
 *             requested path is refused.  Narinfos are grouped by what they
 *             claim (NarHash, NarSize, the set of References); a group's
 *             signers are the distinct trusted keys whose signature verified
 *             on any narinfo of the group (keys.h), across servers.  A group
 *             is acceptable when it has at least require_sigs signers, or
 *             when it carries a CA field from which the store path recomputes
 *             (storepath.h; the content is then checked against CA as well).
 *             A server whose narinfo is unsigned but claims exactly what an
 *             acceptable group claims is a byte source for that group
 *             (Guix's rule): trust comes from signatures, bytes from anywhere.
 *             With require_sigs > 1, two signed groups that disagree fail the
 *             item, naming both servers; with 1, the group of the best server
 *             (lowest Priority from nix-cache-info, then the order given)
 *             that has an acceptable narinfo wins.
 *   download  From the group's servers in order, one URL of the server's
 *             narinfo (by compression, see cairn_fetch_pick_url: what
 *             unpacks fastest on a fast link, the smallest on a slow one),
 *             streamed
 *             through: FileHash check (compressed bytes) -> decompression
 *             capped at NarSize -> NAR parser (hash, size, today's Nix rules)
 *             -> restore into a temporary sibling of the target (nar.h) or
 *             a temporary file in NAR_DIR.  On a network error, a stall, a
 *             short body or a 5xx the same server is asked again with Range
 *             from the byte where it stopped (when it sent Accept-Ranges;
 *             at most max_resumes times per server); otherwise, and on a
 *             404 or on bytes that do not verify, the partial result is
 *             thrown away and the next server of the group starts from byte
 *             0.  A server that cannot be connected to is marked down for
 *             the rest of the run (and in the narinfo cache).
 *   verify    NarHash and NarSize from the parser, FileHash and FileSize
 *             when given, the CA content check when acceptance came from CA.
 *             Nothing counts as verified before the whole NAR is hashed.
 *   commit    rename into place, once every reference is in place;
 *             a failed item leaves nothing behind.  With a database, the
 *             tree was synced before the rename and the store directory is
 *             synced after it; the items committed together are then
 *             registered in one transaction (storedb-write.h), so a
 *             registered path always has its files.  Files left without a
 *             registration (a crash, a refused write) are checked against
 *             the accepted NarHash by the next run and registered in place.
 *
 * With `closure`, the References of every decided item are added (those not
 * present), so a whole closure comes down, dependencies committed first.
 * Without, an item is refused (naming them) unless each reference is in the
 * target (valid in its database, or its files there without one) or is an
 * item of the same run, committed first.  NARs in NAR_DIR stand alone.
 */
#ifndef CAIRN_FETCH_H
#define CAIRN_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"
#include "cairn/http.h"

struct cairn_ipfs_fetch_config;
struct cairn_ipfs_fetch_stats;
struct cairn_keyring;
struct cairn_narinfo;
struct cairn_nicache;
struct cairn_storedb_writer;

#define CAIRN_FETCH_MAX_SERVERS 64
#define CAIRN_FETCH_MAX_ITEMS 1000000 /* items in one run, closures included */
#define CAIRN_FETCH_REASON_MAX 1024   /* a failed item's explanation */
#define CAIRN_FETCH_MAX_JOBS 256
#define CAIRN_FETCH_MAX_THREADS 64

enum cairn_fetch_status {
	CAIRN_FETCH_PENDING = 0, /* not finished (only seen during a run) */
	CAIRN_FETCH_FETCHED,	 /* downloaded, verified, in place */
	CAIRN_FETCH_PRESENT,	 /* was already there */
	CAIRN_FETCH_FAILED,	 /* see reason */
};

/* What the engine says about one item; strings borrowed for the call (or,
 * from cairn_fetch_item, until cairn_fetch_free). */
struct cairn_fetch_report {
	const char *path; /* full store path */
	enum cairn_fetch_status status;
	bool requested;		 /* asked for, not pulled in by --closure */
	int code;		 /* FAILED: a negative enum cairn_err */
	const char *reason;	 /* FAILED: why, naming servers; else "" */
	const char *server;	 /* FETCHED: base URL the NAR came from */
	const char *compression; /* FETCHED: what was downloaded */
	uint64_t nar_size;	 /* FETCHED */
	uint64_t download_bytes; /* FETCHED: bytes received, resumes included */
	unsigned n_signers;	 /* FETCHED: distinct trusted keys */
	bool by_ca;		 /* FETCHED: accepted through its CA field */
	double seconds;		 /* FETCHED: from first byte asked to commit */
	/* FETCHED: the narinfo of the server the NAR came from, as parsed
	 * (its NarHash, NarSize and References are the accepted ones); for a
	 * mirror that serves the item again. */
	const struct cairn_narinfo *narinfo;
	/* FETCHED: what the store records (or would, without a database) */
	struct cairn_hash nar_hash;
	const char *const *references; /* full paths, sorted, self included */
	size_t n_references;
	const char *deriver;		/* full path or NULL (a hint: unsigned) */
	const char *const *signatures;	/* the Nix signatures that verified with */
	size_t n_signatures;		/*   a trusted key, sorted */
	const char *ca;			/* a CA the path recomputes from, or NULL */
	bool in_place; /* FETCHED: the files were there, unregistered; checked, not downloaded */
	bool registered; /* FETCHED: now valid in the store's database */
	/* FETCHED, when the narinfo offered more than one compression: why
	 * this one (each option's estimate; the network rate and where it
	 * came from; whether the unpacking speeds were measured here) */
	const struct cairn_fetch_choice *choices;
	size_t n_choices;
	double choice_net_rate;
	const char *choice_rate_from; /* CAIRN_FETCH_RATE_* */
	bool choice_unpack_measured;
};

/* Progress counters, for a live display. */
struct cairn_fetch_progress {
	size_t items_total, items_done, items_failed, items_present;
	size_t downloads_active, queries_active;
	uint64_t bytes_received; /* compressed, all downloads */
	uint64_t bytes_expected; /* sum of FileSize (else NarSize) of decided items */
};

struct cairn_fetch_config {
	const char *store_dir; /* "/nix/store" when NULL */
	/*
	 * Where items go: ROOT<store_dir>/<hash>-<name> (root may be "" for
	 * the real store directory), or, when nar_dir is set, the verified
	 * uncompressed NAR as nar_dir/<hash>-<name>.nar.  Exactly one of the
	 * two.  Borrowed for the engine's life.
	 */
	const char *root;
	const char *nar_dir;
	const struct cairn_keyring *keys; /* borrowed; required */
	unsigned require_sigs;		  /* default 1 */
	unsigned jobs;			  /* parallel downloads; default 8 */
	unsigned max_resumes;		  /* Range resumes per server and item; default 3 */
	/* A file at least this big (FileSize) that several of the accepted
	 * servers serve the same way is asked of all of them at once, in
	 * ranges, slow ones' shares moved to fast ones; 0: one server at a
	 * time.  Default CAIRN_FETCH_MULTI_MIN. */
	uint64_t multi_min;
	/* Range requests in flight per server in such a download (1 when 0,
	 * at most 4; see docs/cairn-fetch.md for what was measured). */
	unsigned multi_per_source;
	bool closure;			  /* follow References */
	/*
	 * Worker threads that decompress, parse, hash and unpack (the network
	 * stays on the caller's thread); 0 (the default) does it all inline.
	 * Several downloads unpack in parallel, one worker per download at a
	 * time; at most 8 MiB per download waits for its worker before the
	 * network thread waits too.
	 */
	unsigned threads;
	struct cairn_http_config http; /* cairn_fetch_config_init fills defaults */
	struct cairn_nicache *cache;   /* borrowed; NULL for none */
	/*
	 * The store's database (storedb-write.h), borrowed; with root only.
	 * When set: an item is present when it is valid there; every placed
	 * item is unpacked with the store's metadata (read-only, mtime 1),
	 * synced, then registered with its NarHash, NarSize, References,
	 * Deriver, accepted signatures and a CA it recomputes from, in one
	 * transaction per batch (the items that settle together); files of an
	 * item that is not valid are checked against the accepted NarHash and
	 * registered as they are, never downloaded again.  A failed
	 * registration (a locked database...) fails the batch and stops the
	 * run.  NULL: files only, and "present" means the files exist.
	 */
	struct cairn_storedb_writer *db;
	/*
	 * IPFS gateways (lib/ipfs-fetch.h), borrowed, or NULL: an item whose
	 * narinfo names its NAR's root CID (an `IPFS:` field) is asked of
	 * them block by block first, the previous version under the same name
	 * seeding the block cache; the NarHash check is the same, and any
	 * failure falls back to the servers' NAR files.  Counters add up in
	 * ipfs_stats when set.
	 */
	const struct cairn_ipfs_fetch_config *ipfs;
	struct cairn_ipfs_fetch_stats *ipfs_stats;
	/* Called once per item when it is finished (any status). */
	void (*on_item)(void *ctx, const struct cairn_fetch_report *r);
	void *ctx;
};

#define CAIRN_FETCH_MULTI_MIN ((uint64_t)4 << 20)
void cairn_fetch_config_init(struct cairn_fetch_config *cfg);

struct cairn_fetch;

/* cfg is copied (its pointers are borrowed). */
int cairn_fetch_new(struct cairn_fetch **out, const struct cairn_fetch_config *cfg,
		    struct cairn_error *err);
void cairn_fetch_free(struct cairn_fetch *f);

/* Add a server (http:// or https:// base URL), in order of preference
 * among servers of equal Priority.  At most CAIRN_FETCH_MAX_SERVERS. */
int cairn_fetch_add_server(struct cairn_fetch *f, const char *url, struct cairn_error *err);

/*
 * Ask for a store path: "<store_dir>/<hash>-<name>", with anything after
 * the basename ("/bin/hello") ignored, or a bare "<hash>-<name>".
 * A path asked for twice is fetched once.
 */
int cairn_fetch_add_path(struct cairn_fetch *f, const char *path, struct cairn_error *err);

/*
 * Fetch everything.  Returns the number of items that FAILED (0 when all
 * are fetched or present), or a negative error when the run itself could
 * not go on (libcurl, out of memory...).  Call once.
 */
int cairn_fetch_run(struct cairn_fetch *f, struct cairn_error *err);

/* Current counters (also from inside on_item). */
void cairn_fetch_progress(const struct cairn_fetch *f, struct cairn_fetch_progress *out);

/*
 * A server's health after (or during) a run: its state as the HTTP client
 * saw it ("up", "down", "unreachable", "silent", "slow"), why when not up,
 * and whether it is demoted: its bytes failed verification, in this run
 * or an earlier one the narinfo cache remembers, so it is asked last.
 * Strings are borrowed until the next step or cairn_fetch_free.
 */
struct cairn_fetch_server_report {
	const char *url;
	const char *state;
	const char *reason;	    /* NULL when up */
	const char *demoted;	    /* why, or NULL */
	bool demoted_now;	    /* by this run */
};
size_t cairn_fetch_server_count(const struct cairn_fetch *f);
void cairn_fetch_server(const struct cairn_fetch *f, size_t i,
			struct cairn_fetch_server_report *r);

/* Items known to the engine (requested and closure), in the order added. */
size_t cairn_fetch_item_count(const struct cairn_fetch *f);
/* Report of item i < count; strings valid until cairn_fetch_free. */
void cairn_fetch_item(const struct cairn_fetch *f, size_t i, struct cairn_fetch_report *out);

/* One compression a narinfo offers, as the URL picker saw it. */
struct cairn_fetch_choice {
	const char *compression; /* static method name ("xz") */
	uint64_t file_size;	 /* FileSize, else NarSize times a typical ratio */
	double unpack_rate;	 /* NAR bytes/s on one core */
	double seconds;		 /* estimated: transfer plus unpacking */
	bool readable;		 /* false: cairn cannot unpack it (seconds 0) */
};

/* Where the network rate the picker used came from. */
#define CAIRN_FETCH_RATE_GUESSED "guess"      /* nothing measured yet */
#define CAIRN_FETCH_RATE_KEPT "earlier runs"  /* nicache speeds */
#define CAIRN_FETCH_RATE_RUNNING "this run"   /* bytes received so far */
#define CAIRN_FETCH_RATE_EARLY "first bytes"  /* this run's, from the first byte on */

/*
 * Which URL group of a narinfo to download (index into ni->urls), or -1
 * when no compression is readable.  Cost of each: FileSize (else NarSize
 * times a typical ratio) over net_rate bytes/s, plus NarSize over the
 * method's unpacking speed on one core (unpack[method], this machine's,
 * measured; NULL for built-in figures) times cpus; the cheapest wins,
 * near-ties going to zstd, xz, lzip, gzip, bzip2, none in that order.  So
 * a fast link picks what unpacks fastest and a slow one what is smallest.
 * net_rate <= 0 means unknown (CAIRN_FETCH_NET_RATE_GUESS).  est, when
 * not NULL, has room for ni->n_urls entries and receives each one's
 * estimate.  Pure: no clock, no I/O.
 */
#define CAIRN_FETCH_NET_RATE_GUESS 50e6
int cairn_fetch_pick_url(const struct cairn_narinfo *ni, double net_rate, const double *unpack,
			 unsigned cpus, struct cairn_fetch_choice *est);

/* A short static name: "fetched", "present", "failed", "pending". */
const char *cairn_fetch_status_name(enum cairn_fetch_status s);

/*
 * Run one step of the run: let the caller refresh a display between
 * events.  cairn_fetch_run is cairn_fetch_start then cairn_fetch_step until
 * it returns 0 (nothing left), then cairn_fetch_failed.
 */
int cairn_fetch_start(struct cairn_fetch *f, struct cairn_error *err);
int cairn_fetch_step(struct cairn_fetch *f, int timeout_ms, struct cairn_error *err);
size_t cairn_fetch_failed(const struct cairn_fetch *f);

#endif
