/*
 * publish-http.c - the routes of `cairn publish` on the http layer: narinfos
 * and listings, nars (baked files sent as files, the rest compressed on the
 * fly by a producer thread), logs, Guix content-addressed files, the key,
 * the front page, health and metrics; and the static server for a
 * `nix copy --to file://DIR` directory.
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

#include "cairn/httpd.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "httpd-follow.h"
#include "metrics.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/banned.h"

#define CT_NARINFO "text/x-nix-narinfo"
#define CT_NAR "application/x-nix-nar"
#define CC_IMMUTABLE "public, max-age=31536000, immutable"

static void cache_control(struct cairn_httpd_req *req, unsigned ttl)
{
	char v[64];
	if (ttl == 0)
		snprintf(v, sizeof(v), "no-store");
	else
		snprintf(v, sizeof(v), "public, max-age=%u", ttl);
	cairn_httpd_add_header(req, "Cache-Control", v);
}

/* 404 with the negative TTL (send_error would add its own no-store) */
static int not_found(struct cairn_httpd_req *req, unsigned negative_ttl)
{
	static const char body[] = "404 not found\n";
	cache_control(req, negative_ttl);
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

static int h_root(struct cairn_httpd_req *req, void *data);

static int h_narinfo(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	struct cairn_error err;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	int rc;

	if (len == 1)
		return h_root(req, data);
	if (len == 1 + 32 + 3 && memcmp(path + 33, ".ls", 3) == 0 &&
	    cairn_store_hash_valid(path + 1, 32)) {
		char hp[33];
		memcpy(hp, path + 1, 32);
		hp[32] = '\0';
		return h_ls(p, req, hp);
	}
	if (len != 1 + 32 + 8 || memcmp(path + 33, ".narinfo", 8) != 0 ||
	    !cairn_store_hash_valid(path + 1, 32))
		return not_found(req, p->cfg.negative_ttl);
	unsigned max_age = p->cfg.ttl;
	cairn_error_init(&err);
	rc = cairn_publish_narinfo(p, path + 1, 32, &b, &max_age, &err);
	if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT) {
		rc = not_found(req, p->cfg.negative_ttl);
	} else if (rc < 0) {
		cairn_httpd_add_header(req, "Cache-Control", "no-store");
		rc = cairn_httpd_send_error(req, 500);
	} else {
		/* a strong validator from the bytes: a CDN revalidates cheaply */
		char etag[24];
		snprintf(etag, sizeof(etag), "\"%016llx\"",
			 (unsigned long long)map_hash(b.data, b.len));
		cache_control(req, max_age);
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

/* ---- producers ---------------------------------------------------------- */

/* Files from this size on are sent by the loop itself (one copy, from its
 * mapping): below it the hand-over costs more than the copies.  Not on
 * HTTP/2, where the loop would have to read them (h2o copies into frames
 * anyway): the producer's reads keep a slow disk off the loop. */
#define PUB_FILE_SEGMENT_MIN (1024 * 1024)

enum job_kind { JOB_NAR, JOB_LS, JOB_TAIL };

/* How a write callback stops the NAR writer once a range is sent; the
 * producer tells it from a real cancellation by the position. */
#define RANGE_DONE CAIRN_ECANCELED

struct job {
	struct cairn_publish *p;
	struct cairn_httpd_stream *s;
	enum job_kind kind;
	enum cairn_codec_method method;
	int level;
	uint64_t nar_size;
	struct cairn_hash nar_hash;
	struct cairn_codec *codec;
	struct cairn_sha256 sha;
	struct cairn_nar_parser *parser; /* JOB_LS */
	/* a byte range of an uncompressed nar: [lo, hi] (ranged) */
	bool ranged;
	bool check;	   /* hash as it goes, and fail unless it matches NarHash */
	bool check_after;  /* queue a background check when done */
	bool holding;	   /* the nar's last byte, held back until the check */
	bool http2;	   /* h2o copies in user space there: no file regions */
	char held;
	char hashpart[CAIRN_STORE_HASH_LEN + 1];
	char store_path[CAIRN_STOREDB_PATH_MAX + 1];
	uint64_t lo, hi, pos;
	struct pub_inflight *inf; /* JOB_TAIL: the bake to follow */
	struct pub_meter meter;
	char real[];
};

static int job_out(void *ctx, const void *data, size_t len)
{
	struct job *j = ctx;
	return cairn_httpd_stream_write(j->s, data, len);
}

static int job_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct job *j = ctx;
	if (j->check)
		cairn_sha256_update(&j->sha, data, len);
	if (j->kind == JOB_LS)
		return cairn_nar_parser_feed(j->parser, data, len, err);
	if (j->method == CAIRN_CODEC_NONE) {
		const char *d = data;
		uint64_t at = j->pos, end = at + len;
		j->pos += len;
		if (j->ranged) {
			/* only the part of [at, at+len) inside [lo, hi] */
			if (at + len <= j->lo)
				return 0;
			if (at > j->hi)
				return RANGE_DONE;
			uint64_t from = at < j->lo ? j->lo - at : 0;
			uint64_t to = at + len - 1 > j->hi ? j->hi - at + 1 : len;
			d += from;
			len = (size_t)(to - from);
			end = at + to;
		}
		/*
		 * With a Content-Length, the client takes the last byte as a clean
		 * end: it waits until the bytes are checked against NarHash.
		 */
		if (j->check && end == j->nar_size && len > 0) {
			j->held = d[len - 1];
			j->holding = true;
			len--;
		}
		int rc = len ? cairn_httpd_stream_write(j->s, d, len) : 0;
		if (rc < 0)
			return cairn_error_set(err, rc, "publish: client gone");
		/* a range that reaches the end goes on to the check */
		return j->ranged && j->pos > j->hi && j->hi + 1 < j->nar_size ? RANGE_DONE : 0;
	}
	return pub_meter_write(j->p, &j->meter, j->codec, data, len, job_out, j, err);
}

/* A large file's contents, sent by the loop from the file itself. */
static int job_file(void *ctx, int fd, uint64_t size, struct cairn_error *err)
{
	struct job *j = ctx;
	j->pos += size;
	int rc = cairn_httpd_stream_write_file(j->s, fd, 0, size);
	if (rc == CAIRN_EIO)
		return cairn_error_set(err, rc, "publish: a file shrank while it was sent");
	return rc < 0 ? cairn_error_set(err, rc, "publish: client gone") : 0;
}

/* The bake j follows: its chunked response has no length, so nothing is
 * held back; a failed bake fails the response. */
static int64_t tail_wait(void *ctx, uint64_t pos, uint64_t limit)
{
	struct job *j = ctx;
	int64_t n = pub_inflight_wait(j->p, j->inf, pos);
	return n > 0 && (uint64_t)n > limit - pos ? (int64_t)(limit - pos) : n;
}

/* The file is opened before its first byte counts as written: once wait
 * said there are bytes, inf->fd is set. */
static ssize_t tail_read(void *ctx, uint64_t pos, void *buf, size_t len)
{
	struct job *j = ctx;
	ssize_t r = pread(j->inf->fd, buf, len, (off_t)pos);
	return r > 0 ? r : CAIRN_EIO;
}

static void *producer(void *arg)
{
	struct job *j = arg;
	struct cairn_publish *p = j->p;
	struct cairn_error err;
	struct cairn_nar_writer *w = NULL;
	struct cairn_nar_ls *ls = NULL;
	char *json = NULL;
	size_t json_len = 0;
	bool sha = false;
	int rc;

	cairn_error_init(&err);
	if (j->kind == JOB_TAIL) {
		/* follow the file the baker writes; if it fails before a byte
		 * was sent (disk full...), compress on the fly instead */
		const struct httpd_follow tail = {.wait = tail_wait, .read = tail_read, .ctx = j};
		uint64_t sent = 0;
		rc = httpd_follow_send(j->s, &tail, 0, UINT64_MAX, &sent);
		pub_inflight_put(p, j->inf);
		j->inf = NULL;
		if (rc == 0 || sent > 0 || p->stopping)
			goto out;
		j->kind = JOB_NAR; /* nothing sent yet: on the fly after all */
		rc = 0;
	}
	if ((rc = cairn_sha256_init(&j->sha)) < 0)
		goto out;
	sha = true;
	if (j->kind == JOB_LS) {
		ls = cairn_nar_ls_new(0);
		j->parser = ls ? cairn_nar_parser_new(&cairn_nar_ls_callbacks, ls, NULL) : NULL;
		if (!j->parser) {
			rc = CAIRN_ENOMEM;
			goto out;
		}
	} else if (j->method != CAIRN_CODEC_NONE) {
		if ((rc = cairn_codec_new(&j->codec, j->method, CAIRN_CODEC_COMPRESS, j->level,
					  CAIRN_CODEC_UNLIMITED, &err)) < 0)
			goto out;
	}
	w = cairn_nar_writer_new(job_nar, j);
	if (!w) {
		rc = CAIRN_ENOMEM;
		goto out;
	}
	/* bytes nobody here needs to see go from the file to the socket */
	if (j->kind == JOB_NAR && j->method == CAIRN_CODEC_NONE && !j->ranged && !j->check &&
	    !j->http2)
		cairn_nar_writer_set_file_fn(w, job_file, j, PUB_FILE_SEGMENT_MIN);
	if ((rc = cairn_nar_write_path(w, j->real, &err)) < 0 ||
	    (rc = cairn_nar_writer_finish(w, &err)) < 0) {
		if (j->ranged && j->pos > j->hi)
			rc = 0; /* the range is out; the rest is not needed */
		goto out;
	}
	/*
	 * A path deleted while it was read must not reach the client as a
	 * clean response: the size is always checked.  The bytes are checked
	 * against NarHash here only when asked to (strict, or a listing);
	 * otherwise once per item, after the stream and at idle priority
	 * (publish.h, enum cairn_publish_verify): SHA-256 was 57% of an
	 * uncompressed stream's CPU, and the client checks NarHash anyway.
	 */
	struct cairn_hash h = {.algo = CAIRN_HASH_SHA256, .len = 32};
	cairn_sha256_final(&j->sha, h.digest);
	sha = false;
	if (cairn_nar_writer_size(w) != j->nar_size) {
		rc = CAIRN_EHASH;
		goto out;
	}
	if (j->check && !cairn_hash_equal(&h, &j->nar_hash)) {
		if (j->kind == JOB_NAR && j->hashpart[0])
			pub_nar_mark_corrupt(p, j->hashpart, &j->nar_hash, j->store_path,
					     "its nar has another SHA-256");
		rc = CAIRN_EHASH;
		goto out;
	}
	if (j->check && j->kind == JOB_NAR && j->hashpart[0])
		pub_nar_mark_verified(p, j->hashpart, &j->nar_hash);
	if (j->holding && (rc = cairn_httpd_stream_write(j->s, &j->held, 1)) < 0)
		goto out;
	if (j->kind == JOB_LS) {
		if ((rc = cairn_nar_parser_finish(j->parser, &err)) < 0 ||
		    (rc = cairn_nar_ls_take(ls, &json, &json_len, &err)) < 0)
			goto out;
		rc = cairn_httpd_stream_write(j->s, json, json_len);
	} else if (j->codec) {
		rc = pub_meter_finish(p, &j->meter, j->codec, job_out, j, &err);
		/* a whole nar compressed: it measured whether compression helps */
		if (rc == 0 && j->hashpart[0])
			pub_note_compressed(p, j->hashpart, &j->nar_hash, j->nar_size, j->method,
					    cairn_codec_total_out(j->codec));
	}
out:
	pub_meter_flush(p, &j->meter);
	if (sha)
		cairn_sha256_release(&j->sha);
	cairn_httpd_stream_end(j->s, rc == 0);
	if (j->check_after)
		pub_verify_enqueue(p, j->hashpart);
	cairn_nar_writer_free(w);
	cairn_codec_free(j->codec);
	cairn_nar_parser_free(j->parser);
	cairn_nar_ls_free(ls);
	free(json);
	free(j);
	pub_stream_leave(p);
	return NULL;
}

/* Start a producer for the item pi; answers the request in every case. */
/* Undo start_job's allocation before the producer runs. */
static void job_drop(struct cairn_publish *p, struct job *j)
{
	if (j->inf)
		pub_inflight_put(p, j->inf);
	free(j);
	pub_stream_leave(p);
}

static int start_job(struct cairn_publish *p, struct cairn_httpd_req *req,
		     const struct cairn_storedb_pathinfo *pi, enum job_kind kind,
		     enum cairn_codec_method method, struct pub_inflight *inf)
{
	char real[CAIRN_STOREDB_PATH_MAX + CAIRN_STOREDB_DIR_MAX + 8];
	struct stat st;
	struct cairn_httpd_stream *s;
	pthread_attr_t attr;
	pthread_t tid;

	if (pub_real_path(p, pi->path, real, sizeof(real)) < 0 || lstat(real, &st) < 0) {
		if (inf)
			pub_inflight_put(p, inf);
		return not_found(req, p->cfg.negative_ttl); /* valid in the db, gone on disk */
	}
	size_t rl = strlen(real);
	struct job *j = calloc(1, sizeof(*j) + rl + 1);
	if (!j) {
		if (inf)
			pub_inflight_put(p, inf);
		return cairn_httpd_send_error(req, 503);
	}
	j->inf = inf;
	j->p = p;
	j->kind = kind;
	j->method = method;
	j->level = pub_level(p, method);
	j->meter.method = method;
	j->nar_size = pi->nar_size;
	j->nar_hash = pi->nar_hash;
	const char *base = strrchr(pi->path, '/');
	if (base && strlen(base + 1) >= CAIRN_STORE_HASH_LEN)
		memcpy(j->hashpart, base + 1, CAIRN_STORE_HASH_LEN);
	if (kind == JOB_NAR && j->hashpart[0]) {
		bool recheck;
		if (pub_nar_corrupt(p, j->hashpart, &pi->nar_hash, &recheck)) {
			if (recheck)
				pub_verify_enqueue(p, j->hashpart);
			if (inf)
				pub_inflight_put(p, inf);
			free(j);
			return not_found(req, p->cfg.negative_ttl);
		}
		if (!pub_nar_verified(p, j->hashpart, &pi->nar_hash)) {
			j->check = p->cfg.verify == CAIRN_PUBLISH_VERIFY_STRICT;
			j->check_after = p->cfg.verify == CAIRN_PUBLISH_VERIFY_BACKGROUND;
		}
	} else if (kind == JOB_LS) {
		j->check = true;
	}
	j->http2 = cairn_httpd_req_is_http2(req) != 0;
	memcpy(j->real, real, rl + 1);
	snprintf(j->store_path, sizeof(j->store_path), "%s", pi->path);
	if (!pub_stream_enter(p)) {
		if (inf)
			pub_inflight_put(p, inf);
		free(j);
		cairn_httpd_add_header(req, "Retry-After", "1");
		return cairn_httpd_send_error(req, 503);
	}
	int64_t length = kind == JOB_NAR && method == CAIRN_CODEC_NONE ? (int64_t)pi->nar_size : -1;
	int status = 200;
	if (kind == JOB_NAR && method == CAIRN_CODEC_NONE) {
		size_t rl2 = 0;
		const char *range = cairn_httpd_req_header(req, "range", &rl2);
		cairn_httpd_add_header(req, "Accept-Ranges", "bytes");
		uint64_t n = 0;
		enum cairn_httpd_range r =
		    range ? cairn_httpd_parse_range(range, rl2, pi->nar_size, &j->lo, &n)
			  : CAIRN_HTTPD_RANGE_NONE;
		j->hi = j->lo + n - 1;
		if (r == CAIRN_HTTPD_RANGE_UNSATISFIABLE) {
			char v[64];
			snprintf(v, sizeof(v), "bytes */%llu", (unsigned long long)pi->nar_size);
			cairn_httpd_add_header(req, "Content-Range", v);
			job_drop(p, j);
			return cairn_httpd_send_error(req, 416);
		}
		if (r == CAIRN_HTTPD_RANGE_OK) {
			char v[96];
			j->ranged = true;
			status = 206;
			length = (int64_t)(j->hi - j->lo + 1);
			snprintf(v, sizeof(v), "bytes %llu-%llu/%llu", (unsigned long long)j->lo,
				 (unsigned long long)j->hi, (unsigned long long)pi->nar_size);
			cairn_httpd_add_header(req, "Content-Range", v);
		}
	}
	if (kind != JOB_LS)
		cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
	else
		cache_control(req, p->cfg.ttl);
	int rc = cairn_httpd_stream_start(req, status, kind != JOB_LS ? CT_NAR : "application/json",
					  length, &s);
	if (rc < 0) {
		job_drop(p, j);
		return rc;
	}
	if (cairn_httpd_req_is_head(req)) {
		cairn_httpd_stream_end(s, 1);
		job_drop(p, j);
		return 0;
	}
	j->s = s;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, producer, j) != 0) {
		cairn_httpd_stream_end(s, 0);
		job_drop(p, j);
	}
	pthread_attr_destroy(&attr);
	return 0;
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
		return not_found(req, p->cfg.negative_ttl);
	if (rc < 0)
		return cairn_httpd_send_error(req, 500);
	rc = start_job(p, req, &pi, JOB_LS, CAIRN_CODEC_NONE, NULL);
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
		return not_found(req, p->cfg.negative_ttl);
	memcpy(buf, path, len);
	if (q) {
		buf[len] = '?';
		memcpy(buf + len + 1, q, ql);
		len += 1 + ql;
	}
	buf[len] = '\0';
	if (cairn_publish_parse_nar_url(buf, len, &u, NULL) < 0 ||
	    !pub_method_allowed(p, u.method))
		return not_found(req, p->cfg.negative_ttl);
	/* guix publish has no /nar/none/...: its uncompressed nar is /nar/<basename> */
	if (p->cfg.dialect == CAIRN_PUBLISH_GUIX && u.method_named && u.method == CAIRN_CODEC_NONE)
		return not_found(req, p->cfg.negative_ttl);
	for (int attempt = 0;; attempt++) {
		rc = pub_resolve_nar(p, &u, &pi, &baked, &is_baked, NULL);
		if (rc == CAIRN_ENOENT || rc == CAIRN_EFORMAT)
			return not_found(req, p->cfg.negative_ttl);
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
			return not_found(req, p->cfg.negative_ttl);
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
	rc = start_job(p, req, &pi, inf ? JOB_TAIL : JOB_NAR, u.method, inf);
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
		return not_found(req, p->cfg.negative_ttl);
	if (cairn_httpd_safe_path(path + 5, len - 5, name, sizeof(name), NULL) < 0)
		return not_found(req, p->cfg.negative_ttl);
	size_t nl = strlen(name);
	if (cairn_store_path_parse_base(name, nl, &sp, NULL) < 0)
		return not_found(req, p->cfg.negative_ttl);
	if ((nl < 5 || strcmp(name + nl - 4, ".drv") != 0) &&
	    output_deriver(p, name, sp.hash, name, sizeof(name)) < 0)
		return not_found(req, p->cfg.negative_ttl);
	int dfd = open(p->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return not_found(req, p->cfg.negative_ttl);
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
		cache_control(req, p->cfg.ttl);
		rc = cairn_httpd_send_file_at(req, dfd, rel, type);
	}
	close(dfd);
	if (rc == CAIRN_ENOENT)
		return not_found(req, p->cfg.negative_ttl);
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
		return not_found(req, p->cfg.negative_ttl);
	char *s1 = strchr(rel, '/');
	if (!s1 || strncmp(s1, "/sha256/", 8) != 0)
		return not_found(req, p->cfg.negative_ttl);
	*s1 = '\0';
	const char *h = s1 + 8;
	if (strlen(h) != 52 || cairn_store_name_check(rel, strlen(rel), NULL) < 0)
		return not_found(req, p->cfg.negative_ttl);
	ca.hash.algo = CAIRN_HASH_SHA256;
	ca.hash.len = 32;
	if (cairn_nix32_decode(h, 52, ca.hash.digest, 32) < 0 ||
	    cairn_ca_make_path(&ca, rel, NULL, p->store_dir, &sp, NULL) < 0 ||
	    cairn_store_path_format(&sp, p->store_dir, full, sizeof(full)) < 0)
		return not_found(req, p->cfg.negative_ttl);
	if (pub_db_get(p, &db, NULL) < 0)
		return cairn_httpd_send_error(req, 500);
	int rc = cairn_storedb_query_path(db, full, &pi, NULL);
	pub_db_put(p, db);
	cairn_storedb_pathinfo_release(&pi);
	if (rc < 0 || pub_real_path(p, full, real, sizeof(real)) < 0)
		return not_found(req, p->cfg.negative_ttl);
	int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return not_found(req, p->cfg.negative_ttl);
	cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
	rc = cairn_httpd_send_take_fd(req, fd, "application/octet-stream");
	if (rc == CAIRN_EINVAL) /* a directory: not a flat file */
		return not_found(req, p->cfg.negative_ttl);
	return rc;
}

