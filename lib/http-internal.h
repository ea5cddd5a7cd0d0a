/*
 * http-internal.h - the response-header parser of lib/http.c, exposed for
 * the fuzz target and unit tests only; not part of the public API.
 */
#ifndef CAIRN_HTTP_INTERNAL_H
#define CAIRN_HTTP_INTERNAL_H

#include <stddef.h>

#include "cairn/http.h"

enum {
	CAIRN_HTTP__HDR_FIELD = 0,  /* a header field (or a line without ':') */
	CAIRN_HTTP__HDR_STATUS = 1, /* a status line: *r was reset */
	CAIRN_HTTP__HDR_END = 2,    /* the blank line ending the block */
};

/*
 * Parse one header line as curl hands it over (with its CR LF) into *r;
 * *has_location is set by a Location field and cleared by a status line.
 * Never reads past buf + len; strings in *r stay NUL-terminated.
 */
int cairn_http__header_line(struct cairn_http_response *r, const char *buf, size_t len,
			    int *has_location);

#endif
