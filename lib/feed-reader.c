/*
 * feed-reader.c - a feed document read as it streams (feed.h,
 * cairn_feed_reader_*): a snapshot of millions of items is checked record
 * by record with memory bounded by one record, where cairn_feed_doc_parse
 * needs the whole text.  The same layout rules, the same bounds; what is
 * not whole yet is kept (at most a line and a narinfo), and every byte
 * before the "end" line goes through SHA-256 as it is consumed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cairn/hash.h"
#include "feed-int.h"
#include "cairn/banned.h"

enum rd_state {
	R_MAGIC,
	R_KIND,
	R_FEED,
	R_DIALECT,
	R_RANGE,
	R_HEAD,
	R_RECORDS,
	R_SIGS,
};

struct cairn_feed_reader {
	struct cairn_buf buf; /* bytes not consumed yet, from off */
	size_t off;
	enum rd_state st;
	size_t lineno;
	struct cairn_feed_doc doc; /* head, counts, sigs (into sigbuf) */
	struct cairn_buf sigbuf;
	size_t sig_off[CAIRN_FEED_SIGS_MAX];
	struct cairn_sha256 h;
	bool hashing;
	uint64_t prev;
	char prev_hp[33];
	int (*on_event)(void *ctx, const struct cairn_feed_event *e);
	void *ctx;
	int failed; /* the first error: the reader refuses everything after */
};

int cairn_feed_reader_new(struct cairn_feed_reader **out,
			  int (*on_event)(void *ctx, const struct cairn_feed_event *e), void *ctx,
			  struct cairn_error *err)
{
	struct cairn_feed_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
	/* one record line with its narinfo, or one sig line, plus a piece of
	 * input appended before they are consumed */
	cairn_buf_init(&r->buf, 2 * (FEED_LINE_MAX + CAIRN_FEED_EVENT_MAX + 2));
	cairn_buf_init(&r->sigbuf, CAIRN_FEED_SIGS_MAX * (CAIRN_FEED_SIG_LINE_MAX + 1));
	if (cairn_sha256_init(&r->h) < 0) {
		free(r);
		return cairn_error_set(err, CAIRN_ENOMEM, "feed: cannot hash");
	}
	r->hashing = true;
	r->on_event = on_event;
	r->ctx = ctx;
	*out = r;
	return 0;
}

void cairn_feed_reader_free(struct cairn_feed_reader *r)
{
	if (!r)
		return;
	if (r->hashing)
		cairn_sha256_release(&r->h);
	cairn_buf_release(&r->buf);
	cairn_buf_release(&r->sigbuf);
	free(r);
}

static int fail(struct cairn_feed_reader *r, struct cairn_error *err, int code, const char *why)
{
	r->failed = code;
	return cairn_error_set(err, code, "feed: line %zu: %s", r->lineno, why);
}

/* Consume n bytes from off (hashed while before the end line). */
static void consume(struct cairn_feed_reader *r, size_t n)
{
	if (r->st != R_SIGS)
		cairn_sha256_update(&r->h, r->buf.data + r->off, n);
	r->off += n;
}

static int head_line(struct cairn_feed_reader *r, const char *l, size_t ll,
		     struct cairn_error *err)
{
	static const char *const keys[] = {"cairn-feed", "kind", "feed", "dialect", "range", "head"};
	const char *w[4];
	size_t wl[4];
	struct cairn_feed_doc *d = &r->doc;
	size_t want = r->st == R_RANGE ? 3 : 2;
	if (feed_words(l, ll, w, wl, want) != want || !feed_word_is(w[0], wl[0], keys[r->st]))
		return fail(r, err, CAIRN_EFORMAT, "not the head line expected here");
	switch (r->st) {
	case R_MAGIC:
		if (!feed_word_is(w[1], wl[1], "1"))
			return fail(r, err, CAIRN_EUNSUPPORTED, "version is not 1");
		break;
	case R_KIND:
		if (feed_word_is(w[1], wl[1], "page"))
			d->kind = CAIRN_FEED_PAGE;
		else if (feed_word_is(w[1], wl[1], "snapshot"))
			d->kind = CAIRN_FEED_SNAPSHOT;
		else
			return fail(r, err, CAIRN_EFORMAT, "kind is neither page nor snapshot");
		break;
	case R_FEED:
		if (!feed_lower_hex(w[1], wl[1], CAIRN_FEED_ID_LEN))
			return fail(r, err, CAIRN_EFORMAT, "feed id is not 32 lowercase hex digits");
		memcpy(d->feed, w[1], CAIRN_FEED_ID_LEN);
		break;
	case R_DIALECT:
		if (!feed_word_is(w[1], wl[1], "nix") && !feed_word_is(w[1], wl[1], "guix"))
			return fail(r, err, CAIRN_EFORMAT, "dialect is neither nix nor guix");
		memcpy(d->dialect, w[1], wl[1]);
		break;
	case R_RANGE:
		if (!feed_u64(w[1], wl[1], &d->since) || !feed_u64(w[2], wl[2], &d->next) ||
		    d->next < d->since || (d->kind == CAIRN_FEED_SNAPSHOT && d->since != 0))
			return fail(r, err, CAIRN_EFORMAT, "not a valid range");
		r->prev = d->since;
		break;
	case R_HEAD:
		if (!feed_u64(w[1], wl[1], &d->head) || d->head < d->next)
			return fail(r, err, CAIRN_EFORMAT, "head is not a number at or past the range");
		break;
	default:
		BUG("feed: reader state %d", (int)r->st);
	}
	r->st++;
	return 0;
}

