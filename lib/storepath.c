/*
 * storepath.c - store path parsing, validation and computation.
 * The formats are described in include/cairn/storepath.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/storepath.h"
#include "cairn/banned.h"

/* Longest piece of untrusted input quoted in an error message. */
#define SHOW_MAX 96

/*
 * Copy s[0..len) into a printable, bounded form for an error message: the
 * input may come from the network, and control characters must not reach
 * a terminal.
 */
static const char *show(char *buf, size_t cap, const char *s, size_t len)
{
	size_t o = 0;
	size_t lim = len > SHOW_MAX ? SHOW_MAX : len;
	for (size_t i = 0; i < lim && o + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (len > lim && o + 4 < cap) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

#define SHOWBUF (SHOW_MAX + 8)

static bool is_nix32_char(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return true;
	return c >= 'a' && c <= 'z' && c != 'e' && c != 'o' && c != 'u' && c != 't';
}

static bool is_name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '-' || c == '.' || c == '_' || c == '?' || c == '=';
}

bool cairn_store_hash_valid(const char *s, size_t len)
{
	if (!s || len != CAIRN_STORE_HASH_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!is_nix32_char((unsigned char)s[i]))
			return false;
	return true;
}

/*
 * The name rules, reported as "<what> '<subject>': <rule>" so that a caller
 * parsing a whole path names the path, not just its tail.
 */
static int name_check(const char *name, size_t len, const char *what, const char *subj,
		      size_t subjlen, struct cairn_error *err)
{
	char b[SHOWBUF];
	const char *rule = NULL;
	if (len == 0)
		rule = "name must not be empty";
	else if (len > CAIRN_STORE_NAME_MAX)
		rule = "name is longer than 211 characters";
	else if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
		rule = "name must not be '.' or '..'";
	else if (name[0] == '.' && name[1] == '-')
		rule = "name must not start with '.-' (first component '.')";
	else if (len >= 3 && name[0] == '.' && name[1] == '.' && name[2] == '-')
		rule = "name must not start with '..-' (first component '..')";
	if (rule)
		return cairn_error_set(err, CAIRN_EFORMAT, "%s '%s': %s", what,
				       show(b, sizeof(b), subj, subjlen), rule);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (is_name_char(c))
			continue;
		if (c >= 0x20 && c < 0x7f)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "%s '%s': name contains illegal character '%c'", what,
					       show(b, sizeof(b), subj, subjlen), c);
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "%s '%s': name contains illegal byte 0x%02x", what,
				       show(b, sizeof(b), subj, subjlen), c);
	}
	return 0;
}

int cairn_store_name_check(const char *name, size_t len, struct cairn_error *err)
{
	if (!name)
		return cairn_error_set(err, CAIRN_EINVAL, "store path name: NULL");
	return name_check(name, len, "store path name", name, len, err);
}

static int dir_check(const char *dir, size_t len, const char *what, const char *subj,
		     size_t subjlen, struct cairn_error *err)
{
	char b[SHOWBUF];
	const char *rule = NULL;
	int code = CAIRN_EFORMAT;
	if (len == 0 || dir[0] != '/')
		rule = "store directory must be an absolute path";
	else if (len > CAIRN_STORE_DIR_MAX) {
		rule = "store directory is longer than 512 bytes";
		code = CAIRN_ELIMIT;
	} else if (dir[len - 1] == '/')
		rule = "store directory must not end with '/'";
	for (size_t i = 0; !rule && i < len; i++) {
		unsigned char c = (unsigned char)dir[i];
		if (c < 0x20 || c == 0x7f)
			rule = "store directory contains a control character";
	}
	/* Components: each '/' starts one; the last runs to the end. */
	for (size_t i = 0; !rule && i < len; i++) {
		if (dir[i] != '/')
			continue;
		size_t j = i + 1;
		while (j < len && dir[j] != '/')
			j++;
		size_t clen = j - i - 1;
		if (clen == 0)
			rule = "store directory must not contain '//'";
		else if ((clen == 1 && dir[i + 1] == '.') ||
			 (clen == 2 && dir[i + 1] == '.' && dir[i + 2] == '.'))
			rule = "store directory must not contain '.' or '..' components";
	}
	if (rule)
		return cairn_error_set(err, code, "%s '%s': %s", what,
				       show(b, sizeof(b), subj, subjlen), rule);
	return 0;
}

