/*
 * monitor-query.c - what the pages (monitor-web.c) and the JSON API
 * (monitor-api.c) share: every read of the database they make, a small
 * struct per row handed to a callback, so that the two only format; the
 * paginated item lists; the query-string and cursor parsing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor-int.h"
#include "cairn/banned.h"

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
				      : -1;
}

const char *mon_query_get(const char *q, size_t qlen, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	const char *p = q, *end = q ? q + qlen : NULL;
	while (p && p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if ((size_t)(e - p) > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
			size_t o = 0;
			for (const char *v = p + klen + 1; v < e; v++) {
				char c = *v;
				if (c == '+')
					c = ' ';
				else if (c == '%' && e - v > 2 && hexval(v[1]) >= 0 &&
					 hexval(v[2]) >= 0) {
					c = (char)(hexval(v[1]) * 16 + hexval(v[2]));
					v += 2;
				}
				if (o + 1 >= cap || c == '\0')
					return NULL;
				out[o++] = c;
			}
			out[o] = '\0';
			return out;
		}
		p = amp ? amp + 1 : end;
	}
	return NULL;
}

void mon_time(int64_t t, char out[32])
{
	struct tm tm;
	time_t tt = (time_t)t;
	if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, 32, "%" PRId64, t);
}

int mon_cursor_parse(const char *s, struct mon_cursor *c)
{
	char *end;
	c->since = INT64_MAX;
	c->id = INT64_MAX;
	if (!s || !*s)
		return 0;
	long long a = strtoll(s, &end, 10);
	if (end == s || *end != '.')
		return CAIRN_EFORMAT;
	const char *t = end + 1;
	long long b = strtoll(t, &end, 10);
	if (end == t || *end || a < 0 || b < 0)
		return CAIRN_EFORMAT;
	c->since = a;
	c->id = b;
	return 0;
}

bool mon_hash_ok(const char *s, size_t len)
{
	static const char nix32[] = "0123456789abcdfghijklmnpqrsvwxyz";
	if (len != MON_HASH_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !strchr(nix32, s[i]))
			return false;
	return true;
}

int mon_list(struct mon_db *r, int verdict, int64_t server, const char *name,
	     const struct mon_cursor *c, unsigned limit,
	     int (*fn)(void *ctx, const struct mon_row *row), void *ctx, struct mon_cursor *next,
	     bool *more, struct cairn_error *err)
{
	/* row values against the (verdict, verdict_since DESC, id DESC) and
	 * (verdict_since DESC, id DESC) indexes; the name is a substring of
	 * the store path (instr: no pattern characters to escape) */
	char sql[768];
	sqlite3_stmt *st;
	unsigned n = 0;
	int rc;
	snprintf(sql, sizeof(sql),
		 "SELECT i.id, i.hash, i.path, i.verdict, i.verdict_since FROM items i%s"
		 " WHERE (i.verdict_since, i.id) < (?2, ?3)%s%s"
		 " ORDER BY i.verdict_since DESC, i.id DESC LIMIT ?4",
		 server > 0 ? " JOIN obs o ON o.item = i.id AND o.server = ?5 AND o.state <> 2" : "",
		 verdict >= 0 ? " AND i.verdict = ?1" : "",
		 name && *name ? " AND instr(i.path, ?6) > 0" : "");
	*more = false;
	if ((rc = mon_db_prepare(r, sql, &st, err)) < 0)
		return rc;
	if (verdict >= 0)
		sqlite3_bind_int(st, 1, verdict);
	sqlite3_bind_int64(st, 2, c->since);
	sqlite3_bind_int64(st, 3, c->id);
	sqlite3_bind_int64(st, 4, (int64_t)limit + 1);
	if (server > 0)
		sqlite3_bind_int64(st, 5, server);
	if (name && *name)
		sqlite3_bind_text(st, 6, name, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == limit) {
			*more = true;
			break;
		}
		struct mon_row row = {
			.id = sqlite3_column_int64(st, 0),
			.hash = (const char *)sqlite3_column_text(st, 1),
			.path = (const char *)sqlite3_column_text(st, 2),
			.verdict = sqlite3_column_int(st, 3),
			.since = sqlite3_column_int64(st, 4),
		};
		if ((rc = fn(ctx, &row)) < 0)
			break;
		next->since = row.since;
		next->id = row.id;
		n++;
	}
	sqlite3_finalize(st);
	return rc;
}

