/* quote.h: untrusted strings made safe for terminals and logs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/quote.h"
#include "../../lib/quote-int.h"

static void expect(const char *in, size_t len, unsigned flags, const char *want)
{
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	assert_int_equal(cairn_quote(&b, in, len, flags), 0);
	if (strcmp(b.data ? b.data : "", want))
		fail_msg("quote(%zu bytes, %u): got '%s', want '%s'", len, flags,
			 b.data ? b.data : "", want);
	cairn_buf_release(&b);
}

#define E(s, f, w) expect(s, sizeof(s) - 1, f, w)

static void test_rules(void **state)
{
	(void)state;
	E("bin/hello", 0, "bin/hello");
	E("a b", CAIRN_QUOTE_WRAP, "a b"); /* nothing escaped: no quotes */
	E("back\\slash", 0, "back\\\\slash");
	/* a newline cannot forge a line of a report */
	E("x\n100.0% identical", 0, "x\\n100.0% identical");
	E("x\n", CAIRN_QUOTE_WRAP, "\"x\\n\"");
	E("say \"hi\"\t", CAIRN_QUOTE_WRAP, "\"say \\\"hi\\\"\\t\"");
	/* ESC, OSC window title, CR, BS, BEL, DEL */
	E("\x1b]0;pwned\x07", 0, "\\x1b]0;pwned\\a");
	E("\x1b[2J", 0, "\\x1b[2J");
	E("ok\rfake", 0, "ok\\rfake");
	E("a\bb\x7f", 0, "a\\bb\\x7f");
	/* valid UTF-8 stays; C1 controls (CSI is U+009B), bidi overrides,
	 * line separators and invalid bytes do not */
	E("caf\xc3\xa9", 0, "caf\xc3\xa9");
	E("\xc2\x9b" "2J", 0, "\\xc2\\x9b2J");
	E("a\xe2\x80\xaez", 0, "a\\xe2\\x80\\xaez");
	E("\xe2\x80\xa8", 0, "\\xe2\\x80\\xa8");
	E("\xff\xfe", 0, "\\xff\\xfe");
	E("\xc0\xaf", 0, "\\xc0\\xaf");	       /* overlong '/' */
	E("\xed\xa0\x80", 0, "\\xed\\xa0\\x80"); /* a surrogate */
	E("caf\xc3\xa9", CAIRN_QUOTE_ASCII, "caf\\xc3\\xa9");
	E("nul\0byte", 0, "nul\\x00byte");
	E("a\\x1b\x1b", CAIRN_QUOTE_KEEP_BACKSLASH, "a\\x1b\\x1b");
	assert_false(cairn_quote_needed("plain", 5, 0));
	assert_true(cairn_quote_needed("a\\b", 3, 0));
	assert_true(cairn_quote_needed("\n", 1, 0));
}

static void test_fixed(void **state)
{
	(void)state;
	char out[16];
	assert_string_equal(cairn_quote_str(out, sizeof(out), "short", 5, 0), "short");
	/* exactly fits */
	assert_string_equal(cairn_quote_str(out, sizeof(out), "123456789012345", 15, 0),
			    "123456789012345");
	/* cut, with "..." */
	assert_string_equal(cairn_quote_str(out, sizeof(out), "1234567890123456789", 19, 0),
			    "123456789012...");
	/* an escape is never cut in half */
	assert_string_equal(cairn_quote_str(out, 8, "ab\x1b\x1b\x1b", 5, 0), "ab...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_fixed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
