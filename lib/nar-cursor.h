/*
 * nar-cursor.h - the NAR bytes of compressed files, from where an earlier
 * request stopped (lib/nar-cursor.c): the mirror's gateway cuts chunks
 * from its cached zstd/xz nars (publish from a directory's) without
 * decompressing each from its start for every chunk, and without keeping
 * the chunks themselves.  Not public.
 */
#ifndef CAIRN_NAR_CURSOR_H
#define CAIRN_NAR_CURSOR_H

#include <stdint.h>

#include "cairn/codec.h"
#include "ipfs-gateway.h"

/* An id names one file's bytes: the item and its file. */
#define NAR_CURSOR_KEY_MAX 127
/*
 * Parked decompressions kept at most, in all and per file.  Each holds an
 * fd and its codec's state (the window: zstd a few MiB at Nix's levels,
 * xz its dictionary, 8 MiB at -6), so the pool stays small; the least
 * recently parked goes first.
 */
#define NAR_CURSORS_MAX 16
#define NAR_CURSORS_PER_ITEM 8
/* How long a request waits for a cursor in use to come to it. */
#define NAR_CURSOR_WAIT_S 5
/* Decoded bytes a parked cursor may hold past its end; beyond, dropped. */
#define NAR_CURSOR_SPILL_MAX ((size_t)4 << 20)

struct nar_cursors;
struct nar_cursors *nar_cursors_new(void);
void nar_cursors_free(struct nar_cursors *p);

/*
 * Give the NAR in file name (under dirfd, compressed with method, nar_size
 * bytes once decoded) to sink, as an ipfs_gw_source does.  With
 * sink->skip, a cursor parked for id at or before sink->want_lo is taken
 * up (skip tells the sink where it starts), and where the sink stops
 * (CAIRN_ECANCELED) the cursor is parked for the next request.  Safe from
 * several threads at once.
 */
int nar_cursors_read(struct nar_cursors *p, const char *id, int dirfd, const char *name,
		     enum cairn_codec_method method, uint64_t nar_size,
		     const struct ipfs_gw_sink *sink, struct cairn_error *err);

/*
 * The same, but an uncompressed file of at least IPFS_GW_FILE_MIN bytes
 * (file_size) is the NAR itself: it goes to sink->file, when the sink
 * takes files, so the gateway reads only the chunks it needs.  What the
 * mirror and publish over a directory both give their gateway.
 */
int nar_cursors_source(struct nar_cursors *p, const char *id, int dirfd, const char *name,
		       enum cairn_codec_method method, uint64_t file_size, uint64_t nar_size,
		       const struct ipfs_gw_sink *sink, struct cairn_error *err);

#endif
