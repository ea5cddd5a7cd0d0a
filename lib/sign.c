/*
 * sign.c - Nix Ed25519 keys, signatures and the narinfo fingerprint.
 * Formats in include/cairn/sign.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cairn/hash.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "cairn/banned.h"

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char **s, size_t *len)
{
	while (*len && is_space(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_space((*s)[*len - 1]))
		(*len)--;
}

int cairn_nix_key_name_check(const char *name, size_t len, struct cairn_error *err)
{
	if (len == 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "key: empty key name");
	if (len > CAIRN_NIX_KEY_NAME_MAX)
		return cairn_error_set(err, CAIRN_EFORMAT, "key: name longer than %d bytes",
				       CAIRN_NIX_KEY_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 0x20 || c == 0x7f || c == ':')
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "key: name has a bad character (0x%02x)", c);
	}
	return 0;
}

/*
 * Split "name:base64" and decode the key into out (exactly want bytes).
 * The scratch buffer is wiped because it may hold a secret.
 */
static int key_parse(const char *text, size_t len, char *name, uint8_t *out, size_t want,
		     const char *what, struct cairn_error *err)
{
	uint8_t tmp[128];
	size_t got = 0;
	int rc = 0;

	if (len > CAIRN_NIX_KEYFILE_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "key: %s key file larger than %d bytes",
				       what, CAIRN_NIX_KEYFILE_MAX);
	trim(&text, &len);
	const char *colon = memchr(text, ':', len);
	if (!colon)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "key: %s key is not 'name:base64' (no ':')", what);
	size_t nlen = (size_t)(colon - text);
	if ((rc = cairn_nix_key_name_check(text, nlen, err)))
		return rc;
	const char *b64 = colon + 1;
	size_t blen = len - nlen - 1;
	if (blen > cairn_base64_len(sizeof(tmp)) ||
	    cairn_base64_decode(b64, blen, tmp, sizeof(tmp), &got) != 0) {
		rc = cairn_error_set(err, CAIRN_EFORMAT, "key: %s key '%.*s' is not valid base64",
				     what, (int)nlen, text);
		goto out;
	}
	if (got != want) {
		rc = cairn_error_set(err, CAIRN_EFORMAT,
				     "key: %s key '%.*s' has %zu bytes, expected %zu%s", what,
				     (int)nlen, text, got, want,
				     got == CAIRN_NIX_SK_LEN   ? " (is this a secret key?)"
				     : got == CAIRN_NIX_PK_LEN ? " (is this a public key?)"
							       : "");
		goto out;
	}
	memcpy(name, text, nlen);
	name[nlen] = '\0';
	memcpy(out, tmp, want);
out:
	sodium_memzero(tmp, sizeof(tmp));
	return rc;
}

int cairn_nix_pubkey_parse(const char *text, size_t len, struct cairn_nix_pubkey *out,
			   struct cairn_error *err)
{
	/* zeroed: the name's bytes after its NUL are copied out with it
	 * (stack bytes in the key otherwise, and two parses of one key that
	 * compare unequal) */
	struct cairn_nix_pubkey pk = {0};
	int rc = key_parse(text, len, pk.name, pk.key, CAIRN_NIX_PK_LEN, "public", err);
	if (!rc)
		*out = pk;
	return rc;
}

int cairn_nix_seckey_parse(const char *text, size_t len, struct cairn_nix_seckey *out,
			   struct cairn_error *err)
{
	struct cairn_nix_seckey sk = {0}; /* as the public key's */
	int rc = key_parse(text, len, sk.name, sk.key, CAIRN_NIX_SK_LEN, "secret", err);
	if (!rc) {
		/* libsodium keeps the public half in the last 32 bytes; check it. */
		uint8_t pk[crypto_sign_PUBLICKEYBYTES], seed[crypto_sign_SEEDBYTES];
		uint8_t sk2[crypto_sign_SECRETKEYBYTES];
		crypto_sign_ed25519_sk_to_seed(seed, sk.key);
		crypto_sign_seed_keypair(pk, sk2, seed);
		if (sodium_memcmp(pk, sk.key + 32, 32) != 0)
			rc = cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "key: secret key '%s' is inconsistent (public half does "
			    "not match)",
			    sk.name);
		else
			*out = sk;
		sodium_memzero(seed, sizeof(seed));
		sodium_memzero(sk2, sizeof(sk2));
	}
	sodium_memzero(&sk, sizeof(sk));
	return rc;
}

int cairn_nix_key_generate(const char *name, struct cairn_nix_seckey *out, struct cairn_error *err)
{
	size_t n = strlen(name);
	int rc = cairn_nix_key_name_check(name, n, err);
	if (rc)
		return rc;
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	if (crypto_sign_keypair(pk, out->key) != 0)
		return cairn_error_set(err, CAIRN_ECRYPTO, "key: cannot generate a key pair");
	memcpy(out->name, name, n + 1);
	return 0;
}

void cairn_nix_seckey_public(const struct cairn_nix_seckey *sk, struct cairn_nix_pubkey *out)
{
	memcpy(out->name, sk->name, sizeof(out->name));
	crypto_sign_ed25519_sk_to_pk(out->key, sk->key);
}

void cairn_nix_seckey_wipe(struct cairn_nix_seckey *sk)
{
	sodium_memzero(sk, sizeof(*sk));
}

