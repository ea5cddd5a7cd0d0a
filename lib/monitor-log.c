/*
 * monitor-log.c - the monitor's signed observation log (format in
 * monitor.h and docs/PROTOCOL.md): rendered and signed from the log table
 * for /api/v1/log, and parsed and verified (untrusted input: `cairn
 * monitor verify`, and the logs of --peer monitors).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/hash.h"
#include "cairn/httpd.h"
#include "cairn/sign.h"
#include "monitor-int.h"
#include "cairn/banned.h"

#define LOG_MAGIC "cairn-monitor-log 1"

static void hex(const uint8_t *in, size_t n, char *out)
{
	cairn_base16_encode(in, n, out);
	out[2 * n] = '\0';
}

static bool number(const char *s, uint64_t *out);

int cairn_monitor_log_chain(uint8_t c[32], const struct cairn_monitor_log_entry *e)
{
	char rec[CAIRN_SHA256_LEN + CAIRN_MONITOR_LOG_LINE_MAX + 2];
	int n = snprintf(rec + CAIRN_SHA256_LEN, sizeof(rec) - CAIRN_SHA256_LEN,
			 "obs %" PRIu64 " %" PRId64 " %s %s %s %s %" PRIu64 "\n", e->seq, e->at,
			 e->server, e->hash, e->state, e->nar_hash, e->nar_size);
	if (n < 0 || (size_t)n >= sizeof(rec) - CAIRN_SHA256_LEN)
		return CAIRN_ELIMIT;
	memcpy(rec, c, CAIRN_SHA256_LEN);
	cairn_sha256(rec, CAIRN_SHA256_LEN + (size_t)n, c);
	return 0;
}

static bool hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int mon_log_base(struct mon_db *d, uint64_t *base, char chain[65], struct cairn_error *err)
{
	sqlite3_stmt *st;
	int rc;
	*base = 0;
	memset(chain, '0', 64);
	chain[64] = '\0';
	if ((rc = mon_db_prepare(d, "SELECT v FROM meta WHERE k = 'log_base'", &st, err)) < 0)
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		char w[24];
		if (!v || sscanf(v, "%23s %64s", w, chain) != 2 || !number(w, base) || !hex64(chain))
			rc = cairn_error_set(err, CAIRN_EFORMAT, "monitor: database: bad log_base '%s'",
					     v ? v : "");
	}
	sqlite3_finalize(st);
	return rc;
}

/* Drop the log's records older than before, carrying their chained digest
 * on in the base, so that the log stays checkable by whoever saw it. */
int mon_log_prune(struct mon_db *d, int64_t before, struct cairn_error *err)
{
	sqlite3_stmt *st;
	uint64_t base, dropped = 0, last = 0;
	char chain[65], v[128];
	uint8_t c[CAIRN_SHA256_LEN];
	int rc;
	if ((rc = mon_log_base(d, &base, chain, err)) < 0)
		return rc;
	cairn_base16_decode(chain, 64, c, sizeof(c));
	if ((rc = mon_db_prepare(d,
				 "SELECT seq, at, server, hash, state, nar_hash, nar_size FROM log"
				 " WHERE seq < COALESCE((SELECT MIN(seq) FROM log WHERE at >= ?1),"
				 " 9223372036854775807) ORDER BY seq",
				 &st, err)) < 0)
		return rc;
	/* only a prefix: a record older than one kept stays (clocks step back) */
	sqlite3_bind_int64(st, 1, before);
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct cairn_monitor_log_entry e = {
		    .seq = (uint64_t)sqlite3_column_int64(st, 0),
		    .at = sqlite3_column_int64(st, 1),
		    .server = (const char *)sqlite3_column_text(st, 2),
		    .hash = (const char *)sqlite3_column_text(st, 3),
		    .state = (const char *)sqlite3_column_text(st, 4),
		    .nar_hash = (const char *)sqlite3_column_text(st, 5),
		    .nar_size = (uint64_t)sqlite3_column_int64(st, 6)};
		rc = cairn_monitor_log_chain(c, &e);
		last = e.seq;
		dropped++;
	}
	sqlite3_finalize(st);
	if (rc < 0 || !dropped)
		return rc < 0 ? cairn_error_set(err, rc, "monitor: a log record is too long") : 0;
	hex(c, sizeof(c), chain);
	snprintf(v, sizeof(v), "%" PRIu64 " %s", base + dropped, chain);
	if ((rc = mon_db_prepare(d, "INSERT OR REPLACE INTO meta(k, v) VALUES('log_base', ?)",
				 &st, err)) < 0)
		return rc;
	sqlite3_bind_text(st, 1, v, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cairn_error_set(err, CAIRN_EIO, "monitor: database: cannot keep the log base");
	if ((rc = mon_db_prepare(d, "DELETE FROM log WHERE seq <= ?", &st, err)) < 0)
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)last);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return cairn_error_set(err, CAIRN_EIO, "monitor: database: cannot prune the log");
	return 0;
}

