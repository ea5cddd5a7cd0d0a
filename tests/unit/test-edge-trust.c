/* The mirror's side of the trust decision (lib/edge-trust.h): answers by
 * hash part, when K = 1 may decide early, the narinfo served. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "../../lib/edge-trust.h"

#define HASHPART "x6b6ah9iya8w14wv5fzzwj36lf2yyghw"
#define PATH "/nix/store/" HASHPART "-appvec-3.0"
#define HASH_X "sha256:0cbj5m7kpn64l2f08qcs3d5a5w9gkg8l2rkc49257d8244lri1d6"
#define HASH_Y "sha256:0yjj2midsychhj9rk22w8gh826lnbybv4iyj1dm9m8wlzyx1rs4p"

static struct cairn_seckey k1, k2, k3, g1;
static struct cairn_keyring ring; /* k1, k2, g1; not k3 */

enum { S1 = 1, S2 = 2, S3 = 4, SG = 8 };

static int setup(void **state)
{
	(void)state;
	k1.kind = k2.kind = k3.kind = CAIRN_KEY_NIX;
	g1.kind = CAIRN_KEY_GUIX;
	if (cairn_nix_key_generate("farm-a", &k1.u.nix, NULL) ||
	    cairn_nix_key_generate("farm-b", &k2.u.nix, NULL) ||
	    cairn_nix_key_generate("stranger", &k3.u.nix, NULL) ||
	    cairn_guix_key_generate(&g1.u.guix, NULL))
		return -1;
	struct cairn_nix_pubkey p;
	cairn_nix_seckey_public(&k1.u.nix, &p);
	if (cairn_keyring_add_nix(&ring, &p, NULL))
		return -1;
	cairn_nix_seckey_public(&k2.u.nix, &p);
	if (cairn_keyring_add_nix(&ring, &p, NULL))
		return -1;
	struct cairn_guix_pubkey gp;
	cairn_guix_seckey_public(&g1.u.guix, &gp);
	return cairn_keyring_add_guix(&ring, &gp, NULL);
}

static int teardown(void **state)
{
	(void)state;
	cairn_seckey_wipe(&k1);
	cairn_seckey_wipe(&k2);
	cairn_seckey_wipe(&k3);
	cairn_seckey_wipe(&g1);
	cairn_keyring_release(&ring);
	return 0;
}

/* A PRESENT answer from server: a narinfo for path naming url, signed by
 * the keys in sig, its text as a server would send it. */
static void present(struct edge_answer *a, const char *server, const char *path,
		    const char *hash, const char *url, unsigned sig)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "StorePath: %s\nURL: %s\nCompression: xz\nNarHash: %s\nNarSize: 584\n"
		 "References: \n",
		 path, url, hash);
	struct cairn_narinfo *ni = NULL;
	assert_int_equal(cairn_narinfo_parse(text, strlen(text), &ni, NULL), 0);
	if (sig & S1)
		assert_int_equal(cairn_narinfo_sign(ni, &k1, NULL, NULL), 0);
	if (sig & S3)
		assert_int_equal(cairn_narinfo_sign(ni, &k3, NULL, NULL), 0);
	if (sig & S2)
		assert_int_equal(cairn_narinfo_sign(ni, &k2, NULL, NULL), 0);
	if (sig & SG)
		assert_int_equal(cairn_narinfo_sign(ni, &g1, "farm.test", NULL), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	cairn_narinfo_free(ni);
	memset(a, 0, sizeof(*a));
	a->server = server;
	a->answered = true;
	a->state = CAIRN_TRUST_PRESENT;
	a->text = cairn_buf_steal(&b, &a->len);
	assert_int_equal(cairn_narinfo_parse(a->text, a->len, &a->ni, NULL), 0);
	a->max_age = -1;
}

static void other(struct edge_answer *a, const char *server, enum cairn_trust_state st,
		  bool answered)
{
	memset(a, 0, sizeof(*a));
	a->server = server;
	a->answered = answered;
	a->state = st;
	a->error = st == CAIRN_TRUST_ERROR ? "connection refused" : NULL;
	a->max_age = -1;
}

static void release(struct edge_answer *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		cairn_narinfo_free(a[i].ni);
		free(a[i].text);
	}
}

static size_t count_lines(const char *text, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		n += !strncmp(p, prefix, pl);
	return n;
}

