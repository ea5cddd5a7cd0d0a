/* The change feed (lib/feed.c, lib/feed-doc.c): sequence numbers that
 * survive a reopen and are never handed out twice, bounded pages, the
 * since-too-old error, signatures accepted and refused, forged and
 * replayed pages refused, the snapshot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cairn/cairn.h"
#include "cairn/feed.h"
#include "cairn/hash.h"
#include "cairn/keys.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test-feed-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/feed.sqlite", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char p[160];
	static const char *const suffix[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

/* The i-th test hash part: 32 nix32 characters. */
static void hp(char out[33], unsigned i)
{
	snprintf(out, 33, "%032u", i); /* digits are nix32 */
}

static void add(struct cairn_feed *f, unsigned i, bool expect)
{
	char h[33], ni[128];
	bool added = !expect;
	hp(h, i);
	int n = snprintf(ni, sizeof(ni), "StorePath: /nix/store/%s-item-%u\nNarSize: %u\n", h, i,
			 i);
	assert_int_equal(cairn_feed_add(f, h, ni, (size_t)n, &added, NULL), 0);
	assert_int_equal(added, expect);
}

static uint64_t head_of(struct cairn_feed *f)
{
	uint64_t h = 99, fl;
	assert_int_equal(cairn_feed_head(f, &h, &fl, NULL), 0);
	return h;
}

static void test_sequence_persists(void **state)
{
	(void)state;
	struct cairn_feed *f;
	char h[33], id[CAIRN_FEED_ID_LEN + 1];
	bool removed;
	uint64_t n;

	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	assert_int_equal(head_of(f), 0);
	assert_int_equal(strlen(cairn_feed_id(f)), CAIRN_FEED_ID_LEN);
	memcpy(id, cairn_feed_id(f), sizeof(id));
	add(f, 1, true);
	add(f, 2, true);
	add(f, 2, false); /* same text: no event */
	hp(h, 1);
	assert_int_equal(cairn_feed_remove(f, h, &removed, NULL), 0);
	assert_true(removed);
	assert_int_equal(cairn_feed_remove(f, h, &removed, NULL), 0);
	assert_false(removed);
	assert_int_equal(head_of(f), 3);
	cairn_feed_close(f);

	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	assert_string_equal(cairn_feed_id(f), id);
	assert_int_equal(head_of(f), 3);
	assert_int_equal(cairn_feed_count(f, &n, NULL), 0);
	assert_int_equal(n, 1);
	/* every event deleted (item 2 removed, then all pruned): the next
	 * number still follows the last one handed out */
	hp(h, 2);
	assert_int_equal(cairn_feed_remove(f, h, &removed, NULL), 0);
	assert_int_equal(cairn_feed_prune(f, 0, NULL), 0);
	cairn_feed_close(f);
	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	add(f, 3, true);
	assert_int_equal(head_of(f), 5);
	cairn_feed_close(f);
}

static void keyring_nix(struct cairn_keyring *kr, const struct cairn_seckey *sk)
{
	struct cairn_nix_pubkey pk;
	cairn_nix_seckey_public(&sk->u.nix, &pk);
	cairn_keyring_init(kr);
	assert_int_equal(cairn_keyring_add_nix(kr, &pk, NULL), 0);
}

static void nix_key(struct cairn_seckey *sk, const char *name)
{
	sk->kind = CAIRN_KEY_NIX;
	assert_int_equal(cairn_nix_key_generate(name, &sk->u.nix, NULL), 0);
}