int cairn_store_dir_check(const char *dir, size_t len, struct cairn_error *err)
{
	if (!dir)
		return cairn_error_set(err, CAIRN_EINVAL, "store directory: NULL");
	return dir_check(dir, len, "store directory", dir, len, err);
}

/* Parse the basename base[0..blen) of subj (the whole input, for messages). */
static int parse_base(const char *base, size_t blen, const char *subj, size_t subjlen,
		      struct cairn_store_path *out, struct cairn_error *err)
{
	char b[SHOWBUF];
	if (blen < CAIRN_STORE_HASH_LEN + 2)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "store path '%s': too short for '<32-char hash>-<name>'",
				       show(b, sizeof(b), subj, subjlen));
	for (size_t i = 0; i < CAIRN_STORE_HASH_LEN; i++) {
		unsigned char c = (unsigned char)base[i];
		if (!is_nix32_char(c))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "store path '%s': hash part has a character outside Nix base32 at position %zu",
					       show(b, sizeof(b), subj, subjlen), i);
	}
	if (base[CAIRN_STORE_HASH_LEN] != '-')
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "store path '%s': no '-' after the 32-character hash part",
				       show(b, sizeof(b), subj, subjlen));
	const char *name = base + CAIRN_STORE_HASH_LEN + 1;
	size_t nlen = blen - CAIRN_STORE_HASH_LEN - 1;
	int rc = name_check(name, nlen, "store path", subj, subjlen, err);
	if (rc)
		return rc;
	memcpy(out->hash, base, CAIRN_STORE_HASH_LEN);
	out->hash[CAIRN_STORE_HASH_LEN] = '\0';
	memcpy(out->name, name, nlen);
	out->name[nlen] = '\0';
	return 0;
}

int cairn_store_path_parse_base(const char *s, size_t len, struct cairn_store_path *out,
				struct cairn_error *err)
{
	if (!s || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "store path: NULL argument");
	struct cairn_store_path p;
	int rc = parse_base(s, len, s, len, &p, err);
	if (rc == 0)
		*out = p;
	return rc;
}

int cairn_store_path_parse(const char *s, size_t len, const char *storedir,
			   struct cairn_store_path *out, struct cairn_error *err)
{
	char b[SHOWBUF];
	if (!s || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "store path: NULL argument");
	size_t dlen;
	if (storedir) {
		dlen = strlen(storedir);
		if (len <= dlen || memcmp(s, storedir, dlen) != 0 || s[dlen] != '/')
			return cairn_error_set(err, CAIRN_EFORMAT, "store path '%s': not in '%s'",
					       show(b, sizeof(b), s, len), storedir);
		if (memchr(s + dlen + 1, '/', len - dlen - 1))
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "store path '%s': not directly in '%s'",
					       show(b, sizeof(b), s, len), storedir);
	} else {
		const char *slash = memrchr(s, '/', len);
		if (!slash)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "store path '%s': not an absolute path",
					       show(b, sizeof(b), s, len));
		dlen = (size_t)(slash - s);
		int rc = dir_check(s, dlen, "store path", s, len, err);
		if (rc)
			return rc;
	}
	struct cairn_store_path p;
	int rc = parse_base(s + dlen + 1, len - dlen - 1, s, len, &p, err);
	if (rc == 0)
		*out = p;
	return rc;
}

size_t cairn_store_path_base_len(const struct cairn_store_path *p)
{
	return CAIRN_STORE_HASH_LEN + 1 + strnlen(p->name, sizeof(p->name));
}

