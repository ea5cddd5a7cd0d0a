/* The metrics registry (lib/metrics.c): the exposition text, the types,
 * the name rules that keep every server's /metrics alike. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/buf.h"
#include "../../lib/metrics.h"

static char *render(struct metrics *r, struct cairn_buf *b)
{
	cairn_buf_reset(b);
	assert_int_equal(metrics_render(r, b), 0);
	assert_int_equal(cairn_buf_putc(b, '\0'), 0);
	return b->data;
}

static int collect_labelled(void *ctx, struct metrics_out *o)
{
	(void)ctx;
	const struct metric_label a[] = {{"route", "x"}, {"status", "200"}};
	const struct metric_label b[] = {{"route", "q\"\\\n"}, {"status", "other"}};
	int rc = metrics_emit(o, a, 2, 3);
	return rc ? rc : metrics_emit(o, b, 2, 18446744073709551615ull);
}

static int collect_seconds(void *ctx, struct metrics_out *o)
{
	(void)ctx;
	const struct metric_label l[] = {{"method", "zstd"}};
	int rc = metrics_emit_ns(o, l, 1, 1500000000ull);
	return rc ? rc : metrics_emit_ns(o, NULL, 0, 7);
}

static void test_render(void **state)
{
	(void)state;
	struct metrics *r = metrics_new();
	assert_non_null(r);
	struct metric *c, *g;
	atomic_uint_fast64_t outside = 41;
	assert_int_equal(metrics_counter(r, "cairn_test_hits_total", "Hits.", &c, NULL), 0);
	assert_int_equal(metrics_gauge(r, "cairn_test_up", "Up now,\nescaped \\.", &g, NULL), 0);
	assert_int_equal(metrics_counter_at(r, "cairn_test_outside_total", "Outside.", &outside,
					    NULL),
			 0);
	assert_int_equal(metrics_collector(r, "cairn_test_requests_total", METRIC_COUNTER,
					   "By route.", collect_labelled, NULL, NULL),
			 0);
	assert_int_equal(metrics_collector(r, "cairn_test_cpu_seconds_total", METRIC_COUNTER,
					   "CPU.", collect_seconds, NULL, NULL),
			 0);
	metric_add(c, 2);
	metric_add(c, 3);
	metric_add(g, 1);
	metric_sub(g, 3);
	atomic_fetch_add(&outside, 1);
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 16);
	assert_string_equal(render(r, &b),
			    "# HELP cairn_test_hits_total Hits.\n"
			    "# TYPE cairn_test_hits_total counter\n"
			    "cairn_test_hits_total 5\n"
			    "# HELP cairn_test_up Up now,\\nescaped \\\\.\n"
			    "# TYPE cairn_test_up gauge\n"
			    "cairn_test_up -2\n"
			    "# HELP cairn_test_outside_total Outside.\n"
			    "# TYPE cairn_test_outside_total counter\n"
			    "cairn_test_outside_total 42\n"
			    "# HELP cairn_test_requests_total By route.\n"
			    "# TYPE cairn_test_requests_total counter\n"
			    "cairn_test_requests_total{route=\"x\",status=\"200\"} 3\n"
			    "cairn_test_requests_total{route=\"q\\\"\\\\\\n\",status=\"other\"} "
			    "18446744073709551615\n"
			    "# HELP cairn_test_cpu_seconds_total CPU.\n"
			    "# TYPE cairn_test_cpu_seconds_total counter\n"
			    "cairn_test_cpu_seconds_total{method=\"zstd\"} 1.500000000\n"
			    "cairn_test_cpu_seconds_total 0.000000007\n");
	metric_set(g, 1);
	assert_int_equal(metric_value(g), 1);
	assert_int_equal(metric_value(c), 5);
	assert_non_null(strstr(render(r, &b), "\ncairn_test_up 1\n"));
	/* a full buffer is an error, not a cut page */
	struct cairn_buf small = CAIRN_BUF_INIT(64);
	assert_int_equal(metrics_render(r, &small), CAIRN_ELIMIT);
	cairn_buf_release(&small);
	cairn_buf_release(&b);
	metrics_free(r);
}

static void test_names(void **state)
{
	(void)state;
	struct metrics *r = metrics_new();
	assert_non_null(r);
	struct metric *m;
	struct cairn_error err;
	static const char *const good_counters[] = {
		"cairn_mirror_nar_hits_total", "cairn_http_response_bytes_total",
		"cairn_publish_compress_seconds_total", "cairn_x_bytesize_total", "a:b_total"};
	for (size_t i = 0; i < sizeof(good_counters) / sizeof(good_counters[0]); i++)
		assert_int_equal(metrics_counter(r, good_counters[i], "h", &m, NULL), 0);
	static const char *const good_gauges[] = {"cairn_publish_cache_bytes", "cairn_up",
						  "cairn_x_seconds"};
	for (size_t i = 0; i < sizeof(good_gauges) / sizeof(good_gauges[0]); i++)
		assert_int_equal(metrics_gauge(r, good_gauges[i], "h", &m, NULL), 0);
	/* counters end in _total; gauges do not; the unit is the last word */
	static const char *const bad_counters[] = {
		"cairn_mirror_hits",			 /* no _total */
		"cairn_mirror_bytes_from_cache_total", /* unit not last */
		"cairn_x_seconds_spent_total",	 "", "9lives_total", "a-b_total", "a b_total",
		"cairn_mirror_nar_hits_total", /* twice */
	};
	for (size_t i = 0; i < sizeof(bad_counters) / sizeof(bad_counters[0]); i++) {
		cairn_error_init(&err);
		assert_int_equal(metrics_counter(r, bad_counters[i], "h", &m, &err), CAIRN_EINVAL);
		assert_true(strlen(cairn_error_msg(&err)) > 0);
	}
	static const char *const bad_gauges[] = {"cairn_up_total", "cairn_bytes_free",
						 "cairn_mirror_nar_hits_total"};
	for (size_t i = 0; i < sizeof(bad_gauges) / sizeof(bad_gauges[0]); i++)
		assert_int_equal(metrics_gauge(r, bad_gauges[i], "h", &m, NULL), CAIRN_EINVAL);
	assert_int_equal(metrics_collector(r, "cairn_c", METRIC_COUNTER, "h", collect_seconds,
					   NULL, NULL),
			 CAIRN_EINVAL);
	metrics_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
