/*
 * ipfs-index.c - the gateway's chunk index: per item, where each chunk of
 * its NAR lies and what its CID is, the DAG's interior nodes, and the
 * order a CAR sends them in; one map from every CID to what it names.
 *
 * An item is indexed by one pass of the DAG builder over its NAR (the
 * builder is the one `cairn ipfs add` uses, so the CIDs are its CIDs), and
 * remembered in memory, at most max_items of them, the oldest forgotten
 * first.  Chunk bytes are not kept: a response cuts them again from the
 * NAR and checks each against its CID before sending it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cairn/hash.h"
#include "ipfs-gateway.h"
#include "map.h"
#include "cairn/banned.h"

/* dag-pb levels: the builder's own bound (ipfs-dag.c) with room to spare. */
#define DFS_DEPTH_MAX 16

void ipfs_gw_item_free(struct ipfs_gw_item *it)
{
	if (!it)
		return;
	for (size_t i = 0; i < it->n_nodes; i++)
		free(it->nodes[i].data);
	free(it->nodes);
	free(it->leaf_off);
	free(it->leaf_digest);
	free(it->leaf_seq);
	free(it->seq);
	free(it->ents);
	free(it);
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

int ipfs_gw_build_block(const struct cairn_cid *cid, const uint8_t *data, size_t len, void *user)
{
	struct ipfs_gw_build *b = user;
	struct ipfs_gw_item *it = b->it;
	if (cid->codec == CAIRN_IPFS_RAW) {
		size_t c1 = b->cap_leaves, c2 = b->cap_leaves, c3 = b->cap_leaves;
		if (grow((void **)&it->leaf_off, &c1, it->n_leaves + 2, sizeof(*it->leaf_off)) ||
		    grow((void **)&it->leaf_digest, &c2, it->n_leaves + 2,
			 sizeof(*it->leaf_digest)) ||
		    grow((void **)&it->leaf_seq, &c3, it->n_leaves + 2, sizeof(*it->leaf_seq)))
			return CAIRN_ENOMEM;
		/* the three grow alike: the smallest is what all have */
		b->cap_leaves = c1 < c2 ? (c1 < c3 ? c1 : c3) : (c2 < c3 ? c2 : c3);
		it->leaf_off[it->n_leaves] = b->off;
		memcpy(it->leaf_digest[it->n_leaves], cid->digest, 32);
		it->n_leaves++;
		b->off += len;
		it->leaf_off[it->n_leaves] = b->off;
		return 0;
	}
	if (grow((void **)&it->nodes, &b->cap_nodes, it->n_nodes + 1, sizeof(*it->nodes)))
		return CAIRN_ENOMEM;
	struct ipfs_gw_node *n = &it->nodes[it->n_nodes];
	memset(n, 0, sizeof(*n));
	n->data = malloc(len);
	if (!n->data)
		return CAIRN_ENOMEM;
	memcpy(n->data, data, len);
	n->len = len;
	n->cid = *cid;
	it->n_nodes++;
	return 0;
}

static int on_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct ipfs_gw_build *b = ctx;
	/* a pass over a large item must not hold a server's stop */
	if (b->g && atomic_load_explicit(&b->g->stopping, memory_order_relaxed))
		return cairn_error_set(err, CAIRN_ECANCELED, "ipfs index: stopping");
	return cairn_ipfs_add_write(b->add, data, len, err);
}

