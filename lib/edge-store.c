/*
 * edge-store.c - the mirror's on-disk cache: verified nars named by their
 * SHA-256 under data/, an SQLite index, LRU eviction, crash recovery.
 *
 * The index is authoritative only together with the files: a row is
 * written after its file is renamed into place and removed before its file
 * is unlinked, so whatever moment the process dies at, every row names a
 * whole file.  Start-up repairs the other direction (files without rows,
 * rows whose file is gone) and empties tmp/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "edge-int.h"
#include "cairn/banned.h"

/* --- store ------------------------------------------------------------------ */

struct nar_ent {
	char *path;
	char file[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	uint64_t atime; /* a tick, not a clock: larger is more recent */
	int dirty;	/* atime not yet written back */
};

struct edge_store {
	pthread_mutex_t mu;
	char *dir;
	int data_fd, tmp_fd;
	sqlite3 *db;
	uint64_t max_size;
	struct map nars; /* path -> struct nar_ent */
	uint64_t bytes;
	uint64_t tick;
	uint64_t evictions;
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

static int open_subdir(int dirfd, const char *name, int *out, struct cairn_error *err)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "mirror cache: mkdir '%s'", name);
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "mirror cache: open '%s'", name);
	*out = fd;
	return 0;
}

/* Remove every entry of a directory that `keep` does not want. */
static void sweep_dir(int dirfd, int (*keep)(void *ctx, const char *name), void *ctx)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!keep || !keep(ctx, de->d_name))
			unlinkat(dirfd, de->d_name, 0);
	}
	closedir(d);
}

static int keep_indexed(void *ctx, const char *name)
{
	struct edge_store *s = ctx;
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it))
		if (!strcmp(((struct nar_ent *)e->val)->file, name))
			return 1;
	return 0;
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
		struct stat sb;
		if (!path || !file || !valid_file_name(file) || size < 0 ||
		    fstatat(s->data_fd, file, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != (uint64_t)size) {
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
		n->atime = atime > 0 ? (uint64_t)atime : 0;
		if (n->atime > s->tick)
			s->tick = n->atime;
		if (map_put(&s->nars, path, n, &old) < 0) {
			nar_ent_free(n);
			rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
			goto out;
		}
		if (old) {
			s->bytes -= ((struct nar_ent *)old)->size;
			nar_ent_free(old);
		}
		s->bytes += n->size;
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return rc;
}

int edge_store_open(struct edge_store **out, const char *dir, uint64_t max_size,
		    struct cairn_error *err)
{
	struct edge_store *s = calloc(1, sizeof(*s));
	int rc, dfd = -1;
	char *dbpath = NULL;
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
	pthread_mutex_init(&s->mu, NULL);
	s->data_fd = s->tmp_fd = -1;
	map_init(&s->nars, NULL);
	s->max_size = max_size;
	if (!(s->dir = strdup(dir))) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
		goto out;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = cairn_error_errno(err, errno, "mirror cache: mkdir '%s'", dir);
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = cairn_error_errno(err, errno, "mirror cache: open '%s'", dir);
		goto out;
	}
	if ((rc = open_subdir(dfd, "data", &s->data_fd, err)) < 0 ||
	    (rc = open_subdir(dfd, "tmp", &s->tmp_fd, err)) < 0)
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
			 "BLOB NOT NULL);",
			 err)) < 0)
		goto out;
	/* downloads that were in progress when the last run ended */
	sweep_dir(s->tmp_fd, NULL, NULL);
	if ((rc = load_index(s, err)) < 0)
		goto out;
	sweep_dir(s->data_fd, keep_indexed, s);
	*out = s;
	s = NULL;
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
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
	if (s->data_fd >= 0)
		close(s->data_fd);
	if (s->tmp_fd >= 0)
		close(s->tmp_fd);
	pthread_mutex_destroy(&s->mu);
	free(s->dir);
	free(s);
}

int edge_store_data_fd(const struct edge_store *s)
{
	return s->data_fd;
}

