/*
 * fuzz-nixkey.c - Nix key files, signatures and key-ring files on untrusted
 * bytes.  A public key that parses must format back to its trimmed text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/keys.h"
#include "cairn/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	if (!inited) {
		if (cairn_init() != 0)
			abort();
		inited = 1;
	}
	const char *text = (const char *)data;
	struct cairn_nix_pubkey pk;
	struct cairn_nix_seckey sk;
	if (cairn_nix_pubkey_parse(text, size, &pk, NULL) == 0) {
		struct cairn_buf b = CAIRN_BUF_INIT(8192);
		if (cairn_nix_pubkey_format(&pk, &b) != 0 || !memchr(text, ':', size))
			abort();
		cairn_buf_release(&b);
		/* A signature-shaped input must be decodable or rejected, never crash. */
		cairn_nix_verify(&pk, data, size, text, size, NULL);
	}
	if (cairn_nix_seckey_parse(text, size, &sk, NULL) == 0) {
		struct cairn_nix_pubkey p2;
		cairn_nix_seckey_public(&sk, &p2);
		cairn_nix_seckey_wipe(&sk);
	}
	size_t nlen;
	uint8_t sig[CAIRN_NIX_SIG_LEN];
	cairn_nix_sig_decode(text, size, &nlen, sig, NULL);
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	int n = cairn_keyring_load(&kr, text, size, NULL);
	if (n > 0 && (size_t)n != kr.n_nix + kr.n_guix)
		abort();
	cairn_keyring_release(&kr);
	struct cairn_seckey any;
	if (cairn_seckey_parse(text, size, &any, NULL) == 0)
		cairn_seckey_wipe(&any);
	return 0;
}
