/* The nar cache under publish's bakes and the mirror's store (lib/narcache.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../lib/narcache.h"

/* What the evict callback was told, in order; fail_on: the name it refuses. */
struct owner {
	char evicted[64][NARCACHE_NAME_MAX + 1];
	int n;
	const char *fail_on;
};

static int on_evict(void *ctx, const char *name)
{
	struct owner *o = ctx;
	if (o->fail_on && !strcmp(name, o->fail_on))
		return CAIRN_EIO;
	assert_true(o->n < 64);
	snprintf(o->evicted[o->n++], NARCACHE_NAME_MAX + 1, "%s", name);
	return 0;
}

struct fixture {
	char dir[64];
	struct owner owner;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cairn-test-narcache.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static struct narcache *open_cache(struct fixture *fx, uint64_t max)
{
	struct narcache_config cfg = {.dir = fx->dir,
				      .data = "data",
				      .what = "test",
				      .max_size = max,
				      .evict = on_evict,
				      .ctx = &fx->owner};
	struct narcache *nc = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	if (narcache_open(&nc, &cfg, &err) < 0)
		fail_msg("narcache_open: %s", cairn_error_msg(&err));
	return nc;
}

/* A temporary file of n bytes of c, its path in tmp. */
static void make_tmp(struct narcache *nc, char *tmp, size_t n, char c)
{
	int fd;
	char *buf = malloc(n ? n : 1);
	assert_non_null(buf);
	memset(buf, c, n);
	assert_int_equal(narcache_tmp_open(nc, "t-", tmp, NARCACHE_PATH_MAX, &fd, NULL), 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	assert_int_equal(narcache_sync(nc, fd, tmp, NULL), 0);
	close(fd);
	free(buf);
}

/* The mirror's way: room first, then the file. */
static void put(struct narcache *nc, const char *name, size_t n, char c)
{
	char tmp[NARCACHE_PATH_MAX];
	make_tmp(nc, tmp, n, c);
	assert_int_equal(narcache_trim(nc, n, name, NULL), 0);
	assert_int_equal(narcache_commit(nc, tmp, name, n, NULL), 0);
	assert_int_equal(access(tmp, F_OK), -1);
}

/* publish's way: the file, then room for it. */
static void put_then_trim(struct narcache *nc, const char *name, size_t n, char c)
{
	char tmp[NARCACHE_PATH_MAX];
	make_tmp(nc, tmp, n, c);
	assert_int_equal(narcache_commit(nc, tmp, name, n, NULL), 0);
	assert_int_equal(narcache_trim(nc, 0, name, NULL), 0);
}

static bool on_disk(struct fixture *fx, const char *sub, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s/%s", fx->dir, sub, name);
	return access(path, F_OK) == 0;
}

/* Entries of fx->dir/sub, and the sum of their sizes. */
static size_t count_dir(struct fixture *fx, const char *sub, uint64_t *bytes)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fx->dir, sub);
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;
	assert_non_null(d);
	if (bytes)
		*bytes = 0;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.')
			continue;
		n++;
		assert_int_equal(fstatat(dirfd(d), de->d_name, &st, 0), 0);
		if (bytes)
			*bytes += (uint64_t)st.st_size;
	}
	closedir(d);
	return n;
}

static void test_eviction_order(void **state)
{
	struct fixture *fx = *state;
	struct narcache *nc = open_cache(fx, 2500);
	put(nc, "a", 1000, 'a');
	put(nc, "b", 1000, 'b');
	assert_true(narcache_touch(nc, "a")); /* a is now more recent than b */
	put(nc, "c", 1000, 'c');
	assert_int_equal(fx->owner.n, 1);
	assert_string_equal(fx->owner.evicted[0], "b");
	assert_false(on_disk(fx, "data", "b"));
	/* next out: a, used before c came */
	put(nc, "d", 1000, 'd');
	assert_int_equal(fx->owner.n, 2);
	assert_string_equal(fx->owner.evicted[1], "a");
	assert_true(narcache_has(nc, "c") && narcache_has(nc, "d"));
	struct narcache_stats st;
	narcache_stats(nc, &st);
	assert_int_equal(st.files, 2);
	assert_int_equal(st.bytes, 2000);
	assert_int_equal(st.evictions, 2);
	/* removed by its owner: gone, and not an eviction */
	assert_int_equal(narcache_remove(nc, "c"), 1);
	assert_int_equal(narcache_remove(nc, "c"), 0);
	assert_false(on_disk(fx, "data", "c"));
	narcache_stats(nc, &st);
	assert_int_equal(st.evictions, 2);
	assert_int_equal(st.bytes, 1000);
	narcache_free(nc);
}

