/*
 * publish.c - the publisher's core: its configuration and lifecycle, the
 * pool of database handles, the work queues, compression speed, and what
 * is known of each item's bytes (verified, corrupt) with the background
 * checks that find out.  Narinfos and nar URLs are in publish-narinfo.c,
 * the baked files and their bakers in publish-bake.c, the routes in
 * publish-http.c; the URL space and the cache layout are described in
 * include/cairn/publish.h.
 *
 * Locks: db_lock guards the pool of database handles, memo_lock the memo
 * and the NarHash index, cache_lock the baked files' index, the nar cache
 * under it (narcache.h: one lock for a file and its record) and the queue.
 * The only nesting is memo_lock inside cache_lock (a file baked or evicted
 * makes the remembered narinfo stale); no lock is held across a database
 * query or a signature.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "cairn/storepath.h"
#include "ipfs-gateway.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/banned.h"

/* ---- work queues of hash parts ------------------------------------------ */

static int workq_init(struct pub_workq *q, pthread_mutex_t *lock, pthread_cond_t *cond,
		      size_t max)
{
	memset(q, 0, sizeof(*q));
	q->lock = lock;
	q->cond = cond;
	q->max = max;
	q->queued = map_new(NULL);
	return q->queued ? 0 : CAIRN_ENOMEM;
}

static void workq_free(struct pub_workq *q)
{
	for (size_t i = 0; i < q->len; i++)
		free(q->ring[(q->head + i) % q->cap]);
	free(q->ring);
	map_free(q->queued);
}

/* Under q->lock: queue hp unless it is queued (or being worked on) or the
 * queue is full; false when it was not queued. */
bool pub_workq_push_locked(struct pub_workq *q, const char *hp)
{
	if (q->len >= q->max || map_get(q->queued, hp))
		return false;
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		char **r = malloc(cap * sizeof(*r));
		if (!r)
			return false;
		for (size_t i = 0; i < q->len; i++)
			r[i] = q->ring[(q->head + i) % q->cap];
		free(q->ring);
		q->ring = r;
		q->head = 0;
		q->cap = cap;
	}
	char *s = strdup(hp);
	if (!s || map_put(q->queued, hp, (void *)1, NULL) < 0) {
		free(s);
		return false;
	}
	q->ring[(q->head + q->len) % q->cap] = s;
	q->len++;
	pthread_cond_signal(q->cond);
	return true;
}

/* A worker thread's loop: take hash parts in order and work them with fn
 * (outside the lock) until p stops. */
