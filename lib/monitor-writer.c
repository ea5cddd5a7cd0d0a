/*
 * monitor-writer.c - the monitor's recorder of a survey's answers, on a
 * thread of its own: the observer thread drives the query engine (HTTP,
 * parsing, signatures) and hands each answer over; this thread writes it
 * into the pass's transaction (monitor-db.c) and settles the item's
 * verdict once every server has answered.  Each did about half of a first
 * pass's work on the one thread; on two cores they now overlap.  An item's
 * answers are held until its last, then written together; the pages read
 * only what a tick committed, so the order within it is nobody's to see.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/survey.h"
#include "monitor-int.h"
#include "cairn/banned.h"

/* Answers waiting at most: the observer waits past it (memory bound). */
#define QUEUE_MAX 4096
/* Items whose answers are held until their last one: past it, the oldest
 * is written as its answers come (a server far behind the others). */
#define MON_HOLD_ITEMS 8192

struct mon_answer {
	struct mon_answer *next;  /* the queue */
	struct mon_answer *hnext; /* an item's held answers */
	size_t pi, server;
	struct mon_obs_in obs; /* its strings in text[] */
	char text[];
};

static void held_free(struct mon_answer *a)
{
	while (a) {
		struct mon_answer *n = a->hnext;
		free(a);
		a = n;
	}
}

static int grow(struct mon_writer *w, size_t idx)
{
	if (idx < w->cap)
		return 0;
	size_t nc = w->cap ? w->cap : 1024;
	while (nc <= idx)
		nc *= 2;
	int64_t *it = realloc(w->item, nc * sizeof(*it));
	if (!it)
		return CAIRN_ENOMEM;
	w->item = it;
	uint8_t *g = realloc(w->got, nc);
	if (!g)
		return CAIRN_ENOMEM;
	w->got = g;
	struct mon_answer **h = realloc(w->held, nc * sizeof(*h));
	if (!h)
		return CAIRN_ENOMEM;
	w->held = h;
	memset(w->item + w->cap, 0, (nc - w->cap) * sizeof(*it));
	memset(w->got + w->cap, 0, nc - w->cap);
	memset(w->held + w->cap, 0, (nc - w->cap) * sizeof(*h));
	w->cap = nc;
	return 0;
}

static void hash_of(const char *path, char hash[MON_HASH_LEN + 1])
{
	const char *base = strrchr(path, '/');
	snprintf(hash, MON_HASH_LEN + 1, "%.32s", base ? base + 1 : path);
}

/* One answer's observation of a written item, and the signed log's record
 * when it says what it did not before. */
static int write_obs(struct mon_writer *w, int64_t item, const struct mon_answer *a,
		     struct cairn_error *err)
{
	struct cairn_monitor *m = w->m;
	int64_t server = m->server_ids[a->server];
	int rc;
	if (a->obs.state == 0)
		return 0; /* no answer: what it said before stands */
	if ((rc = mon_db_observe(m->w, item, server, &a->obs, w->now, err)) < 0)
		return rc;
	if (!m->cfg.key)
		return 0;
	bool changed = false;
	char hash[MON_HASH_LEN + 1];
	hash_of(cairn_survey_path(w->sv, a->pi), hash);
	if ((rc = mon_db_changed(m->w, item, server, w->now, &changed, err)) == 0 && changed &&
	    (rc = mon_db_log_append(m->w, w->now, m->urls[a->server], hash, &a->obs, err)) == 0)
		atomic_fetch_add(&m->logged, 1);
	return rc;
}

static void verdict_said(struct mon_writer *w, size_t pi, enum cairn_monitor_verdict v,
			 bool changed)
{
	if (!changed)
		return;
	atomic_fetch_add(&w->m->changes, 1);
	if (v == CAIRN_MONITOR_DIFFERS)
		mon_say(w->m, "%s: differs", cairn_survey_path(w->sv, pi));
}

/* Item pi into the database as the answers come: its row (and the local
 * store's observation, before any verdict), then what is held of it. */
static int write_item(struct mon_writer *w, size_t pi, struct cairn_error *err)
{
	struct cairn_monitor *m = w->m;
	int rc = 0;
	if (!w->item[pi]) {
		const char *path = cairn_survey_path(w->sv, pi);
		char hash[MON_HASH_LEN + 1];
		hash_of(path, hash);
		if ((rc = mon_db_item(m->w, hash, path, w->now, &w->item[pi], err)) < 0)
			return rc;
		if (m->store && (rc = mon_store_observe(m, w->item[pi], hash, w->now, err)) < 0)
			return rc;
	}
	struct mon_answer *a = w->held[pi];
	w->held[pi] = NULL;
	for (struct mon_answer *x = a; x && rc == 0; x = x->hnext)
		rc = write_obs(w, w->item[pi], x, err);
	held_free(a);
	return rc;
}

