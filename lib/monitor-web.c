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

/* Text from the database: NULL shows as nothing. */
static void html_text(struct cairn_buf *b, const char *s)
{
	cairn_html_cstr(b, s ? s : "");
}

static void time_or_never(struct cairn_buf *b, int64_t at)
{
	char t[32];
	if (at == MON_NULL) {
		cairn_buf_puts(b, "never");
		return;
	}
	mon_time(at, t);
	cairn_buf_puts(b, t);
}

/* What a page's row callbacks write into, and read from. */
struct page {
	struct cairn_monitor *m;
	struct cairn_buf *b;
	struct cairn_error *err;
	int64_t id;	  /* the item's */
	const char *hash; /* the item's */
	enum mon_diff_state diff_state;
	size_t n; /* rows so far */
	/* verdict_trend: the day being summed, and its counts */
	int64_t day;
	int64_t counts[CAIRN_MONITOR_VERDICTS_];
};

/* ---- agreement between servers, and trends ------------------------------ */

/* Daily buckets shown: a day without a row is a day nothing changed. */
#define TREND_DAYS 14
/* the newest disagreements in the Atom feed */
#define ATOM_ENTRIES 50

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

static int trend_day(void *ctx, const struct mon_day_row *d)
{
	struct page *p = ctx;
	char day[32];
	day_name(d->day, day);
	cairn_buf_printf(p->b, "<span class=\"day\"><time>%s</time> ", day);
	rate(p->b, d->agree, d->both_have);
	cairn_buf_puts(p->b, "</span> ");
	return 0;
}

static int pair_row(void *ctx, const struct mon_pair_row *r)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	p->n++;
	cairn_buf_printf(b, "<tr><td><a href=\"/server/%" PRId64 "\">", r->a);
	html_text(b, r->a_url);
	cairn_buf_printf(b, "</a></td><td><a href=\"/server/%" PRId64 "\">", r->b);
	html_text(b, r->b_url);
	cairn_buf_printf(b, "</a></td><td>%" PRId64 "</td><td>%" PRId64 "</td><td class=\"rate\">",
			 r->both_have, r->agree);
	rate(b, r->agree, r->both_have);
	cairn_buf_puts(b, "</td><td class=\"trend\">");
	int rc = mon_q_pair_trend(p->m->r, r->a, r->b, TREND_DAYS, trend_day, p, p->err);
	cairn_buf_puts(b, "</td></tr>");
	return rc;
}

/*
 * Each pair of servers (those with SERVER, or all for 0): the items both
 * have, how many of them they agree on, the rate, and the rate on each of
 * the last TREND_DAYS days with a change, oldest first.
 */
static int agreement(struct cairn_monitor *m, struct cairn_buf *b, int64_t server,
		     struct cairn_error *err)
{
	struct page p = {.m = m, .b = b, .err = err};
	int rc;
	cairn_buf_printf(b,
			 "<h2>Agreement</h2><table class=\"agreement\"><tr><th>server</th>"
			 "<th>server</th><th>both have</th><th>agree</th><th>rate</th>"
			 "<th>by day (last %d with a change)</th></tr>",
			 TREND_DAYS);
	if ((rc = mon_q_pairs(m->r, server, pair_row, &p, err)) < 0)
		return rc;
	if (p.n == 0)
		cairn_buf_puts(b, "<tr><td colspan=\"6\">No item on two servers yet.</td></tr>");
	cairn_buf_puts(b, "</table>");
	return 0;
}

/* A row of the verdict trend: the day summed so far, when another starts. */
static void trend_flush(struct page *p)
{
	char t[32];
	day_name(p->day, t);
	cairn_buf_printf(p->b, "<tr><td><time>%s</time></td>", t);
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		cairn_buf_printf(p->b, "<td>%" PRId64 "</td>", p->counts[v]);
	cairn_buf_puts(p->b, "</tr>");
	p->n++;
}

static int verdict_day(void *ctx, const struct mon_day_row *d)
{
	struct page *p = ctx;
	if (p->day >= 0 && d->day != p->day)
		trend_flush(p);
	if (d->verdict >= 0 && d->verdict < CAIRN_MONITOR_VERDICTS_)
		p->counts[d->verdict] = d->n;
	p->day = d->day;
	return 0;
}

