/*
 * edge-batch.c - the mirror's GET /narinfos (narinfos.h, docs/PROTOCOL.md
 * "Batch narinfos"): every hash part through edge_narinfo_lookup, the one
 * narinfo path of the mirror, so that what a batch says is what the single
 * route would say (trust and k-of-n per item, coalescing, stale-if-error,
 * only-if-cached); misses are looked up concurrently, a few threads per
 * batch, on the miss thread the request was deferred to.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/edge.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/narinfos.h"
#include "cairn/storepath.h"
#include "edge-int.h"
#include "map.h"
#include "cairn/banned.h"

/* lookups of one batch at once: enough to overlap upstream round trips */
#define BATCH_WORKERS 16
/* helper threads of all batches together: past it, a batch's own miss
 * thread looks its hashes up alone (slower, never refused) */
#define BATCH_WORKERS_TOTAL 256

static atomic_int workers_total;

typedef char hashpart[CAIRN_STORE_HASH_LEN + 1];

struct edge_batch {
	struct miss m; /* first: free(m) frees the batch */
	hashpart asked[CAIRN_NARINFOS_HASHES_MAX];
	size_t n_asked;
	bool closure, held_only;
};

struct found {
	int rc; /* LOOKUP_PRESENT, LOOKUP_ABSENT, LOOKUP_FAILED */
	char *text;
	size_t len;
	int64_t max_age;
};

struct job {
	struct cairn_edge *e;
	hashpart *h;
	struct found *f;
	size_t n;
	atomic_size_t next;
	bool held_only, closure;
};

static void look(struct job *j, size_t i)
{
	struct found *f = &j->f[i];
	int stale;
	f->rc = edge_narinfo_lookup_closure(j->e, j->h[i], &f->text, &f->len, &f->max_age,
					    &stale, j->held_only, j->closure);
	if (j->held_only && (f->rc == LOOKUP_WOULD_WAIT ||
			     (f->rc == LOOKUP_PRESENT && !edge_nar_held(j->e, f->text, f->len)))) {
		/* what is not held is absent to an only-if-cached asker */
		free(f->text);
		f->text = NULL;
		f->rc = LOOKUP_ABSENT;
		f->max_age = 0;
	}
}

static void *worker(void *arg)
{
	struct job *j = arg;
	for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < j->n;)
		look(j, i);
	return NULL;
}

/* Look up h[from..to) into f, concurrently. */
static void resolve(struct cairn_edge *e, hashpart *h, struct found *f, size_t from, size_t to,
		    bool held_only, bool closure)
{
	struct job j = {.e = e,
			.h = h + from,
			.f = f + from,
			.n = to - from,
			.held_only = held_only,
			.closure = closure};
	atomic_init(&j.next, 0);
	/* an only-if-cached asker never sends anything upstream */
	struct fetch **primed = held_only ? NULL : calloc(to - from, sizeof(*primed));
	size_t n_primed = primed ? edge_narinfo_prime(e, (const char(*)[sizeof(hashpart)])(h + from),
						      to - from, closure, primed)
				 : 0;
	pthread_t tids[BATCH_WORKERS];
	size_t started = 0;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, EDGE_PRODUCER_STACK);
	while (started < BATCH_WORKERS && started + 1 < j.n) {
		if (atomic_fetch_add(&workers_total, 1) >= BATCH_WORKERS_TOTAL ||
		    pthread_create(&tids[started], &attr, worker, &j) != 0) {
			atomic_fetch_sub(&workers_total, 1);
			break;
		}
		started++;
	}
	pthread_attr_destroy(&attr);
	worker(&j); /* this thread too, and alone when none could start */
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	atomic_fetch_sub(&workers_total, (int)started);
	for (size_t i = 0; i < n_primed; i++)
		edge_fetch_unref(primed[i]);
	free(primed);
}

/* The References of text, not seen yet, appended to h (up to max). */
static void add_refs(const char *text, size_t len, hashpart *h, size_t *n, size_t max,
		     struct map *seen)
{
	struct cairn_narinfo *ni = NULL;
	if (cairn_narinfo_parse(text, len, &ni, NULL) < 0)
		return;
	for (size_t i = 0; i < ni->n_refs && *n < max; i++) {
		const char *r = ni->refs[i];
		if (strlen(r) <= CAIRN_STORE_HASH_LEN || !cairn_store_hash_valid(r, CAIRN_STORE_HASH_LEN))
			continue;
		hashpart x;
		memcpy(x, r, CAIRN_STORE_HASH_LEN);
		x[CAIRN_STORE_HASH_LEN] = '\0';
		if (map_get(seen, x) || map_put(seen, x, (void *)1, NULL) < 0)
			continue;
		memcpy(h[(*n)++], x, sizeof(x));
	}
	cairn_narinfo_free(ni);
}

