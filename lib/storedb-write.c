/*
 * storedb-write.c - registering paths in a Nix or Guix store database (see
 * storedb-write.h for what is written and the rules kept).
 *
 * Design.  The handle is one read-write SQLite connection with foreign keys
 * on (as Nix and Guix open theirs), prepared statements cached, plus the
 * shared flock on big-lock.  A registration validates every field of every
 * path before it starts a transaction, so a malformed request never takes
 * the database's write lock; inside the transaction each path is looked
 * up, its references checked, then inserted, so that a reference can only
 * name a row that exists when its Refs row is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "cairn/banned.h"

/* Longest "schema" file read (a decimal version number). */
#define SCHEMA_FILE_MAX 32
/* How often the big-lock is tried while someone holds it exclusively. */
#define BIGLOCK_POLL_MS 50

/*
 * The tables Nix 2.8 creates (schema version 10) and Guix (7): the same
 * columns, keys, indexes and trigger, so that Nix and Guix read, extend
 * and garbage-collect the database as one they made.
 */
static const char nix_schema[] =
    "CREATE TABLE IF NOT EXISTS ValidPaths ("
    " id integer primary key autoincrement not null,"
    " path text unique not null,"
    " hash text not null,"
    " registrationTime integer not null,"
    " deriver text,"
    " narSize integer,"
    " ultimate integer,"
    " sigs text,"
    " ca text);"
    "CREATE TABLE IF NOT EXISTS Refs ("
    " referrer integer not null,"
    " reference integer not null,"
    " primary key (referrer, reference),"
    " foreign key (referrer) references ValidPaths(id) on delete cascade,"
    " foreign key (reference) references ValidPaths(id) on delete restrict);"
    "CREATE INDEX IF NOT EXISTS IndexReferrer ON Refs(referrer);"
    "CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);"
    /* Without it, deleting a path that refers to itself would violate the
     * "on delete restrict" of its own Refs row. */
    "CREATE TRIGGER IF NOT EXISTS DeleteSelfRefs BEFORE DELETE ON ValidPaths"
    " BEGIN DELETE FROM Refs WHERE referrer = old.id AND reference = old.id; END;"
    "CREATE TABLE IF NOT EXISTS DerivationOutputs ("
    " drv integer not null,"
    " id text not null,"
    " path text not null,"
    " primary key (drv, id),"
    " foreign key (drv) references ValidPaths(id) on delete cascade);"
    "CREATE INDEX IF NOT EXISTS IndexDerivationOutputs ON DerivationOutputs(path);";

static const char guix_schema[] =
    "CREATE TABLE IF NOT EXISTS ValidPaths ("
    " id integer primary key autoincrement not null,"
    " path text unique not null,"
    " hash text not null,"
    " registrationTime integer not null,"
    " deriver text,"
    " narSize integer);"
    "CREATE TABLE IF NOT EXISTS Refs ("
    " referrer integer not null,"
    " reference integer not null,"
    " primary key (referrer, reference),"
    " foreign key (referrer) references ValidPaths(id) on delete cascade,"
    " foreign key (reference) references ValidPaths(id) on delete restrict);"
    "CREATE INDEX IF NOT EXISTS IndexReferrer ON Refs(referrer);"
    "CREATE INDEX IF NOT EXISTS IndexReference ON Refs(reference);"
    "CREATE TRIGGER IF NOT EXISTS DeleteSelfRefs BEFORE DELETE ON ValidPaths"
    " BEGIN DELETE FROM Refs WHERE referrer = old.id AND reference = old.id; END;"
    "CREATE TABLE IF NOT EXISTS DerivationOutputs ("
    " drv integer not null,"
    " id text not null,"
    " path text not null,"
    " primary key (drv, id),"
    " foreign key (drv) references ValidPaths(id) on delete cascade);"
    "CREATE INDEX IF NOT EXISTS IndexDerivationOutputs ON DerivationOutputs(path);"
    "CREATE TABLE IF NOT EXISTS FailedPaths ("
    " path text primary key not null,"
    " time integer not null);";

enum { W_LOOKUP, W_INSERT, W_REF, W_OUTPUT, W_N_ };

