/*
 * monitor-web.c - the monitor's report: plain HTML and CSS, no script.
 *   /                    overview: counts per verdict, the servers
 *   /items?verdict=V&server=ID&name=S&cursor=C
 *                        items, newest change first (keyset pages)
 *   /item/<hash part>    every server's narinfo side by side, the file
 *                        diff, the history
 *   /server/<id>         one server: what it has, where it differs
 *   /atom.xml            the newest disagreements, as an Atom feed
 * Everything that came from a server (URLs, paths, narinfos, file names,
 * error texts) goes through cairn_html_cstr: shown, never interpreted.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/escape.h"
#include "monitor-int.h"
#include "cairn/banned.h"

#define PAGE_MAX ((size_t)64 << 20)

static const char css[] =
	"body{font:15px/1.4 system-ui,sans-serif;margin:1em auto;max-width:72em;padding:0 1em;"
	"color:#222}"
	"table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;"
	"padding:.3em .5em;text-align:left;vertical-align:top}"
	"code,pre{font:13px monospace;word-break:break-all}pre{white-space:pre-wrap;"
	"background:#f6f6f6;padding:.5em;margin:0}"
	".differs,.invalid{color:#b00;font-weight:bold}.agree{color:#070}"
	".side{display:flex;gap:1em}.side>div{flex:1;min-width:0}nav a{margin-right:1em}"
	".day{white-space:nowrap;margin-right:.8em;font-size:13px}.day time{color:#666}";

static void head(struct cairn_buf *b, const char *title)
{
	cairn_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			  "<meta name=\"viewport\" content=\"width=device-width\"><title>");
	cairn_html_cstr(b, title);
	cairn_buf_printf(b,
			 "</title><style>%s</style><link rel=\"alternate\" "
			 "type=\"application/atom+xml\" href=\"/atom.xml\"></head><body>"
			 "<nav><a href=\"/\">overview</a><a href=\"/items?verdict=differs\">"
			 "disagreements</a><a href=\"/items\">all items</a>"
			 "<a href=\"/atom.xml\">feed</a></nav><h1>",
			 css);
	cairn_html_cstr(b, title);
	cairn_buf_puts(b, "</h1>\n");
}

static int finish(struct cairn_httpd_req *req, struct cairn_buf *b)
{
	cairn_buf_puts(b, "</body></html>\n");
	cairn_httpd_add_header(req, "cache-control", "no-store");
	cairn_httpd_add_header(req, "content-security-policy",
			       "default-src 'none'; style-src 'unsafe-inline'");
	cairn_httpd_add_header(req, "x-content-type-options", "nosniff");
	int rc = cairn_httpd_send(req, 200, "text/html; charset=utf-8", b->data, b->len);
	cairn_buf_release(b);
	return rc;
}

static int fail_page(struct cairn_httpd_req *req, struct cairn_buf *b, int status)
{
	cairn_buf_release(b);
	return cairn_httpd_send_error(req, status);
}

static void text_col(struct cairn_buf *b, sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	cairn_html_cstr(b, t ? (const char *)t : "");
}

static void time_col(struct cairn_buf *b, sqlite3_stmt *st, int col)
{
	char t[32];
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		cairn_buf_puts(b, "never");
		return;
	}
	mon_time(sqlite3_column_int64(st, col), t);
	cairn_buf_puts(b, t);
}

/* ---- agreement between servers, and trends ------------------------------ */

/* Daily buckets shown: a day without a row is a day nothing changed. */
#define TREND_DAYS "14"

static void day_name(int64_t day, char out[32])
{
	mon_time(day * 86400, out);
	out[10] = '\0'; /* the date of the ISO time */
}

static void rate(struct cairn_buf *b, int64_t agree, int64_t both)
{
	if (both <= 0)
		cairn_buf_puts(b, "&mdash;");
	else
		cairn_buf_printf(b, "%.1f&nbsp;%%", 100.0 * (double)agree / (double)both);
}

