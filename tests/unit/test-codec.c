#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/codec.h"
#include "cairn/hash.h"
#include "../../lib/codec-int.h"

#ifndef VECTORS_DIR
#define VECTORS_DIR "tests/vectors"
#endif

static const enum cairn_codec_method all[] = {
    CAIRN_CODEC_NONE,  CAIRN_CODEC_XZ,	 CAIRN_CODEC_ZSTD,
    CAIRN_CODEC_BZIP2, CAIRN_CODEC_GZIP, CAIRN_CODEC_LZIP,
};
#define N_ALL (sizeof(all) / sizeof(all[0]))
/* The compressed ones. */
static const enum cairn_codec_method packed[] = {
    CAIRN_CODEC_XZ, CAIRN_CODEC_ZSTD, CAIRN_CODEC_BZIP2, CAIRN_CODEC_GZIP, CAIRN_CODEC_LZIP,
};
#define N_PACKED (sizeof(packed) / sizeof(packed[0]))

#define BIG (64u << 20)

/* Collects output; counts calls and checks chunk sizes. */
struct sink {
	struct cairn_buf b;
	size_t calls, biggest;
	int fail_after; /* return ECANCELED on this call (1-based); 0 never */
};

static int sink_fn(void *ctx, const void *data, size_t len)
{
	struct sink *s = ctx;
	s->calls++;
	if (s->fail_after && s->calls == (size_t)s->fail_after)
		return CAIRN_ECANCELED;
	if (len == 0 || len > CAIRN_CODEC_CHUNK)
		return CAIRN_EINVAL; /* the header promises neither happens */
	if (len > s->biggest)
		s->biggest = len;
	return cairn_buf_append(&s->b, data, len);
}

static void sink_init(struct sink *s)
{
	memset(s, 0, sizeof(*s));
	cairn_buf_init(&s->b, BIG);
}

/* Run data through a codec in pieces of `step` bytes. */
static int run_codec(enum cairn_codec_method m, enum cairn_codec_direction d, int level,
		     unsigned threads, const void *data, size_t len, size_t step, uint64_t max,
		     struct sink *s, struct cairn_error *err)
{
	struct cairn_codec *c = NULL;
	int rc = cairn_codec_new(&c, m, d, level, max, err);
	if (rc < 0)
		return rc;
	if (threads)
		rc = cairn_codec_set_threads(c, threads, err);
	for (size_t off = 0; rc == 0 && off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		rc = cairn_codec_write(c, (const char *)data + off, n, sink_fn, s, err);
	}
	if (rc == 0)
		rc = cairn_codec_finish(c, sink_fn, s, err);
	cairn_codec_free(c);
	return rc;
}

/* Something NAR-like: text with repeats, then pseudo-random bytes. */
static unsigned char *sample(size_t len)
{
	unsigned char *p = malloc(len ? len : 1);
	assert_non_null(p);
	uint32_t x = 12345;
	for (size_t i = 0; i < len; i++) {
		if (i < len / 2) {
			p[i] = (unsigned char)("nix-archive-1 (type regular contents "[i % 37]);
		} else {
			x = x * 1103515245u + 12345u;
			p[i] = (unsigned char)(x >> 16);
		}
	}
	return p;
}

static void compress_to(enum cairn_codec_method m, int level, const void *data, size_t len,
			struct sink *out)
{
	struct cairn_error err;
	cairn_error_init(&err);
	sink_init(out);
	int rc = run_codec(m, CAIRN_CODEC_COMPRESS, level, 0, data, len, 65536,
			   CAIRN_CODEC_UNLIMITED, out, &err);
	if (rc != 0)
		fail_msg("compress %s: %s", cairn_codec_method_name(m), cairn_error_msg(&err));
}

