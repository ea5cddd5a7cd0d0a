/*
 * narinfos.c - the batch narinfo format (narinfos.h): one strict parser,
 * one writer, the request's query.
 */
#include "cairn/narinfos.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "map.h"
#include "cairn/banned.h"

#define MAGIC "CairnNarinfos: 1\n"

/* The line at pos (without its '\n'); NULL when there is no '\n'. */
static const char *next_line(const char *body, size_t len, size_t pos, size_t *llen)
{
	const char *nl = memchr(body + pos, '\n', len - pos);
	if (!nl)
		return NULL;
	*llen = (size_t)(nl - (body + pos));
	return body + pos;
}

static bool take_hash(const char *s, size_t n, char *out)
{
	if (n < CAIRN_STORE_HASH_LEN || !cairn_store_hash_valid(s, CAIRN_STORE_HASH_LEN))
		return false;
	memcpy(out, s, CAIRN_STORE_HASH_LEN);
	out[CAIRN_STORE_HASH_LEN] = '\0';
	return true;
}

/* A decimal without sign or leading zeros, at most max. */
static bool take_size(const char *s, size_t n, size_t max, size_t *out)
{
	if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return false;
	*out = (size_t)v;
	return true;
}

int cairn_narinfos_parse(const char *body, size_t len, struct cairn_narinfos_entry **out,
			 size_t *n, struct cairn_error *err)
{
	struct cairn_narinfos_entry *ents = NULL;
	size_t count = 0, cap = 0, pos = 0, llen;
	struct map seen;
	int rc;

	*out = NULL;
	*n = 0;
	map_init(&seen, NULL);
	if (len > CAIRN_NARINFOS_RESPONSE_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "narinfos: response over %u bytes",
				       CAIRN_NARINFOS_RESPONSE_MAX);
	if (len < sizeof(MAGIC) - 1 || memcmp(body, MAGIC, sizeof(MAGIC) - 1) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "narinfos: response does not start with 'CairnNarinfos: 1'");
	pos = sizeof(MAGIC) - 1;
	for (;;) {
		const char *line = next_line(body, len, pos, &llen);
		if (!line) {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "narinfos: response cut off at byte %zu (no End line)",
					     pos);
			goto fail;
		}
		size_t lpos = pos;
		pos += llen + 1;
		if (llen > 5 && memcmp(line, "End: ", 5) == 0) {
			size_t said;
			if (!take_size(line + 5, llen - 5, CAIRN_NARINFOS_COUNT_MAX, &said) ||
			    said != count) {
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "narinfos: End line '%.*s' does not count the "
						     "%zu entries sent",
						     (int)(llen > 40 ? 40 : llen), line, count);
				goto fail;
			}
			if (pos != len) {
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "narinfos: %zu bytes after the End line",
						     len - pos);
				goto fail;
			}
			break;
		}
		struct cairn_narinfos_entry e;
		memset(&e, 0, sizeof(e));
		if (llen == 8 + CAIRN_STORE_HASH_LEN && memcmp(line, "Absent: ", 8) == 0 &&
		    take_hash(line + 8, llen - 8, e.hash)) {
			e.present = false;
		} else if (llen > 9 + CAIRN_STORE_HASH_LEN + 1 && memcmp(line, "Narinfo: ", 9) == 0 &&
			   take_hash(line + 9, llen - 9, e.hash) &&
			   line[9 + CAIRN_STORE_HASH_LEN] == ' ') {
			size_t off = 9 + CAIRN_STORE_HASH_LEN + 1;
			if (!take_size(line + off, llen - off, CAIRN_NARINFO_MAX, &e.len)) {
				rc = cairn_error_set(err, CAIRN_ELIMIT,
						     "narinfos: narinfo %s: length '%.*s' is not a "
						     "number up to %u",
						     e.hash, (int)(llen - off > 20 ? 20 : llen - off),
						     line + off, CAIRN_NARINFO_MAX);
				goto fail;
			}
			if (e.len > len - pos) {
				rc = cairn_error_set(err, CAIRN_EFORMAT,
						     "narinfos: narinfo %s: %zu bytes announced, %zu "
						     "left in the response",
						     e.hash, e.len, len - pos);
				goto fail;
			}
			e.present = true;
			e.text = body + pos;
			pos += e.len;
		} else {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "narinfos: unexpected line at byte %zu: '%.*s'", lpos,
					     (int)(llen > 60 ? 60 : llen), line);
			goto fail;
		}
		if (map_get(&seen, e.hash)) {
			rc = cairn_error_set(err, CAIRN_EFORMAT, "narinfos: %s sent twice", e.hash);
			goto fail;
		}
		if (count == CAIRN_NARINFOS_COUNT_MAX) {
			rc = cairn_error_set(err, CAIRN_ELIMIT, "narinfos: more than %d entries",
					     CAIRN_NARINFOS_COUNT_MAX);
			goto fail;
		}
		if ((rc = map_put(&seen, e.hash, (void *)1, NULL)) < 0) {
			cairn_error_set(err, rc, "narinfos: out of memory");
			goto fail;
		}
		if (count == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct cairn_narinfos_entry *ne = realloc(ents, nc * sizeof(*ents));
			if (!ne) {
				rc = cairn_error_set(err, CAIRN_ENOMEM, "narinfos: out of memory");
				goto fail;
			}
			ents = ne;
			cap = nc;
		}
		ents[count++] = e;
	}
	map_release(&seen);
	*out = ents;
	*n = count;
	return 0;