/*
 * Each pair of servers (those with SERVER, or all for 0): the items both
 * have, how many of them they agree on, the rate, and the rate on each of
 * the last TREND_DAYS days with a change, oldest first.
 */
static int agreement(struct cairn_monitor *m, struct cairn_buf *b, int64_t server,
		     struct cairn_error *err)
{
	sqlite3_stmt *st, *tr;
	int rc, k = 0;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT p.a, p.b, sa.url, sb.url, p.both_have, p.agree"
				 " FROM pair_counts p JOIN servers sa ON sa.id = p.a"
				 " JOIN servers sb ON sb.id = p.b"
				 " WHERE ?1 = 0 OR p.a = ?1 OR p.b = ?1 ORDER BY p.a, p.b",
				 &st, err)) < 0)
		return rc;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT day, both_have, agree FROM (SELECT * FROM pair_trend"
				 " WHERE a = ? AND b = ? ORDER BY day DESC LIMIT " TREND_DAYS
				 ") ORDER BY day",
				 &tr, err)) < 0) {
		sqlite3_finalize(st);
		return rc;
	}
	sqlite3_bind_int64(st, 1, server);
	cairn_buf_puts(b, "<h2>Agreement</h2><table class=\"agreement\"><tr><th>server</th>"
			  "<th>server</th><th>both have</th><th>agree</th><th>rate</th>"
			  "<th>by day (last " TREND_DAYS " with a change)</th></tr>");
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t both = sqlite3_column_int64(st, 4), agree = sqlite3_column_int64(st, 5);
		k++;
		cairn_buf_printf(b, "<tr><td><a href=\"/server/%" PRId64 "\">",
				 (int64_t)sqlite3_column_int64(st, 0));
		text_col(b, st, 2);
		cairn_buf_printf(b, "</a></td><td><a href=\"/server/%" PRId64 "\">",
				 (int64_t)sqlite3_column_int64(st, 1));
		text_col(b, st, 3);
		cairn_buf_printf(b, "</a></td><td>%" PRId64 "</td><td>%" PRId64 "</td><td class=\"rate\">",
				 both, agree);
		rate(b, agree, both);
		cairn_buf_puts(b, "</td><td class=\"trend\">");
		sqlite3_bind_int64(tr, 1, sqlite3_column_int64(st, 0));
		sqlite3_bind_int64(tr, 2, sqlite3_column_int64(st, 1));
		while (sqlite3_step(tr) == SQLITE_ROW) {
			char day[32];
			day_name(sqlite3_column_int64(tr, 0), day);
			cairn_buf_printf(b, "<span class=\"day\"><time>%s</time> ", day);
			rate(b, sqlite3_column_int64(tr, 2), sqlite3_column_int64(tr, 1));
			cairn_buf_puts(b, "</span> ");
		}
		sqlite3_reset(tr);
		cairn_buf_puts(b, "</td></tr>");
	}
	if (k == 0)
		cairn_buf_puts(b, "<tr><td colspan=\"6\">No item on two servers yet.</td></tr>");
	cairn_buf_puts(b, "</table>");
	sqlite3_finalize(tr);
	sqlite3_finalize(st);
	return 0;
}

/*
 * Items per verdict at the end of each of the last TREND_DAYS days with a
 * change: a verdict without a row that day kept its count from before.
 */