static void test_sigs_merge(void **state)
{
	(void)state;
	static const char text[] = "StorePath: /nix/store/x\nSig: a:1\nCA: fixed:r:x\n";
	const char *sigs[] = {"b:2", "a:1", "b:2", "c:3"};
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	assert_int_equal(edge_sigs_merge(text, strlen(text), sigs, 4, &b), 0);
	assert_non_null(b.data);
	assert_string_equal(b.data, "StorePath: /nix/store/x\nSig: a:1\nSig: b:2\nSig: c:3\n"
				    "CA: fixed:r:x\n");
	cairn_buf_release(&b);

	/* nothing new: byte for byte, even without a final newline */
	static const char bare[] = "StorePath: /nix/store/x\nSig: a:1";
	cairn_buf_init(&b, 4096);
	assert_int_equal(edge_sigs_merge(bare, strlen(bare), sigs + 1, 1, &b), 0);
	assert_int_equal(b.len, strlen(bare) + 1);
	assert_memory_equal(b.data, "StorePath: /nix/store/x\nSig: a:1\n", b.len);
	cairn_buf_release(&b);

	/* no Sig line: at the end */
	static const char unsigned_[] = "StorePath: /nix/store/x\nNarSize: 1\n";
	cairn_buf_init(&b, 4096);
	assert_int_equal(edge_sigs_merge(unsigned_, strlen(unsigned_), sigs, 1, &b), 0);
	assert_string_equal(b.data, "StorePath: /nix/store/x\nNarSize: 1\nSig: b:2\n");
	cairn_buf_release(&b);

	/* "Sig: a:1x" is not "Sig: a:1" */
	static const char near[] = "Sig: a:1x\n";
	cairn_buf_init(&b, 4096);
	assert_int_equal(edge_sigs_merge(near, strlen(near), sigs + 1, 1, &b), 0);
	assert_string_equal(b.data, "Sig: a:1x\nSig: a:1\n");
	cairn_buf_release(&b);

	/* a full buffer is an error, not a cut narinfo */
	cairn_buf_init(&b, 20);
	assert_int_equal(edge_sigs_merge(text, strlen(text), sigs, 4, &b), CAIRN_ELIMIT);
	cairn_buf_release(&b);
}

/* Two keys on two upstreams that agree: served with both signatures, the
 * first upstream's URL; a third upstream's untrusted key is not added. */
static void test_k_of_n_served(void **state)
{
	(void)state;
	struct edge_answer a[3];
	struct cairn_trust_answer ta[3];
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	present(&a[0], "http://a", PATH, HASH_X, "nar/a.nar.xz", S1);
	present(&a[1], "http://b", PATH, HASH_X, "nar/b.nar.xz", S2 | S3);
	other(&a[2], "http://c", CAIRN_TRUST_ABSENT, true);
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 2, ta, v), 0);
	assert_true(edge_trust_final(a, 3, 2, v));
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
	assert_int_equal(edge_trust_served(a, ta, 3, v, &b), 0);
	assert_int_equal(count_lines(b.data, "Sig: "), 2);
	assert_int_equal(count_lines(b.data, "Sig: farm-a:"), 1);
	assert_int_equal(count_lines(b.data, "Sig: farm-b:"), 1);
	assert_int_equal(count_lines(b.data, "URL: nar/a.nar.xz"), 1);
	/* what is served stands on its own: K = 2 again, alone */
	struct edge_answer served;
	memset(&served, 0, sizeof(served));
	served.answered = true;
	served.server = "the cache index";
	served.state = CAIRN_TRUST_PRESENT;
	assert_int_equal(cairn_narinfo_parse(b.data, b.len, &served.ni, NULL), 0);
	assert_int_equal(edge_trust_decide(&served, 1, HASHPART, &ring, 2, ta, v), 0);
	cairn_narinfo_free(served.ni);
	cairn_buf_release(&b);

	/* K = 3: not enough, the reason names the keys */
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 3, ta, v), CAIRN_EUNTRUSTED);
	assert_non_null(strstr(v->reason, "2 of 3 required"));
	assert_non_null(strstr(v->reason, "farm-a"));
	assert_non_null(strstr(v->reason, "farm-b"));
	release(a, 3);
	free(v);
}