int cairn_store_path_format(const struct cairn_store_path *p, const char *storedir,
			    char *out, size_t outcap)
{
	size_t dlen = storedir ? strlen(storedir) : 0;
	size_t nlen = strnlen(p->name, sizeof(p->name));
	size_t hlen = strnlen(p->hash, sizeof(p->hash));
	if (hlen != CAIRN_STORE_HASH_LEN || nlen > CAIRN_STORE_NAME_MAX)
		return CAIRN_EINVAL;
	size_t total = (storedir ? dlen + 1 : 0) + hlen + 1 + nlen;
	if (total >= outcap || total > (size_t)INT32_MAX)
		return CAIRN_ELIMIT;
	char *o = out;
	if (storedir) {
		memcpy(o, storedir, dlen);
		o += dlen;
		*o++ = '/';
	}
	memcpy(o, p->hash, hlen);
	o += hlen;
	*o++ = '-';
	memcpy(o, p->name, nlen);
	o[nlen] = '\0';
	return (int)total;
}

int cairn_store_path_cmp(const struct cairn_store_path *a, const struct cairn_store_path *b)
{
	/* Equal-length hash parts, so this is the order of the basenames. */
	int c = strncmp(a->hash, b->hash, sizeof(a->hash));
	if (c)
		return c;
	return strncmp(a->name, b->name, sizeof(a->name));
}

int cairn_store_path_digest(const struct cairn_store_path *p,
			    uint8_t out[CAIRN_STORE_DIGEST_LEN])
{
	if (!cairn_store_hash_valid(p->hash, strnlen(p->hash, sizeof(p->hash))))
		return CAIRN_EFORMAT;
	return cairn_nix32_decode(p->hash, CAIRN_STORE_HASH_LEN, out, CAIRN_STORE_DIGEST_LEN);
}

/* ---- computing store paths ---- */

static bool path_struct_valid(const struct cairn_store_path *p)
{
	size_t nlen = strnlen(p->name, sizeof(p->name));
	return cairn_store_hash_valid(p->hash, strnlen(p->hash, sizeof(p->hash))) &&
	       nlen <= CAIRN_STORE_NAME_MAX && name_check(p->name, nlen, "", "", 0, NULL) == 0;
}

static int cmp_ptr(const void *a, const void *b)
{
	return cairn_store_path_cmp(*(const struct cairn_store_path *const *)a,
				    *(const struct cairn_store_path *const *)b);
}

static void sha_puts(struct cairn_sha256 *ctx, const char *s)
{
	cairn_sha256_update(ctx, s, strlen(s));
}

/*
 * makeStorePath with makeType's references folded into the type: hashes
 * "<type>[:<storedir>/<ref>...][:self]:<algo>:<hex>:<storedir>:<name>"
 * without building the string.  References equal to skip are left out
 * (the caller turned them into the self flag).
 */
static int make_path(const char *type, const struct cairn_store_path *refs, size_t nrefs,
		     const struct cairn_store_path *skip, bool self,
		     const struct cairn_hash *inner, const char *name, const char *storedir,
		     struct cairn_store_path *out, struct cairn_error *err)
{
	const struct cairn_store_path **sorted = NULL;
	struct cairn_sha256 ctx = { 0 };
	int rc;

	if (!type || !inner || !name || !storedir || !out || (nrefs && !refs)) {
		rc = cairn_error_set(err, CAIRN_EINVAL, "store path: NULL argument");
		goto out;
	}
	size_t nlen = strlen(name);
	rc = cairn_store_dir_check(storedir, strlen(storedir), err);
	if (rc)
		goto out;
	rc = cairn_store_name_check(name, nlen, err);
	if (rc)
		goto out;
	const char *algo = cairn_hash_algo_name(inner->algo);
	if (!algo || inner->len != cairn_hash_algo_len(inner->algo)) {
		rc = cairn_error_set(err, CAIRN_EINVAL, "store path '%s': bad inner hash", name);
		goto out;
	}
	if (nrefs > CAIRN_STORE_REFS_MAX) {
		rc = cairn_error_set(err, CAIRN_ELIMIT,
				     "store path '%s': %zu references, more than %d", name, nrefs,
				     CAIRN_STORE_REFS_MAX);
		goto out;
	}
	if (nrefs) {
		sorted = calloc(nrefs, sizeof(*sorted));
		if (!sorted) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
			goto out;
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < nrefs; i++) {
		if (!path_struct_valid(&refs[i])) {
			rc = cairn_error_set(err, CAIRN_EINVAL,
					     "store path '%s': reference %zu is not a valid store path",
					     name, i);
			goto out;
		}
		if (skip && cairn_store_path_cmp(&refs[i], skip) == 0)
			continue;
		sorted[n++] = &refs[i];
	}
	if (n > 1)
		qsort(sorted, n, sizeof(*sorted), cmp_ptr);

