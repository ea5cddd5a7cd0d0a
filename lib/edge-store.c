/*
 * edge-store.c - the mirror's on-disk cache: verified nars named by their
 * SHA-256 under data/, in the nar cache (narcache.h: files, bound, LRU
 * eviction, crash recovery), and the SQLite index of which path each file
 * is for, with the narinfos and upstreams' nix-cache-info.
 *
 * The index is authoritative only together with the files: a row is
 * written after its file is renamed into place and removed before its file
 * is unlinked, so whatever moment the process dies at, every row names a
 * whole file.  Start-up repairs the other direction (files without rows,
 * rows whose file is gone) and empties tmp/.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "edge-int.h"
#include "narcache.h"
#include "cairn/banned.h"

/* --- store ------------------------------------------------------------------ */

struct nar_ent {
	char *path;
	char file[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
};

/* Files, their bound and recency are the nar cache's (narcache.h); the
 * store keeps which path each file is for, here and in the index. */
struct edge_store {
	pthread_mutex_t mu; /* the index, and the cache under it */
	struct narcache *nc;
	sqlite3 *db;
	uint64_t max_size;
	struct map nars; /* path -> struct nar_ent */
};

static int db_err(struct edge_store *s, struct cairn_error *err, const char *what)
{
	return cairn_error_set(err, CAIRN_EIO, "mirror cache: %s: %s", what,
			       s->db ? sqlite3_errmsg(s->db) : "no database");
}

static int db_exec(struct edge_store *s, const char *sql, struct cairn_error *err)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(s, err, sql);
	return 0;
}

static void nar_ent_free(struct nar_ent *n)
{
	if (n) {
		free(n->path);
		free(n);
	}
}

static int valid_file_name(const char *f)
{
	if (strlen(f) != EDGE_FILE_NAME_LEN)
		return 0;
	for (; *f; f++)
		if (!((*f >= '0' && *f <= '9') || (*f >= 'a' && *f <= 'f')))
			return 0;
	return 1;
}

static int load_index(struct edge_store *s, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL, *del = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT path, file, size, atime FROM nar", -1, &st, NULL) ||
	    sqlite3_prepare_v2(s->db, "DELETE FROM nar WHERE path = ?", -1, &del, NULL)) {
		rc = db_err(s, err, "prepare");
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(st, 0);
		const char *file = (const char *)sqlite3_column_text(st, 1);
		int64_t size = sqlite3_column_int64(st, 2);
		int64_t atime = sqlite3_column_int64(st, 3);
		int arc = CAIRN_EFORMAT;
		if (path && file && valid_file_name(file) && size >= 0)
			arc = narcache_adopt(s->nc, file, (uint64_t)size,
					     atime > 0 ? (uint64_t)atime : 0);
		if (arc == CAIRN_ENOMEM) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
			goto out;
		}
		if (arc < 0) {
			/* the file went away (or never fully arrived): the row goes */
			sqlite3_bind_text(del, 1, path ? path : "", -1, SQLITE_TRANSIENT);
			sqlite3_step(del);
			sqlite3_reset(del);
			continue;
		}
		struct nar_ent *n = calloc(1, sizeof(*n));
		void *old;
		if (!n || !(n->path = strdup(path))) {
			nar_ent_free(n);
			rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
			goto out;
		}
		memcpy(n->file, file, EDGE_FILE_NAME_LEN + 1);
		n->size = (uint64_t)size;
		if (map_put(&s->nars, path, n, &old) < 0) {
			nar_ent_free(n);
			rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
			goto out;
		}
		nar_ent_free(old);
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return rc;
}

/*
 * The cache evicts `file` (under s->mu, held by whoever trims): its rows
 * go first, then its paths here; the cache unlinks the file after.
 */
static int evict_file(void *ctx, const char *file)
{
	struct edge_store *s = ctx;
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM nar WHERE file = ?", -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, file, -1, SQLITE_STATIC) || sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(s, NULL, "evict");
		goto out;
	}
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it)) {
		struct nar_ent *n = e->val;
		if (!strcmp(n->file, file)) {
			map_take(&s->nars, n->path);
			nar_ent_free(n);
		}
	}
