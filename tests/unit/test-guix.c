#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gcrypt.h>

#include "cairn/buf.h"
#include "cairn/cairn.h"
#include "cairn/guix.h"
#include "cairn/hash.h"
#include "../../lib/sexp.h"
#include "../../lib/guix-int.h"

#define NARINFO "guix/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw.narinfo"

static char *slurp(const char *rel, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", VECTORS_DIR, rel);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 16);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void load_pub(const char *rel, struct cairn_guix_pubkey *pk)
{
	size_t len;
	char *t = slurp(rel, &len);
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_guix_pubkey_parse(t, len, pk, &err), 0);
	free(t);
}

/* The farm narinfo split into signed text and decoded signature s-expression. */
struct farm {
	char *text;
	size_t signed_len;
	uint8_t sig[2048];
	size_t sig_len;
};

static void load_farm(struct farm *f)
{
	size_t len;
	f->text = slurp(NARINFO, &len);
	char *line = strstr(f->text, "\nSignature: ");
	assert_non_null(line);
	f->signed_len = (size_t)(line + 1 - f->text);
	char *b64 = strchr(line, ';');
	assert_non_null(b64);
	b64 = strchr(b64 + 1, ';');
	assert_non_null(b64);
	b64++;
	size_t b64len = strcspn(b64, "\n");
	assert_int_equal(cairn_base64_decode(b64, b64len, f->sig, sizeof(f->sig), &f->sig_len),
			 0);
}

static void test_farm_narinfo(void **state)
{
	(void)state;
	struct farm f;
	struct cairn_guix_pubkey keys[2];
	struct cairn_error err;
	size_t signer = 99;
	load_farm(&f);
	load_pub("guix/bordeaux.guix.gnu.org.pub", &keys[0]);
	load_pub("guix/ci.guix.gnu.org.pub", &keys[1]);

	/* The README's hash of the signed part. */
	uint8_t h[32];
	char hex[65] = { 0 };
	cairn_sha256(f.text, f.signed_len, h);
	cairn_base16_encode(h, 32, hex);
	assert_string_equal(hex, "a4cf5215f79a8e1faa6228d0b94b3216bff5f056d136d5a351f3b6963c753432");

	const char *sig = (const char *)f.sig;
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, &keys[1], 1,
					   &signer, NULL),
			 0);
	assert_int_equal(signer, 0);
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, keys, 2, &signer,
					   NULL),
			 0);
	assert_int_equal(signer, 1);

	cairn_error_init(&err);
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, &keys[0], 1,
					   NULL, &err),
			 CAIRN_EUNTRUSTED);
	assert_non_null(strstr(err.msg, "not trusted"));
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, NULL, 0, NULL,
					   NULL),
			 CAIRN_EUNTRUSTED);

	/* One byte of the signed text changed, or the Signature line included. */
	f.text[30] ^= 1;
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, &keys[1], 1,
					   NULL, NULL),
			 CAIRN_EHASH);
	f.text[30] ^= 1;
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len + 5, sig, f.sig_len, &keys[1], 1,
					   NULL, NULL),
			 CAIRN_EHASH);

	/* Guix's signature text is libgcrypt's advanced printing, byte for byte. */
	gcry_sexp_t s;
	char again[2048];
	assert_int_equal(gcry_sexp_sscan(&s, NULL, sig, f.sig_len), 0);
	size_t n = gcry_sexp_sprint(s, GCRYSEXP_FMT_ADVANCED, again, sizeof(again));
	gcry_sexp_release(s);
	assert_int_equal(n, f.sig_len);
	assert_memory_equal(again, sig, n);
	free(f.text);
}

