/*
 * test-fetch.c - the engine's checks that need no server: configuration,
 * path parsing, items already present, and a run against servers that are
 * not there.  Downloads and verification are in tests/integration/test-fetch.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/fetch.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/nicache.h"
#include "../../lib/fetch-int.h"

#define P1 "/nix/store/pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0"
#define B1 "pp25ahmcbii9zkwhkaxdr3ihh9439x9p-libvec-1.0"

static struct cairn_keyring kr = CAIRN_KEYRING_INIT;
static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-fetch.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	const char *pk = "cache.example.org-1:XzmZSyBW5fO/8u6Y9zc2/AjDOerKJUzkUNA6wadE9gg=";
	return cairn_keyring_load(&kr, pk, strlen(pk), NULL) == 1 ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	cairn_keyring_release(&kr);
	return system(cmd) == 0 ? 0 : -1;
}

static void base_config(struct cairn_fetch_config *cfg, const char *root)
{
	cairn_fetch_config_init(cfg);
	cfg->keys = &kr;
	cfg->root = root;
	cfg->http.connect_timeout_ms = 2000;
}

static void test_config_checked(void **state)
{
	(void)state;
	struct cairn_fetch_config cfg;
	struct cairn_fetch *f = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	base_config(&cfg, tmpdir);
	cfg.keys = NULL;
	assert_int_equal(cairn_fetch_new(&f, &cfg, &err), CAIRN_EINVAL);
	base_config(&cfg, tmpdir);
	cfg.nar_dir = tmpdir; /* both */
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), CAIRN_EINVAL);
	base_config(&cfg, tmpdir);
	cfg.store_dir = "/nix/store/";
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), CAIRN_EFORMAT);
	base_config(&cfg, tmpdir);
	cfg.jobs = CAIRN_FETCH_MAX_JOBS + 1;
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), CAIRN_ELIMIT);
	assert_null(f);
	base_config(&cfg, tmpdir);
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), 0);
	assert_int_equal(cairn_fetch_add_server(f, "ftp://example.org", NULL), CAIRN_EINVAL);
	cairn_fetch_free(f);
}

static void test_paths_parsed(void **state)
{
	(void)state;
	struct cairn_fetch_config cfg;
	struct cairn_fetch *f = NULL;
	struct cairn_error err;
	base_config(&cfg, tmpdir);
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), 0);
	assert_int_equal(cairn_fetch_add_path(f, P1, NULL), 0);
	/* the same item three ways: once */
	assert_int_equal(cairn_fetch_add_path(f, B1, NULL), 0);
	assert_int_equal(cairn_fetch_add_path(f, P1 "/lib/libvec.txt", NULL), 0);
	assert_int_equal(cairn_fetch_item_count(f), 1);
	cairn_error_init(&err);
	assert_int_equal(cairn_fetch_add_path(f, "/gnu/store/" B1, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "not in /nix/store"));
	assert_int_equal(cairn_fetch_add_path(f, "/nix/store/tooshort-x", NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_fetch_add_path(f, "/nix/store/" B1 "e", NULL), 0);
	assert_int_equal(cairn_fetch_add_path(f, "/nix/store/../etc/passwd", NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_fetch_item_count(f), 2);
	struct cairn_fetch_report r;
	cairn_fetch_item(f, 0, &r);
	assert_string_equal(r.path, P1);
	assert_true(r.requested);
	assert_int_equal(r.status, CAIRN_FETCH_PENDING);
	cairn_fetch_free(f);
}

static int reports;
static void count_item(void *ctx, const struct cairn_fetch_report *r)
{
	(void)ctx;
	(void)r;
	reports++;
}

static void test_present_needs_no_server(void **state)
{
	(void)state;
	char root[128], dir[256];
	snprintf(root, sizeof(root), "%s/present", tmpdir);
	snprintf(dir, sizeof(dir), "%s/nix/store/" B1, root);
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	assert_int_equal(system(cmd), 0);
	struct cairn_fetch_config cfg;
	struct cairn_fetch *f = NULL;
	base_config(&cfg, root);
	cfg.on_item = count_item;
	reports = 0;
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), 0);
	assert_int_equal(cairn_fetch_add_path(f, P1, NULL), 0);
	assert_int_equal(cairn_fetch_run(f, NULL), 0);
	struct cairn_fetch_report r;
	cairn_fetch_item(f, 0, &r);
	assert_int_equal(r.status, CAIRN_FETCH_PRESENT);
	assert_int_equal(reports, 1);
	cairn_fetch_free(f);
}

