/*
 * publish.c - narinfos for a local store, the memo of signed narinfos, the
 * index of baked files and its bakers; the files themselves are in the nar
 * cache (narcache.h).  The HTTP side is lib/publish-http.c; the URL space
 * and the cache layout are described in include/cairn/publish.h.
 *
 * Locks: db_lock guards the pool of database handles, memo_lock the memo
 * and the NarHash index, cache_lock the baked files' index, the nar cache
 * under it (narcache.h: one lock for a file and its record) and the queue.
 * The only nesting is memo_lock inside cache_lock (a file baked or evicted
 * makes the remembered narinfo stale); no lock is held across a database
 * query or a signature.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "cairn/narinfo.h"
#include "cairn/storepath.h"
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
static bool workq_push_locked(struct pub_workq *q, const char *hp)
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
static void workq_run(struct cairn_publish *p, struct pub_workq *q,
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
static bool pin_locked(struct cairn_publish *p, const struct pub_baked *b);

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

static void hash32(const struct cairn_hash *h, char out[53])
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

static bool corrupt_locked(struct cairn_publish *p, const char *hashpart,
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

/* ---- narinfo ------------------------------------------------------------ */

int cairn_publish_make_narinfo(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			       enum cairn_publish_dialect dialect,
			       const struct cairn_codec_spec *compressions, size_t n_compressions,
			       const struct cairn_publish_file *baked, struct cairn_narinfo **out,
			       struct cairn_error *err)
{
	struct cairn_narinfo *ni = NULL;
	size_t dl = strlen(store_dir);
	char url[CAIRN_STOREDB_PATH_MAX + 128];
	int rc;

	if (n_compressions == 0 || strncmp(pi->path, store_dir, dl) != 0 || pi->path[dl] != '/')
		return cairn_error_set(err, CAIRN_EINVAL, "publish: '%s' is not in '%s'", pi->path,
				       store_dir);
	const char *base = pi->path + dl + 1;
	if ((rc = cairn_narinfo_new(pi->path, &pi->nar_hash, pi->nar_size, &ni, err)) < 0)
		return rc;
	for (size_t i = 0; i < pi->nrefs; i++) {
		const char *r = pi->refs[i];
		if (strncmp(r, store_dir, dl) != 0 || r[dl] != '/') {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "publish: reference '%s' is not in '%s'", r,
					     store_dir);
			goto out;
		}
		if ((rc = cairn_narinfo_add_ref(ni, r + dl + 1, err)) < 0)
			goto out;
	}

	if (dialect == CAIRN_PUBLISH_NIX) {
		enum cairn_codec_method m = compressions[0].method;
		const char *name = cairn_codec_method_name(m);
		if (baked && baked[0].has_file) {
			char fh[53];
			hash32(&baked[0].file_hash, fh);
			snprintf(url, sizeof(url), "nar/%s.nar%s", fh, cairn_publish_nar_ext(m));
			rc = cairn_narinfo_add_url(ni, url, name, &baked[0].file_hash,
						   (int64_t)baked[0].file_size, err);
		} else {
			char nh[53], hp[33];
			hash32(&pi->nar_hash, nh);
			memcpy(hp, base, 32);
			hp[32] = '\0';
			snprintf(url, sizeof(url), "nar/%s.nar%s?hash=%s", nh,
				 cairn_publish_nar_ext(m), hp);
			rc = cairn_narinfo_add_url(ni, url, name, NULL, -1, err);
		}
		if (rc < 0)
			goto out;
	}
	/* Guix: the URL groups follow the Signature (cairn_publish_guix_groups) */

	if (pi->deriver) {
		if (strncmp(pi->deriver, store_dir, dl) != 0 || pi->deriver[dl] != '/') {
			rc = cairn_error_set(err, CAIRN_EFORMAT,
					     "publish: deriver '%s' is not in '%s'", pi->deriver,
					     store_dir);
			goto out;
		}
		if ((rc = cairn_narinfo_set_deriver(ni, pi->deriver + dl + 1, err)) < 0)
			goto out;
	}
	if (dialect == CAIRN_PUBLISH_NIX) {
		for (size_t i = 0; i < pi->nsigs; i++)
			if ((rc = cairn_narinfo_add_sig(ni, pi->sigs[i], err)) < 0)
				goto out;
		if (pi->ca && (rc = cairn_narinfo_set_ca(ni, pi->ca, err)) < 0)
			goto out;
	}
	*out = ni;
	ni = NULL;
	rc = 0;
out:
	cairn_narinfo_free(ni);
	return rc;
}

int cairn_publish_guix_groups(const struct cairn_storedb_pathinfo *pi, const char *store_dir,
			      const struct cairn_codec_spec *compressions, size_t n_compressions,
			      const struct cairn_publish_file *baked, struct cairn_buf *out)
{
	size_t dl = strlen(store_dir);
	const char *base = pi->path + dl + 1;
	bool sizes = true;
	int rc = 0;
	if (strlen(pi->path) <= dl + 1)
		return CAIRN_EINVAL;
	/* every size or none: Guix pairs them with the URLs by position */
	for (size_t i = 0; i < n_compressions; i++)
		if (compressions[i].method != CAIRN_CODEC_NONE && !(baked && baked[i].has_file))
			sizes = false;
	for (size_t i = 0; rc == 0 && i < n_compressions; i++) {
		enum cairn_codec_method m = compressions[i].method;
		const char *name = cairn_codec_method_name(m);
		if (m == CAIRN_CODEC_NONE)
			rc = cairn_buf_printf(out, "URL: nar/%s\nCompression: none\n", base);
		else
			rc = cairn_buf_printf(out, "URL: nar/%s/%s\nCompression: %s\n", name, base,
					      name);
		if (rc == 0 && sizes)
			rc = cairn_buf_printf(out, "FileSize: %llu\n",
					      (unsigned long long)(m == CAIRN_CODEC_NONE
									   ? pi->nar_size
									   : baked[i].file_size));
	}
	return rc;
}

/* A remembered narinfo: valid while the row, the baked files and what is
 * offered are those it was made from. */
struct memo {
	struct cairn_hash nar_hash;
	int64_t registration_time;
	size_t nsigs;
	bool raw; /* offered uncompressed only */
	struct cairn_publish_file files[CAIRN_CODEC_LIST_MAX];
	unsigned max_age;
	uint64_t checked; /* ms */
	size_t len;
	char text[];
};

