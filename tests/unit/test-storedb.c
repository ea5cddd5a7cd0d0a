#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/storedb.h"
#include "cairn/storedb-write.h"
#include "../../lib/storedb-sql.h"

/*
 * The fixture is a database with the shape Nix 2.8 creates (ValidPaths,
 * Refs pointing at ValidPaths ids, DerivationOutputs, the same unique and
 * secondary indexes), filled with the three-path closure of
 * tests/vectors/nix/closure.json.  Guix's variant lacks the last three
 * ValidPaths columns.
 */
#define NIX_VALIDPATHS                                                                             \
	"CREATE TABLE ValidPaths (id integer primary key autoincrement not null, "                 \
	"path text unique not null, hash text not null, registrationTime integer not null, "       \
	"deriver text, narSize integer, ultimate integer, sigs text, ca text);"
#define GUIX_VALIDPATHS                                                                            \
	"CREATE TABLE ValidPaths (id integer primary key autoincrement not null, "                 \
	"path text unique not null, hash text not null, registrationTime integer not null, "       \
	"deriver text, narSize integer);"
#define COMMON_TABLES                                                                              \
	"CREATE TABLE Refs (referrer integer not null, reference integer not null, "               \
	"primary key (referrer, reference), "                                                      \
	"foreign key (referrer) references ValidPaths(id) on delete cascade, "                     \
	"foreign key (reference) references ValidPaths(id) on delete restrict);"                   \
	"CREATE INDEX IndexReferrer ON Refs(referrer);"                                            \
	"CREATE INDEX IndexReference ON Refs(reference);"                                          \
	"CREATE TABLE DerivationOutputs (drv integer not null, id text not null, "                 \
	"path text not null, primary key (drv, id), "                                              \
	"foreign key (drv) references ValidPaths(id) on delete cascade);"                          \
	"CREATE INDEX IndexDerivationOutputs ON DerivationOutputs(path);"

/* From tests/vectors/nix/closure.json (made by the real Nix). */
#define APP "/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0"
#define TOOL "/nix/store/6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1"
#define LIB "/nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0"
static const struct vecpath {
	const char *path, *sri, *deriver;
	int64_t size;
} vp[] = {
    /* inserted in this order: ids 1, 2, 3 */
    {LIB, "sha256-C8vO490cV6EFamM48DCOFH0SX4zMuW7oI0Tl8FjEp+c=",
     "/nix/store/fk75qfngj7shrngxxbk9hcnbvxps6024-libvec-1.0.drv", 464},
    {APP, "sha256-poWYKSECtVNEImxmQdGbL/GiShuaYQScoMTYO08tcjE=",
     "/nix/store/1pkma45fwh8sv3qwm815l17cwn44jij2-appvec-3.0.drv", 584},
    {TOOL, "sha256-qeg/73O2tjfKtVgWUDlIZHz/cFUx0FufkJxVXj4jzdw=",
     "/nix/store/4wwk5hb2y5kkgps84nnk373rqy0cqnbq-toolvec-2.1.drv", 552},
};
#define REGTIME 1795526133

static char tmpdir[64];

static void die_sql(sqlite3 *db, const char *what)
{
	fail_msg("%s: %s", what, sqlite3_errmsg(db));
}

static void exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
}

static void insert_path(sqlite3 *db, int guix, const char *path, const char *hash,
			const char *deriver, int64_t size, const char *sigs, const char *ca)
{
	sqlite3_stmt *st;
	const char *q = guix
			    ? "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, "
			      "narSize) VALUES (?1, ?2, ?3, ?4, ?5)"
			    : "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, "
			      "narSize, ultimate, sigs, ca) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7)";
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		die_sql(db, "prepare insert");
	sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, REGTIME);
	if (deriver)
		sqlite3_bind_text(st, 4, deriver, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, size);
	if (!guix) {
		if (sigs)
			sqlite3_bind_text(st, 6, sigs, -1, SQLITE_STATIC);
		if (ca)
			sqlite3_bind_text(st, 7, ca, -1, SQLITE_STATIC);
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		die_sql(db, "insert");
	sqlite3_finalize(st);
}

/* The database form of a hash: "sha256:<base16>". */
static void db_hash(const char *sri, char out[CAIRN_HASH_STR_MAX])
{
	struct cairn_hash h;
	assert_int_equal(cairn_hash_parse(sri, strlen(sri), 0, &h, NULL), 0);
	assert_true(cairn_hash_format(&h, CAIRN_HASH_BASE16, out, CAIRN_HASH_STR_MAX) > 0);
}

/* Create NAME in tmpdir with the vector closure; returns the open writer. */
static sqlite3 *make_db(const char *name, int guix, const char *journal, char *path, size_t pathcap)
{
	sqlite3 *db;
	char q[128];
	snprintf(path, pathcap, "%s/%s", tmpdir, name);
	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die_sql(db, "open");
	snprintf(q, sizeof(q), "PRAGMA journal_mode = %s", journal);
	exec(db, q);
	exec(db, guix ? GUIX_VALIDPATHS : NIX_VALIDPATHS);
	exec(db, COMMON_TABLES);
	for (size_t i = 0; i < 3; i++) {
		char h[CAIRN_HASH_STR_MAX];
		db_hash(vp[i].sri, h);
		insert_path(db, guix, vp[i].path, h, vp[i].deriver, vp[i].size, NULL, NULL);
	}
	/* app -> lib, app -> tool, tool -> lib; inserted so that id order
	 * (lib=1, tool=3) differs from path order (6rp... < pp2...). */
	exec(db, "INSERT INTO Refs VALUES (2, 1), (2, 3), (3, 1)");
	return db;
}

static struct cairn_storedb *open_db(const char *path, const char *dir, unsigned flags)
{
	struct cairn_storedb_config cfg;
	struct cairn_storedb *sdb = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_NIX);
	cfg.db_path = path;
	if (dir)
		cfg.store_dir = dir;
	cfg.flags = flags;
	int rc = cairn_storedb_open(&sdb, &cfg, &err);
	if (rc)
		fail_msg("open %s: %s", path, cairn_error_msg(&err));
	return sdb;
}

