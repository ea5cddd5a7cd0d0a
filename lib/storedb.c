/*
 * storedb.c - read-only queries on a Nix or Guix store database.
 *
 * Design.  Each public call is one short read transaction (BEGIN ... COMMIT)
 * on a handle owned by one thread; statements are prepared once per handle
 * and reset before the transaction ends, so nothing holds a snapshot between
 * calls.  Rows are validated field by field before anything is copied out,
 * because the values end up in narinfo lines served to the network.
 *
 * The immutable fallback (see storedb.h) lives in storedb_enter(): before a
 * call it notices a -wal file that appeared and returns to normal read-only
 * mode; a path lookup that fails because SQLite cannot set up WAL read
 * access reopens once and retries.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "cairn/storedb.h"
#include "cairn/storepath.h"
#include "storedb-int.h"
#include "storedb-sql.h"
#include "cairn/banned.h"

#define HASHPART_LEN 32
/* Seconds between attempts to leave the immutable fallback that failed. */
#define RECONNECT_INTERVAL 1
void cairn_storedb_config_init(struct cairn_storedb_config *cfg, enum cairn_storedb_kind kind)
{
	if (kind == CAIRN_STOREDB_GUIX) {
		cfg->store_dir = "/gnu/store";
		cfg->db_path = "/var/guix/db/db.sqlite";
	} else {
		cfg->store_dir = "/nix/store";
		cfg->db_path = "/nix/var/nix/db/db.sqlite";
	}
	cfg->busy_timeout_ms = CAIRN_STOREDB_BUSY_TIMEOUT_MS;
	cfg->flags = 0;
}

int cairn_storedb_is_immutable(const struct cairn_storedb *db)
{
	return db->immutable;
}

const char *cairn_storedb_store_dir(const struct cairn_storedb *db)
{
	return db->store_dir;
}

/* Copy at most QUOTE_MAX bytes of s for a message, '?' for unprintables. */
void storedb_quote(char out[QUOTE_MAX + 4], const char *s, size_t len)
{
	size_t n = len < QUOTE_MAX ? len : QUOTE_MAX, i;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (len > n) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

int storedb_sql_fail(struct cairn_storedb *db, sqlite3 *sql, int rc, const char *what,
		     struct cairn_error *err)
{
	const char *msg = sql ? sqlite3_errmsg(sql) : sqlite3_errstr(rc);
	int code = CAIRN_EIO;
	db->last_rc = sql ? sqlite3_extended_errcode(sql) : rc;
	if (rc == SQLITE_NOMEM)
		code = CAIRN_ENOMEM;
	else if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB)
		code = CAIRN_EFORMAT;
	return cairn_error_set(err, code, "storedb: %s: %s: %s", db->db_path, what, msg);
}

/* ---- validation ------------------------------------------------------- */

static int valid_hashpart(const char *s, size_t len)
{
	return cairn_store_hash_valid(s, len);
}

/* "<store_dir>/<32 nix32>-<name>" under this database's store directory. */
int storedb_valid_store_path(const struct cairn_storedb *db, const char *s, size_t len)
{
	struct cairn_store_path sp;
	if (len <= db->dirlen || memcmp(s, db->store_dir, db->dirlen) != 0 || s[db->dirlen] != '/')
		return 0;
	return cairn_store_path_parse(s, len, db->store_dir, &sp, NULL) == 0;
}

/* Printable ASCII; space allowed only when spaces is set. */
static int valid_text(const char *s, size_t len, int spaces)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || (c == ' ' && !spaces))
			return 0;
	}
	return 1;
}