/* The files baked for an item, in the order of the methods offered. */
static void baked_files(struct cairn_publish *p, const char *hashpart,
			const struct cairn_hash *nar_hash, const struct cairn_codec_spec *offered,
			size_t n_offered, struct cairn_publish_file *files)
{
	memset(files, 0, sizeof(*files) * CAIRN_CODEC_LIST_MAX);
	if (!p->nc)
		return;
	pthread_mutex_lock(&p->cache_lock);
	for (size_t i = 0; i < n_offered; i++) {
		char key[48];
		snprintf(key, sizeof(key), "%s.%s", hashpart,
			 cairn_codec_method_name(offered[i].method));
		const struct pub_baked *b = map_get(p->baked, key);
		if (b && cairn_hash_equal(&b->nar_hash, nar_hash)) {
			files[i].has_file = true;
			files[i].file_hash = b->file_hash;
			files[i].file_size = b->file_size;
		}
	}
	pthread_mutex_unlock(&p->cache_lock);
}

static bool files_equal(const struct cairn_publish_file *a, const struct cairn_publish_file *b,
			size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (a[i].has_file != b[i].has_file)
			return false;
		if (a[i].has_file && (a[i].file_size != b[i].file_size ||
				      !cairn_hash_equal(&a[i].file_hash, &b[i].file_hash)))
			return false;
	}
	return true;
}

/* Is every compressed method the narinfo names baked (its final form)? */
static bool all_baked(const struct cairn_publish *p, const struct cairn_codec_spec *offered,
		      size_t n_offered, const struct cairn_publish_file *files)
{
	size_t n = p->cfg.dialect == CAIRN_PUBLISH_NIX ? 1 : n_offered;
	for (size_t i = 0; i < n; i++)
		if (!files[i].has_file && offered[i].method != CAIRN_CODEC_NONE)
			return false;
	return true;
}

/* How long a remembered narinfo is served without looking at the database. */
#define MEMO_RECHECK_MS 1000

int cairn_publish_narinfo(struct cairn_publish *p, const char *hashpart, size_t len,
			  struct cairn_buf *out, unsigned *max_age, struct cairn_error *err)
{
	char hp[33];
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	struct cairn_narinfo *ni = NULL;
	struct cairn_buf text = CAIRN_BUF_INIT(CAIRN_NARINFO_MAX);
	struct cairn_publish_file files[CAIRN_CODEC_LIST_MAX];
	struct cairn_codec_spec offered[CAIRN_CODEC_LIST_MAX];
	size_t n_offered;
	bool raw;
	unsigned age;
	struct memo *m;
	int rc;

	if (!cairn_store_hash_valid(hashpart, len))
		return cairn_error_set(err, CAIRN_EFORMAT, "publish: '%.*s' is not a hash part",
				       (int)(len > 40 ? 40 : len), hashpart);
	memcpy(hp, hashpart, 32);
	hp[32] = '\0';

	uint64_t now = pub_now_ms();
	pthread_mutex_lock(&p->memo_lock);
	m = map_get(p->memo, hp);
	if (m && now - m->checked < MEMO_RECHECK_MS && !corrupt_locked(p, hp, &m->nar_hash)) {
		rc = cairn_buf_append(out, m->text, m->len);
		if (max_age)
			*max_age = m->max_age;
		pthread_mutex_unlock(&p->memo_lock);
		atomic_fetch_add_explicit(&p->m_memo_hits, 1, memory_order_relaxed);
		return rc;
	}
	pthread_mutex_unlock(&p->memo_lock);

	if ((rc = pub_db_get(p, &db, err)) < 0)
		goto out;
	if ((rc = cairn_storedb_query_hashpart(db, hp, &pi, err)) < 0) {
		if (rc == CAIRN_ENOENT) {
			pthread_mutex_lock(&p->memo_lock);
			free(map_take(p->memo, hp));
			pthread_mutex_unlock(&p->memo_lock);
		}
		goto out;
	}
	bool recheck;
	if (pub_nar_corrupt(p, hp, &pi.nar_hash, &recheck)) {
		if (recheck)
			pub_verify_enqueue(p, hp);
		rc = cairn_error_set(err, CAIRN_ENOENT,
				     "publish: '%s' is withdrawn: its bytes do not match its NarHash",
				     pi.path);
		goto out;
	}
	n_offered = pub_offered(p, pi.path, &pi.nar_hash, offered, &raw);
	baked_files(p, hp, &pi.nar_hash, offered, n_offered, files);
	/* with a cache, a narinfo that is not in its final form is temporary */
	age = p->cfg.ttl;
	if (p->nc && !all_baked(p, offered, n_offered, files) &&
	    age > CAIRN_PUBLISH_TEMP_TTL)
		age = CAIRN_PUBLISH_TEMP_TTL;
	if (max_age)
		*max_age = age;

	/* the same row and files as last time: the signed text still holds */
	pthread_mutex_lock(&p->memo_lock);
	m = map_get(p->memo, hp);
	if (m && cairn_hash_equal(&m->nar_hash, &pi.nar_hash) &&
	    m->registration_time == pi.registration_time && m->nsigs == pi.nsigs &&
	    m->raw == raw && files_equal(m->files, files, CAIRN_CODEC_LIST_MAX)) {
		m->checked = now;
		m->max_age = age;
		rc = cairn_buf_append(out, m->text, m->len);
		pthread_mutex_unlock(&p->memo_lock);
		atomic_fetch_add_explicit(&p->m_memo_hits, 1, memory_order_relaxed);
		goto queue;
	}
	pthread_mutex_unlock(&p->memo_lock);
	atomic_fetch_add_explicit(&p->m_memo_misses, 1, memory_order_relaxed);

	if ((rc = cairn_publish_make_narinfo(&pi, p->store_dir, p->cfg.dialect, offered,
					     n_offered, files, &ni, err)) < 0)
		goto out;
	/* Nix keys first: a Sig added after Guix's Signature would change the
	 * text that Signature covers */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < p->cfg.n_keys; i++) {
			const struct cairn_seckey *k = p->cfg.keys[i];
			if ((pass == 0) != (k->kind == CAIRN_KEY_NIX))
				continue;
			if ((rc = cairn_narinfo_sign(ni, k, p->host, err)) < 0)
				goto out;
			atomic_fetch_add_explicit(&p->m_signed, 1, memory_order_relaxed);
		}
	if ((rc = cairn_narinfo_print(ni, &text, err)) < 0)
		goto out;
	if (p->cfg.dialect == CAIRN_PUBLISH_GUIX &&
	    (rc = cairn_publish_guix_groups(&pi, p->store_dir, offered, n_offered, files,
					    &text)) < 0) {
		cairn_error_set(err, rc, "publish: narinfo too large");
		goto out;
	}
	if ((rc = cairn_buf_append(out, text.data, text.len)) < 0)
		goto out;

	m = malloc(sizeof(*m) + text.len + 1);
	if (m) {
		m->nar_hash = pi.nar_hash;
		m->registration_time = pi.registration_time;
		m->nsigs = pi.nsigs;
		m->raw = raw;
		memcpy(m->files, files, sizeof(files));
		m->max_age = age;
		m->checked = now;
		m->len = text.len;
		memcpy(m->text, text.data, text.len + 1);
		char nh[53];
		hash32(&pi.nar_hash, nh);
		char *hpcopy = strdup(hp);
		pthread_mutex_lock(&p->memo_lock);
		if (p->memo->n >= CAIRN_PUBLISH_MEMO_MAX) {
			map_release(p->memo);
			map_release(p->by_narhash);
		}
		if (map_put(p->memo, hp, m, NULL) < 0)
			free(m);
		if (!hpcopy || map_put(p->by_narhash, nh, hpcopy, NULL) < 0)
			free(hpcopy);
		pthread_mutex_unlock(&p->memo_lock);
	}
