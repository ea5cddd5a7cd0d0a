/*
 * cdc.c - cutting a byte stream into chunks: fixed-size, or content-defined
 * with FastCDC (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
 * Chunking Approach for Data Deduplication", USENIX ATC 2016).
 *
 * FastCDC as cairn runs it (docs/FORMATS.md says why these numbers):
 *   - min 64 KiB, average 256 KiB (2^18), max 1 MiB;
 *   - a gear hash h = (h << 1) + gear[byte], reset to 0 at each chunk's
 *     start and first fed the byte at offset min (the bytes before min are
 *     never a cut point, so they are skipped: the paper's "cut-point
 *     skipping");
 *   - normalised chunking, level 2: before the average the cut condition
 *     is (h & mask_s) == 0 with 20 one bits (harder), after it
 *     (h & mask_l) == 0 with 16 (easier); the mask bits are the top bits of
 *     h, which depend on the last 64 bytes, where the low bits would depend
 *     on the last few only;
 *   - the cut is after the byte whose hash met the condition, or at max;
 *   - gear[i] = the first 8 bytes, little-endian, of
 *     SHA-256("cairn fastcdc gear" || byte i): anyone can rebuild the table,
 *     and it is fixed forever (changing it changes every CID).
 * A chunk is cut only once max bytes are buffered or the input has ended,
 * so the chunks depend on the bytes alone, never on how they were written.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/hash.h"
#include "cairn/ipfs.h"
#include "ipfs-int.h"
#include "cairn/banned.h"

#define FASTCDC_MIN ((uint32_t)64 << 10)
#define FASTCDC_AVG ((uint32_t)256 << 10)
#define FASTCDC_AVG_BITS 18
#define FASTCDC_MAX ((uint32_t)1 << 20)
#define FASTCDC_NC 2 /* normalisation level */
#define FIXED_DEFAULT ((uint32_t)256 << 10)
/* Buffer at least this much, so that small fixed chunks are not copied byte by byte. */
#define CDC_BUF_MIN ((size_t)1 << 20)

static const char gear_seed[] = "cairn fastcdc gear";

void cairn_chunker_spec_default(struct cairn_chunker_spec *out)
{
	out->kind = CAIRN_CHUNKER_FASTCDC;
	out->min = FASTCDC_MIN;
	out->avg = FASTCDC_AVG;
	out->max = FASTCDC_MAX;
}

int cairn_chunker_spec_parse(const char *s, struct cairn_chunker_spec *out,
			     struct cairn_error *err)
{
	if (!strcmp(s, "fastcdc")) {
		cairn_chunker_spec_default(out);
		return 0;
	}
	uint64_t n = FIXED_DEFAULT;
	if (!strncmp(s, "size-", 5)) {
		const char *p = s + 5;
		n = 0;
		if (!*p || (*p == '0'))
			goto bad;
		for (; *p; p++) {
			if (*p < '0' || *p > '9' || n > CAIRN_CHUNK_MAX)
				goto bad;
			n = n * 10 + (uint64_t)(*p - '0');
		}
		if (n > CAIRN_CHUNK_MAX)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "chunker '%s': chunks of at most %u bytes", s,
					       (unsigned)CAIRN_CHUNK_MAX);
	} else if (strcmp(s, "size") != 0) {
		goto bad;
	}
	out->kind = CAIRN_CHUNKER_FIXED;
	out->min = out->avg = out->max = (uint32_t)n;
	return 0;
bad:
	return cairn_error_set(err, CAIRN_EINVAL,
			       "chunker '%s': expected size-N (1 to %u) or fastcdc", s,
			       (unsigned)CAIRN_CHUNK_MAX);
}

static void gear_fill(uint64_t gear[256])
{
	uint8_t in[sizeof(gear_seed)];
	memcpy(in, gear_seed, sizeof(gear_seed) - 1);
	for (unsigned i = 0; i < 256; i++) {
		uint8_t d[CAIRN_SHA256_LEN];
		in[sizeof(gear_seed) - 1] = (uint8_t)i;
		cairn_sha256(in, sizeof(in), d);
		uint64_t v = 0;
		for (int k = 7; k >= 0; k--)
			v = (v << 8) | d[k];
		gear[i] = v;
	}
}

