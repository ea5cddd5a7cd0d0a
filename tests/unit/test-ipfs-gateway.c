/*
 * The IPFS gateway's pieces that need no server: request parsing
 * (ipfs_gw_parse_req, ipfs_gw_range) and the chunk index (ipfs-index.c)
 * over an in-memory source: the root is the DAG builder's, the DFS order
 * puts parents before children and chunks in file order, and the index is
 * bounded (the oldest item forgotten), an item asked for by many at once
 * is cut once, and a pass whose bytes are not the NarHash indexes nothing.  Serving is tested with real
 * clients in tests/integration/test-ipfs-gateway.sh.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/ipfs.h"
#include "../../lib/ipfs-gateway.h"

static const char *cid1 = "bafybeia7cclqerf5qyo3746g775mcsmdoxo3pc2lkdksgdzni6trze2mye";

static int parse(const char *path, const char *q, const char *accept, const char *aenc,
		 struct ipfs_gw_req *r)
{
	const char *msg = NULL;
	int st =
	    ipfs_gw_parse_req(path, strlen(path), q, q ? strlen(q) : 0, accept,
			      accept ? strlen(accept) : 0, aenc, aenc ? strlen(aenc) : 0, r, &msg);
	if (st)
		assert_non_null(msg);
	return st;
}

static void test_parse(void **state)
{
	(void)state;
	struct ipfs_gw_req r;
	assert_int_equal(parse(cid1, "format=raw", NULL, NULL, &r), 0);
	assert_int_equal(r.format, GW_RAW);
	assert_int_equal(parse(cid1, NULL, "application/vnd.ipld.car; version=1", "zstd", &r), 0);
	assert_int_equal(r.format, GW_CAR);
	assert_int_equal(r.enc, CAIRN_CODEC_ZSTD);
	/* q=0 refuses; order in the list does not make a refused one win */
	assert_int_equal(parse(cid1, "format=car", NULL, "zstd;q=0, gzip", &r), 0);
	assert_int_equal(r.enc, CAIRN_CODEC_GZIP);
	assert_int_equal(parse(cid1, "format=car", NULL, "zstd;q=0.000,gzip;q=0", &r), 0);
	assert_int_equal(r.enc, CAIRN_CODEC_NONE);
	assert_int_equal(
	    parse(cid1, NULL, "application/vnd.ipld.raw;q=0, application/vnd.ipld.car", NULL, &r),
	    0);
	assert_int_equal(r.format, GW_CAR);
	/* raw blocks are never compressed (they are what their CID hashes) */
	assert_int_equal(parse(cid1, "format=raw", NULL, "zstd", &r), 0);
	assert_int_equal(r.enc, CAIRN_CODEC_NONE);
	assert_int_equal(
	    parse(cid1, "format=car&dag-scope=block&entity-bytes=-10:*", NULL, NULL, &r), 0);
	assert_int_equal(r.scope, GW_SCOPE_BLOCK);
	assert_true(r.ranged);
	assert_true(r.from == -10 && r.to == INT64_MAX);
	/* a trailing slash names the file; a path under it does not exist */
	char p[128];
	snprintf(p, sizeof(p), "%s/", cid1);
	assert_int_equal(parse(p, "format=raw", NULL, NULL, &r), 0);
	snprintf(p, sizeof(p), "%s/x", cid1);
	assert_int_equal(parse(p, "format=raw", NULL, NULL, &r), 404);
	assert_int_equal(parse(cid1, NULL, NULL, NULL, &r), 406);
	assert_int_equal(parse(cid1, NULL, "text/html, */*", NULL, &r), 406);
	assert_int_equal(parse(cid1, "format=tar", NULL, NULL, &r), 400);
	assert_int_equal(parse(cid1, "format=car&dag-scope=x", NULL, NULL, &r), 400);
	assert_int_equal(parse(cid1, "format=car&entity-bytes=1", NULL, NULL, &r), 400);
	assert_int_equal(parse(cid1, "format=car&entity-bytes=a:2", NULL, NULL, &r), 400);
	assert_int_equal(
	    parse(cid1, "format=car&entity-bytes=1:9999999999999999999", NULL, NULL, &r), 400);
	assert_int_equal(
	    parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "format=raw", NULL, NULL, &r),
	    400);
	assert_int_equal(parse("", "format=raw", NULL, NULL, &r), 400);
	assert_int_equal(parse("bafkqaaa", "format=raw", NULL, NULL, &r), 0);
	assert_int_equal(r.cid.mh, CAIRN_IPFS_MH_IDENTITY);
}

