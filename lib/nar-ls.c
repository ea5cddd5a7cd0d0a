/*
 * nar-ls.c - the `.ls` listing of a NAR and reading one file out of it,
 * both as parser callbacks, so neither needs the archive in memory.
 *
 * Listing layout checked against NixOS/nix src/libstore/nar-accessor.cc
 * (listNar) and binary-cache-store.cc (the ".ls" upload: an object with
 * "version" 1 and "root"), printed with nlohmann::json's dump(): an
 * object's keys come out sorted, which is why "entries" precedes "type" and
 * "root" precedes "version".  Names inside "entries" are sorted bytewise,
 * the order the parser sees them in.  Names and targets are escaped as
 * nlohmann's serializer does (lib/json.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/buf.h"
#include "cairn/escape.h"
#include "cairn/nar.h"
#include "nar-internal.h"
#include "cairn/banned.h"

struct cairn_nar_ls {
	struct cairn_buf b;
	uint64_t not_first; /* bit d: the directory at depth d has an entry */
	bool done;
};

struct cairn_nar_ls *cairn_nar_ls_new(size_t max_json)
{
	struct cairn_nar_ls *ls = calloc(1, sizeof(*ls));
	if (ls)
		cairn_buf_init(&ls->b, max_json ? max_json : CAIRN_NAR_LS_MAX_DEFAULT);
	return ls;
}

void cairn_nar_ls_free(struct cairn_nar_ls *ls)
{
	if (!ls)
		return;
	cairn_buf_release(&ls->b);
	free(ls);
}

static int ls_fail(struct cairn_nar_ls *ls, int rc, struct cairn_error *err)
{
	if (rc == CAIRN_ELIMIT)
		return cairn_error_set(err, rc, "nar: listing is larger than %zu bytes", ls->b.max);
	return cairn_error_set(err, rc, "nar: out of memory for the listing");
}

/* What comes before a node's object: the root key, or ,"name": */
static int ls_prefix(struct cairn_nar_ls *ls, const struct cairn_nar_node *n)
{
	if (n->depth == 0)
		return cairn_buf_puts(&ls->b, "{\"root\":");
	if (n->depth > 64)
		return CAIRN_EINVAL;
	uint64_t bit = (uint64_t)1 << (n->depth - 1);
	int rc = 0;
	if (ls->not_first & bit)
		rc = cairn_buf_putc(&ls->b, ',');
	ls->not_first |= bit;
	if (!rc)
		rc = cairn_json_str(&ls->b, n->name, n->name_len);
	if (!rc)
		rc = cairn_buf_putc(&ls->b, ':');
	return rc;
}

static int ls_suffix(struct cairn_nar_ls *ls, const struct cairn_nar_node *n)
{
	if (n->depth)
		return 0;
	ls->done = true;
	return cairn_buf_puts(&ls->b, ",\"version\":1}");
}

static int ls_dir_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_ls *ls = ctx;
	int rc = ls_prefix(ls, n);
	if (!rc)
		rc = cairn_buf_puts(&ls->b, "{\"entries\":{");
	if (n->depth < 64)
		ls->not_first &= ~((uint64_t)1 << n->depth);
	return rc ? ls_fail(ls, rc, err) : 0;
}

static int ls_dir_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_ls *ls = ctx;
	int rc = cairn_buf_puts(&ls->b, "},\"type\":\"directory\"}");
	if (!rc)
		rc = ls_suffix(ls, n);
	return rc ? ls_fail(ls, rc, err) : 0;
}

static int ls_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_ls *ls = ctx;
	int rc = ls_prefix(ls, n);
	if (!rc)
		rc = cairn_buf_printf(
		    &ls->b, "{%s\"narOffset\":%llu,\"size\":%llu,\"type\":\"regular\"}",
		    n->executable ? "\"executable\":true," : "", (unsigned long long)n->nar_offset,
		    (unsigned long long)n->size);
	if (!rc)
		rc = ls_suffix(ls, n);
	return rc ? ls_fail(ls, rc, err) : 0;
}

