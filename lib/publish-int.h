/*
 * publish-int.h - what lib/publish.c (narinfos, memo, baked files, bakers)
 * shares with lib/publish-http.c (the routes).  Not public.
 */
#ifndef CAIRN_PUBLISH_INT_H
#define CAIRN_PUBLISH_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cairn/publish.h"
#include "map.h"

struct narcache;
struct ipfs_gw;


/*
 * A FIFO of hash parts, each queued once until its work is done, for the
 * threads that work it (the bakers, the verifier).  Guarded by the lock
 * given at init, signalled on its condition.
 */
struct pub_workq {
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	struct map *queued; /* hash parts queued or being worked on */
	char **ring;
	size_t head, len, cap, max;
};

/* One baked file: the nar of an item, compressed with one method. */
struct pub_baked {
	char hashpart[33];
	enum cairn_codec_method method;
	struct cairn_hash nar_hash;
	struct cairn_hash file_hash;
	char file_hash32[53];
	uint64_t file_size;
	/* evicted: the file is gone but clients may hold narinfos naming it,
	 * so its URL still resolves (to the item, compressed afresh) */
	bool ghost;
};

/* An item that compression cannot help (publish.h, "Methods offered"): a
 * compression with method made file_size bytes of its nar_size. */
struct pub_raw {
	struct cairn_hash nar_hash;
	enum cairn_codec_method method;
	uint64_t file_size, nar_size;
};

/*
 * A nar being compressed into the cache right now.  Every request for it
 * reads the growing file (pread at its own offset, waiting on cond for
 * more) instead of compressing it again: one compression per item and
 * method however many clients ask at once.  Guarded by cache_lock.
 */
struct pub_inflight {
	char key[48];	  /* "<hashpart>.<method>" */
	int fd;		  /* the temporary file, readable; -1 until opened */
	uint64_t written; /* bytes in it so far */
	bool done, failed;
	bool complete; /* every byte written and checked: readers may end */
	unsigned refs;
	pthread_cond_t cond;
};

/* What one method's compressions took, for the slow-compression warning
 * and /metrics (publish.h, "Compression speed"). */
struct pub_rate {
	atomic_uint_fast64_t bytes_in; /* nar bytes compressed */
	atomic_uint_fast64_t cpu_ns;   /* CPU time of their threads in the compressor */
	atomic_bool warned;
};

/* One compression's figures not yet added to its method's pub_rate: added
 * every PUB_METER_FLUSH bytes, so that a long stream is judged while it
 * runs, and at its end. */
struct pub_meter {
	enum cairn_codec_method method;
	uint64_t in, ns;
};
#define PUB_METER_FLUSH ((uint64_t)1 << 20)

struct cairn_publish {
	struct cairn_publish_config cfg;
	char *store_dir, *real_store_dir, *db_path, *log_dir, *cache_dir, *host;
	size_t store_dir_len;

	/* database handles, one per user at a time */
	pthread_mutex_t db_lock;
	struct cairn_storedb **db_free;
	size_t n_db_free, cap_db_free;
	struct cairn_storedb_config dbcfg;

	/* signed narinfo text by hash part */
	pthread_mutex_t memo_lock;
	struct map *memo;
	/* hash part by NarHash (nix32), for /nar/<narhash>.nar without ?hash= */
	struct map *by_narhash;
	/* "<hashpart>:<NarHash hex>" of items whose bytes matched (memo_lock) */
	struct map *verified;
	/* the same keys, of items whose bytes did not match: value is the
	 * monotonic ms of the check (memo_lock) */
	struct map *corrupt;

	/* background checks (verify_lock), one thread */
	pthread_mutex_t verify_lock;
	pthread_cond_t verify_cond;
	struct pub_workq verify_q;
	pthread_t verifier;
	bool verifier_running;

	/* the nar cache (NULL without --cache) and the index of its files */
	struct narcache *nc;
	pthread_mutex_t cache_lock;
	pthread_cond_t cache_cond;
	struct map *baked;	 /* "<hashpart>.<method>" -> struct pub_baked */
	struct map *by_file; /* file hash nix32 -> the same struct pub_baked */
	struct map *inflight; /* key -> struct pub_inflight */
	/* hash part -> struct pub_raw (cache_lock; also without a cache,
	 * then in memory only) */
	struct map *raw;
	struct pub_workq bake_q;  /* under cache_lock */
	atomic_bool stopping;
	pthread_t *bakers;
	size_t n_bakers;

