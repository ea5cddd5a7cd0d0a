/*
 * sync-item.c - one item of `cairn sync` on its way into the replica: the
 * directory's atomic writes and sweep, the download through the shared
 * engine (lib/download.c) whose checks pass before the file is renamed
 * into place, the narinfo written after it, the listing and build log
 * beside it, and removals.
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
#include "sync-int.h"
#include "cairn/io.h"
#include "cairn/banned.h"

/* ---- the directory ------------------------------------------------------- */

/* Write bytes to dir/name atomically: a temporary name, fsync, rename. */
int sync_write_atomic(const char *dir, int dirfd, const char *name, const void *data, size_t len,
		      struct cairn_error *err)
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
	int rc = 0;
	if (cairn_write_all(fd, data, len))
		rc = cairn_error_errno(err, errno, "sync: cannot write '%s'", name);
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
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	bool same = false;
	/* O_NONBLOCK: whatever sits under a name the feed chose, a named
	 * pipe must not hold the sync (regular files only below) */
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
void sync_sweep(int dfd, const char *sub)
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
			sync_sweep(dfd, inner);
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
void sync_item_finish(struct sync_item *it)
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
struct sync_item *sync_item_new(struct sync *s, const struct cairn_feed_event *e)
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
			sync_say(s, "log: cannot make the directory: %s", strerror(errno));
		else if (sync_write_atomic(s->cfg->to, s->dirfd, x->name,
					   x->body.data ? x->body.data : "", x->body.len, &e) < 0)
			sync_say(s, "%s: %s", x->name, cairn_error_msg(&e));
		else
			s->st->extras++;
	} else if (res->err.code != CAIRN_ENOENT) {
		sync_say(s, "%s: not copied: %s", x->name, cairn_error_msg(&res->err));
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
		sync_say(s, "%s: refused or failed: %s%s%s", it->ni->store_path, r->headline,
			 r->reason && *r->reason ? ": " : "", r->reason ? r->reason : "");
	} else if (cairn_dl_file_commit(it->file, &e) < 0 ||
		   sync_write_atomic(s->cfg->to, s->dirfd, name, it->ev->narinfo,
				     it->ev->narinfo_len, &e) < 0) {
		s->st->failed++;
		sync_say(s, "%s: %s", it->ni->store_path, cairn_error_msg(&e));
	} else {
		s->st->copied++;
		extras_for(s, it);
	}
	sync_item_finish(it); /* frees the download too: allowed inside on_done */
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
int sync_item_start(struct sync *s, struct sync_item *it)
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
		sync_item_finish(it);
		return 0;
	}
	if (cairn_narinfo_parse(it->ev->narinfo, it->ev->narinfo_len, &it->ni, &e) < 0) {
		s->st->refused++;
		sync_say(s, "%s: refused: %s", it->ev->hashpart, cairn_error_msg(&e));
		sync_item_finish(it);
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
		sync_say(s, "%s: refused: %s", it->ni->store_path, why);
		sync_item_finish(it);
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
	struct cairn_dl_config dc = {
	    .http = s->http, .pool = s->pool, .on_done = item_done, .ctx = it};
	struct cairn_dl_sink sink;
	int rc = cairn_dl_file_new(&it->file, it->target, &e);
	if (rc == 0) {
		cairn_dl_file_body_sink(it->file, &sink);
		rc = cairn_dl_start(&it->dl, &dc, &ex, &src, 1, &sink, &e);
	}
	if (rc < 0) {
		s->st->failed++;
		sync_say(s, "%s: %s", it->ni->store_path, cairn_error_msg(&e));
		sync_item_finish(it);
	}
	return 0;
}

/* ---- the run ----------------------------------------------------------------- */

/* Run the downloads in flight until at most `below` are left. */
int sync_settle(struct sync *s, unsigned below, struct cairn_error *err)
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
int sync_settle_all(struct sync *s, struct cairn_error *err)
{
	int rc = sync_settle(s, 0, err);
	while (rc == 0 && s->extras)
		if ((rc = cairn_http_step(s->http, 50, err)) >= 0)
			rc = 0;
	return rc;
}

/* A removal: the narinfo goes first (nothing points at the file then),
 * then its file when no other narinfo can name it. */
int sync_remove_item(struct sync *s, const char *hashpart, struct cairn_error *err)
{
	char name[48], *text = NULL;
	struct stat sb;
	snprintf(name, sizeof(name), "%s.narinfo", hashpart);
	int fd = openat(s->dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
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
	    cairn_httpd_safe_path(ni->urls[0].url, strcspn(ni->urls[0].url, "?#"), rel, sizeof(rel),
				  NULL) == 0) {
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
int sync_add_item(struct sync *s, const struct cairn_feed_event *e, unsigned parallel,
		  struct cairn_error *err)
{
	int rc = sync_settle(s, parallel - 1, err);
	if (rc < 0)
		return rc;
	struct sync_item *it = sync_item_new(s, e);
	if (!it)
		return cairn_error_set(err, CAIRN_ENOMEM, "sync: out of memory");
	return sync_item_start(s, it);
}
