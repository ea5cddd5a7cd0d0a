/*
 * monitor-api.c - the monitor's JSON API (docs/PROTOCOL.md, "The
 * monitor's API"):
 *   GET /api/v1/summary                 counts per verdict, the servers
 *   GET /api/v1/items?verdict=V&server=ID&name=S&limit=N&cursor=C
 *                                       items, newest change first
 *   GET /api/v1/items/<hash part>       one item: every server's answer,
 *                                       its history, the file diff
 * Everything a server sent is a JSON string with exact escapes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/httpd.h"
#include "cairn/escape.h"
#include "monitor-int.h"
#include "cairn/banned.h"

#define API_BODY_MAX ((size_t)64 << 20)

/* JSON the API serves stays inert even if a page embeds it. */
static int mon_json_str(struct cairn_buf *b, const char *s)
{
	return cairn_json_str_html_safe(b, s ? s : "", s ? strlen(s) : 0);
}

static int send_json(struct cairn_httpd_req *req, int status, struct cairn_buf *b)
{
	cairn_httpd_add_header(req, "cache-control", "no-store");
	return cairn_httpd_send(req, status, "application/json", b->data ? b->data : "", b->len);
}

static int send_problem(struct cairn_httpd_req *req, int status, const char *msg)
{
	struct cairn_buf b = CAIRN_BUF_INIT(4096);
	cairn_buf_puts(&b, "{\"error\":");
	mon_json_str(&b, msg);
	cairn_buf_puts(&b, "}\n");
	int rc = send_json(req, status, &b);
	cairn_buf_release(&b);
	return rc;
}

static void json_text_col(struct cairn_buf *b, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cairn_buf_puts(b, "null");
	else
		mon_json_str(b, (const char *)sqlite3_column_text(st, col));
}

static void json_int_col(struct cairn_buf *b, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		cairn_buf_puts(b, "null");
	else
		cairn_buf_printf(b, "%" PRId64, (int64_t)sqlite3_column_int64(st, col));
}

static int summary(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_], total = 0;
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_verdict_counts(m->r, n, err)) < 0)
		return rc;
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		total += n[v];
	cairn_buf_printf(b, "{\"version\":1,\"items\":%" PRIu64 ",\"verdicts\":{", total);
	for (int v = 0; v < CAIRN_MONITOR_VERDICTS_; v++)
		cairn_buf_printf(b, "%s\"%s\":%" PRIu64, v ? "," : "", cairn_monitor_verdict_name(v),
				 n[v]);
	cairn_buf_printf(b, "},\"passes\":%" PRIu64 ",\"servers\":[", (uint64_t)atomic_load(&m->passes));
	if ((rc = mon_db_prepare(m->r,
				 "SELECT s.id, s.url, s.has_feed, s.feed, s.feed_seq, s.last_ok,"
				 " s.last_error, s.error_since,"
				 " coalesce((SELECT present FROM server_counts c WHERE c.server = s.id), 0)"
				 " FROM servers s ORDER BY s.id",
				 &st, err)) < 0)
		return rc;
	for (int k = 0; sqlite3_step(st) == SQLITE_ROW; k++) {
		cairn_buf_printf(b, "%s{\"id\":%" PRId64 ",\"url\":", k ? "," : "",
				 (int64_t)sqlite3_column_int64(st, 0));
		json_text_col(b, st, 1);
		cairn_buf_printf(b, ",\"feed\":%s,\"feed_id\":",
				 sqlite3_column_int(st, 2) ? "true" : "false");
		json_text_col(b, st, 3);
		cairn_buf_puts(b, ",\"feed_seq\":");
		json_int_col(b, st, 4);
		cairn_buf_puts(b, ",\"last_ok\":");
		json_int_col(b, st, 5);
		cairn_buf_puts(b, ",\"error\":");
		json_text_col(b, st, 6);
		cairn_buf_puts(b, ",\"error_since\":");
		json_int_col(b, st, 7);
		cairn_buf_puts(b, ",\"present\":");
		json_int_col(b, st, 8);
		cairn_buf_puts(b, "}");
	}
	sqlite3_finalize(st);
	return cairn_buf_puts(b, "]}\n") ? CAIRN_ELIMIT : 0;
}