void edge_miss_batch(struct miss *m)
{
	struct edge_batch *b = (struct edge_batch *)m;
	struct cairn_edge *e = m->e;
	size_t max = b->closure ? CAIRN_NARINFOS_COUNT_MAX : b->n_asked;
	hashpart *h = calloc(max, sizeof(*h));
	struct found *f = calloc(max, sizeof(*f));
	struct cairn_buf out = CAIRN_BUF_INIT(CAIRN_NARINFOS_RESPONSE_MAX);
	struct map seen;
	map_init(&seen, NULL);
	size_t n = 0, done = 0, entries = 0;
	int64_t max_age = INT64_MAX;
	int status = 200;
	if (!h || !f) {
		status = 503;
		goto out;
	}
	for (size_t i = 0; i < b->n_asked; i++)
		if (!map_get(&seen, b->asked[i]) && map_put(&seen, b->asked[i], (void *)1, NULL) == 0)
			memcpy(h[n++], b->asked[i], sizeof(hashpart));
	size_t n_first = n;
	size_t bytes = 0;
	/* level by level: each level's misses overlap */
	while (done < n) {
		size_t to = n;
		resolve(e, h, f, done, to, b->held_only, b->closure);
		for (size_t i = done; i < to; i++) {
			if (f[i].rc != LOOKUP_PRESENT)
				continue;
			bytes += f[i].len;
			if (b->closure && bytes < CAIRN_NARINFOS_RESPONSE_MAX / 2)
				add_refs(f[i].text, f[i].len, h, &n, max, &seen);
		}
		done = to;
	}
	for (size_t i = 0; i < n_first; i++)
		if (f[i].rc < 0) {
			/* the single route would say 502 for it: so does the batch,
			 * rather than call it absent */
			status = 502;
			goto out;
		}
	int rc = cairn_narinfos_begin(&out);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		bool extra = i >= n_first;
		if (extra && (f[i].rc != LOOKUP_PRESENT || entries + 1 >= CAIRN_NARINFOS_COUNT_MAX ||
			      out.len + f[i].len > CAIRN_NARINFOS_RESPONSE_MAX / 2))
			continue;
		if (f[i].rc == LOOKUP_PRESENT)
			rc = cairn_narinfos_add(&out, h[i], f[i].text, f[i].len);
		else
			rc = cairn_narinfos_add_absent(&out, h[i]);
		entries++;
		if (f[i].max_age < max_age)
			max_age = f[i].max_age;
	}
	if (rc == 0)
		rc = cairn_narinfos_end(&out, entries);
	if (rc)
		status = 503;
out:
	if (status == 200) {
		char cc[64];
		/* as fresh as its least fresh part */
		edge_cc_404(cc, sizeof(cc), max_age == INT64_MAX ? 0 : max_age);
		const char *hdrs[] = {"Cache-Control", cc, NULL};
		cairn_httpd_stream_reply(m->s, 200, CAIRN_NARINFOS_CONTENT_TYPE, out.data, out.len,
					 hdrs);
	} else {
		cairn_httpd_stream_error(m->s, status, NULL);
	}
	for (size_t i = 0; f && i < n; i++)
		free(f[i].text);
	free(f);
	free(h);
	map_release(&seen);
	cairn_buf_release(&out);
}

int edge_h_narinfos(struct cairn_httpd_req *req, void *data)
{
	struct cairn_edge *e = data;
	struct cairn_error err;
	cairn_error_init(&err);
	struct edge_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return cairn_httpd_send_error(req, 503);
	size_t qlen = 0;
	const char *q = cairn_httpd_req_query(req, &qlen);
	if (!q || cairn_narinfos_parse_query(q, qlen, b->asked, &b->n_asked, &b->closure, &err) < 0) {
		free(b);
		if (!q)
			cairn_error_set(&err, CAIRN_EFORMAT, "narinfos: no query (hashes=H1,H2,...)");
		return cairn_httpd_send_error_why(req, 400, cairn_error_msg(&err));
	}
	b->held_only = edge_req_only_if_cached(req) != 0;
	b->m.kind = MISS_BATCH;
	return edge_defer_miss(e, req, &b->m);
}
