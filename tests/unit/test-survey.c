/*
 * test-survey.c - the survey without a network: path bookkeeping, answers
 * from the narinfo cache, a server nothing listens on, paths added from
 * the callback, a callback that stops, and narinfos the callback keeps;
 * and, against an in-process server, the bound on requests at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/cairn.h"
#include "cairn/httpd.h"
#include "cairn/narinfos.h"
#include "cairn/nicache.h"
#include "cairn/survey.h"
#include "vecutil.h"

#define SRV "http://127.0.0.1:1" /* nothing listens on port 1 */
#define P_A "/nix/store/d9fyl4gycfxhdai7b0aqfvb3m3y3wizb-bench-1"
#define P_B "/nix/store/iw7wnzsqc39himbjfx1sfnxk8hazl74w-bench-2"
#define P_C "/nix/store/cgpqsvkkixs45kv9ga8nslqnf3ighqx9-bench-3"
#define P_D "/nix/store/bs5cd64j6prjx1bnppf7xvidbazgv1ch-bench-4"
#define P_E "/nix/store/aa14969yk0kmr1ylsb8cq4bihqkffv5l-bench-0"

static char *narinfo_for(const char *path)
{
	static const char fmt[] =
	    "StorePath: %s\n"
	    "URL: nar/x.nar.xz\n"
	    "Compression: xz\n"
	    "NarHash: sha256:0cycq0jjxcni9vxnyqjr9gp3xapac9a6lz4chrds7v8caqgcskfd\n"
	    "NarSize: 1043\n"
	    "References: \n";
	char *s = malloc(sizeof(fmt) + strlen(path));
	assert_non_null(s);
	sprintf(s, fmt, path);
	return s;
}

static void test_bookkeeping(void **state)
{
	(void)state;
	struct cairn_http *h;
	struct cairn_http_server *srv;
	struct cairn_survey *s;
	struct cairn_error err;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, SRV, 0, NULL), 0);
	assert_int_equal(cairn_survey_new(&s, h, &srv, 0, NULL, (cairn_survey_fn)1, NULL, &err),
			 CAIRN_EINVAL);
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, NULL, NULL, NULL, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, NULL, (cairn_survey_fn)1, NULL, NULL), 0);

	size_t idx = 99;
	assert_int_equal(cairn_survey_add(s, P_A, &idx, NULL), 1);
	assert_int_equal(idx, 0);
	assert_int_equal(cairn_survey_add(s, P_B, &idx, NULL), 1);
	assert_int_equal(idx, 1);
	idx = 99;
	assert_int_equal(cairn_survey_add(s, P_A, &idx, NULL), 0);
	assert_int_equal(idx, 0);
	/* the hash part is the key, as in a cache */
	assert_int_equal(
	    cairn_survey_add(s, "/nix/store/d9fyl4gycfxhdai7b0aqfvb3m3y3wizb-other", &idx, NULL),
	    0);
	assert_int_equal(idx, 0);
	cairn_error_init(&err);
	idx = 99;
	assert_int_equal(cairn_survey_add(s, "/nix/store/short-x", &idx, &err), CAIRN_EFORMAT);
	assert_int_equal(idx, 99);
	assert_int_equal(cairn_survey_add(s, "bench-1", NULL, NULL), CAIRN_EFORMAT);
	assert_int_equal(cairn_survey_count(s), 2);

	/* many paths: the table grows and every index stays right */
	char path[128];
	for (int i = 0; i < 5000; i++) {
		char hash[33];
		for (int k = 0; k < 32; k++)
			hash[k] =
			    "0123456789abcdfghijklmnpqrsvwxyz"[(i >> (k % 13)) * (k + 7) % 32];
		hash[32] = '\0';
		snprintf(path, sizeof(path), "/nix/store/%s-p%d", hash, i);
		int rc = cairn_survey_add(s, path, &idx, NULL);
		assert_true(rc == 0 || rc == 1);
		/* same hash part, whether new or already there */
		assert_memory_equal(cairn_survey_path(s, idx) + 11, path + 11, 32);
		if (rc == 1)
			assert_string_equal(cairn_survey_path(s, idx), path);
	}
	assert_null(cairn_survey_path(s, cairn_survey_count(s)));
	cairn_survey_free(s);
	cairn_http_server_free(srv);
	cairn_http_free(h);
}

