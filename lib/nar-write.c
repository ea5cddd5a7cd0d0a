/*
 * nar-write.c - producing NARs: emit calls that keep the output a valid
 * archive, and dumping a path as `nix-store --dump` does.
 *
 * Dump follows Nix's SourceAccessor::dumpPath: lstat semantics (a symlink
 * is stored, never followed), entries sorted bytewise (std::map order),
 * "executable" when the owner's x bit is set, anything but a regular file,
 * directory or symlink is an error.  We add one rule: a tree nested deeper
 * than the parser accepts (CAIRN_NAR_DEPTH_MAX) is refused, so cairn never
 * writes an archive it would reject.
 *
 * Speed: output is gathered in a 1 MiB buffer and file contents are read
 * straight into it; directories are read with getdents64 into one shared
 * buffer and their names kept in one arena, so there is no allocation per
 * entry; everything is opened relative to the parent directory's
 * descriptor, so the kernel never walks a full path again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/nar.h"
#include "nar-internal.h"
#include "cairn/banned.h"

#define WRITER_BUF (1u << 20)
#define WRITER_MIN_READ (64u << 10)
#define DENTS_BUF (64u << 10)

enum expect {
	E_NODE,	     /* a node must come (start, or after entry_begin) */
	E_ITEM,	     /* inside a directory: entry_begin or directory_end */
	E_ENTRY_END, /* the entry's node is complete */
	E_DATA,	     /* inside a file's contents */
	E_DONE,	     /* the root node is complete */
};

struct prev_name {
	bool has;
	uint16_t len;
	char name[CAIRN_NAR_NAME_MAX];
};

struct cairn_nar_writer {
	cairn_nar_write_fn fn;
	void *ctx;
	int failed;
	bool dumped;
	uint64_t total; /* bytes emitted, buffered or not */
	uint8_t *buf;
	size_t len;
	enum expect expect;
	unsigned dirs; /* open directories */
	uint64_t file_size, file_left;
	cairn_nar_file_fn file_fn; /* large files' contents go there (write_path) */
	void *file_ctx;
	uint64_t file_min;
	struct prev_name prev[CAIRN_NAR_DEPTH_MAX];
};

static int werr(struct cairn_nar_writer *w, struct cairn_error *err, int code, const char *msg)
{
	w->failed = code;
	return cairn_error_set(err, code, "nar: %s", msg);
}

static int flush(struct cairn_nar_writer *w, struct cairn_error *err)
{
	if (w->len == 0)
		return 0;
	int rc = w->fn(w->ctx, w->buf, w->len, err);
	w->len = 0;
	if (rc) {
		w->failed = rc;
		return cairn_error_set(err, rc, "nar: writing the archive failed");
	}
	return 0;
}

static int put(struct cairn_nar_writer *w, const void *data, size_t len, struct cairn_error *err)
{
	if (len == 0)
		return 0;
	w->total += len;
	if (len <= WRITER_BUF - w->len) {
		memcpy(w->buf + w->len, data, len);
		w->len += len;
		return 0;
	}
	int rc = flush(w, err);
	if (rc)
		return rc;
	if (len >= WRITER_BUF / 2) {
		/* large file data goes through without a copy */
		rc = w->fn(w->ctx, data, len, err);
		if (rc) {
			w->failed = rc;
			return cairn_error_set(err, rc, "nar: writing the archive failed");
		}
		return 0;
	}
	memcpy(w->buf, data, len);
	w->len = len;
	return 0;
}

static const uint8_t zeros[8];

static int put_str(struct cairn_nar_writer *w, const char *s, size_t n, struct cairn_error *err)
{
	uint8_t le[8];
	nar_put_le64(le, n);
	int rc = put(w, le, 8, err);
	if (!rc)
		rc = put(w, s, n, err);
	if (!rc)
		rc = put(w, zeros, nar_pad(n), err);
	return rc;
}

/* Several tokens in one call: a NULL-terminated list. */
static int put_tokens(struct cairn_nar_writer *w, struct cairn_error *err, const char *const *toks)
{
	for (; *toks; toks++) {
		int rc = put_str(w, *toks, strlen(*toks), err);
		if (rc)
			return rc;
	}
	return 0;
}