/* Place node j and everything under it in the DFS order. */
static int dfs(struct ipfs_gw_build *b, size_t j, size_t *next_leaf, size_t *pos, int depth,
	       struct cairn_error *err)
{
	struct ipfs_gw_item *it = b->it;
	struct ipfs_gw_node *nd = &it->nodes[j];
	struct cairn_pbnode pb;
	if (depth > DFS_DEPTH_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "DAG order: deeper than %d levels",
				       DFS_DEPTH_MAX);
	int rc = cairn_pbnode_decode(nd->data, nd->len, &pb, err);
	if (rc)
		return rc;
	b->claimed[j] = true;
	nd->seq_lo = *pos;
	nd->byte_lo = it->leaf_off[*next_leaf < it->n_leaves ? *next_leaf : it->n_leaves];
	it->seq[(*pos)++] = -1 - (ipfs_gw_seq)j;
	for (size_t l = 0; !rc && l < pb.n_links; l++) {
		const struct cairn_cid *c = &pb.links[l].cid;
		if (c->codec == CAIRN_IPFS_RAW) {
			size_t k = (*next_leaf)++;
			if (k >= it->n_leaves || c->len != 32 ||
			    memcmp(c->digest, it->leaf_digest[k], 32) != 0)
				rc = cairn_error_set(
				    err, CAIRN_EFORMAT,
				    "DAG order: chunk %zu is not where its node says", k);
			else {
				it->leaf_seq[k] = *pos;
				it->seq[(*pos)++] = (ipfs_gw_seq)k;
			}
			continue;
		}
		/* post-order: a child was made before its parent */
		size_t m = j;
		while (m > 0 && (b->claimed[m - 1] || !cairn_cid_equal(&it->nodes[m - 1].cid, c)))
			m--;
		if (m == 0)
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "DAG order: a node's child is missing");
		else
			rc = dfs(b, m - 1, next_leaf, pos, depth + 1, err);
	}
	cairn_pbnode_release(&pb);
	nd->seq_hi = *pos - 1;
	nd->byte_hi = it->leaf_off[*next_leaf < it->n_leaves ? *next_leaf : it->n_leaves];
	return rc;
}

int ipfs_gw_build_order(struct ipfs_gw_build *b, struct cairn_error *err)
{
	struct ipfs_gw_item *it = b->it;
	it->n_seq = it->n_leaves + it->n_nodes;
	it->seq = calloc(it->n_seq, sizeof(*it->seq));
	it->ents = calloc(it->n_seq, sizeof(*it->ents));
	b->claimed = calloc(it->n_nodes + 1, sizeof(*b->claimed));
	if (!it->seq || !it->ents || !b->claimed)
		return cairn_error_set(err, CAIRN_ENOMEM, "DAG order: out of memory");
	size_t next_leaf = 0, pos = 0;
	int rc;
	if (it->n_nodes == 0) {
		/* one chunk: the file is that raw block */
		if (it->n_leaves != 1)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "DAG order: %zu chunks, no node", it->n_leaves);
		it->seq[pos++] = 0;
		it->leaf_seq[0] = 0;
		next_leaf = 1;
	} else {
		if (!cairn_cid_equal(&it->nodes[it->n_nodes - 1].cid, &it->root))
			return cairn_error_set(err, CAIRN_EFORMAT, "DAG order: the root was not made last");
		if ((rc = dfs(b, it->n_nodes - 1, &next_leaf, &pos, 0, err)) < 0)
			return rc;
	}
	if (next_leaf != it->n_leaves || pos != it->n_seq)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "DAG order: the DAG does not cover its %zu chunks",
				       it->n_leaves);
	for (size_t i = 0; i < it->n_seq; i++)
		it->ents[i] = (struct ipfs_gw_ent){.item = it, .what = it->seq[i]};
	return 0;
}

void ipfs_gw_build_release(struct ipfs_gw_build *b)
{
	free(b->claimed);
	b->claimed = NULL;
}

void ipfs_gw_seq_cid(const struct ipfs_gw_item *it, ipfs_gw_seq e, struct cairn_cid *cid)
{
	if (e < 0) {
		*cid = it->nodes[-1 - e].cid;
		return;
	}
	memset(cid, 0, sizeof(*cid));
	cid->version = 1;
	cid->codec = CAIRN_IPFS_RAW;
	cid->mh = CAIRN_IPFS_MH_SHA2_256;
	cid->len = 32;
	memcpy(cid->digest, it->leaf_digest[e], 32);
}

/* ---- the set of items (g->lock) ----------------------------------------- */

