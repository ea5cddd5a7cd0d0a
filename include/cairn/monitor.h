/*
 * monitor.h - `cairn monitor` (issue 16): watch several binary caches,
 * record what each serves for every store item, and say where they
 * disagree, with history, a report page and a JSON API.
 *
 * What to look at: the signed change feed (feed.h) of every server that
 * has one (a page is used only when a trusted key signed it), and, for
 * all servers, the store paths of a path list (--paths) re-read at every
 * full pass.  Every item learnt either way is asked of every server
 * through the one narinfo query engine (survey.h); each signature is
 * checked against the trusted keys (keys.h).  A full pass over every
 * known item runs each `interval` seconds; items new in a feed are asked
 * at once.
 *
 * What it records (SQLite, WAL; docs/cairn-monitor.md has the schema): for
 * every item and server, the narinfo's NarHash, NarSize, References,
 * signature state and text, first and last seen; per item a verdict and
 * since when (a row of history at each change).  A server that does not
 * answer (down, 5xx, timeout) changes nothing it said before: a server
 * going down is no disagreement.  On "differs" the differing NARs are
 * downloaded through the challenge engine (challenge.h: the download
 * engine, checked against each server's narinfo, listed without
 * unpacking) and the file-level diff is kept; the NARs are not.
 *
 * The verdict of an item, from the servers that have it (first that
 * applies):
 *   absent    no server has it (any more)
 *   differs   two servers claim different contents: NarHash, NarSize or
 *             the set of References (signed or not: a disagreement is
 *             never hidden)
 *   invalid   a server sent a narinfo that does not parse, or a signature
 *             of a trusted key that does not verify
 *   only-one  one server has it
 *   unsigned  no copy is signed by a trusted key
 *   agree     two servers or more, the same claim, signed by a trusted key
 */
#ifndef CAIRN_MONITOR_H
#define CAIRN_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "cairn/keys.h"
#include "cairn/sign.h"

#define CAIRN_MONITOR_MAX_SERVERS 64
#define CAIRN_MONITOR_INTERVAL_DEFAULT 300 /* seconds between full passes */
#define CAIRN_MONITOR_RETENTION_DEFAULT 90 /* days of history kept */
#define CAIRN_MONITOR_PAGE_DEFAULT 50	   /* items of a list page */
#define CAIRN_MONITOR_PAGE_MAX 1000
#define CAIRN_MONITOR_DIFF_FILES_MAX 10000 /* file changes kept per item */

enum cairn_monitor_verdict {
	CAIRN_MONITOR_AGREE = 0,
	CAIRN_MONITOR_DIFFERS,
	CAIRN_MONITOR_INVALID,
	CAIRN_MONITOR_ONLY_ONE,
	CAIRN_MONITOR_UNSIGNED,
	CAIRN_MONITOR_ABSENT,
	CAIRN_MONITOR_VERDICTS_ /* count */
};

/* "agree", "differs", "invalid", "only-one", "unsigned", "absent"; static. */
const char *cairn_monitor_verdict_name(enum cairn_monitor_verdict v);
/* The verdict named s[0..len), or CAIRN_EFORMAT. */
int cairn_monitor_verdict_parse(const char *s, size_t len);

/* What one server said about one item, as recorded. */
enum cairn_monitor_state {
	CAIRN_MONITOR_PRESENT = 1, /* a narinfo that parses */
	CAIRN_MONITOR_GONE = 2,	   /* 404/410/403: the server does not have it */
	CAIRN_MONITOR_BROKEN = 3,  /* an answer that is not a usable narinfo */
};

enum cairn_monitor_sig {
	CAIRN_MONITOR_SIG_VALID = 0,	 /* signed by a trusted key */
	CAIRN_MONITOR_SIG_UNSIGNED = 1,	 /* no signature */
	CAIRN_MONITOR_SIG_INVALID = 2,	 /* a trusted key's signature fails, or undecodable */
	CAIRN_MONITOR_SIG_UNTRUSTED = 3, /* signed by other keys only */
};

/* "valid", "unsigned", "invalid", "untrusted"; static. */
const char *cairn_monitor_sig_name(enum cairn_monitor_sig s);
/* "present", "absent", "broken"; static. */
const char *cairn_monitor_state_name(enum cairn_monitor_state s);
/* The signature state of a cairn_narinfo_verify status. */
enum cairn_monitor_sig cairn_monitor_sig_of(int verify_status);

struct cairn_monitor_obs {
	enum cairn_monitor_state state;
	enum cairn_monitor_sig sig; /* PRESENT */
	const char *nar_hash;	    /* PRESENT: "sha256:<nix32>" */
	uint64_t nar_size;
	const char *refs; /* PRESENT: the References, sorted, space-separated */
};

/* The verdict on an item from what the servers said (rules above).  Pure. */
enum cairn_monitor_verdict cairn_monitor_decide(const struct cairn_monitor_obs *obs, size_t n);

/* ---- the signed observation log ------------------------------------------- */