fail:
	map_release(&seen);
	free(ents);
	return rc;
}

int cairn_narinfos_parse_query(const char *q, size_t len,
			       char (*hashes)[CAIRN_STORE_HASH_LEN + 1], size_t *n,
			       bool *closure, struct cairn_error *err)
{
	bool have_hashes = false;
	*n = 0;
	*closure = false;
	size_t i = 0;
	while (i < len) {
		const char *amp = memchr(q + i, '&', len - i);
		size_t end = amp ? (size_t)(amp - q) : len;
		const char *f = q + i;
		size_t flen = end - i;
		i = end + (amp ? 1 : 0);
		if (flen == 9 && memcmp(f, "closure=1", 9) == 0) {
			*closure = true;
		} else if (flen == 9 && memcmp(f, "closure=0", 9) == 0) {
			*closure = false;
		} else if (flen >= 7 && memcmp(f, "hashes=", 7) == 0) {
			have_hashes = true;
			size_t j = 7;
			while (j < flen) {
				const char *comma = memchr(f + j, ',', flen - j);
				size_t hend = comma ? (size_t)(comma - f) : flen;
				if (hend - j != CAIRN_STORE_HASH_LEN ||
				    !cairn_store_hash_valid(f + j, CAIRN_STORE_HASH_LEN))
					return cairn_error_set(err, CAIRN_EFORMAT,
							       "narinfos: '%.*s' is not a store "
							       "path hash part",
							       (int)(hend - j > 40 ? 40 : hend - j),
							       f + j);
				if (*n == CAIRN_NARINFOS_HASHES_MAX)
					return cairn_error_set(err, CAIRN_ELIMIT,
							       "narinfos: more than %d hash parts "
							       "in one request",
							       CAIRN_NARINFOS_HASHES_MAX);
				memcpy(hashes[*n], f + j, CAIRN_STORE_HASH_LEN);
				hashes[*n][CAIRN_STORE_HASH_LEN] = '\0';
				(*n)++;
				j = hend + 1;
			}
		} else {
			return cairn_error_set(err, CAIRN_EFORMAT,
					       "narinfos: unknown query field '%.*s'",
					       (int)(flen > 40 ? 40 : flen), f);
		}
	}
	if (!have_hashes || *n == 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "narinfos: no hash parts (hashes=H1,H2,...)");
	return 0;
}

int cairn_narinfos_begin(struct cairn_buf *b)
{
	return cairn_buf_puts(b, MAGIC);
}

int cairn_narinfos_add(struct cairn_buf *b, const char *hash, const char *text, size_t len)
{
	int rc = cairn_buf_printf(b, "Narinfo: %.32s %zu\n", hash, len);
	return rc ? rc : cairn_buf_append(b, text, len);
}

int cairn_narinfos_add_absent(struct cairn_buf *b, const char *hash)
{
	return cairn_buf_printf(b, "Absent: %.32s\n", hash);
}

int cairn_narinfos_end(struct cairn_buf *b, size_t entries)
{
	return cairn_buf_printf(b, "End: %zu\n", entries);
}
