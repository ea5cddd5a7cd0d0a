/*
 * car-dfs.c - a file's blocks in DFS pre-order (parents before children),
 * the order a served CAR has (order=dfs in the trustless gateway spec), so
 * that a streaming reader can check every block against a link it has
 * already verified as the block arrives.
 *
 * The builder (lib/ipfs-dag.c) makes a node only once its children are
 * made: the first pass over the file keeps the nodes (small: one per 174
 * chunks) and each chunk's length and digest, never the chunks; the second
 * pass gives the file's bytes again and the chunks are sent as they come,
 * in file order, each after the nodes above it.  A block that comes twice
 * in the DAG (chunks of zeros) is sent once, at its first place, as a
 * served CAR's dups=n.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/ipfs.h"
#include "map.h"
#include "cairn/banned.h"

/* Deeper than any balanced DAG of a file cairn can hold. */
#define DEPTH_MAX 16

struct dfs_node {
	struct cairn_cid cid;
	uint8_t *data;
	size_t len;
	bool placed;
};

struct cairn_car_dfs {
	cairn_ipfs_block_cb out;
	void *user;
	/* the first pass */
	size_t n_leaves, cap_leaves;
	uint64_t *leaf_len;
	uint8_t (*leaf_digest)[32];
	struct dfs_node *nodes;
	size_t n_nodes, cap_nodes;
	/* the order: a chunk (>= 0) or a node (-1 - its index) */
	int64_t *seq;
	size_t n_seq, pos;
	/* the second pass */
	size_t cur;    /* chunk being filled */
	uint8_t *buf;  /* its bytes */
	uint64_t fill; /* of it */
	struct map *sent; /* CIDs out */
	bool ordered, failed;
};

int cairn_car_dfs_new(struct cairn_car_dfs **out, cairn_ipfs_block_cb cb, void *user,
		      struct cairn_error *err)
{
	struct cairn_car_dfs *d = calloc(1, sizeof(*d));
	if (!d || !(d->buf = malloc(CAIRN_CHUNK_MAX)) || !(d->sent = map_new(NULL))) {
		if (d)
			free(d->buf);
		free(d);
		return cairn_error_set(err, CAIRN_ENOMEM, "car: out of memory");
	}
	d->out = cb;
	d->user = user;
	*out = d;
	return 0;
}

void cairn_car_dfs_free(struct cairn_car_dfs *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_nodes; i++)
		free(d->nodes[i].data);
	free(d->nodes);
	free(d->leaf_len);
	free(d->leaf_digest);
	free(d->seq);
	free(d->buf);
	map_free(d->sent);
	free(d);
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 64;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * size);
	if (!q)
		return CAIRN_ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

int cairn_car_dfs_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct cairn_car_dfs *d = user;
	if (cid->codec == CAIRN_IPFS_RAW) {
		if (cid->len != 32 || len > CAIRN_CHUNK_MAX)
			return CAIRN_EINVAL;
		size_t c1 = d->cap_leaves, c2 = d->cap_leaves;
		if (grow((void **)&d->leaf_len, &c1, d->n_leaves + 1, sizeof(*d->leaf_len)) ||
		    grow((void **)&d->leaf_digest, &c2, d->n_leaves + 1, sizeof(*d->leaf_digest)))
			return CAIRN_ENOMEM;
		d->cap_leaves = c1 < c2 ? c1 : c2;
		d->leaf_len[d->n_leaves] = len;
		memcpy(d->leaf_digest[d->n_leaves], cid->digest, 32);
		d->n_leaves++;
		return 0;
	}
	if (grow((void **)&d->nodes, &d->cap_nodes, d->n_nodes + 1, sizeof(*d->nodes)))
		return CAIRN_ENOMEM;
	struct dfs_node *n = &d->nodes[d->n_nodes];
	if (!(n->data = malloc(len ? len : 1)))
		return CAIRN_ENOMEM;
	memcpy(n->data, data, len);
	n->len = len;
	n->cid = *cid;
	n->placed = false;
	d->n_nodes++;
	return 0;
}

/* Place node j and what is under it; *next_leaf: the next chunk in file
 * order, which every raw link must name. */
static int place(struct cairn_car_dfs *d, size_t j, size_t *next_leaf, int depth,
		 struct cairn_error *err)
{
	struct cairn_pbnode pb;
	if (depth > DEPTH_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "car: DAG deeper than %d", DEPTH_MAX);
	int rc = cairn_pbnode_decode(d->nodes[j].data, d->nodes[j].len, &pb, err);
	if (rc)
		return rc;
	d->nodes[j].placed = true;
	d->seq[d->n_seq++] = -1 - (int64_t)j;
	for (size_t l = 0; rc == 0 && l < pb.n_links; l++) {
		const struct cairn_cid *c = &pb.links[l].cid;
		if (c->codec == CAIRN_IPFS_RAW) {
			size_t k = (*next_leaf)++;
			if (k >= d->n_leaves || c->len != 32 ||
			    memcmp(c->digest, d->leaf_digest[k], 32) != 0)
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "car: chunk %zu is not where its node says", k);
			else
				d->seq[d->n_seq++] = (int64_t)k;
			continue;
		}
		/* made before its parent, the nearest unplaced one with that CID */
		size_t m = j;
		while (m > 0 && (d->nodes[m - 1].placed || !cairn_cid_equal(&d->nodes[m - 1].cid, c)))
			m--;
		rc = m == 0 ? cairn_error_set(err, CAIRN_EFORMAT, "car: a node's child is missing")
			    : place(d, m - 1, next_leaf, depth + 1, err);
	}
	cairn_pbnode_release(&pb);
	return rc;
}

