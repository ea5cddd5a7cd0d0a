/*
 * test-publish.c - the publish module without HTTP: nar URL parsing, the
 * narinfos of both dialects (signed, verified with the keys' own
 * verifiers), the memo, and the nar cache (bake, reload, eviction) on a
 * small store with a database made here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cairn/cairn.h"
#include "cairn/codec.h"
#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/publish.h"
#include "../../lib/publish-int.h"
#include "../../lib/codec-int.h"

#define HP_A "0m4y4d0jkkd6gpk5m5h2k5rn8bk6d4ya"
#define HP_B "1b9p07z77phvv2hf6gm9f28syp2mbzl6"

/* ---- URL parsing ---------------------------------------------------------- */

static int parse(const char *s, struct cairn_publish_nar_url *u)
{
	return cairn_publish_parse_nar_url(s, strlen(s), u, NULL);
}

static void test_nar_urls(void **state)
{
	struct cairn_publish_nar_url u;
	const char *h52 = "174ambwlmc35vcp2wjw209d4qm1rzz86s1m89jyjqf6m4jrxkdj1";
	char s[256];
	(void)state;

	snprintf(s, sizeof(s), "%s.nar.zst?hash=%s", h52, HP_A);
	assert_int_equal(parse(s, &u), 0);
	assert_true(u.by_hash);
	assert_int_equal(u.method, CAIRN_CODEC_ZSTD);
	assert_string_equal(u.hash, h52);
	assert_string_equal(u.hashpart, HP_A);

	snprintf(s, sizeof(s), "%s.nar", h52);
	assert_int_equal(parse(s, &u), 0);
	assert_int_equal(u.method, CAIRN_CODEC_NONE);
	assert_string_equal(u.hashpart, "");

	static const struct {
		const char *ext;
		enum cairn_codec_method m;
	} exts[] = {{".xz", CAIRN_CODEC_XZ},	 {".bz2", CAIRN_CODEC_BZIP2},
		    {".gz", CAIRN_CODEC_GZIP},	 {".lzip", CAIRN_CODEC_LZIP},
		    {".zst", CAIRN_CODEC_ZSTD}};
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		snprintf(s, sizeof(s), "%s.nar%s", h52, exts[i].ext);
		assert_int_equal(parse(s, &u), 0);
		assert_int_equal(u.method, exts[i].m);
		assert_string_equal(cairn_publish_nar_ext(exts[i].m), exts[i].ext);
	}

	/* Guix forms */
	assert_int_equal(parse("zstd/" HP_A "-hello-2.12", &u), 0);
	assert_false(u.by_hash);
	assert_int_equal(u.method, CAIRN_CODEC_ZSTD);
	assert_string_equal(u.basename, HP_A "-hello-2.12");
	assert_string_equal(u.hashpart, HP_A);
	assert_int_equal(parse(HP_A "-hello-2.12", &u), 0);
	assert_int_equal(u.method, CAIRN_CODEC_NONE);

	/* refused */
	const char *bad[] = {
		"",
		"../../etc/passwd",
		"zstd/../" HP_A "-x",
		"zstd/" HP_A,				    /* no name */
		"zstd/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee-x", /* not nix32 */
		"rot13/" HP_A "-x",
		"174ambwlmc35vcp2wjw209d4qm1rzz86s1m89jyjqf6m4jrxkdj1.nar.rar",
		"174ambwlmc35vcp2wjw209d4qm1rzz86s1m89jyjqf6m4jrxkdj.nar",
		"zstd/" HP_A "-a/b",
		"zstd/zstd/" HP_A "-x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], &u) == 0)
			fail_msg("accepted '%s'", bad[i]);
	/* a malformed ?hash= is ignored, not trusted */
	snprintf(s, sizeof(s), "%s.nar.zst?hash=../../x", h52);
	assert_int_equal(parse(s, &u), 0);
	assert_string_equal(u.hashpart, "");
}

/* ---- narinfos ------------------------------------------------------------- */

