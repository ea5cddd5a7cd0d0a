/*
 * ipfs.h - a NAR (or any byte stream) as an IPFS UnixFS file: CIDs,
 * dag-pb/UnixFS nodes, the DAG builder with its chunkers, and CAR files.
 *
 * What is built (docs/FORMATS.md, "IPFS encoding", has the parameters and
 * the reasons):
 *   - chunks: fixed-size ("size-N") or content-defined (FastCDC, 64 KiB /
 *     256 KiB / 1 MiB), each an IPFS raw block: CIDv1, codec raw (0x55),
 *     multihash sha2-256;
 *   - a UnixFS file DAG over them: dag-pb (0x70) nodes of at most 174 links,
 *     the balanced layout of ipfs-unixfs-importer (each level cut greedily
 *     into runs of 174 until one node is left), and a file of one chunk is
 *     that chunk's raw block (reduceSingleLeafToSelf).
 * With "size-N" the root CID equals that of ipfs-unixfs-importer 17 with
 * { rawLeaves: true, cidVersion: 1, chunker: fixedSize(N), layout:
 * balanced({ maxChildrenPerNode: 174 }), reduceSingleLeafToSelf: true }
 * (tests/integration/test-ipfs-interop.sh checks it against the importer).
 *
 * Specifications followed: multiformats (unsigned-varint, multihash,
 * multibase base32 lower 'b', CIDv1), the dag-pb and UnixFS v1 specs of
 * ipfs/specs and ipld/specs, CARv1 (ipld/specs transport/car/carv1).
 */
#ifndef CAIRN_IPFS_H
#define CAIRN_IPFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

/* Codecs and multihash functions (multicodec table). */
enum cairn_ipfs_codec {
	CAIRN_IPFS_RAW = 0x55,
	CAIRN_IPFS_DAG_PB = 0x70,
};
enum cairn_ipfs_mh {
	CAIRN_IPFS_MH_IDENTITY = 0x00, /* the bytes themselves: bafkqaaa */
	CAIRN_IPFS_MH_SHA2_256 = 0x12,
};

/* Any IPFS implementation accepts blocks this big (bitswap, Helia: 2 MiB). */
#define CAIRN_IPFS_BLOCK_MAX ((size_t)2 << 20)
/* An identity multihash carries its bytes; cairn reads short ones only. */
#define CAIRN_CID_DIGEST_MAX 32
/* Binary CIDv1: version, codec, hash function, length: one byte each here. */
#define CAIRN_CID_BIN_MAX (4 + CAIRN_CID_DIGEST_MAX)
/* 'b' + base32 of the binary form (no padding) + NUL. */
#define CAIRN_CID_STR_MAX (1 + (CAIRN_CID_BIN_MAX * 8 + 4) / 5 + 1)

/*
 * A CID cairn can name: version 0 (dag-pb, sha2-256: read in binary inside
 * dag-pb links and CARs only) or 1; codec raw or dag-pb; hash sha2-256 or
 * identity.  Anything else is CAIRN_EUNSUPPORTED when read.
 */
struct cairn_cid {
	uint8_t version;	/* 0 or 1 */
	uint8_t codec;		/* enum cairn_ipfs_codec */
	uint8_t mh;		/* enum cairn_ipfs_mh */
	uint8_t len;		/* of digest */
	uint8_t digest[CAIRN_CID_DIGEST_MAX];
};

/* The CIDv1 of data under codec, with sha2-256. */
void cairn_cid_sha256(struct cairn_cid *cid, enum cairn_ipfs_codec codec, const void *data,
		      size_t len);
bool cairn_cid_equal(const struct cairn_cid *a, const struct cairn_cid *b);
/* 0 if data is what cid names (its hash, or its bytes for identity), else CAIRN_EHASH. */
int cairn_cid_verify(const struct cairn_cid *cid, const void *data, size_t len);

/* Binary form into out (CAIRN_CID_BIN_MAX bytes); returns its length. */
size_t cairn_cid_to_bytes(const struct cairn_cid *cid, uint8_t out[CAIRN_CID_BIN_MAX]);
/*
 * Read a binary CID at the start of buf (CIDv0 is the bare 34-byte
 * multihash); *used gets its length.  0, CAIRN_ETRUNCATED, CAIRN_EFORMAT or
 * CAIRN_EUNSUPPORTED.
 */
