/*
 * codec.c - one streaming interface over liblzma, libzstd, libbz2, zlib
 * and lzlib.  See include/cairn/codec.h for the formats and the rules on
 * concatenation, trailing data and bounds.
 *
 * Design: every codec owns one output buffer of CAIRN_CODEC_CHUNK bytes.
 * The library writes straight into its free end; when it is full (or at
 * finish) the bytes go to the caller's callback, after the max_output
 * check.  So the only copy is the one the library itself makes, and a
 * decompression bomb is stopped at the first chunk that crosses the bound.
 * "none" has no buffer: the caller's input goes to the callback as is.
 */
#include <bzlib.h>
#include <limits.h>
#include <stdint.h> /* lzlib.h needs uint8_t first */
#include <lzlib.h>
#include <lzma.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "cairn/codec.h"
#include "codec-int.h"
#include "cairn/banned.h"

/* zlib and libbz2 count input in unsigned int: feed them at most this. */
#define CODEC_SLICE_MAX (1u << 30)
/* lzlib members are capped by the format at 2 PiB; the encoder's maximum. */
#define CODEC_LZIP_MEMBER_MAX 0x0008000000000000LL
/* Consecutive library calls without progress before we call it a bug. */
#define CODEC_STALL_MAX 64

struct cairn_codec {
	enum cairn_codec_method method;
	enum cairn_codec_direction dir;
	int level;
	unsigned threads;
	uint64_t max_out;
	uint64_t total_in, total_out;
	bool started;  /* first write done: no more set_threads */
	bool finished; /* finish succeeded */
	int failed;    /* 0 or the error that made the codec unusable */
	/*
	 * Decompression: the input so far ends exactly at the end of a
	 * stream/member/frame (so finish may succeed).  members counts the
	 * completed ones, to tell trailing garbage from a corrupt first header.
	 */
	bool at_end;
	uint64_t members;
	unsigned char *buf;
	size_t fill;
	union {
		lzma_stream xz;
		ZSTD_CCtx *zc;
		ZSTD_DCtx *zd;
		bz_stream bz;
		z_stream z;
		struct LZ_Encoder *lze;
		struct LZ_Decoder *lzd;
	} u;
	bool live; /* u holds an initialised library state */
};

static const struct {
	int dict, match;
} lzip_levels[10] = {
    {65535, 16}, /* lzlib switches to its fast encoder for exactly this pair */
    {1 << 20, 5},  {3 << 19, 6},  {1 << 21, 8},	  {3 << 20, 12},  {1 << 22, 20},
    {1 << 23, 36}, {1 << 24, 68}, {3 << 23, 132}, {1 << 25, 273},
};

/* ---- lifecycle ---- */

static const char *cname(const struct cairn_codec *c)
{
	return cairn_codec_method_name(c->method);
}

static int lib_init(struct cairn_codec *c, struct cairn_error *err);

int cairn_codec_new(struct cairn_codec **out, enum cairn_codec_method method,
		    enum cairn_codec_direction dir, int level, uint64_t max_output,
		    struct cairn_error *err)
{
	if (!out || !cairn_codec_method_name(method) ||
	    (dir != CAIRN_CODEC_COMPRESS && dir != CAIRN_CODEC_DECOMPRESS))
		return cairn_error_set(err, CAIRN_EINVAL, "codec: invalid method or direction");
	if (level != CAIRN_CODEC_LEVEL_DEFAULT) {
		int lo, hi;
		cairn_codec_level_range(method, &lo, &hi);
		if (dir == CAIRN_CODEC_DECOMPRESS || method == CAIRN_CODEC_NONE || level < lo ||
		    level > hi)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "codec: %s level %d is not valid here",
					       cairn_codec_method_name(method), level);
	} else {
		level = cairn_codec__level_default(method);
	}
	struct cairn_codec *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_error_set(err, CAIRN_ENOMEM, "codec: out of memory");
	c->method = method;
	c->dir = dir;
	c->level = level;
	c->max_out = max_output;
	int rc = 0;
	if (method != CAIRN_CODEC_NONE) {
		c->buf = malloc(CAIRN_CODEC_CHUNK);
		if (!c->buf) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "codec: out of memory");
			goto out;
		}
		rc = lib_init(c, err);
	}