struct cairn_storedb_writer {
	sqlite3 *sql;
	enum cairn_storedb_kind kind;
	char *store_dir;
	size_t dirlen;
	char *db_path;
	int busy_ms;
	int biglock; /* fd holding the shared flock, or -1 */
	int created;
	int has_ultimate, has_sigs, has_ca;
	sqlite3_stmt *st[W_N_];
};

void cairn_storedb_writer_config_init(struct cairn_storedb_writer_config *cfg,
				      enum cairn_storedb_kind kind)
{
	struct cairn_storedb_config rc;
	cairn_storedb_config_init(&rc, kind);
	cfg->kind = kind;
	cfg->store_dir = rc.store_dir;
	cfg->db_path = rc.db_path;
	cfg->busy_timeout_ms = CAIRN_STOREDB_WRITE_TIMEOUT_MS;
	cfg->flags = 0;
}

int cairn_storedb_writer_created(const struct cairn_storedb_writer *w)
{
	return w->created;
}


/* SQLite's failure as an error: locks become CAIRN_EBUSY with a message
 * that says so, the rest CAIRN_EIO. */
static int sql_fail(struct cairn_storedb_writer *w, int rc, const char *what,
		    struct cairn_error *err)
{
	int primary = rc & 0xff;
	if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
		return cairn_error_set(err, CAIRN_EBUSY,
				       "storedb: %s is locked by another process (waited %d ms "
				       "while %s)",
				       w->db_path, w->busy_ms, what);
	if (primary == SQLITE_NOMEM)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	return cairn_error_set(err, CAIRN_EIO, "storedb: %s: %s: %s", w->db_path, what,
			       w->sql ? sqlite3_errmsg(w->sql) : sqlite3_errstr(rc));
}

/* "<store_dir>/<32 nix32>-<name>" under this database's store directory. */
static int valid_store_path(const struct cairn_storedb_writer *w, const char *s)
{
	size_t len = strnlen(s, CAIRN_STOREDB_PATH_MAX + 1);
	struct cairn_store_path sp;
	if (len > CAIRN_STOREDB_PATH_MAX || len <= w->dirlen ||
	    memcmp(s, w->store_dir, w->dirlen) != 0 || s[w->dirlen] != '/')
		return 0;
	return cairn_store_path_parse(s, len, w->store_dir, &sp, NULL) == 0;
}

/* Printable ASCII without spaces, 1..max bytes. */
static int valid_token(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);
	if (len == 0 || len > max)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* ---- open / close ----------------------------------------------------- */

static void finalize_all(struct cairn_storedb_writer *w)
{
	for (int i = 0; i < W_N_; i++) {
		sqlite3_finalize(w->st[i]);
		w->st[i] = NULL;
	}
}

void cairn_storedb_writer_free(struct cairn_storedb_writer *w)
{
	if (!w)
		return;
	finalize_all(w);
	sqlite3_close_v2(w->sql);
	if (w->biglock >= 0)
		close(w->biglock); /* drops the flock */
	free(w->store_dir);
	free(w->db_path);
	free(w);
}

/* "<dir of db_path>/<name>" */
static char *beside(const char *db_path, const char *name)
{
	const char *slash = strrchr(db_path, '/');
	size_t dlen = slash ? (size_t)(slash - db_path) : 0;
	size_t n = dlen + 1 + strlen(name) + 1;
	char *p = malloc(n);
	if (p) {
		if (slash)
			snprintf(p, n, "%.*s/%s", (int)dlen, db_path, name);
		else
			snprintf(p, n, "%s", name);
	}
	return p;
}

static int mkdir_p(const char *path, struct cairn_error *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof(buf))
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: directory name too long");
	memcpy(buf, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST)
			return cairn_error_errno(err, errno, "storedb: cannot create '%s'", buf);
		buf[i] = c;
	}
	return 0;
}