/*
 * With a key, a monitor keeps an append-only log of what it saw: a record
 * each time what a server says about an item changes (or is first seen).
 * It is served at /api/v1/log (docs/PROTOCOL.md, "The observation log"):
 *
 *   cairn-monitor-log 1\n
 *   monitor <32 lowercase hex>\n
 *   base <count> <chain>\n    only after a pruning: count records were
 *                             dropped before the first obs, chain (64
 *                             lowercase hex) is their chained digest
 *   obs <seq> <time> <server URL> <hash part> <state> <NarHash|-> <NarSize>\n
 *   ...                       seq strictly increasing; state present,
 *                             absent or broken; time in Unix seconds
 *   end <count> <sha256>\n    count of obs lines; sha256 (64 lowercase hex)
 *                             of every byte before this line
 *   sig nix <keyname>:<base64>\n   one to CAIRN_MONITOR_LOG_SIGS_MAX
 *
 * Each signature is Ed25519 (a Nix key) over the statement
 *   cairn-monitor-log 1;<monitor>;<count>;<sha256>
 * A later log of the same monitor starts with the same records, or with a
 * base whose chain continues them.  The chained digest: c(0) = 32 zero
 * bytes, c(k) = SHA-256(c(k-1) || obs line k with its newline).
 */
#define CAIRN_MONITOR_LOG_MAX ((size_t)256 << 20) /* bytes of a log */
#define CAIRN_MONITOR_LOG_LINE_MAX 8192
#define CAIRN_MONITOR_LOG_SIGS_MAX 16

struct cairn_monitor_log_entry {
	uint64_t seq;
	int64_t at;
	const char *server, *hash, *state, *nar_hash; /* borrowed for the call */
	uint64_t nar_size;
};

/* What a verified log says of itself. */
struct cairn_monitor_log_head {
	char monitor[33];
	uint64_t base;		/* records pruned before its first */
	uint8_t base_chain[32]; /* their chained digest (zeros for none) */
	uint64_t count;		/* base + its records */
};

/* One step of the chained digest: c = SHA-256(c || e's obs line). */
int cairn_monitor_log_chain(uint8_t c[32], const struct cairn_monitor_log_entry *e);

/*
 * Check a log: its layout and bounds, its hash, and a signature by a
 * trusted Nix key (CAIRN_ENOSIG, CAIRN_ESIG, CAIRN_EUNTRUSTED,
 * CAIRN_ESIGCORRUPT, CAIRN_EFORMAT, CAIRN_EHASH, CAIRN_ELIMIT); then,
 * only when it verified, fn (may be NULL) gets each record in order.
 * head gets the log's monitor id, its base and its count.
 */
int cairn_monitor_log_verify(const char *text, size_t len, const struct cairn_keyring *kr,
			     struct cairn_monitor_log_head *head,
			     int (*fn)(void *ctx, const struct cairn_monitor_log_entry *e),
			     void *ctx, struct cairn_error *err);

/* ---- the service ---------------------------------------------------------- */

struct cairn_httpd;

struct cairn_monitor_config {
	const char *const *servers; /* base URLs, borrowed */
	size_t n_servers;
	const char *db_path;
	const char *paths_file;		/* store paths, one a line; NULL: none */
	const struct cairn_keyring *kr; /* borrowed; may be empty */
	unsigned interval;		/* seconds; 0: the default */
	unsigned feed_poll_ms;		/* 0: 1000 */
	unsigned retention_days;	/* 0: the default */
	bool diff;			/* download and diff NARs on "differs" */
	/* With diff: run this diffoscope (a name in PATH or a path) on the
	 * unpacked NARs of the first two groups; NULL: "diffoscope", used
	 * when it is installed; "": never. */
	const char *diffoscope;
	/* The local store under this root ("/" the real one; storeloc.h) is
	 * compared too; NULL: not.  store_db: its database, NULL: the kind's. */
	const char *store_root;
	const char *store_db;
	/* Sign the observation log with this Nix key (borrowed); NULL: no log
	 * is kept or served. */
	const struct cairn_nix_seckey *key;
	/* Other monitors whose logs (verified with kr) are shown beside
	 * this one's observations, attributed to them. */
	const char *const *peers;
	size_t n_peers;
	/* What the operator should hear; NULL: nothing.  Called from the
	 * observer's thread. */
	void (*log)(void *ctx, const char *msg);
	void *log_ctx;
};

void cairn_monitor_config_init(struct cairn_monitor_config *cfg);

struct cairn_monitor;

/* Open (creating) the database and record the servers; nothing runs yet. */
int cairn_monitor_new(struct cairn_monitor **out, const struct cairn_monitor_config *cfg,
		      struct cairn_error *err);
/* Register the report's routes (docs/PROTOCOL.md, "The monitor's API"):
 * /, /items, /item/, /server/, /atom.xml, /api/v1/..., /metrics. */
int cairn_monitor_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err);
/* Start the observer thread. */
int cairn_monitor_start(struct cairn_monitor *m, struct cairn_error *err);
/* Stop the observer (within a poll interval) and close. */
void cairn_monitor_free(struct cairn_monitor *m);

#endif
