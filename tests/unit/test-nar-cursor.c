/*
 * lib/nar-cursor.c: compressed NARs read from where an earlier request
 * stopped.  Over zstd and xz files written here: every byte a sink gets is
 * the NAR's at its offset; asking for N consecutive ranges one by one
 * gives each NAR byte once (counted), not the NAR up to each range from
 * its start; ranges out of order and after a cursor was
 * dropped still give the right bytes; a sink that needs every byte (an
 * index build) gets them all from 0; threads asking for consecutive
 * ranges at once (as Helia does) all get the right bytes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/codec.h"
#include "../../lib/nar-cursor.h"

#define NAR_LEN ((size_t)3 << 20)
#define PIECE ((size_t)256 << 10)

struct tsink {
	const uint8_t *nar;
	uint64_t off, lo, hi;
	uint64_t given; /* bytes given to the sink */
	unsigned skips;
	bool bad;
};

static int t_bytes(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)err;
	struct tsink *t = ctx;
	if (t->off + len > NAR_LEN || memcmp(t->nar + t->off, data, len) != 0)
		t->bad = true;
	t->given += len;
	t->off += len;
	if (t->hi && t->off > t->hi)
		t->bad = true; /* given past what it asked for */
	return t->hi && t->off == t->hi ? CAIRN_ECANCELED : 0;
}

static int t_skip(void *ctx, uint64_t off, struct cairn_error *err)
{
	struct tsink *t = ctx;
	t->skips++;
	if (off > t->lo || off < t->off)
		return cairn_error_set(err, CAIRN_EINVAL, "skipped to %llu, past %llu",
				       (unsigned long long)off, (unsigned long long)t->lo);
	t->off = off;
	return 0;
}

static int to_fd(void *ctx, const void *data, size_t len)
{
	return write(*(int *)ctx, data, len) == (ssize_t)len ? 0 : CAIRN_EIO;
}

/* NAR_LEN bytes, compressible like a real NAR (runs and noise). */
static uint8_t *gen(void)
{
	uint8_t *b = malloc(NAR_LEN);
	assert_non_null(b);
	uint64_t x = 88172645463325252ULL;
	for (size_t i = 0; i < NAR_LEN; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b[i] = (i / 4096) % 2 ? (uint8_t)(x >> 32) : (uint8_t)(i / 4096);
	}
	return b;
}

static int write_packed(const char *dir, const char *name, enum cairn_codec_method m,
			const uint8_t *nar)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	struct cairn_codec *c;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_codec_new(&c, m, CAIRN_CODEC_COMPRESS, CAIRN_CODEC_LEVEL_DEFAULT,
					 CAIRN_CODEC_UNLIMITED, &err),
			 0);
	assert_int_equal(cairn_codec_write(c, nar, NAR_LEN, to_fd, &fd, &err), 0);
	assert_int_equal(cairn_codec_finish(c, to_fd, &fd, &err), 0);
	cairn_codec_free(c);
	close(fd);
	return 0;
}

/* Ask for [lo, hi) as the gateway does; returns the bytes given. */
static uint64_t ask(struct nar_cursors *p, int dirfd, const char *name,
		    enum cairn_codec_method m, const uint8_t *nar, uint64_t lo, uint64_t hi)
{
	struct tsink t = {.nar = nar, .lo = lo, .hi = hi};
	const struct ipfs_gw_sink sink = {
	    .bytes = t_bytes, .skip = t_skip, .want_lo = lo, .want_hi = hi, .ctx = &t};
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = nar_cursors_read(p, name, dirfd, name, m, NAR_LEN, &sink, &err);
	if (rc != CAIRN_ECANCELED)
		fail_msg("read [%llu, %llu): %d %s", (unsigned long long)lo,
			 (unsigned long long)hi, rc, cairn_error_msg(&err));
	assert_false(t.bad);
	assert_int_equal(t.off, hi);
	return t.given;
}

