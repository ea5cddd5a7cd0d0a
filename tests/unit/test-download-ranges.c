/* The range scheduler of multi-source downloads (lib/download-ranges.c):
 * split, steal, reassign on failure; the pieces always cover the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../lib/download-ranges.h"

/* The pieces cover [0, size) exactly once. */
static void assert_cover(const struct cairn_rs *rs)
{
	uint64_t total = 0;
	for (size_t i = 0; i < rs->n; i++) {
		const struct cairn_rs_piece *a = &rs->p[i];
		assert_true(a->start <= a->end);
		assert_true(a->done <= a->end - a->start);
		total += a->end - a->start;
		for (size_t j = i + 1; j < rs->n; j++) {
			const struct cairn_rs_piece *b = &rs->p[j];
			if (a->end > a->start && b->end > b->start)
				assert_true(a->end <= b->start || b->end <= a->start);
		}
	}
	assert_int_equal(total, rs->size);
}

static void test_split(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	cairn_rs_init(&rs, 1000, 4, 10);
	assert_int_equal(rs.n, 4);
	assert_int_equal(rs.p[0].end, 250);
	assert_int_equal(rs.p[3].end, 1000);
	assert_cover(&rs);
	/* pieces are never made smaller than min_piece */
	cairn_rs_init(&rs, 1000, 8, 400);
	assert_int_equal(rs.n, 2);
	assert_cover(&rs);
	cairn_rs_init(&rs, 5, 4, 100);
	assert_int_equal(rs.n, 1);
	assert_int_equal(rs.p[0].end, 5);
}

static void test_take_in_order_and_contig(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	uint64_t rates[2] = {0, 0};
	cairn_rs_init(&rs, 1000, 4, 10);
	assert_int_equal(cairn_rs_take(&rs, 0, rates, 2), 0);
	assert_int_equal(cairn_rs_take(&rs, 1, rates, 2), 1);
	/* bytes of piece 1 first: nothing is contiguous from byte 0 yet */
	assert_int_equal(cairn_rs_progress(&rs, 1, 250), 250);
	assert_int_equal(cairn_rs_contig(&rs), 0);
	assert_int_equal(cairn_rs_progress(&rs, 0, 100), 100);
	assert_int_equal(cairn_rs_contig(&rs), 100);
	assert_int_equal(cairn_rs_progress(&rs, 0, 150), 150);
	assert_true(cairn_rs_piece_full(&rs, 0));
	assert_int_equal(cairn_rs_contig(&rs), 500);
	/* more than a piece holds is cut at its end */
	assert_int_equal(cairn_rs_progress(&rs, 0, 7), 0);
}

static void test_steal_proportional(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	/* source 1 runs 9 times as fast as source 0 */
	uint64_t rates[2] = {100, 900};
	cairn_rs_init(&rs, 10000, 2, 10);
	size_t a = cairn_rs_take(&rs, 0, rates, 2), b = cairn_rs_take(&rs, 1, rates, 2);
	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	cairn_rs_progress(&rs, 1, 5000);
	cairn_rs_release(&rs, 1); /* done */
	cairn_rs_progress(&rs, 0, 1000);
	/* the fast one steals 9/10 of the slow one's 4000 left */
	size_t c = cairn_rs_take(&rs, 1, rates, 2);
	assert_int_equal(c, 2);
	assert_int_equal(rs.p[2].start, 1400);
	assert_int_equal(rs.p[2].end, 5000);
	assert_int_equal(rs.p[0].end, 1400);
	assert_cover(&rs);
	/* the slow owner's bytes past its new end are dropped */
	assert_int_equal(cairn_rs_progress(&rs, 0, 1000), 400);
	assert_true(cairn_rs_piece_full(&rs, 0));
	assert_int_equal(cairn_rs_contig(&rs), 1400);
}