static void check_vec_fields(const struct cairn_storedb_pathinfo *pi, size_t i)
{
	struct cairn_hash want;
	assert_string_equal(pi->path, vp[i].path);
	assert_int_equal(cairn_hash_parse(vp[i].sri, strlen(vp[i].sri), 0, &want, NULL), 0);
	assert_true(cairn_hash_equal(&pi->nar_hash, &want));
	assert_int_equal(pi->nar_size, vp[i].size);
	assert_string_equal(pi->deriver, vp[i].deriver);
}

static void check_vec(const struct cairn_storedb_pathinfo *pi, size_t i)
{
	check_vec_fields(pi, i);
	assert_int_equal(pi->registration_time, REGTIME);
}

static void test_query_closure_vectors(void **state)
{
	(void)state;
	char path[256];
	sqlite3 *w = make_db("nix.sqlite", 0, "wal", path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_pathinfo pi;
	struct cairn_error err;

	assert_int_equal(cairn_storedb_is_immutable(db), 0);
	assert_string_equal(cairn_storedb_store_dir(db), "/nix/store");
	for (size_t i = 0; i < 3; i++) {
		cairn_error_init(&err);
		const char *hp = vp[i].path + strlen("/nix/store/");
		char hashpart[33];
		memcpy(hashpart, hp, 32);
		hashpart[32] = '\0';
		assert_int_equal(cairn_storedb_query_hashpart(db, hashpart, &pi, &err), 0);
		check_vec(&pi, i);
		assert_int_equal(pi.ultimate, 1);
		assert_int_equal(pi.nsigs, 0);
		assert_null(pi.ca);
		if (i == 1) {
			/* closure.json lists appvec's references in this order */
			assert_int_equal(pi.nrefs, 2);
			assert_string_equal(pi.refs[0], TOOL);
			assert_string_equal(pi.refs[1], LIB);
		} else if (i == 2) {
			assert_int_equal(pi.nrefs, 1);
			assert_string_equal(pi.refs[0], LIB);
		} else {
			assert_int_equal(pi.nrefs, 0);
		}
		cairn_storedb_pathinfo_release(&pi);
		assert_null(pi.path);

		assert_int_equal(cairn_storedb_query_path(db, vp[i].path, &pi, NULL), 0);
		check_vec(&pi, i);
		cairn_storedb_pathinfo_release(&pi);
	}
	cairn_storedb_free(db);
	sqlite3_close(w);
}

static void test_hashpart_lookup_is_exact(void **state)
{
	(void)state;
	char path[256];
	sqlite3 *w = make_db("exact.sqlite", 0, "wal", path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_pathinfo pi;
	struct cairn_error err;

	memset(&pi, 0, sizeof(pi));
	/* One less than appvec's hash part: a bare "path >= ?" finds appvec. */
	cairn_error_init(&err);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yyghv", &pi, &err),
	    CAIRN_ENOENT);
	assert_non_null(strstr(err.msg, "x6b6ah9iya8w14wv5fzzwj36lf2yyghv"));
	assert_null(pi.path); /* not written on failure */
	/* A prefix of a real hash part is not a hash part. */
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yygh", &pi, NULL),
	    CAIRN_EFORMAT);
	/* 'e' is not in the nix32 alphabet; neither is '/'. */
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "e6b6ah9iya8w14wv5fzzwj36lf2yyghw", &pi, NULL),
	    CAIRN_EFORMAT);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yygh/", &pi, NULL),
	    CAIRN_EFORMAT);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yyghwx", &pi, NULL),
	    CAIRN_EFORMAT);
	assert_int_equal(
	    cairn_storedb_query_path(db, "/gnu/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0",
				     &pi, NULL),
	    CAIRN_EFORMAT);
	assert_int_equal(cairn_storedb_query_path(db, APP "x", &pi, NULL), CAIRN_ENOENT);
	cairn_storedb_free(db);

	/* A store directory that is a prefix of the real one finds nothing. */
	db = open_db(path, "/nix/stor", 0);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yyghw", &pi, NULL),
	    CAIRN_ENOENT);
	cairn_storedb_free(db);
	sqlite3_close(w);
}

/* The lookup must be an index search, not a scan of a table with a
 * million rows. */
static void test_hashpart_uses_index(void **state)
{
	(void)state;
	char path[256], q[512], plan[1024] = "";
	sqlite3 *w = make_db("plan.sqlite", 0, "wal", path, sizeof(path));
	sqlite3_stmt *st;
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN " STOREDB_SQL_INFO_FMT, "ultimate", "sigs", "ca",
		 STOREDB_SQL_WHERE_RANGE);
	if (sqlite3_prepare_v2(w, q, -1, &st, NULL) != SQLITE_OK)
		die_sql(w, "explain");
	while (sqlite3_step(st) == SQLITE_ROW) {
		strncat(plan, (const char *)sqlite3_column_text(st, 3),
			sizeof(plan) - strlen(plan) - 2);
		strcat(plan, ";");
	}
	sqlite3_finalize(st);
	assert_non_null(strstr(plan, "SEARCH ValidPaths USING INDEX"));
	assert_non_null(strstr(plan, "path>? AND path<?"));
	assert_null(strstr(plan, "SCAN"));
	sqlite3_close(w);
}

static int any_cb(void *ctx, const char *path)
{
	(void)path;
	++*(size_t *)ctx;
	return 0;
}