static void test_roundtrip(void **state)
{
	(void)state;
	/* 4 chunks exactly: the last output fills the buffer as the frame
	 * ends (zstd said "truncated" on a whole stream) */
	static const size_t sizes[] = {0, 1, 100, 300000, 1100000, 4 * CAIRN_CODEC_CHUNK};
	static const size_t steps[] = {1, 4093, 1 << 20};
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		unsigned char *data = sample(sizes[si]);
		for (size_t mi = 0; mi < N_ALL; mi++) {
			enum cairn_codec_method m = all[mi];
			struct sink z;
			compress_to(m, CAIRN_CODEC_LEVEL_DEFAULT, data, sizes[si], &z);
			for (size_t st = 0; st < sizeof(steps) / sizeof(steps[0]); st++) {
				if (steps[st] == 1 && z.b.len > 50000)
					continue; /* byte-at-a-time only where cheap */
				struct sink u;
				struct cairn_error err;
				cairn_error_init(&err);
				sink_init(&u);
				int rc =
				    run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
					      0, z.b.data, z.b.len, steps[st], sizes[si], &u, &err);
				if (rc != 0)
					fail_msg("%s size %zu step %zu: %s",
						 cairn_codec_method_name(m), sizes[si], steps[st],
						 cairn_error_msg(&err));
				assert_int_equal(u.b.len, sizes[si]);
				if (sizes[si])
					assert_memory_equal(u.b.data, data, sizes[si]);
				/* Large output goes out in full chunks, not dribbles. */
				if (sizes[si] > 2 * CAIRN_CODEC_CHUNK && m != CAIRN_CODEC_NONE)
					assert_int_equal(u.biggest, CAIRN_CODEC_CHUNK);
				cairn_buf_release(&u.b);
			}
			cairn_buf_release(&z.b);
		}
		free(data);
	}
}

static void test_levels_and_threads(void **state)
{
	(void)state;
	size_t len = 700000;
	unsigned char *data = sample(len);
	static const struct {
		enum cairn_codec_method m;
		int level;
		unsigned threads;
	} cases[] = {
	    {CAIRN_CODEC_XZ, 0, 0},    {CAIRN_CODEC_XZ, 9, 0},	  {CAIRN_CODEC_XZ, 1, 2},
	    {CAIRN_CODEC_ZSTD, -5, 0}, {CAIRN_CODEC_ZSTD, 19, 0}, {CAIRN_CODEC_ZSTD, 3, 2},
	    {CAIRN_CODEC_BZIP2, 1, 0}, {CAIRN_CODEC_GZIP, 1, 0},  {CAIRN_CODEC_GZIP, 9, 0},
	    {CAIRN_CODEC_LZIP, 0, 0},  {CAIRN_CODEC_LZIP, 9, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sink z, u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&z);
		sink_init(&u);
		int rc =
		    run_codec(cases[i].m, CAIRN_CODEC_COMPRESS, cases[i].level, cases[i].threads,
			      data, len, 100000, CAIRN_CODEC_UNLIMITED, &z, &err);
		if (rc == 0)
			rc =
			    run_codec(cases[i].m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
				      0, z.b.data, z.b.len, 77777, len, &u, &err);
		if (rc != 0)
			fail_msg("%s:%d: %s", cairn_codec_method_name(cases[i].m), cases[i].level,
				 cairn_error_msg(&err));
		assert_int_equal(u.b.len, len);
		assert_memory_equal(u.b.data, data, len);
		assert_true(z.b.len < len); /* really compressed */
		cairn_buf_release(&z.b);
		cairn_buf_release(&u.b);
	}
	free(data);
}

/* ---- the real tools ---- */

static bool have_tool(const char *t)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", t);
	return system(cmd) == 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	struct stat st;
	assert_int_equal(fstat(fileno(f), &st), 0);
	unsigned char *p = malloc((size_t)st.st_size + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = (size_t)st.st_size;
	return p;
}

static const char *tool_of(enum cairn_codec_method m)
{
	switch (m) {
	case CAIRN_CODEC_XZ: return "xz";
	case CAIRN_CODEC_ZSTD: return "zstd";
	case CAIRN_CODEC_BZIP2: return "bzip2";
	case CAIRN_CODEC_GZIP: return "gzip";
	case CAIRN_CODEC_LZIP: return "lzip";
	default: return NULL;
	}
}