struct cairn_nar_writer *cairn_nar_writer_new(cairn_nar_write_fn fn, void *ctx)
{
	struct cairn_nar_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->buf = malloc(WRITER_BUF);
	if (!w->buf) {
		free(w);
		return NULL;
	}
	w->fn = fn;
	w->ctx = ctx;
	w->expect = E_NODE;
	return w;
}

void cairn_nar_writer_free(struct cairn_nar_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

void cairn_nar_writer_set_file_fn(struct cairn_nar_writer *w, cairn_nar_file_fn fn, void *ctx,
				  uint64_t min_size)
{
	w->file_fn = fn;
	w->file_ctx = ctx;
	w->file_min = min_size;
}

uint64_t cairn_nar_writer_size(const struct cairn_nar_writer *w)
{
	return w->total;
}

static int check(struct cairn_nar_writer *w, enum expect want, const char *what,
		 struct cairn_error *err)
{
	if (w->failed)
		return cairn_error_set(err, w->failed, "nar: writer used after an error");
	if (w->expect != want) {
		w->failed = CAIRN_EINVAL;
		return cairn_error_set(err, CAIRN_EINVAL, "nar: %s at the wrong place", what);
	}
	return 0;
}

/* Start a node: the magic comes before the root. */
static int node_begin(struct cairn_nar_writer *w, const char *type, struct cairn_error *err)
{
	if (w->total == 0) {
		int rc = put_str(w, CAIRN_NAR_MAGIC, sizeof(CAIRN_NAR_MAGIC) - 1, err);
		if (rc)
			return rc;
	}
	const char *toks[] = {"(", "type", type, NULL};
	return put_tokens(w, err, toks);
}

static void node_done(struct cairn_nar_writer *w)
{
	w->expect = w->dirs ? E_ENTRY_END : E_DONE;
}

int cairn_nar_write_entry_begin(struct cairn_nar_writer *w, const char *name, size_t name_len,
				struct cairn_error *err)
{
	int rc = check(w, E_ITEM, "entry", err);
	if (rc)
		return rc;
	char q[NAR_QUOTE_MAX];
	if (name_len == 0 || name_len > CAIRN_NAR_NAME_MAX || (name_len == 1 && name[0] == '.') ||
	    (name_len == 2 && name[0] == '.' && name[1] == '.') || memchr(name, '/', name_len) ||
	    memchr(name, '\0', name_len)) {
		w->failed = CAIRN_EINVAL;
		return cairn_error_set(err, CAIRN_EINVAL, "nar: invalid entry name %s",
				       nar_quote(q, name, name_len));
	}
	if (w->dirs >= CAIRN_NAR_DEPTH_MAX) {
		w->failed = CAIRN_ELIMIT;
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "nar: entry %s is nested deeper than %d directories",
				       nar_quote(q, name, name_len), CAIRN_NAR_DEPTH_MAX - 1);
	}
	struct prev_name *pv = &w->prev[w->dirs - 1];
	if (pv->has) {
		size_t m = name_len < pv->len ? name_len : pv->len;
		int c = memcmp(name, pv->name, m);
		if (c == 0)
			c = name_len < pv->len ? -1 : name_len > pv->len ? 1 : 0;
		if (c <= 0) {
			w->failed = CAIRN_EINVAL;
			return cairn_error_set(err, CAIRN_EINVAL,
					       "nar: entry %s is not after the previous one",
					       nar_quote(q, name, name_len));
		}
	}
	pv->has = true;
	pv->len = (uint16_t)name_len;
	memcpy(pv->name, name, name_len);
	const char *t1[] = {"entry", "(", "name", NULL};
	rc = put_tokens(w, err, t1);
	if (!rc)
		rc = put_str(w, name, name_len, err);
	if (!rc)
		rc = put_str(w, "node", 4, err);
	if (!rc)
		w->expect = E_NODE;
	return rc;
}

int cairn_nar_write_entry_end(struct cairn_nar_writer *w, struct cairn_error *err)
{
	int rc = check(w, E_ENTRY_END, "end of entry", err);
	if (!rc)
		rc = put_str(w, ")", 1, err);
	if (!rc)
		w->expect = E_ITEM;
	return rc;
}

