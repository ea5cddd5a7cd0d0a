/*
 * ipfs-source.c - IPFS gateways as a byte source that does not hold its
 * caller's thread (see ipfs-source.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ipfs-source.h"
#include "cairn/banned.h"

struct produce {
	const struct cairn_ipfs_fetch_config *cfg;
	const struct cairn_cid *root;
	uint64_t max;
	const char *gateway;
	struct cairn_ipfs_fetch_stats *st;
};

static int produce(void *ctx, cairn_dl_write_fn write, void *wctx, struct cairn_error *err)
{
	struct produce *p = ctx;
	return cairn_ipfs_fetch_file(p->cfg, p->root, p->max, write, wctx, &p->gateway, p->st,
				     err);
}

int ipfs_src_nar(const struct cairn_ipfs_fetch_config *cfg, const struct cairn_cid *root,
		 const struct cairn_dl_expect *ex, const struct cairn_dl_sink *sink,
		 const char **gateway, struct cairn_ipfs_fetch_stats *st,
		 struct cairn_error *err)
{
	struct produce p = {.cfg = cfg, .root = root, .max = ex->nar_size, .st = st};
	int rc = cairn_dl_check_stream(ex, produce, &p, sink, err);
	if (gateway)
		*gateway = p.gateway;
	return rc;
}

struct ipfs_src {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned max, running;
	void (*wake)(void *ctx);
	void *wake_ctx;
	/* waiting for a slot (in order), on their threads, over */
	struct ipfs_src_job *waiting, *active, *over;
};

int ipfs_src_new(struct ipfs_src **out, unsigned max, void (*wake)(void *ctx), void *wake_ctx,
		 struct cairn_error *err)
{
	struct ipfs_src *s = calloc(1, sizeof(*s));
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	if (!max)
		max = CAIRN_IPFS_JOBS_DEFAULT;
	s->max = max > CAIRN_IPFS_JOBS_MAX ? CAIRN_IPFS_JOBS_MAX : max;
	s->wake = wake;
	s->wake_ctx = wake_ctx;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	*out = s;
	return 0;
}

struct ipfs_src_job *ipfs_src_job_new(void)
{
	struct ipfs_src_job *j = calloc(1, sizeof(*j));
	if (j) {
		cairn_error_init(&j->err);
		atomic_init(&j->stop, false);
	}
	return j;
}

static bool job_stop(void *ctx)
{
	struct ipfs_src_job *j = ctx;
	return atomic_load(&j->stop);
}

static void unlink_job(struct ipfs_src_job **list, struct ipfs_src_job *j)
{
	for (struct ipfs_src_job **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			j->next = NULL;
			return;
		}
}

static void push_tail(struct ipfs_src_job **list, struct ipfs_src_job *j)
{
	struct ipfs_src_job **pp = list;
	while (*pp)
		pp = &(*pp)->next;
	j->next = NULL;
	*pp = j;
}

static void *job_main(void *arg)
{
	struct ipfs_src_job *j = arg;
	struct ipfs_src *s = j->src;
	j->cfg.stop = job_stop;
	j->cfg.stop_ctx = j;
	j->rc = ipfs_src_nar(&j->cfg, &j->root, &j->ex, &j->sink, &j->gateway, &j->st, &j->err);
	pthread_mutex_lock(&s->mu);
	unlink_job(&s->active, j);
	push_tail(&s->over, j);
	s->running--;
	pthread_cond_broadcast(&s->cond);
	void (*wake)(void *) = s->wake;
	void *wake_ctx = s->wake_ctx;
	pthread_mutex_unlock(&s->mu);
	/* j may be drained and freed from here on; s lives until its jobs end */
	if (wake)
		wake(wake_ctx);
	return NULL;
}

/* Under s->mu: start waiting jobs while there is room; one whose thread
 * cannot start is over at once (its owner falls back). */
static void start_locked(struct ipfs_src *s)
{
	while (s->waiting && s->running < s->max) {
		struct ipfs_src_job *j = s->waiting;
		s->waiting = j->next;
		j->next = NULL;
		int e = pthread_create(&j->tid, NULL, job_main, j);
		if (e) {
			j->rc = cairn_error_set(&j->err, CAIRN_ENOMEM,
						"ipfs: cannot start a thread (%s)", strerror(e));
			push_tail(&s->over, j);
			continue;
		}
		j->started = true;
		s->running++;
		push_tail(&s->active, j);
	}
}

void ipfs_src_submit(struct ipfs_src *s, struct ipfs_src_job *j)
{
	j->src = s;
	pthread_mutex_lock(&s->mu);
	push_tail(&s->waiting, j);
	start_locked(s);
	pthread_mutex_unlock(&s->mu);
}

void ipfs_src_cancel(struct ipfs_src *s, struct ipfs_src_job *j)
{
	pthread_mutex_lock(&s->mu);
	bool waiting = false;
	for (struct ipfs_src_job *w = s->waiting; w; w = w->next)
		waiting |= w == j;
	if (waiting)
		unlink_job(&s->waiting, j);
	atomic_store(&j->stop, true);
	pthread_mutex_unlock(&s->mu);
	if (j->started)
		pthread_join(j->tid, NULL); /* it leaves active for over */
	pthread_mutex_lock(&s->mu);
	unlink_job(&s->over, j);
	start_locked(s);
	pthread_mutex_unlock(&s->mu);
	free(j);
}

size_t ipfs_src_running(struct ipfs_src *s)
{
	pthread_mutex_lock(&s->mu);
	size_t n = s->running;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t ipfs_src_pending(struct ipfs_src *s)
{
	if (!s)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&s->mu);
	for (struct ipfs_src_job *j = s->waiting; j; j = j->next)
		n++;
	for (struct ipfs_src_job *j = s->active; j; j = j->next)
		n++;
	for (struct ipfs_src_job *j = s->over; j; j = j->next)
		n++;
	pthread_mutex_unlock(&s->mu);
	return n;
}

size_t ipfs_src_drain(struct ipfs_src *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	struct ipfs_src_job *over = s->over;
	s->over = NULL;
	start_locked(s);
	pthread_mutex_unlock(&s->mu);
	size_t n = 0;
	while (over) {
		struct ipfs_src_job *j = over;
		over = j->next;
		if (j->started)
			pthread_join(j->tid, NULL);
		j->done(j);
		free(j);
		n++;
	}
	return n;
}

void ipfs_src_wait(struct ipfs_src *s, int timeout_ms)
{
	if (!s || timeout_ms <= 0)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	while (!s->over && (s->active || s->waiting))
		if (pthread_cond_timedwait(&s->cond, &s->mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&s->mu);
}

void ipfs_src_free(struct ipfs_src *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	while (s->waiting) {
		struct ipfs_src_job *j = s->waiting;
		s->waiting = j->next;
		free(j);
	}
	for (struct ipfs_src_job *j = s->active; j; j = j->next)
		atomic_store(&j->stop, true);
	while (s->active)
		pthread_cond_wait(&s->cond, &s->mu);
	struct ipfs_src_job *over = s->over;
	s->over = NULL;
	pthread_mutex_unlock(&s->mu);
	while (over) {
		struct ipfs_src_job *j = over;
		over = j->next;
		if (j->started)
			pthread_join(j->tid, NULL);
		free(j);
	}
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