/* ---- small endpoints ---------------------------------------------------- */

static int h_cache_info(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	int rc = cairn_publish_cache_info(p, &b);
	if (rc == 0) {
		cache_control(req, p->cfg.ttl);
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
		rc = not_found(req, p->cfg.negative_ttl);
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

static int h_health(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	return cairn_httpd_send_static(req, 200, "text/plain", "ok\n", 3);
}

static void html_escape(struct cairn_buf *b, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		switch (s[i]) {
		case '<':
			cairn_buf_puts(b, "&lt;");
			break;
		case '>':
			cairn_buf_puts(b, "&gt;");
			break;
		case '&':
			cairn_buf_puts(b, "&amp;");
			break;
		case '"':
			cairn_buf_puts(b, "&quot;");
			break;
		default:
			cairn_buf_putc(b, s[i]);
		}
	}
}

/* Bytes a shell takes as they are, unquoted. */
static bool shell_plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("/._+-:@%,=", *s)))
			return false;
	return true;
}

/* Append s as one shell word: as it is when that is safe, else in single
 * quotes, so that a command on the page runs as printed whatever a key
 * name or a store path holds. */
static void shell_word(struct cairn_buf *b, const char *s)
{
	if (shell_plain(s)) {
		cairn_buf_puts(b, s);
		return;
	}
	cairn_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			cairn_buf_puts(b, "'\\''");
		else
			cairn_buf_putc(b, *s);
	}
	cairn_buf_putc(b, '\'');
}

