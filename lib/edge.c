/*
 * edge.c - the mirror: request handlers, coalesced upstream fetches,
 * verification before commit, fail-over and health checks.
 *
 * Hits are answered on the event loop.  A miss defers its response and
 * goes to a thread of its own, which creates one `struct fetch` in
 * e->inflight, keyed by the request path, or joins the one that is there.
 * The upstream thread runs the transfer (lib/http.c is single-threaded)
 * and, for a nar, appends the body to a temporary file while hashing it
 * (to memory when the file cannot be written); each waiting client's
 * thread reads what has been written so far and waits on the fetch's
 * condition variable for more.  Each response's last byte is held back
 * until the whole object is checked, so a client never sees a clean end of
 * bytes that failed verification.  What the bytes must be comes from the
 * claims of the narinfos held for the items naming the URL (below).  A
 * finished fetch leaves the table before it reports its end, so the next
 * request after a failure goes upstream again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/edge.h"
#include "cairn/hash.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/keys.h"
#include "cairn/narinfo.h"
#include "cairn/sign.h"
#include "cairn/storepath.h"
#include "cairn/survey.h"
#include "cairn/trust.h"
#include "edge-int.h"
#include "edge-follow-int.h"
#include "edge-trust.h"
#include "httpd-follow.h"
#include "metrics.h"
#include "cairn/banned.h"

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
/* Compressions one download is decompressed with at the same time (more
 * than one only when narinfos disagree about a URL). */
#define EDGE_MAX_DECODERS 4
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
static const char *const refusal_kind[REFUSED_KINDS] = {
	"for their signatures", "for naming another store path", "as unreadable",
	"for too few agreeing signatures"};

/* One decompression of a download, for the claims checked by NarHash. */
struct decoder {
	enum cairn_codec_method method;
	struct cairn_codec *codec;
	struct cairn_sha256 sha;
	int sha_init;
	int failed;
	uint8_t out[32]; /* at the end */
};

/* A client streaming a download (f->readers, under f->mu). */
struct reader {
	struct reader *next;
	uint64_t pos; /* next byte it needs */
	int cut;      /* fell behind what memory holds: its response fails */
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
	int64_t max_size; /* the largest file a claim allows; -1: unbounded */
	struct cairn_sha256 sha;
	int sha_init;
	struct decoder dec[EDGE_MAX_DECODERS];
	size_t n_dec;
	int left_table; /* without a file, it could not be joined from the start */
	size_t next_up, cur_up;
	/* a nar: the upstreams in the order they are asked (those whose
	 * narinfo names it first) */
	size_t order[CAIRN_EDGE_MAX_UPSTREAMS];
	int n404, n_err;
	int64_t max_age;
	int no_store;

	/* a narinfo: the survey asking the upstreams (upstream thread only) */
	struct cairn_survey *sv;
	size_t sv_ups[CAIRN_EDGE_MAX_UPSTREAMS]; /* its server index -> upstream */
	struct edge_answer ans[CAIRN_EDGE_MAX_UPSTREAMS]; /* by upstream */
	size_t n_answered, n_seen;
	int decided;
	struct fetch *sv_next; /* e->surveys */
};

struct counters {
	struct metric *hits, *misses, *coalesced, *ni_hits, *ni_misses, *stale,
		*bytes_cache, *bytes_upstream, *up_errors, *verify_fail, *untrusted, *evictions,
		*ups_up, *probes_failed, *write_failing, *write_errors;
};

struct cairn_edge {
	struct cairn_edge_config cfg;
	char *cache_dir;
	struct edge_store *store;
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
	uint64_t claims_gen;	  /* changes whenever a claim does */
	struct fetch *jobs, **jobs_tail;
	struct fetch *surveys; /* narinfo fetches with a survey alive, upstream thread */
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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

static void count(struct metric *c, uint64_t v)
{
	if (c)
		metric_add(c, v);
}

static void gauge_down(struct metric *g)
{
	if (g)
		metric_sub(g, 1);
}

void cairn_edge_config_init(struct cairn_edge_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->positive_ttl = 3600;
	cfg->negative_ttl = 60;
	cfg->health_interval_ms = 5000;
	cfg->max_backoff_ms = 60000;
	cfg->wait_ms = 30000;
	cfg->connect_timeout_ms = 2000;
	cfg->stall_timeout_s = 30;
	cfg->priority = -1;
	cfg->log_interval_ms = 10000;
}

/* One line for the operator.  What came from the network must have gone
 * through edge_safe first. */
__attribute__((format(printf, 3, 4))) static void
say(struct cairn_edge *e, enum cairn_edge_log_level level, const char *fmt, ...)
{
	char msg[EDGE_LOG_LINE_MAX];
	va_list ap;
	if (!e->cfg.log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->cfg.log(e->cfg.log_ctx, level, msg);
}

/* Text for people (out, printable): without the credentials of a URL. */
static char *tell(char *out, size_t cap, const char *text)
{
	char tmp[EDGE_LOG_LINE_MAX];
	snprintf(tmp, sizeof(tmp), "%s", text);
	edge_redact_userinfo(tmp);
	return edge_safe(out, cap, tmp, strlen(tmp));
}

/* An upstream's base URL as told to people. */
static void upstream_name(const struct upstream *u, char *out, size_t cap)
{
	tell(out, cap, cairn_http_server_url(u->srv));
}

/* --- fetch lifetime ---------------------------------------------------------- */

static size_t claims_size(size_t n)
{
	return sizeof(struct nar_claims) + n * sizeof(struct nar_claim);
}

static void fetch_unref(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	int last = --f->refs == 0;
	pthread_mutex_unlock(&e->mu);
	if (!last)
		return;
	if (f->fd >= 0)
		close(f->fd);
	if (f->sha_init)
		cairn_sha256_release(&f->sha);
	for (size_t i = 0; i < f->n_dec; i++) {
		cairn_codec_free(f->dec[i].codec);
		if (f->dec[i].sha_init)
			cairn_sha256_release(&f->dec[i].sha);
	}
	free(f->cand);
	for (size_t i = 0; i < CAIRN_EDGE_MAX_UPSTREAMS; i++) {
		cairn_narinfo_free(f->ans[i].ni);
		free(f->ans[i].text);
		free(f->ans[i].error);
	}
	if (f->mbuf) {
		atomic_fetch_sub(&e->mem_used, f->mcap);
		free(f->mbuf);
	}
	cairn_buf_release(&f->body);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	free(f);
}

/* Under e->mu: f checks its bytes against the claims on its URL as they
 * are now (later changes are looked at again before it commits). */
static int fetch_take_claims_locked(struct cairn_edge *e, struct fetch *f)
{
	const struct nar_claims *cl = map_get(&e->claims, f->key);
	uint32_t srcs = 0;
	size_t n = 0;
	/* A nar URL is the upstream's whose narinfo names it: asked there
	 * first, then (the claims still check the bytes) the others. */
	for (size_t i = 0; cl && i < cl->n; i++)
		srcs |= cl->c[i].srcs;
	for (size_t u = 0; u < e->n_ups; u++)
		if (srcs & ((uint32_t)1 << u))
			f->order[n++] = u;
	for (size_t u = 0; u < e->n_ups; u++)
		if (!(srcs & ((uint32_t)1 << u)))
			f->order[n++] = u;
	f->max_size = -1;
	if (!cl || !cl->n)
		return 0;
	if (!(f->cand = malloc(claims_size(cl->n))))
		return CAIRN_ENOMEM; /* not unchecked: not at all */
	memcpy(f->cand, cl, claims_size(cl->n));
	for (size_t i = 0; i < cl->n; i++) {
		const struct nar_claim *c = &cl->c[i];
		if (!c->has_file || c->file_size < 0) {
			f->max_size = -1;
			break;
		}
		if (c->file_size > f->max_size)
			f->max_size = c->file_size;
	}
	return 0;
}

/*
 * Under e->mu: the fetch in flight for key, with a reference for the
 * caller, or a new one queued for the upstream thread.  *joined tells
 * which.
 */
static struct fetch *fetch_get_locked(struct cairn_edge *e, enum fkind kind, const char *key,
				      int *joined)
{
	struct fetch *f = map_get(&e->inflight, key);
	void *old;
	if (f) {
		f->refs++;
		*joined = 1;
		return f;
	}
	*joined = 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->e = e;
	f->refs = 2; /* the table (and upstream thread), the caller */
	f->kind = kind;
	snprintf(f->key, sizeof(f->key), "%s", key);
	snprintf(f->upath, sizeof(f->upath), "%s", key);
	f->fd = -1;
	f->length = -1;
	f->max_age = -1;
	f->max_size = -1;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	cairn_buf_init(&f->body, CAIRN_NARINFO_MAX);
	if ((kind == FK_NAR && fetch_take_claims_locked(e, f) < 0) ||
	    map_put(&e->inflight, key, f, &old) < 0) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cond);
		free(f->cand);
		free(f);
		return NULL;
	}
	f->qnext = NULL;
	*e->jobs_tail = f;
	e->jobs_tail = &f->qnext;
	pthread_cond_signal(&e->job_cond);
	return f;
}

/* Wait until f reaches at least `want` (or ends); returns the state. */
static enum fstate fetch_wait(struct fetch *f, enum fstate want, unsigned ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (long)(ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&f->mu);
	while (f->state < want && f->state != FS_FAIL)
		if (pthread_cond_timedwait(&f->cond, &f->mu, &dl) == ETIMEDOUT)
			break;
	enum fstate st = f->state;
	pthread_mutex_unlock(&f->mu);
	return st;
}

/* Upstream thread: the fetch leaves the table, then tells its waiters. */
static void fetch_finish(struct fetch *f, enum fstate st, int not_found)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	if (map_get(&e->inflight, f->key) == f)
		map_take(&e->inflight, f->key);
	pthread_mutex_unlock(&e->mu);
	pthread_mutex_lock(&f->mu);
	f->state = st;
	f->not_found = not_found;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	fetch_unref(f);
}

/* --- narinfo bookkeeping ------------------------------------------------------ */

static void ni_ent_free(struct ni_ent *n)
{
	if (n) {
		free(n->text);
		free(n);
	}
}

/* --- claims: what a nar URL must hash to ----------------------------------- */

/*
 * A narinfo's URL, Compression, FileHash and FileSize are not covered by
 * Nix signatures (nor, after the Signature line, by Guix's), so any
 * upstream can name any nar path in a validly signed narinfo of any item.
 * Hence what the bytes at a URL must be is recorded per item, from the
 * narinfo the mirror holds and serves for that item, and no other item's
 * narinfo can change or remove it (see docs/cairn-mirror.md).
 */

/* The table key of a narinfo URL: relative, without its query;
 * CAIRN_EUNSUPPORTED for an absolute URL (the client fetches those itself),
 * CAIRN_ELIMIT for one too long. */
static int url_key(const char *url, char key[CAIRN_EDGE_KEY_MAX + 1])
{
	if (!url || strstr(url, "://"))
		return CAIRN_EUNSUPPORTED;
	while (*url == '/')
		url++;
	size_t n = strcspn(url, "?#");
	if (n > CAIRN_EDGE_KEY_MAX)
		return CAIRN_ELIMIT;
	memcpy(key, url, n);
	key[n] = 0;
	return 0;
}

static int claim_same(const struct nar_claim *a, const struct nar_claim *b)
{
	if (a->has_file != b->has_file || a->has_nar != b->has_nar || a->by_nar != b->by_nar ||
	    a->cacheable != b->cacheable)
		return 0;
	if (a->has_file && (memcmp(a->file_sha, b->file_sha, 32) || a->file_size != b->file_size))
		return 0;
	if (a->has_nar && (memcmp(a->nar_sha, b->nar_sha, 32) || a->nar_size != b->nar_size))
		return 0;
	return !a->by_nar || a->method == b->method;
}

/*
 * What narinfo ni (of item) says about the file at URL group u;
 * CAIRN_EFORMAT when nothing it says can be checked, or it contradicts itself.  With a
 * keyring, only NarHash and NarSize are signed: bytes are cacheable only
 * when they are checked against those, so a compressed file is
 * decompressed on the way even when FileHash is given.
 */
static int claim_make(const struct cairn_edge *e, const struct cairn_narinfo *ni,
		      const struct cairn_narinfo_url *u, const char *item, struct nar_claim *c)
{
	int trusted = e->cfg.trusted != NULL;
	int fh = u->has_file_hash && u->file_hash.algo == CAIRN_HASH_SHA256;
	enum cairn_codec_method m;
	int known = cairn_codec_method_parse(u->compression, strlen(u->compression), &m, NULL) == 0;
	memset(c, 0, sizeof(*c));
	memcpy(c->item, item, CAIRN_STORE_HASH_LEN);
	c->file_size = -1;
	if (ni->nar_hash.algo == CAIRN_HASH_SHA256) {
		c->has_nar = 1;
		memcpy(c->nar_sha, ni->nar_hash.digest, 32);
		c->nar_size = ni->nar_size;
	}
	if (known && m == CAIRN_CODEC_NONE && c->has_nar) {
		/* an uncompressed nar is its own NarHash */
		if ((fh && memcmp(u->file_hash.digest, c->nar_sha, 32)) ||
		    (u->has_file_size && u->file_size != ni->nar_size))
			return CAIRN_EFORMAT;
		c->has_file = 1;
		memcpy(c->file_sha, c->nar_sha, 32);
		c->file_size = (int64_t)ni->nar_size;
		c->cacheable = 1;
		return 0;
	}
	if (fh) {
		c->has_file = 1;
		memcpy(c->file_sha, u->file_hash.digest, 32);
		if (u->has_file_size)
			c->file_size = (int64_t)u->file_size;
		c->cacheable = !trusted;
	}
	if (known && m != CAIRN_CODEC_NONE && c->has_nar && (trusted || !fh)) {
		/* no FileHash (compressed on the fly upstream), or an unsigned
		 * one: check what it decompresses to */
		c->by_nar = 1;
		c->method = m;
		c->cacheable = 1;
	}
	return c->has_file || c->by_nar ? 0 : CAIRN_EFORMAT;
}

