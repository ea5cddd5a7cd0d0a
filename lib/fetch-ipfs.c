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

/*
 * Delta: what the target holds under the same name (another hash, an
 * earlier version), chunked into the block cache, so that only the blocks
 * that changed are asked for.
 */
static void seed_previous(struct item *it)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_ipfs_fetch_config *ic = f->cfg.ipfs;
	char dir[4096], p[4096];
	if ((size_t)snprintf(dir, sizeof(dir), "%s%s", f->cfg.nar_dir ? f->cfg.nar_dir : f->cfg.root,
			     f->cfg.nar_dir ? "" : f->store_dir) >= sizeof(dir))
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	size_t nl = strlen(it->sp.name);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		size_t want = CAIRN_STORE_HASH_LEN + 1 + nl + (f->cfg.nar_dir ? 4 : 0);
		if (len != want || n[CAIRN_STORE_HASH_LEN] != '-' ||
		    !strncmp(n, it->sp.hash, CAIRN_STORE_HASH_LEN) ||
		    strncmp(n + CAIRN_STORE_HASH_LEN + 1, it->sp.name, nl) ||
		    (f->cfg.nar_dir && strcmp(n + len - 4, ".nar")) ||
		    strstr(n, ".tmp") ||
		    (size_t)snprintf(p, sizeof(p), "%s/%s", dir, n) >= sizeof(p))
			continue;
		struct cairn_error e;
		cairn_error_init(&e);
		uint64_t k = 0;
		if (cairn_ipfs_seed(ic, p, &k, &e) == 0 && f->cfg.ipfs_stats)
			f->cfg.ipfs_stats->seeded += k;
	}
	closedir(d);
}

struct produce {
	const struct cairn_ipfs_fetch_config *cfg;
	struct cairn_cid root;
	uint64_t max;
	const char *gateway;
	struct cairn_ipfs_fetch_stats *st;
};

static int produce(void *ctx, cairn_dl_write_fn write, void *wctx, struct cairn_error *err)
{
	struct produce *p = ctx;
	return cairn_ipfs_fetch_file(p->cfg, &p->root, p->max, write, wctx, &p->gateway, p->st,
				     err);
}

bool fetch_try_ipfs(struct item *it, const struct cairn_dl_sink *sink)
{
	struct cairn_fetch *f = it->f;
	struct cairn_ipfs_fetch_stats dummy = {0};
	struct produce p = {.cfg = f->cfg.ipfs, .max = it->nar_size,
			    .st = f->cfg.ipfs_stats ? f->cfg.ipfs_stats : &dummy};
	if (!p.cfg || !p.cfg->n_gateways || !item_cid(it, &p.root))
		return false;
	seed_previous(it);
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
