/*
 * download.c - the download-and-verify engine (see download.h for the
 * rules).  Three parts:
 *   - the pipeline: body bytes through FileHash, the codec, the NAR parser
 *     (NarHash, NarSize, the CA check of a flat file) into the sink;
 *   - the transfer: sources in order, resume, restart, fail-over, on the
 *     caller's HTTP client;
 *   - the pool: worker threads that run pipelines, so that the network
 *     thread only moves bytes.
 * The sinks that restore a tree or keep a file are in download-sink.c; the
 * checks of a tree on disk and of a NAR the caller makes, in download-check.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "download-int.h"
#include "cairn/banned.h"

struct cairn_dl_pool {
	pthread_mutex_t mu;
	pthread_cond_t work_cv, idle_cv, done_cv;
	pthread_t *threads;
	unsigned n_threads;
	bool stopping;
	struct cairn_dl *run_head, *run_tail, *done_head;
	size_t pending; /* verdicts asked for and not yet drained */
};

/* ---- the pipeline --------------------------------------------------------- */

/* Parser callbacks: the sink's, plus the CA check of a flat file. */
static int p_dir_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	return d->sink.tree && d->sink.tree->directory_begin
		   ? d->sink.tree->directory_begin(d->sink.ctx, n, err)
		   : 0;
}

static int p_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	return d->sink.tree && d->sink.tree->directory_end
		   ? d->sink.tree->directory_end(d->sink.ctx, n, err)
		   : 0;
}

static int p_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	if (n->depth == 0)
		d->ca_root_file = true;
	return d->sink.tree && d->sink.tree->file_begin
		   ? d->sink.tree->file_begin(d->sink.ctx, n, err)
		   : 0;
}

static int p_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	if (d->ca_on && d->ca_root_file && d->ex[0].ca.method != CAIRN_CA_NAR) {
		int rc = cairn_ca_verify_update(&d->cav, data, len, err);
		if (rc)
			return rc;
	}
	return d->sink.tree && d->sink.tree->file_data
		   ? d->sink.tree->file_data(d->sink.ctx, data, len, err)
		   : 0;
}

static int p_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	return d->sink.tree && d->sink.tree->file_end ? d->sink.tree->file_end(d->sink.ctx, n, err)
						      : 0;
}

static int p_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_dl *d = ctx;
	return d->sink.tree && d->sink.tree->symlink ? d->sink.tree->symlink(d->sink.ctx, n, err)
						     : 0;
}

const struct cairn_nar_callbacks dl_pipe_cb = {
    .directory_begin = p_dir_begin,
    .directory_end = p_dir_end,
    .file_begin = p_file_begin,
    .file_data = p_file_data,
    .file_end = p_file_end,
    .symlink = p_symlink,
};

/* Decompressed NAR bytes. */
int dl_nar_out(void *ctx, const void *data, size_t len)
{
	struct cairn_dl *d = ctx;
	int rc;
	if (d->ca_on && d->ex[0].ca.method == CAIRN_CA_NAR) {
		rc = cairn_ca_verify_update(&d->cav, data, len, &d->perr);
		if (rc)
			return rc;
	}
	rc = cairn_nar_parser_feed(d->parser, data, len, &d->perr);
	if (rc)
		return rc;
	return d->sink.nar ? d->sink.nar(d->sink.ctx, data, len, &d->perr) : 0;
}

void dl_pipe_teardown(struct cairn_dl *d)
{
	cairn_codec_free(d->codec);
	d->codec = NULL;
	cairn_nar_parser_free(d->parser);
	d->parser = NULL;
	if (d->filehash_on)
		cairn_sha256_release(&d->filehash);
	d->filehash_on = false;
	if (d->ca_on)
		cairn_ca_verify_release(&d->cav);
	d->ca_on = false;
	d->ca_root_file = false;
	if (d->sink_begun && d->sink.discard)
		d->sink.discard(d->sink.ctx);
	d->sink_begun = false;
	d->fed = 0;
}