	/* running nar streams, waited for at free */
	pthread_mutex_t streams_lock;
	pthread_cond_t streams_cond;
	unsigned n_streams;

	/* figures for /metrics */
	atomic_uint_fast64_t m_memo_hits, m_memo_misses, m_cache_hits, m_cache_misses, m_baked,
		m_bake_failures, m_evicted, m_signed, m_verified, m_verify_failures, m_raw;

	struct pub_rate rates[CAIRN_CODEC_METHOD_COUNT_];


	/* the IPFS gateway and its chunk index (NULL without cfg.ipfs) */
	struct ipfs_gw *gw;

	/* the public keys as served: Nix lines, the Guix s-expression */
	char *nix_keys, *guix_key;
	size_t nix_keys_len, guix_key_len;
};

/* Did the store item hashpart, registered with nar_hash, stream and match before? */
bool pub_nar_verified(struct cairn_publish *p, const char *hashpart, const struct cairn_hash *nar_hash);
void pub_nar_mark_verified(struct cairn_publish *p, const char *hashpart,
			   const struct cairn_hash *nar_hash);

/* Did its bytes fail to match?  *recheck: the failure is old enough to
 * look again (the caller queues a check). */
bool pub_nar_corrupt(struct cairn_publish *p, const char *hashpart, const struct cairn_hash *nar_hash,
		     bool *recheck);
/* Record a mismatch of the item at store path, and tell the operator. */
void pub_nar_mark_corrupt(struct cairn_publish *p, const char *hashpart,
			  const struct cairn_hash *nar_hash, const char *path, const char *why);
/* pub_nar_corrupt without *recheck, under memo_lock. */
bool pub_nar_corrupt_locked(struct cairn_publish *p, const char *hashpart,
			    const struct cairn_hash *nar_hash);
/* Queue a background check of the item (no-op when queued or full). */
void pub_verify_enqueue(struct cairn_publish *p, const char *hashpart);

int pub_db_get(struct cairn_publish *p, struct cairn_storedb **out, struct cairn_error *err);
void pub_db_put(struct cairn_publish *p, struct cairn_storedb *db);

/* Look up the item a nar URL names; fills *pi (release it) and the file
 * hash the URL asked for (when it is a baked file, *baked_out is a copy,
 * its file pinned until pub_baked_unpin: see narcache.h, "Pins"). */
int pub_resolve_nar(struct cairn_publish *p, const struct cairn_publish_nar_url *u,
		    struct cairn_storedb_pathinfo *pi, struct pub_baked *baked_out, bool *is_baked,
		    struct cairn_error *err);

/*
 * The methods to offer for the item at store path (its configured ones, or
 * none alone when compression cannot help it), into out
 * (CAIRN_CODEC_LIST_MAX); returns how many.  *raw: it was none alone for
 * that reason.
 */
size_t pub_offered(struct cairn_publish *p, const char *path, const struct cairn_hash *nar_hash,
		   struct cairn_codec_spec *out, bool *raw);
/* Does the name of the store item (its basename) say it is compressed? */
bool pub_name_compressed(const char *base);
/* A compression of the whole nar of hashpart (registered with nar_hash,
 * nar_size bytes) made file_size bytes with method: remember (and with a
 * cache, record) when that means compression cannot help.  True then. */
bool pub_note_compressed(struct cairn_publish *p, const char *hashpart,
			 const struct cairn_hash *nar_hash, uint64_t nar_size,
			 enum cairn_codec_method method, uint64_t file_size);

/* The level to compress with for method m (configured, or a low one). */
int pub_level(const struct cairn_publish *p, enum cairn_codec_method m);
bool pub_method_allowed(const struct cairn_publish *p, enum cairn_codec_method m);
/* The baked file of hashpart compressed with m, if it holds nar_hash:
 * counted as used now, and pinned until pub_baked_unpin. */
bool pub_baked_lookup(struct cairn_publish *p, const char *hashpart, enum cairn_codec_method m,
		      const struct cairn_hash *nar_hash, struct pub_baked *out);
/* The reader of a baked file has it open (or gave up): unpin it. */
void pub_baked_unpin(struct cairn_publish *p, const struct pub_baked *b);
/* Queue hashpart for baking (no-op without a cache or when baked/queued). */
void pub_bake_enqueue(struct cairn_publish *p, const char *hashpart);
/* The real path of a store item (files under real_store_dir). */
/* publish-ipfs.c: with cfg.ipfs, the gateway (p->gw), and the narinfo's
 * "IPFS:" field (the item indexed once: a pass over its NAR; nothing
 * without a gateway). */
