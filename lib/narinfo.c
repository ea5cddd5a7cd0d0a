/*
 * narinfo.c - parse, build and print narinfo files of both dialects.
 *
 * The layout and the round-trip rule are in include/cairn/narinfo.h.  A
 * parsed narinfo keeps two views: the decoded fields that callers read, and
 * its lines as read, which are what gets printed, so that a narinfo passes
 * through cairn byte for byte and Guix's text signature keeps verifying.
 */
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "cairn/storepath.h"
#include "narinfo-int.h"
#include "cairn/banned.h"


static char *xstrndup(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static int nomem(struct cairn_error *err)
{
	return cairn_error_set(err, CAIRN_ENOMEM, "narinfo: out of memory");
}

int cairn_narinfo_check_basename(const char *s, size_t len, struct cairn_error *err)
{
	struct cairn_store_path sp;
	return cairn_store_path_parse_base(s, len, &sp, err);
}

/* A full store path under any valid store directory. */
static int check_store_path(const char *s, size_t len, struct cairn_error *err)
{
	struct cairn_store_path sp;
	return cairn_store_path_parse(s, len, NULL, &sp, err);
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	if (len == 0 || len > 20)
		return CAIRN_EFORMAT;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return CAIRN_EFORMAT;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return CAIRN_EFORMAT;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static void field_release(struct cairn_narinfo_field *f)
{
	free(f->name);
	free(f->value);
}

static void url_release(struct cairn_narinfo_url *u)
{
	free(u->url);
	free(u->compression);
}

void cairn_narinfo_free(struct cairn_narinfo *ni)
{
	if (!ni)
		return;
	free(ni->store_path);
	for (size_t i = 0; i < ni->n_refs; i++)
		free(ni->refs[i]);
	free(ni->refs);
	free(ni->deriver);
	free(ni->system);
	free(ni->ca);
	for (size_t i = 0; i < ni->n_sigs; i++)
		free(ni->sigs[i]);
	free(ni->sigs);
	free(ni->signature);
	for (size_t i = 0; i < ni->n_urls; i++)
		url_release(&ni->urls[i]);
	free(ni->urls);
	for (size_t i = 0; i < ni->n_unknown; i++)
		field_release(&ni->unknown[i]);
	free(ni->unknown);
	free(ni->raw_);
	for (size_t i = 0; i < ni->n_lines_; i++)
		field_release(&ni->lines_[i]);
	free(ni->lines_);
	free(ni);
}

/* Grow *arr (element size sz) to hold n+1 elements. */
static int grow(void *arr, size_t n, size_t sz)
{
	void **p = arr;
	if (n > SIZE_MAX / sz - 1)
		return CAIRN_ENOMEM;
	void *q = realloc(*p, (n + 1) * sz);
	if (!q)
		return CAIRN_ENOMEM;
	*p = q;
	return 0;
}

static int push_field(struct cairn_narinfo_field **arr, size_t *n, const char *name, size_t nlen,
		      const char *value, size_t vlen)
{
	if (grow(arr, *n, sizeof(**arr)))
		return CAIRN_ENOMEM;
	char *a = xstrndup(name, nlen), *b = xstrndup(value, vlen);
	if (!a || !b) {
		free(a);
		free(b);
		return CAIRN_ENOMEM;
	}
	(*arr)[*n].name = a;
	(*arr)[*n].value = b;
	(*n)++;
	return 0;
}

static int push_str(char ***arr, size_t *n, const char *s, size_t len)
{
	if (grow(arr, *n, sizeof(**arr)))
		return CAIRN_ENOMEM;
	char *p = xstrndup(s, len);
	if (!p)
		return CAIRN_ENOMEM;
	(*arr)[(*n)++] = p;
	return 0;
}

static int new_url_group(struct cairn_narinfo *ni, struct cairn_error *err)
{
	if (ni->n_urls >= CAIRN_NARINFO_MAX_URLS)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: more than %d URL groups",
				       CAIRN_NARINFO_MAX_URLS);
	if (grow(&ni->urls, ni->n_urls, sizeof(*ni->urls)))
		return nomem(err);
	memset(&ni->urls[ni->n_urls], 0, sizeof(*ni->urls));
	ni->n_urls++;
	return 0;
}

enum group_field { G_COMPRESSION, G_FILEHASH, G_FILESIZE };

static bool group_has(const struct cairn_narinfo_url *u, enum group_field f)
{
	switch (f) {
	case G_COMPRESSION: return u->has_compression;
	case G_FILEHASH: return u->has_file_hash;
	case G_FILESIZE: return u->has_file_size;
	}
	return true;
}

/* The group a Compression/FileHash/FileSize line belongs to. */
static int group_for(struct cairn_narinfo *ni, enum group_field f, struct cairn_narinfo_url **out,
		     struct cairn_error *err)
{
	if (ni->n_urls == 0 || group_has(&ni->urls[ni->n_urls - 1], f)) {
		int rc = new_url_group(ni, err);
		if (rc)
			return rc;
	}
	*out = &ni->urls[ni->n_urls - 1];
	return 0;
}

static int dup_field(const char *name, struct cairn_error *err)
{
	return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: duplicate %s field", name);
}

static bool is(const char *name, size_t nlen, const char *lit)
{
	return strlen(lit) == nlen && memcmp(name, lit, nlen) == 0;
}

static int parse_refs(struct cairn_narinfo *ni, const char *v, size_t vlen, struct cairn_error *err)
{
	size_t i = 0;
	while (i < vlen) {
		if (v[i] == ' ') {
			i++;
			continue;
		}
		size_t j = i;
		while (j < vlen && v[j] != ' ')
			j++;
		if (ni->n_refs >= CAIRN_NARINFO_MAX_REFS)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "narinfo: more than %d references",
					       CAIRN_NARINFO_MAX_REFS);
		int rc = cairn_narinfo_check_basename(v + i, j - i, err);
		if (rc)
			return rc;
		if (push_str(&ni->refs, &ni->n_refs, v + i, j - i))
			return nomem(err);
		i = j;
	}
	ni->has_references = true;
	return 0;
}