void pub_workq_run(struct cairn_publish *p, struct pub_workq *q,
		      void (*fn)(struct cairn_publish *, const char *))
{
	pthread_mutex_lock(q->lock);
	for (;;) {
		while (!p->stopping && q->len == 0)
			pthread_cond_wait(q->cond, q->lock);
		if (p->stopping)
			break;
		char *hp = q->ring[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		pthread_mutex_unlock(q->lock);
		fn(p, hp);
		pthread_mutex_lock(q->lock);
		map_take(q->queued, hp);
		free(hp);
	}
	pthread_mutex_unlock(q->lock);
}

/* ---- small helpers ------------------------------------------------------ */

static void *verifier(void *arg);

uint64_t pub_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- compression speed ------------------------------------------------- */

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool pub_rate_slow(const struct cairn_publish *p, uint64_t bytes_in, uint64_t cpu_ns)
{
	uint64_t rate = p->cfg.slow_compression_rate;
	if (!rate || bytes_in < CAIRN_PUBLISH_RATE_SAMPLE_MIN || !cpu_ns)
		return false;
	/* bytes_in / (cpu_ns / 1e9) < rate, without overflow */
	return (double)bytes_in * 1e9 < (double)rate * (double)cpu_ns;
}

void pub_meter_flush(struct cairn_publish *p, struct pub_meter *m)
{
	if (!m->in && !m->ns)
		return;
	struct pub_rate *r = &p->rates[m->method];
	uint64_t in = atomic_fetch_add_explicit(&r->bytes_in, m->in, memory_order_relaxed) + m->in;
	uint64_t ns = atomic_fetch_add_explicit(&r->cpu_ns, m->ns, memory_order_relaxed) + m->ns;
	m->in = m->ns = 0;
	if (!pub_rate_slow(p, in, ns) || atomic_exchange(&r->warned, true) || !p->cfg.log)
		return;
	/* once per method and run: the figure only says how the method
	 * behaves here, and it does not change while the server runs */
	char spec[32], msg[512];
	struct cairn_codec_spec cs = {.method = m->method, .level = pub_level(p, m->method)};
	if (cairn_codec_spec_format(&cs, spec, sizeof(spec)) < 0)
		snprintf(spec, sizeof(spec), "%s", cairn_codec_method_name(m->method));
	const char *name = cairn_codec_method_name(m->method);
	snprintf(msg, sizeof(msg),
		 "slow compression: %s compresses %.1f MiB/s of nar per CPU second (over %.1f "
		 "MiB), below %.1f MiB/s (--slow-compression-rate): a client fetching an item "
		 "not baked yet waits at that pace; serve zstd on the fly (first in "
		 "--compression: Nix narinfos name the first method) and keep %s for bakes "
		 "(--cache compresses each item once)",
		 spec, (double)in / (1 << 20) / ((double)ns / 1e9), (double)in / (1 << 20),
		 (double)p->cfg.slow_compression_rate / (1 << 20), name ? name : spec);
	p->cfg.log(p->cfg.log_ctx, msg);
}

int pub_meter_write(struct cairn_publish *p, struct pub_meter *m, struct cairn_codec *c,
		    const void *in, size_t len, cairn_codec_out_fn out, void *ctx,
		    struct cairn_error *err)
{
	uint64_t t0 = thread_cpu_ns();
	int rc = cairn_codec_write(c, in, len, out, ctx, err);
	m->ns += thread_cpu_ns() - t0;
	m->in += len;
	if (m->in >= PUB_METER_FLUSH)
		pub_meter_flush(p, m);
	return rc;
}

int pub_meter_finish(struct cairn_publish *p, struct pub_meter *m, struct cairn_codec *c,
		     cairn_codec_out_fn out, void *ctx, struct cairn_error *err)
{
	uint64_t t0 = thread_cpu_ns();
	int rc = cairn_codec_finish(c, out, ctx, err);
	m->ns += thread_cpu_ns() - t0;
	pub_meter_flush(p, m);
	return rc;
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

void pub_hash32(const struct cairn_hash *h, char out[53])
{
	cairn_nix32_encode(h->digest, 32, out);
	out[52] = '\0';
}

const char *cairn_publish_nar_ext(enum cairn_codec_method m)
{
	switch (m) {
	case CAIRN_CODEC_NONE:
		return "";
	case CAIRN_CODEC_XZ:
		return ".xz";
	case CAIRN_CODEC_ZSTD:
		return ".zst";
	case CAIRN_CODEC_BZIP2:
		return ".bz2";
	case CAIRN_CODEC_GZIP:
		return ".gz";
	case CAIRN_CODEC_LZIP:
		return ".lzip";
	default:
		return NULL;
	}
}

int pub_level(const struct cairn_publish *p, enum cairn_codec_method m)
{
	for (size_t i = 0; i < p->cfg.n_compressions; i++)
		if (p->cfg.compressions[i].method == m)
			return p->cfg.compressions[i].level;
	/*
	 * Not configured: asked for by a client holding an older narinfo.
	 * The fast end of each method (codec.h has the figures), so that a
	 * client cannot make the server spend its CPU on xz -6 or lzip -6.
	 */
	switch (m) {
	case CAIRN_CODEC_XZ:
	case CAIRN_CODEC_GZIP:
	case CAIRN_CODEC_BZIP2:
		return 1;
	case CAIRN_CODEC_LZIP:
		return 0;
	case CAIRN_CODEC_ZSTD:
		return 3;
	default:
		return CAIRN_CODEC_LEVEL_DEFAULT;
	}
}

bool pub_method_allowed(const struct cairn_publish *p, enum cairn_codec_method m)
{
	/* every method, configured or not: a narinfo handed out before a
	 * restart with other methods names URLs that must keep working */
	(void)p;
	return (int)m >= 0 && m < CAIRN_CODEC_METHOD_COUNT_ && cairn_codec_method_name(m) != NULL;
}

int pub_real_path(const struct cairn_publish *p, const char *store_path, char *out, size_t cap)
{
	const char *rest = store_path + p->store_dir_len; /* "/<hash>-<name>" */
	int n = snprintf(out, cap, "%s%s", p->real_store_dir, rest);
	if (n < 0 || (size_t)n >= cap)
		return CAIRN_ELIMIT;
	return 0;
}

/* ---- configuration ------------------------------------------------------ */

void cairn_publish_config_init(struct cairn_publish_config *cfg, enum cairn_storedb_kind kind)
{
	struct cairn_storedb_config db;
	memset(cfg, 0, sizeof(*cfg));
	cairn_storedb_config_init(&db, kind);
	cfg->store_dir = db.store_dir;
	cfg->db_path = db.db_path;
	cfg->dialect = kind == CAIRN_STOREDB_GUIX ? CAIRN_PUBLISH_GUIX : CAIRN_PUBLISH_NIX;
	cfg->compressions[0].method = CAIRN_CODEC_ZSTD;
	cfg->compressions[0].level = 3;
	cfg->n_compressions = 1;
	cfg->ttl = 3600;
	cfg->negative_ttl = 60;
	cfg->priority = 30;
	cfg->bake_workers = 1;
	cfg->slow_compression_rate = CAIRN_PUBLISH_SLOW_RATE;
}

/* ---- database handles -------------------------------------------------- */

static void verified_key(char *key, size_t n, const char *hashpart, const struct cairn_hash *h)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = (size_t)snprintf(key, n, "%.*s:", CAIRN_STORE_HASH_LEN, hashpart);
	for (size_t i = 0; i < h->len && o + 2 < n; i++) {
		key[o++] = hex[h->digest[i] >> 4];
		key[o++] = hex[h->digest[i] & 15];
	}
	key[o < n ? o : n - 1] = '\0';
}

bool pub_nar_verified(struct cairn_publish *p, const char *hashpart, const struct cairn_hash *nar_hash)
{
	char key[CAIRN_STORE_HASH_LEN + 2 + 2 * CAIRN_HASH_MAX_LEN + 1];
	verified_key(key, sizeof(key), hashpart, nar_hash);
	pthread_mutex_lock(&p->memo_lock);
	bool yes = map_get(p->verified, key) != NULL;
	pthread_mutex_unlock(&p->memo_lock);
	return yes;
}

void pub_nar_mark_verified(struct cairn_publish *p, const char *hashpart,
			   const struct cairn_hash *nar_hash)
{
	char key[CAIRN_STORE_HASH_LEN + 2 + 2 * CAIRN_HASH_MAX_LEN + 1];
	verified_key(key, sizeof(key), hashpart, nar_hash);
	pthread_mutex_lock(&p->memo_lock);
	map_take(p->corrupt, key);
	/* a failed insert (no memory) only means hashing again next time */
	(void)map_put(p->verified, key, (void *)1, NULL);
	pthread_mutex_unlock(&p->memo_lock);
}

/* How long a mismatch stands before a request looks again. */
#define CORRUPT_RECHECK_MS 60000

bool pub_nar_corrupt_locked(struct cairn_publish *p, const char *hashpart,
			    const struct cairn_hash *nar_hash)
{
	if (p->corrupt->n == 0)
		return false; /* the usual case, on every narinfo request */
	char key[CAIRN_STORE_HASH_LEN + 2 + 2 * CAIRN_HASH_MAX_LEN + 1];
	verified_key(key, sizeof(key), hashpart, nar_hash);
	return map_get(p->corrupt, key) != NULL;
}

bool pub_nar_corrupt(struct cairn_publish *p, const char *hashpart, const struct cairn_hash *nar_hash,
		     bool *recheck)
{
	char key[CAIRN_STORE_HASH_LEN + 2 + 2 * CAIRN_HASH_MAX_LEN + 1];
	verified_key(key, sizeof(key), hashpart, nar_hash);
	pthread_mutex_lock(&p->memo_lock);
	uintptr_t at = (uintptr_t)map_get(p->corrupt, key);
	pthread_mutex_unlock(&p->memo_lock);
	if (recheck)
		*recheck = at && pub_now_ms() - at >= CORRUPT_RECHECK_MS;
	return at != 0;
}

void pub_nar_mark_corrupt(struct cairn_publish *p, const char *hashpart,
			  const struct cairn_hash *nar_hash, const char *path, const char *why)
{
	char key[CAIRN_STORE_HASH_LEN + 2 + 2 * CAIRN_HASH_MAX_LEN + 1];
	verified_key(key, sizeof(key), hashpart, nar_hash);
	uintptr_t now = (uintptr_t)pub_now_ms() | 1;
	pthread_mutex_lock(&p->memo_lock);
	bool known = map_get(p->corrupt, key) != NULL;
	map_take(p->verified, key);
	/* bounded like the memo: at worst an item is served until checked again */
	if (!known && p->corrupt->n >= CAIRN_PUBLISH_MEMO_MAX)
		map_release(p->corrupt);
	(void)map_put(p->corrupt, key, (void *)now, NULL);
	pthread_mutex_unlock(&p->memo_lock);
	atomic_fetch_add_explicit(&p->m_verify_failures, 1, memory_order_relaxed);
	if (!known && p->cfg.log) {
		char msg[CAIRN_STOREDB_PATH_MAX + 256];
		snprintf(msg, sizeof(msg),
			 "%s does not match its NarHash in the store database (%s): withdrawn "
			 "until it does; repair the store (nix-store --verify --check-contents "
			 "--repair, or guix gc --verify=contents,repair)",
			 path, why);
		p->cfg.log(p->cfg.log_ctx, msg);
	}
}

int pub_db_get(struct cairn_publish *p, struct cairn_storedb **out, struct cairn_error *err)
{
	pthread_mutex_lock(&p->db_lock);
	if (p->n_db_free) {
		*out = p->db_free[--p->n_db_free];
		pthread_mutex_unlock(&p->db_lock);
		return 0;
	}
	pthread_mutex_unlock(&p->db_lock);
	return cairn_storedb_open(out, &p->dbcfg, err);
}

void pub_db_put(struct cairn_publish *p, struct cairn_storedb *db)
{
	if (!db)
		return;
	pthread_mutex_lock(&p->db_lock);
	if (p->n_db_free == p->cap_db_free) {
		size_t cap = p->cap_db_free ? p->cap_db_free * 2 : 8;
		struct cairn_storedb **v =
			cap <= 1024 ? realloc(p->db_free, cap * sizeof(*v)) : NULL;
		if (!v) {
			pthread_mutex_unlock(&p->db_lock);
			cairn_storedb_free(db);
			return;
		}
		p->db_free = v;
		p->cap_db_free = cap;
	}
	p->db_free[p->n_db_free++] = db;
	pthread_mutex_unlock(&p->db_lock);
}

/* ---- background checks ------------------------------------------------- */

void pub_verify_enqueue(struct cairn_publish *p, const char *hashpart)
{
	if (strlen(hashpart) != CAIRN_STORE_HASH_LEN)
		return;
	pthread_mutex_lock(&p->verify_lock);
	if (!p->stopping && !p->verifier_running) {
		if (pthread_create(&p->verifier, NULL, verifier, p) == 0)
			p->verifier_running = true;
	}
	/* without a thread it is checked when asked for again */
	if (!p->stopping && p->verifier_running)
		(void)pub_workq_push_locked(&p->verify_q, hashpart);
	pthread_mutex_unlock(&p->verify_lock);
}

struct vcheck {
	struct cairn_publish *p;
	struct cairn_sha256 sha;
	uint64_t size;
};

static int vcheck_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct vcheck *v = ctx;
	if (v->p->stopping)
		return cairn_error_set(err, CAIRN_ECANCELED, "publish: stopping");
	cairn_sha256_update(&v->sha, data, len);
	v->size += len;
	return 0;
}

