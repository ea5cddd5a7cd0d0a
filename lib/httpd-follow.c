/*
 * httpd-follow.c - a file followed while it grows (lib/httpd-follow.h),
 * one loop for publish's bakes and the mirror's downloads.
 */
#include "httpd-follow.h"

#include <stdlib.h>

#include "cairn/error.h"
#include "cairn/banned.h"

int httpd_follow(const struct httpd_follow *src, uint64_t pos, uint64_t end,
		 int (*out_fn)(void *ctx, const void *data, size_t len), void *out_ctx, uint64_t *sent)
{
	char *buf = malloc(HTTPD_FOLLOW_CHUNK);
	size_t held = 0; /* 0, or 1 byte at buf[0] */
	uint64_t out = 0;
	int rc = 0;
	if (!buf)
		rc = CAIRN_ENOMEM;
	while (rc == 0) {
		int64_t n = src->wait(src->ctx, pos, end);
		if (n < 0) {
			rc = (int)n;
			break;
		}
		if (n == HTTPD_FOLLOW_DONE) {
			if (held && (rc = out_fn(out_ctx, buf, held)) == 0)
				out += held;
			break;
		}
		size_t want = HTTPD_FOLLOW_CHUNK - held;
		if ((uint64_t)n < want)
			want = (size_t)n;
		ssize_t r = src->read(src->ctx, pos, buf + held, want);
		if (r <= 0) { /* nothing where wait said there is: a broken source */
			rc = r < 0 ? (int)r : CAIRN_EIO;
			break;
		}
		pos += (uint64_t)r;
		size_t len = held + (size_t)r;
		held = src->hold_last ? 1 : 0;
		size_t now = len - held;
		if (now && (rc = out_fn(out_ctx, buf, now)) == 0)
			out += now;
		if (held)
			buf[0] = buf[len - 1];
	}
	free(buf);
	if (sent)
		*sent = out;
	return rc;
}

static int to_stream(void *ctx, const void *data, size_t len)
{
	return cairn_httpd_stream_write(ctx, data, len);
}

int httpd_follow_send(struct cairn_httpd_stream *s, const struct httpd_follow *src, uint64_t pos,
		      uint64_t end, uint64_t *sent)
{
	return httpd_follow(src, pos, end, to_stream, s, sent);
}
