/*
 * feed-serve.c - the change feed on a running `cairn publish`: the source
 * thread that fills the log (from a store database or a binary-cache
 * directory) and answers long-polls, and the /feed/ routes.
 *
 * One thread does both, so a new event and the pages waiting for it meet
 * without a hand-over: each round it polls the source (a range query on
 * ValidPaths.id, or a stat of the directory), appends what changed, then
 * answers every waiting page that has something to say or whose wait is
 * over.  Pages are rendered on this thread, never on an event loop: a
 * handler only parses the query and defers its answer.  Snapshots run on
 * threads of their own (they stream for as long as the client reads).
 *
 * Removals.  A store database says nothing when a path goes (garbage
 * collection deletes its row), and SQLite may give a new row the id of a
 * deleted newest one; so every few seconds the source compares the number
 * of valid paths with the number of items in the log, and when they differ
 * lists both and appends what differs.  A binary-cache directory is listed
 * again whenever its mtime changes (and while it is recent, for changes
 * within one tick of the clock), and every SERVE_RESCAN_MS whatever its
 * mtime: a narinfo written over in place changes the file, not the
 * directory.  A listing re-reads the narinfos whose ctime is not older
 * than the previous listing (the first one after a start: than the log's
 * last write), so a narinfo rewritten under its name (`nix store sign`
 * adding a signature) is a new event when its text changed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "cairn/httpd.h"
#include "cairn/storedb.h"
#include "feed-int.h"
#include "cairn/banned.h"

#define CT_FEED "text/x-cairn-feed"
/* Items handled per transaction of the log. */
#define SERVE_BATCH 512
/* How often the counts are compared (store source), milliseconds. */
#define SERVE_COUNT_MS 2000
/* How often a directory is listed whatever its mtime, milliseconds. */
#define SERVE_RESCAN_MS 5000
/* ctime is kept in ticks of the file system's clock: a file changed in the
 * same tick as a listing began is read again by the next one. */
#define SERVE_CTIME_SLACK_S 2

struct waiter {
	struct cairn_httpd_stream *stream;
	uint64_t since;
	unsigned max;
	uint64_t deadline; /* monotonic ms */
};

struct cairn_feed_server {
	struct cairn_feed_server_config cfg;
	char *path, *binary_cache;
	struct cairn_storedb_config dbcfg;
	char *store_dir, *db_path;
	struct cairn_feed *feed;

	pthread_mutex_t lock; /* waiters, stopping, snapshots */
	pthread_cond_t cond;
	struct waiter *waiters;
	size_t n_waiters;
	atomic_bool stopping;
	bool kick;
	unsigned snapshots;
	pthread_t thread;
	bool running;
	struct cairn_httpd *httpd; /* to notice its stop */
	/* /metrics (NULL until the routes are registered) */
	/* set once by the routes while the source thread may run: atomic */
	_Atomic(struct cairn_httpd_counter *) m_events, m_pages, m_gone, m_snapshots,
		m_held;

