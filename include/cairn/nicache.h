/*
 * nicache.h - the narinfo cache: what each binary cache answered, on disk.
 *
 * A fetch run asks every configured server for the narinfo of every path
 * it needs; most answers are the same as last time.  This cache keeps, per
 * (server URL, hash part):
 *
 *   present  the narinfo text as the server sent it (the caller verifies
 *            it again when it uses it), until it expires
 *   absent   the server answered 404/410, until it expires
 *
 * and per server: its nix-cache-info text, and a "down" mark with an
 * expiry (a server that could not be reached is not asked again for a
 * while, by this process or another).
 *
 * Expiry: a server's Cache-Control max-age is honoured when the caller
 * passes it (capped at CAIRN_NICACHE_TTL_MAX); otherwise the defaults of
 * Nix's narinfo disk cache apply (checked against NixOS/nix
 * src/libstore/nar-info-disk-cache.cc and globals.hh): positive entries 30
 * days (narinfo-cache-positive-ttl), negative 1 hour
 * (narinfo-cache-negative-ttl), nix-cache-info 7 days.  A response with
 * Cache-Control no-store should simply not be recorded.  A TTL of 0 makes
 * an entry already stale, which is how a caller turns caching of one kind
 * off.  Expired rows are deleted at most once a day when a handle opens.
 *
 * Storage: SQLite at $XDG_CACHE_HOME/cairn/narinfo.sqlite, else
 * ~/.cache/cairn/narinfo.sqlite (directories made 0700), in WAL mode with
 * a busy timeout so several processes can share it; writes between
 * cairn_nicache_begin and cairn_nicache_commit go into one transaction
 * (BEGIN IMMEDIATE: a writer takes the lock before reading, so two
 * writers never deadlock on an upgrade).  Bounded: URL length
 * CAIRN_NICACHE_URL_MAX, hash parts exactly 32 nix32 characters, texts at
 * most CAIRN_NICACHE_TEXT_MAX bytes and free of NUL bytes.
 *
 * Schema (PRAGMA user_version 1):
 *   servers(id integer primary key, url text unique not null,
 *           info text, info_expires integer, down_until integer,
 *           down_reason text)
 *   narinfos(server integer, hashpart text, present integer,
 *            text text, fetched integer, expires integer,
 *            primary key (server, hashpart)) without rowid
 *   meta(key text primary key, value integer)   -- 'last_purge'
 *
 * Times are seconds since the epoch, passed in by the caller (now), so
 * tests need no clock.  A handle is for one thread.
 */
#ifndef CAIRN_NICACHE_H
#define CAIRN_NICACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

#define CAIRN_NICACHE_URL_MAX 4096
#define CAIRN_NICACHE_TEXT_MAX (1u << 20)	/* a narinfo or nix-cache-info */
#define CAIRN_NICACHE_REASON_MAX 256		/* longer down reasons are cut */
#define CAIRN_NICACHE_TTL_MAX (365 * 24 * 3600) /* cap on any expiry */
#define CAIRN_NICACHE_PURGE_INTERVAL (24 * 3600)

struct cairn_nicache_config {
	const char *path;     /* NULL: the default location */
	int64_t positive_ttl; /* seconds; default 30 days */
	int64_t negative_ttl; /* default 3600 */
	int64_t info_ttl;     /* nix-cache-info; default 7 days */
	int64_t down_ttl;     /* a down server; default 600 */
	int64_t demote_ttl;   /* a server whose bytes failed verification; default 1 day */
	int busy_timeout_ms;  /* default 5000 */
};

void cairn_nicache_config_init(struct cairn_nicache_config *cfg);

/*
 * The default path, "$XDG_CACHE_HOME/cairn/narinfo.sqlite" or
 * "$HOME/.cache/cairn/narinfo.sqlite" (malloc'ed, caller frees).
 * CAIRN_ENOENT when neither variable is set to an absolute path.
 */
int cairn_nicache_default_path(char **out, struct cairn_error *err);

struct cairn_nicache;

/*
 * Open (creating the file, its directories and the schema when needed)
 * and purge expired rows when the last purge is a day old.  now is the
 * current time.  CAIRN_EIO when SQLite or mkdir fails, CAIRN_EUNSUPPORTED
 * for a database of a newer schema.
 */