struct seen {
	int outcome[8];
	bool cached[8];
	int calls;
	struct cairn_survey *s;
	struct cairn_narinfo *kept;
	int stop_after;
};

static int on_result(void *ctx, struct cairn_survey_result *r)
{
	struct seen *z = ctx;
	assert_true(r->path_index < 8);
	assert_int_equal(r->server_index, 0);
	z->outcome[r->path_index] = (int)r->outcome;
	z->cached[r->path_index] = r->from_cache;
	z->calls++;
	if (r->outcome == CAIRN_SURVEY_PRESENT) {
		assert_non_null(r->narinfo);
		assert_string_equal(r->narinfo->store_path, r->store_path);
	} else {
		assert_null(r->narinfo);
		assert_true(r->err.code != 0);
	}
	if (!strcmp(r->store_path, P_A)) {
		/* keep A's narinfo; add E from inside the callback */
		z->kept = r->narinfo;
		r->narinfo = NULL;
		assert_int_equal(cairn_survey_add(z->s, P_E, NULL, NULL), 1);
		assert_int_equal(cairn_survey_add(z->s, P_A, NULL, NULL), 0);
	}
	return z->stop_after && z->calls >= z->stop_after ? 1 : 0;
}

static struct cairn_nicache *open_cache(char *dir, char *path, size_t cap)
{
	struct cairn_nicache_config cfg;
	struct cairn_nicache *c;
	assert_non_null(mkdtemp(dir));
	snprintf(path, cap, "%s/ni.sqlite", dir);
	cairn_nicache_config_init(&cfg);
	cfg.path = path;
	assert_int_equal(cairn_nicache_open(&c, &cfg, 1000, NULL), 0);
	char *a = narinfo_for(P_A), *d = narinfo_for(P_B), *e = narinfo_for(P_E);
	assert_int_equal(cairn_nicache_put_present(c, SRV, "d9fyl4gycfxhdai7b0aqfvb3m3y3wizb", a,
						   strlen(a), 1000, -1, NULL),
			 0);
	assert_int_equal(
	    cairn_nicache_put_absent(c, SRV, "iw7wnzsqc39himbjfx1sfnxk8hazl74w", 1000, -1, NULL),
	    0);
	/* D's cached text names another path */
	assert_int_equal(cairn_nicache_put_present(c, SRV, "bs5cd64j6prjx1bnppf7xvidbazgv1ch", d,
						   strlen(d), 1000, -1, NULL),
			 0);
	assert_int_equal(cairn_nicache_put_present(c, SRV, "aa14969yk0kmr1ylsb8cq4bihqkffv5l", e,
						   strlen(e), 1000, -1, NULL),
			 0);
	free(a);
	free(d);
	free(e);
	return c;
}