/*
 * Does the URL's own name allow claim c?  When the last component of the
 * path starts with 52 nix32 characters (then '.' or its end), they are a
 * SHA-256 of the file (Nix: nar/<FileHash>.nar.xz) or of the nar (cairn
 * publish and harmonia compressing on the fly: nar/<NarHash>.nar.zst):
 * the claim must have that FileHash or NarHash.  When it starts with a
 * store path hash (then '-', '.' or its end), the URL is that item's (Guix:
 * nar/gzip/<basename>; nix-serve, attic): only that item may claim it.
 */
static int url_allows(const char *key, const struct nar_claim *c)
{
	const char *last = strrchr(key, '/');
	uint8_t h[32];
	last = last ? last + 1 : key;
	size_t n = strlen(last);
	if (n >= 52 && (n == 52 || last[52] == '.') && cairn_nix32_decode(last, 52, h, 32) == 0)
		return (c->has_file && !memcmp(h, c->file_sha, 32)) ||
		       (c->has_nar && !memcmp(h, c->nar_sha, 32));
	if (n >= CAIRN_STORE_HASH_LEN &&
	    (n == CAIRN_STORE_HASH_LEN || last[CAIRN_STORE_HASH_LEN] == '-' ||
	     last[CAIRN_STORE_HASH_LEN] == '.') &&
	    cairn_store_hash_valid(last, CAIRN_STORE_HASH_LEN))
		return !strncmp(last, c->item, CAIRN_STORE_HASH_LEN);
	return 1;
}

/*
 * Under e->mu: claim c is about to replace claim `at` of cl (SIZE_MAX: to
 * join cl) on a URL that may be cached.  The cached file was checked
 * against the claims there were; it stays when c says what another claim
 * already said or names that very file by FileHash, and goes otherwise
 * (a narinfo refreshed with other hashes, from another upstream...).
 */
static void claims_recheck_cached_locked(struct cairn_edge *e, const struct nar_claims *cl,
					 size_t at, const struct nar_claim *c, const char *key)
{
	for (size_t j = 0; j < cl->n; j++)
		if (j != at && claim_same(&cl->c[j], c))
			return;
	edge_store_nar_drop_unless(e->store, key, c->has_file ? c->file_sha : NULL);
}

/* Under e->mu: item's claim on key becomes c (NULL: it has none there). */
static void claim_set_locked(struct cairn_edge *e, const char *key, const char *item,
			     const struct nar_claim *c, int loading)
{
	struct nar_claims *cl = map_get(&e->claims, key), *ncl;
	size_t i = 0;
	void *old;
	if (cl)
		while (i < cl->n && strcmp(cl->c[i].item, item))
			i++;
	int have = cl && i < cl->n;
	if (!c) {
		if (!have)
			return;
		cl->c[i] = cl->c[--cl->n];
		e->claims_gen++;
		if (!cl->n && !cl->overflow) {
			map_take(&e->claims, key);
			free(cl);
		}
		return;
	}
	if (have && claim_same(&cl->c[i], c)) {
		cl->c[i].srcs = c->srcs;
		return;
	}
	e->claims_gen++;
	/* at start-up the cache and the narinfos were consistent already */
	if (!loading && cl && cl->n)
		claims_recheck_cached_locked(e, cl, have ? i : SIZE_MAX, c, key);
	if (have) {
		cl->c[i] = *c;
		return;
	}
	size_t n = cl ? cl->n : 0;
	if (n == EDGE_MAX_CLAIMS || !(ncl = realloc(cl, claims_size(n + 1)))) {
		if (cl)
			cl->overflow = 1;
		return;
	}
	if (!cl) {
		ncl->overflow = 0;
		ncl->n = 0;
	}
	ncl->c[ncl->n++] = *c;
	if (ncl != cl && map_put(&e->claims, key, ncl, &old) < 0)
		free(ncl); /* only a new key can fail to go in: nothing refers to ncl */
}

/* Does narinfo ni name the URL key? */
static int names_key(const struct cairn_narinfo *ni, const char *key)
{
	char k[CAIRN_EDGE_KEY_MAX + 1];
	for (size_t i = 0; ni && i < ni->n_urls; i++)
		if (url_key(ni->urls[i].url, k) == 0 && !strcmp(k, key))
			return 1;
	return 0;
}

/*
 * Under e->mu, before ni (NULL: a 404) becomes the narinfo held for item
 * `hash`: its claims replace those of the narinfo held until now.  srcs
 * (NULL: not known) holds, by upstream, the narinfos ni was accepted from:
 * an upstream whose narinfo names a URL of ni is where that nar is asked
 * for first.
 */
static void claims_item_set_locked(struct cairn_edge *e, const char *hash,
				   const struct cairn_narinfo *ni, int loading,
				   const struct cairn_narinfo *const *srcs)
{
	const struct ni_ent *cur = map_get(&e->narinfos, hash);
	struct cairn_narinfo *old = NULL;
	char key[CAIRN_EDGE_KEY_MAX + 1];
	if (cur && cur->text && cairn_narinfo_parse(cur->text, cur->len, &old, NULL) == 0)
		for (size_t i = 0; i < old->n_urls; i++)
			if (url_key(old->urls[i].url, key) == 0 && !names_key(ni, key))
				claim_set_locked(e, key, hash, NULL, loading);
	cairn_narinfo_free(old);
	for (size_t i = 0; ni && i < ni->n_urls; i++) {
		struct nar_claim c;
		if (url_key(ni->urls[i].url, key) < 0)
			continue;
		int ok = claim_make(e, ni, &ni->urls[i], hash, &c) == 0 && url_allows(key, &c);
		for (size_t u = 0; ok && srcs && u < e->n_ups; u++)
			if (names_key(srcs[u], key))
				c.srcs |= (uint32_t)1 << u;
		claim_set_locked(e, key, hash, ok ? &c : NULL, loading);
	}
}

/* Under e->mu: keep a narinfo (text NULL: a 404) until expires. */
static void ni_put_locked(struct cairn_edge *e, const char *hash, const char *text, size_t len,
			  int64_t expires)
{
	struct ni_ent *n = calloc(1, sizeof(*n));
	void *old;
	if (!n)
		return;
	if (text) {
		if (!(n->text = malloc(len ? len : 1))) {
			free(n);
			return;
		}
		memcpy(n->text, text, len);
		n->len = len;
	}
	n->expires = expires;
	if (map_put(&e->narinfos, hash, n, &old) < 0) {
		ni_ent_free(n);
		return;
	}
	ni_ent_free(old);
}

static int64_t ttl_for(int64_t ours, int64_t max_age)
{
	return max_age >= 0 && max_age < ours ? max_age : ours;
}

/*
 * Is this narinfo acceptable for hash: parses, names the store path it was
 * asked for, and (with a keyring) carries a trusted signature.  Returns the
 * parsed narinfo or NULL; then *why is the kind of reason and why_text
 * (printable) the reason.
 */
static struct cairn_narinfo *narinfo_accept(struct cairn_edge *e, const char *hash,
					    const char *text, size_t len, enum refusal *why,
					    char why_text[EDGE_WHY_MAX])
{
	struct cairn_narinfo *ni = NULL;
	struct cairn_error err;
	cairn_error_init(&err);
	if (cairn_narinfo_parse(text, len, &ni, &err) < 0) {
		*why = REFUSED_UNREADABLE;
		tell(why_text, EDGE_WHY_MAX, cairn_error_msg(&err));
		return NULL;
	}
	const char *base = strrchr(ni->store_path, '/');
	base = base ? base + 1 : ni->store_path;
	if (strncmp(base, hash, CAIRN_STORE_HASH_LEN) != 0) {
		char sp[EDGE_WHY_MAX - 64];
		*why = REFUSED_STORE_PATH;
		snprintf(why_text, EDGE_WHY_MAX, "its StorePath is '%s'",
			 tell(sp, sizeof(sp), ni->store_path));
		cairn_narinfo_free(ni);
		return NULL;
	}
	if (e->cfg.trusted) {
		/* A narinfo it served carries the K signatures it was accepted
		 * with, so one held is checked alone against the same rules. */
		struct edge_answer a = {.server = "the cache index",
					.answered = true,
					.state = CAIRN_TRUST_PRESENT,
					.ni = ni};
		struct cairn_trust_answer ta;
		struct cairn_trust_verdict *v = malloc(sizeof(*v));
		if (!v || edge_trust_decide(&a, 1, hash, e->cfg.trusted, e->cfg.require_sigs, &ta,
					    v) != 0) {
			*why = REFUSED_SIGNATURE;
			tell(why_text, EDGE_WHY_MAX, !v ? "out of memory" : ta.why[0] ? ta.why : v->reason);
			free(v);
			cairn_narinfo_free(ni);
			return NULL;
		}
		free(v);
	}
	return ni;
}

/*
 * A narinfo of hash refused (why: printable) when it came from `from`:
 * said at once, or counted into the line that tells the refusals of its
 * kind in the next interval (refusals_flush).  An upstream can send as
 * many as it is asked for, so no more than a line per interval and kind.
 */
static void refused(struct cairn_edge *e, enum refusal kind, const char *hash, const char *from,
		    const char *why)
{
	char msg[EDGE_LOG_LINE_MAX];
	uint64_t before = 0;
	if (from)
		snprintf(msg, sizeof(msg), "%s from %s: %s", hash, from, why);
	else
		snprintf(msg, sizeof(msg), "%s: %s", hash, why);
	pthread_mutex_lock(&e->log_mu);
	int tell =
	    edge_ratelimit_event(&e->refused[kind], now_ms(), e->cfg.log_interval_ms, msg, &before);
	pthread_mutex_unlock(&e->log_mu);
	if (!tell)
		return;
	if (before)
		say(e, CAIRN_EDGE_LOG_WARN,
		    "refused the narinfo of %s (and %llu more refused %s before it)", msg,
		    (unsigned long long)before, refusal_kind[kind]);
	else
		say(e, CAIRN_EDGE_LOG_WARN, "refused the narinfo of %s", msg);
}

/* Upstream thread: tell the refusals counted but not told yet, once their
 * interval is over. */
static void refusals_flush(struct cairn_edge *e)
{
	for (int k = 0; k < REFUSED_KINDS; k++) {
		char last[EDGE_LOG_LINE_MAX];
		uint64_t n = 0;
		pthread_mutex_lock(&e->log_mu);
		int due = edge_ratelimit_due(&e->refused[k], now_ms(), e->cfg.log_interval_ms, &n);
		if (due)
			snprintf(last, sizeof(last), "%s", e->refused[k].last);
		pthread_mutex_unlock(&e->log_mu);
		if (due)
			say(e, CAIRN_EDGE_LOG_WARN, "refused %llu more narinfos %s; the last: %s",
			    (unsigned long long)n, refusal_kind[k], last);
	}
}

static int load_narinfo_cb(void *ctx, const char *hash, const char *text, size_t len,
			   int64_t fetched)
{
	struct cairn_edge *e = ctx;
	enum refusal why;
	char why_text[EDGE_WHY_MAX];
	if (strlen(hash) != CAIRN_STORE_HASH_LEN ||
	    !cairn_store_hash_valid(hash, CAIRN_STORE_HASH_LEN))
		return 0;
	struct cairn_narinfo *ni = narinfo_accept(e, hash, text, len, &why, why_text);
	if (!ni) {
		/* e.g. the trusted keys changed since */
		refused(e, why, hash, "the cache index", why_text);
		return 0;
	}
	claims_item_set_locked(e, hash, ni, 1, NULL);
	ni_put_locked(e, hash, text, len, fetched + e->cfg.positive_ttl);
	cairn_narinfo_free(ni);
	return 0;
}

/* --- the upstream thread -------------------------------------------------------- */

/*
 * Upstream thread: u answered (up) or failed (why: the reason, any text).
 * A change is told; whether it is up or not yet known is published for
 * the handlers.
 */
static void set_up(struct cairn_edge *e, struct upstream *u, int up, const char *why)
{
	uint64_t t = now_ms();
	if (up) {
		u->backoff_ms = 0;
		u->next_probe = t + e->cfg.health_interval_ms;
	} else {
		unsigned b = u->backoff_ms ? u->backoff_ms * 2 : e->cfg.health_interval_ms;
		if (b > e->cfg.max_backoff_ms)
			b = e->cfg.max_backoff_ms;
		u->backoff_ms = b;
		u->next_probe = t + b;
	}
	int changed = u->up != up;
	if (changed) {
		u->up = up;
		if (up)
			count(e->c.ups_up, 1);
		else
			gauge_down(e->c.ups_up);
	}
	if (!changed && u->checked && up)
		return;
	u->checked = 1;
	char name[512], w[EDGE_WHY_MAX];
	upstream_name(u, name, sizeof(name));
	tell(w, sizeof(w), up ? "" : why ? why : "no reason given");
	pthread_mutex_lock(&e->mu);
	u->up_pub = up;
	u->checked_pub = 1;
	memcpy(u->why_pub, w, sizeof(w));
	pthread_mutex_unlock(&e->mu);
	if (changed && up)
		say(e, CAIRN_EDGE_LOG_INFO, "upstream %s is up again", name);
	else if (changed)
		say(e, CAIRN_EDGE_LOG_WARN, "upstream %s is down: %s", name, w);
}

