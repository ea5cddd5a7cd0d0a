/* The mirror's cache store (lib/edge-store.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cairn/hash.h"
#include "../../lib/edge-int.h"

static char dir[] = "/tmp/cairn-test-edge.XXXXXX";

/* A temporary file of n bytes of `c`, committed as `path`. */
static int put(struct edge_store *s, const char *path, size_t n, char c)
{
	char tmp[4096];
	int fd;
	uint8_t sha[32];
	char *buf = malloc(n);
	assert_non_null(buf);
	memset(buf, c, n);
	assert_int_equal(edge_store_tmp_open(s, tmp, sizeof(tmp), &fd, NULL), 0);
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
	close(fd);
	cairn_sha256(buf, n, sha);
	free(buf);
	int rc = edge_store_nar_commit(s, path, tmp, sha, n, NULL);
	if (rc < 0)
		assert_int_equal(access(tmp, F_OK), -1); /* the temp file is gone */
	return rc;
}

static int has(struct edge_store *s, const char *path)
{
	char name[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	return edge_store_nar_get(s, path, name, &size);
}

static size_t count_dir(const char *sub)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "ls -A %s/%s | wc -l", dir, sub);
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

static int n_ni;
static int count_ni(void *ctx, const char *hash, const char *text, size_t len, int64_t fetched)
{
	(void)ctx;
	(void)text;
	if (!strcmp(hash, "h2"))
		assert_int_equal(len, 5);
	assert_true(fetched == 42 || fetched == 100);
	n_ni++;
	return 0;
}

static void test_store(void **state)
{
	(void)state;
	struct edge_store *s;
	struct edge_store_stats st;
	char name[EDGE_FILE_NAME_LEN + 1], path[4200];
	uint64_t size;
	assert_non_null(mkdtemp(dir));

	assert_int_equal(edge_store_open(&s, dir, 2500, NULL), 0);
	assert_int_equal(put(s, "nar/a", 1000, 'a'), 0);
	assert_int_equal(put(s, "nar/b", 1000, 'b'), 0);
	assert_true(has(s, "nar/a")); /* a is now more recent than b */
	assert_int_equal(put(s, "nar/c", 1000, 'c'), 0);
	assert_false(has(s, "nar/b"));
	assert_true(has(s, "nar/a"));
	assert_true(has(s, "nar/c"));
	edge_store_stats(s, &st);
	assert_int_equal(st.n_nars, 2);
	assert_int_equal(st.bytes, 2000);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(count_dir("data"), 2);
	/* larger than the whole cache: refused, nothing evicted */
	assert_int_equal(put(s, "nar/huge", 3000, 'h'), CAIRN_ELIMIT);
	assert_true(has(s, "nar/a"));
	/* the file is named by its SHA-256 */
	assert_int_equal(edge_store_nar_get(s, "nar/c", name, &size), 1);
	assert_int_equal(size, 1000);
	assert_int_equal(strlen(name), 64);
	edge_store_free(s);

	/* debris of a crash: a partial download, a file without a row, a row
	 * whose file is gone */
	snprintf(path, sizeof(path), "%s/tmp/dl-partial", dir);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	snprintf(path, sizeof(path), "%s/data/%064d", dir, 0);
	close(open(path, O_CREAT | O_WRONLY, 0644));
	assert_int_equal(edge_store_open(&s, dir, 2500, NULL), 0);
	assert_int_equal(edge_store_nar_get(s, "nar/a", name, &size), 1);
	edge_store_free(s);
	snprintf(path, sizeof(path), "%s/data/%s", dir, name);
	assert_int_equal(unlink(path), 0);

	assert_int_equal(edge_store_open(&s, dir, 2500, NULL), 0);
	assert_int_equal(count_dir("tmp"), 0);
	assert_false(has(s, "nar/a"));
	assert_true(has(s, "nar/c"));
	assert_int_equal(count_dir("data"), 1);
	edge_store_stats(s, &st);
	assert_int_equal(st.n_nars, 1);
	/* narinfos survive too */
	assert_int_equal(edge_store_narinfo_put(s, "h1", "text", 4, 42, NULL), 0);
	assert_int_equal(edge_store_narinfo_put(s, "h2", "newer", 5, 100, NULL), 0);
	edge_store_free(s);
	assert_int_equal(edge_store_open(&s, dir, 0, NULL), 0);
	assert_int_equal(edge_store_narinfo_each(s, count_ni, NULL, NULL), 0);
	assert_int_equal(n_ni, 2);
	assert_int_equal(edge_store_narinfo_purge(s, 50, NULL), 0);
	n_ni = 0;
	assert_int_equal(edge_store_narinfo_each(s, count_ni, NULL, NULL), 0);
	assert_int_equal(n_ni, 1);
	/* each upstream's nix-cache-info, kept across a restart */
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(edge_store_info_get(s, "http://a", 4096, &text, &len, NULL), 0);
	assert_int_equal(edge_store_info_put(s, "http://a", "StoreDir: /nix/store\n", 21, NULL), 0);
	assert_int_equal(edge_store_info_put(s, "http://b", "old", 3, NULL), 0);
	assert_int_equal(edge_store_info_put(s, "http://b", "StoreDir: /gnu/store\n", 21, NULL), 0);
	edge_store_free(s);
	assert_int_equal(edge_store_open(&s, dir, 0, NULL), 0);
	assert_int_equal(edge_store_info_get(s, "http://b", 4096, &text, &len, NULL), 1);
	assert_int_equal(len, 21);
	assert_memory_equal(text, "StoreDir: /gnu/store\n", 21);
	free(text);
	text = NULL;
	/* longer than the caller takes: as if there were none */
	assert_int_equal(edge_store_info_get(s, "http://a", 20, &text, &len, NULL), 0);
	assert_null(text);
	edge_store_free(s);

	/* rows are found by file, as the cache evicts and flushes, through an
	 * index (made on open of a cache an older version made) */
	{
		sqlite3 *db;
		sqlite3_stmt *q;
		char plan[256] = "";
		snprintf(path, sizeof(path), "%s/index.sqlite", dir);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "DROP INDEX nar_file", NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		assert_int_equal(edge_store_open(&s, dir, 2500, NULL), 0);
		edge_store_free(s);
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_prepare_v2(db,
						    "EXPLAIN QUERY PLAN UPDATE nar SET atime = 1 "
						    "WHERE file = 'x'",
						    -1, &q, NULL),
				 SQLITE_OK);
		while (sqlite3_step(q) == SQLITE_ROW)
			snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan), "%s;",
				 (const char *)sqlite3_column_text(q, 3));
		sqlite3_finalize(q);
		sqlite3_close(db);
		assert_non_null(strstr(plan, "nar_file"));
	}

	/* a path cached again with other bytes: its old file goes with it,
	 * not left on disk uncounted until a restart */
	assert_int_equal(edge_store_open(&s, dir, 2500, NULL), 0);
	assert_int_equal(put(s, "nar/c", 500, 'C'), 0);
	assert_int_equal(count_dir("data"), 1);
	assert_int_equal(put(s, "nar/a", 1000, 'a'), 0);
	assert_int_equal(put(s, "nar/b", 1000, 'b'), 0);
	edge_store_stats(s, &st);
	assert_int_equal(st.bytes, 2500);
	edge_store_free(s);
	/* a smaller bound than the last run's: kept at open, least recently
	 * used out first */
	assert_int_equal(edge_store_open(&s, dir, 1500, NULL), 0);
	edge_store_stats(s, &st);
	assert_true(st.bytes <= 1500);
	assert_int_equal(st.evictions, 2);
	assert_true(has(s, "nar/b"));
	assert_false(has(s, "nar/c"));
	assert_int_equal(count_dir("data"), 1);
	edge_store_free(s);

	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* The serve path pins what it found until it has the file open: an
 * eviction in between (another download committing) must not take it. */