queue:
	if (p->nc && !all_baked(p, offered, n_offered, files))
		pub_bake_enqueue(p, hp);
	rc = 0;
out:
	cairn_narinfo_free(ni);
	cairn_buf_release(&text);
	cairn_storedb_pathinfo_release(&pi);
	pub_db_put(p, db);
	return rc;
}

int cairn_publish_cache_info(struct cairn_publish *p, struct cairn_buf *out)
{
	return cairn_buf_printf(out, "StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n",
				p->store_dir, p->cfg.priority);
}

int cairn_publish_public_keys(struct cairn_publish *p, int kind, struct cairn_buf *out)
{
	if (kind == 0)
		kind = p->cfg.dialect == CAIRN_PUBLISH_GUIX ? CAIRN_KEY_GUIX : CAIRN_KEY_NIX;
	if (kind == CAIRN_KEY_GUIX)
		return p->guix_key_len ? cairn_buf_append(out, p->guix_key, p->guix_key_len) : 0;
	return p->nix_keys_len ? cairn_buf_append(out, p->nix_keys, p->nix_keys_len) : 0;
}

/*
 * The served forms of the public keys.  They are kept apart because no
 * client reads a mixed file: `guix archive --authorize` takes one
 * s-expression and fails on a Nix line before it, and Nix reads
 * name:base64 only.  At most one Guix key: a narinfo has one Signature.
 */
static int make_pubkeys(struct cairn_publish *p, struct cairn_error *err)
{
	struct cairn_buf nix = CAIRN_BUF_INIT(1 << 20);
	struct cairn_buf guix = CAIRN_BUF_INIT(CAIRN_GUIX_SEXP_MAX);
	size_t n_guix = 0;
	int rc = 0;
	for (size_t i = 0; i < p->cfg.n_keys && rc == 0; i++) {
		const struct cairn_seckey *k = p->cfg.keys[i];
		if (k->kind == CAIRN_KEY_NIX) {
			struct cairn_nix_pubkey pk;
			cairn_nix_seckey_public(&k->u.nix, &pk);
			rc = cairn_nix_pubkey_format(&pk, &nix);
			if (rc == 0)
				rc = cairn_buf_putc(&nix, '\n');
		} else if (k->kind == CAIRN_KEY_GUIX && n_guix++ == 0) {
			struct cairn_guix_pubkey pk;
			cairn_guix_seckey_public(&k->u.guix, &pk);
			rc = cairn_guix_pubkey_format(&pk, &guix);
		}
	}
	if (rc == 0 && n_guix > 1)
		rc = cairn_error_set(err, CAIRN_EINVAL,
				     "publish: %zu Guix keys given, but a Guix narinfo carries one "
				     "Signature: give one",
				     n_guix);
	else if (rc < 0)
		rc = cairn_error_set(err, rc, "publish: cannot format the public keys");
	if (rc == 0) {
		p->nix_keys = cairn_buf_steal(&nix, &p->nix_keys_len);
		p->guix_key = cairn_buf_steal(&guix, &p->guix_key_len);
		if (!p->nix_keys || !p->guix_key)
			rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	}
	cairn_buf_release(&nix);
	cairn_buf_release(&guix);
	return rc;
}

/* ---- nar URLs ----------------------------------------------------------- */

static bool nix32_ok(const char *s, size_t n)
{
	static const char alpha[] = "0123456789abcdfghijklmnpqrsvwxyz";
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !memchr(alpha, s[i], sizeof(alpha) - 1))
			return false;
	return true;
}

int cairn_publish_parse_nar_url(const char *s, size_t len, struct cairn_publish_nar_url *out,
				struct cairn_error *err)
{
	struct cairn_publish_nar_url u;
	const char *q = memchr(s, '?', len);
	size_t plen = q ? (size_t)(q - s) : len;

	memset(&u, 0, sizeof(u));
	if (q) {
		/* the only query cairn writes: hash=<hashpart> */
		const char *qs = q + 1;
		size_t ql = len - plen - 1;
		if (ql == 5 + 32 && memcmp(qs, "hash=", 5) == 0 && nix32_ok(qs + 5, 32)) {
			memcpy(u.hashpart, qs + 5, 32);
		}
	}
	if (plen > 56 && memcmp(s + 52, ".nar", 4) == 0 && nix32_ok(s, 52)) {
		/* <hash>.nar<ext> */
		const char *ext = s + 56;
		size_t el = plen - 56;
		static const struct {
			const char *ext;
			enum cairn_codec_method m;
		} exts[] = {
			{"", CAIRN_CODEC_NONE},	      {".xz", CAIRN_CODEC_XZ},
			{".zst", CAIRN_CODEC_ZSTD},   {".bz2", CAIRN_CODEC_BZIP2},
			{".gz", CAIRN_CODEC_GZIP},    {".lzip", CAIRN_CODEC_LZIP},
			{".lz", CAIRN_CODEC_LZIP},
		};
		for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
			if (strlen(exts[i].ext) == el && memcmp(exts[i].ext, ext, el) == 0) {
				u.method = exts[i].m;
				u.by_hash = true;
				memcpy(u.hash, s, 52);
				*out = u;
				return 0;
			}
		return cairn_error_set(err, CAIRN_EUNSUPPORTED, "publish: unknown nar suffix");
	}
	if (plen == 56 && memcmp(s + 52, ".nar", 4) == 0 && nix32_ok(s, 52)) {
		u.method = CAIRN_CODEC_NONE;
		u.by_hash = true;
		memcpy(u.hash, s, 52);
		*out = u;
		return 0;
	}
	/* Guix: [<method>/]<basename> */
	const char *slash = memchr(s, '/', plen);
	const char *base = s;
	size_t blen = plen;
	u.method = CAIRN_CODEC_NONE;
	if (slash) {
		int rc = cairn_codec_method_parse(s, (size_t)(slash - s), &u.method, err);
		if (rc < 0)
			return rc;
		u.method_named = true;
		base = slash + 1;
		blen = plen - (size_t)(base - s);
	}
	struct cairn_store_path sp;
	if (blen >= sizeof(u.basename) || cairn_store_path_parse_base(base, blen, &sp, err) < 0)
		return cairn_error_set(err, CAIRN_EFORMAT, "publish: not a nar url");
	memcpy(u.basename, base, blen);
	u.basename[blen] = '\0';
	memcpy(u.hashpart, sp.hash, 32);
	u.hashpart[32] = '\0';
	*out = u;
	return 0;
}

