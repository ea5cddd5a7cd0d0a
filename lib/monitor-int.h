/*
 * monitor-int.h - the monitor's internals shared by lib/monitor*.c: the
 * database layer (monitor-db.c), the observer (monitor-observe.c), the
 * pages (monitor-web.c) and the JSON API (monitor-api.c).  Not installed.
 */
#ifndef CAIRN_MONITOR_INT_H
#define CAIRN_MONITOR_INT_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/error.h"
#include "cairn/monitor.h"

#define MON_SCHEMA_VERSION 4
#define MON_HASH_LEN 32
#define MON_NOTE_MAX 1024 /* bytes of a diff's note (why it failed) */

/* items.diff_state */
enum mon_diff_state {
	MON_DIFF_NONE = 0,   /* not differing, or not asked */
	MON_DIFF_TODO = 1,   /* differs: to download and compare */
	MON_DIFF_DONE = 2,   /* the file list is in diffs */
	MON_DIFF_FAILED = 3, /* could not be compared: diff_note says why */
};

/* ---- the database (monitor-db.c) ------------------------------------------ */

#define MON_DB_STMTS 16

struct mon_db {
	sqlite3 *db;
	pthread_mutex_t lock; /* the readers' connection is shared by loop threads */
	/* the observer's statements, prepared once: keyed by their SQL's
	 * address (string literals), so each call site has its own */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cache[MON_DB_STMTS];
};

/* Open (creating, migrating) the database at path.  writer: the one
 * connection that writes (the observer's); else a reader for the pages. */
int mon_db_open(struct mon_db **out, const char *path, bool writer, struct cairn_error *err);
void mon_db_close(struct mon_db *d);

int mon_db_exec(struct mon_db *d, const char *sql, struct cairn_error *err);
int mon_db_prepare(struct mon_db *d, const char *sql, sqlite3_stmt **st, struct cairn_error *err);

int mon_db_server(struct mon_db *d, const char *url, int64_t *id, struct cairn_error *err);
/* The feed a server was followed at (feed "" when never). */
int mon_db_feed_get(struct mon_db *d, int64_t server, char feed[33], uint64_t *seq,
		    struct cairn_error *err);
int mon_db_feed_set(struct mon_db *d, int64_t server, const char *feed, uint64_t seq,
		    struct cairn_error *err);
/* has_feed: 1 yes, 0 no, -1 unchanged; error NULL when it answered. */
int mon_db_server_status(struct mon_db *d, int64_t server, int has_feed, const char *error,
			 int64_t now, struct cairn_error *err);

struct mon_obs_in {
	enum cairn_monitor_state state;
	enum cairn_monitor_sig sig;
	const char *nar_hash; /* PRESENT */
	uint64_t nar_size;
	const char *refs;
	const char *narinfo; /* PRESENT/BROKEN: the text (may be NULL) */
	size_t narinfo_len;
};

/* The item (hash part, full store path): created when new. */
int mon_db_item(struct mon_db *d, const char *hash, const char *path, int64_t now, int64_t *id,
		struct cairn_error *err);
/* What server said about item at now (first_seen kept, last_seen moved). */
/* The item, created with its verdict v when new (*created; a verdict
 * other than absent recorded in its history, as mon_db_settle would);
 * when it was there, only its id: the caller settles it. */
int mon_db_item_settled(struct mon_db *d, const char *hash, const char *path, int64_t now,
			enum cairn_monitor_verdict v, int64_t *id, bool *created,
			struct cairn_error *err);
int mon_db_observe(struct mon_db *d, int64_t item, int64_t server, const struct mon_obs_in *o,
		   int64_t now, struct cairn_error *err);
/* Recompute the item's verdict from its observations; a change is dated
 * now and written to the history (and a new "differs" marks a diff to do). */
int mon_db_settle(struct mon_db *d, int64_t item, int64_t now, enum cairn_monitor_verdict *v,
		  bool *changed, struct cairn_error *err);
