/*
 * sexp.c - bounded indexing of s-expressions parsed by libgcrypt.
 * See sexp.h for why this exists and what it accepts.
 */
#include <gcrypt.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "sexp.h"
#include "cairn/banned.h"

/*
 * One walk over canonical bytes.  With nodes == NULL it only validates and
 * counts (so the node array can be sized exactly before it is allocated);
 * otherwise it fills nodes[0..count).  Iterative: the open lists are kept
 * on a fixed stack of CAIRN_SEXP_MAX_DEPTH entries.
 */
static int sexp_walk(const uint8_t *p, size_t len, struct cairn_sexp_node *nodes, size_t *count,
		     int code, const char *what, struct cairn_error *err)
{
	size_t open[CAIRN_SEXP_MAX_DEPTH];
	size_t last[CAIRN_SEXP_MAX_DEPTH]; /* last child so far of open[d], or NONE */
	size_t depth = 0, n = 0, pos = 0;
	int done = 0;

	while (pos < len) {
		if (done)
			return cairn_error_set(err, code, "%s: data after the closing parenthesis",
					       what);
		uint8_t c = p[pos];
		size_t node;
		if (c == ')') {
			if (depth == 0)
				return cairn_error_set(err, code, "%s: unbalanced ')'", what);
			depth--;
			pos++;
			if (depth == 0)
				done = 1;
			continue;
		}
		if (c == '(') {
			if (depth == CAIRN_SEXP_MAX_DEPTH)
				return cairn_error_set(err, CAIRN_ELIMIT,
						       "%s: nested deeper than %d lists", what,
						       CAIRN_SEXP_MAX_DEPTH);
			node = n;
			pos++;
		} else if (c >= '0' && c <= '9') {
			if (depth == 0)
				return cairn_error_set(err, code, "%s: not a list", what);
			size_t alen = 0;
			while (pos < len && p[pos] >= '0' && p[pos] <= '9') {
				if (alen > (SIZE_MAX - 9) / 10)
					return cairn_error_set(err, code, "%s: atom length overflows",
							       what);
				alen = alen * 10 + (size_t)(p[pos] - '0');
				pos++;
			}
			if (pos >= len || p[pos] != ':')
				return cairn_error_set(err, code, "%s: atom length without ':'",
						       what);
			pos++;
			if (alen > len - pos)
				return cairn_error_set(err, code, "%s: atom runs past the end", what);
			node = n;
			if (nodes) {
				nodes[node] = (struct cairn_sexp_node){ .data = p + pos, .len = alen };
			}
			pos += alen;
		} else if (c == '[') {
			return cairn_error_set(err, code, "%s: display hints are not supported",
					       what);
		} else {
			return cairn_error_set(err, code, "%s: unexpected byte 0x%02x", what, c);
		}

		if (nodes) {
			if (c == '(')
				nodes[node] = (struct cairn_sexp_node){ .is_list = 1 };
			if (depth > 0) {
				size_t parent = open[depth - 1];
				if (last[depth - 1] == CAIRN_SEXP_NONE)
					nodes[parent].first = node;
				else
					nodes[last[depth - 1]].next = node;
				last[depth - 1] = node;
				nodes[parent].count++;
			}
		}
		n++;
		if (c == '(') {
			open[depth] = node;
			last[depth] = CAIRN_SEXP_NONE;
			depth++;
		}
	}
	if (!done)
		return cairn_error_set(err, code, "%s: %s", what,
				       n == 0 ? "empty s-expression" : "unbalanced '('");
	*count = n;
	return 0;
}

int cairn_sexp_index(uint8_t *canon, size_t canon_len, int code, const char *what,
		     struct cairn_sexp *out, struct cairn_error *err)
{
	struct cairn_sexp sx = { .canon = canon, .canon_len = canon_len };
	size_t count = 0;
	int rc = sexp_walk(canon, canon_len, NULL, &count, code, what, err);
	if (rc < 0)
		goto out;
	/* count <= canon_len / 2 (every node takes at least two bytes). */
	sx.nodes = calloc(count, sizeof(*sx.nodes));
	if (!sx.nodes) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
		goto out;
	}
	rc = sexp_walk(canon, canon_len, sx.nodes, &sx.n_nodes, code, what, err);
	if (rc < 0)
		goto out;
	*out = sx;
	return 0;