out:
	if (rc < 0) {
		cairn_codec_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void lib_end(struct cairn_codec *c)
{
	if (!c->live)
		return;
	bool comp = c->dir == CAIRN_CODEC_COMPRESS;
	switch (c->method) {
	case CAIRN_CODEC_XZ: lzma_end(&c->u.xz); break;
	case CAIRN_CODEC_ZSTD:
		if (comp)
			ZSTD_freeCCtx(c->u.zc);
		else
			ZSTD_freeDCtx(c->u.zd);
		break;
	case CAIRN_CODEC_BZIP2:
		if (comp)
			BZ2_bzCompressEnd(&c->u.bz);
		else
			BZ2_bzDecompressEnd(&c->u.bz);
		break;
	case CAIRN_CODEC_GZIP:
		if (comp)
			deflateEnd(&c->u.z);
		else
			inflateEnd(&c->u.z);
		break;
	case CAIRN_CODEC_LZIP:
		if (comp)
			LZ_compress_close(c->u.lze);
		else
			LZ_decompress_close(c->u.lzd);
		break;
	default: break;
	}
	c->live = false;
}

void cairn_codec_free(struct cairn_codec *c)
{
	if (!c)
		return;
	lib_end(c);
	free(c->buf);
	free(c);
}

uint64_t cairn_codec_total_in(const struct cairn_codec *c)
{
	return c->total_in;
}

uint64_t cairn_codec_total_out(const struct cairn_codec *c)
{
	return c->total_out;
}

static const char *lzma_msg(lzma_ret r)
{
	switch (r) {
	case LZMA_MEM_ERROR: return "out of memory";
	case LZMA_MEMLIMIT_ERROR: return "memory usage limit reached";
	case LZMA_FORMAT_ERROR: return "file format not recognized";
	case LZMA_OPTIONS_ERROR: return "unsupported options";
	case LZMA_DATA_ERROR: return "compressed data is corrupt";
	case LZMA_BUF_ERROR: return "unexpected end of input";
	case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
	default: return "internal error";
	}
}

static int xz_fail(struct cairn_codec *c, lzma_ret r, struct cairn_error *err)
{
	int code = CAIRN_EFORMAT;
	if (r == LZMA_MEM_ERROR)
		code = CAIRN_ENOMEM;
	else if (r == LZMA_MEMLIMIT_ERROR)
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "xz: decoding needs more than %u bytes of memory",
				       (unsigned)CAIRN_CODEC_XZ_MEMLIMIT);
	else if (r == LZMA_OPTIONS_ERROR && c->dir == CAIRN_CODEC_COMPRESS)
		code = CAIRN_EINVAL;
	else if (r == LZMA_PROG_ERROR)
		code = CAIRN_EINVAL;
	return cairn_error_set(err, code, "xz: %s", lzma_msg(r));
}

static int xz_init(struct cairn_codec *c, struct cairn_error *err)
{
	lzma_stream init = LZMA_STREAM_INIT;
	lzma_ret r;
	c->u.xz = init;
	if (c->dir == CAIRN_CODEC_DECOMPRESS) {
		r = lzma_stream_decoder(&c->u.xz, CAIRN_CODEC_XZ_MEMLIMIT, LZMA_CONCATENATED);
	} else if (c->threads > 1) {
		lzma_mt mt = {
		    .threads = c->threads,
		    .preset = (uint32_t)c->level,
		    .check = LZMA_CHECK_CRC64,
		};
		r = lzma_stream_encoder_mt(&c->u.xz, &mt);
	} else {
		r = lzma_easy_encoder(&c->u.xz, (uint32_t)c->level, LZMA_CHECK_CRC64);
	}
	if (r != LZMA_OK)
		return xz_fail(c, r, err);
	c->live = true;
	return 0;
}

