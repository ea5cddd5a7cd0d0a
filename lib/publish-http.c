/*
 * publish-http.c - the routes of `cairn publish` on the http layer: narinfos
 * and listings, nars (baked files sent as files, the rest compressed on the
 * fly by a producer thread: publish-stream.c), logs, Guix content-addressed
 * files, the key, the front page (publish-page.c), health and metrics; the
 * batch route, which publish over a directory (publish-static.c) serves too.
 *
 * Handlers run on the event loops.  What they do there is bounded: a
 * SQLite index lookup, a signature the first time an item is asked for,
 * an open().  Everything proportional to an item's size runs in a producer
 * thread that writes into an httpd stream.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/narinfos.h"
#include "cairn/storepath.h"
#include "httpd-follow.h"
#include "ipfs-gateway.h"
#include "metrics.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/banned.h"

void pub_cache_value(char v[PUB_CC_MAX], unsigned ttl)
{
	if (ttl == 0)
		snprintf(v, PUB_CC_MAX, "no-store");
	else
		snprintf(v, PUB_CC_MAX, "public, max-age=%u", ttl);
}

void pub_cache_control(struct cairn_httpd_req *req, unsigned ttl)
{
	char v[PUB_CC_MAX];
	pub_cache_value(v, ttl);
	cairn_httpd_add_header(req, "Cache-Control", v);
}

/* 404 with the negative TTL (send_error would add its own no-store) */
int pub_not_found(struct cairn_httpd_req *req, unsigned negative_ttl)
{
	static const char body[] = "404 not found\n";
	pub_cache_control(req, negative_ttl);
	return cairn_httpd_send_static(req, 404, "text/plain; charset=utf-8", body,
				       sizeof(body) - 1);
}

/* ---- narinfo and .ls ---------------------------------------------------- */

/* Does an If-None-Match list (`"a", W/"b"` or `*`) name etag?  Weak
 * comparison, as RFC 9110 13.1.2 asks for If-None-Match. */
static bool etag_match(const char *v, size_t len, const char *etag)
{
	size_t el = strlen(etag);
	size_t i = 0;
	while (i < len) {
		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i < len && v[i] == '*')
			return true;
		if (i + 2 <= len && v[i] == 'W' && v[i + 1] == '/')
			i += 2;
		size_t start = i;
		while (i < len && v[i] != ',')
			i++;
		size_t end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start == el && memcmp(v + start, etag, el) == 0)
			return true;
	}
	return false;
}

static int h_ls(struct cairn_publish *p, struct cairn_httpd_req *req, const char *hashpart);


/* The publish's thread count, as pub_defer_* take it. */
static bool stream_enter(void *p)
{
	return pub_stream_enter(p);
}

static void stream_leave(void *p)
{
	pub_stream_leave(p);
}

static int h_narinfo(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	struct cairn_error err;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	int rc;

	if (len == 1)
		return pub_h_root(req, data);
	if (len == 1 + 32 + 3 && memcmp(path + 33, ".ls", 3) == 0 &&
	    cairn_store_hash_valid(path + 1, 32)) {
		char hp[33];
		memcpy(hp, path + 1, 32);
		hp[32] = '\0';
		return h_ls(p, req, hp);
	}
	if (len != 1 + 32 + 8 || memcmp(path + 33, ".narinfo", 8) != 0 ||
	    !cairn_store_hash_valid(path + 1, 32))
		return pub_not_found(req, p->cfg.negative_ttl);
	if (p->gw) {
		/* an item not indexed yet costs a pass over its NAR: not here */
		char hp[33];
		struct cairn_cid root;
		memcpy(hp, path + 1, 32);
		hp[32] = '\0';
		if (ipfs_gw_root(p->gw, hp, &root) != 0 &&
		    pub_defer_narinfo(req, hp, pub_ipfs_narinfo, p, p->cfg.ttl, p->cfg.negative_ttl,
				      stream_enter, stream_leave, p))
			return 0;
	}
	unsigned max_age = p->cfg.ttl;
	cairn_error_init(&err);
	rc = cairn_publish_narinfo(p, path + 1, 32, &b, &max_age, &err);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT) {
		rc = pub_not_found(req, p->cfg.negative_ttl);
	} else if (rc < 0) {
		cairn_httpd_add_header(req, "Cache-Control", "no-store");
		rc = cairn_httpd_send_error(req, 500);
	} else {
		/* a strong validator from the bytes: a CDN revalidates cheaply */
		char etag[24];
		snprintf(etag, sizeof(etag), "\"%016llx\"",
			 (unsigned long long)map_hash(b.data, b.len));
		pub_cache_control(req, max_age);
		cairn_httpd_add_header(req, "ETag", etag);
		size_t inml = 0;
		const char *inm = cairn_httpd_req_header(req, "if-none-match", &inml);
		if (inm && etag_match(inm, inml, etag))
			rc = cairn_httpd_send(req, 304, NULL, NULL, 0);
		else
			rc = cairn_httpd_send(req, 200, CT_NARINFO, b.data, b.len);
	}
	cairn_buf_release(&b);
	return rc;
}