static void test_sigs_ca_and_guix_schema(void **state)
{
	(void)state;
	char path[256], h[CAIRN_HASH_STR_MAX];
	struct cairn_storedb_pathinfo pi;
	sqlite3 *w = make_db("sigs.sqlite", 0, "wal", path, sizeof(path));
	db_hash(vp[0].sri, h);
	insert_path(w, 0, "/nix/store/0000000000000000000000000000000a-ca-thing", h, NULL, 7,
		    "  other-1:BBBB== cache.example.org-1:AAAA==  other-1:BBBB== ",
		    "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
	struct cairn_storedb *db = open_db(path, NULL, 0);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "0000000000000000000000000000000a", &pi, NULL), 0);
	assert_int_equal(pi.nsigs, 2);
	assert_string_equal(pi.sigs[0], "cache.example.org-1:AAAA==");
	assert_string_equal(pi.sigs[1], "other-1:BBBB==");
	assert_string_equal(pi.ca,
			    "fixed:r:sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
	assert_null(pi.deriver);
	assert_int_equal(pi.nar_size, 7);
	cairn_storedb_pathinfo_release(&pi);
	cairn_storedb_free(db);
	sqlite3_close(w);

	/* Guix: no ultimate, sigs or ca columns; store in /gnu/store. */
	w = make_db("guix.sqlite", 1, "wal", path, sizeof(path));
	db_hash(vp[0].sri, h);
	insert_path(w, 1, "/gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-hello-2.12", h,
		    "/gnu/store/1kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-hello-2.12.drv", 123, NULL, NULL);
	db = open_db(path, "/gnu/store", 0);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw", &pi, NULL), 0);
	assert_string_equal(pi.path, "/gnu/store/8kib1cirdv0qbmn9hdkjzjfx3n5nw1yw-hello-2.12");
	assert_int_equal(pi.nsigs, 0);
	assert_null(pi.ca);
	assert_int_equal(pi.ultimate, 0);
	assert_int_equal(pi.nar_size, 123);
	cairn_storedb_pathinfo_release(&pi);
	/* The fixture's /nix/store rows are not under this store directory:
	 * a listing refuses them rather than serving them. */
	struct cairn_error err;
	uint64_t count = 0;
	size_t seen = 0;
	assert_int_equal(cairn_storedb_count(db, &count, NULL), 0);
	assert_int_equal(count, 4);
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_foreach(db, any_cb, &seen, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "row 1 ('/nix/store/pp25"));
	assert_int_equal(cairn_storedb_foreach(db, NULL, &seen, NULL), CAIRN_EINVAL);
	cairn_storedb_free(db);
	sqlite3_close(w);
}

struct bad_case {
	const char *hashpart, *path, *hash, *deriver, *sigs, *ca, *want;
	int64_t size;
};

static void test_bad_rows_are_refused(void **state)
{
	(void)state;
	static const char good[] =
	    "sha256:0bcbcee3dd1c57a1055a6a33f030ce147d124b5fb06c848e94e5f2f858d129e7";
	static const struct bad_case cases[] = {
	    {"1000000000000000000000000000000a", "/nix/store/1000000000000000000000000000000a-neg",
	     good, NULL, NULL, NULL, "narSize", -5},
	    {"2000000000000000000000000000000a", "/nix/store/2000000000000000000000000000000a-h",
	     "sha256:zzzz", NULL, NULL, NULL, "bad hash", 1},
	    {"3000000000000000000000000000000a", "/nix/store/3000000000000000000000000000000a-h",
	     "md5:0bcbcee3dd1c57a1055a6a33f030ce14", NULL, NULL, NULL, "SHA-256", 1},
	    {"4000000000000000000000000000000a",
	     "/nix/store/4000000000000000000000000000000a-sp ace", good, NULL, NULL, NULL, "path",
	     1},
	    {"5000000000000000000000000000000a", "/nix/store/5000000000000000000000000000000a-d",
	     good, "/etc/passwd", NULL, NULL, "deriver", 1},
	    {"6000000000000000000000000000000a", "/nix/store/6000000000000000000000000000000a-s",
	     good, NULL, "k:AAAA\nStorePath: /nix/store/evil", NULL, "sigs", 1},
	    {"7000000000000000000000000000000a", "/nix/store/7000000000000000000000000000000a-c",
	     good, NULL, NULL, "text:sha256:x\nNarHash: evil", "ca", 1},
	    {"8000000000000000000000000000000a", "/nix/store/8000000000000000000000000000000a-n",
	     good, NULL, "nokeyname", NULL, "key name", 1},
	    {"9000000000000000000000000000000a", "/nix/store/9000000000000000000000000000000a-..-dot",
	     good, NULL, NULL, NULL, "path", 1},
	};
	char path[256];
	sqlite3 *w = make_db("bad.sqlite", 0, "wal", path, sizeof(path));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		insert_path(w, 0, cases[i].path, cases[i].hash, cases[i].deriver, cases[i].size,
			    cases[i].sigs, cases[i].ca);
	struct cairn_storedb *db = open_db(path, NULL, 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cairn_storedb_pathinfo pi;
		struct cairn_error err;
		memset(&pi, 0, sizeof(pi));
		cairn_error_init(&err);
		int rc = cairn_storedb_query_hashpart(db, cases[i].hashpart, &pi, &err);
		if (rc != CAIRN_EFORMAT)
			fail_msg("case %zu: rc %d (%s)", i, rc, err.msg);
		/* the message names the row and the field */
		assert_non_null(strstr(err.msg, "ValidPaths row"));
		assert_non_null(strstr(err.msg, cases[i].hashpart));
		if (!strstr(err.msg, cases[i].want))
			fail_msg("case %zu: '%s' does not mention %s", i, err.msg, cases[i].want);
		assert_null(strchr(err.msg, '\n'));
		assert_null(pi.path);
	}
	/* The good rows are still served. */
	struct cairn_storedb_pathinfo pi;
	assert_int_equal(cairn_storedb_query_path(db, APP, &pi, NULL), 0);
	cairn_storedb_pathinfo_release(&pi);

	sqlite3_close(w);
	cairn_storedb_free(db);
}

static int count_cb(void *ctx, const char *path)
{
	size_t *n = ctx;
	if (strncmp(path, "/nix/store/", 11) != 0)
		return -1;
	(*n)++;
	return 0;
}

static int stop_cb(void *ctx, const char *path)
{
	(void)path;
	size_t *n = ctx;
	return ++*n == 600;
}

