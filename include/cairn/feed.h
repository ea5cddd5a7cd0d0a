/*
 * feed.h - the signed change feed of `cairn publish` (issue 14): an
 * append-only log of "item added" / "item removed" events, the pages and
 * snapshots that carry it over HTTP, and the follower's side that parses
 * and verifies them.  docs/PROTOCOL.md is the normative description; this
 * is the summary next to the code.
 *
 * The log (lib/feed.c).  A SQLite database (feed.sqlite in the --feed
 * directory) holding
 *   meta(k, v)                     "feed": the feed id, 32 lowercase hex
 *                                  digits, random, chosen when the database
 *                                  is created; "floor": events with seq <=
 *                                  floor may be gone; cursors of sources
 *   events(seq INTEGER PRIMARY KEY AUTOINCREMENT, kind, hashpart, narinfo)
 *   items(hashpart PRIMARY KEY, seq)   what is present now: the add event
 *                                      that carries its narinfo
 * AUTOINCREMENT makes SQLite never hand out a sequence number twice, also
 * after the newest events were deleted, and synchronous=FULL makes a
 * committed number survive a power loss, so a follower that saw seq N never
 * sees another event N.  Old events are pruned beyond a count kept
 * (cairn_feed_prune); an add event stays while its item is present, since
 * the snapshot reads its narinfo.
 *
 * The documents (lib/feed-doc.c).  A page (events after a sequence number)
 * and a snapshot (every present item) share one text layout:
 *
 *   cairn-feed 1\n
 *   kind page\n                       or "kind snapshot"
 *   feed <32 lowercase hex>\n
 *   dialect nix\n                     or "guix": how the narinfos are written
 *   range <since> <next>\n            page: events with since < seq <= next;
 *                                     snapshot: "0 <seq>", the state after
 *                                     event <seq>
 *   head <head>\n                     the newest seq the server had
 *   add <seq> <hashpart> <len>\n<len bytes of narinfo>\n          (page)
 *   remove <seq> <hashpart>\n                                      (page)
 *   item <hashpart> <len>\n<len bytes of narinfo>\n            (snapshot)
 *   end <count> <sha256>\n            count of add/remove/item records;
 *                                     sha256 (64 lowercase hex) of every
 *                                     byte before this line
 *   sig nix <keyname>:<base64>\n      zero or more signatures (after "end",
 *   sig guix <base64>\n               not covered by the hash)
 *
 * Numbers are decimal without leading zeros, at most 2^63-1.  A page's
 * seqs are strictly increasing, each in (since, next], and next is the last
 * one (since when there are none).  Every signature signs the statement
 *   cairn-feed 1;<kind>;<feed>;<since>;<next>;<count>;<sha256>
 * (no newline): Nix keys with Ed25519 over those bytes (sign.h), a Guix key
 * with cairn_guix_sign over them (the s-expression, base64-encoded on the
 * sig line).  The range in the statement is what stops replays out of
 * order: a follower asking for events after S accepts only a page whose
 * signed range starts at S.  A snapshot is served compressed with zstd;
 * the text above is what is inside.
 */
#ifndef CAIRN_FEED_H
#define CAIRN_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/keys.h"

/* Bounds: what a server sends and a follower accepts. */
#define CAIRN_FEED_PAGE_EVENTS_DEFAULT 1000
#define CAIRN_FEED_PAGE_EVENTS_MAX 10000
#define CAIRN_FEED_PAGE_MAX (16u << 20)	 /* bytes of a page, signatures included */
#define CAIRN_FEED_EVENT_MAX (1u << 20)	 /* bytes of one narinfo in an event */
#define CAIRN_FEED_SIGS_MAX 16		 /* sig lines */
#define CAIRN_FEED_SIG_LINE_MAX 8192	 /* bytes of one sig line */
#define CAIRN_FEED_WAIT_MAX 60		 /* seconds a long-poll may wait */
#define CAIRN_FEED_KEEP_DEFAULT 1000000	 /* events kept (besides present items) */
#define CAIRN_FEED_SEQ_MAX ((uint64_t)INT64_MAX)
#define CAIRN_FEED_ID_LEN 32

enum cairn_feed_kind {
	CAIRN_FEED_ADD = 1,
	CAIRN_FEED_REMOVE = 2,
};

enum cairn_feed_doc_kind {
	CAIRN_FEED_PAGE = 1,
	CAIRN_FEED_SNAPSHOT = 2,
};

/* ---- the log (server side) --------------------------------------------- */

struct cairn_feed;

/*
 * Open (creating it when missing) the log at path.  Thread-safe handle:
 * calls are serialized.  CAIRN_EIO when SQLite cannot open or write it.
 */
int cairn_feed_open(struct cairn_feed **out, const char *path, struct cairn_error *err);
void cairn_feed_close(struct cairn_feed *f);

/* The feed id (32 hex digits); borrowed for the life of f. */
const char *cairn_feed_id(const struct cairn_feed *f);
/* The newest sequence number (0: none yet) and the floor (since values
 * below it are too old). */
