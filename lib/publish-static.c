/*
 * publish-static.c - `cairn publish --binary-cache DIR`: a directory that
 * `nix copy --to file://DIR` (or `cairn sync`) wrote, served as it is:
 * every regular file, the batch route over its narinfo files, and with
 * --ipfs the trustless gateway (lib/ipfs-gateway.c, the one publish over a
 * store and the mirror serve) over its nar files, each decompressed as its
 * narinfo's Compression says (lib/nar-cursor.c, as the mirror's cached
 * nars are), and each narinfo's IPFS field.
 *
 * A narinfo gains the field only when the text may gain a line: not when
 * Guix signed it whole (a Signature line) nor when it names a root of its
 * own (a directory written by sync from a cairn head); the gateway then
 * serves the DAG that root names when its chunker or the other usual one
 * gives it.  The first narinfo of an item costs a pass over its NAR: that
 * runs in a thread of its own (at most PUB_STATIC_JOBS_MAX), never on an
 * event loop; beyond them, the narinfo is answered without the field and
 * the item indexed in the background.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/publish.h"
#include "cairn/storepath.h"
#include "ipfs-gateway.h"
#include "map.h"
#include "metrics.h"
#include "nar-cursor.h"
#include "narinfo-int.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* Threads indexing items for their narinfos at once. */
#define PUB_STATIC_JOBS_MAX 64

struct cairn_publish_static {
	int dirfd;
	unsigned ttl, negative_ttl;
	struct cairn_httpd *h;
	/* --ipfs */
	struct ipfs_gw *gw;
	struct nar_cursors *cursors;
	pthread_mutex_t jobs_mu;
	pthread_cond_t jobs_cond;
	unsigned n_jobs;
};

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);
	return n >= sl && memcmp(s + n - sl, suffix, sl) == 0;
}

/* A small regular file of the directory, whole, into out (within its
 * max): CAIRN_ENOENT when it is not there, not regular (a link, a pipe:
 * O_NONBLOCK keeps a pipe from holding the thread) or too large. */
static int read_small_at(int dirfd, const char *name, struct cairn_buf *out)
{
	struct stat sb;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return CAIRN_ENOENT;
	int rc = 0;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > out->max)
		rc = CAIRN_ENOENT;
	while (rc == 0) {
		char b[4096];
		ssize_t n = read(fd, b, sizeof(b));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = CAIRN_EIO;
		else if (n == 0)
			break;
		else if (cairn_buf_append(out, b, (size_t)n) < 0)
			rc = CAIRN_ENOENT; /* grew past max since the stat */
	}
	close(fd);
	return rc;
}

static int read_narinfo(struct cairn_publish_static *st, const char *key, struct cairn_buf *out)
{
	char name[48];
	snprintf(name, sizeof(name), "%.32s.narinfo", key);
	return read_small_at(st->dirfd, name, out);
}

/* ---- the gateway's side: an item's nar file, as its narinfo says -------- */

struct dir_item {
	char name[1024]; /* the nar file, under the directory */
	enum cairn_codec_method method;
	uint64_t file_size, nar_size;
	struct cairn_hash nar_hash;
	bool named; /* the narinfo names a root of its own */
	struct cairn_cid root;
};

/* What narinfo text of item key says of its NAR: its size and hash, the
 * root it names, and (with file) the first of its files cairn can
 * decompress. */
