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
#include "storedb-sql.h"
#include "cairn/banned.h"

#define HASHPART_LEN 32
/* Paths read per transaction by cairn_storedb_foreach. */
#define FOREACH_PAGE 512
/* Seconds between attempts to leave the immutable fallback that failed. */
#define RECONNECT_INTERVAL 1
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
static void quote(char out[QUOTE_MAX + 4], const char *s, size_t len)
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

static int sql_fail(struct cairn_storedb *db, sqlite3 *sql, int rc, const char *what,
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
static int valid_store_path(const struct cairn_storedb *db, const char *s, size_t len)
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

static char *dup_n(const char *s, size_t len)
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
		return sql_fail(db, sql, rc, "reading the schema", err);
	for (int i = 0; i < nwant; i++)
		set[i] = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		for (int i = 0; name && i < nwant; i++)
			if (strcmp(name, want[i]) == 0)
				set[i] = 1;
	}
	if (rc != SQLITE_DONE) {
		int r = sql_fail(db, sql, rc, "reading the schema", err);
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
		return sql_fail(db, sql, rc, "starting a read", err);
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
		ret = sql_fail(db, sql, rc, "reading the schema", err);
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
		ret = sql_fail(db, sql, rc, "opening", err);
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
	db->store_dir = dup_n(cfg->store_dir, dirlen);
	db->dirlen = dirlen;
	db->db_path = dup_n(cfg->db_path, plen);
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

static int prepare(struct cairn_storedb *db, int which, sqlite3_stmt **out, struct cairn_error *err)
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
		return sql_fail(db, db->sql, rc, "preparing a query", err);
	*out = db->st[which];
	return 0;
}

/*
 * Called before each operation: leave the immutable fallback as soon as a
 * -wal file shows that a writer is active, because from then on the main
 * file alone is no longer the whole database.
 */
static void storedb_enter(struct cairn_storedb *db)
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

