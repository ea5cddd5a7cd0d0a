/*
 * monitor-db.c - the monitor's SQLite database: what every server said
 * about every item, each item's verdict and its history, the file diffs.
 *
 * Schema (version MON_SCHEMA_VERSION in PRAGMA user_version):
 *   servers(id, url UNIQUE, has_feed, feed, feed_seq, last_ok, last_error,
 *           error_since)
 *   items(id, hash UNIQUE, path, verdict, verdict_since, first_seen,
 *         last_seen, diff_state, diff_note)
 *       index (verdict, verdict_since DESC, id DESC): the list pages, newest
 *       change first, paginated by key (never OFFSET)
 *   obs(item, server, state, sig, nar_hash, nar_size, refs, narinfo,
 *       first_seen, last_seen), primary key (item, server); index (server)
 *   history(item, at, verdict): one row per verdict change; index (at),
 *       (item)
 *   diffs(item, a_server, b_server, path, change, a_type, a_size, a_sha256,
 *         a_target, b_...); index (item)
 *   diffoscope(item, a_server, b_server, html, note): diffoscope's HTML
 *       report on the first two groups of a differing item (version 3)
 *   meta(k, v)  "monitor": this monitor's id, 32 hex digits, random
 *   log(seq AUTOINCREMENT, at, server, hash, state, nar_hash, nar_size):
 *       with --key, each change of what a server says about an item, the
 *       observation log served signed (monitor-log.c); never pruned
 *   peer_obs(peer, monitor, seq, at, server, hash, state, nar_hash,
 *       nar_size): the verified logs of --peer monitors; index (hash)
 *   verdict_counts(verdict, n), server_counts(server, present): items per
 *       verdict, items present per server, kept by triggers (version 2);
 *       pair_counts(a, b, both_have, agree) likewise; their day's rows in
 *       verdict_trend and pair_trend written by mon_db_trends at the end of
 *       each transaction that may change them (version 4)
 * Verdicts are stored as enum cairn_monitor_verdict (1 differs, 5 absent
 * in the SQL below).
 * WAL, so the pages read while the observer writes; synchronous=NORMAL (a
 * power loss may cost the last pass, which the next one redoes).  The
 * writer keeps its temporary files in memory (temp_store): a pass is one
 * transaction, so each upsert (and its triggers) saves the pages it
 * touches in a statement journal, which SQLite otherwise moves to a temp
 * file past 64 KiB and then writes through the kernel for every statement
 * (20 KiB per answer: 28 % of a first pass's CPU, perf).  In memory it
 * holds one statement's pages at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "monitor-int.h"
#include "cairn/banned.h"

_Static_assert(CAIRN_MONITOR_DIFFERS == 1 && CAIRN_MONITOR_ABSENT == 5,
	       "the SQL below spells these verdicts as numbers");

static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS servers(id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE,"
	" has_feed INTEGER NOT NULL DEFAULT 0, feed TEXT NOT NULL DEFAULT '',"
	" feed_seq INTEGER NOT NULL DEFAULT 0, last_ok INTEGER, last_error TEXT,"
	" error_since INTEGER);"
	"CREATE TABLE IF NOT EXISTS items(id INTEGER PRIMARY KEY, hash TEXT NOT NULL UNIQUE,"
	" path TEXT NOT NULL, verdict INTEGER NOT NULL DEFAULT 5,"
	" verdict_since INTEGER NOT NULL, first_seen INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL, diff_state INTEGER NOT NULL DEFAULT 0, diff_note TEXT);"
	"CREATE INDEX IF NOT EXISTS items_by_verdict ON items(verdict, verdict_since DESC, id DESC);"
	"CREATE INDEX IF NOT EXISTS items_by_change ON items(verdict_since DESC, id DESC);"
	"CREATE TABLE IF NOT EXISTS obs(item INTEGER NOT NULL, server INTEGER NOT NULL,"
	" state INTEGER NOT NULL, sig INTEGER NOT NULL DEFAULT 1, nar_hash TEXT,"
	" nar_size INTEGER, refs TEXT, narinfo TEXT, first_seen INTEGER NOT NULL,"
	" last_seen INTEGER NOT NULL, PRIMARY KEY(item, server)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS obs_by_server ON obs(server, state);"
	"CREATE TABLE IF NOT EXISTS history(item INTEGER NOT NULL, at INTEGER NOT NULL,"
	" verdict INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS history_by_at ON history(at);"
	"CREATE INDEX IF NOT EXISTS history_by_item ON history(item, at);"
	"CREATE TABLE IF NOT EXISTS diffs(item INTEGER NOT NULL, a_server INTEGER,"
	" b_server INTEGER, path TEXT NOT NULL, change TEXT NOT NULL,"
	" a_type TEXT, a_size INTEGER, a_sha256 TEXT, a_target TEXT,"
	" b_type TEXT, b_size INTEGER, b_sha256 TEXT, b_target TEXT);"
	"CREATE INDEX IF NOT EXISTS diffs_by_item ON diffs(item);"
	"CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"INSERT OR IGNORE INTO meta(k, v) VALUES('monitor', lower(hex(randomblob(16))));"
	"CREATE TABLE IF NOT EXISTS log(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" at INTEGER NOT NULL, server TEXT NOT NULL, hash TEXT NOT NULL, state TEXT NOT NULL,"
	" nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS peer_obs(peer TEXT NOT NULL, monitor TEXT NOT NULL,"
	" seq INTEGER NOT NULL, at INTEGER NOT NULL, server TEXT NOT NULL, hash TEXT NOT NULL,"
	" state TEXT NOT NULL, nar_hash TEXT NOT NULL, nar_size INTEGER NOT NULL,"
	" PRIMARY KEY(peer, seq)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS peer_obs_by_hash ON peer_obs(hash);"
	"PRAGMA user_version = 1;";

/* Add SIGN (1 or -1, an SQL expression) times the pairs the observation
 * ROW ("new" or "old") makes with the other servers that have the item. */