static int dir_item_of(struct cairn_publish_static *st, const char *key, const char *text,
		       size_t len, struct dir_item *it, bool file, struct cairn_error *err)
{
	struct cairn_narinfo *ni = NULL;
	const char *v;
	size_t vl;
	int rc = cairn_narinfo_parse(text, len, &ni, err);
	if (rc == 0) {
		it->nar_size = ni->nar_size;
		it->nar_hash = ni->nar_hash;
		it->named = cairn_narinfo_text_field(text, len, "IPFS", &v, &vl) &&
			    cairn_cid_parse(v, vl, &it->root, NULL) == 0;
	}
	for (size_t i = 0; rc == 0 && file; i++) {
		if (i == ni->n_urls) {
			rc = cairn_error_set(
			    err, CAIRN_ENOENT,
			    "publish: no nar file of %s to cut blocks from (none "
			    "of its URLs is a file here in a compression cairn reads)",
			    key);
			break;
		}
		const struct cairn_narinfo_url *u = &ni->urls[i];
		struct stat sb;
		if (cairn_codec_method_parse(u->compression, strlen(u->compression), &it->method,
					     NULL) < 0 ||
		    cairn_httpd_safe_path(u->url, strlen(u->url), it->name, sizeof(it->name),
					  NULL) < 0 ||
		    fstatat(st->dirfd, it->name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		it->file_size = (uint64_t)sb.st_size;
		break;
	}
	cairn_narinfo_free(ni);
	return rc;
}

/* The same from the directory's narinfo file for key. */
static int dir_item(struct cairn_publish_static *st, const char *key, struct dir_item *it,
		    bool file, struct cairn_error *err)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	int rc = read_narinfo(st, key, &b);
	if (rc < 0)
		rc = cairn_error_set(err, CAIRN_ENOENT, "publish: no narinfo for %s", key);
	else
		rc = dir_item_of(st, key, b.data, b.len, it, file, err);
	cairn_buf_release(&b);
	return rc;
}

struct dir_read {
	struct cairn_publish_static *st;
	const char *key;
	const struct dir_item *it;
};

static int dir_nar(const struct ipfs_gw_sink *sink, void *pctx, struct cairn_error *err)
{
	const struct dir_read *d = pctx;
	/* the item and its file (any length of name: a hash of it), so that
	 * another file for the item has other cursors */
	char id[NAR_CURSOR_KEY_MAX + 1];
	snprintf(id, sizeof(id), "%.40s %016llx", d->key,
		 (unsigned long long)map_hash(d->it->name, strlen(d->it->name)));
	return nar_cursors_source(d->st->cursors, id, d->st->dirfd, d->it->name, d->it->method,
				  d->it->file_size, d->it->nar_size, sink, err);
}

/* The NAR in the item's nar file; when indexed, checked against the
 * narinfo's NarHash (no root is named for a file that is not the item's). */
static int source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
		  struct cairn_error *err)
{
	struct cairn_publish_static *st = ctx;
	struct dir_item it;
	int rc = dir_item(st, key, &it, true, err);
	if (rc < 0)
		return rc;
	struct dir_read d = {.st = st, .key = key, .it = &it};
	return ipfs_gw_source_checked(sink, key, &it.nar_hash, dir_nar, &d, err);
}

static int expect(void *ctx, const char *key, struct cairn_cid *root)
{
	struct dir_item it;
	if (dir_item(ctx, key, &it, false, NULL) < 0 || !it.named)
		return CAIRN_ENOENT;
	*root = it.root;
	return 0;
}

/*
 * Add the IPFS field of item key to its narinfo text b, when the text may
 * gain it (above); index the item in any case.  With index, an item not
 * yet indexed is indexed now (a pass over its NAR: not on an event loop);
 * without, it is queued for the background and b stays as it is.  A
 * narinfo whose item cannot be indexed (no nar file here, one cairn cannot
 * read) is served without the field.
 */
static void add_field(struct cairn_publish_static *st, const char *key, struct cairn_buf *b,
		      bool index)
{
	const char *v;
	size_t vl;
	struct cairn_cid root;
	struct dir_item it;
	char s[CAIRN_CID_STR_MAX];
	if (!st->gw)
		return;
	/* indexed whatever the text, so the gateway serves the item's blocks */
	if (ipfs_gw_root(st->gw, key, &root) != 0) {
		if (dir_item_of(st, key, b->data, b->len, &it, false, NULL) < 0)
			return;
		if (!index) {
			ipfs_gw_enqueue(st->gw, key, it.nar_size);
			return;
		}
		if (ipfs_gw_index(st->gw, key, it.nar_size, &root, NULL) < 0)
			return;
	}
	if (cairn_narinfo_text_field(b->data, b->len, "Signature", &v, &vl) ||
	    cairn_narinfo_text_field(b->data, b->len, "IPFS", &v, &vl) ||
	    cairn_cid_format(&root, s) != 0)
		return;
	size_t len = b->len;
	if ((len && b->data[len - 1] != '\n' && cairn_buf_putc(b, '\n') < 0) ||
	    cairn_buf_puts(b, "IPFS: ") < 0 || cairn_buf_puts(b, s) < 0 ||
	    cairn_buf_putc(b, '\n') < 0)
		b->len = len; /* over its bound: as it was */
}

/* A narinfo of the directory: the file as it is, what a single request
 * for it gets (with --ipfs, its field, the item indexed first with index). */
static int dir_narinfo(void *ctx, const char *hashpart, struct cairn_buf *out, bool index)
{
	int rc = read_narinfo(ctx, hashpart, out);
	if (rc == 0)
		add_field(ctx, hashpart, out, index);
	return rc;
}

