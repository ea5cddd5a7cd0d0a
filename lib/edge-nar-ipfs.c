/*
 * edge-nar-ipfs.c - `cairn mirror --ipfs-gateway`: a nar filled from IPFS
 * trustless gateways before the upstreams' file, through the same source
 * as `cairn fetch` (ipfs-source.h: every block checked against its CID,
 * the whole NAR through the download pipeline's checks against the signed
 * NarHash and NarSize).  Only at a URL whose claims say Compression: none
 * (f->serve_nar): the gateways hold the NAR, and that is the file there;
 * a compressed file's bytes (its FileHash) cannot be made from them.  The
 * job runs on a thread of its own and writes the file that the clients
 * follow, as a download does (edge-nar.c's sink); its verdict comes back
 * on the upstream thread, where a failure hands the nar to the upstreams.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/ipfs-fetch.h"
#include "cairn/narinfo.h"
#include "edge-int.h"
#include "ipfs-source.h"
#include "cairn/banned.h"

/* A job's verdict is in: the upstream thread may be asleep on job_cond. */
static void wake(void *ctx)
{
	struct cairn_edge *e = ctx;
	pthread_mutex_lock(&e->mu);
	pthread_cond_signal(&e->job_cond);
	pthread_mutex_unlock(&e->mu);
}

int edge_nar_ipfs_open(struct cairn_edge *e, struct cairn_error *err)
{
	const struct cairn_edge_config *c = &e->cfg;
	if (!c->n_ipfs_gateways)
		return 0;
	if (c->n_ipfs_gateways > CAIRN_IPFS_MAX_GATEWAYS)
		return cairn_error_set(err, CAIRN_EINVAL, "mirror: at most %d IPFS gateways",
				       CAIRN_IPFS_MAX_GATEWAYS);
	struct cairn_ipfs_fetch_config *ic = calloc(1, sizeof(*ic));
	size_t dl = strlen(e->cache_dir) + sizeof("/ipfs-blocks");
	char *dir = malloc(dl);
	if (!ic || !dir) {
		free(ic);
		free(dir);
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	}
	snprintf(dir, dl, "%s/ipfs-blocks", e->cache_dir);
	ic->cache_dir = dir;
	e->ipfs_cfg = ic; /* edge_nar_ipfs_close frees what is taken from here on */
	for (size_t i = 0; i < c->n_ipfs_gateways; i++) {
		/* the config's strings are borrowed only during cairn_edge_new */
		if (!(ic->gateways[i] = strdup(c->ipfs_gateways[i]))) {
			edge_nar_ipfs_close(e);
			return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
		}
		ic->n_gateways++;
		e->cfg.ipfs_gateways[i] = NULL;
	}
	cairn_http_config_init(&ic->http);
	ic->http.connect_timeout_ms = c->connect_timeout_ms;
	ic->http.stall_timeout_s = c->stall_timeout_s;
	ic->jobs = c->ipfs_jobs;
	ic->cache_max = c->ipfs_block_cache_max ? c->ipfs_block_cache_max : (uint64_t)256 << 20;
	/* not seeded: a mirror has no previous version of an item on disk */
	int rc = ipfs_src_new(&e->ipfs_src, ic->jobs, wake, e, err);
	if (rc < 0)
		edge_nar_ipfs_close(e);
	return rc;
}

void edge_nar_ipfs_close(struct cairn_edge *e)
{
	ipfs_src_free(e->ipfs_src);
	e->ipfs_src = NULL;
	if (!e->ipfs_cfg)
		return;
	for (size_t i = 0; i < e->ipfs_cfg->n_gateways; i++)
		free((char *)e->ipfs_cfg->gateways[i]);
	free((char *)e->ipfs_cfg->cache_dir);
	free(e->ipfs_cfg);
	e->ipfs_cfg = NULL;
}

/* The root CID a served narinfo of one of f's claims names (a hint: the
 * claim's NarHash decides). */
static int claim_cid(struct fetch *f, struct cairn_cid *cid)
{
	struct cairn_edge *e = f->e;
	char *text = NULL;
	size_t len = 0;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; f->cand && i < f->cand->n && !text; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->plain || memcmp(c->nar_sha, f->ex_sha[0], 32) || c->nar_size != f->ex_size[0])
			continue;
		const struct ni_ent *n = map_get(&e->narinfos, c->item);
		if (n && n->text && (text = malloc(n->len + 1))) {
			memcpy(text, n->text, n->len);
			len = n->len;
		}
	}
	pthread_mutex_unlock(&e->mu);
	if (!text)
		return CAIRN_ENOENT;
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_narinfo_parse(text, len, &ni, &err) == 0 && cairn_ipfs_narinfo_cid(ni, cid)
		     ? 0
		     : CAIRN_ENOENT;
	cairn_narinfo_free(ni);
	free(text);
	return rc;
}

static void job_done(struct ipfs_src_job *j)
{
	struct fetch *f = j->ctx;
	struct cairn_edge *e = f->e;
	f->ipfs_job = NULL;
	edge_count(e->c.bytes_upstream, j->st.bytes);
	if (j->rc) {
		if (j->rc == CAIRN_EHASH || j->rc == CAIRN_EFORMAT)
			edge_count(e->c.verify_fail, 1);
		edge_say(e, CAIRN_EDGE_LOG_INFO, "%s: not from the IPFS gateways (%s): from the upstreams",
			 f->key, cairn_error_msg(&j->err));
	}
	edge_nar_ipfs_over(f, j->rc == 0);
}

int edge_nar_ipfs_start(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	struct cairn_cid root;
	if (claim_cid(f, &root))
		return CAIRN_ENOENT;
	struct ipfs_src_job *j = ipfs_src_job_new();
	if (!j)
		return CAIRN_ENOMEM;
	j->cfg = *e->ipfs_cfg;
	j->root = root;
	j->ex = (struct cairn_dl_expect){
	    .nar_size = f->ex_size[0],
	    .nar_hash = {.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN}};
	memcpy(j->ex.nar_hash.digest, f->ex_sha[0], 32);
	edge_nar_ipfs_begin(f, &j->sink);
	j->done = job_done;
	j->ctx = f;
	f->ipfs_job = j;
	ipfs_src_submit(e->ipfs_src, j);
	return 0;
}

void edge_nar_ipfs_poll(struct cairn_edge *e)
{
	ipfs_src_drain(e->ipfs_src);
}