static void test_cache_and_down(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-survey.XXXXXX", path[256];
	struct cairn_nicache *c = open_cache(dir, path, sizeof(path));
	struct cairn_http *h;
	struct cairn_http_server *srv;
	struct cairn_survey *s;
	struct cairn_error err;
	struct seen z;
	memset(&z, 0, sizeof(z));
	for (int i = 0; i < 8; i++)
		z.outcome[i] = -1;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, SRV, 0, NULL), 0);
	struct cairn_survey_config cfg;
	cairn_survey_config_init(&cfg);
	cfg.cache = c;
	cfg.now = 1000;
	cfg.max_inflight = 1;
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, &cfg, on_result, &z, NULL), 0);
	z.s = s;
	assert_int_equal(cairn_survey_add(s, P_A, NULL, NULL), 1);
	assert_int_equal(cairn_survey_add(s, P_B, NULL, NULL), 1);
	assert_int_equal(cairn_survey_add(s, P_C, NULL, NULL), 1);
	assert_int_equal(cairn_survey_add(s, P_D, NULL, NULL), 1);
	cairn_error_init(&err);
	assert_int_equal(cairn_survey_run(s, &err), 0);
	assert_int_equal(z.calls, 5);
	assert_int_equal(z.outcome[0], CAIRN_SURVEY_PRESENT);
	assert_true(z.cached[0]);
	assert_int_equal(z.outcome[1], CAIRN_SURVEY_ABSENT);
	assert_true(z.cached[1]);
	assert_int_equal(z.outcome[2], CAIRN_SURVEY_UNKNOWN); /* refused */
	assert_false(z.cached[2]);
	assert_int_equal(z.outcome[3], CAIRN_SURVEY_INVALID); /* wrong StorePath */
	assert_int_equal(z.outcome[4], CAIRN_SURVEY_PRESENT); /* E, added by the callback */
	assert_non_null(z.kept);
	assert_string_equal(z.kept->store_path, P_A);
	cairn_narinfo_free(z.kept);
	struct cairn_survey_stats st;
	cairn_survey_stats(s, &st);
	assert_int_equal(st.results, 5);
	assert_int_equal(st.cache_hits, 4);
	assert_int_equal(st.requests, 1);
	assert_non_null(cairn_http_server_down(srv));

	/* the server is down now: a new path is unknown without a request */
	assert_int_equal(
	    cairn_survey_add(s, "/nix/store/0jhsvp53ahg57r5knb401317m7zfiknl-x", NULL, NULL), 1);
	assert_int_equal(cairn_survey_run(s, &err), 0);
	cairn_survey_stats(s, &st);
	assert_int_equal(st.results, 6);
	assert_int_equal(st.requests, 1);
	assert_int_equal(z.outcome[5], CAIRN_SURVEY_UNKNOWN);
	cairn_survey_free(s);

	/* a callback that stops the survey */
	memset(&z, 0, sizeof(z));
	z.stop_after = 1;
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, &cfg, on_result, &z, NULL), 0);
	z.s = s;
	assert_int_equal(cairn_survey_add(s, P_B, NULL, NULL), 1);
	assert_int_equal(cairn_survey_add(s, P_D, NULL, NULL), 1);
	cairn_error_init(&err);
	assert_int_equal(cairn_survey_run(s, &err), CAIRN_ECANCELED);
	assert_int_equal(z.calls, 1);
	cairn_survey_free(s);

	cairn_http_server_free(srv);
	cairn_http_free(h);
	cairn_nicache_free(c);
	unlink(path);
	char wal[300];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
	rmdir(dir);
}

static int on_hash_result(void *ctx, struct cairn_survey_result *r)
{
	struct seen *z = ctx;
	assert_true(r->path_index < 8);
	z->outcome[r->path_index] = (int)r->outcome;
	z->calls++;
	/* asked by hash part: that is the path the result names */
	assert_int_equal(strlen(r->store_path), 32);
	assert_int_equal(r->max_age, -1);
	if (r->outcome == CAIRN_SURVEY_PRESENT)
		assert_memory_equal(r->narinfo->store_path + 11, r->store_path, 32);
	return 0;
}

/* The mirror's misses know a hash part, not a name: any StorePath with
 * that hash part is the answer, another is not. */
