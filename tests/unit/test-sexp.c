/* lib/sexp.h: untrusted s-expressions into a flat, bounded tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "../../lib/sexp.h"

static int parse(const char *t, struct cairn_sexp *sx, struct cairn_error *e)
{
	cairn_error_init(e);
	return cairn_sexp_parse(t, strlen(t), 4096, CAIRN_EFORMAT, "sexp", sx, e);
}

/* Guix's key syntax: tokens, #hex#, strings; lookups see direct children. */
static void test_guix_key_shape(void **state)
{
	(void)state;
	const char *t = "(public-key \n (ecc \n  (curve Ed25519)\n  (q #01FF#)\n  (flags \"rfc6979\")))";
	struct cairn_sexp sx;
	struct cairn_error e;
	assert_int_equal(parse(t, &sx, &e), 0);
	assert_true(cairn_sexp_list_is(&sx, 0, "public-key"));
	size_t ecc = cairn_sexp_nth(&sx, 0, 1);
	assert_true(cairn_sexp_list_is(&sx, ecc, "ecc"));
	int dup = 0;
	size_t q = cairn_sexp_find(&sx, ecc, "q", &dup);
	assert_int_not_equal(q, CAIRN_SEXP_NONE);
	assert_false(dup);
	size_t qv = cairn_sexp_nth(&sx, q, 1);
	assert_int_equal(sx.nodes[qv].len, 2);
	assert_memory_equal(sx.nodes[qv].data, "\x01\xff", 2);
	size_t curve = cairn_sexp_find(&sx, ecc, "curve", &dup);
	assert_true(cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, curve, 1), "Ed25519"));
	assert_true(cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, cairn_sexp_find(&sx, ecc, "flags", &dup), 1),
					"rfc6979"));
	/* find looks at direct children only: q is not a child of the root. */
	assert_int_equal(cairn_sexp_find(&sx, 0, "q", &dup), CAIRN_SEXP_NONE);
	assert_int_equal(cairn_sexp_nth(&sx, ecc, 99), CAIRN_SEXP_NONE);
	cairn_sexp_release(&sx);
	cairn_sexp_release(&sx); /* twice is safe */
}

static void test_duplicates_flagged(void **state)
{
	(void)state;
	struct cairn_sexp sx;
	struct cairn_error e;
	assert_int_equal(parse("(a (q #01#) (q #02#))", &sx, &e), 0);
	int dup = 0;
	size_t q = cairn_sexp_find(&sx, 0, "q", &dup);
	assert_true(dup);
	assert_true(cairn_sexp_atom_is(&sx, cairn_sexp_nth(&sx, q, 1), "\x01"));
	cairn_sexp_release(&sx);
}

static void test_refused(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",			  /* nothing */
	    "(a",		  /* unbalanced */
	    "(a) (b)",		  /* two top-level lists */
	    "atom",		  /* not a list */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cairn_sexp sx;
		struct cairn_error e;
		memset(&sx, 0, sizeof(sx));
		int rc = parse(bad[i], &sx, &e);
		if (rc == 0)
			fail_msg("accepted: %s", bad[i]);
		assert_non_null(strstr(e.msg, "sexp"));
		cairn_sexp_release(&sx);
	}
	/* A display hint in canonical form: nothing Guix writes has them. */
	{
		const char canon[] = "(1:a[4:hint]1:x)";
		uint8_t *c = malloc(sizeof(canon) - 1);
		assert_non_null(c);
		memcpy(c, canon, sizeof(canon) - 1);
		struct cairn_sexp sx;
		struct cairn_error e;
		cairn_error_init(&e);
		assert_int_not_equal(
		    cairn_sexp_index(c, sizeof(canon) - 1, CAIRN_EFORMAT, "sexp", &sx, &e), 0);
	}
	/* Nesting past CAIRN_SEXP_MAX_DEPTH. */
	char deep[2 * (CAIRN_SEXP_MAX_DEPTH + 2) + 2];
	size_t n = 0;
	for (int i = 0; i < CAIRN_SEXP_MAX_DEPTH + 2; i++)
		deep[n++] = '(';
	deep[n++] = 'a';
	for (int i = 0; i < CAIRN_SEXP_MAX_DEPTH + 2; i++)
		deep[n++] = ')';
	deep[n] = '\0';
	struct cairn_sexp sx;
	struct cairn_error e;
	assert_int_not_equal(parse(deep, &sx, &e), 0);
	/* Longer than the caller's maximum, before libgcrypt sees it. */
	cairn_error_init(&e);
	assert_int_equal(cairn_sexp_parse("(a b)", 5, 4, CAIRN_EFORMAT, "sexp", &sx, &e),
			 CAIRN_ELIMIT);
}

int main(void)
{
	if (cairn_init())
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_guix_key_shape),
	    cmocka_unit_test(test_duplicates_flagged),
	    cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