static int zstd_fail(size_t r, struct cairn_error *err)
{
	ZSTD_ErrorCode e = ZSTD_getErrorCode(r);
	int code = CAIRN_EFORMAT;
	if (e == ZSTD_error_memory_allocation)
		code = CAIRN_ENOMEM;
	else if (e == ZSTD_error_frameParameter_windowTooLarge)
		code = CAIRN_ELIMIT;
	else if (e == ZSTD_error_parameter_unsupported || e == ZSTD_error_parameter_outOfBound)
		code = CAIRN_EUNSUPPORTED;
	return cairn_error_set(err, code, "zstd: %s", ZSTD_getErrorName(r));
}

static int zstd_init(struct cairn_codec *c, struct cairn_error *err)
{
	size_t r;
	if (c->dir == CAIRN_CODEC_COMPRESS) {
		c->u.zc = ZSTD_createCCtx();
		if (!c->u.zc)
			return cairn_error_set(err, CAIRN_ENOMEM, "zstd: out of memory");
		c->live = true;
		r = ZSTD_CCtx_setParameter(c->u.zc, ZSTD_c_compressionLevel, c->level);
		if (!ZSTD_isError(r))
			/* The zstd tool writes a content checksum; so do we, so a
			 * client can tell a corrupt download from a bad NAR. */
			r = ZSTD_CCtx_setParameter(c->u.zc, ZSTD_c_checksumFlag, 1);
		if (!ZSTD_isError(r) && c->threads > 1)
			r = ZSTD_CCtx_setParameter(c->u.zc, ZSTD_c_nbWorkers, (int)c->threads);
	} else {
		c->u.zd = ZSTD_createDCtx();
		if (!c->u.zd)
			return cairn_error_set(err, CAIRN_ENOMEM, "zstd: out of memory");
		c->live = true;
		r = ZSTD_DCtx_setParameter(c->u.zd, ZSTD_d_windowLogMax,
					   CAIRN_CODEC_ZSTD_WINDOW_LOG_MAX);
	}
	if (ZSTD_isError(r))
		return zstd_fail(r, err);
	return 0;
}

static const char *bz_msg(int r)
{
	switch (r) {
	case BZ_MEM_ERROR: return "out of memory";
	case BZ_DATA_ERROR: return "compressed data is corrupt";
	case BZ_DATA_ERROR_MAGIC: return "not in bzip2 format";
	case BZ_PARAM_ERROR: return "invalid parameter";
	case BZ_SEQUENCE_ERROR: return "call out of sequence";
	default: return "internal error";
	}
}

static int bz_fail(int r, struct cairn_error *err)
{
	int code = r == BZ_MEM_ERROR				      ? CAIRN_ENOMEM
		   : (r == BZ_DATA_ERROR || r == BZ_DATA_ERROR_MAGIC) ? CAIRN_EFORMAT
								      : CAIRN_EINVAL;
	return cairn_error_set(err, code, "bzip2: %s", bz_msg(r));
}

static int bz_init(struct cairn_codec *c, struct cairn_error *err)
{
	int r;
	memset(&c->u.bz, 0, sizeof(c->u.bz));
	if (c->dir == CAIRN_CODEC_COMPRESS)
		r = BZ2_bzCompressInit(&c->u.bz, c->level, 0, 0);
	else
		r = BZ2_bzDecompressInit(&c->u.bz, 0, 0);
	if (r != BZ_OK)
		return bz_fail(r, err);
	c->live = true;
	return 0;
}

static int z_fail(struct cairn_codec *c, int r, struct cairn_error *err)
{
	const char *msg = c->u.z.msg;
	if (r == Z_MEM_ERROR)
		return cairn_error_set(err, CAIRN_ENOMEM, "gzip: out of memory");
	if (r == Z_STREAM_ERROR)
		return cairn_error_set(err, CAIRN_EINVAL, "gzip: %s", msg ? msg : "stream error");
	return cairn_error_set(err, CAIRN_EFORMAT, "gzip: %s",
			       msg ? msg : "compressed data is corrupt");
}