static void test_pub_files_roundtrip(void **state)
{
	(void)state;
	const char *files[] = { "guix/ci.guix.gnu.org.pub", "guix/bordeaux.guix.gnu.org.pub" };
	for (size_t i = 0; i < 2; i++) {
		size_t len;
		char *t = slurp(files[i], &len);
		struct cairn_guix_pubkey pk, pk2;
		assert_int_equal(cairn_guix_pubkey_parse(t, len, &pk, NULL), 0);
		struct cairn_buf b = CAIRN_BUF_INIT(4096);
		assert_int_equal(cairn_guix_pubkey_format(&pk, &b), 0);
		/* The file is exactly what we write (Guix's layout). */
		assert_int_equal(b.len, len);
		assert_memory_equal(b.data, t, len);
		assert_int_equal(cairn_guix_pubkey_parse(b.data, b.len, &pk2, NULL), 0);
		assert_memory_equal(pk.q, pk2.q, 32);
		cairn_buf_release(&b);
		free(t);
	}
}

/* Independent check: hand the pieces of our signature text to libgcrypt. */
static void gcry_check(const char *sig, size_t len, int expect_ok)
{
	gcry_sexp_t s, data, sv, pk;
	assert_int_equal(gcry_sexp_sscan(&s, NULL, sig, len), 0);
	data = gcry_sexp_find_token(s, "data", 0);
	sv = gcry_sexp_find_token(s, "sig-val", 0);
	pk = gcry_sexp_find_token(s, "public-key", 0);
	assert_non_null(data);
	assert_non_null(sv);
	assert_non_null(pk);
	gcry_error_t ge = gcry_pk_verify(sv, data, pk);
	if (expect_ok)
		assert_int_equal(ge, 0);
	else
		assert_int_not_equal(ge, 0);
	gcry_sexp_release(data);
	gcry_sexp_release(sv);
	gcry_sexp_release(pk);
	gcry_sexp_release(s);
}

