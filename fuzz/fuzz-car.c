/*
 * fuzz-car.c - CARv1 files from untrusted sources (lib/car.c).  Besides
 * "no crash": every block handed on matches its CID and lies inside the
 * input; a CAR that reads with one root is written back, by cairn's own
 * writer, to the same bytes (the reader takes the canonical form only).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/ipfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rewrite {
	const uint8_t *in;
	size_t size;
	uint8_t *out;
	size_t len, cap;
};

static int on_block(const struct cairn_cid *cid, const uint8_t *d, size_t len, void *user)
{
	struct rewrite *r = user;
	if (d < r->in || d + len > r->in + r->size || cairn_cid_verify(cid, d, len) != 0)
		abort();
	uint8_t head[CAIRN_CAR_SECTION_HEAD_MAX];
	size_t hl = cairn_car_section_head(cid, len, head);
	if (r->len + hl + len > r->cap)
		abort(); /* a block is at least as long in the input */
	memcpy(r->out + r->len, head, hl);
	memcpy(r->out + r->len + hl, d, len);
	r->len += hl + len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (cairn_init() != 0)
			abort();
		ready = 1;
	}
	struct rewrite r = {.in = data, .size = size, .cap = size + CAIRN_CAR_HEADER_MAX};
	r.out = malloc(r.cap);
	if (!r.out)
		return 0;
	/* room for the header, written once the roots are known */
	r.len = CAIRN_CAR_HEADER_MAX;
	r.cap += CAIRN_CAR_HEADER_MAX;
	uint8_t *grown = realloc(r.out, r.cap);
	if (!grown) {
		free(r.out);
		return 0;
	}
	r.out = grown;
	struct cairn_cid roots[CAIRN_CAR_ROOTS_MAX];
	size_t n_roots = 99;
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_car_read(data, size, roots, &n_roots, on_block, &r, &err);
	if (rc == 0) {
		if (n_roots < 1 || n_roots > CAIRN_CAR_ROOTS_MAX)
			abort();
		if (n_roots == 1 && roots[0].version == 1) {
			uint8_t h[CAIRN_CAR_HEADER_MAX];
			size_t hl = cairn_car_header(&roots[0], h);
			size_t body = r.len - CAIRN_CAR_HEADER_MAX;
			if (hl + body != size || memcmp(h, data, hl) != 0 ||
			    memcmp(r.out + CAIRN_CAR_HEADER_MAX, data + hl, body) != 0)
				abort();
		}
	} else if (!err.msg[0] || err.code != rc) {
		abort();
	}
	free(r.out);
	return 0;
}
