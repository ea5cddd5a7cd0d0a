/*
 * storepath.h - store paths of Nix and Guix: parse, validate, print, and
 * compute them from content addresses.
 *
 * Layout (checked against NixOS/nix src/libstore/path.cc, path.hh,
 * store-dir-config.cc, content-address.cc, path-info.cc, libutil hash.cc):
 *
 *   <storedir>/<hash>-<name>       /nix/store/ffgxzvwgpa92d5hfh91d5fylv05w28cy-t01-file
 *   <hash>-<name>                  the basename, as in narinfo References
 *
 *   hash     exactly 32 characters of Nix base32 (0-9 a-z without e o u t):
 *            160 bits, so every such string decodes to a 20-byte digest.
 *   name     1..211 characters of a-z A-Z 0-9 + - . _ ? =; not "." or "..",
 *            and not starting with ".-" or "..-" (today's Nix: a first
 *            dash-separated component of "." or ".." is refused).
 *   storedir absolute, no trailing slash, no empty, "." or ".." components,
 *            no control characters, at most CAIRN_STORE_DIR_MAX bytes.  Any
 *            directory is allowed: /nix/store, /gnu/store, /foo/bar.
 *
 * Differences from Nix, all stricter: Nix does not look at the character
 * after the hash part (it is always '-' in paths Nix prints, and we require
 * it), and Nix canonicalises "/nix/store//x" or "/nix/store/./x" before
 * parsing; we refuse non-canonical spellings instead of rewriting them.
 *
 * Computing a store path (makeStorePath):
 *
 *   s      = "<type>:<algo>:<inner hash in base16>:<storedir>:<name>"
 *   digest = SHA-256(s) folded to 20 bytes: out[i % 20] ^= sha[i]
 *   path   = <storedir>/<nix32(digest)>-<name>
 *
 * The types (makeType, makeFixedOutputPath, makeTextPath):
 *
 *   source[:<ref>...][:self]  recursive (NAR) SHA-256; inner = the NAR hash
 *   text[:<ref>...]           flat SHA-256 of the file; no self-reference
 *   output:out                every other fixed-output case (flat files,
 *                             NAR with another algorithm, git); no
 *                             references; inner = SHA-256 of
 *                             "fixed:out:<r:|git:|><algo>:<base16 hash>:"
 *
 * References are printed as full paths (<storedir>/<hash>-<name>), sorted
 * by basename and without duplicates, as Nix's std::set gives them.
 *
 * Narinfo `CA` field (ContentAddress::parse):
 *
 *   text:sha256:<hash>                    text path
 *   fixed:<algo>:<hash>                   flat file
 *   fixed:r:<algo>:<hash>                 NAR serialisation
 *   fixed:git:<sha1|sha256>:<hash>        git tree/blob hashing
 *
 * <algo> is md5, sha1, sha256 or sha512; <hash> is nix32 (what Nix writes),
 * base16 or base64 without a prefix (Hash::parseNonSRIUnprefixed).
 *
 * A client may accept a content-addressed item without a signature when its
 * store path recomputes from CA + name + references (Nix's
 * ValidPathInfo::isContentAddressed; a reference equal to the path itself
 * is the self-reference) AND the content it receives matches the CA hash
 * (see cairn_ca_verify_init).
 */
#ifndef CAIRN_STOREPATH_H
#define CAIRN_STOREPATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/hash.h"

#define CAIRN_STORE_HASH_LEN 32    /* characters of the hash part */
#define CAIRN_STORE_DIGEST_LEN 20  /* bytes it encodes */
#define CAIRN_STORE_NAME_MAX 211   /* StorePath::MaxPathLen */
/* "<hash>-<name>" */
#define CAIRN_STORE_BASE_MAX (CAIRN_STORE_HASH_LEN + 1 + CAIRN_STORE_NAME_MAX)
#define CAIRN_STORE_DIR_MAX 512
/* A full path plus its NUL: enough for cairn_store_path_format(). */
#define CAIRN_STORE_PATH_MAX (CAIRN_STORE_DIR_MAX + 1 + CAIRN_STORE_BASE_MAX + 1)
/* Most references one store path computation takes (Nix has no limit;
 * real items have a few hundred at most). */
#define CAIRN_STORE_REFS_MAX 65536

/* A parsed store path: both strings NUL-terminated and already valid. */
struct cairn_store_path {
	char hash[CAIRN_STORE_HASH_LEN + 1];
	char name[CAIRN_STORE_NAME_MAX + 1];
};

/*
 * True when s[0..len) is exactly 32 characters of Nix base32: the cheap
 * check for a "/<hash>.narinfo" request or a hash part.
 */
bool cairn_store_hash_valid(const char *s, size_t len);

/* 0, or CAIRN_EFORMAT naming the rule the name breaks. */
int cairn_store_name_check(const char *name, size_t len, struct cairn_error *err);

/* 0, or CAIRN_EFORMAT/CAIRN_ELIMIT naming the rule the directory breaks. */
int cairn_store_dir_check(const char *dir, size_t len, struct cairn_error *err);

/* Parse a basename "<hash>-<name>" (no directory). */
int cairn_store_path_parse_base(const char *s, size_t len, struct cairn_store_path *out,
				struct cairn_error *err);

/*
 * Parse "<storedir>/<hash>-<name>".  With storedir non-NULL the path must be
 * in that directory (which is configuration, trusted: check it once with
 * cairn_store_dir_check); with NULL any valid store directory is accepted,
 * and it is the first len - cairn_store_path_base_len(out) - 1 bytes of s.
 */
int cairn_store_path_parse(const char *s, size_t len, const char *storedir,
			   struct cairn_store_path *out, struct cairn_error *err);

