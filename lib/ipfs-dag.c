/*
 * ipfs-dag.c - the streaming UnixFS file DAG builder.
 *
 * The layout is ipfs-unixfs-importer's "balanced" one, which is a
 * recursion over levels: cut the level's nodes, in order, into runs of 174
 * (the last run shorter), make one file node over each run; repeat on the
 * new level until it has one node, which is the root.  A file of one chunk
 * is that chunk's raw block (reduceSingleLeafToSelf), but a run of one
 * anywhere else still gets its own node (as the importer does).
 *
 * Streamed: level k keeps only its current run; when a run reaches 174 it
 * becomes a node of level k+1 at once, which is the same cut as the
 * recursion makes.  At the end, from the bottom up, a level's partial run
 * becomes a node one level up, until a level that ever held exactly one
 * entry: that entry is the root.  Memory: the chunker's buffer plus 174
 * children per level (CAIRN_IPFS_DAG_DEPTH_MAX levels cover 174^8 chunks).
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/ipfs.h"
#include "ipfs-int.h"
#include "cairn/banned.h"

#define DAG_WIDTH 174
/* 174^8 chunks of 1 byte already exceed 2^59 bytes. */
#define DAG_DEPTH_MAX 9

struct level {
	struct ipfs_child run[DAG_WIDTH];
	size_t n;	/* in run */
	uint64_t total; /* entries ever added */
};

struct cairn_ipfs_add {
	struct cdc cdc;
	cairn_ipfs_block_cb cb;
	void *user;
	struct level levels[DAG_DEPTH_MAX];
	size_t depth; /* levels in use */
	uint8_t *node; /* encoding buffer, unixfs_file_node_bound(DAG_WIDTH) */
	size_t node_cap;
	uint64_t size, blocks;
	bool finished;
	struct cairn_error *err; /* while a write runs */
};

static int level_add(struct cairn_ipfs_add *a, size_t k, const struct ipfs_child *c);

/* Make the node over level k's run, and add it to level k+1. */
static int level_flush(struct cairn_ipfs_add *a, size_t k)
{
	struct level *lv = &a->levels[k];
	size_t len = unixfs_file_node_encode(lv->run, lv->n, a->node, a->node_cap);
	if (!len)
		BUG("dag node buffer too small for %zu links", lv->n);
	struct ipfs_child c;
	cairn_cid_sha256(&c.cid, CAIRN_IPFS_DAG_PB, a->node, len);
	c.tsize = len;
	c.filesize = 0;
	for (size_t i = 0; i < lv->n; i++) {
		c.tsize += lv->run[i].tsize;
		c.filesize += lv->run[i].filesize;
	}
	lv->n = 0;
	a->blocks++;
	int rc = a->cb ? a->cb(&c.cid, a->node, len, a->user) : 0;
	if (rc)
		return rc;
	return level_add(a, k + 1, &c);
}

static int level_add(struct cairn_ipfs_add *a, size_t k, const struct ipfs_child *c)
{
	if (k == DAG_DEPTH_MAX)
		return cairn_error_set(a->err, CAIRN_ELIMIT, "ipfs: file too big for %d levels",
				       DAG_DEPTH_MAX);
	if (k == a->depth)
		a->depth = k + 1;
	struct level *lv = &a->levels[k];
	lv->run[lv->n++] = *c;
	lv->total++;
	if (lv->n == DAG_WIDTH)
		return level_flush(a, k);
	return 0;
}

static int on_chunk(const uint8_t *chunk, size_t len, void *user)
{
	struct cairn_ipfs_add *a = user;
	struct ipfs_child c;
	cairn_cid_sha256(&c.cid, CAIRN_IPFS_RAW, chunk, len);
	c.tsize = len;
	c.filesize = len;
	a->size += len;
	a->blocks++;
	int rc = a->cb ? a->cb(&c.cid, chunk, len, a->user) : 0;
	if (rc)
		return rc;
	return level_add(a, 0, &c);
}

int cairn_ipfs_add_new(const struct cairn_chunker_spec *spec, cairn_ipfs_block_cb cb, void *user,
		       struct cairn_ipfs_add **out, struct cairn_error *err)
{
	struct cairn_ipfs_add *a = calloc(1, sizeof(*a));
	if (!a)
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs: out of memory");
	int rc = cdc_init(&a->cdc, spec, err);
	if (rc) {
		free(a);
		return rc;
	}
	a->node_cap = unixfs_file_node_bound(DAG_WIDTH);
	a->node = malloc(a->node_cap);
	if (!a->node) {
		cairn_ipfs_add_free(a);
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs: out of memory");
	}
	a->cb = cb;
	a->user = user;
	*out = a;
	return 0;
}

int cairn_ipfs_add_write(struct cairn_ipfs_add *a, const void *data, size_t len,
			 struct cairn_error *err)
{
	if (a->finished)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs: write after finish");
	a->err = err;
	int rc = cdc_push(&a->cdc, data, len, on_chunk, a);
	a->err = NULL;
	if (rc && !(err && err->code))
		cairn_error_set(err, rc, "ipfs: a block could not be stored");
	return rc;
}

int cairn_ipfs_add_finish(struct cairn_ipfs_add *a, struct cairn_cid *root, uint64_t *size,
			  struct cairn_error *err)
{
	if (a->finished)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs: finished twice");
	a->finished = true;
	a->err = err;
	int rc = cdc_finish(&a->cdc, on_chunk, a);
	for (size_t k = 0; !rc; k++) {
		if (k >= a->depth)
			BUG("dag builder: no root at level %zu", k);
		struct level *lv = &a->levels[k];
		if (lv->total == 1) {
			/* the one entry this level ever had is the root; a lone
			 * chunk stays a raw block */
			*root = lv->run[0].cid;
			if (size)
				*size = a->size;
			break;
		}
		if (lv->n)
			rc = level_flush(a, k);
	}
	a->err = NULL;
	if (rc && !(err && err->code))
		cairn_error_set(err, rc, "ipfs: a block could not be stored");
	return rc;
}

uint64_t cairn_ipfs_add_blocks(const struct cairn_ipfs_add *a)
{
	return a->blocks;
}

void cairn_ipfs_add_free(struct cairn_ipfs_add *a)
{
	if (!a)
		return;
	cdc_release(&a->cdc);
	free(a->node);
	free(a);
}