char *storedb_dup_n(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* ---- open / close ----------------------------------------------------- */

static void finalize_all(struct cairn_storedb *db)
{
	for (int i = 0; i < ST_N_; i++) {
		sqlite3_finalize(db->st[i]);
		db->st[i] = NULL;
	}
}

/* "file:" URI for path: everything but unreserved characters and '/' is
 * percent-encoded so a '?' or '#' in a path is not taken for URI syntax. */
static char *make_uri(const char *path, int immutable)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *suffix = immutable ? "?immutable=1" : "?mode=ro";
	size_t len = strlen(path);
	if (len > (SIZE_MAX - 32) / 3)
		return NULL;
	char *uri = malloc(5 + 3 * len + strlen(suffix) + 1);
	if (!uri)
		return NULL;
	char *p = uri;
	memcpy(p, "file:", 5);
	p += 5;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    strchr("/-._~", c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	memcpy(p, suffix, strlen(suffix) + 1); /* the allocation counted it */
	return uri;
}

/* Fill *set with the columns of table named in want[] (1 when present). */
static int table_columns(struct cairn_storedb *db, sqlite3 *sql, const char *table,
			 const char *const *want, int *set, int nwant, struct cairn_error *err)
{
	char q[64];
	sqlite3_stmt *st = NULL;
	snprintf(q, sizeof(q), "PRAGMA table_info(%s)", table);
	int rc = sqlite3_prepare_v2(sql, q, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return storedb_sql_fail(db, sql, rc, "reading the schema", err);
	for (int i = 0; i < nwant; i++)
		set[i] = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		for (int i = 0; name && i < nwant; i++)
			if (strcmp(name, want[i]) == 0)
				set[i] = 1;
	}
	if (rc != SQLITE_DONE) {
		int r = storedb_sql_fail(db, sql, rc, "reading the schema", err);
		sqlite3_finalize(st);
		return r;
	}
	sqlite3_finalize(st);
	return 0;
}

/*
 * Read the schema in a transaction: the first real read, so this is also
 * where a WAL database that cannot be read in this mode fails.
 * *sqlrc gets the SQLite code of such a failure (0 otherwise).
 */
static int probe_schema(struct cairn_storedb *db, sqlite3 *sql, int *sqlrc, struct cairn_error *err)
{
	static const char *const vp_cols[] = {"id",	 "path",    "hash",	"registrationTime",
					      "deriver", "narSize", "ultimate", "sigs",
					      "ca"};
	static const char *const ref_cols[] = {"referrer", "reference"};
	int vp[9], refs[2], ret = 0;
	sqlite3_stmt *st = NULL;

	*sqlrc = 0;
	int rc = sqlite3_exec(sql, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		*sqlrc = rc;
		return storedb_sql_fail(db, sql, rc, "starting a read", err);
	}
	/* Touch the database: this is the read that sets up WAL access. */
	rc = sqlite3_prepare_v2(sql,
				"SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				"AND name = 'Storables'",
				-1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		*sqlrc = sqlite3_extended_errcode(sql);
		ret = storedb_sql_fail(db, sql, rc, "reading the schema", err);
		goto out;
	}
	if (sqlite3_column_int(st, 0) != 0) {
		ret = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				      "storedb: %s: Refs point at a Storables table; this "
				      "schema is not supported",
				      db->db_path);
		goto out;
	}
	ret = table_columns(db, sql, "ValidPaths", vp_cols, vp, 9, err);
	if (ret)
		goto out;
	ret = table_columns(db, sql, "Refs", ref_cols, refs, 2, err);
	if (ret)
		goto out;
	for (int i = 0; i < 6; i++) {
		if (!vp[i]) {
			ret = cairn_error_set(err, CAIRN_EUNSUPPORTED,
					      "storedb: %s: not a Nix or Guix store database "
					      "(ValidPaths has no column '%s')",
					      db->db_path, vp_cols[i]);
			goto out;
		}
	}
	if (!refs[0] || !refs[1]) {
		ret = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				      "storedb: %s: not a Nix or Guix store database (no Refs "
				      "table with referrer and reference)",
				      db->db_path);
		goto out;
	}
	db->has_ultimate = vp[6];
	db->has_sigs = vp[7];
	db->has_ca = vp[8];
out:
	sqlite3_finalize(st);
	sqlite3_exec(sql, "COMMIT", NULL, NULL, NULL);
	return ret;
}