struct probe {
	struct cairn_edge *e;
	struct upstream *u;
	struct cairn_buf body;
};

static int probe_data(void *ctx, const void *data, size_t len)
{
	struct probe *p = ctx;
	return cairn_buf_append(&p->body, data, len) < 0;
}

static void probe_done(void *ctx, const struct cairn_http_result *res)
{
	struct probe *p = ctx;
	struct cairn_edge *e = p->e;
	struct upstream *u = p->u;
	struct cairn_http_cache_info info;
	struct cairn_error perr;
	char why[EDGE_WHY_MAX];
	e->active--;
	u->probing = 0;
	cairn_error_init(&perr);
	if (res->outcome == CAIRN_HTTP_OK &&
	    cairn_http_cache_info_parse(p->body.data ? p->body.data : "", p->body.len, &info,
					&perr) == 0) {
		size_t len;
		char *text = cairn_buf_steal(&p->body, &len);
		set_up(e, u, 1, NULL);
		pthread_mutex_lock(&e->mu);
		int same = u->info && u->info_len == len && !memcmp(u->info, text, len);
		free(u->info);
		u->info = text;
		u->info_len = len;
		pthread_cond_broadcast(&e->info_cond);
		pthread_mutex_unlock(&e->mu);
		/* for a restart while the upstreams are down; only this thread
		 * replaces u->info, so it can be read here unlocked */
		if (!same)
			edge_store_info_put(e->store, cairn_http_server_url(u->srv), u->info,
					    u->info_len, NULL);
	} else {
		count(e->c.probes_failed, 1);
		if (res->outcome == CAIRN_HTTP_OK)
			snprintf(why, sizeof(why), "its nix-cache-info is unreadable: %s",
				 cairn_error_msg(&perr));
		else
			snprintf(why, sizeof(why), "%s", cairn_error_msg(&res->err));
		set_up(e, u, 0, why);
		pthread_mutex_lock(&e->mu);
		pthread_cond_broadcast(&e->info_cond);
		pthread_mutex_unlock(&e->mu);
	}
	cairn_buf_release(&p->body);
	free(p);
}

static void probe_start(struct cairn_edge *e, struct upstream *u)
{
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return;
	p->e = e;
	p->u = u;
	cairn_buf_init(&p->body, CAIRN_HTTP_CACHE_INFO_MAX);
	struct cairn_http_request rq = {
		.method = CAIRN_HTTP_GET,
		.server = u->srv,
		.url = "nix-cache-info",
		.max_body = CAIRN_HTTP_CACHE_INFO_MAX,
		.total_timeout_s = 10,
		.on_data = probe_data,
		.on_done = probe_done,
		.ctx = p,
	};
	cairn_http_server_mark_up(u->srv);
	if (cairn_http_add(e->http, &rq, NULL) < 0) {
		cairn_buf_release(&p->body);
		free(p);
		set_up(e, u, 0, "its health check could not be queued");
		return;
	}
	u->probing = 1;
	e->active++;
}

static void attempt_next(struct fetch *f);

/* --- a download's checks ------------------------------------------------------ */

/* The file size every claim of f agrees on, or SIZE_UNKNOWN. */
static int64_t cand_size(const struct fetch *f)
{
	int64_t size = SIZE_UNKNOWN;
	for (size_t i = 0; f->cand && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->has_file || c->file_size < 0 || (i && c->file_size != size))
			return SIZE_UNKNOWN;
		size = c->file_size;
	}
	return size;
}

/* Can a file of `total` bytes meet one of f's claims? */
static int cand_size_ok(const struct fetch *f, int64_t total)
{
	for (size_t i = 0; i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->has_file || c->file_size < 0 || c->file_size == total)
			return 1;
	}
	return 0;
}

static struct decoder *dec_find(struct fetch *f, enum cairn_codec_method m)
{
	for (size_t i = 0; i < f->n_dec; i++)
		if (f->dec[i].method == m)
			return &f->dec[i];
	return NULL;
}

/* One decompression per method the claims check by NarHash; a claim whose
 * method does not get one cannot be met. */
static int dec_start(struct fetch *f)
{
	for (size_t i = 0; f->cand && i < f->cand->n; i++) {
		const struct nar_claim *c = &f->cand->c[i];
		if (!c->by_nar || dec_find(f, c->method) || f->n_dec == EDGE_MAX_DECODERS)
			continue;
		uint64_t max = 0;
		for (size_t j = i; j < f->cand->n; j++)
			if (f->cand->c[j].by_nar && f->cand->c[j].method == c->method &&
			    f->cand->c[j].nar_size > max)
				max = f->cand->c[j].nar_size;
		struct decoder *d = &f->dec[f->n_dec++];
		d->method = c->method;
		int rc = cairn_codec_new(&d->codec, c->method, CAIRN_CODEC_DECOMPRESS,
					 CAIRN_CODEC_LEVEL_DEFAULT, max, NULL);
		if (rc == 0)
			rc = cairn_sha256_init(&d->sha);
		if (rc < 0)
			return rc;
		d->sha_init = 1;
	}
	return 0;
}

static int dec_out(void *ctx, const void *data, size_t len)
{
	struct decoder *d = ctx;
	cairn_sha256_update(&d->sha, data, len);
	return 0;
}

/* Do the bytes of f (SHA-256 sha) meet claim c? */
static int claim_met(struct fetch *f, const uint8_t sha[32], const struct nar_claim *c)
{
	if (c->has_file && (memcmp(sha, c->file_sha, 32) != 0 ||
			    (c->file_size >= 0 && f->written != (uint64_t)c->file_size)))
		return 0;
	if (c->by_nar) {
		const struct decoder *d = dec_find(f, c->method);
		if (!d || d->failed || memcmp(d->out, c->nar_sha, 32) != 0 ||
		    cairn_codec_total_out(d->codec) != c->nar_size)
			return 0;
	}
	return c->has_file || c->by_nar;
}

/*
 * Under e->mu: do f's bytes meet a claim on its URL, one it started with
 * or one there is now?  Then clients get a clean end.  *commit: they may be
 * cached, because they meet a current cacheable claim and every current
 * claim either is met or names, by FileHash, exactly this file (its other
 * fields then contradict the file it names, and no bytes could meet it).
 */
static int judge_locked(struct cairn_edge *e, struct fetch *f, const uint8_t sha[32], int *commit)
{
	const struct nar_claims *cl = map_get(&e->claims, f->key);
	int ok = 0, cacheable = 0, all = 1;
	for (size_t i = 0; f->cand && i < f->cand->n; i++)
		ok |= claim_met(f, sha, &f->cand->c[i]);
	for (size_t i = 0; cl && i < cl->n; i++) {
		const struct nar_claim *c = &cl->c[i];
		int met = claim_met(f, sha, c);
		ok |= met;
		cacheable |= met && c->cacheable;
		all &= met || (c->has_file && !memcmp(c->file_sha, sha, 32));
	}
	*commit = cl && !cl->overflow && cacheable && all;
	return ok;
}

/* --- the cache's disk failing ----------------------------------------------- */

/* Say it once, until writing works again (cache_write_works). */
static void cache_write_failed(struct cairn_edge *e, const char *why)
{
	count(e->c.write_errors, 1);
	if (atomic_exchange(&e->write_failing, 1))
		return;
	count(e->c.write_failing, 1);
	char w[EDGE_WHY_MAX];
	say(e, CAIRN_EDGE_LOG_WARN, "%s; nars are passed through uncached until it works again",
	    tell(w, sizeof(w), why));
}

static void cache_write_works(struct cairn_edge *e)
{
	if (!atomic_exchange(&e->write_failing, 0))
		return;
	gauge_down(e->c.write_failing);
	say(e, CAIRN_EDGE_LOG_INFO, "mirror cache: writing works again; caching resumed");
}

/*
 * Upstream thread: f's temporary file failed (why): from byte f->written
 * on, its clients are fed from memory.  What the file holds up to there
 * stays readable through f->fd; the name goes now, so that its space comes
 * back when the last client is done.
 */
static void fetch_to_memory(struct fetch *f, const char *why)
{
	cache_write_failed(f->e, why);
	if (f->fd >= 0)
		unlink(f->tmppath);
	pthread_mutex_lock(&f->mu);
	f->mem = 1;
	f->file_len = f->written;
	f->mbase = f->written;
	pthread_mutex_unlock(&f->mu);
}

/*
 * Under f->mu, upstream thread: keep [mbase + mlen, + len) for the clients
 * of a download that has no file.  Room comes from forgetting what every
 * reader is past, then from growing the buffer (within EDGE_MEM_WINDOW and
 * EDGE_MEM_TOTAL), then from cutting the reader furthest behind.  Once
 * bytes after file_len are forgotten, a new client could not start from
 * the beginning: *leave says the download must leave the table.
 */
static void mem_append(struct fetch *f, const char *data, size_t len, int *leave)
{
	struct cairn_edge *e = f->e;
	while (f->mlen + len > f->mcap) {
		uint64_t need = f->mbase + f->mlen;
		for (struct reader *r = f->readers; r; r = r->next)
			if (!r->cut && r->pos < need)
				need = r->pos;
		if (need > f->mbase) {
			size_t drop = (size_t)(need - f->mbase);
			memmove(f->mbuf, f->mbuf + drop, f->mlen - drop);
			f->mlen -= drop;
			f->mbase = need;
			*leave = 1;
			continue;
		}
		size_t want = f->mcap ? f->mcap * 2 : EDGE_CHUNK;
		while (want < f->mlen + len)
			want *= 2;
		if (want > EDGE_MEM_WINDOW)
			want = EDGE_MEM_WINDOW;
		if (want >= f->mlen + len) {
			size_t extra = want - f->mcap;
			char *nb = NULL;
			if (atomic_fetch_add(&e->mem_used, extra) + extra <= EDGE_MEM_TOTAL &&
			    (nb = realloc(f->mbuf, want))) {
				f->mbuf = nb;
				f->mcap = want;
				continue;
			}
			atomic_fetch_sub(&e->mem_used, extra);
		}
		struct reader *slow = NULL;
		for (struct reader *r = f->readers; r; r = r->next)
			if (!r->cut && (!slow || r->pos < slow->pos))
				slow = r;
		if (!slow) {
			/* nobody to keep bytes for, nor room for these */
			f->mbase += f->mlen + len;
			f->mlen = 0;
			*leave = 1;
			return;
		}
		slow->cut = 1;
		pthread_cond_broadcast(&f->cond);
	}
	memcpy(f->mbuf + f->mlen, data, len);
	f->mlen += len;
}

/* --- the upstream thread's callbacks ------------------------------------------ */

