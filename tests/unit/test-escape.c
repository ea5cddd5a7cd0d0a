/* The one JSON string writer and the one HTML escaper (lib/escape.c): nlohmann's escaping, and bytes
 * that are not UTF-8 replaced so that whatever a server sent, what cairn
 * prints parses.  `cairn fetch --json` had its own writer that copied such
 * bytes through: a hostile server's reason text made the output invalid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/escape.h"

static void expect(const char *in, size_t len, const char *want)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1024);
	assert_int_equal(cairn_json_str(&b, in, len), 0);
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	cairn_buf_release(&b);
}

static void test_escapes(void **state)
{
	(void)state;
	expect("", 0, "\"\"");
	expect("plain /nix/store", 16, "\"plain /nix/store\"");
	expect("q\"b\\", 4, "\"q\\\"b\\\\\"");
	expect("\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\"");
	expect("\x01\x1f", 2, "\"\\u0001\\u001f\"");
	expect("a\0b", 3, "\"a\\u0000b\"");
	expect("\x7f", 1, "\"\x7f\"");
}

static void test_utf8(void **state)
{
	(void)state;
	expect("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");
	expect("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
	/* invalid: a lone continuation, a truncated sequence, an overlong
	 * form, a surrogate: one U+FFFD per maximal invalid subpart */
	expect("x\x80y", 3, "\"x\xef\xbf\xbdy\"");
	expect("\xe2\x82", 2, "\"\xef\xbf\xbd\"");
	expect("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	expect("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
}

static void test_cstr_and_limit(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(4);
	assert_int_equal(cairn_json_cstr(&b, NULL), 0);
	assert_memory_equal(b.data, "\"\"", 2);
	assert_int_equal(cairn_json_cstr(&b, "toolong"), CAIRN_ELIMIT);
	cairn_buf_release(&b);
}

static void test_html(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(1024);
	assert_int_equal(cairn_html_cstr(&b, "<script>alert('x')</script> & \"caf\xc3\xa9\"\xff"), 0);
	const char *want = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;caf\xc3\xa9&quot;&#xfffd;";
	assert_int_equal(b.len, strlen(want));
	assert_memory_equal(b.data, want, b.len);
	cairn_buf_reset(&b);
	/* JSON for a page: < > & never appear raw */
	assert_int_equal(cairn_json_str_html_safe(&b, "</script>&", 10), 0);
	assert_memory_equal(b.data, "\"\\u003c/script\\u003e\\u0026\"", b.len);
	cairn_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_cstr_and_limit),
	    cmocka_unit_test(test_html),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
