/*
 * car-dfs.c - a file's blocks in DFS pre-order (parents before children),
 * the order a served CAR has (order=dfs in the trustless gateway spec), so
 * that a streaming reader can check every block against a link it has
 * already verified as the block arrives.
 *
 * The builder (lib/ipfs-dag.c) makes a node only once its children are
 * made: the first pass over the file keeps the nodes (small: one per 174
 * chunks) and each chunk's length and digest, never the chunks, in an item
 * of the gateway's index, whose orderer (ipfs-index.c) puts them in DFS
 * order as it does for the CARs the gateway serves; the second
 * pass gives the file's bytes again and the chunks are sent as they come,
 * in file order, each after the nodes above it.  A block that comes twice
 * in the DAG (chunks of zeros) is sent once, at its first place, as a
 * served CAR's dups=n.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/ipfs.h"
#include "ipfs-gateway.h"
#include "map.h"
#include "cairn/banned.h"

struct cairn_car_dfs {
	cairn_ipfs_block_cb out;
	void *user;
	/* the first pass: the gateway index's item, ordered by its orderer */
	struct ipfs_gw_item *it;
	struct ipfs_gw_build b;
	size_t pos; /* next entry of it->seq */
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
	if (!d || !(d->buf = malloc(CAIRN_CHUNK_MAX)) || !(d->sent = map_new(NULL)) ||
	    !(d->it = calloc(1, sizeof(*d->it)))) {
		if (d) {
			free(d->buf);
			map_free(d->sent);
		}
		free(d);
		return cairn_error_set(err, CAIRN_ENOMEM, "car: out of memory");
	}
	d->b.it = d->it;
	d->out = cb;
	d->user = user;
	*out = d;
	return 0;
}

void cairn_car_dfs_free(struct cairn_car_dfs *d)
{
	if (!d)
		return;
	ipfs_gw_build_release(&d->b);
	ipfs_gw_item_free(d->it);
	free(d->buf);
	map_free(d->sent);
	free(d);
}

int cairn_car_dfs_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct cairn_car_dfs *d = user;
	if (cid->codec == CAIRN_IPFS_RAW && (cid->len != 32 || len > CAIRN_CHUNK_MAX))
		return CAIRN_EINVAL;
	return ipfs_gw_build_block(cid, data, len, &d->b);
}

int cairn_car_dfs_order(struct cairn_car_dfs *d, const struct cairn_cid *root,
			struct cairn_error *err)
{
	d->it->root = *root;
	d->it->nar_size = d->b.off;
	int rc = ipfs_gw_build_order(&d->b, err);
	if (rc)
		return rc;
	d->ordered = true;
	return 0;
}

static uint64_t leaf_len(const struct cairn_car_dfs *d, size_t k)
{
	return d->it->leaf_off[k + 1] - d->it->leaf_off[k];
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
	const struct ipfs_gw_item *it = d->it;
	for (; d->pos < it->n_seq; d->pos++) {
		int64_t e = it->seq[d->pos];
		struct cairn_cid cid;
		int rc;
		if (e < 0) {
			const struct ipfs_gw_node *n = &it->nodes[-1 - e];
			rc = send(d, &n->cid, n->data, n->len, err);
		} else {
			if ((size_t)e != d->cur)
				return cairn_error_set(err, CAIRN_EFORMAT, "car: chunks out of order");
			cairn_cid_sha256(&cid, CAIRN_IPFS_RAW, d->buf, (size_t)d->fill);
			if (memcmp(cid.digest, it->leaf_digest[e], 32) != 0)
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
	while (d->cur < d->it->n_leaves && d->fill == leaf_len(d, d->cur)) {
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
		if (d->cur >= d->it->n_leaves) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "car: the input grew between the two passes");
			break;
		}
		uint64_t want = leaf_len(d, d->cur) - d->fill;
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
	if (rc == 0 && (d->cur != d->it->n_leaves || d->pos != d->it->n_seq))
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "car: the input shrank between the two passes");
	d->failed = rc != 0;
	return rc;
}
