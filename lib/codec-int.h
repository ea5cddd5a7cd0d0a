/*
 * codec-int.h - what lib/codec.c offers beyond its public header,
 * for the unit tests and fuzz targets; not part of the public API.
 */
#ifndef CAIRN_CODEC_INT_H
#define CAIRN_CODEC_INT_H

#include "cairn/codec.h"

/* Suffix Nix appends after ".nar" in a nar URL (".xz", "" for none and gzip); static. */
const char *cairn_codec_nix_suffix(enum cairn_codec_method m);
/*
 * One-shot helper: run in[0..len) through a new codec and append the whole
 * output to *out (whose own max also applies).  For small objects (.ls
 * files, tests); NARs should stream.
 */
int cairn_codec_oneshot(enum cairn_codec_method method, enum cairn_codec_direction dir, int level,
			const void *in, size_t len, uint64_t max_output, struct cairn_buf *out,
			struct cairn_error *err);
/*
 * Compress with up to n worker threads (zstd: ZSTD_c_nbWorkers; xz: the
 * multi-threaded block encoder, whose output is split into independent
 * blocks).  Only before the first write; other methods and decompression
 * ignore it.  n = 0 or 1 means single-threaded.
 */
int cairn_codec_set_threads(struct cairn_codec *c, unsigned n, struct cairn_error *err);
/* The level a method compresses at when none is given. */
int cairn_codec__level_default(enum cairn_codec_method m);

#endif