#define PAIR_ADD(row, sign)                                                                  \
	" INSERT INTO pair_counts(a, b, both_have, agree)"                                  \
	" SELECT min(o.server, " row ".server), max(o.server, " row ".server), " sign ","     \
	"  " sign " * (o.nar_hash IS " row ".nar_hash AND o.nar_size IS " row ".nar_size"   \
	"  AND o.refs IS " row ".refs)"                                                      \
	" FROM obs o WHERE o.item = " row ".item AND o.server <> " row ".server"            \
	"  AND o.state = 1 AND " sign " <> 0"                                                \
	" ON CONFLICT(a, b) DO UPDATE SET both_have = both_have + excluded.both_have,"      \
	"  agree = agree + excluded.agree;"
/* The trigger NAME on EVENT of obs, when COND: the pair counts changed by
 * A then B, then the trend rows of the pairs of ROW's server rewritten for
 * the day of ROW's observation. */
#define PAIR_TRIGGER(name, event, cond, row, a, b)                                         \
	"CREATE TRIGGER IF NOT EXISTS obs_pair_" name " AFTER " event " ON obs WHEN " cond   \
	" BEGIN" a b " INSERT INTO pair_trend SELECT " row ".last_seen / 86400,"              \
	" a, b, both_have, agree FROM pair_counts WHERE a = " row ".server OR b = " row       \
	".server ON CONFLICT(day, a, b) DO UPDATE SET both_have = excluded.both_have,"        \
	" agree = excluded.agree; END;"

/* Today's trend rows of the verdicts IN (a list), rewritten from the
 * counters: in the trigger that changed them (SQLite gives no order among
 * the triggers of one event). */
#define VERDICT_TREND(in)                                                                    \
	" INSERT INTO verdict_trend SELECT new.verdict_since / 86400, verdict, n"           \
	"  FROM verdict_counts WHERE verdict IN (" in ")"                                    \
	"  ON CONFLICT(day, verdict) DO UPDATE SET n = excluded.n;"

/*
 * Version 2: counters the overview and the summary read instead of
 * counting millions of rows per load.  Triggers keep them, so they change
 * in the same transaction as the verdict or the observation they count and
 * no writer can forget them; an update that changes nothing counted fires
 * nothing (the WHEN clauses), so a steady-state pass pays almost nothing.
 */
