/*
 * nicache.c - the narinfo cache in SQLite (layout in include/cairn/nicache.h).
 *
 * Every write runs inside a BEGIN IMMEDIATE transaction: the caller's
 * batch when one is open, else one of its own, so that the server row and
 * the entry are written together and a lone put costs one commit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "cairn/nicache.h"
#include "cairn/storepath.h"
#include "nicache-int.h"
#include "cairn/banned.h"

#define SCHEMA_VERSION 2

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS servers ("
    " id integer primary key, url text unique not null,"
    " info text, info_expires integer, down_until integer, down_reason text);"
    "CREATE TABLE IF NOT EXISTS narinfos ("
    " server integer not null, hashpart text not null, present integer not null,"
    " text text, fetched integer not null, expires integer not null,"
    " primary key (server, hashpart)) without rowid;"
    "CREATE INDEX IF NOT EXISTS narinfos_expires ON narinfos(expires);"
    "CREATE TABLE IF NOT EXISTS meta (key text primary key, value integer);"
    /* A server whose bytes failed verification: asked last, for a while. */
    "CREATE TABLE IF NOT EXISTS demotions (url text primary key, until integer not null,"
    " reason text not null);"
    /* What a server's downloads were measured at (version 2). */
    "CREATE TABLE IF NOT EXISTS speeds (url text primary key, rate integer not null,"
    " rtt_ms integer not null, updated integer not null);"
    "PRAGMA user_version = 2;";

enum stmt_id {
	S_ADD_SERVER,
	S_LOOKUP,
	S_PUT_NARINFO,
	S_PUT_DOWN,
	S_IS_DOWN,
	S_PUT_INFO,
	S_GET_INFO,
	S_PUT_DEMOTED,
	S_IS_DEMOTED,
	S_PUT_SPEED,
	S_GET_SPEED,
	S_COUNT_
};

static const char *const stmt_sql[S_COUNT_] = {
    [S_ADD_SERVER] = "INSERT INTO servers(url) VALUES (?1) ON CONFLICT(url) DO NOTHING",
    [S_LOOKUP] = "SELECT n.present, n.text FROM narinfos n JOIN servers s ON s.id = n.server"
		 " WHERE s.url = ?1 AND n.hashpart = ?2 AND n.expires > ?3",
    [S_PUT_NARINFO] = "INSERT OR REPLACE INTO narinfos"
		      "(server, hashpart, present, text, fetched, expires)"
		      " VALUES ((SELECT id FROM servers WHERE url = ?1), ?2, ?3, ?4, ?5, ?6)",
    [S_PUT_DOWN] = "UPDATE servers SET down_until = ?2, down_reason = ?3 WHERE url = ?1",
    [S_IS_DOWN] = "SELECT down_reason FROM servers WHERE url = ?1 AND down_until > ?2",
    [S_PUT_INFO] = "UPDATE servers SET info = ?2, info_expires = ?3 WHERE url = ?1",
    [S_GET_INFO] = "SELECT info FROM servers WHERE url = ?1 AND info_expires > ?2"
		   " AND info IS NOT NULL",
    [S_PUT_DEMOTED] = "INSERT OR REPLACE INTO demotions(url, until, reason) VALUES (?1, ?2, ?3)",
    [S_IS_DEMOTED] = "SELECT reason FROM demotions WHERE url = ?1 AND until > ?2",
    /* one slow run should not bury a good server: the old figure weighs half */
    [S_PUT_SPEED] = "INSERT INTO speeds(url, rate, rtt_ms, updated) VALUES (?1, ?2, ?3, ?4)"
		    " ON CONFLICT(url) DO UPDATE SET rate = (rate + excluded.rate) / 2,"
		    " rtt_ms = CASE excluded.rtt_ms WHEN 0 THEN rtt_ms"
		    " ELSE (rtt_ms + excluded.rtt_ms) / 2 END, updated = excluded.updated",
    [S_GET_SPEED] = "SELECT rate, rtt_ms FROM speeds WHERE url = ?1",
};

struct cairn_nicache {
	sqlite3 *db;
	sqlite3_stmt *stmt[S_COUNT_];
	struct cairn_nicache_config cfg;
	char *path;
	int in_batch;
};