/* As pub_narinfo_fn: on an event loop, and in a job's thread. */
static int static_narinfo(void *ctx, const char *hashpart, struct cairn_buf *out, unsigned *max_age)
{
	(void)max_age;
	return dir_narinfo(ctx, hashpart, out, false);
}

static int static_narinfo_indexed(void *ctx, const char *hashpart, struct cairn_buf *out,
				  unsigned *max_age)
{
	(void)max_age;
	return dir_narinfo(ctx, hashpart, out, true);
}

static bool job_enter(void *ctx)
{
	struct cairn_publish_static *st = ctx;
	pthread_mutex_lock(&st->jobs_mu);
	bool ok = st->n_jobs < PUB_STATIC_JOBS_MAX;
	if (ok)
		st->n_jobs++;
	pthread_mutex_unlock(&st->jobs_mu);
	return ok;
}

static void job_leave(void *ctx)
{
	struct cairn_publish_static *st = ctx;
	pthread_mutex_lock(&st->jobs_mu);
	if (--st->n_jobs == 0)
		pthread_cond_broadcast(&st->jobs_cond);
	pthread_mutex_unlock(&st->jobs_mu);
}

/* GET KEY.narinfo with --ipfs: the file with its field, from a job when
 * its item is still to be indexed. */
static int h_ipfs_narinfo(struct cairn_httpd_req *req, struct cairn_publish_static *st,
			  const char *name)
{
	char key[CAIRN_STORE_HASH_LEN + 1];
	struct cairn_cid root;
	memcpy(key, name, CAIRN_STORE_HASH_LEN);
	key[CAIRN_STORE_HASH_LEN] = '\0';
	if (ipfs_gw_root(st->gw, key, &root) != 0 &&
	    pub_defer_narinfo(req, key, static_narinfo_indexed, st, st->ttl, st->negative_ttl,
			      job_enter, job_leave, st))
		return 0;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	int rc = static_narinfo(st, key, &b, NULL);
	if (rc == 0) {
		pub_cache_control(req, st->ttl);
		rc = cairn_httpd_send(req, 200, CT_NARINFO, b.data, b.len);
	} else {
		rc = pub_not_found(req, st->negative_ttl);
	}
	cairn_buf_release(&b);
	return rc;
}

static int h_static_narinfos(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish_static *st = data;
	if (st->gw &&
	    pub_defer_narinfos(req, static_narinfo_indexed, st, st->ttl, job_enter, job_leave, st))
		return 0;
	return pub_send_narinfos(req, static_narinfo, st, st->ttl);
}

/* The directory's nix-cache-info, with the batch route said (Nix and Guix
 * skip keys they do not know), as the mirror says it of its upstreams'. */
static int static_cache_info(struct cairn_httpd_req *req, struct cairn_publish_static *st)
{
	struct cairn_buf b = CAIRN_BUF_INIT(64 << 10);
	int rc = read_small_at(st->dirfd, "nix-cache-info", &b);
	if (rc == CAIRN_ENOENT) {
		cairn_buf_release(&b);
		return pub_not_found(req, st->negative_ttl);
	}
	if (rc == 0)
		b.len = cairn_http_cache_info_drop(b.data, b.len, "CairnNarinfos");
	if (rc == 0 && b.len && b.data[b.len - 1] != '\n')
		rc = cairn_buf_putc(&b, '\n');
	if (rc == 0)
		rc = cairn_buf_puts(&b, "CairnNarinfos: 1\n");
	if (rc == 0) {
		pub_cache_control(req, st->ttl);
		rc = cairn_httpd_send(req, 200, "text/x-nix-cache-info", b.data, b.len);
	} else {
		cairn_httpd_add_header(req, "Cache-Control", "no-store");
		rc = cairn_httpd_send_error(req, 500);
	}
	cairn_buf_release(&b);
	return rc;
}