/* A fresh pipeline for the current source, from byte 0; 0 or d->perr. */
int dl_pipe_setup(struct cairn_dl *d)
{
	const struct cairn_dl_source *s = &d->src[d->cur];
	dl_pipe_teardown(d);
	cairn_error_init(&d->perr);
	int rc;
	/* A little slack over NarSize would let a lying server make us work
	 * harder; the cap is exactly what the signature promised. */
	if (d->n_ex) {
		rc = cairn_codec_new(&d->codec, s->method, CAIRN_CODEC_DECOMPRESS,
				     CAIRN_CODEC_LEVEL_DEFAULT, d->max_nar, &d->perr);
		if (rc)
			return rc;
		struct cairn_nar_limits lim = {.max_nar_size = d->max_nar};
		d->parser = cairn_nar_parser_new(&dl_pipe_cb, d, &lim);
		if (!d->parser)
			return cairn_error_set(&d->perr, CAIRN_ENOMEM, "out of memory");
	}
	if (s->has_file_hash && s->file_hash.algo == CAIRN_HASH_SHA256) {
		rc = cairn_sha256_init(&d->filehash);
		if (rc)
			return cairn_error_set(&d->perr, rc, "cannot hash");
		d->filehash_on = true;
	}
	if (d->n_ex && d->ex[0].by_ca) {
		rc = cairn_ca_verify_init(&d->cav, &d->ex[0].ca, &d->ex[0].sp, &d->perr);
		if (rc)
			return rc;
		d->ca_on = true;
	}
	if (d->sink.begin && (rc = d->sink.begin(d->sink.ctx, &d->perr)))
		return rc;
	d->sink_begun = true;
	return 0;
}

static int pipe_feed(struct cairn_dl *d, const void *data, size_t len)
{
	d->fed += len;
	if (d->filehash_on)
		cairn_sha256_update(&d->filehash, data, len);
	if (d->sink.body) {
		int rc = d->sink.body(d->sink.ctx, data, len, &d->perr);
		if (rc)
			return rc;
	}
	if (!d->n_ex)
		return 0;
	return cairn_codec_write(d->codec, data, len, dl_nar_out, d, &d->perr);
}

/* The NAR against the expectations: d->met is the one it meets. */
static int pipe_verify_nar(struct cairn_dl *d)
{
	int rc = cairn_codec_finish(d->codec, dl_nar_out, d, &d->perr);
	if (rc)
		return rc;
	rc = cairn_nar_parser_finish(d->parser, &d->perr);
	if (rc)
		return rc;
	struct cairn_hash h;
	if (cairn_nar_parser_hash(d->parser, &h))
		return cairn_error_set(&d->perr, CAIRN_EHASH, "no NAR hash");
	uint64_t size = cairn_nar_parser_size(d->parser);
	for (d->met = 0; d->met < d->n_ex; d->met++)
		if (size == d->ex[d->met].nar_size && cairn_hash_equal(&h, &d->ex[d->met].nar_hash))
			return 0;
	const struct cairn_dl_expect *x = &d->ex[0];
	char got[CAIRN_HASH_STR_MAX], want[CAIRN_HASH_STR_MAX];
	cairn_hash_format(&h, CAIRN_HASH_NIX32, got, sizeof(got));
	if (d->n_ex > 1)
		return cairn_error_set(&d->perr, CAIRN_EHASH,
				       "hash mismatch: the NAR (%llu bytes) hashes to %s, none of "
				       "the %zu NarHashes it may have",
				       (unsigned long long)size, got, d->n_ex);
	if (size != x->nar_size)
		return cairn_error_set(&d->perr, CAIRN_EHASH, "NAR is %llu bytes, NarSize says %llu",
				       (unsigned long long)size, (unsigned long long)x->nar_size);
	cairn_hash_format(&x->nar_hash, CAIRN_HASH_NIX32, want, sizeof(want));
	return cairn_error_set(&d->perr, CAIRN_EHASH,
			       "hash mismatch: the NAR hashes to %s, not the NarHash %s", got, want);
}

/* Everything is in: check it all.  0 when the sink holds the expected NAR
 * (unchecked: the bytes the source's hints promised). */
