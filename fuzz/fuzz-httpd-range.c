/*
 * fuzz-httpd-range - cairn_httpd_parse_range on a client's Range header
 * against a body size taken from the input's first 8 bytes.  Besides "no
 * crash": a range it accepts lies wholly inside the body and is not empty,
 * and a header that is not "bytes=..." is never taken.
 */
#include <stdint.h>
#include <string.h>

#include "cairn/httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t body = 0, start = 0, count = 0;
	if (size < 8)
		return 0;
	memcpy(&body, data, 8);
	/* small bodies too, where the edges are */
	if (body & 1)
		body = (body >> 1) % 4096;
	const char *v = (const char *)data + 8;
	size_t len = size - 8;
	enum cairn_httpd_range r = cairn_httpd_parse_range(v, len, body, &start, &count);
	if (r != CAIRN_HTTPD_RANGE_NONE && (len < 6 || memcmp(v, "bytes=", 6) != 0))
		__builtin_trap();
	if (r == CAIRN_HTTPD_RANGE_OK &&
	    (count == 0 || start >= body || count > body || start > body - count))
		__builtin_trap();
	return 0;
}
