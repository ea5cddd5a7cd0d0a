/*
 * publish-bake.c - publish's baked files: the index of them (by item and
 * method, and by file hash, with the ghosts of evicted files whose URLs
 * still resolve), the record of items compression cannot help, the bake
 * pipeline (store item -> NAR -> codec -> a temporary file readers follow
 * while it grows -> renamed into the nar cache), the bakers, and the
 * reload of a cache directory left by an earlier run.  The files, their
 * bound and eviction are the nar cache's (narcache.h); locks: publish.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "cairn/storepath.h"
#include "narcache.h"
#include "publish-int.h"
#include "cairn/io.h"
#include "cairn/banned.h"

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
bool pub_baked_pin_locked(struct cairn_publish *p, const struct pub_baked *b)
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
void pub_memo_forget(struct cairn_publish *p, const char *hp)
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
	pub_memo_forget(p, b->hashpart);
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
 * trims): its record becomes a ghost.  Found by file hash, not by a walk
 * of every record, which made a start-up under a much smaller bound
 * quadratic.  Two items whose compressed nars are the same bytes share a
 * file and by_file names one of them: the other keeps a record of a file
 * that is gone, which its next lookup finds unpinnable (so it is baked
 * again) and its URL resolves like a ghost's.
 */
static int cache_evict(void *ctx, const char *name)
{
	struct cairn_publish *p = ctx;
	char fh[53], n[NARCACHE_NAME_MAX + 1];
	if (strlen(name) < 52)
		return 0;
	memcpy(fh, name, 52);
	fh[52] = '\0';
	struct pub_baked *b = map_get(p->by_file, fh);
	if (!b || b->ghost)
		return 0;
	baked_name(n, sizeof(n), b);
	if (!strcmp(n, name))
		cache_forget_locked(p, b, true);
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
	if (b && cairn_hash_equal(&b->nar_hash, nar_hash) && pub_baked_pin_locked(p, b)) {
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
	pub_memo_forget(p, b->hashpart);
	return 0;
}

void pub_bake_enqueue(struct cairn_publish *p, const char *hashpart)
{
	if (!p->nc)
		return;
	pthread_mutex_lock(&p->cache_lock);
	if (!p->stopping)
		(void)pub_workq_push_locked(&p->bake_q, hashpart);
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
	pub_hash32(&r->nar_hash, nh);
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
		pub_memo_forget(p, hp);
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
	size_t total = len;
	b->file_size += len;
	if (cairn_write_all(b->fd, data, len))
		return cairn_error_errno(b->err, errno, "publish: writing to the cache");
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
	pub_hash32(&pb->file_hash, pb->file_hash32);
	pb->file_size = b.file_size;
	baked_name(name, sizeof(name), pb);
	/* the info file says which item the content-addressed file holds */
	char nh32[53], iname[64];
	pub_hash32(&pi->nar_hash, nh32);
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
	pub_baked_files(p, hp, &pi.nar_hash, offered, n, files);
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

static void *baker(void *arg)
{
	struct cairn_publish *p = arg;
	pub_workq_run(p, &p->bake_q, bake_item);
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
		/* O_NONBLOCK, regular files only: a named pipe here held the
		 * server's start for good */
		int fd = openat(dfd, n, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
		struct stat sb;
		if (fd >= 0 && (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))) {
			close(fd);
			fd = -1;
		}
		ssize_t len = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			close(fd);
		unsigned long long size;
		char nh[64], fh[64];
		if (len <= 0 || !dot || dot - n != 32 || !pub_nix32_ok(n, 32) ||
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
			    strlen(nh) != 52 || !pub_nix32_ok(nh, 52) ||
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
		    strlen(fh) != 52 || !pub_nix32_ok(nh, 52) || !pub_nix32_ok(fh, 52))
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

int pub_cache_open(struct cairn_publish *p, struct cairn_error *err)
{
	int rc;
	struct narcache_config nc = {.dir = p->cache_dir,
				     .data = "nar",
				     .what = "publish",
				     .max_size = p->cfg.cache_max_size,
				     .evict = cache_evict,
				     .ctx = p};
	if ((rc = narcache_open(&p->nc, &nc, err)) < 0 ||
	    (rc = narcache_mkdir(p->nc, "info", err)) < 0)
		return rc;
	pthread_mutex_lock(&p->cache_lock);
	cache_load(p);
	pthread_mutex_unlock(&p->cache_lock);
	size_t n = p->cfg.bake_workers ? p->cfg.bake_workers : 1;
	if (n > 64)
		n = 64;
	p->bakers = calloc(n, sizeof(*p->bakers));
	if (!p->bakers)
		return cairn_error_set(err, CAIRN_ENOMEM, "publish: out of memory");
	for (size_t i = 0; i < n; i++) {
		if (pthread_create(&p->bakers[i], NULL, baker, p) != 0)
			return cairn_error_set(err, CAIRN_EIO, "publish: cannot start a baker thread");
		p->n_bakers++;
	}
	return 0;
}