static const char schema_v2[] =
	"CREATE TABLE IF NOT EXISTS verdict_counts(verdict INTEGER PRIMARY KEY,"
	" n INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS server_counts(server INTEGER PRIMARY KEY,"
	" present INTEGER NOT NULL);"
	"INSERT OR REPLACE INTO verdict_counts SELECT verdict, count(*) FROM items GROUP BY verdict;"
	"INSERT OR REPLACE INTO server_counts SELECT server, count(*) FROM obs WHERE state = 1"
	" GROUP BY server;"
	"CREATE TRIGGER IF NOT EXISTS items_count_ins AFTER INSERT ON items BEGIN"
	" INSERT INTO verdict_counts VALUES(new.verdict, 1)"
	"  ON CONFLICT(verdict) DO UPDATE SET n = n + 1;"
	VERDICT_TREND("new.verdict") " END;"
	"CREATE TRIGGER IF NOT EXISTS items_count_del AFTER DELETE ON items BEGIN"
	" UPDATE verdict_counts SET n = n - 1 WHERE verdict = old.verdict; END;"
	"CREATE TRIGGER IF NOT EXISTS items_count_upd AFTER UPDATE OF verdict ON items"
	" WHEN old.verdict IS NOT new.verdict BEGIN"
	" UPDATE verdict_counts SET n = n - 1 WHERE verdict = old.verdict;"
	" INSERT INTO verdict_counts VALUES(new.verdict, 1)"
	"  ON CONFLICT(verdict) DO UPDATE SET n = n + 1;"
	VERDICT_TREND("old.verdict, new.verdict") " END;"
	"CREATE TRIGGER IF NOT EXISTS obs_count_ins AFTER INSERT ON obs WHEN new.state = 1 BEGIN"
	" INSERT INTO server_counts VALUES(new.server, 1)"
	"  ON CONFLICT(server) DO UPDATE SET present = present + 1; END;"
	"CREATE TRIGGER IF NOT EXISTS obs_count_del AFTER DELETE ON obs WHEN old.state = 1 BEGIN"
	" UPDATE server_counts SET present = present - 1 WHERE server = old.server; END;"
	"CREATE TRIGGER IF NOT EXISTS obs_count_came AFTER UPDATE OF state ON obs"
	" WHEN old.state <> 1 AND new.state = 1 BEGIN"
	" INSERT INTO server_counts VALUES(new.server, 1)"
	"  ON CONFLICT(server) DO UPDATE SET present = present + 1; END;"
	"CREATE TRIGGER IF NOT EXISTS obs_count_went AFTER UPDATE OF state ON obs"
	" WHEN old.state = 1 AND new.state <> 1 BEGIN"
	" UPDATE server_counts SET present = present - 1 WHERE server = old.server; END;"
	/* each pair of servers (a < b): items both have, items they agree
	 * on (the same NarHash, NarSize, References; the signatures aside),
	 * kept as an observation appears, changes or goes; with a row per day
	 * (the day of the observation) holding the day's last counts */
	"CREATE TABLE IF NOT EXISTS pair_counts(a INTEGER NOT NULL, b INTEGER NOT NULL,"
	" both_have INTEGER NOT NULL, agree INTEGER NOT NULL, PRIMARY KEY(a, b)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS pair_trend(day INTEGER NOT NULL, a INTEGER NOT NULL,"
	" b INTEGER NOT NULL, both_have INTEGER NOT NULL, agree INTEGER NOT NULL,"
	" PRIMARY KEY(day, a, b)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS verdict_trend(day INTEGER NOT NULL, verdict INTEGER NOT NULL,"
	" n INTEGER NOT NULL, PRIMARY KEY(day, verdict)) WITHOUT ROWID;"
	"INSERT OR REPLACE INTO pair_counts SELECT x.server, y.server, count(*),"
	" sum(x.nar_hash IS y.nar_hash AND x.nar_size IS y.nar_size AND x.refs IS y.refs)"
	" FROM obs x JOIN obs y ON y.item = x.item AND y.server > x.server"
	" WHERE x.state = 1 AND y.state = 1 GROUP BY x.server, y.server;"
	/* an upgraded database: its trends start with the counts as of its
	 * last observation */
	"INSERT INTO pair_trend SELECT (SELECT max(last_seen) FROM obs) / 86400, a, b,"
	" both_have, agree FROM pair_counts WHERE (SELECT max(last_seen) FROM obs) IS NOT NULL;"
	"INSERT INTO verdict_trend SELECT (SELECT max(last_seen) FROM obs) / 86400, verdict, n"
	" FROM verdict_counts WHERE (SELECT max(last_seen) FROM obs) IS NOT NULL;"
	PAIR_TRIGGER("ins", "INSERT", "new.state = 1", "new", "", PAIR_ADD("new", "1"))
	PAIR_TRIGGER("del", "DELETE", "old.state = 1", "old", "", PAIR_ADD("old", "-1"))
	PAIR_TRIGGER("upd", "UPDATE OF state, nar_hash, nar_size, refs",
		     "(old.state = 1 OR new.state = 1) AND (old.state IS NOT new.state"
		     " OR old.nar_hash IS NOT new.nar_hash OR old.nar_size IS NOT new.nar_size"
		     " OR old.refs IS NOT new.refs)",
		     "new", PAIR_ADD("old", "-(old.state = 1)"), PAIR_ADD("new", "(new.state = 1)"))
	/* each --peer's last log used: its monitor, its records and the
	 * chained digest of them, so its next log must extend it */
	"CREATE TABLE IF NOT EXISTS peer_logs(peer TEXT PRIMARY KEY, monitor TEXT NOT NULL,"
	" count INTEGER NOT NULL, chain TEXT NOT NULL);"
	/* a failed diff is tried again at the next full passes, so often */
	"ALTER TABLE items ADD COLUMN diff_tries INTEGER NOT NULL DEFAULT 0;"
	"PRAGMA user_version = 2;";

static const char schema_v3[] =
	/* diffoscope's report on a differing item (monitor-diffoscope.c) */
	"CREATE TABLE IF NOT EXISTS diffoscope(item INTEGER PRIMARY KEY, a_server INTEGER,"
	" b_server INTEGER, html BLOB, note TEXT);"
	"PRAGMA user_version = 3;";

/* The triggers of a pair's counters without the trend: the same A then B. */
#define PAIR_TRIGGER_V4(name, event, cond, a, b)                                           \
	"DROP TRIGGER IF EXISTS obs_pair_" name ";"                                         \
	"CREATE TRIGGER obs_pair_" name " AFTER " event " ON obs WHEN " cond " BEGIN" a b    \
	" END;"

