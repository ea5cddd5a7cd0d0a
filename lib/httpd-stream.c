/*
 * httpd-stream.c - a response body produced by another thread.
 *
 * Two buffers, each at most stream_buffer bytes (allocated as they fill,
 * so a stream that trickles stays small): the producer appends to
 * `pending`; the loop swaps it with `sending` and hands `sending` to
 * h2o_send, which owns it until h2o calls proceed (the bytes are written)
 * or stop (the client is gone).  So at most two buffers per stream exist,
 * and a producer facing a full `pending` waits on a condition variable: a
 * slow client slows the producer down, it never makes it buffer more.
 *
 * Waking the loop.  The producer posts an h2o_multithread message to the
 * loop's receiver (h2o wakes the loop through its queue's pipe), but only
 * when the loop is idle for this stream (nothing in flight: otherwise
 * proceed will pick the data up) and no message is already queued.  Both
 * flags are read and written under the stream mutex, so a wakeup is never
 * lost and there is at most one message per stream in the queue.
 *
 * Lifetime.  A reference count: the producer holds one until
 * cairn_httpd_stream_end, the loop one until h2o frees the request (a
 * pool-shared token's dispose callback), and a queued message one.  Nothing
 * else frees the stream, so neither side can see it vanish.
 *
 * Files.  cairn_httpd_stream_write_file hands the loop a region of a file
 * instead of bytes: the producer waits (its own buffered bytes go first)
 * while the loop sends the region itself, on HTTP/1 from its mapping of
 * the file (httpd-send.c), so the bytes are copied once, page cache to
 * socket, where read-then-write copies them three times; on HTTP/2, where
 * h2o copies into frames in user space (a truncated mapping would be
 * SIGBUS there), it preads into the stream's buffer.  The loop owns a dup
 * of the fd until the region is sent or the request is freed.
 *
 * Errors.  A producer that ends with ok == 0, or ends short of the
 * Content-Length it announced, makes the loop send H2O_SEND_STATE_ERROR:
 * h2o closes an HTTP/1 connection without the final chunk (or before the
 * announced length) and resets an HTTP/2 stream.  A write that would go
 * past the announced length is refused whole and fails the stream the same
 * way: h2o would send the extra bytes, and on a keep-alive connection the
 * client would read them as the next response.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "httpd-int.h"
#include "cairn/banned.h"

/* first allocation of a stream buffer; doubles up to stream_buffer */
#define STREAM_MIN_BUFFER (16 * 1024)

struct cairn_httpd_stream {
	h2o_generator_t super; /* loop side */
	h2o_req_t *req;	       /* loop side; NULL once h2o stopped us */
	struct httpd_worker *w;
	h2o_linklist_t link; /* in w->streams, loop side */
	h2o_multithread_message_t msg;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int refs;
	char *pending, *sending;
	size_t plen, slen, max;
	size_t pcap, scap; /* grown on demand up to max: idle streams stay small */
	uint64_t declared; /* Content-Length, or UINT64_MAX */
	uint64_t written;
	unsigned stall_ms;
	struct httpd_watchdog wd; /* loop side: armed while a send is in flight */
	/* deferred: the head, set once by the producer (begun), read by the loop */
	int status;
	char *ctype;
	char *hdrs; /* "name\0value\0" pairs */
	size_t hdrs_len;
	/* a file region being sent (write_file): the loop's fd, -1 when none */
	int ffd;
	uint64_t foff, fleft;
	struct httpd_map *fmap; /* loop side */
	unsigned fchecked : 1, ffailed : 1;
	unsigned msg_queued : 1, inflight : 1, ended : 1, ok : 1, gone : 1, done : 1, linked : 1,
	    overrun : 1, deferred : 1, begun : 1, started : 1, is_head : 1;
};

struct stream_token {
	struct cairn_httpd_stream *s;
};