int pub_resolve_nar(struct cairn_publish *p, const struct cairn_publish_nar_url *u,
		    struct cairn_storedb_pathinfo *pi, struct pub_baked *baked_out, bool *is_baked,
		    struct cairn_error *err)
{
	struct cairn_storedb *db = NULL;
	char hp[33] = "";
	struct cairn_hash ghost_nh;
	bool ghost = false;
	int rc;

	*is_baked = false;
	if (u->by_hash && p->nc) {
		pthread_mutex_lock(&p->cache_lock);
		struct pub_baked *b = map_get(p->by_file, u->hash);
		if (b && b->method == u->method && !b->ghost && pin_locked(p, b)) {
			*baked_out = *b;
			*is_baked = true;
		} else if (b && b->method == u->method) {
			/* a ghost (or a file gone under it): the item itself */
			memcpy(hp, b->hashpart, 33);
			ghost_nh = b->nar_hash;
			ghost = true;
		}
		pthread_mutex_unlock(&p->cache_lock);
		if (*is_baked)
			return 0;
	}
	if (ghost) {
		/* hp from the ghost */
	} else if (u->hashpart[0]) {
		memcpy(hp, u->hashpart, 33);
	} else if (u->by_hash) {
		pthread_mutex_lock(&p->memo_lock);
		const char *h = map_get(p->by_narhash, u->hash);
		if (h)
			memcpy(hp, h, 33);
		pthread_mutex_unlock(&p->memo_lock);
		if (!hp[0])
			return cairn_error_set(err, CAIRN_ENOENT, "publish: unknown nar hash");
	}
	if ((rc = pub_db_get(p, &db, err)) < 0)
		return rc;
	rc = cairn_storedb_query_hashpart(db, hp, pi, err);
	pub_db_put(p, db);
	if (rc < 0)
		return rc;
	if (ghost) {
		/* an evicted file's URL: the same item, unchanged since */
		if (!cairn_hash_equal(&pi->nar_hash, &ghost_nh)) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT,
					       "publish: '%s' changed since that file", hp);
		}
	} else if (u->by_hash) {
		char nh[53];
		hash32(&pi->nar_hash, nh);
		if (strcmp(nh, u->hash) != 0) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT,
					       "publish: the nar hash is not that of '%s'", hp);
		}
	} else {
		const char *base = pi->path + p->store_dir_len + 1;
		if (strcmp(base, u->basename) != 0) {
			cairn_storedb_pathinfo_release(pi);
			return cairn_error_set(err, CAIRN_ENOENT, "publish: no item '%s'",
					       u->basename);
		}
	}
	return 0;
}

/* ---- the index of baked files ----------------------------------------- */

static void baked_key(char *key, size_t cap, const char *hashpart, enum cairn_codec_method m)
{
	snprintf(key, cap, "%s.%s", hashpart, cairn_codec_method_name(m));
}

/* The name of b's file in the nar cache. */
static void baked_name(char *name, size_t cap, const struct pub_baked *b)
{
	snprintf(name, cap, "%s.nar%s", b->file_hash32, cairn_publish_nar_ext(b->method));
}

/* Under cache_lock: pin b's file for a reader (and count it as used now);
 * false when it went. */
static bool pin_locked(struct cairn_publish *p, const struct pub_baked *b)
{
	char name[NARCACHE_NAME_MAX + 1];
	baked_name(name, sizeof(name), b);
	return narcache_touch(p->nc, name) && narcache_pin(p->nc, name);
}

void pub_baked_unpin(struct cairn_publish *p, const struct pub_baked *b)
{
	char name[NARCACHE_NAME_MAX + 1];
	baked_name(name, sizeof(name), b);
	pthread_mutex_lock(&p->cache_lock);
	narcache_unpin(p->nc, name);
	/* the pin may have held the cache over its bound */
	if (narcache_over(p->nc))
		(void)narcache_trim(p->nc, 0, NULL, NULL);
	pthread_mutex_unlock(&p->cache_lock);
}

/* The narinfo of hp changes (a file was baked or dropped). */
static void memo_forget(struct cairn_publish *p, const char *hp)
{
	pthread_mutex_lock(&p->memo_lock);
	free(map_take(p->memo, hp));
	pthread_mutex_unlock(&p->memo_lock);
}

/*
 * Called with cache_lock held: forget b (its file is gone, or going).
 * With ghost, b stays findable by its file hash (and its info file stays),
 * so that the URL of a narinfo handed out earlier keeps working after
 * eviction.
 */
static void cache_forget_locked(struct cairn_publish *p, struct pub_baked *b, bool ghost)
{
	char key[48], name[128];
	baked_key(key, sizeof(key), b->hashpart, b->method);
	if (map_get(p->baked, key) == b)
		map_take(p->baked, key);
	memo_forget(p, b->hashpart);
	atomic_fetch_add_explicit(&p->m_evicted, 1, memory_order_relaxed);
	if (ghost && map_get(p->by_file, b->file_hash32) == b) {
		b->ghost = true;
		return;
	}
	if (map_get(p->by_file, b->file_hash32) == b)
		map_take(p->by_file, b->file_hash32);
	snprintf(name, sizeof(name), "info/%s", key);
	unlinkat(narcache_dir_fd(p->nc), name, 0);
	free(b);
}

/*
 * The nar cache evicts the file `name` (cache_lock held by whoever
 * trims): every record of it becomes a ghost, or goes.  Two items whose
 * compressed nars are the same bytes share one file.
 */
static int cache_evict(void *ctx, const char *name)
{
	struct cairn_publish *p = ctx;
	struct map_iter it;
	for (struct map_ent *e = map_iter_first(&it, p->baked); e; e = map_iter_next(&it)) {
		char n[NARCACHE_NAME_MAX + 1];
		struct pub_baked *b = e->val;
		baked_name(n, sizeof(n), b);
		if (!strcmp(n, name))
			cache_forget_locked(p, b, true);
	}
	return 0;
}

bool pub_baked_lookup(struct cairn_publish *p, const char *hashpart, enum cairn_codec_method m,
		      const struct cairn_hash *nar_hash, struct pub_baked *out)
{
	char key[48];
	bool found = false;
	if (!p->nc || m == CAIRN_CODEC_NONE)
		return false;
	snprintf(key, sizeof(key), "%.32s.%s", hashpart, cairn_codec_method_name(m));
	pthread_mutex_lock(&p->cache_lock);
	struct pub_baked *b = map_get(p->baked, key);
	if (b && cairn_hash_equal(&b->nar_hash, nar_hash) && pin_locked(p, b)) {
		*out = *b;
		found = true;
	}
	pthread_mutex_unlock(&p->cache_lock);
	return found;
}

