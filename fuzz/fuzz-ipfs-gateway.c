/*
 * fuzz-ipfs-gateway - the IPFS gateway's request parsing (ipfs_gw_parse_req):
 * the path after /ipfs/, the query, Accept and Accept-Encoding, as four
 * parts of the input cut at NUL bytes, then entity-bytes resolved against a
 * file size from the input's first 8 bytes.  Besides "no crash": an
 * accepted request has a format, a resolved range lies inside the file and
 * is not empty.
 */
#include <stdint.h>
#include <string.h>

#include "../lib/ipfs-gateway.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t fsize = 0;
	if (size < 8)
		return 0;
	memcpy(&fsize, data, 8);
	if (fsize & 1) /* small files too, where the edges are */
		fsize = (fsize >> 1) % 4096;
	fsize &= ((uint64_t)1 << 62) - 1;
	const char *part[4] = {NULL, NULL, NULL, NULL};
	size_t len[4] = {0, 0, 0, 0};
	const char *p = (const char *)data + 8, *end = (const char *)data + size;
	for (int i = 0; i < 4 && p <= end; i++) {
		const char *z = memchr(p, 0, (size_t)(end - p));
		part[i] = p;
		len[i] = (size_t)((z ? z : end) - p);
		p += len[i] + 1;
	}
	struct ipfs_gw_req r;
	const char *msg = NULL;
	int st = ipfs_gw_parse_req(part[0], len[0], part[1], len[1], part[2], len[2], part[3],
				   len[3], &r, &msg);
	if (st != 0) {
		if (!msg || (st != 400 && st != 404 && st != 406))
			__builtin_trap();
		return 0;
	}
	if (r.format != GW_RAW && r.format != GW_CAR)
		__builtin_trap();
	uint64_t lo, hi;
	if (r.ranged && ipfs_gw_range(&r, 100, 100 + fsize, &lo, &hi) &&
	    (lo < 100 || hi > 100 + fsize || lo >= hi))
		__builtin_trap();
	return 0;
}
