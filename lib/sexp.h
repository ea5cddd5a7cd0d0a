/*
 * sexp.h - read untrusted s-expressions into a flat, bounded tree
 * (internal to libcairn; used by guix.c, the unit tests and fuzz-sexp).
 *
 * Guix stores keys, signatures and its acl as libgcrypt "advanced"
 * s-expression text.  That syntax (tokens, "strings" with escapes,
 * #hex#, |base64|, [display hints], canonical "3:abc" atoms) is read by
 * libgcrypt's own parser, gcry_sexp_sscan, exactly as Guix reads it.
 * libgcrypt's accessors (gcry_sexp_nth, gcry_sexp_find_token) walk the
 * expression from its start on each call and gcry_sexp_find_token searches
 * the whole subtree, so instead we have libgcrypt print the canonical form
 *   list = "(" *item ")"     atom = [ "[" len ":" bytes "]" ] len ":" bytes
 * and index that once, without recursion, into an array of nodes; lookups
 * then only ever look at the direct children of a list.
 *
 * Bounds: the text length is checked against the caller's maximum before
 * libgcrypt sees it, nesting deeper than CAIRN_SEXP_MAX_DEPTH is refused,
 * and exactly one top-level list is accepted.  Display hints are refused:
 * nothing Guix writes has them.  The canonical copy is wiped on release
 * because it may hold a secret key.
 */
#ifndef CAIRN_LIB_SEXP_H
#define CAIRN_LIB_SEXP_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"

#define CAIRN_SEXP_MAX_DEPTH 32

/* "No node": the root is node 0 and is never anyone's child or sibling. */
#define CAIRN_SEXP_NONE 0

struct cairn_sexp_node {
	const uint8_t *data; /* atom bytes (into the canonical copy); NULL for a list */
	size_t len;          /* atom length */
	size_t first;        /* first child of a list, or CAIRN_SEXP_NONE */
	size_t next;         /* next sibling, or CAIRN_SEXP_NONE */
	size_t count;        /* number of children of a list */
	int is_list;
};

struct cairn_sexp {
	uint8_t *canon;
	size_t canon_len;
	struct cairn_sexp_node *nodes; /* nodes[0] is the top-level list */
	size_t n_nodes;
};

/*
 * Parse text[0..len) (not necessarily NUL-terminated).  On failure the
 * error code is `code` (CAIRN_EFORMAT for files, CAIRN_ESIGCORRUPT for
 * signatures) or CAIRN_ELIMIT / CAIRN_ENOMEM; messages start with `what`.
 * On success release *out with cairn_sexp_release.
 */
int cairn_sexp_parse(const char *text, size_t len, size_t max_len, int code, const char *what,
		     struct cairn_sexp *out, struct cairn_error *err);
/* Index canonical bytes (takes ownership of canon, malloc'd, even on failure). */
int cairn_sexp_index(uint8_t *canon, size_t canon_len, int code, const char *what,
		     struct cairn_sexp *out, struct cairn_error *err);
/* Free and wipe; safe on a zeroed struct and twice. */
void cairn_sexp_release(struct cairn_sexp *sx);

/* The i-th child (0-based) of list node, or CAIRN_SEXP_NONE. */
size_t cairn_sexp_nth(const struct cairn_sexp *sx, size_t node, size_t i);
/* Is node an atom with exactly the bytes of s? */
int cairn_sexp_atom_is(const struct cairn_sexp *sx, size_t node, const char *s);
/* Is node a list whose first child is the atom name? */
int cairn_sexp_list_is(const struct cairn_sexp *sx, size_t node, const char *name);
/*
 * The direct child of list node that is a list named name.  Returns
 * CAIRN_SEXP_NONE when there is none; *dup is set when there are several
 * (then the first is returned).
 */
size_t cairn_sexp_find(const struct cairn_sexp *sx, size_t node, const char *name, int *dup);

#endif