/* The version in the "schema" file: 0 when there is none. */
static int read_schema_file(const char *path, int *version, struct cairn_error *err)
{
	char buf[SCHEMA_FILE_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	*version = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return cairn_error_errno(err, errno, "storedb: cannot read '%s'", path);
	}
	ssize_t n = read(fd, buf, SCHEMA_FILE_MAX);
	int e = errno;
	close(fd);
	if (n < 0)
		return cairn_error_errno(err, e, "storedb: cannot read '%s'", path);
	buf[n] = '\0';
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (end == buf || *end || errno || v <= 0 || v > INT_MAX)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' does not hold a schema version", path);
	*version = (int)v;
	return 0;
}

/* Write the "schema" file through a temporary name, durably. */
static int write_schema_file(const char *path, int version, struct cairn_error *err)
{
	char tmp[PATH_MAX], text[16];
	int n = snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: path too long");
	int len = snprintf(text, sizeof(text), "%d", version);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_error_errno(err, errno, "storedb: cannot create '%s'", tmp);
	int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
	int e = errno;
	if (close(fd) != 0 && ok) {
		ok = 0;
		e = errno;
	}
	if (ok && rename(tmp, path) != 0) {
		ok = 0;
		e = errno;
	}
	if (!ok) {
		unlink(tmp);
		return cairn_error_errno(err, e, "storedb: cannot write '%s'", path);
	}
	return 0;
}

/* Hold big-lock shared, waiting at most the busy timeout for a holder of
 * the exclusive lock (a schema upgrade). */
