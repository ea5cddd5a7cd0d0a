/*
 * feed.c - the change feed's log: a SQLite database of events whose
 * sequence numbers never go back (feed.h has the schema and why), and the
 * pages and snapshots read from it.
 *
 * Two connections.  The writer's (lock, recursive: a batch between
 * cairn_feed_begin and cairn_feed_commit holds it, and the calls inside
 * take it again) appends; the reader's (rlock) renders pages and reads the
 * head, and in WAL mode it sees committed events only, so a page never
 * shows an event of a batch that is then rolled back (its number would be
 * handed out again).  A snapshot opens a connection of its own and reads
 * in one transaction, so a slow client holds no lock anyone waits for.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cairn/hash.h"
#include "cairn/storepath.h"
#include "feed-int.h"
#include "cairn/banned.h"

#define FEED_BUSY_MS 10000
/* A snapshot goes out in pieces of about this size. */
#define FEED_SNAP_CHUNK (256u * 1024u)

static const char feed_schema[] =
	"CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
	"kind INTEGER NOT NULL, hashpart TEXT NOT NULL, narinfo BLOB);"
	"CREATE TABLE IF NOT EXISTS items (hashpart TEXT PRIMARY KEY, seq INTEGER NOT NULL) "
	"WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS items_seq ON items(seq);";

struct cairn_feed {
	pthread_mutex_t lock, rlock;
	sqlite3 *db, *rdb;
	char *path;
	char id[CAIRN_FEED_ID_LEN + 1];
	int depth; /* cairn_feed_begin nesting */
};

static int db_fail(sqlite3 *db, struct cairn_error *err, const char *what)
{
	return cairn_error_set(err, CAIRN_EIO, "feed: %s: %s", what,
			       db ? sqlite3_errmsg(db) : "cannot open");
}

static int exec(sqlite3 *db, const char *sql, struct cairn_error *err)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(db, err, sql);
	return 0;
}

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, struct cairn_error *err)
{
	if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
		return db_fail(db, err, "prepare");
	return 0;
}

/* The text value of meta key k into out (cap bytes), or "" when unset. */
static int meta_get(sqlite3 *db, const char *k, char *out, size_t cap, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT v FROM meta WHERE k = ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	out[0] = '\0';
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		snprintf(out, cap, "%s", v ? v : "");
	} else if (s != SQLITE_DONE) {
		rc = db_fail(db, err, "read meta");
	}
	sqlite3_finalize(st);
	return rc;
}

static int meta_set(sqlite3 *db, const char *k, const char *v, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(db, err, "write meta");
	sqlite3_finalize(st);
	return rc;
}

static uint64_t meta_u64(sqlite3 *db, const char *k, struct cairn_error *err, int *rc)
{
	char v[32];
	*rc = meta_get(db, k, v, sizeof(v), err);
	if (*rc < 0 || !v[0])
		return 0;
	return strtoull(v, NULL, 10);
}

static int open_db(const char *path, int flags, sqlite3 **out, struct cairn_error *err)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		int rc = cairn_error_set(err, CAIRN_EIO, "feed: cannot open '%s': %s", path,
					 db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, FEED_BUSY_MS);
	*out = db;
	return 0;
}

int cairn_feed_open(struct cairn_feed **out, const char *path, struct cairn_error *err)
{
	struct cairn_feed *f = calloc(1, sizeof(*f));
	int rc;
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	}
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&f->lock, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&f->rlock, NULL);
	if ((rc = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &f->db, err)) < 0)
		goto fail;
	/* FULL: a sequence number handed out must not come back after a
	 * power loss (a follower may have seen it) */
	if ((rc = exec(f->db, "PRAGMA journal_mode=WAL", err)) < 0 ||
	    (rc = exec(f->db, "PRAGMA synchronous=FULL", err)) < 0 ||
	    (rc = exec(f->db, "BEGIN IMMEDIATE", err)) < 0)
		goto fail;
	if ((rc = exec(f->db, feed_schema, err)) < 0 ||
	    (rc = meta_get(f->db, "feed", f->id, sizeof(f->id), err)) < 0)
		goto rollback;
	if (strlen(f->id) != CAIRN_FEED_ID_LEN) {
		uint8_t raw[CAIRN_FEED_ID_LEN / 2];
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2hex(f->id, sizeof(f->id), raw, sizeof(raw));
		if ((rc = meta_set(f->db, "feed", f->id, err)) < 0)
			goto rollback;
	}
	if ((rc = exec(f->db, "COMMIT", err)) < 0)
		goto rollback;
	if ((rc = open_db(path, SQLITE_OPEN_READONLY, &f->rdb, err)) < 0)
		goto fail;
	*out = f;
	return 0;