	/* store source */
	struct cairn_storedb *db;
	uint64_t last_count_check, last_mismatch_vp;
	/* directory source */
	struct timespec dir_mtime;
	bool dir_seen;
	int dir_fd;
	uint64_t dir_listed_ms;	 /* monotonic, of the last listing */
	time_t dir_changed_since; /* re-read narinfos with a ctime from here */
	bool said_odd;		  /* a link or non-regular file was logged */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Tell the operator: what, then the detail. */
static void say(struct cairn_feed_server *s, const char *what, const char *detail)
{
	char msg[512];
	if (!s->cfg.log)
		return;
	snprintf(msg, sizeof(msg), "%s%s", what, detail);
	s->cfg.log(s->cfg.log_ctx, msg);
}

/* ---- the sources --------------------------------------------------------- */

struct pending {
	char hashpart[33];
	char *text; /* NULL: a removal */
	size_t len;
};

/* Count on a counter of /metrics, once there is one. */
static void count(_Atomic(struct cairn_httpd_counter *) *m)
{
	struct cairn_httpd_counter *c = atomic_load(m);
	if (c)
		cairn_httpd_counter_add(c, 1);
}

static void serve_waiters(struct cairn_feed_server *s, bool all);

/* Is the server stopping, or the HTTP server it serves on? */
static bool stop_wanted(struct cairn_feed_server *s)
{
	pthread_mutex_lock(&s->lock);
	bool stop = s->stopping || (s->httpd && cairn_httpd_stopping(s->httpd));
	pthread_mutex_unlock(&s->lock);
	return stop;
}

/* Append a batch to the log in one transaction. */
static int apply(struct cairn_feed_server *s, struct pending *v, size_t n, bool *changed,
		 const char *cursor, uint64_t cursor_value, struct cairn_error *err)
{
	int rc = cairn_feed_begin(s->feed, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++) {
		bool did = false;
		if (v[i].text)
			rc = cairn_feed_add(s->feed, v[i].hashpart, v[i].text, v[i].len, &did, err);
		else
			rc = cairn_feed_remove(s->feed, v[i].hashpart, &did, err);
		if (rc == CAIRN_ELIMIT) {
			/* one item too large for an event: say so, go on */
			say(s, "", cairn_error_msg(err));
			cairn_error_init(err);
			rc = 0;
		}
		*changed |= did;
		if (did)
			count(&s->m_events);
	}
	if (rc == 0 && cursor)
		rc = cairn_feed_set_cursor(s->feed, cursor, cursor_value, err);
	int rc2 = cairn_feed_commit(s->feed, err);
	/* a first pass over a large store takes minutes: pages asked for
	 * meanwhile are answered between its batches, not after it */
	serve_waiters(s, stop_wanted(s));
	return rc < 0 ? rc : rc2;
}

static void pending_free(struct pending *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].text);
}

/* The narinfo of a store item into p (text NULL and 0 when not served). */
static int store_narinfo(struct cairn_feed_server *s, const char *hashpart, struct pending *p,
			 bool *skip, struct cairn_error *err)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_EVENT_MAX);
	struct cairn_error e;
	cairn_error_init(&e);
	memcpy(p->hashpart, hashpart, 32);
	p->hashpart[32] = '\0';
	p->text = NULL;
	*skip = false;
	int rc = s->cfg.narinfo(s->cfg.narinfo_ctx, hashpart, &b, &e);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT || rc == CAIRN_ELIMIT) {
		/* gone since it was listed, withdrawn, or a row that cannot
		 * be served: nothing a follower could fetch */
		*skip = true;
		cairn_buf_release(&b);
		return 0;
	}
	if (rc < 0) {
		cairn_buf_release(&b);
		return cairn_error_set(err, rc, "%s", cairn_error_msg(&e));
	}
	p->text = cairn_buf_steal(&b, &p->len);
	if (!p->text)
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	return 0;
}

/* The hash part of a store path of this store, or NULL. */
static const char *hashpart_of(const struct cairn_feed_server *s, const char *path)
{
	size_t dl = strlen(s->store_dir);
	if (strncmp(path, s->store_dir, dl) != 0 || path[dl] != '/' || strlen(path) < dl + 34 ||
	    !feed_hashpart_ok(path + dl + 1, 32))
		return NULL;
	return path + dl + 1;
}