/* Open a connection in the given mode and check the schema; on success the
 * handle's connection is replaced. */
static int storedb_connect(struct cairn_storedb *db, int immutable, int *sqlrc,
			   struct cairn_error *err)
{
	sqlite3 *sql = NULL;
	int ret = 0, rc;
	char *uri = make_uri(db->db_path, immutable);

	*sqlrc = 0;
	if (!uri)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	rc = sqlite3_open_v2(uri, &sql,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK) {
		*sqlrc = rc;
		ret = storedb_sql_fail(db, sql, rc, "opening", err);
		goto out;
	}
	sqlite3_extended_result_codes(sql, 1);
	sqlite3_busy_timeout(sql, db->busy_ms);
	/* Belt and braces: this connection never writes, and the schema's
	 * triggers and views never run code on our behalf. */
	sqlite3_exec(sql, "PRAGMA query_only = 1", NULL, NULL, NULL);
	sqlite3_exec(sql, "PRAGMA trusted_schema = 0", NULL, NULL, NULL);
	ret = probe_schema(db, sql, sqlrc, err);
	if (ret)
		goto out;
	finalize_all(db);
	sqlite3_close_v2(db->sql);
	db->sql = sql;
	db->immutable = immutable;
	sql = NULL;
out:
	sqlite3_close_v2(sql);
	free(uri);
	return ret;
}

/* The failures SQLite gives when WAL mode needs files it may not create. */
static int wal_access_failure(int sqlrc)
{
	int primary = sqlrc & 0xff;
	return primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN;
}

/* Normal read-only mode, else (when allowed and the reason is WAL access)
 * the immutable fallback. */
static int connect_best(struct cairn_storedb *db, struct cairn_error *err)
{
	struct cairn_error first;
	int sqlrc;
	cairn_error_init(&first);
	int ret = storedb_connect(db, 0, &sqlrc, &first);
	if (ret == 0)
		return 0;
	if ((db->flags & CAIRN_STOREDB_IMMUTABLE_FALLBACK) && wal_access_failure(sqlrc) &&
	    storedb_connect(db, 1, &sqlrc, NULL) == 0)
		return 0;
	return cairn_error_set(err, ret, "%s", first.msg);
}

int cairn_storedb_open(struct cairn_storedb **out, const struct cairn_storedb_config *cfg,
		       struct cairn_error *err)
{
	struct cairn_storedb *db = NULL;
	int ret;

	if (!cfg || !cfg->store_dir || !cfg->db_path || cfg->busy_timeout_ms <= 0)
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: incomplete configuration");
	size_t dirlen = strlen(cfg->store_dir);
	if (dirlen == 0 || dirlen > CAIRN_STOREDB_DIR_MAX || cfg->store_dir[0] != '/' ||
	    cfg->store_dir[dirlen - 1] == '/' || !valid_text(cfg->store_dir, dirlen, 0))
		return cairn_error_set(err, CAIRN_EINVAL,
				       "storedb: store directory '%s' must be an absolute path "
				       "without a trailing slash",
				       cfg->store_dir);
	size_t plen = strlen(cfg->db_path);
	if (plen == 0 || plen > PATH_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: bad database path");
	if (sqlite3_threadsafe() == 0)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "storedb: SQLite was built without thread support");

	db = calloc(1, sizeof(*db));
	if (!db)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	db->store_dir = storedb_dup_n(cfg->store_dir, dirlen);
	db->dirlen = dirlen;
	db->db_path = storedb_dup_n(cfg->db_path, plen);
	db->wal_path = malloc(plen + 5);
	if (!db->store_dir || !db->db_path || !db->wal_path) {
		ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
		goto out;
	}
	memcpy(db->wal_path, cfg->db_path, plen);
	memcpy(db->wal_path + plen, "-wal", 5);
	db->busy_ms = cfg->busy_timeout_ms;
	db->flags = cfg->flags;
	ret = connect_best(db, err);
	if (ret)
		goto out;
	*out = db;
	db = NULL;
out:
	cairn_storedb_free(db);
	return ret;
}

