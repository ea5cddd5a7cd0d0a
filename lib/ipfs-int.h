/*
 * ipfs-int.h - what lib/cid.c, lib/unixfs.c, lib/cdc.c, lib/ipfs-dag.c and
 * lib/car.c share: unsigned varints, the node encoders, the chunker.
 */
#ifndef CAIRN_IPFS_INT_H
#define CAIRN_IPFS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/ipfs.h"

/* A 64-bit LEB128 varint is at most 10 bytes. */
#define IPFS_VARINT_MAX 10

/* Write v; returns the bytes written (1..10). */
size_t ipfs_varint_put(uint8_t *out, uint64_t v);
/* Bytes ipfs_varint_put would write. */
size_t ipfs_varint_len(uint64_t v);
/*
 * Read a minimal varint (no redundant 0x80 continuation bytes, no bits past
 * 64) at the start of buf: the bytes used, or 0 when buf ends inside it
 * (truncated) or it is not minimal or too long (*bad set).
 */
size_t ipfs_varint_get(const uint8_t *buf, size_t len, uint64_t *v, int *bad);

/*
 * A UnixFS file node's links, as the builder keeps them for one level.
 * tsize: the child's block plus everything under it; filesize: the bytes of
 * the file under it.
 */
struct ipfs_child {
	struct cairn_cid cid;
	uint64_t tsize;
	uint64_t filesize;
};
/*
 * Encode the dag-pb node of a UnixFS File over children into out (cap
 * bytes); returns its length, or 0 when cap is too small.  Links have an
 * empty name and a Tsize; the Data is {Type: File, filesize, blocksizes}.
 */
size_t unixfs_file_node_encode(const struct ipfs_child *children, size_t n, uint8_t *out,
			       size_t cap);
/* Room enough for a node of n children. */
size_t unixfs_file_node_bound(size_t n);

/*
 * The chunker over a bounded buffer: bytes are pushed in; a chunk is cut
 * only when max bytes are buffered (or at the end), so the cuts do not
 * depend on how the input was split into writes.
 */
struct cdc {
	struct cairn_chunker_spec spec;
	uint64_t gear[256];
	uint64_t mask_s, mask_l; /* FastCDC's normalised masks */
	uint8_t *buf;		 /* 2 * max bytes */
	size_t cap, start, end;
	uint64_t chunks;
};
typedef int (*cdc_chunk_cb)(const uint8_t *chunk, size_t len, void *user);
int cdc_init(struct cdc *c, const struct cairn_chunker_spec *spec, struct cairn_error *err);
void cdc_release(struct cdc *c);
/* Push bytes; cb runs for each chunk completed. */
int cdc_push(struct cdc *c, const uint8_t *data, size_t len, cdc_chunk_cb cb, void *user);
/* Cut what is left; an input with no bytes at all is one empty chunk. */
int cdc_finish(struct cdc *c, cdc_chunk_cb cb, void *user);
/* FastCDC's cut point in buf[0..n): exposed for tests. */
size_t cdc_cut(const struct cdc *c, const uint8_t *buf, size_t n);

#endif
