/*
 * narcache.h - the one nar cache of libcairn: files in a directory, a bound
 * on their total size, least-recently-used eviction, crash recovery.  It
 * serves publish's bakes (lib/publish-bake.c) and the mirror's store
 * (lib/edge-store.c).  Not installed.
 *
 * Layout under the cache directory DIR:
 *
 *     DIR/<data>/NAME   the cached files; NAME is the owner's (publish:
 *                       "<FileHash nix32>.nar<ext>" under "nar", the
 *                       mirror: "<sha256 hex>" under "data"), one path
 *                       component of at most NARCACHE_NAME_MAX bytes
 *     DIR/tmp/          files being written; emptied at open
 *     DIR/...           whatever else the owner keeps there (publish's
 *                       info/, the mirror's index.sqlite)
 *
 * What it does not own is the index: which item a file holds.  The owner
 * keeps that (publish: its maps and info/ files; the mirror: SQLite) and
 * keeps the two in step with one rule, whatever moment a crash comes at:
 * the owner's record of a file is written after narcache_commit renamed it
 * into place, and dropped (the evict callback, or before narcache_remove)
 * before the file is unlinked.  So every record names a whole file; the
 * other direction, files no record names, is repaired at open: the owner
 * narcache_adopt()s each file its index names, then narcache_sweep()
 * deletes the rest.
 *
 * Locking: none inside.  The owner calls every function that reads or
 * changes the entries (all but narcache_open/free, narcache_tmp_open,
 * narcache_sync and narcache_put_file) under the one lock that guards its
 * index, so that a file and the record naming it change together; the
 * evict callback runs under that same lock (the caller's), and must not
 * take it again nor call back into the cache.
 */
#ifndef CAIRN_NARCACHE_H
#define CAIRN_NARCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

#define NARCACHE_NAME_MAX 127 /* bytes of a file name, without its NUL */
#define NARCACHE_PATH_MAX 4096 /* a temporary file's path, with its NUL */

/* narcache_adopt's tick: the file's access time (seconds), for owners that
 * keep no recency of their own. */
#define NARCACHE_TICK_ATIME UINT64_MAX

/*
 * The file `name` is about to be evicted: drop every record that names it.
 * 0: go on (the file is then deleted); a negative cairn_err stops the
 * eviction with that error, and the file stays.
 */
typedef int (*narcache_evict_fn)(void *ctx, const char *name);

struct narcache_config {
	const char *dir;  /* created when missing (its parent must exist) */
	const char *data; /* its subdirectory of cached files */
	const char *what; /* who is speaking in messages: "publish", "mirror cache" */
	uint64_t max_size; /* bytes of cached files; 0: unbounded */
	narcache_evict_fn evict; /* NULL: nothing to tell */
	void *ctx;
};

struct narcache_stats {
	uint64_t files;
	uint64_t bytes;
	uint64_t evictions; /* since open */
	uint64_t pinned;    /* files with a pin */
};

struct narcache;

/* Create the layout (DIR, its data and tmp subdirectories) if needed and
 * empty tmp/ (writes a crash interrupted).  The cache starts empty: see
 * narcache_adopt. */
int narcache_open(struct narcache **out, const struct narcache_config *cfg,
		  struct cairn_error *err);
void narcache_free(struct narcache *nc);

/* The cache directory and its data subdirectory, open (O_DIRECTORY);
 * borrowed until narcache_free. */
int narcache_dir_fd(const struct narcache *nc);
int narcache_data_fd(const struct narcache *nc);

/* Create DIR/name (a directory of the owner's) if missing. */
int narcache_mkdir(struct narcache *nc, const char *name, struct cairn_error *err);

/*
 * At open, for each file the owner's index names: count the file `name`
 * of `size` bytes, last used at `tick` (larger is more recent, in the
 * owner's unit; NARCACHE_TICK_ATIME: the file's atime).  CAIRN_ENOENT when
 * there is no such file, CAIRN_EFORMAT when it is not a regular file of
 * that size: the owner drops its record (or keeps it as a ghost).  Adopting
 * a name twice keeps one file and the later tick.
 */
int narcache_adopt(struct narcache *nc, const char *name, uint64_t size, uint64_t tick);
/* Then: delete every file in the data directory that was not adopted. */
void narcache_sweep(struct narcache *nc);

/* A new temporary file DIR/tmp/<prefix>XXXXXX, open for reading and
 * writing in *fd, its path in path (cap >= NARCACHE_PATH_MAX is enough). */
int narcache_tmp_open(struct narcache *nc, const char *prefix, char *path, size_t cap, int *fd,
		      struct cairn_error *err);
/* fdatasync a temporary file (fd, or path when fd < 0) before its commit,
 * so that a crash after the rename cannot leave a record naming lost data.
 * Needs no lock: call it before taking the owner's. */
int narcache_sync(struct narcache *nc, int fd, const char *path, struct cairn_error *err);

/*
 * Rename the temporary file tmppath into place as `name` (atomically
 * replacing a file of that name, which holds the same bytes when names are
 * content hashes), count its size bytes and make it the most recently used.
 * The bound is not enforced here: see narcache_trim.  On failure tmppath is
 * removed.
 */
int narcache_commit(struct narcache *nc, const char *tmppath, const char *name, uint64_t size,
		    struct cairn_error *err);

/* Write a small file of the owner's, DIR/relpath, whole or not at all
 * (temporary file, renamed over it; no fsync: it can be made again). */
int narcache_put_file(struct narcache *nc, const char *relpath, const void *data, size_t len,
		      struct cairn_error *err);

/* Is `name` cached?  narcache_touch also makes it the most recently used. */
bool narcache_has(const struct narcache *nc, const char *name);
bool narcache_touch(struct narcache *nc, const char *name);
/* Its size and recency tick; false when not cached. */
bool narcache_get(const struct narcache *nc, const char *name, uint64_t *size, uint64_t *tick);

/*
 * Pins: a pinned file is never evicted (it may still be narcache_remove'd
 * by its owner).  A reader needs one only until it has the file open: an
 * open descriptor keeps an unlinked file's bytes, so eviction after that
 * costs the reader nothing (and the disk the file's size until it closes).
 * What a pin closes is the window between finding the name in the index
 * and opening it, which would otherwise fail now and then under load.
 * narcache_pin: false when `name` is not cached.  After the last unpin the
 * owner calls narcache_trim, since the pin may have held the cache over
 * its bound.
 */
bool narcache_pin(struct narcache *nc, const char *name);
void narcache_unpin(struct narcache *nc, const char *name);

/* Delete `name` (the owner dropped its records first).  Not an eviction.
 * 1 when a file went, 0 when it was not cached. */
int narcache_remove(struct narcache *nc, const char *name);

/*
 * Evict the least recently used unpinned files, other than `keep` (NULL:
 * none), until `room` more bytes fit under the bound: for each, the evict
 * callback, then the unlink.  Stops short (returning 0) when only pinned
 * files are left; a callback's error stops it and is returned.
 */
int narcache_trim(struct narcache *nc, uint64_t room, const char *keep, struct cairn_error *err);
/* Are the files over the bound (as pins can leave them)? */
bool narcache_over(const struct narcache *nc);

void narcache_stats(const struct narcache *nc, struct narcache_stats *out);

/*
 * Call fn for each file whose recency changed since the last call (commit
 * or touch), with its tick, and mark it clean: for owners that keep
 * recency in their index across restarts (the mirror).  fn's error stops
 * the walk (the rest stay dirty).
 */
int narcache_each_dirty(struct narcache *nc, int (*fn)(void *ctx, const char *name, uint64_t tick),
			void *ctx);

#endif