/* ---- the rows the pages and the API share ---------------------------------- */

static const char *col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static int64_t col_int(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? MON_NULL
							   : sqlite3_column_int64(st, col);
}

/* The end of a statement's rows: its error, if stepping failed (not when
 * fn stopped it), then it is finalized. */
static int finish(struct mon_db *r, sqlite3_stmt *st, int step, int rc, struct cairn_error *err)
{
	if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = cairn_error_set(err, CAIRN_EIO, "monitor: database: read: %s",
				     sqlite3_errmsg(r->db));
	sqlite3_finalize(st);
	return rc;
}

int mon_q_servers(struct mon_db *r, int64_t id,
		  int (*fn)(void *ctx, const struct mon_server_row *s), void *ctx,
		  struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	bool any = false;
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT s.id, s.url, s.has_feed, s.feed, s.feed_seq, s.last_ok,"
		 " s.last_error, s.error_since,"
		 " coalesce((SELECT present FROM server_counts c WHERE c.server = s.id), 0)"
		 " FROM servers s WHERE ?1 = 0 OR s.id = ?1 ORDER BY s.id",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, id);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_server_row s = {
		    .id = sqlite3_column_int64(st, 0),
		    .url = col_text(st, 1),
		    .has_feed = sqlite3_column_int(st, 2) != 0,
		    .feed = col_text(st, 3),
		    .feed_seq = col_int(st, 4),
		    .last_ok = col_int(st, 5),
		    .last_error = col_text(st, 6),
		    .error_since = col_int(st, 7),
		    .present = sqlite3_column_int64(st, 8),
		};
		any = true;
		rc = fn(ctx, &s);
	}
	rc = finish(r, st, step, rc, err);
	return rc == 0 && id && !any ? CAIRN_ENOENT : rc;
}

int mon_q_item(struct mon_db *r, const char *hash,
	       int (*fn)(void *ctx, const struct mon_item_row *it), void *ctx,
	       struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT id, path, verdict, verdict_since, first_seen, last_seen,"
				 " diff_state, diff_note, diff_tries FROM items WHERE hash = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_item_row it = {
		    .id = sqlite3_column_int64(st, 0),
		    .hash = hash,
		    .path = col_text(st, 1),
		    .verdict = sqlite3_column_int(st, 2),
		    .since = sqlite3_column_int64(st, 3),
		    .first_seen = col_int(st, 4),
		    .last_seen = col_int(st, 5),
		    .diff_state = (enum mon_diff_state)sqlite3_column_int(st, 6),
		    .diff_note = col_text(st, 7),
		    .diff_tries = sqlite3_column_int(st, 8),
		};
		rc = fn(ctx, &it);
	} else if (step == SQLITE_DONE) {
		rc = CAIRN_ENOENT;
	}
	return finish(r, st, step, rc, err);
}

/* A side of a file diff from columns col.. (type, size, sha256, target). */
static void file_cols(sqlite3_stmt *st, int col, struct mon_file *f)
{
	f->type = col_text(st, col);
	f->size = (uint64_t)sqlite3_column_int64(st, col + 1);
	f->sha256 = col_text(st, col + 2);
	f->target = col_text(st, col + 3);
}

