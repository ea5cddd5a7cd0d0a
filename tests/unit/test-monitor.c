/* The monitor's verdict rules (monitor.h) as a table of cases, its
 * database layer (lib/monitor-db.c), and the escapes of its pages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cairn/escape.h"

#include "cairn/cairn.h"
#include "cairn/hash.h"
#include "cairn/keys.h"
#include "cairn/monitor.h"
#include "cairn/nar-diff.h"
#include "cairn/sign.h"
#include "cairn/http.h"
#include "cairn/survey.h"
#include "vecutil.h"
#include "../../lib/monitor-int.h"

#define H1 "sha256:0cbj5m7kpn64l2f08qcs3d5a5w9gkg8l2rkc49257d8244lri1d6"
#define H2 "sha256:0yjj2midsychhj9rk22w8gh826lnbybv4iyj1dm9m8wlzyx1rs4p"
#define R1 "6rpbsa1ix05i5cmar0xh7fw9cyms2476-toolvec-2.1"

enum { P = CAIRN_MONITOR_PRESENT, G = CAIRN_MONITOR_GONE, X = CAIRN_MONITOR_BROKEN };
enum {
	OK = CAIRN_MONITOR_SIG_VALID,
	NO = CAIRN_MONITOR_SIG_UNSIGNED,
	BAD = CAIRN_MONITOR_SIG_INVALID,
	UNT = CAIRN_MONITOR_SIG_UNTRUSTED
};

struct vcase {
	const char *name;
	size_t n;
	struct cairn_monitor_obs obs[4];
	enum cairn_monitor_verdict want;
};

#define O(st, sg, h, sz, r) {(enum cairn_monitor_state)(st), (enum cairn_monitor_sig)(sg), h, sz, r}

static const struct vcase cases[] = {
	{"nobody answered", 0, {{0}}, CAIRN_MONITOR_ABSENT},
	{"every server says absent", 2, {O(G, NO, NULL, 0, NULL), O(G, NO, NULL, 0, NULL)},
	 CAIRN_MONITOR_ABSENT},
	{"two signed, same claim", 2, {O(P, OK, H1, 10, R1), O(P, OK, H1, 10, R1)},
	 CAIRN_MONITOR_AGREE},
	{"one signed one unsigned, same claim", 2, {O(P, OK, H1, 10, R1), O(P, NO, H1, 10, R1)},
	 CAIRN_MONITOR_AGREE},
	{"two unsigned, same claim", 2, {O(P, NO, H1, 10, R1), O(P, UNT, H1, 10, R1)},
	 CAIRN_MONITOR_UNSIGNED},
	{"NarHash differs", 2, {O(P, OK, H1, 10, R1), O(P, OK, H2, 10, R1)},
	 CAIRN_MONITOR_DIFFERS},
	{"NarSize differs", 2, {O(P, OK, H1, 10, R1), O(P, OK, H1, 11, R1)},
	 CAIRN_MONITOR_DIFFERS},
	{"References differ", 2, {O(P, OK, H1, 10, R1), O(P, OK, H1, 10, "")},
	 CAIRN_MONITOR_DIFFERS},
	{"differs even unsigned", 2, {O(P, NO, H1, 10, R1), O(P, NO, H2, 10, R1)},
	 CAIRN_MONITOR_DIFFERS},
	{"differs beats an invalid signature", 3,
	 {O(P, OK, H1, 10, R1), O(P, BAD, H1, 10, R1), O(P, OK, H2, 10, R1)},
	 CAIRN_MONITOR_DIFFERS},
	{"only one has it", 2, {O(P, OK, H1, 10, R1), O(G, NO, NULL, 0, NULL)},
	 CAIRN_MONITOR_ONLY_ONE},
	{"only one has it, unsigned", 2, {O(G, NO, NULL, 0, NULL), O(P, NO, H1, 10, R1)},
	 CAIRN_MONITOR_ONLY_ONE},
	{"a trusted key's signature fails", 2, {O(P, OK, H1, 10, R1), O(P, BAD, H1, 10, R1)},
	 CAIRN_MONITOR_INVALID},
	{"a broken narinfo", 2, {O(P, OK, H1, 10, R1), O(X, NO, NULL, 0, NULL)},
	 CAIRN_MONITOR_INVALID},
	{"a broken narinfo alone", 1, {O(X, NO, NULL, 0, NULL)}, CAIRN_MONITOR_INVALID},
	{"absent ones do not count", 4,
	 {O(G, NO, NULL, 0, NULL), O(P, OK, H1, 10, R1), O(G, NO, NULL, 0, NULL),
	  O(P, OK, H1, 10, R1)},
	 CAIRN_MONITOR_AGREE},
};

static void test_verdicts(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum cairn_monitor_verdict v = cairn_monitor_decide(cases[i].obs, cases[i].n);
		if (v != cases[i].want)
			fail_msg("%s: %s, want %s", cases[i].name, cairn_monitor_verdict_name(v),
				 cairn_monitor_verdict_name(cases[i].want));
	}
}

static void test_names(void **state)
{
	(void)state;
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++) {
		const char *n = cairn_monitor_verdict_name(v);
		assert_int_equal(cairn_monitor_verdict_parse(n, strlen(n)), v);
	}
	assert_int_equal(cairn_monitor_verdict_parse("differ", 6), CAIRN_EFORMAT);
	assert_int_equal(cairn_monitor_verdict_parse("differsx", 8), CAIRN_EFORMAT);
	assert_int_equal(cairn_monitor_sig_of(0), CAIRN_MONITOR_SIG_VALID);
	assert_int_equal(cairn_monitor_sig_of(CAIRN_ENOSIG), CAIRN_MONITOR_SIG_UNSIGNED);
	assert_int_equal(cairn_monitor_sig_of(CAIRN_EUNTRUSTED), CAIRN_MONITOR_SIG_UNTRUSTED);
	assert_int_equal(cairn_monitor_sig_of(CAIRN_ESIG), CAIRN_MONITOR_SIG_INVALID);
	assert_int_equal(cairn_monitor_sig_of(CAIRN_ESIGCORRUPT), CAIRN_MONITOR_SIG_INVALID);
}

static char dir[] = "/tmp/cairn-test-monitor.XXXXXX";
static char db_path[256];

static int64_t history_rows(struct mon_db *d, int64_t item)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	assert_int_equal(mon_db_prepare(d, "SELECT count(*) FROM history WHERE item = ?", &st, NULL),
			 0);
	sqlite3_bind_int64(st, 1, item);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int64_t count_of(struct mon_db *d, const char *sql, int64_t arg)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	assert_int_equal(mon_db_prepare(d, sql, &st, NULL), 0);
	sqlite3_bind_int64(st, 1, arg);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The counters the overview reads say what counting the rows says. */