/* The end line: count and hash. */
static int end_line(struct cairn_feed_reader *r, const char **w, const size_t *wl,
		    struct cairn_error *err)
{
	uint64_t v;
	uint8_t digest[CAIRN_SHA256_LEN];
	char hex[65];
	if (!feed_u64(w[1], wl[1], &v) || v != r->doc.n_events)
		return fail(r, err, CAIRN_EFORMAT, "end: count does not match the records");
	if (!feed_lower_hex(w[2], wl[2], 64))
		return fail(r, err, CAIRN_EFORMAT, "end: not a SHA-256 in lowercase hex");
	if (r->doc.kind == CAIRN_FEED_PAGE && r->prev != r->doc.next)
		return fail(r, err, CAIRN_EFORMAT, "the range does not end at the last event");
	cairn_sha256_final(&r->h, digest);
	r->hashing = false;
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (memcmp(hex, w[2], 64) != 0) {
		r->failed = CAIRN_EHASH;
		return cairn_error_set(err, CAIRN_EHASH,
				       "feed: the document's bytes do not match its SHA-256");
	}
	memcpy(r->doc.sha256, hex, sizeof(hex));
	r->st = R_SIGS;
	return 0;
}

/*
 * One record line at off (its narinfo, when it has one, must follow in the
 * buffer).  1: need more bytes; 0: consumed; < 0: refused.
 */
static int record(struct cairn_feed_reader *r, const char *l, size_t ll, size_t avail,
		  struct cairn_error *err)
{
	const char *w[5];
	size_t wl[5];
	size_t n = feed_words(l, ll, w, wl, 4), hp;
	struct cairn_feed_event e;
	uint64_t v = 0;
	memset(&e, 0, sizeof(e));
	if (n == 3 && feed_word_is(w[0], wl[0], "end")) {
		int rc = end_line(r, w, wl, err);
		if (rc == 0)
			r->off += ll + 1; /* not hashed: it carries the hash */
		return rc;
	}
	if (r->doc.kind == CAIRN_FEED_PAGE && r->doc.n_events == CAIRN_FEED_PAGE_EVENTS_MAX)
		return fail(r, err, CAIRN_ELIMIT, "more events than a page may hold");
	if (r->doc.kind == CAIRN_FEED_PAGE && n == 4 && feed_word_is(w[0], wl[0], "add")) {
		e.kind = CAIRN_FEED_ADD;
		hp = 2;
	} else if (r->doc.kind == CAIRN_FEED_PAGE && n == 3 && feed_word_is(w[0], wl[0], "remove")) {
		e.kind = CAIRN_FEED_REMOVE;
		hp = 2;
	} else if (r->doc.kind == CAIRN_FEED_SNAPSHOT && n == 3 && feed_word_is(w[0], wl[0], "item")) {
		e.kind = CAIRN_FEED_ADD;
		hp = 1;
	} else {
		return fail(r, err, CAIRN_EFORMAT, "not a record of this kind of document, nor 'end'");
	}
	if (!feed_hashpart_ok(w[hp], wl[hp]))
		return fail(r, err, CAIRN_EFORMAT, "not a store hash part");
	if (e.kind == CAIRN_FEED_ADD) {
		if (!feed_u64(w[hp + 1], wl[hp + 1], &v))
			return fail(r, err, CAIRN_EFORMAT, "not a length");
		if (v == 0)
			return fail(r, err, CAIRN_EFORMAT, "empty narinfo");
		if (v > CAIRN_FEED_EVENT_MAX)
			return fail(r, err, CAIRN_ELIMIT, "narinfo longer than an event may be");
		if (avail < ll + 1 + v + 1)
			return 1;
		e.narinfo = l + ll + 1;
		e.narinfo_len = (size_t)v;
		if (e.narinfo[v] != '\n')
			return fail(r, err, CAIRN_EFORMAT, "narinfo not followed by a newline");
		if (memchr(e.narinfo, '\0', e.narinfo_len))
			return fail(r, err, CAIRN_EFORMAT, "NUL byte in a narinfo");
	}
	memcpy(e.hashpart, w[hp], 32);
	if (r->doc.kind == CAIRN_FEED_PAGE) {
		if (!feed_u64(w[1], wl[1], &e.seq) || e.seq <= r->prev || e.seq > r->doc.next)
			return fail(r, err, CAIRN_EFORMAT,
				    "sequence number out of order or out of the range");
		r->prev = e.seq;
	} else {
		if (r->prev_hp[0] && memcmp(r->prev_hp, e.hashpart, 33) >= 0)
			return fail(r, err, CAIRN_EFORMAT, "snapshot items not sorted or repeated");
		memcpy(r->prev_hp, e.hashpart, 33);
	}
	r->doc.n_events++;
	if (r->on_event) {
		int rc = r->on_event(r->ctx, &e);
		if (rc < 0) {
			r->failed = rc;
			return cairn_error_set(err, rc, "feed: stopped by the caller");
		}
	}
	for (size_t i = 0; i < e.narinfo_len; i++)
		r->lineno += e.narinfo[i] == '\n';
	if (e.narinfo)
		r->lineno++;
	consume(r, ll + 1 + (e.narinfo ? e.narinfo_len + 1 : 0));
	return 0;
}