static void test_disagree(void **state)
{
	(void)state;
	struct edge_answer a[2];
	struct cairn_trust_answer ta[2];
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	present(&a[0], "http://a", PATH, HASH_X, "nar/a.nar.xz", S1);
	present(&a[1], "http://b", PATH, HASH_Y, "nar/b.nar.xz", S2);
	assert_int_equal(edge_trust_decide(a, 2, HASHPART, &ring, 2, ta, v), CAIRN_EHASH);
	assert_non_null(strstr(v->reason, "http://a (signed by farm-a)"));
	assert_non_null(strstr(v->reason, "but http://b (signed by farm-b)"));
	/* K = 1: the preferred upstream's, and its signature only */
	assert_int_equal(edge_trust_decide(a, 2, HASHPART, &ring, 1, ta, v), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
	assert_int_equal(edge_trust_served(a, ta, 2, v, &b), 0);
	assert_int_equal(b.len, a[0].len);
	assert_memory_equal(b.data, a[0].text, b.len);
	cairn_buf_release(&b);
	release(a, 2);
	free(v);
}

/* The mirror asks by hash part: an answer with another name for it
 * (which no trusted key can have signed) does not hide the right one. */
static void test_names(void **state)
{
	(void)state;
	struct edge_answer a[2];
	struct cairn_trust_answer ta[2];
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	present(&a[0], "http://a", "/nix/store/" HASHPART "-evil-1.0", HASH_Y, "nar/a.nar.xz", S3);
	present(&a[1], "http://b", PATH, HASH_X, "nar/b.nar.xz", S1);
	assert_int_equal(edge_trust_decide(a, 2, HASHPART, &ring, 1, ta, v), 0);
	assert_int_equal(ta[1].group, v->chosen);
	assert_int_equal(ta[0].group, -1);
	assert_string_equal(v->ni->store_path, PATH);
	/* nothing trusted under either name: refused for the first name */
	release(a + 1, 1);
	present(&a[1], "http://b", PATH, HASH_X, "nar/b.nar.xz", S3);
	assert_int_not_equal(edge_trust_decide(a, 2, HASHPART, &ring, 1, ta, v), 0);
	assert_non_null(strstr(v->reason, "no trusted signature"));
	assert_non_null(strstr(ta[0].why, "stranger"));
	release(a, 2);
	free(v);
}

static void test_final(void **state)
{
	(void)state;
	struct edge_answer a[3];
	struct cairn_trust_answer ta[3];
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	/* K = 1: the first upstream accepted, the others still out: final */
	present(&a[0], "http://a", PATH, HASH_X, "nar/a.nar.xz", S1);
	other(&a[1], "http://b", CAIRN_TRUST_ERROR, false);
	other(&a[2], "http://c", CAIRN_TRUST_ERROR, false);
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 1, ta, v), 0);
	assert_true(edge_trust_final(a, 3, 1, v));
	/* K = 2 waits for every answer, even when it would refuse now */
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 2, ta, v), CAIRN_EUNTRUSTED);
	assert_false(edge_trust_final(a, 3, 2, v));
	release(a, 3);

	/* K = 1: the second upstream accepted, the first still out: not yet */
	other(&a[0], "http://a", CAIRN_TRUST_ERROR, false);
	present(&a[1], "http://b", PATH, HASH_X, "nar/b.nar.xz", S1);
	other(&a[2], "http://c", CAIRN_TRUST_ERROR, false);
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 1, ta, v), 0);
	assert_false(edge_trust_final(a, 3, 1, v));
	/* ... it said 404: final */
	other(&a[0], "http://a", CAIRN_TRUST_ABSENT, true);
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 1, ta, v), 0);
	assert_true(edge_trust_final(a, 3, 1, v));
	/* refused with an answer out: not yet */
	release(a + 1, 1);
	other(&a[1], "http://b", CAIRN_TRUST_ABSENT, true);
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 1, ta, v), CAIRN_ENOENT);
	assert_false(edge_trust_final(a, 3, 1, v));
	a[2].answered = true;
	assert_int_equal(edge_trust_decide(a, 3, HASHPART, &ring, 1, ta, v), CAIRN_ENOENT);
	assert_true(edge_trust_final(a, 3, 1, v));
	release(a, 3);
	free(v);
}

/* A Guix narinfo is served as it came: its one Signature covers the text
 * before it. */
static void test_guix(void **state)
{
	(void)state;
	struct edge_answer a[2];
	struct cairn_trust_answer ta[2];
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	assert_non_null(v);
	present(&a[0], "http://a", PATH, HASH_X, "nar/gzip/a", SG);
	present(&a[1], "http://b", PATH, HASH_X, "nar/b.nar.xz", S1);
	assert_int_equal(edge_trust_decide(a, 2, HASHPART, &ring, 2, ta, v), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
	assert_int_equal(edge_trust_served(a, ta, 2, v, &b), 0);
	assert_int_equal(b.len, a[0].len);
	assert_memory_equal(b.data, a[0].text, b.len);
	cairn_buf_release(&b);
	release(a, 2);
	free(v);
}

int main(void)
{
	assert_int_equal(cairn_init(), 0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sigs_merge),	 cmocka_unit_test(test_k_of_n_served),
	    cmocka_unit_test(test_disagree),	 cmocka_unit_test(test_names),
	    cmocka_unit_test(test_final),	 cmocka_unit_test(test_guix),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
