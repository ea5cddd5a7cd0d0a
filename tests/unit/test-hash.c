#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"

/* From tests/vectors/nix/trees/expected.tsv (made by the real Nix). */
static const struct {
	const char *nix32, *hex;
} vec[] = {
	{ "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw",
	  "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13" },
	{ "005si0ivdwvhhm36ac245mwky4ajb4j3gsav4by5dk9vkr3vlqd3",
	  "a361ba479e3bcd56fc225be937245952113f792d443065468570f3b62388ba00" },
	{ "1qx3jis00mzwxwwmn83xbp288xysrynmhs87f69vyfnsbknz5700",
	  "009cf2ed5cda3abf9371076958adcfda7784c45d7d205b39effc57007494a3e3" },
};

static void test_nix32_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		uint8_t bin[32], bin2[32];
		char out[53] = { 0 };
		assert_int_equal(cairn_base16_decode(vec[i].hex, 64, bin, 32), 0);
		cairn_nix32_encode(bin, 32, out);
		assert_string_equal(out, vec[i].nix32);
		assert_int_equal(cairn_nix32_decode(vec[i].nix32, 52, bin2, 32), 0);
		assert_memory_equal(bin, bin2, 32);
	}
}

static void test_nix32_rejects(void **state)
{
	(void)state;
	uint8_t bin[32];
	/* 'e', 'o', 'u', 't' are not in Nix's alphabet. */
	assert_int_not_equal(cairn_nix32_decode("e4zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw", 52, bin, 32), 0);
	/* wrong length */
	assert_int_not_equal(cairn_nix32_decode("04zwf782", 8, bin, 32), 0);
	/* first character carries bits beyond 256: only 0 and 1 fit */
	assert_int_not_equal(cairn_nix32_decode("24zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw", 52, bin, 32), 0);
	/* 20-byte store path hash: 32 characters */
	assert_int_equal(cairn_nix32_len(20), 32);
}

static void test_sha256_streaming(void **state)
{
	(void)state;
	/* SHA-256("abc") */
	static const char abc_hex[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	uint8_t one[32], two[32];
	char hex[65] = { 0 };
	cairn_sha256("abc", 3, one);
	cairn_base16_encode(one, 32, hex);
	assert_string_equal(hex, abc_hex);
	struct cairn_sha256 ctx;
	assert_int_equal(cairn_sha256_init(&ctx), 0);
	cairn_sha256_update(&ctx, "a", 1);
	cairn_sha256_update(&ctx, "", 0);
	cairn_sha256_update(&ctx, "bc", 2);
	cairn_sha256_final(&ctx, two);
	assert_memory_equal(one, two, 32);
}

static void test_parse_forms(void **state)
{
	(void)state;
	/* closure.json gives narHash in SRI form, the narinfo in nix32. */
	const char *sri = "sha256-qeg/73O2tjfKtVgWUDlIZHz/cFUx0FufkJxVXj4jzdw=";
	const char *n32 = "sha256:1p6d4cz5wmcwj2gmpl1iamqgyz3490wm05jqnp53gdmnfgpkzs59";
	struct cairn_hash a, b, c, d;
	char s[CAIRN_HASH_STR_MAX];
	assert_int_equal(cairn_hash_parse(sri, strlen(sri), 0, &a, NULL), 0);
	assert_int_equal(cairn_hash_parse(n32, strlen(n32), 0, &b, NULL), 0);
	assert_true(cairn_hash_equal(&a, &b));
	assert_int_equal(cairn_hash_format(&a, CAIRN_HASH_NIX32, s, sizeof(s)), (int)strlen(n32));
	assert_string_equal(s, n32);
	assert_int_equal(cairn_hash_format(&b, CAIRN_HASH_SRI, s, sizeof(s)), (int)strlen(sri));
	assert_string_equal(s, sri);
	cairn_hash_format(&a, CAIRN_HASH_BASE16, s, sizeof(s));
	assert_int_equal(cairn_hash_parse(s, strlen(s), 0, &c, NULL), 0);
	assert_true(cairn_hash_equal(&a, &c));
	cairn_hash_format(&a, CAIRN_HASH_BASE64, s, sizeof(s));
	assert_string_equal(s, "sha256:qeg/73O2tjfKtVgWUDlIZHz/cFUx0FufkJxVXj4jzdw=");
	assert_int_equal(cairn_hash_parse(s, strlen(s), 0, &d, NULL), 0);
	assert_true(cairn_hash_equal(&a, &d));
	/* no prefix: only with a default algorithm */
	assert_int_not_equal(cairn_hash_parse(n32 + 7, 52, 0, &c, NULL), 0);
	assert_int_equal(cairn_hash_parse(n32 + 7, 52, CAIRN_HASH_SHA256, &c, NULL), 0);
	assert_true(cairn_hash_equal(&a, &c));
}

static void test_parse_errors(void **state)
{
	(void)state;
	struct cairn_hash h;
	struct cairn_error err;
	const char *bad[] = {
		"md4:00", "sha256:", "sha256:zz", "sha256-AAAA",
		"sha256:1p6d4cz5wmcwj2gmpl1iamqgyz3490wm05jqnp53gdmnfgpkzs5", /* 51 chars */
		"sha256:1p6d4cz5wmcwj2gmpl1iamqgyz3490wm05jqnp53gdmnfgpkzs5e",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cairn_error_init(&err);
		h.algo = 0;
		assert_int_equal(cairn_hash_parse(bad[i], strlen(bad[i]), 0, &h, &err), CAIRN_EFORMAT);
		assert_int_equal(err.code, CAIRN_EFORMAT);
		assert_non_null(strstr(err.msg, "hash '"));
		assert_int_equal(h.algo, 0); /* untouched on failure */
	}
}

static void test_other_algos(void **state)
{
	(void)state;
	struct cairn_hash h;
	char s[CAIRN_HASH_STR_MAX];
	/* sha1 of "" in base16 and the nix32 Nix prints for it */
	const char *hex = "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709";
	assert_int_equal(cairn_hash_parse(hex, strlen(hex), 0, &h, NULL), 0);
	assert_int_equal(h.len, 20);
	cairn_hash_format(&h, CAIRN_HASH_NIX32, s, sizeof(s));
	assert_int_equal(strlen(s), 5 + 32);
	struct cairn_hash h2;
	assert_int_equal(cairn_hash_parse(s, strlen(s), 0, &h2, NULL), 0);
	assert_true(cairn_hash_equal(&h, &h2));
	assert_int_equal(cairn_hash_format(&h, CAIRN_HASH_NIX32, s, 10), CAIRN_ELIMIT);
}

int main(void)
{
	cairn_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nix32_vectors),
		cmocka_unit_test(test_nix32_rejects),
		cmocka_unit_test(test_sha256_streaming),
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_other_algos),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