static int settle(struct mon_writer *w, size_t pi, struct cairn_error *err)
{
	enum cairn_monitor_verdict v;
	bool changed;
	int rc = mon_db_settle(w->m->w, w->item[pi], w->now, &v, &changed, err);
	if (rc == 0)
		verdict_said(w, pi, v, changed);
	return rc;
}

/*
 * Every server answered about item pi, all held: an item new to the
 * database (a first pass is all such) goes in with its verdict decided
 * here, from the answers, in one row: no read back of what was just
 * written, no second write of the row.  An item already there is settled
 * from its rows, which may hold what a server that did not answer now
 * said before.
 */
static int write_whole(struct mon_writer *w, size_t pi, struct cairn_error *err)
{
	struct cairn_monitor *m = w->m;
	int rc;
	if (m->store)
		return (rc = write_item(w, pi, err)) < 0 ? rc : settle(w, pi, err);
	struct cairn_monitor_obs obs[CAIRN_MONITOR_MAX_SERVERS];
	size_t n = 0;
	for (struct mon_answer *x = w->held[pi]; x && n < CAIRN_MONITOR_MAX_SERVERS; x = x->hnext)
		if (x->obs.state != 0)
			obs[n++] = (struct cairn_monitor_obs){.state = x->obs.state,
							      .sig = x->obs.sig,
							      .nar_hash = x->obs.nar_hash,
							      .nar_size = x->obs.nar_size,
							      .refs = x->obs.refs};
	enum cairn_monitor_verdict v = cairn_monitor_decide(obs, n);
	const char *path = cairn_survey_path(w->sv, pi);
	char hash[MON_HASH_LEN + 1];
	bool created = false;
	hash_of(path, hash);
	if ((rc = mon_db_item_settled(m->w, hash, path, w->now, v, &w->item[pi], &created, err)) <
		0 ||
	    (rc = write_item(w, pi, err)) < 0)
		return rc;
	if (!created)
		return settle(w, pi, err);
	verdict_said(w, pi, v, v != CAIRN_MONITOR_ABSENT);
	return 0;
}

/* Hold answer a of an item not written yet, writing the oldest held item
 * first when MON_HOLD_ITEMS are. */
static int hold(struct mon_writer *w, struct mon_answer *a, struct cairn_error *err)
{
	size_t pi = a->pi;
	if (!w->held[pi]) {
		int rc;
		while (w->ring_n == MON_HOLD_ITEMS) {
			size_t old = w->ring[w->ring_head];
			w->ring_head = (w->ring_head + 1) % MON_HOLD_ITEMS;
			w->ring_n--;
			if (w->held[old] && (rc = write_item(w, old, err)) < 0) {
				free(a);
				return rc;
			}
		}
		w->ring[(w->ring_head + w->ring_n++) % MON_HOLD_ITEMS] = pi;
	}
	a->hnext = w->held[pi];
	w->held[pi] = a;
	return 0;
}

/* One answer (this thread only; takes it). */
static int record(struct mon_writer *w, struct mon_answer *a, struct cairn_error *err)
{
	size_t pi = a->pi;
	int rc;
	if ((rc = grow(w, pi)) < 0) {
		free(a);
		return cairn_error_set(err, rc, "monitor: out of memory");
	}
	if (pi + 1 > w->used)
		w->used = pi + 1;
	bool last = ++w->got[pi] == w->n_servers;
	if (w->item[pi]) {
		/* written already (held too long): as it comes */
		rc = write_obs(w, w->item[pi], a, err);
		free(a);
		return rc == 0 && last ? settle(w, pi, err) : rc;
	}
	if ((rc = hold(w, a, err)) < 0)
		return rc;
	return last ? write_whole(w, pi, err) : 0;
}

/* The pass ended with items not every server answered about (it
 * stopped): what they said is written (when write), with no verdict, as
 * before; the rest freed. */
static int write_rest(struct mon_writer *w, bool write, struct cairn_error *err)
{
	int rc = 0;
	for (; w->ring_n; w->ring_n--, w->ring_head = (w->ring_head + 1) % MON_HOLD_ITEMS) {
		size_t pi = w->ring[w->ring_head];
		if (write && rc == 0 && w->held[pi])
			rc = write_item(w, pi, err);
		held_free(w->held[pi]);
		w->held[pi] = NULL;
	}
	return rc;
}