static int verdict_trend(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int64_t n[CAIRN_MONITOR_VERDICTS_] = {0}, first = 0, day = -1;
	int rc;
	bool any = false;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT min(day) FROM (SELECT DISTINCT day FROM verdict_trend"
				 " ORDER BY day DESC LIMIT " TREND_DAYS ")",
				 &st, err)) < 0)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW)
		first = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	/* the counts before the window, then each day's rows in order */
	if ((rc = mon_db_prepare(m->r,
				 "SELECT -1, verdict, n FROM verdict_trend t WHERE day ="
				 " (SELECT max(day) FROM verdict_trend u WHERE u.verdict = t.verdict"
				 "  AND u.day < ?1)"
				 " UNION ALL SELECT day, verdict, n FROM verdict_trend WHERE day >= ?1"
				 " ORDER BY 1, 2",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, first);
	cairn_buf_puts(b, "<h2>Items per verdict, by day</h2><table class=\"trend\"><tr><th>day</th>");
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		cairn_buf_printf(b, "<th>%s</th>", cairn_monitor_verdict_name(v));
	cairn_buf_puts(b, "</tr>");
	for (int s = sqlite3_step(st);; s = sqlite3_step(st)) {
		int64_t d = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -2;
		if (day >= 0 && d != day) {
			char t[32];
			day_name(day, t);
			cairn_buf_printf(b, "<tr><td><time>%s</time></td>", t);
			for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
				cairn_buf_printf(b, "<td>%" PRId64 "</td>", n[v]);
			cairn_buf_puts(b, "</tr>");
			any = true;
		}
		if (s != SQLITE_ROW)
			break;
		int v = sqlite3_column_int(st, 1);
		if (v >= 0 && v < CAIRN_MONITOR_VERDICTS_)
			n[v] = sqlite3_column_int64(st, 2);
		day = d;
	}
	sqlite3_finalize(st);
	if (!any)
		cairn_buf_printf(b, "<tr><td colspan=\"%d\">No verdict yet.</td></tr>",
				 CAIRN_MONITOR_VERDICTS_ + 1);
	cairn_buf_puts(b, "</table>");
	return 0;
}

/* ---- overview ------------------------------------------------------------- */

static int overview(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_];
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_verdict_counts(m->r, n, err)) < 0)
		return rc;
	cairn_buf_puts(b, "<h2>Items</h2><table><tr><th>verdict</th><th>items</th></tr>");
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		cairn_buf_printf(b,
				 "<tr><td class=\"%s\"><a href=\"/items?verdict=%s\">%s</a></td>"
				 "<td>%" PRIu64 "</td></tr>",
				 cairn_monitor_verdict_name(v), cairn_monitor_verdict_name(v),
				 cairn_monitor_verdict_name(v), n[v]);
	cairn_buf_puts(b, "</table><h2>Servers</h2><table><tr><th>server</th><th>feed</th>"
			  "<th>items</th><th>last answer</th><th>state</th></tr>");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT s.id, s.url, s.has_feed, s.last_ok, s.last_error,"
				 " coalesce((SELECT present FROM server_counts c WHERE c.server = s.id), 0)"
				 " FROM servers s ORDER BY s.id",
				 &st, err)) < 0)
		return rc;
	while (sqlite3_step(st) == SQLITE_ROW) {
		cairn_buf_printf(b, "<tr><td><a href=\"/server/%" PRId64 "\">",
				 (int64_t)sqlite3_column_int64(st, 0));
		text_col(b, st, 1);
		cairn_buf_printf(b, "</a></td><td>%s</td><td>%" PRId64 "</td><td>",
				 sqlite3_column_int(st, 2) ? "yes" : "no",
				 (int64_t)sqlite3_column_int64(st, 5));
		time_col(b, st, 3);
		cairn_buf_puts(b, "</td><td>");
		if (sqlite3_column_type(st, 4) == SQLITE_NULL)
			cairn_buf_puts(b, "up");
		else {
			cairn_buf_puts(b, "<span class=\"invalid\">down</span>: ");
			text_col(b, st, 4);
		}
		cairn_buf_puts(b, "</td></tr>");
	}
	sqlite3_finalize(st);
	cairn_buf_puts(b, "</table>");
	if ((rc = agreement(m, b, 0, err)) < 0)
		return rc;
	return verdict_trend(m, b, err);
}

static int h_overview(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	head(&b, "cairn monitor");
	pthread_mutex_lock(&m->r->lock);
	int rc = overview(m, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	return rc < 0 ? fail_page(req, &b, 500) : finish(req, &b);
}

/* ---- item lists ----------------------------------------------------------- */

/* s percent-encoded for a query value (then safe in an attribute too). */
static void url_escape(struct cairn_buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_')
			cairn_buf_putc(b, (char)*p);
		else
			cairn_buf_printf(b, "%%%02X", *p);
	}
}