/* This monitor's id (32 hex digits). */
/* Today's (now's day's) trend rows: the counters as they are now.  The
 * one writer calls it before each commit of observations or verdicts. */
int mon_db_trends(struct mon_db *d, int64_t now, struct cairn_error *err);
int mon_db_monitor_id(struct mon_db *d, char id[33], struct cairn_error *err);
/* Whether what server says about item changed at now (or is new). */
int mon_db_changed(struct mon_db *d, int64_t item, int64_t server, int64_t now, bool *changed,
		   struct cairn_error *err);
/* Append an observation to the log (--key). */
int mon_db_log_append(struct mon_db *d, int64_t now, const char *server, const char *hash,
		      const struct mon_obs_in *o, struct cairn_error *err);

/* Replace what is known of peer's log: clear, then put each record. */
int mon_db_peer_clear(struct mon_db *d, const char *peer, struct cairn_error *err);
int mon_db_peer_put(struct mon_db *d, const char *peer, const char *monitor,
		    const struct cairn_monitor_log_entry *e, struct cairn_error *err);

/* Every item's store path, in id order. */
int mon_db_each_item(struct mon_db *d, int (*fn)(void *ctx, const char *path), void *ctx,
		     struct cairn_error *err);
/* The store path of the item with hash part hash: CAIRN_ENOENT if unknown. */
int mon_db_path_of(struct mon_db *d, const char *hash, char *out, size_t cap,
		   struct cairn_error *err);
/* Up to max items whose diff is to do: their ids and paths (malloc'd). */
int mon_db_diff_todo(struct mon_db *d, size_t max, int64_t *ids, char **paths, size_t *n,
		     struct cairn_error *err);

struct mon_file {
	const char *type; /* "regular", "executable", "directory", "symlink"; NULL: none */
	uint64_t size;
	const char *sha256; /* regular: hex */
	const char *target; /* symlink */
};
/* Forget the item's earlier diff rows (before writing new ones). */
int mon_db_diff_clear(struct mon_db *d, int64_t item, struct cairn_error *err);
int mon_db_diff_put(struct mon_db *d, int64_t item, int64_t a_server, int64_t b_server,
		    const char *path, const char *change, const struct mon_file *a,
		    const struct mon_file *b, struct cairn_error *err);
int mon_db_diff_done(struct mon_db *d, int64_t item, enum mon_diff_state state, const char *note,
		     struct cairn_error *err);
int mon_db_diffoscope_put(struct mon_db *d, int64_t item, int64_t a_server, int64_t b_server,
			  const void *html, size_t len, const char *note, struct cairn_error *err);

/* diffoscope (monitor-diffoscope.c): bounds, since the trees are whatever
 * the servers sent, and the biggest NAR unpacked for it. */
#define MON_DIFFOSCOPE_TIMEOUT_S 60 /* for all the files of an item */
#define MON_DIFFOSCOPE_HTML_MAX ((size_t)1 << 20)
#define MON_DIFFOSCOPE_NAR_MAX ((uint64_t)256 << 20)
#define MON_DIFFOSCOPE_FILES_MAX 32 /* files of an item compared */
struct cairn_nar_change;
/* Run prog on each regular file that changes (n_changes changes from tree
 * a to tree b, paths relative to them), or on the trees when none does;
 * one HTML report (at most html_max bytes) into html, a heading with each
 * file's name.  0 with a report (note says when it is partial),
 * CAIRN_ENOENT when prog cannot be run, another error when it failed; note
 * says why. */
int mon_diffoscope(const char *prog, const char *a, const char *b,
		   const struct cairn_nar_change *changes, size_t n_changes, unsigned timeout_s,
		   size_t html_max, struct cairn_buf *html, char *note, size_t note_len);

/* A failed diff (a server gone, a NAR that did not match) is tried again
 * at the next full passes, up to this many tries in all; a new
 * disagreement starts over. */