int cairn_nar_write_directory_begin(struct cairn_nar_writer *w, struct cairn_error *err)
{
	int rc = check(w, E_NODE, "directory", err);
	if (rc)
		return rc;
	rc = node_begin(w, "directory", err);
	if (rc)
		return rc;
	w->dirs++;
	if (w->dirs <= CAIRN_NAR_DEPTH_MAX)
		w->prev[w->dirs - 1].has = false;
	w->expect = E_ITEM;
	return 0;
}

int cairn_nar_write_directory_end(struct cairn_nar_writer *w, struct cairn_error *err)
{
	int rc = check(w, E_ITEM, "end of directory", err);
	if (!rc)
		rc = put_str(w, ")", 1, err);
	if (rc)
		return rc;
	w->dirs--;
	node_done(w);
	return 0;
}

int cairn_nar_write_file_begin(struct cairn_nar_writer *w, bool executable, uint64_t size,
			       struct cairn_error *err)
{
	int rc = check(w, E_NODE, "file", err);
	if (!rc)
		rc = node_begin(w, "regular", err);
	if (!rc && executable) {
		const char *t[] = {"executable", "", NULL};
		rc = put_tokens(w, err, t);
	}
	if (!rc)
		rc = put_str(w, "contents", 8, err);
	if (rc)
		return rc;
	uint8_t le[8];
	nar_put_le64(le, size);
	rc = put(w, le, 8, err);
	if (rc)
		return rc;
	w->file_size = w->file_left = size;
	w->expect = E_DATA;
	return 0;
}

int cairn_nar_write_file_data(struct cairn_nar_writer *w, const void *data, size_t len,
			      struct cairn_error *err)
{
	int rc = check(w, E_DATA, "file data", err);
	if (rc)
		return rc;
	if (len > w->file_left)
		return werr(w, err, CAIRN_EINVAL, "more file data than the size announced");
	w->file_left -= len;
	return put(w, data, len, err);
}

int cairn_nar_write_file_end(struct cairn_nar_writer *w, struct cairn_error *err)
{
	int rc = check(w, E_DATA, "end of file", err);
	if (rc)
		return rc;
	if (w->file_left)
		return werr(w, err, CAIRN_EINVAL, "less file data than the size announced");
	rc = put(w, zeros, nar_pad(w->file_size), err);
	if (!rc)
		rc = put_str(w, ")", 1, err);
	if (!rc)
		node_done(w);
	return rc;
}

int cairn_nar_write_symlink(struct cairn_nar_writer *w, const char *target, size_t target_len,
			    struct cairn_error *err)
{
	int rc = check(w, E_NODE, "symlink", err);
	if (rc)
		return rc;
	if (target_len == 0 || target_len > CAIRN_NAR_TARGET_MAX ||
	    memchr(target, '\0', target_len))
		return werr(w, err, CAIRN_EINVAL, "invalid symlink target");
	rc = node_begin(w, "symlink", err);
	if (!rc)
		rc = put_str(w, "target", 6, err);
	if (!rc)
		rc = put_str(w, target, target_len, err);
	if (!rc)
		rc = put_str(w, ")", 1, err);
	if (!rc)
		node_done(w);
	return rc;
}

int cairn_nar_writer_finish(struct cairn_nar_writer *w, struct cairn_error *err)
{
	int rc = check(w, E_DONE, "end of archive", err);
	if (!rc)
		rc = flush(w, err);
	return rc;
}

/* ---- re-emitting a parse --------------------------------------------- */

static int wcb_entry(struct cairn_nar_writer *w, const struct cairn_nar_node *n,
		     struct cairn_error *err)
{
	return n->depth ? cairn_nar_write_entry_begin(w, n->name, n->name_len, err) : 0;
}

static int wcb_dir_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = wcb_entry(ctx, n, err);
	return rc ? rc : cairn_nar_write_directory_begin(ctx, err);
}

static int wcb_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_write_directory_end(ctx, err);
	return rc || !n->depth ? rc : cairn_nar_write_entry_end(ctx, err);
}

static int wcb_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = wcb_entry(ctx, n, err);
	return rc ? rc : cairn_nar_write_file_begin(ctx, n->executable, n->size, err);
}

static int wcb_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	return cairn_nar_write_file_data(ctx, data, len, err);
}

static int wcb_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = cairn_nar_write_file_end(ctx, err);
	return rc || !n->depth ? rc : cairn_nar_write_entry_end(ctx, err);
}

