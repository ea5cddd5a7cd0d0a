#include <setjmp.h>
#include <stdarg.h>
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
#include "vecutil.h"
#include "../../lib/narinfo-int.h"

static struct cairn_nix_seckey vec_sk;
static struct cairn_nix_pubkey vec_pk;

static void load_vec_keys(void)
{
	size_t n;
	char *s = read_vec("nix/keys/cache.example.org-1.sec", &n);
	char *p = read_vec("nix/keys/cache.example.org-1.pub", &n);
	assert_non_null(s);
	assert_non_null(p);
	assert_int_equal(cairn_nix_seckey_parse(s, strlen(s), &vec_sk, NULL), 0);
	assert_int_equal(cairn_nix_pubkey_parse(p, strlen(p), &vec_pk, NULL), 0);
	free(s);
	free(p);
}

static void test_key_files(void **state)
{
	(void)state;
	load_vec_keys();
	assert_string_equal(vec_pk.name, "cache.example.org-1");
	struct cairn_nix_pubkey derived;
	cairn_nix_seckey_public(&vec_sk, &derived);
	assert_memory_equal(&derived, &vec_pk, sizeof(derived));
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_nix_pubkey_format(&vec_pk, &b), 0);
	assert_string_equal(b.data,
			    "cache.example.org-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=");
	cairn_buf_release(&b);

	struct cairn_nix_pubkey pk;
	struct cairn_error e;
	/* A trailing newline is fine; a missing name, a secret key, junk are not. */
	const char *good = "k:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=\n";
	assert_int_equal(cairn_nix_pubkey_parse(good, strlen(good), &pk, NULL), 0);
	const char *bad[] = {":XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=",
			     "XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=", "k:XzmZ", "k:!!!!",
			     "a b:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg="};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cairn_error_init(&e);
		assert_int_equal(cairn_nix_pubkey_parse(bad[i], strlen(bad[i]), &pk, &e),
				 CAIRN_EFORMAT);
	}
	size_t n = 0;
	char *sec = read_vec("nix/keys/cache.example.org-1.sec", &n);
	cairn_error_init(&e);
	assert_int_equal(cairn_nix_pubkey_parse(sec, n, &pk, &e), CAIRN_EFORMAT);
	assert_non_null(strstr(e.msg, "secret"));
	free(sec);

	/* Generated keys sign and verify. */
	struct cairn_nix_seckey sk;
	assert_int_equal(cairn_nix_key_generate("gen-1", &sk, NULL), 0);
	cairn_nix_seckey_public(&sk, &pk);
	struct cairn_buf sig = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_nix_sign(&sk, "abc", 3, &sig, NULL), 0);
	assert_int_equal(cairn_nix_verify(&pk, "abc", 3, sig.data, sig.len, NULL), 0);
	assert_int_equal(cairn_nix_verify(&pk, "abd", 3, sig.data, sig.len, NULL), CAIRN_ESIG);
	assert_int_equal(cairn_nix_verify(&vec_pk, "abc", 3, sig.data, sig.len, NULL),
			 CAIRN_EUNTRUSTED);
	cairn_buf_release(&sig);
	cairn_nix_seckey_wipe(&sk);
	assert_int_equal(cairn_nix_key_generate("bad:name", &sk, NULL), CAIRN_EFORMAT);
}

static struct cairn_narinfo *parse_or_die(const char *t)
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error e;
	cairn_error_init(&e);
	if (cairn_narinfo_parse(t, strlen(t), &ni, &e))
		fail_msg("parse: %s", cairn_error_msg(&e));
	return ni;
}

static int verify_text(const char *t, const struct cairn_keyring *kr,
		       struct cairn_verify_result *res)
{
	struct cairn_narinfo *ni = parse_or_die(t);
	int rc = cairn_narinfo_verify(ni, kr, res, NULL);
	assert_int_equal(rc, res->status);
	cairn_narinfo_free(ni);
	return rc;
}

