/*
 * sync.c - `cairn sync`, first slice: the initial replication of a head
 * into a binary-cache directory from its feed's snapshot (sync.h has the
 * layout and the guarantees).
 *
 * One thread drives the HTTP client; the download engine's pipelines
 * (decompress, hash, check) run on its pool.  At most `parallel` items are
 * in flight; each is one engine download whose body sink keeps the file
 * as served, committed (renamed) once every check passed, then its
 * narinfo written beside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/codec.h"
#include "cairn/feed.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/survey.h"
#include "cairn/sync.h"
#include "download.h"
#include "cairn/banned.h"

/* One item on its way: its own copy of the event (a streamed snapshot's
 * bytes do not stay), on the list of live items until it is settled. */
struct sync_item {
	struct sync *s;
	struct sync_item *next, *prev;
	struct cairn_feed_event evc;
	const struct cairn_feed_event *ev; /* &evc */
	struct cairn_narinfo *ni;
	struct cairn_dl *dl;
	struct cairn_dl_file *file;
	char target[4096];
};

struct sync {
	const struct cairn_sync_config *cfg;
	struct cairn_sync_stats *st;
	struct cairn_http *http;
	struct cairn_http_server *server;
	struct cairn_dl_pool *pool;
	int dirfd;
	unsigned active;
	unsigned extras; /* .ls and log requests in flight */
	struct sync_item *live;
};

static void say(struct sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct sync *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!s->cfg->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s->cfg->log(s->cfg->log_ctx, msg);
}

/* ---- whole small bodies (nix-cache-info, the snapshot) -------------------- */

struct fetch_whole {
	struct cairn_buf *out; /* or, when NULL, fd */
	int fd;
	struct cairn_error err;
	bool finished;
	int code;
	long status;
};

static int whole_data(void *ctx, const void *data, size_t len)
{
	struct fetch_whole *w = ctx;
	const char *p = data;
	if (w->out)
		return cairn_buf_append(w->out, data, len) ? CAIRN_ELIMIT : 0;
	while (len) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CAIRN_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void whole_done(void *ctx, const struct cairn_http_result *res)
{
	struct fetch_whole *w = ctx;
	w->finished = true;
	w->code = res->err.code;
	w->err = res->err;
	w->status = res->status;
}

/* GET path whole into out (NULL: into fd); *status (may be NULL) gets the
 * final status. */
static int fetch_whole(struct sync *s, const char *path, uint64_t max, long first_byte_ms,
		       struct cairn_buf *out, int fd, long *status, struct cairn_error *err)
{
	struct fetch_whole w = {.out = out, .fd = fd};
	bool absolute = !strncmp(path, "http://", 7) || !strncmp(path, "https://", 8);
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = absolute ? NULL : s->server,
					.url = path,
					.max_body = max,
					.first_byte_timeout_ms = first_byte_ms,
					.on_data = whole_data,
					.on_done = whole_done,
					.ctx = &w};
	cairn_error_init(&w.err);
	int rc = cairn_http_add(s->http, &rq, err);
	if (rc < 0)
		return rc;
	while (!w.finished) {
		if ((rc = cairn_http_step(s->http, 200, err)) < 0)
			return rc;
		/* a long-poll is left in flight when asked to stop: the
		 * caller returns and frees the client, which drops it without
		 * calling back into this frame */
		if (!w.finished && first_byte_ms && s->cfg->stop && s->cfg->stop(s->cfg->log_ctx))
			return cairn_error_set(err, CAIRN_ECANCELED, "sync: stopped");
	}
	if (status)
		*status = w.status;
	if (w.code)
		return cairn_error_set(err, w.code, "%s", cairn_error_msg(&w.err));
	return 0;
}

/* ---- the directory ------------------------------------------------------- */

/* Write bytes to dir/name atomically: a temporary name, fsync, rename. */
static int write_atomic(const char *dir, int dirfd, const char *name, const void *data,
			size_t len, struct cairn_error *err)
{
	char full[4200];
	/* the temporary name beside the target: the dot on its last part */
	const char *slash = strrchr(name, '/');
	if (slash)
		snprintf(full, sizeof(full), "%s/%.*s/.%s.XXXXXX", dir, (int)(slash - name), name,
			 slash + 1);
	else
		snprintf(full, sizeof(full), "%s/.%s.XXXXXX", dir, name);
	int fd = mkostemp(full, O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "sync: cannot create a file for '%s'", name);
	const char *p = data;
	size_t left = len;
	int rc = 0;
	while (left && rc == 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = cairn_error_errno(err, w < 0 ? errno : ENOSPC, "sync: cannot write '%s'",
					       name);
		else {
			p += w;
			left -= (size_t)w;
		}
	}
	if (rc == 0 && (fsync(fd) != 0 || fchmod(fd, 0644) != 0))
		rc = cairn_error_errno(err, errno, "sync: cannot write '%s'", name);
	close(fd);
	if (rc == 0 && renameat(AT_FDCWD, full, dirfd, name) != 0)
		rc = cairn_error_errno(err, errno, "sync: cannot rename into '%s'", name);
	if (rc < 0)
		unlink(full);
	return rc;
}

