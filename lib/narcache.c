/*
 * narcache.c - the one nar cache: a directory of files, their sizes
 * counted against a bound, least recently used out first, debris of a
 * crash swept at open (layout, the rules an owner keeps, and locking in
 * narcache.h).
 *
 * The files are kept on a list from least to most recently used; a touch
 * or a commit moves a file to the end, so eviction takes from the front
 * without a scan.  Files adopted at open come in the index's order, not
 * recency's: the list is sorted by tick once, when it is first needed.
 *
 * Eviction never deletes under a reader, by two means.  A reader with the
 * file open needs nothing: unlink removes the name, and the bytes stay
 * until the last descriptor closes (the disk holds them a little longer
 * than the bound says, which is the price of never making a reader fail).
 * A reader that found the name but has not opened it yet pins it; pinned
 * files are skipped.  Refcounting every reader to the end of its stream
 * would keep the bound exact, but a slow client could then hold the cache
 * over its bound for as long as it likes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "map.h"
#include "narcache.h"
#include "cairn/io.h"
#include "cairn/banned.h"

struct nc_ent {
	struct nc_ent *prev, *next; /* the LRU list: front is least recent */
	uint64_t size;
	uint64_t tick;
	unsigned pins;
	bool dirty; /* recency changed since narcache_each_dirty */
	char name[NARCACHE_NAME_MAX + 1];
};

struct narcache {
	char *dir, *what;
	uint64_t max_size;
	narcache_evict_fn evict;
	void *ctx;
	int dir_fd, data_fd, tmp_fd;
	struct map ents; /* name -> struct nc_ent */
	struct nc_ent *front, *back;
	bool unsorted; /* adopted files not yet in tick order */
	uint64_t bytes, tick, evictions, pinned;
};

/* A name is one path component: the owner makes it, never the network,
 * but a slash in it would reach outside the data directory. */
static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= NARCACHE_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") &&
	       strcmp(name, "..");
}

static void list_unlink(struct narcache *nc, struct nc_ent *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		nc->front = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		nc->back = e->prev;
	e->prev = e->next = NULL;
}

static void list_append(struct narcache *nc, struct nc_ent *e)
{
	e->prev = nc->back;
	e->next = NULL;
	if (nc->back)
		nc->back->next = e;
	else
		nc->front = e;
	nc->back = e;
}

static int cmp_tick(const void *a, const void *b)
{
	const struct nc_ent *x = *(struct nc_ent *const *)a, *y = *(struct nc_ent *const *)b;
	return x->tick < y->tick ? -1 : x->tick > y->tick;
}

/* Put the list in tick order (after adoption).  Without memory for that it
 * stays as it is: eviction is then in index order, which is still an order. */
static void list_sort(struct narcache *nc)
{
	if (!nc->unsorted)
		return;
	size_t n = nc->ents.n, i = 0;
	struct nc_ent **v = n ? calloc(n, sizeof(*v)) : NULL;
	if (!v)
		return;
	for (struct nc_ent *e = nc->front; e && i < n; e = e->next)
		v[i++] = e;
	qsort(v, i, sizeof(*v), cmp_tick);
	nc->front = nc->back = NULL;
	for (size_t k = 0; k < i; k++)
		list_append(nc, v[k]);
	free(v);
	nc->unsorted = false;
}

static void ent_forget(struct narcache *nc, struct nc_ent *e)
{
	list_unlink(nc, e);
	map_take(&nc->ents, e->name);
	nc->bytes -= e->size < nc->bytes ? e->size : nc->bytes;
	if (e->pins)
		nc->pinned--;
	free(e);
}

