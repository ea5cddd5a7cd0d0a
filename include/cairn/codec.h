/*
 * codec.h - streaming compression and decompression of NARs.
 *
 * One push-style interface over the compressors that Nix and Guix binary
 * caches use.  The caller writes input in pieces of any size; the codec hands
 * its output to a callback in large chunks (up to CAIRN_CODEC_CHUNK bytes,
 * usually exactly that many except for the last; "none" passes the caller's
 * own pieces through, split at that size, without copying), and finish()
 * flushes the rest and checks that the stream ended where its format says
 * it ends.
 *
 * Method names
 * ------------
 * The names are those of the `Compression:` field of a narinfo, as Nix
 * (src/libstore/binary-cache-store.cc, src/libutil/compression.cc) and Guix
 * (guix/scripts/publish.scm) write them:
 *
 *   name    library          stream format                Nix URL suffix
 *   none    -                the bytes as they are        ".nar"
 *   xz      liblzma          .xz container (CRC64 check)  ".nar.xz"
 *   zstd    libzstd          zstd frames (with checksum)  ".nar.zst"
 *   bzip2   libbz2           bzip2 stream ("BZh")         ".nar.bz2"
 *   gzip    zlib             gzip members (RFC 1952)      ".nar" (sic)
 *   lzip    lzlib (-llz)     lzip members ("LZIP")        ".nar.lzip" (sic)
 *
 * Nix names the file "nar/<FileHash in nix32>.nar" plus the suffix above;
 * its list of suffixes has no entry for gzip, so a gzip NAR written by
 * `nix copy` ends in plain ".nar", and lzip uses ".lzip" rather than ".lz".
 * Guix publishes "nar/<compression>/<store path basename>" for gzip, lzip
 * and zstd, and "nar/<basename>" for none.  A narinfo without a Compression
 * field means bzip2 to Nix; that default belongs to the narinfo parser, not
 * here.  Nix also knows "br" (brotli) and, through libarchive, "lz4",
 * "lzma", "lzop", "compress", "grzip" and "lrzip": cairn recognises those
 * names and reports CAIRN_EUNSUPPORTED; any other name is CAIRN_EFORMAT.
 *
 * Concatenation and trailing data (decompression)
 * -----------------------------------------------
 * What the reference tools accept, and what cairn does:
 *   xz     several streams back to back, with stream padding (zero bytes in
 *          multiples of four) between and after them, are one file
 *          (`xz -d` and liblzma's LZMA_CONCATENATED).  Same here.  Anything
 *          else after the last stream is an error in xz and here.
 *   zstd   frames back to back, and skippable frames, are one file
 *          (`zstd -d`).  Same here.  Other bytes after a frame: error.
 *   gzip   members back to back are one file (RFC 1952 2.2, `gzip -d`).
 *          Same here.  `gzip -d` only warns about other trailing bytes;
 *          cairn rejects them, since a NAR has no use for them and they can
 *          hide data from a hash check of the decompressed content.
 *   bzip2  streams back to back are one file (`bzip2 -d`).  Same here.
 *          `bzip2 -d` ignores trailing garbage with a warning; cairn
 *          rejects it.
 *   lzip   members back to back are one file (lzip, lzlib).  Same here.
 *          lzip ignores trailing data unless --trailing-error; cairn
 *          rejects it (as with `lzip -d --trailing-error`).
 *   none   no end marker: everything is data.
 * Input that stops before the end of a stream (or no input at all for a
 * compressed method) makes cairn_codec_finish() fail with
 * CAIRN_ETRUNCATED; corrupt input fails with CAIRN_EFORMAT and the
 * library's own description.
 *
 * Bounds
 * ------
 * Every codec has a maximum output size given at creation (for
 * decompression, the narinfo's NarSize or a hard cap).  The codec never
 * passes more than that to the callback: the write that would cross it fails
 * with CAIRN_ELIMIT ("xz: decompressed data exceeds 1048576 bytes") after at
 * most one internal chunk of work, so a decompression bomb costs a few
 * hundred KiB of output and a few milliseconds.  Decoder memory is bounded
 * too: xz by CAIRN_CODEC_XZ_MEMLIMIT (a file needing more is CAIRN_ELIMIT),
 * zstd by CAIRN_CODEC_ZSTD_WINDOW_LOG_MAX (the default limit of libzstd and
 * the zstd tool), lzip by its dictionary size (CAIRN_CODEC_LZIP_DICT_MAX),
 * gzip (32 KiB window) and bzip2 (900 KB blocks) by their format.
 *
 * Levels
 * ------
 * A level of CAIRN_CODEC_LEVEL_DEFAULT picks the tool's default; valid
 * levels are those of the command-line tools: xz 0-9 (default 6), zstd
 * ZSTD_minCLevel()..ZSTD_maxCLevel() (default 3), bzip2 1-9 (default 9),
 * gzip 1-9 (default 6), lzip 0-9 (default 6, with the dictionary sizes and
 * match lengths of `lzip -0`..`-9`).  "none" takes no level.
 *
 * Which methods a server should offer
 * -----------------------------------
 * Measured with bench/codec-bench.c on a 52.5 MB NAR of /usr/lib/python3.11
 * (text, .pyc, .so), one thread, 128 KiB writes, on a shared 2-core VM
 * (load 4-5, so read the figures as ratios; zstd -3 and the codec agree
 * within noise).  MB/s are of uncompressed data, both directions.
 *
 *   spec      size   compress  decompress
 *   zstd:1   31.3%   490 MB/s   1480 MB/s
 *   zstd:3   28.2%   300 MB/s   1230 MB/s
 *   zstd:9   24.5%    76 MB/s   1170 MB/s
 *   zstd:19  21.2%   1.9 MB/s    990 MB/s
 *   gzip:1   32.9%   125 MB/s    370 MB/s
 *   gzip:6   28.9%    45 MB/s    425 MB/s
 *   bzip2:9  24.1%    17 MB/s     36 MB/s
 *   xz:1     22.9%    14 MB/s     48 MB/s
 *   xz:6     19.5%   1.1 MB/s     46 MB/s
 *   lzip:0   25.9%    19 MB/s     28 MB/s
 *   lzip:6   19.6%   1.0 MB/s     45 MB/s
 *
 * So: compress on the fly with zstd:3 (or zstd:1 when CPU-bound); it beats
 * gzip:6 on size at six times the speed and decompresses faster than any
 * network.  Store NARs compressed once with xz:6 (what `nix copy` writes and
 * every Nix understands; smallest here) or zstd:19 for much faster clients.
 * Guix clients understand lzip and gzip (and zstd since Guix 1.2).  bzip2
 * is slow both ways and is only for old caches.  Suggested publish lists:
 * "zstd:3,xz:6" for Nix clients, "zstd:3,lzip:6,gzip:6" for Guix.
 * cairn_codec_set_threads() helps only where there are idle cores (zstd's
 * workers, xz's block encoder); the server should leave it at 1 and use
 * its cores for parallel requests.
 */