int edge_store_nar_get(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size)
{
	int found = 0;
	pthread_mutex_lock(&s->mu);
	struct nar_ent *n = map_get(&s->nars, path);
	if (n) {
		n->atime = ++s->tick;
		n->dirty = 1;
		memcpy(name, n->file, EDGE_FILE_NAME_LEN + 1);
		*size = n->size;
		found = 1;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

int edge_store_tmp_open(struct edge_store *s, char *tmppath, size_t cap, int *fd,
			struct cairn_error *err)
{
	int n = snprintf(tmppath, cap, "%s/tmp/dl-XXXXXX", s->dir);
	if (n < 0 || (size_t)n >= cap)
		return cairn_error_set(err, CAIRN_ELIMIT, "mirror cache: path too long");
	int f = mkostemp(tmppath, O_CLOEXEC);
	if (f < 0)
		return cairn_error_errno(err, errno, "mirror cache: temporary file");
	*fd = f;
	return 0;
}

/* The least recently used entry other than `keep`, or NULL. */
static struct nar_ent *lru_victim(struct edge_store *s, const char *keep)
{
	struct nar_ent *best = NULL;
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it)) {
		struct nar_ent *n = e->val;
		if (keep && !strcmp(n->path, keep))
			continue;
		if (!best || n->atime < best->atime)
			best = n;
	}
	return best;
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

/* Under s->mu.  Row first, file second (see the opening comment). */
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
		unlinkat(s->data_fd, n->file, 0);
	map_take(&s->nars, n->path);
	s->bytes -= n->size;
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

	pthread_mutex_lock(&s->mu);
	locked = 1;
	while (s->max_size && s->bytes + size > s->max_size) {
		struct nar_ent *v = lru_victim(s, path);
		if (!v)
			break;
		if ((rc = forget_one(s, v, err)) < 0)
			goto out;
		s->evictions++;
	}
	char dst[EDGE_FILE_NAME_LEN + 8];
	snprintf(dst, sizeof(dst), "%s", file);
	int tfd = open(tmppath, O_RDONLY | O_CLOEXEC);
	if (tfd >= 0) {
		/* a crash after the rename must not leave a row naming lost data */
		fdatasync(tfd);
		close(tfd);
	}
	if (renameat(AT_FDCWD, tmppath, s->data_fd, dst) < 0) {
		rc = cairn_error_errno(err, errno, "mirror cache: rename into cache");
		goto out;
	}
	n->atime = ++s->tick;
	if (sqlite3_prepare_v2(s->db,
			       "INSERT OR REPLACE INTO nar (path, file, size, atime) VALUES (?,?,?,?)",
			       -1, &st, NULL) ||
	    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC) ||
	    sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC) ||
	    sqlite3_bind_int64(st, 3, (sqlite3_int64)size) ||
	    sqlite3_bind_int64(st, 4, (sqlite3_int64)n->atime) || sqlite3_step(st) != SQLITE_DONE) {
		rc = db_err(s, err, "insert");
		goto out;
	}
	if (map_put(&s->nars, path, n, &old) < 0) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "mirror cache: out of memory");
		goto out;
	}
	if (old) {
		s->bytes -= ((struct nar_ent *)old)->size;
		nar_ent_free(old);
	}
	s->bytes += size;
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

int edge_store_flush(struct edge_store *s, struct cairn_error *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "UPDATE nar SET atime = ? WHERE path = ?", -1, &st, NULL)) {
		rc = db_err(s, err, "flush");
		goto out;
	}
	sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL);
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, &s->nars); e; e = map_iter_next(&it)) {
		struct nar_ent *n = e->val;
		if (!n->dirty)
			continue;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)n->atime);
		sqlite3_bind_text(st, 2, n->path, -1, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_reset(st);
		n->dirty = 0;
	}
	if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		rc = db_err(s, err, "flush commit");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

void edge_store_stats(struct edge_store *s, struct edge_store_stats *out)
{
	pthread_mutex_lock(&s->mu);
	out->n_nars = s->nars.n;
	out->bytes = s->bytes;
	out->evictions = s->evictions;
	pthread_mutex_unlock(&s->mu);
}
