/*
 * ipfs.h: CIDs, the chunkers, the DAG builder, the dag-pb/UnixFS decoders
 * and CARs.  The fixed CIDs were computed by ipfs-unixfs-importer 17.1.1
 * (tests/npm/importer.mjs) on the same pseudo-random bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/ipfs.h"
#include "../../lib/ipfs-int.h"

/* xorshift64, seed 1: the bytes the importer was given (see above) */
static uint8_t *gen(size_t n)
{
	uint8_t *b = malloc(n ? n : 1);
	assert_non_null(b);
	uint64_t x = 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (uint8_t)(x >> 32);
	}
	return b;
}

static void cid_str(const struct cairn_cid *c, char *s)
{
	assert_int_equal(cairn_cid_format(c, s), 0);
}

static int count_block(const struct cairn_cid *cid, const uint8_t *d, size_t len, void *user)
{
	(void)cid, (void)d, (void)len;
	(*(uint64_t *)user)++;
	return 0;
}

/* Root CID of data under spec, written step bytes at a time (0: at once). */
static void add(const char *chunker, const uint8_t *data, size_t len, size_t step, char *out,
		uint64_t *blocks)
{
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse(chunker, &spec, NULL), 0);
	struct cairn_ipfs_add *a;
	uint64_t n = 0;
	assert_int_equal(cairn_ipfs_add_new(&spec, count_block, &n, &a, NULL), 0);
	if (!step)
		step = len ? len : 1;
	for (size_t o = 0; o < len; o += step)
		assert_int_equal(cairn_ipfs_add_write(a, data + o, len - o < step ? len - o : step, NULL),
				 0);
	struct cairn_cid root;
	uint64_t size;
	assert_int_equal(cairn_ipfs_add_finish(a, &root, &size, NULL), 0);
	assert_int_equal(size, len);
	assert_int_equal(cairn_ipfs_add_blocks(a), n);
	cairn_ipfs_add_free(a);
	cid_str(&root, out);
	if (blocks)
		*blocks = n;
}

