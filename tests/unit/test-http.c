/* The parts of lib/http.c that need no network: nix-cache-info, response
 * headers, servers and their health, advice, request validation, delayed
 * requests, and the minimum-rate window on made-up clocks.  Transfers are
 * tested against real servers in tests/integration/test-http-client.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/http.h"
#include "../../lib/http-internal.h"

static int ci(const char *text, struct cairn_http_cache_info *out)
{
	return cairn_http_cache_info_parse(text, strlen(text), out, NULL);
}

static void test_cache_info(void **state)
{
	struct cairn_http_cache_info c;

	assert_int_equal(ci("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n", &c), 0);
	assert_string_equal(c.store_dir, "/nix/store");
	assert_int_equal(c.want_mass_query, 1);
	assert_int_equal(c.priority, 40);

	/* Defaults; values trimmed; no final newline; CRLF. */
	assert_int_equal(ci("", &c), 0);
	assert_string_equal(c.store_dir, "");
	assert_int_equal(c.want_mass_query, 0);
	assert_int_equal(c.priority, CAIRN_HTTP_DEFAULT_PRIORITY);
	assert_int_equal(ci("StoreDir:   /gnu/store  \r\nPriority:\t-5", &c), 0);
	assert_string_equal(c.store_dir, "/gnu/store");
	assert_int_equal(c.priority, -5);

	/* As Nix: only "1" is true; a Priority that does not parse is
	 * ignored; lines without ':' and unknown names are skipped; names
	 * are case-sensitive and end at the first ':'. */
	assert_int_equal(ci("WantMassQuery: true\nPriority: 1x\ngarbage\nFoo: bar\n", &c), 0);
	assert_int_equal(c.want_mass_query, 0);
	assert_int_equal(c.priority, CAIRN_HTTP_DEFAULT_PRIORITY);
	assert_int_equal(ci("priority: 3\nPriority : 4\nStoreDir: a:b\n", &c), 0);
	assert_int_equal(c.priority, CAIRN_HTTP_DEFAULT_PRIORITY);
	assert_string_equal(c.store_dir, "a:b");
	assert_int_equal(ci("Priority: 10\nPriority: 20\n", &c), 0);
	assert_int_equal(c.priority, 20);
	assert_int_equal(ci("Priority: 99999999999\n", &c), 0);
	assert_int_equal(c.priority, CAIRN_HTTP_DEFAULT_PRIORITY);
	assert_int_equal(ci("Priority: -2147483648\n", &c), 0);
	assert_int_equal(c.priority, INT32_MIN);
}

/* A replica keeps the cache's lines, not what its head said of itself. */
static void test_cache_info_drop(void **state)
{
	(void)state;
	char t[] = "StoreDir: /nix/store\nCairnNarinfos: 1\nWantMassQuery: 1\n"
		   "CairnNarinfosX: 2\nCairnNarinfos: 1";
	size_t n = cairn_http_cache_info_drop(t, strlen(t), "CairnNarinfos");
	assert_int_equal(n, strlen("StoreDir: /nix/store\nWantMassQuery: 1\nCairnNarinfosX: 2\n"));
	assert_memory_equal(t, "StoreDir: /nix/store\nWantMassQuery: 1\nCairnNarinfosX: 2\n", n);
	char u[] = "StoreDir: /gnu/store";
	assert_int_equal(cairn_http_cache_info_drop(u, strlen(u), "CairnNarinfos"), strlen(u));
	assert_int_equal(cairn_http_cache_info_drop(u, 0, "CairnNarinfos"), 0);
}