#ifndef CAIRN_CODEC_H
#define CAIRN_CODEC_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"

enum cairn_codec_method {
	CAIRN_CODEC_NONE = 0,
	CAIRN_CODEC_XZ,
	CAIRN_CODEC_ZSTD,
	CAIRN_CODEC_BZIP2,
	CAIRN_CODEC_GZIP,
	CAIRN_CODEC_LZIP,
	CAIRN_CODEC_METHOD_COUNT_
};

enum cairn_codec_direction {
	CAIRN_CODEC_COMPRESS = 0,
	CAIRN_CODEC_DECOMPRESS = 1,
};

/* Output is handed to the callback in chunks of at most this many bytes. */
#define CAIRN_CODEC_CHUNK (256u * 1024u)
/* "Use the tool's default level." */
#define CAIRN_CODEC_LEVEL_DEFAULT INT_MIN
/* No bound on the output (for compression, whose output is bounded by its input). */
#define CAIRN_CODEC_UNLIMITED UINT64_MAX
/* Largest memory an xz decoder may ask for (xz -9 needs 65 MiB). */
#define CAIRN_CODEC_XZ_MEMLIMIT (256u * 1024u * 1024u)
/* Largest zstd window accepted when decoding: 2^27 = 128 MiB. */
#define CAIRN_CODEC_ZSTD_WINDOW_LOG_MAX 27
/* Largest lzip dictionary accepted when decoding (lzip -9 uses 32 MiB). */
#define CAIRN_CODEC_LZIP_DICT_MAX (256u * 1024u * 1024u)
/* Most entries in a compression list ("zstd:3,xz:6,..."). */
#define CAIRN_CODEC_LIST_MAX 8
/* Longest method name plus ':' and level, for the spec formatter. */
#define CAIRN_CODEC_SPEC_STR_MAX 16

