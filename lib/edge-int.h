/*
 * edge-int.h - what lib/edge*.c share: the on-disk store
 * (layout in include/cairn/edge.h) and the helpers of the operator's log.
 * Not installed.
 */
#ifndef CAIRN_EDGE_INT_H
#define CAIRN_EDGE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/error.h"
#include "map.h"

/* --- the store -------------------------------------------------------------- */

#define EDGE_FILE_NAME_LEN 64 /* sha256 in hex */

struct edge_store;

struct edge_store_stats {
	uint64_t n_nars;
	uint64_t bytes;
	uint64_t evictions; /* since open */
};

/* Create the layout if needed, recover, load the index.  Thread-safe after. */
int edge_store_open(struct edge_store **out, const char *dir, uint64_t max_size,
		    struct cairn_error *err);
void edge_store_free(struct edge_store *s);

/* The directory that holds the nars, for cairn_httpd_send_file_at. */
int edge_store_data_fd(const struct edge_store *s);

/* 1 and the file name (and size) when the nar at `path` is cached, marking
 * it recently used; 0 when not. */
int edge_store_nar_get(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size);

/*
 * edge_store_nar_get, and the file pinned until edge_store_nar_unpin: the
 * serve path holds it from finding the name to opening the file, so that
 * an eviction in between cannot make a hit a miss (an open descriptor
 * keeps the bytes after that).
 */
int edge_store_nar_pin(struct edge_store *s, const char *path,
		       char name[EDGE_FILE_NAME_LEN + 1], uint64_t *size);
void edge_store_nar_unpin(struct edge_store *s, const char name[EDGE_FILE_NAME_LEN + 1]);

/* A new temporary file: *fd open for writing, its path in tmppath. */
int edge_store_tmp_open(struct edge_store *s, char *tmppath, size_t cap, int *fd,
			struct cairn_error *err);

/*
 * Move a verified temporary file into the cache as the nar at `path`,
 * evicting least-recently-used nars to stay under max_size.  CAIRN_ELIMIT
 * (temp file removed) when it alone is larger than max_size.
 */
int edge_store_nar_commit(struct edge_store *s, const char *path, const char *tmppath,
			  const uint8_t sha256[32], uint64_t size, struct cairn_error *err);

/*
 * Forget the nar at `path` unless its file's SHA-256 is sha256 (NULL:
 * forget it anyway), as when what it must hash to changed.  1 when a nar
 * went, 0 when not.  Not counted as an eviction.
 */
int edge_store_nar_drop_unless(struct edge_store *s, const char *path, const uint8_t *sha256);

/* Keep a narinfo text (replacing an older one). */
int edge_store_narinfo_put(struct edge_store *s, const char *hash, const char *text, size_t len,
			   int64_t fetched, struct cairn_error *err);
/* Forget one narinfo (absent: nothing to do). */
int edge_store_narinfo_delete(struct edge_store *s, const char *hash, struct cairn_error *err);
/* Forget narinfos fetched before `before`. */
int edge_store_narinfo_purge(struct edge_store *s, int64_t before, struct cairn_error *err);
/* Call fn for every stored narinfo (at start-up, to fill the memory cache). */
int edge_store_narinfo_each(struct edge_store *s,
			    int (*fn)(void *ctx, const char *hash, const char *text, size_t len,
				      int64_t fetched),
			    void *ctx, struct cairn_error *err);

/*
 * The last good nix-cache-info of each upstream (keyed by its base URL),
 * so that a restarted mirror can describe itself while its upstreams are
 * down.  info_get: 1 and a malloc'ed copy in *text when there is one of at
 * most max bytes, 0 when not.
 */
int edge_store_info_put(struct edge_store *s, const char *upstream, const char *text, size_t len,
			struct cairn_error *err);
int edge_store_info_get(struct edge_store *s, const char *upstream, size_t max, char **text,
			size_t *len, struct cairn_error *err);

/* Write the recency of recently used nars back to the index. */
int edge_store_flush(struct edge_store *s, struct cairn_error *err);

void edge_store_stats(struct edge_store *s, struct edge_store_stats *out);

/* --- the operator's log (lib/edge-log.c) ------------------------------------ */

#define EDGE_LOG_LINE_MAX 4096 /* one line of the log, with its NUL */

/*
 * Copy len bytes of `in` (text that came from the network, or from a file)
 * into out as printable ASCII on one line: any other byte, and '\',
 * becomes \xNN, so that nothing in it can end the line, move the cursor or
 * pass for something else.  Cut with "..." when out (cap >= 4) is full.
 * Returns out.
 */