/* Does dir/name hold exactly these bytes? */
static bool same_file(int dirfd, const char *name, const char *data, size_t len)
{
	struct stat sb;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	bool same = false;
	if (fd < 0)
		return false;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == len) {
		char *b = malloc(len ? len : 1);
		size_t got = 0;
		while (b && got < len) {
			ssize_t r = read(fd, b + got, len - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		same = b && got == len && memcmp(b, data, len) == 0;
		free(b);
	}
	close(fd);
	return same;
}

/* Is name a temporary name of ours or of the engine's (".X.XXXXXX")? */
static bool is_tmp_name(const char *n)
{
	size_t l = strlen(n);
	return n[0] == '.' && l > 8 && n[l - 7] == '.' && strcmp(n, "..") != 0;
}

/* Remove what a killed run left: temporary files in dir, dir/nar and its
 * subdirectories (one level: Guix's nar/<method>/). */
static void sweep(int dfd, const char *sub)
{
	int fd = sub ? openat(dfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (is_tmp_name(de->d_name)) {
			unlinkat(dirfd(d), de->d_name, 0);
		} else if (sub && !strcmp(sub, "nar") && de->d_type == DT_DIR &&
			   de->d_name[0] != '.') {
			/* Guix's nar/<method>/ */
			char inner[512];
			snprintf(inner, sizeof(inner), "%s/%s", sub, de->d_name);
			sweep(dfd, inner);
		}
	}
	closedir(d);
}

/* ---- items ----------------------------------------------------------------- */

static void item_release(struct sync_item *it)
{
	cairn_dl_free(it->dl);
	it->dl = NULL;
	cairn_dl_file_free(it->file);
	it->file = NULL;
	cairn_narinfo_free(it->ni);
	it->ni = NULL;
}

/* Settled: off the list, freed. */
static void item_finish(struct sync_item *it)
{
	struct sync *s = it->s;
	s->active--;
	if (it->prev)
		it->prev->next = it->next;
	else
		s->live = it->next;
	if (it->next)
		it->next->prev = it->prev;
	item_release(it);
	free((char *)it->evc.narinfo);
	free(it);
}

/* A live item for event e (copied). */
static struct sync_item *item_new(struct sync *s, const struct cairn_feed_event *e)
{
	struct sync_item *it = calloc(1, sizeof(*it));
	char *t = e->narinfo_len ? malloc(e->narinfo_len) : NULL;
	if (!it || (e->narinfo_len && !t)) {
		free(it);
		free(t);
		return NULL;
	}
	if (t)
		memcpy(t, e->narinfo, e->narinfo_len);
	it->s = s;
	it->evc = *e;
	it->evc.narinfo = t;
	it->ev = &it->evc;
	it->next = s->live;
	if (s->live)
		s->live->prev = it;
	s->live = it;
	s->active++;
	return it;
}

/*
 * What a binary cache holds beside an item, where the head has it: its
 * listing (<hashpart>.ls, what `nix store ls` reads) and its deriver's
 * build log (log/<drv basename>).  Neither is signed (Nix trusts them as
 * they come); asked once the item is in place, a 404 is no error.
 */
#define SYNC_LS_MAX ((uint64_t)64 << 20)
#define SYNC_LOG_MAX ((uint64_t)1 << 30)

struct extra {
	struct sync *s;
	char name[320]; /* relative to DIR */
	struct cairn_buf body;
};

static int extra_data(void *ctx, const void *data, size_t len)
{
	struct extra *x = ctx;
	return cairn_buf_append(&x->body, data, len) ? CAIRN_ELIMIT : 0;
}

static void extra_done(void *ctx, const struct cairn_http_result *res)
{
	struct extra *x = ctx;
	struct sync *s = x->s;
	struct cairn_error e;
	cairn_error_init(&e);
	if (res->outcome == CAIRN_HTTP_OK) {
		/* log/ is made when the first log comes: no empty directory */
		if (!strncmp(x->name, "log/", 4) && mkdirat(s->dirfd, "log", 0755) < 0 &&
		    errno != EEXIST)
			say(s, "log: cannot make the directory: %s", strerror(errno));
		else if (write_atomic(s->cfg->to, s->dirfd, x->name, x->body.data ? x->body.data : "",
				 x->body.len, &e) < 0)
			say(s, "%s: %s", x->name, cairn_error_msg(&e));
		else
			s->st->extras++;
	} else if (res->err.code != CAIRN_ENOENT) {
		say(s, "%s: not copied: %s", x->name, cairn_error_msg(&res->err));
	}
	cairn_buf_release(&x->body);
	free(x);
	s->extras--;
}

static void extra_get(struct sync *s, const char *name, uint64_t max)
{
	struct extra *x = calloc(1, sizeof(*x));
	if (!x)
		return;
	x->s = s;
	snprintf(x->name, sizeof(x->name), "%s", name);
	cairn_buf_init(&x->body, (size_t)max);
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET,
					.server = s->server,
					.url = x->name,
					.max_body = max,
					.on_data = extra_data,
					.on_done = extra_done,
					.ctx = x};
	if (cairn_http_add(s->http, &rq, NULL) < 0) {
		free(x);
		return;
	}
	s->extras++;
}

