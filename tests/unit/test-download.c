/* test-download.c - the download engine's choices that the mirror relies
 * on: several acceptable expectations, unchecked pass-through, fail-over
 * on bad bytes, an answer turned down at its headers (file:// sources). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/nar.h"
#include "../../lib/download.h"

static char tmpdir[64];
static const char good_url[] = "good.nar", bad_url[] = "bad.nar";
static struct cairn_http_server *srv;
static struct cairn_hash nar_hash, body_hash;
static uint64_t nar_size;

static int write_file(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)err;
	return fwrite(data, 1, len, ctx) == len ? 0 : CAIRN_EIO;
}

static int setup(void **state)
{
	(void)state;
	char path[512], nar[128];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-dl-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	snprintf(path, sizeof(path), "%s/item", tmpdir);
	FILE *f = fopen(path, "w");
	if (!f)
		return 1;
	for (int i = 0; i < 5000; i++)
		fprintf(f, "line %d of the item\n", i);
	fclose(f);
	snprintf(nar, sizeof(nar), "%s/good.nar", tmpdir);
	if (!(f = fopen(nar, "w")) || cairn_nar_dump_path(path, write_file, f, NULL) != 0)
		return 1;
	fclose(f);
	if (cairn_nar_hash_path(path, &nar_hash, &nar_size, NULL) != 0)
		return 1;
	body_hash = nar_hash; /* uncompressed: the file is its own NarHash */
	/* the same size, one byte changed */
	snprintf(path, sizeof(path),
		 "cp %s/good.nar %s/bad.nar && printf X | dd of=%s/bad.nar "
		 "bs=1 seek=1000 conv=notrunc status=none",
		 tmpdir, tmpdir, tmpdir);
	if (system(path) != 0)
		return 1;
	snprintf(path, sizeof(path), "file://%s", tmpdir);
	return cairn_http_server_new(&srv, path, 0, NULL) != 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	cairn_http_server_free(srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) != 0;
}

struct run {
	int done, code;
	size_t source, expect, refuse_source;
	uint64_t verify_failed, body;
	int refuse;
	char reason[1024];
	uint64_t src_bytes[4];
	int stats_calls;
};

static void on_done(void *ctx, const struct cairn_dl_result *r)
{
	struct run *x = ctx;
	x->done = 1;
	x->code = r->code;
	x->source = r->source;
	x->expect = r->expect;
	x->verify_failed = r->verify_failed;
	snprintf(x->reason, sizeof(x->reason), "%s", r->reason);
}

static void on_stats(void *ctx, size_t source, const struct cairn_dl_source_stats *st)
{
	struct run *x = ctx;
	x->stats_calls++;
	if (source < 4)
		x->src_bytes[source] += st->bytes;
}

static int on_response(void *ctx, size_t source, uint64_t first,
		       const struct cairn_http_response *resp, char *why, size_t cap)
{
	struct run *x = ctx;
	(void)first;
	(void)resp;
	if (x->refuse && source == x->refuse_source) {
		snprintf(why, cap, "turned down");
		return 1;
	}
	return 0;
}

static int body(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct run *x = ctx;
	(void)data;
	(void)err;
	x->body += len;
	return 0;
}

static int begin(void *ctx, struct cairn_error *err)
{
	struct run *x = ctx;
	(void)err;
	x->body = 0;
	return 0;
}

static struct cairn_dl_source src(const char *url)
{
	return (struct cairn_dl_source){
	    .label = url, .server = srv, .url = url, .method = CAIRN_CODEC_NONE};
}

static struct cairn_dl_expect expect(const struct cairn_hash *h, uint64_t size)
{
	return (struct cairn_dl_expect){.nar_hash = *h, .nar_size = size};
}

static void run_cfg(struct run *x, const struct cairn_dl_expect *ex, size_t n_ex,
		    const struct cairn_dl_source *s, size_t n, uint64_t multi_min)
{
	struct cairn_http *http;
	struct cairn_http_config hc;
	struct cairn_dl *d = NULL;
	cairn_http_config_init(&hc);
	assert_int_equal(cairn_http_new(&http, &hc, NULL), 0);
	const struct cairn_dl_config cfg = {.http = http,
					    .on_done = on_done,
					    .on_response = on_response,
					    .multi_min = multi_min,
					    .multi_parts = 4,
					    .multi_min_piece = 4096,
					    .on_source_stats = on_stats,
					    .ctx = x};
	const struct cairn_dl_sink sink = {.begin = begin, .body = body, .ctx = x};
	assert_int_equal(cairn_dl_start_any(&d, &cfg, ex, n_ex, s, n, &sink, NULL), 0);
	for (int i = 0; i < 1000 && !x->done; i++)
		cairn_http_step(http, 50, NULL);
	assert_true(x->done);
	cairn_dl_free(d);
	cairn_http_free(http);
}