static int open_subdir(struct narcache *nc, const char *name, int *out, struct cairn_error *err)
{
	if (mkdirat(nc->dir_fd, name, 0755) < 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "%s: cannot create the cache directory '%s/%s'",
					 nc->what, nc->dir, name);
	int fd = openat(nc->dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_error_errno(err, errno, "%s: cannot open the cache directory '%s/%s'",
					 nc->what, nc->dir, name);
	*out = fd;
	return 0;
}

/* Delete the entries of directory fd that keep() does not want (all, when
 * keep is NULL). */
static void sweep_dir(int fd, bool (*keep)(const struct narcache *nc, const char *name),
		      const struct narcache *nc)
{
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (!keep || !keep(nc, de->d_name))
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
}

int narcache_open(struct narcache **out, const struct narcache_config *cfg,
		  struct cairn_error *err)
{
	struct narcache *nc = calloc(1, sizeof(*nc));
	int rc;
	if (!nc)
		return cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", cfg->what);
	nc->dir_fd = nc->data_fd = nc->tmp_fd = -1;
	map_init(&nc->ents, NULL);
	nc->max_size = cfg->max_size;
	nc->evict = cfg->evict;
	nc->ctx = cfg->ctx;
	nc->dir = strdup(cfg->dir);
	nc->what = strdup(cfg->what);
	if (!nc->dir || !nc->what) {
		rc = cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", cfg->what);
		goto fail;
	}
	if (mkdir(cfg->dir, 0755) < 0 && errno != EEXIST) {
		rc = cairn_error_errno(err, errno, "%s: cannot create the cache directory '%s'",
				       cfg->what, cfg->dir);
		goto fail;
	}
	nc->dir_fd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (nc->dir_fd < 0) {
		rc = cairn_error_errno(err, errno, "%s: cannot open the cache directory '%s'",
				       cfg->what, cfg->dir);
		goto fail;
	}
	if ((rc = open_subdir(nc, cfg->data, &nc->data_fd, err)) < 0 ||
	    (rc = open_subdir(nc, "tmp", &nc->tmp_fd, err)) < 0)
		goto fail;
	/* writes that were in progress when the last run ended */
	sweep_dir(nc->tmp_fd, NULL, nc);
	*out = nc;
	return 0;
fail:
	narcache_free(nc);
	return rc;
}

void narcache_free(struct narcache *nc)
{
	if (!nc)
		return;
	struct nc_ent *e = nc->front;
	while (e) {
		struct nc_ent *next = e->next;
		free(e);
		e = next;
	}
	map_release(&nc->ents);
	if (nc->dir_fd >= 0)
		close(nc->dir_fd);
	if (nc->data_fd >= 0)
		close(nc->data_fd);
	if (nc->tmp_fd >= 0)
		close(nc->tmp_fd);
	free(nc->dir);
	free(nc->what);
	free(nc);
}

int narcache_dir_fd(const struct narcache *nc)
{
	return nc->dir_fd;
}

int narcache_data_fd(const struct narcache *nc)
{
	return nc->data_fd;
}

int narcache_mkdir(struct narcache *nc, const char *name, struct cairn_error *err)
{
	if (mkdirat(nc->dir_fd, name, 0755) < 0 && errno != EEXIST)
		return cairn_error_errno(err, errno, "%s: cannot create the cache directory '%s/%s'",
					 nc->what, nc->dir, name);
	return 0;
}

/* A new entry, most recently used (or the existing one, made so). */
static struct nc_ent *ent_add(struct narcache *nc, const char *name, uint64_t size, uint64_t tick)
{
	struct nc_ent *e = map_get(&nc->ents, name);
	if (e) {
		nc->bytes -= e->size < nc->bytes ? e->size : nc->bytes;
		list_unlink(nc, e);
	} else {
		e = calloc(1, sizeof(*e));
		if (!e)
			return NULL;
		snprintf(e->name, sizeof(e->name), "%s", name);
		if (map_put(&nc->ents, name, e, NULL) < 0) {
			free(e);
			return NULL;
		}
	}
	e->size = size;
	if (tick > e->tick)
		e->tick = tick;
	if (e->tick > nc->tick)
		nc->tick = e->tick;
	nc->bytes += size;
	list_append(nc, e);
	return e;
}

int narcache_adopt(struct narcache *nc, const char *name, uint64_t size, uint64_t tick)
{
	struct stat st;
	if (!name_ok(name))
		return CAIRN_EFORMAT;
	if (fstatat(nc->data_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? CAIRN_ENOENT : CAIRN_EFORMAT;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return CAIRN_EFORMAT;
	if (tick == NARCACHE_TICK_ATIME)
		tick = st.st_atime > 0 ? (uint64_t)st.st_atime : 0;
	if (!ent_add(nc, name, size, tick))
		return CAIRN_ENOMEM;
	nc->unsorted = true;
	return 0;
}

static bool adopted(const struct narcache *nc, const char *name)
{
	return map_get(&nc->ents, name) != NULL;
}

void narcache_sweep(struct narcache *nc)
{
	sweep_dir(nc->data_fd, adopted, nc);
}

int narcache_tmp_open(struct narcache *nc, const char *prefix, char *path, size_t cap, int *fd,
		      struct cairn_error *err)
{
	int n = snprintf(path, cap, "%s/tmp/%sXXXXXX", nc->dir, prefix);
	if (n < 0 || (size_t)n >= cap)
		return cairn_error_set(err, CAIRN_ELIMIT, "%s: cache path too long", nc->what);
	int f = mkostemp(path, O_CLOEXEC);
	if (f < 0)
		return cairn_error_errno(err, errno, "%s: cannot create a temporary file in '%s/tmp'",
					 nc->what, nc->dir);
	/* mkostemp's 0600 would keep the files from an operator's other tools
	 * (a web server, a backup); the nars in them are public anyway */
	(void)fchmod(f, 0644);
	*fd = f;
	return 0;
}

int narcache_sync(struct narcache *nc, int fd, const char *path, struct cairn_error *err)
{
	int f = fd >= 0 ? fd : open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return cairn_error_errno(err, errno, "%s: cannot open '%s'", nc->what, path);
	int rc = fdatasync(f) < 0 ? cairn_error_errno(err, errno, "%s: cannot sync '%s'", nc->what,
						      path ? path : "a temporary file")
				  : 0;
	if (fd < 0)
		close(f);
	return rc;
}

int narcache_commit(struct narcache *nc, const char *tmppath, const char *name, uint64_t size,
		    struct cairn_error *err)
{
	int rc;
	if (!name_ok(name)) {
		rc = cairn_error_set(err, CAIRN_EINVAL, "%s: bad cache file name", nc->what);
		goto fail;
	}
	if (renameat(AT_FDCWD, tmppath, nc->data_fd, name) < 0) {
		rc = cairn_error_errno(err, errno, "%s: cannot rename into the cache as '%s'",
				       nc->what, name);
		goto fail;
	}
	struct nc_ent *e = ent_add(nc, name, size, ++nc->tick);
	if (!e) /* in place but not counted: the next open's sweep deletes it */
		return cairn_error_set(err, CAIRN_ENOMEM, "%s: out of memory", nc->what);
	e->dirty = true;
	return 0;
fail:
	unlink(tmppath);
	return rc;
}

int narcache_put_file(struct narcache *nc, const char *relpath, const void *data, size_t len,
		      struct cairn_error *err)
{
	char tmp[NARCACHE_PATH_MAX];
	int fd, rc;
	if ((rc = narcache_tmp_open(nc, "put-", tmp, sizeof(tmp), &fd, err)) < 0)
		return rc;
	if (cairn_write_all(fd, data, len))
		rc = cairn_error_errno(err, errno, "%s: cannot write '%s'", nc->what, relpath);
	close(fd);
	if (rc == 0 && renameat(AT_FDCWD, tmp, nc->dir_fd, relpath) < 0)
		rc = cairn_error_errno(err, errno, "%s: cannot rename to '%s'", nc->what, relpath);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

bool narcache_has(const struct narcache *nc, const char *name)
{
	return map_get(&nc->ents, name) != NULL;
}

bool narcache_touch(struct narcache *nc, const char *name)
{
	struct nc_ent *e = map_get(&nc->ents, name);
	if (!e)
		return false;
	e->tick = ++nc->tick;
	e->dirty = true;
	list_unlink(nc, e);
	list_append(nc, e);
	return true;
}

bool narcache_get(const struct narcache *nc, const char *name, uint64_t *size, uint64_t *tick)
{
	const struct nc_ent *e = map_get(&nc->ents, name);
	if (!e)
		return false;
	if (size)
		*size = e->size;
	if (tick)
		*tick = e->tick;
	return true;
}

bool narcache_pin(struct narcache *nc, const char *name)
{
	struct nc_ent *e = map_get(&nc->ents, name);
	if (!e)
		return false;
	if (e->pins++ == 0)
		nc->pinned++;
	return true;
}

void narcache_unpin(struct narcache *nc, const char *name)
{
	struct nc_ent *e = map_get(&nc->ents, name);
	if (e && e->pins && --e->pins == 0)
		nc->pinned--;
}

int narcache_remove(struct narcache *nc, const char *name)
{
	struct nc_ent *e = map_get(&nc->ents, name);
	if (!e)
		return 0;
	ent_forget(nc, e);
	unlinkat(nc->data_fd, name, 0);
	return 1;
}

bool narcache_over(const struct narcache *nc)
{
	return nc->max_size && nc->bytes > nc->max_size;
}

int narcache_trim(struct narcache *nc, uint64_t room, const char *keep, struct cairn_error *err)
{
	if (!nc->max_size)
		return 0;
	list_sort(nc);
	struct nc_ent *e = nc->front;
	while (e && (nc->bytes > nc->max_size || room > nc->max_size - nc->bytes)) {
		struct nc_ent *next = e->next;
		if (e->pins || (keep && !strcmp(e->name, keep))) {
			e = next;
			continue;
		}
		if (nc->evict) {
			int rc = nc->evict(nc->ctx, e->name);
			if (rc < 0)
				return cairn_error_set(err, rc, "%s: cannot evict '%s'", nc->what,
						       e->name);
		}
		/* the owner's records are gone: now the file */
		unlinkat(nc->data_fd, e->name, 0);
		ent_forget(nc, e);
		nc->evictions++;
		e = next;
	}
	return 0;
}

void narcache_stats(const struct narcache *nc, struct narcache_stats *out)
{
	out->files = nc->ents.n;
	out->bytes = nc->bytes;
	out->evictions = nc->evictions;
	out->pinned = nc->pinned;
}

int narcache_each_dirty(struct narcache *nc, int (*fn)(void *ctx, const char *name, uint64_t tick),
			void *ctx)
{
	for (struct nc_ent *e = nc->front; e; e = e->next) {
		if (!e->dirty)
			continue;
		int rc = fn(ctx, e->name, e->tick);
		if (rc < 0)
			return rc;
		e->dirty = false;
	}
	return 0;
}