static void extras_for(struct sync *s, const struct sync_item *it)
{
	char name[320];
	snprintf(name, sizeof(name), "%s.ls", it->ev->hashpart);
	extra_get(s, name, SYNC_LS_MAX);
	const char *d = it->ni->deriver;
	if (d && !strchr(d, '/') && strlen(d) < 250 && d[0] != '.') {
		snprintf(name, sizeof(name), "log/%s", d);
		extra_get(s, name, SYNC_LOG_MAX);
	}
}

static void item_done(void *ctx, const struct cairn_dl_result *r)
{
	struct sync_item *it = ctx;
	struct sync *s = it->s;
	struct cairn_error e;
	cairn_error_init(&e);
	s->st->bytes += r->bytes;
	char name[48];
	snprintf(name, sizeof(name), "%s.narinfo", it->ev->hashpart);
	if (r->code) {
		s->st->failed++;
		say(s, "%s: refused or failed: %s%s%s", it->ni->store_path, r->headline,
		    r->reason && *r->reason ? ": " : "", r->reason ? r->reason : "");
	} else if (cairn_dl_file_commit(it->file, &e) < 0 ||
		   write_atomic(s->cfg->to, s->dirfd, name, it->ev->narinfo, it->ev->narinfo_len, &e) < 0) {
		s->st->failed++;
		say(s, "%s: %s", it->ni->store_path, cairn_error_msg(&e));
	} else {
		s->st->copied++;
		extras_for(s, it);
	}
	item_finish(it); /* frees the download too: allowed inside on_done */
}

/*
 * A Nix narinfo whose first URL carries a query (cairn publish without a
 * cache names its nars "nar/<NarHash>.nar.zst?hash=<hashpart>"): the file
 * is stored under the plain name, and a `file://` client (Nix reads the
 * URL as a file name) or another static server would ask for a name that
 * is not there.  The URL is not part of what Nix signs (the fingerprint is
 * "1;StorePath;NarHash;NarSize;References"), so the replica's narinfo gets
 * the plain name and every signed byte stays.  A Guix narinfo is kept as
 * it is: its Signature covers the text before it, which may include the
 * URL.  Returns the new text (the caller's to free) or NULL when the text
 * stays; *out_len its length.
 */
static char *plain_url_text(const char *t, size_t len, size_t *out_len)
{
	const char *end = t + len, *line = t, *url = NULL;
	for (const char *p = t; p < end; p = line) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		line = nl ? nl + 1 : end;
		if ((size_t)(line - p) > 11 && !memcmp(p, "Signature: ", 11))
			return NULL; /* Guix */
		if (!url && (size_t)(line - p) > 5 && !memcmp(p, "URL: ", 5))
			url = p + 5;
	}
	if (!url)
		return NULL;
	const char *eol = memchr(url, '\n', (size_t)(end - url));
	if (!eol)
		eol = end;
	size_t keep = 0;
	while (url + keep < eol && url[keep] != '?' && url[keep] != '#')
		keep++;
	if (url + keep == eol)
		return NULL;
	size_t cut = (size_t)(eol - (url + keep));
	char *o = malloc(len - cut);
	if (!o)
		return NULL; /* kept as it is: still servable over HTTP */
	size_t head = (size_t)(url + keep - t);
	memcpy(o, t, head);
	memcpy(o + head, eol, (size_t)(end - eol));
	*out_len = len - cut;
	return o;
}

