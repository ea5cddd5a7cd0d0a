/*
 * nar-restore.c - materialising a NAR on disk, safely.
 *
 * The tree is built under a fresh sibling of the target,
 * "<target>.tmp-XXXXXX", and renamed into place (renameat2 with
 * RENAME_NOREPLACE, so an existing target is never replaced) only after the
 * whole archive parsed.  Everything is created relative to directory
 * descriptors we hold: mkdirat then openat(O_NOFOLLOW | O_DIRECTORY),
 * openat(O_CREAT | O_EXCL | O_NOFOLLOW) for files, symlinkat for links, so
 * a symlink in the archive, or one planted by someone else meanwhile, is
 * never followed.  The parser already refuses "..", "/", duplicates and
 * out-of-order names; this layer would still not write through them.
 *
 * Permissions mimic `nix-store --restore` (NixOS/nix src/libutil/fs-sink.cc,
 * RestoreSink): directories mkdir 0777, files 0666 (both less the umask),
 * and an executable gets S_IXUSR|S_IXGRP|S_IXOTH added with fchmod.  For a
 * store (CAIRN_NAR_RESTORE_CANONICAL) each entry gets the store's metadata
 * when it is complete, through the descriptor we hold, so nothing is
 * looked up by name again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "nar-internal.h"
#include "cairn/io.h"
#include "cairn/banned.h"

#define TMP_TRIES 64

struct cairn_nar_restore {
	int parent;		 /* directory that will hold the target */
	char *target;		 /* as given, for messages */
	char base[NAME_MAX + 1]; /* the target's name in parent */
	char tmp[NAME_MAX + 1];	 /* the temporary name in parent */
	bool created, root_done, committed;
	int fds[CAIRN_NAR_DEPTH_MAX];
	int file;
	bool exec;
	unsigned flags; /* enum cairn_nar_restore_flags */
};

/* mtime of everything in a store: one second into the epoch */
static const struct timespec store_times[2] = {{0, UTIME_OMIT}, {1, 0}};

void cairn_nar_restore_set_flags(struct cairn_nar_restore *r, unsigned flags)
{
	r->flags = flags;
}

static void close_all(struct cairn_nar_restore *r)
{
	if (r->file >= 0) {
		close(r->file);
		r->file = -1;
	}
	for (int i = 0; i < CAIRN_NAR_DEPTH_MAX; i++) {
		if (r->fds[i] >= 0) {
			close(r->fds[i]);
			r->fds[i] = -1;
		}
	}
}

/* Remove name in dfd and everything below it, never following a link. */
static void rm_tree(int dfd, const char *name, int depth)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	if (S_ISDIR(st.st_mode) && depth < CAIRN_NAR_DEPTH_MAX + 8) {
		int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A canonical directory is 0555: entries cannot go until it is
		 * writable again (root could; its owner could not). */
		if (fd >= 0 && !(st.st_mode & S_IWUSR))
			fchmod(fd, (st.st_mode & 07777) | S_IWUSR);
		DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
		if (dir) {
			struct dirent *de;
			while ((de = readdir(dir)) != NULL) {
				const char *n = de->d_name;
				if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
					continue;
				rm_tree(fd, n, depth + 1);
			}
			closedir(dir);
		} else if (fd >= 0) {
			close(fd);
		}
		unlinkat(dfd, name, AT_REMOVEDIR);
	} else {
		unlinkat(dfd, name, 0);
	}
}

int cairn_nar_restore_new(const char *target, struct cairn_nar_restore **out,
			  struct cairn_error *err)
{
	size_t len = strlen(target);
	while (len > 1 && target[len - 1] == '/')
		len--;
	size_t slash = len;
	while (slash > 0 && target[slash - 1] != '/')
		slash--;
	size_t blen = len - slash;
	const char *b = target + slash;
	if (blen == 0 || (blen == 1 && b[0] == '.') || (blen == 2 && b[0] == '.' && b[1] == '.'))
		return cairn_error_set(err, CAIRN_EINVAL,
				       "nar: cannot restore to '%s': it does not name a new entry",
				       target);
	if (blen > NAME_MAX)
		return cairn_error_set(err, CAIRN_EINVAL, "nar: '%s': name too long", target);

	struct cairn_nar_restore *r = calloc(1, sizeof(*r));
	if (!r || !(r->target = strdup(target))) {
		free(r);
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	}
	r->file = -1;
	for (int i = 0; i < CAIRN_NAR_DEPTH_MAX; i++)
		r->fds[i] = -1;
	memcpy(r->base, b, blen);
	r->base[blen] = '\0';