static void assert_counters(struct mon_db *d, int64_t s1, int64_t s2)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_];
	/* as the observer does before each commit */
	assert_int_equal(
	    mon_db_trends(d, count_of(d, "SELECT coalesce(max(last_seen), 0) FROM obs", 0), NULL),
	    0);
	assert_int_equal(mon_db_verdict_counts(d, n, NULL), 0);
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++) {
		assert_int_equal(n[v], count_of(d, "SELECT count(*) FROM items WHERE verdict = ?", v));
		/* the day's trend row, once there is one, holds the count (but for
		 * pruned absent items: a prune is no change of verdict) */
		int64_t t = count_of(d, "SELECT coalesce((SELECT n FROM verdict_trend WHERE verdict = ?"
				     " ORDER BY day DESC LIMIT 1), -1)", v);
		if (v != CAIRN_MONITOR_ABSENT && t >= 0)
			assert_int_equal(t, n[v]);
	}
	for (int k = 0; k < 2; k++) {
		int64_t s = k ? s2 : s1;
		assert_int_equal(
			count_of(d, "SELECT coalesce(sum(present), 0) FROM server_counts WHERE server = ?",
				 s),
			count_of(d, "SELECT count(*) FROM obs WHERE server = ? AND state = 1", s));
	}
	/* the pair (s1, s2): items both have, items they agree on */
	assert_true(s1 < s2);
	assert_int_equal(
		count_of(d, "SELECT coalesce(sum(both_have), 0) FROM pair_counts WHERE a = ?", s1),
		count_of(d, "SELECT count(*) FROM obs x JOIN obs y ON y.item = x.item AND y.server > x.server"
			    " WHERE x.state = 1 AND y.state = 1 AND x.server = ?", s1));
	assert_int_equal(
		count_of(d, "SELECT coalesce(sum(agree), 0) FROM pair_counts WHERE a = ?", s1),
		count_of(d, "SELECT count(*) FROM obs x JOIN obs y ON y.item = x.item AND y.server > x.server"
			    " WHERE x.state = 1 AND y.state = 1 AND x.nar_hash = y.nar_hash"
			    " AND x.nar_size = y.nar_size AND x.refs = y.refs AND x.server = ?", s1));
	/* and the day's trend row says the same */
	assert_int_equal(
		count_of(d, "SELECT coalesce(sum(agree), 0) FROM pair_counts WHERE a = ?", s1),
		count_of(d, "SELECT coalesce((SELECT agree FROM pair_trend WHERE a = ?"
			    " ORDER BY day DESC LIMIT 1), 0)", s1));
}

