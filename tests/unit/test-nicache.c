#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cairn/nicache.h"
#include "../../lib/nicache-int.h"

#define S1 "https://cache.example.org"
#define S2 "http://127.0.0.1:8080/mirror"
#define H1 "x6b6ah9iya8w14wv5fzzwj36lf2yyghw"
#define H2 "pp25ahmcbii9zkwhkaxdr3ihh9439x9p"
#define T0 INT64_C(1700000000)
#define DAY (24 * 3600)

static const char narinfo[] =
    "StorePath: /nix/store/" H1 "-appvec-3.0\n"
    "URL: nar/abc.nar.xz\nCompression: xz\n"
    "NarHash: sha256:0000000000000000000000000000000000000000000000000000\n"
    "NarSize: 584\n";

struct fx {
	char dir[64];
	char path[160];
	struct cairn_nicache *c;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct cairn_nicache_config cfg;
	struct cairn_error err;

	assert_non_null(f);
	strcpy(f->dir, "/tmp/cairn-nicache.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/a/b/narinfo.sqlite", f->dir);
	cairn_nicache_config_init(&cfg);
	cfg.path = f->path;
	cairn_error_init(&err);
	assert_int_equal(cairn_nicache_open(&f->c, &cfg, T0, &err), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	cairn_nicache_free(f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct cairn_nicache *open_again(struct fx *f, int busy_ms, int64_t now)
{
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c = NULL;

	cairn_nicache_config_init(&cfg);
	cfg.path = f->path;
	cfg.busy_timeout_ms = busy_ms;
	assert_int_equal(cairn_nicache_open(&c, &cfg, now, NULL), 0);
	return c;
}

static int lookup(struct cairn_nicache *c, const char *srv, const char *h, int64_t now, char **text)
{
	*text = NULL;
	return cairn_nicache_lookup(c, srv, h, now, text, NULL, NULL);
}

static void test_dirs_private(void **state)
{
	struct fx *f = *state;
	char d[160];
	struct stat st;

	snprintf(d, sizeof(d), "%s/a", f->dir);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	snprintf(d, sizeof(d), "%s/a/b", f->dir);
	assert_int_equal(stat(d, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(f->path, &st), 0);
}

static void test_wal_mode(void **state)
{
	struct fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_present(void **state)
{
	struct fx *f = *state;
	char *text = NULL;
	size_t len = 0;

	assert_int_equal(
	    cairn_nicache_put_present(f->c, S1, H1, narinfo, strlen(narinfo), T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_lookup(f->c, S1, H1, T0 + 1, &text, &len, NULL),
			 CAIRN_NICACHE_PRESENT);
	assert_int_equal(len, strlen(narinfo));
	assert_string_equal(text, narinfo);
	free(text);
	/* Per server, per hash part. */
	assert_int_equal(lookup(f->c, S2, H1, T0 + 1, &text), CAIRN_NICACHE_UNKNOWN);
	assert_null(text);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 1, &text), CAIRN_NICACHE_UNKNOWN);
	/* Default positive TTL: 30 days, as Nix. */
	assert_int_equal(lookup(f->c, S1, H1, T0 + 30 * DAY - 1, &text), CAIRN_NICACHE_PRESENT);
	free(text);
	assert_int_equal(lookup(f->c, S1, H1, T0 + 30 * DAY, &text), CAIRN_NICACHE_UNKNOWN);
	assert_null(text);
}

static void test_max_age(void **state)
{
	struct fx *f = *state;
	char *text;

	assert_int_equal(cairn_nicache_put_present(f->c, S1, H1, "x", 1, T0, 60, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H1, T0 + 59, &text), CAIRN_NICACHE_PRESENT);
	assert_string_equal(text, "x");
	free(text);
	assert_int_equal(lookup(f->c, S1, H1, T0 + 60, &text), CAIRN_NICACHE_UNKNOWN);
	/* A huge max-age is capped. */
	assert_int_equal(
	    cairn_nicache_put_present(f->c, S1, H1, "y", 1, T0, INT64_C(1) << 50, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H1, T0 + CAIRN_NICACHE_TTL_MAX - 1, &text),
			 CAIRN_NICACHE_PRESENT);
	free(text);
	assert_int_equal(lookup(f->c, S1, H1, T0 + CAIRN_NICACHE_TTL_MAX, &text),
			 CAIRN_NICACHE_UNKNOWN);
	/* max-age 0: stale at once. */
	assert_int_equal(cairn_nicache_put_present(f->c, S1, H1, "z", 1, T0, 0, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H1, T0, &text), CAIRN_NICACHE_UNKNOWN);
}

static void test_absent(void **state)
{
	struct fx *f = *state;
	char *text;

	assert_int_equal(cairn_nicache_put_absent(f->c, S1, H2, T0, -1, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 3599, &text), CAIRN_NICACHE_ABSENT);
	assert_null(text);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 3600, &text), CAIRN_NICACHE_UNKNOWN);
	assert_int_equal(cairn_nicache_put_absent(f->c, S1, H2, T0, 10, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 9, &text), CAIRN_NICACHE_ABSENT);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 10, &text), CAIRN_NICACHE_UNKNOWN);
	/* The latest answer wins, both ways. */
	assert_int_equal(cairn_nicache_put_present(f->c, S1, H2, "now here", 8, T0 + 1, -1, NULL),
			 0);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 2, &text), CAIRN_NICACHE_PRESENT);
	assert_string_equal(text, "now here");
	free(text);
	assert_int_equal(cairn_nicache_put_absent(f->c, S1, H2, T0 + 3, -1, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H2, T0 + 4, &text), CAIRN_NICACHE_ABSENT);
}