/* Called with cache_lock held: record b, whose file the nar cache holds. */
static int cache_add_locked(struct cairn_publish *p, struct pub_baked *b)
{
	char key[48];
	baked_key(key, sizeof(key), b->hashpart, b->method);
	struct pub_baked *old = map_get(p->baked, key);
	if (old && strcmp(old->file_hash32, b->file_hash32) == 0) {
		/* the same file again: forget the old record, keep the file */
		map_take(p->baked, key);
		if (map_get(p->by_file, old->file_hash32) == old)
			map_take(p->by_file, old->file_hash32);
		free(old);
	} else if (old) {
		char name[NARCACHE_NAME_MAX + 1];
		baked_name(name, sizeof(name), old);
		cache_forget_locked(p, old, true);
		narcache_remove(p->nc, name);
	}
	struct pub_baked *prev = map_get(p->by_file, b->file_hash32);
	if (map_put(p->baked, key, b, NULL) < 0)
		return CAIRN_ENOMEM;
	if (map_put(p->by_file, b->file_hash32, b, NULL) < 0) {
		map_take(p->baked, key);
		return CAIRN_ENOMEM;
	}
	if (prev && prev != b && prev->ghost)
		free(prev); /* baked again: no longer a ghost */
	memo_forget(p, b->hashpart);
	return 0;
}

void pub_bake_enqueue(struct cairn_publish *p, const char *hashpart)
{
	if (!p->nc)
		return;
	pthread_mutex_lock(&p->cache_lock);
	if (!p->stopping)
		(void)workq_push_locked(&p->bake_q, hashpart);
	pthread_mutex_unlock(&p->cache_lock);
}

/* ---- items compression cannot help ------------------------------------ */

bool pub_name_compressed(const char *base)
{
	/* the last extension of the name, as guix publish judges it
	 * (compressed-file? in guix/utils.scm), with zstd's and 7-Zip's */
	static const char *const exts[] = {"gz",  "tgz", "bz2", "tbz2", "xz",  "txz",
					   "lz",  "lzma", "zst", "tzst", "zip", "7z"};
	const char *dot = strrchr(base, '.');
	if (!dot)
		return false;
	for (size_t i = 0; i < sizeof(exts) / sizeof(exts[0]); i++)
		if (strcmp(dot + 1, exts[i]) == 0)
			return true;
	return false;
}

size_t pub_offered(struct cairn_publish *p, const char *path, const struct cairn_hash *nar_hash,
		   struct cairn_codec_spec *out, bool *raw)
{
	const char *base = path + p->store_dir_len + 1;
	bool compressed = false, r = false;
	for (size_t i = 0; i < p->cfg.n_compressions; i++)
		if (p->cfg.compressions[i].method != CAIRN_CODEC_NONE)
			compressed = true;
	if (compressed && strlen(base) > CAIRN_STORE_HASH_LEN) {
		r = pub_name_compressed(base);
		if (!r) {
			char hp[CAIRN_STORE_HASH_LEN + 1];
			memcpy(hp, base, CAIRN_STORE_HASH_LEN);
			hp[CAIRN_STORE_HASH_LEN] = '\0';
			pthread_mutex_lock(&p->cache_lock);
			const struct pub_raw *pr = p->raw->n ? map_get(p->raw, hp) : NULL;
			r = pr && cairn_hash_equal(&pr->nar_hash, nar_hash);
			pthread_mutex_unlock(&p->cache_lock);
		}
	}
	if (raw)
		*raw = r;
	if (r) {
		out[0].method = CAIRN_CODEC_NONE;
		out[0].level = 0;
		return 1;
	}
	memcpy(out, p->cfg.compressions, p->cfg.n_compressions * sizeof(*out));
	return p->cfg.n_compressions;
}

/* Is a compressed nar of file_size bytes, from nar_size, too large to help? */
static bool raw_ratio(uint64_t file_size, uint64_t nar_size)
{
	const uint64_t lim = UINT64_MAX / 100;
	if (file_size <= lim && nar_size <= lim)
		return file_size * 100 >= nar_size * CAIRN_PUBLISH_RAW_PERCENT;
	return file_size / 100 * 100 >= nar_size / 100 * CAIRN_PUBLISH_RAW_PERCENT;
}

/* Record in the cache that hp does not compress (measured again after a
 * restart when it cannot be). */
static void raw_write(struct cairn_publish *p, const char *hp, const struct pub_raw *r)
{
	char nh[53], name[64], line[160];
	hash32(&r->nar_hash, nh);
	int n = snprintf(line, sizeof(line), "%s %s %llu %llu\n", nh,
			 cairn_codec_method_name(r->method), (unsigned long long)r->file_size,
			 (unsigned long long)r->nar_size);
	snprintf(name, sizeof(name), "info/%s.none", hp);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)narcache_put_file(p->nc, name, line, (size_t)n, NULL);
}

bool pub_note_compressed(struct cairn_publish *p, const char *hashpart,
			 const struct cairn_hash *nar_hash, uint64_t nar_size,
			 enum cairn_codec_method method, uint64_t file_size)
{
	char hp[CAIRN_STORE_HASH_LEN + 1];
	if (method == CAIRN_CODEC_NONE || nar_size == 0 || !raw_ratio(file_size, nar_size))
		return false;
	memcpy(hp, hashpart, CAIRN_STORE_HASH_LEN);
	hp[CAIRN_STORE_HASH_LEN] = '\0';
	struct pub_raw *r = malloc(sizeof(*r));
	if (!r)
		return true; /* not remembered: measured again later */
	r->nar_hash = *nar_hash;
	r->method = method;
	r->file_size = file_size;
	r->nar_size = nar_size;
	struct pub_raw rec = *r; /* r is the map's once put */
	pthread_mutex_lock(&p->cache_lock);
	const struct pub_raw *old = map_get(p->raw, hp);
	bool known = old && cairn_hash_equal(&old->nar_hash, nar_hash);
	/* bounded like the memo; an item not remembered is measured again */
	bool added = !known && (old || p->raw->n < CAIRN_PUBLISH_MEMO_MAX) &&
		     map_put(p->raw, hp, r, NULL) == 0;
	if (!added)
		free(r);
	pthread_mutex_unlock(&p->cache_lock);
	if (added) {
		atomic_fetch_add_explicit(&p->m_raw, 1, memory_order_relaxed);
		memo_forget(p, hp);
		if (p->nc)
			raw_write(p, hp, &rec);
	}
	return true;
}

/* The bake pipeline: NAR writer -> (hash, size) -> codec -> (hash, file). */
struct bake {
	struct cairn_sha256 nar_sha;
	struct cairn_codec *codec;
	int fd;
	uint64_t file_size;
	struct cairn_error *err;
	struct cairn_publish *p;
	struct pub_inflight *inf; /* readers following the file, or NULL */
	struct pub_meter meter;
};