/* New rows of ValidPaths since the cursor. */
static int store_new(struct cairn_feed_server *s, bool *changed, struct cairn_error *err)
{
	uint64_t after, last;
	int rc = cairn_feed_cursor(s->feed, "store", &after, err);
	if (rc < 0)
		return rc;
	for (;;) {
		struct cairn_storedb_paths page = {NULL, 0};
		if ((rc = cairn_storedb_page_after(s->db, after, &page, &last, err)) < 0)
			return rc;
		if (page.n == 0) {
			cairn_storedb_paths_release(&page);
			return 0;
		}
		struct pending *v = calloc(page.n, sizeof(*v));
		size_t n = 0;
		if (!v) {
			cairn_storedb_paths_release(&page);
			return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
		}
		for (size_t i = 0; i < page.n && rc == 0; i++) {
			const char *hp = hashpart_of(s, page.v[i]);
			bool skip;
			if (!hp)
				continue;
			rc = store_narinfo(s, hp, &v[n], &skip, err);
			if (rc == 0 && !skip)
				n++;
		}
		cairn_storedb_paths_release(&page);
		if (rc == 0)
			rc = apply(s, v, n, changed, "store", last, err);
		pending_free(v, n);
		free(v);
		if (rc < 0)
			return rc;
		after = last;
		if (s->stopping)
			return 0;
	}
}

struct hp_list {
	char (*v)[33];
	size_t n, cap;
	const struct cairn_feed_server *s;
};

static int hp_push(struct hp_list *l, const char *hp)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 4096;
		char(*nv)[33] = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return CAIRN_ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	memcpy(l->v[l->n], hp, 32);
	l->v[l->n][32] = '\0';
	l->n++;
	return 0;
}

static int collect_path(void *ctx, const char *path)
{
	struct hp_list *l = ctx;
	const char *hp = hashpart_of(l->s, path);
	return hp ? hp_push(l, hp) : 0;
}

static int cmp_hp(const void *a, const void *b)
{
	return memcmp(a, b, 32);
}

/*
 * Bring the log to the listing `have` (sorted): items missing from it are
 * removed, items only in it are added, their narinfo read by get; an item
 * in both is read again when `stale` (may be NULL) says it may have
 * changed (the log appends it only when its text did).
 */
static int reconcile(struct cairn_feed_server *s, struct hp_list *have,
		     int (*get)(struct cairn_feed_server *s, const char *hp, struct pending *p,
				bool *skip, struct cairn_error *err),
		     bool (*stale)(struct cairn_feed_server *s, const char *hp), bool *changed,
		     struct cairn_error *err)
{
	char(*items)[33] = NULL;
	size_t n_items = 0, i = 0, j = 0, n = 0;
	struct pending *v = calloc(SERVE_BATCH, sizeof(*v));
	int rc;
	if (!v)
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	qsort(have->v, have->n, sizeof(*have->v), cmp_hp);
	if ((rc = cairn_feed_items(s->feed, &items, &n_items, err)) < 0)
		goto out;
	while ((i < have->n || j < n_items) && rc == 0 && !atomic_load(&s->stopping)) {
		int c = i == have->n ? 1 : j == n_items ? -1 : memcmp(have->v[i], items[j], 32);
		bool skip = false;
		if (c == 0 && !(stale && stale(s, have->v[i]))) {
			i++, j++;
			continue;
		}
		if (c == 0) {
			j++;
			rc = get(s, have->v[i++], &v[n], &skip, err);
		} else if (c < 0) {
			rc = get(s, have->v[i++], &v[n], &skip, err);
		} else {
			memcpy(v[n].hashpart, items[j++], 33);
			v[n].text = NULL;
		}
		if (rc == 0 && !skip && ++n == SERVE_BATCH) {
			rc = apply(s, v, n, changed, NULL, 0, err);
			pending_free(v, n);
			n = 0;
		}
	}
	if (rc == 0 && n)
		rc = apply(s, v, n, changed, NULL, 0, err);
	pending_free(v, n);
out:
	free(items);
	free(v);
	return rc;
}

static int store_get(struct cairn_feed_server *s, const char *hp, struct pending *p, bool *skip,
		     struct cairn_error *err)
{
	return store_narinfo(s, hp, p, skip, err);
}