static void test_cache_info_bounds(void **state)
{
	struct cairn_http_cache_info c;
	struct cairn_error err;
	char *big;

	memset(&c, 0x55, sizeof(c));
	cairn_error_init(&err);
	assert_int_equal(cairn_http_cache_info_parse("Priority: 1\0", 12, &c, &err), CAIRN_EFORMAT);
	assert_non_null(strstr(err.msg, "NUL"));
	assert_int_equal(c.priority, 0x55555555); /* untouched on failure */

	big = malloc(CAIRN_HTTP_CACHE_INFO_MAX + 16);
	assert_non_null(big);
	memset(big, '\n', CAIRN_HTTP_CACHE_INFO_MAX + 1);
	assert_int_equal(cairn_http_cache_info_parse(big, CAIRN_HTTP_CACHE_INFO_MAX + 1, &c, NULL),
			 CAIRN_ELIMIT);
	memcpy(big, "StoreDir: ", 10);
	memset(big + 10, 'd', CAIRN_HTTP_STORE_DIR_MAX + 1);
	assert_int_equal(
	    cairn_http_cache_info_parse(big, 10 + CAIRN_HTTP_STORE_DIR_MAX + 1, &c, NULL),
	    CAIRN_ELIMIT);
	assert_int_equal(cairn_http_cache_info_parse(big, 10 + CAIRN_HTTP_STORE_DIR_MAX, &c, NULL),
			 0);
	assert_int_equal(strlen(c.store_dir), CAIRN_HTTP_STORE_DIR_MAX);
	free(big);
}

/* Feed header lines (each ending in CRLF) like curl does. */
static void headers(struct cairn_http_response *r, int *loc, const char *const *lines)
{
	for (; *lines; lines++)
		cairn_http__header_line(r, *lines, strlen(*lines), loc);
}

static void test_headers(void **state)
{
	struct cairn_http_response r;
	int loc = 0;

	headers(&r, &loc,
		(const char *const[]){
		    "HTTP/1.1 206 Partial Content\r\n", "content-length:  1000 \r\n",
		    "Content-Range: bytes 1000-1999/5000\r\n",
		    "Cache-Control: public, max-age=\"600\", no-transform\r\n",
		    "Accept-Ranges: bytes\r\n", "Content-Type: application/x-nix-nar\r\n",
		    "Content-Encoding: zstd\r\n", NULL});
	assert_int_equal(r.status, 206);
	assert_int_equal(r.http_version, 11);
	assert_int_equal(r.content_length, 1000);
	assert_int_equal(r.range_first, 1000);
	assert_int_equal(r.range_last, 1999);
	assert_int_equal(r.range_total, 5000);
	assert_int_equal(r.max_age, 600);
	assert_int_equal(r.no_store, 0);
	assert_int_equal(r.accept_ranges, 1);
	assert_string_equal(r.content_type, "application/x-nix-nar");
	assert_string_equal(r.content_encoding, "zstd");
	assert_int_equal(loc, 0);
	assert_int_equal(cairn_http__header_line(&r, "\r\n", 2, &loc), CAIRN_HTTP__HDR_END);

	/* A new status line forgets everything. */
	assert_int_equal(cairn_http__header_line(&r, "HTTP/2 404 \r\n", 13, &loc),
			 CAIRN_HTTP__HDR_STATUS);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.http_version, 20);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(r.range_first, -1);
	assert_int_equal(r.max_age, -1);
	assert_string_equal(r.content_type, "");

	headers(&r, &loc,
		(const char *const[]){"HTTP/1.0 302 Found\r\n", "Location: /x\r\n",
				      "Cache-Control: max-age=60, s-maxage=5, no-store\r\n",
				      "Accept-Ranges: none\r\n", NULL});
	assert_int_equal(r.http_version, 10);
	assert_int_equal(loc, 1);
	assert_int_equal(r.max_age, 5); /* s-maxage wins for a shared cache */
	assert_int_equal(r.no_store, 1);
	assert_int_equal(r.accept_ranges, 0);
	assert_int_equal(cairn_http__header_line(&r, "HTTP/1.1 200 OK\r\n", 17, &loc),
			 CAIRN_HTTP__HDR_STATUS);
	assert_int_equal(loc, 0);
}