static void unindex(struct ipfs_gw *g, struct ipfs_gw_item *it)
{
	for (size_t i = 0; i < it->n_seq; i++) {
		struct cairn_cid cid;
		char s[CAIRN_CID_STR_MAX];
		ipfs_gw_seq_cid(it, it->seq[i], &cid);
		if (cairn_cid_format(&cid, s) != 0)
			continue;
		struct ipfs_gw_ent *e = map_get(g->by_cid, s);
		if (e && e->item == it)
			map_take(g->by_cid, s);
	}
	if (map_get(g->by_key, it->key) == it)
		map_take(g->by_key, it->key);
	it->dropped = true;
}

static void unref_locked(struct ipfs_gw_item *it)
{
	if (--it->refs == 0 && it->dropped)
		ipfs_gw_item_free(it);
}

void ipfs_gw_unref(struct ipfs_gw *g, struct ipfs_gw_item *it)
{
	pthread_mutex_lock(&g->lock);
	unref_locked(it);
	pthread_mutex_unlock(&g->lock);
}

static int insert_locked(struct ipfs_gw *g, struct ipfs_gw_item *it)
{
	if (g->n == g->max_items) {
		struct ipfs_gw_item *old = g->order[g->head];
		g->head = (g->head + 1) % g->max_items;
		g->n--;
		unindex(g, old);
		if (g->dir)
			ipfs_index_file_drop(g->dir, old->key);
		unref_locked(old);
	}
	if (map_put(g->by_key, it->key, it, NULL) < 0)
		return CAIRN_ENOMEM;
	for (size_t i = 0; i < it->n_seq; i++) {
		struct cairn_cid cid;
		char s[CAIRN_CID_STR_MAX];
		ipfs_gw_seq_cid(it, it->seq[i], &cid);
		/* a chunk two items share is found through the first */
		if (cairn_cid_format(&cid, s) == 0 && !map_get(g->by_cid, s) &&
		    map_put(g->by_cid, s, &it->ents[i], NULL) < 0) {
			unindex(g, it);
			return CAIRN_ENOMEM;
		}
	}
	it->refs = 1; /* the ring's */
	g->order[(g->head + g->n) % g->max_items] = it;
	g->n++;
	return 0;
}

int ipfs_gw_root(struct ipfs_gw *g, const char *key, struct cairn_cid *root)
{
	pthread_mutex_lock(&g->lock);
	struct ipfs_gw_item *it = map_get(g->by_key, key);
	if (it)
		*root = it->root;
	pthread_mutex_unlock(&g->lock);
	return it ? 0 : CAIRN_ENOENT;
}

/* Item key from its file in g->dir, cut under spec: NULL if none fits. */
static struct ipfs_gw_item *from_file(struct ipfs_gw *g, const char *key, uint64_t nar_size,
				      const struct cairn_chunker_spec *spec)
{
	struct ipfs_gw_build b = {0};
	struct ipfs_gw_item *it = calloc(1, sizeof(*it));
	if (!it)
		return NULL;
	b.g = g;
	b.it = it;
	memcpy(it->key, key, strlen(key) + 1);
	if (ipfs_index_file_load(g->dir, spec, key, nar_size, it) != 0 ||
	    ipfs_gw_build_order(&b, NULL) != 0) {
		ipfs_gw_item_free(it);
		it = NULL;
	}
	ipfs_gw_build_release(&b);
	return it;
}