int mon_log_render(struct cairn_monitor *m, struct cairn_buf *out, struct cairn_error *err)
{
	sqlite3_stmt *st;
	uint64_t count = 0;
	uint8_t sha[CAIRN_SHA256_LEN];
	char shahex[65], statement[160];
	int rc;
	uint64_t base;
	char base_chain[65];
	if ((rc = mon_log_base(m->r, &base, base_chain, err)) < 0)
		return rc;
	if (cairn_buf_printf(out, LOG_MAGIC "\nmonitor %s\n", m->monitor_id) ||
	    (base && cairn_buf_printf(out, "base %" PRIu64 " %s\n", base, base_chain)))
		return cairn_error_set(err, CAIRN_ELIMIT, "monitor: the log is too large");
	if ((rc = mon_db_prepare(m->r,
				 "SELECT seq, at, server, hash, state, nar_hash, nar_size FROM log"
				 " ORDER BY seq",
				 &st, err)) < 0)
		return rc;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (cairn_buf_printf(out, "obs %" PRId64 " %" PRId64 " %s %s %s %s %" PRId64 "\n",
				     (int64_t)sqlite3_column_int64(st, 0),
				     (int64_t)sqlite3_column_int64(st, 1),
				     (const char *)sqlite3_column_text(st, 2),
				     (const char *)sqlite3_column_text(st, 3),
				     (const char *)sqlite3_column_text(st, 4),
				     (const char *)sqlite3_column_text(st, 5),
				     (int64_t)sqlite3_column_int64(st, 6))) {
			sqlite3_finalize(st);
			return cairn_error_set(err, CAIRN_ELIMIT, "monitor: the log is too large");
		}
		count++;
	}
	sqlite3_finalize(st);
	cairn_sha256(out->data, out->len, sha);
	hex(sha, sizeof(sha), shahex);
	snprintf(statement, sizeof(statement), LOG_MAGIC ";%s;%" PRIu64 ";%s", m->monitor_id, count,
		 shahex);
	if (cairn_buf_printf(out, "end %" PRIu64 " %s\nsig nix ", count, shahex) ||
	    (rc = cairn_nix_sign(m->cfg.key, statement, strlen(statement), out, err)) < 0 ||
	    cairn_buf_putc(out, '\n'))
		return rc < 0 ? rc : cairn_error_set(err, CAIRN_ELIMIT, "monitor: the log is too large");
	return 0;
}

/* ---- parsing (untrusted) --------------------------------------------------- */

static int bad(struct cairn_error *err, size_t line, const char *why)
{
	return cairn_error_set(err, CAIRN_EFORMAT, "monitor log: line %zu: %s", line, why);
}