static void test_pages_bounded(void **state)
{
	(void)state;
	struct cairn_feed *f;
	struct cairn_seckey sk;
	const struct cairn_seckey *keys[1] = {&sk};
	struct cairn_feed_signer signer = {keys, 1, "nix"};
	struct cairn_keyring kr;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_feed_doc doc;
	uint64_t next;

	nix_key(&sk, "feed-test-1");
	keyring_nix(&kr, &sk);
	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	for (unsigned i = 1; i <= 25; i++)
		add(f, i, true);
	/* ten at a time, each page following the last */
	uint64_t since = 0;
	for (int p = 0; p < 3; p++) {
		cairn_buf_reset(&b);
		assert_int_equal(cairn_feed_page(f, since, 10, &signer, &b, &next, NULL), 0);
		assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
		assert_int_equal(doc.n_events, p < 2 ? 10 : 5);
		assert_int_equal(doc.since, since);
		assert_int_equal(doc.next, next);
		assert_int_equal(doc.head, 25);
		assert_int_equal(doc.events[0].seq, since + 1);
		assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), 0);
		assert_int_equal(cairn_feed_doc_check_page(&doc, cairn_feed_id(f), since, NULL), 0);
		since = next;
		cairn_feed_doc_release(&doc);
	}
	assert_int_equal(since, 25);
	/* at the head: an empty page, range since..since */
	cairn_buf_reset(&b);
	assert_int_equal(cairn_feed_page(f, 25, 0, &signer, &b, &next, NULL), 0);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_int_equal(doc.n_events, 0);
	assert_int_equal(next, 25);
	cairn_feed_doc_release(&doc);

	/* large narinfos: the page stops below its byte bound */
	size_t big = 900u * 1024u;
	char *ni = malloc(big);
	assert_non_null(ni);
	memset(ni, 'x', big);
	ni[big - 1] = '\n';
	assert_int_equal(cairn_feed_begin(f, NULL), 0);
	for (unsigned i = 100; i < 120; i++) {
		char h[33];
		hp(h, i);
		ni[0] = (char)('a' + i % 26);
		assert_int_equal(cairn_feed_add(f, h, ni, big, NULL, NULL), 0);
	}
	assert_int_equal(cairn_feed_commit(f, NULL), 0);
	/* one event past the bound is refused */
	char h[33];
	hp(h, 200);
	assert_int_equal(cairn_feed_add(f, h, ni, CAIRN_FEED_EVENT_MAX + 1, NULL, NULL),
			 CAIRN_ELIMIT);
	free(ni);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_feed_page(f, 25, 0, &signer, &b, &next, NULL), 0);
	assert_true(b.len <= CAIRN_FEED_PAGE_MAX);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_true(doc.n_events >= 1 && doc.n_events < 20);
	assert_int_equal(doc.next, 25 + doc.n_events);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), 0);
	cairn_feed_doc_release(&doc);

	cairn_buf_release(&b);
	cairn_keyring_release(&kr);
	cairn_seckey_wipe(&sk);
	cairn_feed_close(f);
}

static void test_since_too_old(void **state)
{
	(void)state;
	struct cairn_feed *f;
	struct cairn_feed_signer signer = {NULL, 0, "nix"};
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_error err;
	uint64_t head, floor, next;

	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	for (unsigned i = 1; i <= 25; i++)
		add(f, i, true);
	for (unsigned i = 1; i <= 10; i++) {
		char h[33];
		hp(h, i);
		assert_int_equal(cairn_feed_remove(f, h, NULL, NULL), 0);
	}
	assert_int_equal(cairn_feed_prune(f, 5, NULL), 0);
	assert_int_equal(cairn_feed_head(f, &head, &floor, NULL), 0);
	assert_int_equal(head, 35);
	assert_int_equal(floor, 30);
	cairn_error_init(&err);
	assert_int_equal(cairn_feed_page(f, 3, 0, &signer, &b, &next, &err), CAIRN_ENOENT);
	assert_non_null(strstr(err.msg, "snapshot"));
	assert_int_equal(cairn_feed_page(f, 29, 0, &signer, &b, &next, NULL), CAIRN_ENOENT);
	assert_int_equal(cairn_feed_page(f, 30, 0, &signer, &b, &next, NULL), 0);
	assert_int_equal(next, 35);
	assert_int_equal(cairn_feed_page(f, 36, 0, &signer, &b, &next, NULL), CAIRN_EINVAL);

	/* an item removed (or added again) whose add event is below the
	 * floor: that event goes at once, later prunes start at the floor */
	char h11[33], h12[33];
	hp(h11, 11);
	hp(h12, 12);
	assert_int_equal(cairn_feed_remove(f, h11, NULL, NULL), 0);
	assert_int_equal(cairn_feed_add(f, h12, "new text\n", 9, NULL, NULL), 0);
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM events WHERE seq <= 30 AND "
					    "hashpart IN (?1, ?2)",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, h11, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, h12, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	cairn_buf_release(&b);
	cairn_feed_close(f);
}