int cairn_feed_head(struct cairn_feed *f, uint64_t *head, uint64_t *floor, struct cairn_error *err);

/* Group changes into one transaction (one fsync); nest no deeper than one. */
int cairn_feed_begin(struct cairn_feed *f, struct cairn_error *err);
int cairn_feed_commit(struct cairn_feed *f, struct cairn_error *err);

/*
 * Item hashpart (32 nix32 characters) is present with this narinfo: appends
 * an add event unless it is already present with the same text.  *added
 * (may be NULL) tells whether an event was appended.  CAIRN_ELIMIT beyond
 * CAIRN_FEED_EVENT_MAX, CAIRN_EFORMAT for a malformed hash part.
 */
int cairn_feed_add(struct cairn_feed *f, const char *hashpart, const char *narinfo, size_t len,
		   bool *added, struct cairn_error *err);
/* Item hashpart is gone: appends a remove event when it was present. */
int cairn_feed_remove(struct cairn_feed *f, const char *hashpart, bool *removed,
		      struct cairn_error *err);
/* Is the item present? */
int cairn_feed_has(struct cairn_feed *f, const char *hashpart, bool *present,
		   struct cairn_error *err);
/* Number of present items. */
int cairn_feed_count(struct cairn_feed *f, uint64_t *count, struct cairn_error *err);
/*
 * The present hash parts, sorted, into a malloc'd array of 33-byte strings
 * (*out, free() it) for a source to compare its own listing with.
 */
int cairn_feed_items(struct cairn_feed *f, char (**out)[33], size_t *n, struct cairn_error *err);

/* A source's cursor (name: a short word), 0 when never set. */
int cairn_feed_cursor(struct cairn_feed *f, const char *name, uint64_t *value,
		      struct cairn_error *err);
int cairn_feed_set_cursor(struct cairn_feed *f, const char *name, uint64_t value,
			  struct cairn_error *err);

/*
 * Forget events so that at most keep remain after the floor (add events
 * of present items stay: the snapshot needs them).  Raises the floor.
 */
int cairn_feed_prune(struct cairn_feed *f, uint64_t keep, struct cairn_error *err);

/* What signs the documents: keys borrowed; Nix and Guix keys alike. */
struct cairn_feed_signer {
	const struct cairn_seckey *const *keys;
	size_t n_keys;
	const char *dialect; /* "nix" or "guix" */
};

/*
 * The page of events after since: at most max_events (0: the default;
 * capped to CAIRN_FEED_PAGE_EVENTS_MAX) and about CAIRN_FEED_PAGE_MAX bytes
 * (always at least one event when there is one), signed, into out.
 *   CAIRN_ENOENT  since is below the floor: the events are gone (the
 *                 follower bootstraps from a snapshot); detail says so
 *   CAIRN_EINVAL  since is past the head
 * *next gets the page's last seq (since when empty).
 */
int cairn_feed_page(struct cairn_feed *f, uint64_t since, unsigned max_events,
		    const struct cairn_feed_signer *signer, struct cairn_buf *out, uint64_t *next,
		    struct cairn_error *err);

/*
 * The snapshot, uncompressed, through fn in pieces (fn returns 0 to go on
 * or a negative cairn_err to stop).  Reads on its own connection, in one
 * read transaction, so it is consistent with its seq however long the
 * client takes, and the log keeps growing meanwhile.
 */
int cairn_feed_snapshot(struct cairn_feed *f, const struct cairn_feed_signer *signer,
			int (*fn)(void *ctx, const void *data, size_t len), void *ctx,
			struct cairn_error *err);

/* ---- documents (follower side: untrusted input) ------------------------ */

struct cairn_feed_event {
	uint64_t seq; /* 0 in a snapshot */
	enum cairn_feed_kind kind;
	char hashpart[33];
	const char *narinfo; /* into the parsed text; NULL for a removal */
	size_t narinfo_len;
};

struct cairn_feed_doc {
	enum cairn_feed_doc_kind kind;
	char feed[CAIRN_FEED_ID_LEN + 1];
	char dialect[8];
	uint64_t since, next, head;
	size_t n_events;
	struct cairn_feed_event *events;
	char sha256[65];
	/* the statement the signatures sign */
	char statement[160];
	size_t statement_len;
	size_t n_sigs;
	struct {
		enum cairn_key_kind kind;
		const char *text; /* Nix: "name:base64"; Guix: base64 of the s-expression */
		size_t len;
	} sigs[CAIRN_FEED_SIGS_MAX];
};

/*
 * Parse a page or a snapshot (len at most CAIRN_FEED_PAGE_MAX; a larger
 * snapshot is read with cairn_feed_reader_*, below).  The text must outlive
 * doc (events and sigs point into it).  Checks the layout, the bounds, the
 * order of seqs and the hash; not the signatures.  CAIRN_EFORMAT /
 * CAIRN_ELIMIT / CAIRN_EHASH with a detail naming the line.
 */
int cairn_feed_doc_parse(const char *text, size_t len, struct cairn_feed_doc *doc,
			 struct cairn_error *err);