static int h_ls(struct cairn_publish *p, struct cairn_httpd_req *req, const char *hashpart)
{
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	int rc = pub_db_get(p, &db, NULL);
	if (rc < 0)
		return cairn_httpd_send_error(req, 500);
	rc = cairn_storedb_query_hashpart(db, hashpart, &pi, NULL);
	pub_db_put(p, db);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT)
		return pub_not_found(req, p->cfg.negative_ttl);
	if (rc < 0)
		return cairn_httpd_send_error(req, 500);
	rc = pub_start_job(p, req, &pi, JOB_LS, CAIRN_CODEC_NONE, NULL);
	cairn_storedb_pathinfo_release(&pi);
	return rc;
}

/* ---- nars --------------------------------------------------------------- */

static int h_nar(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_publish_nar_url u;
	struct cairn_storedb_pathinfo pi = {0};
	struct pub_baked baked;
	bool is_baked;
	char buf[512];
	size_t len, ql = 0;
	const char *path = cairn_httpd_req_path(req, &len);
	const char *q = cairn_httpd_req_query(req, &ql);
	int rc;

	path += 5; /* "/nar/" */
	len -= 5;
	if (len + 1 + (q ? ql : 0) >= sizeof(buf))
		return pub_not_found(req, p->cfg.negative_ttl);
	memcpy(buf, path, len);
	if (q) {
		buf[len] = '?';
		memcpy(buf + len + 1, q, ql);
		len += 1 + ql;
	}
	buf[len] = '\0';
	if (cairn_publish_parse_nar_url(buf, len, &u, NULL) < 0 ||
	    !pub_method_allowed(p, u.method))
		return pub_not_found(req, p->cfg.negative_ttl);
	/* guix publish has no /nar/none/...: its uncompressed nar is /nar/<basename> */
	if (p->cfg.dialect == CAIRN_PUBLISH_GUIX && u.method_named && u.method == CAIRN_CODEC_NONE)
		return pub_not_found(req, p->cfg.negative_ttl);
	for (int attempt = 0;; attempt++) {
		rc = pub_resolve_nar(p, &u, &pi, &baked, &is_baked, NULL);
		if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT)
			return pub_not_found(req, p->cfg.negative_ttl);
		if (rc < 0)
			return cairn_httpd_send_error(req, 500);
		if (!is_baked)
			break;
		char name[128];
		snprintf(name, sizeof(name), "%s.nar%s", baked.file_hash32,
			 cairn_publish_nar_ext(baked.method));
		if (attempt == 0)
			cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
		/* pinned since resolved: opened before eviction can take it */
		rc = cairn_httpd_send_file_at(req, narcache_data_fd(p->nc), name, CT_NAR);
		pub_baked_unpin(p, &baked);
		if (rc != CAIRN_ENOENT) {
			atomic_fetch_add_explicit(&p->m_cache_hits, 1, memory_order_relaxed);
			return rc;
		}
		/* evicted just now: it is a ghost, resolved to the item */
		if (attempt == 1)
			return pub_not_found(req, p->cfg.negative_ttl);
	}
	/* by NarHash or basename: the baked file when there is one */
	if (pub_baked_lookup(p, pi.path + p->store_dir_len + 1, u.method, &pi.nar_hash, &baked)) {
		char name[128];
		snprintf(name, sizeof(name), "%s.nar%s", baked.file_hash32,
			 cairn_publish_nar_ext(baked.method));
		cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
		rc = cairn_httpd_send_file_at(req, narcache_data_fd(p->nc), name, CT_NAR);
		pub_baked_unpin(p, &baked);
		if (rc != CAIRN_ENOENT) {
			atomic_fetch_add_explicit(&p->m_cache_hits, 1, memory_order_relaxed);
			cairn_storedb_pathinfo_release(&pi);
			return rc;
		}
	}
	atomic_fetch_add_explicit(&p->m_cache_misses, 1, memory_order_relaxed);
	/* with a cache, every client follows one compression into it */
	struct pub_inflight *inf = pub_inflight_get(p, &pi, u.method);
	/* written and checked, only its name and FileHash to come: a file, not a tail */
	int fd = inf ? pub_inflight_complete_fd(p, inf) : -1;
	if (fd >= 0) {
		pub_inflight_put(p, inf);
		cairn_storedb_pathinfo_release(&pi);
		cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
		return cairn_httpd_send_take_fd(req, fd, CT_NAR);
	}
	rc = pub_start_job(p, req, &pi, inf ? JOB_TAIL : JOB_NAR, u.method, inf);
	cairn_storedb_pathinfo_release(&pi);
	return rc;
}