/* Start one item: 0 when started or settled (present, refused). */
static int item_start(struct sync *s, struct sync_item *it)
{
	struct cairn_error e;
	char name[48];
	size_t plain_len;
	cairn_error_init(&e);
	snprintf(name, sizeof(name), "%s.narinfo", it->ev->hashpart);
	char *plain = plain_url_text(it->evc.narinfo, it->evc.narinfo_len, &plain_len);
	if (plain) {
		free((char *)it->evc.narinfo);
		it->evc.narinfo = plain;
		it->evc.narinfo_len = plain_len;
	}
	if (same_file(s->dirfd, name, it->ev->narinfo, it->ev->narinfo_len)) {
		s->st->present++;
		item_finish(it);
		return 0;
	}
	if (cairn_narinfo_parse(it->ev->narinfo, it->ev->narinfo_len, &it->ni, &e) < 0) {
		s->st->refused++;
		say(s, "%s: refused: %s", it->ev->hashpart, cairn_error_msg(&e));
		item_finish(it);
		return 0;
	}
	const char *base = strrchr(it->ni->store_path, '/');
	struct cairn_verify_result vr;
	const char *why = NULL;
	if (!base || strncmp(base + 1, it->ev->hashpart, 32) != 0)
		why = "its StorePath does not have the feed's hash part";
	else if (cairn_narinfo_verify(it->ni, s->cfg->kr, &vr, &e) != 0)
		why = vr.detail;
	else if (it->ni->n_urls == 0)
		why = "no URL";
	char rel[1024] = "";
	const struct cairn_narinfo_url *u = it->ni->n_urls ? &it->ni->urls[0] : NULL;
	if (!why) {
		/* the file's name is the URL's path: a static server drops the query */
		size_t ul = strcspn(u->url, "?#");
		const char *sub;
		if (strncmp(u->url, "nar/", 4) != 0 ||
		    cairn_httpd_safe_path(u->url, ul, rel, sizeof(rel), NULL) < 0 ||
		    ((sub = strchr(rel + 4, '/')) && strchr(sub + 1, '/')))
			why = "its URL is not a file under nar/ (or nar/<method>/, as Guix)";
		else if (sub) {
			/* Guix: nar/<method>/<basename> */
			char d[1024];
			snprintf(d, sizeof(d), "%.*s", (int)(sub - rel), rel);
			if (mkdirat(s->dirfd, d, 0755) < 0 && errno != EEXIST)
				why = "its directory cannot be made";
		}
	}
	enum cairn_codec_method m = CAIRN_CODEC_NONE;
	if (!why && cairn_codec_method_parse(u->compression, strlen(u->compression), &m, NULL) < 0)
		why = "its compression is not supported";
	if (why) {
		s->st->refused++;
		say(s, "%s: refused: %s", it->ni->store_path, why);
		item_finish(it);
		return 0;
	}
	snprintf(it->target, sizeof(it->target), "%s/%s", s->cfg->to, rel);
	struct cairn_dl_source src = {.label = s->cfg->from,
				      .server = s->server,
				      .url = u->url,
				      .method = m,
				      .has_file_hash = u->has_file_hash,
				      .file_hash = u->file_hash,
				      .has_file_size = u->has_file_size,
				      .file_size = u->file_size};
	struct cairn_dl_expect ex = {.nar_hash = it->ni->nar_hash, .nar_size = it->ni->nar_size};
	struct cairn_dl_config dc = {.http = s->http, .pool = s->pool, .on_done = item_done, .ctx = it};
	struct cairn_dl_sink sink;
	int rc = cairn_dl_file_new(&it->file, it->target, &e);
	if (rc == 0) {
		cairn_dl_file_body_sink(it->file, &sink);
		rc = cairn_dl_start(&it->dl, &dc, &ex, &src, 1, &sink, &e);
	}
	if (rc < 0) {
		s->st->failed++;
		say(s, "%s: %s", it->ni->store_path, cairn_error_msg(&e));
		item_finish(it);
	}
	return 0;
}

/* ---- the run ----------------------------------------------------------------- */

/* Run the downloads in flight until at most `below` are left. */
static int settle(struct sync *s, unsigned below, struct cairn_error *err)
{
	while (s->active > below) {
		int rc = cairn_http_step(s->http, 50, err);
		if (rc < 0)
			return rc;
		cairn_dl_pool_drain(s->pool);
	}
	return 0;
}

/* Everything in flight, listings and logs too. */
static int settle_all(struct sync *s, struct cairn_error *err)
{
	int rc = settle(s, 0, err);
	while (rc == 0 && s->extras)
		if ((rc = cairn_http_step(s->http, 50, err)) >= 0)
			rc = 0;
	return rc;
}

/* A removal: the narinfo goes first (nothing points at the file then),
 * then its file when no other narinfo can name it. */
static int remove_item(struct sync *s, const char *hashpart, struct cairn_error *err)
{
	char name[48], *text = NULL;
	struct stat sb;
	snprintf(name, sizeof(name), "%s.narinfo", hashpart);
	int fd = openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0; /* never copied (refused), or gone already */
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
	    (uint64_t)sb.st_size <= CAIRN_FEED_EVENT_MAX && (text = malloc((size_t)sb.st_size))) {
		if (read(fd, text, (size_t)sb.st_size) != sb.st_size) {
			free(text);
			text = NULL;
		}
	}
	close(fd);
	if (unlinkat(s->dirfd, name, 0) < 0 && errno != ENOENT)
		return cairn_error_errno(err, errno, "sync: cannot remove '%s'", name);
	snprintf(name, sizeof(name), "%s.ls", hashpart);
	unlinkat(s->dirfd, name, 0); /* the item's own; a log may be shared */
	struct cairn_narinfo *ni = NULL;
	char rel[1024];
	/* A file named by its content (nar/<FileHash>.nar.xz, as nix copy
	 * names them) may be another item's too: identical NARs share it, and
	 * deleting it would leave that narinfo unservable.  Only a file whose
	 * name carries this item's hash part (Guix's nar/<method>/<basename>)
	 * is its own; the others stay for a later cleanup. */
	if (text && cairn_narinfo_parse(text, (size_t)sb.st_size, &ni, NULL) == 0 && ni->n_urls &&
	    strncmp(ni->urls[0].url, "nar/", 4) == 0 &&
	    cairn_httpd_safe_path(ni->urls[0].url, strcspn(ni->urls[0].url, "?#"), rel,
				  sizeof(rel), NULL) == 0) {
		const char *base = strrchr(rel, '/');
		if (base && strncmp(base + 1, hashpart, 32) == 0)
			unlinkat(s->dirfd, rel, 0);
	}
	cairn_narinfo_free(ni);
	free(text);
	s->st->removed++;
	return 0;
}