static int bake_out(void *ctx, const void *data, size_t len)
{
	struct bake *b = ctx;
	const char *d = data;
	size_t total = len;
	b->file_size += len;
	while (len) {
		ssize_t n = write(b->fd, d, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return cairn_error_errno(b->err, errno, "publish: writing to the cache");
		}
		d += n;
		len -= (size_t)n;
	}
	if (b->inf) {
		pthread_mutex_lock(&b->p->cache_lock);
		b->inf->written += total;
		pthread_cond_broadcast(&b->inf->cond);
		pthread_mutex_unlock(&b->p->cache_lock);
	}
	return 0;
}

static int bake_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct bake *b = ctx;
	if (b->p->stopping)
		return cairn_error_set(err, CAIRN_ECANCELED, "publish: stopping");
	cairn_sha256_update(&b->nar_sha, data, len);
	return pub_meter_write(b->p, &b->meter, b->codec, data, len, bake_out, b, err);
}

static int file_sha256(int fd, uint64_t size, uint8_t digest[32], struct cairn_error *err)
{
	static const size_t cap = 1 << 20;
	struct cairn_sha256 sha;
	char *buf = malloc(cap);
	int rc = buf ? cairn_sha256_init(&sha) : CAIRN_ENOMEM;
	if (rc < 0) {
		free(buf);
		return cairn_error_set(err, rc, "publish: cannot hash the cached file");
	}
	for (uint64_t off = 0; off < size && rc == 0;) {
		size_t want = size - off < cap ? (size_t)(size - off) : cap;
		ssize_t n = pread(fd, buf, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = cairn_error_errno(err, n < 0 ? errno : EIO,
					       "publish: cannot read back the cached file");
			break;
		}
		cairn_sha256_update(&sha, buf, (size_t)n);
		off += (uint64_t)n;
	}
	cairn_sha256_final(&sha, digest);
	free(buf);
	return rc;
}

static int bake_one(struct cairn_publish *p, const struct cairn_storedb_pathinfo *pi,
		    const char *hp, const struct cairn_codec_spec *spec, struct pub_inflight *inf,
		    struct cairn_error *err)
{
	char real[CAIRN_STOREDB_PATH_MAX + CAIRN_STOREDB_DIR_MAX + 8];
	char tmpname[NARCACHE_PATH_MAX], name[NARCACHE_NAME_MAX + 1], info[256];
	struct bake b = {0};
	struct pub_baked *pb = NULL;
	uint8_t digest[32];
	int rc;

	b.fd = -1;
	b.err = err;
	b.p = p;
	b.inf = inf;
	b.meter.method = spec->method;
	tmpname[0] = '\0';
	if ((rc = pub_real_path(p, pi->path, real, sizeof(real))) < 0) {
		cairn_error_set(err, rc, "publish: path too long");
		goto out;
	}
	if ((rc = narcache_tmp_open(p->nc, "bake-", tmpname, sizeof(tmpname), &b.fd, err)) < 0) {
		tmpname[0] = '\0';
		goto out;
	}
	if (inf) {
		int rfd = dup(b.fd);
		if (rfd < 0) {
			rc = cairn_error_errno(err, errno, "publish: dup");
			goto out;
		}
		fcntl(rfd, F_SETFD, FD_CLOEXEC);
		pthread_mutex_lock(&p->cache_lock);
		inf->fd = rfd;
		pthread_mutex_unlock(&p->cache_lock);
	}
	if ((rc = cairn_sha256_init(&b.nar_sha)) < 0)
		goto out;
	rc = cairn_codec_new(&b.codec, spec->method, CAIRN_CODEC_COMPRESS, spec->level,
			     CAIRN_CODEC_UNLIMITED, err);
	if (rc == 0)
		rc = cairn_nar_dump_path(real, bake_nar, &b, err);
	if (rc == 0)
		rc = pub_meter_finish(p, &b.meter, b.codec, bake_out, &b, err);
	struct cairn_hash nh = {.algo = CAIRN_HASH_SHA256, .len = 32};
	cairn_sha256_final(&b.nar_sha, nh.digest);
	if (rc < 0)
		goto out;
	if (cairn_codec_total_in(b.codec) != pi->nar_size || !cairn_hash_equal(&nh, &pi->nar_hash)) {
		pub_nar_mark_corrupt(p, hp, &pi->nar_hash, pi->path,
				     cairn_codec_total_in(b.codec) != pi->nar_size
					 ? "its nar has another size"
					 : "its nar has another SHA-256");
		rc = cairn_error_set(err, CAIRN_EHASH,
				     "publish: '%s' does not match its NarHash in the database "
				     "(changed or being deleted)",
				     pi->path);
		goto out;
	}
	/* the bake read every byte: its uncompressed streams need not hash again */
	pub_nar_mark_verified(p, hp, &pi->nar_hash);
	/*
	 * Does compression help it at all?  If not, its narinfo offers none
	 * alone from now on and no other method is baked; this file stays
	 * (least recently used first out), for the clients that hold the
	 * earlier narinfo naming its URL.
	 */
	pub_note_compressed(p, hp, &pi->nar_hash, pi->nar_size, spec->method, b.file_size);
	/*
	 * The clients following the file have every byte, checked: let them
	 * end now.  The file's own hash (for FileHash and its name) is taken
	 * from the file afterwards, off their path: hashing as it was written
	 * made the compression, and so them, 40% slower.
	 */
	if (inf) {
		pthread_mutex_lock(&p->cache_lock);
		inf->complete = true;
		pthread_cond_broadcast(&inf->cond);
		pthread_mutex_unlock(&p->cache_lock);
	}
	if ((rc = file_sha256(b.fd, b.file_size, digest, err)) < 0 ||
	    (rc = narcache_sync(p->nc, b.fd, tmpname, err)) < 0)
		goto out;
	pb = calloc(1, sizeof(*pb));
	if (!pb) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
		goto out;
	}
	memcpy(pb->hashpart, hp, 33);
	pb->method = spec->method;
	pb->nar_hash = pi->nar_hash;
	pb->file_hash.algo = CAIRN_HASH_SHA256;
	pb->file_hash.len = 32;
	memcpy(pb->file_hash.digest, digest, 32);
	hash32(&pb->file_hash, pb->file_hash32);
	pb->file_size = b.file_size;
	baked_name(name, sizeof(name), pb);
	/* the info file says which item the content-addressed file holds */
	char nh32[53], iname[64];
	hash32(&pi->nar_hash, nh32);
	int il = snprintf(info, sizeof(info), "%s %s %llu\n", nh32, pb->file_hash32,
			  (unsigned long long)pb->file_size);
	snprintf(iname, sizeof(iname), "info/%s.%s", hp, cairn_codec_method_name(spec->method));
	/* file, then its record (narcache.h), then room for it */
	pthread_mutex_lock(&p->cache_lock);
	rc = narcache_commit(p->nc, tmpname, name, pb->file_size, err);
	tmpname[0] = '\0'; /* renamed, or removed */
	if (rc == 0 && (rc = narcache_put_file(p->nc, iname, info, (size_t)il, err)) < 0)
		narcache_remove(p->nc, name);
	if (rc == 0 && (rc = cache_add_locked(p, pb)) == 0) {
		pb = NULL;
		rc = narcache_trim(p->nc, 0, name, err);
	}
	pthread_mutex_unlock(&p->cache_lock);
	if (rc < 0)
		goto out;
	atomic_fetch_add_explicit(&p->m_baked, 1, memory_order_relaxed);