static int z_init(struct cairn_codec *c, struct cairn_error *err)
{
	int r;
	memset(&c->u.z, 0, sizeof(c->u.z));
	/* windowBits 15 + 16: the gzip wrapper (RFC 1952), not raw zlib. */
	if (c->dir == CAIRN_CODEC_COMPRESS)
		r = deflateInit2(&c->u.z, c->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	else
		r = inflateInit2(&c->u.z, 15 + 16);
	if (r != Z_OK)
		return z_fail(c, r, err);
	c->live = true;
	return 0;
}

static int lz_init(struct cairn_codec *c, struct cairn_error *err)
{
	if (c->dir == CAIRN_CODEC_COMPRESS)
		c->u.lze = LZ_compress_open(lzip_levels[c->level].dict, lzip_levels[c->level].match,
					    CODEC_LZIP_MEMBER_MAX);
	else
		c->u.lzd = LZ_decompress_open();
	void *p = c->dir == CAIRN_CODEC_COMPRESS ? (void *)c->u.lze : (void *)c->u.lzd;
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "lzip: out of memory");
	c->live = true;
	enum LZ_Errno e = c->dir == CAIRN_CODEC_COMPRESS ? LZ_compress_errno(c->u.lze)
							 : LZ_decompress_errno(c->u.lzd);
	if (e != LZ_ok)
		return cairn_error_set(err, e == LZ_mem_error ? CAIRN_ENOMEM : CAIRN_EINVAL,
				       "lzip: %s", LZ_strerror(e));
	return 0;
}

static int lib_init(struct cairn_codec *c, struct cairn_error *err)
{
	switch (c->method) {
	case CAIRN_CODEC_XZ: return xz_init(c, err);
	case CAIRN_CODEC_ZSTD: return zstd_init(c, err);
	case CAIRN_CODEC_BZIP2: return bz_init(c, err);
	case CAIRN_CODEC_GZIP: return z_init(c, err);
	case CAIRN_CODEC_LZIP: return lz_init(c, err);
	default: return 0;
	}
}

int cairn_codec_set_threads(struct cairn_codec *c, unsigned n, struct cairn_error *err)
{
	if (!c || c->started || c->failed || c->finished)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "codec: threads can only be set before the first write");
	if (c->dir != CAIRN_CODEC_COMPRESS ||
	    (c->method != CAIRN_CODEC_XZ && c->method != CAIRN_CODEC_ZSTD) || n == c->threads ||
	    (n <= 1 && c->threads <= 1))
		return 0;
	if (n > 256)
		return cairn_error_set(err, CAIRN_EINVAL, "codec: %u threads is too many", n);
	lib_end(c);
	c->threads = n;
	int rc = lib_init(c, err);
	if (rc < 0)
		c->failed = rc;
	return rc;
}

/* ---- output ---- */

/* Hand len bytes to the callback after the max_output check. */
static int deliver(struct cairn_codec *c, const void *data, size_t len, cairn_codec_out_fn out,
		   void *ctx, struct cairn_error *err)
{
	if (len == 0)
		return 0;
	if (len > c->max_out - c->total_out || c->total_out > c->max_out)
		return cairn_error_set(
		    err, CAIRN_ELIMIT, "%s: %s data exceeds %llu bytes", cname(c),
		    c->dir == CAIRN_CODEC_DECOMPRESS ? "decompressed" : "compressed",
		    (unsigned long long)c->max_out);
	int rc = out(ctx, data, len);
	if (rc < 0)
		return cairn_error_set(err, rc, "%s: output callback failed", cname(c));
	if (rc > 0)
		return cairn_error_set(err, CAIRN_EINVAL, "%s: output callback returned %d",
				       cname(c), rc);
	c->total_out += len;
	return 0;
}

