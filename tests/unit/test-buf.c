#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/buf.h"

static void test_append_and_nul(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(1024);
	assert_null(b.data);
	assert_int_equal(cairn_buf_append(&b, "abc", 3), 0);
	assert_int_equal(cairn_buf_putc(&b, 'd'), 0);
	assert_int_equal(cairn_buf_puts(&b, "ef"), 0);
	assert_int_equal(b.len, 6);
	assert_string_equal(b.data, "abcdef");
	/* binary data, NUL included, is kept and still terminated */
	assert_int_equal(cairn_buf_append(&b, "\0z", 2), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "abcdef\0z", 8);
	assert_int_equal(b.data[8], '\0');
	/* a zero-length append is allowed and changes nothing */
	assert_int_equal(cairn_buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 8);
	cairn_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	cairn_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.max, 1024); /* still usable with the same bound */
	assert_int_equal(cairn_buf_puts(&b, "again"), 0);
	assert_string_equal(b.data, "again");
	cairn_buf_release(&b);
}

static void test_max_size(void **state)
{
	(void)state;
	struct cairn_buf b;
	cairn_buf_init(&b, 10);
	assert_int_equal(cairn_buf_append(&b, "0123456789", 10), 0); /* exactly max */
	assert_int_equal(cairn_buf_putc(&b, 'x'), CAIRN_ELIMIT);
	assert_int_equal(b.len, 10); /* a failed append leaves the contents */
	assert_string_equal(b.data, "0123456789");
	cairn_buf_reset(&b);
	assert_int_equal(cairn_buf_append(&b, "01234567890", 11), CAIRN_ELIMIT);
	assert_int_equal(b.len, 0);
	/* lengths that would overflow len + extra are refused, not wrapped */
	assert_int_equal(cairn_buf_append(&b, "a", 1), 0);
	assert_int_equal(cairn_buf_append(&b, "a", SIZE_MAX), CAIRN_ELIMIT);
	assert_int_equal(b.len, 1);
	cairn_buf_release(&b);

	/* max 0: nothing fits, but an empty append does */
	cairn_buf_init(&b, 0);
	assert_int_equal(cairn_buf_putc(&b, 'x'), CAIRN_ELIMIT);
	assert_int_equal(cairn_buf_append(&b, "", 0), 0);
	assert_string_equal(b.data, "");
	cairn_buf_release(&b);

	/* growth past the first allocation, up to a large bound */
	cairn_buf_init(&b, 1 << 20);
	char chunk[1000];
	memset(chunk, 'q', sizeof(chunk));
	for (int i = 0; i < 1048; i++)
		assert_int_equal(cairn_buf_append(&b, chunk, sizeof(chunk)), 0);
	assert_int_equal(b.len, 1048000);
	assert_int_equal(cairn_buf_append(&b, chunk, 576), 0); /* 1048576 = max */
	assert_int_equal(cairn_buf_putc(&b, 'q'), CAIRN_ELIMIT);
	assert_int_equal(b.data[b.len], '\0');
	cairn_buf_release(&b);
}

static void test_printf(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(64);
	assert_int_equal(cairn_buf_printf(&b, "%s=%d", "n", 42), 0);
	assert_int_equal(cairn_buf_printf(&b, ";%05.1f", 3.14159), 0);
	assert_string_equal(b.data, "n=42;003.1");
	assert_int_equal(b.len, 10);
	/* output that would pass max fails whole, leaving what was there */
	assert_int_equal(cairn_buf_printf(&b, "%60s", "x"), CAIRN_ELIMIT);
	assert_string_equal(b.data, "n=42;003.1");
	/* exactly up to max fits */
	assert_int_equal(cairn_buf_printf(&b, "%54s", "y"), 0);
	assert_int_equal(b.len, 64);
	assert_int_equal(b.data[63], 'y');
	assert_int_equal(b.data[64], '\0');
	cairn_buf_release(&b);

	/* long output that needs the buffer to grow mid-printf */
	struct cairn_buf big = CAIRN_BUF_INIT(100000);
	assert_int_equal(cairn_buf_puts(&big, "head:"), 0);
	assert_int_equal(cairn_buf_printf(&big, "%5000d|", 7), 0);
	assert_int_equal(big.len, 5 + 5000 + 1);
	assert_memory_equal(big.data, "head:    ", 9);
	assert_memory_equal(big.data + big.len - 2, "7|", 2);
	cairn_buf_release(&big);
}

static void test_steal(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(100);
	assert_int_equal(cairn_buf_puts(&b, "hello"), 0);
	size_t len = 0;
	char *s = cairn_buf_steal(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "hello");
	assert_int_equal(len, 5);
	/* the buffer is empty and independent of the stolen string */
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(cairn_buf_puts(&b, "world"), 0);
	assert_string_equal(s, "hello");
	free(s);
	cairn_buf_release(&b);

	/* an empty buffer gives an empty allocated string */
	struct cairn_buf e = CAIRN_BUF_INIT(10);
	len = 99;
	s = cairn_buf_steal(&e, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	/* len may be NULL */
	assert_int_equal(cairn_buf_puts(&e, "abc"), 0);
	s = cairn_buf_steal(&e, NULL);
	assert_string_equal(s, "abc");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_append_and_nul),
		cmocka_unit_test(test_max_size),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_steal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