static void test_by_hash(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-survey.XXXXXX", path[256];
	struct cairn_nicache *c = open_cache(dir, path, sizeof(path));
	struct cairn_http *h;
	struct cairn_http_server *srv;
	struct cairn_survey *s;
	struct cairn_error err;
	struct seen z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, SRV, 0, NULL), 0);
	struct cairn_survey_config cfg;
	cairn_survey_config_init(&cfg);
	cfg.cache = c;
	cfg.now = 1000;
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, &cfg, on_hash_result, &z, NULL), 0);
	size_t idx = 99;
	assert_int_equal(cairn_survey_add_hash(s, "d9fyl4gycfxhdai7b0aqfvb3m3y3wizb", &idx, NULL), 1);
	assert_int_equal(idx, 0);
	assert_string_equal(cairn_survey_path(s, 0), "d9fyl4gycfxhdai7b0aqfvb3m3y3wizb");
	/* D's cached narinfo names B: not the item asked for */
	assert_int_equal(cairn_survey_add_hash(s, "bs5cd64j6prjx1bnppf7xvidbazgv1ch", &idx, NULL), 1);
	assert_int_equal(cairn_survey_add_hash(s, "d9fyl4gycfxhdai7b0aqfvb3m3y3wizb", &idx, NULL), 0);
	assert_int_equal(idx, 0);
	cairn_error_init(&err);
	assert_int_equal(cairn_survey_add_hash(s, "d9fyl4gycfxhdai7b0aqfvb3m3y3wiz", NULL, &err),
			 CAIRN_EFORMAT);
	assert_int_equal(cairn_survey_add_hash(s, "e9fyl4gycfxhdai7b0aqfvb3m3y3wizb", NULL, NULL),
			 CAIRN_EFORMAT); /* 'e' is not nix32 */
	assert_int_equal(cairn_survey_count(s), 2);
	assert_int_equal(cairn_survey_run(s, &err), 0);
	assert_int_equal(z.calls, 2);
	assert_int_equal(z.outcome[0], CAIRN_SURVEY_PRESENT);
	assert_int_equal(z.outcome[1], CAIRN_SURVEY_INVALID);
	cairn_survey_free(s);
	cairn_http_server_free(srv);
	cairn_http_free(h);
	cairn_nicache_free(c);
	unlink(path);
	char wal[300];
	snprintf(wal, sizeof(wal), "%s-wal", path);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", path);
	unlink(wal);
	rmdir(dir);
}

/* A survey freed with its requests still in the client (a mirror that
 * stops mid-miss): they are freed with it (a leak under the sanitizers
 * before), and the client, freed next, calls none of them. */
static void test_free_in_flight(void **state)
{
	(void)state;
	struct cairn_http *h;
	struct cairn_http_server *srv;
	struct cairn_survey *s;
	struct seen z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, SRV, 0, NULL), 0);
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, NULL, on_hash_result, &z, NULL), 0);
	assert_int_equal(cairn_survey_add_hash(s, "d9fyl4gycfxhdai7b0aqfvb3m3y3wizb", NULL, NULL), 1);
	assert_int_equal(cairn_survey_add_hash(s, "bs5cd64j6prjx1bnppf7xvidbazgv1ch", NULL, NULL), 1);
	assert_int_equal(cairn_survey_start(s, NULL), 0);
	/* the first pair, its nix-cache-info (CairnNarinfos?), the second
	 * pair waiting for it */
	assert_int_equal(cairn_survey_pending(s), 3);
	cairn_survey_free(s);
	cairn_http_free(h);
	cairn_http_server_free(srv);
	assert_int_equal(z.calls, 0);
}

/* ---- against a server: requests at once ---------------------------------- */

static int serve_info(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	static const char info[] = "StoreDir: /nix/store\nWantMassQuery: 1\n";
	return cairn_httpd_send_static(req, 200, "text/x-nix-cache-info", info, sizeof(info) - 1);
}

static int serve_missing(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	return cairn_httpd_send_error(req, 404);
}

static int count_absent(void *ctx, struct cairn_survey_result *r)
{
	int *n = ctx;
	assert_int_equal(r->outcome, CAIRN_SURVEY_ABSENT);
	(*n)++;
	return 0;
}

/*
 * A server without batches: the pairs queued while its nix-cache-info was
 * out go as single requests once it is in, and still no more than
 * max_inflight at once.  They all went into the client at once before
 * (100,000 paths: 100,000 transfers in libcurl, whose per-transfer
 * bookkeeping then cost minutes and gigabytes).
 */