rollback:
	sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
fail:
	cairn_feed_close(f);
	return rc;
}

void cairn_feed_close(struct cairn_feed *f)
{
	if (!f)
		return;
	sqlite3_close(f->rdb);
	sqlite3_close(f->db);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->rlock);
	free(f->path);
	free(f);
}

const char *cairn_feed_id(const struct cairn_feed *f)
{
	return f->id;
}

static uint64_t head_locked(sqlite3 *db, struct cairn_error *err, int *rc)
{
	sqlite3_stmt *st;
	uint64_t head = 0;
	*rc = prep(db, "SELECT seq FROM sqlite_sequence WHERE name = 'events'", &st, err);
	if (*rc < 0)
		return 0;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		head = (uint64_t)sqlite3_column_int64(st, 0);
	else if (s != SQLITE_DONE)
		*rc = db_fail(db, err, "read head");
	sqlite3_finalize(st);
	return head;
}

int cairn_feed_head(struct cairn_feed *f, uint64_t *head, uint64_t *floor, struct cairn_error *err)
{
	int rc, rc2;
	pthread_mutex_lock(&f->rlock);
	uint64_t h = head_locked(f->rdb, err, &rc);
	uint64_t fl = meta_u64(f->rdb, "floor", err, &rc2);
	pthread_mutex_unlock(&f->rlock);
	if (rc < 0 || rc2 < 0)
		return rc < 0 ? rc : rc2;
	if (head)
		*head = h;
	if (floor)
		*floor = fl;
	return 0;
}

int cairn_feed_begin(struct cairn_feed *f, struct cairn_error *err)
{
	pthread_mutex_lock(&f->lock);
	if (f->depth) {
		pthread_mutex_unlock(&f->lock);
		BUG("feed: nested transaction");
	}
	int rc = exec(f->db, "BEGIN IMMEDIATE", err);
	if (rc == 0)
		f->depth = 1; /* the lock stays held until the commit */
	else
		pthread_mutex_unlock(&f->lock);
	return rc;
}

int cairn_feed_commit(struct cairn_feed *f, struct cairn_error *err)
{
	if (!f->depth)
		BUG("feed: commit without begin");
	int rc = exec(f->db, "COMMIT", err);
	if (rc < 0)
		sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
	f->depth = 0;
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* Under f->lock: a write of one call runs in its own transaction unless
 * the caller holds one (cairn_feed_begin); *own says which. */
static int own_begin(struct cairn_feed *f, bool *own, struct cairn_error *err)
{
	*own = f->depth == 0;
	return *own ? exec(f->db, "BEGIN IMMEDIATE", err) : 0;
}

/* Ends what own_begin began: commits when rc is 0, else rolls back. */
static int own_end(struct cairn_feed *f, bool own, int rc, struct cairn_error *err)
{
	if (!own)
		return rc;
	if (rc == 0)
		rc = exec(f->db, "COMMIT", err);
	if (rc < 0)
		sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static bool hashpart_ok(const char *s)
{
	return s && strlen(s) == 32 && cairn_store_hash_valid(s, 32);
}

/* The seq of the present item's add event, or 0. */
static int item_seq(sqlite3 *db, const char *hashpart, uint64_t *seq, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT seq FROM items WHERE hashpart = ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, hashpart, 32, SQLITE_STATIC);
	*seq = 0;
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		*seq = (uint64_t)sqlite3_column_int64(st, 0);
	else if (s != SQLITE_DONE)
		rc = db_fail(db, err, "read item");
	sqlite3_finalize(st);
	return rc;
}

/* Append an event; *seq gets its number. */
static int append(sqlite3 *db, enum cairn_feed_kind kind, const char *hashpart, const char *text,
		  size_t len, uint64_t *seq, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "INSERT INTO events (kind, hashpart, narinfo) VALUES (?1, ?2, ?3)", &st,
		      err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)kind);
	sqlite3_bind_text(st, 2, hashpart, 32, SQLITE_STATIC);
	if (text)
		sqlite3_bind_blob(st, 3, text, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(db, err, "append event");
	else
		*seq = (uint64_t)sqlite3_last_insert_rowid(db);
	sqlite3_finalize(st);
	return rc;
}