static int txn_begin(struct cairn_storedb *db, struct cairn_error *err)
{
	int rc = sqlite3_exec(db->sql, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(db, db->sql, rc, "starting a read", err);
	return 0;
}

/* End the read transaction whatever happened; statements are reset first so
 * that none keeps the snapshot alive. */
static void txn_end(struct cairn_storedb *db)
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
static void attempt_init(struct cairn_storedb *db, struct cairn_error *e)
{
	cairn_error_init(e);
	db->last_rc = 0;
}

static int retry_after_wal_loss(struct cairn_storedb *db, int ret)
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

static int attempt_done(int ret, const struct cairn_error *e, struct cairn_error *err)
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

static int bad_row(struct cairn_error *err, sqlite3_int64 id, const char *path, size_t plen,
		   const char *what)
{
	char q[QUOTE_MAX + 4];
	quote(q, path ? path : "", path ? plen : 0);
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
		pi->sigs[n] = dup_n(s + i, j - i);
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

static int column_text(sqlite3_stmt *st, int col, const char **s, size_t *len)
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

	if (!column_text(st, 1, &path, &plen) || !valid_store_path(db, path, plen))
		return bad_row(err, id, path, plen,
			       "path is not a valid path in the store directory");
	if (!column_text(st, 2, &hash, &hlen) || hlen > CAIRN_HASH_STR_MAX)
		return bad_row(err, id, path, plen, "hash is missing or too long");
	struct cairn_error herr;
	cairn_error_init(&herr);
	if (cairn_hash_parse(hash, hlen, 0, &pi->nar_hash, &herr) != 0) {
		char what[CAIRN_ERROR_MSG_MAX + 32];
		snprintf(what, sizeof(what), "bad hash: %s", herr.msg);
		return bad_row(err, id, path, plen, what);
	}
	if (pi->nar_hash.algo != CAIRN_HASH_SHA256)
		return bad_row(err, id, path, plen, "hash is not SHA-256");
	if (sqlite3_column_type(st, 3) != SQLITE_INTEGER || sqlite3_column_int64(st, 3) < 0)
		return bad_row(err, id, path, plen,
			       "registrationTime is not a non-negative integer");
	pi->registration_time = sqlite3_column_int64(st, 3);
	int nstype = sqlite3_column_type(st, 5);
	if ((nstype != SQLITE_NULL && nstype != SQLITE_INTEGER) || sqlite3_column_int64(st, 5) < 0)
		return bad_row(err, id, path, plen, "narSize is not a non-negative integer");
	pi->nar_size = (uint64_t)sqlite3_column_int64(st, 5);
	pi->ultimate = sqlite3_column_int64(st, 6) == 1; /* as Nix: only 1 counts */

	if (!(pi->path = dup_n(path, plen)))
		return CAIRN_ENOMEM;
	if (column_text(st, 4, &drv, &dlen) && dlen > 0) {
		if (!valid_store_path(db, drv, dlen))
			return bad_row(err, id, path, plen,
				       "deriver is not a path in the store directory");
		if (!(pi->deriver = dup_n(drv, dlen)))
			return CAIRN_ENOMEM;
	}
	if (column_text(st, 7, &sigs, &slen)) {
		if (slen > CAIRN_STOREDB_SIGS_LEN_MAX || !valid_text(sigs, slen, 1))
			return bad_row(err, id, path, plen, "sigs is too long or not printable");
		ret = split_sigs(pi, sigs, slen);
		if (ret == CAIRN_ENOMEM)
			return ret;
		if (ret == CAIRN_ELIMIT)
			return bad_row(err, id, path, plen, "too many signatures");
		if (ret)
			return bad_row(err, id, path, plen, "a signature has no key name");
	}
	if (column_text(st, 8, &ca, &clen) && clen > 0) {
		if (clen > CAIRN_STOREDB_CA_LEN_MAX || !valid_text(ca, clen, 0))
			return bad_row(err, id, path, plen, "ca is too long or not printable");
		if (!(pi->ca = dup_n(ca, clen)))
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
	int rc, ret = prepare(db, ST_REFS, &st, err);
	if (ret)
		return ret;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *r;
		size_t rlen;
		if (!column_text(st, 0, &r, &rlen) || !valid_store_path(db, r, rlen))
			return bad_row(err, id, pi->path, strlen(pi->path),
				       "a reference is not a path in the store directory");
		if (pi->nrefs == CAIRN_STOREDB_REFS_MAX)
			return bad_row(err, id, pi->path, strlen(pi->path), "too many references");
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
		if (!(pi->refs[pi->nrefs] = dup_n(r, rlen)))
			return CAIRN_ENOMEM;
		pi->nrefs++;
	}
	if (rc != SQLITE_DONE)
		return sql_fail(db, db->sql, rc, "reading references", err);
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
	ret = txn_begin(db, err);
	if (ret)
		return ret;
	ret = prepare(db, which, &st, err);
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
		ret = sql_fail(db, db->sql, rc, "looking up a path", err);
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
	txn_end(db);
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
		attempt_init(db, &e);
		ret = query_info(db, which, a, alen, b, blen, shown, out, &e);
	} while (retry_after_wal_loss(db, ret));
	return attempt_done(ret, &e, err);
}

int cairn_storedb_query_hashpart(struct cairn_storedb *db, const char *hashpart,
				 struct cairn_storedb_pathinfo *out, struct cairn_error *err)
{
	char lo[CAIRN_STOREDB_DIR_MAX + HASHPART_LEN + 3], hi[sizeof(lo)];
	size_t hlen = hashpart ? strnlen(hashpart, HASHPART_LEN + 1) : 0;
	if (!valid_hashpart(hashpart ? hashpart : "", hlen)) {
		char q[QUOTE_MAX + 4];
		quote(q, hashpart ? hashpart : "", hlen);
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
	if (!path || !valid_store_path(db, path, plen)) {
		char q[QUOTE_MAX + 4];
		quote(q, path ? path : "", plen);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' is not a store path under '%s'", q,
				       db->store_dir);
	}
	return info_with_retry(db, ST_BY_PATH, path, plen, NULL, 0, path, out, err);
}

/* ---- whole-table queries ---------------------------------------------- */

static int count_once(struct cairn_storedb *db, uint64_t *count, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int ret = txn_begin(db, err);
	if (ret)
		return ret;
	ret = prepare(db, ST_COUNT, &st, err);
	if (ret)
		goto out;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sql_fail(db, db->sql, rc, "counting paths", err);
		goto out;
	}
	*count = (uint64_t)sqlite3_column_int64(st, 0);
