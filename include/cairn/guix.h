/*
 * guix.h - Guix signing keys and narinfo signatures.
 *
 * Guix does not use EdDSA.  Its keys are libgcrypt keys made by
 *   (genkey (ecdsa (curve Ed25519) (flags rfc6979)))
 * so a signature is ECDSA over the edwards25519 group with RFC 6979
 * deterministic nonces, computed and checked with libgcrypt as Guix does.
 *
 * Files (canonical text as libgcrypt's "advanced" s-expression printer
 * writes them, which is what Guix stores):
 *   signing-key.pub  (public-key (ecc (curve Ed25519) (q #<64 hex>#)))
 *   signing-key.sec  (key-data (public-key ...) (private-key (ecc (curve Ed25519)
 *                    (q #..#) (d #..#))))
 *   acl              (acl (entry (public-key ...) (tag (guix import))) ...)
 *
 * A narinfo's `Signature: 1;<host>;<base64>` decodes to
 *   (signature (data (flags rfc6979) (hash sha256 #<hex of SHA-256 of the
 *    narinfo text before the Signature line>#))
 *    (sig-val (ecdsa (r #..#) (s #..#)))
 *    (public-key (ecc (curve Ed25519) (q #..#))))
 * (The narinfo-level parsing lives in narinfo.c/sign.c; this module works on
 * the decoded s-expression text and the signed bytes.)
 */
#ifndef CAIRN_GUIX_H
#define CAIRN_GUIX_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"

/* Bounds on untrusted input. */
#define CAIRN_GUIX_SEXP_MAX 4096     /* a key or signature s-expression */
#define CAIRN_GUIX_ACL_MAX (1 << 20) /* an acl file */
#define CAIRN_GUIX_ACL_MAX_KEYS 1024

struct cairn_guix_pubkey {
	uint8_t q[32]; /* compressed Ed25519 point, as in (q #..#) */
};

struct cairn_guix_seckey {
	uint8_t q[32]; /* public point */
	uint8_t d[32]; /* secret, as in (d #..#); wipe with cairn_guix_seckey_wipe */
};

/* Parse signing-key.pub text.  Rejects other curves and algorithms. */
int cairn_guix_pubkey_parse(const char *text, size_t len, struct cairn_guix_pubkey *out,
			    struct cairn_error *err);
/* Parse signing-key.sec text. */
int cairn_guix_seckey_parse(const char *text, size_t len, struct cairn_guix_seckey *out,
			    struct cairn_error *err);
/* Generate a fresh key pair the way `guix archive --generate-key` does. */
int cairn_guix_key_generate(struct cairn_guix_seckey *out, struct cairn_error *err);
/* Public half of a secret key. */
void cairn_guix_seckey_public(const struct cairn_guix_seckey *sk, struct cairn_guix_pubkey *out);
void cairn_guix_seckey_wipe(struct cairn_guix_seckey *sk);

/* Append the file text of a key (as Guix writes it) to out. */
int cairn_guix_pubkey_format(const struct cairn_guix_pubkey *pk, struct cairn_buf *out);
int cairn_guix_seckey_format(const struct cairn_guix_seckey *sk, struct cairn_buf *out);

/*
 * Parse an acl file; *keys is a malloc'd array the caller frees.  Only
 * entries tagged (guix import) count, as in Guix.
 */
int cairn_guix_acl_parse(const char *text, size_t len, struct cairn_guix_pubkey **keys,
			 size_t *n_keys, struct cairn_error *err);
int cairn_guix_acl_format(const struct cairn_guix_pubkey *keys, size_t n_keys,
			  struct cairn_buf *out);

/*
 * Sign data (the narinfo text before its Signature line): appends the
 * signature s-expression text (not yet base64-encoded) to out.
 */
int cairn_guix_sign(const struct cairn_guix_seckey *sk, const void *data, size_t len,
		    struct cairn_buf *out, struct cairn_error *err);

/*
 * Verify a signature s-expression over data against trusted keys.
 * Returns 0 when valid and made by one of the trusted keys (*signer, if not
 * NULL, gets the index of that key), otherwise:
 *   CAIRN_ESIGCORRUPT  the s-expression cannot be read or lacks parts
 *   CAIRN_EUNTRUSTED   well-formed, but its public key is not trusted
 *   CAIRN_EHASH        the signed hash is not SHA-256 of data
 *   CAIRN_ESIG         the ECDSA signature does not verify
 */
int cairn_guix_verify(const void *data, size_t len, const char *sig_sexp, size_t sig_len,
		      const struct cairn_guix_pubkey *trusted, size_t n_trusted, size_t *signer,
		      struct cairn_error *err);

#endif