static int take_biglock(struct cairn_storedb_writer *w, int create, struct cairn_error *err)
{
	char *path = beside(w->db_path, "big-lock");
	int ret = 0;
	if (!path)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	w->biglock = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (w->biglock < 0) {
		/* No big-lock: nothing to coordinate with (a database made by
		 * something else, or one we may only read). */
		w->biglock = -1;
		goto out;
	}
	for (int waited = 0;; waited += BIGLOCK_POLL_MS) {
		if (flock(w->biglock, LOCK_SH | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			ret = cairn_error_errno(err, errno, "storedb: cannot lock '%s'", path);
			break;
		}
		if (waited >= w->busy_ms) {
			ret = cairn_error_set(err, CAIRN_EBUSY,
					      "storedb: '%s' is held exclusively by another "
					      "process (a schema upgrade?)",
					      path);
			break;
		}
		struct timespec ts = {0, BIGLOCK_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
out:
	free(path);
	return ret;
}

static int table_has(struct cairn_storedb_writer *w, const char *table, const char *column,
		     int *has, struct cairn_error *err)
{
	char q[96];
	sqlite3_stmt *st = NULL;
	snprintf(q, sizeof(q), "PRAGMA table_info(%s)", table);
	int rc = sqlite3_prepare_v2(w->sql, q, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sql_fail(w, rc, "reading the schema", err);
	*has = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		if (name && !strcmp(name, column))
			*has = 1;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(w, rc, "reading the schema", err);
	return 0;
}

/* The tables and columns registration writes must be there. */
static int check_schema(struct cairn_storedb_writer *w, struct cairn_error *err)
{
	static const char *const need[][2] = {
	    {"ValidPaths", "id"},	{"ValidPaths", "path"},
	    {"ValidPaths", "hash"},	{"ValidPaths", "registrationTime"},
	    {"ValidPaths", "deriver"},	{"ValidPaths", "narSize"},
	    {"Refs", "referrer"},	{"Refs", "reference"},
	    {"DerivationOutputs", "drv"}, {"DerivationOutputs", "id"},
	    {"DerivationOutputs", "path"},
	};
	sqlite3_stmt *st = NULL;
	int has, ret;
	int rc = sqlite3_prepare_v2(w->sql,
				    "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
				    "AND name = 'Storables'",
				    -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = sql_fail(w, rc, "reading the schema", err);
		sqlite3_finalize(st);
		return ret;
	}
	has = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (has)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "storedb: %s: Refs point at a Storables table; this "
				       "schema is not supported",
				       w->db_path);
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		if ((ret = table_has(w, need[i][0], need[i][1], &has, err)))
			return ret;
		if (!has)
			return cairn_error_set(err, CAIRN_EUNSUPPORTED,
					       "storedb: %s: not a Nix or Guix store database (%s "
					       "has no column '%s')",
					       w->db_path, need[i][0], need[i][1]);
	}
	if ((ret = table_has(w, "ValidPaths", "ultimate", &w->has_ultimate, err)) ||
	    (ret = table_has(w, "ValidPaths", "sigs", &w->has_sigs, err)) ||
	    (ret = table_has(w, "ValidPaths", "ca", &w->has_ca, err)))
		return ret;
	return 0;
}

static int exec(struct cairn_storedb_writer *w, const char *sql, const char *what,
		struct cairn_error *err)
{
	int rc = sqlite3_exec(w->sql, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : sql_fail(w, rc, what, err);
}

int cairn_storedb_writer_open(struct cairn_storedb_writer **out,
			      const struct cairn_storedb_writer_config *cfg,
			      struct cairn_error *err)
{
	struct cairn_storedb_writer *w = NULL;
	char *schema_path = NULL, *dir = NULL;
	int ret = 0, rc, version = 0;
	struct stat st;

	if (!cfg || !cfg->store_dir || !cfg->db_path || cfg->busy_timeout_ms <= 0 ||
	    (cfg->kind != CAIRN_STOREDB_NIX && cfg->kind != CAIRN_STOREDB_GUIX))
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: incomplete configuration");
	size_t dirlen = strlen(cfg->store_dir);
	if (dirlen == 0 || dirlen > CAIRN_STOREDB_DIR_MAX || cfg->store_dir[0] != '/' ||
	    cfg->store_dir[dirlen - 1] == '/')
		return cairn_error_set(err, CAIRN_EINVAL,
				       "storedb: store directory '%s' must be an absolute path "
				       "without a trailing slash",
				       cfg->store_dir);
	size_t plen = strlen(cfg->db_path);
	if (plen == 0 || plen >= PATH_MAX - 16)
		return cairn_error_set(err, CAIRN_EINVAL, "storedb: bad database path");

	w = calloc(1, sizeof(*w));
	if (!w)
		return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
	w->biglock = -1;
	w->kind = cfg->kind;
	w->busy_ms = cfg->busy_timeout_ms;
	w->store_dir = strdup(cfg->store_dir);
	w->dirlen = dirlen;
	w->db_path = strdup(cfg->db_path);
	schema_path = w->db_path ? beside(w->db_path, "schema") : NULL;
	if (w->db_path) {
		const char *slash = strrchr(w->db_path, '/');
		dir = strndup(w->db_path, slash ? (size_t)(slash - w->db_path) : 0);
	}
	if (!w->store_dir || !w->db_path || !schema_path || !dir) {
		ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
		goto out;
	}

	int exists = stat(w->db_path, &st) == 0;
	if (!exists && !(cfg->flags & CAIRN_STOREDB_WRITER_CREATE)) {
		ret = cairn_error_set(err, CAIRN_ENOENT, "storedb: '%s' does not exist",
				      w->db_path);
		goto out;
	}
	if (!exists && dir[0] && (ret = mkdir_p(dir, err)))
		goto out;
	if ((ret = take_biglock(w, !exists, err)))
		goto out;
	if ((ret = read_schema_file(schema_path, &version, err)))
		goto out;
	int want = cfg->kind == CAIRN_STOREDB_GUIX ? CAIRN_STOREDB_GUIX_SCHEMA
						   : CAIRN_STOREDB_NIX_SCHEMA;
	if (exists && version != 0 && version != want) {
		ret = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				      "storedb: %s has schema version %d; cairn writes version "
				      "%d only (let %s upgrade it first)",
				      w->db_path, version, want,
				      cfg->kind == CAIRN_STOREDB_GUIX ? "the Guix daemon" : "Nix");
		goto out;
	}

	rc = sqlite3_open_v2(w->db_path, &w->sql,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
				 (exists ? 0 : SQLITE_OPEN_CREATE),
			     NULL);
	if (rc != SQLITE_OK) {
		ret = cairn_error_set(err, CAIRN_EIO, "storedb: cannot open %s read-write: %s",
				      w->db_path,
				      w->sql ? sqlite3_errmsg(w->sql) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_extended_result_codes(w->sql, 1);
	sqlite3_busy_timeout(w->sql, w->busy_ms);
	/* The schema's triggers are Nix's, but never let a tampered database
	 * run functions on our behalf. */
	if ((ret = exec(w, "PRAGMA trusted_schema = 0", "configuring", err)) ||
	    (ret = exec(w, "PRAGMA foreign_keys = 1", "configuring", err)))
		goto out;
	if (!exists) {
		/* WAL and the schema, as Nix's openDB(create) does; synchronous
		 * NORMAL is Nix's default too (a lost last commit only means a
		 * path is fetched again). */
		if ((ret = exec(w, "PRAGMA journal_mode = WAL", "creating", err)) ||
		    (ret = exec(w, "PRAGMA synchronous = NORMAL", "creating", err)) ||
		    (ret = exec(w, "BEGIN IMMEDIATE", "creating", err)))
			goto out;
		rc = sqlite3_exec(w->sql,
				  cfg->kind == CAIRN_STOREDB_GUIX ? guix_schema : nix_schema, NULL,
				  NULL, NULL);
		if (rc != SQLITE_OK) {
			ret = sql_fail(w, rc, "creating the schema", err);
			sqlite3_exec(w->sql, "ROLLBACK", NULL, NULL, NULL);
			goto out;
		}
		if ((ret = exec(w, "COMMIT", "creating the schema", err)))
			goto out;
		w->created = 1;
	} else if ((ret = exec(w, "PRAGMA synchronous = NORMAL", "configuring", err))) {
		goto out;
	}
	if ((ret = check_schema(w, err)))
		goto out;
	/* Nix writes the version file after the tables; a database without it
	 * (ours after a crash, or made by hand) is one Nix would initialise. */
	if (version == 0 && (ret = write_schema_file(schema_path, want, err)))
		goto out;
	/* Find out now, not after the downloads, whether we may write. */
	if ((ret = exec(w, "BEGIN IMMEDIATE", "taking the write lock", err)))
		goto out;
	if ((ret = exec(w, "ROLLBACK", "taking the write lock", err)))
		goto out;
	*out = w;
	w = NULL;
out:
	cairn_storedb_writer_free(w);
	free(schema_path);
	free(dir);
	return ret;
}

/* ---- statements ------------------------------------------------------- */

static int prepare(struct cairn_storedb_writer *w, int which, sqlite3_stmt **out,
		   struct cairn_error *err)
{
	char q[320];
	const char *text = q;
	if (w->st[which]) {
		sqlite3_reset(w->st[which]);
		sqlite3_clear_bindings(w->st[which]);
		*out = w->st[which];
		return 0;
	}
	switch (which) {
	case W_LOOKUP: text = "SELECT id FROM ValidPaths WHERE path = ?1"; break;
	case W_INSERT:
		/* ?6..?8 exist only where the columns do (Guix lacks them). */
		snprintf(q, sizeof(q),
			 "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize%s%s%s)"
			 " VALUES (?1, ?2, ?3, ?4, ?5%s%s%s)",
			 w->has_ultimate ? ", ultimate" : "", w->has_sigs ? ", sigs" : "",
			 w->has_ca ? ", ca" : "", w->has_ultimate ? ", ?6" : "",
			 w->has_sigs ? ", ?7" : "", w->has_ca ? ", ?8" : "");
		break;
	case W_REF:
		text = "INSERT OR IGNORE INTO Refs (referrer, reference) VALUES (?1, ?2)";
		break;
	case W_OUTPUT:
		text = "INSERT OR REPLACE INTO DerivationOutputs (drv, id, path) VALUES (?1, ?2, ?3)";
		break;
	}
	int rc = sqlite3_prepare_v3(w->sql, text, -1, SQLITE_PREPARE_PERSISTENT, &w->st[which],
				    NULL);
	if (rc != SQLITE_OK)
		return sql_fail(w, rc, "preparing a statement", err);
	*out = w->st[which];
	return 0;
}

static void reset_all(struct cairn_storedb_writer *w)
{
	for (int i = 0; i < W_N_; i++)
		if (w->st[i])
			sqlite3_reset(w->st[i]);
}

/* The id of a valid path: 1 found, 0 not, or an error. */
static int lookup(struct cairn_storedb_writer *w, const char *path, sqlite3_int64 *id,
		  struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int ret = prepare(w, W_LOOKUP, &st, err);
	if (ret)
		return ret;
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		ret = 1;
	} else if (rc == SQLITE_DONE) {
		ret = 0;
	} else {
		ret = sql_fail(w, rc, "looking up a path", err);
	}
	sqlite3_reset(st);
	return ret;
}

int cairn_storedb_writer_is_valid(struct cairn_storedb_writer *w, const char *path,
				  struct cairn_error *err)
{
	sqlite3_int64 id;
	if (!path || !valid_store_path(w, path))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%.200s' is not a store path under '%s'",
				       path ? path : "", w->store_dir);
	return lookup(w, path, &id, err);
}

/* ---- registration ----------------------------------------------------- */

/* Everything about p that can be checked without the database. */
static int check_newpath(struct cairn_storedb_writer *w, const struct cairn_storedb_newpath *p,
			 struct cairn_error *err)
{
	const char *path = p->path ? p->path : "";
	if (!p->path || !valid_store_path(w, p->path))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%.200s' is not a store path under '%s'", path,
				       w->store_dir);
	if (p->nar_hash.algo != CAIRN_HASH_SHA256 || p->nar_size == 0 ||
	    p->nar_size > (uint64_t)INT64_MAX)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s': NAR hash must be SHA-256 and the size "
				       "positive",
				       path);
	if (p->deriver && !valid_store_path(w, p->deriver))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s': deriver '%.200s' is not a store path", path,
				       p->deriver);
	if (p->nrefs > CAIRN_STOREDB_REFS_MAX || (p->nrefs && !p->refs))
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: '%s': too many references",
				       path);
	for (size_t i = 0; i < p->nrefs; i++)
		if (!p->refs[i] || !valid_store_path(w, p->refs[i]))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "storedb: '%s': reference '%.200s' is not a store "
					       "path",
					       path, p->refs[i] ? p->refs[i] : "");
	size_t siglen = 0;
	if (p->nsigs > CAIRN_STOREDB_SIGS_MAX || (p->nsigs && !p->sigs))
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: '%s': too many signatures",
				       path);
	for (size_t i = 0; i < p->nsigs; i++) {
		if (!p->sigs[i] || !valid_token(p->sigs[i], CAIRN_STOREDB_SIGS_LEN_MAX) ||
		    !strchr(p->sigs[i], ':'))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "storedb: '%s': a signature is not 'name:base64'",
					       path);
		siglen += strlen(p->sigs[i]) + 1;
	}
	if (siglen > CAIRN_STOREDB_SIGS_LEN_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: '%s': signatures too long",
				       path);
	if (p->ca && !valid_token(p->ca, CAIRN_STOREDB_CA_LEN_MAX))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s': content address is not printable", path);
	if (p->noutputs > CAIRN_STOREDB_DRV_OUTPUTS_MAX || (p->noutputs && !p->outputs))
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: '%s': too many outputs", path);
	for (size_t i = 0; i < p->noutputs; i++)
		if (!p->outputs[i].name ||
		    !valid_token(p->outputs[i].name, CAIRN_STOREDB_DRV_OUTPUT_NAME_MAX) ||
		    !p->outputs[i].path || !valid_store_path(w, p->outputs[i].path))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "storedb: '%s': a derivation output is malformed",
					       path);
	return 0;
}