static int f_headers(void *ctx, const struct cairn_http_response *resp)
{
	struct fetch *f = ctx;
	f->max_age = resp->max_age;
	f->no_store = resp->no_store;
	if (resp->status < 200 || resp->status >= 300)
		return 0;
	int64_t total = resp->content_length;
	if (f->written) {
		/* a resumed download: only the rest of the same bytes will do */
		if (resp->status != 206 || resp->range_first != (int64_t)f->written)
			return 1;
		total = resp->range_total;
	}
	if (f->cand && total >= 0 && !cand_size_ok(f, total))
		return 1;
	if (total < 0)
		total = cand_size(f);
	if (f->fd < 0 && !f->mem) {
		struct cairn_error err;
		cairn_error_init(&err);
		if (edge_store_tmp_open(f->e->store, f->tmppath, sizeof(f->tmppath), &f->fd, &err) <
		    0) {
			f->fd = -1;
			fetch_to_memory(f, cairn_error_msg(&err));
		}
	}
	if (!f->sha_init) {
		if (cairn_sha256_init(&f->sha) < 0)
			return 1;
		f->sha_init = 1;
	}
	if (!f->n_dec && dec_start(f) < 0)
		return 1;
	pthread_mutex_lock(&f->mu);
	if (f->state == FS_PENDING) {
		f->length = total;
		snprintf(f->ctype, sizeof(f->ctype), "%s",
			 resp->content_type[0] ? resp->content_type : "application/octet-stream");
		f->state = FS_HEADERS;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
	return 0;
}

/* Upstream thread: a download that cannot be joined from the start any more. */
static void fetch_leave_table(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	pthread_mutex_lock(&e->mu);
	if (map_get(&e->inflight, f->key) == f)
		map_take(&e->inflight, f->key);
	pthread_mutex_unlock(&e->mu);
}

static int f_data(void *ctx, const void *data, size_t len)
{
	struct fetch *f = ctx;
	int leave = 0;
	count(f->e->c.bytes_upstream, len);
	if (f->max_size >= 0 && f->written + len > (uint64_t)f->max_size)
		return 1;
	const char *p = data;
	size_t left = len;
	while (left && !f->mem) {
		ssize_t n = write(f->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* disk full, quota, I/O error: go on without the file */
			struct cairn_error err;
			cairn_error_init(&err);
			cairn_error_errno(&err, n < 0 ? errno : ENOSPC,
					  "mirror cache: cannot write a download in '%s/tmp'",
					  f->e->cache_dir);
			fetch_to_memory(f, cairn_error_msg(&err));
			break;
		}
		p += n;
		left -= (size_t)n;
	}
	cairn_sha256_update(&f->sha, data, len);
	for (size_t i = 0; i < f->n_dec; i++) {
		struct decoder *d = &f->dec[i];
		/* a failure fails the check at the end; clients keep streaming */
		if (!d->failed && cairn_codec_write(d->codec, data, len, dec_out, d, NULL) < 0)
			d->failed = 1;
	}
	pthread_mutex_lock(&f->mu);
	if (f->mem)
		mem_append(f, data, len, &leave);
	f->written += len;
	/* waking every follower for each small network read costs more than
	 * the copying: wake them once per EDGE_WAKE bytes (and at the end) */
	if (f->written - f->woken >= EDGE_WAKE) {
		f->woken = f->written;
		pthread_cond_broadcast(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
	if (leave && !f->left_table) {
		f->left_table = 1;
		fetch_leave_table(f);
	}
	return 0;
}

/* --- narinfo misses: every upstream asked through the survey ----------------- */

/*
 * A narinfo miss asks the upstreams through the one narinfo query engine
 * (survey.h), all at once on the upstream thread's HTTP client, and the
 * answers go to the one trust decision (trust.h, edge-trust.h).  With
 * K = 1 the preferred upstream's acceptable answer is served as soon as
 * every upstream before it has answered; with K > 1 every answer is
 * waited for, as a disagreement must be seen.
 */

/* What an INVALID or UNKNOWN result says, without the "<url>: <hash>.narinfo: "
 * the survey puts before it (the log line names both already). */
static const char *result_why(const struct fetch *f, const struct cairn_survey_result *r)
{
	const char *m = cairn_error_msg(&r->err);
	const char *url = cairn_http_server_url(f->e->ups[f->sv_ups[r->server_index]].srv);
	size_t n = strlen(url);
	if (!strncmp(m, url, n) && !strncmp(m + n, ": ", 2))
		m += n + 2;
	if (!strncmp(m, f->hash, CAIRN_STORE_HASH_LEN) &&
	    !strncmp(m + CAIRN_STORE_HASH_LEN, ".narinfo: ", 10))
		m += CAIRN_STORE_HASH_LEN + 10;
	return m;
}

/* Upstream thread, from inside the survey: one upstream's answer. */
static int ni_result(void *ctx, struct cairn_survey_result *r)
{
	struct fetch *f = ctx;
	struct cairn_edge *e = f->e;
	size_t ui = f->sv_ups[r->server_index];
	struct upstream *u = &e->ups[ui];
	struct edge_answer *a = &f->ans[ui];
	char why[EDGE_WHY_MAX];
	if (a->answered)
		return 0;
	a->max_age = r->max_age;
	a->no_store = r->no_store;
	switch (r->outcome) {
	case CAIRN_SURVEY_PRESENT:
		a->state = CAIRN_TRUST_PRESENT;
		a->ni = r->narinfo;
		r->narinfo = NULL;
		if ((a->text = malloc(r->text_len ? r->text_len : 1)) != NULL) {
			memcpy(a->text, r->text, r->text_len);
			a->len = r->text_len;
		} else {
			a->state = CAIRN_TRUST_ERROR;
			a->error = strdup("out of memory");
		}
		break;
	case CAIRN_SURVEY_ABSENT:
		a->state = CAIRN_TRUST_ABSENT;
		f->n404++;
		break;
	case CAIRN_SURVEY_INVALID:
		a->state = CAIRN_TRUST_INVALID;
		tell(why, sizeof(why), result_why(f, r));
		a->error = strdup(why);
		f->n_err++;
		count(e->c.up_errors, 1);
		refused(e, strstr(why, "StorePath is") ? REFUSED_STORE_PATH : REFUSED_UNREADABLE,
			f->hash, u->name, why);
		break;
	default:
		a->state = CAIRN_TRUST_ERROR;
		tell(why, sizeof(why), result_why(f, r));
		a->error = strdup(why);
		f->n_err++;
		count(e->c.up_errors, 1);
		if (cairn_http_server_down(u->srv))
			set_up(e, u, 0, why);
		break;
	}
	if (r->outcome != CAIRN_SURVEY_UNKNOWN)
		set_up(e, u, 1, NULL);
	a->answered = true;
	f->n_answered++;
	return 0;
}

/* Upstream thread: ask every upstream that is up (every one, when none
 * is) about f's narinfo. */
static void ni_query_start(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	struct cairn_http_server *servers[CAIRN_EDGE_MAX_UPSTREAMS];
	struct cairn_survey_config cfg;
	struct cairn_error err;
	size_t n = 0;
	int any_up = 0;
	cairn_error_init(&err);
	for (size_t i = 0; i < e->n_ups; i++)
		any_up |= e->ups[i].up;
	for (size_t i = 0; i < e->n_ups; i++) {
		struct upstream *u = &e->ups[i];
		struct edge_answer *a = &f->ans[i];
		a->server = u->name;
		a->max_age = -1;
		if (!u->up && any_up) {
			/* skipped while down; its probe brings it back */
			char why[EDGE_WHY_MAX + 16];
			pthread_mutex_lock(&e->mu);
			snprintf(why, sizeof(why), "down: %s", u->why_pub);
			pthread_mutex_unlock(&e->mu);
			a->state = CAIRN_TRUST_ERROR;
			a->error = strdup(why);
			a->answered = true;
			f->n_answered++;
			continue;
		}
		cairn_http_server_mark_up(u->srv);
		f->sv_ups[n] = i;
		servers[n++] = u->srv;
	}
	cairn_survey_config_init(&cfg);
	if (cairn_survey_new(&f->sv, e->http, servers, n, &cfg, ni_result, f, &err) < 0 ||
	    cairn_survey_add_hash(f->sv, f->hash, NULL, &err) < 0) {
		cairn_survey_free(f->sv);
		f->sv = NULL;
		fetch_finish(f, FS_FAIL, 0);
		return;
	}
	pthread_mutex_lock(&e->mu);
	f->refs++; /* the survey's, until it is freed */
	pthread_mutex_unlock(&e->mu);
	f->sv_next = e->surveys;
	e->surveys = f;
	e->active++;
	cairn_survey_start(f->sv, NULL);
}

/* Upstream thread: serve text (accepted) as the narinfo of f's item. */
static void ni_serve(struct fetch *f, const char *text, size_t len, int64_t max_age, int no_store,
		     const struct cairn_narinfo *const *srcs)
{
	struct cairn_edge *e = f->e;
	struct cairn_narinfo *ni = NULL;
	if (cairn_narinfo_parse(text, len, &ni, NULL) < 0 || cairn_buf_append(&f->body, text, len)) {
		cairn_narinfo_free(ni);
		fetch_finish(f, FS_FAIL, 0);
		return;
	}
	int64_t now = now_s();
	int64_t ttl = no_store ? 0 : ttl_for(e->cfg.positive_ttl, max_age);
	pthread_mutex_lock(&e->mu);
	claims_item_set_locked(e, f->hash, ni, 0, srcs);
	ni_put_locked(e, f->hash, f->body.data, f->body.len, now + ttl);
	pthread_mutex_unlock(&e->mu);
	if (ttl > 0)
		edge_store_narinfo_put(e->store, f->hash, f->body.data, f->body.len, now, NULL);
	cairn_narinfo_free(ni);
	fetch_finish(f, FS_OK, 0);
}

/* Upstream thread: no narinfo to serve; what the client gets, what is
 * remembered and what the operator hears depend on why. */
static void ni_refuse(struct fetch *f, const struct cairn_trust_answer *ta,
		      const struct cairn_trust_verdict *v)
{
	struct cairn_edge *e = f->e;
	int status = v ? v->status : f->n404 ? CAIRN_ENOENT : CAIRN_ENET;
	if (status == CAIRN_ENOENT) {
		int64_t max_age = -1;
		int no_store = 0;
		for (size_t i = 0; i < e->n_ups; i++)
			if (f->ans[i].state == CAIRN_TRUST_ABSENT) {
				no_store |= f->ans[i].no_store;
				if (f->ans[i].max_age >= 0 &&
				    (max_age < 0 || f->ans[i].max_age < max_age))
					max_age = f->ans[i].max_age;
			}
		if (!f->n_err) {
			/* every upstream that answered said 404: remember for a short while */
			int64_t ttl = no_store ? 0 : ttl_for(e->cfg.negative_ttl, max_age);
			if (ttl > 0) {
				pthread_mutex_lock(&e->mu);
				claims_item_set_locked(e, f->hash, NULL, 0, NULL);
				ni_put_locked(e, f->hash, NULL, 0, now_s() + ttl);
				pthread_mutex_unlock(&e->mu);
			}
		}
		fetch_finish(f, FS_FAIL, 1);
		return;
	}
	if (status == CAIRN_ENET || status == CAIRN_EFORMAT || status == CAIRN_ENOMEM ||
	    status == CAIRN_EINVAL) {
		/* nothing usable, or not decided: the upstreams are failing */
		fetch_finish(f, FS_FAIL, f->n404 > 0);
		return;
	}
	count(e->c.untrusted, 1);
	if (v->n_signers == 0) {
		/* no trusted key signed anything: each answer says why */
		for (size_t i = 0; i < e->n_ups; i++)
			if (ta[i].state == CAIRN_TRUST_PRESENT && ta[i].why[0]) {
				char why[EDGE_WHY_MAX];
				refused(e, REFUSED_SIGNATURE, f->hash, f->ans[i].server,
					tell(why, sizeof(why), ta[i].why));
			}
	} else {
		/* keys signed, but too few or for different claims: one line
		 * names which keys signed what, and who did not answer */
		struct cairn_buf b = CAIRN_BUF_INIT(EDGE_LOG_LINE_MAX - 256);
		char line[EDGE_LOG_LINE_MAX - 128];
		cairn_buf_puts(&b, v->reason);
		for (size_t i = 0; i < e->n_ups; i++)
			if (ta[i].state != CAIRN_TRUST_PRESENT && ta[i].state != CAIRN_TRUST_ABSENT)
				cairn_buf_printf(&b, "; %s: %s", f->ans[i].server,
						 f->ans[i].error ? f->ans[i].error : "no answer");
			else if (ta[i].state == CAIRN_TRUST_ABSENT)
				cairn_buf_printf(&b, "; %s: does not have it", f->ans[i].server);
		refused(e, REFUSED_AGREEMENT, f->hash, NULL,
			tell(line, sizeof(line), b.data ? b.data : v->reason));
		cairn_buf_release(&b);
	}
	fetch_finish(f, FS_FAIL, 1);
}

/*
 * Upstream thread: decide about f's narinfo when the answers in allow it
 * (all of them with force).  Without a keyring nothing is checked: the
 * first upstream in order that has it is served, as it is.
 */
static void ni_try_decide(struct fetch *f, int force)
{
	struct cairn_edge *e = f->e;
	size_t n = e->n_ups;
	unsigned k = e->cfg.require_sigs ? e->cfg.require_sigs : 1;
	if (!e->cfg.trusted) {
		for (size_t i = 0; i < n; i++) {
			const struct edge_answer *a = &f->ans[i];
			if (!a->answered && !force)
				return;
			if (a->answered && a->state == CAIRN_TRUST_PRESENT) {
				const struct cairn_narinfo *srcs[CAIRN_EDGE_MAX_UPSTREAMS] = {0};
				srcs[i] = a->ni;
				f->decided = 1;
				ni_serve(f, a->text, a->len, a->max_age, a->no_store, srcs);
				return;
			}
		}
		f->decided = 1;
		ni_refuse(f, NULL, NULL);
		return;
	}
	struct cairn_trust_answer *ta = calloc(n, sizeof(*ta));
	struct cairn_trust_verdict *v = malloc(sizeof(*v));
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	if (!ta || !v) {
		if (force) {
			f->decided = 1;
			fetch_finish(f, FS_FAIL, 0);
		}
		goto out;
	}
	int rc = edge_trust_decide(f->ans, n, f->hash, e->cfg.trusted, k, ta, v);
	if (!force && !edge_trust_final(f->ans, n, k, v))
		goto out;
	f->decided = 1;
	if (rc) {
		ni_refuse(f, ta, v);
		goto out;
	}
	if (edge_trust_served(f->ans, ta, n, v, &text)) {
		fetch_finish(f, FS_FAIL, 0);
		goto out;
	}
	/* what is served depends on every answer of the group: the shortest
	 * lifetime any of them was given */
	int64_t max_age = -1;
	int no_store = 0;
	const struct cairn_narinfo *srcs[CAIRN_EDGE_MAX_UPSTREAMS] = {0};
	for (size_t i = 0; i < n; i++)
		if (ta[i].group == v->chosen) {
			srcs[i] = f->ans[i].ni;
			no_store |= f->ans[i].no_store;
			if (f->ans[i].max_age >= 0 && (max_age < 0 || f->ans[i].max_age < max_age))
				max_age = f->ans[i].max_age;
		}
	ni_serve(f, text.data ? text.data : "", text.len, max_age, no_store, srcs);
out:
	cairn_buf_release(&text);
	free(ta);
	free(v);
}

/* Upstream thread: decide what the new answers allow, and free the
 * surveys that are over. */
static void ni_queries_poll(struct cairn_edge *e)
{
	struct fetch **pp = &e->surveys, *f;
	while ((f = *pp) != NULL) {
		if (!f->decided && f->n_answered != f->n_seen) {
			f->n_seen = f->n_answered;
			ni_try_decide(f, 0);
		}
		if (cairn_survey_pending(f->sv) > 0) {
			pp = &f->sv_next;
			continue;
		}
		*pp = f->sv_next;
		if (!f->decided)
			ni_try_decide(f, 1);
		cairn_survey_free(f->sv);
		f->sv = NULL;
		e->active--;
		fetch_unref(f);
	}
}

static void finish_nar(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	uint8_t sha[32];
	int commit, ok;
	if (!f->sha_init) { /* an empty body never had headers of its own */
		if (cairn_sha256_init(&f->sha) < 0) {
			fetch_finish(f, FS_FAIL, 0);
			return;
		}
		f->sha_init = 1;
	}
	cairn_sha256_final(&f->sha, sha);
	if (f->fd < 0 && !f->mem) {
		fetch_finish(f, FS_FAIL, 0);
		return;
	}
	if (!f->cand) {
		if (!f->mem)
			unlink(f->tmppath); /* nothing to check it against: passed through only */
		fetch_finish(f, FS_OK, 0);
		return;
	}
	for (size_t i = 0; i < f->n_dec; i++) {
		struct decoder *d = &f->dec[i];
		if (!d->failed && cairn_codec_finish(d->codec, dec_out, d, NULL) < 0)
			d->failed = 1;
		if (!d->failed)
			cairn_sha256_final(&d->sha, d->out);
	}
	pthread_mutex_lock(&e->mu);
	ok = judge_locked(e, f, sha, &commit);
	uint64_t gen = e->claims_gen;
	pthread_mutex_unlock(&e->mu);
	if (!ok) {
		count(e->c.verify_fail, 1);
		if (!f->mem)
			unlink(f->tmppath);
		fetch_finish(f, FS_FAIL, 0);
		return;
	}
	if (commit && f->cache && !f->mem) {
		struct edge_store_stats st;
		struct cairn_error err;
		cairn_error_init(&err);
		int rc = edge_store_nar_commit(e->store, f->key, f->tmppath, sha, f->written, &err);
		if (rc == 0) {
			cache_write_works(e);
			/* a claim that came while it was being renamed in */
			pthread_mutex_lock(&e->mu);
			if (e->claims_gen != gen) {
				judge_locked(e, f, sha, &commit);
				if (!commit)
					edge_store_nar_drop_unless(e->store, f->key, NULL);
			}
			pthread_mutex_unlock(&e->mu);
		} else if (rc != CAIRN_ELIMIT) {
			cache_write_failed(e, cairn_error_msg(&err));
		}
		edge_store_stats(e->store, &st);
		if (st.evictions > e->evictions_seen) {
			count(e->c.evictions, st.evictions - e->evictions_seen);
			e->evictions_seen = st.evictions;
		}
	} else if (!f->mem) {
		unlink(f->tmppath);
	}
	fetch_finish(f, FS_OK, 0);
}

static void f_done(void *ctx, const struct cairn_http_result *res)
{
	struct fetch *f = ctx;
	struct cairn_edge *e = f->e;
	struct upstream *u = &e->ups[f->cur_up];
	e->active--;
	if (res->outcome == CAIRN_HTTP_OK) {
		set_up(e, u, 1, NULL);
		finish_nar(f);
		return;
	}
	if (res->status == 404 || res->status == 410) {
		f->n404++; /* f->max_age, from its headers, bounds the negative TTL */
	} else {
		f->n_err++;
		count(e->c.up_errors, 1);
		if (res->outcome == CAIRN_HTTP_CONNECT)
			set_up(e, u, 0, cairn_error_msg(&res->err));
	}
	attempt_next(f);
}

/* Upstream thread: try the next upstream for a nar, or end the fetch. */
static void attempt_next(struct fetch *f)
{
	struct cairn_edge *e = f->e;
	int any_up = 0;
	for (size_t i = 0; i < e->n_ups; i++)
		any_up |= e->ups[i].up;
	for (; f->next_up < e->n_ups; f->next_up++) {
		struct upstream *u = &e->ups[f->order[f->next_up]];
		if (!u->up && any_up)
			continue; /* skipped while down; its probe brings it back */
		struct cairn_http_request rq = {
			.method = CAIRN_HTTP_GET,
			.server = u->srv,
			.url = f->upath,
			.range_start = f->written,
			.max_body = f->max_size >= 0 ? (uint64_t)f->max_size + 1 : CAIRN_EDGE_NAR_MAX,
			.on_headers = f_headers,
			.on_data = f_data,
			.on_done = f_done,
			.ctx = f,
		};
		cairn_http_server_mark_up(u->srv);
		if (cairn_http_add(e->http, &rq, NULL) < 0)
			continue;
		f->cur_up = f->order[f->next_up++];
		e->active++;
		return;
	}
	if (f->fd >= 0)
		unlink(f->tmppath);
	fetch_finish(f, FS_FAIL, f->n404 > 0 && !f->written);
}

/* Expired 404s: without this, asking for random hashes would grow the map
 * without bound.  (Expired narinfos stay: they are served when every
 * upstream fails.) */
static void purge_negatives(struct cairn_edge *e)
{
	int64_t now = now_s();
	pthread_mutex_lock(&e->mu);
	struct map_iter it;
	for (struct map_ent *x = map_iter_first(&it, &e->narinfos); x; x = map_iter_next(&it)) {
		struct ni_ent *n = x->val;
		if (!n->text && n->expires <= now) {
			map_take(&e->narinfos, x->key);
			ni_ent_free(n);
		}
	}
	pthread_mutex_unlock(&e->mu);
}

static void *upstream_main(void *arg)
{
	struct cairn_edge *e = arg;
	uint64_t next_flush = now_ms() + EDGE_FLUSH_MS;
	for (;;) {
		uint64_t t = now_ms();
		pthread_mutex_lock(&e->mu);
		if (e->stop) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		struct fetch *jobs = e->jobs;
		e->jobs = NULL;
		e->jobs_tail = &e->jobs;
		pthread_mutex_unlock(&e->mu);
		while (jobs) {
			struct fetch *f = jobs;
			jobs = f->qnext;
			if (f->kind == FK_NARINFO)
				ni_query_start(f);
			else
				attempt_next(f);
		}
		ni_queries_poll(e);
		for (size_t i = 0; i < e->n_ups; i++)
			if (!e->ups[i].probing && t >= e->ups[i].next_probe)
				probe_start(e, &e->ups[i]);
		refusals_flush(e);
		if (t >= next_flush) {
			purge_negatives(e);
			edge_store_flush(e->store, NULL);
			next_flush = t + EDGE_FLUSH_MS;
		}
		if (e->active > 0) {
			cairn_http_step(e->http, 2, NULL);
			continue;
		}
		/* idle: sleep until a job arrives or a probe is due */
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_nsec += 50 * 1000000;
		if (dl.tv_nsec >= 1000000000) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&e->mu);
		if (!e->jobs && !e->stop)
			pthread_cond_timedwait(&e->job_cond, &e->mu, &dl);
		pthread_mutex_unlock(&e->mu);
	}
	return NULL;
}

/* --- handlers ------------------------------------------------------------------ */

static int send_narinfo_text(struct cairn_httpd_req *req, const char *text, size_t len,
			     int64_t max_age)
{
	char cc[64];
	snprintf(cc, sizeof(cc), "max-age=%lld", (long long)(max_age > 0 ? max_age : 0));
	cairn_httpd_add_header(req, "Cache-Control", cc);
	return cairn_httpd_send(req, 200, "text/x-nix-narinfo", text, len);
}

static int send_404(struct cairn_httpd_req *req, int64_t max_age)
{
	char cc[64];
	if (max_age > 0)
		snprintf(cc, sizeof(cc), "max-age=%lld", (long long)max_age);
	else
		snprintf(cc, sizeof(cc), "no-store");
	cairn_httpd_add_header(req, "Cache-Control", cc);
	return cairn_httpd_send_error(req, 404);
}

/* Under e->mu: is an upstream up, or not known to be down yet? */
static int any_up_locked(const struct cairn_edge *e)
{
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].up_pub)
			return 1;
	return 0;
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

static int narinfo_lookup(struct cairn_edge *e, const char *hash, char **text, size_t *len,
			  int64_t *max_age, int *stale_out, int nowait)
{
	int64_t now = now_s();
	char *stale = NULL;
	size_t stale_len = 0;
	int joined, rc;
	*stale_out = 0;
	pthread_mutex_lock(&e->mu);
	struct ni_ent *n = map_get(&e->narinfos, hash);
	if (n && now < n->expires) {
		count(e->c.ni_hits, 1);
		*max_age = n->expires - now;
		if (!n->text) {
			pthread_mutex_unlock(&e->mu);
			return LOOKUP_ABSENT;
		}
		if (text) {
			if (!(*text = malloc(n->len))) {
				pthread_mutex_unlock(&e->mu);
				return LOOKUP_FAILED;
			}
			memcpy(*text, n->text, n->len);
			*len = n->len;
		}
		pthread_mutex_unlock(&e->mu);
		return LOOKUP_PRESENT;
	}
	if (nowait) {
		pthread_mutex_unlock(&e->mu);
		return LOOKUP_WOULD_WAIT;
	}
	if (n && n->text && (stale = malloc(n->len))) {
		memcpy(stale, n->text, n->len);
		stale_len = n->len;
	}
	if (stale && !any_up_locked(e)) {
		/* every upstream is down: no use waiting for them (each may take
		 * a connect timeout) before the stale answer; their probes tell
		 * when they are back */
		pthread_mutex_unlock(&e->mu);
		count(e->c.stale, 1);
		*stale_out = 1;
		*max_age = 0;
		if (text) {
			*text = stale;
			*len = stale_len;
		} else {
			free(stale);
		}
		return LOOKUP_PRESENT;
	}
	char key[CAIRN_STORE_HASH_LEN + 16];
	snprintf(key, sizeof(key), "%s.narinfo", hash);
	struct fetch *f = fetch_get_locked(e, FK_NARINFO, key, &joined);
	if (f && !joined)
		memcpy(f->hash, hash, CAIRN_STORE_HASH_LEN + 1);
	pthread_mutex_unlock(&e->mu);
	count(joined ? e->c.coalesced : e->c.ni_misses, 1);
	if (!f) {
		free(stale);
		return LOOKUP_FAILED;
	}
	enum fstate st = fetch_wait(f, FS_OK, e->cfg.wait_ms);
	if (st == FS_OK) {
		rc = LOOKUP_PRESENT;
		*max_age = ttl_for(e->cfg.positive_ttl, -1);
		if (text) {
			/* the body is not touched again once the fetch is OK */
			if ((*text = malloc(f->body.len ? f->body.len : 1))) {
				memcpy(*text, f->body.data, f->body.len);
				*len = f->body.len;
			} else {
				rc = LOOKUP_FAILED;
			}
		}
	} else if (st == FS_FAIL && f->not_found) {
		rc = LOOKUP_ABSENT;
		*max_age = e->cfg.negative_ttl;
	} else if (stale) {
		/* stale-if-error: every upstream is failing */
		count(e->c.stale, 1);
		*stale_out = 1;
		*max_age = 0;
		rc = LOOKUP_PRESENT;
		if (text) {
			*text = stale;
			*len = stale_len;
			stale = NULL;
		}
	} else {
		rc = LOOKUP_FAILED;
	}
	free(stale);
	fetch_unref(f);
	return rc;
}

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
	enum { MISS_STREAM, MISS_NARINFO, MISS_INFO } kind;
	int is_nar, is_head;
	char hash[CAIRN_STORE_HASH_LEN + 1];
	char key[CAIRN_EDGE_KEY_MAX + 1];
	char query[256];
	size_t qlen;
	char range[64];
	size_t rlen; /* 0: no (usable) Range */
};

