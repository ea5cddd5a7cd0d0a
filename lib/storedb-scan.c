/*
 * storedb-scan.c - the whole-table queries on a store database: the count
 * of valid paths, the newest one, every path (in pages, each its own short
 * transaction), a page after an id, and a closure.  Same rules as the
 * lookups in storedb.c: one short read transaction per attempt, rows
 * checked before anything is copied out.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cairn/storedb.h"
#include "cairn/storepath.h"
#include "storedb-int.h"
#include "storedb-sql.h"
#include "cairn/banned.h"

/* Paths read per transaction by cairn_storedb_foreach. */
#define FOREACH_PAGE 512

static int count_once(struct cairn_storedb *db, uint64_t *count, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int ret = storedb_txn_begin(db, err);
	if (ret)
		return ret;
	ret = storedb_prepare(db, ST_COUNT, &st, err);
	if (ret)
		goto out;
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		ret = storedb_sql_fail(db, db->sql, rc, "counting paths", err);
		goto out;
	}
	*count = (uint64_t)sqlite3_column_int64(st, 0);
out:
	storedb_txn_end(db);
	return ret;
}

int cairn_storedb_count(struct cairn_storedb *db, uint64_t *count, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	storedb_enter(db);
	do {
		storedb_attempt_init(db, &e);
		ret = count_once(db, count, &e);
	} while (storedb_retry_after_wal_loss(db, ret));
	return storedb_attempt_done(ret, &e, err);
}

static bool is_drv(const char *p, size_t len)
{
	return len > 4 && memcmp(p + len - 4, ".drv", 4) == 0;
}

static int recent_once(struct cairn_storedb *db, char **out, struct cairn_error *err)
{
	sqlite3_stmt *st;
	char *newest = NULL, *found = NULL;
	int rc = SQLITE_DONE, ret = storedb_txn_begin(db, err);
	if (ret)
		return ret;
	ret = storedb_prepare(db, ST_RECENT, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_int(st, 1, CAIRN_STOREDB_RECENT_SCAN);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p;
		size_t plen;
		sqlite3_int64 id = sqlite3_column_int64(st, 0);
		if (!storedb_column_text(st, 1, &p, &plen) || !storedb_valid_store_path(db, p, plen)) {
			ret = storedb_bad_row(err, id, p, plen,
				      "path is not a valid path in the store directory");
			goto out;
		}
		char **slot = is_drv(p, plen) ? &newest : &found;
		if (!*slot && !(*slot = storedb_dup_n(p, plen))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		if (found)
			break;
	}
	if (!found && rc != SQLITE_DONE)
		ret = storedb_sql_fail(db, db->sql, rc, "listing recent paths", err);
out:
	storedb_txn_end(db);
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
		storedb_attempt_init(db, &e);
		ret = recent_once(db, out, &e);
	} while (storedb_retry_after_wal_loss(db, ret));
	return storedb_attempt_done(ret, &e, err);
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
	int rc, ret = storedb_txn_begin(db, err);
	if (ret)
		return ret;
	ret = storedb_prepare(db, ST_PAGE, &st, err);
	if (ret)
		goto out;
	sqlite3_bind_int64(st, 1, *after);
	sqlite3_bind_int(st, 2, FOREACH_PAGE);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p;
		size_t plen;
		last = sqlite3_column_int64(st, 0);
		if (!storedb_column_text(st, 1, &p, &plen) || !storedb_valid_store_path(db, p, plen)) {
			ret = storedb_bad_row(err, last, p, plen,
				      "path is not a valid path in the store directory");
			goto out;
		}
		if (!(page->v[page->n] = storedb_dup_n(p, plen))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		page->n++;
	}
	if (rc != SQLITE_DONE) {
		ret = storedb_sql_fail(db, db->sql, rc, "listing paths", err);
		goto out;
	}
	*after = last;
out:
	storedb_txn_end(db);
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
			storedb_attempt_init(db, &e);
			ret = read_page(db, &after, &page, &e);
		} while (storedb_retry_after_wal_loss(db, ret));
		if (ret) {
			storedb_attempt_done(ret, &e, err);
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
		storedb_attempt_init(db, &e);
		ret = read_page(db, &at, &page, &e);
	} while (storedb_retry_after_wal_loss(db, ret));
	if (ret) {
		storedb_attempt_done(ret, &e, err);
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
	int rc, ret = storedb_txn_begin(db, err);
	if (ret)
		return ret;
	ret = storedb_prepare(db, ST_CLOSURE, &st, err);
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
		if (!storedb_column_text(st, 0, &p, &len) || !storedb_valid_store_path(db, p, len)) {
			char q[QUOTE_MAX + 4];
			storedb_quote(q, p ? p : "", len);
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
		if (!(res.v[res.n] = storedb_dup_n(p, len))) {
			ret = cairn_error_set(err, CAIRN_ENOMEM, "storedb: out of memory");
			goto out;
		}
		res.n++;
	}
	if (rc != SQLITE_DONE) {
		ret = storedb_sql_fail(db, db->sql, rc, "reading a closure", err);
		goto out;
	}
	if (res.n == 0) {
		ret = cairn_error_set(err, CAIRN_ENOENT, "storedb: '%s' is not a valid path", path);
		goto out;
	}
	*out = res;
	memset(&res, 0, sizeof(res));
out:
	storedb_txn_end(db);
	cairn_storedb_paths_release(&res);
	return ret;
}

int cairn_storedb_closure(struct cairn_storedb *db, const char *path, size_t max,
			  struct cairn_storedb_paths *out, struct cairn_error *err)
{
	struct cairn_error e;
	int ret;
	size_t plen = path ? strnlen(path, CAIRN_STOREDB_PATH_MAX + 1) : 0;
	if (!path || !storedb_valid_store_path(db, path, plen)) {
		char q[QUOTE_MAX + 4];
		storedb_quote(q, path ? path : "", plen);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "storedb: '%s' is not a store path under '%s'", q,
				       db->store_dir);
	}
	if (max == 0 || max > CAIRN_STOREDB_CLOSURE_MAX)
		max = CAIRN_STOREDB_CLOSURE_MAX;
	storedb_enter(db);
	do {
		storedb_attempt_init(db, &e);
		ret = closure_once(db, path, plen, max, out, &e);
	} while (storedb_retry_after_wal_loss(db, ret));
	return storedb_attempt_done(ret, &e, err);
}
