/*
 * hash.h - SHA-256 and the textual hash forms of Nix and Guix.
 *
 * Forms understood (checked against Nix's libutil hash.cc):
 *   <algo>:<nix32>     sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s
 *   <algo>:<base16>    sha256:<64 lowercase or uppercase hex digits>
 *   <algo>:<base64>    sha256:<44 chars, padded>
 *   <algo>-<base64>    SRI, sha256-LCa0a2j/xo/5m0U8HTBBNBNCLXBkg7+g+YpeiGJm564=
 * The encoding of the <algo>: form is told apart by its length, as Nix does.
 * Algorithms: md5 (16 bytes), sha1 (20), sha256 (32), sha512 (64).  Only
 * SHA-256 is computed here; the others are parsed and printed so that
 * fixed-output CA fields and narinfos that name them survive a round trip.
 *
 * Nix base32 ("nix32") uses the alphabet 0123456789abcdfghijklmnpqrsvwxyz
 * (no e, o, u, t) and emits the most significant 5-bit group first, taking
 * bits from the *end* of the byte string: character i of the output encodes
 * bits [5*(len-1-i), 5*(len-1-i)+5) of the hash read as a little-endian
 * number.  A 32-byte hash is 52 characters.
 */
#ifndef CAIRN_HASH_H
#define CAIRN_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

#define CAIRN_SHA256_LEN 32
#define CAIRN_HASH_MAX_LEN 64
/* Longest printed form: "sha512:" + 128 hex digits, plus NUL. */
#define CAIRN_HASH_STR_MAX 140

enum cairn_hash_algo {
	CAIRN_HASH_MD5 = 1,
	CAIRN_HASH_SHA1,
	CAIRN_HASH_SHA256,
	CAIRN_HASH_SHA512,
};

enum cairn_hash_encoding {
	CAIRN_HASH_NIX32,   /* sha256:<nix32> */
	CAIRN_HASH_BASE16,  /* sha256:<hex> */
	CAIRN_HASH_BASE64,  /* sha256:<base64> */
	CAIRN_HASH_SRI,     /* sha256-<base64> */
};

struct cairn_hash {
	enum cairn_hash_algo algo;
	size_t len;                          /* bytes used in digest */
	uint8_t digest[CAIRN_HASH_MAX_LEN];
};

/*
 * Streaming SHA-256.  libgcrypt underneath rather than libsodium: on this
 * class of machine libgcrypt uses the CPU's SHA extensions (2.0 GB/s
 * measured) where libsodium 1.0.18 runs portable C (0.48 GB/s), and NAR
 * hashing is on every hot path.  The handle is allocated by init.
 */
struct cairn_sha256 {
	void *hd;
};

/* 0, or CAIRN_ENOMEM/CAIRN_ECRYPTO. */
int cairn_sha256_init(struct cairn_sha256 *ctx);
void cairn_sha256_update(struct cairn_sha256 *ctx, const void *data, size_t len);
/* Writes the digest into out and releases ctx. */
void cairn_sha256_final(struct cairn_sha256 *ctx, uint8_t out[CAIRN_SHA256_LEN]);
/* Release without a result (error paths); safe after final and on a zeroed ctx. */
void cairn_sha256_release(struct cairn_sha256 *ctx);
void cairn_sha256(const void *data, size_t len, uint8_t out[CAIRN_SHA256_LEN]);
/* Fill *h with the SHA-256 of data. */
void cairn_hash_sha256(struct cairn_hash *h, const void *data, size_t len);

/* Digest length for an algorithm, 0 if unknown. */
size_t cairn_hash_algo_len(enum cairn_hash_algo algo);
/* "sha256" etc.; NULL if unknown. */
const char *cairn_hash_algo_name(enum cairn_hash_algo algo);
/* Parse an algorithm name of length len; 0 if unknown. */
enum cairn_hash_algo cairn_hash_algo_parse(const char *name, size_t len);

/* Nix base32.  Encoded length of n bytes is (n*8 - 1)/5 + 1. */
size_t cairn_nix32_len(size_t nbytes);
/* Writes exactly cairn_nix32_len(n) characters to out (no NUL). */
void cairn_nix32_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decode len characters into exactly outlen bytes.  Fails on a character
 * outside the alphabet, a wrong length, or set bits beyond outlen*8.
 */
int cairn_nix32_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

/* Lowercase base16: writes 2*n characters (no NUL). */
void cairn_base16_encode(const uint8_t *in, size_t n, char *out);
/* Accepts either case; exactly 2*outlen characters. */
int cairn_base16_decode(const char *in, size_t len, uint8_t *out, size_t outlen);

/* Standard padded base64. */
size_t cairn_base64_len(size_t nbytes);
/* Writes cairn_base64_len(n) characters plus a NUL. */
void cairn_base64_encode(const uint8_t *in, size_t n, char *out);
/*
 * Decode padded base64 into out (capacity outcap); *outlen receives the
 * decoded size.  Whitespace is not allowed.
 */
int cairn_base64_decode(const char *in, size_t len, uint8_t *out, size_t outcap,
			size_t *outlen);

/*
 * Parse any of the forms above from s[0..len).  When the string has no
 * algorithm prefix, default_algo (if non-zero) is assumed, as Nix does for
 * narinfo FileHash fields written without one; pass 0 to require a prefix.
 */
int cairn_hash_parse(const char *s, size_t len, enum cairn_hash_algo default_algo,
		     struct cairn_hash *out, struct cairn_error *err);

/*
 * Print h in the given encoding, NUL-terminated, into out (capacity outcap,
 * CAIRN_HASH_STR_MAX is always enough).  Returns the length printed.
 */
int cairn_hash_format(const struct cairn_hash *h, enum cairn_hash_encoding enc,
		      char *out, size_t outcap);

/* Constant-time equality of algorithm and digest. */
int cairn_hash_equal(const struct cairn_hash *a, const struct cairn_hash *b);

#endif