/* Insert one path that is not valid yet; its references are. */
static int insert_one(struct cairn_storedb_writer *w, const struct cairn_storedb_newpath *p,
		      int64_t now, struct cairn_error *err)
{
	sqlite3_stmt *st;
	char hash[CAIRN_HASH_STR_MAX];
	char *sigs = NULL;
	int rc, ret;
	sqlite3_int64 id, rid = 0;

	/* Every reference other than the path itself must be a row already. */
	for (size_t i = 0; i < p->nrefs; i++) {
		if (!strcmp(p->refs[i], p->path))
			continue;
		ret = lookup(w, p->refs[i], &rid, err);
		if (ret < 0)
			return ret;
		if (ret == 0)
			return cairn_error_set(err, CAIRN_ENOENT,
					       "storedb: cannot register '%s': its reference '%s' "
					       "is not valid",
					       p->path, p->refs[i]);
	}
	if (cairn_hash_format(&p->nar_hash, CAIRN_HASH_BASE16, hash, sizeof(hash)) < 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "storedb: '%s': bad hash", p->path);
	if (p->nsigs) {
		size_t len = 0;
		for (size_t i = 0; i < p->nsigs; i++)
			len += strlen(p->sigs[i]) + 1;
		sigs = malloc(len);
		if (!sigs)
			return cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
		char *q = sigs;
		for (size_t i = 0; i < p->nsigs; i++) {
			size_t l = strlen(p->sigs[i]);
			if (i)
				*q++ = ' ';
			memcpy(q, p->sigs[i], l);
			q += l;
		}
		*q = '\0';
	}
	if ((ret = prepare(w, W_INSERT, &st, err)))
		goto out;
	sqlite3_bind_text(st, 1, p->path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if (p->deriver)
		sqlite3_bind_text(st, 4, p->deriver, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (sqlite3_int64)p->nar_size);
	if (w->has_ultimate)
		sqlite3_bind_int(st, 6, 0);
	if (w->has_sigs && sigs)
		sqlite3_bind_text(st, 7, sigs, -1, SQLITE_STATIC);
	if (w->has_ca && p->ca)
		sqlite3_bind_text(st, 8, p->ca, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		ret = sql_fail(w, rc, "registering a path", err);
		goto out;
	}
	id = sqlite3_last_insert_rowid(w->sql);
	for (size_t i = 0; i < p->nrefs; i++) {
		if (!strcmp(p->refs[i], p->path))
			rid = id;
		else if ((ret = lookup(w, p->refs[i], &rid, err)) != 1)
			goto out; /* it was there a moment ago, in this transaction */
		if ((ret = prepare(w, W_REF, &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, rid);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			ret = sql_fail(w, rc, "registering a reference", err);
			goto out;
		}
	}
	for (size_t i = 0; i < p->noutputs; i++) {
		if ((ret = prepare(w, W_OUTPUT, &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, p->outputs[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, p->outputs[i].path, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc != SQLITE_DONE) {
			ret = sql_fail(w, rc, "registering a derivation output", err);
			goto out;
		}
	}
	ret = 0;
out:
	free(sigs);
	return ret;
}

int cairn_storedb_writer_register(struct cairn_storedb_writer *w,
				  const struct cairn_storedb_newpath *paths, size_t n,
				  struct cairn_error *err)
{
	int ret, added = 0;
	if (n == 0)
		return 0;
	if (!paths || n > CAIRN_STOREDB_BATCH_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: at most %d paths at once",
				       CAIRN_STOREDB_BATCH_MAX);
	for (size_t i = 0; i < n; i++)
		if ((ret = check_newpath(w, &paths[i], err)))
			return ret;
	int64_t now = (int64_t)time(NULL);
	if ((ret = exec(w, "BEGIN IMMEDIATE", "starting a registration", err)))
		return ret;
	for (size_t i = 0; i < n; i++) {
		sqlite3_int64 id;
		ret = lookup(w, paths[i].path, &id, err);
		if (ret < 0)
			goto fail;
		if (ret == 1)
			continue; /* valid already: left as it is */
		if ((ret = insert_one(w, &paths[i], now, err)))
			goto fail;
		added++;
	}
	reset_all(w);
	if ((ret = exec(w, "COMMIT", "committing a registration", err)))
		goto fail;
	return added;
fail:
	reset_all(w);
	sqlite3_exec(w->sql, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* ---- derivation outputs ----------------------------------------------- */

struct aterm {
	const char *s;
	size_t len, pos;
};

static int at_lit(struct aterm *a, const char *lit)
{
	size_t l = strlen(lit);
	if (a->len - a->pos < l || memcmp(a->s + a->pos, lit, l))
		return 0;
	a->pos += l;
	return 1;
}

/* A quoted string with Nix's escapes (\n \r \t, anything else itself),
 * into a new buffer of at most max bytes. */
static int at_string(struct aterm *a, size_t max, char **out)
{
	if (!at_lit(a, "\""))
		return CAIRN_EFORMAT;
	char *buf = malloc(max + 1);
	size_t n = 0;
	if (!buf)
		return CAIRN_ENOMEM;
	while (a->pos < a->len && a->s[a->pos] != '"') {
		char c = a->s[a->pos++];
		if (c == '\\') {
			if (a->pos == a->len)
				break;
			c = a->s[a->pos++];
			c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
		}
		if (n == max) {
			free(buf);
			return CAIRN_ELIMIT;
		}
		buf[n++] = c;
	}
	if (!at_lit(a, "\"") || memchr(buf, '\0', n)) {
		free(buf);
		return CAIRN_EFORMAT;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

void cairn_storedb_drv_outputs_free(struct cairn_storedb_drv_output *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		free(v[i].path);
	}
	free(v);
}

int cairn_storedb_drv_parse(const char *text, size_t len, const char *store_dir,
			    struct cairn_storedb_drv_output **out, size_t *nout,
			    struct cairn_error *err)
{
	struct aterm a = {text, len, 0};
	struct cairn_storedb_drv_output *v = NULL;
	size_t n = 0, seen = 0;
	int rc = CAIRN_EFORMAT;
	const char *why = "not a derivation (no \"Derive([\")";

	if (!text || !store_dir || len > CAIRN_STOREDB_DRV_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "storedb: derivation too large");
	if (!at_lit(&a, "Derive(["))
		goto fail;
	v = calloc(CAIRN_STOREDB_DRV_OUTPUTS_MAX, sizeof(*v));
	if (!v) {
		rc = CAIRN_ENOMEM;
		goto fail;
	}
	why = "malformed outputs";
	while (!at_lit(&a, "]")) {
		char *name = NULL, *path = NULL, *algo = NULL, *hash = NULL;
		if (seen++ && !at_lit(&a, ","))
			goto fail;
		if (n == CAIRN_STOREDB_DRV_OUTPUTS_MAX) {
			rc = CAIRN_ELIMIT;
			why = "too many outputs";
			goto fail;
		}
		if (!at_lit(&a, "(") ||
		    (rc = at_string(&a, CAIRN_STOREDB_DRV_OUTPUT_NAME_MAX, &name)) ||
		    (rc = at_lit(&a, ",") ? 0 : CAIRN_EFORMAT) ||
		    (rc = at_string(&a, CAIRN_STOREDB_PATH_MAX, &path)) ||
		    (rc = at_lit(&a, ",") ? 0 : CAIRN_EFORMAT) ||
		    (rc = at_string(&a, 64, &algo)) ||
		    (rc = at_lit(&a, ",") ? 0 : CAIRN_EFORMAT) ||
		    (rc = at_string(&a, 1024, &hash)) || (rc = at_lit(&a, ")") ? 0 : CAIRN_EFORMAT)) {
			free(name);
			free(path);
			free(algo);
			free(hash);
			if (rc == 0)
				rc = CAIRN_EFORMAT;
			goto fail;
		}
		free(algo);
		free(hash);
		struct cairn_store_path sp;
		int bad = !valid_token(name, CAIRN_STOREDB_DRV_OUTPUT_NAME_MAX) ||
			  (path[0] && cairn_store_path_parse(path, strlen(path), store_dir, &sp,
							     NULL) != 0);
		if (bad) {
			free(name);
			free(path);
			rc = CAIRN_EFORMAT;
			why = "an output is not a name and a store path";
			goto fail;
		}
		if (!path[0]) {
			/* floating content-addressed: no path until built */
			free(name);
			free(path);
			continue;
		}
		v[n].name = name;
		v[n].path = path;
		n++;
	}
	*out = v;
	*nout = n;
	return 0;
fail:
	cairn_storedb_drv_outputs_free(v, n);
	if (rc == CAIRN_ENOMEM)
		return cairn_error_set(err, rc, "storedb: out of memory");
	return cairn_error_set(err, rc ? rc : CAIRN_EFORMAT, "storedb: derivation: %s", why);
}