/* A page of item 1..3 signed by sk, into b; returns the feed id. */
static void signed_page(const struct cairn_seckey *sk, struct cairn_buf *b, char *id)
{
	struct cairn_feed *f;
	const struct cairn_seckey *keys[1] = {sk};
	struct cairn_feed_signer signer = {keys, sk ? 1 : 0, "nix"};
	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	for (unsigned i = 1; i <= 3; i++)
		add(f, i, true);
	assert_int_equal(cairn_feed_page(f, 0, 0, &signer, b, NULL, NULL), 0);
	memcpy(id, cairn_feed_id(f), CAIRN_FEED_ID_LEN + 1);
	cairn_feed_close(f);
}

/* Re-hash a page whose bytes before "end" were changed, as a forger
 * without the key would: the hash matches again, the signature cannot. */
static void rehash(char *t, size_t len)
{
	char *end = strstr(t, "\nend ");
	assert_non_null(end);
	end++;
	uint8_t d[CAIRN_SHA256_LEN];
	cairn_sha256(t, (size_t)(end - t), d);
	char *hex = strchr(end + 4, ' ') + 1;
	for (int i = 0; i < 32; i++) {
		static const char x[] = "0123456789abcdef";
		hex[2 * i] = x[d[i] >> 4];
		hex[2 * i + 1] = x[d[i] & 15];
	}
	(void)len;
}

static void test_verify(void **state)
{
	(void)state;
	struct cairn_seckey sk, other, gk;
	struct cairn_keyring kr, okr, gkr;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_feed_doc doc;
	struct cairn_error err;
	char id[CAIRN_FEED_ID_LEN + 1];

	nix_key(&sk, "feed-test-1");
	nix_key(&other, "feed-test-1"); /* same name, other key */
	keyring_nix(&kr, &sk);
	keyring_nix(&okr, &other);
	signed_page(&sk, &b, id);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_int_equal(doc.n_sigs, 1);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_feed_doc_verify(&doc, &okr, &err), CAIRN_ESIG);
	/* replayed where the events after 1 were asked for, or from another feed */
	assert_int_equal(cairn_feed_doc_check_page(&doc, id, 1, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_feed_doc_check_page(&doc, "00000000000000000000000000000000", 0,
						   NULL),
			 CAIRN_EFORMAT);
	assert_int_equal(cairn_feed_doc_check_page(&doc, id, 0, NULL), 0);
	cairn_feed_doc_release(&doc);

	/* forged: a narinfo changed; the bare change fails the hash, the
	 * change with the hash redone fails the signature */
	char *t = strdup(b.data);
	assert_non_null(t);
	char *sp = strstr(t, "NarSize: 2");
	assert_non_null(sp);
	sp[9] = '7';
	assert_int_equal(cairn_feed_doc_parse(t, b.len, &doc, NULL), CAIRN_EHASH);
	rehash(t, b.len);
	assert_int_equal(cairn_feed_doc_parse(t, b.len, &doc, NULL), 0);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), CAIRN_ESIG);
	cairn_feed_doc_release(&doc);
	/* forged: a range moved (to replay it elsewhere) */
	memcpy(t, b.data, b.len);
	char *rg = strstr(t, "range 0 3");
	assert_non_null(rg);
	rg[6] = '1';
	assert_int_equal(cairn_feed_doc_parse(t, b.len, &doc, NULL), CAIRN_EFORMAT);
	free(t);

	/* unsigned: refused */
	teardown(NULL);
	setup(NULL);
	cairn_buf_reset(&b);
	signed_page(NULL, &b, id);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), CAIRN_ENOSIG);
	cairn_feed_doc_release(&doc);

	/* Guix key: accepted by a ring holding it, untrusted otherwise */
	struct cairn_guix_pubkey gpk;
	gk.kind = CAIRN_KEY_GUIX;
	assert_int_equal(cairn_guix_key_generate(&gk.u.guix, NULL), 0);
	cairn_guix_seckey_public(&gk.u.guix, &gpk);
	cairn_keyring_init(&gkr);
	assert_int_equal(cairn_keyring_add_guix(&gkr, &gpk, NULL), 0);
	teardown(NULL);
	setup(NULL);
	cairn_buf_reset(&b);
	signed_page(&gk, &b, id);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_int_equal(doc.sigs[0].kind, CAIRN_KEY_GUIX);
	assert_int_equal(cairn_feed_doc_verify(&doc, &gkr, NULL), 0);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), CAIRN_EUNTRUSTED);
	cairn_feed_doc_release(&doc);

	cairn_buf_release(&b);
	cairn_keyring_release(&kr);
	cairn_keyring_release(&okr);
	cairn_keyring_release(&gkr);
	cairn_seckey_wipe(&sk);
	cairn_seckey_wipe(&other);
	cairn_seckey_wipe(&gk);
}