static int store_poll(struct cairn_feed_server *s, bool *changed, struct cairn_error *err)
{
	int rc;
	if (!s->db && (rc = cairn_storedb_open(&s->db, &s->dbcfg, err)) < 0)
		return rc;
	if ((rc = store_new(s, changed, err)) < 0)
		return rc;
	uint64_t t = now_ms();
	if (t - s->last_count_check < SERVE_COUNT_MS && s->last_count_check)
		return 0;
	s->last_count_check = t;
	uint64_t vp, items;
	if ((rc = cairn_storedb_count(s->db, &vp, err)) < 0 ||
	    (rc = cairn_feed_count(s->feed, &items, err)) < 0)
		return rc;
	/* a mismatch that a listing already explained (items withdrawn,
	 * unservable rows) is not listed again until the store changes */
	if (vp == items || vp == s->last_mismatch_vp)
		return 0;
	struct hp_list have = {NULL, 0, 0, s};
	rc = cairn_storedb_foreach(s->db, collect_path, &have, err);
	if (rc == 0)
		rc = reconcile(s, &have, store_get, NULL, changed, err);
	free(have.v);
	if (rc == 0 && (rc = cairn_feed_count(s->feed, &items, err)) == 0)
		s->last_mismatch_vp = vp == items ? 0 : vp;
	return rc;
}

/* A .narinfo file of the directory, read whole (bounded). */
static int dir_get(struct cairn_feed_server *s, const char *hp, struct pending *p, bool *skip,
		   struct cairn_error *err)
{
	char name[48];
	struct stat sb;
	snprintf(name, sizeof(name), "%.32s.narinfo", hp);
	memcpy(p->hashpart, hp, 32);
	p->hashpart[32] = '\0';
	p->text = NULL;
	*skip = true;
	/* O_NONBLOCK: a named pipe under a narinfo's name would otherwise
	 * hold the source, and with it every long-poll and the server's stop */
	int fd = openat(s->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP && !s->said_odd) {
			s->said_odd = true;
			say(s, "feed: a symbolic link, not in the feed (said once): ", name);
		}
		return 0; /* gone since the listing, or a link */
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
	    (uint64_t)sb.st_size > CAIRN_FEED_EVENT_MAX) {
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size > CAIRN_FEED_EVENT_MAX)
			say(s, "feed: too large for an event, not in the feed: ", name);
		else if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode) && !s->said_odd) {
			s->said_odd = true;
			say(s, "feed: not a regular file, not in the feed (said once): ", name);
		}
		close(fd);
		return 0;
	}
	char *t = malloc((size_t)sb.st_size);
	if (!t) {
		close(fd);
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	}
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, t + got, (size_t)sb.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got != (size_t)sb.st_size) {
		free(t); /* changing under us: the next listing sees it */
		return 0;
	}
	p->text = t;
	p->len = got;
	*skip = false;
	return 0;
}

/* When the log was last written (its -wal's mtime, or the file's after a
 * checkpoint), 0 when unknown. */
static time_t log_written(const struct cairn_feed_server *s)
{
	char wal[4200];
	struct stat a, b;
	time_t t = stat(s->path, &a) == 0 ? a.st_mtim.tv_sec : 0;
	snprintf(wal, sizeof(wal), "%s-wal", s->path);
	if (stat(wal, &b) == 0 && b.st_mtim.tv_sec > t)
		t = b.st_mtim.tv_sec;
	return t;
}