char *edge_safe(char *out, size_t cap, const char *in, size_t len);

/* Drop the user:password@ of every URL in s (in place): an upstream's
 * credentials stay out of the log and the pages. */
void edge_redact_userinfo(char *s);

/* "0 B", "512 B", "1.5 KiB", "2.0 GiB"... */
void edge_fmt_size(char *out, size_t cap, uint64_t bytes);

/*
 * At most one line per interval for one kind of event; the ones in between
 * are counted, and the last of them kept, to be told in one line later.
 */
struct edge_ratelimit {
	uint64_t next_ms;	      /* no line before this */
	uint64_t suppressed;	      /* events not told since the last line */
	char last[EDGE_LOG_LINE_MAX]; /* the last of them */
};

/*
 * An event (described by msg) at now_ms: 1 when it is to be told now, with
 * *suppressed the number that went untold before it; 0 when it is counted
 * (and kept as r->last) instead.
 */
int edge_ratelimit_event(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms,
			 const char *msg, uint64_t *suppressed);
/* 1 when untold events are due to be told (*n of them, the last in
 * r->last): a line counts as told from now on. */
int edge_ratelimit_due(struct edge_ratelimit *r, uint64_t now_ms, uint64_t interval_ms,
		       uint64_t *n);

/* --- the mirror's parts (lib/edge*.c) ---------------------------------------- */

/*
 * edge.c holds the core (fetches in flight, upstream health, the handlers,
 * the lifecycle); edge-claims.c what a nar URL must be; edge-narinfo.c the
 * narinfos and their misses; edge-nar.c the nar downloads (on download.h)
 * and the clients streaming them; edge-pages.c nix-cache-info, /health, /.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/survey.h"
#include "download.h"
#include "edge-trust.h"
#include "metrics.h"

struct ipfs_gw;

#define EDGE_CHUNK (256 * 1024)
#define EDGE_WAKE (256 * 1024)
#define EDGE_STALE_MAX (7 * 24 * 3600) /* keep expired narinfos for stale-if-error */
#define EDGE_FLUSH_MS 5000
#define EDGE_PRODUCER_STACK (256 * 1024)
#define EDGE_MAX_MISSES 4096 /* threads waiting on upstreams or streaming from them */
#define EDGE_WHY_MAX 256     /* why an upstream is down, as told */
#define EDGE_PAGE_MAX (1 << 20) /* the / page and /health */

/* Narinfos that may name one nar URL: items whose nars are byte-identical
 * name the same file (Nix's nar/<FileHash>...), nothing else should. */
#define EDGE_MAX_CLAIMS 16
#define SIZE_UNKNOWN (-1) /* no file size the claims agree on */
/* A download whose temporary file cannot be written keeps its bytes in
 * memory for the clients streaming it: at most this much per download... */
#define EDGE_MEM_WINDOW (16u * 1024 * 1024)
/* ... and this much for all of them together. */
#define EDGE_MEM_TOTAL (256u * 1024 * 1024)

enum fkind { FK_NARINFO, FK_NAR };
enum fstate { FS_PENDING = 0, FS_HEADERS, FS_OK, FS_FAIL };

/*
 * What the file at a nar URL must be, according to the narinfo the mirror
 * holds (and serves) for one item.  See "Verify before commit" in
 * docs/cairn-mirror.md for how the claims on one URL decide a download.
 */
struct nar_claim {
	char item[CAIRN_STORE_HASH_LEN + 1]; /* whose narinfo says so */
	int has_file;			     /* the file's SHA-256 is file_sha */
	uint8_t file_sha[32];
	int64_t file_size; /* -1: not said */
	int has_nar;	   /* NarHash is a SHA-256 (signed, with a keyring) */
	uint8_t nar_sha[32];
	uint64_t nar_size;
	int by_nar; /* decompressed with `method`, the file is nar_sha/nar_size */
	enum cairn_codec_method method;
	/* its checks reach what the trusted signatures cover: bytes that pass
	 * them may be cached */
	int cacheable;
	int plain; /* Compression: none: the file is its own NarHash (checked as a NAR) */
	/* upstreams (a bit each) whose narinfo, among those the served one
	 * was accepted from, names this URL: the nar is asked of them first.
	 * Not part of what the bytes must be (claim_same). */
	uint32_t srcs;
};

/* e->claims: nar URL (relative, no query) -> the claims of the items naming it */
struct nar_claims {
	int overflow; /* a claim did not fit: nothing is cached under this URL */
	size_t n;
	struct nar_claim c[];
};