static int h_static(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish_static *st = data;
	char name[1024];
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	const char *ct = "application/octet-stream";

	if (len == 1) {
		static const char page[] =
		    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>cairn binary "
		    "cache</title></head><body><h1>cairn binary cache</h1><p>A Nix binary "
		    "cache directory served by cairn publish. See <a "
		    "href=\"/nix-cache-info\">nix-cache-info</a>.</p></body></html>\n";
		return cairn_httpd_send_static(req, 200, "text/html; charset=utf-8", page,
					       sizeof(page) - 1);
	}
	if (cairn_httpd_safe_path(path + 1, len - 1, name, sizeof(name), NULL) < 0)
		return pub_not_found(req, st->negative_ttl);
	size_t nl = strlen(name);
	struct stat sb;
	if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		return pub_not_found(req, st->negative_ttl);
	if (ends_with(name, nl, ".narinfo")) {
		if (st->gw && nl == CAIRN_STORE_HASH_LEN + 8 &&
		    cairn_store_hash_valid(name, CAIRN_STORE_HASH_LEN))
			return h_ipfs_narinfo(req, st, name);
		ct = CT_NARINFO;
		pub_cache_control(req, st->ttl);
	} else if (strncmp(name, "nar/", 4) == 0) {
		ct = CT_NAR;
		cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
	} else if (strcmp(name, "nix-cache-info") == 0) {
		return static_cache_info(req, st);
	} else if (ends_with(name, nl, ".ls")) {
		ct = "application/json";
		pub_cache_control(req, st->ttl);
	} else if (strncmp(name, "log/", 4) == 0) {
		ct = "text/plain; charset=utf-8";
		pub_cache_control(req, st->ttl);
	} else {
		pub_cache_control(req, st->ttl);
	}
	int rc = cairn_httpd_send_file_at(req, st->dirfd, name, ct);
	if (rc == CAIRN_ENOENT) /* removed since the stat */
		return cairn_httpd_send_error(req, 404);
	return rc;
}

static int open_ipfs(struct cairn_publish_static *st, const struct cairn_publish_static_config *cfg,
		     struct cairn_error *err)
{
	struct cairn_chunker_spec spec, alt;
	const char *name = cfg->ipfs_chunker ? cfg->ipfs_chunker : CAIRN_IPFS_CHUNKER_SERVED;
	int rc = cairn_chunker_spec_parse(name, &spec, err);
	/* a root named in a narinfo: cut with the other usual chunker too */
	if (rc == 0)
		rc = cairn_chunker_spec_parse(spec.kind == CAIRN_CHUNKER_FASTCDC
						  ? CAIRN_IPFS_CHUNKER_KUBO
						  : CAIRN_IPFS_CHUNKER_SERVED,
					      &alt, err);
	if (rc < 0)
		return rc;
	if (!(st->cursors = nar_cursors_new()))
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	rc = ipfs_gw_new(&st->gw, &spec, 0, source, st, err);
	if (rc < 0)
		return rc;
	ipfs_gw_set_expect(st->gw, &alt, expect, st);
	if (cfg->log)
		ipfs_gw_set_log(st->gw, cfg->log, cfg->log_ctx);
	if (cfg->index_dir) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/ipfs", cfg->index_dir);
		rc = ipfs_gw_set_dir(st->gw, dir, err);
	}
	return rc;
}

int cairn_publish_static_routes(struct cairn_httpd *h,
				const struct cairn_publish_static_config *cfg,
				struct cairn_publish_static **out, struct cairn_error *err)
{
	struct cairn_publish_static *st = calloc(1, sizeof(*st));
	int rc;
	if (!st)
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	st->ttl = cfg->ttl;
	st->negative_ttl = cfg->negative_ttl;
	st->h = h;
	pthread_mutex_init(&st->jobs_mu, NULL);
	pthread_cond_init(&st->jobs_cond, NULL);
	st->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		rc = cairn_error_errno(err, errno, "publish: cannot open '%s'", cfg->dir);
		cairn_publish_static_free(st);
		return rc;
	}
	if ((cfg->ipfs && (rc = open_ipfs(st, cfg, err)) < 0) ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", pub_h_health, NULL,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/narinfos", "narinfos",
				    h_static_narinfos, st, err)) < 0 ||
	    (st->gw && (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/ipfs/", "ipfs",
					       ipfs_gw_handle, st->gw, err)) < 0) ||
	    (st->gw && (rc = ipfs_gw_metrics(st->gw, httpd_metrics(h), "publish", err)) < 0) ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_static, st, err)) <
		0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "static", h_static, st, err)) < 0) {
		cairn_publish_static_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

void cairn_publish_static_free(struct cairn_publish_static *st)
{
	if (!st)
		return;
	/* the jobs end their streams (CAIRN_ECANCELED once the server
	 * stopped, their indexing passes called off) before what they use goes */
	ipfs_gw_stop(st->gw);
	pthread_mutex_lock(&st->jobs_mu);
	while (st->n_jobs)
		pthread_cond_wait(&st->jobs_cond, &st->jobs_mu);
	pthread_mutex_unlock(&st->jobs_mu);
	ipfs_gw_free(st->gw);
	nar_cursors_free(st->cursors);
	if (st->dirfd >= 0)
		close(st->dirfd);
	pthread_cond_destroy(&st->jobs_cond);
	pthread_mutex_destroy(&st->jobs_mu);
	free(st);
}
