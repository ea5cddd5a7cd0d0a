/*
 * feed-int.h - what lib/feed.c (the log) shares with lib/feed-doc.c (the
 * document layout, signing and parsing).  Not public.
 */
#ifndef CAIRN_FEED_INT_H
#define CAIRN_FEED_INT_H

#include "cairn/feed.h"
#include "cairn/hash.h"

/* Is s 32 nix32 characters? */
bool feed_hashpart_ok(const char *s, size_t len);

/* "kind" word of a document kind. */
const char *feed_kind_name(enum cairn_feed_doc_kind kind);

/* The head of a document, up to and including its "head" line. */
int feed_doc_head(struct cairn_buf *out, enum cairn_feed_doc_kind kind, const char *feed,
		  const char *dialect, uint64_t since, uint64_t next, uint64_t head);

/*
 * The statement every signature signs, into out (at least 160 bytes):
 * returns its length.
 */
size_t feed_statement(char *out, size_t cap, enum cairn_feed_doc_kind kind, const char *feed,
		      uint64_t since, uint64_t next, uint64_t count, const char *sha256hex);

/*
 * The trailer: "end <count> <sha256>" and one sig line per key, appended to
 * out.  digest is the SHA-256 of every byte before the end line.
 */
int feed_trailer(struct cairn_buf *out, const struct cairn_feed_signer *signer,
		 enum cairn_feed_doc_kind kind, const char *feed, uint64_t since, uint64_t next,
		 uint64_t count, const uint8_t digest[CAIRN_SHA256_LEN], struct cairn_error *err);

/* Line helpers of the document parsers (feed-doc.c, feed-reader.c). */
#define FEED_LINE_MAX 256 /* a head line or a record line */
/* Split a line into at most max words separated by single spaces; more
 * than max returns max + 1. */
size_t feed_words(const char *l, size_t ll, const char **w, size_t *wl, size_t max);
bool feed_word_is(const char *w, size_t wl, const char *lit);
/* A decimal without leading zeros, at most CAIRN_FEED_SEQ_MAX. */
bool feed_u64(const char *w, size_t wl, uint64_t *out);
bool feed_lower_hex(const char *w, size_t wl, size_t want);

#endif