static int parse_hash_field(const char *name, const char *v, size_t vlen, struct cairn_hash *out,
			    struct cairn_error *err)
{
	struct cairn_error e2;
	cairn_error_init(&e2);
	if (cairn_hash_parse(v, vlen, 0, out, &e2) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: bad %s: %s", name,
				       cairn_error_msg(&e2));
	return 0;
}

/* Was a field of this name on an earlier line?  (lines_ holds those only.) */
static bool line_seen(const struct cairn_narinfo *ni, const char *name)
{
	for (size_t i = 0; i < ni->n_lines_; i++)
		if (!strcmp(ni->lines_[i].name, name))
			return true;
	return false;
}

/* Decode one line into the fields. */
static int parse_line(struct cairn_narinfo *ni, const char *name, size_t nlen, const char *v,
		      size_t vlen, struct cairn_error *err)
{
	int rc = 0;
	uint64_t n;
	struct cairn_narinfo_url *g;

	if (is(name, nlen, "StorePath")) {
		if (ni->store_path)
			return dup_field("StorePath", err);
		if ((rc = check_store_path(v, vlen, err)))
			return rc;
		if (!(ni->store_path = xstrndup(v, vlen)))
			return nomem(err);
	} else if (is(name, nlen, "URL")) {
		if (vlen == 0)
			return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: empty URL");
		if (ni->n_urls == 0 || ni->urls[ni->n_urls - 1].url) {
			if ((rc = new_url_group(ni, err)))
				return rc;
		}
		if (!(ni->urls[ni->n_urls - 1].url = xstrndup(v, vlen)))
			return nomem(err);
	} else if (is(name, nlen, "Compression")) {
		if ((rc = group_for(ni, G_COMPRESSION, &g, err)))
			return rc;
		if (vlen == 0)
			return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: empty Compression");
		if (!(g->compression = xstrndup(v, vlen)))
			return nomem(err);
		g->has_compression = true;
	} else if (is(name, nlen, "FileHash")) {
		struct cairn_hash h;
		if ((rc = parse_hash_field("FileHash", v, vlen, &h, err)))
			return rc;
		if ((rc = group_for(ni, G_FILEHASH, &g, err)))
			return rc;
		g->file_hash = h;
		g->has_file_hash = true;
	} else if (is(name, nlen, "FileSize")) {
		if (parse_u64(v, vlen, &n))
			return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: invalid FileSize");
		if ((rc = group_for(ni, G_FILESIZE, &g, err)))
			return rc;
		g->file_size = n;
		g->has_file_size = true;
	} else if (is(name, nlen, "NarHash")) {
		if (ni->nar_hash.algo)
			return dup_field("NarHash", err);
		if ((rc = parse_hash_field("NarHash", v, vlen, &ni->nar_hash, err)))
			return rc;
	} else if (is(name, nlen, "NarSize")) {
		if (ni->nar_size)
			return dup_field("NarSize", err);
		if (parse_u64(v, vlen, &n) || n == 0)
			return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: invalid NarSize");
		ni->nar_size = n;
	} else if (is(name, nlen, "References")) {
		if (ni->has_references)
			return dup_field("References", err);
		return parse_refs(ni, v, vlen, err);
	} else if (is(name, nlen, "Deriver")) {
		/* "unknown-deriver" sets no deriver, so look at the lines read so far */
		if (line_seen(ni, "Deriver"))
			return dup_field("Deriver", err);
		if (is(v, vlen, "unknown-deriver"))
			return 0;
		if ((rc = cairn_narinfo_check_basename(v, vlen, err)))
			return rc;
		if (!(ni->deriver = xstrndup(v, vlen)))
			return nomem(err);
	} else if (is(name, nlen, "System")) {
		if (ni->system)
			return dup_field("System", err);
		if (!(ni->system = xstrndup(v, vlen)))
			return nomem(err);
	} else if (is(name, nlen, "Sig")) {
		if (ni->n_sigs >= CAIRN_NARINFO_MAX_SIGS)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "narinfo: more than %d Sig fields",
					       CAIRN_NARINFO_MAX_SIGS);
		if (vlen == 0)
			return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: empty Sig");
		if (push_str(&ni->sigs, &ni->n_sigs, v, vlen))
			return nomem(err);
	} else if (is(name, nlen, "CA")) {
		if (ni->ca)
			return dup_field("CA", err);
		if (!(ni->ca = xstrndup(v, vlen)))
			return nomem(err);
	} else if (is(name, nlen, "Signature")) {
		if (!(ni->signature = xstrndup(v, vlen)))
			return nomem(err);
	} else {
		if (push_field(&ni->unknown, &ni->n_unknown, name, nlen, v, vlen))
			return nomem(err);
	}
	return 0;
}