static void test_foreach_count_closure(void **state)
{
	(void)state;
	char path[256], h[CAIRN_HASH_STR_MAX];
	sqlite3 *w = make_db("many.sqlite", 0, "wal", path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_paths cl;
	struct cairn_error err;
	uint64_t count = 0;
	size_t n = 0;

	assert_int_equal(cairn_storedb_closure(db, APP, 0, &cl, NULL), 0);
	assert_int_equal(cl.n, 3);
	assert_string_equal(cl.v[0], TOOL);
	assert_string_equal(cl.v[1], LIB);
	assert_string_equal(cl.v[2], APP);
	cairn_storedb_paths_release(&cl);
	assert_int_equal(cairn_storedb_closure(db, TOOL, 0, &cl, NULL), 0);
	assert_int_equal(cl.n, 2);
	cairn_storedb_paths_release(&cl);
	assert_int_equal(cairn_storedb_closure(db, APP, 3, &cl, NULL), 0);
	cairn_storedb_paths_release(&cl);
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_closure(db, APP, 2, &cl, &err), CAIRN_ELIMIT);
	assert_non_null(strstr(err.msg, "more than 2"));
	assert_int_equal(cairn_storedb_closure(db, APP "x", 0, &cl, NULL), CAIRN_ENOENT);

	/* A self-reference and a cycle terminate and count each path once. */
	exec(w, "INSERT INTO Refs VALUES (1, 1), (1, 2)");
	assert_int_equal(cairn_storedb_closure(db, LIB, 0, &cl, NULL), 0);
	assert_int_equal(cl.n, 3);
	cairn_storedb_paths_release(&cl);
	struct cairn_storedb_pathinfo pi;
	assert_int_equal(cairn_storedb_query_path(db, LIB, &pi, NULL), 0);
	assert_int_equal(pi.nrefs, 2);
	assert_string_equal(pi.refs[0], LIB);
	assert_string_equal(pi.refs[1], APP);
	cairn_storedb_pathinfo_release(&pi);

	/* More than one page of paths. */
	exec(w, "BEGIN");
	db_hash(vp[0].sri, h);
	for (int i = 0; i < 1300; i++) {
		char p[128];
		snprintf(p, sizeof(p), "/nix/store/%032d-p%d", i, i);
		insert_path(w, 0, p, h, NULL, i, NULL, NULL);
	}
	exec(w, "COMMIT");
	assert_int_equal(cairn_storedb_count(db, &count, NULL), 0);
	assert_int_equal(count, 1303);
	assert_int_equal(cairn_storedb_foreach(db, count_cb, &n, NULL), 0);
	assert_int_equal(n, 1303);
	n = 0;
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_foreach(db, stop_cb, &n, &err), CAIRN_ECANCELED);
	assert_int_equal(n, 600);

	/* A row outside the store directory is named by a listing. */
	insert_path(w, 0, "/tmp/1000000000000000000000000000000a-x", h, NULL, 1, NULL, NULL);
	n = 0;
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_foreach(db, count_cb, &n, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "row 1304"));
	assert_non_null(strstr(err.msg, "/tmp/1000"));
	cairn_storedb_free(db);
	sqlite3_close(w);
}

/* The example path: the newest that is not a .drv, looked for among the
 * last CAIRN_STOREDB_RECENT_SCAN only; a .drv when there is nothing else. */
static void test_recent_path(void **state)
{
	(void)state;
	char path[256], h[CAIRN_HASH_STR_MAX], p[128];
	sqlite3 *w = make_db("recent.sqlite", 0, "wal", path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_error err;
	char *got = NULL;

	db_hash(vp[0].sri, h);
	exec(w, "DELETE FROM Refs");
	exec(w, "DELETE FROM ValidPaths");
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_recent_path(db, &got, &err), CAIRN_ENOENT);
	assert_null(got);
	insert_path(w, 0, "/nix/store/0000000000000000000000000000000a-x.drv", h, NULL, 1, NULL,
		    NULL);
	assert_int_equal(cairn_storedb_recent_path(db, &got, NULL), 0);
	assert_string_equal(got, "/nix/store/0000000000000000000000000000000a-x.drv");
	free(got);
	insert_path(w, 0, "/nix/store/0000000000000000000000000000000b-out", h, NULL, 1, NULL,
		    NULL);
	insert_path(w, 0, "/nix/store/0000000000000000000000000000000c-y.drv", h, NULL, 1, NULL,
		    NULL);
	assert_int_equal(cairn_storedb_recent_path(db, &got, NULL), 0);
	assert_string_equal(got, "/nix/store/0000000000000000000000000000000b-out");
	free(got);
	/* past the scan, the newest .drv stands in */
	exec(w, "BEGIN");
	for (int i = 0; i < CAIRN_STOREDB_RECENT_SCAN; i++) {
		snprintf(p, sizeof(p), "/nix/store/1%031d-d%d.drv", i, i);
		insert_path(w, 0, p, h, NULL, 1, NULL, NULL);
	}
	exec(w, "COMMIT");
	assert_int_equal(cairn_storedb_recent_path(db, &got, NULL), 0);
	snprintf(p, sizeof(p), "/nix/store/1%031d-d%d.drv", CAIRN_STOREDB_RECENT_SCAN - 1,
		 CAIRN_STOREDB_RECENT_SCAN - 1);
	assert_string_equal(got, p);
	free(got);
	cairn_storedb_free(db);
	sqlite3_close(w);
}

/*
 * The daemon must be able to write while a handle is open, in both journal
 * modes: a writer with no busy timeout at all commits between our calls,
 * and the next call sees its row.
 */