void cairn_nicache_config_init(struct cairn_nicache_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->path = NULL;
	cfg->positive_ttl = 30 * 24 * 3600;
	cfg->negative_ttl = 3600;
	cfg->info_ttl = 7 * 24 * 3600;
	cfg->down_ttl = 600;
	cfg->demote_ttl = 24 * 3600;
	cfg->busy_timeout_ms = 5000;
}

int cairn_nicache_default_path(char **out, struct cairn_error *err)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	const char *base, *rest;
	size_t n;
	char *p;

	if (xdg && xdg[0] == '/') {
		base = xdg;
		rest = "/cairn/narinfo.sqlite";
	} else if (home && home[0] == '/') {
		base = home;
		rest = "/.cache/cairn/narinfo.sqlite";
	} else {
		return cairn_error_set(
		    err, CAIRN_ENOENT,
		    "nicache: neither XDG_CACHE_HOME nor HOME is an absolute path");
	}
	if (strlen(base) > 4096)
		return cairn_error_set(err, CAIRN_ELIMIT, "nicache: cache directory path too long");
	n = strlen(base) + strlen(rest) + 1;
	p = malloc(n);
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
	snprintf(p, n, "%s%s", base, rest);
	*out = p;
	return 0;
}

/* mkdir -p of the directory holding path; new directories are 0700
 * because what a user fetched is nobody else's business. */
static int make_parent_dirs(const char *path, struct cairn_error *err)
{
	char *d = strdup(path), *s;
	int rc = 0;

	if (!d)
		return cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
	s = strrchr(d, '/');
	if (!s || s == d)
		goto out;
	*s = '\0';
	for (s = d + 1;; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(d, 0700) < 0 && errno != EEXIST) {
				rc = cairn_error_errno(err, errno, "nicache: mkdir '%s'", d);
				goto out;
			}
			*s = c;
			if (c == '\0')
				break;
		}
	}
out:
	free(d);
	return rc;
}

static int sql_fail(struct cairn_nicache *c, struct cairn_error *err, const char *what)
{
	return cairn_error_set(err, CAIRN_EIO, "nicache: %s: %s: %s", c->path, what,
			       sqlite3_errmsg(c->db));
}

static int exec(struct cairn_nicache *c, const char *sql, struct cairn_error *err)
{
	if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sql_fail(c, err, sql);
	return 0;
}

static int64_t query_int(struct cairn_nicache *c, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return dflt;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* 1 when the first column of the first row of sql equals want. */
static int query_text_is(struct cairn_nicache *c, const char *sql, const char *want)
{
	sqlite3_stmt *st;
	int is = 0;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *v = sqlite3_column_text(st, 0);
		is = v && strcmp((const char *)v, want) == 0;
	}
	sqlite3_finalize(st);
	return is;
}

static int purge_locked(struct cairn_nicache *c, int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	static const char *const sql[] = {
	    "DELETE FROM narinfos WHERE expires <= ?1",
	    "UPDATE servers SET info = NULL, info_expires = NULL WHERE info_expires <= ?1",
	    "UPDATE servers SET down_until = NULL, down_reason = NULL WHERE down_until <= ?1",
	    ("DELETE FROM servers WHERE info IS NULL AND down_until IS NULL AND NOT EXISTS"
	     " (SELECT 1 FROM narinfos WHERE server = servers.id)"),
	    "DELETE FROM demotions WHERE until <= ?1",
	    "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_purge', ?1)",
	};
	int gone = 0;

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (sqlite3_prepare_v2(c->db, sql[i], -1, &st, NULL) != SQLITE_OK)
			return sql_fail(c, err, "purge");
		if (sqlite3_bind_parameter_count(st) > 0)
			sqlite3_bind_int64(st, 1, now);
		if (sqlite3_step(st) != SQLITE_DONE) {
			int rc = sql_fail(c, err, "purge");
			sqlite3_finalize(st);
			return rc;
		}
		if (i == 0)
			gone = sqlite3_changes(c->db);
		sqlite3_finalize(st);
	}
	return gone;
}