static int row_html(void *ctx, const struct mon_row *row)
{
	struct cairn_buf *b = ctx;
	char t[32];
	mon_time(row->since, t);
	cairn_buf_printf(b, "<tr><td class=\"%s\">%s</td><td><a href=\"/item/",
			 cairn_monitor_verdict_name(row->verdict),
			 cairn_monitor_verdict_name(row->verdict));
	cairn_html_cstr(b, row->hash);
	cairn_buf_puts(b, "\"><code>");
	cairn_html_cstr(b, row->path);
	cairn_buf_printf(b, "</code></a></td><td>%s</td></tr>", t);
	return 0;
}

static int h_items(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t qlen = 0;
	const char *q = cairn_httpd_req_query(req, &qlen);
	char vb[32], cb[64], sb[24], nb[256];
	const char *v = mon_query_get(q, qlen, "verdict", vb, sizeof(vb));
	const char *c = mon_query_get(q, qlen, "cursor", cb, sizeof(cb));
	const char *s = mon_query_get(q, qlen, "server", sb, sizeof(sb));
	const char *name = mon_query_get(q, qlen, "name", nb, sizeof(nb));
	int verdict = -1;
	int64_t server = 0;
	struct mon_cursor cur, next = {0, 0};
	bool more = false;
	char *end;
	if (v && *v && (verdict = cairn_monitor_verdict_parse(v, strlen(v))) < 0)
		return cairn_httpd_send_error(req, 400);
	if (s && *s && ((server = strtoll(s, &end, 10)) < 1 || *end))
		return cairn_httpd_send_error(req, 400);
	if (mon_cursor_parse(c, &cur) < 0)
		return cairn_httpd_send_error(req, 400);

	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	char title[64];
	cairn_error_init(&err);
	snprintf(title, sizeof(title), "%s items",
		 verdict < 0 ? "All" : cairn_monitor_verdict_name(verdict));
	head(&b, title);
	/* a plain GET form: filtering works without script */
	cairn_buf_puts(&b, "<form method=\"get\" action=\"/items\">");
	if (verdict >= 0)
		cairn_buf_printf(&b, "<input type=\"hidden\" name=\"verdict\" value=\"%s\">",
				 cairn_monitor_verdict_name(verdict));
	if (server > 0)
		cairn_buf_printf(&b, "<input type=\"hidden\" name=\"server\" value=\"%" PRId64 "\">",
				 server);
	cairn_buf_puts(&b, "<input name=\"name\" placeholder=\"name contains\" value=\"");
	cairn_html_cstr(&b, name ? name : "");
	cairn_buf_puts(&b, "\"> <button>filter</button></form>"
			   "<table><tr><th>verdict</th><th>item</th><th>since</th></tr>");
	pthread_mutex_lock(&m->r->lock);
	int rc = mon_list(m->r, verdict, server, name, &cur, CAIRN_MONITOR_PAGE_DEFAULT, row_html,
			  &b, &next, &more, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0)
		return fail_page(req, &b, 500);
	cairn_buf_puts(&b, "</table>");
	if (more) {
		cairn_buf_puts(&b, "<p><a href=\"/items?");
		if (verdict >= 0)
			cairn_buf_printf(&b, "verdict=%s&amp;", cairn_monitor_verdict_name(verdict));
		if (server > 0)
			cairn_buf_printf(&b, "server=%" PRId64 "&amp;", server);
		if (name && *name) {
			cairn_buf_puts(&b, "name=");
			url_escape(&b, name);
			cairn_buf_puts(&b, "&amp;");
		}
		cairn_buf_printf(&b, "cursor=%" PRId64 ".%" PRId64 "\">older &rarr;</a></p>",
				 next.since, next.id);
	}
	return finish(req, &b);
}

/* ---- one item ------------------------------------------------------------- */

/* A link to diffoscope's report, never the report inline: it holds text
 * the servers chose, so it is served apart, sandboxed. */