/* A method and the level to compress with. */
struct cairn_codec_spec {
	enum cairn_codec_method method;
	int level; /* CAIRN_CODEC_LEVEL_DEFAULT or a valid level */
};

/*
 * Output callback: receives len > 0 bytes that are valid only during the
 * call.  Return 0 to continue or a negative enum cairn_err to stop; the
 * codec call then fails with that code (a callback that fills the same
 * struct cairn_error first keeps its own message).
 */
typedef int (*cairn_codec_out_fn)(void *ctx, const void *data, size_t len);

struct cairn_codec;

/*
 * Method by narinfo name (name need not be NUL-terminated).  Names Nix
 * knows but cairn cannot handle ("br", "lz4", ...) are CAIRN_EUNSUPPORTED,
 * other names CAIRN_EFORMAT.
 */
int cairn_codec_method_parse(const char *name, size_t len, enum cairn_codec_method *out,
			     struct cairn_error *err);
/* The narinfo name ("xz"); static.  NULL for an invalid method. */
const char *cairn_codec_method_name(enum cairn_codec_method m);
/* The valid level range of a method (none: 0..0). */
void cairn_codec_level_range(enum cairn_codec_method m, int *min, int *max);

/*
 * Parse "METHOD" or "METHOD:LEVEL" ("zstd:3", "xz:6", "none").  An
 * out-of-range level is CAIRN_EFORMAT naming the range.
 */
int cairn_codec_spec_parse(const char *s, size_t len, struct cairn_codec_spec *out,
			   struct cairn_error *err);
/*
 * Parse a comma-separated list of specs ("zstd:3,xz:6,none") into out[]
 * (room for max entries).  Returns the number of entries (>= 1).  Empty
 * entries, a method listed twice and more than max entries are errors.
 */
int cairn_codec_spec_list_parse(const char *s, size_t len, struct cairn_codec_spec *out, size_t max,
				struct cairn_error *err);
/* Format a spec as "xz:6" (or "none") into out; returns the length or CAIRN_ELIMIT. */
int cairn_codec_spec_format(const struct cairn_codec_spec *spec, char *out, size_t size);

/*
 * Create a codec.  level applies to compression (CAIRN_CODEC_LEVEL_DEFAULT
 * for the default; must be that for decompression).  max_output bounds the
 * total output passed to the callback (CAIRN_CODEC_UNLIMITED for none).
 * *out is the caller's, to free with cairn_codec_free().
 */
int cairn_codec_new(struct cairn_codec **out, enum cairn_codec_method method,
		    enum cairn_codec_direction dir, int level, uint64_t max_output,
		    struct cairn_error *err);


/*
 * Feed len bytes of input; complete chunks of output go to out(ctx, ...).
 * Output may be held back until a chunk is full or until finish.  After an
 * error the codec is unusable and every later call returns that error.
 */
int cairn_codec_write(struct cairn_codec *c, const void *in, size_t len, cairn_codec_out_fn out,
		      void *ctx, struct cairn_error *err);

/*
 * End of input: flush all output and, for decompression, check that the
 * stream ended (CAIRN_ETRUNCATED otherwise).  Calling it again after
 * success is CAIRN_EINVAL.
 */
int cairn_codec_finish(struct cairn_codec *c, cairn_codec_out_fn out, void *ctx,
		       struct cairn_error *err);

/* Bytes consumed and produced so far (produced = passed to the callback). */
uint64_t cairn_codec_total_in(const struct cairn_codec *c);
uint64_t cairn_codec_total_out(const struct cairn_codec *c);

void cairn_codec_free(struct cairn_codec *c);


#endif