static void *writer_main(void *arg)
{
	struct mon_writer *w = arg;
	struct cairn_error e;
	cairn_error_init(&e);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->closing) {
			w->writer_waits = true;
			pthread_cond_wait(&w->cond, &w->mu);
			w->writer_waits = false;
		}
		/* all that is queued at once: one wake-up per handful of
		 * answers, not one per answer */
		struct mon_answer *a = w->head;
		if (!a)
			break; /* closing, and all written */
		w->head = w->tail = NULL;
		w->queued = 0;
		if (w->observer_waits)
			pthread_cond_broadcast(&w->cond); /* room for the observer */
		bool skip = w->rc != 0;
		pthread_mutex_unlock(&w->mu);
		int rc = 0;
		while (a) {
			struct mon_answer *next = a->next;
			if (skip || rc < 0)
				free(a);
			else
				rc = record(w, a, &e);
			a = next;
		}
		pthread_mutex_lock(&w->mu);
		if (rc < 0 && !w->rc) {
			w->rc = rc;
			w->err = e;
		}
	}
	int rc = write_rest(w, w->rc == 0, &e);
	if (rc < 0 && !w->rc) {
		w->rc = rc;
		w->err = e;
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void mon_writer_init(struct mon_writer *w, struct cairn_monitor *m)
{
	memset(w, 0, sizeof(*w));
	w->m = m;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
}

void mon_writer_release(struct mon_writer *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	free(w->item);
	free(w->got);
	free(w->held);
	free(w->ring);
}

int mon_writer_start(struct mon_writer *w, struct cairn_survey *sv, size_t n_servers, int64_t now,
		     struct cairn_error *err)
{
	/* only what the last pass used: a tick with nothing new costs nothing
	 * however many items a full pass had */
	if (w->used) {
		memset(w->got, 0, w->used);
		memset(w->item, 0, w->used * sizeof(*w->item));
		w->used = 0;
	}
	if (!w->ring && !(w->ring = malloc(MON_HOLD_ITEMS * sizeof(*w->ring))))
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
	w->ring_head = w->ring_n = 0;
	w->sv = sv;
	w->n_servers = n_servers;
	w->now = now;
	w->rc = 0;
	w->closing = false;
	cairn_error_init(&w->err);
	int e = pthread_create(&w->thread, NULL, writer_main, w);
	if (e)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: cannot start the writer");
	w->running = true;
	return 0;
}

int mon_writer_put(struct mon_writer *w, size_t pi, size_t server, const struct mon_obs_in *obs,
		   struct cairn_error *err)
{
	/* one allocation, its strings after it */
	size_t hl = obs && obs->nar_hash ? strlen(obs->nar_hash) + 1 : 0;
	size_t rl = obs && obs->refs ? strlen(obs->refs) + 1 : 0;
	size_t nl = obs && obs->narinfo ? obs->narinfo_len + 1 : 0;
	struct mon_answer *a = malloc(sizeof(*a) + hl + rl + nl);
	if (!a)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
	memset(a, 0, sizeof(*a));
	a->pi = pi;
	a->server = server;
	if (obs) {
		char *t = a->text;
		a->obs = *obs;
		a->obs.nar_hash = hl ? memcpy(t, obs->nar_hash, hl) : NULL;
		a->obs.refs = rl ? memcpy(t + hl, obs->refs, rl) : NULL;
		if (nl) {
			memcpy(t + hl + rl, obs->narinfo, nl - 1);
			t[hl + rl + nl - 1] = '\0';
			a->obs.narinfo = t + hl + rl;
		}
	}
	pthread_mutex_lock(&w->mu);
	while (w->queued >= QUEUE_MAX && !w->rc) {
		w->observer_waits = true;
		pthread_cond_wait(&w->cond, &w->mu);
		w->observer_waits = false;
	}
	int rc = w->rc;
	if (rc) {
		*err = w->err;
		pthread_mutex_unlock(&w->mu);
		free(a);
		return rc;
	}
	if (w->tail)
		w->tail->next = a;
	else
		w->head = a;
	w->tail = a;
	w->queued++;
	if (w->writer_waits)
		pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

int mon_writer_finish(struct mon_writer *w, struct cairn_error *err)
{
	if (!w->running)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->closing = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	w->running = false;
	w->sv = NULL;
	if (w->rc && err)
		*err = w->err;
	return w->rc;
}