static void test_sign_verify(void **state)
{
	(void)state;
	struct cairn_guix_seckey sk, other;
	struct cairn_guix_pubkey pk, opk;
	struct cairn_error err;
	const char msg[] = "StorePath: /gnu/store/aaaa-hello\nNarHash: sha256:x\n";
	cairn_error_init(&err);
	assert_int_equal(cairn_guix_key_generate(&sk, &err), 0);
	assert_int_equal(cairn_guix_key_generate(&other, NULL), 0);
	assert_memory_not_equal(sk.q, other.q, 32);
	cairn_guix_seckey_public(&sk, &pk);
	cairn_guix_seckey_public(&other, &opk);

	struct cairn_buf a = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	assert_int_equal(cairn_guix_sign(&sk, msg, strlen(msg), &a, &err), 0);
	const char *head = "(signature \n (data \n  (flags rfc6979)\n  (hash sha256 #";
	assert_int_equal(strncmp(a.data, head, strlen(head)), 0);
	/* RFC 6979: the same data and key give the same signature. */
	assert_int_equal(cairn_guix_sign(&sk, msg, strlen(msg), &b, NULL), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);

	size_t signer = 7;
	struct cairn_guix_pubkey both[2] = { opk, pk };
	assert_int_equal(cairn_guix_verify(msg, strlen(msg), a.data, a.len, both, 2, &signer,
					   &err),
			 0);
	assert_int_equal(signer, 1);
	gcry_check(a.data, a.len, 1);

	/* Other data. */
	assert_int_equal(cairn_guix_verify(msg, strlen(msg) - 1, a.data, a.len, &pk, 1, NULL,
					   NULL),
			 CAIRN_EHASH);
	/* Foreign key. */
	assert_int_equal(cairn_guix_verify(msg, strlen(msg), a.data, a.len, &opk, 1, NULL, NULL),
			 CAIRN_EUNTRUSTED);

	/* Tampered r, then s: a hex digit of each value changed. */
	const char *tags[] = { "(r #", "(s #" };
	for (size_t t = 0; t < 2; t++) {
		char *copy = strdup(a.data);
		char *p = strstr(copy, tags[t]);
		assert_non_null(p);
		p += 10;
		*p = *p == '7' ? '8' : '7';
		cairn_error_init(&err);
		assert_int_equal(cairn_guix_verify(msg, strlen(msg), copy, a.len, &pk, 1, NULL,
						   &err),
				 CAIRN_ESIG);
		gcry_check(copy, a.len, 0);
		free(copy);
	}

	/* The embedded key swapped for a trusted one: hash fine, ECDSA fails. */
	char qa[65] = { 0 }, qo[65] = { 0 };
	cairn_base16_encode(pk.q, 32, qa);
	cairn_base16_encode(opk.q, 32, qo);
	for (int i = 0; i < 64; i++) {
		qa[i] = (char)(qa[i] >= 'a' ? qa[i] - 32 : qa[i]);
		qo[i] = (char)(qo[i] >= 'a' ? qo[i] - 32 : qo[i]);
	}
	char *swapped = strdup(a.data);
	char *at = strstr(swapped, qa);
	assert_non_null(at);
	memcpy(at, qo, 64);
	assert_int_equal(cairn_guix_verify(msg, strlen(msg), swapped, a.len, &opk, 1, NULL, NULL),
			 CAIRN_ESIG);
	free(swapped);

	/* Truncated, garbage, empty, and a bad base64 payload. */
	for (size_t cut = 1; cut < a.len; cut += 37) {
		int rc = cairn_guix_verify(msg, strlen(msg), a.data, cut, &pk, 1, NULL, NULL);
		assert_int_equal(rc, CAIRN_ESIGCORRUPT);
	}
	assert_int_equal(cairn_guix_verify(msg, 3, "hello", 5, &pk, 1, NULL, NULL),
			 CAIRN_ESIGCORRUPT);
	assert_int_equal(cairn_guix_verify(msg, 3, "", 0, &pk, 1, NULL, NULL), CAIRN_ESIGCORRUPT);
	uint8_t junk[64];
	size_t jlen;
	assert_int_not_equal(cairn_base64_decode("KHNpZ25hdHVy!", 13, junk, sizeof(junk), &jlen),
			     0);
	assert_int_equal(cairn_base64_decode("KHNpZ25hdHVyZQ==", 16, junk, sizeof(junk), &jlen), 0);
	assert_int_equal(cairn_guix_verify(msg, 3, (char *)junk, jlen, &pk, 1, NULL, NULL),
			 CAIRN_ESIGCORRUPT);

	cairn_buf_release(&a);
	cairn_buf_release(&b);
	cairn_guix_seckey_wipe(&sk);
	cairn_guix_seckey_wipe(&other);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(sk.d[i], 0);
}

