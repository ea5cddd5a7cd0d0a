/*
 * This machine's unpacking speed per compression, for the URL picker
 * (cairn_fetch_pick_url): measured once on a built-in sample and kept in
 * the narinfo cache, because a fixed table is wrong by several times on a
 * slow or a fast CPU, and that decides xz against zstd on a mid-speed link.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cairn/codec.h"
#include "cairn/nicache.h"
#include "fetch-int.h"
#include "cairn/banned.h"

/* Big enough that a decompression takes some milliseconds of CPU even
 * for zstd; small enough that the whole measurement stays well under a
 * second for all methods (compressed at fast levels: unpacking speed
 * barely depends on the level). */
#define SAMPLE_BYTES ((size_t)1 << 20)
#define CODEC_KEY_PREFIX "cairn-codec-unpack:"

/* Built-in speeds (NAR bytes/s on one core) for when measuring fails:
 * codec.h's measurements on 52 MB of mixed files, rounded down. */
double fetch_codec_builtin_rate(enum cairn_codec_method m)
{
	switch (m) {
	case CAIRN_CODEC_NONE: return 2000e6;
	case CAIRN_CODEC_ZSTD: return 1000e6;
	case CAIRN_CODEC_GZIP: return 350e6;
	case CAIRN_CODEC_XZ: return 40e6;
	case CAIRN_CODEC_LZIP: return 40e6;
	case CAIRN_CODEC_BZIP2: return 30e6;
	default: return 1e6;
	}
}

/* Text-like bytes that compress about as a store path does (words from a
 * small vocabulary, some noise); the same on every machine. */
static void fill_sample(unsigned char *p, size_t n)
{
	static const char *const words[] = {
	    "lib", "usr", "share", "nix", "store", "bin", "include", ".so", ".h", "int ",
	    "return ", "static ", "void ", "struct ", "const ", "char ", "{\n", "}\n", "\t", "= "};
	uint64_t x = 0x9e3779b97f4a7c15u;
	size_t i = 0;
	while (i < n) {
		x = x * 6364136223846793005u + 1442695040888963407u;
		unsigned r = (unsigned)(x >> 33);
		if (r % 8 == 0) {
			p[i++] = (unsigned char)(r >> 8);
			continue;
		}
		const char *w = words[(r >> 4) % (sizeof(words) / sizeof(words[0]))];
		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = (unsigned char)w[k];
	}
}

struct sink {
	unsigned char *p;
	size_t len, cap;
};

static int to_sink(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	if (!s->p)
		return 0; /* counting only */
	if (len > s->cap - s->len)
		return CAIRN_ELIMIT;
	memcpy(s->p + s->len, data, len);
	s->len += len;
	return 0;
}

static double cpu_now(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unpacking speed of m in sample bytes per CPU second, 0 when it failed. */
static double measure_one(enum cairn_codec_method m, const unsigned char *sample)
{
	struct sink z = {.p = malloc(SAMPLE_BYTES + SAMPLE_BYTES / 2 + 65536),
			 .cap = SAMPLE_BYTES + SAMPLE_BYTES / 2 + 65536};
	struct cairn_codec *c = NULL;
	double rate = 0;
	/* zstd's default is fast already; the slow ones at their fastest */
	int level = CAIRN_CODEC_LEVEL_DEFAULT;
	if (m != CAIRN_CODEC_NONE && m != CAIRN_CODEC_ZSTD) {
		int hi;
		cairn_codec_level_range(m, &level, &hi);
		if (level < 1 && hi >= 1)
			level = 1;
	}
	if (!z.p || cairn_codec_new(&c, m, CAIRN_CODEC_COMPRESS, level, CAIRN_CODEC_UNLIMITED, NULL) ||
	    cairn_codec_write(c, sample, SAMPLE_BYTES, to_sink, &z, NULL) ||
	    cairn_codec_finish(c, to_sink, &z, NULL))
		goto out;
	cairn_codec_free(c);
	c = NULL;
	struct sink count = {0};
	double t0 = cpu_now();
	if (cairn_codec_new(&c, m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
			    CAIRN_CODEC_UNLIMITED, NULL) ||
	    cairn_codec_write(c, z.p, z.len, to_sink, &count, NULL) ||
	    cairn_codec_finish(c, to_sink, &count, NULL) ||
	    cairn_codec_total_out(c) != SAMPLE_BYTES)
		goto out;
	double el = cpu_now() - t0;
	/* a clock too coarse to see it: at least as fast as that */
	rate = (double)SAMPLE_BYTES / (el > 1e-4 ? el : 1e-4);
out:
	cairn_codec_free(c);
	free(z.p);
	return rate;
}

void fetch_codec_rates(struct cairn_nicache *cache, double rate[CAIRN_CODEC_METHOD_COUNT_],
		       bool *measured)
{
	bool all_kept = cache != NULL;
	for (int m = 0; m < CAIRN_CODEC_METHOD_COUNT_; m++) {
		rate[m] = 0;
		char key[64];
		uint64_t r = 0, unused;
		snprintf(key, sizeof(key), CODEC_KEY_PREFIX "%s",
			 cairn_codec_method_name((enum cairn_codec_method)m));
		if (cache && cairn_nicache_get_speed(cache, key, &r, &unused, NULL) == 1 && r > 0)
			rate[m] = (double)r;
		else
			all_kept = false;
	}
	*measured = true;
	if (all_kept)
		return;
	unsigned char *sample = malloc(SAMPLE_BYTES);
	if (sample)
		fill_sample(sample, SAMPLE_BYTES);
	for (int m = 0; m < CAIRN_CODEC_METHOD_COUNT_; m++) {
		if (rate[m] > 0)
			continue;
		enum cairn_codec_method cm = (enum cairn_codec_method)m;
		rate[m] = sample ? measure_one(cm, sample) : 0;
		if (rate[m] <= 0) {
			rate[m] = fetch_codec_builtin_rate(cm);
			*measured = false;
			continue;
		}
		char key[64];
		snprintf(key, sizeof(key), CODEC_KEY_PREFIX "%s", cairn_codec_method_name(cm));
		/* a cache that cannot keep it costs the next run a measurement */
		if (cache)
			cairn_nicache_put_speed(cache, key, (uint64_t)rate[m], 0, fetch_wall_now(),
						NULL);
	}
	free(sample);
}
