/*
 * fuzz-storepath.c - store paths, basenames and CA fields from untrusted
 * text.  Input: line 1 a store path, line 2 a CA field, further lines
 * reference basenames.  Besides "no crash", checks that whatever parses
 * prints back to the same bytes, and that a parsed CA round-trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/storepath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REFS 16

static const char *next_line(const char **p, const char *end, size_t *len)
{
	const char *s = *p;
	if (s >= end)
		return NULL;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	*len = nl ? (size_t)(nl - s) : (size_t)(end - s);
	*p = nl ? nl + 1 : end;
	return s;
}

/*
 * Differential check of the streaming hash modulo: a one-shot reference
 * (zero each occurrence left to right, append "|<offset>"s) gives the
 * digest; the streaming verifier must accept it whatever the chunking.
 */
static void check_modulo(const struct cairn_store_path *sp, const unsigned char *data, size_t len)
{
	if (len > 4096 || len == 0)
		return;
	unsigned char copy[4096];
	char offs[4096 / 32 * 24 + 1];
	size_t olen = 0;
	memcpy(copy, data, len);
	for (size_t j = 0; j + CAIRN_STORE_HASH_LEN <= len;) {
		unsigned char *hit = memmem(copy + j, len - j, sp->hash, CAIRN_STORE_HASH_LEN);
		if (!hit)
			break;
		size_t at = (size_t)(hit - copy);
		olen += (size_t)snprintf(offs + olen, sizeof(offs) - olen, "|%zu", at);
		memset(hit, 0, CAIRN_STORE_HASH_LEN);
		j = at + CAIRN_STORE_HASH_LEN;
	}
	struct cairn_sha256 ctx;
	if (cairn_sha256_init(&ctx) != 0)
		abort();
	cairn_sha256_update(&ctx, copy, len);
	cairn_sha256_update(&ctx, offs, olen);
	struct cairn_ca ca = { CAIRN_CA_NAR, { CAIRN_HASH_SHA256, CAIRN_SHA256_LEN, { 0 } } };
	cairn_sha256_final(&ctx, ca.hash.digest);

	size_t step = (size_t)data[0] % 67 + 1;
	struct cairn_ca_verify v;
	if (cairn_ca_verify_init(&v, &ca, sp, NULL) != 0)
		abort();
	for (size_t off = 0; off < len; off += step)
		if (cairn_ca_verify_update(&v, data + off, len - off < step ? len - off : step,
					   NULL) != 0)
			abort();
	if (cairn_ca_verify_final(&v, NULL) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	if (!inited) {
		if (cairn_init() != 0)
			abort();
		inited = 1;
	}
	const char *p = (const char *)data, *end = p + size;
	size_t len;
	const char *line = next_line(&p, end, &len);
	if (!line)
		return 0;

	struct cairn_store_path sp;
	struct cairn_error err;
	cairn_error_init(&err);
	int have_path = cairn_store_path_parse(line, len, NULL, &sp, &err) == 0;
	if (have_path) {
		char out[CAIRN_STORE_PATH_MAX];
		size_t dlen = len - cairn_store_path_base_len(&sp) - 1;
		char dir[CAIRN_STORE_DIR_MAX + 1];
		if (dlen > CAIRN_STORE_DIR_MAX)
			abort();
		memcpy(dir, line, dlen);
		dir[dlen] = '\0';
		int n = cairn_store_path_format(&sp, dir, out, sizeof(out));
		if (n < 0 || (size_t)n != len || memcmp(out, line, len) != 0)
			abort();
		if (!cairn_store_hash_valid(sp.hash, strlen(sp.hash)))
			abort();
		struct cairn_store_path again;
		if (cairn_store_path_parse(line, len, dir, &again, NULL) != 0 ||
		    cairn_store_path_cmp(&sp, &again) != 0)
			abort();
		uint8_t d[CAIRN_STORE_DIGEST_LEN];
		if (cairn_store_path_digest(&sp, d) != 0)
			abort();
	} else if (err.code == 0 || strlen(err.msg) >= CAIRN_ERROR_MSG_MAX) {
		abort();
	}
	(void)cairn_store_path_parse_base(line, len, &sp, NULL);

	line = next_line(&p, end, &len);
	if (!line)
		return 0;
	struct cairn_ca ca;
	if (cairn_ca_parse(line, len, &ca, NULL) != 0)
		return 0;
	char cas[CAIRN_CA_STR_MAX];
	int n = cairn_ca_format(&ca, cas, sizeof(cas));
	struct cairn_ca ca2;
	if (n < 0 || cairn_ca_parse(cas, (size_t)n, &ca2, NULL) != 0 || ca2.method != ca.method ||
	    !cairn_hash_equal(&ca.hash, &ca2.hash))
		abort();

	struct cairn_store_path refs[MAX_REFS];
	size_t nrefs = 0;
	while (nrefs < MAX_REFS && (line = next_line(&p, end, &len)) != NULL)
		if (cairn_store_path_parse_base(line, len, &refs[nrefs], NULL) == 0)
			nrefs++;
	if (have_path) {
		int rc = cairn_ca_check_path(&ca, &sp, refs, nrefs, "/nix/store", NULL);
		if (rc != 0 && rc != CAIRN_EHASH && rc != CAIRN_EFORMAT)
			abort();
	}
	if (have_path)
		check_modulo(&sp, (const unsigned char *)line, (size_t)(end - line));
	struct cairn_store_refs r = { refs, nrefs, nrefs & 1 };
	struct cairn_store_path out;
	(void)cairn_ca_make_path(&ca, "x", &r, "/gnu/store", &out, NULL);
	return 0;
}