static int wcb_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	int rc = wcb_entry(ctx, n, err);
	if (!rc)
		rc = cairn_nar_write_symlink(ctx, n->target, n->target_len, err);
	return rc || !n->depth ? rc : cairn_nar_write_entry_end(ctx, err);
}

const struct cairn_nar_callbacks cairn_nar_writer_callbacks = {
    .directory_begin = wcb_dir_begin,
    .directory_end = wcb_dir_end,
    .file_begin = wcb_file_begin,
    .file_data = wcb_file_data,
    .file_end = wcb_file_end,
    .symlink = wcb_symlink,
};

/* ---- dumping a path -------------------------------------------------- */

struct frame {
	int fd;
	size_t names_start; /* first offset in d->offs */
	size_t count, idx;
	size_t path_len;  /* d->path length for this directory */
	size_t arena_len; /* d->arena length to restore on pop */
};

struct dump {
	struct cairn_nar_writer *w;
	char *path; /* for messages: the root, then "/name"s */
	size_t path_len, path_cap;
	char *arena; /* names of all open directories, NUL-separated */
	size_t arena_len, arena_cap;
	size_t *offs; /* sorted name offsets per open directory */
	size_t offs_len, offs_cap;
	char *dents;
	struct frame st[CAIRN_NAR_DEPTH_MAX];
	unsigned depth;
	char link[CAIRN_NAR_TARGET_MAX + 2];
};

static int dump_errno(struct dump *d, struct cairn_error *err, int e, const char *what)
{
	d->w->failed = e == ENOMEM ? CAIRN_ENOMEM : CAIRN_EIO;
	return cairn_error_errno(err, e, "nar: cannot %s '%s'", what, d->path);
}

static int path_push(struct dump *d, const char *name, struct cairn_error *err)
{
	size_t n = strlen(name);
	if (d->path_len + 1 + n + 1 > d->path_cap) {
		size_t cap = d->path_cap * 2 + n + 2;
		char *p = realloc(d->path, cap);
		if (!p)
			return werr(d->w, err, CAIRN_ENOMEM, "out of memory");
		d->path = p;
		d->path_cap = cap;
	}
	d->path[d->path_len++] = '/';
	memcpy(d->path + d->path_len, name, n + 1);
	d->path_len += n;
	return 0;
}

static int cmp_names(const void *a, const void *b, void *arena)
{
	return strcmp((const char *)arena + *(const size_t *)a,
		      (const char *)arena + *(const size_t *)b);
}

/* Read and sort the names of the directory open as fd; push a frame. */
static int dir_push(struct dump *d, int fd, struct cairn_error *err)
{
	if (d->depth >= CAIRN_NAR_DEPTH_MAX) {
		close(fd);
		d->w->failed = CAIRN_ELIMIT;
		return cairn_error_set(err, CAIRN_ELIMIT,
				       "nar: '%s' is nested deeper than %d directories", d->path,
				       CAIRN_NAR_DEPTH_MAX - 1);
	}
	struct frame *f = &d->st[d->depth++];
	f->fd = fd;
	f->names_start = d->offs_len;
	f->count = f->idx = 0;
	f->path_len = d->path_len;
	f->arena_len = d->arena_len;
	for (;;) {
		ssize_t n = getdents64(fd, d->dents, DENTS_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dump_errno(d, err, errno, "read directory");
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *de = (struct dirent64 *)(d->dents + off);
			off += de->d_reclen;
			const char *nm = de->d_name;
			if (nm[0] == '.' && (nm[1] == '\0' || (nm[1] == '.' && nm[2] == '\0')))
				continue;
			/* arena entry: d_type byte, then the name and its NUL */
			size_t len = strlen(nm) + 2;
			if (len > d->arena_cap - d->arena_len) {
				size_t cap = (d->arena_cap + len) * 2;
				char *p = realloc(d->arena, cap);
				if (!p)
					return werr(d->w, err, CAIRN_ENOMEM, "out of memory");
				d->arena = p;
				d->arena_cap = cap;
			}
			if (d->offs_len == d->offs_cap) {
				size_t cap = d->offs_cap * 2 + 256;
				size_t *p = realloc(d->offs, cap * sizeof(*p));
				if (!p)
					return werr(d->w, err, CAIRN_ENOMEM, "out of memory");
				d->offs = p;
				d->offs_cap = cap;
			}
			d->arena[d->arena_len] = (char)de->d_type;
			memcpy(d->arena + d->arena_len + 1, nm, len - 1);
			d->offs[d->offs_len++] = d->arena_len + 1;
			d->arena_len += len;
			f->count++;
		}
	}
	qsort_r(d->offs + f->names_start, f->count, sizeof(size_t), cmp_names, d->arena);
	return cairn_nar_write_directory_begin(d->w, err);
}