static void cc_404(char *cc, size_t n, int64_t max_age)
{
	if (max_age > 0)
		snprintf(cc, n, "max-age=%lld", (long long)max_age);
	else
		snprintf(cc, n, "no-store");
}

static void miss_narinfo(struct miss *m)
{
	char *text = NULL, cc[64];
	size_t len = 0;
	int64_t max_age = 0;
	int stale;
	int rc = narinfo_lookup(m->e, m->hash, &text, &len, &max_age, &stale, 0);
	if (rc < 0) {
		cairn_httpd_stream_error(m->s, 502, NULL);
		return;
	}
	if (rc == 0) {
		cc_404(cc, sizeof(cc), max_age);
		cairn_httpd_stream_error(m->s, 404, cc);
		return;
	}
	snprintf(cc, sizeof(cc), "max-age=%lld", (long long)(max_age > 0 ? max_age : 0));
	const char *hdrs[] = {"Cache-Control", cc, stale ? "Warning" : NULL,
			      "110 - \"Response is Stale\"", NULL};
	cairn_httpd_stream_reply(m->s, 200, "text/x-nix-narinfo", text, len, hdrs);
	free(text);
}

/*
 * A client following f as it downloads (lib/httpd-follow.h).  The last
 * byte read is always held back until more follow it, and the response's
 * last byte until the whole object is verified (FS_OK), so no response,
 * whole or a range, ends cleanly on bytes that fail the check.  The held
 * byte is kept by the follower, not in f: for a download without a file,
 * rd (this client among f->readers) needs no memory kept for it.
 */