/*
 * Another file of the same nar: an upstream whose narinfo for an item
 * claims the NarHash and NarSize of the one served, at a URL the served one
 * does not name (another compression, another FileHash).  A client asking
 * for the served narinfo's uncompressed nar can be fed from it, decompressed
 * and checked against the signed NarHash.  See "Fail-over" in
 * docs/cairn-mirror.md.
 */
#define EDGE_MAX_ALTS 16
#define EDGE_MAX_SOURCES CAIRN_DL_MAX_SOURCES
struct nar_alt {
	size_t up;
	char *url; /* relative, its query kept (the upstream may need it) */
	enum cairn_codec_method method;
	int has_file;
	uint8_t file_sha[32];
	int64_t file_size; /* -1: not said */
};

/* e->alts: item hash -> the other files of the nar its served narinfo claims */
struct nar_alts {
	uint8_t nar_sha[32];
	uint64_t nar_size;
	size_t n;
	struct nar_alt a[EDGE_MAX_ALTS];
};

struct ni_ent {
	char *text; /* NULL for a 404 */
	size_t len;
	int64_t expires;
};

struct upstream {
	struct cairn_http_server *srv;
	/* upstream thread only */
	int up;
	int checked; /* a probe or a request has told whether it is up */
	unsigned backoff_ms;
	uint64_t next_probe;
	int probing;
	/* e->mu; info is replaced only by the upstream thread (and loaded from
	 * the index before it starts) */
	char *info;
	size_t info_len;
	int up_pub;
	int checked_pub;
	char why_pub[EDGE_WHY_MAX]; /* why it is down, printable; "" when up */
	char name[512];		    /* its base URL as told to people */
};

/* Narinfos refused, by the kind of reason: each kind is rate-limited on
 * its own in the log. */
enum refusal {
	REFUSED_SIGNATURE,
	REFUSED_STORE_PATH,
	REFUSED_UNREADABLE,
	REFUSED_AGREEMENT,
	REFUSED_KINDS
};


/* A client streaming a download (f->readers, under f->mu). */
struct reader {
	struct reader *next;
	uint64_t pos; /* next byte it needs */
	int started;  /* told the length: follows the bytes of one start from byte 0 */
	int cut;      /* fell behind what memory holds, or the bytes it followed
		       * were given up: its response fails */
};

struct fetch {
	struct cairn_edge *e;
	int refs; /* e->mu */
	enum fkind kind;
	char key[CAIRN_EDGE_KEY_MAX + 1];
	char upath[CAIRN_EDGE_KEY_MAX + 1]; /* key and the client's query, sent upstream */
	char hash[CAIRN_STORE_HASH_LEN + 1];
	struct fetch *qnext;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	/* f->mu */
	enum fstate state;
	int not_found;
	uint64_t written;
	uint64_t woken; /* written when the followers were last woken */
	/* The temporary file failed (disk full...): bytes [0, file_len) are
	 * read from it, bytes [mbase, mbase + mlen) from mbuf, nothing
	 * between (a reader that needs them is cut). */
	int mem;
	uint64_t file_len;
	char *mbuf;
	size_t mlen, mcap;
	uint64_t mbase;
	struct reader *readers;
	/* set before state leaves FS_PENDING, read-only after */
	int64_t length;
	char ctype[128];
	int fd; /* also read by the clients, from then on */

	/* upstream thread only */
	struct cairn_buf body;
	char tmppath[PATH_MAX];
	int cache;
	/* the claims on the URL when the download started (NULL: none, the
	 * bytes are passed through unchecked) */
	struct nar_claims *cand;
	struct cairn_sha256 sha; /* of the body, for the claims' FileHash and the store */
	int sha_init;
	int left_table; /* without a file, it could not be joined from the start */
	/* started again from byte 0: the file's bytes below this are the
	 * earlier start's, compared with the new ones as they come */
	uint64_t same;
	/* a nar: the upstreams in the order they are asked (those whose
	 * narinfo names it first) */
	size_t order[CAIRN_EDGE_MAX_UPSTREAMS];
	/* the URL is an uncompressed nar (a claim says Compression: none):
	 * the clients get the NAR, whichever file of it a source sends */
	int serve_nar;
	/* other files of the nar (copies, urls owned), asked after the URL */
	size_t n_alt;
	struct nar_alt alt[EDGE_MAX_ALTS];
	/* the download (lib/download.c): its sources' upstreams, the NarHash
	 * and NarSize it checks against, and the one the bytes met */
	struct cairn_dl *dl;
	struct fetch *dl_next; /* e->downloads */
	size_t n_src;
	size_t src_up[EDGE_MAX_SOURCES];
	int src_alt[EDGE_MAX_SOURCES]; /* the source is one of f->alt */
	size_t n_ex;
	uint8_t ex_sha[CAIRN_DL_MAX_EXPECT][32];
	uint64_t ex_size[CAIRN_DL_MAX_EXPECT];
	int nar_ok;
	enum cairn_codec_method nar_method;
	uint8_t nar_sha[32];
	uint64_t nar_size;
	int n404, n_err;
	/* its nar asked of the IPFS gateways (edge-nar-ipfs.c): once, first */
	int ipfs_tried;
	struct ipfs_src_job *ipfs_job;
	int64_t max_age;
	int no_store;