static const char *type_name(mode_t m)
{
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISFIFO(m))
		return "a fifo";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "of an unknown type";
}

static int dump_file(struct dump *d, int fd, const struct stat *st, struct cairn_error *err)
{
	struct cairn_nar_writer *w = d->w;
	uint64_t left = (uint64_t)st->st_size;
	int rc = cairn_nar_write_file_begin(w, (st->st_mode & S_IXUSR) != 0, left, err);
	if (rc)
		return rc;
	if (w->file_fn && left > 0 && left >= w->file_min) {
		if ((rc = flush(w, err)) != 0)
			return rc;
		if ((rc = w->file_fn(w->file_ctx, fd, left, err)) != 0) {
			w->failed = rc;
			return rc;
		}
		w->total += left;
		w->file_left = 0;
		return cairn_nar_write_file_end(w, err);
	}
	if (left > (1u << 20))
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (left) {
		if (WRITER_BUF - w->len < WRITER_MIN_READ) {
			rc = flush(w, err);
			if (rc)
				return rc;
		}
		size_t n = WRITER_BUF - w->len;
		if (n > left)
			n = (size_t)left;
		ssize_t r = read(fd, w->buf + w->len, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return dump_errno(d, err, errno, "read");
		if (r == 0) {
			w->failed = CAIRN_EIO;
			return cairn_error_set(err, CAIRN_EIO,
					       "nar: '%s' shrank while it was being read", d->path);
		}
		w->len += (size_t)r;
		w->total += (uint64_t)r;
		w->file_left -= (uint64_t)r;
		left -= (uint64_t)r;
	}
	return cairn_nar_write_file_end(w, err);
}

/*
 * Dump the node called name in directory dfd (AT_FDCWD and the whole path
 * for the root).  A directory is pushed on the stack rather than walked
 * here; its caller's loop goes on with its entries.
 */
static int dump_node(struct dump *d, int dfd, const char *name, unsigned char dtype,
		     struct cairn_error *err)
{
	struct stat st;
	int fd = -1, rc = 0;
	if (dtype == DT_REG) {
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			if (fstat(fd, &st) != 0) {
				rc = dump_errno(d, err, errno, "stat");
				goto out;
			}
		} else if (errno != ELOOP) {
			return dump_errno(d, err, errno, "open");
		} else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			return dump_errno(d, err, errno, "stat");
		}
	} else if (dtype == DT_DIR) {
		st.st_mode = S_IFDIR;
	} else if (dtype == DT_LNK) {
		st.st_mode = S_IFLNK;
	} else if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		return dump_errno(d, err, errno, "stat");
	}

	if (S_ISREG(st.st_mode)) {
		if (fd < 0) {
			fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				return dump_errno(d, err, errno, "open");
			if (fstat(fd, &st) != 0) {
				rc = dump_errno(d, err, errno, "stat");
				goto out;
			}
			if (!S_ISREG(st.st_mode)) {
				rc = werr(d->w, err, CAIRN_EIO,
					  "a file changed type while being dumped");
				goto out;
			}
		}
		rc = dump_file(d, fd, &st, err);
	} else if (S_ISDIR(st.st_mode)) {
		int dir = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir < 0)
			rc = dump_errno(d, err, errno, "open directory");
		else
			rc = dir_push(d, dir, err); /* the frame owns dir */
	} else if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlinkat(dfd, name, d->link, sizeof(d->link));
		if (n < 0) {
			rc = dump_errno(d, err, errno, "read symlink");
		} else if ((size_t)n > CAIRN_NAR_TARGET_MAX) {
			d->w->failed = CAIRN_ELIMIT;
			rc = cairn_error_set(err, CAIRN_ELIMIT,
					     "nar: target of symlink '%s' is too long", d->path);
		} else {
			rc = cairn_nar_write_symlink(d->w, d->link, (size_t)n, err);
		}
	} else {
		d->w->failed = CAIRN_EUNSUPPORTED;
		rc = cairn_error_set(err, CAIRN_EUNSUPPORTED,
				     "nar: '%s' is %s, which a NAR cannot hold", d->path,
				     type_name(st.st_mode));
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int cairn_nar_write_path(struct cairn_nar_writer *w, const char *path, struct cairn_error *err)
{
	if (w->failed)
		return cairn_error_set(err, w->failed, "nar: writer used after an error");
	if (w->dumped || w->expect != E_NODE || w->total)
		return werr(w, err, CAIRN_EINVAL, "write_path needs a fresh writer");
	w->dumped = true;
	struct dump d = {.w = w};
	int rc = 0;
	d.path_cap = strlen(path) + 512;
	d.path = malloc(d.path_cap);
	d.dents = malloc(DENTS_BUF);
	if (!d.path || !d.dents) {
		rc = werr(w, err, CAIRN_ENOMEM, "out of memory");
		goto out;
	}
	d.path_len = strlen(path);
	memcpy(d.path, path, d.path_len + 1);
	rc = dump_node(&d, AT_FDCWD, path, DT_UNKNOWN, err);
	while (!rc && d.depth) {
		struct frame *f = &d.st[d.depth - 1];
		if (f->idx == f->count) {
			rc = cairn_nar_write_directory_end(w, err);
			close(f->fd);
			d.depth--;
			d.offs_len = f->names_start;
			d.arena_len = f->arena_len;
			d.path_len = f->path_len;
			d.path[d.path_len] = '\0';
			if (!rc && d.depth)
				rc = cairn_nar_write_entry_end(w, err);
			continue;
		}
		const char *name = d.arena + d.offs[f->names_start + f->idx++];
		unsigned char dtype = (unsigned char)name[-1];
		d.path_len = f->path_len;
		rc = path_push(&d, name, err);
		if (!rc && d.depth >= CAIRN_NAR_DEPTH_MAX) {
			w->failed = CAIRN_ELIMIT;
			rc = cairn_error_set(err, CAIRN_ELIMIT,
					     "nar: '%s' is nested deeper than %d directories",
					     d.path, CAIRN_NAR_DEPTH_MAX - 1);
		}
		if (!rc)
			rc = cairn_nar_write_entry_begin(w, name, strlen(name), err);
		if (rc)
			break;
		unsigned before = d.depth;
		rc = dump_node(&d, f->fd, name, dtype, err);
		/* a directory was pushed instead: its entry ends when it is popped */
		if (!rc && d.depth == before)
			rc = cairn_nar_write_entry_end(w, err);
	}
out:
	while (d.depth)
		close(d.st[--d.depth].fd);
	free(d.path);
	free(d.arena);
	free(d.offs);
	free(d.dents);
	return rc;
}

int cairn_nar_dump_path(const char *path, cairn_nar_write_fn fn, void *ctx, struct cairn_error *err)
{
	struct cairn_nar_writer *w = cairn_nar_writer_new(fn, ctx);
	if (!w)
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	int rc = cairn_nar_write_path(w, path, err);
	if (!rc)
		rc = cairn_nar_writer_finish(w, err);
	cairn_nar_writer_free(w);
	return rc;
}

static int hash_sink(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	(void)err;
	cairn_sha256_update(ctx, data, len);
	return 0;
}

int cairn_nar_hash_path(const char *path, struct cairn_hash *hash, uint64_t *size,
			struct cairn_error *err)
{
	struct cairn_sha256 sha;
	if (cairn_sha256_init(&sha) != 0)
		return cairn_error_set(err, CAIRN_ECRYPTO, "nar: cannot start SHA-256");
	struct cairn_nar_writer *w = cairn_nar_writer_new(hash_sink, &sha);
	if (!w) {
		cairn_sha256_release(&sha);
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	}
	int rc = cairn_nar_write_path(w, path, err);
	if (!rc)
		rc = cairn_nar_writer_finish(w, err);
	if (rc) {
		cairn_sha256_release(&sha);
	} else {
		hash->algo = CAIRN_HASH_SHA256;
		hash->len = CAIRN_SHA256_LEN;
		memset(hash->digest, 0, sizeof(hash->digest));
		cairn_sha256_final(&sha, hash->digest);
		if (size)
			*size = cairn_nar_writer_size(w);
	}
	cairn_nar_writer_free(w);
	return rc;
}
