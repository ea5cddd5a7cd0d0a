/*
 * sync-int.h - what the parts of `cairn sync` share: the run's state, the
 * items on their way, and the functions one part calls in another.
 * sync.c: the run, and the feed through the follower (feed-follow.h); sync-item.c: the
 * directory and one item's copy (download, verify, place, remove);
 * sync-paths.c: heads without a feed (--paths).
 */
#ifndef CAIRN_SYNC_INT_H
#define CAIRN_SYNC_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/feed.h"
#include "cairn/http.h"
#include "cairn/sync.h"
#include "download.h"

/* One item on its way: its own copy of the event (a streamed snapshot's
 * bytes do not stay), on the list of live items until it is settled. */
struct sync_item {
	struct sync *s;
	struct sync_item *next, *prev;
	struct cairn_feed_event evc;
	const struct cairn_feed_event *ev; /* &evc */
	struct cairn_narinfo *ni;
	struct cairn_dl *dl;
	struct cairn_dl_file *file;
	char target[4096];
};

struct sync {
	const struct cairn_sync_config *cfg;
	struct cairn_sync_stats *st;
	struct cairn_http *http;
	struct cairn_http_server *server;
	struct cairn_dl_pool *pool;
	int dirfd;
	unsigned active;
	unsigned extras; /* .ls and log requests in flight */
	struct sync_item *live;
};

/* Tell the operator (cfg->log), printf-style. */
void sync_say(struct sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* GET path (relative to the head, or absolute) whole into out. */
int sync_fetch_whole(struct sync *s, const char *path, uint64_t max, struct cairn_buf *out,
		     struct cairn_error *err);

/* sync-item.c */
int sync_write_atomic(const char *dir, int dirfd, const char *name, const void *data, size_t len,
		      struct cairn_error *err);
void sync_sweep(int dfd, const char *sub);
struct sync_item *sync_item_new(struct sync *s, const struct cairn_feed_event *e);
int sync_item_start(struct sync *s, struct sync_item *it);
void sync_item_finish(struct sync_item *it);
int sync_settle(struct sync *s, unsigned below, struct cairn_error *err);
int sync_settle_all(struct sync *s, struct cairn_error *err);
int sync_remove_item(struct sync *s, const char *hashpart, struct cairn_error *err);
int sync_add_item(struct sync *s, const struct cairn_feed_event *e, unsigned parallel,
		  struct cairn_error *err);

/* sync-paths.c */
int sync_paths(struct sync *s, unsigned parallel, const char *store_dir, struct cairn_error *err);

#endif