int cairn_nicache_open(struct cairn_nicache **out, const struct cairn_nicache_config *cfg,
		       int64_t now, struct cairn_error *err);
/* Rolls back an open batch. */
void cairn_nicache_free(struct cairn_nicache *c);

enum cairn_nicache_state {
	CAIRN_NICACHE_UNKNOWN = 0, /* nothing fresh: ask the server */
	CAIRN_NICACHE_PRESENT = 1, /* *text holds the narinfo */
	CAIRN_NICACHE_ABSENT = 2,  /* the server said it has none */
};

/*
 * Look up a fresh entry.  Returns an enum cairn_nicache_state or a
 * negative error.  For PRESENT, *text (NUL-terminated, malloc'ed, the
 * caller frees) and *len (when len is not NULL) are set; otherwise *text
 * is left alone.  CAIRN_EFORMAT for a malformed hash part.
 */
int cairn_nicache_lookup(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			 int64_t now, char **text, size_t *len, struct cairn_error *err);

/*
 * Record a narinfo the server sent.  max_age is the response's
 * Cache-Control max-age, or -1 for the configured positive TTL.
 */
int cairn_nicache_put_present(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			      const char *text, size_t len, int64_t now, int64_t max_age,
			      struct cairn_error *err);
/* Record a 404/410; max_age as above, -1 for the negative TTL. */
int cairn_nicache_put_absent(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			     int64_t now, int64_t max_age, struct cairn_error *err);

/* Mark a server down until now + down_ttl (reason copied, cut). */
int cairn_nicache_put_down(struct cairn_nicache *c, const char *server_url, const char *reason,
			   int64_t now, struct cairn_error *err);
/*
 * 1 when the server is marked down and the mark has not expired (*reason,
 * when reason is not NULL, gets a malloc'ed copy), 0 when not, or a
 * negative error.
 */
int cairn_nicache_is_down(struct cairn_nicache *c, const char *server_url, int64_t now,
			  char **reason, struct cairn_error *err);

/*
 * A server that sent bytes which failed verification (NarHash, FileHash,
 * a NAR that does not parse) is demoted until now + demote_ttl: asked
 * last, longer than a server that was only down.  is_demoted: 1 (with a
 * malloc'ed *reason when reason is not NULL), 0, or a negative error.
 */
int cairn_nicache_put_demoted(struct cairn_nicache *c, const char *server_url,
			      const char *reason, int64_t now, struct cairn_error *err);
int cairn_nicache_is_demoted(struct cairn_nicache *c, const char *server_url, int64_t now,
			     char **reason, struct cairn_error *err);

/*
 * A server's measured download rate (bytes/s) and round trip (request to
 * first header, ms), from a download that took ranges from several
 * servers at once, so that later runs ask the fastest first (and pick
 * the compression for the link).  put blends with what was kept (half
 * each); an rtt_ms of 0 means not measured and keeps the old one.  The
 * same table keeps this machine's unpacking speed per compression under
 * "cairn-codec-unpack:METHOD" (rtt 0).  get: 1 with both, 0 when unknown, or
 * a negative error.
 */
int cairn_nicache_put_speed(struct cairn_nicache *c, const char *server_url, uint64_t rate,
			    uint64_t rtt_ms, int64_t now, struct cairn_error *err);
int cairn_nicache_get_speed(struct cairn_nicache *c, const char *server_url, uint64_t *rate,
			    uint64_t *rtt_ms, struct cairn_error *err);

/* A server's nix-cache-info text; max_age -1 for the configured TTL. */
int cairn_nicache_put_info(struct cairn_nicache *c, const char *server_url, const char *text,
			   size_t len, int64_t now, int64_t max_age, struct cairn_error *err);
/* 1 and *text (malloc'ed) / *len when fresh, 0 when not, or an error. */
int cairn_nicache_get_info(struct cairn_nicache *c, const char *server_url, int64_t now,
			   char **text, size_t *len, struct cairn_error *err);

/*
 * Batch the following puts into one transaction (thousands of writes
 * cost one fsync).  Nesting is an error.  Lookups inside a batch see its
 * writes.  commit makes them durable; rollback drops them.
 */
int cairn_nicache_begin(struct cairn_nicache *c, struct cairn_error *err);
int cairn_nicache_commit(struct cairn_nicache *c, struct cairn_error *err);
void cairn_nicache_rollback(struct cairn_nicache *c);


#endif
