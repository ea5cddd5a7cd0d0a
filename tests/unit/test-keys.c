/* The key ring: signers are counted by public key, whatever their names. */
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

static const char top[] = "nix/cache-xz/x6b6ah9iya8w14wv5fzzwj36lf2yyghw.narinfo";
static const char pub[] = "XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=";

static struct cairn_narinfo *parse_vec(const char *rel)
{
	char *t = read_vec(rel, NULL);
	assert_non_null(t);
	struct cairn_narinfo *ni = NULL;
	assert_int_equal(cairn_narinfo_parse(t, strlen(t), &ni, NULL), 0);
	free(t);
	return ni;
}

/*
 * One key trusted as farm-a and farm-b; the narinfo carries its one
 * signature twice, relabelled.  Ed25519 does not sign the key name, so
 * both Sig lines verify — but they are one signer.
 */
static void test_one_key_two_names(void **state)
{
	(void)state;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	char ring[256];
	snprintf(ring, sizeof(ring), "farm-a:%s farm-b:%s", pub, pub);
	assert_int_equal(cairn_keyring_load(&kr, ring, strlen(ring), NULL), 2);

	struct cairn_narinfo *ni = parse_vec(top);
	assert_int_equal(ni->n_sigs, 1);
	const char *raw = strchr(ni->sigs[0], ':') + 1;
	char a[256], b[256];
	snprintf(a, sizeof(a), "farm-a:%s", raw);
	snprintf(b, sizeof(b), "farm-b:%s", raw);
	cairn_narinfo_clear_sigs(ni);
	assert_int_equal(cairn_narinfo_add_sig(ni, a, NULL), 0);
	assert_int_equal(cairn_narinfo_add_sig(ni, b, NULL), 0);

	struct cairn_verify_result res;
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	assert_int_equal(res.n_signers, 1);

	struct cairn_buf msg = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_keyring_aliases(&kr, &msg), 1);
	assert_non_null(strstr(msg.data, "'farm-a' 'farm-b'"));
	assert_non_null(strstr(msg.data, "one signer"));
	cairn_buf_release(&msg);
	cairn_narinfo_free(ni);
	cairn_keyring_release(&kr);
}

/* Two distinct keys stay two signers, and the ring has no aliases. */
static void test_two_keys_two_signers(void **state)
{
	(void)state;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_nix_seckey sk2;
	struct cairn_nix_pubkey pk2;
	assert_int_equal(cairn_nix_key_generate("farm-b", &sk2, NULL), 0);
	cairn_nix_seckey_public(&sk2, &pk2);
	char ring[256];
	snprintf(ring, sizeof(ring), "cache.example.org-1:%s", pub);
	assert_int_equal(cairn_keyring_load(&kr, ring, strlen(ring), NULL), 1);
	assert_int_equal(cairn_keyring_add_nix(&kr, &pk2, NULL), 0);

	struct cairn_narinfo *ni = parse_vec(top);
	struct cairn_seckey sk = {.kind = CAIRN_KEY_NIX};
	sk.u.nix = sk2;
	assert_int_equal(cairn_narinfo_sign(ni, &sk, NULL, NULL), 0);
	struct cairn_verify_result res;
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	assert_int_equal(res.n_signers, 2);
	assert_false(cairn_signer_same(&res.signers[0], &res.signers[1]));
	assert_int_equal(res.nix_sigs_ok, 3); /* both Sig lines verified */

	/* which Sig lines verified: not an untrusted one, not a forged one */
	struct cairn_nix_seckey sk3;
	assert_int_equal(cairn_nix_key_generate("stranger", &sk3, NULL), 0);
	struct cairn_seckey other = {.kind = CAIRN_KEY_NIX};
	other.u.nix = sk3;
	assert_int_equal(cairn_narinfo_sign(ni, &other, NULL, NULL), 0);
	char forged[256];
	snprintf(forged, sizeof(forged), "farm-b:%s", strchr(ni->sigs[2], ':') + 1);
	assert_int_equal(cairn_narinfo_add_sig(ni, forged, NULL), 0);
	assert_int_equal(ni->n_sigs, 4);
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	assert_int_equal(res.nix_sigs_ok, 3);
	cairn_seckey_wipe(&other);
	cairn_nix_seckey_wipe(&sk3);

	struct cairn_buf msg = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_keyring_aliases(&kr, &msg), 0);
	cairn_buf_release(&msg);
	cairn_seckey_wipe(&sk);
	cairn_nix_seckey_wipe(&sk2);
	cairn_narinfo_free(ni);
	cairn_keyring_release(&kr);
}

/* The same point as a Nix and a Guix key is one key too. */
static void test_nix_and_guix_same_point(void **state)
{
	(void)state;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_nix_pubkey pk;
	char line[128];
	snprintf(line, sizeof(line), "farm-a:%s", pub);
	assert_int_equal(cairn_nix_pubkey_parse(line, strlen(line), &pk, NULL), 0);
	struct cairn_guix_pubkey gk;
	memcpy(gk.q, pk.key, sizeof(gk.q));
	assert_int_equal(cairn_keyring_add_nix(&kr, &pk, NULL), 0);
	assert_int_equal(cairn_keyring_add_guix(&kr, &gk, NULL), 0);
	struct cairn_buf msg = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_keyring_aliases(&kr, &msg), 1);
	assert_non_null(strstr(msg.data, "'farm-a' 'guix:"));
	cairn_buf_release(&msg);
	cairn_keyring_release(&kr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_key_two_names),
	    cmocka_unit_test(test_two_keys_two_signers),
	    cmocka_unit_test(test_nix_and_guix_same_point),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
