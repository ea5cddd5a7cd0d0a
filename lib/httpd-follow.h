/*
 * httpd-follow.h - send a file to a stream while another thread is still
 * writing it: publish's clients follow a bake into its cache file (no 404
 * while baking), the mirror's clients follow a download into its
 * temporary file.  Not installed.
 *
 * The writer side is the caller's, behind two callbacks; the loop here
 * waits for bytes, reads them in chunks of HTTPD_FOLLOW_CHUNK, writes them
 * to the stream and, when asked, keeps the last byte read back until the
 * writer says the whole file is good, so that a response with a length
 * never ends cleanly on bytes that fail a later check.
 */
#ifndef CAIRN_HTTPD_FOLLOW_H
#define CAIRN_HTTPD_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cairn/httpd.h"

#define HTTPD_FOLLOW_CHUNK (256 * 1024)
#define HTTPD_FOLLOW_DONE 0 /* wait: no more bytes before the limit, all good */

struct httpd_follow {
	/*
	 * Block until the file has bytes at pos (before limit) or is
	 * finished.  The number of bytes readable at pos (> 0, at most
	 * limit - pos); HTTPD_FOLLOW_DONE when none will come before limit
	 * and the file is complete and good; a negative cairn_err when it
	 * failed, was given up, or this reader was dropped.
	 */
	int64_t (*wait)(void *ctx, uint64_t pos, uint64_t limit);
	/*
	 * Read up to len bytes at pos (which wait said are there): the count
	 * read (> 0), or a negative cairn_err (CAIRN_EIO for a file cut short).
	 */
	ssize_t (*read)(void *ctx, uint64_t pos, void *buf, size_t len);
	void *ctx;
	bool hold_last; /* hold the last byte until wait says HTTPD_FOLLOW_DONE */
};

/*
 * Give bytes [pos, end) of the followed file to out as they are written
 * (end UINT64_MAX: to the end of the file).  0 once they all went out; a
 * negative cairn_err when the file failed or out did (what it returned).
 * *sent (may be NULL): bytes out took.
 */
int httpd_follow(const struct httpd_follow *src, uint64_t pos, uint64_t end,
		 int (*out)(void *ctx, const void *data, size_t len), void *out_ctx, uint64_t *sent);

/* httpd_follow into a stream (cairn_httpd_stream_write): a negative
 * cairn_err also when the client went; the stream is still the caller's to
 * end. */
int httpd_follow_send(struct cairn_httpd_stream *s, const struct httpd_follow *src, uint64_t pos,
		      uint64_t end, uint64_t *sent);

#endif