/*
 * Items per verdict at the end of each of the last TREND_DAYS days with a
 * change: a verdict without a row that day kept its count from before.
 */
static int verdict_trend(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	struct page p = {.m = m, .b = b, .err = err, .day = -1};
	int rc;
	cairn_buf_puts(b, "<h2>Items per verdict, by day</h2><table class=\"trend\"><tr><th>day</th>");
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		cairn_buf_printf(b, "<th>%s</th>", cairn_monitor_verdict_name(v));
	cairn_buf_puts(b, "</tr>");
	if ((rc = mon_q_verdict_trend(m->r, TREND_DAYS, verdict_day, &p, err)) < 0)
		return rc;
	if (p.day >= 0)
		trend_flush(&p);
	if (!p.n)
		cairn_buf_printf(b, "<tr><td colspan=\"%d\">No verdict yet.</td></tr>",
				 CAIRN_MONITOR_VERDICTS_ + 1);
	cairn_buf_puts(b, "</table>");
	return 0;
}

/* ---- overview ------------------------------------------------------------- */

static int server_row(void *ctx, const struct mon_server_row *s)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	cairn_buf_printf(b, "<tr><td><a href=\"/server/%" PRId64 "\">", s->id);
	html_text(b, s->url);
	cairn_buf_printf(b, "</a></td><td>%s</td><td>%" PRId64 "</td><td>",
			 s->has_feed ? "yes" : "no", s->present);
	time_or_never(b, s->last_ok);
	cairn_buf_puts(b, "</td><td>");
	if (!s->last_error) {
		cairn_buf_puts(b, "up");
	} else {
		cairn_buf_puts(b, "<span class=\"invalid\">down</span>: ");
		html_text(b, s->last_error);
	}
	cairn_buf_puts(b, "</td></tr>");
	return 0;
}

static int overview(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_];
	struct page p = {.m = m, .b = b, .err = err};
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
	if ((rc = mon_q_servers(m->r, 0, server_row, &p, err)) < 0)
		return rc;
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
static int diffoscope_row(void *ctx, const struct mon_diffoscope_row *d)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	cairn_buf_puts(b, "<h2>diffoscope</h2><p>");
	if (d->size != MON_NULL)
		cairn_buf_printf(b, "<a href=\"/item/%s/diffoscope\">diffoscope's report</a> ",
				 p->hash);
	cairn_buf_puts(b, "comparing ");
	html_text(b, d->a_server);
	cairn_buf_puts(b, " with ");
	html_text(b, d->b_server);
	if (d->note) {
		cairn_buf_puts(b, ". ");
		html_text(b, d->note);
	}
	cairn_buf_puts(b, ".</p>");
	return 0;
}

static int item_row(void *ctx, const struct mon_item_row *it)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	p->id = it->id;
	p->diff_state = it->diff_state;
	head(b, it->path);
	cairn_buf_printf(b, "<p>Verdict: <span class=\"%s\">%s</span> since ",
			 cairn_monitor_verdict_name(it->verdict),
			 cairn_monitor_verdict_name(it->verdict));
	time_or_never(b, it->since);
	cairn_buf_puts(b, "; first seen ");
	time_or_never(b, it->first_seen);
	cairn_buf_puts(b, ".</p>");
	if (it->diff_state == MON_DIFF_TODO)
		cairn_buf_puts(b, "<p>The NARs are to be compared.</p>");
	if (it->diff_note) {
		cairn_buf_puts(b, "<p>Diff: ");
		html_text(b, it->diff_note);
		if (it->diff_state == MON_DIFF_FAILED)
			cairn_buf_printf(b, " (tried %d times%s)", it->diff_tries,
					 it->diff_tries < MON_DIFF_TRIES
					     ? "; tried again at the next full pass"
					     : "; not tried again until the claims change");
		cairn_buf_puts(b, "</p>");
	}
	return 0;
}

