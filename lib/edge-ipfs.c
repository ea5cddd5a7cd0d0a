/*
 * edge-ipfs.c - the mirror's side of the IPFS gateway (--ipfs): the items
 * whose nars it has cached, indexed in the background as each one is
 * committed, and their NAR bytes cut from the cached file (decompressed on
 * the fly as the claim says, from where an earlier request stopped when it
 * can: lib/nar-cursor.c).  Narinfos pass through unchanged, so the DAG
 * served for an item is the one its narinfo's IPFS field names when either
 * of the two usual chunkers gives it (ipfs_gw_set_expect); the
 * gateway itself is lib/ipfs-gateway.c, the same one publish serves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/codec.h"
#include "edge-int.h"
#include "ipfs-gateway.h"
#include "map.h"
#include "narinfo-int.h"
#include "nar-cursor.h"
#include "cairn/banned.h"

/* What the mirror knows of an item it holds: where its nar is, how packed. */
struct held {
	char url[EDGE_IPFS_URL_MAX + 1];
	enum cairn_codec_method method;
	uint64_t nar_size;
	bool named; /* the narinfo's IPFS field names root */
	struct cairn_cid root;
};

static int source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
		  struct cairn_error *err)
{
	struct cairn_edge *e = ctx;
	struct held h;
	char name[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	pthread_mutex_lock(&e->ipfs_mu);
	struct held *p = map_get(e->ipfs_held, key);
	if (p)
		h = *p;
	pthread_mutex_unlock(&e->ipfs_mu);
	if (!p || edge_store_nar_get(e->store, h.url, name, &size) != 1)
		return cairn_error_set(err, CAIRN_ENOENT, "mirror: the nar of %s is not cached",
				       key);
	/* the file and the item: a nar cached again under another name is
	 * another file, whose cursors do not apply */
	char id[NAR_CURSOR_KEY_MAX + 1];
	snprintf(id, sizeof(id), "%s %s", key, name);
	return nar_cursors_source(e->ipfs_cursors, id, edge_store_data_fd(e->store), name, h.method,
				  size, h.nar_size, sink, err);
}

static int expect(void *ctx, const char *key, struct cairn_cid *root)
{
	struct cairn_edge *e = ctx;
	pthread_mutex_lock(&e->ipfs_mu);
	struct held *h = map_get(e->ipfs_held, key);
	bool named = h && h->named;
	if (named)
		*root = h->root;
	pthread_mutex_unlock(&e->ipfs_mu);
	return named ? 0 : CAIRN_ENOENT;
}

/* The root item's narinfo (as served, e->mu held) names in its IPFS field. */
static bool named_root_locked(struct cairn_edge *e, const char *item, struct cairn_cid *root)
{
	struct ni_ent *n = map_get(&e->narinfos, item);
	const char *v;
	size_t vl;
	return n && n->text && cairn_narinfo_text_field(n->text, n->len, "IPFS", &v, &vl) &&
	       cairn_cid_parse(v, vl, root, NULL) == 0;
}

void edge_ipfs_field(struct cairn_edge *e, const char *hash, char **text, size_t *len)
{
	const char *v, *sig;
	size_t vl, sl;
	struct cairn_cid named, own;
	char s[CAIRN_CID_STR_MAX];
	/* Guix signs the whole narinfo: the field stays as the upstream signed it */
	if (!cairn_narinfo_text_field(*text, *len, "IPFS", &v, &vl) ||
	    cairn_narinfo_text_field(*text, *len, "Signature", &sig, &sl) ||
	    ipfs_gw_root(e->gw, hash, &own) != 0 ||
	    (cairn_cid_parse(v, vl, &named, NULL) == 0 && cairn_cid_equal(&named, &own)) ||
	    cairn_cid_format(&own, s) != 0)
		return;
	size_t at = (size_t)(v - *text), sn = strlen(s);
	char *t = malloc(*len - vl + sn);
	if (!t)
		return;
	memcpy(t, *text, at);
	memcpy(t + at, s, sn);
	memcpy(t + at + sn, v + vl, *len - at - vl);
	free(*text);
	*text = t;
	*len = *len - vl + sn;
}

static void gw_log(void *ctx, const char *msg)
{
	edge_say(ctx, CAIRN_EDGE_LOG_WARN, "%s", msg);
}

int edge_ipfs_open(struct cairn_edge *e, struct cairn_error *err)
{
	struct cairn_chunker_spec spec, alt;
	const char *name = e->cfg.ipfs_chunker ? e->cfg.ipfs_chunker : CAIRN_IPFS_CHUNKER_SERVED;
	int rc = cairn_chunker_spec_parse(name, &spec, err);
	if (rc)
		return rc;
	/* the other usual one: an upstream's publish runs with one or the other */
	rc = cairn_chunker_spec_parse(spec.kind == CAIRN_CHUNKER_FASTCDC ? CAIRN_IPFS_CHUNKER_KUBO
									 : CAIRN_IPFS_CHUNKER_SERVED,
				      &alt, err);
	if (rc)
		return rc;
	pthread_mutex_init(&e->ipfs_mu, NULL);
	e->ipfs_held = map_new(free);
	e->ipfs_cursors = nar_cursors_new();
	if (!e->ipfs_held || !e->ipfs_cursors)
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	rc = ipfs_gw_new(&e->gw, &spec, 0, source, e, err);
	if (rc == 0) {
		ipfs_gw_set_log(e->gw, gw_log, e);
		ipfs_gw_set_expect(e->gw, &alt, expect, e);
	}
	/* the index outlives a restart: CACHE/ipfs */
	if (rc == 0) {
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/ipfs", e->cache_dir);
		rc = ipfs_gw_set_dir(e->gw, dir, err);
	}
	return rc;
}

void edge_ipfs_free(struct cairn_edge *e)
{
	if (!e->ipfs_held)
		return;
	/* after the gateway: it waits for the responses using cursors */
	ipfs_gw_free(e->gw);
	nar_cursors_free(e->ipfs_cursors);
	map_free(e->ipfs_held);
	pthread_mutex_destroy(&e->ipfs_mu);
}

void edge_ipfs_committed(struct cairn_edge *e, const char *url, const struct nar_claims *cand)
{
	if (!e->gw || !cand || strlen(url) > EDGE_IPFS_URL_MAX)
		return;
	for (size_t i = 0; i < cand->n; i++) {
		const struct nar_claim *c = &cand->c[i];
		/* only bytes whose NarHash the signatures cover */
		if (!c->cacheable || !c->has_nar || !(c->plain || c->by_nar))
			continue;
		struct held *h = malloc(sizeof(*h));
		if (!h)
			return;
		memcpy(h->url, url, strlen(url) + 1);
		h->method = c->plain ? CAIRN_CODEC_NONE : c->method;
		h->nar_size = c->nar_size;
		h->named = named_root_locked(e, c->item, &h->root);
		pthread_mutex_lock(&e->ipfs_mu);
		int rc = map_put(e->ipfs_held, c->item, h, NULL);
		pthread_mutex_unlock(&e->ipfs_mu);
		if (rc < 0) {
			free(h);
			return;
		}
		ipfs_gw_enqueue(e->gw, c->item, c->nar_size);
	}
}

void edge_ipfs_reload_locked(struct cairn_edge *e)
{
	struct map_iter it;
	/* not edge_store_nar_get: asking would reorder the cache's LRU; an
	 * item whose nar is gone fails to index, quickly */
	for (struct map_ent *x = map_iter_first(&it, &e->claims); x; x = map_iter_next(&it))
		edge_ipfs_committed(e, x->key, x->val);
}