static void run(enum cairn_codec_method m, const char *name)
{
	char dir[] = "/tmp/test-nar-cursor.XXXXXX";
	assert_non_null(mkdtemp(dir));
	uint8_t *nar = gen();
	write_packed(dir, name, m, nar);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	struct nar_cursors *p = nar_cursors_new();
	assert_non_null(p);

	/* in order: the NAR once (plus what a read decodes past an end) */
	uint64_t given = 0;
	size_t n = NAR_LEN / PIECE;
	for (size_t k = 0; k < n; k++)
		given += ask(p, dirfd, name, m, nar, k * PIECE, (k + 1) * PIECE);
	/* each byte once; from 0 each time it would be n (n + 1) / 2 pieces */
	assert_int_equal(given, NAR_LEN);

	/* backwards: each from the nearest cursor below, right bytes */
	for (size_t k = n; k-- > 0;)
		ask(p, dirfd, name, m, nar, k * PIECE + 1000, (k + 1) * PIECE - 1000);
	/* the same range twice: the second from the cursor the first left */
	ask(p, dirfd, name, m, nar, PIECE, 2 * PIECE);
	assert_int_equal(ask(p, dirfd, name, m, nar, 2 * PIECE, 3 * PIECE), PIECE);

	/* a sink that needs every byte: from 0, to the end, no cursor */
	struct tsink t = {.nar = nar};
	const struct ipfs_gw_sink all = {.bytes = t_bytes, .ctx = &t};
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(nar_cursors_read(p, name, dirfd, name, m, NAR_LEN, &all, &err), 0);
	assert_false(t.bad);
	assert_int_equal(t.given, NAR_LEN);
	assert_int_equal(t.skips, 0);

	/* a file gone: its cursors still give its bytes; a new one is an error */
	char path[600];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	ask(p, dirfd, name, m, nar, 3 * PIECE, 4 * PIECE);
	struct tsink t2 = {.nar = nar, .hi = PIECE};
	const struct ipfs_gw_sink first = {
	    .bytes = t_bytes, .skip = t_skip, .want_lo = 0, .want_hi = PIECE, .ctx = &t2};
	assert_int_equal(nar_cursors_read(p, name, dirfd, name, m, NAR_LEN, &first, &err),
			 CAIRN_ENOENT);

	nar_cursors_free(p);
	close(dirfd);
	rmdir(dir);
	free(nar);
}

struct worker {
	struct nar_cursors *p;
	int dirfd;
	const uint8_t *nar;
	size_t first, step, n;
	bool bad;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (size_t k = w->first; k < w->n; k += w->step) {
		struct tsink t = {.nar = w->nar, .lo = k * PIECE, .hi = (k + 1) * PIECE};
		const struct ipfs_gw_sink sink = {.bytes = t_bytes,
						  .skip = t_skip,
						  .want_lo = t.lo,
						  .want_hi = t.hi,
						  .ctx = &t};
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = nar_cursors_read(w->p, "c.nar.zst", w->dirfd, "c.nar.zst",
					  CAIRN_CODEC_ZSTD, NAR_LEN, &sink, &err);
		if (rc != CAIRN_ECANCELED || t.bad || t.off != t.hi)
			w->bad = true;
	}
	return NULL;
}

static void test_threads(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-nar-cursor.XXXXXX";
	assert_non_null(mkdtemp(dir));
	uint8_t *nar = gen();
	write_packed(dir, "c.nar.zst", CAIRN_CODEC_ZSTD, nar);
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	assert_true(dirfd >= 0);
	struct nar_cursors *p = nar_cursors_new();
	assert_non_null(p);
	enum { T = 4 };
	struct worker w[T];
	pthread_t tid[T];
	for (size_t i = 0; i < T; i++) {
		w[i] = (struct worker){.p = p, .dirfd = dirfd, .nar = nar, .first = i, .step = T,
				       .n = NAR_LEN / PIECE};
		assert_int_equal(pthread_create(&tid[i], NULL, work, &w[i]), 0);
	}
	for (size_t i = 0; i < T; i++) {
		pthread_join(tid[i], NULL);
		assert_false(w[i].bad);
	}
	nar_cursors_free(p);
	char path[600];
	snprintf(path, sizeof(path), "%s/c.nar.zst", dir);
	unlink(path);
	close(dirfd);
	rmdir(dir);
	free(nar);
}

static void test_zstd(void **state)
{
	(void)state;
	run(CAIRN_CODEC_ZSTD, "a.nar.zst");
}

static void test_xz(void **state)
{
	(void)state;
	run(CAIRN_CODEC_XZ, "a.nar.xz");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zstd),
	    cmocka_unit_test(test_xz),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