static void test_tools_interop(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-codec.XXXXXX";
	assert_non_null(mkdtemp(dir));
	size_t len = 1500000;
	unsigned char *data = sample(len);
	char plain[64], packedf[64], back[64], cmd[1024];
	snprintf(plain, sizeof(plain), "%s/plain", dir);
	write_file(plain, data, len);
	for (size_t i = 0; i < N_PACKED; i++) {
		enum cairn_codec_method m = packed[i];
		const char *tool = tool_of(m);
		if (!have_tool(tool)) {
			const char *ci = getenv("CI");
			if (ci && strcmp(ci, "true") == 0)
				fail_msg("%s is required in CI", tool);
			continue;
		}
		/* The tool compresses (two runs concatenated, which every
		 * tool's -d accepts as one file), cairn decompresses. */
		snprintf(packedf, sizeof(packedf), "%s/by-tool", dir);
		snprintf(cmd, sizeof(cmd), "%s -c -q <%s >%s && %s -c -q <%s >>%s", tool, plain,
			 packedf, tool, plain, packedf);
		assert_int_equal(system(cmd), 0);
		size_t zlen;
		unsigned char *z = read_file(packedf, &zlen);
		struct sink u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&u);
		int rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0, z, zlen,
				   8192, 2 * len, &u, &err);
		if (rc != 0)
			fail_msg("%s output: %s", tool, cairn_error_msg(&err));
		assert_int_equal(u.b.len, 2 * len);
		assert_memory_equal(u.b.data, data, len);
		assert_memory_equal(u.b.data + len, data, len);
		free(z);
		cairn_buf_release(&u.b);

		/* cairn compresses (single- and, where offered, multi-threaded),
		 * the tool decompresses and tests. */
		for (unsigned threads = 0; threads <= 2; threads += 2) {
			if (threads && m != CAIRN_CODEC_XZ && m != CAIRN_CODEC_ZSTD)
				break;
			struct sink zc;
			sink_init(&zc);
			cairn_error_init(&err);
			/* 300 KiB pieces: several xz blocks and zstd jobs at level 1. */
			rc = run_codec(m, CAIRN_CODEC_COMPRESS, 1, threads, data, len, 300000,
				       CAIRN_CODEC_UNLIMITED, &zc, &err);
			if (rc != 0)
				fail_msg("%s compress: %s", tool, cairn_error_msg(&err));
			snprintf(packedf, sizeof(packedf), "%s/by-cairn", dir);
			write_file(packedf, zc.b.data, zc.b.len);
			snprintf(back, sizeof(back), "%s/back", dir);
			snprintf(cmd, sizeof(cmd),
				 "%s -t -q %s && %s -d -c <%s >%s && cmp -s %s %s", tool, packedf,
				 tool, packedf, back, back, plain);
			if (system(cmd) != 0)
				fail_msg("%s cannot read cairn's %s stream (%u threads)", tool,
					 tool, threads);
			cairn_buf_release(&zc.b);
		}
		unlink(back);
		unlink(packedf);
		snprintf(packedf, sizeof(packedf), "%s/by-tool", dir);
		unlink(packedf);
	}
	unlink(plain);
	rmdir(dir);
	free(data);
}

/* ---- Nix's own caches ---- */

/* Value of "Key: " line in a narinfo, copied into out. */
static bool narinfo_field(const char *text, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, klen) == 0 && p[klen] == ':' && p[klen + 1] == ' ') {
			const char *v = p + klen + 2, *e = strchr(v, '\n');
			size_t n = e ? (size_t)(e - v) : strlen(v);
			if (n >= size)
				return false;
			memcpy(out, v, n);
			out[n] = '\0';
			return true;
		}
	}
	return false;
}