static void test_configured_ttls(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c;
	char *text;

	cairn_nicache_config_init(&cfg);
	cfg.path = f->path;
	cfg.positive_ttl = 100;
	cfg.negative_ttl = 0; /* negative caching off */
	assert_int_equal(cairn_nicache_open(&c, &cfg, T0, NULL), 0);
	assert_int_equal(cairn_nicache_put_present(c, S1, H1, "p", 1, T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_put_absent(c, S1, H2, T0, -1, NULL), 0);
	assert_int_equal(lookup(c, S1, H1, T0 + 99, &text), CAIRN_NICACHE_PRESENT);
	free(text);
	assert_int_equal(lookup(c, S1, H1, T0 + 100, &text), CAIRN_NICACHE_UNKNOWN);
	assert_int_equal(lookup(c, S1, H2, T0, &text), CAIRN_NICACHE_UNKNOWN);
	cairn_nicache_free(c);
	cfg.positive_ttl = CAIRN_NICACHE_TTL_MAX + 1;
	c = (struct cairn_nicache *)0x1;
	assert_int_equal(cairn_nicache_open(&c, &cfg, T0, NULL), CAIRN_EINVAL);
	assert_ptr_equal(c, (struct cairn_nicache *)0x1);
}

static void test_down(void **state)
{
	struct fx *f = *state;
	char *reason = NULL, longr[1000];

	assert_int_equal(cairn_nicache_is_down(f->c, S2, T0, &reason, NULL), 0);
	assert_null(reason);
	assert_int_equal(cairn_nicache_put_down(f->c, S2, "cannot connect: refused", T0, NULL), 0);
	assert_int_equal(cairn_nicache_is_down(f->c, S2, T0 + 599, &reason, NULL), 1);
	assert_string_equal(reason, "cannot connect: refused");
	free(reason);
	assert_int_equal(cairn_nicache_is_down(f->c, S1, T0 + 1, NULL, NULL), 0);
	assert_int_equal(cairn_nicache_is_down(f->c, S2, T0 + 600, NULL, NULL), 0);
	memset(longr, 'r', sizeof(longr) - 1);
	longr[sizeof(longr) - 1] = '\0';
	assert_int_equal(cairn_nicache_put_down(f->c, S2, longr, T0, NULL), 0);
	assert_int_equal(cairn_nicache_is_down(f->c, S2, T0, &reason, NULL), 1);
	assert_int_equal(strlen(reason), CAIRN_NICACHE_REASON_MAX);
	free(reason);
}

/* A verification failure demotes a server for a day, longer than down. */
static void test_demoted(void **state)
{
	struct fx *f = *state;
	char *reason = NULL;
	assert_int_equal(cairn_nicache_is_demoted(f->c, S2, T0, &reason, NULL), 0);
	assert_int_equal(
	    cairn_nicache_put_demoted(f->c, S2, "sent bytes that failed verification", T0, NULL), 0);
	assert_int_equal(cairn_nicache_is_demoted(f->c, S2, T0 + DAY - 1, &reason, NULL), 1);
	assert_string_equal(reason, "sent bytes that failed verification");
	free(reason);
	assert_int_equal(cairn_nicache_is_down(f->c, S2, T0 + 1, NULL, NULL), 0); /* not down */
	assert_int_equal(cairn_nicache_is_demoted(f->c, S1, T0, NULL, NULL), 0);
	assert_int_equal(cairn_nicache_is_demoted(f->c, S2, T0 + DAY, NULL, NULL), 0);
}

/* Measured speeds are kept per server and blended, half old, half new. */
static void test_speed(void **state)
{
	struct fx *f = *state;
	uint64_t rate = 7, rtt = 7;
	assert_int_equal(cairn_nicache_get_speed(f->c, S1, &rate, &rtt, NULL), 0);
	assert_int_equal(cairn_nicache_put_speed(f->c, S1, 1000000, 40, T0, NULL), 0);
	assert_int_equal(cairn_nicache_get_speed(f->c, S1, &rate, &rtt, NULL), 1);
	assert_int_equal(rate, 1000000);
	assert_int_equal(rtt, 40);
	assert_int_equal(cairn_nicache_put_speed(f->c, S1, 200000, 120, T0 + 1, NULL), 0);
	assert_int_equal(cairn_nicache_get_speed(f->c, S1, &rate, &rtt, NULL), 1);
	assert_int_equal(rate, 600000);
	assert_int_equal(rtt, 80);
	assert_int_equal(cairn_nicache_get_speed(f->c, S2, &rate, &rtt, NULL), 0);
	assert_int_equal(cairn_nicache_put_speed(f->c, S2, UINT64_MAX, 1, T0, NULL), CAIRN_EINVAL);
}

/* A cache made by version 1 (no speeds) gets the table when opened. */
static void test_speed_upgrade(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c = NULL;
	sqlite3 *db;
	uint64_t rate, rtt;
	cairn_nicache_free(f->c);
	f->c = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "DROP TABLE speeds; PRAGMA user_version = 1", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	cairn_nicache_config_init(&cfg);
	cfg.path = f->path;
	assert_int_equal(cairn_nicache_open(&c, &cfg, T0, NULL), 0);
	assert_int_equal(cairn_nicache_put_speed(c, S1, 5, 6, T0, NULL), 0);
	assert_int_equal(cairn_nicache_get_speed(c, S1, &rate, &rtt, NULL), 1);
	assert_int_equal(rate, 5);
	cairn_nicache_free(c);
}

static void test_info(void **state)
{
	struct fx *f = *state;
	const char *ci = "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";
	char *text = NULL;
	size_t len;

	assert_int_equal(cairn_nicache_get_info(f->c, S1, T0, &text, &len, NULL), 0);
	assert_null(text);
	assert_int_equal(cairn_nicache_put_info(f->c, S1, ci, strlen(ci), T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_get_info(f->c, S1, T0 + 7 * DAY - 1, &text, &len, NULL), 1);
	assert_string_equal(text, ci);
	assert_int_equal(len, strlen(ci));
	free(text);
	text = NULL;
	assert_int_equal(cairn_nicache_get_info(f->c, S1, T0 + 7 * DAY, &text, &len, NULL), 0);
	assert_null(text);
	assert_int_equal(cairn_nicache_get_info(f->c, S2, T0, &text, &len, NULL), 0);
}

static void test_bad_input(void **state)
{
	struct fx *f = *state;
	struct cairn_error err;
	char *text = (char *)"untouched", *big, url[CAIRN_NICACHE_URL_MAX + 2];
	static const char *const bad[] = {
	    "x6b6ah9iya8w14wv5fzzwj36lf2yygh",	 /* 31 */
	    "x6b6ah9iya8w14wv5fzzwj36lf2yyghww", /* 33 */
	    "e6b6ah9iya8w14wv5fzzwj36lf2yyghw",	 /* 'e' is not nix32 */
	    "X6B6AH9IYA8W14WV5FZZWJ36LF2YYGHW",	 "../../etc/passwd", "",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cairn_error_init(&err);
		assert_int_equal(cairn_nicache_lookup(f->c, S1, bad[i], T0, &text, NULL, &err),
				 CAIRN_EFORMAT);
		assert_non_null(strstr(err.msg, "hash part"));
		assert_int_equal(cairn_nicache_put_absent(f->c, S1, bad[i], T0, -1, NULL),
				 CAIRN_EFORMAT);
	}
	assert_string_equal(text, "untouched");
	assert_int_equal(cairn_nicache_put_present(f->c, S1, H1, "a\0b", 3, T0, -1, NULL),
			 CAIRN_EFORMAT);
	big = calloc(1, CAIRN_NICACHE_TEXT_MAX + 2);
	assert_non_null(big);
	memset(big, 'a', CAIRN_NICACHE_TEXT_MAX + 1);
	assert_int_equal(
	    cairn_nicache_put_present(f->c, S1, H1, big, CAIRN_NICACHE_TEXT_MAX + 1, T0, -1, NULL),
	    CAIRN_ELIMIT);
	/* Exactly the limit is fine. */
	assert_int_equal(
	    cairn_nicache_put_present(f->c, S1, H1, big, CAIRN_NICACHE_TEXT_MAX, T0, -1, NULL), 0);
	assert_int_equal(lookup(f->c, S1, H1, T0, &text), CAIRN_NICACHE_PRESENT);
	assert_int_equal(strlen(text), CAIRN_NICACHE_TEXT_MAX);
	free(text);
	free(big);
	memset(url, 'u', sizeof(url) - 1);
	url[sizeof(url) - 1] = '\0';
	assert_int_equal(cairn_nicache_put_absent(f->c, url, H1, T0, -1, NULL), CAIRN_ELIMIT);
	assert_int_equal(cairn_nicache_put_absent(f->c, "", H1, T0, -1, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_nicache_put_absent(f->c, S1, H1, -5, -1, NULL), CAIRN_EINVAL);
	/* Nothing above was written. */
	assert_int_equal(lookup(f->c, S1, H2, T0, &text), CAIRN_NICACHE_UNKNOWN);
}

static void hashpart_of(unsigned i, char out[33])
{
	static const char nix32[] = "0123456789abcdfghijklmnpqrsvwxyz";

	for (int k = 0; k < 32; k++) {
		out[k] = nix32[i % 32];
		i /= 32;
	}
	out[32] = '\0';
}

static void test_batch(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache *other;
	char h[33], *text;
	unsigned i;

	assert_int_equal(cairn_nicache_begin(f->c, NULL), 0);
	assert_int_equal(cairn_nicache_begin(f->c, NULL), CAIRN_EINVAL);
	for (i = 0; i < 5000; i++) {
		hashpart_of(i, h);
		if (i % 2)
			assert_int_equal(cairn_nicache_put_absent(f->c, S1, h, T0, -1, NULL), 0);
		else
			assert_int_equal(
			    cairn_nicache_put_present(f->c, S1, h, h, 32, T0, -1, NULL), 0);
	}
	/* Inside the batch its writes are visible... */
	hashpart_of(4998, h);
	assert_int_equal(lookup(f->c, S1, h, T0, &text), CAIRN_NICACHE_PRESENT);
	free(text);
	/* ...to nobody else until commit (WAL: readers are not blocked). */
	other = open_again(f, 100, T0);
	assert_int_equal(lookup(other, S1, h, T0, &text), CAIRN_NICACHE_UNKNOWN);
	/* A second writer waits its busy timeout, then fails cleanly. */
	assert_int_equal(cairn_nicache_put_absent(other, S2, h, T0, -1, NULL), CAIRN_EIO);
	assert_int_equal(cairn_nicache_commit(f->c, NULL), 0);
	assert_int_equal(cairn_nicache_commit(f->c, NULL), CAIRN_EINVAL);
	for (i = 0; i < 5000; i += 499) {
		hashpart_of(i, h);
		text = NULL;
		assert_int_equal(lookup(other, S1, h, T0, &text),
				 i % 2 ? CAIRN_NICACHE_ABSENT : CAIRN_NICACHE_PRESENT);
		if (!(i % 2))
			assert_string_equal(text, h);
		free(text);
	}
	assert_int_equal(cairn_nicache_put_absent(other, S2, h, T0, -1, NULL), 0);
	/* Rollback drops a batch. */
	assert_int_equal(cairn_nicache_begin(other, NULL), 0);
	assert_int_equal(cairn_nicache_put_present(other, S2, H2, "gone", 4, T0, -1, NULL), 0);
	cairn_nicache_rollback(other);
	assert_int_equal(lookup(f->c, S2, H2, T0, &text), CAIRN_NICACHE_UNKNOWN);
	/* Freeing a handle with an open batch rolls it back too. */
	assert_int_equal(cairn_nicache_begin(other, NULL), 0);
	assert_int_equal(cairn_nicache_put_present(other, S2, H2, "gone", 4, T0, -1, NULL), 0);
	cairn_nicache_free(other);
	assert_int_equal(lookup(f->c, S2, H2, T0, &text), CAIRN_NICACHE_UNKNOWN);
}

static int64_t count_rows(struct fx *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t n;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Several processes writing at once: every write lands. */
static void test_processes(void **state)
{
	struct fx *f = *state;
	enum { NPROC = 3, EACH = 300, BATCHED = 160 /* a multiple of 20 */ };
	pid_t pids[NPROC];
	char h[33], *text;
	int status;

	/* SQLite connections must not cross a fork: children open their own. */
	cairn_nicache_free(f->c);
	f->c = NULL;
	for (int p = 0; p < NPROC; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct cairn_nicache *c = open_again(f, 10000, T0);
			int bad = 0;
			for (unsigned i = 0; i < EACH; i++) {
				hashpart_of((unsigned)p * EACH + i, h);
				/* about half in batches of 20, the rest one by one */
				if (i % 20 == 0 && i < BATCHED)
					bad |= cairn_nicache_begin(c, NULL) != 0;
				bad |=
				    cairn_nicache_put_present(c, S1, h, h, 32, T0, -1, NULL) != 0;
				if (i % 20 == 19 && i < BATCHED)
					bad |= cairn_nicache_commit(c, NULL) != 0;
			}
			cairn_nicache_free(c);
			_exit(bad);
		}
	}
	for (int p = 0; p < NPROC; p++) {
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(count_rows(f, "SELECT count(*) FROM narinfos"), NPROC * EACH);
	f->c = open_again(f, 1000, T0);
	for (unsigned i = 0; i < NPROC * EACH; i++) {
		hashpart_of(i, h);
		assert_int_equal(lookup(f->c, S1, h, T0, &text), CAIRN_NICACHE_PRESENT);
		assert_string_equal(text, h);
		free(text);
	}
}

static void test_purge(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache *later;
	char *text;

	assert_int_equal(cairn_nicache_put_present(f->c, S1, H1, "p", 1, T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_put_absent(f->c, S1, H2, T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_put_absent(f->c, S2, H2, T0, -1, NULL), 0);
	assert_int_equal(cairn_nicache_purge(f->c, T0 + 10, NULL), 0);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM narinfos"), 3);
	assert_int_equal(cairn_nicache_purge(f->c, T0 + 3600, NULL), 2);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM narinfos"), 1);
	/* S2 has nothing left: its row goes too. */
	assert_int_equal(count_rows(f, "SELECT count(*) FROM servers"), 1);
	assert_int_equal(lookup(f->c, S1, H1, T0 + 3600, &text), CAIRN_NICACHE_PRESENT);
	free(text);
	/* Opening purges when the last purge is a day old, not sooner. */
	later = open_again(f, 1000, T0 + 3600 + DAY - 1);
	cairn_nicache_free(later);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM narinfos"), 1);
	later = open_again(f, 1000, T0 + 31 * DAY);
	cairn_nicache_free(later);
	assert_int_equal(count_rows(f, "SELECT count(*) FROM narinfos"), 0);
}

static void test_newer_schema(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c = NULL;
	struct cairn_error err;
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 3", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	cairn_nicache_config_init(&cfg);
	cfg.path = f->path;
	cairn_error_init(&err);
	assert_int_equal(cairn_nicache_open(&c, &cfg, T0, &err), CAIRN_EUNSUPPORTED);
	assert_null(c);
	assert_non_null(strstr(err.msg, "schema version 3"));
}

static void test_not_a_database(void **state)
{
	struct fx *f = *state;
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c = NULL;
	struct cairn_error err;
	char path[200];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/garbage.sqlite", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	for (int i = 0; i < 100; i++)
		fputs("this is not an SQLite database at all\n", fp);
	fclose(fp);
	cairn_nicache_config_init(&cfg);
	cfg.path = path;
	cairn_error_init(&err);
	assert_int_equal(cairn_nicache_open(&c, &cfg, T0, &err), CAIRN_EIO);
	assert_null(c);
	assert_non_null(strstr(err.msg, "garbage.sqlite"));
}

static void test_default_path(void **state)
{
	char *p = NULL;
	char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
	char *xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;

	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	setenv("HOME", "/home/u", 1);
	assert_int_equal(cairn_nicache_default_path(&p, NULL), 0);
	assert_string_equal(p, "/x/cache/cairn/narinfo.sqlite");
	free(p);
	setenv("XDG_CACHE_HOME", "relative", 1);
	assert_int_equal(cairn_nicache_default_path(&p, NULL), 0);
	assert_string_equal(p, "/home/u/.cache/cairn/narinfo.sqlite");
	free(p);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	p = NULL;
	assert_int_equal(cairn_nicache_default_path(&p, NULL), CAIRN_ENOENT);
	assert_null(p);
	if (home)
		setenv("HOME", home, 1);
	if (xdg)
		setenv("XDG_CACHE_HOME", xdg, 1);
	free(home);
	free(xdg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dirs_private, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_present, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_max_age, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_absent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_configured_ttls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_down, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_demoted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_speed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_speed_upgrade, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_info, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_processes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
	    cmocka_unit_test(test_default_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
