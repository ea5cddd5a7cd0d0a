/*
 * feed-doc.c - the change feed's documents (pages and snapshots, feed.h):
 * writing their head and signed trailer on the server, and on the follower
 * parsing them (untrusted bytes: every length bounded, every number
 * checked) and verifying their signatures.
 *
 * What is signed is a one-line statement naming the kind, the feed, the
 * range, the count and the SHA-256 of the document's bytes, so the
 * signature is small to check and a snapshot of millions of items can be
 * signed after it was streamed.  The statement begins "cairn-feed 1;",
 * which neither a Nix fingerprint ("1;/nix/store/...") nor a narinfo text
 * (what a Guix signature covers) can begin with: a feed signature can never
 * pass for a narinfo signature, or the reverse.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cairn/guix.h"
#include "cairn/hash.h"
#include "cairn/sign.h"
#include "cairn/storepath.h"
#include "feed-int.h"
#include "cairn/banned.h"

/* Longest line of the head or of a record (a sig line may be longer). */
#define DOC_LINE_MAX 256

bool feed_hashpart_ok(const char *s, size_t len)
{
	return len == 32 && cairn_store_hash_valid(s, 32);
}

const char *feed_kind_name(enum cairn_feed_doc_kind kind)
{
	return kind == CAIRN_FEED_SNAPSHOT ? "snapshot" : "page";
}

int feed_doc_head(struct cairn_buf *out, enum cairn_feed_doc_kind kind, const char *feed,
		  const char *dialect, uint64_t since, uint64_t next, uint64_t head)
{
	return cairn_buf_printf(out,
				"cairn-feed 1\nkind %s\nfeed %s\ndialect %s\nrange %" PRIu64
				" %" PRIu64 "\nhead %" PRIu64 "\n",
				feed_kind_name(kind), feed, dialect ? dialect : "nix", since, next,
				head);
}

size_t feed_statement(char *out, size_t cap, enum cairn_feed_doc_kind kind, const char *feed,
		      uint64_t since, uint64_t next, uint64_t count, const char *sha256hex)
{
	int n = snprintf(out, cap, "cairn-feed 1;%s;%s;%" PRIu64 ";%" PRIu64 ";%" PRIu64 ";%s",
			 feed_kind_name(kind), feed, since, next, count, sha256hex);
	if (n < 0 || (size_t)n >= cap)
		BUG("feed: statement does not fit");
	return (size_t)n;
}

int feed_trailer(struct cairn_buf *out, const struct cairn_feed_signer *signer,
		 enum cairn_feed_doc_kind kind, const char *feed, uint64_t since, uint64_t next,
		 uint64_t count, const uint8_t digest[CAIRN_SHA256_LEN], struct cairn_error *err)
{
	char hex[2 * CAIRN_SHA256_LEN + 1], st[160];
	struct cairn_buf sig = CAIRN_BUF_INIT(CAIRN_FEED_SIG_LINE_MAX);
	int rc;

	sodium_bin2hex(hex, sizeof(hex), digest, CAIRN_SHA256_LEN);
	size_t sl = feed_statement(st, sizeof(st), kind, feed, since, next, count, hex);
	if ((rc = cairn_buf_printf(out, "end %" PRIu64 " %s\n", count, hex)) < 0)
		return cairn_error_set(err, rc, "feed: document too large");
	for (size_t i = 0; i < signer->n_keys && i < CAIRN_FEED_SIGS_MAX; i++) {
		const struct cairn_seckey *k = signer->keys[i];
		cairn_buf_reset(&sig);
		if (k->kind == CAIRN_KEY_NIX) {
			if ((rc = cairn_nix_sign(&k->u.nix, st, sl, &sig, err)) < 0)
				goto out;
			rc = cairn_buf_printf(out, "sig nix %s\n", sig.data);
		} else {
			if ((rc = cairn_guix_sign(&k->u.guix, st, sl, &sig, err)) < 0)
				goto out;
			char *b64 = malloc(cairn_base64_len(sig.len) + 1);
			if (!b64) {
				rc = cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
				goto out;
			}
			cairn_base64_encode((const uint8_t *)sig.data, sig.len, b64);
			rc = cairn_buf_printf(out, "sig guix %s\n", b64);
			free(b64);
		}
		if (rc < 0) {
			cairn_error_set(err, rc, "feed: document too large");
			goto out;
		}
	}
	rc = 0;
out:
	cairn_buf_release(&sig);
	return rc;
}

/* ---- parsing (untrusted) ------------------------------------------------ */

