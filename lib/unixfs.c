/*
 * unixfs.c - dag-pb nodes and the UnixFS Data message inside them:
 * the encoder of file nodes that the DAG builder writes, and strict,
 * bounded decoders for nodes that come from anywhere.
 *
 * Protocol Buffers wire format, key = field << 3 | wire type (0 varint,
 * 2 length-delimited).  dag-pb (ipld/specs block-layer/codecs/dag-pb.md):
 *
 *   PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }
 *     canonical order: every link (key 0x12), then the data (key 0x0a)
 *   PBLink { optional bytes Hash = 1; optional string Name = 2;
 *            optional uint64 Tsize = 3; }      in that order, Hash required
 *
 * UnixFS v1 (ipfs/specs UNIXFS.md):
 *
 *   Data { required DataType Type = 1; optional bytes Data = 2;
 *          optional uint64 filesize = 3; repeated uint64 blocksizes = 4;
 *          optional uint64 hashType = 5; optional uint64 fanout = 6;
 *          optional uint32 mode = 7; optional UnixTime mtime = 8; }
 *
 * A file node as ipfs-unixfs-importer (and kubo) write it, and cairn too:
 * links with an empty Name and a Tsize; Data = {Type: File (2), filesize:
 * the sum of blocksizes, blocksizes: each child's file bytes}, no Data.Data.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/ipfs.h"
#include "ipfs-int.h"
#include "cairn/banned.h"

enum {
	WT_VARINT = 0,
	WT_BYTES = 2,
};

/* A CID's binary form is at most this; a link at most this plus keys. */
#define LINK_BOUND (2 * (1 + IPFS_VARINT_MAX) + CAIRN_CID_BIN_MAX + 2 + 1 + IPFS_VARINT_MAX)

size_t unixfs_file_node_bound(size_t n)
{
	/* links, then Data: key, length, Type, filesize and one blocksize each */
	return n * LINK_BOUND + 1 + IPFS_VARINT_MAX + 2 + 1 + IPFS_VARINT_MAX +
	       n * (1 + IPFS_VARINT_MAX);
}

size_t unixfs_file_node_encode(const struct ipfs_child *children, size_t n, uint8_t *out,
			       size_t cap)
{
	if (cap < unixfs_file_node_bound(n))
		return 0;
	size_t o = 0;
	uint64_t filesize = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t cid[CAIRN_CID_BIN_MAX];
		size_t cl = cairn_cid_to_bytes(&children[i].cid, cid);
		size_t link_len = 1 + ipfs_varint_len(cl) + cl + 2 + 1 +
				  ipfs_varint_len(children[i].tsize);
		out[o++] = 0x12;
		o += ipfs_varint_put(out + o, link_len);
		out[o++] = 0x0a;
		o += ipfs_varint_put(out + o, cl);
		memcpy(out + o, cid, cl);
		o += cl;
		out[o++] = 0x12; /* Name: "" (written, as the importer and kubo do) */
		out[o++] = 0x00;
		out[o++] = 0x18;
		o += ipfs_varint_put(out + o, children[i].tsize);
		filesize += children[i].filesize;
	}
	size_t data_len = 2 + 1 + ipfs_varint_len(filesize);
	for (size_t i = 0; i < n; i++)
		data_len += 1 + ipfs_varint_len(children[i].filesize);
	out[o++] = 0x0a;
	o += ipfs_varint_put(out + o, data_len);
	out[o++] = 0x08;
	out[o++] = CAIRN_UNIXFS_FILE;
	out[o++] = 0x18;
	o += ipfs_varint_put(out + o, filesize);
	for (size_t i = 0; i < n; i++) {
		out[o++] = 0x20;
		o += ipfs_varint_put(out + o, children[i].filesize);
	}
	return o;
}

/* One protobuf field: its number, wire type and value. */
struct pbfield {
	uint64_t num;
	unsigned wt;
	uint64_t v;	     /* WT_VARINT */
	const uint8_t *p;    /* WT_BYTES */
	size_t len;
};