static int sig_line(struct cairn_feed_reader *r, const char *l, size_t ll, struct cairn_error *err)
{
	const char *w[4];
	size_t wl[4];
	struct cairn_feed_doc *d = &r->doc;
	if (d->n_sigs == CAIRN_FEED_SIGS_MAX)
		return fail(r, err, CAIRN_ELIMIT, "more signatures than allowed");
	if (feed_words(l, ll, w, wl, 3) != 3 || !feed_word_is(w[0], wl[0], "sig") || wl[2] == 0)
		return fail(r, err, CAIRN_EFORMAT, "expected 'sig nix|guix <signature>'");
	if (feed_word_is(w[1], wl[1], "nix"))
		d->sigs[d->n_sigs].kind = CAIRN_KEY_NIX;
	else if (feed_word_is(w[1], wl[1], "guix"))
		d->sigs[d->n_sigs].kind = CAIRN_KEY_GUIX;
	else
		return fail(r, err, CAIRN_EFORMAT, "signature kind is neither nix nor guix");
	r->sig_off[d->n_sigs] = r->sigbuf.len;
	d->sigs[d->n_sigs].len = wl[2];
	if (cairn_buf_append(&r->sigbuf, w[2], wl[2]) < 0)
		return fail(r, err, CAIRN_ELIMIT, "signatures too long");
	d->n_sigs++;
	r->off += ll + 1;
	return 0;
}

/* Consume what can be: 0 when more bytes are needed, < 0 refused. */
static int run(struct cairn_feed_reader *r, struct cairn_error *err)
{
	for (;;) {
		size_t avail = r->buf.len - r->off;
		size_t max = r->st == R_SIGS ? CAIRN_FEED_SIG_LINE_MAX : FEED_LINE_MAX;
		const char *l = r->buf.data + r->off;
		const char *nl = avail ? memchr(l, '\n', avail < max + 1 ? avail : max + 1) : NULL;
		int rc;
		if (!nl) {
			if (avail > max)
				return fail(r, err, CAIRN_ELIMIT, "line too long");
			return 0;
		}
		size_t ll = (size_t)(nl - l);
		r->lineno++;
		if (r->st < R_RECORDS) {
			if ((rc = head_line(r, l, ll, err)) < 0)
				return rc;
			consume(r, ll + 1);
		} else if (r->st == R_RECORDS) {
			rc = record(r, l, ll, avail, err);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				r->lineno--; /* read again with its narinfo */
				return 0;
			}
		} else if ((rc = sig_line(r, l, ll, err)) < 0) {
			return rc;
		}
	}
}

int cairn_feed_reader_feed(struct cairn_feed_reader *r, const void *data, size_t len,
			   struct cairn_error *err)
{
	const char *p = data;
	if (r->failed)
		return cairn_error_set(err, r->failed, "feed: document already refused");
	while (len) {
		/* keep what is not consumed at the front, then take what fits */
		if (r->off) {
			memmove(r->buf.data, r->buf.data + r->off, r->buf.len - r->off);
			r->buf.len -= r->off;
			r->off = 0;
		}
		size_t room = r->buf.max - r->buf.len;
		size_t n = len < room ? len : room;
		if (n == 0)
			BUG("feed: reader buffer full");
		if (cairn_buf_append(&r->buf, p, n) < 0)
			return fail(r, err, CAIRN_ENOMEM, "out of memory");
		p += n;
		len -= n;
		int rc = run(r, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int cairn_feed_reader_finish(struct cairn_feed_reader *r, const struct cairn_feed_doc **doc,
			     struct cairn_error *err)
{
	if (r->failed)
		return cairn_error_set(err, r->failed, "feed: document already refused");
	if (r->st != R_SIGS || r->off != r->buf.len)
		return cairn_error_set(err, CAIRN_ETRUNCATED,
				       "feed: document ends early (line %zu)", r->lineno + 1);
	struct cairn_feed_doc *d = &r->doc;
	for (size_t i = 0; i < d->n_sigs; i++)
		d->sigs[i].text = r->sigbuf.data + r->sig_off[i];
	d->statement_len = feed_statement(d->statement, sizeof(d->statement), d->kind, d->feed,
					  d->since, d->next, d->n_events, d->sha256);
	*doc = d;
	return 0;
}
