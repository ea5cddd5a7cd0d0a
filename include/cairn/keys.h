/*
 * keys.h - a ring of trusted public keys of both ecosystems, narinfo
 * verification against it, and signing narinfos with either kind of key.
 *
 * Key files are recognised by their content:
 *   (public-key (ecc ...))          Guix signing-key.pub (see guix.h)
 *   (acl (entry ...) ...)           Guix acl file; entries tagged (guix import)
 *   name:base64 [name:base64 ...]   Nix public keys, whitespace-separated,
 *                                   as in nix.conf trusted-public-keys
 * Secret keys given as trusted keys are refused with a clear error.
 *
 * Verification follows each ecosystem's rule:
 *   Nix   each "Sig:" names its key; it is checked against every trusted
 *         Nix key of that name over the fingerprint (sign.h).  Unsigned
 *         fields (URL, Compression, FileHash, FileSize, System, CA) may
 *         change without invalidating it.
 *   Guix  the "Signature:" s-expression is checked over the text before
 *         the Signature line (narinfo.h); when that text lacks StorePath,
 *         NarHash or References the narinfo counts as unsigned.
 */
#ifndef CAIRN_KEYS_H
#define CAIRN_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/guix.h"
#include "cairn/sign.h"

struct cairn_narinfo;

#define CAIRN_KEYRING_MAX_KEYS 4096
#define CAIRN_KEYFILE_MAX (1 << 20)

struct cairn_keyring {
	struct cairn_nix_pubkey *nix;
	size_t n_nix;
	struct cairn_guix_pubkey *guix;
	size_t n_guix;
};

#define CAIRN_KEYRING_INIT                                                                         \
	{                                                                                          \
		NULL, 0, NULL, 0                                                                   \
	}

void cairn_keyring_init(struct cairn_keyring *kr);
void cairn_keyring_release(struct cairn_keyring *kr);
/* Add one key (a duplicate is ignored). */
int cairn_keyring_add_nix(struct cairn_keyring *kr, const struct cairn_nix_pubkey *pk,
			  struct cairn_error *err);
int cairn_keyring_add_guix(struct cairn_keyring *kr, const struct cairn_guix_pubkey *pk,
			   struct cairn_error *err);
/*
 * Add the keys in a file's text, format detected (above).  Returns the
 * number of keys read (>= 1) or a negative error; on error nothing is added.
 */
int cairn_keyring_load(struct cairn_keyring *kr, const char *text, size_t len,
		       struct cairn_error *err);

enum cairn_key_kind { CAIRN_KEY_NIX = 1, CAIRN_KEY_GUIX };

/* Signing keys of either kind, as read from a secret key file. */
struct cairn_seckey {
	enum cairn_key_kind kind;
	union {
		struct cairn_nix_seckey nix;
		struct cairn_guix_seckey guix;
	} u;
};

/* Parse a secret key file, format detected. */
int cairn_seckey_parse(const char *text, size_t len, struct cairn_seckey *out,
		       struct cairn_error *err);
void cairn_seckey_wipe(struct cairn_seckey *sk);

#define CAIRN_VERIFY_MAX_SIGNERS 64

/*
 * A signer is a public key, whatever name it was trusted under: the same
 * Ed25519 point given twice ("farm-a:KEY farm-b:KEY"), or as a Nix and a
 * Guix key, is one signer.  A Nix signature does not cover its key name,
 * so counting names would let one signature, relabelled, count twice.
 */
struct cairn_signer {
	enum cairn_key_kind kind;
	size_t index;	 /* into kr->nix or kr->guix: the first key that verified */
	uint8_t key[32]; /* the public point; signers are distinct by it */
};

/* Whether two signers are the same key. */
bool cairn_signer_same(const struct cairn_signer *a, const struct cairn_signer *b);

/*
 * The outcome of a verification.  status is 0 when at least one trusted
 * key signed validly; otherwise the most telling failure, in this order:
 *   CAIRN_EHASH        Guix: signed hash is not that of the text
 *   CAIRN_ESIG         a trusted key's signature does not verify (changed fields)
 *   CAIRN_ESIGCORRUPT  a signature cannot be decoded
 *   CAIRN_EUNTRUSTED   signed, but only by keys not in the ring
 *   CAIRN_ENOSIG       no signature (Guix: or its signed part lacks fields)
 * signers lists the distinct trusted keys whose signature verified (for a
 * k-of-n policy), in order of appearance.  nix_sigs_ok has bit i set when
 * ni->sigs[i] verified with a trusted key: the signatures a store records
 * as accepted (a narinfo has at most CAIRN_NARINFO_MAX_SIGS of them).
 */
struct cairn_verify_result {
	int status;
	size_t n_signers;
	struct cairn_signer signers[CAIRN_VERIFY_MAX_SIGNERS];
	uint32_t nix_sigs_ok;
	char detail[CAIRN_ERROR_MSG_MAX]; /* why it failed, "" when valid */
};

/*
 * Verify ni against the ring.  Returns res->status (0 or a negative code
 * above); err gets the detail too.  Other negative codes (CAIRN_ENOMEM...)
 * are failures to check, with res->status set to them as well.
 */
int cairn_narinfo_verify(const struct cairn_narinfo *ni, const struct cairn_keyring *kr,
			 struct cairn_verify_result *res, struct cairn_error *err);

/*
 * Describe every public key the ring holds under more than one name (or
 * as both a Nix and a Guix key), one line each, into out: such a key
 * counts as one signer.  Returns the number of such keys.
 */
size_t cairn_keyring_aliases(const struct cairn_keyring *kr, struct cairn_buf *out);

/* A trusted key's display name: the Nix key name, or "guix:<hex of q>"
 * (buffer of at least 80 bytes). */
void cairn_keyring_key_name(const struct cairn_keyring *kr, const struct cairn_signer *s, char *out,
			    size_t outcap);

/*
 * Sign ni with a key.  Nix: adds a Sig over the fingerprint.  Guix: sets
 * the Signature line, "1;<host>;<base64>", over the text printed before it
 * (host required for Guix, ignored for Nix).  Sign with Nix keys first: a
 * Sig added after the Guix Signature changes the text it covers.
 */
int cairn_narinfo_sign(struct cairn_narinfo *ni, const struct cairn_seckey *sk, const char *host,
		       struct cairn_error *err);

#endif
