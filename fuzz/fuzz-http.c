/*
 * fuzz-http.c - what a server sends before the body: response header lines
 * (fed one at a time, as curl hands them to lib/http.c) and nix-cache-info.
 *
 * Input: the whole buffer is a nix-cache-info text; split at '\n' (the
 * newline kept) it is a sequence of header lines.  The parsed response
 * must stay consistent: statuses of three digits or 0, ranges ordered,
 * strings terminated inside their arrays.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/http.h"
#include "../lib/http-internal.h"

static void check(const struct cairn_http_response *r)
{
	if (r->status < 0 || r->status > 999)
		abort();
	if (r->content_length < -1 || r->max_age < -1 || r->range_total < -1)
		abort();
	if ((r->range_first < 0) != (r->range_last < 0) || r->range_last < r->range_first)
		abort();
	if (!memchr(r->content_type, '\0', sizeof(r->content_type)) ||
	    !memchr(r->content_encoding, '\0', sizeof(r->content_encoding)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_http_cache_info ci;
	struct cairn_http_response r;
	const char *p = (const char *)data, *end = p + size;
	int loc = 0;
	char *copy;

	if (cairn_http_cache_info_parse(p, size, &ci, NULL) == 0) {
		if (!memchr(ci.store_dir, '\0', sizeof(ci.store_dir)))
			abort();
		/* what sync writes of it: no line with the key left, and the
		 * rest parses the same but for the field gone */
		char *t = malloc(size ? size : 1);
		if (!t)
			return 0;
		memcpy(t, data, size);
		size_t n = cairn_http_cache_info_drop(t, size, "CairnNarinfos");
		struct cairn_http_cache_info c2;
		if (n > size || cairn_http_cache_info_parse(t, n, &c2, NULL) != 0 || c2.narinfos ||
		    strcmp(c2.store_dir, ci.store_dir) != 0)
			abort();
		free(t);
	}
	/* Start from a status line so the fields are initialised. */
	cairn_http__header_line(&r, "HTTP/1.1 200 OK\r\n", 17, &loc);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		/* An exact-size copy so ASan sees any read past the line. */
		copy = malloc(len ? len : 1);
		if (!copy)
			return 0;
		memcpy(copy, p, len);
		cairn_http__header_line(&r, copy, len, &loc);
		free(copy);
		check(&r);
		p += len;
	}
	return 0;
}