int cairn_cid_from_bytes(const uint8_t *buf, size_t len, struct cairn_cid *cid, size_t *used,
			 struct cairn_error *err);
/* "bafy…": multibase base32 lower of a CIDv1; CAIRN_EUNSUPPORTED for v0. */
int cairn_cid_format(const struct cairn_cid *cid, char out[CAIRN_CID_STR_MAX]);
/* Parse a 'b'-prefixed base32 CIDv1 string of len bytes. */
int cairn_cid_parse(const char *s, size_t len, struct cairn_cid *cid, struct cairn_error *err);

/*
 * dag-pb nodes, as decoded.  Everything points into the decoded bytes,
 * valid while they are; links is allocated (cairn_pbnode_release).
 */
struct cairn_pblink {
	struct cairn_cid cid;
	const uint8_t *name; /* NULL when absent */
	size_t name_len;
	bool has_tsize;
	uint64_t tsize;
};
struct cairn_pbnode {
	const uint8_t *data; /* NULL when absent */
	size_t data_len;
	struct cairn_pblink *links;
	size_t n_links;
};
/* Links in one node: far above the 174 (kubo) or 1024 (Helia) written. */
#define CAIRN_PBNODE_LINKS_MAX 8192
/*
 * Strict decoder (the dag-pb spec's rules): fields in order (links, then
 * data), no unknown fields, no duplicates, minimal varints, lengths within
 * the input, a link's hash a CID cairn can name.  At most
 * CAIRN_IPFS_BLOCK_MAX bytes and CAIRN_PBNODE_LINKS_MAX links.
 */
int cairn_pbnode_decode(const uint8_t *buf, size_t len, struct cairn_pbnode *out,
			struct cairn_error *err);
void cairn_pbnode_release(struct cairn_pbnode *n);

/* UnixFS v1 Data message (a dag-pb node's data). */
enum cairn_unixfs_type {
	CAIRN_UNIXFS_RAW = 0,
	CAIRN_UNIXFS_DIRECTORY = 1,
	CAIRN_UNIXFS_FILE = 2,
	CAIRN_UNIXFS_METADATA = 3,
	CAIRN_UNIXFS_SYMLINK = 4,
	CAIRN_UNIXFS_HAMT = 5,
};
struct cairn_unixfs {
	uint32_t type;	     /* enum cairn_unixfs_type */
	const uint8_t *data; /* NULL when absent */
	size_t data_len;
	bool has_filesize;
	uint64_t filesize;
	uint64_t *blocksizes; /* allocated: cairn_unixfs_release */
	size_t n_blocksizes;
};
/* Strict like cairn_pbnode_decode; fields 5-8 (hashType, fanout, mode,
 * mtime) are accepted and skipped. */
int cairn_unixfs_decode(const uint8_t *buf, size_t len, struct cairn_unixfs *out,
			struct cairn_error *err);
void cairn_unixfs_release(struct cairn_unixfs *u);

/*
 * Chunkers.  "size-N": N bytes each (1 ≤ N ≤ 1 MiB), the last one shorter.
 * "fastcdc": content-defined, min 64 KiB, average 256 KiB, max 1 MiB.  An
 * empty input is one empty chunk (as the importer has it).
 */
enum cairn_chunker_kind { CAIRN_CHUNKER_FIXED, CAIRN_CHUNKER_FASTCDC };
struct cairn_chunker_spec {
	enum cairn_chunker_kind kind;
	uint32_t min, avg, max; /* FIXED: all three are N */
};
#define CAIRN_CHUNK_MAX ((uint32_t)1 << 20)
/* "size-N", "size" (256 KiB) or "fastcdc". */
int cairn_chunker_spec_parse(const char *s, struct cairn_chunker_spec *out,
			     struct cairn_error *err);
/* The default: fastcdc. */
void cairn_chunker_spec_default(struct cairn_chunker_spec *out);
/* What publish --ipfs and mirror --ipfs cut with unless told otherwise,
 * and so what the narinfo's IPFS field names (docs/FORMATS.md). */