static void test_nix_caches(void **state)
{
	(void)state;
	static const char *caches[] = {"cache-none", "cache-xz", "cache-zstd", "cache-bzip2"};
	static const char *paths[] = {"6rpbsa1ix05i5cmar0xh7fw9cyms2476",
				      "pp25ahmcbii9zkwhkaxdr3ihh9439x9p",
				      "x6b6ah9iya8w14wv5fzzwj36lf2yyghw"};
	int checked = 0;
	for (size_t ci = 0; ci < 4; ci++) {
		for (size_t pi = 0; pi < 3; pi++) {
			char path[512], url[256], comp[32], narhash[128], narsize[32];
			snprintf(path, sizeof(path), "%s/nix/%s/%s.narinfo", VECTORS_DIR,
				 caches[ci], paths[pi]);
			size_t tlen;
			char *text = (char *)read_file(path, &tlen);
			text[tlen] = '\0';
			assert_true(narinfo_field(text, "URL", url, sizeof(url)));
			assert_true(narinfo_field(text, "Compression", comp, sizeof(comp)));
			assert_true(narinfo_field(text, "NarHash", narhash, sizeof(narhash)));
			assert_true(narinfo_field(text, "NarSize", narsize, sizeof(narsize)));
			free(text);

			enum cairn_codec_method m;
			assert_int_equal(cairn_codec_method_parse(comp, strlen(comp), &m, NULL), 0);
			/* The URL ends the way the header says Nix names it. */
			char want[16];
			snprintf(want, sizeof(want), ".nar%s", cairn_codec_nix_suffix(m));
			assert_true(strlen(url) > strlen(want));
			assert_string_equal(url + strlen(url) - strlen(want), want);

			snprintf(path, sizeof(path), "%s/nix/%s/%s", VECTORS_DIR, caches[ci], url);
			size_t zlen;
			unsigned char *z = read_file(path, &zlen);
			uint64_t size = strtoull(narsize, NULL, 10);
			struct sink u;
			struct cairn_error err;
			cairn_error_init(&err);
			sink_init(&u);
			int rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
					   z, zlen, 100, size, &u, &err);
			if (rc != 0)
				fail_msg("%s: %s", path, cairn_error_msg(&err));
			assert_int_equal(u.b.len, size);
			struct cairn_hash want_h, got_h;
			assert_int_equal(
			    cairn_hash_parse(narhash, strlen(narhash), 0, &want_h, NULL), 0);
			cairn_hash_sha256(&got_h, u.b.data, u.b.len);
			assert_true(cairn_hash_equal(&want_h, &got_h));
			cairn_buf_release(&u.b);

			/* One byte less than NarSize is a limit error, with a message. */
			if (m != CAIRN_CODEC_NONE || size > 0) {
				cairn_error_init(&err);
				sink_init(&u);
				rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
					       0, z, zlen, zlen, size - 1, &u, &err);
				assert_int_equal(rc, CAIRN_ELIMIT);
				char msg[128];
				snprintf(msg, sizeof(msg),
					 "%s: decompressed data exceeds %llu bytes", comp,
					 (unsigned long long)(size - 1));
				assert_string_equal(err.msg, msg);
				cairn_buf_release(&u.b);
			}
			free(z);
			checked++;
		}
	}
	assert_int_equal(checked, 12);
}

/* ---- hostile input ---- */

static long maxrss_kib(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_bombs(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		enum cairn_codec_method m;
	} bombs[] = {
	    {"zeros-1g.zst", CAIRN_CODEC_ZSTD}, {"zeros-1g.bz2", CAIRN_CODEC_BZIP2},
	    {"zeros-256m.xz", CAIRN_CODEC_XZ},	{"zeros-256m.lzip", CAIRN_CODEC_LZIP},
	    {"zeros-64m.gz", CAIRN_CODEC_GZIP},
	};
	const uint64_t cap = 1048576;
	long rss_before = maxrss_kib();
	for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/bombs/%s", VECTORS_DIR, bombs[i].file);
		size_t zlen;
		unsigned char *z = read_file(path, &zlen);
		struct sink u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&u);
		double t0 = now_s();
		/* All at once: the library must stop itself mid-input. */
		int rc = run_codec(bombs[i].m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
				   z, zlen, zlen, cap, &u, &err);
		double dt = now_s() - t0;
		assert_int_equal(rc, CAIRN_ELIMIT);
		char msg[128];
		snprintf(msg, sizeof(msg), "%s: decompressed data exceeds 1048576 bytes",
			 cairn_codec_method_name(bombs[i].m));
		assert_string_equal(err.msg, msg);
		assert_true(u.b.len <= cap);
		/* Decoding all of it takes seconds; stopping takes milliseconds
		 * (generous for sanitizer builds). */
		if (dt > 2.0)
			fail_msg("%s: took %.2f s to hit the limit", bombs[i].file, dt);
		free(z);
		cairn_buf_release(&u.b);
	}
	/* Nowhere near the hundreds of MiB the bombs expand to. */
	long grew = maxrss_kib() - rss_before;
	if (grew > 96 * 1024)
		fail_msg("peak memory grew by %ld KiB", grew);
}