static void test_range(void **state)
{
	(void)state;
	struct ipfs_gw_req r = {.ranged = true};
	uint64_t lo, hi;
	r.from = 0, r.to = 0;
	assert_true(ipfs_gw_range(&r, 100, 200, &lo, &hi) && lo == 100 && hi == 101);
	r.from = -1, r.to = INT64_MAX;
	assert_true(ipfs_gw_range(&r, 100, 200, &lo, &hi) && lo == 199 && hi == 200);
	r.from = 50, r.to = 1000; /* cut to the end */
	assert_true(ipfs_gw_range(&r, 100, 200, &lo, &hi) && lo == 150 && hi == 200);
	r.from = -1000, r.to = -51;
	assert_true(ipfs_gw_range(&r, 100, 200, &lo, &hi) && lo == 100 && hi == 150);
	r.from = 100, r.to = INT64_MAX; /* starts past the end */
	assert_false(ipfs_gw_range(&r, 100, 200, &lo, &hi));
	r.from = 10, r.to = 5;
	assert_false(ipfs_gw_range(&r, 100, 200, &lo, &hi));
}

/* ---- the index over bytes in memory ------------------------------------ */

struct mem {
	const uint8_t *a, *b;
	size_t alen, blen;
	unsigned calls;
};

static int mem_source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
		      struct cairn_error *err)
{
	struct mem *m = ctx;
	m->calls++;
	const uint8_t *d = key[0] == 'a' ? m->a : m->b;
	size_t n = key[0] == 'a' ? m->alen : m->blen;
	/* in pieces of odd sizes, as a NAR writer would */
	for (size_t o = 0; o < n;) {
		size_t k = n - o < 777 ? n - o : 777;
		int rc = sink->bytes(sink->ctx, d + o, k, err);
		if (rc)
			return rc;
		o += k;
	}
	return 0;
}

static uint8_t *gen(size_t n, uint64_t x)
{
	uint8_t *b = malloc(n);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x >> 32);
	}
	return b;
}