static void test_inflight_bound(void **state)
{
	(void)state;
	enum { PATHS = 600, INFLIGHT = 8 };
	struct cairn_httpd_config hc;
	struct cairn_httpd *d;
	cairn_httpd_config_init(&hc);
	hc.listen[hc.n_listen++] = "127.0.0.1:0";
	hc.threads = 1;
	assert_int_equal(cairn_httpd_new(&d, &hc, NULL), 0);
	assert_int_equal(cairn_httpd_route(d, CAIRN_HTTPD_EXACT, "/nix-cache-info", "info",
					   serve_info, NULL, NULL),
			 0);
	assert_int_equal(
	    cairn_httpd_route(d, CAIRN_HTTPD_PREFIX, "/", "narinfo", serve_missing, NULL, NULL), 0);
	assert_int_equal(cairn_httpd_start(d, NULL), 0);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", cairn_httpd_port(d));

	struct cairn_http *h;
	struct cairn_http_server *srv;
	struct cairn_survey *s;
	struct cairn_survey_config sc;
	int answered = 0;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, url, 0, NULL), 0);
	cairn_survey_config_init(&sc);
	sc.max_inflight = INFLIGHT;
	assert_int_equal(cairn_survey_new(&s, h, &srv, 1, &sc, count_absent, &answered, NULL), 0);
	for (int i = 0; i < PATHS; i++) {
		char hash[33], path[80];
		for (int k = 0; k < 32; k++)
			hash[k] =
			    "0123456789abcdfghijklmnpqrsvwxyz"[(i >> (5 * (k % 2))) % 32 ^ k % 32];
		hash[32] = '\0';
		snprintf(path, sizeof(path), "/nix/store/%s-p%d", hash, i);
		assert_int_equal(cairn_survey_add(s, path, NULL, NULL), 1);
	}
	/* the survey's own loop, watching the client's count of transfers
	 * (cairn_http_step returns those active and queued) */
	int most = 0, steps = 0;
	assert_int_equal(cairn_survey_start(s, NULL), 0);
	while (cairn_survey_pending(s) > 0 && steps++ < 100000) {
		int rc = cairn_http_step(h, 1000, NULL);
		assert_true(rc >= 0);
		if (rc > most)
			most = rc;
		assert_int_equal(cairn_survey_start(s, NULL), 0);
	}
	assert_int_equal(answered, PATHS);
	/* its nix-cache-info is the one more */
	assert_true(most <= INFLIGHT + 1);
	cairn_survey_free(s);
	cairn_http_free(h);
	cairn_http_server_free(srv);
	cairn_httpd_stop(d);
	assert_int_equal(cairn_httpd_wait(d, NULL), 0);
	cairn_httpd_free(d);
}

/* A batch server (CairnNarinfos: 1) that knows nothing: every asked hash
 * Absent; counts its batch requests. */
static int serve_batch_info(struct cairn_httpd_req *req, void *data)
{
	(void)data;
	static const char info[] = "StoreDir: /nix/store\nWantMassQuery: 1\nCairnNarinfos: 1\n";
	return cairn_httpd_send_static(req, 200, "text/x-nix-cache-info", info, sizeof(info) - 1);
}

static int serve_batch(struct cairn_httpd_req *req, void *data)
{
	atomic_int *batches = data;
	char asked[CAIRN_NARINFOS_HASHES_MAX][33];
	size_t n = 0, qlen = 0;
	bool closure = false;
	const char *q = cairn_httpd_req_query(req, &qlen);
	if (!q || cairn_narinfos_parse_query(q, qlen, asked, &n, &closure, NULL) < 0)
		return cairn_httpd_send_error(req, 400);
	atomic_fetch_add(batches, 1);
	usleep(1000); /* a server that reads files: answers come one by one */
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	int rc = cairn_narinfos_begin(&b);
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = cairn_narinfos_add_absent(&b, asked[i]);
	if (rc == 0)
		rc = cairn_narinfos_end(&b, n);
	rc = rc ? cairn_httpd_send_error(req, 500)
		: cairn_httpd_send(req, 200, CAIRN_NARINFOS_CONTENT_TYPE, b.data, b.len);
	cairn_buf_release(&b);
	return rc;
}

struct paced {
	int answered, per[3], spread;
};

/* Counts answers per server, and how far one ran ahead of another. */
static int count_paced(void *ctx, struct cairn_survey_result *r)
{
	struct paced *p = ctx;
	assert_int_equal(r->outcome, CAIRN_SURVEY_ABSENT);
	p->answered++;
	p->per[r->server_index]++;
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++)
			if (p->per[i] - p->per[k] > p->spread)
				p->spread = p->per[i] - p->per[k];
	return 0;
}