static int diffoscope_section(struct cairn_monitor *m, int64_t id, const char *hash,
			      struct cairn_buf *b, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT sa.url, sb.url, length(d.html), d.note FROM diffoscope d"
				 " LEFT JOIN servers sa ON sa.id = d.a_server"
				 " LEFT JOIN servers sb ON sb.id = d.b_server WHERE d.item = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		cairn_buf_puts(b, "<h2>diffoscope</h2><p>");
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			cairn_buf_printf(b, "<a href=\"/item/%s/diffoscope\">diffoscope's report</a> ",
					 hash);
		cairn_buf_puts(b, "comparing ");
		text_col(b, st, 0);
		cairn_buf_puts(b, " with ");
		text_col(b, st, 1);
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			cairn_buf_puts(b, ". ");
			text_col(b, st, 3);
		}
		cairn_buf_puts(b, ".</p>");
	}
	sqlite3_finalize(st);
	return 0;
}

static int item_page(struct cairn_monitor *m, const char *hash, struct cairn_buf *b,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	int64_t id;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT id, path, verdict, verdict_since, first_seen, diff_state,"
				 " diff_note, diff_tries FROM items WHERE hash = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return CAIRN_ENOENT;
	}
	id = sqlite3_column_int64(st, 0);
	head(b, (const char *)sqlite3_column_text(st, 1));
	int verdict = sqlite3_column_int(st, 2), ds = sqlite3_column_int(st, 5);
	cairn_buf_printf(b, "<p>Verdict: <span class=\"%s\">%s</span> since ",
			 cairn_monitor_verdict_name(verdict), cairn_monitor_verdict_name(verdict));
	time_col(b, st, 3);
	cairn_buf_puts(b, "; first seen ");
	time_col(b, st, 4);
	cairn_buf_puts(b, ".</p>");
	if (ds == MON_DIFF_TODO)
		cairn_buf_puts(b, "<p>The NARs are to be compared.</p>");
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		cairn_buf_puts(b, "<p>Diff: ");
		text_col(b, st, 6);
		if (ds == MON_DIFF_FAILED)
			cairn_buf_printf(b, " (tried %d times%s)", sqlite3_column_int(st, 7),
					 sqlite3_column_int(st, 7) < MON_DIFF_TRIES
						 ? "; tried again at the next full pass"
						 : "; not tried again until the claims change");
		cairn_buf_puts(b, "</p>");
	}
	sqlite3_finalize(st);

	if (ds == MON_DIFF_DONE || ds == MON_DIFF_FAILED) {
		cairn_buf_puts(b, "<h2>Files that differ</h2><table><tr><th>file</th><th>change</th>"
				  "<th>A</th><th>B</th></tr>");
		if ((rc = mon_db_prepare(m->r,
					 "SELECT d.path, d.change, sa.url, d.a_type, d.a_size,"
					 " d.a_sha256, d.a_target, sb.url, d.b_type, d.b_size,"
					 " d.b_sha256, d.b_target FROM diffs d"
					 " LEFT JOIN servers sa ON sa.id = d.a_server"
					 " LEFT JOIN servers sb ON sb.id = d.b_server"
					 " WHERE d.item = ? ORDER BY d.rowid",
					 &st, err)) < 0)
			return rc;
		sqlite3_bind_int64(st, 1, id);
		while (sqlite3_step(st) == SQLITE_ROW) {
			cairn_buf_puts(b, "<tr><td><code>");
			text_col(b, st, 0);
			cairn_buf_puts(b, "</code></td><td>");
			text_col(b, st, 1);
			for (int side = 0; side < 2; side++) {
				int c = 2 + 5 * side;
				cairn_buf_puts(b, "</td><td>");
				if (sqlite3_column_type(st, c + 1) == SQLITE_NULL) {
					cairn_buf_puts(b, "&mdash;");
					continue;
				}
				text_col(b, st, c);
				cairn_buf_puts(b, ": ");
				text_col(b, st, c + 1);
				if (sqlite3_column_type(st, c + 3) != SQLITE_NULL) {
					cairn_buf_printf(b, ", %" PRId64 " bytes, sha256 <code>",
							 (int64_t)sqlite3_column_int64(st, c + 2));
					text_col(b, st, c + 3);
					cairn_buf_puts(b, "</code>");
				}
				if (sqlite3_column_type(st, c + 4) != SQLITE_NULL) {
					cairn_buf_puts(b, " &rarr; <code>");
					text_col(b, st, c + 4);
					cairn_buf_puts(b, "</code>");
				}
			}
			cairn_buf_puts(b, "</td></tr>");
		}
		sqlite3_finalize(st);
		cairn_buf_puts(b, "</table>");
		if ((rc = diffoscope_section(m, id, hash, b, err)) < 0)
			return rc;
	}

	cairn_buf_puts(b, "<h2>What each server says</h2><div class=\"side\">");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT s.id, s.url, o.state, o.sig, o.nar_hash, o.nar_size,"
				 " o.first_seen, o.last_seen, o.narinfo FROM obs o"
				 " JOIN servers s ON s.id = o.server WHERE o.item = ? ORDER BY s.id",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 2);
		cairn_buf_printf(b, "<div><h3><a href=\"/server/%" PRId64 "\">",
				 (int64_t)sqlite3_column_int64(st, 0));
		text_col(b, st, 1);
		cairn_buf_printf(b, "</a></h3><p>%s", cairn_monitor_state_name(state));
		if (state == CAIRN_MONITOR_PRESENT) {
			cairn_buf_printf(b, ", signature %s, NarHash <code>",
					 cairn_monitor_sig_name(sqlite3_column_int(st, 3)));
			text_col(b, st, 4);
			cairn_buf_printf(b, "</code>, NarSize %" PRId64,
					 (int64_t)sqlite3_column_int64(st, 5));
		}
		cairn_buf_puts(b, "; since ");
		time_col(b, st, 6);
		cairn_buf_puts(b, ", last asked ");
		time_col(b, st, 7);
		cairn_buf_puts(b, "</p>");
		if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
			cairn_buf_puts(b, "<pre>");
			text_col(b, st, 8);
			cairn_buf_puts(b, "</pre>");
		}
		cairn_buf_puts(b, "</div>");
	}
	sqlite3_finalize(st);
	cairn_buf_puts(b, "</div>");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT peer, server, state, nar_hash, at FROM peer_obs WHERE hash = ?"
				 " ORDER BY peer, seq",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	bool any = false;
	for (; sqlite3_step(st) == SQLITE_ROW; any = true) {
		if (!any)
			cairn_buf_puts(b, "<h2>What other monitors saw</h2><table><tr><th>monitor</th>"
					  "<th>server</th><th>state</th><th>NarHash</th><th>at</th></tr>");
		cairn_buf_puts(b, "<tr><td>");
		text_col(b, st, 0);
		cairn_buf_puts(b, "</td><td>");
		text_col(b, st, 1);
		cairn_buf_puts(b, "</td><td>");
		text_col(b, st, 2);
		cairn_buf_puts(b, "</td><td><code>");
		text_col(b, st, 3);
		cairn_buf_puts(b, "</code></td><td>");
		time_col(b, st, 4);
		cairn_buf_puts(b, "</td></tr>");
	}
	sqlite3_finalize(st);
	cairn_buf_puts(b, any ? "</table><h2>History</h2><ul>" : "<h2>History</h2><ul>");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT at, verdict FROM history WHERE item = ? ORDER BY at, rowid",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cairn_buf_puts(b, "<li>");
		time_col(b, st, 0);
		cairn_buf_printf(b, ": %s</li>", cairn_monitor_verdict_name(sqlite3_column_int(st, 1)));
	}
	sqlite3_finalize(st);
	cairn_buf_puts(b, "</ul>");
	return 0;
}