static void test_index(void **state)
{
	(void)state;
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1024", &spec, NULL), 0);
	/* 180 chunks and a bit: two levels of nodes */
	struct mem m = {.alen = 180 * 1024 + 5, .blen = 3000};
	m.a = gen(m.alen, 7);
	m.b = gen(m.blen, 9);
	struct ipfs_gw *g;
	assert_int_equal(ipfs_gw_new(&g, &spec, 1, mem_source, &m, NULL), 0);
	struct cairn_cid root, want, again;
	struct cairn_ipfs_add *add;
	assert_int_equal(cairn_ipfs_add_new(&spec, NULL, NULL, &add, NULL), 0);
	assert_int_equal(cairn_ipfs_add_write(add, m.a, m.alen, NULL), 0);
	assert_int_equal(cairn_ipfs_add_finish(add, &want, NULL, NULL), 0);
	cairn_ipfs_add_free(add);

	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen + 1, &root, &err), CAIRN_EHASH);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &root, NULL), 0);
	assert_true(cairn_cid_equal(&root, &want));
	/* remembered: no second pass */
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &again, NULL), 0);
	assert_int_equal(m.calls, 2);

	struct ipfs_gw_hit hit;
	assert_int_equal(ipfs_gw_lookup(g, &root, &hit), 0);
	const struct ipfs_gw_item *it = hit.item;
	assert_true(hit.what < 0);
	assert_int_equal(it->n_leaves, 181);
	assert_int_equal(it->n_nodes, 3); /* 174 + 7 chunks, and the root */
	assert_int_equal(it->n_seq, 184);
	assert_true(it->seq[0] == hit.what);
	/* chunks in file order; every node before what it links */
	int64_t next = 0;
	for (size_t i = 0; i < it->n_seq; i++) {
		if (it->seq[i] >= 0) {
			assert_int_equal(it->seq[i], next);
			assert_int_equal(it->leaf_seq[next], i);
			next++;
		} else {
			const struct ipfs_gw_node *nd = &it->nodes[-1 - it->seq[i]];
			assert_int_equal(nd->seq_lo, i);
			assert_true(nd->seq_hi > i);
		}
	}
	assert_int_equal(it->leaf_off[181], m.alen);
	const struct ipfs_gw_node *r0 = &it->nodes[-1 - hit.what];
	assert_true(r0->byte_lo == 0 && r0->byte_hi == m.alen && r0->seq_hi == 183);
	/* a chunk's CID finds it */
	struct cairn_cid leaf;
	cairn_cid_sha256(&leaf, CAIRN_IPFS_RAW, m.a + 100 * 1024, 1024);
	struct ipfs_gw_hit h2;
	assert_int_equal(ipfs_gw_lookup(g, &leaf, &h2), 0);
	assert_int_equal(h2.what, 100);
	ipfs_gw_unref(g, h2.item);

	/* bounded at one item: b pushes a out, while a response still holds a */
	struct cairn_cid rb;
	assert_int_equal(ipfs_gw_index(g, "b", m.blen, &rb, NULL), 0);
	assert_int_equal(ipfs_gw_lookup(g, &root, &h2), CAIRN_ENOENT);
	assert_int_equal(ipfs_gw_root(g, "a", &again), CAIRN_ENOENT);
	assert_int_equal(it->leaf_off[181], m.alen); /* still readable */
	ipfs_gw_unref(g, hit.item);
	assert_int_equal(ipfs_gw_lookup(g, &rb, &h2), 0);
	ipfs_gw_unref(g, h2.item);
	ipfs_gw_free(g);
	free((void *)m.a);
	free((void *)m.b);
}

/* The index on disk: read back instead of the NAR, ignored when it is not
 * one for that NAR, removed with the item. */
static void test_index_file(void **state)
{
	(void)state;
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1024", &spec, NULL), 0);
	struct mem m = {.alen = 180 * 1024 + 5, .blen = 3000};
	m.a = gen(m.alen, 7);
	m.b = gen(m.blen, 9);
	char dir[] = "/tmp/cairn-test-ipfs-idx.XXXXXX", sub[64], file[96];
	assert_non_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/ipfs", dir);
	snprintf(file, sizeof(file), "%s/a.idx", sub);
	struct ipfs_gw *g;
	struct cairn_cid r1, r2;
	assert_int_equal(ipfs_gw_new(&g, &spec, 1, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, sub, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r1, NULL), 0);
	ipfs_gw_free(g);
	assert_int_equal(m.calls, 1);

	/* a new gateway reads the file: no pass over the NAR, the same DAG */
	assert_int_equal(ipfs_gw_new(&g, &spec, 1, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, sub, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r2, NULL), 0);
	assert_int_equal(m.calls, 1);
	assert_true(cairn_cid_equal(&r1, &r2));
	struct cairn_cid leaf;
	cairn_cid_sha256(&leaf, CAIRN_IPFS_RAW, m.a + 100 * 1024, 1024);
	struct ipfs_gw_hit h;
	assert_int_equal(ipfs_gw_lookup(g, &leaf, &h), 0);
	assert_int_equal(h.what, 100);
	ipfs_gw_unref(g, h.item);
	/* forgotten (bound of 1), its file goes too */
	assert_int_equal(ipfs_gw_index(g, "b", m.blen, &r2, NULL), 0);
	assert_int_equal(access(file, F_OK), -1);
	ipfs_gw_free(g);

	/* no file (it went with the item): from the NAR, and written again;
	 * then a file cut short is not used */
	assert_int_equal(ipfs_gw_new(&g, &spec, 4, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, sub, NULL), 0);
	m.calls = 0;
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r2, NULL), 0);
	assert_int_equal(m.calls, 1);
	ipfs_gw_free(g);
	assert_int_equal(truncate(file, 5000), 0);
	assert_int_equal(ipfs_gw_new(&g, &spec, 4, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, sub, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r2, NULL), 0);
	assert_int_equal(m.calls, 2);
	assert_true(cairn_cid_equal(&r1, &r2));
	ipfs_gw_free(g);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free((void *)m.a);
	free((void *)m.b);
}

