/* Shared by the unit tests: read a vector file, edit text, make store paths. */
#ifndef CAIRN_TEST_VECUTIL_H
#define CAIRN_TEST_VECUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((unused)) static char *read_vec(const char *rel, size_t *len)
{
	char path[1024];
	const char *dir = getenv("VECTORS_DIR");
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : VECTORS_DIR, rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

/* A copy of s with the first occurrence of from replaced by to (NULL if absent). */
__attribute__((unused)) static char *replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	if (!p)
		return NULL;
	size_t a = (size_t)(p - s), fl = strlen(from), tl = strlen(to), sl = strlen(s);
	char *r = malloc(sl - fl + tl + 1);
	memcpy(r, s, a);
	memcpy(r + a, to, tl);
	memcpy(r + a + tl, p + fl, sl - a - fl + 1);
	return r;
}

/* The store path number i of a made-up set: "/nix/store/<hash>-<tag><i>",
 * its hash part i in Nix's base-32, padded with 'z' (unique below 32^4). */
__attribute__((unused)) static void numbered_store_path(size_t i, const char *tag, char *out,
							size_t cap)
{
	static const char a32[] = "0123456789abcdfghijklmnpqrsvwxyz";
	char hash[33];
	memset(hash, 'z', 32);
	for (size_t k = 0, v = i; k < 4; k++, v /= 32)
		hash[k] = a32[v % 32];
	hash[32] = '\0';
	snprintf(out, cap, "/nix/store/%s-%s%zu", hash, tag, i);
}

static const char *const nix_caches[] = {"cache-none", "cache-xz", "cache-zstd", "cache-bzip2"};
static const char *const nix_paths[] = {"6rpbsa1ix05i5cmar0xh7fw9cyms2476",
					"pp25ahmcbii9zkwhkaxdr3ihh9439x9p",
					"x6b6ah9iya8w14wv5fzzwj36lf2yyghw"};

#endif
