/*
 * monitor-writer.c - the monitor's recorder of a survey's answers, on a
 * thread of its own: the observer thread drives the query engine (HTTP,
 * parsing, signatures) and hands each answer over; this thread writes it
 * into the pass's transaction (monitor-db.c) and settles the item's
 * verdict once every server has answered.  Each did about half of a first
 * pass's work on the one thread; on two cores they now overlap.  Answers
 * are written in the order they came, so what the pages read is what one
 * thread would have written.
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

struct mon_answer {
	struct mon_answer *next;
	size_t pi, server;
	struct mon_obs_in obs; /* its strings owned (below) */
	char *nar_hash, *refs, *narinfo;
};

static void answer_free(struct mon_answer *a)
{
	if (!a)
		return;
	free(a->nar_hash);
	free(a->refs);
	free(a->narinfo);
	free(a);
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
	memset(w->item + w->cap, 0, (nc - w->cap) * sizeof(*it));
	memset(w->got + w->cap, 0, nc - w->cap);
	w->cap = nc;
	return 0;
}

/* One answer into the database (this thread only). */
static int record(struct mon_writer *w, const struct mon_answer *a, struct cairn_error *err)
{
	struct cairn_monitor *m = w->m;
	size_t pi = a->pi;
	int rc;
	if ((rc = grow(w, pi)) < 0)
		return cairn_error_set(err, rc, "monitor: out of memory");
	if (pi + 1 > w->used)
		w->used = pi + 1;
	const char *path = cairn_survey_path(w->sv, pi);
	const char *base = strrchr(path, '/');
	char hash[MON_HASH_LEN + 1];
	snprintf(hash, sizeof(hash), "%.32s", base ? base + 1 : path);
	if (!w->item[pi]) {
		if ((rc = mon_db_item(m->w, hash, path, w->now, &w->item[pi], err)) < 0)
			return rc;
		/* the local store, once per item and pass, before any verdict */
		if (m->store && (rc = mon_store_observe(m, w->item[pi], hash, w->now, err)) < 0)
			return rc;
	}
	int64_t server = m->server_ids[a->server];
	if (a->obs.state != 0) {
		if ((rc = mon_db_observe(m->w, w->item[pi], server, &a->obs, w->now, err)) < 0)
			return rc;
		if (m->cfg.key) {
			/* the signed log keeps changes: what a server says now
			 * that it did not say before (or was never seen saying) */
			bool changed = false;
			if ((rc = mon_db_changed(m->w, w->item[pi], server, w->now, &changed, err)) ==
				0 &&
			    changed &&
			    (rc = mon_db_log_append(m->w, w->now, m->urls[a->server], hash, &a->obs,
						    err)) == 0)
				atomic_fetch_add(&m->logged, 1);
			if (rc < 0)
				return rc;
		}
	}
	if (++w->got[pi] == w->n_servers) {
		enum cairn_monitor_verdict v;
		bool changed;
		if ((rc = mon_db_settle(m->w, w->item[pi], w->now, &v, &changed, err)) < 0)
			return rc;
		if (changed) {
			atomic_fetch_add(&m->changes, 1);
			if (v == CAIRN_MONITOR_DIFFERS)
				mon_say(m, "%s: differs", path);
		}
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct mon_writer *w = arg;
	struct cairn_error e;
	cairn_error_init(&e);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->head && !w->closing)
			pthread_cond_wait(&w->cond, &w->mu);
		struct mon_answer *a = w->head;
		if (!a)
			break; /* closing, and all written */
		w->head = a->next;
		if (!w->head)
			w->tail = NULL;
		w->queued--;
		pthread_cond_broadcast(&w->cond); /* room for the observer */
		bool skip = w->rc != 0;
		pthread_mutex_unlock(&w->mu);
		int rc = skip ? 0 : record(w, a, &e);
		answer_free(a);
		pthread_mutex_lock(&w->mu);
		if (rc < 0 && !w->rc) {
			w->rc = rc;
			w->err = e;
		}
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
	struct mon_answer *a = calloc(1, sizeof(*a));
	if (!a)
		return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
	a->pi = pi;
	a->server = server;
	if (obs) {
		a->obs = *obs;
		if ((obs->nar_hash && !(a->nar_hash = strdup(obs->nar_hash))) ||
		    (obs->refs && !(a->refs = strdup(obs->refs))) ||
		    (obs->narinfo && !(a->narinfo = malloc(obs->narinfo_len + 1)))) {
			answer_free(a);
			return cairn_error_set(err, CAIRN_ENOMEM, "monitor: out of memory");
		}
		if (a->narinfo)
			memcpy(a->narinfo, obs->narinfo, obs->narinfo_len);
		a->obs.nar_hash = a->nar_hash;
		a->obs.refs = a->refs;
		a->obs.narinfo = a->narinfo;
	}
	pthread_mutex_lock(&w->mu);
	while (w->queued >= QUEUE_MAX && !w->rc)
		pthread_cond_wait(&w->cond, &w->mu);
	int rc = w->rc;
	if (rc) {
		*err = w->err;
		pthread_mutex_unlock(&w->mu);
		answer_free(a);
		return rc;
	}
	if (w->tail)
		w->tail->next = a;
	else
		w->head = a;
	w->tail = a;
	w->queued++;
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