static int diff_row(void *ctx, const struct mon_diff_row *d)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	cairn_buf_puts(b, "<tr><td><code>");
	html_text(b, d->path);
	cairn_buf_puts(b, "</code></td><td>");
	html_text(b, d->change);
	for (int side = 0; side < 2; side++) {
		const struct mon_file *f = side ? &d->b : &d->a;
		cairn_buf_puts(b, "</td><td>");
		if (!f->type) {
			cairn_buf_puts(b, "&mdash;");
			continue;
		}
		html_text(b, side ? d->b_server : d->a_server);
		cairn_buf_puts(b, ": ");
		html_text(b, f->type);
		if (f->sha256) {
			cairn_buf_printf(b, ", %" PRIu64 " bytes, sha256 <code>", f->size);
			html_text(b, f->sha256);
			cairn_buf_puts(b, "</code>");
		}
		if (f->target) {
			cairn_buf_puts(b, " &rarr; <code>");
			html_text(b, f->target);
			cairn_buf_puts(b, "</code>");
		}
	}
	cairn_buf_puts(b, "</td></tr>");
	return 0;
}

static int obs_row(void *ctx, const struct mon_obs_row *o)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	cairn_buf_printf(b, "<div><h3><a href=\"/server/%" PRId64 "\">", o->server);
	html_text(b, o->url);
	cairn_buf_printf(b, "</a></h3><p>%s", cairn_monitor_state_name(o->state));
	if (o->state == CAIRN_MONITOR_PRESENT) {
		cairn_buf_printf(b, ", signature %s, NarHash <code>",
				 cairn_monitor_sig_name(o->sig));
		html_text(b, o->nar_hash);
		cairn_buf_printf(b, "</code>, NarSize %" PRId64,
				 o->nar_size == MON_NULL ? 0 : o->nar_size);
	}
	cairn_buf_puts(b, "; since ");
	time_or_never(b, o->first_seen);
	cairn_buf_puts(b, ", last asked ");
	time_or_never(b, o->last_seen);
	cairn_buf_puts(b, "</p>");
	if (o->narinfo) {
		cairn_buf_puts(b, "<pre>");
		html_text(b, o->narinfo);
		cairn_buf_puts(b, "</pre>");
	}
	cairn_buf_puts(b, "</div>");
	return 0;
}

static int peer_row(void *ctx, const struct mon_peer_row *r)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	if (!p->n++)
		cairn_buf_puts(b, "<h2>What other monitors saw</h2><table><tr><th>monitor</th>"
				  "<th>server</th><th>state</th><th>NarHash</th><th>at</th></tr>");
	cairn_buf_puts(b, "<tr><td>");
	html_text(b, r->peer);
	cairn_buf_puts(b, "</td><td>");
	html_text(b, r->server);
	cairn_buf_puts(b, "</td><td>");
	html_text(b, r->state);
	cairn_buf_puts(b, "</td><td><code>");
	html_text(b, r->nar_hash);
	cairn_buf_puts(b, "</code></td><td>");
	time_or_never(b, r->at);
	cairn_buf_puts(b, "</td></tr>");
	return 0;
}

static int history_row(void *ctx, const struct mon_history_row *h)
{
	struct page *p = ctx;
	cairn_buf_puts(p->b, "<li>");
	time_or_never(p->b, h->at);
	cairn_buf_printf(p->b, ": %s</li>", cairn_monitor_verdict_name(h->verdict));
	return 0;
}

