/* The one string-keyed map (lib/map.c): put, replace, take, growth, walks
 * that take as they go, values freed only when the map owns them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/map.h"

static int n_freed;

static void count_free(void *v)
{
	n_freed++;
	free(v);
}

static void test_hash(void **state)
{
	(void)state;
	/* FNV-1a 64 reference values */
	assert_true(map_hash("", 0) == 0xcbf29ce484222325ull);
	assert_true(map_hash("a", 1) == 0xaf63dc4c8601ec8cull);
	assert_true(map_hash("foobar", 6) == 0x85944171f73967e8ull);
}

static void test_put_get_take(void **state)
{
	(void)state;
	struct map m;
	map_init(&m, NULL);
	assert_null(map_get(&m, "x"));
	assert_null(map_take(&m, "x"));
	int a = 1, b = 2;
	void *old = &a;
	assert_int_equal(map_put(&m, "x", &a, &old), 0);
	assert_null(old);
	assert_ptr_equal(map_get(&m, "x"), &a);
	assert_int_equal(map_put(&m, "x", &b, &old), 0);
	assert_ptr_equal(old, &a);
	assert_ptr_equal(map_get(&m, "x"), &b);
	assert_int_equal(m.n, 1);
	/* keys are copied */
	char key[] = "y";
	assert_int_equal(map_put(&m, key, &a, NULL), 0);
	key[0] = 'z';
	assert_ptr_equal(map_get(&m, "y"), &a);
	assert_null(map_get(&m, "z"));
	assert_ptr_equal(map_take(&m, "x"), &b);
	assert_null(map_get(&m, "x"));
	assert_int_equal(m.n, 1);
	map_release(&m);
	assert_int_equal(m.n, 0);
	assert_null(map_get(&m, "y"));
}

static void test_grow_and_walk(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct map *m = map_new(NULL);
	assert_non_null(m);
	char k[32];
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "key-%u", (unsigned)i);
		assert_int_equal(map_put(m, k, (void *)(i + 1), NULL), 0);
	}
	assert_int_equal(m->n, N);
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "key-%u", (unsigned)i);
		assert_true((uintptr_t)map_get(m, k) == i + 1);
	}
	/* a walk sees each entry once and may take the one it is at */
	static unsigned char seen[N];
	size_t walked = 0;
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, m); e; e = map_iter_next(&it)) {
		uintptr_t v = (uintptr_t)e->val - 1;
		assert_true(v < N);
		assert_int_equal(seen[v], 0);
		seen[v] = 1;
		walked++;
		if (v % 2)
			assert_true((uintptr_t)map_take(m, e->key) == v + 1);
	}
	assert_int_equal(walked, N);
	assert_int_equal(m->n, N / 2);
	for (uintptr_t i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "key-%u", (unsigned)i);
		assert_true((uintptr_t)map_get(m, k) == (i % 2 ? 0 : i + 1));
	}
	map_free(m);
	map_free(NULL);
	/* an empty map walks nothing */
	struct map e0;
	map_init(&e0, NULL);
	assert_null(map_iter_first(&it, &e0));
}

static void test_owned_values(void **state)
{
	(void)state;
	struct map m;
	map_init(&m, count_free);
	n_freed = 0;
	char *v1 = strdup("one"), *v2 = strdup("two"), *v3 = strdup("three");
	assert_int_equal(map_put(&m, "k", v1, NULL), 0);
	/* the same value again is not freed */
	assert_int_equal(map_put(&m, "k", v1, NULL), 0);
	assert_int_equal(n_freed, 0);
	/* a replaced value is freed, unless the caller takes it */
	assert_int_equal(map_put(&m, "k", v2, NULL), 0);
	assert_int_equal(n_freed, 1);
	void *old;
	assert_int_equal(map_put(&m, "k", v3, &old), 0);
	assert_ptr_equal(old, v2);
	assert_int_equal(n_freed, 1);
	free(old);
	/* taken: the caller's */
	assert_ptr_equal(map_take(&m, "k"), v3);
	free(v3);
	assert_int_equal(map_put(&m, "a", strdup("a"), NULL), 0);
	assert_int_equal(map_put(&m, "b", strdup("b"), NULL), 0);
	map_release(&m);
	assert_int_equal(n_freed, 3);
	/* usable again after release, still owning */
	assert_int_equal(map_put(&m, "c", strdup("c"), NULL), 0);
	map_release(&m);
	assert_int_equal(n_freed, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_put_get_take),
		cmocka_unit_test(test_grow_and_walk),
		cmocka_unit_test(test_owned_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
