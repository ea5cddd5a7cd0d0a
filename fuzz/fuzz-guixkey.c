/*
 * fuzz-guixkey.c - Guix key files: signing-key.pub, signing-key.sec and the
 * acl.  Whatever parses must format and parse back to the same key, and a
 * secret key that parses must sign something its public half verifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/cairn.h"
#include "cairn/guix.h"
#include "../lib/guix-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	if (!ready) {
		if (cairn_init() != 0)
			abort();
		ready = 1;
	}
	const char *text = (const char *)data;
	struct cairn_guix_pubkey pk, pk2;
	struct cairn_guix_seckey sk, sk2;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_GUIX_ACL_MAX);

	if (cairn_guix_pubkey_parse(text, size, &pk, NULL) == 0) {
		if (cairn_guix_pubkey_format(&pk, &b) != 0 ||
		    cairn_guix_pubkey_parse(b.data, b.len, &pk2, NULL) != 0 ||
		    memcmp(pk.q, pk2.q, 32) != 0)
			abort();
		cairn_buf_reset(&b);
	}

	if (cairn_guix_seckey_parse(text, size, &sk, NULL) == 0) {
		if (cairn_guix_seckey_format(&sk, &b) != 0 ||
		    cairn_guix_seckey_parse(b.data, b.len, &sk2, NULL) != 0 ||
		    memcmp(&sk, &sk2, sizeof(sk)) != 0)
			abort();
		cairn_buf_reset(&b);
		cairn_guix_seckey_public(&sk, &pk);
		if (cairn_guix_sign(&sk, data, size, &b, NULL) != 0 ||
		    cairn_guix_verify(data, size, b.data, b.len, &pk, 1, NULL, NULL) != 0)
			abort();
		cairn_buf_reset(&b);
		cairn_guix_seckey_wipe(&sk);
		cairn_guix_seckey_wipe(&sk2);
	}

	struct cairn_guix_pubkey *keys = NULL, *keys2 = NULL;
	size_t n = 0, n2 = 0;
	if (cairn_guix_acl_parse(text, size, &keys, &n, NULL) == 0) {
		if (n > CAIRN_GUIX_ACL_MAX_KEYS || cairn_guix_acl_format(keys, n, &b) != 0 ||
		    cairn_guix_acl_parse(b.data, b.len, &keys2, &n2, NULL) != 0 || n2 != n ||
		    (n && memcmp(keys, keys2, n * sizeof(*keys)) != 0))
			abort();
		free(keys);
		free(keys2);
	}
	cairn_buf_release(&b);
	return 0;
}