out:
	sqlite3_finalize(st);
	return rc;
}

int edge_store_open(struct edge_store **out, const char *dir, uint64_t max_size,
		    struct cairn_error *err)
{
	struct edge_store *s = calloc(1, sizeof(*s));
	int rc;
	char *dbpath = NULL;
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
	pthread_mutex_init(&s->mu, NULL);
	map_init(&s->nars, NULL);
	s->max_size = max_size;
	struct narcache_config nc = {.dir = dir,
				     .data = "data",
				     .what = "mirror cache",
				     .max_size = max_size,
				     .evict = evict_file,
				     .ctx = s};
	if ((rc = narcache_open(&s->nc, &nc, err)) < 0)
		goto out;
	size_t n = strlen(dir) + sizeof("/index.sqlite");
	if (!(dbpath = malloc(n))) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
		goto out;
	}
	snprintf(dbpath, n, "%s/index.sqlite", dir);
	if (sqlite3_open_v2(dbpath, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		rc = db_err(s, err, "open index");
		goto out;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if ((rc = db_exec(s, "PRAGMA journal_mode=WAL", err)) < 0 ||
	    (rc = db_exec(s, "PRAGMA synchronous=NORMAL", err)) < 0 ||
	    (rc =
		 db_exec(s,
			 "CREATE TABLE IF NOT EXISTS nar (path TEXT PRIMARY KEY, file TEXT NOT "
			 "NULL, size INTEGER NOT NULL, atime INTEGER NOT NULL);"
			 "CREATE TABLE IF NOT EXISTS narinfo (hash TEXT PRIMARY KEY, text BLOB NOT "
			 "NULL, fetched INTEGER NOT NULL);"
			 "CREATE TABLE IF NOT EXISTS cache_info (upstream TEXT PRIMARY KEY, text "
			 "BLOB NOT NULL);"
			 /* eviction and recency go by file (the nar cache's unit): an
			  * index made on first open of an older cache, which older
			  * versions ignore */
			 "CREATE INDEX IF NOT EXISTS nar_file ON nar (file);",
			 err)) < 0)
		goto out;
	if ((rc = load_index(s, err)) < 0)
		goto out;
	narcache_sweep(s->nc);
	/* a smaller --max-size than the last run's */
	pthread_mutex_lock(&s->mu);
	rc = narcache_trim(s->nc, 0, NULL, err);
	pthread_mutex_unlock(&s->mu);
	if (rc < 0)
		goto out;
	*out = s;
	s = NULL;
	rc = 0;
out:
	free(dbpath);
	edge_store_free(s);
	return rc;
}

void edge_store_free(struct edge_store *s)
{
	if (!s)
		return;
	if (s->db) {
		edge_store_flush(s, NULL);
		sqlite3_close(s->db);
	}
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it))
		nar_ent_free(e->val);
	map_release(&s->nars);
	narcache_free(s->nc);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

int edge_store_data_fd(const struct edge_store *s)
{
	return narcache_data_fd(s->nc);
}