/* diffoscope's HTML as it wrote it, in a sandbox: no script runs, and
 * the page is a unique origin, so the text the servers put in it can
 * neither act nor reach the monitor's pages. */
static int diffoscope_page(struct cairn_httpd_req *req, struct cairn_monitor *m,
			   const char *hash_part)
{
	char hash[MON_HASH_LEN + 1];
	memcpy(hash, hash_part, MON_HASH_LEN);
	hash[MON_HASH_LEN] = '\0';
	struct cairn_buf b = CAIRN_BUF_INIT(MON_DIFFOSCOPE_HTML_MAX + 1);
	struct cairn_error err;
	sqlite3_stmt *st;
	int status = 404;
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	if (mon_db_prepare(m->r,
			   "SELECT d.html FROM diffoscope d JOIN items i ON i.id = d.item"
			   " WHERE i.hash = ? AND d.html IS NOT NULL",
			   &st, &err) < 0) {
		status = 500;
	} else {
		sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			const void *h = sqlite3_column_blob(st, 0);
			size_t n = (size_t)sqlite3_column_bytes(st, 0);
			status = n && cairn_buf_append(&b, h, n) < 0 ? 500 : 200;
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&m->r->lock);
	if (status != 200)
		return fail_page(req, &b, status);
	cairn_httpd_add_header(req, "cache-control", "no-store");
	cairn_httpd_add_header(req, "content-security-policy",
			       "sandbox; default-src 'none'; style-src 'unsafe-inline'");
	cairn_httpd_add_header(req, "x-content-type-options", "nosniff");
	int rc = cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "",
				  b.len);
	cairn_buf_release(&b);
	return rc;
}