void cairn_storedb_free(struct cairn_storedb *db)
{
	if (!db)
		return;
	finalize_all(db);
	sqlite3_close_v2(db->sql);
	free(db->store_dir);
	free(db->db_path);
	free(db->wal_path);
	free(db);
}

/* ---- transactions ----------------------------------------------------- */

int storedb_prepare(struct cairn_storedb *db, int which, sqlite3_stmt **out,
		    struct cairn_error *err)
{
	char sql[512];
	const char *text = NULL;

	if (db->st[which]) {
		*out = db->st[which];
		return 0;
	}
	switch (which) {
	case ST_BY_RANGE:
	case ST_BY_PATH:
		snprintf(sql, sizeof(sql), STOREDB_SQL_INFO_FMT,
			 db->has_ultimate ? "ultimate" : "NULL", db->has_sigs ? "sigs" : "NULL",
			 db->has_ca ? "ca" : "NULL",
			 which == ST_BY_RANGE ? STOREDB_SQL_WHERE_RANGE : STOREDB_SQL_WHERE_PATH);
		text = sql;
		break;
	case ST_REFS: text = STOREDB_SQL_REFS; break;
	case ST_COUNT: text = STOREDB_SQL_COUNT; break;
	case ST_PAGE: text = STOREDB_SQL_PAGE; break;
	case ST_CLOSURE: text = STOREDB_SQL_CLOSURE; break;
	case ST_RECENT: text = STOREDB_SQL_RECENT; break;
	}
	int rc =
	    sqlite3_prepare_v3(db->sql, text, -1, SQLITE_PREPARE_PERSISTENT, &db->st[which], NULL);
	if (rc != SQLITE_OK)
		return storedb_sql_fail(db, db->sql, rc, "preparing a query", err);
	*out = db->st[which];
	return 0;
}

/*
 * Called before each operation: leave the immutable fallback as soon as a
 * -wal file shows that a writer is active, because from then on the main
 * file alone is no longer the whole database.
 */
void storedb_enter(struct cairn_storedb *db)
{
	struct stat st;
	struct timespec now;
	int sqlrc;
	if (!db->immutable || stat(db->wal_path, &st) != 0)
		return;
	/* When normal mode still cannot be set up (a -wal without a -shm), try
	 * again at most once per RECONNECT_INTERVAL rather than on every call. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (db->retry_after && now.tv_sec < db->retry_after)
		return;
	if (storedb_connect(db, 0, &sqlrc, NULL) == 0)
		db->retry_after = 0;
	else
		db->retry_after = now.tv_sec + RECONNECT_INTERVAL;
}

int storedb_txn_begin(struct cairn_storedb *db, struct cairn_error *err)
{
	int rc = sqlite3_exec(db->sql, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return storedb_sql_fail(db, db->sql, rc, "starting a read", err);
	return 0;
}

/* End the read transaction whatever happened; statements are reset first so
 * that none keeps the snapshot alive. */
void storedb_txn_end(struct cairn_storedb *db)
{
	for (int i = 0; i < ST_N_; i++)
		if (db->st[i]) {
			sqlite3_reset(db->st[i]);
			sqlite3_clear_bindings(db->st[i]);
		}
	if (!sqlite3_get_autocommit(db->sql))
		sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL);
}

/*
 * Retrying.  Every public call runs its work in attempts: when an attempt
 * failed because WAL access went away (the -wal was removed while a normal
 * read-only handle could not recreate it), the handle reconnects -- with
 * the fallback if allowed -- and the call is tried once more.
 */
void storedb_attempt_init(struct cairn_storedb *db, struct cairn_error *e)
{
	cairn_error_init(e);
	db->last_rc = 0;
}