out:
	pub_meter_flush(p, &b.meter);
	free(pb);
	cairn_codec_free(b.codec);
	if (b.fd >= 0)
		close(b.fd);
	if (tmpname[0])
		unlink(tmpname);
	return rc;
}

static void inflight_key(char *key, size_t cap, const char *hp, enum cairn_codec_method m)
{
	snprintf(key, cap, "%.32s.%s", hp, cairn_codec_method_name(m));
}

static void inflight_free(struct pub_inflight *inf)
{
	if (inf->fd >= 0)
		close(inf->fd);
	pthread_cond_destroy(&inf->cond);
	free(inf);
}

/* Register a new bake of (hp, m) with one reference (the baker's); NULL when
 * one runs already. */
static struct pub_inflight *inflight_begin(struct cairn_publish *p, const char *hp,
					   enum cairn_codec_method m)
{
	struct pub_inflight *inf = calloc(1, sizeof(*inf));
	if (!inf)
		return NULL;
	inflight_key(inf->key, sizeof(inf->key), hp, m);
	inf->fd = -1;
	inf->refs = 1;
	pthread_cond_init(&inf->cond, NULL);
	pthread_mutex_lock(&p->cache_lock);
	if (map_get(p->inflight, inf->key) || map_put(p->inflight, inf->key, inf, NULL) < 0) {
		pthread_mutex_unlock(&p->cache_lock);
		inflight_free(inf);
		return NULL;
	}
	pthread_mutex_unlock(&p->cache_lock);
	return inf;
}

/* The baker is through: wake the readers, unregister, drop its reference. */
static void inflight_end(struct cairn_publish *p, struct pub_inflight *inf, int rc)
{
	if (rc < 0)
		atomic_fetch_add_explicit(&p->m_bake_failures, 1, memory_order_relaxed);
	pthread_mutex_lock(&p->cache_lock);
	inf->done = rc == 0;
	inf->failed = rc < 0;
	pthread_cond_broadcast(&inf->cond);
	if (map_get(p->inflight, inf->key) == inf)
		map_take(p->inflight, inf->key);
	bool last = --inf->refs == 0;
	pthread_mutex_unlock(&p->cache_lock);
	if (last)
		inflight_free(inf);
}

void pub_inflight_put(struct cairn_publish *p, struct pub_inflight *inf)
{
	pthread_mutex_lock(&p->cache_lock);
	bool last = --inf->refs == 0;
	pthread_mutex_unlock(&p->cache_lock);
	if (last)
		inflight_free(inf);
}

int pub_inflight_complete_fd(struct cairn_publish *p, struct pub_inflight *inf)
{
	int fd = -1;
	pthread_mutex_lock(&p->cache_lock);
	if (inf->complete && !inf->failed && inf->fd >= 0)
		fd = fcntl(inf->fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&p->cache_lock);
	return fd;
}

int64_t pub_inflight_wait(struct cairn_publish *p, struct pub_inflight *inf, uint64_t off)
{
	int64_t r;
	pthread_mutex_lock(&p->cache_lock);
	while (inf->written <= off && !inf->done && !inf->complete && !inf->failed &&
	       !p->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&inf->cond, &p->cache_lock, &ts);
	}
	if (inf->written > off)
		r = (int64_t)(inf->written - off);
	else if (inf->done || inf->complete)
		r = 0;
	else
		r = CAIRN_ECANCELED;
	pthread_mutex_unlock(&p->cache_lock);
	return r;
}

struct bake_thread {
	struct cairn_publish *p;
	struct pub_inflight *inf;
	struct cairn_storedb_pathinfo pi; /* path, nar_hash, nar_size only */
	char hp[33];
	struct cairn_codec_spec spec;
};

static void *bake_thread(void *arg)
{
	struct bake_thread *t = arg;
	struct cairn_error err;
	cairn_error_init(&err);
	int rc = bake_one(t->p, &t->pi, t->hp, &t->spec, t->inf, &err);
	inflight_end(t->p, t->inf, rc);
	struct cairn_publish *p = t->p;
	free(t->pi.path);
	free(t);
	pub_stream_leave(p);
	return NULL;
}

struct pub_inflight *pub_inflight_get(struct cairn_publish *p,
				      const struct cairn_storedb_pathinfo *pi,
				      enum cairn_codec_method method)
{
	char key[48];
	const char *hp = pi->path + p->store_dir_len + 1;
	struct pub_inflight *inf;

	if (!p->nc || method == CAIRN_CODEC_NONE)
		return NULL;
	inflight_key(key, sizeof(key), hp, method);
	pthread_mutex_lock(&p->cache_lock);
	inf = map_get(p->inflight, key);
	if (inf)
		inf->refs++;
	pthread_mutex_unlock(&p->cache_lock);
	if (inf)
		return inf;

	struct bake_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->p = p;
	t->pi.path = strdup(pi->path);
	t->pi.nar_hash = pi->nar_hash;
	t->pi.nar_size = pi->nar_size;
	memcpy(t->hp, hp, 32);
	t->spec.method = method;
	t->spec.level = pub_level(p, method);
	if (!t->pi.path || !pub_stream_enter(p)) {
		free(t->pi.path);
		free(t);
		return NULL;
	}
	inf = inflight_begin(p, hp, method);
	if (!inf) { /* lost a race: join the other one */
		free(t->pi.path);
		free(t);
		pub_stream_leave(p);
		pthread_mutex_lock(&p->cache_lock);
		inf = map_get(p->inflight, key);
		if (inf)
			inf->refs++;
		pthread_mutex_unlock(&p->cache_lock);
		return inf;
	}
	pthread_mutex_lock(&p->cache_lock);
	inf->refs++; /* the caller's */
	pthread_mutex_unlock(&p->cache_lock);
	t->inf = inf;
	pthread_attr_t attr;
	pthread_t tid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&tid, &attr, bake_thread, t) != 0) {
		inflight_end(p, inf, CAIRN_EIO);
		free(t->pi.path);
		free(t);
		pub_stream_leave(p);
	}
	pthread_attr_destroy(&attr);
	return inf;
}