/* Item key cut from its NAR (one pass) under spec, into *out. */
static int from_nar(struct ipfs_gw *g, const char *key, uint64_t nar_size,
		    const struct cairn_chunker_spec *spec, struct ipfs_gw_item **out,
		    struct cairn_error *err)
{
	struct ipfs_gw_build b = {0};
	struct cairn_error own;
	if (!err) { /* the operator hears why an item is not indexed */
		cairn_error_init(&own);
		err = &own;
	}
	struct ipfs_gw_item *it = calloc(1, sizeof(*it));
	if (!it)
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs index: out of memory");
	b.g = g;
	b.it = it;
	memcpy(it->key, key, strlen(key) + 1);
	it->spec = *spec;
	uint64_t size = 0;
	int rc = cairn_ipfs_add_new(spec, ipfs_gw_build_block, &b, &b.add, err);
	/* every byte is hashed: no file regions */
	const struct ipfs_gw_sink sink = {.bytes = on_nar, .ctx = &b, .indexing = true};
	if (rc == 0)
		rc = g->source(g->ctx, key, &sink, err);
	if (rc == 0)
		rc = cairn_ipfs_add_finish(b.add, &it->root, &size, err);
	if (rc == 0 && size != nar_size)
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "ipfs index: the NAR of %s is %llu bytes, not its %llu", key,
				     (unsigned long long)size, (unsigned long long)nar_size);
	it->nar_size = size;
	if (rc == 0)
		rc = ipfs_gw_build_order(&b, err);
	cairn_ipfs_add_free(b.add);
	ipfs_gw_build_release(&b);
	if (rc) {
		ipfs_gw_item_free(it);
		if (!err->code)
			cairn_error_set(err, rc, "ipfs index: %s could not be indexed", key);
		if (rc == CAIRN_EHASH && g->log)
			g->log(g->log_ctx, cairn_error_msg(err));
		return rc;
	}
	atomic_fetch_add_explicit(&g->st.index_builds, 1, memory_order_relaxed);
	if (g->dir)
		(void)ipfs_index_file_save(g->dir, it);
	*out = it;
	return 0;
}

struct checked {
	const struct ipfs_gw_sink *to;
	struct cairn_sha256 h;
};

static int checked_bytes(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct checked *c = ctx;
	cairn_sha256_update(&c->h, data, len);
	return c->to->bytes(c->to->ctx, data, len, err);
}

int ipfs_gw_source_checked(const struct ipfs_gw_sink *sink, const char *key,
			   const struct cairn_hash *nar_hash,
			   int (*produce)(const struct ipfs_gw_sink *sink, void *pctx,
					  struct cairn_error *err),
			   void *pctx, struct cairn_error *err)
{
	if (!sink->indexing || !nar_hash || nar_hash->algo != CAIRN_HASH_SHA256 ||
	    nar_hash->len != CAIRN_SHA256_LEN)
		return produce(sink, pctx, err);
	struct checked c = {.to = sink};
	if (cairn_sha256_init(&c.h) != 0)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs index: no SHA-256");
	const struct ipfs_gw_sink hs = {.bytes = checked_bytes, .ctx = &c, .indexing = true};
	int rc = produce(&hs, pctx, err);
	uint8_t got[CAIRN_SHA256_LEN];
	cairn_sha256_final(&c.h, got);
	if (rc == 0 && memcmp(got, nar_hash->digest, CAIRN_SHA256_LEN) != 0)
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "ipfs index: the NAR of %s does not match its NarHash: not "
				     "indexed",
				     key);
	return rc;
}

static void say(struct ipfs_gw *g, const char *key, const struct cairn_cid *want,
		const struct cairn_cid *got)
{
	char w[CAIRN_CID_STR_MAX], o[CAIRN_CID_STR_MAX], msg[512];
	if (!g->log || cairn_cid_format(want, w) || cairn_cid_format(got, o))
		return;
	snprintf(msg, sizeof(msg),
		 "ipfs: the narinfo of %s names %s, which this server's chunkers do not "
		 "give; its blocks are served under %s (set the upstream's chunker)",
		 key, w, o);
	g->log(g->log_ctx, msg);
}

/*
 * The DAG to serve for item key: under g->spec, unless a root is expected
 * that only g->alt gives.  Files first, for every chunker that may be
 * used, so a restart makes no pass over the NAR for either.
 */