/* Signatures written by hand around the farm's values, to reach each outcome. */
static void test_verify_shapes(void **state)
{
	(void)state;
	struct farm f;
	struct cairn_guix_pubkey ci;
	load_farm(&f);
	load_pub("guix/ci.guix.gnu.org.pub", &ci);
	const char *H = "#A4CF5215F79A8E1FAA6228D0B94B3216BFF5F056D136D5A351F3B6963C753432#";
	const char *R = "#01C3CF0B3EC06B0ECF12D1582CB306F930E667543E8D66FBF8CEF8BD02C39854#";
	const char *S = "#0E861A2F2708625AD93089F1EF18750B23B34E092AEFD7E9E6FB29B2C01DE629#";
	const char *Q = "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#";
	static const struct {
		const char *fmt;
		int want;
	} cases[] = {
		/* canonical order, compact layout: fine */
		{ "(signature (data (flags rfc6979) (hash sha256 %s)) (sig-val (ecdsa (r %s) (s "
		  "%s))) (public-key (ecc (curve Ed25519) (q %s))))",
		  0 },
		/* r with an extra leading zero byte, parts in another order */
		{ "(signature (public-key (ecc (curve Ed25519) (q %4$s))) (data (hash sha256 %1$s)) "
		  "(sig-val (ecdsa (s %3$s) (r #00%5$s%2$.0s))))",
		  0 },
		{ "(signature (data (hash sha512 %s)) (sig-val (ecdsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed25519) (q %s))))",
		  CAIRN_EHASH },
		{ "(signature (data (hash sha256 %s)) (sig-val (eddsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed25519) (q %s))))",
		  CAIRN_ESIGCORRUPT },
		{ "(signature (data (hash sha256 %s)) (sig-val (ecdsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed448) (q %s))))",
		  CAIRN_EUNTRUSTED },
		{ "(signature (data (hash sha256 %s)) (sig-val (ecdsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed25519) (flags eddsa) (q %s))))",
		  CAIRN_EUNTRUSTED },
		/* explicit curve parameters are refused, not passed on */
		{ "(signature (data (hash sha256 %s)) (sig-val (ecdsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed25519) (g #01#) (q %s))))",
		  CAIRN_ESIGCORRUPT },
		{ "(signature (data (hash sha256 %1$s)) (sig-val (ecdsa (r %2$s) (s %3$s))))",
		  CAIRN_ESIGCORRUPT },
		{ "(signature (data (hash sha256 %1$s)) (data (hash sha256 %1$s)) (sig-val (ecdsa (r "
		  "%2$s) (s %3$s))) (public-key (ecc (curve Ed25519) (q %4$s))))",
		  CAIRN_ESIGCORRUPT },
		{ "(signature (data (hash sha256 %s)) (sig-val (ecdsa (r %s) (s %s) (t #01#))) "
		  "(public-key (ecc (curve Ed25519) (q %s))))",
		  CAIRN_ESIGCORRUPT },
		{ "(signature (data (hash sha256 %s)) (sig-val (ecdsa (r %s) (s %s))) (public-key "
		  "(ecc (curve Ed25519) (q %s)))) (extra)",
		  CAIRN_ESIGCORRUPT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char sig[1024];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		int n = snprintf(sig, sizeof(sig), cases[i].fmt, H, R, S, Q, R + 1);
#pragma GCC diagnostic pop
		assert_true(n > 0 && (size_t)n < sizeof(sig));
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = cairn_guix_verify(f.text, f.signed_len, sig, (size_t)n, &ci, 1, NULL,
					   &err);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: %d (%s)\n", i, rc, err.msg);
		assert_int_equal(rc, cases[i].want);
		assert_true(rc == 0 || err.msg[0] != '\0');
	}

	/* Over the size bound. */
	char *big = malloc(CAIRN_GUIX_SEXP_MAX + 2);
	memset(big, ' ', CAIRN_GUIX_SEXP_MAX + 1);
	memcpy(big, f.sig, f.sig_len);
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, big, f.sig_len, &ci, 1, NULL, NULL),
			 0);
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, big, CAIRN_GUIX_SEXP_MAX + 1, &ci,
					   1, NULL, NULL),
			 CAIRN_ESIGCORRUPT);
	free(big);
	free(f.text);
}