/*
 * Version 4: the trend rows are written once per transaction
 * (mon_db_trends, before the observer commits a tick), not by the
 * triggers on every observation and verdict: on a first pass those
 * rewrites of the same rows were 40 % of the writer (perf, 100,000 items
 * x 3 servers).  A tick's observations all carry its time, so the day's
 * rows end the same.  The counters themselves stay with the triggers.
 */
static const char schema_v4[] =
	PAIR_TRIGGER_V4("ins", "INSERT", "new.state = 1", "", PAIR_ADD("new", "1"))
	PAIR_TRIGGER_V4("del", "DELETE", "old.state = 1", "", PAIR_ADD("old", "-1"))
	PAIR_TRIGGER_V4("upd", "UPDATE OF state, nar_hash, nar_size, refs",
			"(old.state = 1 OR new.state = 1) AND (old.state IS NOT new.state"
			" OR old.nar_hash IS NOT new.nar_hash OR old.nar_size IS NOT new.nar_size"
			" OR old.refs IS NOT new.refs)",
			PAIR_ADD("old", "-(old.state = 1)"), PAIR_ADD("new", "(new.state = 1)"))
	"DROP TRIGGER IF EXISTS items_count_ins;"
	"CREATE TRIGGER items_count_ins AFTER INSERT ON items BEGIN"
	" INSERT INTO verdict_counts VALUES(new.verdict, 1)"
	"  ON CONFLICT(verdict) DO UPDATE SET n = n + 1; END;"
	"DROP TRIGGER IF EXISTS items_count_upd;"
	"CREATE TRIGGER items_count_upd AFTER UPDATE OF verdict ON items"
	" WHEN old.verdict IS NOT new.verdict BEGIN"
	" UPDATE verdict_counts SET n = n - 1 WHERE verdict = old.verdict;"
	" INSERT INTO verdict_counts VALUES(new.verdict, 1)"
	"  ON CONFLICT(verdict) DO UPDATE SET n = n + 1; END;"
	"PRAGMA user_version = 4;";

static int fail(struct mon_db *d, struct cairn_error *err, const char *what)
{
	return cairn_error_set(err, CAIRN_EIO, "monitor: database: %s: %s", what,
			       sqlite3_errmsg(d->db));
}

