/*
 * survey-batch.c - many pairs of one server in one request (narinfos.h):
 * the queue of pairs per server, the request's URL, the response split
 * back into one result per pair, and what closure answers bring ahead of
 * time (the stash).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/narinfo.h"
#include "cairn/narinfos.h"
#include "survey-int.h"
#include "cairn/banned.h"

/* what a closure answer brought beyond the pairs asked, per server */
#define STASH_MAX CAIRN_NARINFOS_COUNT_MAX

struct stash_ent {
	int64_t max_age;
	bool no_store;
	size_t len;
	char text[];
};

bool survey_batch_ok(const struct cairn_survey *s, size_t server)
{
	return s->cfg.batches && !s->st[server].batch_off &&
	       cairn_http_server_info(s->servers[server])->narinfos == CAIRN_NARINFOS_VERSION;
}

/* One pair answered with text, as a 200 from a single request would be. */
static void deliver_text(struct cairn_survey *s, size_t path, size_t server, const char *text,
			 size_t len, int64_t max_age, bool no_store)
{
	struct cairn_survey_result r;
	survey_result_init(&r, s, path, server);
	r.status = 200;
	r.max_age = max_age;
	r.no_store = no_store;
	survey_classify(s, &r, text, len);
	survey_cache_put(s, path, server, max_age, no_store, &r);
	s->stats.from_batch++;
	survey_deliver(s, &r);
}

static void deliver_err(struct cairn_survey *s, size_t path, size_t server,
			enum cairn_survey_outcome o, long status, int64_t max_age, bool no_store,
			const struct cairn_error *why)
{
	struct cairn_survey_result r;
	survey_result_init(&r, s, path, server);
	r.outcome = o;
	r.status = status;
	r.max_age = max_age;
	r.no_store = no_store;
	r.err = *why;
	if (o == CAIRN_SURVEY_ABSENT)
		survey_cache_put(s, path, server, max_age, no_store, &r);
	if (o == CAIRN_SURVEY_UNKNOWN)
		survey_note_down(s, server);
	s->stats.from_batch++;
	survey_deliver(s, &r);
}

int survey_try_stash(struct cairn_survey *s, size_t path, size_t server)
{
	struct server_state *st = &s->st[server];
	struct stash_ent *e = map_take(&st->stash, s->paths[path].hash);
	if (!e)
		return 0;
	st->n_stash--;
	deliver_text(s, path, server, e->text, e->len, e->max_age, e->no_store);
	free(e);
	return 1;
}

int survey_batch_queue(struct cairn_survey *s, size_t path, size_t server)
{
	struct server_state *st = &s->st[server];
	if (st->n_pend == st->cap_pend && st->pend_head > 0 && st->pend_head >= st->n_pend / 2) {
		/* half of it sent: slide the rest down rather than grow (each
		 * pair moves at most once per halving: constant time each) */
		memmove(st->pend, st->pend + st->pend_head,
			(st->n_pend - st->pend_head) * sizeof(*st->pend));
		st->n_pend -= st->pend_head;
		st->pend_head = 0;
	}
	if (st->n_pend == st->cap_pend) {
		size_t nc = st->cap_pend ? st->cap_pend * 2 : CAIRN_NARINFOS_HASHES_MAX;
		size_t *np = realloc(st->pend, nc * sizeof(*np));
		if (!np)
			return CAIRN_ENOMEM; /* a single request, then */
		st->pend = np;
		st->cap_pend = nc;
	}
	st->pend[st->n_pend++] = path;
	s->n_pend++;
	return 0;
}

int survey_batch_url(const struct cairn_survey *s, const struct survey_req *q,
		     struct cairn_buf *buf)
{
	int rc = cairn_buf_puts(buf, "narinfos?hashes=");
	for (size_t i = 0; rc == 0 && i < q->n_batch; i++) {
		if (i)
			rc = cairn_buf_putc(buf, ',');
		if (rc == 0)
			rc = cairn_buf_append(buf, s->paths[q->batch[i]].hash, CAIRN_STORE_HASH_LEN);
	}
	if (rc == 0 && q->closure)
		rc = cairn_buf_puts(buf, "&closure=1");
	return rc;
}

/* Server i's next request from its queue: a single request (a server
 * without batches) or a batch; false when it has none to send now. */