static void test_seckey_files(void **state)
{
	(void)state;
	struct cairn_guix_seckey sk, sk2;
	struct cairn_error err;
	assert_int_equal(cairn_guix_key_generate(&sk, NULL), 0);
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	assert_int_equal(cairn_guix_seckey_format(&sk, &b), 0);
	const char *head = "(private-key \n (ecc \n  (curve Ed25519)\n  (q #";
	assert_int_equal(strncmp(b.data, head, strlen(head)), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_guix_seckey_parse(b.data, b.len, &sk2, &err), 0);
	assert_memory_equal(sk.q, sk2.q, 32);
	assert_memory_equal(sk.d, sk2.d, 32);
	/* A secret key file is not a public key. */
	assert_int_equal(cairn_guix_pubkey_parse(b.data, b.len, &(struct cairn_guix_pubkey){ 0 },
						 NULL),
			 CAIRN_EFORMAT);

	/* The whole key-data pair as gcry_pk_genkey returns it is accepted too. */
	gcry_sexp_t params, pair;
	assert_int_equal(gcry_sexp_new(&params, "(genkey (ecdsa (curve Ed25519) (flags rfc6979)))",
				       0, 1),
			 0);
	assert_int_equal(gcry_pk_genkey(&pair, params), 0);
	char text[2048];
	size_t n = gcry_sexp_sprint(pair, GCRYSEXP_FMT_ADVANCED, text, sizeof(text));
	assert_true(n > 0);
	assert_int_equal(cairn_guix_seckey_parse(text, n, &sk2, NULL), 0);
	gcry_sexp_release(pair);
	gcry_sexp_release(params);

	/* A key file signs what its public half verifies. */
	struct cairn_guix_pubkey pk;
	cairn_guix_seckey_public(&sk2, &pk);
	struct cairn_buf sig = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	assert_int_equal(cairn_guix_sign(&sk2, "x", 1, &sig, NULL), 0);
	assert_int_equal(cairn_guix_verify("x", 1, sig.data, sig.len, &pk, 1, NULL, NULL), 0);
	cairn_buf_release(&sig);

	/* q of one key with d of another. */
	struct cairn_guix_seckey mixed = sk;
	memcpy(mixed.q, pk.q, 32);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_guix_seckey_format(&mixed, &b), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_guix_seckey_parse(b.data, b.len, &sk2, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "does not belong"));

	cairn_buf_release(&b);
	cairn_guix_seckey_wipe(&sk);
	cairn_guix_seckey_wipe(&mixed);
}

