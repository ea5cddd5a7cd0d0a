/*
 * fetch-ipfs.c - fetch's bytes from IPFS gateways when the accepted
 * narinfo names the NAR's root CID: tried before the servers' NAR files,
 * as a job of the IPFS source (ipfs-source.h) on a thread of its own, so
 * that the network thread goes on with every other item's narinfos and
 * NARs while gateways are asked.  The job streams the NAR through the
 * download engine's pipeline and checks (cairn_dl_check_stream) into the
 * item's own sink; its verdict comes back on the network thread.  Any
 * failure falls back to the servers, the sink discarded.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "download.h"
#include "fetch-int.h"
#include "ipfs-source.h"
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
 * What seeding needs of the item, copied: it runs on the job's thread
 * while the network thread goes on with the item's answers.
 */
struct seed_view {
	struct cairn_fetch *f; /* its cfg and store_dir (fixed for the run), its seeds_* */
	char name[CAIRN_STORE_NAME_MAX + 1];
	char hash[CAIRN_STORE_HASH_LEN + 1];
	char **refs; /* base names, as the narinfo's References */
	size_t n_refs;
	uint64_t seeded;
};

static void view_free(struct seed_view *v)
{
	for (size_t i = 0; v && i < v->n_refs; i++)
		free(v->refs[i]);
	if (v)
		free(v->refs);
	free(v);
}

static struct seed_view *view_new(const struct item *it)
{
	struct seed_view *v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->f = it->f;
	snprintf(v->name, sizeof(v->name), "%s", it->sp.name);
	snprintf(v->hash, sizeof(v->hash), "%s", it->sp.hash);
	const struct cairn_narinfo *ni = it->chosen;
	if (ni && ni->n_refs && !(v->refs = calloc(ni->n_refs, sizeof(*v->refs)))) {
		free(v);
		return NULL;
	}
	for (size_t i = 0; ni && i < ni->n_refs; i++) {
		if (!(v->refs[i] = strdup(ni->refs[i]))) {
			view_free(v);
			return NULL;
		}
		v->n_refs++;
	}
	return v;
}

/* The item itself and each reference, by name: the hash it has now. */
static const char *new_hash(const struct seed_view *it, const char *name, size_t nl)
{
	if (strlen(it->name) == nl && !memcmp(it->name, name, nl))
		return it->hash;
	for (size_t i = 0; i < it->n_refs; i++) {
		const char *r = it->refs[i];
		if (strlen(r) == CAIRN_STORE_HASH_LEN + 1 + nl && r[CAIRN_STORE_HASH_LEN] == '-' &&
		    !memcmp(r + CAIRN_STORE_HASH_LEN + 1, name, nl))
			return r;
	}
	return NULL;
}

/*
 * The --seed paths, cut again with ic's chunker (an item's, from its DAG)
 * unless they were cut with it already.  Under the lock, so that a second
 * item of the same chunker finds the blocks in the cache.
 */
static void seed_paths(struct seed_view *it, const struct cairn_ipfs_fetch_config *ic)
{
	struct cairn_fetch *f = it->f;
	const struct cairn_chunker_spec *c = &ic->chunker;
	if (!ic->chunker_auto || !ic->n_seeds)
		return;
	pthread_mutex_lock(&f->seeds_mu);
	bool done = false;
	for (size_t i = 0; i < f->n_seeds_cut && !done; i++)
		done = f->seeds_cut[i].kind == c->kind && f->seeds_cut[i].min == c->min &&
		       f->seeds_cut[i].avg == c->avg && f->seeds_cut[i].max == c->max;
	if (!done && f->n_seeds_cut < sizeof(f->seeds_cut) / sizeof(f->seeds_cut[0])) {
		f->seeds_cut[f->n_seeds_cut++] = *c;
		for (size_t i = 0; i < ic->n_seeds; i++) {
			struct cairn_error e;
			uint64_t k = 0;
			cairn_error_init(&e);
			if (cairn_ipfs_seed(ic, ic->seeds[i], &k, &e) == 0)
				it->seeded += k;
		}
	}
	pthread_mutex_unlock(&f->seeds_mu);
}