int mon_db_exec(struct mon_db *d, const char *sql, struct cairn_error *err)
{
	if (sqlite3_exec(d->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return fail(d, err, sql);
	return 0;
}

int mon_db_prepare(struct mon_db *d, const char *sql, sqlite3_stmt **st, struct cairn_error *err)
{
	if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK)
		return fail(d, err, "prepare");
	return 0;
}

/*
 * The statement for sql (a string literal), prepared on first use and
 * kept: a pass makes several statements per answer, and preparing them
 * cost more than running them.  Give it back with put().
 */
static int get(struct mon_db *d, const char *sql, sqlite3_stmt **st, struct cairn_error *err)
{
	size_t i;
	for (i = 0; i < MON_DB_STMTS && d->cache[i].sql; i++)
		if (d->cache[i].sql == sql) {
			*st = d->cache[i].st;
			return 0;
		}
	if (i == MON_DB_STMTS)
		BUG("monitor: more than %d cached statements", MON_DB_STMTS);
	if (sqlite3_prepare_v3(d->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
		return fail(d, err, "prepare");
	d->cache[i].sql = sql;
	d->cache[i].st = *st;
	return 0;
}

static void put(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Run a cached statement to its end; 0 or an error. */
static int run(struct mon_db *d, sqlite3_stmt *st, struct cairn_error *err, const char *what)
{
	int rc = sqlite3_step(st);
	put(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(d, err, what);
	return 0;
}

static int64_t query_int(struct mon_db *d, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;
	if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int mon_db_open(struct mon_db **out, const char *path, bool writer, struct cairn_error *err)
{
	struct mon_db *d = calloc(1, sizeof(*d));
	int rc;
	if (!d)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
	pthread_mutex_init(&d->lock, NULL);
	int flags = writer ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
	if (sqlite3_open_v2(path, &d->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		rc = cairn_error_set(err, CAIRN_EIO, "monitor: cannot open the database '%s': %s",
				     path, d->db ? sqlite3_errmsg(d->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(d->db, 10000);
	if (writer) {
		int64_t version;
		if ((rc = mon_db_exec(d, "PRAGMA journal_mode = WAL", err)) < 0 ||
		    (rc = mon_db_exec(d, "PRAGMA synchronous = NORMAL", err)) < 0 ||
		    (rc = mon_db_exec(d, "PRAGMA temp_store = MEMORY", err)) < 0 ||
		    /* a first pass writes one transaction of some 1 KiB per
		     * answer: with SQLite's 2 MiB cache it spilled pages to the
		     * WAL, and read them back, all along (5 % of the writer) */
		    (rc = mon_db_exec(d, "PRAGMA cache_size = -65536", err)) < 0)
			goto fail;
		version = query_int(d, "PRAGMA user_version", -1);
		if (version > MON_SCHEMA_VERSION || version < 0) {
			rc = cairn_error_set(err, CAIRN_EUNSUPPORTED,
					     "monitor: '%s': schema version %lld is not %d", path,
					     (long long)version, MON_SCHEMA_VERSION);
			goto fail;
		}
		if (version < MON_SCHEMA_VERSION &&
		    ((rc = mon_db_exec(d, "BEGIN IMMEDIATE", err)) < 0 ||
		     (version < 1 && (rc = mon_db_exec(d, schema_v1, err)) < 0) ||
		     (version < 2 && (rc = mon_db_exec(d, schema_v2, err)) < 0) ||
		     (version < 3 && (rc = mon_db_exec(d, schema_v3, err)) < 0) ||
		     (rc = mon_db_exec(d, schema_v4, err)) < 0 ||
		     (rc = mon_db_exec(d, "COMMIT", err)) < 0))
			goto fail;
	} else if (query_int(d, "PRAGMA user_version", -1) != MON_SCHEMA_VERSION) {
		rc = cairn_error_set(err, CAIRN_EUNSUPPORTED, "monitor: '%s': not a monitor database",
				     path);
		goto fail;
	}
	*out = d;
	return 0;
fail:
	mon_db_close(d);
	return rc;
}

void mon_db_close(struct mon_db *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < MON_DB_STMTS && d->cache[i].sql; i++)
		sqlite3_finalize(d->cache[i].st);
	sqlite3_close(d->db);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* Run a prepared statement to its end; 0 or an error. */
static int done(struct mon_db *d, sqlite3_stmt *st, struct cairn_error *err, const char *what)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return fail(d, err, what);
	return 0;
}

int mon_db_server(struct mon_db *d, const char *url, int64_t *id, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "INSERT OR IGNORE INTO servers(url) VALUES(?)", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
	if ((rc = done(d, st, err, "add a server")) < 0 ||
	    (rc = mon_db_prepare(d, "SELECT id FROM servers WHERE url = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return fail(d, err, "find a server");
	}
	*id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return 0;
}

int mon_db_feed_get(struct mon_db *d, int64_t server, char feed[33], uint64_t *seq,
		    struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "SELECT feed, feed_seq FROM servers WHERE id = ?", &st, err)) <
	    0)
		return rc;
	sqlite3_bind_int64(st, 1, server);
	feed[0] = '\0';
	*seq = 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *f = sqlite3_column_text(st, 0);
		snprintf(feed, 33, "%s", f ? (const char *)f : "");
		*seq = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return 0;
}

int mon_db_feed_set(struct mon_db *d, int64_t server, const char *feed, uint64_t seq,
		    struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "UPDATE servers SET feed = ?, feed_seq = ? WHERE id = ?", &st,
				 err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, feed, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)seq);
	sqlite3_bind_int64(st, 3, server);
	return done(d, st, err, "record a feed position");
}

int mon_db_server_status(struct mon_db *d, int64_t server, int has_feed, const char *error,
			 int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	const char *sql =
		error ? "UPDATE servers SET last_error = ?1,"
			" error_since = coalesce(error_since, ?2),"
			" has_feed = CASE WHEN ?3 < 0 THEN has_feed ELSE ?3 END WHERE id = ?4"
		      : "UPDATE servers SET last_error = ?1, error_since = NULL, last_ok = ?2,"
			" has_feed = CASE WHEN ?3 < 0 THEN has_feed ELSE ?3 END WHERE id = ?4";
	if ((rc = mon_db_prepare(d, sql, &st, err)) < 0)
		return rc;
	if (error)
		sqlite3_bind_text(st, 1, error, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 1);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, has_feed);
	sqlite3_bind_int64(st, 4, server);
	return done(d, st, err, "record a server's state");
}

/* One row of an item's history: its verdict became v at now. */
static int history_add(struct mon_db *d, int64_t item, int64_t now, enum cairn_monitor_verdict v,
		       struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = get(d, "INSERT INTO history(item, at, verdict) VALUES(?, ?, ?)", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, (int)v);
	return run(d, st, err, "record a verdict change");
}

int mon_db_item(struct mon_db *d, const char *hash, const char *path, int64_t now, int64_t *id,
		struct cairn_error *err)
{
	/* a new item starts "absent", without history, until settled */
	bool created;
	return mon_db_item_settled(d, hash, path, now, CAIRN_MONITOR_ABSENT, id, &created, err);
}

int mon_db_item_settled(struct mon_db *d, const char *hash, const char *path, int64_t now,
			enum cairn_monitor_verdict v, int64_t *id, bool *created,
			struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = get(d,
		      "INSERT INTO items(hash, path, verdict, verdict_since, first_seen, last_seen,"
		      " diff_state) VALUES(?1, ?2, ?4, ?3, ?3, ?3, ?4 = 1) ON CONFLICT(hash) DO NOTHING",
		      &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_int(st, 4, (int)v);
	if ((rc = run(d, st, err, "add an item")) < 0)
		return rc;
	*created = sqlite3_changes(d->db) == 1;
	if (*created) {
		*id = sqlite3_last_insert_rowid(d->db);
		/* as mon_db_settle records a first verdict other than the
		 * "absent" a new item starts with (and a differing one as to
		 * be diffed: diff_state 1) */
		return v == CAIRN_MONITOR_ABSENT ? 0 : history_add(d, *id, now, v, err);
	}
	if ((rc = get(d, "SELECT id FROM items WHERE hash = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		put(st);
		return fail(d, err, "find an item");
	}
	*id = sqlite3_column_int64(st, 0);
	put(st);
	return 0;
}

int mon_db_observe(struct mon_db *d, int64_t item, int64_t server, const struct mon_obs_in *o,
		   int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	/* first_seen is when the server started saying what it says now */
	if ((rc = get(
		     d,
		     "INSERT INTO obs(item, server, state, sig, nar_hash, nar_size, refs, narinfo,"
		     " first_seen, last_seen) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)"
		     " ON CONFLICT(item, server) DO UPDATE SET"
		     " first_seen = CASE WHEN state IS excluded.state AND sig IS excluded.sig"
		     "  AND nar_hash IS excluded.nar_hash AND nar_size IS excluded.nar_size"
		     "  AND refs IS excluded.refs THEN first_seen ELSE excluded.first_seen END,"
		     " state = excluded.state, sig = excluded.sig, nar_hash = excluded.nar_hash,"
		     " nar_size = excluded.nar_size, refs = excluded.refs,"
		     " narinfo = coalesce(excluded.narinfo, narinfo), last_seen = excluded.last_seen",
		     &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, server);
	sqlite3_bind_int(st, 3, (int)o->state);
	sqlite3_bind_int(st, 4, (int)o->sig);
	if (o->state == CAIRN_MONITOR_PRESENT) {
		sqlite3_bind_text(st, 5, o->nar_hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, (int64_t)o->nar_size);
		sqlite3_bind_text(st, 7, o->refs ? o->refs : "", -1, SQLITE_STATIC);
	}
	if (o->narinfo)
		sqlite3_bind_text(st, 8, o->narinfo, (int)o->narinfo_len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, now);
	return run(d, st, err, "record an observation");
}

int mon_db_settle(struct mon_db *d, int64_t item, int64_t now, enum cairn_monitor_verdict *v,
		  bool *changed, struct cairn_error *err)
{
	struct cairn_monitor_obs obs[CAIRN_MONITOR_MAX_SERVERS];
	char *strs[CAIRN_MONITOR_MAX_SERVERS * 2];
	size_t n = 0;
	sqlite3_stmt *st;
	int rc, old = -1;

	if ((rc = get(d,
				 "SELECT state, sig, nar_hash, nar_size, refs FROM obs WHERE item = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	while (n < CAIRN_MONITOR_MAX_SERVERS && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *h = sqlite3_column_text(st, 2), *r = sqlite3_column_text(st, 4);
		strs[2 * n] = h ? strdup((const char *)h) : NULL;
		strs[2 * n + 1] = r ? strdup((const char *)r) : NULL;
		obs[n] = (struct cairn_monitor_obs){
			.state = (enum cairn_monitor_state)sqlite3_column_int(st, 0),
			.sig = (enum cairn_monitor_sig)sqlite3_column_int(st, 1),
			.nar_hash = strs[2 * n],
			.nar_size = (uint64_t)sqlite3_column_int64(st, 3),
			.refs = strs[2 * n + 1],
		};
		n++;
	}
	put(st);
	*v = cairn_monitor_decide(obs, n);
	for (size_t i = 0; i < 2 * n; i++)
		free(strs[i]);

	if ((rc = get(d, "SELECT verdict FROM items WHERE id = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	if (sqlite3_step(st) == SQLITE_ROW)
		old = sqlite3_column_int(st, 0);
	put(st);
	/* a new item starts "absent" (without history): its first verdict
	 * other than that is its first change */
	*changed = old != (int)*v;
	if ((rc = get(
		     d,
		     "UPDATE items SET last_seen = ?2,"
		     " verdict_since = CASE WHEN verdict = ?3 THEN verdict_since ELSE ?2 END,"
		     " diff_state = CASE WHEN ?3 = 1 AND verdict <> 1 THEN 1"
		     "  WHEN ?3 <> 1 THEN 0 ELSE diff_state END,"
		     " diff_tries = CASE WHEN ?3 = verdict THEN diff_tries ELSE 0 END,"
		     " verdict = ?3 WHERE id = ?1",
		     &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int(st, 3, (int)*v);
	if ((rc = run(d, st, err, "record a verdict")) < 0)
		return rc;
	return *changed ? history_add(d, item, now, *v, err) : 0;
}

int mon_db_trends(struct mon_db *d, int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	/* WHERE true: an upsert's SELECT needs one (SQLite's parser) */
	if ((rc = get(d,
		      "INSERT INTO pair_trend SELECT ?1 / 86400, a, b, both_have, agree"
		      " FROM pair_counts WHERE true ON CONFLICT(day, a, b) DO UPDATE SET"
		      " both_have = excluded.both_have, agree = excluded.agree"
		      " WHERE both_have IS NOT excluded.both_have OR agree IS NOT excluded.agree",
		      &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now);
	if ((rc = run(d, st, err, "record the pairs' trend")) < 0 ||
	    (rc = get(d,
		      "INSERT INTO verdict_trend SELECT ?1 / 86400, verdict, n FROM verdict_counts"
		      " WHERE true ON CONFLICT(day, verdict) DO UPDATE SET n = excluded.n"
		      " WHERE n IS NOT excluded.n",
		      &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now);
	return run(d, st, err, "record the verdicts' trend");
}

int mon_db_monitor_id(struct mon_db *d, char id[33], struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "SELECT v FROM meta WHERE k = 'monitor'", &st, err)) < 0)
		return rc;
	rc = CAIRN_ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
		memcpy(id, sqlite3_column_text(st, 0), 32);
		id[32] = '\0';
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc < 0 ? fail(d, err, "read the monitor's id") : 0;
}

int mon_db_changed(struct mon_db *d, int64_t item, int64_t server, int64_t now, bool *changed,
		   struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = get(d, "SELECT first_seen FROM obs WHERE item = ? AND server = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, server);
	*changed = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == now;
	put(st);
	return 0;
}

int mon_db_log_append(struct mon_db *d, int64_t now, const char *server, const char *hash,
		      const struct mon_obs_in *o, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = get(d,
		      "INSERT INTO log(at, server, hash, state, nar_hash, nar_size)"
		      " VALUES(?, ?, ?, ?, ?, ?)",
		      &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_text(st, 2, server, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, cairn_monitor_state_name(o->state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, o->state == CAIRN_MONITOR_PRESENT ? o->nar_hash : "-", -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, o->state == CAIRN_MONITOR_PRESENT ? (int64_t)o->nar_size : 0);
	return run(d, st, err, "append to the log");
}

int mon_db_peer_clear(struct mon_db *d, const char *peer, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "DELETE FROM peer_obs WHERE peer = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	return done(d, st, err, "forget a peer's log");
}

int mon_db_peer_put(struct mon_db *d, const char *peer, const char *monitor,
		    const struct cairn_monitor_log_entry *e, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = get(d,
		      "INSERT OR REPLACE INTO peer_obs(peer, monitor, seq, at, server, hash, state,"
		      " nar_hash, nar_size) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
		      &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, monitor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)e->seq);
	sqlite3_bind_int64(st, 4, e->at);
	sqlite3_bind_text(st, 5, e->server, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, e->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, e->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, e->nar_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, (int64_t)e->nar_size);
	return run(d, st, err, "record a peer's observation");
}

int mon_db_each_item(struct mon_db *d, int (*fn)(void *ctx, const char *path), void *ctx,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, s;
	if ((rc = mon_db_prepare(d, "SELECT path FROM items ORDER BY id", &st, err)) < 0)
		return rc;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *p = sqlite3_column_text(st, 0);
		if (p && (rc = fn(ctx, (const char *)p)) < 0)
			break;
	}
	sqlite3_finalize(st);
	if (rc == 0 && s != SQLITE_DONE)
		return fail(d, err, "list the items");
	return rc;
}

int mon_db_path_of(struct mon_db *d, const char *hash, char *out, size_t cap,
		   struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "SELECT path FROM items WHERE hash = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	rc = CAIRN_ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int mon_db_diff_todo(struct mon_db *d, size_t max, int64_t *ids, char **paths, size_t *n,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	*n = 0;
	if ((rc = mon_db_prepare(d,
				 "SELECT id, path FROM items WHERE verdict = 1 AND diff_state = 1"
				 " ORDER BY verdict_since DESC, id DESC LIMIT ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)max);
	while (*n < max && sqlite3_step(st) == SQLITE_ROW) {
		ids[*n] = sqlite3_column_int64(st, 0);
		paths[*n] = strdup((const char *)sqlite3_column_text(st, 1));
		if (!paths[*n]) {
			sqlite3_finalize(st);
			return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
		}
		(*n)++;
	}
	sqlite3_finalize(st);
	return 0;
}

int mon_db_diff_clear(struct mon_db *d, int64_t item, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "DELETE FROM diffs WHERE item = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	if ((rc = done(d, st, err, "clear a diff")) < 0 ||
	    (rc = mon_db_prepare(d, "DELETE FROM diffoscope WHERE item = ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	return done(d, st, err, "clear a diffoscope report");
}

int mon_db_diffoscope_put(struct mon_db *d, int64_t item, int64_t a_server, int64_t b_server,
			  const void *html, size_t len, const char *note, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d,
				 "INSERT OR REPLACE INTO diffoscope(item, a_server, b_server, html,"
				 " note) VALUES(?, ?, ?, ?, ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, a_server);
	sqlite3_bind_int64(st, 3, b_server);
	if (html)
		sqlite3_bind_blob64(st, 4, html, len, SQLITE_STATIC);
	if (note && note[0])
		sqlite3_bind_text(st, 5, note, -1, SQLITE_STATIC);
	return done(d, st, err, "record a diffoscope report");
}

static void bind_file(sqlite3_stmt *st, int col, const struct mon_file *f)
{
	if (!f || !f->type)
		return;
	sqlite3_bind_text(st, col, f->type, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, col + 1, (int64_t)f->size);
	if (f->sha256)
		sqlite3_bind_text(st, col + 2, f->sha256, -1, SQLITE_STATIC);
	if (f->target)
		sqlite3_bind_text(st, col + 3, f->target, -1, SQLITE_STATIC);
}

int mon_db_diff_put(struct mon_db *d, int64_t item, int64_t a_server, int64_t b_server,
		    const char *path, const char *change, const struct mon_file *a,
		    const struct mon_file *b, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d,
				 "INSERT INTO diffs(item, a_server, b_server, path, change, a_type,"
				 " a_size, a_sha256, a_target, b_type, b_size, b_sha256, b_target)"
				 " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	sqlite3_bind_int64(st, 2, a_server);
	sqlite3_bind_int64(st, 3, b_server);
	sqlite3_bind_text(st, 4, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, change, -1, SQLITE_STATIC);
	bind_file(st, 6, a);
	bind_file(st, 10, b);
	return done(d, st, err, "record a diff");
}

int mon_db_diff_done(struct mon_db *d, int64_t item, enum mon_diff_state state, const char *note,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d,
				 "UPDATE items SET diff_state = ?1, diff_note = ?2,"
				 " diff_tries = diff_tries + 1 WHERE id = ?3",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)state);
	if (note)
		sqlite3_bind_text(st, 2, note, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, item);
	return done(d, st, err, "record a diff's state");
}

int mon_db_prune(struct mon_db *d, int64_t keep_s, int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	int64_t before = now - keep_s;
	static const char *const sql[] = {
		"DELETE FROM history WHERE at < ?1",
		"DELETE FROM obs WHERE item IN (SELECT id FROM items WHERE verdict = 5"
		" AND verdict_since < ?1)",
		"DELETE FROM diffs WHERE item IN (SELECT id FROM items WHERE verdict = 5"
		" AND verdict_since < ?1)",
		"DELETE FROM diffoscope WHERE item IN (SELECT id FROM items WHERE verdict = 5"
		" AND verdict_since < ?1)",
		"DELETE FROM items WHERE verdict = 5 AND verdict_since < ?1",
	};
	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if ((rc = mon_db_prepare(d, sql[i], &st, err)) < 0)
			return rc;
		sqlite3_bind_int64(st, 1, before);
		if ((rc = done(d, st, err, "prune")) < 0)
			return rc;
	}
	return 0;
}

int mon_db_verdict_counts(struct mon_db *d, uint64_t *n, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, s;
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		n[v] = 0;
	if ((rc = mon_db_prepare(d, "SELECT verdict, n FROM verdict_counts", &st, err)) < 0)
		return rc;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		int v = sqlite3_column_int(st, 0);
		int64_t k = sqlite3_column_int64(st, 1);
		if (v >= 0 && v < CAIRN_MONITOR_VERDICTS_ && k > 0)
			n[v] = (uint64_t)k;
	}
	sqlite3_finalize(st);
	return s == SQLITE_DONE ? 0 : fail(d, err, "read the counts per verdict");
}

int mon_db_diff_retry(struct mon_db *d, int max_tries, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d,
				 "UPDATE items SET diff_state = 1 WHERE verdict = 1 AND diff_state = 3"
				 " AND diff_tries < ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int(st, 1, max_tries);
	return done(d, st, err, "retry the failed diffs");
}

int mon_db_peer_log_get(struct mon_db *d, const char *peer, char monitor[33], uint64_t *count,
			char chain[65], struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "SELECT monitor, count, chain FROM peer_logs WHERE peer = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	rc = CAIRN_ENOENT;
	if (sqlite3_step(st) == SQLITE_ROW) {
		snprintf(monitor, 33, "%s", (const char *)sqlite3_column_text(st, 0));
		*count = (uint64_t)sqlite3_column_int64(st, 1);
		snprintf(chain, 65, "%s", (const char *)sqlite3_column_text(st, 2));
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

int mon_db_peer_log_set(struct mon_db *d, const char *peer, const char *monitor, uint64_t count,
			const char *chain, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(d, "INSERT OR REPLACE INTO peer_logs VALUES(?, ?, ?, ?)", &st,
				 err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, monitor, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)count);
	sqlite3_bind_text(st, 4, chain, -1, SQLITE_STATIC);
	return done(d, st, err, "record a peer's log");
}