#define MON_DIFF_TRIES 3
/* Failed diffs tried fewer than max_tries times: to do again. */
int mon_db_diff_retry(struct mon_db *d, int max_tries, struct cairn_error *err);
/* The last log of peer used: its monitor id, its count of records and
 * their chained digest (hex); CAIRN_ENOENT for none yet. */
int mon_db_peer_log_get(struct mon_db *d, const char *peer, char monitor[33], uint64_t *count,
			char chain[65], struct cairn_error *err);
int mon_db_peer_log_set(struct mon_db *d, const char *peer, const char *monitor, uint64_t count,
			const char *chain, struct cairn_error *err);
/* Items per verdict into n[CAIRN_MONITOR_VERDICTS_] (zeroed first), from
 * the counters: no count over the items. */
int mon_db_verdict_counts(struct mon_db *d, uint64_t *n, struct cairn_error *err);
/* Drop history, and items absent everywhere, older than keep_s seconds. */
int mon_db_prune(struct mon_db *d, int64_t keep_s, int64_t now, struct cairn_error *err);

/* ---- the service (monitor.c, monitor-observe.c) --------------------------- */

struct metrics;
struct metric;

struct cairn_monitor {
	struct cairn_monitor_config cfg;
	char **urls;
	int64_t *server_ids;
	char monitor_id[33];
	struct mon_db *w; /* the observer's */
	struct mon_db *r; /* the pages' */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	/* counted by the observer, shown in /metrics */
	atomic_uint_fast64_t passes, lookups, feed_pages, pages_refused, diffs, changes, logged,
		peer_logs, peer_logs_refused;
	/* --store: the local store's database (the observer's), its server row */
	struct cairn_storedb *store;
	int64_t store_id;
};

/* ---- the local store (monitor-store.c) ------------------------------------ */

struct cairn_storedb;

/* Open cfg.store_root's database and record its server row. */
int mon_store_open(struct cairn_monitor *m, struct cairn_error *err);
/* Record what the local store says about the item (hash part hash). */
int mon_store_observe(struct cairn_monitor *m, int64_t item, const char *hash, int64_t now,
		      struct cairn_error *err);

/* monitor-writer.c: a survey's answers written on a thread of their own
 * into the pass's transaction, an item's together once all are in. */
struct cairn_survey;
struct mon_answer;
struct mon_writer {
	struct cairn_monitor *m;
	struct cairn_survey *sv; /* the pass's: paths by index */
	size_t n_servers;
	int64_t now;
	/* the writer thread's own */
	int64_t *item; /* per path index: the item's id once written, else 0 */
	uint8_t *got;  /* per path index: answers recorded */
	struct mon_answer **held; /* per path index: answers not written yet */
	size_t cap, used;
	/* path indexes with answers held, oldest first: a ring of
	 * MON_HOLD_ITEMS; the oldest is written when it is full */
	size_t *ring, ring_head, ring_n;
	/* mu */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct mon_answer *head, *tail;
	size_t queued;
	bool closing, running;
	bool writer_waits, observer_waits; /* on cond: the other side wakes it */
	int rc; /* the first failure: later answers are dropped */
	struct cairn_error err;
};
void mon_writer_init(struct mon_writer *w, struct cairn_monitor *m);
void mon_writer_release(struct mon_writer *w);
int mon_writer_start(struct mon_writer *w, struct cairn_survey *sv, size_t n_servers, int64_t now,
		     struct cairn_error *err);
/* Server's answer about path index pi: obs NULL when it said nothing (no
 * observation; it still counts towards the verdict).  Copies obs.  Fails
 * with the writer's first failure. */
int mon_writer_put(struct mon_writer *w, size_t pi, size_t server, const struct mon_obs_in *obs,
		   struct cairn_error *err);
/* Every answer written, the thread joined: 0 or its first failure. */
int mon_writer_finish(struct mon_writer *w, struct cairn_error *err);