static void test_cid_text(void **state)
{
	(void)state;
	char s[CAIRN_CID_STR_MAX];
	struct cairn_cid c, d;
	cairn_cid_sha256(&c, CAIRN_IPFS_RAW, "", 0);
	cid_str(&c, s);
	assert_string_equal(s, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
	assert_int_equal(cairn_cid_parse(s, strlen(s), &d, NULL), 0);
	assert_true(cairn_cid_equal(&c, &d));
	assert_int_equal(cairn_cid_verify(&d, "", 0), 0);
	assert_int_equal(cairn_cid_verify(&d, "x", 1), CAIRN_EHASH);

	/* the trustless gateways' probe: raw, identity, no bytes */
	assert_int_equal(cairn_cid_parse("bafkqaaa", 8, &d, NULL), 0);
	assert_int_equal(d.mh, CAIRN_IPFS_MH_IDENTITY);
	assert_int_equal(d.len, 0);
	assert_int_equal(cairn_cid_verify(&d, "", 0), 0);
	cid_str(&d, s);
	assert_string_equal(s, "bafkqaaa");

	struct cairn_error err;
	static const char *const bad[] = {
		"", "b", "Bafkqaaa", "bafkqaab" /* stray bits */, "bafkqaaa1",
		"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk" /* cut */,
		"bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykuaa" /* extra */,
		"zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA",
		"QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH",
		"bafyreib" /* dag-cbor */, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvykü",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cairn_error_init(&err);
		if (cairn_cid_parse(bad[i], strlen(bad[i]), &d, &err) == 0)
			fail_msg("'%s' parsed", bad[i]);
		assert_true(err.msg[0] != '\0');
	}
	assert_int_equal(cairn_cid_parse("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", 46, &d, NULL),
			 CAIRN_EUNSUPPORTED);
}

static void test_cid_bytes(void **state)
{
	(void)state;
	struct cairn_cid c, d;
	uint8_t b[CAIRN_CID_BIN_MAX + 4];
	size_t used;
	cairn_cid_sha256(&c, CAIRN_IPFS_DAG_PB, "x", 1);
	size_t n = cairn_cid_to_bytes(&c, b);
	assert_int_equal(n, 36);
	assert_int_equal(b[0], 1);
	assert_int_equal(b[1], 0x70);
	assert_int_equal(cairn_cid_from_bytes(b, n, &d, &used, NULL), 0);
	assert_int_equal(used, n);
	assert_true(cairn_cid_equal(&c, &d));
	for (size_t k = 0; k < n; k++)
		assert_int_equal(cairn_cid_from_bytes(b, k, &d, &used, NULL), CAIRN_ETRUNCATED);
	/* CIDv0: the bare multihash, dag-pb */
	assert_int_equal(cairn_cid_from_bytes(b + 2, n - 2, &d, &used, NULL), 0);
	assert_int_equal(d.version, 0);
	assert_int_equal(d.codec, CAIRN_IPFS_DAG_PB);
	assert_int_equal(used, 34);
	char s[CAIRN_CID_STR_MAX];
	assert_int_equal(cairn_cid_format(&d, s), CAIRN_EUNSUPPORTED);
	/* version 2, dag-cbor, sha2-512, a short sha2-256 digest */
	b[0] = 2;
	assert_int_equal(cairn_cid_from_bytes(b, n, &d, &used, NULL), CAIRN_EFORMAT);
	b[0] = 1;
	b[1] = 0x71;
	assert_int_equal(cairn_cid_from_bytes(b, n, &d, &used, NULL), CAIRN_EUNSUPPORTED);
	b[1] = 0x70;
	b[2] = 0x13;
	assert_int_equal(cairn_cid_from_bytes(b, n, &d, &used, NULL), CAIRN_EUNSUPPORTED);
	b[2] = 0x12;
	b[3] = 31;
	assert_int_equal(cairn_cid_from_bytes(b, n, &d, &used, NULL), CAIRN_EFORMAT);
	/* a codec written with a redundant continuation byte is not minimal */
	static const uint8_t nonmin[] = {0x01, 0xf0, 0x00, 0x12, 0x20};
	assert_int_equal(cairn_cid_from_bytes(nonmin, sizeof(nonmin), &d, &used, NULL), CAIRN_EFORMAT);
}

static void test_varint(void **state)
{
	(void)state;
	uint8_t b[IPFS_VARINT_MAX];
	uint64_t v;
	int bad;
	static const uint64_t vals[] = {0, 1, 127, 128, 300, 16383, 16384, UINT32_MAX, UINT64_MAX};
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		size_t n = ipfs_varint_put(b, vals[i]);
		assert_int_equal(n, ipfs_varint_len(vals[i]));
		assert_int_equal(ipfs_varint_get(b, n, &v, &bad), n);
		assert_true(v == vals[i]);
		assert_int_equal(ipfs_varint_get(b, n - 1, &v, &bad), 0);
		assert_int_equal(bad, 0);
	}
	static const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
	assert_int_equal(ipfs_varint_get(over, sizeof(over), &v, &bad), 0);
	assert_int_equal(bad, 1);
	static const uint8_t nonmin[] = {0x81, 0x00};
	assert_int_equal(ipfs_varint_get(nonmin, sizeof(nonmin), &v, &bad), 0);
	assert_int_equal(bad, 1);
}

