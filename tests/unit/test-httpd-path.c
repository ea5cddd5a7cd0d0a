/* cairn_httpd_safe_path: URL path to a relative file name, or refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/httpd.h"

static int safe(const char *in, char *out, size_t outsize)
{
	struct cairn_error err;
	cairn_error_init(&err);
	int ret = cairn_httpd_safe_path(in, strlen(in), out, outsize, &err);
	if (ret < 0) {
		assert_int_equal(err.code, ret);
		assert_true(strncmp(err.msg, "httpd: ", 7) == 0);
	}
	return ret;
}

static void test_accepts(void **state)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
	    {"abc.narinfo", "abc.narinfo"},
	    {"nar/0mn65k.nar.xz", "nar/0mn65k.nar.xz"},
	    {"a%20b", "a b"},
	    {"x%2Ey", "x.y"},
	    {"...", "..."},
	    {"..a", "..a"},
	    {"a..", "a.."},
	    {".hidden", ".hidden"},
	    {"log/abc-hello.drv", "log/abc-hello.drv"},
	};
	char out[64];
	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(out, 0x55, sizeof(out));
		assert_int_equal(safe(ok[i].in, out, sizeof(out)), 0);
		assert_string_equal(out, ok[i].out);
	}
}

static void test_rejects_traversal(void **state)
{
	static const char *bad[] = {
	    "..",	   "../x",	 "a/../b", "a/..", "%2e%2e", "%2E%2e/x",   ".%2e",
	    "%2e.",	   "a/%2e%2e/b", ".",	   "./x",  "a/./b",  "a/.",	   "%2e",
	    "/etc/passwd", "a//b",	 "a/",	   "",	   "a%2fb",  "a%2F..%2Fb", "a%5cb",
	    "a\\b",	   "..%5c..",	 "a%00b",  "%00",  "a%0ab",  "a%7fb",	   "%",
	    "%2",	   "a%zz",	 "a%g0",
	};
	char out[64];
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(out, "untouched");
		int ret = safe(bad[i], out, sizeof(out));
		if (ret == 0)
			fail_msg("'%s' was accepted as '%s'", bad[i], out);
		assert_true(ret == CAIRN_EUNSAFE || ret == CAIRN_EFORMAT);
	}
	/* a raw NUL inside the given length */
	assert_int_equal(cairn_httpd_safe_path("a\0b", 3, out, sizeof(out), NULL), CAIRN_EUNSAFE);
}

static void test_length_limit(void **state)
{
	char out[8];
	(void)state;
	assert_int_equal(safe("1234567", out, sizeof(out)), 0);
	assert_string_equal(out, "1234567");
	assert_int_equal(safe("12345678", out, sizeof(out)), CAIRN_ELIMIT);
	assert_int_equal(safe("%31%32%33%34%35%36%37", out, sizeof(out)), 0);
	assert_string_equal(out, "1234567");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts),
	    cmocka_unit_test(test_rejects_traversal),
	    cmocka_unit_test(test_length_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
