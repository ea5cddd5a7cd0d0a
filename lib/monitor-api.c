/*
 * monitor-api.c - the monitor's JSON API (docs/PROTOCOL.md, "The
 * monitor's API"):
 *   GET /api/v1/summary                 counts per verdict, the servers
 *   GET /api/v1/items?verdict=V&server=ID&name=S&limit=N&cursor=C
 *                                       items, newest change first
 *   GET /api/v1/items/<hash part>       one item: every server's answer,
 *                                       its history, the file diff, where
 *                                       diffoscope's report is
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

static void json_text(struct cairn_buf *b, const char *s)
{
	if (!s)
		cairn_buf_puts(b, "null");
	else
		mon_json_str(b, s);
}

static void json_int(struct cairn_buf *b, int64_t v)
{
	if (v == MON_NULL)
		cairn_buf_puts(b, "null");
	else
		cairn_buf_printf(b, "%" PRId64, v);
}

/* A JSON array's elements: a comma before all but the first. */
struct list {
	struct cairn_buf *b;
	size_t n;
	const char *hash; /* the item's, for its links */
	int64_t id;	  /* the item's */
};

static void next_elem(struct list *l)
{
	if (l->n++)
		cairn_buf_putc(l->b, ',');
}

static int server_json(void *ctx, const struct mon_server_row *s)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	next_elem(l);
	cairn_buf_printf(b, "{\"id\":%" PRId64 ",\"url\":", s->id);
	json_text(b, s->url);
	cairn_buf_printf(b, ",\"feed\":%s,\"feed_id\":", s->has_feed ? "true" : "false");
	json_text(b, s->feed);
	cairn_buf_puts(b, ",\"feed_seq\":");
	json_int(b, s->feed_seq);
	cairn_buf_puts(b, ",\"last_ok\":");
	json_int(b, s->last_ok);
	cairn_buf_puts(b, ",\"error\":");
	json_text(b, s->last_error);
	cairn_buf_puts(b, ",\"error_since\":");
	json_int(b, s->error_since);
	cairn_buf_printf(b, ",\"present\":%" PRId64 "}", s->present);
	return 0;
}

static int summary(struct cairn_monitor *m, struct cairn_buf *b, struct cairn_error *err)
{
	uint64_t n[CAIRN_MONITOR_VERDICTS_], total = 0;
	struct list l = {.b = b};
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
	if ((rc = mon_q_servers(m->r, 0, server_json, &l, err)) < 0)
		return rc;
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

static void file_json(struct cairn_buf *b, const struct mon_file *f)
{
	if (!f->type) {
		cairn_buf_puts(b, "null");
		return;
	}
	cairn_buf_puts(b, "{\"type\":");
	json_text(b, f->type);
	cairn_buf_printf(b, ",\"size\":%" PRIu64 ",\"sha256\":", f->size);
	json_text(b, f->sha256);
	cairn_buf_puts(b, ",\"target\":");
	json_text(b, f->target);
	cairn_buf_puts(b, "}");
}

static const char *const diff_states[] = {"none", "todo", "done", "failed"};

static int item_head(void *ctx, const struct mon_item_row *it)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	int ds = (int)it->diff_state;
	l->id = it->id;
	cairn_buf_puts(b, "{\"hash\":");
	mon_json_str(b, it->hash);
	cairn_buf_puts(b, ",\"path\":");
	json_text(b, it->path);
	cairn_buf_printf(b, ",\"verdict\":\"%s\",\"since\":%" PRId64 ",\"first_seen\":",
			 cairn_monitor_verdict_name(it->verdict), it->since);
	json_int(b, it->first_seen);
	cairn_buf_puts(b, ",\"last_seen\":");
	json_int(b, it->last_seen);
	cairn_buf_printf(
	    b, ",\"diff\":{\"state\":\"%s\",\"note\":", ds >= 0 && ds <= 3 ? diff_states[ds] : "?");
	json_text(b, it->diff_note);
	cairn_buf_printf(b, ",\"tries\":%d", it->diff_tries);
	return 0;
}

static int diff_json(void *ctx, const struct mon_diff_row *d)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	next_elem(l);
	cairn_buf_puts(b, "{\"path\":");
	json_text(b, d->path);
	cairn_buf_puts(b, ",\"change\":");
	json_text(b, d->change);
	cairn_buf_puts(b, ",\"a_server\":");
	json_text(b, d->a_server);
	cairn_buf_puts(b, ",\"b_server\":");
	json_text(b, d->b_server);
	cairn_buf_puts(b, ",\"a\":");
	file_json(b, &d->a);
	cairn_buf_puts(b, ",\"b\":");
	file_json(b, &d->b);
	cairn_buf_puts(b, "}");
	return 0;
}