static void test_headers_hostile(void **state)
{
	struct cairn_http_response r;
	char longtype[400];
	int loc = 0;

	headers(&r, &loc,
		(const char *const[]){"HTTP/1.1 2x0 OK\r\n",
				      "Content-Length: 99999999999999999999999\r\n",
				      "Content-Range: bytes 20-10/100\r\n",
				      "Cache-Control: max-age=-1, max-age=1e3\r\n", NULL});
	assert_int_equal(r.status, 0);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(r.range_first, -1); /* last before first */
	assert_int_equal(r.range_total, 100);
	assert_int_equal(r.max_age, -1);
	headers(&r, &loc,
		(const char *const[]){"HTTP/1.1 416 Range Not Satisfiable\r\n",
				      "Content-Range: bytes */3000\r\n", "Content-Length: -5\r\n",
				      "Content-Length: 12abc\r\n", "NoColonHere\r\n",
				      ": empty name\r\n", NULL});
	assert_int_equal(r.status, 416);
	assert_int_equal(r.range_first, -1);
	assert_int_equal(r.range_total, 3000);
	assert_int_equal(r.content_length, -1);
	/* Long values are cut, still NUL-terminated. */
	strcpy(longtype, "Content-Type: ");
	memset(longtype + 14, 't', 300);
	strcpy(longtype + 314, "\r\n");
	cairn_http__header_line(&r, longtype, strlen(longtype), &loc);
	assert_int_equal(strlen(r.content_type), sizeof(r.content_type) - 1);
	/* Short lines never read out of bounds (ASan checks). */
	assert_int_equal(cairn_http__header_line(&r, "HTTP/", 5, &loc), CAIRN_HTTP__HDR_STATUS);
	assert_int_equal(r.status, 0);
	assert_int_equal(cairn_http__header_line(&r, "HTTP/1.1 20", 11, &loc),
			 CAIRN_HTTP__HDR_STATUS);
	assert_int_equal(r.status, 0);
	assert_int_equal(cairn_http__header_line(&r, "\n", 1, &loc), CAIRN_HTTP__HDR_END);
}