void cairn_feed_doc_release(struct cairn_feed_doc *doc);

/*
 * Check the signatures against trusted keys: 0 when one trusted key signed
 * the statement; else CAIRN_ENOSIG (unsigned), CAIRN_EUNTRUSTED (signed by
 * others only), CAIRN_ESIG (a trusted key's signature does not verify),
 * CAIRN_ESIGCORRUPT (undecodable).
 */
int cairn_feed_doc_verify(const struct cairn_feed_doc *doc, const struct cairn_keyring *kr,
			  struct cairn_error *err);

/*
 * What a follower that asked for the events after since of feed (NULL:
 * any feed, the first contact) must also check: a page, of that feed,
 * whose range starts at since.  CAIRN_EFORMAT otherwise.
 */
int cairn_feed_doc_check_page(const struct cairn_feed_doc *doc, const char *feed, uint64_t since,
			      struct cairn_error *err);

/*
 * The same checks on a document as it streams (a snapshot of millions of
 * items), with memory bounded by one record: feed bytes in pieces of any
 * size; on_event gets each record once it is whole (its narinfo valid
 * during the call; return 0 to go on, a negative cairn_err to stop).  An
 * item seen before the end is not yet covered by the signature: act on it
 * only as far as its own narinfo's signatures allow.  finish checks that
 * the document ended after its signatures and gives the head, counts and
 * signatures (no events), borrowed until the reader is freed, for
 * cairn_feed_doc_verify.
 */
struct cairn_feed_reader;
int cairn_feed_reader_new(struct cairn_feed_reader **out,
			  int (*on_event)(void *ctx, const struct cairn_feed_event *e), void *ctx,
			  struct cairn_error *err);
int cairn_feed_reader_feed(struct cairn_feed_reader *r, const void *data, size_t len,
			   struct cairn_error *err);
int cairn_feed_reader_finish(struct cairn_feed_reader *r, const struct cairn_feed_doc **doc,
			     struct cairn_error *err);
void cairn_feed_reader_free(struct cairn_feed_reader *r);

/* ---- the server: a source that fills the log, and the routes ----------- */

/*
 * Served under (docs/PROTOCOL.md):
 *   GET /feed/events?since=N[&max=M][&wait=W]
 *       the page of events after N (200, text/x-cairn-feed).  With W > 0
 *       (seconds, at most CAIRN_FEED_WAIT_MAX) and nothing after N yet, the
 *       answer waits until an event comes (answered within a poll interval
 *       of its arrival) or W passes (then an empty page).  410 when N is
 *       below the floor, 400 for a malformed query or an N past the head.
 *   GET /feed/snapshot
 *       every present item (200, application/zstd: the snapshot text,
 *       compressed), streamed from one read transaction.
 * Sources: a store database (new rows found by id as they are registered;
 * removals by comparing counts, then listings, every few seconds) or a
 * binary-cache directory (listed again whenever its mtime changes).
 */
struct cairn_httpd;
struct cairn_storedb_config;

/* Waiting long-polls; beyond this a new one gets 503. */
#define CAIRN_FEED_WAITERS_MAX 4096
/* Snapshots streaming at once; beyond this 503. */
#define CAIRN_FEED_SNAPSHOTS_MAX 8
#define CAIRN_FEED_POLL_MS_DEFAULT 200

struct cairn_feed_server_config {
	const char *path; /* the log's database file */
	/* Source: a store (store_db non-NULL, with the narinfo function) or
	 * the binary-cache directory binary_cache. */
	const struct cairn_storedb_config *store_db;
	/* The narinfo served for a store item: append it to out; CAIRN_ENOENT
	 * when the item is not served (skipped).  Called from the source's
	 * thread. */
	int (*narinfo)(void *ctx, const char *hashpart, struct cairn_buf *out,
		       struct cairn_error *err);
	void *narinfo_ctx;
	const char *binary_cache;
	struct cairn_feed_signer signer;
	uint64_t keep;	  /* events kept; 0: CAIRN_FEED_KEEP_DEFAULT */
	unsigned poll_ms; /* 0: CAIRN_FEED_POLL_MS_DEFAULT */
	/* What the operator should hear (a source that fails); NULL: nothing. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

struct cairn_feed_server;

/* Open the log and start the source's thread (its first pass fills the
 * log with what is present).  The config's strings are copied, the keys
 * borrowed. */
int cairn_feed_server_new(struct cairn_feed_server **out, const struct cairn_feed_server_config *cfg,
			  struct cairn_error *err);
/* Register /feed/events and /feed/snapshot; before the routes that would
 * take /feed/ (a "/" prefix). */
int cairn_feed_server_routes(struct cairn_feed_server *s, struct cairn_httpd *h,
			     struct cairn_error *err);
/* Answer waiting long-polls, wait for snapshots, stop the source, close. */
void cairn_feed_server_free(struct cairn_feed_server *s);
/* The log (for tests and tools); borrowed. */
struct cairn_feed *cairn_feed_server_log(struct cairn_feed_server *s);

#endif