	rc = cairn_sha256_init(&ctx);
	if (rc) {
		cairn_error_set(err, rc, "store path '%s': cannot start SHA-256", name);
		goto out;
	}
	sha_puts(&ctx, type);
	for (size_t i = 0; i < n; i++) {
		/* A set in Nix: a reference listed twice counts once. */
		if (i > 0 && cairn_store_path_cmp(sorted[i - 1], sorted[i]) == 0)
			continue;
		char p[CAIRN_STORE_PATH_MAX];
		int plen = cairn_store_path_format(sorted[i], storedir, p, sizeof(p));
		if (plen < 0) {
			rc = cairn_error_set(err, plen, "store path '%s': cannot print reference",
					     name);
			goto out;
		}
		cairn_sha256_update(&ctx, ":", 1);
		cairn_sha256_update(&ctx, p, (size_t)plen);
	}
	if (self)
		sha_puts(&ctx, ":self");
	char hex[2 * CAIRN_HASH_MAX_LEN];
	cairn_base16_encode(inner->digest, inner->len, hex);
	cairn_sha256_update(&ctx, ":", 1);
	sha_puts(&ctx, algo);
	cairn_sha256_update(&ctx, ":", 1);
	cairn_sha256_update(&ctx, hex, 2 * inner->len);
	cairn_sha256_update(&ctx, ":", 1);
	sha_puts(&ctx, storedir);
	cairn_sha256_update(&ctx, ":", 1);
	cairn_sha256_update(&ctx, name, nlen);

	uint8_t full[CAIRN_SHA256_LEN], folded[CAIRN_STORE_DIGEST_LEN] = { 0 };
	cairn_sha256_final(&ctx, full);
	for (size_t i = 0; i < sizeof(full); i++)
		folded[i % CAIRN_STORE_DIGEST_LEN] ^= full[i];
	cairn_nix32_encode(folded, CAIRN_STORE_DIGEST_LEN, out->hash);
	out->hash[CAIRN_STORE_HASH_LEN] = '\0';
	memcpy(out->name, name, nlen + 1);
	rc = 0;
out:
	cairn_sha256_release(&ctx);
	free(sorted);
	return rc;
}

int cairn_store_path_make(const char *type, const struct cairn_hash *inner, const char *name,
			  const char *storedir, struct cairn_store_path *out,
			  struct cairn_error *err)
{
	return make_path(type, NULL, 0, NULL, false, inner, name, storedir, out, err);
}

/* ---- content addresses ---- */

static const char *ca_method_prefix(enum cairn_ca_method m)
{
	switch (m) {
	case CAIRN_CA_TEXT: return "text:";
	case CAIRN_CA_FLAT: return "fixed:";
	case CAIRN_CA_NAR: return "fixed:r:";
	case CAIRN_CA_GIT: return "fixed:git:";
	}
	return NULL;
}

static bool has_prefix(const char **p, size_t *len, const char *pre)
{
	size_t n = strlen(pre);
	if (*len < n || memcmp(*p, pre, n) != 0)
		return false;
	*p += n;
	*len -= n;
	return true;
}