/* Every Sig made by Nix verifies, and signing again reproduces it exactly. */
static void test_vectors_verify_and_resign(void **state)
{
	(void)state;
	load_vec_keys();
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	assert_int_equal(cairn_keyring_add_nix(&kr, &vec_pk, NULL), 0);
	struct cairn_seckey sk = {.kind = CAIRN_KEY_NIX};
	sk.u.nix = vec_sk;
	for (size_t c = 0; c < 4; c++)
		for (size_t p = 0; p < 3; p++) {
			char rel[256];
			snprintf(rel, sizeof(rel), "nix/%s/%s.narinfo", nix_caches[c],
				 nix_paths[p]);
			char *t = read_vec(rel, NULL);
			struct cairn_narinfo *ni = parse_or_die(t);
			struct cairn_verify_result res;
			assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
			assert_int_equal(res.n_signers, 1);
			assert_int_equal(res.signers[0].kind, CAIRN_KEY_NIX);
			char orig[256];
			snprintf(orig, sizeof(orig), "%s", ni->sigs[0]);
			cairn_narinfo_clear_sigs(ni);
			assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), CAIRN_ENOSIG);
			assert_int_equal(cairn_narinfo_sign(ni, &sk, NULL, NULL), 0);
			assert_string_equal(ni->sigs[0], orig);
			struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
			assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
			assert_string_equal(b.data, t);
			cairn_buf_release(&b);
			cairn_narinfo_free(ni);
			free(t);
		}
	cairn_seckey_wipe(&sk);
	cairn_keyring_release(&kr);
}

static const char top[] = "nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo";

static void expect_edit(const char *t, const struct cairn_keyring *kr, const char *from,
			const char *to, int want)
{
	char *s = replace(t, from, to);
	if (!s)
		fail_msg("'%s' not in vector", from);
	struct cairn_verify_result res;
	int rc = verify_text(s, kr, &res);
	if (rc != want)
		fail_msg("edit '%s' -> '%s': got %d (%s), want %d", from, to, rc, res.detail, want);
	if (want)
		assert_int_equal(res.n_signers, 0);
	free(s);
}