/* Read the field at buf[*off]; what says which message for errors. */
static int field_next(const uint8_t *buf, size_t len, size_t *off, struct pbfield *f,
		      const char *what, struct cairn_error *err)
{
	uint64_t key;
	int bad;
	size_t n = ipfs_varint_get(buf + *off, len - *off, &key, &bad);
	if (!n)
		return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
				       "%s: %s field key at byte %zu", what,
				       bad ? "bad" : "truncated", *off);
	*off += n;
	f->num = key >> 3;
	f->wt = (unsigned)(key & 7);
	if (f->wt == WT_VARINT) {
		n = ipfs_varint_get(buf + *off, len - *off, &f->v, &bad);
		if (!n)
			return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
					       "%s: %s varint in field %llu", what,
					       bad ? "bad" : "truncated", (unsigned long long)f->num);
		*off += n;
		return 0;
	}
	if (f->wt != WT_BYTES)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s: field %llu has wire type %u", what,
				       (unsigned long long)f->num, f->wt);
	uint64_t l;
	n = ipfs_varint_get(buf + *off, len - *off, &l, &bad);
	if (!n)
		return cairn_error_set(err, bad ? CAIRN_EFORMAT : CAIRN_ETRUNCATED,
				       "%s: %s length of field %llu", what,
				       bad ? "bad" : "truncated", (unsigned long long)f->num);
	*off += n;
	if (l > len - *off)
		return cairn_error_set(err, CAIRN_ETRUNCATED,
				       "%s: field %llu says %llu bytes, %zu are left", what,
				       (unsigned long long)f->num, (unsigned long long)l, len - *off);
	f->p = buf + *off;
	f->len = (size_t)l;
	*off += (size_t)l;
	return 0;
}

static int link_decode(const uint8_t *buf, size_t len, struct cairn_pblink *lk,
		       struct cairn_error *err)
{
	memset(lk, 0, sizeof(*lk));
	uint64_t last = 0;
	bool has_hash = false;
	size_t off = 0;
	while (off < len) {
		struct pbfield f;
		int rc = field_next(buf, len, &off, &f, "dag-pb link", err);
		if (rc)
			return rc;
		if (f.num <= last)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "dag-pb link: field %llu out of order or repeated",
					       (unsigned long long)f.num);
		last = f.num;
		if (f.num == 1 && f.wt == WT_BYTES) {
			size_t used;
			rc = cairn_cid_from_bytes(f.p, f.len, &lk->cid, &used, err);
			if (rc)
				return rc;
			if (used != f.len)
				return cairn_error_set(err, CAIRN_EFORMAT,
						       "dag-pb link: bytes after the hash's CID");
			has_hash = true;
		} else if (f.num == 2 && f.wt == WT_BYTES) {
			lk->name = f.p;
			lk->name_len = f.len;
		} else if (f.num == 3 && f.wt == WT_VARINT) {
			lk->has_tsize = true;
			lk->tsize = f.v;
		} else {
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "dag-pb link: unknown field %llu (wire type %u)",
					       (unsigned long long)f.num, f.wt);
		}
	}
	if (!has_hash)
		return cairn_error_set(err, CAIRN_EFORMAT, "dag-pb link: no Hash");
	return 0;
}

int cairn_pbnode_decode(const uint8_t *buf, size_t len, struct cairn_pbnode *out,
			struct cairn_error *err)
{
	if (len > CAIRN_IPFS_BLOCK_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "dag-pb: block of %zu bytes (at most %zu)",
				       len, CAIRN_IPFS_BLOCK_MAX);
	struct cairn_pbnode n;
	memset(&n, 0, sizeof(n));
	size_t cap = 0, off = 0;
	bool has_data = false;
	int rc = 0;
	while (off < len) {
		struct pbfield f;
		rc = field_next(buf, len, &off, &f, "dag-pb", err);
		if (rc)
			goto fail;
		if (f.num == 2 && f.wt == WT_BYTES) {
			if (has_data) {
				rc = cairn_error_set(err, CAIRN_EFORMAT, "dag-pb: a link after Data");
				goto fail;
			}
			if (n.n_links == CAIRN_PBNODE_LINKS_MAX) {
				rc = cairn_error_set(err, CAIRN_ELIMIT,
						     "dag-pb: more than %d links",
						     CAIRN_PBNODE_LINKS_MAX);
				goto fail;
			}
			if (n.n_links == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct cairn_pblink *l = realloc(n.links, nc * sizeof(*l));
				if (!l) {
					rc = cairn_error_set(err, CAIRN_ENOMEM, "dag-pb: out of memory");
					goto fail;
				}
				n.links = l;
				cap = nc;
			}
			rc = link_decode(f.p, f.len, &n.links[n.n_links], err);
			if (rc)
				goto fail;
			n.n_links++;
		} else if (f.num == 1 && f.wt == WT_BYTES) {
			if (has_data) {
				rc = cairn_error_set(err, CAIRN_EFORMAT, "dag-pb: Data twice");
				goto fail;
			}
			has_data = true;
			/* an empty Data is present, not absent: keep a non-NULL pointer */
			n.data = f.p;
			n.data_len = f.len;
		} else {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "dag-pb: unknown field %llu (wire type %u)",
					     (unsigned long long)f.num, f.wt);
			goto fail;
		}
	}
	*out = n;
	return 0;