int cairn_ca_parse(const char *s, size_t len, struct cairn_ca *out, struct cairn_error *err)
{
	char b[SHOWBUF];
	struct cairn_ca ca;
	const char *p = s;
	size_t rest = len;

	if (!s || !out)
		return cairn_error_set(err, CAIRN_EINVAL, "content address: NULL argument");
	memset(&ca, 0, sizeof(ca));
	if (has_prefix(&p, &rest, "text:"))
		ca.method = CAIRN_CA_TEXT;
	else if (has_prefix(&p, &rest, "fixed:r:"))
		ca.method = CAIRN_CA_NAR;
	else if (has_prefix(&p, &rest, "fixed:git:"))
		ca.method = CAIRN_CA_GIT;
	else if (has_prefix(&p, &rest, "fixed:"))
		ca.method = CAIRN_CA_FLAT;
	else
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address '%s': does not start with 'text:' or 'fixed:'",
				       show(b, sizeof(b), s, len));
	const char *colon = memchr(p, ':', rest);
	if (!colon)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address '%s': no '<algo>:' before the hash",
				       show(b, sizeof(b), s, len));
	enum cairn_hash_algo algo = cairn_hash_algo_parse(p, (size_t)(colon - p));
	if (!algo)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address '%s': unknown hash algorithm",
				       show(b, sizeof(b), s, len));
	if (ca.method == CAIRN_CA_TEXT && algo != CAIRN_HASH_SHA256)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address '%s': text addresses use sha256",
				       show(b, sizeof(b), s, len));
	const char *body = colon + 1;
	size_t blen = rest - (size_t)(body - p);
	/* Nix takes the bare hash only: no second prefix, no SRI form. */
	if (memchr(body, ':', blen) || memchr(body, '-', blen) ||
	    cairn_hash_parse(body, blen, algo, &ca.hash, NULL) != 0 || ca.hash.algo != algo)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address '%s': not a %s hash in nix32, base16 or base64",
				       show(b, sizeof(b), s, len), cairn_hash_algo_name(algo));
	*out = ca;
	return 0;
}

int cairn_ca_format(const struct cairn_ca *ca, char *out, size_t outcap)
{
	const char *pre = ca_method_prefix(ca->method);
	char h[CAIRN_HASH_STR_MAX];
	if (!pre)
		return CAIRN_EINVAL;
	int hl = cairn_hash_format(&ca->hash, CAIRN_HASH_NIX32, h, sizeof(h));
	if (hl < 0)
		return hl;
	size_t plen = strlen(pre);
	if (plen + (size_t)hl + 1 > outcap)
		return CAIRN_ELIMIT;
	memcpy(out, pre, plen);
	memcpy(out + plen, h, (size_t)hl + 1);
	return (int)(plen + (size_t)hl);
}

static int ca_path(const struct cairn_ca *ca, const char *name,
		   const struct cairn_store_path *refs, size_t nrefs,
		   const struct cairn_store_path *skip, bool self, const char *storedir,
		   struct cairn_store_path *out, struct cairn_error *err)
{
	char b[SHOWBUF];
	const char *pre = ca ? ca_method_prefix(ca->method) : NULL;
	if (!pre || !name)
		return cairn_error_set(err, CAIRN_EINVAL, "content address: bad argument");
	const char *nm = show(b, sizeof(b), name, strlen(name));
	enum cairn_hash_algo algo = ca->hash.algo;