/* Where diffoscope's report is, not the report: it is HTML of its own,
 * served apart (monitor-web.c). */
static int diffoscope_json(void *ctx, const struct mon_diffoscope_row *d)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	l->n++;
	cairn_buf_puts(b, "{\"url\":");
	if (d->size != MON_NULL)
		cairn_buf_printf(b, "\"/item/%s/diffoscope\"", l->hash);
	else
		cairn_buf_puts(b, "null");
	cairn_buf_puts(b, ",\"size\":");
	json_int(b, d->size);
	cairn_buf_puts(b, ",\"note\":");
	json_text(b, d->note);
	cairn_buf_puts(b, ",\"a_server\":");
	json_text(b, d->a_server);
	cairn_buf_puts(b, ",\"b_server\":");
	json_text(b, d->b_server);
	cairn_buf_puts(b, "}");
	return 0;
}

static int obs_json(void *ctx, const struct mon_obs_row *o)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	next_elem(l);
	cairn_buf_puts(b, "{\"url\":");
	json_text(b, o->url);
	cairn_buf_printf(b, ",\"state\":\"%s\"", cairn_monitor_state_name(o->state));
	if (o->state == CAIRN_MONITOR_PRESENT) {
		cairn_buf_printf(
		    b, ",\"signature\":\"%s\",\"nar_hash\":", cairn_monitor_sig_name(o->sig));
		json_text(b, o->nar_hash);
		cairn_buf_puts(b, ",\"nar_size\":");
		json_int(b, o->nar_size);
		cairn_buf_puts(b, ",\"references\":");
		json_text(b, o->refs);
	}
	cairn_buf_puts(b, ",\"first_seen\":");
	json_int(b, o->first_seen);
	cairn_buf_puts(b, ",\"last_seen\":");
	json_int(b, o->last_seen);
	cairn_buf_puts(b, ",\"narinfo\":");
	json_text(b, o->narinfo);
	cairn_buf_puts(b, "}");
	return 0;
}

static int peer_json(void *ctx, const struct mon_peer_row *p)
{
	struct list *l = ctx;
	struct cairn_buf *b = l->b;
	next_elem(l);
	cairn_buf_puts(b, "{\"peer\":");
	json_text(b, p->peer);
	cairn_buf_puts(b, ",\"monitor\":");
	json_text(b, p->monitor);
	cairn_buf_puts(b, ",\"server\":");
	json_text(b, p->server);
	cairn_buf_puts(b, ",\"state\":");
	json_text(b, p->state);
	cairn_buf_puts(b, ",\"nar_hash\":");
	json_text(b, p->nar_hash);
	cairn_buf_puts(b, ",\"nar_size\":");
	json_int(b, p->nar_size);
	cairn_buf_puts(b, ",\"at\":");
	json_int(b, p->at);
	cairn_buf_puts(b, "}");
	return 0;
}

static int history_json(void *ctx, const struct mon_history_row *h)
{
	struct list *l = ctx;
	next_elem(l);
	cairn_buf_printf(l->b, "{\"at\":%" PRId64 ",\"verdict\":\"%s\"}", h->at,
			 cairn_monitor_verdict_name(h->verdict));
	return 0;
}

/* One item as JSON into b; CAIRN_ENOENT when unknown. */
static int item_json(struct cairn_monitor *m, const char *hash, struct cairn_buf *b,
		     struct cairn_error *err)
{
	struct list l = {.b = b, .hash = hash};
	int rc;
	if ((rc = mon_q_item(m->r, hash, item_head, &l, err)) < 0)
		return rc;
	cairn_buf_puts(b, ",\"files\":[");
	if ((rc = mon_q_diffs(m->r, l.id, diff_json, &l, err)) < 0)
		return rc;
	cairn_buf_puts(b, "],\"diffoscope\":");
	l.n = 0;
	if ((rc = mon_q_diffoscope(m->r, l.id, diffoscope_json, &l, err)) < 0)
		return rc;
	if (!l.n)
		cairn_buf_puts(b, "null");
	cairn_buf_puts(b, "},\"servers\":[");
	l.n = 0;
	if ((rc = mon_q_obs(m->r, l.id, obs_json, &l, err)) < 0)
		return rc;
	cairn_buf_puts(b, "],\"peers\":[");
	l.n = 0;
	if ((rc = mon_q_peers(m->r, hash, peer_json, &l, err)) < 0)
		return rc;
	cairn_buf_puts(b, "],\"history\":[");
	l.n = 0;
	if ((rc = mon_q_history(m->r, l.id, history_json, &l, err)) < 0)
		return rc;
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