out:
	cairn_sexp_release(&sx);
	return rc;
}

int cairn_sexp_parse(const char *text, size_t len, size_t max_len, int code, const char *what,
		     struct cairn_sexp *out, struct cairn_error *err)
{
	gcry_sexp_t s = NULL;
	uint8_t *canon = NULL;
	size_t clen = 0;
	int rc;

	if (len == 0)
		return cairn_error_set(err, code, "%s: empty", what);
	if (len > max_len)
		return cairn_error_set(err, CAIRN_ELIMIT, "%s: %zu bytes, more than the %zu allowed",
				       what, len, max_len);
	gcry_error_t ge = gcry_sexp_sscan(&s, NULL, text, len);
	if (ge) {
		if (gcry_err_code(ge) == GPG_ERR_ENOMEM)
			return cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
		return cairn_error_set(err, code, "%s: not an s-expression: %s", what,
				       gcry_strerror(ge));
	}
	/* Some inputs (empty text, a bare atom) parse to nothing. */
	if (!s)
		return cairn_error_set(err, code, "%s: not an s-expression", what);
	clen = gcry_sexp_sprint(s, GCRYSEXP_FMT_CANON, NULL, 0);
	if (clen == 0) {
		rc = cairn_error_set(err, code, "%s: cannot print s-expression", what);
		goto out;
	}
	canon = malloc(clen);
	if (!canon) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", what);
		goto out;
	}
	/* gcry_sexp_sprint's length includes room for a NUL it may not write. */
	size_t got = gcry_sexp_sprint(s, GCRYSEXP_FMT_CANON, (char *)canon, clen);
	if (got == 0 || got > clen) {
		sodium_memzero(canon, clen);
		free(canon);
		rc = cairn_error_set(err, code, "%s: cannot print s-expression", what);
		goto out;
	}
	rc = cairn_sexp_index(canon, got, code, what, out, err);
out:
	gcry_sexp_release(s);
	return rc;
}

void cairn_sexp_release(struct cairn_sexp *sx)
{
	if (sx->canon) {
		sodium_memzero(sx->canon, sx->canon_len);
		free(sx->canon);
	}
	free(sx->nodes);
	*sx = (struct cairn_sexp){ 0 };
}

size_t cairn_sexp_nth(const struct cairn_sexp *sx, size_t node, size_t i)
{
	if (node >= sx->n_nodes || !sx->nodes[node].is_list)
		return CAIRN_SEXP_NONE;
	size_t c = sx->nodes[node].first;
	while (c != CAIRN_SEXP_NONE && i > 0) {
		c = sx->nodes[c].next;
		i--;
	}
	return c;
}

int cairn_sexp_atom_is(const struct cairn_sexp *sx, size_t node, const char *s)
{
	if (node == CAIRN_SEXP_NONE || node >= sx->n_nodes || sx->nodes[node].is_list)
		return 0;
	size_t n = strlen(s);
	return sx->nodes[node].len == n && memcmp(sx->nodes[node].data, s, n) == 0;
}

int cairn_sexp_list_is(const struct cairn_sexp *sx, size_t node, const char *name)
{
	if (node >= sx->n_nodes || !sx->nodes[node].is_list)
		return 0;
	return cairn_sexp_atom_is(sx, sx->nodes[node].first, name);
}

size_t cairn_sexp_find(const struct cairn_sexp *sx, size_t node, const char *name, int *dup)
{
	size_t found = CAIRN_SEXP_NONE;
	*dup = 0;
	if (node >= sx->n_nodes || !sx->nodes[node].is_list)
		return CAIRN_SEXP_NONE;
	for (size_t c = sx->nodes[node].first; c != CAIRN_SEXP_NONE; c = sx->nodes[c].next) {
		if (cairn_sexp_list_is(sx, c, name)) {
			if (found != CAIRN_SEXP_NONE) {
				*dup = 1;
				break;
			}
			found = c;
		}
	}
	return found;
}