	if (ca->method == CAIRN_CA_TEXT) {
		if (algo != CAIRN_HASH_SHA256)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "content address of '%s': text addresses use sha256", nm);
		if (self)
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "content address of '%s': a text path cannot refer to itself",
					       nm);
		return make_path("text", refs, nrefs, skip, false, &ca->hash, name, storedir, out,
				 err);
	}
	if (ca->method == CAIRN_CA_NAR && algo == CAIRN_HASH_SHA256)
		return make_path("source", refs, nrefs, skip, self, &ca->hash, name, storedir,
				 out, err);
	if (ca->method == CAIRN_CA_GIT && algo != CAIRN_HASH_SHA1 && algo != CAIRN_HASH_SHA256)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address of '%s': git hashing uses sha1 or sha256", nm);
	size_t others = nrefs;
	for (size_t i = 0; skip && i < nrefs; i++)
		if (cairn_store_path_cmp(&refs[i], skip) == 0)
			others--;
	if (others || self)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "content address of '%s': a %s path cannot have references",
				       nm, ca->method == CAIRN_CA_FLAT ? "flat fixed-output"
								       : "non-sha256 fixed-output");

	/* The inner hash of "output:out" is itself a hash of the CA. */
	const char *algoname = cairn_hash_algo_name(algo);
	if (!algoname || ca->hash.len != cairn_hash_algo_len(algo))
		return cairn_error_set(err, CAIRN_EINVAL, "content address of '%s': bad hash", nm);
	char payload[64 + 2 * CAIRN_HASH_MAX_LEN];
	size_t pl = 0;
	const char *mp = ca->method == CAIRN_CA_NAR ? "r:" : ca->method == CAIRN_CA_GIT ? "git:" : "";
	pl = (size_t)snprintf(payload, sizeof(payload), "fixed:out:%s%s:", mp, algoname);
	cairn_base16_encode(ca->hash.digest, ca->hash.len, payload + pl);
	pl += 2 * ca->hash.len;
	payload[pl++] = ':';
	struct cairn_hash inner;
	cairn_hash_sha256(&inner, payload, pl);
	return make_path("output:out", NULL, 0, NULL, false, &inner, name, storedir, out, err);
}

int cairn_ca_make_path(const struct cairn_ca *ca, const char *name,
		       const struct cairn_store_refs *refs, const char *storedir,
		       struct cairn_store_path *out, struct cairn_error *err)
{
	struct cairn_store_path p;
	int rc = ca_path(ca, name, refs ? refs->others : NULL, refs ? refs->n : 0, NULL,
			 refs ? refs->self : false, storedir, &p, err);
	if (rc == 0 && out)
		*out = p;
	return rc;
}

int cairn_ca_check_path(const struct cairn_ca *ca, const struct cairn_store_path *path,
			const struct cairn_store_path *refs, size_t nrefs, const char *storedir,
			struct cairn_error *err)
{
	if (!ca || !path || !storedir || (nrefs && !refs))
		return cairn_error_set(err, CAIRN_EINVAL, "content address: NULL argument");
	bool self = false;
	for (size_t i = 0; i < nrefs; i++)
		if (cairn_store_path_cmp(&refs[i], path) == 0)
			self = true;
	struct cairn_store_path got;
	int rc = ca_path(ca, path->name, refs, nrefs, path, self, storedir, &got, err);
	if (rc)
		return rc;
	if (cairn_store_path_cmp(&got, path) != 0) {
		char cas[CAIRN_CA_STR_MAX];
		if (cairn_ca_format(ca, cas, sizeof(cas)) < 0)
			cas[0] = '\0';
		return cairn_error_set(err, CAIRN_EHASH,
				       "store path '%s-%s' does not match content address '%s' (it gives '%s-%s')",
				       path->hash, path->name, cas, got.hash, got.name);
	}
	return 0;
}

void cairn_ca_verify_release(struct cairn_ca_verify *v)
{
	cairn_sha256_release(&v->sha);
	free(v->offsets);
	v->offsets = NULL;
	v->offsets_len = v->offsets_cap = 0;
}

int cairn_ca_verify_init(struct cairn_ca_verify *v, const struct cairn_ca *ca,
			 const struct cairn_store_path *path, struct cairn_error *err)
{
	if (!v || !ca || !path)
		return cairn_error_set(err, CAIRN_EINVAL, "content address: NULL argument");
	char cas[CAIRN_CA_STR_MAX];
	if (cairn_ca_format(ca, cas, sizeof(cas)) < 0 || !path_struct_valid(path))
		return cairn_error_set(err, CAIRN_EINVAL, "content address: bad argument");
	if (ca->method == CAIRN_CA_GIT || ca->hash.algo != CAIRN_HASH_SHA256)
		return cairn_error_set(err, CAIRN_EUNSUPPORTED,
				       "content address '%s': only sha256 flat, NAR and text content is checked",
				       cas);
	memset(v, 0, sizeof(*v));
	int rc = cairn_sha256_init(&v->sha);
	if (rc)
		return cairn_error_set(err, rc, "content address: cannot start SHA-256");
	v->want = ca->hash;
	memcpy(v->modulus, path->hash, CAIRN_STORE_HASH_LEN);
	return 0;
}