static void fake_pathinfo(struct cairn_storedb_pathinfo *pi)
{
	static char path[] = "/nix/store/" HP_A "-hello";
	static char ref0[] = "/nix/store/" HP_B "-glibc";
	static char *refs[] = {ref0, path};
	static char drv[] = "/nix/store/" HP_B "-hello.drv";
	static char sig[] = "cache.example.org-1:"
			    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			    "AAAAAAAAAAAAAAA==";
	static char *sigs[] = {sig};
	memset(pi, 0, sizeof(*pi));
	pi->path = path;
	cairn_hash_sha256(&pi->nar_hash, "nar", 3);
	pi->nar_size = 1234;
	pi->deriver = drv;
	pi->refs = refs;
	pi->nrefs = 2;
	pi->sigs = sigs;
	pi->nsigs = 1;
}

static char *print(const struct cairn_narinfo *ni)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	return cairn_buf_steal(&b, NULL);
}

static void test_nix_narinfo(void **state)
{
	struct cairn_storedb_pathinfo pi;
	struct cairn_codec_spec c[2] = {{CAIRN_CODEC_XZ, 6}, {CAIRN_CODEC_ZSTD, 3}};
	struct cairn_narinfo *ni = NULL;
	struct cairn_seckey sk;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_nix_pubkey pk;
	struct cairn_verify_result res;
	char nh[53];
	(void)state;

	fake_pathinfo(&pi);
	cairn_nix32_encode(pi.nar_hash.digest, 32, nh);
	nh[52] = '\0';
	assert_int_equal(cairn_publish_make_narinfo(&pi, "/nix/store", CAIRN_PUBLISH_NIX, c, 2,
						    NULL, &ni, NULL),
			 0);
	char *t = print(ni);
	char want[512];
	snprintf(want, sizeof(want),
		 "StorePath: /nix/store/" HP_A "-hello\n"
		 "URL: nar/%s.nar.xz?hash=" HP_A "\n"
		 "Compression: xz\n"
		 "NarHash: sha256:%s\n"
		 "NarSize: 1234\n"
		 "References: " HP_B "-glibc " HP_A "-hello\n"
		 "Deriver: " HP_B "-hello.drv\n",
		 nh, nh);
	assert_memory_equal(t, want, strlen(want));
	assert_non_null(strstr(t, "\nSig: cache.example.org-1:"));
	free(t);

	/* signed with a fresh key, it verifies; a store signature is kept */
	sk.kind = CAIRN_KEY_NIX;
	assert_int_equal(cairn_nix_key_generate("test-1", &sk.u.nix, NULL), 0);
	assert_int_equal(cairn_narinfo_sign(ni, &sk, NULL, NULL), 0);
	cairn_nix_seckey_public(&sk.u.nix, &pk);
	assert_int_equal(cairn_keyring_add_nix(&kr, &pk, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	cairn_narinfo_free(ni);

	/* baked: URL by FileHash, FileHash and FileSize */
	struct cairn_publish_file f[2] = {{0}};
	f[0].has_file = true;
	cairn_hash_sha256(&f[0].file_hash, "file", 4);
	f[0].file_size = 99;
	assert_int_equal(cairn_publish_make_narinfo(&pi, "/nix/store", CAIRN_PUBLISH_NIX, c, 2, f,
						    &ni, NULL),
			 0);
	t = print(ni);
	char fh[53];
	cairn_nix32_encode(f[0].file_hash.digest, 32, fh);
	fh[52] = '\0';
	snprintf(want, sizeof(want), "URL: nar/%s.nar.xz\nCompression: xz\nFileHash: sha256:%s\nFileSize: 99\n",
		 fh, fh);
	assert_non_null(strstr(t, want));
	free(t);
	/* the signature over the fingerprint still holds: URL etc. are not signed */
	assert_int_equal(cairn_narinfo_sign(ni, &sk, NULL, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	cairn_narinfo_free(ni);

	/* offered uncompressed (an item that does not compress): the file is
	 * the NAR, so its size and hash are known without baking; a client
	 * needs the size to ask several servers for ranges of it */
	struct cairn_codec_spec none[1] = {{CAIRN_CODEC_NONE, 0}};
	assert_int_equal(cairn_publish_make_narinfo(&pi, "/nix/store", CAIRN_PUBLISH_NIX, none, 1,
						    NULL, &ni, NULL),
			 0);
	t = print(ni);
	snprintf(want, sizeof(want),
		 "URL: nar/%s.nar?hash=" HP_A "\nCompression: none\nFileHash: sha256:%s\n"
		 "FileSize: 1234\n",
		 nh, nh);
	if (!strstr(t, want))
		fail_msg("want\n%s\nin\n%s", want, t);
	free(t);
	cairn_narinfo_free(ni);

	/* a path outside the store directory is refused */
	assert_int_equal(cairn_publish_make_narinfo(&pi, "/gnu/store", CAIRN_PUBLISH_NIX, c, 2,
						    NULL, &ni, NULL),
			 CAIRN_EINVAL);
	cairn_seckey_wipe(&sk);
	cairn_keyring_release(&kr);
}

static void test_guix_narinfo(void **state)
{
	struct cairn_storedb_pathinfo pi;
	struct cairn_codec_spec c[3] = {
		{CAIRN_CODEC_ZSTD, 3}, {CAIRN_CODEC_LZIP, 6}, {CAIRN_CODEC_NONE, 0}};
	struct cairn_publish_file f[3] = {{0}};
	struct cairn_narinfo *ni = NULL;
	struct cairn_seckey sk;
	struct cairn_guix_pubkey pk;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	(void)state;

	fake_pathinfo(&pi);
	pi.nsigs = 0;
	sk.kind = CAIRN_KEY_GUIX;
	if (cairn_guix_key_generate(&sk.u.guix, NULL) == CAIRN_EUNSUPPORTED)
		skip();
	cairn_guix_seckey_public(&sk.u.guix, &pk);
	assert_int_equal(cairn_publish_make_narinfo(&pi, "/nix/store", CAIRN_PUBLISH_GUIX, c, 3,
						    NULL, &ni, NULL),
			 0);
	assert_int_equal(cairn_narinfo_sign(ni, &sk, "host.example", NULL), 0);
	assert_int_equal(cairn_narinfo_print(ni, &b, NULL), 0);
	size_t signed_end = b.len;
	f[1].has_file = true; /* lzip baked */
	f[1].file_size = 77;
	assert_int_equal(cairn_publish_guix_groups(&pi, "/nix/store", c, 3, f, &b), 0);

	/* guix publish's order: signed part, Signature, then the groups */
	const char *s = b.data;
	const char *order[] = {"StorePath: ", "NarHash: sha256:", "NarSize: 1234\n",
			       "References: " HP_B "-glibc " HP_A "-hello\n",
			       "Deriver: " HP_B "-hello.drv\n", "Signature: 1;host.example;",
			       "URL: nar/zstd/" HP_A "-hello\nCompression: zstd\nURL:",
			       "URL: nar/lzip/" HP_A "-hello\nCompression: lzip\nURL:",
			       "URL: nar/" HP_A "-hello\nCompression: none\n"};
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *at = strstr(s, order[i]);
		if (!at)
			fail_msg("missing or out of order: %s\n%s", order[i], b.data);
		s = at + 1;
	}
	/* zstd not baked: no FileSize at all, since Guix pairs them with the
	 * URLs by position (lzip's would be taken for zstd's) */
	assert_null(strstr(b.data, "FileSize"));
	/* all baked: a FileSize in every group, none's the NarSize */
	struct cairn_buf g = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	f[0].has_file = true;
	f[0].file_size = 55;
	assert_int_equal(cairn_publish_guix_groups(&pi, "/nix/store", c, 3, f, &g), 0);
	assert_string_equal(g.data, "URL: nar/zstd/" HP_A "-hello\nCompression: zstd\nFileSize: 55\n"
				    "URL: nar/lzip/" HP_A "-hello\nCompression: lzip\nFileSize: 77\n"
				    "URL: nar/" HP_A "-hello\nCompression: none\nFileSize: 1234\n");
	cairn_buf_release(&g);
	assert_null(strstr(b.data, "\nSig:"));
	assert_null(strstr(b.data, "\nCA:"));
	assert_null(strstr(b.data, "\nSystem:"));

	/* the signature covers exactly the text before its line */
	const char *sigline = strstr(b.data, "\nSignature: 1;host.example;") + 1;
	const char *b64 = sigline + strlen("Signature: 1;host.example;");
	const char *eol = strchr(b64, '\n');
	assert_true(eol <= b.data + signed_end);
	uint8_t sexp[CAIRN_GUIX_SEXP_MAX];
	size_t sexp_len = 0;
	assert_int_equal(cairn_base64_decode(b64, (size_t)(eol - b64), sexp, sizeof(sexp),
					     &sexp_len),
			 0);
	size_t signed_len = (size_t)(sigline - b.data);
	assert_int_equal(cairn_guix_verify(b.data, signed_len, (const char *)sexp, sexp_len, &pk,
					   1, NULL, NULL),
			 0);
	/* one byte changed in the signed part: refused */
	b.data[20] ^= 1;
	assert_int_not_equal(cairn_guix_verify(b.data, signed_len, (const char *)sexp, sexp_len,
					       &pk, 1, NULL, NULL),
			     0);
	cairn_buf_release(&b);
	cairn_narinfo_free(ni);
	cairn_seckey_wipe(&sk);
}

/* ---- a store, its database, the server state ------------------------------ */

struct fixture {
	char dir[256], store[300], db[300], cache[300];
	char path_a[400], path_b[400];
};

static void must_sql(sqlite3 *db, const char *sql)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("sql: %s: %s", sql, msg);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void add_item(sqlite3 *db, const char *path, size_t size, const char *ref)
{
	char *blob = malloc(size);
	for (size_t i = 0; i < size; i++)
		blob[i] = (char)("abcdefgh"[i % 8] + (i / 4096) % 7);
	assert_int_equal(mkdir(path, 0755), 0);
	char f[512];
	snprintf(f, sizeof(f), "%s/data", path);
	write_file(f, blob, size);
	free(blob);
	struct cairn_hash h;
	uint64_t nsize;
	assert_int_equal(cairn_nar_hash_path(path, &h, &nsize, NULL), 0);
	char hex[65];
	cairn_base16_encode(h.digest, 32, hex);
	hex[64] = '\0';
	const char *base = strrchr(path, '/');
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO ValidPaths (path, hash, registrationTime, narSize) "
		 "VALUES ('/nix/store%s', 'sha256:%s', 1, %llu);",
		 base, hex, (unsigned long long)nsize);
	must_sql(db, sql);
	if (ref) {
		snprintf(sql, sizeof(sql),
			 "INSERT INTO Refs SELECT a.id, b.id FROM ValidPaths a, ValidPaths b "
			 "WHERE a.path = '/nix/store%s' AND b.path = '/nix/store/%s';",
			 base, ref);
		must_sql(db, sql);
	}
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	sqlite3 *db;
	snprintf(fx->dir, sizeof(fx->dir), "%s/cairn-test-publish.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->store, sizeof(fx->store), "%s/store", fx->dir);
	snprintf(fx->db, sizeof(fx->db), "%s/db.sqlite", fx->dir);
	snprintf(fx->cache, sizeof(fx->cache), "%s/cache", fx->dir);
	assert_int_equal(mkdir(fx->store, 0755), 0);
	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	must_sql(db, "CREATE TABLE ValidPaths (id integer primary key autoincrement not null, "
		     "path text unique not null, hash text not null, registrationTime integer "
		     "not null, deriver text, narSize integer, ultimate integer, sigs text, ca "
		     "text);"
		     "CREATE TABLE Refs (referrer integer not null, reference integer not null, "
		     "primary key (referrer, reference));");
	snprintf(fx->path_a, sizeof(fx->path_a), "%s/" HP_A "-a", fx->store);
	snprintf(fx->path_b, sizeof(fx->path_b), "%s/" HP_B "-b", fx->store);
	add_item(db, fx->path_a, 300000, NULL);
	add_item(db, fx->path_b, 200000, HP_A "-a");
	sqlite3_close(db);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fx->dir);
	free(fx);
	return 0;
}

static struct cairn_publish *open_pub(struct fixture *fx, const struct cairn_seckey *sk,
				      uint64_t cache_max)
{
	struct cairn_publish_config cfg;
	struct cairn_publish *p = NULL;
	struct cairn_error err;
	cairn_publish_config_init(&cfg, CAIRN_STOREDB_NIX);
	cfg.store_dir = "/nix/store";
	cfg.real_store_dir = fx->store;
	cfg.db_path = fx->db;
	cfg.cache_dir = fx->cache;
	cfg.cache_max_size = cache_max;
	if (sk)
		cfg.keys[cfg.n_keys++] = sk;
	cairn_error_init(&err);
	if (cairn_publish_new(&p, &cfg, &err) < 0)
		fail_msg("publish_new: %s", cairn_error_msg(&err));
	return p;
}

static char *narinfo(struct cairn_publish *p, const char *hp, int *rc)
{
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	*rc = cairn_publish_narinfo(p, hp, strlen(hp), &b, NULL, NULL);
	return cairn_buf_steal(&b, NULL);
}

/* poll until the narinfo of hp carries a FileHash (baked), 10 s at most */
static char *wait_baked(struct cairn_publish *p, const char *hp)
{
	for (int i = 0; i < 1000; i++) {
		int rc;
		char *t = narinfo(p, hp, &rc);
		assert_int_equal(rc, 0);
		if (strstr(t, "\nFileHash: "))
			return t;
		free(t);
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fail_msg("%s was not baked", hp);
	return NULL;
}

static void test_store_narinfo_and_bake(void **state)
{
	struct fixture *fx = *state;
	struct cairn_seckey sk;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_nix_pubkey pk;
	struct cairn_verify_result res;
	int rc;

	sk.kind = CAIRN_KEY_NIX;
	assert_int_equal(cairn_nix_key_generate("test-1", &sk.u.nix, NULL), 0);
	cairn_nix_seckey_public(&sk.u.nix, &pk);
	assert_int_equal(cairn_keyring_add_nix(&kr, &pk, NULL), 0);

	struct cairn_publish *p = open_pub(fx, &sk, 0);
	/* before its bake a narinfo is temporary: a short max-age */
	struct cairn_buf tb = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	unsigned age = 0;
	assert_int_equal(cairn_publish_narinfo(p, HP_B, 32, &tb, &age, NULL), 0);
	assert_int_equal(age, CAIRN_PUBLISH_TEMP_TTL);
	cairn_buf_release(&tb);
	char *t = narinfo(p, HP_B, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(t, "StorePath: /nix/store/" HP_B "-b\n"));
	assert_non_null(strstr(t, "References: " HP_A "-a\n"));
	assert_non_null(strstr(t, "?hash=" HP_B "\n"));
	struct cairn_narinfo *ni = NULL;
	assert_int_equal(cairn_narinfo_parse(t, strlen(t), &ni, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	cairn_narinfo_free(ni);
	free(t);

	/* unknown and malformed hash parts */
	t = narinfo(p, "00000000000000000000000000000000", &rc);
	assert_int_equal(rc, CAIRN_ENOENT);
	free(t);
	t = narinfo(p, "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", &rc);
	assert_int_equal(rc, CAIRN_EFORMAT);
	free(t);
	t = narinfo(p, "0000", &rc);
	assert_int_equal(rc, CAIRN_EFORMAT);
	free(t);

	/* the baker fills the cache: the file is the compressed nar */
	t = wait_baked(p, HP_B);
	/* final: the configured ttl */
	assert_int_equal(cairn_publish_narinfo(p, HP_B, 32, &tb, &age, NULL), 0);
	assert_int_equal(age, 3600);
	cairn_buf_release(&tb);
	assert_int_equal(cairn_narinfo_parse(t, strlen(t), &ni, NULL), 0);
	assert_int_equal(cairn_narinfo_verify(ni, &kr, &res, NULL), 0);
	assert_int_equal(ni->n_urls, 1);
	char fh[53], file[600];
	cairn_nix32_encode(ni->urls[0].file_hash.digest, 32, fh);
	fh[52] = '\0';
	snprintf(file, sizeof(file), "%s/nar/%s.nar.zst", fx->cache, fh);
	FILE *f = fopen(file, "rb");
	assert_non_null(f);
	static char zbuf[1 << 20];
	size_t zlen = fread(zbuf, 1, sizeof(zbuf), f);
	fclose(f);
	assert_int_equal(zlen, ni->urls[0].file_size);
	struct cairn_hash zh;
	cairn_hash_sha256(&zh, zbuf, zlen);
	assert_true(cairn_hash_equal(&zh, &ni->urls[0].file_hash));
	struct cairn_buf nar = CAIRN_BUF_INIT(16 << 20);
	assert_int_equal(cairn_codec_oneshot(CAIRN_CODEC_ZSTD, CAIRN_CODEC_DECOMPRESS,
					     CAIRN_CODEC_LEVEL_DEFAULT, zbuf, zlen, 16 << 20, &nar,
					     NULL),
			 0);
	struct cairn_hash nh;
	cairn_hash_sha256(&nh, nar.data, nar.len);
	assert_true(cairn_hash_equal(&nh, &ni->nar_hash));
	assert_int_equal(nar.len, ni->nar_size);
	cairn_buf_release(&nar);
	cairn_publish_free(p);

	/* files in nar/ that no info file names (a crash between the nar's
	 * rename and its info file's) are deleted at start-up */
	char orphan[600], orphan2[600];
	snprintf(orphan, sizeof(orphan), "%s/nar/%.52s.nar.zst", fx->cache,
		 "0000000000000000000000000000000000000000000000000000");
	snprintf(orphan2, sizeof(orphan2), "%s/nar/%s.nar.xz", fx->cache, fh);
	for (const char *o = orphan; o; o = o == orphan ? orphan2 : NULL) {
		f = fopen(o, "wb");
		assert_non_null(f);
		fputs("left by a crash", f);
		fclose(f);
	}

	/* a new server finds the baked file at once */
	p = open_pub(fx, &sk, 0);
	char *t2 = narinfo(p, HP_B, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(t, t2);
	free(t2);
	cairn_publish_free(p);
	struct stat ost;
	assert_int_not_equal(stat(orphan, &ost), 0);
	assert_int_not_equal(stat(orphan2, &ost), 0);
	assert_int_equal(stat(file, &ost), 0);
	cairn_narinfo_free(ni);
	free(t);

	/* a cache bound that holds one file: the older one goes */
	p = open_pub(fx, &sk, 1);
	free(wait_baked(p, HP_A));
	struct stat st;
	assert_int_not_equal(stat(file, &st), 0);
	/* (this queues it again, which would evict the other) */
	t = narinfo(p, HP_B, &rc);
	assert_int_equal(rc, 0);
	assert_null(strstr(t, "FileHash"));
	free(t);
	cairn_publish_free(p);

	cairn_seckey_wipe(&sk);
	cairn_keyring_release(&kr);
}

/* The FileHash (nix32) and FileSize of a baked narinfo. */
static void file_of(const char *t, char fh[53], uint64_t *size)
{
	struct cairn_narinfo *ni = NULL;
	assert_int_equal(cairn_narinfo_parse(t, strlen(t), &ni, NULL), 0);
	cairn_nix32_encode(ni->urls[0].file_hash.digest, 32, fh);
	fh[52] = '\0';
	*size = ni->urls[0].file_size;
	cairn_narinfo_free(ni);
}

/*
 * A baked file resolved for a reader is pinned until the reader has it
 * open: a bake that needs its room meanwhile leaves it (over the bound),
 * and it goes when unpinned.  Before pins, the eviction took it between
 * the lookup and the open, and the reader compressed the item again.
 */
static void test_baked_pinned(void **state)
{
	struct fixture *fx = *state;
	char fh_b[53], fh_a[53], url[80], file_b[600], file_a[600];
	uint64_t size_b, size_a;
	struct stat st;

	struct cairn_publish *p = open_pub(fx, NULL, 0);
	char *t = wait_baked(p, HP_B);
	file_of(t, fh_b, &size_b);
	free(t);
	t = wait_baked(p, HP_A);
	file_of(t, fh_a, &size_a);
	free(t);
	cairn_publish_free(p);
	snprintf(file_b, sizeof(file_b), "%s/nar/%s.nar.zst", fx->cache, fh_b);
	snprintf(file_a, sizeof(file_a), "%s/nar/%s.nar.zst", fx->cache, fh_a);
	assert_int_equal(unlink(file_a), 0); /* to be baked again */

	/* room for either, not both */
	p = open_pub(fx, NULL, size_a > size_b ? size_a : size_b);
	struct cairn_publish_nar_url u;
	struct cairn_storedb_pathinfo pi = {0};
	struct pub_baked baked;
	bool is_baked = false;
	snprintf(url, sizeof(url), "%s.nar.zst", fh_b);
	assert_int_equal(cairn_publish_parse_nar_url(url, strlen(url), &u, NULL), 0);
	assert_int_equal(pub_resolve_nar(p, &u, &pi, &baked, &is_baked, NULL), 0);
	assert_true(is_baked);

	/* A's bake needs the room B takes: B is pinned, so it stays */
	free(wait_baked(p, HP_A));
	assert_int_equal(stat(file_b, &st), 0);
	assert_int_equal(stat(file_a, &st), 0);

	/* the reader is done: the bound is kept again, B out (its URL a ghost) */
	pub_baked_unpin(p, &baked);
	assert_int_not_equal(stat(file_b, &st), 0);
	assert_int_equal(stat(file_a, &st), 0);
	assert_int_equal(pub_resolve_nar(p, &u, &pi, &baked, &is_baked, NULL), 0);
	assert_false(is_baked);
	cairn_storedb_pathinfo_release(&pi);
	cairn_publish_free(p);
}

struct logged {
	int n;
	char last[600];
};

static void capture_log(void *ctx, const char *msg)
{
	struct logged *l = ctx;
	l->n++;
	snprintf(l->last, sizeof(l->last), "%s", msg);
}

static int discard_out(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return 0;
}

/* Compression speed: the judgement's bounds, and one warning per method
 * however many compressions go through the meter (publish.h). */
static void test_compress_rate(void **state)
{
	struct fixture *fx = *state;
	struct cairn_publish_config cfg;
	struct cairn_publish *p = NULL;
	struct logged log = {0};
	cairn_publish_config_init(&cfg, CAIRN_STOREDB_NIX);
	assert_int_equal(cfg.slow_compression_rate, CAIRN_PUBLISH_SLOW_RATE);
	cfg.store_dir = "/nix/store";
	cfg.real_store_dir = fx->store;
	cfg.db_path = fx->db;
	cfg.compressions[0].method = CAIRN_CODEC_XZ;
	cfg.compressions[0].level = 9;
	cfg.slow_compression_rate = UINT64_C(1) << 40; /* 1 TiB/s: everything is slow */
	cfg.log = capture_log;
	cfg.log_ctx = &log;
	assert_int_equal(cairn_publish_new(&p, &cfg, NULL), 0);

	const uint64_t min = CAIRN_PUBLISH_RATE_SAMPLE_MIN, s = 1000000000u;
	assert_false(pub_rate_slow(p, min - 1, 100 * s)); /* too little to judge */
	assert_true(pub_rate_slow(p, min, s));
	assert_false(pub_rate_slow(p, min, 0)); /* no time at all: not slow */
	p->cfg.slow_compression_rate = 10 << 20;
	assert_true(pub_rate_slow(p, 20 << 20, 3 * s));	 /* 6.7 MiB/s */
	assert_false(pub_rate_slow(p, 20 << 20, 2 * s)); /* exactly 10 MiB/s */
	assert_false(pub_rate_slow(p, UINT64_MAX, 1));	 /* no overflow */
	p->cfg.slow_compression_rate = 0;
	assert_false(pub_rate_slow(p, UINT64_MAX, UINT64_MAX)); /* 0: never */
	p->cfg.slow_compression_rate = UINT64_C(1) << 40;

	/* three compressions of 3 MiB each through meters: one line, the
	 * bytes of all three counted */
	static char in[64 * 1024];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (char)("abcdefgh"[i % 8] ^ (i / 4096));
	for (int k = 0; k < 3; k++) {
		struct cairn_codec *c = NULL;
		struct pub_meter m = {.method = CAIRN_CODEC_GZIP};
		assert_int_equal(cairn_codec_new(&c, CAIRN_CODEC_GZIP, CAIRN_CODEC_COMPRESS, 6,
						 CAIRN_CODEC_UNLIMITED, NULL),
				 0);
		for (int i = 0; i < 48; i++)
			assert_int_equal(
			    pub_meter_write(p, &m, c, in, sizeof(in), discard_out, NULL, NULL), 0);
		assert_int_equal(pub_meter_finish(p, &m, c, discard_out, NULL, NULL), 0);
		assert_int_equal(m.in, 0); /* all handed over */
		cairn_codec_free(c);
	}
	assert_int_equal(atomic_load(&p->rates[CAIRN_CODEC_GZIP].bytes_in), 3 * 48 * sizeof(in));
	assert_true(atomic_load(&p->rates[CAIRN_CODEC_GZIP].cpu_ns) > 0);
	assert_int_equal(atomic_load(&p->rates[CAIRN_CODEC_XZ].bytes_in), 0);
	assert_int_equal(log.n, 1);
	assert_non_null(strstr(log.last, "slow compression: gzip:1 compresses "));
	assert_non_null(strstr(log.last, "keep gzip for bakes"));
	cairn_publish_free(p);
}

/* The served keys: each kind alone; /signing-key.pub the dialect's; one
 * Guix key at most. */
static void test_public_keys(void **state)
{
	struct fixture *fx = *state;
	struct cairn_seckey nk, gk, gk2;
	struct cairn_publish_config cfg;
	struct cairn_publish *p = NULL;
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16), want = CAIRN_BUF_INIT(1 << 16);
	struct cairn_guix_pubkey gpk;
	struct cairn_error err;

	nk.kind = CAIRN_KEY_NIX;
	gk.kind = gk2.kind = CAIRN_KEY_GUIX;
	assert_int_equal(cairn_nix_key_generate("test-1", &nk.u.nix, NULL), 0);
	if (cairn_guix_key_generate(&gk.u.guix, NULL) == CAIRN_EUNSUPPORTED)
		skip();
	assert_int_equal(cairn_guix_key_generate(&gk2.u.guix, NULL), 0);
	cairn_guix_seckey_public(&gk.u.guix, &gpk);
	assert_int_equal(cairn_guix_pubkey_format(&gpk, &want), 0);

	cairn_publish_config_init(&cfg, CAIRN_STOREDB_NIX);
	cfg.store_dir = "/nix/store";
	cfg.real_store_dir = fx->store;
	cfg.db_path = fx->db;
	cfg.dialect = CAIRN_PUBLISH_GUIX;
	cfg.keys[cfg.n_keys++] = &nk;
	cfg.keys[cfg.n_keys++] = &gk;
	cairn_error_init(&err);
	assert_int_equal(cairn_publish_new(&p, &cfg, &err), 0);
	/* Guix dialect: the Guix key alone, as Guix writes signing-key.pub */
	assert_int_equal(cairn_publish_public_keys(p, 0, &b), 0);
	assert_int_equal(b.len, want.len);
	assert_memory_equal(b.data, want.data, want.len);
	b.len = 0;
	assert_int_equal(cairn_publish_public_keys(p, CAIRN_KEY_NIX, &b), 0);
	assert_non_null(memchr(b.data, ':', b.len));
	assert_null(memchr(b.data, '(', b.len));
	cairn_publish_free(p);

	/* two Guix keys: refused (a narinfo has one Signature) */
	cfg.keys[cfg.n_keys++] = &gk2;
	assert_int_equal(cairn_publish_new(&p, &cfg, &err), CAIRN_EINVAL);
	cairn_buf_release(&b);
	cairn_buf_release(&want);
	cairn_seckey_wipe(&nk);
	cairn_seckey_wipe(&gk);
	cairn_seckey_wipe(&gk2);
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nar_urls),
		cmocka_unit_test(test_nix_narinfo),
		cmocka_unit_test(test_guix_narinfo),
		cmocka_unit_test_setup_teardown(test_store_narinfo_and_bake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_baked_pinned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_public_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compress_rate, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