static bool flush_one(struct cairn_survey *s, size_t i)
{
	struct server_state *st = &s->st[i];
	if (st->info_pending || st->pend_head == st->n_pend)
		return false; /* until we know whether it takes batches */
	if (!survey_batch_ok(s, i)) {
		/* queued while its nix-cache-info was asked, and it said no,
		 * or behind those */
		size_t path = st->pend[st->pend_head++];
		s->n_pend--;
		survey_issue_single(s, path, i);
		return true;
	}
	size_t n = st->n_pend - st->pend_head;
	if (n > CAIRN_NARINFOS_HASHES_MAX)
		n = CAIRN_NARINFOS_HASHES_MAX;
	if (st->batches_out >= SURVEY_BATCHES_OUT_MAX ||
	    (n < CAIRN_NARINFOS_HASHES_MAX && st->batches_out >= SURVEY_PARTIAL_BATCHES_OUT))
		return false; /* an answer pumps again */
	struct cairn_error e;
	cairn_error_init(&e);
	struct survey_req *q = calloc(1, sizeof(*q));
	size_t *batch = malloc(n * sizeof(*batch));
	if (!q || !batch) {
		free(q);
		free(batch);
		return false; /* stay queued: the next pump tries again */
	}
	memcpy(batch, st->pend + st->pend_head, n * sizeof(*batch));
	st->pend_head += n;
	s->n_pend -= n;
	q->s = s;
	q->server = i;
	q->path = batch[0];
	q->batch = batch;
	q->n_batch = n;
	q->closure = s->cfg.closure;
	q->max_age = -1;
	cairn_buf_init(&q->body, CAIRN_NARINFOS_RESPONSE_MAX);
	if (survey_send(s, q, &e)) {
		/* as a refused single request: no answer */
		for (size_t k = 0; k < n; k++)
			deliver_err(s, batch[k], i, CAIRN_SURVEY_UNKNOWN, 0, -1, false, &e);
		survey_req_free(q);
		return true;
	}
	survey_out_add(s, q);
	s->inflight++;
	st->batches_out++;
	s->stats.batches++;
	return true;
}

/*
 * The servers' queued pairs into requests while max_inflight allows, a
 * request per server in turn, starting one server further each time: the
 * servers keep pace with each other, so an item's answers come close
 * together (the monitor holds them until the last).  Server by server,
 * the first took every free slot and ran thousands of items ahead of the
 * third.
 */
void survey_batch_flush(struct cairn_survey *s)
{
	/* a result delivered from here may add paths, and a callback may
	 * pump: what that queues, the loop below sends (st->pend is read
	 * afresh each time, as queueing may move it) */
	if (s->flushing)
		return;
	s->flushing = true;
	bool sent = true;
	size_t first = s->flush_next;
	if (s->n_servers)
		s->flush_next = (s->flush_next + 1) % s->n_servers;
	while (sent && s->inflight < s->cfg.max_inflight && !s->stop_rc) {
		sent = false;
		for (size_t k = 0; k < s->n_servers && s->inflight < s->cfg.max_inflight &&
				   !s->stop_rc;
		     k++)
			sent |= flush_one(s, (first + k) % s->n_servers);
	}
	/* what max_inflight held back waits for the next pump */
	for (size_t i = 0; i < s->n_servers; i++)
		if (s->st[i].pend_head == s->st[i].n_pend)
			s->st[i].pend_head = s->st[i].n_pend = 0;
	s->flushing = false;
}

/* Keep what a closure answer brought beyond the pairs asked. */
static void stash_put(struct cairn_survey *s, size_t server, const struct cairn_narinfos_entry *en,
		      int64_t max_age, bool no_store)
{
	struct server_state *st = &s->st[server];
	if (!en->present || st->n_stash >= STASH_MAX || map_get(&st->stash, en->hash))
		return;
	struct stash_ent *e = malloc(sizeof(*e) + en->len);
	if (!e)
		return;
	e->max_age = max_age;
	e->no_store = no_store;
	e->len = en->len;
	memcpy(e->text, en->text, en->len);
	if (map_put(&st->stash, en->hash, e, NULL) < 0) {
		free(e);
		return;
	}
	st->n_stash++;
}

/* The hash parts on the References line of a narinfo text, into set. */
static int note_refs(struct map *set, const char *text, size_t len)
{
	const char *end = text + len, *p = text;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if ((size_t)(le - p) > 12 && memcmp(p, "References: ", 12) == 0) {
			const char *t = p + 12;
			while (t < le) {
				const char *sp = memchr(t, ' ', (size_t)(le - t));
				const char *te = sp ? sp : le;
				if (te - t > CAIRN_STORE_HASH_LEN &&
				    cairn_store_hash_valid(t, CAIRN_STORE_HASH_LEN)) {
					char h[CAIRN_STORE_HASH_LEN + 1];
					memcpy(h, t, CAIRN_STORE_HASH_LEN);
					h[CAIRN_STORE_HASH_LEN] = '\0';
					int rc = map_put(set, h, (void *)1, NULL);
					if (rc < 0)
						return rc;
				}
				t = te + 1;
			}
			return 0;
		}
		p = le + 1;
	}
	return 0;
}

/* The whole response refused: every pair asked gets why. */
static void refuse(struct cairn_survey *s, struct survey_req *q, enum cairn_survey_outcome o,
		   long status, const struct cairn_error *why)
{
	for (size_t k = 0; k < q->n_batch; k++)
		deliver_err(s, q->batch[k], q->server, o, status, -1, false, why);
}