/* ones in the top bits of a 64-bit word */
static uint64_t top_mask(unsigned bits)
{
	return ~(uint64_t)0 << (64 - bits);
}

int cdc_init(struct cdc *c, const struct cairn_chunker_spec *spec, struct cairn_error *err)
{
	memset(c, 0, sizeof(*c));
	if (spec->max == 0 || spec->max > CAIRN_CHUNK_MAX || spec->min > spec->avg ||
	    spec->avg > spec->max ||
	    (spec->kind == CAIRN_CHUNKER_FIXED && (spec->min != spec->max)) ||
	    (spec->kind == CAIRN_CHUNKER_FASTCDC &&
	     (spec->min != FASTCDC_MIN || spec->avg != FASTCDC_AVG || spec->max != FASTCDC_MAX)))
		return cairn_error_set(err, CAIRN_EINVAL, "chunker: unsupported sizes");
	c->spec = *spec;
	if (spec->kind == CAIRN_CHUNKER_FASTCDC) {
		gear_fill(c->gear);
		c->mask_s = top_mask(FASTCDC_AVG_BITS + FASTCDC_NC);
		c->mask_l = top_mask(FASTCDC_AVG_BITS - FASTCDC_NC);
	}
	c->cap = 2 * (size_t)spec->max;
	if (c->cap < CDC_BUF_MIN)
		c->cap = CDC_BUF_MIN;
	c->buf = malloc(c->cap);
	if (!c->buf)
		return cairn_error_set(err, CAIRN_ENOMEM, "chunker: out of memory");
	return 0;
}

void cdc_release(struct cdc *c)
{
	free(c->buf);
	c->buf = NULL;
}

size_t cdc_cut(const struct cdc *c, const uint8_t *buf, size_t n)
{
	if (n > c->spec.max)
		n = c->spec.max;
	if (c->spec.kind == CAIRN_CHUNKER_FIXED || n <= c->spec.min)
		return n;
	size_t normal = c->spec.avg < n ? c->spec.avg : n;
	uint64_t h = 0;
	size_t i = c->spec.min;
	for (; i < normal; i++) {
		h = (h << 1) + c->gear[buf[i]];
		if (!(h & c->mask_s))
			return i + 1;
	}
	for (; i < n; i++) {
		h = (h << 1) + c->gear[buf[i]];
		if (!(h & c->mask_l))
			return i + 1;
	}
	return n;
}

static int emit(struct cdc *c, size_t n, cdc_chunk_cb cb, void *user)
{
	int rc = cb(c->buf + c->start, n, user);
	c->start += n;
	c->chunks++;
	return rc;
}

int cdc_push(struct cdc *c, const uint8_t *data, size_t len, cdc_chunk_cb cb, void *user)
{
	while (len > 0) {
		if (c->end == c->cap) {
			/* fewer than max bytes are left unchunked: move them to the front */
			memmove(c->buf, c->buf + c->start, c->end - c->start);
			c->end -= c->start;
			c->start = 0;
		}
		size_t k = c->cap - c->end < len ? c->cap - c->end : len;
		memcpy(c->buf + c->end, data, k);
		c->end += k;
		data += k;
		len -= k;
		while (c->end - c->start >= c->spec.max) {
			size_t cut = cdc_cut(c, c->buf + c->start, c->end - c->start);
			int rc = emit(c, cut, cb, user);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int cdc_finish(struct cdc *c, cdc_chunk_cb cb, void *user)
{
	while (c->end > c->start) {
		size_t cut = cdc_cut(c, c->buf + c->start, c->end - c->start);
		int rc = emit(c, cut, cb, user);
		if (rc)
			return rc;
	}
	if (c->chunks == 0)
		return emit(c, 0, cb, user);
	return 0;
}
