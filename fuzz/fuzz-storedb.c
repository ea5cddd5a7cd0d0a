/*
 * fuzz-storedb.c - rows with arbitrary field values, as a damaged or hostile
 * store database could hold, go through storedb's validation and lookups.
 *
 * Input: 16 bytes of narSize and registrationTime (little-endian int64),
 * then NUL-separated fields: hash, deriver, sigs, ca, and a string used both
 * as a second row's path and as a lookup key.  Whatever storedb returns
 * must be safe to put in a narinfo: no control characters, SHA-256 only.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cairn/cairn.h"
#include "cairn/storedb.h"

#define GOOD "/nix/store/0000000000000000000000000000000a-fuzz"

static sqlite3 *w;
static struct cairn_storedb *db;
static char dir[] = "/tmp/cairn-fuzz-storedb.XXXXXX";

/* Leave no files behind when the replay test ends. */
static void cleanup(void)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char path[64];
	cairn_storedb_free(db);
	sqlite3_close(w);
	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/db.sqlite%s", dir, suffix[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void setup(void)
{
	char path[64];
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/db.sqlite", dir);
	if (cairn_init() != 0 || sqlite3_open(path, &w) != SQLITE_OK)
		abort();
	if (sqlite3_exec(w,
			 "PRAGMA journal_mode = wal; PRAGMA synchronous = off;"
			 "CREATE TABLE ValidPaths (id integer primary key autoincrement not null,"
			 " path text unique not null, hash text not null,"
			 " registrationTime integer not null, deriver text, narSize integer,"
			 " ultimate integer, sigs text, ca text);"
			 "CREATE TABLE Refs (referrer integer not null, reference integer not null,"
			 " primary key (referrer, reference));",
			 NULL, NULL, NULL) != SQLITE_OK)
		abort();
	struct cairn_storedb_config cfg;
	cairn_storedb_config_init(&cfg, CAIRN_STOREDB_NIX);
	cfg.db_path = path;
	if (cairn_storedb_open(&db, &cfg, NULL) != 0)
		abort();
}

static void safe_text(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			abort();
}

static void check_info(const struct cairn_storedb_pathinfo *pi)
{
	if (pi->nar_hash.algo != CAIRN_HASH_SHA256 || !pi->path)
		abort();
	safe_text(pi->path);
	safe_text(pi->deriver);
	safe_text(pi->ca);
	for (size_t i = 0; i < pi->nsigs; i++) {
		safe_text(pi->sigs[i]);
		if (!strchr(pi->sigs[i], ':') || strchr(pi->sigs[i], ' '))
			abort();
	}
	for (size_t i = 0; i < pi->nrefs; i++)
		safe_text(pi->refs[i]);
}

static int count_cb(void *ctx, const char *path)
{
	safe_text(path);
	++*(size_t *)ctx;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *field[5] = {"", "", "", "", ""};
	size_t flen[5] = {0};
	int64_t nums[2] = {0, 0};
	char key[512];
	sqlite3_stmt *st;

	if (!db)
		setup();
	if (size >= 16) {
		memcpy(nums, data, 16);
		data += 16;
		size -= 16;
	}
	for (int f = 0; f < 5 && size > 0; f++) {
		const uint8_t *end = memchr(data, 0, size);
		size_t n = end ? (size_t)(end - data) : size;
		field[f] = (const char *)data;
		flen[f] = n;
		data += n + (end ? 1 : 0);
		size -= n + (end ? 1 : 0);
	}
	size_t klen = flen[4] < sizeof(key) - 1 ? flen[4] : sizeof(key) - 1;
	memcpy(key, field[4], klen);
	key[klen] = '\0';

	sqlite3_exec(w, "BEGIN; DELETE FROM Refs; DELETE FROM ValidPaths", NULL, NULL, NULL);
	if (sqlite3_prepare_v2(
		w,
		"INSERT INTO ValidPaths (id, path, hash, registrationTime, deriver, "
		"narSize, ultimate, sigs, ca) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8)",
		-1, &st, NULL) != SQLITE_OK)
		abort();
	for (int row = 1; row <= 2; row++) {
		sqlite3_bind_int(st, 1, row);
		if (row == 1)
			sqlite3_bind_text(st, 2, GOOD, -1, SQLITE_STATIC);
		else
			sqlite3_bind_text(st, 2, field[4], (int)flen[4], SQLITE_STATIC);
		sqlite3_bind_text(st, 3, field[0], (int)flen[0], SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, nums[1]);
		sqlite3_bind_text(st, 5, field[1], (int)flen[1], SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, nums[0]);
		sqlite3_bind_text(st, 7, field[2], (int)flen[2], SQLITE_STATIC);
		sqlite3_bind_text(st, 8, field[3], (int)flen[3], SQLITE_STATIC);
		sqlite3_step(st); /* row 2 may clash with row 1: then only row 1 */
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_exec(w, "INSERT INTO Refs VALUES (1, 2), (2, 1), (1, 1); COMMIT", NULL, NULL, NULL);

	struct cairn_storedb_pathinfo pi;
	struct cairn_storedb_paths cl;
	size_t n = 0;
	if (cairn_storedb_query_path(db, GOOD, &pi, NULL) == 0) {
		check_info(&pi);
		cairn_storedb_pathinfo_release(&pi);
	}
	if (cairn_storedb_query_path(db, key, &pi, NULL) == 0) {
		check_info(&pi);
		cairn_storedb_pathinfo_release(&pi);
	}
	if (cairn_storedb_query_hashpart(db, key, &pi, NULL) == 0) {
		check_info(&pi);
		cairn_storedb_pathinfo_release(&pi);
	}
	if (cairn_storedb_closure(db, GOOD, 0, &cl, NULL) == 0) {
		for (size_t i = 0; i < cl.n; i++)
			safe_text(cl.v[i]);
		cairn_storedb_paths_release(&cl);
	}
	cairn_storedb_foreach(db, count_cb, &n, NULL);
	return 0;
}
