/*
 * sync-paths.c - `cairn sync --paths`: heads without a feed (nginx,
 * guix publish, nix-serve).  The listed store paths and their closures,
 * each narinfo asked through the query engine (lib/survey.c), each item
 * copied as the feed's are (sync-item.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/feed.h"
#include "cairn/http.h"
#include "cairn/httpd.h"
#include "cairn/narinfo.h"
#include "cairn/paths-list.h"
#include "cairn/survey.h"
#include "cairn/sync.h"
#include "sync-int.h"
#include "cairn/banned.h"

/* ---- heads without a feed: a list of store paths and their closures ---- */

struct paths_run {
	struct sync *s;
	struct cairn_survey *survey_;
	const char *store_dir;
	struct cairn_feed_event *queue; /* narinfos found, waiting for a slot */
	size_t n, cap, next;
	int failed;
	struct cairn_error err;
};

/* A survey answer: a narinfo found is queued (its bytes as received), and
 * when a trusted key signed it, its references are asked for too. */
static int paths_found(void *ctx, struct cairn_survey_result *r)
{
	struct paths_run *pr = ctx;
	struct sync *s = pr->s;
	const char *base = strrchr(r->store_path, '/');
	if (r->outcome != CAIRN_SURVEY_PRESENT) {
		if (r->outcome == CAIRN_SURVEY_ABSENT)
			s->st->refused++;
		else
			s->st->failed++;
		sync_say(s, "%s: not copied: the head %s it (%s)", r->store_path,
			 r->outcome == CAIRN_SURVEY_ABSENT ? "does not have" : "did not give",
			 cairn_error_msg(&r->err));
		return 0;
	}
	struct cairn_verify_result vr;
	if (cairn_narinfo_verify(r->narinfo, s->cfg->kr, &vr, NULL) == 0) {
		for (size_t i = 0; i < r->narinfo->n_refs; i++) {
			char p[CAIRN_NARINFO_STORE_DIR_MAX + 256];
			snprintf(p, sizeof(p), "%s/%s", pr->store_dir, r->narinfo->refs[i]);
			int rc = cairn_survey_add(pr->survey_, p, NULL, &pr->err);
			if (rc < 0)
				return pr->failed = rc;
		}
	}
	if (pr->n == pr->cap) {
		size_t nc = pr->cap ? pr->cap * 2 : 256;
		struct cairn_feed_event *v = realloc(pr->queue, nc * sizeof(*v));
		if (!v)
			return pr->failed = CAIRN_ENOMEM;
		pr->queue = v;
		pr->cap = nc;
	}
	char *t = malloc(r->text_len ? r->text_len : 1);
	if (!t || !base) {
		free(t);
		return pr->failed = CAIRN_ENOMEM;
	}
	memcpy(t, r->text, r->text_len);
	struct cairn_feed_event *e = &pr->queue[pr->n++];
	memset(e, 0, sizeof(*e));
	e->kind = CAIRN_FEED_ADD;
	memcpy(e->hashpart, base + 1, 32);
	e->narinfo = t;
	e->narinfo_len = r->text_len;
	s->st->items++;
	return 0;
}

static int path_add(void *ctx, const char *path)
{
	struct paths_run *pr = ctx;
	return cairn_survey_add(pr->survey_, path, NULL, &pr->err);
}

/*
 * The list: a file, or a URL (a Hydra-style store-paths.xz), at most
 * CAIRN_SYNC_PATHS_MAX bytes of text (paths-list.h reads it).
 */
static int paths_read(struct paths_run *pr, const char *where, struct cairn_error *err)
{
	struct cairn_buf raw = CAIRN_BUF_INIT(CAIRN_SYNC_PATHS_MAX);
	int rc;
	if (cairn_paths_list_is_url(where))
		rc = sync_fetch_whole(pr->s, where, CAIRN_SYNC_PATHS_MAX, &raw, err);
	else
		rc = cairn_paths_list_file(where, &raw, err);
	if (rc == 0) {
		struct cairn_error e;
		cairn_error_init(&e);
		/* a store path the survey refused says why in pr->err */
		if ((rc = cairn_paths_list_each(raw.data, raw.len, CAIRN_SYNC_PATHS_MAX, path_add,
						pr, &e)) < 0)
			cairn_error_set(err, rc, "sync: %s",
					cairn_error_msg(pr->err.code ? &pr->err : &e));
	}
	cairn_buf_release(&raw);
	return rc;
}

/* Replicate the closures of a list of store paths: narinfos asked through
 * the query engine (lib/survey.c), items copied as above. */
int sync_paths(struct sync *s, unsigned parallel, const char *store_dir, struct cairn_error *err)
{
	struct paths_run pr = {.s = s, .store_dir = store_dir};
	struct cairn_survey_config sc;
	struct cairn_survey *sv = NULL;
	int rc;
	cairn_error_init(&pr.err);
	cairn_survey_config_init(&sc);
	struct cairn_http_server *const servers[1] = {s->server};
	if ((rc = cairn_survey_new(&sv, s->http, servers, 1, &sc, paths_found, &pr, err)) < 0)
		return rc;
	pr.survey_ = sv;
	if ((rc = paths_read(&pr, s->cfg->paths_file, err)) < 0)
		goto out;
	for (;;) {
		if ((rc = cairn_survey_start(sv, err)) < 0)
			goto out;
		if (pr.failed) {
			rc = cairn_error_set(err, pr.failed, "sync: %s",
					     pr.err.code ? cairn_error_msg(&pr.err)
							 : "out of memory");
			goto out;
		}
		/* items start here, never from the survey's callback: they step
		 * the client themselves */
		while (pr.next < pr.n && s->active < parallel) {
			struct sync_item *it = sync_item_new(s, &pr.queue[pr.next]);
			if (!it) {
				rc = cairn_error_set(err, CAIRN_ENOMEM, "sync: out of memory");
				goto out;
			}
			pr.next++;
			sync_item_start(s, it);
		}
		if (!cairn_survey_pending(sv) && pr.next == pr.n && !s->active && !s->extras)
			break;
		if ((rc = cairn_http_step(s->http, 50, err)) < 0)
			goto out;
		cairn_dl_pool_drain(s->pool);
	}
	rc = cairn_survey_failed(sv, err);
out:
	for (size_t i = 0; i < pr.n; i++)
		free((char *)pr.queue[i].narinfo);
	free(pr.queue);
	cairn_survey_free(sv);
	return rc;
}