int pub_ipfs_open(struct cairn_publish *p, struct cairn_error *err);
struct cairn_narinfo;
int pub_ipfs_field(struct cairn_publish *p, const struct cairn_storedb_pathinfo *pi,
		   struct cairn_narinfo *ni, struct cairn_error *err);
/* Hash part hp's narinfo (as pub_narinfo_fn, ctx the publish), its item
 * indexed first: a pass over its NAR, so from a thread (pub_defer_*). */
struct cairn_buf;
int pub_ipfs_narinfo(void *ctx, const char *hp, struct cairn_buf *out, unsigned *max_age);

int pub_real_path(const struct cairn_publish *p, const char *store_path, char *out, size_t cap);
uint64_t pub_now_ms(void);

/*
 * The bake of pi with spec, shared: joins the one running or starts one in
 * a new thread.  NULL when there is no cache (or no memory): then compress
 * on the fly.  Release with pub_inflight_put.
 */
struct pub_inflight *pub_inflight_get(struct cairn_publish *p,
				      const struct cairn_storedb_pathinfo *pi,
				      enum cairn_codec_method method);
void pub_inflight_put(struct cairn_publish *p, struct pub_inflight *inf);
/* A new descriptor of the bake's file when it is complete (every byte
 * written and checked), to serve as a plain file; -1 while it grows. */
int pub_inflight_complete_fd(struct cairn_publish *p, struct pub_inflight *inf);
/* Wait until the file has bytes past off: returns how many (> 0), 0 when
 * it is complete at off, or a negative error when the bake failed. */
int64_t pub_inflight_wait(struct cairn_publish *p, struct pub_inflight *inf, uint64_t off);

/*
 * Compress through a meter: cairn_codec_write / cairn_codec_finish, timed
 * with the calling thread's CPU clock (a client that reads slowly blocks
 * the output callback, which costs no CPU time, so only the compressor's
 * own work is counted).  pub_meter_finish, and pub_meter_flush after a
 * failure, add what is left to the method's figures.
 */
int pub_meter_write(struct cairn_publish *p, struct pub_meter *m, struct cairn_codec *c,
		    const void *in, size_t len, cairn_codec_out_fn out, void *ctx,
		    struct cairn_error *err);
int pub_meter_finish(struct cairn_publish *p, struct pub_meter *m, struct cairn_codec *c,
		     cairn_codec_out_fn out, void *ctx, struct cairn_error *err);
void pub_meter_flush(struct cairn_publish *p, struct pub_meter *m);
/* Is a method that compressed bytes_in in cpu_ns slow (publish.h)? */
bool pub_rate_slow(const struct cairn_publish *p, uint64_t bytes_in, uint64_t cpu_ns);

/* --- the http side: publish-http.c, publish-stream.c, publish-page.c ---- */

#define CT_NARINFO "text/x-nix-narinfo"
#define CT_NAR "application/x-nix-nar"
#define CC_IMMUTABLE "public, max-age=31536000, immutable"

struct cairn_httpd_req;
/* Cache-Control: max-age=ttl, or no-store for 0; the value alone, for a
 * response answered from a thread (a stream's headers). */
#define PUB_CC_MAX 48
void pub_cache_control(struct cairn_httpd_req *req, unsigned ttl);
void pub_cache_value(char v[PUB_CC_MAX], unsigned ttl);
/* 404 with the negative TTL (send_error would add its own no-store). */
int pub_not_found(struct cairn_httpd_req *req, unsigned negative_ttl);

/* /health: "ok" (a route handler; data unused). */
int pub_h_health(struct cairn_httpd_req *req, void *data);

/*
 * Answer req from a detached thread running fn(arg); the stream it answers
 * on is in *s before the thread starts.  0: started (fn owns arg);
 * CAIRN_ENOMEM: nothing done, the caller answers; CAIRN_EBUSY: no thread,
 * req answered 503.  The caller counts its threads (pub_stream_enter...).
 */
struct cairn_httpd_stream;
int pub_spawn(struct cairn_httpd_req *req, struct cairn_httpd_stream **s, void *(*fn)(void *),
	      void *arg);