int edge_store_nar_get(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size)
{
	int found = 0;
	pthread_mutex_lock(&s->mu);
	struct nar_ent *n = map_get(&s->nars, path);
	if (n && narcache_touch(s->nc, n->file)) {
		memcpy(name, n->file, EDGE_FILE_NAME_LEN + 1);
		*size = n->size;
		found = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

int edge_store_nar_pin(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size)
{
	int found = 0;
	pthread_mutex_lock(&s->mu);
	struct nar_ent *n = map_get(&s->nars, path);
	if (n && narcache_touch(s->nc, n->file) && narcache_pin(s->nc, n->file)) {
		memcpy(name, n->file, EDGE_FILE_NAME_LEN + 1);
		*size = n->size;
		found = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

void edge_store_nar_unpin(struct edge_store *s, const char name[EDGE_FILE_NAME_LEN + 1])
{
	pthread_mutex_lock(&s->mu);
	narcache_unpin(s->nc, name);
	/* the pin may have held the cache over its bound while a commit
	 * trimmed: what it kept goes now (an error is told by the next commit) */
	if (narcache_over(s->nc))
		(void)narcache_trim(s->nc, 0, NULL, NULL);
	pthread_mutex_unlock(&s->mu);
}

int edge_store_tmp_open(struct edge_store *s, char *tmppath, size_t cap, int *fd,
			struct cairn_error *err)
{
	return narcache_tmp_open(s->nc, "dl-", tmppath, cap, fd, err);
}

static int file_in_use(struct edge_store *s, const char *file, const struct nar_ent *except)
{
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it))
		if (e->val != except && !strcmp(((struct nar_ent *)e->val)->file, file))
			return 1;
	return 0;
}

static void file_name(const uint8_t sha256[32], char file[EDGE_FILE_NAME_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 32; i++) {
		file[2 * i] = hex[sha256[i] >> 4];
		file[2 * i + 1] = hex[sha256[i] & 15];
	}
	file[EDGE_FILE_NAME_LEN] = 0;
}

/* Under s->mu: forget the nar at n->path.  Row first, file second (see
 * narcache.h); the file stays while another path names it. */
static int forget_one(struct edge_store *s, struct nar_ent *n, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(s->db, "DELETE FROM nar WHERE path = ?", -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, n->path, -1, SQLITE_STATIC) || sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(s, err, "evict");
		goto out;
	}
	if (!file_in_use(s, n->file, n))
		narcache_remove(s->nc, n->file);
	map_take(&s->nars, n->path);
	nar_ent_free(n);
out:
	sqlite3_finalize(st);
	return rc;
}

int edge_store_nar_drop_unless(struct edge_store *s, const char *path, const uint8_t *sha256)
{
	char file[EDGE_FILE_NAME_LEN + 1];
	int dropped = 0;
	pthread_mutex_lock(&s->mu);
	struct nar_ent *n = map_get(&s->nars, path);
	if (sha256)
		file_name(sha256, file);
	if (n && (!sha256 || strcmp(n->file, file)))
		dropped = forget_one(s, n, NULL) == 0;
	pthread_mutex_unlock(&s->mu);
	return dropped;
}

int edge_store_nar_commit(struct edge_store *s, const char *path, const char *tmppath,
			  const uint8_t sha256[32], uint64_t size, struct cairn_error *err)
{
	char file[EDGE_FILE_NAME_LEN + 1];
	struct nar_ent *n = NULL;
	sqlite3_stmt *st = NULL;
	void *old = NULL;
	uint64_t tick = 0;
	int rc = 0, locked = 0;

	file_name(sha256, file);
	if (s->max_size && size > s->max_size) {
		rc = cairn_error_set(err, CAIRN_ELIMIT,
				     "mirror cache: '%s' (%llu bytes) is larger than the cache", path,
				     (unsigned long long)size);
		goto out;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->path = strdup(path))) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
		goto out;
	}
	memcpy(n->file, file, sizeof(file));
	n->size = size;
	/* a crash after the rename must not leave a row naming lost data; a
	 * failure here is told by the rename or the next open */
	(void)narcache_sync(s->nc, -1, tmppath, NULL);

	pthread_mutex_lock(&s->mu);
	locked = 1;
	/* room first, so that the cache never holds more than its bound */
	if ((rc = narcache_trim(s->nc, size, file, err)) < 0)
		goto out;
	if ((rc = narcache_commit(s->nc, tmppath, file, size, err)) < 0)
		goto out;
	narcache_get(s->nc, file, NULL, &tick);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO nar (path, file, size, atime) VALUES (?,?,?,?)",
			       -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)size) ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)tick) || sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(s, err, "insert");
		goto out;
	}
	if (map_put(&s->nars, path, n, &old) < 0) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
		goto out;
	}
	if (old && strcmp(((struct nar_ent *)old)->file, file) &&
	    !file_in_use(s, ((struct nar_ent *)old)->file, n))
		narcache_remove(s->nc, ((struct nar_ent *)old)->file);
	nar_ent_free(old);
	n = NULL;
