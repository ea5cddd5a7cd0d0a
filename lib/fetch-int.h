/*
 * fetch-int.h - what the parts of the fetch engine share (internal):
 * fetch.c (life, items, queries, the run), fetch-decide.c (the trust
 * decision and references) and fetch-place.c (downloads and placing).
 */
#ifndef CAIRN_LIB_FETCH_INT_H
#define CAIRN_LIB_FETCH_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/buf.h"
#include "cairn/codec.h"
#include "cairn/fetch.h"
#include "cairn/hash.h"
#include "cairn/ipfs.h"
#include "cairn/keys.h"
#include "cairn/storedb-write.h"
#include "cairn/storepath.h"
#include "download.h"

/* Narinfo queries in flight at once; more wait in our own queue. */
#define QUERY_INFLIGHT_MAX 256
/* Network retries of one narinfo query on the same server. */
#define QUERY_RETRIES 1
/* How often the network thread looks for finished work while workers run. */
#define WORKER_POLL_MS 5
/* Connections opened early to the first server, at most (fetch.c). */
#define FETCH_WARM_MAX 16
/* How often items waiting for a preferred server see whether their grace is over. */
#define EARLY_POLL_MS 100

enum answer_state { A_PENDING = 0, A_PRESENT, A_ABSENT, A_INVALID, A_ERROR };

struct item;

struct server {
	struct cairn_http_server *hs;
	char *url;
	size_t order;	/* position given */
	char *demoted;	/* why its bytes failed verification (now or remembered), or NULL */
	bool demoted_now; /* in this run */
	uint64_t speed;	  /* bytes/s measured in earlier runs (nicache), 0 unknown */
	uint64_t rtt_ms;  /* request to first byte, earlier runs (nicache), 0 unknown */
};

struct answer {
	struct item *it;
	size_t si; /* server index */
	enum answer_state state;
	struct cairn_narinfo *ni;
	char *msg; /* A_ERROR, or why the narinfo was refused */
	int group; /* -1 none */
	bool ca_ok;
	uint32_t sigs_ok; /* bit i: ni->sigs[i] verified with a trusted key */
};

enum item_state {
	I_NEW = 0,  /* added, not started */
	I_QUERY,    /* narinfo answers pending */
	I_READY,    /* decided, waiting for a download slot */
	I_DOWNLOAD, /* bytes flowing */
	I_WAITING,  /* every source failed; answers still to come may give more */
	I_VERIFIED, /* waiting for references to commit */
	I_PLACED,   /* in place and synced, waiting for its batch's registration */
	I_FINAL,    /* status set */
};

struct item {
	struct cairn_fetch *f;
	size_t index;
	struct cairn_store_path sp;
	char *path;
	char *base;
	bool requested;
	enum item_state st;
	struct answer *ans;
	size_t n_pending;
	/* decision */
	struct cairn_hash nar_hash;
	uint64_t nar_size;
	size_t *srcs;
	size_t n_srcs, cur_src;
	const struct cairn_narinfo *chosen; /* the accepted claim (borrowed from ans) */
	int chosen_group;
	bool early;			    /* decided before every server answered */
	bool early_waiting;		    /* acceptable, waiting for a preferred server */
	double grace_s;			    /* ... this long from t_start (fetch_early_go) */
	int wait_code;			    /* I_WAITING: why the sources so far failed */
	char *wait_headline;
	struct item **deps;
	size_t n_deps;
	bool by_ca;
	struct cairn_ca ca;
	unsigned n_signers;
	/* what a store records (storedb-write.h); strings owned unless noted */
	char **refs;	   /* full paths, sorted, self included */
	size_t n_refs;
	char *deriver;	   /* full path or NULL */
	const char **sigs; /* accepted signatures, sorted; borrowed from ans */
	size_t n_sigs;
	const char *ca_text; /* a CA the path recomputes from; borrowed from ans */
	struct cairn_storedb_drv_output *outputs; /* a .drv's, read once placed */
	size_t n_outputs;
	bool on_disk;	     /* files there but not valid: check, do not download */
	bool in_place;	     /* checked on disk, nothing downloaded */
	bool registered;
	/* result */
	enum cairn_fetch_status status;
	int code;
	struct cairn_buf reason;
	const char *server_used;
	const char *compression;
	struct cairn_fetch_choice *choices; /* the picker's estimates, or NULL */
	size_t n_choices;
	double choice_net_rate;
	const char *choice_rate_from;
	bool speed_kept;
	double t_dl; /* when its download started */ /* a multi-source download kept each source's rate */
	double t_dl_first; /* when its first bytes came in (0: not yet) */
	uint64_t dl_bytes;
	double t_start, t_end;
	struct cairn_dl *dl;
	struct cairn_dl_tree *tree; /* the sink: a tree under the root */
	struct cairn_dl_file *file; /* or a NAR file in nar_dir */
	struct ipfs_src_job *ipfs_job; /* its bytes being asked of gateways, or NULL */
};