static int index_item(struct ipfs_gw *g, const char *key, uint64_t nar_size,
		      struct ipfs_gw_item **out, struct cairn_error *err)
{
	struct cairn_cid want;
	bool expect = g->expect && g->expect(g->expect_ctx, key, &want) == 0;
	const struct cairn_chunker_spec *specs[2] = {&g->spec, &g->alt};
	size_t n = expect ? 2 : 1;
	struct ipfs_gw_item *first = NULL, *it;
	for (size_t i = 0; g->dir && i < n; i++) {
		if (!(it = from_file(g, key, nar_size, specs[i])))
			continue;
		if (!expect || cairn_cid_equal(&it->root, &want)) {
			ipfs_gw_item_free(first);
			*out = it;
			return 0;
		}
		if (i == 0)
			first = it;
		else
			ipfs_gw_item_free(it);
	}
	for (size_t i = 0; i < n; i++) {
		if (i == 0 && first)
			continue;
		it = NULL;
		int rc = from_nar(g, key, nar_size, specs[i], &it, err);
		if (rc && !first)
			return rc;
		if (rc)
			break;
		if (!expect || cairn_cid_equal(&it->root, &want)) {
			ipfs_gw_item_free(first);
			*out = it;
			return 0;
		}
		if (!first)
			first = it;
		else
			ipfs_gw_item_free(it);
	}
	/* neither gives the root named: the blocks are still the NAR's */
	say(g, key, &want, &first->root);
	if (g->dir)
		(void)ipfs_index_file_save(g->dir, first);
	*out = first;
	return 0;
}

int ipfs_gw_index(struct ipfs_gw *g, const char *key, uint64_t nar_size, struct cairn_cid *root,
		  struct cairn_error *err)
{
	if (strlen(key) > IPFS_GW_KEY_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "ipfs index: key too long");
	if (ipfs_gw_root(g, key, root) == 0)
		return 0;
	/* one pass per item at a time: a request for an item being cut waits
	 * for that cut (many first requests for a large item would otherwise
	 * each read its whole NAR); after a failed one, it tries itself */
	pthread_mutex_lock(&g->lock);
	struct ipfs_gw_item *done;
	while (!(done = map_get(g->by_key, key)) && map_get(g->indexing, key) && !g->stopping)
		pthread_cond_wait(&g->cond, &g->lock);
	if (done || g->stopping) {
		int r = done ? 0 : cairn_error_set(err, CAIRN_ECANCELED, "ipfs index: stopping");
		if (done)
			*root = done->root;
		pthread_mutex_unlock(&g->lock);
		return r;
	}
	int rc = map_put(g->indexing, key, (void *)1, NULL);
	pthread_mutex_unlock(&g->lock);
	if (rc < 0)
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs index: out of memory");
	struct ipfs_gw_item *it = NULL;
	rc = index_item(g, key, nar_size, &it, err);
	pthread_mutex_lock(&g->lock);
	map_take(g->indexing, key);
	pthread_cond_broadcast(&g->cond);
	if (rc) {
		pthread_mutex_unlock(&g->lock);
		return rc;
	}
	*root = it->root;
	if (map_get(g->by_key, key)) {
		/* indexed meanwhile by another way in: same bytes, same DAG */
		pthread_mutex_unlock(&g->lock);
		ipfs_gw_item_free(it);
		return 0;
	}
	rc = insert_locked(g, it);
	pthread_mutex_unlock(&g->lock);
	if (rc) {
		ipfs_gw_item_free(it);
		return cairn_error_set(err, rc, "ipfs index: out of memory");
	}
	return 0;
}