/* An addition, once fewer than `parallel` are in flight. */
static int add_item(struct sync *s, const struct cairn_feed_event *e, unsigned parallel,
		    struct cairn_error *err)
{
	int rc = settle(s, parallel - 1, err);
	if (rc < 0)
		return rc;
	struct sync_item *it = item_new(s, e);
	if (!it)
		return cairn_error_set(err, CAIRN_ENOMEM, "sync: out of memory");
	return item_start(s, it);
}

/* ---- the snapshot, as it streams ---------------------------------------- */

struct snap_run {
	struct sync *s;
	unsigned parallel;
	int fd;
	struct cairn_feed_reader *r;
	struct cairn_error *err;
};

/* Each item of the snapshot as it is read: copied once trusted (item_start). */
static int snap_event(void *ctx, const struct cairn_feed_event *e)
{
	struct snap_run *sr = ctx;
	sr->s->st->items++;
	return add_item(sr->s, e, sr->parallel, sr->err);
}

static int snap_in(void *ctx, const void *data, size_t len)
{
	struct snap_run *sr = ctx;
	return cairn_feed_reader_feed(sr->r, data, len, sr->err);
}

/*
 * Fetch the snapshot (compressed, to a temporary file in DIR: the
 * transfer does not wait for the copies), then read it as it streams,
 * copying each item as it comes, and check its signature at the end.  An
 * item copied before the end was trusted through its own narinfo; what the
 * snapshot's signature adds, its feed id and sequence number, is taken
 * only once it verified.
 */
static int snapshot(struct sync *s, unsigned parallel, char feed[33], uint64_t *seq,
		    struct cairn_error *err)
{
	char tmp[4200];
	struct snap_run sr = {s, parallel, -1, NULL, err};
	struct cairn_codec *c = NULL;
	const struct cairn_feed_doc *doc;
	int rc;
	snprintf(tmp, sizeof(tmp), "%s/.snapshot.zst.XXXXXX", s->cfg->to);
	sr.fd = mkostemp(tmp, O_CLOEXEC);
	if (sr.fd < 0)
		return cairn_error_errno(err, errno, "sync: cannot create '%s'", tmp);
	unlink(tmp); /* nothing to sweep after a kill */
	if ((rc = fetch_whole(s, "feed/snapshot", CAIRN_SYNC_SNAPSHOT_MAX, 0, NULL, sr.fd, NULL,
			      err)) < 0)
		goto out;
	if (lseek(sr.fd, 0, SEEK_SET) < 0) {
		rc = cairn_error_errno(err, errno, "sync: cannot read the snapshot back");
		goto out;
	}
	if ((rc = cairn_feed_reader_new(&sr.r, snap_event, &sr, err)) < 0 ||
	    (rc = cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
				  CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, err)) < 0)
		goto out;
	char buf[65536];
	for (;;) {
		ssize_t n = read(sr.fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = cairn_error_errno(err, errno, "sync: cannot read the snapshot back");
			goto out;
		}
		if (n == 0)
			break;
		if ((rc = cairn_codec_write(c, buf, (size_t)n, snap_in, &sr, err)) < 0)
			goto out;
	}
	if ((rc = cairn_codec_finish(c, snap_in, &sr, err)) < 0 ||
	    (rc = settle_all(s, err)) < 0 ||
	    (rc = cairn_feed_reader_finish(sr.r, &doc, err)) < 0 ||
	    (rc = cairn_feed_doc_verify(doc, s->cfg->kr, err)) < 0)
		goto out;
	if (doc->kind != CAIRN_FEED_SNAPSHOT) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "sync: a page where the snapshot was asked for");
		goto out;
	}
	memcpy(feed, doc->feed, 33);
	*seq = doc->next;
out:
	cairn_codec_free(c);
	cairn_feed_reader_free(sr.r);
	close(sr.fd);
	if (rc < 0 && err->code == 0)
		cairn_error_set(err, rc, "sync: cannot read the snapshot of %s", s->cfg->from);
	return rc;
}

/*
 * Apply a verified document's events in order: additions downloaded up to
 * `parallel` at once, a removal only after every addition before it is
 * settled (an add and a remove of one item in a page keep their order).
 */