static void check_writer_not_blocked(const char *journal)
{
	char path[256], h[CAIRN_HASH_STR_MAX], name[64];
	snprintf(name, sizeof(name), "lock-%s.sqlite", journal);
	sqlite3 *w = make_db(name, 0, journal, path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_pathinfo pi;
	struct cairn_storedb_paths cl;
	uint64_t count;
	size_t n = 0;

	sqlite3_busy_timeout(w, 0);
	assert_int_equal(cairn_storedb_query_path(db, APP, &pi, NULL), 0);
	cairn_storedb_pathinfo_release(&pi);
	assert_int_equal(cairn_storedb_closure(db, APP, 0, &cl, NULL), 0);
	cairn_storedb_paths_release(&cl);
	assert_int_equal(cairn_storedb_foreach(db, count_cb, &n, NULL), 0);
	assert_int_equal(cairn_storedb_count(db, &count, NULL), 0);
	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "0000000000000000000000000000000b", &pi, NULL),
	    CAIRN_ENOENT);

	db_hash(vp[0].sri, h);
	exec(w, "BEGIN IMMEDIATE");
	insert_path(w, 0, "/nix/store/0000000000000000000000000000000b-new", h, NULL, 1, NULL,
		    NULL);
	exec(w, "COMMIT");

	assert_int_equal(
	    cairn_storedb_query_hashpart(db, "0000000000000000000000000000000b", &pi, NULL), 0);
	assert_string_equal(pi.path, "/nix/store/0000000000000000000000000000000b-new");
	cairn_storedb_pathinfo_release(&pi);
	/* and once more after a lookup that failed half-way */
	assert_int_equal(cairn_storedb_query_path(
			     db, "/nix/store/0000000000000000000000000000000c-x", &pi, NULL),
			 CAIRN_ENOENT);
	exec(w, "BEGIN IMMEDIATE; DELETE FROM ValidPaths WHERE path LIKE '%-new'; COMMIT");
	cairn_storedb_free(db);
	sqlite3_close(w);
}

static void test_writer_not_blocked_wal(void **state)
{
	(void)state;
	check_writer_not_blocked("wal");
}

static void test_writer_not_blocked_rollback(void **state)
{
	(void)state;
	check_writer_not_blocked("delete");
}

/*
 * The publish server's threads each open their own handle.  Several readers
 * hammer the database while a writer with no busy timeout keeps committing:
 * every read and every write must succeed.
 */
#define READERS 4
#define ROUNDS 300

struct reader_arg {
	const char *path;
	int failures;
};

static void *reader_main(void *p)
{
	struct reader_arg *a = p;
	struct cairn_storedb_config cfg;
	struct cairn_storedb *db;
	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_NIX);
	cfg.db_path = a->path;
	if (cairn_storedb_open(&db, &cfg, NULL) != 0) {
		a->failures = ROUNDS;
		return NULL;
	}
	for (int i = 0; i < ROUNDS; i++) {
		struct cairn_storedb_pathinfo pi;
		struct cairn_storedb_paths cl;
		uint64_t n;
		if (cairn_storedb_query_hashpart(db, "x6b6ah9iya8w14wv5fzzwj36lf2yyghw", &pi,
						 NULL) != 0 ||
		    pi.nrefs != 2)
			a->failures++;
		cairn_storedb_pathinfo_release(&pi);
		if (cairn_storedb_closure(db, APP, 0, &cl, NULL) != 0 || cl.n != 3)
			a->failures++;
		else
			cairn_storedb_paths_release(&cl);
		if (cairn_storedb_count(db, &n, NULL) != 0 || n < 3)
			a->failures++;
	}
	cairn_storedb_free(db);
	return NULL;
}

static void test_threads_with_writer(void **state)
{
	(void)state;
	char path[256], h[CAIRN_HASH_STR_MAX];
	sqlite3 *w = make_db("threads.sqlite", 0, "wal", path, sizeof(path));
	pthread_t t[READERS];
	struct reader_arg a[READERS];
	int writes = 0, write_failures = 0;

	db_hash(vp[0].sri, h);
	sqlite3_busy_timeout(w, 0);
	for (int i = 0; i < READERS; i++) {
		a[i].path = path;
		a[i].failures = 0;
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &a[i]), 0);
	}
	for (int i = 0; i < 200; i++) {
		char p[128], *msg = NULL;
		snprintf(p, sizeof(p), "/nix/store/%032d-w%d", i, i);
		if (sqlite3_exec(w, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK) {
			write_failures++;
			sqlite3_free(msg);
			continue;
		}
		insert_path(w, 0, p, h, NULL, i, NULL, NULL);
		if (sqlite3_exec(w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			write_failures++;
		else
			writes++;
	}
	for (int i = 0; i < READERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(a[i].failures, 0);
	}
	assert_int_equal(write_failures, 0);
	assert_int_equal(writes, 200);
	sqlite3_close(w);
}

static void test_open_errors(void **state)
{
	(void)state;
	struct cairn_storedb_config cfg;
	struct cairn_storedb *db = NULL;
	struct cairn_error err;
	char path[256];

	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_GUIX);
	assert_string_equal(cfg.store_dir, "/gnu/store");
	assert_string_equal(cfg.db_path, "/var/guix/db/db.sqlite");
	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_NIX);
	assert_string_equal(cfg.store_dir, "/nix/store");
	assert_string_equal(cfg.db_path, "/nix/var/nix/db/db.sqlite");

	snprintf(path, sizeof(path), "%s/does-not-exist.sqlite", tmpdir);
	cfg.db_path = path;
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_open(&db, &cfg, &err), CAIRN_EIO);
	assert_non_null(strstr(err.msg, "does-not-exist.sqlite"));
	assert_null(db);
	/* opening read-only must not have created it */
	assert_int_not_equal(access(path, F_OK), 0);

	cfg.store_dir = "/nix/store/";
	assert_int_equal(cairn_storedb_open(&db, &cfg, NULL), CAIRN_EINVAL);
	cfg.store_dir = "nix/store";
	assert_int_equal(cairn_storedb_open(&db, &cfg, NULL), CAIRN_EINVAL);
	cfg.store_dir = "/nix/store";

	/* not a database */
	snprintf(path, sizeof(path), "%s/junk.sqlite", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not an sqlite database, just some text that is long enough.......\n", f);
	for (int i = 0; i < 100; i++)
		fputs("padding padding padding padding padding padding padding padding\n", f);
	fclose(f);
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_open(&db, &cfg, &err), CAIRN_EFORMAT);

	/* a database of something else */
	sqlite3 *w;
	snprintf(path, sizeof(path), "%s/other.sqlite", tmpdir);
	assert_int_equal(sqlite3_open(path, &w), SQLITE_OK);
	exec(w, "CREATE TABLE ValidPaths (id integer primary key, path text)");
	sqlite3_close(w);
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_open(&db, &cfg, &err), CAIRN_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "'hash'"));

	/* Refs that point at Storables ids would give wrong answers: refused */
	w = make_db("storables.sqlite", 0, "wal", path, sizeof(path));
	exec(w, "CREATE TABLE Storables (id integer primary key, path integer)");
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_open(&db, &cfg, &err), CAIRN_EUNSUPPORTED);
	assert_non_null(strstr(err.msg, "Storables"));
	sqlite3_close(w);
	assert_null(db);
}