static void test_servers_down(void **state)
{
	(void)state;
	char root[128];
	snprintf(root, sizeof(root), "%s/down", tmpdir);
	struct cairn_fetch_config cfg;
	struct cairn_fetch *f = NULL;
	base_config(&cfg, root);
	assert_int_equal(cairn_fetch_new(&f, &cfg, NULL), 0);
	/* port 1: nothing listens there */
	assert_int_equal(cairn_fetch_add_server(f, "http://127.0.0.1:1", NULL), 0);
	assert_int_equal(cairn_fetch_add_path(f, P1, NULL), 0);
	assert_int_equal(cairn_fetch_run(f, NULL), 1);
	struct cairn_fetch_report r;
	cairn_fetch_item(f, 0, &r);
	assert_int_equal(r.status, CAIRN_FETCH_FAILED);
	assert_int_equal(r.code, CAIRN_ENET);
	assert_non_null(strstr(r.reason, "no server could be asked"));
	assert_non_null(strstr(r.reason, "http://127.0.0.1:1"));
	struct stat st;
	assert_int_equal(stat(root, &st), -1); /* nothing created */
	cairn_fetch_free(f);
}

static struct cairn_narinfo *ni_with(const char *groups)
{
	char text[2048];
	snprintf(text, sizeof(text),
		 "StorePath: " P1 "\n%s"
		 "NarHash: sha256:1rx7qicg1ra44gl6xffciigi4z8liqqg0f33d82s2mqwvpiwxjqb\n"
		 "NarSize: 100000000\n"
		 "References: \n",
		 groups);
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cairn_narinfo_parse(text, strlen(text), &ni, &err))
		fail_msg("%s", err.msg);
	return ni;
}