/* Root CIDs from ipfs-unixfs-importer on the same bytes. */
static void test_importer_cids(void **state)
{
	(void)state;
	static const struct {
		size_t len;
		const char *chunker, *cid;
	} v[] = {
		{0, "size-262144", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{0, "fastcdc", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{300000, "size-1024", "bafybeibvqu3myfyaqrur65oftqhp2l6rddlmxyk3buu6ofa35j5mrk2msa"},
		{300000, "size-262144", "bafybeigtzqnnm6mgg6m2fha4mtr5oqt7mypgk5bza7c6qjawnxl5a2vgwi"},
		{262145, "size-1024", "bafybeihv6toigqrkoxj7nlqcdnl76n5qerlnsexqto5iqpkamqzas4lkgu"},
		{262145, "size-262144", "bafybeiff47oq6mfm2cmz5u4ujd6xgn6tcvjvi4inesihsqvobdhg3x5rta"},
	};
	uint8_t *data = gen(300000);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char s[CAIRN_CID_STR_MAX];
		add(v[i].chunker, data, v[i].len, 0, s, NULL);
		if (strcmp(s, v[i].cid))
			fail_msg("%zu bytes, %s: %s, want %s", v[i].len, v[i].chunker, s, v[i].cid);
		/* the same whatever the writes' sizes */
		add(v[i].chunker, data, v[i].len, 1000, s, NULL);
		assert_string_equal(s, v[i].cid);
	}
	/* 293 leaves of 1 KiB: two levels, 174 + 119 links: 296 blocks */
	uint64_t blocks;
	char s[CAIRN_CID_STR_MAX];
	add("size-1024", data, 300000, 0, s, &blocks);
	assert_int_equal(blocks, 293 + 3);
	free(data);
}

struct chunks {
	size_t n;
	size_t len[64];
};

static int on_chunk(const uint8_t *chunk, size_t len, void *user)
{
	(void)chunk;
	struct chunks *c = user;
	if (c->n == 64)
		return CAIRN_ELIMIT;
	c->len[c->n++] = len;
	return 0;
}

static void cut(const uint8_t *data, size_t len, size_t step, struct chunks *out)
{
	struct cairn_chunker_spec spec;
	cairn_chunker_spec_default(&spec);
	struct cdc c;
	assert_int_equal(cdc_init(&c, &spec, NULL), 0);
	memset(out, 0, sizeof(*out));
	for (size_t o = 0; o < len; o += step)
		assert_int_equal(cdc_push(&c, data + o, len - o < step ? len - o : step, on_chunk, out), 0);
	assert_int_equal(cdc_finish(&c, on_chunk, out), 0);
	cdc_release(&c);
}

static void test_fastcdc(void **state)
{
	(void)state;
	size_t len = (size_t)6 << 20;
	uint8_t *data = gen(len);
	struct chunks a, b;
	cut(data, len, len, &a);
	/* the cuts depend on the bytes only, never on the writes */
	static const size_t steps[] = {1, 7, 4096, 65537, (1 << 20) + 3};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		cut(data, len, steps[i], &b);
		assert_int_equal(a.n, b.n);
		assert_memory_equal(a.len, b.len, a.n * sizeof(a.len[0]));
	}
	size_t sum = 0;
	for (size_t i = 0; i < a.n; i++) {
		sum += a.len[i];
		assert_true(a.len[i] <= ((size_t)1 << 20));
		if (i + 1 < a.n)
			assert_true(a.len[i] >= ((size_t)64 << 10));
	}
	assert_int_equal(sum, len);
	/* around the 256 KiB average: 24 would be exact; far off means a broken mask */
	assert_true(a.n >= 12 && a.n <= 48);

	/* content-defined: 100 bytes inserted at the start move the bytes, not
	 * the cuts, so every chunk after the first few is still there */
	uint8_t *shifted = malloc(len + 100);
	assert_non_null(shifted);
	memset(shifted, 'x', 100);
	memcpy(shifted + 100, data, len);
	cut(shifted, len + 100, len + 100, &b);
	size_t ends_a[64], ends_b[64], same = 0;
	for (size_t i = 0, e = 0; i < a.n; i++)
		ends_a[i] = e += a.len[i];
	for (size_t i = 0, e = 0; i < b.n; i++)
		ends_b[i] = (e += b.len[i]) - 100;
	for (size_t i = 0; i < a.n; i++)
		for (size_t j = 0; j < b.n; j++)
			same += ends_a[i] == ends_b[j];
	assert_true(same + 2 >= a.n);
	free(shifted);

	/* the format is fixed: this root changes only if the gear table,
	 * masks or sizes do, and then every CID cairn ever published does */
	char s[CAIRN_CID_STR_MAX];
	add("fastcdc", data, (size_t)4 << 20, 0, s, NULL);
	assert_string_equal(s, "bafybeicx7ymq3on5zy3ubafhiovtyvasjujijfrrakaqppgatrz5jmzhzy");
	free(data);
}

