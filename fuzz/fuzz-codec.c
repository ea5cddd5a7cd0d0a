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

#include "cairn/codec.h"

#define FUZZ_CAP (1u << 20)

static int count(void *ctx, const void *data, size_t len)
{
	(void)data;
	*(uint64_t *)ctx += len;
	return 0;
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
	return 0;
}