/* May the narinfo of hp have changed since the previous listing? */
static bool dir_stale(struct cairn_feed_server *s, const char *hp)
{
	char name[48];
	struct stat sb;
	snprintf(name, sizeof(name), "%.32s.narinfo", hp);
	if (fstatat(s->dir_fd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return false; /* gone: the next listing removes it */
	return sb.st_ctim.tv_sec >= s->dir_changed_since;
}

static int dir_poll(struct cairn_feed_server *s, bool *changed, struct cairn_error *err)
{
	struct stat sb;
	struct timespec now;
	if (fstat(s->dir_fd, &sb) < 0)
		return cairn_error_errno(err, errno, "feed: cannot stat '%s'", s->binary_cache);
	clock_gettime(CLOCK_REALTIME, &now);
	/* a change within the same tick of the file system's clock as the
	 * last listing leaves the mtime as it was: list again while recent */
	bool recent = now.tv_sec - sb.st_mtim.tv_sec <= 2;
	if (s->dir_seen && !recent && sb.st_mtim.tv_sec == s->dir_mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == s->dir_mtime.tv_nsec &&
	    now_ms() - s->dir_listed_ms < SERVE_RESCAN_MS)
		return 0;
	if (!s->dir_seen) {
		/* the first listing since a start: what changed while the
		 * server was down is newer than the log's last write */
		s->dir_changed_since = log_written(s) - SERVE_CTIME_SLACK_S;
	}
	s->dir_seen = true;
	s->dir_mtime = sb.st_mtim;
	s->dir_listed_ms = now_ms();
	int fd = dup(s->dir_fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return cairn_error_errno(err, errno, "feed: cannot list '%s'", s->binary_cache);
	}
	rewinddir(d);
	struct hp_list have = {NULL, 0, 0, s};
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) && rc == 0) {
		size_t nl = strlen(de->d_name);
		if (nl == 32 + 8 && memcmp(de->d_name + 32, ".narinfo", 8) == 0 &&
		    feed_hashpart_ok(de->d_name, 32))
			rc = hp_push(&have, de->d_name);
	}
	closedir(d);
	if (rc < 0)
		rc = cairn_error_set(err, rc, "feed: out of memory");
	else
		rc = reconcile(s, &have, dir_get, dir_stale, changed, err);
	free(have.v);
	if (rc == 0)
		s->dir_changed_since = now.tv_sec - SERVE_CTIME_SLACK_S;
	return rc;
}

/* ---- pages ---------------------------------------------------------------- */

/* Answer one waiter (the stream ends). */
static void answer(struct cairn_feed_server *s, struct waiter *w)
{
	static const char *const hdr[] = {"Cache-Control", "no-store", NULL};
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_feed_page(s->feed, w->since, w->max, &s->cfg.signer, &b, NULL, &err);
	if (rc == 0) {
		cairn_httpd_stream_reply(w->stream, 200, CT_FEED, b.data, b.len, hdr);
		count(&s->m_pages);
	} else {
		if (rc == CAIRN_ENOENT)
			count(&s->m_gone);
		/* the reason in the body: a follower logs it */
		int status = rc == CAIRN_ENOENT ? 410 : rc == CAIRN_EINVAL ? 400 : 500;
		cairn_buf_reset(&b);
		cairn_buf_printf(&b, "%d %s\n", status, cairn_error_msg(&err));
		cairn_httpd_stream_reply(w->stream, status, "text/plain; charset=utf-8", b.data,
					 b.len, hdr);
	}
	cairn_buf_release(&b);
}

/* Answer the waiters that have something to say, or waited enough. */
static void serve_waiters(struct cairn_feed_server *s, bool all)
{
	uint64_t head = 0, t = now_ms();
	struct cairn_error err;
	cairn_error_init(&err);
	if (cairn_feed_head(s->feed, &head, NULL, &err) < 0)
		all = true; /* answer each with the error */
	for (;;) {
		struct waiter w;
		bool found = false;
		pthread_mutex_lock(&s->lock);
		for (size_t i = 0; i < s->n_waiters; i++) {
			struct waiter *x = &s->waiters[i];
			if (all || x->since != head || x->deadline <= t) {
				w = *x;
				s->waiters[i] = s->waiters[--s->n_waiters];
				found = true;
				break;
			}
		}
		pthread_mutex_unlock(&s->lock);
		if (!found)
			return;
		answer(s, &w);
	}
}