static int flush(struct cairn_codec *c, cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	int rc = deliver(c, c->buf, c->fill, out, ctx, err);
	if (rc == 0)
		c->fill = 0;
	return rc;
}

/* Flush when the buffer is full, so the library always has room. */
static int make_room(struct cairn_codec *c, cairn_codec_out_fn out, void *ctx,
		     struct cairn_error *err)
{
	return c->fill == CAIRN_CODEC_CHUNK ? flush(c, out, ctx, err) : 0;
}

/* ---- per method: run input through; last = this is finish() ---- */

static int none_run(struct cairn_codec *c, const unsigned char *in, size_t len,
		    cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	while (len > 0) {
		size_t n = len < CAIRN_CODEC_CHUNK ? len : CAIRN_CODEC_CHUNK;
		int rc = deliver(c, in, n, out, ctx, err);
		if (rc < 0)
			return rc;
		in += n;
		len -= n;
	}
	return 0;
}

static int xz_run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
		  cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	lzma_stream *s = &c->u.xz;
	s->next_in = in;
	s->avail_in = len;
	for (;;) {
		int rc = make_room(c, out, ctx, err);
		if (rc < 0)
			return rc;
		if (!last && s->avail_in == 0 && c->fill < CAIRN_CODEC_CHUNK)
			return 0;
		size_t room = CAIRN_CODEC_CHUNK - c->fill;
		s->next_out = c->buf + c->fill;
		s->avail_out = room;
		lzma_ret r = lzma_code(s, last ? LZMA_FINISH : LZMA_RUN);
		c->fill += room - s->avail_out;
		if (r == LZMA_STREAM_END)
			return 0; /* only with LZMA_FINISH */
		if (r == LZMA_BUF_ERROR && last && c->dir == CAIRN_CODEC_DECOMPRESS)
			return cairn_error_set(err, CAIRN_ETRUNCATED,
					       "xz: compressed data is truncated");
		if (r != LZMA_OK)
			return xz_fail(c, r, err);
		if (!last && s->avail_in == 0 && s->avail_out > 0)
			return 0;
	}
}

static int zstd_run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
		    cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	ZSTD_inBuffer ib = {in, len, 0};
	bool comp = c->dir == CAIRN_CODEC_COMPRESS;
	for (;;) {
		int rc = make_room(c, out, ctx, err);
		if (rc < 0)
			return rc;
		ZSTD_outBuffer ob = {c->buf + c->fill, CAIRN_CODEC_CHUNK - c->fill, 0};
		/* ib.pos counts over this whole write: progress is this pass's,
		 * or a pass after a frame ended exactly on a full buffer (no
		 * input left, nothing out) would undo that end. */
		size_t in0 = ib.pos;
		size_t r;
		if (comp)
			r = ZSTD_compressStream2(c->u.zc, &ob, &ib,
						 last ? ZSTD_e_end : ZSTD_e_continue);
		else
			r = ZSTD_decompressStream(c->u.zd, &ob, &ib);
		c->fill += ob.pos;
		if (ZSTD_isError(r))
			return zstd_fail(r, err);
		if (!comp) {
			/* 0: a frame just ended and nothing is pending. */
			if (r == 0) {
				c->at_end = true;
				c->members++;
			} else if (ib.pos > in0 || ob.pos > 0) {
				c->at_end = false;
			}
		}
		bool full = ob.pos == ob.size;
		if (comp && last) {
			if (r == 0)
				return 0;
		} else if (ib.pos == ib.size && !full) {
			return 0;
		}
	}
}