/* Whatever the sizes, after each commit the files fit the bound, and the
 * bytes counted are the bytes on disk. */
static void test_bound(void **state)
{
	struct fixture *fx = *state;
	const uint64_t max = 4000;
	struct narcache *nc = open_cache(fx, max);
	uint32_t x = 12345;
	for (int i = 0; i < 60; i++) {
		char name[16];
		x = x * 1103515245u + 12345u;
		size_t n = 1 + (x >> 16) % 1500;
		snprintf(name, sizeof(name), "f%d", i % 25); /* some names again */
		if (i % 2)
			put(nc, name, n, (char)('a' + i % 26));
		else
			put_then_trim(nc, name, n, (char)('a' + i % 26));
		struct narcache_stats st;
		uint64_t disk;
		narcache_stats(nc, &st);
		assert_true(st.bytes <= max);
		assert_int_equal(count_dir(fx, "data", &disk), st.files);
		assert_int_equal(disk, st.bytes);
		assert_true(narcache_has(nc, name)); /* the newest always stays */
	}
	assert_true(fx->owner.n > 0);
	narcache_free(nc);
}

static void test_pins(void **state)
{
	struct fixture *fx = *state;
	struct narcache *nc = open_cache(fx, 2500);
	put(nc, "a", 1000, 'a');
	put(nc, "b", 1000, 'b');
	assert_true(narcache_pin(nc, "a")); /* least recently used, but read */
	assert_false(narcache_pin(nc, "nothing"));
	put(nc, "c", 1000, 'c');
	assert_int_equal(fx->owner.n, 1);
	assert_string_equal(fx->owner.evicted[0], "b");
	assert_true(on_disk(fx, "data", "a"));
	/* all pinned: the bound gives way until they are unpinned */
	assert_true(narcache_pin(nc, "c"));
	put(nc, "d", 1000, 'd');
	assert_true(narcache_has(nc, "a") && narcache_has(nc, "c") && narcache_has(nc, "d"));
	assert_true(narcache_over(nc));
	struct narcache_stats st;
	narcache_stats(nc, &st);
	assert_int_equal(st.pinned, 2);
	/* two pins on c: one unpin leaves it pinned */
	assert_true(narcache_pin(nc, "c"));
	narcache_unpin(nc, "c");
	narcache_unpin(nc, "a");
	assert_int_equal(narcache_trim(nc, 0, NULL, NULL), 0);
	assert_false(narcache_over(nc));
	assert_false(narcache_has(nc, "a"));
	assert_true(narcache_has(nc, "c"));
	assert_string_equal(fx->owner.evicted[fx->owner.n - 1], "a");
	narcache_unpin(nc, "c");
	narcache_stats(nc, &st);
	assert_int_equal(st.pinned, 0);

	/* a reader that has the file open reads it whole after its eviction */
	char path[256], buf[1000];
	snprintf(path, sizeof(path), "%s/data/c", fx->dir);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	put(nc, "e", 1000, 'e');
	put(nc, "f", 1000, 'f');
	assert_false(narcache_has(nc, "c"));
	assert_false(on_disk(fx, "data", "c"));
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_true(buf[0] == 'c' && buf[999] == 'c');
	close(fd);
	narcache_free(nc);
}