int dl_pipe_verify(struct cairn_dl *d)
{
	const struct cairn_dl_source *s = &d->src[d->cur];
	int rc = d->n_ex ? pipe_verify_nar(d) : 0;
	if (rc)
		return rc;
	if (s->has_file_size && s->file_size != d->fed)
		return cairn_error_set(&d->perr, CAIRN_EHASH,
				       "file is %llu bytes, FileSize says %llu",
				       (unsigned long long)d->fed, (unsigned long long)s->file_size);
	if (d->filehash_on) {
		struct cairn_hash fh = {.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN};
		cairn_sha256_final(&d->filehash, fh.digest);
		d->filehash_on = false;
		if (!cairn_hash_equal(&fh, &s->file_hash))
			return cairn_error_set(&d->perr, CAIRN_EHASH, "FileHash mismatch");
	}
	if (d->ca_on) {
		d->ca_on = false;
		if (d->ex[0].ca.method != CAIRN_CA_NAR && !d->ca_root_file)
			return cairn_error_set(&d->perr, CAIRN_EHASH,
					       "CA names a flat file but the NAR is not one");
		rc = cairn_ca_verify_final(&d->cav, &d->perr);
		if (rc)
			return rc;
	}
	return 0;
}

/* One piece of work, in order, on whichever thread runs the pipeline. */
static int pipe_chunk(struct cairn_dl *d, const struct chunk *c)
{
	if (c->restart)
		return dl_pipe_setup(d);
	return pipe_feed(d, c->data, c->len);
}

/* ---- the pool ------------------------------------------------------------- */

static void make_runnable(struct cairn_dl_pool *p, struct cairn_dl *d)
{
	if (d->runnable || d->busy)
		return;
	d->runnable = true;
	d->run_next = NULL;
	if (p->run_tail)
		p->run_tail->run_next = d;
	else
		p->run_head = d;
	p->run_tail = d;
	pthread_cond_signal(&p->work_cv);
}

static void *worker_main(void *arg)
{
	struct cairn_dl_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stopping) {
		struct cairn_dl *d = p->run_head;
		if (!d) {
			pthread_cond_wait(&p->work_cv, &p->mu);
			continue;
		}
		p->run_head = d->run_next;
		if (!p->run_head)
			p->run_tail = NULL;
		d->runnable = false;
		d->busy = true;
		while (d->q_head) {
			struct chunk *c = d->q_head;
			d->q_head = c->next;
			if (!d->q_head)
				d->q_tail = NULL;
			d->q_bytes -= c->len;
			/* A restart clears an earlier failure: it starts over. */
			if (c->restart)
				d->w_failed = false;
			bool failed = d->w_failed;
			pthread_mutex_unlock(&p->mu);
			int rc = failed ? 0 : pipe_chunk(d, c);
			free(c);
			pthread_mutex_lock(&p->mu);
			if (rc)
				d->w_failed = true;
			/* Wake the network thread only once there is room again. */
			if (rc || d->q_bytes <= CAIRN_DL_QUEUE_MAX / 2)
				pthread_cond_broadcast(&p->idle_cv);
		}
		if (d->q_finish) {
			d->q_finish = false;
			bool failed = d->w_failed;
			pthread_mutex_unlock(&p->mu);
			int rc = failed ? (d->perr.code ? d->perr.code : CAIRN_EFORMAT)
					: dl_pipe_verify(d);
			pthread_mutex_lock(&p->mu);
			d->w_rc = rc;
			d->w_done = true;
			d->done_next = p->done_head;
			p->done_head = d;
			pthread_cond_signal(&p->done_cv);
		}
		d->busy = false;
		pthread_cond_broadcast(&p->idle_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int cairn_dl_pool_new(struct cairn_dl_pool **out, unsigned threads, struct cairn_error *err)
{
	struct cairn_dl_pool *p = calloc(1, sizeof(*p));
	if (!p || !(p->threads = calloc(threads ? threads : 1, sizeof(pthread_t)))) {
		free(p);
		return cairn_error_set(err, CAIRN_ENOMEM, "download: out of memory");
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->idle_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	/* Fewer threads than asked for still work. */
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, worker_main, p))
			break;
		p->n_threads++;
	}
	if (!p->n_threads) {
		cairn_dl_pool_free(p);
		return cairn_error_set(err, CAIRN_ENOMEM, "download: cannot start a worker thread");
	}
	*out = p;
	return 0;
}

void cairn_dl_pool_free(struct cairn_dl_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->idle_cv);
	pthread_cond_destroy(&p->done_cv);
	free(p->threads);
	free(p);
}

unsigned cairn_dl_pool_threads(const struct cairn_dl_pool *p)
{
	return p ? p->n_threads : 0;
}