/* ---- logs and content-addressed files --------------------------------- */

/* The basename of the deriver of the valid output base (whose hash part
 * is hash) into drv (cap bytes): 0, or CAIRN_ENOENT. */
static int output_deriver(struct cairn_publish *p, const char *base, const char *hash, char *drv,
			  size_t cap)
{
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	int rc = pub_db_get(p, &db, NULL);
	if (rc < 0)
		return rc;
	rc = cairn_storedb_query_hashpart(db, hash, &pi, NULL);
	pub_db_put(p, db);
	if (rc == 0) {
		const char *d = pi.deriver;
		size_t dl = d ? strlen(d) : 0;
		if (strcmp(pi.path + p->store_dir_len + 1, base) != 0 || !d ||
		    dl <= p->store_dir_len + 1 || memcmp(d, p->store_dir, p->store_dir_len) != 0 ||
		    d[p->store_dir_len] != '/' || dl - p->store_dir_len - 1 >= cap)
			rc = CAIRN_ENOENT;
		else
			memcpy(drv, d + p->store_dir_len + 1, dl - p->store_dir_len);
	}
	cairn_storedb_pathinfo_release(&pi);
	return rc < 0 ? CAIRN_ENOENT : 0;
}

/*
 * /log/<drv basename>, or /log/<output basename> (the log of its deriver:
 * `guix build --log-file` asks for the output first, then the .drv).  The
 * log is sent as stored.  A compressed one is labelled the way the
 * dialect's own server does: Nix's client decodes Content-Encoding bzip2
 * or gzip; guix publish sends a .bz2 as application/x-bzip2 with no
 * Content-Encoding (the client gets the file as it is), a .gz with gzip.
 */