void cairn_nicache_free(struct cairn_nicache *c)
{
	if (!c)
		return;
	if (c->in_batch)
		cairn_nicache_rollback(c);
	for (int i = 0; i < S_COUNT_; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close(c->db);
	free(c->path);
	free(c);
}

static int ttl_ok(int64_t t)
{
	return t >= 0 && t <= CAIRN_NICACHE_TTL_MAX;
}

int cairn_nicache_open(struct cairn_nicache **out, const struct cairn_nicache_config *cfg,
		       int64_t now, struct cairn_error *err)
{
	struct cairn_nicache_config dflt;
	struct cairn_nicache *c;
	int rc;
	int64_t version;

	if (!out)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no output");
	if (!cfg) {
		cairn_nicache_config_init(&dflt);
		cfg = &dflt;
	}
	if (!ttl_ok(cfg->positive_ttl) || !ttl_ok(cfg->negative_ttl) || !ttl_ok(cfg->info_ttl) ||
	    !ttl_ok(cfg->down_ttl) || !ttl_ok(cfg->demote_ttl) || cfg->busy_timeout_ms < 0 || now < 0 || now > INT64_MAX / 2)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: invalid settings");
	if (sqlite3_threadsafe() == 0)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "nicache: SQLite is single-threaded");
	c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
	c->cfg = *cfg;
	c->cfg.path = NULL;
	if (cfg->path) {
		if (strlen(cfg->path) > 4096) {
			rc = cairn_error_set(err, CAIRN_ELIMIT, "nicache: path too long");
			goto fail;
		}
		c->path = strdup(cfg->path);
		if (!c->path) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
			goto fail;
		}
	} else if ((rc = cairn_nicache_default_path(&c->path, err)) < 0) {
		goto fail;
	}
	if ((rc = make_parent_dirs(c->path, err)) < 0)
		goto fail;
	if (sqlite3_open_v2(c->path, &c->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		rc = c->db ? sql_fail(c, err, "open")
			   : cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(c->db, cfg->busy_timeout_ms);
	/* Switching to WAL needs an exclusive lock: only ask when needed,
	 * so opening never waits for another process's batch. */
	if (query_text_is(c, "PRAGMA journal_mode", "wal") == 0 &&
	    (rc = exec(c, "PRAGMA journal_mode = WAL", err)) < 0)
		goto fail;
	/* A cache: losing the last commits in a power cut costs a refetch,
	 * so NORMAL (no fsync per commit in WAL mode) is enough. */
	if ((rc = exec(c, "PRAGMA synchronous = NORMAL", err)) < 0)
		goto fail;
	version = query_int(c, "PRAGMA user_version", -1);
	if (version < 0) {
		rc = sql_fail(c, err, "read schema version");
		goto fail;
	}
	if (version > SCHEMA_VERSION) {
		rc = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				     "nicache: %s: schema version %lld is newer than %d", c->path,
				     (long long)version, SCHEMA_VERSION);
		goto fail;
	}
	if (version < SCHEMA_VERSION) {
		if ((rc = exec(c, "BEGIN IMMEDIATE", err)) < 0)
			goto fail;
		/* CREATE ... IF NOT EXISTS: a racing opener may have won. */
		if ((rc = exec(c, schema_sql, err)) < 0 || (rc = purge_locked(c, now, err)) < 0 ||
		    (rc = exec(c, "COMMIT", err)) < 0) {
			exec(c, "ROLLBACK", NULL);
			goto fail;
		}
	} else if (query_int(c, "SELECT value FROM meta WHERE key = 'last_purge'", 0) <=
		   now - CAIRN_NICACHE_PURGE_INTERVAL) {
		/* Housekeeping only: when another process holds the write
		 * lock, leave it for next time. */
		if (exec(c, "BEGIN IMMEDIATE", NULL) == 0) {
			if (purge_locked(c, now, NULL) < 0 || exec(c, "COMMIT", NULL) < 0)
				exec(c, "ROLLBACK", NULL);
		}
	}
	for (int i = 0; i < S_COUNT_; i++) {
		if (sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &c->stmt[i], NULL) != SQLITE_OK) {
			rc = sql_fail(c, err, "prepare");
			goto fail;
		}
	}
	*out = c;
	return 0;
fail:
	cairn_nicache_free(c);
	return rc;
}