static void test_servers(void **state)
{
	struct cairn_http_server *s = NULL;
	struct cairn_http_cache_info info = {"/nix/store", 1, 10};
	struct cairn_http_server_health hl;
	struct cairn_error err;
	char *url;

	assert_int_equal(cairn_http_server_new(&s, "https://cache.example.org///", 0, NULL), 0);
	assert_string_equal(cairn_http_server_url(s), "https://cache.example.org");
	assert_int_equal(cairn_http_server_info(s)->priority, CAIRN_HTTP_DEFAULT_PRIORITY);
	cairn_http_server_set_info(s, &info);
	assert_int_equal(cairn_http_server_info(s)->priority, 10);
	assert_null(cairn_http_server_down(s));
	cairn_http_server_health(s, &hl);
	assert_int_equal(hl.state, CAIRN_HTTP_SERVER_UP);
	assert_null(hl.down_reason);
	assert_int_equal(hl.down_since, 0);
	assert_int_equal(hl.requests + hl.ok + hl.unreachable + hl.silent + hl.slow + hl.stalls, 0);
	assert_int_equal(cairn_http_server_slow(s), 0);
	cairn_http_server_mark_down(s, "refused");
	assert_string_equal(cairn_http_server_down(s), "refused");
	cairn_http_server_health(s, &hl);
	assert_int_equal(hl.state, CAIRN_HTTP_SERVER_DOWN);
	assert_string_equal(hl.down_reason, "refused");
	assert_true(hl.down_since > 0);
	cairn_http_server_mark_up(s);
	assert_null(cairn_http_server_down(s));
	cairn_http_server_health(s, &hl);
	assert_int_equal(hl.state, CAIRN_HTTP_SERVER_UP);
	assert_null(hl.down_reason);
	assert_int_equal(hl.down_since, 0);
	cairn_http_server_free(s);
	assert_string_equal(cairn_http_server_state_name(CAIRN_HTTP_SERVER_UP), "up");
	assert_string_equal(cairn_http_server_state_name(CAIRN_HTTP_SERVER_DOWN), "down");
	assert_string_equal(cairn_http_server_state_name(CAIRN_HTTP_SERVER_UNREACHABLE),
			    "unreachable");
	assert_string_equal(cairn_http_server_state_name(CAIRN_HTTP_SERVER_SILENT), "silent");
	assert_string_equal(cairn_http_server_state_name(CAIRN_HTTP_SERVER_SLOW), "slow");

	s = NULL;
	cairn_error_init(&err);
	assert_int_equal(cairn_http_server_new(&s, "ftp://x/", 0, &err), CAIRN_EINVAL);
	assert_null(s);
	assert_non_null(strstr(err.msg, "ftp://x/"));
	/* A local binary cache must be an absolute path that does not climb. */
	assert_int_equal(cairn_http_server_new(&s, "file:///srv/cache", 0, NULL), 0);
	cairn_http_server_free(s);
	s = NULL;
	assert_int_equal(cairn_http_server_new(&s, "file://srv/cache", 0, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_http_server_new(&s, "file:///srv/../etc", 0, NULL), CAIRN_EINVAL);
	assert_int_equal(cairn_http_server_new(&s, "file:///srv/%2e%2e", 0, NULL), CAIRN_EINVAL);
	assert_null(s);
	url = malloc(CAIRN_HTTP_URL_MAX + 2);
	assert_non_null(url);
	strcpy(url, "http://");
	memset(url + 7, 'a', CAIRN_HTTP_URL_MAX - 6);
	url[CAIRN_HTTP_URL_MAX + 1] = '\0';
	assert_int_equal(cairn_http_server_new(&s, url, 0, NULL), CAIRN_ELIMIT);
	free(url);
	assert_null(s);

	/* h2c: accepted exactly where libcurl can reuse it. */
	if (cairn_http_h2c_usable()) {
		assert_int_equal(cairn_http_server_new(&s, "http://127.0.0.1:1",
						       CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE, NULL),
				 0);
		cairn_http_server_free(s);
	} else {
		assert_int_equal(cairn_http_server_new(&s, "http://127.0.0.1:1",
						       CAIRN_HTTP_SERVER_H2_PRIOR_KNOWLEDGE, NULL),
				 CAIRN_EUNSUPPORTED);
	}
}

static void test_advice(void **state)
{
	static const struct {
		enum cairn_http_outcome o;
		long status;
		enum cairn_http_advice a;
	} t[] = {
	    {CAIRN_HTTP_OK, 200, CAIRN_HTTP_DONE},
	    {CAIRN_HTTP_NETWORK, 0, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_SHORT, 200, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_STALL, 200, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_STATUS, 500, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_STATUS, 503, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_STATUS, 429, CAIRN_HTTP_RETRY_RANGE},
	    {CAIRN_HTTP_STATUS, 404, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_STATUS, 403, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_STATUS, 302, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_CONNECT, 0, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_TIMEOUT, 200, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_TOO_LARGE, 200, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_ABORTED, 200, CAIRN_HTTP_GIVE_UP},
	    {CAIRN_HTTP_SILENT, 0, CAIRN_HTTP_NEXT_SERVER},
	    {CAIRN_HTTP_SLOW, 200, CAIRN_HTTP_NEXT_SERVER},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cairn_http_result r;
		memset(&r, 0, sizeof(r));
		r.outcome = t[i].o;
		r.status = t[i].status;
		assert_int_equal(cairn_http_advice(&r), t[i].a);
		assert_string_not_equal(cairn_http_outcome_name(t[i].o), "unknown");
	}
}

static int done_calls;
static void on_done(void *ctx, const struct cairn_http_result *res)
{
	done_calls++;
}

static void test_requests_offline(void **state)
{
	struct cairn_http_config cfg;
	struct cairn_http *h = NULL;
	struct cairn_http_server *s = NULL;
	struct cairn_http_request req;
	struct cairn_http_server_health hl;
	struct cairn_error err;

	cairn_http_config_init(&cfg);
	assert_int_equal(cfg.first_byte_timeout_ms, 5000);
	assert_int_equal(cfg.min_rate, 1024);
	assert_int_equal(cfg.min_rate_window_s, 10);
	assert_int_equal(cfg.slow_marks_down, 0);
	cfg.stall_timeout_s = 0;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	assert_null(h);
	cairn_http_config_init(&cfg);
	cfg.first_byte_timeout_ms = -1;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	cairn_http_config_init(&cfg);
	cfg.min_rate = -1;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	cairn_http_config_init(&cfg);
	cfg.min_rate = CAIRN_HTTP_MIN_RATE_MAX + 1;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	cairn_http_config_init(&cfg);
	cfg.min_rate_window_s = 0;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	cfg.min_rate_window_s = CAIRN_HTTP_RATE_WINDOW_MAX_S + 1;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), CAIRN_EINVAL);
	assert_null(h);
	/* Off: no window needed; no first-byte timeout. */
	cfg.min_rate = 0;
	cfg.min_rate_window_s = 0;
	cfg.first_byte_timeout_ms = 0;
	assert_int_equal(cairn_http_new(&h, &cfg, NULL), 0);
	cairn_http_free(h);
	h = NULL;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);

	memset(&req, 0, sizeof(req));
	req.url = "http://127.0.0.1:1/x";
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL); /* no on_done */
	req.on_done = on_done;
	req.url = "gopher://127.0.0.1/x";
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL);
	req.method = (enum cairn_http_method)7;
	req.url = "http://127.0.0.1:1/x";
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL);
	req.method = CAIRN_HTTP_GET;
	req.delay_ms = -1;
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL);
	req.delay_ms = CAIRN_HTTP_DELAY_MAX_MS + 1;
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL);
	req.delay_ms = 0;
	req.first_byte_timeout_ms = -5;
	assert_int_equal(cairn_http_add(h, &req, NULL), CAIRN_EINVAL);
	req.first_byte_timeout_ms = 0;

	/* A down server: refused at once, without on_done. */
	assert_int_equal(cairn_http_server_new(&s, "http://127.0.0.1:1", 0, NULL), 0);
	cairn_http_server_mark_down(s, "test");
	req.server = s;
	req.url = "nix-cache-info";
	cairn_error_init(&err);
	assert_int_equal(cairn_http_add(h, &req, &err), CAIRN_ENET);
	assert_non_null(strstr(err.msg, "is down: test"));

	/* Queued, then the server goes down before the step: on_done says
	 * so without touching the network. */
	cairn_http_server_mark_up(s);
	assert_int_equal(cairn_http_add(h, &req, NULL), 0);
	cairn_http_server_mark_down(s, "meanwhile");
	assert_int_equal(cairn_http_step(h, 0, NULL), 0);
	assert_int_equal(done_calls, 1);

	/* Nothing to do: step and run return at once. */
	assert_int_equal(cairn_http_step(h, 100, NULL), 0);
	assert_int_equal(cairn_http_run(h, NULL), 0);

	/* Delayed by an hour: queued, not started, still pending after a
	 * step; when its server goes down it ends at the next step, without
	 * waiting out the delay. */
	cairn_http_server_mark_up(s);
	req.delay_ms = 3600 * 1000;
	assert_int_equal(cairn_http_add(h, &req, NULL), 0);
	assert_int_equal(cairn_http_step(h, 0, NULL), 1);
	assert_int_equal(done_calls, 1);
	cairn_http_server_mark_down(s, "meanwhile");
	assert_int_equal(cairn_http_step(h, 0, NULL), 0);
	assert_int_equal(done_calls, 2);
	req.delay_ms = 0;
	cairn_http_server_health(s, &hl);
	/* Both ended without a connection attempt: counted, but not as
	 * unreachable. */
	assert_int_equal(hl.requests, 2);
	assert_int_equal(hl.unreachable, 0);

	/* Freeing with requests still queued does not call on_done. */
	cairn_http_server_mark_up(s);
	assert_int_equal(cairn_http_add(h, &req, NULL), 0);
	cairn_http_free(h);
	assert_int_equal(done_calls, 2);
	cairn_http_server_free(s);
}