int storedb_retry_after_wal_loss(struct cairn_storedb *db, int ret)
{
	if (!ret || db->retried || !(db->flags & CAIRN_STOREDB_IMMUTABLE_FALLBACK) ||
	    !wal_access_failure(db->last_rc)) {
		db->retried = 0;
		return 0;
	}
	db->retried = 1;
	if (connect_best(db, NULL) != 0) {
		db->retried = 0;
		return 0;
	}
	return 1;
}

int storedb_attempt_done(int ret, const struct cairn_error *e, struct cairn_error *err)
{
	if (ret)
		return cairn_error_set(err, ret, "%s", e->msg);
	return 0;
}

/* ---- path info -------------------------------------------------------- */

void cairn_storedb_pathinfo_release(struct cairn_storedb_pathinfo *pi)
{
	if (!pi)
		return;
	free(pi->path);
	free(pi->deriver);
	free(pi->ca);
	for (size_t i = 0; i < pi->nsigs; i++)
		free(pi->sigs[i]);
	free(pi->sigs);
	for (size_t i = 0; i < pi->nrefs; i++)
		free(pi->refs[i]);
	free(pi->refs);
	memset(pi, 0, sizeof(*pi));
}

int storedb_bad_row(struct cairn_error *err, sqlite3_int64 id, const char *path, size_t plen,
		    const char *what)
{
	char q[QUOTE_MAX + 4];
	storedb_quote(q, path ? path : "", path ? plen : 0);
	return cairn_error_set(err, CAIRN_EFORMAT, "storedb: ValidPaths row %lld ('%s'): %s",
			       (long long)id, q, what);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split the space-separated sigs column; empty tokens are skipped, as Nix
 * does. */
static int split_sigs(struct cairn_storedb_pathinfo *pi, const char *s, size_t len)
{
	size_t n = 0, i = 0;
	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		if (i == len)
			break;
		if (n == CAIRN_STOREDB_SIGS_MAX)
			return CAIRN_ELIMIT;
		size_t j = i;
		while (j < len && s[j] != ' ')
			j++;
		if (!memchr(s + i, ':', j - i))
			return CAIRN_EFORMAT;
		if (n == 0) {
			pi->sigs = calloc(CAIRN_STOREDB_SIGS_MAX, sizeof(char *));
			if (!pi->sigs)
				return CAIRN_ENOMEM;
		}
		pi->sigs[n] = storedb_dup_n(s + i, j - i);
		if (!pi->sigs[n])
			return CAIRN_ENOMEM;
		pi->nsigs = ++n;
		i = j;
	}
	/* Nix reads the column into a std::set: sorted, each signature once. */
	if (n > 1) {
		qsort(pi->sigs, n, sizeof(char *), cmp_str);
		size_t k = 1;
		for (size_t m = 1; m < n; m++) {
			if (strcmp(pi->sigs[m], pi->sigs[k - 1]) == 0)
				free(pi->sigs[m]);
			else
				pi->sigs[k++] = pi->sigs[m];
		}
		pi->nsigs = k;
	}
	return 0;
}

int storedb_column_text(sqlite3_stmt *st, int col, const char **s, size_t *len)
{
	*s = (const char *)sqlite3_column_text(st, col);
	*len = *s ? (size_t)sqlite3_column_bytes(st, col) : 0;
	return *s != NULL;
}

/* Fill pi from the current row of an info statement, checking every field. */
static int read_row(struct cairn_storedb *db, sqlite3_stmt *st, sqlite3_int64 *idp,
		    struct cairn_storedb_pathinfo *pi, struct cairn_error *err)
{
	const char *path, *hash, *drv, *sigs, *ca;
	size_t plen, hlen, dlen, slen, clen;
	sqlite3_int64 id = sqlite3_column_int64(st, 0);
	int ret;

