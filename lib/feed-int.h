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

#endif
