/*
 * download-sink.c - the download engine's ready-made sinks (download.h):
 * a tree restored under a temporary name, and a file (the NAR, or the body
 * as served) written beside its target; each put in place by its commit
 * once the engine says the bytes are right.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "download.h"
#include "cairn/io.h"
#include "cairn/banned.h"

struct cairn_dl_tree {
	char *target;
	unsigned flags;
	struct cairn_nar_restore *r;
};

static int tree_begin(void *ctx, struct cairn_error *err)
{
	struct cairn_dl_tree *t = ctx;
	cairn_nar_restore_free(t->r);
	t->r = NULL;
	int rc = cairn_nar_restore_new(t->target, &t->r, err);
	if (!rc && t->flags)
		cairn_nar_restore_set_flags(t->r, t->flags);
	return rc;
}

static void tree_discard(void *ctx)
{
	struct cairn_dl_tree *t = ctx;
	cairn_nar_restore_free(t->r); /* removes what it made */
	t->r = NULL;
}

#define TREE_FWD(name, ...)                                                                        \
	struct cairn_dl_tree *t = ctx;                                                             \
	return t->r ? cairn_nar_restore_callbacks.name(t->r, __VA_ARGS__) : 0

static int tree_dir_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	TREE_FWD(directory_begin, n, err);
}
static int tree_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	TREE_FWD(directory_end, n, err);
}
static int tree_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	TREE_FWD(file_begin, n, err);
}
static int tree_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	TREE_FWD(file_data, data, len, err);
}
static int tree_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	TREE_FWD(file_end, n, err);
}
static int tree_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	TREE_FWD(symlink, n, err);
}
#undef TREE_FWD

static const struct cairn_nar_callbacks tree_cb = {
    .directory_begin = tree_dir_begin,
    .directory_end = tree_dir_end,
    .file_begin = tree_file_begin,
    .file_data = tree_file_data,
    .file_end = tree_file_end,
    .symlink = tree_symlink,
};

int cairn_dl_tree_new(struct cairn_dl_tree **out, const char *target, unsigned flags,
		      struct cairn_error *err)
{
	struct cairn_dl_tree *t = calloc(1, sizeof(*t));
	if (!t || !(t->target = strdup(target))) {
		free(t);
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	}
	t->flags = flags;
	*out = t;
	return 0;
}

void cairn_dl_tree_sink(struct cairn_dl_tree *t, struct cairn_dl_sink *out)
{
	*out = (struct cairn_dl_sink){
	    .begin = tree_begin, .tree = &tree_cb, .discard = tree_discard, .ctx = t};
}

int cairn_dl_tree_commit(struct cairn_dl_tree *t, struct cairn_error *err)
{
	if (!t->r)
		return cairn_error_set(err, CAIRN_EINVAL, "download: no tree to commit");
	return cairn_nar_restore_commit(t->r, err);
}

void cairn_dl_tree_free(struct cairn_dl_tree *t)
{
	if (!t)
		return;
	cairn_nar_restore_free(t->r);
	free(t->target);
	free(t);
}

struct cairn_dl_file {
	char *path;
	char *tmp;
	int fd;
};

static void file_discard(void *ctx)
{
	struct cairn_dl_file *f = ctx;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp) {
		unlink(f->tmp);
		free(f->tmp);
		f->tmp = NULL;
	}
}

static int file_begin(void *ctx, struct cairn_error *err)
{
	struct cairn_dl_file *f = ctx;
	file_discard(f);
	/* Beside the target, so that the rename cannot cross file systems. */
	const char *slash = strrchr(f->path, '/');
	size_t dlen = slash ? (size_t)(slash - f->path) : 0;
	size_t n = strlen(f->path) + 32;
	if (!(f->tmp = malloc(n)))
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	if (slash)
		snprintf(f->tmp, n, "%.*s/.%s.XXXXXX", (int)dlen, f->path, slash + 1);
	else
		snprintf(f->tmp, n, ".%s.XXXXXX", f->path);
	f->fd = mkostemp(f->tmp, O_CLOEXEC);
	if (f->fd < 0) {
		int rc = cairn_error_errno(err, errno, "cannot create '%s'", f->tmp);
		free(f->tmp);
		f->tmp = NULL;
		return rc;
	}
	return 0;
}

static int file_nar(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct cairn_dl_file *f = ctx;
	if (cairn_write_all(f->fd, data, len))
		return cairn_error_errno(err, errno, "cannot write '%s'", f->tmp);
	return 0;
}

int cairn_dl_file_new(struct cairn_dl_file **out, const char *path, struct cairn_error *err)
{
	struct cairn_dl_file *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		free(f);
		return cairn_error_set(err, CAIRN_ENOMEM, "out of memory");
	}
	f->fd = -1;
	*out = f;
	return 0;
}

void cairn_dl_file_sink(struct cairn_dl_file *f, struct cairn_dl_sink *out)
{
	*out = (struct cairn_dl_sink){
	    .begin = file_begin, .nar = file_nar, .discard = file_discard, .ctx = f};
}

void cairn_dl_file_body_sink(struct cairn_dl_file *f, struct cairn_dl_sink *out)
{
	*out = (struct cairn_dl_sink){
	    .begin = file_begin, .body = file_nar, .discard = file_discard, .ctx = f};
}

int cairn_dl_file_commit(struct cairn_dl_file *f, struct cairn_error *err)
{
	if (f->fd < 0 || !f->tmp)
		return cairn_error_set(err, CAIRN_EINVAL, "download: no file to commit");
	if (fsync(f->fd) != 0)
		return cairn_error_errno(err, errno, "cannot write '%s'", f->tmp);
	if (fchmod(f->fd, 0644) != 0)
		return cairn_error_errno(err, errno, "cannot chmod '%s'", f->tmp);
	if (rename(f->tmp, f->path) != 0)
		return cairn_error_errno(err, errno, "cannot rename to '%s'", f->path);
	free(f->tmp);
	f->tmp = NULL;
	close(f->fd);
	f->fd = -1;
	return 0;
}

void cairn_dl_file_free(struct cairn_dl_file *f)
{
	if (!f)
		return;
	file_discard(f);
	free(f->path);
	free(f);
}