/* Headers that ask for more decoder memory than the named limits. */
static void test_memory_limits(void **state)
{
	(void)state;
	static const struct {
		const char *file;
		enum cairn_codec_method m;
		const char *msg;
	} v[] = {
	    {"window-1g.zst", CAIRN_CODEC_ZSTD,
	     "zstd: Frame requires too much memory for decoding"},
	    {"dict-300m.xz", CAIRN_CODEC_XZ,
	     "xz: decoding needs more than 268435456 bytes of memory"},
	    {"dict-512m.lzip", CAIRN_CODEC_LZIP,
	     "lzip: dictionary of 536870912 bytes exceeds the limit of 268435456"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/bombs/%s", VECTORS_DIR, v[i].file);
		size_t zlen;
		unsigned char *z = read_file(path, &zlen);
		struct sink u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&u);
		int rc = run_codec(v[i].m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0, z,
				   zlen, zlen, 1000, &u, &err);
		assert_int_equal(rc, CAIRN_ELIMIT);
		assert_string_equal(err.msg, v[i].msg);
		assert_int_equal(u.b.len, 0);
		free(z);
		cairn_buf_release(&u.b);
	}
}

static void test_truncated(void **state)
{
	(void)state;
	size_t len = 20000;
	unsigned char *data = sample(len);
	for (size_t i = 0; i < N_PACKED; i++) {
		struct sink z;
		compress_to(packed[i], CAIRN_CODEC_LEVEL_DEFAULT, data, len, &z);
		/* Every proper prefix, byte by byte near both ends. */
		for (size_t cut = 0; cut < z.b.len; cut++) {
			if (cut > 64 && cut < z.b.len - 64 && cut % 97)
				continue;
			struct sink u;
			struct cairn_error err;
			cairn_error_init(&err);
			sink_init(&u);
			int rc =
			    run_codec(packed[i], CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
				      0, z.b.data, cut, 1000, len, &u, &err);
			if (rc != CAIRN_ETRUNCATED)
				fail_msg("%s cut at %zu of %zu: %d %s",
					 cairn_codec_method_name(packed[i]), cut, z.b.len, rc,
					 cairn_error_msg(&err));
			cairn_buf_release(&u.b);
		}
		cairn_buf_release(&z.b);
	}
	free(data);
}

static void test_trailing_and_concat(void **state)
{
	(void)state;
	size_t len = 5000;
	unsigned char *data = sample(len);
	/* Shorter than a header, a tail may also read as a truncated next
	 * stream (as `xz -d` says too); a long one is plainly garbage. */
	static const char *const tails[] = {"garbage! and more garbage", "\0\0\0\0", "\x1f", "LZIP",
					    "garbage!"};
	static const size_t tail_len[] = {25, 4, 1, 4, 8};
	for (size_t i = 0; i < N_PACKED; i++) {
		enum cairn_codec_method m = packed[i];
		struct sink z;
		compress_to(m, CAIRN_CODEC_LEVEL_DEFAULT, data, len, &z);
		size_t one = z.b.len;

		/* Two streams back to back: one file of twice the data. */
		struct cairn_buf two;
		cairn_buf_init(&two, BIG);
		assert_int_equal(cairn_buf_append(&two, z.b.data, one), 0);
		assert_int_equal(cairn_buf_append(&two, z.b.data, one), 0);
		struct sink u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&u);
		int rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
				   two.data, two.len, 333, 2 * len, &u, &err);
		if (rc != 0)
			fail_msg("%s concat: %s", cairn_codec_method_name(m),
				 cairn_error_msg(&err));
		assert_int_equal(u.b.len, 2 * len);
		assert_memory_equal(u.b.data + len, data, len);
		cairn_buf_release(&u.b);
		cairn_buf_release(&two);

		for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			/* xz allows zero padding in multiples of four. */
			bool allowed = m == CAIRN_CODEC_XZ && t == 1;
			struct cairn_buf bad;
			cairn_buf_init(&bad, BIG);
			assert_int_equal(cairn_buf_append(&bad, z.b.data, one), 0);
			assert_int_equal(cairn_buf_append(&bad, tails[t], tail_len[t]), 0);
			cairn_error_init(&err);
			sink_init(&u);
			rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
				       bad.data, bad.len, bad.len, len, &u, &err);
			if (allowed) {
				assert_int_equal(rc, 0);
			} else if (rc != CAIRN_EFORMAT && rc != CAIRN_ETRUNCATED) {
				fail_msg("%s + tail %zu: %d %s", cairn_codec_method_name(m), t, rc,
					 cairn_error_msg(&err));
			}
			/* A clear word-for-word tail is always EFORMAT. */
			if (t == 0 && rc != CAIRN_EFORMAT)
				fail_msg("%s + garbage: %d %s", cairn_codec_method_name(m), rc,
					 cairn_error_msg(&err));
			cairn_buf_release(&u.b);
			cairn_buf_release(&bad);
		}
		cairn_buf_release(&z.b);
	}
	free(data);
}