static void test_tampering(void **state)
{
	(void)state;
	load_vec_keys();
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	assert_int_equal(cairn_keyring_add_nix(&kr, &vec_pk, NULL), 0);
	char *t = read_vec(top, NULL);
	/* Signed fields. */
	expect_edit(t, &kr, "-appvec-3.0\n", "-appvec-3.1\n", CAIRN_ESIG);
	expect_edit(t, &kr, "NarHash: sha256:0cbj", "NarHash: sha256:1cbj", CAIRN_ESIG);
	expect_edit(t, &kr, "NarSize: 584", "NarSize: 585", CAIRN_ESIG);
	expect_edit(t, &kr, "References: 6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1 ",
		    "References: ", CAIRN_ESIG);
	expect_edit(t, &kr, "References: ", "References: 0000000000000000000000000000000a-extra ",
		    CAIRN_ESIG);
	/* Reference order and duplicates do not matter: Nix keeps a set. */
	expect_edit(t, &kr,
		    "6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1 "
		    "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0",
		    "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0 "
		    "6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1 "
		    "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0",
		    0);
	/* Unsigned fields (Nix semantics). */
	expect_edit(t, &kr, "URL: nar/0j4", "URL: nar/1j4", 0);
	expect_edit(t, &kr, "Compression: xz", "Compression: zstd", 0);
	expect_edit(t, &kr, "FileHash: sha256:0j4", "FileHash: sha256:1j4", 0);
	expect_edit(t, &kr, "FileSize: 288", "FileSize: 1", 0);
	expect_edit(t, &kr, "Deriver: 1pkma", "Deriver: 0pkma", 0);
	expect_edit(t, &kr, "Sig:", "System: x86_64-linux\nSig:", 0);
	/* The NarHash written in base16 is the same hash: still valid. */
	struct cairn_narinfo *ni = parse_or_die(t);
	char hex[CAIRN_HASH_STR_MAX], nix32[CAIRN_HASH_STR_MAX];
	cairn_hash_format(&ni->nar_hash, CAIRN_HASH_BASE16, hex, sizeof(hex));
	cairn_hash_format(&ni->nar_hash, CAIRN_HASH_NIX32, nix32, sizeof(nix32));
	cairn_narinfo_free(ni);
	expect_edit(t, &kr, nix32, hex, 0);
	/* Signature problems. */
	char *sig = strstr(t, "Sig: ");
	char *sigline = strndup(sig, (size_t)(strchr(sig, '\n') - sig));
	expect_edit(t, &kr, sigline, "X-No: sig", CAIRN_ENOSIG);
	expect_edit(t, &kr, "Sig: cache.example.org-1:", "Sig: other-cache-1:", CAIRN_EUNTRUSTED);
	expect_edit(t, &kr, "BQ==\n", "\n", CAIRN_ESIGCORRUPT); /* truncated */
	expect_edit(t, &kr, "Sig: cache.example.org-1:Ua0", "Sig: cache.example.org-1:Va0",
		    CAIRN_ESIG);
	expect_edit(t, &kr, "Sig: cache.example.org-1:", "Sig: cache.example.org-1",
		    CAIRN_ESIGCORRUPT);
	free(sigline);

	/* A foreign key: same name, other key -> invalid; other name -> untrusted. */
	struct cairn_keyring other = CAIRN_KEYRING_INIT;
	struct cairn_nix_seckey fsk;
	struct cairn_nix_pubkey fpk;
	assert_int_equal(cairn_nix_key_generate("cache.example.org-1", &fsk, NULL), 0);
	cairn_nix_seckey_public(&fsk, &fpk);
	assert_int_equal(cairn_keyring_add_nix(&other, &fpk, NULL), 0);
	struct cairn_verify_result res;
	assert_int_equal(verify_text(t, &other, &res), CAIRN_ESIG);
	cairn_keyring_release(&other);
	assert_int_equal(cairn_nix_key_generate("foreign-1", &fsk, NULL), 0);
	cairn_nix_seckey_public(&fsk, &fpk);
	assert_int_equal(cairn_keyring_add_nix(&other, &fpk, NULL), 0);
	assert_int_equal(verify_text(t, &other, &res), CAIRN_EUNTRUSTED);
	assert_non_null(strstr(res.detail, "cache.example.org-1"));

	/* Two trusted keys signing: both counted, once each (k-of-n). */
	struct cairn_narinfo *two = parse_or_die(t);
	struct cairn_seckey sk2 = {.kind = CAIRN_KEY_NIX};
	sk2.u.nix = fsk;
	assert_int_equal(cairn_narinfo_sign(two, &sk2, NULL, NULL), 0);
	assert_int_equal(cairn_narinfo_sign(two, &sk2, NULL, NULL), 0);
	assert_int_equal(two->n_sigs, 2);
	assert_int_equal(cairn_keyring_add_nix(&other, &vec_pk, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(two, &other, &res, NULL), 0);
	assert_int_equal(res.n_signers, 2);
	char name[128];
	cairn_keyring_key_name(&other, &res.signers[0], name, sizeof(name));
	assert_string_equal(name, "cache.example.org-1");
	cairn_keyring_key_name(&other, &res.signers[1], name, sizeof(name));
	assert_string_equal(name, "foreign-1");
	/* Only the foreign key trusted: one signer, still valid. */
	cairn_keyring_release(&other);
	assert_int_equal(cairn_keyring_add_nix(&other, &fpk, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(two, &other, &res, NULL), 0);
	assert_int_equal(res.n_signers, 1);
	cairn_narinfo_free(two);
	cairn_seckey_wipe(&sk2);
	cairn_nix_seckey_wipe(&fsk);
	cairn_keyring_release(&other);
	cairn_keyring_release(&kr);
	free(t);
}

static void test_fingerprint(void **state)
{
	(void)state;
	char *t = read_vec(top, NULL);
	struct cairn_narinfo *ni = parse_or_die(t);
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_narinfo_fingerprint(ni, &b, NULL), 0);
	assert_string_equal(b.data,
			    "1;/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0;"
			    "sha256:0cbj5m7kpn64l2f08qcs3d5a5w9gkg8l2rkc49257d8244lri1d6;584;"
			    "/nix/store/6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1,"
			    "/nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0");
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	free(t);
}

static void test_keyring_load(void **state)
{
	(void)state;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_error e;
	const char *two = "  a-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=\n"
			  "\tb-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg= \n";
	assert_int_equal(cairn_keyring_load(&kr, two, strlen(two), NULL), 2);
	assert_int_equal(kr.n_nix, 2);
	assert_string_equal(kr.nix[1].name, "b-1");
	/* Loading again adds nothing new. */
	assert_int_equal(cairn_keyring_load(&kr, two, strlen(two), NULL), 2);
	assert_int_equal(kr.n_nix, 2);
	/* One bad key in the file: nothing is added. */
	const char *mixed = "c-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg= d-1:bad";
	cairn_error_init(&e);
	assert_int_equal(cairn_keyring_load(&kr, mixed, strlen(mixed), &e), CAIRN_EFORMAT);
	assert_int_equal(kr.n_nix, 2);
	cairn_error_init(&e);
	assert_int_equal(cairn_keyring_load(&kr, " \n", 2, &e), CAIRN_EFORMAT);
	size_t n = 0;
	char *sec = read_vec("nix/keys/cache.example.org-1.sec", &n);
	cairn_error_init(&e);
	assert_int_equal(cairn_keyring_load(&kr, sec, n, &e), CAIRN_EFORMAT);
	assert_non_null(strstr(e.msg, "secret"));
	free(sec);
	const char *gsec = "(key-data (public-key (ecc (curve Ed25519) (q #00#))))";
	cairn_error_init(&e);
	assert_int_equal(cairn_keyring_load(&kr, gsec, strlen(gsec), &e), CAIRN_EFORMAT);
	assert_non_null(strstr(e.msg, "secret"));
	cairn_keyring_release(&kr);
}

/* Guix's rule: a signature that does not cover References counts as none.
 * Checked before any Guix crypto, so it holds with or without guix.c. */
static void test_guix_mandatory_fields(void **state)
{
	(void)state;
	char *t = read_vec("guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo", NULL);
	char *refs = strstr(t, "References: ");
	char *eol = strchr(refs, '\n');
	char line[1024];
	snprintf(line, sizeof(line), "%.*s", (int)(eol - refs + 1), refs);
	char *s = replace(t, line, "");
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_verify_result res;
	assert_int_equal(verify_text(s, &kr, &res), CAIRN_ENOSIG);
	assert_non_null(strstr(res.detail, "unsigned"));
	/* A malformed Signature value is corrupt. */
	char *c = replace(t, "Signature: 1;", "Signature: 2;");
	assert_int_equal(verify_text(c, &kr, &res), CAIRN_ESIGCORRUPT);
	free(c);
	c = replace(t, "Signature: 1;berlin.guixsd.org;KHNp",
		    "Signature: 1;berlin.guixsd.org;!HNp");
	assert_int_equal(verify_text(c, &kr, &res), CAIRN_ESIGCORRUPT);
	free(c);
	free(s);
	free(t);
}

/* Needs guix.c: skipped while only the stub is linked. */
static void test_guix_vector_verify(void **state)
{
	(void)state;
	size_t n = 0;
	char *pub = read_vec("guix/ci.guix.gnu.org.pub", &n);
	char *other = read_vec("guix/bordeaux.guix.gnu.org.pub", NULL);
	struct cairn_keyring kr = CAIRN_KEYRING_INIT, kr2 = CAIRN_KEYRING_INIT;
	struct cairn_error e;
	cairn_error_init(&e);
	int rc = cairn_keyring_load(&kr, pub, n, &e);
	if (rc == CAIRN_EUNSUPPORTED) {
		free(pub);
		free(other);
		skip();
	}
	assert_int_equal(rc, 1);
	assert_int_equal(cairn_keyring_load(&kr2, other, strlen(other), NULL), 1);
	char *t = read_vec("guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo", NULL);
	struct cairn_verify_result res;
	assert_int_equal(verify_text(t, &kr, &res), 0);
	assert_int_equal(res.n_signers, 1);
	assert_int_equal(res.signers[0].kind, CAIRN_KEY_GUIX);
	assert_int_equal(verify_text(t, &kr2, &res), CAIRN_EUNTRUSTED);
	/* Any byte of the signed text counts for Guix, URL included. */
	char *s = replace(t, "URL: nar/gzip/", "URL: nar/lzip/");
	rc = verify_text(s, &kr, &res);
	assert_true(rc == CAIRN_EHASH || rc == CAIRN_ESIG);
	free(s);
	s = replace(t, "NarSize: 637360", "NarSize: 637361");
	rc = verify_text(s, &kr, &res);
	assert_true(rc == CAIRN_EHASH || rc == CAIRN_ESIG);
	free(s);
	free(t);
	free(pub);
	free(other);
	cairn_keyring_release(&kr);
	cairn_keyring_release(&kr2);
}

/* Sign with a fresh Guix key and with a Nix key; both verify. Needs guix.c. */
static void test_guix_sign(void **state)
{
	(void)state;
	struct cairn_seckey gsk = {.kind = CAIRN_KEY_GUIX};
	if (cairn_guix_key_generate(&gsk.u.guix, NULL) == CAIRN_EUNSUPPORTED)
		skip();
	load_vec_keys();
	struct cairn_seckey nsk = {.kind = CAIRN_KEY_NIX};
	nsk.u.nix = vec_sk;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_guix_pubkey gpk;
	cairn_guix_seckey_public(&gsk.u.guix, &gpk);
	assert_int_equal(cairn_keyring_add_guix(&kr, &gpk, NULL), 0);
	assert_int_equal(cairn_keyring_add_nix(&kr, &vec_pk, NULL), 0);
	char *t = read_vec(top, NULL);
	struct cairn_narinfo *ni = parse_or_die(t);
	cairn_narinfo_clear_sigs(ni);
	assert_int_equal(cairn_narinfo_sign(ni, &gsk, NULL, NULL), CAIRN_EINVAL); /* no host */
	assert_int_equal(cairn_narinfo_sign(ni, &nsk, NULL, NULL), 0);
	assert_int_equal(cairn_narinfo_sign(ni, &gsk, "cache.example.org", NULL), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	struct cairn_verify_result res;
	assert_int_equal(verify_text(b.data, &kr, &res), 0);
	assert_int_equal(res.n_signers, 2);
	/* The Signature is the last line, over the text before it. */
	char *sl = strstr(b.data, "Signature: 1;cache.example.org;");
	assert_non_null(sl);
	assert_null(strchr(sl, '\n')[1] ? "more" : NULL);
	/* Changing an unsigned-for-Nix field breaks only the Guix signature. */
	char *s = replace(b.data, "Compression: xz", "Compression: zstd");
	assert_int_equal(verify_text(s, &kr, &res), 0);
	assert_int_equal(res.n_signers, 1);
	assert_int_equal(res.signers[0].kind, CAIRN_KEY_NIX);
	free(s);
	/*
	 * Guix 1.4 layout: URL groups after the Signature line are outside
	 * the signed text; they may change (a new bake) without breaking it.
	 */
	{
		struct cairn_narinfo *g = parse_or_die(t), *gb;
		assert_int_equal(cairn_narinfo_new(g->store_path, &g->nar_hash, g->nar_size, &gb, NULL), 0);
		for (size_t i = 0; i < g->n_refs; i++)
			assert_int_equal(cairn_narinfo_add_ref(gb, g->refs[i], NULL), 0);
		assert_int_equal(cairn_narinfo_sign(gb, &gsk, "h", NULL), 0);
		struct cairn_buf gt = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
		assert_int_equal(cairn_narinfo_print(gb, &gt, NULL), 0);
		assert_int_equal(cairn_buf_puts(&gt, "URL: nar/zstd/x\nCompression: zstd\nFileSize: 12\n"), 0);
		assert_int_equal(verify_text(gt.data, &kr, &res), 0);
		assert_int_equal(res.n_signers, 1);
		struct cairn_narinfo *back = parse_or_die(gt.data);
		assert_int_equal(back->n_urls, 1);
		cairn_narinfo_free(back);
		char *moved = replace(gt.data, "FileSize: 12", "FileSize: 13");
		assert_int_equal(verify_text(moved, &kr, &res), 0);
		free(moved);
		cairn_buf_release(&gt);
		cairn_narinfo_free(gb);
		cairn_narinfo_free(g);
	}
	/* A builder narinfo signs too. */
	struct cairn_narinfo *p = parse_or_die(t), *nb;
	assert_int_equal(cairn_narinfo_new(p->store_path, &p->nar_hash, p->nar_size, &nb, NULL), 0);
	assert_int_equal(cairn_narinfo_add_url(nb, "nar/x", "none", NULL, -1, NULL), 0);
	for (size_t i = 0; i < p->n_refs; i++)
		assert_int_equal(cairn_narinfo_add_ref(nb, p->refs[i], NULL), 0);
	assert_int_equal(cairn_narinfo_sign(nb, &gsk, "h", NULL), 0);
	assert_int_equal(cairn_narinfo_verify(nb, &kr, &res, NULL), 0);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_narinfo_print(nb, &b, NULL), 0);
	assert_int_equal(verify_text(b.data, &kr, &res), 0);
	cairn_narinfo_free(nb);
	cairn_narinfo_free(p);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	cairn_seckey_wipe(&gsk);
	cairn_seckey_wipe(&nsk);
	cairn_keyring_release(&kr);
	free(t);
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_files),
	    cmocka_unit_test(test_vectors_verify_and_resign),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_keyring_load),
	    cmocka_unit_test(test_guix_mandatory_fields),
	    cmocka_unit_test(test_guix_vector_verify),
	    cmocka_unit_test(test_guix_sign),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