	/* a narinfo: the survey asking the upstreams (upstream thread only) */
	struct cairn_survey *sv;
	size_t sv_ups[CAIRN_EDGE_MAX_UPSTREAMS]; /* its server index -> upstream */
	struct edge_answer ans[CAIRN_EDGE_MAX_UPSTREAMS]; /* by upstream */
	size_t n_answered, n_seen;
	int decided;
	struct fetch *sv_next; /* e->surveys */
	/* the survey is shared by the misses of one round (edge-narinfo.c),
	 * so that upstreams that take batches get them in one request */
	struct ni_group *grp;
	size_t grp_idx; /* its path index in grp's survey */
	/* the client wants the closure: ask upstreams for it at once */
	int closure;
	int expanded; /* added by a closure group, not by a client */
	int primed;   /* made by edge_narinfo_prime: its first joiner is the miss (e->mu) */
};

struct counters {
	struct metric *hits, *misses, *coalesced, *ni_hits, *ni_misses, *stale,
		*bytes_cache, *bytes_upstream, *up_errors, *verify_fail, *untrusted, *evictions,
		*ups_up, *probes_failed, *write_failing, *write_errors, *gw_fills, *gw_fill_failures;
};

struct cairn_edge {
	struct cairn_edge_config cfg;
	char *cache_dir;
	struct edge_store *store;
	/* --ipfs: the gateway, and item hash part -> struct held (ipfs_mu) */
	struct ipfs_gw *gw;
	struct map *ipfs_held;
	pthread_mutex_t ipfs_mu;
	struct nar_cursors *ipfs_cursors; /* compressed nars, from where a request stopped */
	/* --ipfs-gateway: nars filled from gateways (edge-nar-ipfs.c), or NULL */
	struct ipfs_src *ipfs_src;
	struct cairn_ipfs_fetch_config *ipfs_cfg;
	struct upstream ups[CAIRN_EDGE_MAX_UPSTREAMS];
	size_t n_ups;
	struct cairn_httpd *httpd;
	struct counters c;
	int have_counters;
	uint64_t evictions_seen;

	pthread_mutex_t mu;
	pthread_cond_t job_cond;
	pthread_cond_t info_cond;
	struct map inflight; /* key -> struct fetch */
	struct map narinfos; /* hash -> struct ni_ent */
	struct map claims;	  /* nar path -> struct nar_claims */
	struct map alts;	  /* item hash -> struct nar_alts */
	uint64_t claims_gen;	  /* changes whenever a claim does */
	struct fetch *jobs, **jobs_tail;
	struct fetch *surveys; /* narinfo fetches with a survey alive, upstream thread */
	/* narinfo miss groups, upstream thread: being filled this round (by
	 * closure or not), and started */
	struct ni_group *ni_open[2], *ni_groups;
	struct fetch *downloads; /* nar fetches with a download alive, upstream thread */
	int stop;
	unsigned producers; /* producer threads alive */
	pthread_cond_t producers_cond;

	pthread_t thread;
	int thread_started;
	struct cairn_http *http; /* upstream thread */
	int active;		 /* requests in http, upstream thread */

	atomic_int write_failing; /* the cache's temporary files cannot be written */
	atomic_size_t mem_used;	  /* bytes held by downloads without a file */

	pthread_mutex_t log_mu;
	struct edge_ratelimit refused[REFUSED_KINDS]; /* log_mu */

	/* the trusted keys for people: one a line (NULL: none), and the Nix
	 * ones as nix.conf's trusted-public-keys wants them (NULL: none) */
	char *keys;
	char *nix_keys;
	size_t n_keys;
};