/* Run one statement with a text and an optional integer parameter. */
static int run2(sqlite3 *db, const char *sql, const char *hashpart, uint64_t v, bool bind_v,
		struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, sql, &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_text(st, 1, hashpart, 32, SQLITE_STATIC);
	if (bind_v)
		sqlite3_bind_int64(st, 2, (sqlite3_int64)v);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(db, err, sql);
	sqlite3_finalize(st);
	return rc;
}

/* Does the add event seq carry exactly this text? */
static int same_text(sqlite3 *db, uint64_t seq, const char *text, size_t len, bool *same,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc = prep(db, "SELECT narinfo FROM events WHERE seq = ?1", &st, err);
	if (rc < 0)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	*same = false;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const void *b = sqlite3_column_blob(st, 0);
		size_t bl = (size_t)sqlite3_column_bytes(st, 0);
		*same = bl == len && (len == 0 || (b && memcmp(b, text, len) == 0));
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * The add event seq no longer describes a present item (removed or added
 * again): below the floor nobody can ask for it any more, so it goes now
 * (prunes start at the floor and would never see it).
 */
static int drop_stale(sqlite3 *db, uint64_t seq, struct cairn_error *err)
{
	int rc;
	uint64_t floor = meta_u64(db, "floor", err, &rc);
	if (rc < 0 || seq > floor)
		return rc;
	sqlite3_stmt *st;
	if ((rc = prep(db, "DELETE FROM events WHERE seq = ?1", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_fail(db, err, "drop an old event");
	sqlite3_finalize(st);
	return rc;
}

int cairn_feed_add(struct cairn_feed *f, const char *hashpart, const char *narinfo, size_t len,
		   bool *added, struct cairn_error *err)
{
	uint64_t seq = 0, nseq;
	bool same = false;
	int rc;
	if (!hashpart_ok(hashpart))
		return cairn_error_set(err, CAIRN_EFORMAT, "feed: '%.40s' is not a hash part",
				       hashpart ? hashpart : "");
	if (len > CAIRN_FEED_EVENT_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "feed: narinfo of %s is %zu bytes, more than %u", hashpart,
				       len, CAIRN_FEED_EVENT_MAX);
	pthread_mutex_lock(&f->lock);
	bool own;
	if ((rc = own_begin(f, &own, err)) < 0)
		goto out;
	if ((rc = item_seq(f->db, hashpart, &seq, err)) < 0)
		goto done;
	if (seq && (rc = same_text(f->db, seq, narinfo, len, &same, err)) < 0)
		goto done;
	if (!same) {
		if ((rc = append(f->db, CAIRN_FEED_ADD, hashpart, narinfo, len, &nseq, err)) < 0 ||
		    (rc = run2(f->db, "INSERT OR REPLACE INTO items (hashpart, seq) VALUES (?1, ?2)",
			       hashpart, nseq, true, err)) < 0 ||
		    (seq && (rc = drop_stale(f->db, seq, err)) < 0))
			goto done;
	}
done:
	rc = own_end(f, own, rc, err);
out:
	pthread_mutex_unlock(&f->lock);
	if (rc == 0 && added)
		*added = !same;
	return rc;
}

int cairn_feed_remove(struct cairn_feed *f, const char *hashpart, bool *removed,
		      struct cairn_error *err)
{
	uint64_t seq = 0, nseq;
	int rc;
	if (!hashpart_ok(hashpart))
		return cairn_error_set(err, CAIRN_EFORMAT, "feed: '%.40s' is not a hash part",
				       hashpart ? hashpart : "");
	pthread_mutex_lock(&f->lock);
	bool own;
	if ((rc = own_begin(f, &own, err)) < 0)
		goto out;
	if ((rc = item_seq(f->db, hashpart, &seq, err)) < 0 || !seq)
		goto done;
	if ((rc = append(f->db, CAIRN_FEED_REMOVE, hashpart, NULL, 0, &nseq, err)) < 0 ||
	    (rc = run2(f->db, "DELETE FROM items WHERE hashpart = ?1", hashpart, 0, false, err)) <
		    0 ||
	    (rc = drop_stale(f->db, seq, err)) < 0)
		goto done;
done:
	rc = own_end(f, own, rc, err);
out:
	pthread_mutex_unlock(&f->lock);
	if (rc == 0 && removed)
		*removed = seq != 0;
	return rc;
}

int cairn_feed_has(struct cairn_feed *f, const char *hashpart, bool *present,
		   struct cairn_error *err)
{
	uint64_t seq = 0;
	if (!hashpart_ok(hashpart))
		return cairn_error_set(err, CAIRN_EFORMAT, "feed: not a hash part");
	pthread_mutex_lock(&f->lock);
	int rc = item_seq(f->db, hashpart, &seq, err);
	pthread_mutex_unlock(&f->lock);
	if (rc == 0)
		*present = seq != 0;
	return rc;
}

int cairn_feed_count(struct cairn_feed *f, uint64_t *count, struct cairn_error *err)
{
	sqlite3_stmt *st;
	pthread_mutex_lock(&f->lock);
	int rc = prep(f->db, "SELECT count(*) FROM items", &st, err);
	if (rc == 0) {
		if (sqlite3_step(st) == SQLITE_ROW)
			*count = (uint64_t)sqlite3_column_int64(st, 0);
		else
			rc = db_fail(f->db, err, "count items");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&f->lock);
	return rc;
}

int cairn_feed_items(struct cairn_feed *f, char (**out)[33], size_t *n, struct cairn_error *err)
{
	sqlite3_stmt *st;
	char(*v)[33] = NULL;
	size_t len = 0, cap = 0;
	pthread_mutex_lock(&f->lock);
	int rc = prep(f->db, "SELECT hashpart FROM items ORDER BY hashpart", &st, err);
	if (rc < 0)
		goto out;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *h = (const char *)sqlite3_column_text(st, 0);
		if (!h || sqlite3_column_bytes(st, 0) != 32)
			continue;
		if (len == cap) {
			size_t nc = cap ? cap * 2 : 1024;
			char(*nv)[33] = realloc(v, nc * sizeof(*v));
			if (!nv) {
				rc = cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
				break;
			}
			v = nv;
			cap = nc;
		}
		memcpy(v[len], h, 33);
		len++;
	}
	if (rc == 0 && s != SQLITE_DONE)
		rc = db_fail(f->db, err, "list items");
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&f->lock);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*n = len;
	return 0;
}

int cairn_feed_cursor(struct cairn_feed *f, const char *name, uint64_t *value,
		      struct cairn_error *err)
{
	char k[64];
	int rc;
	snprintf(k, sizeof(k), "cursor.%s", name);
	pthread_mutex_lock(&f->lock);
	uint64_t v = meta_u64(f->db, k, err, &rc);
	pthread_mutex_unlock(&f->lock);
	if (rc == 0)
		*value = v;
	return rc;
}

int cairn_feed_set_cursor(struct cairn_feed *f, const char *name, uint64_t value,
			  struct cairn_error *err)
{
	char k[64], v[32];
	snprintf(k, sizeof(k), "cursor.%s", name);
	snprintf(v, sizeof(v), "%" PRIu64, value);
	pthread_mutex_lock(&f->lock);
	int rc = meta_set(f->db, k, v, err);
	pthread_mutex_unlock(&f->lock);
	return rc;
}

int cairn_feed_prune(struct cairn_feed *f, uint64_t keep, struct cairn_error *err)
{
	int rc;
	char v[32];
	pthread_mutex_lock(&f->lock);
	uint64_t head = head_locked(f->db, err, &rc);
	uint64_t floor = rc == 0 ? meta_u64(f->db, "floor", err, &rc) : 0;
	if (rc < 0 || head <= keep || head - keep <= floor)
		goto out;
	uint64_t cut = head - keep;
	bool own;
	if ((rc = own_begin(f, &own, err)) < 0)
		goto out;
	sqlite3_stmt *st;
	if ((rc = prep(f->db,
		       "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND NOT EXISTS "
		       "(SELECT 1 FROM items WHERE items.seq = events.seq)",
		       &st, err)) == 0) {
		/* below the old floor only add events of present items are
		 * left: a range from the floor keeps each prune small */
		sqlite3_bind_int64(st, 1, (sqlite3_int64)floor);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)cut);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_fail(f->db, err, "prune");
		sqlite3_finalize(st);
	}
	snprintf(v, sizeof(v), "%" PRIu64, cut);
	if (rc == 0)
		rc = meta_set(f->db, "floor", v, err);
	rc = own_end(f, own, rc, err);
out:
	pthread_mutex_unlock(&f->lock);
	return rc;
}