static void test_corrupt(void **state)
{
	(void)state;
	size_t len = 50000;
	unsigned char *data = sample(len);
	for (size_t i = 0; i < N_PACKED; i++) {
		enum cairn_codec_method m = packed[i];
		struct sink z;
		compress_to(m, CAIRN_CODEC_LEVEL_DEFAULT, data, len, &z);
		int bad = 0;
		/* Flip one bit at many places; checksums catch all of them. */
		for (size_t pos = 0; pos < z.b.len; pos += z.b.len / 23 + 1) {
			unsigned char *copy = malloc(z.b.len);
			memcpy(copy, z.b.data, z.b.len);
			copy[pos] ^= 0x10;
			struct sink u;
			struct cairn_error err;
			cairn_error_init(&err);
			sink_init(&u);
			int rc = run_codec(m, CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
					   copy, z.b.len, 4096, 4 * len, &u, &err);
			if (rc == 0)
				fail_msg("%s: bit flip at %zu not detected",
					 cairn_codec_method_name(m), pos);
			if (rc == CAIRN_EFORMAT) {
				bad++;
				assert_true(strncmp(err.msg, cairn_codec_method_name(m),
						    strlen(cairn_codec_method_name(m))) == 0);
			}
			free(copy);
			cairn_buf_release(&u.b);
		}
		assert_true(bad > 0);
		cairn_buf_release(&z.b);
	}
	/* Not the format at all. */
	for (size_t i = 0; i < N_PACKED; i++) {
		struct sink u;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&u);
		const char *junk = "this is not compressed data at all, not even a little";
		int rc = run_codec(packed[i], CAIRN_CODEC_DECOMPRESS, CAIRN_CODEC_LEVEL_DEFAULT, 0,
				   junk, strlen(junk), 7, 1000, &u, &err);
		assert_int_equal(rc, CAIRN_EFORMAT);
		cairn_buf_release(&u.b);
	}
	free(data);
}