static void test_chunker_spec(void **state)
{
	(void)state;
	struct cairn_chunker_spec s;
	assert_int_equal(cairn_chunker_spec_parse("size-1", &s, NULL), 0);
	assert_int_equal(s.max, 1);
	assert_int_equal(cairn_chunker_spec_parse("size-1048576", &s, NULL), 0);
	assert_int_equal(cairn_chunker_spec_parse("size", &s, NULL), 0);
	assert_int_equal(s.max, 262144);
	static const char *const bad[] = {"size-0", "size-", "size-1048577", "size-01",
					  "size-1k", "rabin", "size-99999999999999999999", "fastcdc-1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cairn_chunker_spec_parse(bad[i], &s, NULL) != CAIRN_EINVAL)
			fail_msg("'%s' accepted", bad[i]);
}

/* Every block of a small DAG, kept for the decoder and CAR tests. */
struct kept {
	size_t n;
	struct cairn_cid cid[16];
	uint8_t *data[16];
	size_t len[16];
};

static int keep(const struct cairn_cid *cid, const uint8_t *d, size_t len, void *user)
{
	struct kept *k = user;
	assert_true(k->n < 16);
	k->cid[k->n] = *cid;
	k->data[k->n] = malloc(len ? len : 1);
	memcpy(k->data[k->n], d, len);
	k->len[k->n++] = len;
	return 0;
}

static void build(struct kept *k, const uint8_t *data, size_t len, struct cairn_cid *root)
{
	struct cairn_chunker_spec spec;
	assert_int_equal(cairn_chunker_spec_parse("size-1000", &spec, NULL), 0);
	struct cairn_ipfs_add *a;
	memset(k, 0, sizeof(*k));
	assert_int_equal(cairn_ipfs_add_new(&spec, keep, k, &a, NULL), 0);
	assert_int_equal(cairn_ipfs_add_write(a, data, len, NULL), 0);
	assert_int_equal(cairn_ipfs_add_finish(a, root, NULL, NULL), 0);
	cairn_ipfs_add_free(a);
}

static void kept_release(struct kept *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->data[i]);
}