static struct cairn_cid root_of(const char *chunker, const uint8_t *d, size_t n)
{
	struct cairn_chunker_spec spec;
	struct cairn_ipfs_add *add;
	struct cairn_cid r;
	assert_int_equal(cairn_chunker_spec_parse(chunker, &spec, NULL), 0);
	assert_int_equal(cairn_ipfs_add_new(&spec, NULL, NULL, &add, NULL), 0);
	assert_int_equal(cairn_ipfs_add_write(add, d, n, NULL), 0);
	assert_int_equal(cairn_ipfs_add_finish(add, &r, NULL, NULL), 0);
	cairn_ipfs_add_free(add);
	return r;
}

static struct cairn_cid named;
static int named_ok;
static int expect_named(void *ctx, const char *key, struct cairn_cid *root)
{
	(void)ctx;
	(void)key;
	*root = named;
	return named_ok ? 0 : CAIRN_ENOENT;
}
static unsigned logged;
static void count_log(void *ctx, const char *msg)
{
	(void)ctx;
	(void)msg;
	logged++;
}

/* fastcdc's chunks of varying sizes are served from their offsets; an
 * index file is used only under the chunker it was saved with; a root
 * named by someone else (a mirror's upstream) picks the second chunker. */
static void test_index_chunkers(void **state)
{
	(void)state;
	struct cairn_chunker_spec cdc, fixed;
	assert_int_equal(cairn_chunker_spec_parse("fastcdc", &cdc, NULL), 0);
	assert_int_equal(cairn_chunker_spec_parse("size-1024", &fixed, NULL), 0);
	struct mem m = {.alen = (3 << 20) + 12345, .blen = 10};
	m.a = gen(m.alen, 11);
	m.b = gen(m.blen, 12);
	struct cairn_cid want_cdc = root_of("fastcdc", m.a, m.alen);
	struct cairn_cid want_fixed = root_of("size-1024", m.a, m.alen);
	char dir[] = "/tmp/cairn-test-ipfs-cdc.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct ipfs_gw *g;
	struct cairn_cid r;

	assert_int_equal(ipfs_gw_new(&g, &cdc, 4, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, dir, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_true(cairn_cid_equal(&r, &want_cdc));
	struct ipfs_gw_hit hit;
	assert_int_equal(ipfs_gw_lookup(g, &r, &hit), 0);
	const struct ipfs_gw_item *it = hit.item;
	assert_true(it->n_leaves > 3);
	bool varied = false;
	for (size_t i = 1; i + 1 < it->n_leaves; i++)
		varied |= it->leaf_off[i + 1] - it->leaf_off[i] != it->leaf_off[1] - it->leaf_off[0];
	assert_true(varied);
	/* the third chunk's CID finds it, at its own offset */
	struct cairn_cid leaf;
	cairn_cid_sha256(&leaf, CAIRN_IPFS_RAW, m.a + it->leaf_off[2],
			 it->leaf_off[3] - it->leaf_off[2]);
	struct ipfs_gw_hit h2;
	assert_int_equal(ipfs_gw_lookup(g, &leaf, &h2), 0);
	assert_int_equal(h2.what, 2);
	ipfs_gw_unref(g, h2.item);
	ipfs_gw_unref(g, hit.item);
	ipfs_gw_free(g);
	assert_int_equal(m.calls, 1);

	/* the file says fastcdc: not used under size-1024, nor back */
	assert_int_equal(ipfs_gw_new(&g, &fixed, 4, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, dir, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_int_equal(m.calls, 2);
	assert_true(cairn_cid_equal(&r, &want_fixed));
	ipfs_gw_free(g);
	assert_int_equal(ipfs_gw_new(&g, &cdc, 4, mem_source, &m, NULL), 0);
	assert_int_equal(ipfs_gw_set_dir(g, dir, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_int_equal(m.calls, 3);
	assert_true(cairn_cid_equal(&r, &want_cdc));
	ipfs_gw_free(g);

	/* size-1024 first, fastcdc named: fastcdc's DAG, from the file */
	named = want_cdc;
	named_ok = 1;
	assert_int_equal(ipfs_gw_new(&g, &fixed, 4, mem_source, &m, NULL), 0);
	ipfs_gw_set_expect(g, &cdc, expect_named, NULL);
	assert_int_equal(ipfs_gw_set_dir(g, dir, NULL), 0);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_int_equal(m.calls, 3);
	assert_true(cairn_cid_equal(&r, &want_cdc));
	ipfs_gw_free(g);
	/* without files: a pass under each */
	assert_int_equal(ipfs_gw_new(&g, &fixed, 4, mem_source, &m, NULL), 0);
	ipfs_gw_set_expect(g, &cdc, expect_named, NULL);
	ipfs_gw_set_log(g, count_log, NULL);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_int_equal(m.calls, 5);
	assert_true(cairn_cid_equal(&r, &want_cdc));
	assert_int_equal(ipfs_gw_lookup(g, &want_fixed, &hit), CAIRN_ENOENT);
	assert_int_equal(logged, 0);
	/* a root neither gives: its own DAG, and the operator hears of it */
	named = want_fixed;
	named.digest[0] ^= 1;
	assert_int_equal(ipfs_gw_index(g, "b", m.blen, &r, NULL), 0);
	struct cairn_cid own_b = root_of("size-1024", m.b, m.blen);
	assert_true(cairn_cid_equal(&r, &own_b));
	assert_int_equal(logged, 1);
	/* nothing named: the gateway's own chunker, one pass */
	named_ok = 0;
	unsigned calls = m.calls;
	ipfs_gw_free(g);
	assert_int_equal(ipfs_gw_new(&g, &fixed, 4, mem_source, &m, NULL), 0);
	ipfs_gw_set_expect(g, &cdc, expect_named, NULL);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &r, NULL), 0);
	assert_int_equal(m.calls, calls + 1);
	assert_true(cairn_cid_equal(&r, &want_fixed));
	ipfs_gw_free(g);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free((void *)m.a);
	free((void *)m.b);
}

/* ---- the indexing pass checked against NarHash ------------------------- */

static struct cairn_hash want_hash;

static int mem_nar(const struct ipfs_gw_sink *sink, void *pctx, struct cairn_error *err)
{
	return mem_source(pctx, "a", sink, err);
}

static int checked_source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
			  struct cairn_error *err)
{
	return ipfs_gw_source_checked(sink, key, &want_hash, mem_nar, ctx, err);
}

static void test_index_checked(void **state)
{
	(void)state;
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1024", &spec, NULL), 0);
	struct mem m = {.alen = 20 * 1024 + 7};
	m.a = gen(m.alen, 5);
	struct ipfs_gw *g;
	assert_int_equal(ipfs_gw_new(&g, &spec, 0, checked_source, &m, NULL), 0);
	logged = 0;
	ipfs_gw_set_log(g, count_log, NULL);
	struct cairn_cid root;
	struct cairn_error err;
	/* another NAR's hash: not indexed, the operator told */
	want_hash = (struct cairn_hash){.algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN};
	want_hash.digest[0] = 1;
	cairn_error_init(&err);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &root, &err), CAIRN_EHASH);
	assert_non_null(strstr(cairn_error_msg(&err), "does not match its NarHash"));
	assert_int_equal(ipfs_gw_root(g, "a", &root), CAIRN_ENOENT);
	assert_int_equal(logged, 1);
	/* its own: indexed */
	struct cairn_sha256 h;
	assert_int_equal(cairn_sha256_init(&h), 0);
	cairn_sha256_update(&h, m.a, m.alen);
	cairn_sha256_final(&h, want_hash.digest);
	assert_int_equal(ipfs_gw_index(g, "a", m.alen, &root, NULL), 0);
	assert_int_equal(ipfs_gw_root(g, "a", &root), 0);
	ipfs_gw_free(g);
	free((void *)m.a);
}

/* ---- first requests at once: one pass over the NAR ---------------------- */

struct slow {
	struct mem m;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	atomic_uint calls;
	bool entered, release;
};

/* The source of mem_source's bytes, held until released: the first request
 * is cutting while the others come. */
static int slow_source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
		       struct cairn_error *err)
{
	struct slow *s = ctx;
	atomic_fetch_add(&s->calls, 1);
	pthread_mutex_lock(&s->mu);
	s->entered = true;
	pthread_cond_broadcast(&s->cond);
	while (!s->release)
		pthread_cond_wait(&s->cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return mem_source(&s->m, key, sink, err);
}

struct asker {
	struct ipfs_gw *g;
	size_t n;
	struct cairn_cid root;
	int rc;
};

static void *ask(void *arg)
{
	struct asker *a = arg;
	a->rc = ipfs_gw_index(a->g, "a", a->n, &a->root, NULL);
	return NULL;
}

static void test_index_once(void **state)
{
	(void)state;
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1024", &spec, NULL), 0);
	struct slow s = {.m = {.alen = 50 * 1024 + 3}};
	s.m.a = gen(s.m.alen, 11);
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cond, NULL);
	struct ipfs_gw *g;
	assert_int_equal(ipfs_gw_new(&g, &spec, 0, slow_source, &s, NULL), 0);
	struct asker a[6];
	pthread_t t[6];
	for (int i = 0; i < 6; i++) {
		a[i] = (struct asker){.g = g, .n = s.m.alen, .rc = -1};
		assert_int_equal(pthread_create(&t[i], NULL, ask, &a[i]), 0);
		if (i == 0) { /* the first is cutting before the others ask */
			pthread_mutex_lock(&s.mu);
			while (!s.entered)
				pthread_cond_wait(&s.cond, &s.mu);
			pthread_mutex_unlock(&s.mu);
		}
	}
	/* the others' time to ask (were they to cut too, they would be
	 * held in the source by now: counted below) */
	usleep(200 * 1000);
	pthread_mutex_lock(&s.mu);
	s.release = true;
	pthread_cond_broadcast(&s.cond);
	pthread_mutex_unlock(&s.mu);
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].rc, 0);
		assert_true(cairn_cid_equal(&a[i].root, &a[0].root));
	}
	assert_int_equal(atomic_load(&s.calls), 1);
	ipfs_gw_free(g);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.mu);
	free((void *)s.m.a);
}