/* ---- documents ---------------------------------------------------------- */

int cairn_feed_page(struct cairn_feed *f, uint64_t since, unsigned max_events,
		    const struct cairn_feed_signer *signer, struct cairn_buf *out, uint64_t *next,
		    struct cairn_error *err)
{
	struct cairn_buf body = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_buf ev = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	sqlite3_stmt *st = NULL;
	uint64_t last = since, count = 0;
	int rc;

	if (max_events == 0)
		max_events = CAIRN_FEED_PAGE_EVENTS_DEFAULT;
	if (max_events > CAIRN_FEED_PAGE_EVENTS_MAX)
		max_events = CAIRN_FEED_PAGE_EVENTS_MAX;
	pthread_mutex_lock(&f->rlock);
	/* head, floor and events from one read transaction */
	if ((rc = exec(f->rdb, "BEGIN", err)) < 0)
		goto out;
	uint64_t head = head_locked(f->rdb, err, &rc);
	uint64_t floor = rc == 0 ? meta_u64(f->rdb, "floor", err, &rc) : 0;
	if (rc < 0)
		goto done;
	if (since < floor) {
		rc = cairn_error_set(err, CAIRN_ENOENT,
				     "feed: events after %" PRIu64 " are no longer kept (the "
				     "oldest kept follow %" PRIu64 "): bootstrap from the snapshot",
				     since, floor);
		goto done;
	}
	if (since > head) {
		rc = cairn_error_set(err, CAIRN_EINVAL,
				     "feed: since %" PRIu64 " is past the head %" PRIu64, since,
				     head);
		goto done;
	}
	if ((rc = prep(f->rdb,
		       "SELECT seq, kind, hashpart, narinfo FROM events WHERE seq > ?1 "
		       "ORDER BY seq LIMIT ?2",
		       &st, err)) < 0)
		goto done;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)since);
	sqlite3_bind_int(st, 2, (int)max_events);
	int s;
	/* room for the head and the trailer with its signatures */
	size_t budget = CAIRN_FEED_PAGE_MAX - 4096 - CAIRN_FEED_SIGS_MAX * 1024;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
		int kind = sqlite3_column_int(st, 1);
		const char *hp = (const char *)sqlite3_column_text(st, 2);
		if (!hp || sqlite3_column_bytes(st, 2) != 32)
			BUG("feed: malformed event %" PRIu64, seq);
		size_t mark = ev.len;
		if (kind == CAIRN_FEED_ADD) {
			const void *b = sqlite3_column_blob(st, 3);
			size_t bl = (size_t)sqlite3_column_bytes(st, 3);
			rc = cairn_buf_printf(&ev, "add %" PRIu64 " %s %zu\n", seq, hp, bl);
			if (rc == 0 && bl)
				rc = cairn_buf_append(&ev, b, bl);
			if (rc == 0)
				rc = cairn_buf_putc(&ev, '\n');
		} else {
			rc = cairn_buf_printf(&ev, "remove %" PRIu64 " %s\n", seq, hp);
		}
		if (rc < 0 || (ev.len > budget && count > 0)) {
			/* full: this event starts the next page */
			ev.len = mark;
			rc = 0;
			break;
		}
		last = seq;
		count++;
	}
	if (rc == 0 && s != SQLITE_ROW && s != SQLITE_DONE)
		rc = db_fail(f->rdb, err, "read events");
	sqlite3_finalize(st);
	if (rc < 0)
		goto done;
	if ((rc = feed_doc_head(&body, CAIRN_FEED_PAGE, f->id, signer->dialect, since, last,
				head)) < 0 ||
	    (ev.len && (rc = cairn_buf_append(&body, ev.data, ev.len)) < 0))
		goto done;
	uint8_t digest[CAIRN_SHA256_LEN];
	cairn_sha256(body.data, body.len, digest);
	rc = feed_trailer(&body, signer, CAIRN_FEED_PAGE, f->id, since, last, count, digest, err);