static void verify_item(struct cairn_publish *p, const char *hp)
{
	char real[CAIRN_STOREDB_PATH_MAX + CAIRN_STOREDB_DIR_MAX + 8];
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	struct vcheck v = {.p = p};
	struct cairn_hash h = {.algo = CAIRN_HASH_SHA256, .len = 32};
	struct cairn_error err;

	cairn_error_init(&err);
	if (pub_db_get(p, &db, NULL) < 0)
		return;
	int rc = cairn_storedb_query_hashpart(db, hp, &pi, NULL);
	pub_db_put(p, db);
	if (rc < 0)
		return; /* no longer valid: nothing to withdraw */
	if (pub_nar_verified(p, hp, &pi.nar_hash) ||
	    pub_real_path(p, pi.path, real, sizeof(real)) < 0 || cairn_sha256_init(&v.sha) < 0)
		goto out;
	rc = cairn_nar_dump_path(real, vcheck_nar, &v, &err);
	cairn_sha256_final(&v.sha, h.digest);
	/* unreadable, or deleted while read: no verdict; asked again, checked again */
	if (rc < 0)
		goto out;
	if (v.size != pi.nar_size) {
		pub_nar_mark_corrupt(p, hp, &pi.nar_hash, pi.path, "its nar has another size");
	} else if (!cairn_hash_equal(&h, &pi.nar_hash)) {
		pub_nar_mark_corrupt(p, hp, &pi.nar_hash, pi.path, "its nar has another SHA-256");
	} else {
		pub_nar_mark_verified(p, hp, &pi.nar_hash);
		atomic_fetch_add_explicit(&p->m_verified, 1, memory_order_relaxed);
	}
out:
	cairn_storedb_pathinfo_release(&pi);
}