static void *source_main(void *arg)
{
	struct cairn_feed_server *s = arg;
	uint64_t last_fail = 0;
	char last_msg[CAIRN_ERROR_MSG_MAX] = "";
	for (;;) {
		struct cairn_error err;
		bool changed = false;
		cairn_error_init(&err);
		int rc = s->cfg.binary_cache ? dir_poll(s, &changed, &err)
					     : store_poll(s, &changed, &err);
		if (rc == 0 && changed)
			rc = cairn_feed_prune(s->feed, s->cfg.keep, &err);
		if (rc < 0 && (strcmp(last_msg, cairn_error_msg(&err)) != 0 ||
			       now_ms() - last_fail > 60000)) {
			/* said once a minute while it lasts */
			snprintf(last_msg, sizeof(last_msg), "%s", cairn_error_msg(&err));
			last_fail = now_ms();
			say(s, "feed: the source failed (will retry): ", last_msg);
		}
		/* a server stopping waits for held answers: give them now */
		serve_waiters(s, stop_wanted(s));
		pthread_mutex_lock(&s->lock);
		if (s->stopping && s->n_waiters == 0) {
			pthread_mutex_unlock(&s->lock);
			break;
		}
		if (!s->kick && !s->stopping) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)s->cfg.poll_ms * 1000000;
			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
		s->kick = false;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

/* ---- routes ---------------------------------------------------------------- */

/* Value of key in a query string, or NULL. */
static const char *query_value(const char *q, size_t ql, const char *key, size_t *vl)
{
	size_t kl = strlen(key), i = 0;
	while (q && i < ql) {
		size_t s = i;
		while (i < ql && q[i] != '&')
			i++;
		if (i - s > kl && memcmp(q + s, key, kl) == 0 && q[s + kl] == '=') {
			*vl = i - s - kl - 1;
			return q + s + kl + 1;
		}
		i++;
	}
	return NULL;
}

static bool query_u64(const char *q, size_t ql, const char *key, uint64_t max, uint64_t *out,
		      bool *bad)
{
	size_t vl = 0;
	const char *v = query_value(q, ql, key, &vl);
	uint64_t n = 0;
	if (!v)
		return false;
	if (vl == 0 || vl > 19)
		*bad = true;
	for (size_t i = 0; i < vl && !*bad; i++) {
		if (v[i] < '0' || v[i] > '9')
			*bad = true;
		else
			n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (n > max)
		*bad = true;
	*out = n;
	return !*bad;
}

static int h_events(struct cairn_httpd_req *req, void *data)
{
	struct cairn_feed_server *s = data;
	size_t ql = 0;
	const char *q = cairn_httpd_req_query(req, &ql);
	uint64_t since = 0, max = 0, wait = 0;
	bool bad = false;
	bool has_since = query_u64(q, ql, "since", CAIRN_FEED_SEQ_MAX, &since, &bad);
	query_u64(q, ql, "max", CAIRN_FEED_PAGE_EVENTS_MAX, &max, &bad);
	query_u64(q, ql, "wait", CAIRN_FEED_WAIT_MAX, &wait, &bad);
	if (!has_since || bad) {
		static const char msg[] = "400 the feed takes ?since=N (a sequence number), "
					  "optional &max=M (1..10000 events) and &wait=W (0..60 "
					  "seconds)\n";
		cairn_httpd_add_header(req, "Cache-Control", "no-store");
		return cairn_httpd_send_static(req, 400, "text/plain; charset=utf-8", msg,
					       sizeof(msg) - 1);
	}
	struct waiter w = {NULL, since, (unsigned)max, now_ms() + wait * 1000};
	pthread_mutex_lock(&s->lock);
	bool full = s->n_waiters == CAIRN_FEED_WAITERS_MAX || s->stopping ||
		    cairn_httpd_stopping(s->httpd);
	pthread_mutex_unlock(&s->lock);
	if (full) {
		cairn_httpd_add_header(req, "Retry-After", "1");
		return cairn_httpd_send_error(req, 503);
	}
	int rc = cairn_httpd_stream_defer(req, &w.stream);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	s->waiters[s->n_waiters++] = w;
	s->kick = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (wait)
		count(&s->m_held);
	return 0;
}

struct snap_job {
	struct cairn_feed_server *s;
	struct cairn_httpd_stream *stream;
	struct cairn_codec *codec;
};

static int snap_out(void *ctx, const void *data, size_t len)
{
	struct snap_job *j = ctx;
	return cairn_httpd_stream_write(j->stream, data, len);
}

static int snap_in(void *ctx, const void *data, size_t len)
{
	struct snap_job *j = ctx;
	return cairn_codec_write(j->codec, data, len, snap_out, j, NULL);
}

static void *snap_main(void *arg)
{
	struct snap_job *j = arg;
	struct cairn_feed_server *s = j->s;
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_feed_snapshot(s->feed, &s->cfg.signer, snap_in, j, &err);
	if (rc == 0)
		rc = cairn_codec_finish(j->codec, snap_out, j, &err);
	if (rc < 0 && rc != CAIRN_ECANCELED && rc != CAIRN_ENET)
		say(s, "feed: snapshot failed: ", cairn_error_msg(&err));
	cairn_httpd_stream_end(j->stream, rc == 0);
	cairn_codec_free(j->codec);
	free(j);
	pthread_mutex_lock(&s->lock);
	s->snapshots--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int h_snapshot(struct cairn_httpd_req *req, void *data)
{
	struct cairn_feed_server *s = data;
	struct snap_job *j = calloc(1, sizeof(*j));
	pthread_t t;
	pthread_attr_t at;
	if (!j)
		return CAIRN_ENOMEM;
	j->s = s;
	if (cairn_codec_new(&j->codec, CAIRN_CODEC_ZSTD, CAIRN_CODEC_COMPRESS, 3,
			    CAIRN_CODEC_UNLIMITED, NULL) < 0) {
		free(j);
		return CAIRN_ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	bool full = s->snapshots == CAIRN_FEED_SNAPSHOTS_MAX || s->stopping;
	if (!full)
		s->snapshots++;
	pthread_mutex_unlock(&s->lock);
	if (full) {
		cairn_codec_free(j->codec);
		free(j);
		cairn_httpd_add_header(req, "Retry-After", "5");
		return cairn_httpd_send_error(req, 503);
	}
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	count(&s->m_snapshots);
	int rc = cairn_httpd_stream_start(req, 200, "application/zstd", -1, &j->stream);
	if (rc == 0) {
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &at, snap_main, j) != 0) {
			cairn_httpd_stream_end(j->stream, 0);
			rc = CAIRN_ENOMEM;
		}
		pthread_attr_destroy(&at);
		if (rc == 0)
			return 0;
	}
	cairn_codec_free(j->codec);
	free(j);
	pthread_mutex_lock(&s->lock);
	s->snapshots--;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int cairn_feed_server_routes(struct cairn_feed_server *s, struct cairn_httpd *h,
			     struct cairn_error *err)
{
	int rc;
	struct cairn_httpd_counter *c[5];
	if ((rc = cairn_httpd_counter_new(h, "cairn_feed_events_total",
					  "Events appended to the change feed's log.", &c[0], err)) <
		    0 ||
	    (rc = cairn_httpd_counter_new(h, "cairn_feed_pages_total",
					  "Feed pages answered (long-polls included).", &c[1], err)) <
		    0 ||
	    (rc = cairn_httpd_counter_new(h, "cairn_feed_gone_total",
					  "Feed requests for events no longer kept (410).", &c[2],
					  err)) < 0 ||
	    (rc = cairn_httpd_counter_new(h, "cairn_feed_snapshots_total", "Snapshots started.",
					  &c[3], err)) < 0 ||
	    (rc = cairn_httpd_counter_new(h, "cairn_feed_held_total",
					  "Feed requests held to wait for events (long-polls).",
					  &c[4], err)) < 0)
		return rc;
	pthread_mutex_lock(&s->lock);
	s->httpd = h;
	atomic_store(&s->m_events, c[0]);
	atomic_store(&s->m_pages, c[1]);
	atomic_store(&s->m_gone, c[2]);
	atomic_store(&s->m_snapshots, c[3]);
	atomic_store(&s->m_held, c[4]);
	pthread_mutex_unlock(&s->lock);
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/feed/events", "feed-events", h_events,
				    s, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/feed/snapshot", "feed-snapshot",
				    h_snapshot, s, err)) < 0)
		return rc;
	return 0;
}