/*
 * Three batch servers, a survey of many paths as the monitor runs it: the
 * pairs go in full batches, about PATHS / 100 requests per server.  A
 * batch went out the moment a request slot freed, with whatever few pairs
 * were queued: 100,000 paths cost the first server 12,000 requests and the
 * second 4,700 (the third, last served, 1,000); here, 2,046 for the first.
 * Takes more pairs than the survey queues ahead (25,600) to show.  And
 * the servers keep pace: none more than 8,000 answers ahead of another
 * (the monitor holds 8,192 items' answers until their last); server by
 * server, with up to 256 batches out, one ran 16,700 ahead here; now 700
 * on a quiet machine, 2,700 with the test suite running beside it.
 */
static void test_full_batches(void **state)
{
	(void)state;
	enum { PATHS = 40000, SERVERS = 3 };
	struct cairn_httpd *d[SERVERS];
	struct cairn_http_server *srv[SERVERS];
	atomic_int batches[SERVERS];
	struct cairn_http *h;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	for (int i = 0; i < SERVERS; i++) {
		struct cairn_httpd_config hc;
		cairn_httpd_config_init(&hc);
		hc.listen[hc.n_listen++] = "127.0.0.1:0";
		hc.threads = 1;
		atomic_init(&batches[i], 0);
		assert_int_equal(cairn_httpd_new(&d[i], &hc, NULL), 0);
		assert_int_equal(cairn_httpd_route(d[i], CAIRN_HTTPD_EXACT, "/nix-cache-info",
						   "info", serve_batch_info, NULL, NULL),
				 0);
		assert_int_equal(cairn_httpd_route(d[i], CAIRN_HTTPD_EXACT, "/narinfos",
						   "narinfos", serve_batch, &batches[i], NULL),
				 0);
		assert_int_equal(cairn_httpd_route(d[i], CAIRN_HTTPD_PREFIX, "/", "narinfo",
						   serve_missing, NULL, NULL),
				 0);
		assert_int_equal(cairn_httpd_start(d[i], NULL), 0);
		char url[64];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d", cairn_httpd_port(d[i]));
		assert_int_equal(cairn_http_server_new(&srv[i], url, 0, NULL), 0);
	}
	struct cairn_survey *s;
	struct cairn_survey_config sc;
	struct paced paced = {0};
	cairn_survey_config_init(&sc);
	assert_int_equal(cairn_survey_new(&s, h, srv, SERVERS, &sc, count_paced, &paced, NULL), 0);
	for (size_t i = 0; i < PATHS; i++) {
		char path[80];
		numbered_store_path(i, "p", path, sizeof(path));
		assert_int_equal(cairn_survey_add(s, path, NULL, NULL), 1);
	}
	assert_int_equal(cairn_survey_run(s, NULL), 0);
	assert_int_equal(paced.answered, PATHS * SERVERS);
	print_message("at most %d answers of one server ahead of another's\n", paced.spread);
	assert_true(paced.spread <= 8000);
	for (int i = 0; i < SERVERS; i++) {
		int n = atomic_load(&batches[i]);
		print_message("server %d: %d batch requests for %d paths\n", i, n, PATHS);
		/* full batches, and a few partial ones at the start and end */
		assert_true(n <= PATHS / CAIRN_NARINFOS_HASHES_MAX + 4);
	}
	cairn_survey_free(s);
	cairn_http_free(h);
	for (int i = 0; i < SERVERS; i++) {
		cairn_http_server_free(srv[i]);
		cairn_httpd_stop(d[i]);
		assert_int_equal(cairn_httpd_wait(d[i], NULL), 0);
		cairn_httpd_free(d[i]);
	}
}

int main(void)
{
	assert_int_equal(cairn_init(), 0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bookkeeping),
	    cmocka_unit_test(test_cache_and_down),
	    cmocka_unit_test(test_by_hash),
	    cmocka_unit_test(test_free_in_flight),
	    cmocka_unit_test(test_inflight_bound),
	    cmocka_unit_test(test_full_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