/* ---- the minimum-rate window, on made-up clocks ---------------------------- */

#define RNEED 1000 /* 1000 bytes/s over 1 s */
#define RWIN 1000

static void test_rate_trickle(void **state)
{
	struct cairn_http__rate r;

	/* 10 bytes every 100 ms: slow exactly one window after the start,
	 * and the message counts the 100 bytes of that window. */
	cairn_http__rate_start(&r, 0, RNEED, RWIN);
	for (int64_t t = 100; t <= 1000; t += 100) {
		assert_false(cairn_http__rate_slow(&r, t - 1));
		cairn_http__rate_add(&r, t, 10);
	}
	assert_int_equal(cairn_http__rate_due(&r), 1000);
	assert_true(cairn_http__rate_slow(&r, 1000));
	assert_int_equal(cairn_http__rate_in_window(&r, 1000), 100);

	/* Fast, then a byte every 100 ms: slow one window after the fast
	 * part, with the 10 trickled bytes in the window. */
	cairn_http__rate_start(&r, 0, RNEED, RWIN);
	cairn_http__rate_add(&r, 10, 100000);
	for (int64_t t = 110; t <= 1010; t += 100)
		cairn_http__rate_add(&r, t, 1);
	assert_int_equal(cairn_http__rate_due(&r), 1010);
	assert_false(cairn_http__rate_slow(&r, 1009));
	assert_true(cairn_http__rate_slow(&r, 1010));
	assert_int_equal(cairn_http__rate_in_window(&r, 1010), 10);
}

