/*
 * narinfos.h - many narinfos in one response (docs/PROTOCOL.md, "Batch
 * narinfos").  A server that advertises "CairnNarinfos: 1" in its
 * nix-cache-info answers
 *
 *   GET <base>/narinfos?hashes=<h1>,<h2>,...[&closure=1]
 *
 * with every narinfo it has of those hash parts (and, with closure=1, of
 * everything they reference, transitively, as far as its bounds allow),
 * each exactly the bytes "<base>/<h>.narinfo" would send, and the hash
 * parts it does not have listed as absent:
 *
 *   CairnNarinfos: 1\n
 *   Narinfo: <hash> <length>\n<length bytes>     (any number, any order)
 *   Absent: <hash>\n
 *   End: <entries>\n
 *
 * One parser for the clients (the survey), one writer for the servers
 * (publish, mirror): both dialects, since a narinfo travels as opaque
 * bytes.  Parsing is all or nothing: a body that is not exactly this
 * (a missing End, a length past the body, a line of another kind, a hash
 * twice, bytes after End) is refused whole.
 */
#ifndef CAIRN_NARINFOS_H
#define CAIRN_NARINFOS_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/storepath.h"

#define CAIRN_NARINFOS_VERSION 1
/* hash parts in one request: its URL stays under CAIRN_HTTP_URL_MAX */
#define CAIRN_NARINFOS_HASHES_MAX 100
/* entries in one response (asked and, with closure, the rest) */
#define CAIRN_NARINFOS_COUNT_MAX 20000
/* bytes of one response */
#define CAIRN_NARINFOS_RESPONSE_MAX (32u << 20)
#define CAIRN_NARINFOS_CONTENT_TYPE "text/x-cairn-narinfos"

struct cairn_narinfos_entry {
	char hash[CAIRN_STORE_HASH_LEN + 1];
	bool present;
	const char *text; /* present: points into the body parsed */
	size_t len;
};

/*
 * Parse a response body.  *out (free() it) gets the entries in body
 * order, *n their count.  CAIRN_EFORMAT for bad framing, CAIRN_ELIMIT past
 * the bounds above (a narinfo longer than CAIRN_NARINFO_MAX included);
 * err says what and where.  Bytes from the network: fuzzed.
 */
int cairn_narinfos_parse(const char *body, size_t len, struct cairn_narinfos_entry **out,
			 size_t *n, struct cairn_error *err);

/*
 * A request's query ("hashes=...&closure=1", as after '?'): the hash parts
 * into hashes (at most CAIRN_NARINFOS_HASHES_MAX, each checked), and
 * closure.  CAIRN_EFORMAT / CAIRN_ELIMIT with a message for the client.
 */
int cairn_narinfos_parse_query(const char *q, size_t len,
			       char (*hashes)[CAIRN_STORE_HASH_LEN + 1], size_t *n,
			       bool *closure, struct cairn_error *err);

/* Writing a response: begin, one add per entry, end with the count added. */
int cairn_narinfos_begin(struct cairn_buf *b);
int cairn_narinfos_add(struct cairn_buf *b, const char *hash, const char *text, size_t len);
int cairn_narinfos_add_absent(struct cairn_buf *b, const char *hash);
int cairn_narinfos_end(struct cairn_buf *b, size_t entries);

#endif