#define CAIRN_IPFS_CHUNKER_SERVED "fastcdc"
/* The fixed-size chunker that ipfs add and ipfs-unixfs-importer default to. */
#define CAIRN_IPFS_CHUNKER_KUBO "size-262144"

/*
 * Every block the builder makes, leaves first, each node after its
 * children; data is valid during the call only.
 */
typedef int (*cairn_ipfs_block_cb)(const struct cairn_cid *cid, const uint8_t *data, size_t len,
				   void *user);

/*
 * The streaming DAG builder: memory stays bounded (two chunks' worth of
 * buffer plus 174 links per tree level) whatever the input's size.
 */
struct cairn_ipfs_add;
int cairn_ipfs_add_new(const struct cairn_chunker_spec *spec, cairn_ipfs_block_cb cb, void *user,
		       struct cairn_ipfs_add **out, struct cairn_error *err);
int cairn_ipfs_add_write(struct cairn_ipfs_add *a, const void *data, size_t len,
			 struct cairn_error *err);
/* The root and the file's size; no writes after it. */
int cairn_ipfs_add_finish(struct cairn_ipfs_add *a, struct cairn_cid *root, uint64_t *size,
			  struct cairn_error *err);
/* Blocks made so far (leaves and nodes). */
uint64_t cairn_ipfs_add_blocks(const struct cairn_ipfs_add *a);
void cairn_ipfs_add_free(struct cairn_ipfs_add *a);

/*
 * CARv1: varint(len) + dag-cbor {"roots": [CID], "version": 1}, then per
 * block varint(len(cid)+len(data)) + binary CID + data.
 */
/* The header for one root; returns its length (at most CAIRN_CAR_HEADER_MAX). */
#define CAIRN_CAR_HEADER_MAX 128
size_t cairn_car_header(const struct cairn_cid *root, uint8_t out[CAIRN_CAR_HEADER_MAX]);
/* A block's section head (the varint and the CID); returns its length. */
#define CAIRN_CAR_SECTION_HEAD_MAX (10 + CAIRN_CID_BIN_MAX)
size_t cairn_car_section_head(const struct cairn_cid *cid, size_t data_len,
			      uint8_t out[CAIRN_CAR_SECTION_HEAD_MAX]);

/* Roots a CAR header may name (cairn writes one). */
#define CAIRN_CAR_ROOTS_MAX 16
/* Header bytes accepted: room for CAIRN_CAR_ROOTS_MAX roots. */
#define CAIRN_CAR_HEADER_READ_MAX 1024
/*
 * Read a whole CARv1 from memory, strictly: the header must be exactly
 * {roots, version: 1} in canonical dag-cbor with 1..CAIRN_CAR_ROOTS_MAX
 * roots; every block at most CAIRN_IPFS_BLOCK_MAX and verified against its
 * CID before cb sees it.  roots gets the roots (*n_roots of them).
 */
int cairn_car_read(const uint8_t *buf, size_t len, struct cairn_cid roots[CAIRN_CAR_ROOTS_MAX],
		   size_t *n_roots, cairn_ipfs_block_cb cb, void *user, struct cairn_error *err);

/*
 * A file's blocks in DFS pre-order, parents before children (a served
 * CAR's order=dfs), from two passes over the file (lib/car-dfs.c): first
 * give cairn_car_dfs_block to cairn_ipfs_add_new as its callback and feed
 * the builder the file; then cairn_car_dfs_order with the root it made;
 * then the same bytes again to cairn_car_dfs_write, and cb receives every
 * block (each chunk checked against the first pass's digest), the last at
 * cairn_car_dfs_finish.  Memory: the nodes and 40 bytes per chunk.
 */
struct cairn_car_dfs;
int cairn_car_dfs_new(struct cairn_car_dfs **out, cairn_ipfs_block_cb cb, void *user,
		      struct cairn_error *err);
int cairn_car_dfs_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user);
int cairn_car_dfs_order(struct cairn_car_dfs *d, const struct cairn_cid *root,
			struct cairn_error *err);
int cairn_car_dfs_write(struct cairn_car_dfs *d, const void *data, size_t len,
			struct cairn_error *err);
int cairn_car_dfs_finish(struct cairn_car_dfs *d, struct cairn_error *err);
void cairn_car_dfs_free(struct cairn_car_dfs *d);

#endif