/*
 * The server's URL as the client named it (its Host), for the commands on
 * the page.  The authority is reflected into a command a reader may paste
 * into a shell: anything but a plain host[:port] gives a placeholder.
 */
static void page_url(struct cairn_httpd_req *req, char *url, size_t cap)
{
	size_t al = 0;
	const char *auth = cairn_httpd_req_authority(req, &al);
	bool ok = auth && al > 0 && al < 256;
	for (size_t i = 0; ok && i < al; i++) {
		char c = auth[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		     c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
	}
	/* no trailing slash: Guix before 1.4 appends "/<hash>.narinfo" to it */
	if (ok)
		snprintf(url, cap, "http://%.*s", (int)al, auth);
	else
		snprintf(url, cap, "http://SERVER");
}

/* The Nix keys as one word list ("a:x b:y"), as trusted-public-keys takes them. */
static void nix_key_list(const struct cairn_publish *p, struct cairn_buf *b)
{
	bool first = true;
	for (size_t i = 0; i < p->nix_keys_len;) {
		const char *nl = memchr(p->nix_keys + i, '\n', p->nix_keys_len - i);
		size_t end = nl ? (size_t)(nl - p->nix_keys) : p->nix_keys_len;
		if (end > i) {
			if (!first)
				cairn_buf_putc(b, ' ');
			cairn_buf_append(b, p->nix_keys + i, end - i);
			first = false;
		}
		i = end + 1;
	}
}

/*
 * How a Nix user takes from this cache, as commands that run as printed
 * with the Nix Debian ships (2.8, where `nix copy` is behind the
 * nix-command feature): a copy of a real path of this store (the one added
 * last) into a scratch store under ~, then the nix.conf lines.
 */
static void page_nix(struct cairn_publish *p, struct cairn_buf *u, const char *url)
{
	struct cairn_buf keys = CAIRN_BUF_INIT(1 << 16);
	struct cairn_storedb *db = NULL;
	char *example = NULL;

	nix_key_list(p, &keys);
	if (pub_db_get(p, &db, NULL) == 0) {
		if (cairn_storedb_recent_path(db, &example, NULL) < 0)
			example = NULL;
		pub_db_put(p, db);
	}
	if (example) {
		cairn_buf_puts(
		    u, "# Try it: copy a path of this cache (here the one added last) and its\n"
		       "# closure into a scratch store in ~/cairn-copy, not your own:\n");
		/* a store elsewhere than /nix/store: only a Nix with that
		 * store directory takes from it (and copies into one) */
		if (strcmp(p->store_dir, "/nix/store") != 0) {
			cairn_buf_puts(u, "NIX_STORE_DIR=");
			shell_word(u, p->store_dir);
			cairn_buf_putc(u, ' ');
		}
		cairn_buf_puts(u, "nix --extra-experimental-features nix-command copy --from ");
		shell_word(u, url);
		cairn_buf_puts(u, " --to ~/cairn-copy");
		if (keys.len) {
			cairn_buf_puts(u, " --option trusted-public-keys ");
			shell_word(u, keys.data);
		} else {
			cairn_buf_puts(u, " --no-check-sigs");
		}
		cairn_buf_putc(u, ' ');
		shell_word(u, example);
		cairn_buf_puts(
		    u, "\n# Into your own store (as root, or a user the daemon trusts): the same\n"
		       "# without --to ~/cairn-copy.\n");
		free(example);
	} else {
		cairn_buf_puts(u, "# The store has no valid path yet: nothing to copy.\n");
	}
	if (keys.len) {
		cairn_buf_printf(
		    u,
		    "\n# To substitute from it, add to /etc/nix/nix.conf (then restart\n"
		    "# nix-daemon):\nextra-substituters = %s\n"
		    "extra-trusted-public-keys = %s\n",
		    url, keys.data);
	} else {
		cairn_buf_puts(
		    u, "\n# Its narinfos are not signed: Nix takes substitutes only from a\n"
		       "# signed cache (start cairn publish with --key).\n");
	}
	if (strcmp(p->store_dir, "/nix/store") != 0)
		cairn_buf_printf(u,
				 "# Its store is %s: only a Nix with that store directory\n"
				 "# (NIX_STORE_DIR) substitutes from it.\n",
				 p->store_dir);
	cairn_buf_release(&keys);
}

/*
 * The same for Guix (the Guix manual, "Getting Substitutes from Other
 * Servers"): authorise the key once, as root; then name the server beside
 * the default ones, since --substitute-urls replaces the daemon's list.
 * A trailing slash is left out: Guix before 1.4 appends "/<hash>.narinfo".
 */
static void page_guix(struct cairn_publish *p, struct cairn_buf *u, const char *url)
{
	if (!p->guix_key_len) {
		cairn_buf_puts(
		    u, "# No Guix key: Guix takes substitutes only from a server whose\n"
		       "# key it has authorised (start cairn publish with a Guix --key).\n");
		return;
	}
	cairn_buf_puts(u, "# Authorise its key, once:\ncurl -fsS ");
	cairn_buf_puts(u, url);
	cairn_buf_puts(u, "/signing-key.pub | sudo guix archive --authorize\n"
			  "# Then take substitutes from it and from the default servers:\n"
			  "guix build --substitute-urls=");
	struct cairn_buf w = CAIRN_BUF_INIT(4096);
	cairn_buf_printf(&w, "%s https://bordeaux.guix.gnu.org https://ci.guix.gnu.org", url);
	shell_word(u, w.data ? w.data : "");
	cairn_buf_release(&w);
	cairn_buf_puts(u, " hello\n"
			  "# or for every build: the same list in guix-daemon's --substitute-urls\n"
			  "# (Guix System: substitute-urls in guix-configuration).\n");
}

static int h_root(struct cairn_httpd_req *req, void *data)
{
	struct cairn_publish *p = data;
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	char url[300];
	bool nix = p->cfg.dialect == CAIRN_PUBLISH_NIX;

	page_url(req, url, sizeof(url));
	cairn_buf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			   "<title>cairn binary cache</title></head><body>\n"
			   "<h1>cairn binary cache</h1>\n<p>This server publishes the ");
	cairn_buf_puts(&b, nix ? "Nix" : "Guix");
	cairn_buf_puts(&b, " store <code>");
	html_escape(&b, p->store_dir, strlen(p->store_dir));
	cairn_buf_puts(&b, "</code> as a binary cache (substitutes), with cairn publish.</p>\n");
	cairn_buf_puts(&b, "<h2>Signing keys</h2>\n<pre>");
	html_escape(&b, p->nix_keys, p->nix_keys_len);
	html_escape(&b, p->guix_key, p->guix_key_len);
	if (!p->nix_keys_len && !p->guix_key_len)
		cairn_buf_puts(&b, "(none: narinfos are not signed)\n");
	cairn_buf_puts(&b, "</pre>\n<h2>How to use it</h2>\n<pre>");
	struct cairn_buf u = CAIRN_BUF_INIT(1 << 16);
	if (nix)
		page_nix(p, &u, url);
	else
		page_guix(p, &u, url);
	html_escape(&b, u.data ? u.data : "", u.len);
	cairn_buf_release(&u);
	cairn_buf_puts(&b, "</pre>\n<p><a href=\"/nix-cache-info\">nix-cache-info</a> · "
			   "<a href=\"/signing-key.pub\">signing-key.pub</a> · "
			   "<a href=\"/nix-signing-keys\">nix-signing-keys</a> · "
			   "<a href=\"/guix-signing-key.pub\">guix-signing-key.pub</a> · "
			   "<a href=\"/metrics\">metrics</a> · <a href=\"/health\">health</a></p>\n"
			   "</body></html>\n");
	/* the example path changes as the store does */
	cache_control(req, 60);
	int rc = cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "",
				  b.len);
	cairn_buf_release(&b);
	return rc;
}