static void run(struct run *x, const struct cairn_dl_expect *ex, size_t n_ex,
		const struct cairn_dl_source *s, size_t n)
{
	run_cfg(x, ex, n_ex, s, n, 0);
}

static struct cairn_dl_source sized(const char *url)
{
	struct cairn_dl_source s = src(url);
	s.has_file_size = true;
	s.file_size = nar_size;
	return s;
}

/* Two sources of one file: both send a part of it, in ranges, and the
 * whole verifies. */
static void test_multi_source(void **state)
{
	(void)state;
	struct cairn_dl_expect ex[1] = {expect(&nar_hash, nar_size)};
	struct cairn_dl_source s[2] = {sized(good_url), sized(good_url)};
	struct run x = {0};
	run_cfg(&x, ex, 1, s, 2, 1);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.body, nar_size);
	assert_int_equal(x.stats_calls, 2);
	assert_true(x.src_bytes[0] > 0);
	assert_true(x.src_bytes[1] > 0);
	assert_true(x.src_bytes[0] + x.src_bytes[1] >= nar_size);
	/* below the threshold: one source at a time, no ranges */
	struct run y = {0};
	run_cfg(&y, ex, 1, s, 2, nar_size + 1);
	assert_int_equal(y.code, 0);
	assert_int_equal(y.stats_calls, 0);
}

/* A source whose range is bad spoils the whole: which one cannot be told,
 * so it is done again one source at a time, which tells. */
static void test_multi_source_bad_bytes(void **state)
{
	(void)state;
	struct cairn_dl_expect ex[1] = {expect(&nar_hash, nar_size)};
	struct cairn_dl_source s[2] = {sized(bad_url), sized(good_url)};
	struct run x = {0};
	run_cfg(&x, ex, 1, s, 2, 1);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.source, 1);
	assert_int_equal(x.verify_failed, 1);
	assert_int_equal(x.body, nar_size);
	assert_non_null(strstr(x.reason, "several sources at once"));
}

/* One URL named by narinfos with different NarHashes: the verdict says
 * which one the bytes are. */
static void test_several_expectations(void **state)
{
	(void)state;
	struct cairn_hash other = nar_hash;
	other.digest[0] ^= 1;
	struct cairn_dl_expect ex[3] = {expect(&other, nar_size), expect(&nar_hash, nar_size + 1),
					expect(&nar_hash, nar_size)};
	struct cairn_dl_source s[1] = {src(good_url)};
	struct run x = {0};
	run(&x, ex, 3, s, 1);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.expect, 2);
	assert_int_equal(x.body, nar_size);
}

/* None met: every source is a verification failure. */
static void test_no_expectation_met(void **state)
{
	(void)state;
	struct cairn_hash other = nar_hash;
	other.digest[5] ^= 1;
	struct cairn_dl_expect ex[1] = {expect(&other, nar_size)};
	struct cairn_dl_source s[2] = {src(good_url), src(bad_url)};
	struct run x = {0};
	run(&x, ex, 1, s, 2);
	assert_int_equal(x.code, CAIRN_EHASH);
	assert_int_equal(x.verify_failed, 3);
}

/* Bad bytes from the first source: the second's are taken. */
static void test_failover_on_bad_bytes(void **state)
{
	(void)state;
	struct cairn_dl_expect ex[1] = {expect(&nar_hash, nar_size)};
	struct cairn_dl_source s[2] = {src(bad_url), src(good_url)};
	struct run x = {0};
	run(&x, ex, 1, s, 2);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.source, 1);
	assert_int_equal(x.verify_failed, 1);
	assert_int_equal(x.body, nar_size);
}

/* Nothing signed to check: only the FileHash hint, and the body passes. */
static void test_unchecked(void **state)
{
	(void)state;
	struct cairn_dl_source s[2] = {src(bad_url), src(good_url)};
	struct run x = {0};
	run(&x, NULL, 0, s, 1);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.body, nar_size);
	for (int i = 0; i < 2; i++) {
		s[i].has_file_hash = true;
		s[i].file_hash = body_hash;
	}
	struct run y = {0};
	run(&y, NULL, 0, s, 2);
	assert_int_equal(y.code, 0);
	assert_int_equal(y.source, 1);
	assert_int_equal(y.verify_failed, 1);
}

/* An answer the caller turns down at its headers is the next source's turn. */
static void test_turned_down(void **state)
{
	(void)state;
	struct cairn_dl_expect ex[1] = {expect(&nar_hash, nar_size)};
	struct cairn_dl_source s[2] = {src(good_url), src(good_url)};
	struct run x = {.refuse = 1, .refuse_source = 0};
	run(&x, ex, 1, s, 2);
	assert_int_equal(x.code, 0);
	assert_int_equal(x.source, 1);
	assert_int_equal(x.verify_failed, 1);
}