static void test_callback_and_lifecycle(void **state)
{
	(void)state;
	size_t len = 3 * CAIRN_CODEC_CHUNK;
	unsigned char *data = sample(len);
	for (size_t i = 0; i < N_ALL; i++) {
		struct sink s;
		struct cairn_error err;
		cairn_error_init(&err);
		sink_init(&s);
		s.fail_after = 1;
		int rc = run_codec(all[i], CAIRN_CODEC_COMPRESS, 1 /* fast */, 0, data, len, len,
				   CAIRN_CODEC_UNLIMITED, &s, &err);
		if (all[i] == CAIRN_CODEC_NONE && rc == CAIRN_EINVAL)
			rc = CAIRN_ECANCELED; /* level 1 is invalid for none */
		assert_int_equal(rc, CAIRN_ECANCELED);
		cairn_buf_release(&s.b);
	}
	/* After an error the codec stays failed; after finish, writes are misuse. */
	struct cairn_codec *c;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_codec_new(&c, CAIRN_CODEC_GZIP, CAIRN_CODEC_DECOMPRESS,
					 CAIRN_CODEC_LEVEL_DEFAULT, 100, &err),
			 0);
	struct sink s;
	sink_init(&s);
	assert_int_equal(cairn_codec_write(c, "junkjunk", 8, sink_fn, &s, &err), CAIRN_EFORMAT);
	assert_int_equal(cairn_codec_write(c, "x", 1, sink_fn, &s, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_codec_finish(c, sink_fn, &s, NULL), CAIRN_EFORMAT);
	cairn_codec_free(c);

	assert_int_equal(cairn_codec_new(&c, CAIRN_CODEC_ZSTD, CAIRN_CODEC_COMPRESS,
					 CAIRN_CODEC_LEVEL_DEFAULT, CAIRN_CODEC_UNLIMITED, NULL),
			 0);
	assert_int_equal(cairn_codec_write(c, data, 1000, sink_fn, &s, NULL), 0);
	assert_int_equal(cairn_codec_set_threads(c, 2, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_codec_finish(c, sink_fn, &s, NULL), 0);
	assert_int_equal(cairn_codec_total_in(c), 1000);
	assert_int_equal(cairn_codec_total_out(c), s.b.len);
	assert_int_equal(cairn_codec_write(c, data, 1, sink_fn, &s, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_codec_finish(c, sink_fn, &s, NULL), CAIRN_EINVAL);
	cairn_codec_free(c);
	cairn_buf_release(&s.b);

	/* Bad arguments leave *out alone. */
	c = (struct cairn_codec *)&err;
	assert_int_equal(cairn_codec_new(&c, CAIRN_CODEC_XZ, CAIRN_CODEC_COMPRESS, 10,
					 CAIRN_CODEC_UNLIMITED, NULL),
			 CAIRN_EINVAL);
	assert_int_equal(cairn_codec_new(&c, CAIRN_CODEC_XZ, CAIRN_CODEC_DECOMPRESS, 6, 100, NULL),
			 CAIRN_EINVAL);
	assert_int_equal(cairn_codec_new(&c, (enum cairn_codec_method)99, CAIRN_CODEC_COMPRESS,
					 CAIRN_CODEC_LEVEL_DEFAULT, 100, NULL),
			 CAIRN_EINVAL);
	assert_ptr_equal(c, (struct cairn_codec *)&err);

	/* none: the limit counts the caller's bytes too. */
	cairn_error_init(&err);
	sink_init(&s);
	assert_int_equal(run_codec(CAIRN_CODEC_NONE, CAIRN_CODEC_DECOMPRESS,
				   CAIRN_CODEC_LEVEL_DEFAULT, 0, data, 1001, 100, 1000, &s, &err),
			 CAIRN_ELIMIT);
	assert_string_equal(err.msg, "none: decompressed data exceeds 1000 bytes");
	assert_int_equal(s.b.len, 1000);
	cairn_buf_release(&s.b);

	/* One-shot helper: appends on success only. */
	struct cairn_buf z = CAIRN_BUF_INIT(BIG), back = CAIRN_BUF_INIT(BIG);
	assert_int_equal(cairn_codec_oneshot(CAIRN_CODEC_LZIP, CAIRN_CODEC_COMPRESS,
					     CAIRN_CODEC_LEVEL_DEFAULT, data, 5000,
					     CAIRN_CODEC_UNLIMITED, &z, NULL),
			 0);
	assert_int_equal(cairn_codec_oneshot(CAIRN_CODEC_LZIP, CAIRN_CODEC_DECOMPRESS,
					     CAIRN_CODEC_LEVEL_DEFAULT, z.data, z.len, 4999, &back,
					     NULL),
			 CAIRN_ELIMIT);
	assert_int_equal(back.len, 0);
	assert_int_equal(cairn_codec_oneshot(CAIRN_CODEC_LZIP, CAIRN_CODEC_DECOMPRESS,
					     CAIRN_CODEC_LEVEL_DEFAULT, z.data, z.len, 5000, &back,
					     NULL),
			 0);
	assert_int_equal(back.len, 5000);
	assert_memory_equal(back.data, data, 5000);
	cairn_buf_release(&z);
	cairn_buf_release(&back);
	free(data);
}

static void test_names_and_specs(void **state)
{
	(void)state;
	enum cairn_codec_method m;
	struct cairn_error err;
	static const char *names[] = {"none", "xz", "zstd", "bzip2", "gzip", "lzip"};
	static const char *suffix[] = {"", ".xz", ".zst", ".bz2", "", ".lzip"};
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(cairn_codec_method_parse(names[i], strlen(names[i]), &m, NULL), 0);
		assert_string_equal(cairn_codec_method_name(m), names[i]);
		assert_string_equal(cairn_codec_nix_suffix(m), suffix[i]);
	}
	cairn_error_init(&err);
	assert_int_equal(cairn_codec_method_parse("br", 2, &m, &err), CAIRN_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "brotli"));
	assert_int_equal(cairn_codec_method_parse("lz4", 3, &m, NULL), CAIRN_EUNSUPPORTED);
	cairn_error_init(&err);
	assert_int_equal(cairn_codec_method_parse("XZ", 2, &m, &err), CAIRN_EFORMAT);
	assert_string_equal(err.msg, "codec: unknown compression method 'XZ'");
	assert_int_equal(cairn_codec_method_parse("", 0, &m, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_codec_method_parse("xzz", 2, &m, NULL), 0); /* len counts */

	struct cairn_codec_spec sp;
	assert_int_equal(cairn_codec_spec_parse("zstd:3", 6, &sp, NULL), 0);
	assert_int_equal(sp.method, CAIRN_CODEC_ZSTD);
	assert_int_equal(sp.level, 3);
	assert_int_equal(cairn_codec_spec_parse("zstd:-7", 7, &sp, NULL), 0);
	assert_int_equal(sp.level, -7);
	assert_int_equal(cairn_codec_spec_parse("xz", 2, &sp, NULL), 0);
	assert_int_equal(sp.level, CAIRN_CODEC_LEVEL_DEFAULT);
	static const char *bad[] = {"xz:10",   "xz:",	  "xz:a", "none:0", "gzip:0",	  "bzip2:0",
				    "lzip:10", "zstd:99", ":3",	  "xz:6:1", "xz:99999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		sp.level = 42;
		cairn_error_init(&err);
		int rc = cairn_codec_spec_parse(bad[i], strlen(bad[i]), &sp, &err);
		if (rc != CAIRN_EFORMAT)
			fail_msg("'%s' gave %d", bad[i], rc);
		assert_int_equal(sp.level, 42);
	}
	cairn_error_init(&err);
	cairn_codec_spec_parse("xz:12", 5, &sp, &err);
	assert_string_equal(err.msg, "codec: xz level 12 is out of range (0 to 9)");

	struct cairn_codec_spec list[CAIRN_CODEC_LIST_MAX];
	const char *l = "zstd:3,xz:6,lzip:9,gzip:3,none";
	assert_int_equal(
	    cairn_codec_spec_list_parse(l, strlen(l), list, CAIRN_CODEC_LIST_MAX, NULL), 5);
	assert_int_equal(list[2].method, CAIRN_CODEC_LZIP);
	assert_int_equal(list[2].level, 9);
	assert_int_equal(list[4].method, CAIRN_CODEC_NONE);
	char s[CAIRN_CODEC_SPEC_STR_MAX];
	assert_int_equal(cairn_codec_spec_format(&list[0], s, sizeof(s)), 6);
	assert_string_equal(s, "zstd:3");
	assert_int_equal(cairn_codec_spec_format(&list[4], s, sizeof(s)), 4);
	assert_string_equal(s, "none");
	assert_int_equal(cairn_codec_spec_format(&list[0], s, 6), CAIRN_ELIMIT);
	static const char *badl[] = {"", "xz,", ",xz", "xz,,zstd", "xz:6,xz:9", "xz,br"};
	for (size_t i = 0; i < sizeof(badl) / sizeof(badl[0]); i++) {
		int rc = cairn_codec_spec_list_parse(badl[i], strlen(badl[i]), list,
						     CAIRN_CODEC_LIST_MAX, NULL);
		if (rc >= 0)
			fail_msg("list '%s' accepted", badl[i]);
	}
	assert_int_equal(cairn_codec_spec_list_parse("xz,zstd,gzip", 12, list, 2, NULL),
			 CAIRN_ELIMIT);
}

int main(void)
{
	cairn_init();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_and_specs),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_levels_and_threads),
	    cmocka_unit_test(test_tools_interop),
	    cmocka_unit_test(test_nix_caches),
	    cmocka_unit_test(test_bombs),
	    cmocka_unit_test(test_memory_limits),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_trailing_and_concat),
	    cmocka_unit_test(test_corrupt),
	    cmocka_unit_test(test_callback_and_lifecycle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