static int collect(void *ctx, const void *data, size_t len)
{
	return cairn_buf_append(ctx, data, len);
}

static void test_snapshot(void **state)
{
	(void)state;
	struct cairn_feed *f;
	struct cairn_seckey sk;
	const struct cairn_seckey *keys[1] = {&sk};
	struct cairn_feed_signer signer = {keys, 1, "nix"};
	struct cairn_keyring kr;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_feed_doc doc;
	char h[33];

	nix_key(&sk, "feed-test-1");
	keyring_nix(&kr, &sk);
	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	for (unsigned i = 1; i <= 40; i++)
		add(f, i, true);
	hp(h, 7);
	assert_int_equal(cairn_feed_remove(f, h, NULL, NULL), 0);
	assert_int_equal(cairn_feed_snapshot(f, &signer, collect, &b, NULL), 0);
	assert_int_equal(cairn_feed_doc_parse(b.data, b.len, &doc, NULL), 0);
	assert_int_equal(doc.kind, CAIRN_FEED_SNAPSHOT);
	assert_int_equal(doc.n_events, 39);
	assert_int_equal(doc.next, 41);
	assert_int_equal(cairn_feed_doc_verify(&doc, &kr, NULL), 0);
	for (size_t i = 0; i < doc.n_events; i++)
		assert_int_not_equal(memcmp(doc.events[i].hashpart, h, 32), 0);
	/* a snapshot is not a page */
	assert_int_equal(cairn_feed_doc_check_page(&doc, NULL, 0, NULL), CAIRN_EFORMAT);
	cairn_feed_doc_release(&doc);
	cairn_buf_release(&b);
	cairn_keyring_release(&kr);
	cairn_seckey_wipe(&sk);
	cairn_feed_close(f);
}

struct count_ctx {
	size_t n;
	uint64_t last_seq;
};

static int count_event(void *ctx, const struct cairn_feed_event *e)
{
	struct count_ctx *c = ctx;
	c->n++;
	c->last_seq = e->seq;
	return 0;
}

/* The stream reader, fed in pieces of every size from 1 byte up, reaches
 * the whole parser's verdict: events, statement, signature. */