static int bz_run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
		  cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	bz_stream *s = &c->u.bz;
	bool comp = c->dir == CAIRN_CODEC_COMPRESS;
	for (;;) {
		int rc = make_room(c, out, ctx, err);
		if (rc < 0)
			return rc;
		if (s->avail_in == 0 && len > 0) {
			size_t n = len < CODEC_SLICE_MAX ? len : CODEC_SLICE_MAX;
			s->next_in = (char *)in;
			s->avail_in = (unsigned)n;
			in += n;
			len -= n;
		}
		if (!comp && c->at_end) {
			if (s->avail_in == 0)
				return 0;
			/* Another stream follows: start a fresh decoder. */
			BZ2_bzDecompressEnd(s);
			c->live = false;
			char *keep_in = s->next_in;
			unsigned keep_avail = s->avail_in;
			rc = bz_init(c, err);
			if (rc < 0)
				return rc;
			s->next_in = keep_in;
			s->avail_in = keep_avail;
			c->at_end = false;
		}
		unsigned room = (unsigned)(CAIRN_CODEC_CHUNK - c->fill);
		s->next_out = (char *)c->buf + c->fill;
		s->avail_out = room;
		int r;
		if (comp)
			r = BZ2_bzCompress(s, last ? BZ_FINISH : BZ_RUN);
		else
			r = BZ2_bzDecompress(s);
		c->fill += room - s->avail_out;
		bool full = s->avail_out == 0;
		if (comp) {
			if (r == BZ_STREAM_END)
				return 0;
			if (r != BZ_RUN_OK && r != BZ_FINISH_OK)
				return bz_fail(r, err);
			/* Not "&& !full": BZ_RUN without input and without
			 * pending output is BZ_PARAM_ERROR, so leave any
			 * pending output for the next write or finish. */
			if (!last && s->avail_in == 0 && len == 0)
				return 0;
			continue;
		}
		if (r == BZ_STREAM_END) {
			c->at_end = true;
			c->members++;
		} else if (r == BZ_DATA_ERROR_MAGIC && c->members > 0) {
			return cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "bzip2: trailing data after the end of the compressed stream");
		} else if (r != BZ_OK) {
			return bz_fail(r, err);
		}
		if (s->avail_in == 0 && len == 0 && !full)
			return 0;
	}
}

static int z_run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
		 cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	z_stream *s = &c->u.z;
	bool comp = c->dir == CAIRN_CODEC_COMPRESS;
	for (;;) {
		int rc = make_room(c, out, ctx, err);
		if (rc < 0)
			return rc;
		if (s->avail_in == 0 && len > 0) {
			size_t n = len < CODEC_SLICE_MAX ? len : CODEC_SLICE_MAX;
			s->next_in = (unsigned char *)in;
			s->avail_in = (uInt)n;
			in += n;
			len -= n;
		}
		if (!comp && c->at_end) {
			if (s->avail_in == 0)
				return 0;
			/* Another gzip member follows (RFC 1952 2.2). */
			int r = inflateReset(s);
			if (r != Z_OK)
				return z_fail(c, r, err);
			c->at_end = false;
		}
		uInt room = (uInt)(CAIRN_CODEC_CHUNK - c->fill);
		s->next_out = c->buf + c->fill;
		s->avail_out = room;
		int r;
		if (comp)
			r = deflate(s, last ? Z_FINISH : Z_NO_FLUSH);
		else
			r = inflate(s, Z_NO_FLUSH);
		c->fill += room - s->avail_out;
		bool full = s->avail_out == 0;
		if (comp) {
			if (r == Z_STREAM_END)
				return 0;
			if (r != Z_OK && r != Z_BUF_ERROR)
				return z_fail(c, r, err);
			if (!last && s->avail_in == 0 && len == 0 && !full)
				return 0;
			continue;
		}
		if (r == Z_STREAM_END) {
			c->at_end = true;
			c->members++;
		} else if (r == Z_DATA_ERROR && c->members > 0 && s->total_out == 0) {
			/* A "member" after a complete one that is not one. */
			return cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "gzip: trailing data after the end of the compressed stream (%s)",
			    s->msg ? s->msg : "bad header");
		} else if (r == Z_NEED_DICT) {
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "gzip: stream needs a preset dictionary");
		} else if (r != Z_OK && !(r == Z_BUF_ERROR && s->avail_in == 0)) {
			return z_fail(c, r, err);
		}
		if (s->avail_in == 0 && len == 0 && !full)
			return 0;
	}
}