/* ---- argument checks ------------------------------------------------------ */

static int check_url(const char *url, struct cairn_error *err)
{
	size_t n;

	if (!url || !url[0])
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no server url");
	n = strnlen(url, CAIRN_NICACHE_URL_MAX + 1);
	if (n > CAIRN_NICACHE_URL_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "nicache: server url longer than %d bytes",
				       CAIRN_NICACHE_URL_MAX);
	return 0;
}

static int check_hashpart(const char *h, struct cairn_error *err)
{
	if (!h)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no hash part");
	if (!cairn_store_hash_valid(h, strnlen(h, CAIRN_STORE_HASH_LEN + 1)))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "nicache: '%.40s' is not a 32-character nix32 hash part", h);
	return 0;
}

static int check_text(const char *text, size_t len, struct cairn_error *err)
{
	if (!text)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no text");
	if (len > CAIRN_NICACHE_TEXT_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "nicache: text longer than %u bytes",
				       CAIRN_NICACHE_TEXT_MAX);
	if (memchr(text, '\0', len))
		return cairn_error_set(err, CAIRN_EFORMAT, "nicache: text contains a NUL byte");
	return 0;
}

static int64_t expiry(int64_t now, int64_t max_age, int64_t dflt)
{
	int64_t ttl = max_age >= 0 ? max_age : dflt;

	if (ttl > CAIRN_NICACHE_TTL_MAX)
		ttl = CAIRN_NICACHE_TTL_MAX;
	return now + ttl;
}

static int check_now(int64_t now, struct cairn_error *err)
{
	if (now < 0 || now > INT64_MAX / 2)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: time out of range");
	return 0;
}

/* ---- statements ------------------------------------------------------------- */

static sqlite3_stmt *stmt(struct cairn_nicache *c, enum stmt_id id)
{
	sqlite3_reset(c->stmt[id]);
	sqlite3_clear_bindings(c->stmt[id]);
	return c->stmt[id];
}

static int step_done(struct cairn_nicache *c, sqlite3_stmt *st, struct cairn_error *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		rc = sql_fail(c, err, "write");
		sqlite3_reset(st);
		return rc;
	}
	sqlite3_reset(st);
	return 0;
}

/* Open a write transaction unless a batch is open; *own says whether to
 * close it. */
static int write_begin(struct cairn_nicache *c, int *own, struct cairn_error *err)
{
	*own = !c->in_batch;
	return *own ? exec(c, "BEGIN IMMEDIATE", err) : 0;
}

static int write_end(struct cairn_nicache *c, int own, int rc, struct cairn_error *err)
{
	if (!own)
		return rc;
	if (rc == 0 && (rc = exec(c, "COMMIT", err)) == 0)
		return 0;
	exec(c, "ROLLBACK", NULL);
	return rc;
}

static int add_server(struct cairn_nicache *c, const char *url, struct cairn_error *err)
{
	sqlite3_stmt *st = stmt(c, S_ADD_SERVER);

	sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
	return step_done(c, st, err);
}

/* A text column as a malloc'ed NUL-terminated copy, checked as on write
 * (another program may have written the file). */
static int column_text(struct cairn_nicache *c, sqlite3_stmt *st, int col, char **text, size_t *len,
		       struct cairn_error *err)
{
	const unsigned char *p = sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	char *copy;

	if (!p || n < 0 || (size_t)n > CAIRN_NICACHE_TEXT_MAX || memchr(p, '\0', (size_t)n))
		return cairn_error_set(err, CAIRN_EFORMAT, "nicache: %s: malformed cached text",
				       c->path);
	copy = malloc((size_t)n + 1);
	if (!copy)
		return cairn_error_set(err, CAIRN_ENOMEM, "nicache: out of memory");
	memcpy(copy, p, (size_t)n);
	copy[n] = '\0';
	*text = copy;
	if (len)
		*len = (size_t)n;
	return 0;
}

/* ---- narinfos -------------------------------------------------------------- */

