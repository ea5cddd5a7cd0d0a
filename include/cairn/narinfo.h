/*
 * narinfo.h - the .narinfo files of Nix and Guix binary caches.
 *
 * A narinfo is text, one field a line, "Name: value\n" (exactly one space
 * after the colon; the last line ends in '\n'; no blank lines).
 *
 * Nix (checked against NixOS/nix src/libstore/nar-info.cc, 2.8 and later)
 * prints, in this order:
 *   StorePath: /nix/store/<32 nix32>-<name>        full path
 *   URL: nar/<filehash>.nar.xz                      relative to the cache
 *   Compression: xz                                 absent means bzip2
 *   FileHash: sha256:<nix32>                        hash of the file at URL
 *   FileSize: <decimal>
 *   NarHash: sha256:<nix32>                         hash of the NAR
 *   NarSize: <decimal>                              non-zero
 *   References: <basename> <basename> ...           may be empty or absent
 *   Deriver: <basename>.drv                         optional; "unknown-deriver" = none
 *   System: x86_64-linux                            optional (2.8 prints it)
 *   Sig: <keyname>:<base64 of 64 bytes>             zero or more
 *   CA: fixed:r:sha256:<nix32> | text:sha256:...    optional
 * Nix reads hashes in any prefixed form (base16, nix32, base64, SRI); a
 * freshly built narinfo prints them as sha256:<nix32>.  Nix's signature
 * covers the fingerprint (see sign.h), not the text, so URL, Compression,
 * FileHash, FileSize, System and CA are not signed.
 *
 * Guix (checked against guix/scripts/publish.scm narinfo-string and
 * guix/narinfo.scm narinfo-sha256):
 *   StorePath: /gnu/store/<hash>-<name>
 *   URL: nar/gzip/<basename>     \
 *   Compression: gzip             > one group per compression offered
 *   FileSize: <decimal>          /  (FileSize optional)
 *   NarHash: sha256:<nix32>
 *   NarSize: <decimal>
 *   References: <basenames>
 *   Deriver: <basename>           optional
 *   Signature: 1;<host>;<base64 of a signature s-expression, see guix.h>
 * The signature covers the bytes of the text from its start up to, not
 * including, the Signature line, whatever their order (older Guix put
 * FileSize after References).  Guix counts a narinfo whose signed part lacks
 * StorePath, NarHash or References as unsigned.  So the parser keeps the
 * original bytes (cairn_narinfo_signed_text) and verification never uses a
 * re-print.  Guix locates the signed part with the first occurrence of the
 * string "Signature:"; to leave no room for the two readings to differ, a
 * narinfo in which "Signature:" appears anywhere other than at the start of
 * its Signature line is rejected.  Guix 1.4 and later print the URL groups
 * after the Signature line (unsigned, like Nix's URL fields), and Guix's
 * reader takes any field in any order, so cairn does too: after the
 * Signature line, URL groups, Nix Sig lines (they sign a fingerprint, not
 * text) and unknown fields are read as usual; StorePath, NarHash, NarSize,
 * References, Deriver, System, CA and a second Signature are kept as lines
 * for printing but never used — Guix takes the first of a repeated field,
 * which is the signed one, and one found only there is unsigned (a missing
 * StorePath, NarHash or NarSize is then an error naming that).
 *
 * URL groups: a URL line opens a group; Compression, FileHash and FileSize
 * lines belong to the most recent group (or to the next URL, when they come
 * before any URL).  A group without a URL is an error.
 *
 * AltURL (cairn's, for Nix narinfos, docs/PROTOCOL.md): one more file of
 * the same NAR on one line, "AltURL: <url> <compression>[ <FileSize>[
 * <FileHash>]]".  Nix keeps the last of a repeated URL line and skips
 * fields it does not know, so a Nix server offers its other compressions
 * to cairn clients this way and Nix still reads the one URL group.  Each
 * becomes a URL group (alt set) after the groups of URL lines, in file
 * order; like URL, it is outside every signature (the NarHash check is
 * what makes its bytes the item's).  A malformed one is skipped: a hint
 * that Nix ignores must not make the item unreadable to cairn.  It is
 * also kept in unknown, so it prints back as it came.
 *
 * Round trip: a parsed narinfo remembers its lines, raw, in their original
 * order, and prints exactly those bytes back (unknown fields included);
 * signatures added later are inserted after the last Sig line (Nix) or
 * appended as the last line (Guix).  A narinfo made with the builder API
 * prints in the canonical order above, Nix's fields first, then unknown
 * fields, then Signature.
 */
#ifndef CAIRN_NARINFO_H
#define CAIRN_NARINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/hash.h"

/* Bounds on untrusted input. */
#define CAIRN_NARINFO_MAX (1u << 20)	 /* whole narinfo text */
#define CAIRN_NARINFO_VALUE_MAX 8192	 /* any value except References */
#define CAIRN_NARINFO_NAME_MAX 64	 /* field name */
#define CAIRN_NARINFO_MAX_LINES 256	 /* lines (fields) */
#define CAIRN_NARINFO_MAX_REFS 10000	 /* References entries */
#define CAIRN_NARINFO_MAX_URLS 16	 /* URL groups */
#define CAIRN_NARINFO_MAX_SIGS 32	 /* Sig lines */
#define CAIRN_NARINFO_STORE_NAME_MAX 211 /* name part of a store path (Nix) */
#define CAIRN_NARINFO_STORE_DIR_MAX 512	 /* store directory, e.g. /nix/store */

