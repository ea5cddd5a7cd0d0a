/*
 * download-ranges.h - the range scheduler of a download from several
 * sources at once (internal to libcairn; pure logic, no I/O, no clock).
 *
 * A file of `size` bytes is cut into pieces, each [start, end) with the
 * bytes [start, start + done) already in, and at most one owner (the
 * source asking for it).  The pieces always cover the file exactly, with
 * no overlap, so a byte is never asked of two sources at once and a byte
 * received is never asked again.
 *
 *   - start: `parts` equal pieces (fewer when they would be smaller than
 *     min_piece);
 *   - a source that is free takes the first piece nobody owns (a source
 *     that failed left it, with what it had received); when none is left
 *     it steals the tail of the piece that would end last (its remaining
 *     bytes over its owner's rate), split in proportion to the two rates
 *     so that both end together (aria2's way);
 *   - a tail too small to split is taken whole only from an owner at
 *     less than half the thief's rate: the owner stops at what it has.
 * Rates are bytes per second as the caller measures them; 0 is "not
 * known yet" and counts as the mean of those known.
 */
#ifndef CAIRN_LIB_DOWNLOAD_RANGES_H
#define CAIRN_LIB_DOWNLOAD_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_RS_MAX_PIECES 256
#define CAIRN_RS_NOBODY (-1)
#define CAIRN_RS_NONE SIZE_MAX

struct cairn_rs_piece {
	uint64_t start, end, done;
	int owner; /* a source index, or CAIRN_RS_NOBODY */
};

struct cairn_rs {
	uint64_t size, min_piece;
	size_t n, front; /* the piece holding the first byte not yet in */
	struct cairn_rs_piece p[CAIRN_RS_MAX_PIECES];
};

void cairn_rs_init(struct cairn_rs *rs, uint64_t size, unsigned parts, uint64_t min_piece);
/* A piece for source `who` (rates[0..n_rates) by source), or CAIRN_RS_NONE:
 * nothing left worth taking. */
size_t cairn_rs_take(struct cairn_rs *rs, int who, const uint64_t *rates, size_t n_rates);
/* n bytes arrived for piece i: how many of them belong to it (the rest is
 * past its end, which a thief moved: drop them). */
uint64_t cairn_rs_progress(struct cairn_rs *rs, size_t i, uint64_t n);
/* The owner of piece i stops (failed, or done); what it received stays. */
void cairn_rs_release(struct cairn_rs *rs, size_t i);
/* Bytes [0, contig) are all in. */
uint64_t cairn_rs_contig(struct cairn_rs *rs);
static inline bool cairn_rs_piece_full(const struct cairn_rs *rs, size_t i)
{
	return rs->p[i].start + rs->p[i].done >= rs->p[i].end;
}

#endif