static void bake_item(struct cairn_publish *p, const char *hp)
{
	struct cairn_storedb *db = NULL;
	struct cairn_storedb_pathinfo pi = {0};
	struct cairn_error err;
	struct cairn_publish_file files[CAIRN_CODEC_LIST_MAX];
	struct cairn_codec_spec offered[CAIRN_CODEC_LIST_MAX];
	bool raw;

	cairn_error_init(&err);
	if (pub_db_get(p, &db, &err) < 0)
		return;
	int rc = cairn_storedb_query_hashpart(db, hp, &pi, &err);
	pub_db_put(p, db);
	if (rc < 0)
		return;
	size_t n = pub_offered(p, pi.path, &pi.nar_hash, offered, &raw);
	baked_files(p, hp, &pi.nar_hash, offered, n, files);
	if (p->cfg.dialect == CAIRN_PUBLISH_NIX)
		n = 1;
	for (size_t i = 0; i < n && !raw && !p->stopping; i++) {
		if (files[i].has_file || offered[i].method == CAIRN_CODEC_NONE)
			continue;
		cairn_error_init(&err);
		struct pub_inflight *inf = inflight_begin(p, hp, offered[i].method);
		if (!inf)
			continue; /* a request is baking it already */
		rc = bake_one(p, &pi, hp, &offered[i], inf, &err);
		inflight_end(p, inf, rc);
		/* the first bake may find that compression cannot help it */
		pub_offered(p, pi.path, &pi.nar_hash, offered, &raw);
	}
	cairn_storedb_pathinfo_release(&pi);
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
		(void)workq_push_locked(&p->verify_q, hashpart);
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
	workq_run(p, &p->verify_q, verify_item);
	return NULL;
}

static void *baker(void *arg)
{
	struct cairn_publish *p = arg;
	workq_run(p, &p->bake_q, bake_item);
	return NULL;
}

/*
 * Read the info files of a cache directory left by an earlier run; drop
 * whatever is incomplete.  Then the nar cache deletes the files in nar/
 * that no record names: a bake renames its nar into place before it writes
 * the info file, and a record found bad is deleted without its nar, so a
 * crash or a bad record would otherwise leave a file nothing counts
 * against --cache-max-size and nothing ever deletes.
 */
static void cache_load(struct cairn_publish *p)
{
	int dfd = openat(narcache_dir_fd(p->nc), "info", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.')
			continue;
		char buf[256], name[NARCACHE_NAME_MAX + 1];
		const char *dot = strchr(n, '.');
		enum cairn_codec_method m;
		struct pub_baked *b = NULL;
		int fd = openat(dfd, n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		unsigned long long size;
		char nh[64], fh[64];
		if (len <= 0 || !dot || dot - n != 32 || !nix32_ok(n, 32) ||
		    cairn_codec_method_parse(dot + 1, strlen(dot + 1), &m, NULL) < 0)
			goto bad;
		buf[len] = '\0';
		if (m == CAIRN_CODEC_NONE) {
			/* an item that does not compress: "<narhash> <method> <size> <narsize>" */
			char meth[16], hp[33];
			unsigned long long fsize, nsize;
			struct pub_raw *r = calloc(1, sizeof(*r));
			memcpy(hp, n, 32);
			hp[32] = '\0';
			if (!r || sscanf(buf, "%63s %15s %llu %llu", nh, meth, &fsize, &nsize) != 4 ||
			    strlen(nh) != 52 || !nix32_ok(nh, 52) ||
			    cairn_codec_method_parse(meth, strlen(meth), &r->method, NULL) < 0 ||
			    cairn_nix32_decode(nh, 52, r->nar_hash.digest, 32) < 0 ||
			    p->raw->n >= CAIRN_PUBLISH_MEMO_MAX || map_put(p->raw, hp, r, NULL) < 0) {
				free(r);
				goto bad;
			}
			r->nar_hash.algo = CAIRN_HASH_SHA256;
			r->nar_hash.len = 32;
			r->file_size = fsize;
			r->nar_size = nsize;
			continue;
		}
		if (sscanf(buf, "%63s %63s %llu", nh, fh, &size) != 3 || strlen(nh) != 52 ||
		    strlen(fh) != 52 || !nix32_ok(nh, 52) || !nix32_ok(fh, 52))
			goto bad;
		b = calloc(1, sizeof(*b));
		if (!b)
			goto bad;
		memcpy(b->hashpart, n, 32);
		b->method = m;
		b->nar_hash.algo = b->file_hash.algo = CAIRN_HASH_SHA256;
		b->nar_hash.len = b->file_hash.len = 32;
		if (cairn_nix32_decode(nh, 52, b->nar_hash.digest, 32) < 0 ||
		    cairn_nix32_decode(fh, 52, b->file_hash.digest, 32) < 0)
			goto bad;
		memcpy(b->file_hash32, fh, 53);
		b->file_size = size;
		baked_name(name, sizeof(name), b);
		/* older files first out: their access times are their recency */
		int arc = narcache_adopt(p->nc, name, size, NARCACHE_TICK_ATIME);
		if (arc == CAIRN_ENOENT) {
			/* evicted earlier: a ghost */
			b->ghost = true;
			if (map_get(p->by_file, b->file_hash32) ||
			    map_put(p->by_file, b->file_hash32, b, NULL) < 0)
				goto bad;
			continue;
		}
		if (arc < 0 || cache_add_locked(p, b) < 0)
			goto bad;
		continue;
	bad:
		free(b);
		unlinkat(dfd, n, 0);
	}
	closedir(d);
	narcache_sweep(p->nc);
	/* a smaller --cache-max-size than the last run's */
	(void)narcache_trim(p->nc, 0, NULL, NULL);
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
	if ((rc = make_pubkeys(p, err)) < 0)
		goto fail;

	if (p->cache_dir) {
		struct narcache_config nc = {.dir = p->cache_dir,
					     .data = "nar",
					     .what = "publish",
					     .max_size = cfg->cache_max_size,
					     .evict = cache_evict,
					     .ctx = p};
		if ((rc = narcache_open(&p->nc, &nc, err)) < 0 ||
		    (rc = narcache_mkdir(p->nc, "info", err)) < 0)
			goto fail;
		pthread_mutex_lock(&p->cache_lock);
		cache_load(p);
		pthread_mutex_unlock(&p->cache_lock);
		size_t n = cfg->bake_workers ? cfg->bake_workers : 1;
		if (n > 64)
			n = 64;
		p->bakers = calloc(n, sizeof(*p->bakers));
		if (!p->bakers) {
			rc = cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
			goto fail;
		}
		for (size_t i = 0; i < n; i++) {
			if (pthread_create(&p->bakers[i], NULL, baker, p) != 0) {
				rc = cairn_error_set(err, CAIRN_EIO,
						     "publish: cannot start a baker thread");
				goto fail;
			}
			p->n_bakers++;
		}
	}
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
	map_free(p->corrupt);
	/* producers still running hold p */
	pthread_mutex_lock(&p->streams_lock);
	while (p->n_streams)
		pthread_cond_wait(&p->streams_cond, &p->streams_lock);
	pthread_mutex_unlock(&p->streams_lock);

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
