/*
 * fuzz-feed.c - the change feed's document parser (lib/feed-doc.c) on
 * untrusted bytes, as a follower meets them.  What parses must keep its
 * promises: events inside the input, seqs strictly increasing within the
 * range, at most the bounds; verification must not crash whatever the
 * signatures hold.  The stream reader (cairn_feed_reader_*), fed the same
 * bytes in two pieces split where the input says, must reach the same
 * verdict, the same events and the same signed statement.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/cairn.h"
#include "cairn/feed.h"
#include "cairn/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
	const struct cairn_feed_doc *whole;
	size_t i;
	int mismatch;
};

static int on_event(void *ctx, const struct cairn_feed_event *e)
{
	struct seen *s = ctx;
	if (!s->whole)
		return 0;
	const struct cairn_feed_event *w = &s->whole->events[s->i++];
	if (w->seq != e->seq || w->kind != e->kind || memcmp(w->hashpart, e->hashpart, 33) ||
	    w->narinfo_len != e->narinfo_len ||
	    (e->narinfo_len && memcmp(w->narinfo, e->narinfo, e->narinfo_len)))
		s->mismatch = 1;
	return 0;
}

/* The reader's verdict on the same bytes, split at split. */
static void differential(const uint8_t *data, size_t size, const struct cairn_feed_doc *whole)
{
	struct cairn_feed_reader *r;
	struct seen s = {whole, 0, 0};
	const struct cairn_feed_doc *d = NULL;
	size_t split = size ? data[0] % (size + 1) : 0;
	if (cairn_feed_reader_new(&r, on_event, &s, NULL) != 0)
		abort();
	int rc = cairn_feed_reader_feed(r, data, split, NULL);
	if (rc == 0)
		rc = cairn_feed_reader_feed(r, data + split, size - split, NULL);
	if (rc == 0)
		rc = cairn_feed_reader_finish(r, &d, NULL);
	if ((rc == 0) != (whole != NULL) || s.mismatch)
		abort();
	if (whole && (s.i != whole->n_events || d->n_events != whole->n_events ||
		      d->n_sigs != whole->n_sigs || d->statement_len != whole->statement_len ||
		      memcmp(d->statement, whole->statement, d->statement_len)))
		abort();
	cairn_feed_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int inited;
	static struct cairn_keyring kr = CAIRN_KEYRING_INIT;
	if (!inited) {
		if (cairn_init() != 0)
			abort();
		/* the keys that signed the seeds in corpus/feed */
		static const char pub[] =
			"feed-fuzz-1:K1hvv2+jPwqq6vECQB6yZDucCS1ZhMfIYEedLMXe6pI=";
		static const char gpub[] =
			"(public-key \n"
			" (ecc \n"
			"  (curve Ed25519)\n"
			"  (q #6D66E168D5D1DCEAA54AA02BC24B9A32F3DAC2DB4B15E91E07167BBE3028154F#)\n"
			"  )\n"
			" )";
		if (cairn_keyring_load(&kr, pub, strlen(pub), NULL) != 1 ||
		    cairn_keyring_load(&kr, gpub, strlen(gpub), NULL) != 1)
			abort();
		inited = 1;
	}
	struct cairn_feed_doc doc;
	const char *t = (const char *)data;
	if (cairn_feed_doc_parse(t, size, &doc, NULL) != 0) {
		differential(data, size, NULL);
		return 0;
	}
	differential(data, size, &doc);
	if (doc.next < doc.since || doc.head < doc.next || doc.n_sigs > CAIRN_FEED_SIGS_MAX)
		abort();
	if (doc.kind == CAIRN_FEED_PAGE && doc.n_events > CAIRN_FEED_PAGE_EVENTS_MAX)
		abort();
	uint64_t prev = doc.since;
	for (size_t i = 0; i < doc.n_events; i++) {
		const struct cairn_feed_event *e = &doc.events[i];
		if (doc.kind == CAIRN_FEED_PAGE) {
			if (e->seq <= prev || e->seq > doc.next)
				abort();
			prev = e->seq;
		}
		if (strlen(e->hashpart) != 32)
			abort();
		if (e->kind == CAIRN_FEED_ADD &&
		    (!e->narinfo || e->narinfo < t || e->narinfo_len > CAIRN_FEED_EVENT_MAX ||
		     e->narinfo + e->narinfo_len > t + size))
			abort();
		if (e->kind == CAIRN_FEED_REMOVE && e->narinfo)
			abort();
	}
	if (doc.kind == CAIRN_FEED_PAGE && prev != doc.next)
		abort();
	cairn_feed_doc_verify(&doc, &kr, NULL);
	cairn_feed_doc_check_page(&doc, NULL, doc.since, NULL);
	cairn_feed_doc_release(&doc);
	return 0;
}