	char *dir = NULL;
	if (slash == 0) {
		dir = strdup(".");
	} else {
		dir = strndup(target, slash);
	}
	if (!dir) {
		cairn_nar_restore_free(r);
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	}
	r->parent = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int e = errno;
	free(dir);
	if (r->parent < 0) {
		r->parent = -1;
		int rc =
		    cairn_error_errno(err, e, "nar: cannot open the directory of '%s'", target);
		cairn_nar_restore_free(r);
		return rc;
	}
	struct stat st;
	if (fstatat(r->parent, r->base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		cairn_nar_restore_free(r);
		return cairn_error_set(err, CAIRN_EEXIST, "nar: '%s' already exists", target);
	}
	*out = r;
	return 0;
}

void cairn_nar_restore_free(struct cairn_nar_restore *r)
{
	if (!r)
		return;
	close_all(r);
	if (r->created && !r->committed)
		rm_tree(r->parent, r->tmp, 0);
	if (r->parent >= 0)
		close(r->parent);
	free(r->target);
	free(r);
}

/* A new random temporary name in r->tmp. */
static void tmp_name(struct cairn_nar_restore *r)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		static unsigned counter;
		unsigned v = (unsigned)getpid() * 2654435761u + ++counter;
		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (unsigned char)(v >> (i * 5));
	}
	size_t blen = strlen(r->base);
	if (blen > NAME_MAX - 11)
		blen = NAME_MAX - 11;
	memcpy(r->tmp, r->base, blen);
	memcpy(r->tmp + blen, ".tmp-", 5);
	for (size_t i = 0; i < sizeof(rnd); i++)
		r->tmp[blen + 5 + i] = alpha[rnd[i] % (sizeof(alpha) - 1)];
	r->tmp[blen + 11] = '\0';
}

static int io_fail(struct cairn_nar_restore *r, struct cairn_error *err, int e, const char *what,
		   const struct cairn_nar_node *n)
{
	char q[NAR_QUOTE_MAX];
	if (n->path_len == 0)
		return cairn_error_errno(err, e, "nar: cannot %s '%s'", what, r->target);
	return cairn_error_errno(err, e, "nar: cannot %s %s in '%s'", what,
				 nar_quote(q, n->path, n->path_len), r->target);
}

/* The directory a non-root node is created in. */
static int parent_fd(struct cairn_nar_restore *r, const struct cairn_nar_node *n,
		     struct cairn_error *err)
{
	if (n->depth == 0 || n->depth > CAIRN_NAR_DEPTH_MAX || r->fds[n->depth - 1] < 0 ||
	    r->file >= 0 || r->root_done)
		return cairn_error_set(err, CAIRN_EINVAL, "nar: restore callbacks out of order");
	return r->fds[n->depth - 1];
}

static int rs_dir_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	int dfd;
	const char *name;
	if (n->depth == 0) {
		if (r->created)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "nar: restore callbacks out of order");
		for (int i = 0;; i++) {
			tmp_name(r);
			if (mkdirat(r->parent, r->tmp, 0777) == 0)
				break;
			if (errno != EEXIST || i + 1 == TMP_TRIES)
				return io_fail(r, err, errno,
					       "create a temporary directory next to", n);
		}
		r->created = true;
		dfd = r->parent;
		name = r->tmp;
	} else {
		dfd = parent_fd(r, n, err);
		if (dfd < 0)
			return dfd;
		if (n->depth >= CAIRN_NAR_DEPTH_MAX)
			return cairn_error_set(err, CAIRN_ELIMIT, "nar: directory nested too deep");
		name = n->name;
		if (mkdirat(dfd, name, 0777) != 0)
			return io_fail(r, err, errno, "create directory", n);
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return io_fail(r, err, errno, "open directory", n);
	r->fds[n->depth] = fd;
	return 0;
}

static int rs_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	int rc = 0;
	if (n->depth >= CAIRN_NAR_DEPTH_MAX || r->fds[n->depth] < 0)
		return cairn_error_set(err, CAIRN_EINVAL, "nar: restore callbacks out of order");
	int fd = r->fds[n->depth];
	/* Every entry is complete (and synced) by now: the mtime stays. */
	if ((r->flags & CAIRN_NAR_RESTORE_CANONICAL) &&
	    (fchmod(fd, 0555) != 0 || futimens(fd, store_times) != 0))
		rc = io_fail(r, err, errno, "set the metadata of", n);
	if (!rc && (r->flags & CAIRN_NAR_RESTORE_SYNC) && fsync(fd) != 0)
		rc = io_fail(r, err, errno, "sync", n);
	close(fd);
	r->fds[n->depth] = -1;
	if (n->depth == 0)
		r->root_done = true;
	return rc;
}