/* Fields whose value matters for trust: after a Guix Signature line they are not signed. */
static bool unsigned_after_signature(const char *name, size_t nlen)
{
	static const char *const f[] = {"StorePath", "NarHash", "NarSize", "References",
					"Deriver",   "System",	"CA",	   "Signature"};
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (is(name, nlen, f[i]))
			return true;
	return false;
}

static int missing(const struct cairn_narinfo *ni, const char *name, struct cairn_error *err)
{
	if (line_seen(ni, name))
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "narinfo: %s only after Signature, which does not sign it",
				       name);
	return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: %s missing", name);
}

/* Split off the next space-separated token of *v (length *n). */
static bool next_token(const char **v, size_t *n, const char **tok, size_t *tlen)
{
	while (*n && **v == ' ') {
		(*v)++;
		(*n)--;
	}
	if (!*n)
		return false;
	const char *sp = memchr(*v, ' ', *n);
	*tok = *v;
	*tlen = sp ? (size_t)(sp - *v) : *n;
	*v += *tlen;
	*n -= *tlen;
	return true;
}

enum { ALT_SKIP = 1 }; /* a malformed AltURL value */

/* One AltURL value as a URL group: 0, ALT_SKIP or CAIRN_ENOMEM. */
static int alt_group(const char *v, size_t n, struct cairn_narinfo_url *u)
{
	const char *url, *comp, *size, *hash, *extra;
	size_t ul, cl, sl = 0, hl = 0, xl;
	memset(u, 0, sizeof(*u));
	if (!next_token(&v, &n, &url, &ul) || !next_token(&v, &n, &comp, &cl))
		return ALT_SKIP;
	if (next_token(&v, &n, &size, &sl)) {
		if (parse_u64(size, sl, &u->file_size))
			return ALT_SKIP;
		u->has_file_size = true;
		if (next_token(&v, &n, &hash, &hl)) {
			struct cairn_error e2;
			cairn_error_init(&e2);
			if (cairn_hash_parse(hash, hl, 0, &u->file_hash, &e2) != 0)
				return ALT_SKIP;
			u->has_file_hash = true;
		}
	}
	if (next_token(&v, &n, &extra, &xl))
		return ALT_SKIP;
	u->url = xstrndup(url, ul);
	u->compression = xstrndup(comp, cl);
	if (!u->url || !u->compression) {
		url_release(u);
		return CAIRN_ENOMEM;
	}
	u->has_compression = true;
	u->alt = true;
	return 0;
}