fail:
	free(n.links);
	return rc;
}

void cairn_pbnode_release(struct cairn_pbnode *n)
{
	free(n->links);
	n->links = NULL;
	n->n_links = 0;
}

/* blocksizes, at most one per link a node may have */
static int push_blocksize(struct cairn_unixfs *u, size_t *cap, uint64_t v,
			  struct cairn_error *err)
{
	if (u->n_blocksizes == CAIRN_PBNODE_LINKS_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "unixfs: more than %d blocksizes",
				       CAIRN_PBNODE_LINKS_MAX);
	if (u->n_blocksizes == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		uint64_t *b = realloc(u->blocksizes, nc * sizeof(*b));
		if (!b)
			return cairn_error_set(err, CAIRN_ENOMEM, "unixfs: out of memory");
		u->blocksizes = b;
		*cap = nc;
	}
	u->blocksizes[u->n_blocksizes++] = v;
	return 0;
}

int cairn_unixfs_decode(const uint8_t *buf, size_t len, struct cairn_unixfs *out,
			struct cairn_error *err)
{
	if (len > CAIRN_IPFS_BLOCK_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "unixfs: data of %zu bytes (at most %zu)",
				       len, CAIRN_IPFS_BLOCK_MAX);
	struct cairn_unixfs u;
	memset(&u, 0, sizeof(u));
	size_t cap = 0, off = 0;
	uint64_t last = 0;
	bool has_type = false;
	int rc = 0;
	while (off < len) {
		struct pbfield f;
		rc = field_next(buf, len, &off, &f, "unixfs", err);
		if (rc)
			goto fail;
		/* fields in order; only blocksizes may repeat */
		if (f.num < last || (f.num == last && f.num != 4)) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "unixfs: field %llu out of order or repeated",
					     (unsigned long long)f.num);
			goto fail;
		}
		last = f.num;
		if (f.num == 1 && f.wt == WT_VARINT) {
			if (f.v > CAIRN_UNIXFS_HAMT) {
				rc = cairn_error_set(err, CAIRN_EFORMAT, "unixfs: unknown type %llu",
						     (unsigned long long)f.v);
				goto fail;
			}
			u.type = (uint32_t)f.v;
			has_type = true;
		} else if (f.num == 2 && f.wt == WT_BYTES) {
			u.data = f.p;
			u.data_len = f.len;
		} else if (f.num == 3 && f.wt == WT_VARINT) {
			u.has_filesize = true;
			u.filesize = f.v;
		} else if (f.num == 4 && f.wt == WT_VARINT) {
			rc = push_blocksize(&u, &cap, f.v, err);
			if (rc)
				goto fail;
		} else if (f.num == 4 && f.wt == WT_BYTES) {
			/* packed, as proto3 writers put it */
			size_t p = 0;
			while (p < f.len) {
				uint64_t v;
				int bad;
				size_t k = ipfs_varint_get(f.p + p, f.len - p, &v, &bad);
				if (!k) {
					rc = cairn_error_set(err, CAIRN_EFORMAT,
							     "unixfs: bad packed blocksizes");
					goto fail;
				}
				p += k;
				rc = push_blocksize(&u, &cap, v, err);
				if (rc)
					goto fail;
			}
		} else if ((f.num == 5 || f.num == 6 || f.num == 7) && f.wt == WT_VARINT) {
			/* hashType, fanout (HAMT), mode: not needed to read a file */
		} else if (f.num == 8 && f.wt == WT_BYTES) {
			/* mtime */
		} else {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "unixfs: unknown field %llu (wire type %u)",
					     (unsigned long long)f.num, f.wt);
			goto fail;
		}
	}
	if (!has_type) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "unixfs: no Type");
		goto fail;
	}
	*out = u;
	return 0;
fail:
	free(u.blocksizes);
	return rc;
}

void cairn_unixfs_release(struct cairn_unixfs *u)
{
	free(u->blocksizes);
	u->blocksizes = NULL;
	u->n_blocksizes = 0;
}