static void test_rate_silence(void **state)
{
	struct cairn_http__rate r;

	/* Nothing at all: never slow (the first-byte and stall timeouts'). */
	cairn_http__rate_start(&r, 0, RNEED, RWIN);
	assert_int_equal(cairn_http__rate_due(&r), INT64_MAX);
	assert_false(cairn_http__rate_slow(&r, 100000));

	/* Fast, then silent: never slow either. */
	cairn_http__rate_add(&r, 10, 100000);
	assert_int_equal(cairn_http__rate_due(&r), INT64_MAX);
	assert_false(cairn_http__rate_slow(&r, 100000));

	/* A little, then silent: slow while those bytes are in the window,
	 * silence (not slow) once they have left it. */
	cairn_http__rate_start(&r, 0, RNEED, RWIN);
	cairn_http__rate_add(&r, 100, 10);
	cairn_http__rate_add(&r, 200, 10);
	assert_false(cairn_http__rate_slow(&r, 999));
	assert_true(cairn_http__rate_slow(&r, 1000));
	assert_true(cairn_http__rate_slow(&r, 1199));
	assert_false(cairn_http__rate_slow(&r, 1200));
}

static void test_rate_steady(void **state)
{
	struct cairn_http__rate r;

	/* Exactly the minimum, 100 bytes every 100 ms, for a minute: never
	 * slow; one arrival 1 ms late makes it slow for that 1 ms. */
	cairn_http__rate_start(&r, 0, RNEED, RWIN);
	for (int64_t t = 1; t <= 60000; t++) {
		if (t % 100 == 0)
			cairn_http__rate_add(&r, t, 100);
		assert_false(cairn_http__rate_slow(&r, t));
		assert_true(cairn_http__rate_due(&r) > t);
	}
	assert_true(cairn_http__rate_slow(&r, 60100));
	assert_int_equal(cairn_http__rate_in_window(&r, 60100), 900);
	cairn_http__rate_add(&r, 60101, 100);
	assert_false(cairn_http__rate_slow(&r, 60101));

	/* More arrivals than slots within one window (a byte every 5 ms,
	 * need never met): still slow exactly one window after the start. */
	cairn_http__rate_start(&r, 0, 1000000, RWIN);
	for (int64_t t = 5; t < 1000; t += 5)
		cairn_http__rate_add(&r, t, 1);
	assert_false(cairn_http__rate_slow(&r, 999));
	assert_true(cairn_http__rate_slow(&r, 1000));
}

/* Random arrivals against the rule computed exactly from every arrival:
 * the slots never say slow when the exact rule does not, and say it at
 * most one slot's span (window / 62) after it does. */
