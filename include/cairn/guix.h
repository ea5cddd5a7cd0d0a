/*
 * guix.h - Guix signing keys, acl and narinfo signatures.
 *
 * Checked against Guix's guix/pki.scm, guix/scripts/archive.scm
 * (--generate-key), guix/narinfo.scm (narinfo-sha256, valid-narinfo?,
 * signature-case) and guix/pk-crypto.scm / gcrypt/pk-crypto.scm
 * (bytevector->hash-data, sign, canonical-sexp->string), and against a
 * narinfo signed by Guix's build farm (tests/vectors/guix).
 *
 * Guix does not use EdDSA.  Its keys are libgcrypt keys made by
 *   (genkey (ecdsa (curve Ed25519) (flags rfc6979)))
 * so a signature is ECDSA over the edwards25519 group with RFC 6979
 * deterministic nonces, computed and checked here with libgcrypt as Guix
 * does.  q is the 32-byte EdDSA-style encoding of the public point; d is a
 * 256-bit number (libgcrypt does not reduce it mod the group order).
 *
 * Files are libgcrypt's "advanced" printing (gcry_sexp_sprint with
 * GCRYSEXP_FMT_ADVANCED: one list per line, nested lists indented by one
 * space, a space after each list's name, binary values as #HEX#):
 *   signing-key.pub  (public-key (ecc (curve Ed25519) (q #<64 hex>#)))
 *   signing-key.sec  (private-key (ecc (curve Ed25519) (q #..#) (d #<64 hex>#)))
 *                    -- archive.scm writes only the private-key part of
 *                    genkey's (key-data (public-key ...) (private-key ...));
 *                    seckey_parse accepts either.
 *   acl              (acl (entry (public-key ...) (tag (guix import))) ...)
 *                    -- Guix rejects the whole acl when any entry has
 *                    another shape or tag, and so do we.
 * Only ecc keys on curve Ed25519 are accepted (flags, if present, may only
 * say rfc6979); RSA keys, other curves, EdDSA-flagged keys and explicit
 * curve parameters are refused.  Points must be in the prime-order group,
 * and points with an affine coordinate below 2^192 are refused too: on
 * those libgcrypt 1.10 aborts the process inside gcry_pk_verify.
 *
 * A narinfo's `Signature: 1;<host>;<base64>` decodes to the advanced
 * printing of
 *   (signature (data (flags rfc6979) (hash sha256 #<SHA-256 of the narinfo
 *                     text from its start up to the "Signature:" line>#))
 *              (sig-val (ecdsa (r #..#) (s #..#)))
 *              (public-key (ecc (curve Ed25519) (q #..#))))
 * where r and s are printed without leading zero bytes.  Verification
 * follows Guix's order (signature-case in narinfo.scm/pki.scm): readable,
 * then signer's key trusted, then hash equal, then the ECDSA check.  Parts
 * are looked up among direct children only, and libgcrypt is handed a key,
 * data and sig-val rebuilt from the checked bytes, never the input's own.
 * (The narinfo-level parsing lives in narinfo.c/sign.c; this module works
 * on the decoded s-expression text and the signed bytes.)
 *
 * Secrets: d is wiped from our buffers and structs; MPIs are wiped by
 * libgcrypt.  libgcrypt's s-expression copies of d are wiped on release
 * only when its secure memory is enabled (cairn_init disables it).
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

/*
 * Parse signing-key.pub text.  CAIRN_EFORMAT when malformed or not a usable
 * point, CAIRN_EUNSUPPORTED for other algorithms and curves, CAIRN_ELIMIT
 * beyond CAIRN_GUIX_SEXP_MAX bytes.
 */
int cairn_guix_pubkey_parse(const char *text, size_t len, struct cairn_guix_pubkey *out,
			    struct cairn_error *err);
/* Parse signing-key.sec text; also checks that q belongs to d. */
int cairn_guix_seckey_parse(const char *text, size_t len, struct cairn_guix_seckey *out,
			    struct cairn_error *err);
/* Generate a fresh key pair the way `guix archive --generate-key` does. */
int cairn_guix_key_generate(struct cairn_guix_seckey *out, struct cairn_error *err);
/* Public half of a secret key. */
void cairn_guix_seckey_public(const struct cairn_guix_seckey *sk, struct cairn_guix_pubkey *out);
void cairn_guix_seckey_wipe(struct cairn_guix_seckey *sk);

/*
 * Append the file text of a key (as Guix writes it) to out: 0, or
 * CAIRN_ENOMEM / CAIRN_ELIMIT (out is full) / CAIRN_ECRYPTO.
 */
int cairn_guix_pubkey_format(const struct cairn_guix_pubkey *pk, struct cairn_buf *out);
int cairn_guix_seckey_format(const struct cairn_guix_seckey *sk, struct cairn_buf *out);

/*
 * Parse an acl file; *keys is a malloc'd array the caller frees (also when
 * *n_keys is 0).  Every entry must be tagged (guix import), as in Guix;
 * more than CAIRN_GUIX_ACL_MAX_KEYS entries is CAIRN_ELIMIT.
 */
int cairn_guix_acl_parse(const char *text, size_t len, struct cairn_guix_pubkey **keys,
			 size_t *n_keys, struct cairn_error *err);

/*
 * Sign data (the narinfo text before its Signature line): appends the
 * signature s-expression text (not yet base64-encoded; it ends in a
 * newline) to out, byte for byte what `guix publish` would write for the
 * same key, since RFC 6979 makes the signature deterministic.
 * CAIRN_EFORMAT if sk is not a usable key (d zero or a multiple of the
 * group order, q not a usable point).
 */
int cairn_guix_sign(const struct cairn_guix_seckey *sk, const void *data, size_t len,
		    struct cairn_buf *out, struct cairn_error *err);

/*
 * Verify a signature s-expression over data against trusted keys.
 * Returns 0 when valid and made by one of the trusted keys (*signer, if not
 * NULL, gets the index of that key), otherwise:
 *   CAIRN_ESIGCORRUPT  the s-expression cannot be read, is too long or
 *                      deep, lacks parts, or its sig-val is not ecdsa
 *   CAIRN_EUNTRUSTED   well-formed, but its public key is not trusted
 *                      (or is not an Ed25519 key at all)
 *   CAIRN_EHASH        the signed hash is not SHA-256 of data
 *   CAIRN_ESIG         the ECDSA signature does not verify
 *   CAIRN_EINVAL       the matching trusted key is not a usable point
 */
int cairn_guix_verify(const void *data, size_t len, const char *sig_sexp, size_t sig_len,
		      const struct cairn_guix_pubkey *trusted, size_t n_trusted, size_t *signer,
		      struct cairn_error *err);

#endif