/*
 * A '?' or '#' in the database path is part of the file name, not URI
 * syntax: it must not turn into "?immutable=1" or be cut off.
 */
static void test_uri_escaping(void **state)
{
	(void)state;
	char path[256];
	sqlite3 *w = make_db("odd?mode=rwc#x%41.sqlite", 0, "wal", path, sizeof(path));
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_pathinfo pi;
	assert_int_equal(cairn_storedb_query_path(db, LIB, &pi, NULL), 0);
	cairn_storedb_pathinfo_release(&pi);
	cairn_storedb_free(db);
	sqlite3_close(w);
}

/* ---- the write side (storedb-write.h) ---------------------------------- */

static struct cairn_storedb_writer *open_writer(const char *dir, const char *name,
						enum cairn_storedb_kind kind, int timeout_ms,
						int want_rc)
{
	struct cairn_storedb_writer_config cfg;
	struct cairn_storedb_writer *w = NULL;
	struct cairn_error err;
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	cairn_storedb_writer_config_init(&cfg, kind);
	cfg.db_path = path;
	cfg.busy_timeout_ms = timeout_ms;
	cfg.flags = CAIRN_STOREDB_WRITER_CREATE;
	cairn_error_init(&err);
	int rc = cairn_storedb_writer_open(&w, &cfg, &err);
	if (rc != want_rc)
		fail_msg("open %s: %d %s", path, rc, cairn_error_msg(&err));
	return w;
}

/* The vector closure as registration requests, references first. */
static void vec_newpaths(struct cairn_storedb_newpath np[3], const char *sigs[2])
{
	static const char *const lib_refs[] = {LIB};
	static const char *const tool_refs[] = {LIB, TOOL};
	static const char *const app_refs[] = {TOOL, LIB};
	const size_t order[3] = {0, 2, 1}; /* lib, tool, app */
	memset(np, 0, 3 * sizeof(*np));
	for (size_t k = 0; k < 3; k++) {
		size_t i = order[k];
		np[k].path = vp[i].path;
		assert_int_equal(cairn_hash_parse(vp[i].sri, strlen(vp[i].sri), 0, &np[k].nar_hash,
						  NULL),
				 0);
		np[k].nar_size = (uint64_t)vp[i].size;
		np[k].deriver = vp[i].deriver;
	}
	np[0].refs = lib_refs; /* a self-reference */
	np[0].nrefs = 1;
	np[1].refs = tool_refs;
	np[1].nrefs = 2;
	np[2].refs = app_refs;
	np[2].nrefs = 2;
	np[2].sigs = sigs;
	np[2].nsigs = 2;
	np[1].ca = "fixed:r:sha256:1b4sb93wp679q4zx9k1ignby1yna3z7c4c2ri3wphylbc2dwsys0";
}

static int64_t count_rows(const char *path, const char *q)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void read_file(const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, cap - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* A new Nix database: created with schema 10, registered rows read back
 * through the read-only side exactly as given. */
static void test_write_nix_roundtrip(void **state)
{
	(void)state;
	char dir[256], path[512], text[64];
	snprintf(dir, sizeof(dir), "%s/wnix/nix/var/nix/db", tmpdir);
	struct cairn_storedb_writer *w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 1000, 0);
	assert_int_equal(cairn_storedb_writer_created(w), 1);
	snprintf(path, sizeof(path), "%s/schema", dir);
	read_file(path, text, sizeof(text));
	assert_string_equal(text, "10");
	snprintf(path, sizeof(path), "%s/big-lock", dir);
	assert_int_equal(access(path, F_OK), 0);

	const char *sigs[2] = {"k2:c2ln", "k1:c2ln"};
	struct cairn_storedb_newpath np[3];
	vec_newpaths(np, sigs);
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_writer_register(w, np, 3, &err), 3);
	assert_int_equal(cairn_storedb_writer_is_valid(w, APP, NULL), 1);
	assert_int_equal(cairn_storedb_writer_is_valid(w, "/nix/store/"
							  "00000000000000000000000000000000-x",
						       NULL),
			 0);

	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	struct cairn_storedb *db = open_db(path, NULL, 0);
	struct cairn_storedb_pathinfo pi;
	assert_int_equal(cairn_storedb_query_path(db, APP, &pi, NULL), 0);
	check_vec_fields(&pi, 1);
	assert_int_equal(pi.ultimate, 0);
	assert_int_equal(pi.nsigs, 2);
	assert_string_equal(pi.sigs[0], "k1:c2ln");
	assert_string_equal(pi.sigs[1], "k2:c2ln");
	assert_null(pi.ca);
	assert_int_equal(pi.nrefs, 2);
	assert_string_equal(pi.refs[0], TOOL);
	assert_string_equal(pi.refs[1], LIB);
	assert_true(pi.registration_time > 0);
	cairn_storedb_pathinfo_release(&pi);
	assert_int_equal(cairn_storedb_query_path(db, LIB, &pi, NULL), 0);
	check_vec_fields(&pi, 0);
	assert_int_equal(pi.nrefs, 1); /* the self-reference */
	assert_string_equal(pi.refs[0], LIB);
	assert_int_equal(pi.nsigs, 0);
	cairn_storedb_pathinfo_release(&pi);
	assert_int_equal(cairn_storedb_query_path(db, TOOL, &pi, NULL), 0);
	assert_string_equal(pi.ca, np[1].ca);
	cairn_storedb_pathinfo_release(&pi);
	cairn_storedb_free(db);
	/* the column forms Nix writes: base16 hash, NULL (not "") when absent */
	assert_int_equal(count_rows(path, "SELECT count(*) FROM ValidPaths WHERE hash LIKE "
					  "'sha256:%' AND length(hash) = 71 AND sigs IS NULL "
					  "AND ca IS NULL AND path = '" LIB "'"),
			 1);

	/* registering again changes nothing: valid paths are left as they are */
	struct cairn_storedb_newpath again = np[0];
	again.nar_size = 1;
	again.deriver = NULL;
	assert_int_equal(cairn_storedb_writer_register(w, &again, 1, NULL), 0);
	assert_int_equal(count_rows(path, "SELECT narSize FROM ValidPaths WHERE path = '" LIB "'"),
			 464);
	cairn_storedb_writer_free(w);

	/* reopening an existing one: not created, same schema */
	w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 1000, 0);
	assert_int_equal(cairn_storedb_writer_created(w), 0);
	cairn_storedb_writer_free(w);
}