static void *indexer(void *arg)
{
	struct ipfs_gw *g = arg;
	pthread_mutex_lock(&g->lock);
	for (;;) {
		while (!g->stopping && g->q_len == 0)
			pthread_cond_wait(&g->cond, &g->lock);
		if (g->stopping)
			break;
		struct ipfs_gw_job j = g->queue[g->q_head];
		g->q_head = (g->q_head + 1) % IPFS_GW_QUEUE_MAX;
		g->q_len--;
		pthread_mutex_unlock(&g->lock);
		struct cairn_cid root;
		struct cairn_error err;
		cairn_error_init(&err);
		/* a failure is the item's next request's 404: nothing to keep */
		(void)ipfs_gw_index(g, j.key, j.nar_size, &root, &err);
		pthread_mutex_lock(&g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

void ipfs_gw_enqueue(struct ipfs_gw *g, const char *key, uint64_t nar_size)
{
	size_t kl = strlen(key);
	if (kl > IPFS_GW_KEY_MAX)
		return;
	pthread_mutex_lock(&g->lock);
	if (!g->indexer_running && !g->stopping &&
	    pthread_create(&g->indexer, NULL, indexer, g) == 0)
		g->indexer_running = true;
	if (g->indexer_running && g->q_len < IPFS_GW_QUEUE_MAX && !map_get(g->by_key, key)) {
		struct ipfs_gw_job *j = &g->queue[(g->q_head + g->q_len) % IPFS_GW_QUEUE_MAX];
		memcpy(j->key, key, kl + 1);
		j->nar_size = nar_size;
		g->q_len++;
		pthread_cond_broadcast(&g->cond);
	}
	pthread_mutex_unlock(&g->lock);
}

int ipfs_gw_set_dir(struct ipfs_gw *g, const char *dir, struct cairn_error *err)
{
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return cairn_error_set(err, CAIRN_EIO, "ipfs index: cannot create '%s': %s", dir,
				       strerror(errno));
	free(g->dir);
	g->dir = strdup(dir);
	return g->dir ? 0 : cairn_error_set(err, CAIRN_ENOMEM, "ipfs index: out of memory");
}

void ipfs_gw_set_log(struct ipfs_gw *g, void (*log)(void *ctx, const char *msg), void *ctx)
{
	g->log = log;
	g->log_ctx = ctx;
}

void ipfs_gw_set_expect(struct ipfs_gw *g, const struct cairn_chunker_spec *alt,
			ipfs_gw_expect_fn expect, void *ctx)
{
	g->alt = *alt;
	g->expect = expect;
	g->expect_ctx = ctx;
}

int ipfs_gw_lookup(struct ipfs_gw *g, const struct cairn_cid *cid, struct ipfs_gw_hit *out)
{
	char s[CAIRN_CID_STR_MAX];
	if (cairn_cid_format(cid, s) != 0)
		return CAIRN_ENOENT;
	pthread_mutex_lock(&g->lock);
	struct ipfs_gw_ent *e = map_get(g->by_cid, s);
	if (e) {
		e->item->refs++;
		out->item = e->item;
		out->what = e->what;
	}
	pthread_mutex_unlock(&g->lock);
	return e ? 0 : CAIRN_ENOENT;
}

int ipfs_gw_new(struct ipfs_gw **out, const struct cairn_chunker_spec *spec, size_t max_items,
		ipfs_gw_source_fn source, void *ctx, struct cairn_error *err)
{
	struct ipfs_gw *g = calloc(1, sizeof(*g));
	if (!g)
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs gateway: out of memory");
	g->spec = *spec;
	g->max_items = max_items ? max_items : IPFS_GW_ITEMS_DEFAULT;
	g->source = source;
	g->ctx = ctx;
	g->by_key = map_new(NULL);
	g->by_cid = map_new(NULL);
	g->indexing = map_new(NULL);
	g->order = calloc(g->max_items, sizeof(*g->order));
	g->queue = calloc(IPFS_GW_QUEUE_MAX, sizeof(*g->queue));
	if (!g->by_key || !g->by_cid || !g->indexing || !g->order || !g->queue) {
		free(g->queue);
		map_free(g->by_key);
		map_free(g->by_cid);
		map_free(g->indexing);
		free(g->order);
		free(g);
		return cairn_error_set(err, CAIRN_ENOMEM, "ipfs gateway: out of memory");
	}
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	*out = g;
	return 0;
}

void ipfs_gw_stop(struct ipfs_gw *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	atomic_store(&g->stopping, true);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void ipfs_gw_free(struct ipfs_gw *g)
{
	if (!g)
		return;
	ipfs_gw_stop(g);
	pthread_mutex_lock(&g->lock);
	while (g->running)
		pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	if (g->indexer_running)
		pthread_join(g->indexer, NULL);
	free(g->queue);
	free(g->dir);
	for (size_t i = 0; i < g->n; i++)
		ipfs_gw_item_free(g->order[(g->head + i) % g->max_items]);
	map_free(g->by_key);
	map_free(g->by_cid);
	map_free(g->indexing);
	free(g->order);
	pthread_mutex_destroy(&g->lock);
	pthread_cond_destroy(&g->cond);
	free(g);
}