struct follower {
	struct fetch *f;
	struct reader *rd;
};

static int64_t follow_wait(void *ctx, uint64_t pos, uint64_t limit)
{
	struct follower *fl = ctx;
	struct fetch *f = fl->f;
	int64_t r;
	pthread_mutex_lock(&f->mu);
	fl->rd->pos = pos;
	for (;;) {
		uint64_t have = f->written < limit ? f->written : limit;
		if (fl->rd->cut) {
			r = CAIRN_ECANCELED;
			break;
		}
		if (pos < have) {
			r = (int64_t)(have - pos);
			break;
		}
		if (f->state == FS_OK || f->state == FS_FAIL) {
			r = f->state == FS_OK ? HTTPD_FOLLOW_DONE : CAIRN_EIO;
			break;
		}
		pthread_cond_wait(&f->cond, &f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return r;
}

static ssize_t follow_read(void *ctx, uint64_t pos, void *buf, size_t len)
{
	struct follower *fl = ctx;
	struct fetch *f = fl->f;
	ssize_t r;
	pthread_mutex_lock(&f->mu);
	if (!f->mem || pos < f->file_len) {
		if (f->mem && pos + len > f->file_len)
			len = (size_t)(f->file_len - pos);
		pthread_mutex_unlock(&f->mu);
		r = pread(f->fd, buf, len, (off_t)pos);
		if (r <= 0)
			r = CAIRN_EIO;
		pthread_mutex_lock(&f->mu);
	} else if (pos < f->mbase) {
		r = CAIRN_ECANCELED; /* without a file, and memory no longer holds them */
	} else {
		memcpy(buf, f->mbuf + (pos - f->mbase), len);
		r = (ssize_t)len;
	}
	/* read is as good as sent: memory need not keep them for this client */
	if (r > 0)
		fl->rd->pos = pos + (uint64_t)r;
	pthread_mutex_unlock(&f->mu);
	return r;
}

/* Copy [pos, end) of f's bytes to s as they arrive; 1 when all went out. */
static int produce(struct fetch *f, struct reader *rd, struct cairn_httpd_stream *s, uint64_t pos,
		   uint64_t end)
{
	struct follower fl = {f, rd};
	const struct httpd_follow src = {
		.wait = follow_wait, .read = follow_read, .ctx = &fl, .hold_last = true};
	return httpd_follow_send(s, &src, pos, end, NULL) == 0;
}

static int key_ok(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("._+-=/", *s)))
			return 0;
	return 1;
}

static int query_ok(const char *q, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((q[i] >= 'a' && q[i] <= 'z') || (q[i] >= 'A' && q[i] <= 'Z') ||
		      (q[i] >= '0' && q[i] <= '9') || strchr("._-=&", q[i])))
			return 0;
	return 1;
}

/* Answer m from f (to which rd is registered as a reader). */
static void stream_from(struct miss *m, struct fetch *f, struct reader *rd)
{
	struct cairn_edge *e = m->e;
	enum fstate st = fetch_wait(f, FS_HEADERS, e->cfg.wait_ms);
	if (st == FS_PENDING || st == FS_FAIL) {
		if (st == FS_FAIL && f->not_found)
			cairn_httpd_stream_error(m->s, 404, NULL);
		else
			cairn_httpd_stream_error(m->s, st == FS_PENDING ? 504 : 502, NULL);
		return;
	}
	int64_t total = f->length;
	uint64_t first = 0, last = 0, n = 0;
	int status = 200;
	int64_t clen = total;
	char cr[96];
	const char *hdrs[] = {NULL, NULL, NULL};
	/* a length the upstream did not announce cannot be cut into ranges */
	enum cairn_httpd_range rr =
	    m->rlen && total >= 0
		? cairn_httpd_parse_range(m->range, m->rlen, (uint64_t)total, &first, &n)
		: CAIRN_HTTPD_RANGE_NONE;
	if (rr == CAIRN_HTTPD_RANGE_UNSATISFIABLE) {
		snprintf(cr, sizeof(cr), "bytes */%lld", (long long)total);
		hdrs[0] = "Content-Range";
		hdrs[1] = cr;
		cairn_httpd_stream_reply(m->s, 416, NULL, NULL, 0, hdrs);
		return;
	}
	if (rr == CAIRN_HTTPD_RANGE_OK) {
		last = first + n - 1;
		snprintf(cr, sizeof(cr), "bytes %llu-%llu/%lld", (unsigned long long)first,
			 (unsigned long long)last, (long long)total);
		hdrs[0] = "Content-Range";
		hdrs[1] = cr;
		status = 206;
		clen = (int64_t)n;
	} else {
		first = 0;
		last = UINT64_MAX - 1;
	}
	const char *ctype = m->is_nar ? "application/x-nix-nar" : f->ctype;
	int ok = 0;
	if (cairn_httpd_stream_begin(m->s, status, ctype, clen, hdrs) == 0)
		ok = m->is_head || produce(f, rd, m->s, first, last + 1);
	cairn_httpd_stream_end(m->s, ok);
}

/* A miss on an object that streams (nar, log, listing): join or start. */
static void miss_stream(struct miss *m)
{
	struct cairn_edge *e = m->e;
	struct reader rd = {0};
	int known, joined;
	char cc[64];
	const char *key = m->key;
	pthread_mutex_lock(&e->mu);
	known = map_get(&e->claims, key) != NULL;
	pthread_mutex_unlock(&e->mu);

	/* Guix: nar/<compression>/<hash>-<name>; learn its hashes from the narinfo */
	if (m->is_nar && !known) {
		const char *slash = strchr(key + 4, '/');
		const char *base = slash ? slash + 1 : NULL;
		if (base && strlen(base) > CAIRN_STORE_HASH_LEN && base[CAIRN_STORE_HASH_LEN] == '-' &&
		    cairn_store_hash_valid(base, CAIRN_STORE_HASH_LEN)) {
			char hash[CAIRN_STORE_HASH_LEN + 1];
			int64_t ma;
			int stale;
			memcpy(hash, base, CAIRN_STORE_HASH_LEN);
			hash[CAIRN_STORE_HASH_LEN] = 0;
			int rc = narinfo_lookup(e, hash, NULL, NULL, &ma, &stale, 0);
			if (rc == 0) {
				cc_404(cc, sizeof(cc), ma);
				cairn_httpd_stream_error(m->s, 404, cc);
				return;
			}
		}
	}

	pthread_mutex_lock(&e->mu);
	struct fetch *f = fetch_get_locked(e, FK_NAR, key, &joined);
	if (f && !joined) {
		f->cache = m->is_nar && f->cand;
		/* cairn publish names on-the-fly nars "...?hash=<hashpart>" */
		size_t kl = strlen(key);
		if (m->qlen && kl + 1 + m->qlen < sizeof(f->upath)) {
			memcpy(f->upath, key, kl);
			f->upath[kl] = '?';
			memcpy(f->upath + kl + 1, m->query, m->qlen);
			f->upath[kl + 1 + m->qlen] = 0;
		}
	}
	if (f) {
		/* a reader from the start: a download kept in memory keeps its
		 * bytes for this client before the first of them arrives */
		pthread_mutex_lock(&f->mu);
		rd.next = f->readers;
		f->readers = &rd;
		pthread_mutex_unlock(&f->mu);
	}
	pthread_mutex_unlock(&e->mu);
	if (!f) {
		cairn_httpd_stream_error(m->s, 503, NULL);
		return;
	}
	if (m->is_nar)
		count(joined ? e->c.coalesced : e->c.misses, 1);
	stream_from(m, f, &rd);
	pthread_mutex_lock(&f->mu);
	for (struct reader **pp = &f->readers; *pp; pp = &(*pp)->next)
		if (*pp == &rd) {
			*pp = rd.next;
			break;
		}
	pthread_mutex_unlock(&f->mu);
	fetch_unref(f);
}

static void miss_info(struct miss *m);

static void *miss_main(void *arg)
{
	struct miss *m = arg;
	struct cairn_edge *e = m->e;
	if (m->kind == MISS_NARINFO)
		miss_narinfo(m);
	else if (m->kind == MISS_INFO)
		miss_info(m);
	else
		miss_stream(m);
	free(m);
	pthread_mutex_lock(&e->mu);
	if (--e->producers == 0)
		pthread_cond_broadcast(&e->producers_cond);
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* Loop side: hand the request to a thread of its own (takes m). */
static int defer_miss(struct cairn_edge *e, struct cairn_httpd_req *req, struct miss *m)
{
	size_t n;
	const char *v;
	m->e = e;
	m->is_head = cairn_httpd_req_is_head(req);
	if ((v = cairn_httpd_req_query(req, &n)) && n && n < sizeof(m->query) && query_ok(v, n)) {
		memcpy(m->query, v, n);
		m->qlen = n;
	}
	/* longer ones are no single range we would honour: the whole object */
	if ((v = cairn_httpd_req_header(req, "range", &n)) && n < sizeof(m->range)) {
		memcpy(m->range, v, n);
		m->rlen = n;
	}
	pthread_mutex_lock(&e->mu);
	int refuse = e->stop || e->producers >= EDGE_MAX_MISSES;
	if (!refuse)
		e->producers++;
	pthread_mutex_unlock(&e->mu);
	if (refuse) {
		free(m);
		return cairn_httpd_send_error(req, 503);
	}
	pthread_attr_t attr;
	pthread_t tid;
	int ok = 0;
	if (cairn_httpd_stream_defer(req, &m->s) == 0) {
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&attr, EDGE_PRODUCER_STACK);
		ok = pthread_create(&tid, &attr, miss_main, m) == 0;
		pthread_attr_destroy(&attr);
		if (!ok)
			cairn_httpd_stream_error(m->s, 503, NULL);
	} else {
		cairn_httpd_send_error(req, 503);
	}
	if (!ok) {
		free(m);
		pthread_mutex_lock(&e->mu);
		if (--e->producers == 0)
			pthread_cond_broadcast(&e->producers_cond);
		pthread_mutex_unlock(&e->mu);
	}
	return 0;
}

/* Cache-Control: only-if-cached (RFC 9111 5.2.1.7): the asker wants what
 * is held, never a fetch through (cairn weather --held, the follower). */
static int only_if_cached(const struct cairn_httpd_req *req)
{
	size_t n;
	const char *v = cairn_httpd_req_header(req, "cache-control", &n);
	return v && edge_cc_only_if_cached(v, n);
}

/* An item is held when its narinfo is, and the nar its first URL names. */
static int nar_held(struct cairn_edge *e, const char *text, size_t len)
{
	struct cairn_narinfo *ni = NULL;
	char key[CAIRN_EDGE_KEY_MAX + 1], name[EDGE_FILE_NAME_LEN + 1];
	uint64_t size;
	int held = cairn_narinfo_parse(text, len, &ni, NULL) == 0 && ni->n_urls &&
		   url_key(ni->urls[0].url, key) == 0 && edge_store_nar_get(e->store, key, name, &size);
	cairn_narinfo_free(ni);
	return held;
}

static int h_narinfo(struct cairn_edge *e, struct cairn_httpd_req *req, const char *hash)
{
	char *text = NULL;
	size_t len = 0;
	int64_t max_age = 0;
	int stale;
	int rc = narinfo_lookup(e, hash, &text, &len, &max_age, &stale, 1);
	if (only_if_cached(req) && (rc == LOOKUP_WOULD_WAIT || (rc > 0 && !nar_held(e, text, len)))) {
		free(text);
		return cairn_httpd_send_error(req, 504);
	}
	if (rc == LOOKUP_WOULD_WAIT) {
		struct miss *m = calloc(1, sizeof(*m));
		if (!m)
			return cairn_httpd_send_error(req, 503);
		m->kind = MISS_NARINFO;
		memcpy(m->hash, hash, CAIRN_STORE_HASH_LEN + 1);
		return defer_miss(e, req, m);
	}
	if (rc < 0)
		return cairn_httpd_send_error(req, 502);
	if (rc == 0)
		return send_404(req, max_age);
	rc = send_narinfo_text(req, text, len, max_age);
	free(text);
	return rc;
}

static int h_stream(struct cairn_edge *e, struct cairn_httpd_req *req, const char *key, int is_nar)
{
	struct miss *m = calloc(1, sizeof(*m));
	if (!m)
		return cairn_httpd_send_error(req, 503);
	snprintf(m->key, sizeof(m->key), "%s", key);
	m->is_nar = is_nar;
	return defer_miss(e, req, m);
}

static int h_nar(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	size_t plen;
	const char *path = cairn_httpd_req_path(req, &plen);
	char key[CAIRN_EDGE_KEY_MAX + 1];
	if (plen < 2 || cairn_httpd_safe_path(path + 1, plen - 1, key, sizeof(key), NULL) < 0 ||
	    !key_ok(key))
		return cairn_httpd_send_error(req, 404);
	int is_nar = !strncmp(key, "nar/", 4);
	if (is_nar) {
		char name[EDGE_FILE_NAME_LEN + 1];
		uint64_t size;
		if (edge_store_nar_get(e->store, key, name, &size)) {
			int rc = cairn_httpd_send_file_at(req, edge_store_data_fd(e->store), name,
							  "application/x-nix-nar");
			if (rc != CAIRN_ENOENT) {
				count(e->c.hits, 1);
				if (!cairn_httpd_req_is_head(req))
					count(e->c.bytes_cache, size);
				return rc;
			}
		}
	}
	if (only_if_cached(req))
		return cairn_httpd_send_error(req, 504);
	return h_stream(e, req, key, is_nar);
}