static void test_rate_random(void **state)
{
	enum { T = 30000 };
	static uint64_t cum[T + 1]; /* bytes received up to and including ms t */
	struct cairn_http__rate r;
	uint32_t seed = 12345;
	int64_t gran = RWIN / (CAIRN_HTTP__RATE_SLOTS - 2);
	int fired = 0, late = 0;

	for (int round = 0; round < 4; round++) {
		int exact_since = -1;
		cairn_http__rate_start(&r, 0, RNEED, RWIN);
		cum[0] = 0;
		for (int t = 1; t <= T; t++) {
			uint64_t n = 0;
			/* Phases of 3 s: fast, trickling, silent, bursty. */
			int phase = (t / 3000 + round) % 4;
			seed = seed * 1103515245u + 12345u;
			uint32_t v = (seed >> 8) % 1000;
			if (phase == 0 && v < 500)
				n = 1 + v % 50;
			else if (phase == 1 && v < 20)
				n = 1 + v % 5;
			else if (phase == 3 && v < 3)
				n = 200 + v * 100;
			cum[t] = cum[t - 1] + n;
			if (n)
				cairn_http__rate_add(&r, t, n);
			uint64_t in = cum[t] - (t >= RWIN ? cum[t - RWIN] : 0);
			int exact = t >= RWIN && in > 0 && in < RNEED;
			int slots = cairn_http__rate_slow(&r, t);
			if (slots) {
				assert_true(exact);
				assert_true(cairn_http__rate_in_window(&r, t) >= in);
				fired++;
			}
			if (!exact)
				exact_since = -1;
			else if (exact_since < 0)
				exact_since = t;
			/* Slow by the exact rule for longer than a slot's
			 * span: the slots must say so too. */
			if (exact && t - exact_since > gran && !slots)
				late++;
		}
	}
	assert_true(fired > 0);
	assert_int_equal(late, 0);
}

static bool stop_now(void *ctx)
{
	(*(int *)ctx)++;
	return true;
}

/* One request waited for: the body into a buffer, bounded; the caller's
 * own on_data; a 404 with its status; a stop. file:// needs no server. */
static void test_wait_one(void **state)
{
	(void)state;
	char dir[] = "/tmp/cairn-test-http.XXXXXX", path[128], url[160];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/doc", dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("StoreDir: /nix/store\n", fp);
	fclose(fp);
	snprintf(url, sizeof(url), "file://%s", dir);
	struct cairn_http *h = NULL;
	struct cairn_http_server *srv = NULL;
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	assert_int_equal(cairn_http_server_new(&srv, url, 0, NULL), 0);

	struct cairn_buf body = CAIRN_BUF_INIT(1024);
	struct cairn_http_request rq = {.method = CAIRN_HTTP_GET, .server = srv, .url = "doc"};
	struct cairn_http_one one;
	struct cairn_error err;
	cairn_error_init(&err);
	assert_int_equal(cairn_http_wait_one(h, &rq, &body, NULL, NULL, &one, &err), 0);
	assert_int_equal(body.len, 21);
	assert_memory_equal(body.data, "StoreDir: /nix/store\n", 21);
	assert_int_equal(one.bytes, 21);

	struct cairn_buf small = CAIRN_BUF_INIT(4);
	assert_int_equal(cairn_http_wait_one(h, &rq, &small, NULL, NULL, &one, &err), CAIRN_ELIMIT);
	assert_non_null(strstr(cairn_error_msg(&err), "larger than 4 bytes"));
	cairn_buf_release(&small);

	rq.url = "absent";
	cairn_buf_reset(&body);
	cairn_error_init(&err);
	assert_int_equal(cairn_http_wait_one(h, &rq, &body, NULL, NULL, &one, &err), CAIRN_ENOENT);
	assert_int_equal(one.status, 404);
	assert_non_null(strstr(cairn_error_msg(&err), "absent"));
	cairn_buf_release(&body);

	/* a stop while the request waits out its delay: it stays queued in
	 * h, which is freed without calling back into this frame */
	int polled = 0;
	rq.url = "doc";
	rq.delay_ms = 5000;
	assert_int_equal(cairn_http_wait_one(h, &rq, NULL, stop_now, &polled, &one, &err),
			 CAIRN_ECANCELED);
	assert_int_equal(polled, 1);
	cairn_http_free(h);
	cairn_http_server_free(srv);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cache_info),	     cmocka_unit_test(test_cache_info_bounds),
	    cmocka_unit_test(test_cache_info_drop),
	    cmocka_unit_test(test_headers),	     cmocka_unit_test(test_headers_hostile),
	    cmocka_unit_test(test_servers),	     cmocka_unit_test(test_advice),
	    cmocka_unit_test(test_requests_offline), cmocka_unit_test(test_rate_trickle),
	    cmocka_unit_test(test_rate_silence),     cmocka_unit_test(test_rate_steady),
	    cmocka_unit_test(test_rate_random),      cmocka_unit_test(test_wait_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