/*
 * Delta: what the target holds under the same name (another hash, an
 * earlier version) is chunked into the block cache, so that only the blocks
 * that changed are asked for.  Its references are rewritten first as Nix
 * would: any item of the target named as the new version or one of its
 * references, under another hash, gets the new hash.  So a rebuild against
 * a dependency whose path changed costs only the blocks that really differ.
 */
static void seed_previous(struct seed_view *it, const struct cairn_ipfs_fetch_config *ic)
{
	const struct cairn_fetch *f = it->f;
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
		if (h == it->hash && n_prev < 16 && strlen(n) < sizeof(prev[0]))
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
					      &e) == 0)
			it->seeded += k;
	}
	free(prev);
}

/* Once the item's DAG says its chunker (spec): what is on disk, cut with it. */
static void seed_item(void *ctx, const struct cairn_chunker_spec *spec)
{
	struct seed_view *it = ctx;
	struct cairn_ipfs_fetch_config cfg = *it->f->cfg.ipfs;
	cfg.chunker = *spec;
	seed_previous(it, &cfg);
	seed_paths(it, &cfg);
}

static void stats_add(struct cairn_ipfs_fetch_stats *to, const struct cairn_ipfs_fetch_stats *st)
{
	to->requests += st->requests;
	to->bytes += st->bytes;
	to->blocks_cached += st->blocks_cached;
	to->blocks_fetched += st->blocks_fetched;
	to->gateways_failed += st->gateways_failed;
	to->seeded += st->seeded;
}

/* The job's verdict, on the network thread: the item is verified, or it
 * goes on to the servers with the same sink. */
static void ipfs_done(struct ipfs_src_job *j)
{
	struct item *it = j->ctx;
	struct cairn_fetch *f = it->f;
	struct seed_view *v = j->cfg.seed_ctx;
	it->ipfs_job = NULL;
	j->st.seeded += v->seeded;
	view_free(v);
	if (f->cfg.ipfs_stats)
		stats_add(f->cfg.ipfs_stats, &j->st);
	it->dl_bytes += j->st.bytes;
	f->bytes_received += j->st.bytes;
	if (j->rc) {
		fetch_reason_add(it, "ipfs: %s", cairn_error_msg(&j->err));
		fetch_download_servers(it);
		return;
	}
	f->downloads_active--;
	it->server_used = j->gateway;
	it->compression = "ipfs";
	it->st = I_VERIFIED;
	f->n_verified++;
}

bool fetch_try_ipfs(struct item *it, const struct cairn_dl_sink *sink)
{
	struct cairn_fetch *f = it->f;
	if (!f->cfg.ipfs || !f->cfg.ipfs->n_gateways)
		return false;
	struct cairn_cid root;
	if (!item_cid(it, &root))
		return false;
	struct cairn_error e;
	cairn_error_init(&e);
	if (!f->ipfs && ipfs_src_new(&f->ipfs, f->cfg.ipfs->jobs, NULL, NULL, &e)) {
		fetch_reason_add(it, "ipfs: %s", cairn_error_msg(&e));
		return false;
	}
	struct ipfs_src_job *j = ipfs_src_job_new();
	struct seed_view *v = j ? view_new(it) : NULL;
	if (!v) {
		free(j);
		fetch_reason_add(it, "ipfs: out of memory");
		return false;
	}
	j->cfg = *f->cfg.ipfs;
	/* the previous version, once the DAG says which chunker to cut it with */
	j->cfg.seed = seed_item;
	j->cfg.seed_ctx = v;
	j->root = root;
	j->ex = (struct cairn_dl_expect){.nar_hash = it->nar_hash, .nar_size = it->nar_size,
					 .by_ca = it->by_ca, .ca = it->ca, .sp = it->sp};
	j->sink = *sink;
	j->done = ipfs_done;
	j->ctx = it;
	it->ipfs_job = j;
	ipfs_src_submit(f->ipfs, j);
	return true;
}

void fetch_ipfs_cancel(struct item *it)
{
	struct ipfs_src_job *j = it->ipfs_job;
	if (!j)
		return;
	it->ipfs_job = NULL;
	view_free(j->cfg.seed_ctx);
	ipfs_src_cancel(it->f->ipfs, j);
}