/* One narinfo by hash part into out (reset), and how long it may be kept:
 * 0, or CAIRN_ENOENT/CAIRN_EFORMAT (absent), or another error. */
typedef int (*pub_narinfo_fn)(void *ctx, const char *hashpart, struct cairn_buf *out,
			      unsigned *max_age);
/*
 * Answer GET <hp>.narinfo from a thread of its own, for a one_fn that may
 * take long: 200 with Cache-Control (ttl, or what one_fn says) and ETag, 404 (CAIRN_ENOENT or
 * CAIRN_EFORMAT) with negative_ttl, 500.  enter, leave and the return as
 * pub_defer_narinfos below.
 */
int pub_defer_narinfo(struct cairn_httpd_req *req, const char *hp, pub_narinfo_fn one_fn,
		      void *ctx, unsigned ttl, unsigned negative_ttl, bool (*enter)(void *ectx),
		      void (*leave)(void *ectx), void *ectx);
/* Answer GET /narinfos (the batch route, narinfos.h) on the event loop,
 * each narinfo from one_fn, which must be quick there. */
int pub_send_narinfos(struct cairn_httpd_req *req, pub_narinfo_fn one_fn, void *ctx, unsigned ttl);
/*
 * The same from a thread of its own, for a one_fn that may take long (an
 * item indexed for its IPFS field: a pass over its NAR).  enter(ectx)
 * says whether a thread may start (leave(ectx) is called when it ends);
 * 1 when the request is taken (answered, whatever happens), 0 when no
 * thread could be had and the caller answers.
 */
int pub_defer_narinfos(struct cairn_httpd_req *req, pub_narinfo_fn one_fn, void *ctx, unsigned ttl,
		       bool (*enter)(void *ectx), void (*leave)(void *ectx), void *ectx);

/* What a producer sends: a nar (compressed on the fly, or a range), its
 * listing, or the tail of a bake that other clients follow (inf). */
enum pub_job_kind { JOB_NAR, JOB_LS, JOB_TAIL };
/* Start a producer for the item pi; answers the request in every case. */
int pub_start_job(struct cairn_publish *p, struct cairn_httpd_req *req,
		  const struct cairn_storedb_pathinfo *pi, enum pub_job_kind kind,
		  enum cairn_codec_method method, struct pub_inflight *inf);
/* The front page (publish-page.c): a route handler, data is p. */
int pub_h_root(struct cairn_httpd_req *req, void *data);

/* Register publish's figures in reg, a server's registry (publish-metrics.c). */
struct metrics;
int pub_metrics_register(struct cairn_publish *p, struct metrics *reg, struct cairn_error *err);

/* streams accounting */
bool pub_stream_enter(struct cairn_publish *p);
void pub_stream_leave(struct cairn_publish *p);

/* --- shared by publish.c, publish-narinfo.c and publish-bake.c ------------ */

/* Queue hp once (under q->lock): false when queued already or full. */
bool pub_workq_push_locked(struct pub_workq *q, const char *hp);
/* A worker thread's loop: fn for each hash part queued, until stopping. */
void pub_workq_run(struct cairn_publish *p, struct pub_workq *q,
		   void (*fn)(struct cairn_publish *p, const char *hp));
/* h in nix32, 52 characters and a NUL. */
void pub_hash32(const struct cairn_hash *h, char out[53]);
/* Are the n characters of s nix32 digits? */
bool pub_nix32_ok(const char *s, size_t n);
/* Make the public keys as served (cairn_publish_new). */
int pub_make_pubkeys(struct cairn_publish *p, struct cairn_error *err);

/* The narinfo of hp changes (a file was baked or dropped): forget it. */
void pub_memo_forget(struct cairn_publish *p, const char *hp);
/* The files baked for an item, in the order of the methods offered. */
void pub_baked_files(struct cairn_publish *p, const char *hashpart,
		     const struct cairn_hash *nar_hash, const struct cairn_codec_spec *offered,
		     size_t n_offered, struct cairn_publish_file *files);
/* Under cache_lock: pin b's file for a reader (and count it as used now);
 * false when it went. */
bool pub_baked_pin_locked(struct cairn_publish *p, const struct pub_baked *b);
/* Open the nar cache at cfg.cache_dir, reload what an earlier run left
 * there, and start the bakers. */
int pub_cache_open(struct cairn_publish *p, struct cairn_error *err);

#endif