int cairn_nicache_lookup(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			 int64_t now, char **text, size_t *len, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!c || !text)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_hashpart(hashpart, err)) < 0 ||
	    (rc = check_now(now, err)) < 0)
		return rc;
	st = stmt(c, S_LOOKUP);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hashpart, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = CAIRN_NICACHE_UNKNOWN;
	} else if (rc != SQLITE_ROW) {
		rc = sql_fail(c, err, "lookup");
	} else if (sqlite3_column_int(st, 0) == 0) {
		rc = CAIRN_NICACHE_ABSENT;
	} else {
		rc = column_text(c, st, 1, text, len, err);
		if (rc == 0)
			rc = CAIRN_NICACHE_PRESENT;
	}
	sqlite3_reset(st);
	return rc;
}

static int put_narinfo(struct cairn_nicache *c, const char *url, const char *hashpart,
		       const char *text, size_t len, int64_t now, int64_t expires,
		       struct cairn_error *err)
{
	sqlite3_stmt *st;
	int own, rc;

	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	if ((rc = add_server(c, url, err)) == 0) {
		st = stmt(c, S_PUT_NARINFO);
		sqlite3_bind_text(st, 1, url, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, hashpart, 32, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, text != NULL);
		if (text)
			sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_int64(st, 6, expires);
		rc = step_done(c, st, err);
	}
	return write_end(c, own, rc, err);
}

int cairn_nicache_put_present(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			      const char *text, size_t len, int64_t now, int64_t max_age,
			      struct cairn_error *err)
{
	int rc;

	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_hashpart(hashpart, err)) < 0 ||
	    (rc = check_text(text, len, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	return put_narinfo(c, server_url, hashpart, text, len, now,
			   expiry(now, max_age, c->cfg.positive_ttl), err);
}

int cairn_nicache_put_absent(struct cairn_nicache *c, const char *server_url, const char *hashpart,
			     int64_t now, int64_t max_age, struct cairn_error *err)
{
	int rc;

	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_hashpart(hashpart, err)) < 0 ||
	    (rc = check_now(now, err)) < 0)
		return rc;
	return put_narinfo(c, server_url, hashpart, NULL, 0, now,
			   expiry(now, max_age, c->cfg.negative_ttl), err);
}

/* ---- servers ----------------------------------------------------------------- */

int cairn_nicache_put_down(struct cairn_nicache *c, const char *server_url, const char *reason,
			   int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	size_t rlen;
	int own, rc;

	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	if (!reason)
		reason = "";
	rlen = strnlen(reason, CAIRN_NICACHE_REASON_MAX);
	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	if ((rc = add_server(c, server_url, err)) == 0) {
		st = stmt(c, S_PUT_DOWN);
		sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, expiry(now, -1, c->cfg.down_ttl));
		sqlite3_bind_text(st, 3, reason, (int)rlen, SQLITE_STATIC);
		rc = step_done(c, st, err);
	}
	return write_end(c, own, rc, err);
}

int cairn_nicache_put_demoted(struct cairn_nicache *c, const char *server_url,
			      const char *reason, int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int own, rc;
	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	if (!reason)
		reason = "";
	size_t rlen = strnlen(reason, CAIRN_NICACHE_REASON_MAX);
	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	st = stmt(c, S_PUT_DEMOTED);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, expiry(now, -1, c->cfg.demote_ttl));
	sqlite3_bind_text(st, 3, reason, (int)rlen, SQLITE_STATIC);
	rc = step_done(c, st, err);
	return write_end(c, own, rc, err);
}

/* A server's demotion or down mark: 1 (with its reason) while it lasts. */
static int server_mark(struct cairn_nicache *c, enum stmt_id which, const char *server_url, int64_t now,
		       char **reason, struct cairn_error *err)
{
	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	int rc;
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	sqlite3_stmt *st = stmt(c, which);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
	} else if (rc != SQLITE_ROW) {
		rc = sql_fail(c, err, "lookup");
	} else {
		rc = reason ? column_text(c, st, 0, reason, NULL, err) : 0;
		if (rc == 0)
			rc = 1;
	}
	sqlite3_reset(st);
	return rc;
}

int cairn_nicache_is_demoted(struct cairn_nicache *c, const char *server_url, int64_t now,
			     char **reason, struct cairn_error *err)
{
	return server_mark(c, S_IS_DEMOTED, server_url, now, reason, err);
}