static int h_log(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	char name[CAIRN_STORE_BASE_MAX + 16], rel[CAIRN_STORE_BASE_MAX + 32];
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	struct cairn_store_path sp;
	bool guix = p->cfg.dialect == CAIRN_PUBLISH_GUIX;

	if (!p->log_dir)
		return pub_not_found(req, p->cfg.negative_ttl);
	if (cairn_httpd_safe_path(path + 5, len - 5, name, sizeof(name), NULL) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	size_t nl = strlen(name);
	if (cairn_store_path_parse_base(name, nl, &sp, NULL) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	if ((nl < 5 || strcmp(name + nl - 4, ".drv") != 0) &&
	    output_deriver(p, name, sp.hash, name, sizeof(name)) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	int dfd = open(p->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	static const struct {
		const char *suffix, *encoding, *guix_type;
	} forms[] = {{"", NULL, NULL},
		     {".bz2", "bzip2", "application/x-bzip2; charset=ISO-8859-1"},
		     {".gz", "gzip", NULL}};
	int rc = CAIRN_ENOENT;
	for (size_t i = 0; i < 3 && rc == CAIRN_ENOENT; i++) {
		/* Nix and Guix keep logs as <first 2 chars>/<rest of the basename> */
		snprintf(rel, sizeof(rel), "%.2s/%s%s", name, name + 2, forms[i].suffix);
		struct stat st;
		if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size > CAIRN_PUBLISH_LOG_MAX)
			continue;
		const char *type = "text/plain; charset=utf-8";
		if (guix && forms[i].guix_type)
			type = forms[i].guix_type;
		else if (forms[i].encoding)
			cairn_httpd_add_header(req, "Content-Encoding", forms[i].encoding);
		pub_cache_control(req, p->cfg.ttl);
		rc = cairn_httpd_send_file_at(req, dfd, rel, type);
	}
	close(dfd);
	if (rc == CAIRN_ENOENT)
		return pub_not_found(req, p->cfg.negative_ttl);
	return rc;
}

/* /file/NAME/sha256/NIX32: the flat fixed-output item of that name and hash,
 * as guix publish serves them for `guix download` and origins */
static int h_file(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	char rel[512];
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	struct cairn_ca ca = {.method = CAIRN_CA_FLAT};
	struct cairn_store_path sp;
	char full[CAIRN_STORE_PATH_MAX], real[CAIRN_STORE_PATH_MAX + CAIRN_STOREDB_DIR_MAX];
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};

	if (cairn_httpd_safe_path(path + 6, len - 6, rel, sizeof(rel), NULL) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	char *s1 = strchr(rel, '/');
	if (!s1 || strncmp(s1, "/sha256/", 8) != 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	*s1 = '\0';
	const char *h = s1 + 8;
	if (strlen(h) != 52 || cairn_store_name_check(rel, strlen(rel), NULL) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	ca.hash.algo = CAIRN_HASH_SHA256;
	ca.hash.len = 32;
	if (cairn_nix32_decode(h, 52, ca.hash.digest, 32) < 0 ||
	    cairn_ca_make_path(&ca, rel, NULL, p->store_dir, &sp, NULL) < 0 ||
	    cairn_store_path_format(&sp, p->store_dir, full, sizeof(full)) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	if (pub_db_get(p, &db, NULL) < 0)
		return cairn_httpd_send_error(req, 500);
	int rc = cairn_storedb_query_path(db, full, &pi, NULL);
	pub_db_put(p, db);
	cairn_storedb_pathinfo_release(&pi);
	if (rc < 0 || pub_real_path(p, full, real, sizeof(real)) < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	/* O_NONBLOCK: a named pipe in a tampered store would otherwise hold
	 * this thread until a writer comes; send_take_fd refuses non-files */
	int fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return pub_not_found(req, p->cfg.negative_ttl);
	cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
	rc = cairn_httpd_send_take_fd(req, fd, "application/octet-stream");
	if (rc == CAIRN_EINVAL) /* a directory: not a flat file */
		return pub_not_found(req, p->cfg.negative_ttl);
	return rc;
}

/* ---- many narinfos in one response (narinfos.h) -------------------------- */

/* The hash parts of a narinfo's References, queued for the closure. */
static void queue_refs(const char *text, size_t len, char (*queue)[33], size_t *nq,
		       size_t maxq, struct map *seen)
{
	struct cairn_narinfo *ni = NULL;
	if (cairn_narinfo_parse(text, len, &ni, NULL) < 0)
		return;
	for (size_t i = 0; i < ni->n_refs && *nq < maxq; i++) {
		const char *r = ni->refs[i];
		char h[33];
		if (strlen(r) < 32 || !cairn_store_hash_valid(r, 32))
			continue;
		memcpy(h, r, 32);
		h[32] = '\0';
		if (map_get(seen, h) || map_put(seen, h, (void *)1, NULL) < 0)
			continue;
		memcpy(queue[(*nq)++], h, 33);
	}
	cairn_narinfo_free(ni);
}

/*
 * GET /narinfos?hashes=H1,...[&closure=1]: each asked hash part exactly
 * once, present (the bytes a single request gets) or absent; with closure,
 * then what they reference, breadth first, while the response stays within
 * CAIRN_NARINFOS_COUNT_MAX entries and half CAIRN_NARINFOS_RESPONSE_MAX
 * bytes (the client refuses more; the rest it asks for itself).  The same
 * for a store and for a binary-cache directory: only `one` differs.  The
 * body into b, and how long it may be kept; CAIRN_EFORMAT for a query
 * that is not one (400), another error for 500.
 */
static int build_narinfos(const char *q, size_t qlen, pub_narinfo_fn one_fn, void *ctx,
			  unsigned ttl, struct cairn_buf *b, unsigned *max_age_out,
			  struct cairn_error *err)
{
	char asked[CAIRN_NARINFOS_HASHES_MAX][33];
	size_t n_asked = 0, entries = 0, nq = 0;
	bool closure = false;
	if (!q)
		return cairn_error_set(err, CAIRN_EFORMAT, "narinfos: no query (hashes=H1,H2,...)");
	int rc = cairn_narinfos_parse_query(q, qlen, asked, &n_asked, &closure, err);
	if (rc < 0)
		return CAIRN_EFORMAT;
	size_t maxq = closure ? CAIRN_NARINFOS_COUNT_MAX : n_asked;
	char(*queue)[33] = calloc(maxq ? maxq : 1, sizeof(*queue));
	struct map seen;
	map_init(&seen, NULL);
	struct cairn_buf one = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	unsigned max_age = ttl;
	rc = queue ? cairn_narinfos_begin(b) : CAIRN_ENOMEM;
	for (size_t i = 0; i < n_asked && queue; i++)
		if (!map_get(&seen, asked[i]) && map_put(&seen, asked[i], (void *)1, NULL) == 0)
			memcpy(queue[nq++], asked[i], 33);
	size_t n_first = nq;
	for (size_t i = 0; rc == 0 && i < nq; i++) {
		bool extra = i >= n_first;
		if (extra && (entries + 1 >= CAIRN_NARINFOS_COUNT_MAX ||
			      b->len > CAIRN_NARINFOS_RESPONSE_MAX / 2))
			break;
		unsigned age = ttl;
		cairn_buf_reset(&one);
		int r = one_fn(ctx, queue[i], &one, &age);
		if (r == CAIRN_ENOENT || r == CAIRN_EFORMAT) {
			/* a closure's missing reference is the client's to ask */
			if (!extra) {
				rc = cairn_narinfos_add_absent(b, queue[i]);
				entries++;
			}
			continue;
		}
		if (r < 0) {
			rc = r;
			break;
		}
		if (age < max_age)
			max_age = age;
		rc = cairn_narinfos_add(b, queue[i], one.data, one.len);
		entries++;
		if (rc == 0 && closure)
			queue_refs(one.data, one.len, queue, &nq, maxq, &seen);
	}
	if (rc == 0)
		rc = cairn_narinfos_end(b, entries);
	if (rc < 0 && rc != CAIRN_EFORMAT)
		cairn_error_set(err, rc, "narinfos: cannot answer");
	else if (rc == CAIRN_EFORMAT) /* not the query's fault */
		rc = cairn_error_set(err, CAIRN_EIO, "narinfos: cannot answer");
	cairn_buf_release(&one);
	map_release(&seen);
	free(queue);
	/* the answer is as fresh as its least fresh part */
	*max_age_out = max_age;
	return rc;
}

int pub_send_narinfos(struct cairn_httpd_req *req, pub_narinfo_fn one_fn, void *ctx, unsigned ttl)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFOS_RESPONSE_MAX);
	struct cairn_error err;
	unsigned max_age = ttl;
	size_t qlen = 0;
	cairn_error_init(&err);
	const char *q = cairn_httpd_req_query(req, &qlen);
	int rc = build_narinfos(q, qlen, one_fn, ctx, ttl, &b, &max_age, &err);
	if (rc == CAIRN_EFORMAT) {
		rc = cairn_httpd_send_error_why(req, 400, cairn_error_msg(&err));
	} else if (rc == 0) {
		pub_cache_control(req, max_age);
		rc = cairn_httpd_send(req, 200, CAIRN_NARINFOS_CONTENT_TYPE, b.data, b.len);
	} else {
		cairn_httpd_add_header(req, "Cache-Control", "no-store");
		rc = cairn_httpd_send_error(req, 500);
	}
	cairn_buf_release(&b);
	return rc;
}

/* A narinfo request answered from a thread: one narinfo (hp), or a batch
 * (the query q). */
struct ni_job {
	pub_narinfo_fn one_fn;
	void *ctx;
	unsigned ttl, negative_ttl;
	void (*leave)(void *ectx);
	void *ectx;
	struct cairn_httpd_stream *s;
	char hp[CAIRN_STORE_HASH_LEN + 1]; /* "": a batch */
	bool has_q;
	size_t qlen;
	char q[];
};

static void reply_one(struct ni_job *j, struct cairn_buf *b)
{
	unsigned max_age = j->ttl;
	char cc[PUB_CC_MAX], etag[24];
	int rc = j->one_fn(j->ctx, j->hp, b, &max_age);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT) {
		static const char body[] = "404 not found\n";
		pub_cache_value(cc, j->negative_ttl);
		const char *h[] = {"Cache-Control", cc, NULL};
		cairn_httpd_stream_reply(j->s, 404, "text/plain; charset=utf-8", body,
					 sizeof(body) - 1, h);
	} else if (rc < 0) {
		cairn_httpd_stream_error(j->s, 500, "no-store");
	} else {
		/* as h_narinfo answers it: a strong validator from the bytes */
		pub_cache_value(cc, max_age);
		snprintf(etag, sizeof(etag), "\"%016llx\"",
			 (unsigned long long)map_hash(b->data, b->len));
		const char *h[] = {"Cache-Control", cc, "ETag", etag, NULL};
		cairn_httpd_stream_reply(j->s, 200, CT_NARINFO, b->data, b->len, h);
	}
}

static void reply_batch(struct ni_job *j, struct cairn_buf *b)
{
	struct cairn_error err;
	unsigned max_age = j->ttl;
	char cc[PUB_CC_MAX];
	cairn_error_init(&err);
	int rc = build_narinfos(j->has_q ? j->q : NULL, j->qlen, j->one_fn, j->ctx, j->ttl, b,
				&max_age, &err);
	if (rc == CAIRN_EFORMAT) {
		const char *msg = cairn_error_msg(&err);
		const char *h[] = {"Cache-Control", "no-store", NULL};
		cairn_httpd_stream_reply(j->s, 400, "text/plain; charset=utf-8", msg, strlen(msg),
					 h);
	} else if (rc == 0) {
		pub_cache_value(cc, max_age);
		const char *h[] = {"Cache-Control", cc, NULL};
		cairn_httpd_stream_reply(j->s, 200, CAIRN_NARINFOS_CONTENT_TYPE, b->data, b->len, h);
	} else {
		cairn_httpd_stream_error(j->s, 500, "no-store");
	}
}

static void *ni_thread(void *arg)
{
	struct ni_job *j = arg;
	struct cairn_buf b = CAIRN_BUF_INIT(j->hp[0] ? CAIRN_NARINFO_MAX
						     : CAIRN_NARINFOS_RESPONSE_MAX);
	if (j->hp[0])
		reply_one(j, &b);
	else
		reply_batch(j, &b);
	cairn_buf_release(&b);
	void (*leave)(void *) = j->leave;
	void *ectx = j->ectx;
	free(j);
	leave(ectx);
	return NULL;
}

int pub_spawn(struct cairn_httpd_req *req, struct cairn_httpd_stream **s, void *(*fn)(void *),
	      void *arg)
{
	if (cairn_httpd_stream_defer(req, s) < 0)
		return CAIRN_ENOMEM;
	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		return 0;
	cairn_httpd_stream_error(*s, 503, "no-store");
	return CAIRN_EBUSY;
}

/* hp NULL: the batch of req's query. */
static int defer(struct cairn_httpd_req *req, const char *hp, pub_narinfo_fn one_fn, void *ctx,
		 unsigned ttl, unsigned negative_ttl, bool (*enter)(void *ectx),
		 void (*leave)(void *ectx), void *ectx)
{
	size_t qlen = 0;
	const char *q = hp ? NULL : cairn_httpd_req_query(req, &qlen);
	if (!enter(ectx))
		return 0;
	struct ni_job *j = calloc(1, sizeof(*j) + (q ? qlen : 0) + 1);
	int rc = CAIRN_ENOMEM;
	if (j) {
		*j = (struct ni_job){.one_fn = one_fn, .ctx = ctx, .ttl = ttl,
				     .negative_ttl = negative_ttl, .leave = leave, .ectx = ectx,
				     .has_q = q != NULL, .qlen = q ? qlen : 0};
		if (hp)
			snprintf(j->hp, sizeof(j->hp), "%.32s", hp);
		if (q)
			memcpy(j->q, q, qlen);
		rc = pub_spawn(req, &j->s, ni_thread, j);
	}
	if (rc == 0)
		return 1;
	free(j);
	leave(ectx);
	return rc == CAIRN_EBUSY;
}

int pub_defer_narinfo(struct cairn_httpd_req *req, const char *hp, pub_narinfo_fn one_fn,
		      void *ctx, unsigned ttl, unsigned negative_ttl, bool (*enter)(void *ectx),
		      void (*leave)(void *ectx), void *ectx)
{
	return defer(req, hp, one_fn, ctx, ttl, negative_ttl, enter, leave, ectx);
}

int pub_defer_narinfos(struct cairn_httpd_req *req, pub_narinfo_fn one_fn, void *ctx, unsigned ttl,
		       bool (*enter)(void *ectx), void (*leave)(void *ectx), void *ectx)
{
	return defer(req, NULL, one_fn, ctx, ttl, 0, enter, leave, ectx);
}

static int store_narinfo(void *ctx, const char *hashpart, struct cairn_buf *out,
			 unsigned *max_age)
{
	return cairn_publish_narinfo(ctx, hashpart, 32, out, max_age, NULL);
}

static int h_narinfos(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	/* with --ipfs, an item not yet indexed costs a pass over its NAR: not
	 * on the event loop */
	if (p->gw &&
	    pub_defer_narinfos(req, pub_ipfs_narinfo, p, p->cfg.ttl, stream_enter, stream_leave, p))
		return 0;
	return pub_send_narinfos(req, store_narinfo, p, p->cfg.ttl);
}

/* ---- small endpoints ---------------------------------------------------- */

static int h_cache_info(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	int rc = cairn_publish_cache_info(p, &b);
	if (rc == 0) {
		pub_cache_control(req, p->cfg.ttl);
		rc = cairn_httpd_send(req, 200, "text/x-nix-cache-info", b.data, b.len);
	}
	cairn_buf_release(&b);
	return rc;
}

/* The public keys of one kind (0: the dialect's), as cairn_publish_public_keys. */
static int send_keys(struct cairn_httpd_req *req, struct cairn_publish *p, int kind)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	int rc = cairn_publish_public_keys(p, kind, &b);
	if (rc == 0 && b.len == 0)
		rc = pub_not_found(req, p->cfg.negative_ttl);
	else if (rc == 0)
		rc = cairn_httpd_send(req, 200, "text/plain; charset=utf-8", b.data, b.len);
	cairn_buf_release(&b);
	return rc;
}

static int h_key(struct cairn_httpd_req *req, void *data)
{
	return send_keys(req, data, 0);
}

static int h_nix_keys(struct cairn_httpd_req *req, void *data)
{
	return send_keys(req, data, CAIRN_KEY_NIX);
}

static int h_guix_key(struct cairn_httpd_req *req, void *data)
{
	return send_keys(req, data, CAIRN_KEY_GUIX);
}

int pub_h_health(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	return cairn_httpd_send_static(req, 200, "text/plain", "ok\n", 3);
}

int cairn_publish_routes(struct cairn_publish *p, struct cairn_httpd *h, struct cairn_error *err)
{
	int rc;
	if ((rc = pub_metrics_register(p, httpd_metrics(h), err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-cache-info", "nix-cache-info",
				    h_cache_info, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/signing-key.pub", "signing-key", h_key,
				    p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-signing-keys", "nix-signing-keys",
				    h_nix_keys, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/guix-signing-key.pub",
				    "guix-signing-key", h_guix_key, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/narinfos", "narinfos", h_narinfos, p,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", pub_h_health, p,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_nar, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/log/", "log", h_log, p, err)) < 0 ||
	    (p->gw && (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/ipfs/", "ipfs",
					      ipfs_gw_handle, p->gw, err)) < 0) ||
	    (p->gw && (rc = ipfs_gw_metrics(p->gw, httpd_metrics(h), "publish", err)) < 0) ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/file/", "file", h_file, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "narinfo", h_narinfo, p, err)) < 0)
		return rc;
	return 0;
}