/* A sink that is not body-only needs something to check the NAR with. */
static void test_unchecked_needs_body_sink(void **state)
{
	(void)state;
	struct cairn_http *http;
	struct cairn_http_config hc;
	struct cairn_dl *d = NULL;
	struct run x = {0};
	cairn_http_config_init(&hc);
	assert_int_equal(cairn_http_new(&http, &hc, NULL), 0);
	const struct cairn_dl_config cfg = {.http = http, .on_done = on_done, .ctx = &x};
	static const struct cairn_nar_callbacks cb = {0};
	const struct cairn_dl_sink sink = {.tree = &cb, .ctx = &x};
	struct cairn_dl_source s[1] = {src(good_url)};
	assert_int_equal(cairn_dl_start_any(&d, &cfg, NULL, 0, s, 1, &sink, NULL), CAIRN_EINVAL);
	cairn_http_free(http);
}

/* cairn_dl_check_stream: a NAR the caller produces (IPFS blocks) meets the
 * same checks, in pieces of any size; the sink is discarded when it fails. */
struct produced {
	const char *file;
	size_t piece;
	int fail; /* produce() stops with this after the first piece */
	int begun, discarded;
	uint64_t nar;
};

static int produce(void *ctx, cairn_dl_write_fn write, void *wctx, struct cairn_error *err)
{
	struct produced *p = ctx;
	char path[512], buf[4096];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, p->file);
	FILE *f = fopen(path, "r");
	if (!f)
		return cairn_error_set(err, CAIRN_EIO, "cannot open");
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(buf, 1, p->piece, f)) > 0) {
		rc = write(wctx, buf, n);
		if (!rc && p->fail)
			rc = cairn_error_set(err, p->fail, "the gateways gave up");
	}
	fclose(f);
	return rc;
}

static int s_begin(void *ctx, struct cairn_error *err)
{
	(void)err;
	((struct produced *)ctx)->begun++;
	return 0;
}

static void s_discard(void *ctx)
{
	((struct produced *)ctx)->discarded++;
}

static int s_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)data;
	(void)err;
	((struct produced *)ctx)->nar += len;
	return 0;
}

static void test_check_stream(void **state)
{
	(void)state;
	struct cairn_dl_expect ex = expect(&nar_hash, nar_size);
	struct cairn_error e;
	const size_t pieces[] = {1, 7, 4096};
	for (size_t i = 0; i < 3; i++) {
		struct produced p = {.file = good_url, .piece = pieces[i]};
		struct cairn_dl_sink sink = {.begin = s_begin, .nar = s_nar, .discard = s_discard,
					     .ctx = &p};
		cairn_error_init(&e);
		assert_int_equal(cairn_dl_check_stream(&ex, produce, &p, &sink, &e), 0);
		assert_int_equal(p.begun, 1);
		assert_int_equal(p.discarded, 0); /* the caller's to commit */
		assert_int_equal(p.nar, nar_size);
	}
	/* one byte changed: the NarHash check refuses it, the sink is discarded */
	struct produced bad = {.file = bad_url, .piece = 4096};
	struct cairn_dl_sink sink = {.begin = s_begin, .nar = s_nar, .discard = s_discard,
				     .ctx = &bad};
	cairn_error_init(&e);
	assert_int_equal(cairn_dl_check_stream(&ex, produce, &bad, &sink, &e), CAIRN_EHASH);
	assert_non_null(strstr(cairn_error_msg(&e), "hash mismatch"));
	assert_int_equal(bad.discarded, 1);
	/* the producer's own failure is the result, and discards too */
	struct produced cut = {.file = good_url, .piece = 100, .fail = CAIRN_ENOENT};
	sink.ctx = &cut;
	cairn_error_init(&e);
	assert_int_equal(cairn_dl_check_stream(&ex, produce, &cut, &sink, &e), CAIRN_ENOENT);
	assert_non_null(strstr(cairn_error_msg(&e), "gave up"));
	assert_int_equal(cut.discarded, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_several_expectations),
	    cmocka_unit_test(test_no_expectation_met),
	    cmocka_unit_test(test_failover_on_bad_bytes),
	    cmocka_unit_test(test_unchecked),
	    cmocka_unit_test(test_multi_source),
	    cmocka_unit_test(test_multi_source_bad_bytes),
	    cmocka_unit_test(test_turned_down),
	    cmocka_unit_test(test_unchecked_needs_body_sink),
	    cmocka_unit_test(test_check_stream),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
