/*
 * http-wait.c - running requests to their end on the calling thread: one
 * request waited for (the small documents and long polls of sync, the
 * feed follower, the warm edge and the monitor), or every request queued.
 * Built on cairn_http_add and cairn_http_step only (http.c).
 */
#include <stdbool.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/http.h"
#include "cairn/banned.h"

struct wait_one {
	const struct cairn_http_request *rq;
	struct cairn_buf *body;
	bool done, over;
	struct cairn_http_one one;
	struct cairn_error err;
};

static int wait_one_data(void *ctx, const void *data, size_t len)
{
	struct wait_one *w = ctx;
	if (w->body && cairn_buf_append(w->body, data, len)) {
		w->over = true;
		return CAIRN_ELIMIT;
	}
	if (w->body)
		return 0;
	return w->rq->on_data ? w->rq->on_data(w->rq->ctx, data, len) : 0;
}

static int wait_one_headers(void *ctx, const struct cairn_http_response *resp)
{
	struct wait_one *w = ctx;
	return w->rq->on_headers(w->rq->ctx, resp);
}

static void wait_one_done(void *ctx, const struct cairn_http_result *res)
{
	struct wait_one *w = ctx;
	w->done = true;
	w->one.status = res->status;
	w->one.bytes = res->body_bytes;
	w->one.wire_bytes = res->wire_bytes;
	w->one.outcome_code = res->err.code;
	w->err = res->err;
}

int cairn_http_wait_one(struct cairn_http *h, const struct cairn_http_request *rq,
			struct cairn_buf *body, bool (*stop)(void *ctx), void *stop_ctx,
			struct cairn_http_one *one, struct cairn_error *err)
{
	struct wait_one w = {.rq = rq, .body = body};
	struct cairn_http_request r = *rq;
	r.on_headers = rq->on_headers ? wait_one_headers : NULL;
	r.on_data = wait_one_data;
	r.on_done = wait_one_done;
	r.ctx = &w;
	cairn_error_init(&w.err);
	int rc = cairn_http_add(h, &r, err);
	while (rc >= 0 && !w.done) {
		if ((rc = cairn_http_step(h, 100, err)) < 0)
			break;
		if (!w.done && stop && stop(stop_ctx))
			rc = cairn_error_set(err, CAIRN_ECANCELED, "http: GET %s: stopped", rq->url);
	}
	if (one)
		*one = w.one;
	if (rc < 0)
		return rc;
	if (w.over)
		return cairn_error_set(err, CAIRN_ELIMIT, "http: GET %s: the body is larger than %zu bytes",
				       rq->url, body->max);
	if (w.err.code)
		return cairn_error_set(err, w.err.code, "%s", cairn_error_msg(&w.err));
	return 0;
}

int cairn_http_run(struct cairn_http *h, struct cairn_error *err)
{
	int rc;

	while ((rc = cairn_http_step(h, 1000, err)) > 0)
		;
	return rc < 0 ? rc : 0;
}