int cairn_nicache_is_down(struct cairn_nicache *c, const char *server_url, int64_t now,
			  char **reason, struct cairn_error *err)
{
	return server_mark(c, S_IS_DOWN, server_url, now, reason, err);
}

int cairn_nicache_put_speed(struct cairn_nicache *c, const char *server_url, uint64_t rate,
			    uint64_t rtt_ms, int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int own, rc;
	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	if (rate > INT64_MAX || rtt_ms > INT64_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: speed out of range");
	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	st = stmt(c, S_PUT_SPEED);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)rate);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)rtt_ms);
	sqlite3_bind_int64(st, 4, now);
	rc = step_done(c, st, err);
	return write_end(c, own, rc, err);
}

int cairn_nicache_get_speed(struct cairn_nicache *c, const char *server_url, uint64_t *rate,
			    uint64_t *rtt_ms, struct cairn_error *err)
{
	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	int rc;
	if ((rc = check_url(server_url, err)) < 0)
		return rc;
	sqlite3_stmt *st = stmt(c, S_GET_SPEED);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
	} else if (rc != SQLITE_ROW) {
		rc = sql_fail(c, err, "lookup");
	} else {
		sqlite3_int64 r = sqlite3_column_int64(st, 0), t = sqlite3_column_int64(st, 1);
		*rate = r > 0 ? (uint64_t)r : 0;
		*rtt_ms = t > 0 ? (uint64_t)t : 0;
		rc = 1;
	}
	sqlite3_reset(st);
	return rc;
}

int cairn_nicache_put_info(struct cairn_nicache *c, const char *server_url, const char *text,
			   size_t len, int64_t now, int64_t max_age, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int own, rc;

	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_text(text, len, err)) < 0 ||
	    (rc = check_now(now, err)) < 0)
		return rc;
	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	if ((rc = add_server(c, server_url, err)) == 0) {
		st = stmt(c, S_PUT_INFO);
		sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, expiry(now, max_age, c->cfg.info_ttl));
		rc = step_done(c, st, err);
	}
	return write_end(c, own, rc, err);
}

int cairn_nicache_get_info(struct cairn_nicache *c, const char *server_url, int64_t now,
			   char **text, size_t *len, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;

	if (!c || !text)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_url(server_url, err)) < 0 || (rc = check_now(now, err)) < 0)
		return rc;
	st = stmt(c, S_GET_INFO);
	sqlite3_bind_text(st, 1, server_url, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		rc = 0;
	} else if (rc != SQLITE_ROW) {
		rc = sql_fail(c, err, "lookup");
	} else {
		rc = column_text(c, st, 0, text, len, err);
		if (rc == 0)
			rc = 1;
	}
	sqlite3_reset(st);
	return rc;
}

/* ---- batches and purging ------------------------------------------------------ */

int cairn_nicache_begin(struct cairn_nicache *c, struct cairn_error *err)
{
	int rc;

	if (!c || c->in_batch)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: a batch is already open");
	if ((rc = exec(c, "BEGIN IMMEDIATE", err)) < 0)
		return rc;
	c->in_batch = 1;
	return 0;
}

int cairn_nicache_commit(struct cairn_nicache *c, struct cairn_error *err)
{
	int rc;

	if (!c || !c->in_batch)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no batch is open");
	c->in_batch = 0;
	if ((rc = exec(c, "COMMIT", err)) < 0)
		exec(c, "ROLLBACK", NULL);
	return rc;
}

void cairn_nicache_rollback(struct cairn_nicache *c)
{
	if (!c || !c->in_batch)
		return;
	c->in_batch = 0;
	exec(c, "ROLLBACK", NULL);
}

int cairn_nicache_purge(struct cairn_nicache *c, int64_t now, struct cairn_error *err)
{
	int own, rc;

	if (!c)
		return cairn_error_set(err, CAIRN_EINVAL, "nicache: no handle");
	if ((rc = check_now(now, err)) < 0)
		return rc;
	if ((rc = write_begin(c, &own, err)) < 0)
		return rc;
	rc = purge_locked(c, now, err);
	if (rc < 0)
		return write_end(c, own, rc, err);
	return write_end(c, own, 0, err) < 0 ? CAIRN_EIO : rc;
}