/* The AltURL lines as URL groups after the others (narinfo.h). */
static int add_alt_groups(struct cairn_narinfo *ni, struct cairn_error *err)
{
	for (size_t i = 0; i < ni->n_unknown; i++) {
		const struct cairn_narinfo_field *f = &ni->unknown[i];
		if (strcmp(f->name, CAIRN_NARINFO_ALT_URL) != 0 ||
		    ni->n_urls >= CAIRN_NARINFO_MAX_URLS)
			continue;
		struct cairn_narinfo_url u;
		int rc = alt_group(f->value, strlen(f->value), &u);
		if (rc == CAIRN_ENOMEM)
			return nomem(err);
		if (rc)
			continue;
		if (grow(&ni->urls, ni->n_urls, sizeof(*ni->urls))) {
			url_release(&u);
			return nomem(err);
		}
		ni->urls[ni->n_urls++] = u;
	}
	return 0;
}

static int check_complete(struct cairn_narinfo *ni, struct cairn_error *err)
{
	if (!ni->store_path)
		return missing(ni, "StorePath", err);
	if (!ni->nar_hash.algo)
		return missing(ni, "NarHash", err);
	if (!ni->nar_size)
		return missing(ni, "NarSize", err);
	if (ni->n_urls == 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: URL missing");
	for (size_t i = 0; i < ni->n_urls; i++) {
		struct cairn_narinfo_url *u = &ni->urls[i];
		if (!u->url)
			return cairn_error_set(
			    err, CAIRN_EFORMAT,
			    "narinfo: Compression, FileHash or FileSize without URL");
		if (!u->compression && !(u->compression = xstrndup("bzip2", 5)))
			return nomem(err);
	}
	/* after the check: an AltURL alone is no URL for Nix either */
	return add_alt_groups(ni, err);
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > CAIRN_NARINFO_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

static bool value_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

static const char *find_str(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	for (size_t i = 0; i + nl <= len; i++)
		if (hay[i] == needle[0] && memcmp(hay + i, needle, nl) == 0)
			return hay + i;
	return NULL;
}

int cairn_narinfo_parse(const char *text, size_t len, struct cairn_narinfo **out,
			struct cairn_error *err)
{
	int rc = 0;
	size_t line_no = 0;
	struct cairn_narinfo *ni = NULL;

	if (len > CAIRN_NARINFO_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: larger than %u bytes",
				       CAIRN_NARINFO_MAX);
	if (len == 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "narinfo: empty");
	if (text[len - 1] != '\n')
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "narinfo: last line does not end in a newline");
	const char *sigword = find_str(text, len, "Signature:");
	if (sigword && sigword != text && sigword[-1] != '\n')
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "narinfo: 'Signature:' inside a field value");

	ni = calloc(1, sizeof(*ni));
	if (!ni)
		return nomem(err);
	ni->parsed_ = true;

	size_t pos = 0, n_lines = 0;
	while (pos < len) {
		line_no++;
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = (size_t)(nl - line);
		const char *colon = memchr(line, ':', llen);
		if (!colon || (size_t)(colon - line) + 1 >= llen || colon[1] != ' ') {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "narinfo: line %zu: expected 'Name: value'", line_no);
			goto out;
		}
		size_t nlen = (size_t)(colon - line);
		const char *v = colon + 2;
		size_t vlen = llen - nlen - 2;
		if (!name_ok(line, nlen)) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "narinfo: line %zu: bad field name", line_no);
			goto out;
		}
		bool refs = is(line, nlen, "References");
		if (!refs && vlen > CAIRN_NARINFO_VALUE_MAX) {
			rc = cairn_error_set(err, CAIRN_ELIMIT,
					     "narinfo: line %zu: value longer than %d bytes",
					     line_no, CAIRN_NARINFO_VALUE_MAX);
			goto out;
		}
		if (!value_ok(v, vlen)) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "narinfo: line %zu: control character in value",
					     line_no);
			goto out;
		}
		if (++n_lines > CAIRN_NARINFO_MAX_LINES) {
			rc = cairn_error_set(err, CAIRN_ELIMIT, "narinfo: more than %d lines",
					     CAIRN_NARINFO_MAX_LINES);
			goto out;
		}
		/*
		 * Guix signs the text before the first "Signature:" and reads
		 * any field in any order after it (Guix 1.4 and later put the
		 * URL groups there, so that baking a compression changes no
		 * signed byte).  After it, URL groups and Nix Sigs (which sign
		 * a fingerprint, not text) are read as usual, unknown fields
		 * are kept; a field that trust rests on is kept as a line but
		 * never used: Guix takes the first of a repeated field, which
		 * is the signed one, and one that only appears here is
		 * unsigned.
		 */
		if (ni->signature && unsigned_after_signature(line, nlen)) {
			/* Kept in lines_ below, for printing; not decoded. */
		} else {
			if (is(line, nlen, "Signature"))
				ni->signed_len_ = pos;
			if ((rc = parse_line(ni, line, nlen, v, vlen, err)))
				goto out;
		}
		if (push_field(&ni->lines_, &ni->n_lines_, line, nlen, v, vlen)) {
			rc = nomem(err);
			goto out;
		}
		pos += llen + 1;
	}
	if ((rc = check_complete(ni, err)))
		goto out;
	if (!(ni->raw_ = xstrndup(text, len))) {
		rc = nomem(err);
		goto out;
	}
	*out = ni;
	ni = NULL;
