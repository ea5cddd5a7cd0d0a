/*
 * edge-nar.c - the mirror's nar downloads and the clients streaming them.
 *
 * The upstream thread downloads through the one download-and-verify
 * engine (download.h): the upstreams in order (those whose narinfo names
 * the URL first), Range resume, fail-over, the signed NarHash/NarSize of
 * the claims on the URL as the expectations.  Its body sink writes the
 * temporary file that every client of the download follows
 * (httpd-follow.h), to memory when the file cannot be written; each
 * response's last byte is held back until the download is verified and
 * its bytes meet a claim, so no client sees a clean end of bytes that
 * failed.  Only verified bytes that meet the current claims are committed
 * to the cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/storepath.h"
#include "download.h"
#include "httpd-follow.h"
#include "edge-int.h"
#include "cairn/banned.h"

/* --- a download's checks ------------------------------------------------------ */

/* The file size every claim of f agrees on, or SIZE_UNKNOWN. */
static int64_t cand_size(const struct fetch *f)
{
	int64_t size = SIZE_UNKNOWN;
	for (size_t i = 0; f->cand && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->has_file || c->file_size < 0 || (i && c->file_size != size))
			return SIZE_UNKNOWN;
		size = c->file_size;
	}
	return size;
}

/* Can a file of `total` bytes meet one of f's claims? */
static int cand_size_ok(const struct fetch *f, int64_t total)
{
	for (size_t i = 0; i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->has_file || c->file_size < 0 || c->file_size == total)
			return 1;
	}
	return 0;
}

/* A claim on an uncompressed nar: the file is its own NarHash (claim_make). */
static int claim_plain(const struct nar_claim *c)
{
	return c->plain;
}

/* Do the bytes of f (SHA-256 sha) meet claim c? */
static int claim_met(const struct fetch *f, const uint8_t sha[32], const struct nar_claim *c)
{
	if (c->has_file && (memcmp(sha, c->file_sha, 32) != 0 ||
			    (c->file_size >= 0 && f->written != (uint64_t)c->file_size)))
		return 0;
	if (c->by_nar && (!f->nar_ok || f->nar_method != c->method ||
			  memcmp(f->nar_sha, c->nar_sha, 32) != 0 || f->nar_size != c->nar_size))
		return 0;
	return c->has_file || c->by_nar;
}

/*
 * Under e->mu: do f's bytes meet a claim on its URL, one it started with
 * or one there is now?  Then clients get a clean end.  *commit: they may be
 * cached, because they meet a current cacheable claim and every current
 * claim either is met or names, by FileHash, exactly this file (its other
 * fields then contradict the file it names, and no bytes could meet it).
 */
static int judge_locked(struct cairn_edge *e, struct fetch *f, const uint8_t sha[32], int *commit)
{
	const struct nar_claims *cl = map_get(&e->claims, f->key);
	int ok = 0, cacheable = 0, all = 1;
	for (size_t i = 0; f->cand && i < f->cand->n; i++)
		ok |= claim_met(f, sha, &f->cand->c[i]);
	for (size_t i = 0; cl && i < cl->n; i++) {
		const struct nar_claim *c = &cl->c[i];
		int met = claim_met(f, sha, c);
		ok |= met;
		cacheable |= met && c->cacheable;
		all &= met || (c->has_file && !memcmp(c->file_sha, sha, 32));
	}
	*commit = cl && !cl->overflow && cacheable && all;
	return ok;
}

/* --- the cache's disk failing ----------------------------------------------- */

/* Say it once, until writing works again (cache_write_works). */
static void cache_write_failed(struct cairn_edge *e, const char *why)
{
	edge_count(e->c.write_errors, 1);
	if (atomic_exchange(&e->write_failing, 1))
		return;
	edge_count(e->c.write_failing, 1);
	char w[EDGE_WHY_MAX];
	edge_say(e, CAIRN_EDGE_LOG_WARN,
		 "%s; nars are passed through uncached until it works again",
		 edge_tell(w, sizeof(w), why));
}

static void cache_write_works(struct cairn_edge *e)
{
	if (!atomic_exchange(&e->write_failing, 0))
		return;
	edge_gauge_down(e->c.write_failing);
	edge_say(e, CAIRN_EDGE_LOG_INFO, "mirror cache: writing works again; caching resumed");
}

/*
 * Upstream thread: f's temporary file failed (why): from byte f->written
 * on, its clients are fed from memory.  What the file holds up to there
 * stays readable through f->fd; the name goes now, so that its space comes
 * back when the last client is done.
 */