static int h_item(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	static const char prefix[] = "/item/";
	static const char dsuffix[] = "/diffoscope";
	char hash[MON_HASH_LEN + 1];
	if (len == sizeof(prefix) - 1 + MON_HASH_LEN + sizeof(dsuffix) - 1 &&
	    !memcmp(path + len - (sizeof(dsuffix) - 1), dsuffix, sizeof(dsuffix) - 1) &&
	    mon_hash_ok(path + sizeof(prefix) - 1, MON_HASH_LEN))
		return diffoscope_page(req, m, path + sizeof(prefix) - 1);
	if (len < sizeof(prefix) - 1 ||
	    !mon_hash_ok(path + sizeof(prefix) - 1, len - (sizeof(prefix) - 1)))
		return cairn_httpd_send_error(req, 404);
	memcpy(hash, path + sizeof(prefix) - 1, MON_HASH_LEN);
	hash[MON_HASH_LEN] = '\0';
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	int rc = item_page(m, hash, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0)
		return fail_page(req, &b, rc == CAIRN_ENOENT ? 404 : 500);
	return finish(req, &b);
}

/* ---- one server ----------------------------------------------------------- */

static int h_server(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	char num[24], *end;
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	sqlite3_stmt *st;
	struct mon_cursor cur, next;
	bool more = false;
	int rc;
	if (len <= 8 || len - 8 >= sizeof(num))
		return cairn_httpd_send_error(req, 404);
	memcpy(num, path + 8, len - 8);
	num[len - 8] = '\0';
	long long id = strtoll(num, &end, 10);
	if (*end || id < 1)
		return cairn_httpd_send_error(req, 404);
	cairn_error_init(&err);
	mon_cursor_parse(NULL, &cur);
	pthread_mutex_lock(&m->r->lock);
	if ((rc = mon_db_prepare(m->r,
				 "SELECT url, has_feed, feed, feed_seq, last_ok, last_error,"
				 " error_since FROM servers WHERE id = ?",
				 &st, &err)) < 0)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		rc = CAIRN_ENOENT;
		goto out;
	}
	head(&b, (const char *)sqlite3_column_text(st, 0));
	if (sqlite3_column_int(st, 1)) {
		cairn_buf_puts(&b, "<p>Followed through its signed feed <code>");
		text_col(&b, st, 2);
		cairn_buf_printf(&b, "</code> at event %" PRId64 ".</p>",
				 (int64_t)sqlite3_column_int64(st, 3));
	} else {
		cairn_buf_puts(&b, "<p>No feed: asked about the path list's items.</p>");
	}
	cairn_buf_puts(&b, "<p>Last answer: ");
	time_col(&b, st, 4);
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		cairn_buf_puts(&b, "; failing since ");
		time_col(&b, st, 6);
		cairn_buf_puts(&b, ": ");
		text_col(&b, st, 5);
	}
	cairn_buf_puts(&b, "</p>");
	sqlite3_finalize(st);
	if ((rc = agreement(m, &b, id, &err)) < 0)
		goto out;
	cairn_buf_printf(&b, "<h2>Where it differs</h2><table><tr><th>verdict</th><th>item</th>"
			     "<th>since</th></tr>");
	rc = mon_list(m->r, CAIRN_MONITOR_DIFFERS, id, NULL, &cur, CAIRN_MONITOR_PAGE_DEFAULT,
		      row_html, &b, &next, &more, &err);
	cairn_buf_puts(&b, "</table>");
	if (more)
		cairn_buf_printf(&b,
				 "<p><a href=\"/items?verdict=differs&amp;server=%lld&amp;cursor=%" PRId64
				 ".%" PRId64 "\">older &rarr;</a></p>",
				 id, next.since, next.id);
	cairn_buf_printf(&b, "<p><a href=\"/items?server=%lld\">Every item it has</a></p>", id);