/* ---- a stop calls off a pass over a large item ------------------------- */

static atomic_bool producing;

/* 1 GiB of zeros, 1 MiB at a time, as long as the sink takes them. */
static int endless_source(void *ctx, const char *key, const struct ipfs_gw_sink *sink,
			  struct cairn_error *err)
{
	(void)ctx;
	(void)key;
	static const uint8_t zero[1 << 20];
	for (int i = 0; i < 1024; i++) {
		int rc = sink->bytes(sink->ctx, zero, sizeof(zero), err);
		if (rc)
			return rc;
		atomic_store(&producing, true);
	}
	return 0;
}

static void *ask_big(void *arg)
{
	struct asker *a = arg;
	a->rc = ipfs_gw_index(a->g, "a", (uint64_t)1 << 30, &a->root, NULL);
	return NULL;
}

static void test_index_stop(void **state)
{
	(void)state;
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("fastcdc", &spec, NULL), 0);
	struct ipfs_gw *g;
	assert_int_equal(ipfs_gw_new(&g, &spec, 0, endless_source, NULL, NULL), 0);
	struct asker a = {.g = g, .rc = 1};
	pthread_t t;
	atomic_store(&producing, false);
	assert_int_equal(pthread_create(&t, NULL, ask_big, &a), 0);
	while (!atomic_load(&producing))
		usleep(1000);
	ipfs_gw_stop(g);
	pthread_join(t, NULL);
	/* called off, not run to its end (which would index the item) */
	assert_int_equal(a.rc, CAIRN_ECANCELED);
	struct cairn_cid root;
	assert_int_equal(ipfs_gw_root(g, "a", &root), CAIRN_ENOENT);
	ipfs_gw_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),	   cmocka_unit_test(test_range),
	    cmocka_unit_test(test_index),	   cmocka_unit_test(test_index_file),
	    cmocka_unit_test(test_index_chunkers), cmocka_unit_test(test_index_checked),
	    cmocka_unit_test(test_index_once),
	    cmocka_unit_test(test_index_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