done:
	sqlite3_exec(f->rdb, "COMMIT", NULL, NULL, NULL);
out:
	pthread_mutex_unlock(&f->rlock);
	cairn_buf_release(&ev);
	if (rc < 0) {
		cairn_buf_release(&body);
		if (rc == CAIRN_ELIMIT || rc == CAIRN_ENOMEM)
			cairn_error_set(err, rc, "feed: page too large or out of memory");
		return rc;
	}
	rc = cairn_buf_append(out, body.data, body.len);
	cairn_buf_release(&body);
	if (rc < 0)
		return cairn_error_set(err, rc, "feed: page does not fit");
	if (next)
		*next = last;
	return 0;
}

/* Hash what passes and hand it on in pieces. */
struct snap_out {
	struct cairn_sha256 h;
	struct cairn_buf b;
	int (*fn)(void *ctx, const void *data, size_t len);
	void *ctx;
};

static int snap_flush(struct snap_out *o)
{
	if (o->b.len == 0)
		return 0;
	cairn_sha256_update(&o->h, o->b.data, o->b.len);
	int rc = o->fn(o->ctx, o->b.data, o->b.len);
	cairn_buf_reset(&o->b);
	return rc;
}

int cairn_feed_snapshot(struct cairn_feed *f, const struct cairn_feed_signer *signer,
			int (*fn)(void *ctx, const void *data, size_t len), void *ctx,
			struct cairn_error *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct snap_out o = {.b = CAIRN_BUF_INIT(FEED_SNAP_CHUNK + CAIRN_FEED_EVENT_MAX + 256),
			     .fn = fn,
			     .ctx = ctx};
	uint64_t count = 0;
	bool hashing = false;
	int rc = open_db(f->path, SQLITE_OPEN_READONLY, &db, err);
	if (rc < 0)
		return rc;
	if ((rc = exec(db, "BEGIN", err)) < 0)
		goto out;
	/* the head read inside the transaction: the items are the state after it */
	uint64_t head = head_locked(db, err, &rc);
	if (rc < 0)
		goto out;
	if ((rc = cairn_sha256_init(&o.h)) < 0) {
		rc = cairn_error_set(err, rc, "feed: cannot hash");
		goto out;
	}
	hashing = true;
	if ((rc = feed_doc_head(&o.b, CAIRN_FEED_SNAPSHOT, f->id, signer->dialect, 0, head,
				head)) < 0)
		goto out;
	if ((rc = prep(db,
		       "SELECT i.hashpart, e.narinfo FROM items i JOIN events e ON e.seq = i.seq "
		       "ORDER BY i.hashpart",
		       &st, err)) < 0)
		goto out;
	int s;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		const char *hp = (const char *)sqlite3_column_text(st, 0);
		const void *b = sqlite3_column_blob(st, 1);
		size_t bl = (size_t)sqlite3_column_bytes(st, 1);
		if (!hp || sqlite3_column_bytes(st, 0) != 32)
			BUG("feed: malformed item");
		if ((rc = cairn_buf_printf(&o.b, "item %s %zu\n", hp, bl)) < 0 ||
		    (bl && (rc = cairn_buf_append(&o.b, b, bl)) < 0) ||
		    (rc = cairn_buf_putc(&o.b, '\n')) < 0)
			goto out;
		count++;
		if (o.b.len >= FEED_SNAP_CHUNK && (rc = snap_flush(&o)) < 0)
			goto out;
	}
	if (s != SQLITE_DONE) {
		rc = db_fail(db, err, "read items");
		goto out;
	}
	if ((rc = snap_flush(&o)) < 0)
		goto out;
	uint8_t digest[CAIRN_SHA256_LEN];
	cairn_sha256_final(&o.h, digest);
	hashing = false;
	if ((rc = feed_trailer(&o.b, signer, CAIRN_FEED_SNAPSHOT, f->id, 0, head, count, digest,
			       err)) < 0)
		goto out;
	rc = o.fn(o.ctx, o.b.data, o.b.len);
out:
	if (hashing)
		cairn_sha256_release(&o.h);
	sqlite3_finalize(st);
	sqlite3_close(db);
	cairn_buf_release(&o.b);
	if (rc < 0 && err && err->code == 0)
		cairn_error_set(err, rc, "feed: snapshot stopped");
	return rc;
}