static int lz_fail(struct cairn_codec *c, struct cairn_error *err)
{
	enum LZ_Errno e = c->dir == CAIRN_CODEC_COMPRESS ? LZ_compress_errno(c->u.lze)
							 : LZ_decompress_errno(c->u.lzd);
	int code = CAIRN_EFORMAT;
	if (e == LZ_mem_error)
		code = CAIRN_ENOMEM;
	else if (e == LZ_unexpected_eof)
		code = CAIRN_ETRUNCATED;
	else if (e == LZ_bad_argument || e == LZ_sequence_error || e == LZ_library_error)
		code = CAIRN_EINVAL;
	if (e == LZ_header_error && c->members > 0)
		return cairn_error_set(
		    err, code, "lzip: trailing data after the end of the compressed stream");
	return cairn_error_set(err, code, "lzip: %s", LZ_strerror(e));
}

/*
 * lzlib copies input into its own buffer (write) and hands out output
 * (read); alternate the two until all input is in and nothing comes out.
 */
static int lz_run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
		  cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	bool comp = c->dir == CAIRN_CODEC_COMPRESS;
	int stall = 0;
	if (last) {
		int r = comp ? LZ_compress_finish(c->u.lze) : LZ_decompress_finish(c->u.lzd);
		if (r < 0)
			return lz_fail(c, err);
	}
	for (;;) {
		int rc = make_room(c, out, ctx, err);
		if (rc < 0)
			return rc;
		int wrote = 0;
		if (len > 0) {
			int ws = comp ? LZ_compress_write_size(c->u.lze)
				      : LZ_decompress_write_size(c->u.lzd);
			if (ws < 0)
				return lz_fail(c, err);
			int n = len < (size_t)ws ? (int)len : ws;
			if (n > 0) {
				wrote = comp ? LZ_compress_write(c->u.lze, in, n)
					     : LZ_decompress_write(c->u.lzd, in, n);
				if (wrote < 0)
					return lz_fail(c, err);
				in += wrote;
				len -= (size_t)wrote;
			}
		}
		int room = (int)(CAIRN_CODEC_CHUNK - c->fill);
		int got = comp ? LZ_compress_read(c->u.lze, c->buf + c->fill, room)
			       : LZ_decompress_read(c->u.lzd, c->buf + c->fill, room);
		if (got < 0)
			return lz_fail(c, err);
		c->fill += (size_t)got;
		if (!comp) {
			int dict = LZ_decompress_dictionary_size(c->u.lzd);
			if (dict > 0 && (unsigned)dict > CAIRN_CODEC_LZIP_DICT_MAX)
				return cairn_error_set(
				    err, CAIRN_ELIMIT,
				    "lzip: dictionary of %d bytes exceeds the limit of %u", dict,
				    (unsigned)CAIRN_CODEC_LZIP_DICT_MAX);
			if (LZ_decompress_member_finished(c->u.lzd) == 1)
				c->members = 1; /* later header errors are trailing data */
		}
		if (last) {
			int done = comp ? LZ_compress_finished(c->u.lze)
					: LZ_decompress_finished(c->u.lzd);
			if (done == 1)
				return 0;
		} else if (len == 0 && got < room) {
			return 0;
		}
		if (wrote == 0 && got == 0) {
			if (++stall > CODEC_STALL_MAX) {
				if (!comp && last)
					return cairn_error_set(
					    err, CAIRN_ETRUNCATED,
					    "lzip: compressed data is truncated");
				return cairn_error_set(err, CAIRN_EINVAL,
						       "lzip: library made no progress");
			}
		} else {
			stall = 0;
		}
	}
}