/* One URL/Compression/FileHash/FileSize group. */
struct cairn_narinfo_url {
	char *url;
	char *compression;    /* "bzip2" when the narinfo has none */
	bool has_compression; /* a Compression line was present */
	bool has_file_hash;
	struct cairn_hash file_hash;
	bool has_file_size;
	uint64_t file_size;
	bool alt; /* from an AltURL line */
};

/* The field name of cairn's extra URL groups in Nix narinfos (above). */
#define CAIRN_NARINFO_ALT_URL "AltURL"


/* A field line: name and value, both NUL-terminated. */
struct cairn_narinfo_field {
	char *name;
	char *value;
};

/*
 * Everything is owned by the struct; pointers are valid until
 * cairn_narinfo_free.  Treat the members as read-only and change a narinfo
 * only through the functions below.
 */
struct cairn_narinfo {
	char *store_path;	    /* full path */
	struct cairn_hash nar_hash; /* any algorithm; Nix signing needs sha256 */
	uint64_t nar_size;
	bool has_references; /* a References line was present */
	char **refs;	     /* basenames, in file order */
	size_t n_refs;
	char *deriver; /* basename or NULL (also for unknown-deriver) */
	char *system;  /* or NULL */
	char *ca;      /* or NULL */
	char **sigs;   /* Nix "name:base64" values, in file order */
	size_t n_sigs;
	char *signature; /* Guix "1;host;base64" value or NULL */
	struct cairn_narinfo_url *urls;
	size_t n_urls;
	struct cairn_narinfo_field *unknown; /* other fields, in file order */
	size_t n_unknown;

	/* Private to narinfo.c. */
	char *raw_;			    /* parsed text, for the Guix signed part */
	size_t signed_len_;		    /* bytes before the Signature line */
	struct cairn_narinfo_field *lines_; /* parsed: lines as read */
	size_t n_lines_;
	bool parsed_;
};

/*
 * Parse text[0..len).  *out is a new narinfo (cairn_narinfo_free) on
 * success.  Errors: CAIRN_EFORMAT (syntax, bad hash, bad store path,
 * duplicate or missing mandatory field), CAIRN_ELIMIT (a bound above),
 * CAIRN_ENOMEM.
 */
int cairn_narinfo_parse(const char *text, size_t len, struct cairn_narinfo **out,
			struct cairn_error *err);
void cairn_narinfo_free(struct cairn_narinfo *ni);

/* Append the narinfo text to out (see "Round trip" above). */
int cairn_narinfo_print(const struct cairn_narinfo *ni, struct cairn_buf *out,
			struct cairn_error *err);

/*
 * The store directory of StorePath ("/nix/store") into out (capacity
 * outcap, CAIRN_NARINFO_STORE_DIR_MAX + 1 always enough); returns its length.
 */
int cairn_narinfo_store_dir(const struct cairn_narinfo *ni, char *out, size_t outcap);

/*
 * The bytes Guix signs: the parsed text before the Signature line.  Sets
 * *len and returns the text (borrowed, valid until the narinfo is freed or
 * changed), or NULL when the narinfo was not parsed or has no Signature.
 */
const char *cairn_narinfo_signed_text(const struct cairn_narinfo *ni, size_t *len);

/*
 * Builder, for the publish server.  cairn_narinfo_new checks store_path
 * (full path) and takes a copy; nar_hash is copied.
 */
int cairn_narinfo_new(const char *store_path, const struct cairn_hash *nar_hash, uint64_t nar_size,
		      struct cairn_narinfo **out, struct cairn_error *err);
/* Add a reference (basename, checked). */
int cairn_narinfo_add_ref(struct cairn_narinfo *ni, const char *basename, struct cairn_error *err);
/* Print an empty References line (the default for cairn_narinfo_new, as Nix
 * and Guix always print it). */
void cairn_narinfo_set_has_refs(struct cairn_narinfo *ni);
int cairn_narinfo_set_deriver(struct cairn_narinfo *ni, const char *basename,
			      struct cairn_error *err);
int cairn_narinfo_set_ca(struct cairn_narinfo *ni, const char *ca, struct cairn_error *err);
/*
 * Add a URL group.  compression may be NULL (no Compression line);
 * file_hash may be NULL; file_size < 0 means no FileSize line.
 */
int cairn_narinfo_add_url(struct cairn_narinfo *ni, const char *url, const char *compression,
			  const struct cairn_hash *file_hash, int64_t file_size,
			  struct cairn_error *err);
/* Add a Nix signature value "name:base64"; a duplicate is not added again. */
int cairn_narinfo_add_sig(struct cairn_narinfo *ni, const char *sig, struct cairn_error *err);
/*
 * Set the Guix Signature value ("1;host;base64"), replacing one that was
 * there; it is the last line.  The signed part becomes the text printed
 * before it.
 */
int cairn_narinfo_set_signature(struct cairn_narinfo *ni, const char *value,
				struct cairn_error *err);
/* Remove the Guix Signature line. */
void cairn_narinfo_clear_signature(struct cairn_narinfo *ni);

/*
 * Check a store path basename "<32 nix32 chars>-<name>" with Nix's name
 * rules (letters, digits, "+-._?=", first dash-separated component not
 * "." or "..", at most
 * CAIRN_NARINFO_STORE_NAME_MAX).  0 or CAIRN_EFORMAT.
 */
int cairn_narinfo_check_basename(const char *s, size_t len, struct cairn_error *err);

#endif
