/* The warm edge's pure parts (lib/edge-follow-int.h): its pace (items and
 * bytes per second, the budget) and the only-if-cached directive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/edge-follow-int.h"

static void test_unbounded(void **state)
{
	(void)state;
	struct follow_pace p;
	follow_pace_init(&p, 0, 0, 0, 1000);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(follow_pace_wait(&p, 1000), 0);
		follow_pace_start(&p, 1000);
		follow_pace_took(&p, 1000, UINT64_C(1) << 40);
		assert_true(follow_budget_fits(&p, UINT64_C(1) << 50));
	}
}

static void test_items_per_second(void **state)
{
	(void)state;
	struct follow_pace p;
	int64_t t = 5000;
	follow_pace_init(&p, 4, 0, 0, t);
	/* one second's worth goes at once, then one every 250 ms */
	int started = 0;
	while (follow_pace_wait(&p, t) == 0) {
		follow_pace_start(&p, t);
		started++;
	}
	assert_int_equal(started, 4);
	assert_int_equal(follow_pace_wait(&p, t), 250);
	assert_int_equal(follow_pace_wait(&p, t + 100), 150);
	t += 250;
	assert_int_equal(follow_pace_wait(&p, t), 0);
	follow_pace_start(&p, t);
	assert_int_equal(follow_pace_wait(&p, t), 250);
	/* idle for a minute: no burst beyond one second's worth */
	t += 60000;
	started = 0;
	while (follow_pace_wait(&p, t) == 0) {
		follow_pace_start(&p, t);
		started++;
	}
	assert_int_equal(started, 4);
}

static void test_slow_rate(void **state)
{
	(void)state;
	struct follow_pace p;
	int64_t t = 0;
	/* half an item a second: the first at once, the next 2 s later */
	follow_pace_init(&p, 0.5, 0, 0, t);
	assert_int_equal(follow_pace_wait(&p, t), 0);
	follow_pace_start(&p, t);
	assert_int_equal(follow_pace_wait(&p, t), 2000);
	/* a millisecond before: not yet (rounded up, never to 0) */
	assert_in_range(follow_pace_wait(&p, t + 1999), 1, 2);
	assert_int_equal(follow_pace_wait(&p, t + 2000), 0);
}

static void test_bytes_per_second(void **state)
{
	(void)state;
	struct follow_pace p;
	int64_t t = 0;
	follow_pace_init(&p, 0, 1000, 0, t);
	assert_int_equal(follow_pace_wait(&p, t), 0);
	follow_pace_start(&p, t);
	/* 3000 bytes against a bucket of 1000: 2 s of debt */
	follow_pace_took(&p, t, 3000);
	assert_int_equal(follow_pace_wait(&p, t), 2000);
	assert_int_equal(follow_pace_wait(&p, t + 1500), 500);
	assert_int_equal(follow_pace_wait(&p, t + 2000), 0);
	/* both rates: the longer wait wins */
	follow_pace_init(&p, 1, 1000, 0, t);
	follow_pace_start(&p, t);
	follow_pace_took(&p, t, 500);
	assert_int_equal(follow_pace_wait(&p, t), 1000);
	follow_pace_took(&p, t, 4500);
	assert_int_equal(follow_pace_wait(&p, t), 4000);
}

static void test_budget(void **state)
{
	(void)state;
	struct follow_pace p;
	follow_pace_init(&p, 0, 0, 1000, 0);
	assert_true(follow_budget_fits(&p, 0));
	assert_true(follow_budget_fits(&p, 1000));
	assert_false(follow_budget_fits(&p, 1001));
	follow_pace_took(&p, 0, 600);
	assert_true(follow_budget_fits(&p, 400));
	assert_false(follow_budget_fits(&p, 401));
	/* an item larger than its estimate overdraws: nothing fits after */
	follow_pace_took(&p, 0, 900);
	assert_int_equal(p.spent, 1500);
	assert_false(follow_budget_fits(&p, 0));
	assert_false(follow_budget_fits(&p, 1));
	/* the sum saturates */
	follow_pace_took(&p, 0, UINT64_MAX);
	assert_true(p.spent == UINT64_MAX);
}

static bool oic(const char *s)
{
	return edge_cc_only_if_cached(s, strlen(s));
}

static void test_only_if_cached(void **state)
{
	(void)state;
	assert_true(oic("only-if-cached"));
	assert_true(oic("Only-If-Cached"));
	assert_true(oic("max-age=0, only-if-cached"));
	assert_true(oic("only-if-cached ,no-transform"));
	assert_true(oic("\tonly-if-cached\t"));
	assert_false(oic(""));
	assert_false(oic("no-cache"));
	assert_false(oic("only-if-cachedx"));
	assert_false(oic("xonly-if-cached"));
	assert_false(oic("only-if-cache"));
	assert_false(oic("only if cached"));
	/* the length given is what counts, not a NUL */
	assert_false(edge_cc_only_if_cached("only-if-cached", 13));
	assert_true(edge_cc_only_if_cached("only-if-cached, x", 14));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unbounded),	     cmocka_unit_test(test_items_per_second),
	    cmocka_unit_test(test_slow_rate),	     cmocka_unit_test(test_bytes_per_second),
	    cmocka_unit_test(test_budget),	     cmocka_unit_test(test_only_if_cached),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
