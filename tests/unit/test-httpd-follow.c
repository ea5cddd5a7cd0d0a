/* Following a growing file (lib/httpd-follow.c): every byte once and in
 * order while a writer thread appends, the last byte held back until the
 * writer says the file is good, ranges, failures. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn/error.h"
#include "../../lib/httpd-follow.h"

#define FILE_SIZE (3 * HTTPD_FOLLOW_CHUNK + 12345)

/* A file in memory that a writer thread appends to in small pieces. */
struct growing {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned char data[FILE_SIZE];
	uint64_t written;
	int state; /* 0 writing, 1 good, 2 failed */
	uint64_t fail_at; /* fail once this much is written (0: never) */
	/* what the reader side saw */
	unsigned char got[FILE_SIZE];
	uint64_t n_got;
	int early_end; /* the file's last byte went out before it was good */
	int drain;     /* say the file good only once the reader took all it may */
	int waits, reads;
};

static int64_t g_wait(void *ctx, uint64_t pos, uint64_t limit)
{
	struct growing *g = ctx;
	int64_t r;
	pthread_mutex_lock(&g->mu);
	g->waits++;
	for (;;) {
		uint64_t have = g->written < limit ? g->written : limit;
		if (pos < have) {
			r = (int64_t)(have - pos);
			break;
		}
		if (g->state) {
			r = g->state == 1 ? HTTPD_FOLLOW_DONE : CAIRN_EIO;
			break;
		}
		pthread_cond_wait(&g->cond, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return r;
}

static ssize_t g_read(void *ctx, uint64_t pos, void *buf, size_t len)
{
	struct growing *g = ctx;
	g->reads++;
	memcpy(buf, g->data + pos, len);
	return (ssize_t)len;
}

static int g_out(void *ctx, const void *data, size_t len)
{
	struct growing *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (g->n_got + len > FILE_SIZE) {
		pthread_mutex_unlock(&g->mu);
		return CAIRN_ELIMIT;
	}
	memcpy(g->got + g->n_got, data, len);
	g->n_got += len;
	if (g->n_got == FILE_SIZE && g->state != 1)
		g->early_end = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	return 0;
}

static void *writer(void *arg)
{
	struct growing *g = arg;
	uint64_t step = 7919; /* pieces that never line up with the chunks */
	for (uint64_t at = 0; at < FILE_SIZE; at += step) {
		pthread_mutex_lock(&g->mu);
		g->written = at + step < FILE_SIZE ? at + step : FILE_SIZE;
		if (g->fail_at && g->written >= g->fail_at)
			g->state = 2;
		pthread_cond_broadcast(&g->cond);
		pthread_mutex_unlock(&g->mu);
		if (g->state == 2)
			return NULL;
	}
	/* everything written, not yet said good: the reader must wait */
	pthread_mutex_lock(&g->mu);
	while (g->drain && g->n_got < FILE_SIZE - 1)
		pthread_cond_wait(&g->cond, &g->mu);
	g->state = 1;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

static struct growing *growing_new(uint64_t fail_at)
{
	struct growing *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	for (size_t i = 0; i < FILE_SIZE; i++)
		g->data[i] = (unsigned char)(i * 131 + (i >> 9));
	g->fail_at = fail_at;
	return g;
}

static void growing_free(struct growing *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

static void follow(struct growing *g, bool hold, uint64_t pos, uint64_t end, int want_rc,
		   uint64_t *sent)
{
	const struct httpd_follow src = {
		.wait = g_wait, .read = g_read, .ctx = g, .hold_last = hold};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer, g), 0);
	assert_int_equal(httpd_follow(&src, pos, end, g_out, g, sent), want_rc);
	pthread_join(t, NULL);
}

static void test_whole_held(void **state)
{
	(void)state;
	struct growing *g = growing_new(0);
	uint64_t sent = 0;
	g->drain = 1;
	follow(g, true, 0, UINT64_MAX, 0, &sent);
	assert_int_equal(sent, FILE_SIZE);
	assert_int_equal(g->n_got, FILE_SIZE);
	assert_memory_equal(g->got, g->data, FILE_SIZE);
	assert_int_equal(g->early_end, 0);
	growing_free(g);
}

static void test_range(void **state)
{
	(void)state;
	struct growing *g = growing_new(0);
	uint64_t lo = HTTPD_FOLLOW_CHUNK - 5, hi = 2 * HTTPD_FOLLOW_CHUNK + 77, sent = 0;
	follow(g, true, lo, hi, 0, &sent);
	assert_int_equal(sent, hi - lo);
	assert_memory_equal(g->got, g->data + lo, hi - lo);
	growing_free(g);
}

static void test_failure(void **state)
{
	(void)state;
	/* held: a failed file never gives out its last byte read */
	struct growing *g = growing_new(2 * HTTPD_FOLLOW_CHUNK);
	uint64_t sent = 0;
	follow(g, true, 0, UINT64_MAX, CAIRN_EIO, &sent);
	assert_true(sent < g->written);
	assert_int_equal(sent, g->n_got);
	assert_memory_equal(g->got, g->data, sent);
	growing_free(g);
	/* not held: everything written went out before the error */
	g = growing_new(HTTPD_FOLLOW_CHUNK);
	follow(g, false, 0, UINT64_MAX, CAIRN_EIO, &sent);
	assert_int_equal(sent, g->written);
	growing_free(g);
}

static int refuse(void *ctx, const void *data, size_t len)
{
	(void)ctx;
	(void)data;
	(void)len;
	return CAIRN_ECANCELED;
}

static void test_client_gone(void **state)
{
	(void)state;
	struct growing *g = growing_new(0);
	const struct httpd_follow src = {.wait = g_wait, .read = g_read, .ctx = g};
	pthread_t t;
	uint64_t sent = 1;
	assert_int_equal(pthread_create(&t, NULL, writer, g), 0);
	assert_int_equal(httpd_follow(&src, 0, UINT64_MAX, refuse, NULL, &sent), CAIRN_ECANCELED);
	pthread_join(t, NULL);
	assert_int_equal(sent, 0);
	/* it stopped at the first refusal: one read */
	assert_int_equal(g->reads, 1);
	growing_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_held),
		cmocka_unit_test(test_range),
		cmocka_unit_test(test_failure),
		cmocka_unit_test(test_client_gone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