static int run(struct cairn_codec *c, const unsigned char *in, size_t len, bool last,
	       cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	switch (c->method) {
	case CAIRN_CODEC_NONE: return none_run(c, in, len, out, ctx, err);
	case CAIRN_CODEC_XZ: return xz_run(c, in, len, last, out, ctx, err);
	case CAIRN_CODEC_ZSTD: return zstd_run(c, in, len, last, out, ctx, err);
	case CAIRN_CODEC_BZIP2: return bz_run(c, in, len, last, out, ctx, err);
	case CAIRN_CODEC_GZIP: return z_run(c, in, len, last, out, ctx, err);
	case CAIRN_CODEC_LZIP: return lz_run(c, in, len, last, out, ctx, err);
	default: return CAIRN_EINVAL;
	}
}

static int check_usable(struct cairn_codec *c, cairn_codec_out_fn out, struct cairn_error *err)
{
	if (!c || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "codec: no codec or no callback");
	if (c->failed)
		return cairn_error_set(err, c->failed,
				       "%s: codec is unusable after an earlier error", cname(c));
	if (c->finished)
		return cairn_error_set(err, CAIRN_EINVAL, "%s: codec already finished", cname(c));
	return 0;
}

int cairn_codec_write(struct cairn_codec *c, const void *in, size_t len, cairn_codec_out_fn out,
		      void *ctx, struct cairn_error *err)
{
	int rc = check_usable(c, out, err);
	if (rc < 0)
		return rc;
	if (len == 0)
		return 0;
	if (!in)
		return cairn_error_set(err, CAIRN_EINVAL, "codec: no input buffer");
	c->started = true;
	rc = run(c, in, len, false, out, ctx, err);
	if (rc < 0) {
		c->failed = rc;
		return rc;
	}
	c->total_in += len;
	return 0;
}

int cairn_codec_finish(struct cairn_codec *c, cairn_codec_out_fn out, void *ctx,
		       struct cairn_error *err)
{
	int rc = check_usable(c, out, err);
	if (rc < 0)
		return rc;
	c->started = true;
	bool dec = c->dir == CAIRN_CODEC_DECOMPRESS;
	if (dec && c->method != CAIRN_CODEC_NONE && c->total_in == 0) {
		rc = cairn_error_set(err, CAIRN_ETRUNCATED, "%s: no compressed data", cname(c));
		goto out;
	}
	if (dec && (c->method == CAIRN_CODEC_ZSTD || c->method == CAIRN_CODEC_BZIP2 ||
		    c->method == CAIRN_CODEC_GZIP)) {
		/* These decoders already said where each stream ends. */
		if (!c->at_end) {
			rc = cairn_error_set(err, CAIRN_ETRUNCATED,
					     "%s: compressed data is truncated", cname(c));
			goto out;
		}
	} else if (c->method != CAIRN_CODEC_NONE) {
		rc = run(c, NULL, 0, true, out, ctx, err);
		if (rc < 0)
			goto out;
		if (dec && c->method == CAIRN_CODEC_LZIP &&
		    LZ_decompress_total_in_size(c->u.lzd) != c->total_in) {
			rc = cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "lzip: trailing data after the end of the compressed stream");
			goto out;
		}
	}
	if (c->method != CAIRN_CODEC_NONE)
		rc = flush(c, out, ctx, err);
out:
	if (rc < 0)
		c->failed = rc;
	else
		c->finished = true;
	return rc;
}

/* ---- one-shot ---- */

static int buf_sink(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len);
}

int cairn_codec_oneshot(enum cairn_codec_method method, enum cairn_codec_direction dir, int level,
			const void *in, size_t len, uint64_t max_output, struct cairn_buf *out,
			struct cairn_error *err)
{
	struct cairn_codec *c = NULL;
	size_t before = out->len;
	int rc = cairn_codec_new(&c, method, dir, level, max_output, err);
	if (rc < 0)
		return rc;
	rc = cairn_codec_write(c, in, len, buf_sink, out, err);
	if (rc == 0)
		rc = cairn_codec_finish(c, buf_sink, out, err);
	if (rc < 0 && out->len > before) {
		out->len = before; /* appended only on success */
		if (out->data)
			out->data[before] = '\0';
	}
	cairn_codec_free(c);
	return rc;
}