static int rs_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	/* O_EXCL with O_CREAT also refuses to follow a symlink in the last component */
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd;
	if (n->depth == 0) {
		if (r->created)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "nar: restore callbacks out of order");
		int i = 0;
		do {
			tmp_name(r);
			fd = openat(r->parent, r->tmp, flags, 0666);
		} while (fd < 0 && errno == EEXIST && ++i < TMP_TRIES);
		if (fd < 0)
			return io_fail(r, err, errno, "create a temporary file next to", n);
		r->created = true;
	} else {
		int dfd = parent_fd(r, n, err);
		if (dfd < 0)
			return dfd;
		fd = openat(dfd, n->name, flags, 0666);
		if (fd < 0)
			return io_fail(r, err, errno, "create file", n);
	}
	r->file = fd;
	r->exec = n->executable;
	return 0;
}

static int rs_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	if (cairn_write_all(r->file, data, len))
		return cairn_error_errno(err, errno, "nar: cannot write a file in '%s'", r->target);
	return 0;
}

static int rs_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	int rc = 0;
	if (r->flags & CAIRN_NAR_RESTORE_CANONICAL) {
		if (fchmod(r->file, r->exec ? 0555 : 0444) != 0 ||
		    futimens(r->file, store_times) != 0)
			rc = io_fail(r, err, errno, "set the metadata of", n);
	} else if (r->exec) {
		struct stat st;
		if (fstat(r->file, &st) != 0 ||
		    fchmod(r->file, (st.st_mode & 07777) | S_IXUSR | S_IXGRP | S_IXOTH) != 0)
			rc = io_fail(r, err, errno, "make executable", n);
	}
	if (!rc && (r->flags & CAIRN_NAR_RESTORE_SYNC) && fsync(r->file) != 0)
		rc = io_fail(r, err, errno, "sync", n);
	if (close(r->file) != 0 && !rc)
		rc = io_fail(r, err, errno, "write", n);
	r->file = -1;
	if (n->depth == 0)
		r->root_done = true;
	return rc;
}

/* A symlink's own mtime (its mode means nothing on Linux). */
static int canonical_link(struct cairn_nar_restore *r, int dfd, const char *name,
			  const struct cairn_nar_node *n, struct cairn_error *err)
{
	if ((r->flags & CAIRN_NAR_RESTORE_CANONICAL) &&
	    utimensat(dfd, name, store_times, AT_SYMLINK_NOFOLLOW) != 0)
		return io_fail(r, err, errno, "set the metadata of", n);
	return 0;
}

static int rs_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_restore *r = ctx;
	if (n->depth == 0) {
		if (r->created)
			return cairn_error_set(err, CAIRN_EINVAL,
					       "nar: restore callbacks out of order");
		int i = 0, rc;
		do {
			tmp_name(r);
			rc = symlinkat(n->target, r->parent, r->tmp);
		} while (rc != 0 && errno == EEXIST && ++i < TMP_TRIES);
		if (rc != 0)
			return io_fail(r, err, errno, "create a temporary symlink next to", n);
		r->created = true;
		r->root_done = true;
		return canonical_link(r, r->parent, r->tmp, n, err);
	}
	int dfd = parent_fd(r, n, err);
	if (dfd < 0)
		return dfd;
	if (symlinkat(n->target, dfd, n->name) != 0)
		return io_fail(r, err, errno, "create symlink", n);
	return canonical_link(r, dfd, n->name, n, err);
}

const struct cairn_nar_callbacks cairn_nar_restore_callbacks = {
    .directory_begin = rs_dir_begin,
    .directory_end = rs_dir_end,
    .file_begin = rs_file_begin,
    .file_data = rs_file_data,
    .file_end = rs_file_end,
    .symlink = rs_symlink,
};

int cairn_nar_restore_commit(struct cairn_nar_restore *r, struct cairn_error *err)
{
	if (r->committed)
		return 0;
	if (!r->created || !r->root_done)
		return cairn_error_set(err, CAIRN_EINVAL, "nar: restore of '%s' is incomplete",
				       r->target);
	close_all(r);
	if (renameat2(r->parent, r->tmp, r->parent, r->base, RENAME_NOREPLACE) != 0) {
		int e = errno;
		if (e == EEXIST)
			return cairn_error_set(err, CAIRN_EEXIST, "nar: '%s' already exists",
					       r->target);
		if (e != EINVAL && e != ENOSYS)
			return cairn_error_errno(err, e, "nar: cannot rename into '%s'", r->target);
		/* No RENAME_NOREPLACE on this file system: check, then rename. */
		struct stat st;
		if (fstatat(r->parent, r->base, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return cairn_error_set(err, CAIRN_EEXIST, "nar: '%s' already exists",
					       r->target);
		if (renameat(r->parent, r->tmp, r->parent, r->base) != 0)
			return cairn_error_errno(err, errno, "nar: cannot rename into '%s'",
						 r->target);
	}
	r->committed = true;
	/* The new name must reach the disk too before anyone relies on it. */
	if ((r->flags & CAIRN_NAR_RESTORE_SYNC) && fsync(r->parent) != 0)
		return cairn_error_errno(err, errno, "nar: cannot sync the directory of '%s'",
					 r->target);
	return 0;
}