int cairn_car_dfs_order(struct cairn_car_dfs *d, const struct cairn_cid *root,
			struct cairn_error *err)
{
	d->seq = calloc(d->n_leaves + d->n_nodes + 1, sizeof(*d->seq));
	if (!d->seq)
		return cairn_error_set(err, CAIRN_ENOMEM, "car: out of memory");
	size_t next_leaf = 0;
	int rc = 0;
	if (d->n_nodes == 0) {
		/* one chunk: the file is that raw block */
		if (d->n_leaves != 1)
			return cairn_error_set(err, CAIRN_EFORMAT, "car: %zu chunks, no node",
					       d->n_leaves);
		d->seq[d->n_seq++] = 0;
		next_leaf = 1;
	} else if (!cairn_cid_equal(&d->nodes[d->n_nodes - 1].cid, root)) {
		return cairn_error_set(err, CAIRN_EFORMAT, "car: the root was not made last");
	} else if ((rc = place(d, d->n_nodes - 1, &next_leaf, 0, err)) != 0) {
		return rc;
	}
	if (next_leaf != d->n_leaves || d->n_seq != d->n_leaves + d->n_nodes)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "car: the DAG does not cover its %zu chunks", d->n_leaves);
	d->ordered = true;
	return 0;
}

/* Send a block unless it was sent already. */
static int send(struct cairn_car_dfs *d, const struct cairn_cid *cid, const uint8_t *data,
		size_t len, struct cairn_error *err)
{
	char s[CAIRN_CID_STR_MAX];
	if (cairn_cid_format(cid, s) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "car: a block without a CIDv1");
	if (map_get(d->sent, s))
		return 0;
	if (map_put(d->sent, s, d, NULL) < 0)
		return cairn_error_set(err, CAIRN_ENOMEM, "car: out of memory");
	int rc = d->out(cid, data, len, d->user);
	return rc ? cairn_error_set(err, rc, "car: cannot write a block") : 0;
}

/* Send the entries up to and including chunk d->cur, whose bytes are in
 * d->buf. */
static int send_upto_chunk(struct cairn_car_dfs *d, struct cairn_error *err)
{
	for (; d->pos < d->n_seq; d->pos++) {
		int64_t e = d->seq[d->pos];
		struct cairn_cid cid;
		int rc;
		if (e < 0) {
			const struct dfs_node *n = &d->nodes[-1 - e];
			rc = send(d, &n->cid, n->data, n->len, err);
		} else {
			if ((size_t)e != d->cur)
				return cairn_error_set(err, CAIRN_EFORMAT, "car: chunks out of order");
			cairn_cid_sha256(&cid, CAIRN_IPFS_RAW, d->buf, (size_t)d->fill);
			if (memcmp(cid.digest, d->leaf_digest[e], 32) != 0)
				return cairn_error_set(err, CAIRN_EHASH,
						       "car: chunk %zu changed between the two "
						       "passes over the input",
						       d->cur);
			rc = send(d, &cid, d->buf, (size_t)d->fill, err);
			d->pos++;
			d->cur++;
			d->fill = 0;
			return rc;
		}
		if (rc)
			return rc;
	}
	return cairn_error_set(err, CAIRN_EFORMAT, "car: the input grew between the two passes");
}

/* Chunks whose bytes are all in: out. */
static int flush_full(struct cairn_car_dfs *d, struct cairn_error *err)
{
	while (d->cur < d->n_leaves && d->fill == d->leaf_len[d->cur]) {
		int rc = send_upto_chunk(d, err);
		if (rc)
			return rc;
	}
	return 0;
}

int cairn_car_dfs_write(struct cairn_car_dfs *d, const void *data, size_t len,
			struct cairn_error *err)
{
	if (!d->ordered || d->failed)
		return cairn_error_set(err, CAIRN_EINVAL, "car: not ordered, or failed");
	const uint8_t *p = data;
	int rc = flush_full(d, err);
	while (rc == 0 && len) {
		if (d->cur >= d->n_leaves) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "car: the input grew between the two passes");
			break;
		}
		uint64_t want = d->leaf_len[d->cur] - d->fill;
		size_t take = want < len ? (size_t)want : len;
		memcpy(d->buf + d->fill, p, take);
		d->fill += take;
		p += take;
		len -= take;
		rc = flush_full(d, err);
	}
	d->failed = rc != 0;
	return rc;
}

int cairn_car_dfs_finish(struct cairn_car_dfs *d, struct cairn_error *err)
{
	if (!d->ordered || d->failed)
		return cairn_error_set(err, CAIRN_EINVAL, "car: not ordered, or failed");
	int rc = flush_full(d, err);
	if (rc == 0 && (d->cur != d->n_leaves || d->pos != d->n_seq))
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "car: the input shrank between the two passes");
	d->failed = rc != 0;
	return rc;
}