int mon_q_diffs(struct mon_db *r, int64_t item, int (*fn)(void *ctx, const struct mon_diff_row *d),
		void *ctx, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT d.path, d.change, sa.url, sb.url, d.a_type, d.a_size,"
		 " d.a_sha256, d.a_target, d.b_type, d.b_size, d.b_sha256, d.b_target"
		 " FROM diffs d LEFT JOIN servers sa ON sa.id = d.a_server"
		 " LEFT JOIN servers sb ON sb.id = d.b_server WHERE d.item = ?"
		 " ORDER BY d.rowid",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_diff_row d = {
		    .path = col_text(st, 0),
		    .change = col_text(st, 1),
		    .a_server = col_text(st, 2),
		    .b_server = col_text(st, 3),
		};
		file_cols(st, 4, &d.a);
		file_cols(st, 8, &d.b);
		rc = fn(ctx, &d);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_diffoscope(struct mon_db *r, int64_t item,
		     int (*fn)(void *ctx, const struct mon_diffoscope_row *d), void *ctx,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT sa.url, sb.url, length(d.html), d.note FROM diffoscope d"
				 " LEFT JOIN servers sa ON sa.id = d.a_server"
				 " LEFT JOIN servers sb ON sb.id = d.b_server WHERE d.item = ?",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_diffoscope_row d = {
		    .a_server = col_text(st, 0),
		    .b_server = col_text(st, 1),
		    .size = col_int(st, 2),
		    .note = col_text(st, 3),
		};
		rc = fn(ctx, &d);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_diffoscope_html(struct mon_db *r, const char *hash, struct cairn_buf *out,
			  struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT d.html FROM diffoscope d JOIN items i ON i.id = d.item"
				 " WHERE i.hash = ? AND d.html IS NOT NULL",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 0);
		size_t n = (size_t)sqlite3_column_bytes(st, 0);
		if (n && cairn_buf_append(out, h, n) < 0)
			rc = cairn_error_set(err, CAIRN_ELIMIT,
					     "monitor: diffoscope report too big");
	} else if (step == SQLITE_DONE) {
		rc = CAIRN_ENOENT;
	}
	return finish(r, st, step, rc, err);
}

int mon_q_obs(struct mon_db *r, int64_t item, int (*fn)(void *ctx, const struct mon_obs_row *o),
	      void *ctx, struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT s.id, s.url, o.state, o.sig, o.nar_hash, o.nar_size, o.refs,"
		 " o.first_seen, o.last_seen, o.narinfo FROM obs o"
		 " JOIN servers s ON s.id = o.server WHERE o.item = ? ORDER BY s.id",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_obs_row o = {
		    .server = sqlite3_column_int64(st, 0),
		    .url = col_text(st, 1),
		    .state = (enum cairn_monitor_state)sqlite3_column_int(st, 2),
		    .sig = (enum cairn_monitor_sig)sqlite3_column_int(st, 3),
		    .nar_hash = col_text(st, 4),
		    .nar_size = col_int(st, 5),
		    .refs = col_text(st, 6),
		    .first_seen = col_int(st, 7),
		    .last_seen = col_int(st, 8),
		    .narinfo = col_text(st, 9),
		};
		rc = fn(ctx, &o);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_peers(struct mon_db *r, const char *hash,
		int (*fn)(void *ctx, const struct mon_peer_row *p), void *ctx,
		struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT peer, monitor, server, state, nar_hash, nar_size, at FROM peer_obs"
		 " WHERE hash = ? ORDER BY peer, seq",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_peer_row p = {
		    .peer = col_text(st, 0),
		    .monitor = col_text(st, 1),
		    .server = col_text(st, 2),
		    .state = col_text(st, 3),
		    .nar_hash = col_text(st, 4),
		    .nar_size = col_int(st, 5),
		    .at = col_int(st, 6),
		};
		rc = fn(ctx, &p);
	}
	return finish(r, st, step, rc, err);
}

