/*
 * monitor-query.c - what the pages and the JSON API share: the paginated
 * item lists, the query-string and cursor parsing, and the escapes for
 * HTML and JSON (everything a server sent is text to escape, never markup).
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