/* An owner that cannot drop its record stops the eviction: the file stays. */
static void test_evict_refused(void **state)
{
	struct fixture *fx = *state;
	struct narcache *nc = open_cache(fx, 2000);
	put(nc, "a", 1000, 'a');
	put(nc, "b", 1000, 'b');
	char tmp[NARCACHE_PATH_MAX];
	make_tmp(nc, tmp, 1000, 'c');
	fx->owner.fail_on = "a";
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(narcache_trim(nc, 1000, "c", &err), CAIRN_EIO);
	assert_non_null(strstr(cairn_error_msg(&err), "'a'"));
	assert_true(narcache_has(nc, "a") && on_disk(fx, "data", "a"));
	unlink(tmp);
	narcache_free(nc);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* What a crash leaves: files being written, files no record names,
 * records whose file is gone or is not what they say. */
static void test_crash_debris(void **state)
{
	struct fixture *fx = *state;
	char path[256];
	struct narcache *nc = open_cache(fx, 0);
	put(nc, "kept", 10, 'k');
	put(nc, "orphan", 10, 'o');
	put(nc, "short", 10, 's');
	put(nc, "x", 4, 'x');
	put(nc, "y", 4, 'y');
	put(nc, "z", 4, 'z');
	narcache_free(nc);
	snprintf(path, sizeof(path), "%s/tmp/t-partial", fx->dir);
	write_file(path, "half a nar");
	snprintf(path, sizeof(path), "%s/tmp/put-info", fx->dir);
	write_file(path, "half an info");

	nc = open_cache(fx, 0);
	assert_int_equal(count_dir(fx, "tmp", NULL), 0);
	assert_false(narcache_has(nc, "kept")); /* nothing until adopted */
	assert_int_equal(narcache_adopt(nc, "kept", 10, 7), 0);
	assert_int_equal(narcache_adopt(nc, "short", 11, 7), CAIRN_EFORMAT);
	assert_int_equal(narcache_adopt(nc, "gone", 10, 7), CAIRN_ENOENT);
	assert_int_equal(narcache_adopt(nc, "../kept", 10, 7), CAIRN_EFORMAT);
	/* recency from the owner's index, in any order */
	assert_int_equal(narcache_adopt(nc, "x", 4, 30), 0);
	assert_int_equal(narcache_adopt(nc, "y", 4, 10), 0);
	assert_int_equal(narcache_adopt(nc, "z", 4, 20), 0);
	narcache_sweep(nc);
	assert_true(on_disk(fx, "data", "kept"));
	assert_false(on_disk(fx, "data", "orphan"));
	assert_false(on_disk(fx, "data", "short"));
	assert_int_equal(count_dir(fx, "data", NULL), 4);
	uint64_t size, tick;
	assert_true(narcache_get(nc, "kept", &size, &tick));
	assert_int_equal(size, 10);
	assert_int_equal(tick, 7);
	/* newer than anything adopted */
	assert_true(narcache_touch(nc, "kept"));
	assert_true(narcache_get(nc, "kept", NULL, &tick));
	assert_true(tick > 30);
	narcache_free(nc);

	/* a smaller bound: out in the index's recency order */
	fx->owner.n = 0;
	nc = open_cache(fx, 8);
	assert_int_equal(narcache_adopt(nc, "kept", 10, 7), 0);
	assert_int_equal(narcache_adopt(nc, "x", 4, 30), 0);
	assert_int_equal(narcache_adopt(nc, "y", 4, 10), 0);
	assert_int_equal(narcache_adopt(nc, "z", 4, 20), 0);
	assert_int_equal(narcache_trim(nc, 0, NULL, NULL), 0);
	assert_int_equal(fx->owner.n, 2);
	assert_string_equal(fx->owner.evicted[0], "kept");
	assert_string_equal(fx->owner.evicted[1], "y");
	assert_true(narcache_has(nc, "x") && narcache_has(nc, "z"));
	narcache_free(nc);
}

static void read_all(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap);
	assert_true(n >= 0);
	*len = (size_t)n;
	close(fd);
}

/* The name shows the old bytes or the new, never a part; a reader of the
 * old keeps them; a failed commit leaves nothing behind. */