void *mon_observe_main(void *arg);
void mon_say(struct cairn_monitor *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the pages' and the API's reads (monitor-query.c) -------------------- */

/* HTML text and JSON strings: cairn/escape.h (cairn_html_cstr, and
 * cairn_json_cstr_html_safe so that JSON stays inert in a page). */
/* The value of key in a query string (percent-decoded into out), or NULL. */
const char *mon_query_get(const char *q, size_t qlen, const char *key, char *out, size_t cap);
/* "2026-12-06T03:00:00Z" */
void mon_time(int64_t t, char out[32]);

/* A list page's position: after the row (since, id), newest first. */
struct mon_cursor {
	int64_t since, id;
};
/* "SINCE.ID"; CAIRN_EFORMAT otherwise.  An empty s is the start. */
int mon_cursor_parse(const char *s, struct mon_cursor *c);

struct mon_row {
	int64_t id;
	const char *hash, *path;
	int verdict;
	int64_t since;
};
/*
 * The items with verdict (-1: any) that server (0: any) has, whose store
 * path contains name (NULL or "": any), after c, newest change first, at
 * most limit: fn per row.  *more tells whether
 * there are others after the last one (then *next is its cursor).  The
 * caller holds r->lock.  Keyset pagination on the indexes: as fast on the
 * last page as on the first.
 */
int mon_list(struct mon_db *r, int verdict, int64_t server, const char *name,
	     const struct mon_cursor *c, unsigned limit,
	     int (*fn)(void *ctx, const struct mon_row *row), void *ctx, struct mon_cursor *next,
	     bool *more, struct cairn_error *err);
/*
 * The reads the pages (monitor-web.c) and the JSON API (monitor-api.c)
 * share (monitor-query.c): one query per kind of row, fn per row, so the
 * two only format.  A row's strings are NULL where the database holds
 * none, and live until fn returns; MON_NULL is an integer it holds none
 * of.  fn returns 0 to go on or a negative cairn_err to stop (returned).
 * The caller holds r->lock.
 */
#define MON_NULL INT64_MIN

struct mon_server_row {
	int64_t id;
	const char *url;
	bool has_feed;
	const char *feed;			/* its id, when followed */
	int64_t feed_seq, last_ok, error_since; /* MON_NULL: none */
	const char *last_error;			/* NULL: it answers */
	int64_t present;			/* items it has */
};
/* Every server (id 0), or the one with id: CAIRN_ENOENT when none. */
int mon_q_servers(struct mon_db *r, int64_t id,
		  int (*fn)(void *ctx, const struct mon_server_row *s), void *ctx,
		  struct cairn_error *err);

struct mon_item_row {
	int64_t id;
	const char *hash, *path;
	int verdict;
	int64_t since, first_seen, last_seen;
	enum mon_diff_state diff_state;
	const char *diff_note;
	int diff_tries;
};
/* The item with hash part hash: CAIRN_ENOENT when unknown. */
int mon_q_item(struct mon_db *r, const char *hash,
	       int (*fn)(void *ctx, const struct mon_item_row *it), void *ctx,
	       struct cairn_error *err);

struct mon_diff_row {
	const char *path, *change;
	const char *a_server, *b_server; /* URLs */
	struct mon_file a, b;		 /* type NULL: none on that side */
};
/* The item's file diff, in the order it was found. */
int mon_q_diffs(struct mon_db *r, int64_t item, int (*fn)(void *ctx, const struct mon_diff_row *d),
		void *ctx, struct cairn_error *err);

struct mon_diffoscope_row {
	const char *a_server, *b_server; /* URLs */
	int64_t size;			 /* bytes of HTML; MON_NULL: no report (note says why) */
	const char *note;
};
/* The item's diffoscope run, if there was one: fn once, or never. */
int mon_q_diffoscope(struct mon_db *r, int64_t item,
		     int (*fn)(void *ctx, const struct mon_diffoscope_row *d), void *ctx,
		     struct cairn_error *err);
/* The report itself, of the item with hash part hash, into out:
 * CAIRN_ENOENT when there is none. */
int mon_q_diffoscope_html(struct mon_db *r, const char *hash, struct cairn_buf *out,
			  struct cairn_error *err);

struct mon_obs_row {
	int64_t server;
	const char *url;
	enum cairn_monitor_state state;
	enum cairn_monitor_sig sig;
	const char *nar_hash, *refs, *narinfo;
	int64_t nar_size, first_seen, last_seen;
};
/* What each server says about the item, by server. */
int mon_q_obs(struct mon_db *r, int64_t item, int (*fn)(void *ctx, const struct mon_obs_row *o),
	      void *ctx, struct cairn_error *err);

struct mon_peer_row {
	const char *peer, *monitor, *server, *state, *nar_hash;
	int64_t nar_size, at;
};
/* What the --peer monitors saw of the item with hash part hash. */
int mon_q_peers(struct mon_db *r, const char *hash,
		int (*fn)(void *ctx, const struct mon_peer_row *p), void *ctx,
		struct cairn_error *err);

struct mon_history_row {
	int64_t at;
	int verdict;
	const char *hash, *path; /* mon_q_differs_since only */
};
/* The item's verdict changes, oldest first. */
int mon_q_history(struct mon_db *r, int64_t item,
		  int (*fn)(void *ctx, const struct mon_history_row *h), void *ctx,
		  struct cairn_error *err);
/* The newest changes of any item to "differs", at most limit. */
int mon_q_differs_since(struct mon_db *r, unsigned limit,
			int (*fn)(void *ctx, const struct mon_history_row *h), void *ctx,
			struct cairn_error *err);

struct mon_pair_row {
	int64_t a, b;
	const char *a_url, *b_url;
	int64_t both_have, agree;
};
/* Each pair of servers (those with server, or all for 0). */
int mon_q_pairs(struct mon_db *r, int64_t server,
		int (*fn)(void *ctx, const struct mon_pair_row *p), void *ctx,
		struct cairn_error *err);

struct mon_day_row {
	int64_t day;		  /* days since 1970 */
	int verdict;		  /* mon_q_verdict_trend: the verdict counted; -1 before */
	int64_t both_have, agree; /* mon_q_pair_trend */
	int64_t n;		  /* mon_q_verdict_trend */
};
/* The pair's agreement on each of the last days days with a change,
 * oldest first. */
int mon_q_pair_trend(struct mon_db *r, int64_t a, int64_t b, unsigned days,
		     int (*fn)(void *ctx, const struct mon_day_row *d), void *ctx,
		     struct cairn_error *err);
/* Items per verdict on each of the last days days with a change, oldest
 * first, a row per verdict that changed that day; first, with day -1,
 * each verdict's count before them. */
int mon_q_verdict_trend(struct mon_db *r, unsigned days,
			int (*fn)(void *ctx, const struct mon_day_row *d), void *ctx,
			struct cairn_error *err);

/* The hash part in a URL path after a prefix: 32 nix32 characters. */
bool mon_hash_ok(const char *s, size_t len);

/* The observation log, signed (monitor-log.c); the caller holds r->lock. */
int mon_log_render(struct cairn_monitor *m, struct cairn_buf *out, struct cairn_error *err);
/* The log's base: records pruned so far and their chained digest (hex;
 * zeros and 0 for none). */
int mon_log_base(struct mon_db *d, uint64_t *base, char chain[65], struct cairn_error *err);
/* Prune the log's oldest records, those before `before`, into its base. */
int mon_log_prune(struct mon_db *d, int64_t before, struct cairn_error *err);
int mon_log_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err);

int mon_web_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err);
int mon_api_routes(struct cairn_monitor *m, struct cairn_httpd *h, struct cairn_error *err);

#endif