static void test_steal_small_tail_only_from_slow(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	uint64_t even[2] = {500, 500}, slow[2] = {10, 500};
	cairn_rs_init(&rs, 1000, 2, 400);
	cairn_rs_take(&rs, 0, even, 2);
	cairn_rs_take(&rs, 1, even, 2);
	cairn_rs_progress(&rs, 1, 500);
	cairn_rs_release(&rs, 1);
	cairn_rs_progress(&rs, 0, 300);
	/* 200 left: too small to split, and its owner is as fast */
	assert_int_equal(cairn_rs_take(&rs, 1, even, 2), CAIRN_RS_NONE);
	/* a slow owner loses the whole tail */
	size_t c = cairn_rs_take(&rs, 1, slow, 2);
	assert_int_equal(c, 2);
	assert_int_equal(rs.p[2].start, 300);
	assert_int_equal(rs.p[2].end, 500);
	assert_true(cairn_rs_piece_full(&rs, 0));
	assert_int_equal(cairn_rs_progress(&rs, 0, 50), 0);
	assert_cover(&rs);
}

static void test_reassign_on_failure(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	uint64_t rates[3] = {0, 0, 0};
	cairn_rs_init(&rs, 3000, 3, 10);
	for (int s = 0; s < 3; s++)
		assert_int_equal(cairn_rs_take(&rs, s, rates, 3), (size_t)s);
	cairn_rs_progress(&rs, 1, 400);
	cairn_rs_release(&rs, 1); /* source 1 died after 400 bytes */
	cairn_rs_progress(&rs, 0, 1000);
	cairn_rs_release(&rs, 0);
	/* source 0 takes over where source 1 stopped: nothing asked twice */
	size_t i = cairn_rs_take(&rs, 0, rates, 3);
	assert_int_equal(i, 1);
	assert_int_equal(rs.p[1].start + rs.p[1].done, 1400);
	assert_int_equal(cairn_rs_contig(&rs), 1400);
	cairn_rs_progress(&rs, 1, 600);
	cairn_rs_progress(&rs, 2, 1000);
	assert_int_equal(cairn_rs_contig(&rs), 3000);
	/* all in: nothing to take or steal */
	cairn_rs_release(&rs, 1);
	cairn_rs_release(&rs, 2);
	assert_int_equal(cairn_rs_take(&rs, 0, rates, 3), CAIRN_RS_NONE);
}

/* Random runs: whatever the order of events, the file is covered once and
 * ends complete. */
static void test_random_runs(void **state)
{
	(void)state;
	static struct cairn_rs rs;
	srand(17);
	for (int run = 0; run < 200; run++) {
		uint64_t rates[4];
		size_t cur[4];
		for (int s = 0; s < 4; s++) {
			rates[s] = 1 + (uint64_t)(rand() % 1000);
			cur[s] = CAIRN_RS_NONE;
		}
		cairn_rs_init(&rs, 1 + (uint64_t)(rand() % 100000), 1 + (unsigned)(rand() % 6), 64);
		for (int step = 0; step < 100000 && cairn_rs_contig(&rs) < rs.size; step++) {
			int s = rand() % 4;
			if (cur[s] == CAIRN_RS_NONE) {
				cur[s] = cairn_rs_take(&rs, s, rates, 4);
				continue;
			}
			if (rand() % 50 == 0) {
				cairn_rs_release(&rs, cur[s]); /* failed */
				cur[s] = CAIRN_RS_NONE;
				continue;
			}
			cairn_rs_progress(&rs, cur[s], rates[s]);
			if (cairn_rs_piece_full(&rs, cur[s])) {
				cairn_rs_release(&rs, cur[s]);
				cur[s] = CAIRN_RS_NONE;
			}
		}
		assert_int_equal(cairn_rs_contig(&rs), rs.size);
		assert_cover(&rs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split),
	    cmocka_unit_test(test_take_in_order_and_contig),
	    cmocka_unit_test(test_steal_proportional),
	    cmocka_unit_test(test_steal_small_tail_only_from_slow),
	    cmocka_unit_test(test_reassign_on_failure),
	    cmocka_unit_test(test_random_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