out:
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0)
		return fail_page(req, &b, rc == CAIRN_ENOENT ? 404 : 500);
	return finish(req, &b);
}

/* ---- Atom ----------------------------------------------------------------- */

static int h_atom(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	sqlite3_stmt *st;
	char t[32];
	int rc;
	size_t alen = 0;
	const char *auth = cairn_httpd_req_authority(req, &alen);
	char base[300];
	snprintf(base, sizeof(base), "http://%.*s", (int)(alen < 256 ? alen : 0), auth ? auth : "");
	cairn_error_init(&err);
	cairn_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			   "<feed xmlns=\"http://www.w3.org/2005/Atom\">"
			   "<title>cairn monitor: disagreements</title><id>");
	cairn_html_cstr(&b, base);
	cairn_buf_puts(&b, "/atom.xml</id>");
	pthread_mutex_lock(&m->r->lock);
	rc = mon_db_prepare(m->r,
			    "SELECT h.at, i.hash, i.path FROM history h JOIN items i"
			    " ON i.id = h.item WHERE h.verdict = 1 ORDER BY h.at DESC, h.rowid DESC"
			    " LIMIT 50",
			    &st, &err);
	if (rc == 0) {
		bool first = true;
		while (sqlite3_step(st) == SQLITE_ROW) {
			mon_time(sqlite3_column_int64(st, 0), t);
			if (first)
				cairn_buf_printf(&b, "<updated>%s</updated>", t);
			first = false;
			cairn_buf_puts(&b, "<entry><title>differs: ");
			text_col(&b, st, 2);
			cairn_buf_puts(&b, "</title><id>");
			cairn_html_cstr(&b, base);
			cairn_buf_puts(&b, "/item/");
			text_col(&b, st, 1);
			cairn_buf_printf(&b, "#%s</id><updated>%s</updated><link href=\"", t, t);
			cairn_html_cstr(&b, base);
			cairn_buf_puts(&b, "/item/");
			text_col(&b, st, 1);
			cairn_buf_puts(&b, "\"/></entry>");
		}
		if (first)
			cairn_buf_puts(&b, "<updated>1970-01-01T00:00:00Z</updated>");
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0)
		return fail_page(req, &b, 500);
	cairn_buf_puts(&b, "</feed>\n");
	cairn_httpd_add_header(req, "cache-control", "no-store");
	rc = cairn_httpd_send(req, 200, "application/atom+xml", b.data, b.len);
	cairn_buf_release(&b);
	return rc;
}

int mon_web_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err)
{
	int rc;
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/", "overview", h_overview, m, err)) <
		    0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/items", "items", h_items, m, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/item/", "item", h_item, m, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/server/", "server", h_server, m,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/atom.xml", "atom", h_atom, m, err)) < 0)
		return rc;
	return 0;
}