static int h_summary(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	struct cairn_buf b = CAIRN_BUF_INIT(API_BODY_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	int rc = summary(m, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	rc = rc < 0 ? send_problem(req, 500, cairn_error_msg(&err)) : send_json(req, 200, &b);
	cairn_buf_release(&b);
	return rc;
}

static int list_row(void *ctx, const struct mon_row *row)
{
	struct cairn_buf *b = ctx;
	bool first = b->data[b->len - 1] == '[';
	cairn_buf_puts(b, first ? "{\"hash\":" : ",{\"hash\":");
	mon_json_str(b, row->hash);
	cairn_buf_puts(b, ",\"path\":");
	mon_json_str(b, row->path);
	cairn_buf_printf(b, ",\"verdict\":\"%s\",\"since\":%" PRId64 "}",
			 cairn_monitor_verdict_name(row->verdict), row->since);
	return 0;
}

static int h_items(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t qlen = 0;
	const char *q = cairn_httpd_req_query(req, &qlen);
	char vb[32], lb[16], cb[64], sb[24], nb[256];
	const char *v = mon_query_get(q, qlen, "verdict", vb, sizeof(vb));
	const char *l = mon_query_get(q, qlen, "limit", lb, sizeof(lb));
	const char *c = mon_query_get(q, qlen, "cursor", cb, sizeof(cb));
	const char *s = mon_query_get(q, qlen, "server", sb, sizeof(sb));
	const char *name = mon_query_get(q, qlen, "name", nb, sizeof(nb));
	int verdict = -1;
	long limit = CAIRN_MONITOR_PAGE_DEFAULT;
	int64_t server = 0;
	struct mon_cursor cur, next = {0, 0};
	bool more = false;
	char *end;

	if (v && (verdict = cairn_monitor_verdict_parse(v, strlen(v))) < 0)
		return send_problem(req, 400, "verdict: not one of agree, differs, invalid, "
					      "only-one, unsigned, absent");
	if (l && ((limit = strtol(l, &end, 10)) < 1 || *end || limit > CAIRN_MONITOR_PAGE_MAX))
		return send_problem(req, 400, "limit: 1 to 1000");
	if (s && ((server = strtoll(s, &end, 10)) < 1 || *end))
		return send_problem(req, 400, "server: a server id");
	if (mon_cursor_parse(c, &cur) < 0)
		return send_problem(req, 400, "cursor: as given in \"next\"");

	struct cairn_buf b = CAIRN_BUF_INIT(API_BODY_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	cairn_buf_puts(&b, "{\"items\":[");
	pthread_mutex_lock(&m->r->lock);
	int rc = mon_list(m->r, verdict, server, name, &cur, (unsigned)limit, list_row, &b, &next,
			  &more, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0) {
		cairn_buf_release(&b);
		return send_problem(req, 500, cairn_error_msg(&err));
	}
	if (more)
		cairn_buf_printf(&b, "],\"next\":\"%" PRId64 ".%" PRId64 "\"}\n", next.since,
				 next.id);
	else
		cairn_buf_puts(&b, "],\"next\":null}\n");
	rc = send_json(req, 200, &b);
	cairn_buf_release(&b);
	return rc;
}

static void file_json(struct cairn_buf *b, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL) {
		cairn_buf_puts(b, "null");
		return;
	}
	cairn_buf_puts(b, "{\"type\":");
	json_text_col(b, st, col);
	cairn_buf_puts(b, ",\"size\":");
	json_int_col(b, st, col + 1);
	cairn_buf_puts(b, ",\"sha256\":");
	json_text_col(b, st, col + 2);
	cairn_buf_puts(b, ",\"target\":");
	json_text_col(b, st, col + 3);
	cairn_buf_puts(b, "}");
}

static const char *const diff_states[] = {"none", "todo", "done", "failed"};

/* One item as JSON into b; CAIRN_ENOENT when unknown. */
static int item_json(struct cairn_monitor *m, const char *hash, struct cairn_buf *b,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	int64_t id;
	if ((rc = mon_db_prepare(m->r,
				 "SELECT id, path, verdict, verdict_since, first_seen, last_seen,"
				 " diff_state, diff_note, diff_tries FROM items WHERE hash = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		return CAIRN_ENOENT;
	}
	id = sqlite3_column_int64(st, 0);
	int ds = sqlite3_column_int(st, 6);
	cairn_buf_puts(b, "{\"hash\":");
	mon_json_str(b, hash);
	cairn_buf_puts(b, ",\"path\":");
	json_text_col(b, st, 1);
	cairn_buf_printf(b, ",\"verdict\":\"%s\",\"since\":%" PRId64 ",\"first_seen\":%" PRId64
			    ",\"last_seen\":%" PRId64 ",\"diff\":{\"state\":\"%s\",\"note\":",
			 cairn_monitor_verdict_name(sqlite3_column_int(st, 2)),
			 (int64_t)sqlite3_column_int64(st, 3), (int64_t)sqlite3_column_int64(st, 4),
			 (int64_t)sqlite3_column_int64(st, 5),
			 ds >= 0 && ds <= 3 ? diff_states[ds] : "?");
	json_text_col(b, st, 7);
	cairn_buf_printf(b, ",\"tries\":%d", sqlite3_column_int(st, 8));
	sqlite3_finalize(st);

	cairn_buf_puts(b, ",\"files\":[");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT d.path, d.change, sa.url, sb.url, d.a_type, d.a_size,"
				 " d.a_sha256, d.a_target, d.b_type, d.b_size, d.b_sha256, d.b_target"
				 " FROM diffs d LEFT JOIN servers sa ON sa.id = d.a_server"
				 " LEFT JOIN servers sb ON sb.id = d.b_server WHERE d.item = ?"
				 " ORDER BY d.rowid",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	for (int k = 0; sqlite3_step(st) == SQLITE_ROW; k++) {
		cairn_buf_puts(b, k ? ",{\"path\":" : "{\"path\":");
		json_text_col(b, st, 0);
		cairn_buf_puts(b, ",\"change\":");
		json_text_col(b, st, 1);
		cairn_buf_puts(b, ",\"a_server\":");
		json_text_col(b, st, 2);
		cairn_buf_puts(b, ",\"b_server\":");
		json_text_col(b, st, 3);
		cairn_buf_puts(b, ",\"a\":");
		file_json(b, st, 4);
		cairn_buf_puts(b, ",\"b\":");
		file_json(b, st, 8);
		cairn_buf_puts(b, "}");
	}
	sqlite3_finalize(st);

	cairn_buf_puts(b, "]},\"servers\":[");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT s.url, o.state, o.sig, o.nar_hash, o.nar_size, o.refs,"
				 " o.first_seen, o.last_seen, o.narinfo FROM obs o"
				 " JOIN servers s ON s.id = o.server WHERE o.item = ? ORDER BY s.id",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	for (int k = 0; sqlite3_step(st) == SQLITE_ROW; k++) {
		int state = sqlite3_column_int(st, 1);
		cairn_buf_puts(b, k ? ",{\"url\":" : "{\"url\":");
		json_text_col(b, st, 0);
		cairn_buf_printf(b, ",\"state\":\"%s\"", cairn_monitor_state_name(state));
		if (state == CAIRN_MONITOR_PRESENT) {
			cairn_buf_printf(b, ",\"signature\":\"%s\",\"nar_hash\":",
					 cairn_monitor_sig_name(sqlite3_column_int(st, 2)));
			json_text_col(b, st, 3);
			cairn_buf_puts(b, ",\"nar_size\":");
			json_int_col(b, st, 4);
			cairn_buf_puts(b, ",\"references\":");
			json_text_col(b, st, 5);
		}
		cairn_buf_puts(b, ",\"first_seen\":");
		json_int_col(b, st, 6);
		cairn_buf_puts(b, ",\"last_seen\":");
		json_int_col(b, st, 7);
		cairn_buf_puts(b, ",\"narinfo\":");
		json_text_col(b, st, 8);
		cairn_buf_puts(b, "}");
	}
	sqlite3_finalize(st);

	cairn_buf_puts(b, "],\"peers\":[");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT peer, monitor, server, state, nar_hash, nar_size, at FROM peer_obs"
				 " WHERE hash = ? ORDER BY peer, seq",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	for (int k = 0; sqlite3_step(st) == SQLITE_ROW; k++) {
		cairn_buf_puts(b, k ? ",{\"peer\":" : "{\"peer\":");
		json_text_col(b, st, 0);
		cairn_buf_puts(b, ",\"monitor\":");
		json_text_col(b, st, 1);
		cairn_buf_puts(b, ",\"server\":");
		json_text_col(b, st, 2);
		cairn_buf_puts(b, ",\"state\":");
		json_text_col(b, st, 3);
		cairn_buf_puts(b, ",\"nar_hash\":");
		json_text_col(b, st, 4);
		cairn_buf_puts(b, ",\"nar_size\":");
		json_int_col(b, st, 5);
		cairn_buf_puts(b, ",\"at\":");
		json_int_col(b, st, 6);
		cairn_buf_puts(b, "}");
	}
	sqlite3_finalize(st);

	cairn_buf_puts(b, "],\"history\":[");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT at, verdict FROM history WHERE item = ? ORDER BY at, rowid",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	for (int k = 0; sqlite3_step(st) == SQLITE_ROW; k++)
		cairn_buf_printf(b, "%s{\"at\":%" PRId64 ",\"verdict\":\"%s\"}", k ? "," : "",
				 (int64_t)sqlite3_column_int64(st, 0),
				 cairn_monitor_verdict_name(sqlite3_column_int(st, 1)));
	sqlite3_finalize(st);
	return cairn_buf_puts(b, "]}\n") ? CAIRN_ELIMIT : 0;
}

static int h_item(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	size_t len;
	const char *path = cairn_httpd_req_path(req, &len);
	static const char prefix[] = "/api/v1/items/";
	char hash[MON_HASH_LEN + 1];
	if (len < sizeof(prefix) - 1 || !mon_hash_ok(path + sizeof(prefix) - 1,
						      len - (sizeof(prefix) - 1)))
		return send_problem(req, 404, "not an item's hash part");
	memcpy(hash, path + sizeof(prefix) - 1, MON_HASH_LEN);
	hash[MON_HASH_LEN] = '\0';
	struct cairn_buf b = CAIRN_BUF_INIT(API_BODY_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	int rc = item_json(m, hash, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc == CAIRN_ENOENT)
		rc = send_problem(req, 404, "no such item");
	else if (rc < 0)
		rc = send_problem(req, 500, cairn_error_msg(&err));
	else
		rc = send_json(req, 200, &b);
	cairn_buf_release(&b);
	return rc;
}

int mon_api_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err)
{
	int rc;
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/api/v1/summary", "api-summary",
				    h_summary, m, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/api/v1/items", "api-items", h_items, m,
				    err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/api/v1/items/", "api-item", h_item, m,
				    err)) < 0)
		return rc;
	return 0;
}
