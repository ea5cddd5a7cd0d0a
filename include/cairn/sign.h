/*
 * sign.h - Nix signing keys and signatures (Ed25519, libsodium).
 *
 * Checked against NixOS/nix src/libstore/crypto.cc (2.8; later
 * signature/local-keys.cc) and path-info.cc (fingerprint).
 *
 * Key files hold one line, "<name>:<base64>":
 *   secret  base64 of 64 bytes (libsodium's seed || public key)
 *   public  base64 of 32 bytes
 * The name is everything before the first ':' and must be non-empty; cairn
 * also refuses whitespace and control characters in it, because nix.conf
 * separates trusted-public-keys by whitespace.  Surrounding whitespace (a
 * trailing newline) is ignored.
 *
 * A signature ("Sig:" in a narinfo) is "<name>:<base64 of 64 bytes>", the
 * detached Ed25519 signature of the fingerprint
 *   1;<store path>;<NarHash as sha256:nix32>;<NarSize>;<refs>
 * where <refs> are the FULL paths of the references (store dir + '/' +
 * basename), sorted and without duplicates, joined by ','.  Nix refuses to
 * make a fingerprint when NarHash is not SHA-256 or NarSize is 0.
 */
#ifndef CAIRN_SIGN_H
#define CAIRN_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"

struct cairn_narinfo;

#define CAIRN_NIX_KEY_NAME_MAX 255
#define CAIRN_NIX_KEYFILE_MAX 4096 /* a key file / Sig value */
#define CAIRN_NIX_SIG_LEN 64
#define CAIRN_NIX_PK_LEN 32
#define CAIRN_NIX_SK_LEN 64

struct cairn_nix_pubkey {
	char name[CAIRN_NIX_KEY_NAME_MAX + 1];
	uint8_t key[CAIRN_NIX_PK_LEN];
};

struct cairn_nix_seckey {
	char name[CAIRN_NIX_KEY_NAME_MAX + 1];
	uint8_t key[CAIRN_NIX_SK_LEN]; /* wipe with cairn_nix_seckey_wipe */
};

/* Parse key file text (one key).  CAIRN_EFORMAT with a reason otherwise. */
int cairn_nix_pubkey_parse(const char *text, size_t len, struct cairn_nix_pubkey *out,
			   struct cairn_error *err);
int cairn_nix_seckey_parse(const char *text, size_t len, struct cairn_nix_seckey *out,
			   struct cairn_error *err);
/* Check a key name; 0 or CAIRN_EFORMAT. */
int cairn_nix_key_name_check(const char *name, size_t len, struct cairn_error *err);
/* A fresh key pair named name. */
int cairn_nix_key_generate(const char *name, struct cairn_nix_seckey *out, struct cairn_error *err);
void cairn_nix_seckey_public(const struct cairn_nix_seckey *sk, struct cairn_nix_pubkey *out);
void cairn_nix_seckey_wipe(struct cairn_nix_seckey *sk);
/* Append "name:base64" (no newline) to out. */
int cairn_nix_pubkey_format(const struct cairn_nix_pubkey *pk, struct cairn_buf *out);
int cairn_nix_seckey_format(const struct cairn_nix_seckey *sk, struct cairn_buf *out);

/* Append the signature "name:base64" of data to out. */
int cairn_nix_sign(const struct cairn_nix_seckey *sk, const void *data, size_t len,
		   struct cairn_buf *out, struct cairn_error *err);

/*
 * Split a signature "name:base64" and decode it.  *name_len gets the length
 * of the name (at the start of sig).  CAIRN_ESIGCORRUPT when it is not a
 * name and 64 bytes of base64.
 */
int cairn_nix_sig_decode(const char *sig, size_t len, size_t *name_len,
			 uint8_t out[CAIRN_NIX_SIG_LEN], struct cairn_error *err);

/*
 * Check a signature of data with one key: 0 if the names match and the
 * signature verifies; CAIRN_EUNTRUSTED if the name differs;
 * CAIRN_ESIGCORRUPT if undecodable; CAIRN_ESIG if it does not verify.
 */
int cairn_nix_verify(const struct cairn_nix_pubkey *pk, const void *data, size_t len,
		     const char *sig, size_t sig_len, struct cairn_error *err);

/*
 * Append the fingerprint of a narinfo to out.  CAIRN_EINVAL (with detail)
 * if NarHash is not SHA-256.
 */
int cairn_narinfo_fingerprint(const struct cairn_narinfo *ni, struct cairn_buf *out,
			      struct cairn_error *err);

#endif