out:
	cairn_narinfo_free(ni);
	return rc;
}

/* ---- printing ---- */

static int put_line(struct cairn_buf *b, const char *name, const char *value)
{
	int rc = cairn_buf_puts(b, name);
	if (!rc)
		rc = cairn_buf_append(b, ": ", 2);
	if (!rc)
		rc = cairn_buf_puts(b, value);
	if (!rc)
		rc = cairn_buf_putc(b, '\n');
	return rc;
}

static int put_hash(struct cairn_buf *b, const char *name, const struct cairn_hash *h)
{
	char s[CAIRN_HASH_STR_MAX];
	if (cairn_hash_format(h, CAIRN_HASH_NIX32, s, sizeof(s)) < 0)
		return CAIRN_EINVAL;
	return put_line(b, name, s);
}

static int put_u64(struct cairn_buf *b, const char *name, uint64_t v)
{
	return cairn_buf_printf(b, "%s: %llu\n", name, (unsigned long long)v);
}

static int print_canonical(const struct cairn_narinfo *ni, struct cairn_buf *b, bool with_signature)
{
	int rc = put_line(b, "StorePath", ni->store_path);
	for (size_t i = 0; !rc && i < ni->n_urls; i++) {
		const struct cairn_narinfo_url *u = &ni->urls[i];
		rc = put_line(b, "URL", u->url);
		if (!rc && u->has_compression)
			rc = put_line(b, "Compression", u->compression);
		if (!rc && u->has_file_hash)
			rc = put_hash(b, "FileHash", &u->file_hash);
		if (!rc && u->has_file_size)
			rc = put_u64(b, "FileSize", u->file_size);
	}
	if (!rc)
		rc = put_hash(b, "NarHash", &ni->nar_hash);
	if (!rc)
		rc = put_u64(b, "NarSize", ni->nar_size);
	if (!rc && (ni->has_references || ni->n_refs)) {
		rc = cairn_buf_puts(b, "References:");
		for (size_t i = 0; !rc && i < ni->n_refs; i++) {
			rc = cairn_buf_putc(b, ' ');
			if (!rc)
				rc = cairn_buf_puts(b, ni->refs[i]);
		}
		if (!rc && ni->n_refs == 0)
			rc = cairn_buf_putc(b, ' ');
		if (!rc)
			rc = cairn_buf_putc(b, '\n');
	}
	if (!rc && ni->deriver)
		rc = put_line(b, "Deriver", ni->deriver);
	if (!rc && ni->system)
		rc = put_line(b, "System", ni->system);
	for (size_t i = 0; !rc && i < ni->n_sigs; i++)
		rc = put_line(b, "Sig", ni->sigs[i]);
	if (!rc && ni->ca)
		rc = put_line(b, "CA", ni->ca);
	for (size_t i = 0; !rc && i < ni->n_unknown; i++)
		rc = put_line(b, ni->unknown[i].name, ni->unknown[i].value);
	if (!rc && with_signature && ni->signature)
		rc = put_line(b, "Signature", ni->signature);
	return rc;
}