	if (!storedb_column_text(st, 1, &path, &plen) || !storedb_valid_store_path(db, path, plen))
		return storedb_bad_row(err, id, path, plen,
			       "path is not a valid path in the store directory");
	if (!storedb_column_text(st, 2, &hash, &hlen) || hlen > CAIRN_HASH_STR_MAX)
		return storedb_bad_row(err, id, path, plen, "hash is missing or too long");
	struct cairn_error herr;
	cairn_error_init(&herr);
	if (cairn_hash_parse(hash, hlen, 0, &pi->nar_hash, &herr) != 0) {
		char what[CAIRN_ERROR_MSG_MAX + 32];
		snprintf(what, sizeof(what), "bad hash: %s", herr.msg);
		return storedb_bad_row(err, id, path, plen, what);
	}
	if (pi->nar_hash.algo != CAIRN_HASH_SHA256)
		return storedb_bad_row(err, id, path, plen, "hash is not SHA-256");
	if (sqlite3_column_type(st, 3) != SQLITE_INTEGER || sqlite3_column_int64(st, 3) < 0)
		return storedb_bad_row(err, id, path, plen,
			       "registrationTime is not a non-negative integer");
	pi->registration_time = sqlite3_column_int64(st, 3);
	int nstype = sqlite3_column_type(st, 5);
	if ((nstype != SQLITE_NULL && nstype != SQLITE_INTEGER) || sqlite3_column_int64(st, 5) < 0)
		return storedb_bad_row(err, id, path, plen, "narSize is not a non-negative integer");
	pi->nar_size = (uint64_t)sqlite3_column_int64(st, 5);
	pi->ultimate = sqlite3_column_int64(st, 6) == 1; /* as Nix: only 1 counts */

	if (!(pi->path = storedb_dup_n(path, plen)))
		return CAIRN_ENOMEM;
	if (storedb_column_text(st, 4, &drv, &dlen) && dlen > 0) {
		if (!storedb_valid_store_path(db, drv, dlen))
			return storedb_bad_row(err, id, path, plen,
				       "deriver is not a path in the store directory");
		if (!(pi->deriver = storedb_dup_n(drv, dlen)))
			return CAIRN_ENOMEM;
	}
	if (storedb_column_text(st, 7, &sigs, &slen)) {
		if (slen > CAIRN_STOREDB_SIGS_LEN_MAX || !valid_text(sigs, slen, 1))
			return storedb_bad_row(err, id, path, plen, "sigs is too long or not printable");
		ret = split_sigs(pi, sigs, slen);
		if (ret == CAIRN_ENOMEM)
			return ret;
		if (ret == CAIRN_ELIMIT)
			return storedb_bad_row(err, id, path, plen, "too many signatures");
		if (ret)
			return storedb_bad_row(err, id, path, plen, "a signature has no key name");
	}
	if (storedb_column_text(st, 8, &ca, &clen) && clen > 0) {
		if (clen > CAIRN_STOREDB_CA_LEN_MAX || !valid_text(ca, clen, 0))
			return storedb_bad_row(err, id, path, plen, "ca is too long or not printable");
		if (!(pi->ca = storedb_dup_n(ca, clen)))
			return CAIRN_ENOMEM;
	}
	*idp = id;
	return 0;
}

static int read_refs(struct cairn_storedb *db, sqlite3_int64 id, struct cairn_storedb_pathinfo *pi,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc, ret = storedb_prepare(db, ST_REFS, &st, err);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *r;
		size_t rlen;
		if (!storedb_column_text(st, 0, &r, &rlen) || !storedb_valid_store_path(db, r, rlen))
			return storedb_bad_row(err, id, pi->path, strlen(pi->path),
				       "a reference is not a path in the store directory");
		if (pi->nrefs == CAIRN_STOREDB_REFS_MAX)
			return storedb_bad_row(err, id, pi->path, strlen(pi->path), "too many references");
		if (pi->nrefs == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			if (ncap > CAIRN_STOREDB_REFS_MAX)
				ncap = CAIRN_STOREDB_REFS_MAX;
			char **v = realloc(pi->refs, ncap * sizeof(*v));
			if (!v)
				return CAIRN_ENOMEM;
			pi->refs = v;
			cap = ncap;
		}
		if (!(pi->refs[pi->nrefs] = storedb_dup_n(r, rlen)))
			return CAIRN_ENOMEM;
		pi->nrefs++;
	}
	if (rc != SQLITE_DONE)
		return storedb_sql_fail(db, db->sql, rc, "reading references", err);
	return 0;
}

