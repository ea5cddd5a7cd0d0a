/*
 * fuzz-dagpb.c - dag-pb nodes and UnixFS data from untrusted blocks
 * (lib/unixfs.c), and CID text (lib/cid.c).  Besides "no crash": every
 * pointer the decoder returns lies inside the input; every link's CID
 * prints and reads back to itself; a node that is a UnixFS file node as
 * cairn writes them re-encodes to the same bytes (one encoding per node);
 * a CID string that parses prints back to the same text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/ipfs.h"
#include "../lib/ipfs-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *p, size_t len, const uint8_t *data, size_t size)
{
	if (p && (p < data || p + len > data + size))
		abort();
}

static void check_cid(const struct cairn_cid *c)
{
	uint8_t b[CAIRN_CID_BIN_MAX];
	size_t n = cairn_cid_to_bytes(c, b), used;
	struct cairn_cid d;
	if (cairn_cid_from_bytes(b, n, &d, &used, NULL) != 0 || used != n || !cairn_cid_equal(c, &d))
		abort();
	char s[CAIRN_CID_STR_MAX];
	if (c->version == 1) {
		if (cairn_cid_format(c, s) != 0 || cairn_cid_parse(s, strlen(s), &d, NULL) != 0 ||
		    !cairn_cid_equal(c, &d))
			abort();
	}
}

/* A file node as the builder writes it: re-encoding gives the input back. */
static void check_canonical(const struct cairn_pbnode *n, const struct cairn_unixfs *u,
			    const uint8_t *data, size_t size)
{
	if (u->type != CAIRN_UNIXFS_FILE || u->data || !u->has_filesize || !n->n_links ||
	    u->n_blocksizes != n->n_links || n->n_links > 174)
		return;
	struct ipfs_child c[174];
	uint64_t sum = 0;
	for (size_t i = 0; i < n->n_links; i++) {
		const struct cairn_pblink *l = &n->links[i];
		if (!l->name || l->name_len || !l->has_tsize || l->cid.version != 1)
			return;
		c[i].cid = l->cid;
		c[i].tsize = l->tsize;
		c[i].filesize = u->blocksizes[i];
		sum += u->blocksizes[i];
	}
	if (sum != u->filesize)
		return;
	size_t cap = unixfs_file_node_bound(n->n_links);
	uint8_t *out = malloc(cap);
	if (!out)
		return;
	size_t len = unixfs_file_node_encode(c, n->n_links, out, cap);
	/* the decoder refuses what is not minimal, so the bytes must agree */
	if (len != size || memcmp(out, data, size) != 0) {
		/* packed blocksizes or a hashType are other valid spellings */
		int other = 0;
		for (size_t i = 0; i + 1 < n->data_len; i++)
			other |= n->data[i] == 0x22 || n->data[i] == 0x28 || n->data[i] == 0x30 ||
				 n->data[i] == 0x38 || n->data[i] == 0x42;
		if (!other)
			abort();
	}
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (cairn_init() != 0)
			abort();
		ready = 1;
	}
	struct cairn_pbnode n;
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_pbnode_decode(data, size, &n, &err);
	if (rc == 0) {
		inside(n.data, n.data_len, data, size);
		for (size_t i = 0; i < n.n_links; i++) {
			inside(n.links[i].name, n.links[i].name_len, data, size);
			check_cid(&n.links[i].cid);
		}
		struct cairn_unixfs u;
		if (n.data && cairn_unixfs_decode(n.data, n.data_len, &u, NULL) == 0) {
			inside(u.data, u.data_len, n.data, n.data_len);
			if (u.n_blocksizes > CAIRN_PBNODE_LINKS_MAX)
				abort();
			check_canonical(&n, &u, data, size);
			cairn_unixfs_release(&u);
		}
		cairn_pbnode_release(&n);
	} else if (!err.msg[0] || err.code != rc) {
		abort();
	}

	/* the same bytes as UnixFS data alone, and as CID text */
	struct cairn_unixfs u;
	if (cairn_unixfs_decode(data, size, &u, NULL) == 0)
		cairn_unixfs_release(&u);
	struct cairn_cid c;
	if (cairn_cid_parse((const char *)data, size, &c, NULL) == 0) {
		char s[CAIRN_CID_STR_MAX];
		if (cairn_cid_format(&c, s) != 0 || strlen(s) != size || memcmp(s, data, size) != 0)
			abort();
	}
	size_t used;
	if (cairn_cid_from_bytes(data, size, &c, &used, NULL) == 0) {
		if (used > size)
			abort();
		check_cid(&c);
	}
	return 0;
}
