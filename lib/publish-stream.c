/*
 * publish-stream.c - the producers of `cairn publish`: a thread per
 * response that is proportional to an item's size (a nar compressed on the
 * fly, a range of an uncompressed one, a listing, or the tail of a bake
 * that other clients follow), writing into an httpd stream, with the
 * item's NarHash checked as it goes and the last byte held back until it
 * matches.  The routes that start them are in publish-http.c.
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
#include "cairn/storepath.h"
#include "httpd-follow.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* Files from this size on are sent by the loop itself (one copy, from its
 * mapping): below it the hand-over costs more than the copies.  Not on
 * HTTP/2, where the loop would have to read them (h2o copies into frames
 * anyway): the producer's reads keep a slow disk off the loop. */
#define PUB_FILE_SEGMENT_MIN (1024 * 1024)

/* How a write callback stops the NAR writer once a range is sent; the
 * producer tells it from a real cancellation by the position. */
#define RANGE_DONE CAIRN_ECANCELED

struct job {
	struct cairn_publish *p;
	struct cairn_httpd_stream *s;
	enum pub_job_kind kind;
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

/* Undo start_job's allocation before the producer runs. */
static void job_drop(struct cairn_publish *p, struct job *j)
{
	if (j->inf)
		pub_inflight_put(p, j->inf);
	free(j);
	pub_stream_leave(p);
}

int pub_start_job(struct cairn_publish *p, struct cairn_httpd_req *req,
		  const struct cairn_storedb_pathinfo *pi, enum pub_job_kind kind,
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
		return pub_not_found(req, p->cfg.negative_ttl); /* valid in the db, gone on disk */
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
			return pub_not_found(req, p->cfg.negative_ttl);
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
		pub_cache_control(req, p->cfg.ttl);
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