static void fetch_to_memory(struct fetch *f, const char *why)
{
	cache_write_failed(f->e, why);
	if (f->fd >= 0)
		unlink(f->tmppath);
	pthread_mutex_lock(&f->mu);
	f->mem = 1;
	f->file_len = f->written;
	f->mbase = f->written;
	pthread_mutex_unlock(&f->mu);
}

/*
 * Under f->mu, upstream thread: keep [mbase + mlen, + len) for the clients
 * of a download that has no file.  Room comes from forgetting what every
 * reader is past, then from growing the buffer (within EDGE_MEM_WINDOW and
 * EDGE_MEM_TOTAL), then from cutting the reader furthest behind.  Once
 * bytes after file_len are forgotten, a new client could not start from
 * the beginning: *leave says the download must leave the table.
 */
static void mem_append(struct fetch *f, const char *data, size_t len, int *leave)
{
	struct cairn_edge *e = f->e;
	while (f->mlen + len > f->mcap) {
		uint64_t need = f->mbase + f->mlen;
		for (struct reader *r = f->readers; r; r = r->next)
			if (!r->cut && r->pos < need)
				need = r->pos;
		if (need > f->mbase) {
			size_t drop = (size_t)(need - f->mbase);
			memmove(f->mbuf, f->mbuf + drop, f->mlen - drop);
			f->mlen -= drop;
			f->mbase = need;
			*leave = 1;
			continue;
		}
		size_t want = f->mcap ? f->mcap * 2 : EDGE_CHUNK;
		while (want < f->mlen + len)
			want *= 2;
		if (want > EDGE_MEM_WINDOW)
			want = EDGE_MEM_WINDOW;
		if (want >= f->mlen + len) {
			size_t extra = want - f->mcap;
			char *nb = NULL;
			if (atomic_fetch_add(&e->mem_used, extra) + extra <= EDGE_MEM_TOTAL &&
			    (nb = realloc(f->mbuf, want))) {
				f->mbuf = nb;
				f->mcap = want;
				continue;
			}
			atomic_fetch_sub(&e->mem_used, extra);
		}
		struct reader *slow = NULL;
		for (struct reader *r = f->readers; r; r = r->next)
			if (!r->cut && (!slow || r->pos < slow->pos))
				slow = r;
		if (!slow) {
			/* nobody to keep bytes for, nor room for these */
			f->mbase += f->mlen + len;
			f->mlen = 0;
			*leave = 1;
			return;
		}
		slow->cut = 1;
		pthread_cond_broadcast(&f->cond);
	}
	memcpy(f->mbuf + f->mlen, data, len);
	f->mlen += len;
}

/* Upstream thread: a download that cannot be joined from the start any more. */
static void fetch_leave_table(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	if (map_get(&e->inflight, f->key) == f)
		map_take(&e->inflight, f->key);
	pthread_mutex_unlock(&e->mu);
}

/* --- nar downloads: the engine (lib/download.c) into a followed file --------- */

/*
 * Under f->mu: the clients that started on the bytes followed so far are
 * cut (their responses fail) when they got past byte `from`; those still
 * waiting for the headers start on the bytes to come.
 */
static void fetch_cut_locked(struct fetch *f, uint64_t from)
{
	for (struct reader *r = f->readers; r; r = r->next)
		if (r->started && r->pos > from)
			r->cut = 1;
	pthread_cond_broadcast(&f->cond);
}

/*
 * Sink, upstream thread: the body starts (again) from byte 0.  Another
 * upstream, or the same one again, should send the same file: its bytes
 * are written over the old ones and compared with them on the way
 * (fs_body), so that only the clients that got a byte that differs are
 * cut.  Without a file, there is nothing to compare with: they all are.
 */