static void stream_unref(struct cairn_httpd_stream *s)
{
	pthread_mutex_lock(&s->mu);
	int left = --s->refs;
	pthread_mutex_unlock(&s->mu);
	if (left)
		return;
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s->pending);
	free(s->sending);
	free(s->ctype);
	free(s->hdrs);
	free(s);
}

/* Loop thread, deferred stream: put the head the producer chose on the request. */
static void stream_apply_head(struct cairn_httpd_stream *s)
{
	h2o_req_t *req = s->req;

	if (!s->begun) {
		/* the producer ended without deciding: it could not get an answer */
		s->status = 502;
		s->declared = 0;
	}
	req->res.status = s->status;
	req->res.reason = httpd_reason(s->status);
	req->res.content_length = s->declared == UINT64_MAX ? SIZE_MAX : (size_t)s->declared;
	if (s->ctype)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       h2o_strdup(&req->pool, s->ctype, SIZE_MAX).base, strlen(s->ctype));
	for (size_t off = 0; off < s->hdrs_len;) {
		const char *name = s->hdrs + off;
		const char *value = name + strlen(name) + 1;
		off += strlen(name) + strlen(value) + 2;
		cairn_httpd_add_header((struct cairn_httpd_req *)(void *)req, name, value);
	}
}

/* Loop thread, under s->mu: done with the file region; wake the producer. */
static void stream_file_release(struct cairn_httpd_stream *s)
{
	if (s->ffd < 0)
		return;
	if (s->fmap)
		httpd_map_put(s->w, s->fmap, s->ffd);
	s->fmap = NULL;
	close(s->ffd);
	s->ffd = -1;
	s->fchecked = 0;
	pthread_cond_broadcast(&s->cond);
}

static ssize_t pread_full(int fd, char *buf, size_t len, off_t off)
{
	ssize_t r;
	while ((r = pread(fd, buf, len, off)) < 0 && errno == EINTR)
		;
	return r;
}