/* One attempt at an info lookup. */
static int query_info(struct cairn_storedb *db, int which, const char *a, size_t alen,
		      const char *b, size_t blen, const char *shown,
		      struct cairn_storedb_pathinfo *out, struct cairn_error *err)
{
	struct cairn_storedb_pathinfo pi;
	sqlite3_stmt *st;
	sqlite3_int64 id = 0;
	int rc, ret;

	memset(&pi, 0, sizeof(pi));
	ret = storedb_txn_begin(db, err);
	if (ret)
		return ret;
	ret = storedb_prepare(db, which, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_text(st, 1, a, (int)alen, SQLITE_STATIC);
	if (b)
		sqlite3_bind_text(st, 2, b, (int)blen, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret =
		    cairn_error_set(err, CAIRN_ENOENT, "storedb: '%s' is not a valid path", shown);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		ret = storedb_sql_fail(db, db->sql, rc, "looking up a path", err);
		goto out;
	}
	ret = read_row(db, st, &id, &pi, err);
	if (ret == CAIRN_ENOMEM)
		cairn_error_set(err, ret, "storedb: out of memory");
	if (ret)
		goto out;
	ret = read_refs(db, id, &pi, err);
	if (ret == CAIRN_ENOMEM)
		cairn_error_set(err, ret, "storedb: out of memory");
	if (ret)
		goto out;
	*out = pi;
	memset(&pi, 0, sizeof(pi));
out:
	storedb_txn_end(db);
	cairn_storedb_pathinfo_release(&pi);
	return ret;
}

/* Run an info lookup, reconnecting once when WAL access was lost. */
static int info_with_retry(struct cairn_storedb *db, int which, const char *a, size_t alen,
			   const char *b, size_t blen, const char *shown,
			   struct cairn_storedb_pathinfo *out, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	storedb_enter(db);
	do {
		storedb_attempt_init(db, &e);
		ret = query_info(db, which, a, alen, b, blen, shown, out, &e);
	} while (storedb_retry_after_wal_loss(db, ret));
	return storedb_attempt_done(ret, &e, err);
}

int cairn_storedb_query_hashpart(struct cairn_storedb *db, const char *hashpart,
				 struct cairn_storedb_pathinfo *out, struct cairn_error *err)
{
	char lo[CAIRN_STOREDB_DIR_MAX + HASHPART_LEN + 3], hi[sizeof(lo)];
	size_t hlen = hashpart ? strnlen(hashpart, HASHPART_LEN + 1) : 0;
	if (!valid_hashpart(hashpart ? hashpart : "", hlen)) {
		char q[QUOTE_MAX + 4];
		storedb_quote(q, hashpart ? hashpart : "", hlen);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' is not a store path hash part", q);
	}
	int n = snprintf(lo, sizeof(lo), "%s/%.32s-", db->store_dir, hashpart);
	snprintf(hi, sizeof(hi), "%s/%.32s.", db->store_dir, hashpart);
	return info_with_retry(db, ST_BY_RANGE, lo, (size_t)n, hi, (size_t)n, hashpart, out, err);
}

int cairn_storedb_query_path(struct cairn_storedb *db, const char *path,
			     struct cairn_storedb_pathinfo *out, struct cairn_error *err)
{
	size_t plen = path ? strnlen(path, CAIRN_STOREDB_PATH_MAX + 1) : 0;
	if (!path || !storedb_valid_store_path(db, path, plen)) {
		char q[QUOTE_MAX + 4];
		storedb_quote(q, path ? path : "", plen);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' is not a store path under '%s'", q,
				       db->store_dir);
	}
	return info_with_retry(db, ST_BY_PATH, path, plen, NULL, 0, path, out, err);
}