int cairn_publish_routes(struct cairn_publish *p, struct cairn_httpd *h, struct cairn_error *err)
{
	int rc;
	if ((rc = pub_metrics_register(p, httpd_metrics(h), err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-cache-info", "nix-cache-info",
				    h_cache_info, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/signing-key.pub", "signing-key",
				    h_key, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-signing-keys", "nix-signing-keys",
				    h_nix_keys, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/guix-signing-key.pub",
				    "guix-signing-key", h_guix_key, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", h_health, p, err)) <
		    0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_nar, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/log/", "log", h_log, p, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/file/", "file", h_file, p, err)) <
		    0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "narinfo", h_narinfo, p, err)) < 0)
		return rc;
	return 0;
}

/* ---- a binary-cache directory, as it is --------------------------------- */

struct cairn_publish_static {
	int dirfd;
	unsigned ttl, negative_ttl;
	struct cairn_httpd *h;
};

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t sl = strlen(suffix);
	return n >= sl && memcmp(s + n - sl, suffix, sl) == 0;
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
		return not_found(req, st->negative_ttl);
	size_t nl = strlen(name);
	struct stat sb;
	if (fstatat(st->dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		return not_found(req, st->negative_ttl);
	if (ends_with(name, nl, ".narinfo")) {
		ct = CT_NARINFO;
		cache_control(req, st->ttl);
	} else if (strncmp(name, "nar/", 4) == 0) {
		ct = CT_NAR;
		cairn_httpd_add_header(req, "Cache-Control", CC_IMMUTABLE);
	} else if (strcmp(name, "nix-cache-info") == 0) {
		ct = "text/x-nix-cache-info";
		cache_control(req, st->ttl);
	} else if (ends_with(name, nl, ".ls")) {
		ct = "application/json";
		cache_control(req, st->ttl);
	} else if (strncmp(name, "log/", 4) == 0) {
		ct = "text/plain; charset=utf-8";
		cache_control(req, st->ttl);
	} else {
		cache_control(req, st->ttl);
	}
	int rc = cairn_httpd_send_file_at(req, st->dirfd, name, ct);
	if (rc == CAIRN_ENOENT) /* removed since the stat */
		return cairn_httpd_send_error(req, 404);
	return rc;
}

int cairn_publish_static_routes(struct cairn_httpd *h, const char *dir, unsigned ttl,
				unsigned negative_ttl, struct cairn_publish_static **out,
				struct cairn_error *err)
{
	struct cairn_publish_static *st = calloc(1, sizeof(*st));
	int rc;
	if (!st)
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	st->ttl = ttl;
	st->negative_ttl = negative_ttl;
	st->h = h;
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		rc = cairn_error_errno(err, errno, "publish: cannot open '%s'", dir);
		free(st);
		return rc;
	}
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", h_health, NULL,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_static, st, err)) <
		    0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "static", h_static, st, err)) <
		    0) {
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
	if (st->dirfd >= 0)
		close(st->dirfd);
	free(st);
}