/* ---- life ------------------------------------------------------------------ */

static char *dup_or_null(const char *s, bool *oom)
{
	char *r = s ? strdup(s) : NULL;
	if (s && !r)
		*oom = true;
	return r;
}

int cairn_feed_server_new(struct cairn_feed_server **out, const struct cairn_feed_server_config *cfg,
			  struct cairn_error *err)
{
	struct cairn_feed_server *s = calloc(1, sizeof(*s));
	bool oom = false;
	int rc;
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	s->cfg = *cfg;
	s->dir_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->path = dup_or_null(cfg->path, &oom);
	s->binary_cache = dup_or_null(cfg->binary_cache, &oom);
	if (cfg->store_db) {
		s->dbcfg = *cfg->store_db;
		s->store_dir = dup_or_null(cfg->store_db->store_dir, &oom);
		s->db_path = dup_or_null(cfg->store_db->db_path, &oom);
		s->dbcfg.store_dir = s->store_dir;
		s->dbcfg.db_path = s->db_path;
	}
	s->waiters = calloc(CAIRN_FEED_WAITERS_MAX, sizeof(*s->waiters));
	if (oom || !s->waiters || !s->path) {
		rc = cairn_error_set(err, oom || !s->waiters ? CAIRN_ENOMEM : CAIRN_EINVAL,
				     "feed: out of memory or no path");
		goto fail;
	}
	s->cfg.path = s->path;
	s->cfg.binary_cache = s->binary_cache;
	s->cfg.store_db = NULL;
	if (!s->binary_cache && (!cfg->store_db || !cfg->narinfo)) {
		rc = cairn_error_set(err, CAIRN_EINVAL, "feed: no source");
		goto fail;
	}
	if (!s->cfg.keep)
		s->cfg.keep = CAIRN_FEED_KEEP_DEFAULT;
	if (!s->cfg.poll_ms)
		s->cfg.poll_ms = CAIRN_FEED_POLL_MS_DEFAULT;
	if (s->binary_cache) {
		s->dir_fd = open(s->binary_cache, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s->dir_fd < 0) {
			rc = cairn_error_errno(err, errno, "feed: cannot open '%s'",
					       s->binary_cache);
			goto fail;
		}
	}
	if ((rc = cairn_feed_open(&s->feed, s->path, err)) < 0)
		goto fail;
	if (pthread_create(&s->thread, NULL, source_main, s) != 0) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "feed: cannot start a thread");
		goto fail;
	}
	s->running = true;
	*out = s;
	return 0;
fail:
	cairn_feed_server_free(s);
	return rc;
}

struct cairn_feed *cairn_feed_server_log(struct cairn_feed_server *s)
{
	return s->feed;
}

void cairn_feed_server_free(struct cairn_feed_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	if (s->running)
		pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->lock);
	while (s->snapshots)
		pthread_cond_wait(&s->cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	cairn_storedb_free(s->db);
	cairn_feed_close(s->feed);
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->waiters);
	free(s->path);
	free(s->binary_cache);
	free(s->store_dir);
	free(s->db_path);
	free(s);
}