static int ls_symlink(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	struct cairn_nar_ls *ls = ctx;
	int rc = ls_prefix(ls, n);
	if (!rc)
		rc = cairn_buf_puts(&ls->b, "{\"target\":");
	if (!rc)
		rc = cairn_json_str(&ls->b, n->target, n->target_len);
	if (!rc)
		rc = cairn_buf_puts(&ls->b, ",\"type\":\"symlink\"}");
	if (!rc)
		rc = ls_suffix(ls, n);
	return rc ? ls_fail(ls, rc, err) : 0;
}

const struct cairn_nar_callbacks cairn_nar_ls_callbacks = {
    .directory_begin = ls_dir_begin,
    .directory_end = ls_dir_end,
    .file_begin = ls_file_begin,
    .symlink = ls_symlink,
};

int cairn_nar_ls_take(struct cairn_nar_ls *ls, char **json, size_t *len, struct cairn_error *err)
{
	if (!ls->done)
		return cairn_error_set(err, CAIRN_EINVAL, "nar: listing is incomplete");
	size_t n;
	char *s = cairn_buf_steal(&ls->b, &n);
	if (!s)
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	ls->done = false;
	*json = s;
	if (len)
		*len = n;
	return 0;
}

int cairn_nar_ls_buffer(const void *nar, size_t len, size_t max_json, char **json, size_t *json_len,
			struct cairn_error *err)
{
	struct cairn_nar_ls *ls = cairn_nar_ls_new(max_json);
	if (!ls)
		return cairn_error_set(err, CAIRN_ENOMEM, "nar: out of memory");
	int rc = cairn_nar_parse_buffer(nar, len, &cairn_nar_ls_callbacks, ls, NULL, NULL, err);
	if (!rc)
		rc = cairn_nar_ls_take(ls, json, json_len, err);
	cairn_nar_ls_free(ls);
	return rc;
}

/* ---- cat ------------------------------------------------------------- */

void cairn_nar_cat_init(struct cairn_nar_cat *c, const char *path, cairn_nar_write_fn out,
			void *octx)
{
	memset(c, 0, sizeof(*c));
	c->path = path;
	c->path_len = strlen(path);
	c->out = out;
	c->octx = octx;
}

static bool cat_match(struct cairn_nar_cat *c, const struct cairn_nar_node *n)
{
	if (c->found || n->path_len != c->path_len || memcmp(n->path, c->path, c->path_len))
		return false;
	c->found = true;
	c->type = n->type;
	return true;
}

static int cat_other(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)err;
	cat_match(ctx, n);
	return 0;
}

static int cat_file_begin(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)err;
	struct cairn_nar_cat *c = ctx;
	c->active = cat_match(c, n);
	return 0;
}

static int cat_file_data(void *ctx, const void *data, size_t len, struct cairn_error *err)
{
	struct cairn_nar_cat *c = ctx;
	return c->active ? c->out(c->octx, data, len, err) : 0;
}

static int cat_file_end(void *ctx, const struct cairn_nar_node *n, struct cairn_error *err)
{
	(void)n;
	(void)err;
	((struct cairn_nar_cat *)ctx)->active = false;
	return 0;
}

const struct cairn_nar_callbacks cairn_nar_cat_callbacks = {
    .directory_begin = cat_other,
    .file_begin = cat_file_begin,
    .file_data = cat_file_data,
    .file_end = cat_file_end,
    .symlink = cat_other,
};

int cairn_nar_cat_done(const struct cairn_nar_cat *c, struct cairn_error *err)
{
	char q[NAR_QUOTE_MAX];
	if (!c->found)
		return cairn_error_set(err, CAIRN_ENOENT, "nar: %s is not in the archive",
				       nar_where(q, c->path, c->path_len));
	if (c->type != CAIRN_NAR_REGULAR)
		return cairn_error_set(err, CAIRN_EFORMAT, "nar: %s is a %s, not a regular file",
				       nar_where(q, c->path, c->path_len),
				       c->type == CAIRN_NAR_DIRECTORY ? "directory" : "symlink");
	return 0;
}