/* A reference must be valid before, or earlier in the same call; anything
 * else writes nothing at all. */
static void test_write_reference_rules(void **state)
{
	(void)state;
	char dir[256], path[512];
	snprintf(dir, sizeof(dir), "%s/wrefs", tmpdir);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	struct cairn_storedb_writer *w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 1000, 0);
	const char *sigs[2] = {"k1:c2ln", "k2:c2ln"};
	struct cairn_storedb_newpath np[3], rev[3];
	struct cairn_error err;
	vec_newpaths(np, sigs);

	/* app alone: its references are not valid */
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_writer_register(w, &np[2], 1, &err), CAIRN_ENOENT);
	assert_non_null(strstr(err.msg, APP));
	assert_non_null(strstr(err.msg, "is not valid"));
	/* references after the referrer in the same call: refused too (no
	 * cycle can get in this way), and lib, first, is rolled back */
	rev[0] = np[0];
	rev[1] = np[2];
	rev[2] = np[1];
	assert_int_equal(cairn_storedb_writer_register(w, rev, 3, NULL), CAIRN_ENOENT);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM ValidPaths"), 0);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM Refs"), 0);

	/* in two calls, references first: fine */
	assert_int_equal(cairn_storedb_writer_register(w, np, 2, NULL), 2);
	assert_int_equal(cairn_storedb_writer_register(w, &np[2], 1, NULL), 1);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM Refs"), 5);
	/* every Refs row names two rows (the foreign keys hold) */
	assert_int_equal(count_rows(path, "SELECT count(*) FROM Refs r WHERE NOT EXISTS "
					  "(SELECT 1 FROM ValidPaths v WHERE v.id = r.referrer) OR "
					  "NOT EXISTS (SELECT 1 FROM ValidPaths v WHERE v.id = "
					  "r.reference)"),
			 0);

	/* malformed requests never reach the database */
	struct cairn_storedb_newpath bad = np[2];
	bad.path = "/gnu/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0";
	assert_int_equal(cairn_storedb_writer_register(w, &bad, 1, NULL), CAIRN_EFORMAT);
	bad = np[2];
	const char *nocolon[1] = {"no-key-name"};
	bad.sigs = nocolon;
	bad.nsigs = 1;
	assert_int_equal(cairn_storedb_writer_register(w, &bad, 1, NULL), CAIRN_EFORMAT);
	const char *space[1] = {"k1:a b"};
	bad.sigs = space;
	assert_int_equal(cairn_storedb_writer_register(w, &bad, 1, NULL), CAIRN_EFORMAT);
	bad = np[2];
	bad.nar_hash.algo = CAIRN_HASH_SHA1;
	assert_int_equal(cairn_storedb_writer_register(w, &bad, 1, NULL), CAIRN_EFORMAT);
	bad = np[2];
	bad.deriver = "not-a-path";
	assert_int_equal(cairn_storedb_writer_register(w, &bad, 1, NULL), CAIRN_EFORMAT);
	cairn_storedb_writer_free(w);
}

/* Guix's schema (version 7): no ultimate, sigs or ca; FailedPaths. */
static void test_write_guix(void **state)
{
	(void)state;
	char dir[256], path[512], text[64];
	snprintf(dir, sizeof(dir), "%s/wguix/var/guix/db", tmpdir);
	struct cairn_storedb_writer_config cfg;
	cairn_storedb_writer_config_init(&cfg, CAIRN_STOREDB_GUIX);
	assert_string_equal(cfg.store_dir, "/gnu/store");
	assert_string_equal(cfg.db_path, "/var/guix/db/db.sqlite");
	struct cairn_storedb_writer *w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_GUIX, 1000, 0);
	snprintf(path, sizeof(path), "%s/schema", dir);
	read_file(path, text, sizeof(text));
	assert_string_equal(text, "7");
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM pragma_table_info('ValidPaths')"),
			 6);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM sqlite_master WHERE name IN "
					  "('FailedPaths', 'DerivationOutputs', 'Refs', "
					  "'IndexReferrer', 'IndexReference', "
					  "'IndexDerivationOutputs', 'DeleteSelfRefs')"),
			 7);
	static const char *const refs[] = {"/gnu/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-g"};
	const char *sigs[1] = {"k1:c2ln"};
	struct cairn_storedb_newpath np = {.path = refs[0], .nar_size = 8, .refs = refs,
					   .nrefs = 1, .sigs = sigs, .nsigs = 1, .ca = "text:x"};
	assert_int_equal(cairn_hash_parse(vp[0].sri, strlen(vp[0].sri), 0, &np.nar_hash, NULL), 0);
	assert_int_equal(cairn_storedb_writer_register(w, &np, 1, NULL), 1);
	cairn_storedb_writer_free(w);
	struct cairn_storedb_config rc;
	cairn_storedb_config_init(&rc, CAIRN_STOREDB_GUIX);
	rc.db_path = path;
	struct cairn_storedb *db = NULL;
	assert_int_equal(cairn_storedb_open(&db, &rc, NULL), 0);
	struct cairn_storedb_pathinfo pi;
	assert_int_equal(cairn_storedb_query_path(db, refs[0], &pi, NULL), 0);
	assert_int_equal(pi.nar_size, 8);
	assert_int_equal(pi.nrefs, 1);
	assert_int_equal(pi.nsigs, 0); /* no column for them */
	cairn_storedb_pathinfo_release(&pi);
	cairn_storedb_free(db);
}

