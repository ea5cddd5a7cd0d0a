/*
 * storedb.h - read-only access to a local Nix or Guix store database.
 *
 * `cairn publish` serves a narinfo for every valid path of a local store and
 * `cairn challenge` compares local NAR hashes with a cache's; both read the
 * store's SQLite database directly rather than talking to the daemon.
 * Registering paths (`cairn fetch`) is the separate write side,
 * storedb-write.h; these handles never write.
 *
 * Layout read (checked against NixOS/nix src/libstore/schema.sql and
 * local-store.cc, the database Nix 2.8 actually creates, and Guix's
 * nix/libstore/local-store.cc, whose daemon is a fork of Nix 1.x):
 *
 *   ValidPaths(id integer primary key, path text unique not null,
 *              hash text not null, registrationTime integer not null,
 *              deriver text, narSize integer,
 *              ultimate integer, sigs text, ca text)
 *   Refs(referrer integer, reference integer)   -- both ValidPaths.id
 *
 *   path              full store path, "<storedir>/<32 nix32>-<name>"
 *   hash              NAR hash as "sha256:<64 lowercase hex>"
 *   registrationTime  seconds since the epoch
 *   deriver           full .drv path, or NULL
 *   narSize           bytes, NULL (read as 0) in very old databases
 *   ultimate          NULL means false (built locally when 1)
 *   sigs              space-separated "keyname:base64" signatures
 *   ca                content-address assertion ("fixed:r:sha256:...",
 *                     "text:sha256:..."), NULL for input-addressed paths
 *
 * Guix's schema stops at narSize: ultimate, sigs and ca do not exist there.
 * The columns present are found with PRAGMA table_info at open time and a
 * missing one reads as NULL.  The current NixOS/nix source has a variant in
 * which Refs point at a Storables table rather than at ValidPaths; reading
 * it with these joins would give wrong references, so a database with a
 * Storables table is refused (CAIRN_EUNSUPPORTED) until it is supported.
 *
 * Nix looks a hash part up with "path >= '<dir>/<hashpart>'" and then checks
 * the prefix; here the range is closed ("path >= '<dir>/<hashpart>-' AND
 * path < '<dir>/<hashpart>.'"), the same unique-index search without a
 * result to discard.
 *
 * Default locations: /nix/store with /nix/var/nix/db/db.sqlite, and
 * /gnu/store with /var/guix/db/db.sqlite.
 *
 * Concurrency.  The daemon keeps writing while we read, so the database is
 * opened read-only (never `immutable`, which would let us read a half-written
 * state), with a busy timeout, and every call runs in its own short read
 * transaction that ends before the call returns: a handle never holds a
 * snapshot between requests, so it neither blocks the daemon's writers
 * (rollback-journal mode) nor pins the WAL (WAL mode).  In WAL mode a reader
 * needs the -wal and -shm files; when they do not exist (no daemon has the
 * database open) and the process cannot create them, SQLite refuses to read.
 * With CAIRN_STOREDB_IMMUTABLE_FALLBACK the handle then reads the main file
 * as immutable, which is exact while no writer runs; before every call it
 * checks whether a -wal file has appeared and, if so, goes back to normal
 * read-only mode.  cairn_storedb_is_immutable() tells the caller to warn.
 *
 * Threads.  A handle is for one thread at a time (SQLITE_OPEN_NOMUTEX);
 * opening one is cheap, so give each event-loop or worker thread its own.
 * Prepared statements are cached per handle.
 *
 * Every row is checked before it is returned: a path not under the store
 * directory, a malformed hash, a negative size, a control character in any
 * text field (it would end up in a narinfo line) fail with CAIRN_EFORMAT and
 * a message naming the row.
 */
#ifndef CAIRN_STOREDB_H
#define CAIRN_STOREDB_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"

/* Bounds on what one row may hold. */
#define CAIRN_STOREDB_DIR_MAX 1024 /* store directory length */
#define CAIRN_STOREDB_NAME_MAX 211 /* name part of a store path, as Nix */
#define CAIRN_STOREDB_PATH_MAX (CAIRN_STOREDB_DIR_MAX + 1 + 32 + 1 + CAIRN_STOREDB_NAME_MAX)
#define CAIRN_STOREDB_REFS_MAX 65536	     /* references of one path */
#define CAIRN_STOREDB_SIGS_MAX 64	     /* signatures of one path */
#define CAIRN_STOREDB_SIGS_LEN_MAX 65536     /* length of the sigs column */
#define CAIRN_STOREDB_CA_LEN_MAX 1024	     /* length of the ca column */
#define CAIRN_STOREDB_CLOSURE_MAX (1u << 20) /* hard cap for closures */

/* Default busy timeout: how long a call waits for a lock, milliseconds. */
#define CAIRN_STOREDB_BUSY_TIMEOUT_MS 5000

enum cairn_storedb_kind {
	CAIRN_STOREDB_NIX = 1, /* /nix/store, /nix/var/nix/db/db.sqlite */
	CAIRN_STOREDB_GUIX,    /* /gnu/store, /var/guix/db/db.sqlite */
};

enum cairn_storedb_open_flags {
	/* Read the main file as immutable when WAL mode needs -shm/-wal files
	 * this process may not create (see above). */
	CAIRN_STOREDB_IMMUTABLE_FALLBACK = 1 << 0,
};