static void test_db(void **state)
{
	(void)state;
	struct mon_db *d, *r;
	struct cairn_error err;
	int64_t s1, s2, s1again, item, item2;
	enum cairn_monitor_verdict v;
	bool changed;
	const char *hash = "x6b6ah9iya8w14wv5fzzwj36lf2yyghw";
	const char *path = "/nix/store/x6b6ah9iya8w14wv5fzzwj36lf2yyghw-appvec-3.0";
	struct mon_obs_in p1 = {.state = CAIRN_MONITOR_PRESENT, .sig = CAIRN_MONITOR_SIG_VALID,
				.nar_hash = H1, .nar_size = 10, .refs = R1,
				.narinfo = "StorePath: x\n", .narinfo_len = 13};
	struct mon_obs_in p2 = p1;
	p2.nar_hash = H2;

	cairn_error_init(&err);
	snprintf(db_path, sizeof(db_path), "%s/m.sqlite", dir);
	assert_int_equal(mon_db_open(&d, db_path, true, &err), 0);
	assert_int_equal(mon_db_server(d, "http://a", &s1, &err), 0);
	assert_int_equal(mon_db_server(d, "http://b", &s2, &err), 0);
	assert_int_equal(mon_db_server(d, "http://a", &s1again, &err), 0);
	assert_int_equal(s1, s1again);
	assert_true(s1 != s2);

	assert_int_equal(mon_db_item(d, hash, path, 100, &item, &err), 0);
	assert_int_equal(mon_db_item(d, hash, path, 200, &item2, &err), 0);
	assert_int_equal(item, item2);
	assert_counters(d, s1, s2);

	/* one server: only-one, a change */
	assert_int_equal(mon_db_observe(d, item, s1, &p1, 100, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 100, &v, &changed, &err), 0);
	assert_int_equal(v, CAIRN_MONITOR_ONLY_ONE);
	assert_true(changed);
	assert_counters(d, s1, s2);
	/* the second agrees */
	assert_int_equal(mon_db_observe(d, item, s2, &p1, 110, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 110, &v, &changed, &err), 0);
	assert_int_equal(v, CAIRN_MONITOR_AGREE);
	assert_true(changed);
	assert_counters(d, s1, s2);
	/* asked again, same answers: no change, no history row */
	assert_int_equal(mon_db_observe(d, item, s2, &p1, 120, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 120, &v, &changed, &err), 0);
	assert_false(changed);
	assert_int_equal(history_rows(d, item), 2);
	/* then it differs: a diff to do */
	assert_int_equal(mon_db_observe(d, item, s2, &p2, 130, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 130, &v, &changed, &err), 0);
	assert_int_equal(v, CAIRN_MONITOR_DIFFERS);
	assert_true(changed);
	assert_counters(d, s1, s2);
	int64_t ids[4];
	char *paths[4];
	size_t n;
	assert_int_equal(mon_db_diff_todo(d, 4, ids, paths, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ids[0], item);
	assert_string_equal(paths[0], path);
	free(paths[0]);
	struct mon_file fa = {.type = "regular", .size = 3, .sha256 = "ab"};
	struct mon_file fb = {.type = "regular", .size = 4, .sha256 = "cd"};
	assert_int_equal(mon_db_diff_put(d, item, s1, s2, "stamp", "content", &fa, &fb, &err), 0);
	assert_int_equal(mon_db_diff_done(d, item, MON_DIFF_DONE, NULL, &err), 0);
	assert_int_equal(mon_db_diff_todo(d, 4, ids, paths, &n, &err), 0);
	assert_int_equal(n, 0);
	/* a diff done is not retried; a failed one is, MON_DIFF_TRIES in all */
	assert_int_equal(mon_db_diff_retry(d, MON_DIFF_TRIES, &err), 0);
	assert_int_equal(mon_db_diff_todo(d, 4, ids, paths, &n, &err), 0);
	assert_int_equal(n, 0);
	for (int t = 2; t <= MON_DIFF_TRIES; t++) {
		assert_int_equal(mon_db_diff_done(d, item, MON_DIFF_FAILED, "gone", &err), 0);
		assert_int_equal(mon_db_diff_retry(d, MON_DIFF_TRIES, &err), 0);
		assert_int_equal(mon_db_diff_todo(d, 4, ids, paths, &n, &err), 0);
		/* tries so far: the done one and t - 1 failed ones */
		assert_int_equal(n, t < MON_DIFF_TRIES ? 1 : 0);
		for (size_t k = 0; k < n; k++)
			free(paths[k]);
	}
	assert_int_equal(count_of(d, "SELECT diff_tries FROM items WHERE id = ?", item),
			 MON_DIFF_TRIES);
	/* the claims change (agree, then differ anew): tried from scratch */
	assert_int_equal(mon_db_observe(d, item, s2, &p1, 140, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 140, &v, &changed, &err), 0);
	assert_int_equal(mon_db_observe(d, item, s2, &p2, 150, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 150, &v, &changed, &err), 0);
	assert_int_equal(count_of(d, "SELECT diff_tries FROM items WHERE id = ?", item), 0);
	assert_int_equal(mon_db_diff_todo(d, 4, ids, paths, &n, &err), 0);
	assert_int_equal(n, 1);
	free(paths[0]);
	assert_int_equal(mon_db_diff_done(d, item, MON_DIFF_DONE, NULL, &err), 0);

	/* the pages' connection sees it, paginated by key */
	assert_int_equal(mon_db_open(&r, db_path, false, &err), 0);
	mon_db_close(r);
	mon_db_close(d);

	/* reopened: history kept (only-one, agree, differs, agree, differs), no
	 * second schema */
	assert_int_equal(mon_db_open(&d, db_path, true, &err), 0);
	assert_int_equal(history_rows(d, item), 5);
	char got[512];
	assert_int_equal(mon_db_path_of(d, hash, got, sizeof(got), &err), 0);
	assert_string_equal(got, path);
	assert_int_equal(mon_db_path_of(d, "00000000000000000000000000000000", got, sizeof(got), &err),
			 CAIRN_ENOENT);

	/* gone everywhere, and pruned after the retention */
	struct mon_obs_in gone = {.state = CAIRN_MONITOR_GONE, .sig = CAIRN_MONITOR_SIG_UNSIGNED};
	assert_int_equal(mon_db_observe(d, item, s1, &gone, 200, &err), 0);
	assert_int_equal(mon_db_observe(d, item, s2, &gone, 200, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 200, &v, &changed, &err), 0);
	assert_int_equal(v, CAIRN_MONITOR_ABSENT);
	assert_counters(d, s1, s2);
	assert_int_equal(mon_db_prune(d, 1000, 1100, &err), 0);
	assert_int_equal(mon_db_path_of(d, hash, got, sizeof(got), &err), 0);
	assert_int_equal(mon_db_prune(d, 1000, 1300, &err), 0);
	assert_int_equal(mon_db_path_of(d, hash, got, sizeof(got), &err), CAIRN_ENOENT);
	assert_int_equal(history_rows(d, item), 0);
	assert_counters(d, s1, s2);

	/* one server given twice (a trailing slash apart) would agree with
	 * itself: refused */
	{
		struct cairn_monitor *mon = NULL;
		struct cairn_monitor_config cfg;
		struct cairn_keyring none = CAIRN_KEYRING_INIT;
		const char *twice[] = {"http://a/", "http://a"};
		cairn_monitor_config_init(&cfg);
		cfg.servers = twice;
		cfg.n_servers = 2;
		cfg.db_path = db_path;
		cfg.kr = &none;
		assert_int_equal(cairn_monitor_new(&mon, &cfg, &err), CAIRN_EINVAL);
		assert_non_null(strstr(cairn_error_msg(&err), "given twice"));
		cfg.n_servers = 1;
		assert_int_equal(cairn_monitor_new(&mon, &cfg, &err), 0);
		cairn_monitor_free(mon);
	}

	/* a database from a newer cairn is refused */
	assert_int_equal(mon_db_exec(d, "PRAGMA user_version = 99", &err), 0);
	mon_db_close(d);
	assert_int_equal(mon_db_open(&d, db_path, true, &err), CAIRN_EUNSUPPORTED);
	unlink(db_path);
}

/* A version 1 database (no counters, no diff_tries): opened by this
 * version, it is upgraded in place and its counters count what is there. */
static void test_db_upgrade(void **state)
{
	(void)state;
	struct mon_db *d;
	struct cairn_error err;
	int64_t s1, s2, item;
	enum cairn_monitor_verdict v;
	bool changed;
	struct mon_obs_in p1 = {.state = CAIRN_MONITOR_PRESENT, .sig = CAIRN_MONITOR_SIG_VALID,
				.nar_hash = H1, .nar_size = 10, .refs = R1};
	struct mon_obs_in p2 = p1;
	p2.nar_hash = H2;
	const char *hashes[] = {"x6b6ah9iya8w14wv5fzzwj36lf2yyghw", "0c2kjfd3r4m7l3plfa1cv2l3bsddbl3r",
				"5b1rb7d3pr6lzjb4b0mcagfw3rmc9blc"};

	cairn_error_init(&err);
	snprintf(db_path, sizeof(db_path), "%s/v1.sqlite", dir);
	assert_int_equal(mon_db_open(&d, db_path, true, &err), 0);
	assert_int_equal(mon_db_server(d, "http://a", &s1, &err), 0);
	assert_int_equal(mon_db_server(d, "http://b", &s2, &err), 0);
	for (int i = 0; i < 3; i++) {
		char path[128];
		snprintf(path, sizeof(path), "/nix/store/%s-x", hashes[i]);
		assert_int_equal(mon_db_item(d, hashes[i], path, 100, &item, &err), 0);
		assert_int_equal(mon_db_observe(d, item, s1, &p1, 100, &err), 0);
		if (i > 0)
			assert_int_equal(mon_db_observe(d, item, s2, i == 1 ? &p1 : &p2, 100, &err), 0);
		assert_int_equal(mon_db_settle(d, item, 100, &v, &changed, &err), 0);
	}
	/* back to what version 1 had */
	assert_int_equal(
		mon_db_exec(d,
			    "DROP TRIGGER items_count_ins; DROP TRIGGER items_count_del;"
			    " DROP TRIGGER items_count_upd; DROP TRIGGER obs_count_ins;"
			    " DROP TRIGGER obs_count_del; DROP TRIGGER obs_count_came;"
			    " DROP TRIGGER obs_count_went; DROP TRIGGER obs_pair_ins;"
			    " DROP TRIGGER obs_pair_del; DROP TRIGGER obs_pair_upd;"
			    " DROP TABLE verdict_counts; DROP TABLE server_counts;"
			    " DROP TABLE pair_counts; DROP TABLE pair_trend; DROP TABLE verdict_trend;"
			    " DROP TABLE peer_logs; ALTER TABLE items DROP COLUMN diff_tries;"
			    " PRAGMA user_version = 1;",
			    &err),
		0);
	mon_db_close(d);
	assert_int_equal(mon_db_open(&d, db_path, true, &err), 0);
	assert_int_equal(count_of(d, "PRAGMA user_version", 0), MON_SCHEMA_VERSION);
	/* version 4: no trigger writes a trend row (mon_db_trends does) */
	assert_int_equal(count_of(d, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
				     " AND sql LIKE '%trend%'", 0),
			 0);
	assert_int_equal(count_of(d, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
				  0),
			 10);
	assert_counters(d, s1, s2);
	/* two items on both servers, one agreed on */
	assert_int_equal(count_of(d, "SELECT both_have FROM pair_counts WHERE a = ?", s1), 2);
	assert_int_equal(count_of(d, "SELECT agree FROM pair_counts WHERE a = ?", s1), 1);
	/* and kept from then on */
	assert_int_equal(mon_db_observe(d, item, s2, &p1, 200, &err), 0);
	assert_int_equal(mon_db_settle(d, item, 200, &v, &changed, &err), 0);
	assert_int_equal(v, CAIRN_MONITOR_AGREE);
	assert_counters(d, s1, s2);
	mon_db_close(d);
	unlink(db_path);
}

static void test_escapes(void **state)
{
	(void)state;
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	char out[64];
	assert_int_equal(cairn_html_cstr(&b, "<a href=\"x\">'&'</a>\xff"), 0);
	assert_string_equal(b.data,
			    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;&#xfffd;");
	cairn_buf_reset(&b);
	assert_int_equal(cairn_json_str_html_safe(&b, "\"\\\n<\xff\xc3\xa9", 7), 0);
	assert_string_equal(b.data, "\"\\\"\\\\\\n\\u003c\xef\xbf\xbd\xc3\xa9\"");
	cairn_buf_release(&b);

	const char *q = "verdict=differs&cursor=12.34&x=a%3Cb+c";
	assert_string_equal(mon_query_get(q, strlen(q), "verdict", out, sizeof(out)), "differs");
	assert_string_equal(mon_query_get(q, strlen(q), "x", out, sizeof(out)), "a<b c");
	assert_null(mon_query_get(q, strlen(q), "verd", out, sizeof(out)));
	struct mon_cursor c;
	assert_int_equal(mon_cursor_parse("12.34", &c), 0);
	assert_int_equal(c.since, 12);
	assert_int_equal(c.id, 34);
	assert_int_equal(mon_cursor_parse("12", &c), CAIRN_EFORMAT);
	assert_int_equal(mon_cursor_parse("12.x", &c), CAIRN_EFORMAT);
	assert_true(mon_hash_ok("x6b6ah9iya8w14wv5fzzwj36lf2yyghw", 32));
	assert_false(mon_hash_ok("x6b6ah9iya8w14wv5fzzwj36lf2yyghe", 32)); /* 'e' is not nix32 */
	assert_false(mon_hash_ok("x6b6ah9iya8w14wv5fzzwj36lf2yygh", 31));
}

/* A log over body (the obs lines), signed by sk (NULL: unsigned), with
 * the count given (a wrong one to test the check). */
static char *make_log(const char *body, unsigned count, const struct cairn_nix_seckey *sk)
{
	struct cairn_buf b = CAIRN_BUF_INIT(1 << 20);
	uint8_t sha[32];
	char hex[65], stmt[200];
	const char *id = "0123456789abcdef0123456789abcdef";
	cairn_buf_printf(&b, "cairn-monitor-log 1\nmonitor %s\n%s", id, body);
	cairn_sha256(b.data, b.len, sha);
	cairn_base16_encode(sha, 32, hex);
	hex[64] = '\0';
	snprintf(stmt, sizeof(stmt), "cairn-monitor-log 1;%s;%u;%s", id, count, hex);
	cairn_buf_printf(&b, "end %u %s\n", count, hex);
	if (sk) {
		cairn_buf_puts(&b, "sig nix ");
		assert_int_equal(cairn_nix_sign(sk, stmt, strlen(stmt), &b, NULL), 0);
		cairn_buf_putc(&b, '\n');
	}
	return b.data;
}

static int count_entries(void *ctx, const struct cairn_monitor_log_entry *e)
{
	(*(int *)ctx)++;
	assert_true(strcmp(e->state, "present") == 0 || strcmp(e->state, "absent") == 0);
	return 0;
}

static void test_log(void **state)
{
	(void)state;
	struct cairn_nix_seckey sk, other;
	struct cairn_nix_pubkey pk, opk;
	struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	struct cairn_monitor_log_head h;
	char *t;
	int seen = 0;
	const char *body = "obs 1 100 http://a x6b6ah9iya8w14wv5fzzwj36lf2yyghw present " H1 " 10\n"
			   "obs 2 101 http://b x6b6ah9iya8w14wv5fzzwj36lf2yyghw absent - 0\n";
	assert_int_equal(cairn_nix_key_generate("mon-1", &sk, NULL), 0);
	assert_int_equal(cairn_nix_key_generate("mon-2", &other, NULL), 0);
	cairn_nix_seckey_public(&sk, &pk);
	cairn_nix_seckey_public(&other, &opk);
	assert_int_equal(cairn_keyring_add_nix(&kr, &pk, NULL), 0);

	t = make_log(body, 2, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, count_entries, &seen,
						  NULL),
			 0);
	assert_int_equal(h.count, 2);
	assert_int_equal(h.base, 0);
	assert_int_equal(seen, 2);
	assert_string_equal(h.monitor, "0123456789abcdef0123456789abcdef");
	/* a record changed after signing */
	t[strlen("cairn-monitor-log 1\nmonitor 0123456789abcdef0123456789abcdef\nobs 1 1")] = '9';
	seen = 0;
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, count_entries, &seen,
						  NULL),
			 CAIRN_EHASH);
	assert_int_equal(seen, 0); /* nothing of a refused log reaches the caller */
	free(t);

	t = make_log(body, 2, NULL);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_ENOSIG);
	free(t);
	t = make_log(body, 2, &other);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EUNTRUSTED);
	free(t);
	t = make_log(body, 3, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	t = make_log("obs 2 100 http://a x6b6ah9iya8w14wv5fzzwj36lf2yyghw absent - 0\n"
		     "obs 1 100 http://a x6b6ah9iya8w14wv5fzzwj36lf2yyghw absent - 0\n",
		     2, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	t = make_log("obs 1 100 http://a <script> absent - 0\n", 1, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	t = make_log("obs 1 100 http://a x6b6ah9iya8w14wv5fzzwj36lf2yyghw absent - 0 extra\n", 1,
		     &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);

	/* a pruned log: its base carries the chained digest of the records
	 * dropped, so the chain over the whole history comes out the same */
	uint8_t full[32] = {0}, part[32];
	struct cairn_monitor_log_entry e1 = {1, 100, "http://a", "x6b6ah9iya8w14wv5fzzwj36lf2yyghw",
					     "present", H1, 10};
	struct cairn_monitor_log_entry e2 = {2, 101, "http://b", "x6b6ah9iya8w14wv5fzzwj36lf2yyghw",
					     "absent", "-", 0};
	struct cairn_monitor_log_entry e3 = {3, 102, "http://b", "x6b6ah9iya8w14wv5fzzwj36lf2yyghw",
					     "present", H1, 10};
	assert_int_equal(cairn_monitor_log_chain(full, &e1), 0);
	assert_int_equal(cairn_monitor_log_chain(full, &e2), 0);
	memcpy(part, full, 32);
	assert_int_equal(cairn_monitor_log_chain(full, &e3), 0);
	char bhex[65], rotated[400];
	cairn_base16_encode(part, 32, bhex);
	bhex[64] = '\0';
	snprintf(rotated, sizeof(rotated),
		 "base 2 %s\nobs 3 102 http://b x6b6ah9iya8w14wv5fzzwj36lf2yyghw present " H1 " 10\n",
		 bhex);
	t = make_log(rotated, 1, &sk);
	seen = 0;
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, count_entries, &seen, NULL),
			 0);
	assert_int_equal(h.base, 2);
	assert_int_equal(h.count, 3);
	assert_int_equal(seen, 1);
	assert_memory_equal(h.base_chain, part, 32);
	free(t);
	/* a base anywhere but first, of no records, or malformed: refused */
	snprintf(rotated, sizeof(rotated),
		 "obs 3 102 http://b x6b6ah9iya8w14wv5fzzwj36lf2yyghw present " H1 " 10\nbase 2 %s\n",
		 bhex);
	t = make_log(rotated, 1, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	snprintf(rotated, sizeof(rotated), "base 0 %s\n", bhex);
	t = make_log(rotated, 0, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	t = make_log("base 2 xyz\n", 0, &sk);
	assert_int_equal(cairn_monitor_log_verify(t, strlen(t), &kr, &h, NULL, NULL, NULL),
			 CAIRN_EFORMAT);
	free(t);
	cairn_keyring_release(&kr);
	cairn_nix_seckey_wipe(&sk);
	cairn_nix_seckey_wipe(&other);
}

/* A stand-in for diffoscope: the shell script body, in dir. */
static void fake_prog(const char *name, const char *body, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", dir, name);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	assert_int_equal(chmod(out, 0755), 0);
}

/* The bounds on diffoscope, and its text report when its HTML fails:
 * counted by what comes back, not by the clock. */
static void test_diffoscope(void **state)
{
	(void)state;
	char prog[300], note[MON_NOTE_MAX];
	struct cairn_buf html = CAIRN_BUF_INIT(4096);

	fake_prog("ds-ok", "echo \"<p>$5 vs $6</p>\"; exit 1", prog, sizeof(prog));
	assert_int_equal(
	    mon_diffoscope(prog, "A", "B", NULL, 0, 30, 4096, &html, note, sizeof(note)), 0);
	assert_int_equal(html.len, strlen("<p>A vs B</p>\n"));
	assert_memory_equal(html.data, "<p>A vs B</p>\n", html.len);
	assert_string_equal(note, "");
	cairn_buf_release(&html);

	/* endless output: cut at the bound, said so, the process killed */
	fake_prog("ds-big", "yes '<p>x</p>'; exit 1", prog, sizeof(prog));
	assert_int_equal(
	    mon_diffoscope(prog, "A", "B", NULL, 0, 30, 4096, &html, note, sizeof(note)), 0);
	assert_int_equal(html.len, 4096);
	assert_non_null(strstr(note, "only the first 4096 bytes"));
	cairn_buf_release(&html);

	/* never done: stopped at the time bound, what it wrote kept */
	fake_prog("ds-slow", "echo '<p>partial</p>'; sleep 600; exit 1", prog, sizeof(prog));
	assert_int_equal(
	    mon_diffoscope(prog, "A", "B", NULL, 0, 1, 4096, &html, note, sizeof(note)), 0);
	assert_non_null(strstr(note, "stopped after 1 s"));
	assert_memory_equal(html.data, "<p>partial</p>\n", html.len);
	cairn_buf_release(&html);

	/* HTML fails (exit 2), text works: the text, escaped, in our page */
	fake_prog("ds-text",
		  "[ \"$1\" = --html ] && exit 2; echo '<script>x</script> & \"'; exit 1", prog,
		  sizeof(prog));
	assert_int_equal(
	    mon_diffoscope(prog, "A", "B", NULL, 0, 30, 4096, &html, note, sizeof(note)), 0);
	assert_int_equal(cairn_buf_putc(&html, '\0'), 0);
	assert_non_null(strstr(html.data, "<pre>&lt;script&gt;x&lt;/script&gt; &amp; &quot;"));
	assert_null(strstr(html.data, "<script"));
	assert_non_null(strstr(note, "text report"));
	cairn_buf_release(&html);

	/* both fail: an error, said */
	fake_prog("ds-fail", "exit 3", prog, sizeof(prog));
	assert_int_equal(
	    mon_diffoscope(prog, "A", "B", NULL, 0, 30, 4096, &html, note, sizeof(note)),
	    CAIRN_EIO);
	assert_non_null(strstr(note, "exit status 3"));
	cairn_buf_release(&html);

	/* not installed: CAIRN_ENOENT, so no report and no failure */
	assert_int_equal(mon_diffoscope("/nonexistent/diffoscope", "A", "B", NULL, 0, 30, 4096,
					&html, note, sizeof(note)),
			 CAIRN_ENOENT);
	cairn_buf_release(&html);
	static const char *const names[] = {"ds-ok", "ds-big", "ds-slow", "ds-text", "ds-fail"};
	for (size_t i = 0; i < 5; i++) {
		snprintf(prog, sizeof(prog), "%s/%s", dir, names[i]);
		unlink(prog);
	}
}

static void put_file(const char *tree, const char *name, const char *text)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", tree, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Per differing file, on names of its own (diffoscope 240 fails on a tree
 * with a name that is not UTF-8, as this stand-in does on any odd byte):
 * one page, the real names as escaped headings, what is not a regular
 * file on disk never followed, the links removed after. */
static void test_diffoscope_files(void **state)
{
	(void)state;
	char prog[300], note[MON_NOTE_MAX], ta[300], tb[300], p[400];
	struct cairn_buf html = CAIRN_BUF_INIT(1 << 16);
	fake_prog("ds-pair",
		  "[ \"$1\" = --html ] || exit 2\n"
		  "case \"$5$6\" in *[!A-Za-z0-9._+/-]*) exit 3;; esac\n"
		  "printf '<html><head><style>.s{}</style></head><body class=\"x\">"
		  "<p>%s %s: %s vs %s</p></body></html>\\n' \"$5\" \"$6\" \"$(cat \"$5\")\" "
		  "\"$(cat \"$6\")\"\nexit 1",
		  prog, sizeof(prog));
	snprintf(ta, sizeof(ta), "%s/ta", dir);
	snprintf(tb, sizeof(tb), "%s/tb", dir);
	assert_int_equal(mkdir(ta, 0700), 0);
	assert_int_equal(mkdir(tb, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub", ta);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/sub", tb);
	assert_int_equal(mkdir(p, 0700), 0);
	put_file(ta, "x\377y", "one");
	put_file(tb, "x\377y", "two");
	put_file(ta, "sub/f.txt", "1");
	put_file(tb, "sub/f.txt", "2");
	put_file(ta, "gone", "g");
	put_file(ta, "ln", "a file here");
	snprintf(p, sizeof(p), "%s/ln", tb);
	assert_int_equal(symlink("/etc/passwd", p), 0);

	struct cairn_nar_entry e[] = {
	    {.path = "x\377y", .type = CAIRN_NAR_REGULAR},
	    {.path = "sub/f.txt", .type = CAIRN_NAR_REGULAR},
	    {.path = "gone", .type = CAIRN_NAR_REGULAR},
	    /* a regular file in the NAR's list, a symlink on disk */
	    {.path = "ln", .type = CAIRN_NAR_REGULAR},
	};
	struct cairn_nar_change ch[] = {
	    {.a = &e[0], .b = &e[0], .kind = "content"},
	    {.a = &e[2], .b = NULL, .kind = "removed"},
	    {.a = &e[3], .b = &e[3], .kind = "content"},
	    {.a = &e[1], .b = &e[1], .kind = "content"},
	};
	assert_int_equal(
	    mon_diffoscope(prog, ta, tb, ch, 4, 30, 1 << 16, &html, note, sizeof(note)), 0);
	assert_int_equal(cairn_buf_putc(&html, '\0'), 0);
	assert_non_null(strstr(html.data, "<title>diffoscope</title><style>.s{}</style></head>"));
	assert_null(strstr(strstr(html.data, ".s{}") + 1, ".s{}"));
	assert_non_null(strstr(html.data, "<h2 class=\"file\"><code>x&#xfffd;y</code></h2>\n"
					  "<p>a/x_y b/x_y: one vs two</p>"));
	assert_non_null(strstr(html.data, "<h2 class=\"file\"><code>sub/f.txt</code></h2>\n"
					  "<p>a/f.txt b/f.txt: 1 vs 2</p>"));
	assert_null(strstr(html.data, "gone"));
	assert_null(strstr(html.data, "root:"));
	assert_non_null(strstr(html.data, "</body></html>\n"));
	assert_non_null(
	    strstr(note, "diffoscope: 1 of the 3 files not compared: a file to compare is not"));
	assert_non_null(strstr(note, "not a regular file"));
	cairn_buf_release(&html);

	/* no regular file differs: the trees, in one run */
	assert_int_equal(
	    mon_diffoscope(prog, ta, tb, ch + 1, 1, 30, 1 << 16, &html, note, sizeof(note)), 0);
	assert_int_equal(cairn_buf_putc(&html, '\0'), 0);
	assert_non_null(strstr(html.data, "/ta "));
	cairn_buf_release(&html);

	/* the size bound over all the files: the first report cut, the rest
	 * not run, the page still closed */
	char big[300];
	fake_prog("ds-pair-big", "yes '<p>x</p>'; exit 1", big, sizeof(big));
	assert_int_equal(mon_diffoscope(big, ta, tb, ch, 4, 30, 1 << 15, &html, note, sizeof(note)),
			 0);
	assert_true(html.len <= 1 << 15);
	assert_int_equal(cairn_buf_putc(&html, '\0'), 0);
	assert_non_null(strstr(html.data, "<code>x&#xfffd;y</code>"));
	assert_null(strstr(html.data, "<code>sub/f.txt</code>"));
	assert_non_null(strstr(html.data, "</body></html>\n"));
	assert_non_null(strstr(note, "only the first 32768 bytes"));
	cairn_buf_release(&html);
	unlink(big);

	/* the count bound: the first MON_DIFFOSCOPE_FILES_MAX files, said */
	struct cairn_nar_change many[MON_DIFFOSCOPE_FILES_MAX + 1];
	for (size_t i = 0; i < MON_DIFFOSCOPE_FILES_MAX + 1; i++)
		many[i] = ch[3];
	assert_int_equal(mon_diffoscope(prog, ta, tb, many, MON_DIFFOSCOPE_FILES_MAX + 1, 30,
					1 << 20, &html, note, sizeof(note)),
			 0);
	snprintf(p, sizeof(p), "only the first %d of the %d files", MON_DIFFOSCOPE_FILES_MAX,
		 MON_DIFFOSCOPE_FILES_MAX + 1);
	assert_non_null(strstr(note, p));
	cairn_buf_release(&html);

	/* what it made beside the trees is gone */
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "ls -d '%s'/ta.diffoscope-* 2>/dev/null", dir);
	FILE *ls = popen(cmd, "r");
	assert_non_null(ls);
	assert_int_equal(fgetc(ls), EOF);
	pclose(ls);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/ta' '%s/tb' '%s'", dir, dir, prog);
	assert_int_equal(system(cmd), 0);
}

/* With any number of servers: the counters the overview reads say what
 * counting the rows says, and each one's last trend row too (a pair or a
 * verdict gets a day's row when it changes that day; assert_counters is
 * for two servers). */
static void assert_counters_all(struct mon_db *d)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_];
	assert_int_equal(mon_db_verdict_counts(d, n, NULL), 0);
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		assert_int_equal(n[v], count_of(d, "SELECT count(*) FROM items WHERE verdict = ?", v));
	assert_int_equal(count_of(d, "SELECT count(*) FROM server_counts c WHERE present <>"
				     " (SELECT count(*) FROM obs WHERE server = c.server AND state = 1)",
				  0),
			 0);
	assert_int_equal(
	    count_of(d, "SELECT count(*) FROM pair_counts c WHERE both_have <> (SELECT count(*)"
			" FROM obs x JOIN obs y ON y.item = x.item WHERE x.server = c.a"
			" AND y.server = c.b AND x.state = 1 AND y.state = 1) OR agree <> (SELECT"
			" count(*) FROM obs x JOIN obs y ON y.item = x.item WHERE x.server = c.a"
			" AND y.server = c.b AND x.state = 1 AND y.state = 1"
			" AND x.nar_hash = y.nar_hash AND x.nar_size = y.nar_size AND x.refs = y.refs)",
			0),
	    0);
	assert_int_equal(count_of(d, "SELECT count(*) FROM pair_counts", 0), 3);
	assert_int_equal(count_of(d, "SELECT count(*) FROM pair_counts c WHERE NOT EXISTS (SELECT 1"
				     " FROM pair_trend t WHERE t.a = c.a AND t.b = c.b AND"
				     " t.both_have = c.both_have AND t.agree = c.agree AND t.day ="
				     " (SELECT max(day) FROM pair_trend WHERE a = c.a AND b = c.b))",
				  0),
			 0);
	assert_int_equal(count_of(d, "SELECT count(*) FROM verdict_counts c WHERE n <> 0 AND NOT"
				     " EXISTS (SELECT 1 FROM verdict_trend t WHERE t.verdict ="
				     " c.verdict AND t.n = c.n AND t.day = (SELECT max(day) FROM"
				     " verdict_trend WHERE verdict = c.verdict))",
				  0),
			 0);
}