size_t cairn_dl_pool_pending(struct cairn_dl_pool *p)
{
	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	size_t n = p->pending;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void cairn_dl_pool_wait(struct cairn_dl_pool *p, int timeout_ms)
{
	if (!p || timeout_ms <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)timeout_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&p->mu);
	if (!p->done_head && p->pending)
		pthread_cond_timedwait(&p->done_cv, &p->mu, &ts);
	pthread_mutex_unlock(&p->mu);
}

static void list_remove(struct cairn_dl **head, struct cairn_dl *d, bool run)
{
	for (struct cairn_dl **pp = head; *pp; pp = run ? &(*pp)->run_next : &(*pp)->done_next)
		if (*pp == d) {
			*pp = run ? d->run_next : d->done_next;
			return;
		}
}

/* Make sure no worker touches d any more, and drop what it had queued. */
static void quiesce(struct cairn_dl *d)
{
	struct cairn_dl_pool *p = d->pool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	for (struct chunk *c = d->q_head, *n; c; c = n) {
		n = c->next;
		free(c);
	}
	d->q_head = d->q_tail = NULL;
	d->q_bytes = 0;
	if (d->q_finish)
		p->pending--;
	d->q_finish = false;
	while (d->busy)
		pthread_cond_wait(&p->idle_cv, &p->mu);
	if (d->runnable) {
		list_remove(&p->run_head, d, true);
		p->run_tail = NULL;
		for (struct cairn_dl *x = p->run_head; x; x = x->run_next)
			p->run_tail = x;
		d->runnable = false;
	}
	if (d->w_done) {
		list_remove(&p->done_head, d, false);
		p->pending--;
		d->w_done = false;
	}
	d->w_failed = false;
	pthread_mutex_unlock(&p->mu);
}

/* Queue a chunk for d's worker; false when the worker already failed. */
static bool queue_chunk(struct cairn_dl *d, const void *data, size_t len, bool restart)
{
	struct cairn_dl_pool *p = d->pool;
	struct chunk *c = malloc(sizeof(*c) + len);
	if (!c) {
		cairn_error_set(&d->perr, CAIRN_ENOMEM, "out of memory");
		return false;
	}
	c->next = NULL;
	c->restart = restart;
	c->len = len;
	if (len)
		memcpy(c->data, data, len);
	pthread_mutex_lock(&p->mu);
	while (d->q_bytes > CAIRN_DL_QUEUE_MAX && !d->w_failed)
		pthread_cond_wait(&p->idle_cv, &p->mu);
	if (d->w_failed && !restart) {
		pthread_mutex_unlock(&p->mu);
		free(c);
		return false;
	}
	if (d->q_tail)
		d->q_tail->next = c;
	else
		d->q_head = c;
	d->q_tail = c;
	d->q_bytes += len;
	make_runnable(p, d);
	pthread_mutex_unlock(&p->mu);
	return true;
}

/* ---- the transfer --------------------------------------------------------- */

static void next_source(struct cairn_dl *d, int code, const char *why);
static void send_request(struct cairn_dl *d);
static bool retry_alone(struct cairn_dl *d, const char *why);
static bool multi_fallback(struct cairn_dl *d, const char *why);