static inline uint64_t edge_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline int64_t edge_now_s(void)
{
	return (int64_t)time(NULL);
}

static inline void edge_count(struct metric *c, uint64_t v)
{
	if (c)
		metric_add(c, v);
}

static inline void edge_gauge_down(struct metric *g)
{
	if (g)
		metric_sub(g, 1);
}

/*
 * Make sure the narinfo for hash is known (fetching it if needed, waiting
 * on this thread).  Returns LOOKUP_PRESENT (*text a malloc'ed copy when
 * text is not NULL), LOOKUP_ABSENT, LOOKUP_FAILED (upstreams failing and
 * nothing stale, or out of memory); with nowait, LOOKUP_WOULD_WAIT where it
 * would have to wait (the loop's question).
 */
enum lookup {
	LOOKUP_WOULD_WAIT = -2,
	LOOKUP_FAILED = -1,
	LOOKUP_ABSENT = 0,
	LOOKUP_PRESENT = 1,
};

/*
 * Misses.  Whatever has to wait for an upstream runs on a thread of its
 * own, never on the event loop: the handler copies what it needs from the
 * request, defers the response (cairn_httpd_stream_defer) and returns, so
 * the loop keeps serving hits.  The thread answers through the stream,
 * and for a streamed object it goes on as the producer of its bytes.
 */
struct miss {
	struct cairn_edge *e;
	struct cairn_httpd_stream *s;
	/* MISS_BATCH: m is the first member of a struct edge_batch
	 * (edge-batch.c), so that free(m) frees it whole */
	enum { MISS_STREAM, MISS_NARINFO, MISS_INFO, MISS_BATCH } kind;
	int is_nar, is_head;
	char hash[CAIRN_STORE_HASH_LEN + 1];
	char key[CAIRN_EDGE_KEY_MAX + 1];
	char query[256];
	size_t qlen;
	char range[64];
	size_t rlen; /* 0: no (usable) Range */
};