struct rd {
	const char *t;
	size_t len, pos;
	size_t lineno;
};

/* The next line (without its '\n'), at most max bytes. */
static int next_line(struct rd *r, size_t max, const char **l, size_t *ll, struct cairn_error *err)
{
	if (r->pos >= r->len)
		return cairn_error_set(err, CAIRN_ETRUNCATED, "feed: document ends early (line %zu)",
				       r->lineno + 1);
	size_t room = r->len - r->pos;
	const char *nl = memchr(r->t + r->pos, '\n', room < max + 1 ? room : max + 1);
	if (!nl) {
		if (room > max)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "feed: line %zu is longer than %zu bytes",
					       r->lineno + 1, max);
		return cairn_error_set(err, CAIRN_ETRUNCATED,
				       "feed: line %zu does not end (document cut short)",
				       r->lineno + 1);
	}
	*l = r->t + r->pos;
	*ll = (size_t)(nl - *l);
	r->pos += *ll + 1;
	r->lineno++;
	return 0;
}

/* Split a line into at most max words separated by single spaces. */
size_t feed_words(const char *l, size_t ll, const char **w, size_t *wl, size_t max)
{
	size_t n = 0, i = 0;
	while (i <= ll && n < max) {
		size_t s = i;
		while (i < ll && l[i] != ' ')
			i++;
		w[n] = l + s;
		wl[n] = i - s;
		n++;
		if (i == ll)
			return n;
		i++;
	}
	return i <= ll ? max + 1 : n;
}