static int print_lines(const struct cairn_narinfo *ni, struct cairn_buf *b, bool with_signature)
{
	int rc = 0;
	for (size_t i = 0; !rc && i < ni->n_lines_; i++) {
		if (!with_signature && !strcmp(ni->lines_[i].name, "Signature"))
			continue;
		rc = put_line(b, ni->lines_[i].name, ni->lines_[i].value);
	}
	return rc;
}

static int print_any(const struct cairn_narinfo *ni, struct cairn_buf *out, bool with_signature,
		     struct cairn_error *err)
{
	int rc = ni->parsed_ ? print_lines(ni, out, with_signature)
			     : print_canonical(ni, out, with_signature);
	if (rc)
		return cairn_error_set(err, rc, "narinfo: cannot print: %s", cairn_strerror(rc));
	return 0;
}

int cairn_narinfo_print(const struct cairn_narinfo *ni, struct cairn_buf *out,
			struct cairn_error *err)
{
	return print_any(ni, out, true, err);
}

int cairn_narinfo_store_dir(const struct cairn_narinfo *ni, char *out, size_t outcap)
{
	const char *slash = strrchr(ni->store_path, '/');
	size_t n = (size_t)(slash - ni->store_path);
	if (n + 1 > outcap)
		return CAIRN_ELIMIT;
	memcpy(out, ni->store_path, n);
	out[n] = '\0';
	return (int)n;
}

const char *cairn_narinfo_signed_text(const struct cairn_narinfo *ni, size_t *len)
{
	if (!ni->signature || !ni->raw_)
		return NULL;
	*len = ni->signed_len_;
	return ni->raw_;
}

/*
 * After a signature change, re-derive the text Guix signs from the lines
 * (for a parsed narinfo, an unchanged one prints its original bytes).
 */
static int refresh_raw(struct cairn_narinfo *ni, struct cairn_error *err)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX * 2);
	int rc = print_any(ni, &b, false, err);
	if (rc)
		goto out;
	size_t signed_len = b.len;
	if (ni->signature && (rc = put_line(&b, "Signature", ni->signature))) {
		rc = cairn_error_set(err, rc, "narinfo: cannot print: %s", cairn_strerror(rc));
		goto out;
	}
	char *raw = cairn_buf_steal(&b, NULL);
	if (!raw) {
		rc = nomem(err);
		goto out;
	}
	free(ni->raw_);
	ni->raw_ = raw;
	ni->signed_len_ = signed_len;
out:
	cairn_buf_release(&b);
	return rc;
}

/* ---- builder ---- */

static int not_parsed(const struct cairn_narinfo *ni, struct cairn_error *err)
{
	if (ni->parsed_)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "narinfo: only signatures of a parsed narinfo can change");
	return 0;
}

int cairn_narinfo_new(const char *store_path, const struct cairn_hash *nar_hash, uint64_t nar_size,
		      struct cairn_narinfo **out, struct cairn_error *err)
{
	size_t len = strlen(store_path);
	int rc = check_store_path(store_path, len, err);
	if (rc)
		return rc;
	if (!nar_hash || !cairn_hash_algo_len(nar_hash->algo) || nar_size == 0)
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: NarHash and NarSize required");
	struct cairn_narinfo *ni = calloc(1, sizeof(*ni));
	if (!ni || !(ni->store_path = xstrndup(store_path, len))) {
		free(ni);
		return nomem(err);
	}
	ni->nar_hash = *nar_hash;
	ni->nar_size = nar_size;
	ni->has_references = true; /* both Nix and Guix always print the line */
	*out = ni;
	return 0;
}

/* A value the builder may print: it must parse back (see the Signature rule). */
static bool builder_value_ok(const char *v, size_t n)
{
	return n <= CAIRN_NARINFO_VALUE_MAX && value_ok(v, n) && !find_str(v, n, "Signature:");
}

static int set_str(char **slot, const char *what, const char *v, struct cairn_error *err)
{
	size_t n = strlen(v);
	if (!builder_value_ok(v, n))
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: bad %s value", what);
	char *p = xstrndup(v, n);
	if (!p)
		return nomem(err);
	free(*slot);
	*slot = p;
	return 0;
}