static void test_pubkey_rejects(void **state)
{
	(void)state;
	struct cairn_guix_pubkey pk;
	struct cairn_error err;
	static const struct {
		const char *text;
		int want;
	} cases[] = {
		{ "(public-key (rsa (n #00C0FFEE#) (e #010001#)))", CAIRN_EUNSUPPORTED },
		{ "(public-key (ecc (curve \"NIST P-256\") (q #04AABB#)))", CAIRN_EUNSUPPORTED },
		{ "(public-key (ecc (curve Ed25519) (flags eddsa) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))",
		  CAIRN_EUNSUPPORTED },
		/* flags rfc6979 (newer libgcrypt may print it) is fine */
		{ "(public-key (ecc (curve Ed25519) (flags rfc6979) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))",
		  0 },
		{ "(public-key (ecc (curve Ed25519) (q #8D156F#)))", CAIRN_EFORMAT },
		{ "(public-key (ecc (curve Ed25519)))", CAIRN_EFORMAT },
		{ "(public-key (ecc (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))",
		  CAIRN_EFORMAT },
		/* not a point on the curve (y = 2 has no x) */
		{ "(public-key (ecc (curve Ed25519) (q "
		  "#0200000000000000000000000000000000000000000000000000000000000000#)))",
		  CAIRN_EFORMAT },
		{ "(public-key (ecc (curve Ed25519) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#))",
		  CAIRN_EFORMAT },
		{ "(private-key (ecc (curve Ed25519) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))",
		  CAIRN_EFORMAT },
		{ "public-key", CAIRN_EFORMAT },
		{ "(public-key [hint]\"x\")", CAIRN_EFORMAT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cairn_error_init(&err);
		int rc = cairn_guix_pubkey_parse(cases[i].text, strlen(cases[i].text), &pk, &err);
		if (rc != cases[i].want)
			fprintf(stderr, "case %zu: %d (%s)\n", i, rc, err.msg);
		assert_int_equal(rc, cases[i].want);
	}
	char *big = calloc(1, CAIRN_GUIX_SEXP_MAX + 1);
	memset(big, ' ', CAIRN_GUIX_SEXP_MAX + 1);
	assert_int_equal(cairn_guix_pubkey_parse(big, CAIRN_GUIX_SEXP_MAX + 1, &pk, NULL),
			 CAIRN_ELIMIT);
	free(big);
}

/*
 * Valid points of the prime-order group with a small coordinate (found with
 * a few lines of Edwards arithmetic): libgcrypt 1.10 aborts in
 * gcry_pk_verify on them, so they must be refused before it sees them.
 */
static const char *small_y = "1A00000000000000000000000000000000000000000000000000000000000000";
static const char *small_x = "66B61BD5414A4EDA13B6DD9DE54201F5C77038DD69FC49DFE882FDDD277CC4F5";

static void test_libgcrypt_traps(void **state)
{
	(void)state;
	const char *pts[] = { small_y, small_x };
	for (size_t i = 0; i < 2; i++) {
		char text[256];
		struct cairn_guix_pubkey pk;
		struct cairn_error err;
		snprintf(text, sizeof(text), "(public-key (ecc (curve Ed25519) (q #%s#)))", pts[i]);
		cairn_error_init(&err);
		assert_int_equal(cairn_guix_pubkey_parse(text, strlen(text), &pk, &err),
				 CAIRN_EUNSUPPORTED);
		assert_non_null(strstr(err.msg, "small coordinate"));

		/* Handed in directly as trusted: refused, not passed to libgcrypt. */
		struct farm f;
		load_farm(&f);
		assert_int_equal(cairn_base16_decode(pts[i], 64, pk.q, 32), 0);
		char sig[1024];
		char *q = strstr((char *)f.sig, "(q #");
		assert_non_null(q);
		size_t pre = (size_t)(q + 4 - (char *)f.sig);
		memcpy(sig, f.sig, f.sig_len);
		memcpy(sig + pre, pts[i], 64);
		assert_int_equal(cairn_guix_verify(f.text, f.signed_len, sig, f.sig_len, &pk, 1, NULL,
						   NULL),
				 CAIRN_EINVAL);
		free(f.text);
	}

	/* The identity and a non-point. */
	const char *bad[] = { "0100000000000000000000000000000000000000000000000000000000000000",
			      "0200000000000000000000000000000000000000000000000000000000000000" };
	for (size_t i = 0; i < 2; i++) {
		char text[256];
		struct cairn_guix_pubkey pk;
		snprintf(text, sizeof(text), "(public-key (ecc (curve Ed25519) (q #%s#)))", bad[i]);
		assert_int_equal(cairn_guix_pubkey_parse(text, strlen(text), &pk, NULL),
				 CAIRN_EFORMAT);
	}

	/* d = 0 and d = n (libgcrypt asserts on the first; dG is the identity). */
	struct cairn_guix_seckey sk;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	assert_int_equal(cairn_guix_key_generate(&sk, NULL), 0);
	memset(sk.d, 0, 32);
	assert_int_equal(cairn_guix_sign(&sk, "x", 1, &b, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_guix_seckey_format(&sk, &b), 0);
	assert_int_equal(cairn_guix_seckey_parse(b.data, b.len, &sk, NULL), CAIRN_EFORMAT);
	cairn_buf_reset(&b);
	assert_int_equal(cairn_base16_decode("1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED", 64,
					     sk.d, 32),
			 0);
	assert_int_equal(cairn_guix_sign(&sk, "x", 1, &b, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_guix_seckey_format(&sk, &b), 0);
	assert_int_equal(cairn_guix_seckey_parse(b.data, b.len, &sk, NULL), CAIRN_EFORMAT);
	cairn_buf_release(&b);
	cairn_guix_seckey_wipe(&sk);
}

static void test_acl(void **state)
{
	(void)state;
	struct cairn_guix_seckey sk[3];
	struct cairn_guix_pubkey pk[3], *keys = NULL;
	size_t n = 0;
	struct cairn_error err;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(cairn_guix_key_generate(&sk[i], NULL), 0);
		cairn_guix_seckey_public(&sk[i], &pk[i]);
	}
	struct cairn_buf acl = CAIRN_BUF_INIT(CAIRN_GUIX_ACL_MAX);
	assert_int_equal(cairn_guix_acl_format(pk, 3, &acl), 0);
	const char *head = "(acl \n (entry \n  (public-key \n";
	assert_int_equal(strncmp(acl.data, head, strlen(head)), 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_guix_acl_parse(acl.data, acl.len, &keys, &n, &err), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_memory_equal(keys[i].q, pk[i].q, 32);
		struct cairn_buf sig = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
		size_t signer = 99;
		assert_int_equal(cairn_guix_sign(&sk[i], "data", 4, &sig, NULL), 0);
		assert_int_equal(cairn_guix_verify("data", 4, sig.data, sig.len, keys, n, &signer,
						   NULL),
				 0);
		assert_int_equal(signer, i);
		cairn_buf_release(&sig);
		cairn_guix_seckey_wipe(&sk[i]);
	}
	free(keys);
	cairn_buf_release(&acl);

	/* An acl as a user writes it, with the two farm keys, one line each. */
	const char *two =
		"(acl\n"
		" (entry (public-key (ecc (curve Ed25519) (q "
		"#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))\n"
		"        (tag (guix import)))\n"
		" (entry (public-key (ecc (curve Ed25519) (q "
		"#7D602902D3A2DBB83F8A0FB98602A754C5493B0B778C8D1DD4E0F41DE14DE34F#)))\n"
		"        (tag (guix import))))\n";
	assert_int_equal(cairn_guix_acl_parse(two, strlen(two), &keys, &n, NULL), 0);
	assert_int_equal(n, 2);
	struct farm f;
	load_farm(&f);
	size_t signer = 99;
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, (char *)f.sig, f.sig_len, keys, n,
					   &signer, NULL),
			 0);
	assert_int_equal(signer, 0);
	assert_int_equal(cairn_guix_verify(f.text, f.signed_len, (char *)f.sig, f.sig_len, keys + 1,
					   1, NULL, NULL),
			 CAIRN_EUNTRUSTED);
	free(f.text);
	free(keys);

	/* Empty acl. */
	keys = NULL;
	assert_int_equal(cairn_guix_acl_parse("(acl)", 5, &keys, &n, NULL), 0);
	assert_int_equal(n, 0);
	free(keys);

	static const struct {
		const char *text;
		int want;
	} bad[] = {
		{ "(acl (entry (public-key (ecc (curve Ed25519) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#))) (tag (guix "
		  "export))))",
		  CAIRN_EFORMAT },
		{ "(acl (entry (public-key (ecc (curve Ed25519) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#)))))",
		  CAIRN_EFORMAT },
		{ "(acl (entry (public-key (rsa (n #00C0FFEE#) (e #010001#))) (tag (guix import))))",
		  CAIRN_EUNSUPPORTED },
		{ "(acl (public-key (ecc (curve Ed25519) (q "
		  "#8D156F295D24B0D9A86FA5741A840FF2D24F60F7B6C4134814AD55625971B394#))))",
		  CAIRN_EFORMAT },
		{ "(lca)", CAIRN_EFORMAT },
		{ "(acl", CAIRN_EFORMAT },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		keys = NULL;
		cairn_error_init(&err);
		int rc = cairn_guix_acl_parse(bad[i].text, strlen(bad[i].text), &keys, &n, &err);
		if (rc != bad[i].want)
			fprintf(stderr, "case %zu: %d (%s)\n", i, rc, err.msg);
		assert_int_equal(rc, bad[i].want);
		assert_null(keys);
	}

	/* More entries than allowed: refused before any key is read. */
	struct cairn_buf many = CAIRN_BUF_INIT(CAIRN_GUIX_ACL_MAX);
	assert_int_equal(cairn_buf_puts(&many, "(acl"), 0);
	for (int i = 0; i <= CAIRN_GUIX_ACL_MAX_KEYS; i++)
		assert_int_equal(cairn_buf_puts(&many, " (e)"), 0);
	assert_int_equal(cairn_buf_puts(&many, ")"), 0);
	assert_int_equal(cairn_guix_acl_parse(many.data, many.len, &keys, &n, NULL), CAIRN_ELIMIT);
	cairn_buf_release(&many);
}