static void test_rename_atomic(void **state)
{
	struct fixture *fx = *state;
	struct narcache *nc = open_cache(fx, 0);
	char path[256], tmp[NARCACHE_PATH_MAX], buf[4096];
	size_t len;
	put(nc, "n", 3000, 'A');
	snprintf(path, sizeof(path), "%s/data/n", fx->dir);
	int old = open(path, O_RDONLY);
	assert_true(old >= 0);
	make_tmp(nc, tmp, 2000, 'B');
	read_all(path, buf, sizeof(buf), &len); /* written, not committed: unseen */
	assert_int_equal(len, 3000);
	assert_int_equal(buf[2999], 'A');
	assert_int_equal(narcache_commit(nc, tmp, "n", 2000, NULL), 0);
	read_all(path, buf, sizeof(buf), &len);
	assert_int_equal(len, 2000);
	assert_true(buf[0] == 'B' && buf[1999] == 'B');
	ssize_t n = pread(old, buf, sizeof(buf), 0);
	assert_int_equal(n, 3000);
	assert_true(buf[0] == 'A' && buf[2999] == 'A');
	close(old);
	struct narcache_stats st;
	narcache_stats(nc, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.bytes, 2000);

	/* names that would leave the data directory: refused, temp file gone */
	const char *bad[] = {"../n", "a/b", "..", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_tmp(nc, tmp, 10, 'C');
		assert_int_equal(narcache_commit(nc, tmp, bad[i], 10, NULL), CAIRN_EINVAL);
		assert_int_equal(access(tmp, F_OK), -1);
	}
	/* a temporary file that is not there */
	assert_true(narcache_commit(nc, tmp, "m", 10, NULL) < 0);
	assert_false(narcache_has(nc, "m"));
	assert_false(on_disk(fx, "data", "m"));
	assert_int_equal(count_dir(fx, "tmp", NULL), 0);

	/* the owner's small files: whole, replaced whole */
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(narcache_mkdir(nc, "info", NULL), 0);
	assert_int_equal(narcache_put_file(nc, "info/i", "first\n", 6, NULL), 0);
	snprintf(path, sizeof(path), "%s/info/i", fx->dir);
	old = open(path, O_RDONLY);
	assert_true(old >= 0);
	assert_int_equal(narcache_put_file(nc, "info/i", "second\n", 7, NULL), 0);
	read_all(path, buf, sizeof(buf), &len);
	assert_int_equal(len, 7);
	assert_memory_equal(buf, "second\n", 7);
	assert_int_equal(read(old, buf, sizeof(buf)), 6);
	close(old);
	assert_true(narcache_put_file(nc, "nodir/i", "x", 1, &err) < 0);
	assert_non_null(strstr(cairn_error_msg(&err), "nodir/i"));
	assert_int_equal(count_dir(fx, "tmp", NULL), 0);
	narcache_free(nc);
}

static int n_dirty;
static int count_dirty(void *ctx, const char *name, uint64_t tick)
{
	(void)ctx;
	(void)name;
	assert_true(tick > 0);
	n_dirty++;
	return 0;
}

/* Recency to write back: what a commit or a touch changed, once. */
static void test_dirty(void **state)
{
	struct fixture *fx = *state;
	struct narcache *nc = open_cache(fx, 0);
	put(nc, "a", 1, 'a');
	put(nc, "b", 1, 'b');
	assert_int_equal(narcache_each_dirty(nc, count_dirty, NULL), 0);
	assert_int_equal(n_dirty, 2);
	n_dirty = 0;
	assert_int_equal(narcache_each_dirty(nc, count_dirty, NULL), 0);
	assert_int_equal(n_dirty, 0);
	assert_true(narcache_touch(nc, "a"));
	assert_false(narcache_touch(nc, "nothing"));
	assert_int_equal(narcache_each_dirty(nc, count_dirty, NULL), 0);
	assert_int_equal(n_dirty, 1);
	narcache_free(nc);
}

/* A cache directory that cannot be made is an error naming it. */
static void test_open_errors(void **state)
{
	struct fixture *fx = *state;
	char file[128], dir[160];
	snprintf(file, sizeof(file), "%s/a-file", fx->dir);
	write_file(file, "");
	snprintf(dir, sizeof(dir), "%s/cache", file);
	struct narcache_config cfg = {.dir = dir, .data = "data", .what = "test"};
	struct narcache *nc = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(narcache_open(&nc, &cfg, &err), CAIRN_EIO);
	assert_null(nc);
	assert_non_null(strstr(cairn_error_msg(&err), "test: cannot create the cache directory"));
	assert_non_null(strstr(cairn_error_msg(&err), dir));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_eviction_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pins, setup, teardown),
		cmocka_unit_test_setup_teardown(test_evict_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_debris, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dirty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