int cairn_narinfo_add_ref(struct cairn_narinfo *ni, const char *basename, struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	if (rc)
		return rc;
	size_t n = strlen(basename);
	if ((rc = cairn_narinfo_check_basename(basename, n, err)))
		return rc;
	if (ni->n_refs >= CAIRN_NARINFO_MAX_REFS)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: more than %d references",
				       CAIRN_NARINFO_MAX_REFS);
	if (push_str(&ni->refs, &ni->n_refs, basename, n))
		return nomem(err);
	ni->has_references = true;
	return 0;
}

void cairn_narinfo_set_has_refs(struct cairn_narinfo *ni)
{
	if (!ni->parsed_)
		ni->has_references = true;
}

int cairn_narinfo_set_deriver(struct cairn_narinfo *ni, const char *basename,
			      struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	if (!rc)
		rc = cairn_narinfo_check_basename(basename, strlen(basename), err);
	if (!rc)
		rc = set_str(&ni->deriver, "Deriver", basename, err);
	return rc;
}

int cairn_narinfo_set_system(struct cairn_narinfo *ni, const char *system, struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	return rc ? rc : set_str(&ni->system, "System", system, err);
}

int cairn_narinfo_set_ca(struct cairn_narinfo *ni, const char *ca, struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	return rc ? rc : set_str(&ni->ca, "CA", ca, err);
}

int cairn_narinfo_add_url(struct cairn_narinfo *ni, const char *url, const char *compression,
			  const struct cairn_hash *file_hash, int64_t file_size,
			  struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	if (rc)
		return rc;
	if (!url || !*url)
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: empty URL");
	if ((rc = new_url_group(ni, err)))
		return rc;
	struct cairn_narinfo_url *u = &ni->urls[ni->n_urls - 1];
	if ((rc = set_str(&u->url, "URL", url, err)) ||
	    (rc = set_str(&u->compression, "Compression", compression ? compression : "bzip2",
			  err))) {
		url_release(u);
		ni->n_urls--;
		return rc;
	}
	u->has_compression = compression != NULL;
	if (file_hash) {
		u->file_hash = *file_hash;
		u->has_file_hash = true;
	}
	if (file_size >= 0) {
		u->file_size = (uint64_t)file_size;
		u->has_file_size = true;
	}
	return 0;
}

int cairn_narinfo_add_field(struct cairn_narinfo *ni, const char *name, const char *value,
			    struct cairn_error *err)
{
	int rc = not_parsed(ni, err);
	if (rc)
		return rc;
	size_t nl = strlen(name), vl = strlen(value);
	static const char *const known[] = {
	    "StorePath",  "URL",     "Compression", "FileHash", "FileSize", "NarHash",	"NarSize",
	    "References", "Deriver", "System",	    "Sig",	"CA",	    "Signature"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(name, known[i]))
			return cairn_error_set(err, CAIRN_EINVAL,
					       "narinfo: '%s' is not an extra field", name);
	if (!name_ok(name, nl) || !builder_value_ok(value, vl))
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: bad field '%s'", name);
	if (ni->n_unknown >= CAIRN_NARINFO_MAX_LINES)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: too many fields");
	if (push_field(&ni->unknown, &ni->n_unknown, name, nl, value, vl))
		return nomem(err);
	return 0;
}

/* Insert a line at index at of a parsed narinfo. */
static int insert_line(struct cairn_narinfo *ni, size_t at, const char *name, const char *value)
{
	if (grow(&ni->lines_, ni->n_lines_, sizeof(*ni->lines_)))
		return CAIRN_ENOMEM;
	char *a = xstrndup(name, strlen(name)), *b = xstrndup(value, strlen(value));
	if (!a || !b) {
		free(a);
		free(b);
		return CAIRN_ENOMEM;
	}
	memmove(&ni->lines_[at + 1], &ni->lines_[at], (ni->n_lines_ - at) * sizeof(*ni->lines_));
	ni->lines_[at].name = a;
	ni->lines_[at].value = b;
	ni->n_lines_++;
	return 0;
}

/* Remove the lines called name among the first upto lines. */
static void remove_lines_upto(struct cairn_narinfo *ni, const char *name, size_t upto)
{
	size_t j = 0;
	for (size_t i = 0; i < ni->n_lines_; i++) {
		if (i < upto && !strcmp(ni->lines_[i].name, name))
			field_release(&ni->lines_[i]);
		else
			ni->lines_[j++] = ni->lines_[i];
	}
	ni->n_lines_ = j;
}