static int apply(struct sync *s, const struct cairn_feed_doc *doc, unsigned parallel,
		 struct cairn_error *err)
{
	int rc = 0;
	for (size_t i = 0; i < doc->n_events && rc == 0; i++) {
		const struct cairn_feed_event *e = &doc->events[i];
		if (e->kind == CAIRN_FEED_REMOVE) {
			if ((rc = settle(s, 0, err)) == 0)
				rc = remove_item(s, e->hashpart, err);
			continue;
		}
		rc = add_item(s, e, parallel, err);
	}
	if (rc == 0)
		rc = settle_all(s, err);
	return rc;
}

/* The status file: where the replica is in the feed, for monitoring. */
static void write_status(struct sync *s, uint64_t head)
{
	char b[256];
	if (!s->cfg->status_file)
		return;
	int n = snprintf(b, sizeof(b), "feed %s\nseq %" PRIu64 "\nhead %" PRIu64 "\nlag %" PRIu64
			 "\nupdated %lld\n",
			 s->st->feed, s->st->seq, head, head - s->st->seq, (long long)time(NULL));
	const char *f = s->cfg->status_file, *slash = strrchr(f, '/'), *name = f;
	char dir[4096] = ".";
	if (slash) {
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - f), f);
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
		name = slash + 1;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	struct cairn_error e;
	cairn_error_init(&e);
	if (write_atomic(dir, dfd, name, b, (size_t)n, &e) < 0)
		say(s, "%s", cairn_error_msg(&e));
	close(dfd);
}

/*
 * Follow the feed from st->seq: long-poll pages, verify each (signature,
 * feed, position), apply it.  A 410 (too far behind) re-reads the
 * snapshot.  Until cfg->stop says so, or an error.
 */
static int follow(struct sync *s, unsigned parallel, struct cairn_error *err)
{
	struct cairn_buf page = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	int rc = 0;
	write_status(s, s->st->seq);
	while (!(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx))) {
		char path[128];
		long status = 0;
		struct cairn_feed_doc doc;
		struct cairn_error e;
		cairn_error_init(&e);
		cairn_buf_reset(&page);
		snprintf(path, sizeof(path), "feed/events?since=%" PRIu64 "&wait=%u", s->st->seq,
			 CAIRN_SYNC_WAIT);
		rc = fetch_whole(s, path, CAIRN_FEED_PAGE_MAX, (CAIRN_SYNC_WAIT + 15) * 1000L, &page,
				 -1, &status, &e);
		if (rc == CAIRN_ECANCELED) {
			rc = 0;
			break;
		}
		if (rc < 0 && status == 410) {
			say(s, "feed: behind what the head keeps: reading the snapshot again");
			char feed[33];
			uint64_t seq = 0;
			rc = snapshot(s, parallel, feed, &seq, err);
			if (rc == 0 && strcmp(feed, s->st->feed) != 0)
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "sync: the head's feed is now %s, not %s", feed,
						     s->st->feed);
			if (rc == 0)
				s->st->seq = seq;
			if (rc < 0)
				break;
			continue;
		}
		if (rc < 0) {
			/* the head is down or restarting: say so, wait, go on */
			say(s, "feed: %s (retrying)", cairn_error_msg(&e));
			for (int i = 0; i < 20 && !(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx)); i++)
				cairn_http_step(s->http, 50, NULL);
			rc = 0;
			continue;
		}
		if ((rc = cairn_feed_doc_parse(page.data, page.len, &doc, &e)) < 0 ||
		    (rc = cairn_feed_doc_verify(&doc, s->cfg->kr, &e)) < 0 ||
		    (rc = cairn_feed_doc_check_page(&doc, s->st->feed, s->st->seq, &e)) < 0) {
			/* a page refused is not applied: nothing it says counts */
			say(s, "feed: page after %" PRIu64 " refused: %s", s->st->seq,
			    cairn_error_msg(&e));
			s->st->pages_refused++;
			cairn_feed_doc_release(&doc);
			for (int i = 0; i < 20 && !(s->cfg->stop && s->cfg->stop(s->cfg->log_ctx)); i++)
				cairn_http_step(s->http, 50, NULL);
			rc = 0;
			continue;
		}
		rc = apply(s, &doc, parallel, err);
		if (rc == 0) {
			s->st->seq = doc.next;
			s->st->items += doc.n_events;
			write_status(s, doc.head);
		}
		cairn_feed_doc_release(&doc);
		if (rc < 0)
			break;
	}
	cairn_buf_release(&page);
	return rc;
}

/* ---- heads without a feed: a list of store paths and their closures ---- */

struct paths_run {
	struct sync *s;
	struct cairn_survey *survey_;
	const char *store_dir;
	struct cairn_feed_event *queue; /* narinfos found, waiting for a slot */
	size_t n, cap, next;
	int failed;
	struct cairn_error err;
};

/* A survey answer: a narinfo found is queued (its bytes as received), and
 * when a trusted key signed it, its references are asked for too. */