static int key_format(const char *name, const uint8_t *key, size_t n, struct cairn_buf *out)
{
	char b64[128];
	cairn_base64_encode(key, n, b64);
	int rc = cairn_buf_printf(out, "%s:%s", name, b64);
	sodium_memzero(b64, sizeof(b64));
	return rc;
}

int cairn_nix_pubkey_format(const struct cairn_nix_pubkey *pk, struct cairn_buf *out)
{
	return key_format(pk->name, pk->key, CAIRN_NIX_PK_LEN, out);
}

int cairn_nix_seckey_format(const struct cairn_nix_seckey *sk, struct cairn_buf *out)
{
	return key_format(sk->name, sk->key, CAIRN_NIX_SK_LEN, out);
}

int cairn_nix_sign(const struct cairn_nix_seckey *sk, const void *data, size_t len,
		   struct cairn_buf *out, struct cairn_error *err)
{
	uint8_t sig[crypto_sign_BYTES];
	char b64[96];
	if (crypto_sign_detached(sig, NULL, data, len, sk->key) != 0)
		return cairn_error_set(err, CAIRN_ECRYPTO, "sign: ed25519 signing failed");
	cairn_base64_encode(sig, sizeof(sig), b64);
	int rc = cairn_buf_printf(out, "%s:%s", sk->name, b64);
	if (rc)
		return cairn_error_set(err, rc, "sign: %s", cairn_strerror(rc));
	return 0;
}

int cairn_nix_sig_decode(const char *sig, size_t len, size_t *name_len,
			 uint8_t out[CAIRN_NIX_SIG_LEN], struct cairn_error *err)
{
	uint8_t tmp[CAIRN_NIX_SIG_LEN + 3];
	size_t got = 0;
	const char *colon = memchr(sig, ':', len);
	if (!colon || colon == sig)
		return cairn_error_set(err, CAIRN_ESIGCORRUPT, "signature is not 'keyname:base64'");
	size_t nlen = (size_t)(colon - sig), blen = len - nlen - 1;
	if (blen != cairn_base64_len(CAIRN_NIX_SIG_LEN) ||
	    cairn_base64_decode(colon + 1, blen, tmp, sizeof(tmp), &got) != 0 ||
	    got != CAIRN_NIX_SIG_LEN)
		return cairn_error_set(err, CAIRN_ESIGCORRUPT,
				       "signature by '%.*s' is not 64 bytes of base64",
				       (int)(nlen > 64 ? 64 : nlen), sig);
	memcpy(out, tmp, CAIRN_NIX_SIG_LEN);
	*name_len = nlen;
	return 0;
}

int cairn_nix_verify(const struct cairn_nix_pubkey *pk, const void *data, size_t len,
		     const char *sig, size_t sig_len, struct cairn_error *err)
{
	uint8_t raw[CAIRN_NIX_SIG_LEN];
	size_t nlen;
	int rc = cairn_nix_sig_decode(sig, sig_len, &nlen, raw, err);
	if (rc)
		return rc;
	if (strlen(pk->name) != nlen || memcmp(pk->name, sig, nlen) != 0)
		return cairn_error_set(err, CAIRN_EUNTRUSTED, "signature by '%.*s' is not by '%s'",
				       (int)(nlen > 64 ? 64 : nlen), sig, pk->name);
	if (crypto_sign_verify_detached(raw, data, len, pk->key) != 0)
		return cairn_error_set(err, CAIRN_ESIG, "signature by '%s' does not verify",
				       pk->name);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cairn_narinfo_fingerprint(const struct cairn_narinfo *ni, struct cairn_buf *out,
			      struct cairn_error *err)
{
	char dir[CAIRN_NARINFO_STORE_DIR_MAX + 1], hash[CAIRN_HASH_STR_MAX];
	const char **refs = NULL;
	int rc = 0;

	if (ni->nar_hash.algo != CAIRN_HASH_SHA256)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "fingerprint: NarHash must be SHA-256 to sign or verify");
	if (ni->nar_size == 0)
		return cairn_error_set(err, CAIRN_EINVAL, "fingerprint: NarSize is 0");
	if (cairn_narinfo_store_dir(ni, dir, sizeof(dir)) < 0 ||
	    cairn_hash_format(&ni->nar_hash, CAIRN_HASH_NIX32, hash, sizeof(hash)) < 0)
		return cairn_error_set(err, CAIRN_EINVAL, "fingerprint: bad narinfo");
	if (ni->n_refs) {
		refs = malloc(ni->n_refs * sizeof(*refs));
		if (!refs)
			return cairn_error_set(err, CAIRN_ENOMEM, "fingerprint: out of memory");
		for (size_t i = 0; i < ni->n_refs; i++)
			refs[i] = ni->refs[i];
		qsort(refs, ni->n_refs, sizeof(*refs), cmp_str);
	}
	rc = cairn_buf_printf(out, "1;%s;%s;%llu;", ni->store_path, hash,
			      (unsigned long long)ni->nar_size);
	bool first = true;
	for (size_t i = 0; !rc && i < ni->n_refs; i++) {
		if (i > 0 && !strcmp(refs[i], refs[i - 1]))
			continue; /* Nix keeps references in a set */
		rc = cairn_buf_printf(out, "%s%s/%s", first ? "" : ",", dir, refs[i]);
		first = false;
	}
	if (rc)
		rc = cairn_error_set(err, rc, "fingerprint: %s", cairn_strerror(rc));
	free(refs);
	return rc;
}