out:
	txn_end(db);
	return ret;
}

int cairn_storedb_count(struct cairn_storedb *db, uint64_t *count, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	storedb_enter(db);
	do {
		attempt_init(db, &e);
		ret = count_once(db, count, &e);
	} while (retry_after_wal_loss(db, ret));
	return attempt_done(ret, &e, err);
}

static bool is_drv(const char *p, size_t len)
{
	return len > 4 && memcmp(p + len - 4, ".drv", 4) == 0;
}

static int recent_once(struct cairn_storedb *db, char **out, struct cairn_error *err)
{
	sqlite3_stmt *st;
	char *newest = NULL, *found = NULL;
	int rc = SQLITE_DONE, ret = txn_begin(db, err);
	if (ret)
		return ret;
	ret = prepare(db, ST_RECENT, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_int(st, 1, CAIRN_STOREDB_RECENT_SCAN);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p;
		size_t plen;
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		if (!column_text(st, 1, &p, &plen) || !valid_store_path(db, p, plen)) {
			ret = bad_row(err, id, p, plen,
				      "path is not a valid path in the store directory");
			goto out;
		}
		char **slot = is_drv(p, plen) ? &newest : &found;
		if (!*slot && !(*slot = dup_n(p, plen))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		if (found)
			break;
	}
	if (!found && rc != SQLITE_DONE)
		ret = sql_fail(db, db->sql, rc, "listing recent paths", err);
out:
	txn_end(db);
	if (ret == 0 && !found && !newest)
		ret = cairn_error_set(err, CAIRN_ENOENT, "storedb: the store has no valid path");
	if (ret == 0) {
		*out = found ? found : newest;
		if (found)
			free(newest);
	} else {
		free(found);
		free(newest);
	}
	return ret;
}

int cairn_storedb_recent_path(struct cairn_storedb *db, char **out, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	storedb_enter(db);
	do {
		attempt_init(db, &e);
		ret = recent_once(db, out, &e);
	} while (retry_after_wal_loss(db, ret));
	return attempt_done(ret, &e, err);
}

void cairn_storedb_paths_release(struct cairn_storedb_paths *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

/* Read up to FOREACH_PAGE paths with id > *after into page. */
static int read_page(struct cairn_storedb *db, sqlite3_int64 *after,
		     struct cairn_storedb_paths *page, struct cairn_error *err)
{
	sqlite3_stmt *st;
	sqlite3_int64 last = *after;
	int rc, ret = txn_begin(db, err);
	if (ret)
		return ret;
	ret = prepare(db, ST_PAGE, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, *after);
	sqlite3_bind_int(st, 2, FOREACH_PAGE);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p;
		size_t plen;
		last = sqlite3_column_int64(st, 0);
		if (!column_text(st, 1, &p, &plen) || !valid_store_path(db, p, plen)) {
			ret = bad_row(err, last, p, plen,
				      "path is not a valid path in the store directory");
			goto out;
		}
		if (!(page->v[page->n] = dup_n(p, plen))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		page->n++;
	}
	if (rc != SQLITE_DONE) {
		ret = sql_fail(db, db->sql, rc, "listing paths", err);
		goto out;
	}
	*after = last;
out:
	txn_end(db);
	if (ret) {
		for (size_t i = 0; i < page->n; i++)
			free(page->v[i]);
		page->n = 0;
	}
	return ret;
}

int cairn_storedb_foreach(struct cairn_storedb *db, int (*fn)(void *ctx, const char *path),
			  void *ctx, struct cairn_error *err)
{
	struct cairn_storedb_paths page = {NULL, 0};
	sqlite3_int64 after = 0;
	int ret = 0;

	if (!fn)
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: no callback");
	page.v = calloc(FOREACH_PAGE, sizeof(char *));
	if (!page.v)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	storedb_enter(db);
	for (;;) {
		struct cairn_error e;
		do {
			attempt_init(db, &e);
			ret = read_page(db, &after, &page, &e);
		} while (retry_after_wal_loss(db, ret));
		if (ret) {
			attempt_done(ret, &e, err);
			break;
		}
		if (page.n == 0)
			break;
		size_t got = page.n;
		for (size_t i = 0; i < page.n && !ret; i++)
			if (fn(ctx, page.v[i]) != 0)
				ret = cairn_error_set(err, CAIRN_ECANCELED,
						      "storedb: listing stopped by the caller");
		for (size_t i = 0; i < page.n; i++)
			free(page.v[i]);
		page.n = 0;
		if (ret || got < FOREACH_PAGE)
			break;
	}
	cairn_storedb_paths_release(&page);
	return ret;
}

int cairn_storedb_page_after(struct cairn_storedb *db, uint64_t after,
			     struct cairn_storedb_paths *out, uint64_t *last,
			     struct cairn_error *err)
{
	struct cairn_storedb_paths page = {NULL, 0};
	sqlite3_int64 at = (sqlite3_int64)after;
	int ret;

	if (after > INT64_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: id out of range");
	page.v = calloc(FOREACH_PAGE, sizeof(char *));
	if (!page.v)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	storedb_enter(db);
	struct cairn_error e;
	do {
		attempt_init(db, &e);
		ret = read_page(db, &at, &page, &e);
	} while (retry_after_wal_loss(db, ret));
	if (ret) {
		attempt_done(ret, &e, err);
		cairn_storedb_paths_release(&page);
		return ret;
	}
	*out = page;
	*last = (uint64_t)at;
	return 0;
}

static int closure_once(struct cairn_storedb *db, const char *path, size_t plen, size_t max,
			struct cairn_storedb_paths *out, struct cairn_error *err)
{
	struct cairn_storedb_paths res = {NULL, 0};
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc, ret = txn_begin(db, err);
	if (ret)
		return ret;
	ret = prepare(db, ST_CLOSURE, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_text(st, 1, path, (int)plen, SQLITE_STATIC);
	/* One more than allowed, to tell "exactly max" from "too many". */
	sqlite3_bind_int64(st, 2, (sqlite3_int64)max + 1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p;
		size_t len;
		if (res.n == max) {
			ret = cairn_error_set(err, CAIRN_ELIMIT,
					      "storedb: closure of '%s' has more than %zu paths",
					      path, max);
			goto out;
		}
		if (!column_text(st, 0, &p, &len) || !valid_store_path(db, p, len)) {
			char q[QUOTE_MAX + 4];
			quote(q, p ? p : "", len);
			ret = cairn_error_set(err, CAIRN_EFORMAT,
					      "storedb: closure of '%s': '%s' is not a path in "
					      "the store directory",
					      path, q);
			goto out;
		}
		if (res.n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			if (ncap > max)
				ncap = max;
			char **v = realloc(res.v, ncap * sizeof(*v));
			if (!v) {
				ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
				goto out;
			}
			res.v = v;
			cap = ncap;
		}
		if (!(res.v[res.n] = dup_n(p, len))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		res.n++;
	}
	if (rc != SQLITE_DONE) {
		ret = sql_fail(db, db->sql, rc, "reading a closure", err);
		goto out;
	}
	if (res.n == 0) {
		ret = cairn_error_set(err, CAIRN_ENOENT, "storedb: '%s' is not a valid path", path);
		goto out;
	}
	*out = res;
	memset(&res, 0, sizeof(res));
out:
	txn_end(db);
	cairn_storedb_paths_release(&res);
	return ret;
}

int cairn_storedb_closure(struct cairn_storedb *db, const char *path, size_t max,
			  struct cairn_storedb_paths *out, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	size_t plen = path ? strnlen(path, CAIRN_STOREDB_PATH_MAX + 1) : 0;
	if (!path || !valid_store_path(db, path, plen)) {
		char q[QUOTE_MAX + 4];
		quote(q, path ? path : "", plen);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' is not a store path under '%s'", q,
				       db->store_dir);
	}
	if (max == 0 || max > CAIRN_STOREDB_CLOSURE_MAX)
		max = CAIRN_STOREDB_CLOSURE_MAX;
	storedb_enter(db);
	do {
		attempt_init(db, &e);
		ret = closure_once(db, path, plen, max, out, &e);
	} while (retry_after_wal_loss(db, ret));
	return attempt_done(ret, &e, err);
}