static int verify_note(struct cairn_ca_verify *v, uint64_t at, struct cairn_error *err)
{
	char s[32];
	int n = snprintf(s, sizeof(s), "|%llu", (unsigned long long)at);
	size_t need = v->offsets_len + (size_t)n;
	if (need > (size_t)CAIRN_CA_SELF_REFS_MAX * 21)
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "content address: more than %d self-references",
				       CAIRN_CA_SELF_REFS_MAX);
	if (need > v->offsets_cap) {
		size_t cap = v->offsets_cap ? v->offsets_cap * 2 : 256;
		while (cap < need)
			cap *= 2;
		char *p = realloc(v->offsets, cap);
		if (!p)
			return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
		v->offsets = p;
		v->offsets_cap = cap;
	}
	memcpy(v->offsets + v->offsets_len, s, (size_t)n);
	v->offsets_len = need;
	return 0;
}

/*
 * Scan tail + data in blocks; an occurrence found is zeroed, so it cannot
 * match again, and the last 31 bytes wait for the next call because an
 * occurrence may straddle the boundary.
 */
int cairn_ca_verify_update(struct cairn_ca_verify *v, const void *data, size_t len,
			   struct cairn_error *err)
{
	enum { BLOCK = 8192, KEEP = CAIRN_STORE_HASH_LEN - 1 };
	unsigned char buf[KEEP + BLOCK];
	const unsigned char *in = data;
	while (len > 0) {
		size_t take = len < BLOCK ? len : BLOCK;
		memcpy(buf, v->tail, v->tail_len);
		memcpy(buf + v->tail_len, in, take);
		size_t blen = v->tail_len + take;
		in += take;
		len -= take;
		size_t j = 0;
		while (blen - j >= CAIRN_STORE_HASH_LEN) {
			unsigned char *hit = memmem(buf + j, blen - j, v->modulus,
						    CAIRN_STORE_HASH_LEN);
			if (!hit)
				break;
			size_t at = (size_t)(hit - buf);
			int rc = verify_note(v, v->pos + at, err);
			if (rc)
				return rc;
			memset(hit, 0, CAIRN_STORE_HASH_LEN);
			j = at + CAIRN_STORE_HASH_LEN;
		}
		size_t keep = blen < KEEP ? blen : KEEP;
		size_t done = blen - keep;
		cairn_sha256_update(&v->sha, buf, done);
		v->pos += done;
		memcpy(v->tail, buf + done, keep);
		v->tail_len = keep;
	}
	return 0;
}

int cairn_ca_verify_final(struct cairn_ca_verify *v, struct cairn_error *err)
{
	cairn_sha256_update(&v->sha, v->tail, v->tail_len);
	v->pos += v->tail_len;
	v->tail_len = 0;
	if (v->offsets_len)
		cairn_sha256_update(&v->sha, v->offsets, v->offsets_len);
	struct cairn_hash got = { .algo = CAIRN_HASH_SHA256, .len = CAIRN_SHA256_LEN };
	cairn_sha256_final(&v->sha, got.digest);
	int rc = 0;
	if (!cairn_hash_equal(&got, &v->want)) {
		char a[CAIRN_HASH_STR_MAX], b[CAIRN_HASH_STR_MAX];
		cairn_hash_format(&v->want, CAIRN_HASH_NIX32, a, sizeof(a));
		cairn_hash_format(&got, CAIRN_HASH_NIX32, b, sizeof(b));
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "content address hash %s does not match the content (%s)", a, b);
	}
	cairn_ca_verify_release(v);
	return rc;
}