static void test_sexp_bounds(void **state)
{
	(void)state;
	struct cairn_sexp sx;
	struct cairn_error err;
	char deep[200];
	size_t d = CAIRN_SEXP_MAX_DEPTH + 1, n = 0;
	for (size_t i = 0; i < d; i++)
		deep[n++] = '(';
	deep[n++] = 'a';
	for (size_t i = 0; i < d; i++)
		deep[n++] = ')';
	cairn_error_init(&err);
	assert_int_equal(cairn_sexp_parse(deep, n, 4096, CAIRN_EFORMAT, "t", &sx, &err),
			 CAIRN_ELIMIT);
	/* One level less is fine. */
	assert_int_equal(cairn_sexp_parse(deep + 1, n - 2, 4096, CAIRN_EFORMAT, "t", &sx, NULL), 0);
	assert_int_equal(sx.n_nodes, CAIRN_SEXP_MAX_DEPTH + 1);
	cairn_sexp_release(&sx);

	assert_int_equal(cairn_sexp_parse("(a b) (c d)", 11, 4096, CAIRN_EFORMAT, "t", &sx, NULL),
			 CAIRN_EFORMAT);
	assert_int_equal(cairn_sexp_parse("(a b", 4, 4096, CAIRN_EFORMAT, "t", &sx, NULL),
			 CAIRN_EFORMAT);
	assert_int_equal(cairn_sexp_parse("(a b)", 5, 4, CAIRN_EFORMAT, "t", &sx, NULL),
			 CAIRN_ELIMIT);

	/* Every textual form libgcrypt knows ends up as the same bytes. */
	const char *t = "(k \"ab\" #6162# |YWI=| 2:ab (l))";
	assert_int_equal(cairn_sexp_parse(t, strlen(t), 4096, CAIRN_EFORMAT, "t", &sx, NULL), 0);
	assert_int_equal(sx.nodes[0].count, 6);
	assert_true(cairn_sexp_list_is(&sx, 0, "k"));
	for (size_t i = 1; i <= 4; i++)
		assert_true(cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, 0, i), "ab"));
	int dup;
	assert_int_equal(cairn_sexp_find(&sx, 0, "l", &dup), cairn_sexp_nth(&sx, 0, 5));
	assert_int_equal(dup, 0);
	assert_int_equal(cairn_sexp_find(&sx, 0, "m", &dup), CAIRN_SEXP_NONE);
	cairn_sexp_release(&sx);

	/* The canonical indexer on its own refuses what libgcrypt never prints. */
	const char *canon_bad[] = { "(1:a", "(9:a)", "(1:a))", "1:a", "(1a)", "([1:h]1:a)", "()()",
				    "" };
	for (size_t i = 0; i < sizeof(canon_bad) / sizeof(canon_bad[0]); i++) {
		size_t len = strlen(canon_bad[i]);
		uint8_t *c = malloc(len + 1);
		memcpy(c, canon_bad[i], len + 1);
		assert_int_equal(cairn_sexp_index(c, len, CAIRN_EFORMAT, "t", &sx, NULL),
				 CAIRN_EFORMAT);
	}
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_farm_narinfo),     cmocka_unit_test(test_pub_files_roundtrip),
		cmocka_unit_test(test_sign_verify),      cmocka_unit_test(test_verify_shapes),
		cmocka_unit_test(test_seckey_files),     cmocka_unit_test(test_pubkey_rejects),
		cmocka_unit_test(test_acl),              cmocka_unit_test(test_sexp_bounds),
		cmocka_unit_test(test_libgcrypt_traps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