static int no_result(void *ctx, struct cairn_survey_result *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

/* One pass of the writer over N items: servers 0 and 1 answer item by
 * item, server 2 only after all of them (far behind: the first items are
 * written before its answers come, past the items the writer holds);
 * server 2 says H2 where differs(i), nothing where silent(i). */
static void writer_pass(struct cairn_monitor *m, struct cairn_survey *sv, size_t n, int64_t now,
			bool (*differs)(size_t), bool (*silent)(size_t))
{
	struct mon_writer w;
	struct mon_obs_in a = {.state = CAIRN_MONITOR_PRESENT, .sig = CAIRN_MONITOR_SIG_VALID,
			       .nar_hash = H1, .nar_size = 10, .refs = R1,
			       .narinfo = "StorePath: x\n", .narinfo_len = 13};
	struct mon_obs_in b = a;
	b.nar_hash = H2;
	assert_int_equal(mon_db_exec(m->w, "BEGIN IMMEDIATE", NULL), 0);
	mon_writer_init(&w, m);
	assert_int_equal(mon_writer_start(&w, sv, 3, now, NULL), 0);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < 2; k++)
			assert_int_equal(mon_writer_put(&w, i, k, &a, NULL), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(
		    mon_writer_put(&w, i, 2, silent(i) ? NULL : differs(i) ? &b : &a, NULL), 0);
	assert_int_equal(mon_writer_finish(&w, NULL), 0);
	mon_writer_release(&w);
	assert_int_equal(mon_db_trends(m->w, now, NULL), 0);
	assert_int_equal(mon_db_exec(m->w, "COMMIT", NULL), 0);
}

static bool every_7th(size_t i) { return i % 7 == 0; }
static bool every_11th(size_t i) { return i % 11 == 0; }
static bool never(size_t i) { (void)i; return false; }

/*
 * The writer (monitor-writer.c): an item whose answers are all held goes
 * in with its verdict in one row, one held too long as its answers come,
 * an item already known is settled from its rows; the same verdicts,
 * history and diff queue every way.
 */
static void test_writer(void **state)
{
	(void)state;
	enum { N = 10000 }; /* more than the 8,192 items held */
	struct cairn_monitor m;
	struct cairn_http *h;
	struct cairn_http_server *srv[3];
	struct cairn_survey *sv;
	struct cairn_survey_config sc;
	char url[3][32];
	char *urls[3];
	int64_t ids[3];
	memset(&m, 0, sizeof(m));
	snprintf(db_path, sizeof(db_path), "%s/w.sqlite", dir);
	assert_int_equal(mon_db_open(&m.w, db_path, true, NULL), 0);
	assert_int_equal(cairn_http_new(&h, NULL, NULL), 0);
	for (int i = 0; i < 3; i++) {
		snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%d", i + 1);
		urls[i] = url[i];
		assert_int_equal(mon_db_server(m.w, url[i], &ids[i], NULL), 0);
		assert_int_equal(cairn_http_server_new(&srv[i], url[i], 0, NULL), 0);
	}
	m.urls = urls;
	m.server_ids = ids;
	cairn_survey_config_init(&sc);
	assert_int_equal(cairn_survey_new(&sv, h, srv, 3, &sc, no_result, NULL, NULL), 0);
	for (size_t i = 0; i < N; i++) {
		char path[80];
		numbered_store_path(i, "w", path, sizeof(path));
		assert_int_equal(cairn_survey_add(sv, path, NULL, NULL), 1);
	}
	/* server 2 silent on every 11th: what 0 and 1 say decides */
	int64_t differ = 0;
	for (size_t i = 0; i < N; i++)
		differ += every_7th(i) && !every_11th(i);
	writer_pass(&m, sv, N, 1000000, every_7th, every_11th);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items", 0), N);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM obs", 0), 3 * N - (N + 10) / 11);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items WHERE verdict = 1", 0), differ);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items WHERE verdict = 0", 0), N - differ);
	/* the differing ones queued for a diff, every first verdict in the
	 * history, the counters the pages read kept by the triggers */
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items WHERE diff_state = 1", 0), differ);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM history", 0), N);
	assert_int_equal(count_of(m.w, "SELECT n FROM verdict_counts WHERE verdict = 1", 0), differ);
	assert_int_equal(count_of(m.w, "SELECT sum(n) FROM verdict_counts", 0), N);
	assert_int_equal(count_of(m.w, "SELECT present FROM server_counts WHERE server = "
				       "(SELECT max(id) FROM servers)", 0),
			 N - (N + 10) / 11);
	assert_counters_all(m.w);
	/* known items, all agreeing now: settled from their rows */
	writer_pass(&m, sv, N, 1000000 + 86400, never, never);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items WHERE verdict = 0", 0), N);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM history", 0), N + differ);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM obs", 0), 3 * N);
	assert_int_equal(count_of(m.w, "SELECT count(*) FROM items WHERE diff_state = 1", 0), 0);
	assert_counters_all(m.w);
	cairn_survey_free(sv);
	cairn_http_free(h);
	for (int i = 0; i < 3; i++)
		cairn_http_server_free(srv[i]);
	mon_db_close(m.w);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char p[300];
	snprintf(p, sizeof(p), "%s-wal", db_path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	unlink(p);
	unlink(db_path);
	rmdir(dir);
	return 0;
}

int main(void)
{
	if (cairn_init())
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verdicts),   cmocka_unit_test(test_names),
	    cmocka_unit_test(test_db),	       cmocka_unit_test(test_db_upgrade),
	    cmocka_unit_test(test_escapes),    cmocka_unit_test(test_log),
	    cmocka_unit_test(test_diffoscope), cmocka_unit_test(test_diffoscope_files),
	    cmocka_unit_test(test_writer),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
