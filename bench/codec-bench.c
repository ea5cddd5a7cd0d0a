/*
 * codec-bench.c - compress and decompress one file with each method/level
 * through libcairn's codec and print size and speed.  Not part of the
 * build; after `ninja -C build`:
 *   cc -O2 -Iinclude bench/codec-bench.c build/lib/libcairn.a \
 *      -lzstd -llzma -lz -lbz2 -llz -lgcrypt -lsodium -o /tmp/codec-bench
 *   /tmp/codec-bench FILE "zstd:3,xz:6,gzip:6,lzip:6,bzip2:9" [THREADS]
 * (a method appears once per list: run it again for other levels).
 * Speeds are MB/s of uncompressed data (1 MB = 10^6 bytes), both ways.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/codec.h"
#include "../lib/codec-int.h"

struct out {
	unsigned char *p;
	size_t len, cap;
};

static int put(void *ctx, const void *data, size_t len)
{
	struct out *o = ctx;
	if (o->len + len > o->cap) {
		size_t cap = (o->cap + len) * 2;
		unsigned char *p = realloc(o->p, cap);
		if (!p)
			return CAIRN_ENOMEM;
		o->p = p;
		o->cap = cap;
	}
	memcpy(o->p + o->len, data, len);
	o->len += len;
	return 0;
}

/* Decompressed output is compared with the original as it comes, so the
 * timing has no buffer growth in it (as when a client hashes and unpacks). */
struct cmp {
	const unsigned char *want;
	size_t off, len;
	int bad;
};

static int check(void *ctx, const void *data, size_t len)
{
	struct cmp *c = ctx;
	if (len > c->len - c->off || memcmp(c->want + c->off, data, len) != 0)
		c->bad = 1;
	c->off += len;
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned threads;

static int run(const struct cairn_codec_spec *s, enum cairn_codec_direction d,
	       const unsigned char *in, size_t len, uint64_t max, cairn_codec_out_fn fn, void *o,
	       double *secs)
{
	struct cairn_codec *c = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	double t0 = now();
	int rc = cairn_codec_new(&c, s->method, d,
				 d == CAIRN_CODEC_COMPRESS ? s->level : CAIRN_CODEC_LEVEL_DEFAULT,
				 max, &err);
	if (rc == 0 && threads > 1)
		rc = cairn_codec_set_threads(c, threads, &err);
	/* 128 KiB writes, like a network or file loop would make. */
	for (size_t off = 0; rc == 0 && off < len; off += 131072)
		rc = cairn_codec_write(c, in + off, len - off < 131072 ? len - off : 131072, fn, o,
				       &err);
	if (rc == 0)
		rc = cairn_codec_finish(c, fn, o, &err);
	*secs = now() - t0;
	if (rc < 0)
		fprintf(stderr, "error: %s\n", cairn_error_msg(&err));
	if (c)
		cairn_codec_free(c);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 4)
		threads = (unsigned)atoi(argv[3]);
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: codec-bench FILE SPECLIST [THREADS]\n");
		return 2;
	}
	FILE *f = fopen(argv[1], "rb");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	size_t len = (size_t)ftell(f);
	rewind(f);
	unsigned char *in = malloc(len);
	if (!in || fread(in, 1, len, f) != len)
		return 1;
	fclose(f);
	struct cairn_codec_spec specs[CAIRN_CODEC_LIST_MAX];
	struct cairn_error err;
	cairn_error_init(&err);
	int n = cairn_codec_spec_list_parse(argv[2], strlen(argv[2]), specs, CAIRN_CODEC_LIST_MAX,
					    &err);
	if (n < 0) {
		fprintf(stderr, "error: %s\n", cairn_error_msg(&err));
		return 2;
	}
	printf("%-9s %12s %7s %10s %10s\n", "method", "bytes", "ratio", "comp MB/s", "dec MB/s");
	for (int i = 0; i < n; i++) {
		struct out z = {0};
		struct cmp u = {in, 0, len, 0};
		double tc, td;
		char name[CAIRN_CODEC_SPEC_STR_MAX];
		cairn_codec_spec_format(&specs[i], name, sizeof(name));
		if (run(&specs[i], CAIRN_CODEC_COMPRESS, in, len, CAIRN_CODEC_UNLIMITED, put, &z,
			&tc) < 0 ||
		    run(&specs[i], CAIRN_CODEC_DECOMPRESS, z.p, z.len, len, check, &u, &td) < 0)
			return 1;
		if (u.bad || u.off != len) {
			fprintf(stderr, "%s: round trip differs\n", name);
			return 1;
		}
		printf("%-9s %12zu %6.1f%% %10.1f %10.1f\n", name, z.len,
		       100.0 * (double)z.len / (double)len, (double)len / tc / 1e6,
		       (double)len / td / 1e6);
		fflush(stdout);
		free(z.p);
	}
	free(in);
	return 0;
}