struct cairn_storedb_config {
	const char *store_dir; /* no trailing slash */
	const char *db_path;   /* the db.sqlite file */
	int busy_timeout_ms;   /* > 0 */
	unsigned flags;	       /* enum cairn_storedb_open_flags */
};

/* Fill *cfg with the defaults of a Nix or Guix installation (static strings). */
void cairn_storedb_config_init(struct cairn_storedb_config *cfg, enum cairn_storedb_kind kind);

struct cairn_storedb;

/*
 * Open the database read-only and check its schema.  The strings in cfg are
 * copied.  Fails with CAIRN_EIO when SQLite cannot open or read it,
 * CAIRN_EUNSUPPORTED for an unknown schema or a single-threaded SQLite.
 */
int cairn_storedb_open(struct cairn_storedb **out, const struct cairn_storedb_config *cfg,
		       struct cairn_error *err);
void cairn_storedb_free(struct cairn_storedb *db);

/* 1 while the handle reads in the immutable fallback mode, else 0. */
int cairn_storedb_is_immutable(const struct cairn_storedb *db);
/* The store directory; borrowed, valid until cairn_storedb_free. */
const char *cairn_storedb_store_dir(const struct cairn_storedb *db);

/* One valid path.  Everything is owned by the struct. */
struct cairn_storedb_pathinfo {
	char *path;		    /* full store path */
	struct cairn_hash nar_hash; /* always SHA-256 */
	uint64_t nar_size;	    /* 0 when the database has none */
	char *deriver;		    /* full .drv path or NULL */
	int64_t registration_time;  /* seconds since the epoch */
	int ultimate;		    /* 1 when the column is 1, as Nix reads it */
	char **sigs;		    /* "keyname:base64", sorted, no duplicates */
	size_t nsigs;
	char *ca;     /* NULL when not content-addressed */
	char **refs;  /* full paths, sorted as Nix sorts them */
	size_t nrefs; /*   (byte order), self-reference included */
};

/* Free the contents; *pi is left zeroed.  Safe on a zeroed struct. */
void cairn_storedb_pathinfo_release(struct cairn_storedb_pathinfo *pi);

/*
 * Look up the valid path whose hash part (the 32 nix32 characters after the
 * store directory) is hashpart, as a binary cache's "<hashpart>.narinfo"
 * request names it.  An index range query, never a scan.  CAIRN_ENOENT when
 * no such path is valid, CAIRN_EFORMAT when hashpart is not 32 nix32
 * characters or the row is malformed.
 */
int cairn_storedb_query_hashpart(struct cairn_storedb *db, const char *hashpart,
				 struct cairn_storedb_pathinfo *out, struct cairn_error *err);

/* The same for a full store path. */
int cairn_storedb_query_path(struct cairn_storedb *db, const char *path,
			     struct cairn_storedb_pathinfo *out, struct cairn_error *err);

/* Number of valid paths. */
int cairn_storedb_count(struct cairn_storedb *db, uint64_t *count, struct cairn_error *err);

/*
 * Call fn for every valid path (full path, borrowed for the call), in
 * registration (id) order.  The table is read in pages, each in its own
 * short transaction, and fn runs outside any transaction, so a slow
 * callback never holds up the daemon; a path added or removed meanwhile may
 * or may not be seen.  fn returns 0 to go on, non-zero to stop (the call
 * then returns CAIRN_ECANCELED).  Returns 0 after the last path.
 */
int cairn_storedb_foreach(struct cairn_storedb *db, int (*fn)(void *ctx, const char *path),
			  void *ctx, struct cairn_error *err);

/*
 * A recently added valid path, for examples shown to users: the newest of
 * the last CAIRN_STOREDB_RECENT_SCAN registered (highest id) that is not a
 * .drv, else the newest of them.  *out is the caller's to free.
 * CAIRN_ENOENT when no path is valid.  Reads at most that many rows.
 */
#define CAIRN_STOREDB_RECENT_SCAN 64
int cairn_storedb_recent_path(struct cairn_storedb *db, char **out, struct cairn_error *err);

/* A list of store paths. */
struct cairn_storedb_paths {
	char **v;
	size_t n;
};
void cairn_storedb_paths_release(struct cairn_storedb_paths *p);

/*
 * The valid paths registered after row id `after` (ValidPaths.id), in id
 * order, at most one page (a few hundred) per call, into *out (release
 * it); *last gets the id of the last one (after, when none).  For
 * following the database as it grows (the change feed): ids only grow,
 * so calling again with *last finds what was registered since.  Reads
 * only rows after `after`: cheap however large the store.
 */
int cairn_storedb_page_after(struct cairn_storedb *db, uint64_t after,
			     struct cairn_storedb_paths *out, uint64_t *last,
			     struct cairn_error *err);

/*
 * The closure of path (path itself and everything it references,
 * transitively), sorted, read in one transaction.  CAIRN_ELIMIT when it has
 * more than max paths (max 0 means CAIRN_STOREDB_CLOSURE_MAX, larger values
 * are capped to it), CAIRN_ENOENT when path is not valid.
 */
int cairn_storedb_closure(struct cairn_storedb *db, const char *path, size_t max,
			  struct cairn_storedb_paths *out, struct cairn_error *err);

#endif
