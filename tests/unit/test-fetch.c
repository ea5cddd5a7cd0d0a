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
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, 1), 1);
	assert_int_equal(cairn_fetch_pick_url(ni, 1e6, 1), 0);
	assert_int_equal(cairn_fetch_pick_url(ni, 0, 2), 1); /* unknown rate: the guess */
	cairn_narinfo_free(ni);
	ni = ni_with("URL: nar/a.nar.xz\nCompression: xz\nFileSize: 20000000\n"
		     "URL: nar/a.nar\nCompression: none\nFileSize: 100000000\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, 1), 1);
	assert_int_equal(cairn_fetch_pick_url(ni, 5e6, 1), 0);
	cairn_narinfo_free(ni);
	/* no FileSize: typical ratios; an unreadable method is never picked */
	ni = ni_with("URL: nar/a.nar.br\nCompression: br\n"
		     "URL: nar/a.nar.bz2\nCompression: bzip2\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, 1), 1);
	cairn_narinfo_free(ni);
	ni = ni_with("URL: nar/a.nar.br\nCompression: br\n");
	assert_int_equal(cairn_fetch_pick_url(ni, 1e9, 1), -1);
	cairn_narinfo_free(ni);
}

/* K = 1: the bytes are asked in --from / Priority order, not in the
 * order the narinfos happened to arrive (test-fetch.sh, under load). */
static void test_early_order(void **state)
{
	(void)state;
	const double g = FETCH_PRIORITY_GRACE_S;
	/* the first server answered and is acceptable: go at once */
	struct early_view a[] = {{.member = true}, {.pending = true}};
	assert_true(fetch_early_go(a, 2, 0));
	/* the second answered first: wait for the first, up to the grace */
	struct early_view b[] = {{.pending = true}, {.member = true}};
	assert_false(fetch_early_go(b, 2, 0));
	assert_false(fetch_early_go(b, 2, g / 2));
	assert_true(fetch_early_go(b, 2, g));
	/* the first said no (404, error, another claim): no reason to wait */
	struct early_view c[] = {{0}, {.member = true}, {.pending = true}};
	assert_true(fetch_early_go(c, 3, 0));
	/* a preferred member already in: a pending one before a later member
	 * does not hold it back */
	struct early_view d[] = {{.member = true}, {.pending = true}, {.member = true}};
	assert_true(fetch_early_go(d, 3, 0));
	/* a demoted server is not waited for ... */
	struct early_view e[] = {{.demoted = true, .pending = true}, {.member = true}};
	assert_true(fetch_early_go(e, 2, 0));
	/* ... nor the only source while a good one could answer, grace or not */
	struct early_view h[] = {{.demoted = true, .member = true}, {.pending = true}};
	assert_false(fetch_early_go(h, 2, 0));
	assert_false(fetch_early_go(h, 2, 10 * g));
	struct early_view i[] = {{.demoted = true, .member = true}, {0}};
	assert_true(fetch_early_go(i, 2, 0));
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
	    cmocka_unit_test(test_early_order),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