/* A database someone else holds the write lock of: CAIRN_EBUSY, at open
 * and at registration; another schema version: refused. */
static void test_write_busy_and_schema(void **state)
{
	(void)state;
	char dir[256], path[512];
	snprintf(dir, sizeof(dir), "%s/wbusy", tmpdir);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	struct cairn_storedb_writer *w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 100, 0);
	sqlite3 *other;
	assert_int_equal(sqlite3_open(path, &other), SQLITE_OK);
	exec(other, "BEGIN IMMEDIATE");
	exec(other, "INSERT INTO ValidPaths (path, hash, registrationTime) VALUES ('x', 'y', 1)");

	const char *sigs[2] = {"k1:c2ln", "k2:c2ln"};
	struct cairn_storedb_newpath np[3];
	struct cairn_error err;
	vec_newpaths(np, sigs);
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_writer_register(w, np, 1, &err), CAIRN_EBUSY);
	assert_non_null(strstr(err.msg, "locked by another process"));
	cairn_storedb_writer_free(w);
	cairn_error_init(&err);
	assert_null(open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 100, CAIRN_EBUSY));
	exec(other, "ROLLBACK");
	sqlite3_close(other);
	w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 100, 0);
	assert_int_equal(cairn_storedb_writer_register(w, np, 1, NULL), 1);
	cairn_storedb_writer_free(w);

	/* a schema Nix would have to upgrade, or a newer one: not ours to touch */
	char sp[512];
	snprintf(sp, sizeof(sp), "%s/schema", dir);
	FILE *f = fopen(sp, "w");
	assert_non_null(f);
	fputs("11", f);
	fclose(f);
	assert_null(open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 100, CAIRN_EUNSUPPORTED));
	/* a missing database is created only when asked */
	struct cairn_storedb_writer_config cfg;
	cairn_storedb_writer_config_init(&cfg, CAIRN_STOREDB_NIX);
	snprintf(sp, sizeof(sp), "%s/nowhere/db.sqlite", tmpdir);
	cfg.db_path = sp;
	assert_int_equal(cairn_storedb_writer_open(&w, &cfg, NULL), CAIRN_ENOENT);
	assert_int_not_equal(access(sp, F_OK), 0);
}

/* DerivationOutputs: a .drv's outputs, from its ATerm text. */
static void test_write_drv_outputs(void **state)
{
	(void)state;
	static const char drv[] =
	    "Derive([(\"dev\",\"/nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0-dev\",\"\","
	    "\"\"),(\"fl\\\"oat\",\"\",\"r:sha256\",\"\"),(\"out\",\"" LIB "\",\"\",\"\")],"
	    "[],[],\"x86_64-linux\",\"/bin/sh\",[],[(\"out\",\"" LIB "\")])";
	struct cairn_storedb_drv_output *o = NULL;
	size_t n = 0;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_storedb_drv_parse(drv, strlen(drv), "/nix/store", &o, &n, &err), 0);
	assert_int_equal(n, 2); /* the floating output has no path yet */
	assert_string_equal(o[0].name, "dev");
	assert_string_equal(o[1].name, "out");
	assert_string_equal(o[1].path, LIB);

	char dir[256], path[512];
	snprintf(dir, sizeof(dir), "%s/wdrv", tmpdir);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	struct cairn_storedb_writer *w = open_writer(dir, "db.sqlite", CAIRN_STOREDB_NIX, 1000, 0);
	struct cairn_storedb_newpath np = {.path = vp[0].deriver, .nar_size = 100,
					   .outputs = o, .noutputs = n};
	assert_int_equal(cairn_hash_parse(vp[0].sri, strlen(vp[0].sri), 0, &np.nar_hash, NULL), 0);
	assert_int_equal(cairn_storedb_writer_register(w, &np, 1, NULL), 1);
	assert_int_equal(count_rows(path, "SELECT count(*) FROM DerivationOutputs d JOIN "
					  "ValidPaths v ON v.id = d.drv WHERE d.id = 'out' AND "
					  "d.path = '" LIB "'"),
			 1);
	cairn_storedb_writer_free(w);
	cairn_storedb_drv_outputs_free(o, n);

	static const char *const bad[] = {
	    "Derive([(\"out\",\"/gnu/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-x\",\"\",\"\")])",
	    "Derive([(\"out\",\"" LIB "\",\"\")])",
	    "Derive([(\"out\",\"" LIB "\",\"\",\"\")",
	    "Derive([(\"o ut\",\"" LIB "\",\"\",\"\")])",
	    "Derive([(\"out\",\"" LIB "\",\"\",\"\")(\"x\",\"\",\"\",\"\")])",
	    ("Derive([(\"out\",\"" LIB),
	    "derive([])",
	    "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = NULL;
		n = 0;
		assert_int_equal(
		    cairn_storedb_drv_parse(bad[i], strlen(bad[i]), "/nix/store", &o, &n, NULL),
		    CAIRN_EFORMAT);
		assert_null(o);
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-storedb.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return cairn_init();
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_query_closure_vectors),
	    cmocka_unit_test(test_hashpart_lookup_is_exact),
	    cmocka_unit_test(test_hashpart_uses_index),
	    cmocka_unit_test(test_sigs_ca_and_guix_schema),
	    cmocka_unit_test(test_bad_rows_are_refused),
	    cmocka_unit_test(test_foreach_count_closure),
	    cmocka_unit_test(test_recent_path),
	    cmocka_unit_test(test_writer_not_blocked_wal),
	    cmocka_unit_test(test_writer_not_blocked_rollback),
	    cmocka_unit_test(test_threads_with_writer),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_uri_escaping),
	    cmocka_unit_test(test_write_nix_roundtrip),
	    cmocka_unit_test(test_write_reference_rules),
	    cmocka_unit_test(test_write_guix),
	    cmocka_unit_test(test_write_busy_and_schema),
	    cmocka_unit_test(test_write_drv_outputs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