/* A decimal number without leading zeros, at most INT64_MAX. */
static bool number(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > ((uint64_t)INT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static bool printable_word(const char *s, size_t max)
{
	size_t n = 0;
	for (; *s; s++, n++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f || n >= max)
			return false;
	return n > 0;
}

/* Split a line into its space-separated words (in place): their count,
 * or max + 1 when there are more than max. */
static size_t words(char *line, char **w, size_t max)
{
	size_t n = 0;
	for (char *p = line;;) {
		if (n == max)
			return max + 1;
		w[n++] = p;
		char *sp = strchr(p, ' ');
		if (!sp)
			return n;
		*sp = '\0';
		p = sp + 1;
	}
}

static int verify_sigs(char **sigs, size_t n, const char *statement,
		       const struct cairn_keyring *kr, struct cairn_error *err)
{
	int best = CAIRN_EUNTRUSTED;
	struct cairn_error first;
	cairn_error_init(&first);
	if (n == 0)
		return cairn_error_set(err, CAIRN_ENOSIG, "monitor log: not signed");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < kr->n_nix; k++) {
			struct cairn_error e;
			cairn_error_init(&e);
			int rc = cairn_nix_verify(&kr->nix[k], statement, strlen(statement), sigs[i],
						  strlen(sigs[i]), &e);
			if (rc == 0)
				return 0;
			if (rc != CAIRN_EUNTRUSTED && best == CAIRN_EUNTRUSTED) {
				best = rc;
				first = e;
			}
		}
	if (best == CAIRN_EUNTRUSTED)
		return cairn_error_set(err, best, "monitor log: signed by no trusted key");
	return cairn_error_set(err, best, "monitor log: %s", cairn_error_msg(&first));
}

int cairn_monitor_log_verify(const char *text, size_t len, const struct cairn_keyring *kr,
			     struct cairn_monitor_log_head *head,
			     int (*fn)(void *ctx, const struct cairn_monitor_log_entry *e),
			     void *ctx, struct cairn_error *err)
{
	char *copy = NULL, *sigs[CAIRN_MONITOR_LOG_SIGS_MAX];
	size_t n_sigs = 0, lineno = 0, end_at = 0, body_start = 0;
	uint64_t n = 0, want = 0, last = 0;
	bool ended = false;
	char shahex[65], statement[160], *monitor = head->monitor;
	int rc = 0;
	memset(head, 0, sizeof(*head));

	if (len > CAIRN_MONITOR_LOG_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "monitor log: larger than %zu bytes",
				       CAIRN_MONITOR_LOG_MAX);
	if (memchr(text, '\0', len) || len == 0 || text[len - 1] != '\n')
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "monitor log: not text ending with a newline");
	copy = malloc(len + 1);
	if (!copy)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor log: out of memory");
	memcpy(copy, text, len);
	copy[len] = '\0';

	/* pass 1: layout, hash, signatures */
	for (char *p = copy; *p && rc == 0;) {
		char *nl = strchr(p, '\n'), *w[9];
		size_t nw;
		size_t off = (size_t)(p - copy);
		*nl = '\0';
		lineno++;
		if ((size_t)(nl - p) > CAIRN_MONITOR_LOG_LINE_MAX) {
			rc = cairn_error_set(err, CAIRN_ELIMIT, "monitor log: line %zu: too long",
					     lineno);
			break;
		}
		if (lineno == 1) {
			if (strcmp(p, LOG_MAGIC) != 0)
				rc = bad(err, lineno, "not a cairn monitor log");
		} else if (lineno == 2) {
			nw = words(p, w, 2);
			if (nw != 2 || strcmp(w[0], "monitor") || strlen(w[1]) != 32 ||
			    strspn(w[1], "0123456789abcdef") != 32)
				rc = bad(err, lineno, "expected 'monitor <32 hex digits>'");
			else
				memcpy(monitor, w[1], 33);
			body_start = (size_t)(nl + 1 - copy);
		} else if (lineno == 3 && strncmp(p, "base ", 5) == 0) {
			nw = words(p, w, 3);
			if (nw != 3 || !number(w[1], &head->base) || !head->base || !hex64(w[2]))
				rc = bad(err, lineno, "expected 'base <count> <64 hex digits>'");
			else
				cairn_base16_decode(w[2], 64, head->base_chain,
						    sizeof(head->base_chain));
			body_start = (size_t)(nl + 1 - copy);
		} else if (!ended && strncmp(p, "obs ", 4) == 0) {
			uint64_t seq = 0, at, size;
			nw = words(p, w, 8);
			if (nw != 8 || !number(w[1], &seq) || !number(w[2], &at) ||
			    !printable_word(w[3], 4096) || !mon_hash_ok(w[4], strlen(w[4])) ||
			    (strcmp(w[5], "present") && strcmp(w[5], "absent") &&
			     strcmp(w[5], "broken")) ||
			    !printable_word(w[6], 200) || !number(w[7], &size))
				rc = bad(err, lineno, "malformed obs record");
			else if (n > 0 && seq <= last)
				rc = bad(err, lineno, "sequence numbers must increase");
			else {
				last = seq;
				n++;
			}
		} else if (!ended && strncmp(p, "end ", 4) == 0) {
			nw = words(p, w, 3);
			if (nw != 3 || !number(w[1], &want) || strlen(w[2]) != 64 ||
			    strspn(w[2], "0123456789abcdef") != 64)
				rc = bad(err, lineno, "expected 'end <count> <sha256>'");
			else if (want != n)
				rc = bad(err, lineno, "the count is not that of the records");
			else {
				snprintf(shahex, sizeof(shahex), "%s", w[2]);
				end_at = off;
				ended = true;
			}
		} else if (ended && strncmp(p, "sig nix ", 8) == 0) {
			if (n_sigs == CAIRN_MONITOR_LOG_SIGS_MAX)
				rc = cairn_error_set(err, CAIRN_ELIMIT,
						     "monitor log: more than %d signatures",
						     CAIRN_MONITOR_LOG_SIGS_MAX);
			else
				sigs[n_sigs++] = p + 8;
		} else {
			rc = bad(err, lineno, ended ? "expected 'sig nix ...'" : "unknown record");
		}
		p = nl + 1;
	}
	if (rc == 0 && !ended)
		rc = cairn_error_set(err, CAIRN_ETRUNCATED, "monitor log: no 'end' line");
	if (rc == 0) {
		uint8_t sha[CAIRN_SHA256_LEN];
		char got[65];
		cairn_sha256(text, end_at, sha);
		hex(sha, sizeof(sha), got);
		if (strcmp(got, shahex) != 0)
			rc = cairn_error_set(err, CAIRN_EHASH,
					     "monitor log: its records hash to %s, not %s", got, shahex);
	}
	if (rc == 0) {
		snprintf(statement, sizeof(statement), LOG_MAGIC ";%s;%" PRIu64 ";%s", monitor, n,
			 shahex);
		rc = verify_sigs(sigs, n_sigs, statement, kr, err);
	}
	if (rc == 0)
		head->count = head->base + n;

	/* pass 2, only once verified: the records (the copy was split in
	 * place, so read them again from the text) */
	for (size_t off = body_start; rc == 0 && fn && off < end_at;) {
		const char *nl = memchr(text + off, '\n', end_at - off);
		char line[CAIRN_MONITOR_LOG_LINE_MAX + 1], *w[9] = {0};
		size_t l = (size_t)(nl - (text + off));
		memcpy(line, text + off, l);
		line[l] = '\0';
		words(line, w, 8);
		struct cairn_monitor_log_entry e = {.server = w[3], .hash = w[4], .state = w[5],
						    .nar_hash = w[6]};
		uint64_t at = 0;
		number(w[1], &e.seq);
		number(w[2], &at);
		number(w[7], &e.nar_size);
		e.at = (int64_t)at;
		rc = fn(ctx, &e);
		off += l + 1;
	}
	free(copy);
	return rc;
}

/* ---- the route ------------------------------------------------------------- */

static int h_log(struct cairn_httpd_req *req, void *data)
{
	struct cairn_monitor *m = data;
	struct cairn_buf b = CAIRN_BUF_INIT(CAIRN_MONITOR_LOG_MAX);
	struct cairn_error err;
	cairn_error_init(&err);
	pthread_mutex_lock(&m->r->lock);
	int rc = mon_log_render(m, &b, &err);
	pthread_mutex_unlock(&m->r->lock);
	if (rc < 0) {
		cairn_buf_release(&b);
		return cairn_httpd_send_error(req, 500);
	}
	cairn_httpd_add_header(req, "cache-control", "no-store");
	rc = cairn_httpd_send(req, 200, "text/plain; charset=utf-8", b.data, b.len);
	cairn_buf_release(&b);
	return rc;
}

int mon_log_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err)
{
	return cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/api/v1/log", "api-log", h_log, m, err);
}