static void remove_lines(struct cairn_narinfo *ni, const char *name)
{
	remove_lines_upto(ni, name, ni->n_lines_);
}

/* Undo insert_line(ni, at, ...). */
static void drop_line(struct cairn_narinfo *ni, size_t at)
{
	field_release(&ni->lines_[at]);
	memmove(&ni->lines_[at], &ni->lines_[at + 1], (ni->n_lines_ - at - 1) * sizeof(*ni->lines_));
	ni->n_lines_--;
}

int cairn_narinfo_add_sig(struct cairn_narinfo *ni, const char *sig, struct cairn_error *err)
{
	size_t n = strlen(sig);
	if (n == 0 || !builder_value_ok(sig, n))
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: bad Sig value");
	for (size_t i = 0; i < ni->n_sigs; i++)
		if (!strcmp(ni->sigs[i], sig))
			return 0;
	if (ni->n_sigs >= CAIRN_NARINFO_MAX_SIGS)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: more than %d Sig fields",
				       CAIRN_NARINFO_MAX_SIGS);
	size_t at = 0;
	if (ni->parsed_) {
		if (ni->n_lines_ >= CAIRN_NARINFO_MAX_LINES)
			return cairn_error_set(err, CAIRN_ELIMIT, "narinfo: more than %d lines",
					       CAIRN_NARINFO_MAX_LINES);
		/* After the last Sig; else before CA and Signature, as Nix orders them. */
		at = ni->n_lines_;
		bool found = false;
		for (size_t i = ni->n_lines_; i-- > 0;)
			if (!strcmp(ni->lines_[i].name, "Sig")) {
				at = i + 1;
				found = true;
				break;
			}
		for (size_t i = 0; !found && i < ni->n_lines_; i++)
			if (!strcmp(ni->lines_[i].name, "CA") ||
			    !strcmp(ni->lines_[i].name, "Signature")) {
				at = i;
				break;
			}
		if (insert_line(ni, at, "Sig", sig))
			return nomem(err);
	}
	/* On failure, leave the narinfo as it was. */
	if (push_str(&ni->sigs, &ni->n_sigs, sig, n)) {
		if (ni->parsed_)
			drop_line(ni, at);
		return nomem(err);
	}
	int rc = ni->signature ? refresh_raw(ni, err) : 0;
	if (rc) {
		free(ni->sigs[--ni->n_sigs]);
		if (ni->parsed_)
			drop_line(ni, at);
	}
	return rc;
}

void cairn_narinfo_clear_sigs(struct cairn_narinfo *ni)
{
	for (size_t i = 0; i < ni->n_sigs; i++)
		free(ni->sigs[i]);
	ni->n_sigs = 0;
	if (ni->parsed_)
		remove_lines(ni, "Sig");
	if (ni->signature)
		refresh_raw(ni, NULL);
}

int cairn_narinfo_set_signature(struct cairn_narinfo *ni, const char *value,
				struct cairn_error *err)
{
	size_t n = strlen(value);
	if (n == 0 || !builder_value_ok(value, n))
		return cairn_error_set(err, CAIRN_EINVAL, "narinfo: bad Signature value");
	char *p = xstrndup(value, n);
	if (!p)
		return nomem(err);
	/*
	 * The new line goes in beside the old one, which leaves only once the
	 * signed text is rebuilt: a failure changes nothing.  (The signed
	 * text skips Signature lines, so the old one does not disturb it.)
	 */
	if (ni->parsed_ && insert_line(ni, ni->n_lines_, "Signature", value)) {
		free(p);
		return nomem(err);
	}
	char *old = ni->signature;
	ni->signature = p;
	int rc = refresh_raw(ni, err);
	if (rc) {
		ni->signature = old;
		free(p);
		if (ni->parsed_)
			drop_line(ni, ni->n_lines_ - 1);
		return rc;
	}
	if (ni->parsed_)
		remove_lines_upto(ni, "Signature", ni->n_lines_ - 1);
	free(old);
	return 0;
}

void cairn_narinfo_clear_signature(struct cairn_narinfo *ni)
{
	if (ni->parsed_)
		remove_lines(ni, "Signature");
	free(ni->signature);
	ni->signature = NULL;
	free(ni->raw_);
	ni->raw_ = NULL;
	ni->signed_len_ = 0;
	if (ni->parsed_)
		refresh_raw(ni, NULL);
}
