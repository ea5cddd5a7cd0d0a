/*
 * ipfs-index-file.c - the chunk index of an item kept on disk beside the
 * server's cache (DIR/<key>.idx), so a restarted server does not cut every
 * NAR again.  One file per item the index holds in memory: written when an
 * item is indexed (a temporary name, then renamed), removed when it is
 * forgotten, so the files stay as bounded as the index.
 *
 *   file   = "CAIRNIX1" u32 kind u32 min u32 avg u32 max u64 nar_size
 *            u64 n_chunks (u64 offset, 32-byte sha2-256)*n_chunks
 *            u64 n_nodes (u32 length, dag-pb bytes)*n_nodes
 *   numbers little-endian; nodes in the builder's order (each after its
 *   children, the root last); the end offset of the last chunk is nar_size
 *
 * A file is trusted no further than the NAR it describes: it is read only
 * for the same chunker and NAR size, within bounds, every node is hashed to
 * make its CID, and the DAG must cover the chunks (build_order); chunks are
 * checked against their CIDs when served anyway.  A file that fails is
 * ignored and the NAR indexed again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipfs-gateway.h"
#include "cairn/banned.h"

static const char magic[8] = {'C', 'A', 'I', 'R', 'N', 'I', 'X', '1'};
/* A file far larger than any index: 2^20 chunks of 40 bytes and their nodes. */
#define INDEX_FILE_MAX ((uint64_t)256 << 20)

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static int path_of(char *out, size_t cap, const char *dir, const char *key)
{
	int n = snprintf(out, cap, "%s/%s.idx", dir, key);
	return n > 0 && (size_t)n < cap ? 0 : CAIRN_ELIMIT;
}

static int write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return CAIRN_EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int ipfs_index_file_save(const char *dir, const struct ipfs_gw_item *it)
{
	const struct cairn_chunker_spec *spec = &it->spec;
	char path[4096], tmp[4096 + 16];
	if (path_of(path, sizeof(path), dir, it->key) != 0)
		return CAIRN_ELIMIT;
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return CAIRN_EIO;
	uint8_t h[8 + 16 + 8 + 8], rec[40];
	memcpy(h, magic, 8);
	uint32_t v[4] = {(uint32_t)spec->kind, spec->min, spec->avg, spec->max};
	for (int i = 0; i < 4; i++)
		for (int k = 0; k < 4; k++)
			h[8 + 4 * i + k] = (uint8_t)(v[i] >> (8 * k));
	put64(h + 24, it->nar_size);
	put64(h + 32, it->n_leaves);
	int rc = write_all(fd, h, sizeof(h));
	for (size_t i = 0; rc == 0 && i < it->n_leaves; i++) {
		put64(rec, it->leaf_off[i]);
		memcpy(rec + 8, it->leaf_digest[i], 32);
		rc = write_all(fd, rec, sizeof(rec));
	}
	put64(rec, it->n_nodes);
	if (rc == 0)
		rc = write_all(fd, rec, 8);
	for (size_t i = 0; rc == 0 && i < it->n_nodes; i++) {
		uint8_t l[4];
		for (int k = 0; k < 4; k++)
			l[k] = (uint8_t)(it->nodes[i].len >> (8 * k));
		rc = write_all(fd, l, 4);
		if (rc == 0)
			rc = write_all(fd, it->nodes[i].data, it->nodes[i].len);
	}
	if (close(fd) != 0 && rc == 0)
		rc = CAIRN_EIO;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = CAIRN_EIO;
	if (rc)
		unlink(tmp);
	return rc;
}

void ipfs_index_file_drop(const char *dir, const char *key)
{
	char path[4096];
	if (path_of(path, sizeof(path), dir, key) == 0)
		unlink(path);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	uint8_t *buf = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size <= INDEX_FILE_MAX &&
	    st.st_size > 0 && (buf = malloc((size_t)st.st_size))) {
		size_t got = 0;
		while (got < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (got != (size_t)st.st_size) {
			free(buf);
			buf = NULL;
		}
		*len = got;
	}
	close(fd);
	return buf;
}

int ipfs_index_file_load(const char *dir, const struct cairn_chunker_spec *spec, const char *key,
			 uint64_t nar_size, struct ipfs_gw_item *it)
{
	char path[4096];
	size_t len = 0;
	if (path_of(path, sizeof(path), dir, key) != 0)
		return CAIRN_ENOENT;
	uint8_t *b = read_file(path, &len);
	if (!b)
		return CAIRN_ENOENT;
	int rc = CAIRN_EFORMAT;
	size_t o = 8 + 16 + 16;
	uint32_t v[4] = {0, 0, 0, 0};
	if (len < o || memcmp(b, magic, 8) != 0)
		goto out;
	for (int i = 0; i < 4; i++)
		for (int k = 3; k >= 0; k--)
			v[i] = v[i] << 8 | b[8 + 4 * i + k];
	uint64_t n = get64(b + 32);
	if (v[0] != (uint32_t)spec->kind || v[1] != spec->min || v[2] != spec->avg ||
	    v[3] != spec->max || get64(b + 24) != nar_size || n == 0 || n > (len - o) / 40)
		goto out;
	it->leaf_off = calloc(n + 1, sizeof(*it->leaf_off));
	it->leaf_digest = calloc(n, sizeof(*it->leaf_digest));
	it->leaf_seq = calloc(n + 1, sizeof(*it->leaf_seq));
	if (!it->leaf_off || !it->leaf_digest || !it->leaf_seq) {
		rc = CAIRN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++, o += 40) {
		it->leaf_off[i] = get64(b + o);
		memcpy(it->leaf_digest[i], b + o + 8, 32);
		/* chunks in order, none empty but an empty NAR's one, none too big */
		uint64_t prev = i ? it->leaf_off[i - 1] : 0;
		if ((i == 0 && it->leaf_off[0] != 0) || (i && it->leaf_off[i] <= prev) ||
		    it->leaf_off[i] - prev > CAIRN_CHUNK_MAX)
			goto out;
	}
	it->n_leaves = (size_t)n;
	it->leaf_off[n] = nar_size;
	if (nar_size < it->leaf_off[n - 1] || nar_size - it->leaf_off[n - 1] > CAIRN_CHUNK_MAX ||
	    len - o < 8)
		goto out;
	uint64_t nn = get64(b + o);
	o += 8;
	if (nn > (len - o) / 5)
		goto out;
	it->nodes = calloc(nn ? nn : 1, sizeof(*it->nodes));
	if (!it->nodes) {
		rc = CAIRN_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nn; i++) {
		if (len - o < 4)
			goto out;
		size_t l = (size_t)b[o] | (size_t)b[o + 1] << 8 | (size_t)b[o + 2] << 16 |
			   (size_t)b[o + 3] << 24;
		o += 4;
		if (l > len - o || l > CAIRN_IPFS_BLOCK_MAX)
			goto out;
		struct ipfs_gw_node *nd = &it->nodes[i];
		nd->data = malloc(l ? l : 1);
		if (!nd->data) {
			rc = CAIRN_ENOMEM;
			goto out;
		}
		memcpy(nd->data, b + o, l);
		nd->len = l;
		cairn_cid_sha256(&nd->cid, CAIRN_IPFS_DAG_PB, nd->data, l);
		it->n_nodes = i + 1;
		o += l;
	}
	if (o != len)
		goto out;
	it->nar_size = nar_size;
	it->spec = *spec;
	if (it->n_nodes)
		it->root = it->nodes[it->n_nodes - 1].cid;
	else
		ipfs_gw_seq_cid(it, 0, &it->root);
	rc = 0;
out:
	free(b);
	return rc;
}