static void test_pin(void **state)
{
	(void)state;
	char pdir[] = "/tmp/cairn-test-edgepin.XXXXXX";
	struct edge_store *s;
	struct edge_store_stats st;
	char name[EDGE_FILE_NAME_LEN + 1], name_b[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	assert_non_null(mkdtemp(pdir));
	assert_int_equal(edge_store_open(&s, pdir, 2500, NULL), 0);
	assert_int_equal(put(s, "nar/a", 1000, 'a'), 0);
	assert_int_equal(put(s, "nar/b", 1000, 'b'), 0);
	assert_int_equal(edge_store_nar_pin(s, "nar/a", name, &size), 1);
	assert_int_equal(size, 1000);
	assert_true(has(s, "nar/b")); /* a is the least recently used now */
	assert_int_equal(put(s, "nar/c", 1000, 'c'), 0);
	/* b went instead of the pinned a, whose file still opens */
	int fd = openat(edge_store_data_fd(s), name, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	assert_true(has(s, "nar/a"));
	assert_false(has(s, "nar/b"));
	edge_store_nar_unpin(s, name);

	/* pins holding the cache over its bound: the last unpin trims it */
	assert_int_equal(edge_store_nar_pin(s, "nar/a", name, &size), 1);
	assert_int_equal(edge_store_nar_pin(s, "nar/c", name_b, &size), 1);
	assert_int_equal(put(s, "nar/d", 1000, 'd'), 0);
	edge_store_stats(s, &st);
	assert_int_equal(st.bytes, 3000);
	edge_store_nar_unpin(s, name);
	edge_store_nar_unpin(s, name_b);
	edge_store_stats(s, &st);
	assert_true(st.bytes <= 2500);
	assert_true(has(s, "nar/d"));
	/* not cached: nothing pinned */
	assert_int_equal(edge_store_nar_pin(s, "nar/none", name, &size), 0);
	edge_store_free(s);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pdir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_store),
		cmocka_unit_test(test_pin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