static int h_root(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	size_t plen;
	const char *path = cairn_httpd_req_path(req, &plen);
	char hash[CAIRN_STORE_HASH_LEN + 1];
	if (plen == 1 + CAIRN_STORE_HASH_LEN + 8 && !memcmp(path + 1 + CAIRN_STORE_HASH_LEN, ".narinfo", 8) &&
	    cairn_store_hash_valid(path + 1, CAIRN_STORE_HASH_LEN)) {
		memcpy(hash, path + 1, CAIRN_STORE_HASH_LEN);
		hash[CAIRN_STORE_HASH_LEN] = 0;
		return h_narinfo(e, req, hash);
	}
	if (plen == 1 + CAIRN_STORE_HASH_LEN + 3 && !memcmp(path + 1 + CAIRN_STORE_HASH_LEN, ".ls", 3) &&
	    cairn_store_hash_valid(path + 1, CAIRN_STORE_HASH_LEN)) {
		char key[CAIRN_STORE_HASH_LEN + 4];
		memcpy(key, path + 1, plen - 1);
		key[plen - 1] = 0;
		return h_stream(e, req, key, 0);
	}
	return CAIRN_ENOENT;
}

/*
 * The nix-cache-info served for an upstream's text: as it is, or with its
 * Priority line (as Nix reads it: the name before the first ':') replaced
 * by cfg.priority.  A malloc'ed copy in *out; CAIRN_ENOMEM when out of memory.
 */
static int info_render(const struct cairn_edge *e, const char *text, size_t len, char **out,
		       size_t *olen)
{
	size_t cap = len + 64;
	char *o = malloc(cap), *p = o;
	if (!o)
		return CAIRN_ENOMEM;
	if (e->cfg.priority < 0) {
		memcpy(o, text, len);
		*out = o;
		*olen = len;
		return 0;
	}
	for (const char *l = text, *end = text + len; l < end;) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t n = nl ? (size_t)(nl + 1 - l) : (size_t)(end - l);
		if (n < 9 || memcmp(l, "Priority:", 9) != 0) {
			memcpy(p, l, n);
			p += n;
			if (!nl)
				*p++ = '\n';
		}
		l += n;
	}
	p += snprintf(p, cap - (size_t)(p - o), "Priority: %d\n", e->cfg.priority);
	*out = o;
	*olen = (size_t)(p - o);
	return 0;
}

/* Under e->mu: the upstream whose nix-cache-info is served: the first that
 * is up, else the first we have one of (from this run or an earlier one). */
static const struct upstream *info_upstream_locked(const struct cairn_edge *e)
{
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].info && e->ups[i].up_pub)
			return &e->ups[i];
	for (size_t i = 0; i < e->n_ups; i++)
		if (e->ups[i].info)
			return &e->ups[i];
	return NULL;
}

/*
 * Under e->mu: the cache info of the first upstream that is up (else the
 * last good one of any: kept in the index, it outlives a restart): 1 and a
 * copy in *out, 0 when every upstream failed and none ever answered, -2
 * while the first probes are still out.
 */
static int cache_info_locked(struct cairn_edge *e, char **out, size_t *len)
{
	const struct upstream *pick = info_upstream_locked(e);
	if (pick)
		return info_render(e, pick->info, pick->info_len, out, len) == 0;
	size_t failed = 0;
	for (size_t i = 0; i < e->n_ups; i++)
		failed += !e->ups[i].up_pub;
	return failed == e->n_ups ? 0 : -2;
}

/* Miss thread: wait for the first probes to answer. */
static void miss_info(struct miss *m)
{
	struct cairn_edge *e = m->e;
	struct timespec dl;
	char *info = NULL;
	size_t len = 0;
	int rc;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += e->cfg.wait_ms / 1000 + 1;
	pthread_mutex_lock(&e->mu);
	while ((rc = cache_info_locked(e, &info, &len)) == -2 && !e->stop)
		if (pthread_cond_timedwait(&e->info_cond, &e->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
	if (rc == 1)
		cairn_httpd_stream_reply(m->s, 200, "text/x-nix-cache-info", info, len, NULL);
	else
		cairn_httpd_stream_error(m->s, 502, NULL);
	free(info);
}

static int h_cache_info(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	char *info = NULL;
	size_t len = 0;
	pthread_mutex_lock(&e->mu);
	int rc = cache_info_locked(e, &info, &len);
	pthread_mutex_unlock(&e->mu);
	if (rc == LOOKUP_WOULD_WAIT) {
		struct miss *m = calloc(1, sizeof(*m));
		if (!m)
			return cairn_httpd_send_error(req, 503);
		m->kind = MISS_INFO;
		return defer_miss(e, req, m);
	}
	if (rc == 0)
		return cairn_httpd_send_error(req, 502);
	rc = cairn_httpd_send(req, 200, "text/x-nix-cache-info", info, len);
	free(info);
	return rc;
}

/* --- /health and / ----------------------------------------------------------- */

struct edge_state {
	int any_up, have_info, guix;
	struct edge_store_stats st;
	struct cairn_buf ups; /* one line per upstream: "URL up|down: why|unchecked" */
};

/* What /health and / tell, gathered under e->mu. */
static void state_get(struct cairn_edge *e, struct edge_state *s)
{
	memset(s, 0, sizeof(*s));
	cairn_buf_init(&s->ups, EDGE_PAGE_MAX / 2);
	edge_store_stats(e->store, &s->st);
	pthread_mutex_lock(&e->mu);
	const struct upstream *iu = info_upstream_locked(e);
	s->have_info = iu != NULL;
	s->guix = iu && memmem(iu->info, iu->info_len, "StoreDir: /gnu/store", 20) != NULL;
	for (size_t i = 0; i < e->n_ups; i++) {
		const struct upstream *u = &e->ups[i];
		char name[512];
		upstream_name(u, name, sizeof(name));
		s->any_up |= u->checked_pub && u->up_pub;
		if (!u->checked_pub)
			cairn_buf_printf(&s->ups, "%s unchecked\n", name);
		else if (u->up_pub)
			cairn_buf_printf(&s->ups, "%s up\n", name);
		else
			cairn_buf_printf(&s->ups, "%s down: %s\n", name, u->why_pub);
	}
	pthread_mutex_unlock(&e->mu);
}

/* Can clients be served without an upstream? */
static int state_can_serve(const struct edge_state *s)
{
	return s->have_info && s->st.n_nars > 0;
}

/*
 * 200 when an upstream is up or the cache can serve on its own (it holds a
 * nix-cache-info and at least one nar), else 503; the body says why, in the
 * format documented in docs/cairn-mirror.md.
 */
static int h_health(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	struct edge_state s;
	struct cairn_buf b = CAIRN_BUF_INIT(EDGE_PAGE_MAX);
	state_get(e, &s);
	int ok = s.any_up || state_can_serve(&s);
	cairn_buf_puts(&b, ok ? "ok\n" : "unavailable\n");
	for (const char *l = s.ups.data, *nl; l && (nl = strchr(l, '\n')); l = nl + 1)
		cairn_buf_printf(&b, "upstream %.*s\n", (int)(nl + 1 - l - 1), l);
	cairn_buf_printf(&b, "cache %llu nars %llu bytes, nix-cache-info %s\n",
			 (unsigned long long)s.st.n_nars, (unsigned long long)s.st.bytes,
			 s.have_info ? "held" : "none");
	cairn_buf_release(&s.ups);
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	int rc = cairn_httpd_send(req, ok ? 200 : 503, "text/plain; charset=utf-8",
				  b.data ? b.data : "", b.len);
	cairn_buf_release(&b);
	return rc;
}

static void html_puts(struct cairn_buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': cairn_buf_puts(b, "&lt;"); break;
		case '>': cairn_buf_puts(b, "&gt;"); break;
		case '&': cairn_buf_puts(b, "&amp;"); break;
		case '"': cairn_buf_puts(b, "&quot;"); break;
		default: cairn_buf_putc(b, *s);
		}
	}
}

/* The mirror's URL as the client named it (Host), when it is a plain
 * host[:port]; else localhost and the port it listens on. */
static void page_base(struct cairn_edge *e, struct cairn_httpd_req *req, char *out, size_t cap)
{
	size_t al = 0;
	const char *a = cairn_httpd_req_authority(req, &al);
	int ok = a && al > 0 && al < 256;
	for (size_t i = 0; ok && i < al; i++)
		ok = (a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z') ||
		     (a[i] >= '0' && a[i] <= '9') || strchr(".-:[]", a[i]);
	if (ok)
		snprintf(out, cap, "http://%.*s", (int)al, a);
	else
		snprintf(out, cap, "http://localhost:%d", cairn_httpd_port(e->httpd));
}

/* /: what this is, how its upstreams and cache are, how to use it. */
static int h_index(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	struct edge_state s;
	struct cairn_buf b = CAIRN_BUF_INIT(EDGE_PAGE_MAX), u = CAIRN_BUF_INIT(EDGE_PAGE_MAX);
	char base[300], size[32], max[32];
	state_get(e, &s);
	page_base(e, req, base, sizeof(base));
	edge_fmt_size(size, sizeof(size), s.st.bytes);
	edge_fmt_size(max, sizeof(max), e->cfg.max_size);
	cairn_buf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			   "<title>cairn mirror</title></head><body>\n<h1>cairn mirror</h1>\n"
			   "<p>A caching mirror of the binary caches below (cairn mirror). It "
			   "passes their narinfos on as they are signed");
	if (e->keys)
		cairn_buf_puts(&b, ", only those signed by a trusted key below");
	cairn_buf_puts(&b, "; it keeps a nar only once its bytes match its narinfo, and serves "
			   "what it holds while its upstreams are down.</p>\n<h2>Upstreams</h2>\n"
			   "<pre>\n");
	html_puts(&b, s.ups.data ? s.ups.data : "");
	cairn_buf_puts(&b, "</pre>\n<h2>Cache</h2>\n<p>");
	cairn_buf_printf(&b, "%llu nars, %s", (unsigned long long)s.st.n_nars, size);
	if (e->cfg.max_size)
		cairn_buf_printf(&b, " of %s", max);
	cairn_buf_printf(&b, "; %s.</p>\n<h2>Trusted keys</h2>\n",
			 state_can_serve(&s) ? "it can serve without its upstreams"
					     : "it cannot serve without its upstreams yet");
	if (e->keys) {
		cairn_buf_puts(&b, "<pre>\n");
		html_puts(&b, e->keys);
		cairn_buf_puts(&b, "</pre>\n");
	} else {
		cairn_buf_puts(&b, "<p>None: narinfos are not checked here (clients check their "
				   "signatures).</p>\n");
	}
	cairn_buf_puts(&b, "<h2>How to use it</h2>\n<pre>\n");
	if (s.guix) {
		cairn_buf_printf(&u, "guix build --substitute-urls=%s PACKAGE\n", base);
	} else {
		/* Nix 2.8 (Debian's) has `nix copy` behind an experimental feature */
		cairn_buf_printf(&u, "nix --extra-experimental-features nix-command copy --from %s",
				 base);
		if (e->nix_keys)
			cairn_buf_printf(&u, " --option trusted-public-keys '%s'", e->nix_keys);
		cairn_buf_printf(
		    &u, " /nix/store/...\n\n# or in nix.conf:\nextra-substituters = %s\n", base);
		if (e->nix_keys)
			cairn_buf_printf(&u, "extra-trusted-public-keys = %s\n", e->nix_keys);
	}
	html_puts(&b, u.data ? u.data : "");
	cairn_buf_puts(&b, "</pre>\n<p><a href=\"/nix-cache-info\">nix-cache-info</a> · "
			   "<a href=\"/health\">health</a> · <a href=\"/metrics\">metrics</a></p>\n"
			   "</body></html>\n");
	cairn_buf_release(&u);
	cairn_buf_release(&s.ups);
	cairn_httpd_add_header(req, "Cache-Control", "no-store");
	int rc =
	    cairn_httpd_send(req, 200, "text/html; charset=utf-8", b.data ? b.data : "", b.len);
	cairn_buf_release(&b);
	return rc;
}

/* --- lifecycle ---------------------------------------------------------------- */