static void reason_add(struct cairn_dl *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason_add(struct cairn_dl *d, const char *fmt, ...)
{
	va_list ap;
	if (d->reason.len)
		cairn_buf_puts(&d->reason, "; ");
	va_start(ap, fmt);
	/* Cut at the buffer's bound, it still names the first causes. */
	cairn_buf_vprintf(&d->reason, fmt, ap);
	va_end(ap);
}

static void finish(struct cairn_dl *d, int code)
{
	struct cairn_dl_result r = {
	    .code = code,
	    .source = d->cur,
	    .method = d->cur < d->n_src ? d->src[d->cur].method : CAIRN_CODEC_NONE,
	    .expect = d->met,
	    .bytes = d->bytes,
	    .verify_failed = d->verify_failed,
	    .headline = d->headline,
	    .reason = d->reason.data ? d->reason.data : "",
	};
	if (!code) {
		/* The sink's target is the caller's now. */
		d->sink_begun = false;
		dl_pipe_teardown(d);
	}
	d->cfg.on_done(d->cfg.ctx, &r);
}

static void verdict(struct cairn_dl *d, int rc)
{
	if (rc && multi_fallback(d, cairn_error_msg(&d->perr)))
		return;
	if (rc && retry_alone(d, cairn_error_msg(&d->perr)))
		return;
	if (rc) {
		d->verify_failed |= (uint64_t)1 << d->cur;
		next_source(d, rc, cairn_error_msg(&d->perr));
		return;
	}
	finish(d, 0);
}

/* Start the current source from byte 0, or the next one that can be asked. */
static void start_source(struct cairn_dl *d)
{
	for (; d->cur < d->n_src; d->cur++) {
		const struct cairn_dl_source *s = &d->src[d->cur];
		if (s->server && cairn_http_server_down(s->server)) {
			reason_add(d, "%s: down", s->label);
			continue;
		}
		d->received = d->range_start = 0;
		d->resumes = 0;
		d->accept_ranges = d->bad_range = d->plain_retried = d->content_error = false;
		d->continued = false;
		quiesce(d);
		if (dl_pipe_setup(d)) {
			/* The local side cannot take it (no space, no memory):
			 * another source would not help. */
			int code = d->perr.code ? d->perr.code : CAIRN_EIO;
			reason_add(d, "%s", cairn_error_msg(&d->perr));
			dl_pipe_teardown(d);
			snprintf(d->headline, sizeof(d->headline), "cannot store the NAR");
			finish(d, code);
			return;
		}
		send_request(d);
		return;
	}
	snprintf(d->headline, sizeof(d->headline), "no server could send the NAR");
	finish(d, CAIRN_ENET);
}

/* Do sources a and b serve the very same file, as far as can be told? */
static bool same_file(const struct cairn_dl_source *a, const struct cairn_dl_source *b)
{
	return a->method == b->method && a->has_file_hash == b->has_file_hash &&
	       (!a->has_file_hash || cairn_hash_equal(&a->file_hash, &b->file_hash)) &&
	       a->has_file_size == b->has_file_size &&
	       (!a->has_file_size || a->file_size == b->file_size);
}

/*
 * This source failed in transit (resume_across): the next one that can be
 * asked, when it serves the same file, is asked for the rest with Range,
 * the bytes so far kept.  false when there is no such source.
 */
static bool carry_on(struct cairn_dl *d)
{
	size_t i = d->cur + 1;
	if (!d->cfg.resume_across || !d->received)
		return false;
	while (i < d->n_src && d->src[i].server && cairn_http_server_down(d->src[i].server))
		i++;
	if (i >= d->n_src || !same_file(&d->src[d->cur], &d->src[i]))
		return false;
	d->cur = i;
	d->resumes = 0;
	d->accept_ranges = d->bad_range = d->plain_retried = false;
	d->continued = true;
	d->range_start = d->received;
	send_request(d);
	return true;
}

/*
 * Bytes that went on from another server's failed the checks: which one
 * sent the bad part cannot be told, so the source at hand is asked once
 * more from byte 0, alone.  false when that cannot be done.
 */
static bool retry_alone(struct cairn_dl *d, const char *why)
{
	if (!d->continued)
		return false;
	d->continued = false;
	reason_add(d, "%s: %s (after another server's bytes)", d->src[d->cur].label, why);
	quiesce(d);
	if (dl_pipe_setup(d) != 0)
		return false;
	d->received = d->range_start = 0;
	d->resumes = 0;
	d->content_error = d->refused = false;
	send_request(d);
	return true;
}

/* This source failed for good: note why and go to the next one. */
static void next_source(struct cairn_dl *d, int code, const char *why)
{
	reason_add(d, "%s: %s", d->src[d->cur].label, why);
	if (d->cfg.on_source_failed)
		d->cfg.on_source_failed(d->cfg.ctx, d->cur, code, why);
	bool transit = d->transit;
	d->transit = false;
	if (transit && carry_on(d))
		return;
	quiesce(d);
	dl_pipe_teardown(d);
	d->cur++;
	if (d->cur < d->n_src) {
		start_source(d);
		return;
	}
	d->cur = d->n_src - 1;
	if (code == CAIRN_ENOENT)
		snprintf(d->headline, sizeof(d->headline), "no server could send the NAR");
	else if (code == CAIRN_EHASH || code == CAIRN_EFORMAT || code == CAIRN_ETRUNCATED ||
		 code == CAIRN_ELIMIT)
		snprintf(d->headline, sizeof(d->headline), "no server sent a NAR that verifies");
	else
		snprintf(d->headline, sizeof(d->headline), "download failed");
	finish(d, code);
}

/* Start over from byte 0 on the same source (the pipeline and the sink too). */
static bool restart_pipeline(struct cairn_dl *d)
{
	d->received = 0;
	d->continued = false;
	if (d->pool)
		return queue_chunk(d, NULL, 0, true);
	return dl_pipe_setup(d) == 0;
}

static int on_headers(void *ctx, const struct cairn_http_response *resp)
{
	struct cairn_dl *d = ctx;
	if (resp->accept_ranges)
		d->accept_ranges = true;
	if (resp->status < 200 || resp->status > 299)
		return 0;
	if (d->range_start && resp->status == 200) {
		/* HTTP lets a server ignore Range: this body is the whole file.
		 * What came before is dropped, never trusted twice. */
		if (!restart_pipeline(d)) {
			d->content_error = true;
			return 1;
		}
		d->range_start = 0;
	} else if (d->range_start &&
		   (resp->status != 206 || resp->range_first != (int64_t)d->range_start)) {
		d->bad_range = true;
		return 1;
	}
	if (d->cfg.on_response &&
	    d->cfg.on_response(d->cfg.ctx, d->cur, d->range_start, resp, d->refuse_why,
			       sizeof(d->refuse_why))) {
		d->refused = true;
		return 1;
	}
	return 0;
}

static int on_data(void *ctx, const void *data, size_t len)
{
	struct cairn_dl *d = ctx;
	d->received += len;
	d->bytes += len;
	if (d->cfg.on_bytes)
		d->cfg.on_bytes(d->cfg.ctx, len);
	if (d->pool) {
		if (!queue_chunk(d, data, len, false)) {
			d->content_error = true;
			return 1;
		}
		return 0;
	}
	if (pipe_feed(d, data, len)) {
		d->content_error = true;
		return 1;
	}
	return 0;
}

static void on_done(void *ctx, const struct cairn_http_result *res)
{
	struct cairn_dl *d = ctx;
	struct cairn_dl_pool *p = d->pool;
	d->in_flight = false;
	if (res->outcome == CAIRN_HTTP_OK && p) {
		pthread_mutex_lock(&p->mu);
		d->q_finish = true;
		p->pending++;
		make_runnable(p, d);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	if (res->outcome == CAIRN_HTTP_OK) {
		verdict(d, dl_pipe_verify(d));
		return;
	}
	if (p) {
		/* Did the worker refuse the bytes?  Let it finish what it has. */
		pthread_mutex_lock(&p->mu);
		while (d->busy || d->runnable)
			pthread_cond_wait(&p->idle_cv, &p->mu);
		if (d->w_failed)
			d->content_error = true;
		pthread_mutex_unlock(&p->mu);
	}
	if (d->refused) {
		d->refused = false;
		d->verify_failed |= (uint64_t)1 << d->cur;
		next_source(d, CAIRN_EHASH, d->refuse_why);
		return;
	}
	if (d->content_error && retry_alone(d, cairn_error_msg(&d->perr)))
		return;
	if (d->content_error) {
		d->verify_failed |= (uint64_t)1 << d->cur;
		next_source(d, d->perr.code ? d->perr.code : CAIRN_EFORMAT,
			    cairn_error_msg(&d->perr));
		return;
	}
	if (d->bad_range) {
		/* A server that cannot answer a range may still send the
		 * whole file: ask once more, plainly. */
		d->bad_range = false;
		if (!d->plain_retried) {
			d->plain_retried = true;
			quiesce(d);
			if (dl_pipe_setup(d) == 0) {
				d->received = d->range_start = 0;
				send_request(d);
				return;
			}
		}
		next_source(d, CAIRN_ENET, "cannot resume (a range other than the one asked for)");
		return;
	}
	if (cairn_http_advice(res) == CAIRN_HTTP_RETRY_RANGE &&
	    d->resumes < d->cfg.max_resumes) {
		d->resumes++;
		if (d->received && !d->accept_ranges) {
			/* No ranges here: start over from byte 0. */
			if (!restart_pipeline(d)) {
				next_source(d, d->perr.code ? d->perr.code : CAIRN_ENOMEM,
					    cairn_error_msg(&d->perr));
				return;
			}
		}
		d->range_start = d->received;
		send_request(d);
		return;
	}
	/* a body over its bound is no transfer to go on with elsewhere */
	d->transit = res->outcome != CAIRN_HTTP_TOO_LARGE && res->outcome != CAIRN_HTTP_ABORTED;
	next_source(d, res->err.code ? res->err.code : CAIRN_ENET, cairn_error_msg(&res->err));
}

static void send_request(struct cairn_dl *d)
{
	const struct cairn_dl_source *s = &d->src[d->cur];
	uint64_t max = s->has_file_size ? s->file_size
		       : d->n_ex    ? d->max_nar + d->max_nar / 8 + 65536
				    : CAIRN_HTTP_BODY_MAX;
	if (max > CAIRN_HTTP_BODY_MAX)
		max = CAIRN_HTTP_BODY_MAX;
	struct cairn_http_request rq = {
	    .server = s->server,
	    .url = s->url,
	    .range_start = d->range_start,
	    .max_body = max,
	    /* a retry after a cut body waits a little longer each time */
	    .delay_ms = d->resumes ? (long)d->cfg.retry_delay_ms << (d->resumes - 1) : 0,
	    .on_headers = on_headers,
	    .on_data = on_data,
	    .on_done = on_done,
	    .ctx = d,
	};
	struct cairn_error e;
	cairn_error_init(&e);
	if (cairn_http_add(d->cfg.http, &rq, &e)) {
		next_source(d, e.code ? e.code : CAIRN_ENET, cairn_error_msg(&e));
		return;
	}
	d->in_flight = true;
}

/* ---- several sources at once (download-multi.c) -------------------------- */

int cairn_dl__feed(struct cairn_dl *d, const void *data, size_t len)
{
	if (d->pool)
		return queue_chunk(d, data, len, false) ? 0 : CAIRN_EFORMAT;
	return pipe_feed(d, data, len);
}

void cairn_dl__got(struct cairn_dl *d, size_t len)
{
	d->bytes += len;
	if (d->cfg.on_bytes)
		d->cfg.on_bytes(d->cfg.ctx, len);
}

void cairn_dl__multi_end(struct cairn_dl *d, int code, const char *why)
{
	struct cairn_dl_pool *p = d->pool;
	if (code) {
		multi_fallback(d, why);
		return;
	}
	if (p) {
		pthread_mutex_lock(&p->mu);
		d->q_finish = true;
		p->pending++;
		make_runnable(p, d);
		pthread_mutex_unlock(&p->mu);
		return;
	}
	verdict(d, dl_pipe_verify(d));
}

/*
 * Together the sources could not deliver (or what they delivered does not
 * verify, and which one sent the bad part cannot be told): start over from
 * the first source, one at a time, which can tell.  false when the
 * download was not a multi-source one.
 */
static bool multi_fallback(struct cairn_dl *d, const char *why)
{
	if (!d->multi)
		return false;
	reason_add(d, "several sources at once: %s", why);
	dl_multi_free(d->multi);
	d->multi = NULL;
	quiesce(d);
	dl_pipe_teardown(d);
	d->cur = 0;
	start_source(d);
	return true;
}

/* Ask all the sources that serve the first one's file at once; false when
 * this download is not one for that (then one source at a time). */
static bool multi_start(struct cairn_dl *d)
{
	const struct cairn_dl_source *s0 = &d->src[0];
	size_t use[CAIRN_DL_MAX_SOURCES], n = 0;
	if (!d->cfg.multi_min || !d->n_ex || !s0->has_file_size || s0->file_size < d->cfg.multi_min)
		return false;
	for (size_t i = 0; i < d->n_src; i++)
		if (same_file(s0, &d->src[i]) &&
		    !(d->src[i].server && cairn_http_server_down(d->src[i].server)))
			use[n++] = i;
	if (n < 2)
		return false;
	d->cur = 0;
	if (dl_pipe_setup(d)) {
		dl_pipe_teardown(d);
		return false;
	}
	struct dl_multi_config mc = {
	    .http = d->cfg.http,
	    .src = d->src,
	    .use = use,
	    .n_use = n,
	    .size = s0->file_size,
	    .max_resumes = d->cfg.max_resumes,
	    .retry_delay_ms = d->cfg.retry_delay_ms,
	    .parts = d->cfg.multi_parts,
	    .min_piece = d->cfg.multi_min_piece,
	    .per_source = d->cfg.multi_per_source,
	    .on_stats = d->cfg.on_source_stats,
	    .ctx = d->cfg.ctx,
	};
	struct cairn_error e;
	cairn_error_init(&e);
	if (dl_multi_start(&d->multi, d, &mc, &e)) {
		reason_add(d, "several sources at once: %s", cairn_error_msg(&e));
		d->multi = NULL;
		dl_pipe_teardown(d);
		return false;
	}
	return true;
}

size_t cairn_dl_pool_drain(struct cairn_dl_pool *p)
{
	size_t n = 0;
	if (!p)
		return 0;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		struct cairn_dl *d = p->done_head;
		if (d) {
			p->done_head = d->done_next;
			d->w_done = false;
			p->pending--;
		}
		pthread_mutex_unlock(&p->mu);
		if (!d)
			break;
		n++;
		verdict(d, d->w_rc);
	}
	return n;
}

int cairn_dl_start(struct cairn_dl **out, const struct cairn_dl_config *cfg,
		   const struct cairn_dl_expect *ex, const struct cairn_dl_source *src, size_t n,
		   const struct cairn_dl_sink *sink, struct cairn_error *err)
{
	if (!ex)
		return cairn_error_set(err, CAIRN_EINVAL, "download: bad arguments");
	return cairn_dl_start_any(out, cfg, ex, 1, src, n, sink, err);
}

int cairn_dl_start_any(struct cairn_dl **out, const struct cairn_dl_config *cfg,
		       const struct cairn_dl_expect *ex, size_t n_ex,
		       const struct cairn_dl_source *src, size_t n,
		       const struct cairn_dl_sink *sink, struct cairn_error *err)
{
	if (!cfg || !cfg->http || !cfg->on_done || (n_ex && !ex) || !sink || n == 0 ||
	    n_ex > CAIRN_DL_MAX_EXPECT || (!n_ex && (sink->tree || sink->nar)))
		return cairn_error_set(err, CAIRN_EINVAL, "download: bad arguments");
	/* one CA check per pipeline: an item accepted by its CA is one expectation */
	for (size_t i = 0; i < n_ex; i++)
		if (ex[i].by_ca && n_ex > 1)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "download: a CA check with other expectations");
	if (n > CAIRN_DL_MAX_SOURCES)
		return cairn_error_set(err, CAIRN_ELIMIT, "download: more than %d sources",
				       CAIRN_DL_MAX_SOURCES);
	struct cairn_dl *d = calloc(1, sizeof(*d));
	if (!d)
		return cairn_error_set(err, CAIRN_ENOMEM, "download: out of memory");
	d->cfg = *cfg;
	if (!d->cfg.max_resumes)
		d->cfg.max_resumes = 3;
	if (!d->cfg.retry_delay_ms)
		d->cfg.retry_delay_ms = 100;
	if (d->cfg.max_resumes > 16)
		d->cfg.max_resumes = 16; /* and so the doubling stays small */
	if (n_ex)
		memcpy(d->ex, ex, n_ex * sizeof(*ex));
	d->n_ex = n_ex;
	for (size_t i = 0; i < n_ex; i++)
		if (ex[i].nar_size > d->max_nar)
			d->max_nar = ex[i].nar_size;
	memcpy(d->src, src, n * sizeof(*src));
	d->n_src = n;
	d->sink = *sink;
	d->pool = cfg->pool;
	cairn_buf_init(&d->reason, CAIRN_DL_REASON_MAX);
	cairn_error_init(&d->perr);
	*out = d;
	if (!multi_start(d))
		start_source(d);
	return 0;
}

int cairn_dl_add_source(struct cairn_dl *d, const struct cairn_dl_source *src)
{
	if (d->n_src >= CAIRN_DL_MAX_SOURCES)
		return CAIRN_ELIMIT;
	d->src[d->n_src++] = *src;
	return 0;
}

void cairn_dl_free(struct cairn_dl *d)
{
	if (!d)
		return;
	/* A request in flight keeps d as its context: curl must let go of it
	 * first.  The caller frees downloads only after on_done or when its
	 * client is being torn down (cairn_http_free drops the requests). */
	quiesce(d);
	dl_pipe_teardown(d);
	dl_multi_free(d->multi);
	cairn_buf_release(&d->reason);
	free(d);
}