out:
	if (locked)
		pthread_mutex_unlock(&s->mu);
	sqlite3_finalize(st);
	if (rc < 0)
		unlink(tmppath);
	nar_ent_free(n);
	return rc;
}

int edge_store_narinfo_put(struct edge_store *s, const char *hash, const char *text, size_t len,
			   int64_t fetched, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO narinfo (hash, text, fetched) VALUES (?,?,?)",
			       -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) ||
	    sqlite3_bind_blob(st, 2, text, (int)len, SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 3, fetched) || sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(s, err, "narinfo insert");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int edge_store_narinfo_delete(struct edge_store *s, const char *hash, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "DELETE FROM narinfo WHERE hash = ?", -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC) || sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(s, err, "narinfo delete");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int edge_store_narinfo_purge(struct edge_store *s, int64_t before, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "DELETE FROM narinfo WHERE fetched < ?", -1, &st, NULL) ||
	    sqlite3_bind_int64(st, 1, before) || sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(s, err, "narinfo purge");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int edge_store_narinfo_each(struct edge_store *s,
			    int (*fn)(void *ctx, const char *hash, const char *text, size_t len,
				      int64_t fetched),
			    void *ctx, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT hash, text, fetched FROM narinfo", -1, &st, NULL)) {
		rc = db_err(s, err, "narinfo select");
		goto out;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *hash = (const char *)sqlite3_column_text(st, 0);
		const char *text = sqlite3_column_blob(st, 1);
		int len = sqlite3_column_bytes(st, 1);
		if (!hash || !text || len <= 0)
			continue;
		if ((rc = fn(ctx, hash, text, (size_t)len, sqlite3_column_int64(st, 2))) < 0)
			goto out;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int edge_store_info_put(struct edge_store *s, const char *upstream, const char *text, size_t len,
			struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO cache_info (upstream, text) VALUES (?,?)",
			       -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, upstream, -1, SQLITE_STATIC) ||
	    sqlite3_bind_blob(st, 2, text, (int)len, SQLITE_STATIC) ||
	    sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(s, err, "cache info insert");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int edge_store_info_get(struct edge_store *s, const char *upstream, size_t max, char **text,
			size_t *len, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT text FROM cache_info WHERE upstream = ?", -1, &st,
			       NULL) ||
	    sqlite3_bind_text(st, 1, upstream, -1, SQLITE_STATIC)) {
		rc = db_err(s, err, "cache info select");
		goto out;
	}
	if (sqlite3_step(st) == SQLITE_ROW) {
		const void *t = sqlite3_column_blob(st, 0);
		int n = sqlite3_column_bytes(st, 0);
		if (!t || n <= 0 || (size_t)n > max)
			goto out; /* not one we wrote: as if there were none */
		if (!(*text = malloc((size_t)n))) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
			goto out;
		}
		memcpy(*text, t, (size_t)n);
		*len = (size_t)n;
		rc = 1;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

struct flush {
	struct edge_store *s;
	sqlite3_stmt *st;
};

static int flush_one(void *ctx, const char *file, uint64_t tick)
{
	struct flush *f = ctx;
	sqlite3_bind_int64(f->st, 1, (sqlite3_int64)tick);
	sqlite3_bind_text(f->st, 2, file, -1, SQLITE_STATIC);
	sqlite3_step(f->st);
	sqlite3_reset(f->st);
	return 0;
}

int edge_store_flush(struct edge_store *s, struct cairn_error *err)
{
	struct flush f = {.s = s};
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "UPDATE nar SET atime = ? WHERE file = ?", -1, &f.st,
			       NULL)) {
		rc = db_err(s, err, "flush");
		goto out;
	}
	sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
	narcache_each_dirty(s->nc, flush_one, &f);
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_err(s, err, "flush commit");
out:
	sqlite3_finalize(f.st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void edge_store_stats(struct edge_store *s, struct edge_store_stats *out)
{
	struct narcache_stats st;
	pthread_mutex_lock(&s->mu);
	narcache_stats(s->nc, &st);
	out->n_nars = s->nars.n;
	out->bytes = st.bytes;
	out->evictions = st.evictions;
	pthread_mutex_unlock(&s->mu);
}