/* Length of "<hash>-<name>". */
size_t cairn_store_path_base_len(const struct cairn_store_path *p);

/*
 * Print "<storedir>/<hash>-<name>", or the basename when storedir is NULL,
 * NUL-terminated into out (CAIRN_STORE_PATH_MAX is always enough for a
 * valid directory).  Returns the length, or CAIRN_ELIMIT when out is short.
 */
int cairn_store_path_format(const struct cairn_store_path *p, const char *storedir,
			    char *out, size_t outcap);

/* Order of the basenames (hash part, then name): <0, 0, >0 like strcmp. */
int cairn_store_path_cmp(const struct cairn_store_path *a, const struct cairn_store_path *b);

/* The 20 bytes the hash part encodes.  0, or CAIRN_EFORMAT for a bad struct. */
int cairn_store_path_digest(const struct cairn_store_path *p,
			    uint8_t out[CAIRN_STORE_DIGEST_LEN]);

/* References that go into a computed path: others (any order, duplicates
 * allowed, as full paths in storedir) plus the self-reference flag. */
struct cairn_store_refs {
	const struct cairn_store_path *others;
	size_t n;
	bool self;
};

/*
 * makeStorePath: type is the complete type string ("source",
 * "output:out", "text:/nix/store/...").  inner is printed as
 * "<algo>:<base16>".  storedir and name are validated.
 */
int cairn_store_path_make(const char *type, const struct cairn_hash *inner, const char *name,
			  const char *storedir, struct cairn_store_path *out,
			  struct cairn_error *err);

enum cairn_ca_method {
	CAIRN_CA_TEXT = 1,  /* text:        flat file, "text" type, references */
	CAIRN_CA_FLAT,      /* fixed:       flat file */
	CAIRN_CA_NAR,       /* fixed:r:     NAR serialisation */
	CAIRN_CA_GIT,       /* fixed:git:   git hashing (experimental in Nix) */
};

/* A narinfo CA field. */
struct cairn_ca {
	enum cairn_ca_method method;
	struct cairn_hash hash;
};

/* Longest CA text: "fixed:git:" + "sha512:" + nix32 of 64 bytes, plus NUL. */
#define CAIRN_CA_STR_MAX 128

int cairn_ca_parse(const char *s, size_t len, struct cairn_ca *out, struct cairn_error *err);

/* Print as Nix writes it (nix32 hash).  Returns the length or CAIRN_ELIMIT. */
int cairn_ca_format(const struct cairn_ca *ca, char *out, size_t outcap);

/*
 * The store path a content address gives (makeFixedOutputPathFromCA).
 * This is also how to compute a "source" path (CAIRN_CA_NAR with the NAR's
 * SHA-256, what `nix store add-path` makes), a "text" path (CAIRN_CA_TEXT,
 * builtins.toFile) or any fixed-output path.
 * refs may be NULL for none.  Fails with CAIRN_EFORMAT when the combination
 * cannot exist: references on a path that is not "source" or "text", a
 * self-reference on a text path, git with an algorithm other than sha1 or
 * sha256, text with one other than sha256.
 */
int cairn_ca_make_path(const struct cairn_ca *ca, const char *name,
		       const struct cairn_store_refs *refs, const char *storedir,
		       struct cairn_store_path *out, struct cairn_error *err);

/*
 * Does path recompute from ca and its references, as listed in a narinfo
 * (a reference equal to path is the self-reference)?  0 when it does,
 * CAIRN_EHASH when it does not (the item must then be signed), or another
 * error when the claim is malformed.
 */
int cairn_ca_check_path(const struct cairn_ca *ca, const struct cairn_store_path *path,
			const struct cairn_store_path *refs, size_t nrefs, const char *storedir,
			struct cairn_error *err);

/*
 * A path that recomputes proves nothing about the bytes: an unsigned
 * narinfo's NarHash is as untrusted as its CA.  The content must also match
 * the CA hash, which Nix checks when it imports a CA path (LocalStore::
 * addToStore with HashModuloSink): SHA-256 of the content with every
 * occurrence of the path's own 32-character hash part replaced by 32 NUL
 * bytes, followed by "|<offset>" in decimal for each occurrence, in order.
 * Without self-references that is the plain SHA-256, so for fixed:r:sha256
 * it is the NAR hash.
 *
 * Feed the NAR for fixed:r:, the file's contents for fixed: (flat) and
 * text:.  Only sha256 is supported (CAIRN_EUNSUPPORTED from init for other
 * algorithms and for git): such items must be signed.
 */
struct cairn_ca_verify {
	struct cairn_sha256 sha;
	struct cairn_hash want;
	char modulus[CAIRN_STORE_HASH_LEN];
	unsigned char tail[CAIRN_STORE_HASH_LEN - 1];
	size_t tail_len;
	uint64_t pos;           /* bytes hashed so far */
	char *offsets;          /* "|<pos>" texts, hashed at the end */
	size_t offsets_len, offsets_cap;
};
/* Most self-reference occurrences one item may have. */
#define CAIRN_CA_SELF_REFS_MAX 65536

int cairn_ca_verify_init(struct cairn_ca_verify *v, const struct cairn_ca *ca,
			 const struct cairn_store_path *path, struct cairn_error *err);
/* 0, or CAIRN_ELIMIT/CAIRN_ENOMEM (too many self-references). */
int cairn_ca_verify_update(struct cairn_ca_verify *v, const void *data, size_t len,
			   struct cairn_error *err);
/* 0 when the content matches, CAIRN_EHASH when not.  Releases v. */
int cairn_ca_verify_final(struct cairn_ca_verify *v, struct cairn_error *err);
/* Release without a verdict (error paths); safe after final. */
void cairn_ca_verify_release(struct cairn_ca_verify *v);

#endif