static void test_pick_url(void **state)
{
	(void)state;
	const char *three = "URL: nar/a.nar.xz\nCompression: xz\nFileSize: 20000000\n"
			    "URL: nar/a.nar.zst\nCompression: zstd\nFileSize: 30000000\n"
			    "URL: nar/a.nar\nCompression: none\nFileSize: 100000000\n";
	struct cairn_narinfo *ni = ni_with(three);
	/* a fast link: what unpacks fast; a slow one: the smallest */
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, NULL, 1, NULL), 1);
	assert_int_equal(cairn_fetch_pick_url(ni, 1e6, NULL, 1, NULL), 0);
	/* unknown rate: the guess */
	assert_int_equal(cairn_fetch_pick_url(ni, 0, NULL, 2, NULL), 1);
	cairn_narinfo_free(ni);
	ni = ni_with("URL: nar/a.nar.xz\nCompression: xz\nFileSize: 20000000\n"
		     "URL: nar/a.nar\nCompression: none\nFileSize: 100000000\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, NULL, 1, NULL), 1);
	assert_int_equal(cairn_fetch_pick_url(ni, 5e6, NULL, 1, NULL), 0);
	cairn_narinfo_free(ni);
	/* no FileSize: typical ratios; an unreadable method is never picked */
	ni = ni_with("URL: nar/a.nar.br\nCompression: br\n"
		     "URL: nar/a.nar.bz2\nCompression: bzip2\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, NULL, 1, NULL), 1);
	cairn_narinfo_free(ni);
	ni = ni_with("URL: nar/a.nar.br\nCompression: br\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, NULL, 1, NULL), -1);
	cairn_narinfo_free(ni);
}

/*
 * The measured unpacking speeds decide, not a fixed table (issue 17.3):
 * the same narinfo and link flip with the machine.  Rates in bytes/s;
 * 2 Mbit/s = 250e3, 1 Gbit/s = 125e6.  NAR 100 MB; xz 20 MB, zstd 30 MB.
 */
static void test_pick_url_measured(void **state)
{
	(void)state;
	struct cairn_narinfo *ni =
	    ni_with("URL: nar/a.nar.xz\nCompression: xz\nFileSize: 20000000\n"
		    "URL: nar/a.nar.zst\nCompression: zstd\nFileSize: 30000000\n"
		    "URL: nar/a.nar\nCompression: none\nFileSize: 100000000\n"
		    "URL: nar/a.nar.br\nCompression: br\nFileSize: 10000000\n");
	double fast_cpu[CAIRN_CODEC_METHOD_COUNT_] = {
	    [CAIRN_CODEC_NONE] = 4e9, [CAIRN_CODEC_XZ] = 150e6, [CAIRN_CODEC_ZSTD] = 2e9};
	double slow_cpu[CAIRN_CODEC_METHOD_COUNT_] = {
	    [CAIRN_CODEC_NONE] = 1e9, [CAIRN_CODEC_XZ] = 10e6, [CAIRN_CODEC_ZSTD] = 300e6};
	const struct {
		double net;
		const double *unpack;
		int want;
	} table[] = {
	    {250e3, NULL, 0},	 /* 2 Mbit/s: the smallest */
	    {125e6, NULL, 1},	 /* 1 Gbit/s: zstd */
	    {250e3, fast_cpu, 0}, {250e3, slow_cpu, 0},
	    {125e6, fast_cpu, 1}, /* 1 Gbit/s: zstd, 0.24+0.05 s vs xz 0.16+0.67 */
	    {125e6, slow_cpu, 1},
	    /* 10 Gbit/s: zstd on a fast CPU (0.024+0.05 vs none 0.08+0.025),
	     * none on a slow one (0.08+0.1 vs 0.024+0.33) */
	    {1.25e9, fast_cpu, 1}, {1.25e9, slow_cpu, 2},
	    /* The same link flips with the CPU: at 80 Mbit/s xz wins on a fast
	     * one (2+0.67 s vs zstd 3+0.05) and loses on a slow one (2+10 vs
	     * 3+0.33); at 20 Mbit/s alike (8+0.67 vs 12+0.05; 8+10 vs 12+0.33). */
	    {10e6, fast_cpu, 0}, {10e6, slow_cpu, 1}, {2.5e6, fast_cpu, 0}, {2.5e6, slow_cpu, 1},
	};
	for (size_t t = 0; t < sizeof(table) / sizeof(table[0]); t++) {
		struct cairn_fetch_choice est[4];
		int got = cairn_fetch_pick_url(ni, table[t].net, table[t].unpack, 1, est);
		if (got != table[t].want)
			fail_msg("row %zu: picked %d, want %d", t, got, table[t].want);
		/* each option's estimate, for --json: the winner's is the least */
		assert_false(est[3].readable);
		assert_string_equal(est[3].compression, "br");
		for (int k = 0; k < 3; k++) {
			assert_true(est[k].readable);
			assert_true(est[got].seconds <= est[k].seconds * 1.01);
		}
		assert_string_equal(est[0].compression, "xz");
		assert_int_equal(est[1].file_size, 30000000);
	}
	cairn_narinfo_free(ni);
}

/* This machine's unpacking speeds: measured once (each method round-trips
 * the built-in sample), then read back from the cache, not measured again. */
static void test_codec_rates(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-codec-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[128];
	snprintf(db, sizeof(db), "%s/ni.sqlite", dir);
	struct cairn_nicache *c = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	struct cairn_nicache_config cfg;
	cairn_nicache_config_init(&cfg);
	cfg.path = db;
	if (cairn_nicache_open(&c, &cfg, 1000, &err))
		fail_msg("%s", err.msg);
	double r[CAIRN_CODEC_METHOD_COUNT_];
	bool measured = false;
	fetch_codec_rates(c, r, &measured);
	assert_true(measured);
	for (int m = 0; m < CAIRN_CODEC_METHOD_COUNT_; m++)
		assert_true(r[m] > 0);
	uint64_t kept, rtt;
	assert_int_equal(cairn_nicache_get_speed(c, "cairn-codec-unpack:xz", &kept, &rtt, NULL), 1);
	assert_int_equal(kept, (uint64_t)r[CAIRN_CODEC_XZ]);
	/* a planted figure is what the next run uses: read, not remeasured */
	cairn_nicache_put_speed(c, "cairn-codec-unpack:zstd", 1, 0, 1000, NULL);
	cairn_nicache_put_speed(c, "cairn-codec-unpack:zstd", 1, 0, 1000, NULL);
	double r2[CAIRN_CODEC_METHOD_COUNT_];
	fetch_codec_rates(c, r2, &measured);
	assert_true(measured);
	uint64_t want = ((uint64_t)r[CAIRN_CODEC_ZSTD] + 1) / 2 + 1;
	assert_true(r2[CAIRN_CODEC_ZSTD] <= (double)want);
	assert_true(r2[CAIRN_CODEC_XZ] == (double)(uint64_t)r[CAIRN_CODEC_XZ]);
	cairn_nicache_free(c);
	unlink(db);
	char wal[160];
	snprintf(wal, sizeof(wal), "%s-wal", db);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", db);
	unlink(wal);
	rmdir(dir);
}

/* K = 1: the bytes are asked in --from / Priority order, not in the
 * order the narinfos happened to arrive (test-fetch.sh, under load). */
static void test_early_order(void **state)
{
	(void)state;
	const double g = FETCH_PRIORITY_GRACE_S;
	/* the first server answered and is acceptable: go at once */
	struct early_view a[] = {{.member = true}, {.pending = true}};
	assert_true(fetch_early_go(a, 2, 0, NULL));
	/* the second answered first: wait for the first, up to the grace */
	struct early_view b[] = {{.pending = true}, {.member = true}};
	assert_false(fetch_early_go(b, 2, 0, NULL));
	assert_false(fetch_early_go(b, 2, g / 2, NULL));
	assert_true(fetch_early_go(b, 2, g, NULL));
	/* the first said no (404, error, another claim): no reason to wait */
	struct early_view c[] = {{0}, {.member = true}, {.pending = true}};
	assert_true(fetch_early_go(c, 3, 0, NULL));
	/* a preferred member already in: a pending one before a later member
	 * does not hold it back */
	struct early_view d[] = {{.member = true}, {.pending = true}, {.member = true}};
	assert_true(fetch_early_go(d, 3, 0, NULL));
	/* a demoted server is not waited for ... */
	struct early_view e[] = {{.demoted = true, .pending = true}, {.member = true}};
	assert_true(fetch_early_go(e, 2, 0, NULL));
	/* ... nor the only source while a good one could answer, grace or not */
	struct early_view h[] = {{.demoted = true, .member = true}, {.pending = true}};
	assert_false(fetch_early_go(h, 2, 0, NULL));
	assert_false(fetch_early_go(h, 2, 10 * g, NULL));
	struct early_view i[] = {{.demoted = true, .member = true}, {0}};
	assert_true(fetch_early_go(i, 2, 0, NULL));
	/* a waited-for server whose time to first byte is known: a grace of a
	 * few of those, not under the floor, and never over the constant */
	double grace = 0;
	struct early_view j[] = {{.pending = true, .rtt_s = 0.01}, {.member = true}};
	assert_false(fetch_early_go(j, 2, FETCH_PRIORITY_GRACE_MIN_S / 2, &grace));
	assert_true(grace == FETCH_PRIORITY_GRACE_MIN_S);
	assert_true(fetch_early_go(j, 2, FETCH_PRIORITY_GRACE_MIN_S, NULL));
	struct early_view k[] = {{.pending = true, .rtt_s = 0.2}, {.member = true}};
	assert_false(fetch_early_go(k, 2, 0.7, &grace));
	assert_true(grace == 0.2 * FETCH_PRIORITY_GRACE_RTTS);
	assert_true(fetch_early_go(k, 2, 0.8, NULL));
	struct early_view l[] = {{.pending = true, .rtt_s = 5}, {.member = true}};
	assert_false(fetch_early_go(l, 2, g / 2, &grace));
	assert_true(grace == g);
	/* the slowest of the servers waited for sets it; one never measured
	 * means the constant */
	struct early_view m[] = {{.pending = true, .rtt_s = 0.01}, {.pending = true, .rtt_s = 0.2},
				 {.member = true}};
	assert_false(fetch_early_go(m, 3, 0.5, &grace));
	assert_true(grace == 0.2 * FETCH_PRIORITY_GRACE_RTTS);
	struct early_view o[] = {{.pending = true, .rtt_s = 0.01}, {.pending = true}, {.member = true}};
	assert_false(fetch_early_go(o, 3, 1.0, &grace));
	assert_true(grace == g);
}

int main(void)
{
	if (cairn_init() != 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_checked),
	    cmocka_unit_test(test_paths_parsed),
	    cmocka_unit_test(test_present_needs_no_server),
	    cmocka_unit_test(test_servers_down),
	    cmocka_unit_test(test_pick_url),
	    cmocka_unit_test(test_pick_url_measured),
	    cmocka_unit_test(test_codec_rates),
	    cmocka_unit_test(test_early_order),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