/* edge.c: core, fetch lifetime, upstream health, handlers, lifecycle */
void edge_say(struct cairn_edge *e, enum cairn_edge_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *edge_tell(char *out, size_t cap, const char *text);
void edge_upstream_name(const struct upstream *u, char *out, size_t cap);
size_t edge_claims_size(size_t n);
void edge_fetch_unref(struct fetch *f);
struct fetch *edge_fetch_get_locked(struct cairn_edge *e, enum fkind kind, const char *key,
				    int *joined);
enum fstate edge_fetch_wait(struct fetch *f, enum fstate want, unsigned ms);
void edge_fetch_finish(struct fetch *f, enum fstate st, int not_found);
void edge_set_up(struct cairn_edge *e, struct upstream *u, int up, const char *why);
int edge_defer_miss(struct cairn_edge *e, struct cairn_httpd_req *req, struct miss *m);

/* edge-claims.c */
/* The table key of a narinfo URL: relative, without its query;
 * CAIRN_EUNSUPPORTED for an absolute URL (the client fetches those itself),
 * CAIRN_ELIMIT for one too long. */
int edge_url_key(const char *url, char key[CAIRN_EDGE_KEY_MAX + 1]);
void edge_claims_item_set_locked(struct cairn_edge *e, const char *hash,
				 const struct cairn_narinfo *ni, int loading,
				 const struct cairn_narinfo *const *srcs);
/* Under e->mu: upstream u's narinfo ni for item hash, which came after the
 * served one was decided: another file of the nar when it claims the same. */
void edge_alts_late_locked(struct cairn_edge *e, const char *hash, size_t u,
			   const struct cairn_narinfo *ni);
/* Under e->mu: copy into f the other files of the nar its claims name
 * (f->cand taken already), those of item's claim only unless item is
 * NULL, the ones f has not already; CAIRN_ENOMEM. */
int edge_alts_take_locked(struct cairn_edge *e, struct fetch *f, const char *item);
void edge_alts_release(struct fetch *f);
void edge_alts_free_all(struct cairn_edge *e);

/* edge-narinfo.c */
void edge_ni_ent_free(struct ni_ent *n);
void edge_refusals_flush(struct cairn_edge *e);
int edge_load_narinfo_cb(void *ctx, const char *hash, const char *text, size_t len,
			 int64_t fetched);
void edge_ni_query_start(struct fetch *f);
void edge_ni_queries_poll(struct cairn_edge *e);
void edge_ni_queries_free(struct cairn_edge *e);
void edge_purge_negatives(struct cairn_edge *e);
int edge_narinfo_lookup(struct cairn_edge *e, const char *hash, char **text, size_t *len,
			int64_t *max_age, int *stale_out, int nowait);
/* The same; with closure, a miss asks the upstreams for hash's closure in
 * the same round trip (what it brings fills the cache for the next levels). */
int edge_narinfo_lookup_closure(struct cairn_edge *e, const char *hash, char **text,
				size_t *len, int64_t *max_age, int *stale_out, int nowait,
				int closure);
/*
 * The misses among hashes[0..n) handed to the upstream thread at once (one
 * round, so one survey group: one upstream batch request where upstreams
 * take batches), before the lookups that will join them; a batch's
 * lookups run a few at a time and would otherwise reach the upstream
 * thread a few per round.  The fetches made or joined go to out (at most
 * n); the caller drops them with edge_fetch_unref once its lookups are done.
 */
size_t edge_narinfo_prime(struct cairn_edge *e, const char (*hashes)[CAIRN_STORE_HASH_LEN + 1],
			  size_t n, int closure, struct fetch **out);
void edge_cc_404(char *cc, size_t n, int64_t max_age);
void edge_miss_narinfo(struct miss *m);

/* edge-nar.c */
void edge_nar_start(struct fetch *f);
void edge_nar_alts_learnt(struct cairn_edge *e, const char *item);
void edge_miss_stream(struct miss *m);

/* Upstream thread: f's nar to be filled from IPFS gateways; the clients
 * are told its length, and sink gets the bytes (on the job's thread). */
void edge_nar_ipfs_begin(struct fetch *f, struct cairn_dl_sink *sink);
/* Upstream thread: the gateways are done with f: verified (ok), or not,
 * and then the upstreams' file as usual. */
void edge_nar_ipfs_over(struct fetch *f, int ok);

/* edge-nar-ipfs.c: with cfg.n_ipfs_gateways, nars from gateways */
struct ipfs_src;
struct ipfs_src_job;
struct cairn_ipfs_fetch_config;
int edge_nar_ipfs_open(struct cairn_edge *e, struct cairn_error *err);
/* Call the jobs off and wait for them (their fetches are failed later). */
void edge_nar_ipfs_close(struct cairn_edge *e);
/* Upstream thread: 0 when f's nar is being asked of the gateways (its
 * served narinfo names a CID; f->serve_nar, one NarHash expected). */
int edge_nar_ipfs_start(struct fetch *f);
/* Upstream thread: the verdicts in. */
void edge_nar_ipfs_poll(struct cairn_edge *e);

/* edge-ipfs.c: with cfg.ipfs, the gateway over the cached nars */
#define EDGE_IPFS_URL_MAX 512
int edge_ipfs_open(struct cairn_edge *e, struct cairn_error *err);
void edge_ipfs_free(struct cairn_edge *e);
/* The nar at url is in the cache now, with these claims: index their items
 * (in the background; e->mu held, it orders before ipfs_mu). */
void edge_ipfs_committed(struct cairn_edge *e, const char *url, const struct nar_claims *cand);
/* At start-up (e->mu held): the items of the narinfos reloaded, indexed in
 * the background if their nar is still cached (IPFS_GW_QUEUE_MAX at most;
 * the others once their nar is fetched again). */
void edge_ipfs_reload_locked(struct cairn_edge *e);
/* A narinfo about to be served for item hash (*text, *len: malloc'd):
 * an IPFS field naming a root other than the one this gateway indexed
 * the item under is made to name that one, unless a Guix signature
 * covers it (then it is left as signed).  Best effort. */
void edge_ipfs_field(struct cairn_edge *e, const char *hash, char **text, size_t *len);

/* edge-pages.c */
void edge_miss_info(struct miss *m);

/* edge-batch.c: GET /narinfos (narinfos.h) through edge_narinfo_lookup */
int edge_h_narinfos(struct cairn_httpd_req *req, void *data);
void edge_miss_batch(struct miss *m);
/* edge.c: is the nar the narinfo's first URL names held here? */
int edge_nar_held(struct cairn_edge *e, const char *text, size_t len);
int edge_req_only_if_cached(const struct cairn_httpd_req *req);
int edge_h_cache_info(struct cairn_httpd_req *req, void *data);
int edge_h_health(struct cairn_httpd_req *req, void *data);
int edge_h_index(struct cairn_httpd_req *req, void *data);
int edge_keys_describe(struct cairn_edge *e, struct cairn_error *err);
void edge_say_listening(struct cairn_edge *e);

#endif