/* History rows from columns (at, verdict[, hash, path]). */
static int history_rows(struct mon_db *r, sqlite3_stmt *st,
			int (*fn)(void *ctx, const struct mon_history_row *h), void *ctx,
			struct cairn_error *err)
{
	int rc = 0, step = SQLITE_DONE;
	bool named = sqlite3_column_count(st) > 2;
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_history_row h = {
		    .at = sqlite3_column_int64(st, 0),
		    .verdict = sqlite3_column_int(st, 1),
		    .hash = named ? col_text(st, 2) : NULL,
		    .path = named ? col_text(st, 3) : NULL,
		};
		rc = fn(ctx, &h);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_history(struct mon_db *r, int64_t item,
		  int (*fn)(void *ctx, const struct mon_history_row *h), void *ctx,
		  struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(
		 r, "SELECT at, verdict FROM history WHERE item = ? ORDER BY at, rowid", &st,
		 err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, item);
	return history_rows(r, st, fn, ctx, err);
}

int mon_q_differs_since(struct mon_db *r, unsigned limit,
			int (*fn)(void *ctx, const struct mon_history_row *h), void *ctx,
			struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT h.at, h.verdict, i.hash, i.path FROM history h JOIN items i"
		 " ON i.id = h.item WHERE h.verdict = 1 ORDER BY h.at DESC, h.rowid DESC"
		 " LIMIT ?",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)limit);
	return history_rows(r, st, fn, ctx, err);
}

int mon_q_pairs(struct mon_db *r, int64_t server,
		int (*fn)(void *ctx, const struct mon_pair_row *p), void *ctx,
		struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT p.a, p.b, sa.url, sb.url, p.both_have, p.agree"
				 " FROM pair_counts p JOIN servers sa ON sa.id = p.a"
				 " JOIN servers sb ON sb.id = p.b"
				 " WHERE ?1 = 0 OR p.a = ?1 OR p.b = ?1 ORDER BY p.a, p.b",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, server);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_pair_row p = {
		    .a = sqlite3_column_int64(st, 0),
		    .b = sqlite3_column_int64(st, 1),
		    .a_url = col_text(st, 2),
		    .b_url = col_text(st, 3),
		    .both_have = sqlite3_column_int64(st, 4),
		    .agree = sqlite3_column_int64(st, 5),
		};
		rc = fn(ctx, &p);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_pair_trend(struct mon_db *r, int64_t a, int64_t b, unsigned days,
		     int (*fn)(void *ctx, const struct mon_day_row *d), void *ctx,
		     struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT day, both_have, agree FROM (SELECT * FROM pair_trend"
				 " WHERE a = ? AND b = ? ORDER BY day DESC LIMIT ?) ORDER BY day",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	sqlite3_bind_int(st, 3, (int)days);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_day_row d = {
		    .day = sqlite3_column_int64(st, 0),
		    .verdict = -1,
		    .both_have = sqlite3_column_int64(st, 1),
		    .agree = sqlite3_column_int64(st, 2),
		};
		rc = fn(ctx, &d);
	}
	return finish(r, st, step, rc, err);
}

int mon_q_verdict_trend(struct mon_db *r, unsigned days,
			int (*fn)(void *ctx, const struct mon_day_row *d), void *ctx,
			struct cairn_error *err)
{
	sqlite3_stmt *st;
	int64_t first = 0;
	int rc, step = SQLITE_DONE;
	if ((rc = mon_db_prepare(r,
				 "SELECT min(day) FROM (SELECT DISTINCT day FROM verdict_trend"
				 " ORDER BY day DESC LIMIT ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_int(st, 1, (int)days);
	if ((step = sqlite3_step(st)) == SQLITE_ROW)
		first = sqlite3_column_int64(st, 0);
	if ((rc = finish(r, st, step, 0, err)) < 0)
		return rc;
	/* the counts before the window, then each day's rows in order */
	if ((rc = mon_db_prepare(
		 r,
		 "SELECT -1, verdict, n FROM verdict_trend t WHERE day ="
		 " (SELECT max(day) FROM verdict_trend u WHERE u.verdict = t.verdict"
		 "  AND u.day < ?1)"
		 " UNION ALL SELECT day, verdict, n FROM verdict_trend WHERE day >= ?1"
		 " ORDER BY 1, 2",
		 &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, first);
	while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
		struct mon_day_row d = {
		    .day = sqlite3_column_int64(st, 0),
		    .verdict = sqlite3_column_int(st, 1),
		    .n = sqlite3_column_int64(st, 2),
		};
		rc = fn(ctx, &d);
	}
	return finish(r, st, step, rc, err);
}