static int item_page(struct cairn_monitor *m, const char *hash, struct cairn_buf *b,
		     struct cairn_error *err)
{
	struct page p = {.m = m, .b = b, .err = err, .hash = hash};
	int rc;
	if ((rc = mon_q_item(m->r, hash, item_row, &p, err)) < 0)
		return rc;
	if (p.diff_state == MON_DIFF_DONE || p.diff_state == MON_DIFF_FAILED) {
		cairn_buf_puts(b, "<h2>Files that differ</h2><table><tr><th>file</th><th>change</th>"
				  "<th>A</th><th>B</th></tr>");
		if ((rc = mon_q_diffs(m->r, p.id, diff_row, &p, err)) < 0)
			return rc;
		cairn_buf_puts(b, "</table>");
		if ((rc = mon_q_diffoscope(m->r, p.id, diffoscope_row, &p, err)) < 0)
			return rc;
	}
	cairn_buf_puts(b, "<h2>What each server says</h2><div class=\"side\">");
	if ((rc = mon_q_obs(m->r, p.id, obs_row, &p, err)) < 0)
		return rc;
	cairn_buf_puts(b, "</div>");
	if ((rc = mon_q_peers(m->r, hash, peer_row, &p, err)) < 0)
		return rc;
	cairn_buf_puts(b, p.n ? "</table><h2>History</h2><ul>" : "<h2>History</h2><ul>");
	if ((rc = mon_q_history(m->r, p.id, history_row, &p, err)) < 0)
		return rc;
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
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	int rc = mon_q_diffoscope_html(m->r, hash, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	int status = rc == 0 ? 200 : rc == CAIRN_ENOENT ? 404 : 500;
	if (status != 200)
		return fail_page(req, &b, status);
	cairn_httpd_add_header(req, "cache-control", "no-store");
	cairn_httpd_add_header(req, "content-security-policy",
			       "sandbox; default-src 'none'; style-src 'unsafe-inline'");
	cairn_httpd_add_header(req, "x-content-type-options", "nosniff");
	rc = cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "", b.len);
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

static int server_head(void *ctx, const struct mon_server_row *s)
{
	struct page *p = ctx;
	struct cairn_buf *b = p->b;
	head(b, s->url);
	if (s->has_feed) {
		cairn_buf_puts(b, "<p>Followed through its signed feed <code>");
		html_text(b, s->feed);
		cairn_buf_printf(b, "</code> at event %" PRId64 ".</p>",
				 s->feed_seq == MON_NULL ? 0 : s->feed_seq);
	} else {
		cairn_buf_puts(b, "<p>No feed: asked about the path list's items.</p>");
	}
	cairn_buf_puts(b, "<p>Last answer: ");
	time_or_never(b, s->last_ok);
	if (s->last_error) {
		cairn_buf_puts(b, "; failing since ");
		time_or_never(b, s->error_since);
		cairn_buf_puts(b, ": ");
		html_text(b, s->last_error);
	}
	cairn_buf_puts(b, "</p>");
	return 0;
}

static int h_server(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	char num[24], *end;
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	struct page p = {.m = m, .b = &b, .err = &err};
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
	if ((rc = mon_q_servers(m->r, id, server_head, &p, &err)) < 0)
		goto out;
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

struct atom {
	struct cairn_buf *b;
	const char *base;
	size_t n;
};

static int atom_entry(void *ctx, const struct mon_history_row *h)
{
	struct atom *a = ctx;
	struct cairn_buf *b = a->b;
	char t[32];
	mon_time(h->at, t);
	if (!a->n++)
		cairn_buf_printf(b, "<updated>%s</updated>", t);
	cairn_buf_puts(b, "<entry><title>differs: ");
	html_text(b, h->path);
	cairn_buf_puts(b, "</title><id>");
	cairn_html_cstr(b, a->base);
	cairn_buf_puts(b, "/item/");
	html_text(b, h->hash);
	cairn_buf_printf(b, "#%s</id><updated>%s</updated><link href=\"", t, t);
	cairn_html_cstr(b, a->base);
	cairn_buf_puts(b, "/item/");
	html_text(b, h->hash);
	cairn_buf_puts(b, "\"/></entry>");
	return 0;
}

static int h_atom(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	struct cairn_buf b = CAIRN_BUF_INIT(PAGE_MAX);
	struct cairn_error err;
	int rc;
	size_t alen = 0;
	const char *auth = cairn_httpd_req_authority(req, &alen);
	char base[300];
	snprintf(base, sizeof(base), "http://%.*s", (int)(alen < 256 ? alen : 0), auth ? auth : "");
	struct atom a = {.b = &b, .base = base};
	cairn_error_init(&err);
	cairn_buf_puts(&b, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			   "<feed xmlns=\"http://www.w3.org/2005/Atom\">"
			   "<title>cairn monitor: disagreements</title><id>");
	cairn_html_cstr(&b, base);
	cairn_buf_puts(&b, "/atom.xml</id>");
	pthread_mutex_lock(&m->r->lock);
	rc = mon_q_differs_since(m->r, ATOM_ENTRIES, atom_entry, &a, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0)
		return fail_page(req, &b, 500);
	if (!a.n)
		cairn_buf_puts(&b, "<updated>1970-01-01T00:00:00Z</updated>");
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