static void test_dagpb(void **state)
{
	(void)state;
	uint8_t *data = gen(2500);
	struct kept k;
	struct cairn_cid root;
	build(&k, data, 2500, &root);
	assert_int_equal(k.n, 4);
	assert_true(cairn_cid_equal(&root, &k.cid[3]));
	struct cairn_pbnode n;
	assert_int_equal(cairn_pbnode_decode(k.data[3], k.len[3], &n, NULL), 0);
	assert_int_equal(n.n_links, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_true(cairn_cid_equal(&n.links[i].cid, &k.cid[i]));
		assert_int_equal(n.links[i].name_len, 0);
		assert_non_null(n.links[i].name);
		assert_true(n.links[i].has_tsize);
		assert_int_equal(n.links[i].tsize, k.len[i]);
	}
	struct cairn_unixfs u;
	assert_non_null(n.data);
	assert_int_equal(cairn_unixfs_decode(n.data, n.data_len, &u, NULL), 0);
	assert_int_equal(u.type, CAIRN_UNIXFS_FILE);
	assert_true(u.has_filesize);
	assert_int_equal(u.filesize, 2500);
	assert_int_equal(u.n_blocksizes, 3);
	assert_int_equal(u.blocksizes[2], 500);
	assert_null(u.data);
	cairn_unixfs_release(&u);
	cairn_pbnode_release(&n);

	/* every strict rule bites, and every prefix is refused or is a whole node */
	for (size_t l = 0; l < k.len[3]; l++) {
		int rc = cairn_pbnode_decode(k.data[3], l, &n, NULL);
		if (rc == 0)
			cairn_pbnode_release(&n);
		else
			assert_true(rc == CAIRN_ETRUNCATED || rc == CAIRN_EFORMAT);
	}
	static const struct {
		const char *what;
		size_t len;
		const uint8_t b[12];
		int rc;
	} bad[] = {
		{"data then a link", 6, {0x0a, 0x00, 0x12, 0x02, 0x0a, 0x00}, CAIRN_EFORMAT},
		{"data twice", 4, {0x0a, 0x00, 0x0a, 0x00}, CAIRN_EFORMAT},
		{"unknown field", 2, {0x1a, 0x00}, CAIRN_EFORMAT},
		{"data as a varint", 2, {0x08, 0x00}, CAIRN_EFORMAT},
		{"a link without a hash", 4, {0x12, 0x02, 0x18, 0x01}, CAIRN_EFORMAT},
		{"link fields out of order", 6, {0x12, 0x04, 0x18, 0x01, 0x12, 0x00}, CAIRN_EFORMAT},
		{"a length past the end", 2, {0x0a, 0x05}, CAIRN_ETRUNCATED},
		{"a non-minimal key", 3, {0x8a, 0x00, 0x00}, CAIRN_EFORMAT},
		{"wire type 5", 5, {0x0d, 0, 0, 0, 0}, CAIRN_EFORMAT},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = cairn_pbnode_decode(bad[i].b, bad[i].len, &n, &err);
		if (rc != bad[i].rc)
			fail_msg("%s: %d (%s)", bad[i].what, rc, err.msg);
	}
	/* an empty node is valid: no links, no data */
	assert_int_equal(cairn_pbnode_decode((const uint8_t *)"", 0, &n, NULL), 0);
	assert_null(n.data);
	cairn_pbnode_release(&n);
	/* empty Data is present */
	assert_int_equal(cairn_pbnode_decode((const uint8_t *)"\x0a\x00", 2, &n, NULL), 0);
	assert_non_null(n.data);
	cairn_pbnode_release(&n);

	/* bounds: the block size and the number of links */
	size_t big = CAIRN_IPFS_BLOCK_MAX + 1;
	uint8_t *buf = calloc(1, big);
	assert_int_equal(cairn_pbnode_decode(buf, big, &n, NULL), CAIRN_ELIMIT);
	uint8_t link[40];
	size_t ll = 0;
	link[ll++] = 0x12;
	link[ll++] = 36;
	link[ll++] = 0x0a;
	link[ll++] = 34;
	link[ll++] = 0x12;
	link[ll++] = 0x20;
	memset(link + ll, 7, 32);
	ll += 32;
	size_t nl = CAIRN_PBNODE_LINKS_MAX + 1;
	assert_true(nl * ll <= big);
	for (size_t i = 0; i < nl; i++)
		memcpy(buf + i * ll, link, ll);
	assert_int_equal(cairn_pbnode_decode(buf, (nl - 1) * ll, &n, NULL), 0);
	assert_int_equal(n.n_links, CAIRN_PBNODE_LINKS_MAX);
	assert_int_equal(n.links[0].cid.version, 0);
	cairn_pbnode_release(&n);
	assert_int_equal(cairn_pbnode_decode(buf, nl * ll, &n, NULL), CAIRN_ELIMIT);
	free(buf);

	/* UnixFS: Type required, in order, known types */
	static const uint8_t u_notype[] = {0x18, 0x01};
	static const uint8_t u_order[] = {0x18, 0x01, 0x08, 0x02};
	static const uint8_t u_type9[] = {0x08, 0x09};
	static const uint8_t u_packed[] = {0x08, 0x02, 0x22, 0x03, 0x01, 0x80, 0x01};
	assert_int_equal(cairn_unixfs_decode(u_notype, 2, &u, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_unixfs_decode(u_order, 4, &u, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_unixfs_decode(u_type9, 2, &u, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_unixfs_decode(u_packed, sizeof(u_packed), &u, NULL), 0);
	assert_int_equal(u.n_blocksizes, 2);
	assert_int_equal(u.blocksizes[1], 128);
	cairn_unixfs_release(&u);
	kept_release(&k);
	free(data);
}

struct seen {
	size_t n;
	struct cairn_cid cid[16];
};

static int see(const struct cairn_cid *cid, const uint8_t *d, size_t len, void *user)
{
	(void)d, (void)len;
	struct seen *s = user;
	s->cid[s->n++] = *cid;
	return 0;
}

/* A CAR of k's blocks in memory; its length. */
static size_t car_of(const struct kept *k, const struct cairn_cid *root, uint8_t *out)
{
	size_t o = cairn_car_header(root, out);
	for (size_t i = 0; i < k->n; i++) {
		o += cairn_car_section_head(&k->cid[i], k->len[i], out + o);
		memcpy(out + o, k->data[i], k->len[i]);
		o += k->len[i];
	}
	return o;
}

static void test_car(void **state)
{
	(void)state;
	uint8_t *data = gen(2500);
	struct kept k;
	struct cairn_cid root, roots[CAIRN_CAR_ROOTS_MAX];
	build(&k, data, 2500, &root);
	uint8_t *car = malloc(8192);
	size_t len = car_of(&k, &root, car);
	assert_int_equal(car[0], 58); /* the header: 58 bytes for one 36-byte CID */
	size_t n_roots;
	struct seen s = {0};
	assert_int_equal(cairn_car_read(car, len, roots, &n_roots, see, &s, NULL), 0);
	assert_int_equal(n_roots, 1);
	assert_true(cairn_cid_equal(&roots[0], &root));
	assert_int_equal(s.n, k.n);
	for (size_t i = 0; i < k.n; i++)
		assert_true(cairn_cid_equal(&s.cid[i], &k.cid[i]));

	/* every truncation is refused, except at a section boundary */
	for (size_t l = 0; l < len; l++) {
		int rc = cairn_car_read(car, l, roots, &n_roots, NULL, NULL, NULL);
		assert_true(rc == 0 || rc == CAIRN_ETRUNCATED || rc == CAIRN_EFORMAT);
	}
	/* a flipped byte in each block's data */
	for (size_t i = 0, o = car[0] + 1u; i < k.n; i++) {
		uint8_t head[CAIRN_CAR_SECTION_HEAD_MAX];
		size_t hl = cairn_car_section_head(&k.cid[i], k.len[i], head);
		car[o + hl] ^= 1;
		struct cairn_error err;
		cairn_error_init(&err);
		assert_int_equal(cairn_car_read(car, len, roots, &n_roots, NULL, NULL, &err), CAIRN_EHASH);
		assert_non_null(strstr(err.msg, "does not hash to"));
		car[o + hl] ^= 1;
		o += hl + k.len[i];
	}
	/* the header: version 2, no roots, 17 roots, over the bound */
	uint8_t h[CAIRN_CAR_HEADER_MAX];
	size_t hl = cairn_car_header(&root, h);
	h[hl - 1] = 2;
	assert_int_equal(cairn_car_read(h, hl, roots, &n_roots, NULL, NULL, NULL), CAIRN_EFORMAT);
	static const uint8_t noroots[] = {17, 0xa2, 0x65, 'r', 'o', 'o', 't', 's', 0x80, 0x67,
					  'v',	'e',  'r',  's', 'i', 'o', 'n', 0x01};
	assert_int_equal(cairn_car_read(noroots, sizeof(noroots), roots, &n_roots, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	static const uint8_t many[] = {0x90, 0x10};
	assert_int_equal(cairn_car_read(many, sizeof(many), roots, &n_roots, NULL, NULL, NULL),
			 CAIRN_ELIMIT);
	/* a section over the block bound, before its bytes are needed */
	hl = cairn_car_header(&root, h);
	uint8_t big[CAIRN_CAR_HEADER_MAX + IPFS_VARINT_MAX];
	memcpy(big, h, hl);
	size_t bl = hl + ipfs_varint_put(big + hl, CAIRN_IPFS_BLOCK_MAX + CAIRN_CID_BIN_MAX + 1);
	assert_int_equal(cairn_car_read(big, bl, roots, &n_roots, NULL, NULL, NULL), CAIRN_ELIMIT);
	free(car);
	kept_release(&k);
	free(data);
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cid_text),   cmocka_unit_test(test_cid_bytes),
	    cmocka_unit_test(test_varint),     cmocka_unit_test(test_importer_cids),
	    cmocka_unit_test(test_fastcdc),    cmocka_unit_test(test_chunker_spec),
	    cmocka_unit_test(test_dagpb),      cmocka_unit_test(test_car),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