static int paths_found(void *ctx, struct cairn_survey_result *r)
{
	struct paths_run *pr = ctx;
	struct sync *s = pr->s;
	const char *base = strrchr(r->store_path, '/');
	if (r->outcome != CAIRN_SURVEY_PRESENT) {
		if (r->outcome == CAIRN_SURVEY_ABSENT)
			s->st->refused++;
		else
			s->st->failed++;
		say(s, "%s: not copied: the head %s it (%s)", r->store_path,
		    r->outcome == CAIRN_SURVEY_ABSENT ? "does not have" : "did not give",
		    cairn_error_msg(&r->err));
		return 0;
	}
	struct cairn_verify_result vr;
	if (cairn_narinfo_verify(r->narinfo, s->cfg->kr, &vr, NULL) == 0) {
		for (size_t i = 0; i < r->narinfo->n_refs; i++) {
			char p[CAIRN_NARINFO_STORE_DIR_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", pr->store_dir, r->narinfo->refs[i]);
			int rc = cairn_survey_add(pr->survey_, p, NULL, &pr->err);
			if (rc < 0)
				return pr->failed = rc;
		}
	}
	if (pr->n == pr->cap) {
		size_t nc = pr->cap ? pr->cap * 2 : 256;
		struct cairn_feed_event *v = realloc(pr->queue, nc * sizeof(*v));
		if (!v)
			return pr->failed = CAIRN_ENOMEM;
		pr->queue = v;
		pr->cap = nc;
	}
	char *t = malloc(r->text_len ? r->text_len : 1);
	if (!t || !base) {
		free(t);
		return pr->failed = CAIRN_ENOMEM;
	}
	memcpy(t, r->text, r->text_len);
	struct cairn_feed_event *e = &pr->queue[pr->n++];
	memset(e, 0, sizeof(*e));
	e->kind = CAIRN_FEED_ADD;
	memcpy(e->hashpart, base + 1, 32);
	e->narinfo = t;
	e->narinfo_len = r->text_len;
	s->st->items++;
	return 0;
}

/* Add the list's store paths to the survey: one a line, blank lines and
 * '#' comments skipped. */
static int paths_add(struct cairn_survey *sv, const char *t, size_t len, struct cairn_error *err)
{
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && t[e] != '\n')
			e++;
		size_t l = e - i;
		if (l && t[i + l - 1] == '\r')
			l--;
		if (l && t[i] != '#') {
			char line[4096];
			if (l >= sizeof(line))
				return cairn_error_set(err, CAIRN_ELIMIT, "sync: a line of the list is too long");
			memcpy(line, t + i, l);
			line[l] = '\0';
			int rc = cairn_survey_add(sv, line, NULL, err);
			if (rc < 0)
				return rc;
		}
		i = e + 1;
	}
	return 0;
}

static int put_buf(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len);
}

/*
 * The list: a file, or a URL (a Hydra-style store-paths.xz: xz-compressed
 * when its bytes say so), at most CAIRN_SYNC_PATHS_MAX bytes of text.
 */
static int paths_read(struct sync *s, struct cairn_survey *sv, const char *where,
		      struct cairn_error *err)
{
	struct cairn_buf raw = CAIRN_BUF_INIT(CAIRN_SYNC_PATHS_MAX);
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_SYNC_PATHS_MAX);
	int rc;
	if (!strncmp(where, "http://", 7) || !strncmp(where, "https://", 8)) {
		rc = fetch_whole(s, where, CAIRN_SYNC_PATHS_MAX, 0, &raw, -1, NULL, err);
	} else {
		FILE *f = fopen(where, "rb");
		char b[65536];
		size_t n;
		rc = 0;
		if (!f)
			return cairn_error_errno(err, errno, "sync: cannot read '%s'", where);
		while (rc == 0 && (n = fread(b, 1, sizeof(b), f)) > 0)
			if (cairn_buf_append(&raw, b, n) < 0)
				rc = cairn_error_set(err, CAIRN_ELIMIT, "sync: '%s' is too large", where);
		fclose(f);
	}
	static const unsigned char xz_magic[6] = {0xfd, '7', 'z', 'X', 'Z', 0};
	if (rc == 0 && raw.len >= 6 && memcmp(raw.data, xz_magic, 6) == 0) {
		struct cairn_codec *c = NULL;
		rc = cairn_codec_new(&c, CAIRN_CODEC_XZ, CAIRN_CODEC_DECOMPRESS,
				     CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_SYNC_PATHS_MAX, err);
		if (rc == 0)
			rc = cairn_codec_write(c, raw.data, raw.len, put_buf, &text, err);
		if (rc == 0)
			rc = cairn_codec_finish(c, put_buf, &text, err);
		cairn_codec_free(c);
		if (rc == 0)
			rc = paths_add(sv, text.data, text.len, err);
	} else if (rc == 0) {
		rc = paths_add(sv, raw.data ? raw.data : "", raw.len, err);
	}
	cairn_buf_release(&raw);
	cairn_buf_release(&text);
	return rc;
}

