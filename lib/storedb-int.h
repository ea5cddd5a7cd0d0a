/*
 * storedb-int.h - what lib/storedb.c (open, transactions, path info) shares
 * with lib/storedb-scan.c (whole-table queries): the handle and the helpers
 * every query runs on.  Not installed.
 */
#ifndef CAIRN_STOREDB_INT_H
#define CAIRN_STOREDB_INT_H

#include <stddef.h>
#include <time.h>

#include <sqlite3.h>

#include "cairn/error.h"
#include "cairn/storedb.h"

/* Longest piece of a bad value quoted in a message. */
#define QUOTE_MAX 80

enum { ST_BY_RANGE, ST_BY_PATH, ST_REFS, ST_COUNT, ST_PAGE, ST_CLOSURE, ST_RECENT, ST_N_ };

struct cairn_storedb {
	sqlite3 *sql;
	char *store_dir;
	size_t dirlen;
	char *db_path;
	char *wal_path;
	int busy_ms;
	unsigned flags;
	int immutable;
	time_t retry_after; /* monotonic seconds; 0 = try now */
	int last_rc;	    /* extended SQLite code of the last failure */
	int retried;	    /* the current call already reconnected once */
	/* optional ValidPaths columns present (Guix lacks all three) */
	int has_ultimate, has_sigs, has_ca;
	sqlite3_stmt *st[ST_N_];
};


/* Copy at most QUOTE_MAX bytes of s for a message, '?' for unprintables. */
void storedb_quote(char out[QUOTE_MAX + 4], const char *s, size_t len);
/* Record SQLite's failure rc of what (and db->last_rc); a cairn_err. */
int storedb_sql_fail(struct cairn_storedb *db, sqlite3 *sql, int rc, const char *what,
		     struct cairn_error *err);
/* Is s a store path under the handle's store directory? */
int storedb_valid_store_path(const struct cairn_storedb *db, const char *s, size_t len);
/* A NUL-terminated copy of len bytes of s, or NULL. */
char *storedb_dup_n(const char *s, size_t len);
/* The statement `which` of db, prepared once per handle. */
int storedb_prepare(struct cairn_storedb *db, int which, sqlite3_stmt **out,
		    struct cairn_error *err);
/* Before a call: leave the immutable fallback when a -wal file appeared. */
void storedb_enter(struct cairn_storedb *db);
/* One short read transaction per call; txn_end resets every statement. */
int storedb_txn_begin(struct cairn_storedb *db, struct cairn_error *err);
void storedb_txn_end(struct cairn_storedb *db);
/* Attempts (storedb.c, "Retrying"): init, then retry while
 * retry_after_wal_loss says so, then done turns the last into the result. */
void storedb_attempt_init(struct cairn_storedb *db, struct cairn_error *e);
int storedb_retry_after_wal_loss(struct cairn_storedb *db, int ret);
int storedb_attempt_done(int ret, const struct cairn_error *e, struct cairn_error *err);
/* A row that is not what a store database holds, named by id and path. */
int storedb_bad_row(struct cairn_error *err, sqlite3_int64 id, const char *path, size_t plen,
		    const char *what);
/* Column col of st as text in *s, *len: 0 when it is NULL. */
int storedb_column_text(sqlite3_stmt *st, int col, const char **s, size_t *len);

#endif