static void *verifier(void *arg)
{
	struct cairn_publish *p = arg;
	/*
	 * Only spare time: a check is never urgent (the client checks NarHash
	 * itself), and it must not slow the streams it follows.  Both calls
	 * are Linux's and may fail harmlessly (then it runs at normal
	 * priority).
	 */
	struct sched_param sp = {0};
	(void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	(void)syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS: 0 is this thread */, 0,
		      3 << 13 /* IOPRIO_CLASS_IDLE */);
	pub_workq_run(p, &p->verify_q, verify_item);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

bool pub_stream_enter(struct cairn_publish *p)
{
	bool ok;
	pthread_mutex_lock(&p->streams_lock);
	ok = p->n_streams < CAIRN_PUBLISH_STREAMS_MAX;
	if (ok)
		p->n_streams++;
	pthread_mutex_unlock(&p->streams_lock);
	return ok;
}

void pub_stream_leave(struct cairn_publish *p)
{
	pthread_mutex_lock(&p->streams_lock);
	if (--p->n_streams == 0)
		pthread_cond_broadcast(&p->streams_cond);
	pthread_mutex_unlock(&p->streams_lock);
}

int cairn_publish_new(struct cairn_publish **out, const struct cairn_publish_config *cfg,
		      struct cairn_error *err)
{
	struct cairn_publish *p;
	struct cairn_storedb *db = NULL;
	int rc;

	if (!cfg->store_dir || !cfg->db_path || cfg->n_compressions == 0 ||
	    cfg->n_compressions > CAIRN_CODEC_LIST_MAX || cfg->n_keys > CAIRN_PUBLISH_MAX_KEYS)
		return cairn_error_set(err, CAIRN_EINVAL, "publish: incomplete configuration");
	if ((rc = cairn_store_dir_check(cfg->store_dir, strlen(cfg->store_dir), err)) < 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	p->cfg = *cfg;
	pthread_mutex_init(&p->db_lock, NULL);
	pthread_mutex_init(&p->memo_lock, NULL);
	pthread_mutex_init(&p->cache_lock, NULL);
	pthread_cond_init(&p->cache_cond, NULL);
	pthread_mutex_init(&p->streams_lock, NULL);
	pthread_cond_init(&p->streams_cond, NULL);
	pthread_mutex_init(&p->verify_lock, NULL);
	pthread_cond_init(&p->verify_cond, NULL);
	p->store_dir = xstrdup(cfg->store_dir);
	p->real_store_dir = xstrdup(cfg->real_store_dir ? cfg->real_store_dir : cfg->store_dir);
	p->db_path = xstrdup(cfg->db_path);
	p->log_dir = xstrdup(cfg->log_dir);
	p->cache_dir = xstrdup(cfg->cache_dir);
	if (cfg->host) {
		p->host = xstrdup(cfg->host);
	} else {
		char h[256] = "localhost";
		if (gethostname(h, sizeof(h) - 1) < 0 || !h[0])
			snprintf(h, sizeof(h), "localhost");
		h[sizeof(h) - 1] = '\0';
		p->host = xstrdup(h);
	}
	p->memo = map_new(free);
	p->by_narhash = map_new(free);
	p->verified = map_new(NULL);
	p->corrupt = map_new(NULL);

	p->baked = map_new(NULL);
	p->by_file = map_new(NULL);
	p->inflight = map_new(NULL);
	p->raw = map_new(free);
	if (!p->raw || !p->store_dir || !p->real_store_dir || !p->db_path || !p->host || !p->memo ||
	    !p->by_narhash || !p->verified || !p->corrupt ||
	    workq_init(&p->verify_q, &p->verify_lock, &p->verify_cond,
		       CAIRN_PUBLISH_VERIFY_QUEUE_MAX) < 0 ||
	    workq_init(&p->bake_q, &p->cache_lock, &p->cache_cond, CAIRN_PUBLISH_BAKE_QUEUE_MAX) <
		0 ||
	    !p->baked || !p->by_file || !p->inflight ||
	    (cfg->log_dir && !p->log_dir) || (cfg->cache_dir && !p->cache_dir)) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
		goto fail;
	}
	p->store_dir_len = strlen(p->store_dir);
	p->cfg.store_dir = p->store_dir;
	p->cfg.real_store_dir = p->real_store_dir;
	p->cfg.db_path = p->db_path;
	p->cfg.log_dir = p->log_dir;
	p->cfg.cache_dir = p->cache_dir;
	p->cfg.host = p->host;

	p->dbcfg.store_dir = p->store_dir;
	p->dbcfg.db_path = p->db_path;
	p->dbcfg.busy_timeout_ms = CAIRN_STOREDB_BUSY_TIMEOUT_MS;
	p->dbcfg.flags = CAIRN_STOREDB_IMMUTABLE_FALLBACK;
	/* a store directory that is not there would make every nar a 404 */
	struct stat sb;
	int serr = stat(p->real_store_dir, &sb) < 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
	if (serr) {
		rc = cairn_error_errno(err, serr, "publish: store directory '%s'",
				       p->real_store_dir);
		goto fail;
	}
	/* open one handle now: a wrong --db is a startup error, not a 500 */
	if ((rc = cairn_storedb_open(&db, &p->dbcfg, err)) < 0)
		goto fail;
	/* an empty store answers every request with 404, as a cache miss
	 * would: the operator hears it now, not from puzzled clients */
	char *any = NULL;
	if (p->cfg.log && cairn_storedb_recent_path(db, &any, NULL) == CAIRN_ENOENT) {
		char msg[CAIRN_STOREDB_PATH_MAX + 160];
		snprintf(msg, sizeof(msg),
			 "the store database '%s' holds no valid path: every narinfo is a 404 "
			 "until paths are added (is it the right store?)",
			 p->db_path);
		p->cfg.log(p->cfg.log_ctx, msg);
	}
	free(any);
	pub_db_put(p, db);
	if ((rc = pub_make_pubkeys(p, err)) < 0)
		goto fail;

	if (p->cache_dir && (rc = pub_cache_open(p, err)) < 0)
		goto fail;
	if (p->cfg.ipfs && (rc = pub_ipfs_open(p, err)) < 0)
		goto fail;
	*out = p;
	return 0;
fail:
	cairn_publish_free(p);
	return rc;
}

void cairn_publish_free(struct cairn_publish *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->cache_lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cache_cond);
	pthread_mutex_unlock(&p->cache_lock);
	for (size_t i = 0; i < p->n_bakers; i++)
		pthread_join(p->bakers[i], NULL);
	free(p->bakers);
	pthread_mutex_lock(&p->verify_lock);
	pthread_cond_broadcast(&p->verify_cond);
	pthread_mutex_unlock(&p->verify_lock);
	if (p->verifier_running)
		pthread_join(p->verifier, NULL);
	workq_free(&p->verify_q);
	/* producers still running hold p; a narinfo's indexing pass ends now */
	ipfs_gw_stop(p->gw);
	pthread_mutex_lock(&p->streams_lock);
	while (p->n_streams)
		pthread_cond_wait(&p->streams_cond, &p->streams_lock);
	pthread_mutex_unlock(&p->streams_lock);
	ipfs_gw_free(p->gw);
	/* only now: a stream or a narinfo's thread may still mark or ask an
	 * item corrupt until it ends */
	map_free(p->corrupt);

	workq_free(&p->bake_q);
	struct map_iter it;
	if (p->by_file) /* ghosts are only there */
		for (struct map_ent *e = map_iter_first(&it, p->by_file); e; e = map_iter_next(&it))
			if (((struct pub_baked *)e->val)->ghost)
				free(e->val);
	if (p->baked) {
		for (struct map_ent *e = map_iter_first(&it, p->baked); e; e = map_iter_next(&it))
			free(e->val);
	}
	map_free(p->baked);
	map_free(p->by_file);
	map_free(p->inflight); /* empty: every bake thread has ended */
	map_free(p->raw);
	map_free(p->memo);
	map_free(p->verified);
	map_free(p->by_narhash);
	for (size_t i = 0; i < p->n_db_free; i++)
		cairn_storedb_free(p->db_free[i]);
	free(p->db_free);
	narcache_free(p->nc);
	free(p->store_dir);
	free(p->real_store_dir);
	free(p->db_path);
	free(p->log_dir);
	free(p->cache_dir);
	free(p->host);
	free(p->nix_keys);
	free(p->guix_key);
	pthread_mutex_destroy(&p->db_lock);
	pthread_mutex_destroy(&p->memo_lock);
	pthread_mutex_destroy(&p->cache_lock);
	pthread_cond_destroy(&p->cache_cond);
	pthread_mutex_destroy(&p->streams_lock);
	pthread_cond_destroy(&p->streams_cond);
	pthread_mutex_destroy(&p->verify_lock);
	pthread_cond_destroy(&p->verify_cond);
	free(p);
}
