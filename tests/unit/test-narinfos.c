/* The batch narinfo format (narinfos.h): round trip, and every framing
 * fault refused with its code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/error.h"
#include "cairn/narinfos.h"

#define H1 "7lwnrnjwdjhcz2xnjdpk0d8d8n2c61xg"
#define H2 "00000000000000000000000000000000"
#define NI "StorePath: /nix/store/" H1 "-x\nNarSize: 1\n"

static int parse(const char *body, size_t len, struct cairn_narinfos_entry **e, size_t *n)
{
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = cairn_narinfos_parse(body, len, e, n, &err);
	if (rc)
		assert_true(strlen(cairn_error_msg(&err)) > 10); /* says why */
	return rc;
}

static void test_round_trip(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	assert_int_equal(cairn_narinfos_begin(&b), 0);
	assert_int_equal(cairn_narinfos_add(&b, H1, NI, strlen(NI)), 0);
	assert_int_equal(cairn_narinfos_add_absent(&b, H2), 0);
	assert_int_equal(cairn_narinfos_end(&b, 2), 0);
	struct cairn_narinfos_entry *e = NULL;
	size_t n = 0;
	assert_int_equal(parse(b.data, b.len, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].hash, H1);
	assert_true(e[0].present);
	assert_int_equal(e[0].len, strlen(NI));
	assert_memory_equal(e[0].text, NI, strlen(NI));
	assert_string_equal(e[1].hash, H2);
	assert_false(e[1].present);
	free(e);
	cairn_buf_release(&b);
}

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *body;
		int code;
	} bad[] = {
		{"", CAIRN_EFORMAT},
		{"CairnNarinfos: 2\nEnd: 0\n", CAIRN_EFORMAT},
		{"CairnNarinfos: 1\n", CAIRN_EFORMAT},			       /* no End */
		{"CairnNarinfos: 1\nEnd: 1\n", CAIRN_EFORMAT},		       /* miscount */
		{"CairnNarinfos: 1\nEnd: 0\nx", CAIRN_EFORMAT},	       /* trailing */
		{"CairnNarinfos: 1\nAbsent: " H1 "\nAbsent: " H1 "\nEnd: 2\n", CAIRN_EFORMAT},
		{"CairnNarinfos: 1\nAbsent: " H1 "x\nEnd: 1\n", CAIRN_EFORMAT},
		{"CairnNarinfos: 1\nAbsent: eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\nEnd: 1\n", CAIRN_EFORMAT},
		{"CairnNarinfos: 1\nNarinfo: " H1 " 100\nabc\nEnd: 1\n", CAIRN_EFORMAT},
		{"CairnNarinfos: 1\nNarinfo: " H1 " 2000000\nEnd: 1\n", CAIRN_ELIMIT},
		{"CairnNarinfos: 1\nNarinfo: " H1 " 04\nabc\nEnd: 1\n", CAIRN_ELIMIT},
		{"CairnNarinfos: 1\nNarinfo: " H1 " -1\nEnd: 1\n", CAIRN_ELIMIT},
		{"CairnNarinfos: 1\nStorePath: x\nEnd: 0\n", CAIRN_EFORMAT},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cairn_narinfos_entry *e = NULL;
		size_t n = 7;
		int rc = parse(bad[i].body, strlen(bad[i].body), &e, &n);
		if (rc != bad[i].code)
			fail_msg("case %zu: got %d", i, rc);
		assert_null(e);
		assert_int_equal(n, 0);
	}
}

static void test_query(void **state)
{
	(void)state;
	char h[CAIRN_NARINFOS_HASHES_MAX][CAIRN_STORE_HASH_LEN + 1];
	size_t n;
	bool closure;
	const char *q = "hashes=" H1 "," H2 "&closure=1";
	assert_int_equal(cairn_narinfos_parse_query(q, strlen(q), h, &n, &closure, NULL), 0);
	assert_int_equal(n, 2);
	assert_true(closure);
	assert_string_equal(h[1], H2);
	q = "hashes=";
	assert_int_equal(cairn_narinfos_parse_query(q, strlen(q), h, &n, &closure, NULL),
			 CAIRN_EFORMAT);
	q = "hashes=" H1 "&other=1";
	assert_int_equal(cairn_narinfos_parse_query(q, strlen(q), h, &n, &closure, NULL),
			 CAIRN_EFORMAT);
	char many[CAIRN_NARINFOS_HASHES_MAX * 33 + 64] = "hashes=";
	for (int i = 0; i <= CAIRN_NARINFOS_HASHES_MAX; i++) {
		if (i)
			strcat(many, ",");
		strcat(many, H2);
	}
	assert_int_equal(cairn_narinfos_parse_query(many, strlen(many), h, &n, &closure, NULL),
			 CAIRN_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
