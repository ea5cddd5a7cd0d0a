#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/error.h"

static void test_set_and_first_wins(void **state)
{
	(void)state;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
	assert_int_equal(cairn_error_set(&err, CAIRN_EFORMAT, "nar: bad magic '%s' at %d", "x", 7),
			 CAIRN_EFORMAT);
	assert_int_equal(err.code, CAIRN_EFORMAT);
	assert_string_equal(err.msg, "nar: bad magic 'x' at 7");
	/* a later failure is a consequence: the first cause is kept, but the
	 * later code is still returned to its caller */
	assert_int_equal(cairn_error_set(&err, CAIRN_EIO, "write failed"), CAIRN_EIO);
	assert_int_equal(err.code, CAIRN_EFORMAT);
	assert_string_equal(err.msg, "nar: bad magic 'x' at 7");
	assert_int_equal(cairn_error_errno(&err, ENOENT, "open"), CAIRN_EIO);
	assert_string_equal(err.msg, "nar: bad magic 'x' at 7");
	/* init starts over */
	cairn_error_init(&err);
	assert_int_equal(cairn_error_set(&err, CAIRN_ELIMIT, "second"), CAIRN_ELIMIT);
	assert_string_equal(err.msg, "second");
}

static void test_null_err(void **state)
{
	(void)state;
	/* err is optional everywhere */
	assert_int_equal(cairn_error_set(NULL, CAIRN_EHASH, "x %d", 1), CAIRN_EHASH);
	assert_int_equal(cairn_error_errno(NULL, ENOMEM, "x"), CAIRN_ENOMEM);
	assert_int_equal(cairn_error_errno(NULL, EACCES, "x"), CAIRN_EIO);
	cairn_error_init(NULL);
	assert_string_equal(cairn_error_msg(NULL), "");
}

static void test_errno(void **state)
{
	(void)state;
	struct cairn_error err;
	char want[CAIRN_ERROR_MSG_MAX];
	cairn_error_init(&err);
	assert_int_equal(cairn_error_errno(&err, ENOENT, "cannot open '%s'", "/x"), CAIRN_EIO);
	snprintf(want, sizeof(want), "cannot open '/x': %s", strerror(ENOENT));
	assert_string_equal(err.msg, want);
	assert_int_equal(err.code, CAIRN_EIO);
	cairn_error_init(&err);
	assert_int_equal(cairn_error_errno(&err, ENOMEM, "alloc"), CAIRN_ENOMEM);
	assert_int_equal(err.code, CAIRN_ENOMEM);
	snprintf(want, sizeof(want), "alloc: %s", strerror(ENOMEM));
	assert_string_equal(err.msg, want);
}

static void test_truncation(void **state)
{
	(void)state;
	struct cairn_error err;
	char longs[1000];
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = '\0';
	cairn_error_init(&err);
	cairn_error_set(&err, CAIRN_EFORMAT, "%s", longs);
	assert_int_equal(strlen(err.msg), CAIRN_ERROR_MSG_MAX - 1);
	/* errno text after a full message is dropped, never overflows */
	cairn_error_init(&err);
	cairn_error_errno(&err, EPERM, "%s", longs);
	assert_int_equal(strlen(err.msg), CAIRN_ERROR_MSG_MAX - 1);
}

static void test_messages(void **state)
{
	(void)state;
	struct cairn_error err;
	cairn_error_init(&err);
	/* no detail: the code's description */
	err.code = CAIRN_ESIG;
	assert_string_equal(cairn_error_msg(&err), "invalid signature");
	cairn_error_set(&err, CAIRN_ESIG, "ignored, ESIG already set");
	assert_string_equal(cairn_error_msg(&err), "invalid signature");
	/* every code has its own description */
	for (int c = CAIRN_ERR_MIN_ + 1; c <= 0; c++) {
		const char *s = cairn_strerror(c);
		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
		for (int d = c + 1; d <= 0; d++)
			assert_string_not_equal(s, cairn_strerror(d));
	}
	assert_string_equal(cairn_strerror(CAIRN_ERR_MIN_), "unknown error");
	assert_string_equal(cairn_strerror(1), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_first_wins),
		cmocka_unit_test(test_null_err),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_messages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