/* Replicate the closures of a list of store paths: narinfos asked through
 * the query engine (lib/survey.c), items copied as above. */
static int paths(struct sync *s, unsigned parallel, const char *store_dir, struct cairn_error *err)
{
	struct paths_run pr = {.s = s, .store_dir = store_dir};
	struct cairn_survey_config sc;
	struct cairn_survey *sv = NULL;
	int rc;
	cairn_error_init(&pr.err);
	cairn_survey_config_init(&sc);
	struct cairn_http_server *const servers[1] = {s->server};
	if ((rc = cairn_survey_new(&sv, s->http, servers, 1, &sc, paths_found, &pr, err)) < 0)
		return rc;
	pr.survey_ = sv;
	if ((rc = paths_read(s, sv, s->cfg->paths_file, err)) < 0)
		goto out;
	for (;;) {
		if ((rc = cairn_survey_start(sv, err)) < 0)
			goto out;
		if (pr.failed) {
			rc = cairn_error_set(err, pr.failed, "sync: %s",
					     pr.err.code ? cairn_error_msg(&pr.err) : "out of memory");
			goto out;
		}
		/* items start here, never from the survey's callback: they step
		 * the client themselves */
		while (pr.next < pr.n && s->active < parallel) {
			struct sync_item *it = item_new(s, &pr.queue[pr.next]);
			if (!it) {
				rc = cairn_error_set(err, CAIRN_ENOMEM, "sync: out of memory");
				goto out;
			}
			pr.next++;
			item_start(s, it);
		}
		if (!cairn_survey_pending(sv) && pr.next == pr.n && !s->active && !s->extras)
			break;
		if ((rc = cairn_http_step(s->http, 50, err)) < 0)
			goto out;
		cairn_dl_pool_drain(s->pool);
	}
	rc = cairn_survey_failed(sv, err);
out:
	for (size_t i = 0; i < pr.n; i++)
		free((char *)pr.queue[i].narinfo);
	free(pr.queue);
	cairn_survey_free(sv);
	return rc;
}

int cairn_sync_run(const struct cairn_sync_config *cfg, struct cairn_sync_stats *st,
		   struct cairn_error *err)
{
	struct sync s = {.cfg = cfg, .st = st, .dirfd = -1};
	struct cairn_http_config hc;
	struct cairn_buf info = CAIRN_BUF_INIT(CAIRN_HTTP_CACHE_INFO_MAX);
	unsigned parallel = cfg->parallel ? cfg->parallel : CAIRN_SYNC_PARALLEL_DEFAULT;
	int rc;

	memset(st, 0, sizeof(*st));
	if (parallel > CAIRN_SYNC_PARALLEL_MAX)
		parallel = CAIRN_SYNC_PARALLEL_MAX;
	if (mkdir(cfg->to, 0755) < 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "sync: cannot create '%s'", cfg->to);
	s.dirfd = open(cfg->to, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s.dirfd < 0)
		return cairn_error_errno(err, errno, "sync: cannot open '%s'", cfg->to);
	if (mkdirat(s.dirfd, "nar", 0755) < 0 && errno != EEXIST) {
		rc = cairn_error_errno(err, errno, "sync: cannot create '%s/nar'", cfg->to);
		goto out;
	}
	sweep(s.dirfd, NULL);
	sweep(s.dirfd, "nar");
	sweep(s.dirfd, "log");
	cairn_http_config_init(&hc);
	if ((rc = cairn_http_new(&s.http, &hc, err)) < 0 ||
	    (rc = cairn_http_server_new(&s.server, cfg->from, 0, err)) < 0 ||
	    (rc = cairn_dl_pool_new(&s.pool, 2, err)) < 0)
		goto out;
	/* nix-cache-info first: a replica without it is no cache */
	struct cairn_http_cache_info ci;
	if ((rc = fetch_whole(&s, "nix-cache-info", CAIRN_HTTP_CACHE_INFO_MAX, 0, &info, -1,
			      NULL, err)) < 0 ||
	    (rc = cairn_http_cache_info_parse(info.data, info.len, &ci, err)) < 0 ||
	    (rc = write_atomic(cfg->to, s.dirfd, "nix-cache-info", info.data, info.len, err)) < 0)
		goto out;
	if (cfg->paths_file) {
		rc = paths(&s, parallel, ci.store_dir[0] ? ci.store_dir : "/nix/store", err);
		goto out;
	}
	if ((rc = snapshot(&s, parallel, st->feed, &st->seq, err)) < 0)
		goto out;
	if (cfg->follow && (rc = follow(&s, parallel, err)) < 0)
		goto out;
	rc = 0;
out:
	while (s.live) /* an error left some in flight */
		item_finish(s.live);
	cairn_buf_release(&info);
	cairn_dl_pool_free(s.pool);
	cairn_http_server_free(s.server);
	cairn_http_free(s.http);
	if (s.dirfd >= 0)
		close(s.dirfd);
	return rc;
}
