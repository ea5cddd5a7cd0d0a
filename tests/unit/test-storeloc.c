/* storeloc: a store's parts from its root and kind, and the kind detected
 * from what exists under the root. */
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

#include "cairn/storeloc.h"

static char tmp[] = "/tmp/cairn-storeloc-XXXXXX";

static void locate(struct cairn_storeloc *l, const char *root, enum cairn_storedb_kind kind,
		   const char *store_dir, const char *db)
{
	struct cairn_storeloc_config cfg;
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_storeloc_config_init(&cfg);
	cfg.root = root;
	cfg.kind = kind;
	cfg.store_dir = store_dir;
	cfg.db_path = db;
	assert_int_equal(cairn_storeloc_locate(l, &cfg, &err), 0);
}

static void test_real_store(void **state)
{
	(void)state;
	struct cairn_storeloc l;
	const char *roots[] = {NULL, "", "/", "//"};
	for (size_t i = 0; i < 4; i++) {
		locate(&l, roots[i], CAIRN_STOREDB_NIX, NULL, NULL);
		assert_string_equal(l.root, "");
		assert_string_equal(l.store_dir, "/nix/store");
		assert_string_equal(l.real_store_dir, "/nix/store");
		assert_string_equal(l.db_path, "/nix/var/nix/db/db.sqlite");
		assert_string_equal(l.log_dir, "/nix/var/log/nix/drvs");
		cairn_storeloc_release(&l);
	}
	locate(&l, "/", CAIRN_STOREDB_GUIX, NULL, NULL);
	assert_string_equal(l.store_dir, "/gnu/store");
	assert_string_equal(l.db_path, "/var/guix/db/db.sqlite");
	assert_string_equal(l.log_dir, "/var/log/guix/drvs");
	cairn_storeloc_release(&l);
}

static void test_chroot(void **state)
{
	(void)state;
	struct cairn_storeloc l;
	locate(&l, "/srv/r/", CAIRN_STOREDB_NIX, NULL, NULL);
	assert_string_equal(l.root, "/srv/r");
	assert_string_equal(l.store_dir, "/nix/store");
	assert_string_equal(l.real_store_dir, "/srv/r/nix/store");
	assert_string_equal(l.db_path, "/srv/r/nix/var/nix/db/db.sqlite");
	assert_string_equal(l.log_dir, "/srv/r/nix/var/log/nix/drvs");
	assert_false(l.has_store_dir);
	assert_false(l.has_db);
	cairn_storeloc_release(&l);
	locate(&l, "/srv/g", CAIRN_STOREDB_GUIX, NULL, NULL);
	assert_string_equal(l.real_store_dir, "/srv/g/gnu/store");
	assert_string_equal(l.db_path, "/srv/g/var/guix/db/db.sqlite");
	assert_string_equal(l.log_dir, "/srv/g/var/log/guix/drvs");
	cairn_storeloc_release(&l);
}

static void test_own_store_dir(void **state)
{
	(void)state;
	struct cairn_storeloc l;
	/* a store directory of its own: no default database or logs */
	locate(&l, "", CAIRN_STOREDB_NIX, "/tmp/s/store/", NULL);
	assert_string_equal(l.store_dir, "/tmp/s/store");
	assert_string_equal(l.real_store_dir, "/tmp/s/store");
	assert_null(l.db_path);
	assert_null(l.log_dir);
	cairn_storeloc_release(&l);
	/* a given database puts the logs beside it */
	locate(&l, "", CAIRN_STOREDB_NIX, "/tmp/s/store", "/tmp/s/var/nix/db/db.sqlite");
	assert_string_equal(l.db_path, "/tmp/s/var/nix/db/db.sqlite");
	assert_string_equal(l.log_dir, "/tmp/s/var/log/nix/drvs");
	cairn_storeloc_release(&l);
	locate(&l, "/r", CAIRN_STOREDB_GUIX, NULL, "/x/var/guix/db/db.sqlite");
	assert_string_equal(l.log_dir, "/x/var/log/guix/drvs");
	cairn_storeloc_release(&l);
	/* a store_dir of /gnu/store means Guix when nothing else says */
	locate(&l, "/nonexistent-root", 0, "/gnu/store", NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_GUIX);
	assert_string_equal(l.db_path, "/nonexistent-root/var/guix/db/db.sqlite");
	cairn_storeloc_release(&l);
}

static void mk(const char *rel, bool dir)
{
	char p[512];
	snprintf(p, sizeof(p), "%s%s", tmp, rel);
	if (dir) {
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
		assert_int_equal(system(cmd), 0);
	} else {
		FILE *f = fopen(p, "w");
		assert_non_null(f);
		fclose(f);
	}
}

static void test_detect(void **state)
{
	(void)state;
	struct cairn_storeloc l;
	assert_non_null(mkdtemp(tmp));
	/* nothing there: Nix, and nothing exists */
	locate(&l, tmp, 0, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_NIX);
	assert_false(l.has_store_dir);
	cairn_storeloc_release(&l);
	/* a Guix store directory */
	mk("/gnu/store", true);
	locate(&l, tmp, 0, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_GUIX);
	assert_true(l.has_store_dir);
	assert_false(l.has_db);
	cairn_storeloc_release(&l);
	/* a Nix store directory comes before a Guix one */
	mk("/nix/store", true);
	locate(&l, tmp, 0, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_NIX);
	cairn_storeloc_release(&l);
	/* a database comes before any store directory */
	mk("/var/guix/db", true);
	mk("/var/guix/db/db.sqlite", false);
	locate(&l, tmp, 0, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_GUIX);
	assert_true(l.has_db);
	assert_true(l.has_store_dir);
	cairn_storeloc_release(&l);
	mk("/nix/var/nix/db", true);
	mk("/nix/var/nix/db/db.sqlite", false);
	locate(&l, tmp, 0, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_NIX);
	assert_true(l.has_db);
	cairn_storeloc_release(&l);
	/* a given kind is not second-guessed */
	locate(&l, tmp, CAIRN_STOREDB_GUIX, NULL, NULL);
	assert_int_equal(l.kind, CAIRN_STOREDB_GUIX);
	cairn_storeloc_release(&l);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	assert_int_equal(system(cmd), 0);
}

static void test_errors(void **state)
{
	(void)state;
	struct cairn_storeloc_config cfg;
	struct cairn_storeloc l;
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_storeloc_config_init(&cfg);
	cfg.store_dir = "nix/store";
	memset(&l, 0x5a, sizeof(l));
	assert_int_equal(cairn_storeloc_locate(&l, &cfg, &err), CAIRN_EINVAL);
	assert_non_null(strstr(err.msg, "not an absolute path"));
	assert_int_equal(l.kind, 0x5a5a5a5a); /* untouched */
	char *long_root = malloc(CAIRN_STORELOC_PATH_MAX + 2);
	assert_non_null(long_root);
	memset(long_root, 'a', CAIRN_STORELOC_PATH_MAX + 1);
	long_root[0] = '/';
	long_root[CAIRN_STORELOC_PATH_MAX + 1] = '\0';
	cfg.store_dir = NULL;
	cfg.root = long_root;
	cfg.kind = CAIRN_STOREDB_NIX;
	assert_int_equal(cairn_storeloc_locate(&l, &cfg, &err), CAIRN_ELIMIT);
	free(long_root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_real_store),	 cmocka_unit_test(test_chroot),
	    cmocka_unit_test(test_own_store_dir), cmocka_unit_test(test_detect),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
