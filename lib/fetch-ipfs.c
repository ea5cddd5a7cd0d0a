/*
 * fetch-ipfs.c - fetch's bytes from IPFS gateways (ipfs-fetch.h) when the
 * accepted narinfo names the NAR's root CID: tried before the servers'
 * NAR files, through the download engine's pipeline and checks
 * (cairn_dl_check_stream) into the item's own sink.  Any failure falls
 * back to the servers, the sink discarded.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "download.h"
#include "fetch-int.h"
#include "cairn/ipfs-fetch.h"
#include "cairn/banned.h"

/* The narinfo's IPFS field: the accepted one's, else a source's that
 * claims the same (it is a hint; the NarHash decides). */
static bool item_cid(const struct item *it, struct cairn_cid *cid)
{
	if (cairn_ipfs_narinfo_cid(it->chosen, cid))
		return true;
	for (size_t k = 0; k < it->n_srcs; k++)
		if (cairn_ipfs_narinfo_cid(it->ans[it->srcs[k]].ni, cid))
			return true;
	return false;
}

/* The item itself and each reference, by name: the hash it has now. */
static const char *new_hash(const struct item *it, const char *name, size_t nl)
{
	if (strlen(it->sp.name) == nl && !memcmp(it->sp.name, name, nl))
		return it->sp.hash;
	const struct cairn_narinfo *ni = it->chosen;
	for (size_t i = 0; ni && i < ni->n_refs; i++) {
		const char *r = ni->refs[i];
		if (strlen(r) == CAIRN_STORE_HASH_LEN + 1 + nl && r[CAIRN_STORE_HASH_LEN] == '-' &&
		    !memcmp(r + CAIRN_STORE_HASH_LEN + 1, name, nl))
			return r;
	}
	return NULL;
}

/*
 * Delta: what the target holds under the same name (another hash, an
 * earlier version) is chunked into the block cache, so that only the blocks
 * that changed are asked for.  Its references are rewritten first as Nix
 * would: any item of the target named as the new version or one of its
 * references, under another hash, gets the new hash.  So a rebuild against
 * a dependency whose path changed costs only the blocks that really differ.
 */
static void seed_previous(void *ctx, const struct cairn_chunker_spec *spec)
{
	struct item *it = ctx;
	struct cairn_fetch *f = it->f;
	struct cairn_ipfs_fetch_config cfg = *f->cfg.ipfs;
	const struct cairn_ipfs_fetch_config *ic = &cfg;
	cfg.chunker = *spec;
	char dir[4096], p[4096];
	size_t ext = f->cfg.nar_dir ? 4 : 0; /* ".nar" */
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", f->cfg.nar_dir ? f->cfg.nar_dir : f->cfg.root,
			     f->cfg.nar_dir ? "" : f->store_dir) >= sizeof(dir))
		return;
	char from[CAIRN_IPFS_REWRITE_MAX][CAIRN_IPFS_HASH_LEN];
	char to[CAIRN_IPFS_REWRITE_MAX][CAIRN_IPFS_HASH_LEN];
	char (*prev)[256] = calloc(16, sizeof(*prev));
	size_t n_rw = 0, n_prev = 0;
	DIR *d = opendir(dir);
	if (!d || !prev) {
		free(prev);
		if (d)
			closedir(d);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		if (len <= CAIRN_STORE_HASH_LEN + 1 + ext || n[CAIRN_STORE_HASH_LEN] != '-' ||
		    strstr(n, ".tmp") || (ext && strcmp(n + len - 4, ".nar")))
			continue;
		const char *name = n + CAIRN_STORE_HASH_LEN + 1;
		size_t nl = len - CAIRN_STORE_HASH_LEN - 1 - ext;
		const char *h = new_hash(it, name, nl);
		if (!h || !memcmp(h, n, CAIRN_STORE_HASH_LEN))
			continue;
		if (n_rw < CAIRN_IPFS_REWRITE_MAX) {
			memcpy(from[n_rw], n, CAIRN_IPFS_HASH_LEN);
			memcpy(to[n_rw], h, CAIRN_IPFS_HASH_LEN);
			n_rw++;
		}
		if (h == it->sp.hash && n_prev < 16 && strlen(n) < sizeof(prev[0]))
			memcpy(prev[n_prev++], n, strlen(n) + 1);
	}
	closedir(d);
	for (size_t i = 0; i < n_prev; i++) {
		struct cairn_error e;
		cairn_error_init(&e);
		uint64_t k = 0;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, prev[i]) < sizeof(p) &&
		    cairn_ipfs_seed_rewritten(ic, p, (const char(*)[CAIRN_IPFS_HASH_LEN])from,
					      (const char(*)[CAIRN_IPFS_HASH_LEN])to, n_rw, &k,
					      &e) == 0 &&
		    f->cfg.ipfs_stats)
			f->cfg.ipfs_stats->seeded += k;
	}
	free(prev);
}

struct produce {
	struct cairn_ipfs_fetch_config cfg;
	struct cairn_cid root;
	uint64_t max;
	const char *gateway;
	struct cairn_ipfs_fetch_stats *st;
};

static int produce(void *ctx, cairn_dl_write_fn write, void *wctx, struct cairn_error *err)
{
	struct produce *p = ctx;
	return cairn_ipfs_fetch_file(&p->cfg, &p->root, p->max, write, wctx, &p->gateway, p->st,
				     err);
}

bool fetch_try_ipfs(struct item *it, const struct cairn_dl_sink *sink)
{
	struct cairn_fetch *f = it->f;
	struct cairn_ipfs_fetch_stats dummy = {0};
	if (!f->cfg.ipfs || !f->cfg.ipfs->n_gateways)
		return false;
	struct produce p = {.cfg = *f->cfg.ipfs, .max = it->nar_size,
			    .st = f->cfg.ipfs_stats ? f->cfg.ipfs_stats : &dummy};
	if (!item_cid(it, &p.root))
		return false;
	/* the previous version, once the DAG says which chunker to cut it with */
	p.cfg.seed = seed_previous;
	p.cfg.seed_ctx = it;
	struct cairn_dl_expect ex = {.nar_hash = it->nar_hash, .nar_size = it->nar_size,
				     .by_ca = it->by_ca, .ca = it->ca, .sp = it->sp};
	struct cairn_error e;
	cairn_error_init(&e);
	uint64_t before = p.st->bytes;
	int rc = cairn_dl_check_stream(&ex, produce, &p, sink, &e);
	it->dl_bytes += p.st->bytes - before;
	f->bytes_received += p.st->bytes - before;
	if (rc) {
		fetch_reason_add(it, "ipfs: %s", cairn_error_msg(&e));
		return false;
	}
	it->server_used = p.gateway;
	it->compression = "ipfs";
	return true;
}
