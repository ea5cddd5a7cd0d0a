/*
 * fuzz-codec.c - decompress arbitrary bytes with every method under a small
 * output cap.  The first input byte picks how the rest is split into
 * writes, so chunk boundaries are fuzzed too.  Any outcome is fine except
 * a crash, a sanitizer report, output past the cap, or success with more
 * output than the cap allows.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"

#define FUZZ_CAP (1u << 20)

static int count(void *ctx, const void *data, size_t len)
{
	(void)data;
	*(uint64_t *)ctx += len;
	return 0;
}

struct collect {
	uint8_t *p;
	size_t len, cap;
};

static int collect(void *ctx, const void *data, size_t len)
{
	struct collect *c = ctx;
	if (len > c->cap - c->len)
		return CAIRN_ELIMIT;
	memcpy(c->p + c->len, data, len);
	c->len += len;
	return 0;
}

/* Compress with the fastest level, decompress, compare. */
static void roundtrip(enum cairn_codec_method m, const uint8_t *data, size_t size)
{
	int lo, hi, level = CAIRN_CODEC_LEVEL_DEFAULT;
	cairn_codec_level_range(m, &lo, &hi);
	if (m != CAIRN_CODEC_NONE)
		level = m == CAIRN_CODEC_ZSTD ? 1 : lo;
	/* Worst-case expansion of these formats is far below 2x + 4 KiB. */
	struct collect z = {malloc(2 * size + 4096), 0, 2 * size + 4096};
	struct collect u = {malloc(size + 1), 0, size};
	struct cairn_codec *c;
	if (!z.p || !u.p)
		abort();
	if (cairn_codec_new(&c, m, CAIRN_CODEC_COMPRESS, level, CAIRN_CODEC_UNLIMITED, NULL) < 0 ||
	    cairn_codec_write(c, data, size, collect, &z, NULL) < 0 ||
	    cairn_codec_finish(c, collect, &z, NULL) < 0)
		abort();
	cairn_codec_free(c);
	if (cairn_codec_new(&c, m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, size, NULL) <
		0 ||
	    cairn_codec_write(c, z.p, z.len, collect, &u, NULL) < 0 ||
	    cairn_codec_finish(c, collect, &u, NULL) < 0)
		abort();
	cairn_codec_free(c);
	if (u.len != size || (size && memcmp(u.p, data, size) != 0))
		abort();
	free(z.p);
	free(u.p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (size_t)data[0] * 37 + 1;
	data++;
	size--;
	for (int m = 0; m < CAIRN_CODEC_METHOD_COUNT_; m++) {
		struct cairn_codec *c;
		struct cairn_error err;
		uint64_t got = 0;
		cairn_error_init(&err);
		if (cairn_codec_new(&c, (enum cairn_codec_method)m, CAIRN_CODEC_DECOMPRESS,
				    CAIRN_CODEC_LEVEL_DEFAULT, FUZZ_CAP, &err) < 0)
			abort();
		int rc = 0;
		for (size_t off = 0; rc == 0 && off < size; off += step) {
			size_t n = size - off < step ? size - off : step;
			rc = cairn_codec_write(c, data + off, n, count, &got, &err);
		}
		if (rc == 0)
			rc = cairn_codec_finish(c, count, &got, &err);
		if (got > FUZZ_CAP || cairn_codec_total_out(c) != got)
			abort();
		if (rc < 0 && (err.code != rc || err.msg[0] == '\0'))
			abort(); /* every failure explains itself */
		cairn_codec_free(c);
	}
	roundtrip((enum cairn_codec_method)(step % CAIRN_CODEC_METHOD_COUNT_), data, size);
	return 0;
}