static void split(struct cairn_survey *s, struct survey_req *q)
{
	const char *url = cairn_http_server_url(s->servers[q->server]);
	struct cairn_narinfos_entry *ents = NULL;
	size_t n = 0;
	struct cairn_error perr, e;
	cairn_error_init(&perr);
	cairn_error_init(&e);
	if (cairn_narinfos_parse(q->body.data ? q->body.data : "", q->body.len, &ents, &n,
				 &perr) < 0) {
		cairn_error_set(&e, perr.code, "%s: batch response refused: %s", url,
				cairn_error_msg(&perr));
		refuse(s, q, CAIRN_SURVEY_INVALID, 200, &e);
		return;
	}
	/* asked hash part -> position in q->batch + 1 */
	struct map asked;
	map_init(&asked, NULL);
	size_t *found = calloc(q->n_batch, sizeof(*found)); /* entry index + 1 */
	int rc = found ? 0 : CAIRN_ENOMEM;
	for (size_t k = 0; rc == 0 && k < q->n_batch; k++)
		rc = map_put(&asked, s->paths[q->batch[k]].hash, (void *)(uintptr_t)(k + 1), NULL);
	if (rc) {
		cairn_error_set(&e, CAIRN_ENOMEM, "%s: batch response: out of memory", url);
		refuse(s, q, CAIRN_SURVEY_UNKNOWN, 200, &e);
		goto out;
	}
	/* A closure answer may bring what the asked ones reference, and
	 * nothing else. */
	struct map refd;
	map_init(&refd, NULL);
	for (size_t j = 0; rc == 0 && q->closure && j < n; j++)
		if (ents[j].present)
			rc = note_refs(&refd, ents[j].text, ents[j].len);
	if (rc) {
		map_release(&refd);
		cairn_error_set(&e, CAIRN_ENOMEM, "%s: batch response: out of memory", url);
		refuse(s, q, CAIRN_SURVEY_UNKNOWN, 200, &e);
		goto out;
	}
	for (size_t j = 0; j < n; j++) {
		uintptr_t k = (uintptr_t)map_get(&asked, ents[j].hash);
		if (k) {
			found[k - 1] = j + 1;
		} else if (!q->closure || !map_get(&refd, ents[j].hash)) {
			map_release(&refd);
			cairn_error_set(&e, CAIRN_EFORMAT,
					"%s: batch response refused: it has %s, which was not "
					"asked for%s",
					url, ents[j].hash,
					q->closure ? " nor referenced by what was sent" : "");
			refuse(s, q, CAIRN_SURVEY_INVALID, 200, &e);
			goto out;
		}
	}
	map_release(&refd);
	for (size_t k = 0; k < q->n_batch; k++)
		if (!found[k]) {
			cairn_error_set(&e, CAIRN_EFORMAT,
					"%s: batch response refused: it says nothing of %s, which "
					"was asked for",
					url, s->paths[q->batch[k]].hash);
			refuse(s, q, CAIRN_SURVEY_INVALID, 200, &e);
			goto out;
		}
	for (size_t j = 0; q->closure && j < n; j++)
		if (!map_get(&asked, ents[j].hash))
			stash_put(s, q->server, &ents[j], q->max_age, q->no_store);
	for (size_t k = 0; k < q->n_batch; k++) {
		const struct cairn_narinfos_entry *en = &ents[found[k] - 1];
		if (en->present) {
			deliver_text(s, q->batch[k], q->server, en->text, en->len, q->max_age,
				     q->no_store);
		} else {
			cairn_error_set(&e, CAIRN_ENOENT, "%s: %s.narinfo: absent (batch)", url,
					en->hash);
			deliver_err(s, q->batch[k], q->server, CAIRN_SURVEY_ABSENT, 200, q->max_age,
				    q->no_store, &e);
		}
	}
out:
	map_release(&asked);
	free(found);
	free(ents);
}

void survey_batch_done(struct survey_req *q, const struct cairn_http_result *res)
{
	struct cairn_survey *s = q->s;
	struct server_state *st = &s->st[q->server];
	st->batches_out--;
	if (res->outcome == CAIRN_HTTP_OK) {
		split(s, q);
	} else if (res->outcome == CAIRN_HTTP_STATUS && res->status >= 400 && res->status < 500 &&
		   res->status != 408 && res->status != 429 &&
		   !(s->cfg.only_if_cached && res->status == 504)) {
		/* It advertised a route it does not serve (or not to us):
		 * single requests for these pairs and its next ones. */
		st->batch_off = true;
		for (size_t k = 0; k < q->n_batch; k++)
			if (survey_batch_queue(s, q->batch[k], q->server) < 0)
				survey_issue_single(s, q->batch[k], q->server);
	} else {
		enum cairn_survey_outcome o = CAIRN_SURVEY_UNKNOWN;
		if (res->outcome == CAIRN_HTTP_TOO_LARGE || res->outcome == CAIRN_HTTP_ABORTED)
			o = CAIRN_SURVEY_INVALID;
		refuse(s, q, o, res->status, &res->err);
	}
	survey_req_free(q);
}

void survey_batch_free(struct cairn_survey *s)
{
	for (size_t i = 0; i < s->n_servers; i++) {
		free(s->st[i].pend);
		s->st[i].pend = NULL;
		map_release(&s->st[i].stash);
	}
}