struct cairn_fetch {
	struct cairn_fetch_config cfg;
	char store_dir[CAIRN_STORE_DIR_MAX + 1];
	struct cairn_http *http;
	struct server *servers;
	size_t n_servers;
	struct item **items;
	size_t n_items, cap_items;
	bool started;
	bool store_ready;
	struct cairn_survey *survey; /* the narinfo queries (survey.h) */
	struct item **qmap;	     /* survey path index -> item */
	size_t n_qmap, cap_qmap;
	size_t downloads_active;
	uint64_t bytes_received;
	uint64_t bytes_expected;
	double t_first_dl; /* when the first download started */
	size_t warmed;	   /* connections asked for early (fetch.c) */
	bool warm_tried;   /* the first server answered: warmed or not (fetch.c) */
	double t_first_byte;	  /* when its first bytes came in (0: not yet) */
	uint64_t bytes_at_first;  /* bytes_received then */
	double unpack[CAIRN_CODEC_METHOD_COUNT_]; /* NAR bytes/s by method */
	bool unpack_known, unpack_measured;
	size_t n_done, n_failed, n_present;
	size_t n_ready, n_verified; /* items in I_READY, I_VERIFIED: scans skip when 0 */
	size_t n_early_waiting;	    /* items with early_waiting set */
	struct item **batch;	    /* I_PLACED items, in the order placed */
	size_t n_batch, cap_batch;
	int fatal;
	struct cairn_error fatal_err;
	struct cairn_dl_pool *pool; /* workers that unpack and verify, or NULL */
	struct ipfs_src *ipfs;	    /* items asked of gateways (fetch-ipfs.c), or NULL */
	/* the chunkers the --seed paths were cut with (fetch-ipfs.c): the
	 * jobs' threads cut them again for a new one, one at a time */
	pthread_mutex_t seeds_mu;
	struct cairn_chunker_spec seeds_cut[4];
	size_t n_seeds_cut;
};


/* fetch.c */
struct cairn_nicache;
double fetch_now_s(void);
/* fetch-codec.c: this machine's unpacking speeds, kept in cache (may be
 * NULL) or measured now; *measured false when built-in figures stand in */
void fetch_codec_rates(struct cairn_nicache *cache, double rate[CAIRN_CODEC_METHOD_COUNT_],
		       bool *measured);
double fetch_codec_builtin_rate(enum cairn_codec_method m);
int64_t fetch_wall_now(void);
void fetch_fatal(struct cairn_fetch *f, int code, const char *msg);
void fetch_db_trouble(struct cairn_fetch *f, int code, const struct cairn_error *e);
struct item *fetch_find_item(const struct cairn_fetch *f, const struct cairn_store_path *sp);
int fetch_new_item(struct cairn_fetch *f, const struct cairn_store_path *sp, bool requested, struct item **out, struct cairn_error *err);
void fetch_reason_add(struct item *it, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void fetch_item_finish(struct item *it, enum cairn_fetch_status st, int code);
void fetch_item_fail(struct item *it, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void fetch_answer_done(struct answer *a);
void fetch_item_start(struct item *it);

/* fetch-decide.c */
/* How long a decision that one answer allows (K = 1) waits for servers
 * preferred over the answering ones (see "Servers" in docs/cairn-fetch.md):
 * at most this; for servers whose time to first byte is known, that many
 * of it, but not under the floor. */
#define FETCH_PRIORITY_GRACE_S 2.0
#define FETCH_PRIORITY_GRACE_RTTS 4.0
#define FETCH_PRIORITY_GRACE_MIN_S 0.3
/* One server as an early decision sees it, in the order of preference. */
struct early_view {
	bool demoted; /* its bytes failed verification: last resort */
	bool pending; /* has not answered yet */
	bool member;  /* its narinfo is in the accepted group */
	double rtt_s; /* its time to first byte from earlier runs, 0 unknown */
};
/* Whether to start the download now (true) or wait for more answers,
 * waited seconds after the queries went out; *grace (may be NULL): how
 * long from then it waits in all. */
bool fetch_early_go(const struct early_view *v, size_t n, double waited, double *grace);
void fetch_decide(struct item *it, bool early);
void fetch_late_answer(struct item *it, struct answer *a);

/* fetch-place.c */
int fetch_target_path(const struct item *it, char *out, size_t cap);
bool fetch_item_on_disk(const struct item *it);
int fetch_in_target(struct cairn_fetch *f, const struct cairn_store_path *sp, struct cairn_error *e);
int fetch_store_ready(struct cairn_fetch *f, struct cairn_error *err);
void fetch_download_free(struct item *it);
void fetch_add_dl_source(struct item *it, size_t si);
void fetch_download_start(struct item *it);

/* The sink being ready, the download from the servers' NAR files. */
void fetch_download_servers(struct item *it);

/* fetch-ipfs.c: the NAR from IPFS gateways into sink, on a thread of its
 * own; true when handed over (the verdict comes from ipfs_src_drain: the
 * item verified, or fetch_download_servers). */
struct cairn_dl_sink;
struct ipfs_src_job;
bool fetch_try_ipfs(struct item *it, const struct cairn_dl_sink *sink);
/* Call the item's job off, if any (its sink is about to go). */
void fetch_ipfs_cancel(struct item *it);
int fetch_check_in_place(struct item *it, struct cairn_error *e);
size_t fetch_deps_unsettled(const struct item *it);
void fetch_settle(struct cairn_fetch *f);
size_t fetch_fail_cycles(struct cairn_fetch *f);
void fetch_pump(struct cairn_fetch *f);

#endif