static void test_reader(void **state)
{
	(void)state;
	struct cairn_feed *f;
	struct cairn_seckey sk;
	const struct cairn_seckey *keys[1] = {&sk};
	struct cairn_feed_signer signer = {keys, 1, "nix"};
	struct cairn_keyring kr;
	struct cairn_buf page = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	struct cairn_buf snap = CAIRN_BUF_INIT(CAIRN_FEED_PAGE_MAX);
	char h[33];

	nix_key(&sk, "feed-test-1");
	keyring_nix(&kr, &sk);
	assert_int_equal(cairn_feed_open(&f, path, NULL), 0);
	for (unsigned i = 1; i <= 30; i++)
		add(f, i, true);
	hp(h, 4);
	assert_int_equal(cairn_feed_remove(f, h, NULL, NULL), 0);
	assert_int_equal(cairn_feed_page(f, 0, 0, &signer, &page, NULL, NULL), 0);
	assert_int_equal(cairn_feed_snapshot(f, &signer, collect, &snap, NULL), 0);
	const struct cairn_buf *docs[2] = {&page, &snap};
	static const size_t pieces[] = {1, 2, 7, 64, 1000, 1 << 20};
	for (size_t d = 0; d < 2; d++) {
		for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
			struct cairn_feed_reader *r;
			struct count_ctx c = {0, 0};
			const struct cairn_feed_doc *doc;
			assert_int_equal(cairn_feed_reader_new(&r, count_event, &c, NULL), 0);
			for (size_t o = 0; o < docs[d]->len; o += pieces[p]) {
				size_t n = docs[d]->len - o < pieces[p] ? docs[d]->len - o : pieces[p];
				assert_int_equal(cairn_feed_reader_feed(r, docs[d]->data + o, n, NULL), 0);
			}
			assert_int_equal(cairn_feed_reader_finish(r, &doc, NULL), 0);
			assert_int_equal(c.n, d == 0 ? 31 : 29);
			assert_int_equal(doc->n_events, c.n);
			assert_int_equal(cairn_feed_doc_verify(doc, &kr, NULL), 0);
			cairn_feed_reader_free(r);
		}
	}
	/* cut short, and a byte changed: refused */
	struct cairn_feed_reader *r;
	const struct cairn_feed_doc *doc;
	assert_int_equal(cairn_feed_reader_new(&r, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_feed_reader_feed(r, snap.data, snap.len - 3, NULL), 0);
	assert_int_equal(cairn_feed_reader_finish(r, &doc, NULL), CAIRN_ETRUNCATED);
	cairn_feed_reader_free(r);
	char *t = strstr(snap.data, "NarSize: 2");
	assert_non_null(t);
	t[9] = '8';
	assert_int_equal(cairn_feed_reader_new(&r, NULL, NULL, NULL), 0);
	assert_int_equal(cairn_feed_reader_feed(r, snap.data, snap.len, NULL), CAIRN_EHASH);
	cairn_feed_reader_free(r);

	cairn_buf_release(&page);
	cairn_buf_release(&snap);
	cairn_keyring_release(&kr);
	cairn_seckey_wipe(&sk);
	cairn_feed_close(f);
}

static void test_parse_refuses(void **state)
{
	(void)state;
	static const char head[] = "cairn-feed 1\nkind page\nfeed 0123456789abcdef0123456789abcdef\n"
				   "dialect nix\n";
	static const char *const bodies[] = {
		/* seqs out of order */
		("range 0 2\nhead 2\nremove 2 00000000000000000000000000000001\n"
		 "remove 1 00000000000000000000000000000002\nend 2 "),
		/* past the range */
		"range 0 1\nhead 2\nremove 2 00000000000000000000000000000001\nend 1 ",
		/* range ends past the last event */
		"range 0 3\nhead 3\nremove 2 00000000000000000000000000000001\nend 1 ",
		/* count wrong */
		"range 0 1\nhead 1\nremove 1 00000000000000000000000000000001\nend 2 ",
		/* length past the end */
		"range 0 1\nhead 1\nadd 1 00000000000000000000000000000001 999\nx\nend 1 ",
		/* leading zero */
		"range 0 01\nhead 1\nend 0 ",
		/* not a hash part */
		"range 0 1\nhead 1\nremove 1 0000000000000000000000000000000e\nend 1 ",
		/* head behind the range */
		"range 0 1\nhead 0\nremove 1 00000000000000000000000000000001\nend 1 ",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
		struct cairn_feed_doc doc;
		assert_int_equal(cairn_buf_puts(&b, head), 0);
		assert_int_equal(cairn_buf_puts(&b, bodies[i]), 0);
		/* a hash that matches, so the refusal is the layout's */
		const char *end = strstr(b.data, "end ");
		uint8_t d[CAIRN_SHA256_LEN];
		cairn_sha256(b.data, (size_t)(end - b.data), d);
		for (int k = 0; k < 32; k++)
			assert_int_equal(cairn_buf_printf(&b, "%02x", d[k]), 0);
		assert_int_equal(cairn_buf_putc(&b, '\n'), 0);
		int rc = cairn_feed_doc_parse(b.data, b.len, &doc, NULL);
		if (rc == 0)
			fail_msg("body %zu parsed", i);
		cairn_buf_release(&b);
	}
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sequence_persists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_since_too_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader, setup, teardown),
		cmocka_unit_test(test_parse_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