/* e->keys and e->nix_keys from the keyring, for the / page. */
static int keys_describe(struct cairn_edge *e, struct cairn_error *err)
{
	const struct cairn_keyring *kr = e->cfg.trusted;
	struct cairn_buf all = CAIRN_BUF_INIT(EDGE_PAGE_MAX / 4),
			 nix = CAIRN_BUF_INIT(EDGE_PAGE_MAX / 4);
	int rc = 0;
	if (!kr)
		return 0;
	e->n_keys = kr->n_nix + kr->n_guix;
	for (size_t i = 0; i < kr->n_nix && rc == 0; i++) {
		if (i)
			rc = cairn_buf_putc(&nix, ' ');
		if (rc == 0)
			rc = cairn_nix_pubkey_format(&kr->nix[i], &nix);
	}
	if (rc == 0 && nix.len)
		rc = cairn_buf_printf(&all, "%.*s\n", (int)nix.len, nix.data);
	for (size_t i = 0; i < kr->n_guix && rc == 0; i++) {
		struct cairn_signer sg = {.kind = CAIRN_KEY_GUIX, .index = i};
		char name[128];
		cairn_keyring_key_name(kr, &sg, name, sizeof(name));
		rc = cairn_buf_printf(&all, "%s\n", name);
	}
	if (rc == 0 && all.len) {
		size_t nix_len = nix.len;
		/* each Nix key on a line of its own */
		for (size_t i = 0; i < nix_len; i++)
			if (all.data[i] == ' ')
				all.data[i] = '\n';
		e->keys = cairn_buf_steal(&all, NULL);
		e->nix_keys = nix_len ? cairn_buf_steal(&nix, NULL) : NULL;
		if (!e->keys || (nix_len && !e->nix_keys))
			rc = -1;
	}
	cairn_buf_release(&all);
	cairn_buf_release(&nix);
	return rc < 0 ? cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory") : 0;
}

/* The line that says the mirror is up: where, in front of what, with
 * what cache and trust. */
static void say_listening(struct cairn_edge *e)
{
	struct cairn_buf b = CAIRN_BUF_INIT(2 * EDGE_LOG_LINE_MAX);
	struct edge_store_stats st;
	char a[300], size[32], max[32];
	size_t i;
	cairn_buf_puts(&b, "listening on ");
	for (i = 0; e->httpd && cairn_httpd_listen_addr(e->httpd, i, a, sizeof(a)) == 0; i++)
		cairn_buf_printf(&b, "%s%s", i ? ", " : "", a);
	if (!i)
		cairn_buf_puts(&b, "(no socket)");
	cairn_buf_puts(&b, e->n_ups > 1 ? "; upstreams " : "; upstream ");
	for (i = 0; i < e->n_ups; i++) {
		upstream_name(&e->ups[i], a, sizeof(a));
		cairn_buf_printf(&b, "%s%s", i ? ", " : "", a);
	}
	edge_store_stats(e->store, &st);
	edge_fmt_size(size, sizeof(size), st.bytes);
	edge_fmt_size(max, sizeof(max), e->cfg.max_size);
	tell(a, sizeof(a), e->cache_dir);
	cairn_buf_printf(&b, "; cache %s: %llu nars, %s", a, (unsigned long long)st.n_nars, size);
	if (e->cfg.max_size)
		cairn_buf_printf(&b, " (at most %s)", max);
	else
		cairn_buf_puts(&b, " (no --max-size)");
	if (e->n_keys)
		cairn_buf_printf(&b, "; %zu trusted key%s", e->n_keys, e->n_keys > 1 ? "s" : "");
	else
		cairn_buf_puts(&b, "; no trusted keys (narinfos are not checked)");
	say(e, CAIRN_EDGE_LOG_INFO, "%s", b.data ? b.data : "listening");
	cairn_buf_release(&b);
}

int cairn_edge_new(struct cairn_edge **out, const struct cairn_edge_config *cfg,
		   struct cairn_error *err)
{
	struct cairn_edge *e;
	int rc;
	if (!cfg->cache_dir || !cfg->n_upstreams || cfg->n_upstreams > CAIRN_EDGE_MAX_UPSTREAMS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: needs a cache directory and 1 to %d upstreams",
				       CAIRN_EDGE_MAX_UPSTREAMS);
	if (cfg->require_sigs > 1 && !cfg->trusted)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: requiring %u signatures needs trusted keys",
				       cfg->require_sigs);
	if (cfg->require_sigs > CAIRN_VERIFY_MAX_SIGNERS)
		return cairn_error_set(err, CAIRN_EINVAL,
				       "mirror: at most %d signatures can be required",
				       CAIRN_VERIFY_MAX_SIGNERS);
	if (!(e = calloc(1, sizeof(*e))))
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	e->cfg = *cfg;
	e->cfg.cache_dir = NULL;
	if (!(e->cache_dir = strdup(cfg->cache_dir))) {
		free(e);
		return cairn_error_set(err, CAIRN_ENOMEM, "mirror: out of memory");
	}
	memset(e->cfg.upstreams, 0, sizeof(e->cfg.upstreams));
	if (!e->cfg.health_interval_ms)
		e->cfg.health_interval_ms = 5000;
	if (e->cfg.max_backoff_ms < e->cfg.health_interval_ms)
		e->cfg.max_backoff_ms = e->cfg.health_interval_ms;
	if (!e->cfg.wait_ms)
		e->cfg.wait_ms = 30000;
	pthread_mutex_init(&e->mu, NULL);
	pthread_mutex_init(&e->log_mu, NULL);
	pthread_cond_init(&e->job_cond, NULL);
	pthread_cond_init(&e->info_cond, NULL);
	pthread_cond_init(&e->producers_cond, NULL);
	map_init(&e->inflight, NULL);
	map_init(&e->narinfos, NULL);
	map_init(&e->claims, NULL);
	e->jobs_tail = &e->jobs;
	for (size_t i = 0; i < cfg->n_upstreams; i++) {
		if ((rc = cairn_http_server_new(&e->ups[i].srv, cfg->upstreams[i], 0, err)) < 0)
			goto fail;
		e->n_ups++;
		upstream_name(&e->ups[i], e->ups[i].name, sizeof(e->ups[i].name));
		/* optimistic until the first probe says otherwise */
		e->ups[i].up = 1;
		e->ups[i].up_pub = 1;
	}
	if ((rc = edge_store_open(&e->store, cfg->cache_dir, cfg->max_size, err)) < 0)
		goto fail;
	if ((rc = keys_describe(e, err)) < 0)
		goto fail;
	/* each upstream's last good nix-cache-info, until it answers again */
	for (size_t i = 0; i < e->n_ups; i++) {
		struct upstream *u = &e->ups[i];
		struct cairn_http_cache_info info;
		rc = edge_store_info_get(e->store, cairn_http_server_url(u->srv),
					 CAIRN_HTTP_CACHE_INFO_MAX, &u->info, &u->info_len, err);
		if (rc < 0)
			goto fail;
		if (rc == 1 && cairn_http_cache_info_parse(u->info, u->info_len, &info, NULL) < 0) {
			free(u->info);
			u->info = NULL;
			u->info_len = 0;
		}
	}
	/* narinfos not refreshed for this long are no use even as stale answers */
	if ((rc = edge_store_narinfo_purge(e->store, now_s() - e->cfg.positive_ttl - EDGE_STALE_MAX,
					   err)) < 0)
		goto fail;
	pthread_mutex_lock(&e->mu);
	rc = edge_store_narinfo_each(e->store, load_narinfo_cb, e, err);
	pthread_mutex_unlock(&e->mu);
	if (rc < 0)
		goto fail;
	*out = e;
	return 0;
fail:
	cairn_edge_free(e);
	return rc;
}

int cairn_edge_attach(struct cairn_edge *e, struct cairn_httpd *h, struct cairn_error *err)
{
	static const struct {
		size_t off;
		enum metric_type type;
		const char *name, *help;
	} cs[] = {
#define C(f, n, hl) {offsetof(struct counters, f), METRIC_COUNTER, n, hl}
#define G(f, n, hl) {offsetof(struct counters, f), METRIC_GAUGE, n, hl}
		C(hits, "cairn_mirror_nar_hits_total", "nar requests served from the cache"),
		C(misses, "cairn_mirror_nar_misses_total",
		  "nar requests that started an upstream fetch"),
		C(coalesced, "cairn_mirror_coalesced_total",
		  "requests that joined a fetch already in flight"),
		C(ni_hits, "cairn_mirror_narinfo_hits_total", "narinfo lookups answered from memory"),
		C(ni_misses, "cairn_mirror_narinfo_misses_total", "narinfo lookups sent upstream"),
		C(stale, "cairn_mirror_stale_served_total",
		  "narinfos served stale because every upstream failed"),
		C(bytes_cache, "cairn_mirror_cache_sent_bytes_total", "nar bytes sent from the cache"),
		C(bytes_upstream, "cairn_mirror_upstream_received_bytes_total",
		  "bytes received from upstreams"),
		C(up_errors, "cairn_mirror_upstream_errors_total",
		  "upstream requests that failed (not 404)"),
		C(verify_fail, "cairn_mirror_verify_failures_total",
		  "nars whose bytes did not match the narinfo"),
		C(untrusted, "cairn_mirror_untrusted_total",
		  "narinfos refused for lack of a trusted signature"),
		C(evictions, "cairn_mirror_evictions_total", "nars evicted from the cache"),
		G(ups_up, "cairn_mirror_upstreams_up", "upstreams currently healthy"),
		C(probes_failed, "cairn_mirror_health_check_failures_total",
		  "failed upstream health checks"),
		G(write_failing, "cairn_mirror_cache_write_failing",
		  "1 while downloads cannot be written to the cache"),
		C(write_errors, "cairn_mirror_cache_write_errors_total",
		  "downloads passed through uncached because the cache could not be written"),
#undef C
#undef G
	};
	struct metrics *reg = httpd_metrics(h);
	int rc;
	for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
		struct metric **slot = (struct metric **)((char *)&e->c + cs[i].off);
		if ((rc = cs[i].type == METRIC_GAUGE
				  ? metrics_gauge(reg, cs[i].name, cs[i].help, slot, err)
				  : metrics_counter(reg, cs[i].name, cs[i].help, slot, err)) < 0)
			return rc;
	}
	count(e->c.ups_up, e->n_ups);
	e->httpd = h;
	if ((rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/", "index", h_index, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/health", "health", h_health, e, err)) <
		0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/nix-cache-info", "cache-info",
				    h_cache_info, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_EXACT, "/metrics", "metrics",
				    cairn_httpd_metrics_handler, h, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/nar/", "nar", h_nar, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/log/", "log", h_nar, e, err)) < 0 ||
	    (rc = cairn_httpd_route(h, CAIRN_HTTPD_PREFIX, "/", "narinfo", h_root, e, err)) < 0)
		return rc;
	return 0;
}

int cairn_edge_start(struct cairn_edge *e, struct cairn_error *err)
{
	struct cairn_http_config hc;
	int rc;
	cairn_http_config_init(&hc);
	hc.connect_timeout_ms = e->cfg.connect_timeout_ms;
	hc.stall_timeout_s = e->cfg.stall_timeout_s;
	hc.max_host_connections = 16;
	if ((rc = cairn_http_new(&e->http, &hc, err)) < 0)
		return rc;
	if (pthread_create(&e->thread, NULL, upstream_main, e) != 0) {
		cairn_http_free(e->http);
		e->http = NULL;
		return cairn_error_set(err, CAIRN_EIO, "mirror: cannot start the upstream thread");
	}
	e->thread_started = 1;
	say_listening(e);
	return 0;
}

/* Fail every fetch still queued or in flight, so that waiters wake up. */
static void fail_all(struct cairn_edge *e)
{
	for (;;) {
		struct fetch *f = NULL;
		pthread_mutex_lock(&e->mu);
		struct map_iter it;
		struct map_ent *x = map_iter_first(&it, &e->inflight);
		if (x)
			f = x->val;
		pthread_mutex_unlock(&e->mu);
		if (!f)
			break;
		if (f->fd >= 0)
			unlink(f->tmppath);
		fetch_finish(f, FS_FAIL, 0);
	}
}

void cairn_edge_stop(struct cairn_edge *e)
{
	if (!e || !e->thread_started)
		return;
	pthread_mutex_lock(&e->mu);
	e->stop = 1;
	pthread_cond_signal(&e->job_cond);
	pthread_cond_broadcast(&e->info_cond);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->thread, NULL);
	e->thread_started = 0;
	/* transfers are abandoned without on_done: their fetches end here */
	while (e->surveys) {
		struct fetch *f = e->surveys;
		e->surveys = f->sv_next;
		cairn_survey_free(f->sv);
		f->sv = NULL;
		fetch_unref(f);
	}
	cairn_http_free(e->http);
	e->http = NULL;
	e->jobs = NULL;
	e->jobs_tail = &e->jobs;
	fail_all(e);
	/* producers end their streams: wait for them before the httpd goes */
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&e->mu);
	while (e->producers)
		if (pthread_cond_timedwait(&e->producers_cond, &e->mu, &dl) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&e->mu);
}

void cairn_edge_free(struct cairn_edge *e)
{
	if (!e)
		return;
	cairn_edge_stop(e);
	struct map_iter it;
	for (struct map_ent *x = map_iter_first(&it, &e->narinfos); x; x = map_iter_next(&it))
		ni_ent_free(x->val);
	for (struct map_ent *x = map_iter_first(&it, &e->claims); x; x = map_iter_next(&it))
		free(x->val);
	map_release(&e->narinfos);
	map_release(&e->claims);
	map_release(&e->inflight);
	for (size_t i = 0; i < e->n_ups; i++) {
		cairn_http_server_free(e->ups[i].srv);
		free(e->ups[i].info);
	}
	edge_store_free(e->store);
	free(e->cache_dir);
	free(e->keys);
	free(e->nix_keys);
	pthread_mutex_destroy(&e->log_mu);
	pthread_cond_destroy(&e->job_cond);
	pthread_cond_destroy(&e->info_cond);
	pthread_cond_destroy(&e->producers_cond);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