static int fs_begin(void *ctx, struct cairn_error *err)
{
	struct fetch *f = ctx;
	struct cairn_error e2;
	cairn_error_init(&e2);
	if (f->sha_init)
		cairn_sha256_release(&f->sha);
	f->sha_init = 0;
	if (cairn_sha256_init(&f->sha) < 0)
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: cannot hash");
	f->sha_init = 1;
	if (f->fd < 0 && !f->mem &&
	    edge_store_tmp_open(f->e->store, f->tmppath, sizeof(f->tmppath), &f->fd, &e2) < 0) {
		f->fd = -1;
		fetch_to_memory(f, cairn_error_msg(&e2));
	}
	pthread_mutex_lock(&f->mu);
	if (f->mem && f->written)
		fetch_cut_locked(f, 0);
	/* what the clients read is the file's first `same` bytes: a start given
	 * up while it was being compared left the earlier bytes after its own */
	if (f->mem)
		f->same = 0;
	else if (f->written > f->same)
		f->same = f->written;
	f->written = f->woken = 0;
	if (f->mem)
		f->file_len = f->mbase = f->mlen = 0;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* Upstream thread, f->same > f->written: the first byte of data[0..len)
 * that differs from what the file holds there (len when none does, as far
 * as the file's earlier bytes go). */
static size_t fs_compare(struct fetch *f, const char *data, size_t len)
{
	char buf[16384];
	uint64_t off = f->written;
	size_t i = 0;
	size_t lim = (uint64_t)len > f->same - off ? (size_t)(f->same - off) : len;
	while (i < lim) {
		size_t n = lim - i < sizeof(buf) ? lim - i : sizeof(buf);
		ssize_t r = pread(f->fd, buf, n, (off_t)(off + i));
		if (r <= 0)
			return i;
		for (ssize_t k = 0; k < r; k++)
			if (buf[k] != data[i + (size_t)k])
				return i + (size_t)k;
		i += (size_t)r;
	}
	return len;
}

/* Sink, upstream thread: the body as served, for the clients following it
 * (checked by the engine, and by the claims, once all is in). */
static int fs_body(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct fetch *f = ctx;
	int leave = 0;
	(void)err;
	if (f->same > f->written && !f->mem) {
		size_t k = fs_compare(f, data, len);
		if (k < len && f->written + k < f->same) {
			/* another file after all: who got a byte of it is cut */
			pthread_mutex_lock(&f->mu);
			fetch_cut_locked(f, f->written + k);
			pthread_mutex_unlock(&f->mu);
			f->same = 0;
		}
	}
	const char *p = data;
	size_t left = len;
	uint64_t off = f->written;
	while (left && !f->mem) {
		ssize_t n = pwrite(f->fd, p, left, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* disk full, quota, I/O error: go on without the file */
			struct cairn_error e2;
			cairn_error_init(&e2);
			cairn_error_errno(&e2, n < 0 ? errno : ENOSPC,
					  "mirror cache: cannot write a download in '%s/tmp'",
					  f->e->cache_dir);
			if (f->same > f->written) {
				/* the earlier bytes after these stay uncompared */
				pthread_mutex_lock(&f->mu);
				fetch_cut_locked(f, f->written);
				pthread_mutex_unlock(&f->mu);
				f->same = 0;
			}
			fetch_to_memory(f, cairn_error_msg(&e2));
			break;
		}
		p += n;
		off += (uint64_t)n;
		left -= (size_t)n;
	}
	cairn_sha256_update(&f->sha, data, len);
	pthread_mutex_lock(&f->mu);
	if (f->mem)
		mem_append(f, data, len, &leave);
	f->written += len;
	/* waking every follower for each small network read costs more than
	 * the copying: wake them once per EDGE_WAKE bytes (and at the end) */
	if (f->written - f->woken >= EDGE_WAKE) {
		f->woken = f->written;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
	if (leave && !f->left_table) {
		f->left_table = 1;
		fetch_leave_table(f);
	}
	return 0;
}

/* Upstream thread: an answer with a body; its length and type are what
 * the clients are told. */
static int fs_response(void *ctx, size_t source, uint64_t first,
		       const struct cairn_http_response *resp, char *why, size_t cap)
{
	struct fetch *f = ctx;
	int64_t total = first ? resp->range_total : resp->content_length;
	if (f->src_alt[source])
		total = SIZE_UNKNOWN; /* another file: the clients get the NAR it holds */
	if (f->cand && total >= 0 && !cand_size_ok(f, total)) {
		snprintf(why, cap, "a file of %lld bytes, not the size its narinfo says",
			 (long long)total);
		return 1;
	}
	if (total < 0)
		total = cand_size(f);
	pthread_mutex_lock(&f->mu);
	if (f->state == FS_PENDING) {
		f->length = total;
		snprintf(f->ctype, sizeof(f->ctype), "%s",
			 resp->content_type[0] ? resp->content_type : "application/octet-stream");
		f->state = FS_HEADERS;
		pthread_cond_broadcast(&f->cond);
	} else if (f->length != total) {
		/* another file: the length the clients were told is wrong */
		fetch_cut_locked(f, 0);
		f->length = total;
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

static void dl_bytes(void *ctx, size_t n)
{
	struct fetch *f = ctx;
	edge_count(f->e->c.bytes_upstream, n);
}

static void dl_source_failed(void *ctx, size_t source, int code, const char *why)
{
	struct fetch *f = ctx;
	struct cairn_edge *e = f->e;
	struct upstream *u = &e->ups[f->src_up[source]];
	if (code == CAIRN_ENOENT) {
		f->n404++;
	} else if (code == CAIRN_EHASH || code == CAIRN_EFORMAT || code == CAIRN_ELIMIT) {
		edge_count(e->c.verify_fail, 1);
	} else {
		f->n_err++;
		edge_count(e->c.up_errors, 1);
		if (cairn_http_server_down(u->srv))
			edge_set_up(e, u, 0, why);
	}
}

/* Upstream thread: f's download is over and checked (r->code 0): do its
 * bytes meet the claims on its URL, and may they be cached? */
static void finish_nar(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	uint8_t sha[32];
	int commit, ok;
	cairn_sha256_final(&f->sha, sha);
	f->sha_init = 0;
	/* an earlier start's file may have been longer */
	pthread_mutex_lock(&f->mu);
	fetch_cut_locked(f, f->written);
	pthread_mutex_unlock(&f->mu);
	if (!f->cand) {
		if (!f->mem)
			unlink(f->tmppath); /* nothing to check it against: passed through only */
		edge_fetch_finish(f, FS_OK, 0);
		return;
	}
	pthread_mutex_lock(&e->mu);
	ok = judge_locked(e, f, sha, &commit);
	uint64_t gen = e->claims_gen;
	pthread_mutex_unlock(&e->mu);
	if (!ok) {
		edge_count(e->c.verify_fail, 1);
		if (!f->mem)
			unlink(f->tmppath);
		edge_fetch_finish(f, FS_FAIL, 0);
		return;
	}
	if (commit && f->cache && !f->mem && ftruncate(f->fd, (off_t)f->written) != 0)
		commit = 0; /* an earlier start's tail cannot be cut off */
	if (commit && f->cache && !f->mem) {
		struct edge_store_stats st;
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = edge_store_nar_commit(e->store, f->key, f->tmppath, sha, f->written, &err);
		if (rc == 0) {
			cache_write_works(e);
			/* a claim that came while it was being renamed in */
			pthread_mutex_lock(&e->mu);
			if (e->claims_gen != gen) {
				judge_locked(e, f, sha, &commit);
				if (!commit)
					edge_store_nar_drop_unless(e->store, f->key, NULL);
			}
			if (commit) /* the claims are read under e->mu */
				edge_ipfs_committed(e, f->key, f->cand);
			pthread_mutex_unlock(&e->mu);
		} else if (rc != CAIRN_ELIMIT) {
			cache_write_failed(e, cairn_error_msg(&err));
		}
		edge_store_stats(e->store, &st);
		if (st.evictions > e->evictions_seen) {
			edge_count(e->c.evictions, st.evictions - e->evictions_seen);
			e->evictions_seen = st.evictions;
		}
	} else if (!f->mem) {
		unlink(f->tmppath);
	}
	edge_fetch_finish(f, FS_OK, 0);
}

/* Upstream thread: f leaves the downloads in flight. */
static void dl_unlist(struct cairn_edge *e, struct fetch *f)
{
	for (struct fetch **pp = &e->downloads; *pp; pp = &(*pp)->dl_next)
		if (*pp == f) {
			*pp = f->dl_next;
			break;
		}
	e->active--;
}

/* The engine's verdict (upstream thread). */
static void dl_done(void *ctx, const struct cairn_dl_result *r)
{
	struct fetch *f = ctx;
	struct cairn_edge *e = f->e;
	cairn_dl_free(f->dl);
	f->dl = NULL;
	dl_unlist(e, f);
	if (r->code) {
		if (f->fd >= 0 && !f->mem)
			unlink(f->tmppath);
		edge_fetch_finish(f, FS_FAIL, f->n404 > 0 && !r->bytes);
		return;
	}
	edge_set_up(e, &e->ups[f->src_up[r->source]], 1, NULL);
	if (f->n_ex) {
		f->nar_ok = 1;
		/* what is held: the NAR itself when that is what was kept */
		f->nar_method = f->serve_nar ? CAIRN_CODEC_NONE : r->method;
		memcpy(f->nar_sha, f->ex_sha[r->expect], 32);
		f->nar_size = f->ex_size[r->expect];
	}
	finish_nar(f);
}

/*
 * What the engine checks f's bytes against: the signed NarHash and NarSize
 * of the claims that are checked by them, else nothing but a FileHash every
 * claim agrees on.  Claims may say different compressions of one URL (only
 * one can be true): each is a way to read the file, methods[0..return) in
 * the order of the claims; an uncompressed nar's claims (f->serve_nar) read
 * it as it is, and only theirs count.  *hint when the sources carry that
 * FileHash (and FileSize).
 */
static size_t nar_expect(struct fetch *f, struct cairn_dl_expect *ex,
			 struct cairn_dl_source *hint, enum cairn_codec_method *methods)
{
	const struct nar_claim *file = NULL;
	size_t n_m = 0;
	int agree = 1;
	f->n_ex = 0;
	for (size_t i = 0; f->cand && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		int plain = claim_plain(c);
		enum cairn_codec_method m = plain ? CAIRN_CODEC_NONE : c->method;
		if ((!c->by_nar && !plain) || (f->serve_nar && !plain))
			continue;
		size_t k = 0;
		while (k < n_m && methods[k] != m)
			k++;
		if (k == n_m)
			methods[n_m++] = m;
		size_t j = 0;
		while (j < f->n_ex &&
		       (memcmp(f->ex_sha[j], c->nar_sha, 32) || f->ex_size[j] != c->nar_size))
			j++;
		if (j == f->n_ex && f->n_ex < CAIRN_DL_MAX_EXPECT) {
			memcpy(f->ex_sha[j], c->nar_sha, 32);
			f->ex_size[j] = c->nar_size;
			ex[j] = (struct cairn_dl_expect){
			    .nar_size = c->nar_size,
			    .nar_hash = {.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN}};
			memcpy(ex[j].nar_hash.digest, c->nar_sha, 32);
			f->n_ex++;
		}
	}
	if (!n_m)
		methods[n_m++] = CAIRN_CODEC_NONE; /* by FileHash, or unchecked */
	for (size_t i = 0; f->cand && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (f->n_ex && ((!c->by_nar && !claim_plain(c)) || (f->serve_nar && !claim_plain(c))))
			continue;
		if (!c->has_file || (file && (memcmp(file->file_sha, c->file_sha, 32) ||
					      file->file_size != c->file_size)))
			agree = 0;
		file = c;
	}
	if (file && agree) {
		hint->has_file_hash = true;
		hint->file_hash =
		    (struct cairn_hash){.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN};
		memcpy(hint->file_hash.digest, file->file_sha, 32);
		hint->has_file_size = file->file_size >= 0;
		hint->file_size = (uint64_t)(file->file_size >= 0 ? file->file_size : 0);
	}
	return n_m;
}

/* The engine's source for another file of f's nar (its strings f's). */
static void alt_source(struct cairn_edge *e, const struct nar_alt *a, struct cairn_dl_source *s)
{
	struct upstream *u = &e->ups[a->up];
	*s = (struct cairn_dl_source){.label = u->name,
				      .server = u->srv,
				      .url = a->url,
				      .method = a->method,
				      .has_file_hash = a->has_file,
				      .has_file_size = a->file_size >= 0,
				      .file_size = (uint64_t)(a->file_size >= 0 ? a->file_size : 0)};
	if (a->has_file) {
		s->file_hash = (struct cairn_hash){.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN};
		memcpy(s->file_hash.digest, a->file_sha, 32);
	}
}

/*
 * Upstream thread: other files of item's nar were learnt (narinfos that
 * came after the served one was decided): downloads under way of an
 * uncompressed nar that item's claim names get them as more sources, so
 * that a head dying right after answering first is not the end of them.
 */
void edge_nar_alts_learnt(struct cairn_edge *e, const char *item)
{
	for (struct fetch *f = e->downloads; f; f = f->dl_next) {
		if (!f->dl || !f->serve_nar || !f->n_ex)
			continue;
		size_t had = f->n_alt;
		pthread_mutex_lock(&e->mu);
		int rc = edge_alts_take_locked(e, f, item);
		pthread_mutex_unlock(&e->mu);
		for (size_t i = had; rc == 0 && i < f->n_alt && f->n_src < EDGE_MAX_SOURCES; i++) {
			struct cairn_dl_source s;
			alt_source(e, &f->alt[i], &s);
			/* known before the engine may call back about it */
			f->src_alt[f->n_src] = 1;
			f->src_up[f->n_src] = f->alt[i].up;
			if (cairn_dl_add_source(f->dl, &s) < 0)
				break;
			f->n_src++;
		}
	}
}

/*
 * Upstream thread: download f's object through the engine, from the
 * upstreams in f->order (those skipped while down, unless all are), into
 * the file its clients follow.
 */
void edge_nar_start(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	struct cairn_dl_expect ex[CAIRN_DL_MAX_EXPECT];
	struct cairn_dl_source src[EDGE_MAX_SOURCES], hint = {0};
	enum cairn_codec_method methods[CAIRN_CODEC_METHOD_COUNT_];
	size_t n = 0;
	int any_up = 0;
	size_t n_m = nar_expect(f, ex, &hint, methods);
	/* the gateways first, once: their bytes are the NAR, which is the
	 * file only at an uncompressed nar's URL */
	if (!f->ipfs_tried && f->serve_nar && f->n_ex == 1 && e->ipfs_src) {
		f->ipfs_tried = 1;
		if (edge_nar_ipfs_start(f) == 0)
			return;
	}
	for (size_t i = 0; i < e->n_ups; i++)
		any_up |= e->ups[i].up;
	/* the URL itself, read as each claim on it says, upstream by upstream;
	 * then the other files of the nar (edge_alts_take_locked) */
	for (size_t mi = 0; mi < n_m; mi++)
		for (size_t k = 0; k < e->n_ups && n < EDGE_MAX_SOURCES; k++) {
			struct upstream *u = &e->ups[f->order[k]];
			if (!u->up && any_up)
				continue; /* skipped while down; its probe brings it back */
			cairn_http_server_mark_up(u->srv);
			src[n] = hint;
			src[n].label = u->name;
			src[n].server = u->srv;
			src[n].url = f->upath;
			src[n].method = methods[mi];
			f->src_alt[n] = 0;
			f->src_up[n++] = f->order[k];
		}
	for (size_t i = 0; f->n_ex && i < f->n_alt && n < EDGE_MAX_SOURCES; i++) {
		const struct nar_alt *a = &f->alt[i];
		if (!e->ups[a->up].up && any_up)
			continue;
		cairn_http_server_mark_up(e->ups[a->up].srv);
		alt_source(e, a, &src[n]);
		f->src_alt[n] = 1;
		f->src_up[n++] = a->up;
	}
	f->n_src = n;
	const struct cairn_dl_config cfg = {
	    .http = e->http,
	    .on_done = dl_done,
	    .on_bytes = dl_bytes,
	    .on_source_failed = dl_source_failed,
	    .on_response = fs_response,
	    /* one cache's mirrors serve one file under one path: an upstream
	     * that fails mid-way hands on to the next with Range */
	    .resume_across = true,
	    .ctx = f,
	};
	/* an uncompressed nar's file is the NAR: what every source decompresses to */
	const struct cairn_dl_sink sink = {.begin = fs_begin,
					   .body = f->serve_nar && f->n_ex ? NULL : fs_body,
					   .nar = f->serve_nar && f->n_ex ? fs_body : NULL,
					   .ctx = f};
	f->dl_next = e->downloads;
	e->downloads = f;
	e->active++;
	/* on_done may run before this returns: f is not touched after it */
	if (cairn_dl_start_any(&f->dl, &cfg, ex, f->n_ex, src, n, &sink, NULL) < 0) {
		f->dl = NULL;
		dl_unlist(e, f);
		if (f->fd >= 0 && !f->mem)
			unlink(f->tmppath);
		edge_fetch_finish(f, FS_FAIL, 0);
	}
}

void edge_nar_ipfs_begin(struct fetch *f, struct cairn_dl_sink *sink)
{
	pthread_mutex_lock(&f->mu);
	if (f->state == FS_PENDING) {
		f->length = (int64_t)f->ex_size[0];
		snprintf(f->ctype, sizeof(f->ctype), "application/x-nix-nar");
		f->state = FS_HEADERS;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
	*sink = (struct cairn_dl_sink){.begin = fs_begin, .nar = fs_body, .ctx = f};
}

void edge_nar_ipfs_over(struct fetch *f, int ok)
{
	edge_count(ok ? f->e->c.gw_fills : f->e->c.gw_fill_failures, 1);
	if (!ok) {
		edge_nar_start(f);
		return;
	}
	f->nar_ok = 1;
	f->nar_method = CAIRN_CODEC_NONE;
	memcpy(f->nar_sha, f->ex_sha[0], 32);
	f->nar_size = f->ex_size[0];
	finish_nar(f);
}

/*
 * A client following f as it downloads (lib/httpd-follow.h).  The last
 * byte read is always held back until more follow it, and the response's
 * last byte until the whole object is verified (FS_OK), so no response,
 * whole or a range, ends cleanly on bytes that fail the check.  The held
 * byte is kept by the follower, not in f: for a download without a file,
 * rd (this client among f->readers) needs no memory kept for it.
 */
struct follower {
	struct fetch *f;
	struct reader *rd;
};

static int64_t follow_wait(void *ctx, uint64_t pos, uint64_t limit)
{
	struct follower *fl = ctx;
	struct fetch *f = fl->f;
	int64_t r;
	pthread_mutex_lock(&f->mu);
	fl->rd->pos = pos;
	for (;;) {
		uint64_t have = f->written < limit ? f->written : limit;
		if (fl->rd->cut) {
			r = CAIRN_ECANCELED;
			break;
		}
		if (pos < have) {
			r = (int64_t)(have - pos);
			break;
		}
		if (f->state == FS_OK || f->state == FS_FAIL) {
			r = f->state == FS_OK ? HTTPD_FOLLOW_DONE : CAIRN_EIO;
			break;
		}
		pthread_cond_wait(&f->cond, &f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return r;
}

static ssize_t follow_read(void *ctx, uint64_t pos, void *buf, size_t len)
{
	struct follower *fl = ctx;
	struct fetch *f = fl->f;
	ssize_t r;
	pthread_mutex_lock(&f->mu);
	if (fl->rd->cut) {
		r = CAIRN_ECANCELED;
	} else if (!f->mem || pos < f->file_len) {
		if (f->mem && pos + len > f->file_len)
			len = (size_t)(f->file_len - pos);
		pthread_mutex_unlock(&f->mu);
		r = pread(f->fd, buf, len, (off_t)pos);
		if (r <= 0)
			r = CAIRN_EIO;
		pthread_mutex_lock(&f->mu);
	} else if (pos < f->mbase) {
		r = CAIRN_ECANCELED; /* without a file, and memory no longer holds them */
	} else {
		memcpy(buf, f->mbuf + (pos - f->mbase), len);
		r = (ssize_t)len;
	}
	/* read is as good as sent: memory need not keep them for this client */
	if (r > 0)
		fl->rd->pos = pos + (uint64_t)r;
	pthread_mutex_unlock(&f->mu);
	return r;
}

/* Copy [pos, end) of f's bytes to s as they arrive; 1 when all went out. */
static int produce(struct fetch *f, struct reader *rd, struct cairn_httpd_stream *s, uint64_t pos,
		   uint64_t end)
{
	struct follower fl = {f, rd};
	const struct httpd_follow src = {
	    .wait = follow_wait, .read = follow_read, .ctx = &fl, .hold_last = true};
	return httpd_follow_send(s, &src, pos, end, NULL) == 0;
}

/* Answer m from f (to which rd is registered as a reader). */
static void stream_from(struct miss *m, struct fetch *f, struct reader *rd)
{
	struct cairn_edge *e = m->e;
	enum fstate st = edge_fetch_wait(f, FS_HEADERS, e->cfg.wait_ms);
	if (st == FS_PENDING || st == FS_FAIL) {
		if (st == FS_FAIL && f->not_found)
			cairn_httpd_stream_error(m->s, 404, NULL);
		else
			cairn_httpd_stream_error(m->s, st == FS_PENDING ? 504 : 502, NULL);
		return;
	}
	pthread_mutex_lock(&f->mu);
	int64_t total = f->length;
	rd->started = 1;
	pthread_mutex_unlock(&f->mu);
	uint64_t first = 0, last = 0, n = 0;
	int status = 200;
	int64_t clen = total;
	char cr[96];
	const char *hdrs[] = {NULL, NULL, NULL};
	/* a length the upstream did not announce cannot be cut into ranges */
	enum cairn_httpd_range rr =
	    m->rlen && total >= 0
		? cairn_httpd_parse_range(m->range, m->rlen, (uint64_t)total, &first, &n)
		: CAIRN_HTTPD_RANGE_NONE;
	if (rr == CAIRN_HTTPD_RANGE_UNSATISFIABLE) {
		snprintf(cr, sizeof(cr), "bytes */%lld", (long long)total);
		hdrs[0] = "Content-Range";
		hdrs[1] = cr;
		cairn_httpd_stream_reply(m->s, 416, NULL, NULL, 0, hdrs);
		return;
	}
	if (rr == CAIRN_HTTPD_RANGE_OK) {
		last = first + n - 1;
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%lld", (unsigned long long)first,
			 (unsigned long long)last, (long long)total);
		hdrs[0] = "Content-Range";
		hdrs[1] = cr;
		status = 206;
		clen = (int64_t)n;
	} else {
		first = 0;
		last = UINT64_MAX - 1;
	}
	const char *ctype = m->is_nar ? "application/x-nix-nar" : f->ctype;
	int ok = 0;
	if (cairn_httpd_stream_begin(m->s, status, ctype, clen, hdrs) == 0)
		ok = m->is_head || produce(f, rd, m->s, first, last + 1);
	cairn_httpd_stream_end(m->s, ok);
}

/* Answer m from the cached nar `name` (pinned by the caller; unpinned
 * here once open): a download that completed as if it had just ended. */
static void stream_cached(struct miss *m, const char name[EDGE_FILE_NAME_LEN + 1], uint64_t size)
{
	struct cairn_edge *e = m->e;
	int fd = openat(edge_store_data_fd(e->store), name, O_RDONLY | O_CLOEXEC);
	edge_store_nar_unpin(e->store, name);
	if (fd < 0) {
		cairn_httpd_stream_error(m->s, 503, NULL);
		return;
	}
	struct fetch done = {.e = e, .kind = FK_NAR, .fd = fd, .state = FS_OK};
	struct reader rd = {0};
	done.length = (int64_t)size;
	done.written = size;
	pthread_mutex_init(&done.mu, NULL);
	pthread_cond_init(&done.cond, NULL);
	edge_count(e->c.hits, 1);
	if (!m->is_head)
		edge_count(e->c.bytes_cache, size);
	stream_from(m, &done, &rd);
	pthread_mutex_destroy(&done.mu);
	pthread_cond_destroy(&done.cond);
	close(fd);
}

/* A miss on an object that streams (nar, log, listing): join or start. */
void edge_miss_stream(struct miss *m)
{
	struct cairn_edge *e = m->e;
	struct reader rd = {0};
	int known, joined;
	char cc[64];
	const char *key = m->key;
	pthread_mutex_lock(&e->mu);
	known = map_get(&e->claims, key) != NULL;
	pthread_mutex_unlock(&e->mu);

	/* Guix: nar/<compression>/<hash>-<name>; learn its hashes from the narinfo */
	if (m->is_nar && !known) {
		const char *slash = strchr(key + 4, '/');
		const char *base = slash ? slash + 1 : NULL;
		if (base && strlen(base) > CAIRN_STORE_HASH_LEN &&
		    base[CAIRN_STORE_HASH_LEN] == '-' &&
		    cairn_store_hash_valid(base, CAIRN_STORE_HASH_LEN)) {
			char hash[CAIRN_STORE_HASH_LEN + 1];
			int64_t ma;
			int stale;
			memcpy(hash, base, CAIRN_STORE_HASH_LEN);
			hash[CAIRN_STORE_HASH_LEN] = 0;
			int rc = edge_narinfo_lookup(e, hash, NULL, NULL, &ma, &stale, 0);
			if (rc == 0) {
				edge_cc_404(cc, sizeof(cc), ma);
				cairn_httpd_stream_error(m->s, 404, cc);
				return;
			}
		}
	}

	pthread_mutex_lock(&e->mu);
	/* The handler looked in the cache before this miss was queued; a
	 * download may have finished and been committed since (under load,
	 * seconds pass between the two).  Starting another would ask the
	 * upstream twice for one nar. */
	char name[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	if (m->is_nar && !map_get(&e->inflight, key) &&
	    edge_store_nar_pin(e->store, key, name, &size)) {
		pthread_mutex_unlock(&e->mu);
		stream_cached(m, name, size);
		return;
	}
	struct fetch *f = edge_fetch_get_locked(e, FK_NAR, key, &joined);
	if (f && !joined) {
		f->cache = m->is_nar && f->cand;
		/* cairn publish names on-the-fly nars "...?hash=<hashpart>" */
		size_t kl = strlen(key);
		if (m->qlen && kl + 1 + m->qlen < sizeof(f->upath)) {
			memcpy(f->upath, key, kl);
			f->upath[kl] = '?';
			memcpy(f->upath + kl + 1, m->query, m->qlen);
			f->upath[kl + 1 + m->qlen] = 0;
		}
	}
	if (f) {
		/* a reader from the start: a download kept in memory keeps its
		 * bytes for this client before the first of them arrives */
		pthread_mutex_lock(&f->mu);
		rd.next = f->readers;
		f->readers = &rd;
		pthread_mutex_unlock(&f->mu);
	}
	pthread_mutex_unlock(&e->mu);
	if (!f) {
		cairn_httpd_stream_error(m->s, 503, NULL);
		return;
	}
	if (m->is_nar)
		edge_count(joined ? e->c.coalesced : e->c.misses, 1);
	stream_from(m, f, &rd);
	pthread_mutex_lock(&f->mu);
	for (struct reader **pp = &f->readers; *pp; pp = &(*pp)->next)
		if (*pp == &rd) {
			*pp = rd.next;
			break;
		}
	pthread_mutex_unlock(&f->mu);
	edge_fetch_unref(f);
}
