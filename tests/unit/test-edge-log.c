/* What the mirror tells its operator (lib/edge-log.c): network text made
 * safe for a log line, sizes, the rate limit of refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/edge-int.h"

static void test_safe(void **state)
{
	(void)state;
	char out[64];
	assert_string_equal(edge_safe(out, sizeof(out), "plain text: ok", 14), "plain text: ok");
	/* newlines, escapes, DEL, C1 (raw and UTF-8), the backslash itself */
	static const char in[] = "a\nb\033[2Jc\x7f\xc2\x9b\x9b\\d";
	assert_string_equal(edge_safe(out, sizeof(out), in, sizeof(in) - 1),
			    "a\\nb\\x1b[2Jc\\x7f\\xc2\\x9b\\x9b\\\\d");
	/* a NUL does not end it early */
	assert_string_equal(edge_safe(out, sizeof(out), "x\0y", 3), "x\\x00y");
	/* exactly full: whole; one more: cut, with "..." */
	assert_string_equal(edge_safe(out, 6, "abcde", 5), "abcde");
	assert_string_equal(edge_safe(out, 6, "abcdef", 6), "ab...");
	/* an escape is never cut in half */
	assert_string_equal(edge_safe(out, 8, "ab\n\n\n", 5), "ab\\n...");
	assert_string_equal(edge_safe(out, 8, "abc\ndef", 7), "abc...");
	assert_string_equal(edge_safe(out, 3, "abcdef", 6), "ab");
	assert_string_equal(edge_safe(out, 1, "abcdef", 6), "");
	assert_string_equal(edge_safe(out, sizeof(out), "", 0), "");
}

static void test_redact(void **state)
{
	(void)state;
	char s[] = "GET https://u:p@cache.example/x: refused; http://h/a@b, "
		   "file:///d, http://x@y";
	edge_redact_userinfo(s);
	assert_string_equal(s, "GET https://cache.example/x: refused; http://h/a@b, "
			       "file:///d, http://y");
}

static void test_size(void **state)
{
	(void)state;
	char out[32];
	edge_fmt_size(out, sizeof(out), 0);
	assert_string_equal(out, "0 B");
	edge_fmt_size(out, sizeof(out), 1023);
	assert_string_equal(out, "1023 B");
	edge_fmt_size(out, sizeof(out), 1536);
	assert_string_equal(out, "1.5 KiB");
	edge_fmt_size(out, sizeof(out), UINT64_C(50) << 30);
	assert_string_equal(out, "50.0 GiB");
	edge_fmt_size(out, sizeof(out), UINT64_MAX);
	assert_string_equal(out, "16.0 EiB");
}

static void test_ratelimit(void **state)
{
	(void)state;
	struct edge_ratelimit r;
	uint64_t n = 99;
	memset(&r, 0, sizeof(r));
	/* the first is told at once */
	assert_int_equal(edge_ratelimit_event(&r, 1000, 500, "one", &n), 1);
	assert_int_equal(n, 0);
	/* the next ones within the interval are counted, the last kept */
	assert_int_equal(edge_ratelimit_event(&r, 1100, 500, "two", &n), 0);
	assert_int_equal(edge_ratelimit_event(&r, 1200, 500, "three", &n), 0);
	assert_string_equal(r.last, "three");
	assert_int_equal(edge_ratelimit_due(&r, 1499, 500, &n), 0);
	/* told in one line once the interval is over, which starts another */
	assert_int_equal(edge_ratelimit_due(&r, 1500, 500, &n), 1);
	assert_int_equal(n, 2);
	assert_int_equal(edge_ratelimit_due(&r, 1600, 500, &n), 0);
	assert_int_equal(edge_ratelimit_event(&r, 1700, 500, "four", &n), 0);
	/* an event after the interval is told, with the count before it when
	 * no summary went out meanwhile */
	assert_int_equal(edge_ratelimit_event(&r, 2000, 500, "five", &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(edge_ratelimit_due(&r, 9000, 500, &n), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_safe),
		cmocka_unit_test(test_redact),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_ratelimit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