bool feed_word_is(const char *w, size_t wl, const char *lit)
{
	return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

/* A decimal number without leading zeros, at most CAIRN_FEED_SEQ_MAX. */
bool feed_u64(const char *w, size_t wl, uint64_t *out)
{
	uint64_t v = 0;
	if (wl == 0 || wl > 19 || (wl > 1 && w[0] == '0'))
		return false;
	for (size_t i = 0; i < wl; i++) {
		if (w[i] < '0' || w[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(w[i] - '0');
	}
	if (v > CAIRN_FEED_SEQ_MAX)
		return false;
	*out = v;
	return true;
}

bool feed_lower_hex(const char *w, size_t wl, size_t want)
{
	if (wl != want)
		return false;
	for (size_t i = 0; i < wl; i++)
		if (!((w[i] >= '0' && w[i] <= '9') || (w[i] >= 'a' && w[i] <= 'f')))
			return false;
	return true;
}

static int bad(struct rd *r, struct cairn_error *err, const char *why)
{
	return cairn_error_set(err, CAIRN_EFORMAT, "feed: line %zu: %s", r->lineno, why);
}

/* A head line "<key> <words...>" with exactly n words in all. */
static int head_line(struct rd *r, const char *key, size_t n, const char **w, size_t *wl,
		     struct cairn_error *err)
{
	const char *l = NULL;
	size_t ll = 0;
	int rc = next_line(r, DOC_LINE_MAX, &l, &ll, err);
	if (rc < 0)
		return rc;
	if (feed_words(l, ll, w, wl, n) != n || !feed_word_is(w[0], wl[0], key)) {
		char why[64];
		snprintf(why, sizeof(why), "expected '%s' with %zu value(s)", key, n - 1);
		return bad(r, err, why);
	}
	return 0;
}

static int push_event(struct cairn_feed_doc *doc, size_t *cap, const struct cairn_feed_event *e,
		      struct cairn_error *err)
{
	if (doc->n_events == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct cairn_feed_event *v = realloc(doc->events, nc * sizeof(*v));
		if (!v)
			return cairn_error_set(err, CAIRN_ENOMEM, "feed: out of memory");
		doc->events = v;
		*cap = nc;
	}
	doc->events[doc->n_events++] = *e;
	return 0;
}

/* The narinfo after a record line: len bytes and a '\n'. */
static int take_body(struct rd *r, uint64_t len, struct cairn_feed_event *e,
		     struct cairn_error *err)
{
	if (len > CAIRN_FEED_EVENT_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "feed: line %zu: narinfo of %" PRIu64
				       " bytes, more than %u",
				       r->lineno, len, CAIRN_FEED_EVENT_MAX);
	if (len == 0)
		return bad(r, err, "empty narinfo");
	if (r->len - r->pos < len + 1)
		return cairn_error_set(err, CAIRN_ETRUNCATED,
				       "feed: line %zu: narinfo cut short", r->lineno);
	if (r->t[r->pos + len] != '\n')
		return bad(r, err, "narinfo not followed by a newline");
	e->narinfo = r->t + r->pos;
	e->narinfo_len = (size_t)len;
	for (size_t i = 0; i < len; i++) {
		/* the narinfo counts lines too: keep them countable */
		if (e->narinfo[i] == '\n')
			r->lineno++;
		else if (e->narinfo[i] == '\0')
			return bad(r, err, "NUL byte in a narinfo");
	}
	r->pos += (size_t)len + 1;
	r->lineno++;
	return 0;
}

static int parse_records(struct rd *r, struct cairn_feed_doc *doc, size_t *end_at,
			 struct cairn_error *err)
{
	const char *w[5];
	size_t wl[5], cap = 0;
	uint64_t prev = doc->since;
	char prev_hp[33] = "";
	int rc;

	for (;;) {
		const char *l;
		size_t ll, at = r->pos;
		if ((rc = next_line(r, DOC_LINE_MAX, &l, &ll, err)) < 0)
			return rc;
		size_t n = feed_words(l, ll, w, wl, 4);
		struct cairn_feed_event e;
		memset(&e, 0, sizeof(e));
		uint64_t v;
		if (n == 3 && feed_word_is(w[0], wl[0], "end")) {
			if (!feed_u64(w[1], wl[1], &v) || v != doc->n_events)
				return bad(r, err, "end: count does not match the records");
			if (!feed_lower_hex(w[2], wl[2], 64))
				return bad(r, err, "end: not a SHA-256 in lowercase hex");
			memcpy(doc->sha256, w[2], 64);
			doc->sha256[64] = '\0';
			*end_at = at;
			break;
		}
		if (doc->kind == CAIRN_FEED_PAGE &&
		    doc->n_events == CAIRN_FEED_PAGE_EVENTS_MAX)
			return cairn_error_set(err, CAIRN_ELIMIT,
					       "feed: more than %d events in a page",
					       CAIRN_FEED_PAGE_EVENTS_MAX);
		size_t hp;
		if (doc->kind == CAIRN_FEED_PAGE && n == 4 && feed_word_is(w[0], wl[0], "add")) {
			e.kind = CAIRN_FEED_ADD;
			hp = 2;
		} else if (doc->kind == CAIRN_FEED_PAGE && n == 3 &&
			   feed_word_is(w[0], wl[0], "remove")) {
			e.kind = CAIRN_FEED_REMOVE;
			hp = 2;
		} else if (doc->kind == CAIRN_FEED_SNAPSHOT && n == 3 &&
			   feed_word_is(w[0], wl[0], "item")) {
			e.kind = CAIRN_FEED_ADD;
			hp = 1;
		} else {
			return bad(r, err, "not a record of this kind of document, nor 'end'");
		}
		if (!feed_hashpart_ok(w[hp], wl[hp]))
			return bad(r, err, "not a store hash part");
		memcpy(e.hashpart, w[hp], 32);
		if (doc->kind == CAIRN_FEED_PAGE) {
			if (!feed_u64(w[1], wl[1], &e.seq))
				return bad(r, err, "not a sequence number");
			if (e.seq <= prev || e.seq > doc->next)
				return bad(r, err, "sequence number out of order or out of the range");
			prev = e.seq;
		} else {
			if (prev_hp[0] && memcmp(prev_hp, e.hashpart, 33) >= 0)
				return bad(r, err, "snapshot items not sorted or repeated");
			memcpy(prev_hp, e.hashpart, 33);
		}
		if (e.kind == CAIRN_FEED_ADD) {
			if (!feed_u64(w[hp + 1], wl[hp + 1], &v))
				return bad(r, err, "not a length");
			if ((rc = take_body(r, v, &e, err)) < 0)
				return rc;
		}
		if ((rc = push_event(doc, &cap, &e, err)) < 0)
			return rc;
	}
	if (doc->kind == CAIRN_FEED_PAGE && prev != doc->next)
		return bad(r, err, "the range does not end at the last event");
	return 0;
}

int cairn_feed_doc_parse(const char *text, size_t len, struct cairn_feed_doc *doc,
			 struct cairn_error *err)
{
	struct rd r = {text, len, 0, 0};
	const char *w[4];
	size_t wl[4], end_at = 0;
	int rc;

	memset(doc, 0, sizeof(*doc));
	if (len > CAIRN_FEED_PAGE_MAX)
		return cairn_error_set(err, CAIRN_ELIMIT, "feed: document of %zu bytes, more than %u",
				       len, CAIRN_FEED_PAGE_MAX);
	if ((rc = head_line(&r, "cairn-feed", 2, w, wl, err)) < 0)
		goto fail;
	if (!feed_word_is(w[1], wl[1], "1")) {
		rc = cairn_error_set(err, CAIRN_EUNSUPPORTED, "feed: version '%.*s' is not 1",
				     (int)(wl[1] > 16 ? 16 : wl[1]), w[1]);
		goto fail;
	}
	if ((rc = head_line(&r, "kind", 2, w, wl, err)) < 0)
		goto fail;
	if (feed_word_is(w[1], wl[1], "page"))
		doc->kind = CAIRN_FEED_PAGE;
	else if (feed_word_is(w[1], wl[1], "snapshot"))
		doc->kind = CAIRN_FEED_SNAPSHOT;
	else {
		rc = bad(&r, err, "kind is neither page nor snapshot");
		goto fail;
	}
	if ((rc = head_line(&r, "feed", 2, w, wl, err)) < 0)
		goto fail;
	if (!feed_lower_hex(w[1], wl[1], CAIRN_FEED_ID_LEN)) {
		rc = bad(&r, err, "feed id is not 32 lowercase hex digits");
		goto fail;
	}
	memcpy(doc->feed, w[1], CAIRN_FEED_ID_LEN);
	if ((rc = head_line(&r, "dialect", 2, w, wl, err)) < 0)
		goto fail;
	if (!feed_word_is(w[1], wl[1], "nix") && !feed_word_is(w[1], wl[1], "guix")) {
		rc = bad(&r, err, "dialect is neither nix nor guix");
		goto fail;
	}
	memcpy(doc->dialect, w[1], wl[1]);
	if ((rc = head_line(&r, "range", 3, w, wl, err)) < 0)
		goto fail;
	if (!feed_u64(w[1], wl[1], &doc->since) || !feed_u64(w[2], wl[2], &doc->next) ||
	    doc->next < doc->since ||
	    (doc->kind == CAIRN_FEED_SNAPSHOT && doc->since != 0)) {
		rc = bad(&r, err, "not a valid range");
		goto fail;
	}
	if ((rc = head_line(&r, "head", 2, w, wl, err)) < 0)
		goto fail;
	if (!feed_u64(w[1], wl[1], &doc->head) || doc->head < doc->next) {
		rc = bad(&r, err, "head is not a number at or past the range");
		goto fail;
	}
	if ((rc = parse_records(&r, doc, &end_at, err)) < 0)
		goto fail;
	uint8_t digest[CAIRN_SHA256_LEN];
	char hex[65];
	cairn_sha256(text, end_at, digest);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (memcmp(hex, doc->sha256, 64) != 0) {
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "feed: the document's bytes do not match its SHA-256");
		goto fail;
	}
	while (r.pos < r.len) {
		const char *l;
		size_t ll;
		if ((rc = next_line(&r, CAIRN_FEED_SIG_LINE_MAX, &l, &ll, err)) < 0)
			goto fail;
		if (doc->n_sigs == CAIRN_FEED_SIGS_MAX) {
			rc = cairn_error_set(err, CAIRN_ELIMIT, "feed: more than %d signatures",
					     CAIRN_FEED_SIGS_MAX);
			goto fail;
		}
		if (feed_words(l, ll, w, wl, 3) != 3 || !feed_word_is(w[0], wl[0], "sig") || wl[2] == 0) {
			rc = bad(&r, err, "expected 'sig nix|guix <signature>'");
			goto fail;
		}
		if (feed_word_is(w[1], wl[1], "nix"))
			doc->sigs[doc->n_sigs].kind = CAIRN_KEY_NIX;
		else if (feed_word_is(w[1], wl[1], "guix"))
			doc->sigs[doc->n_sigs].kind = CAIRN_KEY_GUIX;
		else {
			rc = bad(&r, err, "signature kind is neither nix nor guix");
			goto fail;
		}
		doc->sigs[doc->n_sigs].text = w[2];
		doc->sigs[doc->n_sigs].len = wl[2];
		doc->n_sigs++;
	}
	doc->statement_len = feed_statement(doc->statement, sizeof(doc->statement), doc->kind,
					    doc->feed, doc->since, doc->next, doc->n_events,
					    doc->sha256);
	return 0;
fail:
	cairn_feed_doc_release(doc);
	return rc;
}

void cairn_feed_doc_release(struct cairn_feed_doc *doc)
{
	free(doc->events);
	memset(doc, 0, sizeof(*doc));
}

/* One Guix sig line: base64 of the signature s-expression. */
static int verify_guix(const struct cairn_feed_doc *doc, const char *b64, size_t len,
		       const struct cairn_keyring *kr, struct cairn_error *err)
{
	uint8_t sexp[CAIRN_GUIX_SEXP_MAX];
	size_t got = 0;
	if (len > cairn_base64_len(sizeof(sexp)) ||
	    cairn_base64_decode(b64, len, sexp, sizeof(sexp), &got) != 0)
		return cairn_error_set(err, CAIRN_ESIGCORRUPT,
				       "feed: Guix signature is not base64 of at most %d bytes",
				       CAIRN_GUIX_SEXP_MAX);
	return cairn_guix_verify(doc->statement, doc->statement_len, (const char *)sexp, got,
				 kr->guix, kr->n_guix, NULL, err);
}

/* One Nix sig line against every trusted key of its name. */
static int verify_nix(const struct cairn_feed_doc *doc, const char *sig, size_t len,
		      const struct cairn_keyring *kr, struct cairn_error *err)
{
	int best = CAIRN_EUNTRUSTED;
	for (size_t k = 0; k < kr->n_nix; k++) {
		struct cairn_error e;
		cairn_error_init(&e);
		int rc = cairn_nix_verify(&kr->nix[k], doc->statement, doc->statement_len, sig, len,
					  &e);
		if (rc == 0)
			return 0;
		if (rc == CAIRN_ESIGCORRUPT)
			return cairn_error_set(err, rc, "feed: %s", cairn_error_msg(&e));
		if (rc != CAIRN_EUNTRUSTED)
			best = rc;
	}
	if (best == CAIRN_EUNTRUSTED)
		return cairn_error_set(err, best, "feed: signed by '%.*s', which is not trusted",
				       (int)(memchr(sig, ':', len) ? (const char *)memchr(sig, ':', len) - sig
								  : 0),
				       sig);
	return cairn_error_set(err, best, "feed: the signature by '%.*s' does not verify",
			       (int)(memchr(sig, ':', len) ? (const char *)memchr(sig, ':', len) - sig
							  : 0),
			       sig);
}

int cairn_feed_doc_verify(const struct cairn_feed_doc *doc, const struct cairn_keyring *kr,
			  struct cairn_error *err)
{
	/* most telling failure first, as cairn_narinfo_verify orders them */
	static const int order[] = {CAIRN_EHASH, CAIRN_ESIG, CAIRN_ESIGCORRUPT, CAIRN_EUNTRUSTED};
	struct cairn_error first[4];
	int seen[4] = {0, 0, 0, 0};

	if (doc->n_sigs == 0)
		return cairn_error_set(err, CAIRN_ENOSIG, "feed: the %s is not signed",
				       feed_kind_name(doc->kind));
	for (size_t i = 0; i < doc->n_sigs; i++) {
		struct cairn_error e;
		cairn_error_init(&e);
		int rc = doc->sigs[i].kind == CAIRN_KEY_NIX
				 ? verify_nix(doc, doc->sigs[i].text, doc->sigs[i].len, kr, &e)
				 : verify_guix(doc, doc->sigs[i].text, doc->sigs[i].len, kr, &e);
		if (rc == 0)
			return 0;
		for (size_t o = 0; o < 4; o++)
			if (rc == order[o] && !seen[o]) {
				seen[o] = 1;
				first[o] = e;
			}
		if (rc != CAIRN_EHASH && rc != CAIRN_ESIG && rc != CAIRN_ESIGCORRUPT &&
		    rc != CAIRN_EUNTRUSTED)
			return cairn_error_set(err, rc, "feed: %s", cairn_error_msg(&e));
	}
	for (size_t o = 0; o < 4; o++)
		if (seen[o])
			return cairn_error_set(err, order[o] == CAIRN_EHASH ? CAIRN_ESIG : order[o],
					       "%s", cairn_error_msg(&first[o]));
	BUG("feed: no verdict");
}

int cairn_feed_doc_check_page(const struct cairn_feed_doc *doc, const char *feed, uint64_t since,
			      struct cairn_error *err)
{
	if (doc->kind != CAIRN_FEED_PAGE)
		return cairn_error_set(err, CAIRN_EFORMAT, "feed: a snapshot where a page was asked for");
	if (feed && strcmp(feed, doc->feed) != 0)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "feed: page of feed %s, not of the feed followed (%s)",
				       doc->feed, feed);
	if (doc->since != since)
		return cairn_error_set(err, CAIRN_EFORMAT,
				       "feed: page starts after %" PRIu64 ", not after %" PRIu64
				       " as asked (replayed or misdirected)",
				       doc->since, since);
	return 0;
}