/* Loop thread, under s->mu (released here): send the next piece of the file region. */
static void stream_send_file(struct cairn_httpd_stream *s)
{
	h2o_req_t *req = s->req;
	h2o_iovec_t v;
	size_t n;

	if (!s->fchecked) {
		struct stat st;
		s->fchecked = 1;
		if (fstat(s->ffd, &st) < 0 || (uint64_t)st.st_size < s->foff + s->fleft)
			goto fail;
		if (req->version < 0x200 && st.st_size >= HTTPD_MAP_MIN)
			s->fmap = httpd_map_get(s->w, s->ffd, &st);
	}
	if (s->fmap) {
		n = s->fleft < HTTPD_MAP_PIECE ? (size_t)s->fleft : HTTPD_MAP_PIECE;
		v = h2o_iovec_init(s->fmap->base + s->foff, n);
	} else {
		if (s->scap < s->max) {
			char *nb = realloc(s->sending, s->max);
			if (!nb)
				goto fail;
			s->sending = nb;
			s->scap = s->max;
		}
		n = s->fleft < s->max ? (size_t)s->fleft : s->max;
		ssize_t r = pread_full(s->ffd, s->sending, n, (off_t)s->foff);
		if (r <= 0)
			goto fail; /* shrank under us: never a clean end */
		n = (size_t)r;
		v = h2o_iovec_init(s->sending, n);
	}
	s->foff += n;
	s->fleft -= n;
	s->inflight = 1;
	pthread_mutex_unlock(&s->mu);
	httpd_watchdog_arm(&s->wd, req);
	h2o_send(req, &v, 1, H2O_SEND_STATE_IN_PROGRESS);
	return;
fail:
	s->ffailed = 1;
	s->done = 1;
	stream_file_release(s);
	pthread_mutex_unlock(&s->mu);
	h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

/* Loop thread: send what is pending if nothing is in flight. */
static void stream_pump(struct cairn_httpd_stream *s)
{
	h2o_send_state_t state;
	h2o_iovec_t v;
	char *t;

	pthread_mutex_lock(&s->mu);
	if (s->gone || s->done || s->inflight || !s->req) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	if (s->deferred && !s->started) {
		if (!s->begun && !s->ended) {
			pthread_mutex_unlock(&s->mu);
			return;
		}
		/* the head is read-only once begun; h2o is only touched here, on the loop */
		s->started = 1;
		pthread_mutex_unlock(&s->mu);
		stream_apply_head(s);
		pthread_mutex_lock(&s->mu);
		if (s->is_head || !s->begun) {
			static h2o_generator_t none = {NULL, NULL};
			s->done = 1;
			s->gone = 1;
			pthread_cond_broadcast(&s->cond);
			pthread_mutex_unlock(&s->mu);
			h2o_start_response(s->req, &none);
			h2o_send(s->req, NULL, 0, H2O_SEND_STATE_FINAL);
			return;
		}
		pthread_mutex_unlock(&s->mu);
		h2o_start_response(s->req, &s->super);
		pthread_mutex_lock(&s->mu);
		if (s->plen == 0 && !s->ended) {
			/* headers leave now, before the first byte is produced */
			s->inflight = 1;
			pthread_mutex_unlock(&s->mu);
			httpd_watchdog_arm(&s->wd, s->req);
			h2o_send(s->req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
			return;
		}
	}
	if (s->ffd >= 0 && s->fleft == 0)
		stream_file_release(s); /* its last piece is written */
	if (s->plen == 0 && s->ffd >= 0 && !(s->ended && !s->ok)) {
		stream_send_file(s);
		return;
	}
	if (s->plen == 0 && !s->ended) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	t = s->sending;
	s->sending = s->pending;
	s->pending = t;
	size_t c = s->scap;
	s->scap = s->pcap;
	s->pcap = c;
	s->slen = s->plen;
	s->plen = 0;
	if (!s->ended) {
		state = H2O_SEND_STATE_IN_PROGRESS;
		s->inflight = 1;
	} else {
		int complete = s->ok && !s->overrun &&
			       (s->declared == UINT64_MAX || s->written == s->declared);
		state = complete ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_ERROR;
		if (!complete)
			s->slen = 0;
		s->done = 1;
	}
	v = h2o_iovec_init(s->sending, s->slen);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	if (state == H2O_SEND_STATE_IN_PROGRESS)
		httpd_watchdog_arm(&s->wd, s->req);
	h2o_send(s->req, &v, v.len ? 1 : 0, state);
}

static void stream_proceed(h2o_generator_t *self, h2o_req_t *req)
{
	struct cairn_httpd_stream *s = (struct cairn_httpd_stream *)self;
	httpd_watchdog_disarm(&s->wd);
	pthread_mutex_lock(&s->mu);
	s->inflight = 0;
	s->slen = 0;
	pthread_mutex_unlock(&s->mu);
	stream_pump(s);
}

static void stream_gone(struct cairn_httpd_stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->gone = 1;
	s->req = NULL;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

static void stream_stop(h2o_generator_t *self, h2o_req_t *req)
{
	stream_gone((struct cairn_httpd_stream *)self);
}

static void stream_token_dispose(void *p)
{
	struct cairn_httpd_stream *s = ((struct stream_token *)p)->s;
	httpd_watchdog_disarm(&s->wd);
	stream_gone(s);
	/* h2o is done with the request, and with our buffers and mapping */
	pthread_mutex_lock(&s->mu);
	stream_file_release(s);
	pthread_mutex_unlock(&s->mu);
	if (s->linked) {
		h2o_linklist_unlink(&s->link);
		s->linked = 0;
	}
	stream_unref(s);
}

void httpd_stream_rx_cb(h2o_multithread_receiver_t *rx, h2o_linklist_t *messages)
{
	while (!h2o_linklist_is_empty(messages)) {
		h2o_multithread_message_t *m =
		    H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
		struct cairn_httpd_stream *s =
		    H2O_STRUCT_FROM_MEMBER(struct cairn_httpd_stream, msg, m);
		h2o_linklist_unlink(&m->link);
		pthread_mutex_lock(&s->mu);
		s->msg_queued = 0;
		pthread_mutex_unlock(&s->mu);
		stream_pump(s);
		stream_unref(s);
	}
}

void httpd_streams_cancel_all(struct httpd_worker *w)
{
	for (h2o_linklist_t *n = w->streams.next; n != &w->streams; n = n->next)
		stream_gone(H2O_STRUCT_FROM_MEMBER(struct cairn_httpd_stream, link, n));
}

/* Under s->mu: should the producer post a wakeup?  Takes the message's reference. */
static int stream_need_wakeup(struct cairn_httpd_stream *s)
{
	if (s->gone || s->inflight || s->msg_queued)
		return 0;
	s->msg_queued = 1;
	s->refs++;
	return 1;
}

/* Loop thread: a stream for req, owned by the producer and the request's pool. */
static struct cairn_httpd_stream *stream_new(h2o_req_t *req, struct httpd_worker *w,
					     uint64_t declared)
{
	struct cairn_httpd_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->max = w->h->cfg.stream_buffer;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->refs = 2; /* producer + loop */
	s->ffd = -1;
	s->w = w;
	s->req = req;
	s->stall_ms = w->h->cfg.stream_stall_ms;
	s->declared = declared;
	s->super.proceed = stream_proceed;
	s->super.stop = stream_stop;

	/* h2o frees the request only after a response, or when the client
	 * goes (HTTP/2 reset, server shutdown): either way the token says so */
	struct stream_token *tok =
	    h2o_mem_alloc_shared(&req->pool, sizeof(*tok), stream_token_dispose);
	tok->s = s;
	h2o_linklist_insert(&w->streams, &s->link);
	s->linked = 1;
	return s;
}

int cairn_httpd_stream_start(struct cairn_httpd_req *creq, int status, const char *content_type,
			     int64_t content_length, struct cairn_httpd_stream **out)
{
	h2o_req_t *req = httpd_h2o(creq);
	struct httpd_worker *w = httpd_tls_worker;
	struct cairn_httpd_stream *s;

	if (!req || !out || !w || status < 200 || status > 999)
		return CAIRN_EINVAL;
	s = stream_new(req, w, content_length < 0 ? UINT64_MAX : (uint64_t)content_length);
	if (!s)
		return CAIRN_ENOMEM;

	req->res.status = status;
	req->res.reason = httpd_reason(status);
	req->res.content_length = content_length < 0 ? SIZE_MAX : (size_t)content_length;
	if (content_type)
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       content_type, strlen(content_type));
	if (httpd_is_head(req)) {
		static h2o_generator_t none = {NULL, NULL};
		s->done = 1;
		s->gone = 1;
		h2o_start_response(req, &none);
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
	} else {
		h2o_start_response(req, &s->super);
		/* headers leave now, before the first byte is produced */
		s->inflight = 1;
		httpd_watchdog_arm(&s->wd, req);
		h2o_send(req, NULL, 0, H2O_SEND_STATE_IN_PROGRESS);
	}
	*out = s;
	return 0;
}

int cairn_httpd_stream_defer(struct cairn_httpd_req *creq, struct cairn_httpd_stream **out)
{
	h2o_req_t *req = httpd_h2o(creq);
	struct httpd_worker *w = httpd_tls_worker;
	struct cairn_httpd_stream *s;

	if (!req || !out || !w)
		return CAIRN_EINVAL;
	if (!(s = stream_new(req, w, UINT64_MAX)))
		return CAIRN_ENOMEM;
	s->deferred = 1;
	s->is_head = httpd_is_head(req) != 0;
	w->deferred = req;
	*out = s;
	return 0;
}

int cairn_httpd_stream_begin(struct cairn_httpd_stream *s, int status, const char *content_type,
			     int64_t content_length, const char *const *headers)
{
	size_t hl = 0;
	int ret = 0, wake = 0;

	if (!s || status < 200 || status > 999)
		return CAIRN_EINVAL;
	for (size_t i = 0; headers && headers[i]; i += 2) {
		if (!headers[i + 1])
			return CAIRN_EINVAL;
		hl += strlen(headers[i]) + strlen(headers[i + 1]) + 2;
	}
	char *ct = content_type ? strdup(content_type) : NULL;
	char *h = hl ? malloc(hl) : NULL;
	if ((content_type && !ct) || (hl && !h)) {
		free(ct);
		free(h);
		return CAIRN_ENOMEM;
	}
	for (size_t i = 0, off = 0; headers && headers[i]; i += 2)
		for (int k = 0; k < 2; k++) {
			size_t n = strlen(headers[i + k]) + 1;
			memcpy(h + off, headers[i + k], n);
			off += n;
		}

	pthread_mutex_lock(&s->mu);
	if (!s->deferred || s->begun || s->ended) {
		ret = CAIRN_EINVAL;
	} else if (s->gone) {
		ret = CAIRN_ECANCELED;
	} else {
		s->status = status;
		s->declared = content_length < 0 ? UINT64_MAX : (uint64_t)content_length;
		s->ctype = ct;
		s->hdrs = h;
		s->hdrs_len = hl;
		ct = h = NULL;
		s->begun = 1;
		wake = stream_need_wakeup(s);
	}
	pthread_mutex_unlock(&s->mu);
	if (wake)
		h2o_multithread_send_message(&s->w->stream_rx, &s->msg);
	free(ct);
	free(h);
	return ret;
}

int cairn_httpd_stream_write(struct cairn_httpd_stream *s, const void *data, size_t len)
{
	const char *p = data;
	int ret = 0;

	pthread_mutex_lock(&s->mu);
	if (s->deferred && !s->begun) {
		ret = CAIRN_EINVAL;
		goto out;
	}
	if (s->is_head) {
		ret = CAIRN_ECANCELED;
		goto out;
	}
	if (!s->gone && s->declared != UINT64_MAX && len > s->declared - s->written) {
		s->overrun = 1;
		ret = CAIRN_ELIMIT;
		goto out;
	}
	while (len > 0) {
		if (s->plen == s->max && !s->gone) {
			struct timespec dl;
			clock_gettime(CLOCK_REALTIME, &dl);
			dl.tv_sec += s->stall_ms / 1000;
			dl.tv_nsec += (long)(s->stall_ms % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			while (s->plen == s->max && !s->gone) {
				if (pthread_cond_timedwait(&s->cond, &s->mu, &dl) == ETIMEDOUT &&
				    s->plen == s->max && !s->gone) {
					ret = CAIRN_ENET;
					goto out;
				}
			}
		}
		if (s->gone || s->ended) {
			ret = CAIRN_ECANCELED;
			goto out;
		}
		size_t n = s->max - s->plen;
		if (n > len)
			n = len;
		if (s->plen + n > s->pcap) {
			size_t cap = s->pcap ? s->pcap * 2 : STREAM_MIN_BUFFER;
			if (cap < s->plen + n)
				cap = s->plen + n;
			if (cap > s->max)
				cap = s->max;
			char *nb = realloc(s->pending, cap);
			if (!nb) {
				ret = CAIRN_ENOMEM;
				goto out;
			}
			s->pending = nb;
			s->pcap = cap;
		}
		memcpy(s->pending + s->plen, p, n);
		s->plen += n;
		s->written += n;
		p += n;
		len -= n;
		if (stream_need_wakeup(s)) {
			/* post outside the lock: h2o's queue has its own mutex */
			pthread_mutex_unlock(&s->mu);
			h2o_multithread_send_message(&s->w->stream_rx, &s->msg);
			pthread_mutex_lock(&s->mu);
		}
	}
out:
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/* Under s->mu: wait for the loop to make room (cond) until deadline dl. */
static void stall_deadline(const struct cairn_httpd_stream *s, struct timespec *dl)
{
	clock_gettime(CLOCK_REALTIME, dl);
	dl->tv_sec += s->stall_ms / 1000;
	dl->tv_nsec += (long)(s->stall_ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

int cairn_httpd_stream_write_file(struct cairn_httpd_stream *s, int fd, uint64_t off,
				  uint64_t len)
{
	struct timespec dl;
	int ret = 0, wake = 0;

	if (len == 0)
		return 0;
	int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return CAIRN_EIO;
	pthread_mutex_lock(&s->mu);
	if ((s->deferred && !s->begun) || s->ffd >= 0) {
		ret = CAIRN_EINVAL;
		goto out;
	}
	if (s->is_head || s->gone || s->ended) {
		ret = CAIRN_ECANCELED;
		goto out;
	}
	if (s->declared != UINT64_MAX && len > s->declared - s->written) {
		s->overrun = 1;
		ret = CAIRN_ELIMIT;
		goto out;
	}
	s->ffd = dfd;
	dfd = -1;
	s->foff = off;
	s->fleft = len;
	s->written += len;
	wake = stream_need_wakeup(s);
	if (wake) {
		pthread_mutex_unlock(&s->mu);
		h2o_multithread_send_message(&s->w->stream_rx, &s->msg);
		pthread_mutex_lock(&s->mu);
	}
	/* a client that takes nothing for stall_ms is stalled, as in write */
	uint64_t seen = s->fleft;
	stall_deadline(s, &dl);
	while (s->ffd >= 0 && !s->gone) {
		if (pthread_cond_timedwait(&s->cond, &s->mu, &dl) != ETIMEDOUT)
			continue;
		if (s->ffd < 0 || s->gone)
			break;
		if (s->fleft == seen) {
			ret = CAIRN_ENET;
			goto out;
		}
		seen = s->fleft;
		stall_deadline(s, &dl);
	}
	if (s->ffailed)
		ret = CAIRN_EIO;
	else if (s->ffd >= 0 || s->gone)
		ret = CAIRN_ECANCELED;
out:
	pthread_mutex_unlock(&s->mu);
	if (dfd >= 0)
		close(dfd);
	return ret;
}

void cairn_httpd_stream_end(struct cairn_httpd_stream *s, int ok)
{
	int wake;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->ended = 1;
	s->ok = ok != 0;
	wake = stream_need_wakeup(s);
	pthread_mutex_unlock(&s->mu);
	if (wake)
		h2o_multithread_send_message(&s->w->stream_rx, &s->msg);
	stream_unref(s);
}

int cairn_httpd_stream_reply(struct cairn_httpd_stream *s, int status, const char *content_type,
			     const void *body, size_t len, const char *const *headers)
{
	int rc = cairn_httpd_stream_begin(s, status, content_type, (int64_t)len, headers);
	if (rc == 0 && len)
		rc = cairn_httpd_stream_write(s, body, len);
	cairn_httpd_stream_end(s, rc == 0);
	return rc;
}

int cairn_httpd_stream_error(struct cairn_httpd_stream *s, int status, const char *cache_control)
{
	char body[96];
	const char *hdrs[] = {"Cache-Control", cache_control ? cache_control : "no-store", NULL};

	if (status < 400 || status > 599) {
		cairn_httpd_stream_end(s, 0);
		return CAIRN_EINVAL;
	}
	size_t n = httpd_error_body(status, body, sizeof(body));
	return cairn_httpd_stream_reply(s, status, "text/plain; charset=utf-8", body, n, hdrs);
}
